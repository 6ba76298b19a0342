//! Every statement form of issue 4 item 1 through pgcloak, once in the simple protocol
//! (literals, text results) and once in the extended protocol (typed binary parameters,
//! binary results), each checked at rest: INSERT with and without a column list and with
//! multi-row VALUES, UPDATE SET, WHERE `=` `<>` `IN` `IS [NOT] DISTINCT FROM` `IS [NOT] NULL`,
//! JOIN ON columns sharing a key, ON CONFLICT DO UPDATE, DELETE, sub-selects, CTEs,
//! RETURNING, `SELECT *`, aliases, GROUP BY and DISTINCT.

use tokio_postgres::Client;

use crate::enc_env::{EncEnv, Proto, V, ids, ok, rows};

const ALL: &str = "SELECT id, name, ssn, email, note, age FROM people WHERE id = $1";

/// Inserts (id, name, ssn, email, note, age) rows in three INSERT shapes and checks them at
/// rest.
async fn inserts(env: &EncEnv, c: &Client, p: Proto) {
    use V::{I, Null, T};
    ok(
        c,
        p,
        "INSERT INTO people (id, name, ssn, email, note, age) VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            I(1),
            T("ann"),
            T("111-11-1111"),
            T("ann@x.org"),
            T("note of ann"),
            I(30),
        ],
    )
    .await;
    ok(c, p, "INSERT INTO people (age, note, email, ssn, name, id) VALUES ($1, $2, $3, $4, $5, $6), ($7, $8, $9, $10, $11, $12)",
        &[I(41), T("bob's note"), T("bob@x.org"), T("222-22-2222"), T("bob"), I(2),
          I(-7), Null, T("cy@x.org"), T("333-33-3333"), T("cy"), I(3)]).await;
    ok(
        c,
        p,
        "INSERT INTO people VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            I(4),
            T("dee"),
            T("444-44-4444"),
            T("bob@x.org"),
            T("dee's note"),
            I(30),
        ],
    )
    .await;
    ok(
        c,
        p,
        "INSERT INTO people (id, name) VALUES ($1, $2)",
        &[I(5), T("eve")],
    )
    .await;
    for (id, ssn, email, note, age) in [
        (1, "111-11-1111", "ann@x.org", Some("note of ann"), "30"),
        (2, "222-22-2222", "bob@x.org", Some("bob's note"), "41"),
        (3, "333-33-3333", "cy@x.org", None, "-7"),
        (4, "444-44-4444", "bob@x.org", Some("dee's note"), "30"),
    ] {
        env.assert_at_rest("people", "ssn", id, Some(ssn)).await;
        env.assert_at_rest("people", "email", id, Some(email)).await;
        env.assert_at_rest("people", "note", id, note).await;
        env.assert_at_rest("people", "age", id, Some(age)).await;
    }
    env.assert_at_rest("people", "ssn", 5, None).await;
    // Deterministic: equal plaintexts are stored equally (rows 2 and 4 share an email).
    assert_eq!(
        env.stored("people", "email", 2).await,
        env.stored("people", "email", 4).await
    );
    // Randomized: equal plaintexts are stored differently.
    assert_ne!(
        env.stored("people", "note", 1).await,
        env.stored("people", "note", 2).await
    );
    let got = ok(c, p, ALL, &[I(1)]).await;
    let want = rows(&[&[
        Some("1"),
        Some("ann"),
        Some("111-11-1111"),
        Some("ann@x.org"),
        Some("note of ann"),
        Some("30"),
    ]]);
    assert_eq!(got, want, "{p:?}: row 1 read back");
    let got = ok(c, p, ALL, &[I(3)]).await;
    let want = rows(&[&[
        Some("3"),
        Some("cy"),
        Some("333-33-3333"),
        Some("cy@x.org"),
        None,
        Some("-7"),
    ]]);
    assert_eq!(got, want, "{p:?}: row 3 read back");
}

