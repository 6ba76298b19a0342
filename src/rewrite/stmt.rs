//! Statements: parsing the text, dispatching each statement, and INSERT / UPDATE / DELETE
//! (with ON CONFLICT and RETURNING); COPY, PREPARE, EXECUTE, EXPLAIN and DDL.

use std::sync::Arc;

use pg_query::NodeEnum;
use pg_query::protobuf::{
    DeleteStmt, InsertStmt, Node, OnConflictClause, ResTarget, ReturningClause, UpdateStmt,
};

use super::analyzer::Analyzer;
use super::bind::{Ev, R};
use super::context::AnalysisContext;
use super::plan::{Analysis, Refusal};
use super::scope::{ColKind, Lookup, Rel};
use super::select::Output;
use crate::rules::ColumnRule;

/// Parses and analyses a whole text.
pub(crate) fn analyze_text(sql: &str, ctx: &AnalysisContext) -> Analysis {
    let parsed = match pg_query::parse(sql, 0) {
        Ok(p) => p,
        Err(e) => {
            let an = Analyzer::new(ctx, sql);
            // The refusal is raised through the server, whose log shows its message: keep the
            // parser's words, never the text it quotes (`at or near "'secret…"`).
            let message = match &e {
                pg_query::Error::Parse(m) => m
                    .split(" at or near ")
                    .next()
                    .and_then(|m| m.split('"').next())
                    .unwrap_or("")
                    .trim()
                    .to_owned(),
                _ => String::new(),
            };
            let message = if message.is_empty() {
                "the statement cannot be parsed".to_owned()
            } else {
                message
            };
            return Analysis::Refuse(Refusal::syntax(an.named_table(), &message));
        }
    };
    let stmts = &parsed.protobuf.stmts;
    let mut an = Analyzer::new(ctx, sql);
    for raw in stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            continue;
        };
        if let Err(mut refusal) = an.statement(node) {
            // Only a text of one statement may be passed on the strength of `prepared`.
            if stmts.len() > 1 {
                refusal.prepared = None;
            }
            return Analysis::Refuse(refusal);
        }
    }
    an.finish(stmts.len())
}

/// The encrypted rule of a target column, if any.
pub(crate) fn target_rule(rel: &Rel, name: &str) -> Option<Arc<ColumnRule>> {
    match rel.lookup(name) {
        Lookup::Found(ColKind::Enc { rule, .. }) => Some(rule.clone()),
        _ => None,
    }
}

/// The encrypted rule of each column an INSERT (or MERGE's INSERT) stores into, in order: the
/// column list, or without one the table's columns (refused when their order is unknown).
pub(crate) fn insert_targets(
    rel: &Rel,
    cols: &[Node],
    construct: &str,
) -> R<Vec<Option<Arc<ColumnRule>>>> {
    if cols.is_empty() {
        if let (true, Some(rule)) = (rel.open, rel.first_encrypted()) {
            return Err(Refusal::column(
                rule,
                format!("{construct} without a column list (column order unknown)"),
            ));
        }
        return Ok(rel.cols.iter().map(|c| target_rule(rel, &c.name)).collect());
    }
    let mut t = Vec::with_capacity(cols.len());
    for c in cols {
        let Some(NodeEnum::ResTarget(rt)) = c.node.as_ref() else {
            continue;
        };
        let rule = target_rule(rel, &rt.name);
        if let (Some(rule), false) = (&rule, rt.indirection.is_empty()) {
            return Err(Refusal::column(rule, "assignment to a subscript or field"));
        }
        t.push(rule);
    }
    Ok(t)
}

