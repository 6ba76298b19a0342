//! Re-encryption against a real PostgreSQL (moved from `src/control/reencrypt.rs` so that
//! `cargo test --lib` needs no database).

use std::path::Path;

use pgcloak::config::{Mode, Rules, parse_rules};
use pgcloak::control::keys::{KeysError, init, load_keyring, rotate};
use pgcloak::control::reencrypt::*;
use pgcloak::crypto::MasterKey;
use pgcloak::devdb::{DevDb, DevDbOptions};
use tokio_postgres::Client;

const ROWS: i32 = 1100;

fn rules() -> Rules {
    let text = r#"
[tables.people]
ssn  = { type = "text", mode = "deterministic" }
note = { type = "text", mode = "randomized" }
[tables.ledger]
order = { type = "text", mode = "deterministic" }
"#;
    Rules::from_columns(parse_rules(text, Path::new("t.toml")).unwrap()).unwrap()
}

fn version(stored: &[u8]) -> u32 {
    u32::from_be_bytes(stored[2..6].try_into().unwrap())
}

/// `(id, ssn, note)` of every row, by id.
async fn rows(c: &Client) -> Vec<(i32, Option<Vec<u8>>, Option<Vec<u8>>)> {
    let rows = c
        .query("SELECT id, ssn, note FROM people ORDER BY id", &[])
        .await
        .unwrap();
    rows.iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn report<'a>(reports: &'a [ColumnReport], column: &str) -> &'a ColumnReport {
    reports.iter().find(|r| r.column == column).unwrap()
}

