//! One value at a time: client value (text or binary) → canonical → envelope, and stored
//! envelope (as the server sent it, text `\x…` or binary) → canonical → the client's format.
//! Errors name the column, never the value.

use std::fmt::Write as _;

use crate::codec::{self, BYTEA_OID, CodecError, LogicalType, TextContext};
use crate::config::ColumnRule;
use crate::crypto::{CryptoError, KeyRing};
use crate::net::metrics::observe;
use crate::protocol::extended::FORMAT_BINARY;
use crate::protocol::sqlstate::{DATA_CORRUPTED, FEATURE_NOT_SUPPORTED, INTERNAL_ERROR};

/// A value could not be encrypted or decrypted.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    /// The client's value is not valid for the column's logical type.
    #[error("invalid value for encrypted column {column}: {}", .source.redacted())]
    Codec { column: String, source: CodecError },
    /// Encrypting failed (e.g. no data key loaded for the column).
    #[error("cannot encrypt for column {column}: {source}")]
    Encrypt { column: String, source: CryptoError },
    /// A stored value failed to decrypt or decode.
    #[error("stored value in encrypted column {column} failed to decrypt: {reason}")]
    Corrupt { column: String, reason: String },
    /// The stored value names a key version the ring does not hold (yet).
    #[error("stored value in encrypted column {column} uses an unknown data key version")]
    UnknownVersion { column: String },
    /// `[audit] max_decrypts_per_minute` is spent for this role.
    #[error(
        "decrypt rate limit of {limit} values per minute reached for role {role} (column {column}); \
         see [audit] max_decrypts_per_minute"
    )]
    RateLimited {
        column: String,
        role: String,
        limit: u64,
    },
    /// A binary parameter declared with a type pgcloak cannot decode.
    #[error(
        "binary parameter of type OID {oid} for encrypted column {column} is not supported \
         (send it as text, or declare the column's type)"
    )]
    DeclaredType { column: String, oid: u32 },
    /// A parameter under a type-modifier cast does not fit it (`numeric(3,0)` of 1234).
    #[error("value for encrypted column {column} overflows its cast")]
    CastOverflow { column: String },
}

impl ValueError {
    /// The SQLSTATE the client gets.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            ValueError::Codec { source, .. } => source.sqlstate(),
            ValueError::Encrypt { .. } => INTERNAL_ERROR,
            ValueError::DeclaredType { .. } => FEATURE_NOT_SUPPORTED,
            ValueError::CastOverflow { .. } => codec::NUMERIC_VALUE_OUT_OF_RANGE,
            ValueError::Corrupt { .. } | ValueError::UnknownVersion { .. } => DATA_CORRUPTED,
            ValueError::RateLimited { .. } => {
                crate::protocol::sqlstate::CONFIGURATION_LIMIT_EXCEEDED
            }
        }
    }

    /// The client's message: names the column, never a value or key (the client's
    /// ErrorResponse is built in [`crate::error`]).
    pub fn message(&self) -> String {
        match self {
            ValueError::Corrupt { column, .. } | ValueError::UnknownVersion { column } => {
                format!(
                    "pgcloak: a stored value in encrypted column {column} failed to decrypt \
                     (altered, encrypted under another key, or written around pgcloak)"
                )
            }
            other => format!("pgcloak: {other}"),
        }
    }
}

/// `unknown`: PostgreSQL resolves a parameter declared so from its context, as for 0.
pub(crate) const UNKNOWN_OID: u32 = 705;
/// `bpchar` (`char(n)`): its value loses trailing spaces when assigned to a text column.
const BPCHAR_OID: u32 = 1042;

/// Encrypts a client value (in `format`, declared in Parse as type `declared`; 0 = none) for
/// `rule`.
pub fn encrypt_value(
    ring: &KeyRing,
    rule: &ColumnRule,
    value: &[u8],
    format: i16,
    declared: u32,
    ctx: &TextContext,
) -> Result<Vec<u8>, ValueError> {
    let canonical = to_canonical(rule, value, format, declared, ctx)?;
    ring.encrypt(&rule.key, rule.mode, &canonical)
        .inspect(|stored| observe::encrypted(rule, stored))
        .map_err(|source| ValueError::Encrypt {
            column: rule.qualified(),
            source,
        })
}

