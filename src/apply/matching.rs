//! Equality on deterministic columns across key versions. After `pgcloak keys rotate`, rows
//! written before and after the rotation hold different ciphertexts for the same value, so each
//! comparison the analysis found (`rewrite::MatchSite`) is rewritten to test every version:
//!
//! - simple protocol: only when the key has several versions, with the array spelled out
//!   (`(ssn = ANY(ARRAY[E'\\x…'::bytea, E'\\x…'::bytea]))`);
//! - extended protocol: always (a prepared statement outlives rotations), with one extra
//!   `bytea[]` parameter per compared value, appended after the client's own parameters and
//!   filled in at each Bind with the value encrypted under every version the ring holds then.
//!   ParameterDescription hides the extra parameters.
//!
//! A comparison the analysis could not locate in the text is refused once its key has several
//! versions (it would silently miss rows).

use std::sync::Arc;

use super::refuse::Refused;
use super::values::{ValueError, bytea_literal, encrypt_all_versions};
use crate::codec::{self, BYTEA_OID, TextContext};
use crate::config::ColumnRule;
use crate::crypto::KeyRing;
use crate::protocol::extended::Bind;
use crate::rewrite::{MatchItem, Plan};

pub use crate::codec::array::BYTEA_ARRAY_OID;

/// The protocol's limit on parameters per statement.
const MAX_PARAMS: usize = 65535;

/// Whole-comparison replacements for [`Plan::rewrite_text_with`].
pub type Replacements = Vec<(usize, usize, String)>;

/// One extra parameter: the value (a client parameter or a literal) to encrypt under every
/// version of `rule`'s key.
#[derive(Debug, Clone)]
pub struct Extra {
    pub rule: Arc<ColumnRule>,
    pub source: MatchItem,
}

/// The extra parameters of a prepared statement.
#[derive(Debug, Default, Clone)]
pub struct MatchParams {
    /// The number of parameters the client sees; extras are `$base+1…`.
    pub base: usize,
    pub extras: Vec<Extra>,
    /// Rules of comparisons that could not be rewritten: refused at Bind once their key has
    /// several versions.
    pub unrewritable: Vec<Arc<ColumnRule>>,
}

fn versions(ring: &KeyRing, rule: &ColumnRule) -> usize {
    ring.key(&rule.key).map_or(1, |k| k.versions().count())
}

fn unrewritable(rule: &ColumnRule) -> Refused {
    Refused::Unrewritable {
        column: rule.qualified(),
    }
}

/// Replacements for a simple-protocol text: comparisons on keys with several versions.
pub fn expand_simple(
    ring: &KeyRing,
    plan: &Plan,
    sql: &str,
    ctx: &TextContext,
) -> Result<Replacements, Refused> {
    let mut out = Vec::new();
    for m in &plan.matches {
        if versions(ring, &m.rule) <= 1 {
            continue;
        }
        let span = m.span.as_ref().ok_or_else(|| unrewritable(&m.rule))?;
        let text = span.render(sql, m.op, |item| match item {
            MatchItem::Literal(v) => literal_array(ring, &m.rule, v.as_deref(), ctx),
            MatchItem::Param(n) => Ok(format!("ARRAY[${n}]")),
            MatchItem::Column(..) => Ok("NULL::bytea[]".to_owned()),
        })?;
        out.push((span.start, span.end, text));
    }
    Ok(out)
}

fn literal_array(
    ring: &KeyRing,
    rule: &ColumnRule,
    value: Option<&str>,
    ctx: &TextContext,
) -> Result<String, Refused> {
    let Some(v) = value else {
        return Ok("ARRAY[NULL::bytea]".to_owned());
    };
    let all = encrypt_all_versions(ring, rule, v.as_bytes(), 0, 0, ctx)?;
    let items: Vec<String> = all.iter().map(|c| bytea_literal(c)).collect();
    Ok(format!("ARRAY[{}]", items.join(", ")))
}

