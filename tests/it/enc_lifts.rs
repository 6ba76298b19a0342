//! Application patterns that are sound and were refused (issue "fail closed", §8): UPDATE …
//! FROM (VALUES …), JOIN (VALUES …) ON col = v.x, MERGE, a writable CTE returning an encrypted
//! column, and `-(-n)`. Each runs in both protocols through pgcloak and is checked at rest
//! (an envelope that decrypts to the value) and read back through pgcloak.

use crate::enc_env::{EncEnv, Proto, V, ok, rows};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_from_values_and_join_values_encrypt_what_they_bind() {
    let env = EncEnv::start().await;
    let app = env.app().await;
    for proto in [Proto::Simple, Proto::Extended] {
        ok(&app, proto, "DELETE FROM people", &[]).await;
        ok(
            &app,
            proto,
            "INSERT INTO people (id, ssn, note) VALUES (1, '111', 'a'), (2, '222', 'b')",
            &[],
        )
        .await;
        // Bulk update keyed by an encrypted column, literals and parameters.
        ok(
            &app,
            proto,
            "UPDATE people p SET note = v.n, age = v.a FROM (VALUES ('111', 'flu', 41), \
             ('222', 'cold', 42)) AS v(s, n, a) WHERE p.ssn = v.s",
            &[],
        )
        .await;
        env.assert_at_rest("people", "note", 1, Some("flu")).await;
        env.assert_at_rest("people", "age", 2, Some("42")).await;
        ok(
            &app,
            proto,
            "UPDATE people p SET email = v.e FROM (VALUES ($1::text, $2::int)) v(e, i) \
             WHERE p.id = v.i",
            &[V::T("x@example.com"), V::I(2)],
        )
        .await;
        env.assert_at_rest("people", "email", 2, Some("x@example.com"))
            .await;
        let got = ok(
            &app,
            proto,
            "SELECT p.id, p.note FROM people p JOIN (VALUES ('222'), ('999')) v(x) \
             ON p.ssn = v.x ORDER BY p.id",
            &[],
        )
        .await;
        assert_eq!(got, rows(&[&[Some("2"), Some("cold")]]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_writes_ciphertext_in_both_branches() {
    let env = EncEnv::start().await;
    let app = env.app().await;
    ok(
        &app,
        Proto::Simple,
        "INSERT INTO people (id, ssn, note) VALUES (1, '111', 'old')",
        &[],
    )
    .await;
    let merge = "MERGE INTO people p USING (VALUES ($1::int, $2::text, $3::text)) v(i, s, n) \
                 ON p.ssn = v.s \
                 WHEN MATCHED THEN UPDATE SET note = v.n \
                 WHEN NOT MATCHED THEN INSERT (id, ssn, note) VALUES (v.i, v.s, v.n)";
    ok(
        &app,
        Proto::Extended,
        merge,
        &[V::I(1), V::T("111"), V::T("new")],
    )
    .await;
    ok(
        &app,
        Proto::Extended,
        merge,
        &[V::I(2), V::T("222"), V::T("fresh")],
    )
    .await;
    ok(
        &app,
        Proto::Simple,
        "MERGE INTO people p USING (VALUES (3, '333')) v(i, s) ON p.ssn = v.s \
         WHEN NOT MATCHED THEN INSERT (id, ssn, age) VALUES (v.i, v.s, -(-7))",
        &[],
    )
    .await;
    env.assert_at_rest("people", "note", 1, Some("new")).await;
    env.assert_at_rest("people", "ssn", 2, Some("222")).await;
    env.assert_at_rest("people", "note", 2, Some("fresh")).await;
    env.assert_at_rest("people", "age", 3, Some("7")).await;
    assert_eq!(env.row_count("people").await, 3);
    let got = ok(
        &app,
        Proto::Simple,
        "SELECT id, ssn, note FROM people ORDER BY id",
        &[],
    )
    .await;
    assert_eq!(
        got,
        rows(&[
            &[Some("1"), Some("111"), Some("new")],
            &[Some("2"), Some("222"), Some("fresh")],
            &[Some("3"), Some("333"), None],
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writable_cte_returns_decrypted_values() {
    let env = EncEnv::start().await;
    let app = env.app().await;
    for (i, proto) in [Proto::Simple, Proto::Extended].into_iter().enumerate() {
        let id = i32::try_from(i).unwrap_or(0) + 1;
        let secret = format!("secret-cte-{id}");
        let got = ok(
            &app,
            proto,
            "WITH ins AS (INSERT INTO people (id, ssn) VALUES ($1, $2) RETURNING id, ssn) \
             SELECT ssn FROM ins",
            &[V::I(id), V::T(&secret)],
        )
        .await;
        assert_eq!(got, rows(&[&[Some(secret.as_str())]]));
        env.assert_at_rest("people", "ssn", id, Some(&secret)).await;
    }
}
