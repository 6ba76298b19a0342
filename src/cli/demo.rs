//! `pgcloak demo`: a throwaway TLS PostgreSQL from the system's binaries, a fresh master key,
//! the demo rules (`schema-rules/demo.toml`), data keys, a `customers` table with a few rows
//! written through the proxy, and the proxy on 127.0.0.1:6432. It prints how to connect through
//! pgcloak (plaintext) and directly (ciphertext), and cleans up on Ctrl-C / SIGTERM.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use pgcloak::config::{Config, load_rules};
use pgcloak::control::{self, keys};
use pgcloak::crypto::MasterKey;
use pgcloak::devdb::{self, DevDb, DevDbOptions};
use tokio_postgres_rustls::MakeRustlsConnect;
use zeroize::Zeroizing;

const DEMO_RULES: &str = include_str!("../../schema-rules/demo.toml");

const DEMO_TABLE: &str = include_str!("../../docker/demo.sql");

const DEMO_ROWS: [(&str, &str, &str, &str, &str); 3] = [
    (
        "Ada Lovelace",
        "ada@example.com",
        "123-45-6789",
        "1815-12-10",
        "12500.00",
    ),
    (
        "Alan Turing",
        "alan@example.com",
        "987-65-4321",
        "1912-06-23",
        "9000.50",
    ),
    (
        "Grace Hopper",
        "grace@example.com",
        "555-12-3456",
        "1906-12-09",
        "31000.00",
    ),
];

pub(super) fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut f, contents.as_bytes())?;
    Ok(())
}

/// Writes certificates, rules, the master key and a config into the devdb's scratch dir.
fn write_demo_files(db: &DevDb, listen: &str, extra: &str) -> anyhow::Result<Config> {
    write_proxy_files(
        db,
        listen,
        ("demo.toml", DEMO_RULES),
        "PGCLOAK_DEMO_UNUSED",
        extra,
    )
}

/// Writes a proxy certificate, one rules file (`rules`: file name and text), a fresh master
/// key and `pgcloak.toml` (listening on `listen`, upstream this devdb over verify-full TLS, the
/// control password read from `password_env`) into the devdb's scratch dir; loads the config.
pub(super) fn write_proxy_files(
    db: &DevDb,
    listen: &str,
    rules: (&str, &str),
    password_env: &str,
    extra: &str,
) -> anyhow::Result<Config> {
    let dir = db.dir();
    let (cert, key) = db.ca().issue(&["localhost", "127.0.0.1"])?;
    std::fs::write(dir.join("proxy.crt"), cert)?;
    write_private(&dir.join("proxy.key"), &key)?;
    std::fs::write(dir.join(rules.0), rules.1)?;
    write_private(&dir.join("master.key"), &pgcloak::crypto::gen_master_key())?;
    let text = format!(
        r#"rules = ["{rules_file}"]
[listen]
address = "{listen}"
tls_cert = "proxy.crt"
tls_key = "proxy.key"
[upstream]
host = "localhost"
port = {port}
tls_ca = "{ca}"
[control]
user = "{control}"
password_env = "{password_env}"
[keys]
master_key_file = "master.key"
{extra}"#,
        rules_file = rules.0,
        port = db.port(),
        ca = db.ca_cert_path().display(),
        control = devdb::CONTROL_USER,
    );
    let path = dir.join("pgcloak.toml");
    std::fs::write(&path, &text)?;
    Ok(Config::load(&path)?)
}

/// Creates the table and the data keys.
async fn prepare_database(db: &DevDb, cfg: &Config, master: &MasterKey) -> anyhow::Result<()> {
    let su = db.superuser_client(devdb::APP_DATABASE).await?;
    su.batch_execute(DEMO_TABLE).await?;
    su.batch_execute("ALTER TABLE public.customers OWNER TO app")
        .await?;
    for db in load_rules(&cfg.rules)? {
        let mut control = control::connect(cfg, devdb::CONTROL_PASSWORD, &db.database).await?;
        keys::init(&mut control, &db.rules, master).await?;
    }
    Ok(())
}

