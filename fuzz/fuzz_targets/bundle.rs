#![no_main]
//! Fuzz target `bundle`: see `fieldsync_fuzz::targets::bundle`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fieldsync_fuzz::run(fieldsync_fuzz::targets::bundle, data);
});
