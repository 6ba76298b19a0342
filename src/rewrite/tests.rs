//! Unit tests of the analysis: every statement form, for `$n` and literals, with exact plans.

use std::collections::HashMap;
use std::sync::Arc;

use super::*;
use crate::codec::LogicalType;
use crate::rules::{ColumnRule, Mode, Rules};

pub(crate) struct Catalog(pub(crate) HashMap<(String, String), Vec<String>>);

impl CatalogView for Catalog {
    fn columns(&self, schema: &str, table: &str) -> Option<Vec<String>> {
        self.0.get(&(schema.to_owned(), table.to_owned())).cloned()
    }
}

fn rule(
    schema: &str,
    table: &str,
    column: &str,
    ty: LogicalType,
    mode: Mode,
    key: Option<&str>,
) -> ColumnRule {
    ColumnRule {
        schema: schema.into(),
        table: table.into(),
        column: column.into(),
        ty,
        mode,
        key: key.map_or_else(|| format!("{schema}.{table}.{column}"), str::to_owned),
    }
}

pub(crate) fn rules() -> Rules {
    use LogicalType::*;
    use Mode::*;
    Rules::from_columns(vec![
        rule("public", "patients", "ssn", Text, Deterministic, None),
        rule("public", "patients", "email", Text, Deterministic, None),
        rule("public", "patients", "diagnosis", Text, Randomized, None),
        rule("public", "patients", "birth_date", Date, Randomized, None),
        rule("public", "patients", "age", Int4, Deterministic, None),
        rule(
            "public",
            "visits",
            "patient_ssn",
            Text,
            Deterministic,
            Some("public.patients.ssn"),
        ),
        rule("public", "visits", "note", Text, Randomized, None),
        rule("app", "secrets", "token", Text, Deterministic, None),
    ])
    .unwrap()
}

pub(crate) fn catalog() -> Catalog {
    let mut m = HashMap::new();
    let mut add = |s: &str, t: &str, cols: &[&str]| {
        m.insert(
            (s.to_owned(), t.to_owned()),
            cols.iter().map(|c| (*c).to_owned()).collect(),
        );
    };
    add(
        "public",
        "patients",
        &[
            "id",
            "name",
            "ssn",
            "email",
            "diagnosis",
            "birth_date",
            "age",
        ],
    );
    add("public", "visits", &["id", "patient_ssn", "note", "day"]);
    add("public", "plain", &["id", "name", "code"]);
    add("app", "secrets", &["id", "token"]);
    Catalog(m)
}

pub(crate) fn run_with(sql: &str, path: &[&str], cat: &dyn CatalogView) -> Analysis {
    let rules = rules();
    let path: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
    let ctx = AnalysisContext {
        rules: &rules,
        search_path: &path,
        catalog: cat,
        qualify: false,
    };
    analyze(sql, &ctx)
}

pub(crate) fn run(sql: &str) -> Analysis {
    run_with(sql, &["public"], &catalog())
}

pub(crate) fn plan(sql: &str) -> Arc<Plan> {
    match run(sql) {
        Analysis::Rewrite(p) => p,
        other => panic!("expected a rewrite for {sql}, got {other:?}"),
    }
}

pub(crate) fn refused(sql: &str) -> Refusal {
    match run(sql) {
        Analysis::Refuse(r) => r,
        other => panic!("expected a refusal for {sql}, got {other:?}"),
    }
}

pub(crate) fn assert_pass(sql: &str) {
    assert_eq!(run(sql), Analysis::Passthrough, "{sql}");
}

/// (source text of the site, decoded value, column).
fn lits(sql: &str) -> Vec<(String, Option<String>, String)> {
    plan(sql)
        .literals
        .iter()
        .map(|l| {
            (
                sql[l.start..l.end].to_owned(),
                l.value.clone(),
                l.rule.column.clone(),
            )
        })
        .collect()
}

fn lit(text: &str, value: Option<&str>, col: &str) -> (String, Option<String>, String) {
    (text.to_owned(), value.map(str::to_owned), col.to_owned())
}

/// The column each `$n` is bound for.
fn params(sql: &str) -> Vec<Option<String>> {
    plan(sql)
        .params
        .iter()
        .map(|p| p.as_ref().map(|r| r.column.clone()))
        .collect()
}

fn some(c: &str) -> Option<String> {
    Some(c.to_owned())
}

pub(crate) fn refusal_is(sql: &str, column: &str, construct_part: &str) {
    let r = refused(sql);
    assert_eq!(r.column, column, "{sql}: {r:?}");
    assert!(r.construct.contains(construct_part), "{sql}: {r:?}");
}

// ---- INSERT ----

#[test]
fn insert_column_list_params() {
    let sql = "INSERT INTO patients (name, ssn, diagnosis) VALUES ($1, $2, $3)";
    assert_eq!(params(sql), vec![None, some("ssn"), some("diagnosis")]);
    assert!(plan(sql).literals.is_empty());
}

#[test]
fn insert_column_list_literals() {
    let sql =
        "INSERT INTO patients (name, ssn, birth_date) VALUES ('bob', '123-45-6789', '1990-01-02')";
    assert_eq!(
        lits(sql),
        vec![
            lit("'123-45-6789'", Some("123-45-6789"), "ssn"),
            lit("'1990-01-02'", Some("1990-01-02"), "birth_date")
        ]
    );
}

#[test]
fn insert_multi_row_values() {
    let sql = "INSERT INTO patients (ssn, name) VALUES ('a', 'x'), ($1, $2), ('c', 'z')";
    let p = plan(sql);
    assert_eq!(params(sql), vec![some("ssn"), None]);
    let vals: Vec<_> = p
        .literals
        .iter()
        .map(|l| l.value.clone().unwrap())
        .collect();
    assert_eq!(vals, vec!["a", "c"]);
}

#[test]
fn insert_without_column_list_uses_catalog_order() {
    let sql = "INSERT INTO patients VALUES (1, 'n', $1, $2, $3, $4, $5)";
    assert_eq!(
        params(sql),
        vec![
            some("ssn"),
            some("email"),
            some("diagnosis"),
            some("birth_date"),
            some("age")
        ]
    );
}

#[test]
fn insert_without_column_list_unknown_catalog_refused() {
    let empty = EmptyCatalog;
    let a = run_with(
        "INSERT INTO patients VALUES (1, 'n', $1)",
        &["public"],
        &empty,
    );
    assert!(matches!(a, Analysis::Refuse(r) if r.construct.contains("column list")));
}

