//! `pgcloak keys reencrypt`: re-writes stored values of rules columns under the current
//! version of their data key, so a deterministic column compares equal across rotations again
//! (spec §6: the envelope header holds the key version) and an old version can be retired.
//!
//! Each column is walked in `ctid` order, one window of heap blocks at a time and at most
//! [`BATCH`] rows per query, so no query sorts or locks more than a window. Each value is
//! decrypted and encrypted again, then written back with a compare-and-swap
//! (`WHERE ctid = … AND col = old`): a row changed concurrently is skipped (its writer used a
//! current key, or the second pass catches it). One statement updates a whole batch; when it
//! hits a UNIQUE violation (the same plaintext stored under two versions), the batch is retried
//! row by row under savepoints and the offending rows are counted and left as they are. After
//! the walk one more pass picks up values written meanwhile by proxies that had not yet
//! reloaded the keys. Values that do not decrypt are counted, never logged. Progress (rows
//! read / estimated rows, rate, ETA) is shown as `migrate` shows it (migrate/progress.rs).

use std::sync::Arc;

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Statement};

use super::keys::{KeysError, column_rule};
use super::migrate::progress::Progress;
use crate::config::{ColumnRule, Mode, Rules};
use crate::crypto::{KeyEntry, KeyRing};

/// Rows fetched and re-written per statement.
pub const BATCH: i64 = 500;

/// Heap blocks per window (1 MiB with 8 KiB blocks): bounds what one batch query sorts (a TID
/// range scan is not ordered, so `ORDER BY ctid LIMIT n` sorts the rest of its window).
#[doc(hidden)] // public for the test that makes its table span several windows
pub const WINDOW_BLOCKS: i64 = 128;

/// Past every real block: the upper bound of the last window.
const END_TID: &str = "(4294967295,0)";

/// What re-encryption did to one column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnReport {
    /// `schema.table.column`.
    pub column: String,
    /// The key version the values were re-encrypted to (the current one).
    pub version: u32,
    /// Values re-written under `version`.
    pub rewritten: u64,
    /// Values that failed to decrypt with any version held, left as they are (last pass).
    pub unreadable: u64,
    /// Values left under an older version because re-writing them violated a UNIQUE
    /// constraint (`23505`: the same value is also stored under the current version).
    pub conflicts: u64,
}

/// Re-encrypts every rules column (or only `column`, `schema.table.column` resolved as in
/// `keys rotate --column`) under the current version of its data key; with
/// `only_deterministic`, randomized columns are skipped. Reports one entry per column,
/// ordered by column name.
pub async fn reencrypt(
    client: &mut Client,
    rules: &Rules,
    ring: &KeyRing,
    column: Option<&str>,
    only_deterministic: bool,
) -> Result<Vec<ColumnReport>, KeysError> {
    let mut columns: Vec<Arc<ColumnRule>> = match column {
        Some(c) => vec![Arc::clone(column_rule(rules, c)?)],
        None => rules.columns().cloned().collect(),
    };
    columns.retain(|c| !only_deterministic || c.mode == Mode::Deterministic);
    columns.sort_by_key(|c| c.qualified());
    reencrypt_columns(client, ring, &columns).await
}

/// Re-encrypts exactly `columns`, in order (e.g. every column of the keys just rotated).
pub async fn reencrypt_columns(
    client: &mut Client,
    ring: &KeyRing,
    columns: &[Arc<ColumnRule>],
) -> Result<Vec<ColumnReport>, KeysError> {
    let mut reports = Vec::with_capacity(columns.len());
    for rule in columns {
        let key = ring
            .key(&rule.key)
            .map_err(|_| KeysError::MissingKey(rule.key.clone()))?;
        let report = reencrypt_column(client, key, rule)
            .await
            .map_err(|e| match e {
                KeysError::Db(source) => KeysError::ColumnDb {
                    column: rule.qualified(),
                    source,
                },
                other => other,
            })?;
        reports.push(report);
    }
    Ok(reports)
}

