//! The key-management and check subcommands as a user runs them: the real binary against a
//! throwaway PostgreSQL, secrets passed in the child's environment only.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use base64::Engine;
use pgcloak::config::Mode;
use pgcloak::control::keys;
use pgcloak::crypto::MasterKey;
use pgcloak::devdb::{CONTROL_PASSWORD, DevDb};
use tokio::process::Command;

use crate::harness::{ProxyOptions, config_toml, shared_db, with_database};

const RULES: &str = r#"
[tables.patients]
ssn = { type = "text", mode = "deterministic" }
dx  = { type = "text", mode = "randomized" }
"#;

/// A finished command: exit code, stdout then stderr.
pub(crate) struct Out {
    pub code: i32,
    pub text: String,
}

/// Runs the binary with the control password and `master` in its environment.
pub(crate) async fn pgcloak(args: &[&str], master: &str, extra_env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgcloak"));
    cmd.args(args)
        .env("PGCLOAK_CONTROL_PASSWORD", CONTROL_PASSWORD)
        .env("PGCLOAK_MASTER_KEY", master)
        .env_remove("PGCLOAK_CONFIG")
        .kill_on_drop(true);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("run pgcloak");
    Out {
        code: out.status.code().unwrap_or(-1),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn write_config(db: &DevDb) -> String {
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 1));
    let base = config_toml(db, listen, &ProxyOptions::default());
    let text = format!(
        "rules = [\"rules.toml\"]\n{base}\n[keys]\nmaster_key_env = \"PGCLOAK_MASTER_KEY\"\n"
    );
    std::fs::write(
        db.dir().join("rules.toml"),
        with_database(RULES, db.database()),
    )
    .unwrap();
    let path = db.dir().join("pgcloak.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

pub(crate) fn has(out: &Out, needle: &str) {
    assert!(
        out.text.contains(needle),
        "expected {needle:?} in:\n{}",
        out.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_keys_init_rotate_rewrap_through_the_binary() {
    let db = shared_db().await;
    let cfg = write_config(&db);
    let su = db.superuser_client(db.database()).await.unwrap();
    // dx has the wrong storage type, and no keys exist yet.
    su.batch_execute("create table patients (id int, ssn bytea, dx text)")
        .await
        .unwrap();
    let master = pgcloak::crypto::gen_master_key();

    let out = pgcloak(&["check", "-c", &cfg], &master, &[]).await;
    assert_eq!(out.code, 1, "{}", out.text);
    has(&out, "pending: column public.patients.dx is stored as text");
    has(&out, "missing-key");

    su.batch_execute("alter table patients alter column dx type bytea using dx::bytea")
        .await
        .unwrap();
    let out = pgcloak(&["keys", "init", "-c", &cfg], &master, &[]).await;
    assert_eq!(out.code, 0, "{}", out.text);
    has(&out, "created data key public.patients.ssn v1");
    let again = pgcloak(&["keys", "init", "-c", &cfg], &master, &[]).await;
    assert_eq!(again.code, 0, "{}", again.text);
    has(&again, "nothing to do");
    let out = pgcloak(&["check", "-c", &cfg], &master, &[]).await;
    assert_eq!(out.code, 0, "{}", out.text);

    let out = pgcloak(
        &[
            "keys",
            "rotate",
            "-c",
            &cfg,
            "--column",
            "public.patients.ssn",
        ],
        &master,
        &[],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.text);
    has(&out, "public.patients.ssn: new writes use v2");
    has(&out, "waiting 3s for running proxies");
    has(
        &out,
        "public.patients.ssn: 0 value(s) re-encrypted to v2, 0 unreadable, 0 conflicts",
    );
    let versions: i64 = su
        .query_one(
            "select count(*) from pgcloak.data_keys where key_name = 'public.patients.ssn'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(versions, 2);

    let new_master = pgcloak::crypto::gen_master_key();
    let out = pgcloak(
        &[
            "keys",
            "rewrap",
            "-c",
            &cfg,
            "--new-master-key-env",
            "NEW_KEY",
        ],
        &master,
        &[("NEW_KEY", &new_master)],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.text);
    let old = pgcloak(&["check", "-c", &cfg], &master, &[]).await;
    assert_eq!(old.code, 1, "{}", old.text);
    has(&old, "wrong-master-key");
    let new = pgcloak(&["check", "-c", &cfg], &new_master, &[]).await;
    assert_eq!(new.code, 0, "{}", new.text);
    assert!(!Path::new(&cfg).with_file_name("master.key").exists());
}

/// How many stored values of `column` carry key version `v` in their envelope header.
async fn count_version(su: &tokio_postgres::Client, column: &str, v: u8) -> i64 {
    let sql =
        format!("select count(*) from patients where substring({column} from 3 for 4) = $1::bytea");
    su.query_one(&sql, &[&vec![0u8, 0, 0, v]])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_reencrypt_through_the_binary() {
    let db = shared_db().await;
    let cfg = write_config(&db);
    let su = db.superuser_client(db.database()).await.unwrap();
    su.batch_execute("create table patients (id int primary key, ssn bytea unique, dx bytea)")
        .await
        .unwrap();
    let master = pgcloak::crypto::gen_master_key();
    let out = pgcloak(&["keys", "init", "-c", &cfg], &master, &[]).await;
    assert_eq!(out.code, 0, "{}", out.text);
    let mk = MasterKey::from_base64(&master, "test").unwrap();
    let ring = keys::load_keyring(&su, &mk).await.unwrap();
    for id in 1..=3 {
        let ssn = ring
            .encrypt(
                "public.patients.ssn",
                Mode::Deterministic,
                format!("ssn{id}").as_bytes(),
            )
            .unwrap();
        let dx = ring
            .encrypt("public.patients.dx", Mode::Randomized, b"flu")
            .unwrap();
        su.execute(
            "insert into patients values ($1, $2, $3)",
            &[&id, &ssn, &dx],
        )
        .await
        .unwrap();
    }

    let out = pgcloak(
        &["keys", "rotate", "-c", &cfg, "--no-reencrypt"],
        &master,
        &[],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.text);
    has(&out, "warning: public.patients.ssn is deterministic");
    has(&out, "run `pgcloak keys reencrypt` later");
    assert_eq!(
        count_version(&su, "ssn", 1).await,
        3,
        "nothing re-written yet"
    );

    let out = pgcloak(&["keys", "reencrypt", "-c", &cfg], &master, &[]).await;
    assert_eq!(out.code, 0, "{}", out.text);
    has(
        &out,
        "public.patients.ssn: 3 value(s) re-encrypted to v2, 0 unreadable, 0 conflicts",
    );
    has(
        &out,
        "public.patients.dx: 3 value(s) re-encrypted to v2, 0 unreadable, 0 conflicts",
    );
    assert_eq!(count_version(&su, "ssn", 2).await, 3);
    assert_eq!(count_version(&su, "dx", 2).await, 3);

    su.execute(
        "insert into patients values (4, null, 'not pgcloak'::bytea)",
        &[],
    )
    .await
    .unwrap();
    let out = pgcloak(
        &["keys", "reencrypt", "-c", &cfg, "--column", "patients.dx"],
        &master,
        &[],
    )
    .await;
    assert_eq!(out.code, 1, "{}", out.text);
    has(
        &out,
        "public.patients.dx: 0 value(s) re-encrypted to v2, 1 unreadable, 0 conflicts",
    );
    has(&out, "fix or delete those rows");
    assert!(!out.text.contains("public.patients.ssn"), "{}", out.text);
    assert!(!out.text.contains("not pgcloak"), "never shows a value");
}

#[tokio::test]
async fn gen_master_key_and_usage_errors() {
    let out = pgcloak(&["gen-master-key"], "", &[]).await;
    assert_eq!(out.code, 0);
    let key = base64::engine::general_purpose::STANDARD
        .decode(out.text.trim())
        .unwrap();
    assert_eq!(key.len(), 32);
    let other = pgcloak(&["gen-master-key"], "", &[]).await;
    assert_ne!(out.text, other.text, "keys must be random");
    assert_eq!(pgcloak(&["keys", "bogus"], "", &[]).await.code, 2);
    let missing = pgcloak(&["check", "-c", "/nonexistent/pgcloak.toml"], "", &[]).await;
    assert_eq!(missing.code, 1);
    has(&missing, "/nonexistent/pgcloak.toml");
}
