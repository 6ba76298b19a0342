//! The vocabulary of a rewrite plan: everything the analysis hands to the session (the
//! [`Analysis`] of a text, its [`Plan`], the [`Refusal`]s, COPY plans, literal and cast sites,
//! the equality comparisons to match under every key version and the type-modifier coercions
//! to apply at Bind), and the pure text splicing that applies a plan's ranges to the SQL text.
//!
//! This module is a leaf of `rewrite`: it imports no other analysis module, so every analysis
//! step can name its output without depending on another.

use std::sync::Arc;

use crate::rules::ColumnRule;

/// The outcome of analysing one SQL text (possibly several statements).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Analysis {
    /// Touches no encrypted column: forward byte for byte.
    Passthrough,
    /// Needs rewriting as described.
    Rewrite(Arc<Plan>),
    /// Refuse with SQLSTATE 0A000 (feature_not_supported).
    Refuse(Refusal),
}

/// What to encrypt in one SQL text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// For `$n` (index n-1): the encrypted column it is bound for, if any.
    pub params: Vec<Option<Arc<ColumnRule>>>,
    /// Indexes (n-1, ascending) of the parameters in `params` that hold an array of the
    /// column's values (`col = ANY($n)`, `col <> ALL($n)`): sent as `bytea[]` with every
    /// element encrypted under every key version.
    pub array_params: Vec<usize>,
    /// Indexes (n-1, ascending) of the parameters in `array_params` whose elements are values
    /// to store (`INSERT … SELECT * FROM UNNEST($1::text[], …)`): each element encrypted under
    /// the current key version only, order and NULLs kept.
    pub store_arrays: Vec<usize>,
    /// Type-modifier casts on encrypted parameters (`$1::varchar(3)`, `($1)::varchar(254)[]`),
    /// by index (n-1, ascending): applied to the value (each element of an array) before it is
    /// encrypted, as PostgreSQL applies the cast.
    pub param_coerce: Vec<(usize, Coerce)>,
    /// JSON parameters of `json_populate_record[set](NULL::t, $n)` over a rules table, by
    /// index (n-1, ascending), with the table's encrypted columns: the values of those keys are
    /// encrypted at Bind (see `rewrite/json_record.rs`).
    pub json_params: Vec<(usize, Arc<[Arc<ColumnRule>]>)>,
    /// Literals bound for encrypted columns, in text order. Each covers the whole value
    /// expression including a cast or sign on the value.
    pub literals: Vec<LiteralSite>,
    /// Casts written on encrypted parameters (`$1::text`, `CAST($1 AS int)`), in text order. The
    /// parameter becomes `bytea`, so the session must replace each range by `$n` (see
    /// [`Plan::rewrite_text`]) when it forwards the text.
    pub param_casts: Vec<ParamCast>,
    /// Casts on column references that carry encrypted values (`p0::VARCHAR` over a VALUES
    /// column in `INSERT … SELECT … FROM (VALUES …)`), in text order: each range (the `::type`
    /// part) is removed from the forwarded text.
    pub ref_casts: Vec<RefCast>,
    /// Deterministic columns compared with values (`=`, `<>`, IN, IS [NOT] DISTINCT FROM),
    /// rewritten by the session to match every key version ([`Plan::rewrite_text_with`]).
    pub matches: Vec<MatchSite>,
    /// The highest `$n` in the text, when `matches` is not empty (else 0).
    pub max_param: usize,
    /// Number of statements in the text (multi-statement simple queries).
    pub statements: usize,
    /// One entry per COPY statement in text order (`Some`: a rules table's data stream);
    /// empty when no COPY names a rules table.
    pub copies: Vec<Option<Arc<CopyPlan>>>,
    /// Text inserted at a byte position (a COPY's column list), in text order.
    pub insertions: Vec<(usize, String)>,
    /// The text holds a statement that takes no parameters (COPY): comparisons must be
    /// rewritten without extra parameters.
    pub no_params: bool,
}

/// The data stream of `COPY` on a rules table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyPlan {
    pub direction: CopyDirection,
    pub options: crate::copy::CopyOptions,
    /// For each field of a row, in order: the encrypted column it is, if any.
    pub columns: Vec<Option<Arc<ColumnRule>>>,
}

