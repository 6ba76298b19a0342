//! Which database the rules are for (issue 10 §1): every rules file names its database; one
//! proxy encrypts several databases, each with its own catalog, data keys and control login;
//! sessions to a database no rules file names are relayed raw. `serve` runs `check`'s online
//! checks at start (refusing on errors, warning on a rules table that does not exist yet), and
//! `keys init` creates no key for a wrong column. Stored bytes are checked directly.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use pgcloak::config::{Rules, parse_rules_file};
use pgcloak::control::keys;
use pgcloak::crypto::MasterKey;
use pgcloak::devdb::{
    APP_DATABASE, APP_PASSWORD, APP_USER, CONTROL_PASSWORD, CONTROL_USER, DevDb, DevDbOptions,
};
use tokio::process::Command;
use tokio_postgres::Client;

use crate::cli::{Out, has, pgcloak};
use crate::harness::{
    HANG, ProxyOptions, TestEnv, config_toml, describe, start_encrypted, with_database, within,
};
use crate::serve::{ChildGuard, free_addr, wait_listening};

const SHOP_RULES: &str = r#"database = "shop"

[tables.customers]
email = { type = "text", mode = "deterministic" }
"#;

/// Creates database `name` (superuser) with `ddl` run in it, and lets the app role use its
/// tables.
async fn create_database(db: &DevDb, name: &str, ddl: &str) {
    let su = db.superuser_client("postgres").await.expect("superuser");
    su.batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let su = db.superuser_client(name).await.expect("superuser in db");
    su.batch_execute(ddl).await.expect("ddl");
    su.batch_execute(&format!(
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_USER}"
    ))
    .await
    .expect("grant");
}

/// The stored bytes of `customers.email` for `id`, read straight from PostgreSQL.
async fn stored(db: &DevDb, database: &str, id: i32) -> Vec<u8> {
    let su = db.superuser_client(database).await.expect("superuser");
    su.query_one("SELECT email FROM customers WHERE id = $1", &[&id])
        .await
        .expect("stored row")
        .get(0)
}

/// Asserts `bytes` is a pgcloak envelope (format 0x01, mode 0x01/0x02) without `plain`.
fn assert_envelope(bytes: &[u8], plain: &str) {
    assert_eq!(bytes[0], 0x01, "format version: {bytes:02x?}");
    assert!(matches!(bytes[1], 0x01 | 0x02), "mode byte: {bytes:02x?}");
    assert!(
        !bytes.windows(plain.len()).any(|w| w == plain.as_bytes()),
        "plaintext stored"
    );
}

/// Key names in `database`'s `pgcloak.data_keys` (None: no such table).
async fn key_names(db: &DevDb, database: &str) -> Option<Vec<String>> {
    let su = db.superuser_client(database).await.expect("superuser");
    let exists: bool = su
        .query_one("SELECT to_regclass('pgcloak.data_keys') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    if !exists {
        return None;
    }
    let rows = su
        .query(
            "SELECT DISTINCT key_name FROM pgcloak.data_keys ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    Some(rows.iter().map(|r| r.get(0)).collect())
}

async fn exec(c: &Client, sql: &str) {
    within(HANG, c.batch_execute(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)));
}

