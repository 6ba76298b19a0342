//! Expressions: what each evaluates to (an encrypted column, a value to bind, or plaintext), and
//! the refusals for every operator, function or cast applied to an encrypted column.

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AConst, AExpr, AExprKind, ColumnRef, FuncCall, Node, SubLink, SubLinkType, TypeCast, a_const,
};

use super::analyzer::Analyzer;
use super::ast::sval;
use super::bind::{Bind, Ev, R, Site, Wrap};
use super::plan::{MatchOp, Refusal};
use super::scope::Resolved;
use crate::rules::Mode;

/// The last name of a qualified name list (`pg_catalog.lower` → `lower`).
fn last_name(names: &[Node]) -> String {
    names.iter().rev().find_map(sval).unwrap_or("?").to_owned()
}

/// The text of `-v` for a numeric constant's text `v`.
fn negate(v: &str) -> String {
    match v.strip_prefix('-') {
        Some(abs) => abs.to_owned(),
        None => format!("-{v}"),
    }
}

pub(crate) fn const_value(c: &AConst) -> Result<Option<String>, &'static str> {
    if c.isnull {
        return Ok(None);
    }
    match c.val.as_ref() {
        Some(a_const::Val::Ival(i)) => Ok(Some(i.ival.to_string())),
        Some(a_const::Val::Fval(f)) => Ok(Some(f.fval.clone())),
        Some(a_const::Val::Boolval(b)) => Ok(Some(b.boolval.to_string())),
        Some(a_const::Val::Sval(s)) => Ok(Some(s.sval.clone())),
        Some(a_const::Val::Bsval(_)) => Err("a bit-string literal"),
        None => Ok(None),
    }
}

impl Analyzer<'_, '_> {
    /// Evaluates an optional child.
    pub(crate) fn opt_expr(&mut self, n: Option<&Node>) -> R<Ev> {
        match n {
            Some(n) => self.expr(n),
            None => Ok(Ev::Plain),
        }
    }

    /// A WHERE/HAVING/ON condition (or any boolean operand).
    pub(crate) fn cond(&mut self, n: Option<&Node>) -> R<()> {
        let ev = self.opt_expr(n)?;
        self.plain_use(ev, || "use as a boolean condition".to_owned())
    }

    /// Evaluates `n` and uses it where no encrypted column may appear.
    pub(crate) fn plain_expr(&mut self, n: Option<&Node>, construct: &str) -> R<()> {
        let ev = self.opt_expr(n)?;
        self.plain_use(ev, || construct.to_owned())
    }

    /// What `node` evaluates to.
    pub(crate) fn expr(&mut self, node: &Node) -> R<Ev> {
        let Some(n) = node.node.as_ref() else {
            return Ok(Ev::Plain);
        };
        match n {
            NodeEnum::ColumnRef(c) => self.column_ref(c),
            NodeEnum::ParamRef(p) => self.param(p.number, p.location),
            NodeEnum::AConst(c) => Ok(Ev::Val(vec![Bind::Lit {
                value: const_value(c),
                site: Site {
                    loc: c.location,
                    wraps: Vec::new(),
                },
            }])),
            NodeEnum::TypeCast(tc) => self.type_cast(tc),
            NodeEnum::AExpr(a) => self.a_expr(a),
            NodeEnum::BoolExpr(b) => {
                for a in &b.args {
                    self.cond(Some(a))?;
                }
                Ok(Ev::Plain)
            }
            NodeEnum::NullTest(t) => {
                let ev = self.opt_expr(t.arg.as_deref())?;
                self.any_use(ev)?;
                Ok(Ev::Plain)
            }
            NodeEnum::BooleanTest(t) => self.plain_then(t.arg.as_deref(), "IS TRUE/FALSE/UNKNOWN"),
            NodeEnum::FuncCall(f) => self.func_call(f),
            NodeEnum::SubLink(s) => self.sublink(s),
            NodeEnum::SetToDefault(_) => Ok(Ev::Val(vec![Bind::Default])),
            NodeEnum::RowExpr(r) => self.plain_list(&r.args, "ROW()"),
            NodeEnum::List(l) => self.plain_list(&l.items, "a list"),
            NodeEnum::CoalesceExpr(c) => self.plain_list(&c.args, "COALESCE"),
            NodeEnum::MinMaxExpr(m) => self.plain_list(&m.args, "GREATEST/LEAST"),
            NodeEnum::AArrayExpr(a) => self.plain_list(&a.elements, "ARRAY[]"),
            NodeEnum::CollateClause(c) => self.plain_then(c.arg.as_deref(), "COLLATE"),
            NodeEnum::AIndirection(i) => {
                self.plain_list(&i.indirection, "a subscript")?;
                self.plain_then(i.arg.as_deref(), "a subscript or field selection")
            }
            NodeEnum::AIndices(i) => {
                self.plain_expr(i.lidx.as_deref(), "a subscript")?;
                self.plain_then(i.uidx.as_deref(), "a subscript")
            }
            NodeEnum::CaseExpr(c) => self.case_expr(c),
            NodeEnum::SqlvalueFunction(_) | NodeEnum::AStar(_) | NodeEnum::String(_) => {
                Ok(Ev::Plain)
            }
            NodeEnum::Integer(_) | NodeEnum::Float(_) | NodeEnum::Boolean(_) => Ok(Ev::Plain),
            other => self.opaque(other, "this expression"),
        }
    }

