//! `UNNEST` of arrays of values in FROM, the multi-row insert Django's `bulk_create` sends
//! (`INSERT … SELECT * FROM UNNEST(($1)::varchar(254)[], ($2)::integer[])`): each array's
//! elements are the values of one column, bound where the column is used, like a `VALUES`
//! column in FROM (`ColKind::Val`). An array bound for an encrypted column is encrypted element
//! by element under the current key version: a parameter is sent as `bytea[]`
//! (`Plan::store_arrays`), a constant (`'{a,b}'::text[]`, `ARRAY['a', 'b']`) is replaced by
//! `ARRAY[…]::bytea[]` (`LiteralKind::Stored`). Type modifiers on the array's cast apply to
//! each element, as PostgreSQL applies them.
//!
//! Only `unnest` over parameters and constants is modelled (a one-argument call is sent as
//! `pg_catalog.unnest`); any other function in FROM stays an open relation of plaintext
//! columns.

use pg_query::NodeEnum;
use pg_query::protobuf::{FuncCall, Node, RangeFunction, TypeCast};

use super::analyzer::Analyzer;
use super::ast::sval;
use super::bind::{Bind, R, Site, Wrap};
use super::coerce;
use super::plan::{Coerce, CoerceError};
use super::plan::{LiteralKind, LiteralSite, Refusal};
use super::scope::{Col, ColKind, Rel};
use crate::rules::ColumnRule;
use std::sync::Arc;

/// A cast on an unnested array: its `::`/`CAST` location, type name location, element
/// coercion and element type name.
struct ArrayCast {
    loc: i32,
    type_loc: i32,
    coerce: Option<Coerce>,
    ty: String,
}

