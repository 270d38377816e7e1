//! `cargo +nightly fuzz run publish_request`: see shared::fuzzing::publish_request for the property.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::publish_request(data));
