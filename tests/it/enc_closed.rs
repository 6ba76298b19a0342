//! Fail closed by construction (issue: "nothing reaches PostgreSQL that pgcloak did not
//! analyse"): names resolve on the server the way pgcloak resolved them, DDL cannot give an
//! encrypted column a plaintext type, default or predicate, statement kinds pgcloak does not
//! model are refused when they name a rules table, session settings the analysis does not
//! follow refuse statements on rules tables, and server messages never quote ciphertext.
//! Each test checks what is stored, read around the proxy.

use tokio_postgres::Client;

use crate::enc_env::{EncEnv, Proto, V, ok, run};
use crate::harness::{HANG, sqlstate, within};

/// A random value that appears nowhere else.
fn sentinel() -> String {
    format!("sentinel_{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Runs `sql` through the proxy and asserts it is refused with 0A000.
async fn refused(c: &Client, sql: &str) {
    let e = within(HANG, c.simple_query(sql))
        .await
        .expect_err(&format!("{sql}: expected a refusal"));
    assert_eq!(sqlstate(&e).as_deref(), Some("0A000"), "{sql}: {e:?}");
}

/// A plain `shadow.people` the app may write, beside the rules table `public.people`; returns
/// a direct client.
async fn shadow_schema(env: &EncEnv) -> Client {
    let direct = env.direct().await;
    direct
        .batch_execute(
            "CREATE SCHEMA shadow; CREATE TABLE shadow.people (id int, ssn text); \
             GRANT USAGE ON SCHEMA shadow TO app; GRANT ALL ON shadow.people TO app;",
        )
        .await
        .expect("shadow");
    direct
}

/// True when `needle` appears in any row of `table`, read straight from PostgreSQL.
async fn stored_anywhere(direct: &Client, table: &str, needle: &str) -> bool {
    let sql = format!("SELECT count(*) FROM {table} t WHERE t::text LIKE $1");
    let row = direct
        .query_one(sql.as_str(), &[&format!("%{needle}%")])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    row.get::<_, i64>(0) > 0
}

/// Waits until pgcloak's catalog knows `table` (`schema.people`), created straight in
/// PostgreSQL and first on `app`'s path (the watcher learns of it a moment later; before that,
/// `people` is the rules table `public.people` to pgcloak and a write is encrypted there): a
/// write through pgcloak lands as plaintext in `table`. The probes that went to the rules
/// table are deleted, so tests can count its rows.
async fn catalog_knows(app: &Client, direct: &Client, table: &str) {
    within(HANG, async {
        loop {
            let sql = "INSERT INTO people (id, ssn) VALUES (0, 'probe')";
            if run(app, Proto::Simple, sql, &[]).await.is_ok()
                && stored_anywhere(direct, table, "probe").await
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    direct
        .batch_execute("DELETE FROM public.people WHERE id = 0")
        .await
        .expect("remove the probes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_path_pgcloak_did_not_see_cannot_move_a_write_onto_a_rules_table() {
    let env = EncEnv::start().await;
    let direct = env.direct().await;
    direct
        .batch_execute(
            "CREATE SCHEMA hr; CREATE TABLE hr.people (id int, name text, ssn text, \
             email text, note text, age text); \
             CREATE FUNCTION hr.go(p text) RETURNS text LANGUAGE sql AS \
             $$ SELECT set_config('search_path', p, false) $$;",
        )
        .await
        .expect("setup");
    let app = env.app().await;
    // pgcloak reads the path (hr, public): `people` is hr.people, a plain table.
    ok(&app, Proto::Simple, "SET search_path = hr, public", &[]).await;
    catalog_knows(&app, &direct, "hr.people").await;
    // A function changes the path behind pgcloak's back.
    ok(&app, Proto::Simple, "SELECT hr.go('public')", &[]).await;
    let s1 = sentinel();
    ok(
        &app,
        Proto::Simple,
        "INSERT INTO people (id, ssn) VALUES (1, $1)",
        &[V::T(&s1)],
    )
    .await;
    let s2 = sentinel();
    ok(
        &app,
        Proto::Extended,
        "INSERT INTO people (id, ssn) VALUES (2, $1)",
        &[V::T(&s2)],
    )
    .await;
    // Both went where pgcloak resolved them: hr.people. public.people holds nothing.
    assert_eq!(env.row_count("public.people").await, 0);
    assert!(stored_anywhere(&direct, "hr.people", &s1).await);
    assert!(stored_anywhere(&direct, "hr.people", &s2).await);

    // And the other way: pgcloak resolved the rules table, the server's path now says hr.
    ok(&app, Proto::Simple, "SET search_path = public", &[]).await;
    ok(&app, Proto::Simple, "SELECT hr.go('hr, public')", &[]).await;
    let s3 = sentinel();
    ok(
        &app,
        Proto::Simple,
        "INSERT INTO people (id, ssn) VALUES (3, $1)",
        &[V::T(&s3)],
    )
    .await;
    env.assert_at_rest("people", "ssn", 3, Some(&s3)).await;
    assert!(!stored_anywhere(&direct, "hr.people", &s3).await);
    let got = run(
        &app,
        Proto::Extended,
        "SELECT ssn FROM people WHERE ssn = $1",
        &[V::T(&s3)],
    )
    .await
    .expect("select");
    assert_eq!(got, vec![vec![Some(s3.clone())]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_cannot_give_an_encrypted_column_a_plaintext_path() {
    let env = EncEnv::start().await;
    let app = env.app().await;
    for sql in [
        "ALTER TABLE people ALTER COLUMN ssn SET DEFAULT '\\x0102'::bytea",
        "ALTER TABLE people ALTER COLUMN email TYPE varchar(255)",
        "ALTER TABLE people ALTER COLUMN ssn TYPE bytea USING convert_to('x', 'UTF8')",
        "ALTER TABLE people ADD CONSTRAINT c CHECK (ssn <> '\\x00')",
        "ALTER TABLE people RENAME TO people2",
        "ALTER TABLE people RENAME COLUMN ssn TO ssn2",
        "CREATE INDEX ON people (id) WHERE ssn = '\\x00'",
        "CREATE TEMP TABLE people (id int, ssn text)",
        "CREATE TABLE accounts AS SELECT 1 AS id",
        "CREATE TRIGGER t BEFORE INSERT ON people FOR EACH ROW EXECUTE FUNCTION f()",
        "CREATE POLICY p ON people USING (ssn = '\\x00')",
        "ALTER TABLE people SET SCHEMA pg_temp",
        "ALTER SCHEMA public RENAME TO pub2",
    ] {
        refused(&app, sql).await;
    }
    // What the DDL was for still holds: the columns are bytea, the names unchanged.
    let direct = env.direct().await;
    let types = direct
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod), atthasdef \
             FROM pg_attribute WHERE attrelid = 'public.people'::regclass AND attnum > 0 \
             AND attname IN ('ssn', 'email') ORDER BY 1",
            &[],
        )
        .await
        .expect("catalog");
    let got: Vec<(String, String, bool)> = types
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        vec![
            ("email".into(), "bytea".into(), false),
            ("ssn".into(), "bytea".into(), false)
        ]
    );
    // Sound DDL on a rules table passes.
    ok(
        &app,
        Proto::Simple,
        "CREATE INDEX people_email ON people (email)",
        &[],
    )
    .await;
    ok(
        &app,
        Proto::Simple,
        "ALTER TABLE people ADD COLUMN extra int",
        &[],
    )
    .await;
    // A table created through pgcloak under a rules name must use bytea.
    refused(
        &app,
        "DROP TABLE accounts; CREATE TABLE accounts (id int, email text)",
    )
    .await;
    ok(
        &app,
        Proto::Simple,
        "DROP TABLE accounts; CREATE TABLE accounts (id int PRIMARY KEY, email bytea, \
         ssn bytea, memo bytea, balance int)",
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_the_analysis_does_not_follow_refuse_statements_on_rules_tables() {
    let env = EncEnv::start().await;
    let app = env.app().await;
    let secret = sentinel();
    ok(
        &app,
        Proto::Simple,
        "SET standard_conforming_strings = off",
        &[],
    )
    .await;
    // Read with standard strings, this is (1, NULL) and a comment; the server reads a
    // backslash escape and stores the sentinel in ssn.
    let sql = format!("INSERT INTO people (id, ssn) VALUES (1, '\\', NULL) -- ', '{secret}')");
    refused(&app, &sql).await;
    assert_eq!(env.row_count("people").await, 0);
    // Statements on other tables are unaffected.
    ok(&app, Proto::Simple, "SELECT 'a\\\\b'", &[]).await;
    ok(
        &app,
        Proto::Simple,
        "SET standard_conforming_strings = on",
        &[],
    )
    .await;
    ok(
        &app,
        Proto::Simple,
        "INSERT INTO people (id, ssn) VALUES (1, $1)",
        &[V::T(&secret)],
    )
    .await;
    env.assert_at_rest("people", "ssn", 1, Some(&secret)).await;

    // A DateStyle pgcloak does not write: refused where a date or time is encrypted.
    ok(&app, Proto::Simple, "SET DateStyle = 'German'", &[]).await;
    refused(&app, "SELECT r_date FROM typed").await;
    ok(&app, Proto::Simple, "SELECT ssn FROM people", &[]).await;
    ok(&app, Proto::Simple, "SET DateStyle = 'ISO, DMY'", &[]).await;
    ok(&app, Proto::Simple, "SELECT r_date FROM typed", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_messages_never_quote_ciphertext() {
    let env = EncEnv::start().await;
    let app = env.app().await;
    let ssn = sentinel();
    for id in [1, 2] {
        let res = run(
            &app,
            Proto::Extended,
            &format!("INSERT INTO people (id, ssn) VALUES ({id}, $1)"),
            &[V::T(&ssn)],
        )
        .await;
        if id == 2 {
            let e = res.expect_err("UNIQUE violation");
            let db = e.as_db_error().expect("a server error");
            assert_eq!(db.code().code(), "23505");
            let detail = db.detail().unwrap_or_default();
            assert!(detail.contains("<encrypted>"), "{detail}");
            assert!(!detail.contains("\\x01"), "ciphertext in DETAIL: {detail}");
        }
    }
    let direct = env.direct().await;
    direct
        .batch_execute("ALTER TABLE people ADD CONSTRAINT no_dup CHECK (id < 100)")
        .await
        .expect("constraint");
    let e = run(
        &app,
        Proto::Simple,
        "INSERT INTO people (id, email) VALUES (100, $1)",
        &[V::T("x@y.z")],
    )
    .await
    .expect_err("CHECK violation");
    let detail = e
        .as_db_error()
        .and_then(|d| d.detail())
        .unwrap_or_default()
        .to_owned();
    assert!(detail.contains("<encrypted>"), "{detail}");
    assert!(!detail.contains("\\x01"), "ciphertext in DETAIL: {detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_of_functions_that_may_write_a_rules_table_are_refused() {
    let env = EncEnv::start().await;
    let direct = env.direct().await;
    direct
        .batch_execute(
            "CREATE FUNCTION add_person(s text) RETURNS void LANGUAGE sql AS \
               $$ INSERT INTO people (id, ssn) VALUES (9, convert_to(s, 'UTF8')) $$; \
             CREATE PROCEDURE add_account(s text) LANGUAGE plpgsql AS \
               $$ BEGIN INSERT INTO accounts (id, memo) VALUES (9, convert_to(s, 'UTF8')); END $$; \
             CREATE FUNCTION run_sql(q text) RETURNS void LANGUAGE plpgsql AS \
               $$ BEGIN EXECUTE q; END $$; \
             CREATE FUNCTION twice(i int) RETURNS int LANGUAGE sql AS $$ SELECT i * 2 $$;",
        )
        .await
        .expect("functions");
    let app = env.app().await;
    // DDL through pgcloak refreshes its catalog at once.
    ok(&app, Proto::Simple, "CREATE TABLE scratch (x int)", &[]).await;
    let secret = sentinel();
    for sql in [
        format!("SELECT add_person('{secret}')"),
        format!("CALL add_account('{secret}')"),
        format!("SELECT run_sql('INSERT INTO peo' || 'ple (id, note) VALUES (8, ''{secret}'')')"),
        format!("SELECT * FROM public.add_person('{secret}')"),
    ] {
        refused(&app, &sql).await;
    }
    let got = run(&app, Proto::Extended, "SELECT twice(21)", &[])
        .await
        .expect("plain function");
    assert_eq!(got, vec![vec![Some("42".to_owned())]]);
    for t in ["people", "accounts"] {
        assert_eq!(env.row_count(t).await, 0, "{t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_a_table_whose_trigger_writes_a_rules_table_are_refused() {
    let env = EncEnv::start().await;
    let direct = env.direct().await;
    direct
        .batch_execute(
            "CREATE TABLE inbox (id int, s text); \
             CREATE FUNCTION inbox_copy() RETURNS trigger LANGUAGE plpgsql AS \
               $$ BEGIN INSERT INTO people (id, ssn) VALUES (NEW.id, convert_to(NEW.s, 'UTF8')); \
               RETURN NEW; END $$; \
             CREATE TRIGGER inbox_t AFTER INSERT ON inbox FOR EACH ROW EXECUTE FUNCTION inbox_copy(); \
             CREATE TABLE notes (id int, s text);",
        )
        .await
        .expect("trigger");
    let app = env.app().await;
    ok(&app, Proto::Simple, "CREATE TABLE scratch (x int)", &[]).await;
    let secret = sentinel();
    for proto in [Proto::Simple, Proto::Extended] {
        let e = run(
            &app,
            proto,
            "INSERT INTO inbox (id, s) VALUES (1, $1)",
            &[V::T(&secret)],
        )
        .await
        .expect_err("a write that fires a writer trigger");
        assert_eq!(sqlstate(&e).as_deref(), Some("0A000"), "{e:?}");
    }
    assert_eq!(env.row_count("people").await, 0);
    assert!(!stored_anywhere(&direct, "inbox", &secret).await);
    // A table without such a trigger is untouched.
    ok(
        &app,
        Proto::Extended,
        "INSERT INTO notes (id, s) VALUES (1, $1)",
        &[V::T(&secret)],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_set_in_the_extended_protocol_is_read_after_it_runs() {
    let env = EncEnv::start().await;
    let direct = shadow_schema(&env).await;
    let app = env.app().await;
    ok(&app, Proto::Simple, "SET search_path = shadow, public", &[]).await;
    catalog_knows(&app, &direct, "shadow.people").await;
    ok(&app, Proto::Simple, "RESET search_path", &[]).await;
    // Each statement is Parse/Describe/Sync then Bind/Execute/Sync (tokio-postgres): the
    // path changes at Execute, after pgcloak saw the Parse.
    ok(
        &app,
        Proto::Extended,
        "SET search_path = shadow, public",
        &[],
    )
    .await;
    ok(&app, Proto::Extended, "RESET search_path", &[]).await;
    let s1 = sentinel();
    ok(
        &app,
        Proto::Extended,
        "INSERT INTO people (id, ssn) VALUES (1, $1)",
        &[V::T(&s1)],
    )
    .await;
    // The server's path is the default again: the rules table, encrypted.
    env.assert_at_rest("people", "ssn", 1, Some(&s1)).await;
    assert!(!stored_anywhere(&direct, "shadow.people", &s1).await);
    // SET SCHEMA is SET search_path.
    ok(&app, Proto::Simple, "SET SCHEMA 'shadow'", &[]).await;
    let s2 = sentinel();
    ok(
        &app,
        Proto::Extended,
        "INSERT INTO people (id, ssn) VALUES (2, $1)",
        &[V::T(&s2)],
    )
    .await;
    assert!(stored_anywhere(&direct, "shadow.people", &s2).await);
    ok(&app, Proto::Simple, "SET SCHEMA 'public'", &[]).await;
    let s3 = sentinel();
    ok(
        &app,
        Proto::Extended,
        "INSERT INTO people (id, ssn) VALUES (3, $1)",
        &[V::T(&s3)],
    )
    .await;
    env.assert_at_rest("people", "ssn", 3, Some(&s3)).await;
    assert!(!stored_anywhere(&direct, "shadow.people", &s3).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_path_from_startup_options_is_the_one_pgcloak_reads() {
    use pgcloak::devdb::{APP_PASSWORD, APP_USER};
    let env = EncEnv::start().await;
    let direct = shadow_schema(&env).await;
    let mut cfg = env
        .env
        .proxy_pg_config(APP_USER, APP_PASSWORD, env.env.db.database());
    cfg.options("-c search_path=shadow,public");
    let app = env.env.connect(&cfg).await.expect("login with options");
    catalog_knows(&app, &direct, "shadow.people").await;
    let s1 = sentinel();
    ok(
        &app,
        Proto::Extended,
        "INSERT INTO people (id, ssn) VALUES (1, $1)",
        &[V::T(&s1)],
    )
    .await;
    // PostgreSQL's path is shadow, public: the plain shadow table, as pgcloak resolved it.
    assert!(stored_anywhere(&direct, "shadow.people", &s1).await);
    assert_eq!(env.row_count("public.people").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_with_parameters_passes_only_for_statements_known_to_be_plain() {
    let env = EncEnv::start().await;
    let app = env.app().await;
    ok(
        &app,
        Proto::Simple,
        "PREPARE up(text) AS SELECT upper($1)",
        &[],
    )
    .await;
    let got = ok(&app, Proto::Simple, "EXECUTE up('abc')", &[]).await;
    assert_eq!(got, vec![vec![Some("ABC".to_owned())]]);
    // One that binds an encrypted column is refused at PREPARE, and so is its EXECUTE.
    refused(
        &app,
        "PREPARE ins(text) AS INSERT INTO people (id, ssn) VALUES (1, $1)",
    )
    .await;
    let secret = sentinel();
    refused(&app, &format!("EXECUTE ins('{secret}')")).await;
    // Prepared again under a known name: no longer trusted.
    ok(&app, Proto::Simple, "DEALLOCATE up", &[]).await;
    ok(&app, Proto::Simple, "PREPARE up(text) AS SELECT $1", &[]).await;
    refused(&app, &format!("EXECUTE up('{secret}')")).await;
    // Never with other statements in the same text, nor with an encrypted column argument.
    ok(
        &app,
        Proto::Simple,
        "PREPARE low(text) AS SELECT lower($1)",
        &[],
    )
    .await;
    refused(
        &app,
        "EXECUTE low('A'); INSERT INTO people (id, ssn) VALUES (2, 'x')",
    )
    .await;
    refused(&app, "EXECUTE low((SELECT ssn FROM people LIMIT 1))").await;
    assert_eq!(env.row_count("people").await, 0);
}