/// Like [`encrypt_value`], under every version of `rule`'s (deterministic) key, current
/// first: the values a stored ciphertext of this plaintext can be.
pub fn encrypt_all_versions(
    ring: &KeyRing,
    rule: &ColumnRule,
    value: &[u8],
    format: i16,
    declared: u32,
    ctx: &TextContext,
) -> Result<Vec<Vec<u8>>, ValueError> {
    let canonical = to_canonical(rule, value, format, declared, ctx)?;
    ring.encrypt_all_versions(&rule.key, &canonical)
        .map_err(|source| ValueError::Encrypt {
            column: rule.qualified(),
            source,
        })
}

/// The canonical form of a client value for `rule`'s logical type. A value declared with
/// another type is decoded as that type and converted through its text form, as PostgreSQL's
/// assignment cast (I/O conversion) does: a binary int2 for an int4 column, a varchar for a
/// text column.
fn to_canonical(
    rule: &ColumnRule,
    value: &[u8],
    format: i16,
    declared: u32,
    ctx: &TextContext,
) -> Result<Vec<u8>, ValueError> {
    let codec_err = |source| ValueError::Codec {
        column: rule.qualified(),
        source,
    };
    let fast = matches!(declared, 0 | BYTEA_OID | UNKNOWN_OID) || declared == rule.ty.oid();
    if format != FORMAT_BINARY {
        if declared == BPCHAR_OID {
            return codec::text_to_canonical(rule.ty, unpad(rule, value), ctx).map_err(codec_err);
        }
        // Declared as another type: read as that type and assigned through its text form.
        if let Some(ty) = LogicalType::from_oid(declared).filter(|_| !fast) {
            let text = codec::text_to_canonical(ty, value, ctx)
                .and_then(|c| codec::canonical_to_text(ty, &c, ctx))
                .map_err(codec_err)?;
            return codec::text_to_canonical(rule.ty, &text, ctx).map_err(codec_err);
        }
        return codec::text_to_canonical(rule.ty, value, ctx).map_err(codec_err);
    }
    if fast {
        return codec::binary_to_canonical(rule.ty, value).map_err(codec_err);
    }
    let text = binary_as_text(rule, value, declared, ctx)?;
    let text = if declared == BPCHAR_OID {
        unpad(rule, &text)
    } else {
        &text
    };
    codec::text_to_canonical(rule.ty, text, ctx).map_err(codec_err)
}

/// A binary client value of the type it was declared with (0 or `unknown`: the column's own
/// logical type) as text, as PostgreSQL's I/O conversion reads it before an assignment or a
/// cast. A declared type pgcloak cannot decode is refused.
pub(crate) fn binary_as_text(
    rule: &ColumnRule,
    value: &[u8],
    declared: u32,
    ctx: &TextContext,
) -> Result<Vec<u8>, ValueError> {
    let ty = match declared {
        0 | UNKNOWN_OID => rule.ty,
        oid => LogicalType::from_oid(oid).ok_or_else(|| ValueError::DeclaredType {
            column: rule.qualified(),
            oid,
        })?,
    };
    codec::binary_to_canonical(ty, value)
        .and_then(|c| codec::canonical_to_text(ty, &c, ctx))
        .map_err(|source| ValueError::Codec {
            column: rule.qualified(),
            source,
        })
}

/// A `bpchar` value as a text column takes it: without its trailing spaces.
fn unpad<'v>(rule: &ColumnRule, value: &'v [u8]) -> &'v [u8] {
    if !matches!(rule.ty, LogicalType::Text | LogicalType::Varchar) {
        return value;
    }
    let end = value.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    value.get(..end).unwrap_or(value)
}

/// The SQL literal replacing a literal bound for `rule`: `E'\\x…'::bytea` (valid whatever
/// `standard_conforming_strings` is), or `NULL::bytea`.
pub fn encrypted_literal(
    ring: &KeyRing,
    rule: &ColumnRule,
    value: Option<&str>,
    ctx: &TextContext,
) -> Result<String, ValueError> {
    let Some(v) = value else {
        return Ok("NULL::bytea".to_owned());
    };
    let stored = encrypt_value(ring, rule, v.as_bytes(), 0, 0, ctx)?;
    Ok(bytea_literal(&stored))
}

