//! Fuzz harnesses: one function per fuzz target in `fuzz/fuzz_targets/`, each taking arbitrary
//! bytes and driving one sans-IO entry point the way the proxy does. They live in the crate
//! (not in `fuzz/`) so they reach crate-private parsers, so `cargo clippy` keeps them compiling,
//! and so the unit tests below replay every committed seed and crash reproducer
//! (`fuzz/corpus/<target>/`) on every `cargo test`, with no nightly toolchain.
//!
//! A harness panics only on a real defect: a panic inside the code under test, or a broken
//! round-trip property (a decoded message that does not re-encode to the same bytes, a value
//! whose canonical form does not survive rendering and re-parsing). Not a stable API.

mod codec;
mod sql;
mod wire;

pub use codec::codecs;
pub use sql::{analyzer, copy_stream};
pub use wire::{frame_splitter, messages, scram, startup};

/// A harness: its target name and the function fed one input.
pub type Target = (&'static str, fn(&[u8]));

/// Every harness by target name (the file names in `fuzz/fuzz_targets/` and `fuzz/corpus/`).
pub const TARGETS: &[Target] = &[
    ("frame_splitter", frame_splitter),
    ("startup", startup),
    ("messages", messages),
    ("scram", scram),
    ("copy_stream", copy_stream),
    ("analyzer", analyzer),
    ("codecs", codecs),
];

#[cfg(test)]
mod tests;
