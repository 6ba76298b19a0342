//! End-to-end benchmark: `pgbench -S` with 8 clients in simple, extended and prepared modes
//! against PostgreSQL directly, through PgBouncer (session mode, TLS on both legs, server
//! certificate verify-full) and through pgcloak (the release binary, `serve`), all in one run
//! on one throwaway PostgreSQL. Prints TPS, the ratios pgcloak/direct and pgcloak/PgBouncer, and
//! each proxy's CPU time per 1,000 transactions (utime+stime from /proc/<pid>/stat). pgcloak runs
//! twice: without rules (the raw relay) and with rules naming the app database ("rules-db": every
//! statement is screened by the analysis, none touches an encrypted column), as deployed.
//!
//! Then the encrypted workload (issue 4 item 7): a pgbench script doing INSERT, SELECT by a
//! deterministic column and UPDATE over `bench_enc` (three encrypted columns,
//! `schema-rules/bench.toml`) through an encrypting pgcloak, and the same script over the
//! plaintext twin `bench_plain` directly, through PgBouncer and through pgcloak, in extended
//! and prepared modes, with the ratio encrypted-through-pgcloak / plaintext-through-PgBouncer,
//! and a "limit" run: the same statements directly against PostgreSQL on `bench_limit`, whose
//! columns hold random `bytea` of envelope size (the server's cost of envelopes, no proxy).
//!
//! `cargo bench --bench e2e`; `PGCLOAK_BENCH_SECS` sets the seconds per run (default 15);
//! `PGCLOAK_BENCH_WORKLOAD=select|enc` runs only one of the two (default both);
//! `PGCLOAK_BENCH_REPEAT=n` takes every measurement n times, interleaved, and reports medians;
//! `PGCLOAK_BENCH_BIN=/path/to/pgcloak` measures another build (e.g. a copy of the previous
//! release binary, to compare its pgcloak/PgBouncer ratios with this one's).
//! Everything started here is stopped on exit, also on a panic (guards with `Drop`).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/proxy.rs"]
mod proxy;
use proxy::free_port;

use pgcloak::devdb::{
    APP_DATABASE, APP_PASSWORD, APP_USER, CONTROL_PASSWORD, CONTROL_USER, DevDb, DevDbOptions,
};

const CLIENTS: &str = "8";
const THREADS: &str = "2";
const MODES: [&str; 3] = ["simple", "extended", "prepared"];

/// A child process killed (and reaped) on drop.
struct Guard {
    name: &'static str,
    child: Child,
    /// The PID whose CPU time we read (pgbouncer under runuser is not the child itself).
    pid_file: Option<PathBuf>,
}

