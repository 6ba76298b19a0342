//! The catalog of rules tables, loaded over the control login: for every rules table that
//! exists, its OID, and for each attnum the rule of an encrypted column plus the column list
//! in attnum order (for `INSERT` without a column list). Results are mapped to rules by
//! RowDescription's (table OID, attnum) through [`Catalog::rule`].
//!
//! It also lists the relations derived from rules tables — partitions, inheritance children and
//! parents, views and materialized views over them: statements naming one are refused, since
//! their rows carry ciphertext that pgcloak cannot map back to rules and writes through them
//! would not be encrypted.
//!
//! A rules column whose storage type is not `bytea` yet is *pending* (spec §3: data that
//! existed before its rule, awaiting `pgcloak migrate encrypt`): it is left out of the rules
//! the session analysis uses ([`Catalog::serving_rules`]), so its values pass through as the
//! plaintext they are. While `migrate encrypt` backfills its shadow column
//! (`column$pgcloak`, `bytea`), that shadow's attnum maps to the rule, so results read from it
//! are decrypted; after the switch renames the shadow to the column, a session still on this
//! catalog therefore decrypts it too until the next poll.
//!
//! [`SharedCatalog`] swaps a reloaded catalog in while sessions run; a [`CatalogReader`] reads
//! it with one atomic load per use (no lock on the hot path unless it changed).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use tokio_postgres::GenericClient;

use crate::config::{ColumnRule, Rules};
use crate::rewrite::CatalogView;

const CATALOG_SQL: &str = "SELECT n.nspname::text, c.relname::text, c.oid, a.attnum, a.attname::text, \
       coalesce(nullif(ty.typbasetype, 0), a.atttypid) = 'bytea'::regtype \
     FROM unnest($1::text[], $2::text[]) AS t(s, r) \
     JOIN pg_namespace n ON n.nspname = t.s \
     JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.r \
     JOIN pg_attribute a ON a.attrelid = c.oid \
     JOIN pg_type ty ON ty.oid = a.atttypid \
     WHERE a.attnum > 0 AND NOT a.attisdropped \
     ORDER BY c.oid, a.attnum";

/// Relations derived from rules tables that are not rules tables themselves: their partitions
/// and inheritance children (which hold rules-table rows), their parents (which route rows into
/// them and read them back), and views and materialized views over any of these, transitively:
/// (schema, relation, `schema.table` of the rules table it derives from).
const DERIVED_SQL: &str = "WITH RECURSIVE \
     down(oid, base) AS ( \
       SELECT c.oid, c.oid FROM pg_class c WHERE c.oid = ANY($1::oid[]) \
       UNION SELECT i.inhrelid, down.base FROM down JOIN pg_inherits i ON i.inhparent = down.oid), \
     up(oid, base) AS ( \
       SELECT c.oid, c.oid FROM pg_class c WHERE c.oid = ANY($1::oid[]) \
       UNION SELECT i.inhparent, up.base FROM up JOIN pg_inherits i ON i.inhrelid = up.oid), \
     rel(oid, base) AS ( \
       SELECT oid, base FROM down UNION SELECT oid, base FROM up \
       UNION SELECT r.ev_class, rel.base FROM rel \
       JOIN pg_depend d ON d.refobjid = rel.oid AND d.refclassid = 'pg_class'::regclass \
            AND d.classid = 'pg_rewrite'::regclass \
       JOIN pg_rewrite r ON r.oid = d.objid \
       WHERE r.ev_class <> rel.oid) \
     SELECT n.nspname::text, c.relname::text, bn.nspname::text || '.' || b.relname::text \
     FROM rel JOIN pg_class c ON c.oid = rel.oid JOIN pg_namespace n ON n.oid = c.relnamespace \
     JOIN pg_class b ON b.oid = rel.base JOIN pg_namespace bn ON bn.oid = b.relnamespace \
     WHERE rel.oid <> ALL($1::oid[]) \
     ORDER BY 1, 2, 3";

/// Every relation, in any schema but another session's temporary one, that shares a rules
/// table's name: (schema, name). Unqualified names resolve through the path to the first of
/// these, as PostgreSQL resolves them.
const NAMESAKES_SQL: &str = "SELECT n.nspname::text, c.relname::text \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relname = ANY($1::text[]) AND n.nspname !~ '^pg_(toast_)?temp_' \
     ORDER BY 1, 2";

