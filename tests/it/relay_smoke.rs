//! Relay smoke tests: `pgcloak::run` in-process on port 0 in front of a throwaway TLS
//! PostgreSQL (devdb), driven by tokio-postgres over verify-full TLS with SCRAM.

use std::sync::Arc;
use std::time::Duration;

use pgcloak::config::Config;
use pgcloak::devdb::{self, DevDb, DevDbOptions};
use tokio::sync::oneshot;
use tokio_postgres::config::{ChannelBinding, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

struct Proxy {
    db: DevDb,
    port: u16,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), pgcloak::RunError>>,
    _dir: tempfile::TempDir,
}

impl Proxy {
    async fn start() -> Proxy {
        let db = DevDb::start(DevDbOptions::default()).await.expect("devdb");
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = db.ca().issue(&["localhost", "127.0.0.1"]).unwrap();
        std::fs::write(dir.path().join("proxy.crt"), cert).unwrap();
        std::fs::write(dir.path().join("proxy.key"), key).unwrap();
        let text = format!(
            r#"
[listen]
address = "127.0.0.1:0"
tls_cert = "proxy.crt"
tls_key = "proxy.key"
shutdown_timeout_secs = 2
[upstream]
host = "127.0.0.1"
port = {port}
tls_ca = "{ca}"
tls_server_name = "localhost"
[control]
user = "{user}"
password_env = "PGCLOAK_TEST_UNUSED"
"#,
            port = db.port(),
            ca = db.ca_cert_path().display(),
            user = devdb::CONTROL_USER,
        );
        let cfg = Config::from_str_at(&text, &dir.path().join("pgcloak.toml")).unwrap();
        let secrets = pgcloak::Secrets {
            master_key: None,
            control_password: zeroize::Zeroizing::new(devdb::CONTROL_PASSWORD.to_owned()),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, rx) = oneshot::channel();
        let task = tokio::spawn(pgcloak::run(listener, Arc::new(cfg), secrets, async {
            let _ = rx.await;
        }));
        Proxy {
            db,
            port,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    fn config(&self, user: &str, password: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host("localhost")
            .hostaddr(std::net::Ipv4Addr::LOCALHOST.into())
            .port(self.port)
            .user(user)
            .password(password)
            .dbname(devdb::APP_DATABASE)
            .connect_timeout(Duration::from_secs(10))
            .ssl_mode(SslMode::Require);
        c
    }

    async fn connect(
        &self,
        cfg: &tokio_postgres::Config,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let tls = MakeRustlsConnect::new(self.db.tls_client_config().unwrap());
        let (client, conn) = cfg.connect(tls).await?;
        tokio::spawn(conn);
        Ok(client)
    }

    async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        let r = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
        assert!(matches!(r, Ok(Ok(Ok(())))), "run() must end cleanly");
    }
}

fn code(e: &tokio_postgres::Error) -> Option<SqlState> {
    e.as_db_error().map(|d| d.code().clone())
}

#[tokio::test]
async fn select_one_through_the_proxy_and_failed_logins() {
    let p = Proxy::start().await;
    let app = p.config(devdb::APP_USER, devdb::APP_PASSWORD);
    let client = p.connect(&app).await.expect("login through the proxy");
    let row = client
        .query_one("select 1::int4 + $1", &[&41i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    let who: String = client
        .query_one("select current_user", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, devdb::APP_USER);
    client.batch_execute("select 1; select 2").await.unwrap();

    let mut bound = p.config(devdb::APP_USER, devdb::APP_PASSWORD);
    bound.channel_binding(ChannelBinding::Require);
    let c2 = p.connect(&bound).await.expect("SCRAM-SHA-256-PLUS login");
    c2.simple_query("select 1").await.unwrap();

    let wrong = p.config(devdb::APP_USER, "not-the-password");
    let e = p
        .connect(&wrong)
        .await
        .expect_err("wrong password must fail");
    assert_eq!(code(&e), Some(SqlState::INVALID_PASSWORD), "{e}");
    let unknown = p.config("nobody", "whatever");
    let e = p
        .connect(&unknown)
        .await
        .expect_err("unknown user must fail");
    assert_eq!(code(&e), Some(SqlState::INVALID_PASSWORD), "{e}");
    let msg = e.as_db_error().map(|d| d.message().to_owned());
    assert_eq!(
        msg.as_deref(),
        Some("password authentication failed for user \"nobody\"")
    );

    let mut plain = p.config(devdb::APP_USER, devdb::APP_PASSWORD);
    plain.ssl_mode(SslMode::Disable);
    let e = p
        .connect(&plain)
        .await
        .expect_err("plaintext must be refused");
    assert_eq!(
        code(&e),
        Some(SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
        "{e}"
    );
    drop((client, c2));
    p.stop().await;
}

#[tokio::test]
async fn cancel_through_the_proxy() {
    let p = Proxy::start().await;
    let client = p
        .connect(&p.config(devdb::APP_USER, devdb::APP_PASSWORD))
        .await
        .unwrap();
    let token = client.cancel_token();
    let tls = MakeRustlsConnect::new(p.db.tls_client_config().unwrap());
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(tls).await
    });
    let e = client
        .simple_query("select pg_sleep(30)")
        .await
        .expect_err("must be cancelled");
    assert_eq!(code(&e), Some(SqlState::QUERY_CANCELED), "{e}");
    canceller.await.unwrap().unwrap();
    // The session survives the cancel.
    client.simple_query("select 1").await.unwrap();
    p.stop().await;
}
