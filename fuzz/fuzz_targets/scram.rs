//! Fuzz target `scram`: see `pgcloak::fuzzing::scram`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgcloak::fuzzing::scram(data));
