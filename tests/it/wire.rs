//! Raw-socket protocol tests: a minimal frontend written here (SSLRequest → TLS → a
//! StartupMessage of arbitrary parameters → SCRAM-SHA-256-PLUS → simple queries) that sees every
//! message, for what drivers hide — the BackendKeyData, duplicate startup parameters, an empty
//! database name — against pgcloak and against PostgreSQL itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgcloak::auth::{ScramClient, UpstreamSecret, tls_server_end_point};
use pgcloak::devdb::{APP_DATABASE, APP_PASSWORD, APP_USER, DevDb, DevDbOptions};
use pgcloak::protocol::frontend::{SaslInitialResponse, sasl_response};
use pgcloak::protocol::startup::{CancelKey, cancel_request};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use zeroize::Zeroizing;

use crate::harness::{HANG, TestEnv, shared_db, start_encrypted, wait_until, within};

/// One backend message.
#[derive(Debug, Clone)]
pub struct Msg {
    pub tag: u8,
    pub body: Vec<u8>,
}

impl Msg {
    /// The (field code, value) pairs of an ErrorResponse or NoticeResponse.
    pub fn fields(&self) -> Vec<(u8, String)> {
        self.body
            .split(|b| *b == 0)
            .filter(|f| !f.is_empty())
            .map(|f| (f[0], String::from_utf8_lossy(&f[1..]).into_owned()))
            .collect()
    }

    /// An ErrorResponse's SQLSTATE.
    pub fn sqlstate(&self) -> Option<String> {
        self.fields()
            .into_iter()
            .find(|(k, _)| *k == b'C')
            .map(|(_, v)| v)
    }
}

/// A logged-in raw connection.
pub struct Raw {
    s: TlsStream<TcpStream>,
    /// The BackendKeyData the server (or pgcloak) sent.
    pub key: CancelKey,
    /// Every message of the greeting, through the first ReadyForQuery.
    pub greeting: Vec<Msg>,
}

/// Why a raw login ended without a session: the ErrorResponse (or what came instead).
pub type Refused = Msg;

