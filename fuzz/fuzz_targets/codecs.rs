//! Fuzz target `codecs`: see `pgcloak::fuzzing::codecs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgcloak::fuzzing::codecs(data));
