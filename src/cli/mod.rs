//! The subcommands other than `serve`: key management (incl. re-encryption), `check`,
//! `gen-master-key` and `demo`. Each loads what it needs, calls the library and prints a short
//! report — per database a rules file names, each line starting `database NAME: `; anyhow is
//! allowed here (the binary), never in the library.

pub mod audit;
#[cfg(feature = "devdb")]
pub mod demo;
#[cfg(feature = "devdb")]
pub mod devdb;
pub mod migrate;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use pgcloak::config::{ColumnRule, Config, DatabaseRules, Mode, Rules, load_rules};
use pgcloak::control::encryption::POLL_INTERVAL;
use pgcloak::control::providers::{self, KeyProvider};
use pgcloak::control::reencrypt::{self, ColumnReport};
use pgcloak::control::{self, check, keys};
use pgcloak::crypto::MasterKey;

/// A current-thread runtime for one-shot commands.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The config, the rules of every database they name, and the key provider.
fn load(path: &Path) -> anyhow::Result<(Config, Vec<DatabaseRules>, Arc<dyn KeyProvider>)> {
    let cfg = Config::load(path)?;
    let databases = load_rules(&cfg.rules)?;
    if databases.is_empty() {
        bail!(
            "{}: no rules files (`rules = [...]`): there are no data keys to manage",
            path.display()
        );
    }
    let provider = key_provider(&cfg.keys)?;
    Ok((cfg, databases, provider))
}

/// The provider a `[keys]` table names (local: the bare cause, as before providers).
fn key_provider(keys: &pgcloak::config::keys::Keys) -> anyhow::Result<Arc<dyn KeyProvider>> {
    providers::from_config(keys).map_err(|e| match e.kind {
        providers::FailureKind::Config if e.provider == "local" => anyhow::anyhow!(e.cause),
        _ => e.into(),
    })
}

/// The control login to `database`.
async fn control_client(cfg: &Config, database: &str) -> anyhow::Result<tokio_postgres::Client> {
    let password = cfg.control_password()?;
    Ok(control::connect(cfg, &password, database).await?)
}

/// `database NAME: ` before every line a per-database command prints.
fn tag(db: &DatabaseRules) -> String {
    format!("database {}: ", db.database)
}

/// `pgcloak keys init`: per database, the table checks of `check` first; no key is created
/// for a column that is missing or not `bytea` (exit 1 naming it). A missing table is only a
/// warning (its keys are created: the table may be created through pgcloak later).
pub fn keys_init(path: &Path) -> anyhow::Result<()> {
    let (cfg, databases, master) = load(path)?;
    audit::audited(&cfg, &*master, "keys init", vec![], |counts| {
        runtime()?.block_on(async {
            // PKCS#11: creates the token's non-extractable wrapping key if absent; the others
            // check that the provider answers before any key is made.
            master.prepare().await?;
            let mut problems = 0usize;
            for db in &databases {
                let mut client = control_client(&cfg, &db.database).await?;
                let report = check::check_tables(&client, &db.rules).await;
                for p in &report.problems {
                    if p.blocks_serving() {
                        problems += 1;
                        println!("{}{p}", tag(db));
                    } else {
                        println!("{}warning: {p}", tag(db));
                    }
                }
                let created =
                    keys::init_except(&mut client, &db.rules, &*master, &report.wrong_keys).await?;
                control::listen::notify(&client, control::listen::KEYS).await;
                for name in &report.wrong_keys {
                    println!(
                        "{}no data key created for {name}: fix its column(s) first",
                        tag(db)
                    );
                }
                if created.is_empty() && report.wrong_keys.is_empty() {
                    println!(
                        "{}every rules column already has a data key; nothing to do",
                        tag(db)
                    );
                }
                counts.add("keys_created", created.len() as u64);
                for name in created {
                    println!("{}created data key {name} v1", tag(db));
                }
            }
            if problems > 0 {
                bail!("{problems} problem(s) found; fix them and run `pgcloak keys init` again");
            }
            Ok(())
        })
    })
}

