//! The driver & ORM compatibility suite (issue 5): one application scenario per client, run
//! through pgcloak with `schema-rules/compat.toml` against a throwaway PostgreSQL.
//!
//! Each test starts its own database, creates `compat_people`/`compat_orders` directly (every
//! encrypted column stored as `bytea`), makes the data keys (`keys init`), starts the proxy,
//! then runs the client's scenario: a program under `tests/clients/` as a subprocess (psql,
//! Python drivers and SQLAlchemy, pgjdbc, node-postgres) or in-process (tokio-postgres, sqlx).
//! Every client writes rows of every logical type, finds them by a deterministic column,
//! updates, deletes, joins on the shared deterministic key, hits a refused construct (0A000),
//! and checks the stored values are envelopes; this file checks the stored values again.
//! A missing interpreter or package FAILS the test (install with `tests/clients/setup`).
//!
//! `PGCLOAK_CLIENTS_PLAIN=1` runs the scenarios without rules over plain logical-type tables
//! (no at-rest or refusal checks): a harness shake-out, not a substitute.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pgcloak::devdb::{APP_PASSWORD, APP_USER};

use crate::harness::start_encrypted;
use crate::harness::{ProxyOptions, TestEnv, retarget, shared_db};

mod rust_drivers;

/// A scenario subprocess gets this long before it counts as hung.
const SCENARIO_LIMIT: Duration = Duration::from_secs(240);

/// The encrypted columns, in the order the scenarios use, with their logical SQL types.
pub const COLUMNS: [(&str, &str); 17] = [
    ("ssn", "text"),
    ("email", "varchar"),
    ("age", "int4"),
    ("visits", "int8"),
    ("score", "float8"),
    ("balance", "numeric"),
    ("active", "bool"),
    ("born", "date"),
    ("wake", "time"),
    ("seen", "timestamp"),
    ("seen_tz", "timestamptz"),
    ("ext_id", "uuid"),
    ("profile", "jsonb"),
    ("photo", "bytea"),
    ("small", "int2"),
    ("ratio", "float4"),
    ("doc", "json"),
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether the suite runs in its no-rules shake-out mode.
pub fn plain() -> bool {
    std::env::var("PGCLOAK_CLIENTS_PLAIN").is_ok_and(|v| v == "1")
}

/// The DDL of both tables: `bytea` storage for encrypted columns, or the logical types.
fn ddl(plain: bool) -> String {
    let cols: Vec<String> = COLUMNS
        .iter()
        .map(|(c, ty)| format!("{c} {}", if plain { ty } else { &"bytea" }))
        .collect();
    let ssn = if plain { "text" } else { "bytea" };
    format!(
        "CREATE TABLE public.compat_people (id serial PRIMARY KEY, client text NOT NULL, \
         note text, {});\n\
         CREATE TABLE public.compat_orders (id serial PRIMARY KEY, client text NOT NULL, \
         person_ssn {ssn}, amount int NOT NULL);",
        cols.join(", ")
    )
}

/// A fresh database of the module's shared cluster with the compat tables and data keys, and
/// pgcloak with the compat rules.
pub async fn compat_env() -> TestEnv {
    let db = shared_db().await;
    let app = db
        .client(APP_USER, APP_PASSWORD, db.database())
        .await
        .expect("direct app login");
    app.batch_execute(&ddl(plain()))
        .await
        .expect("create compat tables");
    if plain() {
        return TestEnv::start_on(db, ProxyOptions::default()).await;
    }
    let rules_path = repo().join("schema-rules/compat.toml");
    let text = std::fs::read_to_string(&rules_path).expect("read compat rules");
    let text = retarget(&text, db.database());
    start_encrypted(db, &text).await.0
}

/// The connection facts every scenario reads from its environment.
pub(crate) fn scenario_env(env: &TestEnv) -> Vec<(&'static str, String)> {
    vec![
        ("PGCLOAK_HOST", "localhost".into()),
        ("PGCLOAK_PORT", env.proxy_addr().port().to_string()),
        ("PGCLOAK_USER", APP_USER.into()),
        ("PGCLOAK_PASSWORD", APP_PASSWORD.into()),
        ("PGCLOAK_DB", env.db.database().into()),
        (
            "PGCLOAK_SSLROOTCERT",
            env.db.ca_cert_path().display().to_string(),
        ),
        ("DIRECT_PORT", env.db.port().to_string()),
        ("DIRECT_USER", APP_USER.into()),
        ("DIRECT_PASSWORD", APP_PASSWORD.into()),
        (
            "PGCLOAK_EXPECT",
            if plain() { "plain" } else { "encrypted" }.into(),
        ),
    ]
}

/// A required program of the suite; panics (never skips) when it is not installed.
fn require(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run tests/clients/setup (a missing client is a failure, not a skip)",
        path.display()
    );
    path
}

