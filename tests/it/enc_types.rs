//! Every logical type (spec §3) round-trips through pgcloak, deterministic and randomized:
//! text in and out through the simple protocol, binary in and out through tokio-postgres's
//! typed parameters, NULL both ways; each value checked at rest; deterministic equality
//! finds a row whichever format wrote it, and text and binary writes store identical
//! ciphertexts.

use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use pgcloak::codec::{LogicalType, TextContext, canonical_to_binary, text_to_canonical};
use postgres_types::ToSql;
use tokio_postgres::{Client, Row, SimpleQueryMessage};

use crate::enc_env::{AnyNull, EncEnv, Raw};
use crate::harness::describe;

/// (type, SQL literal, PostgreSQL's text output with TimeZone UTC).
const CASES: &[(&str, &str, &str)] = &[
    ("text", "'héllo wörld ''q'''", "héllo wörld 'q'"),
    ("varchar", "'vc value'", "vc value"),
    ("int2", "-12345", "-12345"),
    ("int4", "2147483647", "2147483647"),
    ("int8", "-9000000000000000000", "-9000000000000000000"),
    ("float4", "1.5", "1.5"),
    ("float8", "-2.25e-10", "-2.25e-10"),
    ("numeric", "12345.6789", "12345.6789"),
    ("bool", "true", "t"),
    ("date", "'2024-02-29'", "2024-02-29"),
    ("time", "'13:45:01.5'", "13:45:01.5"),
    (
        "timestamp",
        "'2024-02-29 13:45:01.123456'",
        "2024-02-29 13:45:01.123456",
    ),
    (
        "timestamptz",
        "'2024-02-29 13:45:01+02'",
        "2024-02-29 11:45:01+00",
    ),
    (
        "uuid",
        "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    ),
    ("json", "'{\"a\":[1,2],\"b\":1}'", "{\"a\":[1,2],\"b\":1}"),
    (
        "jsonb",
        "'{\"b\": 1, \"a\": [1, 2]}'",
        "{\"a\": [1, 2], \"b\": 1}",
    ),
    ("bytea", "'\\xdeadbeef'", "\\xdeadbeef"),
];

/// The same values as Rust binary parameters.
fn binary_value(ty: &str) -> Box<dyn ToSql + Sync + Send> {
    let day = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    match ty {
        "text" => Box::new("héllo wörld 'q'".to_string()),
        "varchar" => Box::new("vc value".to_string()),
        "int2" => Box::new(-12345i16),
        "int4" => Box::new(i32::MAX),
        "int8" => Box::new(-9_000_000_000_000_000_000i64),
        "float4" => Box::new(1.5f32),
        "float8" => Box::new(-2.25e-10f64),
        "numeric" => Box::new(Raw(binary_of("numeric", "12345.6789"))),
        "bool" => Box::new(true),
        "date" => Box::new(day),
        "time" => Box::new(NaiveTime::from_hms_milli_opt(13, 45, 1, 500).unwrap()),
        "timestamp" => Box::new(day.and_hms_micro_opt(13, 45, 1, 123_456).unwrap()),
        "timestamptz" => Box::new(Utc.with_ymd_and_hms(2024, 2, 29, 11, 45, 1).unwrap()),
        "uuid" => Box::new(uuid::Uuid::parse_str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap()),
        "json" | "jsonb" => Box::new(serde_json::json!({"a": [1, 2], "b": 1})),
        "bytea" => Box::new(vec![0xde_u8, 0xad, 0xbe, 0xef]),
        other => panic!("no binary sample for {other}"),
    }
}

/// PostgreSQL's binary form of a value given as text (via pgcloak's codec, which is tested
/// against PostgreSQL itself).
fn binary_of(ty: &str, text: &str) -> Vec<u8> {
    let lt = LogicalType::from_name(ty).unwrap();
    let canonical = text_to_canonical(lt, text.as_bytes(), &TextContext::default()).unwrap();
    canonical_to_binary(lt, &canonical).unwrap()
}

/// Asserts a binary result cell holds the sample of `ty`, and that the column shows the type.
fn check_binary_cell(row: &Row, idx: usize, ty: &str, text: &str) {
    let col = &row.columns()[idx];
    assert_eq!(
        col.type_().name(),
        ty,
        "RowDescription of {} shows the logical type",
        col.name()
    );
    let raw: Raw = row
        .try_get(idx)
        .unwrap_or_else(|e| panic!("{}: {e}", col.name()));
    assert_eq!(
        raw.0,
        binary_of(ty, text),
        "{}: binary value read back",
        col.name()
    );
}

fn all_columns() -> String {
    CASES
        .iter()
        .map(|(ty, _, _)| format!("d_{ty}, r_{ty}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn simple_rows(c: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let msgs = c
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)));
    msgs.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}

