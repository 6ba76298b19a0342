//! The session's search_path, which decides what an unqualified table name means. PostgreSQL 15
//! does not report it in ParameterStatus, and it can come from many places (role and database
//! defaults, startup `options`, `SET`, `set_config`, `RESET`, `DISCARD`, `SET ROLE` through
//! `$user`, a rolled-back `SET`), so the proxy asks the server itself:
//! `SELECT pg_catalog.current_schemas(false)` on the session's own connection, at the start of
//! the session and at the first idle point after a statement that may have changed it (and
//! again when a transaction in which it was read ends). Client messages are held (not
//! analysed) until the answer is in. A statement that may name a rules table while the path is
//! not known (pipelined right behind such a change) is refused rather than guessed at.

use bytes::BytesMut;

use super::state::{Expect, SessionCrypto};
use crate::protocol::backend::TxStatus;
use crate::protocol::extended::{decode_data_row, query};
use crate::protocol::{BackendTag, Frame};

/// The search_path, and `bytea_output` (not reported either; it shapes bytea text output).
const ASK: &str = "SELECT pg_catalog.current_schemas(false), \
                   pg_catalog.current_setting('bytea_output')";

/// What the session knows of its search_path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathState {
    Known,
    /// May have changed: ask at the next idle point.
    Stale,
    /// Asked; client messages wait for the answer.
    Asking,
}

/// True when `sql` may change the search_path (cheap word check).
pub fn may_change_path(sql: &str) -> bool {
    let has = |w: &str| {
        sql.as_bytes()
            .windows(w.len())
            .any(|x| x.eq_ignore_ascii_case(w.as_bytes()))
    };
    has("search_path")
        || has("bytea_output")
        || has("reset")
        || has("discard")
        || (has("set") && (has("role") || has("authorization") || has("schema")))
}

/// Parses a text `name[]` such as `{app,"My Schema",public}`.
pub fn parse_name_array(text: &str) -> Option<Vec<String>> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    while chars.peek().is_some() {
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => item.push(chars.next()?),
                    c => item.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                item.push(c);
                chars.next();
            }
        }
        out.push(item);
        match chars.next() {
            None => break,
            Some(',') => {}
            Some(_) => return None,
        }
    }
    Some(out)
}

impl SessionCrypto {
    /// Asks for the search_path now (the upstream connection must be between requests).
    pub fn ask_path(&mut self, to_upstream: &mut BytesMut) {
        to_upstream.extend_from_slice(&query(ASK));
        self.expect.push_back(Expect::SearchPath);
        self.path = PathState::Asking;
    }

    /// True while client messages must wait for the search_path.
    pub fn client_held(&self) -> bool {
        self.path == PathState::Asking
    }

    /// At a ReadyForQuery the client is owed: asks again if the path may have changed and
    /// nothing else is in flight.
    pub(super) fn path_at_ready(&mut self, status: TxStatus, to_upstream: &mut BytesMut) {
        if self.path_in_tx && status == TxStatus::Idle {
            self.path_in_tx = false;
            self.path = PathState::Stale;
        }
        if self.path == PathState::Stale
            && status != TxStatus::Failed
            && self.expect.is_empty()
            && !self.discarding
            && !self.abort_upstream
        {
            self.ask_path(to_upstream);
        }
    }

    /// A server message answering the search_path question (all swallowed).
    pub(super) fn path_answer(&mut self, frame: &Frame) {
        match BackendTag::from(frame.tag) {
            BackendTag::DataRow => {
                let cells = decode_data_row(frame.body()).unwrap_or_default();
                let text = |i: usize| {
                    cells
                        .get(i)
                        .copied()
                        .flatten()
                        .and_then(|c| std::str::from_utf8(c).ok())
                };
                if let Some(out) = text(1) {
                    self.text.set_bytea_output(out);
                }
                self.answer = text(0).and_then(parse_name_array);
            }
            BackendTag::ErrorResponse => self.answer = None,
            _ => {}
        }
    }

    /// The ReadyForQuery ending the search_path question.
    pub(super) fn path_done(&mut self, status: TxStatus) {
        match self.answer.take() {
            Some(path) => {
                self.search_path = path;
                self.path = PathState::Known;
                self.path_in_tx = status != TxStatus::Idle;
            }
            None => self.path = PathState::Stale,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_arrays_parse_with_quotes_and_escapes() {
        let p = |s: &str| parse_name_array(s);
        assert_eq!(p("{}"), Some(vec![]));
        assert_eq!(p("{public}"), Some(vec!["public".to_owned()]));
        assert_eq!(
            p(r#"{app,"My Schema","q\"x",public}"#),
            Some(vec![
                "app".to_owned(),
                "My Schema".to_owned(),
                "q\"x".to_owned(),
                "public".to_owned()
            ])
        );
        assert_eq!(p("public"), None);
        assert_eq!(p(r#"{"open}"#), None);
    }

    #[test]
    fn statements_that_may_change_the_path() {
        for s in [
            "SET search_path TO app",
            "select set_config('search_path', 'app', false)",
            "RESET ALL",
            "DISCARD ALL",
            "SET ROLE bob",
            "set session authorization bob",
        ] {
            assert!(may_change_path(s), "{s}");
        }
        for s in [
            "SELECT 1",
            "INSERT INTO t VALUES (1)",
            "SET TIME ZONE 'UTC'",
        ] {
            assert!(!may_change_path(s), "{s}");
        }
    }
}
