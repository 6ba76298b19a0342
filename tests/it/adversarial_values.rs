//! Adversarial probes: what a value is. Fidelity against PostgreSQL itself (the same
//! statements on a plain twin table: `numeric(p,s)`, `varchar(n)`, `char(n)`, integers from
//! fractions, signs, long values, NULL and empty, unicode, bytea-looking text, jsonb, dates),
//! lexing (comments, dollar quoting, `E''`, `U&''`, adjacent literals, several statements in one
//! Query, syntax errors), settings that change how the server reads a statement or renders a
//! value (`standard_conforming_strings`, `client_encoding`, `DateStyle`, `bytea_output`, in
//! SET and in the startup packet), server messages that quote stored values, and search values
//! (every way a literal meets an encrypted column in a predicate).

use crate::adversarial::{
    Driver, Expect, P, Probe, SIMPLE, TOKIO, TWO, count, enc, plain, probe, run_suite, t, twin,
};

const FID: &str = "fidelity";
const LEX: &str = "lexing";
const SET: &str = "settings";
const MSG: &str = "messages";
const SEARCH: &str = "search";

/// `INSERT INTO {t} (id, col) VALUES (1, <expr>)` checked against the twin.
pub fn fid(name: &str, col: &'static str, expr: &str) -> Probe {
    probe(FID, name)
        .attack(&format!("INSERT INTO {{t}} (id, {col}) VALUES (1, {expr})"))
        .expect(Expect::Safe(vec![twin(col, 1)]))
        .on(SIMPLE)
}

/// The same with the value as a parameter.
fn fid_p(name: &str, col: &'static str, expr: &str, value: &str, drivers: &[Driver]) -> Probe {
    probe(FID, name)
        .attack_p(
            &format!("INSERT INTO {{t}} (id, {col}) VALUES (1, {expr})"),
            vec![t(value)],
        )
        .expect(Expect::Safe(vec![twin(col, 1)]))
        .on(drivers)
}

