//! SELECT: WITH, FROM items (tables, sub-selects, joins, functions), target lists, GROUP BY,
//! DISTINCT, ORDER BY, set operations and VALUES; and resolving a table name to its columns.

use pg_query::NodeEnum;
use pg_query::protobuf::{Alias, Node, RangeVar, ResTarget, SelectStmt, SetOperation, WithClause};

use super::Refusal;
use super::analyzer::{Analyzer, Ev, R};
use super::expr::sval;
use super::scope::{Col, ColKind, Rel};
use crate::config::Mode;

/// One output column of a query.
#[derive(Debug, Clone)]
pub(crate) struct OutCol {
    pub name: String,
    pub ev: Ev,
}

/// The output of a query: its columns, and whether the list may be incomplete (`*` over a
/// table the catalog does not know).
#[derive(Debug, Clone, Default)]
pub(crate) struct Output {
    pub cols: Vec<OutCol>,
    pub open: bool,
}

impl Output {
    /// The output as a relation in a FROM list (values become plaintext columns).
    pub(crate) fn into_rel(self, an: &mut Analyzer, name: &str, origin: bool) -> R<Rel> {
        let mut cols = Vec::with_capacity(self.cols.len());
        for c in self.cols {
            let kind = match c.ev {
                Ev::Enc { rule, origin: o } => ColKind::Enc {
                    rule,
                    origin: o && origin,
                },
                other => {
                    an.plain_use(other, String::new)?;
                    ColKind::Plain
                }
            };
            cols.push(Col { name: c.name, kind });
        }
        Ok(Rel {
            name: name.to_owned(),
            schema: None,
            cols,
            open: self.open,
        })
    }
}

fn col_ev(kind: &ColKind) -> Ev {
    match kind {
        ColKind::Enc { rule, origin } => Ev::Enc {
            rule: rule.clone(),
            origin: *origin,
        },
        ColKind::Plain => Ev::Plain,
    }
}

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

/// Merges the i-th output column of two branches of a set operation.
fn merge(a: Ev, b: Ev) -> Result<Ev, (Ev, Ev)> {
    match (a, b) {
        (Ev::Val(mut x), Ev::Val(y)) => {
            x.extend(y);
            Ok(Ev::Val(x))
        }
        (Ev::Plain, Ev::Plain) => Ok(Ev::Plain),
        (Ev::Enc { rule: r1, .. }, Ev::Enc { rule: r2, .. }) if r1.key == r2.key => Ok(Ev::Enc {
            rule: r1,
            origin: false,
        }),
        (a, b) => Err((a, b)),
    }
}

impl Analyzer<'_, '_> {
    /// Analyses a SELECT (any form) and returns its output, undecided values included.
    pub(crate) fn select(&mut self, s: &SelectStmt) -> R<Output> {
        let mark = self.ctes.len();
        if let Some(w) = &s.with_clause {
            self.with_clause(w)?;
        }
        let op = SetOperation::try_from(s.op).unwrap_or(SetOperation::Undefined);
        let out = if matches!(op, SetOperation::SetopNone | SetOperation::Undefined) {
            if s.values_lists.is_empty() {
                self.simple_select(s)
            } else {
                self.values(&s.values_lists)
            }
        } else {
            self.set_operation(s)
        };
        self.ctes.truncate(mark);
        out
    }

    fn set_operation(&mut self, s: &SelectStmt) -> R<Output> {
        let (Some(l), Some(r)) = (s.larg.as_deref(), s.rarg.as_deref()) else {
            return Ok(Output::default());
        };
        let (lo, ro) = (self.select(l)?, self.select(r)?);
        let mut cols = Vec::with_capacity(lo.cols.len());
        for (a, b) in lo.cols.into_iter().zip(ro.cols) {
            let ev = match merge(a.ev, b.ev) {
                Ok(ev) => ev,
                Err((Ev::Enc { rule, .. }, _)) | Err((_, Ev::Enc { rule, .. })) => {
                    return Err(Refusal::column(
                        &rule,
                        "a set operation mixing it with other values",
                    ));
                }
                Err((x, y)) => {
                    self.plain_use(x, String::new)?;
                    self.plain_use(y, String::new)?;
                    Ev::Plain
                }
            };
            if let Ev::Enc { rule, .. } = &ev {
                if !s.all && rule.mode == Mode::Randomized {
                    return Err(Refusal::column(rule, "UNION/INTERSECT/EXCEPT without ALL"));
                }
            }
            cols.push(OutCol { name: a.name, ev });
        }
        let out = Output {
            cols,
            open: lo.open || ro.open,
        };
        self.scopes.push();
        let res = self.order_limit(s, &out);
        self.scopes.pop();
        res.map(|()| out)
    }

