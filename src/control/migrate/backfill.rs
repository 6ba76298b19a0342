//! Filling the shadow column: [`Walker::batch`] converts one batch of rows in primary-key order
//! (read the plaintext as text, parse it with the codec exactly as the proxy parses an INSERT's
//! value, encrypt; or decrypt and render it for `decrypt`) and writes it, with the state row's
//! last key, in one short transaction. [`Walker::drain`] does the same for the rows the
//! capture trigger queued, deleting their queue entries in the same transaction.

use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, Row};

use super::plan::{Direction, Plan};
use super::progress::Progress;
use super::{MigrateError, codec_detail};
use crate::codec::{TextContext, canonical_to_text, text_to_canonical};
use crate::crypto::KeyEntry;

/// Settings of the migration's own session: the text forms the codec reads and writes.
/// `client_connection_check_interval`: a run killed mid-statement has its statement cancelled
/// by the server within a second, so a rerun does not wait long for its locks.
pub const SESSION_SQL: &str = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; \
     SET extra_float_digits = 1; SET bytea_output = 'hex'; SET IntervalStyle = 'postgres'; \
     SET application_name = 'pgcloak migrate'; SET client_connection_check_interval = '1s'";

/// Converted values of one batch, for the shadow column.
enum Values {
    Bytes(Vec<Option<Vec<u8>>>),
    Text(Vec<Option<String>>),
}

/// The statements and keys of one column's backfill.
pub struct Walker<'a> {
    plan: &'a Plan,
    key: &'a KeyEntry,
    ctx: TextContext,
    id: i32,
    batch: i64,
    name: String,
}

impl<'a> Walker<'a> {
    pub fn new(plan: &'a Plan, key: &'a KeyEntry, id: i32, batch: i64) -> Self {
        Walker {
            plan,
            key,
            ctx: TextContext::default(),
            id,
            batch,
            name: plan.rule.qualified(),
        }
    }

