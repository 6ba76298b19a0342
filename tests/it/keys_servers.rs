//! Real key servers for the key-provider tests, started here and stopped on drop: OpenBao
//! (`bao server -dev` over TLS with its own CA; Vault Transit), moto's server (AWS KMS), and a
//! SoftHSM2 token in a temporary directory (PKCS#11). `scripts/setup` installs them
//! (tests/keyservers/.venv and Debian's softhsm2). Also: the pgcloak binary as a child
//! process, with the secrets a provider needs in the child's environment only.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use pgcloak::devdb::{CONTROL_PASSWORD, DevDb};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::serve::free_addr;

/// The pgcloak binary: `PGCLOAK_BIN` when set (a private copy), else the one cargo built.
pub fn pgcloak_bin() -> PathBuf {
    std::env::var_os("PGCLOAK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_pgcloak")))
}

fn venv_bin(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keyservers/.venv/bin")
        .join(name);
    assert!(p.exists(), "{} is missing: run scripts/setup", p.display());
    p
}

/// Sends SIGKILL to a child we started (by its pid) and reaps it.
async fn stop_child(child: &mut Child) {
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// A finished pgcloak command: exit code and stdout + stderr.
pub struct Run {
    pub code: i32,
    pub text: String,
}

/// Runs `pgcloak ARGS` with the control password and `env`.
pub async fn pgcloak(args: &[&str], env: &[(String, String)]) -> Run {
    let mut cmd = Command::new(pgcloak_bin());
    cmd.args(args)
        .env("PGCLOAK_CONTROL_PASSWORD", CONTROL_PASSWORD)
        .env_remove("PGCLOAK_CONFIG")
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("pgcloak finished within 120 s")
        .expect("run pgcloak");
    Run {
        code: out.status.code().unwrap_or(-1),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Starts `pgcloak serve -c CONFIG` with `env`; stderr goes to `log`.
pub fn spawn_serve(config: &Path, env: &[(String, String)], log: &Path) -> Child {
    let mut cmd = Command::new(pgcloak_bin());
    cmd.arg("serve")
        .arg("-c")
        .arg(config)
        .env("PGCLOAK_CONTROL_PASSWORD", CONTROL_PASSWORD)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("serve log"))
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn pgcloak serve")
}

/// A client of the proxy at `port` as the app role (verify-full TLS to the proxy).
pub async fn proxy_client(db: &DevDb, port: u16) -> tokio_postgres::Client {
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(db.tls_client_config().unwrap());
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("localhost")
        .port(port)
        .user(pgcloak::devdb::APP_USER)
        .password(pgcloak::devdb::APP_PASSWORD)
        .dbname(db.database())
        .ssl_mode(tokio_postgres::config::SslMode::Require)
        .connect_timeout(Duration::from_secs(20));
    let (c, conn) = cfg.connect(tls).await.expect("connect through the proxy");
    tokio::spawn(conn);
    c
}

/// Polls `f` every 100 ms until it is true (30 s at most).
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A reqwest client trusting the PEM CA (rustls with ring, as the provider's).
fn https_client(pem: &[u8]) -> Option<reqwest::Client> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(cert.ok()?).ok()?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .ok()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .ok()
}

/// An OpenBao dev server over TLS with Transit enabled and a derived key `pgcloak`.
pub struct Bao {
    child: Child,
    pub address: String,
    pub ca: PathBuf,
    pub root: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Bao {
    pub async fn start() -> Bao {
        let dir = tempfile::tempdir().unwrap();
        let port = free_addr().port();
        let root = format!("root-{:x}", rand::random::<u64>());
        let child = Command::new(venv_bin("bao"))
            .args(["server", "-dev", "-dev-tls"])
            .arg(format!("-dev-root-token-id={root}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .arg(format!("-dev-tls-cert-dir={}", dir.path().display()))
            .env("HOME", dir.path())
            .env_remove("VAULT_TOKEN")
            .env_remove("BAO_TOKEN")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("bao.log")).unwrap())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn bao");
        let ca = dir.path().join("vault-ca.pem");
        let address = format!("https://127.0.0.1:{port}");
        let t0 = Instant::now();
        let http = loop {
            assert!(t0.elapsed() < Duration::from_secs(30), "bao did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
            let Ok(pem) = std::fs::read(&ca) else {
                continue;
            };
            let Some(http) = https_client(&pem) else {
                continue;
            };
            if http
                .get(format!("{address}/v1/sys/health"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break http;
            }
        };
        let bao = Bao {
            child,
            address,
            ca,
            root,
            http,
            _dir: dir,
        };
        bao.root_call("POST", "sys/mounts/transit", json!({"type": "transit"}))
            .await;
        bao.root_call("POST", "transit/keys/pgcloak", json!({"derived": true}))
            .await;
        bao
    }

    /// One API call; panics unless it succeeds.
    pub async fn call(&self, method: &str, path: &str, token: &str, body: Value) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = self
            .http
            .request(method, format!("{}/v1/{path}", self.address))
            .header("X-Vault-Token", token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "bao {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub async fn root_call(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, path, &self.root.clone(), body).await
    }

    /// A renewable token limited to `policy_text` (a Vault policy), TTL `ttl`.
    pub async fn token(&self, policy_text: &str, ttl: &str) -> String {
        let name = format!("p{:x}", rand::random::<u32>());
        self.root_call(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            json!({"policy": policy_text}),
        )
        .await;
        let v = self
            .root_call(
                "POST",
                "auth/token/create",
                json!({"policies": [name], "ttl": ttl, "renewable": true}),
            )
            .await;
        v["auth"]["client_token"].as_str().unwrap().to_owned()
    }

    /// An AppRole `pgcloak` whose tokens have `policy_text` and TTL `ttl`: `(role_id, secret_id)`.
    pub async fn approle(&self, policy_text: &str, ttl: &str) -> (String, String) {
        let name = format!("p{:x}", rand::random::<u32>());
        self.root_call(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            json!({"policy": policy_text}),
        )
        .await;
        self.root_call("POST", "sys/auth/approle", json!({"type": "approle"}))
            .await;
        let role = json!({"token_policies": [name], "token_ttl": ttl, "token_max_ttl": "1h"});
        self.root_call("POST", "auth/approle/role/pgcloak", role)
            .await;
        let id = self
            .root_call("GET", "auth/approle/role/pgcloak/role-id", Value::Null)
            .await;
        let secret = self
            .root_call("POST", "auth/approle/role/pgcloak/secret-id", json!({}))
            .await;
        (
            id["data"]["role_id"].as_str().unwrap().to_owned(),
            secret["data"]["secret_id"].as_str().unwrap().to_owned(),
        )
    }

    /// Stops the server (SIGKILL to the pid we started).
    pub async fn stop(&mut self) {
        stop_child(&mut self.child).await;
    }
}

/// moto's AWS emulator with one symmetric KMS key.
pub struct Moto {
    child: Child,
    pub endpoint: String,
    pub key_arn: String,
}

/// Credentials for the emulator (moto accepts any).
pub fn aws_env() -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl Moto {
    pub async fn start() -> Moto {
        let port = free_addr().port();
        let child = Command::new(venv_bin("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        let t0 = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "moto_server did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut moto = Moto {
            child,
            endpoint,
            key_arn: String::new(),
        };
        moto.key_arn = moto.create_key().await;
        moto
    }

    /// A KMS client of the emulator.
    pub async fn kms(&self) -> aws_sdk_kms::Client {
        use aws_smithy_http_client::tls;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let conf = aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .http_client(http)
            .region(aws_sdk_kms::config::Region::new("eu-west-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_kms::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build();
        aws_sdk_kms::Client::from_conf(conf)
    }

    pub async fn create_key(&self) -> String {
        let out = self
            .kms()
            .await
            .create_key()
            .send()
            .await
            .expect("CreateKey");
        out.key_metadata.unwrap().arn.unwrap()
    }

    pub async fn stop(&mut self) {
        stop_child(&mut self.child).await;
    }
}

/// A SoftHSM2 token labelled `pgcloak` in its own directory (`SOFTHSM2_CONF` for children).
pub struct SoftHsm {
    pub conf: PathBuf,
    pub module: PathBuf,
    pub pin: String,
    _dir: tempfile::TempDir,
}

impl SoftHsm {
    pub async fn start() -> SoftHsm {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens.display()),
        )
        .unwrap();
        let pin = format!("{:06}", rand::random::<u32>() % 1_000_000);
        let out = Command::new("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                "pgcloak",
                "--pin",
                &pin,
                "--so-pin",
                "87654321",
            ])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .await
            .expect("softhsm2-util (run scripts/setup)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let module = PathBuf::from("/usr/lib/softhsm/libsofthsm2.so");
        assert!(
            module.exists(),
            "libsofthsm2.so is missing: run scripts/setup"
        );
        SoftHsm {
            conf,
            module,
            pin,
            _dir: dir,
        }
    }

    /// The environment a pgcloak child needs for this token.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("SOFTHSM2_CONF".into(), self.conf.display().to_string()),
            ("PGCLOAK_HSM_PIN".into(), self.pin.clone()),
        ]
    }
}
