//! The analysis state for one SQL text and the decisions every construct shares: binding a value
//! to an encrypted column, comparing, assigning, and refusing.

use std::sync::Arc;

use super::bind::{Bind, Ev, R, Site, Wrap, cast_of, is_array_bind, is_element, is_sealed};
use super::coerce;
use super::context::AnalysisContext;
use super::plan::{
    Analysis, Coerce, CoerceError, CopyPlan, LiteralKind, LiteralSite, MatchItem, MatchSite,
    ParamCast, Plan, RefCast, Refusal,
};
use super::scope::{ColKind, Rel, Scopes};
use super::span::{Tokens, decode_unicode};
use crate::rules::{ColumnRule, Mode};

#[derive(Debug, Clone)]
enum ParamUse {
    Unused,
    Plain,
    Enc(Arc<ColumnRule>),
    /// An array of the column's values (`col = ANY($n)`).
    EncArray(Arc<ColumnRule>),
    /// An array of values to store in the column (`UNNEST($n)`).
    StoreArray(Arc<ColumnRule>),
    /// JSON whose values for these encrypted columns are encrypted (`json_populate_record`).
    Json(Arc<[Arc<ColumnRule>]>),
}

/// Highest `$n` accepted (the protocol's limit).
const MAX_PARAM: usize = 65535;

/// The state of analysing one SQL text.
pub(crate) struct Analyzer<'a, 'c> {
    pub ctx: &'a AnalysisContext<'c>,
    pub sql: &'a str,
    tokens: Option<Tokens>,
    params: Vec<ParamUse>,
    literals: Vec<LiteralSite>,
    casts: Vec<ParamCast>,
    /// Type-modifier casts applied to parameters (see `Plan::param_coerce`).
    coerces: Vec<(usize, Coerce)>,
    ref_casts: Vec<RefCast>,
    /// Deterministic columns compared with values (see `matching`).
    pub matches: Vec<MatchSite>,
    /// One entry per COPY statement, in text order (see `copy`).
    pub copies: Vec<Option<Arc<CopyPlan>>>,
    /// Text inserted at a position (a COPY's column list).
    insertions: Vec<(usize, String)>,
    pub scopes: Scopes,
    /// CTEs in scope, innermost last.
    pub ctes: Vec<Rel>,
    /// Literals of `VALUES` columns in FROM (`Wrap::Sealed`) already used, by location: the
    /// key they were encrypted under, or None for a plaintext use. A column may be used more
    /// than once (`MERGE … ON t.c = v.c … INSERT VALUES (v.c)`) only in the same way.
    sealed_uses: std::collections::HashMap<i32, Option<String>>,
}

impl<'a, 'c> Analyzer<'a, 'c> {
    pub(crate) fn new(ctx: &'a AnalysisContext<'c>, sql: &'a str) -> Self {
        Self {
            ctx,
            sql,
            tokens: None,
            params: Vec::new(),
            literals: Vec::new(),
            casts: Vec::new(),
            coerces: Vec::new(),
            ref_casts: Vec::new(),
            matches: Vec::new(),
            copies: Vec::new(),
            insertions: Vec::new(),
            scopes: Scopes::default(),
            ctes: Vec::new(),
            sealed_uses: std::collections::HashMap::new(),
        }
    }

    /// What a use of a relation column evaluates to (a `VALUES` column in FROM: its values,
    /// bound where it is used).
    pub(crate) fn col_use(kind: &ColKind) -> Ev {
        match kind {
            ColKind::Enc { rule, origin } => Ev::Enc {
                rule: rule.clone(),
                origin: *origin,
            },
            ColKind::Plain => Ev::Plain,
            ColKind::Val { binds } => Ev::Val(binds.clone()),
        }
    }

    /// True when a value of the text so far is bound for an encrypted column (a literal, or a
    /// parameter).
    pub(crate) fn binds_values(&self) -> bool {
        !self.literals.is_empty()
            || (self.params.iter()).any(|p| {
                matches!(
                    p,
                    ParamUse::Enc(_) | ParamUse::StoreArray(_) | ParamUse::Json(_)
                )
            })
    }

