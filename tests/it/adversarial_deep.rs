//! Adversarial probes, third round: hidden outputs (every way a query can hand an encrypted
//! column back: set operations, scalar and lateral sub-selects, CASE, arrays, `TABLE`, temp
//! copies, RETURNING variants, EXPLAIN), statements that execute what they wrap (`EXPLAIN
//! ANALYZE`, `COPY (INSERT … RETURNING)`, cursors), one parameter used for an encrypted and a
//! plain target, inheritance and partition parents created around pgcloak, `set_config`
//! spellings and places (qualified, named arguments, in a CTE, a cursor, a view), role
//! switches that change `$user`, and what a refused statement does to the transaction.

use crate::adversarial::{
    Driver, Expect, Probe, SIMPLE, TOKIO, TWO, count, enc, plain, probe, run_suite, t,
};

const OUT: &str = "outputs";
const EXEC: &str = "wrapped";
const PARAM: &str = "param-reuse";
const INH: &str = "inheritance";
const PATH: &str = "search_path";
const TXN: &str = "transactions";

const SHADOW: &str =
    "CREATE SCHEMA {x}; CREATE TABLE {x}.{t} (id int PRIMARY KEY, s text, note text);";

fn outputs() -> Vec<Probe> {
    let q = |name: &str, sql: &str, rows: &[&[Option<&str>]]| {
        probe(OUT, name)
            .setup_p(
                "INSERT INTO {t} (id, s, v, r) VALUES (1, $1, $2, $3)",
                vec![t("{S1}"), t("{S2}"), t("{S3}")],
            )
            .attack(sql)
            .rows(rows)
            .expect(Expect::Safe(vec![]))
            .on(TWO)
    };
    let s1: &[&[Option<&str>]] = &[&[Some("{S1}")]];
    vec![
        q(
            "TABLE command",
            "TABLE {t}",
            &[&[
                Some("1"),
                Some("{S1}"),
                Some("{S3}"),
                None,
                None,
                Some("{S2}"),
                None,
                None,
                None,
                None,
            ]],
        ),
        q("SELECT * FROM ONLY", "SELECT s FROM ONLY {t}", s1),
        q(
            "TABLESAMPLE",
            "SELECT s FROM {t} TABLESAMPLE SYSTEM (100)",
            s1,
        ),
        q("FOR UPDATE", "SELECT s FROM {t} FOR UPDATE", s1),
        q("DISTINCT ON", "SELECT DISTINCT ON (s) s FROM {t}", s1),
        q(
            "GROUP BY the encrypted column",
            "SELECT s FROM {t} GROUP BY s",
            s1,
        ),
        q(
            "UNION of the same column",
            "SELECT s FROM {t} UNION SELECT s FROM {t}",
            s1,
        ),
        q(
            "UNION ALL with a plain literal",
            "SELECT s FROM {t} UNION ALL SELECT 'x'",
            &[&[Some("{S1}")], &[Some("x")]],
        ),
        q(
            "INTERSECT",
            "SELECT s FROM {t} INTERSECT SELECT s FROM {t}",
            s1,
        ),
        q(
            "EXCEPT",
            "SELECT s FROM {t} EXCEPT SELECT s FROM {t} WHERE false",
            s1,
        ),
        q(
            "scalar sub-select in the target list",
            "SELECT (SELECT s FROM {t} LIMIT 1)",
            s1,
        ),
        q(
            "LATERAL sub-select",
            "SELECT x.y FROM {t}, LATERAL (SELECT {t}.s AS y) x",
            s1,
        ),
        q(
            "ARRAY(SELECT …)",
            "SELECT ARRAY(SELECT s FROM {t})",
            &[&[Some("{{S1}}")]],
        ),
        q(
            "CASE returning the column",
            "SELECT CASE WHEN id = 1 THEN s END FROM {t}",
            s1,
        ),
        q(
            "CASE mixing columns with different keys",
            "SELECT CASE WHEN id = 1 THEN s ELSE v END FROM {t}",
            s1,
        ),
        q("NULLIF", "SELECT NULLIF(s, NULL) FROM {t}", s1),
        q("GREATEST", "SELECT GREATEST(s, s) FROM {t}", s1),
        q(
            "an alias named like another encrypted column",
            "SELECT s AS v, v AS s FROM {t}",
            &[&[Some("{S1}"), Some("{S2}")]],
        ),
        q(
            "a sub-select in FROM with a renamed column",
            "SELECT q.z FROM (SELECT s AS z FROM {t}) q",
            s1,
        ),
        q(
            "a CTE over the rules table",
            "WITH c AS (SELECT s FROM {t}) SELECT s FROM c",
            s1,
        ),
        q(
            "a recursive CTE over the rules table",
            "WITH RECURSIVE c(s, n) AS (SELECT s, 1 FROM {t} UNION ALL SELECT s, n + 1 FROM c WHERE n < 2) SELECT s FROM c WHERE n = 2",
            s1,
        ),
        q(
            "VALUES with a sub-select",
            "VALUES ((SELECT s FROM {t}))",
            s1,
        ),
        q(
            "a window function's partition",
            "SELECT s, count(*) OVER (PARTITION BY s) FROM {t}",
            &[&[Some("{S1}"), Some("1")]],
        ),
        q(
            "jsonb_build_object with the column",
            "SELECT jsonb_build_object('s', s) FROM {t}",
            &[],
        ),
        q("json_agg of the column", "SELECT json_agg(s) FROM {t}", &[]),
        q(
            "format() of the column",
            "SELECT format('%s', s) FROM {t}",
            &[],
        ),
        q("concat() of the column", "SELECT concat(s) FROM {t}", &[]),
        q(
            "the column through a row constructor",
            "SELECT ROW(s) FROM {t}",
            &[],
        ),
        probe(OUT, "a temp table copy of the encrypted column, read back")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .any("CREATE TEMP TABLE {x}_tmp AS SELECT s FROM {t}")
            .attack("SELECT s FROM {x}_tmp")
            .expect(Expect::Safe(vec![]))
            .on(TWO),
        probe(
            OUT,
            "INSERT … SELECT of the encrypted column into a plain bytea table, read back",
        )
        .direct("CREATE TABLE {x}_p (s bytea)")
        .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
        .any("INSERT INTO {x}_p SELECT s FROM {t}")
        .attack("SELECT s FROM {x}_p")
        .expect(Expect::Safe(vec![]))
        .on(TWO),
        probe(OUT, "RETURNING the whole row")
            .attack_p(
                "INSERT INTO {t} (id, s) VALUES (1, $1) RETURNING {t}",
                vec![t("{S1}")],
            )
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(TWO),
        probe(OUT, "RETURNING * after UPDATE")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("old")])
            .attack_p(
                "UPDATE {t} SET r = $1 WHERE id = 1 RETURNING *",
                vec![t("{S1}")],
            )
            .rows(&[&[
                Some("1"),
                Some("old"),
                Some("{S1}"),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
            ]])
            .expect(Expect::Encrypted(vec![enc("r", 1, Some("{S1}"))]))
            .on(TOKIO),
        probe(OUT, "RETURNING a scalar sub-select of the rules table")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .attack("UPDATE {t} SET note = 'n' RETURNING (SELECT s FROM {t} LIMIT 1)")
            .rows(&[&[Some("{S1}")]])
            .expect(Expect::Safe(vec![]))
            .on(TWO),
        probe(OUT, "RETURNING the column under a different alias")
            .attack_p(
                "INSERT INTO {t} (id, s) VALUES (1, $1) RETURNING s AS id",
                vec![t("{S1}")],
            )
            .rows(&[&[Some("{S1}")]])
            .expect(Expect::Encrypted(vec![enc("s", 1, Some("{S1}"))]))
            .on(TOKIO),
    ]
}

