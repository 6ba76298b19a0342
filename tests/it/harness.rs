//! The test environment: a throwaway TLS PostgreSQL ([`DevDb`]) with pgcloak's [`run`] serving
//! in-process on 127.0.0.1:0 in front of it, plus clients (tokio-postgres over verify-full
//! TLS, psql, raw TCP) for both the proxy and the database.
//!
//! Every [`TestEnv`] owns its database and its proxy task; dropping it fires the proxy's
//! shutdown and then drops the database. [`TestEnv::start`] and [`shared_db`] hand out a
//! fresh database of the calling test module's shared cluster (one PostgreSQL per module,
//! started once, stopped when the test binary exits); [`TestEnv::own`] and `DevDb::start`
//! give a test a cluster of its own (for roles, server settings, restarts, the server log).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use pgcloak::config::Config;
use pgcloak::devdb::{APP_PASSWORD, APP_USER, CONTROL_PASSWORD, CONTROL_USER, DevDb, DevDbOptions};
use pgcloak::{RunError, Secrets, run};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::{AsyncMessage, Client, Notification};
use tokio_postgres_rustls::MakeRustlsConnect;
use zeroize::Zeroizing;

/// How long any single helper waits before the test is declared hung.
pub const HANG: Duration = Duration::from_secs(60);

/// What to change in the generated `pgcloak.toml`.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// `upstream.host` (default "localhost").
    pub upstream_host: Option<String>,
    /// `upstream.port` (default the DevDb's).
    pub upstream_port: Option<u16>,
    /// `upstream.tls_server_name` (default unset = the host).
    pub tls_server_name: Option<String>,
    /// `upstream.tls_mode` (default unset = verify-full).
    pub tls_mode: Option<&'static str>,
    /// `listen.tls_client_ca`: clients must present a certificate from this CA file.
    pub tls_client_ca: Option<PathBuf>,
    /// `listen.shutdown_timeout_secs` (default 5 in tests).
    pub shutdown_timeout_secs: Option<u64>,
    /// `auth.mode = "userlist"` with this users file.
    pub users_file: Option<PathBuf>,
    /// Rules file text: written to `rules.toml` beside the config and listed in `rules`.
    /// Without a top-level `database = …` line it gets the env's database ([`DevDb::database`]).
    pub rules: Option<String>,
    /// More rules files (same treatment), written to `rules-1.toml`, `rules-2.toml`, ….
    pub more_rules: Vec<String>,
    /// The master key (base64) handed to the proxy when `rules` is set.
    pub master_key_b64: Option<String>,
    /// TOML appended to the config (e.g. `[metrics]`, `[audit]`).
    pub extra_toml: Option<String>,
    /// More `[listen]` keys (e.g. `max_connections = 2`).
    pub listen_toml: Option<String>,
}

/// `text` with `database = "<database>"` in front when it names no database at top level
/// (before its first `[table]` header).
pub fn with_database(text: &str, database: &str) -> String {
    let names_one = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with('['))
        .any(|l| {
            l.strip_prefix("database")
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        });
    if names_one {
        text.to_owned()
    } else {
        format!("database = \"{database}\"\n{text}")
    }
}

/// A rules file's `text` for `database`: its top-level `database = …` line (a file of
/// `schema-rules/` names the devdb's "app") replaced, or added when it has none.
pub fn retarget(text: &str, database: &str) -> String {
    let mut top = true;
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            let l = l.trim();
            top &= !l.starts_with('[');
            !(top
                && l.strip_prefix("database")
                    .is_some_and(|rest| rest.trim_start().starts_with('=')))
        })
        .collect();
    with_database(&lines.join("\n"), database)
}

