//! Criterion micro-benches for the sans-IO crypto core.
fn main() {}
