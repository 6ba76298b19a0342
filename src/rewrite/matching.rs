//! Equality tests of deterministic columns against values (`=`, `<>`, `IN`, `NOT IN`,
//! `IS [NOT] DISTINCT FROM`): where each sits in the text, so the session can make it match
//! values stored under every version of the column's key (after `pgcloak keys rotate`, rows
//! written before and after the rotation hold different ciphertexts for the same value).
//!
//! A site is rewritten as a whole: `ssn = $1` → `(ssn = ANY($3::bytea[]))`, where `$3` is an
//! extra parameter holding the value encrypted under every version; in the simple protocol the
//! array is spelled out (`ARRAY[E'\\x…'::bytea, …]`). A comparison whose text cannot be
//! rewritten (row comparisons, `$1 IN (col_a, col_b)`, values from a sub-select) has no span:
//! the session refuses it when the key has more than one version.

use std::sync::Arc;

use pg_query::NodeEnum;
use pg_query::protobuf::Node;

use super::analyzer::Analyzer;
use super::bind::{Bind, Ev, Site, Wrap};
use super::plan::{Coerce, MatchItem, MatchOp, MatchSite, MatchSpan};
use crate::rules::{ColumnRule, Mode};

/// The deterministic rule of an encrypted operand.
fn det_rule(ev: &Ev) -> Option<&Arc<ColumnRule>> {
    match ev {
        Ev::Enc { rule, .. } if rule.mode == Mode::Deterministic => Some(rule),
        _ => None,
    }
}

fn column_loc(n: Option<&Node>) -> Option<i32> {
    match n.and_then(|n| n.node.as_ref()) {
        Some(NodeEnum::ColumnRef(c)) => Some(c.location),
        _ => None,
    }
}

/// A value written in place (a parameter or literal, possibly cast or signed), not one coming
/// from a sub-select or another relation's column.
fn in_place(n: Option<&Node>) -> bool {
    match n.and_then(|n| n.node.as_ref()) {
        Some(NodeEnum::ParamRef(_) | NodeEnum::AConst(_)) => true,
        Some(NodeEnum::TypeCast(tc)) => in_place(tc.arg.as_deref()),
        Some(NodeEnum::AExpr(a)) => a.lexpr.is_none() && in_place(a.rexpr.as_deref()),
        _ => false,
    }
}

impl Analyzer<'_, '_> {
    /// Records `l op r` (already accepted by `compare`) when one side is a deterministic column
    /// and the other a value.
    pub(crate) fn note_pair(
        &mut self,
        op: MatchOp,
        nodes: (Option<&Node>, Option<&Node>),
        l: &Ev,
        r: &Ev,
    ) {
        let (col_node, val_node, rule, value) = match (det_rule(l), det_rule(r)) {
            (Some(rule), None) => (nodes.0, nodes.1, rule.clone(), r),
            (None, Some(rule)) => (nodes.1, nodes.0, rule.clone(), l),
            _ => return,
        };
        if !matches!(value, Ev::Val(_)) {
            return;
        }
        let span = if in_place(val_node) {
            self.pair_span(col_node, &rule, value)
        } else {
            None
        };
        self.matches.push(MatchSite { rule, op, span });
    }

    fn pair_span(
        &mut self,
        col: Option<&Node>,
        rule: &ColumnRule,
        value: &Ev,
    ) -> Option<MatchSpan> {
        let (item, v_range) = self.value_item(value, rule)?;
        let toks = self.tokens().ok()?;
        let c = toks.column_ref(column_loc(col)?)?;
        let c_wide = toks.widen_parens(c.0, c.1);
        let v_wide = toks.widen_parens(v_range.0, v_range.1);
        Some(MatchSpan {
            start: c_wide.0.min(v_wide.0),
            end: c_wide.1.max(v_wide.1),
            column: c,
            items: vec![item],
        })
    }

