//! Fail closed (spec §5): every construct pgcloak cannot make correct is refused with
//! `0A000` naming the column, in both protocols, and the session stays usable — outside a
//! transaction, and inside one (the next statement gets `25P02`, ROLLBACK works). A stored
//! value that does not decrypt (tampered, plaintext written around the proxy, or copied from
//! a column with another key) is `XX001` naming the column, never passed to the client.

use tokio_postgres::Client;

use crate::enc_env::{EncEnv, Proto, V, assert_error, assert_usable, ok, run};
use crate::harness::{HANG, describe, within};

/// (statement, columns of which the message must name one).
const REFUSED: &[(&str, &[&str])] = &[
    ("SELECT id FROM people WHERE ssn LIKE '1%'", &["people.ssn"]),
    (
        "SELECT id FROM people WHERE email ILIKE '%X%'",
        &["people.email"],
    ),
    ("SELECT id FROM people WHERE age < 40", &["people.age"]),
    ("SELECT id FROM people WHERE 40 > age", &["people.age"]),
    (
        "SELECT id FROM people WHERE age BETWEEN 1 AND 40",
        &["people.age"],
    ),
    ("SELECT id FROM people ORDER BY ssn", &["people.ssn"]),
    ("SELECT min(age) FROM people", &["people.age"]),
    ("SELECT max(ssn) FROM people", &["people.ssn"]),
    (
        "SELECT id FROM people WHERE lower(email) = 'a@x.org'",
        &["people.email"],
    ),
    ("SELECT upper(email) FROM people", &["people.email"]),
    ("SELECT ssn || 'x' FROM people", &["people.ssn"]),
    (
        "SELECT id FROM people WHERE note = 'secret'",
        &["people.note"],
    ),
    (
        "SELECT id FROM people WHERE note IN ('a', 'b')",
        &["people.note"],
    ),
    (
        "SELECT p.id FROM people p JOIN accounts a ON a.ssn = p.ssn",
        &["people.ssn", "accounts.ssn"],
    ),
    (
        "SELECT id FROM people WHERE ssn = email",
        &["people.ssn", "people.email"],
    ),
    (
        "UPDATE accounts SET ssn = email",
        &["accounts.ssn", "accounts.email"],
    ),
    (
        "INSERT INTO accounts (id, ssn) SELECT id, ssn FROM people",
        &["accounts.ssn", "people.ssn"],
    ),
    (
        "INSERT INTO accounts (id, email) SELECT id, ssn FROM people",
        &["accounts.email", "people.ssn"],
    ),
    ("SELECT json_agg(p) FROM people p", &["people."]),
    ("SELECT row_to_json(p.*) FROM people p", &["people."]),
    ("SELECT p FROM people p", &["people."]),
    ("COPY people TO '/tmp/people.out'", &["people"]),
    (
        "COPY (SELECT upper(ssn) FROM people) TO STDOUT",
        &["people"],
    ),
    (
        "COPY (INSERT INTO people (id, ssn) SELECT 9, name FROM people RETURNING id) TO STDOUT",
        &["people.ssn"],
    ),
];

async fn seed(c: &Client) {
    ok(c, Proto::Simple,
        "INSERT INTO people (id, ssn, email, note, age) VALUES (1, 'a-1', 'a@x.org', 'secret', 30); \
         INSERT INTO accounts (id, email, ssn, memo) VALUES (1, 'a@x.org', 'a-1', 'memo')", &[]).await;
}

