//! Comparison against a real PostgreSQL (devdb), moved from `src/codec/pg_compare.rs` so that
//! `cargo test --lib` needs no database: for a few hundred generated inputs per type,
//! our text → canonical → text and → binary must match what PostgreSQL's own casts print and
//! send, errors must carry the same SQLSTATE, and PostgreSQL must read our binary back to the
//! same text.

use std::error::Error;

use postgres_types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use pgcloak::codec::*;
use pgcloak::devdb::{DevDb, DevDbOptions};

/// Raw bytes of any type, in either direction.
#[derive(Debug)]
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

impl ToSql for Raw {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.extend_from_slice(&self.0);
        Ok(IsNull::No)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

const TRY_CAST: &str =
    "CREATE FUNCTION try_cast(v text, t text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN EXECUTE format('SELECT format(''%%s'', %L::%s)', v, t) INTO r; RETURN r;
EXCEPTION WHEN others THEN RETURN 'ERR:' || SQLSTATE; END $$";

fn array_type(ty: LogicalType) -> Type {
    let elem = Type::from_oid(ty.oid()).unwrap();
    Type::from_oid(match elem {
        Type::TEXT => 1009,
        Type::VARCHAR => 1015,
        Type::INT2 => 1005,
        Type::INT4 => 1007,
        Type::INT8 => 1016,
        Type::FLOAT4 => 1021,
        Type::FLOAT8 => 1022,
        Type::NUMERIC => 1231,
        Type::BOOL => 1000,
        Type::DATE => 1182,
        Type::TIME => 1183,
        Type::TIMESTAMP => 1115,
        Type::TIMESTAMPTZ => 1185,
        Type::UUID => 2951,
        Type::JSON => 199,
        Type::JSONB => 3807,
        _ => 1001,
    })
    .unwrap()
}

/// Checks every input of `ty` against PostgreSQL; returns how many were valid.
async fn compare(
    client: &tokio_postgres::Client,
    ty: LogicalType,
    inputs: &[String],
    ctx: &TextContext,
) -> usize {
    let name = ty.name();
    let q = "SELECT try_cast(v, $2) FROM unnest($1::text[]) WITH ORDINALITY t(v, n) ORDER BY n";
    let rows = client.query(q, &[&inputs, &name]).await.unwrap();
    let mut valid = Vec::new();
    for (input, row) in inputs.iter().zip(&rows) {
        let pg: String = row.get(0);
        let ours = text_to_canonical(ty, input.as_bytes(), ctx);
        match (pg.strip_prefix("ERR:"), ours) {
            (Some(code), Err(e)) => assert_eq!(code, e.sqlstate(), "{name} {input:?}: {e}"),
            (Some(code), Ok(_)) => {
                panic!("{name} {input:?}: PostgreSQL rejects ({code}), we accept")
            }
            (None, Err(e)) => panic!("{name} {input:?}: PostgreSQL gives {pg:?}, we reject: {e}"),
            (None, Ok(canon)) => {
                let text = canonical_to_text(ty, &canon, ctx).unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&text),
                    pg,
                    "{name} text of {input:?}"
                );
                valid.push((input.clone(), canon));
            }
        }
    }
    compare_binary(client, ty, &valid, ctx).await;
    valid.len()
}

/// PostgreSQL's binary output equals ours, and it reads our binary back to the same text.
async fn compare_binary(
    client: &tokio_postgres::Client,
    ty: LogicalType,
    valid: &[(String, Vec<u8>)],
    ctx: &TextContext,
) {
    let name = ty.name();
    let texts: Vec<&str> = valid.iter().map(|(t, _)| t.as_str()).collect();
    let q = format!("SELECT v::{name} FROM unnest($1::text[]) WITH ORDINALITY t(v, n) ORDER BY n");
    let rows = client.query(&q, &[&texts]).await.unwrap();
    for ((input, canon), row) in valid.iter().zip(&rows) {
        let pg_bin: Raw = row.get(0);
        let ours = canonical_to_binary(ty, canon).unwrap();
        assert_eq!(ours, pg_bin.0, "{name} binary of {input:?}");
        assert_eq!(
            &binary_to_canonical(ty, &pg_bin.0).unwrap(),
            canon,
            "{name} {input:?}"
        );
    }
    let bins: Vec<Raw> = valid
        .iter()
        .map(|(_, c)| Raw(canonical_to_binary(ty, c).unwrap()))
        .collect();
    let q = format!(
        "SELECT format('%s', v) FROM unnest($1::{name}[]) WITH ORDINALITY t(v, n) ORDER BY n"
    );
    let stmt = client.prepare_typed(&q, &[array_type(ty)]).await.unwrap();
    let rows = client.query(&stmt, &[&bins]).await.unwrap();
    for ((input, canon), row) in valid.iter().zip(&rows) {
        let pg: String = row.get(0);
        let ours = canonical_to_text(ty, canon, ctx).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            pg,
            "{name} binary input of {input:?}"
        );
    }
}

