//! `pgcloak migrate encrypt`: every logical type ends as the envelopes the proxy itself writes,
//! and a 200,000-row table keeps taking writes through pgcloak from 8 writers during the
//! migration with nothing lost, every row right afterwards, and UNIQUE still enforced.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pgcloak::config::Rules;
use pgcloak::control::keys;
use pgcloak::control::migrate::progress::Progress;
use pgcloak::control::migrate::{self, Direction, Options, Outcome};
use pgcloak::crypto::MasterKey;
use pgcloak::devdb::{CONTROL_PASSWORD, CONTROL_USER, DevDb};
use tokio_postgres::Client;

use crate::harness::{HANG, TestEnv, shared_db, start_encrypted, wait_until};

/// The control login to `db`'s database.
pub(crate) async fn control(db: &DevDb) -> Client {
    db.client(CONTROL_USER, CONTROL_PASSWORD, db.database())
        .await
        .expect("control login")
}

/// Runs the library's migration of `column` over a fresh control login.
pub(crate) async fn run(
    db: &DevDb,
    rules: &Rules,
    master: &MasterKey,
    column: &str,
    direction: Direction,
    opts: &Options,
) -> Result<Outcome, migrate::MigrateError> {
    let mut c = control(db).await;
    let ring = keys::load_keyring(&c, master).await.expect("key ring");
    let rule = keys::column_rule(rules, column).expect("rule").clone();
    migrate::migrate(
        &mut c,
        &ring,
        &rule,
        direction,
        opts,
        &mut Progress::hidden(),
    )
    .await
}

/// The column's storage type.
pub(crate) async fn column_type(c: &Client, table: &str, column: &str) -> String {
    c.query_one(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
         WHERE attrelid = $1::text::regclass AND attname = $2 AND NOT attisdropped",
        &[&table, &column],
    )
    .await
    .expect("column type")
    .get(0)
}

