//! devdb: a throwaway TLS PostgreSQL started from the system's binaries, for the integration
//! tests and `pgcloak demo`.
//!
//! [`DevDb::start`] creates a temporary directory, a CA ([`TestCa`]) and server certificate,
//! copies a per-process `initdb` template (see `template`) + `pg_ctl start` (as the `postgres` OS user when we are root), and creates the
//! fixed roles ([`SUPERUSER`], [`CONTROL_USER`], [`APP_USER`]) and [`APP_DATABASE`]. TCP accepts
//! only TLS + SCRAM on 127.0.0.1. A [`DevDb`] is a handle on one database of the server;
//! [`DevDb::new_database`] (see `shared`) hands out more, on fresh databases of the same
//! server. Dropping the last handle stops the server and removes the directory.

mod ca;
mod cluster;
mod pgbin;
mod reap;
mod shared;
mod template;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use ca::TestCa;
pub use pgbin::BINDIR_ENV;

/// Removes the process-wide `initdb` template (see `template`); for `pgcloak demo` at exit,
/// after every [`DevDb`] is dropped.
pub fn remove_template() {
    template::remove();
}
use cluster::Layout;
use pgbin::{PgBin, log_tail};

/// File in every DevDb directory holding the creating process's PID (for the reaper's tests).
#[doc(hidden)]
pub const OWNER_FILE: &str = reap::OWNER_FILE;

/// Stops and removes the DevDbs under `tmp` whose creating process is gone (what
/// [`DevDb::start`] does for the system temp dir); for the reaper's tests.
#[doc(hidden)]
pub async fn reap_orphans_in(tmp: &Path) -> Result<(), DevDbError> {
    let pg = PgBin::locate().await?;
    reap::reap_orphans(&pg, tmp).await;
    Ok(())
}

/// The process-wide template data directory (made on first use); for the template's tests.
#[doc(hidden)]
pub async fn template_data_dir() -> Result<&'static Path, DevDbError> {
    let pg = PgBin::locate().await?;
    template::data_dir(&pg).await
}

/// The bootstrap superuser (initdb `-U`).
pub const SUPERUSER: &str = "postgres";
pub const SUPERUSER_PASSWORD: &str = "postgres-dev-password";
/// The proxy's control login (LOGIN SUPERUSER in the dev database).
pub const CONTROL_USER: &str = "pgcloak";
pub const CONTROL_PASSWORD: &str = "pgcloak-dev-password";
/// The application role (LOGIN, not superuser), owner of [`APP_DATABASE`].
pub const APP_USER: &str = "app";
pub const APP_PASSWORD: &str = "app-dev-password";
pub const APP_DATABASE: &str = "app";

/// How many free ports to try when another process grabs the chosen one first.
const START_ATTEMPTS: usize = 5;

/// Errors of the devdb layer. Messages carry the failing command and the server log's tail,
/// never a password.
#[derive(Debug, thiserror::Error)]
pub enum DevDbError {
    #[error(
        "PostgreSQL server binaries not found (looked for {looked_for}); install PostgreSQL, e.g. the Debian package `postgresql`"
    )]
    BinariesNotFound { looked_for: String },
    #[error(
        "running as root needs the OS user `postgres` to run PostgreSQL, and it does not exist"
    )]
    NoPostgresUser,
    #[error("`{command}` failed: {detail}{}", fmt_log(.log_tail))]
    Command {
        command: String,
        detail: String,
        log_tail: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate generation failed: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("TLS client setup failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{what}: {}{}", fmt_pg(.source), fmt_log(.log_tail))]
    Postgres {
        what: String,
        #[source]
        source: tokio_postgres::Error,
        log_tail: String,
    },
}

fn fmt_log(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("\n--- server log (tail) ---\n{tail}")
    }
}

