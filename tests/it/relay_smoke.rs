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
    /// In front of a fresh database of this module's shared cluster.
    async fn start() -> Proxy {
        Self::start_on(crate::harness::shared_db().await).await
    }

    /// In front of a cluster of the test's own (for a test that restarts it).
    async fn start_own() -> Proxy {
        Self::start_on(DevDb::start(DevDbOptions::default()).await.expect("devdb")).await
    }

    async fn start_on(db: DevDb) -> Proxy {
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
            key_provider: None,
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
            .dbname(self.db.database())
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
    let direct =
        p.db.client(devdb::APP_USER, devdb::APP_PASSWORD, p.db.database())
            .await
            .unwrap();
    let canceller = tokio::spawn(async move {
        // Cancel once the statement runs upstream.
        crate::harness::wait_running(&direct, "select pg_sleep(30)").await;
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

#[tokio::test]
async fn copy_both_ways_big_values_and_notify() {
    use futures_util::{SinkExt, StreamExt};
    let p = Proxy::start().await;
    let app = p.config(devdb::APP_USER, devdb::APP_PASSWORD);
    let client = p.connect(&app).await.unwrap();
    client
        .batch_execute("create temp table t (id int, v text)")
        .await
        .unwrap();
    let sink = client.copy_in("copy t from stdin").await.unwrap();
    let mut sink = std::pin::pin!(sink);
    sink.send(bytes::Bytes::from_static(b"1\thello\n2\tworld\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);
    let out: Vec<_> = client
        .copy_out("copy (select * from t order by id) to stdout")
        .await
        .unwrap()
        .collect()
        .await;
    let out: Vec<u8> = out.into_iter().flat_map(|c| c.unwrap().to_vec()).collect();
    assert_eq!(out, b"1\thello\n2\tworld\n");

    let big: String = "pgcloak!".repeat(20 * 1024 * 1024 / 8);
    client
        .execute("insert into t values (3, $1)", &[&big])
        .await
        .unwrap();
    let back: String = client
        .query_one("select v from t where id = 3", &[])
        .await
        .unwrap()
        .get(0);
    assert!(back == big, "20 MB value changed on the way");

    // LISTEN/NOTIFY between two proxied sessions.
    let tls = MakeRustlsConnect::new(p.db.tls_client_config().unwrap());
    let (listener, mut conn) = app.connect(tls).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut msgs = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = msgs.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let _ = tx.send((n.channel().to_owned(), n.payload().to_owned()));
            }
        }
    });
    listener.batch_execute("listen cloak").await.unwrap();
    client
        .batch_execute("notify cloak, 'hello there'")
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
    assert_eq!(
        got.ok().flatten(),
        Some(("cloak".to_owned(), "hello there".to_owned()))
    );
    drop((client, listener));
    p.stop().await;
}

#[tokio::test]
async fn garbage_direct_tls_and_upstream_restart() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Its own cluster: it restarts the server.
    let p = Proxy::start_own().await;
    // Garbage on the port: the connection is closed, the proxy keeps serving.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", p.port))
        .await
        .unwrap();
    raw.write_all(&[0xff; 64]).await.unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut sink)).await;

    // PostgreSQL 17 direct TLS: ALPN "postgresql" required.
    let direct = |alpn: bool| {
        let mut cfg = p.db.tls_client_config().unwrap();
        if alpn {
            cfg.alpn_protocols = vec![b"postgresql".to_vec()];
        }
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        let port = p.port;
        async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let mut tls = connector.connect(name, tcp).await?;
            let mut startup = vec![0, 0, 0, 0, 0, 3, 0, 0];
            startup.extend_from_slice(b"user\0app\0database\0app\0\0");
            let len = (startup.len() as i32).to_be_bytes();
            startup[..4].copy_from_slice(&len);
            tls.write_all(&startup).await?;
            tls.read_u8().await
        }
    };
    assert_eq!(direct(true).await.unwrap(), b'R', "SASL request expected");
    assert!(
        direct(false).await.is_err(),
        "direct TLS without ALPN must close"
    );

    let app = p.config(devdb::APP_USER, devdb::APP_PASSWORD);
    let c = p.connect(&app).await.unwrap();
    c.simple_query("select 1").await.unwrap();
    p.db.restart().await.unwrap();
    assert!(c.simple_query("select 1").await.is_err());
    let c = p
        .connect(&app)
        .await
        .expect("a new session after the restart");
    c.simple_query("select 1").await.unwrap();
    drop(c);
    p.stop().await;
}