/// (column, type, a value in PostgreSQL's text input form).
const TYPES: &[(&str, &str, &str)] = &[
    ("c_text", "text", "héllo wörld"),
    ("c_varchar", "varchar(20)", "abc def"),
    ("c_int2", "int2", "-12"),
    ("c_int4", "int4", "2147483647"),
    ("c_int8", "int8", "-9000000000"),
    ("c_float4", "float4", "1.5"),
    ("c_float8", "float8", "3.141592653589793"),
    ("c_numeric", "numeric(12,4)", "12345.6789"),
    ("c_bool", "bool", "true"),
    ("c_date", "date", "2024-02-29"),
    ("c_time", "time", "13:45:56.123456"),
    ("c_timestamp", "timestamp", "2024-02-29 13:45:56.5"),
    ("c_timestamptz", "timestamptz", "2024-02-29 13:45:56+02"),
    ("c_uuid", "uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    ("c_json", "json", "{\"b\": 1, \"a\": [1,2]}"),
    ("c_jsonb", "jsonb", "{\"b\": 1, \"a\": [1, 2]}"),
];

fn rule_type(sql_type: &str) -> &str {
    sql_type.split('(').next().unwrap_or(sql_type)
}

/// Every column's text as read through the proxy, for `id`.
async fn row_text(app: &Client, id: i32) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for (c, _, _) in TYPES {
        let sql = format!("SELECT {c} FROM types WHERE id = {id}");
        let msgs = app
            .simple_query(&sql)
            .await
            .expect("select through pgcloak");
        let v = msgs.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_owned)),
            _ => None,
        });
        out.push(v.expect("a row"));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_logical_type_migrates_to_what_the_proxy_writes() {
    let rules_text: String = std::iter::once("[tables.types]\n".to_owned())
        .chain(TYPES.iter().map(|(c, t, _)| {
            format!(
                "{c} = {{ type = \"{}\", mode = \"deterministic\" }}\n",
                rule_type(t)
            )
        }))
        .collect();
    let db = shared_db().await;
    let su = db.superuser_client(db.database()).await.unwrap();
    let cols: Vec<String> = TYPES.iter().map(|(c, t, _)| format!("{c} {t}")).collect();
    let vals: Vec<String> = TYPES
        .iter()
        .map(|(_, t, v)| format!("'{}'::{t}", v.replace('\'', "''")))
        .collect();
    su.batch_execute(&format!(
        "CREATE TABLE types (id int PRIMARY KEY, {}); GRANT ALL ON types TO app; \
         INSERT INTO types (id, {}) VALUES (1, {}); INSERT INTO types (id) VALUES (2)",
        cols.join(", "),
        TYPES.iter().map(|c| c.0).collect::<Vec<_>>().join(", "),
        vals.join(", ")
    ))
    .await
    .unwrap();
    let (env, rules, master) = start_encrypted(db, &rules_text).await;
    let app = env.app().await;
    // Pending: the plaintext columns are served as they are.
    let before = row_text(&app, 1).await;
    assert_eq!(before[0].as_deref(), Some("héllo wörld"));

    for (c, _, _) in TYPES {
        let column = format!("public.types.{c}");
        let out = run(
            &env.db,
            &rules,
            &master,
            &column,
            Direction::Encrypt,
            &Options::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{column}: {e}"));
        assert!(matches!(out, Outcome::Done(_)), "{column}: {out:?}");
    }
    let su = env.db.superuser_client(env.db.database()).await.unwrap();
    for (c, _, _) in TYPES {
        assert_eq!(column_type(&su, "types", c).await, "bytea", "{c}");
    }
    // The proxy picks the switch up at its next catalog poll: wait until it decrypts.
    wait_until(
        HANG,
        "the proxy to decrypt the migrated columns",
        || async {
            let first = app
                .simple_query(&format!("SELECT {} FROM types WHERE id = 1", TYPES[0].0))
                .await;
            first.ok().and_then(|msgs| {
                msgs.iter().find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                    _ => None,
                })
            }) == before[0]
        },
    )
    .await;
    assert_eq!(
        row_text(&app, 1).await,
        before,
        "same values through pgcloak"
    );
    assert!(
        row_text(&app, 2).await.iter().all(Option::is_none),
        "NULL stays NULL"
    );

    // The same values written through the proxy are byte-identical (deterministic).
    let lits: Vec<String> = TYPES
        .iter()
        .map(|(_, _, v)| format!("'{}'", v.replace('\'', "''")))
        .collect();
    app.batch_execute(&format!(
        "INSERT INTO types (id, {}) VALUES (3, {})",
        TYPES.iter().map(|c| c.0).collect::<Vec<_>>().join(", "),
        lits.join(", ")
    ))
    .await
    .expect("insert through pgcloak");
    for (c, _, _) in TYPES {
        let sql = format!(
            "SELECT (SELECT {c} FROM types WHERE id = 1) = (SELECT {c} FROM types WHERE id = 3)"
        );
        let same: bool = su.query_one(&sql, &[]).await.unwrap().get(0);
        assert!(same, "{c}: migrated and proxy-written envelopes differ");
        // And equality through the proxy finds both rows.
        let n = app
            .simple_query(&format!(
                "SELECT id FROM types WHERE {c} = {}",
                lits[TYPES.iter().position(|t| t.0 == *c).unwrap()]
            ))
            .await
            .unwrap()
            .iter()
            .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
            .count();
        assert_eq!(n, 2, "{c}");
    }
    // Running it again: finished, says so.
    let again = run(
        &env.db,
        &rules,
        &master,
        "public.types.c_text",
        Direction::Encrypt,
        &Options::default(),
    )
    .await
    .unwrap();
    assert!(matches!(again, Outcome::AlreadyDone { .. }), "{again:?}");
}

/// The acknowledged state of the rows one writer owns.
type Owned = HashMap<i64, Option<String>>;

const ROWS: i64 = 200_000;
const WRITERS: i64 = 8;

