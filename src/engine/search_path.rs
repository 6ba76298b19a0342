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

use super::pipeline::{Expect, Pipeline};
use super::state::SessionCrypto;
use crate::codec::TextContext;
use crate::protocol::backend::TxStatus;
use crate::protocol::extended::{decode_data_row, query};
use crate::protocol::{BackendTag, Frame};

/// The search_path, and `bytea_output` (not reported either; it shapes bytea text output).
const ASK: &str = "SELECT pg_catalog.current_schemas(false), \
                   pg_catalog.current_setting('bytea_output')";

/// True when `sql` may change the search_path, or a setting that changes how values are read
/// or written (DateStyle, TimeZone, …: reported in ParameterStatus only once the statement
/// has run, so a statement behind it in the same text or pipeline is refused until then).
/// A cheap word check: a superset.
pub fn may_change_path(sql: &str) -> bool {
    mentions_path_words(sql) && changes_path(sql)
}

/// The settings whose change [`may_change_path`] reports (lower case).
const PATH_SETTINGS: [&str; 8] = [
    "search_path",
    "bytea_output",
    "datestyle",
    "timezone",
    "standard_conforming_strings",
    "client_encoding",
    "intervalstyle",
    "extra_float_digits",
];

/// The precise check behind the word check: a statement that sets, resets or discards a
/// setting (`SET`, `RESET`, `SET ROLE`, `SET SESSION AUTHORIZATION`, `DISCARD`), moves a
/// relation to another schema (`ALTER … SET SCHEMA`), calls `set_config`, or has a string
/// naming one of the settings (`set_config('search_path', …)` through any function). Column
/// and table names that merely contain the words (`reset_at`, `SET role = …` of a column
/// named `role`) do not count. A text that does not parse counts.
fn changes_path(sql: &str) -> bool {
    use pg_query::NodeEnum;
    use pg_query::protobuf::Token;
    let Ok(tree) = pg_query::parse(sql, 0) else {
        return true;
    };
    let sets = tree.protobuf.stmts.iter().any(|s| {
        matches!(
            s.stmt.as_ref().and_then(|n| n.node.as_ref()),
            Some(
                NodeEnum::VariableSetStmt(_)
                    | NodeEnum::DiscardStmt(_)
                    | NodeEnum::AlterObjectSchemaStmt(_)
            ) | None
        )
    });
    if sets {
        return true;
    }
    let Ok(scan) = pg_query::scan(sql) else {
        return true;
    };
    scan.tokens.iter().any(|t| {
        let text = usize::try_from(t.start)
            .ok()
            .zip(usize::try_from(t.end).ok())
            .and_then(|(a, b)| sql.get(a..b))
            .unwrap_or("")
            .to_ascii_lowercase();
        match Token::try_from(t.token) {
            Ok(Token::Sconst | Token::Usconst) => PATH_SETTINGS.iter().any(|w| text.contains(w)),
            Ok(Token::Ident) => text.trim_matches('"') == "set_config",
            Ok(_) => false,
            Err(_) => true,
        }
    })
}

/// A cheap word check, a superset of [`changes_path`]: most texts name none of the words.
/// Case-insensitive substring searches without copying the text (this runs for every simple
/// and extended statement, so it must stay far cheaper than the parse it saves).
fn mentions_path_words(sql: &str) -> bool {
    const WORDS: [&str; 11] = [
        "search_path",
        "set_config",
        "bytea_output",
        "reset",
        "discard",
        "datestyle",
        "timezone",
        "standard_conforming_strings",
        "client_encoding",
        "intervalstyle",
        "extra_float_digits",
    ];
    const AFTER_SET: [&str; 5] = ["role", "authorization", "schema", "names", "time zone"];
    let has = |w: &str| crate::rewrite::contains_ci(sql.as_bytes(), w.as_bytes());
    WORDS.iter().any(|w| has(w)) || (has("set") && AFTER_SET.iter().any(|w| has(w)))
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

/// What the session knows of its search_path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathState {
    Known,
    /// May have changed: ask at the next idle point.
    Stale,
    /// Asked; client messages wait for the answer.
    Asking,
}

/// The session's search_path as last read from the server, and whether it is still known.
#[derive(Debug)]
pub(super) struct PathTracker {
    search_path: Vec<String>,
    state: PathState,
    /// The path was read inside a transaction block: read it again when the block ends.
    in_tx: bool,
    /// The search_path answer being received.
    answer: Option<Vec<String>>,
}