    fn db(&self) -> impl FnOnce(tokio_postgres::Error) -> MigrateError + '_ {
        MigrateError::db(&self.name)
    }

    /// `pk1::text, …, source` (the column as text to encrypt, or its bytes to decrypt).
    fn select_list(&self) -> String {
        let mut cols: Vec<String> = self
            .plan
            .pk
            .iter()
            .map(|(n, _)| format!("t.{n}::text"))
            .collect();
        cols.push(match self.plan.direction {
            Direction::Encrypt => format!("t.{}::text", self.plan.column),
            Direction::Decrypt => format!("t.{}", self.plan.column),
        });
        cols.join(", ")
    }

    fn key_list(&self) -> String {
        self.plan
            .pk
            .iter()
            .map(|(n, _)| format!("t.{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `t.pk1 = u.k1::type1 AND …`.
    fn key_join(&self) -> String {
        let parts: Vec<String> = self
            .plan
            .pk
            .iter()
            .enumerate()
            .map(|(i, (n, ty))| format!("t.{n} = u.k{i}::{ty}"))
            .collect();
        parts.join(" AND ")
    }

    fn unnest_keys(&self) -> (String, String) {
        let n = self.plan.pk.len();
        let params: Vec<String> = (1..=n).map(|i| format!("${i}::text[]")).collect();
        let names: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
        (params.join(", "), names.join(", "))
    }

    /// Rows after `after` (or from the start), in key order.
    async fn read_after(
        &self,
        c: &impl GenericClient,
        after: Option<&[String]>,
    ) -> Result<Vec<Row>, MigrateError> {
        let keys = self.key_list();
        let (list, table, batch) = (self.select_list(), &self.plan.table, self.batch);
        let Some(after) = after else {
            let sql = format!("SELECT {list} FROM {table} t ORDER BY {keys} LIMIT {batch}");
            return c.query(&sql, &[]).await.map_err(self.db());
        };
        let params: Vec<String> = self
            .plan
            .pk
            .iter()
            .enumerate()
            .map(|(i, (_, ty))| format!("${}::text::{ty}", i + 1))
            .collect();
        let sql = format!(
            "SELECT {list} FROM {table} t WHERE ({keys}) > ({}) ORDER BY {keys} LIMIT {batch}",
            params.join(", ")
        );
        let args: Vec<&(dyn ToSql + Sync)> =
            after.iter().map(|k| k as &(dyn ToSql + Sync)).collect();
        c.query(&sql, &args).await.map_err(self.db())
    }

    /// The current rows with these keys (rows deleted meanwhile are simply absent).
    async fn read_keys(
        &self,
        c: &impl GenericClient,
        keys: &[Vec<String>],
    ) -> Result<Vec<Row>, MigrateError> {
        let (params, names) = self.unnest_keys();
        let sql = format!(
            "SELECT {} FROM {} t JOIN unnest({params}) AS u({names}) ON {}",
            self.select_list(),
            self.plan.table,
            self.key_join()
        );
        let cols = columns(keys, self.plan.pk.len());
        let args: Vec<&(dyn ToSql + Sync)> =
            cols.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
        c.query(&sql, &args).await.map_err(self.db())
    }

    /// Each row's key (as text) and its converted value.
    fn convert(&self, rows: &[Row]) -> Result<(Vec<Vec<String>>, Values), MigrateError> {
        let n = self.plan.pk.len();
        let mut keys = Vec::with_capacity(rows.len());
        let mut bytes = Vec::new();
        let mut texts = Vec::new();
        for r in rows {
            let key: Vec<String> = (0..n).map(|i| r.get::<_, String>(i)).collect();
            match self.plan.direction {
                Direction::Encrypt => {
                    let v: Option<String> = r.get(n);
                    bytes.push(v.map(|t| self.encrypt(&key, &t)).transpose()?);
                }
                Direction::Decrypt => {
                    let v: Option<Vec<u8>> = r.get(n);
                    texts.push(v.map(|b| self.decrypt(&key, &b)).transpose()?);
                }
            }
            keys.push(key);
        }
        let values = match self.plan.direction {
            Direction::Encrypt => Values::Bytes(bytes),
            Direction::Decrypt => Values::Text(texts),
        };
        Ok((keys, values))
    }

    fn key_text(&self, key: &[String]) -> String {
        let parts: Vec<String> = self
            .plan
            .pk
            .iter()
            .zip(key)
            .map(|((n, _), v)| format!("{}={v}", n.trim_matches('"')))
            .collect();
        parts.join(", ")
    }

    /// The envelope of one plaintext value: parsed as the proxy parses an INSERT's text value.
    fn encrypt(&self, key: &[String], text: &str) -> Result<Vec<u8>, MigrateError> {
        let ty = self.plan.rule.ty;
        let canonical =
            text_to_canonical(ty, text.as_bytes(), &self.ctx).map_err(|e| MigrateError::Value {
                column: self.name.clone(),
                key: self.key_text(key),
                ty: ty.name(),
                detail: codec_detail(&e),
            })?;
        self.key
            .encrypt(self.plan.rule.mode, &canonical)
            .map_err(|e| MigrateError::Crypto(e, self.name.clone()))
    }

    /// The plaintext text of one envelope.
    fn decrypt(&self, key: &[String], stored: &[u8]) -> Result<String, MigrateError> {
        let bad = || MigrateError::Undecryptable {
            column: self.name.clone(),
            key: self.key_text(key),
        };
        let canonical = self.key.decrypt(stored).map_err(|_| bad())?;
        let text =
            canonical_to_text(self.plan.rule.ty, &canonical, &self.ctx).map_err(|_| bad())?;
        String::from_utf8(text).map_err(|_| bad())
    }

    /// Writes converted values to the shadow column of the rows with these keys; with
    /// `clear_first`, sets them to NULL first (a UNIQUE index on the shadow sees no stale
    /// duplicate in between).
    async fn write(
        &self,
        c: &impl GenericClient,
        keys: &[Vec<String>],
        values: &Values,
        clear_first: bool,
    ) -> Result<u64, tokio_postgres::Error> {
        let (params, names) = self.unnest_keys();
        let n = self.plan.pk.len();
        let cols = columns(keys, n);
        let mut args: Vec<&(dyn ToSql + Sync)> =
            cols.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
        let (table, shadow, join) = (&self.plan.table, &self.plan.shadow, self.key_join());
        if clear_first {
            let sql = format!(
                "UPDATE {table} t SET {shadow} = NULL FROM unnest({params}) AS u({names}) WHERE {join}"
            );
            c.execute(&sql, &args).await?;
        }
        let (vty, cast) = match values {
            Values::Bytes(_) => ("bytea[]", String::new()),
            Values::Text(_) => ("text[]", format!("::{}", self.plan.target_type)),
        };
        match values {
            Values::Bytes(v) => args.push(v),
            Values::Text(v) => args.push(v),
        }
        let sql = format!(
            "UPDATE {table} t SET {shadow} = u.v{cast} FROM unnest({params}, ${}::{vty}) \
             AS u({names}, v) WHERE {join}",
            n + 1
        );
        c.execute(&sql, &args).await
    }

    /// One backfill batch after `after`, in its own transaction with the state row. Returns
    /// the last key done (None: the walk is finished) and the rows done.
    pub async fn batch(
        &self,
        client: &mut Client,
        after: Option<&[String]>,
    ) -> Result<(Option<Vec<String>>, u64), MigrateError> {
        let tx = client.transaction().await.map_err(self.db())?;
        let rows = self.read_after(&tx, after).await?;
        let Some(last) = rows.last() else {
            return Ok((None, 0));
        };
        let last: Vec<String> = (0..self.plan.pk.len()).map(|i| last.get(i)).collect();
        let (keys, values) = self.convert(&rows)?;
        self.write(&tx, &keys, &values, false)
            .await
            .map_err(self.db())?;
        let n = rows.len() as i64;
        tx.execute(
            "UPDATE pgcloak.migrations SET last_key = $2, rows_done = rows_done + $3 \
             WHERE column_name = $1",
            &[&self.name, &last, &n],
        )
        .await
        .map_err(self.db())?;
        tx.commit().await.map_err(self.db())?;
        Ok((Some(last), n as u64))
    }

    /// The whole walk from the state's last key, paced to `max_rows_per_sec`.
    pub async fn walk(
        &self,
        client: &mut Client,
        mut after: Option<Vec<String>>,
        max_rows_per_sec: Option<u64>,
        progress: &mut Progress,
    ) -> Result<(), MigrateError> {
        let started = Instant::now();
        let mut done = 0u64;
        loop {
            let (last, n) = self.batch(client, after.as_deref()).await?;
            progress.inc(n);
            done += n;
            match last {
                Some(k) if n as i64 == self.batch => after = Some(k),
                _ => return Ok(()),
            }
            if let Some(rate) = max_rows_per_sec.filter(|r| *r > 0) {
                let due = Duration::from_secs_f64(done as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Processes up to one batch of queued keys over `c` (inside the caller's transaction).
    /// Returns how many queue entries it consumed.
    pub async fn drain_in(
        &self,
        c: &impl GenericClient,
        clear_first: bool,
    ) -> Result<u64, MigrateError> {
        let q = c
            .query(
                "SELECT seq, pk FROM pgcloak.migrate_queue WHERE migration = $1 ORDER BY seq LIMIT $2",
                &[&self.id, &self.batch],
            )
            .await
            .map_err(self.db())?;
        if q.is_empty() {
            return Ok(0);
        }
        let seqs: Vec<i64> = q.iter().map(|r| r.get(0)).collect();
        let mut keys: Vec<Vec<String>> = q.iter().map(|r| r.get(1)).collect();
        keys.sort();
        keys.dedup();
        let rows = self.read_keys(c, &keys).await?;
        let (found, values) = self.convert(&rows)?;
        self.write(c, &found, &values, clear_first)
            .await
            .map_err(self.db())?;
        c.execute(
            "DELETE FROM pgcloak.migrate_queue WHERE seq = ANY($1)",
            &[&seqs],
        )
        .await
        .map_err(self.db())?;
        let n = seqs.len() as i64;
        c.execute(
            "UPDATE pgcloak.migrations SET queue_done = queue_done + $2 WHERE column_name = $1",
            &[&self.name, &n],
        )
        .await
        .map_err(self.db())?;
        Ok(n as u64)
    }

    /// One batch of the queue in its own transaction; on a UNIQUE violation (a value moved
    /// from one row to another), once more clearing the batch's shadows first.
    pub async fn drain_batch(&self, client: &mut Client) -> Result<u64, MigrateError> {
        for clear_first in [false, true] {
            let tx = client.transaction().await.map_err(self.db())?;
            match self.drain_in(&tx, clear_first).await {
                Ok(n) => {
                    tx.commit().await.map_err(self.db())?;
                    return Ok(n);
                }
                Err(MigrateError::Db { source, .. })
                    if !clear_first && source.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(0)
    }

    /// Drains the queue until fewer than `until` entries were left in the last batch.
    pub async fn drain(&self, client: &mut Client, until: u64) -> Result<u64, MigrateError> {
        let mut total = 0;
        loop {
            let n = self.drain_batch(client).await?;
            total += n;
            if n < until.max(1) {
                return Ok(total);
            }
        }
    }
}

/// Keys by column: `keys[row][col]` → `out[col][row]`.
fn columns(keys: &[Vec<String>], n: usize) -> Vec<Vec<String>> {
    (0..n)
        .map(|i| keys.iter().map(|k| k[i].clone()).collect())
        .collect()
}