fn fmt_pg(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// Options for [`DevDb::start`].
#[derive(Debug, Clone)]
pub struct DevDbOptions {
    /// `None` = a free port.
    pub port: Option<u16>,
    /// `None` = make a new CA.
    pub ca: Option<Arc<TestCa>>,
    /// Names in the server certificate.
    pub server_names: Vec<String>,
    /// Extra server settings `(name, value)`, appended to the generated configuration after
    /// the defaults (so they win), e.g. `("log_statement", "all")`. A value is written as a
    /// single-quoted postgresql.conf string.
    pub settings: Vec<(String, String)>,
}

impl Default for DevDbOptions {
    fn default() -> Self {
        DevDbOptions {
            port: None,
            ca: None,
            server_names: vec!["localhost".into(), "127.0.0.1".into()],
            settings: Vec::new(),
        }
    }
}

/// A handle on one database of a running throwaway PostgreSQL: [`DevDb::start`] makes the
/// server and the handle on [`APP_DATABASE`]; [`DevDb::new_database`] (see `shared`) makes
/// more handles on fresh databases of the same server. The server is stopped (immediate mode)
/// and its directory removed when its last handle is dropped.
#[derive(Debug)]
pub struct DevDb {
    server: Arc<Server>,
    database: String,
    scratch: PathBuf,
    /// Made by `new_database`: the database is dropped and `scratch` removed with the handle.
    owns_database: bool,
}

/// The server behind one or more [`DevDb`] handles.
#[derive(Debug)]
struct Server {
    pg: PgBin,
    layout: Layout,
    port: u16,
    ca: Arc<TestCa>,
    ca_cert: PathBuf,
    settings: Vec<(String, String)>,
    /// The write end of the exit watcher's pipe (see `shared`), when one was started.
    exit_watch: parking_lot::Mutex<Option<std::process::ChildStdin>>,
    // Last field: removed after `Drop::drop` has stopped the server.
    _tmp: tempfile::TempDir,
}

impl DevDb {
    /// Data directory (from the template) + start + roles; returns once the server accepts TLS connections.
    pub async fn start(opts: DevDbOptions) -> Result<DevDb, DevDbError> {
        let pg = PgBin::locate().await?;
        reap::reap_orphans(&pg, &std::env::temp_dir()).await;
        let ca = match opts.ca {
            Some(ca) => ca,
            None => Arc::new(TestCa::new("pgcloak devdb CA")?),
        };
        let tmp = tempfile::Builder::new()
            .prefix(reap::DIR_PREFIX)
            .tempdir()
            .and_then(|t| reap::claim(t.path()).map(|()| t))
            .map_err(|e| DevDbError::Io {
                what: "cannot create a temporary directory".into(),
                source: e,
            })?;
        let layout = Layout::new(tmp.path());
        let scratch = tmp.path().join("scratch");
        let mut server = Server {
            ca_cert: tmp.path().join("ca.crt"),
            settings: opts.settings,
            pg,
            layout,
            port: 0,
            ca,
            exit_watch: parking_lot::Mutex::new(None),
            _tmp: tmp,
        };
        // From here on, an error drops `server`, which stops any server and removes the directory.
        server.layout.prepare(
            &server.pg,
            &server.ca,
            &opts.server_names,
            &server.ca_cert,
            &scratch,
        )?;
        template::copy_into(&server.pg, &server.layout).await?;
        server.first_start(opts.port).await?;
        server.layout.bootstrap(server.port).await?;
        Ok(DevDb {
            server: Arc::new(server),
            database: APP_DATABASE.to_owned(),
            scratch,
            owns_database: false,
        })
    }

    /// The database this handle is for: [`APP_DATABASE`] for [`start`](Self::start)'s
    /// handle, a fresh `t_<n>` for one made by `new_database`.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// "localhost" (the name in the server certificate; resolves to 127.0.0.1 here).
    pub fn host(&self) -> &str {
        "localhost"
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    pub fn ca(&self) -> &Arc<TestCa> {
        &self.server.ca
    }

    /// PEM file of the CA, readable by anyone.
    pub fn ca_cert_path(&self) -> &Path {
        &self.server.ca_cert
    }

    /// A scratch directory for callers' files (certificates, configs), one per handle;
    /// removed on drop.
    pub fn dir(&self) -> &Path {
        &self.scratch
    }

    /// The server's data directory (`PGDATA`; owned by the server's OS user, readable by the
    /// caller when it is root or that user).
    pub fn data_dir(&self) -> PathBuf {
        self.server.layout.data()
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.server.layout.log()
    }

    /// The path of a PostgreSQL client binary from the same installation ("psql", "pgbench").
    pub fn bin(&self, tool: &str) -> PathBuf {
        self.server.pg.bindir().join(tool)
    }

    /// The last lines of the server's log (for test failure messages).
    pub fn log_tail(&self) -> String {
        log_tail(&self.server.layout.log())
    }

    /// `pg_ctl stop -m fast`.
    pub async fn stop(&self) -> Result<(), DevDbError> {
        self.server.pg_ctl(&["stop", "-m", "fast"]).await
    }

    /// Starts the server again after [`stop`](Self::stop): same data, same port.
    pub async fn start_again(&self) -> Result<(), DevDbError> {
        self.server.start_again().await
    }

    /// `pg_ctl restart -m fast`.
    pub async fn restart(&self) -> Result<(), DevDbError> {
        let log = self.server.layout.log();
        self.server
            .pg_ctl(&["restart", "-m", "fast", "-l", &log.to_string_lossy()])
            .await
    }

    /// A tokio-postgres client over verify-full TLS as the superuser, to `database`.
    pub async fn superuser_client(
        &self,
        database: &str,
    ) -> Result<tokio_postgres::Client, DevDbError> {
        self.client(SUPERUSER, SUPERUSER_PASSWORD, database).await
    }

    /// A tokio-postgres client over verify-full TLS (this CA, host name "localhost") as
    /// `user`. The connection task is spawned on the current runtime.
    pub async fn client(
        &self,
        user: &str,
        password: &str,
        database: &str,
    ) -> Result<tokio_postgres::Client, DevDbError> {
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.tls_client_config()?);
        let (client, conn) = self
            .pg_config(user, password, database)
            .ssl_mode(tokio_postgres::config::SslMode::Require)
            .connect(tls)
            .await
            .map_err(|e| DevDbError::Postgres {
                what: format!("connecting over TLS as {user} to {database}"),
                source: e,
                log_tail: String::new(),
            })?;
        tokio::spawn(conn);
        Ok(client)
    }

    /// A tokio-postgres config for this server (host "localhost" at 127.0.0.1, its port);
    /// the caller picks the TLS mode.
    pub fn pg_config(&self, user: &str, password: &str, database: &str) -> tokio_postgres::Config {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(self.host())
            .hostaddr(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .port(self.server.port)
            .user(user)
            .password(password)
            .dbname(database)
            .connect_timeout(Duration::from_secs(10));
        cfg
    }

    /// A rustls client config trusting only this DevDb's CA (ring provider).
    pub fn tls_client_config(&self) -> Result<rustls::ClientConfig, DevDbError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.server.ca.cert_der())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }

    /// A libpq connection string (for psql): verify-full TLS against this CA.
    pub fn conninfo(&self, user: &str, password: &str, database: &str) -> String {
        format!(
            "host=localhost hostaddr=127.0.0.1 port={} user={} password={} dbname={} sslmode=verify-full sslrootcert={}",
            self.server.port,
            conninfo_quote(user),
            conninfo_quote(password),
            conninfo_quote(database),
            conninfo_quote(&self.server.ca_cert.to_string_lossy()),
        )
    }
}

