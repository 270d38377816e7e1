//! `cargo +nightly fuzz run strict_json`: see shared::fuzzing::strict_json for the property.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::strict_json(data));
