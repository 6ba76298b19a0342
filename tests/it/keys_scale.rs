//! Key custody at scale: 100 data keys loaded and re-wrapped through every provider against
//! the real servers. The test asserts that all 100 load and re-wrap; the times it prints
//! (`--nocapture`) are the figures in the README (no threshold is asserted).

use std::time::Instant;

use crate::keys_providers::{Setup, aws_keys, local_keys, pkcs11_keys, vault_keys};
use crate::keys_servers::{Bao, Moto, SoftHsm};

const KEYS: usize = 100;

fn rules() -> String {
    let mut text = String::from("[tables.wide]\n");
    for i in 1..=KEYS {
        text.push_str(&format!(
            "c{i} = {{ type = \"text\", mode = \"randomized\" }}\n"
        ));
    }
    text
}

fn table() -> String {
    let cols: Vec<String> = (1..=KEYS).map(|i| format!("c{i} bytea")).collect();
    format!(
        "create table wide ({}); alter table wide owner to app",
        cols.join(", ")
    )
}

fn ms(t: Instant) -> u128 {
    t.elapsed().as_millis()
}

#[tokio::test(flavor = "multi_thread")]
async fn hundred_data_keys_load_and_rewrap_through_every_provider() {
    let (bao, moto, hsm) = tokio::join!(Bao::start(), Moto::start(), SoftHsm::start());
    let mut s = Setup::start(&rules(), &table()).await;
    s.env.extend(hsm.env());
    let token = s.db.dir().join("vault.token");
    let policy = crate::keys_providers::VAULT_POLICY;
    std::fs::write(&token, bao.token(policy, "1h").await).unwrap();
    let providers = [
        ("local", local_keys("PGCLOAK_MASTER_KEY")),
        ("vault-transit", vault_keys(&bao, &token, "pgcloak")),
        ("aws-kms", aws_keys(&moto, &moto.key_arn)),
        ("pkcs11", pkcs11_keys(&hsm, "PGCLOAK_HSM_PIN")),
        ("local (new master key)", local_keys("PGCLOAK_MASTER_KEY_2")),
    ];
    let mut previous: Option<std::path::PathBuf> = None;
    for (i, (name, keys)) in providers.iter().enumerate() {
        let cfg = s.config(&format!("p{i}.toml"), keys);
        let c = cfg.to_str().unwrap();
        match &previous {
            None => {
                let out = s.run(&["keys", "init", "-c", c]).await;
                assert_eq!(out.code, 0, "{}", out.text);
                assert_eq!(out.text.matches("created data key").count(), KEYS);
            }
            Some(prev) => {
                let file = s.keys_file(&format!("p{i}.keys.toml"), keys);
                let t = Instant::now();
                let args = [
                    "keys",
                    "rewrap",
                    "-c",
                    prev.to_str().unwrap(),
                    "--new-keys",
                    file.to_str().unwrap(),
                ];
                let out = s.run(&args).await;
                println!(
                    "timing: keys rewrap of {KEYS} keys onto {name}: {} ms",
                    ms(t)
                );
                assert_eq!(out.code, 0, "{}", out.text);
                assert!(
                    out.text
                        .contains(&format!("re-wrapped {KEYS} data key version(s)")),
                    "{}",
                    out.text
                );
            }
        }
        let t = Instant::now();
        let out = s.run(&["check", "-c", c]).await;
        println!(
            "timing: check (verify + unwrap {KEYS} keys) with {name}: {} ms",
            ms(t)
        );
        assert_eq!(out.code, 0, "{}", out.text);
        let t = Instant::now();
        let (_guard, log) = s.serve(&cfg).await;
        // Bound is not ready: ready is after the checks and the key ring ("pgcloak listening").
        let ready = || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("pgcloak listening")
        };
        crate::keys_servers::eventually("serve ready", ready).await;
        println!(
            "timing: serve start to ready ({KEYS} keys: checks + key ring) with {name}: {} ms",
            ms(t)
        );
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(logged.contains("field encryption enabled"), "{logged}");
        previous = Some(cfg);
    }
    assert_eq!(s.wrapped_by().await.len(), KEYS);
}
