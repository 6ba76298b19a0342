//! FROM items: tables resolved through CTEs and the search_path, sub-selects, joins (ON,
//! USING, NATURAL) and functions; each adds relations to the current query level.

use pg_query::NodeEnum;
use pg_query::protobuf::{Alias, Node, RangeVar};

use super::analyzer::Analyzer;
use super::ast::sval;
use super::bind::R;
use super::plan::Refusal;
use super::scope::{Col, ColKind, Lookup, Rel};
use super::select::Output;

fn alias_names(alias: Option<&Alias>) -> Vec<String> {
    alias
        .map(|a| {
            a.colnames
                .iter()
                .filter_map(sval)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl Analyzer<'_, '_> {
    /// Adds one FROM item (and everything it joins) to the current level.
    pub(crate) fn add_from_item(&mut self, n: &Node) -> R<()> {
        match n.node.as_ref() {
            Some(NodeEnum::RangeVar(rv)) => {
                let rel = self.range_var(rv, true)?;
                self.scopes.add(rel);
            }
            Some(NodeEnum::RangeSubselect(rs)) => {
                let name = rs
                    .alias
                    .as_ref()
                    .map(|a| a.aliasname.clone())
                    .unwrap_or_default();
                let mut rel = match self.values_rel(rs.subquery.as_deref(), &name)? {
                    Some(rel) => rel,
                    None => {
                        let out = match rs.subquery.as_deref().and_then(|q| q.node.as_ref()) {
                            Some(NodeEnum::SelectStmt(s)) => self.select(s)?,
                            _ => Output::default(),
                        };
                        out.into_rel(self, &name, true)?
                    }
                };
                if !rel.rename(&alias_names(rs.alias.as_ref())) {
                    return Err(self.refuse_text("column aliases over a table of unknown columns"));
                }
                self.scopes.add(rel);
            }
            Some(NodeEnum::JoinExpr(j)) => {
                let before = self.scopes.current().len();
                self.add_from_opt(j.larg.as_deref())?;
                let mid = self.scopes.current().len();
                self.add_from_opt(j.rarg.as_deref())?;
                self.join_using(&j.using_clause, before, mid, j.is_natural)?;
                self.cond(j.quals.as_deref())?;
            }
            Some(NodeEnum::RangeFunction(rf)) => {
                if let Some(rel) = match self.unnest_rel(rf)? {
                    Some(rel) => Some(rel),
                    None => self.json_record_rel(rf)?,
                } {
                    self.scopes.add(rel);
                    return Ok(());
                }
                for f in &rf.functions {
                    self.plain_expr(Some(f), "a function in FROM")?;
                }
                let name = rf
                    .alias
                    .as_ref()
                    .map(|a| a.aliasname.clone())
                    .unwrap_or_default();
                self.scopes.add(Rel {
                    name,
                    schema: None,
                    cols: Vec::new(),
                    open: true,
                });
            }
            Some(other) => {
                self.opaque(other, "this FROM item")?;
                self.scopes.add(Rel {
                    name: String::new(),
                    schema: None,
                    cols: Vec::new(),
                    open: true,
                });
            }
            None => {}
        }
        Ok(())
    }

    fn add_from_opt(&mut self, n: Option<&Node>) -> R<()> {
        n.map_or(Ok(()), |n| self.add_from_item(n))
    }

    /// `JOIN … USING (a, b)` compares the named columns of both sides; NATURAL joins are
    /// refused when either side has an encrypted column.
    fn join_using(&mut self, using: &[Node], before: usize, mid: usize, natural: bool) -> R<()> {
        let rels = self.scopes.current();
        let (left, right) = (
            rels.get(before..mid).unwrap_or(&[]),
            rels.get(mid..).unwrap_or(&[]),
        );
        if natural {
            if let Some(rule) = left.iter().chain(right).find_map(Rel::first_encrypted) {
                return Err(Refusal::column(rule, "NATURAL JOIN"));
            }
            return Ok(());
        }
        let find = |side: &[Rel], name: &str| {
            side.iter()
                .find_map(|r| match r.lookup(name) {
                    Lookup::Found(k) => Some(k.clone()),
                    _ => None,
                })
                .unwrap_or(ColKind::Plain)
        };
        let pairs: Vec<(ColKind, ColKind)> = using
            .iter()
            .filter_map(sval)
            .map(|n| (find(left, n), find(right, n)))
            .collect();
        for (l, r) in pairs {
            let (l, r) = (Analyzer::col_use(&l), Analyzer::col_use(&r));
            self.compare(l, r, "JOIN USING")?;
        }
        Ok(())
    }

    /// A table reference: a CTE (when `ctes` and unqualified) or a table resolved through the
    /// search_path, with its alias applied.
    pub(crate) fn range_var(&mut self, rv: &RangeVar, ctes: bool) -> R<Rel> {
        let cte = (ctes && rv.schemaname.is_empty())
            .then(|| {
                self.ctes
                    .iter()
                    .rev()
                    .find(|c| c.name == rv.relname)
                    .cloned()
            })
            .flatten();
        let mut rel = match cte {
            Some(rel) => rel,
            None => {
                let rel = self.table_rel(&rv.schemaname, &rv.relname)?;
                self.qualify(rv, &rel)?;
                rel
            }
        };
        if let Some(alias) = &rv.alias {
            rel.name.clone_from(&alias.aliasname);
            rel.schema = None;
            if !rel.rename(&alias_names(Some(alias))) {
                return Err(self.refuse_text("column aliases over a table of unknown columns"));
            }
        }
        Ok(rel)
    }

    /// Sends an unqualified name that could resolve to a rules table (it shares a rules
    /// table's name) schema-qualified as pgcloak resolved it, so that a search_path pgcloak
    /// has not seen yet (`set_config`, `SET SCHEMA`, a function, a savepoint rollback) can at
    /// worst pick the table pgcloak analysed, never a rules table it did not.
    ///
    /// A name that resolves to no relation pgcloak knows is refused: under the server's path
    /// it might be a rules table.
    fn qualify(&mut self, rv: &RangeVar, rel: &Rel) -> R<()> {
        if !self.ctx.qualify
            || !rv.schemaname.is_empty()
            || !self.ctx.rules.table_names().contains(&rv.relname)
        {
            return Ok(());
        }
        let (Some(schema), Ok(at)) = (&rel.schema, usize::try_from(rv.location)) else {
            return Err(self.refuse_text(format!(
                "a name ({}) that resolves to no relation in the search_path pgcloak knows \
                 (qualify it with its schema)",
                rv.relname
            )));
        };
        let text = format!("{}.", crate::rules::ident::quote_ident(schema));
        self.insert_text(at, text);
        Ok(())
    }

    /// A relation derived from a rules table (in `schema`, or in any search_path schema when
    /// unqualified; see `CatalogView::derived_base`): refused, since its rows carry ciphertext
    /// that cannot be mapped to rules and writes through it would not be encrypted.
    fn refuse_derived(&self, schema: &str, name: &str) -> R<()> {
        let cat = self.ctx.catalog;
        let base = if schema.is_empty() {
            self.ctx
                .search_path
                .iter()
                .find_map(|s| cat.derived_base(s, name).map(|b| (s.clone(), b)))
        } else {
            cat.derived_base(schema, name)
                .map(|b| (schema.to_owned(), b))
        };
        match base {
            None => Ok(()),
            Some((s, b)) => Err(Refusal::table(
                b,
                format!(
                    "a statement naming {s}.{name}, a view over it, a partition, child or \
                     parent of it, or a table whose trigger runs a function that writes it \
                     (query the rules table itself, or list {s}.{name} in the rules too)"
                ),
            )),
        }
    }

    /// The schema a table name resolves to: given, else the first search_path schema where
    /// the catalog knows it, else the first where the rules have it.
    pub(crate) fn resolve_schema(&self, schema: &str, table: &str) -> Option<String> {
        if !schema.is_empty() {
            return Some(schema.to_owned());
        }
        let path = self.ctx.search_path;
        path.iter()
            .find(|s| self.ctx.catalog.relation_exists(s, table))
            .or_else(|| {
                path.iter()
                    .find(|s| self.ctx.rules.table(s, table).is_some())
            })
            .cloned()
    }

    /// A base table's columns (exact when the catalog knows it; else its encrypted ones). A
    /// table the catalog knows that lacks one of its rules columns (renamed or dropped) is
    /// refused: a renamed encrypted column would otherwise take plaintext under its new name.
    pub(crate) fn table_rel(&self, schema: &str, table: &str) -> R<Rel> {
        self.refuse_derived(schema, table)?;
        let Some(schema) = self.resolve_schema(schema, table) else {
            return Ok(Rel {
                name: table.to_owned(),
                schema: None,
                cols: Vec::new(),
                open: true,
            });
        };
        let rules = self.ctx.rules.table(&schema, table);
        let enc = |c: &str| rules.and_then(|t| t.column(c)).cloned();
        let mut cols: Vec<Col> = Vec::new();
        let known = self.ctx.catalog.columns(&schema, table);
        for c in known.iter().flatten() {
            let kind = match enc(c) {
                Some(rule) => ColKind::Enc { rule, origin: true },
                None => ColKind::Plain,
            };
            cols.push(Col {
                name: c.clone(),
                kind,
            });
        }
        let mut open = known.is_none();
        for rule in rules.map(|t| t.columns.as_slice()).unwrap_or(&[]) {
            if !cols.iter().any(|c| c.name == rule.column) {
                if known.is_some() {
                    return Err(Refusal::column(
                        rule,
                        "a table whose encrypted column does not exist in the database \
                         (renamed or dropped? `pgcloak check` lists what differs)",
                    ));
                }
                open = true;
                cols.push(Col {
                    name: rule.column.clone(),
                    kind: ColKind::Enc {
                        rule: rule.clone(),
                        origin: true,
                    },
                });
            }
        }
        Ok(Rel {
            name: table.to_owned(),
            schema: Some(schema),
            cols,
            open,
        })
    }
}
