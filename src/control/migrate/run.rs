//! One column's migration from wherever its state row says it is: plan, prepare (shadow
//! column, capture trigger and state row in one transaction), backfill, drain, indexes,
//! verification, switch, `NOT NULL`, verification of what is stored, and `--vacuum`; several
//! columns go through it together ([`migrate_together`]) and share one switch transaction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::backfill::{SESSION_SQL, Walker};
use super::plan::{Direction, Plan};
use super::progress::Progress;
use super::state::{self, MigrationRow};
use super::switch::{self, Switched};
use super::verify::{self, Summary};
use super::{MigrateError, quote};
use crate::config::ColumnRule;
use crate::crypto::KeyRing;

/// What the command line asked for.
#[derive(Clone, Debug)]
pub struct Options {
    pub batch_rows: i64,
    pub max_rows_per_sec: Option<u64>,
    pub dry_run: bool,
    pub vacuum: bool,
    pub verify_only: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch_rows: 2000,
            max_rows_per_sec: None,
            dry_run: false,
            vacuum: false,
            verify_only: false,
        }
    }
}

/// What one column's run did.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// `--dry-run`: the plan, nothing changed.
    Planned(String),
    /// It was finished before this run.
    AlreadyDone { phase_done_at: Option<String> },
    /// `--verify-only`.
    Verified(Summary),
    /// Finished now.
    Done(Report),
}

/// Numbers of a finished run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Rows converted by this run's backfill.
    pub rows: u64,
    /// Queue entries processed.
    pub queued: u64,
    pub elapsed: Duration,
    pub switch: Switched,
    /// The snapshot comparison before the switch.
    pub before: Option<Summary>,
    /// What is stored after it.
    pub after: Summary,
    pub vacuumed: bool,
}

/// Migrates `rule`'s column in `direction` over the control login `client`.
pub async fn migrate(
    client: &mut Client,
    ring: &KeyRing,
    rule: &Arc<ColumnRule>,
    direction: Direction,
    opts: &Options,
    progress: &mut Progress,
) -> Result<Outcome, MigrateError> {
    let rules = std::slice::from_ref(rule);
    let progress = std::slice::from_mut(progress);
    let mut out = migrate_together(client, ring, rules, direction, opts, progress).await?;
    Ok(out.pop().expect("one outcome per column"))
}

/// Migrates several columns (of one table, or sharing a key across tables) together: each is
/// backfilled, indexed and verified on its own (its own state row, shadow, capture trigger),
/// then all switch in one transaction, so the application never sees some of them switched
/// and not the others (equality and joins between columns that share a key keep working).
/// `progress` has one entry per rule. Returns one outcome per rule, in order.
pub async fn migrate_together(
    client: &mut Client,
    ring: &KeyRing,
    rules: &[Arc<ColumnRule>],
    direction: Direction,
    opts: &Options,
    progress: &mut [Progress],
) -> Result<Vec<Outcome>, MigrateError> {
    let mut outcomes = Vec::with_capacity(rules.len());
    let mut ready = Vec::new();
    for (i, (rule, progress)) in rules.iter().zip(progress.iter_mut()).enumerate() {
        match advance(client, ring, rule, direction, opts, progress).await? {
            Step::Finished(o) => outcomes.push(Some(o)),
            Step::Ready(r) => {
                outcomes.push(None);
                ready.push((i, r));
            }
        }
    }
    if !ready.is_empty() {
        let walkers: Vec<Walker<'_>> = ready
            .iter()
            .map(|(_, r)| Walker::new(&r.plan, r.key, r.row.id, opts.batch_rows.max(1)))
            .collect();
        let cols: Vec<switch::Switching<'_>> = ready
            .iter()
            .zip(&walkers)
            .map(|((_, r), walker)| switch::Switching {
                plan: &r.plan,
                walker,
                id: r.row.id,
            })
            .collect();
        let switched = switch::switch_all(client, &cols).await?;
        drop(cols);
        drop(walkers);
        for (i, mut r) in ready {
            r.report.switch = switched;
            r.report.elapsed = r.started.elapsed();
            let plan = Plan::switched(client, &r.plan.rule, r.plan.direction).await?;
            outcomes[i] = Some(finish(client, &plan, r.key, &r.row, opts, r.report).await?);
        }
    }
    Ok(outcomes.into_iter().flatten().collect())
}

/// A column brought up to its switch.
struct Ready<'k> {
    plan: Plan,
    key: &'k crate::crypto::KeyEntry,
    row: MigrationRow,
    report: Report,
    started: Instant,
}

