//! `/metrics`, `/healthz` and `/readyz` scraped after real traffic through an encrypting
//! proxy: the counters of statements, values, refusals, bytes and sessions move, and readiness
//! follows the rules database going down and coming back.

use pgcloak::devdb::{DevDb, DevDbOptions};

use crate::harness::sqlstate;
use crate::ops_util::{free_addr, get, sample, start_with_extra, until};

const RULES: &str = r#"
[tables.ops_m]
secret = { type = "text", mode = "randomized" }
ssn    = { type = "text", mode = "deterministic" }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_real_traffic_and_readyz_follows_the_database() {
    let db = DevDb::start(DevDbOptions::default()).await.unwrap();
    db.client("app", "app-dev-password", "app")
        .await
        .unwrap()
        .batch_execute("create table ops_m(id int, secret bytea, ssn bytea)")
        .await
        .unwrap();
    let maddr = free_addr();
    let extra = format!("\n[metrics]\naddress = \"{maddr}\"\n");
    let (env, _) = start_with_extra(db, RULES, extra).await;
    let app = env.app().await;
    for i in 0..3 {
        app.execute(
            "insert into ops_m values ($1, $2, $3)",
            &[&i, &format!("s{i}"), &format!("n{i}")],
        )
        .await
        .unwrap();
    }
    let rows = app.query("select secret from ops_m", &[]).await.unwrap();
    assert_eq!(rows.len(), 3);
    let refused = app
        .query("select id from ops_m where secret like 's%'", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&refused).as_deref(), Some("0A000"));
    app.batch_execute("select 1").await.unwrap();

    let (status, m) = get(maddr, "/metrics").await;
    assert_eq!(status, 200, "{m}");
    let col = ("column", "public.ops_m.secret");
    let v = |name: &str, labels: &[(&str, &str)]| sample(&m, name, labels).unwrap_or(0.0);
    let values = "pgcloak_values_total";
    assert!(
        v(values, &[("op", "encrypt"), col, ("key_version", "1")]) >= 3.0,
        "{m}"
    );
    assert!(
        v(values, &[("op", "decrypt"), col, ("key_version", "1")]) >= 3.0,
        "{m}"
    );
    let ssn = ("column", "public.ops_m.ssn");
    assert!(v(values, &[("op", "encrypt"), ssn]) >= 3.0, "{m}");
    let gcm = [("key", "public.ops_m.secret"), ("key_version", "1")];
    assert!(v("pgcloak_gcm_encryptions_total", &gcm) >= 3.0, "{m}");
    assert_eq!(
        sample(
            &m,
            "pgcloak_gcm_encryptions_total",
            &[("key", "public.ops_m.ssn")]
        ),
        None,
        "deterministic (SIV) encryptions use no nonce: {m}"
    );
    let refusals = [("sqlstate", "0A000"), col];
    assert!(v("pgcloak_refusals_total", &refusals) >= 1.0, "{m}");
    let enc_insert = [("kind", "insert"), ("class", "encrypted")];
    assert!(v("pgcloak_statements_total", &enc_insert) >= 3.0, "{m}");
    assert!(
        v(
            "pgcloak_statements_total",
            &[("kind", "select"), ("class", "refused")]
        ) >= 1.0
    );
    assert!(
        v(
            "pgcloak_statements_total",
            &[("kind", "select"), ("class", "plain")]
        ) >= 1.0
    );
    assert!(
        v("pgcloak_client_bytes_total", &[]) > 0.0,
        "bytes count while the session runs"
    );
    assert!(v("pgcloak_upstream_bytes_total", &[]) > 0.0);
    assert!(v("pgcloak_sessions_active", &[]) >= 1.0);
    assert!(
        v("pgcloak_added_seconds_to_upstream_count", &[]) >= 5.0,
        "{m}"
    );
    assert!(v("pgcloak_login_seconds_count", &[]) >= 1.0);
    assert!(v("pgcloak_upstream_connect_seconds_count", &[]) >= 1.0);
    assert!(sample(&m, "pgcloak_last_poll_age_seconds", &[("database", "app")]).is_some());
    assert!(sample(&m, "pgcloak_keyring_generation", &[("database", "app")]).is_some());
    assert!(
        !m.contains("s0") && !m.contains("n1"),
        "no values in metrics"
    );

    // A failed login counts by reason.
    let wrong = env.proxy_client("app", "wrong", "app").await;
    assert!(wrong.is_err());
    let (_, m) = get(maddr, "/metrics").await;
    assert!(sample(&m, "pgcloak_logins_failed_total", &[("reason", "auth")]).unwrap_or(0.0) >= 1.0);

    assert_eq!(get(maddr, "/healthz").await.0, 200);
    let (status, body) = get(maddr, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(maddr, "/nope").await.0, 404);

    // The rules database goes down: not ready (naming it), still alive; back up: ready.
    env.db.stop().await.unwrap();
    until("readyz 503 with the database down", || async {
        let (s, b) = get(maddr, "/readyz").await;
        s == 503 && b.contains("database app")
    })
    .await;
    assert_eq!(get(maddr, "/healthz").await.0, 200);
    env.db.start_again().await.unwrap();
    until("readyz 200 once the database is back", || async {
        get(maddr, "/readyz").await.0 == 200
    })
    .await;
}

/// A key provider failing while serving (OpenBao stopped, then a new key version to load) is
/// counted under the configured provider's name, not `local`.
#[tokio::test(flavor = "multi_thread")]
async fn key_provider_errors_are_labelled_with_the_configured_provider() {
    use crate::keys_providers::{RULES, Setup, TABLE, VAULT_POLICY, insert, ok, vault_keys};
    let mut bao = crate::keys_servers::Bao::start().await;
    let s = Setup::start(RULES, TABLE).await;
    let token = s.db.dir().join("vault.token");
    std::fs::write(&token, bao.token(VAULT_POLICY, "1h").await).unwrap();
    let maddr = free_addr();
    let keys = vault_keys(&bao, &token, "pgcloak");
    let cfg = s.config(
        "vault-metrics.toml",
        &format!("{keys}\n[metrics]\naddress = \"{maddr}\"\n"),
    );
    ok(
        &s.run(&["keys", "init", "-c", cfg.to_str().unwrap()]).await,
        "created data key public.patients.dx v1",
    );
    let (_guard, _log) = s.serve(&cfg).await;
    insert(&s, 1).await;
    let errors = |body: &str, provider: &str| {
        sample(
            body,
            "pgcloak_key_provider_errors_total",
            &[("provider", provider)],
        )
    };
    assert_eq!(
        errors(&get(maddr, "/metrics").await.1, "vault-transit"),
        None
    );
    bao.stop().await;
    let su = s.db.superuser_client(s.db.database()).await.unwrap();
    su.batch_execute(
        "insert into pgcloak.data_keys (key_name, version, algorithm, wrapped_key, provider, provider_key, provider_key_version) \
         select key_name, version + 10, algorithm, wrapped_key, provider, provider_key, provider_key_version from pgcloak.data_keys where version = 1",
    )
    .await
    .unwrap();
    until("a key provider error counted for vault-transit", || async {
        errors(&get(maddr, "/metrics").await.1, "vault-transit").is_some_and(|n| n >= 1.0)
    })
    .await;
    let body = get(maddr, "/metrics").await.1;
    assert_eq!(errors(&body, "local"), None, "{body}");
}