/// The start record's detail of a command with an optional `--column`.
fn column_detail(column: Option<&str>) -> Vec<(&'static str, serde_json::Value)> {
    column
        .map(|c| vec![("column", serde_json::Value::from(c))])
        .unwrap_or_default()
}

/// The databases a `--column` applies to: every one whose rules have it (error if none).
fn with_column<'a>(
    databases: &'a [DatabaseRules],
    column: Option<&str>,
) -> anyhow::Result<Vec<&'a DatabaseRules>> {
    let Some(c) = column else {
        return Ok(databases.iter().collect());
    };
    let found: Vec<_> = databases
        .iter()
        .filter(|d| keys::column_rule(&d.rules, c).is_ok())
        .collect();
    if found.is_empty() {
        return Err(keys::KeysError::UnknownColumn(c.to_owned()).into());
    }
    Ok(found)
}

/// `pgcloak keys rotate [--column schema.table.column] [--no-reencrypt]`: per database (every
/// one, or those whose rules have the column), after the rotation, unless `--no-reencrypt`,
/// waits for running proxies to load the new versions and re-encrypts the deterministic
/// columns of the rotated keys (every column sharing a key, so joins between them keep
/// working).
pub fn keys_rotate(path: &Path, column: Option<&str>, reencrypt: bool) -> anyhow::Result<()> {
    let (cfg, databases, master) = load(path)?;
    audit::audited(
        &cfg,
        &*master,
        "keys rotate",
        column_detail(column),
        |counts| {
            runtime()?.block_on(async {
            let mut todo = Vec::new();
            for db in with_column(&databases, column)? {
                let mut client = control_client(&cfg, &db.database).await?;
                let rotated = keys::rotate(&mut client, &db.rules, &*master, column).await?;
                control::listen::notify(&client, control::listen::KEYS).await;
                counts.add("versions_created", rotated.len() as u64);
                for (name, version) in &rotated {
                    println!("{}data key {name}: new writes use v{version}", tag(db));
                }
                let columns = deterministic_of(&db.rules, &rotated);
                if columns.is_empty() {
                    continue;
                }
                if !reencrypt {
                    for c in &columns {
                        println!(
                            "{}warning: {c} is deterministic: until rows written under older \
                             versions are re-written, `=`/IN/UNIQUE compare only values of the same \
                             version; run `pgcloak keys reencrypt` later",
                            tag(db)
                        );
                    }
                    continue;
                }
                todo.push((db, client, columns));
            }
            if todo.is_empty() {
                return Ok(());
            }
            let wait = POLL_INTERVAL + Duration::from_secs(1);
            let n: usize = todo.iter().map(|t| t.2.len()).sum();
            println!(
                "waiting {}s for running proxies to load the new key version(s), then \
                 re-encrypting {n} deterministic column(s)",
                wait.as_secs(),
            );
            tokio::time::sleep(wait).await;
            let mut reports = Vec::new();
            for (db, mut client, columns) in todo {
                let ring = keys::load_keyring(&client, &*master).await?;
                let done = reencrypt::reencrypt_columns(&mut client, &ring, &columns).await?;
                reports.push((db, done));
            }
            print_reports(&reports, counts)
        })
        },
    )
}

/// The deterministic columns whose keys were rotated, by name.
fn deterministic_of(rules: &Rules, rotated: &[(String, u32)]) -> Vec<Arc<ColumnRule>> {
    let mut columns: Vec<Arc<ColumnRule>> = rules
        .keys()
        .filter(|(k, _)| rotated.iter().any(|(name, _)| name == k))
        .flat_map(|(_, cols)| cols.iter().cloned())
        .filter(|c| c.mode == Mode::Deterministic)
        .collect();
    columns.sort_by_key(|c| c.qualified());
    columns
}

