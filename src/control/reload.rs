//! Live reload (SIGHUP): the config file and every rules file are read and checked again
//! before anything changes; a bad file is reported and the running set kept. What can change
//! while serving is the rules: a database whose rules changed gets a freshly loaded and
//! checked [`Encryption`] (online checks, key ring, catalog) that new sessions use at once;
//! sessions still open under the old rules are closed at their next idle point (`57P01`, the
//! client reconnects), so no statement runs under rules that are no longer the file's.
//! Databases whose rules did not change keep their instance and sessions. Settings that only
//! a restart applies (listen, upstream, TLS, auth, control, keys, metrics, audit) are reported
//! as such.

use std::collections::BTreeSet;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::config::{self, Config, DatabaseRules};
use crate::control::encryption::{Encryption, EncryptionError, Encryptions};

/// A reload was rejected; the running config and rules stay.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Rules(#[from] config::RulesError),
    #[error("master key: {0}")]
    MasterKey(#[from] crate::crypto::CryptoError),
    #[error(transparent)]
    Encryption(#[from] EncryptionError),
}

/// What a successful reload did.
#[derive(Debug, Default)]
pub struct Reloaded {
    /// The encryption set new sessions get.
    pub encryption: Option<Arc<Encryptions>>,
    /// Instances replaced or removed: their sessions must drain.
    pub retired: Vec<Arc<Encryption>>,
    /// One line per change, for the log.
    pub changes: Vec<String>,
}

/// Every rules column of `db` as `schema.table.column type mode key`.
fn columns(db: &DatabaseRules) -> BTreeSet<String> {
    db.rules
        .columns()
        .map(|c| format!("{c} {:?} {:?} key={}", c.ty, c.mode, c.key).to_lowercase())
        .collect()
}

/// Settings that take effect only after a restart, by the section that changed.
fn restart_only(old: &Config, new: &Config) -> Vec<String> {
    let sections = [
        (
            "listen",
            format!("{:?}", old.listen),
            format!("{:?}", new.listen),
        ),
        (
            "upstream",
            format!("{:?}", old.upstream),
            format!("{:?}", new.upstream),
        ),
        ("auth", format!("{:?}", old.auth), format!("{:?}", new.auth)),
        (
            "control",
            format!("{:?}", old.control),
            format!("{:?}", new.control),
        ),
        ("keys", format!("{:?}", old.keys), format!("{:?}", new.keys)),
        (
            "metrics",
            format!("{:?}", old.metrics),
            format!("{:?}", new.metrics),
        ),
        (
            "audit",
            format!("{:?}", old.audit),
            format!("{:?}", new.audit),
        ),
        ("log", format!("{:?}", old.log), format!("{:?}", new.log)),
    ];
    sections
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(name, _, _)| format!("[{name}] changed: takes effect after a restart"))
        .collect()
}

/// Re-reads `current.path` and its rules; loads what changed. Nothing is swapped here: the
/// caller installs [`Reloaded::encryption`] and drains [`Reloaded::retired`].
pub async fn reload(
    current: &Arc<Config>,
    password: &Zeroizing<String>,
    running: Option<&Arc<Encryptions>>,
) -> Result<Reloaded, ReloadError> {
    let new = Config::load(&current.path)?;
    let databases: Vec<DatabaseRules> = config::load_rules(&new.rules)?
        .into_iter()
        .filter(|d| !d.rules.is_empty())
        .collect();
    let mut out = Reloaded {
        changes: restart_only(current, &new),
        ..Reloaded::default()
    };
    let old: Vec<Arc<Encryption>> = running
        .map(|r| r.iter().cloned().collect())
        .unwrap_or_default();
    let mut master = None;
    let mut all = Vec::with_capacity(databases.len());
    for db in databases {
        let same = old.iter().find(|e| e.database == db.database);
        let now = columns(&db);
        if let Some(e) = same {
            let before: BTreeSet<String> = e
                .rules
                .columns()
                .map(|c| format!("{c} {:?} {:?} key={}", c.ty, c.mode, c.key).to_lowercase())
                .collect();
            if before == now {
                all.push(Arc::clone(e));
                continue;
            }
            let added: Vec<_> = now
                .difference(&before)
                .map(|c| c.split(' ').next().unwrap_or(""))
                .collect();
            let removed: Vec<_> = before
                .difference(&now)
                .map(|c| c.split(' ').next().unwrap_or(""))
                .collect();
            out.changes.push(format!(
                "database {}: rules changed (added or changed: [{}]; removed or changed: [{}])",
                db.database,
                added.join(", "),
                removed.join(", ")
            ));
        } else {
            out.changes.push(format!(
                "database {}: rules added ({} column(s))",
                db.database,
                now.len()
            ));
        }
        if master.is_none() {
            master = Some(Arc::new(
                crate::config::secrets::master_key_source(&current.keys)?.load()?,
            ));
        }
        let m = Arc::clone(master.as_ref().expect("loaded above"));
        all.push(Encryption::load(Arc::clone(current), password.clone(), m, db).await?);
    }
    for e in &old {
        if !all.iter().any(|n| Arc::ptr_eq(n, e)) {
            if !all.iter().any(|n| n.database == e.database) {
                out.changes.push(format!(
                    "database {}: rules removed; its sessions are relayed unencrypted",
                    e.database
                ));
            }
            out.retired.push(Arc::clone(e));
        }
    }
    out.encryption = (!all.is_empty()).then(|| Arc::new(Encryptions::from_parts(all)));
    Ok(out)
}
