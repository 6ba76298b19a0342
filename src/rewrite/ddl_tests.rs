//! Unit tests of the statement-kind allow-list (DDL on rules tables, unknown kinds), of
//! composite expansion, and of the schema qualification of names that could resolve to a rules
//! table.

use super::tests::{Catalog, assert_pass, catalog, refusal_is, refused, rules};
use super::*;

// ---- DDL on rules tables ----

#[test]
fn create_table_gives_encrypted_columns_bytea_only() {
    assert_pass("CREATE TABLE patients (id int PRIMARY KEY, ssn bytea UNIQUE NOT NULL)");
    assert_pass("CREATE TABLE patients (ssn pg_catalog.bytea, email bytea REFERENCES x (y))");
    assert_pass("CREATE TABLE other.patients (ssn text)");
    for (sql, construct) in [
        ("CREATE TABLE patients (id int, ssn text)", "bytea"),
        ("CREATE TABLE patients (ssn varchar(255))", "bytea"),
        ("CREATE TABLE patients (ssn bytea[])", "bytea"),
        (
            "CREATE TABLE public.patients (ssn bytea DEFAULT 'x'::bytea)",
            "DEFAULT",
        ),
        (
            "CREATE TABLE patients (ssn bytea CHECK (ssn <> ''))",
            "CHECK",
        ),
        (
            "CREATE TABLE patients (ssn bytea GENERATED ALWAYS AS ('x'::bytea) STORED)",
            "generated",
        ),
    ] {
        refusal_is(sql, "public.patients.ssn", construct);
    }
    refusal_is(
        "CREATE TABLE patients (id int, ssn bytea, CHECK (ssn <> '\\x00'))",
        "public.patients.ssn",
        "constraint",
    );
    assert_pass("CREATE TABLE patients (id int, ssn bytea, CHECK (id > 0))");
    refusal_is(
        "CREATE TABLE patients (LIKE plain)",
        "public.patients",
        "LIKE",
    );
    refusal_is(
        "CREATE TABLE patients PARTITION OF plain FOR VALUES IN (1)",
        "public.patients",
        "PARTITION OF",
    );
    refusal_is(
        "CREATE TABLE kid () INHERITS (patients)",
        "public.patients",
        "child",
    );
    refusal_is(
        "CREATE TABLE p1 PARTITION OF patients FOR VALUES IN (1)",
        "public.patients",
        "partition",
    );
    for sql in [
        "CREATE TEMP TABLE patients (ssn text)",
        "CREATE TABLE pg_temp.patients (ssn text)",
        "SELECT 'x' AS ssn INTO patients",
        "SELECT 'x' AS ssn INTO TEMP patients",
        "CREATE TABLE patients AS SELECT 'x'::text AS ssn",
    ] {
        assert_eq!(refused(sql).column, "public.patients", "{sql}");
    }
}

#[test]
fn alter_table_cannot_retype_default_or_constrain_encrypted_columns() {
    for (sql, construct) in [
        (
            "ALTER TABLE patients ALTER COLUMN ssn SET DEFAULT 'x'::bytea",
            "DEFAULT",
        ),
        ("ALTER TABLE patients ALTER COLUMN ssn TYPE text", "TYPE"),
        ("ALTER TABLE patients ALTER ssn TYPE varchar(255)", "TYPE"),
        (
            "ALTER TABLE patients ALTER ssn TYPE bytea USING convert_to('x', 'UTF8')",
            "TYPE",
        ),
        ("ALTER TABLE patients ADD COLUMN ssn text", "bytea"),
        (
            "ALTER TABLE patients ADD CONSTRAINT c CHECK (ssn <> 'x')",
            "constraint",
        ),
        (
            "ALTER TABLE patients ALTER ssn ADD GENERATED ALWAYS AS IDENTITY",
            "identity",
        ),
    ] {
        refusal_is(sql, "public.patients.ssn", construct);
    }
    for sql in [
        "ALTER TABLE patients ADD COLUMN x int",
        "ALTER TABLE patients ADD COLUMN ssn2 text",
        "ALTER TABLE patients ALTER COLUMN ssn DROP DEFAULT",
        "ALTER TABLE patients ALTER COLUMN ssn SET NOT NULL",
        "ALTER TABLE patients ALTER COLUMN ssn TYPE bytea",
        "ALTER TABLE patients ADD CONSTRAINT u UNIQUE (ssn)",
        "ALTER TABLE patients ADD CONSTRAINT c CHECK (id > 0)",
        "ALTER TABLE patients ALTER COLUMN name TYPE varchar(100)",
        "ALTER TABLE patients DROP COLUMN name",
        "ALTER TABLE patients OWNER TO app",
        "ALTER TABLE plain ALTER COLUMN code TYPE text",
    ] {
        assert!(!matches!(run_q(sql), Analysis::Refuse(_)), "{sql}");
    }
    refusal_is(
        "ALTER TABLE patients INHERIT plain",
        "public.patients",
        "ALTER TABLE subcommand",
    );
    refusal_is(
        "ALTER TABLE patients ATTACH PARTITION p2 FOR VALUES IN (2)",
        "public.patients",
        "ALTER TABLE subcommand",
    );
    assert!(matches!(
        run_q("ALTER TABLE plain INHERIT patients"),
        Analysis::Refuse(_)
    ));
}