impl Default for PathTracker {
    fn default() -> Self {
        PathTracker {
            search_path: vec!["public".to_owned()],
            state: PathState::Known,
            in_tx: false,
            answer: None,
        }
    }
}

impl PathTracker {
    /// The path as last read.
    #[inline]
    pub fn search_path(&self) -> &[String] {
        &self.search_path
    }

    /// True when no statement since the last read may have changed it.
    #[inline]
    pub fn known(&self) -> bool {
        self.state == PathState::Known
    }

    /// True while client messages must wait for the search_path.
    #[inline]
    pub fn held(&self) -> bool {
        self.state == PathState::Asking
    }

    /// The question went to the server.
    pub fn asking(&mut self) {
        self.state = PathState::Asking;
    }

    /// It may have changed: ask at the next idle point.
    pub fn stale(&mut self) {
        self.state = PathState::Stale;
    }

    /// After a statement that may change the search_path: ask again at the next idle point.
    pub fn note(&mut self, sql: &str) {
        if may_change_path(sql) {
            self.stale();
        }
    }

    /// At a ReadyForQuery the client is owed: true when the path must be asked now (it may have
    /// changed, and `quiet`: nothing else is in flight or owed to the server).
    pub fn at_ready(&mut self, status: TxStatus, quiet: bool) -> bool {
        if self.in_tx && status == TxStatus::Idle {
            self.in_tx = false;
            self.state = PathState::Stale;
        }
        self.state == PathState::Stale && status != TxStatus::Failed && quiet
    }

    /// A server message answering the search_path question (all swallowed); its second
    /// column is `bytea_output`, which goes to `text`.
    pub fn answer(&mut self, frame: &Frame, text: &mut TextContext) {
        match BackendTag::from(frame.tag()) {
            BackendTag::DataRow => {
                let cells = decode_data_row(frame.body()).unwrap_or_default();
                let cell = |i: usize| {
                    cells
                        .get(i)
                        .copied()
                        .flatten()
                        .and_then(|c| std::str::from_utf8(c).ok())
                };
                if let Some(out) = cell(1) {
                    text.set_bytea_output(out);
                }
                self.answer = cell(0).and_then(parse_name_array);
            }
            BackendTag::ErrorResponse => self.answer = None,
            _ => {}
        }
    }

    /// The ReadyForQuery ending the search_path question.
    pub fn done(&mut self, status: TxStatus) {
        match self.answer.take() {
            Some(path) => {
                self.search_path = path;
                self.state = PathState::Known;
                self.in_tx = status != TxStatus::Idle;
            }
            None => self.state = PathState::Stale,
        }
    }
}

impl SessionCrypto {
    /// Asks for the search_path now (the upstream connection must be between requests).
    pub(super) fn ask_path(&mut self, to_upstream: &mut BytesMut, pipe: &mut Pipeline) {
        to_upstream.extend_from_slice(&query(ASK));
        pipe.push(Expect::SearchPath);
        self.path.asking();
    }

    /// True while client messages must wait for the search_path.
    pub fn client_held(&self) -> bool {
        self.path.held()
    }

    /// At a ReadyForQuery the client is owed: asks again if the path may have changed and
    /// nothing else is in flight.
    pub(super) fn path_at_ready(
        &mut self,
        status: TxStatus,
        to_upstream: &mut BytesMut,
        pipe: &mut Pipeline,
    ) {
        let quiet =
            pipe.is_empty() && !self.results.is_discarding() && !self.results.abort_pending();
        if self.path.at_ready(status, quiet) {
            self.ask_path(to_upstream, pipe);
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
            "SET SCHEMA 'app'",
            "SET TIME ZONE 'UTC'",
            "SET DateStyle = German",
            "select set_config('TimeZone', 'UTC', false)",
            "SET NAMES 'LATIN1'",
            "SET bytea_output = escape",
            "ALTER TABLE people SET SCHEMA archive",
            "SELECT set_config($1, $2, false)",
            "SELECT f('DateStyle')",
            "RESET ROLE",
            "this is not sql; SET search_path = x",
        ] {
            assert!(may_change_path(s), "{s}");
        }
        for s in [
            "SELECT 1",
            "INSERT INTO t VALUES (1)",
            "UPDATE staff SET role = 'admin' WHERE id = 1",
            "SELECT reset_at, discarded FROM jobs",
            "SELECT * FROM timezone_names",
            "INSERT INTO notes (body) VALUES ('reset the role')",
            "SET work_mem = '64MB'",
        ] {
            assert!(!may_change_path(s), "{s}");
        }
    }
}
