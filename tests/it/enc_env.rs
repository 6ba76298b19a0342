//! The encrypted test environment shared by the `enc_*` tests: a [`TestEnv`] serving
//! `schema-rules/matrix.toml` with a fresh master key and initialised data keys, the matrix
//! tables created straight in PostgreSQL, one way to run a statement in either protocol, and
//! the checks of what is stored at rest (an envelope that decrypts, under the column's own
//! key, to the expected value — never the plaintext).

use std::error::Error;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;
use pgcloak::codec::{LogicalType, TextContext, text_to_canonical};
use pgcloak::config::{ColumnRule, Rules};
use pgcloak::control::keys;
use pgcloak::crypto::{KeyRing, MasterKey};
use pgcloak::devdb::{APP_PASSWORD, APP_USER, CONTROL_PASSWORD, CONTROL_USER, DevDb, DevDbOptions};
use postgres_types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::harness::start_encrypted;
use crate::harness::{HANG, TestEnv, describe, retarget, shared_db, within};

/// The tables of `schema-rules/matrix.toml` (storage type `bytea` for every rules column).
pub fn matrix_ddl() -> String {
    let mut typed = String::from("CREATE TABLE typed (id int PRIMARY KEY");
    for ty in LogicalType::ALL {
        typed.push_str(&format!(", d_{0} bytea, r_{0} bytea", ty.name()));
    }
    typed.push(')');
    format!(
        "CREATE TABLE people (id int PRIMARY KEY, name text, ssn bytea UNIQUE, email bytea, \
            note bytea, age bytea);
         CREATE TABLE accounts (id int PRIMARY KEY, email bytea, ssn bytea, memo bytea, \
            balance int);
         {typed};"
    )
}

/// A [`TestEnv`] with the matrix rules, a master key and data keys.
pub struct EncEnv {
    pub env: TestEnv,
    pub rules: Rules,
    pub master: MasterKey,
}

/// Path of a file in the crate's `schema-rules/`.
pub fn rules_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schema-rules")
        .join(name)
}

impl EncEnv {
    /// A fresh database of the calling module's shared cluster, matrix tables, `keys init`,
    /// then pgcloak serving `matrix.toml`.
    #[track_caller]
    pub fn start() -> impl Future<Output = EncEnv> {
        let db = shared_db();
        async move { Self::start_rules_on(db.await, "matrix.toml", &matrix_ddl()).await }
    }

    /// [`start`](Self::start) on a cluster of the test's own (for a test that restarts it).
    pub async fn start_own() -> EncEnv {
        let db = DevDb::start(DevDbOptions::default())
            .await
            .expect("DevDb start");
        Self::start_rules_on(db, "matrix.toml", &matrix_ddl()).await
    }

    /// `ddl` run as the app role in `db`, `keys init` for `rules_file`, then pgcloak.
    pub async fn start_rules_on(db: DevDb, rules_file: &str, ddl: &str) -> EncEnv {
        let app = db
            .client(APP_USER, APP_PASSWORD, db.database())
            .await
            .expect("direct app login");
        app.batch_execute(ddl).await.expect("create matrix tables");
        let text = std::fs::read_to_string(rules_path(rules_file)).expect("read rules");
        let text = retarget(&text, db.database());
        let (env, rules, master) = start_encrypted(db, &text).await;
        EncEnv { env, rules, master }
    }

    /// The app role through pgcloak.
    pub async fn app(&self) -> Client {
        self.env.app().await
    }

    /// The app role straight to PostgreSQL (sees what is stored).
    pub async fn direct(&self) -> Client {
        self.env.direct_app().await
    }

    /// The control role straight to PostgreSQL, in the app database (owns the data keys).
    pub async fn control(&self) -> Client {
        self.env
            .db
            .client(CONTROL_USER, CONTROL_PASSWORD, self.env.db.database())
            .await
            .expect("control login")
    }

    /// Every data key, unwrapped with the test's master key.
    pub async fn keyring(&self) -> KeyRing {
        keys::load_keyring(&self.control().await, &self.master)
            .await
            .expect("load keyring")
    }

    /// The rule of `public.table.column`.
    pub fn rule(&self, table: &str, column: &str) -> Arc<ColumnRule> {
        Arc::clone(
            self.rules
                .column("public", table, column)
                .unwrap_or_else(|| panic!("{table}.{column} is not in the rules")),
        )
    }

