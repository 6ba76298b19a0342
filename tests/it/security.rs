//! Authentication and TLS through the proxy: SCRAM failures look alike, plaintext clients are
//! refused, the upstream certificate is verified, channel binding works, client certificates.

use std::io::BufReader;
use std::sync::Arc;
use std::time::Duration;

use pgcloak::devdb::{APP_PASSWORD, APP_USER, DevDb, DevDbOptions, TestCa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::config::{ChannelBinding, SslMode};

use crate::harness::{ProxyOptions, TestEnv, describe, must_fail, shared_db, sqlstate, within};

/// The exact refusal text of spec §5.
const REQUIRES_TLS: &str = "pgcloak requires TLS (use sslmode=require or stronger)";

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_and_unknown_user_get_the_same_28p01() {
    let env = TestEnv::start().await;
    let wrong = env
        .proxy_client(APP_USER, "not-the-password", env.db.database())
        .await
        .unwrap_err();
    let unknown = env
        .proxy_client("nobody_here", "whatever", env.db.database())
        .await
        .unwrap_err();
    let (w, u) = (wrong.as_db_error().unwrap(), unknown.as_db_error().unwrap());
    assert_eq!(w.code().code(), "28P01", "{}", describe(&wrong));
    assert_eq!(u.code().code(), "28P01", "{}", describe(&unknown));
    // No user enumeration: only the user name may differ between the two messages.
    assert_eq!(
        w.message().replace(APP_USER, "U"),
        u.message().replace("nobody_here", "U")
    );
    assert!(!w.message().contains("not-the-password"));
    // The right password still works afterwards (failures are not cached).
    let c = env.app().await;
    assert_eq!(
        c.query_one("select 1", &[]).await.unwrap().get::<_, i32>(0),
        1
    );
}

/// Reads one backend message (type, body) from a raw stream.
async fn read_message(s: &mut tokio::net::TcpStream) -> Option<(u8, Vec<u8>)> {
    let tag = s.read_u8().await.ok()?;
    let len = s.read_u32().await.ok()? as usize;
    let mut body = vec![0; len.checked_sub(4)?];
    s.read_exact(&mut body).await.ok()?;
    Some((tag, body))
}

/// The (field code, value) pairs of an ErrorResponse body.
fn error_fields(body: &[u8]) -> Vec<(u8, String)> {
    body.split(|b| *b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| (f[0], String::from_utf8_lossy(&f[1..]).into_owned()))
        .collect()
}

fn startup_message(user: &str, db: &str) -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for s in ["user", user, "database", db] {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    msg
}

#[tokio::test(flavor = "multi_thread")]
async fn plaintext_startup_is_refused_with_28000() {
    let env = TestEnv::start().await;
    let mut s = tokio::net::TcpStream::connect(env.proxy_addr())
        .await
        .unwrap();
    s.write_all(&startup_message(APP_USER, env.db.database()))
        .await
        .unwrap();
    let (tag, body) = within(Duration::from_secs(10), read_message(&mut s))
        .await
        .expect("an ErrorResponse");
    assert_eq!(tag, b'E');
    let fields = error_fields(&body);
    let get = |c: u8| fields.iter().find(|f| f.0 == c).map(|f| f.1.as_str());
    assert_eq!(get(b'S'), Some("FATAL"));
    assert_eq!(get(b'C'), Some("28000"));
    assert_eq!(get(b'M'), Some(REQUIRES_TLS));
    // Then the proxy closes the connection.
    let mut rest = Vec::new();
    let n = within(Duration::from_secs(10), s.read_to_end(&mut rest)).await;
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "connection must be closed, got {rest:?}"
    );

    // tokio-postgres without TLS gets the same refusal.
    let mut cfg = env.proxy_pg_config(APP_USER, APP_PASSWORD, env.db.database());
    cfg.ssl_mode(SslMode::Disable);
    let err = must_fail(cfg.connect(tokio_postgres::NoTls).await);
    assert_eq!(
        sqlstate(&err).as_deref(),
        Some("28000"),
        "{}",
        describe(&err)
    );
    assert_eq!(err.as_db_error().unwrap().message(), REQUIRES_TLS);
}

