//! The `/metrics` exposition: every family, from a [`super::shard::snapshot`] and the
//! instance's rules databases.

use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType::{Counter as C, Gauge as G};

use super::shard::{Fixed, Gauge, Hist, Key, Snapshot, snapshot};
use super::{Collected, Fmt, counter, family, gauge, histogram};

type Rows = Vec<(Vec<(&'static str, String)>, f64)>;

/// Splits the labelled counters into their families.
#[derive(Default)]
struct Families {
    sessions: Rows,
    login_failed: Rows,
    statements: Rows,
    refusals: Rows,
    values: Rows,
    gcm: Rows,
    provider: Rows,
    rate_limited: u64,
}

fn families(s: &Snapshot) -> Families {
    let mut f = Families::default();
    for (k, v) in &s.labelled {
        let v = *v as f64;
        match k {
            Key::Sessions { database, outcome } => f.sessions.push((
                vec![
                    ("database", database.to_string()),
                    ("outcome", (*outcome).into()),
                ],
                v,
            )),
            Key::LoginFailed { reason } => {
                f.login_failed.push((vec![("reason", (*reason).into())], v));
            }
            Key::Statements { kind, class } => f.statements.push((
                vec![("kind", (*kind).into()), ("class", (*class).into())],
                v,
            )),
            Key::Refusals { sqlstate, column } => f.refusals.push((
                vec![
                    ("sqlstate", (*sqlstate).into()),
                    ("column", column.to_string()),
                ],
                v,
            )),
            Key::Values {
                op,
                column,
                version,
            } => f.values.push((
                vec![
                    ("op", (*op).into()),
                    ("column", column.to_string()),
                    ("key_version", version.to_string()),
                ],
                v,
            )),
            Key::Gcm { key, version } => f.gcm.push((
                vec![
                    ("key", key.to_string()),
                    ("key_version", version.to_string()),
                ],
                v,
            )),
            Key::ProviderErrors { provider } => {
                f.provider
                    .push((vec![("provider", provider.to_string())], v));
            }
            Key::RateLimited => f.rate_limited += v as u64,
        }
    }
    f
}

impl Collector for Collected {
    fn encode(&self, mut e: DescriptorEncoder) -> Fmt {
        let s = snapshot();
        let e = &mut e;
        gauge(
            e,
            "pgcloak_sessions_active",
            "Client connections open now.",
            s.gauge(Gauge::SessionsActive),
        )?;
        counter(
            e,
            "pgcloak_connections",
            "Client connections accepted.",
            s.fixed(Fixed::SessionsAccepted),
        )?;
        counter(
            e,
            "pgcloak_client_bytes",
            "Bytes received from clients, counted as they flow.",
            s.fixed(Fixed::BytesFromClients),
        )?;
        counter(
            e,
            "pgcloak_upstream_bytes",
            "Bytes received from upstream servers, counted as they flow.",
            s.fixed(Fixed::BytesFromUpstream),
        )?;
        let f = families(&s);
        family(
            e,
            (
                "pgcloak_sessions",
                "Logged-in sessions ended, by database and outcome.",
                C,
            ),
            &f.sessions,
        )?;
        family(
            e,
            ("pgcloak_logins_failed", "Logins that failed, by reason.", C),
            &f.login_failed,
        )?;
        family(
            e,
            (
                "pgcloak_statements",
                "Statements by kind and class (plain, encrypted, refused).",
                C,
            ),
            &f.statements,
        )?;
        family(
            e,
            (
                "pgcloak_refusals",
                "Statements refused, by SQLSTATE and rules column or table.",
                C,
            ),
            &f.refusals,
        )?;
        family(
            e,
            (
                "pgcloak_values",
                "Field values encrypted, decrypted and failing to decrypt (XX001), by column and key version.",
                C,
            ),
            &f.values,
        )?;
        family(
            e,
            (
                "pgcloak_gcm_encryptions",
                "AES-256-GCM encryptions by data key and version (nonce budget 2^32 per key version).",
                C,
            ),
            &f.gcm,
        )?;
        let budget: Rows = crate::crypto::nonce_budget::snapshot()
            .into_iter()
            .map(|(key, version, used)| {
                let labels = vec![("key", key), ("key_version", version.to_string())];
                (
                    labels,
                    used as f64 / crate::crypto::nonce_budget::LIMIT as f64,
                )
            })
            .collect();
        family(
            e,
            (
                "pgcloak_gcm_nonce_budget_used",
                "Share of the 2^32 AES-GCM nonce budget a data key version has used in this process (warns at 0.5; rotate well before 1).",
                G,
            ),
            &budget,
        )?;
        family(
            e,
            (
                "pgcloak_key_provider_errors",
                "Key provider errors while loading data keys.",
                C,
            ),
            &f.provider,
        )?;
        counter(
            e,
            "pgcloak_decrypt_rate_limited",
            "Results withheld by [audit] max_decrypts_per_minute.",
            f.rate_limited,
        )?;
        let h = |x: Hist| &s.hists[x as usize];
        histogram(
            e,
            "pgcloak_added_seconds_to_upstream",
            "Time pgcloak spends handling what one read from a client brought, before it goes upstream.",
            h(Hist::AddedToUpstream),
        )?;
        histogram(
            e,
            "pgcloak_added_seconds_to_client",
            "Time pgcloak spends handling what one read from upstream brought, before it goes to the client.",
            h(Hist::AddedToClient),
        )?;
        histogram(
            e,
            "pgcloak_upstream_connect_seconds",
            "TCP and TLS connect to the upstream server.",
            h(Hist::UpstreamConnect),
        )?;
        histogram(
            e,
            "pgcloak_login_seconds",
            "Whole logins (client SCRAM, upstream connect and SCRAM).",
            h(Hist::Login),
        )?;
        self.encode_databases(e)
    }
}

impl Collected {
    fn encode_databases(&self, e: &mut DescriptorEncoder) -> Fmt {
        let (mut keys, mut cat, mut age, mut pending): (Rows, Rows, Rows, Rows) =
            Default::default();
        let mut plain: Rows = Default::default();
        for s in self.0.statuses() {
            let db = || vec![("database", s.database.clone())];
            keys.push((db(), s.keyring_generation as f64));
            cat.push((db(), s.catalog_generation as f64));
            let since = s.since_last_poll.unwrap_or(Duration::MAX);
            age.push((db(), since.as_secs_f64().min(1e9)));
            pending.push((db(), s.rules_columns as f64));
            plain.push((db(), s.pending.len() as f64));
        }
        family(
            e,
            (
                "pgcloak_keyring_generation",
                "Key ring reloads since start, per rules database.",
                G,
            ),
            &keys,
        )?;
        family(
            e,
            (
                "pgcloak_catalog_generation",
                "Catalog changes since start, per rules database.",
                G,
            ),
            &cat,
        )?;
        family(
            e,
            (
                "pgcloak_last_poll_age_seconds",
                "Seconds since the last successful key and catalog poll, per rules database.",
                G,
            ),
            &age,
        )?;
        family(
            e,
            (
                "pgcloak_rules_columns",
                "Encrypted columns in the rules, per rules database.",
                G,
            ),
            &pending,
        )?;
        family(
            e,
            (
                "pgcloak_pending_columns",
                "Rules columns still stored as plaintext (pending: run pgcloak migrate \
                 encrypt), per rules database.",
                G,
            ),
            &plain,
        )
    }
}