/// Inserts the demo rows through the proxy, so they are stored encrypted.
async fn insert_rows(db: &DevDb, port: u16) -> anyhow::Result<()> {
    let mut pg = tokio_postgres::Config::new();
    pg.host("localhost")
        .hostaddr(std::net::Ipv4Addr::LOCALHOST.into())
        .port(port)
        .user(devdb::APP_USER)
        .password(devdb::APP_PASSWORD)
        .dbname(devdb::APP_DATABASE)
        .ssl_mode(tokio_postgres::config::SslMode::Require);
    let tls = MakeRustlsConnect::new(db.tls_client_config()?);
    let (client, conn) = pg
        .connect(tls)
        .await
        .context("connecting through pgcloak")?;
    tokio::spawn(conn);
    for (name, email, ssn, born, limit) in DEMO_ROWS {
        let sql = format!(
            "INSERT INTO customers (name, email, ssn, birth_date, credit_limit) \
             VALUES ('{name}', '{email}', '{ssn}', '{born}', {limit})"
        );
        client
            .simple_query(&sql)
            .await
            .context("inserting demo rows")?;
    }
    Ok(())
}

fn print_instructions(db: &DevDb, proxy_port: u16) {
    let ca = db.ca_cert_path().display();
    let (user, pw, dbname) = (devdb::APP_USER, devdb::APP_PASSWORD, devdb::APP_DATABASE);
    println!("pgcloak demo is running. Through pgcloak (values decrypted):");
    println!(
        "  psql \"host=localhost port={proxy_port} dbname={dbname} user={user} password={pw} sslmode=verify-full sslrootcert={ca}\""
    );
    println!("Directly to PostgreSQL (what is stored: ciphertext):");
    println!(
        "  psql \"host=localhost port={} dbname={dbname} user={user} password={pw} sslmode=verify-full sslrootcert={ca}\"",
        db.port()
    );
    println!("Try: SELECT * FROM customers WHERE email = 'ada@example.com';");
    println!("     SELECT * FROM customers WHERE ssn LIKE '123%';   -- refused: 0A000");
    println!("Press Ctrl-C to stop and clean up.");
}

/// Binds `listen`, with a hint when the port is taken.
async fn bind(listen: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            " (is another pgcloak demo or a PostgreSQL pooler running? pick another address \
             with --listen 127.0.0.1:6433)"
        } else {
            ""
        };
        anyhow::anyhow!("cannot listen on {listen}: {e}{hint}")
    })
}

/// Logs pgcloak's own events (refusals, reloads, metrics address) at info to stderr.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,pgcloak=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the demo until SIGINT/SIGTERM; everything it made (database, template, files) is
/// removed on the way out, also after an error.
pub fn run(listen: &str) -> anyhow::Result<()> {
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(demo(listen));
    pgcloak::devdb::remove_template();
    result
}

async fn demo(listen: &str) -> anyhow::Result<()> {
    {
        let listener = bind(listen).await?;
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let metrics_url = format!("http://{metrics}/metrics");
        let db = DevDb::start(DevDbOptions::default())
            .await
            .context("starting a throwaway PostgreSQL")?;
        let extra = format!("[metrics]\naddress = \"{metrics}\"\n");
        let cfg = Arc::new(write_demo_files(&db, listen, &extra)?);
        let master = pgcloak::config::secrets::master_key_source(&cfg.keys)?.load()?;
        prepare_database(&db, &cfg, &master).await?;
        let port = listener.local_addr()?.port();
        let secrets = pgcloak::Secrets {
            control_password: Zeroizing::new(devdb::CONTROL_PASSWORD.to_owned()),
            master_key: Some(master),
            key_provider: None,
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let proxy = tokio::spawn(pgcloak::run(listener, Arc::clone(&cfg), secrets, async {
            let _ = stop_rx.await;
        }));
        insert_rows(&db, port).await?;
        println!("Metrics: {metrics_url}  (health: /healthz, /readyz); refusals are logged below.");
        print_instructions(&db, port);
        crate::shutdown_signal().await;
        let _ = stop_tx.send(());
        let _ = proxy.await;
    }
    println!("stopped; the throwaway database is removed");
    Ok(())
}