impl Guard {
    fn pid(&self) -> u32 {
        match &self.pid_file {
            Some(f) => std::fs::read_to_string(f)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or_else(|| panic!("{}: no pid file {}", self.name, f.display())),
            None => self.child.id(),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(f) = &self.pid_file
            && let Some(pid) = std::fs::read_to_string(f)
                .ok()
                .and_then(|t| t.trim().parse().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn wait_listening(port: u16, guard: &mut Guard) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let t0 = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Ok(Some(st)) = guard.child.try_wait() {
            panic!("{} exited before listening: {st}", guard.name);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{} did not listen",
            guard.name
        );
        // A plain thread polling a child process's port (no tokio runtime here).
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes `text` to `path`; when root, hands it to the `postgres` OS user with `mode`.
fn write_for_postgres(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).expect("write");
    give_to_postgres(path, mode);
}

/// Sets `mode` on `path` and, when root, makes the `postgres` OS user its owner.
fn give_to_postgres(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    if is_root() {
        let user = nix::unistd::User::from_name("postgres")
            .ok()
            .flatten()
            .expect("postgres user");
        std::os::unix::fs::chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
            .expect("chown");
    }
}

/// A libpq conninfo (sslmode=require) for the app role on `port`.
fn conninfo(port: u16) -> String {
    format!(
        "host=localhost hostaddr=127.0.0.1 port={port} user={APP_USER} dbname={APP_DATABASE} sslmode=require"
    )
}

fn pgbench(db: &DevDb, args: &[&str]) -> String {
    let out = Command::new(db.bin("pgbench"))
        .args(args)
        .env("PGPASSWORD", APP_PASSWORD)
        .env_remove("PGSSLMODE")
        .stdin(Stdio::null())
        .output()
        .expect("run pgbench");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "pgbench {args:?} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Starts `pgcloak serve` (the release binary) on a free port; with `enc` = (rules file,
/// master key file) it encrypts (the rules file names the app database).
fn start_pgcloak(db: &DevDb, enc: Option<(&Path, &Path)>) -> (Guard, u16) {
    let port = free_port();
    let child = proxy::spawn(db, "pgcloak-bench", port, enc, "");
    let mut g = Guard {
        name: "pgcloak",
        child,
        pid_file: None,
    };
    wait_listening(port, &mut g);
    (g, port)
}

/// The app role's SCRAM verifier, read from pg_authid as superuser.
async fn app_verifier(db: &DevDb) -> String {
    let su = db.superuser_client("postgres").await.expect("superuser");
    su.query_one(
        "select rolpassword from pg_authid where rolname = $1",
        &[&APP_USER],
    )
    .await
    .expect("pg_authid")
    .get(0)
}

/// Starts PgBouncer (session mode, TLS both legs, verify-full upstream) on a free port.
fn start_pgbouncer(db: &DevDb, verifier: &str) -> (Guard, u16) {
    let port = free_port();
    let dir = db.dir().join("pgbouncer");
    std::fs::create_dir_all(&dir).expect("mkdir");
    give_to_postgres(&dir, 0o755);
    let (cert, key) = db.ca().issue(&["localhost", "127.0.0.1"]).expect("issue");
    write_for_postgres(&dir.join("client.crt"), &cert, 0o644);
    write_for_postgres(&dir.join("client.key"), &key, 0o600);
    write_for_postgres(
        &dir.join("users.txt"),
        &format!("\"{APP_USER}\" \"{verifier}\"\n"),
        0o600,
    );
    let ini = format!(
        "[databases]\n{APP_DATABASE} = host=localhost port={dbport} dbname={APP_DATABASE}\n\n\
         [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
         auth_type = scram-sha-256\nauth_file = {d}/users.txt\npool_mode = session\n\
         max_client_conn = 100\ndefault_pool_size = 20\n\
         client_tls_sslmode = require\nclient_tls_cert_file = {d}/client.crt\n\
         client_tls_key_file = {d}/client.key\nserver_tls_sslmode = verify-full\n\
         server_tls_ca_file = {ca}\nlogfile = {d}/pgbouncer.log\npidfile = {d}/pgbouncer.pid\n\
         ignore_startup_parameters = extra_float_digits\n\
         log_connections = 0\nlog_disconnections = 0\n",
        dbport = db.port(),
        d = dir.display(),
        ca = db.ca_cert_path().display(),
    );
    let ini_path = dir.join("pgbouncer.ini");
    write_for_postgres(&ini_path, &ini, 0o600);
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "/usr/sbin/pgbouncer"]);
        c
    } else {
        Command::new("/usr/sbin/pgbouncer")
    };
    let child = cmd
        .arg(&ini_path)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pgbouncer");
    let mut g = Guard {
        name: "pgbouncer",
        child,
        pid_file: Some(dir.join("pgbouncer.pid")),
    };
    wait_listening(port, &mut g);
    (g, port)
}

/// utime + stime of `pid`, in milliseconds.
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime");
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    ticks * 1000.0 / hz
}

/// One pgbench result.
#[derive(Clone, Copy, Default)]
struct Run {
    tps: f64,
    txns: f64,
    /// The proxy's CPU ms per 1,000 transactions (0 for direct).
    cpu_per_k: f64,
}

/// How many times each measurement is taken (`PGCLOAK_BENCH_REPEAT`, default 1); the runs of
/// one mode are interleaved across targets and the median (by TPS) is reported, since these
/// machines are shared and one run decides little.
fn repeat() -> usize {
    std::env::var("PGCLOAK_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(1)
}

/// The run with the median TPS.
fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.tps.total_cmp(&b.tps));
    let mid = runs.len() / 2;
    runs.swap_remove(mid)
}

fn parse_number(out: &str, prefix: &str) -> f64 {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(prefix))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix:?} in pgbench output:\n{out}"))
}

/// One pgbench run of `workload` (`-S`, or `-f script`) on `port`.
fn bench_one(
    db: &DevDb,
    port: u16,
    workload: &[&str],
    mode: &str,
    secs: &str,
    proxy: Option<u32>,
) -> Run {
    let ci = conninfo(port);
    let mut args = vec!["-n"];
    args.extend_from_slice(workload);
    args.extend(["-M", mode, "-c", CLIENTS, "-j", THREADS, "-T", secs, &ci]);
    let before = proxy.map(cpu_ms);
    let out = pgbench(db, &args);
    let after = proxy.map(cpu_ms);
    let txns = parse_number(&out, "number of transactions actually processed:");
    let tps = parse_number(&out, "tps =");
    let cpu_per_k = match (before, after) {
        (Some(b), Some(a)) if txns > 0.0 => (a - b) / txns * 1000.0,
        _ => 0.0,
    };
    Run {
        tps,
        txns,
        cpu_per_k,
    }
}

