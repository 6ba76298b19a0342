//! Rules files (spec §3): strict TOML → [`ColumnRule`]s → the [`Rules`] index.
//!
//! ```toml
//! [tables."public.patients"]
//! ssn = { type = "text", mode = "deterministic" }
//! diagnosis = { type = "text", mode = "randomized", key = "clinic.notes" }
//! ```
//! Table keys are `schema.table` or a bare `table` (= `public`); identifiers fold as
//! PostgreSQL folds them (see [`super::ident`]). Every error names the file, the table and
//! column as written, and the offending value.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::ident::{parse_ident, parse_qualified};
use super::rules::{ColumnRule, Mode, Rules, RulesIndexError};
use crate::codec::LogicalType;

/// A problem in a rules file. Names the file, and the table and column where it applies.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("cannot read rules file {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid rules file {}: {message}", .path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("rules file {}: {at}: {message}", .path.display())]
    Invalid {
        path: PathBuf,
        at: String,
        message: String,
    },
    #[error("column {column} is declared in both {} and {}", .first.display(), .second.display())]
    Duplicate {
        column: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("rules files {files}: {source}")]
    Index {
        files: String,
        source: RulesIndexError,
    },
}

/// Reads every rules file and compiles them into one index. Columns declared in two files
/// (after case folding) are an error naming both files.
pub fn load_rules(paths: &[PathBuf]) -> Result<Rules, RulesError> {
    let mut seen: HashMap<(String, String, String), PathBuf> = HashMap::new();
    let mut all = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: path.clone(),
            source,
        })?;
        for col in parse_rules(&text, path)? {
            let id = (col.schema.clone(), col.table.clone(), col.column.clone());
            if let Some(first) = seen.insert(id, path.clone()) {
                return Err(RulesError::Duplicate {
                    column: col.qualified(),
                    first,
                    second: path.clone(),
                });
            }
            all.push(col);
        }
    }
    Rules::from_columns(all).map_err(|source| RulesError::Index {
        files: paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        source,
    })
}

/// Parses one rules file's text (`path` is for messages only).
pub fn parse_rules(text: &str, path: &Path) -> Result<Vec<ColumnRule>, RulesError> {
    let invalid = |at: String, message: String| RulesError::Invalid {
        path: path.to_owned(),
        at,
        message,
    };
    let doc: Table = toml::from_str(text).map_err(|e| RulesError::Syntax {
        path: path.to_owned(),
        message: e.to_string().trim_end().replace('\n', " "),
    })?;
    if let Some(key) = doc.keys().find(|k| *k != "tables") {
        return Err(invalid(
            format!("key {key:?}"),
            "unknown top-level key (expected only [tables.\"schema.table\"])".into(),
        ));
    }
    let Some(tables) = doc.get("tables") else {
        return Ok(Vec::new());
    };
    let tables = tables
        .as_table()
        .ok_or_else(|| invalid("tables".into(), "must be a table of tables".into()))?;
    let mut out: Vec<ColumnRule> = Vec::new();
    let mut spelled: HashMap<(String, String, String), String> = HashMap::new();
    for (table_key, columns) in tables {
        let at = format!("table {table_key:?}");
        let (schema, table) = table_name(table_key).map_err(|m| invalid(at.clone(), m))?;
        let columns = columns
            .as_table()
            .ok_or_else(|| invalid(at.clone(), "must be a table of columns".into()))?;
        for (col_key, spec) in columns {
            let at = format!("table {table_key:?}, column {col_key:?}");
            let column = parse_ident(col_key)
                .map_err(|e| invalid(at.clone(), format!("bad column name: {e}")))?;
            let rule =
                column_rule(&schema, &table, column, spec).map_err(|m| invalid(at.clone(), m))?;
            let id = (schema.clone(), table.clone(), rule.column.clone());
            if let Some(first) = spelled.insert(id, format!("{table_key:?}.{col_key:?}")) {
                return Err(invalid(
                    at,
                    format!(
                        "column {} is declared twice (also as {first})",
                        rule.qualified()
                    ),
                ));
            }
            out.push(rule);
        }
    }
    Ok(out)
}

/// `schema.table` or `table` (= `public.table`), folded.
fn table_name(key: &str) -> Result<(String, String), String> {
    let mut parts = parse_qualified(key).map_err(|e| format!("bad table name: {e}"))?;
    match parts.len() {
        1 => Ok(("public".into(), parts.remove(0))),
        2 => {
            let table = parts.remove(1);
            Ok((parts.remove(0), table))
        }
        n => Err(format!(
            "bad table name: expected schema.table or table, found {n} dot-separated names"
        )),
    }
}

