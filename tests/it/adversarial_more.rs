//! Adversarial probes, second round: names that alias a rules table (CTEs, sub-select and
//! table aliases, shadowing functions), parameter types declared in Parse (bytea, int8, text,
//! varchar, bpchar, json for encrypted columns), plain `bytea` sources copied into encrypted
//! columns, hex literals of plaintext, transaction-scoped path changes, COPY through psql,
//! more DDL (typed tables, renames onto rules columns, functions replaced through pgcloak),
//! more values (NUL and invalid bytes, PostgreSQL 16+ literal syntax the server does not read,
//! time zones, jsonb normalisation) and more server messages.

use postgres_types::Type;

use crate::adversarial::{
    Driver, Expect, P, Probe, SIMPLE, TOKIO, TWO, count, enc, plain, probe, run_suite, t,
};
use crate::adversarial_values::fid;

const ALIAS: &str = "aliases";
const TYPED: &str = "typed-params";
const TX: &str = "search_path";
const COPY: &str = "copy";
const DDL: &str = "ddl";
const MSG: &str = "messages";

const SHADOW: &str =
    "CREATE SCHEMA {x}; CREATE TABLE {x}.{t} (id int PRIMARY KEY, s text, note text);";

fn aliases() -> Vec<Probe> {
    let s1 = || vec![t("{S1}")];
    vec![
        probe(ALIAS, "INSERT … SELECT from a sub-select aliased like the rules table")
            .attack_p("INSERT INTO {t} (id, s) SELECT 1, s FROM (SELECT $1::text AS s) AS {t}", s1())
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))])),
        probe(ALIAS, "INSERT … SELECT from VALUES aliased like the rules table")
            .attack("INSERT INTO {t} (id, s) SELECT 1, {t}.s FROM (VALUES ('{S1}')) AS {t}(s)")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(SIMPLE),
        probe(ALIAS, "INSERT … SELECT from a CTE named like the rules table")
            .attack_p("WITH {t} AS (SELECT $1::text AS s) INSERT INTO public.{t} (id, s) SELECT 1, s FROM {t}", s1())
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))])),
        probe(ALIAS, "INSERT … SELECT from a plain bytea table aliased like the rules table")
            .direct("CREATE TABLE {x}_p (id int, s bytea); INSERT INTO {x}_p VALUES (1, convert_to('{M1}', 'UTF8'))")
            .attack("INSERT INTO {t} (id, s) SELECT {t}.id, {t}.s FROM {x}_p AS {t}")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(ALIAS, "UPDATE … FROM a sub-select aliased like another rules column's table")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("old")])
            .attack_p("UPDATE {t} SET s = q.s FROM (SELECT 1 AS id, $1::text AS s) q WHERE {t}.id = q.id", s1())
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))])),
        probe(ALIAS, "a CTE named like the rules table is read as plain text")
            .attack("WITH {t} AS (SELECT '{M1}'::text AS s) SELECT s FROM {t}")
            .rows(&[&[Some("{M1}")]])
            .expect(Expect::Encrypted(vec![]))
            .on(TWO),
        probe(ALIAS, "a sub-select aliased like the rules table is read as plain text")
            .attack("SELECT {t}.s FROM (SELECT '{M1}'::text AS s) AS {t}")
            .rows(&[&[Some("{M1}")]])
            .expect(Expect::Encrypted(vec![]))
            .on(TWO),
        probe(ALIAS, "a plain column aliased like an encrypted one is read as plain text")
            .direct("INSERT INTO {t} (id, note) VALUES (1, '{M1}')")
            .attack("SELECT s FROM (SELECT note AS s FROM {t}) q")
            .rows(&[&[Some("{M1}")]])
            .expect(Expect::Encrypted(vec![]))
            .on(TWO),
        probe(ALIAS, "a plain table aliased like the rules table is read as plain text")
            .direct("CREATE TABLE {x}_p (id int, s text); INSERT INTO {x}_p VALUES (1, '{M1}')")
            .attack("SELECT {t}.s FROM {x}_p AS {t}")
            .rows(&[&[Some("{M1}")]])
            .expect(Expect::Encrypted(vec![]))
            .on(TWO),
        probe(ALIAS, "comparing a CTE column named like an encrypted one with a literal")
            .attack("WITH {t} AS (SELECT '{M1}'::text AS s) SELECT count(*) FROM {t} WHERE s = '{M1}'")
            .rows(&[&[Some("1")]])
            .expect(Expect::Encrypted(vec![]))
            .on(SIMPLE),
        probe(ALIAS, "a function shadowing lower() writes the rules table")
            .direct("CREATE SCHEMA {x}; CREATE FUNCTION {x}.lower(v text) RETURNS text LANGUAGE plpgsql AS $$ BEGIN INSERT INTO public.{t} (id, s) VALUES (1, convert_to(v, 'UTF8')); RETURN v; END $$")
            .setup("SET search_path = {x}, pg_catalog, public")
            .attack("SELECT lower('{M1}')")
            .expect(Expect::Safe(vec![count("public.{t}", 0)]))
            .on(TWO),
        probe(ALIAS, "a function shadowing upper() used inside an INSERT value")
            .direct("CREATE SCHEMA {x}; CREATE FUNCTION {x}.upper(v text) RETURNS text LANGUAGE plpgsql AS $$ BEGIN INSERT INTO public.{t} (id, r) VALUES (2, convert_to(v, 'UTF8')); RETURN v; END $$; CREATE TABLE {x}_p (id int, s text)")
            .setup("SET search_path = {x}, pg_catalog, public")
            .attack("INSERT INTO {x}_p VALUES (1, upper('{M1}'))")
            .expect(Expect::Safe(vec![count("public.{t}", 0)]))
            .on(SIMPLE),
        probe(ALIAS, "U& identifier for an encrypted column")
            .attack("INSERT INTO {t} (id, U&\"\\0073\") VALUES (1, '{S1}')")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(SIMPLE),
        probe(ALIAS, "a column listed twice")
            .attack("INSERT INTO {t} (id, s, s) VALUES (1, '{S1}', '{S2}')")
            .expect(Expect::Refused)
            .on(SIMPLE),
    ]
}

