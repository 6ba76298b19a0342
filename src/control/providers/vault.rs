//! The `vault-transit` provider: HashiCorp Vault's Transit secrets engine, which OpenBao
//! implements with the same API. Data keys are sent to `POST /v1/{mount}/encrypt/{key}` and
//! come back from `/decrypt/{key}`; the transit key never leaves Vault. The transit key must
//! be created with `derived=true`: the data key's identity (name, version, algorithm:
//! [`DataKey::wrap_aad`]) is the derivation `context`, so a wrap copied to another row does
//! not decrypt, and `/rewrap/{key}` (which takes `context` but not `associated_data`)
//! re-wraps onto the latest transit key version without the data key leaving Vault.
//!
//! HTTPS with rustls (ring) verified against `tls_ca` (else the system's roots); plain HTTP
//! only to loopback. Token from `token_env` / `token_file`, or an AppRole login; a renewable
//! token is renewed once half its TTL has passed (an AppRole token that cannot be renewed is
//! replaced by a new login). Every call has the configured timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{
    FailureKind, KeyProvider, ProviderError, ProviderFuture, data_key_from, foreign, timed,
};
use crate::config::keys::{ProviderKind, VaultConfig};
use crate::crypto::{DataKey, KekRef, WrappedKey};

const KIND: ProviderKind = ProviderKind::VaultTransit;

/// The current token and when to renew it.
#[derive(Default)]
struct TokenState {
    token: Option<Zeroizing<String>>,
    renew_at: Option<Instant>,
    renewable: bool,
    looked_up: bool,
}

/// Wraps with a Transit key.
pub struct VaultProvider(Arc<Inner>);

impl std::ops::Deref for VaultProvider {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The client, the token, and a background task that renews the token before it expires.
pub struct Inner {
    cfg: VaultConfig,
    http: reqwest::Client,
    auth: tokio::sync::Mutex<TokenState>,
    me: std::sync::Weak<Inner>,
    renewing: std::sync::atomic::AtomicBool,
}

impl VaultProvider {
    /// Builds the HTTPS client (reads `tls_ca`); authenticates on first use.
    pub fn new(cfg: &VaultConfig) -> Result<Self, ProviderError> {
        let (cfg, http) = Inner::client(cfg)?;
        Ok(VaultProvider(Arc::new_cyclic(|me| Inner {
            cfg,
            http,
            auth: tokio::sync::Mutex::new(TokenState::default()),
            me: me.clone(),
            renewing: std::sync::atomic::AtomicBool::new(false),
        })))
    }
}

/// Renews the token at half its TTL while the provider lives (a call would renew it too, but
/// a proxy may not call Vault for longer than a token's TTL).
async fn renew_loop(me: std::sync::Weak<Inner>) {
    use std::sync::atomic::Ordering;
    loop {
        let Some(inner) = me.upgrade() else { return };
        let due = inner.auth.lock().await.renew_at;
        let Some(due) = due else {
            inner.renewing.store(false, Ordering::SeqCst);
            return;
        };
        drop(inner);
        let wait = due.saturating_duration_since(Instant::now());
        tokio::time::sleep(wait.max(Duration::from_millis(200))).await;
        let Some(inner) = me.upgrade() else { return };
        let result = {
            let mut st = inner.auth.lock().await;
            inner.refresh(&mut st).await
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "vault token renewal failed; retrying");
            drop(inner);
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }
}

impl Inner {
    fn client(cfg: &VaultConfig) -> Result<(VaultConfig, reqwest::Client), ProviderError> {
        let err = |m: String| ProviderError::new(KIND, &cfg.address, FailureKind::Config, m);
        let mut roots = rustls::RootCertStore::empty();
        match &cfg.tls_ca {
            Some(ca) => {
                for cert in crate::net::tls::load_certs(ca).map_err(|e| err(e.to_string()))? {
                    roots
                        .add(cert)
                        .map_err(|e| err(format!("tls_ca {}: {e}", ca.display())))?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let timeout = Duration::from_secs(cfg.timeout_secs.max(1));
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .map_err(|e| err(e.to_string()))?;
        Ok((cfg.clone(), http))
    }

    fn error(&self, kind: FailureKind, cause: impl Into<String>) -> ProviderError {
        ProviderError::new(KIND, &self.cfg.address, kind, cause)
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.cfg.address.trim_end_matches('/'))
    }

    /// One request; Vault's `errors` become the cause (never the request body).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Value, ProviderError> {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t);
        }
        if let Some(ns) = &self.cfg.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| {
            let kind = if e.is_timeout() {
                FailureKind::Timeout
            } else {
                FailureKind::Unreachable
            };
            self.error(kind, error_chain(&e))
        })?;
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let errors = value["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        let kind = match status.as_u16() {
            401 | 403 => FailureKind::Denied,
            _ => FailureKind::Refused,
        };
        Err(self.error(kind, format!("{path}: HTTP {status}: {errors}")))
    }

