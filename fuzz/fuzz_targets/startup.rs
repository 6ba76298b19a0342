//! Fuzz target `startup`: see `pgcloak::fuzzing::startup`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgcloak::fuzzing::startup(data));
