//! The leak oracle: a PostgreSQL that logs every statement with its full parameters, random
//! sentinel values, and a scan for those sentinels wherever plaintext could end up on the
//! server — the server log, every user table, and the data files and WAL after `CHECKPOINT`.
//!
//! A sentinel is `sentinel_<16 hex>`; the scans look for it as plain bytes and as lowercase hex
//! (how a `bytea` literal or a `t::text` rendering of a `bytea` column would show it). A test puts
//! sentinels only where a value is bound for an encrypted column, so any sentinel found anywhere
//! on the server is plaintext pgcloak let through (a statement it forwarded is in the log even
//! when the server then rejected it). The oracle's own connections turn `log_statement` off, so
//! they add nothing to the log.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use pgcloak::devdb::{APP_DATABASE, DevDb, DevDbOptions};

/// The prefix every sentinel starts with.
pub const PREFIX: &str = "sentinel_";
/// Hex digits after the prefix.
const DIGITS: usize = 16;

/// Server settings that make PostgreSQL log every statement and every parameter in full.
pub fn logging_settings() -> Vec<(String, String)> {
    vec![
        ("log_statement".into(), "all".into()),
        ("log_parameter_max_length".into(), "-1".into()),
        ("log_parameter_max_length_on_error".into(), "-1".into()),
        ("log_min_error_statement".into(), "error".into()),
    ]
}

/// A DevDb started with [`logging_settings`].
pub async fn start_logged_db() -> DevDb {
    DevDb::start(DevDbOptions {
        settings: logging_settings(),
        ..DevDbOptions::default()
    })
    .await
    .expect("DevDb start")
}

/// A fresh random sentinel, `sentinel_<16 hex>`.
pub fn sentinel() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{PREFIX}{:016x}", h.finish())
}

/// Where a sentinel was found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    /// The server log (a forwarded statement or its parameters), with the log line.
    Log(String),
    /// A row of this table (`schema.table`).
    Table(String),
    /// A data or WAL file (path relative to the data directory).
    Disk(String),
}

impl Place {
    /// "log", "table" or "disk".
    pub fn kind(&self) -> &'static str {
        match self {
            Place::Log(_) => "log",
            Place::Table(_) => "table",
            Place::Disk(_) => "disk",
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Log(line) => {
                let short: String = line.chars().take(400).collect();
                write!(f, "log: {short}")
            }
            Place::Table(t) => write!(f, "table {t}"),
            Place::Disk(p) => write!(f, "disk file {p}"),
        }
    }
}

/// One sentinel found somewhere.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    pub sentinel: String,
    pub place: Place,
}

/// Every sentinel in `hay`, as plain bytes or lowercase hex of its bytes.
pub fn sentinels_in(hay: &[u8]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let plain = PREFIX.as_bytes();
    let hexed = hex::encode(PREFIX);
    for (needle, hex_form) in [(plain, false), (hexed.as_bytes(), true)] {
        let tail = if hex_form { DIGITS * 2 } else { DIGITS };
        let mut from = 0;
        while let Some(at) = find(&hay[from..], needle) {
            let start = from + at + needle.len();
            from = from + at + 1;
            let Some(rest) = hay.get(start..start + tail) else {
                continue;
            };
            let digits = if hex_form {
                match hex::decode(rest) {
                    Ok(d) => d,
                    Err(_) => continue,
                }
            } else {
                rest.to_vec()
            };
            if digits.len() == DIGITS && digits.iter().all(|b| b.is_ascii_hexdigit()) {
                out.insert(format!("{PREFIX}{}", String::from_utf8_lossy(&digits)));
            }
        }
    }
    out
}

/// The first index of `needle` in `hay` (scans for the first byte, then compares).
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        let pos = hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)?;
        let at = i + pos;
        if &hay[at..at + needle.len()] == needle {
            return Some(at);
        }
        i = at + 1;
    }
    None
}

/// A superuser connection to `database` that logs nothing (so the oracle's own statements do
/// not show up in the log it scans).
pub async fn quiet_superuser(db: &DevDb, database: &str) -> tokio_postgres::Client {
    let c = db
        .superuser_client(database)
        .await
        .expect("oracle superuser login");
    c.batch_execute("SET log_statement = 'none'; SET log_min_error_statement = 'panic'")
        .await
        .expect("quiet oracle session");
    c
}

/// Sentinels in the server log, with the line each is on.
pub fn scan_log(db: &DevDb) -> Vec<Found> {
    let text = std::fs::read(db.log_path()).unwrap_or_default();
    let mut out = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        for s in sentinels_in(line) {
            out.push(Found {
                sentinel: s,
                place: Place::Log(String::from_utf8_lossy(line).into_owned()),
            });
        }
    }
    out
}