/// Functions and procedures (not in the system schemas, not written in C) whose body names a
/// rules table or runs dynamic SQL: (schema, name, the rules table or `(dynamic SQL)`, OID).
/// A call of one could move a value into a rules table unseen, so calls are refused.
const WRITERS_SQL: &str = "SELECT n.nspname::text, p.proname::text, \
       COALESCE((SELECT t.s || '.' || t.r FROM unnest($1::text[], $2::text[]) AS t(s, r) \
                 WHERE position(t.r IN lower(p.prosrc)) > 0 LIMIT 1), '(dynamic SQL)'), p.oid \
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
     JOIN pg_language l ON l.oid = p.prolang \
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
       AND NOT (n.nspname = 'pgcloak' AND p.proname LIKE 'migrate\\_%') \
       AND l.lanname NOT IN ('c', 'internal') \
       AND (EXISTS (SELECT 1 FROM unnest($2::text[]) AS r(r) \
                    WHERE position(r.r IN lower(p.prosrc)) > 0) \
            OR lower(p.prosrc) ~ '\\mexecute\\M') \
     ORDER BY 1, 2";

/// Relations with a trigger (not a constraint's internal one) whose function is one of the
/// writer functions (OIDs from [`WRITERS_SQL`]): (schema, relation, function OID). A write to
/// one runs that function unseen, so they count as derived relations.
const TRIGGERED_SQL: &str = "SELECT DISTINCT n.nspname::text, c.relname::text, t.tgfoid \
     FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE NOT t.tgisinternal AND t.tgfoid = ANY($1::oid[]) \
     ORDER BY 1, 2, 3";

#[derive(Debug, Default, PartialEq, Eq)]
struct TableEntry {
    oid: u32,
    columns: Vec<String>,
}

/// Rules tables as they exist in the database now. Immutable once built.
#[derive(Debug, Default)]
pub struct Catalog {
    by_attr: HashMap<(u32, i16), Arc<ColumnRule>>,
    tables: HashMap<(String, String), TableEntry>,
    /// Relations derived from rules tables (see [`DERIVED_SQL`]): (schema, name) → the
    /// `schema.table` they derive from.
    derived: HashMap<(String, String), String>,
    /// Their names, for the fast "may this text name one" check.
    derived_names: Vec<String>,
    /// Relations named like a rules table (see [`NAMESAKES_SQL`]), rules tables included.
    namesakes: std::collections::HashSet<(String, String)>,
    /// Functions that may write a rules table (see [`WRITERS_SQL`]): name → what they name.
    writers: HashMap<String, String>,
    /// Their OIDs (a FunctionCall message names a function by OID).
    writer_oids: std::collections::HashSet<u32>,
    /// Rules columns still stored as plaintext (`schema.table.column`): served as plain.
    pending: std::collections::BTreeSet<String>,
    /// Their rules by (schema, table, column), for the DDL analysis (which refuses DDL on them).
    pending_rules: HashMap<(String, String, String), Arc<ColumnRule>>,
    /// The rules less the pending columns, when there are any.
    serving: Option<Arc<Rules>>,
}

/// The suffix of the shadow column `pgcloak migrate` backfills (`email` → `email$pgcloak`).
pub const SHADOW_SUFFIX: &str = "$pgcloak";

impl PartialEq for Catalog {
    fn eq(&self, other: &Self) -> bool {
        self.tables == other.tables
            && self.derived == other.derived
            && self.namesakes == other.namesakes
            && self.writers == other.writers
            && self.writer_oids == other.writer_oids
            && self.pending == other.pending
            && self.by_attr.len() == other.by_attr.len()
            && self
                .by_attr
                .iter()
                .all(|(k, v)| other.by_attr.get(k).is_some_and(|o| Arc::ptr_eq(o, v)))
    }
}

impl Catalog {
    /// Builds the catalog from rows of (schema, table, table OID, attnum, column name), every
    /// rules column stored as `bytea`.
    pub fn from_rows(
        rules: &Rules,
        rows: impl IntoIterator<Item = (String, String, u32, i16, String)>,
    ) -> Self {
        let typed = rows
            .into_iter()
            .map(|(s, t, o, a, c)| (s, t, o, a, c, true));
        Self::from_typed_rows(rules, typed)
    }

