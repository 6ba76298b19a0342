//! Operators (`a_expr`, prefix operators) and `CASE`: which are allowed on encrypted columns
//! (equality on deterministic ones), which refused.

use super::{last_name, negate, sealed};
use crate::rewrite::analyzer::Analyzer;
use crate::rewrite::bind::{Bind, Ev, R, Wrap};
use crate::rewrite::plan::MatchOp;
use pg_query::NodeEnum;
use pg_query::protobuf::{AConst, AExpr, AExprKind, Node, a_const};

impl Analyzer<'_, '_> {
    pub(super) fn a_expr(&mut self, a: &AExpr) -> R<Ev> {
        let op = last_name(&a.name);
        let kind = AExprKind::try_from(a.kind).unwrap_or(AExprKind::Undefined);
        let (l, r) = (a.lexpr.as_deref(), a.rexpr.as_deref());
        match kind {
            AExprKind::AexprOp if l.is_none() => self.prefix_op(&op, r, a.location),
            AExprKind::AexprOp if op == "=" || op == "<>" => {
                if let (Some(NodeEnum::RowExpr(lr)), Some(NodeEnum::RowExpr(rr))) = (
                    l.and_then(|n| n.node.as_ref()),
                    r.and_then(|n| n.node.as_ref()),
                ) && lr.args.len() == rr.args.len()
                {
                    for (x, y) in lr.args.iter().zip(&rr.args) {
                        let (x, y) = (self.expr(x)?, self.expr(y)?);
                        self.note_unrewritable(&x, &y);
                        self.compare(x, y, &op)?;
                    }
                    return Ok(Ev::Plain);
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
    pub(super) fn prefix_op(&mut self, op: &str, r: Option<&Node>, loc: i32) -> R<Ev> {
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
        if (op == "+" || op == "-")
            && numeric
            && let Ev::Val(mut binds) = self.opt_expr(r)?
        {
            if let Some(Bind::Lit { site, value }) = binds.first_mut() {
                site.wraps.push(Wrap::Sign(loc));
                if op == "-"
                    && let Ok(Some(v)) = value
                {
                    *v = negate(v);
                }
            }
            return Ok(Ev::Val(binds));
        }
        self.plain_then(r, &format!("operator {op}"))
    }

    /// `CASE [arg] WHEN … THEN … END`: with an argument, each WHEN value is compared with it
    /// (`CASE ssn WHEN 'a' THEN …` on a deterministic column encrypts `'a'`; such a comparison
    /// cannot be spelled for every key version, so it is refused after a rotation).
    pub(super) fn case_expr(&mut self, c: &pg_query::protobuf::CaseExpr) -> R<Ev> {
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
}