/// Replacements and extra parameters for a Parse text whose client declared `declared`
/// parameter types.
pub fn expand_extended(
    ring: &KeyRing,
    plan: &Plan,
    sql: &str,
    declared: usize,
) -> Result<(Replacements, MatchParams), Refused> {
    let mut mp = MatchParams {
        base: declared.max(plan.max_param).max(plan.params.len()),
        ..MatchParams::default()
    };
    let mut out = Vec::new();
    for m in &plan.matches {
        let Some(span) = &m.span else {
            if versions(ring, &m.rule) > 1 {
                return Err(unrewritable(&m.rule));
            }
            mp.unrewritable.push(m.rule.clone());
            continue;
        };
        let text = span.render(sql, m.op, |item| {
            let found = match item {
                MatchItem::Param(_) => mp.extras.iter().position(|e| e.source == *item),
                _ => None,
            };
            let i = found.unwrap_or_else(|| {
                mp.extras.push(Extra {
                    rule: m.rule.clone(),
                    source: item.clone(),
                });
                mp.extras.len() - 1
            });
            Ok::<_, Refused>(format!("${}::bytea[]", mp.base + i + 1))
        })?;
        out.push((span.start, span.end, text));
    }
    if mp.base + mp.extras.len() > MAX_PARAMS {
        return Err(Refused::TooManyParams);
    }
    Ok((out, mp))
}

/// The parameter types to send in Parse: the client's, `bytea` for encrypted parameters, then
/// `bytea[]` for each extra parameter.
pub fn parse_types(declared: &[u32], plan: &Plan, mp: &MatchParams) -> Vec<u32> {
    let mut types = declared.to_vec();
    for (i, rule) in plan.params.iter().enumerate() {
        if rule.is_some() {
            if types.len() <= i {
                types.resize(i + 1, 0);
            }
            types[i] = if plan.is_array_param(i) {
                BYTEA_ARRAY_OID
            } else {
                BYTEA_OID
            };
        }
    }
    if !mp.extras.is_empty() {
        types.resize(mp.base.max(types.len()), 0);
        types.extend(std::iter::repeat_n(BYTEA_ARRAY_OID, mp.extras.len()));
    }
    types
}

impl MatchParams {
    /// Refuses a Bind when an unrewritable comparison's key now has several versions.
    pub fn check(&self, ring: &KeyRing) -> Result<(), Refused> {
        match self.unrewritable.iter().find(|r| versions(ring, r) > 1) {
            Some(rule) => Err(unrewritable(rule)),
            None => Ok(()),
        }
    }

    /// The binary `bytea[]` value of each extra parameter for this Bind. `declared(i)` is the
    /// type the client declared for parameter i.
    pub fn values(
        &self,
        ring: &KeyRing,
        b: &Bind<'_>,
        declared: impl Fn(usize) -> u32,
        ctx: &TextContext,
    ) -> Result<Vec<Vec<u8>>, ValueError> {
        let fmt = |i: usize| crate::protocol::extended::format_of(&b.param_formats, i);
        self.extras
            .iter()
            .map(|e| {
                let all = match &e.source {
                    MatchItem::Param(n) => {
                        let i = n.saturating_sub(1);
                        match b.params.get(i).copied().flatten() {
                            Some(v) => Some(encrypt_all_versions(
                                ring,
                                &e.rule,
                                v,
                                fmt(i),
                                declared(i),
                                ctx,
                            )?),
                            None => None,
                        }
                    }
                    MatchItem::Literal(Some(v)) => Some(encrypt_all_versions(
                        ring,
                        &e.rule,
                        v.as_bytes(),
                        0,
                        0,
                        ctx,
                    )?),
                    _ => None,
                };
                Ok(bytea_array(all.as_deref()))
            })
            .collect()
    }
}

/// A one-dimensional `bytea[]` in binary format; None is `{NULL}`.
fn bytea_array(items: Option<&[Vec<u8>]>) -> Vec<u8> {
    match items {
        None => codec::array::bytea_array(std::iter::once(None)),
        Some(items) => codec::array::bytea_array(items.iter().map(|v| Some(v.as_slice()))),
    }
}
