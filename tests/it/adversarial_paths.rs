//! Adversarial probes: what a name means. `search_path` changes pgcloak may not see (SET,
//! `SET SCHEMA`, savepoints, `set_config` with computed names, inside functions and DO blocks,
//! PREPARE/EXECUTE, named extended statements re-executed after a per-request path change, a
//! `$user` schema created later, startup options), same-named tables in other schemas and
//! temporary tables shadowing a rules table, and spellings of a rules table's name (quoted,
//! upper case, `U&""`, database-qualified). Values that may land in a plain table are markers;
//! wherever a value can only be bound for a rules column it is a sentinel.

use crate::adversarial::{
    Driver, Expect, P, Probe, SIMPLE, TOKIO, TWO, count, enc, plain, probe, run_suite, t,
};

const CLASS: &str = "search_path";
const NAMES: &str = "names";

/// `{x}` is a schema with a plain table named like the rules table and a function that sets
/// the path behind pgcloak's back.
const SHADOW: &str = "CREATE SCHEMA {x}; CREATE TABLE {x}.{t} (id int PRIMARY KEY, s text, note text); \
     CREATE FUNCTION {x}.go(p text) RETURNS text LANGUAGE sql AS $$ SELECT set_config('search_path', p, false) $$;";

const INS_M1: &str = "INSERT INTO {t} (id, s) VALUES (1, $1)";

/// SET to a path with the shadow first: the shadow takes the value.
pub fn set_path_shadow() -> Probe {
    probe(
        CLASS,
        "SET search_path: a same-named plain table earlier in the path",
    )
    .direct(SHADOW)
    .setup("SET search_path = {x}, public")
    .attack_p(INS_M1, vec![t("{M1}")])
    .expect(Expect::Encrypted(vec![
        plain("{x}.{t}", "s", 1, Some("{M1}")),
        count("public.{t}", 0),
    ]))
}

/// SET to a path with the shadow first, then back to the rules table by `how`: a sentinel
/// bound for the rules table.
pub fn reset_path(how: &str) -> Probe {
    probe(CLASS, &format!("{how} after SET search_path to the shadow"))
        .direct(SHADOW)
        .setup("SET search_path = {x}, public")
        .setup(how)
        .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
        .expect(Expect::Encrypted(vec![enc("s", 1, Some("{S1}"))]))
}

/// `SET SCHEMA` to the shadow schema (used by the unregistered adversarial_open.rs).
#[allow(dead_code)]
pub fn set_schema_shadow() -> Probe {
    probe(
        CLASS,
        "SET SCHEMA to a schema with a same-named plain table",
    )
    .direct(SHADOW)
    .setup("SET SCHEMA '{x}'")
    .attack_p(INS_M1, vec![t("{M1}")])
    .expect(Expect::Encrypted(vec![
        plain("{x}.{t}", "s", 1, Some("{M1}")),
        count("public.{t}", 0),
    ]))
}

/// `SET SCHEMA 'public'` after a path with the shadow first: a sentinel for the rules table.
pub fn set_schema_public() -> Probe {
    probe(
        CLASS,
        "SET SCHEMA 'public' after a path with the shadow first",
    )
    .direct(SHADOW)
    .setup("SET search_path = {x}, public")
    .setup("SET SCHEMA 'public'")
    .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
    .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
}

/// `search_path` in the startup packet (used by the unregistered adversarial_open.rs).
#[allow(dead_code)]
pub fn startup_path() -> Probe {
    probe(CLASS, "search_path from the startup packet's options")
        .direct(SHADOW)
        .options("-c search_path={x},public")
        .attack_p(INS_M1, vec![t("{M1}")])
        .expect(Expect::Encrypted(vec![
            plain("{x}.{t}", "s", 1, Some("{M1}")),
            count("public.{t}", 0),
        ]))
        .on(&[Driver::Simple, Driver::ExtText, Driver::Psql])
}

