//! `pgcloak devdb` (hidden; test support for tests/peer): a throwaway TLS PostgreSQL from the
//! system's binaries with two extra databases — `plain`, which no rules file names, and
//! `cloaked`, whose rules file names one table (`public.pgcloak_peer_secrets`) that no test
//! suite uses — plus the files `pgcloak serve` needs to proxy both (certificate, rules, master
//! key, data keys, `pgcloak.toml`). It writes a shell-sourceable env file saying where
//! everything is, then waits for SIGINT/SIGTERM and removes the cluster. The proxy itself is
//! started by the caller with `pgcloak serve`, so the suites exercise the real entry point.

use std::path::Path;

use anyhow::Context;
use pgcloak::config::load_rules;
use pgcloak::control::{self, keys};
use pgcloak::devdb::{self, DevDb, DevDbOptions};

/// The database no rules file names.
const PLAIN_DATABASE: &str = "plain";
/// The database with a rules file.
const CLOAKED_DATABASE: &str = "cloaked";
/// Where `pgcloak serve` reads the control password from (the env file sets it).
const PASSWORD_ENV: &str = "PGCLOAK_CONTROL_PASSWORD";

const RULES: &str = r#"# tests/peer: a rules table in the suite's database, so every statement is analysed.
database = "cloaked"

[tables."public.pgcloak_peer_secrets"]
secret = { type = "text", mode = "randomized" }
tag    = { type = "text", mode = "deterministic" }
"#;

const TABLE: &str = "CREATE TABLE public.pgcloak_peer_secrets \
                     (id bigserial PRIMARY KEY, secret bytea, tag bytea)";

/// Runs until SIGINT/SIGTERM; `listen` is the address `pgcloak serve` will listen on.
pub fn run(env_file: &Path, listen: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let db = DevDb::start(DevDbOptions::default())
            .await
            .context("starting a throwaway PostgreSQL")?;
        let su = db.superuser_client("postgres").await?;
        for name in [PLAIN_DATABASE, CLOAKED_DATABASE] {
            su.batch_execute(&format!("CREATE DATABASE {name} OWNER {}", devdb::APP_USER))
                .await
                .with_context(|| format!("creating database {name}"))?;
        }
        db.superuser_client(CLOAKED_DATABASE)
            .await?
            .batch_execute(TABLE)
            .await
            .context("creating the rules table")?;
        let cfg =
            super::demo::write_proxy_files(&db, listen, ("peer.toml", RULES), PASSWORD_ENV, "")?;
        let master = pgcloak::config::secrets::master_key_source(&cfg.keys)?.load()?;
        for rules in load_rules(&cfg.rules)? {
            let mut c = control::connect(&cfg, devdb::CONTROL_PASSWORD, &rules.database).await?;
            keys::init(&mut c, &rules.rules, &master).await?;
        }
        write_env(&db, env_file)?;
        crate::shutdown_signal().await;
        Ok(())
    })
}

/// Writes the env file atomically (a temporary file renamed into place), mode 0600.
fn write_env(db: &DevDb, env_file: &Path) -> anyhow::Result<()> {
    let lines = [
        ("PEER_DIRECT_PORT", db.port().to_string()),
        ("PEER_CA", db.ca_cert_path().display().to_string()),
        (
            "PEER_CONFIG",
            db.dir().join("pgcloak.toml").display().to_string(),
        ),
        ("PEER_SERVER_LOG", db.log_path().display().to_string()),
        ("PEER_PLAIN_DATABASE", PLAIN_DATABASE.to_owned()),
        ("PEER_CLOAKED_DATABASE", CLOAKED_DATABASE.to_owned()),
        ("PEER_USER", devdb::SUPERUSER.to_owned()),
        ("PEER_PASSWORD", devdb::SUPERUSER_PASSWORD.to_owned()),
        (PASSWORD_ENV, devdb::CONTROL_PASSWORD.to_owned()),
    ];
    let text: String = lines.iter().map(|(k, v)| format!("{k}='{v}'\n")).collect();
    let tmp = env_file.with_extension("tmp");
    super::demo::write_private(&tmp, &text)?;
    std::fs::rename(&tmp, env_file)
        .with_context(|| format!("cannot write {}", env_file.display()))?;
    Ok(())
}
