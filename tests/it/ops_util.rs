//! Helpers of the operations tests (`ops_*`): an encrypted proxy with extra config, plain
//! HTTP/1.1 GETs against the metrics endpoint, reading one sample out of `/metrics`, and the
//! pgcloak binary to run (`PGCLOAK_IT_BIN` overrides the one cargo built, for a copy).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use pgcloak::devdb::{CONTROL_PASSWORD, CONTROL_USER, DevDb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{HANG, ProxyOptions, TestEnv, with_database};

/// The pgcloak binary.
pub fn bin() -> String {
    std::env::var("PGCLOAK_IT_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_pgcloak").to_owned())
}

/// `keys init` for `rules_text` in `db`, then pgcloak in front of it with `extra` appended to
/// its config. Returns the env and the master key (base64).
pub async fn start_with_extra(db: DevDb, rules_text: &str, extra: String) -> (TestEnv, String) {
    let key_text = init_keys(&db, rules_text).await;
    let opts = ProxyOptions {
        rules: Some(rules_text.to_owned()),
        master_key_b64: Some(key_text.clone()),
        extra_toml: Some(extra),
        ..ProxyOptions::default()
    };
    (TestEnv::start_on(db, opts).await, key_text)
}

/// A fresh master key and `keys init` of `rules_text` under it; returns the key (base64).
pub async fn init_keys(db: &DevDb, rules_text: &str) -> String {
    let text = with_database(rules_text, db.database());
    let file = pgcloak::config::parse_rules_file(&text, Path::new("rules.toml")).unwrap();
    let rules = pgcloak::config::Rules::from_columns(file.columns).unwrap();
    let key_text = pgcloak::crypto::gen_master_key();
    let master = pgcloak::crypto::MasterKey::from_base64(&key_text, "test").unwrap();
    let mut control = db
        .client(CONTROL_USER, CONTROL_PASSWORD, &file.database)
        .await
        .unwrap();
    pgcloak::control::keys::init(&mut control, &rules, &master)
        .await
        .unwrap();
    key_text
}

/// `GET path` over HTTP/1.1: (status, body).
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::time::timeout(HANG, tokio::net::TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("metrics endpoint {addr}: {e}"));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    tokio::time::timeout(HANG, s.read_to_string(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {raw}"));
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

/// The value of the sample `name{…}` whose labels include every one of `labels`.
pub fn sample(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    body.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        if n != name {
            return None;
        }
        labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
            .then(|| value.parse().ok())?
    })
}

/// Polls `check` until it is true; panics after [`HANG`] with `what`.
pub async fn until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    crate::harness::wait_until(HANG, what, check).await;
}

/// A free 127.0.0.1 address.
pub fn free_addr() -> SocketAddr {
    crate::serve::free_addr()
}

/// An app-role client of the proxy at `addr` (verify-full TLS against `db`'s CA).
pub async fn app_at(
    db: &DevDb,
    addr: SocketAddr,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("localhost")
        .hostaddr(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
        .port(addr.port())
        .user(pgcloak::devdb::APP_USER)
        .password(pgcloak::devdb::APP_PASSWORD)
        .dbname(db.database())
        .connect_timeout(Duration::from_secs(20))
        .ssl_mode(tokio_postgres::config::SslMode::Require);
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(db.tls_client_config().unwrap());
    let (c, conn) = cfg.connect(tls).await?;
    tokio::spawn(conn);
    Ok(c)
}

/// The key version in the stored envelope of `column` in row `id` of `table`, read directly.
pub async fn stored_version(
    direct: &tokio_postgres::Client,
    table: &str,
    column: &str,
    id: i32,
) -> Option<u32> {
    let sql = format!("select {column} from {table} where id = $1");
    let row = direct.query_opt(&sql, &[&id]).await.unwrap()?;
    let v: Option<Vec<u8>> = row.get(0);
    let v = v?;
    (v.len() > 6 && v[0] == 1).then(|| u32::from_be_bytes([v[2], v[3], v[4], v[5]]))
}
