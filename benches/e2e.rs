//! End-to-end benchmark: `pgbench -S` with 8 clients in simple, extended and prepared modes
//! against PostgreSQL directly, through PgBouncer (session mode, TLS on both legs, server
//! certificate verify-full) and through pgcloak (the release binary, `serve`), all in one run
//! on one throwaway PostgreSQL. Prints TPS, the ratios pgcloak/direct and pgcloak/PgBouncer, and
//! each proxy's CPU time per 1,000 transactions (utime+stime from /proc/<pid>/stat).
//!
//! `cargo bench --bench e2e`; `PGCLOAK_BENCH_SECS` sets the seconds per run (default 15).
//! Everything started here is stopped on exit, also on a panic (guards with `Drop`).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        if let Some(f) = &self.pid_file {
            if let Some(pid) = std::fs::read_to_string(f)
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
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

/// Starts `pgcloak serve` (the release binary) on a free port.
fn start_pgcloak(db: &DevDb) -> (Guard, u16) {
    let port = free_port();
    let dir = db.dir();
    let (cert, key) = db.ca().issue(&["localhost", "127.0.0.1"]).expect("issue");
    std::fs::write(dir.join("cloak.crt"), cert).expect("write");
    std::fs::write(dir.join("cloak.key"), key).expect("write");
    let config = format!(
        "[listen]\naddress = \"127.0.0.1:{port}\"\ntls_cert = \"cloak.crt\"\ntls_key = \"cloak.key\"\n\n\
         [upstream]\nhost = \"localhost\"\nport = {}\ntls_ca = {:?}\n\n\
         [control]\nuser = \"{CONTROL_USER}\"\npassword_env = \"PGCLOAK_CONTROL_PASSWORD\"\n\n\
         [log]\nlevel = \"warn\"\n",
        db.port(),
        db.ca_cert_path().display().to_string(),
    );
    let path = dir.join("pgcloak-bench.toml");
    std::fs::write(&path, config).expect("write config");
    let child = Command::new(env!("CARGO_BIN_EXE_pgcloak"))
        .args(["serve", "-c"])
        .arg(&path)
        .env("PGCLOAK_CONTROL_PASSWORD", CONTROL_PASSWORD)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn pgcloak");
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

fn parse_number(out: &str, prefix: &str) -> f64 {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(prefix))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix:?} in pgbench output:\n{out}"))
}

fn bench_one(db: &DevDb, port: u16, mode: &str, secs: &str, proxy: Option<u32>) -> Run {
    let ci = conninfo(port);
    let args = [
        "-n", "-S", "-M", mode, "-c", CLIENTS, "-j", THREADS, "-T", secs, &ci,
    ];
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

fn print_table(rows: &[(&str, Run, Run, Run)], secs: &str) {
    println!();
    println!(
        "pgbench -S -c {CLIENTS} -j {THREADS} -T {secs}, sslmode=require, scale 10, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| mode     | direct TPS | PgBouncer TPS | pgcloak TPS | pgcloak/direct | pgcloak/PgBouncer | PgBouncer CPU ms/1k tx | pgcloak CPU ms/1k tx |"
    );
    println!(
        "|----------|-----------:|--------------:|------------:|---------------:|------------------:|-----------------------:|---------------------:|"
    );
    for (mode, d, b, c) in rows {
        println!(
            "| {mode:<8} | {:>10.0} | {:>13.0} | {:>11.0} | {:>14.2} | {:>17.2} | {:>22.1} | {:>20.1} |",
            d.tps,
            b.tps,
            c.tps,
            c.tps / d.tps,
            c.tps / b.tps,
            b.cpu_per_k,
            c.cpu_per_k
        );
    }
    let total: f64 = rows.iter().map(|r| r.1.txns + r.2.txns + r.3.txns).sum();
    println!("({total:.0} transactions in all)");
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
    let (cloak, cloak_port) = start_pgcloak(&db);
    let (bouncer_pid, cloak_pid) = (bouncer.pid(), cloak.pid());
    let mut rows = Vec::new();
    for mode in MODES {
        eprintln!("e2e: -M {mode}: direct, pgbouncer, pgcloak ({secs} s each)");
        let d = bench_one(&db, db.port(), mode, &secs, None);
        let b = bench_one(&db, bouncer_port, mode, &secs, Some(bouncer_pid));
        let c = bench_one(&db, cloak_port, mode, &secs, Some(cloak_pid));
        rows.push((mode, d, b, c));
    }
    print_table(&rows, &secs);
    // Proxies first, then PostgreSQL (field order would drop `db` last anyway).
    drop(cloak);
    drop(bouncer);
    drop(db);
}
