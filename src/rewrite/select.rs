//! SELECT: WITH, FROM items (tables, sub-selects, joins, functions), target lists, GROUP BY,
//! DISTINCT, ORDER BY, set operations and VALUES; and resolving a table name to its columns.

use pg_query::NodeEnum;
use pg_query::protobuf::{Node, ResTarget, SelectStmt, SetOperation, WithClause};

use super::analyzer::Analyzer;
use super::ast::sval;
use super::bind::{Bind, Ev, R, Wrap};
use super::plan::Refusal;
use super::scope::{Col, ColKind, Rel};
use crate::rules::Mode;

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
            if let Ev::Enc { rule, .. } = &ev
                && !s.all
                && rule.mode == Mode::Randomized
            {
                return Err(Refusal::column(rule, "UNION/INTERSECT/EXCEPT without ALL"));
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

    /// A relation for a plain `VALUES` list in FROM or a CTE, whose columns keep their values
    /// undecided (`ColKind::Val`); None for any other query (ORDER BY, LIMIT, `(x).*`, …).
    pub(crate) fn values_rel(&mut self, q: Option<&Node>, name: &str) -> R<Option<Rel>> {
        let Some(NodeEnum::SelectStmt(s)) = q.and_then(|q| q.node.as_ref()) else {
            return Ok(None);
        };
        let op = SetOperation::try_from(s.op).unwrap_or(SetOperation::Undefined);
        let plain = matches!(op, SetOperation::SetopNone | SetOperation::Undefined)
            && !s.values_lists.is_empty()
            && s.sort_clause.is_empty()
            && s.limit_count.is_none()
            && s.limit_offset.is_none()
            && s.locking_clause.is_empty()
            && s.with_clause.is_none();
        if !plain {
            return Ok(None);
        }
        let out = self.values(&s.values_lists)?;
        if out.open {
            return Err(self.refuse_text("a composite expansion in VALUES"));
        }
        let mut cols = Vec::with_capacity(out.cols.len());
        for c in out.cols {
            let kind = match c.ev {
                Ev::Enc { rule, .. } => ColKind::Enc {
                    rule,
                    origin: false,
                },
                Ev::Val(mut binds) => {
                    for b in &mut binds {
                        if let Bind::Param { site, .. } | Bind::Lit { site, .. } = b {
                            site.wraps.push(Wrap::Sealed);
                        }
                    }
                    ColKind::Val { binds }
                }
                Ev::Plain => ColKind::Plain,
            };
            cols.push(Col { name: c.name, kind });
        }
        Ok(Some(Rel {
            name: name.to_owned(),
            schema: None,
            cols,
            open: false,
        }))
    }

    fn values(&mut self, rows: &[Node]) -> R<Output> {
        let mut cols: Vec<OutCol> = Vec::new();
        let mut open = false;
        for row in rows {
            let Some(NodeEnum::List(items)) = row.node.as_ref() else {
                continue;
            };
            for (i, item) in items.items.iter().enumerate() {
                open |= expands(item);
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
        Ok(Output { cols, open })
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
                if let Ev::Enc { rule, .. } = &c.ev
                    && rule.mode == Mode::Randomized
                {
                    return Err(Refusal::column(rule, "DISTINCT"));
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
            if self.star(rt, &mut out)? {
                continue;
            }
            // `(x).*` expands to as many columns as x's type has: positions after it are
            // unknown, so the output is open (an INSERT … SELECT into encrypted columns is
            // then refused rather than mapped by guesswork).
            out.open |= rt.val.as_deref().is_some_and(expands);
            let ev = self.opt_expr(rt.val.as_deref())?;
            out.cols.push(OutCol {
                name: output_name(rt),
                ev,
            });
        }
        Ok(out)
    }

    /// Expands `*` / `rel.*`; false when `rt` is not a star.
    fn star(&mut self, rt: &ResTarget, out: &mut Output) -> R<bool> {
        let Some(NodeEnum::ColumnRef(c)) = rt.val.as_deref().and_then(|v| v.node.as_ref()) else {
            return Ok(false);
        };
        if !matches!(
            c.fields.last().and_then(|f| f.node.as_ref()),
            Some(NodeEnum::AStar(_))
        ) {
            return Ok(false);
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
        let cols: Vec<(bool, Vec<Col>)> = rels.iter().map(|r| (r.open, r.cols.clone())).collect();
        for (open, rcols) in cols {
            out.open |= open;
            for c in rcols {
                let ev = Analyzer::col_use(&c.kind);
                out.cols.push(OutCol { name: c.name, ev });
            }
        }
        Ok(true)
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
            let values = match w.recursive {
                false => self.values_rel(c.ctequery.as_deref(), &c.ctename)?,
                true => None,
            };
            let mut rel = match values {
                Some(rel) => rel,
                None => {
                    let (out, origin) = match c.ctequery.as_deref().and_then(|q| q.node.as_ref()) {
                        Some(NodeEnum::SelectStmt(s)) => (self.select(s)?, true),
                        // PostgreSQL reports a RETURNING column's table and column
                        // through a CTE too (markTargetListOrigins follows it).
                        Some(other) => (self.dml(other)?, true),
                        None => (Output::default(), true),
                    };
                    out.into_rel(self, &c.ctename, origin)?
                }
            };
            if w.recursive {
                self.ctes.pop();
            }
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

/// True for a composite expansion `(expr).*` (field selection of every column).
pub(crate) fn expands(n: &Node) -> bool {
    match n.node.as_ref() {
        Some(NodeEnum::AIndirection(i)) => i
            .indirection
            .iter()
            .any(|f| matches!(f.node, Some(NodeEnum::AStar(_)))),
        _ => false,
    }
}