    /// The token to use, logging in (AppRole) or renewing first when needed; starts the
    /// background renewal of an expiring token.
    async fn token(&self) -> Result<Zeroizing<String>, ProviderError> {
        let mut st = self.auth.lock().await;
        self.refresh(&mut st).await?;
        let start = st.renew_at.is_some()
            && !self
                .renewing
                .swap(true, std::sync::atomic::Ordering::SeqCst);
        if start {
            tokio::spawn(renew_loop(self.me.clone()));
        }
        Ok(st.token.clone().unwrap_or_default())
    }

    /// Logs in when there is no token (or it expires and cannot be renewed); renews it once
    /// half its TTL has passed.
    async fn refresh(&self, st: &mut TokenState) -> Result<(), ProviderError> {
        let due = st.renew_at.is_some_and(|t| Instant::now() >= t);
        if st.token.is_none() || (due && !st.renewable) {
            return self.authenticate(st).await;
        }
        if !due {
            return Ok(());
        }
        let token = st.token.clone().unwrap_or_default();
        let renew = self
            .call(
                reqwest::Method::POST,
                "auth/token/renew-self",
                Some(&token),
                Some(json!({})),
            )
            .await;
        match renew {
            Ok(v) => {
                apply_lease(st, &v["auth"]);
                let ttl = v["auth"]["lease_duration"].as_u64();
                tracing::info!(ttl_secs = ttl, "vault token renewed");
                Ok(())
            }
            Err(e) if self.approle() => {
                tracing::warn!(error = %e, "vault token renewal failed; logging in again");
                self.authenticate(st).await
            }
            Err(e) => Err(e),
        }
    }

    fn approle(&self) -> bool {
        self.cfg.approle_role_id_env.is_some()
    }

    async fn authenticate(&self, st: &mut TokenState) -> Result<(), ProviderError> {
        if let (Some(role_env), Some(secret_env)) = (
            &self.cfg.approle_role_id_env,
            &self.cfg.approle_secret_id_env,
        ) {
            let role = env_secret(role_env).map_err(|m| self.error(FailureKind::Config, m))?;
            let secret = env_secret(secret_env).map_err(|m| self.error(FailureKind::Config, m))?;
            let path = format!("auth/{}/login", self.cfg.approle_mount);
            let body = json!({ "role_id": role.as_str(), "secret_id": secret.as_str() });
            let v = self
                .call(reqwest::Method::POST, &path, None, Some(body))
                .await?;
            let token = v["auth"]["client_token"].as_str().unwrap_or_default();
            st.token = Some(Zeroizing::new(token.to_owned()));
            apply_lease(st, &v["auth"]);
            st.looked_up = true;
            return Ok(());
        }
        let token = self.static_token()?;
        let v = self
            .call(
                reqwest::Method::GET,
                "auth/token/lookup-self",
                Some(&token),
                None,
            )
            .await?;
        st.token = Some(token);
        let ttl = v["data"]["ttl"].as_u64().unwrap_or(0);
        st.renewable = v["data"]["renewable"].as_bool().unwrap_or(false);
        st.renew_at = (ttl > 0).then(|| Instant::now() + Duration::from_secs(ttl / 2));
        st.looked_up = true;
        Ok(())
    }

