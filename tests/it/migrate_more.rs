//! `pgcloak migrate`: `decrypt` back to the plaintext
//! type, `--vacuum` removing the old plaintext from the table's data files, and the binary
//! killed with SIGKILL at several points then run again until it finishes (`status`,
//! `--dry-run`, a finished column's rerun).

use std::path::PathBuf;
use std::time::Duration;

use pgcloak::control::keys;
use pgcloak::control::migrate::{self, Direction, Options, Outcome};
use pgcloak::devdb::DevDb;
use tokio::process::Command;

use crate::cli::has;
use crate::harness::{ProxyOptions, config_toml, shared_db, start_encrypted, with_database};
use crate::leak::{sentinel, sentinels_in};
use crate::migrate::{column_type, control, run};

#[tokio::test(flavor = "multi_thread")]
async fn decrypt_brings_the_column_back_with_its_constraints() {
    let db = shared_db().await;
    let su = db.superuser_client(db.database()).await.unwrap();
    su.batch_execute(
        "CREATE TABLE people (id int PRIMARY KEY, ssn varchar(11) NOT NULL UNIQUE, note text); \
         CREATE INDEX people_note ON people (note); GRANT ALL ON people TO app; \
         INSERT INTO people SELECT i, 'ssn-' || i, CASE WHEN i % 3 = 0 THEN NULL ELSE 'n' || i END \
         FROM generate_series(1, 3000) i",
    )
    .await
    .unwrap();
    let rules_text = "[tables.people]\nssn = { type = \"varchar\", mode = \"deterministic\" }\n\
                      note = { type = \"text\", mode = \"randomized\" }\n";
    let (env, rules, master) = start_encrypted(db, rules_text).await;
    let opts = Options {
        batch_rows: 700,
        ..Options::default()
    };
    for c in ["public.people.ssn", "public.people.note"] {
        let out = run(&env.db, &rules, &master, c, Direction::Encrypt, &opts)
            .await
            .unwrap();
        assert!(matches!(out, Outcome::Done(_)), "{out:?}");
    }
    assert_eq!(column_type(&su, "people", "ssn").await, "bytea");
    let note_index: bool = su
        .query_one("SELECT to_regclass('people_note') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        !note_index,
        "a btree on a randomized column is dropped, not rebuilt"
    );
    // --verify-only on a finished column: every stored value decrypts.
    let verify = Options {
        verify_only: true,
        ..Options::default()
    };
    let out = run(
        &env.db,
        &rules,
        &master,
        "public.people.ssn",
        Direction::Encrypt,
        &verify,
    )
    .await
    .unwrap();
    let Outcome::Verified(s) = out else {
        panic!("{out:?}")
    };
    assert_eq!((s.rows, s.values), (3000, 3000));
    // A value written around pgcloak that is not an envelope makes verification fail.
    su.batch_execute("ALTER TABLE people DISABLE TRIGGER USER; \
                      UPDATE people SET note = '\\x01010000000100000000000000000000000000000000000000000000000000000000'::bytea WHERE id = 7; \
                      ALTER TABLE people ENABLE TRIGGER USER")
        .await
        .unwrap();
    let e = run(
        &env.db,
        &rules,
        &master,
        "public.people.note",
        Direction::Encrypt,
        &verify,
    )
    .await
    .expect_err("tampered value verified");
    assert!(e.to_string().contains("id=7"), "{e}");
    su.batch_execute("UPDATE people SET note = NULL WHERE id = 7")
        .await
        .unwrap();

    for c in ["public.people.ssn", "public.people.note"] {
        let out = run(&env.db, &rules, &master, c, Direction::Decrypt, &opts)
            .await
            .unwrap();
        assert!(matches!(out, Outcome::Done(_)), "{c}: {out:?}");
    }
    assert_eq!(
        column_type(&su, "people", "ssn").await,
        "character varying(11)"
    );
    assert_eq!(column_type(&su, "people", "note").await, "text");
    let rows = su
        .query("SELECT id, ssn, note FROM people ORDER BY id", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 3000);
    for r in &rows {
        let id: i32 = r.get(0);
        assert_eq!(r.get::<_, String>(1), format!("ssn-{id}"));
        let want = (id % 3 != 0 && id != 7).then(|| format!("n{id}"));
        assert_eq!(r.get::<_, Option<String>>(2), want, "row {id}");
    }
    let e = su
        .execute("INSERT INTO people (id, ssn) VALUES (-1, 'ssn-1')", &[])
        .await
        .expect_err("UNIQUE lost");
    assert_eq!(
        e.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    );
    let e = su
        .execute("INSERT INTO people (id, ssn) VALUES (-1, NULL)", &[])
        .await
        .expect_err("NOT NULL lost");
    assert_eq!(
        e.code(),
        Some(&tokio_postgres::error::SqlState::NOT_NULL_VIOLATION)
    );
    let status = migrate::status(&control(&env.db).await).await.unwrap();
    let phases: Vec<(&str, &str, &str)> = status
        .iter()
        .map(|r| (r.column.as_str(), r.direction.as_str(), r.phase.as_str()))
        .collect();
    assert_eq!(
        phases,
        [
            ("public.people.note", "decrypt", "done"),
            ("public.people.ssn", "decrypt", "done")
        ]
    );
}

