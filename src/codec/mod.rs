//! Value codecs (sans-IO): PostgreSQL text and binary formats ⇄ one canonical form per logical
//! type. The canonical form is what gets encrypted, so equal values encrypt equally in
//! deterministic mode whichever format they arrived in.

mod types;

pub use types::{BYTEA_OID, LogicalType};