/// Encrypts an array parameter (`col = ANY($n)`: text `{…}` or binary array of the column's
/// logical type) into a binary `bytea[]` holding each element under every key version.
pub fn encrypt_array(
    ring: &KeyRing,
    rule: &ColumnRule,
    value: &[u8],
    format: i16,
    ctx: &TextContext,
) -> Result<Vec<u8>, ValueError> {
    let codec_err = |source| ValueError::Codec {
        column: rule.qualified(),
        source,
    };
    let mut out: Vec<Option<Vec<u8>>> = Vec::new();
    let mut push = |v: Option<&[u8]>, fmt: i16, declared: u32| -> Result<(), ValueError> {
        match v {
            None => out.push(None),
            Some(v) => {
                let all = encrypt_all_versions(ring, rule, v, fmt, declared, ctx)?;
                out.extend(all.into_iter().map(Some));
            }
        }
        Ok(())
    };
    if format == FORMAT_BINARY {
        let (elem, items) = codec::array::parse_binary(value).map_err(codec_err)?;
        for v in items {
            push(v, FORMAT_BINARY, elem)?;
        }
    } else {
        for v in codec::array::parse_text(value).map_err(codec_err)? {
            push(v.as_deref(), 0, 0)?;
        }
    }
    Ok(codec::array::bytea_array(out.iter().map(Option::as_deref)))
}

/// `E'\\x…'::bytea` for `bytes`.
pub fn bytea_literal(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2 + 16);
    out.push_str("E'\\\\x");
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out.push_str("'::bytea");
    out
}

