//! Query traffic through the proxy: simple and extended protocol, pipelines, transactions,
//! LISTEN/NOTIFY, COPY both ways, large values, startup parameters and many sessions.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt, future::join_all};
use pgcloak::devdb::{APP_PASSWORD, APP_USER};

use crate::harness::{TestEnv, describe, sqlstate, within};

#[tokio::test(flavor = "multi_thread")]
async fn simple_and_extended_queries() {
    let env = TestEnv::start().await;
    let c = env.app().await;
    let msgs = c
        .simple_query("create table t(id int primary key, s text); insert into t values (1,'a'),(2,'b'); select s from t order by id")
        .await
        .unwrap();
    let rows: Vec<String> = msgs
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .collect();
    assert_eq!(rows, ["a", "b"]);
    // Extended protocol: Parse/Bind/Execute with typed parameters, binary results.
    let row = c
        .query_one(
            "select $1::int8 + 1, $2::text || 'x', $3::bool",
            &[&41i64, &"ab", &true],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 42);
    assert_eq!(row.get::<_, String>(1), "abx");
    assert!(row.get::<_, bool>(2));
    let stmt = c.prepare("select s from t where id = $1").await.unwrap();
    for (id, want) in [(1, "a"), (2, "b")] {
        let r = c.query_one(&stmt, &[&id]).await.unwrap();
        assert_eq!(r.get::<_, String>(0), want);
    }
    let n = c
        .execute("update t set s = $1 where id = $2", &[&"z", &1i32])
        .await
        .unwrap();
    assert_eq!(n, 1);
    let d = env.direct_app().await;
    let r = d
        .query_one("select s from t where id = 1", &[])
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "z");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_pipelined_statements() {
    let env = TestEnv::start().await;
    let c = env.app().await;
    let stmt = c.prepare("select $1::int4 * 2").await.unwrap();
    let futs = (0..200i32).map(|i| {
        let c = &c;
        let stmt = &stmt;
        async move { c.query_one(stmt, &[&i]).await.map(|r| r.get::<_, i32>(0)) }
    });
    let got = within(Duration::from_secs(60), join_all(futs)).await;
    for (i, r) in got.into_iter().enumerate() {
        assert_eq!(r.unwrap(), 2 * i as i32);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn transaction_error_then_rollback() {
    let env = TestEnv::start().await;
    let c = env.app().await;
    c.batch_execute("create table tx(id int primary key)")
        .await
        .unwrap();
    c.batch_execute("begin; insert into tx values (1)")
        .await
        .unwrap();
    let err = c
        .batch_execute("insert into tx values (1)")
        .await
        .unwrap_err();
    assert_eq!(
        sqlstate(&err).as_deref(),
        Some("23505"),
        "{}",
        describe(&err)
    );
    // In a failed transaction every statement is refused until ROLLBACK.
    let err = c.batch_execute("select 1").await.unwrap_err();
    assert_eq!(
        sqlstate(&err).as_deref(),
        Some("25P02"),
        "{}",
        describe(&err)
    );
    c.batch_execute("rollback").await.unwrap();
    let n: i64 = c
        .query_one("select count(*) from tx", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "the rolled-back insert must be gone");
    c.batch_execute("insert into tx values (2)").await.unwrap();
    let d = env.direct_app().await;
    let ids: Vec<i32> = d
        .query("select id from tx", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, [2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn listen_notify_between_two_proxied_sessions() {
    let env = TestEnv::start().await;
    let (listener, mut rx) = env.proxy_client_with_notifications().await;
    listener.batch_execute("listen pgcloak_it").await.unwrap();
    let talker = env.app().await;
    talker
        .batch_execute("notify pgcloak_it, 'hello through the proxy'")
        .await
        .unwrap();
    talker
        .query("select pg_notify('pgcloak_it', $1)", &[&"second"])
        .await
        .unwrap();
    let n1 = within(Duration::from_secs(10), rx.recv()).await.unwrap();
    let n2 = within(Duration::from_secs(10), rx.recv()).await.unwrap();
    assert_eq!(
        (n1.channel(), n1.payload()),
        ("pgcloak_it", "hello through the proxy")
    );
    assert_eq!(n2.payload(), "second");
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_in_and_out() {
    let env = TestEnv::start().await;
    let c = env.app().await;
    c.batch_execute("create table cp(id int, s text)")
        .await
        .unwrap();
    let mut text = String::new();
    for i in 0..20_000 {
        text.push_str(&format!("{i}\trow {i} \\\\ tab\\there\n"));
    }
    let sink = c.copy_in("copy cp from stdin").await.unwrap();
    let mut sink = std::pin::pin!(sink);
    for chunk in text.as_bytes().chunks(7_000) {
        sink.send(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    let n = sink.as_mut().finish().await.unwrap();
    assert_eq!(n, 20_000);
    let d = env.direct_app().await;
    let r = d
        .query_one(
            "select count(*), sum(id), max(s) filter (where id = 7) from cp",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, i64>(0), 20_000);
    assert_eq!(r.get::<_, i64>(1), (0..20_000i64).sum::<i64>());
    assert_eq!(r.get::<_, String>(2), "row 7 \\ tab\there");
    let out = c
        .copy_out("copy (select * from cp order by id) to stdout")
        .await
        .unwrap();
    let chunks: Vec<Bytes> = out.map(|b| b.unwrap()).collect().await;
    let got: Vec<u8> = chunks.concat();
    assert_eq!(String::from_utf8(got).unwrap(), text);
}

/// 20 MB of text that is not one repeated byte.
fn big_text(len: usize) -> String {
    let mut s = String::with_capacity(len);
    let mut x: u32 = 12345;
    while s.len() < len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        s.push(char::from(b'a' + (x >> 16) as u8 % 26));
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_megabyte_value_both_ways() {
    let env = TestEnv::start().await;
    let c = env.app().await;
    c.batch_execute("create table big(id int, v text)")
        .await
        .unwrap();
    let v = big_text(20 * 1024 * 1024);
    // Extended protocol: one 20 MB Bind parameter.
    within(
        Duration::from_secs(60),
        c.execute("insert into big values (1, $1)", &[&v]),
    )
    .await
    .unwrap();
    // Simple protocol: one 20 MB Query message.
    within(
        Duration::from_secs(60),
        c.batch_execute(&format!("insert into big values (2, '{v}')")),
    )
    .await
    .unwrap();
    let d = env.direct_app().await;
    for id in [1, 2] {
        let r = d
            .query_one(
                "select length(v), md5(v) = md5($2) from big where id = $1",
                &[&id, &v],
            )
            .await
            .unwrap();
        assert_eq!(r.get::<_, i32>(0) as usize, v.len());
        assert!(r.get::<_, bool>(1), "row {id} differs upstream");
    }
    // Both back through the proxy (20 MB DataRows), extended and simple.
    let rows = within(
        Duration::from_secs(60),
        c.query("select v from big order by id", &[]),
    )
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert!(r.get::<_, &str>(0) == v, "value came back different");
    }
    let msgs = within(
        Duration::from_secs(60),
        c.simple_query("select v from big where id = 2"),
    )
    .await
    .unwrap();
    let got = msgs.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    assert!(
        got.as_deref() == Some(v.as_str()),
        "simple-query value differs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn startup_parameters_reach_upstream() {
    let env = TestEnv::start().await;
    env.direct_app()
        .await
        .batch_execute("create schema it_schema")
        .await
        .unwrap();
    let mut cfg = env.proxy_pg_config(APP_USER, APP_PASSWORD, env.db.database());
    cfg.application_name("pgcloak-it-app")
        .options("-c search_path=it_schema,public -c statement_timeout=4321");
    let c = env.connect(&cfg).await.unwrap();
    let r = c
        .query_one(
            "select current_setting('application_name'), current_setting('search_path'), \
             current_setting('statement_timeout'), current_user, current_database()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "pgcloak-it-app");
    assert_eq!(r.get::<_, String>(1), "it_schema,public");
    assert_eq!(r.get::<_, String>(2), "4321ms");
    assert_eq!(r.get::<_, String>(3), APP_USER);
    assert_eq!(r.get::<_, String>(4), env.db.database());
    // The upstream sees the application name too (pg_stat_activity, from a direct session).
    let d = env.direct_app().await;
    let n: i64 = d
        .query_one(
            "select count(*) from pg_stat_activity where application_name = 'pgcloak-it-app' \
             and datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

/// 150 sessions open at the same time, each with its own upstream backend, all querying at
/// once. Logins run 25 at a time: the debug-build client's PBKDF2 is what would be measured
/// otherwise, not the proxy.
#[tokio::test(flavor = "multi_thread")]
async fn one_hundred_fifty_concurrent_sessions() {
    const N: usize = 150;
    let env = TestEnv::start().await;
    let env = &env;
    let logins = futures_util::stream::iter(0..N)
        .map(|i| async move {
            let c = env
                .proxy_client(APP_USER, APP_PASSWORD, env.db.database())
                .await;
            c.unwrap_or_else(|e| panic!("login {i}: {}", describe(&e)))
        })
        .buffer_unordered(25)
        .collect::<Vec<_>>();
    let clients = within(Duration::from_secs(240), logins).await;
    assert_eq!(clients.len(), N);
    let queries = clients.iter().enumerate().map(|(i, c)| async move {
        let r = c
            .query_one("select $1::int4 + 1000, pg_backend_pid()", &[&(i as i32)])
            .await
            .unwrap_or_else(|e| panic!("session {i}: {}", describe(&e)));
        assert_eq!(r.get::<_, i32>(0), 1000 + i as i32);
        r.get::<_, i32>(1)
    });
    let pids: std::collections::HashSet<i32> = within(Duration::from_secs(120), join_all(queries))
        .await
        .into_iter()
        .collect();
    assert_eq!(pids.len(), N, "each session has its own upstream backend");
    let d = env.direct_app().await;
    let open: i64 = d
        .query_one(
            "select count(*) from pg_stat_activity where usename = 'app' \
             and datname = current_database() and pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        open, N as i64,
        "all sessions are open upstream at the same time"
    );
}
