//! The proxy's own login to the upstream database: SCRAM verifier lookups, and (later) the
//! catalog and the data keys.

pub mod check;
pub mod keys;
pub mod verifiers;
