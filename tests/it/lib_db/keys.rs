//! The data-key table against a real PostgreSQL (moved from `src/control/keys.rs` so that
//! `cargo test --lib` needs no database).

use std::collections::BTreeSet;
use std::path::Path;

use pgcloak::config::{Mode, Rules, parse_rules};
use pgcloak::control::keys::*;
use pgcloak::crypto::{Algorithm, DataKey, MasterKey};
use pgcloak::devdb::{DevDb, DevDbOptions};

fn rules() -> Rules {
    let text = r#"
[tables.patients]
ssn = { type = "text", mode = "deterministic" }
dx  = { type = "text", mode = "randomized" }
[tables."ledger.a"]
iban = { type = "text", mode = "deterministic", key = "iban" }
[tables."ledger.b"]
iban = { type = "text", mode = "deterministic", key = "iban" }
"#;
    Rules::from_columns(parse_rules(text, Path::new("t.toml")).unwrap()).unwrap()
}

#[tokio::test]
async fn init_rotate_rewrap_load_against_postgres() {
    let db = DevDb::start(DevDbOptions::default()).await.unwrap();
    let mut c = db.superuser_client("app").await.unwrap();
    let (rules, master) = (rules(), MasterKey::generate());
    assert!(matches!(
        load_keyring(&c, &master).await,
        Err(KeysError::NotInitialized)
    ));

    let skip = BTreeSet::from(["public.patients.dx".to_owned()]);
    let created = init_except(&mut c, &rules, &master, &skip).await.unwrap();
    assert_eq!(created, ["iban", "public.patients.ssn"]);
    let created = init(&mut c, &rules, &master).await.unwrap();
    assert_eq!(created, ["public.patients.dx"]);
    assert!(
        init(&mut c, &rules, &master).await.unwrap().is_empty(),
        "idempotent"
    );
    let listed = list(&c, &rules).await.unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0].name, "iban");
    assert_eq!(listed[0].columns, ["ledger.a.iban", "ledger.b.iban"]);
    assert_eq!(listed[0].algorithm, "aes-256-siv");
    assert_eq!(listed[0].versions.len(), 1);
    assert_eq!(listed[0].wrapped_by, [master.kek_ref()]);
    assert_eq!(listed[0].versions[0].1, "active");
    let ring = load_keyring(&c, &master).await.unwrap();
    assert_eq!(ring.key("iban").unwrap().mode(), Mode::Deterministic);
    assert_eq!(
        ring.key("public.patients.dx").unwrap().mode(),
        Mode::Randomized
    );
    let old = ring
        .encrypt("public.patients.ssn", Mode::Deterministic, b"123")
        .unwrap();

    // A wrong master key is refused before anything is written.
    let wrong = MasterKey::generate();
    let e = init(&mut c, &rules, &wrong).await.unwrap_err().to_string();
    assert!(e.contains("wrong master key?"), "{e}");
    assert!(rotate(&mut c, &rules, &wrong, None).await.is_err());

    let fp0 = keys_fingerprint(&c).await.unwrap();
    let r = rotate(&mut c, &rules, &master, Some("Patients.SSN"))
        .await
        .unwrap();
    assert_eq!(r, [("public.patients.ssn".to_owned(), 2)]);
    let fp1 = keys_fingerprint(&c).await.unwrap();
    assert_ne!(fp0, fp1);
    let all = rotate(&mut c, &rules, &master, None).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.contains(&("public.patients.ssn".to_owned(), 3)));
    assert!(matches!(
        rotate(&mut c, &rules, &master, Some("public.patients.nope")).await,
        Err(KeysError::UnknownColumn(_))
    ));
    let ring = load_keyring(&c, &master).await.unwrap();
    let ssn = ring.key("public.patients.ssn").unwrap();
    assert_eq!(ssn.current_version(), 3);
    assert_eq!(ssn.decrypt(&old).unwrap().as_slice(), b"123");
    let new = ssn.encrypt(Mode::Deterministic, b"123").unwrap();
    assert_eq!(&new[2..6], &[0, 0, 0, 3]);

    let new_master = MasterKey::generate();
    assert!(rewrap(&mut c, &wrong, &new_master).await.is_err());
    assert_eq!(rewrap(&mut c, &master, &new_master).await.unwrap(), 7);
    assert_ne!(keys_fingerprint(&c).await.unwrap(), fp1);
    let rows = read_wrapped(&c).await.unwrap();
    assert!(rows.iter().all(|r| new_master.unwrap(r).is_ok()));
    assert!(rows.iter().all(|r| master.unwrap(r).is_err()));
    let ring = load_keyring(&c, &new_master).await.unwrap();
    assert_eq!(
        ring.decrypt("public.patients.ssn", &old)
            .unwrap()
            .as_slice(),
        b"123"
    );
}

#[tokio::test]
async fn a_table_from_before_providers_reads_as_local_and_is_upgraded() {
    let db = DevDb::start(DevDbOptions::default()).await.unwrap();
    let mut c = db.superuser_client("app").await.unwrap();
    let (rules, master) = (rules(), MasterKey::generate());
    // The table as `keys init` made it before providers existed, with one key in it.
    let old = CREATE_SQL.split("ALTER TABLE").next().unwrap();
    c.batch_execute(old).await.unwrap();
    let stored = master.wrap(&DataKey::generate("iban", 1, Algorithm::Aes256Siv));
    c.execute(
        "INSERT INTO pgcloak.data_keys (key_name, version, algorithm, wrapped_key) VALUES ($1, 1, $2, $3)",
        &[&stored.name, &stored.algorithm, &stored.wrapped],
    )
    .await
    .unwrap();
    let rows = read_wrapped(&c).await.unwrap();
    assert_eq!(
        (rows[0].by.kind.as_str(), rows[0].by.key_id.as_str()),
        ("local", "")
    );
    assert!(load_keyring(&c, &master).await.unwrap().key("iban").is_ok());
    // init upgrades in place (twice: idempotent) and records the provider key of new rows.
    init(&mut c, &rules, &master).await.unwrap();
    init(&mut c, &rules, &master).await.unwrap();
    let rows = read_wrapped(&c).await.unwrap();
    assert_eq!(rows.len(), 3);
    let iban = rows.iter().find(|r| r.name == "iban").unwrap();
    assert_eq!(iban.by.key_id, "", "existing rows keep what they had");
    let ssn = rows
        .iter()
        .find(|r| r.name == "public.patients.ssn")
        .unwrap();
    assert_eq!(ssn.by, master.kek_ref());
    // A rewrap records the new key on every row.
    let new = MasterKey::generate();
    assert_eq!(rewrap(&mut c, &master, &new).await.unwrap(), 3);
    let rows = read_wrapped(&c).await.unwrap();
    assert!(rows.iter().all(|r| r.by == new.kek_ref()));
    assert_ne!(new.kek_ref(), master.kek_ref());
    // A local provider refuses, naming it, a row another provider wrapped.
    c.execute("UPDATE pgcloak.data_keys SET provider = 'vault-transit', provider_key = 'transit/pgcloak', provider_key_version = 3 WHERE key_name = 'iban'", &[])
        .await
        .unwrap();
    let e = load_keyring(&c, &new).await.unwrap_err().to_string();
    assert!(
        e.contains("data key iban v1 is wrapped by vault-transit key transit/pgcloak v3, which this config cannot reach"),
        "{e}"
    );
}
