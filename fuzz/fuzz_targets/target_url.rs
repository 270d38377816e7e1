//! `cargo +nightly fuzz run target_url`: see shared::fuzzing::target_url for the property.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::target_url(data));