/// Decrypts a stored cell as the server sent it (`server_format`) and renders it in
/// `client_format`.
pub fn decrypt_cell(
    ring: &KeyRing,
    rule: &ColumnRule,
    cell: &[u8],
    server_format: i16,
    client_format: i16,
    ctx: &TextContext,
) -> Result<Vec<u8>, ValueError> {
    let corrupt = |reason: &str| ValueError::Corrupt {
        column: rule.qualified(),
        reason: reason.to_owned(),
    };
    let stored_owned;
    let stored: &[u8] = if server_format == FORMAT_BINARY {
        cell
    } else {
        stored_owned = codec::text_to_canonical(LogicalType::Bytea, cell, ctx)
            .map_err(|_| corrupt("not a bytea value"))?;
        &stored_owned
    };
    observe::may_decrypt(rule).map_err(|l| ValueError::RateLimited {
        column: rule.qualified(),
        role: l.role,
        limit: l.limit,
    })?;
    let decrypted = ring.decrypt(&rule.key, stored);
    let unknown = matches!(decrypted, Err(CryptoError::UnknownKeyVersion { .. }));
    if !unknown {
        observe::decrypted(rule, stored, decrypted.is_ok());
    }
    let canonical = match decrypted {
        Ok(c) => c,
        Err(CryptoError::UnknownKeyVersion { .. }) => {
            return Err(ValueError::UnknownVersion {
                column: rule.qualified(),
            });
        }
        Err(e) => return Err(corrupt(&e.to_string())),
    };
    let rendered = if client_format == FORMAT_BINARY {
        codec::canonical_to_binary(rule.ty, &canonical)
    } else {
        codec::canonical_to_text(rule.ty, &canonical, ctx)
    };
    rendered.map_err(|e| corrupt(e.redacted()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;
    use crate::crypto::{Algorithm, DataKey};

    fn setup() -> (KeyRing, ColumnRule) {
        let ring = KeyRing::from_data_keys(vec![DataKey::generate(
            "k",
            1,
            Algorithm::for_mode(Mode::Deterministic),
        )])
        .unwrap();
        let rule = ColumnRule {
            schema: "public".into(),
            table: "t".into(),
            column: "n".into(),
            ty: LogicalType::Int4,
            mode: Mode::Deterministic,
            key: "k".into(),
        };
        (ring, rule)
    }

    #[test]
    fn text_and_binary_encrypt_alike_and_decrypt_to_either_format() {
        let (ring, rule) = setup();
        let ctx = TextContext::default();
        let a = encrypt_value(&ring, &rule, b"42", 0, 0, &ctx).unwrap();
        let b = encrypt_value(&ring, &rule, &42i32.to_be_bytes(), 1, 0, &ctx).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0], 0x01);
        assert_eq!(decrypt_cell(&ring, &rule, &a, 1, 0, &ctx).unwrap(), b"42");
        assert_eq!(
            decrypt_cell(&ring, &rule, &a, 1, 1, &ctx).unwrap(),
            42i32.to_be_bytes()
        );
        let hex: String = a.iter().map(|b| format!("{b:02x}")).collect();
        let text = format!("\\x{hex}");
        assert_eq!(
            decrypt_cell(&ring, &rule, text.as_bytes(), 0, 0, &ctx).unwrap(),
            b"42"
        );
        let lit = encrypted_literal(&ring, &rule, Some("42"), &ctx).unwrap();
        assert_eq!(lit, format!("E'\\\\x{hex}'::bytea"));
        assert_eq!(
            encrypted_literal(&ring, &rule, None, &ctx).unwrap(),
            "NULL::bytea"
        );
    }

    #[test]
    fn errors_name_the_column_never_the_value() {
        let (ring, rule) = setup();
        let ctx = TextContext::default();
        let e = encrypt_value(&ring, &rule, b"secret-ish", 0, 0, &ctx).unwrap_err();
        assert_eq!(e.sqlstate(), "22P02");
        assert!(e.message().contains("public.t.n") && !e.message().contains("secret-ish"));
        let mut v = encrypt_value(&ring, &rule, b"7", 0, 0, &ctx).unwrap();
        let last = v.len() - 1;
        v[last] ^= 1;
        let e = decrypt_cell(&ring, &rule, &v, 1, 0, &ctx).unwrap_err();
        assert_eq!(e.sqlstate(), "XX001");
        assert!(e.message().contains("public.t.n"));
        let e = decrypt_cell(&ring, &rule, b"plain text", 1, 0, &ctx).unwrap_err();
        assert_eq!(e.sqlstate(), "XX001");
    }

    #[test]
    fn a_declared_type_is_decoded_as_declared_then_assigned() {
        let (ring, rule) = setup();
        let ctx = TextContext::default();
        let want = encrypt_value(&ring, &rule, b"42", 0, 0, &ctx).unwrap();
        // psycopg 3: a small int bound for an int4 column, declared int2, two binary bytes.
        let int2 = encrypt_value(&ring, &rule, &42i16.to_be_bytes(), 1, 21, &ctx).unwrap();
        assert_eq!(int2, want);
        let int8 = encrypt_value(&ring, &rule, &42i64.to_be_bytes(), 1, 20, &ctx).unwrap();
        assert_eq!(int8, want);
        let numeric = codec::text_to_canonical(LogicalType::Numeric, b"42", &ctx).unwrap();
        let n = encrypt_value(&ring, &rule, &numeric, 1, 1700, &ctx).unwrap();
        assert_eq!(n, want);
        // Declared like the column, bytea, or unknown: decoded as the column's type.
        for d in [23, 17, 705] {
            let v = encrypt_value(&ring, &rule, &42i32.to_be_bytes(), 1, d, &ctx).unwrap();
            assert_eq!(v, want);
        }
        // The assignment can fail as PostgreSQL's would (out of range), naming no value.
        let big = encrypt_value(&ring, &rule, &(1i64 << 40).to_be_bytes(), 1, 20, &ctx);
        let e = big.unwrap_err();
        assert_eq!(e.sqlstate(), "22003");
        assert!(!e.message().contains("1099511627776"));
        // A binary value of a type pgcloak cannot decode is refused; as text it is just text.
        let e = encrypt_value(&ring, &rule, &[0; 16], 1, 1186, &ctx).unwrap_err();
        assert_eq!(e.sqlstate(), "0A000");
        assert!(e.message().contains("public.t.n") && e.message().contains("1186"));
        let t = encrypt_value(&ring, &rule, b"42", 0, 1186, &ctx).unwrap();
        assert_eq!(t, want);
    }
}