#[test]
fn insert_psycopg2_style_literals() {
    let sql = "INSERT INTO patients (birth_date, ssn, age, diagnosis) VALUES ('1990-01-02'::date, E'12\\n3', -5, $$flu 'a'$$)";
    assert_eq!(
        lits(sql),
        vec![
            lit("'1990-01-02'::date", Some("1990-01-02"), "birth_date"),
            lit("E'12\\n3'", Some("12\n3"), "ssn"),
            lit("-5", Some("-5"), "age"),
            lit("$$flu 'a'$$", Some("flu 'a'"), "diagnosis"),
        ]
    );
}

#[test]
fn casts_and_typed_literals_belong_to_the_value() {
    let sql = "INSERT INTO patients (birth_date, ssn, email, age) VALUES (date '1990-01-02', CAST('x' AS text), 'e'::character varying(20), +7)";
    assert_eq!(
        lits(sql),
        vec![
            lit("date '1990-01-02'", Some("1990-01-02"), "birth_date"),
            lit("CAST('x' AS text)", Some("x"), "ssn"),
            lit("'e'::character varying(20)", Some("e"), "email"),
            lit("+7", Some("7"), "age"),
        ]
    );
}

#[test]
fn sign_before_a_cast_belongs_to_the_value() {
    let sql = "INSERT INTO patients (age, ssn) VALUES (-5::int4, '1') ON CONFLICT (ssn) DO UPDATE SET age = +6::int4";
    assert_eq!(
        lits(sql),
        vec![
            lit("-5::int4", Some("-5"), "age"),
            lit("'1'", Some("1"), "ssn"),
            lit("+6::int4", Some("6"), "age"),
        ]
    );
    assert_eq!(
        lits("SELECT 1 FROM patients WHERE age = - 2::int4")[0],
        lit("- 2::int4", Some("-2"), "age")
    );
    refused("SELECT 1 FROM patients WHERE age = -$1::int4");
}

#[test]
fn signs_folded_into_a_constant_cover_the_whole_run() {
    // The parser folds `-(-5)` and `- -5` into the constant 5 located at the first sign; the
    // replaced range must be the whole run (replacing only `-(-` left `--5)`, a comment that
    // hid the rest of the statement from the server's parser and showed the value in its log).
    let sql = "INSERT INTO patients (age, ssn) VALUES (-(-5), '1')";
    assert_eq!(
        lits(sql),
        vec![lit("-(-5)", Some("5"), "age"), lit("'1'", Some("1"), "ssn")]
    );
    assert_eq!(
        lits("SELECT 1 FROM patients WHERE age = - -7")[0],
        lit("- -7", Some("7"), "age")
    );
    assert_eq!(
        lits("SELECT 1 FROM patients WHERE age = +(-((3)))")[0],
        lit("+(-((3)))", Some("-3"), "age")
    );
}

#[test]
fn casts_and_constants_postgresql_would_convert_are_refused() {
    // float → integer rounds half to even; bpchar drops trailing spaces; numbers re-render.
    refusal_is(
        "INSERT INTO patients (age) VALUES (4.5::float8)",
        "public.patients.age",
        "cast to float8",
    );
    assert_eq!(
        lits("INSERT INTO patients (ssn) VALUES ('ab  '::bpchar)"),
        vec![lit("'ab  '::bpchar", Some("ab"), "ssn")]
    );
    refusal_is(
        "INSERT INTO patients (ssn) VALUES (1e3)",
        "public.patients.ssn",
        "numeric constant",
    );
    refused("INSERT INTO patients (ssn) VALUES (.5)");
    for pg16 in ["0x1F", "0o17", "0b101", "1_000", "-0x1F"] {
        refused(&format!("INSERT INTO patients (age) VALUES ({pg16})"));
    }
    assert_eq!(
        lits("INSERT INTO patients (age) VALUES (-(7))")[0],
        lit("-(7)", Some("-7"), "age")
    );
    refused("INSERT INTO patients (ssn) VALUES (5::int4::text)");
    refused("SELECT 1 FROM patients WHERE age = 4.5::float8");
    assert_eq!(
        lits("INSERT INTO patients (ssn, age) VALUES (12.50, 7::int8)"),
        vec![
            lit("12.50", Some("12.50"), "ssn"),
            lit("7::int8", Some("7"), "age")
        ]
    );
}

#[test]
fn timestamp_with_time_zone_cast_range() {
    let sql = "UPDATE patients SET birth_date = '2020-01-01'::date::timestamp with time zone";
    // A timestamptz is not what a date column stores: PostgreSQL would convert it.
    refusal_is(sql, "public.patients.birth_date", "cast to timestamptz");
    let sql = "UPDATE patients SET birth_date = '2020-01-01'::date WHERE id = 1";
    assert_eq!(
        lits(sql),
        vec![lit("'2020-01-01'::date", Some("2020-01-01"), "birth_date")]
    );
}

#[test]
fn unicode_escape_literals_are_decoded() {
    let sql = "INSERT INTO patients (ssn, email) VALUES (U&'d\\0061t', U&'d!0061t' UESCAPE '!')";
    assert_eq!(
        lits(sql),
        vec![
            lit("U&'d\\0061t'", Some("dat"), "ssn"),
            lit("U&'d!0061t' UESCAPE '!'", Some("dat"), "email"),
        ]
    );
}

#[test]
fn null_literal_is_a_site_without_value() {
    let sql = "INSERT INTO patients (ssn, diagnosis) VALUES (NULL, NULL::text)";
    assert_eq!(
        lits(sql),
        vec![
            lit("NULL", None, "ssn"),
            lit("NULL::text", None, "diagnosis")
        ]
    );
}

#[test]
fn param_casts_are_recorded_and_stripped() {
    let sql = "INSERT INTO patients (ssn, age, name) VALUES ($1::text, CAST($2 AS int), $3::text)";
    let p = plan(sql);
    assert_eq!(params(sql), vec![some("ssn"), some("age"), None]);
    let casts: Vec<_> = p
        .param_casts
        .iter()
        .map(|c| (&sql[c.start..c.end], c.number))
        .collect();
    assert_eq!(casts, vec![("$1::text", 1), ("CAST($2 AS int)", 2)]);
    assert_eq!(
        p.rewrite_text(sql, &[]),
        "INSERT INTO patients (ssn, age, name) VALUES ($1, $2, $3::text)"
    );
}

#[test]
fn insert_default_moves_no_value() {
    assert_pass("INSERT INTO patients (ssn) VALUES (DEFAULT)");
    assert_pass("UPDATE patients SET ssn = DEFAULT, age = DEFAULT WHERE id = 1");
    assert_pass("INSERT INTO patients (name) VALUES (DEFAULT)");
    assert_pass("INSERT INTO patients DEFAULT VALUES");
}

