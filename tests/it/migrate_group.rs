//! Several columns in one `pgcloak migrate encrypt`: two columns of one table and a column of
//! another table that shares a data key with one of them all switch in one transaction, so
//! the join between the shared-key columns works through pgcloak right afterwards.

use pgcloak::control::keys;
use pgcloak::control::migrate::progress::Progress;
use pgcloak::control::migrate::{self, Direction, Options, Outcome};
use pgcloak::devdb::{APP_DATABASE, DevDb, DevDbOptions};

use crate::harness::start_encrypted;
use crate::migrate::{column_type, control};

const COLUMNS: [&str; 3] = ["public.pat.ssn", "public.pat.email", "public.visit.pat_ssn"];

#[tokio::test(flavor = "multi_thread")]
async fn columns_of_one_table_and_a_shared_key_switch_in_one_transaction() {
    let db = DevDb::start(DevDbOptions::default()).await.unwrap();
    let su = db.superuser_client(APP_DATABASE).await.unwrap();
    su.batch_execute(
        "CREATE TABLE pat (id int PRIMARY KEY, ssn text UNIQUE, email text); \
         CREATE TABLE visit (id int PRIMARY KEY, pat_ssn text); \
         GRANT ALL ON pat, visit TO app; \
         INSERT INTO pat SELECT i, 'ssn-' || i, 'm' || i || '@x' FROM generate_series(1, 2000) i; \
         INSERT INTO visit SELECT i, 'ssn-' || (i % 1000 + 1) FROM generate_series(1, 3000) i",
    )
    .await
    .unwrap();
    let rules_text = "[tables.pat]\nssn = { type = \"text\", mode = \"deterministic\" }\n\
                      email = { type = \"text\", mode = \"randomized\" }\n\
                      [tables.visit]\n\
                      pat_ssn = { type = \"text\", mode = \"deterministic\", key = \"public.pat.ssn\" }\n";
    let (env, rules, master) = start_encrypted(db, rules_text).await;
    let mut c = control(&env.db).await;
    let ring = keys::load_keyring(&c, &master).await.unwrap();
    let group: Vec<_> = COLUMNS
        .iter()
        .map(|n| keys::column_rule(&rules, n).unwrap().clone())
        .collect();
    let mut progress: Vec<Progress> = COLUMNS.iter().map(|_| Progress::hidden()).collect();
    let opts = Options {
        batch_rows: 700,
        ..Options::default()
    };
    let outcomes = migrate::migrate_together(
        &mut c,
        &ring,
        &group,
        Direction::Encrypt,
        &opts,
        &mut progress,
    )
    .await
    .unwrap();
    assert_eq!(outcomes.len(), 3);
    let rows: Vec<u64> = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Done(r) => r.rows,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(rows, [2000, 2000, 3000]);
    for (t, col) in [("pat", "ssn"), ("pat", "email"), ("visit", "pat_ssn")] {
        assert_eq!(column_type(&su, t, col).await, "bytea", "{t}.{col}");
    }
    // The three renamed columns' catalog rows were all written by one transaction.
    let writers: i64 = su
        .query_one(
            "SELECT count(DISTINCT xmin::text) FROM pg_attribute \
             WHERE (attrelid, attname) IN (('pat'::regclass, 'ssn'), ('pat'::regclass, 'email'), \
                                           ('visit'::regclass, 'pat_ssn'))",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(writers, 1, "the columns switched in separate transactions");
    // Through pgcloak: the join on the shared key, equality, and UNIQUE.
    let app = env.app().await;
    let mut joined = 0i64;
    for _ in 0..200 {
        let r = app
            .query_one(
                "SELECT count(*) FROM visit v JOIN pat p ON p.ssn = v.pat_ssn",
                &[],
            )
            .await;
        if let Ok(r) = r {
            joined = r.get(0);
            if joined == 3000 {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(joined, 3000, "join on the shared key through pgcloak");
    let r = app
        .query_one("SELECT email FROM pat WHERE ssn = $1", &[&"ssn-77"])
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "m77@x");
    let e = app
        .execute(
            "INSERT INTO pat (id, ssn) VALUES ($1, $2)",
            &[&9999i32, &"ssn-5"],
        )
        .await
        .expect_err("UNIQUE lost");
    assert_eq!(e.code().map(|c| c.code()), Some("23505"), "{e}");
    // Run again: every column says it is done.
    let again = migrate::migrate_together(
        &mut c,
        &ring,
        &group,
        Direction::Encrypt,
        &opts,
        &mut progress,
    )
    .await
    .unwrap();
    assert!(
        again
            .iter()
            .all(|o| matches!(o, Outcome::AlreadyDone { .. })),
        "{again:?}"
    );
}
