//! `pgcloak.toml` (spec §2): strict serde structs (`deny_unknown_fields`), loading, and
//! validation. Relative paths are resolved against the config file's folder. Secrets are never
//! in the file: only the names of environment variables or files that hold them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A problem with the config file. Always names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config file {path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// The whole config file, with paths already resolved.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Rules files (resolved to absolute paths by [`Config::load`]).
    #[serde(default)]
    pub rules: Vec<PathBuf>,
    pub listen: Listen,
    pub upstream: Upstream,
    #[serde(default)]
    pub auth: Auth,
    pub control: Control,
    #[serde(default)]
    pub keys: Keys,
    #[serde(default)]
    pub metrics: Option<Metrics>,
    #[serde(default)]
    pub log: Log,
    /// The audit trail (spec §8), when set.
    #[serde(default)]
    pub audit: Option<Audit>,
    /// Where the file was read from (not a key in the file).
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub address: String,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    #[serde(default)]
    pub tls_client_ca: Option<PathBuf>,
    /// Seconds sessions may take to finish after SIGINT/SIGTERM.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout_secs: u64,
    /// Most client sessions open at once (PostgreSQL's `max_connections`); beyond it a client
    /// gets FATAL 53300. Read at start.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Largest client message a session buffers whole; a longer one closes the session.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
}

fn default_shutdown_timeout() -> u64 {
    30
}

fn default_max_connections() -> usize {
    1000
}

fn default_max_message_bytes() -> usize {
    128 << 20
}

/// How the upstream certificate is verified. There is no plaintext mode.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Chain to `tls_ca` and the host name must match.
    #[default]
    VerifyFull,
    /// Chain to `tls_ca`; the host name is not checked.
    VerifyCa,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub host: String,
    #[serde(default = "default_pg_port")]
    pub port: u16,
    #[serde(default)]
    pub tls_mode: TlsMode,
    pub tls_ca: PathBuf,
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// Seconds to wait for the upstream TCP connect and TLS handshake.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
}

fn default_pg_port() -> u16 {
    5432
}

fn default_connect_timeout() -> u64 {
    10
}

impl Upstream {
    /// The name the upstream certificate must carry.
    pub fn server_name(&self) -> &str {
        self.tls_server_name.as_deref().unwrap_or(&self.host)
    }
}

/// How clients are authenticated (spec §4).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Verifiers come from the upstream's `pg_authid` through the control login.
    #[default]
    Passthrough,
    /// Verifiers and upstream credentials come from `users_file`.
    Userlist,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    #[serde(default)]
    pub mode: AuthMode,
    #[serde(default)]
    pub users_file: Option<PathBuf>,
    /// SQL that returns one row `(rolname, rolpassword)` for `$1`; default reads `pg_authid`
    /// (needs superuser). See README for a SECURITY DEFINER function instead.
    #[serde(default)]
    pub verifier_query: Option<String>,
    /// Seconds a looked-up verifier may stand in for the role when a later lookup query fails
    /// (every login asks the database first). Failures are never cached.
    #[serde(default = "default_verifier_ttl")]
    pub verifier_cache_secs: u64,
}

fn default_verifier_ttl() -> u64 {
    30
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            mode: AuthMode::default(),
            users_file: None,
            verifier_query: None,
            verifier_cache_secs: default_verifier_ttl(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    pub user: String,
    pub password_env: String,
    /// Removed: each rules file names its database. Still read so that the error says where
    /// the setting went (see [`Config::validate`]).
    #[serde(default)]
    pub database: Option<toml::Value>,
    /// Seconds between polls of `pgcloak.data_keys` and the catalog, the fallback to the
    /// notifications replicas and the CLI send (default 2).
    #[serde(default = "default_poll_interval")]
    pub poll_interval_secs: u64,
}

fn default_poll_interval() -> u64 {
    2
}

pub use super::keys::Keys;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    pub address: String,
}

/// `[audit]`: where the HMAC-chained JSON-lines audit trail goes (exactly one of `file`,
/// `stdout`, `syslog`), and the optional per-role decrypt tripwire.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    #[serde(default)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub stdout: bool,
    #[serde(default)]
    pub syslog: bool,
    #[serde(default)]
    pub max_decrypts_per_minute: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    #[serde(default)]
    pub format: LogFormat,
    #[serde(default = "default_level")]
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            format: LogFormat::Text,
            level: default_level(),
        }
    }
}

fn default_level() -> String {
    "info".into()
}

