//! Binding values to an encrypted column: the source range a value occupies, casts and
//! type-modifier coercions stripped or applied to parameters and literals.

use std::sync::Arc;

use super::{Analyzer, ParamUse};
use crate::rewrite::bind::{Bind, R, Site, Wrap, cast_of, is_element, is_sealed};
use crate::rewrite::coerce;
use crate::rewrite::plan::{Coerce, CoerceError, LiteralKind, LiteralSite, RefCast, Refusal};
use crate::rewrite::span::decode_unicode;
use crate::rules::ColumnRule;

impl<'a, 'c> Analyzer<'a, 'c> {
    /// The byte range of a bound value including its wraps.
    pub(crate) fn range(&mut self, site: &Site, rule: &ColumnRule) -> R<(usize, usize)> {
        let bad = || Refusal::column(rule, "a value whose position in the text cannot be located");
        let toks = self.tokens()?;
        let (mut start, mut end) = toks.constant(site.loc).ok_or_else(bad)?;
        for w in &site.wraps {
            match *w {
                Wrap::Sign(loc) => {
                    start = usize::try_from(loc).map_err(|_| bad())?.min(start);
                    end = toks.sign_end(loc).map_or(end, |e| e.max(end));
                }
                Wrap::Sealed | Wrap::Element | Wrap::Outer { .. } => {}
                Wrap::Cast { loc, type_loc, .. } if loc < 0 => {
                    start = usize::try_from(type_loc).map_err(|_| bad())?.min(start);
                }
                Wrap::Cast { loc, .. } => {
                    // `($1)::text`: the cast's operand in parentheses.
                    (start, end) = toks.widen_parens(start, end);
                    end = toks.cast_end(loc).ok_or_else(bad)?.max(end);
                    if toks.kind_at(loc) == Some(pg_query::protobuf::Token::Cast) {
                        start = usize::try_from(loc).map_err(|_| bad())?.min(start);
                    }
                }
            }
        }
        Ok((start, end))
    }

    /// Removes the `::type` of a cast on a column reference carrying `rule`'s values (the cast
    /// whose `::` starts at `loc`); `CAST(… AS …)` is refused.
    pub(crate) fn strip_ref_cast(&mut self, loc: i32, rule: &ColumnRule) -> R<()> {
        let bad = || Refusal::column(rule, "a cast on a column carrying its values");
        let toks = self.tokens()?;
        if toks.kind_at(loc) != Some(pg_query::protobuf::Token::Typecast) {
            return Err(bad());
        }
        let end = toks.cast_end(loc).ok_or_else(bad)?;
        let start = usize::try_from(loc).map_err(|_| bad())?;
        self.ref_casts.push(RefCast { start, end });
        Ok(())
    }

    /// Records that `binds` are values of `rule`'s column.
    pub(crate) fn bind(&mut self, binds: Vec<Bind>, rule: &Arc<ColumnRule>) -> R<()> {
        for b in binds {
            match b {
                // The column's default: NULL, or whatever DDL around pgcloak stored as
                // bytea (DDL through pgcloak cannot give an encrypted column a default).
                Bind::Default => {}
                Bind::Param { number, site } => {
                    let casts = site.wraps.iter().filter_map(cast_of);
                    let coerce = self.cast_coerce(casts, is_element(&site), rule)?;
                    if is_element(&site) {
                        self.use_param_as(number, ParamUse::StoreArray(rule.clone()))?;
                    } else {
                        self.use_param(number, Some(rule))?;
                    }
                    if let Some(c) = coerce {
                        self.coerce_param(number, c, rule)?;
                    }
                    self.param_cast(number, &site, rule)?;
                    self.strip_outer(&site, rule)?;
                }
                Bind::Array {
                    elements,
                    range,
                    casts,
                    loc,
                } => self.bind_array(elements, range, &casts, loc, rule)?,
                Bind::Lit { value, site } => {
                    if is_sealed(&site) && !self.sealed_use(&site, Some(rule))? {
                        continue;
                    }
                    let value = value.map_err(|c| Refusal::column(rule, c))?;
                    let value = self.decode_unicode(value, &site, rule)?;
                    let value = self.coerce_literal(value, &site, rule)?;
                    let (start, end) = self.range(&site, rule)?;
                    self.strip_outer(&site, rule)?;
                    self.literals.push(LiteralSite {
                        start,
                        end,
                        value,
                        rule: rule.clone(),
                        kind: LiteralKind::Value,
                    });
                }
            }
        }
        Ok(())
    }

    /// Checks the casts on a parameter bound for `rule` (each must be one PostgreSQL assigns as
    /// the same value; an array cast only on an array of values) and returns the type-modifier
    /// coercion to apply to it at Bind, if any.
    pub(crate) fn cast_coerce<'w>(
        &self,
        casts: impl Iterator<Item = (Option<Coerce>, &'w str, bool)>,
        element: bool,
        rule: &ColumnRule,
    ) -> R<Option<Coerce>> {
        let mut out = None;
        for (coerce, ty, array) in casts {
            if array != element {
                return Err(Refusal::column(
                    rule,
                    if element {
                        "an unnested array cast to a scalar type"
                    } else {
                        "an array cast on a single value"
                    },
                ));
            }
            if !coerce::cast_fits(ty, coerce, rule.ty) {
                return Err(Refusal::column(
                    rule,
                    format!(
                        "a value cast to {ty} (PostgreSQL would convert it on assignment; cast \
                         it to the column's own type, {})",
                        rule.ty.name()
                    ),
                ));
            }
            match coerce {
                None | Some(Coerce::Integer) => {}
                Some(Coerce::Unsupported) => {
                    return Err(Refusal::column(rule, "a cast with this type modifier"));
                }
                Some(_) if out.is_some() => {
                    return Err(Refusal::column(rule, "two casts with type modifiers"));
                }
                Some(c) => out = Some(c),
            }
        }
        Ok(out)
    }

