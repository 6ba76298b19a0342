//! Field encryption end to end (issue 4 core): a rules table with a deterministic text, a
//! randomized text and a deterministic int4 column, through the simple protocol, the extended
//! protocol (tokio-postgres, binary) and psql (text), each checked at rest over a direct
//! connection; refusals inside and outside a transaction; tampered values; key rotation while
//! a session is open.

use std::time::Duration;

use pgcloak::config::Rules;
use pgcloak::control::keys;
use pgcloak::crypto::MasterKey;
use pgcloak::devdb::{APP_PASSWORD, APP_USER, CONTROL_PASSWORD, CONTROL_USER};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::harness::{HANG, TestEnv, sqlstate, within};
use crate::harness::{shared_db, start_encrypted};

const RULES: &str = r#"
[tables.patients]
ssn       = { type = "text", mode = "deterministic" }
diagnosis = { type = "text", mode = "randomized" }
age       = { type = "int4", mode = "deterministic" }
"#;

struct Enc {
    env: TestEnv,
    master: MasterKey,
    rules: Rules,
}

async fn start() -> Enc {
    let db = shared_db().await;
    let app = db
        .client(APP_USER, APP_PASSWORD, db.database())
        .await
        .expect("direct app");
    app.batch_execute(
        "CREATE TABLE patients (id serial PRIMARY KEY, name text, ssn bytea UNIQUE, \
         diagnosis bytea, age bytea)",
    )
    .await
    .expect("create table");
    let (env, rules, master) = start_encrypted(db, RULES).await;
    Enc { env, master, rules }
}

/// Rows of a simple query as text cells.
async fn rows(c: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, tokio_postgres::Error> {
    let msgs = within(HANG, c.simple_query(sql)).await?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect())
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

/// What a direct connection sees in `column` for the row `id`.
async fn at_rest(env: &TestEnv, column: &str, id: i32) -> Option<Vec<u8>> {
    let direct = env.direct_app().await;
    let row = direct
        .query_one(
            &format!("SELECT {column} FROM patients WHERE id = $1"),
            &[&id],
        )
        .await
        .expect("direct select");
    row.get(0)
}

fn assert_envelope(stored: &[u8], plaintext: &[u8], key_version: u32) {
    assert_eq!(stored[0], 0x01, "format version byte");
    assert!(stored[1] == 0x01 || stored[1] == 0x02, "mode byte");
    assert_eq!(
        u32::from_be_bytes([stored[2], stored[3], stored[4], stored[5]]),
        key_version
    );
    assert!(
        !stored.windows(plaintext.len()).any(|w| w == plaintext),
        "plaintext visible at rest"
    );
}

#[tokio::test]
async fn simple_protocol_insert_select_update_delete() {
    let e = start().await;
    let c = e.env.app().await;
    let r = rows(
        &c,
        "INSERT INTO patients (name, ssn, diagnosis, age) VALUES \
         ('ann', '111-22-3333', 'flu', 41), ('bob', '222-33-4444', NULL, NULL) RETURNING id, ssn, age",
    )
    .await
    .expect("insert");
    assert_eq!(
        r,
        vec![
            vec![s("1"), s("111-22-3333"), s("41")],
            vec![s("2"), s("222-33-4444"), None]
        ]
    );
    let r = rows(
        &c,
        "SELECT name, ssn, diagnosis, age FROM patients WHERE ssn = '111-22-3333'",
    )
    .await
    .expect("select");
    assert_eq!(r, vec![vec![s("ann"), s("111-22-3333"), s("flu"), s("41")]]);
    let r = rows(&c, "SELECT * FROM patients WHERE diagnosis IS NULL")
        .await
        .unwrap();
    assert_eq!(
        r,
        vec![vec![s("2"), s("bob"), s("222-33-4444"), None, None]]
    );
    rows(
        &c,
        "UPDATE patients SET diagnosis = 'cold', age = 7 WHERE ssn IN ('222-33-4444')",
    )
    .await
    .expect("update");
    let r = rows(&c, "SELECT diagnosis, age FROM patients WHERE age = 7")
        .await
        .unwrap();
    assert_eq!(r, vec![vec![s("cold"), s("7")]]);
    // At rest: envelopes, never plaintext.
    assert_envelope(&at_rest(&e.env, "ssn", 1).await.unwrap(), b"111-22-3333", 1);
    assert_envelope(&at_rest(&e.env, "diagnosis", 2).await.unwrap(), b"cold", 1);
    assert_eq!(at_rest(&e.env, "ssn", 1).await.unwrap()[1], 0x02);
    assert_eq!(at_rest(&e.env, "diagnosis", 1).await.unwrap()[1], 0x01);
    // UNIQUE on a deterministic column.
    let err = rows(&c, "INSERT INTO patients (ssn) VALUES ('111-22-3333')")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("23505"));
    rows(&c, "DELETE FROM patients WHERE ssn = '111-22-3333'")
        .await
        .expect("delete");
    let r = rows(&c, "SELECT count(*) FROM patients").await.unwrap();
    assert_eq!(r, vec![vec![s("1")]]);
    // Invalid value for the logical type: the codec's SQLSTATE, no plaintext in the message.
    let err = rows(&c, "INSERT INTO patients (age) VALUES ('not-a-number')")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("22P02"));
    assert!(!err.to_string().contains("not-a-number"));
}

