//! The intermediate vocabulary of an analysis: the values an expression may bind to a column
//! ([`Bind`]), where each sits in the text ([`Site`], [`Wrap`]) and what an expression evaluates
//! to ([`Ev`]). Leaf data types shared by every analysis step; they never reach the plan.

use std::sync::Arc;

use super::plan::{Coerce, Refusal};
use crate::rules::ColumnRule;
/// Every analysis step returns either a value or the refusal that ends the analysis.
pub(crate) type R<T> = Result<T, Refusal>;

/// Something wrapped around a bound value that belongs to it.
#[derive(Debug, Clone)]
pub(crate) enum Wrap {
    /// A `TypeCast`: its location (`::` or `CAST`, or -1 for `type 'literal'`), the type
    /// name's location, and what the cast does to a value (see `coerce`).
    Cast {
        loc: i32,
        type_loc: i32,
        coerce: Option<Coerce>,
        /// The type's name as PostgreSQL normalises it (`int4`, `varchar`, `bpchar`), lower-case.
        ty: String,
        /// An array type (`varchar(254)[]`): `coerce` and `ty` are its element's.
        array: bool,
    },
    /// A cast on an expression around the value (`(CASE WHEN … THEN $1 … END)::varchar(254)`,
    /// Django's `bulk_update`): it applies to the value, and its `::type` (at `loc`) is removed
    /// from the text when the value is encrypted.
    Outer {
        loc: i32,
        coerce: Option<Coerce>,
        ty: String,
    },
    /// The value is an array whose elements are the values (`UNNEST($1::text[])` in FROM).
    Element,
    /// A unary `+` at this location.
    Sign(i32),
    /// The value reached its use through a `VALUES` column in FROM: nothing written at the
    /// use (a cast, a sign) belongs to the value's text.
    Sealed,
}

/// Where a bound value sits in the text.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    pub loc: i32,
    pub wraps: Vec<Wrap>,
}

/// A value that may be bound to a column.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Param {
        number: usize,
        site: Site,
    },
    /// A constant: its value (Err: a kind of constant that cannot be encrypted).
    Lit {
        value: Result<Option<String>, &'static str>,
        site: Site,
    },
    Default,
    /// An array of constants whose elements are the values (`UNNEST('{a,b}'::text[])`,
    /// `UNNEST(ARRAY['a', 'b'])` in FROM): the elements (any casts on the array applied by
    /// `bind`), the byte range of the whole array expression, and its casts (innermost first).
    Array {
        elements: Vec<Option<String>>,
        range: (usize, usize),
        casts: Vec<(Option<Coerce>, String)>,
        loc: i32,
    },
}

/// What an expression evaluates to, as far as encryption is concerned.
#[derive(Debug, Clone)]
pub(crate) enum Ev {
    /// An encrypted column's ciphertext (see `ColKind::Enc` for `origin`).
    Enc { rule: Arc<ColumnRule>, origin: bool },
    /// One or more values (parameters, literals, DEFAULT) whose destination is not decided yet.
    Val(Vec<Bind>),
    /// Anything else: a plaintext value.
    Plain,
}
/// True when the value reached its use through a `VALUES` column (see `Wrap::Sealed`).
pub(crate) fn is_sealed(site: &Site) -> bool {
    site.wraps.iter().any(|w| matches!(w, Wrap::Sealed))
}

/// True when the bound value is an array of the values (see `Wrap::Element`).
pub(crate) fn is_element(site: &Site) -> bool {
    site.wraps.iter().any(|w| matches!(w, Wrap::Element))
}

/// True when `b` is an array whose elements are the values (`UNNEST` in FROM).
pub(crate) fn is_array_bind(b: &Bind) -> bool {
    match b {
        Bind::Param { site, .. } => is_element(site),
        Bind::Array { .. } => true,
        Bind::Lit { .. } | Bind::Default => false,
    }
}

/// A cast that applies to a value: (its type modifier's coercion, its type, an array type).
pub(crate) fn cast_of(w: &Wrap) -> Option<(Option<Coerce>, &str, bool)> {
    match w {
        Wrap::Cast {
            coerce, ty, array, ..
        } => Some((*coerce, ty.as_str(), *array)),
        Wrap::Outer { coerce, ty, .. } => Some((*coerce, ty.as_str(), false)),
        Wrap::Sign(_) | Wrap::Sealed | Wrap::Element => None,
    }
}
