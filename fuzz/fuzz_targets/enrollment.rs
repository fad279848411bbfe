#![no_main]
//! Fuzz target `enrollment`: see `fieldsync_fuzz::targets::enrollment`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fieldsync_fuzz::run(fieldsync_fuzz::targets::enrollment, data);
});
