//! `listen.max_connections`, `listen.max_message_bytes` and the shutdown deadline, against a
//! real PostgreSQL through real TLS: each limit answers as PostgreSQL would (53300, a FATAL
//! naming the setting, 57P01) and leaves the proxy serving everyone else.

use std::time::Duration;

use pgcloak::devdb::{APP_PASSWORD, APP_USER};

use crate::harness::{HANG, ProxyOptions, TestEnv};
use crate::harness::{describe, must_fail, sqlstate, within};
use crate::wire::Raw;

fn listen(toml: &str) -> ProxyOptions {
    ProxyOptions {
        listen_toml: Some(toml.to_owned()),
        ..ProxyOptions::default()
    }
}

/// Connects until it works (a closed session frees its slot when its task ends).
async fn connect_when_free(env: &TestEnv) -> tokio_postgres::Client {
    within(HANG, async {
        loop {
            match env
                .proxy_client(APP_USER, APP_PASSWORD, env.db.database())
                .await
            {
                Ok(c) => return c,
                Err(e) if sqlstate(&e).as_deref() == Some("53300") => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("unexpected login error: {}", describe(&e)),
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_max_connections_get_53300_and_a_freed_slot_is_reused() {
    let env = TestEnv::start_with(listen("max_connections = 2")).await;
    let a = env.app().await;
    let b = env.app().await;
    let e = must_fail(
        env.proxy_client(APP_USER, APP_PASSWORD, env.db.database())
            .await,
    );
    assert_eq!(sqlstate(&e).as_deref(), Some("53300"), "{}", describe(&e));
    assert!(
        describe(&e).contains("too many clients"),
        "PostgreSQL's words: {}",
        describe(&e)
    );
    // The two admitted sessions are unaffected.
    for c in [&a, &b] {
        let n: i32 = c.query_one("select 1", &[]).await.unwrap().get(0);
        assert_eq!(n, 1);
    }
    drop(a);
    let c = connect_when_free(&env).await;
    let n: i32 = c.query_one("select 2", &[]).await.unwrap().get(0);
    assert_eq!(
        n, 2,
        "the slot of a closed session is given to the next client"
    );
    let e = must_fail(
        env.proxy_client(APP_USER, APP_PASSWORD, env.db.database())
            .await,
    );
    assert_eq!(sqlstate(&e).as_deref(), Some("53300"), "still two at most");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_over_max_message_bytes_closes_only_its_session() {
    let env = TestEnv::start_with(listen("max_message_bytes = 65536")).await;
    let other = env.app().await;
    // A raw client, to see exactly what goes over the wire (tokio-postgres, still writing the
    // message when the FATAL and the close arrive, sometimes reports only "connection closed").
    let params = [("user", APP_USER), ("database", env.db.database())];
    let mut ok = Raw::login(env.proxy_addr(), &env.db, &params, APP_PASSWORD)
        .await
        .expect("login");
    let fits = format!("select length('{}')", "x".repeat(60_000));
    let (rows, err) = ok.query(&fits).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        rows,
        [Some("60000".to_owned())],
        "a message under the limit passes"
    );
    ok.send_query(&format!("select length('{}')", "y".repeat(100_000)))
        .await;
    let fatal = ok
        .next_msg()
        .await
        .expect("an ErrorResponse before the close");
    assert_eq!(fatal.tag, b'E', "{fatal:?}");
    assert_eq!(fatal.sqlstate().as_deref(), Some("08P01"), "{fatal:?}");
    let fields = fatal.fields();
    assert!(
        fields.iter().any(|(k, v)| *k == b'S' && v == "FATAL"),
        "{fields:?}"
    );
    assert!(
        fields
            .iter()
            .any(|(k, v)| *k == b'H' && v.contains("listen.max_message_bytes")),
        "the client is told which setting: {fields:?}"
    );
    assert!(ok.next_msg().await.is_none(), "then the session is closed");
    // The process and every other session live on.
    let n: i32 = other.query_one("select 3", &[]).await.unwrap().get(0);
    assert_eq!(n, 3);
    let fresh = env.app().await;
    let n: i32 = fresh.query_one("select 4", &[]).await.unwrap().get(0);
    assert_eq!(n, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_open_at_the_shutdown_timeout_get_57p01_before_the_close() {
    let mut env = TestEnv::start_with(ProxyOptions {
        shutdown_timeout_secs: Some(1),
        ..ProxyOptions::default()
    })
    .await;
    let cfg = env.proxy_pg_config(APP_USER, APP_PASSWORD, env.db.database());
    let (client, conn) = cfg.connect(env.tls()).await.expect("proxy login");
    let conn = tokio::spawn(conn);
    // The table in its own transaction: only the insert is left unfinished.
    client
        .batch_execute("create table dl(id int)")
        .await
        .unwrap();
    client
        .batch_execute("begin; insert into dl values (1)")
        .await
        .unwrap();
    env.begin_shutdown();
    env.wait_stopped(Duration::from_secs(30)).await.unwrap();
    let ended = within(HANG, conn).await.expect("connection task");
    let e = ended.expect_err("the server ended the session");
    assert_eq!(sqlstate(&e).as_deref(), Some("57P01"), "{}", describe(&e));
    assert!(
        describe(&e).contains("terminating connection due to administrator command"),
        "{}",
        describe(&e)
    );
    let d = env.direct_app().await;
    let n: i64 = d
        .query_one("select count(*) from dl", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "the unfinished transaction is rolled back");
}
