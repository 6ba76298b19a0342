//! `pgcloak audit verify FILE`: checks the audit trail's HMAC chain with the key derived from
//! the config's key provider, and prints the first broken record.

use std::path::Path;

use anyhow::{Context, bail};
use pgcloak::audit::{AuditKey, chain};
use pgcloak::config::Config;
use pgcloak::config::secrets::master_key_source;

/// Verifies `file`; exit 1 (an error) naming the first broken record.
pub fn verify(config: &Path, file: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    let master = master_key_source(&cfg.keys)?.load()?;
    let key = AuditKey::from_master(&master);
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read audit file {}", file.display()))?;
    match chain::verify(&key, &text) {
        Ok(n) => {
            println!("{}: {n} record(s), chain intact", file.display());
            Ok(())
        }
        Err(b) => {
            println!(
                "{}: line {}: broken record: {}",
                file.display(),
                b.line_no,
                b.why
            );
            println!("{}", b.line);
            bail!(
                "the audit trail {} is broken at line {} (records before it verify)",
                file.display(),
                b.line_no
            )
        }
    }
}
