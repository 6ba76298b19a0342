//! Prometheus metrics (`prometheus-client` encoding) and the HTTP endpoint that serves them
//! with `/healthz` and `/readyz` ([`http`]).
//!
//! Counting is cheap and local: every event lands in the counting thread's own [`shard`]
//! (relaxed atomics no other core writes; labelled counts in a map only that thread and the
//! scraper lock), and a scrape sums the shards. Per-value counts (encrypt, decrypt) are first
//! added up per session ([`observe`]) and folded into the shard once per read
//! from upstream. Labels are bounded: rules names, key versions, SQLSTATEs and fixed words —
//! never SQL text, values or user-chosen names of anything but a logged-in database.
//!
//! The counters are process-wide (like a default registry); what belongs to one running proxy
//! (its key rings, catalogs, polls) is read from its [`Instance`] at scrape time.

pub mod http;
pub mod observe;
pub mod shard;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

pub use shard::{Class, Fixed, Gauge, Hist, Key};

/// Bytes read from the client (`true`) or from upstream, as they flow.
#[inline]
pub fn bytes(from_client: bool, n: usize) {
    let c = if from_client {
        Fixed::BytesFromClients
    } else {
        Fixed::BytesFromUpstream
    };
    shard::with(|s| s.add(c, n as u64));
}

/// A connection was accepted; returns the guard that keeps it counted as active.
pub fn session_started() -> ActiveSession {
    shard::with(|s| {
        s.add(Fixed::SessionsAccepted, 1);
        s.gauge(Gauge::SessionsActive, 1);
    });
    ActiveSession(())
}

/// Counts a session as active while alive.
#[derive(Debug)]
pub struct ActiveSession(());

impl Drop for ActiveSession {
    fn drop(&mut self) {
        shard::with(|s| s.gauge(Gauge::SessionsActive, -1));
    }
}

/// A logged-in session ended (`database` as logged in; `outcome`: ok, error, shutdown).
pub fn session_ended(database: &str, outcome: &'static str) {
    let key = Key::Sessions {
        database: Arc::from(database),
        outcome,
    };
    shard::with(|s| s.add_labelled(key, 1));
}

/// A login failed for `reason` (auth, tls, upstream, control, protocol, timeout).
pub fn login_failed(reason: &'static str) {
    shard::with(|s| s.add_labelled(Key::LoginFailed { reason }, 1));
}

/// A statement of `kind` ([`statement_kind`]) went through as `class` (plain, encrypted,
/// refused).
#[inline]
pub fn statement(kind: usize, class: Class) {
    let class = class as usize;
    shard::with(|s| s.statement(kind, class));
}

/// A statement was refused with `sqlstate` over `column` (a rules column or table).
pub fn refused(sqlstate: &'static str, column: &str) {
    let key = Key::Refusals {
        sqlstate,
        column: Arc::from(column),
    };
    shard::with(|s| s.add_labelled(key, 1));
}

/// A key provider failed (loading or reloading data keys).
pub fn provider_error(provider: &str) {
    let key = Key::ProviderErrors {
        provider: Arc::from(provider),
    };
    shard::with(|s| s.add_labelled(key, 1));
}

/// Records a duration in histogram `h`.
#[inline]
pub fn observe(h: Hist, d: Duration) {
    shard::with(|s| s.observe(h, d.as_nanos() as u64));
}

/// Counts a Query or Parse of a session without rules as a plain statement.
#[inline]
pub fn plain_statement(frame: &crate::protocol::Frame) {
    let sql = match crate::protocol::FrontendTag::from(frame.tag()) {
        crate::protocol::FrontendTag::Query => frame.body(),
        // Parse: statement name, NUL, then the text.
        crate::protocol::FrontendTag::Parse => {
            let body = frame.body();
            let name_end = body
                .iter()
                .position(|b| *b == 0)
                .map_or(body.len(), |i| i + 1);
            &body[name_end..]
        }
        _ => return,
    };
    statement(statement_kind(sql), Class::Plain);
}

/// The class of a statement by its first keyword (bounded: never the text itself), as an index
/// into [`shard::KINDS`].
pub fn statement_kind(sql: &[u8]) -> usize {
    let start = sql
        .iter()
        .position(|b| !b.is_ascii_whitespace() && *b != b'(')
        .unwrap_or(sql.len());
    let mut word = [0u8; 12];
    let mut n = 0;
    for b in sql[start..]
        .iter()
        .take_while(|b| b.is_ascii_alphabetic())
        .take(12)
    {
        word[n] = b.to_ascii_lowercase();
        n += 1;
    }
    // Indices into `shard::KINDS` (the unit test checks each against its name).
    match &word[..n] {
        b"select" | b"with" | b"values" | b"table" | b"show" => 0,
        b"insert" => 1,
        b"update" => 2,
        b"delete" => 3,
        b"merge" => 4,
        b"copy" => 5,
        b"create" | b"alter" | b"drop" | b"truncate" | b"comment" | b"grant" | b"revoke" => 6,
        b"begin" | b"start" | b"commit" | b"end" | b"rollback" | b"savepoint" | b"release"
        | b"prepare" | b"abort" => 7,
        b"set" | b"reset" | b"discard" => 8,
        b"" => 9,
        _ => 10,
    }
}

