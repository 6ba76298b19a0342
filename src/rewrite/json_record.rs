//! `json_populate_record[set](NULL::t, $n)` (and the `jsonb_` forms) in FROM over a rules
//! table's row type: the bulk insert `INSERT INTO t SELECT * FROM json_populate_recordset(NULL::t,
//! $1)`. The relation has `t`'s columns; the JSON parameter's values for `t`'s encrypted columns
//! are encrypted at Bind (`Plan::json_params`: each becomes the JSON string `"\\x…"` of its
//! envelope, which PostgreSQL reads into the `bytea` column), so those columns carry `t`'s
//! ciphertext. A constant JSON text is refused (send it as a parameter), and so is any other
//! argument.

use std::sync::Arc;

use pg_query::NodeEnum;
use pg_query::protobuf::{FuncCall, Node, RangeFunction, TypeCast};

use super::analyzer::Analyzer;
use super::ast::sval;
use super::bind::R;
use super::plan::Refusal;
use super::scope::{ColKind, Rel};
use crate::rules::ColumnRule;
use crate::rules::ident::quote_ident;

const FUNCTIONS: [&str; 4] = [
    "json_populate_record",
    "json_populate_recordset",
    "jsonb_populate_record",
    "jsonb_populate_recordset",
];

impl Analyzer<'_, '_> {
    /// The relation of `json[b]_populate_record[set](NULL::t, $n)` when `t` is a rules table;
    /// None for any other function in FROM.
    pub(crate) fn json_record_rel(&mut self, rf: &RangeFunction) -> R<Option<Rel>> {
        let Some(f) = single_call(rf) else {
            return Ok(None);
        };
        let names: Vec<&str> = f.funcname.iter().filter_map(sval).collect();
        let name = match names.as_slice() {
            [n] | ["pg_catalog", n] if FUNCTIONS.contains(n) => (*n).to_owned(),
            _ => return Ok(None),
        };
        let Some(NodeEnum::TypeCast(base)) = f.args.first().and_then(|n| n.node.as_ref()) else {
            return Ok(None);
        };
        let Some((schema, table, type_loc)) = self.row_type(base) else {
            return Ok(None);
        };
        let Some(rules) = self.ctx.rules.table(&schema, &table) else {
            return Ok(None);
        };
        let encrypted: Arc<[Arc<ColumnRule>]> = rules.columns.iter().cloned().collect();
        let Some(first) = encrypted.first().cloned() else {
            return Ok(None);
        };
        let refuse = |what: &str| Refusal::column(&first, format!("{name}() {what}"));
        if f.args.len() != 2 || rf.ordinality || !plain_call(f) {
            return Err(refuse("with other arguments than (NULL::table, $n)"));
        }
        let Some(number) = f.args.get(1).and_then(json_param) else {
            return Err(refuse(
                "over anything but a parameter (send the JSON as a parameter)",
            ));
        };
        self.use_json_param(number, encrypted, &first)?;
        let mut rel = self.table_rel(&schema, &table)?;
        for c in &mut rel.cols {
            if let ColKind::Enc { origin, .. } = &mut c.kind {
                *origin = false;
            }
        }
        rel.schema = None;
        rel.name = rf
            .alias
            .as_ref()
            .map_or_else(|| name.clone(), |a| a.aliasname.clone());
        let cols: Vec<String> = rf
            .alias
            .as_ref()
            .map(|a| {
                a.colnames
                    .iter()
                    .filter_map(sval)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if cols.len() > rel.cols.len() || !rel.rename(&cols) {
            return Err(refuse(
                "with more column aliases than the table has columns",
            ));
        }
        // Send the row type and the function as pgcloak resolved them.
        if let Some(at) = type_loc {
            self.insert_text(at, format!("{}.", quote_ident(&schema)));
        }
        if names.len() == 1 {
            let at = usize::try_from(f.location).map_err(|_| refuse("unlocatable"))?;
            self.insert_text(at, "pg_catalog.".to_owned());
        }
        Ok(Some(rel))
    }

    /// `NULL::[schema.]table`: the table's schema (as resolved), name, and where to qualify an
    /// unqualified name.
    fn row_type(&self, tc: &TypeCast) -> Option<(String, String, Option<usize>)> {
        let Some(NodeEnum::AConst(c)) = tc.arg.as_deref().and_then(|n| n.node.as_ref()) else {
            return None;
        };
        let t = tc.type_name.as_ref()?;
        if !c.isnull || !t.typmods.is_empty() || !t.array_bounds.is_empty() || t.pct_type {
            return None;
        }
        let names: Vec<&str> = t.names.iter().filter_map(sval).collect();
        match names.as_slice() {
            [table] => {
                let schema = self.resolve_schema("", table)?;
                Some((
                    schema,
                    (*table).to_owned(),
                    usize::try_from(t.location).ok(),
                ))
            }
            [schema, table] => Some(((*schema).to_owned(), (*table).to_owned(), None)),
            _ => None,
        }
    }
}

/// The one function of a plain `FROM f(…)` (no `ROWS FROM`, no column definition list).
pub(super) fn single_call(rf: &RangeFunction) -> Option<&FuncCall> {
    if rf.is_rowsfrom || rf.functions.len() != 1 || !rf.coldeflist.is_empty() {
        return None;
    }
    let Some(NodeEnum::List(l)) = rf.functions.first().and_then(|n| n.node.as_ref()) else {
        return None;
    };
    if l.items.get(1).is_some_and(|n| n.node.is_some()) {
        return None;
    }
    match l.items.first().and_then(|n| n.node.as_ref()) {
        Some(NodeEnum::FuncCall(f)) => Some(f),
        _ => None,
    }
}

/// A call without aggregate or window decorations and without `VARIADIC`.
pub(super) fn plain_call(f: &FuncCall) -> bool {
    f.agg_order.is_empty()
        && f.agg_filter.is_none()
        && f.over.is_none()
        && !f.agg_star
        && !f.agg_distinct
        && !f.func_variadic
}

/// `$n`, optionally cast to `json` or `jsonb`.
fn json_param(n: &Node) -> Option<usize> {
    match n.node.as_ref()? {
        NodeEnum::ParamRef(p) => usize::try_from(p.number).ok().filter(|&n| n > 0),
        NodeEnum::TypeCast(tc) => {
            let t = tc.type_name.as_ref()?;
            let ty = t.names.iter().filter_map(sval).next_back()?;
            let plain = t.typmods.is_empty() && t.array_bounds.is_empty();
            if plain && matches!(ty, "json" | "jsonb") {
                json_param(tc.arg.as_deref()?)
            } else {
                None
            }
        }
        _ => None,
    }
}