    /// The stored bytes of `table.column` in row `id`, read around the proxy (`None` for NULL
    /// or no such row).
    pub async fn stored(&self, table: &str, column: &str, id: i32) -> Option<Vec<u8>> {
        let sql = format!("SELECT {column} FROM {table} WHERE id = $1");
        let row = self
            .direct()
            .await
            .query_opt(sql.as_str(), &[&id])
            .await
            .unwrap_or_else(|e| panic!("{sql} ({id}): {}", describe(&e)));
        row.and_then(|r| r.get(0))
    }

    /// The number of rows of `table`, counted around the proxy.
    pub async fn row_count(&self, table: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM {table}");
        self.direct()
            .await
            .query_one(sql.as_str(), &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)))
            .get(0)
    }

    /// Asserts that row `id` stores, for `table.column`, NULL when `want` is `None`, else an
    /// envelope of the column's mode that decrypts under the column's key to the canonical
    /// form of `want` (PostgreSQL text, UTC, ISO) and does not contain it in the clear.
    /// Returns the stored bytes.
    pub async fn assert_at_rest(
        &self,
        table: &str,
        column: &str,
        id: i32,
        want: Option<&str>,
    ) -> Option<Vec<u8>> {
        let stored = self.stored(table, column, id).await;
        let (Some(bytes), Some(text)) = (&stored, want) else {
            assert_eq!(
                stored.is_none(),
                want.is_none(),
                "{table}.{column} row {id}: stored NULL-ness differs from the expected value"
            );
            return stored;
        };
        let rule = self.rule(table, column);
        assert_envelope(bytes, &rule);
        assert!(
            text.len() < 4 || !contains(bytes, text.as_bytes()),
            "{table}.{column} row {id}: the plaintext is visible at rest"
        );
        let plain = self
            .keyring()
            .await
            .decrypt(&rule.key, bytes)
            .unwrap_or_else(|e| panic!("{table}.{column} row {id}: does not decrypt: {e}"));
        let want = text_to_canonical(rule.ty, text.as_bytes(), &TextContext::default())
            .expect("expected value parses");
        assert_eq!(
            plain.as_slice(),
            want.as_slice(),
            "{table}.{column} row {id}: stored value decrypts to something else"
        );
        stored
    }
}

/// Asserts the spec §6 header: format 0x01, the rule's mode byte, and a plausible length.
pub fn assert_envelope(bytes: &[u8], rule: &ColumnRule) {
    use pgcloak::config::Mode;
    assert!(bytes.len() >= 6 + 16, "{rule}: stored value too short");
    assert_eq!(bytes[0], 0x01, "{rule}: envelope version byte");
    let mode = match rule.mode {
        Mode::Randomized => 0x01,
        Mode::Deterministic => 0x02,
    };
    assert_eq!(bytes[1], mode, "{rule}: envelope mode byte");
}

/// The key version in a stored envelope (bytes 2..6, big-endian).
pub fn key_version(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]])
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Which protocol a statement goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// `simple_query`: parameters become SQL literals, results come back as text.
    Simple,
    /// Parse/Bind/Execute with typed binary parameters and binary results.
    Extended,
}

/// A parameter value for [`run`].
#[derive(Clone, Copy, Debug)]
pub enum V<'a> {
    T(&'a str),
    I(i32),
    Null,
}

/// A NULL that tokio-postgres accepts for a parameter of any type.
#[derive(Debug)]
pub struct AnyNull;