#[test]
fn insert_function_of_value_refused() {
    refusal_is(
        "INSERT INTO patients (ssn) VALUES (lower($1))",
        "public.patients.ssn",
        "computed",
    );
}

#[test]
fn insert_select_same_key_allowed_other_refused() {
    let sql = "INSERT INTO visits (patient_ssn, note) SELECT ssn, NULL FROM patients";
    assert_eq!(lits(sql), vec![lit("NULL", None, "note")]);
    assert_pass("INSERT INTO visits (patient_ssn) SELECT ssn FROM patients");
    refusal_is(
        "INSERT INTO visits (patient_ssn) SELECT email FROM patients",
        "public.visits.patient_ssn",
        "different key",
    );
    refusal_is(
        "INSERT INTO patients (ssn) SELECT name FROM plain",
        "public.patients.ssn",
        "plaintext",
    );
    refusal_is(
        "INSERT INTO plain (name) SELECT ssn FROM patients",
        "public.patients.ssn",
        "plaintext column",
    );
}

#[test]
fn insert_select_values_bind() {
    let sql = "INSERT INTO patients (ssn, name) SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM patients WHERE ssn = $1)";
    assert_eq!(params(sql), vec![some("ssn"), None]);
}

#[test]
fn on_conflict_excluded_and_values() {
    let sql = "INSERT INTO patients (ssn, email) VALUES ($1, $2) ON CONFLICT (ssn) DO UPDATE SET email = EXCLUDED.email, diagnosis = $3, age = 4";
    assert_eq!(
        params(sql),
        vec![some("ssn"), some("email"), some("diagnosis")]
    );
    assert_eq!(lits(sql), vec![lit("4", Some("4"), "age")]);
    refusal_is(
        "INSERT INTO patients (ssn) VALUES ($1) ON CONFLICT (ssn) DO UPDATE SET email = EXCLUDED.ssn",
        "public.patients.email",
        "different key",
    );
    assert_pass("INSERT INTO plain (id) VALUES (1) ON CONFLICT DO NOTHING");
}

#[test]
fn returning_needs_no_plan() {
    let sql = "INSERT INTO patients (name) VALUES ($1) RETURNING id, ssn, *";
    assert_pass(sql);
    refusal_is(
        "DELETE FROM patients WHERE id = 1 RETURNING lower(ssn)",
        "public.patients.ssn",
        "lower",
    );
}

// ---- UPDATE / DELETE ----

#[test]
fn update_set_and_where() {
    let sql = "UPDATE patients SET ssn = $1, name = $2 WHERE email = $3 AND id = $4";
    assert_eq!(params(sql), vec![some("ssn"), None, some("email"), None]);
    let sql = "UPDATE patients SET diagnosis = 'flu' WHERE ssn = '1'";
    assert_eq!(
        lits(sql),
        vec![
            lit("'flu'", Some("flu"), "diagnosis"),
            lit("'1'", Some("1"), "ssn")
        ]
    );
}

#[test]
fn update_multi_assign() {
    let sql = "UPDATE patients SET (ssn, name, age) = ($1, $2, 42) WHERE id = 1";
    assert_eq!(params(sql), vec![some("ssn"), None]);
    assert_eq!(lits(sql), vec![lit("42", Some("42"), "age")]);
    let sql =
        "UPDATE visits SET (patient_ssn, day) = (SELECT ssn, now() FROM patients WHERE id = 1)";
    assert_pass(sql);
}

#[test]
fn values_in_from_bind_where_used() {
    // UPDATE … FROM (VALUES …): each column's values take the rule of the one place using it.
    let sql = "UPDATE patients p SET diagnosis = v.d FROM (VALUES ('1', 'flu'), ('2', 'cold')) \
               AS v(s, d) WHERE p.ssn = v.s";
    assert_eq!(
        lits(sql),
        vec![
            lit("'1'", Some("1"), "ssn"),
            lit("'flu'", Some("flu"), "diagnosis"),
            lit("'2'", Some("2"), "ssn"),
            lit("'cold'", Some("cold"), "diagnosis"),
        ]
    );
    let sql = "UPDATE patients p SET email = v.e FROM (VALUES ($1::text, $2::int)) v(e, i) \
               WHERE p.id = v.i";
    assert_eq!(params(sql), vec![some("email"), None]);
    // JOIN (VALUES …) ON t.col = v.x, and a CTE of VALUES.
    let sql = "SELECT p.id FROM patients p JOIN (VALUES ('a'), ('b')) v(x) ON p.ssn = v.x";
    assert_eq!(
        lits(sql),
        vec![lit("'a'", Some("a"), "ssn"), lit("'b'", Some("b"), "ssn")]
    );
    let sql = "WITH v(x) AS (VALUES ($1)) SELECT p.id FROM patients p, v WHERE p.email = v.x";
    assert_eq!(params(sql), vec![some("email")]);
    // Plain uses stay plaintext.
    assert_pass("UPDATE plain SET a = v.x FROM (VALUES ('a')) v(x) WHERE plain.id = 1");
    // One column, two uses: the same literal cannot be ciphertext and plaintext.
    refused("UPDATE patients p SET ssn = v.x, name = v.x FROM (VALUES ('a')) v(x)");
    refused(
        "WITH v(x) AS (VALUES ('a')) SELECT 1 FROM patients p, v, v w WHERE p.ssn = v.x AND p.email = w.x",
    );
    // A cast or an operator at the use does not belong to the value's text.
    refused("UPDATE patients p SET ssn = v.x::text FROM (VALUES ('a')) v(x)");
    refused("UPDATE patients p SET ssn = v.x || '' FROM (VALUES ('a')) v(x)");
    // Used twice the same way (MERGE's ON and INSERT): encrypted once.
    let sql = "UPDATE patients p SET ssn = v.x FROM (VALUES ('a')) v(x) WHERE p.ssn = v.x";
    assert_eq!(lits(sql), vec![lit("'a'", Some("a"), "ssn")]);
    // Randomized columns still cannot be compared.
    refused("SELECT 1 FROM patients p JOIN (VALUES ('a')) v(x) ON p.diagnosis = v.x");
}

