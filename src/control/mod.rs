//! The proxy's own logins to the upstream server (tokio-postgres over TLS, verified exactly
//! as the upstream leg: `verify-full` or `verify-ca` against `upstream.tls_ca`): one per
//! database a rules file names (its catalog and `pgcloak.data_keys`), and one for SCRAM
//! verifier lookups. [`ControlLink`] keeps one shared connection to one database and
//! reconnects when it has closed (e.g. after a PostgreSQL restart).

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres_rustls::MakeRustlsConnect;
use tracing::{info, warn};
use zeroize::Zeroizing;

pub mod catalog;
pub mod check;
pub mod encryption;
pub mod health;
pub mod keys;
pub mod listen;
pub mod migrate;
pub mod providers;
pub mod reencrypt;
pub mod reload;
pub mod verifiers;

use crate::config;
use crate::net::tls::{TlsError, client_config};

/// The control login failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("control login as {user:?} to database {database:?} on {host}:{port} failed: {source}")]
    Connect {
        user: String,
        database: String,
        host: String,
        port: u16,
        source: tokio_postgres::Error,
    },
}

/// tokio-postgres TLS that checks the certificate against `upstream.tls_server_name` (which
/// may differ from the host tokio-postgres connects to).
#[derive(Clone)]
pub(crate) struct NamedTls {
    inner: MakeRustlsConnect,
    name: String,
}

impl<S> MakeTlsConnect<S> for NamedTls
where
    MakeRustlsConnect: MakeTlsConnect<S>,
{
    type Stream = <MakeRustlsConnect as MakeTlsConnect<S>>::Stream;
    type TlsConnect = <MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect;
    type Error = <MakeRustlsConnect as MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, _host: &str) -> Result<Self::TlsConnect, Self::Error> {
        MakeTlsConnect::<S>::make_tls_connect(&mut self.inner, &self.name)
    }
}

/// The proxy's own login to `database` (tokio-postgres over TLS, verify-full/verify-ca exactly
/// as the upstream leg), spawning the connection task.
pub async fn connect(
    cfg: &config::Config,
    password: &str,
    database: &str,
) -> Result<tokio_postgres::Client, ControlError> {
    connect_with(cfg, password, database, |connection| async move {
        if let Err(e) = connection.await {
            warn!(error = %e, "control connection ended");
        }
    })
    .await
}

/// The connection task of a control login.
type Connection = tokio_postgres::Connection<
    tokio_postgres::Socket,
    <NamedTls as MakeTlsConnect<tokio_postgres::Socket>>::Stream,
>;

/// [`connect`], with `drive` spawned to run the connection (e.g. to receive notifications).
pub(crate) async fn connect_with<F, Fut>(
    cfg: &config::Config,
    password: &str,
    database: &str,
    drive: F,
) -> Result<tokio_postgres::Client, ControlError>
where
    F: FnOnce(Connection) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let up = &cfg.upstream;
    let tls = NamedTls {
        inner: MakeRustlsConnect::new(client_config(up)?),
        name: up.server_name().to_owned(),
    };
    let mut pg = tokio_postgres::Config::new();
    pg.host(&up.host)
        .port(up.port)
        .user(&cfg.control.user)
        .password(password)
        .dbname(database)
        .application_name("pgcloak")
        .ssl_mode(tokio_postgres::config::SslMode::Require)
        .connect_timeout(Duration::from_secs(up.connect_timeout_secs.max(1)));
    let err = |source| ControlError::Connect {
        user: cfg.control.user.clone(),
        database: database.to_owned(),
        host: up.host.clone(),
        port: up.port,
        source,
    };
    let (client, connection) = pg.connect(tls).await.map_err(err)?;
    tokio::spawn(drive(connection));
    Ok(client)
}

/// The database verifier lookups connect to when no rules file names one.
pub const DEFAULT_DATABASE: &str = "postgres";

/// One shared control connection to one database, (re)opened on demand.
pub struct ControlLink {
    config: Arc<config::Config>,
    password: Zeroizing<String>,
    database: String,
    client: tokio::sync::Mutex<Option<Arc<tokio_postgres::Client>>>,
}

impl ControlLink {
    pub fn new(
        config: Arc<config::Config>,
        password: Zeroizing<String>,
        database: impl Into<String>,
    ) -> Self {
        ControlLink {
            config,
            password,
            database: database.into(),
            client: tokio::sync::Mutex::new(None),
        }
    }

    /// The config it connects with.
    pub fn config(&self) -> &config::Config {
        &self.config
    }

    /// The database this link connects to.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The live control connection, reconnecting if it has closed.
    pub async fn client(&self) -> Result<Arc<tokio_postgres::Client>, ControlError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(Arc::clone(c));
        }
        let c = Arc::new(connect(&self.config, &self.password, &self.database).await?);
        info!(database = %self.database, "control login established");
        *slot = Some(Arc::clone(&c));
        Ok(c)
    }

    /// A new connection that LISTENs for changes made by other replicas and the CLI.
    pub async fn listen(&self) -> Result<listen::Listener, listen::ListenError> {
        listen::listen(&self.config, &self.password, &self.database).await
    }

    /// Drops the connection so the next [`ControlLink::client`] reconnects.
    pub async fn reset(&self) {
        *self.client.lock().await = None;
    }
}