/// One writer through pgcloak: inserts, updates and deletes rows `id % WRITERS == w`, reading
/// each write back; a refused statement (around the switch) is retried. Runs until `stop`,
/// then `extra` more operations.
async fn writer(env: Arc<TestEnv>, w: i64, stop: Arc<AtomicBool>, extra: u32) -> (Owned, u64) {
    let app = env.app().await;
    let mut owned = Owned::new();
    let (mut k, mut refused, mut after) = (0i64, 0u64, 0u32);
    while after < extra {
        if stop.load(Ordering::Relaxed) {
            after += 1;
        }
        k += 1;
        let (sql, id, email): (&str, i64, Option<String>) = match k % 3 {
            0 => (
                "INSERT INTO accounts (id, email) VALUES ($1, $2)",
                ROWS + k * WRITERS + w,
                Some(format!("w{w}-new{k}@x")),
            ),
            1 => (
                "UPDATE accounts SET email = $2 WHERE id = $1",
                (k * 7919 * WRITERS + w) % ROWS,
                Some(format!("w{w}-upd{k}@x")),
            ),
            _ => (
                "DELETE FROM accounts WHERE id = $1",
                (k * 104_729 * WRITERS + w) % ROWS,
                None,
            ),
        };
        let n = loop {
            let r = match &email {
                Some(e) => app.execute(sql, &[&id, e]).await,
                None => app.execute(sql, &[&id]).await,
            };
            match r {
                Ok(n) => break n,
                Err(e) => {
                    refused += 1;
                    assert!(refused < 1000, "writer {w}: keeps failing: {e:?}");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        };
        // An UPDATE of a row deleted before changes nothing: the row stays absent.
        let email = if n == 0 { None } else { email };
        owned.insert(id, email.clone());
        // Read it back: always its own value (retry a statement refused around the switch).
        for _ in 0..100 {
            match app
                .query_opt("SELECT email FROM accounts WHERE id = $1", &[&id])
                .await
            {
                Ok(row) => {
                    let got: Option<String> = row.map(|r| r.get(0));
                    assert_eq!(got, email, "writer {w}: row {id} read back");
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    }
    (owned, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_writers_through_pgcloak_during_a_200k_row_migration_lose_nothing() {
    let db = shared_db().await;
    let su = db.superuser_client(db.database()).await.unwrap();
    su.batch_execute(&format!(
        "CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, plan text); \
         GRANT ALL ON accounts TO app; \
         INSERT INTO accounts SELECT i, 'user' || i || '@example.com', 'p' || (i % 5) \
         FROM generate_series(0, {}) i; ANALYZE accounts",
        ROWS - 1
    ))
    .await
    .unwrap();
    let rules_text = "[tables.accounts]\nemail = { type = \"text\", mode = \"deterministic\" }\n";
    let (env, rules, master) = start_encrypted(db, rules_text).await;
    let env = Arc::new(env);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(env.clone(), w, stop.clone(), 40)))
        .collect();
    // The migration starts once every writer is writing (each one's first insert is its
    // third statement).
    wait_until(HANG, "the writers to write", || async {
        su.query_one(
            "SELECT count(DISTINCT id % $1) FROM accounts WHERE id >= $2",
            &[&WRITERS, &ROWS],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
            == WRITERS
    })
    .await;
    let opts = Options {
        batch_rows: 5000,
        ..Options::default()
    };
    let out = run(
        &env.db,
        &rules,
        &master,
        "public.accounts.email",
        Direction::Encrypt,
        &opts,
    )
    .await
    .expect("migration");
    let Outcome::Done(report) = out else {
        panic!("{out:?}")
    };
    assert!(report.rows >= ROWS as u64, "{report:?}");
    assert!(
        report.queued > 0,
        "writes during the backfill were queued: {report:?}"
    );
    stop.store(true, Ordering::Relaxed);
    let mut expected: HashMap<i64, Option<String>> = (0..ROWS)
        .map(|i| (i, Some(format!("user{i}@example.com"))))
        .collect();
    for w in writers {
        let (owned, _refused) = w.await.expect("writer");
        expected.extend(owned);
    }
    expected.retain(|_, v| v.is_some());

    // Every stored value is an envelope of the deterministic mode.
    let su = env.db.superuser_client(env.db.database()).await.unwrap();
    assert_eq!(column_type(&su, "accounts", "email").await, "bytea");
    let bad: i64 = su
        .query_one(
            "SELECT count(*) FROM accounts WHERE substring(email FROM 1 FOR 2) <> '\\x0102'::bytea \
             OR email IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(bad, 0, "stored values that are not envelopes");
    // Every row is right through pgcloak, once its catalog poll has seen the switch (the
    // column is described as text again).
    let app = env.app().await;
    wait_until(HANG, "the proxy to see the migrated column", || async {
        app.prepare("SELECT email FROM accounts")
            .await
            .is_ok_and(|s| s.columns()[0].type_() == &tokio_postgres::types::Type::TEXT)
    })
    .await;
    let rows = app
        .query("SELECT id, email FROM accounts", &[])
        .await
        .unwrap();
    let got: HashMap<i64, Option<String>> =
        rows.iter().map(|r| (r.get(0), Some(r.get(1)))).collect();
    assert_eq!(got.len(), expected.len(), "row count");
    for (id, want) in &expected {
        assert_eq!(got.get(id), Some(want), "row {id}");
    }
    // UNIQUE is still enforced, on the ciphertext.
    let e = app
        .execute(
            "INSERT INTO accounts (id, email) VALUES (-1, 'user1@example.com')",
            &[],
        )
        .await;
    let e = e.expect_err("duplicate email accepted");
    assert_eq!(
        e.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION),
        "{e:?}"
    );
    let is_unique: bool = su
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'accounts'::regclass \
             AND contype = 'u' AND conname = 'accounts_email_key')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(is_unique, "the UNIQUE constraint keeps its name");
    let not_null: bool = su
        .query_one(
            "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'email'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(not_null, "NOT NULL restored");
    // Plaintext written around pgcloak into the migrated column is refused by the guard.
    let e = su
        .execute(
            "INSERT INTO accounts (id, email) VALUES (-2, 'plain@example.com')",
            &[],
        )
        .await
        .expect_err("plaintext accepted into the encrypted column");
    assert!(format!("{e:?}").contains("not one"), "{e:?}");
}