/// Which way a COPY's data flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyDirection {
    /// `FROM STDIN`: rows from the client, encrypted on the way to the server.
    In,
    /// `TO STDOUT`: rows from the server, decrypted on the way to the client.
    Out,
}

/// One literal bound for an encrypted column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiteralSite {
    /// Byte range in the SQL text (whole text, even for multi-statement texts).
    pub start: usize,
    pub end: usize,
    /// The decoded text value; None for NULL.
    pub value: Option<String>,
    pub rule: Arc<ColumnRule>,
    pub kind: LiteralKind,
}

/// How a literal site is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LiteralKind {
    /// One value: its ciphertext under the current key version (`E'\\x…'::bytea`).
    #[default]
    Value,
    /// An element of `ARRAY[…]` in `col = ANY(ARRAY[…])` / `col <> ALL(…)`: its ciphertexts
    /// under every version of the key, comma-separated.
    Element,
    /// An array literal (`'{a,b}'`) in `col = ANY('{…}')`: `ARRAY[…]::bytea[]` of every
    /// element under every key version.
    Array,
    /// An array of values to store (`UNNEST('{a,b}'::text[])`, `UNNEST(ARRAY['a', 'b'])`; the
    /// value is the array's text with casts already applied to its elements):
    /// `ARRAY[…]::bytea[]` of each element under the current key version.
    Stored,
}

/// A cast on an encrypted parameter that must be removed from the forwarded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamCast {
    pub start: usize,
    pub end: usize,
    /// The parameter number `n` of `$n`.
    pub number: usize,
}

/// The `::type` part of a cast on a column reference, removed from the forwarded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefCast {
    pub start: usize,
    pub end: usize,
}

/// What a refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalTarget {
    /// `Refusal::column` is `schema.table.column`.
    Column,
    /// `Refusal::column` is `schema.table` (COPY, DO, …).
    Table,
    /// A syntax error in a text naming `Refusal::column` (`schema.table`); `construct` is the
    /// parser's own message (SQLSTATE 42601).
    Syntax,
}

/// Why a statement is refused (SQLSTATE 0A000, or 42601 for a syntax error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `schema.table.column` (or `schema.table`, see `target`).
    pub column: String,
    /// The construct, e.g. `LIKE`, `ORDER BY`, `function lower()`.
    pub construct: String,
    pub target: RefusalTarget,
    /// `EXECUTE name(…)` with parameters, the text's only statement: the session passes it
    /// when it knows `name` was prepared (by SQL `PREPARE`) as a statement pgcloak passed
    /// unchanged, whose parameters reach no encrypted column.
    pub prepared: Option<String>,
}

impl Refusal {
    pub(crate) fn column(rule: &ColumnRule, construct: impl Into<String>) -> Self {
        Self {
            column: rule.qualified(),
            construct: construct.into(),
            target: RefusalTarget::Column,
            prepared: None,
        }
    }

    pub(crate) fn table(table: impl Into<String>, construct: impl Into<String>) -> Self {
        Self {
            column: table.into(),
            construct: construct.into(),
            target: RefusalTarget::Table,
            prepared: None,
        }
    }

    /// A syntax error PostgreSQL's parser (in pg_query) reports for a text naming `table`.
    pub(crate) fn syntax(table: impl Into<String>, parser_message: &str) -> Self {
        Self {
            column: table.into(),
            construct: parser_message.to_owned(),
            target: RefusalTarget::Syntax,
            prepared: None,
        }
    }

    /// The SQLSTATE of the client's ErrorResponse.
    pub fn sqlstate(&self) -> &'static str {
        match self.target {
            RefusalTarget::Syntax => crate::protocol::sqlstate::SYNTAX_ERROR,
            RefusalTarget::Column | RefusalTarget::Table => {
                crate::protocol::sqlstate::FEATURE_NOT_SUPPORTED
            }
        }
    }

    /// The message for the client's ErrorResponse. Names no value, except that a syntax
    /// error quotes the client's own text where the parser stopped, as PostgreSQL does.
    pub fn message(&self) -> String {
        match self.target {
            RefusalTarget::Syntax => format!(
                "{} (pgcloak did not send the statement: it names table {}, which has \
                 encrypted columns)",
                self.construct, self.column
            ),
            RefusalTarget::Column => format!(
                "pgcloak: {} cannot be applied to encrypted column {} (deterministic encryption \
                 supports only =, <>, IN, IS [NOT] DISTINCT FROM and IS NULL; randomized \
                 encryption supports only IS NULL)",
                self.construct, self.column
            ),
            RefusalTarget::Table => format!(
                "pgcloak: {} is not supported on table {}, which has encrypted columns",
                self.construct, self.column
            ),
        }
    }
}

