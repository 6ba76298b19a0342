//! SQL analysis into an immutable rewrite plan (sans-IO).
//!
//! [`analyze`] parses a SQL text with pg_query (PostgreSQL's own grammar), resolves every table
//! and column reference against the rules, and decides one of three things:
//! - [`Analysis::Passthrough`]: no encrypted column is written or compared; forward as is.
//! - [`Analysis::Rewrite`]: a [`Plan`] naming, for each `$n` and each literal, the encrypted
//!   column it is bound for. The session encrypts parameters in Bind and splices encrypted
//!   `bytea` literals over the literal sites ([`splice`] / [`Plan::rewrite_text`]).
//! - [`Analysis::Refuse`]: a construct pgcloak cannot make correct (`LIKE`, `<`, `ORDER BY`,
//!   functions over an encrypted column, …): the session answers `0A000`.
//!
//! Fail closed: when the analysis is unsure whether a statement writes or compares an encrypted
//! column, it refuses. Selecting encrypted columns needs no plan entry: results are decrypted by
//! RowDescription's table OID and attribute number.
//!
//! DDL: the analysis passes DDL through; [`is_ddl`] tells the session when to refresh its catalog
//! (and [`PlanCache::clear`] its plans) after a statement ran.

mod analyzer;
mod any;
mod ast;
mod bind;
mod cache;
mod coerce;
mod context;
mod copy;
mod ddl;
mod entry;
mod expr;
mod from;
mod insert_values;
mod json_record;
mod matching;
mod merge;
mod plan;
mod scope;
mod select;
mod span;
mod stmt;
mod unnest;

pub use cache::PlanCache;
pub use coerce::apply as apply_coerce;
pub use context::{AnalysisContext, CatalogView, EmptyCatalog};
pub use entry::{analyze, contains_ci, is_ddl, may_touch_rules, mentions_any, prepared_names};
pub use plan::{
    Analysis, Coerce, CoerceError, CopyDirection, CopyPlan, LiteralKind, LiteralSite, MatchItem,
    MatchOp, MatchSite, MatchSpan, ParamCast, Plan, RefCast, Refusal, RefusalTarget, splice,
};

#[cfg(test)]
mod ddl_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod unnest_tests;
