//! The `[keys]` table of `pgcloak.toml` (spec §2, §7): which key provider wraps the data keys
//! and one sub-table per provider. The same table, alone in a file, is what
//! `pgcloak keys rewrap --new-keys FILE` reads ([`KeysFile`]). Secrets (tokens, PINs, AppRole
//! secret ids, the local master key) are never in the file: only the names of environment
//! variables or files that hold them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

/// The key provider kinds (`[keys] provider`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// A 32-byte master key from an env var or a file (development).
    #[default]
    Local,
    /// HashiCorp Vault or OpenBao, Transit secrets engine.
    VaultTransit,
    /// AWS KMS.
    AwsKms,
    /// A PKCS#11 module (an HSM; SoftHSM2 in tests).
    Pkcs11,
}

impl ProviderKind {
    /// The name used in the config and stored in `pgcloak.data_keys.provider`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::VaultTransit => "vault-transit",
            Self::AwsKms => "aws-kms",
            Self::Pkcs11 => "pkcs11",
        }
    }

    /// Parses a config name; GCP and Azure are named as not yet available.
    pub fn parse(name: &str) -> Result<Self, String> {
        Ok(match name {
            "local" => Self::Local,
            "vault-transit" => Self::VaultTransit,
            "aws-kms" => Self::AwsKms,
            "pkcs11" => Self::Pkcs11,
            "gcp-kms" | "azure-key-vault" => {
                return Err(format!(
                    "{name:?} is not yet available (supported: local, vault-transit, aws-kms, pkcs11)"
                ));
            }
            other => {
                return Err(format!(
                    "unknown provider {other:?} (expected local, vault-transit, aws-kms or pkcs11)"
                ));
            }
        })
    }
}

fn default_timeout() -> u64 {
    10
}

fn default_mount() -> String {
    "transit".to_owned()
}

fn default_approle_mount() -> String {
    "approle".to_owned()
}

/// `[keys]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keys {
    /// `local` (default), `vault-transit`, `aws-kms` or `pkcs11`.
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub master_key_env: Option<String>,
    #[serde(default)]
    pub master_key_file: Option<PathBuf>,
    #[serde(default)]
    pub vault: Option<VaultConfig>,
    #[serde(default)]
    pub aws_kms: Option<AwsKmsConfig>,
    #[serde(default)]
    pub pkcs11: Option<Pkcs11Config>,
}

/// `[keys.vault]`: Transit on Vault or OpenBao.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// `https://host:8200` (plain `http://` only for a loopback address).
    pub address: String,
    #[serde(default = "default_mount")]
    pub mount: String,
    /// The transit key; it must be created with `derived=true` (the data key's identity is the
    /// derivation context, which Transit's rewrap also takes).
    pub key: String,
    #[serde(default)]
    pub token_env: Option<String>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    #[serde(default)]
    pub approle_role_id_env: Option<String>,
    #[serde(default)]
    pub approle_secret_id_env: Option<String>,
    #[serde(default = "default_approle_mount")]
    pub approle_mount: String,
    #[serde(default)]
    pub namespace: Option<String>,
    /// CA the server certificate must chain to (else the system's roots are not used: set it).
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// Seconds for each call (connect included).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

/// `[keys.aws_kms]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsKmsConfig {
    /// Key ARN, key id or `alias/…`.
    pub key_id: String,
    #[serde(default)]
    pub region: Option<String>,
    /// A VPC endpoint or a test server; default: the region's public endpoint.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

/// `[keys.pkcs11]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// The module (`/usr/lib/softhsm/libsofthsm2.so`).
    pub module: PathBuf,
    pub token_label: String,
    pub key_label: String,
    #[serde(default)]
    pub pin_env: Option<String>,
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

impl Keys {
    /// The configured provider kind (validated by [`Keys::validate`]).
    pub fn kind(&self) -> ProviderKind {
        self.provider
            .as_deref()
            .and_then(|p| ProviderKind::parse(p).ok())
            .unwrap_or_default()
    }

    /// Resolves relative paths against `base` (the folder of the file that holds the table).
    pub fn resolve(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        self.master_key_file.iter_mut().for_each(resolve);
        if let Some(v) = &mut self.vault {
            v.token_file.iter_mut().for_each(resolve);
            v.tls_ca.iter_mut().for_each(resolve);
        }
        if let Some(p) = &mut self.pkcs11 {
            p.pin_file.iter_mut().for_each(resolve);
        }
    }