/// A value coercion a cast asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coerce {
    /// `varchar(n)`: at most n characters (an explicit cast truncates).
    Chars(usize),
    /// `char(n)`: at most n characters, then trailing spaces removed (its text form).
    BpChars(usize),
    /// `numeric(p, s)`: rounded to s decimals; more than p − s integer digits is 22003.
    Numeric { precision: u32, scale: u32 },
    /// `int2` / `int4` / `int8`: a fractional value is rounded (half away from zero).
    Integer,
    /// Any other type modifier (`timestamp(0)`, `bit(3)`, …): not modelled.
    Unsupported,
}

/// Why a coercion cannot be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoerceError {
    /// The value does not fit (SQLSTATE 22003 in PostgreSQL): refused.
    Overflow,
    /// Not modelled: refused.
    Unsupported,
}

/// The comparison of a match site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=` or `IN (…)`.
    Eq,
    /// `<>` or `NOT IN (…)`.
    Ne,
    /// `IS NOT DISTINCT FROM`.
    NotDistinct,
    /// `IS DISTINCT FROM`.
    Distinct,
}

/// One value a deterministic column is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchItem {
    /// `$n`.
    Param(usize),
    /// A literal's decoded text (None: NULL).
    Literal(Option<String>),
    /// Another column of the same key (in an IN list): its text range.
    Column(usize, usize),
}

/// Where a rewritable comparison sits in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchSpan {
    /// The whole comparison (replaced as a whole).
    pub start: usize,
    pub end: usize,
    /// The encrypted column reference.
    pub column: (usize, usize),
    pub items: Vec<MatchItem>,
}

/// A deterministic column compared with one or more values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchSite {
    pub rule: Arc<ColumnRule>,
    pub op: MatchOp,
    /// None: the text cannot be rewritten.
    pub span: Option<MatchSpan>,
}

impl MatchSpan {
    /// The replacement text, given the `bytea[]` expression of each value item (`$3::bytea[]`,
    /// `ARRAY[…]`). Other columns of an IN list become one-element arrays.
    pub fn render<E>(
        &self,
        sql: &str,
        op: MatchOp,
        mut array_of: impl FnMut(&MatchItem) -> Result<String, E>,
    ) -> Result<String, E> {
        let text = |(s, e): (usize, usize)| sql.get(s..e).unwrap_or("NULL");
        let col = text(self.column);
        let mut arrays = Vec::with_capacity(self.items.len());
        for item in &self.items {
            arrays.push(match item {
                MatchItem::Column(s, e) => format!("ARRAY[{}]", text((*s, *e))),
                other => array_of(other)?,
            });
        }
        let arr = arrays.join(" || ");
        let not_distinct = || {
            format!("COALESCE({col} = ANY({arr}), false) OR ({col} IS NULL AND ({arr})[1] IS NULL)")
        };
        Ok(match op {
            MatchOp::Eq => format!("({col} = ANY({arr}))"),
            MatchOp::Ne => format!("({col} <> ALL({arr}))"),
            MatchOp::NotDistinct => format!("({})", not_distinct()),
            MatchOp::Distinct => format!("(NOT ({}))", not_distinct()),
        })
    }
}

/// Replaces each literal site with the given replacement text (e.g. `'\x0102…'::bytea`), leaving
/// every other byte of the text unchanged. `sites` must be in text order and not overlap (as
/// in a [`Plan`]); a replacement missing for a site replaces it by `NULL`.
pub fn splice(sql: &str, sites: &[LiteralSite], replacements: &[String]) -> String {
    let ranges: Vec<(usize, usize, &str)> = sites
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let rep = replacements.get(i).map(String::as_str).unwrap_or("NULL");
            (s.start, s.end, rep)
        })
        .collect();
    splice_ranges(sql, ranges)
}

