//! Values to store that need more than one encryption or a cast first: a parameter under a
//! type-modifier cast (`$1::varchar(3)`: the value is cut as PostgreSQL's cast cuts it, then
//! encrypted), and arrays of values to store (`UNNEST($1::text[])`, `UNNEST('{a,b}'::text[])`:
//! each element encrypted under the current key version, order and NULLs kept).

use super::values::{ValueError, binary_as_text, encrypt_value};
use crate::codec::{self, CHARACTER_NOT_IN_REPERTOIRE, TextContext};
use crate::config::ColumnRule;
use crate::crypto::KeyRing;
use crate::protocol::extended::FORMAT_BINARY;
use crate::rewrite::{Coerce, CoerceError, apply_coerce};

/// Encrypts one client value for `rule`, applying `coerce` (the cast's type modifier) first.
pub fn encrypt_coerced(
    ring: &KeyRing,
    rule: &ColumnRule,
    value: &[u8],
    format: i16,
    declared: u32,
    coerce: Option<Coerce>,
    ctx: &TextContext,
) -> Result<Vec<u8>, ValueError> {
    let Some(c) = coerce else {
        return encrypt_value(ring, rule, value, format, declared, ctx);
    };
    let text = value_text(rule, value, format, declared, ctx)?;
    let cut = apply_coerce(c, &text).map_err(|e| match e {
        CoerceError::Overflow => ValueError::CastOverflow {
            column: rule.qualified(),
        },
        CoerceError::Unsupported => ValueError::DeclaredType {
            column: rule.qualified(),
            oid: declared,
        },
    })?;
    encrypt_value(ring, rule, cut.as_bytes(), 0, 0, ctx)
}

/// The value's text as PostgreSQL would read it before a cast: text as sent, a binary value
/// decoded as its declared type (else the column's).
fn value_text(
    rule: &ColumnRule,
    value: &[u8],
    format: i16,
    declared: u32,
    ctx: &TextContext,
) -> Result<String, ValueError> {
    let codec_err = |source| ValueError::Codec {
        column: rule.qualified(),
        source,
    };
    let bytes = if format == FORMAT_BINARY {
        binary_as_text(rule, value, declared, ctx)?
    } else {
        value.to_vec()
    };
    String::from_utf8(bytes).map_err(|_| {
        codec_err(codec::CodecError::plain(
            CHARACTER_NOT_IN_REPERTOIRE,
            "invalid byte sequence for encoding \"UTF8\"",
        ))
    })
}

/// Encrypts an array parameter of values to store (text `{…}` or a binary array) into a
/// binary `bytea[]`: each element under the current key version, NULLs kept.
pub fn encrypt_store_array(
    ring: &KeyRing,
    rule: &ColumnRule,
    value: &[u8],
    format: i16,
    coerce: Option<Coerce>,
    ctx: &TextContext,
) -> Result<Vec<u8>, ValueError> {
    let codec_err = |source| ValueError::Codec {
        column: rule.qualified(),
        source,
    };
    let mut out: Vec<Option<Vec<u8>>> = Vec::new();
    if format == FORMAT_BINARY {
        let (elem, items) = codec::array::parse_binary(value).map_err(codec_err)?;
        for v in items {
            out.push(match v {
                None => None,
                Some(v) => Some(encrypt_coerced(
                    ring,
                    rule,
                    v,
                    FORMAT_BINARY,
                    elem,
                    coerce,
                    ctx,
                )?),
            });
        }
    } else {
        for v in codec::array::parse_text(value).map_err(codec_err)? {
            out.push(match v {
                None => None,
                Some(v) => Some(encrypt_coerced(ring, rule, &v, 0, 0, coerce, ctx)?),
            });
        }
    }
    Ok(codec::array::bytea_array(out.iter().map(Option::as_deref)))
}
