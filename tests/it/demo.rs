//! `pgcloak demo` as a user runs it: the real binary, psql through the proxy (plaintext) and
//! directly (ciphertext), then Ctrl-C cleans up.

use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

async fn psql(conninfo: &str, sql: &str) -> (bool, String) {
    let out = Command::new("psql")
        .args([conninfo, "-XAt", "-c", sql])
        .output()
        .await
        .expect("run psql");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_serves_decrypted_rows_and_cleans_up() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgcloak"))
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start demo");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut conninfos = Vec::new();
    let mut metrics = None;
    let t0 = Instant::now();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(120), lines.next_line()).await
    {
        if let Some(rest) = line.trim().strip_prefix("psql \"") {
            conninfos.push(rest.trim_end_matches('"').to_owned());
        }
        if let Some(rest) = line.trim().strip_prefix("Metrics: http://") {
            metrics = rest.split('/').next().map(str::to_owned);
        }
        if line.contains("Ctrl-C") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "demo did not start"
        );
    }
    assert_eq!(conninfos.len(), 2, "demo printed: {conninfos:?}");
    let (through, direct) = (&conninfos[0], &conninfos[1]);

    let (ok, out) = psql(
        through,
        "select name, ssn, birth_date from customers where email = 'ada@example.com'",
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "Ada Lovelace|123-45-6789|1815-12-10");
    let (ok, out) = psql(through, "select 1 from customers where ssn like '1%'").await;
    assert!(!ok && out.contains("LIKE"), "{out}");

    let (ok, out) = psql(
        direct,
        "select encode(ssn, 'hex') from customers order by id",
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(out.lines().count(), 3, "{out}");
    for stored in out.lines() {
        assert!(
            stored.starts_with("0102"),
            "not a deterministic envelope: {stored}"
        );
        assert!(!stored.contains(&hex::encode("123-45-6789")));
    }

    let dir = through
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("sslrootcert="))
        .map(|ca| std::path::PathBuf::from(ca).parent().unwrap().to_owned())
        .unwrap();
    assert!(dir.exists());
    // The demo serves its metrics; the refusal above moved a counter.
    let metrics: std::net::SocketAddr = metrics
        .expect("demo printed its metrics URL")
        .parse()
        .unwrap();
    let (status, body) = crate::ops_util::get(metrics, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        crate::ops_util::sample(&body, "pgcloak_refusals_total", &[("sqlstate", "0A000")])
            .is_some(),
        "{body}"
    );
    let pid = child.id().unwrap();
    kill(Pid::from_raw(child.id().unwrap() as i32), Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("demo did not stop")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(!dir.exists(), "the throwaway database was not removed");
    // Nor is the initdb template left behind (a directory claimed by the demo's pid).
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_to_string(e.path().join("owner.pid"))
                .is_ok_and(|p| p.trim() == pid.to_string())
        })
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
