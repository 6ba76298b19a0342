//! Fuzz target `copy_stream`: see `pgcloak::fuzzing::copy_stream`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgcloak::fuzzing::copy_stream(data));
