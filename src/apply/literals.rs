//! The SQL literals that replace literals bound for encrypted columns: one value under the
//! current key version, every version of each value for `col = ANY(…)`, and arrays of values
//! to store (see [`LiteralKind`]).

use super::values::{
    ValueError, bytea_literal, encrypt_all_versions, encrypt_value, encrypted_literal,
};
use crate::codec::{self, TextContext};
use crate::config::ColumnRule;
use crate::crypto::KeyRing;
use crate::rewrite::{LiteralKind, LiteralSite};

/// The replacement text of a literal site: the value under the current key version, or for
/// `col = ANY(…)` every version of each value (see [`LiteralKind`]).
pub fn literal_replacement(
    ring: &KeyRing,
    site: &LiteralSite,
    ctx: &TextContext,
) -> Result<String, ValueError> {
    let rule = &site.rule;
    let all = |v: &[u8]| -> Result<String, ValueError> {
        let items = encrypt_all_versions(ring, rule, v, 0, 0, ctx)?;
        Ok(items
            .iter()
            .map(|c| bytea_literal(c))
            .collect::<Vec<_>>()
            .join(", "))
    };
    match (site.kind, site.value.as_deref()) {
        (LiteralKind::Value, v) => encrypted_literal(ring, rule, v, ctx),
        (LiteralKind::Element, None) => Ok("NULL::bytea".to_owned()),
        (LiteralKind::Element, Some(v)) => all(v.as_bytes()),
        (LiteralKind::Array | LiteralKind::Stored, None) => Ok("NULL::bytea[]".to_owned()),
        (LiteralKind::Stored, Some(v)) => stored_array_literal(ring, rule, v, ctx),
        (LiteralKind::Array, Some(v)) => {
            let elements =
                codec::array::parse_text(v.as_bytes()).map_err(|source| ValueError::Codec {
                    column: rule.qualified(),
                    source,
                })?;
            let mut items = Vec::with_capacity(elements.len());
            for e in &elements {
                items.push(match e {
                    None => "NULL::bytea".to_owned(),
                    Some(e) => all(e)?,
                });
            }
            if items.is_empty() {
                return Ok("'{}'::bytea[]".to_owned());
            }
            Ok(format!("ARRAY[{}]::bytea[]", items.join(", ")))
        }
    }
}

/// The replacement of an array constant of values to store (`LiteralKind::Stored`; casts
/// already applied to its elements): `ARRAY[…]::bytea[]`.
pub fn stored_array_literal(
    ring: &KeyRing,
    rule: &ColumnRule,
    text: &str,
    ctx: &TextContext,
) -> Result<String, ValueError> {
    let elements =
        codec::array::parse_text(text.as_bytes()).map_err(|source| ValueError::Codec {
            column: rule.qualified(),
            source,
        })?;
    if elements.is_empty() {
        return Ok("'{}'::bytea[]".to_owned());
    }
    let mut items = Vec::with_capacity(elements.len());
    for e in &elements {
        items.push(match e {
            None => "NULL::bytea".to_owned(),
            Some(e) => bytea_literal(&encrypt_value(ring, rule, e, 0, 0, ctx)?),
        });
    }
    Ok(format!("ARRAY[{}]::bytea[]", items.join(", ")))
}
