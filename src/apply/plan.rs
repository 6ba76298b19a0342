//! Applying a [`Plan`] to the messages it was made for (decide, then apply): the text of a
//! simple Query or a Parse with its literals encrypted and its comparisons matched under every
//! key version, the parameter types a Parse sends, a Bind's values encrypted, and the
//! ParameterDescription the client sees. The session engine keeps only protocol state and
//! calls these; nothing here knows of sessions.

use std::borrow::Cow;

use bytes::Bytes;

use super::arrays::{encrypt_coerced, encrypt_store_array};
use super::json_records::encrypt_json_records;
use super::literals::literal_replacement;
use super::matching::{MatchParams, expand_extended, expand_simple, parse_types};
use super::refuse::Refused;
use super::values::encrypt_array;
use crate::codec::TextContext;
use crate::crypto::KeyRing;
use crate::protocol::extended::{Bind, FORMAT_BINARY, format_of};
use crate::rewrite::Plan;

/// A Parse as it is sent on.
#[derive(Debug)]
pub struct ParseApplied {
    /// The statement's text.
    pub text: String,
    /// The parameter types: the client's, `bytea` for encrypted parameters, then `bytea[]` for
    /// each extra parameter of comparisons.
    pub param_types: Vec<u32>,
    /// The extra parameters of comparisons, filled in at each Bind.
    pub matching: MatchParams,
}

/// The type the client declared for parameter `i` (0-based); 0 when it declared none.
fn declared_at(declared: &[u32], i: usize) -> u32 {
    declared.get(i).copied().unwrap_or(0)
}

impl Plan {
    /// The replacement of each literal site, in text order.
    fn literal_replacements(
        &self,
        ring: &KeyRing,
        ctx: &TextContext,
    ) -> Result<Vec<String>, Refused> {
        self.literals
            .iter()
            .map(|l| literal_replacement(ring, l, ctx).map_err(Refused::from))
            .collect()
    }

    /// The text of a simple Query to send: literals encrypted, comparisons on keys with
    /// several versions spelled out for every version.
    pub fn apply_query(
        &self,
        ring: &KeyRing,
        sql: &str,
        ctx: &TextContext,
    ) -> Result<String, Refused> {
        let reps = self.literal_replacements(ring, ctx)?;
        let whole = expand_simple(ring, self, sql, ctx)?;
        Ok(self.rewrite_text_with(sql, &reps, &whole))
    }

    /// A Parse whose client declared `declared` parameter types: literals encrypted, casts on
    /// encrypted parameters removed, comparisons given their extra parameters.
    pub fn apply_parse(
        &self,
        ring: &KeyRing,
        sql: &str,
        declared: &[u32],
        ctx: &TextContext,
    ) -> Result<ParseApplied, Refused> {
        let (text, matching) = if self.no_params {
            // COPY takes no parameters: its comparisons are spelled out as in a Query.
            (self.apply_query(ring, sql, ctx)?, MatchParams::default())
        } else {
            let reps = self.literal_replacements(ring, ctx)?;
            let (whole, mp) = expand_extended(ring, self, sql, declared.len())?;
            (self.rewrite_text_with(sql, &reps, &whole), mp)
        };
        let param_types = parse_types(declared, self, &matching);
        Ok(ParseApplied {
            text,
            param_types,
            matching,
        })
    }

    /// True when a Bind of the statement is rewritten (it has encrypted parameters,
    /// comparisons or JSON records).
    #[inline]
    pub fn rewrites_bind(&self) -> bool {
        self.params.iter().any(Option::is_some)
            || !self.matches.is_empty()
            || !self.json_params.is_empty()
    }

    /// The Bind with every encrypted parameter encrypted and sent as binary `bytea`, and the
    /// extra `bytea[]` parameters of comparisons (`matching`) appended. `declared`: the
    /// parameter types the client declared in Parse.
    pub fn apply_bind(
        &self,
        ring: &KeyRing,
        b: &Bind<'_>,
        declared: &[u32],
        matching: &MatchParams,
        ctx: &TextContext,
    ) -> Result<Bytes, Refused> {
        matching.check(ring)?;
        let extras = matching.values(ring, b, |i| declared_at(declared, i), ctx)?;
        let n = b.params.len() + extras.len();
        let mut formats = Vec::with_capacity(n);
        let mut values: Vec<Option<Cow<'_, [u8]>>> = Vec::with_capacity(n);
        for (i, v) in b.params.iter().enumerate() {
            let fmt = format_of(&b.param_formats, i);
            if let (Some(cols), Some(v)) = (self.json_of(i), v) {
                let d = declared_at(declared, i);
                let enc = encrypt_json_records(ring, cols, v, fmt, d, ctx);
                formats.push(fmt);
                values.push(Some(Cow::Owned(enc?)));
                continue;
            }
            match (self.params.get(i).and_then(Option::as_ref), v) {
                (Some(rule), Some(v)) => {
                    let d = declared_at(declared, i);
                    let coerce = self.coerce_of(i);
                    let enc = if self.is_store_array(i) {
                        encrypt_store_array(ring, rule, v, fmt, coerce, ctx)
                    } else if self.is_array_param(i) {
                        encrypt_array(ring, rule, v, fmt, ctx)
                    } else {
                        encrypt_coerced(ring, rule, v, fmt, d, coerce, ctx)
                    };
                    formats.push(FORMAT_BINARY);
                    values.push(Some(Cow::Owned(enc?)));
                }
                (Some(_), None) => {
                    formats.push(FORMAT_BINARY);
                    values.push(None);
                }
                (None, v) => {
                    formats.push(fmt);
                    values.push(v.map(Cow::Borrowed));
                }
            }
        }
        // The client sent what its statement declares; extras follow exactly after them.
        if b.params.len() == matching.base {
            for e in extras {
                formats.push(FORMAT_BINARY);
                values.push(Some(Cow::Owned(e)));
            }
        }
        let refs: Vec<Option<&[u8]>> = values.iter().map(|v| v.as_deref()).collect();
        Ok(b.encode_with(&formats, &refs))
    }

    /// True when the server's ParameterDescription of the statement is rewritten (it has
    /// encrypted parameters or comparisons).
    #[inline]
    pub fn rewrites_param_description(&self) -> bool {
        self.params.iter().any(Option::is_some) || !self.matches.is_empty()
    }

    /// The ParameterDescription the client sees, from the server's `oids`: the extra
    /// parameters of comparisons hidden, and each encrypted parameter shown as the type the
    /// client declared, else its logical type.
    pub fn describe_params(
        &self,
        mut oids: Vec<u32>,
        declared: &[u32],
        matching: &MatchParams,
    ) -> Vec<u32> {
        if !matching.extras.is_empty() {
            // The extra parameters of comparisons are the proxy's own.
            oids.truncate(matching.base);
        }
        for (i, (oid, rule)) in oids.iter_mut().zip(self.params.iter()).enumerate() {
            if let Some(rule) = rule {
                // PostgreSQL echoes a declared type; the logical type fills in the rest.
                *oid = match declared_at(declared, i) {
                    0 if self.is_array_param(i) => rule.ty.array_oid(),
                    0 => rule.ty.oid(),
                    d => d,
                };
            }
        }
        oids
    }
}