    fn plain_then(&mut self, n: Option<&Node>, construct: &str) -> R<Ev> {
        self.plain_expr(n, construct)?;
        Ok(Ev::Plain)
    }

    fn plain_list(&mut self, items: &[Node], construct: &str) -> R<Ev> {
        for i in items {
            self.plain_expr(Some(i), construct)?;
        }
        Ok(Ev::Plain)
    }

    fn column_ref(&mut self, c: &ColumnRef) -> R<Ev> {
        let names: Vec<&str> = c.fields.iter().filter_map(sval).collect();
        if c.fields
            .iter()
            .any(|f| matches!(f.node, Some(NodeEnum::AStar(_))))
        {
            // `rel.*` or `*` inside an expression (`row_to_json(c.*)`): the whole row, with
            // its ciphertexts. (A `*` in a target list is expanded before it gets here.)
            let rels: Vec<&super::scope::Rel> = match names.last() {
                Some(rel) => self.scopes.relation(rel).into_iter().collect(),
                None => self.scopes.current().iter().collect(),
            };
            if let Some(rule) = rels.iter().find_map(|r| r.first_encrypted()) {
                return Err(Refusal::column(rule, "a whole-row reference (rel.*)"));
            }
            return Ok(Ev::Plain);
        }
        if let [name] = names.as_slice() {
            self.whole_row(name)?;
        }
        let res = match names.as_slice() {
            [col] => self.scopes.unqualified(col),
            [rel, col] => self.scopes.qualified(None, rel, col),
            [schema, rel, col] | [_, schema, rel, col] => {
                self.scopes.qualified(Some(schema), rel, col)
            }
            _ => None,
        };
        let col = names.last().copied().unwrap_or("");
        match res {
            Some(Resolved::Enc { rule, origin }) => Ok(Ev::Enc { rule, origin }),
            Some(Resolved::Plain) => Ok(Ev::Plain),
            Some(Resolved::Val { binds }) => Ok(Ev::Val(binds)),
            Some(Resolved::Ambiguous(rule)) => {
                Err(Refusal::column(&rule, "an ambiguous column reference"))
            }
            None => match self.is_rules_column_name(col) {
                Some(rule) => Err(Refusal::column(
                    &rule,
                    "a column reference that cannot be resolved",
                )),
                None => Ok(Ev::Plain),
            },
        }
    }

    /// A bare name that is no known column but names a relation with encrypted columns is
    /// that relation's whole row (`json_agg(c)`, `SELECT c FROM t c`): refused.
    fn whole_row(&self, name: &str) -> R<()> {
        let Some(rule) = self.scopes.relation(name).and_then(|r| r.first_encrypted()) else {
            return Ok(());
        };
        let is_column = self
            .scopes
            .levels_iter()
            .any(|r| matches!(r.lookup(name), super::scope::Lookup::Found(_)));
        if is_column {
            return Ok(());
        }
        Err(Refusal::column(
            rule,
            format!("a whole-row reference ({name})"),
        ))
    }

