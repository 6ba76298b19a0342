//! Driver fidelity (issue 15): defects found by running psycopg's own test suite through
//! pgcloak, each reproduced with the real driver and the libpq versions it ships with —
//! Debian's libpq 15 (psycopg's pure-Python `psycopg.pq` over the system library), the
//! libpq 17 bundled in psycopg-binary 3.2 and the libpq 18 bundled in 3.3 (venvs made by
//! `tests/clients/setup`). The probes are `tests/clients/python/psycopg_probe.py`.
//! A missing venv FAILS the test (install with `tests/clients/setup`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::clients::scenario_env;
use crate::harness::{ProxyOptions, TestEnv, describe, must_fail, sqlstate};

/// A probe subprocess gets this long before it counts as hung.
const PROBE_LIMIT: Duration = Duration::from_secs(180);

/// A libpq the probes run under.
#[derive(Clone, Copy, Debug)]
pub enum Libpq {
    /// Debian's libpq5 (15) through psycopg's ctypes implementation (`PSYCOPG_IMPL=python`).
    Debian15,
    /// psycopg-binary 3.2's bundled libpq 17.
    Bundled17,
    /// psycopg-binary 3.3's bundled libpq 18.
    Bundled18,
}

impl Libpq {
    fn major(self) -> u32 {
        match self {
            Libpq::Debian15 => 15,
            Libpq::Bundled17 => 17,
            Libpq::Bundled18 => 18,
        }
    }

    fn venv(self) -> &'static str {
        match self {
            Libpq::Debian15 => "tests/clients/.venv",
            Libpq::Bundled17 => "tests/clients/.venv-libpq17",
            Libpq::Bundled18 => "tests/clients/.venv-libpq18",
        }
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `psycopg_probe.py <probe>` under `libpq` against `env`'s proxy; panics with its
/// output unless it exits 0.
pub async fn probe(env: &TestEnv, libpq: Libpq, probe: &str) {
    probe_with(env, libpq, probe, &[]).await;
}

/// [`probe`] with extra environment variables (e.g. libpq's `PGSSLNEGOTIATION`).
pub async fn probe_with(env: &TestEnv, libpq: Libpq, probe: &str, extra: &[(&str, &str)]) {
    let python: PathBuf = repo().join(libpq.venv()).join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run tests/clients/setup (a missing client is a failure, not a skip)",
        python.display()
    );
    let dir = repo().join("tests/clients/python");
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(dir.join("psycopg_probe.py"))
        .arg(probe)
        .envs(scenario_env(env))
        .env("PGCLOAK_LIBPQ_MAJOR", libpq.major().to_string())
        .env("PGCONNECT_TIMEOUT", "20")
        .envs(extra.iter().copied())
        .current_dir(&dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    match libpq {
        Libpq::Debian15 => cmd.env("PSYCOPG_IMPL", "python"),
        _ => cmd.env_remove("PSYCOPG_IMPL"),
    };
    let out = tokio::time::timeout(PROBE_LIMIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("probe {probe} under {libpq:?} hung"))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "probe {probe} under {libpq:?} failed ({}):\n--- stdout ---\n{stdout}\n\
         --- stderr ---\n{stderr}",
        out.status,
    );
    eprintln!("{libpq:?}: {}", stdout.trim_end());
}

async fn large_async(libpq: Libpq) {
    let env = TestEnv::start().await;
    probe(&env, libpq, "large-async").await;
}

// An async (non-blocking) libpq connection fetching a 48 KB result must never wait on a
// socket with the rest of the response already inside pgcloak's TLS records.
#[tokio::test(flavor = "multi_thread")]
async fn drivers_large_result_async_libpq15() {
    large_async(Libpq::Debian15).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn drivers_large_result_async_libpq17() {
    large_async(Libpq::Bundled17).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn drivers_large_result_async_libpq18() {
    large_async(Libpq::Bundled18).await;
}

async fn cancel_safe(libpq: Libpq, direct_tls: bool) {
    let env = TestEnv::start().await;
    let extra: &[(&str, &str)] = if direct_tls {
        &[("PGSSLNEGOTIATION", "direct")]
    } else {
        &[]
    };
    probe_with(&env, libpq, "cancel-safe", extra).await;
}

// libpq >= 17's PQcancelConn (psycopg's cancel_safe, Ctrl-C) sends the CancelRequest inside
// TLS; libpq 15 falls back to the plaintext CancelRequest.
#[tokio::test(flavor = "multi_thread")]
async fn drivers_cancel_safe_libpq15() {
    cancel_safe(Libpq::Debian15, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn drivers_cancel_safe_libpq17() {
    cancel_safe(Libpq::Bundled17, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn drivers_cancel_safe_libpq18() {
    cancel_safe(Libpq::Bundled18, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn drivers_cancel_safe_direct_tls_libpq18() {
    cancel_safe(Libpq::Bundled18, true).await;
}

// A changed password (ALTER ROLE … PASSWORD, libpq's PQchangePassword, rotated credentials)
// counts at the very next login through pgcloak, and the old one stops working, although the
// role's verifier was just used (and cached) by a login.
#[tokio::test(flavor = "multi_thread")]
async fn drivers_changed_password_counts_at_once() {
    // Its own cluster: it creates a role (roles are cluster-wide).
    let env = TestEnv::own(ProxyOptions::default()).await;
    let admin = env
        .db
        .superuser_client(env.db.database())
        .await
        .expect("superuser");
    admin
        .batch_execute("CREATE ROLE rotating LOGIN PASSWORD 'first-password'")
        .await
        .expect("create role");
    let login = |password: &'static str| {
        let cfg = env.proxy_pg_config("rotating", password, env.db.database());
        let env = &env;
        async move { env.connect(&cfg).await }
    };
    let c = login("first-password")
        .await
        .expect("login with the first password");
    c.simple_query("select 1").await.expect("query");
    // Changed around pgcloak, straight on the server.
    admin
        .batch_execute("ALTER ROLE rotating PASSWORD 'second-password'")
        .await
        .expect("alter role");
    let c2 = login("second-password")
        .await
        .unwrap_or_else(|e| panic!("the new password is refused: {}", describe(&e)));
    let e = must_fail(login("first-password").await);
    assert_eq!(sqlstate(&e).as_deref(), Some("28P01"), "{}", describe(&e));
    // Changed through pgcloak by the role itself, as PQchangePassword does.
    c2.batch_execute("ALTER ROLE rotating PASSWORD 'third-password'")
        .await
        .expect("alter own password");
    login("third-password")
        .await
        .unwrap_or_else(|e| panic!("the new password is refused: {}", describe(&e)));
    let e = must_fail(login("second-password").await);
    assert_eq!(sqlstate(&e).as_deref(), Some("28P01"), "{}", describe(&e));
}

// What libpq reports as the backend's process ID is the server's (psycopg's
// conn.info.backend_pid, NOTIFY senders).
#[tokio::test(flavor = "multi_thread")]
async fn drivers_backend_pid_is_the_server_s() {
    let env = TestEnv::start().await;
    probe(&env, Libpq::Bundled18, "backend-pid").await;
}