    fn values(&mut self, rows: &[Node]) -> R<Output> {
        let mut cols: Vec<OutCol> = Vec::new();
        for row in rows {
            let Some(NodeEnum::List(items)) = row.node.as_ref() else {
                continue;
            };
            for (i, item) in items.items.iter().enumerate() {
                let ev = self.expr(item)?;
                if let Some(c) = cols.get_mut(i) {
                    let prev = std::mem::replace(&mut c.ev, Ev::Plain);
                    c.ev = match merge(prev, ev) {
                        Ok(ev) => ev,
                        Err((x, y)) => {
                            self.plain_use(x, || "VALUES".to_owned())?;
                            self.plain_use(y, || "VALUES".to_owned())?;
                            Ev::Plain
                        }
                    };
                } else {
                    cols.push(OutCol {
                        name: format!("column{}", i + 1),
                        ev,
                    });
                }
            }
        }
        Ok(Output { cols, open: false })
    }

    fn simple_select(&mut self, s: &SelectStmt) -> R<Output> {
        self.scopes.push();
        let res = self.simple_select_in_scope(s);
        self.scopes.pop();
        res
    }

    fn simple_select_in_scope(&mut self, s: &SelectStmt) -> R<Output> {
        for f in &s.from_clause {
            self.add_from_item(f)?;
        }
        self.cond(s.where_clause.as_deref())?;
        let out = self.target_list(&s.target_list)?;
        for g in &s.group_clause {
            self.group_item(g, &out, "GROUP BY")?;
        }
        self.cond(s.having_clause.as_deref())?;
        for w in &s.window_clause {
            if let Some(NodeEnum::WindowDef(w)) = w.node.as_ref() {
                self.window_def(w)?;
            }
        }
        self.distinct(s, &out)?;
        self.order_limit(s, &out)?;
        if s.into_clause.is_some() {
            self.no_encrypted_output(&out, "SELECT INTO")?;
        }
        Ok(out)
    }

    pub(crate) fn no_encrypted_output(&mut self, out: &Output, construct: &str) -> R<()> {
        for c in &out.cols {
            if let Ev::Enc { rule, .. } = &c.ev {
                return Err(Refusal::column(rule, construct.to_owned()));
            }
        }
        Ok(())
    }

    fn distinct(&mut self, s: &SelectStmt, out: &Output) -> R<()> {
        let all = s.distinct_clause.len() == 1 && s.distinct_clause[0].node.is_none();
        if all {
            for c in &out.cols {
                if let Ev::Enc { rule, .. } = &c.ev {
                    if rule.mode == Mode::Randomized {
                        return Err(Refusal::column(rule, "DISTINCT"));
                    }
                }
            }
            return Ok(());
        }
        for d in &s.distinct_clause {
            self.group_item(d, out, "DISTINCT ON")?;
        }
        Ok(())
    }

    /// ORDER BY (no encrypted column at all), LIMIT and OFFSET.
    fn order_limit(&mut self, s: &SelectStmt, out: &Output) -> R<()> {
        for item in &s.sort_clause {
            let node = match item.node.as_ref() {
                Some(NodeEnum::SortBy(sb)) => sb.node.as_deref(),
                _ => Some(item),
            };
            let ev = match node.and_then(|n| self.output_ref(n, out, true)) {
                Some(ev) => ev,
                None => self.opt_expr(node)?,
            };
            self.plain_use(ev, || "ORDER BY".to_owned())?;
        }
        self.plain_expr(s.limit_count.as_deref(), "LIMIT")?;
        self.plain_expr(s.limit_offset.as_deref(), "OFFSET")
    }