impl Config {
    /// Reads, parses and validates `path`; relative paths inside become relative to its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_str_at(&text, path)
    }

    /// Parses `text` as if it were read from `path` (used by tests and `demo`).
    pub fn from_str_at(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        cfg.path = path.to_owned();
        let base = path.parent().unwrap_or(Path::new(".")).to_owned();
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        cfg.rules.iter_mut().for_each(resolve);
        resolve(&mut cfg.listen.tls_cert);
        resolve(&mut cfg.listen.tls_key);
        cfg.listen.tls_client_ca.iter_mut().for_each(resolve);
        resolve(&mut cfg.upstream.tls_ca);
        cfg.auth.users_file.iter_mut().for_each(resolve);
        cfg.keys.resolve(&base);
        if let Some(a) = cfg.audit.as_mut() {
            a.file.iter_mut().for_each(resolve);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(db) = &self.control.database {
            let name = db.as_str().unwrap_or("…");
            return Err(self.invalid(
                "control.database",
                format!(
                    "this setting was removed: the rules now name their database; set \
                     `database = \"{name}\"` at the top of each rules file and remove \
                     control.database (the control login connects to every database a rules \
                     file names)"
                ),
            ));
        }
        if self.listen.max_connections == 0 || self.listen.max_message_bytes < 1024 {
            return Err(self.invalid(
                "listen.max_connections",
                "listen.max_connections must be at least 1 and listen.max_message_bytes at \
                 least 1024"
                    .to_owned(),
            ));
        }
        if self.listen.address.parse::<SocketAddr>().is_err() {
            return Err(self.invalid(
                "listen.address",
                format!("{:?} is not an address:port", self.listen.address),
            ));
        }
        if let Some(m) = &self.metrics
            && m.address.parse::<SocketAddr>().is_err()
        {
            return Err(self.invalid(
                "metrics.address",
                format!("{:?} is not an address:port", m.address),
            ));
        }
        if let Some(a) = &self.audit {
            if usize::from(a.file.is_some()) + usize::from(a.stdout) + usize::from(a.syslog) != 1 {
                return Err(self.invalid(
                    "audit",
                    "set exactly one of file, stdout = true, syslog = true",
                ));
            }
            if self.keys.kind() == super::keys::ProviderKind::Local
                && self.keys.master_key_env.is_none()
                && self.keys.master_key_file.is_none()
            {
                return Err(self.invalid(
                    "audit",
                    "the audit key is derived from the key provider: set [keys]",
                ));
            }
        }
        if self.upstream.host.is_empty() {
            return Err(self.invalid("upstream.host", "must not be empty"));
        }
        if self.auth.mode == AuthMode::Userlist && self.auth.users_file.is_none() {
            return Err(self.invalid("auth.users_file", "required when auth.mode = \"userlist\""));
        }
        if let Err((key, message)) = self.keys.validate(!self.rules.is_empty()) {
            return Err(self.invalid(&key, message));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(self.invalid(
                "log.level",
                format!("{:?} is not a log filter", self.log.level),
            ));
        }
        Ok(())
    }

    /// The control login's password, read from its environment variable.
    pub fn control_password(&self) -> Result<String, ConfigError> {
        std::env::var(&self.control.password_env).map_err(|_| {
            self.invalid(
                "control.password_env",
                format!(
                    "environment variable {} is not set",
                    self.control.password_env
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[listen]
address = "127.0.0.1:6432"
tls_cert = "certs/proxy.crt"
tls_key = "certs/proxy.key"
[upstream]
host = "db.internal"
tls_ca = "/etc/ca.crt"
[control]
user = "pgcloak"
password_env = "PGCLOAK_CONTROL_PASSWORD"
"#;

    #[test]
    fn minimal_config_gets_defaults_and_resolved_paths() {
        let cfg = Config::from_str_at(MINIMAL, Path::new("/etc/pgcloak/pgcloak.toml")).unwrap();
        assert_eq!(cfg.upstream.port, 5432);
        assert_eq!(cfg.upstream.tls_mode, TlsMode::VerifyFull);
        assert_eq!(cfg.upstream.server_name(), "db.internal");
        assert_eq!(cfg.auth.mode, AuthMode::Passthrough);
        assert_eq!(
            cfg.listen.tls_cert,
            Path::new("/etc/pgcloak/certs/proxy.crt")
        );
        assert_eq!(cfg.upstream.tls_ca, Path::new("/etc/ca.crt"));
    }

    #[test]
    fn unknown_key_is_named_with_the_file() {
        let text = MINIMAL.replace("[control]", "[control]\npasword = \"x\"");
        let err = Config::from_str_at(&text, Path::new("/x/pgcloak.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/x/pgcloak.toml"), "{err}");
        assert!(err.contains("pasword"), "{err}");
    }

    #[test]
    fn control_database_says_where_it_went() {
        let text = MINIMAL.replace("[control]", "[control]\ndatabase = \"shop\"");
        let err = Config::from_str_at(&text, Path::new("/x/pgcloak.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/x/pgcloak.toml") && err.contains("control.database"),
            "{err}"
        );
        assert!(
            err.contains("set `database = \"shop\"` at the top of each rules file"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let text = MINIMAL.replace("127.0.0.1:6432", "nowhere");
        let err = Config::from_str_at(&text, Path::new("p.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen.address"), "{err}");
        let text = MINIMAL.replace("[upstream]", "[upstream]\ntls_mode = \"disable\"");
        let err = Config::from_str_at(&text, Path::new("p.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("disable"), "{err}");
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn the_shipped_example_config_parses() {
        let text = include_str!("../../pgcloak.example.toml");
        let cfg = Config::from_str_at(text, Path::new("/opt/pgcloak/pgcloak.toml")).unwrap();
        assert_eq!(
            cfg.rules,
            vec![PathBuf::from("/opt/pgcloak/schema-rules/clinic.toml")]
        );
        assert_eq!(
            cfg.keys.master_key_env.as_deref(),
            Some("PGCLOAK_MASTER_KEY")
        );
        assert_eq!(cfg.metrics.unwrap().address, "127.0.0.1:9187");
    }

    #[test]
    fn the_docker_config_parses() {
        let text = include_str!("../../docker/pgcloak.toml");
        let cfg = Config::from_str_at(text, Path::new("/etc/pgcloak/pgcloak.toml")).unwrap();
        assert_eq!(cfg.upstream.host, "db");
        assert_eq!(cfg.upstream.tls_mode, TlsMode::VerifyFull);
    }
}