fn fidelity() -> Vec<Probe> {
    let long = "x".repeat(100_000);
    vec![
        fid("numeric(5,0) rounds 12.5", "n", "'12.5'::numeric(5,0)"),
        fid("numeric(5,2) rounds 1.005", "n", "1.005::numeric(5,2)"),
        fid("numeric(3,1) overflow", "n", "99.96::numeric(3,1)"),
        fid(
            "numeric(5,0) of a negative half",
            "n",
            "'-12.5'::numeric(5,0)",
        ),
        fid("numeric keeps its scale", "n", "1.50"),
        fid("numeric with an exponent", "n", "1.5e3"),
        fid("numeric NaN", "n", "'NaN'"),
        fid("numeric Infinity", "n", "'Infinity'::numeric"),
        fid("numeric with spaces", "n", "'  12.5  '"),
        fid("numeric double negation", "n", "-(-5.25)"),
        fid("numeric unary plus", "n", "+7"),
        fid("numeric from an integer", "n", "42"),
        fid(
            "numeric cast to numeric(10,3) then numeric(4,1)",
            "n",
            "'3.14159'::numeric(10,3)::numeric(4,1)",
        ),
        fid("varchar(3) truncates", "v", "'abcdef'::varchar(3)"),
        fid("varchar(3) keeps a short value", "v", "'ab'::varchar(3)"),
        fid(
            "character varying(2) of spaces",
            "v",
            "'a   '::character varying(2)",
        ),
        fid(
            "char(3) pads then loses its padding in text",
            "s",
            "'ab'::char(3)",
        ),
        fid("char(3) truncates", "s", "'abcdef'::char(3)"),
        fid(
            "nested casts text → varchar(4) → text",
            "s",
            "'abcdefgh'::varchar(4)::text",
        ),
        fid("CAST(… AS varchar(2))", "v", "CAST('xyz' AS varchar(2))"),
        fid("int4 from 5.7 rounds", "i", "5.7"),
        fid("int4 from 2.5 rounds away from zero", "i", "2.5"),
        fid("int4 from -5.5", "i", "-5.5"),
        fid("int4 from 4.5e0 (a numeric constant)", "i", "4.5e0"),
        fid("int4 from '5.7' (a string) is an error", "i", "'5.7'"),
        fid("int4 double negation", "i", "-(-7)"),
        fid("int4 negation with a space", "i", "- 7"),
        fid("int4 from ' 42 '", "i", "' 42 '"),
        fid("int4 overflow", "i", "2147483648"),
        fid("int4 minimum", "i", "-2147483648"),
        fid("int4 from 5.7::int", "i", "5.7::int"),
        fid("int4 from a bigint constant in range", "i", "42::int8"),
        fid("text NULL", "s", "NULL"),
        fid("text NULL::text", "s", "NULL::text"),
        fid("text empty string", "s", "''"),
        fid("text unicode", "s", "'日本語 😀 ñ'"),
        fid("text that looks like bytea hex", "s", "'\\x0101'"),
        fid(
            "text that looks like an envelope",
            "s",
            "'\\x0102000000010000'",
        ),
        fid("bytea from hex", "b", "'\\x0101'"),
        fid("bytea from escape format", "b", "'abc\\001'::bytea"),
        fid("bytea from E'' escapes", "b", "E'\\\\x4142'"),
        fid(
            "jsonb normalises key order and duplicates",
            "j",
            "'{\"b\": 1, \"a\": 2, \"a\": 3}'",
        ),
        fid("jsonb with spaces", "j", "'  [1,  2]  '"),
        fid("date ISO", "d", "'2020-02-01'"),
        fid("date from words", "d", "'Feb 1 2020'"),
        fid("date epoch", "d", "'epoch'"),
        fid("date infinity", "d", "'infinity'"),
        fid("date BC", "d", "'2020-02-01 BC'"),
        fid("date invalid", "d", "'2020-02-30'"),
        fid("date compact", "d", "'20200201'"),
        fid_p("numeric parameter 12.50", "n", "$1", "12.50", TWO),
        fid_p(
            "numeric(5,0) cast on a parameter",
            "n",
            "$1::numeric(5,0)",
            "12.5",
            TWO,
        ),
        fid_p(
            "varchar(3) cast on a parameter",
            "v",
            "$1::varchar(3)",
            "abcdef",
            TOKIO,
        ),
        fid_p("int4 parameter as text 42", "i", "$1", "42", TOKIO),
        fid_p("int4 parameter ' -3 '", "i", "$1", " -3 ", TWO),
        fid_p("text parameter empty", "s", "$1", "", TOKIO),
        fid_p("text parameter unicode", "s", "$1", "Zürich – 東京", TOKIO),
        fid_p("text parameter very long", "r", "$1", &long, TOKIO),
        fid_p(
            "text parameter looking like bytea",
            "s",
            "$1",
            "\\x0101",
            TOKIO,
        ),
        fid_p("bytea parameter", "b", "$1", "\\x00ff", TOKIO),
        fid_p(
            "jsonb parameter",
            "j",
            "$1",
            "{\"z\": [1, 2], \"a\": null}",
            TWO,
        ),
        fid_p("date parameter", "d", "$1", "2021-12-31", TWO),
        fid_p(
            "text parameter with quotes and backslashes",
            "s",
            "$1",
            "it's a \\ test",
            TOKIO,
        ),
        probe(FID, "NULL parameter")
            .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![P::Null])
            .expect(Expect::Encrypted(vec![enc("s", 1, None)]))
            .on(TOKIO),
        probe(FID, "very long literal")
            .attack(&format!(
                "INSERT INTO {{t}} (id, r) VALUES (1, '{{S1}}{}')",
                "y".repeat(50_000)
            ))
            .expect(Expect::Safe(vec![twin("r", 1)]))
            .on(&[Driver::Simple, Driver::Psql]),
    ]
}

