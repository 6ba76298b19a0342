//! Verification without writing plaintext anywhere: values are read and compared in this
//! process only, and what is reported is a count and a SHA-256 checksum over (key, canonical
//! plaintext) in key order.
//!
//! - [`before_switch`]: in one `REPEATABLE READ` snapshot, every row that is not waiting in the
//!   queue (a write to the column commits its queue entry with it) must have a shadow value
//!   equal to its plaintext: checksums of both sides are computed and must agree.
//! - [`stored`]: after the switch, every stored value decrypts (encrypt) or parses (decrypt)
//!   as the rule's type.

use std::collections::HashSet;

use sha2::{Digest, Sha256};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

use super::plan::{Direction, Plan};
use super::{MigrateError, codec_detail};
use crate::codec::{TextContext, text_to_canonical};
use crate::crypto::KeyEntry;

/// Rows read per query.
const BATCH: i64 = 5000;

/// A count and checksum of plaintext values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Rows read.
    pub rows: u64,
    /// Non-NULL values.
    pub values: u64,
    /// Rows skipped because they were waiting in the queue.
    pub queued: u64,
    /// Hex SHA-256 (first 16 bytes) of the plaintexts.
    pub checksum: String,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} row(s), {} value(s), checksum {}",
            self.rows, self.values, self.checksum
        )
    }
}

struct Side {
    hash: Sha256,
    values: u64,
}

impl Side {
    fn new() -> Self {
        Side {
            hash: Sha256::new(),
            values: 0,
        }
    }

    fn add(&mut self, key: &[String], value: Option<&[u8]>) {
        for k in key {
            self.hash.update((k.len() as u64).to_be_bytes());
            self.hash.update(k.as_bytes());
        }
        match value {
            Some(v) => {
                self.values += 1;
                self.hash.update([1]);
                self.hash.update((v.len() as u64).to_be_bytes());
                self.hash.update(v);
            }
            None => self.hash.update([0]),
        }
    }