fn pad(s: String, rng: &mut StdRng) -> String {
    match rng.random_range(0..6) {
        0 => format!("  {s}"),
        1 => format!("{s} \t"),
        _ => s,
    }
}

fn gen_inputs(ty: LogicalType, rng: &mut StdRng, n: usize) -> Vec<String> {
    use LogicalType as T;
    let mut out: Vec<String> = fixed_inputs(ty).iter().map(|s| s.to_string()).collect();
    for _ in 0..n {
        let s = match ty {
            T::Text | T::Varchar => gen_text(rng),
            T::Int2 => pad(
                (rng.random::<i16>() >> rng.random_range(0..15)).to_string(),
                rng,
            ),
            T::Int4 => pad(
                (rng.random::<i32>() >> rng.random_range(0..31)).to_string(),
                rng,
            ),
            T::Int8 => pad(
                (rng.random::<i64>() >> rng.random_range(0..63)).to_string(),
                rng,
            ),
            T::Float4 => gen_float(rng, true),
            T::Float8 => gen_float(rng, false),
            T::Numeric => gen_numeric(rng),
            T::Bool => [
                "t", "f", "true", "FALSE", "yes", "no", "on", "off", "1", "0", " y ",
            ][rng.random_range(0..11)]
            .to_string(),
            T::Date => gen_date(rng),
            T::Time => gen_time(rng),
            T::Timestamp | T::Timestamptz => format!("{} {}", gen_date(rng), gen_tz_suffix(rng)),
            T::Uuid => gen_uuid(rng),
            T::Json | T::Jsonb => gen_json(rng, 0),
            T::Bytea => gen_bytea(rng),
        };
        out.push(s);
    }
    out
}

