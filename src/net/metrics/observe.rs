//! What one session tells the metrics and the audit trail. A session's [`SessionObs`] holds its
//! per-column counts of values encrypted and decrypted; while the relay handles the frames of
//! one read it sits in a thread-local slot ([`enter`]/[`exit`]: handlers are synchronous, so
//! no other session runs on this thread in between), where the value code's hooks
//! ([`encrypted`], [`decrypted`]) find it without a handle threaded through every call. At
//! [`exit`] the new counts are folded into this thread's metrics shard under one lock; at
//! logout they go into the audit record.
//!
//! Refusals and decrypt failures are logged at `info`/`warn` with the SQLSTATE, the column,
//! the construct and pg_query's fingerprint of the statement — never its text or values.

use std::cell::RefCell;
use std::sync::Arc;

use serde_json::{Value, json};
use tracing::{info, warn};

use crate::audit::{Audit, Budget};
use crate::config::ColumnRule;
use crate::net::metrics::{self, Class, Key};
use crate::rewrite::{Analysis, Refusal, RefusalTarget};

/// Counts for one (column, key version), with the metric keys they are folded into (built once
/// per column and version, so a flush clones `Arc`s and hashes, never formats or allocates).
#[derive(Debug)]
struct ColCount {
    rule: usize,
    column: Arc<str>,
    key: Arc<str>,
    version: u32,
    /// `Values` keys for encrypt, decrypt, decrypt_failed; the `Gcm` key of a randomized column.
    keys: [Key; 3],
    gcm: Option<Key>,
    /// encrypted, decrypted, failed; and what was already folded into the metrics.
    now: [u64; 3],
    flushed: [u64; 3],
}

impl ColCount {
    /// The counts not yet folded into the metrics, with their keys.
    fn deltas(&self) -> impl Iterator<Item = (Key, u64)> + '_ {
        (0..3).flat_map(move |op| {
            let d = self.now[op] - self.flushed[op];
            let gcm = self.gcm.as_ref().filter(|_| op == 0);
            [Some(&self.keys[op]), gcm]
                .into_iter()
                .flatten()
                .filter(move |_| d > 0)
                .map(move |k| (k.clone(), d))
        })
    }
}

/// One session's observation state.
#[derive(Debug, Default)]
pub struct SessionObs {
    role: String,
    database: String,
    audit: Option<Arc<Audit>>,
    budget: Option<Budget>,
    cols: Vec<ColCount>,
    /// The text of the last statement that touched encrypted columns (fingerprinted on a
    /// decrypt failure; never logged).
    last_sql: String,
    limited_reported: bool,
    dirty: bool,
}

thread_local! {
    static CURRENT: RefCell<Option<Box<SessionObs>>> = const { RefCell::new(None) };
}

/// Puts `obs` in this thread's slot; hand the result to [`exit`].
#[inline]
pub fn enter(obs: Option<Box<SessionObs>>) -> Option<Box<SessionObs>> {
    obs.as_ref()?;
    CURRENT.with(|c| c.replace(obs))
}

/// Takes the session's state back out of the slot (restoring what `enter` displaced) and
/// folds its new counts into the metrics.
#[inline]
pub fn exit(displaced: Option<Box<SessionObs>>, had: bool) -> Option<Box<SessionObs>> {
    if !had {
        return None;
    }
    let mut obs = CURRENT.with(|c| c.replace(displaced));
    if let Some(o) = obs.as_mut().filter(|o| o.dirty) {
        o.flush();
    }
    obs
}

fn with_current<R>(f: impl FnOnce(&mut SessionObs) -> R) -> Option<R> {
    CURRENT.with(|c| c.borrow_mut().as_mut().map(|o| f(o)))
}

/// The key version of a stored envelope (`version ‖ mode ‖ key version u32 ‖ body`).
fn envelope_version(stored: &[u8]) -> u32 {
    stored
        .get(2..6)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes)
}

impl SessionObs {
    /// A logged-in session of `role` to `database`.
    pub fn new(role: &str, database: &str, audit: Option<Arc<Audit>>) -> Self {
        SessionObs {
            role: role.to_owned(),
            database: database.to_owned(),
            budget: audit.as_ref().and_then(|a| a.budget(role)),
            audit,
            ..SessionObs::default()
        }
    }

