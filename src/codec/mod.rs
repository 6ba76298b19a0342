//! Value codecs (sans-IO): PostgreSQL text and binary formats ⇄ one canonical form per logical
//! type. The canonical form is what gets encrypted, so equal values encrypt equally in
//! deterministic mode whichever format they arrived in.
//!
//! # The canonical form, per type
//!
//! Rule: the canonical form is PostgreSQL's own binary (send) form after PostgreSQL's own
//! normalisation, i.e. *two inputs get the same canonical bytes exactly when PostgreSQL would
//! store and print them identically*. Decrypting is therefore lossless (the client reads back
//! what PostgreSQL would have shown), and text and binary input of one value always agree.
//!
//! | type | canonical bytes | notes |
//! |---|---|---|
//! | text, varchar | UTF-8 bytes | validated UTF-8, no NUL (PostgreSQL's encoding check) |
//! | int2/int4/int8 | big-endian two's complement | |
//! | float4/float8 | IEEE bits, big-endian | every NaN → one quiet NaN; `-0` kept |
//! | numeric | send format, normalised | leading/trailing zero digits stripped, zero positive; display scale kept |
//! | bool | one byte 0/1 | |
//! | date | i32 days since 2000-01-01 | ±infinity = i32 MAX/MIN |
//! | time | i64 µs since midnight | |
//! | timestamp | i64 µs since 2000-01-01 (wall clock) | an input zone is ignored, as PostgreSQL does |
//! | timestamptz | i64 µs since 2000-01-01 UTC | any offset/zone spelling of one instant agrees |
//! | uuid | 16 bytes | case, hyphens and braces do not matter |
//! | json | the text, verbatim | PostgreSQL keeps json verbatim (whitespace, key order, duplicates) |
//! | jsonb | PostgreSQL's jsonb output text | keys sorted, last duplicate wins, numbers normalised |
//! | bytea | the raw bytes | hex and escape input agree |
//!
//! Where PostgreSQL's `=` and this rule differ, we follow the rule and document the gap:
//! - **numeric** `1.0 = 1.00` is true but the two print differently (and `scale()` differs),
//!   so they are distinct values here. Normalising the scale would silently change what an
//!   application reads back (a price `1.50` would come back as `1.5`); applications that
//!   search a deterministic numeric column should write a consistent scale. The same holds
//!   for numbers inside jsonb (`{"a": 1.0}` vs `{"a": 1}`).
//! - **float** `-0 = 0` is true but PostgreSQL prints `-0`; they are distinct here.
//! - **text** equality under a nondeterministic collation is not modelled (bytes compare).
//!
//! Text output is PostgreSQL 15's with DateStyle ISO (other styles fall back to ISO), the
//! session TimeZone, and the session `extra_float_digits`; bytea output is hex.

pub mod array;
mod context;
mod datetime;
mod dtparse;
mod error;
mod float;
mod json;
mod numeric;
mod scalar;
mod types;

pub use context::{DateOrder, TextContext, Zone};
pub use error::{
    CHARACTER_NOT_IN_REPERTOIRE, CodecError, INVALID_TEXT_REPRESENTATION,
    NUMERIC_VALUE_OUT_OF_RANGE,
};
pub use types::{BYTEA_OID, LogicalType};

use datetime::Kind;
use float::Width;

fn datetime_kind(ty: LogicalType) -> Option<Kind> {
    Some(match ty {
        LogicalType::Date => Kind::Date,
        LogicalType::Time => Kind::Time,
        LogicalType::Timestamp => Kind::Timestamp,
        LogicalType::Timestamptz => Kind::Timestamptz,
        _ => return None,
    })
}

/// Parses a value in PostgreSQL's text format into its canonical bytes.
pub fn text_to_canonical(
    ty: LogicalType,
    text: &[u8],
    ctx: &TextContext,
) -> Result<Vec<u8>, CodecError> {
    use LogicalType as T;
    if let Some(kind) = datetime_kind(ty) {
        return datetime::text_to_canonical(kind, text, ctx);
    }
    match ty {
        T::Text | T::Varchar => scalar::utf8_to_canonical(text),
        T::Int2 => scalar::int_text_to_canonical(text, 2),
        T::Int4 => scalar::int_text_to_canonical(text, 4),
        T::Int8 => scalar::int_text_to_canonical(text, 8),
        T::Float4 => float::text_to_canonical(text, Width::F4),
        T::Float8 => float::text_to_canonical(text, Width::F8),
        T::Numeric => numeric::text_to_canonical(text),
        T::Bool => scalar::bool_text_to_canonical(text),
        T::Uuid => scalar::uuid_text_to_canonical(text),
        T::Json => json::json_to_canonical(text),
        T::Jsonb => json::jsonb_to_canonical(text),
        T::Bytea => scalar::bytea_text_to_canonical(text),
        T::Date | T::Time | T::Timestamp | T::Timestamptz => unreachable_datetime(ty),
    }
}