fn fixed_inputs(ty: LogicalType) -> &'static [&'static str] {
    use LogicalType as T;
    match ty {
        T::Int2 => &["abc", "32768", "-32768", "", " 1 2", "+0"],
        T::Int4 => &["abc", "2147483648", "-2147483648", "1.5", "0x10"],
        T::Int8 => &["9223372036854775808", "-9223372036854775808", "-"],
        T::Float4 => &[
            "1e39",
            "1e-50",
            "NaN",
            "-inf",
            "Infinity",
            "3.4028235e38",
            "1e-45",
            "abc",
            "-0",
        ],
        T::Float8 => &[
            "1e309",
            "1e-400",
            "nan",
            "-Infinity",
            "4.9e-324",
            "2.2250738585072014e-308",
            "1.",
            ".5",
            "-0",
            "x",
        ],
        T::Numeric => &[
            "NaN",
            "inf",
            "-Infinity",
            "1e1001",
            "abc",
            "1.0",
            "1.00",
            "-0.000",
            "1e-1000",
            "0.1e3",
            "1 e3",
        ],
        T::Bool => &["maybe", "o", ""],
        T::Date => &[
            "infinity",
            "-infinity",
            "epoch",
            "4714-11-24 BC",
            "4714-11-23 BC",
            "5874897-12-31",
            "5874898-01-01",
            "2021-02-29",
            "2020-02-29",
            "13/01/2020",
            "01/13/2020",
            "20200131",
            "abc",
            "0000-01-01",
        ],
        T::Time => &[
            "24:00:00",
            "24:00:01",
            "23:59:60",
            "00:00",
            "12:34:56.1234565",
            "12:34:56.9999999",
            "25:00",
            "abc",
            "2020-01-01 04:05:06",
        ],
        T::Timestamp | T::Timestamptz => &[
            "infinity",
            "-infinity",
            "epoch",
            "294276-12-31 23:59:59.999999",
            "294277-01-01",
            "4714-11-24 00:00:00 BC",
            "2021-11-07 01:30",
            "2021-03-14 02:30",
            "2021-06-01T12:00:00Z",
            "2021-06-01 12:00 Europe/Paris",
            "abc",
            "12:00",
        ],
        T::Uuid => &[
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "A0EEBC999C0B4EF8BB6D6BB9BD380A11",
            "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        ],
        T::Json | T::Jsonb => &[
            "{\"a\":1,\"a\":2}",
            "[1,]",
            "01",
            "\"\\u0000\"",
            "\"\\ud83d\\ude00\"",
            "\"\\ud800\"",
            "1e2",
            "-0",
            "{}",
            " [ ] ",
            "nul",
        ],
        T::Bytea => &[
            "\\x",
            "\\xDEADbeef",
            "\\x0 1",
            "\\x123",
            "a\\\\b\\001",
            "\\q",
            "plain",
        ],
        T::Text | T::Varchar => &["", "héllo", "日本語 😀"],
    }
}

fn gen_text(rng: &mut StdRng) -> String {
    let len = rng.random_range(0..20);
    (0..len)
        .map(|_| match rng.random_range(0..4) {
            0 => char::from_u32(rng.random_range(1..0x80)).unwrap_or('a'),
            1 => char::from_u32(rng.random_range(0x80..0x800)).unwrap_or('é'),
            2 => char::from_u32(rng.random_range(0x1F300..0x1F600)).unwrap_or('😀'),
            _ => 'x',
        })
        .collect()
}

fn gen_float(rng: &mut StdRng, f4: bool) -> String {
    let v = if f4 {
        f64::from(f32::from_bits(rng.random()))
    } else {
        f64::from_bits(rng.random())
    };
    let s = match rng.random_range(0..4) {
        0 if f4 => format!("{}", v as f32),
        0 => format!("{v}"),
        1 if f4 => format!("{:e}", v as f32),
        1 => format!("{v:E}"),
        2 => format!(
            "{}.{}e{}",
            rng.random_range(-999..999),
            rng.random_range(0..99999),
            rng.random_range(-30..30)
        ),
        _ => format!("{:.*}", rng.random_range(0..8), rng.random_range(-1e7..1e7)),
    };
    pad(s, rng)
}

fn gen_numeric(rng: &mut StdRng) -> String {
    let int: String = (0..rng.random_range(0..25))
        .map(|_| char::from(b'0' + rng.random_range(0..10)))
        .collect();
    let frac: String = (0..rng.random_range(0..25))
        .map(|_| char::from(b'0' + rng.random_range(0..10)))
        .collect();
    let sign = ["", "-", "+"][rng.random_range(0..3)];
    let int = if int.is_empty() && frac.is_empty() {
        "0".to_string()
    } else {
        int
    };
    let mut s = format!("{sign}{int}");
    if !frac.is_empty() || rng.random_bool(0.2) {
        s = format!("{s}.{frac}");
    }
    if rng.random_bool(0.3) {
        s = format!("{s}e{}", rng.random_range(-40..40));
    }
    pad(s, rng)
}

/// Days in a month of a year in the proleptic Gregorian calendar (as `codec`'s own).
fn days_in_month(year: i64, month: u32) -> u32 {
    let leap = year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn gen_date(rng: &mut StdRng) -> String {
    let y: i64 = match rng.random_range(0..4) {
        0 => rng.random_range(1..10000),
        1 => rng.random_range(1900..2100),
        2 => rng.random_range(10000..200_000),
        _ => rng.random_range(1..4700),
    };
    let m = rng.random_range(1..=12);
    let d = rng.random_range(1..=days_in_month(y, m));
    match rng.random_range(0..5) {
        0 if y < 10000 => format!("{m:02}/{d:02}/{y:04}"),
        1 if y < 4700 => format!("{y:04}-{m:02}-{d:02} BC"),
        2 if y < 10000 => format!("{y:04}{m:02}{d:02}"),
        _ => format!("{y:04}-{m:02}-{d:02}"),
    }
}

fn gen_time(rng: &mut StdRng) -> String {
    let (h, m, s) = (
        rng.random_range(0..24),
        rng.random_range(0..60),
        rng.random_range(0..60),
    );
    match rng.random_range(0..4) {
        0 => format!("{h:02}:{m:02}"),
        1 => format!("{h}:{m:02}:{s:02}"),
        _ => format!("{h:02}:{m:02}:{s:02}.{}", rng.random_range(0..10_000_000)),
    }
}

fn gen_tz_suffix(rng: &mut StdRng) -> String {
    let t = gen_time(rng);
    match rng.random_range(0..6) {
        0 => format!("{t}Z"),
        1 => format!("{t}+{:02}", rng.random_range(0..15)),
        2 => format!(
            "{t}-{:02}:{:02}",
            rng.random_range(0..15),
            rng.random_range(0..60)
        ),
        3 => format!("{t} Asia/Kolkata"),
        _ => t,
    }
}

fn gen_uuid(rng: &mut StdRng) -> String {
    let u = uuid::Uuid::from_bytes(rng.random());
    match rng.random_range(0..4) {
        0 => u.hyphenated().to_string().to_uppercase(),
        1 => u.simple().to_string(),
        2 => u.braced().to_string(),
        _ => u.hyphenated().to_string(),
    }
}

fn gen_json(rng: &mut StdRng, depth: u32) -> String {
    let ws = |rng: &mut StdRng| {
        [""; 3]
            .into_iter()
            .chain([" ", "\n\t "])
            .nth(rng.random_range(0..5))
            .unwrap_or("")
    };
    match rng.random_range(0..if depth > 2 { 5 } else { 7 }) {
        0 => "null".into(),
        1 => ["true", "false"][rng.random_range(0..2)].into(),
        2 => {
            let n = gen_numeric(rng).trim().trim_start_matches('+').to_string();
            if n.starts_with('.')
                || n.contains("-.")
                || n.contains(".e")
                || n.ends_with('.')
                || n.trim_start_matches('-').starts_with("00")
            {
                "0".into()
            } else {
                n
            }
        }
        3 | 4 => {
            let s: String = gen_text(rng)
                .chars()
                .map(|c| match c {
                    '"' => 'q',
                    '\\' => 'b',
                    c if (c as u32) < 0x20 => ' ',
                    c => c,
                })
                .collect();
            let esc = ["", "\\n", "\\u00e9", "\\/", "\\\"", "\\u001f"][rng.random_range(0..6)];
            format!("\"{s}{esc}\"")
        }
        5 => {
            let items: Vec<String> = (0..rng.random_range(0..4))
                .map(|_| gen_json(rng, depth + 1))
                .collect();
            format!("[{}{}]", ws(rng), items.join(","))
        }
        _ => {
            let keys = ["a", "b", "aa", "ab", "é", "long_key", "a"];
            let items: Vec<String> = (0..rng.random_range(0..5))
                .map(|_| {
                    format!(
                        "\"{}\"{}:{}",
                        keys[rng.random_range(0..keys.len())],
                        ws(rng),
                        gen_json(rng, depth + 1)
                    )
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

fn gen_bytea(rng: &mut StdRng) -> String {
    let bytes: Vec<u8> = (0..rng.random_range(0..16)).map(|_| rng.random()).collect();
    if rng.random_bool(0.5) {
        let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
        format!("\\x{hex}")
    } else {
        bytes
            .iter()
            .map(|b| match b {
                b'\\' => "\\\\".to_string(),
                0x20..0x7f => char::from(*b).to_string(),
                _ => format!("\\{b:03o}"),
            })
            .collect()
    }
}

#[tokio::test]
async fn every_type_matches_real_postgres() {
    let db = DevDb::start(DevDbOptions::default()).await.unwrap();
    let client = db.superuser_client("postgres").await.unwrap();
    client.batch_execute(TRY_CAST).await.unwrap();
    let mut rng = StdRng::seed_from_u64(0x00c0_dec5);
    for zone in ["UTC", "America/New_York", "Asia/Kolkata"] {
        client
            .batch_execute(&format!("SET TimeZone = '{zone}'"))
            .await
            .unwrap();
        let mut ctx = TextContext::default();
        ctx.set_parameter("TimeZone", zone);
        for ty in LogicalType::ALL {
            if zone != "UTC" && ty != LogicalType::Timestamptz {
                continue;
            }
            let inputs = gen_inputs(ty, &mut rng, 300);
            let n = compare(&client, ty, &inputs, &ctx).await;
            eprintln!("{ty} ({zone}): {n} valid of {} inputs agree", inputs.len());
            assert!(n > inputs.len() / 2, "{ty}: too few valid inputs generated");
        }
    }
}

#[tokio::test]
async fn low_extra_float_digits_and_dmy_match_real_postgres() {
    let db = DevDb::start(DevDbOptions::default()).await.unwrap();
    let client = db.superuser_client("postgres").await.unwrap();
    client.batch_execute(TRY_CAST).await.unwrap();
    client
        .batch_execute("SET extra_float_digits = 0; SET DateStyle = 'ISO, DMY'")
        .await
        .unwrap();
    let mut ctx = TextContext::default();
    ctx.set_parameter("extra_float_digits", "0");
    ctx.set_parameter("DateStyle", "ISO, DMY");
    let mut rng = StdRng::seed_from_u64(7);
    for ty in [LogicalType::Float4, LogicalType::Float8, LogicalType::Date] {
        let inputs = gen_inputs(ty, &mut rng, 200);
        compare(&client, ty, &inputs, &ctx).await;
    }
}
