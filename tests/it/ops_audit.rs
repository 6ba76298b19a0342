//! The audit trail: login, refusal, decrypt failure and logout records (with per-column
//! counts) in a JSON-lines file, never a value; `pgcloak audit verify` accepts the chain and
//! names the first broken record once one record is edited or removed; the per-role decrypt
//! tripwire refuses with 53400 and leaves a record.

use std::path::Path;

use pgcloak::devdb::DevDb;
use serde_json::Value;
use tokio::process::Command;

use crate::harness::{describe, shared_db, sqlstate};
use crate::ops_util::{bin, start_with_extra, until};

const RULES: &str = r#"
[tables.ops_a]
secret = { type = "text", mode = "randomized" }
"#;

/// A fresh database of the module's shared cluster with the rules table.
async fn db_with_table() -> DevDb {
    let db = shared_db().await;
    db.client("app", "app-dev-password", db.database())
        .await
        .unwrap()
        .batch_execute("create table ops_a(id int, secret bytea)")
        .await
        .unwrap();
    db
}

pub(crate) fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect()
}

async fn verify(config: &Path, file: &Path, master: &str) -> (i32, String) {
    let out = Command::new(bin())
        .args(["audit", "verify", "-c"])
        .arg(config)
        .arg(file)
        .env("PGCLOAK_MASTER_KEY", master)
        .env_remove("PGCLOAK_CONFIG")
        .output()
        .await
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_trail_records_sessions_and_verify_detects_an_edit() {
    let db = db_with_table().await;
    let extra = "\n[audit]\nfile = \"audit.jsonl\"\n".to_owned();
    let (env, master) = start_with_extra(db, RULES, extra).await;
    let file = env.db.dir().join("audit.jsonl");
    let app = env.app().await;
    for i in 0..2 {
        app.execute(
            "insert into ops_a values ($1, $2)",
            &[&i, &format!("secret-{i}")],
        )
        .await
        .unwrap();
    }
    assert_eq!(
        app.query("select secret from ops_a", &[])
            .await
            .unwrap()
            .len(),
        2
    );
    let e = app
        .query("select 1 from ops_a where secret like 'x%'", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("0A000"), "{}", describe(&e));
    env.direct_app()
        .await
        .batch_execute("insert into ops_a values (9, '\\x01010000000100112233'::bytea)")
        .await
        .unwrap();
    let e = app
        .query("select secret from ops_a where id = 9", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("XX001"), "{}", describe(&e));
    drop(app);
    until("the logout record", || async {
        records(&file).iter().any(|r| r["event"] == "logout")
    })
    .await;

    let recs = records(&file);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains("secret-0") && !text.contains("secret-1"),
        "no values: {text}"
    );
    assert!(!text.contains("like"), "no SQL text: {text}");
    let find = |ev: &str| {
        recs.iter()
            .find(|r| r["event"] == ev)
            .unwrap_or_else(|| panic!("no {ev}: {text}"))
    };
    let keys = find("keys_unwrapped");
    assert_eq!(
        keys["keys"]["public.ops_a.secret"],
        serde_json::json!([1]),
        "{keys}"
    );
    assert_eq!(keys["provider"], "local");
    let login = find("login");
    assert_eq!(
        (login["role"].as_str(), login["database"].as_str()),
        (Some("app"), Some(env.db.database()))
    );
    assert_eq!(login["tls_version"], "TLSv1.3");
    assert!(
        login["client_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    let refused = find("refused");
    assert_eq!(refused["sqlstate"], "0A000");
    assert_eq!(refused["column"], "public.ops_a.secret");
    assert!(
        refused["fingerprint"]
            .as_str()
            .is_some_and(|f| f.len() == 16),
        "{refused}"
    );
    let failed = find("decrypt_failed");
    assert_eq!(failed["column"], "public.ops_a.secret");
    let logout = find("logout");
    let counts = &logout["columns"]["public.ops_a.secret"];
    assert_eq!(counts["encrypted"], 2, "{logout}");
    assert_eq!(counts["decrypted"], 2, "{logout}");
    assert_eq!(counts["failed"], 1, "{logout}");
    let seqs: Vec<u64> = recs.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=recs.len() as u64).collect::<Vec<_>>());

    let config = env.db.dir().join("pgcloak.toml");
    let (code, out) = verify(&config, &file, &master).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("chain intact"), "{out}");

    // Edit one record (the login's role): verify fails and names that line.
    let login_line = text
        .lines()
        .position(|l| l.contains("\"event\":\"login\""))
        .unwrap()
        + 1;
    let edited = env.db.dir().join("edited.jsonl");
    std::fs::write(
        &edited,
        text.replacen("\"role\":\"app\"", "\"role\":\"eve\"", 1),
    )
    .unwrap();
    let (code, out) = verify(&config, &edited, &master).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("line {login_line}: broken record")),
        "{out}"
    );
    // Remove one record: the next one breaks the chain.
    let lines: Vec<&str> = text.lines().collect();
    let removed = env.db.dir().join("removed.jsonl");
    std::fs::write(&removed, [&lines[..1], &lines[2..]].concat().join("\n")).unwrap();
    let (code, out) = verify(&config, &removed, &master).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("line 2: broken record"), "{out}");
    // Another master key cannot vouch for the trail.
    let (code, _) = verify(&config, &file, &pgcloak::crypto::gen_master_key()).await;
    assert_eq!(code, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn decrypt_rate_tripwire_refuses_with_53400_and_audits() {
    let db = db_with_table().await;
    let extra = "\n[audit]\nfile = \"audit.jsonl\"\nmax_decrypts_per_minute = 4\n".to_owned();
    let (env, _) = start_with_extra(db, RULES, extra).await;
    let app = env.app().await;
    for i in 0..6 {
        app.execute("insert into ops_a values ($1, $2)", &[&i, &format!("v{i}")])
            .await
            .unwrap();
    }
    let e = app
        .query("select secret from ops_a", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("53400"), "{}", describe(&e));
    // Statements that decrypt nothing still work in the same session.
    let n: i64 = app
        .query_one("select count(*) from ops_a", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 6);
    let file = env.db.dir().join("audit.jsonl");
    until("the rate_limited record", || async {
        records(&file)
            .iter()
            .any(|r| r["event"] == "rate_limited" && r["limit_per_minute"] == 4)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn login_record_names_the_client_certificate_subject() {
    let db = db_with_table().await;
    let clients_ca = pgcloak::devdb::TestCa::new("pgcloak it clients CA").unwrap();
    let ca_path = db.dir().join("clients-ca.crt");
    std::fs::write(&ca_path, clients_ca.cert_pem()).unwrap();
    let key_text = crate::ops_util::init_keys(&db, RULES).await;
    let opts = crate::harness::ProxyOptions {
        rules: Some(RULES.to_owned()),
        master_key_b64: Some(key_text),
        extra_toml: Some("\n[audit]\nfile = \"audit.jsonl\"\n".to_owned()),
        tls_client_ca: Some(ca_path),
        ..crate::harness::ProxyOptions::default()
    };
    let env = crate::harness::TestEnv::start_on(db, opts).await;
    let (cert, key) = clients_ca.issue_client(pgcloak::devdb::APP_USER).unwrap();
    let cfg = env.proxy_pg_config(
        pgcloak::devdb::APP_USER,
        pgcloak::devdb::APP_PASSWORD,
        env.db.database(),
    );
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(crate::security::client_auth_tls(
        &env, &cert, &key,
    ));
    let (c, conn) = cfg.connect(tls).await.unwrap();
    tokio::spawn(conn);
    c.query_one("select 1", &[]).await.unwrap();
    let file = env.db.dir().join("audit.jsonl");
    until("the login record", || async {
        records(&file).iter().any(|r| r["event"] == "login")
    })
    .await;
    let recs = records(&file);
    let login = recs.iter().find(|r| r["event"] == "login").unwrap();
    assert_eq!(login["client_cert_subject"], "CN=app", "{login}");
    let der = rustls_pemfile::certs(&mut cert.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, der.as_ref()));
    assert_eq!(login["client_cert_sha256"], sha.as_str(), "{login}");
}