fn typed_params() -> Vec<Probe> {
    let ins = |name: &str, col: &'static str, ty: Type, value: &str, want: Option<&str>| {
        probe(TYPED, name)
            .attack_p(
                &format!("INSERT INTO {{t}} (id, {col}) VALUES (1, $1)"),
                vec![t(value)],
            )
            .typed(&[ty])
            .expect(Expect::Safe(vec![enc(col, 1, want)]))
            .on(&[Driver::ExtText, Driver::ExtBin])
    };
    vec![
        ins("text column, parameter declared bytea", "s", Type::BYTEA, "\\x{H1}", Some("\\x{H1}"))
            .on(&[Driver::ExtText]),
        ins("text column, parameter declared varchar", "s", Type::VARCHAR, "{S1}", Some("{S1}")),
        ins("text column, parameter declared name", "s", Type::NAME, "{S1}", Some("{S1}")),
        ins("text column, parameter declared unknown", "s", Type::UNKNOWN, "{S1}", Some("{S1}")),
        ins("text column, parameter declared json", "s", Type::JSON, "\"{S1}\"", Some("\"{S1}\"")),
        ins("int4 column, parameter declared int8", "i", Type::INT8, "42", Some("42")),
        ins("int4 column, parameter declared int2", "i", Type::INT2, "42", Some("42")),
        ins("int4 column, parameter declared text", "i", Type::TEXT, "42", Some("42")),
        ins("int4 column, parameter declared numeric", "i", Type::NUMERIC, "41.5", Some("42")),
        ins("numeric column, parameter declared int4", "n", Type::INT4, "42", Some("42")),
        ins("numeric column, parameter declared float8", "n", Type::FLOAT8, "0.1", Some("0.1")),
        ins("varchar column, parameter declared text", "v", Type::TEXT, "{S1}", Some("{S1}")),
        ins("jsonb column, parameter declared json", "j", Type::JSON, "{\"b\": 1, \"a\": 2}", Some("{\"a\": 2, \"b\": 1}")),
        ins("jsonb column, parameter declared text", "j", Type::TEXT, "{\"a\": \"{S1}\"}", Some("{\"a\": \"{S1}\"}")),
        ins("date column, parameter declared timestamp", "d", Type::TIMESTAMP, "2020-02-01 10:00:00", Some("2020-02-01")),
        ins("date column, parameter declared text", "d", Type::TEXT, "2020-02-01", Some("2020-02-01")),
        ins("bytea column, parameter declared text", "b", Type::TEXT, "\\x0102", Some("\\x0102")),
        probe(TYPED, "WHERE on a text column with a parameter declared bytea")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .attack_p("SELECT id FROM {t} WHERE s = $1", vec![t("\\x{H1}")])
            .typed(&[Type::BYTEA])
            .expect(Expect::Safe(vec![]))
            .on(&[Driver::ExtText, Driver::ExtBin]),
        probe(TYPED, "UPDATE SET with a parameter declared bytea")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("old")])
            .attack_p("UPDATE {t} SET s = $1 WHERE id = 1", vec![t("\\x{H1}")])
            .typed(&[Type::BYTEA])
            .expect(Expect::Safe(vec![enc("s", 1, Some("\\x{H1}"))]))
            .on(&[Driver::ExtText]),
        probe(TYPED, "plaintext as a bytea hex literal into a text column")
            .attack("INSERT INTO {t} (id, s) VALUES (1, '\\x{H1}'::bytea)")
            .expect(Expect::Safe(vec![enc("s", 1, Some("\\x{H1}"))]))
            .on(SIMPLE),
        probe(TYPED, "plaintext through decode(hex) into a text column")
            .attack("INSERT INTO {t} (id, s) VALUES (1, decode('{H1}', 'hex'))")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(TYPED, "plaintext bytes into the bytea rules column")
            .attack("INSERT INTO {t} (id, b) VALUES (1, '\\x{H1}')")
            .expect(Expect::Encrypted(vec![enc("b", 1, Some("\\x{H1}"))]))
            .on(TWO),
        probe(TYPED, "a plain bytea column copied into an encrypted column")
            .direct("CREATE TABLE {x}_p (id int, s bytea); INSERT INTO {x}_p VALUES (1, convert_to('{M1}', 'UTF8'))")
            .attack("INSERT INTO {t} (id, s) SELECT id, s FROM {x}_p")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(TYPED, "INSERT … TABLE plain_bytea_table")
            .direct("CREATE TABLE {x}_p (id int, s bytea); INSERT INTO {x}_p VALUES (1, convert_to('{M1}', 'UTF8'))")
            .attack("INSERT INTO {t} (id, s) TABLE {x}_p")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(TYPED, "UPDATE SET encrypted = plain bytea FROM plain table")
            .direct("CREATE TABLE {x}_p (id int, s bytea); INSERT INTO {x}_p VALUES (1, convert_to('{M1}', 'UTF8')); INSERT INTO {t} (id) VALUES (1)")
            .attack("UPDATE {t} SET s = p.s FROM {x}_p p WHERE {t}.id = p.id")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(TYPED, "a scalar sub-select of a plain bytea column")
            .direct("CREATE TABLE {x}_p (id int, s bytea); INSERT INTO {x}_p VALUES (1, convert_to('{M1}', 'UTF8'))")
            .attack("INSERT INTO {t} (id, s) VALUES (1, (SELECT s FROM {x}_p))")
            .expect(Expect::Refused)
            .on(SIMPLE),
    ]
}