impl Analyzer<'_, '_> {
    /// One top-level statement.
    pub(crate) fn statement(&mut self, node: &NodeEnum) -> R<()> {
        match node {
            NodeEnum::SelectStmt(s) => {
                self.check_created_table(s.into_clause.as_deref(), "SELECT INTO")?;
                let out = self.select(s)?;
                self.emit(out)
            }
            NodeEnum::InsertStmt(_) | NodeEnum::UpdateStmt(_) | NodeEnum::DeleteStmt(_) => {
                let out = self.dml(node)?;
                self.emit(out)
            }
            NodeEnum::ExplainStmt(e) => {
                self.inner_statement(e.query.as_deref())?;
                // Its plan would show the encrypted constants (`Filter: (ssn = '\x01…')`).
                if self.binds_values() {
                    return Err(self.refuse_text(
                        "EXPLAIN of a statement with values bound for encrypted columns (its \
                         plan would show their ciphertext)",
                    ));
                }
                Ok(())
            }
            NodeEnum::DeclareCursorStmt(d) => self.inner_statement(d.query.as_deref()),
            NodeEnum::CopyStmt(c) => self.copy(c),
            NodeEnum::PrepareStmt(p) => self.prepare(p.query.as_deref()),
            NodeEnum::ExecuteStmt(e) if !e.params.is_empty() => {
                for p in &e.params {
                    self.plain_expr(Some(p), "a parameter of EXECUTE")?;
                }
                let mut r = self.refuse_text(
                    "EXECUTE with parameters of a statement pgcloak cannot tell touches no \
                     encrypted column (use the extended protocol)",
                );
                r.prepared = Some(e.name.clone());
                Err(r)
            }
            NodeEnum::CreateTableAsStmt(c)
                if matches!(
                    c.query.as_deref().and_then(|q| q.node.as_ref()),
                    Some(NodeEnum::ExecuteStmt(_))
                ) =>
            {
                // What the prepared statement returns is not known here: it could copy
                // ciphertext into a table pgcloak cannot map back to rules.
                Err(self.refuse_text("CREATE TABLE AS EXECUTE"))
            }
            NodeEnum::CreateTableAsStmt(c) => {
                self.check_created_table(c.into.as_deref(), "CREATE TABLE AS")?;
                self.query_without_encrypted(c.query.as_deref(), "CREATE TABLE AS")
            }
            NodeEnum::ViewStmt(v) => {
                self.query_without_encrypted(v.query.as_deref(), "CREATE VIEW")
            }
            NodeEnum::MergeStmt(m) => {
                let out = self.merge(m)?;
                self.emit(out)
            }
            NodeEnum::DoStmt(_) => Err(self.refuse_text("a DO block naming it")),
            NodeEnum::CreateFunctionStmt(_) => Err(self.refuse_text("a function body naming it")),
            NodeEnum::RuleStmt(_) => Err(self.refuse_text("CREATE RULE")),
            NodeEnum::CallStmt(c) => match c.funccall.as_ref() {
                Some(f) => self.func_call(f).map(|_| ()),
                None => Ok(()),
            },
            other => self.other_statement(other),
        }
    }

    /// `CREATE TABLE … AS` / `SELECT … INTO` may not create a table under a rules table's
    /// name (its columns would take the query's plaintext types).
    fn check_created_table(
        &self,
        into: Option<&pg_query::protobuf::IntoClause>,
        construct: &str,
    ) -> R<()> {
        let Some(rv) = into.and_then(|i| i.rel.as_ref()) else {
            return Ok(());
        };
        if self.ctx.rules.table_names().contains(&rv.relname) {
            return Err(self.refuse_text(format!(
                "{construct} creating a table named like a rules table"
            )));
        }
        Ok(())
    }

    fn inner_statement(&mut self, q: Option<&Node>) -> R<()> {
        match q.and_then(|q| q.node.as_ref()) {
            Some(n) => self.statement(n),
            None => Ok(()),
        }
    }

    fn query_without_encrypted(&mut self, q: Option<&Node>, construct: &str) -> R<()> {
        let Some(node) = q.and_then(|q| q.node.as_ref()) else {
            return Ok(());
        };
        let Some(out) = self.query_output(node, construct)? else {
            return Ok(());
        };
        self.no_encrypted_output(&out, construct)?;
        for c in out.cols {
            self.any_use(c.ev)?;
        }
        Ok(())
    }

    /// The output of a query nested in another statement (a SELECT, or DML with RETURNING);
    /// None for anything else, which is refused when it names a rules table or column.
    pub(crate) fn query_output(&mut self, node: &NodeEnum, construct: &str) -> R<Option<Output>> {
        match node {
            NodeEnum::SelectStmt(s) => self.select(s).map(Some),
            NodeEnum::InsertStmt(_) | NodeEnum::UpdateStmt(_) | NodeEnum::DeleteStmt(_) => {
                self.dml(node).map(Some)
            }
            other => self.opaque(other, construct).map(|_| None),
        }
    }

    /// COPY of a rules table, or of a query whose output holds encrypted columns: a plan for
    /// its data stream (see `copy`).
    fn copy(&mut self, c: &pg_query::protobuf::CopyStmt) -> R<()> {
        let plan = match (
            &c.relation,
            c.query.as_deref().and_then(|q| q.node.as_ref()),
        ) {
            (Some(rv), _) => {
                let rel = self.range_var(rv, false)?;
                self.copy_table(c, &rel)?
            }
            (None, Some(query)) => self.copy_query(c, query)?,
            (None, None) => None,
        };
        self.copies.push(plan);
        Ok(())
    }

