//! A proxy that planned a statement before a migration's switch: `decrypt` refuses the
//! envelopes such a statement still sends into the column that holds plaintext again (a
//! prepared statement keeps its plan, so no catalog reload can fix it), and the switch itself
//! tells every proxy (`NOTIFY pgcloak, 'catalog'`, delivered when it commits). While a column
//! is pending, `/metrics` counts it and `/readyz` names it (still ready).

use std::time::Duration;

use pgcloak::control::migrate::{Direction, Options, Outcome};
use pgcloak::devdb::{APP_DATABASE, DevDb, DevDbOptions};
use tokio_postgres::Client;

use crate::harness::start_encrypted;
use crate::migrate::{column_type, run};
use crate::ops_util::{free_addr, get, sample, start_with_extra, until};

/// `email` and `nick` of row `id` read through the proxy, once it decrypts them (its catalog
/// has the encrypted columns); `None` after 20 s.
async fn read_through(app: &Client, id: i32) -> Option<(String, String)> {
    for _ in 0..200 {
        let r = app
            .query_one("SELECT email, nick FROM acct WHERE id = $1", &[&id])
            .await;
        if let Ok(Some(v)) = r.map(|r| Some((r.try_get(0).ok()?, r.try_get(1).ok()?))) {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn decrypt_refuses_envelopes_from_a_statement_planned_before_the_switch() {
    let db = DevDb::start(DevDbOptions::default()).await.unwrap();
    let su = db.superuser_client(APP_DATABASE).await.unwrap();
    su.batch_execute(
        "CREATE TABLE acct (id int PRIMARY KEY, email text, nick varchar(200), n int); \
         GRANT ALL ON acct TO app; \
         INSERT INTO acct SELECT i, 'e' || i, 'k' || i, i FROM generate_series(1, 50) i",
    )
    .await
    .unwrap();
    let rules_text = "[tables.acct]\nemail = { type = \"text\", mode = \"deterministic\" }\n\
                      nick = { type = \"varchar\", mode = \"randomized\" }\n";
    let (env, rules, master) = start_encrypted(db, rules_text).await;
    let opts = Options::default();
    for c in ["public.acct.email", "public.acct.nick"] {
        let out = run(&env.db, &rules, &master, c, Direction::Encrypt, &opts)
            .await
            .unwrap();
        assert!(matches!(out, Outcome::Done(_)), "{c}: {out:?}");
    }
    let (app, mut notes) = env.proxy_client_with_notifications().await;
    assert_eq!(
        read_through(&app, 1).await,
        Some(("e1".into(), "k1".into()))
    );
    app.batch_execute("LISTEN pgcloak").await.unwrap();
    // Planned while the columns are encrypted: the proxy encrypts their parameters.
    let insert = app
        .prepare("INSERT INTO acct (id, email, nick, n) VALUES ($1, $2, $3, 0)")
        .await
        .unwrap();
    let update = app
        .prepare("UPDATE acct SET email = $1, nick = $2 WHERE n = $3")
        .await
        .unwrap();
    app.execute(&insert, &[&100i32, &"before", &"before"])
        .await
        .expect("insert while encrypted");

    for c in ["public.acct.email", "public.acct.nick"] {
        let out = run(&env.db, &rules, &master, c, Direction::Decrypt, &opts)
            .await
            .unwrap();
        assert!(matches!(out, Outcome::Done(_)), "{c}: {out:?}");
        // The switch told the proxies, and it had committed when they heard it.
        let n = tokio::time::timeout(Duration::from_secs(30), notes.recv())
            .await
            .expect("a notification after the switch")
            .expect("listening connection open");
        assert_eq!((n.channel(), n.payload()), ("pgcloak", "catalog"));
    }
    assert_eq!(column_type(&su, "acct", "email").await, "text");
    assert_eq!(
        column_type(&su, "acct", "nick").await,
        "character varying(200)"
    );

    // The statements planned before the switch still send envelopes: refused, nothing stored.
    let e = app
        .execute(&insert, &[&101i32, &"stale", &"stale"])
        .await
        .expect_err("a stale INSERT stored an envelope as text");
    let msg = e
        .as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_default();
    assert_eq!(e.code().map(|c| c.code()), Some("0A000"), "{e}");
    assert!(msg.contains("stores plaintext again"), "{msg}");
    let e = app
        .execute(&update, &[&"stale", &"stale", &7i32])
        .await
        .expect_err("a stale UPDATE stored an envelope as text");
    assert_eq!(e.code().map(|c| c.code()), Some("0A000"), "{e}");
    let rows = su
        .query("SELECT id, email, nick FROM acct ORDER BY id", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 51, "the refused INSERT stored nothing");
    for r in &rows {
        let (id, email, nick): (i32, String, String) = (r.get(0), r.get(1), r.get(2));
        let want = if id == 100 {
            ("before".to_owned(), "before".to_owned())
        } else {
            (format!("e{id}"), format!("k{id}"))
        };
        assert_eq!((email, nick), want, "row {id}");
    }
    // Plaintext that merely starts like one is still accepted.
    su.execute(
        "INSERT INTO acct (id, email, nick, n) VALUES (200, '\\x0102', '\\x0101zz', 0)",
        &[],
    )
    .await
    .expect("short envelope-like text");
    // A statement the proxy plans once it has reloaded passes plaintext through.
    let mut stored = Err(String::new());
    for _ in 0..200 {
        stored = app
            .execute(
                "INSERT INTO acct (id, email, nick, n) VALUES ($1, $2, $3, 0)",
                &[&102i32, &"fresh", &"fresh"],
            )
            .await
            .map_err(|e| e.to_string());
        if stored.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stored.expect("a fresh statement after the switch");
    let fresh: (String, String) = su
        .query_one("SELECT email, nick FROM acct WHERE id = 102", &[])
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(fresh, ("fresh".to_owned(), "fresh".to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_columns_are_a_metric_and_readyz_detail_until_migrated() {
    let db = DevDb::start(DevDbOptions::default()).await.unwrap();
    let su = db.superuser_client(APP_DATABASE).await.unwrap();
    su.batch_execute(
        "CREATE TABLE pend (id int PRIMARY KEY, a text, b int, c bytea); GRANT ALL ON pend TO app; \
         INSERT INTO pend VALUES (1, 'x', 2, NULL)",
    )
    .await
    .unwrap();
    let rules_text = "[tables.pend]\na = { type = \"text\", mode = \"deterministic\" }\n\
                      b = { type = \"int4\", mode = \"randomized\" }\n\
                      c = { type = \"text\", mode = \"randomized\" }\n";
    let maddr = free_addr();
    let extra = format!("\n[metrics]\naddress = \"{maddr}\"\n");
    let (env, key_text) = start_with_extra(db, rules_text, extra).await;
    let master = pgcloak::crypto::MasterKey::from_base64(&key_text, "test").unwrap();
    let text = crate::harness::with_database(rules_text, env.db.database());
    let file =
        pgcloak::config::parse_rules_file(&text, std::path::Path::new("rules.toml")).unwrap();
    let rules = pgcloak::config::Rules::from_columns(file.columns).unwrap();
    let pending = |m: &str| sample(m, "pgcloak_pending_columns", &[("database", "app")]);
    until("the metrics endpoint listens", || async {
        tokio::net::TcpStream::connect(maddr).await.is_ok()
    })
    .await;
    let (_, m) = get(maddr, "/metrics").await;
    assert_eq!(pending(&m), Some(2.0), "{m}");
    let (status, body) = get(maddr, "/readyz").await;
    assert_eq!(
        status, 200,
        "pending columns do not make it unready: {body}"
    );
    assert!(body.starts_with("ready, degraded:"), "{body}");
    for c in ["public.pend.a", "public.pend.b"] {
        assert!(
            body.contains(&format!("column {c} is pending")),
            "{c}: {body}"
        );
    }
    assert!(!body.contains("public.pend.c"), "c is bytea: {body}");
    let out = run(
        &env.db,
        &rules,
        &master,
        "public.pend.a",
        Direction::Encrypt,
        &Options::default(),
    )
    .await
    .unwrap();
    assert!(matches!(out, Outcome::Done(_)), "{out:?}");
    until("one pending column left", || async {
        pending(&get(maddr, "/metrics").await.1) == Some(1.0)
    })
    .await;
    let (status, body) = get(maddr, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("column public.pend.b is pending") && !body.contains("public.pend.a"),
        "{body}"
    );
}