/// The text of a `pgcloak.toml` for `db` listening on `listen`: proxy certificate from the
/// DevDb's CA (files written into `db.dir()`), upstream verified against the same CA, no rules.
pub fn config_toml(db: &DevDb, listen: SocketAddr, opts: &ProxyOptions) -> String {
    let dir = db.dir();
    let (cert, key) = db.ca().issue(&["localhost", "127.0.0.1"]).expect("issue");
    std::fs::write(dir.join("proxy.crt"), cert).expect("write proxy.crt");
    std::fs::write(dir.join("proxy.key"), key).expect("write proxy.key");
    let mut listen_extra = format!(
        "shutdown_timeout_secs = {}\n",
        opts.shutdown_timeout_secs.unwrap_or(5)
    );
    if let Some(more) = &opts.listen_toml {
        listen_extra.push_str(more);
        listen_extra.push('\n');
    }
    if let Some(ca) = &opts.tls_client_ca {
        listen_extra.push_str(&format!("tls_client_ca = {}\n", toml_str(ca)));
    }
    let mut upstream_extra = String::new();
    if let Some(name) = &opts.tls_server_name {
        upstream_extra.push_str(&format!("tls_server_name = \"{name}\"\n"));
    }
    if let Some(mode) = opts.tls_mode {
        upstream_extra.push_str(&format!("tls_mode = \"{mode}\"\n"));
    }
    let auth = match &opts.users_file {
        Some(f) => format!("mode = \"userlist\"\nusers_file = {}\n", toml_str(f)),
        None => "mode = \"passthrough\"\n".to_string(),
    };
    let mut head = String::new();
    if let Some(rules) = &opts.rules {
        let mut files = vec!["\"rules.toml\"".to_owned()];
        std::fs::write(dir.join("rules.toml"), with_database(rules, db.database()))
            .expect("write rules.toml");
        for (i, more) in opts.more_rules.iter().enumerate() {
            let name = format!("rules-{}.toml", i + 1);
            std::fs::write(dir.join(&name), with_database(more, db.database()))
                .expect("write rules file");
            files.push(format!("{name:?}"));
        }
        head.push_str(&format!(
            "rules = [{}]\n\n[keys]\nmaster_key_env = \"PGCLOAK_MASTER_KEY\"\n\n",
            files.join(", ")
        ));
    }
    format!(
        "{head}[listen]\naddress = \"{listen}\"\ntls_cert = \"proxy.crt\"\ntls_key = \"proxy.key\"\n{listen_extra}\n\
         [upstream]\nhost = \"{host}\"\nport = {port}\ntls_ca = {ca}\n{upstream_extra}\n\
         [auth]\n{auth}\n\
         [control]\nuser = \"{CONTROL_USER}\"\npassword_env = \"PGCLOAK_CONTROL_PASSWORD\"\n\n\
         [log]\nlevel = \"warn\"\n{extra}",
        extra = opts.extra_toml.as_deref().unwrap_or(""),
        host = opts.upstream_host.as_deref().unwrap_or("localhost"),
        port = opts.upstream_port.unwrap_or(db.port()),
        ca = toml_str(db.ca_cert_path()),
    )
}