/// `pgcloak keys reencrypt [--column schema.table.column]`, per database.
pub fn keys_reencrypt(path: &Path, column: Option<&str>) -> anyhow::Result<()> {
    let (cfg, databases, master) = load(path)?;
    audit::audited(
        &cfg,
        &*master,
        "keys reencrypt",
        column_detail(column),
        |counts| {
            runtime()?.block_on(async {
                let mut reports = Vec::new();
                for db in with_column(&databases, column)? {
                    let mut client = control_client(&cfg, &db.database).await?;
                    let ring = keys::load_keyring(&client, &*master).await?;
                    let done =
                        reencrypt::reencrypt(&mut client, &db.rules, &ring, column, false).await?;
                    reports.push((db, done));
                }
                print_reports(&reports, counts)
            })
        },
    )
}

/// `pgcloak keys list`: per database, every stored data key with its versions and columns.
pub fn keys_list(path: &Path) -> anyhow::Result<()> {
    let (cfg, databases, _master) = load(path)?;
    runtime()?.block_on(async {
        for db in &databases {
            let client = control_client(&cfg, &db.database).await?;
            let listed = keys::list(&client, &db.rules).await?;
            if listed.is_empty() {
                println!("{}no data keys: run `pgcloak keys init`", tag(db));
            }
            for k in listed {
                let versions: Vec<String> = k
                    .versions
                    .iter()
                    .zip(&k.wrapped_by)
                    .map(|((v, state, created), by)| {
                        format!("v{v} {state} (created {created}, wrapped by {by})")
                    })
                    .collect();
                let columns = if k.columns.is_empty() {
                    "no rules column".to_owned()
                } else {
                    k.columns.join(", ")
                };
                println!(
                    "{}{} [{}]: {}; used by {columns}",
                    tag(db),
                    k.name,
                    k.algorithm,
                    versions.join(", ")
                );
            }
        }
        Ok(())
    })
}

