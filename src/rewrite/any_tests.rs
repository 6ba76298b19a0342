//! Unit tests of `col = ANY(…)` / `col <> ALL(…)`: which parameters become arrays, which
//! literals are replaced and how, and what is refused.

use crate::rewrite::tests::{plan, run};
use crate::rewrite::{Analysis, LiteralKind};

/// (source text of each literal site, its kind), in text order.
fn sites(sql: &str) -> Vec<(String, LiteralKind)> {
    plan(sql)
        .literals
        .iter()
        .map(|l| (sql[l.start..l.end].to_owned(), l.kind))
        .collect()
}

fn refused_with(sql: &str, column: &str, construct: &str) {
    match run(sql) {
        Analysis::Refuse(r) => {
            assert_eq!(r.column, column, "{sql}: {r:?}");
            assert!(r.construct.contains(construct), "{sql}: {r:?}");
        }
        other => panic!("expected a refusal for {sql}, got {other:?}"),
    }
}

#[test]
fn array_parameters_become_bytea_arrays() {
    for sql in [
        "SELECT * FROM patients WHERE ssn = ANY($1)",
        "SELECT * FROM patients WHERE ssn = ANY($1::text[])",
        "SELECT * FROM patients WHERE ssn = ANY(CAST($1 AS text[]))",
        "SELECT * FROM patients WHERE ssn <> ALL($1)",
        "DELETE FROM patients WHERE ssn = ANY ($1) AND name = $2",
        "UPDATE patients SET name = $2 WHERE ssn = SOME($1)",
    ] {
        let p = plan(sql);
        assert_eq!(p.array_params, vec![0], "{sql}");
        assert!(p.is_array_param(0) && !p.is_array_param(1), "{sql}");
        assert_eq!(p.params[0].as_ref().unwrap().column, "ssn", "{sql}");
        assert!(
            p.matches.is_empty(),
            "{sql}: every version is in the array itself"
        );
        let text = p.rewrite_text(sql, &[]);
        assert!(
            !text.contains("text[]"),
            "{sql}: the cast is removed: {text}"
        );
        assert!(text.contains("$1"), "{text}");
    }
}

#[test]
fn array_literals_and_array_constructors_are_replaced() {
    let sql = "SELECT * FROM patients WHERE ssn = ANY('{a,b}')";
    assert_eq!(sites(sql), vec![("'{a,b}'".to_owned(), LiteralKind::Array)]);
    let sql = "SELECT * FROM patients WHERE ssn = ANY('{a,b}'::text[])";
    assert_eq!(
        sites(sql),
        vec![("'{a,b}'::text[]".to_owned(), LiteralKind::Array)]
    );
    let sql = "SELECT * FROM patients WHERE ssn = ANY(ARRAY['a', 'b'::text, NULL])";
    assert_eq!(
        sites(sql),
        vec![
            ("'a'".to_owned(), LiteralKind::Element),
            ("'b'::text".to_owned(), LiteralKind::Element),
            ("NULL".to_owned(), LiteralKind::Element),
        ]
    );
    let sql = "SELECT * FROM patients WHERE age <> ALL(ARRAY[1, -2]::int[])";
    let p = plan(sql);
    assert_eq!(p.literals.len(), 2);
    let text = p.rewrite_text(sql, &["X".to_owned(), "Y".to_owned()]);
    assert_eq!(text, "SELECT * FROM patients WHERE age <> ALL(ARRAY[X, Y])");
    // A parameter element is a scalar of the column, refused after a rotation.
    let p = plan("SELECT * FROM patients WHERE ssn = ANY(ARRAY[$1, 'x'])");
    assert!(p.array_params.is_empty());
    assert_eq!(p.params[0].as_ref().unwrap().column, "ssn");
    assert_eq!(p.matches.len(), 1);
    assert!(p.matches[0].span.is_none());
    // A column sharing the key is fine, like an equi-join.
    let p = plan("SELECT * FROM visits v WHERE patient_ssn = ANY(ARRAY['x'])");
    assert_eq!(p.literals.len(), 1);
}

#[test]
fn other_any_all_forms_are_refused() {
    let ssn = "public.patients.ssn";
    for (sql, column, construct) in [
        ("SELECT * FROM patients WHERE ssn > ANY($1)", ssn, "> ANY"),
        ("SELECT * FROM patients WHERE ssn = ALL($1)", ssn, "= ALL"),
        ("SELECT * FROM patients WHERE ssn <> ANY($1)", ssn, "<> ANY"),
        (
            "SELECT * FROM patients WHERE diagnosis = ANY($1)",
            "public.patients.diagnosis",
            "randomized",
        ),
        (
            "SELECT * FROM patients WHERE ssn = ANY(string_to_array($1, ','))",
            ssn,
            "not a parameter",
        ),
        (
            "SELECT * FROM patients WHERE ssn = ANY(ARRAY[name])",
            ssn,
            "plaintext",
        ),
        (
            "SELECT * FROM patients WHERE ssn = ANY(ARRAY[lower($1)])",
            ssn,
            "plaintext",
        ),
        (
            "SELECT * FROM patients WHERE ssn = ANY(ARRAY[email])",
            ssn,
            "different key",
        ),
        (
            "SELECT * FROM patients WHERE ssn = ANY(ARRAY[ARRAY['a']])",
            ssn,
            "plaintext",
        ),
        (
            "SELECT * FROM patients WHERE ssn = ANY($1) AND name = $1",
            ssn,
            "parameter $1",
        ),
        (
            "SELECT * FROM patients WHERE ssn = ANY($1) OR ssn = $1",
            ssn,
            "parameter $1",
        ),
        (
            "SELECT * FROM patients WHERE name = ANY(ARRAY[ssn])",
            ssn,
            "ARRAY",
        ),
        (
            "SELECT * FROM patients WHERE $1 = ANY(ARRAY[ssn])",
            ssn,
            "ARRAY",
        ),
    ] {
        refused_with(sql, column, construct);
    }
}

#[test]
fn plaintext_any_is_untouched() {
    assert_eq!(
        run("SELECT * FROM patients WHERE name = ANY($1)"),
        Analysis::Passthrough
    );
    let p = plan("SELECT * FROM patients WHERE name = ANY($1) AND ssn = ANY($2)");
    assert_eq!(p.array_params, vec![1]);
    assert!(p.params[0].is_none());
}
