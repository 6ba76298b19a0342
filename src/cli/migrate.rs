//! `pgcloak migrate encrypt|decrypt|status`: per database whose rules have the column, runs
//! the library's migration (src/control/migrate) and prints what it did, what it verified, and
//! what it cannot clean up (old plaintext in dead tuples, WAL, replicas and backups).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use pgcloak::control::migrate::progress::Progress;
use pgcloak::control::migrate::run::Report;
use pgcloak::control::migrate::{self, Direction, Options, Outcome};
use pgcloak::control::{check, keys};

use super::{control_client, load, runtime, tag, with_column};

#[derive(Subcommand)]
pub enum MigrateCommand {
    /// Bring existing plaintext columns under their rules online: afterwards they hold `bytea`
    /// envelopes. Resumable: run it again after an interruption.
    Encrypt(MigrateArgs),
    /// The reverse: encrypted columns back to their plaintext type, online.
    Decrypt(MigrateArgs),
    /// Every migration of each rules database, with its progress.
    Status {
        /// Config file (default: $PGCLOAK_CONFIG, else ./pgcloak.toml).
        #[arg(short, long, env = "PGCLOAK_CONFIG", default_value = "pgcloak.toml")]
        config: PathBuf,
    },
}

#[derive(Args)]
pub struct MigrateArgs {
    /// Config file (default: $PGCLOAK_CONFIG, else ./pgcloak.toml).
    #[arg(short, long, env = "PGCLOAK_CONFIG", default_value = "pgcloak.toml")]
    config: PathBuf,
    /// A rules column (`schema.table.column`); repeat for several.
    #[arg(long, required = true)]
    column: Vec<String>,
    /// Rows per batch (each batch is one short transaction).
    #[arg(long, default_value_t = 2000)]
    batch_rows: i64,
    /// Pace the backfill to at most this many rows per second.
    #[arg(long)]
    max_rows_per_sec: Option<u64>,
    /// Print the plan (columns, constraints, estimated rows, DDL) and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// At the end, rewrite the table with VACUUM FULL (locks it while it runs) so the old
    /// plaintext leaves its data files.
    #[arg(long)]
    vacuum: bool,
    /// Only verify (a finished column: every stored value decrypts; one in progress: the new
    /// column matches the old).
    #[arg(long)]
    verify_only: bool,
}

/// Runs a `migrate` subcommand.
pub fn run(cmd: MigrateCommand) -> anyhow::Result<()> {
    match cmd {
        MigrateCommand::Encrypt(a) => columns(&a, Direction::Encrypt),
        MigrateCommand::Decrypt(a) => columns(&a, Direction::Decrypt),
        MigrateCommand::Status { config } => status(&config),
    }
}

fn columns(args: &MigrateArgs, direction: Direction) -> anyhow::Result<()> {
    let (cfg, databases, master) = load(&args.config)?;
    let opts = Options {
        batch_rows: args.batch_rows.max(1),
        max_rows_per_sec: args.max_rows_per_sec,
        dry_run: args.dry_run,
        vacuum: args.vacuum,
        verify_only: args.verify_only,
    };
    for column in &args.column {
        with_column(&databases, Some(column))?;
    }
    let command = match direction {
        Direction::Encrypt => "migrate encrypt",
        Direction::Decrypt => "migrate decrypt",
    };
    let detail = vec![
        ("columns", serde_json::Value::from(args.column.clone())),
        ("dry_run", opts.dry_run.into()),
        ("verify_only", opts.verify_only.into()),
    ];
    super::audit::audited(&cfg, &*master, command, detail, |counts| {
        runtime()?.block_on(all_databases(
            &cfg, &databases, &*master, args, direction, &opts, counts,
        ))
    })
}

/// [`columns`] for every database, then the leftover-plaintext advice.
async fn all_databases(
    cfg: &pgcloak::config::Config,
    databases: &[pgcloak::config::DatabaseRules],
    master: &dyn pgcloak::control::providers::KeyProvider,
    args: &MigrateArgs,
    direction: Direction,
    opts: &Options,
    counts: &mut super::audit::Counts,
) -> anyhow::Result<()> {
    {
        let mut advise = false;
        // Per database, every column asked for that its rules have: they switch together.
        for db in databases {
            advise |= database_columns(cfg, db, master, args, direction, opts, counts).await?;
        }
        if advise {
            println!(
                "note: the old values are still in the table's dead row versions until it is \
                 rewritten (VACUUM FULL, which locks the table while it runs, or pg_repack; \
                 `--vacuum` runs VACUUM FULL), and in the WAL, in replicas' and archived WAL, and \
                 in every backup taken before now: pgcloak cannot remove those; expire them \
                 under your retention policy"
            );
        }
        Ok(())
    }
}