fn column_rule(
    schema: &str,
    table: &str,
    column: String,
    spec: &Value,
) -> Result<ColumnRule, String> {
    let spec = spec
        .as_table()
        .ok_or("must be { type = \"...\", mode = \"...\" }")?;
    for k in spec.keys() {
        if !matches!(k.as_str(), "type" | "mode" | "key") {
            return Err(format!("unknown key {k:?} (expected type, mode, key)"));
        }
    }
    let string = |name: &str| -> Result<Option<&str>, String> {
        match spec.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!("{name} must be a string, found {other}")),
        }
    };
    let ty_name = string("type")?.ok_or("missing type")?;
    let ty = LogicalType::from_name(ty_name).ok_or_else(|| {
        format!("unknown type {ty_name:?} (expected one of text, varchar, int2, int4, int8, float4, float8, numeric, bool, date, time, timestamp, timestamptz, uuid, json, jsonb, bytea)")
    })?;
    let mode = match string("mode")?.ok_or("missing mode")? {
        "randomized" => Mode::Randomized,
        "deterministic" => Mode::Deterministic,
        other => {
            return Err(format!(
                "unknown mode {other:?} (expected randomized or deterministic)"
            ));
        }
    };
    let key = match string("key")? {
        None => format!("{schema}.{table}.{column}"),
        Some(k) if k.is_empty() || k.len() > 200 || k.chars().any(char::is_control) => {
            return Err(format!(
                "bad key name {k:?} (must be 1-200 characters, no control characters)"
            ));
        }
        Some(k) => k.to_owned(),
    };
    Ok(ColumnRule {
        schema: schema.to_owned(),
        table: table.to_owned(),
        column,
        ty,
        mode,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<ColumnRule>, RulesError> {
        parse_rules(text, Path::new("/r/test.toml"))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_and_folds_names() {
        let cols = parse(
            r#"
[tables."Clinic.\"Patients\""]
SSN = { type = "TEXT", mode = "deterministic" }
"\"Dx\"" = { type = "integer", mode = "randomized", key = "shared" }
[tables.users]
email = { type = "text", mode = "deterministic" }
"#,
        )
        .unwrap();
        let find = |c: &str| cols.iter().find(|r| r.column == c).unwrap();
        let ssn = find("ssn");
        assert_eq!(
            (ssn.schema.as_str(), ssn.table.as_str()),
            ("clinic", "Patients")
        );
        assert_eq!(ssn.key, "clinic.Patients.ssn");
        assert_eq!(ssn.mode, Mode::Deterministic);
        assert_eq!(find("Dx").ty, LogicalType::Int4);
        assert_eq!(find("Dx").key, "shared");
        assert_eq!(find("email").schema, "public");
    }

    #[test]
    fn errors_name_file_table_column_and_value() {
        let e = err("[tables.t]\nc = { type = \"txt\", mode = \"randomized\" }");
        for part in ["/r/test.toml", "\"t\"", "\"c\"", "\"txt\""] {
            assert!(e.contains(part), "{e} lacks {part}");
        }
        let e = err("[tables.t]\nc = { type = \"text\", mode = \"random\" }");
        assert!(e.contains("\"random\"") && e.contains("\"c\""), "{e}");
        let e = err("[tables.t]\nc = { type = \"text\", mode = \"randomized\", kye = \"k\" }");
        assert!(e.contains("\"kye\""), "{e}");
        let e = err("[tables.t]\nc = { type = \"text\" }");
        assert!(e.contains("missing mode"), "{e}");
        let e = err("[tables.\"a.b.c.d\"]\nc = { type = \"text\", mode = \"randomized\" }");
        assert!(
            e.contains("\"a.b.c.d\"") && e.contains("4 dot-separated"),
            "{e}"
        );
        let e = err("[tables.t]\n\"my col\" = { type = \"text\", mode = \"randomized\" }");
        assert!(
            e.contains("\"my col\"") && e.contains("bad column name"),
            "{e}"
        );
        let e = err("[table.t]\nc = { type = \"text\", mode = \"randomized\" }");
        assert!(e.contains("\"table\""), "{e}");
        let e = err("[tables.t]\nc = { type = \"text\", mode = \"randomized\", key = \"\" }");
        assert!(e.contains("bad key name"), "{e}");
        let e = err("[tables.t\nc = 1");
        assert!(e.contains("invalid rules file /r/test.toml"), "{e}");
    }

    #[test]
    fn case_folded_duplicates_are_rejected() {
        let e = err(
            "[tables.t]\nSSN = { type = \"text\", mode = \"randomized\" }\nssn = { type = \"text\", mode = \"randomized\" }",
        );
        assert!(e.contains("public.t.ssn") && e.contains("twice"), "{e}");
        let e = err(
            "[tables.t]\nssn = { type = \"text\", mode = \"randomized\" }\n[tables.\"public.t\"]\nssn = { type = \"text\", mode = \"randomized\" }",
        );
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn duplicates_across_files_name_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.toml");
        let b = dir.path().join("b.toml");
        std::fs::write(
            &a,
            "[tables.t]\nssn = { type = \"text\", mode = \"randomized\" }",
        )
        .unwrap();
        std::fs::write(
            &b,
            "[tables.T]\nSSN = { type = \"text\", mode = \"randomized\" }",
        )
        .unwrap();
        let e = load_rules(&[a.clone(), b.clone()]).unwrap_err().to_string();
        assert!(e.contains("public.t.ssn"), "{e}");
        assert!(e.contains("a.toml") && e.contains("b.toml"), "{e}");
        let missing = load_rules(&[dir.path().join("nope.toml")]).unwrap_err();
        assert!(missing.to_string().contains("nope.toml"));
    }

    #[test]
    fn every_shipped_rules_file_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema-rules");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        assert!(files.len() >= 4, "{files:?}");
        for f in &files {
            let rules = load_rules(std::slice::from_ref(f)).unwrap();
            assert!(!rules.is_empty(), "{}", f.display());
        }
        let pay = load_rules(&[dir.join("payments.toml")]).unwrap();
        let shared = pay.keys().find(|(k, _)| *k == "ledger.iban").unwrap().1;
        assert_eq!(shared.len(), 2);
        let demo = load_rules(&[dir.join("demo.toml")]).unwrap();
        let limit = demo.column("public", "customers", "credit_limit").unwrap();
        assert_eq!(
            (limit.ty, limit.mode),
            (LogicalType::Numeric, Mode::Randomized)
        );
    }
}
