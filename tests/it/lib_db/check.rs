//! `check` against a real PostgreSQL (moved from `src/control/check.rs` so that
//! `cargo test --lib` needs no database).

use std::path::Path;

use pgcloak::config::{Rules, parse_rules};
use pgcloak::control::check::*;
use pgcloak::control::keys::init;
use pgcloak::crypto::MasterKey;
use pgcloak::devdb::{DevDb, DevDbOptions};

fn rules(text: &str) -> Rules {
    Rules::from_columns(parse_rules(text, Path::new("t.toml")).unwrap()).unwrap()
}

const RULES: &str = r#"
[tables.patients]
ssn   = { type = "text", mode = "deterministic" }
email = { type = "text", mode = "deterministic" }
dx    = { type = "text", mode = "randomized" }
[tables."clinic.\"Visits\""]
note  = { type = "text", mode = "randomized" }
[tables.ghosts]
x = { type = "int4", mode = "randomized" }
"#;

#[tokio::test]
async fn check_reports_every_problem_by_kind() {
    let db = DevDb::start(DevDbOptions::default()).await.unwrap();
    let mut c = db.superuser_client("app").await.unwrap();
    c.batch_execute(
        "CREATE TABLE patients (id int, ssn bytea, dx text);
         CREATE SCHEMA clinic; CREATE TABLE clinic.\"Visits\" (note bytea);",
    )
    .await
    .unwrap();
    let (all, master) = (rules(RULES), MasterKey::generate());
    let kinds = |ps: &[Problem]| ps.iter().map(|p| p.kind).collect::<Vec<_>>();

    let ps = check_online(&c, &all, &master).await;
    use ProblemKind::{
        KeyAlgorithm, MissingColumn, MissingKey, MissingKeyTable, MissingTable, Pending,
        WrongMasterKey,
    };
    assert_eq!(
        kinds(&ps),
        [MissingTable, Pending, MissingColumn, MissingKeyTable],
        "{ps:?}"
    );
    let text: Vec<String> = ps.iter().map(ToString::to_string).collect();
    assert!(text[0].contains("public.ghosts"), "{text:?}");
    assert!(text[2].contains("public.patients.email"), "{text:?}");
    assert!(
        text[1].contains("public.patients.dx") && text[1].contains("text"),
        "{text:?}"
    );
    assert!(text[1].contains("pgcloak migrate encrypt"), "{text:?}");
    assert!(!ps[0].blocks_serving() && !ps[1].blocks_serving() && ps[2].blocks_serving());
    let wrong: Vec<String> = check_tables(&c, &all)
        .await
        .wrong_keys
        .into_iter()
        .collect();
    assert_eq!(wrong, ["public.patients.email"], "pending columns get keys");

    // Keys for a subset of the rules: the rest are reported missing.
    let some = rules("[tables.patients]\nssn = { type = \"text\", mode = \"deterministic\" }");
    init(&mut c, &some, &master).await.unwrap();
    c.batch_execute("ALTER TABLE patients ADD COLUMN email bytea, ALTER COLUMN dx TYPE bytea USING dx::bytea; CREATE TABLE ghosts (x bytea)")
        .await
        .unwrap();
    let ps = check_online(&c, &all, &master).await;
    assert_eq!(kinds(&ps), [MissingKey; 4], "{ps:?}");
    assert!(ps.iter().any(|p| p.message.contains("clinic.Visits.note")));

    init(&mut c, &all, &master).await.unwrap();
    assert!(check_online(&c, &all, &master).await.is_empty());
    let ps = check_online(&c, &all, &MasterKey::generate()).await;
    assert_eq!(ps.len(), 5, "{ps:?}");
    assert!(ps.iter().all(|p| p.kind == WrongMasterKey));
    assert!(ps[0].message.contains("wrong master key?"), "{ps:?}");

    // A rules mode change makes the stored key's algorithm wrong.
    let flipped = RULES.replace(
        "dx    = { type = \"text\", mode = \"randomized\" }",
        "dx    = { type = \"text\", mode = \"deterministic\" }",
    );
    let ps = check_online(&c, &rules(&flipped), &master).await;
    assert_eq!(kinds(&ps), [KeyAlgorithm], "{ps:?}");
}
