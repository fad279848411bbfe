#![no_main]
//! Fuzz target `message`: see `fieldsync_fuzz::targets::message`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fieldsync_fuzz::run(fieldsync_fuzz::targets::message, data);
});