#[test]
fn merge_binds_like_update_and_insert() {
    let sql = "MERGE INTO patients p USING (VALUES ($1, $2)) v(s, d) ON p.ssn = v.s \
               WHEN MATCHED AND p.email = $3 THEN UPDATE SET diagnosis = v.d \
               WHEN NOT MATCHED THEN INSERT (ssn, diagnosis, name) VALUES (v.s, v.d, $4)";
    assert_eq!(
        params(sql),
        vec![some("ssn"), some("diagnosis"), some("email"), None]
    );
    let sql = "MERGE INTO patients p USING plain q ON p.id = q.id \
               WHEN NOT MATCHED THEN INSERT (id, ssn) VALUES (q.id, 'x')";
    assert_eq!(lits(sql), vec![lit("'x'", Some("x"), "ssn")]);
    // What UPDATE and INSERT refuse, MERGE refuses.
    refused(
        "MERGE INTO patients p USING plain q ON p.id = q.id WHEN MATCHED THEN UPDATE SET ssn = q.name",
    );
    refused(
        "MERGE INTO patients p USING plain q ON p.id = q.id WHEN NOT MATCHED THEN INSERT (ssn) VALUES (q.name)",
    );
    refused("MERGE INTO patients p USING plain q ON p.diagnosis = q.name WHEN MATCHED THEN DELETE");
    refused(
        "MERGE INTO patients p USING plain q ON p.id = q.id WHEN MATCHED THEN UPDATE SET ssn = lower($1)",
    );
}

#[test]
fn update_column_to_column() {
    assert_pass("UPDATE visits v SET patient_ssn = p.ssn FROM patients p WHERE p.id = v.id");
    refusal_is(
        "UPDATE patients SET ssn = email",
        "public.patients.ssn",
        "different key",
    );
    refusal_is(
        "UPDATE patients SET ssn = name",
        "public.patients.ssn",
        "plaintext",
    );
    refusal_is(
        "UPDATE patients SET ssn = ssn || 'x'",
        "public.patients.ssn",
        "operator ||",
    );
}

#[test]
fn delete_where() {
    let sql = "DELETE FROM patients WHERE ssn = $1 OR email IN ('a', $2)";
    assert_eq!(params(sql), vec![some("ssn"), some("email")]);
    assert_eq!(lits(sql), vec![lit("'a'", Some("a"), "email")]);
    let sql =
        "DELETE FROM visits USING patients p WHERE visits.patient_ssn = p.ssn AND p.email = 'e'";
    assert_eq!(lits(sql), vec![lit("'e'", Some("e"), "email")]);
}

// ---- WHERE forms ----

#[test]
fn comparison_forms() {
    for (sql, col) in [
        ("SELECT * FROM patients WHERE ssn = $1", "ssn"),
        ("SELECT * FROM patients WHERE $1 = ssn", "ssn"),
        ("SELECT * FROM patients WHERE ssn <> $1", "ssn"),
        ("SELECT * FROM patients WHERE ssn != $1", "ssn"),
        ("SELECT * FROM patients WHERE ssn IN ($1)", "ssn"),
        ("SELECT * FROM patients WHERE ssn NOT IN ($1)", "ssn"),
        (
            "SELECT * FROM patients WHERE ssn IS DISTINCT FROM $1",
            "ssn",
        ),
        (
            "SELECT * FROM patients WHERE ssn IS NOT DISTINCT FROM $1",
            "ssn",
        ),
        (
            "SELECT * FROM patients WHERE (ssn, name) = ($1, 'x')",
            "ssn",
        ),
        ("SELECT * FROM patients WHERE NOT (age = $1::int)", "age"),
    ] {
        assert_eq!(params(sql), vec![some(col)], "{sql}");
    }
    let sql = "SELECT * FROM patients WHERE ssn IN ('a', 'b') AND 'c' = email";
    assert_eq!(
        lits(sql),
        vec![
            lit("'a'", Some("a"), "ssn"),
            lit("'b'", Some("b"), "ssn"),
            lit("'c'", Some("c"), "email")
        ]
    );
}

#[test]
fn is_null_is_fine_for_any_mode() {
    assert_pass("SELECT id FROM patients WHERE diagnosis IS NULL AND ssn IS NOT NULL");
}

#[test]
fn randomized_equality_refused() {
    refusal_is(
        "SELECT * FROM patients WHERE diagnosis = $1",
        "public.patients.diagnosis",
        "randomized",
    );
    refusal_is(
        "SELECT * FROM patients WHERE birth_date IN ('2000-01-01')",
        "public.patients.birth_date",
        "randomized",
    );
}

#[test]
fn refused_operators() {
    for (sql, col, what) in [
        ("SELECT * FROM patients WHERE ssn LIKE '1%'", "ssn", "LIKE"),
        ("SELECT * FROM patients WHERE ssn ILIKE $1", "ssn", "ILIKE"),
        (
            "SELECT * FROM patients WHERE ssn SIMILAR TO 'x'",
            "ssn",
            "SIMILAR",
        ),
        ("SELECT * FROM patients WHERE ssn ~ 'x'", "ssn", "~"),
        ("SELECT * FROM patients WHERE age < 5", "age", "<"),
        ("SELECT * FROM patients WHERE age >= $1", "age", ">="),
        (
            "SELECT * FROM patients WHERE age BETWEEN 1 AND 5",
            "age",
            "BETWEEN",
        ),
        ("SELECT * FROM patients ORDER BY ssn", "ssn", "ORDER BY"),
        ("SELECT ssn FROM patients ORDER BY 1", "ssn", "ORDER BY"),
        (
            "SELECT ssn AS s FROM patients ORDER BY s DESC",
            "ssn",
            "ORDER BY",
        ),
        ("SELECT max(ssn) FROM patients", "ssn", "function max()"),
        ("SELECT lower(ssn) FROM patients", "ssn", "function lower()"),
        ("SELECT ssn || 'x' FROM patients", "ssn", "operator ||"),
        ("SELECT ssn::text FROM patients", "ssn", "cast"),
        ("SELECT * FROM patients WHERE ssn > ANY($1)", "ssn", "> ANY"),
        (
            "SELECT * FROM patients WHERE ssn = name",
            "ssn",
            "plaintext",
        ),
        (
            "SELECT * FROM patients WHERE ssn = email",
            "ssn",
            "different key",
        ),
        ("SELECT coalesce(ssn, 'x') FROM patients", "ssn", "COALESCE"),
        (
            "SELECT CASE WHEN true THEN ssn END FROM patients",
            "ssn",
            "CASE",
        ),
        (
            "SELECT diagnosis, count(*) FROM patients GROUP BY diagnosis",
            "diagnosis",
            "GROUP BY",
        ),
        (
            "SELECT DISTINCT diagnosis FROM patients",
            "diagnosis",
            "DISTINCT",
        ),
        (
            "SELECT count(DISTINCT note) FROM visits",
            "note",
            "count(DISTINCT)",
        ),
        (
            "SELECT row_number() OVER (ORDER BY ssn) FROM patients",
            "ssn",
            "ORDER BY",
        ),
        ("SELECT json_agg(p) FROM patients p", "ssn", "whole-row"),
        (
            "SELECT row_to_json(p.*) FROM patients p",
            "ssn",
            "whole-row",
        ),
        ("SELECT p FROM patients p", "ssn", "whole-row"),
        (
            "SELECT to_jsonb(patients) FROM patients",
            "ssn",
            "whole-row",
        ),
        ("SELECT (p).ssn FROM patients p", "ssn", "whole-row"),
        (
            "SELECT id FROM patients p WHERE p::text LIKE '%x%'",
            "ssn",
            "whole-row",
        ),
        (
            "SELECT id FROM plain WHERE EXISTS (SELECT 1 FROM patients p WHERE row(p.*) IS NULL)",
            "ssn",
            "whole-row",
        ),
    ] {
        let table = if col == "note" { "visits" } else { "patients" };
        refusal_is(sql, &format!("public.{table}.{col}"), what);
    }
}