impl Plan {
    /// True when the plan asks for nothing (then the analysis is `Passthrough`).
    pub fn is_empty(&self) -> bool {
        self.literals.is_empty()
            && self.param_casts.is_empty()
            && self.ref_casts.is_empty()
            && self.params.iter().all(Option::is_none)
            && self.json_params.is_empty()
            && self.insertions.is_empty()
            && self.copies.iter().all(Option::is_none)
    }

    /// True when parameter index `i` (`$i+1`) holds an array of an encrypted column's values.
    pub fn is_array_param(&self, i: usize) -> bool {
        self.array_params.binary_search(&i).is_ok()
    }

    /// True when parameter index `i` is an array of values to store (see `store_arrays`).
    pub fn is_store_array(&self, i: usize) -> bool {
        self.store_arrays.binary_search(&i).is_ok()
    }

    /// The encrypted columns of the JSON records parameter index `i` holds, if it is one.
    pub fn json_of(&self, i: usize) -> Option<&[Arc<ColumnRule>]> {
        let at = self.json_params.binary_search_by_key(&i, |c| c.0).ok()?;
        self.json_params.get(at).map(|c| &*c.1)
    }

    /// The type-modifier cast to apply to parameter index `i`, if any.
    pub fn coerce_of(&self, i: usize) -> Option<Coerce> {
        let at = self.param_coerce.binary_search_by_key(&i, |c| c.0).ok()?;
        self.param_coerce.get(at).map(|c| c.1)
    }

    /// The text to forward: literal sites replaced by `literal_replacements` (one per site, in
    /// order), casts on encrypted parameters replaced by plain `$n` and casts on column
    /// references carrying encrypted values removed.
    pub fn rewrite_text(&self, sql: &str, literal_replacements: &[String]) -> String {
        self.rewrite_text_with(sql, literal_replacements, &[])
    }

    /// [`Plan::rewrite_text`], with some comparisons replaced as a whole: each
    /// `(start, end, text)` replaces that range, and every literal or cast inside it is dropped.
    pub fn rewrite_text_with(
        &self,
        sql: &str,
        literal_replacements: &[String],
        whole: &[(usize, usize, String)],
    ) -> String {
        let casts: Vec<String> = self
            .param_casts
            .iter()
            .map(|c| format!("${}", c.number))
            .collect();
        let mut ranges: Vec<(usize, usize, &str)> = Vec::new();
        for (i, s) in self.literals.iter().enumerate() {
            let rep = literal_replacements
                .get(i)
                .map(String::as_str)
                .unwrap_or("NULL");
            ranges.push((s.start, s.end, rep));
        }
        for (c, rep) in self.param_casts.iter().zip(&casts) {
            ranges.push((c.start, c.end, rep.as_str()));
        }
        for c in &self.ref_casts {
            ranges.push((c.start, c.end, ""));
        }
        for (at, text) in &self.insertions {
            ranges.push((*at, *at, text.as_str()));
        }
        if !whole.is_empty() {
            ranges.retain(|r| !whole.iter().any(|w| w.0 <= r.0 && r.1 <= w.1));
            ranges.extend(whole.iter().map(|w| (w.0, w.1, w.2.as_str())));
        }
        ranges.sort_by_key(|r| r.0);
        splice_ranges(sql, ranges)
    }
}

/// Splices sorted, non-overlapping byte ranges. Ranges that are out of order, overlapping or not
/// on character boundaries are widened to the nearest valid position so no byte of a replaced
/// range survives.
fn splice_ranges(sql: &str, mut ranges: Vec<(usize, usize, &str)>) -> String {
    ranges.sort_by_key(|r| r.0);
    let extra: usize = ranges.iter().map(|r| r.2.len()).sum();
    let mut out = String::with_capacity(sql.len() + extra);
    let mut pos = 0usize;
    for (start, end, rep) in ranges {
        let mut start = start.min(sql.len()).max(pos);
        while !sql.is_char_boundary(start) {
            start -= 1;
        }
        let start = start.max(pos);
        let mut end = end.min(sql.len()).max(start);
        while !sql.is_char_boundary(end) {
            end += 1;
        }
        out.push_str(&sql[pos..start]);
        out.push_str(rep);
        pos = end;
    }
    out.push_str(&sql[pos..]);
    out
}