fn lexing() -> Vec<Probe> {
    let ins = |name: &str, values: &str, want: &str| {
        probe(LEX, name)
            .attack(&format!("INSERT INTO {{t}} (id, s) VALUES (1, {values})"))
            .expect(Expect::Safe(vec![enc("s", 1, Some(want))]))
            .on(&[Driver::Simple, Driver::Psql])
    };
    vec![
        ins("block comment before the value", "/* c */ '{S1}'", "{S1}"),
        ins("nested block comment", "/* a /* b */ c */ '{S1}'", "{S1}"),
        ins("line comment, value on the next line", "-- x ')\n'{S1}'", "{S1}"),
        ins("dollar-quoted value", "$${S1}$$", "{S1}"),
        ins("tagged dollar quote holding quotes", "$q$'{S1}'$q$", "'{S1}'"),
        ins("E'' string with escapes", "E'{S1}\\n\\x41'", "{S1}\nA"),
        ins("U&'' string", "U&'\\0041{S1}'", "A{S1}"),
        ins("U&'' string with UESCAPE", "U&'!0041{S1}' UESCAPE '!'", "A{S1}"),
        ins("adjacent literals across a newline", "'{S1}'\n'tail'", "{S1}tail"),
        ins("doubled quotes", "'it''s {S1}'", "it's {S1}"),
        ins("typed literal text '…'", "text '{S1}'", "{S1}"),
        ins("CAST(… AS text)", "CAST('{S1}' AS text)", "{S1}"),
        ins("parenthesised", "((('{S1}')))", "{S1}"),
        ins("COLLATE", "'{S1}' COLLATE \"C\"", "{S1}"),
        ins("a literal that contains $1", "'$1 {S1}'", "$1 {S1}"),
        ins("a literal that contains a comment opener", "'/* {S1} --'", "/* {S1} --"),
        probe(LEX, "several INSERTs in one Query")
            .attack("INSERT INTO {t} (id, s) VALUES (1, '{S1}'); INSERT INTO {t} (id, r) VALUES (2, '{S2}')")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}")), enc("r", 2, Some("{S2}"))]))
            .on(&[Driver::Simple, Driver::Psql]),
        probe(LEX, "a refused statement after an INSERT in one Query stores nothing")
            .attack("INSERT INTO {t} (id, s) VALUES (1, '{S1}'); SELECT * FROM {t} WHERE s LIKE 'x%'")
            .expect(Expect::Safe(vec![count("public.{t}", 1)]))
            .on(&[Driver::Simple, Driver::Psql]),
        probe(LEX, "SELECT then INSERT in one Query")
            .attack("SELECT 1; INSERT INTO {t} (id, s) VALUES (1, '{S1}')")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(SIMPLE),
        probe(LEX, "transaction block in one Query")
            .attack("BEGIN; INSERT INTO {t} (id, s) VALUES (1, '{S1}'); COMMIT")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(SIMPLE),
        probe(LEX, "syntax error in an INSERT on a rules table (missing paren)")
            .attack("INSERT INTO {t} (id, s) VALUES (1, '{S1}'")
            .expect(Expect::Refused)
            .on(&[Driver::Simple, Driver::ExtText, Driver::Psql]),
        probe(LEX, "syntax error: misspelt keyword")
            .attack("INSERT INTO {t} (id, s) VALUS (1, '{S1}')")
            .expect(Expect::Refused)
            .on(&[Driver::Simple, Driver::ExtText]),
        probe(LEX, "syntax error after a valid statement in one Query")
            .attack("INSERT INTO {t} (id, s) VALUES (1, '{S1}'); INSERT INTO {t} (id, s) VALUES (2, '{S2}') ,,")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(LEX, "syntax error that does not name the table clearly")
            .attack("WITH q AS (SELECT '{S1}' AS v) INSERT INTO {t} (id, s) SELECT 1, v FROM q WHERE")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(LEX, "unterminated string")
            .attack("INSERT INTO {t} (id, s) VALUES (1, '{S1})")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(LEX, "unterminated dollar quote")
            .attack("INSERT INTO {t} (id, s) VALUES (1, $a${S1})")
            .expect(Expect::Refused)
            .on(SIMPLE),
    ]
}