    /// As [`Catalog::from_rows`], each row also saying whether the column is stored as
    /// `bytea`: rules columns that are not are pending, and a `bytea` shadow of a pending
    /// column (`column$pgcloak`) maps to its rule.
    pub fn from_typed_rows(
        rules: &Rules,
        rows: impl IntoIterator<Item = (String, String, u32, i16, String, bool)>,
    ) -> Self {
        let mut cat = Catalog::default();
        let mut shadows = Vec::new();
        for (schema, table, oid, attnum, column, bytea) in rows {
            if let Some(rule) = rules.column(&schema, &table, &column) {
                if bytea {
                    cat.by_attr.insert((oid, attnum), rule.clone());
                } else {
                    cat.pending.insert(rule.qualified());
                    let at = (schema.clone(), table.clone(), column.clone());
                    cat.pending_rules.insert(at, rule.clone());
                }
            } else if let Some(base) = column.strip_suffix(SHADOW_SUFFIX)
                && let (Some(rule), true) = (rules.column(&schema, &table, base), bytea)
            {
                shadows.push((oid, attnum, rule.clone()));
            }
            let entry = cat.tables.entry((schema, table)).or_default();
            entry.oid = oid;
            entry.columns.push(column);
        }
        for (oid, attnum, rule) in shadows {
            if cat.pending.contains(&rule.qualified()) {
                cat.by_attr.insert((oid, attnum), rule);
            }
        }
        if !cat.pending.is_empty() {
            let drop = cat.pending.iter().cloned().collect();
            cat.serving = Some(Arc::new(rules.without(&drop)));
        }
        cat
    }

    /// The rules the analysis serves: the configured ones less the pending columns (`None`:
    /// no column is pending, serve the configured rules).
    pub fn serving_rules(&self) -> Option<&Arc<Rules>> {
        self.serving.as_ref()
    }

    /// Rules columns still stored as plaintext (`schema.table.column`), sorted.
    pub fn pending(&self) -> impl Iterator<Item = &str> {
        self.pending.iter().map(String::as_str)
    }

    /// Reads the catalog of every rules table over `client`.
    pub async fn load(
        client: &impl GenericClient,
        rules: &Rules,
    ) -> Result<Self, tokio_postgres::Error> {
        let (schemas, tables): (Vec<String>, Vec<String>) = rules
            .tables()
            .map(|t| (t.schema.clone(), t.table.clone()))
            .unzip();
        let rows = client.query(CATALOG_SQL, &[&schemas, &tables]).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push((
                r.try_get::<_, String>(0)?,
                r.try_get::<_, String>(1)?,
                r.try_get::<_, u32>(2)?,
                r.try_get::<_, i16>(3)?,
                r.try_get::<_, String>(4)?,
                r.try_get::<_, bool>(5)?,
            ));
        }
        let mut cat = Self::from_typed_rows(rules, out);
        let oids: Vec<u32> = cat.tables.values().map(|t| t.oid).collect();
        let mut derived = Vec::new();
        for r in client.query(DERIVED_SQL, &[&oids]).await? {
            derived.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
        }
        cat.set_derived(derived);
        let names: Vec<String> = rules.table_names().to_vec();
        for r in client.query(NAMESAKES_SQL, &[&names]).await? {
            cat.namesakes.insert((r.try_get(0)?, r.try_get(1)?));
        }
        let mut writers = Vec::new();
        let mut by_oid: HashMap<u32, String> = HashMap::new();
        for r in client.query(WRITERS_SQL, &[&schemas, &tables]).await? {
            let base = r.try_get::<_, String>(2)?;
            by_oid.insert(r.try_get::<_, u32>(3)?, base.clone());
            writers.push((r.try_get::<_, String>(1)?, base));
        }
        cat.set_writers(writers);
        cat.writer_oids = by_oid.keys().copied().collect();
        let fn_oids: Vec<u32> = by_oid.keys().copied().collect();
        let mut triggered = Vec::new();
        for r in client.query(TRIGGERED_SQL, &[&fn_oids]).await? {
            let base = by_oid.get(&r.try_get::<_, u32>(2)?).cloned();
            let base = base.unwrap_or_else(|| "(dynamic SQL)".to_owned());
            triggered.push((r.try_get(0)?, r.try_get(1)?, base));
        }
        cat.set_derived(triggered);
        Ok(cat)
    }

    /// Records the functions that may write a rules table: (name, what their body names).
    pub fn set_writers(&mut self, writers: impl IntoIterator<Item = (String, String)>) {
        for (name, base) in writers {
            self.writers.entry(name).or_insert(base);
        }
        self.index_names();
    }

    /// Records a relation named like a rules table (tests).
    pub fn add_namesake(&mut self, schema: &str, name: &str) {
        self.namesakes.insert((schema.to_owned(), name.to_owned()));
    }

    /// Records the relations derived from rules tables: (schema, name, `schema.table`).
    pub fn set_derived(&mut self, derived: impl IntoIterator<Item = (String, String, String)>) {
        for (schema, name, base) in derived {
            self.derived.entry((schema, name)).or_insert(base);
        }
        self.index_names();
    }

    /// The names of derived relations and writer functions, for the fast path.
    fn index_names(&mut self) {
        let mut names: Vec<String> = (self.derived.keys().map(|(_, v)| v))
            .chain(self.writers.keys())
            .map(|v| v.to_ascii_lowercase())
            .collect();
        names.sort_unstable();
        names.dedup();
        self.derived_names = names;
    }

    /// True when the function with this OID may write a rules table (see [`WRITERS_SQL`]).
    pub fn writer_oid(&self, oid: u32) -> bool {
        self.writer_oids.contains(&oid)
    }

    /// The rule of the encrypted column at (table OID, attnum), if it is one.
    #[inline]
    pub fn rule(&self, table_oid: u32, attnum: i16) -> Option<&Arc<ColumnRule>> {
        if table_oid == 0 || self.by_attr.is_empty() {
            return None;
        }
        self.by_attr.get(&(table_oid, attnum))
    }

    /// Number of rules tables found in the database.
    pub fn table_count(&self) -> usize {
        self.tables.len()
    }
}

