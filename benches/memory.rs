//! Memory per session, measured (`cargo bench --bench memory`; harness = false): starts a
//! throwaway PostgreSQL and the release `pgcloak serve`, opens N = 0, 100, 500 idle TLS
//! sessions (SCRAM login, one `SELECT` each, then idle) and reads the proxy's `VmRSS` from
//! `/proc/<pid>/status` at each N. Twice: a database without rules (plain relay) and one with
//! a rules file (sessions also read an encrypted column once, so the plan cache and key ring
//! are warm). Prints bytes per session; `deploy/kubernetes/deployment.yaml` is sized from it.
//! `PGCLOAK_BENCH_BIN` runs another binary; `PGCLOAK_MEMORY_N` replaces "100,500".

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

#[path = "support/proxy.rs"]
mod proxy;
use proxy::free_port;

use pgcloak::devdb::{
    APP_DATABASE, APP_PASSWORD, APP_USER, CONTROL_PASSWORD, CONTROL_USER, DevDb, DevDbOptions,
};

const RULES: &str =
    "database = \"app\"\n\n[tables.mem_enc]\nnote = { type = \"text\", mode = \"randomized\" }\n";

/// `pgcloak serve`, killed on drop.
struct Proxy(Child, u16);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `VmRSS` of `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// Starts the release binary with `rules` (a rules file and master key file) or none.
async fn start(db: &DevDb, enc: Option<(&Path, &Path)>) -> Proxy {
    let port = free_port();
    let mut child = proxy::spawn(db, "pgcloak-mem", port, enc, "max_connections = 2000\n");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let t0 = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("pgcloak exited before listening: {st}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "pgcloak did not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Proxy(child, port)
}

/// One logged-in session through the proxy that ran `sql` once and is now idle.
async fn session(db: &DevDb, port: u16, sql: &str) -> tokio_postgres::Client {
    let client = proxy::app_client(db, port).await;
    client.simple_query(sql).await.expect("first statement");
    client
}

/// RSS after each N of idle sessions: `(n, bytes)`, from 0.
async fn measure(db: &DevDb, proxy: &Proxy, sql: &str, steps: &[usize]) -> Vec<(usize, u64)> {
    let pid = proxy.0.id();
    // The first session loads what every later one shares (catalog, plan cache, TLS state).
    let warm = session(db, proxy.1, sql).await;
    drop(warm);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut out = vec![(0, rss(pid))];
    let mut open = Vec::new();
    for &n in steps {
        while open.len() < n {
            open.push(session(db, proxy.1, sql).await);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        out.push((n, rss(pid)));
    }
    drop(open);
    out
}

fn report(kind: &str, rows: &[(usize, u64)]) {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    for w in rows.windows(2) {
        let ((n0, r0), (n1, r1)) = (w[0], w[1]);
        let per = r1.saturating_sub(r0) as f64 / (n1 - n0) as f64;
        println!(
            "{kind:<6} N {n0:>4} → {n1:>4}: RSS {:>7.1} → {:>7.1} MiB: {:>6.0} KiB/session",
            mib(r0),
            mib(r1),
            per / 1024.0
        );
    }
    let ((n0, r0), (n, r)) = (rows[0], rows[rows.len() - 1]);
    println!(
        "{kind:<6} base {:.1} MiB; {:.0} KiB/session over 0 → {n} (N0 = {n0})",
        mib(r0),
        r.saturating_sub(r0) as f64 / n as f64 / 1024.0
    );
}

async fn rules_setup(db: &DevDb) -> (PathBuf, PathBuf) {
    let app = db
        .client(APP_USER, APP_PASSWORD, APP_DATABASE)
        .await
        .expect("app");
    app.batch_execute("CREATE TABLE mem_enc (id int PRIMARY KEY, note bytea)")
        .await
        .expect("table");
    let rules = db.dir().join("mem-rules.toml");
    std::fs::write(&rules, RULES).expect("rules");
    let parsed = pgcloak::config::load_rules(std::slice::from_ref(&rules))
        .expect("rules")
        .remove(0)
        .rules;
    let text = pgcloak::crypto::gen_master_key();
    let key_file = db.dir().join("mem-master.key");
    std::fs::write(&key_file, &text).expect("write key");
    let master = pgcloak::crypto::MasterKey::from_base64(&text, "bench").expect("key");
    let mut control = db
        .client(CONTROL_USER, CONTROL_PASSWORD, APP_DATABASE)
        .await
        .expect("control");
    pgcloak::control::keys::init(&mut control, &parsed, &master)
        .await
        .expect("keys init");
    (rules, key_file)
}

fn steps() -> Vec<usize> {
    std::env::var("PGCLOAK_MEMORY_N")
        .unwrap_or_else(|_| "100,500".into())
        .split(',')
        .map(|n| n.trim().parse().expect("PGCLOAK_MEMORY_N: numbers"))
        .collect()
}

fn main() {
    let steps = steps();
    let max = steps.iter().copied().max().unwrap_or(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let opts = DevDbOptions {
        settings: vec![("max_connections".into(), (max + 50).to_string())],
        ..DevDbOptions::default()
    };
    let db = rt.block_on(DevDb::start(opts)).expect("start PostgreSQL");
    let (rules, key) = rt.block_on(rules_setup(&db));
    eprintln!(
        "memory: PostgreSQL on port {}; sessions {steps:?}",
        db.port()
    );
    let plain = rt.block_on(start(&db, None));
    let rows = rt.block_on(measure(&db, &plain, "SELECT 1", &steps));
    drop(plain);
    report("plain", &rows);
    let enc = rt.block_on(start(&db, Some((&rules, &key))));
    let rows = rt.block_on(measure(&db, &enc, "SELECT id, note FROM mem_enc", &steps));
    drop(enc);
    report("rules", &rows);
    drop(db);
}
