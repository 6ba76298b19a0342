//! The JSON parameter of `json_populate_record[set](NULL::t, $n)` over a rules table (see
//! `rewrite/json_record.rs`): the value of every key that names one of `t`'s encrypted columns
//! is encrypted and replaced by the JSON string `"\\x…"` of its envelope, which PostgreSQL reads
//! into the `bytea` column. Every other value is kept byte for byte (no number is re-rendered).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::value::RawValue;

use super::values::{ValueError, encrypt_value};
use crate::codec::{CodecError, INVALID_TEXT_REPRESENTATION, TextContext};
use crate::config::ColumnRule;
use crate::crypto::KeyRing;
use crate::protocol::extended::FORMAT_BINARY;

/// `jsonb`: its binary form is a version byte (1) and the text.
const JSONB_OID: u32 = 3802;

type Record = HashMap<String, Box<RawValue>>;

/// The JSON records parameter with the encrypted columns' values encrypted, in the format it
/// came in.
pub fn encrypt_json_records(
    ring: &KeyRing,
    columns: &[Arc<ColumnRule>],
    value: &[u8],
    format: i16,
    declared: u32,
    ctx: &TextContext,
) -> Result<Vec<u8>, ValueError> {
    let first = columns.first().map(|r| r.qualified()).unwrap_or_default();
    let bad = || ValueError::Codec {
        column: first.clone(),
        source: CodecError::plain(
            INVALID_TEXT_REPRESENTATION,
            "invalid JSON records for json_populate_record[set] (an object, or an array of \
             objects)",
        ),
    };
    // Binary jsonb starts with its version byte (1), which no JSON text can start with; binary
    // json is the text itself.
    let jsonb = format == FORMAT_BINARY && (declared == JSONB_OID || value.first() == Some(&1));
    let body = if jsonb {
        match value.split_first() {
            Some((1, rest)) => rest,
            _ => return Err(bad()),
        }
    } else {
        value
    };
    let text = std::str::from_utf8(body).map_err(|_| bad())?;
    let out = if text.trim_start().starts_with('[') {
        let mut records: Vec<Record> = serde_json::from_str(text).map_err(|_| bad())?;
        for r in &mut records {
            encrypt_record(ring, columns, r, ctx)?;
        }
        serde_json::to_string(&records)
    } else {
        let mut record: Record = serde_json::from_str(text).map_err(|_| bad())?;
        encrypt_record(ring, columns, &mut record, ctx)?;
        serde_json::to_string(&record)
    }
    .map_err(|_| bad())?;
    let mut bytes = Vec::with_capacity(out.len() + 1);
    if jsonb {
        bytes.push(1);
    }
    bytes.extend_from_slice(out.as_bytes());
    Ok(bytes)
}

fn encrypt_record(
    ring: &KeyRing,
    columns: &[Arc<ColumnRule>],
    record: &mut Record,
    ctx: &TextContext,
) -> Result<(), ValueError> {
    for rule in columns {
        let Some(raw) = record.get_mut(&rule.column) else {
            continue;
        };
        let json = raw.get().trim();
        if json == "null" {
            continue;
        }
        // A string is the text PostgreSQL reads into the column; any other JSON value is its
        // own text (a number, a boolean, an object for a json column).
        let text = if json.starts_with('"') {
            serde_json::from_str::<String>(json).map_err(|_| ValueError::Codec {
                column: rule.qualified(),
                source: CodecError::plain(INVALID_TEXT_REPRESENTATION, "invalid JSON string"),
            })?
        } else {
            json.to_owned()
        };
        let stored = encrypt_value(ring, rule, text.as_bytes(), 0, 0, ctx)?;
        let mut s = String::with_capacity(stored.len() * 2 + 6);
        s.push_str("\"\\\\x");
        for b in &stored {
            let _ = write!(s, "{b:02x}");
        }
        s.push('"');
        *raw = RawValue::from_string(s).map_err(|_| ValueError::Codec {
            column: rule.qualified(),
            source: CodecError::plain(INVALID_TEXT_REPRESENTATION, "invalid JSON"),
        })?;
    }
    Ok(())
}
