#![no_main]
//! Fuzz target `frame`: see `fieldsync_fuzz::targets::frame`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fieldsync_fuzz::run(fieldsync_fuzz::targets::frame, data);
});