#[tokio::test(flavor = "multi_thread")]
async fn gssenc_request_is_answered_n() {
    let env = TestEnv::start().await;
    let mut s = tokio::net::TcpStream::connect(env.proxy_addr())
        .await
        .unwrap();
    s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30])
        .await
        .unwrap();
    let b = within(Duration::from_secs(10), s.read_u8()).await.unwrap();
    assert_eq!(b, b'N');
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_certificate_for_another_name_is_refused() {
    let env = TestEnv::start_with(ProxyOptions {
        upstream_host: Some("127.0.0.1".into()),
        tls_server_name: Some("wrong.example".into()),
        ..ProxyOptions::default()
    })
    .await;
    let err = within(
        Duration::from_secs(30),
        env.proxy_client(APP_USER, APP_PASSWORD, env.db.database()),
    )
    .await
    .unwrap_err();
    assert_eq!(
        sqlstate(&err).as_deref(),
        Some("08006"),
        "{}",
        describe(&err)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_ca_accepts_the_same_wrong_name() {
    let env = TestEnv::start_with(ProxyOptions {
        upstream_host: Some("127.0.0.1".into()),
        tls_server_name: Some("wrong.example".into()),
        tls_mode: Some("verify-ca"),
        ..ProxyOptions::default()
    })
    .await;
    let c = env.app().await;
    let ssl: bool = c
        .query_one(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "the upstream leg must be TLS");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_from_another_ca_is_refused_even_with_verify_ca() {
    // The proxy trusts `db`'s CA but is pointed at `stranger`, whose CA is another one.
    let stranger = DevDb::start(DevDbOptions::default()).await.unwrap();
    let db = shared_db().await;
    let opts = ProxyOptions {
        upstream_port: Some(stranger.port()),
        tls_mode: Some("verify-ca"),
        ..ProxyOptions::default()
    };
    let env = TestEnv::start_on(db, opts).await;
    let err = within(
        Duration::from_secs(30),
        env.proxy_client(APP_USER, APP_PASSWORD, env.db.database()),
    )
    .await
    .unwrap_err();
    assert_eq!(
        sqlstate(&err).as_deref(),
        Some("08006"),
        "{}",
        describe(&err)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn channel_binding_require_works() {
    let env = TestEnv::start().await;
    let mut cfg = env.proxy_pg_config(APP_USER, APP_PASSWORD, env.db.database());
    cfg.channel_binding(ChannelBinding::Require);
    let c = env
        .connect(&cfg)
        .await
        .unwrap_or_else(|e| panic!("{}", describe(&e)));
    assert_eq!(
        c.query_one("select 7", &[]).await.unwrap().get::<_, i32>(0),
        7
    );
    let conninfo = format!(
        "{} channel_binding=require",
        env.proxy_conninfo(APP_USER, APP_PASSWORD, env.db.database())
    );
    let (code, out, err) = env.psql(&conninfo, "select 'bound'").await;
    assert_eq!(code, 0, "psql failed: {err}");
    assert_eq!(out.trim(), "bound");
    // A wrong password with channel binding still fails cleanly.
    let mut bad = env.proxy_pg_config(APP_USER, "wrong", env.db.database());
    bad.channel_binding(ChannelBinding::Require);
    let e = env.connect(&bad).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("28P01"), "{}", describe(&e));
}

/// A rustls client config presenting `cert_pem`/`key_pem`, trusting `env`'s CA.
pub(crate) fn client_auth_tls(
    env: &TestEnv,
    cert_pem: &str,
    key_pem: &str,
) -> rustls::ClientConfig {
    let certs: Vec<_> = rustls_pemfile::certs(&mut BufReader::new(cert_pem.as_bytes()))
        .collect::<Result<_, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut BufReader::new(key_pem.as_bytes()))
        .unwrap()
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(env.db.ca().cert_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificate_required_when_tls_client_ca_is_set() {
    let db = shared_db().await;
    let clients_ca = TestCa::new("pgcloak it clients CA").unwrap();
    let ca_path = db.dir().join("clients-ca.crt");
    std::fs::write(&ca_path, clients_ca.cert_pem()).unwrap();
    let env = TestEnv::start_on(
        db,
        ProxyOptions {
            tls_client_ca: Some(ca_path),
            ..ProxyOptions::default()
        },
    )
    .await;
    let cfg = env.proxy_pg_config(APP_USER, APP_PASSWORD, env.db.database());
    // Without a certificate: the TLS handshake fails.
    assert!(
        env.connect(&cfg).await.is_err(),
        "no client certificate must be refused"
    );
    // With a certificate from another CA: refused too.
    let (cert, key) = TestCa::new("stranger")
        .unwrap()
        .issue_client(APP_USER)
        .unwrap();
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(client_auth_tls(&env, &cert, &key));
    assert!(
        cfg.connect(tls).await.is_err(),
        "a foreign client certificate must be refused"
    );
    // With one from the configured CA: works.
    let (cert, key) = clients_ca.issue_client(APP_USER).unwrap();
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(client_auth_tls(&env, &cert, &key));
    let (c, conn) = cfg
        .connect(tls)
        .await
        .unwrap_or_else(|e| panic!("{}", describe(&e)));
    tokio::spawn(conn);
    assert_eq!(
        c.query_one("select 5", &[]).await.unwrap().get::<_, i32>(0),
        5
    );
}
