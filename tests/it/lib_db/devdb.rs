//! Tests of [`DevDb`] against the system's real PostgreSQL binaries (moved from
//! `src/devdb/tests.rs` so that `cargo test --lib` needs no database).

use std::sync::Arc;
use std::time::Instant;

use pgcloak::devdb::*;

async fn start() -> DevDb {
    DevDb::start(DevDbOptions::default()).await.unwrap()
}

async fn query_i32(client: &tokio_postgres::Client, sql: &str) -> i32 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn starts_quickly_and_superuser_selects_one() {
    let t0 = Instant::now();
    let db = start().await;
    let elapsed = t0.elapsed();
    eprintln!("devdb start took {elapsed:?} (port {})", db.port());
    assert!(elapsed.as_secs() < 15, "start took {elapsed:?}");
    assert_ne!(db.port(), 0);
    assert_eq!(db.host(), "localhost");
    let client = db.superuser_client("postgres").await.unwrap();
    assert_eq!(query_i32(&client, "select 1").await, 1);
    let ssl: bool = client
        .query_one(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "superuser client must be on TLS");
    let roles = client
        .query(
            "select rolname, rolsuper, rolcanlogin from pg_roles where rolname in ('pgcloak','app') order by 1",
            &[],
        )
        .await
        .unwrap();
    let roles: Vec<(String, bool, bool)> = roles
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        roles,
        vec![("app".into(), false, true), ("pgcloak".into(), true, true)]
    );
    let ca = std::fs::read_to_string(db.ca_cert_path()).unwrap();
    assert_eq!(ca, db.ca().cert_pem());
}

#[tokio::test]
async fn app_and_control_users_connect_over_verify_full_tls() {
    let db = start().await;
    let app = db
        .client(APP_USER, APP_PASSWORD, APP_DATABASE)
        .await
        .unwrap();
    let who: String = app
        .query_one("select current_user", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, APP_USER);
    app.batch_execute("create table t (id int); insert into t values (7)")
        .await
        .unwrap();
    assert_eq!(query_i32(&app, "select id from t").await, 7);
    let ctl = db
        .client(CONTROL_USER, CONTROL_PASSWORD, APP_DATABASE)
        .await
        .unwrap();
    assert_eq!(query_i32(&ctl, "select count(*)::int from t").await, 1);
    // A wrong password is refused.
    assert!(db.client(APP_USER, "wrong", APP_DATABASE).await.is_err());
}