    fn type_cast(&mut self, tc: &TypeCast) -> R<Ev> {
        let inner = self.opt_expr(tc.arg.as_deref())?;
        // The cast is written on the value itself (`$1::text`, `'a'::text::varchar(3)`,
        // `(-5)::int`), not on an expression around it (`(CASE … END)::text`).
        let direct = match tc.arg.as_deref().and_then(|n| n.node.as_ref()) {
            Some(NodeEnum::ParamRef(_) | NodeEnum::AConst(_)) => true,
            Some(NodeEnum::TypeCast(_) | NodeEnum::AExpr(_)) => match &inner {
                Ev::Val(binds) => binds.iter().all(|b| match b {
                    Bind::Param { site, .. } | Bind::Lit { site, .. } => {
                        !matches!(site.wraps.last(), Some(Wrap::Outer { .. }))
                    }
                    _ => true,
                }),
                _ => true,
            },
            _ => false,
        };
        let type_loc = tc.type_name.as_ref().map_or(-1, |t| t.location);
        let ty = tc
            .type_name
            .as_ref()
            .map_or_else(|| "?".to_owned(), |t| last_name(&t.names));
        match inner {
            Ev::Val(binds) if binds.iter().any(sealed) => {
                self.plain_use(Ev::Val(binds), String::new)?;
                Ok(Ev::Plain)
            }
            Ev::Val(mut binds) if binds.len() == 1 && direct => {
                match binds.first_mut() {
                    Some(Bind::Param { site, .. } | Bind::Lit { site, .. }) => {
                        site.wraps.push(Wrap::Cast {
                            loc: tc.location,
                            type_loc,
                            coerce: tc.type_name.as_ref().and_then(super::coerce::of_type),
                            ty: ty.to_ascii_lowercase(),
                            array: tc
                                .type_name
                                .as_ref()
                                .is_some_and(|t| !t.array_bounds.is_empty()),
                        });
                    }
                    _ => return Ok(Ev::Plain),
                }
                Ok(Ev::Val(binds))
            }
            // A cast around an expression of several values (`(CASE … END)::varchar(254)`).
            Ev::Val(mut binds) if binds.iter().all(outer_castable) => {
                for b in &mut binds {
                    if let Bind::Param { site, .. } | Bind::Lit { site, .. } = b {
                        site.wraps.push(Wrap::Outer {
                            loc: tc.location,
                            coerce: tc.type_name.as_ref().and_then(super::coerce::of_type),
                            ty: ty.to_ascii_lowercase(),
                        });
                    }
                }
                Ok(Ev::Val(binds))
            }
            Ev::Enc { rule, .. } => Err(Refusal::column(&rule, format!("cast ::{ty}"))),
            other => {
                self.plain_use(other, String::new)?;
                Ok(Ev::Plain)
            }
        }
    }

