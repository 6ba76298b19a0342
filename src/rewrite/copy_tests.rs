//! Unit tests of COPY analysis: the field map, the options, the column list written in, and
//! what is refused.

use crate::copy::Format;
use crate::rewrite::tests::{plan, run, run_with};
use crate::rewrite::{Analysis, CopyDirection, EmptyCatalog};

fn cols(sql: &str) -> Vec<Option<String>> {
    let p = plan(sql);
    assert_eq!(p.copies.len(), 1, "{sql}");
    p.copies[0]
        .as_ref()
        .unwrap()
        .columns
        .iter()
        .map(|c| c.as_ref().map(|r| r.column.clone()))
        .collect()
}

fn refused(sql: &str, part: &str) {
    match run(sql) {
        Analysis::Refuse(r) => assert!(r.construct.contains(part), "{sql}: {r:?}"),
        other => panic!("expected a refusal for {sql}, got {other:?}"),
    }
}

#[test]
fn copy_with_a_column_list_maps_its_fields() {
    let sql = "COPY patients (id, ssn, name, diagnosis) FROM STDIN";
    assert_eq!(
        cols(sql),
        vec![None, Some("ssn".into()), None, Some("diagnosis".into())]
    );
    let p = plan(sql);
    let c = p.copies[0].as_ref().unwrap();
    assert_eq!(c.direction, CopyDirection::In);
    assert_eq!(c.options.format, Format::Text);
    assert_eq!(p.rewrite_text(sql, &[]), sql, "nothing to write in");
    let sql = "COPY public.patients (ssn) TO STDOUT WITH (FORMAT csv, HEADER, DELIMITER ';')";
    let p = plan(sql);
    let c = p.copies[0].as_ref().unwrap();
    assert_eq!(c.direction, CopyDirection::Out);
    assert_eq!(c.options.format, Format::Csv);
    assert!(c.options.header);
    assert_eq!(c.options.delimiter, b';');
    assert_eq!(c.options.null, b"");
    // The legacy spelling sets the same options.
    let c = plan("COPY patients (ssn) FROM STDIN CSV HEADER NULL 'x' QUOTE '''' ESCAPE '\\'");
    let c = c.copies[0].as_ref().unwrap();
    assert_eq!(
        (c.options.format, c.options.header, &c.options.null[..]),
        (Format::Csv, true, &b"x"[..])
    );
    assert_eq!((c.options.quote, c.options.escape), (b'\'', b'\\'));
    let c = plan("COPY patients (ssn) FROM STDIN (FORMAT binary)");
    assert_eq!(c.copies[0].as_ref().unwrap().options.format, Format::Binary);
}

#[test]
fn copy_without_a_column_list_names_the_catalog_columns() {
    let sql = "COPY patients FROM STDIN WITH (FORMAT csv)";
    assert_eq!(
        cols(sql),
        vec![
            None,
            None,
            Some("ssn".into()),
            Some("email".into()),
            Some("diagnosis".into()),
            Some("birth_date".into()),
            Some("age".into()),
        ]
    );
    let text = plan(sql).rewrite_text(sql, &[]);
    assert_eq!(
        text,
        "COPY patients (\"id\", \"name\", \"ssn\", \"email\", \"diagnosis\", \"birth_date\", \
         \"age\") FROM STDIN WITH (FORMAT csv)"
    );
    let sql = "COPY \"public\".patients TO STDOUT";
    assert!(
        plan(sql)
            .rewrite_text(sql, &[])
            .starts_with("COPY \"public\".patients (\"id\"")
    );
    // A rules table the catalog does not know: its columns cannot be listed.
    match run_with("COPY patients FROM STDIN", &["public"], &EmptyCatalog) {
        Analysis::Refuse(r) => assert!(r.construct.contains("column list"), "{r:?}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(matches!(
        run_with("COPY patients (ssn) FROM STDIN", &["public"], &EmptyCatalog),
        Analysis::Rewrite(_)
    ));
}

#[test]
fn copy_forms_that_are_refused_or_passed() {
    refused("COPY patients (ssn) FROM '/tmp/x'", "server file");
    refused("COPY patients (ssn) TO PROGRAM 'cat'", "server file");
    refused("COPY patients (ssn) FROM STDIN WHERE ssn = 'x'", "WHERE");
    refused(
        "COPY patients (ssn) FROM STDIN (FORMAT csv, FORCE_NULL (ssn))",
        "FORCE_NULL",
    );
    refused(
        "COPY patients (ssn) TO STDOUT (FORMAT csv, FORCE_QUOTE *)",
        "FORCE_QUOTE",
    );
    refused(
        "COPY patients (ssn) FROM STDIN (ENCODING 'latin1')",
        "ENCODING",
    );
    refused(
        "COPY patients (ssn) FROM STDIN (DELIMITER '||')",
        "one ASCII character",
    );
    refused("COPY (SELECT lower(ssn) FROM patients) TO STDOUT", "lower");
    refused("COPY (SELECT ssn FROM patients) TO '/tmp/f'", "server file");
    // Plain columns only in the options, a WHERE on plain columns, plain tables: fine.
    let p = plan("COPY patients (id, ssn) FROM STDIN (FORMAT csv, FORCE_NULL (id)) WHERE id > 1");
    assert_eq!(p.copies.len(), 1);
    assert_eq!(run("COPY plain FROM STDIN"), Analysis::Passthrough);
    assert_eq!(
        run("COPY (SELECT name FROM patients) TO STDOUT"),
        Analysis::Passthrough
    );
    // Several statements: one entry per COPY, in order.
    let p = plan("COPY plain FROM STDIN; COPY patients (ssn) FROM STDIN");
    assert_eq!(p.copies.len(), 2);
    assert!(p.copies[0].is_none() && p.copies[1].is_some());
}

#[test]
fn copy_of_a_query_decrypts_its_encrypted_output_and_encrypts_its_values() {
    let sql =
        "COPY (SELECT id, ssn, name FROM patients WHERE email = 'a@x.org') TO STDOUT (FORMAT csv)";
    assert_eq!(cols(sql), vec![None, Some("ssn".into()), None]);
    let p = plan(sql);
    assert_eq!(p.literals.len(), 1, "the WHERE value is encrypted");
    assert_eq!(p.copies[0].as_ref().unwrap().direction, CopyDirection::Out);
    assert_eq!(cols("COPY (SELECT * FROM patients) TO STDOUT").len(), 7);
    // DML with RETURNING inside COPY is analysed like DML: its values are encrypted.
    let sql = "COPY (INSERT INTO patients (id, ssn) VALUES (1, 'x') RETURNING id, ssn) TO STDOUT";
    assert_eq!(cols(sql), vec![None, Some("ssn".into())]);
    assert_eq!(plan(sql).literals.len(), 1);
    let sql = "COPY (DELETE FROM patients WHERE ssn = 'x' RETURNING id) TO STDOUT";
    assert_eq!(plan(sql).literals.len(), 1);
    assert!(
        plan(sql).copies.is_empty(),
        "no encrypted output: a plain stream"
    );
}
