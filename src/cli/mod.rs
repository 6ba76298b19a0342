//! The subcommands other than `serve`: key management, `check`, `gen-master-key` and `demo`.
//! Each loads what it needs, calls the library and prints a short report; anyhow is allowed
//! here (the binary), never in the library.

pub mod demo;

use std::path::Path;

use anyhow::{Context, bail};
use pgcloak::config::{Config, Mode, Rules, load_rules};
use pgcloak::control::{self, check, keys};
use pgcloak::crypto::{MasterKey, master_key_source};

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

/// `pgcloak keys rotate [--column schema.table.column]`.
pub fn keys_rotate(path: &Path, column: Option<&str>) -> anyhow::Result<()> {
    let (cfg, rules, master) = load(path)?;
    runtime()?.block_on(async {
        let mut client = control_client(&cfg).await?;
        for (name, version) in keys::rotate(&mut client, &rules, &master, column).await? {
            println!("data key {name}: new writes use v{version}");
            let deterministic = rules
                .keys()
                .any(|(k, cols)| k == name && cols.iter().any(|c| c.mode == Mode::Deterministic));
            if deterministic {
                println!(
                    "warning: {name} is deterministic: until rows written under older versions \
                     are re-written, `=`/IN/UNIQUE compare only values of the same version"
                );
            }
        }
        Ok(())
    })
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
