//! The CLI on the audit trail: `pgcloak keys init|rotate` and `migrate encrypt`, run as the
//! real binary while `pgcloak serve` writes to the same file, each leave a start and an end
//! record (outcome and counts, never values) on the server's HMAC chain; `audit verify`
//! accepts the interleaved file and names the record in which one byte was edited.

use serde_json::Value;

use crate::keys_providers::{Setup, insert, local_keys, ok};
use crate::ops_audit::records;

pub(crate) const RULES: &str = r#"
[tables.patients]
ssn = { type = "text", mode = "deterministic" }
dx  = { type = "text", mode = "randomized" }

[tables.notes]
body = { type = "text", mode = "randomized" }
"#;

pub(crate) const TABLES: &str = "create table patients (id int primary key, ssn bytea, dx bytea); \
     alter table patients owner to app; \
     create table notes (id int primary key, body text); \
     insert into notes select g, 'note-' || g from generate_series(1, 50) g; \
     alter table notes owner to app";

pub(crate) const AUDIT: &str = "\n[audit]\nfile = \"audit.jsonl\"\n";

/// The `command_end` record of `command` (the last one).
pub(crate) fn end_of<'a>(recs: &'a [Value], command: &str) -> &'a Value {
    recs.iter()
        .rev()
        .find(|r| r["event"] == "command_end" && r["command"] == command)
        .unwrap_or_else(|| panic!("no command_end of {command}: {recs:?}"))
}

fn position(recs: &[Value], f: impl Fn(&Value) -> bool) -> usize {
    recs.iter().position(f).expect("record present")
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_key_commands_and_migrations_share_the_servers_audit_chain() {
    let s = Setup::start(RULES, TABLES).await;
    let cfg = s.config(
        "audited.toml",
        &format!("{}{AUDIT}", local_keys("PGCLOAK_MASTER_KEY")),
    );
    let c = cfg.to_str().unwrap();
    let file = s.db.dir().join("audit.jsonl");
    ok(
        &s.run(&["keys", "init", "-c", c]).await,
        "created data key public.notes.body v1",
    );
    let (guard, _log) = s.serve(&cfg).await;
    insert(&s, 1).await;
    ok(
        &s.run(&[
            "migrate",
            "encrypt",
            "-c",
            c,
            "--column",
            "public.notes.body",
        ])
        .await,
        "50 row(s) backfilled",
    );
    ok(
        &s.run(&["keys", "rotate", "-c", c, "--no-reencrypt"]).await,
        "public.patients.ssn: new writes use v2",
    );
    // A command that fails is audited as failed (and names no value).
    let bad = s
        .run(&["keys", "reencrypt", "-c", c, "--column", "public.nope.x"])
        .await;
    assert_eq!(bad.code, 1, "{}", bad.text);
    insert(&s, 2).await;
    crate::ops_util::until("the second session's logout", || async {
        records(&file)
            .iter()
            .filter(|r| r["event"] == "logout")
            .count()
            >= 2
    })
    .await;
    drop(guard);

    let recs = records(&file);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains("note-") && !text.contains("ssn-1"),
        "no values: {text}"
    );
    let init = end_of(&recs, "keys init");
    assert_eq!(
        (&init["outcome"], &init["counts"]["keys_created"]),
        (&"ok".into(), &3.into())
    );
    let migrate = end_of(&recs, "migrate encrypt");
    assert_eq!(migrate["outcome"], "ok", "{migrate}");
    assert_eq!(migrate["counts"]["rows_backfilled"], 50, "{migrate}");
    let rotate = end_of(&recs, "keys rotate");
    assert_eq!(rotate["counts"]["versions_created"], 3, "{rotate}");
    let failed = end_of(&recs, "keys reencrypt");
    assert_eq!(failed["outcome"], "failed", "{failed}");
    let start = recs
        .iter()
        .find(|r| r["event"] == "command_start" && r["command"] == "migrate encrypt")
        .unwrap();
    assert_eq!(start["columns"], serde_json::json!(["public.notes.body"]));
    // The server's and the CLI's records interleave on one chain: server records come before
    // and after the CLI's, with other pids, and seq counts 1, 2, … through all of them.
    let server_start = position(&recs, |r| r["event"] == "start");
    let cli = position(&recs, |r| {
        r["event"] == "command_start" && r["command"] == "migrate encrypt"
    });
    let last_login = recs.iter().rposition(|r| r["event"] == "login").unwrap();
    assert!(server_start < cli && cli < last_login, "{recs:?}");
    assert_ne!(recs[server_start]["pid"], start["pid"]);
    let seqs: Vec<u64> = recs.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=recs.len() as u64).collect::<Vec<_>>());

    let f = file.to_str().unwrap();
    ok(
        &s.run(&["audit", "verify", "-c", c, f]).await,
        "chain intact",
    );
    // One byte of the migration's end record edited: verify names that line.
    let line = text
        .lines()
        .position(|l| l.contains("\"command_end\"") && l.contains("migrate encrypt"))
        .unwrap()
        + 1;
    let edited = s.db.dir().join("edited.jsonl");
    std::fs::write(
        &edited,
        text.replacen("\"rows_backfilled\":50", "\"rows_backfilled\":51", 1),
    )
    .unwrap();
    let out = s
        .run(&["audit", "verify", "-c", c, edited.to_str().unwrap()])
        .await;
    assert_eq!(out.code, 1, "{}", out.text);
    assert!(
        out.text.contains(&format!("line {line}: broken record")),
        "{}",
        out.text
    );
}