    fn a_expr(&mut self, a: &AExpr) -> R<Ev> {
        let op = last_name(&a.name);
        let kind = AExprKind::try_from(a.kind).unwrap_or(AExprKind::Undefined);
        let (l, r) = (a.lexpr.as_deref(), a.rexpr.as_deref());
        match kind {
            AExprKind::AexprOp if l.is_none() => self.prefix_op(&op, r, a.location),
            AExprKind::AexprOp if op == "=" || op == "<>" => {
                if let (Some(NodeEnum::RowExpr(lr)), Some(NodeEnum::RowExpr(rr))) = (
                    l.and_then(|n| n.node.as_ref()),
                    r.and_then(|n| n.node.as_ref()),
                ) {
                    if lr.args.len() == rr.args.len() {
                        for (x, y) in lr.args.iter().zip(&rr.args) {
                            let (x, y) = (self.expr(x)?, self.expr(y)?);
                            self.note_unrewritable(&x, &y);
                            self.compare(x, y, &op)?;
                        }
                        return Ok(Ev::Plain);
                    }
                }
                let (x, y) = (self.opt_expr(l)?, self.opt_expr(r)?);
                let m = if op == "=" { MatchOp::Eq } else { MatchOp::Ne };
                self.note_pair(m, (l, r), &x, &y);
                self.compare(x, y, &op)?;
                Ok(Ev::Plain)
            }
            AExprKind::AexprDistinct | AExprKind::AexprNotDistinct => {
                let (x, y) = (self.opt_expr(l)?, self.opt_expr(r)?);
                let m = if kind == AExprKind::AexprDistinct {
                    MatchOp::Distinct
                } else {
                    MatchOp::NotDistinct
                };
                self.note_pair(m, (l, r), &x, &y);
                self.compare(x, y, "IS DISTINCT FROM")?;
                Ok(Ev::Plain)
            }
            AExprKind::AexprIn => {
                let label = if op == "<>" { "NOT IN" } else { "IN" };
                let x = self.opt_expr(l)?;
                let nodes: Vec<&Node> = match r.and_then(|n| n.node.as_ref()) {
                    Some(NodeEnum::List(list)) => list.items.iter().collect(),
                    _ => r.into_iter().collect(),
                };
                let mut items = Vec::with_capacity(nodes.len());
                for node in nodes {
                    let y = self.expr(node)?;
                    items.push((node, y.clone()));
                    self.compare(x.clone(), y, label)?;
                }
                let m = if op == "<>" { MatchOp::Ne } else { MatchOp::Eq };
                self.note_in(m, a.location, l, &x, &items);
                self.any_use(x)?;
                Ok(Ev::Plain)
            }
            AExprKind::AexprOpAny => self.any_all(&op, false, l, r),
            AExprKind::AexprOpAll => self.any_all(&op, true, l, r),
            _ => {
                let construct = match kind {
                    AExprKind::AexprLike => "LIKE".to_owned(),
                    AExprKind::AexprIlike => "ILIKE".to_owned(),
                    AExprKind::AexprSimilar => "SIMILAR TO".to_owned(),
                    AExprKind::AexprBetween
                    | AExprKind::AexprNotBetween
                    | AExprKind::AexprBetweenSym
                    | AExprKind::AexprNotBetweenSym => "BETWEEN".to_owned(),
                    AExprKind::AexprNullif => "NULLIF".to_owned(),
                    _ => format!("operator {op}"),
                };
                self.plain_expr(l, &construct)?;
                self.plain_then(r, &construct)
            }
        }
    }

    /// `+x` / `-x` on a numeric constant, bare or cast (`+7`, `-5::int4`, which PostgreSQL
    /// parses as `-(5::int4)`): the sign belongs to the value. PostgreSQL already folds a
    /// `-` directly before a numeric constant into the constant.
    fn prefix_op(&mut self, op: &str, r: Option<&Node>, loc: i32) -> R<Ev> {
        let constant = match r.and_then(|n| n.node.as_ref()) {
            Some(NodeEnum::TypeCast(tc)) => tc.arg.as_deref().and_then(|n| n.node.as_ref()),
            other => other,
        };
        let numeric = matches!(
            constant,
            Some(NodeEnum::AConst(AConst {
                val: Some(a_const::Val::Ival(_) | a_const::Val::Fval(_)),
                ..
            }))
        );
        if (op == "+" || op == "-") && numeric {
            if let Ev::Val(mut binds) = self.opt_expr(r)? {
                if let Some(Bind::Lit { site, value }) = binds.first_mut() {
                    site.wraps.push(Wrap::Sign(loc));
                    if op == "-" {
                        if let Ok(Some(v)) = value {
                            *v = negate(v);
                        }
                    }
                }
                return Ok(Ev::Val(binds));
            }
        }
        self.plain_then(r, &format!("operator {op}"))
    }

    /// `CASE [arg] WHEN … THEN … END`: with an argument, each WHEN value is compared with it
    /// (`CASE ssn WHEN 'a' THEN …` on a deterministic column encrypts `'a'`; such a comparison
    /// cannot be spelled for every key version, so it is refused after a rotation).
    fn case_expr(&mut self, c: &pg_query::protobuf::CaseExpr) -> R<Ev> {
        let arg = self.opt_expr(c.arg.as_deref())?;
        let simple = c.arg.is_some();
        let mut results = Vec::with_capacity(c.args.len() + 1);
        for w in &c.args {
            let Some(NodeEnum::CaseWhen(w)) = w.node.as_ref() else {
                continue;
            };
            if simple {
                let when = self.opt_expr(w.expr.as_deref())?;
                self.note_unrewritable(&arg, &when);
                self.compare(arg.clone(), when, "CASE … WHEN")?;
            } else {
                self.cond(w.expr.as_deref())?;
            }
            results.push(self.opt_expr(w.result.as_deref())?);
        }
        if let Ev::Val(_) = arg {
            self.plain_use(arg, String::new)?;
        }
        if let Some(d) = c.defresult.as_deref() {
            results.push(self.expr(d)?);
        }
        // Results that are all values (Django's `bulk_update`: `CASE WHEN id = $1 THEN $2 …
        // ELSE NULL END`): the CASE's value is one of them, bound where it is used.
        if results
            .iter()
            .all(|r| matches!(r, Ev::Val(b) if !b.iter().any(sealed)))
        {
            let binds = results
                .into_iter()
                .flat_map(|r| match r {
                    Ev::Val(b) => b,
                    _ => Vec::new(),
                })
                .collect();
            return Ok(Ev::Val(binds));
        }
        for r in results {
            self.plain_use(r, || "CASE".to_owned())?;
        }
        Ok(Ev::Plain)
    }

