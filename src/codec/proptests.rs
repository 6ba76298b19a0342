//! Property tests: text → canonical → text round-trips for every type; binary → canonical →
//! binary round-trips; text and binary forms of one value give the same canonical bytes.

use postgres_types::{ToSql, Type};
use proptest::prelude::*;

use super::*;

fn ctx() -> TextContext {
    let mut c = TextContext::default();
    c.set_parameter("TimeZone", "Europe/Paris");
    c
}

/// Our text output re-parses to the same canonical bytes, and re-renders identically.
fn text_round_trip(ty: LogicalType, input: &str) -> Result<(), TestCaseError> {
    let ctx = ctx();
    let canon = text_to_canonical(ty, input.as_bytes(), &ctx)
        .map_err(|e| TestCaseError::fail(format!("{ty} {input:?}: {e}")))?;
    let text = canonical_to_text(ty, &canon, &ctx).unwrap();
    let again = text_to_canonical(ty, &text, &ctx).unwrap();
    prop_assert_eq!(&again, &canon, "{} {:?}", ty, input);
    prop_assert_eq!(canonical_to_text(ty, &again, &ctx).unwrap(), text);
    let bin = canonical_to_binary(ty, &canon).unwrap();
    prop_assert_eq!(binary_to_canonical(ty, &bin).unwrap(), canon);
    Ok(())
}

/// The text form and an independent binary encoding (postgres-types) agree.
fn agrees<T: ToSql>(
    ty: LogicalType,
    value: &T,
    pg_ty: Type,
    text: &str,
) -> Result<(), TestCaseError> {
    let mut buf = bytes::BytesMut::new();
    value.to_sql(&pg_ty, &mut buf).unwrap();
    let from_bin = binary_to_canonical(ty, &buf).unwrap();
    let from_text = text_to_canonical(ty, text.as_bytes(), &ctx()).unwrap();
    prop_assert_eq!(&from_bin, &from_text, "{} {:?}", ty, text);
    prop_assert_eq!(canonical_to_binary(ty, &from_bin).unwrap(), buf.to_vec());
    Ok(())
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        (-1e6f64..1e6).prop_map(serde_json::Value::from),
        "\\PC{0,8}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::vec(("[a-c]{1,3}", inner), 0..4)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn ints(v in any::<i64>(), w in any::<i32>(), s in any::<i16>()) {
        text_round_trip(LogicalType::Int8, &v.to_string())?;
        agrees(LogicalType::Int8, &v, Type::INT8, &format!(" {v} "))?;
        agrees(LogicalType::Int4, &w, Type::INT4, &w.to_string())?;
        agrees(LogicalType::Int2, &s, Type::INT2, &s.to_string())?;
    }

    #[test]
    fn floats(bits in any::<u64>(), bits4 in any::<u32>()) {
        let v = f64::from_bits(bits);
        let f = f32::from_bits(bits4);
        text_round_trip(LogicalType::Float8, &format!("{v:e}"))?;
        text_round_trip(LogicalType::Float4, &format!("{f:e}"))?;
        if !v.is_nan() {
            agrees(LogicalType::Float8, &v, Type::FLOAT8, &format!("{v:e}"))?;
        }
        if !f.is_nan() {
            agrees(LogicalType::Float4, &f, Type::FLOAT4, &format!("{f:e}"))?;
        }
    }

    #[test]
    fn numerics(int in "[0-9]{1,30}", frac in "[0-9]{0,20}", neg in any::<bool>(), e in -30i32..30) {
        let sign = if neg { "-" } else { "" };
        text_round_trip(LogicalType::Numeric, &format!("{sign}{int}.{frac}"))?;
        text_round_trip(LogicalType::Numeric, &format!("{sign}{int}.{frac}e{e}"))?;
        // Same value written with an exponent gives the same canonical bytes.
        let a = text_to_canonical(LogicalType::Numeric, format!("{int}{frac}e-{}", frac.len()).as_bytes(), &ctx()).unwrap();
        let b = text_to_canonical(LogicalType::Numeric, format!("{int}.{frac}").as_bytes(), &ctx()).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn text_bool_uuid_bytea(s in "\\PC{0,30}", b in any::<bool>(), u in any::<[u8; 16]>(), raw in prop::collection::vec(any::<u8>(), 0..40)) {
        text_round_trip(LogicalType::Text, &s)?;
        agrees(LogicalType::Varchar, &s, Type::VARCHAR, &s)?;
        agrees(LogicalType::Bool, &b, Type::BOOL, if b { "yes" } else { "off" })?;
        let id = uuid::Uuid::from_bytes(u);
        text_round_trip(LogicalType::Uuid, &id.braced().to_string().to_uppercase())?;
        agrees(LogicalType::Uuid, &id, Type::UUID, &id.simple().to_string())?;
        let hex: String = raw.iter().map(|x| format!("{x:02X}")).collect();
        text_round_trip(LogicalType::Bytea, &format!("\\x{hex}"))?;
        agrees(LogicalType::Bytea, &raw, Type::BYTEA, &format!("\\x{hex}"))?;
    }

    #[test]
    fn dates_and_times(days in -2_000_000i64..2_000_000, usec in 0i64..86_400_000_000, ts in -200_000_000_000_000_000i64..200_000_000_000_000_000) {
        use chrono::{NaiveDate, TimeDelta};
        let epoch = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();
        let d = epoch + TimeDelta::days(days);
        let date_text = canonical_to_text(LogicalType::Date, &(days as i32).to_be_bytes(), &ctx()).unwrap();
        let date_text = String::from_utf8(date_text).unwrap();
        text_round_trip(LogicalType::Date, &date_text)?;
        agrees(LogicalType::Date, &d, Type::DATE, &date_text)?;
        let t = canonical_to_text(LogicalType::Time, &usec.to_be_bytes(), &ctx()).unwrap();
        text_round_trip(LogicalType::Time, std::str::from_utf8(&t).unwrap())?;
        for ty in [LogicalType::Timestamp, LogicalType::Timestamptz] {
            let text = canonical_to_text(ty, &ts.to_be_bytes(), &ctx()).unwrap();
            let text = String::from_utf8(text).unwrap();
            text_round_trip(ty, &text)?;
            prop_assert_eq!(text_to_canonical(ty, text.as_bytes(), &ctx()).unwrap(), ts.to_be_bytes().to_vec());
        }
    }

    #[test]
    fn json_and_jsonb(v in json_value()) {
        let text = serde_json::to_string_pretty(&v).unwrap();
        text_round_trip(LogicalType::Json, &text)?;
        text_round_trip(LogicalType::Jsonb, &text)?;
        let compact = serde_json::to_string(&v).unwrap();
        let a = text_to_canonical(LogicalType::Jsonb, text.as_bytes(), &ctx()).unwrap();
        let b = text_to_canonical(LogicalType::Jsonb, compact.as_bytes(), &ctx()).unwrap();
        prop_assert_eq!(&a, &b);
        let mut bin = vec![1u8];
        bin.extend_from_slice(compact.as_bytes());
        prop_assert_eq!(binary_to_canonical(LogicalType::Jsonb, &bin).unwrap(), a);
    }
}