impl Server {
    /// Starts on the requested port, or on a free one, retrying a few free ports on a clash.
    async fn first_start(&mut self, fixed: Option<u16>) -> Result<(), DevDbError> {
        let attempts = if fixed.is_some() { 1 } else { START_ATTEMPTS };
        let mut attempt = 1;
        loop {
            self.port = match fixed {
                Some(p) => p,
                None => free_port()?,
            };
            self.layout
                .write_config(&self.pg, self.port, &self.settings)?;
            match self.start_again().await {
                Err(e) if attempt < attempts && port_clash(&e) => attempt += 1,
                res => return res,
            }
        }
    }

    async fn start_again(&self) -> Result<(), DevDbError> {
        self.pg_ctl(&["start", "-l", &self.layout.log().to_string_lossy()])
            .await
    }

    async fn pg_ctl(&self, args: &[&str]) -> Result<(), DevDbError> {
        let data = self.layout.data();
        let mut all: Vec<&str> = vec!["-D", data.to_str().unwrap_or_default(), "-w", "-t", "30"];
        all.extend_from_slice(args);
        let log = self.layout.log();
        self.pg
            .run("pg_ctl", all, self.layout.root(), Some(&log))
            .await
            .map(|_| ())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let data = self.layout.data();
        if !data.join("postmaster.pid").exists() {
            return;
        }
        let mut cmd = self.pg.std_command("pg_ctl", self.layout.root());
        cmd.arg("-D").arg(&data);
        cmd.args(["-w", "-t", "30", "stop", "-m", "immediate"]);
        let _ = cmd.output();
    }
}

/// A libpq conninfo value in single quotes, escaping `\` and `'`.
fn conninfo_quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn free_port() -> Result<u16, DevDbError> {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| DevDbError::Io {
            what: "cannot find a free TCP port on 127.0.0.1".into(),
            source: e,
        })
}

fn port_clash(e: &DevDbError) -> bool {
    matches!(e, DevDbError::Command { log_tail, detail, .. }
        if [log_tail, detail].iter().any(|t| t.contains("Address already in use")
            || t.contains("could not bind")))
}