    pub(crate) fn func_call(&mut self, f: &FuncCall) -> R<Ev> {
        let name = last_name(&f.funcname).to_ascii_lowercase();
        if let Some(base) = self.ctx.catalog.writer_function(&name) {
            return Err(Refusal::table(
                base,
                format!(
                    "a call of {name}(), whose body names it or runs dynamic SQL (pgcloak \
                     cannot see what it writes)"
                ),
            ));
        }
        let construct = format!("function {name}()");
        for a in &f.args {
            let ev = self.expr(a)?;
            match ev {
                Ev::Enc { rule, .. } if name == "count" => {
                    if f.agg_distinct && rule.mode == Mode::Randomized {
                        return Err(Refusal::column(&rule, "count(DISTINCT)"));
                    }
                }
                other => self.plain_use(other, || construct.clone())?,
            }
        }
        for s in &f.agg_order {
            self.sort_item(s, "ORDER BY inside an aggregate")?;
        }
        self.cond(f.agg_filter.as_deref())?;
        if let Some(w) = f.over.as_deref() {
            self.window_def(w)?;
        }
        Ok(Ev::Plain)
    }

    /// A `SortBy` node in an aggregate or window (refuses any encrypted column).
    pub(crate) fn sort_item(&mut self, s: &Node, construct: &str) -> R<()> {
        match s.node.as_ref() {
            Some(NodeEnum::SortBy(sb)) => self.plain_expr(sb.node.as_deref(), construct),
            _ => self.plain_expr(Some(s), construct),
        }
    }

    /// `OVER (PARTITION BY … ORDER BY …)`: partitioning is grouping (deterministic only).
    pub(crate) fn window_def(&mut self, w: &pg_query::protobuf::WindowDef) -> R<()> {
        for p in &w.partition_clause {
            match self.expr(p)? {
                Ev::Enc { rule, .. } if rule.mode == Mode::Deterministic => {}
                other => self.plain_use(other, || "PARTITION BY".to_owned())?,
            }
        }
        for s in &w.order_clause {
            self.sort_item(s, "ORDER BY")?;
        }
        self.plain_expr(w.start_offset.as_deref(), "a window frame")?;
        self.plain_expr(w.end_offset.as_deref(), "a window frame")
    }

    fn sublink(&mut self, s: &SubLink) -> R<Ev> {
        let kind = SubLinkType::try_from(s.sub_link_type).unwrap_or(SubLinkType::Undefined);
        let Some(NodeEnum::SelectStmt(sel)) = s.subselect.as_ref().and_then(|n| n.node.as_ref())
        else {
            return self.opaque_node(s.subselect.as_deref(), "this sub-select");
        };
        let out = self.select(sel)?;
        let mut cols = out.cols.into_iter().map(|c| c.ev);
        let first = cols.next().map(|ev| match ev {
            Ev::Enc { rule, .. } => Ev::Enc {
                rule,
                origin: false,
            },
            other => other,
        });
        for c in cols {
            self.any_use(c)?;
        }
        match kind {
            SubLinkType::ExistsSublink => {
                self.any_use(first.unwrap_or(Ev::Plain))?;
                Ok(Ev::Plain)
            }
            SubLinkType::ExprSublink => Ok(first.unwrap_or(Ev::Plain)),
            SubLinkType::AnySublink | SubLinkType::AllSublink => {
                let op = if s.oper_name.is_empty() {
                    "=".to_owned()
                } else {
                    last_name(&s.oper_name)
                };
                let test = self.opt_expr(s.testexpr.as_deref())?;
                let first = first.unwrap_or(Ev::Plain);
                if op == "=" || op == "<>" {
                    self.note_unrewritable(&test, &first);
                    self.compare(test, first, "IN (sub-select)")?;
                } else {
                    self.plain_use(test, || format!("operator {op}"))?;
                    self.plain_use(first, || format!("operator {op}"))?;
                }
                Ok(Ev::Plain)
            }
            _ => {
                self.plain_use(first.unwrap_or(Ev::Plain), || {
                    "ARRAY(sub-select)".to_owned()
                })?;
                Ok(Ev::Plain)
            }
        }
    }