#[test]
fn renames_of_rules_tables_columns_and_schemas_are_refused() {
    for sql in [
        "ALTER TABLE patients RENAME TO people",
        "ALTER TABLE patients RENAME COLUMN ssn TO ssn2",
        "ALTER TABLE patients RENAME ssn TO x",
        "ALTER TABLE patients RENAME COLUMN name TO ssn",
        "ALTER TABLE plain RENAME TO patients",
        "ALTER SCHEMA public RENAME TO pub2",
        "ALTER SCHEMA other RENAME TO app",
        "ALTER TABLE patients SET SCHEMA other",
    ] {
        assert!(matches!(run_q(sql), Analysis::Refuse(_)), "{sql}");
    }
    assert_pass("ALTER TABLE patients RENAME COLUMN name TO full_name");
    assert_pass("ALTER TABLE patients RENAME CONSTRAINT a TO b");
}

#[test]
fn indexes_on_encrypted_columns_are_plain_or_refused() {
    assert_pass("CREATE UNIQUE INDEX ON patients (ssn)");
    assert_pass("CREATE INDEX i ON patients (name) WHERE id > 0");
    refusal_is(
        "CREATE INDEX ON patients (lower(ssn))",
        "public.patients.ssn",
        "expression index",
    );
    refusal_is(
        "CREATE INDEX ON patients (id) WHERE ssn = 'x'",
        "public.patients.ssn",
        "partial-index",
    );
}

#[test]
fn statement_kinds_outside_the_allow_list_that_name_a_rules_table_are_refused() {
    for (sql, construct) in [
        (
            "CREATE TRIGGER t BEFORE INSERT ON patients FOR EACH ROW EXECUTE FUNCTION f()",
            "CREATE TRIGGER",
        ),
        ("CREATE POLICY p ON patients USING (ssn = 'x')", "policy"),
        (
            "CREATE STATISTICS s ON ssn, email FROM patients",
            "STATISTICS",
        ),
        (
            "CREATE RULE r AS ON INSERT TO patients DO INSTEAD NOTHING",
            "RULE",
        ),
    ] {
        let r = refused(sql);
        assert!(r.construct.contains(construct), "{sql}: {r:?}");
    }
    for sql in [
        "DROP TABLE patients",
        "TRUNCATE patients",
        "GRANT SELECT ON patients TO app",
        "COMMENT ON COLUMN patients.ssn IS 'tax id'",
        "LOCK TABLE patients IN SHARE MODE",
        "VACUUM ANALYZE patients (ssn)",
        "SET search_path = public",
        "LISTEN patients",
        "NOTIFY patients, 'x'",
        "CREATE EXTENSION IF NOT EXISTS pgcrypto",
        "CREATE TABLE unrelated (public text)",
    ] {
        assert_pass(sql);
    }
}

// ---- composite expansion ----