impl Analyzer<'_, '_> {
    /// The relation of `UNNEST(a1, a2, …)` over parameters and array constants; None for any
    /// other function in FROM.
    pub(crate) fn unnest_rel(&mut self, rf: &RangeFunction) -> R<Option<Rel>> {
        let Some(f) = super::json_record::single_call(rf).filter(|f| is_unnest(f)) else {
            return Ok(None);
        };
        let mut binds = Vec::with_capacity(f.args.len());
        for a in &f.args {
            match self.unnest_arg(a)? {
                Some(b) => binds.push(b),
                None => return Ok(None),
            }
        }
        // PostgreSQL reads a multi-argument `unnest` in FROM as `ROWS FROM (unnest(a), …)` only
        // unqualified; a one-argument call is sent qualified. (A function of that name earlier
        // on the path would be handed the ciphertext, never a plaintext value.)
        if f.funcname.len() == 1 && f.args.len() == 1 {
            let at = usize::try_from(f.location)
                .map_err(|_| self.refuse_text("an unlocatable function"))?;
            self.insert_text(at, "pg_catalog.".to_owned());
        }
        let alias = rf.alias.as_ref();
        let name = alias.map(|a| a.aliasname.clone()).unwrap_or_default();
        let one = binds.len() == 1;
        let mut cols: Vec<Col> = binds
            .into_iter()
            .map(|b| Col {
                // PostgreSQL names the column of a one-argument call after the alias.
                name: if one && !name.is_empty() {
                    name.clone()
                } else {
                    "unnest".to_owned()
                },
                kind: ColKind::Val { binds: vec![b] },
            })
            .collect();
        if rf.ordinality {
            cols.push(Col {
                name: "ordinality".to_owned(),
                kind: ColKind::Plain,
            });
        }
        let mut rel = Rel {
            name: if name.is_empty() {
                "unnest".to_owned()
            } else {
                name
            },
            schema: None,
            cols,
            open: false,
        };
        let names: Vec<String> = alias
            .map(|a| {
                a.colnames
                    .iter()
                    .filter_map(sval)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if names.len() > rel.cols.len() || !rel.rename(&names) {
            return Err(self.refuse_text("more column aliases than UNNEST has columns"));
        }
        Ok(Some(rel))
    }

    /// One argument of `UNNEST`: `$n` or an array constant, under any number of array casts.
    fn unnest_arg(&mut self, a: &Node) -> R<Option<Bind>> {
        let mut casts: Vec<ArrayCast> = Vec::new();
        let mut node = a;
        while let Some(NodeEnum::TypeCast(tc)) = node.node.as_ref() {
            let Some(c) = array_cast(tc) else {
                return Ok(None);
            };
            casts.push(c);
            let Some(arg) = tc.arg.as_deref() else {
                return Ok(None);
            };
            node = arg;
        }
        casts.reverse();
        match node.node.as_ref() {
            Some(NodeEnum::ParamRef(p)) => {
                let n = usize::try_from(p.number).unwrap_or(0);
                if n == 0 || n > 65535 {
                    return Err(self.refuse_text("a parameter number out of range"));
                }
                let mut wraps: Vec<Wrap> = casts
                    .into_iter()
                    .map(|c| Wrap::Cast {
                        loc: c.loc,
                        type_loc: c.type_loc,
                        coerce: c.coerce,
                        ty: c.ty,
                        array: true,
                    })
                    .collect();
                wraps.extend([Wrap::Element, Wrap::Sealed]);
                Ok(Some(Bind::Param {
                    number: n,
                    site: Site {
                        loc: p.location,
                        wraps,
                    },
                }))
            }
            Some(NodeEnum::AConst(c)) => self.array_constant(c, casts),
            Some(NodeEnum::AArrayExpr(arr)) => self.array_ctor(arr, casts),
            _ => Ok(None),
        }
    }

    /// `'{a,b}'` (under array casts; a bare string is not an array).
    fn array_constant(
        &mut self,
        c: &pg_query::protobuf::AConst,
        casts: Vec<ArrayCast>,
    ) -> R<Option<Bind>> {
        use pg_query::protobuf::Token;
        if casts.is_empty() {
            return Ok(None);
        }
        let text = match c.val.as_ref() {
            Some(pg_query::protobuf::a_const::Val::Sval(s)) => s.sval.clone(),
            _ if c.isnull => return Ok(None),
            _ => return Ok(None),
        };
        if self.tokens()?.kind_at(c.location) != Some(Token::Sconst) {
            return Ok(None);
        }
        let Ok(items) = crate::codec::array::parse_text(text.as_bytes()) else {
            return Err(self.refuse_text("an array constant that does not parse"));
        };
        let mut elements = Vec::with_capacity(items.len());
        for i in items {
            match i {
                None => elements.push(None),
                Some(b) => match String::from_utf8(b) {
                    Ok(s) => elements.push(Some(s)),
                    Err(_) => return Err(self.refuse_text("an array constant that is not UTF-8")),
                },
            }
        }
        let start = self.tokens()?.constant(c.location);
        self.array_bind(elements, start, c.location, casts)
    }

    /// `ARRAY[c1, c2, …]` of plain constants (optionally under array casts).
    fn array_ctor(
        &mut self,
        arr: &pg_query::protobuf::AArrayExpr,
        casts: Vec<ArrayCast>,
    ) -> R<Option<Bind>> {
        use pg_query::protobuf::Token;
        let mut elements = Vec::with_capacity(arr.elements.len());
        for e in &arr.elements {
            let Some(NodeEnum::AConst(c)) = e.node.as_ref() else {
                return Ok(None);
            };
            let kind = self.tokens()?.kind_at(c.location);
            if !c.isnull && !matches!(kind, Some(Token::Sconst | Token::Iconst)) {
                return Ok(None);
            }
            match super::expr::const_value(c) {
                Ok(v) => elements.push(v),
                Err(_) => return Ok(None),
            }
        }
        let end = usize::try_from(arr.list_end).ok().map(|e| e + 1);
        let start = usize::try_from(arr.location).ok().zip(end);
        self.array_bind(elements, start, arr.location, casts)
    }

    /// The bind of an array constant spanning `inner` (before its casts) at `loc`.
    fn array_bind(
        &mut self,
        elements: Vec<Option<String>>,
        inner: Option<(usize, usize)>,
        loc: i32,
        casts: Vec<ArrayCast>,
    ) -> R<Option<Bind>> {
        let table = self.named_table();
        let bad = || {
            Refusal::table(
                table.clone(),
                "an array whose position in the text cannot be located",
            )
        };
        let (mut start, mut end) = inner.ok_or_else(bad)?;
        for c in &casts {
            let toks = self.tokens()?;
            if toks.kind_at(c.loc) == Some(pg_query::protobuf::Token::Cast) {
                start = usize::try_from(c.loc).map_err(|_| bad())?.min(start);
            } else {
                (start, end) = toks.widen_parens(start, end);
            }
            end = toks.cast_end(c.loc).ok_or_else(bad)?.max(end);
        }
        Ok(Some(Bind::Array {
            elements,
            range: (start, end),
            casts: casts.into_iter().map(|c| (c.coerce, c.ty)).collect(),
            loc,
        }))
    }

    /// Binds an array constant's elements to `rule`'s column: one literal site, replaced by
    /// `ARRAY[…]::bytea[]` of the elements (casts applied) under the current key version.
    pub(crate) fn bind_array(
        &mut self,
        elements: Vec<Option<String>>,
        range: (usize, usize),
        casts: &[(Option<Coerce>, String)],
        loc: i32,
        rule: &Arc<ColumnRule>,
    ) -> R<()> {
        let site = Site {
            loc,
            wraps: vec![Wrap::Sealed],
        };
        if !self.sealed_use(&site, Some(rule))? {
            return Ok(());
        }
        let coerce = self.cast_coerce(
            casts.iter().map(|(c, t)| (*c, t.as_str(), true)),
            true,
            rule,
        )?;
        let mut text = String::from("{");
        for (i, e) in elements.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            let Some(e) = e else {
                text.push_str("NULL");
                continue;
            };
            let v = match coerce {
                Some(c) => coerce::apply(c, e).map_err(|err| match err {
                    CoerceError::Overflow => {
                        Refusal::column(rule, "a value that overflows its cast")
                    }
                    CoerceError::Unsupported => {
                        Refusal::column(rule, "a cast with this type modifier")
                    }
                })?,
                None => e.clone(),
            };
            text.push('"');
            for ch in v.chars() {
                if matches!(ch, '"' | '\\') {
                    text.push('\\');
                }
                text.push(ch);
            }
            text.push('"');
        }
        text.push('}');
        self.push_literal(LiteralSite {
            start: range.0,
            end: range.1,
            value: Some(text),
            rule: rule.clone(),
            kind: LiteralKind::Stored,
        });
        Ok(())
    }
}

/// True for `unnest(…)` / `pg_catalog.unnest(…)` called plainly.
fn is_unnest(f: &FuncCall) -> bool {
    let names: Vec<&str> = f.funcname.iter().filter_map(sval).collect();
    super::json_record::plain_call(f)
        && !f.args.is_empty()
        && matches!(names.as_slice(), ["unnest"] | ["pg_catalog", "unnest"])
}

/// A cast to an array type.
fn array_cast(tc: &TypeCast) -> Option<ArrayCast> {
    let t = tc.type_name.as_ref()?;
    if t.array_bounds.is_empty() || t.setof || t.pct_type {
        return None;
    }
    let ty = t
        .names
        .iter()
        .filter_map(sval)
        .next_back()?
        .to_ascii_lowercase();
    Some(ArrayCast {
        loc: tc.location,
        type_loc: t.location,
        coerce: coerce::of_type(t),
        ty,
    })
}
