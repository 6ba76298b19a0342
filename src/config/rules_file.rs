//! Rules files (spec §3): strict TOML → [`ColumnRule`]s → one [`Rules`] index per database.
//!
//! ```toml
//! database = "clinic"
//!
//! [tables."public.patients"]
//! ssn = { type = "text", mode = "deterministic" }
//! diagnosis = { type = "text", mode = "randomized", key = "clinic.notes" }
//! ```
//! Every file names its database (`database`, required). Files that name the same database are
//! merged into one index (a column declared in two of them is an error naming both files);
//! files that name different databases give one [`DatabaseRules`] each. Table keys are
//! `schema.table` or a bare `table` (= `public`); identifiers fold as PostgreSQL folds them
//! (see [`super::ident`]). Every error names the file, the table and column as written, and the
//! offending value.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::ident::{parse_ident, parse_qualified};
use crate::codec::LogicalType;
use crate::rules::{ColumnRule, Mode, Rules, RulesIndexError};

/// PostgreSQL's longest identifier (NAMEDATALEN - 1 bytes); longer database names are cut.
pub const MAX_DATABASE_NAME: usize = 63;

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
    #[error(
        "rules file {}: no database: put `database = \"<name>\"` at the top of the file (the database whose tables it lists)",
        .path.display()
    )]
    NoDatabase { path: PathBuf },
    #[error("column {column} is declared in both {} and {}", .first.display(), .second.display())]
    Duplicate {
        column: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("rules files {files} (database {database}): {source}")]
    Index {
        database: String,
        files: String,
        source: RulesIndexError,
    },
}

/// One parsed rules file: the database it names and its columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesFile {
    pub database: String,
    pub columns: Vec<ColumnRule>,
}

/// The compiled rules of one database, merged from every rules file that names it.
#[derive(Clone, Debug)]
pub struct DatabaseRules {
    /// The database name exactly as PostgreSQL spells it (names are case-sensitive here).
    pub database: String,
    /// The rules files that name this database, in config order.
    pub files: Vec<PathBuf>,
    pub rules: Rules,
}

/// Reads every rules file and compiles one index per database they name, in the order the
/// databases first appear. Columns declared twice for one database (after case folding) are
/// an error naming both files.
pub fn load_rules(paths: &[PathBuf]) -> Result<Vec<DatabaseRules>, RulesError> {
    // Per database: its files and the columns seen so far (with the file that declared each).
    let mut groups: Vec<(String, Vec<PathBuf>, Vec<ColumnRule>)> = Vec::new();
    let mut seen: HashMap<(String, String, String, String), PathBuf> = HashMap::new();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: path.clone(),
            source,
        })?;
        let file = parse_rules_file(&text, path)?;
        let idx = match groups.iter().position(|g| g.0 == file.database) {
            Some(i) => i,
            None => {
                groups.push((file.database.clone(), Vec::new(), Vec::new()));
                groups.len() - 1
            }
        };
        let group = &mut groups[idx];
        group.1.push(path.clone());
        for col in file.columns {
            let id = (
                file.database.clone(),
                col.schema.clone(),
                col.table.clone(),
                col.column.clone(),
            );
            if let Some(first) = seen.insert(id, path.clone()) {
                return Err(RulesError::Duplicate {
                    column: col.qualified(),
                    first,
                    second: path.clone(),
                });
            }
            group.2.push(col);
        }
    }
    groups
        .into_iter()
        .map(|(database, files, columns)| {
            let rules = Rules::from_columns(columns).map_err(|source| RulesError::Index {
                database: database.clone(),
                files: files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                source,
            })?;
            Ok(DatabaseRules {
                database,
                files,
                rules,
            })
        })
        .collect()
}

/// Parses one rules file's text (`path` is for messages only); `database` is required.
pub fn parse_rules_file(text: &str, path: &Path) -> Result<RulesFile, RulesError> {
    let (database, columns) = parse_doc(text, path)?;
    let database = database.ok_or_else(|| RulesError::NoDatabase {
        path: path.to_owned(),
    })?;
    Ok(RulesFile { database, columns })
}

