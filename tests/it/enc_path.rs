//! The session's search_path decides which table an unqualified name means: `SET search_path`,
//! `RESET`, a rolled-back `SET`, and a role's default path all change where an INSERT goes, and
//! pgcloak must encrypt exactly when the table it lands in is a rules table (checked at rest).

use pgcloak::devdb::{APP_DATABASE, APP_PASSWORD, APP_USER, DevDb, DevDbOptions};
use tokio_postgres::Client;

use crate::harness::{HANG, TestEnv, describe, start_encrypted, within};

/// Only `vault.people.ssn` is encrypted; `public.people.ssn` is a plain text column.
const RULES: &str = r#"
[tables."vault.people"]
ssn = { type = "text", mode = "deterministic" }
"#;

async fn start() -> TestEnv {
    let db = DevDb::start(DevDbOptions::default()).await.expect("DevDb");
    let app = db
        .client(APP_USER, APP_PASSWORD, APP_DATABASE)
        .await
        .expect("direct app");
    app.batch_execute(
        "CREATE SCHEMA vault; \
         CREATE TABLE vault.people (id int PRIMARY KEY, ssn bytea UNIQUE); \
         CREATE TABLE public.people (id int PRIMARY KEY, ssn text)",
    )
    .await
    .expect("create tables");
    start_encrypted(db, RULES).await.0
}

async fn exec(c: &Client, sql: &str) {
    within(HANG, c.batch_execute(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)));
}

/// Where row `id` landed, as a direct connection sees it: (schema, stored bytes).
async fn landed(env: &TestEnv, id: i32) -> (&'static str, Vec<u8>) {
    let d = env.direct_app().await;
    let enc = d
        .query_opt("SELECT ssn FROM vault.people WHERE id = $1", &[&id])
        .await
        .unwrap();
    let plain = d
        .query_opt("SELECT ssn FROM public.people WHERE id = $1", &[&id])
        .await
        .unwrap();
    match (enc, plain) {
        (Some(r), None) => ("vault", r.get::<_, Vec<u8>>(0)),
        (None, Some(r)) => ("public", r.get::<_, String>(0).into_bytes()),
        other => panic!("row {id}: {other:?}"),
    }
}

fn assert_encrypted(id: i32, (schema, bytes): (&str, Vec<u8>), plain: &str) {
    assert_eq!(schema, "vault", "row {id} must land in vault.people");
    assert_eq!(bytes[0], 1, "row {id}: an envelope");
    assert!(
        !bytes.windows(plain.len()).any(|w| w == plain.as_bytes()),
        "row {id}: plaintext at rest"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn set_reset_and_rolled_back_search_path() {
    let env = start().await;
    let c = env.app().await;
    // Default path ("$user", public): unqualified `people` is the plain table.
    exec(&c, "INSERT INTO people (id, ssn) VALUES (1, 'plain-1')").await;
    assert_eq!(landed(&env, 1).await, ("public", b"plain-1".to_vec()));

    exec(&c, "SET search_path TO vault, public").await;
    exec(&c, "INSERT INTO people (id, ssn) VALUES (2, 'secret-2')").await;
    assert_encrypted(2, landed(&env, 2).await, "secret-2");
    // Extended protocol, a parameter, after the change.
    let n = c
        .execute(
            "INSERT INTO people (id, ssn) VALUES ($1, $2)",
            &[&3i32, &"secret-3"],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_encrypted(3, landed(&env, 3).await, "secret-3");
    let row = c
        .query_one("SELECT id, ssn FROM people WHERE ssn = $1", &[&"secret-3"])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i32>(0), row.get::<_, String>(1)),
        (3, "secret-3".into())
    );

    exec(&c, "RESET search_path").await;
    exec(&c, "INSERT INTO people (id, ssn) VALUES (4, 'plain-4')").await;
    assert_eq!(landed(&env, 4).await, ("public", b"plain-4".to_vec()));

    // A SET inside a transaction that rolls back leaves the old path.
    exec(&c, "BEGIN; SET search_path TO vault; ROLLBACK").await;
    exec(&c, "INSERT INTO people (id, ssn) VALUES (5, 'plain-5')").await;
    assert_eq!(landed(&env, 5).await, ("public", b"plain-5".to_vec()));

    // set_config, and a SET inside a committed transaction block.
    exec(&c, "SELECT set_config('search_path', 'vault', false)").await;
    exec(&c, "INSERT INTO people (id, ssn) VALUES (6, 'secret-6')").await;
    assert_encrypted(6, landed(&env, 6).await, "secret-6");
    exec(&c, "BEGIN; SET LOCAL search_path TO public; COMMIT").await;
    exec(&c, "INSERT INTO people (id, ssn) VALUES (7, 'secret-7')").await;
    assert_encrypted(7, landed(&env, 7).await, "secret-7");

    // A path change and a write in one query string: the write would be analysed against the
    // old path, so the string is refused and nothing is written.
    exec(&c, "RESET search_path").await;
    let sql = "SET search_path TO vault; INSERT INTO people (id, ssn) VALUES (8, 'secret-8')";
    let err = within(HANG, c.batch_execute(sql))
        .await
        .expect_err("refused");
    assert_eq!(
        err.code().map(|c| c.code()),
        Some("0A000"),
        "{}",
        describe(&err)
    );
    let d = env.direct_app().await;
    for t in ["vault.people", "public.people"] {
        let q = format!("SELECT count(*) FROM {t} WHERE id = 8");
        assert_eq!(
            d.query_one(&q, &[]).await.unwrap().get::<_, i64>(0),
            0,
            "{t}"
        );
    }
    exec(&c, "INSERT INTO people (id, ssn) VALUES (9, 'plain-9')").await;
    assert_eq!(landed(&env, 9).await, ("public", b"plain-9".to_vec()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_default_search_path_is_honoured() {
    let env = start().await;
    let d = env.direct_app().await;
    d.batch_execute(&format!(
        "ALTER ROLE {APP_USER} SET search_path = vault, public"
    ))
    .await
    .unwrap();
    let c = env.app().await;
    exec(&c, "INSERT INTO people (id, ssn) VALUES (1, 'secret-1')").await;
    assert_encrypted(1, landed(&env, 1).await, "secret-1");
    let rows = c
        .query("SELECT ssn FROM people WHERE ssn = $1", &[&"secret-1"])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), "secret-1");
}