/// One line per column; an error (exit 1) saying what to do when values were left behind.
fn print_reports(
    reports: &[(&DatabaseRules, Vec<ColumnReport>)],
    counts: &mut audit::Counts,
) -> anyhow::Result<()> {
    for (db, columns) in reports {
        for r in columns {
            counts.add("values_reencrypted", r.rewritten);
            counts.add("values_unreadable", r.unreadable);
            counts.add("conflicts", r.conflicts);
            println!(
                "{}{}: {} value(s) re-encrypted to v{}, {} unreadable, {} conflicts",
                tag(db),
                r.column,
                r.rewritten,
                r.version,
                r.unreadable,
                r.conflicts
            );
        }
    }
    let reports: Vec<&ColumnReport> = reports.iter().flat_map(|(_, r)| r).collect();
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

/// What `pgcloak keys rewrap` re-wraps onto.
pub enum RewrapTarget<'a> {
    /// `--new-master-key-env VAR`: a new local master key.
    MasterKeyEnv(&'a str),
    /// `--new-keys FILE`: the provider FILE's `[keys]` table describes (any kind).
    KeysFile(&'a Path),
    /// `--latest`: the latest version of the configured provider's key (Transit `rewrap`).
    Latest,
}

fn rewrap_target(target: &RewrapTarget<'_>) -> anyhow::Result<Arc<dyn KeyProvider>> {
    Ok(match target {
        RewrapTarget::MasterKeyEnv(var) => {
            let text = zeroize::Zeroizing::new(
                std::env::var(var)
                    .with_context(|| format!("environment variable {var} is not set"))?,
            );
            Arc::new(MasterKey::from_base64(
                &text,
                &format!("environment variable {var}"),
            )?)
        }
        RewrapTarget::KeysFile(file) => {
            key_provider(&pgcloak::config::keys::load_keys_file(file)?)?
        }
        RewrapTarget::Latest => bail!("--latest has no new provider"),
    })
}

/// `pgcloak keys rewrap`: every database's keys. The old provider must unwrap every stored
/// key of every database before any is re-wrapped (each database is then re-wrapped in one
/// transaction of its own, and only once the new provider unwraps every new wrap).
pub fn keys_rewrap(path: &Path, target: RewrapTarget<'_>) -> anyhow::Result<()> {
    let (cfg, databases, old) = load(path)?;
    let new = match target {
        RewrapTarget::Latest => None,
        _ => Some(rewrap_target(&target)?),
    };
    let detail = vec![(
        "to",
        serde_json::Value::from(match &new {
            Some(n) => n.kind().name(),
            None => "latest",
        }),
    )];
    audit::audited(&cfg, &*old, "keys rewrap", detail, |counts| {
        runtime()?.block_on(rewrap_all(&cfg, &databases, &*old, new.as_deref(), counts))?;
        match (&target, &new) {
            (RewrapTarget::MasterKeyEnv(_), _) => println!("use the new master key from now on"),
            (_, Some(new)) => println!(
                "use the new [keys] table ({} at {}) in the config from now on",
                new.kind().name(),
                new.address()
            ),
            _ => {}
        }
        Ok(())
    })
}

/// [`keys_rewrap`]'s work: every database checked with `old` first, then re-wrapped (the data
/// keys and the stored audit key, see `pgcloak::audit::key`).
async fn rewrap_all(
    cfg: &Config,
    databases: &[DatabaseRules],
    old: &dyn KeyProvider,
    new: Option<&dyn KeyProvider>,
    counts: &mut audit::Counts,
) -> anyhow::Result<()> {
    if let Some(new) = new {
        // PKCS#11: the new token's wrapping key is created if absent.
        new.prepare().await?;
    }
    let mut clients = Vec::new();
    for db in databases {
        let client = control_client(cfg, &db.database).await?;
        let rows = keys::read_wrapped(&client).await.with_context(|| tag(db))?;
        providers::unwrap_all(old, &rows)
            .await
            .with_context(|| tag(db))?;
        clients.push((db, client));
    }
    for (i, (db, mut client)) in clients.into_iter().enumerate() {
        // The audit key lives in the first rules database only.
        let first = i == 0;
        match new {
            Some(new) => {
                let n = keys::rewrap(&mut client, old, new).await?;
                if first && pgcloak::audit::key::rewrap(&client, old, new).await? {
                    println!("{}re-wrapped the audit key under {}", tag(db), new.kek());
                }
                control::listen::notify(&client, control::listen::KEYS).await;
                counts.add("versions_rewrapped", n as u64);
                println!(
                    "{}re-wrapped {n} data key version(s) under {}",
                    tag(db),
                    new.kek()
                );
            }
            None => {
                let (n, same) = keys::rewrap_latest(&mut client, old).await?;
                if first && pgcloak::audit::key::rewrap_latest(&client, old).await? {
                    println!(
                        "{}re-wrapped the audit key onto the latest {}",
                        tag(db),
                        old.kek()
                    );
                }
                control::listen::notify(&client, control::listen::KEYS).await;
                counts.add("versions_rewrapped", n as u64);
                println!(
                    "{}re-wrapped {n} data key version(s) onto the latest {} ({same} already were)",
                    tag(db),
                    old.kek()
                );
            }
        }
    }
    Ok(())
}

/// `pgcloak check`: every problem, offline then online for each database the rules name;
/// exit 1 if any.
pub fn check(path: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    let problems = check::check_offline(&cfg);
    if !problems.is_empty() {
        for p in &problems {
            println!("{p}");
        }
        bail!("{} problem(s) found", problems.len());
    }
    let databases = load_rules(&cfg.rules)?;
    if databases.is_empty() {
        println!("ok: config is consistent; no rules files, so every session is relayed untouched");
        return Ok(());
    }
    let master = key_provider(&cfg.keys)?;
    let mut found = 0usize;
    runtime()?.block_on(async {
        for db in &databases {
            let problems = match control_client(&cfg, &db.database).await {
                Ok(client) => check::check_online(&client, &db.rules, &*master).await,
                Err(e) => vec![check::Problem::new(
                    check::ProblemKind::Database,
                    format!("{e:#}"),
                )],
            };
            if problems.is_empty() {
                println!(
                    "{}ok: {} table(s), {} column(s): tables and keys are consistent",
                    tag(db),
                    db.rules.tables().count(),
                    db.rules.columns().count()
                );
            }
            for p in &problems {
                println!("{}{p}", tag(db));
            }
            found += problems.len();
        }
    });
    if found > 0 {
        bail!("{found} problem(s) found");
    }
    println!("ok: config, rules, databases and keys are consistent");
    Ok(())
}