/// The WHERE forms on deterministic columns, and IS NULL on a randomized one.
async fn predicates(c: &Client, p: Proto) {
    use V::{I, Null, T};
    let q = |sql: &'static str| sql;
    let cases: Vec<(&str, Vec<V<'_>>, Vec<i32>)> = vec![
        (
            q("SELECT id FROM people WHERE ssn = $1"),
            vec![T("222-22-2222")],
            vec![2],
        ),
        (
            q("SELECT id FROM people WHERE $1 = email ORDER BY id"),
            vec![T("bob@x.org")],
            vec![2, 4],
        ),
        (
            q("SELECT id FROM people WHERE age = $1 ORDER BY id"),
            vec![I(30)],
            vec![1, 4],
        ),
        (
            q("SELECT id FROM people WHERE age = $1"),
            vec![I(-7)],
            vec![3],
        ),
        (
            q("SELECT id FROM people WHERE ssn <> $1 ORDER BY id"),
            vec![T("111-11-1111")],
            vec![2, 3, 4],
        ),
        (
            q("SELECT id FROM people WHERE email IN ($1, $2) ORDER BY id"),
            vec![T("ann@x.org"), T("cy@x.org")],
            vec![1, 3],
        ),
        (
            q("SELECT id FROM people WHERE email NOT IN ($1) ORDER BY id"),
            vec![T("bob@x.org")],
            vec![1, 3],
        ),
        (
            q("SELECT id FROM people WHERE ssn IS NOT DISTINCT FROM $1"),
            vec![T("444-44-4444")],
            vec![4],
        ),
        (
            q("SELECT id FROM people WHERE ssn IS NOT DISTINCT FROM $1"),
            vec![Null],
            vec![5],
        ),
        (
            q("SELECT id FROM people WHERE age IS DISTINCT FROM $1 ORDER BY id"),
            vec![I(30)],
            vec![2, 3, 5],
        ),
        (
            q("SELECT id FROM people WHERE note IS NULL ORDER BY id"),
            vec![],
            vec![3, 5],
        ),
        (
            q("SELECT id FROM people WHERE note IS NOT NULL ORDER BY id"),
            vec![],
            vec![1, 2, 4],
        ),
        (
            q("SELECT id FROM people WHERE ssn = $1 AND email = $2"),
            vec![T("111-11-1111"), T("ann@x.org")],
            vec![1],
        ),
        (
            q("SELECT id FROM people WHERE ssn = $1 OR age = $2 ORDER BY id"),
            vec![T("111-11-1111"), I(-7)],
            vec![1, 3],
        ),
        (
            q("SELECT id FROM people WHERE ssn = $1"),
            vec![T("no such ssn")],
            vec![],
        ),
    ];
    for (sql, params, want) in cases {
        assert_eq!(
            ok(c, p, sql, &params).await,
            ids(&want),
            "{p:?}: {sql} {params:?}"
        );
    }
}

/// Sub-selects, CTEs, aliases, `SELECT *`, GROUP BY, DISTINCT, JOIN.
async fn reads(c: &Client, p: Proto) {
    use V::T;
    let got = ok(
        c,
        p,
        "SELECT name FROM people WHERE id IN (SELECT id FROM people WHERE ssn = $1)",
        &[T("333-33-3333")],
    )
    .await;
    assert_eq!(got, rows(&[&[Some("cy")]]), "{p:?}: sub-select in WHERE");
    let got = ok(
        c,
        p,
        "SELECT s.e, s.n FROM (SELECT email AS e, note n FROM people WHERE ssn = $1) AS s",
        &[T("222-22-2222")],
    )
    .await;
    assert_eq!(
        got,
        rows(&[&[Some("bob@x.org"), Some("bob's note")]]),
        "{p:?}: sub-select in FROM"
    );
    let got = ok(c, p, "WITH x AS (SELECT id, email, age FROM people WHERE email = $1) SELECT email, age FROM x ORDER BY id", &[T("bob@x.org")]).await;
    assert_eq!(
        got,
        rows(&[
            &[Some("bob@x.org"), Some("41")],
            &[Some("bob@x.org"), Some("30")]
        ]),
        "{p:?}: CTE"
    );
    let got = ok(
        c,
        p,
        "SELECT * FROM people WHERE ssn = $1",
        &[T("444-44-4444")],
    )
    .await;
    assert_eq!(
        got,
        rows(&[&[
            Some("4"),
            Some("dee"),
            Some("444-44-4444"),
            Some("bob@x.org"),
            Some("dee's note"),
            Some("30")
        ]]),
        "{p:?}: SELECT *"
    );
    let got = ok(
        c,
        p,
        "SELECT p.ssn AS s, p.note, p.age years FROM people AS p WHERE p.email = $1 AND p.id = 1",
        &[T("ann@x.org")],
    )
    .await;
    assert_eq!(
        got,
        rows(&[&[Some("111-11-1111"), Some("note of ann"), Some("30")]]),
        "{p:?}: aliases"
    );
    let mut got = ok(
        c,
        p,
        "SELECT email, count(*)::int4 FROM people WHERE email IS NOT NULL GROUP BY email",
        &[],
    )
    .await;
    got.sort();
    assert_eq!(
        got,
        rows(&[
            &[Some("ann@x.org"), Some("1")],
            &[Some("bob@x.org"), Some("2")],
            &[Some("cy@x.org"), Some("1")]
        ]),
        "{p:?}: GROUP BY"
    );
    let mut got = ok(
        c,
        p,
        "SELECT DISTINCT age FROM people WHERE age IS NOT NULL",
        &[],
    )
    .await;
    got.sort();
    assert_eq!(
        got,
        rows(&[&[Some("-7")], &[Some("30")], &[Some("41")]]),
        "{p:?}: DISTINCT"
    );
}

