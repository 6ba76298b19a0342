//! Key custody end to end and the shared helpers of the provider tests (`keys_vault`,
//! `keys_kms_hsm`, `keys_scale`): rewrap between providers (local → vault → aws → pkcs11 →
//! local, each against its real server) with the data still readable through the proxy and
//! nothing unwrapping with the previous provider, and a data key the provider refuses at a
//! reload (the proxy keeps serving; only that column's values fail).

use std::future::Future;
use std::path::{Path, PathBuf};

use pgcloak::devdb::DevDb;
use tokio_postgres::SimpleQueryMessage;

use crate::harness::{ProxyOptions, config_toml, shared_db, with_database};
use crate::keys_servers::{
    Bao, Moto, Run, SoftHsm, aws_env, eventually, pgcloak, proxy_client, spawn_serve,
};
use crate::serve::{ChildGuard, free_addr, wait_listening};

pub(crate) const RULES: &str = r#"
[tables.patients]
ssn = { type = "text", mode = "deterministic" }
dx  = { type = "text", mode = "randomized" }
"#;

/// The Vault policy the README gives for pgcloak (one transit key).
pub const VAULT_POLICY: &str = r#"
path "transit/encrypt/pgcloak" { capabilities = ["update"] }
path "transit/decrypt/pgcloak" { capabilities = ["update"] }
path "transit/rewrap/pgcloak"  { capabilities = ["update"] }
path "auth/token/lookup-self"  { capabilities = ["read"] }
path "auth/token/renew-self"   { capabilities = ["update"] }
"#;

/// A database with the rules table, a config base and the environment for every provider.
pub struct Setup {
    pub db: DevDb,
    pub port: u16,
    base: String,
    pub env: Vec<(String, String)>,
}

impl Setup {
    /// In a fresh database of the calling module's shared cluster.
    #[track_caller]
    pub fn start<'a>(rules: &'a str, table_sql: &'a str) -> impl Future<Output = Setup> + 'a {
        let db = shared_db();
        async move { Self::start_on(db.await, rules, table_sql).await }
    }

    async fn start_on(db: DevDb, rules: &str, table_sql: &str) -> Setup {
        let su = db.superuser_client(db.database()).await.unwrap();
        su.batch_execute(table_sql).await.unwrap();
        let listen = free_addr();
        let base = config_toml(&db, listen, &ProxyOptions::default());
        std::fs::write(
            db.dir().join("rules.toml"),
            with_database(rules, db.database()),
        )
        .unwrap();
        let mut env = aws_env();
        env.push((
            "PGCLOAK_MASTER_KEY".into(),
            pgcloak::crypto::gen_master_key(),
        ));
        env.push((
            "PGCLOAK_MASTER_KEY_2".into(),
            pgcloak::crypto::gen_master_key(),
        ));
        Setup {
            db,
            port: listen.port(),
            base,
            env,
        }
    }

    /// Writes `NAME` = the config with `keys` as its `[keys]` table.
    pub fn config(&self, name: &str, keys: &str) -> PathBuf {
        let path = self.db.dir().join(name);
        let text = format!("rules = [\"rules.toml\"]\n{}\n{keys}", self.base);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes `NAME` holding only `keys` (for `keys rewrap --new-keys`).
    pub fn keys_file(&self, name: &str, keys: &str) -> PathBuf {
        let path = self.db.dir().join(name);
        std::fs::write(&path, keys).unwrap();
        path
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        pgcloak(args, &self.env).await
    }

    /// `pgcloak serve -c CONFIG`, listening; killed when the guard drops.
    pub async fn serve(&self, config: &Path) -> (ChildGuard, PathBuf) {
        let log = config.with_extension("log");
        let mut child = spawn_serve(config, &self.env, &log);
        wait_listening(([127, 0, 0, 1], self.port).into(), &mut child).await;
        (ChildGuard(Some(child)), log)
    }

    /// `pgcloak serve` that must exit 1 at start (on a port of its own); its output.
    pub async fn serve_fails(&self, config: &Path) -> String {
        let log = config.with_extension("fail.log");
        let text = std::fs::read_to_string(config).unwrap();
        let other = text.replace(
            &format!("address = \"127.0.0.1:{}\"", self.port),
            &format!("address = \"{}\"", free_addr()),
        );
        assert_ne!(text, other);
        let config = config.with_extension("fail.toml");
        std::fs::write(&config, other).unwrap();
        let mut child = spawn_serve(&config, &self.env, &log);
        let status = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait())
            .await
            .expect("serve exits")
            .unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(status.code(), Some(1), "{text}");
        text
    }