    /// Records one use of a `VALUES`-column literal (`key`: the key it is encrypted under, None:
    /// plaintext). False when it was already used otherwise; true for a first use (record it)
    /// — the caller skips a repeated, identical encrypted use.
    pub(crate) fn sealed_use(&mut self, site: &Site, key: Option<&ColumnRule>) -> R<bool> {
        let want = key.map(|r| format!("{}|{:?}|{:?}", r.key, r.mode, r.ty));
        match self.sealed_uses.get(&site.loc) {
            None => {
                self.sealed_uses.insert(site.loc, want);
                Ok(true)
            }
            Some(had) if *had == want => Ok(false),
            Some(_) => Err(self.refuse_text(
                "a column of a VALUES list used both for an encrypted column and otherwise (or \
                 for two columns with different keys)",
            )),
        }
    }

    /// The first rules table whose name appears in the text, as `schema.table`.
    pub(crate) fn named_table(&self) -> String {
        let lower = self.sql.to_ascii_lowercase();
        let word = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_');
        // The first table named as a whole word (`a2` is not named by `a25`), else any.
        let named = |whole: bool| {
            self.ctx.rules.tables().find(|t| {
                let name = t.table.to_ascii_lowercase();
                lower.match_indices(&name).any(|(at, _)| {
                    !whole
                        || (!word(at.checked_sub(1).map(|i| lower.as_bytes()[i]))
                            && !word(lower.as_bytes().get(at + name.len()).copied()))
                })
            })
        };
        named(true)
            .or_else(|| named(false))
            .map(|t| format!("{}.{}", t.schema, t.table))
            .unwrap_or_else(|| "(unknown)".to_owned())
    }

    /// A refusal of the whole statement, naming the rules table the text mentions.
    pub(crate) fn refuse_text(&self, construct: impl Into<String>) -> Refusal {
        Refusal::table(self.named_table(), construct)
    }

    /// A `$n` reference, checked for range.
    pub(crate) fn param(&self, number: i32, loc: i32) -> R<Ev> {
        let n = usize::try_from(number).unwrap_or(0);
        if n == 0 || n > MAX_PARAM {
            return Err(self.refuse_text("a parameter number out of range"));
        }
        Ok(Ev::Val(vec![Bind::Param {
            number: n,
            site: Site {
                loc,
                wraps: Vec::new(),
            },
        }]))
    }

    pub(crate) fn tokens(&mut self) -> R<&Tokens> {
        if self.tokens.is_none() {
            let t = Tokens::scan(self.sql)
                .ok_or_else(|| self.refuse_text("an unscannable statement"))?;
            self.tokens = Some(t);
        }
        self.tokens
            .as_ref()
            .ok_or_else(|| self.refuse_text("an unscannable statement"))
    }

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

    fn use_param(&mut self, n: usize, rule: Option<&Arc<ColumnRule>>) -> R<()> {
        let want = match rule {
            None => ParamUse::Plain,
            Some(r) => ParamUse::Enc(r.clone()),
        };
        self.use_param_as(n, want)
    }

    /// Records `$n` as JSON records of a rules table with `columns` encrypted (see
    /// `json_record`); any other use of it is refused.
    pub(crate) fn use_json_param(
        &mut self,
        n: usize,
        columns: Arc<[Arc<ColumnRule>]>,
        rule: &ColumnRule,
    ) -> R<()> {
        if n > MAX_PARAM {
            return Err(self.refuse_text("a parameter number out of range"));
        }
        if self.params.len() < n {
            self.params.resize(n, ParamUse::Unused);
        }
        match &self.params[n - 1] {
            ParamUse::Unused => {
                self.params[n - 1] = ParamUse::Json(columns);
                Ok(())
            }
            _ => Err(Refusal::column(
                rule,
                format!("parameter ${n} used both as JSON records and elsewhere"),
            )),
        }
    }

    /// Records `$n` as an array of `rule`'s values (`col = ANY($n)`).
    pub(crate) fn use_array_param(&mut self, n: usize, rule: &Arc<ColumnRule>) -> R<()> {
        self.use_param_as(n, ParamUse::EncArray(rule.clone()))
    }

