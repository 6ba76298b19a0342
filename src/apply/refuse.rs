//! Refusals delivered THROUGH the server, so transaction state stays exactly what PostgreSQL
//! would report: the statement is replaced by a `DO` block that raises the error (inside a
//! transaction block the transaction is then aborted, outside it nothing changes).

use bytes::{BufMut, BytesMut};

use super::values::ValueError;
use crate::protocol::PgError;
use crate::protocol::extended::{Bind, Execute, Named, Parse, Target, query};
use crate::rewrite::Refusal;

/// Why applying a plan refused a statement or a Bind (the client's error: `PgError::from`).
#[derive(Debug)]
pub enum Refused {
    /// The analysis refused the statement.
    Statement(Refusal),
    /// A value could not be encrypted.
    Value(ValueError),
    /// A comparison on this deterministic column cannot match every version of its key.
    Unrewritable { column: String },
    /// Rewriting comparisons needs more parameters than the protocol allows.
    TooManyParams,
}

impl From<ValueError> for Refused {
    fn from(e: ValueError) -> Self {
        Refused::Value(e)
    }
}

/// The statement name used for refusals in the extended protocol (closed before each use, so
/// the client's own unnamed statement is never clobbered).
pub const RAISE_STATEMENT: &str = "__pgcloak_raise";

/// `DO $pgcloak$ BEGIN RAISE EXCEPTION USING ERRCODE = '…', MESSAGE = '…'; END $pgcloak$`.
/// The message must hold no value (it travels to the server).
pub fn raise_sql(sqlstate: &str, message: &str) -> String {
    let code: String = sqlstate
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(5)
        .collect();
    let msg = message.replace("$pgcloak$", "").replace('\'', "''");
    format!(
        "DO $pgcloak$ BEGIN RAISE EXCEPTION USING ERRCODE = '{code}', MESSAGE = '{msg}'; END $pgcloak$"
    )
}

/// A simple Query that raises `e`.
pub fn raise_query(e: &PgError) -> bytes::Bytes {
    query(&raise_sql(e.code, &e.message))
}

/// Close + Parse + Bind + Execute of the raising statement, appended to `out`. Their
/// CloseComplete, ParseComplete and BindComplete must be swallowed; the Execute's error is
/// the client's answer.
pub fn raise_extended(out: &mut BytesMut, e: &PgError) {
    let sql = raise_sql(e.code, &e.message);
    let close = Named {
        target: Target::Statement,
        name: RAISE_STATEMENT,
    };
    out.put_slice(&close.encode(b'C'));
    out.put_slice(
        &Parse {
            name: RAISE_STATEMENT,
            query: &sql,
            param_types: Vec::new(),
        }
        .encode(),
    );
    out.put_slice(
        &Bind {
            portal: "",
            statement: RAISE_STATEMENT,
            param_formats: Vec::new(),
            params: Vec::new(),
            result_formats: Vec::new(),
        }
        .encode(),
    );
    out.put_slice(
        &Execute {
            portal: "",
            max_rows: 0,
        }
        .encode(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_sql_escapes_quotes_and_the_dollar_tag() {
        let sql = raise_sql("0A000", "it's $pgcloak$ bad");
        assert_eq!(
            sql,
            "DO $pgcloak$ BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = 'it''s  bad'; END $pgcloak$"
        );
        assert!(raise_sql("0A'0", "m").contains("ERRCODE = '0A0'"));
        let mut out = BytesMut::new();
        let e = PgError::new(crate::protocol::Severity::Error, "XX001", "m");
        raise_extended(&mut out, &e);
        assert_eq!(&out[..1], b"C");
        assert!(
            out.windows(RAISE_STATEMENT.len())
                .any(|w| w == RAISE_STATEMENT.as_bytes())
        );
    }
}