    fn count(&mut self, rule: &ColumnRule, stored: &[u8], op: usize) {
        let (id, version) = (rule as *const ColumnRule as usize, envelope_version(stored));
        self.dirty = true;
        if let Some(c) = self
            .cols
            .iter_mut()
            .find(|c| c.rule == id && c.version == version && *c.key == *rule.key)
        {
            c.now[op] += 1;
            return;
        }
        let column: Arc<str> = Arc::from(rule.qualified());
        let key: Arc<str> = Arc::from(rule.key.as_str());
        let values = |op| Key::Values {
            op,
            column: Arc::clone(&column),
            version,
        };
        let mut c = ColCount {
            rule: id,
            keys: [
                values("encrypt"),
                values("decrypt"),
                values("decrypt_failed"),
            ],
            gcm: (stored.get(1) == Some(&1)).then(|| Key::Gcm {
                key: Arc::clone(&key),
                version,
            }),
            column,
            key,
            version,
            now: [0; 3],
            flushed: [0; 3],
        };
        c.now[op] = 1;
        self.cols.push(c);
    }

    /// Folds the counts not yet in the metrics into this thread's shard.
    fn flush(&mut self) {
        self.dirty = false;
        let cols = &self.cols;
        metrics::shard::with(|s| s.add_all(cols.iter().flat_map(ColCount::deltas)));
        for c in &mut self.cols {
            c.flushed = c.now;
        }
    }

    /// Writes the login record.
    pub fn login(&self, fields: Vec<(&str, Value)>) {
        if let Some(a) = &self.audit {
            let mut f = vec![
                ("role", json!(self.role)),
                ("database", json!(self.database)),
            ];
            f.extend(fields);
            a.record("login", f);
        }
    }

    /// The session ended: folds the last counts in and writes the logout record with the
    /// values decrypted and encrypted per column.
    pub fn logout(mut self, end: &str) {
        self.flush();
        let Some(a) = &self.audit else { return };
        let mut per: std::collections::BTreeMap<&str, [u64; 3]> = Default::default();
        for c in &self.cols {
            let e = per.entry(&c.column).or_default();
            (0..3).for_each(|i| e[i] += c.now[i]);
        }
        let columns: serde_json::Map<String, Value> = per
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    json!({"encrypted": v[0], "decrypted": v[1], "failed": v[2]}),
                )
            })
            .collect();
        a.record(
            "logout",
            vec![
                ("role", json!(self.role)),
                ("database", json!(self.database)),
                ("end", json!(end)),
                ("columns", Value::Object(columns)),
            ],
        );
    }
}

/// A value was encrypted for `rule` (`stored`: the envelope).
#[inline]
pub fn encrypted(rule: &ColumnRule, stored: &[u8]) {
    with_current(|o| o.count(rule, stored, 0));
}

/// Why a decrypt was not done.
#[derive(Debug)]
pub struct RateLimited {
    pub role: String,
    pub limit: u64,
}

/// About to decrypt `stored` for `rule`: false when the role's decrypt budget is spent.
#[inline]
pub fn may_decrypt(rule: &ColumnRule) -> Result<(), RateLimited> {
    with_current(|o| {
        let Some(b) = o.budget.as_mut() else { return Ok(()) };
        if b.take() {
            return Ok(());
        }
        let limit = b.limit();
        if !o.limited_reported {
            o.limited_reported = true;
            metrics::shard::with(|s| s.add_labelled(Key::RateLimited, 1));
            warn!(role = %o.role, column = %rule, limit, "decrypt rate limit reached; results withheld (53400)");
            if let Some(a) = &o.audit {
                a.record("rate_limited", vec![("role", json!(o.role)), ("database", json!(o.database)), ("column", json!(rule.qualified())), ("limit_per_minute", json!(limit))]);
            }
        }
        Err(RateLimited { role: o.role.clone(), limit })
    })
    .unwrap_or(Ok(()))
}