async fn proxy_to(env: &TestEnv, database: &str) -> Client {
    env.proxy_client(APP_USER, APP_PASSWORD, database)
        .await
        .unwrap_or_else(|e| panic!("login to {database}: {}", describe(&e)))
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_for_shop_encrypt_shop_and_leave_app_raw() {
    let db = DevDb::start(DevDbOptions::default()).await.expect("DevDb");
    let ddl = "CREATE TABLE customers (id int PRIMARY KEY, email bytea)";
    create_database(&db, "shop", ddl).await;
    // The same table name in app, with no rules for app: a plain text column.
    let app = db
        .client(APP_USER, APP_PASSWORD, APP_DATABASE)
        .await
        .unwrap();
    exec(
        &app,
        "CREATE TABLE customers (id int PRIMARY KEY, email text)",
    )
    .await;
    let (env, _, _) = start_encrypted(db, SHOP_RULES).await;

    let shop = proxy_to(&env, "shop").await;
    exec(&shop, "INSERT INTO customers VALUES (1, 'trap@shop.test')").await;
    shop.execute(
        "INSERT INTO customers VALUES ($1, $2)",
        &[&2i32, &"two@shop.test"],
    )
    .await
    .expect("extended insert");
    assert_envelope(&stored(&env.db, "shop", 1).await, "trap@shop.test");
    assert_envelope(&stored(&env.db, "shop", 2).await, "two@shop.test");
    let back: String = shop
        .query_one(
            "SELECT email FROM customers WHERE email = $1",
            &[&"trap@shop.test"],
        )
        .await
        .expect("select")
        .get(0);
    assert_eq!(back, "trap@shop.test");

    let raw = proxy_to(&env, APP_DATABASE).await;
    exec(&raw, "INSERT INTO customers VALUES (1, 'trap@app.test')").await;
    let direct = env.direct_app().await;
    let plain: String = direct
        .query_one("SELECT email FROM customers WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        plain, "trap@app.test",
        "a database without rules is relayed raw"
    );
    assert_eq!(
        key_names(&env.db, "shop").await.unwrap(),
        ["public.customers.email"]
    );
    assert_eq!(
        key_names(&env.db, APP_DATABASE).await,
        None,
        "no keys in app"
    );
}

/// `keys init` for one rules text over the control login to the database it names.
async fn init_keys(db: &DevDb, text: &str, master: &MasterKey) {
    let file =
        parse_rules_file(&with_database(text, db.database()), Path::new("r.toml")).expect("rules");
    let rules = Rules::from_columns(file.columns).expect("index");
    let mut control = db
        .client(CONTROL_USER, CONTROL_PASSWORD, &file.database)
        .await
        .expect("control login");
    keys::init(&mut control, &rules, master)
        .await
        .expect("keys init");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_rules_files_two_databases_each_with_its_own_keys() {
    let db = DevDb::start(DevDbOptions::default()).await.expect("DevDb");
    create_database(
        &db,
        "shop",
        "CREATE TABLE customers (id int PRIMARY KEY, email bytea)",
    )
    .await;
    let app = db
        .client(APP_USER, APP_PASSWORD, APP_DATABASE)
        .await
        .unwrap();
    exec(
        &app,
        "CREATE TABLE customers (id int PRIMARY KEY, email bytea, note bytea)",
    )
    .await;
    let app_rules = "[tables.customers]\nemail = { type = \"text\", mode = \"deterministic\" }\n\
                     note = { type = \"text\", mode = \"randomized\" }\n";
    let key_text = pgcloak::crypto::gen_master_key();
    let master = MasterKey::from_base64(&key_text, "test").unwrap();
    init_keys(&db, app_rules, &master).await;
    init_keys(&db, SHOP_RULES, &master).await;
    let opts = ProxyOptions {
        rules: Some(app_rules.to_owned()),
        more_rules: vec![SHOP_RULES.to_owned()],
        master_key_b64: Some(key_text.clone()),
        ..ProxyOptions::default()
    };
    let env = TestEnv::start_on(db, opts).await;

    for database in [APP_DATABASE, "shop"] {
        let c = proxy_to(&env, database).await;
        exec(
            &c,
            "INSERT INTO customers (id, email) VALUES (1, 'same@both.test')",
        )
        .await;
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM customers WHERE email = 'same@both.test'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "{database}: deterministic lookup");
    }
    let (in_app, in_shop) = (
        stored(&env.db, APP_DATABASE, 1).await,
        stored(&env.db, "shop", 1).await,
    );
    assert_envelope(&in_app, "same@both.test");
    assert_envelope(&in_shop, "same@both.test");
    assert_eq!((in_app[1], in_shop[1]), (0x02, 0x02), "deterministic");
    assert_ne!(
        in_app, in_shop,
        "same column name and value, but each database has its own data key"
    );
    assert_eq!(
        key_names(&env.db, APP_DATABASE).await.unwrap(),
        ["public.customers.email", "public.customers.note"]
    );
    assert_eq!(
        key_names(&env.db, "shop").await.unwrap(),
        ["public.customers.email"]
    );

    // check and keys list report per database.
    let cfg = env.db.dir().join("pgcloak.toml").display().to_string();
    let out = pgcloak(&["check", "-c", &cfg], &key_text, &[]).await;
    assert_eq!(out.code, 0, "{}", out.text);
    has(&out, "database app: ok: 1 table(s), 2 column(s)");
    has(&out, "database shop: ok: 1 table(s), 1 column(s)");
    let out = pgcloak(&["keys", "list", "-c", &cfg], &key_text, &[]).await;
    assert_eq!(out.code, 0, "{}", out.text);
    has(&out, "database app: public.customers.note [aes-256-gcm");
    has(&out, "database shop: public.customers.email [aes-256-siv");
    assert!(
        !out.text.contains("database shop: public.customers.note"),
        "{}",
        out.text
    );
}

/// A config (no proxy run in-process) with `rules` written verbatim as `rules.toml`.
fn write_config(db: &DevDb, listen: SocketAddr, rules: &str, extra: &str) -> String {
    let text = config_toml(
        db,
        listen,
        &ProxyOptions {
            rules: Some(String::new()),
            ..ProxyOptions::default()
        },
    );
    std::fs::write(db.dir().join("rules.toml"), rules).unwrap();
    let path = db.dir().join("pgcloak.toml");
    std::fs::write(
        &path,
        text.replace("[control]\n", &format!("[control]\n{extra}")),
    )
    .unwrap();
    path.display().to_string()
}

/// `pgcloak serve` that must exit on its own (a start-up refusal); killed after [`HANG`].
async fn serve_exits(cfg: &str, master: &str) -> Out {
    within(HANG, pgcloak(&["serve", "-c", cfg], master, &[])).await
}

const PATIENTS: &str = "[tables.patients]\n\
                        ssn = { type = \"text\", mode = \"deterministic\" }\n\
                        dx  = { type = \"text\", mode = \"randomized\" }\n";

#[tokio::test(flavor = "multi_thread")]
async fn removed_control_database_and_rules_without_database_are_errors() {
    let db = DevDb::start(DevDbOptions::default()).await.expect("DevDb");
    let master = pgcloak::crypto::gen_master_key();
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 1));
    let cfg = write_config(
        &db,
        listen,
        &with_database(PATIENTS, db.database()),
        "database = \"app\"\n",
    );
    for cmd in [&["serve"][..], &["check"], &["keys", "init"]] {
        let args: Vec<&str> = cmd.iter().copied().chain(["-c", &cfg]).collect();
        let out = within(HANG, pgcloak(&args, &master, &[])).await;
        assert_eq!(out.code, 1, "{cmd:?}: {}", out.text);
        has(&out, "control.database");
        has(
            &out,
            "set `database = \"app\"` at the top of each rules file",
        );
    }
    let cfg = write_config(&db, listen, PATIENTS, "");
    for cmd in [&["serve"][..], &["keys", "init"]] {
        let args: Vec<&str> = cmd.iter().copied().chain(["-c", &cfg]).collect();
        let out = within(HANG, pgcloak(&args, &master, &[])).await;
        assert_eq!(out.code, 1, "{cmd:?}: {}", out.text);
        has(&out, "rules.toml: no database");
        has(&out, "put `database = \"<name>\"` at the top of the file");
    }
    let out = pgcloak(&["check", "-c", &cfg], &master, &[]).await;
    assert_eq!(out.code, 1, "{}", out.text);
    has(&out, "rules-file: rules file");
    has(&out, "rules.toml: no database");
    // A rules database that does not exist: nothing is served raw in its place.
    let cfg = write_config(
        &db,
        listen,
        &format!("database = \"nowhere\"\n{PATIENTS}"),
        "",
    );
    let out = serve_exits(&cfg, &master).await;
    assert_eq!(out.code, 1, "{}", out.text);
    has(&out, "to database \"nowhere\"");
    let out = pgcloak(&["check", "-c", &cfg], &master, &[]).await;
    assert_eq!(out.code, 1, "{}", out.text);
    has(&out, "database nowhere: database: control login");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_wrong_columns_and_missing_keys_with_checks_messages() {
    let db = DevDb::start(DevDbOptions::default()).await.expect("DevDb");
    let su = db.superuser_client(APP_DATABASE).await.unwrap();
    su.batch_execute("CREATE TABLE patients (id int, ssn bytea, dx text)")
        .await
        .unwrap();
    let master = pgcloak::crypto::gen_master_key();
    let cfg = write_config(
        &db,
        free_addr(),
        &with_database(PATIENTS, db.database()),
        "",
    );

    // A rules column still stored as text is pending (awaiting `pgcloak migrate encrypt`): it
    // does not stop serve, but check exits 1 naming it. Missing data keys do stop serve.
    let pending = "database app: pending: column public.patients.dx is stored as text, not yet \
                   encrypted: its values pass through as plaintext; run `pgcloak migrate encrypt \
                   --column public.patients.dx`";
    let check = pgcloak(&["check", "-c", &cfg], &master, &[]).await;
    assert_eq!(check.code, 1, "{}", check.text);
    has(&check, pending);
    let out = serve_exits(&cfg, &master).await;
    assert_eq!(out.code, 1, "{}", out.text);
    has(
        &out,
        "database app: missing-key-table: table pgcloak.data_keys does not exist: run `pgcloak keys init`",
    );
    assert!(!out.text.contains("database app: pending"), "{}", out.text);

    // keys init: keys for both (the pending column's key is what migrate encrypt uses).
    let out = pgcloak(&["keys", "init", "-c", &cfg], &master, &[]).await;
    assert_eq!(out.code, 0, "{}", out.text);
    has(
        &out,
        "database app: warning: pending: column public.patients.dx",
    );
    has(&out, "database app: created data key public.patients.dx v1");
    assert_eq!(
        key_names(&db, APP_DATABASE).await.unwrap(),
        ["public.patients.dx", "public.patients.ssn"]
    );
    su.batch_execute("ALTER TABLE patients ALTER COLUMN dx TYPE bytea USING dx::bytea")
        .await
        .unwrap();

    // A master key that does not unwrap the stored keys: refused.
    let out = pgcloak(&["keys", "init", "-c", &cfg], &master, &[]).await;
    assert_eq!(out.code, 0, "{}", out.text);
    let other = pgcloak::crypto::gen_master_key();
    let out = serve_exits(&cfg, &other).await;
    assert_eq!(out.code, 1, "{}", out.text);
    has(&out, "database app: wrong-master-key");

    // A rules column missing from the existing table: refused.
    su.batch_execute("ALTER TABLE patients DROP COLUMN dx")
        .await
        .unwrap();
    let out = serve_exits(&cfg, &master).await;
    assert_eq!(out.code, 1, "{}", out.text);
    has(
        &out,
        "database app: missing-column: column public.patients.dx does not exist",
    );
}