pub fn probes() -> Vec<Probe> {
    let m1 = || vec![t("{M1}")];
    let s1 = || vec![t("{S1}")];
    let mut v = vec![
        // pgcloak sees the path: the plain table takes the value.
        set_path_shadow().on(SIMPLE),
        set_schema_public().on(&[Driver::ExtText, Driver::ExtBin]),
        // The path changes behind pgcloak's back, towards the rules table.
        probe(
            CLASS,
            "function calling set_config moves the path onto the rules table",
        )
        .direct(SHADOW)
        .setup("SET search_path = {x}, public")
        .setup("SELECT {x}.go('public')")
        .attack_p(INS_M1, m1())
        .expect(Expect::Safe(vec![])),
        probe(
            CLASS,
            "set_config with a computed name moves the path onto the rules table",
        )
        .direct(SHADOW)
        .setup("SET search_path = {x}, public")
        .setup("SELECT set_config('search_' || 'path', 'public', false)")
        .attack_p(INS_M1, m1())
        .expect(Expect::Safe(vec![])),
        probe(
            CLASS,
            "set_config from a sub-select moves the path onto the rules table",
        )
        .direct(SHADOW)
        .setup("SET search_path = {x}, public")
        .setup("SELECT (SELECT set_config(n, 'public', false) FROM (VALUES ('search_path')) v(n))")
        .attack_p(INS_M1, m1())
        .expect(Expect::Safe(vec![])),
        probe(
            CLASS,
            "DO block calling set_config moves the path onto the rules table",
        )
        .direct(SHADOW)
        .setup("SET search_path = {x}, public")
        .any("DO $$ BEGIN PERFORM set_config('search_path', 'public', false); END $$")
        .attack_p(INS_M1, m1())
        .expect(Expect::Safe(vec![])),
        probe(
            CLASS,
            "ROLLBACK TO SAVEPOINT undoes SET LOCAL (path back to the shadow)",
        )
        .direct(SHADOW)
        .setup("SET search_path = {x}, public")
        .setup("BEGIN")
        .setup("SAVEPOINT sp")
        .setup("SET LOCAL search_path = public")
        .setup("ROLLBACK TO SAVEPOINT sp")
        .attack_p(INS_M1, m1())
        .any("COMMIT")
        .expect(Expect::Safe(vec![])),
        probe(
            CLASS,
            "ROLLBACK TO SAVEPOINT undoes SET LOCAL (path back to the rules table)",
        )
        .direct(SHADOW)
        .setup("SET search_path = public")
        .setup("BEGIN")
        .setup("SAVEPOINT sp")
        .setup("SET LOCAL search_path = {x}, public")
        .setup("ROLLBACK TO SAVEPOINT sp")
        .attack_p(INS_M1, m1())
        .any("COMMIT")
        .expect(Expect::Safe(vec![])),
        probe(
            CLASS,
            "set_config(…, true) inside a transaction, then ROLLBACK",
        )
        .direct(SHADOW)
        .setup("SET search_path = {x}, public")
        .setup("BEGIN")
        .setup("SELECT set_config('search_path', 'public', true)")
        .setup("ROLLBACK")
        .attack_p(INS_M1, m1())
        .expect(Expect::Safe(vec![])),
        probe(CLASS, "PREPARE … AS SELECT set_config, then EXECUTE")
            .direct(SHADOW)
            .setup("SET search_path = {x}, public")
            .any("PREPARE {x}p AS SELECT set_config('search_path', 'public', false)")
            .any("EXECUTE {x}p")
            .attack_p(INS_M1, m1())
            .expect(Expect::Safe(vec![])),
        reset_path("RESET search_path").on(SIMPLE),
        reset_path("SET search_path TO DEFAULT").on(SIMPLE),
        reset_path("SET search_path = public").on(SIMPLE),
        // Spellings the cheap word check must still see (it lower-cases the text once).
        reset_path("ReSeT SeArCh_PaTh").on(TWO),
        reset_path("SET /* c */ SEARCH_PATH TO DEFAULT").on(TWO),
        reset_path("SELECT pg_catalog.SET_CONFIG('SEARCH_PATH', 'public', false)").on(TWO),
        probe(CLASS, "DISCARD ALL resets the path")
            .direct(SHADOW)
            .setup("SET search_path = {x}, public")
            .setup("DISCARD ALL")
            .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1)", s1())
            .expect(Expect::Encrypted(vec![enc("s", 1, Some("{S1}"))]))
            .on(SIMPLE),
        probe(
            CLASS,
            "path change to the shadow behind pgcloak's back, sentinel bound for the rules table",
        )
        .direct(SHADOW)
        .setup("SET search_path = public")
        .setup("SELECT {x}.go('{x}, public')")
        .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1)", s1())
        .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))])),
        probe(
            CLASS,
            "UPDATE after a hidden path change towards the rules table",
        )
        .direct(SHADOW)
        .direct("INSERT INTO {x}.{t} (id, s) VALUES (1, 'old')")
        .setup("SET search_path = {x}, public")
        .setup_p(
            "INSERT INTO public.{t} (id, s) VALUES (1, $1)",
            vec![t("{S2}")],
        )
        .setup("SELECT {x}.go('public')")
        .attack_p("UPDATE {t} SET s = $1 WHERE id = 1", m1())
        .expect(Expect::Safe(vec![])),
        // The `$user` schema appears after the session read its path.
        probe(
            CLASS,
            "$user schema with a same-named table created after the path was read",
        )
        .setup("SELECT 1")
        .any("CREATE SCHEMA IF NOT EXISTS app")
        .any("CREATE TABLE app.{t} (id int PRIMARY KEY, s text)")
        .attack_p(INS_M1, m1())
        .expect(Expect::Safe(vec![]))
        .on(SIMPLE),
        // Temporary tables named like the rules table.
        probe(CLASS, "TEMP table shadowing the rules table")
            .any("CREATE TEMP TABLE {t} (id int PRIMARY KEY, s text)")
            .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1)", s1())
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))])),
        probe(CLASS, "pg_temp-qualified table shadowing the rules table")
            .any("CREATE TABLE pg_temp.{t} (id int PRIMARY KEY, s text)")
            .attack_p("INSERT INTO {t} (id, s) VALUES (1, $1)", s1())
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))])),
        probe(CLASS, "SELECT INTO TEMP shadowing the rules table")
            .any("SELECT 1 AS id, 'x'::text AS s INTO TEMP {t}")
            .attack_p("INSERT INTO {t} (id, s) VALUES (2, $1)", s1())
            .expect(Expect::Safe(vec![enc("s", 2, Some("{S1}"))])),
        probe(CLASS, "TEMP view shadowing the rules table")
            .direct("CREATE TABLE {x}_p (id int, s text)")
            .any("CREATE TEMP VIEW {t} AS SELECT * FROM {x}_p")
            .attack_p(INS_M1, m1())
            .expect(Expect::Safe(vec![])),
        probe(CLASS, "search_path with pg_temp first, then a TEMP table")
            .setup("SET search_path = pg_temp, public")
            .any("CREATE TEMP TABLE {t} (id int PRIMARY KEY, s text)")
            .attack_p(INS_M1, m1())
            .expect(Expect::Safe(vec![])),
        probe(
            CLASS,
            "same-named table in another schema, qualified write to it",
        )
        .direct(SHADOW)
        .attack_p("INSERT INTO {x}.{t} (id, s) VALUES (1, $1)", m1())
        .expect(Expect::Encrypted(vec![
            plain("{x}.{t}", "s", 1, Some("{M1}")),
            count("public.{t}", 0),
        ])),
        probe(
            CLASS,
            "schema created through pgcloak, then a same-named table in it, then SET",
        )
        .setup("CREATE SCHEMA {x}")
        .any("CREATE TABLE {x}.{t} (id int PRIMARY KEY, s text)")
        .setup("SET search_path = {x}, public")
        .attack_p(INS_M1, m1())
        .expect(Expect::Safe(vec![])),
        probe(
            CLASS,
            "USAGE on the shadow schema revoked after the path was read",
        )
        .direct(SHADOW)
        .setup("SET search_path = {x}, public")
        .any("REVOKE USAGE ON SCHEMA {x} FROM PUBLIC")
        .attack_p(INS_M1, m1())
        .expect(Expect::Safe(vec![])),
    ];
    // The multi-tenant pattern: one named statement, re-executed after per-request path changes.
    v.push(
        probe(
            CLASS,
            "named INSERT prepared on the shadow, re-executed after set_config($1)",
        )
        .direct(SHADOW)
        .setup_p(
            "SELECT set_config('search_path', $1, false)",
            vec![t("{x}, public")],
        )
        .attack_p(
            "INSERT INTO {t} (id, s) VALUES ($1, $2)",
            vec![P::I(1), t("{M1}")],
        )
        .named("ins")
        .setup_p(
            "SELECT set_config('search_path', $1, false)",
            vec![t("public")],
        )
        .attack_p(
            "INSERT INTO {t} (id, s) VALUES ($1, $2)",
            vec![P::I(2), t("{M2}")],
        )
        .named("ins")
        .expect(Expect::Safe(vec![]))
        .on(&[Driver::ExtText, Driver::ExtBin, Driver::Node]),
    );
    v.push(
        probe(
            CLASS,
            "named INSERT prepared on the rules table, re-executed after set_config($1)",
        )
        .direct(SHADOW)
        .setup_p(
            "SELECT set_config('search_path', $1, false)",
            vec![t("public")],
        )
        .attack_p(
            "INSERT INTO {t} (id, s) VALUES ($1, $2)",
            vec![P::I(1), t("{S1}")],
        )
        .named("ins")
        .setup_p(
            "SELECT set_config('search_path', $1, false)",
            vec![t("{x}, public")],
        )
        .attack_p(
            "INSERT INTO {t} (id, s) VALUES ($1, $2)",
            vec![P::I(2), t("{S2}")],
        )
        .named("ins")
        .expect(Expect::Safe(vec![
            enc("s", 1, Some("{S1}")),
            enc("s", 2, Some("{S2}")),
        ]))
        .on(&[Driver::ExtText, Driver::ExtBin, Driver::Node]),
    );
    v.push(
        probe(CLASS, "psycopg INSERT re-run after a path change")
            .direct(SHADOW)
            .setup("SELECT set_config('search_path', 'public', false)")
            .attack_p(
                "INSERT INTO {t} (id, s) VALUES ($1, $2)",
                vec![P::I(1), t("{S1}")],
            )
            .setup("SELECT set_config('search_path', '{x}, public', false)")
            .attack_p(
                "INSERT INTO {t} (id, s) VALUES ($1, $2)",
                vec![P::I(2), t("{M2}")],
            )
            .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
            .on(&[Driver::PyPrep, Driver::PyText]),
    );
    // Spellings of the rules table's name: every one is the rules table.
    for (name, target) in [
        ("quoted lower-case name", "\"{t}\""),
        ("upper-case unquoted name", "PUBLIC.{T}"),
        ("quoted schema and table", "\"public\".\"{t}\""),
        ("database-qualified name", "app.public.{t}"),
        ("U& identifier", "U&\"\\0061{k}\""),
        ("alias on the target", "{t} AS z"),
    ] {
        v.push(
            probe(NAMES, &format!("INSERT into the rules table by its {name}"))
                .attack_p(
                    &format!("INSERT INTO {target} (id, s) VALUES (1, $1)"),
                    s1(),
                )
                .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
                .on(TWO),
        );
    }
    v.push(
        probe(
            NAMES,
            "UPDATE ONLY the rules table with a quoted column name",
        )
        .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("old")])
        .attack_p("UPDATE ONLY {t} SET \"s\" = $1 WHERE id = 1", s1())
        .expect(Expect::Safe(vec![enc("s", 1, Some("{S1}"))]))
        .on(TOKIO),
    );
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_search_path_and_names() {
    run_suite(probes())
        .await
        .assert_all_passed("search_path and names");
}
