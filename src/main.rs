//! The `pgcloak` command line: parses arguments, loads the config, starts telemetry and runs.
fn main() {}