/// Runs a scenario program and panics with its output unless it exits 0.
async fn run_scenario(env: &TestEnv, program: &Path, args: &[&str], cwd: &Path) {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(scenario_env(env))
        .env("PGCONNECT_TIMEOUT", "20")
        .current_dir(cwd)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(SCENARIO_LIMIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{} {args:?} hung", program.display()))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n\
         --- server log (tail) ---\n{}",
        program.display(),
        out.status,
        env.db.log_tail()
    );
    eprintln!("{}", stdout.trim_end());
}

/// Independent of the client: after its scenario, `tag` owns 2 people and 2 orders, and every
/// non-NULL encrypted value stored for it is an envelope (0x01, mode 1 or 2).
pub async fn check_stored(env: &TestEnv, tag: &str) {
    let direct = env.direct_app().await;
    let n: i64 = direct
        .query_one(
            "SELECT count(*) FROM compat_people WHERE client = $1",
            &[&tag],
        )
        .await
        .expect("count people")
        .get(0);
    assert_eq!(n, 2, "{tag}: people left after the scenario");
    let n: i64 = direct
        .query_one(
            "SELECT count(*) FROM compat_orders WHERE client = $1",
            &[&tag],
        )
        .await
        .expect("count orders")
        .get(0);
    assert_eq!(n, 2, "{tag}: orders after the scenario");
    if plain() {
        return;
    }
    let names: Vec<&str> = COLUMNS.iter().map(|(c, _)| *c).collect();
    let sql = format!(
        "SELECT {} FROM compat_people WHERE client = $1",
        names.join(", ")
    );
    let mut envelopes = 0;
    for row in direct.query(&sql, &[&tag]).await.expect("read stored") {
        for (i, name) in names.iter().enumerate() {
            let Some(v) = row.get::<_, Option<Vec<u8>>>(i) else {
                continue;
            };
            assert!(
                v.len() > 6 && v[0] == 1 && matches!(v[1], 1 | 2),
                "{tag}: stored {name} is not an envelope"
            );
            assert!(
                !v.windows(tag.len()).any(|w| w == tag.as_bytes()),
                "{tag}: stored {name} contains the plaintext tag"
            );
            envelopes += 1;
        }
    }
    // Row 1 has all 17 values, row 2 only ssn and email.
    assert_eq!(envelopes, 19, "{tag}: stored envelopes");
}

fn python() -> PathBuf {
    require(repo().join("tests/clients/.venv/bin/python"))
}

async fn python_client(script: &str, args: &[&str], tag: &str) {
    let env = compat_env().await;
    let dir = repo().join("tests/clients/python");
    let script = require(dir.join(script));
    let mut all = vec![script.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    run_scenario(&env, &python(), &all, &dir).await;
    check_stored(&env, tag).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_psycopg3() {
    python_client("psycopg3_scenario.py", &[], "psycopg3").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_psycopg3_pipeline() {
    python_client("psycopg3_scenario.py", &["--pipeline"], "psycopg3-pipeline").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_psycopg2() {
    python_client("psycopg2_scenario.py", &[], "psycopg2").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_asyncpg() {
    python_client("asyncpg_scenario.py", &[], "asyncpg").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_sqlalchemy() {
    python_client("sqlalchemy_scenario.py", &[], "sqlalchemy").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_node_pg() {
    let env = compat_env().await;
    let dir = repo().join("tests/clients/node");
    require(dir.join("node_modules/pg/package.json"));
    let node = require(PathBuf::from("/usr/bin/node"));
    run_scenario(&env, &node, &["scenario.js"], &dir).await;
    check_stored(&env, "node-pg").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_pgjdbc() {
    let env = compat_env().await;
    let jar = require(PathBuf::from("/usr/share/java/postgresql.jar"));
    let java = require(PathBuf::from("/usr/bin/java"));
    let dir = repo().join("tests/clients/java");
    let cp = jar.to_str().expect("utf-8 path");
    run_scenario(&env, &java, &["-cp", cp, "Scenario.java"], &dir).await;
    check_stored(&env, "pgjdbc").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_psql() {
    let env = compat_env().await;
    let dir = repo().join("tests/clients/psql");
    let script = require(dir.join("scenario.sql"));
    let ci = env.proxy_conninfo(APP_USER, APP_PASSWORD, env.db.database());
    let script = script.to_str().expect("utf-8 path");
    let (code, out, err) = env.psql_args(&ci, &["-f", script]).await;
    assert_eq!(code, 0, "psql failed:\n{out}\n--- stderr ---\n{err}");
    let expected_file = if plain() {
        "scenario.plain.out"
    } else {
        "scenario.out"
    };
    let expected = std::fs::read_to_string(dir.join(expected_file)).expect("expected output");
    assert_eq!(out, expected, "psql output differs; stderr:\n{err}");
    check_stored(&env, "psql").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_tokio_postgres() {
    let env = compat_env().await;
    rust_drivers::tokio_postgres_scenario(&env, "tokio-postgres").await;
    check_stored(&env, "tokio-postgres").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_sqlx() {
    let env = compat_env().await;
    rust_drivers::sqlx_scenario(&env, "sqlx").await;
    check_stored(&env, "sqlx").await;
}