    /// A GROUP BY / DISTINCT ON item: deterministic columns are fine, randomized are not.
    fn group_item(&mut self, g: &Node, out: &Output, construct: &str) -> R<()> {
        if let Some(NodeEnum::GroupingSet(gs)) = g.node.as_ref() {
            for c in &gs.content {
                self.group_item(c, out, construct)?;
            }
            return Ok(());
        }
        let ev = match self.output_ref(g, out, false) {
            Some(ev) => ev,
            None => self.expr(g)?,
        };
        match ev {
            Ev::Enc { rule, .. } if rule.mode == Mode::Deterministic => Ok(()),
            other => self.plain_use(other, || construct.to_owned()),
        }
    }

    /// An ORDER BY / GROUP BY item naming an output column: an ordinal, or (for ORDER BY, or
    /// when no input column has the name) an output column name.
    fn output_ref(&self, n: &Node, out: &Output, names_first: bool) -> Option<Ev> {
        match n.node.as_ref()? {
            NodeEnum::AConst(c) => match c.val.as_ref()? {
                pg_query::protobuf::a_const::Val::Ival(i) => {
                    let idx = usize::try_from(i.ival).ok()?.checked_sub(1)?;
                    out.cols.get(idx).map(|c| c.ev.clone())
                }
                _ => None,
            },
            NodeEnum::ColumnRef(c) if c.fields.len() == 1 => {
                let name = sval(&c.fields[0])?;
                if !names_first && self.scopes.unqualified(name).is_some() {
                    return None;
                }
                out.cols
                    .iter()
                    .find(|c| c.name == name)
                    .map(|c| c.ev.clone())
            }
            _ => None,
        }
    }

    /// A target list (SELECT list or RETURNING).
    pub(crate) fn target_list(&mut self, targets: &[Node]) -> R<Output> {
        let mut out = Output::default();
        for t in targets {
            let Some(NodeEnum::ResTarget(rt)) = t.node.as_ref() else {
                continue;
            };
            if self.star(rt, &mut out) {
                continue;
            }
            let ev = self.opt_expr(rt.val.as_deref())?;
            out.cols.push(OutCol {
                name: output_name(rt),
                ev,
            });
        }
        Ok(out)
    }

    /// Expands `*` / `rel.*`; false when `rt` is not a star.
    fn star(&self, rt: &ResTarget, out: &mut Output) -> bool {
        let Some(NodeEnum::ColumnRef(c)) = rt.val.as_deref().and_then(|v| v.node.as_ref()) else {
            return false;
        };
        if !matches!(
            c.fields.last().and_then(|f| f.node.as_ref()),
            Some(NodeEnum::AStar(_))
        ) {
            return false;
        }
        let rels: Vec<&Rel> = match c.fields.len() {
            1 => self.scopes.current().iter().collect(),
            _ => {
                let name = c
                    .fields
                    .get(c.fields.len() - 2)
                    .and_then(sval)
                    .unwrap_or("");
                self.scopes.relation(name).into_iter().collect()
            }
        };
        for r in rels {
            out.open |= r.open;
            out.cols.extend(r.cols.iter().map(|c| OutCol {
                name: c.name.clone(),
                ev: col_ev(&c.kind),
            }));
        }
        true
    }

    /// The top-level output of a statement: encrypted columns must be decryptable.
    pub(crate) fn emit(&mut self, out: Output) -> R<()> {
        for c in out.cols {
            match c.ev {
                Ev::Enc {
                    rule,
                    origin: false,
                } => {
                    return Err(Refusal::column(
                        &rule,
                        "a result column that cannot be decrypted (from a set operation, \
                         sub-select or data-modifying CTE)",
                    ));
                }
                other => self.any_use(other)?,
            }
        }
        Ok(())
    }

