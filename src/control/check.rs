//! `pgcloak check` (spec §1): validate the config and rules offline, then against each
//! database a rules file names — every rules table and column exists with storage type
//! `bytea`, a data key exists for every key name with the right algorithm, and the key
//! provider is reachable, authenticated and unwraps every stored key (on a permission error
//! it prints the least-privilege policy the config needs). Every problem is collected and reported, not just the first.
//! `serve` runs the same online checks at start ([`Problem::blocks_serving`]) and `keys init`
//! the table checks ([`check_tables`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use tokio_postgres::Client;

use super::keys::{KeysError, read_wrapped};
use super::providers::{self, KeyProvider, ProviderError};
use crate::config::keys::ProviderKind;
use crate::config::{Config, Rules, load_rules, parse_rules_file};
use crate::crypto::Algorithm;

/// What kind of problem `check` found; [`ProblemKind::name`] is what gets printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    RulesFile,
    MasterKey,
    UnreadableFile,
    ControlPassword,
    Database,
    MissingKeyTable,
    MissingTable,
    MissingColumn,
    WrongStorageType,
    /// A rules column still stored as its plaintext type: data that existed before its rule,
    /// awaiting `pgcloak migrate encrypt` (served as plaintext until then, spec §3).
    Pending,
    MissingKey,
    KeyAlgorithm,
    WrongMasterKey,
    KeyProvider,
    KeyUnwrap,
}

impl ProblemKind {
    /// A stable, kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::RulesFile => "rules-file",
            Self::MasterKey => "master-key",
            Self::UnreadableFile => "unreadable-file",
            Self::ControlPassword => "control-password",
            Self::Database => "database",
            Self::MissingKeyTable => "missing-key-table",
            Self::MissingTable => "missing-table",
            Self::MissingColumn => "missing-column",
            Self::WrongStorageType => "wrong-storage-type",
            Self::Pending => "pending",
            Self::MissingKey => "missing-key",
            Self::KeyAlgorithm => "key-algorithm",
            Self::WrongMasterKey => "wrong-master-key",
            Self::KeyProvider => "key-provider",
            Self::KeyUnwrap => "key-unwrap",
        }
    }
}

/// One problem, with a message naming the object concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub message: String,
}

impl Problem {
    pub fn new(kind: ProblemKind, message: impl Into<String>) -> Self {
        Problem {
            kind,
            message: message.into(),
        }
    }

