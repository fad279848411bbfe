#![no_main]
//! Fuzz target `photo_header`: see `fieldsync_fuzz::targets::photo_header`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fieldsync_fuzz::run(fieldsync_fuzz::targets::photo_header, data);
});