    /// Records that parameter `n` is coerced by `c` before it is encrypted.
    pub(super) fn coerce_param(&mut self, n: usize, c: Coerce, rule: &ColumnRule) -> R<()> {
        match self.coerces.iter().find(|x| x.0 == n - 1) {
            Some(x) if x.1 == c => Ok(()),
            Some(_) => Err(Refusal::column(
                rule,
                format!("parameter ${n} under two different type-modifier casts"),
            )),
            None => {
                self.coerces.push((n - 1, c));
                Ok(())
            }
        }
    }

    /// Removes the `::type` of each cast around an expression holding the value (see
    /// `Wrap::Outer`): the expression's values become `bytea`.
    pub(super) fn strip_outer(&mut self, site: &Site, rule: &ColumnRule) -> R<()> {
        for w in &site.wraps {
            if let Wrap::Outer { loc, .. } = w {
                self.strip_ref_cast(*loc, rule)?;
            }
        }
        Ok(())
    }

    /// The value PostgreSQL would store for a literal: its casts' type modifiers applied,
    /// and a numeric constant bound for an integer column rounded (assignment rounds).
    pub(super) fn coerce_literal(
        &mut self,
        v: Option<String>,
        site: &Site,
        rule: &ColumnRule,
    ) -> R<Option<String>> {
        let Some(mut v) = v else { return Ok(None) };
        let refuse = |e: CoerceError| match e {
            CoerceError::Overflow => Refusal::column(rule, "a value that overflows its cast"),
            CoerceError::Unsupported => Refusal::column(rule, "a cast with this type modifier"),
        };
        for (coerce, ty, array) in site.wraps.iter().filter_map(cast_of) {
            if array {
                return Err(Refusal::column(rule, "an array cast on a single value"));
            }
            // Only casts whose result PostgreSQL assigns to the column as the same value.
            if !coerce::cast_fits(ty, coerce, rule.ty) {
                return Err(Refusal::column(
                    rule,
                    format!(
                        "a value cast to {ty} (PostgreSQL would convert it on assignment; cast \
                         it to the column's own type, {})",
                        rule.ty.name()
                    ),
                ));
            }
            if let Some(c) = coerce
                && c != Coerce::Integer
            {
                v = coerce::apply(c, &v).map_err(refuse)?;
            }
        }
        use crate::codec::LogicalType as L;
        // A numeric constant (`5.7`, `-2.5`: the parser folds the sign in), not a string.
        let numeric = usize::try_from(site.loc)
            .ok()
            .and_then(|at| self.sql.as_bytes().get(at))
            .is_some_and(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+'));
        // pg_query's grammar is PostgreSQL 18's: `0x1F`, `0o17`, `0b1`, `1_000` are numbers
        // there, errors on PostgreSQL 15. Written in the text, not in the value pg_query gives.
        if numeric && !coerce::pg15_number(self.number_text(site.loc)) {
            return Err(Refusal::column(
                rule,
                "a numeric literal in a form PostgreSQL 15 does not accept (hex, octal, \
                 binary or with underscores)",
            ));
        }
        // A numeric constant's text is PostgreSQL's only when plainly written (`1e3`, `.5`
        // and `5.` become 1000, 0.5 and 5); text columns store that text.
        if numeric
            && !matches!(rule.ty, L::Numeric | L::Float4 | L::Float8)
            && !coerce::plain_number(&v)
        {
            return Err(Refusal::column(
                rule,
                "a numeric constant not written plainly (write it as digits, or quote it)",
            ));
        }
        if numeric && matches!(rule.ty, L::Int2 | L::Int4 | L::Int8) {
            v = coerce::apply(Coerce::Integer, &v).map_err(refuse)?;
        }
        Ok(Some(v))
    }

    /// The source text of the numeric constant at `loc` (after any signs, spaces and
    /// parentheses folded into it).
    pub(super) fn number_text(&self, loc: i32) -> &str {
        let rest = usize::try_from(loc)
            .ok()
            .and_then(|at| self.sql.get(at..))
            .unwrap_or("");
        let rest =
            rest.trim_start_matches(|c: char| matches!(c, '-' | '+' | '(') || c.is_whitespace());
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
            .unwrap_or(rest.len());
        rest.get(..end).unwrap_or("")
    }

    pub(crate) fn decode_unicode(
        &mut self,
        v: Option<String>,
        site: &Site,
        rule: &ColumnRule,
    ) -> R<Option<String>> {
        let Some(v) = v else { return Ok(None) };
        let sql = self.sql;
        let esc = self
            .tokens()?
            .unicode_escape(sql, site.loc)
            .ok_or_else(|| Refusal::column(rule, "a U&'' literal with an invalid UESCAPE"))?;
        match esc {
            None => Ok(Some(v)),
            Some(c) => decode_unicode(&v, c)
                .map(Some)
                .ok_or_else(|| Refusal::column(rule, "a U&'' literal with an invalid escape")),
        }
    }
}
