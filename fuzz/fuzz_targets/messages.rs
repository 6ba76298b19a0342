//! Fuzz target `messages`: see `pgcloak::fuzzing::messages`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgcloak::fuzzing::messages(data));