impl CatalogView for Catalog {
    fn columns(&self, schema: &str, table: &str) -> Option<Vec<String>> {
        self.tables
            .get(&(schema.to_owned(), table.to_owned()))
            .map(|t| t.columns.clone())
    }

    fn derived_base(&self, schema: &str, name: &str) -> Option<String> {
        self.derived
            .get(&(schema.to_owned(), name.to_owned()))
            .cloned()
    }

    fn derived_names(&self) -> &[String] {
        &self.derived_names
    }

    fn writer_function(&self, name: &str) -> Option<String> {
        self.writers.get(name).cloned()
    }

    fn pending_rule(&self, schema: &str, table: &str, column: &str) -> Option<Arc<ColumnRule>> {
        let base = column.strip_suffix(SHADOW_SUFFIX).unwrap_or(column);
        let at = (schema.to_owned(), table.to_owned(), base.to_owned());
        self.pending_rules.get(&at).cloned()
    }

    fn relation_exists(&self, schema: &str, name: &str) -> bool {
        self.tables
            .contains_key(&(schema.to_owned(), name.to_owned()))
            || self
                .namesakes
                .contains(&(schema.to_owned(), name.to_owned()))
    }
}

/// The serving catalog, replaceable while sessions run.
#[derive(Debug, Default)]
pub struct SharedCatalog {
    current: RwLock<Arc<Catalog>>,
    generation: AtomicU64,
}

impl SharedCatalog {
    pub fn new(catalog: Catalog) -> Self {
        SharedCatalog {
            current: RwLock::new(Arc::new(catalog)),
            generation: AtomicU64::new(0),
        }
    }

    /// The current catalog.
    pub fn current(&self) -> Arc<Catalog> {
        self.current.read().clone()
    }

    /// Swaps in `catalog` when it differs from the current one; true when it changed.
    pub fn replace_if_changed(&self, catalog: Catalog) -> bool {
        let mut slot = self.current.write();
        if **slot == catalog {
            return false;
        }
        *slot = Arc::new(catalog);
        self.generation.fetch_add(1, Ordering::Release);
        true
    }

    /// Bumped by every change swapped in.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A per-session reader.
    pub fn reader(self: &Arc<Self>) -> CatalogReader {
        CatalogReader {
            generation: self.generation.load(Ordering::Acquire),
            catalog: self.current(),
            shared: self.clone(),
        }
    }
}

/// A session's cached handle on a [`SharedCatalog`].
#[derive(Debug)]
pub struct CatalogReader {
    shared: Arc<SharedCatalog>,
    catalog: Arc<Catalog>,
    generation: u64,
}

impl CatalogReader {
    /// The current catalog, refreshed if it was replaced since the last call.
    #[inline]
    pub fn get(&mut self) -> &Arc<Catalog> {
        self.get_with_generation().0
    }

