#![no_main]
//! Fuzz target `batch`: see `fieldsync_fuzz::targets::batch`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fieldsync_fuzz::run(fieldsync_fuzz::targets::batch, data);
});