    /// Checks the table; `needs_key` when rules are loaded. Errors are `(key, message)`.
    pub fn validate(&self, needs_key: bool) -> Result<(), (String, String)> {
        let err = |k: &str, m: &str| Err((k.to_owned(), m.to_owned()));
        let kind = match &self.provider {
            None => ProviderKind::Local,
            Some(p) => ProviderKind::parse(p).map_err(|m| ("keys.provider".to_owned(), m))?,
        };
        let local_set = self.master_key_env.is_some() || self.master_key_file.is_some();
        if self.master_key_env.is_some() && self.master_key_file.is_some() {
            return err("keys", "set master_key_env or master_key_file, not both");
        }
        match kind {
            ProviderKind::Local if needs_key && !local_set => err(
                "keys.master_key_env",
                "rules are loaded, so a master key is needed (master_key_env or master_key_file)",
            ),
            ProviderKind::Local => Ok(()),
            _ if local_set => err(
                "keys.master_key_env",
                "master_key_env/master_key_file are for provider = \"local\" only",
            ),
            ProviderKind::VaultTransit => match &self.vault {
                None => err(
                    "keys.vault",
                    "provider = \"vault-transit\" needs a [keys.vault] table",
                ),
                Some(v) => v.validate(),
            },
            ProviderKind::AwsKms if self.aws_kms.is_none() => err(
                "keys.aws_kms",
                "provider = \"aws-kms\" needs a [keys.aws_kms] table",
            ),
            ProviderKind::Pkcs11 => match &self.pkcs11 {
                None => err(
                    "keys.pkcs11",
                    "provider = \"pkcs11\" needs a [keys.pkcs11] table",
                ),
                Some(p) if p.pin_env.is_some() == p.pin_file.is_some() => {
                    err("keys.pkcs11", "set exactly one of pin_env or pin_file")
                }
                Some(_) => Ok(()),
            },
            ProviderKind::AwsKms => Ok(()),
        }
    }
}

impl VaultConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, m: &str| Err((format!("keys.vault.{k}"), m.to_owned()));
        let approle = self.approle_role_id_env.is_some() || self.approle_secret_id_env.is_some();
        let token = self.token_env.is_some() || self.token_file.is_some();
        if !self.address.starts_with("https://") && !is_loopback_http(&self.address) {
            return err(
                "address",
                "must be https:// (plain http:// only to a loopback address)",
            );
        }
        if self.token_env.is_some() && self.token_file.is_some() {
            return err("token_env", "set token_env or token_file, not both");
        }
        if approle && (self.approle_role_id_env.is_none() || self.approle_secret_id_env.is_none()) {
            return err(
                "approle_role_id_env",
                "AppRole needs both approle_role_id_env and approle_secret_id_env",
            );
        }
        if approle == token {
            return err(
                "token_env",
                "set a token (token_env or token_file) or AppRole (approle_*_env), exactly one",
            );
        }
        Ok(())
    }
}

fn is_loopback_http(address: &str) -> bool {
    let Some(rest) = address.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    host == "localhost" || host == "[::1]" || host.starts_with("127.")
}

/// A file holding only a `[keys]` table (`keys rewrap --new-keys FILE`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    keys: Keys,
}

/// Reads, resolves and validates the `[keys]` table in `path`.
pub fn load_keys_file(path: &Path) -> Result<Keys, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut file: KeysFile = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    file.keys.resolve(path.parent().unwrap_or(Path::new(".")));
    file.keys
        .validate(true)
        .map_err(|(key, message)| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message,
        })?;
    Ok(file.keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Keys {
        let f: KeysFile = toml::from_str(text).unwrap();
        f.keys
    }

    #[test]
    fn provider_tables_validate() {
        let ok = keys(
            "[keys]\nprovider = \"vault-transit\"\n[keys.vault]\naddress = \"https://v:8200\"\nkey = \"pgcloak\"\ntoken_env = \"T\"\n",
        );
        assert_eq!(ok.kind(), ProviderKind::VaultTransit);
        assert!(ok.validate(true).is_ok());
        assert_eq!(ok.vault.as_ref().unwrap().mount, "transit");
        let plain = keys(
            "[keys]\nprovider = \"vault-transit\"\n[keys.vault]\naddress = \"http://vault:8200\"\nkey = \"k\"\ntoken_env = \"T\"\n",
        );
        assert!(plain.validate(true).unwrap_err().1.contains("https"));
        let e = keys("[keys]\nprovider = \"gcp-kms\"\n")
            .validate(true)
            .unwrap_err();
        assert!(e.1.contains("not yet available"), "{e:?}");
        let e = keys("[keys]\nprovider = \"aws-kms\"\n")
            .validate(true)
            .unwrap_err();
        assert_eq!(e.0, "keys.aws_kms");
        let e = keys("[keys]\nprovider = \"aws-kms\"\nmaster_key_env = \"X\"\n[keys.aws_kms]\nkey_id = \"alias/x\"\n")
            .validate(true)
            .unwrap_err();
        assert!(e.1.contains("\"local\" only"), "{e:?}");
        let e = keys("[keys]\nprovider = \"pkcs11\"\n[keys.pkcs11]\nmodule = \"m.so\"\ntoken_label = \"t\"\nkey_label = \"k\"\n")
            .validate(true)
            .unwrap_err();
        assert!(e.1.contains("pin_env"), "{e:?}");
        assert!(keys("[keys]\n").validate(true).is_err());
        assert!(keys("[keys]\n").validate(false).is_ok());
        assert!(toml::from_str::<KeysFile>("[keys]\nbogus = 1\n").is_err());
    }

    #[test]
    fn the_compose_openbao_files_parse() {
        let keys = keys(include_str!("../../docker/keys-openbao.toml"));
        assert_eq!(keys.kind(), ProviderKind::VaultTransit);
        assert!(keys.validate(true).is_ok());
        let text = include_str!("../../docker/pgcloak-openbao.toml");
        let cfg =
            super::super::Config::from_str_at(text, Path::new("/etc/pgcloak/x.toml")).unwrap();
        assert_eq!(cfg.keys.vault.unwrap().address, "https://openbao:8200");
    }
}
