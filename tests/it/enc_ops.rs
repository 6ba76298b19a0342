//! Operational behaviour of encrypted traffic: UNIQUE on a deterministic column (`23505`),
//! pipelined inserts, `keys rotate` while sessions are open, and PostgreSQL restarting under
//! an open session.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use pgcloak::control::{keys, reencrypt};

use crate::enc_env::{EncEnv, Proto, V, assert_error, assert_usable, ids, key_version, ok, run};
use crate::harness::{HANG, describe, within};

#[tokio::test(flavor = "multi_thread")]
async fn unique_violation_on_a_deterministic_column() {
    let env = EncEnv::start().await;
    let c = env.app().await;
    for (p, first, second) in [(Proto::Simple, 1, 2), (Proto::Extended, 3, 4)] {
        let ssn = format!("dup-{p:?}");
        let sql = "INSERT INTO people (id, ssn) VALUES ($1, $2)";
        ok(&c, p, sql, &[V::I(first), V::T(&ssn)]).await;
        let res = run(&c, p, sql, &[V::I(second), V::T(&ssn)]).await;
        let err = res.expect_err("duplicate deterministic value must violate UNIQUE");
        assert_eq!(
            err.as_db_error().map(|d| d.code().code()),
            Some("23505"),
            "{p:?}: {}",
            describe(&err)
        );
        assert_usable(&c, "after 23505").await;
        env.assert_at_rest("people", "ssn", first, Some(&ssn)).await;
        assert_eq!(env.stored("people", "ssn", second).await, None);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_inserts_and_selects() {
    let env = EncEnv::start().await;
    let c = env.app().await;
    let ins = c
        .prepare("INSERT INTO people (id, ssn, note, age) VALUES ($1, $2, $3, $4)")
        .await
        .unwrap();
    let values: Vec<(i32, String, String)> = (1..=200)
        .map(|i| (i, format!("p-{i}"), format!("note {i}")))
        .collect();
    let (c, ins) = (&c, &ins);
    let futs = values
        .iter()
        .map(|(i, s, n)| async move { c.execute(ins, &[i, s, n, i]).await });
    let done = within(HANG, join_all(futs)).await;
    for (r, (i, _, _)) in done.iter().zip(&values) {
        assert_eq!(
            *r.as_ref()
                .unwrap_or_else(|e| panic!("insert {i}: {}", describe(e))),
            1
        );
    }
    for i in [1, 77, 200] {
        env.assert_at_rest("people", "ssn", i, Some(&format!("p-{i}")))
            .await;
        env.assert_at_rest("people", "note", i, Some(&format!("note {i}")))
            .await;
        env.assert_at_rest("people", "age", i, Some(&i.to_string()))
            .await;
    }
    let sel = c
        .prepare("SELECT id, note, age FROM people WHERE ssn = $1")
        .await
        .unwrap();
    let keys: Vec<String> = (1..=200).map(|i| format!("p-{i}")).collect();
    let sel = &sel;
    let futs = keys
        .iter()
        .map(|k| async move { c.query_one(sel, &[k]).await });
    let rows = within(HANG, join_all(futs)).await;
    for (i, row) in (1..=200).zip(rows) {
        let row = row.unwrap_or_else(|e| panic!("select {i}: {}", describe(&e)));
        assert_eq!(row.get::<_, i32>(0), i);
        assert_eq!(row.get::<_, String>(1), format!("note {i}"));
        assert_eq!(row.get::<_, i32>(2), i);
    }
}

/// Writes a version-1 row (id 1), rotates every key while `c` stays open, and writes rows
/// until one carries version 2 (the proxy notices within its polling interval, no restart).
/// Returns the id of that row.
pub(crate) async fn rotate_in_open_session(env: &EncEnv, c: &tokio_postgres::Client) -> i32 {
    let sql = "INSERT INTO people (id, ssn, note) VALUES ($1, $2, $3)";
    ok(
        c,
        Proto::Extended,
        sql,
        &[V::I(1), V::T("old-ssn"), V::T("old note")],
    )
    .await;
    let old = env
        .assert_at_rest("people", "ssn", 1, Some("old-ssn"))
        .await
        .unwrap();
    assert_eq!(key_version(&old), 1);
    let rotated = keys::rotate(&mut env.control().await, &env.rules, &env.master, None)
        .await
        .unwrap();
    assert!(
        rotated
            .iter()
            .any(|(k, v)| k == "public.people.ssn" && *v == 2),
        "{rotated:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut id = 100;
    loop {
        id += 1;
        let ssn = format!("new-{id}");
        ok(
            c,
            Proto::Simple,
            sql,
            &[V::I(id), V::T(&ssn), V::T("new note")],
        )
        .await;
        let stored = env
            .assert_at_rest("people", "ssn", id, Some(&ssn))
            .await
            .unwrap();
        let v = key_version(&stored);
        if v == 2 {
            return id;
        }
        assert!(
            Instant::now() < deadline,
            "new writes still use key version {v} 30 s after rotation"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `keys rotate` while a session is open: new writes get version 2 (read from the envelope),
/// in both columns; version-1 and version-2 rows decrypt, in this and a new session.
#[tokio::test(flavor = "multi_thread")]
async fn keys_rotate_while_sessions_are_open() {
    let env = EncEnv::start().await;
    let c = env.app().await;
    let id = rotate_in_open_session(&env, &c).await;
    let note = env.stored("people", "note", id).await.unwrap();
    assert_eq!(key_version(&note), 2, "randomized column rotated too");
    let c2 = env.app().await;
    for (c, p) in [
        (&c, Proto::Simple),
        (&c, Proto::Extended),
        (&c2, Proto::Extended),
    ] {
        let sql = "SELECT id, ssn, note FROM people WHERE id IN ($1, $2) ORDER BY id";
        let got = ok(c, p, sql, &[V::I(1), V::I(id)]).await;
        let want = vec![
            vec![
                Some("1".into()),
                Some("old-ssn".into()),
                Some("old note".into()),
            ],
            vec![
                Some(id.to_string()),
                Some(format!("new-{id}")),
                Some("new note".into()),
            ],
        ];
        assert_eq!(got, want, "{p:?}: v1 and v2 rows decrypt");
    }
}

/// After `keys rotate`, `=`, IN, NOT IN and IS NOT DISTINCT FROM on a deterministic column find
/// rows of both key versions, in both protocols and through a statement prepared before the
/// rotation; a comparison pgcloak cannot rewrite is refused rather than silently missing rows.
#[tokio::test(flavor = "multi_thread")]
async fn keys_rotate_keeps_deterministic_equality() {
    let env = EncEnv::start().await;
    let c = env.app().await;
    let early = c
        .prepare("SELECT id FROM people WHERE ssn = $1")
        .await
        .unwrap();
    let id = rotate_in_open_session(&env, &c).await;
    let new = format!("new-{id}");
    let by_early = |v: &str| {
        let (c, early, v) = (&c, &early, v.to_owned());
        async move {
            let rows = c.query(early, &[&v]).await.unwrap();
            rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        by_early("old-ssn").await,
        vec![1],
        "prepared before rotation: v1 row"
    );
    assert_eq!(
        by_early(&new).await,
        vec![id],
        "prepared before rotation: v2 row"
    );
    let both = [V::T("old-ssn"), V::T(&new)];
    for p in [Proto::Simple, Proto::Extended] {
        let sql = "SELECT id FROM people WHERE ssn = $1";
        assert_eq!(
            ok(&c, p, sql, &both[1..]).await,
            ids(&[id]),
            "{p:?}: v2 row"
        );
        assert_eq!(ok(&c, p, sql, &both[..1]).await, ids(&[1]), "{p:?}: v1 row");
        let sql = "SELECT id FROM people WHERE $1 = ssn";
        assert_eq!(
            ok(&c, p, sql, &both[..1]).await,
            ids(&[1]),
            "{p:?}: value = col"
        );
        let sql = "SELECT id FROM people WHERE ssn IN ($1, $2) ORDER BY id";
        assert_eq!(ok(&c, p, sql, &both).await, ids(&[1, id]), "{p:?}: IN");
        let sql = "SELECT id FROM people WHERE ssn IS NOT DISTINCT FROM $1";
        assert_eq!(
            ok(&c, p, sql, &both[..1]).await,
            ids(&[1]),
            "{p:?}: NOT DISTINCT"
        );
        let sql = "SELECT id FROM people WHERE ssn NOT IN ($1, $2) AND ssn <> $1 ORDER BY id";
        let rest = ok(&c, p, sql, &both).await;
        assert!(
            !rest.contains(&vec![Some("1".to_owned())])
                && !rest.contains(&vec![Some(id.to_string())]),
            "{p:?}: NOT IN / <> must exclude both versions: {rest:?}"
        );
        let sql = "UPDATE people SET note = $2 WHERE ssn = $1";
        let upd = [V::T("old-ssn"), V::T("updated")];
        ok(&c, p, sql, &upd).await;
        env.assert_at_rest("people", "note", 1, Some("updated"))
            .await;
        // Not rewritable (the value comes from a sub-select): refused, never a silent miss.
        let sql = "SELECT id FROM people WHERE ssn = (SELECT $1::text)";
        let res = run(&c, p, sql, &both[..1]).await;
        assert_error(
            res,
            "0A000",
            &["public.people.ssn"],
            "sub-select after rotation",
        );
        assert_usable(&c, "after a refused comparison").await;
    }
    // Re-encryption (what `keys rotate` runs for deterministic keys) moves the v1 row to v2:
    // UNIQUE holds across the rotation again, and equality still finds it.
    let ring = env.keyring().await;
    let reports = reencrypt::reencrypt(&mut env.control().await, &env.rules, &ring, None, true)
        .await
        .unwrap();
    let ssn = reports
        .iter()
        .find(|r| r.column == "public.people.ssn")
        .expect("ssn re-encrypted");
    // Row 1, and rows written in the seconds before the proxy loaded v2.
    assert!(ssn.rewritten >= 1, "{reports:?}");
    assert_eq!((ssn.unreadable, ssn.conflicts), (0, 0));
    let left: i64 = env
        .direct()
        .await
        .query_one(
            "SELECT count(*) FROM people WHERE substring(ssn from 3 for 4) <> '\\x00000002'::bytea",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "every ssn on key version 2");
    let sql = "INSERT INTO people (id, ssn) VALUES ($1, $2)";
    for p in [Proto::Simple, Proto::Extended] {
        let res = run(&c, p, sql, &[V::I(999), V::T("old-ssn")]).await;
        assert_error(
            res,
            "23505",
            &["people"],
            "the v1 value again after re-encryption",
        );
    }
    assert_eq!(by_early("old-ssn").await, vec![1]);
}

/// PostgreSQL restarts under an open session: that session gets an error (not a hang, not
/// a wrong answer); the next session works and decrypts.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_restart_mid_session() {
    // Its own cluster: it restarts the server.
    let env = EncEnv::start_own().await;
    let c = env.app().await;
    ok(
        &c,
        Proto::Simple,
        "INSERT INTO people (id, ssn, note) VALUES (1, 'r-1', 'before restart')",
        &[],
    )
    .await;
    env.env.db.restart().await.expect("pg restart");
    let res = within(HANG, c.simple_query("SELECT note FROM people WHERE id = 1")).await;
    let err = res.expect_err("the session's server connection is gone");
    let text = describe(&err);
    assert!(!text.is_empty());
    if let Some(db) = err.as_db_error() {
        // PostgreSQL's 57P01 (admin_shutdown) relayed, or pgcloak's own connection error.
        assert!(
            ["57P01", "08006", "08003", "08000"].contains(&db.code().code()),
            "{text}"
        );
    }
    let res = within(HANG, c.simple_query("SELECT 1")).await;
    assert!(
        res.is_err(),
        "the broken session must not come back silently"
    );
    // A new session: login (control link reconnects), decrypt, encrypt.
    let deadline = Instant::now() + Duration::from_secs(20);
    let c2 = loop {
        match env
            .env
            .proxy_client(
                pgcloak::devdb::APP_USER,
                pgcloak::devdb::APP_PASSWORD,
                pgcloak::devdb::APP_DATABASE,
            )
            .await
        {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                eprintln!("retrying login after restart: {}", describe(&e));
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("no session after restart: {}", describe(&e)),
        }
    };
    let got = ok(
        &c2,
        Proto::Extended,
        "SELECT note FROM people WHERE ssn = $1",
        &[V::T("r-1")],
    )
    .await;
    assert_eq!(got, vec![vec![Some("before restart".into())]]);
    ok(
        &c2,
        Proto::Extended,
        "INSERT INTO people (id, ssn, note) VALUES ($1, $2, $3)",
        &[V::I(2), V::T("r-2"), V::T("after")],
    )
    .await;
    env.assert_at_rest("people", "note", 2, Some("after")).await;
    assert_error(
        run(
            &c2,
            Proto::Simple,
            "SELECT id FROM people WHERE note = 'after'",
            &[],
        )
        .await,
        "0A000",
        &["people.note"],
        "refusal after restart",
    );
}
