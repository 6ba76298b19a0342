//! Unit tests of `UNNEST` in FROM, casts with type modifiers on parameters and casts around a
//! `CASE` of values (Django's `bulk_create` and `bulk_update`).

use super::tests::{plan, refused, run};
use super::{Analysis, Coerce, LiteralKind};

fn text(sql: &str) -> String {
    let p = plan(sql);
    let reps: Vec<String> = (0..p.literals.len()).map(|i| format!("L{i}")).collect();
    p.rewrite_text(sql, &reps)
}

fn cols(sql: &str) -> Vec<Option<String>> {
    plan(sql)
        .params
        .iter()
        .map(|p| p.as_ref().map(|r| r.column.clone()))
        .collect()
}

#[test]
fn django_bulk_create_binds_each_array_to_its_column() {
    let sql = "INSERT INTO \"patients\" (\"ssn\", \"age\", \"name\") SELECT * FROM \
               UNNEST((%1)::varchar(254)[], (%2)::integer[], (%3)::varchar(40)[])"
        .replace('%', "$");
    let p = plan(&sql);
    assert_eq!(
        cols(&sql),
        vec![Some("ssn".into()), Some("age".into()), None]
    );
    assert_eq!(p.store_arrays, vec![0, 1]);
    assert_eq!(p.array_params, vec![0, 1]);
    assert_eq!(p.param_coerce, vec![(0, Coerce::Chars(254))]);
    assert_eq!(
        text(&sql),
        "INSERT INTO \"patients\" (\"ssn\", \"age\", \"name\") SELECT * FROM \
         UNNEST($1, $2, ($3)::varchar(40)[])"
    );
}

#[test]
fn unnest_columns_are_named_as_postgresql_names_them() {
    let sql = "INSERT INTO patients (id, ssn) SELECT n, s FROM unnest($1::int[], $2::text[]) \
               AS u(n, s)";
    assert_eq!(cols(sql), vec![None, Some("ssn".into())]);
    let sql = "INSERT INTO patients (ssn) SELECT x FROM unnest($1::text[]) AS x";
    assert_eq!(cols(sql), vec![Some("ssn".into())]);
    let sql = "INSERT INTO patients (ssn, id) SELECT u.x, u.ordinality FROM \
               pg_catalog.unnest($1::text[]) WITH ORDINALITY AS u(x)";
    assert_eq!(cols(sql), vec![Some("ssn".into())]);
    assert!(text(sql).contains("FROM pg_catalog.unnest($1) WITH"));
}

#[test]
fn array_constants_are_encrypted_element_by_element() {
    let sql = "INSERT INTO patients (ssn) SELECT * FROM unnest('{abc,NULL,\"d,e\"}'::varchar(2)[])";
    let p = plan(sql);
    assert_eq!(p.literals.len(), 1);
    let l = &p.literals[0];
    assert_eq!(l.kind, LiteralKind::Stored);
    assert_eq!(l.value.as_deref(), Some("{\"ab\",NULL,\"d,\"}"));
    assert_eq!(&sql[l.start..l.end], "'{abc,NULL,\"d,e\"}'::varchar(2)[]");
    let sql = "INSERT INTO patients (ssn) SELECT x FROM unnest((ARRAY['a\"b', NULL])::text[]) x";
    let p = plan(sql);
    assert_eq!(p.literals[0].value.as_deref(), Some("{\"a\\\"b\",NULL}"));
    assert_eq!(
        text(sql),
        "INSERT INTO patients (ssn) SELECT x FROM pg_catalog.unnest(L0) x"
    );
}

#[test]
fn unnested_values_used_otherwise_are_refused_or_plain() {
    // Compared with an encrypted column: the elements are not matched under every version.
    let r = refused("SELECT * FROM patients p JOIN unnest($1::text[]) AS u(x) ON p.ssn = u.x");
    assert!(r.construct.contains("unnested"), "{r:?}");
    // A scalar cast on the array, or an array cast on a single value.
    assert!(matches!(
        run("INSERT INTO patients (ssn) VALUES ($1::text[])"),
        Analysis::Refuse(_)
    ));
    // Any other function in FROM stays open: its columns cannot fill an encrypted column.
    assert!(matches!(
        run("INSERT INTO patients (ssn) SELECT * FROM generate_series(1, 2)"),
        Analysis::Refuse(_)
    ));
    assert!(matches!(
        run("INSERT INTO patients (ssn) SELECT * FROM unnest($1::text[] || $2::text[])"),
        Analysis::Refuse(_)
    ));
    // Plain use: nothing to encrypt.
    assert_eq!(
        run("INSERT INTO plain (id, name) SELECT * FROM unnest($1::int[], $2::text[])"),
        Analysis::Passthrough
    );
}

#[test]
fn parameter_casts_with_type_modifiers_are_applied_at_bind() {
    let sql = "INSERT INTO patients (ssn) VALUES ($1::varchar(3))";
    assert_eq!(plan(sql).param_coerce, vec![(0, Coerce::Chars(3))]);
    assert_eq!(text(sql), "INSERT INTO patients (ssn) VALUES ($1)");
    assert_eq!(
        text("INSERT INTO patients (ssn) VALUES (($1)::text)"),
        "INSERT INTO patients (ssn) VALUES ($1)"
    );
    // A cast PostgreSQL would convert the value through is refused (`007` stored as `7`).
    assert!(matches!(
        run("INSERT INTO patients (ssn) VALUES ($1::int4)"),
        Analysis::Refuse(_)
    ));
}

#[test]
fn django_bulk_update_case_binds_every_branch() {
    let sql = "UPDATE \"patients\" SET \"ssn\" = (CASE WHEN (\"patients\".\"id\" = $1) THEN $2 \
               WHEN (\"patients\".\"id\" = $3) THEN $4 ELSE NULL END)::varchar(254) \
               WHERE \"patients\".\"id\" IN ($5, $6)";
    let p = plan(sql);
    assert_eq!(
        cols(sql),
        vec![
            None,
            Some("ssn".into()),
            None,
            Some("ssn".into()),
            None,
            None
        ]
    );
    assert_eq!(
        p.param_coerce,
        vec![(1, Coerce::Chars(254)), (3, Coerce::Chars(254))]
    );
    assert_eq!(
        text(sql),
        "UPDATE \"patients\" SET \"ssn\" = (CASE WHEN (\"patients\".\"id\" = $1) THEN $2 \
         WHEN (\"patients\".\"id\" = $3) THEN $4 ELSE L0 END) \
         WHERE \"patients\".\"id\" IN ($5, $6)"
    );
    let sql = "UPDATE patients SET ssn = (CASE WHEN id = 1 THEN 'abc' END)::varchar(2)";
    let p = plan(sql);
    assert_eq!(p.literals[0].value.as_deref(), Some("ab"));
    assert_eq!(
        text(sql),
        "UPDATE patients SET ssn = (CASE WHEN id = 1 THEN L0 END)"
    );
    // A branch that is not a value is refused, as before.
    assert!(matches!(
        run("UPDATE patients SET ssn = CASE WHEN id = 1 THEN $1 ELSE lower(name) END"),
        Analysis::Refuse(_)
    ));
    // CASE of values compared with a deterministic column: each value encrypted.
    let sql = "SELECT id FROM patients WHERE ssn = CASE WHEN $1 THEN 'a' ELSE 'b' END";
    assert_eq!(plan(sql).literals.len(), 2);
}