/// Prints the select-only table: direct, PgBouncer, pgcloak without rules (the raw relay) and
/// pgcloak whose rules name the app database (every statement is screened; none is encrypted).
fn print_table(rows: &[(&str, [Run; 4])], secs: &str) {
    println!();
    println!(
        "pgbench -S -c {CLIENTS} -j {THREADS} -T {secs}, sslmode=require, scale 10, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| mode     | direct TPS | PgBouncer TPS | pgcloak TPS | pgcloak rules-db TPS | pgcloak/PgBouncer | rules-db/PgBouncer | CPU ms/1k tx: PgBouncer / pgcloak / pgcloak rules-db |"
    );
    println!(
        "|----------|-----------:|--------------:|------------:|---------------------:|------------------:|-------------------:|-----------------------------------------------------:|"
    );
    for (mode, [d, b, c, r]) in rows {
        let cpu = format!(
            "{:.1} / {:.1} / {:.1}",
            b.cpu_per_k, c.cpu_per_k, r.cpu_per_k
        );
        println!(
            "| {mode:<8} | {:>10.0} | {:>13.0} | {:>11.0} | {:>20.0} | {:>17.2} | {:>18.2} | {cpu:>52} |",
            d.tps,
            b.tps,
            c.tps,
            r.tps,
            c.tps / b.tps,
            r.tps / b.tps,
        );
    }
    let total: f64 = rows
        .iter()
        .map(|(_, r)| r.iter().map(|x| x.txns).sum::<f64>())
        .sum();
    println!("({total:.0} transactions in all)");
}

/// The encrypted workload: INSERT, SELECT by the deterministic column, UPDATE. `{T}` is the
/// table: `bench_enc` (three encrypted columns) or its plaintext twin `bench_plain`.
const ENC_SCRIPT: &str = "\\set k random(1, 10000)\n\\set a random(100000, 1000000000000)\n\
    \\set b random(-1000000, 1000000)\n\
    INSERT INTO {T} (acct, note, balance) VALUES (:a, :a, :b);\n\
    SELECT note, balance FROM {T} WHERE acct = :k;\n\
    UPDATE {T} SET balance = :b, note = :a WHERE acct = :k;\n";

/// The "limit" workload: the same three statements run directly against PostgreSQL on
/// `bench_limit`, whose columns hold random `bytea` of the envelope sizes pgcloak stores for
/// these values (spec §6: 6-byte header; `acct` int8 deterministic 6+16+8 = 30 bytes, `note`
/// ~12-digit text randomized 6+12+12+16 = 46, `balance` int8 randomized 6+12+8+16 = 42). The
/// server derives the bytes with `sha256`/`sha512` (a few µs per statement), so this row is the
/// server's cost of storing and indexing envelopes with no proxy at all: encrypted/limit
/// separates pgcloak's own cost from the server's extra cost of wider values.
const LIMIT_SCRIPT: &str = "\\set k random(1, 10000)\n\\set a random(100000, 1000000000000)\n\
    \\set b random(-1000000, 1000000)\n\
    INSERT INTO bench_limit (acct, note, balance) VALUES (substr(sha256(int8send(:a)), 1, 30), \
    substr(sha512(int8send(:a)), 1, 46), substr(sha512(int8send(:b)), 1, 42));\n\
    SELECT note, balance FROM bench_limit WHERE acct = substr(sha256(int8send(:k)), 1, 30);\n\
    UPDATE bench_limit SET balance = substr(sha512(int8send(:b)), 1, 42), \
    note = substr(sha512(int8send(:a)), 1, 46) WHERE acct = substr(sha256(int8send(:k)), 1, 30);\n";

const ENC_DDL: &str = "
    CREATE TABLE bench_enc (id bigserial PRIMARY KEY, acct bytea, note bytea, balance bytea);
    CREATE INDEX ON bench_enc (acct);
    CREATE TABLE bench_plain (id bigserial PRIMARY KEY, acct int8, note text, balance int8);
    CREATE INDEX ON bench_plain (acct);
    INSERT INTO bench_plain (acct, note, balance) SELECT g, g::text, g FROM generate_series(1, 10000) g;
    CREATE TABLE bench_limit (id bigserial PRIMARY KEY, acct bytea, note bytea, balance bytea);
    CREATE INDEX ON bench_limit (acct);
    INSERT INTO bench_limit (acct, note, balance) SELECT substr(sha256(int8send(g)), 1, 30),
        substr(sha512(int8send(g)), 1, 46), substr(sha512(int8send(-g)), 1, 42)
        FROM generate_series(1::int8, 10000) g;";