#[test]
fn whole_rows_of_plain_tables_and_columns_named_like_tables_pass() {
    assert_pass("SELECT json_agg(q) FROM plain q");
    assert_pass("SELECT row_to_json(q.*) FROM plain q");
    // A column that shares its table's name is the column, not the row.
    let p = plan("SELECT name FROM patients name WHERE name.ssn = $1");
    assert_eq!(p.params[0].as_ref().unwrap().column, "ssn");
    assert_pass("SELECT count(*) FROM patients");
    assert_pass("SELECT p.name FROM patients p");
}

#[test]
fn a_rules_column_missing_from_the_table_refuses_the_table() {
    // `ALTER TABLE patients RENAME COLUMN email TO mail`: the catalog no longer has `email`.
    let mut m = catalog().0;
    m.insert(
        ("public".into(), "patients".into()),
        [
            "id",
            "name",
            "ssn",
            "mail",
            "diagnosis",
            "birth_date",
            "age",
        ]
        .map(str::to_owned)
        .to_vec(),
    );
    for sql in [
        "INSERT INTO patients (id, mail) VALUES (1, 'x')",
        "SELECT * FROM patients",
        "UPDATE patients SET mail = $1",
    ] {
        match run_with(sql, &["public"], &Catalog(m.clone())) {
            Analysis::Refuse(r) => {
                assert_eq!(r.column, "public.patients.email", "{sql}");
                assert!(r.construct.contains("does not exist"), "{sql}: {r:?}");
            }
            other => panic!("{sql}: expected a refusal, got {other:?}"),
        }
    }
}

#[test]
fn relations_derived_from_rules_tables_are_refused() {
    struct WithView(Catalog, Vec<String>);
    impl CatalogView for WithView {
        fn columns(&self, schema: &str, table: &str) -> Option<Vec<String>> {
            self.0.columns(schema, table)
        }
        fn derived_base(&self, schema: &str, view: &str) -> Option<String> {
            (schema == "public" && view == "patient_emails").then(|| "public.patients".into())
        }
        fn derived_names(&self) -> &[String] {
            &self.1
        }
    }
    let cat = WithView(catalog(), vec!["patient_emails".into()]);
    for sql in [
        "SELECT * FROM patient_emails WHERE mail = 'x'",
        "SELECT * FROM public.patient_emails",
        "INSERT INTO patient_emails (mail) VALUES ('x')",
        "SELECT p.id FROM plain p JOIN patient_emails e ON e.id = p.id",
    ] {
        match run_with(sql, &["public"], &cat) {
            Analysis::Refuse(r) => {
                assert_eq!(r.column, "public.patients", "{sql}");
                assert!(
                    r.construct.contains("naming public.patient_emails"),
                    "{sql}: {r:?}"
                );
            }
            other => panic!("{sql}: expected a refusal, got {other:?}"),
        }
    }
    // Another schema's relation of that name, and texts not naming the view, are untouched.
    assert_eq!(
        run_with("SELECT * FROM other.patient_emails", &["public"], &cat),
        Analysis::Passthrough
    );
    assert_eq!(
        run_with("SELECT 1", &["public"], &cat),
        Analysis::Passthrough
    );
}

#[test]
fn allowed_aggregates_grouping_distinct() {
    assert_pass("SELECT count(ssn), count(*) FROM patients");
    assert_pass("SELECT ssn, count(*) FROM patients GROUP BY ssn");
    assert_pass("SELECT ssn, count(*) FROM patients GROUP BY 1");
    assert_pass("SELECT DISTINCT ssn, email FROM patients");
    assert_pass("SELECT count(DISTINCT ssn) FROM patients");
    assert_pass("SELECT * FROM patients ORDER BY name LIMIT 10");
}

// ---- joins, aliases, sub-selects, CTEs, UNION ----

#[test]
fn joins_and_aliases() {
    assert_pass("SELECT p.ssn, v.note FROM patients p JOIN visits v ON v.patient_ssn = p.ssn");
    assert_pass("SELECT * FROM patients p JOIN visits v USING (id)");
    refusal_is(
        "SELECT * FROM patients p JOIN patients q ON p.ssn = q.email",
        "public.patients.ssn",
        "different key",
    );
    let sql = "SELECT p.name FROM patients AS p LEFT JOIN visits v ON v.id = p.id WHERE p.ssn = $1 AND v.patient_ssn = $2";
    assert_eq!(params(sql), vec![some("ssn"), some("patient_ssn")]);
    let sql =
        "SELECT * FROM public.patients WHERE public.patients.ssn = $1 AND patients.email = $2";
    assert_eq!(params(sql), vec![some("ssn"), some("email")]);
}

#[test]
fn ambiguous_column_refused() {
    // `id` is plain in both; `ssn` only in patients; a table the catalog does not know might
    // have `ssn` too.
    assert_pass("SELECT id FROM patients p, plain q WHERE p.id = q.id");
    // At one level PostgreSQL itself rejects an ambiguous name: if it runs, it is ssn.
    assert_eq!(
        params("SELECT 1 FROM patients, mystery WHERE ssn = $1"),
        vec![some("ssn")]
    );
    // A table of an inner level would win over the outer encrypted column.
    let r = refused("SELECT 1 FROM patients WHERE EXISTS (SELECT 1 FROM mystery WHERE ssn = $1)");
    assert!(r.construct.contains("ambiguous"), "{r:?}");
}