#[tokio::test]
async fn extended_protocol_binary_round_trip_and_logical_types() {
    let e = start().await;
    let c = e.env.app().await;
    let ins = c
        .prepare("INSERT INTO patients (name, ssn, diagnosis, age) VALUES ($1, $2, $3, $4) RETURNING id, ssn, age")
        .await
        .expect("prepare insert");
    assert_eq!(
        ins.params(),
        &[Type::TEXT, Type::TEXT, Type::TEXT, Type::INT4]
    );
    assert_eq!(ins.columns()[1].type_(), &Type::TEXT);
    assert_eq!(ins.columns()[2].type_(), &Type::INT4);
    let row = c
        .query_one(&ins, &[&"ann", &"111-22-3333", &"flu", &41i32])
        .await
        .expect("insert");
    assert_eq!(row.get::<_, String>(1), "111-22-3333");
    assert_eq!(row.get::<_, i32>(2), 41);
    let none: Option<&str> = None;
    let none_i: Option<i32> = None;
    c.execute(&ins, &[&"bob", &"222-33-4444", &none, &none_i])
        .await
        .expect("insert nulls");
    let row = c
        .query_one(
            "SELECT name, diagnosis, age FROM patients WHERE ssn = $1",
            &[&"111-22-3333"],
        )
        .await
        .expect("select by ssn");
    assert_eq!(row.get::<_, String>(0), "ann");
    assert_eq!(row.get::<_, String>(1), "flu");
    assert_eq!(row.get::<_, i32>(2), 41);
    let row = c
        .query_one(
            "SELECT diagnosis, age FROM patients WHERE ssn = $1",
            &[&"222-33-4444"],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), None);
    assert_eq!(row.get::<_, Option<i32>>(1), None);
    let n = c
        .execute(
            "UPDATE patients SET age = $1 WHERE ssn = $2",
            &[&50i32, &"111-22-3333"],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    // Written in binary, found by a text literal (deterministic, canonical form).
    let simple = rows(&c, "SELECT name FROM patients WHERE age = 50")
        .await
        .unwrap();
    assert_eq!(simple, vec![vec![s("ann")]]);
    assert_envelope(&at_rest(&e.env, "ssn", 1).await.unwrap(), b"111-22-3333", 1);
    assert_envelope(&at_rest(&e.env, "diagnosis", 1).await.unwrap(), b"flu", 1);
    let n = c
        .execute("DELETE FROM patients WHERE ssn = $1", &[&"222-33-4444"])
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn refusals_keep_the_session_and_transaction_state_exact() {
    let e = start().await;
    let c = e.env.app().await;
    let err = rows(&c, "SELECT * FROM patients WHERE ssn LIKE '1%'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("0A000"));
    let msg = err.as_db_error().unwrap().message().to_owned();
    assert!(
        msg.contains("public.patients.ssn") && msg.contains("LIKE"),
        "{msg}"
    );
    assert_eq!(rows(&c, "SELECT 1").await.unwrap(), vec![vec![s("1")]]);
    // Extended protocol, outside a transaction.
    let err = c
        .query("SELECT id FROM patients WHERE ssn LIKE $1", &[&"1%"])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("0A000"));
    assert_eq!(
        c.query_one("SELECT 2", &[]).await.unwrap().get::<_, i32>(0),
        2
    );
    // Inside a transaction: the transaction is aborted, as PostgreSQL would do.
    rows(&c, "BEGIN").await.unwrap();
    let err = rows(&c, "SELECT * FROM patients ORDER BY ssn")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("0A000"));
    let err = rows(&c, "SELECT 1").await.unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("25P02"));
    rows(&c, "ROLLBACK").await.unwrap();
    rows(&c, "BEGIN").await.unwrap();
    let err = c
        .query("SELECT id FROM patients WHERE ssn < $1", &[&"1"])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("0A000"));
    let err = c.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("25P02"));
    rows(&c, "ROLLBACK").await.unwrap();
    assert_eq!(rows(&c, "SELECT 3").await.unwrap(), vec![vec![s("3")]]);
}

