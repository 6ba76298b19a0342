//! `[audit]` with a key provider whose key never leaves the KMS (Vault Transit on a real
//! OpenBao): the audit key is a random key the provider wraps, stored once in
//! `pgcloak.audit_key`; the CLI and two successive `serve` starts all use it, so their records
//! form one chain that `audit verify` (with the same vault config) accepts.

use crate::keys_providers::{RULES, Setup, TABLE, VAULT_POLICY, insert, ok, vault_keys};
use crate::keys_servers::Bao;
use crate::ops_audit::records;
use crate::ops_audit_cli::AUDIT;

#[tokio::test(flavor = "multi_thread")]
async fn audit_with_vault_transit_keeps_one_wrapped_key_across_restarts() {
    let bao = Bao::start().await;
    let s = Setup::start(RULES, TABLE).await;
    let token = s.db.dir().join("vault.token");
    std::fs::write(&token, bao.token(VAULT_POLICY, "1h").await).unwrap();
    let keys = vault_keys(&bao, &token, "pgcloak");
    let cfg = s.config("vault-audit.toml", &format!("{keys}{AUDIT}"));
    let c = cfg.to_str().unwrap();
    let file = s.db.dir().join("audit.jsonl");

    ok(
        &s.run(&["keys", "init", "-c", c]).await,
        "created data key public.patients.dx v1",
    );
    let su = s.db.superuser_client(s.db.database()).await.unwrap();
    let stored = su
        .query(
            "select provider, provider_key, wrapped_key from pgcloak.audit_key",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].get::<_, String>(0), stored[0].get::<_, String>(1)),
        ("vault-transit".into(), "transit/pgcloak".into())
    );
    let wrapped: Vec<u8> = stored[0].get(2);
    assert!(wrapped.starts_with(b"vault:v"), "a Transit ciphertext");

    for id in 1..=2 {
        let (mut guard, _log) = s.serve(&cfg).await;
        insert(&s, id).await;
        crate::ops_util::until("the session's logout", || async {
            records(&file)
                .iter()
                .filter(|r| r["event"] == "logout")
                .count()
                >= id as usize
        })
        .await;
        // Killed and reaped before the next start binds the same port.
        guard.0.take().unwrap().kill().await.unwrap();
    }
    let after: i64 = su
        .query_one("select count(*) from pgcloak.audit_key", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(after, 1, "the second start reused the stored key");

    let recs = records(&file);
    assert_eq!(
        recs.iter().filter(|r| r["event"] == "start").count(),
        2,
        "{recs:?}"
    );
    let unwrapped = recs
        .iter()
        .find(|r| r["event"] == "keys_unwrapped")
        .unwrap();
    assert_eq!(unwrapped["provider"], "vault-transit", "{unwrapped}");
    let f = file.to_str().unwrap();
    let out = s.run(&["audit", "verify", "-c", c, f]).await;
    ok(&out, &format!("{} record(s), chain intact", recs.len()));

    // Without the stored key nothing vouches for the trail, and verify creates no new one.
    su.batch_execute("delete from pgcloak.audit_key")
        .await
        .unwrap();
    let out = s.run(&["audit", "verify", "-c", c, f]).await;
    assert_eq!(out.code, 1, "{}", out.text);
    assert!(
        out.text
            .contains("no audit key is stored in pgcloak.audit_key"),
        "{}",
        out.text
    );
    let n: i64 = su
        .query_one("select count(*) from pgcloak.audit_key", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}