    /// The stored `(provider, provider_key, provider_key_version)` of every data key.
    pub async fn wrapped_by(&self) -> Vec<(String, String, Option<i32>)> {
        let su = self.db.superuser_client(self.db.database()).await.unwrap();
        su.query(
            "select provider, provider_key, provider_key_version from pgcloak.data_keys order by key_name, version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
    }
}

pub fn local_keys(var: &str) -> String {
    format!("[keys]\nmaster_key_env = \"{var}\"\n")
}

pub fn vault_keys(bao: &Bao, token_file: &Path, key: &str) -> String {
    format!(
        "[keys]\nprovider = \"vault-transit\"\n[keys.vault]\naddress = \"{}\"\nkey = \"{key}\"\ntoken_file = \"{}\"\ntls_ca = \"{}\"\ntimeout_secs = 30\n",
        bao.address,
        token_file.display(),
        bao.ca.display()
    )
}

pub fn aws_keys(moto: &Moto, key_id: &str) -> String {
    format!(
        "[keys]\nprovider = \"aws-kms\"\n[keys.aws_kms]\nkey_id = \"{key_id}\"\nregion = \"eu-west-1\"\nendpoint = \"{}\"\ntimeout_secs = 30\n",
        moto.endpoint
    )
}

pub fn pkcs11_keys(hsm: &SoftHsm, pin_env: &str) -> String {
    format!(
        "[keys]\nprovider = \"pkcs11\"\n[keys.pkcs11]\nmodule = \"{}\"\ntoken_label = \"pgcloak\"\nkey_label = \"pgcloak-kek\"\npin_env = \"{pin_env}\"\ntimeout_secs = 30\n",
        hsm.module.display()
    )
}

pub(crate) const TABLE: &str = "create table patients (id int primary key, ssn bytea, dx bytea); \
                     alter table patients owner to app";

pub(crate) fn ok(out: &Run, needle: &str) {
    assert_eq!(out.code, 0, "{}", out.text);
    assert!(
        out.text.contains(needle),
        "expected {needle:?} in:\n{}",
        out.text
    );
}

pub(crate) fn fails(out: &Run, needles: &[&str]) {
    assert_eq!(out.code, 1, "{}", out.text);
    for n in needles {
        assert!(out.text.contains(n), "expected {n:?} in:\n{}", out.text);
    }
}

/// `id → (ssn, dx)` read through the proxy.
pub(crate) async fn read_all(s: &Setup) -> Vec<(String, String, String)> {
    let c = proxy_client(&s.db, s.port).await;
    let msgs = c
        .simple_query("select id, ssn, dx from patients order by id")
        .await
        .unwrap();
    msgs.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((
                r.get(0).unwrap().to_owned(),
                r.get(1).unwrap().to_owned(),
                r.get(2).unwrap().to_owned(),
            )),
            _ => None,
        })
        .collect()
}

pub(crate) async fn insert(s: &Setup, id: i32) {
    let c = proxy_client(&s.db, s.port).await;
    c.batch_execute(&format!(
        "insert into patients (id, ssn, dx) values ({id}, 'ssn-{id}', 'dx-{id}')"
    ))
    .await
    .unwrap();
    // Stored encrypted: the plaintext is not in the table.
    let su = s.db.superuser_client(s.db.database()).await.unwrap();
    let raw: Vec<u8> = su
        .query_one(&format!("select ssn from patients where id = {id}"), &[])
        .await
        .unwrap()
        .get(0);
    let plain = format!("ssn-{id}");
    assert!(!raw.windows(plain.len()).any(|w| w == plain.as_bytes()));
}

pub(crate) fn expected(ids: &[i32]) -> Vec<(String, String, String)> {
    ids.iter()
        .map(|i| (i.to_string(), format!("ssn-{i}"), format!("dx-{i}")))
        .collect()
}

/// Serves `config`, checks every earlier row reads back, and adds row `id`.
async fn serve_read_and_add(s: &Setup, config: &Path, ids: &mut Vec<i32>, id: i32) {
    let (_guard, _log) = s.serve(config).await;
    assert_eq!(read_all(s).await, expected(ids));
    insert(s, id).await;
    ids.push(id);
    assert_eq!(read_all(s).await, expected(ids));
}

