//! `pgcloak migrate encrypt` on a 1,000,000-row table while 8 writers run through pgcloak:
//! prints the backfill rate (rows/s), the longest any writer's statement took (it includes
//! every lock wait), the switch's lock hold time, and the writers' TPS before and during the
//! migration. Targets (issue 11): ≥ 20,000 rows/s with writers running, no application
//! statement blocked for more than 1 s.
//!
//! `cargo bench --bench migrate`; `PGCLOAK_BENCH_ROWS` sets the table size (default 1,000,000),
//! `PGCLOAK_BENCH_SECS` the seconds of the "before" measurement (default 10). Everything runs
//! in this process (PostgreSQL from the system's binaries, the proxy in-process).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pgcloak::config::{Config, Rules, parse_rules_file};
use pgcloak::control::keys;
use pgcloak::control::migrate::progress::Progress;
use pgcloak::control::migrate::{self, Direction, Options, Outcome};
use pgcloak::crypto::{MasterKey, gen_master_key};
use pgcloak::devdb::{
    APP_DATABASE, APP_PASSWORD, APP_USER, CONTROL_PASSWORD, CONTROL_USER, DevDb, DevDbOptions,
};
use tokio_postgres_rustls::MakeRustlsConnect;
use zeroize::Zeroizing;

const WRITERS: u64 = 8;
const RULES: &str = "database = \"app\"\n[tables.bench_mig]\n\
                     email = { type = \"text\", mode = \"deterministic\" }\n";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writers' counters.
#[derive(Default)]
struct Stats {
    ops: AtomicU64,
    errors: AtomicU64,
    max_micros: AtomicU64,
}

/// pgcloak in front of `db`, in this process; returns its port.
async fn start_proxy(db: &DevDb, master_b64: &str) -> u16 {
    let dir = db.dir();
    let (cert, key) = db.ca().issue(&["localhost", "127.0.0.1"]).expect("issue");
    std::fs::write(dir.join("proxy.crt"), cert).unwrap();
    std::fs::write(dir.join("proxy.key"), key).unwrap();
    std::fs::write(dir.join("rules.toml"), RULES).unwrap();
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let text = format!(
        "rules = [\"rules.toml\"]\n[keys]\nmaster_key_env = \"PGCLOAK_MASTER_KEY\"\n\
         [listen]\naddress = \"{addr}\"\ntls_cert = \"proxy.crt\"\ntls_key = \"proxy.key\"\n\
         [upstream]\nhost = \"localhost\"\nport = {}\ntls_ca = {:?}\n\
         [control]\nuser = \"{CONTROL_USER}\"\npassword_env = \"PGCLOAK_CONTROL_PASSWORD\"\n\
         [log]\nlevel = \"error\"\n",
        db.port(),
        db.ca_cert_path().display().to_string()
    );
    let path = dir.join("pgcloak.toml");
    let config = Arc::new(Config::from_str_at(&text, &path).expect("config"));
    let secrets = pgcloak::Secrets {
        control_password: Zeroizing::new(CONTROL_PASSWORD.to_owned()),
        master_key: Some(MasterKey::from_base64(master_b64, "bench").unwrap()),
        key_provider: None,
    };
    tokio::spawn(pgcloak::run(
        listener,
        config,
        secrets,
        std::future::pending(),
    ));
    addr.port()
}

/// One writer through pgcloak: single-row UPDATEs of its own rows (the encrypted column every
/// other time), each statement's duration recorded; a refused statement is counted and retried.
async fn writer(
    db: Arc<DevDb>,
    port: u16,
    w: u64,
    rows: u64,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
) {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("localhost")
        .hostaddr(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST))
        .port(port)
        .user(APP_USER)
        .password(APP_PASSWORD)
        .dbname(APP_DATABASE)
        .ssl_mode(tokio_postgres::config::SslMode::Require);
    let tls = MakeRustlsConnect::new(db.tls_client_config().unwrap());
    let (c, conn) = cfg.connect(tls).await.expect("connect through pgcloak");
    tokio::spawn(conn);
    let mut k = 0u64;
    while !stop.load(Ordering::Relaxed) {
        k += 1;
        let id = ((k * 7919 * WRITERS + w) % rows) as i64;
        let started = Instant::now();
        let r = if k.is_multiple_of(2) {
            let email = format!("w{w}-{k}@bench");
            c.execute(
                "UPDATE bench_mig SET email = $2 WHERE id = $1",
                &[&id, &email],
            )
            .await
        } else {
            c.execute("UPDATE bench_mig SET n = n + 1 WHERE id = $1", &[&id])
                .await
        };
        let micros = started.elapsed().as_micros() as u64;
        stats.max_micros.fetch_max(micros, Ordering::Relaxed);
        match r {
            Ok(_) => stats.ops.fetch_add(1, Ordering::Relaxed),
            Err(_) => stats.errors.fetch_add(1, Ordering::Relaxed),
        };
    }
}