/// Creates both tables, data keys under a fresh master key (written to a file), and returns
/// (rules path, master key path).
/// `VACUUM ANALYZE` of both tables of the encrypted workload, straight to PostgreSQL.
async fn vacuum(db: &DevDb) {
    let app = db
        .client(APP_USER, APP_PASSWORD, APP_DATABASE)
        .await
        .expect("app login");
    // One statement per call: a multi-statement string is one transaction, which VACUUM refuses.
    for t in ["bench_enc", "bench_plain", "bench_limit"] {
        app.batch_execute(&format!("VACUUM ANALYZE {t}"))
            .await
            .expect("vacuum");
    }
}

async fn enc_setup(db: &DevDb) -> (PathBuf, PathBuf) {
    use pgcloak::control::keys;
    let app = db
        .client(APP_USER, APP_PASSWORD, APP_DATABASE)
        .await
        .expect("app login");
    app.batch_execute(ENC_DDL).await.expect("bench tables");
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema-rules/bench.toml");
    let parsed = pgcloak::config::load_rules(std::slice::from_ref(&rules))
        .expect("rules")
        .remove(0)
        .rules;
    let text = keys::gen_master_key();
    let key_file = db.dir().join("bench-master.key");
    std::fs::write(&key_file, &text).expect("write key");
    let master = pgcloak::crypto::MasterKey::from_base64(&text, "bench").expect("key");
    let mut control = db
        .client(CONTROL_USER, CONTROL_PASSWORD, APP_DATABASE)
        .await
        .expect("control");
    keys::init(&mut control, &parsed, &master)
        .await
        .expect("keys init");
    (rules, key_file)
}

/// Fills `bench_enc` with accounts 1..=10000 through pgcloak (so they are encrypted).
async fn enc_fill(db: &DevDb, port: u16) {
    let client = proxy::app_client(db, port).await;
    let per = 500;
    let values: Vec<String> = (0..per)
        .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
        .collect();
    let sql = format!(
        "INSERT INTO bench_enc (acct, note, balance) VALUES {}",
        values.join(", ")
    );
    let stmt = client.prepare(&sql).await.expect("prepare fill");
    for chunk in 0..10_000 / per {
        let rows: Vec<(i64, String)> = (1..=per as i64)
            .map(|i| {
                (
                    chunk as i64 * per as i64 + i,
                    (chunk as i64 * per as i64 + i).to_string(),
                )
            })
            .collect();
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::new();
        for (n, s) in &rows {
            params.push(n);
            params.push(s);
            params.push(n);
        }
        client
            .execute(&stmt, &params)
            .await
            .expect("fill bench_enc");
    }
}

fn print_enc_table(rows: &[(&str, [Run; 5])], secs: &str) {
    println!();
    println!(
        "encrypted workload (INSERT; SELECT by deterministic acct; UPDATE — 3 encrypted columns) \
         -c {CLIENTS} -j {THREADS} -T {secs}, sslmode=require"
    );
    println!(
        "| mode     | direct plain TPS | PgBouncer plain TPS | pgcloak plain TPS | pgcloak encrypted TPS | limit TPS | enc/PgBouncer | enc/direct | enc/limit | CPU ms/1k tx: PgBouncer plain / pgcloak plain / pgcloak enc |"
    );
    println!(
        "|----------|-----------------:|--------------------:|------------------:|----------------------:|----------:|--------------:|-----------:|----------:|------------------------------------------------------------:|"
    );
    for (mode, [d, b, p, e, l]) in rows {
        let cpu = format!(
            "{:.1} / {:.1} / {:.1}",
            b.cpu_per_k, p.cpu_per_k, e.cpu_per_k
        );
        println!(
            "| {mode:<8} | {:>16.0} | {:>19.0} | {:>17.0} | {:>21.0} | {:>9.0} | {:>13.2} | {:>10.2} | {:>9.2} | {cpu:>59} |",
            d.tps,
            b.tps,
            p.tps,
            e.tps,
            l.tps,
            e.tps / b.tps,
            e.tps / d.tps,
            e.tps / l.tps,
        );
    }
}