/// One rules database as `/metrics` and `/readyz` show it. The control layer fills it in
/// ([`Databases`]), so this module needs nothing of it.
#[derive(Debug, Clone, Default)]
pub struct DatabaseStatus {
    pub database: String,
    /// Why the database makes the proxy unready (`None`: it does not).
    pub problem: Option<String>,
    pub keyring_generation: u64,
    pub catalog_generation: u64,
    /// Since the last successful key and catalog poll (`None`: none yet).
    pub since_last_poll: Option<Duration>,
    /// Encrypted columns in the rules.
    pub rules_columns: usize,
    /// Rules columns still stored as plaintext (`table.column`).
    pub pending: Vec<String>,
}

/// The rules databases of a running proxy, read at each scrape or probe.
pub trait Databases: Send + Sync + std::fmt::Debug {
    fn statuses(&self) -> Vec<DatabaseStatus>;
}

/// What one running proxy exposes beyond the process-wide counters: readiness inputs and
/// the state of its rules databases.
#[derive(Debug, Default)]
pub struct Instance {
    /// The listener is accepting.
    pub listening: AtomicBool,
    /// Field encryption's databases, when rules are configured.
    pub databases: parking_lot::RwLock<Option<Arc<dyn Databases>>>,
}

impl Instance {
    /// The rules databases' state now (empty without rules).
    pub fn statuses(&self) -> Vec<DatabaseStatus> {
        let all = self.databases.read().clone();
        all.map(|d| d.statuses()).unwrap_or_default()
    }

    /// Why the proxy is not ready (empty: ready).
    pub fn not_ready(&self) -> Vec<String> {
        let mut why = Vec::new();
        if !self.listening.load(Relaxed) {
            why.push("not listening yet".to_owned());
        }
        for s in self.statuses() {
            if let Some(reason) = s.problem {
                why.push(format!("database {}: {reason}", s.database));
            }
        }
        why
    }

    /// What is degraded without making the proxy unready: every pending column (a rules
    /// column still stored as plaintext, served unencrypted until `pgcloak migrate encrypt`).
    pub fn degraded(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in self.statuses() {
            for c in &s.pending {
                out.push(format!(
                    "database {}: column {c} is pending (stored as plaintext, served \
                     unencrypted): run pgcloak migrate encrypt --column {c}",
                    s.database
                ));
            }
        }
        out
    }
}

/// Renders process-wide shards and one [`Instance`].
#[derive(Debug)]
struct Collected(Arc<Instance>);

/// The registry served on `/metrics` for `instance`.
pub fn registry(instance: Arc<Instance>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(Collected(instance)));
    r
}

type Fmt = Result<(), std::fmt::Error>;

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Fmt {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> Fmt {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

/// One labelled family: `rows` of (label pairs, value).
fn family(
    e: &mut DescriptorEncoder,
    (name, help, ty): (&str, &str, MetricType),
    rows: &[(Vec<(&'static str, String)>, f64)],
) -> Fmt {
    if rows.is_empty() {
        return Ok(());
    }
    let mut fam = e.encode_descriptor(name, help, None, ty)?;
    for (labels, v) in rows {
        let m = fam.encode_family(labels)?;
        match ty {
            MetricType::Counter => ConstCounter::new(*v as u64).encode(m)?,
            _ => ConstGauge::new(*v).encode(m)?,
        }
    }
    Ok(())
}

fn histogram(e: &mut DescriptorEncoder, name: &str, help: &str, h: &HistData) -> Fmt {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    let mut cumulative = 0;
    let mut buckets = Vec::with_capacity(shard::BOUNDS.len() + 1);
    for (i, n) in h.0.iter().enumerate() {
        cumulative += n;
        buckets.push((
            shard::BOUNDS.get(i).copied().unwrap_or(f64::INFINITY),
            cumulative,
        ));
    }
    m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(h.1, cumulative, &buckets, None)
}

type HistData = ([u64; shard::BOUNDS.len() + 1], f64);

mod render;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_kind_indexes_the_kind_its_first_keyword_names() {
        let cases: [(&str, &str); 14] = [
            ("SELECT 1", "select"),
            ("  (with x as (select 1) select * from x)", "select"),
            ("insert into t values (1)", "insert"),
            ("UPDATE t SET a = 1", "update"),
            ("delete from t", "delete"),
            (
                "merge into t using s on true when matched then do nothing",
                "merge",
            ),
            ("copy t from stdin", "copy"),
            ("ALTER TABLE t ADD c int", "ddl"),
            ("rollback", "transaction"),
            ("discard all", "set"),
            ("", "empty"),
            ("   ", "empty"),
            ("vacuum", "other"),
            ("selectx", "other"),
        ];
        for (sql, kind) in cases {
            assert_eq!(shard::KINDS[statement_kind(sql.as_bytes())], kind, "{sql}");
        }
        assert_eq!(shard::CLASSES[Class::Plain as usize], "plain");
        assert_eq!(shard::CLASSES[Class::Encrypted as usize], "encrypted");
        assert_eq!(shard::CLASSES[Class::Refused as usize], "refused");
    }
}
