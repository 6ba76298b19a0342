//! Fuzz target `frame_splitter`: see `pgcloak::fuzzing::frame_splitter`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgcloak::fuzzing::frame_splitter(data));