#[test]
fn subselects() {
    let sql = "SELECT * FROM plain WHERE id IN (SELECT id FROM patients WHERE ssn = $1)";
    assert_eq!(params(sql), vec![some("ssn")]);
    let sql = "SELECT * FROM (SELECT ssn AS s, name FROM patients) sub WHERE sub.s = 'x'";
    assert_eq!(lits(sql), vec![lit("'x'", Some("x"), "ssn")]);
    let sql =
        "SELECT * FROM patients WHERE ssn IN (SELECT patient_ssn FROM visits WHERE note IS NULL)";
    assert_pass(sql);
    let sql = "SELECT * FROM plain WHERE $1 IN (SELECT ssn FROM patients)";
    assert_eq!(params(sql), vec![some("ssn")]);
    let sql = "SELECT * FROM patients p WHERE EXISTS (SELECT 1 FROM visits v WHERE v.patient_ssn = p.ssn AND v.patient_ssn = $1)";
    assert_eq!(params(sql), vec![some("patient_ssn")]);
    refusal_is(
        "SELECT (SELECT ssn FROM patients LIMIT 1)",
        "public.patients.ssn",
        "cannot be decrypted",
    );
}

#[test]
fn ctes_and_shadowing() {
    let sql = "WITH p AS (SELECT ssn FROM patients) SELECT * FROM p WHERE ssn = $1";
    assert_eq!(params(sql), vec![some("ssn")]);
    // a CTE named like a rules table shadows it
    assert_pass("WITH patients AS (SELECT 1 AS ssn) SELECT * FROM patients WHERE ssn = 2");
    let sql = "WITH ins AS (INSERT INTO patients (ssn) VALUES ($1) RETURNING id) SELECT * FROM ins";
    assert_eq!(params(sql), vec![some("ssn")]);
    // A writable CTE's RETURNING column keeps its origin (PostgreSQL reports it).
    let sql =
        "WITH ins AS (INSERT INTO patients (ssn) VALUES ($1) RETURNING ssn) SELECT ssn FROM ins";
    assert_eq!(params(sql), vec![some("ssn")]);
    let sql = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM patients, r WHERE email = $1";
    assert_eq!(params(sql), vec![some("email")]);
}

#[test]
fn union_branches() {
    let sql = "SELECT id FROM patients WHERE ssn = $1 UNION ALL SELECT id FROM visits WHERE patient_ssn = $2";
    assert_eq!(params(sql), vec![some("ssn"), some("patient_ssn")]);
    refusal_is(
        "SELECT ssn FROM patients UNION SELECT patient_ssn FROM visits",
        "public.patients.ssn",
        "cannot be decrypted",
    );
    let sql = "INSERT INTO patients (ssn) SELECT $1 UNION ALL SELECT 'b'";
    assert_eq!(params(sql), vec![some("ssn")]);
    assert_eq!(lits(sql), vec![lit("'b'", Some("b"), "ssn")]);
}

#[test]
fn search_path_resolution() {
    let cat = catalog();
    let a = run_with(
        "SELECT * FROM secrets WHERE token = $1",
        &["app", "public"],
        &cat,
    );
    assert!(matches!(&a, Analysis::Rewrite(p) if p.params[0].as_ref().unwrap().schema == "app"));
    // not on the path: no rules apply
    let a = run_with("SELECT * FROM secrets WHERE token = $1", &["public"], &cat);
    assert_eq!(a, Analysis::Passthrough);
    // qualified works regardless of the path
    let a = run_with(
        "SELECT * FROM app.secrets WHERE token = $1",
        &["public"],
        &cat,
    );
    assert!(matches!(a, Analysis::Rewrite(_)));
    // the catalog decides first: a `patients` in `app` shadows public.patients
    let mut m = catalog().0;
    m.insert(("app".into(), "patients".into()), vec!["ssn".into()]);
    let a = run_with(
        "SELECT * FROM patients WHERE ssn = $1",
        &["app", "public"],
        &Catalog(m),
    );
    assert_eq!(a, Analysis::Passthrough);
    // the catalog does not know: fall back to the rules
    let a = run_with(
        "SELECT * FROM patients WHERE ssn = $1",
        &["app", "public"],
        &EmptyCatalog,
    );
    assert!(matches!(a, Analysis::Rewrite(_)));
}

#[test]
fn parameter_used_for_two_purposes_refused() {
    refusal_is(
        "SELECT * FROM patients WHERE ssn = $1 OR name = $1",
        "public.patients.ssn",
        "$1",
    );
    refusal_is(
        "SELECT * FROM patients WHERE ssn = $1 OR email = $1",
        "public.patients.ssn",
        "$1",
    );
    // same key is fine
    let sql = "SELECT * FROM patients p, visits v WHERE p.ssn = $1 AND v.patient_ssn = $1";
    assert_eq!(params(sql), vec![some("ssn")]);
}

// ---- statements ----

#[test]
fn utility_statements() {
    refusal_is(
        "COPY patients FROM '/tmp/f'",
        "public.patients",
        "server file",
    );
    refusal_is(
        "COPY (SELECT ssn FROM patients) TO '/tmp/f'",
        "public.patients",
        "server file",
    );
    assert_pass("COPY plain FROM STDIN");
    refusal_is(
        "PREPARE q AS SELECT * FROM patients WHERE ssn = $1",
        "public.patients.ssn",
        "PREPARE",
    );
    assert_pass("PREPARE q AS SELECT * FROM patients WHERE id = $1");
    assert!(refused("EXECUTE q('123')").construct.contains("EXECUTE"));
    assert_pass("EXECUTE q");
    // A plan shows the (encrypted) values it compares with: refused; without values it passes.
    refusal_is(
        "EXPLAIN ANALYZE SELECT * FROM patients WHERE ssn = $1",
        "public.patients",
        "EXPLAIN",
    );
    refused("EXPLAIN SELECT id FROM patients WHERE ssn = 'x'");
    assert_pass("EXPLAIN SELECT ssn FROM patients WHERE id = 1");
    refused("CREATE TEMP TABLE c AS EXECUTE q");
    assert_pass("ALTER TABLE patients ADD COLUMN x int");
    assert_pass("BEGIN");
    refused("DO $$ BEGIN INSERT INTO patients (ssn) VALUES ('1'); END $$");
    assert_pass("MERGE INTO patients p USING plain q ON p.id = q.id WHEN MATCHED THEN DELETE");
    refusal_is(
        "CREATE TABLE t2 AS SELECT ssn FROM patients",
        "public.patients.ssn",
        "CREATE TABLE AS",
    );
}