fn wrapped() -> Vec<Probe> {
    vec![
        probe(EXEC, "EXPLAIN ANALYZE INSERT")
            .attack("EXPLAIN ANALYZE INSERT INTO {t} (id, s) VALUES (1, '{S1}')")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(SIMPLE),
        probe(EXEC, "EXPLAIN (ANALYZE, FORMAT JSON) UPDATE")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("old")])
            .attack("EXPLAIN (ANALYZE, FORMAT JSON) UPDATE {t} SET s = '{S1}' WHERE id = 1")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(SIMPLE),
        probe(EXEC, "EXPLAIN ANALYZE of a parameterised INSERT")
            .attack_p("EXPLAIN ANALYZE INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(&[Driver::ExtText, Driver::ExtBin]),
        probe(EXEC, "EXPLAIN ANALYZE EXECUTE of a prepared INSERT")
            .any("PREPARE {x}p(text) AS INSERT INTO {t} (id, s) VALUES (1, $1)")
            .attack("EXPLAIN ANALYZE EXECUTE {x}p('{S1}')")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(SIMPLE),
        probe(EXEC, "COPY (INSERT … RETURNING) TO STDOUT")
            .attack("COPY (INSERT INTO {t} (id, s) VALUES (1, '{S1}') RETURNING id) TO STDOUT")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(&[Driver::Psql]),
        probe(EXEC, "COPY (UPDATE … RETURNING the column) TO STDOUT")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("old")])
            .attack("COPY (UPDATE {t} SET s = '{S1}' WHERE id = 1 RETURNING s) TO STDOUT")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(&[Driver::Psql]),
        probe(EXEC, "COPY (DELETE … RETURNING the column) TO STDOUT")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .attack("COPY (DELETE FROM {t} WHERE s = '{S1}' RETURNING s) TO STDOUT")
            .rows(&[&[Some("{S1}")]])
            .expect(Expect::Safe(vec![]))
            .on(&[Driver::Psql]),
        probe(EXEC, "DECLARE CURSOR with a literal in WHERE")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .setup("BEGIN")
            .attack("DECLARE {x}c CURSOR FOR SELECT id FROM {t} WHERE s = '{S1}'")
            .attack("FETCH ALL FROM {x}c")
            .rows(&[&[Some("1")]])
            .any("COMMIT")
            .expect(Expect::Safe(vec![]))
            .on(TWO),
        probe(EXEC, "DECLARE CURSOR WITH HOLD, FETCH after COMMIT")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .setup("BEGIN")
            .attack("DECLARE {x}c CURSOR WITH HOLD FOR SELECT s FROM {t}")
            .setup("COMMIT")
            .attack("FETCH NEXT FROM {x}c")
            .rows(&[&[Some("{S1}")]])
            .expect(Expect::Safe(vec![]))
            .on(TWO),
        probe(EXEC, "a cursor opened by a function, fetched by the client")
            .direct("CREATE FUNCTION {x}_open(c refcursor) RETURNS refcursor LANGUAGE plpgsql AS $$ BEGIN OPEN c FOR SELECT s FROM public.{t}; RETURN c; END $$")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .setup("BEGIN")
            .any("SELECT {x}_open('{x}cur')")
            .attack("FETCH ALL FROM {x}cur")
            .any("COMMIT")
            .expect(Expect::Safe(vec![]))
            .on(SIMPLE),
    ]
}