    /// `col [NOT] IN (v1, v2, other_col)` (each item already accepted by `compare`). `loc` is
    /// the location of the IN expression (its `IN` or `NOT`).
    pub(crate) fn note_in(
        &mut self,
        op: MatchOp,
        loc: i32,
        col: Option<&Node>,
        l: &Ev,
        items: &[(&Node, Ev)],
    ) {
        let Some(rule) = det_rule(l).cloned() else {
            if let Some((_, r)) = items.iter().find(|(_, r)| det_rule(r).is_some())
                && matches!(l, Ev::Val(_))
            {
                self.note_unrewritable(l, r);
            }
            return;
        };
        if !items.iter().any(|(_, ev)| matches!(ev, Ev::Val(_))) {
            return;
        }
        let span = self.in_span(loc, col, &rule, items);
        self.matches.push(MatchSite { rule, op, span });
    }

    fn in_span(
        &mut self,
        loc: i32,
        col: Option<&Node>,
        rule: &ColumnRule,
        items: &[(&Node, Ev)],
    ) -> Option<MatchSpan> {
        let mut out = Vec::with_capacity(items.len());
        for (node, ev) in items {
            let item = match ev {
                Ev::Val(_) if in_place(Some(node)) => self.value_item(ev, rule)?.0,
                Ev::Val(_) => return None,
                Ev::Enc { .. } => {
                    let (s, e) = self.tokens().ok()?.column_ref(column_loc(Some(node))?)?;
                    MatchItem::Column(s, e)
                }
                Ev::Plain => return None,
            };
            out.push(item);
        }
        let toks = self.tokens().ok()?;
        let column = toks.column_ref(column_loc(col)?)?;
        let start = toks.widen_parens(column.0, column.1).0;
        let end = toks.in_list_end(loc)?;
        Some(MatchSpan {
            start,
            end,
            column,
            items: out,
        })
    }

    /// A comparison between a deterministic column and a value whose text cannot be
    /// rewritten (row comparisons, sub-selects): refused once the key has several versions.
    pub(crate) fn note_unrewritable(&mut self, l: &Ev, r: &Ev) {
        let rule = match (det_rule(l), det_rule(r)) {
            (Some(rule), None) if !matches!(r, Ev::Plain) => rule.clone(),
            (None, Some(rule)) if !matches!(l, Ev::Plain) => rule.clone(),
            _ => return,
        };
        self.matches.push(MatchSite {
            rule,
            op: MatchOp::Eq,
            span: None,
        });
    }

    /// A single parameter or literal: the item and its range in the text.
    fn value_item(&mut self, ev: &Ev, rule: &ColumnRule) -> Option<(MatchItem, (usize, usize))> {
        let Ev::Val(binds) = ev else { return None };
        let [bind] = binds.as_slice() else {
            return None;
        };
        // Values the Bind changes before it encrypts them (a cast's type modifier) or that are
        // not the operand itself are matched under the current key version only.
        let around = |site: &Site| {
            (site.wraps.iter()).any(|w| match w {
                Wrap::Outer { .. } | Wrap::Element => true,
                Wrap::Cast { coerce, .. } => !matches!(coerce, None | Some(Coerce::Integer)),
                Wrap::Sign(_) | Wrap::Sealed => false,
            })
        };
        match bind {
            Bind::Param { site, .. } | Bind::Lit { site, .. } if around(site) => None,
            Bind::Param { number, site } => {
                let range = self.range(site, rule).ok()?;
                Some((MatchItem::Param(*number), range))
            }
            Bind::Lit { value, site } => {
                let value = value.clone().ok()?;
                let value = self.decode_unicode(value, site, rule).ok()?;
                let range = self.range(site, rule).ok()?;
                Some((MatchItem::Literal(value), range))
            }
            Bind::Default | Bind::Array { .. } => None,
        }
    }
}

#[cfg(test)]
#[path = "matching_tests.rs"]
mod tests;
