//! The subcommands other than `serve`: key management (incl. re-encryption), `check`, `gen-master-key` and `demo`.
//! Each loads what it needs, calls the library and prints a short report; anyhow is allowed
//! here (the binary), never in the library.

pub mod demo;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use pgcloak::config::{ColumnRule, Config, Mode, Rules, load_rules};
use pgcloak::control::reencrypt::{self, ColumnReport};
use pgcloak::control::{self, check, keys};
use pgcloak::crypto::{MasterKey, master_key_source};
use pgcloak::session::crypto::POLL_INTERVAL;

/// A current-thread runtime for one-shot commands.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn load(path: &Path) -> anyhow::Result<(Config, Rules, MasterKey)> {
    let cfg = Config::load(path)?;
    let rules = load_rules(&cfg.rules)?;
    let master = master_key_source(&cfg.keys)?.load()?;
    Ok((cfg, rules, master))
}

async fn control_client(cfg: &Config) -> anyhow::Result<tokio_postgres::Client> {
    let password = cfg.control_password()?;
    Ok(control::connect(cfg, &password).await?)
}

/// `pgcloak keys init`.
pub fn keys_init(path: &Path) -> anyhow::Result<()> {
    let (cfg, rules, master) = load(path)?;
    runtime()?.block_on(async {
        let mut client = control_client(&cfg).await?;
        let created = keys::init(&mut client, &rules, &master).await?;
        if created.is_empty() {
            println!("every rules column already has a data key; nothing to do");
        }
        for name in created {
            println!("created data key {name} v1");
        }
        Ok(())
    })
}

/// `pgcloak keys rotate [--column schema.table.column] [--no-reencrypt]`: after the rotation,
/// unless `--no-reencrypt`, waits for running proxies to load the new versions and
/// re-encrypts the deterministic columns of the rotated keys (every column sharing a key, so
/// joins between them keep working).
pub fn keys_rotate(path: &Path, column: Option<&str>, reencrypt: bool) -> anyhow::Result<()> {
    let (cfg, rules, master) = load(path)?;
    runtime()?.block_on(async {
        let mut client = control_client(&cfg).await?;
        let rotated = keys::rotate(&mut client, &rules, &master, column).await?;
        for (name, version) in &rotated {
            println!("data key {name}: new writes use v{version}");
        }
        let mut columns: Vec<Arc<ColumnRule>> = rules
            .keys()
            .filter(|(k, _)| rotated.iter().any(|(name, _)| name == k))
            .flat_map(|(_, cols)| cols.iter().cloned())
            .filter(|c| c.mode == Mode::Deterministic)
            .collect();
        columns.sort_by_key(|c| c.qualified());
        if columns.is_empty() {
            return Ok(());
        }
        if !reencrypt {
            for c in &columns {
                println!(
                    "warning: {c} is deterministic: until rows written under older versions \
                     are re-written, `=`/IN/UNIQUE compare only values of the same version; \
                     run `pgcloak keys reencrypt` later"
                );
            }
            return Ok(());
        }
        let wait = POLL_INTERVAL + Duration::from_secs(1);
        println!(
            "waiting {}s for running proxies to load the new key version(s), then \
             re-encrypting {} deterministic column(s)",
            wait.as_secs(),
            columns.len()
        );
        tokio::time::sleep(wait).await;
        let ring = keys::load_keyring(&client, &master).await?;
        let reports = reencrypt::reencrypt_columns(&mut client, &ring, &columns).await?;
        print_reports(&reports)
    })
}

/// `pgcloak keys reencrypt [--column schema.table.column]`.
pub fn keys_reencrypt(path: &Path, column: Option<&str>) -> anyhow::Result<()> {
    let (cfg, rules, master) = load(path)?;
    runtime()?.block_on(async {
        let mut client = control_client(&cfg).await?;
        let ring = keys::load_keyring(&client, &master).await?;
        let reports = reencrypt::reencrypt(&mut client, &rules, &ring, column, false).await?;
        print_reports(&reports)
    })
}

/// One line per column; an error (exit 1) saying what to do when values were left behind.
fn print_reports(reports: &[ColumnReport]) -> anyhow::Result<()> {
    for r in reports {
        println!(
            "{}: {} value(s) re-encrypted to v{}, {} unreadable, {} conflicts",
            r.column, r.rewritten, r.version, r.unreadable, r.conflicts
        );
    }
    let unreadable: u64 = reports.iter().map(|r| r.unreadable).sum();
    let conflicts: u64 = reports.iter().map(|r| r.conflicts).sum();
    let mut todo = Vec::new();
    if unreadable > 0 {
        todo.push(format!(
            "{unreadable} stored value(s) do not decrypt with any version of their column's \
             data key and were left as they are (written without pgcloak, copied from another \
             column, or under a key version that was deleted): reading them through the proxy \
             gives XX001; fix or delete those rows"
        ));
    }
    if conflicts > 0 {
        todo.push(format!(
            "{conflicts} value(s) kept their old key version: the same value is stored twice \
             under two key versions in a UNIQUE column; remove the duplicate row and run \
             `pgcloak keys reencrypt` again"
        ));
    }
    if todo.is_empty() {
        return Ok(());
    }
    bail!("{}", todo.join("; and "))
}

/// `pgcloak keys rewrap --new-master-key-env VAR`.
pub fn keys_rewrap(path: &Path, new_env: &str) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    let old = master_key_source(&cfg.keys)?.load()?;
    let new_text = std::env::var(new_env)
        .with_context(|| format!("environment variable {new_env} is not set"))?;
    let new = MasterKey::from_base64(&new_text, &format!("environment variable {new_env}"))?;
    runtime()?.block_on(async {
        let mut client = control_client(&cfg).await?;
        let n = keys::rewrap(&mut client, &old, &new).await?;
        println!("re-wrapped {n} data key version(s); use the new master key from now on");
        Ok(())
    })
}

/// `pgcloak check`: every problem, offline then online; exit 1 if any.
pub fn check(path: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    let mut problems = check::check_offline(&cfg);
    if problems.is_empty() {
        let rules = load_rules(&cfg.rules)?;
        let master = master_key_source(&cfg.keys)?.load()?;
        problems = runtime()?.block_on(async {
            match control_client(&cfg).await {
                Ok(client) => check::check_online(&client, &rules, &master).await,
                Err(e) => vec![check::Problem {
                    kind: check::ProblemKind::Database,
                    message: format!("{e:#}"),
                }],
            }
        });
    }
    if problems.is_empty() {
        println!("ok: config, rules, database and keys are consistent");
        return Ok(());
    }
    for p in &problems {
        println!("{p}");
    }
    bail!("{} problem(s) found", problems.len())
}
