//! The audit trail (`[audit]`, spec §8): a JSON-lines record of key events, logins and
//! logouts (with per-column counts of values decrypted and encrypted), refusals and decrypt
//! failures, kept apart from the diagnostic log and never holding a value, key or SQL text.
//! Records are sealed into an HMAC chain ([`chain`]) so an edit or a deletion is detected by
//! `pgcloak audit verify`.
//!
//! The HMAC key comes from the key provider ([`key`]): for `local` it is derived from the
//! master key ([`AuditKey::from_master`], HKDF under [`KEY_LABEL`]); for a KMS/HSM provider it
//! is a random key the provider wraps, kept in the rules database. Records are written by one
//! thread per process, in order, so sessions only send to a channel; a file shared by several
//! processes (the server and CLI runs) is appended under an exclusive `flock` ([`sink`]).
//!
//! The optional per-role tripwire ([`Audit::budget`], `max_decrypts_per_minute`) counts values
//! decrypted per role per minute in this process.

pub mod chain;
pub mod key;
mod sink;
pub mod subject;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::config::file::Audit as AuditConfig;

/// The HKDF label of the audit key (fixed: changing it orphans every existing trail).
pub const KEY_LABEL: &[u8] = b"pgcloak audit trail HMAC key v1";

/// The audit trail's HMAC key.
pub struct AuditKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(<redacted>)")
    }
}

impl AuditKey {
    /// From secret material a key provider supplies (HKDF-SHA256 under [`KEY_LABEL`]).
    pub fn from_material(material: &[u8]) -> Self {
        AuditKey(crate::crypto::derive_key(material, KEY_LABEL))
    }

    /// The `local` provider's: derived from the master key.
    pub fn from_master(master: &crate::crypto::MasterKey) -> Self {
        AuditKey(master.derive(KEY_LABEL))
    }
}

/// The audit trail could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit file {path}: {source}")]
    File {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "audit file {0} ends with a line that is not a sealed record; run `pgcloak audit verify` \
         on it and move it aside"
    )]
    Unreadable(std::path::PathBuf),
    #[error("syslog (/dev/log): {0}")]
    Syslog(std::io::Error),
    #[error("audit record not written: {0}")]
    Write(std::io::Error),
    #[error("cannot start the audit writer: {0}")]
    Thread(std::io::Error),
}

/// The running audit trail.
#[derive(Debug)]
pub struct Audit {
    tx: Option<std::sync::mpsc::Sender<Map<String, Value>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    limit: Option<u64>,
    windows: Mutex<HashMap<String, Arc<RoleWindow>>>,
}

impl Drop for Audit {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Audit {
    /// Opens the sink `cfg` names (continuing an existing file's chain) and starts the writer.
    pub fn open(cfg: &AuditConfig, key: AuditKey) -> Result<Arc<Audit>, AuditError> {
        let sink = sink::Sink::open(cfg)?;
        let (tx, rx) = std::sync::mpsc::channel::<Map<String, Value>>();
        let thread = std::thread::Builder::new()
            .name("pgcloak-audit".into())
            .spawn(move || sink.run(key, rx))
            .map_err(AuditError::Thread)?;
        Ok(Arc::new(Audit {
            tx: Some(tx),
            thread: Some(thread),
            limit: cfg.max_decrypts_per_minute,
            windows: Mutex::new(HashMap::new()),
        }))
    }

    /// Appends a record of `event` with `fields` (never values, keys or SQL text).
    pub fn record(&self, event: &str, fields: Vec<(&str, Value)>) {
        let mut m = Map::new();
        m.insert("ts".into(), Value::from(timestamp()));
        m.insert("event".into(), Value::from(event));
        for (k, v) in fields {
            m.insert(k.to_owned(), v);
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(m);
        }
    }

    /// The decrypt budget of `role` under `max_decrypts_per_minute` (`None`: no limit).
    pub fn budget(&self, role: &str) -> Option<Budget> {
        let limit = self.limit?;
        let window = Arc::clone(self.windows.lock().entry(role.to_owned()).or_default());
        Some(Budget {
            window,
            limit,
            chunk: (limit / 64).clamp(1, 64),
            tokens: 0,
        })
    }
}

/// RFC 3339 UTC with milliseconds.
fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn minute_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60)
}

/// Values decrypted by one role in the current minute, shared by its sessions.
#[derive(Debug, Default)]
pub struct RoleWindow {
    minute: AtomicU64,
    used: AtomicU64,
}

/// One session's share of its role's budget: takes from the shared window in chunks, so the
/// shared counter is touched once per chunk, not per value.
#[derive(Debug)]
pub struct Budget {
    window: Arc<RoleWindow>,
    limit: u64,
    chunk: u64,
    tokens: u64,
}

impl Budget {
    /// Takes one decrypt; false when the role is past its limit this minute.
    pub fn take(&mut self) -> bool {
        if self.tokens > 0 {
            self.tokens -= 1;
            return true;
        }
        let now = minute_now();
        let w = &self.window;
        if w.minute.swap(now, Relaxed) != now {
            w.used.store(0, Relaxed);
        }
        let before = w.used.fetch_add(self.chunk, Relaxed);
        if before >= self.limit {
            return false;
        }
        self.tokens = self.chunk.min(self.limit - before) - 1;
        true
    }

    /// The limit, for messages.
    pub fn limit(&self) -> u64 {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_counts_every_session_of_a_role() {
        let cfg = AuditConfig {
            stdout: true,
            max_decrypts_per_minute: Some(5),
            ..AuditConfig::default()
        };
        let audit = Audit::open(&cfg, AuditKey::from_material(b"k")).unwrap();
        let (mut a, mut b) = (audit.budget("app").unwrap(), audit.budget("app").unwrap());
        let mut other = audit.budget("batch").unwrap();
        let took = (0..4).filter(|_| a.take()).count() + (0..4).filter(|_| b.take()).count();
        assert_eq!(took, 5);
        assert!(other.take());
    }
}