    fn use_param_as(&mut self, n: usize, want: ParamUse) -> R<()> {
        if self.params.len() < n {
            self.params.resize(n, ParamUse::Unused);
        }
        let slot = &mut self.params[n - 1];
        if let ParamUse::Json(cols) = &*slot {
            if let Some(r) = cols.first() {
                return Err(Refusal::column(
                    r,
                    format!("parameter ${n} used both as JSON records and elsewhere"),
                ));
            }
        }
        let same = |a: &ColumnRule, b: &ColumnRule| a.key == b.key && a.ty == b.ty;
        let conflict = match (&*slot, &want) {
            (ParamUse::Unused, _) => {
                *slot = want;
                return Ok(());
            }
            (ParamUse::Plain, ParamUse::Plain) => return Ok(()),
            (ParamUse::Enc(a), ParamUse::Enc(b))
            | (ParamUse::EncArray(a), ParamUse::EncArray(b))
            | (ParamUse::StoreArray(a), ParamUse::StoreArray(b))
                if same(a, b) =>
            {
                return Ok(());
            }
            (ParamUse::Enc(a) | ParamUse::EncArray(a) | ParamUse::StoreArray(a), _) => a.clone(),
            (_, ParamUse::Enc(a) | ParamUse::EncArray(a) | ParamUse::StoreArray(a)) => a.clone(),
            _ => return Ok(()),
        };
        Err(Refusal::column(
            &conflict,
            format!("parameter ${n} used both for this column and elsewhere"),
        ))
    }

    /// Marks the literal sites recorded since `mark` (see `literal_mark`) as `kind`.
    pub(crate) fn mark_literals(&mut self, mark: usize, kind: LiteralKind) {
        for l in self.literals.iter_mut().skip(mark) {
            l.kind = kind;
        }
    }

    /// Inserts `text` at byte `at` of the forwarded text.
    pub(crate) fn insert_text(&mut self, at: usize, text: String) {
        self.insertions.push((at, text));
    }

    /// The insertions recorded so far (an inner analysis handing them to its outer one).
    pub(crate) fn take_insertions(&mut self) -> Vec<(usize, String)> {
        std::mem::take(&mut self.insertions)
    }

    /// Records a literal site.
    pub(crate) fn push_literal(&mut self, site: LiteralSite) {
        self.literals.push(site);
    }

    /// The number of literal sites recorded so far.
    pub(crate) fn literal_mark(&self) -> usize {
        self.literals.len()
    }