    /// SQL-level PREPARE cannot be rewritten: refused when its statement needs a rewrite.
    fn prepare(&mut self, q: Option<&Node>) -> R<()> {
        let Some(node) = q.and_then(|q| q.node.as_ref()) else {
            return Ok(());
        };
        let mut inner = Analyzer::new(self.ctx, self.sql);
        inner.statement(node).map_err(|r| Refusal {
            construct: format!("PREPARE of {}", r.construct),
            ..r
        })?;
        if let Some(rule) = inner.first_bound() {
            return Err(Refusal::column(
                &rule,
                "PREPARE (use the extended protocol)",
            ));
        }
        // Its table names are qualified like those of any other statement.
        for (at, text) in inner.take_insertions() {
            self.insert_text(at, text);
        }
        Ok(())
    }

    /// INSERT / UPDATE / DELETE; returns the RETURNING output.
    pub(crate) fn dml(&mut self, node: &NodeEnum) -> R<Output> {
        match node {
            NodeEnum::InsertStmt(i) => self.with_ctes(i.with_clause.as_ref(), |an| an.insert(i)),
            NodeEnum::UpdateStmt(u) => self.with_ctes(u.with_clause.as_ref(), |an| an.update(u)),
            NodeEnum::DeleteStmt(d) => self.with_ctes(d.with_clause.as_ref(), |an| an.delete(d)),
            NodeEnum::SelectStmt(s) => self.select(s),
            other => {
                self.opaque(other, "this statement in a CTE")?;
                Ok(Output::default())
            }
        }
    }

    pub(crate) fn with_ctes<T>(
        &mut self,
        w: Option<&pg_query::protobuf::WithClause>,
        f: impl FnOnce(&mut Self) -> R<T>,
    ) -> R<T> {
        let mark = self.ctes.len();
        let res = match w {
            Some(w) => self.with_clause(w).and_then(|()| f(self)),
            None => f(self),
        };
        self.ctes.truncate(mark);
        res
    }

    pub(crate) fn target(&mut self, rv: Option<&pg_query::protobuf::RangeVar>) -> R<Rel> {
        match rv {
            Some(rv) => self.range_var(rv, false),
            None => Ok(Rel {
                name: String::new(),
                schema: None,
                cols: Vec::new(),
                open: true,
            }),
        }
    }

    fn insert(&mut self, i: &InsertStmt) -> R<Output> {
        let rel = self.target(i.relation.as_ref())?;
        let targets = insert_targets(&rel, &i.cols, "INSERT")?;
        self.insert_source(i.select_stmt.as_deref(), &targets)?;
        if let Some(oc) = i.on_conflict_clause.as_deref() {
            self.on_conflict(oc, &rel)?;
        }
        self.returning(i.returning_clause.as_ref(), rel)
    }

    fn insert_source(&mut self, src: Option<&Node>, targets: &[Option<Arc<ColumnRule>>]) -> R<()> {
        let Some(NodeEnum::SelectStmt(s)) = src.and_then(|n| n.node.as_ref()) else {
            return Ok(());
        };
        if targets.iter().any(Option::is_some)
            && let Some(res) = self.insert_from_values(s, targets)
        {
            return res;
        }
        let out = self.select(s)?;
        if out.open && targets.iter().any(Option::is_some) {
            return Err(self.refuse_text("INSERT … SELECT * over a table of unknown columns"));
        }
        for (i, col) in out.cols.into_iter().enumerate() {
            match targets.get(i).cloned().flatten() {
                Some(rule) => self.assign(&rule, col.ev)?,
                None => self.plain_use(col.ev, || "copying into a plaintext column".to_owned())?,
            }
        }
        Ok(())
    }

    fn on_conflict(&mut self, oc: &OnConflictClause, rel: &Rel) -> R<()> {
        self.scopes.push();
        let mut excluded = rel.clone();
        excluded.name = "excluded".to_owned();
        excluded.schema = None;
        self.scopes.add(rel.clone());
        self.scopes.add(excluded);
        let res = self.on_conflict_in_scope(oc, rel);
        self.scopes.pop();
        res
    }

