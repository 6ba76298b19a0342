//! `COPY table … FROM STDIN` / `TO STDOUT` on a rules table: which fields of the data stream
//! are encrypted columns, and the data format (so the session can encrypt rows on the way in
//! and decrypt them on the way out, see `crate::copy`).
//!
//! Without a column list the catalog's columns are written into the statement
//! (`COPY people ("id", "ssn", …) FROM STDIN`), so the server's field order is the one the
//! session maps, whatever changed since (a column PostgreSQL would leave out, a generated one,
//! is then an error, never a shifted field). Refused: COPY to or from a server file or
//! program, `WHERE` naming an encrypted column, `FORCE_*` options naming one, an `ENCODING`
//! other than UTF-8, and options that would change the data in ways the stream does not
//! model. `COPY (query) TO STDOUT` decrypts the query's encrypted output columns.

use std::sync::Arc;

use pg_query::NodeEnum;
use pg_query::protobuf::{CopyStmt, DefElem, Node};

use super::analyzer::Analyzer;
use super::ast::sval;
use super::bind::R;
use super::plan::{CopyDirection, CopyPlan, Refusal};
use super::scope::{ColKind, Lookup, Rel};
use crate::copy::{CopyOptions, Format};
use crate::rules::ColumnRule;

const SERVER_FILE: &str =
    "COPY to or from a server file or program (use STDIN/STDOUT, e.g. psql's \\copy)";

/// A DefElem argument as text (`csv`, `'|'`, `true`, `1`).
fn arg_text(d: &DefElem) -> Option<String> {
    match d.arg.as_deref().and_then(|n| n.node.as_ref())? {
        NodeEnum::String(s) => Some(s.sval.clone()),
        NodeEnum::Integer(i) => Some(i.ival.to_string()),
        NodeEnum::Boolean(b) => Some(b.boolval.to_string()),
        NodeEnum::Float(f) => Some(f.fval.clone()),
        _ => None,
    }
}