fn transactions() -> Vec<Probe> {
    let s1 = || vec![t("{S1}")];
    let back = |name: &str, steps: &[&str]| {
        let mut p = probe(TX, name)
            .direct(SHADOW)
            .setup("SET search_path = public");
        for s in steps {
            p = p.setup(s);
        }
        p.attack_p("INSERT INTO {t} (id, s) VALUES (1, $1)", s1())
            .expect(Expect::Encrypted(vec![enc("s", 1, Some("{S1}"))]))
            .on(TWO)
    };
    vec![
        back("SET inside a rolled-back transaction", &["BEGIN", "SET search_path = {x}, public", "ROLLBACK"]),
        back("SET LOCAL, then COMMIT", &["BEGIN", "SET LOCAL search_path = {x}, public", "COMMIT"]),
        back("SET inside a transaction aborted by an error, then ROLLBACK", &["BEGIN", "SET search_path = {x}, public", "SAVEPOINT a", "RELEASE a", "ROLLBACK"]),
        back("set_config(…, true), then COMMIT", &["BEGIN", "SELECT set_config('search_path', '{x}, public', true)", "COMMIT"]),
        back("SET inside a savepoint rolled back", &["BEGIN", "SAVEPOINT a", "SET search_path = {x}, public", "ROLLBACK TO SAVEPOINT a", "COMMIT"]),
        probe(TX, "SET and INSERT in one simple Query (shadow)")
            .direct(SHADOW)
            .attack("SET search_path = {x}, public; INSERT INTO {t} (id, s) VALUES (1, '{M1}')")
            .expect(Expect::Safe(vec![plain("{x}.{t}", "s", 1, Some("{M1}")), count("public.{t}", 0)]))
            .on(&[Driver::Simple, Driver::Psql]),
        probe(TX, "SET back to public and INSERT in one simple Query")
            .direct(SHADOW)
            .setup("SET search_path = {x}, public")
            .attack("SET search_path = public; INSERT INTO {t} (id, s) VALUES (1, '{S1}')")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(&[Driver::Simple, Driver::Psql]),
        probe(TX, "set_config and INSERT in one simple Query")
            .direct(SHADOW)
            .setup("SET search_path = {x}, public")
            .attack("SELECT set_config('search_path', 'public', false); INSERT INTO {t} (id, s) VALUES (1, '{S1}')")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(SIMPLE),
        probe(TX, "RESET ALL after SET search_path")
            .direct(SHADOW)
            .setup("SET search_path = {x}, public")
            .setup("RESET ALL")
            .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1)", s1())
            .expect(Expect::Encrypted(vec![enc("s", 1, Some("{S1}"))]))
            .on(SIMPLE),
        probe(TX, "standard_conforming_strings back on after RESET ALL")
            .setup("SET standard_conforming_strings = off")
            .setup("RESET ALL")
            .attack("INSERT INTO {t} (id, s) VALUES (1, '{S1}\\')")
            .expect(Expect::Encrypted(vec![enc("s", 1, Some("{S1}\\"))]))
            .on(SIMPLE),
    ]
}