/// The encrypted workload against direct / PgBouncer (plaintext twin) and pgcloak (both).
fn run_encrypted(
    rt: &tokio::runtime::Runtime,
    db: &DevDb,
    (cloak, port): (&Guard, u16),
    bouncer: (u32, u16),
    secs: &str,
) {
    rt.block_on(enc_fill(db, port));
    let script = |table: &str| {
        let path = db.dir().join(format!("{table}.sql"));
        std::fs::write(&path, ENC_SCRIPT.replace("{T}", table)).expect("write script");
        path.display().to_string()
    };
    let (plain, enc) = (script("bench_plain"), script("bench_enc"));
    let limit = db.dir().join("bench_limit.sql");
    std::fs::write(&limit, LIMIT_SCRIPT).expect("write limit script");
    let limit = limit.display().to_string();
    let (plain, enc) = (["-f", plain.as_str()], ["-f", enc.as_str()]);
    let limit = ["-f", limit.as_str()];
    let mut rows = Vec::new();
    for mode in ["extended", "prepared"] {
        eprintln!("e2e enc: -M {mode}: direct, pgbouncer, pgcloak plain, pgcloak encrypted, limit");
        let mut runs: [Vec<Run>; 5] = Default::default();
        for _ in 0..repeat() {
            // Every run inserts rows; start each round from vacuumed tables so that later
            // rounds do not measure more bloat than earlier ones.
            rt.block_on(vacuum(db));
            runs[0].push(bench_one(db, db.port(), &plain, mode, secs, None));
            runs[1].push(bench_one(
                db,
                bouncer.1,
                &plain,
                mode,
                secs,
                Some(bouncer.0),
            ));
            runs[2].push(bench_one(db, port, &plain, mode, secs, Some(cloak.pid())));
            runs[3].push(bench_one(db, port, &enc, mode, secs, Some(cloak.pid())));
            runs[4].push(bench_one(db, db.port(), &limit, mode, secs, None));
        }
        rows.push((mode, runs.map(median)));
    }
    print_enc_table(&rows, secs);
}

fn main() {
    let secs = std::env::var("PGCLOAK_BENCH_SECS").unwrap_or_else(|_| "15".into());
    assert!(
        secs.parse::<u32>().is_ok_and(|s| s > 0),
        "PGCLOAK_BENCH_SECS must be a number"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let db = rt
        .block_on(DevDb::start(DevDbOptions::default()))
        .expect("start PostgreSQL");
    eprintln!("e2e: PostgreSQL on port {}; pgbench -i -s 10 …", db.port());
    pgbench(&db, &["-i", "-q", "-s", "10", &conninfo(db.port())]);
    let verifier = rt.block_on(app_verifier(&db));
    let (bouncer, bouncer_port) = start_pgbouncer(&db, &verifier);
    let workload = std::env::var("PGCLOAK_BENCH_WORKLOAD").unwrap_or_else(|_| "all".into());
    // The encrypting proxy: its rules name the app database (`schema-rules/bench.toml`).
    let (rules, key) = rt.block_on(enc_setup(&db));
    let (enc_cloak, enc_port) = start_pgcloak(&db, Some((&rules, &key)));
    if workload != "select" {
        run_encrypted(
            &rt,
            &db,
            (&enc_cloak, enc_port),
            (bouncer.pid(), bouncer_port),
            &secs,
        );
        if workload == "enc" {
            return;
        }
    }
    let (cloak, cloak_port) = start_pgcloak(&db, None);
    let (bouncer_pid, cloak_pid) = (bouncer.pid(), cloak.pid());
    let mut rows = Vec::new();
    for mode in MODES {
        eprintln!("e2e: -M {mode}: direct, pgbouncer, pgcloak, pgcloak rules-db ({secs} s each)");
        let mut runs: [Vec<Run>; 4] = Default::default();
        for _ in 0..repeat() {
            runs[0].push(bench_one(&db, db.port(), &["-S"], mode, &secs, None));
            runs[1].push(bench_one(
                &db,
                bouncer_port,
                &["-S"],
                mode,
                &secs,
                Some(bouncer_pid),
            ));
            runs[2].push(bench_one(
                &db,
                cloak_port,
                &["-S"],
                mode,
                &secs,
                Some(cloak_pid),
            ));
            runs[3].push(bench_one(
                &db,
                enc_port,
                &["-S"],
                mode,
                &secs,
                Some(enc_cloak.pid()),
            ));
        }
        rows.push((mode, runs.map(median)));
    }
    print_table(&rows, &secs);
    // Proxies first, then PostgreSQL (field order would drop `db` last anyway).
    drop(cloak);
    drop(enc_cloak);
    drop(bouncer);
    drop(db);
}