    /// Records a cast written on parameter `number` (the range of `site` with its wraps), to be
    /// replaced by plain `$n` since the parameter's type changes.
    pub(crate) fn param_cast(&mut self, number: usize, site: &Site, rule: &ColumnRule) -> R<()> {
        if site
            .wraps
            .iter()
            .any(|w| matches!(w, Wrap::Cast { .. } | Wrap::Sign(_)))
        {
            let (start, end) = self.range(site, rule)?;
            // A `VALUES` column used twice records its parameter's cast once.
            if self.casts.iter().any(|c| c.start == start && c.end == end) {
                return Ok(());
            }
            self.casts.push(ParamCast { start, end, number });
        }
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
    fn coerce_param(&mut self, n: usize, c: Coerce, rule: &ColumnRule) -> R<()> {
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
    fn strip_outer(&mut self, site: &Site, rule: &ColumnRule) -> R<()> {
        for w in &site.wraps {
            if let Wrap::Outer { loc, .. } = w {
                self.strip_ref_cast(*loc, rule)?;
            }
        }
        Ok(())
    }

    /// The value PostgreSQL would store for a literal: its casts' type modifiers applied,
    /// and a numeric constant bound for an integer column rounded (assignment rounds).
    fn coerce_literal(
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
            if let Some(c) = coerce {
                if c != Coerce::Integer {
                    v = coerce::apply(c, &v).map_err(refuse)?;
                }
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
    fn number_text(&self, loc: i32) -> &str {
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

    /// Uses `ev` where no encrypted column may appear; `construct` names the use for a refusal.
    pub(crate) fn plain_use(&mut self, ev: Ev, construct: impl FnOnce() -> String) -> R<()> {
        match ev {
            Ev::Enc { rule, .. } => Err(Refusal::column(&rule, construct())),
            Ev::Val(binds) => {
                for b in binds {
                    match b {
                        Bind::Param { number, .. } => self.use_param(number, None)?,
                        Bind::Lit { site, .. } if is_sealed(&site) => {
                            self.sealed_use(&site, None)?;
                        }
                        Bind::Array { loc, .. } => {
                            self.sealed_use(
                                &Site {
                                    loc,
                                    wraps: Vec::new(),
                                },
                                None,
                            )?;
                        }
                        _ => {}
                    }
                }
                Ok(())
            }
            Ev::Plain => Ok(()),
        }
    }

    /// Uses `ev` where an encrypted column may appear as is (a result column, IS NULL, …).
    pub(crate) fn any_use(&mut self, ev: Ev) -> R<()> {
        match ev {
            Ev::Enc { .. } => Ok(()),
            other => self.plain_use(other, String::new),
        }
    }

    /// Stores `ev` into `target`'s column (INSERT, UPDATE SET, ON CONFLICT).
    pub(crate) fn assign(&mut self, target: &Arc<ColumnRule>, ev: Ev) -> R<()> {
        match ev {
            Ev::Val(binds) => self.bind(binds, target),
            Ev::Enc { rule, .. } if rule.key == target.key => Ok(()),
            Ev::Enc { rule, .. } => Err(Refusal::column(
                target,
                format!(
                    "copying from encrypted column {} (a different key)",
                    rule.qualified()
                ),
            )),
            Ev::Plain => Err(Refusal::column(
                target,
                "storing a computed or plaintext expression",
            )),
        }
    }

    /// An equality-like comparison (`=`, `<>`, `IN`, `IS [NOT] DISTINCT FROM`).
    pub(crate) fn compare(&mut self, l: Ev, r: Ev, op: &str) -> R<()> {
        let det = |rule: &Arc<ColumnRule>| {
            if rule.mode == Mode::Deterministic {
                Ok(())
            } else {
                Err(Refusal::column(
                    rule,
                    format!("{op} (randomized encryption)"),
                ))
            }
        };
        match (l, r) {
            (Ev::Enc { rule: a, .. }, Ev::Enc { rule: b, .. }) => {
                det(&a)?;
                det(&b)?;
                if a.key != b.key {
                    return Err(Refusal::column(
                        &a,
                        format!("{op} with column {} (a different key)", b.qualified()),
                    ));
                }
                Ok(())
            }
            (Ev::Enc { rule, .. }, Ev::Val(binds)) | (Ev::Val(binds), Ev::Enc { rule, .. }) => {
                det(&rule)?;
                if binds.iter().any(is_array_bind) {
                    return Err(Refusal::column(
                        &rule,
                        format!("{op} with the elements of an unnested array (use = ANY($n))"),
                    ));
                }
                self.bind(binds, &rule)
            }
            (Ev::Enc { rule, .. }, Ev::Plain) | (Ev::Plain, Ev::Enc { rule, .. }) => {
                Err(Refusal::column(
                    &rule,
                    format!("{op} with a computed or plaintext expression"),
                ))
            }
            (l, r) => {
                self.plain_use(l, String::new)?;
                self.plain_use(r, String::new)
            }
        }
    }

    /// Whether any rules table has a column named `col`.
    pub(crate) fn is_rules_column_name(&self, col: &str) -> Option<Arc<ColumnRule>> {
        self.ctx.rules.columns().find(|c| c.column == col).cloned()
    }

    /// True when something has been bound (the inner query of PREPARE needs a rewrite).
    pub(crate) fn first_bound(&self) -> Option<Arc<ColumnRule>> {
        self.literals.first().map(|l| l.rule.clone()).or_else(|| {
            self.params.iter().find_map(|p| match p {
                ParamUse::Enc(r) | ParamUse::EncArray(r) | ParamUse::StoreArray(r) => {
                    Some(r.clone())
                }
                ParamUse::Json(cols) => cols.first().cloned(),
                _ => None,
            })
        })
    }

    /// Match sites deduplicated (a construct analysed twice notes its sites twice); a span
    /// that is malformed or overlaps another is dropped (the site is then unrewritable).
    fn checked_matches(&self, mut matches: Vec<MatchSite>) -> Vec<MatchSite> {
        let key = |m: &MatchSite| m.span.as_ref().map(|s| (s.start, s.end));
        matches.sort_by_key(|m| (key(m), m.rule.key.clone()));
        matches.dedup_by(|a, b| key(a) == key(b) && a.rule.key == b.rule.key);
        let spans: Vec<(usize, usize)> = matches
            .iter()
            .filter_map(|m| m.span.as_ref().map(|s| (s.start, s.end)))
            .collect();
        let sql = self.sql;
        let valid = |s: usize, e: usize| {
            s < e && e <= sql.len() && sql.is_char_boundary(s) && sql.is_char_boundary(e)
        };
        for m in &mut matches {
            let Some(sp) = &m.span else { continue };
            let overlaps = spans
                .iter()
                .any(|&(s, e)| (s, e) != (sp.start, sp.end) && s < sp.end && sp.start < e);
            let inside = |(s, e): (usize, usize)| valid(s, e) && sp.start <= s && e <= sp.end;
            let items_ok = sp.items.iter().all(|i| match i {
                MatchItem::Column(s, e) => inside((*s, *e)),
                _ => true,
            });
            if overlaps || !valid(sp.start, sp.end) || !inside(sp.column) || !items_ok {
                m.span = None;
            }
        }
        matches
    }

    /// The final analysis of the text.
    pub(crate) fn finish(mut self, statements: usize) -> Analysis {
        self.literals.sort_by_key(|l| (l.start, l.end));
        self.literals
            .dedup_by(|a, b| a.start == b.start && a.end == b.end && a.rule.key == b.rule.key);
        self.casts.sort_by_key(|c| (c.start, c.end));
        self.casts
            .dedup_by(|a, b| a.start == b.start && a.end == b.end);
        self.ref_casts.sort_by_key(|c| (c.start, c.end));
        self.ref_casts.dedup();
        let mut ranges: Vec<(usize, usize)> =
            self.literals.iter().map(|l| (l.start, l.end)).collect();
        ranges.extend(self.casts.iter().map(|c| (c.start, c.end)));
        ranges.extend(self.ref_casts.iter().map(|c| (c.start, c.end)));
        ranges.extend(self.insertions.iter().map(|i| (i.0, i.0)));
        ranges.sort_unstable();
        let bad_range = ranges.windows(2).any(|w| w[1].0 < w[0].1)
            || ranges.iter().any(|&(s, e)| {
                s > e
                    || !self.sql.is_char_boundary(s)
                    || !self.sql.is_char_boundary(e)
                    || e > self.sql.len()
            });
        if bad_range {
            return Analysis::Refuse(self.refuse_text("overlapping values"));
        }
        let matches = std::mem::take(&mut self.matches);
        let matches = self.checked_matches(matches);
        let max_param = if matches.is_empty() {
            0
        } else {
            let sql = self.sql;
            self.tokens().map_or(0, |t| t.max_param(sql))
        };
        let array_params = (self.params.iter().enumerate())
            .filter(|(_, p)| matches!(p, ParamUse::EncArray(_) | ParamUse::StoreArray(_)))
            .map(|(i, _)| i)
            .collect();
        let store_arrays = (self.params.iter().enumerate())
            .filter(|(_, p)| matches!(p, ParamUse::StoreArray(_)))
            .map(|(i, _)| i)
            .collect();
        self.coerces.sort_unstable_by_key(|c| c.0);
        let json_params = (self.params.iter().enumerate())
            .filter_map(|(i, p)| match p {
                ParamUse::Json(cols) => Some((i, cols.clone())),
                _ => None,
            })
            .collect();
        let plan = Plan {
            params: self
                .params
                .into_iter()
                .map(|p| match p {
                    ParamUse::Enc(r) | ParamUse::EncArray(r) | ParamUse::StoreArray(r) => Some(r),
                    _ => None,
                })
                .collect(),
            array_params,
            store_arrays,
            param_coerce: self.coerces,
            json_params,
            no_params: !self.copies.is_empty(),
            copies: if self.copies.iter().any(Option::is_some) {
                self.copies
            } else {
                Vec::new()
            },
            insertions: self.insertions,
            literals: self.literals,
            param_casts: self.casts,
            ref_casts: self.ref_casts,
            matches,
            max_param,
            statements,
        };
        if plan.is_empty() {
            Analysis::Passthrough
        } else {
            Analysis::Rewrite(Arc::new(plan))
        }
    }
}