#[tokio::test]
async fn plaintext_tcp_and_foreign_ca_are_refused() {
    let db = start().await;
    let err = db
        .pg_config(APP_USER, APP_PASSWORD, APP_DATABASE)
        .connect(tokio_postgres::NoTls)
        .await
        .err()
        .expect("plaintext TCP must be refused");
    let code = err.as_db_error().map(|d| d.code().clone());
    assert_eq!(
        code,
        Some(tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    );

    // A client trusting another CA fails verification.
    let other = TestCa::new("stranger").unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(other.cert_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(cfg);
    let res = db
        .pg_config(APP_USER, APP_PASSWORD, APP_DATABASE)
        .ssl_mode(tokio_postgres::config::SslMode::Require)
        .connect(tls)
        .await;
    assert!(
        res.is_err(),
        "a certificate from another CA must not verify"
    );
}

#[tokio::test]
async fn stop_start_again_and_restart_keep_data() {
    let db = start().await;
    let su = db.superuser_client(APP_DATABASE).await.unwrap();
    su.batch_execute("create table kept (v int); insert into kept values (42)")
        .await
        .unwrap();
    drop(su);
    let port = db.port();
    db.stop().await.unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(db.superuser_client(APP_DATABASE).await.is_err());
    db.start_again().await.unwrap();
    assert_eq!(db.port(), port);
    let su = db.superuser_client(APP_DATABASE).await.unwrap();
    assert_eq!(query_i32(&su, "select v from kept").await, 42);
    db.restart().await.unwrap();
    assert!(
        su.query_one("select 1", &[]).await.is_err(),
        "old session ends on restart"
    );
    let su = db.superuser_client(APP_DATABASE).await.unwrap();
    assert_eq!(query_i32(&su, "select v from kept").await, 42);
}

#[tokio::test]
async fn two_at_once_on_different_ports_sharing_a_ca() {
    let ca = Arc::new(TestCa::new("shared").unwrap());
    let opts = || DevDbOptions {
        ca: Some(ca.clone()),
        ..DevDbOptions::default()
    };
    let (a, b) = tokio::join!(DevDb::start(opts()), DevDb::start(opts()));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.port(), b.port());
    assert_ne!(a.dir(), b.dir());
    assert!(Arc::ptr_eq(a.ca(), &ca) && Arc::ptr_eq(b.ca(), &ca));
    let ca_ = a.superuser_client("postgres").await.unwrap();
    let cb = b.superuser_client("postgres").await.unwrap();
    ca_.batch_execute("create table only_a (x int)")
        .await
        .unwrap();
    let n: i64 = cb
        .query_one(
            "select count(*) from pg_tables where tablename = 'only_a'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn drop_removes_the_dir_and_closes_the_port() {
    let db = start().await;
    let root = db.dir().parent().unwrap().to_path_buf();
    std::fs::write(db.dir().join("note.txt"), b"x").unwrap();
    let port = db.port();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    drop(db);
    assert!(!root.exists(), "{} still exists", root.display());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[tokio::test]
async fn psql_connects_with_conninfo() {
    let db = start().await;
    let info = db.conninfo(APP_USER, APP_PASSWORD, APP_DATABASE);
    assert!(info.contains("sslmode=verify-full"));
    let out = tokio::process::Command::new(db.bin("psql"))
        .arg(&info)
        .args(["-XAtc", "select current_user || ':' || (select ssl from pg_stat_ssl where pid = pg_backend_pid())"])
        .env_remove("PGPASSWORD")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "app:true");
}

#[tokio::test]
async fn port_in_use_gives_an_error_with_command_and_log() {
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blocker.local_addr().unwrap().port();
    let opts = DevDbOptions {
        port: Some(port),
        ..DevDbOptions::default()
    };
    let err = DevDb::start(opts).await.expect_err("port is taken");
    let msg = err.to_string();
    assert!(msg.contains("pg_ctl"), "{msg}");
    assert!(msg.contains("could not bind"), "{msg}");
    assert!(!msg.contains(SUPERUSER_PASSWORD));
}

#[tokio::test]
async fn orphans_of_dead_processes_are_reaped() {
    let db = start().await;
    let root = db.dir().parent().unwrap().to_path_buf();
    let port = db.port();
    // Pretend the creating process died without running Drop.
    std::fs::write(root.join(OWNER_FILE), "2147483000").unwrap();
    #[allow(clippy::disallowed_methods)] // the point: no Drop runs, as when a process dies
    std::mem::forget(db);
    reap_orphans_in(root.parent().unwrap()).await.unwrap();
    assert!(!root.exists(), "{} still exists", root.display());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[tokio::test]
async fn client_checks_the_host_name_in_the_certificate() {
    let opts = DevDbOptions {
        server_names: vec!["db.example".into()],
        ..DevDbOptions::default()
    };
    let db = DevDb::start(opts).await.unwrap();
    let err = db
        .superuser_client("postgres")
        .await
        .expect_err("name mismatch");
    assert!(err.to_string().contains("TLS as postgres"), "{err}");
}

#[tokio::test]
async fn extra_settings_are_applied_and_the_data_dir_is_exposed() {
    let opts = DevDbOptions {
        settings: vec![
            ("log_statement".into(), "all".into()),
            ("application_name".into(), "it's set".into()),
        ],
        ..DevDbOptions::default()
    };
    let db = DevDb::start(opts).await.unwrap();
    let client = db.superuser_client("postgres").await.unwrap();
    let show = |name: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(&format!("show {name}"), &[])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    assert_eq!(show("log_statement").await, "all");
    assert_eq!(show("application_name").await, "it's set");
    // The default settings are still there.
    assert_eq!(show("ssl").await, "on");
    assert!(db.data_dir().join("PG_VERSION").is_file());
    client
        .simple_query("select 'logged_marker_1'")
        .await
        .unwrap();
    let log = std::fs::read_to_string(db.log_path()).unwrap();
    assert!(log.contains("logged_marker_1"), "{log}");
}

#[tokio::test]
async fn template_is_made_once_and_reused() {
    let a = template_data_dir().await.unwrap();
    let b = template_data_dir().await.unwrap();
    assert_eq!(a, b);
    assert!(a.join("PG_VERSION").is_file());
    // Claimed by this process, so the reaper leaves it alone while we live.
    let owner = std::fs::read_to_string(a.parent().unwrap().join(OWNER_FILE)).unwrap();
    assert_eq!(owner.trim(), std::process::id().to_string());
}