#[test]
fn unparseable_text_naming_rules_table_refused() {
    let r = refused("SELEC * FROM patients WHERE ssn = '1'");
    assert_eq!(r.column, "public.patients");
    // The parser's own message, as PostgreSQL would report it, with SQLSTATE 42601.
    assert_eq!(r.sqlstate(), "42601");
    assert!(
        r.message()
            .starts_with("syntax error (pgcloak did not send"),
        "{}",
        r.message()
    );
    // The message is raised through the server: it never quotes the text.
    let r = refused("INSERT INTO patients (ssn) VALUES ('secret-value)");
    assert!(
        r.message()
            .starts_with("unterminated quoted string (pgcloak"),
        "{}",
        r.message()
    );
    assert!(!r.message().contains("secret"));
    assert_pass("SELEC * FROM nothing");
}

#[test]
fn no_encrypted_involvement_passes() {
    assert_pass("SELECT name, ssn, * FROM patients WHERE id = $1 AND name = 'x'");
    assert_pass("SELECT 1");
    assert_pass("UPDATE plain SET name = 'x' WHERE code = $1");
}

#[test]
fn multi_statement_offsets_are_absolute() {
    let sql = "SELECT 1; INSERT INTO patients (ssn) VALUES ('a'); UPDATE patients SET email = 'b'";
    let p = plan(sql);
    assert_eq!(p.statements, 3);
    assert_eq!(
        lits(sql),
        vec![lit("'a'", Some("a"), "ssn"), lit("'b'", Some("b"), "email")]
    );
}

#[test]
fn splice_keeps_other_bytes() {
    let sql = "/* é */ INSERT INTO patients (ssn, name) VALUES ('123'::text, 'ünï') -- c";
    let p = plan(sql);
    let out = splice(sql, &p.literals, &["'\\x0102'::bytea".to_owned()]);
    assert_eq!(
        out,
        "/* é */ INSERT INTO patients (ssn, name) VALUES ('\\x0102'::bytea, 'ünï') -- c"
    );
    assert_eq!(
        p.rewrite_text(sql, &["X".to_owned()]),
        "/* é */ INSERT INTO patients (ssn, name) VALUES (X, 'ünï') -- c"
    );
}

#[test]
fn refusal_message_names_column_and_construct() {
    let r = refused("SELECT * FROM patients WHERE ssn LIKE 'x%'");
    assert_eq!(
        r.message(),
        "pgcloak: LIKE cannot be applied to encrypted column public.patients.ssn (deterministic \
         encryption supports only =, <>, IN, IS [NOT] DISTINCT FROM and IS NULL; randomized \
         encryption supports only IS NULL)"
    );
    assert!(!r.message().contains("x%"));
}

// ---- fast path, DDL, cache ----

#[test]
fn may_touch_rules_fast_path() {
    let r = rules();
    assert!(!may_touch_rules("SELECT * FROM plain WHERE x = 'y'", &r));
    assert!(may_touch_rules("select * from PATIENTS", &r));
    assert!(may_touch_rules("select * from \"Patients\"", &r));
    assert!(may_touch_rules("select * from U&\"p\\0061tients\"", &r));
    assert!(!may_touch_rules("select * from patients", &Rules::empty()));
}

#[test]
fn ddl_detection() {
    assert!(is_ddl("ALTER TABLE patients ADD COLUMN x int"));
    assert!(is_ddl("SELECT 1; /* c */ drop table x"));
    assert!(is_ddl("CREATE INDEX ON patients (ssn)"));
    assert!(!is_ddl("SELECT 'create'"));
    assert!(!is_ddl("INSERT INTO t VALUES (1)"));
}

#[test]
fn cache_returns_the_same_arc_and_clears() {
    let rules = rules();
    let cat = catalog();
    let path = vec!["public".to_owned()];
    let ctx = AnalysisContext {
        rules: &rules,
        search_path: &path,
        catalog: &cat,
        qualify: false,
    };
    let cache = PlanCache::new(64);
    let sql = "SELECT * FROM patients WHERE ssn = $1";
    let a = cache.get_or_analyze(sql, &ctx);
    let b = cache.get_or_analyze(sql, &ctx);
    assert!(Arc::ptr_eq(&a, &b));
    assert!(matches!(&*a, Analysis::Rewrite(_)));
    let other_path = vec!["app".to_owned()];
    let ctx2 = AnalysisContext {
        rules: &rules,
        search_path: &other_path,
        catalog: &cat,
        qualify: false,
    };
    let c = cache.get_or_analyze(sql, &ctx2);
    assert!(!Arc::ptr_eq(&a, &c));
    cache.clear();
    assert!(cache.is_empty());
    let d = cache.get_or_analyze(sql, &ctx);
    assert!(!Arc::ptr_eq(&a, &d));
    assert_eq!(*a, *d);
    // An entry analysed against another catalog generation is a miss, and is replaced.
    let e = cache.get_or_analyze_at(sql, &ctx, 7);
    assert!(!Arc::ptr_eq(&d, &e));
    assert!(Arc::ptr_eq(&e, &cache.get_or_analyze_at(sql, &ctx, 7)));
    assert!(!Arc::ptr_eq(&e, &cache.get_or_analyze_at(sql, &ctx, 8)));
}

#[test]
fn cache_is_bounded() {
    let rules = rules();
    let cat = catalog();
    let path = vec!["public".to_owned()];
    let ctx = AnalysisContext {
        rules: &rules,
        search_path: &path,
        catalog: &cat,
        qualify: false,
    };
    let cache = PlanCache::new(32);
    for i in 0..500 {
        cache.get_or_analyze(&format!("SELECT {i} FROM patients"), &ctx);
    }
    assert!(cache.len() <= 32, "{}", cache.len());
}

#[test]
fn hostile_inputs_do_not_panic() {
    for sql in [
        "",
        ";;;",
        "SELECT $0 FROM patients",
        "SELECT $99999999 FROM patients",
        "INSERT INTO patients (ssn) VALUES ('a\0b')",
        "INSERT INTO patients (ssn) VALUES (B'0101')",
        "INSERT INTO patients (ssn) VALUES (U&'\\D800')",
        "SELECT * FROM patients WHERE ssn = '",
    ] {
        let _ = run(sql);
    }
    assert!(matches!(
        run("INSERT INTO patients (ssn) VALUES (B'0101')"),
        Analysis::Refuse(_)
    ));
    assert!(matches!(
        run("SELECT $0 FROM patients"),
        Analysis::Refuse(_)
    ));
}