fn settings() -> Vec<Probe> {
    let scs_trick = "INSERT INTO {t} (id, s, r) VALUES (1, '\\', NULL) -- ', '{S1}')";
    let scs_safe = || {
        Expect::Safe(vec![
            enc("r", 1, Some("{S1}")),
            enc("s", 1, Some("', NULL) -- ")),
        ])
    };
    vec![
        probe(SET, "standard_conforming_strings=off: backslash hides a value in a comment")
            .setup("SET standard_conforming_strings = off")
            .attack(scs_trick)
            .expect(scs_safe())
            .on(&[Driver::Simple, Driver::Psql]),
        probe(SET, "standard_conforming_strings=off via set_config")
            .setup("SELECT set_config('standard_conforming_strings', 'off', false)")
            .attack(scs_trick)
            .expect(scs_safe())
            .on(SIMPLE),
        probe(SET, "standard_conforming_strings=off via a function")
            .direct("CREATE FUNCTION {x}_f() RETURNS text LANGUAGE sql AS $$ SELECT set_config('standard_conforming_strings', 'off', false) $$")
            .setup("SELECT {x}_f()")
            .attack(scs_trick)
            .expect(scs_safe())
            .on(SIMPLE),
        probe(SET, "standard_conforming_strings=off via SET LOCAL in a transaction")
            .setup("BEGIN")
            .setup("SET LOCAL standard_conforming_strings TO off")
            .attack(scs_trick)
            .any("COMMIT")
            .expect(scs_safe())
            .on(SIMPLE),
        probe(SET, "standard_conforming_strings=off in the startup packet")
            .options("-c standard_conforming_strings=off")
            .attack(scs_trick)
            .expect(scs_safe())
            .on(&[Driver::Simple, Driver::Psql]),
        probe(SET, "standard_conforming_strings=off: a doubled backslash round-trips")
            .setup("SET standard_conforming_strings = off")
            .attack("INSERT INTO {t} (id, s) VALUES (1, 'a\\\\b')")
            .expect(Expect::Safe(vec![enc("s", 1, Some("a\\b"))]))
            .on(SIMPLE),
        probe(SET, "standard_conforming_strings=off: E'' is unaffected")
            .setup("SET standard_conforming_strings = off")
            .attack("INSERT INTO {t} (id, s) VALUES (1, E'{S1}\\\\')")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}\\"))]))
            .on(SIMPLE),
        probe(SET, "standard_conforming_strings=off: statements on plain tables pass")
            .direct("CREATE TABLE {x}_p (id int, s text)")
            .setup("SET standard_conforming_strings = off")
            .attack("INSERT INTO {x}_p VALUES (1, 'a\\\\b')")
            .expect(Expect::Encrypted(vec![plain("{x}_p", "s", 1, Some("a\\b"))]))
            .on(SIMPLE),
        probe(SET, "client_encoding LATIN1: non-ASCII on a plain table passes")
            .direct("CREATE TABLE {x}_p (id int, s text)")
            .setup("SET client_encoding = 'LATIN1'")
            .attack("INSERT INTO {x}_p VALUES (1, 'é')")
            .expect(Expect::Encrypted(vec![plain("{x}_p", "s", 1, Some("Ã©"))]))
            .on(&[Driver::Simple, Driver::Psql]),
        probe(SET, "client_encoding LATIN1: non-ASCII SELECT on no table passes")
            .setup("SET client_encoding = 'LATIN1'")
            .attack("SELECT length('é')")
            .rows(&[&[Some("2")]])
            .expect(Expect::Encrypted(vec![]))
            .on(&[Driver::Simple, Driver::Psql]),
        probe(SET, "client_encoding LATIN1: a value for a rules table")
            .setup("SET client_encoding = 'LATIN1'")
            .attack("INSERT INTO {t} (id, s) VALUES (1, '{S1}é')")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}Ã©"))]))
            .on(&[Driver::Simple, Driver::Psql]),
        probe(SET, "DateStyle German: a date read back")
            .setup_p("INSERT INTO {t} (id, d) VALUES (1, $1)", vec![t("2020-02-01")])
            .setup("SET DateStyle = 'German'")
            .attack("SELECT d FROM {t} WHERE id = 1")
            .rows(&[&[Some("01.02.2020")]])
            .expect(Expect::Safe(vec![]))
            .on(&[Driver::Simple, Driver::Psql]),
        probe(SET, "DateStyle German: a date written")
            .setup("SET DateStyle = 'German'")
            .attack("INSERT INTO {t} (id, d) VALUES (1, '01.02.2020')")
            .expect(Expect::Safe(vec![twin("d", 1)]))
            .on(SIMPLE),
        probe(SET, "DateStyle ISO, DMY: an ambiguous date written")
            .setup("SET DateStyle = 'ISO, DMY'")
            .attack("INSERT INTO {t} (id, d) VALUES (1, '01/02/2020')")
            .expect(Expect::Safe(vec![twin("d", 1)]))
            .on(SIMPLE),
        probe(SET, "DateStyle SQL, MDY in the startup packet, back after RESET")
            .options("-c DateStyle=SQL,MDY")
            .setup("SET DateStyle = ISO")
            .setup_p("INSERT INTO {t} (id, d) VALUES (1, $1)", vec![t("2020-02-01")])
            .setup("RESET DateStyle")
            .attack("SELECT d FROM {t} WHERE id = 1")
            .rows(&[&[Some("02/01/2020")]])
            .expect(Expect::Safe(vec![]))
            .on(SIMPLE),
        probe(SET, "search values under standard_conforming_strings=off")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .setup("SET standard_conforming_strings = off")
            .attack("SELECT id FROM {t} WHERE s = '\\' OR s = ' OR s = '{S1}'")
            .expect(Expect::Safe(vec![]))
            .on(SIMPLE),
    ]
}