    fn on_conflict_in_scope(&mut self, oc: &OnConflictClause, rel: &Rel) -> R<()> {
        if let Some(infer) = oc.infer.as_deref() {
            for e in &infer.index_elems {
                if let Some(NodeEnum::IndexElem(ie)) = e.node.as_ref() {
                    self.plain_expr(ie.expr.as_deref(), "an expression index in ON CONFLICT")?;
                }
            }
            self.cond(infer.where_clause.as_deref())?;
        }
        self.set_list(&oc.target_list, rel)?;
        self.cond(oc.where_clause.as_deref())
    }

    /// `SET a = v, (b, c) = (v1, v2), (d, e) = (SELECT …)`.
    pub(crate) fn set_list(&mut self, targets: &[Node], rel: &Rel) -> R<()> {
        let mut multi: Vec<Ev> = Vec::new();
        for t in targets {
            let Some(NodeEnum::ResTarget(rt)) = t.node.as_ref() else {
                continue;
            };
            let ev = self.set_value(rt, &mut multi)?;
            match target_rule(rel, &rt.name) {
                Some(rule) if !rt.indirection.is_empty() => {
                    return Err(Refusal::column(&rule, "assignment to a subscript or field"));
                }
                Some(rule) => self.assign(&rule, ev)?,
                None => self.plain_use(ev, || "copying into a plaintext column".to_owned())?,
            }
        }
        for ev in multi {
            self.any_use(ev)?;
        }
        Ok(())
    }

    /// The value assigned by one SET item; a multi-column sub-select's outputs are computed at
    /// its first column and kept in `multi`.
    fn set_value(&mut self, rt: &ResTarget, multi: &mut Vec<Ev>) -> R<Ev> {
        let Some(NodeEnum::MultiAssignRef(m)) = rt.val.as_deref().and_then(|v| v.node.as_ref())
        else {
            return self.opt_expr(rt.val.as_deref());
        };
        let idx = usize::try_from(m.colno).unwrap_or(0).saturating_sub(1);
        match m.source.as_deref().and_then(|s| s.node.as_ref()) {
            Some(NodeEnum::RowExpr(r)) => r.args.get(idx).map_or(Ok(Ev::Plain), |a| self.expr(a)),
            Some(NodeEnum::SubLink(sl)) => {
                if idx == 0 {
                    multi.clear();
                    if let Some(NodeEnum::SelectStmt(s)) =
                        sl.subselect.as_deref().and_then(|n| n.node.as_ref())
                    {
                        let out = self.select(s)?;
                        multi.extend(out.cols.into_iter().map(|c| match c.ev {
                            Ev::Enc { rule, .. } => Ev::Enc {
                                rule,
                                origin: false,
                            },
                            other => other,
                        }));
                    }
                }
                Ok(multi
                    .get_mut(idx)
                    .map(|e| std::mem::replace(e, Ev::Plain))
                    .unwrap_or(Ev::Plain))
            }
            other => match other {
                Some(n) => self.opaque(n, "this multi-column assignment"),
                None => Ok(Ev::Plain),
            },
        }
    }

    fn update(&mut self, u: &UpdateStmt) -> R<Output> {
        let rel = self.target(u.relation.as_ref())?;
        self.scopes.push();
        self.scopes.add(rel.clone());
        let res = (|| {
            for f in &u.from_clause {
                self.add_from_item(f)?;
            }
            self.set_list(&u.target_list, &rel)?;
            self.cond(u.where_clause.as_deref())?;
            self.returning_in_scope(u.returning_clause.as_ref())
        })();
        self.scopes.pop();
        res
    }

    fn delete(&mut self, d: &DeleteStmt) -> R<Output> {
        let rel = self.target(d.relation.as_ref())?;
        self.scopes.push();
        self.scopes.add(rel);
        let res = (|| {
            for f in &d.using_clause {
                self.add_from_item(f)?;
            }
            self.cond(d.where_clause.as_deref())?;
            self.returning_in_scope(d.returning_clause.as_ref())
        })();
        self.scopes.pop();
        res
    }

    fn returning(&mut self, r: Option<&ReturningClause>, rel: Rel) -> R<Output> {
        self.scopes.push();
        self.scopes.add(rel);
        let res = self.returning_in_scope(r);
        self.scopes.pop();
        res
    }

    pub(crate) fn returning_in_scope(&mut self, r: Option<&ReturningClause>) -> R<Output> {
        match r {
            Some(r) => self.target_list(&r.exprs),
            None => Ok(Output::default()),
        }
    }
}