async fn joins(env: &EncEnv, c: &Client, p: Proto) {
    use V::{I, T};
    ok(c, p, "INSERT INTO accounts (id, email, ssn, memo, balance) VALUES ($1, $2, $3, $4, $5), ($6, $7, $8, $9, $10)",
        &[I(10), T("bob@x.org"), T("acct-ssn-1"), T("memo one"), I(100),
          I(11), T("ann@x.org"), T("acct-ssn-2"), T("memo two"), I(200)]).await;
    env.assert_at_rest("accounts", "email", 10, Some("bob@x.org"))
        .await;
    env.assert_at_rest("accounts", "memo", 11, Some("memo two"))
        .await;
    // Columns sharing a key store equal plaintexts equally.
    assert_eq!(
        env.stored("accounts", "email", 10).await,
        env.stored("people", "email", 2).await
    );
    let got = ok(c, p, "SELECT p.id, p.name, a.memo, a.email FROM people p JOIN accounts a ON a.email = p.email WHERE a.email = $1 ORDER BY p.id", &[T("bob@x.org")]).await;
    assert_eq!(
        got,
        rows(&[
            &[Some("2"), Some("bob"), Some("memo one"), Some("bob@x.org")],
            &[Some("4"), Some("dee"), Some("memo one"), Some("bob@x.org")]
        ]),
        "{p:?}: JOIN ON"
    );
    let got = ok(
        c,
        p,
        "SELECT a.balance FROM accounts a, people p WHERE p.email = a.email AND p.ssn = $1",
        &[T("111-11-1111")],
    )
    .await;
    assert_eq!(got, rows(&[&[Some("200")]]), "{p:?}: implicit join");
}

