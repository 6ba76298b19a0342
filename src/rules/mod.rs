//! The compiled rules index (sans-IO core): which (schema, table, column) is encrypted, as
//! which logical type, in which mode, under which data key, and how SQL identifiers are read
//! ([`ident`]). `config` parses the TOML rules files and builds [`Rules`] from them (and
//! re-exports these types under their old `config` paths); `crypto` and `rewrite` read them
//! from here, so the core never depends on `config`.

pub mod ident;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::codec::LogicalType;

/// How a column is encrypted (spec §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// AES-256-GCM with a fresh 96-bit nonce per value: no search.
    Randomized,
    /// AES-SIV (RFC 5297): equal plaintexts give equal ciphertexts, so `=` works.
    Deterministic,
}

impl Mode {
    /// The name used in rules files.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Randomized => "randomized",
            Mode::Deterministic => "deterministic",
        }
    }
}

/// One encrypted column. Names are stored as PostgreSQL stores them (already case-folded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnRule {
    pub schema: String,
    pub table: String,
    pub column: String,
    pub ty: LogicalType,
    pub mode: Mode,
    /// The data key name; defaults to `schema.table.column`.
    pub key: String,
}

impl ColumnRule {
    /// `schema.table.column`, the name used in messages and as the default key name.
    pub fn qualified(&self) -> String {
        format!("{}.{}.{}", self.schema, self.table, self.column)
    }
}

impl fmt::Display for ColumnRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.schema, self.table, self.column)
    }
}

/// The encrypted columns of one table, in rules-file order.
#[derive(Clone, Debug, Default)]
pub struct TableRules {
    pub schema: String,
    pub table: String,
    pub columns: Vec<Arc<ColumnRule>>,
}

impl TableRules {
    /// The rule for `column` (already case-folded), if it is encrypted.
    pub fn column(&self, column: &str) -> Option<&Arc<ColumnRule>> {
        self.columns.iter().find(|c| c.column == column)
    }
}

/// A problem building the rules index from columns.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RulesIndexError {
    #[error("column {0} is listed twice")]
    Duplicate(String),
    #[error(
        "data key {key} is shared by columns with different modes or types ({a} and {b}); columns that share a key must have the same mode and type"
    )]
    KeyConflict { key: String, a: String, b: String },
}

/// The compiled, immutable index of every rules file.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    tables: HashMap<(String, String), TableRules>,
    by_key: HashMap<String, Vec<Arc<ColumnRule>>>,
    /// Every table name (unqualified, case-folded), for a cheap "might this SQL touch a rules
    /// table" pre-check.
    table_names: Vec<String>,
}

impl Rules {
    /// No encrypted columns: every statement passes through.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Builds the index, rejecting duplicate columns and keys shared by columns whose mode or
    /// type differ.
    pub fn from_columns(columns: Vec<ColumnRule>) -> Result<Self, RulesIndexError> {
        let mut rules = Rules::default();
        for col in columns {
            let col = Arc::new(col);
            let entry = rules
                .tables
                .entry((col.schema.clone(), col.table.clone()))
                .or_insert_with(|| TableRules {
                    schema: col.schema.clone(),
                    table: col.table.clone(),
                    columns: Vec::new(),
                });
            if entry.column(&col.column).is_some() {
                return Err(RulesIndexError::Duplicate(col.qualified()));
            }
            entry.columns.push(col.clone());
            let sharing = rules.by_key.entry(col.key.clone()).or_default();
            if let Some(first) = sharing.first()
                && (first.mode != col.mode || first.ty != col.ty)
            {
                return Err(RulesIndexError::KeyConflict {
                    key: col.key.clone(),
                    a: first.qualified(),
                    b: col.qualified(),
                });
            }
            sharing.push(col.clone());
            if !rules.table_names.contains(&col.table) {
                rules.table_names.push(col.table.clone());
            }
        }
        Ok(rules)
    }

    /// True when no column is encrypted.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// The encrypted columns of `schema.table`, if any.
    pub fn table(&self, schema: &str, table: &str) -> Option<&TableRules> {
        self.tables.get(&(schema.to_owned(), table.to_owned()))
    }

    /// The rule for one column, if it is encrypted.
    pub fn column(&self, schema: &str, table: &str, column: &str) -> Option<&Arc<ColumnRule>> {
        self.table(schema, table)?.column(column)
    }

    /// Every table that has encrypted columns.
    pub fn tables(&self) -> impl Iterator<Item = &TableRules> {
        self.tables.values()
    }

    /// Every encrypted column.
    pub fn columns(&self) -> impl Iterator<Item = &Arc<ColumnRule>> {
        self.tables.values().flat_map(|t| t.columns.iter())
    }

    /// Every data key name with the columns that use it.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &[Arc<ColumnRule>])> {
        self.by_key.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Unqualified names of every rules table (case-folded). A SQL text that contains none of
    /// them case-insensitively cannot name a rules table.
    pub fn table_names(&self) -> &[String] {
        &self.table_names
    }

    /// These rules less the columns `drop` names (`schema.table.column`), the same rule
    /// objects otherwise: what is served while those columns are still plaintext in the
    /// database (*pending*, spec §3). Tables keep their entry even with no column left.
    pub fn without(&self, drop: &std::collections::HashSet<String>) -> Rules {
        let mut out = self.clone();
        for t in out.tables.values_mut() {
            t.columns.retain(|c| !drop.contains(&c.qualified()));
        }
        for cols in out.by_key.values_mut() {
            cols.retain(|c| !drop.contains(&c.qualified()));
        }
        out.by_key.retain(|_, cols| !cols.is_empty());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(t: &str, c: &str, mode: Mode, key: Option<&str>) -> ColumnRule {
        ColumnRule {
            schema: "public".into(),
            table: t.into(),
            column: c.into(),
            ty: LogicalType::Text,
            mode,
            key: key.map(str::to_owned).unwrap_or(format!("public.{t}.{c}")),
        }
    }

    #[test]
    fn index_finds_columns_and_rejects_duplicates() {
        let r = Rules::from_columns(vec![
            col("p", "ssn", Mode::Deterministic, None),
            col("p", "dx", Mode::Randomized, None),
        ])
        .unwrap();
        assert_eq!(
            r.column("public", "p", "ssn").unwrap().mode,
            Mode::Deterministic
        );
        assert!(r.column("public", "p", "name").is_none());
        assert!(r.table("other", "p").is_none());
        let dup = Rules::from_columns(vec![
            col("p", "ssn", Mode::Deterministic, None),
            col("p", "ssn", Mode::Randomized, None),
        ]);
        assert_eq!(
            dup.unwrap_err(),
            RulesIndexError::Duplicate("public.p.ssn".into())
        );
    }

    #[test]
    fn shared_key_needs_same_mode() {
        let err = Rules::from_columns(vec![
            col("a", "x", Mode::Deterministic, Some("k")),
            col("b", "y", Mode::Randomized, Some("k")),
        ]);
        assert!(matches!(err, Err(RulesIndexError::KeyConflict { .. })));
    }
}
