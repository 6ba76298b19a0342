//! Applying a plan: [`crate::rewrite::Plan`] × [`crate::crypto::KeyRing`] ×
//! [`crate::codec::TextContext`] → the bytes and SQL sent on. Pure functions, no session state:
//! one value at a time ([`values`]), the SQL literals that replace literals bound for encrypted
//! columns ([`literals`]), arrays and casts ([`arrays`]), JSON records ([`json_records`]),
//! comparisons across key versions ([`matching`]), COPY rows ([`copy`]), and the statements that
//! deliver a refusal through the server ([`refuse`]). [`plan`] puts them together as methods
//! on the plan (`apply_query`, `apply_parse`, `apply_bind`, `describe_params`). The
//! per-connection engine ([`crate::engine`]) calls them; nothing here imports it.

pub mod arrays;
pub mod copy;
pub mod json_records;
pub mod literals;
pub mod matching;
pub mod plan;
pub mod refuse;
pub mod values;

pub use values::ValueError;