fn messages() -> Vec<Probe> {
    vec![
        probe(MSG, "UNIQUE violation DETAIL")
            .direct("ALTER TABLE {t} ADD UNIQUE (s)")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .attack_p("INSERT INTO {t} (id, s) VALUES (2, $1)", vec![t("{S1}")])
            .expect(Expect::ServerError("23505"))
            .on(&[Driver::Simple, Driver::ExtText, Driver::ExtBin, Driver::Psql, Driver::PyText, Driver::Node]),
        probe(MSG, "CHECK violation DETAIL (Failing row contains)")
            .direct("ALTER TABLE {t} ADD CHECK (id < 100)")
            .attack_p("INSERT INTO {t} (id, s, r) VALUES (100, $1, $2)", vec![t("{S1}"), t("{S2}")])
            .expect(Expect::ServerError("23514"))
            .on(&[Driver::Simple, Driver::ExtText, Driver::Psql, Driver::PyText]),
        probe(MSG, "NOT NULL violation DETAIL")
            .direct("ALTER TABLE {t} ALTER COLUMN note SET NOT NULL")
            .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .expect(Expect::ServerError("23502"))
            .on(TWO),
        probe(MSG, "FOREIGN KEY violation DETAIL")
            .direct("CREATE TABLE {x}_ref (s bytea PRIMARY KEY); ALTER TABLE {t} ADD FOREIGN KEY (s) REFERENCES {x}_ref (s)")
            .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .expect(Expect::ServerError("23503"))
            .on(TWO),
        probe(MSG, "UNIQUE violation on UPDATE")
            .direct("ALTER TABLE {t} ADD UNIQUE (s)")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1), (2, $2)", vec![t("{S1}"), t("{S2}")])
            .attack_p("UPDATE {t} SET s = $1 WHERE id = 2", vec![t("{S1}")])
            .expect(Expect::ServerError("23505"))
            .on(TWO),
        probe(MSG, "a value its type rejects is refused before the server")
            .attack_p("INSERT INTO {t} (id, i) VALUES (1, $1)", vec![t("{S1}")])
            .expect(Expect::ServerError("22P02"))
            .on(&[Driver::Simple, Driver::ExtText]),
        probe(MSG, "a jsonb value its type rejects")
            .attack_p("INSERT INTO {t} (id, j) VALUES (1, $1)", vec![t("{\"a\": {S1}")])
            .expect(Expect::ServerError("22P02"))
            .on(&[Driver::Simple, Driver::ExtText]),
    ]
}

