//! The entry points of the analysis: [`analyze`] behind a cheap textual pre-screen, and the
//! token- or parse-level questions the session asks about a text without a plan ([`is_ddl`],
//! [`prepared_names`]).

use super::context::AnalysisContext;
use super::plan::Analysis;
use crate::rules::Rules;

/// Analyses `sql` (one or more statements). Never panics on any input.
pub fn analyze(sql: &str, ctx: &AnalysisContext) -> Analysis {
    if !may_touch_rules(sql, ctx.rules) && !mentions_any(sql, ctx.catalog.derived_names()) {
        return Analysis::Passthrough;
    }
    super::stmt::analyze_text(sql, ctx)
}

/// Cheap pre-check: false when the text cannot name any rules table (no rules table name and
/// no rules table's schema name appears in it, case-insensitively — a schema rename moves its
/// tables), so it can pass through without parsing. Texts with Unicode-escaped identifiers
/// (`U&"…"`) or `EXECUTE` always answer true.
pub fn may_touch_rules(sql: &str, rules: &Rules) -> bool {
    if rules.is_empty() {
        return false;
    }
    let bytes = sql.as_bytes();
    let contains = |needle: &[u8]| contains_ci(bytes, needle);
    rules.table_names().iter().any(|t| contains(t.as_bytes()))
        || rules.tables().any(|t| contains(t.schema.as_bytes()))
        || contains(b"u&\"")
        || contains(b"execute")
}

/// True when `needle` (ASCII case-insensitively) occurs in `hay`; an empty needle never does.
/// Runs for every statement several times: candidate positions come from a vectorised scan for
/// the needle's first byte in both cases, so a text is not compared byte window by window.
pub fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return false;
    };
    let (lo, up) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    let last_start = match hay.len().checked_sub(needle.len()) {
        Some(n) => n,
        None => return false,
    };
    memchr::memchr2_iter(lo, up, &hay[..=last_start])
        .any(|i| hay[i + 1..i + needle.len()].eq_ignore_ascii_case(rest))
}

/// The names of the SQL-level prepared statements a text creates (`PREPARE name AS …`).
pub fn prepared_names(sql: &str) -> Vec<String> {
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        return Vec::new();
    };
    parsed
        .protobuf
        .stmts
        .iter()
        .filter_map(|s| match s.stmt.as_ref().and_then(|n| n.node.as_ref()) {
            Some(pg_query::NodeEnum::PrepareStmt(p)) => Some(p.name.clone()),
            _ => None,
        })
        .collect()
}

/// True when one of `names` (lower-case) appears in `sql`, case-insensitively.
pub fn mentions_any(sql: &str, names: &[String]) -> bool {
    names
        .iter()
        .any(|n| contains_ci(sql.as_bytes(), n.as_bytes()))
}

/// True when some statement of the text is DDL (CREATE, ALTER, DROP): after it completes, the
/// session should refresh its catalog and clear the plan cache. Judged from the first token of
/// each statement (no parse); unscannable text answers false.
pub fn is_ddl(sql: &str) -> bool {
    use pg_query::protobuf::Token;
    let Ok(scan) = pg_query::scan(sql) else {
        return false;
    };
    let mut at_start = true;
    for tok in &scan.tokens {
        let kind = Token::try_from(tok.token).unwrap_or(Token::Nul);
        match kind {
            Token::SqlComment | Token::CComment => continue,
            Token::Ascii59 => at_start = true,
            Token::Create | Token::Alter | Token::Drop if at_start => return true,
            _ => at_start = false,
        }
    }
    false
}