fn copy() -> Vec<Probe> {
    vec![
        probe(COPY, "psql \\copy FROM PROGRAM (client side) in csv")
            .attack("\\copy {t} (id, s) from program 'echo 1,{S1}' csv")
            .expect(Expect::Encrypted(vec![enc("s", 1, Some("{S1}"))]))
            .on(&[Driver::Psql]),
        probe(COPY, "psql \\copy FROM PROGRAM with a quoted csv field")
            .attack("\\copy {t} (id, s, r) from program 'echo 1,\\\"{S1},x\\\",{S2}' csv")
            .expect(Expect::Encrypted(vec![enc("s", 1, Some("{S1},x")), enc("r", 1, Some("{S2}"))]))
            .on(&[Driver::Psql]),
        probe(COPY, "psql \\copy FROM PROGRAM with a custom delimiter and NULL")
            .attack("\\copy {t} (id, s, r) from program 'echo \"1|{S1}|NIL\"' with (format text, delimiter '|', null 'NIL')")
            .expect(Expect::Encrypted(vec![enc("s", 1, Some("{S1}")), enc("r", 1, None)]))
            .on(&[Driver::Psql]),
        probe(COPY, "psql \\copy FROM PROGRAM without a column list")
            .attack("\\copy {t} from program 'echo 1,{S1},,,,,,,,' csv")
            .expect(Expect::Encrypted(vec![enc("s", 1, Some("{S1}"))]))
            .on(&[Driver::Psql]),
        probe(COPY, "COPY (SELECT encrypted) TO STDOUT decrypts")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .attack("COPY (SELECT s FROM {t}) TO STDOUT")
            .rows(&[&[Some("{S1}")]])
            .expect(Expect::Encrypted(vec![]))
            .on(&[Driver::Psql]),
        probe(COPY, "COPY table (col) TO STDOUT csv FORCE_QUOTE *")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .attack("COPY {t} (s) TO STDOUT WITH (FORMAT csv, FORCE_QUOTE *)")
            .rows(&[&[Some("\"{S1}\"")]])
            .expect(Expect::Safe(vec![]))
            .on(&[Driver::Psql]),
        probe(COPY, "COPY … FROM STDIN WHERE on an encrypted column")
            .attack("\\copy {t} (id, s) from program 'echo 1,{S1}' with (format csv) where s = '{S2}'")
            .expect(Expect::Refused)
            .on(&[Driver::Psql]),
        probe(COPY, "COPY … FROM STDIN with ENCODING LATIN1")
            .attack("\\copy {t} (id, s) from program 'echo 1,{S1}' with (format csv, encoding 'LATIN1')")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(&[Driver::Psql]),
    ]
}