/// Sentinels in any row of any user table of `database` (ordinary, partitioned and
/// materialized; TOAST is read through its table), read straight from PostgreSQL as `t::text`.
pub async fn scan_tables(db: &DevDb, database: &str) -> Vec<Found> {
    let c = quiet_superuser(db, database).await;
    let tables = c
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'm') AND c.relpersistence <> 't' \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1",
            &[],
        )
        .await
        .expect("list user tables");
    let mut out = Vec::new();
    for row in tables {
        let name: String = row.get(0);
        let sql = format!("SELECT leak_oracle_row::text FROM {name} leak_oracle_row");
        let rows = match c.query(sql.as_str(), &[]).await {
            Ok(r) => r,
            Err(e) => panic!("leak oracle cannot scan {name}: {e}"),
        };
        for r in rows {
            let text: String = r.get::<_, Option<String>>(0).unwrap_or_default();
            for s in sentinels_in(text.as_bytes()) {
                out.push(Found {
                    sentinel: s,
                    place: Place::Table(name.clone()),
                });
            }
        }
    }
    out
}

/// `CHECKPOINT` and a WAL switch, then sentinels in every file under the data directory's
/// `base/`, `global/` and `pg_wal/`.
pub async fn scan_disk(db: &DevDb) -> Vec<Found> {
    let c = quiet_superuser(db, "postgres").await;
    c.batch_execute("CHECKPOINT").await.expect("CHECKPOINT");
    let _ = c.batch_execute("SELECT pg_switch_wal()").await;
    c.batch_execute("CHECKPOINT").await.expect("CHECKPOINT");
    let data = db.data_dir();
    let mut out = Vec::new();
    for sub in ["base", "global", "pg_wal"] {
        let mut files = Vec::new();
        walk(&data.join(sub), &mut files);
        for f in files {
            let Ok(bytes) = std::fs::read(&f) else {
                continue; // removed meanwhile (a dropped relation, a recycled segment)
            };
            for s in sentinels_in(&bytes) {
                out.push(Found {
                    sentinel: s,
                    place: Place::Disk(rel(&data, &f)),
                });
            }
        }
    }
    out
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&p, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

/// Everything the three scans find (the app database's tables).
pub async fn scan_all(db: &DevDb) -> Vec<Found> {
    let mut all = scan_log(db);
    all.extend(scan_tables(db, APP_DATABASE).await);
    all.extend(scan_disk(db).await);
    all.sort();
    all.dedup();
    all
}

/// Panics naming every place where one of `sentinels` was found.
pub async fn assert_no_leak(db: &DevDb, sentinels: &[String]) {
    let wanted: BTreeSet<&str> = sentinels.iter().map(String::as_str).collect();
    let found: Vec<Found> = scan_all(db)
        .await
        .into_iter()
        .filter(|f| wanted.contains(f.sentinel.as_str()))
        .collect();
    assert!(
        found.is_empty(),
        "plaintext reached the server:\n{}",
        found
            .iter()
            .map(|f| format!("  {} in {}", f.sentinel, f.place))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oracle_finds_sentinels_in_log_tables_and_disk() {
    let db = start_logged_db().await;
    let app = db
        .client(
            pgcloak::devdb::APP_USER,
            pgcloak::devdb::APP_PASSWORD,
            APP_DATABASE,
        )
        .await
        .expect("direct app login");
    let (in_text, in_bytea, in_param, never) = (sentinel(), sentinel(), sentinel(), sentinel());
    app.batch_execute(&format!(
        "CREATE TABLE plain (id int, t text, b bytea); \
         INSERT INTO plain VALUES (1, '{in_text}', NULL), (2, NULL, convert_to('{in_bytea}', 'UTF8'))"
    ))
    .await
    .expect("plain writes");
    // A parameter of an extended statement that the server rejects: only the log has it.
    let err = app
        .query("SELECT $1::text::int", &[&in_param])
        .await
        .expect_err("not an int");
    assert_eq!(err.code().map(|c| c.code()), Some("22P02"));
    let found = scan_all(&db).await;
    let kinds = |s: &str| -> BTreeSet<&'static str> {
        found
            .iter()
            .filter(|f| f.sentinel == s)
            .map(|f| f.place.kind())
            .collect()
    };
    assert_eq!(kinds(&in_text), BTreeSet::from(["log", "table", "disk"]));
    assert_eq!(
        kinds(&in_bytea),
        BTreeSet::from(["log", "table", "disk"]),
        "{found:?}"
    );
    assert_eq!(kinds(&in_param), BTreeSet::from(["log"]));
    assert!(kinds(&never).is_empty());
    assert_no_leak(&db, std::slice::from_ref(&never)).await;
    assert!(
        found
            .iter()
            .any(|f| f.place == Place::Table("public.plain".into())),
        "{found:?}"
    );
    // The oracle's own scans logged nothing: the log holds what it held.
    let log_before = scan_log(&db);
    let _ = scan_all(&db).await;
    assert_eq!(scan_log(&db), log_before);
}

#[test]
fn sentinels_are_found_plain_and_hex_encoded() {
    let s = sentinel();
    assert!(s.starts_with(PREFIX) && s.len() == PREFIX.len() + DIGITS);
    assert_ne!(s, sentinel());
    let hay = format!("x{s}y \\x{} z sentinel_short", hex::encode(&s));
    assert_eq!(sentinels_in(hay.as_bytes()), BTreeSet::from([s.clone()]));
    let two = format!("{s}{}", sentinel());
    assert_eq!(sentinels_in(two.as_bytes()).len(), 2);
    assert!(sentinels_in(b"nothing here").is_empty());
}
