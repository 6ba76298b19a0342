//! `pgcloak migrate encrypt` refuses, before it changes anything, every column whose
//! dependents it cannot carry over, saying why and what to do instead.

use pgcloak::control::migrate::{Direction, MigrateError, Options};
use pgcloak::devdb::{APP_DATABASE, DevDb, DevDbOptions};

use crate::harness::start_encrypted;
use crate::migrate::{column_type, run};

const REFUSALS: &[(&str, &str, &str)] = &[
    (
        "CREATE TABLE t_rand (id int PRIMARY KEY, c text UNIQUE)",
        "randomized",
        "randomized column cannot enforce uniqueness",
    ),
    (
        "CREATE TABLE t_fk (id int PRIMARY KEY, c text UNIQUE); \
         CREATE TABLE t_fk_child (id int PRIMARY KEY, p text REFERENCES t_fk (c))",
        "deterministic",
        "foreign key",
    ),
    (
        "CREATE TABLE t_view (id int PRIMARY KEY, c text); CREATE VIEW v_view AS SELECT c FROM t_view",
        "deterministic",
        "view v_view",
    ),
    (
        "CREATE TABLE t_gen (id int PRIMARY KEY, c text, g int GENERATED ALWAYS AS (length(c)) STORED)",
        "deterministic",
        "generated column g",
    ),
    (
        "CREATE TABLE t_part (id int, c text, PRIMARY KEY (id)) PARTITION BY RANGE (id); \
         CREATE TABLE t_part_1 PARTITION OF t_part FOR VALUES FROM (0) TO (10)",
        "deterministic",
        "partitioned",
    ),
    (
        "CREATE TABLE t_stats (id int PRIMARY KEY, c text, d text); \
         CREATE STATISTICS s_stats ON c, d FROM t_stats",
        "deterministic",
        "statistics object s_stats",
    ),
    (
        "CREATE TABLE t_nopk (id int, c text)",
        "deterministic",
        "no primary key",
    ),
    (
        "CREATE TABLE t_inpk (c text PRIMARY KEY)",
        "deterministic",
        "primary key",
    ),
    (
        "CREATE TABLE t_check (id int PRIMARY KEY, c text CHECK (c <> 'x'))",
        "deterministic",
        "CHECK constraint",
    ),
    (
        "CREATE TABLE t_default (id int PRIMARY KEY, c text DEFAULT 'none')",
        "deterministic",
        "DEFAULT",
    ),
    (
        "CREATE TABLE t_multi (id int PRIMARY KEY, c text, d text); CREATE INDEX ON t_multi (c, d)",
        "deterministic",
        "several columns",
    ),
];

#[tokio::test(flavor = "multi_thread")]
async fn refusals_come_before_any_change_with_a_reason() {
    let db = DevDb::start(DevDbOptions::default()).await.unwrap();
    let su = db.superuser_client(APP_DATABASE).await.unwrap();
    let mut rules_text = String::new();
    for (ddl, mode, _) in REFUSALS {
        su.batch_execute(ddl).await.unwrap();
        let table = ddl.split_whitespace().nth(2).unwrap();
        rules_text.push_str(&format!(
            "[tables.{table}]\nc = {{ type = \"text\", mode = \"{mode}\" }}\n"
        ));
    }
    let (env, rules, master) = start_encrypted(db, &rules_text).await;
    for (ddl, _, reason) in REFUSALS {
        let table = ddl.split_whitespace().nth(2).unwrap();
        let column = format!("public.{table}.c");
        let e = run(
            &env.db,
            &rules,
            &master,
            &column,
            Direction::Encrypt,
            &Options::default(),
        )
        .await
        .expect_err(&column);
        assert!(matches!(e, MigrateError::Refused { .. }), "{column}: {e}");
        assert!(e.to_string().contains(reason), "{column}: {e}");
        assert_eq!(
            column_type(&su, table, "c").await,
            "text",
            "{column} unchanged"
        );
        let shadow: bool = su
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = $1::text::regclass \
                 AND attname = 'c$pgcloak')",
                &[&table],
            )
            .await
            .unwrap()
            .get(0);
        assert!(!shadow, "{column}: no shadow column");
    }
    let triggers: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgcloak%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(triggers, 0);
}