/// The statements for one column, identifiers always quoted.
struct ColumnSql {
    blocks: Statement,
    select: Statement,
    update_batch: Statement,
    update_one: Statement,
    table: String,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl ColumnSql {
    async fn prepare(client: &Client, rule: &ColumnRule) -> Result<Self, KeysError> {
        let table = format!("{}.{}", quote(&rule.schema), quote(&rule.table));
        let col = quote(&rule.column);
        let blocks = "SELECT pg_relation_size($1::text::regclass) \
                      / current_setting('block_size')::bigint";
        // `ORDER BY t.ctid`, qualified: a bare `ctid` would name the text output column.
        let select = format!(
            "SELECT t.ctid::text AS row_tid, t.{col} FROM {table} AS t \
             WHERE t.ctid > $1::text::tid AND t.ctid < $2::text::tid AND t.{col} IS NOT NULL \
             AND substring(t.{col} from 3 for 4) <> $3::bytea ORDER BY t.ctid LIMIT {BATCH}"
        );
        let update_batch = format!(
            "UPDATE {table} AS t SET {col} = u.new_value \
             FROM unnest($1::text[], $2::bytea[], $3::bytea[]) AS u(row_tid, old_value, new_value) \
             WHERE t.ctid = u.row_tid::tid AND t.{col} = u.old_value"
        );
        let update_one =
            format!("UPDATE {table} SET {col} = $1 WHERE ctid = $2::text::tid AND {col} = $3");
        Ok(ColumnSql {
            blocks: client.prepare(blocks).await?,
            select: client.prepare(&select).await?,
            update_batch: client.prepare(&update_batch).await?,
            update_one: client.prepare(&update_one).await?,
            table,
        })
    }
}

/// Counts of one pass over a column.
#[derive(Default)]
struct Pass {
    rewritten: u64,
    unreadable: u64,
    conflicts: u64,
}

/// One value to write back: where, what it was, what it becomes.
struct Rewrite {
    ctid: String,
    old: Vec<u8>,
    new: Vec<u8>,
}

async fn reencrypt_column(
    client: &mut Client,
    key: &KeyEntry,
    rule: &ColumnRule,
) -> Result<ColumnReport, KeysError> {
    let sql = ColumnSql::prepare(client, rule).await?;
    let partitioned: bool = client
        .query_one(
            "SELECT relkind = 'p' FROM pg_class WHERE oid = $1::text::regclass",
            &[&sql.table],
        )
        .await?
        .try_get(0)?;
    if partitioned {
        return Err(KeysError::Partitioned(rule.qualified()));
    }
    let estimate: i64 = client
        .query_one(
            "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = $1::text::regclass",
            &[&sql.table],
        )
        .await?
        .try_get(0)?;
    let mut progress = Progress::new(rule.qualified(), 2 * estimate.max(0) as u64);
    let first = walk(client, &sql, key, rule.mode, &mut progress).await?;
    // Stragglers: values written during the walk by proxies still on the old ring. What is
    // unreadable or conflicting is seen again here, so this pass's counts are what is left.
    let last = walk(client, &sql, key, rule.mode, &mut progress).await?;
    progress.finish();
    Ok(ColumnReport {
        column: rule.qualified(),
        version: key.current_version(),
        rewritten: first.rewritten + last.rewritten,
        unreadable: last.unreadable,
        conflicts: last.conflicts,
    })
}

/// One pass over the whole table, window by window.
async fn walk(
    client: &mut Client,
    sql: &ColumnSql,
    key: &KeyEntry,
    mode: Mode,
    progress: &mut Progress,
) -> Result<Pass, KeysError> {
    let current = key.current_version().to_be_bytes().to_vec();
    let blocks: i64 = client
        .query_one(&sql.blocks, &[&sql.table])
        .await?
        .try_get(0)?;
    let mut pass = Pass::default();
    let mut start = 0i64;
    loop {
        let last_window = start + WINDOW_BLOCKS >= blocks;
        let hi = if last_window {
            END_TID.to_owned()
        } else {
            format!("({},0)", start + WINDOW_BLOCKS)
        };
        // Offsets start at 1, so `ctid > (start,0)` includes all of block `start`.
        let mut after = format!("({start},0)");
        loop {
            let rows = client.query(&sql.select, &[&after, &hi, &current]).await?;
            let Some(last) = rows.last() else { break };
            after = last.try_get(0)?;
            progress.inc(rows.len() as u64);
            let mut items = Vec::with_capacity(rows.len());
            for row in &rows {
                let old: Vec<u8> = row.try_get(1)?;
                // A value that does not decrypt is left alone; its bytes are never shown.
                let Ok(plain) = key.decrypt(&old) else {
                    pass.unreadable += 1;
                    continue;
                };
                let new = key.encrypt(mode, &plain)?;
                items.push(Rewrite {
                    ctid: row.try_get(0)?,
                    old,
                    new,
                });
            }
            apply(client, sql, &items, &mut pass).await?;
            if (rows.len() as i64) < BATCH {
                break;
            }
        }
        if last_window {
            return Ok(pass);
        }
        start += WINDOW_BLOCKS;
    }
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Writes one batch in one statement; on a UNIQUE violation, row by row instead.
async fn apply(
    client: &mut Client,
    sql: &ColumnSql,
    items: &[Rewrite],
    pass: &mut Pass,
) -> Result<(), KeysError> {
    if items.is_empty() {
        return Ok(());
    }
    let tids: Vec<&str> = items.iter().map(|i| i.ctid.as_str()).collect();
    let olds: Vec<&[u8]> = items.iter().map(|i| i.old.as_slice()).collect();
    let news: Vec<&[u8]> = items.iter().map(|i| i.new.as_slice()).collect();
    match client
        .execute(&sql.update_batch, &[&tids, &olds, &news])
        .await
    {
        Ok(n) => {
            pass.rewritten += n;
            Ok(())
        }
        Err(e) if is_unique_violation(&e) => apply_each(client, sql, items, pass).await,
        Err(e) => Err(e.into()),
    }
}

/// One transaction, one savepoint per row: a row that violates a UNIQUE constraint is rolled
/// back and counted; the others are written.
async fn apply_each(
    client: &mut Client,
    sql: &ColumnSql,
    items: &[Rewrite],
    pass: &mut Pass,
) -> Result<(), KeysError> {
    let mut tx = client.transaction().await?;
    for item in items {
        let sp = tx.savepoint("pgcloak_reencrypt").await?;
        match sp
            .execute(&sql.update_one, &[&item.new, &item.ctid, &item.old])
            .await
        {
            Ok(n) => {
                sp.commit().await?;
                pass.rewritten += n;
            }
            Err(e) if is_unique_violation(&e) => {
                sp.rollback().await?;
                pass.conflicts += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    tx.commit().await?;
    Ok(())
}