/// A StartupMessage (protocol 3.0) with `params` in order, duplicates and all.
pub fn startup_message(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for (k, v) in params {
        for s in [k, v] {
            body.extend_from_slice(s.as_bytes());
            body.push(0);
        }
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    msg
}

async fn read_msg<S: AsyncReadExt + Unpin>(s: &mut S) -> Option<Msg> {
    let tag = s.read_u8().await.ok()?;
    let len = s.read_u32().await.ok()? as usize;
    let mut body = vec![0; len.checked_sub(4)?];
    s.read_exact(&mut body).await.ok()?;
    Some(Msg { tag, body })
}

fn closed() -> Msg {
    Msg {
        tag: 0,
        body: b"connection closed".to_vec(),
    }
}

/// TCP → SSLRequest → `S` → TLS verified against `db`'s CA as "localhost".
async fn tls_to(addr: SocketAddr, db: &DevDb) -> TlsStream<TcpStream> {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(&[0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f])
        .await
        .expect("SSLRequest");
    assert_eq!(tcp.read_u8().await.expect("SSL answer"), b'S');
    let connector = TlsConnector::from(Arc::new(db.tls_client_config().expect("tls config")));
    let name = ServerName::try_from("localhost").expect("name");
    connector.connect(name, tcp).await.expect("TLS handshake")
}

impl Raw {
    /// Logs in at `addr` (pgcloak or PostgreSQL) with `params` and `password`.
    pub async fn login(
        addr: SocketAddr,
        db: &DevDb,
        params: &[(&str, &str)],
        password: &str,
    ) -> Result<Raw, Refused> {
        within(HANG, Self::login_inner(addr, db, params, password)).await
    }

    async fn login_inner(
        addr: SocketAddr,
        db: &DevDb,
        params: &[(&str, &str)],
        password: &str,
    ) -> Result<Raw, Refused> {
        let mut s = tls_to(addr, db).await;
        let cert_hash = s
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| tls_server_end_point(c.first()?.as_ref()));
        s.write_all(&startup_message(params)).await.expect("write");
        let mut scram: Option<ScramClient> = None;
        let mut key = None;
        let mut greeting = Vec::new();
        loop {
            let m = read_msg(&mut s).await.ok_or_else(closed)?;
            match m.tag {
                b'E' => return Err(m),
                b'R' => {
                    let code = u32::from_be_bytes(m.body[..4].try_into().expect("auth code"));
                    let data = &m.body[4..];
                    let reply = match code {
                        0 => None,
                        10 => {
                            let offered: Vec<&str> = data
                                .split(|b| *b == 0)
                                .filter(|m| !m.is_empty())
                                .map(|m| std::str::from_utf8(m).expect("mechanism"))
                                .collect();
                            let secret = UpstreamSecret::Password(Zeroizing::new(password.into()));
                            let mut c = ScramClient::new(secret, &offered, cert_hash.clone())
                                .expect("SCRAM client");
                            let first = c.client_first();
                            let msg = SaslInitialResponse {
                                mechanism: c.mechanism(),
                                data: Some(&first),
                            }
                            .encode();
                            scram = Some(c);
                            Some(msg)
                        }
                        11 => {
                            let c = scram.as_mut().expect("SASL started");
                            Some(sasl_response(&c.server_first(data).expect("server-first")))
                        }
                        12 => {
                            let c = scram.as_mut().expect("SASL started");
                            c.server_final(data).expect("server signature");
                            None
                        }
                        other => panic!("unexpected authentication request {other}"),
                    };
                    if let Some(r) = reply {
                        s.write_all(&r).await.expect("write");
                    }
                }
                b'K' => {
                    key = Some(CancelKey {
                        pid: i32::from_be_bytes(m.body[..4].try_into().expect("pid")),
                        secret: m.body[4..].to_vec(),
                    });
                    greeting.push(m);
                }
                b'Z' => {
                    greeting.push(m);
                    let key = key.expect("no BackendKeyData before ReadyForQuery");
                    return Ok(Raw { s, key, greeting });
                }
                _ => greeting.push(m),
            }
        }
    }

    /// Sends a simple Query; returns the first column of every row (NULL as `None`) and the
    /// ErrorResponse, if any, after ReadyForQuery.
    pub async fn query(&mut self, sql: &str) -> (Vec<Option<String>>, Option<Msg>) {
        self.send_query(sql).await;
        self.results().await
    }

    /// Sends a FunctionCall (fast path) of function `oid` with text arguments, text result;
    /// returns the ErrorResponse, if any, after ReadyForQuery.
    pub async fn function_call(&mut self, oid: u32, args: &[&str]) -> Option<Msg> {
        let mut body = oid.to_be_bytes().to_vec();
        body.extend_from_slice(&1u16.to_be_bytes());
        body.extend_from_slice(&0u16.to_be_bytes());
        body.extend_from_slice(&(args.len() as u16).to_be_bytes());
        for a in args {
            body.extend_from_slice(&(a.len() as i32).to_be_bytes());
            body.extend_from_slice(a.as_bytes());
        }
        body.extend_from_slice(&0u16.to_be_bytes());
        let mut m = vec![b'F'];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(&body);
        self.s.write_all(&m).await.expect("write FunctionCall");
        self.results().await.1
    }

    /// Sends one message of type `tag` with `body` as given (malformed on purpose, say).
    pub async fn send_raw(&mut self, tag: u8, body: &[u8]) {
        let mut m = vec![tag];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(body);
        self.s.write_all(&m).await.expect("write message");
    }

    /// Sends a simple Query without waiting for its results.
    pub async fn send_query(&mut self, sql: &str) {
        let mut q = vec![b'Q'];
        q.extend_from_slice(&((sql.len() + 5) as u32).to_be_bytes());
        q.extend_from_slice(sql.as_bytes());
        q.push(0);
        self.s.write_all(&q).await.expect("write Query");
    }

    /// The next message, `None` once the connection is closed.
    pub async fn next_msg(&mut self) -> Option<Msg> {
        within(HANG, read_msg(&mut self.s)).await
    }

    /// Reads up to ReadyForQuery: the first column of every row, and the ErrorResponse.
    pub async fn results(&mut self) -> (Vec<Option<String>>, Option<Msg>) {
        within(HANG, async {
            let (mut rows, mut error) = (Vec::new(), None);
            loop {
                let m = read_msg(&mut self.s).await.expect("connection closed");
                match m.tag {
                    b'D' => {
                        let len = i32::from_be_bytes(m.body[2..6].try_into().expect("len"));
                        rows.push((len >= 0).then(|| {
                            String::from_utf8_lossy(&m.body[6..6 + len as usize]).into_owned()
                        }));
                    }
                    b'E' => error = Some(m),
                    b'Z' => return (rows, error),
                    _ => {}
                }
            }
        })
        .await
    }
}