/// A TOML basic string for a path.
fn toml_str(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// A DevDb with pgcloak in front of it.
pub struct TestEnv {
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), RunError>>>,
    addr: SocketAddr,
    pub db: DevDb,
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl TestEnv {
    /// A fresh database in the calling module's shared cluster + pgcloak with the default
    /// test config.
    #[track_caller]
    pub fn start() -> impl Future<Output = TestEnv> {
        Self::start_with(ProxyOptions::default())
    }

    /// A fresh database in the calling module's shared cluster + pgcloak with `opts`.
    #[track_caller]
    pub fn start_with(opts: ProxyOptions) -> impl Future<Output = TestEnv> {
        let db = shared_db();
        async move { Self::start_on(db.await, opts).await }
    }

    /// A cluster of the test's own + pgcloak with `opts`: for tests that create roles, change
    /// server settings, restart or stop the server, or read its log or files.
    pub async fn own(opts: ProxyOptions) -> TestEnv {
        let db = DevDb::start(DevDbOptions::default())
            .await
            .expect("DevDb start");
        Self::start_on(db, opts).await
    }

    /// pgcloak in front of an already running `db`.
    pub async fn start_on(db: DevDb, opts: ProxyOptions) -> TestEnv {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind proxy listener");
        let addr = listener.local_addr().expect("local_addr");
        let text = config_toml(&db, addr, &opts);
        let path = db.dir().join("pgcloak.toml");
        std::fs::write(&path, &text).expect("write pgcloak.toml");
        let config = Arc::new(Config::from_str_at(&text, &path).expect("test config parses"));
        let master_key = opts
            .master_key_b64
            .as_deref()
            .map(|k| pgcloak::crypto::MasterKey::from_base64(k, "test").expect("test master key"));
        let secrets = Secrets {
            control_password: Zeroizing::new(CONTROL_PASSWORD.to_string()),
            master_key,
            key_provider: None,
        };
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, config, secrets, async move {
            let _ = rx.await;
        }));
        TestEnv {
            shutdown: Some(tx),
            task: Some(task),
            addr,
            db,
        }
    }

    /// The proxy's listening address.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Fires the proxy's shutdown (as SIGTERM would); the proxy task keeps running while its
    /// sessions finish.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for `run` to return (after [`begin_shutdown`](Self::begin_shutdown)).
    pub async fn wait_stopped(&mut self, limit: Duration) -> Result<(), RunError> {
        let task = self.task.take().expect("proxy task already awaited");
        tokio::time::timeout(limit, task)
            .await
            .expect("proxy did not stop in time")
            .expect("proxy task panicked")
    }

    /// Whether the proxy task has already ended (e.g. `run` returned an error at startup).
    pub fn proxy_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// A tokio-postgres config for the proxy (host "localhost" at its address).
    pub fn proxy_pg_config(&self, user: &str, password: &str, db: &str) -> tokio_postgres::Config {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host("localhost")
            .hostaddr(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .port(self.addr.port())
            .user(user)
            .password(password)
            .dbname(db)
            .ssl_mode(SslMode::Require)
            .connect_timeout(Duration::from_secs(20));
        cfg
    }

    /// The TLS connector for verify-full against the test CA.
    pub fn tls(&self) -> MakeRustlsConnect {
        MakeRustlsConnect::new(self.db.tls_client_config().expect("tls client config"))
    }

    /// Connects `cfg` with verify-full TLS; the connection task is spawned.
    pub async fn connect(
        &self,
        cfg: &tokio_postgres::Config,
    ) -> Result<Client, tokio_postgres::Error> {
        let (client, conn) = cfg.connect(self.tls()).await?;
        tokio::spawn(conn);
        Ok(client)
    }

    /// A tokio-postgres client through the proxy.
    pub async fn proxy_client(
        &self,
        user: &str,
        password: &str,
        db: &str,
    ) -> Result<Client, tokio_postgres::Error> {
        self.connect(&self.proxy_pg_config(user, password, db))
            .await
    }

    /// The application role through the proxy; panics with the server log on failure.
    pub async fn app(&self) -> Client {
        match self
            .proxy_client(APP_USER, APP_PASSWORD, self.db.database())
            .await
        {
            Ok(c) => c,
            Err(e) => panic!(
                "proxy login as app failed: {}\n{}",
                describe(&e),
                self.db.log_tail()
            ),
        }
    }

    /// A tokio-postgres client straight to PostgreSQL.
    pub async fn direct_client(
        &self,
        user: &str,
        password: &str,
        db: &str,
    ) -> Result<Client, tokio_postgres::Error> {
        let cfg = self.db.pg_config(user, password, db);
        let mut cfg = cfg;
        cfg.ssl_mode(SslMode::Require);
        self.connect(&cfg).await
    }

    /// The application role straight to PostgreSQL.
    pub async fn direct_app(&self) -> Client {
        self.direct_client(APP_USER, APP_PASSWORD, self.db.database())
            .await
            .expect("direct login as app")
    }

    /// A proxied client whose notifications (LISTEN/NOTIFY) arrive on the returned channel.
    pub async fn proxy_client_with_notifications(
        &self,
    ) -> (Client, mpsc::UnboundedReceiver<Notification>) {
        let cfg = self.proxy_pg_config(APP_USER, APP_PASSWORD, self.db.database());
        let (client, mut conn) = cfg.connect(self.tls()).await.expect("proxy login");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
            while let Some(Ok(msg)) = futures_util::StreamExt::next(&mut messages).await {
                if let AsyncMessage::Notification(n) = msg {
                    let _ = tx.send(n);
                }
            }
        });
        (client, rx)
    }

    /// A libpq conninfo for the proxy: verify-full against the test CA.
    pub fn proxy_conninfo(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "host=localhost hostaddr=127.0.0.1 port={} user={user} password={password} dbname={db} \
             sslmode=verify-full sslrootcert={}",
            self.addr.port(),
            self.db.ca_cert_path().display()
        )
    }

    /// Runs `psql` with `conninfo` and `-c sql` (no psqlrc, unaligned, tuples only, stop on
    /// error). Returns (exit code, stdout, stderr).
    pub async fn psql(&self, conninfo: &str, sql: &str) -> (i32, String, String) {
        self.psql_args(conninfo, &["-c", sql]).await
    }

    /// Runs `psql` with `conninfo` and extra arguments.
    pub async fn psql_args(&self, conninfo: &str, args: &[&str]) -> (i32, String, String) {
        let mut cmd = tokio::process::Command::new(self.db.bin("psql"));
        cmd.arg(conninfo)
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(args)
            .env("PGCONNECT_TIMEOUT", "20")
            .env_remove("PGPASSWORD")
            .env_remove("PGSSLMODE")
            .env_remove("PGOPTIONS")
            .current_dir(self.db.dir())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(HANG, cmd.output())
            .await
            .expect("psql hung")
            .expect("run psql");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// "message (SQLSTATE)" for a database error, else the error's text.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => format!("{e} / {e:?}"),
    }
}

