//! What an analysis depends on besides the SQL text: the rules, the session's search_path and
//! a view of the live catalog (a leaf of `rewrite`).

use std::sync::Arc;

use crate::rules::{ColumnRule, Rules};

/// What the analysis needs to know about the live database.
pub trait CatalogView: Send + Sync {
    /// Columns of schema.table in attnum order (for INSERT without a column list); None = no
    /// such table.
    fn columns(&self, schema: &str, table: &str) -> Option<Vec<String>>;

    /// For a relation derived from a rules table (a partition, inheritance child or parent, a
    /// view or materialized view over one) that is not a rules table itself: that table, as
    /// `schema.table`.
    fn derived_base(&self, _schema: &str, _name: &str) -> Option<String> {
        None
    }

    /// The (lower-case) names of the relations [`CatalogView::derived_base`] knows and of the
    /// functions [`CatalogView::writer_function`] knows.
    fn derived_names(&self) -> &[String] {
        &[]
    }

    /// For a function whose body names a rules table or runs dynamic SQL (it could move a
    /// value into one unseen): what it names (`schema.table`, or `(dynamic SQL)`).
    fn writer_function(&self, _name: &str) -> Option<String> {
        None
    }

    /// True when a relation `schema.name` exists (known for relations named like a rules
    /// table: the rules tables and their namesakes in other schemas).
    fn relation_exists(&self, schema: &str, name: &str) -> bool {
        self.columns(schema, name).is_some()
    }

    /// For a rules column still stored as plaintext (*pending*, spec §3; left out of the
    /// served rules) or its migration shadow (`column$pgcloak`): its rule. DDL on either is
    /// refused.
    fn pending_rule(&self, _schema: &str, _table: &str, _column: &str) -> Option<Arc<ColumnRule>> {
        None
    }
}

/// A catalog that knows no table (tests, or before the control login loaded one).
#[derive(Debug, Default, Clone, Copy)]
pub struct EmptyCatalog;

impl CatalogView for EmptyCatalog {
    fn columns(&self, _schema: &str, _table: &str) -> Option<Vec<String>> {
        None
    }
}

/// Everything an analysis depends on besides the SQL text.
pub struct AnalysisContext<'a> {
    pub rules: &'a Rules,
    /// The session's resolved search_path, e.g. `["app", "public"]` (no `$user`).
    pub search_path: &'a [String],
    pub catalog: &'a dyn CatalogView,
    /// Send every name that could resolve to a rules table schema-qualified as it was
    /// resolved (always on when serving; unit tests of other constructs turn it off to keep
    /// their expected texts short).
    pub qualify: bool,
}
