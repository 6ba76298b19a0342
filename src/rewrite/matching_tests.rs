//! Unit tests of match sites: where comparisons on deterministic columns are, and the text
//! each is rewritten to.

use super::*;
use crate::rewrite::Analysis;
use crate::rewrite::tests::plan;

/// The text with every match site rewritten (`$n` → `An`, literal `v` → `Lv`) and other
/// literals replaced by `X`.
fn expanded(sql: &str) -> String {
    let p = plan(sql);
    let whole: Vec<(usize, usize, String)> = p
        .matches
        .iter()
        .map(|m| {
            let sp = m.span.as_ref().expect("a rewritable site");
            let text = sp.render(sql, m.op, |i| {
                Ok::<_, ()>(match i {
                    MatchItem::Param(n) => format!("A{n}"),
                    MatchItem::Literal(v) => format!("L{}", v.as_deref().unwrap_or("NULL")),
                    MatchItem::Column(..) => unreachable!("columns are rendered by render"),
                })
            });
            (sp.start, sp.end, text.unwrap())
        })
        .collect();
    let reps: Vec<String> = p.literals.iter().map(|_| "X".to_owned()).collect();
    p.rewrite_text_with(sql, &reps, &whole)
}

fn spans(sql: &str) -> Vec<bool> {
    plan(sql).matches.iter().map(|m| m.span.is_some()).collect()
}

#[test]
fn equality_forms_are_rewritten_as_a_whole() {
    let base = "SELECT id FROM patients p WHERE ";
    let cases = [
        ("ssn = $1", "(ssn = ANY(A1))"),
        ("$1 = p.ssn", "(p.ssn = ANY(A1))"),
        ("ssn <> 'x'", "(ssn <> ALL(Lx))"),
        ("ssn = $1::text AND id = 2", "(ssn = ANY(A1)) AND id = 2"),
        ("(ssn) = ($1)", "(ssn = ANY(A1))"),
        ("NOT ssn = $1", "NOT (ssn = ANY(A1))"),
        ("ssn IN ($1, 'b')", "(ssn = ANY(A1 || Lb))"),
        ("ssn NOT IN ($2, ($1))", "(ssn <> ALL(A2 || A1))"),
        ("ssn = NULL", "(ssn = ANY(LNULL))"),
        (
            "ssn IS NOT DISTINCT FROM $1",
            "(COALESCE(ssn = ANY(A1), false) OR (ssn IS NULL AND (A1)[1] IS NULL))",
        ),
        (
            "ssn IS DISTINCT FROM 'q'",
            "(NOT (COALESCE(ssn = ANY(Lq), false) OR (ssn IS NULL AND (Lq)[1] IS NULL)))",
        ),
    ];
    for (cond, want) in cases {
        let sql = format!("{base}{cond}");
        assert_eq!(expanded(&sql), format!("{base}{want}"), "{cond}");
    }
}

#[test]
fn other_columns_of_the_key_join_the_array() {
    let sql = "SELECT 1 FROM visits v JOIN patients p ON p.id = v.id \
               WHERE v.patient_ssn IN (p.ssn, $1)";
    assert!(
        expanded(sql).ends_with("WHERE (v.patient_ssn = ANY(ARRAY[p.ssn] || A1))"),
        "{}",
        expanded(sql)
    );
}

#[test]
fn writes_joins_and_randomized_columns_are_not_match_sites() {
    let p = plan("UPDATE patients SET ssn = $1, diagnosis = $3 WHERE ssn = $2 AND id = $4");
    assert_eq!(p.matches.len(), 1);
    assert_eq!(
        p.matches[0].span.as_ref().unwrap().items,
        vec![MatchItem::Param(2)]
    );
    assert_eq!(p.max_param, 4);
    let join = "SELECT 1 FROM visits v JOIN patients p ON p.ssn = v.patient_ssn \
                WHERE v.note IS NULL AND p.id = $1 AND v.patient_ssn IS NOT NULL";
    assert_eq!(crate::rewrite::tests::run(join), Analysis::Passthrough);
    assert_eq!(
        plan("INSERT INTO patients (ssn) VALUES ($1)").matches,
        vec![]
    );
    let p = plan("SELECT 1 FROM patients WHERE ssn = $1 LIMIT $5");
    assert_eq!(p.max_param, 5);
}

#[test]
fn comparisons_that_cannot_be_located_have_no_span() {
    let base = "SELECT id FROM patients WHERE ";
    for cond in [
        "(ssn, email) = ($1, $2)",
        "ssn = (SELECT $1)",
        "ssn IN (SELECT $1)",
    ] {
        let sql = format!("{base}{cond}");
        let s = spans(&sql);
        assert!(!s.is_empty() && s.iter().all(|s| !s), "{cond}: {s:?}");
    }
    // One locatable and one not, in the same text.
    let s = spans("SELECT id FROM patients WHERE ssn = $1 OR ssn = (SELECT $2)");
    assert_eq!(s.len(), 2);
    assert_eq!(s.iter().filter(|s| **s).count(), 1);
}

#[test]
fn sites_in_sub_selects_and_ctes_are_found() {
    let sql = "WITH c AS (SELECT id FROM patients WHERE email = $1) \
               SELECT * FROM visits WHERE patient_ssn IN (SELECT ssn FROM patients \
               WHERE ssn = 'k') AND id IN (SELECT id FROM c)";
    let out = expanded(sql);
    assert!(out.contains("WHERE (email = ANY(A1))"), "{out}");
    assert!(out.contains("WHERE (ssn = ANY(Lk))"), "{out}");
}