/// The columns of `args` that `db`'s rules have, migrated together; true when the
/// leftover-plaintext advice applies.
async fn database_columns(
    cfg: &pgcloak::config::Config,
    db: &pgcloak::config::DatabaseRules,
    master: &dyn pgcloak::control::providers::KeyProvider,
    args: &MigrateArgs,
    direction: Direction,
    opts: &Options,
    counts: &mut super::audit::Counts,
) -> anyhow::Result<bool> {
    let mut rules = Vec::new();
    for c in &args.column {
        if let Ok(rule) = keys::column_rule(&db.rules, c)
            && !rules.contains(rule)
        {
            rules.push(rule.clone());
        }
    }
    if rules.is_empty() {
        return Ok(false);
    }
    let mut client = control_client(cfg, &db.database).await?;
    if !opts.dry_run && !opts.verify_only {
        // The columns' data keys (pending columns get theirs from `keys init` too).
        let report = check::check_tables(&client, &db.rules).await;
        keys::init_except(&mut client, &db.rules, master, &report.wrong_keys).await?;
    }
    let ring = match keys::load_keyring(&client, master).await {
        Ok(ring) => ring,
        // A dry run creates nothing, not even the data keys.
        Err(keys::KeysError::NotInitialized) if opts.dry_run => Default::default(),
        Err(e) => return Err(e.into()),
    };
    let mut progress: Vec<Progress> = rules
        .iter()
        .map(|r| Progress::new(format!("{}{}", tag(db), r.qualified()), 0))
        .collect();
    let outcomes =
        migrate::migrate_together(&mut client, &ring, &rules, direction, opts, &mut progress)
            .await
            .map_err(|e| anyhow::anyhow!("{}{e}", tag(db)))?;
    let mut advise = false;
    for (rule, outcome) in rules.iter().zip(outcomes) {
        if let Outcome::Done(r) = &outcome {
            counts.add("columns_done", 1);
            counts.add("rows_backfilled", r.rows);
            counts.add("queued_writes_applied", r.queued);
        }
        advise |= print_outcome(
            &format!("{}{}", tag(db), rule.qualified()),
            direction,
            outcome,
        );
    }
    Ok(advise)
}

/// Prints one column's outcome; true when the leftover-plaintext advice applies.
fn print_outcome(t: &str, direction: Direction, outcome: Outcome) -> bool {
    let done = match direction {
        Direction::Encrypt => "encrypted",
        Direction::Decrypt => "decrypted",
    };
    match outcome {
        Outcome::Planned(text) => {
            println!("{t}: plan (nothing changed):\n{text}");
            false
        }
        Outcome::AlreadyDone { phase_done_at } => {
            let at = phase_done_at
                .map(|a| format!(" (finished {a})"))
                .unwrap_or_default();
            println!("{t}: already {done}{at}; nothing to do");
            false
        }
        Outcome::Verified(s) => {
            println!("{t}: verified: {s}");
            false
        }
        Outcome::Done(r) => {
            print_report(t, done, &r);
            direction == Direction::Encrypt && !r.vacuumed
        }
    }
}

fn print_report(t: &str, done: &str, r: &Report) {
    println!(
        "{t}: {done}: {} row(s) backfilled, {} queued write(s) applied, in {:.1}s; the switch \
         held the table lock {} ms (taken after {} attempt(s))",
        r.rows,
        r.queued,
        r.elapsed.as_secs_f64(),
        r.switch.held.as_millis(),
        r.switch.tries
    );
    if let Some(b) = &r.before {
        println!("{t}: verified before the switch: old and new column agree: {b}");
    }
    println!(
        "{t}: verified after the switch: every stored value is valid: {}",
        r.after
    );
    if r.vacuumed {
        println!("{t}: VACUUM FULL rewrote the table: old values are gone from its data files");
    }
}

fn status(path: &Path) -> anyhow::Result<()> {
    let (cfg, databases, _master) = load(path)?;
    runtime()?.block_on(async {
        for db in &databases {
            let client = control_client(&cfg, &db.database).await?;
            let rows = migrate::status(&client).await?;
            if rows.is_empty() {
                println!("{}no migrations", tag(db));
            }
            for r in rows {
                let queued = migrate::state::queued(&client, &r.column, r.id).await?;
                let end = r
                    .finished_at
                    .map(|f| format!(", finished {f}"))
                    .unwrap_or_default();
                println!(
                    "{}{}: {} {}: {}/{} row(s), {} queued write(s) applied, {queued} waiting; \
                     started {}{end}{}",
                    tag(db),
                    r.column,
                    r.direction,
                    r.phase,
                    r.rows_done,
                    r.rows_total.max(r.rows_done),
                    r.queue_done,
                    r.started_at,
                    r.verified
                        .map(|v| format!("; verified {v}"))
                        .unwrap_or_default()
                );
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(())
}
