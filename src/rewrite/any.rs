//! `col = ANY(…)` and `col <> ALL(…)` on a deterministic column: the array form of `IN` and
//! `NOT IN` that drivers use for lists (`= ANY($1)` with an array parameter: asyncpg, sqlx,
//! pgx, node-postgres; `= ANY(ARRAY['a','b'])`: psycopg2's list adaptation).
//!
//! Each value becomes its ciphertexts under every version of the column's key, so the test
//! still finds rows written before a rotation without a match site:
//! - `$n` (optionally cast, `$1::text[]`): an array parameter, sent as `bytea[]`;
//! - an array literal (`'{a,b}'`): replaced by `ARRAY[…]::bytea[]`;
//! - `ARRAY[v1, v2]` (optionally cast): each literal element replaced in place; a parameter
//!   element is a scalar bound for the column (one version: refused after a rotation, like
//!   other comparisons that cannot be rewritten).
//!
//! Any other array (a column, a function result) and any other operator is refused.

use pg_query::NodeEnum;
use pg_query::protobuf::Node;

use super::analyzer::Analyzer;
use super::bind::{Bind, Ev, R};
use super::plan::{LiteralKind, LiteralSite, Refusal};
use crate::rules::{ColumnRule, Mode};
use std::sync::Arc;

impl Analyzer<'_, '_> {
    /// `l op ANY (r)` (`all`: `op ALL (r)`).
    pub(crate) fn any_all(
        &mut self,
        op: &str,
        all: bool,
        l: Option<&Node>,
        r: Option<&Node>,
    ) -> R<Ev> {
        let label = format!("{op} {}", if all { "ALL" } else { "ANY" });
        let x = self.opt_expr(l)?;
        let Ev::Enc { rule, .. } = &x else {
            self.plain_use(x, || format!("{label} (an array of values)"))?;
            self.plain_expr(r, &label)?;
            return Ok(Ev::Plain);
        };
        let rule = rule.clone();
        let equality = (op == "=" && !all) || (op == "<>" && all);
        if !equality {
            return Err(Refusal::column(&rule, label));
        }
        if rule.mode != Mode::Deterministic {
            return Err(Refusal::column(
                &rule,
                format!("{label} (randomized encryption)"),
            ));
        }
        self.array_operand(x, &rule, r, &label)?;
        Ok(Ev::Plain)
    }

    fn array_operand(
        &mut self,
        col: Ev,
        rule: &Arc<ColumnRule>,
        r: Option<&Node>,
        label: &str,
    ) -> R<()> {
        let bad = || {
            Refusal::column(
                rule,
                format!(
                    "{label} over an array that is not a parameter, an array literal or \
                     ARRAY[…] of values"
                ),
            )
        };
        let node = r.ok_or_else(bad)?;
        let inner = node.node.as_ref().ok_or_else(bad)?;
        let (array, cast_loc) = match inner {
            NodeEnum::TypeCast(tc) => match tc.arg.as_deref().and_then(|n| n.node.as_ref()) {
                Some(NodeEnum::AArrayExpr(a)) => (Some(a), Some(tc.location)),
                _ => (None, None),
            },
            NodeEnum::AArrayExpr(a) => (Some(a), None),
            _ => (None, None),
        };
        if let Some(a) = array {
            if let Some(loc) = cast_loc {
                self.strip_ref_cast(loc, rule)?;
            }
            for e in &a.elements {
                self.array_element(&col, e, label)?;
            }
            return Ok(());
        }
        let Ev::Val(binds) = self.expr(node)? else {
            return Err(bad());
        };
        let [bind] = binds.as_slice() else {
            return Err(bad());
        };
        match bind {
            Bind::Param { number, site } => {
                self.use_array_param(*number, rule)?;
                self.param_cast(*number, site, rule)
            }
            Bind::Lit { value, site } => {
                let value = value.clone().map_err(|c| Refusal::column(rule, c))?;
                let value = self.decode_unicode(value, site, rule)?;
                let (start, end) = self.range(site, rule)?;
                self.push_literal(LiteralSite {
                    start,
                    end,
                    value,
                    rule: rule.clone(),
                    kind: LiteralKind::Array,
                });
                Ok(())
            }
            Bind::Default | Bind::Array { .. } => Err(bad()),
        }
    }

    /// One element of `col = ANY(ARRAY[…])`: compared with the column like an IN item.
    fn array_element(&mut self, col: &Ev, e: &Node, label: &str) -> R<()> {
        let mark = self.literal_mark();
        let y = self.expr(e)?;
        let param = matches!(&y, Ev::Val(b) if b.iter().any(|b| matches!(b, Bind::Param { .. })));
        if param {
            self.note_unrewritable(col, &y);
        }
        self.compare(col.clone(), y, &format!("{label}(ARRAY[…])"))?;
        self.mark_literals(mark, LiteralKind::Element);
        Ok(())
    }
}

#[cfg(test)]
#[path = "any_tests.rs"]
mod tests;