/// Sends a plaintext CancelRequest for `key` to `addr` and waits for the close.
pub async fn send_cancel(addr: SocketAddr, key: &CancelKey) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(&cancel_request(key)).await.expect("write");
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut sink)).await;
}

/// `db` with table `table (id int PRIMARY KEY, v bytea)` whose `v` is a randomized text rules
/// column, behind an encrypting proxy.
async fn with_encrypted_v(db: DevDb, table: &str) -> TestEnv {
    let app = db
        .client(APP_USER, APP_PASSWORD, db.database())
        .await
        .expect("direct login");
    app.batch_execute(&format!(
        "CREATE TABLE {table} (id int PRIMARY KEY, v bytea)"
    ))
    .await
    .expect("create table");
    let rules = format!("[tables.{table}]\nv = {{ type = \"text\", mode = \"randomized\" }}\n");
    start_encrypted(db, &rules).await.0
}

/// The app role's login parameters for `database`.
fn app_params(database: &str) -> Vec<(&'static str, &str)> {
    vec![("user", APP_USER), ("database", database)]
}

/// Waits until the backend `pid` is running a statement (`state = 'active'`), seen from a
/// direct session on `db`.
async fn wait_active(db: &DevDb, pid: i32) {
    let d = db
        .client(APP_USER, APP_PASSWORD, db.database())
        .await
        .expect("direct login");
    wait_until(HANG, "the statement to start", || async {
        d.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'",
            &[&pid],
        )
        .await
        .expect("pg_stat_activity")
        .get::<_, i64>(0)
            == 1
    })
    .await;
}

// The client sees the backend's real process ID (pg_backend_pid(), NOTIFY senders, what
// drivers report), with a secret of pgcloak's own: that key cancels through pgcloak, but not
// at PostgreSQL directly, and a wrong secret cancels nothing.
#[tokio::test(flavor = "multi_thread")]
async fn wire_backend_key_carries_the_real_pid_and_a_proxy_secret() {
    let env = TestEnv::start().await;
    let (proxy, direct) = (
        env.proxy_addr(),
        SocketAddr::from(([127, 0, 0, 1], env.db.port())),
    );
    let mut c = Raw::login(proxy, &env.db, &app_params(env.db.database()), APP_PASSWORD)
        .await
        .expect("login through pgcloak");
    let (rows, err) = c.query("select pg_backend_pid()").await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        rows,
        vec![Some(c.key.pid.to_string())],
        "BackendKeyData pid"
    );
    assert_eq!(c.key.secret.len(), 4);
    let keys = c.greeting.iter().filter(|m| m.tag == b'K').count();
    assert_eq!(keys, 1, "one BackendKeyData in the greeting");
    let (_, err) = c.query("listen wire").await;
    assert!(err.is_none(), "{err:?}");
    // A NOTIFY from the same session names the pid the client was given.
    c.send_query("notify wire, 'y'").await;
    let notified = within(HANG, async {
        loop {
            let m = read_msg(&mut c.s).await.expect("closed");
            if m.tag == b'A' {
                break i32::from_be_bytes(m.body[..4].try_into().expect("pid"));
            }
        }
    })
    .await;
    assert_eq!(notified, c.key.pid, "NOTIFY sender pid");
    let _ = c.results().await;

    // The client's key sent to PostgreSQL directly cancels nothing (the secret is pgcloak's),
    // nor does the real pid with a wrong secret through pgcloak.
    c.send_query("select pg_sleep(3)").await;
    wait_active(&env.db, c.key.pid).await;
    send_cancel(direct, &c.key).await;
    let mut wrong = c.key.clone();
    wrong.secret[0] ^= 0xff;
    send_cancel(proxy, &wrong).await;
    let (_, err) = c.results().await;
    assert!(
        err.is_none(),
        "a cancel with a foreign key took effect: {err:?}"
    );

    // The key through pgcloak cancels.
    c.send_query("select pg_sleep(30)").await;
    wait_active(&env.db, c.key.pid).await;
    let start = Instant::now();
    send_cancel(proxy, &c.key).await;
    let (_, err) = c.results().await;
    assert_eq!(err.and_then(|e| e.sqlstate()).as_deref(), Some("57014"));
    assert!(start.elapsed() < Duration::from_secs(10));
    let (rows, _) = c.query("select 1").await;
    assert_eq!(
        rows,
        vec![Some("1".into())],
        "the session survives the cancel"
    );
}