#[test]
fn more_forms_drivers_send() {
    assert_pass(
        "SELECT * FROM visits WHERE patient_ssn = (SELECT ssn FROM patients WHERE id = $1)",
    );
    refusal_is(
        "SELECT * FROM visits WHERE patient_ssn = (SELECT email FROM patients WHERE id = $1)",
        "public.visits.patient_ssn",
        "different key",
    );
    assert_pass("SELECT ssn, row_number() OVER (PARTITION BY ssn) FROM patients");
    assert_pass(
        "SELECT * FROM patients p, LATERAL (SELECT * FROM visits v WHERE v.patient_ssn = p.ssn) x",
    );
    assert_pass("SELECT * FROM patients WHERE id = $1 FOR UPDATE");
    let sql = "SELECT * FROM patients WHERE ssn = $1 AND name = $2 LIMIT $3 OFFSET $4";
    assert_eq!(params(sql), vec![some("ssn"), None, None, None]);
    let sql = "INSERT INTO patients (id, ssn) VALUES ($1, $2) ON CONFLICT ON CONSTRAINT pk DO UPDATE SET ssn = $2 WHERE patients.email = $3";
    assert_eq!(params(sql), vec![None, some("ssn"), some("email")]);
    let sql = "UPDATE patients AS p SET email = $1 FROM visits v WHERE v.patient_ssn = p.ssn AND v.id = $2 RETURNING p.email";
    assert_eq!(params(sql), vec![some("email"), None]);
    refusal_is(
        "SELECT * FROM patients WHERE email::text = $1",
        "public.patients.email",
        "cast",
    );
    refusal_is(
        "SELECT * FROM patients WHERE age + 1 = $1",
        "public.patients.age",
        "operator +",
    );
    refusal_is(
        "SELECT * FROM patients NATURAL JOIN visits",
        "public.patients.ssn",
        "NATURAL JOIN",
    );
}

#[test]
fn table_level_refusal_message() {
    let r = refused("DO $$ BEGIN DELETE FROM patients; END $$");
    assert_eq!(
        r.message(),
        "pgcloak: a DO block naming it is not supported on table public.patients, which has \
         encrypted columns"
    );
}

#[test]
fn analysis_time_is_small() {
    let rules = rules();
    let cat = catalog();
    let path = vec!["public".to_owned()];
    let ctx = AnalysisContext {
        rules: &rules,
        search_path: &path,
        catalog: &cat,
        qualify: false,
    };
    let sql = "INSERT INTO patients (name, ssn, email, diagnosis) VALUES ($1, $2, $3, $4) ON CONFLICT (ssn) DO UPDATE SET email = EXCLUDED.email";
    let start = std::time::Instant::now();
    for _ in 0..200 {
        assert!(matches!(analyze(sql, &ctx), Analysis::Rewrite(_)));
    }
    let per = start.elapsed() / 200;
    let cache = PlanCache::new(64);
    cache.get_or_analyze(sql, &ctx);
    let start = std::time::Instant::now();
    for _ in 0..10_000 {
        cache.get_or_analyze(sql, &ctx);
    }
    let hit = start.elapsed() / 10_000;
    println!("analyze: {per:?} per call; cache hit: {hit:?}");
    assert!(hit < per);
}

#[test]
fn literals_are_stored_as_postgresql_would_coerce_them() {
    let sql = "INSERT INTO patients (ssn, email, age, diagnosis) VALUES ('abcdef'::varchar(3), CAST('xy  ' AS char(4)), 5.7, '12.5'::numeric(5,0)::text)";
    assert_eq!(
        lits(sql),
        vec![
            lit("'abcdef'::varchar(3)", Some("abc"), "ssn"),
            lit("CAST('xy  ' AS char(4))", Some("xy"), "email"),
            lit("5.7", Some("6"), "age"),
            lit("'12.5'::numeric(5,0)::text", Some("13"), "diagnosis"),
        ]
    );
    assert_eq!(
        lits("UPDATE patients SET age = -2.5 WHERE ssn = 'a'::varchar(0)")[0],
        lit("-2.5", Some("-3"), "age")
    );
    // A parameter's type modifier is applied at Bind (see `unnest_tests`); one not modelled
    // is refused.
    refusal_is(
        "INSERT INTO patients (birth_date) VALUES ($1::timestamp(0))",
        "public.patients.birth_date",
        "cast",
    );
    refusal_is(
        "INSERT INTO patients (diagnosis) VALUES ('123456'::numeric(5,0))",
        "public.patients.diagnosis",
        "overflows",
    );
    refusal_is(
        "INSERT INTO patients (diagnosis) VALUES ('x'::timestamp(0))",
        "public.patients.diagnosis",
        "cast to timestamp",
    );
}

#[test]
fn simple_case_on_a_deterministic_column_compares_each_when() {
    let sql = "SELECT CASE ssn WHEN 'a' THEN 1 WHEN $1 THEN 2 ELSE 0 END FROM patients";
    assert_eq!(lits(sql), vec![lit("'a'", Some("a"), "ssn")]);
    assert_eq!(params(sql), vec![some("ssn")]);
    assert!(plan(sql).matches.iter().all(|m| m.span.is_none()));
    refusal_is(
        "SELECT CASE diagnosis WHEN 'a' THEN 1 END FROM patients",
        "public.patients.diagnosis",
        "randomized",
    );
    refusal_is(
        "SELECT CASE WHEN ssn = 'a' THEN ssn END FROM patients",
        "public.patients.ssn",
        "CASE",
    );
    assert_pass("SELECT CASE name WHEN 'a' THEN 1 END FROM patients");
}

#[test]
fn contains_ci_finds_every_case_and_position() {
    use super::contains_ci;
    assert!(contains_ci(b"SELECT * FROM Patients", b"patients"));
    assert!(contains_ci(b"patients", b"PATIENTS"));
    assert!(contains_ci(b"xpAtIeNtS", b"patients"));
    assert!(!contains_ci(b"patient", b"patients"));
    assert!(!contains_ci(b"", b"p"));
    assert!(!contains_ci(b"abc", b""));
    // A first byte that occurs many times before the match, and a match at the very end.
    assert!(contains_ci(b"ppppppppatients", b"patients"));
    assert!(contains_ci(b"aaaaaaaaaab", b"AB"));
    assert!(!contains_ci(b"aaaaaaaaaa", b"ab"));
    // Non-ASCII bytes neither match nor panic.
    assert!(contains_ci("é_schéma".as_bytes(), "schéma".as_bytes()));
    assert!(!contains_ci("SCHÉMA".as_bytes(), "schéma".as_bytes()));
}