#[tokio::test]
async fn reencrypts_to_the_current_version_and_counts_what_it_leaves() {
    let db = DevDb::start(DevDbOptions::default()).await.unwrap();
    let mut c = db.superuser_client("app").await.unwrap();
    // `pad` (stored inline, uncompressed) makes the table span several re-encryption windows.
    c.batch_execute(
        "CREATE TABLE people (id int PRIMARY KEY, ssn bytea UNIQUE, note bytea, pad text);
         ALTER TABLE people ALTER COLUMN pad SET STORAGE PLAIN;
         CREATE TABLE ledger (\"order\" bytea)",
    )
    .await
    .unwrap();
    let (rules, master) = (rules(), MasterKey::generate());
    init(&mut c, &rules, &master).await.unwrap();
    let ring = load_keyring(&c, &master).await.unwrap();
    let (ids, ssns, notes): (Vec<i32>, Vec<Vec<u8>>, Vec<Vec<u8>>) = (1..=ROWS)
        .map(|i| {
            let ssn = ring.encrypt(
                "public.people.ssn",
                Mode::Deterministic,
                format!("ssn-{i}").as_bytes(),
            );
            let note = ring.encrypt(
                "public.people.note",
                Mode::Randomized,
                format!("note-{i}").as_bytes(),
            );
            (i, ssn.unwrap(), note.unwrap())
        })
        .fold(
            (vec![], vec![], vec![]),
            |(mut a, mut b, mut c), (i, s, n)| {
                a.push(i);
                b.push(s);
                c.push(n);
                (a, b, c)
            },
        );
    c.execute(
        "INSERT INTO people SELECT *, repeat('x', 2000) FROM unnest($1::int[], $2::bytea[], $3::bytea[])",
        &[&ids, &ssns, &notes],
    )
    .await
    .unwrap();
    let blocks: i64 = c
        .query_one(
            "SELECT pg_relation_size('people') / current_setting('block_size')::int",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        blocks > 2 * WINDOW_BLOCKS,
        "{blocks} blocks: the walk must cross windows"
    );

    rotate(&mut c, &rules, &master, None).await.unwrap();
    let ring = load_keyring(&c, &master).await.unwrap();
    // A v2 value whose plaintext equals row 1's note, and a value pgcloak never wrote.
    let v2 = ring
        .encrypt("public.people.note", Mode::Randomized, b"note-1")
        .unwrap();
    c.execute(
        "INSERT INTO people VALUES (-1, NULL, $1, ''), (-2, NULL, 'garbage'::bytea, '')",
        &[&v2],
    )
    .await
    .unwrap();

    let reports = reencrypt(&mut c, &rules, &ring, None, false).await.unwrap();
    let cols: Vec<&str> = reports.iter().map(|r| r.column.as_str()).collect();
    assert_eq!(
        cols,
        [
            "public.ledger.order",
            "public.people.note",
            "public.people.ssn"
        ]
    );
    let ssn = report(&reports, "public.people.ssn");
    assert_eq!(
        (ssn.version, ssn.rewritten, ssn.unreadable, ssn.conflicts),
        (2, ROWS as u64, 0, 0)
    );
    let note = report(&reports, "public.people.note");
    assert_eq!(
        (note.rewritten, note.unreadable, note.conflicts),
        (ROWS as u64, 1, 0)
    );
    assert_eq!(report(&reports, "public.ledger.order").rewritten, 0);

    for (id, s, n) in rows(&c).await {
        let n = n.unwrap();
        if id == -2 {
            assert_eq!(n, b"garbage", "unreadable value left as is");
            continue;
        }
        assert_eq!(version(&n), 2, "row {id}");
        let want = if id == -1 {
            "note-1".to_owned()
        } else {
            format!("note-{id}")
        };
        assert_eq!(
            ring.decrypt("public.people.note", &n).unwrap().as_slice(),
            want.as_bytes()
        );
        if id > 0 {
            let s = s.unwrap();
            assert_eq!(version(&s), 2);
            assert_eq!(
                s,
                ring.encrypt(
                    "public.people.ssn",
                    Mode::Deterministic,
                    format!("ssn-{id}").as_bytes()
                )
                .unwrap()
            );
        }
    }
    // Nothing left to do: a second run rewrites nothing.
    let again = reencrypt(&mut c, &rules, &ring, Some("people.ssn"), false)
        .await
        .unwrap();
    assert_eq!((again.len(), again[0].rewritten), (1, 0));

    // Rotate again and store row 7's SSN under v3 in a new row while row 7 still holds it
    // under v2: re-encrypting row 7 violates UNIQUE; every other row still moves to v3.
    rotate(&mut c, &rules, &master, None).await.unwrap();
    let ring = load_keyring(&c, &master).await.unwrap();
    let dup = ring
        .encrypt("public.people.ssn", Mode::Deterministic, b"ssn-7")
        .unwrap();
    c.execute("INSERT INTO people VALUES (-3, $1, NULL, '')", &[&dup])
        .await
        .unwrap();
    let reports = reencrypt(&mut c, &rules, &ring, None, true).await.unwrap();
    let cols: Vec<&str> = reports.iter().map(|r| r.column.as_str()).collect();
    assert_eq!(
        cols,
        ["public.ledger.order", "public.people.ssn"],
        "only deterministic"
    );
    let ssn = report(&reports, "public.people.ssn");
    assert_eq!(
        (ssn.version, ssn.rewritten, ssn.unreadable, ssn.conflicts),
        (3, ROWS as u64 - 1, 0, 1)
    );
    for (id, s, n) in rows(&c).await {
        if id > 0 {
            let s = s.unwrap();
            assert_eq!(version(&s), if id == 7 { 2 } else { 3 }, "row {id}");
            let want = format!("ssn-{id}");
            assert_eq!(
                ring.decrypt("public.people.ssn", &s).unwrap().as_slice(),
                want.as_bytes()
            );
            assert_eq!(version(&n.unwrap()), 2, "randomized column skipped");
        }
    }
    assert!(matches!(
        reencrypt(&mut c, &rules, &ring, Some("people.nope"), false).await,
        Err(KeysError::UnknownColumn(_))
    ));
    c.batch_execute(
        "DROP TABLE ledger; CREATE TABLE ledger (\"order\" bytea) PARTITION BY HASH (\"order\")",
    )
    .await
    .unwrap();
    let e = reencrypt(&mut c, &rules, &ring, Some("ledger.order"), false).await;
    assert!(matches!(e, Err(KeysError::Partitioned(_))), "{e:?}");
}