/// A parameter used for an encrypted target and elsewhere (drivers chosen by the caller).
pub fn param_reuse_shared() -> Vec<Probe> {
    vec![
        probe(PARAM, "one parameter for an encrypted and a plain column")
            .attack_p(
                "INSERT INTO {t} (id, s, note) VALUES (1, $1, $1)",
                vec![t("{M1}")],
            )
            .expect(Expect::Encrypted(vec![
                enc("s", 1, Some("{M1}")),
                plain("public.{t}", "note", 1, Some("{M1}")),
            ])),
        probe(
            PARAM,
            "one parameter for two encrypted columns with different keys",
        )
        .attack_p(
            "INSERT INTO {t} (id, s, v) VALUES (1, $1, $1)",
            vec![t("{S1}")],
        )
        .expect(Expect::Encrypted(vec![
            enc("s", 1, Some("{S1}")),
            enc("v", 1, Some("{S1}")),
        ])),
        probe(
            PARAM,
            "one parameter in SET of an encrypted column and WHERE of a plain one",
        )
        .direct("INSERT INTO {t} (id, note) VALUES (1, '{M1}')")
        .attack_p("UPDATE {t} SET s = $1 WHERE note = $1", vec![t("{M1}")])
        .expect(Expect::Encrypted(vec![enc("s", 1, Some("{M1}"))])),
        probe(
            PARAM,
            "one parameter in WHERE of an encrypted column and the target list",
        )
        .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{M1}")])
        .attack_p("SELECT $1::text, id FROM {t} WHERE s = $1", vec![t("{M1}")])
        .rows(&[&[Some("{M1}"), Some("1")]])
        .expect(Expect::Encrypted(vec![])),
        probe(
            PARAM,
            "one parameter for a randomized and a deterministic column",
        )
        .attack_p(
            "INSERT INTO {t} (id, s, r) VALUES (1, $1, $1)",
            vec![t("{S1}")],
        )
        .expect(Expect::Encrypted(vec![
            enc("s", 1, Some("{S1}")),
            enc("r", 1, Some("{S1}")),
        ])),
    ]
}