// A startup packet naming a parameter twice is refused with 08P01 (PostgreSQL takes the last
// value; reading it any other way could relay raw a session PostgreSQL opens on a rules
// database). The message names the parameter, never a value.
#[tokio::test(flavor = "multi_thread")]
async fn wire_duplicate_startup_parameters_are_refused() {
    let env = TestEnv::start().await;
    let database = env.db.database();
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[
                ("user", APP_USER),
                ("database", "postgres"),
                ("database", database),
            ],
            "database",
        ),
        (
            &[
                ("user", APP_USER),
                ("user", APP_USER),
                ("database", database),
            ],
            "user",
        ),
        (
            &[
                ("user", APP_USER),
                ("database", database),
                ("application_name", "one"),
                ("application_name", "two"),
            ],
            "application_name",
        ),
    ];
    for (params, name) in cases {
        let e = match Raw::login(env.proxy_addr(), &env.db, params, APP_PASSWORD).await {
            Ok(_) => panic!("{params:?}: the login succeeded"),
            Err(e) => e,
        };
        assert_eq!(e.sqlstate().as_deref(), Some("08P01"), "{:?}", e.fields());
        let message = e.fields().into_iter().find(|(k, _)| *k == b'M').unwrap().1;
        assert!(message.contains(&format!("\"{name}\"")), "{message}");
        assert!(
            !message.contains("two") && !message.contains("postgres"),
            "{message}"
        );
    }
    // The same names once each still log in.
    Raw::login(
        env.proxy_addr(),
        &env.db,
        &app_params(database),
        APP_PASSWORD,
    )
    .await
    .expect("login");
}