/// UPDATE SET, ON CONFLICT DO UPDATE, DELETE, RETURNING.
async fn writes(env: &EncEnv, c: &Client, p: Proto) {
    use V::{I, Null, T};
    let got = ok(
        c,
        p,
        "UPDATE people SET note = $1, age = $2 WHERE ssn = $3 RETURNING id, note, age",
        &[T("new note"), I(31), T("111-11-1111")],
    )
    .await;
    assert_eq!(
        got,
        rows(&[&[Some("1"), Some("new note"), Some("31")]]),
        "{p:?}: UPDATE RETURNING"
    );
    env.assert_at_rest("people", "note", 1, Some("new note"))
        .await;
    env.assert_at_rest("people", "age", 1, Some("31")).await;
    ok(
        c,
        p,
        "UPDATE people SET email = $1 WHERE id = $2",
        &[T("eve@x.org"), I(5)],
    )
    .await;
    env.assert_at_rest("people", "email", 5, Some("eve@x.org"))
        .await;
    ok(
        c,
        p,
        "UPDATE people SET note = $1 WHERE id = $2",
        &[Null, I(2)],
    )
    .await;
    env.assert_at_rest("people", "note", 2, None).await;
    // ON CONFLICT on the deterministic UNIQUE column: the existing row 3 is updated.
    let upsert = "INSERT INTO people (id, name, ssn, email, note, age) VALUES ($1, $2, $3, $4, $5, $6) \
                  ON CONFLICT (ssn) DO UPDATE SET email = EXCLUDED.email, note = $7 RETURNING id, email, note";
    let got = ok(
        c,
        p,
        upsert,
        &[
            I(99),
            T("x"),
            T("333-33-3333"),
            T("cy2@x.org"),
            T("ignored"),
            I(1),
            T("upserted"),
        ],
    )
    .await;
    assert_eq!(
        got,
        rows(&[&[Some("3"), Some("cy2@x.org"), Some("upserted")]]),
        "{p:?}: ON CONFLICT DO UPDATE"
    );
    env.assert_at_rest("people", "email", 3, Some("cy2@x.org"))
        .await;
    env.assert_at_rest("people", "note", 3, Some("upserted"))
        .await;
    let got = ok(
        c,
        p,
        "INSERT INTO people (id, name, ssn, age) VALUES ($1, $2, $3, $4) RETURNING ssn, age, note",
        &[I(6), T("fay"), T("666-66-6666"), I(66)],
    )
    .await;
    assert_eq!(
        got,
        rows(&[&[Some("666-66-6666"), Some("66"), None]]),
        "{p:?}: INSERT RETURNING"
    );
    env.assert_at_rest("people", "ssn", 6, Some("666-66-6666"))
        .await;
    let got = ok(
        c,
        p,
        "DELETE FROM people WHERE email = $1 RETURNING id, note",
        &[T("eve@x.org")],
    )
    .await;
    assert_eq!(got, rows(&[&[Some("5"), None]]), "{p:?}: DELETE RETURNING");
    ok(
        c,
        p,
        "DELETE FROM people WHERE ssn = $1",
        &[T("666-66-6666")],
    )
    .await;
    let left = env
        .direct()
        .await
        .query_one("SELECT array_agg(id ORDER BY id) FROM people", &[])
        .await
        .unwrap();
    assert_eq!(
        left.get::<_, Vec<i32>>(0),
        [1, 2, 3, 4],
        "{p:?}: DELETE WHERE"
    );
}