/// Where [`advance`] left a column.
enum Step<'k> {
    /// Nothing left to do in this run (a dry run, a verification, a finished column, or one
    /// that had switched before and is now finished).
    Finished(Outcome),
    /// Backfilled, indexed and verified: ready for the switch.
    Ready(Box<Ready<'k>>),
}

/// One column from wherever its state row says it is, up to its switch.
async fn advance<'k>(
    client: &mut Client,
    ring: &'k KeyRing,
    rule: &Arc<ColumnRule>,
    direction: Direction,
    opts: &Options,
    progress: &mut Progress,
) -> Result<Step<'k>, MigrateError> {
    let name = rule.qualified();
    client
        .batch_execute(SESSION_SQL)
        .await
        .map_err(MigrateError::db(&name))?;
    exclusive(client, &name).await?;
    let has_state: bool = client
        .query_one("SELECT to_regclass('pgcloak.migrations') IS NOT NULL", &[])
        .await
        .map_err(MigrateError::db(&name))?
        .get(0);
    let row = match has_state {
        true => state::load(&*client, &name).await?,
        false => None,
    };
    let key = || {
        ring.key(&rule.key).map_err(|_| {
            let why = format!(
                "data key {} does not exist: run `pgcloak keys init`",
                rule.key
            );
            MigrateError::refused(&name, why)
        })
    };
    let same = row.as_ref().filter(|r| r.direction == direction.name());
    if let Some(r) = row
        .as_ref()
        .filter(|r| r.direction != direction.name() && r.phase != "done")
    {
        return Err(MigrateError::refused(
            &name,
            format!(
                "a migrate {} of this column is in progress ({}): finish it first",
                r.direction, r.phase
            ),
        ));
    }
    if let Some(r) = same.filter(|r| r.phase == "done") {
        if opts.verify_only {
            let plan = Plan::switched(client, rule, direction).await?;
            let s = verify::stored(client, &plan, key()?).await?;
            state::set_verified(&*client, &name, &s.to_string()).await?;
            return Ok(Step::Finished(Outcome::Verified(s)));
        }
        return Ok(Step::Finished(Outcome::AlreadyDone {
            phase_done_at: r.finished_at.clone(),
        }));
    }
    if let Some(r) = same.filter(|r| r.phase == "finish") {
        let plan = Plan::switched(client, rule, direction).await?;
        let done = finish(client, &plan, key()?, r, opts, Report::default()).await?;
        return Ok(Step::Finished(done));
    }
    let plain_type = row.as_ref().map(|r| r.plain_type.clone());
    let plan = Plan::inspect(client, rule, direction, plain_type.as_deref()).await?;
    if opts.dry_run {
        return Ok(Step::Finished(Outcome::Planned(plan.describe())));
    }
    let key = key()?;
    if opts.verify_only {
        let r = same.ok_or_else(|| {
            MigrateError::refused(
                &name,
                "no migration of this column has started: nothing to verify",
            )
        })?;
        let s = verify::before_switch(client, &plan, key, r.id).await?;
        return Ok(Step::Finished(Outcome::Verified(s)));
    }
    let row = match same {
        Some(r) => r.clone(),
        None => prepare(client, &plan).await?,
    };
    let started = Instant::now();
    let report = run_phases(client, &plan, key, &row, opts, progress).await?;
    Ok(Step::Ready(Box::new(Ready {
        plan,
        key,
        row,
        report,
        started,
    })))
}

/// One run per column at a time: a session-level advisory lock on the column's name. A run
/// that was killed still holds it until its server process notices (its statement ends, or
/// `client_connection_check_interval`), so this waits for it a while.
async fn exclusive(client: &Client, name: &str) -> Result<(), MigrateError> {
    let r = client
        .batch_execute("SET lock_timeout = '60s'")
        .await
        .and(Ok(()));
    r.map_err(MigrateError::db(name))?;
    let locked = client
        .execute(
            "SELECT pg_advisory_lock(hashtextextended('pgcloak migrate ' || $1, 0))",
            &[&name],
        )
        .await;
    client
        .batch_execute("SET lock_timeout = 0")
        .await
        .map_err(MigrateError::db(name))?;
    match locked {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => Err(MigrateError::refused(
            name,
            "another pgcloak migrate of this column is running (or its server process has not \
             ended yet): wait for it, or end it, and run the command again",
        )),
        Err(e) => Err(MigrateError::db(name)(e)),
    }
}