    pub(crate) fn opaque_node(&mut self, n: Option<&Node>, construct: &str) -> R<Ev> {
        match n.and_then(|n| n.node.as_ref()) {
            Some(n) => self.opaque(n, construct),
            None => Ok(Ev::Plain),
        }
    }

    /// Fallback for constructs the analysis does not model: refuses when the construct names a
    /// rules table or a column name that is encrypted anywhere; its parameters become plaintext.
    pub(crate) fn opaque(&mut self, n: &NodeEnum, construct: &str) -> R<Ev> {
        // A node that cannot be serialised cannot be searched: refused, never counted plain.
        let Ok(json) = serde_json::to_value(n) else {
            return Err(self.refuse_text(format!("{construct} (not analysable)")));
        };
        let mut found = Found::default();
        found.walk(&json);
        for t in &found.tables {
            if self.ctx.rules.table_names().iter().any(|n| n == t) {
                return Err(self.refuse_text(construct.to_owned()));
            }
        }
        for c in &found.columns {
            if let Some(rule) = self.is_rules_column_name(c) {
                return Err(Refusal::column(&rule, construct.to_owned()));
            }
        }
        for (number, loc) in found.params {
            let ev = self.param(number, loc)?;
            self.plain_use(ev, String::new)?;
        }
        Ok(Ev::Plain)
    }
}

/// Names and parameters found anywhere inside an opaque node.
#[derive(Default)]
struct Found {
    tables: Vec<String>,
    columns: Vec<String>,
    params: Vec<(i32, i32)>,
}

impl Found {
    fn walk(&mut self, v: &serde_json::Value) {
        use serde_json::Value;
        match v {
            Value::Object(map) => {
                // A RangeVar or a column name held in a typed field rather than in a Node
                // (`CREATE TRIGGER … ON t`, `CREATE STATISTICS … ON col`).
                self.push_str(map.get("relname"), true);
                for field in ["colname", "name"] {
                    self.push_str(map.get(field), false);
                }
                for (k, inner) in map {
                    match k.as_str() {
                        "ColumnRef" | "String" => self.push_col(inner),
                        "ParamRef" => {
                            let get = |f: &str| inner.get(f).and_then(Value::as_i64).unwrap_or(0);
                            let n = i32::try_from(get("number")).unwrap_or(0);
                            self.params
                                .push((n, i32::try_from(get("location")).unwrap_or(-1)));
                        }
                        _ => {}
                    }
                    self.walk(inner);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| self.walk(i)),
            _ => {}
        }
    }

    fn push_str(&mut self, v: Option<&serde_json::Value>, table: bool) {
        if let Some(s) = v.and_then(serde_json::Value::as_str) {
            if table {
                self.tables.push(s.to_owned());
            } else {
                self.columns.push(s.to_owned());
            }
        }
    }

    fn push_col(&mut self, v: &serde_json::Value) {
        self.push_str(v.get("sval"), false);
    }
}

/// True when `b` reached its use through a `VALUES` column (see `Wrap::Sealed`).
fn sealed(b: &Bind) -> bool {
    match b {
        Bind::Param { site, .. } | Bind::Lit { site, .. } => super::bind::is_sealed(site),
        Bind::Array { .. } => true,
        Bind::Default => false,
    }
}

/// True when a cast around an expression can apply to `b` (see `Wrap::Outer`).
fn outer_castable(b: &Bind) -> bool {
    matches!(b, Bind::Param { .. } | Bind::Lit { .. })
}