async fn statement_forms(p: Proto) {
    let env = EncEnv::start().await;
    let c = env.app().await;
    c.simple_query("SET TimeZone = 'UTC'").await.unwrap();
    inserts(&env, &c, p).await;
    predicates(&c, p).await;
    reads(&c, p).await;
    joins(&env, &c, p).await;
    writes(&env, &c, p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn statement_forms_simple_protocol() {
    statement_forms(Proto::Simple).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn statement_forms_extended_protocol() {
    statement_forms(Proto::Extended).await;
}

/// Several statements in one simple Query string, and named prepared statements reused.
#[tokio::test(flavor = "multi_thread")]
async fn multi_statement_and_prepared_reuse() {
    let env = EncEnv::start().await;
    let c = env.app().await;
    c.simple_query(
        "INSERT INTO people (id, ssn, note) VALUES (1, 'm-1', 'first'); \
         INSERT INTO people (id, ssn, note) VALUES (2, 'm-2', 'second'); \
         UPDATE people SET note = 'third' WHERE ssn = 'm-2'",
    )
    .await
    .unwrap();
    env.assert_at_rest("people", "note", 1, Some("first")).await;
    env.assert_at_rest("people", "note", 2, Some("third")).await;
    let ins = c
        .prepare("INSERT INTO people (id, ssn, note) VALUES ($1, $2, $3)")
        .await
        .unwrap();
    let sel = c
        .prepare("SELECT note FROM people WHERE ssn = $1")
        .await
        .unwrap();
    for i in 3..8 {
        c.execute(&ins, &[&i, &format!("m-{i}"), &format!("note {i}")])
            .await
            .unwrap();
    }
    for i in 1..8 {
        let row = c.query_one(&sel, &[&format!("m-{i}")]).await.unwrap();
        let want = match i {
            1 => "first".to_string(),
            2 => "third".to_string(),
            _ => format!("note {i}"),
        };
        assert_eq!(row.get::<_, String>(0), want);
    }
    env.assert_at_rest("people", "note", 7, Some("note 7"))
        .await;
    assert_eq!(
        sel.params(),
        [tokio_postgres::types::Type::TEXT],
        "ParameterDescription shows the logical type"
    );
    assert_eq!(
        *sel.columns()[0].type_(),
        tokio_postgres::types::Type::TEXT,
        "RowDescription shows the logical type"
    );
}

/// `-5::int4` parses as `-(5::int4)`: a sign on a cast value still belongs to the value
/// (issue 4 item 1: drivers write literals that way) and must be encrypted, not refused.
#[tokio::test(flavor = "multi_thread")]
async fn sign_before_a_cast() {
    let env = EncEnv::start().await;
    let c = env.app().await;
    let sql = "INSERT INTO people (id, ssn, age) VALUES (1, 'neg', -5::int4), (2, 'neg2', -6)";
    ok(&c, Proto::Simple, sql, &[]).await;
    env.assert_at_rest("people", "age", 1, Some("-5")).await;
    env.assert_at_rest("people", "age", 2, Some("-6")).await;
    let got = ok(
        &c,
        Proto::Simple,
        "SELECT id FROM people WHERE age = -5::int4",
        &[],
    )
    .await;
    assert_eq!(got, ids(&[1]));
}

/// A portal read in slices (Execute with a row limit → PortalSuspended) decrypts every slice.
#[tokio::test(flavor = "multi_thread")]
async fn portal_with_row_limit_decrypts_every_slice() {
    let env = EncEnv::start().await;
    let mut c = env.app().await;
    let ins = c
        .prepare("INSERT INTO people (id, ssn, note) VALUES ($1, $2, $3)")
        .await
        .unwrap();
    for i in 1..=7 {
        c.execute(&ins, &[&i, &format!("s-{i}"), &format!("n-{i}")])
            .await
            .unwrap();
    }
    env.assert_at_rest("people", "note", 7, Some("n-7")).await;
    let tx = c.transaction().await.unwrap();
    let stmt = tx
        .prepare("SELECT id, ssn, note FROM people WHERE note IS NOT NULL ORDER BY id")
        .await
        .unwrap();
    let portal = tx.bind(&stmt, &[]).await.unwrap();
    let mut seen = Vec::new();
    loop {
        let rows = tx.query_portal(&portal, 3).await.unwrap();
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            let id: i32 = r.get(0);
            assert_eq!(r.get::<_, String>(1), format!("s-{id}"));
            assert_eq!(r.get::<_, String>(2), format!("n-{id}"));
            seen.push(id);
        }
    }
    tx.commit().await.unwrap();
    assert_eq!(seen, (1..=7).collect::<Vec<_>>());
}

/// SQL `DEALLOCATE name` forgets exactly that statement: `DEALLOCATE s10` used to forget `s1`
/// as well (a substring test), and any text merely containing `deallocate` and `all` forgot
/// every statement, so the next Bind of an encrypting statement was refused.
#[tokio::test(flavor = "multi_thread")]
async fn deallocate_forgets_only_the_statement_it_names() {
    let env = EncEnv::start().await;
    let c = env.app().await;
    let ins = c
        .prepare("INSERT INTO people (id, ssn) VALUES ($1, $2)")
        .await
        .unwrap();
    let row = c
        .query_one(
            "SELECT name FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO %people (id, ssn)%'",
            &[],
        )
        .await
        .unwrap();
    let name: String = row.get(0);
    // A statement whose name extends this one's: the server has none, and says so.
    let e = c
        .batch_execute(&format!("DEALLOCATE \"{name}0\""))
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_SQL_STATEMENT_NAME),
        "{e:?}"
    );
    c.batch_execute("SELECT 'deallocate them all' AS note")
        .await
        .unwrap();
    c.execute(&ins, &[&100i32, &"s-100"]).await.unwrap();
    env.assert_at_rest("people", "ssn", 100, Some("s-100"))
        .await;
    // DEALLOCATE of the statement itself: gone here and on the server.
    c.batch_execute(&format!("DEALLOCATE \"{name}\""))
        .await
        .unwrap();
    assert!(c.execute(&ins, &[&200i32, &"s-200"]).await.is_err());
    assert_eq!(env.row_count("people").await, 1);
}