fn param_reuse() -> Vec<Probe> {
    let mut v: Vec<Probe> = param_reuse_shared()
        .into_iter()
        .map(|p| p.on(SIMPLE))
        .collect();
    v.extend([
        probe(
            PARAM,
            "one parameter for an encrypted column and in a plain expression",
        )
        .attack_p(
            "INSERT INTO {t} (id, s) VALUES (length($1), $1)",
            vec![t("{M1}")],
        )
        .expect(Expect::Safe(vec![enc("s", 23, Some("{M1}"))]))
        .on(TOKIO),
        probe(PARAM, "parameters out of order")
            .attack_p(
                "INSERT INTO {t} (id, s, r) VALUES (1, $2, $1)",
                vec![t("{S1}"), t("{S2}")],
            )
            .expect(Expect::Encrypted(vec![
                enc("s", 1, Some("{S2}")),
                enc("r", 1, Some("{S1}")),
            ]))
            .on(TOKIO),
        probe(PARAM, "a parameter for an int4 column and a LIMIT")
            .setup_p("INSERT INTO {t} (id, i) VALUES (1, $1)", vec![t("7")])
            .attack_p(
                "SELECT id FROM {t} WHERE i = $1 LIMIT $2",
                vec![t("7"), t("5")],
            )
            .rows(&[&[Some("1")]])
            .expect(Expect::Encrypted(vec![]))
            .on(&[Driver::ExtText, Driver::ExtBin]),
    ]);
    v
}

fn inheritance() -> Vec<Probe> {
    let parent = "CREATE TABLE {x}_par (id int, s bytea, r bytea, i bytea, n bytea, v bytea, d bytea, j bytea, b bytea, note text); ALTER TABLE {t} INHERIT {x}_par";
    vec![
        probe(INH, "UPDATE through a plain parent of the rules table (inherited around pgcloak)")
            .direct(parent)
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("old")])
            .attack("UPDATE {x}_par SET s = convert_to('{M1}', 'UTF8')")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(INH, "UPDATE through a plain parent with a bytea literal")
            .direct(parent)
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("old")])
            .attack("UPDATE {x}_par SET s = '{S1}'")
            .expect(Expect::Refused)
            .on(TWO),
        probe(INH, "SELECT through a plain parent of the rules table")
            .direct(parent)
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .attack("SELECT s FROM {x}_par")
            .rows(&[&[Some("{S1}")]])
            .expect(Expect::Safe(vec![]))
            .on(TWO),
        probe(INH, "INSERT routed through a partitioned parent into the rules table")
            .direct("CREATE TABLE {x}_pt (id int NOT NULL, s bytea, r bytea, i bytea, n bytea, v bytea, d bytea, j bytea, b bytea, note text) PARTITION BY RANGE (id); ALTER TABLE {x}_pt ATTACH PARTITION {t} FOR VALUES FROM (0) TO (1000)")
            .attack("INSERT INTO {x}_pt (id, s) VALUES (1, '{S1}')")
            .expect(Expect::Refused)
            .on(TWO),
        probe(INH, "ALTER TABLE rules INHERIT a plain parent through pgcloak")
            .direct("CREATE TABLE {x}_par (id int, s bytea, r bytea, i bytea, n bytea, v bytea, d bytea, j bytea, b bytea, note text)")
            .attack("ALTER TABLE {t} INHERIT {x}_par")
            .any("UPDATE {x}_par SET s = convert_to('{M1}', 'UTF8')")
            .expect(Expect::Refused)
            .on(SIMPLE),
        probe(INH, "ATTACH the rules table to a partitioned parent through pgcloak")
            .direct("CREATE TABLE {x}_pt (id int NOT NULL, s bytea, r bytea, i bytea, n bytea, v bytea, d bytea, j bytea, b bytea, note text) PARTITION BY RANGE (id)")
            .attack("ALTER TABLE {x}_pt ATTACH PARTITION {t} FOR VALUES FROM (0) TO (1000)")
            .any("INSERT INTO {x}_pt (id, s) VALUES (1, convert_to('{M1}', 'UTF8'))")
            .expect(Expect::Refused)
            .on(SIMPLE),
    ]
}

