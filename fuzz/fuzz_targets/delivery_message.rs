//! `cargo +nightly fuzz run delivery_message`: see shared::fuzzing::delivery_message for the property.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::delivery_message(data));
