//! The analysis state for one SQL text and the decisions every construct shares: binding a value
//! to an encrypted column, comparing, assigning, and refusing. The state and its result
//! ([`Analyzer::finish`]) are here; parameter uses are in `params`, binding and coercion in
//! `coercion`, plaintext/`ANY`/assign/compare decisions in `decide`.

mod coercion;
mod decide;
mod params;

use std::sync::Arc;

use super::bind::{Ev, R};
use super::context::AnalysisContext;
use super::plan::{
    Analysis, Coerce, CopyPlan, LiteralKind, LiteralSite, MatchItem, MatchSite, ParamCast, Plan,
    RefCast, Refusal,
};
use super::scope::{ColKind, Rel, Scopes};
use super::span::Tokens;
use crate::rules::ColumnRule;

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