#[test]
fn composite_expansion_is_counted_or_refused() {
    for sql in [
        "INSERT INTO patients (id, ssn) SELECT (x).* FROM plain x",
        "INSERT INTO patients (id, ssn) VALUES ((ROW(1, 'secret')).*)",
        "INSERT INTO patients (id, ssn) SELECT (json_populate_record(NULL::patients, $1)).*",
        "INSERT INTO patients (id, ssn) SELECT p0, p1 FROM (VALUES ((ROW(1, 'x')).*)) AS v(p0, p1)",
    ] {
        assert!(matches!(run_q(sql), Analysis::Refuse(_)), "{sql}");
    }
    assert_pass("SELECT (h).* FROM plain h");
    assert!(matches!(
        run_q("SELECT (p).* FROM patients p"),
        Analysis::Refuse(_)
    ));
}

// ---- schema qualification ----

struct Namesakes(Catalog, Vec<(String, String)>);

impl CatalogView for Namesakes {
    fn columns(&self, schema: &str, table: &str) -> Option<Vec<String>> {
        self.0.columns(schema, table)
    }
    fn relation_exists(&self, schema: &str, name: &str) -> bool {
        self.columns(schema, name).is_some() || self.1.iter().any(|(s, n)| s == schema && n == name)
    }
}

fn forwarded(sql: &str, path: &[&str], cat: &dyn CatalogView) -> String {
    let rules = rules();
    let path: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
    let ctx = AnalysisContext {
        rules: &rules,
        search_path: &path,
        catalog: cat,
        qualify: true,
    };
    match analyze(sql, &ctx) {
        Analysis::Passthrough => sql.to_owned(),
        Analysis::Rewrite(p) => p.rewrite_text(sql, &[]),
        Analysis::Refuse(r) => panic!("{sql}: refused {r:?}"),
    }
}

#[test]
fn names_that_could_resolve_to_a_rules_table_are_sent_qualified() {
    let cat = catalog();
    let path = ["public"];
    for (sql, want) in [
        (
            "SELECT id FROM patients WHERE id = 1",
            "SELECT id FROM public.patients WHERE id = 1",
        ),
        (
            "SELECT p.id FROM patients p JOIN plain q ON q.id = p.id",
            "SELECT p.id FROM public.patients p JOIN plain q ON q.id = p.id",
        ),
        (
            "UPDATE \"patients\" SET name = 'x'",
            "UPDATE public.\"patients\" SET name = 'x'",
        ),
        (
            "DELETE FROM patients USING visits WHERE visits.id = patients.id",
            "DELETE FROM public.patients USING public.visits WHERE visits.id = patients.id",
        ),
        (
            "PREPARE q AS SELECT id FROM patients",
            "PREPARE q AS SELECT id FROM public.patients",
        ),
        (
            "WITH patients AS (SELECT 1 AS id) SELECT id FROM patients",
            "WITH patients AS (SELECT 1 AS id) SELECT id FROM patients",
        ),
        ("SELECT id FROM app.patients", "SELECT id FROM app.patients"),
        ("SELECT id FROM plain", "SELECT id FROM plain"),
    ] {
        assert_eq!(forwarded(sql, &path, &cat), want, "{sql}");
    }
    // A same-named table earlier in the path is the one PostgreSQL resolves: pgcloak names it,
    // so a later path change cannot move the statement onto the rules table unencrypted.
    let shadow = Namesakes(catalog(), vec![("hr".into(), "patients".into())]);
    assert_eq!(
        forwarded(
            "INSERT INTO patients (ssn) VALUES ('1')",
            &["hr", "public"],
            &shadow
        ),
        "INSERT INTO hr.patients (ssn) VALUES ('1')"
    );
    assert_eq!(
        forwarded("SELECT 1 FROM patients", &["Mixed Case", "public"], &cat),
        "SELECT 1 FROM public.patients"
    );
    let odd = Namesakes(catalog(), vec![("Mixed Case".into(), "patients".into())]);
    assert_eq!(
        forwarded("SELECT 1 FROM patients", &["Mixed Case", "public"], &odd),
        "SELECT 1 FROM \"Mixed Case\".patients"
    );
}

fn run_q(sql: &str) -> Analysis {
    super::tests::run(sql)
}

// ---- pending columns (still plaintext in the database) ----