/// Sends SIGTERM and returns everything the child wrote to stderr.
async fn stop(mut guard: ChildGuard) -> String {
    use nix::sys::signal::{Signal, kill};
    let child = guard.0.take().expect("child");
    let pid = nix::unistd::Pid::from_raw(child.id().expect("pid") as i32);
    kill(pid, Signal::SIGTERM).unwrap();
    let out = within(HANG, child.wait_with_output()).await.unwrap();
    assert!(out.status.success(), "exit after SIGTERM: {}", out.status);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_starts_with_a_warning_when_a_rules_table_does_not_exist_yet() {
    let db = DevDb::start(DevDbOptions::default()).await.expect("DevDb");
    let master = pgcloak::crypto::gen_master_key();
    let addr = free_addr();
    let cfg = write_config(&db, addr, &with_database(PATIENTS, db.database()), "");
    let out = pgcloak(&["keys", "init", "-c", &cfg], &master, &[]).await;
    assert_eq!(out.code, 0, "{}", out.text);
    has(
        &out,
        "database app: warning: missing-table: table public.patients does not exist",
    );
    let child = Command::new(env!("CARGO_BIN_EXE_pgcloak"))
        .args(["serve", "-c", &cfg])
        .env("PGCLOAK_CONTROL_PASSWORD", CONTROL_PASSWORD)
        .env("PGCLOAK_MASTER_KEY", &master)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn pgcloak serve");
    let mut guard = ChildGuard(Some(child));
    wait_listening(addr, guard.0.as_mut().unwrap()).await;

    // The table created through pgcloak afterwards is encrypted.
    let mut pg = tokio_postgres::Config::new();
    pg.host("localhost")
        .hostaddr(Ipv4Addr::LOCALHOST.into())
        .port(addr.port())
        .user(APP_USER)
        .password(APP_PASSWORD)
        .dbname(APP_DATABASE)
        .ssl_mode(tokio_postgres::config::SslMode::Require)
        .connect_timeout(Duration::from_secs(20));
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(db.tls_client_config().unwrap());
    let (c, conn) = pg.connect(tls).await.expect("login through serve");
    tokio::spawn(conn);
    exec(
        &c,
        "CREATE TABLE patients (id int PRIMARY KEY, ssn bytea, dx bytea)",
    )
    .await;
    exec(&c, "INSERT INTO patients VALUES (1, '123-45-6789', 'flu')").await;
    let su = db.superuser_client(APP_DATABASE).await.unwrap();
    let ssn: Vec<u8> = su
        .query_one("SELECT ssn FROM patients WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_envelope(&ssn, "123-45-6789");
    drop(c);

    let log = stop(guard).await;
    assert!(
        log.contains("database app: missing-table: table public.patients does not exist"),
        "{log}"
    );
    assert!(
        log.contains("field encryption enabled for database app"),
        "{log}"
    );
    assert!(
        log.contains("tables=1") && log.contains("columns=2"),
        "{log}"
    );
    assert!(!log.contains("123-45-6789"), "never logs a value");
}