impl ToSql for AnyNull {
    fn to_sql(&self, _: &Type, _: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

/// Pre-encoded binary bytes for a parameter of any type (e.g. numeric, which has no Rust
/// type here).
#[derive(Debug)]
pub struct Raw(pub Vec<u8>);

impl ToSql for Raw {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.extend_from_slice(&self.0);
        Ok(IsNull::No)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

impl<'a> postgres_types::FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// `v` as a SQL literal.
fn literal(v: V<'_>) -> String {
    match v {
        V::T(s) => format!("'{}'", s.replace('\'', "''")),
        V::I(i) => i.to_string(),
        V::Null => "NULL".into(),
    }
}

/// Rows as text cells.
pub type Rows = Vec<Vec<Option<String>>>;

/// Runs `sql` (with `$n` placeholders) in `proto`: literals spliced in for the simple
/// protocol, typed parameters for the extended one. Result cells are rendered as PostgreSQL's
/// text would show them; an extended result column of a type other than text/int/bool
/// (e.g. `bytea` leaking through) panics.
pub async fn run(
    c: &Client,
    proto: Proto,
    sql: &str,
    params: &[V<'_>],
) -> Result<Rows, tokio_postgres::Error> {
    match proto {
        Proto::Simple => {
            let mut text = sql.to_string();
            for (i, v) in params.iter().enumerate().rev() {
                text = text.replace(&format!("${}", i + 1), &literal(*v));
            }
            let msgs = within(HANG, c.simple_query(&text)).await?;
            Ok(msgs
                .iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
                    }
                    _ => None,
                })
                .collect())
        }
        Proto::Extended => {
            let boxed: Vec<Box<dyn ToSql + Sync + Send>> = params
                .iter()
                .map(|v| -> Box<dyn ToSql + Sync + Send> {
                    match v {
                        V::T(s) => Box::new(s.to_string()),
                        V::I(i) => Box::new(*i),
                        V::Null => Box::new(AnyNull),
                    }
                })
                .collect();
            let refs: Vec<&(dyn ToSql + Sync)> = boxed
                .iter()
                .map(|b| b.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let rows = within(HANG, c.query(sql, &refs)).await?;
            Ok(rows.iter().map(render_row).collect())
        }
    }
}

/// A binary row as text cells (text, varchar, int2/4/8 and bool columns only).
pub fn render_row(row: &tokio_postgres::Row) -> Vec<Option<String>> {
    row.columns()
        .iter()
        .enumerate()
        .map(|(i, col)| match *col.type_() {
            Type::TEXT | Type::VARCHAR | Type::NAME => row.get::<_, Option<String>>(i),
            Type::INT2 => row.get::<_, Option<i16>>(i).map(|v| v.to_string()),
            Type::INT4 => row.get::<_, Option<i32>>(i).map(|v| v.to_string()),
            Type::INT8 => row.get::<_, Option<i64>>(i).map(|v| v.to_string()),
            Type::BOOL => row
                .get::<_, Option<bool>>(i)
                .map(|b| if b { "t" } else { "f" }.into()),
            ref other => panic!(
                "result column {} has type {other}, not its logical type",
                col.name()
            ),
        })
        .collect()
}

/// `run` that must succeed.
pub async fn ok(c: &Client, proto: Proto, sql: &str, params: &[V<'_>]) -> Rows {
    run(c, proto, sql, params)
        .await
        .unwrap_or_else(|e| panic!("{proto:?} {sql}: {}", describe(&e)))
}

/// Shorthand for expected rows.
pub fn rows(expected: &[&[Option<&str>]]) -> Rows {
    expected
        .iter()
        .map(|r| r.iter().map(|c| c.map(str::to_owned)).collect())
        .collect()
}

/// One-column rows of ids.
pub fn ids(list: &[i32]) -> Rows {
    list.iter().map(|i| vec![Some(i.to_string())]).collect()
}

/// Asserts `res` failed with `sqlstate` and a message naming one of `columns`.
pub fn assert_error<T: std::fmt::Debug>(
    res: Result<T, tokio_postgres::Error>,
    sqlstate: &str,
    columns: &[&str],
    what: &str,
) -> String {
    let err = match res {
        Ok(v) => panic!("{what}: succeeded ({v:?}) but must fail with {sqlstate}"),
        Err(e) => e,
    };
    let Some(db) = err.as_db_error() else {
        panic!("{what}: not a database error: {err} / {err:?}");
    };
    assert_eq!(db.code().code(), sqlstate, "{what}: {}", db.message());
    assert!(
        columns.iter().any(|c| db.message().contains(c)),
        "{what}: message does not name {columns:?}: {}",
        db.message()
    );
    db.message().to_owned()
}

/// Asserts the session still answers queries in both protocols.
pub async fn assert_usable(c: &Client, what: &str) {
    let msgs = within(HANG, c.simple_query("SELECT 41 + 1"))
        .await
        .unwrap_or_else(|e| panic!("{what}: session unusable (simple): {}", describe(&e)));
    assert!(
        msgs.iter()
            .any(|m| matches!(m, SimpleQueryMessage::Row(r) if r.get(0) == Some("42"))),
        "{what}: wrong answer"
    );
    let row = within(HANG, c.query_one("SELECT $1::int4 + 1", &[&41i32]))
        .await
        .unwrap_or_else(|e| panic!("{what}: session unusable (extended): {}", describe(&e)));
    assert_eq!(row.get::<_, i32>(0), 42, "{what}");
}