fn ddl() -> Vec<Probe> {
    vec![
        probe(DDL, "CREATE TABLE OF a type with a text column onto a rules name")
            .direct("CREATE TYPE {x}_ty AS (id int, s text)")
            .setup("DROP TABLE {t}")
            .attack("CREATE TABLE {t} OF {x}_ty")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "CREATE TABLE (LIKE plain) onto a rules name")
            .direct("CREATE TABLE {x}_p (id int, s text)")
            .setup("DROP TABLE {t}")
            .attack("CREATE TABLE {t} (LIKE {x}_p)")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "an INSERT into a rules table that does not exist (yet)")
            .setup("DROP TABLE {t}")
            .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .expect(Expect::Refused)
            .on(TOKIO),
        probe(DDL, "DROP an encrypted column, then RENAME a text column onto its name")
            .any("ALTER TABLE {t} DROP COLUMN s")
            .attack("ALTER TABLE {t} RENAME COLUMN note TO s")
            .any("INSERT INTO {t} (id, s) VALUES (1, '{M1}')")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "DROP an encrypted column, ADD it back as text in a later statement")
            .any("ALTER TABLE {t} DROP COLUMN s")
            .attack("ALTER TABLE {t} ADD COLUMN s text")
            .any("INSERT INTO {t} (id, s) VALUES (1, '{M1}')")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "ALTER COLUMN TYPE on a plain column then RENAME onto an encrypted name")
            .any("ALTER TABLE {t} DROP COLUMN r")
            .any("ALTER TABLE {t} ALTER COLUMN note TYPE bytea USING convert_to(note, 'UTF8')")
            .attack("ALTER TABLE {t} RENAME COLUMN note TO r")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "a function replaced through pgcloak to write a rules table, then called")
            .direct("CREATE FUNCTION {x}_f(v text) RETURNS int LANGUAGE sql AS $$ SELECT 1 $$")
            .any("CREATE OR REPLACE FUNCTION {x}_f(v text) RETURNS int LANGUAGE sql AS $$ INSERT INTO {t} (id, s) VALUES (1, convert_to(v, 'UTF8')) RETURNING 1 $$")
            .attack_p("SELECT {x}_f($1)", vec![t("{M1}")])
            .expect(Expect::Safe(vec![count("public.{t}", 0)]))
            .on(TWO),
        probe(DDL, "a function created and called in one Query")
            .attack("CREATE FUNCTION {x}_g(v text) RETURNS int LANGUAGE sql AS $$ INSERT INTO {t} (id, s) VALUES (1, convert_to(v, 'UTF8')) RETURNING 1 $$; SELECT {x}_g('{S1}')")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "ALTER COLUMN TYPE bytea (no change) passes")
            .attack("ALTER TABLE {t} ALTER COLUMN s TYPE bytea")
            .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .expect(Expect::Encrypted(vec![enc("s", 1, Some("{S1}"))]))
            .on(SIMPLE),
        probe(DDL, "ALTER TABLE … ALTER COLUMN … SET DEFAULT NULL")
            .attack("ALTER TABLE {t} ALTER COLUMN s SET DEFAULT NULL")
            .any("INSERT INTO {t} (id) VALUES (1)")
            .expect(Expect::Safe(vec![enc("s", 1, None)]))
            .on(SIMPLE),
        probe(DDL, "ALTER TABLE … ADD COLUMN bytea GENERATED from a plaintext")
            .attack("ALTER TABLE {t} DROP COLUMN s, ADD COLUMN s bytea GENERATED ALWAYS AS (convert_to(note, 'UTF8')) STORED")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(DDL, "ALTER TABLE … ALTER COLUMN … ADD GENERATED AS IDENTITY on a plain id")
            .attack("ALTER TABLE {t} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY")
            .attack_p("INSERT INTO {t} (s) VALUES ($1)", vec![t("{S1}")])
            .expect(Expect::Safe(vec![]))
            .on(SIMPLE),
    ]
}

