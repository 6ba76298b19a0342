//! The HMAC chain of the audit trail. Each record is one JSON object on one line with `seq`
//! (1, 2, …), `prev` (the previous record's `hmac`, 64 zeros for the first) and `hmac` =
//! HMAC-SHA256(audit key, the record serialized without `hmac`, keys sorted). Editing a record
//! breaks its own HMAC; deleting or reordering breaks `seq` and `prev` of the next one.

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::AuditKey;

/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn mac(key: &AuditKey, body: &str) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key.0.as_ref()).expect("any key length");
    m.update(body.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// Where the chain stands: the last record's sequence number and HMAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hmac: String,
}

impl Default for Head {
    fn default() -> Self {
        Head {
            seq: 0,
            hmac: GENESIS.to_owned(),
        }
    }
}

/// Seals `fields` as the record after `head` and returns its line (without newline);
/// `head` moves on to it.
pub fn seal(key: &AuditKey, head: &mut Head, mut fields: Map<String, Value>) -> String {
    let seq = head.seq + 1;
    fields.insert("seq".into(), Value::from(seq));
    fields.insert("prev".into(), Value::from(head.hmac.clone()));
    fields.remove("hmac");
    let body = Value::Object(fields.clone()).to_string();
    let hmac = mac(key, &body);
    fields.insert("hmac".into(), Value::from(hmac.clone()));
    *head = Head { seq, hmac };
    Value::Object(fields).to_string()
}

/// Why a record breaks the chain.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Broken {
    #[error("not a JSON object")]
    NotJson,
    #[error("no seq/prev/hmac fields")]
    MissingFields,
    #[error("seq {found} where {expected} was expected (a record was removed or reordered)")]
    Seq { expected: u64, found: u64 },
    #[error("prev does not match the previous record's hmac (a record was removed or replaced)")]
    Prev,
    #[error("hmac does not match the record's contents (the record was edited, or another key)")]
    Hmac,
}

/// Checks `line` as the record after `head` (a file continued after a restart keeps counting);
/// moves `head` on.
pub fn check(key: &AuditKey, head: &mut Head, line: &str) -> Result<(), Broken> {
    let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(line) else {
        return Err(Broken::NotJson);
    };
    let (Some(seq), Some(prev), Some(Value::String(hmac))) = (
        fields.get("seq").and_then(Value::as_u64),
        fields
            .get("prev")
            .and_then(Value::as_str)
            .map(str::to_owned),
        fields.remove("hmac"),
    ) else {
        return Err(Broken::MissingFields);
    };
    if seq != head.seq + 1 {
        return Err(Broken::Seq {
            expected: head.seq + 1,
            found: seq,
        });
    }
    if prev != head.hmac {
        return Err(Broken::Prev);
    }
    let body = Value::Object(fields).to_string();
    if mac(key, &body) != hmac {
        return Err(Broken::Hmac);
    }
    *head = Head { seq, hmac };
    Ok(())
}

/// The chain head after the last line of an existing trail, to continue it (`None`: the last
/// line is not a sealed record).
pub fn head_of(last_line: &str) -> Option<Head> {
    let v: Value = serde_json::from_str(last_line).ok()?;
    Some(Head {
        seq: v.get("seq")?.as_u64()?,
        hmac: v.get("hmac")?.as_str()?.to_owned(),
    })
}

/// The first broken record of a trail: its 1-based line number, the line and why.
#[derive(Debug)]
pub struct FirstBroken {
    pub line_no: usize,
    pub line: String,
    pub why: Broken,
}

/// Checks every line of `text`; the number of records, or the first broken one.
pub fn verify(key: &AuditKey, text: &str) -> Result<u64, FirstBroken> {
    let mut head = Head::default();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        check(key, &mut head, line).map_err(|why| FirstBroken {
            line_no: i + 1,
            line: line.to_owned(),
            why,
        })?;
    }
    Ok(head.seq)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record holding only its event name (also used by the sink's tests).
    pub(crate) fn rec(event: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("event".into(), event.into());
        m
    }

    #[test]
    fn edits_deletions_and_other_keys_break_the_chain() {
        let key = AuditKey::from_material(b"material");
        let mut head = Head::default();
        let lines: Vec<String> = ["a", "b", "c"]
            .iter()
            .map(|e| seal(&key, &mut head, rec(e)))
            .collect();
        let text = lines.join("\n");
        assert_eq!(verify(&key, &text).unwrap(), 3);
        let edited = text.replace("\"event\":\"b\"", "\"event\":\"x\"");
        let b = verify(&key, &edited).unwrap_err();
        assert_eq!((b.line_no, b.why), (2, Broken::Hmac));
        let deleted = format!("{}\n{}", lines[0], lines[2]);
        assert!(matches!(
            verify(&key, &deleted).unwrap_err().why,
            Broken::Seq { .. }
        ));
        let other = AuditKey::from_material(b"other");
        assert_eq!(verify(&other, &text).unwrap_err().why, Broken::Hmac);
        assert_eq!(head_of(&lines[2]), Some(head));
    }
}
