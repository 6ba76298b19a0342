//! `CodecError`: a value that PostgreSQL would reject, with its SQLSTATE and PostgreSQL's wording.
//!
//! The full message quotes the user's own input (as PostgreSQL does) and may go back to that
//! user; it must never be logged. `Debug` and [`CodecError::redacted`] omit the value.

use std::fmt;

/// The SQLSTATEs codec errors carry (from the generated [`crate::sqlstate`]).
pub use crate::sqlstate::{
    CHARACTER_NOT_IN_REPERTOIRE, DATA_CORRUPTED, DATETIME_FIELD_OVERFLOW, FEATURE_NOT_SUPPORTED,
    INVALID_BINARY_REPRESENTATION, INVALID_DATETIME_FORMAT, INVALID_TEXT_REPRESENTATION,
    NUMERIC_VALUE_OUT_OF_RANGE, STATEMENT_TOO_COMPLEX,
};

/// A value PostgreSQL would reject. `Display` includes the offending input; `Debug` does not.
#[derive(Clone, PartialEq, Eq)]
pub struct CodecError {
    sqlstate: &'static str,
    message: String,
    redacted: String,
}

impl CodecError {
    /// An error whose message quotes a value: `message` is `"{prefix}: \"{value}\""` and the
    /// redacted form is just `prefix`.
    pub(crate) fn quoted(sqlstate: &'static str, prefix: String, value: &[u8]) -> Self {
        let shown = String::from_utf8_lossy(value);
        Self {
            sqlstate,
            message: format!("{prefix}: \"{shown}\""),
            redacted: prefix,
        }
    }

    /// An error with a full message (may hold user data) and its redacted form.
    pub(crate) fn new(sqlstate: &'static str, message: String, redacted: String) -> Self {
        Self {
            sqlstate,
            message,
            redacted,
        }
    }

    /// `value "{input}" is out of range for type {pg_name}` (22003).
    pub(crate) fn out_of_range(pg_name: &str, input: &[u8]) -> Self {
        let shown = String::from_utf8_lossy(input);
        Self::new(
            NUMERIC_VALUE_OUT_OF_RANGE,
            format!("value \"{shown}\" is out of range for type {pg_name}"),
            format!("value is out of range for type {pg_name}"),
        )
    }

    /// An error whose message holds no user data.
    pub(crate) fn plain(sqlstate: &'static str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            sqlstate,
            redacted: message.clone(),
            message,
        }
    }

    /// `invalid input syntax for type {pg_name}: "{input}"` (22P02).
    pub(crate) fn syntax(pg_name: &str, input: &[u8]) -> Self {
        Self::quoted(
            INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type {pg_name}"),
            input,
        )
    }

    /// `invalid input syntax for type {pg_name}: "{input}"` with 22007 (date/time types).
    pub(crate) fn datetime_syntax(pg_name: &str, input: &[u8]) -> Self {
        Self::quoted(
            INVALID_DATETIME_FORMAT,
            format!("invalid input syntax for type {pg_name}"),
            input,
        )
    }

    /// Binary input of the wrong shape (22P03).
    pub(crate) fn binary(pg_name: &str) -> Self {
        Self::plain(
            INVALID_BINARY_REPRESENTATION,
            format!("incorrect binary data format for type {pg_name}"),
        )
    }

    /// A canonical value that does not decode: stored data of the wrong shape (XX001).
    pub(crate) fn corrupt(pg_name: &str) -> Self {
        Self::plain(
            DATA_CORRUPTED,
            format!("malformed canonical value for type {pg_name}"),
        )
    }

    /// The SQLSTATE PostgreSQL uses for this error.
    pub fn sqlstate(&self) -> &'static str {
        self.sqlstate
    }

    /// The full message, quoting the input as PostgreSQL does. Send it to the client only.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message without any user data: safe to log.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodecError")
            .field("sqlstate", &self.sqlstate)
            .field("message", &self.redacted)
            .finish()
    }
}

impl std::error::Error for CodecError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_debug_redacts() {
        let e = CodecError::syntax("integer", b"abc");
        assert_eq!(
            e.to_string(),
            "invalid input syntax for type integer: \"abc\""
        );
        assert_eq!(e.redacted(), "invalid input syntax for type integer");
        assert!(!format!("{e:?}").contains("abc"));
        assert_eq!(e.sqlstate(), "22P02");
    }
}
