//! Vault Transit (OpenBao over TLS) end to end: `keys init`, `serve`, `keys rotate`, transit
//! key rotation with `keys rewrap --latest`, `keys list`, a key the token may not use (the
//! policy printed), a revoked token, OpenBao down at a reload (keeps serving) and at start
//! (exit 1), AppRole login and token renewal while serving.

use std::path::Path;

use crate::keys_providers::{
    RULES, Setup, TABLE, VAULT_POLICY, expected, fails, insert, ok, read_all, vault_keys,
};
use crate::keys_servers::{Bao, eventually};

#[tokio::test(flavor = "multi_thread")]
async fn vault_transit_init_rotate_rewrap_latest_and_failures() {
    let mut bao = Bao::start().await;
    let s = Setup::start(RULES, TABLE).await;
    let token = s.db.dir().join("vault.token");
    std::fs::write(&token, bao.token(VAULT_POLICY, "1h").await).unwrap();
    let cfg = s.config("vault.toml", &vault_keys(&bao, &token, "pgcloak"));
    let c = cfg.to_str().unwrap();

    // The provider a vault config builds wraps inside Vault: its key reference names the
    // transit key, and there is no master key source in the config at all.
    let parsed = pgcloak::config::Config::load(&cfg).unwrap();
    assert!(parsed.keys.master_key_env.is_none() && parsed.keys.master_key_file.is_none());
    let provider = pgcloak::control::providers::from_config(&parsed.keys).unwrap();
    assert_eq!(
        provider.kek().to_string(),
        "vault-transit key transit/pgcloak"
    );

    ok(
        &s.run(&["keys", "init", "-c", c]).await,
        "created data key public.patients.dx v1",
    );
    assert_eq!(
        s.wrapped_by().await,
        vec![("vault-transit".into(), "transit/pgcloak".into(), Some(1)); 2]
    );
    let (guard, log) = s.serve(&cfg).await;
    insert(&s, 1).await;
    ok(
        &s.run(&["keys", "rotate", "-c", c, "--no-reencrypt"]).await,
        "public.patients.ssn: new writes use v2",
    );
    // Rotate the transit key, then move every wrap onto its latest version inside Vault.
    bao.root_call("POST", "transit/keys/pgcloak/rotate", serde_json::json!({}))
        .await;
    ok(
        &s.run(&["keys", "rewrap", "-c", c, "--latest"]).await,
        "re-wrapped 4 data key version(s) onto the latest vault-transit key transit/pgcloak",
    );
    assert!(s.wrapped_by().await.iter().all(|(_, _, v)| *v == Some(2)));
    ok(
        &s.run(&["keys", "rewrap", "-c", c, "--latest"]).await,
        "(4 already were)",
    );
    let listed = s.run(&["keys", "list", "-c", c]).await;
    let by = "wrapped by vault-transit key transit/pgcloak v2)";
    assert_eq!(listed.text.matches(by).count(), 4, "{}", listed.text);
    insert(&s, 2).await;
    assert_eq!(read_all(&s).await, expected(&[1, 2]));

    // A key this token may not use: a permission error, with the policy to grant.
    let wrong = s.config("wrong-key.toml", &vault_keys(&bao, &token, "other"));
    let out = s.run(&["check", "-c", wrong.to_str().unwrap()]).await;
    fails(
        &out,
        &[
            "key-provider",
            "denied",
            "permission denied",
            "path \"transit/encrypt/other\"",
        ],
    );

    // A revoked token: serve refuses to start, naming provider, address and cause.
    let revoked_token = s.db.dir().join("revoked.token");
    let t2 = bao.token(VAULT_POLICY, "1h").await;
    bao.root_call(
        "POST",
        "auth/token/revoke",
        serde_json::json!({"token": t2}),
    )
    .await;
    std::fs::write(&revoked_token, t2).unwrap();
    let revoked = s.config("revoked.toml", &vault_keys(&bao, &revoked_token, "pgcloak"));
    let text = s.serve_fails(&revoked).await;
    for needle in [
        "key provider vault-transit at",
        &bao.address,
        "permission denied",
    ] {
        assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
    }

    // Vault goes down while serving: a key reload fails, the proxy keeps serving.
    bao.stop().await;
    let su = s.db.superuser_client(s.db.database()).await.unwrap();
    su.batch_execute(
        "insert into pgcloak.data_keys (key_name, version, algorithm, wrapped_key, provider, provider_key, provider_key_version) \
         select key_name, version + 10, algorithm, wrapped_key, provider, provider_key, provider_key_version from pgcloak.data_keys where version = 1",
    )
    .await
    .unwrap();
    eventually("the failed reload in the log", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("data key poll failed")
    })
    .await;
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("is unreachable"), "{logged}");
    assert_eq!(read_all(&s).await, expected(&[1, 2]));
    drop(guard);

    // Down at start: exit 1 naming the provider and its address.
    let text = s.serve_fails(&cfg).await;
    assert!(
        text.contains(&format!(
            "key provider vault-transit at {} is unreachable",
            bao.address
        )),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_approle_login_and_token_renewal_while_serving() {
    let bao = Bao::start().await;
    let mut s = Setup::start(RULES, TABLE).await;
    // AppRole tokens that live 4 s unless renewed.
    let (role, secret) = bao.approle(VAULT_POLICY, "4s").await;
    s.env.push(("VAULT_ROLE_ID".into(), role));
    s.env.push(("VAULT_SECRET_ID".into(), secret));
    let keys = vault_keys(&bao, Path::new("unused"), "pgcloak").replace(
        "token_file = \"unused\"",
        "approle_role_id_env = \"VAULT_ROLE_ID\"\napprole_secret_id_env = \"VAULT_SECRET_ID\"",
    );
    let cfg = s.config("approle.toml", &keys);
    let c = cfg.to_str().unwrap();
    ok(
        &s.run(&["keys", "init", "-c", c]).await,
        "created data key public.patients.ssn v1",
    );
    let (_guard, log) = s.serve(&cfg).await;
    insert(&s, 1).await;
    // The proxy renews its token in the background (at half its TTL): after three renewals,
    // well past the first token's TTL, it still unwraps.
    eventually("three token renewals", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("vault token renewed")
            .count()
            >= 3
    })
    .await;
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.matches("vault token renewed").count() >= 3,
        "{logged}"
    );
    ok(
        &s.run(&["keys", "rotate", "-c", c, "--no-reencrypt"]).await,
        "new writes use v2",
    );
    eventually("the reload of the rotated keys", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("data keys reloaded")
    })
    .await;
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains("data key poll failed"), "{logged}");
    insert(&s, 2).await;
    assert_eq!(read_all(&s).await, expected(&[1, 2]));
}
