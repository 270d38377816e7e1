//! `cargo +nightly fuzz run authentication`: see shared::fuzzing::authentication for the property.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::authentication(data));
