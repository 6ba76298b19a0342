//! pgcloak: a transparent, field-encrypting PostgreSQL wire-protocol proxy.
//!
//! The crate is laid out so that each folder is one concern:
//! - sans-IO core: [`protocol`] (framing, messages), [`sqlstate`] (every SQLSTATE, generated),
//!   [`crypto`] (envelope, field ciphers, key wrapping), [`codec`] (logical value codecs),
//!   [`copy`] (COPY data streams), [`rules`] (the compiled rules index), [`rewrite`] (SQL
//!   analysis → an immutable plan), [`apply`] (plan × key ring × text context → the bytes and
//!   SQL sent on), [`engine`] (one connection after login: frames in, bytes out, one pending
//!   FIFO), [`error`] (the one mapping from every error kind to the client's ErrorResponse),
//!   [`auth`] (SCRAM-SHA-256 both sides);
//! - IO: [`net`] (listener, TLS, upstream connect, metrics), [`session`] (startup, login, the
//!   relay loop, cancel), [`control`] (the proxy's own logins: catalog, keys, providers, the
//!   encryption service), [`audit`] (the HMAC-chained audit trail), [`config`] (files → the
//!   core's types; secret sources), `devdb` (throwaway PostgreSQL; cargo feature `devdb`, on
//!   by default, for the demo and the tests).
//!
//! [`run`] is the whole proxy: it takes a bound listener, the config, the secrets and a
//! shutdown future, so tests run it in-process on port 0.
#![forbid(unsafe_code)]

pub mod apply;
pub mod audit;
pub mod auth;
pub mod codec;
pub mod config;
pub mod control;
pub mod copy;
pub mod crypto;
#[cfg(feature = "devdb")]
pub mod devdb;
pub mod engine;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod net;
pub mod protocol;
pub mod rewrite;
pub mod rules;
pub mod session;
pub mod sqlstate;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};
use zeroize::Zeroizing;

use config::file::AuthMode;
use session::login::{LoginContext, VerifierSource};

/// Secrets read from the environment (never from the config file, never logged).
pub struct Secrets {
    pub control_password: Zeroizing<String>,
    /// Loaded when rules are configured and `[keys] provider = "local"`.
    pub master_key: Option<crypto::MasterKey>,
    /// Any other key provider (`[keys] provider`); it wraps inside the KMS/HSM, so there is
    /// no master key in memory. Takes precedence over `master_key`.
    pub key_provider: Option<Arc<dyn control::providers::KeyProvider>>,
}

/// A secret named by the config could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("master key: {0}")]
    MasterKey(#[from] crypto::CryptoError),
    #[error("{0}")]
    Provider(#[from] control::providers::ProviderError),
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(<redacted>)")
    }
}

impl Secrets {
    /// Reads the secrets named by `cfg` from the environment.
    pub fn from_env(cfg: &config::Config) -> Result<Secrets, SecretsError> {
        let local = cfg.keys.kind() == config::keys::ProviderKind::Local;
        // The audit trail's key comes from the key provider (audit::key).
        let needs_keys = !cfg.rules.is_empty() || cfg.audit.is_some();
        let (master_key, key_provider) = match (needs_keys, local) {
            (false, _) => (None, None),
            (true, true) => (
                Some(config::secrets::master_key_source(&cfg.keys)?.load()?),
                None,
            ),
            (true, false) => (None, Some(control::providers::from_config(&cfg.keys)?)),
        };
        Ok(Secrets {
            control_password: Zeroizing::new(cfg.control_password()?),
            master_key,
            key_provider,
        })
    }
}

