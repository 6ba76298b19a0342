//! Fuzz target `analyzer`: see `pgcloak::fuzzing::analyzer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgcloak::fuzzing::analyzer(data));
