//! The real binary: `pgcloak serve -c …` as a child process, with `auth.mode = "userlist"`
//! (the upstream password comes from an environment variable, set on the child only) and
//! SIGTERM for a graceful stop.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pgcloak::devdb::{APP_DATABASE, APP_PASSWORD, APP_USER, CONTROL_PASSWORD, DevDb, DevDbOptions};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_postgres::config::SslMode;

use crate::harness::{ProxyOptions, config_toml, describe, must_fail, sqlstate, within};

/// Kills the child if the test fails before it is reaped.
pub(crate) struct ChildGuard(pub Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.start_kill();
        }
    }
}

pub(crate) fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    l.local_addr().unwrap()
}

pub(crate) async fn wait_listening(addr: SocketAddr, child: &mut Child) {
    let t0 = Instant::now();
    while TcpStream::connect(addr).await.is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("pgcloak serve exited early: {status}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "pgcloak serve did not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes `users.toml` with the `app` role's real SCRAM verifier (read from pg_authid).
async fn write_users_file(db: &DevDb) -> std::path::PathBuf {
    let su = db.superuser_client("postgres").await.unwrap();
    let verifier: String = su
        .query_one(
            "select rolpassword from pg_authid where rolname = $1",
            &[&APP_USER],
        )
        .await
        .unwrap()
        .get(0);
    assert!(verifier.starts_with("SCRAM-SHA-256$"));
    let path = db.dir().join("users.toml");
    let text = format!(
        "[users.{APP_USER}]\nverifier = \"{verifier}\"\nupstream_password_env = \"PGCLOAK_IT_APP_PASSWORD\"\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn client_config(db: &DevDb, addr: SocketAddr, password: &str) -> tokio_postgres::Config {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("localhost")
        .hostaddr(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .port(addr.port())
        .user(APP_USER)
        .password(password)
        .dbname(APP_DATABASE)
        .ssl_mode(SslMode::Require)
        .connect_timeout(Duration::from_secs(20));
    let _ = db;
    cfg
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_binary_with_userlist_and_sigterm() {
    let db = DevDb::start(DevDbOptions::default()).await.unwrap();
    let users = write_users_file(&db).await;
    let addr = free_addr();
    let opts = ProxyOptions {
        users_file: Some(users),
        shutdown_timeout_secs: Some(20),
        ..ProxyOptions::default()
    };
    let config = db.dir().join("serve.toml");
    std::fs::write(&config, config_toml(&db, addr, &opts)).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_pgcloak"))
        .arg("serve")
        .arg("-c")
        .arg(&config)
        .env("PGCLOAK_CONTROL_PASSWORD", CONTROL_PASSWORD)
        .env("PGCLOAK_IT_APP_PASSWORD", APP_PASSWORD)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn pgcloak serve");
    let mut guard = ChildGuard(Some(child));
    let child = guard.0.as_mut().unwrap();
    wait_listening(addr, child).await;

    let tls = || tokio_postgres_rustls::MakeRustlsConnect::new(db.tls_client_config().unwrap());
    let (c, conn) = client_config(&db, addr, APP_PASSWORD)
        .connect(tls())
        .await
        .unwrap_or_else(|e| panic!("userlist login: {}\n{}", describe(&e), db.log_tail()));
    tokio::spawn(conn);
    let user: String = c
        .query_one("select current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, APP_USER);
    let wrong = must_fail(client_config(&db, addr, "wrong").connect(tls()).await);
    assert_eq!(
        sqlstate(&wrong).as_deref(),
        Some("28P01"),
        "{}",
        describe(&wrong)
    );
    let mut other = client_config(&db, addr, "x");
    other.user("postgres");
    let unknown = must_fail(other.connect(tls()).await);
    assert_eq!(
        sqlstate(&unknown).as_deref(),
        Some("28P01"),
        "{}",
        describe(&unknown)
    );

    // SIGTERM: stop accepting; a session inside a transaction may finish it, then the
    // process exits 0.
    c.batch_execute("create table st(id int)").await.unwrap();
    c.batch_execute("begin; insert into st values (1)")
        .await
        .unwrap();
    let pid = Pid::from_raw(child.id().expect("pid") as i32);
    kill(pid, Signal::SIGTERM).unwrap();
    crate::robustness::wait_refused(addr).await;
    c.batch_execute("insert into st values (2); commit")
        .await
        .unwrap();
    let d = db
        .client(APP_USER, APP_PASSWORD, APP_DATABASE)
        .await
        .unwrap();
    let n: i64 = d
        .query_one("select count(*) from st", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    let status = within(Duration::from_secs(15), child.wait()).await.unwrap();
    assert!(
        status.success(),
        "pgcloak serve exit status after SIGTERM: {status}"
    );
    guard.0 = None;
}