/// pgcloak reads the shadow first; the server ends on `public` (the rules table) by `how`: a
/// sentinel must be encrypted into public.{t}, or refused.
pub fn set_config_back(name: &str, how: &str) -> Probe {
    probe(PATH, &format!("path back to the rules table via {name}"))
        .direct(SHADOW)
        .setup("SET search_path = {x}, public")
        .any(how)
        .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
        .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
}

/// The ways back to `public` (name, statement).
pub const WAYS_BACK: &[(&str, &str)] = &[
    (
        "pg_catalog.set_config",
        "SELECT pg_catalog.set_config('search_path', 'public', false)",
    ),
    (
        "upper-case SET_CONFIG",
        "SELECT PG_CATALOG.SET_CONFIG('search_path', 'public', false)",
    ),
    (
        "quoted \"set_config\"",
        "SELECT \"set_config\"('search_path', 'public', false)",
    ),
    (
        "set_config in a CTE",
        "WITH q AS (SELECT set_config('search_path', 'public', false)) SELECT * FROM q",
    ),
    (
        "set_config in FROM",
        "SELECT * FROM set_config('search_path', 'public', false)",
    ),
    (
        "set_config over generate_series",
        "SELECT set_config('search_path', 'public', false) FROM generate_series(1, 1)",
    ),
    (
        "set_config with the name in upper case",
        "SELECT set_config('SEARCH_PATH', 'public', false)",
    ),
    ("SET \"search_path\" quoted", "SET \"search_path\" = public"),
    (
        "SET SESSION search_path",
        "SET SESSION search_path TO public",
    ),
];

/// `RESET ROLE` from a role whose `$user` schema holds a shadow.
pub fn reset_role() -> Probe {
    probe(PATH, "RESET ROLE back from a role whose $user schema holds a shadow")
        .direct_su("CREATE ROLE {x}r; GRANT {x}r TO app; CREATE SCHEMA {x}r AUTHORIZATION {x}r; CREATE TABLE {x}r.{t} (id int PRIMARY KEY, s text); ALTER TABLE {x}r.{t} OWNER TO {x}r")
        .setup("SET ROLE {x}r")
        .setup("SELECT 1")
        .setup("RESET ROLE")
        .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
        .expect(Expect::Encrypted(vec![enc("s", 1, Some("{S1}"))]))
}

fn set_config_variants() -> Vec<Probe> {
    let mut v: Vec<Probe> = WAYS_BACK
        .iter()
        .map(|(name, how)| set_config_back(name, how).on(SIMPLE))
        .collect();
    v.push(reset_role().on(SIMPLE));
    v.extend([
        probe(PATH, "path back to the rules table via a cursor over set_config")
            .direct(SHADOW)
            .setup("SET search_path = {x}, public")
            .setup("BEGIN")
            .any("DECLARE {x}c CURSOR FOR SELECT set_config('search_path', 'public', false)")
            .any("FETCH ALL FROM {x}c")
            .any("COMMIT")
            .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{M1}")])
            .expect(Expect::Safe(vec![]))
            .on(SIMPLE),
        probe(PATH, "SET ROLE to a role whose $user schema holds a shadow")
            .direct_su("CREATE ROLE {x}r; GRANT {x}r TO app; CREATE SCHEMA {x}r AUTHORIZATION {x}r; CREATE TABLE {x}r.{t} (id int PRIMARY KEY, s text); ALTER TABLE {x}r.{t} OWNER TO {x}r")
            .setup("SET ROLE {x}r")
            .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{M1}")])
            .expect(Expect::Safe(vec![plain("{x}r.{t}", "s", 1, Some("{M1}")), count("public.{t}", 0)]))
            .on(TWO),
        probe(PATH, "SET SESSION AUTHORIZATION is a superuser statement (refused by the server)")
            .attack("SET SESSION AUTHORIZATION postgres")
            .expect(Expect::Refused)
            .on(SIMPLE),
    ]);
    v
}