/// Creates the state, the shadow column and the capture trigger in one transaction.
async fn prepare(client: &mut Client, plan: &Plan) -> Result<MigrationRow, MigrateError> {
    let name = plan.rule.qualified();
    state::setup(client, &name).await?;
    let plain = match plan.direction {
        Direction::Encrypt => plan.source_type.clone(),
        Direction::Decrypt => plan.target_type.clone(),
    };
    let row = state::start(
        &*client,
        &name,
        plan.direction.name(),
        &plain,
        plan.estimated_rows,
    )
    .await?;
    let ddl = vec![
        plan.add_shadow_sql(),
        format!(
            "DROP TRIGGER IF EXISTS {} ON {}",
            plan.capture_trigger(),
            plan.table
        ),
        plan.capture_sql(row.id),
        format!(
            "UPDATE pgcloak.migrations SET phase = 'backfill' WHERE column_name = {}",
            super::literal(&name)
        ),
    ];
    switch::with_lock_retry(client, &name, &ddl).await?;
    Ok(row)
}

/// Backfill, drain, indexes and the verification before the switch.
async fn run_phases(
    client: &mut Client,
    plan: &Plan,
    key: &crate::crypto::KeyEntry,
    row: &MigrationRow,
    opts: &Options,
    progress: &mut Progress,
) -> Result<Report, MigrateError> {
    let name = plan.rule.qualified();
    let walker = Walker::new(plan, key, row.id, opts.batch_rows.max(1));
    let mut report = Report::default();
    if row.phase == "backfill" {
        progress.set_total(row.rows_total.max(0) as u64);
        progress.resume_at(row.rows_done.max(0) as u64);
        let before = progress.done();
        walker
            .walk(
                client,
                row.last_key.clone(),
                opts.max_rows_per_sec,
                progress,
            )
            .await?;
        report.rows = progress.done() - before;
        report.queued += walker.drain(client, opts.batch_rows as u64).await?;
        state::set_phase(&*client, &name, "indexes").await?;
    }
    if row.phase == "backfill" || row.phase == "indexes" {
        build_indexes(client, plan, &walker).await?;
        report.queued += walker.drain(client, opts.batch_rows as u64).await?;
        state::set_phase(&*client, &name, "switch").await?;
    }
    progress.finish();
    let before = verify::before_switch(client, plan, key, row.id).await?;
    state::set_verified(&*client, &name, &format!("before switch: {before}")).await?;
    report.before = Some(before);
    Ok(report)
}

/// Each index of the column, built on the shadow without blocking writes. A build that fails
/// (a value moved between rows in the meantime) leaves an invalid index: it is dropped, the
/// queue drained, and the build tried again.
async fn build_indexes(
    client: &mut Client,
    plan: &Plan,
    walker: &Walker<'_>,
) -> Result<(), MigrateError> {
    let name = plan.rule.qualified();
    let schema = quote(&plan.rule.schema);
    for ix in &plan.indexes {
        let shadow = format!("{schema}.{}", quote(&ix.shadow_name()));
        for attempt in 0..5 {
            let invalid: bool = client
                .query_one(
                    "SELECT coalesce((SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)), false)",
                    &[&shadow],
                )
                .await
                .map_err(MigrateError::db(&name))?
                .get(0);
            if invalid {
                client
                    .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {shadow}"))
                    .await
                    .map_err(MigrateError::db(&name))?;
            }
            match client.batch_execute(&plan.index_sql(ix)).await {
                Ok(()) => break,
                Err(e) if attempt < 4 && e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    walker.drain(client, 1).await?;
                }
                Err(e) => return Err(MigrateError::db(&name)(e)),
            }
        }
    }
    Ok(())
}

/// After the switch: `NOT NULL`, what is stored verified, `--vacuum`, done.
async fn finish(
    client: &mut Client,
    plan: &Plan,
    key: &crate::crypto::KeyEntry,
    row: &MigrationRow,
    opts: &Options,
    mut report: Report,
) -> Result<Outcome, MigrateError> {
    let name = plan.rule.qualified();
    switch::restore_not_null(client, plan).await?;
    let after = verify::stored(client, plan, key).await?;
    state::set_verified(&*client, &name, &format!("stored: {after}")).await?;
    report.after = after;
    if opts.vacuum {
        client
            .batch_execute(&format!("VACUUM (FULL, ANALYZE) {}", plan.table))
            .await
            .map_err(MigrateError::db(&name))?;
        report.vacuumed = true;
    }
    let _ = row;
    state::set_phase(&*client, &name, "done").await?;
    Ok(Outcome::Done(report))
}