    pub(crate) fn with_clause(&mut self, w: &WithClause) -> R<()> {
        for cte in &w.ctes {
            let Some(NodeEnum::CommonTableExpr(c)) = cte.node.as_ref() else {
                continue;
            };
            if w.recursive {
                self.ctes.push(Rel {
                    name: c.ctename.clone(),
                    schema: None,
                    cols: Vec::new(),
                    open: true,
                });
            }
            let (out, origin) = match c.ctequery.as_deref().and_then(|q| q.node.as_ref()) {
                Some(NodeEnum::SelectStmt(s)) => (self.select(s)?, true),
                Some(other) => (self.dml(other)?, false),
                None => (Output::default(), true),
            };
            if w.recursive {
                self.ctes.pop();
            }
            let mut rel = out.into_rel(self, &c.ctename, origin)?;
            let names: Vec<String> = c
                .aliascolnames
                .iter()
                .filter_map(sval)
                .map(str::to_owned)
                .collect();
            if !rel.rename(&names) {
                return Err(self.refuse_text("CTE column aliases over a table of unknown columns"));
            }
            self.ctes.push(rel);
        }
        Ok(())
    }

    /// Adds one FROM item (and everything it joins) to the current level.
    pub(crate) fn add_from_item(&mut self, n: &Node) -> R<()> {
        match n.node.as_ref() {
            Some(NodeEnum::RangeVar(rv)) => {
                let rel = self.range_var(rv, true)?;
                self.scopes.add(rel);
            }
            Some(NodeEnum::RangeSubselect(rs)) => {
                let out = match rs.subquery.as_deref().and_then(|q| q.node.as_ref()) {
                    Some(NodeEnum::SelectStmt(s)) => self.select(s)?,
                    _ => Output::default(),
                };
                let name = rs
                    .alias
                    .as_ref()
                    .map(|a| a.aliasname.clone())
                    .unwrap_or_default();
                let mut rel = out.into_rel(self, &name, true)?;
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
            side.iter().find_map(|r| match r.lookup(name) {
                super::scope::Lookup::Found(k) => Some(col_ev(k)),
                _ => None,
            })
        };
        let pairs: Vec<(Ev, Ev)> = using
            .iter()
            .filter_map(sval)
            .map(|n| {
                (
                    find(left, n).unwrap_or(Ev::Plain),
                    find(right, n).unwrap_or(Ev::Plain),
                )
            })
            .collect();
        for (l, r) in pairs {
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
            None => self.table_rel(&rv.schemaname, &rv.relname),
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

    /// The schema a table name resolves to: given, else the first search_path schema where
    /// the catalog knows it, else the first where the rules have it.
    pub(crate) fn resolve_schema(&self, schema: &str, table: &str) -> Option<String> {
        if !schema.is_empty() {
            return Some(schema.to_owned());
        }
        let path = self.ctx.search_path;
        path.iter()
            .find(|s| self.ctx.catalog.columns(s, table).is_some())
            .or_else(|| {
                path.iter()
                    .find(|s| self.ctx.rules.table(s, table).is_some())
            })
            .cloned()
    }

    /// A base table's columns (exact when the catalog knows it; else its encrypted ones).
    pub(crate) fn table_rel(&self, schema: &str, table: &str) -> Rel {
        let Some(schema) = self.resolve_schema(schema, table) else {
            return Rel {
                name: table.to_owned(),
                schema: None,
                cols: Vec::new(),
                open: true,
            };
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
        Rel {
            name: table.to_owned(),
            schema: Some(schema),
            cols,
            open,
        }
    }
}

/// The name PostgreSQL gives an output column (close to `FigureColname`).
fn output_name(rt: &ResTarget) -> String {
    if !rt.name.is_empty() {
        return rt.name.clone();
    }
    let mut n = rt.val.as_deref();
    while let Some(node) = n.and_then(|n| n.node.as_ref()) {
        match node {
            NodeEnum::ColumnRef(c) => {
                return c
                    .fields
                    .iter()
                    .rev()
                    .find_map(sval)
                    .unwrap_or("?column?")
                    .to_owned();
            }
            NodeEnum::FuncCall(f) => {
                return f
                    .funcname
                    .iter()
                    .rev()
                    .find_map(sval)
                    .unwrap_or("?column?")
                    .to_owned();
            }
            NodeEnum::TypeCast(t) => n = t.arg.as_deref(),
            _ => break,
        }
    }
    "?column?".to_owned()
}