    /// The current catalog (refreshed as by [`CatalogReader::get`]) and its generation.
    #[inline]
    pub fn get_with_generation(&mut self) -> (&Arc<Catalog>, u64) {
        let g = self.shared.generation.load(Ordering::Acquire);
        if g != self.generation {
            self.catalog = self.shared.current();
            self.generation = g;
        }
        (&self.catalog, self.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_rules;
    use std::path::Path;

    fn rules() -> Rules {
        let text = "[tables.patients]\nssn = { type = \"text\", mode = \"deterministic\" }\n";
        Rules::from_columns(parse_rules(text, Path::new("t.toml")).unwrap()).unwrap()
    }

    fn row(oid: u32, attnum: i16, col: &str) -> (String, String, u32, i16, String) {
        ("public".into(), "patients".into(), oid, attnum, col.into())
    }

    #[test]
    fn pending_columns_are_served_plain_and_their_shadow_decrypted() {
        let r = rules();
        let typed = |attnum: i16, col: &str, bytea: bool| {
            let (s, t, o, a, c) = row(100, attnum, col);
            (s, t, o, a, c, bytea)
        };
        // ssn still text, its shadow bytea: pending, the shadow maps to the rule.
        let cat = Catalog::from_typed_rows(
            &r,
            vec![
                typed(1, "id", false),
                typed(2, "ssn", false),
                typed(3, "ssn$pgcloak", true),
            ],
        );
        assert_eq!(cat.pending().collect::<Vec<_>>(), ["public.patients.ssn"]);
        assert!(
            cat.rule(100, 2).is_none(),
            "the plaintext column is not decrypted"
        );
        assert_eq!(cat.rule(100, 3).unwrap().column, "ssn");
        let serving = cat.serving_rules().expect("rules less the pending column");
        assert!(serving.column("public", "patients", "ssn").is_none());
        assert!(serving.table("public", "patients").is_some());
        // After the switch: ssn is bytea (the renamed shadow's attnum), nothing pending.
        let switched =
            Catalog::from_typed_rows(&r, vec![typed(1, "id", false), typed(3, "ssn", true)]);
        assert!(switched.serving_rules().is_none() && switched.pending().next().is_none());
        assert!(switched.rule(100, 3).is_some());
        assert!(switched != cat, "the switch changes the catalog");
        // A bytea column named like a shadow of a column that is not pending maps to nothing.
        let stray = Catalog::from_typed_rows(
            &r,
            vec![typed(2, "ssn", true), typed(3, "ssn$pgcloak", true)],
        );
        assert!(stray.rule(100, 3).is_none() && stray.rule(100, 2).is_some());
    }

    #[test]
    fn maps_attributes_and_columns_and_swaps_on_change() {
        let r = rules();
        let cat = Catalog::from_rows(&r, vec![row(100, 1, "id"), row(100, 2, "ssn")]);
        assert_eq!(cat.rule(100, 2).unwrap().column, "ssn");
        assert!(
            cat.rule(100, 1).is_none() && cat.rule(0, 2).is_none() && cat.rule(101, 2).is_none()
        );
        assert_eq!(
            cat.columns("public", "patients"),
            Some(vec!["id".into(), "ssn".into()])
        );
        assert_eq!(cat.columns("public", "other"), None);

        let shared = Arc::new(SharedCatalog::new(cat));
        let mut reader = shared.reader();
        assert!(reader.get().rule(100, 2).is_some());
        let same = Catalog::from_rows(&r, vec![row(100, 1, "id"), row(100, 2, "ssn")]);
        assert!(!shared.replace_if_changed(same));
        // Table recreated: new OID.
        let moved = Catalog::from_rows(&r, vec![row(200, 1, "id"), row(200, 2, "ssn")]);
        assert!(shared.replace_if_changed(moved));
        assert!(reader.get().rule(100, 2).is_none());
        assert!(reader.get().rule(200, 2).is_some());
        // A relation derived from a rules table appearing is a change too.
        let mut viewed = Catalog::from_rows(&r, vec![row(200, 1, "id"), row(200, 2, "ssn")]);
        viewed.set_derived([("app".into(), "P_View".into(), "public.patients".into())]);
        assert_eq!(
            viewed.derived_base("app", "P_View").as_deref(),
            Some("public.patients")
        );
        assert_eq!(viewed.derived_names(), ["p_view".to_owned()]);
        assert!(shared.replace_if_changed(viewed));
    }
}
