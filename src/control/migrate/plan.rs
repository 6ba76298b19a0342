//! What a migration of one column will do, found out before anything changes: the primary key
//! it walks, the shadow column, the indexes to rebuild, and every dependent object it refuses
//! (with why and what to do instead). `--dry-run` prints [`Plan::describe`].

use std::sync::Arc;

use tokio_postgres::Client;

use super::{MigrateError, quote};
use crate::config::{ColumnRule, Mode};
use crate::control::catalog::SHADOW_SUFFIX;

/// Which way a column goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Plaintext type → `bytea` envelopes.
    Encrypt,
    /// `bytea` envelopes → the plaintext type.
    Decrypt,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Encrypt => "encrypt",
            Direction::Decrypt => "decrypt",
        }
    }
}

/// An index on the column, rebuilt on the shadow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexPlan {
    /// The existing index's name.
    pub name: String,
    pub unique: bool,
    /// The UNIQUE constraint it backs, re-attached at the switch.
    pub constraint: Option<String>,
}

impl IndexPlan {
    /// The name of the shadow's index until the switch.
    pub fn shadow_name(&self) -> String {
        let mut base = self.name.clone();
        base.truncate(63 - SHADOW_SUFFIX.len());
        format!("{base}{SHADOW_SUFFIX}")
    }
}

/// Everything a migration of one column needs to know.
#[derive(Clone, Debug)]
pub struct Plan {
    pub rule: Arc<ColumnRule>,
    pub direction: Direction,
    /// `"schema"."table"`.
    pub table: String,
    /// The column, quoted.
    pub column: String,
    /// The shadow column, quoted.
    pub shadow: String,
    /// Primary-key columns, (quoted name, type) in key order.
    pub pk: Vec<(String, String)>,
    /// The column's current type (`format_type`).
    pub source_type: String,
    /// The type the column ends with.
    pub target_type: String,
    pub not_null: bool,
    pub indexes: Vec<IndexPlan>,
    /// Indexes of a randomized column that go with the plaintext column and are not rebuilt.
    pub dropped: Vec<String>,
    /// Estimated rows (`reltuples`).
    pub estimated_rows: i64,
    /// The shadow column exists already (a resumed run).
    pub shadow_exists: bool,
}

const TABLE_SQL: &str = "SELECT c.oid, c.relkind::text, c.relispartition, \
       greatest(c.reltuples, 0)::bigint, \
       EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid OR i.inhparent = c.oid) \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = $1 AND c.relname = $2";

const COLUMN_SQL: &str = "SELECT a.attnum, format_type(a.atttypid, a.atttypmod), \
       coalesce(nullif(t.typbasetype, 0), a.atttypid) = 'bytea'::regtype, a.attnotnull, \
       a.atthasdef, a.attgenerated::text <> '', a.attidentity::text <> '' \
     FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
     WHERE a.attrelid = $1 AND a.attname = $2 AND NOT a.attisdropped";

const PK_SQL: &str = "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnum \
     FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, o) \
     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
     WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.o";

/// Objects depending on the column: (catalog, name, for a constraint its kind and index).
const DEPENDENTS_SQL: &str = "SELECT d.classid::regclass::text, CASE d.classid \
       WHEN 'pg_rewrite'::regclass THEN (SELECT r.ev_class::regclass::text FROM pg_rewrite r WHERE r.oid = d.objid) \
       WHEN 'pg_constraint'::regclass THEN (SELECT conname::text FROM pg_constraint WHERE oid = d.objid) \
       WHEN 'pg_class'::regclass THEN d.objid::regclass::text \
       WHEN 'pg_statistic_ext'::regclass THEN (SELECT stxname::text FROM pg_statistic_ext WHERE oid = d.objid) \
       WHEN 'pg_policy'::regclass THEN (SELECT polname::text FROM pg_policy WHERE oid = d.objid) \
       WHEN 'pg_trigger'::regclass THEN (SELECT tgname::text FROM pg_trigger WHERE oid = d.objid) \
       WHEN 'pg_attrdef'::regclass THEN (SELECT a.attname::text FROM pg_attrdef ad JOIN pg_attribute a \
            ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum WHERE ad.oid = d.objid) \
       ELSE d.objid::text END, \
       (SELECT contype::text FROM pg_constraint WHERE oid = d.objid AND d.classid = 'pg_constraint'::regclass), \
       (SELECT conindid::regclass::text FROM pg_constraint \
        WHERE oid = d.objid AND d.classid = 'pg_constraint'::regclass AND conindid <> 0) \
     FROM pg_depend d \
     WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = $1 AND d.refobjsubid = $2 \
       AND d.classid <> 'pg_type'::regclass \
     ORDER BY 1, 2";

/// One index: its name, columns, unique, simple (no expression or predicate), access method,
/// and the UNIQUE or PRIMARY KEY constraint it backs.
const INDEX_SQL: &str = "SELECT ic.relname::text, i.indnatts::int, i.indisunique, \
       i.indexprs IS NULL AND i.indpred IS NULL, am.amname::text, \
       (SELECT conname::text FROM pg_constraint WHERE conindid = i.indexrelid AND contype IN ('u', 'p')) \
     FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam \
     WHERE i.indexrelid = $1::text::regclass";

