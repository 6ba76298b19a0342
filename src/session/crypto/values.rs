//! One value at a time: client value (text or binary) → canonical → envelope, and stored
//! envelope (as the server sent it, text `\x…` or binary) → canonical → the client's format.
//! Errors name the column, never the value.

use std::fmt::Write as _;

use crate::codec::{self, CodecError, LogicalType, TextContext};
use crate::config::ColumnRule;
use crate::crypto::{CryptoError, KeyRing};
use crate::protocol::extended::FORMAT_BINARY;
use crate::protocol::sqlstate::{DATA_CORRUPTED, INTERNAL_ERROR, PgError, Severity};

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
}

impl ValueError {
    /// The SQLSTATE the client gets.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            ValueError::Codec { source, .. } => source.sqlstate(),
            ValueError::Encrypt { .. } => INTERNAL_ERROR,
            ValueError::Corrupt { .. } | ValueError::UnknownVersion { .. } => DATA_CORRUPTED,
        }
    }

    /// The client's message: names the column, never a value or key.
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

    /// The ErrorResponse for the client.
    pub fn pg_error(&self) -> PgError {
        PgError::new(Severity::Error, self.sqlstate(), self.message())
    }
}

/// Encrypts a client value (in `format`) for `rule`.
pub fn encrypt_value(
    ring: &KeyRing,
    rule: &ColumnRule,
    value: &[u8],
    format: i16,
    ctx: &TextContext,
) -> Result<Vec<u8>, ValueError> {
    let canonical = if format == FORMAT_BINARY {
        codec::binary_to_canonical(rule.ty, value)
    } else {
        codec::text_to_canonical(rule.ty, value, ctx)
    }
    .map_err(|source| ValueError::Codec {
        column: rule.qualified(),
        source,
    })?;
    ring.encrypt(&rule.key, rule.mode, &canonical)
        .map_err(|source| ValueError::Encrypt {
            column: rule.qualified(),
            source,
        })
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
    let stored = encrypt_value(ring, rule, v.as_bytes(), 0, ctx)?;
    let mut out = String::with_capacity(stored.len() * 2 + 16);
    out.push_str("E'\\\\x");
    for b in &stored {
        let _ = write!(out, "{b:02x}");
    }
    out.push_str("'::bytea");
    Ok(out)
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
    let canonical = match ring.decrypt(&rule.key, stored) {
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
        let a = encrypt_value(&ring, &rule, b"42", 0, &ctx).unwrap();
        let b = encrypt_value(&ring, &rule, &42i32.to_be_bytes(), 1, &ctx).unwrap();
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
        let e = encrypt_value(&ring, &rule, b"secret-ish", 0, &ctx).unwrap_err();
        assert_eq!(e.sqlstate(), "22P02");
        assert!(e.message().contains("public.t.n") && !e.message().contains("secret-ish"));
        let mut v = encrypt_value(&ring, &rule, b"7", 0, &ctx).unwrap();
        let last = v.len() - 1;
        v[last] ^= 1;
        let e = decrypt_cell(&ring, &rule, &v, 1, 0, &ctx).unwrap_err();
        assert_eq!(e.sqlstate(), "XX001");
        assert!(e.message().contains("public.t.n"));
        let e = decrypt_cell(&ring, &rule, b"plain text", 1, 0, &ctx).unwrap_err();
        assert_eq!(e.sqlstate(), "XX001");
    }
}
