//! Two replicas against one database, with their poll turned down to once an hour so only
//! LISTEN/NOTIFY can carry a change: `pgcloak keys rotate` through the CLI while both serve
//! makes both write under the new key version, and a client alternating between them reads
//! every row (written before and after the rotation, through either).

use std::net::SocketAddr;
use std::sync::Arc;

use pgcloak::config::Config;
use pgcloak::devdb::{CONTROL_PASSWORD, DevDb, DevDbOptions};
use tokio::process::Command;
use tokio::sync::oneshot;
use zeroize::Zeroizing;

use crate::harness::{ProxyOptions, config_toml};
use crate::ops_util::{app_at, bin, init_keys, stored_version, until};

const RULES: &str = "[tables.ops_rep]\nv = { type = \"text\", mode = \"randomized\" }\n";

/// Starts one replica in-process; returns its address, config path and stop handle.
async fn replica(
    db: &DevDb,
    master: &str,
    name: &str,
) -> (SocketAddr, std::path::PathBuf, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = ProxyOptions {
        rules: Some(RULES.to_owned()),
        master_key_b64: Some(master.to_owned()),
        ..ProxyOptions::default()
    };
    let text = config_toml(db, addr, &opts)
        .replace("[control]\n", "[control]\npoll_interval_secs = 3600\n");
    let path = db.dir().join(format!("{name}.toml"));
    std::fs::write(&path, &text).unwrap();
    let config = Arc::new(Config::from_str_at(&text, &path).unwrap());
    let secrets = pgcloak::Secrets {
        control_password: Zeroizing::new(CONTROL_PASSWORD.to_owned()),
        master_key: Some(pgcloak::crypto::MasterKey::from_base64(master, "test").unwrap()),
        key_provider: None,
    };
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(pgcloak::run(listener, config, secrets, async move {
        let _ = rx.await;
    }));
    // Logged in once: its certificate files were read (the next replica rewrites them).
    until("replica accepts logins", || async {
        app_at(db, addr).await.is_ok()
    })
    .await;
    (addr, path, tx)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_through_the_cli_reaches_both_replicas_by_notify() {
    let db = DevDb::start(DevDbOptions::default()).await.unwrap();
    let direct = db.client("app", "app-dev-password", "app").await.unwrap();
    direct
        .batch_execute("create table ops_rep(id int, v bytea)")
        .await
        .unwrap();
    let master = init_keys(&db, RULES).await;
    let (a, config, _stop_a) = replica(&db, &master, "a").await;
    let (b, _, _stop_b) = replica(&db, &master, "b").await;
    let (ca, cb) = (app_at(&db, a).await.unwrap(), app_at(&db, b).await.unwrap());
    let insert = "insert into ops_rep values ($1, $2)";
    for id in 0..4 {
        let c = if id % 2 == 0 { &ca } else { &cb };
        c.execute(insert, &[&id, &format!("row-{id}")])
            .await
            .unwrap();
        assert_eq!(stored_version(&direct, "ops_rep", "v", id).await, Some(1));
    }

    let out = Command::new(bin())
        .args(["keys", "rotate", "--no-reencrypt", "-c"])
        .arg(&config)
        .env("PGCLOAK_CONTROL_PASSWORD", CONTROL_PASSWORD)
        .env("PGCLOAK_MASTER_KEY", &master)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated = std::time::Instant::now();
    // Each replica's next write uses v2 (the hourly poll cannot be what told them).
    let mut id = 10;
    for (c, name) in [(&ca, "a"), (&cb, "b")] {
        until(&format!("replica {name} writes under v2"), || {
            id += 1;
            let direct = &direct;
            async move {
                c.execute(insert, &[&id, &format!("row-{id}")])
                    .await
                    .unwrap();
                stored_version(direct, "ops_rep", "v", id).await == Some(2)
            }
        })
        .await;
    }
    println!(
        "both replicas used v2 {:?} after the rotation",
        rotated.elapsed()
    );
    for id in 100..104 {
        let c = if id % 2 == 0 { &ca } else { &cb };
        c.execute(insert, &[&id, &format!("row-{id}")])
            .await
            .unwrap();
        assert_eq!(stored_version(&direct, "ops_rep", "v", id).await, Some(2));
    }
    // Alternating between the replicas, every row reads back.
    let ids: Vec<i32> = direct
        .query("select id from ops_rep order by id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let c = if i % 2 == 0 { &ca } else { &cb };
        let v: String = c
            .query_one("select v from ops_rep where id = $1", &[id])
            .await
            .unwrap()
            .get(0);
        assert_eq!(v, format!("row-{id}"));
    }
    for c in [&ca, &cb] {
        let n: i64 = c
            .query_one("select count(v) from ops_rep", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n as usize, ids.len());
    }
}