    /// Whether `serve` refuses to start over this problem. A rules table that does not
    /// exist yet does not (DDL through pgcloak will create it with `bytea` rules columns), nor
    /// does a pending column (served as the plaintext it holds until `pgcloak migrate
    /// encrypt` switches it; a loud warning).
    pub fn blocks_serving(&self) -> bool {
        !matches!(self.kind, ProblemKind::MissingTable | ProblemKind::Pending)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

/// Offline checks of an already parsed config: each rules file (then all together), the
/// master key source, the files the config names, the control password variable.
pub fn check_offline(cfg: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut files_ok = true;
    for path in &cfg.rules {
        let parsed = std::fs::read_to_string(path)
            .map_err(|source| crate::config::RulesError::Read {
                path: path.clone(),
                source,
            })
            .and_then(|text| parse_rules_file(&text, path))
            .and_then(|_| load_rules(std::slice::from_ref(path)));
        if let Err(e) = parsed {
            problems.push(Problem::new(ProblemKind::RulesFile, e.to_string()));
            files_ok = false;
        }
    }
    if files_ok
        && cfg.rules.len() > 1
        && let Err(e) = load_rules(&cfg.rules)
    {
        problems.push(Problem::new(ProblemKind::RulesFile, e.to_string()));
    }
    let key_set = cfg.keys.master_key_env.is_some() || cfg.keys.master_key_file.is_some();
    let local = cfg.keys.kind() == ProviderKind::Local;
    if (key_set || !cfg.rules.is_empty() || !local)
        && let Err(e) = providers::from_config(&cfg.keys)
    {
        let kind = if local {
            ProblemKind::MasterKey
        } else {
            ProblemKind::KeyProvider
        };
        let message = if local { e.cause } else { e.to_string() };
        problems.push(Problem::new(kind, message));
    }
    let files = [
        ("listen.tls_cert", Some(&cfg.listen.tls_cert)),
        ("listen.tls_key", Some(&cfg.listen.tls_key)),
        ("listen.tls_client_ca", cfg.listen.tls_client_ca.as_ref()),
        ("upstream.tls_ca", Some(&cfg.upstream.tls_ca)),
        ("auth.users_file", cfg.auth.users_file.as_ref()),
    ];
    for (key, path) in files {
        if let Some(problem) = path.and_then(|p| unreadable(key, p)) {
            problems.push(problem);
        }
    }
    if let Err(e) = cfg.control_password() {
        problems.push(Problem::new(ProblemKind::ControlPassword, e.to_string()));
    }
    problems
}

fn unreadable(key: &str, path: &Path) -> Option<Problem> {
    std::fs::File::open(path).err().map(|e| {
        Problem::new(
            ProblemKind::UnreadableFile,
            format!("{key}: cannot read {}: {e}", path.display()),
        )
    })
}

/// One catalog row per column of `schema.table` (no rows: no such table).
const COLUMNS_SQL: &str = "
SELECT a.attname::text,
       format_type(a.atttypid, a.atttypmod),
       coalesce(nullif(t.typbasetype, 0), a.atttypid) = 'bytea'::regtype
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')";

/// What the table checks of one database found.
#[derive(Debug, Default)]
pub struct TableReport {
    /// Missing tables (warnings), missing columns and pending columns (warnings), in table
    /// order.
    pub problems: Vec<Problem>,
    /// The data keys of the columns that are missing (`keys init` creates none of them;
    /// pending columns get theirs: `migrate encrypt` needs it).
    pub wrong_keys: BTreeSet<String>,
}

/// Every rules table and column exists with storage type `bytea`.
pub async fn check_tables(client: &Client, rules: &Rules) -> TableReport {
    let mut report = TableReport::default();
    let mut tables: Vec<_> = rules.tables().collect();
    tables.sort_by(|a, b| (&a.schema, &a.table).cmp(&(&b.schema, &b.table)));
    for t in tables {
        let rows = match client.query(COLUMNS_SQL, &[&t.schema, &t.table]).await {
            Ok(rows) => rows,
            Err(e) => {
                let p = Problem::new(ProblemKind::Database, e.to_string());
                report.problems.push(p);
                report
                    .wrong_keys
                    .extend(t.columns.iter().map(|c| c.key.clone()));
                continue;
            }
        };
        if rows.is_empty() {
            let msg = format!("table {}.{} does not exist", t.schema, t.table);
            report
                .problems
                .push(Problem::new(ProblemKind::MissingTable, msg));
            continue;
        }
        let cols: HashMap<String, (String, bool)> = rows
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
        for rule in &t.columns {
            let problem = match cols.get(&rule.column) {
                None => Problem::new(
                    ProblemKind::MissingColumn,
                    format!("column {rule} does not exist"),
                ),
                Some((ty, false)) => {
                    report.problems.push(Problem::new(
                        ProblemKind::Pending,
                        format!(
                            "column {rule} is stored as {ty}, not yet encrypted: its values pass \
                             through as plaintext; run `pgcloak migrate encrypt --column {rule}`"
                        ),
                    ));
                    continue;
                }
                Some(_) => continue,
            };
            report.problems.push(problem);
            report.wrong_keys.insert(rule.key.clone());
        }
    }
    report
}

/// Online checks against the database the control login `client` reaches: its tables
/// ([`check_tables`]), then its data keys.
pub async fn check_online(
    client: &Client,
    rules: &Rules,
    provider: &dyn KeyProvider,
) -> Vec<Problem> {
    let mut problems = check_tables(client, rules).await.problems;
    problems.extend(check_keys(client, rules, provider).await);
    problems
}

/// A provider failure as a problem; a permission error carries the policy the config needs.
pub fn provider_problem(provider: &dyn KeyProvider, e: &ProviderError) -> Problem {
    let local = provider.kind() == ProviderKind::Local;
    let kind = match (&e.kind, local) {
        (providers::FailureKind::Unwrap { .. }, true) => ProblemKind::WrongMasterKey,
        (providers::FailureKind::Unwrap { .. }, false) => ProblemKind::KeyUnwrap,
        _ => ProblemKind::KeyProvider,
    };
    let mut message = if local {
        e.cause.clone()
    } else {
        e.to_string()
    };
    if e.is_denied() {
        message.push_str("\n  the least-privilege policy this config needs:\n");
        for line in provider.policy().lines() {
            message.push_str("    ");
            message.push_str(line);
            message.push('\n');
        }
    }
    Problem::new(kind, message)
}

async fn check_keys(client: &Client, rules: &Rules, provider: &dyn KeyProvider) -> Vec<Problem> {
    // Reachable, authenticated, and the key wraps and unwraps (also before `keys init`).
    let mut reachable = Vec::new();
    if provider.kind() != ProviderKind::Local
        && let Err(e) = provider.verify().await
    {
        reachable.push(provider_problem(provider, &e));
    }
    let mut problems = check_stored_keys(client, rules, provider, reachable.is_empty()).await;
    reachable.append(&mut problems);
    reachable
}

/// The stored keys: present for every rules key, right algorithm, and (when the provider
/// answers) every one unwraps.
async fn check_stored_keys(
    client: &Client,
    rules: &Rules,
    provider: &dyn KeyProvider,
    unwrap: bool,
) -> Vec<Problem> {
    let rows = match read_wrapped(client).await {
        Ok(rows) => rows,
        Err(KeysError::NotInitialized) => {
            return vec![Problem::new(
                ProblemKind::MissingKeyTable,
                "table pgcloak.data_keys does not exist: run `pgcloak keys init`",
            )];
        }
        Err(e) => return vec![Problem::new(ProblemKind::Database, e.to_string())],
    };
    let mut problems = Vec::new();
    let wanted: BTreeMap<&str, Algorithm> = rules
        .keys()
        .filter_map(|(k, cols)| Some((k, Algorithm::for_mode(cols.first()?.mode))))
        .collect();
    for (name, algorithm) in wanted {
        let mine: Vec<_> = rows.iter().filter(|r| r.name == name).collect();
        if mine.is_empty() {
            problems.push(Problem::new(
                ProblemKind::MissingKey,
                format!("data key {name} does not exist: run `pgcloak keys init`"),
            ));
        }
        for r in mine.iter().filter(|r| r.algorithm != algorithm.name()) {
            problems.push(Problem::new(
                ProblemKind::KeyAlgorithm,
                format!(
                    "data key {name} v{} is {}, but its columns' mode needs {}",
                    r.version,
                    r.algorithm,
                    algorithm.name()
                ),
            ));
        }
    }
    if !unwrap {
        return problems;
    }
    for row in &rows {
        if let Err(e) = provider.unwrap(row).await {
            problems.push(provider_problem(provider, &e));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_reports_every_problem() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.toml");
        std::fs::write(
            &bad,
            "database = \"app\"\n[tables.t]\nc = { type = \"nope\", mode = \"randomized\" }",
        )
        .unwrap();
        let nodb = dir.path().join("nodb.toml");
        std::fs::write(
            &nodb,
            "[tables.t]\nc = { type = \"text\", mode = \"randomized\" }",
        )
        .unwrap();
        let key = dir.path().join("master.key");
        std::fs::write(&key, "c2hvcnQ=").unwrap();
        let text = format!(
            r#"rules = ["bad.toml", "missing.toml", "nodb.toml"]
[listen]
address = "127.0.0.1:6432"
tls_cert = "nope.crt"
tls_key = "nope.key"
[upstream]
host = "db"
tls_ca = "ca.crt"
[control]
user = "pgcloak"
password_env = "PGCLOAK_TEST_SURELY_UNSET_PW"
[keys]
master_key_file = "{}"
"#,
            key.display()
        );
        let cfg = Config::from_str_at(&text, &dir.path().join("pgcloak.toml")).unwrap();
        let ps = check_offline(&cfg);
        let count = |k| ps.iter().filter(|p| p.kind == k).count();
        assert_eq!(count(ProblemKind::RulesFile), 3, "{ps:?}");
        assert!(
            ps.iter()
                .any(|p| p.message.contains("nodb.toml") && p.message.contains("no database")),
            "{ps:?}"
        );
        assert_eq!(count(ProblemKind::MasterKey), 1, "{ps:?}");
        assert_eq!(count(ProblemKind::UnreadableFile), 3, "{ps:?}");
        assert_eq!(count(ProblemKind::ControlPassword), 1, "{ps:?}");
        assert!(ps.iter().any(|p| p.message.contains("\"nope\"")), "{ps:?}");
    }
}