    fn static_token(&self) -> Result<Zeroizing<String>, ProviderError> {
        let cfg_err = |m: String| self.error(FailureKind::Config, m);
        if let Some(var) = &self.cfg.token_env {
            return env_secret(var).map_err(cfg_err);
        }
        let path = self
            .cfg
            .token_file
            .as_ref()
            .ok_or_else(|| cfg_err("no token source".into()))?;
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| cfg_err(format!("cannot read token_file {}: {e}", path.display())))?,
        );
        Ok(Zeroizing::new(text.trim().to_owned()))
    }

    /// An authenticated Transit call; a 403 with AppRole logs in once more and retries.
    async fn transit(&self, op: &str, body: Value) -> Result<Value, ProviderError> {
        let path = format!("{}/{op}/{}", self.cfg.mount, self.cfg.key);
        let token = self.token().await?;
        match self
            .call(
                reqwest::Method::POST,
                &path,
                Some(&token),
                Some(body.clone()),
            )
            .await
        {
            Err(e) if e.is_denied() && self.approle() => {
                {
                    let mut st = self.auth.lock().await;
                    self.authenticate(&mut st).await?;
                }
                let token = self.token().await?;
                self.call(reqwest::Method::POST, &path, Some(&token), Some(body))
                    .await
            }
            other => other,
        }
    }

    fn kek_for(&self, ciphertext: &str) -> KekRef {
        let version = ciphertext
            .strip_prefix("vault:v")
            .and_then(|r| r.split(':').next())
            .and_then(|v| v.parse().ok());
        KekRef {
            kind: KIND.name().to_owned(),
            key_id: format!("{}/{}", self.cfg.mount, self.cfg.key),
            key_version: version,
        }
    }

    fn wrapped_from(&self, key: (&str, u32, &str), v: &Value) -> Result<WrappedKey, ProviderError> {
        let ct = v["data"]["ciphertext"]
            .as_str()
            .ok_or_else(|| self.error(FailureKind::Refused, "no ciphertext in the answer"))?;
        Ok(WrappedKey {
            name: key.0.to_owned(),
            version: key.1,
            algorithm: key.2.to_owned(),
            wrapped: ct.as_bytes().to_vec(),
            by: self.kek_for(ct),
        })
    }

    fn secs(&self) -> u64 {
        // The HTTP client has the same limit per request; this bounds login + call together.
        self.cfg.timeout_secs.max(1) * 2
    }
}

fn context(name: &str, version: u32, algorithm: &str) -> String {
    let alg = crate::crypto::Algorithm::from_name(algorithm);
    let mut aad = alg
        .map(|a| DataKey::wrap_aad(name, version, a))
        .unwrap_or_default();
    if alg.is_none() {
        aad.extend_from_slice(algorithm.as_bytes());
    }
    STANDARD.encode(aad)
}

fn apply_lease(st: &mut TokenState, auth: &Value) {
    let ttl = auth["lease_duration"].as_u64().unwrap_or(0);
    st.renewable = auth["renewable"].as_bool().unwrap_or(false);
    st.renew_at = (ttl > 0).then(|| Instant::now() + Duration::from_secs(ttl / 2));
}

fn env_secret(var: &str) -> Result<Zeroizing<String>, String> {
    std::env::var(var)
        .map(|v| Zeroizing::new(v.trim().to_owned()))
        .map_err(|_| format!("environment variable {var} is not set"))
}

/// The error and its sources, e.g. "error sending request: connection refused".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