// `database=''` is the user's own database, as PostgreSQL reads it: for a user named like a
// rules database, that database's session is encrypted, not relayed raw.
#[tokio::test(flavor = "multi_thread")]
async fn wire_empty_database_name_is_the_user_s_rules_database() {
    assert_eq!(
        APP_USER, APP_DATABASE,
        "the test needs a user named like its database"
    );
    let db = DevDb::start(DevDbOptions::default()).await.expect("DevDb");
    let env = with_encrypted_v(db, "wire_secrets").await;
    let params = [("user", APP_USER), ("database", "")];
    let mut c = Raw::login(env.proxy_addr(), &env.db, &params, APP_PASSWORD)
        .await
        .expect("login with an empty database name");
    let (rows, err) = c.query("select current_database()").await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(rows, vec![Some(APP_DATABASE.to_owned())]);
    let (_, err) = c
        .query("INSERT INTO wire_secrets VALUES (1, 'wire-plaintext')")
        .await;
    assert!(err.is_none(), "{:?}", err.map(|e| e.fields()));
    let (rows, _) = c.query("SELECT v FROM wire_secrets WHERE id = 1").await;
    assert_eq!(rows, vec![Some("wire-plaintext".to_owned())], "decrypted");
    let app = env
        .db
        .client(APP_USER, APP_PASSWORD, APP_DATABASE)
        .await
        .expect("direct login");
    let stored: Vec<u8> = app
        .query_one("SELECT v FROM wire_secrets WHERE id = 1", &[])
        .await
        .expect("stored row")
        .get(0);
    assert_eq!(stored[0], 0x01, "not an envelope: {stored:02x?}");
    assert!(
        !stored.windows(14).any(|w| w == b"wire-plaintext"),
        "plaintext stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_function_calls_of_writer_functions_are_refused_and_others_reread_the_path() {
    let db = shared_db().await;
    let app = db
        .client(APP_USER, APP_PASSWORD, db.database())
        .await
        .expect("direct login");
    app.batch_execute(
        "CREATE TABLE wire_people (id int PRIMARY KEY, v bytea); \
         CREATE SCHEMA wire_shadow; CREATE TABLE wire_shadow.wire_people (id int, v text); \
         CREATE FUNCTION wire_add(s text) RETURNS void LANGUAGE sql AS \
           $$ INSERT INTO wire_people VALUES (9, convert_to(s, 'UTF8')) $$;",
    )
    .await
    .expect("setup");
    let rules = "[tables.wire_people]\nv = { type = \"text\", mode = \"randomized\" }\n";
    let (env, _, _) = start_encrypted(db, rules).await;
    let params = app_params(env.db.database());
    let mut c = Raw::login(env.proxy_addr(), &env.db, &params, APP_PASSWORD)
        .await
        .expect("login");
    let oid: u32 = app
        .query_one("SELECT 'wire_add'::regproc::oid", &[])
        .await
        .expect("oid")
        .get(0);
    let err = c.function_call(oid, &["wire-plaintext"]).await;
    assert_eq!(err.and_then(|e| e.sqlstate()).as_deref(), Some("0A000"));
    // set_config through the fast path: pgcloak reads the path again before the next statement.
    let set_config: u32 = app
        .query_one("SELECT 'set_config'::regproc::oid", &[])
        .await
        .expect("oid")
        .get(0);
    let err = c
        .function_call(set_config, &["search_path", "wire_shadow, public", "false"])
        .await;
    assert!(err.is_none(), "{:?}", err.map(|e| e.fields()));
    let (_, err) = c
        .query("INSERT INTO wire_people (id, v) VALUES (1, 'wire-shadowed')")
        .await;
    assert!(err.is_none(), "{:?}", err.map(|e| e.fields()));
    let n: i64 = app
        .query_one("SELECT count(*) FROM wire_shadow.wire_people", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 1, "the insert went where PostgreSQL's path points");
    let n: i64 = app
        .query_one("SELECT count(*) FROM public.wire_people", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0, "nothing reached the rules table");
}

/// A malformed message in an encrypted session gets an ERROR and the session goes on, as
/// PostgreSQL answers it (it used to be FATAL and closed the session): a Query without its NUL,
/// a Bind whose counts lie, a Describe and a Close of an unknown kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_malformed_messages_are_errors_and_the_session_goes_on() {
    let db = shared_db().await;
    let env = with_encrypted_v(db, "wire_m").await;
    let params = app_params(env.db.database());
    let direct: SocketAddr = format!("127.0.0.1:{}", env.db.port())
        .parse()
        .expect("direct address");
    for addr in [env.proxy_addr(), direct] {
        let mut c = Raw::login(addr, &env.db, &params, APP_PASSWORD)
            .await
            .expect("login");
        c.send_raw(b'Q', b"SELECT 1").await;
        let (_, err) = c.results().await;
        assert_eq!(
            err.and_then(|e| e.sqlstate()).as_deref(),
            Some("08P01"),
            "{addr}"
        );
        // Bind of a statement with one parameter: two parameter formats, one parameter.
        c.send_raw(b'P', b"\0SELECT $1::text\0\0\0").await;
        let mut bind = b"\0\0".to_vec();
        bind.extend_from_slice(&[0, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, b'x', 0, 0]);
        c.send_raw(b'B', &bind).await;
        c.send_raw(b'S', b"").await;
        let (_, err) = c.results().await;
        assert_eq!(
            err.and_then(|e| e.sqlstate()).as_deref(),
            Some("08P01"),
            "{addr}"
        );
        for (tag, body) in [(b'D', &b"X\0"[..]), (b'C', &b"X\0"[..])] {
            c.send_raw(tag, body).await;
            c.send_raw(b'S', b"").await;
            let (_, err) = c.results().await;
            assert_eq!(
                err.and_then(|e| e.sqlstate()).as_deref(),
                Some("08P01"),
                "{addr}"
            );
        }
        let (rows, err) = c.query("SELECT count(*) FROM wire_m").await;
        assert!(err.is_none(), "{addr}: {:?}", err.map(|e| e.fields()));
        assert_eq!(rows, vec![Some("0".to_owned())]);
    }
}

/// A client message whose tag byte is 0 (a startup message has none; its body used to be read
/// with the wrong header) carrying a value for an encrypted column: never reaches the server
/// as plaintext, and the session stays usable or ends, never hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_a_tag_zero_message_never_carries_plaintext_to_the_server() {
    let db = crate::leak::start_logged_db().await;
    let env = with_encrypted_v(db, "wire_z").await;
    let params = [("user", APP_USER), ("database", APP_DATABASE)];
    let mut c = Raw::login(env.proxy_addr(), &env.db, &params, APP_PASSWORD)
        .await
        .expect("login");
    let s = crate::leak::sentinel();
    let sql = format!("INSERT INTO wire_z VALUES (1, '{s}')\0");
    c.send_raw(0, sql.as_bytes()).await;
    c.send_raw(b'S', b"").await;
    // Whatever answers (an error, or the close), it comes: nothing hangs.
    while let Some(m) = c.next_msg().await {
        if m.tag == b'Z' {
            break;
        }
    }
    crate::leak::assert_no_leak(&env.db, &[s]).await;
}
