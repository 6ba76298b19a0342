//! The `pgcloak` command line: parses arguments, loads the config, starts telemetry and runs.
//! Exit codes: 0 success, 1 a problem the user must fix, 2 usage error (clap's own).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pgcloak::config::Config;
use pgcloak::config::file::LogFormat;

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

#[derive(Subcommand)]
enum Command {
    /// Run the proxy until SIGINT/SIGTERM (graceful: stop accepting, let sessions finish).
    Serve {
        /// Config file (default: $PGCLOAK_CONFIG, else ./pgcloak.toml).
        #[arg(short, long, env = "PGCLOAK_CONFIG", default_value = "pgcloak.toml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgcloak: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Logs to stderr in the configured format; `RUST_LOG` overrides `log.level`.
fn init_tracing(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn serve(path: PathBuf) -> anyhow::Result<()> {
    let cfg = Arc::new(Config::load(&path)?);
    init_tracing(&cfg);
    let secrets = pgcloak::Secrets::from_env(&cfg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&cfg.listen.address)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.listen.address))?;
        pgcloak::run(listener, cfg, secrets, shutdown_signal()).await?;
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
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