impl KeyProvider for VaultProvider {
    fn kind(&self) -> ProviderKind {
        KIND
    }

    fn address(&self) -> String {
        self.cfg.address.clone()
    }

    fn kek(&self) -> KekRef {
        KekRef {
            kind: KIND.name().to_owned(),
            key_id: format!("{}/{}", self.cfg.mount, self.cfg.key),
            key_version: None,
        }
    }

    fn wrap<'a>(&'a self, key: &'a DataKey) -> ProviderFuture<'a, WrappedKey> {
        Box::pin(timed(
            KIND,
            self.cfg.address.clone(),
            self.secs(),
            async move {
                let plaintext = Zeroizing::new(STANDARD.encode(key.material()));
                let body = json!({
                    "plaintext": plaintext.as_str(),
                    "context": context(&key.name, key.version, key.algorithm.name()),
                });
                let v = self.transit("encrypt", body).await?;
                self.wrapped_from((&key.name, key.version, key.algorithm.name()), &v)
            },
        ))
    }

    fn unwrap<'a>(&'a self, stored: &'a WrappedKey) -> ProviderFuture<'a, DataKey> {
        Box::pin(timed(
            KIND,
            self.cfg.address.clone(),
            self.secs(),
            async move {
                if let Some(e) = foreign(KIND, &self.cfg.address, stored) {
                    return Err(e);
                }
                let ct = std::str::from_utf8(&stored.wrapped).map_err(|_| {
                    self.error(
                        FailureKind::Refused,
                        "stored wrap is not a Transit ciphertext",
                    )
                    .for_key(stored)
                })?;
                let body = json!({
                    "ciphertext": ct,
                    "context": context(&stored.name, stored.version, &stored.algorithm),
                });
                let v = self
                    .transit("decrypt", body)
                    .await
                    .map_err(|e| e.for_key(stored))?;
                let b64 = Zeroizing::new(
                    v["data"]["plaintext"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
                let material = Zeroizing::new(STANDARD.decode(b64.as_bytes()).map_err(|_| {
                    self.error(FailureKind::Refused, "plaintext is not base64")
                        .for_key(stored)
                })?);
                data_key_from(stored, material).map_err(|e| {
                    self.error(FailureKind::Refused, e.to_string())
                        .for_key(stored)
                })
            },
        ))
    }

    fn rewrap_latest<'a>(
        &'a self,
        stored: &'a WrappedKey,
    ) -> Option<ProviderFuture<'a, WrappedKey>> {
        Some(Box::pin(timed(
            KIND,
            self.cfg.address.clone(),
            self.secs(),
            async move {
                if let Some(e) = foreign(KIND, &self.cfg.address, stored) {
                    return Err(e);
                }
                let ct = String::from_utf8_lossy(&stored.wrapped).into_owned();
                let body = json!({
                    "ciphertext": ct,
                    "context": context(&stored.name, stored.version, &stored.algorithm),
                });
                let v = self
                    .transit("rewrap", body)
                    .await
                    .map_err(|e| e.for_key(stored))?;
                self.wrapped_from((&stored.name, stored.version, &stored.algorithm), &v)
            },
        )))
    }

    fn policy(&self) -> String {
        let (m, k) = (&self.cfg.mount, &self.cfg.key);
        format!(
            "# Vault/OpenBao policy for pgcloak (transit key {m}/{k}, created with derived=true)\n\
             path \"{m}/encrypt/{k}\" {{ capabilities = [\"update\"] }}\n\
             path \"{m}/decrypt/{k}\" {{ capabilities = [\"update\"] }}\n\
             path \"{m}/rewrap/{k}\"  {{ capabilities = [\"update\"] }}\n\
             path \"auth/token/lookup-self\" {{ capabilities = [\"read\"] }}\n\
             path \"auth/token/renew-self\"  {{ capabilities = [\"update\"] }}"
        )
    }
}