/// The SQLSTATE of a database error, or `None` for a non-database error.
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<String> {
    e.as_db_error().map(|d| d.code().code().to_string())
}

/// Runs `f` with a time limit (so a hang fails the test instead of stalling the suite).
pub async fn within<T>(limit: Duration, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, f).await.expect("timed out")
}

/// The error of a connection attempt that must fail.
pub fn must_fail<T>(res: Result<T, tokio_postgres::Error>) -> tokio_postgres::Error {
    match res {
        Ok(_) => panic!("the connection succeeded but must have been refused"),
        Err(e) => e,
    }
}

/// Encrypted setup shared by the encryption and client tests: a fresh master key, `keys init`
/// for the rules in `rules_text` (a rules file's contents; `db`'s database unless it names
/// one) over the control login to that database, then pgcloak in front of `db` with those
/// rules.
pub async fn start_encrypted(
    db: DevDb,
    rules_text: &str,
) -> (TestEnv, pgcloak::config::Rules, pgcloak::crypto::MasterKey) {
    let text = with_database(rules_text, db.database());
    let file =
        pgcloak::config::parse_rules_file(&text, Path::new("rules.toml")).expect("rules parse");
    let rules = pgcloak::config::Rules::from_columns(file.columns).expect("rules index");
    let key_text = pgcloak::crypto::gen_master_key();
    let master = pgcloak::crypto::MasterKey::from_base64(&key_text, "test").expect("master key");
    let mut control = db
        .client(CONTROL_USER, CONTROL_PASSWORD, &file.database)
        .await
        .expect("control login");
    pgcloak::control::keys::init(&mut control, &rules, &master)
        .await
        .expect("keys init");
    let opts = ProxyOptions {
        rules: Some(rules_text.to_owned()),
        master_key_b64: Some(key_text),
        ..ProxyOptions::default()
    };
    (TestEnv::start_on(db, opts).await, rules, master)
}

/// The shared clusters, one per test module (keyed by the module's source file), each
/// started once on first use.
static CLUSTERS: parking_lot::Mutex<BTreeMap<&'static str, &'static OnceLock<DevDb>>> =
    parking_lot::Mutex::new(BTreeMap::new());

/// The shared cluster for `key`, started on first use on a thread of its own with its own
/// runtime (each `#[tokio::test]` has its own runtime, which ends with its test; nothing of
/// the cluster may live on one). Blocks while another test is starting it.
fn cluster(key: &'static str) -> &'static DevDb {
    let &mut cell = CLUSTERS
        .lock()
        .entry(key)
        .or_insert_with(|| Box::leak(Box::new(OnceLock::new())));
    cell.get_or_init(|| {
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for the shared cluster");
            let db = rt
                .block_on(DevDb::start(DevDbOptions::default()))
                .expect("shared DevDb start");
            // A static is never dropped: the server must go with the process.
            db.stop_at_exit().expect("shared DevDb exit watcher");
            db
        })
        .join()
        .expect("shared DevDb start panicked")
    })
}

/// A fresh database (`t_<n>`, owned by the app role, its own scratch directory) in the shared
/// cluster of the calling test module; dropped with the returned handle.
#[track_caller]
pub fn shared_db() -> impl Future<Output = DevDb> {
    let key = std::panic::Location::caller().file();
    async move {
        let server = tokio::task::spawn_blocking(move || cluster(key))
            .await
            .expect("shared cluster start");
        server.new_database().await.expect("a fresh database")
    }
}

/// Polls `check` every 20 ms until it returns true; panics with `what` after `limit`. For
/// waiting on a condition instead of sleeping a fixed time.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until a session of this database runs `sql` (`pg_stat_activity`, seen from `direct`):
/// the point where a cancel reaches a running statement.
pub async fn wait_running(direct: &Client, sql: &str) {
    wait_until(HANG, "the statement to start", || async {
        direct
            .query_one(
                "select count(*) from pg_stat_activity where datname = current_database() \
                 and state = 'active' and query = $1",
                &[&sql],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 1
    })
    .await;
}