fn values() -> Vec<Probe> {
    vec![
        fid("text with a NUL byte is an error", "s", "E'a\\x00b'"),
        fid(
            "text with an invalid UTF-8 byte is an error",
            "s",
            "E'a\\xffb'",
        ),
        fid("text with an octal escape beyond a byte", "s", "E'\\777'"),
        fid("text E'' unicode escape", "s", "E'\\u00e9\\U0001F600'"),
        fid("text U&'' surrogate pair", "s", "U&'\\D83D\\DE00'"),
        fid("text U&'' lone surrogate is an error", "s", "U&'\\D800'"),
        fid(
            "varchar(3) counts characters, not bytes",
            "v",
            "'ééé€'::varchar(3)",
        ),
        fid("varchar(3) of trailing spaces", "v", "'abc  '::varchar(3)"),
        fid("numeric 1e-3", "n", "1e-3"),
        fid(
            "numeric with many digits",
            "n",
            "123456789012345678901234567890.123456789",
        ),
        fid(
            "numeric(2,-1) (negative scale, PostgreSQL 15+)",
            "n",
            "'149'::numeric(2,-1)",
        ),
        fid(
            "jsonb with a \\u0000 escape is an error",
            "j",
            "'{\"a\": \"\\u0000\"}'",
        ),
        fid(
            "jsonb number normalisation",
            "j",
            "'{\"x\": 1e2, \"y\": 1.50}'",
        ),
        fid("jsonb from json", "j", "'{\"b\": 1, \"a\": 2}'::json"),
        fid(
            "date from a timestamp",
            "d",
            "'2020-02-01 23:59:59'::timestamp",
        ),
        fid("date from current_date", "d", "current_date"),
        fid("date arithmetic", "d", "'2020-02-28'::date + 2"),
        fid("bytea hex with spaces", "b", "'\\x01 02'"),
        fid("bytea odd hex digits is an error", "b", "'\\x012'"),
        fid("bytea from a text cast", "b", "'abc'::text::bytea"),
        probe("fidelity", "int4 from a parameter with a fraction in text")
            .attack_p("INSERT INTO {t} (id, i) VALUES (1, $1)", vec![t("5.7")])
            .expect(Expect::Refused)
            .on(TWO),
        probe("fidelity", "numeric parameter with exponent in text")
            .attack_p("INSERT INTO {t} (id, n) VALUES (1, $1)", vec![t("1.5E+3")])
            .expect(Expect::Safe(vec![enc("n", 1, Some("1500"))]))
            .on(TWO),
    ]
}