async fn refused_outside_transactions(p: Proto) {
    let env = EncEnv::start().await;
    let c = env.app().await;
    seed(&c).await;
    for (sql, cols) in REFUSED {
        let what = format!("{p:?}: {sql}");
        assert_error(run(&c, p, sql, &[]).await, "0A000", cols, &what);
        assert_usable(&c, &what).await;
    }
    // Parameters bound for a refused construct are refused too (extended only).
    if p == Proto::Extended {
        let res = c
            .query("SELECT id FROM people WHERE age > $1", &[&5i32])
            .await;
        assert_error(res, "0A000", &["people.age"], "age > $1");
        let res = c
            .query("SELECT id FROM people WHERE email LIKE $1", &[&"a%"])
            .await;
        assert_error(res, "0A000", &["people.email"], "email LIKE $1");
        assert_usable(&c, "after parameterised refusals").await;
    }
    // Nothing was changed by the refused writes.
    env.assert_at_rest("accounts", "ssn", 1, Some("a-1")).await;
    env.assert_at_rest("accounts", "email", 1, Some("a@x.org"))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_constructs_simple_protocol() {
    refused_outside_transactions(Proto::Simple).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_constructs_extended_protocol() {
    refused_outside_transactions(Proto::Extended).await;
}

/// Inside BEGIN: the refusal aborts the transaction exactly as a PostgreSQL error would.
#[tokio::test(flavor = "multi_thread")]
async fn refusal_inside_a_transaction_aborts_it() {
    let env = EncEnv::start().await;
    let c = env.app().await;
    seed(&c).await;
    for p in [Proto::Simple, Proto::Extended] {
        for (sql, cols) in &REFUSED[..6] {
            let what = format!("{p:?} in a transaction: {sql}");
            c.batch_execute("BEGIN").await.unwrap();
            ok(
                &c,
                p,
                "INSERT INTO people (id, ssn) VALUES ($1, $2)",
                &[V::I(50), V::T("tx-row")],
            )
            .await;
            assert_error(run(&c, p, sql, &[]).await, "0A000", cols, &what);
            let next = run(&c, p, "SELECT 1", &[]).await;
            assert_eq!(
                next.as_ref()
                    .err()
                    .and_then(|e| e.as_db_error())
                    .map(|d| d.code().code()),
                Some("25P02"),
                "{what}: next statement {next:?}"
            );
            c.batch_execute("ROLLBACK")
                .await
                .unwrap_or_else(|e| panic!("{what}: ROLLBACK: {}", describe(&e)));
            assert_usable(&c, &what).await;
            assert_eq!(
                env.stored("people", "ssn", 50).await,
                None,
                "{what}: rolled back"
            );
        }
    }
    // A refusal in a pipeline of extended-protocol statements before one Sync (tokio-postgres
    // pipelines concurrent queries).
    let bad = c.query("SELECT id FROM people WHERE ssn LIKE 'a%'", &[]);
    let good = c.query("SELECT ssn FROM people WHERE id = $1", &[&1i32]);
    let (bad, good) = within(HANG, futures_util::future::join(bad, good)).await;
    assert_error(bad, "0A000", &["people.ssn"], "pipelined refusal");
    let good =
        good.unwrap_or_else(|e| panic!("statement after a pipelined refusal: {}", describe(&e)));
    assert_eq!(good[0].get::<_, String>(0), "a-1");
}

/// A tampered value, plaintext written around the proxy, and a ciphertext copied from a
/// column with another key: `XX001` naming the column; the session stays usable.
#[tokio::test(flavor = "multi_thread")]
async fn undecryptable_values_are_data_corrupted() {
    let env = EncEnv::start().await;
    let c = env.app().await;
    seed(&c).await;
    ok(&c, Proto::Simple, "INSERT INTO people (id, ssn, email, note, age) VALUES (2, 'b-2', 'b@x.org', 'bee', 2), (3, 'c-3', 'c@x.org', 'cee', 3)", &[]).await;
    let direct = env.direct().await;
    direct
        .batch_execute(
            "UPDATE people SET note = set_byte(note, 20, get_byte(note, 20) # 1) WHERE id = 1;
         UPDATE people SET ssn = convert_to('plain-ssn', 'UTF8') WHERE id = 2;
         UPDATE people SET age = age || '\\x00'::bytea WHERE id = 2;
         UPDATE accounts SET ssn = (SELECT ssn FROM people WHERE id = 3) WHERE id = 1;",
        )
        .await
        .unwrap();
    for p in [Proto::Simple, Proto::Extended] {
        let cases: &[(&str, &[V<'_>], &str)] = &[
            (
                "SELECT note FROM people WHERE id = $1",
                &[V::I(1)],
                "people.note",
            ),
            (
                "SELECT * FROM people WHERE id = $1",
                &[V::I(1)],
                "people.note",
            ),
            (
                "SELECT ssn FROM people WHERE id = $1",
                &[V::I(2)],
                "people.ssn",
            ),
            (
                "SELECT age FROM people WHERE id = $1",
                &[V::I(2)],
                "people.age",
            ),
            (
                "SELECT ssn FROM accounts WHERE id = $1",
                &[V::I(1)],
                "accounts.ssn",
            ),
        ];
        for (sql, params, col) in cases {
            let what = format!("{p:?}: {sql}");
            let msg = assert_error(run(&c, p, sql, params).await, "XX001", &[col], &what);
            assert!(
                !msg.contains("plain-ssn"),
                "{what}: the message shows the stored value"
            );
            assert_usable(&c, &what).await;
        }
        // The intact rows still read.
        let got = ok(
            &c,
            p,
            "SELECT ssn, note FROM people WHERE id = $1",
            &[V::I(3)],
        )
        .await;
        assert_eq!(
            got,
            vec![vec![Some("c-3".to_string()), Some("cee".to_string())]],
            "{p:?}"
        );
    }
}

/// A rules column cannot be renamed through pgcloak; renamed around it, the catalog poll sees
/// it and the table is refused (its encrypted column no longer exists) rather than taking
/// plaintext under the new name.
#[tokio::test(flavor = "multi_thread")]
async fn a_renamed_encrypted_column_refuses_the_table() {
    let env = EncEnv::start().await;
    let c = env.app().await;
    let res = within(
        HANG,
        c.simple_query("ALTER TABLE people RENAME COLUMN ssn TO ssn2"),
    )
    .await;
    assert_error(
        res,
        "0A000",
        &["public.people.ssn"],
        "rename through pgcloak",
    );
    env.direct()
        .await
        .batch_execute("ALTER TABLE people RENAME COLUMN ssn TO ssn2")
        .await
        .unwrap();
    until_refused(&c, "SELECT id FROM people", "ssn").await;
    let res = within(
        HANG,
        c.simple_query("INSERT INTO people (id, ssn2) VALUES (7, 'plain-secret')"),
    )
    .await;
    assert_error(
        res,
        "0A000",
        &["public.people.ssn"],
        "insert after the rename",
    );
    assert_usable(&c, "after the refusal").await;
    let n = env.row_count("people").await;
    assert_eq!(n, 0, "nothing was written");
}

/// Runs `sql` until pgcloak refuses it (the catalog poll sees relations created around it
/// within its interval); the refusal names the rules table and `name`.
async fn until_refused(c: &Client, sql: &str, name: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match within(HANG, c.simple_query(sql)).await {
            Err(e) if e.as_db_error().map(|d| d.code().code()) == Some("0A000") => {
                let msg = e.as_db_error().unwrap().message().to_owned();
                assert!(msg.contains("public.people") && msg.contains(name), "{msg}");
                return;
            }
            other => assert!(
                std::time::Instant::now() < deadline,
                "{sql}: still not refused 20 s after {name} was created: {other:?}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

/// Relations derived from a rules table, created around pgcloak — a view, a view over that
/// view, an inheritance child and an inheritance parent — are refused once the catalog has
/// seen them: a comparison on their columns would reach the server in plaintext, writes
/// through them would not be encrypted, and their rows are ciphertext.
#[tokio::test(flavor = "multi_thread")]
async fn relations_derived_from_rules_tables_are_refused() {
    let env = EncEnv::start().await;
    env.direct()
        .await
        .batch_execute(
            "CREATE VIEW people_mail AS SELECT id, email AS mail FROM people; \
             CREATE VIEW people_mail2 AS SELECT * FROM people_mail; \
             CREATE TABLE people_more (extra int) INHERITS (people); \
             CREATE TABLE people_base (id int, ssn bytea); \
             ALTER TABLE people INHERIT people_base;",
        )
        .await
        .unwrap();
    let c = env.app().await;
    until_refused(
        &c,
        "SELECT id FROM people_mail WHERE mail = 'secret@x.org'",
        "people_mail",
    )
    .await;
    until_refused(&c, "SELECT * FROM people_mail2", "people_mail2").await;
    until_refused(
        &c,
        "INSERT INTO people_more (id, ssn) VALUES (1, 'plain')",
        "people_more",
    )
    .await;
    until_refused(&c, "SELECT ssn FROM people_base", "people_base").await;
    assert_usable(&c, "after the refusals").await;
    let res = within(HANG, c.query("SELECT * FROM people_mail", &[])).await;
    assert_error(res, "0A000", &["public.people"], "extended protocol");
    // The rules table itself still works.
    ok(
        &c,
        Proto::Simple,
        "INSERT INTO people (id, ssn) VALUES (5, 'own')",
        &[],
    )
    .await;
    env.assert_at_rest("people", "ssn", 5, Some("own")).await;
}