    fn finish(self) -> String {
        self.hash.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Reads `columns` of every row in key order, one batch at a time, inside the caller's
/// transaction.
async fn scan(
    c: &impl tokio_postgres::GenericClient,
    plan: &Plan,
    columns: &str,
    mut each: impl FnMut(&Row, Vec<String>) -> Result<(), MigrateError>,
) -> Result<u64, MigrateError> {
    let name = plan.rule.qualified();
    let keys: Vec<String> = plan.pk.iter().map(|(n, _)| format!("t.{n}")).collect();
    let keys = keys.join(", ");
    let n = plan.pk.len();
    let key_cols: Vec<String> = plan
        .pk
        .iter()
        .map(|(k, _)| format!("t.{k}::text"))
        .collect();
    let select = format!("{}, {columns}", key_cols.join(", "));
    let params: Vec<String> = plan
        .pk
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| format!("${}::text::{ty}", i + 1))
        .collect();
    let mut after: Option<Vec<String>> = None;
    let mut rows_read = 0u64;
    loop {
        let rows = match &after {
            None => {
                let sql = format!(
                    "SELECT {select} FROM {} t ORDER BY {keys} LIMIT {BATCH}",
                    plan.table
                );
                c.query(&sql, &[]).await
            }
            Some(a) => {
                let sql = format!(
                    "SELECT {select} FROM {} t WHERE ({keys}) > ({}) ORDER BY {keys} LIMIT {BATCH}",
                    plan.table,
                    params.join(", ")
                );
                let args: Vec<&(dyn ToSql + Sync)> =
                    a.iter().map(|k| k as &(dyn ToSql + Sync)).collect();
                c.query(&sql, &args).await
            }
        }
        .map_err(MigrateError::db(&name))?;
        for r in &rows {
            let key: Vec<String> = (0..n).map(|i| r.get(i)).collect();
            after = Some(key.clone());
            each(r, key)?;
        }
        rows_read += rows.len() as u64;
        if (rows.len() as i64) < BATCH {
            return Ok(rows_read);
        }
    }
}

fn key_text(plan: &Plan, key: &[String]) -> String {
    let parts: Vec<String> = plan
        .pk
        .iter()
        .zip(key)
        .map(|((n, _), v)| format!("{}={v}", n.trim_matches('"')))
        .collect();
    parts.join(", ")
}

/// The canonical plaintext of a plaintext column's text.
fn parse(plan: &Plan, key: &[String], text: &str) -> Result<Vec<u8>, MigrateError> {
    text_to_canonical(plan.rule.ty, text.as_bytes(), &TextContext::default()).map_err(|e| {
        MigrateError::Value {
            column: plan.rule.qualified(),
            key: key_text(plan, key),
            ty: plan.rule.ty.name(),
            detail: codec_detail(&e),
        }
    })
}

fn open(
    entry: &KeyEntry,
    plan: &Plan,
    key: &[String],
    stored: &[u8],
) -> Result<Vec<u8>, MigrateError> {
    entry
        .decrypt(stored)
        .map(|z| z.to_vec())
        .map_err(|_| MigrateError::Undecryptable {
            column: plan.rule.qualified(),
            key: key_text(plan, key),
        })
}

/// Before the switch: the shadow holds exactly the plaintext of every row not in the queue.
pub async fn before_switch(
    client: &mut Client,
    plan: &Plan,
    entry: &KeyEntry,
    id: i32,
) -> Result<Summary, MigrateError> {
    let name = plan.rule.qualified();
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(MigrateError::db(&name))?;
    let queued: HashSet<Vec<String>> = tx
        .query(
            "SELECT DISTINCT pk FROM pgcloak.migrate_queue WHERE migration = $1",
            &[&id],
        )
        .await
        .map_err(MigrateError::db(&name))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (mut plain, mut shadow) = (Side::new(), Side::new());
    let mut skipped = 0u64;
    let source = match plan.direction {
        Direction::Encrypt => format!("t.{}::text, t.{}", plan.column, plan.shadow),
        Direction::Decrypt => format!("t.{}, t.{}::text", plan.column, plan.shadow),
    };
    let n = plan.pk.len();
    let rows = scan(&tx, plan, &source, |r, key| {
        if queued.contains(&key) {
            skipped += 1;
            return Ok(());
        }
        let (a, b) = match plan.direction {
            Direction::Encrypt => {
                let p: Option<String> = r.get(n);
                let s: Option<Vec<u8>> = r.get(n + 1);
                (
                    p.map(|t| parse(plan, &key, &t)).transpose()?,
                    s.map(|s| open(entry, plan, &key, &s)).transpose()?,
                )
            }
            Direction::Decrypt => {
                let e: Option<Vec<u8>> = r.get(n);
                let s: Option<String> = r.get(n + 1);
                (
                    e.map(|e| open(entry, plan, &key, &e)).transpose()?,
                    s.map(|t| parse(plan, &key, &t)).transpose()?,
                )
            }
        };
        if a != b {
            return Err(MigrateError::Verify {
                column: name.clone(),
                detail: format!(
                    "the row with key ({}) has a new value that differs from its old one",
                    key_text(plan, &key)
                ),
            });
        }
        plain.add(&key, a.as_deref());
        shadow.add(&key, b.as_deref());
        Ok(())
    })
    .await?;
    tx.commit().await.map_err(MigrateError::db(&name))?;
    let values = plain.values;
    let (p, s) = (plain.finish(), shadow.finish());
    if p != s {
        return Err(MigrateError::Verify {
            column: name,
            detail: format!("checksums differ (old {p}, new {s})"),
        });
    }
    Ok(Summary {
        rows: rows - skipped,
        values,
        queued: skipped,
        checksum: p,
    })
}

/// After the switch: every stored value of the column is an envelope that decrypts to a valid
/// value of the rule's type (encrypt), or a valid plaintext (decrypt).
pub async fn stored(
    client: &Client,
    plan: &Plan,
    entry: &KeyEntry,
) -> Result<Summary, MigrateError> {
    let mut side = Side::new();
    let n = plan.pk.len();
    let col = format!("t.{}", plan.column);
    let col = match plan.direction {
        Direction::Encrypt => col,
        Direction::Decrypt => format!("{col}::text"),
    };
    let rows = scan(client, plan, &col, |r, key| {
        let v = match plan.direction {
            Direction::Encrypt => {
                let s: Option<Vec<u8>> = r.get(n);
                match s {
                    Some(s) => {
                        let canonical = open(entry, plan, &key, &s)?;
                        let ctx = TextContext::default();
                        crate::codec::canonical_to_text(plan.rule.ty, &canonical, &ctx).map_err(
                            |_| MigrateError::Undecryptable {
                                column: plan.rule.qualified(),
                                key: key_text(plan, &key),
                            },
                        )?;
                        Some(canonical)
                    }
                    None => None,
                }
            }
            Direction::Decrypt => {
                let t: Option<String> = r.get(n);
                t.map(|t| parse(plan, &key, &t)).transpose()?
            }
        };
        side.add(&key, v.as_deref());
        Ok(())
    })
    .await?;
    let values = side.values;
    Ok(Summary {
        rows,
        values,
        queued: 0,
        checksum: side.finish(),
    })
}
