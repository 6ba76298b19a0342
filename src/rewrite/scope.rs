//! Name resolution: the relations in scope at each query level and what their columns are.
//!
//! A relation's column list is exact when the catalog knows the table (or it is a sub-select or
//! CTE whose output is known); otherwise it is "open": only the encrypted columns are known and
//! any other name may or may not exist — but it cannot be encrypted, since the rules list every
//! encrypted column of a table.

use std::sync::Arc;

use super::bind::Bind;
use crate::rules::ColumnRule;

/// What a column holds.
#[derive(Debug, Clone)]
pub(crate) enum ColKind {
    /// Ciphertext of `rule`. `origin` is true when PostgreSQL will report the column's table
    /// OID and attnum in RowDescription (a plain column reference, possibly through
    /// sub-selects and CTEs), so a result of it can be decrypted.
    Enc { rule: Arc<ColumnRule>, origin: bool },
    /// Anything else.
    Plain,
    /// A column of a `VALUES` list in FROM (`UPDATE … FROM (VALUES …) v`, `JOIN (VALUES …) v`):
    /// its values are bound where the column is used (every use alike, see
    /// `Analyzer::sealed_use`).
    Val { binds: Vec<Bind> },
}

/// One output or relation column.
#[derive(Debug, Clone)]
pub(crate) struct Col {
    pub name: String,
    pub kind: ColKind,
}

/// A relation in a FROM list (table, sub-select, CTE, function, …).
#[derive(Debug, Clone)]
pub(crate) struct Rel {
    /// The name it is referenced by (alias, else table/CTE name).
    pub name: String,
    /// For an unaliased base table: its schema (matches `schema.table.col` references).
    pub schema: Option<String>,
    pub cols: Vec<Col>,
    /// True when `cols` may be incomplete (unknown columns are never encrypted).
    pub open: bool,
}

/// The result of looking a column name up in one relation.
pub(crate) enum Lookup<'a> {
    Found(&'a ColKind),
    /// The relation is open and does not list the name: it may have it, as a plaintext column.
    Maybe,
    Absent,
}

impl Rel {
    pub(crate) fn lookup(&self, col: &str) -> Lookup<'_> {
        match self.cols.iter().find(|c| c.name == col) {
            Some(c) => Lookup::Found(&c.kind),
            None if self.open => Lookup::Maybe,
            None => Lookup::Absent,
        }
    }

    /// The first encrypted column, if any (for table-level refusals).
    pub(crate) fn first_encrypted(&self) -> Option<&Arc<ColumnRule>> {
        self.cols.iter().find_map(|c| match &c.kind {
            ColKind::Enc { rule, .. } => Some(rule),
            ColKind::Plain | ColKind::Val { .. } => None,
        })
    }

    /// Renames columns positionally (`AS alias(a, b)`). Unknown order with encrypted columns is
    /// an error (returns false).
    pub(crate) fn rename(&mut self, names: &[String]) -> bool {
        if names.is_empty() {
            return true;
        }
        if self.open && self.first_encrypted().is_some() {
            return false;
        }
        for (c, n) in self.cols.iter_mut().zip(names) {
            c.name.clone_from(n);
        }
        true
    }
}

/// The outcome of resolving a column reference through all levels.
pub(crate) enum Resolved {
    Enc {
        rule: Arc<ColumnRule>,
        origin: bool,
    },
    Plain,
    /// A column of a `VALUES` list in FROM (see `ColKind::Val`).
    Val {
        binds: Vec<Bind>,
    },
    /// An encrypted column and another relation could both be meant.
    Ambiguous(Arc<ColumnRule>),
}

/// The stack of query levels (innermost last), each a list of relations.
#[derive(Default)]
pub(crate) struct Scopes {
    pub levels: Vec<Vec<Rel>>,
}

fn resolved(kind: &ColKind) -> Resolved {
    match kind {
        ColKind::Enc { rule, origin } => Resolved::Enc {
            rule: rule.clone(),
            origin: *origin,
        },
        ColKind::Plain => Resolved::Plain,
        ColKind::Val { binds } => Resolved::Val {
            binds: binds.clone(),
        },
    }
}

impl Scopes {
    pub(crate) fn push(&mut self) {
        self.levels.push(Vec::new());
    }

    pub(crate) fn pop(&mut self) -> Vec<Rel> {
        self.levels.pop().unwrap_or_default()
    }

    pub(crate) fn add(&mut self, rel: Rel) {
        if let Some(level) = self.levels.last_mut() {
            level.push(rel);
        }
    }

    /// Relations of the innermost level.
    pub(crate) fn current(&self) -> &[Rel] {
        self.levels.last().map(Vec::as_slice).unwrap_or(&[])
    }

    /// Resolves an unqualified column name, innermost level first.
    pub(crate) fn unqualified(&self, col: &str) -> Option<Resolved> {
        let mut maybe_inner = false;
        for level in self.levels.iter().rev() {
            let mut found: Vec<&ColKind> = Vec::new();
            let mut maybe = false;
            for rel in level {
                match rel.lookup(col) {
                    Lookup::Found(k) => found.push(k),
                    Lookup::Maybe => maybe = true,
                    Lookup::Absent => {}
                }
            }
            let enc = found.iter().find_map(|k| match k {
                ColKind::Enc { rule, .. } => Some(rule.clone()),
                ColKind::Plain | ColKind::Val { .. } => None,
            });
            match (found.len(), enc) {
                (0, _) => {
                    maybe_inner |= maybe;
                    continue;
                }
                // Another relation of this level might have the name too: then PostgreSQL
                // rejects the reference as ambiguous, so if it runs, it is this column. One of
                // an inner level would win over it, so that stays ambiguous.
                (1, Some(rule)) if maybe_inner => return Some(Resolved::Ambiguous(rule)),
                (1, _) => return Some(resolved(found[0])),
                (_, Some(rule)) => return Some(Resolved::Ambiguous(rule)),
                (_, None) => return Some(Resolved::Plain),
            }
        }
        maybe_inner.then_some(Resolved::Plain)
    }

    /// Resolves `qualifier.col` (qualifier = `[schema.]rel`), innermost level first. None when no
    /// relation of that name is in scope.
    pub(crate) fn qualified(&self, schema: Option<&str>, rel: &str, col: &str) -> Option<Resolved> {
        for level in self.levels.iter().rev() {
            let hit = level
                .iter()
                .rev()
                .find(|r| r.name == rel && schema.is_none_or(|s| r.schema.as_deref() == Some(s)));
            if let Some(r) = hit {
                return Some(match r.lookup(col) {
                    Lookup::Found(k) => resolved(k),
                    _ => Resolved::Plain,
                });
            }
        }
        None
    }

    /// Every relation in scope, innermost level first.
    pub(crate) fn levels_iter(&self) -> impl Iterator<Item = &Rel> {
        self.levels.iter().rev().flatten()
    }

    /// The relation named `rel` (innermost first), for `rel.*`.
    pub(crate) fn relation(&self, rel: &str) -> Option<&Rel> {
        self.levels
            .iter()
            .rev()
            .find_map(|level| level.iter().rev().find(|r| r.name == rel))
    }
}
