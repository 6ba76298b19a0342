//! `pgcloak migrate encrypt` refuses, before it changes anything, every column whose
//! dependents it cannot carry over, saying why and what to do instead; and the proxy refuses
//! DDL on a pending column (still plaintext) that would take it out of the migration's hands.

use pgcloak::control::migrate::{Direction, MigrateError, Options, Outcome};
use pgcloak::devdb::{APP_DATABASE, DevDb, DevDbOptions};

use crate::harness::start_encrypted;
use crate::leak::{quiet_superuser, scan_log, scan_tables, sentinel, start_logged_db};
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

/// DDL through the proxy that would retype, drop, rename or re-create a pending column (or its
/// shadow), each carrying a fresh sentinel where the statement can hold one.
fn pending_attacks(s: &mut Vec<String>) -> Vec<String> {
    let mut fresh = || {
        let v = sentinel();
        s.push(v.clone());
        v
    };
    vec![
        format!(
            "ALTER TABLE acct ALTER COLUMN email TYPE bytea USING convert_to(email || '{}', 'UTF8')",
            fresh()
        ),
        "ALTER TABLE acct ALTER COLUMN email TYPE bytea USING email::bytea".to_owned(),
        format!(
            "ALTER TABLE acct ALTER COLUMN email SET DEFAULT '{}'",
            fresh()
        ),
        "ALTER TABLE acct RENAME COLUMN email TO email_old".to_owned(),
        format!(
            "ALTER TABLE acct DROP COLUMN email, ADD COLUMN email bytea DEFAULT convert_to('{}', 'UTF8')",
            fresh()
        ),
        "ALTER TABLE acct ALTER COLUMN email TYPE varchar(200)".to_owned(),
        "ALTER TABLE acct ADD COLUMN \"email$pgcloak\" text".to_owned(),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn ddl_on_a_pending_column_is_refused_and_migrate_still_encrypts_it() {
    let db = start_logged_db().await;
    let mut sentinels: Vec<String> = (0..3).map(|_| sentinel()).collect();
    // Data from before the rule, written around the proxy (and not into the log).
    let quiet = quiet_superuser(&db, APP_DATABASE).await;
    quiet
        .batch_execute(&format!(
            "CREATE TABLE acct (id int PRIMARY KEY, email text, note text); \
             ALTER TABLE acct OWNER TO app; \
             INSERT INTO acct VALUES (1, '{}', 'a'), (2, '{}', 'b'), (3, '{}', NULL), (4, NULL, 'd')",
            sentinels[0], sentinels[1], sentinels[2]
        ))
        .await
        .unwrap();
    let rules_text = "[tables.acct]\nemail = { type = \"text\", mode = \"deterministic\" }\n";
    let (env, rules, master) = start_encrypted(db, rules_text).await;
    let app = env.app().await;
    // The app owns the table: PostgreSQL would run every one of these.
    for sql in pending_attacks(&mut sentinels) {
        let e = app.batch_execute(&sql).await.expect_err(&sql);
        let db_err = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
        assert_eq!(db_err.code().code(), "0A000", "{sql}: {db_err:?}");
        assert!(
            db_err.message().contains("pending")
                && db_err
                    .message()
                    .contains("pgcloak migrate encrypt --column public.acct.email"),
            "{sql}: {}",
            db_err.message()
        );
    }
    // Plain columns of the table stay free, and the session is still usable.
    app.batch_execute("ALTER TABLE acct ALTER COLUMN note TYPE varchar(50)")
        .await
        .expect("DDL on a plain column");
    let su = env.db.superuser_client(APP_DATABASE).await.unwrap();
    assert_eq!(column_type(&su, "acct", "email").await, "text");
    let out = run(
        &env.db,
        &rules,
        &master,
        "public.acct.email",
        Direction::Encrypt,
        &Options::default(),
    )
    .await
    .unwrap();
    assert!(matches!(out, Outcome::Done(_)), "{out:?}");
    assert_eq!(column_type(&su, "acct", "email").await, "bytea");
    // No sentinel reached a forwarded statement, and none is left in any table's rows (a
    // refused-too-late retype would leave plaintext bytes in a bytea column migrate skips).
    let found: Vec<String> = scan_log(&env.db)
        .into_iter()
        .chain(scan_tables(&env.db, APP_DATABASE).await)
        .filter(|f| sentinels.contains(&f.sentinel))
        .map(|f| format!("{} in {}", f.sentinel, f.place))
        .collect();
    assert!(found.is_empty(), "plaintext left: {found:#?}");
    // Through the proxy (once it has seen the switch) the values read back as written.
    let mut got = None;
    for _ in 0..100 {
        let rows = app
            .query("SELECT email FROM acct ORDER BY id", &[])
            .await
            .ok()
            .and_then(|r| {
                // Until the proxy sees the switch, its cached plan may show the stored bytea.
                r.iter()
                    .map(|r| r.try_get::<_, Option<String>>(0).ok())
                    .collect::<Option<Vec<_>>>()
            });
        if rows
            .as_ref()
            .is_some_and(|r| r[0].as_deref() == Some(&sentinels[0]))
        {
            got = rows;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let want: Vec<Option<String>> = (0..3)
        .map(|i| Some(sentinels[i].clone()))
        .chain([None])
        .collect();
    assert_eq!(got, Some(want));
}