fn messages() -> Vec<Probe> {
    vec![
        probe(MSG, "composite UNIQUE violation DETAIL")
            .direct("ALTER TABLE {t} ADD UNIQUE (s, v)")
            .setup_p(
                "INSERT INTO {t} (id, s, v) VALUES (1, $1, $2)",
                vec![t("{S1}"), t("{S2}")],
            )
            .attack_p(
                "INSERT INTO {t} (id, s, v) VALUES (2, $1, $2)",
                vec![t("{S1}"), t("{S2}")],
            )
            .expect(Expect::ServerError("23505"))
            .on(TWO),
        probe(MSG, "UNIQUE violation inside one multi-row INSERT")
            .direct("ALTER TABLE {t} ADD UNIQUE (s)")
            .attack_p(
                "INSERT INTO {t} (id, s) VALUES (1, $1), (2, $1)",
                vec![t("{S1}")],
            )
            .expect(Expect::ServerError("23505"))
            .on(TWO),
        probe(MSG, "exclusion constraint violation DETAIL")
            .direct("ALTER TABLE {t} ADD CONSTRAINT {x}_ex EXCLUDE USING btree (s WITH =)")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .attack_p("INSERT INTO {t} (id, s) VALUES (2, $1)", vec![t("{S1}")])
            .expect(Expect::ServerError("23P01"))
            .on(TWO),
        probe(MSG, "CREATE UNIQUE INDEX over duplicate encrypted values")
            .setup_p(
                "INSERT INTO {t} (id, s) VALUES (1, $1), (2, $1)",
                vec![t("{S1}")],
            )
            .attack("CREATE UNIQUE INDEX {x}_u ON {t} (s)")
            .expect(Expect::ServerError("23505"))
            .on(SIMPLE),
        probe(
            MSG,
            "ON CONFLICT DO UPDATE hitting a second unique constraint",
        )
        .direct("ALTER TABLE {t} ADD UNIQUE (s)")
        .setup_p(
            "INSERT INTO {t} (id, s) VALUES (1, $1), (2, $2)",
            vec![t("{S1}"), t("{S2}")],
        )
        .attack_p(
            "INSERT INTO {t} (id, s) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET s = EXCLUDED.s",
            vec![t("{S2}")],
        )
        .expect(Expect::ServerError("23505"))
        .on(TWO),
        probe(MSG, "CHECK violation on UPDATE")
            .direct("ALTER TABLE {t} ADD CHECK (id < 100)")
            .setup_p(
                "INSERT INTO {t} (id, s, r) VALUES (1, $1, $2)",
                vec![t("{S1}"), t("{S2}")],
            )
            .attack("UPDATE {t} SET id = 100")
            .expect(Expect::ServerError("23514"))
            .on(TWO),
        probe(MSG, "NOT NULL violation on an encrypted column")
            .direct("ALTER TABLE {t} ALTER COLUMN s SET NOT NULL")
            .attack_p(
                "INSERT INTO {t} (id, r, v) VALUES (1, $1, $2)",
                vec![t("{S1}"), t("{S2}")],
            )
            .expect(Expect::ServerError("23502"))
            .on(TWO),
        probe(MSG, "an error in a later row of a multi-row INSERT")
            .attack_p(
                "INSERT INTO {t} (id, s) VALUES (1, $1), (1, $2)",
                vec![t("{S1}"), P::Null],
            )
            .expect(Expect::ServerError("23505"))
            .on(TWO),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_aliases_typed_and_transactions() {
    let mut p = aliases();
    p.extend(typed_params());
    p.extend(transactions());
    run_suite(p)
        .await
        .assert_all_passed("aliases, typed parameters, transactions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_copy_ddl_values_and_messages() {
    let mut p = copy();
    p.extend(ddl());
    p.extend(values());
    p.extend(messages());
    run_suite(p)
        .await
        .assert_all_passed("copy, ddl, values, messages");
}
