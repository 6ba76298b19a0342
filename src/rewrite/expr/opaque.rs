//! Nodes pgcloak does not model (`opaque`): refused when they name a rules table or an
//! encrypted column anywhere inside, otherwise plaintext whose parameters are plain.

use crate::rewrite::analyzer::Analyzer;
use crate::rewrite::bind::{Ev, R};
use crate::rewrite::plan::Refusal;
use pg_query::NodeEnum;
use pg_query::protobuf::Node;

impl Analyzer<'_, '_> {
    pub(crate) fn opaque_node(&mut self, n: Option<&Node>, construct: &str) -> R<Ev> {
        match n.and_then(|n| n.node.as_ref()) {
            Some(n) => self.opaque(n, construct),
            None => Ok(Ev::Plain),
        }
    }

    /// Fallback for constructs the analysis does not model: refuses when the construct names a
    /// rules table or a column name that is encrypted anywhere; its parameters become plaintext.
    pub(crate) fn opaque(&mut self, n: &NodeEnum, construct: &str) -> R<Ev> {
        // A node that cannot be serialised cannot be searched: refused, never counted plain.
        let Ok(json) = serde_json::to_value(n) else {
            return Err(self.refuse_text(format!("{construct} (not analysable)")));
        };
        let mut found = Found::default();
        found.walk(&json);
        for t in &found.tables {
            if self.ctx.rules.table_names().iter().any(|n| n == t) {
                return Err(self.refuse_text(construct.to_owned()));
            }
        }
        for c in &found.columns {
            if let Some(rule) = self.is_rules_column_name(c) {
                return Err(Refusal::column(&rule, construct.to_owned()));
            }
        }
        for (number, loc) in found.params {
            let ev = self.param(number, loc)?;
            self.plain_use(ev, String::new)?;
        }
        Ok(Ev::Plain)
    }
}

/// Names and parameters found anywhere inside an opaque node.
#[derive(Default)]
struct Found {
    tables: Vec<String>,
    columns: Vec<String>,
    params: Vec<(i32, i32)>,
}

impl Found {
    fn walk(&mut self, v: &serde_json::Value) {
        use serde_json::Value;
        match v {
            Value::Object(map) => {
                // A RangeVar or a column name held in a typed field rather than in a Node
                // (`CREATE TRIGGER … ON t`, `CREATE STATISTICS … ON col`).
                self.push_str(map.get("relname"), true);
                for field in ["colname", "name"] {
                    self.push_str(map.get(field), false);
                }
                for (k, inner) in map {
                    match k.as_str() {
                        "ColumnRef" | "String" => self.push_col(inner),
                        "ParamRef" => {
                            let get = |f: &str| inner.get(f).and_then(Value::as_i64).unwrap_or(0);
                            let n = i32::try_from(get("number")).unwrap_or(0);
                            self.params
                                .push((n, i32::try_from(get("location")).unwrap_or(-1)));
                        }
                        _ => {}
                    }
                    self.walk(inner);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| self.walk(i)),
            _ => {}
        }
    }

    fn push_str(&mut self, v: Option<&serde_json::Value>, table: bool) {
        if let Some(s) = v.and_then(serde_json::Value::as_str) {
            if table {
                self.tables.push(s.to_owned());
            } else {
                self.columns.push(s.to_owned());
            }
        }
    }

    fn push_col(&mut self, v: &serde_json::Value) {
        self.push_str(v.get("sval"), false);
    }
}