async fn check_rest(env: &EncEnv, id: i32, null: bool) {
    for (ty, _, text) in CASES {
        for col in [format!("d_{ty}"), format!("r_{ty}")] {
            env.assert_at_rest("typed", &col, id, (!null).then_some(*text))
                .await;
        }
    }
}

/// Text in, text out (simple protocol), with NULLs and with explicit casts on the literals
/// (`CAST(-1 AS int2)`, `'…'::date`; a sign before `::` is `enc_forms::sign_before_a_cast`);
/// one statement per type so that every failing type is reported.
#[tokio::test(flavor = "multi_thread")]
async fn every_type_round_trips_as_text() {
    let env = EncEnv::start().await;
    let c = env.app().await;
    c.batch_execute("SET TimeZone = 'UTC'").await.unwrap();
    let mut failures = Vec::new();
    for (i, (ty, lit, text)) in CASES.iter().enumerate() {
        let id = 10 * i as i32;
        let insert = format!(
            "INSERT INTO typed (id, d_{ty}, r_{ty}) VALUES ({}, {lit}, {lit}), ({}, NULL, NULL), \
             ({}, CAST({lit} AS {ty}), CAST({lit} AS {ty}))",
            id + 1,
            id + 2,
            id + 3
        );
        if let Err(e) = c.simple_query(&insert).await {
            failures.push(format!("{ty}: {insert}: {}", describe(&e)));
            continue;
        }
        for col in [format!("d_{ty}"), format!("r_{ty}")] {
            env.assert_at_rest("typed", &col, id + 1, Some(text)).await;
            env.assert_at_rest("typed", &col, id + 2, None).await;
            env.assert_at_rest("typed", &col, id + 3, Some(text)).await;
        }
        let t = Some(text.to_string());
        let select = format!(
            "SELECT d_{ty}, r_{ty} FROM typed WHERE id > {id} AND id < {} ORDER BY id",
            id + 10
        );
        let got = simple_rows(&c, &select).await;
        let want = vec![
            vec![t.clone(), t.clone()],
            vec![None, None],
            vec![t.clone(), t],
        ];
        if got != want {
            failures.push(format!("{ty}: read back {got:?}, want {want:?}"));
        }
        // Deterministic equality with a text literal finds both text-written rows.
        let select = format!("SELECT id FROM typed WHERE d_{ty} = {lit} ORDER BY id");
        match c.simple_query(&select).await {
            Err(e) => failures.push(format!("{ty}: {select}: {}", describe(&e))),
            Ok(_) => {
                let got = simple_rows(&c, &select).await;
                let want = vec![
                    vec![Some((id + 1).to_string())],
                    vec![Some((id + 3).to_string())],
                ];
                if got != want {
                    failures.push(format!("{ty}: {select}: {got:?}, want {want:?}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Binary in, binary out (tokio-postgres), NULLs, then cross-format equality and identical
/// deterministic ciphertexts for text- and binary-written values.
#[tokio::test(flavor = "multi_thread")]
async fn every_type_round_trips_as_binary_and_matches_text() {
    let env = EncEnv::start().await;
    let c = env.app().await;
    c.batch_execute("SET TimeZone = 'UTC'").await.unwrap();
    let cols = all_columns();
    let n = CASES.len() * 2;
    let placeholders: Vec<String> = (2..n + 2).map(|i| format!("${i}")).collect();
    let insert = format!(
        "INSERT INTO typed (id, {cols}) VALUES ($1, {})",
        placeholders.join(", ")
    );
    let values: Vec<Box<dyn ToSql + Sync + Send>> = CASES
        .iter()
        .flat_map(|(ty, _, _)| [binary_value(ty), binary_value(ty)])
        .collect();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&10i32];
    params.extend(values.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)));
    c.execute(insert.as_str(), &params)
        .await
        .unwrap_or_else(|e| panic!("binary INSERT: {}", describe(&e)));
    let mut nulls: Vec<&(dyn ToSql + Sync)> = vec![&11i32];
    nulls.extend(std::iter::repeat_n(&AnyNull as &(dyn ToSql + Sync), n));
    c.execute(insert.as_str(), &nulls)
        .await
        .unwrap_or_else(|e| panic!("binary NULL INSERT: {}", describe(&e)));
    check_rest(&env, 10, false).await;
    check_rest(&env, 11, true).await;

    let rows = c
        .query(
            format!("SELECT {cols} FROM typed WHERE id = 10").as_str(),
            &[],
        )
        .await
        .unwrap();
    for (i, (ty, _, text)) in CASES.iter().enumerate() {
        check_binary_cell(&rows[0], 2 * i, ty, text);
        check_binary_cell(&rows[0], 2 * i + 1, ty, text);
    }
    let rows = c
        .query(
            format!("SELECT {cols} FROM typed WHERE id = 11").as_str(),
            &[],
        )
        .await
        .unwrap();
    for i in 0..n {
        assert!(
            rows[0].try_get::<_, Option<Raw>>(i).unwrap().is_none(),
            "column {i} NULL"
        );
    }
    // Read the binary-written row as text.
    let got = simple_rows(&c, &format!("SELECT {cols} FROM typed WHERE id = 10")).await;
    let want: Vec<Option<String>> = CASES
        .iter()
        .flat_map(|(_, _, t)| [Some(t.to_string()), Some(t.to_string())])
        .collect();
    assert_eq!(got[0], want, "binary-written row read as text");

    // A text-written row; equality in either format finds both rows.
    let lits: Vec<String> = CASES
        .iter()
        .map(|(_, lit, _)| format!("{lit}, {lit}"))
        .collect();
    c.simple_query(&format!(
        "INSERT INTO typed (id, {cols}) VALUES (12, {})",
        lits.join(", ")
    ))
    .await
    .unwrap();
    for (ty, lit, _) in CASES {
        let col = format!("d_{ty}");
        assert_eq!(
            env.stored("typed", &col, 10).await,
            env.stored("typed", &col, 12).await,
            "{col}: text and binary writes store the same ciphertext"
        );
        let value = binary_value(ty);
        let rows = c
            .query(
                format!("SELECT id FROM typed WHERE {col} = $1 ORDER BY id").as_str(),
                &[value.as_ref() as &(dyn ToSql + Sync)],
            )
            .await
            .unwrap_or_else(|e| panic!("{col} = $1: {}", describe(&e)));
        let ids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(ids, [10, 12], "{col} = binary parameter");
        let rows = simple_rows(
            &c,
            &format!("SELECT id FROM typed WHERE {col} = {lit} ORDER BY id"),
        )
        .await;
        assert_eq!(
            rows,
            vec![vec![Some("10".into())], vec![Some("12".into())]],
            "{col} = {lit}"
        );
    }
}

/// Runs psql through pgcloak with extra environment (libpq sends PGTZ and PGCLIENTENCODING as
/// startup parameters, so the server's greeting reports them). Returns (code, stdout, stderr).
async fn psql_env(env: &EncEnv, vars: &[(&str, &str)], sql: &str) -> (i32, String, String) {
    use pgcloak::devdb::{APP_PASSWORD, APP_USER};
    let ci = env
        .env
        .proxy_conninfo(APP_USER, APP_PASSWORD, env.env.db.database());
    let mut cmd = tokio::process::Command::new(env.env.db.bin("psql"));
    cmd.arg(&ci)
        .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env_remove("PGPASSWORD")
        .envs(vars.iter().copied());
    let out = crate::harness::within(crate::harness::HANG, cmd.output())
        .await
        .expect("run psql");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Startup parameters count from the first statement: a session that starts with
/// `TimeZone = Asia/Tokyo` reads a timestamptz without an offset in Tokyo time (as PostgreSQL
/// would), and shows it in Tokyo time; one whose `client_encoding` is not UTF8 is refused on
/// rules tables rather than having its bytes read as UTF-8.
#[tokio::test(flavor = "multi_thread")]
async fn startup_time_zone_and_client_encoding_are_honoured() {
    let env = EncEnv::start().await;
    let tokyo = [("PGTZ", "Asia/Tokyo")];
    let sql = "INSERT INTO typed (id, d_timestamptz) VALUES (1, '2024-03-01 09:00:00')";
    let (code, _, err) = psql_env(&env, &tokyo, sql).await;
    assert_eq!(code, 0, "{err}");
    env.assert_at_rest("typed", "d_timestamptz", 1, Some("2024-03-01 00:00:00+00"))
        .await;
    let sql = "SELECT d_timestamptz FROM typed WHERE id = 1";
    let (code, out, err) = psql_env(&env, &tokyo, sql).await;
    assert_eq!((code, out.trim()), (0, "2024-03-01 09:00:00+09"), "{err}");
    let latin1 = [("PGCLIENTENCODING", "LATIN1")];
    let (code, _, err) = psql_env(&env, &latin1, "SELECT d_text FROM typed").await;
    assert_ne!(code, 0);
    assert!(err.contains("client_encoding"), "{err}");
    let (code, out, err) = psql_env(&env, &latin1, "SELECT 1").await;
    assert_eq!(
        (code, out.trim()),
        (0, "1"),
        "plain statements still work: {err}"
    );
}