/// The columns of one rules file's text, for callers that already know the database (tests,
/// tools): a `database` line is checked if present, but not required.
pub fn parse_rules(text: &str, path: &Path) -> Result<Vec<ColumnRule>, RulesError> {
    Ok(parse_doc(text, path)?.1)
}

/// The `database` value (if any) and the columns of one rules file.
fn parse_doc(text: &str, path: &Path) -> Result<(Option<String>, Vec<ColumnRule>), RulesError> {
    let invalid = |at: String, message: String| RulesError::Invalid {
        path: path.to_owned(),
        at,
        message,
    };
    let doc: Table = toml::from_str(text).map_err(|e| RulesError::Syntax {
        path: path.to_owned(),
        message: e.to_string().trim_end().replace('\n', " "),
    })?;
    if let Some(key) = doc
        .keys()
        .find(|k| !matches!(k.as_str(), "tables" | "database"))
    {
        return Err(invalid(
            format!("key {key:?}"),
            "unknown top-level key (expected only database = \"…\" and [tables.\"schema.table\"])"
                .into(),
        ));
    }
    let database = match doc.get("database") {
        None => None,
        Some(v) => Some(database_name(v).map_err(|m| invalid("database".into(), m))?),
    };
    let columns = match doc.get("tables") {
        None => Vec::new(),
        Some(tables) => table_columns(tables, path)?,
    };
    Ok((database, columns))
}