fn transactions() -> Vec<Probe> {
    vec![
        probe(
            TXN,
            "a refused statement aborts the transaction (COMMIT stores nothing)",
        )
        .setup("BEGIN")
        .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
        .attack("SELECT id FROM {t} WHERE s LIKE 'x%'")
        .any("COMMIT")
        .expect(Expect::RefusedThen(vec![count("public.{t}", 0)]))
        .on(TWO),
        probe(
            TXN,
            "a refused statement aborts the transaction (later statements fail)",
        )
        .setup("BEGIN")
        .attack("SELECT id FROM {t} WHERE s LIKE 'x%'")
        .any("INSERT INTO {t} (id, s) VALUES (1, 'after')")
        .any("COMMIT")
        .expect(Expect::RefusedThen(vec![count("public.{t}", 0)]))
        .on(TWO),
        probe(
            TXN,
            "a refused statement inside a savepoint, ROLLBACK TO keeps the rest",
        )
        .setup("BEGIN")
        .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
        .setup("SAVEPOINT a")
        .attack("SELECT id FROM {t} WHERE s LIKE 'x%'")
        .any("ROLLBACK TO SAVEPOINT a")
        .any("COMMIT")
        .expect(Expect::RefusedThen(vec![enc("s", 1, Some("{S1}"))]))
        .on(TWO),
        probe(
            TXN,
            "a refused statement outside a transaction leaves the session usable",
        )
        .attack("SELECT id FROM {t} WHERE s LIKE 'x%'")
        .any("SELECT 1")
        .expect(Expect::RefusedThen(vec![count("public.{t}", 0)]))
        .on(TOKIO),
    ]
}

