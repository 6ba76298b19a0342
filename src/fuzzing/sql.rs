//! Harnesses for what reads SQL and COPY data: the analyzer (on arbitrary text, with a small
//! rules set and catalog) followed by the text rewrite the session applies, and the COPY
//! stream splitter in every format, fed whole and in pieces.

use std::collections::HashMap;

use crate::codec::LogicalType;
use crate::config::{ColumnRule, Mode, Rules};
use crate::copy::{CopyError, CopyOptions, CopyStream, Field, Format};
use crate::rewrite::{self, Analysis, AnalysisContext, CatalogView, MatchItem};

/// Two tables with encrypted columns of both modes and a plain one.
struct Catalog(HashMap<(&'static str, &'static str), Vec<String>>);

impl CatalogView for Catalog {
    fn columns(&self, schema: &str, table: &str) -> Option<Vec<String>> {
        self.0.get(&(schema, table)).cloned()
    }
}

fn rule(table: &str, column: &str, ty: LogicalType, mode: Mode) -> ColumnRule {
    ColumnRule {
        schema: "public".into(),
        table: table.into(),
        column: column.into(),
        ty,
        mode,
        key: format!("public.{table}.{column}"),
    }
}

fn fixtures() -> (Rules, Catalog) {
    let rules = Rules::from_columns(vec![
        rule("patients", "ssn", LogicalType::Text, Mode::Deterministic),
        rule("patients", "age", LogicalType::Int4, Mode::Deterministic),
        rule("patients", "note", LogicalType::Text, Mode::Randomized),
        rule("visits", "day", LogicalType::Date, Mode::Randomized),
    ])
    .expect("fixture rules are valid");
    let cols = |c: &[&str]| c.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let mut m = HashMap::new();
    m.insert(("public", "patients"), cols(&["id", "ssn", "age", "note"]));
    m.insert(("public", "visits"), cols(&["id", "day", "ssn"]));
    m.insert(("public", "plain"), cols(&["id", "name"]));
    (rules, Catalog(m))
}

/// Analyses the text as a session would, then applies the plan's text edits: literal sites,
/// casts and every rewritable comparison, each spliced by byte range.
pub fn analyzer(data: &[u8]) {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let (rules, catalog) = fixtures();
    let path = ["public".to_owned()];
    let ctx = AnalysisContext {
        rules: &rules,
        search_path: &path,
        catalog: &catalog,
        qualify: true,
    };
    let _ = (rewrite::is_ddl(sql), rewrite::prepared_names(sql));
    let Analysis::Rewrite(plan) = rewrite::analyze(sql, &ctx) else {
        return;
    };
    let literals = vec!["'\\x00'::bytea".to_owned(); plan.literals.len()];
    let mut whole = Vec::new();
    for m in &plan.matches {
        if let Some(span) = &m.span {
            let r = span.render(sql, m.op, |_: &MatchItem| {
                Ok::<_, ()>("'{}'::bytea[]".into())
            });
            whole.push((span.start, span.end, r.unwrap_or_default()));
        }
    }
    let _ = plan.rewrite_text_with(sql, &literals, &whole);
}

/// Maps a field: refuses values starting with `!`, otherwise doubles them.
fn map(_idx: usize, v: Field<'_>) -> Result<Option<Vec<u8>>, ()> {
    match v {
        Some([b'!', ..]) => Err(()),
        Some(v) => Ok(Some([v, v].concat())),
        None => Ok(None),
    }
}

/// Runs `input` through a stream in pieces of `step` bytes.
fn run(
    opts: &CopyOptions,
    mapped: &[bool],
    input: &[u8],
    step: usize,
) -> Result<Vec<u8>, CopyError<()>> {
    let mut s = CopyStream::new(opts.clone(), mapped.to_vec());
    let mut out = Vec::new();
    for piece in input.chunks(step) {
        out.extend(s.feed(piece, &mut map)?);
    }
    out.extend(s.finish(&mut map)?);
    Ok(out)
}

/// Byte 0 picks the format, header and delimiter, byte 1 the mapped fields, byte 2 the piece
/// size; the rest is the data. Fed whole or in pieces, the stream must give the same result.
pub fn copy_stream(data: &[u8]) {
    let [opt, fields, step, input @ ..] = data else {
        return;
    };
    let format = [Format::Text, Format::Csv, Format::Binary][usize::from(*opt & 3) % 3];
    let mut opts = CopyOptions::new(format);
    opts.header = opt & 4 != 0;
    if opt & 8 != 0 {
        opts.delimiter = b'|';
    }
    if opt & 16 != 0 && format == Format::Csv {
        opts.escape = b'\\';
    }
    let mapped: Vec<bool> = (0..8).map(|i| fields & (1 << i) != 0).collect();
    let whole = run(&opts, &mapped, input, input.len().max(1));
    let pieces = run(&opts, &mapped, input, usize::from(*step).max(1));
    match (&whole, &pieces) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "whole and piecewise output differ"),
        (Err(_), Err(_)) => {}
        _ => panic!("whole {whole:?} and piecewise {pieces:?} disagree"),
    }
}
