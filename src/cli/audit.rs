//! The CLI's side of the audit trail: `pgcloak audit verify FILE` checks the HMAC chain with
//! the config's audit key and prints the first broken record; [`audited`] wraps the key and
//! migration commands so each writes a start and an end record (outcome and counts, never
//! values) to the config's `[audit]` sink, on the same chain as the server's records.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use pgcloak::audit::{Audit, AuditKey, chain, key};
use pgcloak::config::Config;
use pgcloak::control::providers::KeyProvider;
use serde_json::{Map, Value};

/// The audit key of `cfg` (`local`: derived offline; any other provider: the stored one of
/// the first rules database, over the control login, created there when `create`).
pub fn audit_key(
    cfg: &Config,
    provider: &dyn KeyProvider,
    create: bool,
) -> anyhow::Result<AuditKey> {
    if let Some(k) = provider.audit_key() {
        return Ok(k);
    }
    let password = cfg.control_password()?;
    super::runtime()?.block_on(async {
        // PKCS#11: the token's wrapping key may not exist before the first `keys init`.
        provider.prepare().await?;
        Ok(key::resolve(cfg, &password, provider, create).await?)
    })
}

/// What a command did, for its end record (counts and names, never values).
#[derive(Default)]
pub struct Counts(Map<String, Value>);

impl Counts {
    /// Adds `n` to the count `name`.
    pub fn add(&mut self, name: &str, n: u64) {
        let old = self.0.get(name).and_then(Value::as_u64).unwrap_or(0);
        self.0.insert(name.to_owned(), Value::from(old + n));
    }
}

/// Runs `f` as the audited command `command` (e.g. `"keys rotate"`), with `detail` (column
/// names and the like) in its start record. Without `[audit]` it just runs `f`. Fails closed:
/// a trail that cannot be opened stops the command before it changes anything. The end
/// record says `ok` or `failed` (never the error text: a database error can quote a value).
pub fn audited<T>(
    cfg: &Config,
    provider: &dyn KeyProvider,
    command: &str,
    detail: Vec<(&str, Value)>,
    f: impl FnOnce(&mut Counts) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut counts = Counts::default();
    let Some(audit_cfg) = &cfg.audit else {
        return f(&mut counts);
    };
    let key = audit_key(cfg, provider, true).context("the audit trail ([audit]) has no key")?;
    let audit: Arc<Audit> = Audit::open(audit_cfg, key)?;
    let pid = Value::from(std::process::id());
    let mut start = vec![("command", Value::from(command)), ("pid", pid.clone())];
    start.extend(detail);
    audit.record("command_start", start);
    let t0 = Instant::now();
    let result = f(&mut counts);
    let outcome = if result.is_ok() { "ok" } else { "failed" };
    audit.record(
        "command_end",
        vec![
            ("command", command.into()),
            ("pid", pid),
            ("outcome", outcome.into()),
            (
                "elapsed_ms",
                u64::try_from(t0.elapsed().as_millis())
                    .unwrap_or(u64::MAX)
                    .into(),
            ),
            ("counts", Value::Object(counts.0)),
        ],
    );
    // Dropping the last handle joins the writer: both records are on disk before exit.
    drop(audit);
    result
}

/// Verifies `file`; exit 1 (an error) naming the first broken record.
pub fn verify(config: &Path, file: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    let provider = super::key_provider(&cfg.keys)?;
    let key = audit_key(&cfg, &*provider, false)?;
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
