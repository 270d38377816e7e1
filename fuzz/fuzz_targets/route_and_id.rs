//! `cargo +nightly fuzz run route_and_id`: see shared::fuzzing::route_and_id for the property.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::route_and_id(data));