/// The columns of the `[tables]` table, each table and column name validated and folded.
fn table_columns(tables: &Value, path: &Path) -> Result<Vec<ColumnRule>, RulesError> {
    let invalid = |at: String, message: String| RulesError::Invalid {
        path: path.to_owned(),
        at,
        message,
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
            if col_key == "database" && spec.is_str() {
                return Err(invalid(
                    at,
                    "`database = …` must be at the top of the file, before any [tables…] header"
                        .into(),
                ));
            }
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

/// A database name as PostgreSQL compares it: exact bytes, 1-63 of them, no control
/// characters (so a name pgcloak holds is never one the server would cut short).
fn database_name(v: &Value) -> Result<String, String> {
    let Value::String(name) = v else {
        return Err(format!("must be a string (the database name), found {v}"));
    };
    if name.is_empty() || name.len() > MAX_DATABASE_NAME || name.chars().any(char::is_control) {
        return Err(format!(
            "bad database name {name:?} (must be 1-{MAX_DATABASE_NAME} bytes, no control characters)"
        ));
    }
    Ok(name.clone())
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

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const SSN: &str = "ssn = { type = \"text\", mode = \"randomized\" }";

    #[test]
    fn duplicates_across_files_name_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            "a.toml",
            &format!("database = \"app\"\n[tables.t]\n{SSN}"),
        );
        let b = write(
            dir.path(),
            "b.toml",
            "database = \"app\"\n[tables.T]\nSSN = { type = \"text\", mode = \"randomized\" }",
        );
        let e = load_rules(&[a.clone(), b.clone()]).unwrap_err().to_string();
        assert!(e.contains("public.t.ssn"), "{e}");
        assert!(e.contains("a.toml") && e.contains("b.toml"), "{e}");
        let missing = load_rules(&[dir.path().join("nope.toml")]).unwrap_err();
        assert!(missing.to_string().contains("nope.toml"));
    }

    #[test]
    fn database_is_required_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let none = write(dir.path(), "none.toml", &format!("[tables.t]\n{SSN}"));
        let e = load_rules(&[none]).unwrap_err().to_string();
        assert!(e.contains("none.toml"), "{e}");
        assert!(e.contains("database = \"<name>\""), "{e}");
        assert!(e.contains("at the top of the file"), "{e}");
        let e = err(&format!("database = 5\n[tables.t]\n{SSN}"));
        assert!(
            e.contains("database") && e.contains("must be a string"),
            "{e}"
        );
        let e = err(&format!("database = \"\"\n[tables.t]\n{SSN}"));
        assert!(e.contains("bad database name"), "{e}");
        let long = "x".repeat(64);
        let e = err(&format!("database = \"{long}\"\n[tables.t]\n{SSN}"));
        assert!(e.contains("1-63 bytes"), "{e}");
        let e = err(&format!("[tables.t]\n{SSN}\ndatabase = \"app\""));
        assert!(e.contains("must be at the top of the file"), "{e}");
        let f = parse_rules_file(
            &format!("database = \"Shop\"\n[tables.t]\n{SSN}"),
            Path::new("x.toml"),
        )
        .unwrap();
        assert_eq!(f.database, "Shop", "database names are not folded");
        assert_eq!(f.columns.len(), 1);
    }

    #[test]
    fn files_are_grouped_by_database_and_merged() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            "a.toml",
            &format!("database = \"shop\"\n[tables.t]\n{SSN}"),
        );
        let b = write(
            dir.path(),
            "b.toml",
            &format!("database = \"hr\"\n[tables.t]\n{SSN}"),
        );
        let c = write(
            dir.path(),
            "c.toml",
            "database = \"shop\"\n[tables.u]\nx = { type = \"int4\", mode = \"deterministic\" }",
        );
        let all = load_rules(&[a.clone(), b.clone(), c.clone()]).unwrap();
        let names: Vec<&str> = all.iter().map(|d| d.database.as_str()).collect();
        assert_eq!(names, ["shop", "hr"], "order of first appearance");
        assert_eq!(all[0].files, [a.clone(), c.clone()]);
        assert_eq!(
            all[0].rules.columns().count(),
            2,
            "shop merges a.toml and c.toml"
        );
        assert!(all[0].rules.column("public", "u", "x").is_some());
        assert!(all[1].rules.column("public", "u", "x").is_none());
        assert!(all[1].rules.column("public", "t", "ssn").is_some());
        // The same column for two databases is fine; twice for one database is not.
        let d = write(
            dir.path(),
            "d.toml",
            &format!("database = \"shop\"\n[tables.t]\n{SSN}"),
        );
        let e = load_rules(&[a, b, d]).unwrap_err().to_string();
        assert!(e.contains("a.toml") && e.contains("d.toml"), "{e}");
        // Key conflicts are found within a database, across its files.
        let k1 = write(
            dir.path(),
            "k1.toml",
            "database = \"shop\"\n[tables.p]\nx = { type = \"text\", mode = \"randomized\", key = \"k\" }",
        );
        let k2 = write(
            dir.path(),
            "k2.toml",
            "database = \"shop\"\n[tables.q]\ny = { type = \"text\", mode = \"deterministic\", key = \"k\" }",
        );
        let e = load_rules(&[k1.clone(), k2]).unwrap_err().to_string();
        assert!(e.contains("database shop") && e.contains("k1.toml"), "{e}");
        let k3 = write(
            dir.path(),
            "k3.toml",
            "database = \"hr\"\n[tables.q]\ny = { type = \"text\", mode = \"deterministic\", key = \"k\" }",
        );
        assert_eq!(
            load_rules(&[k1, k3]).unwrap().len(),
            2,
            "keys are per database"
        );
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
            let text = std::fs::read_to_string(f).unwrap();
            let file = parse_rules_file(&text, f).unwrap();
            assert!(!file.database.is_empty(), "{}", f.display());
            let all = load_rules(std::slice::from_ref(f)).unwrap();
            assert_eq!(all.len(), 1, "{}", f.display());
            assert!(!all[0].rules.is_empty(), "{}", f.display());
        }
        let one = |name: &str| load_rules(&[dir.join(name)]).unwrap().remove(0);
        let pay = one("payments.toml");
        assert_eq!(pay.database, "payments");
        let shared = pay
            .rules
            .keys()
            .find(|(k, _)| *k == "ledger.iban")
            .unwrap()
            .1;
        assert_eq!(shared.len(), 2);
        let demo = one("demo.toml");
        assert_eq!(
            demo.database, "app",
            "pgcloak demo and docker-compose use app"
        );
        let limit = demo
            .rules
            .column("public", "customers", "credit_limit")
            .unwrap();
        assert_eq!(
            (limit.ty, limit.mode),
            (LogicalType::Numeric, Mode::Randomized)
        );
        assert_eq!(one("clinic.toml").database, "clinic");
        for name in ["matrix.toml", "compat.toml", "bench.toml"] {
            assert_eq!(one(name).database, "app", "{name}: the tests' database");
        }
    }
}