#[tokio::test(flavor = "multi_thread")]
async fn rewrap_local_vault_aws_pkcs11_local_keeps_data_readable() {
    let (bao, moto, hsm) = tokio::join!(Bao::start(), Moto::start(), SoftHsm::start());
    let mut s = Setup::start(RULES, TABLE).await;
    s.env.extend(hsm.env());
    let token = s.db.dir().join("vault.token");
    std::fs::write(&token, bao.token(VAULT_POLICY, "1h").await).unwrap();

    let local = s.config("local.toml", &local_keys("PGCLOAK_MASTER_KEY"));
    ok(
        &s.run(&["keys", "init", "-c", local.to_str().unwrap()])
            .await,
        "created data key",
    );
    let mut ids = Vec::new();
    serve_read_and_add(&s, &local, &mut ids, 1).await;

    let steps: [(&str, String, &str, &str); 4] = [
        (
            "vault",
            vault_keys(&bao, &token, "pgcloak"),
            "vault-transit",
            "transit/pgcloak",
        ),
        (
            "aws",
            aws_keys(&moto, &moto.key_arn),
            "aws-kms",
            &moto.key_arn,
        ),
        (
            "pkcs11",
            pkcs11_keys(&hsm, "PGCLOAK_HSM_PIN"),
            "pkcs11",
            "pgcloak/pgcloak-kek",
        ),
        (
            "local2",
            local_keys("PGCLOAK_MASTER_KEY_2"),
            "local",
            "sha256:",
        ),
    ];
    let mut current = local.clone();
    for (i, (name, keys, kind, key_id)) in steps.iter().enumerate() {
        let file = s.keys_file(&format!("{name}.keys.toml"), keys);
        let out = s
            .run(&[
                "keys",
                "rewrap",
                "-c",
                current.to_str().unwrap(),
                "--new-keys",
                file.to_str().unwrap(),
            ])
            .await;
        ok(&out, "re-wrapped 2 data key version(s)");
        let by = s.wrapped_by().await;
        assert!(
            by.iter()
                .all(|(k, id, _)| k == kind && id.starts_with(key_id)),
            "{by:?}"
        );
        // The old config unwraps nothing any more, and says who holds the keys now.
        let old = s.run(&["check", "-c", current.to_str().unwrap()]).await;
        fails(&old, &["is wrapped by", kind]);
        let next = s.config(&format!("{name}.toml"), keys);
        ok(
            &s.run(&["check", "-c", next.to_str().unwrap()]).await,
            "keys are consistent",
        );
        serve_read_and_add(&s, &next, &mut ids, i as i32 + 2).await;
        current = next;
    }
    assert_eq!(ids, [1, 2, 3, 4, 5]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_data_key_the_provider_refuses_fails_only_that_columns_values() {
    let s = Setup::start(RULES, TABLE).await;
    let cfg = s.config("local.toml", &local_keys("PGCLOAK_MASTER_KEY"));
    ok(
        &s.run(&["keys", "init", "-c", cfg.to_str().unwrap()]).await,
        "created data key",
    );
    let (_guard, log) = s.serve(&cfg).await;
    insert(&s, 1).await;
    // A version 2 of the ssn key that the provider does not unwrap (an altered row).
    let su = s.db.superuser_client(s.db.database()).await.unwrap();
    su.batch_execute(
        "insert into pgcloak.data_keys (key_name, version, algorithm, wrapped_key) \
         values ('public.patients.ssn', 2, 'aes-256-siv', '\\x0102')",
    )
    .await
    .unwrap();
    eventually("the refused reload in the log", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("data key poll failed")
    })
    .await;
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("does not unwrap data key public.patients.ssn v2"),
        "{logged}"
    );
    // The proxy keeps its loaded keys: writes and reads go on under v1.
    insert(&s, 2).await;
    assert_eq!(read_all(&s).await, expected(&[1, 2]));
    // A stored value under the refused version fails with a clear error for that column only.
    let raw: Vec<u8> = su
        .query_one("select ssn from patients where id = 1", &[])
        .await
        .unwrap()
        .get(0);
    let mut v2 = raw.clone();
    v2[2..6].copy_from_slice(&2u32.to_be_bytes());
    su.execute("update patients set ssn = $1 where id = 1", &[&v2])
        .await
        .unwrap();
    let c = proxy_client(&s.db, s.port).await;
    let e = c
        .simple_query("select ssn from patients where id = 1")
        .await
        .unwrap_err();
    let text = crate::harness::describe(&e);
    assert!(
        text.contains("stored value in encrypted column public.patients.ssn")
            && text.contains("XX001"),
        "{text}"
    );
    let c = proxy_client(&s.db, s.port).await;
    let dx = c
        .simple_query("select dx from patients where id = 1")
        .await
        .unwrap();
    assert!(
        matches!(&dx[1], SimpleQueryMessage::Row(r) if r.get(0) == Some("dx-1")),
        "{dx:?}"
    );
}
