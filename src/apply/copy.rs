//! The rows of a COPY on a rules table, transformed one payload at a time: fields of encrypted
//! columns encrypted on the way in (`COPY … FROM STDIN`), decrypted on the way out (`COPY … TO
//! STDOUT`). `crate::copy` splits the stream, `rewrite::CopyPlan` says which fields; the
//! engine (`crate::engine`) decides where the bytes go.

use std::sync::Arc;

use super::values::{ValueError, decrypt_cell, encrypt_value};
use crate::codec::{self, LogicalType, TextContext};
use crate::copy::{CopyError, CopyStream, Field, Format};
use crate::crypto::KeyRing;
use crate::protocol::extended::FORMAT_BINARY;
use crate::rewrite::{CopyDirection, CopyPlan};

/// A COPY row that could not be transformed (the client's error: `PgError::from`).
#[derive(Debug)]
pub struct CopyRowError {
    /// `schema.table` of the COPY.
    pub table: String,
    pub source: CopyError<ValueError>,
}

/// A COPY data stream of a rules table in progress, in one direction.
#[derive(Debug)]
pub struct CopyFlow {
    plan: Arc<CopyPlan>,
    stream: CopyStream,
}

impl CopyFlow {
    pub fn new(plan: Arc<CopyPlan>) -> Self {
        let mapped = plan.columns.iter().map(Option::is_some).collect();
        let stream = CopyStream::new(plan.options.clone(), mapped);
        CopyFlow { plan, stream }
    }

    pub fn table(&self) -> String {
        self.plan
            .columns
            .iter()
            .flatten()
            .next()
            .map_or_else(String::new, |r| format!("{}.{}", r.schema, r.table))
    }

    /// The error of a row this stream could not transform, naming its table.
    pub fn error(&self, source: CopyError<ValueError>) -> CopyRowError {
        CopyRowError {
            table: self.table(),
            source,
        }
    }

    /// Feeds a payload (or, `None`, the end of data) through the stream.
    pub fn run(
        &mut self,
        ring: &KeyRing,
        ctx: &TextContext,
        payload: Option<&[u8]>,
    ) -> Result<Vec<u8>, CopyError<ValueError>> {
        let plan = Arc::clone(&self.plan);
        let binary = plan.options.format == Format::Binary;
        let mut map = |idx: usize, v: Field<'_>| -> Result<Option<Vec<u8>>, ValueError> {
            let (Some(rule), Some(v)) = (plan.columns.get(idx).and_then(Option::as_ref), v) else {
                return Ok(None);
            };
            let out = match (plan.direction, binary) {
                (CopyDirection::In, true) => {
                    encrypt_value(ring, rule, v, FORMAT_BINARY, rule.ty.oid(), ctx)?
                }
                (CopyDirection::In, false) => {
                    let stored = encrypt_value(ring, rule, v, 0, 0, ctx)?;
                    codec::canonical_to_text(LogicalType::Bytea, &stored, ctx).map_err(|e| {
                        ValueError::Corrupt {
                            column: rule.qualified(),
                            reason: e.redacted().to_owned(),
                        }
                    })?
                }
                (CopyDirection::Out, true) => {
                    decrypt_cell(ring, rule, v, FORMAT_BINARY, FORMAT_BINARY, ctx)?
                }
                (CopyDirection::Out, false) => decrypt_cell(ring, rule, v, 0, 0, ctx)?,
            };
            Ok(Some(out))
        };
        match payload {
            Some(p) => self.stream.feed(p, &mut map),
            None => self.stream.finish(&mut map),
        }
    }
}