/// Parses a value in PostgreSQL's binary (send/recv) format into its canonical bytes.
pub fn binary_to_canonical(ty: LogicalType, bin: &[u8]) -> Result<Vec<u8>, CodecError> {
    use LogicalType as T;
    if let Some(kind) = datetime_kind(ty) {
        return datetime::binary_to_canonical(kind, bin);
    }
    let fixed = |n: usize| {
        if bin.len() == n {
            Ok(bin.to_vec())
        } else {
            Err(CodecError::binary(ty.name()))
        }
    };
    match ty {
        T::Text | T::Varchar | T::Json => scalar::utf8_to_canonical(bin).and_then(|c| {
            if ty == T::Json {
                json::json_to_canonical(&c)
            } else {
                Ok(c)
            }
        }),
        T::Int2 => fixed(2),
        T::Int4 => fixed(4),
        T::Int8 => fixed(8),
        T::Uuid => fixed(16),
        T::Float4 => float::binary_to_canonical(bin, Width::F4),
        T::Float8 => float::binary_to_canonical(bin, Width::F8),
        T::Numeric => numeric::binary_to_canonical(bin),
        T::Bool => match bin {
            [b] => Ok(vec![u8::from(*b != 0)]),
            _ => Err(CodecError::binary("bool")),
        },
        T::Jsonb => json::jsonb_binary_to_canonical(bin),
        T::Bytea => Ok(bin.to_vec()),
        T::Date | T::Time | T::Timestamp | T::Timestamptz => unreachable_datetime(ty),
    }
}

/// Renders canonical bytes in PostgreSQL's text format for the session settings in `ctx`.
pub fn canonical_to_text(
    ty: LogicalType,
    canonical: &[u8],
    ctx: &TextContext,
) -> Result<Vec<u8>, CodecError> {
    use LogicalType as T;
    if let Some(kind) = datetime_kind(ty) {
        return datetime::canonical_to_text(kind, canonical, ctx);
    }
    match ty {
        T::Text | T::Varchar | T::Json | T::Jsonb => utf8_canonical(ty, canonical),
        T::Int2 => scalar::int_to_text(canonical, 2),
        T::Int4 => scalar::int_to_text(canonical, 4),
        T::Int8 => scalar::int_to_text(canonical, 8),
        T::Float4 => float::canonical_to_text(canonical, Width::F4, ctx.extra_float_digits()),
        T::Float8 => float::canonical_to_text(canonical, Width::F8, ctx.extra_float_digits()),
        T::Numeric => numeric::canonical_to_text(canonical),
        T::Bool => match canonical {
            [0] => Ok(b"f".to_vec()),
            [1] => Ok(b"t".to_vec()),
            _ => Err(CodecError::corrupt("bool")),
        },
        T::Uuid => scalar::uuid_to_text(canonical),
        T::Bytea if ctx.bytea_escape() => Ok(scalar::bytea_to_escape(canonical)),
        T::Bytea => Ok(scalar::bytea_to_text(canonical)),
        T::Date | T::Time | T::Timestamp | T::Timestamptz => unreachable_datetime(ty),
    }
}

/// Renders canonical bytes in PostgreSQL's binary (send) format.
pub fn canonical_to_binary(ty: LogicalType, canonical: &[u8]) -> Result<Vec<u8>, CodecError> {
    use LogicalType as T;
    if let Some(kind) = datetime_kind(ty) {
        return datetime::canonical_to_binary(kind, canonical);
    }
    let fixed = |n: usize| {
        if canonical.len() == n {
            Ok(canonical.to_vec())
        } else {
            Err(CodecError::corrupt(ty.name()))
        }
    };
    match ty {
        T::Text | T::Varchar | T::Json => utf8_canonical(ty, canonical),
        T::Jsonb => {
            let text = utf8_canonical(ty, canonical)?;
            let mut out = Vec::with_capacity(text.len() + 1);
            out.push(1);
            out.extend_from_slice(&text);
            Ok(out)
        }
        T::Int2 => fixed(2),
        T::Int4 | T::Float4 => fixed(4),
        T::Int8 | T::Float8 => fixed(8),
        T::Uuid => fixed(16),
        T::Bool => match canonical {
            [0 | 1] => Ok(canonical.to_vec()),
            _ => Err(CodecError::corrupt("bool")),
        },
        T::Numeric => numeric::canonical_to_binary(canonical),
        T::Bytea => Ok(canonical.to_vec()),
        T::Date | T::Time | T::Timestamp | T::Timestamptz => unreachable_datetime(ty),
    }
}

/// Canonical text-like bytes, checked to be UTF-8 (a decrypted value of the wrong shape is
/// corrupt data, not a client error).
fn utf8_canonical(ty: LogicalType, canonical: &[u8]) -> Result<Vec<u8>, CodecError> {
    match std::str::from_utf8(canonical) {
        Ok(_) => Ok(canonical.to_vec()),
        Err(_) => Err(CodecError::corrupt(ty.name())),
    }
}

/// The date/time types are dispatched before the `match`; this arm cannot be reached.
fn unreachable_datetime<T>(ty: LogicalType) -> Result<T, CodecError> {
    Err(CodecError::corrupt(ty.name()))
}

#[cfg(test)]
mod proptests;
