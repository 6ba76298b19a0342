//! The switch: one short transaction under `lock_timeout` (retried with a growing pause, so an
//! application statement never queues behind it for long): lock the table, drain what is left
//! in the queue, drop the plaintext column, rename the shadow, attach the rebuilt indexes as the
//! old constraints, add the guard trigger and drop the capture trigger, and `NOTIFY pgcloak`
//! (delivered at commit, so proxies reload their catalog at once). Afterwards,
//! `NOT NULL` is re-established from a validated check ([`restore_not_null`]).

use std::time::{Duration, Instant};

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::MigrateError;
use super::backfill::Walker;
use super::plan::Plan;
use crate::control::listen::{CATALOG, CHANNEL};

/// Longest an application statement can queue behind one attempt to take the lock.
pub const LOCK_TIMEOUT: &str = "200ms";
/// Attempts before giving up (the command can simply be run again).
pub const MAX_TRIES: u32 = 200;

/// What the switch took.
#[derive(Clone, Copy, Debug, Default)]
pub struct Switched {
    /// Attempts until the lock was taken.
    pub tries: u32,
    /// How long the lock was held.
    pub held: Duration,
}

fn is_lock_timeout(e: &MigrateError) -> bool {
    matches!(e, MigrateError::Db { source, .. } if source.code() == Some(&SqlState::LOCK_NOT_AVAILABLE))
}

async fn pause(tries: u32) {
    let ms = (20 * u64::from(tries)).min(1000) + u64::from(rand::random::<u8>() % 50);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Runs `statements` in one transaction under [`LOCK_TIMEOUT`], retrying when the lock is not
/// available; returns the attempts taken.
pub async fn with_lock_retry(
    client: &mut Client,
    column: &str,
    statements: &[String],
) -> Result<u32, MigrateError> {
    for tries in 1..=MAX_TRIES {
        let r = async {
            let tx = client
                .transaction()
                .await
                .map_err(MigrateError::db(column))?;
            tx.batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                .await
                .map_err(MigrateError::db(column))?;
            for s in statements {
                tx.batch_execute(s)
                    .await
                    .map_err(MigrateError::db(column))?;
            }
            tx.commit().await.map_err(MigrateError::db(column))
        }
        .await;
        match r {
            Ok(()) => return Ok(tries),
            Err(e) if is_lock_timeout(&e) => pause(tries).await,
            Err(e) => return Err(e),
        }
    }
    Err(MigrateError::LockTimeout {
        column: column.to_owned(),
        tries: MAX_TRIES,
    })
}

/// The switch of `plan` (migration `id`), draining the queue with `walker`.
pub async fn switch(
    client: &mut Client,
    plan: &Plan,
    walker: &Walker<'_>,
    id: i32,
) -> Result<Switched, MigrateError> {
    let name = plan.rule.qualified();
    let clear_first = plan.indexes.iter().any(|i| i.unique);
    for tries in 1..=MAX_TRIES {
        // Keep what is left for the locked part small.
        walker.drain(client, 100).await?;
        let mut held = Duration::ZERO;
        let r = async {
            let tx = client
                .transaction()
                .await
                .map_err(MigrateError::db(&name))?;
            let lock = format!(
                "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
                plan.table
            );
            tx.batch_execute(&lock)
                .await
                .map_err(MigrateError::db(&name))?;
            let locked = Instant::now();
            while walker.drain_in(&tx, clear_first).await? > 0 {}
            for s in plan.switch_sql() {
                tx.batch_execute(&s)
                    .await
                    .map_err(MigrateError::db(&name))?;
            }
            tx.execute(
                "DELETE FROM pgcloak.migrate_queue WHERE migration = $1",
                &[&id],
            )
            .await
            .map_err(MigrateError::db(&name))?;
            tx.execute(
                "UPDATE pgcloak.migrations SET phase = 'finish' WHERE column_name = $1",
                &[&name],
            )
            .await
            .map_err(MigrateError::db(&name))?;
            // Delivered at commit: every proxy reloads its catalog at once, not at its poll.
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &CATALOG])
                .await
                .map_err(MigrateError::db(&name))?;
            tx.commit().await.map_err(MigrateError::db(&name))?;
            held = locked.elapsed();
            Ok::<_, MigrateError>(())
        }
        .await;
        match r {
            Ok(()) => return Ok(Switched { tries, held }),
            Err(e) if is_lock_timeout(&e) => pause(tries).await,
            Err(e) => return Err(e),
        }
    }
    Err(MigrateError::LockTimeout {
        column: name,
        tries: MAX_TRIES,
    })
}

/// `NOT NULL` again after the switch: the `NOT VALID` check added by the switch is validated
/// (no lock that blocks writes), then `SET NOT NULL` uses it instead of scanning, and it goes.
pub async fn restore_not_null(client: &mut Client, plan: &Plan) -> Result<(), MigrateError> {
    let name = plan.rule.qualified();
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = $1::text::regclass \
             AND conname = $2)",
            &[&plan.table, &plan.not_null_check().trim_matches('"')],
        )
        .await
        .map_err(MigrateError::db(&name))?
        .get(0);
    if !exists {
        return Ok(());
    }
    let check = plan.not_null_check();
    let validate = format!("ALTER TABLE {} VALIDATE CONSTRAINT {check}", plan.table);
    client
        .batch_execute(&validate)
        .await
        .map_err(MigrateError::db(&name))?;
    let set = vec![
        format!(
            "ALTER TABLE {} ALTER COLUMN {} SET NOT NULL",
            plan.table, plan.column
        ),
        format!("ALTER TABLE {} DROP CONSTRAINT {check}", plan.table),
    ];
    with_lock_retry(client, &name, &set).await?;
    Ok(())
}