impl Plan {
    /// Inspects `rule`'s table for a migration in `direction`; every refusal is found here.
    /// `plain_type` is the type `decrypt` restores (from the state of the encrypt run).
    pub async fn inspect(
        client: &Client,
        rule: &Arc<ColumnRule>,
        direction: Direction,
        plain_type: Option<&str>,
    ) -> Result<Plan, MigrateError> {
        let name = rule.qualified();
        let db = MigrateError::db(&name);
        let refuse = |r: String| MigrateError::refused(&name, r);
        let t = client
            .query_opt(TABLE_SQL, &[&rule.schema, &rule.table])
            .await
            .map_err(db)?
            .ok_or_else(|| {
                refuse(format!(
                    "table {}.{} does not exist",
                    rule.schema, rule.table
                ))
            })?;
        let (oid, kind, partition, rows, inherits): (u32, String, bool, i64, bool) =
            (t.get(0), t.get(1), t.get(2), t.get(3), t.get(4));
        if kind == "p" || partition || inherits {
            return Err(refuse(
                "the table is partitioned, a partition, or in an inheritance tree: migrate each \
                 partition's data into a plain table first (not supported)"
                    .into(),
            ));
        }
        if kind != "r" {
            return Err(refuse(format!(
                "{}.{} is not a table",
                rule.schema, rule.table
            )));
        }
        let shadow_name = format!("{}{SHADOW_SUFFIX}", rule.column);
        if shadow_name.len() > 63 {
            return Err(refuse(
                "the column's name is too long (at most 55 bytes)".into(),
            ));
        }
        let col = client
            .query_opt(COLUMN_SQL, &[&oid, &rule.column])
            .await
            .map_err(MigrateError::db(&name))?
            .ok_or_else(|| refuse("the column does not exist".into()))?;
        let (attnum, source_type, bytea): (i16, String, bool) =
            (col.get(0), col.get(1), col.get(2));
        let (not_null, has_default, generated, identity): (bool, bool, bool, bool) =
            (col.get(3), col.get(4), col.get(5), col.get(6));
        let want_bytea = direction == Direction::Decrypt;
        if bytea != want_bytea {
            return Err(refuse(match direction {
                Direction::Encrypt => "the column is already bytea (encrypted)".into(),
                Direction::Decrypt => format!("the column is {source_type}, not encrypted"),
            }));
        }
        if generated || identity {
            return Err(refuse(
                "the column is generated or an identity column: its values cannot be encrypted"
                    .into(),
            ));
        }
        if has_default {
            return Err(refuse(
                "the column has a DEFAULT (a plaintext default cannot be carried over): drop it \
                 (ALTER TABLE … ALTER COLUMN … DROP DEFAULT) and let the application write it"
                    .into(),
            ));
        }
        let shadow_exists = client
            .query_opt(COLUMN_SQL, &[&oid, &shadow_name])
            .await
            .map_err(MigrateError::db(&name))?
            .is_some();
        let pk = primary_key(client, oid, attnum, &name).await?;
        let target_type = match direction {
            Direction::Encrypt => "bytea".to_owned(),
            Direction::Decrypt => plain_type.unwrap_or(rule.ty.name()).to_owned(),
        };
        let mut plan = Plan {
            rule: Arc::clone(rule),
            direction,
            table: format!("{}.{}", quote(&rule.schema), quote(&rule.table)),
            column: quote(&rule.column),
            shadow: quote(&shadow_name),
            pk,
            source_type,
            target_type,
            not_null,
            indexes: Vec::new(),
            dropped: Vec::new(),
            estimated_rows: rows,
            shadow_exists,
        };
        plan.dependents(client, oid, attnum).await?;
        Ok(plan)
    }

    /// The plan of a column already switched (its table, key and column), for what follows
    /// the switch: `NOT NULL`, verification.
    pub async fn switched(
        client: &Client,
        rule: &Arc<ColumnRule>,
        direction: Direction,
    ) -> Result<Plan, MigrateError> {
        let name = rule.qualified();
        let t = client
            .query_opt(TABLE_SQL, &[&rule.schema, &rule.table])
            .await
            .map_err(MigrateError::db(&name))?
            .ok_or_else(|| MigrateError::refused(&name, "the table does not exist any more"))?;
        let pk = primary_key(client, t.get(0), 0, &name).await?;
        Ok(Plan {
            rule: Arc::clone(rule),
            direction,
            table: format!("{}.{}", quote(&rule.schema), quote(&rule.table)),
            column: quote(&rule.column),
            shadow: quote(&format!("{}{SHADOW_SUFFIX}", rule.column)),
            pk,
            source_type: String::new(),
            target_type: String::new(),
            not_null: false,
            indexes: Vec::new(),
            dropped: Vec::new(),
            estimated_rows: t.get(3),
            shadow_exists: false,
        })
    }

