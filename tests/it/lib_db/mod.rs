//! The library's tests that need a real PostgreSQL, moved out of `src/` so that
//! `cargo test --lib` runs without one: one file per module they came from, same test names.

mod check;
mod devdb;
mod keys;
mod pg_compare;
mod reencrypt;