/// A value of `rule` was decrypted (`ok`) or failed to decrypt (XX001).
#[inline]
pub fn decrypted(rule: &ColumnRule, stored: &[u8], ok: bool) {
    with_current(|o| {
        o.count(rule, stored, if ok { 1 } else { 2 });
        if !ok {
            let fp = fingerprint(&o.last_sql);
            let version = envelope_version(stored);
            warn!(sqlstate = crate::sqlstate::DATA_CORRUPTED, column = %rule, key_version = version, fingerprint = %fp, "stored value failed to decrypt");
            if let Some(a) = &o.audit {
                a.record(
                    "decrypt_failed",
                    vec![
                        ("role", json!(o.role)),
                        ("database", json!(o.database)),
                        ("column", json!(rule.qualified())),
                        ("key_version", json!(version)),
                        ("fingerprint", json!(fp)),
                    ],
                );
            }
        }
    });
}

/// pg_query's fingerprint of `sql` (`-` when it does not parse).
pub fn fingerprint(sql: &str) -> String {
    pg_query::fingerprint(sql, 0, 0).map_or_else(|_| "-".to_owned(), |f| f.hex)
}

/// A statement went through a rules database's analysis.
#[inline]
pub fn statement(sql: &str, analysis: &Analysis) {
    let class = match analysis {
        Analysis::Passthrough => Class::Plain,
        Analysis::Rewrite(_) => Class::Encrypted,
        Analysis::Refuse(_) => Class::Refused,
    };
    metrics::statement(metrics::statement_kind(sql.as_bytes()), class);
    if class == Class::Encrypted {
        with_current(|o| {
            o.last_sql.clear();
            o.last_sql.push_str(sql);
        });
    }
}

/// The analysis refused `sql` ([`refused`]); a syntax error's parser message may quote the
/// statement, so only "syntax error" is logged for it.
pub fn refusal(sql: &str, r: &Refusal) {
    let construct = match r.target {
        RefusalTarget::Syntax => "syntax error",
        RefusalTarget::Column | RefusalTarget::Table => r.construct.as_str(),
    };
    refused(sql, r.sqlstate(), &r.column, construct);
}

/// A statement was refused: counted, logged at info and audited (no text, no values).
pub fn refused(sql: &str, sqlstate: &'static str, column: &str, construct: &str) {
    metrics::refused(sqlstate, column);
    let fp = fingerprint(sql);
    info!(sqlstate, column, construct, fingerprint = %fp, "statement refused");
    with_current(|o| {
        if let Some(a) = &o.audit {
            a.record(
                "refused",
                vec![
                    ("role", json!(o.role)),
                    ("database", json!(o.database)),
                    ("sqlstate", json!(sqlstate)),
                    ("column", json!(column)),
                    ("construct", json!(construct)),
                    ("fingerprint", json!(fp)),
                ],
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reach_the_shard_at_exit_and_the_session_keeps_them() {
        let rule = ColumnRule {
            schema: "public".into(),
            table: "t_observe".into(),
            column: "c".into(),
            ty: crate::codec::LogicalType::Text,
            mode: crate::config::Mode::Randomized,
            key: "public.t_observe.c".into(),
        };
        let stored = [1u8, 1, 0, 0, 0, 7, 9, 9];
        let obs = Some(Box::new(SessionObs::new("app", "db", None)));
        let had = obs.is_some();
        let d = enter(obs);
        encrypted(&rule, &stored);
        decrypted(&rule, &stored, true);
        decrypted(&rule, &stored, true);
        let obs = exit(d, had).unwrap();
        assert_eq!(obs.cols[0].now, [1, 2, 0]);
        let snap = metrics::shard::snapshot();
        let col: Arc<str> = Arc::from("public.t_observe.c");
        let get = |op| {
            snap.labelled
                .get(&Key::Values {
                    op,
                    column: col.clone(),
                    version: 7,
                })
                .copied()
        };
        assert_eq!((get("encrypt"), get("decrypt")), (Some(1), Some(2)));
        assert_eq!(
            snap.labelled.get(&Key::Gcm {
                key: col.clone(),
                version: 7
            }),
            Some(&1)
        );
        // Outside a session nothing is counted per session (and nothing panics).
        encrypted(&rule, &stored);
    }
}