/// The files of `table`'s heap and TOAST relations.
async fn table_files(db: &DevDb, table: &str) -> Vec<PathBuf> {
    let su = db.superuser_client(db.database()).await.unwrap();
    su.batch_execute("CHECKPOINT").await.unwrap();
    let sql = "SELECT pg_relation_filepath(oid) FROM pg_class WHERE oid = $1::text::regclass \
               OR oid = (SELECT reltoastrelid FROM pg_class WHERE oid = $1::text::regclass)";
    let mut out = Vec::new();
    for r in su.query(sql, &[&table]).await.unwrap() {
        let rel: String = r.get(0);
        let base = db.data_dir().join(rel);
        for seg in 0.. {
            let p = match seg {
                0 => base.clone(),
                n => PathBuf::from(format!("{}.{n}", base.display())),
            };
            if !p.exists() {
                break;
            }
            out.push(p);
        }
    }
    out
}

async fn sentinels_in_files(db: &DevDb, table: &str) -> usize {
    let mut n = 0;
    for f in table_files(db, table).await {
        n += sentinels_in(&std::fs::read(&f).unwrap()).len();
    }
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn vacuum_removes_the_old_plaintext_from_the_data_files() {
    let db = shared_db().await;
    let su = db.superuser_client(db.database()).await.unwrap();
    let secrets: Vec<String> = (0..200).map(|_| sentinel()).collect();
    for t in ["kept", "vacuumed"] {
        su.batch_execute(&format!(
            "CREATE TABLE {t} (id int PRIMARY KEY, secret text)"
        ))
        .await
        .unwrap();
        su.execute(
            &format!(
                "INSERT INTO {t} SELECT i, s FROM unnest($1::text[]) WITH ORDINALITY AS u(s, i)"
            ),
            &[&secrets],
        )
        .await
        .unwrap();
    }
    let rules_text = "[tables.kept]\nsecret = { type = \"text\", mode = \"randomized\" }\n\
                      [tables.vacuumed]\nsecret = { type = \"text\", mode = \"randomized\" }\n";
    let (env, rules, master) = start_encrypted(db, rules_text).await;
    let plain = Options::default();
    let vacuum = Options {
        vacuum: true,
        ..Options::default()
    };
    run(
        &env.db,
        &rules,
        &master,
        "public.kept.secret",
        Direction::Encrypt,
        &plain,
    )
    .await
    .unwrap();
    let out = run(
        &env.db,
        &rules,
        &master,
        "public.vacuumed.secret",
        Direction::Encrypt,
        &vacuum,
    )
    .await
    .unwrap();
    assert!(matches!(&out, Outcome::Done(r) if r.vacuumed), "{out:?}");
    // Without the vacuum the dead row versions still hold the sentinels (the oracle works) …
    assert!(sentinels_in_files(&env.db, "kept").await > 0);
    // … after it, none is left in the table's files.
    assert_eq!(sentinels_in_files(&env.db, "vacuumed").await, 0);
}

fn binary() -> String {
    std::env::var("PGCLOAK_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_pgcloak").to_owned())
}

fn command(cfg: &str, master: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .args(["-c", cfg])
        .env("PGCLOAK_CONTROL_PASSWORD", pgcloak::devdb::CONTROL_PASSWORD)
        .env("PGCLOAK_MASTER_KEY", master)
        .env_remove("PGCLOAK_CONFIG")
        .kill_on_drop(true);
    cmd
}