/// One Query changes a setting and then uses it; SQL-level prepared statements replaced or
/// dropped; DO blocks that change the path; driver spread of common forms.
fn sessions() -> Vec<Probe> {
    vec![
        probe(TXN, "standard_conforming_strings=off and the backslash trick in one Query")
            .attack("SET standard_conforming_strings = off; INSERT INTO {t} (id, s, r) VALUES (1, '\\', NULL) -- ', '{M1}')")
            .expect(Expect::Safe(vec![enc("s", 1, Some("\\")), enc("r", 1, None)]))
            .on(&[Driver::Simple, Driver::Psql]),
        probe(TXN, "a trailing comment after the last statement")
            .attack("INSERT INTO {t} (id, s) VALUES (1, '{S1}'); /* tail */ -- end")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(&[Driver::Simple, Driver::Psql]),
        probe(TXN, "PREPARE replaced after DEALLOCATE, then EXECUTE with a value")
            .any("PREPARE {x}p(text) AS SELECT length($1)")
            .any("DEALLOCATE {x}p")
            .any("PREPARE {x}p(int, text) AS INSERT INTO {t} (id, s) VALUES ($1, $2)")
            .attack("EXECUTE {x}p(1, '{S1}')")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(SIMPLE),
        probe(TXN, "PREPARE replaced after DEALLOCATE ALL, then EXECUTE with a value")
            .any("PREPARE {x}p(text) AS SELECT length($1)")
            .any("DEALLOCATE ALL")
            .any("PREPARE {x}p(int, text) AS INSERT INTO {t} (id, s) VALUES ($1, $2)")
            .attack("EXECUTE {x}p(1, '{S1}')")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(SIMPLE),
        probe(TXN, "PREPARE replaced after DISCARD ALL, then EXECUTE with a value")
            .any("PREPARE {x}p(text) AS SELECT length($1)")
            .any("DISCARD ALL")
            .any("PREPARE {x}p(int, text) AS INSERT INTO {t} (id, s) VALUES ($1, $2)")
            .attack("EXECUTE {x}p(1, '{S1}')")
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(SIMPLE),
        probe(PATH, "DO block running SET moves the path back to the rules table")
            .direct(SHADOW)
            .setup("SET search_path = {x}, public")
            .any("DO $$ BEGIN SET search_path = public; END $$")
            .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{M1}")])
            .expect(Expect::Safe(vec![]))
            .on(SIMPLE),
        probe(PATH, "psycopg: the same INSERT six times across a path change (auto-prepare)")
            .direct(SHADOW)
            .setup("SELECT set_config('search_path', 'public', false)")
            .attack_p("INSERT INTO {t} (id, s) VALUES ($1, $2)", vec![crate::adversarial::P::I(1), t("{S1}")])
            .attack_p("INSERT INTO {t} (id, s) VALUES ($1, $2)", vec![crate::adversarial::P::I(2), t("{S2}")])
            .attack_p("INSERT INTO {t} (id, s) VALUES ($1, $2)", vec![crate::adversarial::P::I(3), t("{S3}")])
            .attack_p("INSERT INTO {t} (id, s) VALUES ($1, $2)", vec![crate::adversarial::P::I(4), t("{S4}")])
            .attack_p("INSERT INTO {t} (id, s) VALUES ($1, $2)", vec![crate::adversarial::P::I(5), t("{S1}")])
            .setup("SELECT set_config('search_path', '{x}, public', false)")
            .attack_p("INSERT INTO {t} (id, s) VALUES ($1, $2)", vec![crate::adversarial::P::I(6), t("{M1}")])
            .expect(Expect::Safe(vec![enc("s", 5, Some("{S1}"))]))
            .on(&[Driver::PyText, Driver::PyBin]),
        probe("fidelity", "driver: numeric(5,0) and varchar(3) casts on literals")
            .attack("INSERT INTO {t} (id, n, v) VALUES (1, '12.5'::numeric(5,0), 'abcdef'::varchar(3))")
            .expect(Expect::Safe(vec![enc("n", 1, Some("13")), enc("v", 1, Some("abc"))]))
            .on(&[Driver::Psql, Driver::PyText, Driver::Node]),
        probe("fidelity", "driver: int4, numeric, date, jsonb and bytea parameters")
            .attack_p("INSERT INTO {t} (id, i, n, d, j, b) VALUES (1, $1, $2, $3, $4, $5)", vec![t("42"), t("1.50"), t("2020-02-01"), t("{\"b\": 1, \"a\": 2}"), t("\\x0102")])
            .expect(Expect::Encrypted(vec![enc("i", 1, Some("42")), enc("n", 1, Some("1.50")), enc("d", 1, Some("2020-02-01")), enc("j", 1, Some("{\"a\": 2, \"b\": 1}")), enc("b", 1, Some("\\x0102"))]))
            .on(&[Driver::PyText, Driver::Node, Driver::Psql]),
        probe("search", "driver: IN list and = ANY with parameters")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1), (2, $2)", vec![t("{S1}"), t("{S2}")])
            .attack_p("SELECT id FROM {t} WHERE s IN ($1, $2) ORDER BY id", vec![t("{S1}"), t("{S2}")])
            .rows(&[&[Some("1")], &[Some("2")]])
            .expect(Expect::Encrypted(vec![]))
            .on(&[Driver::PyText, Driver::PyBin, Driver::PyPrep, Driver::Node, Driver::Psql]),
        probe("messages", "driver: UNIQUE violation DETAIL through psycopg binary and prepared")
            .direct("ALTER TABLE {t} ADD UNIQUE (s)")
            .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
            .attack_p("INSERT INTO {t} (id, s) VALUES (2, $1)", vec![t("{S1}")])
            .expect(Expect::ServerError("23505"))
            .on(&[Driver::PyBin, Driver::PyPrep]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_outputs_and_wrapped_statements() {
    let mut p = outputs();
    p.extend(wrapped());
    run_suite(p)
        .await
        .assert_all_passed("outputs and wrapped statements");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_params_inheritance_paths_transactions() {
    let mut p = param_reuse();
    p.extend(inheritance());
    p.extend(set_config_variants());
    p.extend(transactions());
    p.extend(sessions());
    run_suite(p)
        .await
        .assert_all_passed("params, inheritance, set_config, transactions");
}