fn search() -> Vec<Probe> {
    let q = |name: &str, sql: &str, rows: &[&[Option<&str>]]| {
        probe(SEARCH, name)
            .setup_p(
                "INSERT INTO {t} (id, s, v, r) VALUES (1, $1, $2, $3)",
                vec![t("{S1}"), t("{S2}"), t("{S3}")],
            )
            .attack(sql)
            .rows(rows)
            .expect(Expect::Safe(vec![]))
    };
    let one: &[&[Option<&str>]] = &[&[Some("1")]];
    vec![
        q("= literal", "SELECT id FROM {t} WHERE s = '{S1}'", one).on(TWO),
        q(
            "reversed = literal",
            "SELECT id FROM {t} WHERE '{S1}' = s",
            one,
        )
        .on(SIMPLE),
        q(
            "IN list",
            "SELECT id FROM {t} WHERE s IN ('{S1}', '{S4}')",
            one,
        )
        .on(SIMPLE),
        q(
            "= ANY(array literal)",
            "SELECT id FROM {t} WHERE s = ANY('{{S1},{S4}}')",
            one,
        )
        .on(SIMPLE),
        q(
            "= ANY(ARRAY[…])",
            "SELECT id FROM {t} WHERE s = ANY(ARRAY['{S1}', '{S4}'])",
            one,
        )
        .on(SIMPLE),
        q(
            "IS NOT DISTINCT FROM",
            "SELECT id FROM {t} WHERE s IS NOT DISTINCT FROM '{S1}'",
            one,
        )
        .on(SIMPLE),
        q(
            "NOT (<>)",
            "SELECT id FROM {t} WHERE NOT (s <> '{S1}')",
            one,
        )
        .on(SIMPLE),
        q(
            "OR false",
            "SELECT id FROM {t} WHERE s = '{S1}' OR false",
            one,
        )
        .on(SIMPLE),
        q(
            "row comparison",
            "SELECT id FROM {t} WHERE (s, id) = ('{S1}', 1)",
            one,
        )
        .on(SIMPLE),
        q(
            "scalar sub-select",
            "SELECT id FROM {t} WHERE s = (SELECT '{S1}')",
            one,
        )
        .on(SIMPLE),
        q(
            "IN (SELECT literal)",
            "SELECT id FROM {t} WHERE s IN (SELECT '{S1}')",
            one,
        )
        .on(SIMPLE),
        q(
            "= ANY(SELECT literal)",
            "SELECT id FROM {t} WHERE s = ANY(SELECT '{S1}')",
            one,
        )
        .on(SIMPLE),
        q(
            "CTE constant",
            "WITH c AS (SELECT '{S1}'::text AS x) SELECT id FROM {t}, c WHERE s = c.x",
            one,
        )
        .on(SIMPLE),
        q(
            "JOIN (VALUES …) ON",
            "SELECT {t}.id FROM {t} JOIN (VALUES ('{S1}')) v(x) ON {t}.s = v.x",
            one,
        )
        .on(SIMPLE),
        q(
            "EXISTS correlated",
            "SELECT id FROM {t} WHERE EXISTS (SELECT 1 WHERE {t}.s = '{S1}')",
            one,
        )
        .on(SIMPLE),
        q(
            "CASE col WHEN literal",
            "SELECT CASE s WHEN '{S1}' THEN 1 ELSE 0 END FROM {t}",
            one,
        )
        .on(SIMPLE),
        q(
            "comparison in the target list",
            "SELECT s = '{S1}' FROM {t}",
            &[&[Some("t")]],
        )
        .on(SIMPLE),
        q(
            "count FILTER",
            "SELECT count(*) FILTER (WHERE s = '{S1}') FROM {t}",
            one,
        )
        .on(SIMPLE),
        q(
            "ORDER BY a comparison",
            "SELECT id FROM {t} ORDER BY s = '{S1}'",
            one,
        )
        .on(SIMPLE),
        q(
            "HAVING",
            "SELECT count(*) FROM {t} GROUP BY s HAVING s = '{S1}'",
            one,
        )
        .on(SIMPLE),
        q(
            "LIKE is refused",
            "SELECT id FROM {t} WHERE s LIKE '{S1}%'",
            one,
        )
        .on(SIMPLE),
        q(
            "a function on the column is refused",
            "SELECT id FROM {t} WHERE lower(s::text) = '{S1}'",
            one,
        )
        .on(SIMPLE),
        q(
            "a function on the value",
            "SELECT id FROM {t} WHERE s = lower('{S1}')",
            one,
        )
        .on(SIMPLE),
        q(
            "concatenated value",
            "SELECT id FROM {t} WHERE s = 'sentinel_' || '{S1}'",
            &[],
        )
        .on(SIMPLE),
        q(
            "equality on a randomized column",
            "SELECT id FROM {t} WHERE r = '{S3}'",
            one,
        )
        .on(SIMPLE),
        q(
            "comparing columns with different keys",
            "SELECT id FROM {t} WHERE s = v",
            &[],
        )
        .on(SIMPLE),
        q(
            "BETWEEN",
            "SELECT id FROM {t} WHERE s BETWEEN '{S1}' AND '{S4}'",
            one,
        )
        .on(SIMPLE),
        q(
            "= literal COLLATE",
            "SELECT id FROM {t} WHERE s = '{S1}' COLLATE \"C\"",
            one,
        )
        .on(SIMPLE),
        q("= E'' literal", "SELECT id FROM {t} WHERE s = E'{S1}'", one).on(SIMPLE),
        q("= $$ literal", "SELECT id FROM {t} WHERE s = $${S1}$$", one).on(SIMPLE),
        q(
            "DELETE … WHERE",
            "DELETE FROM {t} WHERE s = '{S4}' RETURNING id",
            &[],
        )
        .on(SIMPLE),
        q(
            "UPDATE … WHERE",
            "UPDATE {t} SET note = 'seen' WHERE s = '{S1}' RETURNING id",
            one,
        )
        .on(SIMPLE),
        q(
            "COPY (SELECT … WHERE) TO STDOUT",
            "COPY (SELECT id FROM {t} WHERE s = '{S1}') TO STDOUT",
            one,
        )
        .on(&[Driver::Psql]),
        probe(SEARCH, "= ANY($1) with an array parameter")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .attack_p(
                "SELECT id FROM {t} WHERE s = ANY($1)",
                vec![t("{{S1},{S4}}")],
            )
            .rows(&[&[Some("1")]])
            .expect(Expect::Safe(vec![]))
            .on(&[Driver::ExtText, Driver::Node]),
        probe(SEARCH, "= $1::varchar(3) (a type modifier on a parameter)")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("sen")])
            .attack_p(
                "SELECT id FROM {t} WHERE s = $1::varchar(3)",
                vec![t("{S1}")],
            )
            .rows(&[&[Some("1")]])
            .expect(Expect::Safe(vec![]))
            .on(&[Driver::ExtText, Driver::PyText]),
        probe(SEARCH, "= $1 through psycopg and node")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .attack_p("SELECT id FROM {t} WHERE s = $1", vec![t("{S1}")])
            .rows(&[&[Some("1")]])
            .expect(Expect::Encrypted(vec![]))
            .on(&[
                Driver::PyText,
                Driver::PyBin,
                Driver::PyPrep,
                Driver::Node,
                Driver::Psql,
            ]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_fidelity_and_lexing() {
    let mut p = fidelity();
    p.extend(lexing());
    run_suite(p).await.assert_all_passed("fidelity and lexing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_settings_messages_and_search() {
    let mut p = settings();
    p.extend(messages());
    p.extend(search());
    run_suite(p)
        .await
        .assert_all_passed("settings, messages and search");
}