/// Analyses `sql` as a session does while `public.patients.email` is still `text` (pending)
/// and its shadow `email$pgcloak` exists: the served rules are the real catalog's.
fn run_pending(sql: &str) -> Analysis {
    let rules = rules();
    let cols = [
        ("id", false),
        ("name", false),
        ("ssn", true),
        ("email", false),
        ("diagnosis", true),
        ("birth_date", true),
        ("age", true),
        ("email$pgcloak", true),
    ];
    let rows = cols.iter().zip(1i16..).map(|((c, bytea), attnum)| {
        let (s, t) = ("public".to_owned(), "patients".to_owned());
        (s, t, 7u32, attnum, (*c).to_owned(), *bytea)
    });
    let cat = crate::control::catalog::Catalog::from_typed_rows(&rules, rows);
    let serving = cat.serving_rules().expect("email is pending").clone();
    let path = vec!["public".to_owned()];
    let ctx = AnalysisContext {
        rules: &serving,
        search_path: &path,
        catalog: &cat,
        qualify: false,
    };
    analyze(sql, &ctx)
}

#[test]
fn ddl_on_a_pending_column_or_its_shadow_is_refused_pointing_at_migrate() {
    for sql in [
        "ALTER TABLE patients ALTER COLUMN email TYPE bytea USING convert_to(email, 'UTF8')",
        "ALTER TABLE patients ALTER email SET DATA TYPE bytea USING email::bytea",
        "ALTER TABLE public.patients ALTER COLUMN email TYPE varchar(300)",
        "ALTER TABLE patients ALTER COLUMN email SET DEFAULT 'x'",
        "ALTER TABLE patients ALTER COLUMN email DROP NOT NULL",
        "ALTER TABLE patients ALTER COLUMN email SET STORAGE EXTERNAL",
        "ALTER TABLE patients DROP COLUMN email",
        "ALTER TABLE patients DROP COLUMN IF EXISTS email CASCADE",
        "ALTER TABLE patients ADD COLUMN IF NOT EXISTS email text",
        "ALTER TABLE patients ADD COLUMN x int, DROP COLUMN email",
        "ALTER TABLE patients RENAME COLUMN email TO email_plain",
        "ALTER TABLE patients RENAME email TO x",
        "ALTER TABLE patients RENAME COLUMN name TO email",
        "ALTER TABLE patients ALTER COLUMN \"email$pgcloak\" TYPE text",
        "ALTER TABLE patients DROP COLUMN \"email$pgcloak\"",
        "ALTER TABLE patients RENAME COLUMN \"email$pgcloak\" TO email2",
        "ALTER TABLE patients RENAME COLUMN name TO \"email$pgcloak\"",
        "CREATE TABLE patients (id int, email text)",
    ] {
        let Analysis::Refuse(r) = run_pending(sql) else {
            panic!("{sql}: not refused");
        };
        assert_eq!(r.column, "public.patients", "{sql}");
        assert!(
            r.construct
                .contains("public.patients.email, which is pending")
                && r.construct
                    .contains("pgcloak migrate encrypt --column public.patients.email"),
            "{sql}: {r:?}"
        );
        assert!(r.message().contains("migrate encrypt"), "{sql}");
    }
    // Other columns of the same table keep their rules; plain columns stay free.
    for sql in [
        "ALTER TABLE patients ALTER COLUMN name TYPE varchar(100)",
        "ALTER TABLE patients DROP COLUMN name",
        "ALTER TABLE patients RENAME COLUMN name TO full_name",
        "ALTER TABLE patients ADD CONSTRAINT email UNIQUE (id)",
        "ALTER TABLE patients DROP CONSTRAINT email",
        "ALTER TABLE patients ALTER COLUMN ssn SET NOT NULL",
        "ALTER TABLE patients ALTER COLUMN ssn TYPE bytea",
    ] {
        assert!(!matches!(run_pending(sql), Analysis::Refuse(_)), "{sql}");
    }
    let Analysis::Refuse(r) = run_pending("ALTER TABLE patients ALTER COLUMN ssn TYPE text") else {
        panic!("an encrypted column's TYPE change passed");
    };
    assert_eq!(r.column, "public.patients.ssn");
    // The same DDL with no column pending is judged as before (the configured rules).
    assert!(!matches!(
        run_q("ALTER TABLE patients DROP COLUMN email"),
        Analysis::Refuse(_)
    ));
}
