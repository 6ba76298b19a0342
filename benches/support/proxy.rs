//! Shared by the end-to-end and memory benchmarks: a free port, and `pgcloak serve` (the
//! release binary, or `PGCLOAK_BENCH_BIN`) started in front of a [`DevDb`] with a certificate
//! from its CA, optionally encrypting with a rules file and a master key file.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use pgcloak::devdb::{APP_DATABASE, APP_PASSWORD, APP_USER, CONTROL_PASSWORD, CONTROL_USER, DevDb};

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Writes `<name>-<port>.toml` (certificate `<name>.crt`/`.key`) into the database's directory
/// and spawns `pgcloak serve` on it; `listen_extra` is appended to `[listen]`.
pub fn spawn(
    db: &DevDb,
    name: &str,
    port: u16,
    enc: Option<(&Path, &Path)>,
    listen_extra: &str,
) -> Child {
    let dir = db.dir();
    let (cert, key) = db.ca().issue(&["localhost", "127.0.0.1"]).expect("issue");
    std::fs::write(dir.join(format!("{name}.crt")), cert).expect("write");
    std::fs::write(dir.join(format!("{name}.key")), key).expect("write");
    let (head, keys) = enc.map_or_else(Default::default, |(rules, key)| {
        (
            format!("rules = [{:?}]\n\n", rules.display().to_string()),
            format!(
                "[keys]\nmaster_key_file = {:?}\n\n",
                key.display().to_string()
            ),
        )
    });
    let config = format!(
        "{head}[listen]\naddress = \"127.0.0.1:{port}\"\ntls_cert = \"{name}.crt\"\n\
         tls_key = \"{name}.key\"\n{listen_extra}\n\
         [upstream]\nhost = \"localhost\"\nport = {}\ntls_ca = {:?}\n\n\
         [control]\nuser = \"{CONTROL_USER}\"\npassword_env = \"PGCLOAK_CONTROL_PASSWORD\"\n\n{keys}\
         [log]\nlevel = \"warn\"\n",
        db.port(),
        db.ca_cert_path().display().to_string(),
    );
    let path = dir.join(format!("{name}-{port}.toml"));
    std::fs::write(&path, config).expect("write config");
    let bin = std::env::var_os("PGCLOAK_BENCH_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_pgcloak")),
        PathBuf::from,
    );
    Command::new(bin)
        .args(["serve", "-c"])
        .arg(&path)
        .env("PGCLOAK_CONTROL_PASSWORD", CONTROL_PASSWORD)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn pgcloak")
}

/// A logged-in app session through the proxy on `port` (TLS, the DevDb's CA).
pub async fn app_client(db: &DevDb, port: u16) -> tokio_postgres::Client {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("localhost")
        .hostaddr(Ipv4Addr::LOCALHOST.into())
        .port(port)
        .user(APP_USER)
        .password(APP_PASSWORD)
        .dbname(APP_DATABASE)
        .ssl_mode(tokio_postgres::config::SslMode::Require);
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(db.tls_client_config().expect("tls"));
    let (client, conn) = cfg.connect(tls).await.expect("login through pgcloak");
    tokio::spawn(conn);
    client
}