#[tokio::test]
async fn tampered_and_plaintext_values_are_data_corrupted() {
    let e = start().await;
    let c = e.env.app().await;
    rows(
        &c,
        "INSERT INTO patients (name, ssn, diagnosis) VALUES ('a', '1', 'x'), ('b', '2', 'y')",
    )
    .await
    .unwrap();
    let direct = e.env.direct_app().await;
    direct
        .batch_execute(
            "UPDATE patients SET diagnosis = set_byte(diagnosis, 10, get_byte(diagnosis, 10) # 1) WHERE name = 'a';\
             UPDATE patients SET ssn = 'plain'::bytea WHERE name = 'b'",
        )
        .await
        .unwrap();
    for sql in [
        "SELECT diagnosis FROM patients WHERE name = 'a'",
        "SELECT ssn FROM patients WHERE name = 'b'",
    ] {
        let err = rows(&c, sql).await.unwrap_err();
        assert_eq!(sqlstate(&err).as_deref(), Some("XX001"), "{sql}");
        let msg = err.as_db_error().unwrap().message().to_owned();
        assert!(msg.contains("public.patients."), "{msg}");
        let err = c.query(sql, &[]).await.unwrap_err();
        assert_eq!(sqlstate(&err).as_deref(), Some("XX001"), "{sql}");
    }
    assert_eq!(rows(&c, "SELECT 1").await.unwrap(), vec![vec![s("1")]]);
    // Inside a transaction block the transaction is failed for client and server alike.
    rows(&c, "BEGIN").await.unwrap();
    assert!(
        rows(&c, "SELECT diagnosis FROM patients WHERE name = 'a'")
            .await
            .is_err()
    );
    let err = rows(&c, "SELECT 1").await.unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("25P02"));
    rows(&c, "ROLLBACK").await.unwrap();
    assert_eq!(
        rows(&c, "SELECT name FROM patients WHERE ssn = '1'")
            .await
            .unwrap(),
        vec![vec![s("a")]]
    );
}

#[tokio::test]
async fn key_rotation_is_picked_up_by_an_open_session() {
    let e = start().await;
    let c = e.env.app().await;
    rows(
        &c,
        "INSERT INTO patients (id, ssn, diagnosis) VALUES (1, 'old', 'old-dx')",
    )
    .await
    .unwrap();
    let mut control = e
        .env
        .db
        .client(CONTROL_USER, CONTROL_PASSWORD, e.env.db.database())
        .await
        .unwrap();
    keys::rotate(&mut control, &e.rules, &e.master, None)
        .await
        .expect("rotate");
    let mut id = 100;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        id += 1;
        rows(
            &c,
            &format!("INSERT INTO patients (id, diagnosis) VALUES ({id}, 'new-dx')"),
        )
        .await
        .unwrap();
        let stored = at_rest(&e.env, "diagnosis", id).await.unwrap();
        let v = u32::from_be_bytes([stored[2], stored[3], stored[4], stored[5]]);
        if v == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still writing v{v}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let r = rows(&c, "SELECT ssn, diagnosis FROM patients WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(r, vec![vec![s("old"), s("old-dx")]]);
    let r = rows(
        &c,
        &format!("SELECT diagnosis FROM patients WHERE id = {id}"),
    )
    .await
    .unwrap();
    assert_eq!(r, vec![vec![s("new-dx")]]);
}

#[tokio::test]
async fn psql_reads_decrypted_text() {
    let e = start().await;
    let c = e.env.app().await;
    rows(
        &c,
        "INSERT INTO patients (name, ssn, diagnosis, age) VALUES ('ann', '111', 'flu', 41)",
    )
    .await
    .unwrap();
    let conninfo = e
        .env
        .proxy_conninfo(APP_USER, APP_PASSWORD, e.env.db.database());
    let (code, out, err) = e
        .env
        .psql(&conninfo, "SELECT name, ssn, diagnosis, age FROM patients")
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "ann|111|flu|41");
    let direct = e
        .env
        .db
        .conninfo(APP_USER, APP_PASSWORD, e.env.db.database());
    let (code, out, _) = e.env.psql(&direct, "SELECT ssn FROM patients").await;
    assert_eq!(code, 0);
    assert!(out.trim().starts_with("\\x0102"), "{out}");
}
