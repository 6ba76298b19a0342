//! COPY on a rules table through the session: rows from the client (`COPY … FROM STDIN`) have
//! their encrypted columns encrypted before they go upstream; rows from the server (`COPY … TO
//! STDOUT`) have them decrypted before they reach the client (`crate::copy` splits the
//! stream, `rewrite::CopyPlan` says which fields).
//!
//! A stream starts when the server answers the COPY (CopyInResponse / CopyOutResponse), tied
//! to its statement through the expect FIFO. A client row that cannot be encrypted fails the
//! COPY: pgcloak sends CopyFail upstream, drops the client's further CopyData (never
//! forwarding it), and gives the client its own error in place of the server's. A stored value
//! that does not decrypt ends the result with `XX001`, as for rows of a query.

use std::sync::Arc;

use super::state::{Expect, SessionCrypto};
use super::values::{ValueError, decrypt_cell, encrypt_value};
use crate::codec::{self, LogicalType, TextContext};
use crate::copy::{CopyError, CopyStream, Field, Format};
use crate::crypto::KeyRing;
use crate::protocol::Frame;
use crate::protocol::copy::{copy_data, copy_done, copy_fail, response_is_binary};
use crate::protocol::extended::FORMAT_BINARY;
use crate::protocol::sqlstate::{INTERNAL_ERROR, PgError, Severity};
use crate::rewrite::{CopyDirection, CopyPlan};
use crate::session::handlers::Outputs;

/// SQLSTATE 22P04 bad_copy_file_format.
const BAD_COPY_FILE_FORMAT: &str = "22P04";

/// A COPY data stream in progress, in one direction.
#[derive(Debug)]
pub struct CopyFlow {
    plan: Arc<CopyPlan>,
    stream: CopyStream,
    /// The COPY has failed (here or upstream): the client's further rows are dropped.
    dead: bool,
}

impl CopyFlow {
    fn new(plan: Arc<CopyPlan>) -> Self {
        let mapped = plan.columns.iter().map(Option::is_some).collect();
        let stream = CopyStream::new(plan.options.clone(), mapped);
        CopyFlow {
            plan,
            stream,
            dead: false,
        }
    }

    fn table(&self) -> String {
        self.plan
            .columns
            .iter()
            .flatten()
            .next()
            .map_or_else(String::new, |r| format!("{}.{}", r.schema, r.table))
    }

    fn error(&self, e: CopyError<ValueError>) -> PgError {
        match e {
            CopyError::Malformed(m) => {
                let msg = format!("pgcloak: {m} (COPY of table {})", self.table());
                PgError::new(Severity::Error, BAD_COPY_FILE_FORMAT, msg)
            }
            CopyError::Value(v) => v.pg_error(),
        }
    }

    /// Feeds a payload (or, `None`, the end of data) through the stream.
    fn run(
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

impl SessionCrypto {
    /// The COPY plan of the statement whose CopyIn/OutResponse is arriving.
    fn next_copy(&mut self) -> Option<Arc<CopyPlan>> {
        match self.expect.front_mut() {
            Some(Expect::Query { copies, .. }) => copies.pop_front().flatten(),
            Some(Expect::Execute(Some(p))) => {
                p.statement.plan.as_ref()?.copies.first().cloned().flatten()
            }
            _ => None,
        }
    }

    /// CopyInResponse / CopyOutResponse: starts the stream of a COPY on a rules table. A
    /// response whose direction or format is not the planned one fails closed.
    pub(super) fn on_copy_response(&mut self, frame: &Frame, out: &mut Outputs<'_>) -> bool {
        let Some(plan) = self.next_copy() else {
            return true;
        };
        let direction = if frame.tag == b'G' {
            CopyDirection::In
        } else {
            CopyDirection::Out
        };
        let binary = response_is_binary(frame.body());
        if plan.direction != direction || binary != (plan.options.format == Format::Binary) {
            let e = PgError::new(
                Severity::Error,
                INTERNAL_ERROR,
                "pgcloak: the server's COPY response does not match the statement",
            );
            self.fail_result(e, out);
            if direction == CopyDirection::In {
                out.to_upstream
                    .extend_from_slice(&copy_fail("pgcloak: unexpected COPY response"));
            }
            return false;
        }
        let flow = CopyFlow::new(plan);
        match direction {
            CopyDirection::In => self.copy_in = Some(flow),
            CopyDirection::Out => self.copy_out = Some(flow),
        }
        true
    }

    /// Client CopyData / CopyDone / CopyFail while a COPY FROM STDIN on a rules table runs.
    /// Returns false when the message was not for such a stream (forward it as it is).
    pub(super) fn client_copy(&mut self, frame: &Frame, out: &mut Outputs<'_>) -> bool {
        let Some(flow) = self.copy_in.as_mut() else {
            return false;
        };
        let ring = Arc::clone(self.keys.get());
        let done = frame.tag == b'c';
        let result = match frame.tag {
            b'd' if flow.dead => return true,
            b'd' => flow.run(&ring, &self.text, Some(frame.body())),
            b'c' if !flow.dead => flow.run(&ring, &self.text, None),
            _ => {
                // CopyFail, or CopyDone after a failure: the server (if still copying) ends it.
                out.to_upstream.extend_from_slice(&frame.bytes);
                self.copy_in = None;
                return true;
            }
        };
        match result {
            Ok(bytes) => {
                if !bytes.is_empty() {
                    out.to_upstream.extend_from_slice(&copy_data(&bytes));
                }
                if done {
                    out.to_upstream.extend_from_slice(&copy_done());
                }
            }
            Err(e) => {
                let err = flow.error(e);
                tracing::debug!(sqlstate = err.code, "COPY row refused");
                flow.dead = true;
                out.to_upstream
                    .extend_from_slice(&copy_fail("pgcloak: COPY data refused"));
                self.copy_error = Some(err);
            }
        }
        if done {
            self.copy_in = None;
        }
        true
    }

    /// Server CopyData / CopyDone while a COPY TO STDOUT on a rules table runs. Returns false
    /// when the message was not for such a stream.
    pub(super) fn server_copy(&mut self, frame: &Frame, out: &mut Outputs<'_>) -> bool {
        let Some(flow) = self.copy_out.as_mut() else {
            return false;
        };
        let ring = Arc::clone(self.keys.get());
        let done = frame.tag == b'c';
        let payload = (!done).then(|| frame.body());
        match flow.run(&ring, &self.text, payload) {
            Ok(bytes) => {
                self.retried = false;
                if !bytes.is_empty() {
                    out.to_client.extend_from_slice(&copy_data(&bytes));
                }
                if done {
                    out.to_client.extend_from_slice(&frame.bytes);
                    self.copy_out = None;
                }
            }
            Err(CopyError::Value(ValueError::UnknownVersion { .. })) if !self.retried => {
                self.stall(frame.clone());
            }
            Err(e) => {
                let err = flow.error(e);
                tracing::warn!(sqlstate = err.code, "COPY TO: value withheld");
                self.copy_out = None;
                self.fail_result(err, out);
            }
        }
        true
    }

    /// An ErrorResponse from the server: a running COPY FROM has ended; when pgcloak failed it,
    /// the client gets pgcloak's error instead of the server's (returns it).
    pub(super) fn copy_server_error(&mut self) -> Option<PgError> {
        if let Some(flow) = self.copy_in.as_mut() {
            flow.dead = true;
        }
        self.copy_out = None;
        self.copy_error.take()
    }
}
