//! `pgcloak check` (spec §1): validate the config and rules offline, then against the live
//! database — every rules table and column exists with storage type `bytea`, a data key
//! exists for every key name with the right algorithm, and the master key unwraps every
//! stored key. Every problem is collected and reported, not just the first.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use tokio_postgres::Client;

use super::keys::{KeysError, read_wrapped};
use crate::config::{Config, Rules, load_rules};
use crate::crypto::{Algorithm, MasterKey, master_key_source};

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
    MissingKey,
    KeyAlgorithm,
    WrongMasterKey,
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
            Self::MissingKey => "missing-key",
            Self::KeyAlgorithm => "key-algorithm",
            Self::WrongMasterKey => "wrong-master-key",
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
    fn new(kind: ProblemKind, message: impl Into<String>) -> Self {
        Problem {
            kind,
            message: message.into(),
        }
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
        if let Err(e) = load_rules(std::slice::from_ref(path)) {
            problems.push(Problem::new(ProblemKind::RulesFile, e.to_string()));
            files_ok = false;
        }
    }
    if files_ok && cfg.rules.len() > 1 {
        if let Err(e) = load_rules(&cfg.rules) {
            problems.push(Problem::new(ProblemKind::RulesFile, e.to_string()));
        }
    }
    let key_set = cfg.keys.master_key_env.is_some() || cfg.keys.master_key_file.is_some();
    if key_set || !cfg.rules.is_empty() {
        if let Err(e) = master_key_source(&cfg.keys).and_then(|s| s.load()) {
            problems.push(Problem::new(ProblemKind::MasterKey, e.to_string()));
        }
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

/// Online checks against the database the control login reaches.
pub async fn check_online(client: &Client, rules: &Rules, master: &MasterKey) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut tables: Vec<_> = rules.tables().collect();
    tables.sort_by(|a, b| (&a.schema, &a.table).cmp(&(&b.schema, &b.table)));
    for t in tables {
        let rows = match client.query(COLUMNS_SQL, &[&t.schema, &t.table]).await {
            Ok(rows) => rows,
            Err(e) => {
                problems.push(Problem::new(ProblemKind::Database, e.to_string()));
                continue;
            }
        };
        if rows.is_empty() {
            let msg = format!("table {}.{} does not exist", t.schema, t.table);
            problems.push(Problem::new(ProblemKind::MissingTable, msg));
            continue;
        }
        let cols: HashMap<String, (String, bool)> = rows
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
        for rule in &t.columns {
            match cols.get(&rule.column) {
                None => problems.push(Problem::new(
                    ProblemKind::MissingColumn,
                    format!("column {rule} does not exist"),
                )),
                Some((ty, false)) => problems.push(Problem::new(
                    ProblemKind::WrongStorageType,
                    format!("column {rule} is stored as {ty}; encrypted columns must be bytea"),
                )),
                Some(_) => {}
            }
        }
    }
    problems.extend(check_keys(client, rules, master).await);
    problems
}

async fn check_keys(client: &Client, rules: &Rules, master: &MasterKey) -> Vec<Problem> {
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
    for row in &rows {
        if let Err(e) = master.unwrap(row) {
            problems.push(Problem::new(ProblemKind::WrongMasterKey, e.to_string()));
        }
    }
    problems
}
