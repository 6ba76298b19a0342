//! The proxy under stress and failure: query cancel, garbage on the listening port, a
//! restarted PostgreSQL, and graceful shutdown.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{ProxyOptions, TestEnv, describe, sqlstate, wait_running, within};

#[tokio::test(flavor = "multi_thread")]
async fn cancel_of_pg_sleep_gives_57014() {
    let env = TestEnv::start().await;
    let c = env.app().await;
    let token = c.cancel_token();
    let t0 = Instant::now();
    let sleeper = tokio::spawn(async move {
        let res = c.simple_query("select pg_sleep(30)").await;
        (res, c)
    });
    // Cancel once the statement runs upstream.
    let d = env.direct_app().await;
    wait_running(&d, "select pg_sleep(30)").await;
    within(Duration::from_secs(10), token.cancel_query(env.tls()))
        .await
        .unwrap_or_else(|e| panic!("cancel request failed: {}", describe(&e)));
    let (res, c) = within(Duration::from_secs(20), sleeper).await.unwrap();
    let err = res.expect_err("pg_sleep(30) must be cancelled");
    assert_eq!(
        sqlstate(&err).as_deref(),
        Some("57014"),
        "{}",
        describe(&err)
    );
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "cancel took {:?}",
        t0.elapsed()
    );
    // The session survives its cancelled statement.
    assert_eq!(
        c.query_one("select 3", &[]).await.unwrap().get::<_, i32>(0),
        3
    );
}

/// Sends `bytes` on a fresh connection, then waits (bounded) for the proxy to close it.
async fn send_and_close(env: &TestEnv, bytes: &[u8], half_close: bool) {
    let mut s = TcpStream::connect(env.proxy_addr()).await.unwrap();
    let _ = s.write_all(bytes).await;
    if half_close {
        let _ = s.shutdown().await;
    }
    let mut sink = vec![0; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(n) = s.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_on_the_listening_port_leaves_the_proxy_serving() {
    let env = TestEnv::start().await;
    let open = env.app().await;
    for seed in 1..=5u64 {
        send_and_close(&env, &pseudo_random(4096, seed), true).await;
    }
    // An oversized startup length, a too-short one, and half a StartupMessage then close.
    send_and_close(&env, &[0xff, 0xff, 0xff, 0xf0, 0, 3, 0, 0], true).await;
    send_and_close(&env, &[0, 0, 0, 2], true).await;
    send_and_close(&env, &[0, 0, 0, 100, 0, 3, 0, 0, b'u', b's'], true).await;
    // SSLRequest accepted, then garbage instead of a TLS ClientHello.
    let mut ssl = vec![0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    ssl.extend(pseudo_random(2000, 99));
    send_and_close(&env, &ssl, true).await;
    // Direct-TLS first byte (0x16) followed by junk; and a connection that just goes away.
    let mut direct = vec![0x16, 3, 1, 0xff, 0xff];
    direct.extend(pseudo_random(100, 7));
    send_and_close(&env, &direct, true).await;
    drop(TcpStream::connect(env.proxy_addr()).await.unwrap());
    // Many garbage connections at once.
    let env_ref = &env;
    futures_util::future::join_all((0..50u64).map(|i| async move {
        send_and_close(env_ref, &pseudo_random(300, i + 100), false).await
    }))
    .await;
    assert!(!env.proxy_finished(), "the proxy task must still run");
    // The existing session and a new one both still work.
    assert_eq!(
        open.query_one("select 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    let c = env.app().await;
    assert_eq!(
        c.query_one("select 2", &[]).await.unwrap().get::<_, i32>(0),
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_restart_then_next_session_works() {
    // Its own cluster: it restarts the server.
    let env = TestEnv::own(ProxyOptions::default()).await;
    let before = env.app().await;
    assert_eq!(
        before
            .query_one("select 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    env.db.restart().await.unwrap();
    // The old session's upstream is gone: it must fail, not hang.
    let old = within(Duration::from_secs(20), before.query_one("select 1", &[])).await;
    assert!(
        old.is_err(),
        "a session whose backend died must see an error"
    );
    let after = env.app().await;
    assert_eq!(
        after
            .query_one("select 2", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2
    );
    // A second restart as well (the control login must reconnect every time).
    env.db.restart().await.unwrap();
    let again = env.app().await;
    assert_eq!(
        again
            .query_one("select 3", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        3
    );
}

/// Polls until a TCP connect to `addr` is refused (the listener is closed).
pub async fn wait_refused(addr: std::net::SocketAddr) {
    within(Duration::from_secs(10), async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// Graceful shutdown: new connections are refused at once; a session inside a transaction
/// may finish it (commit succeeds), and is then closed at its next idle point.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_refuses_new_connections_and_lets_open_sessions_finish() {
    let mut env = TestEnv::start_with(ProxyOptions {
        shutdown_timeout_secs: Some(20),
        ..ProxyOptions::default()
    })
    .await;
    let idle = env.app().await;
    let open = env.app().await;
    open.batch_execute("create table sd(id int)").await.unwrap();
    open.batch_execute("begin; insert into sd values (1)")
        .await
        .unwrap();
    env.begin_shutdown();
    wait_refused(env.proxy_addr()).await;
    // The session in a transaction finishes its work...
    open.batch_execute("insert into sd values (2)")
        .await
        .unwrap();
    let n: i64 = open
        .query_one("select count(*) from sd", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    open.batch_execute("commit").await.unwrap();
    // ...and run returns once no session is left, long before the 20 s timeout.
    let t0 = Instant::now();
    env.wait_stopped(Duration::from_secs(15)).await.unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    for c in [&idle, &open] {
        let res = within(Duration::from_secs(10), c.simple_query("select 1")).await;
        assert!(res.is_err(), "sessions are closed after shutdown");
    }
    let d = env.direct_app().await;
    let n: i64 = d
        .query_one("select count(*) from sd", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        n, 2,
        "the transaction finished during shutdown is committed"
    );
}

/// A session still inside a transaction when the shutdown timeout expires is closed.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_timeout_closes_lingering_sessions() {
    let mut env = TestEnv::start_with(ProxyOptions {
        shutdown_timeout_secs: Some(2),
        ..ProxyOptions::default()
    })
    .await;
    let lingering = env.app().await;
    lingering
        .batch_execute("create table lg(id int)")
        .await
        .unwrap();
    lingering
        .batch_execute("begin; insert into lg values (1)")
        .await
        .unwrap();
    env.begin_shutdown();
    let t0 = Instant::now();
    env.wait_stopped(Duration::from_secs(15)).await.unwrap();
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "must wait for the timeout: {waited:?}"
    );
    assert!(waited < Duration::from_secs(8), "took {waited:?}");
    let res = within(Duration::from_secs(10), lingering.simple_query("commit")).await;
    assert!(
        res.is_err(),
        "the session must be closed after the shutdown timeout"
    );
    let d = env.direct_app().await;
    let n: i64 = d
        .query_one("select count(*) from lg", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "the unfinished transaction is rolled back");
}