fn take(stats: &Stats) -> (u64, u64, u64) {
    (
        stats.ops.swap(0, Ordering::Relaxed),
        stats.errors.swap(0, Ordering::Relaxed),
        stats.max_micros.swap(0, Ordering::Relaxed),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rows = env_u64("PGCLOAK_BENCH_ROWS", 1_000_000);
    let before_secs = env_u64("PGCLOAK_BENCH_SECS", 10);
    let db = Arc::new(DevDb::start(DevDbOptions::default()).await.expect("DevDb"));
    let su = db.superuser_client(APP_DATABASE).await.unwrap();
    let t = Instant::now();
    su.batch_execute(&format!(
        "CREATE TABLE bench_mig (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, n int NOT NULL DEFAULT 0); \
         GRANT ALL ON bench_mig TO {APP_USER}; \
         INSERT INTO bench_mig (id, email) SELECT i, 'user' || i || '@example.com' FROM generate_series(0, {}) i; \
         ",
        rows - 1
    ))
    .await
    .unwrap();
    su.batch_execute("VACUUM ANALYZE bench_mig").await.unwrap();
    eprintln!("loaded {rows} rows in {:.1}s", t.elapsed().as_secs_f64());
    let master_b64 = gen_master_key();
    let master = MasterKey::from_base64(&master_b64, "bench").unwrap();
    let file = parse_rules_file(RULES, std::path::Path::new("rules.toml")).unwrap();
    let rules = Rules::from_columns(file.columns).unwrap();
    let mut control = db
        .client(CONTROL_USER, CONTROL_PASSWORD, APP_DATABASE)
        .await
        .unwrap();
    keys::init(&mut control, &rules, &master).await.unwrap();
    let port = start_proxy(&db, &master_b64).await;

    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            tokio::spawn(writer(
                db.clone(),
                port,
                w,
                rows,
                stop.clone(),
                stats.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    take(&stats);
    tokio::time::sleep(Duration::from_secs(before_secs)).await;
    let (ops_before, _, max_before) = take(&stats);
    let tps_before = ops_before as f64 / before_secs as f64;

    let ring = keys::load_keyring(&control, &master).await.unwrap();
    let rule = keys::column_rule(&rules, "public.bench_mig.email")
        .unwrap()
        .clone();
    let opts = Options {
        batch_rows: 5000,
        ..Options::default()
    };
    let started = Instant::now();
    let out = migrate::migrate(
        &mut control,
        &ring,
        &rule,
        Direction::Encrypt,
        &opts,
        &mut Progress::new("bench_mig.email", rows),
    )
    .await
    .expect("migration");
    let elapsed = started.elapsed().as_secs_f64();
    let (ops_during, errors, max_during) = take(&stats);
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = w.await;
    }
    let Outcome::Done(report) = out else {
        panic!("{out:?}")
    };
    let backfill = report.rows as f64 / elapsed;
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| rows | {rows} |");
    println!(
        "| migration wall time (backfill, drain, index, 2 verifications, switch) | {elapsed:.1} s |"
    );
    println!("| rows/s (rows / wall time) | {backfill:.0} |");
    println!("| queued writes applied | {} |", report.queued);
    println!(
        "| switch: table lock held | {} ms (after {} attempt(s)) |",
        report.switch.held.as_millis(),
        report.switch.tries
    );
    println!(
        "| writers' longest statement before | {:.1} ms |",
        max_before as f64 / 1000.0
    );
    println!(
        "| writers' longest statement during (includes every lock wait) | {:.1} ms |",
        max_during as f64 / 1000.0
    );
    println!("| writers' TPS before | {tps_before:.0} |");
    println!(
        "| writers' TPS during | {:.0} |",
        ops_during as f64 / elapsed
    );
    println!("| writers' statements refused around the switch (retried) | {errors} |");
}