/// PostgreSQL's boolean option spellings (`HEADER MATCH` counts as a header).
fn arg_bool(d: &DefElem) -> Option<bool> {
    if d.arg.is_none() {
        return Some(true);
    }
    match arg_text(d)?.to_ascii_lowercase().as_str() {
        "true" | "on" | "1" | "yes" | "match" => Some(true),
        "false" | "off" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// The column names of a `FORCE_*` option; `None` for `*`.
fn arg_columns(d: &DefElem) -> Option<Vec<String>> {
    match d.arg.as_deref().and_then(|n| n.node.as_ref()) {
        Some(NodeEnum::List(l)) => {
            Some(l.items.iter().filter_map(sval).map(str::to_owned).collect())
        }
        _ => None,
    }
}

impl Analyzer<'_, '_> {
    /// A COPY statement naming a table (a `COPY (query)` is handled by the caller).
    pub(crate) fn copy_table(&mut self, c: &CopyStmt, rel: &Rel) -> R<Option<Arc<CopyPlan>>> {
        let Some(first) = rel.first_encrypted().cloned() else {
            return Ok(None);
        };
        let refuse = refusal_for(&first);
        stdio_only(c, &refuse)?;
        if let Some(w) = c.where_clause.as_deref().and_then(|n| n.node.as_ref()) {
            self.opaque(w, "COPY … WHERE")?;
        }
        let options = self.copy_options(&c.options, rel, &refuse)?;
        let names: Vec<String> = if c.attlist.is_empty() {
            let cols = self.catalog_columns(rel).ok_or_else(|| {
                refuse("COPY without a column list on a table pgcloak has not seen in the catalog")
            })?;
            self.insert_column_list(c, &cols, &first)?;
            cols
        } else {
            c.attlist
                .iter()
                .filter_map(sval)
                .map(str::to_owned)
                .collect()
        };
        let columns = names.iter().map(|n| enc_rule(rel, n)).collect();
        Ok(Some(Arc::new(CopyPlan {
            direction: if c.is_from {
                CopyDirection::In
            } else {
                CopyDirection::Out
            },
            options,
            columns,
        })))
    }

    /// `COPY (query) TO STDOUT`: the query's encrypted output columns are decrypted.
    pub(crate) fn copy_query(
        &mut self,
        c: &CopyStmt,
        query: &NodeEnum,
    ) -> R<Option<Arc<CopyPlan>>> {
        let Some(out) = self.query_output(query, "COPY (query)")? else {
            return Ok(None);
        };
        let open = out.open;
        let rel = out.into_rel(self, "", false)?;
        let Some(first) = rel.first_encrypted().cloned() else {
            return Ok(None);
        };
        let refuse = refusal_for(&first);
        if open {
            return Err(refuse(
                "COPY of a query whose output columns pgcloak cannot list (* over a table it has \
                 not seen in the catalog)",
            ));
        }
        stdio_only(c, &refuse)?;
        let options = self.copy_options(&c.options, &rel, &refuse)?;
        let columns = rel
            .cols
            .iter()
            .map(|col| match &col.kind {
                ColKind::Enc { rule, .. } => Some(rule.clone()),
                ColKind::Plain | ColKind::Val { .. } => None,
            })
            .collect();
        Ok(Some(Arc::new(CopyPlan {
            direction: CopyDirection::Out,
            options,
            columns,
        })))
    }

    fn catalog_columns(&self, rel: &Rel) -> Option<Vec<String>> {
        let schema = rel.schema.as_deref()?;
        self.ctx.catalog.columns(schema, &rel.name)
    }

    /// Writes ` ("a", "b", …)` after the table name.
    fn insert_column_list(&mut self, c: &CopyStmt, cols: &[String], rule: &ColumnRule) -> R<()> {
        let loc = c.relation.as_ref().map_or(-1, |r| r.location);
        let end = self
            .tokens()?
            .column_ref(loc)
            .map(|(_, e)| e)
            .ok_or_else(|| Refusal::column(rule, "COPY on a table name pgcloak cannot locate"))?;
        let list: Vec<String> = cols
            .iter()
            .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
            .collect();
        self.insert_text(end, format!(" ({})", list.join(", ")));
        Ok(())
    }

    fn copy_options(
        &mut self,
        options: &[Node],
        rel: &Rel,
        refuse: &dyn Fn(&str) -> Refusal,
    ) -> R<CopyOptions> {
        let elems: Vec<&DefElem> = options
            .iter()
            .filter_map(|o| match o.node.as_ref() {
                Some(NodeEnum::DefElem(d)) => Some(&**d),
                _ => None,
            })
            .collect();
        let format = match elems
            .iter()
            .find(|d| d.defname == "format")
            .and_then(|d| arg_text(d))
        {
            None => Format::Text,
            Some(f) => match f.to_ascii_lowercase().as_str() {
                "text" => Format::Text,
                "csv" => Format::Csv,
                "binary" => Format::Binary,
                _ => return Err(refuse("COPY in an unknown format")),
            },
        };
        let mut opts = CopyOptions::new(format);
        let byte = |d: &DefElem| -> R<u8> {
            match arg_text(d).as_deref().map(str::as_bytes) {
                Some([b]) if b.is_ascii() => Ok(*b),
                _ => Err(refuse("a COPY option that is not one ASCII character")),
            }
        };
        let mut escape = None;
        for d in &elems {
            match d.defname.as_str() {
                "format" | "freeze" => {}
                "delimiter" => opts.delimiter = byte(d)?,
                "quote" => opts.quote = byte(d)?,
                "escape" => escape = Some(byte(d)?),
                "null" => {
                    opts.null = arg_text(d)
                        .ok_or_else(|| refuse("COPY NULL without a string"))?
                        .into_bytes();
                }
                "header" => {
                    opts.header =
                        arg_bool(d).ok_or_else(|| refuse("COPY HEADER with an unknown value"))?;
                }
                "encoding" => {
                    let e = arg_text(d)
                        .unwrap_or_default()
                        .to_ascii_lowercase()
                        .replace(['-', '_'], "");
                    if e != "utf8" {
                        return Err(refuse("COPY with an ENCODING other than UTF8"));
                    }
                }
                "force_quote" | "force_not_null" | "force_null" => {
                    let named = arg_columns(d);
                    let hits_encrypted = match &named {
                        None => true,
                        Some(cols) => cols.iter().any(|c| enc_rule(rel, c).is_some()),
                    };
                    if hits_encrypted {
                        return Err(refuse(&format!(
                            "COPY {} on an encrypted column",
                            d.defname.to_ascii_uppercase()
                        )));
                    }
                }
                other => {
                    return Err(refuse(&format!(
                        "the COPY option {}",
                        other.to_ascii_uppercase()
                    )));
                }
            }
        }
        opts.escape = escape.unwrap_or(opts.quote);
        Ok(opts)
    }
}

/// Refusals of a COPY, naming the rules table of `first`.
fn refusal_for(first: &ColumnRule) -> impl Fn(&str) -> Refusal {
    let table = format!("{}.{}", first.schema, first.table);
    move |what| Refusal::table(table.clone(), what.to_owned())
}

/// Only STDIN/STDOUT: the data must pass through pgcloak to be encrypted or decrypted.
fn stdio_only(c: &CopyStmt, refuse: &dyn Fn(&str) -> Refusal) -> R<()> {
    if c.is_program || !c.filename.is_empty() {
        return Err(refuse(SERVER_FILE));
    }
    Ok(())
}

/// The rule of `rel`'s column `name`, when it is encrypted.
fn enc_rule(rel: &Rel, name: &str) -> Option<Arc<ColumnRule>> {
    match rel.lookup(name) {
        Lookup::Found(ColKind::Enc { rule, .. }) => Some(rule.clone()),
        _ => None,
    }
}

#[cfg(test)]
#[path = "copy_tests.rs"]
mod tests;