/// The proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Tls(#[from] net::tls::TlsError),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error("auth.users_file is required when auth.mode = \"userlist\"")]
    NoUsersFile,
    #[error("cannot listen for metrics on {address}: {source}")]
    Metrics {
        address: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Rules(#[from] config::RulesError),
    #[error("field encryption: {0}")]
    Encryption(#[from] control::encryption::EncryptionError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error(transparent)]
    AuditKey(Box<audit::key::AuditKeyError>),
    #[error("cannot start the session workers: {0}")]
    Workers(std::io::Error),
}

/// Loads the rules; for every database they name (with at least one column), checks that
/// database and loads its key ring and catalog over its own control login. Returns them with
/// the database verifier lookups use (the first rules database, else `postgres`).
async fn encryption(
    config: &Arc<config::Config>,
    secrets: &mut Secrets,
) -> Result<(Option<Arc<control::encryption::Encryptions>>, String), RunError> {
    let databases: Vec<config::DatabaseRules> = config::load_rules(&config.rules)?
        .into_iter()
        .filter(|d| !d.rules.is_empty())
        .collect();
    let Some(first) = databases.first() else {
        return Ok((None, control::DEFAULT_DATABASE.to_owned()));
    };
    let lookup_db = first.database.clone();
    let provider: Arc<dyn control::providers::KeyProvider> =
        match (secrets.key_provider.take(), secrets.master_key.take()) {
            (Some(p), _) => p,
            (None, Some(master)) => Arc::new(master),
            (None, None) => return Err(control::encryption::EncryptionError::NoMasterKey.into()),
        };
    // The provider must answer before anything is served (exit 1 naming it otherwise).
    if provider.kind() != config::keys::ProviderKind::Local {
        provider
            .verify()
            .await
            .map_err(|e| control::encryption::EncryptionError::Provider(Box::new(e)))?;
        info!(provider = provider.kind().name(), address = %provider.address(), "key provider verified");
    }
    let all = control::encryption::Encryptions::load(
        config,
        &secrets.control_password,
        provider,
        databases,
    )
    .await?;
    Ok((Some(Arc::new(all)), lookup_db))
}

fn login_context(
    config: &Arc<config::Config>,
    secrets: Secrets,
    cert_der: &[u8],
    lookup_db: String,
) -> Result<LoginContext, RunError> {
    let source = match config.auth.mode {
        AuthMode::Passthrough => VerifierSource::Passthrough {
            control: control::ControlLink::new(
                Arc::clone(config),
                secrets.control_password,
                lookup_db,
            ),
            cache: control::verifiers::VerifierCache::from_config(&config.auth),
            query: control::verifiers::VerifierCache::query_for(&config.auth).to_owned(),
        },
        AuthMode::Userlist => {
            let path = config
                .auth
                .users_file
                .as_ref()
                .ok_or(RunError::NoUsersFile)?;
            VerifierSource::Userlist(auth::UserList::load(path)?)
        }
    };
    Ok(LoginContext {
        source,
        cert_hash: auth::tls_server_end_point(cert_der),
        dummy_secret: rand::random(),
    })
}

/// Starts `/metrics`, `/healthz` and `/readyz` on `[metrics] address`, when set.
async fn metrics_endpoint(
    config: &config::Config,
    instance: &Arc<net::metrics::Instance>,
) -> Result<Option<AbortOnDrop>, RunError> {
    let Some(m) = &config.metrics else {
        return Ok(None);
    };
    let l = TcpListener::bind(&m.address)
        .await
        .map_err(|source| RunError::Metrics {
            address: m.address.clone(),
            source,
        })?;
    let shown = l.local_addr().map_or(m.address.clone(), |a| a.to_string());
    info!(address = %shown, "metrics at http://{shown}/metrics (health: /healthz, /readyz)");
    Ok(Some(AbortOnDrop(tokio::spawn(net::metrics::http::serve(
        l,
        Arc::clone(instance),
    )))))
}

/// Opens the audit trail (`[audit]`) with the key provider's audit key ([`audit::key`]).
async fn open_audit(
    config: &config::Config,
    secrets: &Secrets,
) -> Result<Option<Arc<audit::Audit>>, RunError> {
    let Some(cfg) = &config.audit else {
        return Ok(None);
    };
    let key = match (&secrets.key_provider, &secrets.master_key) {
        (Some(p), _) => audit::key::resolve(config, &secrets.control_password, &**p, true)
            .await
            .map_err(|e| RunError::AuditKey(Box::new(e)))?,
        (None, Some(master)) => audit::AuditKey::from_master(master),
        (None, None) => return Err(control::encryption::EncryptionError::NoMasterKey.into()),
    };
    let audit = audit::Audit::open(cfg, key)?;
    audit.record("start", vec![("pid", std::process::id().into())]);
    Ok(Some(audit))
}

/// Audits the data keys each rules database's key ring unwrapped (names and versions, never
/// key bytes) and the provider that unwrapped them.
fn audit_keys<'a>(
    audit: &audit::Audit,
    provider: config::keys::ProviderKind,
    all: impl Iterator<Item = &'a Arc<control::encryption::Encryption>>,
    when: &str,
) {
    for enc in all {
        let ring = enc.keys.current();
        let keys: serde_json::Map<String, serde_json::Value> = ring
            .keys()
            .map(|k| {
                (
                    k.name().to_owned(),
                    k.versions().collect::<Vec<u32>>().into(),
                )
            })
            .collect();
        audit.record(
            "keys_unwrapped",
            vec![
                ("when", when.into()),
                ("database", enc.database.clone().into()),
                ("provider", provider.name().into()),
                ("keys", serde_json::Value::Object(keys)),
            ],
        );
    }
}

/// Aborts a background task when dropped (so `run` leaves nothing behind).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Waits for every session to end, up to `limit`; true if they all did.
/// After the shutdown timeout: time the remaining sessions get to send `57P01` and close.
const SESSION_CLOSE_GRACE: Duration = Duration::from_secs(6);

async fn drain(sessions: &mut JoinSet<()>, limit: Duration) -> bool {
    tokio::time::timeout(limit, async {
        while sessions.join_next().await.is_some() {}
    })
    .await
    .is_ok()
}

/// Serves until `shutdown` resolves, then stops accepting and lets sessions finish for up to
/// `listen.shutdown_timeout_secs`, then closes them. Tests call this in-process on a port-0
/// listener.
pub async fn run(
    listener: TcpListener,
    config: Arc<config::Config>,
    secrets: Secrets,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    run_with_reload(listener, config, secrets, shutdown, None).await
}

/// The next reload request (pending forever without a channel).
async fn next_reload(reload: &mut Option<mpsc::UnboundedReceiver<()>>) -> Option<()> {
    match reload {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// Applies a reload request ([`control::reload`]): new rules for new sessions at once, old
/// sessions of replaced rules drained; a rejected reload changes nothing.
async fn reload_now(
    config: &Arc<config::Config>,
    password: &Zeroizing<String>,
    shared: &session::Shared,
    instance: &net::metrics::Instance,
    stop: &watch::Receiver<bool>,
) {
    info!(config = %config.path.display(), "reload requested (SIGHUP)");
    let running = shared.encryption.read().clone();
    let r = match control::reload::reload(config, password, running.as_ref()).await {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "reload rejected; the running config and rules stay");
            return;
        }
    };
    if let Some(all) = &r.encryption {
        let old = |e: &Arc<control::encryption::Encryption>| {
            running
                .as_ref()
                .is_some_and(|o| o.iter().any(|x| Arc::ptr_eq(x, e)))
        };
        for e in all.iter().filter(|e| !old(e)) {
            e.spawn_watcher(stop.clone());
        }
        if let Some(a) = &shared.audit {
            audit_keys(
                a,
                config.keys.kind(),
                all.iter().filter(|e| !old(e)),
                "reload",
            );
        }
    }
    *shared.encryption.write() = r.encryption.clone();
    *instance.databases.write() = r.encryption.map(|e| e as Arc<dyn net::metrics::Databases>);
    for e in &r.retired {
        e.retire();
    }
    if r.changes.is_empty() {
        info!("reloaded: nothing changed");
    }
    for change in &r.changes {
        info!(%change, "reloaded");
    }
}

/// [`run`], reloading config and rules whenever `reload` yields (SIGHUP in `pgcloak serve`).
pub async fn run_with_reload(
    listener: TcpListener,
    config: Arc<config::Config>,
    secrets: Secrets,
    shutdown: impl Future<Output = ()> + Send,
    mut reload: Option<mpsc::UnboundedReceiver<()>>,
) -> Result<(), RunError> {
    let mut secrets = secrets;
    let password = secrets.control_password.clone();
    let audit = open_audit(&config, &secrets).await?;
    let (encryption, lookup_db) = encryption(&config, &mut secrets).await?;
    let server_tls = net::tls::server_config(&config.listen)?;
    let upstream = net::upstream::UpstreamConnector::new(&config.upstream)?;
    let login = login_context(&config, secrets, &server_tls.cert_der, lookup_db)?;
    if let VerifierSource::Passthrough { control, .. } = &login.source
        && let Err(e) = control.client().await
    {
        warn!(error = %e, "control login failed; will retry when a client connects");
    }
    if let (Some(a), Some(e)) = (&audit, &encryption) {
        audit_keys(a, config.keys.kind(), e.iter(), "start");
    }
    let instance = Arc::new(net::metrics::Instance::default());
    *instance.databases.write() = encryption
        .clone()
        .map(|e| e as Arc<dyn net::metrics::Databases>);
    let _metrics_task = metrics_endpoint(&config, &instance).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(session::Shared {
        acceptor: tokio_rustls::TlsAcceptor::from(server_tls.config),
        upstream,
        cancels: Arc::default(),
        login,
        shutdown: stop_rx.clone(),
        audit,
        encryption: parking_lot::RwLock::new(encryption.clone()),
        limits: net::limits::Limits::new(&config.listen),
    });
    if let Some(enc) = &encryption {
        enc.spawn_watchers(&stop_rx);
    }
    drop(encryption);
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "pgcloak listening");
    }
    instance
        .listening
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let mut workers = session::workers::Workers::start().map_err(RunError::Workers)?;
    let mut sessions = JoinSet::new();
    let mut next_id = 0u64;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(()) = next_reload(&mut reload) => {
                reload_now(&config, &password, &shared, &instance, &stop_rx).await;
            }
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    next_id += 1;
                    let (id, shared) = (next_id, Arc::clone(&shared));
                    // The session lives on one worker: its socket moves to that reactor.
                    match tcp.into_std() {
                        Ok(std_tcp) => {
                            sessions.spawn_on(
                                async move {
                                    match session::workers::adopt(std_tcp) {
                                        Ok(tcp) => session::serve(tcp, peer, id, shared).await,
                                        Err(e) => warn!(error = %e, "cannot adopt a connection"),
                                    }
                                },
                                workers.pick(),
                            );
                        }
                        Err(e) => warn!(error = %e, "cannot hand a connection to a worker"),
                    }
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    drop(listener);
    info!(
        sessions = sessions.len(),
        "shutting down: no longer accepting"
    );
    // Sessions close at their next idle point (FATAL 57P01); after the timeout the rest
    // are aborted.
    let _ = stop_tx.send(true);
    if let Some(all) = shared.encryption.read().as_ref() {
        all.iter().for_each(|e| e.retire());
    }
    let grace = Duration::from_secs(config.listen.shutdown_timeout_secs);
    if !drain(&mut sessions, grace).await {
        warn!(
            sessions = sessions.len(),
            "shutdown timeout: closing remaining sessions"
        );
        // Each is told FATAL 57P01 and closed with close_notify; what cannot even do that in
        // the time a close gets is dropped.
        shared.limits.reach_deadline();
        if !drain(&mut sessions, SESSION_CLOSE_GRACE).await {
            sessions.shutdown().await;
        }
    }
    info!("pgcloak stopped");
    Ok(())
}
