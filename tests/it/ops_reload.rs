//! SIGHUP on the real binary: a new rules file is checked and applied to new sessions at
//! once (a newly encrypted column is stored as envelopes), a session opened under the old
//! rules is closed at its next idle point, the reload is logged with what changed, and a bad
//! rules file is reported while the running rules stay.

use std::process::Stdio;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pgcloak::devdb::{CONTROL_PASSWORD, DevDb, DevDbOptions};
use tokio::process::Command;

use crate::harness::{ProxyOptions, config_toml, with_database};
use crate::ops_util::{app_at, bin, free_addr, init_keys, stored_version, until};
use crate::serve::{ChildGuard, wait_listening};

const V1: &str = "[tables.ops_r]\na = { type = \"text\", mode = \"randomized\" }\n";
const V2: &str = "[tables.ops_r]\na = { type = \"text\", mode = \"randomized\" }\n\
                  b = { type = \"text\", mode = \"randomized\" }\n";

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_rules_for_new_statements_and_keeps_them_on_a_bad_file() {
    let db = DevDb::start(DevDbOptions::default()).await.unwrap();
    let direct = db.client("app", "app-dev-password", "app").await.unwrap();
    direct
        .batch_execute("create table ops_r(id int, a bytea, b bytea)")
        .await
        .unwrap();
    // Keys for both versions of the rules exist before the proxy starts.
    let master = init_keys(&db, V2).await;
    let addr = free_addr();
    let opts = ProxyOptions {
        rules: Some(V1.to_owned()),
        master_key_b64: Some(master.clone()),
        ..ProxyOptions::default()
    };
    let config = db.dir().join("reload.toml");
    std::fs::write(&config, config_toml(&db, addr, &opts)).unwrap();
    let log = db.dir().join("serve.log");
    let child = Command::new(bin())
        .args(["serve", "-c"])
        .arg(&config)
        .env("PGCLOAK_CONTROL_PASSWORD", CONTROL_PASSWORD)
        .env("PGCLOAK_MASTER_KEY", &master)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(Some(child));
    let child = guard.0.as_mut().unwrap();
    wait_listening(addr, child).await;
    let pid = Pid::from_raw(child.id().unwrap() as i32);

    let old = app_at(&db, addr).await.unwrap();
    old.execute("insert into ops_r values (1, 'x', 'plain-b')", &[])
        .await
        .unwrap();
    assert!(stored_version(&direct, "ops_r", "a", 1).await.is_some());
    assert_eq!(
        stored_version(&direct, "ops_r", "b", 1).await,
        None,
        "b is not a rules column yet"
    );

    std::fs::write(
        db.dir().join("rules.toml"),
        with_database(V2, db.database()),
    )
    .unwrap();
    kill(pid, Signal::SIGHUP).unwrap();
    let mut id = 100;
    until("a new session encrypts b", || {
        id += 1;
        let (db, direct) = (&db, &direct);
        async move {
            let c = app_at(db, addr).await.unwrap();
            c.execute("insert into ops_r values ($1, 'x', 'secret-b')", &[&id])
                .await
                .unwrap();
            stored_version(direct, "ops_r", "b", id).await == Some(1)
        }
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("rules changed") && text.contains("public.ops_r.b"),
        "{text}"
    );
    // The session opened under the old rules is closed rather than left writing plaintext.
    until("the old session is closed", || async {
        old.execute("insert into ops_r values (2, 'x', 'y')", &[])
            .await
            .is_err()
    })
    .await;
    assert_eq!(stored_version(&direct, "ops_r", "b", 2).await, None);
    assert!(
        direct
            .query_opt("select 1 from ops_r where id = 2 and b = 'y'", &[])
            .await
            .unwrap()
            .is_none()
    );

    // A bad rules file: reported, the running rules stay, the process lives on.
    std::fs::write(db.dir().join("rules.toml"), "this is [not toml").unwrap();
    kill(pid, Signal::SIGHUP).unwrap();
    until("the rejected reload in the log", || async {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("reload rejected")
    })
    .await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "pgcloak serve exited on a bad reload"
    );
    let c = app_at(&db, addr).await.unwrap();
    c.execute(
        "insert into ops_r values (500, 'x', 'still-encrypted')",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(stored_version(&direct, "ops_r", "b", 500).await, Some(1));
    let back: String = c
        .query_one("select b from ops_r where id = 500", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(back, "still-encrypted");
    let _ = kill(pid, Signal::SIGTERM);
}