    /// Sorts what depends on the column into indexes to rebuild, or refuses.
    async fn dependents(
        &mut self,
        client: &Client,
        oid: u32,
        attnum: i16,
    ) -> Result<(), MigrateError> {
        let name = self.rule.qualified();
        let rows = client
            .query(DEPENDENTS_SQL, &[&oid, &(attnum as i32)])
            .await
            .map_err(MigrateError::db(&name))?;
        let mut indexes = Vec::new();
        for r in &rows {
            let (class, obj): (String, Option<String>) = (r.get(0), r.get(1));
            let (kind, index): (Option<String>, Option<String>) = (r.get(2), r.get(3));
            let obj = obj.unwrap_or_default();
            match class.as_str() {
                // pgcloak's own triggers (a resumed run's capture trigger, a decrypt's guard).
                "pg_trigger"
                    if obj.starts_with("pgcloak_capture_") || obj.starts_with("pgcloak_guard_") => {
                }
                "pg_class" => indexes.push(obj),
                "pg_constraint" => {
                    constraint(&name, &obj, kind.as_deref().unwrap_or(""))?;
                    indexes.extend(index);
                }
                other => return Err(MigrateError::refused(&name, dependent_reason(other, &obj))),
            }
        }
        indexes.sort();
        indexes.dedup();
        for ix in indexes {
            self.index(client, &ix).await?;
        }
        Ok(())
    }

    async fn index(&mut self, client: &Client, qualified: &str) -> Result<(), MigrateError> {
        let name = self.rule.qualified();
        let r = client
            .query_one(INDEX_SQL, &[&qualified])
            .await
            .map_err(MigrateError::db(&name))?;
        let (index, natts, unique, simple, am): (String, i32, bool, bool, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        let constraint: Option<String> = r.get(5);
        if natts != 1 || !simple || am != "btree" {
            return Err(MigrateError::refused(
                &name,
                format!(
                    "index {index} is over several columns, an expression, partial, or not a \
                     btree: drop it before the migration (pgcloak rebuilds single-column btree \
                     indexes, for deterministic rules)"
                ),
            ));
        }
        if self.rule.mode == Mode::Randomized && self.direction == Direction::Encrypt {
            if unique {
                return Err(MigrateError::refused(
                    &name,
                    format!(
                        "UNIQUE index {index}: a randomized column cannot enforce uniqueness \
                         (equal values encrypt differently); make the rule deterministic, or \
                         drop the constraint"
                    ),
                ));
            }
            self.dropped.push(index);
            return Ok(());
        }
        self.indexes.push(IndexPlan {
            name: index,
            unique,
            constraint,
        });
        Ok(())
    }
}

/// The primary key's columns; refused without one, or when the column is in it.
async fn primary_key(
    client: &Client,
    oid: u32,
    attnum: i16,
    name: &str,
) -> Result<Vec<(String, String)>, MigrateError> {
    let rows = client
        .query(PK_SQL, &[&oid])
        .await
        .map_err(MigrateError::db(name))?;
    if rows.is_empty() {
        return Err(MigrateError::refused(
            name,
            "the table has no primary key (the migration walks and tracks rows by it): add one",
        ));
    }
    if rows.iter().any(|r| r.get::<_, i16>(2) == attnum) {
        return Err(MigrateError::refused(
            name,
            "the column is (part of) the primary key: rows are tracked by their key, which \
             would be plaintext; give the table a surrogate primary key and make this column \
             UNIQUE (deterministic rule)",
        ));
    }
    Ok(rows
        .iter()
        .map(|r| (quote(&r.get::<_, String>(0)), r.get(1)))
        .collect())
}

/// A constraint on the column: UNIQUE/PK are handled with their index; others refused.
fn constraint(name: &str, obj: &str, kind: &str) -> Result<(), MigrateError> {
    let reason = match kind {
        "u" | "p" => return Ok(()),
        "f" => format!(
            "foreign key {obj} references or is on the column (a foreign key cannot compare \
             ciphertext with plaintext): drop it, or migrate both sides with a shared key"
        ),
        "c" => format!("CHECK constraint {obj} reads the column's value: drop it first"),
        "x" => format!("exclusion constraint {obj} uses the column: drop it first"),
        _ => format!("constraint {obj} depends on the column: drop it first"),
    };
    Err(MigrateError::refused(name, reason))
}

fn dependent_reason(class: &str, obj: &str) -> String {
    match class {
        "pg_rewrite" => format!(
            "view {obj} reads the column (it would show ciphertext): drop it, and query the \
             table through pgcloak instead"
        ),
        "pg_attrdef" => {
            format!("generated column {obj} is computed from the column: drop it first")
        }
        "pg_statistic_ext" => format!("statistics object {obj} covers the column: drop it first"),
        "pg_policy" => format!("row-level security policy {obj} reads the column: drop it first"),
        "pg_trigger" => format!("trigger {obj} depends on the column: drop it first"),
        other => format!("{other} object {obj} depends on the column: drop it first"),
    }
}