async fn output(cfg: &str, master: &str, args: &[&str]) -> crate::cli::Out {
    let out = command(cfg, master, args)
        .output()
        .await
        .expect("run pgcloak");
    crate::cli::Out {
        code: out.status.code().unwrap_or(-1),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Starts the migration and SIGKILLs it once `pgcloak.migrations` shows `ready`.
async fn kill_when(cfg: &str, master: &str, c: &tokio_postgres::Client, ready: &str) -> bool {
    let mut child = command(
        cfg,
        master,
        &[
            "migrate",
            "encrypt",
            "--column",
            "public.big.v",
            "--batch-rows",
            "300",
            "--max-rows-per-sec",
            "15000",
        ],
    )
    .stdout(std::process::Stdio::null())
    .spawn()
    .expect("spawn");
    let sql = format!("SELECT EXISTS (SELECT 1 FROM pgcloak.migrations WHERE {ready})");
    for _ in 0..3000 {
        if let Ok(r) = c.query_one(&sql, &[]).await
            && r.get::<_, bool>(0)
        {
            child.start_kill().expect("SIGKILL");
            let status = child.wait().await.expect("wait");
            return !status.success();
        }
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never reached {ready}");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_at_several_points_the_rerun_finishes() {
    let db = shared_db().await;
    let database = db.database().to_owned();
    let su = db.superuser_client(db.database()).await.unwrap();
    su.batch_execute(
        "CREATE TABLE big (id int PRIMARY KEY, v text UNIQUE); \
         INSERT INTO big SELECT i, 'v' || i FROM generate_series(1, 30000) i; ANALYZE big",
    )
    .await
    .unwrap();
    let rules_text = "[tables.big]\nv = { type = \"text\", mode = \"deterministic\" }\n";
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
    let base = config_toml(&db, listen, &ProxyOptions::default());
    std::fs::write(
        db.dir().join("rules.toml"),
        with_database(rules_text, db.database()),
    )
    .unwrap();
    let cfg = db.dir().join("pgcloak.toml");
    std::fs::write(
        &cfg,
        format!(
            "rules = [\"rules.toml\"]\n{base}\n[keys]\nmaster_key_env = \"PGCLOAK_MASTER_KEY\"\n"
        ),
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    let master = pgcloak::crypto::gen_master_key();

    let plan = output(
        &cfg,
        &master,
        &[
            "migrate",
            "encrypt",
            "--column",
            "public.big.v",
            "--dry-run",
        ],
    )
    .await;
    assert_eq!(plan.code, 0, "{}", plan.text);
    has(&plan, "plan (nothing changed)");
    has(
        &plan,
        "index big_v_key rebuilt on the new column (constraint big_v_key)",
    );
    has(
        &plan,
        "ALTER TABLE \"public\".\"big\" RENAME COLUMN \"v$pgcloak\" TO \"v\"",
    );
    assert_eq!(
        column_type(&su, "big", "v").await,
        "text",
        "dry run changed nothing"
    );
    let st = output(&cfg, &master, &["migrate", "status"]).await;
    has(&st, &format!("database {database}: no migrations"));

    // Killed in the backfill, twice, with writes around pgcloak (plaintext, as an app writes
    // a pending column) in between, then in whatever phase follows the backfill.
    assert!(kill_when(&cfg, &master, &su, "rows_done >= 3000").await);
    su.batch_execute("UPDATE big SET v = 'changed' || id WHERE id <= 100; DELETE FROM big WHERE id BETWEEN 101 AND 110; \
                      INSERT INTO big VALUES (40000, 'late')")
        .await
        .unwrap();
    let st = output(&cfg, &master, &["migrate", "status"]).await;
    has(
        &st,
        &format!("database {database}: public.big.v: encrypt backfill: "),
    );
    assert!(kill_when(&cfg, &master, &su, "rows_done >= 12000").await);
    su.batch_execute("UPDATE big SET v = 'again' || id WHERE id BETWEEN 20000 AND 20100")
        .await
        .unwrap();
    // The last kill may come too late (the run finished): then the rerun says so.
    let killed = kill_when(&cfg, &master, &su, "phase <> 'backfill'").await;
    let out = output(
        &cfg,
        &master,
        &["migrate", "encrypt", "--column", "public.big.v"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.text);
    if killed {
        has(
            &out,
            &format!("database {database}: public.big.v: encrypted: "),
        );
        has(&out, "VACUUM FULL");
    } else {
        has(&out, "already encrypted");
    }
    let again = output(
        &cfg,
        &master,
        &["migrate", "encrypt", "--column", "public.big.v"],
    )
    .await;
    assert_eq!(again.code, 0, "{}", again.text);
    has(&again, "already encrypted");

    // Every row holds the envelope of its latest value.
    let c = control(&db).await;
    let ring = keys::load_keyring(
        &c,
        &pgcloak::crypto::MasterKey::from_base64(&master, "t").unwrap(),
    )
    .await
    .unwrap();
    let rows = su
        .query("SELECT id, v FROM big ORDER BY id", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 30000 - 10 + 1);
    for r in &rows {
        let id: i32 = r.get(0);
        let want = match id {
            1..=100 => format!("changed{id}"),
            20000..=20100 => format!("again{id}"),
            40000 => "late".to_owned(),
            _ => format!("v{id}"),
        };
        let got = ring.decrypt("public.big.v", r.get::<_, &[u8]>(1)).unwrap();
        assert_eq!(got.as_slice(), want.as_bytes(), "row {id}");
    }
    let queue: i64 = su
        .query_one("SELECT count(*) FROM pgcloak.migrate_queue", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(queue, 0);
    let st = output(&cfg, &master, &["migrate", "status"]).await;
    has(&st, "public.big.v: encrypt done");
}
