//! The `pgcloak` command line: parses arguments, loads the config, starts telemetry and runs.
//! Exit codes: 0 success, 1 a problem the user must fix, 2 usage error (clap's own).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use pgcloak::config::Config;
use pgcloak::config::file::LogFormat;

mod cli;

#[derive(Parser)]
#[command(
    name = "pgcloak",
    version,
    about = "Transparent, field-encrypting PostgreSQL proxy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `-c/--config PATH`, shared by every subcommand that needs a config.
#[derive(Args)]
struct ConfigArg {
    /// Config file (default: $PGCLOAK_CONFIG, else ./pgcloak.toml).
    #[arg(short, long, env = "PGCLOAK_CONFIG", default_value = "pgcloak.toml")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy until SIGINT/SIGTERM (graceful: stop accepting, let sessions finish).
    Serve(ConfigArg),
    /// Validate config and rules offline, then against each database the rules name; print
    /// every problem.
    Check(ConfigArg),
    /// Manage the data keys stored (wrapped) in `pgcloak.data_keys`.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Bring existing plaintext columns under their rules online (and back).
    #[command(subcommand)]
    Migrate(cli::migrate::MigrateCommand),
    /// Print a fresh base64 master key (32 random bytes).
    GenMasterKey,
    /// The audit trail (`[audit]`).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Start a throwaway TLS PostgreSQL, demo rules and data, and the proxy; Ctrl-C cleans up.
    #[cfg(feature = "devdb")]
    Demo {
        /// Where the proxy listens.
        #[arg(long, default_value = "127.0.0.1:6432")]
        listen: String,
    },
    /// Test support (tests/peer): a throwaway TLS PostgreSQL with a database without rules and
    /// one with a rules file, and a config for `pgcloak serve`; see src/cli/devdb.rs.
    #[command(hide = true)]
    #[cfg(feature = "devdb")]
    Devdb {
        /// Shell-sourceable file to write once everything is ready.
        #[arg(long)]
        env_file: PathBuf,
        /// The address the config tells `pgcloak serve` to listen on.
        #[arg(long)]
        listen: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the audit trail's HMAC chain (key from the config's key provider); print the
    /// first broken record and exit 1 if there is one.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        /// The audit file (JSON lines).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// In each rules database: check the rules tables, create the `pgcloak` schema and one data
    /// key per rules column that has none (idempotent; none for a column that is wrong).
    Init(ConfigArg),
    /// Every stored data key of each rules database: versions, state, the columns using it.
    List(ConfigArg),
    /// Add a new data-key version; new writes use it, old versions still decrypt. Then, for
    /// deterministic keys, wait for running proxies to load it and re-encrypt their columns.
    Rotate {
        #[command(flatten)]
        config: ConfigArg,
        /// Only the key of this column (`schema.table.column`).
        #[arg(long)]
        column: Option<String>,
        /// Do not re-encrypt deterministic columns now (run `pgcloak keys reencrypt` later).
        #[arg(long)]
        no_reencrypt: bool,
    },
    /// Re-write stored values under the current version of their data key (every rules
    /// column, or one); values that do not decrypt or would break a UNIQUE constraint are
    /// left as they are, counted, and make the command exit 1.
    Reencrypt {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this column (`schema.table.column`).
        #[arg(long)]
        column: Option<String>,
    },
    /// Re-wrap every data key under another key provider, a new master key, or the latest
    /// version of the provider's key (no data is re-encrypted), in one transaction per database.
    Rewrap {
        #[command(flatten)]
        config: ConfigArg,
        /// Environment variable holding the new master key (base64; local provider).
        #[arg(long, group = "target")]
        new_master_key_env: Option<String>,
        /// A file holding a `[keys]` table (same format as pgcloak.toml's): re-wrap under
        /// that provider (any kind).
        #[arg(long, group = "target")]
        new_keys: Option<std::path::PathBuf>,
        /// Re-wrap onto the latest version of the configured provider's key without the data
        /// keys leaving it (vault-transit: Transit `rewrap`, after rotating the transit key).
        #[arg(long, group = "target")]
        latest: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(c) => serve(c.config),
        Command::Check(c) => cli::check(&c.config),
        Command::Keys(KeysCommand::Init(c)) => cli::keys_init(&c.config),
        Command::Keys(KeysCommand::List(c)) => cli::keys_list(&c.config),
        Command::Keys(KeysCommand::Rotate {
            config,
            column,
            no_reencrypt,
        }) => cli::keys_rotate(&config.config, column.as_deref(), !no_reencrypt),
        Command::Keys(KeysCommand::Reencrypt { config, column }) => {
            cli::keys_reencrypt(&config.config, column.as_deref())
        }
        Command::Keys(KeysCommand::Rewrap {
            config,
            new_master_key_env,
            new_keys,
            latest,
        }) => match (new_master_key_env, new_keys, latest) {
            (Some(var), None, false) => {
                cli::keys_rewrap(&config.config, cli::RewrapTarget::MasterKeyEnv(&var))
            }
            (None, Some(file), false) => {
                cli::keys_rewrap(&config.config, cli::RewrapTarget::KeysFile(&file))
            }
            (None, None, true) => cli::keys_rewrap(&config.config, cli::RewrapTarget::Latest),
            _ => Err(anyhow::anyhow!(
                "keys rewrap needs one of --new-keys FILE, --new-master-key-env VAR or --latest"
            )),
        },
        Command::Migrate(m) => cli::migrate::run(m),
        Command::GenMasterKey => {
            println!("{}", pgcloak::crypto::gen_master_key());
            Ok(())
        }
        Command::Audit(AuditCommand::Verify { config, file }) => {
            cli::audit::verify(&config.config, &file)
        }
        #[cfg(feature = "devdb")]
        Command::Demo { listen } => cli::demo::run(&listen),
        #[cfg(feature = "devdb")]
        Command::Devdb { env_file, listen } => cli::devdb::run(&env_file, &listen),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgcloak: {}", report(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes, each printed once: many of our errors (and tokio-postgres's)
/// already include their source in their message, which `{:#}` would repeat.
fn report(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

/// Logs to stderr in the configured format; `RUST_LOG` overrides `log.level`.
fn init_tracing(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match cfg.log.format {
        LogFormat::Text => builder.init(),
        // One list of the enclosing spans per line (not also the innermost one again).
        LogFormat::Json => builder
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .init(),
    }
}

fn serve(path: PathBuf) -> anyhow::Result<()> {
    let cfg = Arc::new(Config::load(&path)?);
    init_tracing(&cfg);
    let secrets = pgcloak::Secrets::from_env(&cfg)?;
    // Accepting, key and catalog polling run here; sessions run on their own per-core workers
    // (`session::workers`).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&cfg.listen.address)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.listen.address))?;
        pgcloak::run_with_reload(listener, cfg, secrets, shutdown_signal(), Some(hangups()?))
            .await?;
        Ok(())
    })
}

/// SIGHUP, as reload requests (config and rules are read again, validated first).
fn hangups() -> anyhow::Result<tokio::sync::mpsc::UnboundedReceiver<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            if tx.send(()).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown signal received");
}
