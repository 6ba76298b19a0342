//! COPY on a rules table through the session: rows from the client (`COPY … FROM STDIN`) have
//! their encrypted columns encrypted before they go upstream; rows from the server (`COPY … TO
//! STDOUT`) have them decrypted before they reach the client (`crate::copy` splits the
//! stream, `rewrite::CopyPlan` says which fields).
//!
//! A stream starts when the server answers the COPY (CopyInResponse / CopyOutResponse), tied
//! to its statement through the session's FIFO. Client COPY data is forwarded only into a COPY
//! the server has started (see [`CopyIn`]). A client row that cannot be encrypted fails the
//! COPY: pgcloak sends CopyFail upstream, drops the client's further CopyData (never
//! forwarding it), and gives the client its own error in place of the server's. A stored value
//! that does not decrypt ends the result with `XX001`, as for rows of a query.

use std::sync::Arc;

use super::handlers::Outputs;
use super::pipeline::{Expect, Pipeline};
use super::state::SessionCrypto;
use crate::apply::ValueError;
use crate::apply::copy::CopyFlow;
use crate::copy::{CopyError, Format};
use crate::error::EngineError;
use crate::protocol::PgError;
use crate::protocol::copy::{copy_data, copy_done, copy_fail, response_is_binary};
use crate::protocol::{BackendTag, Frame, FrontendTag};
use crate::rewrite::{CopyDirection, CopyPlan};

/// Most bytes of client COPY data held while waiting for the server to start the COPY.
const MAX_HELD: usize = 64 << 20;

/// Where the client's COPY data goes.
#[derive(Debug, Default)]
enum CopyIn {
    /// No COPY FROM STDIN is running: data is held until one starts.
    #[default]
    Idle,
    /// A COPY of a table without encrypted columns: forwarded.
    Plain,
    /// A COPY of a rules table: encrypted.
    Encrypted(Box<CopyFlow>),
    /// A COPY that failed: the client's further data is dropped up to its CopyDone/CopyFail.
    Dead,
}

/// The COPY streams of a session.
#[derive(Debug, Default)]
pub(super) struct CopyState {
    /// Where the client's COPY data goes (from CopyInResponse to its CopyDone/CopyFail).
    input: CopyIn,
    /// Client COPY messages that came before the server started their COPY.
    held: Vec<Frame>,
    held_bytes: usize,
    /// Held COPY data was dropped while requests were outstanding: fail the next COPY FROM.
    poisoned: bool,
    /// COPY TO STDOUT on a rules table, from CopyOutResponse to the server's CopyDone.
    output: Option<CopyFlow>,
    /// pgcloak failed a COPY FROM: the error the client gets instead of the server's.
    error: Option<PgError>,
}

impl CopyState {
    /// Holds a client COPY message sent before the server started the COPY (a client that does
    /// not wait for CopyInResponse). Past [`MAX_HELD`] bytes the data is dropped and the COPY,
    /// when it starts, fails.
    fn hold(&mut self, frame: &Frame) {
        self.held_bytes += frame.bytes().len();
        if self.held_bytes > MAX_HELD {
            self.held.clear();
            self.held.push(Frame::new(
                FrontendTag::CopyFail.into(),
                copy_fail("pgcloak: too much COPY data sent before the COPY started"),
            ));
            return;
        }
        self.held.push(frame.clone());
    }

    /// The held client messages, taken.
    fn take_held(&mut self) -> Vec<Frame> {
        self.held_bytes = 0;
        std::mem::take(&mut self.held)
    }

    /// At ReadyForQuery: held COPY data that no COPY took is dropped (its COPY failed before
    /// it started). When more requests are `outstanding`, the data may have been meant for
    /// one of them: the next COPY FROM STDIN to start is failed rather than given partial data.
    pub fn drop_orphaned(&mut self, outstanding: bool) {
        if matches!(self.input, CopyIn::Idle) && !self.held.is_empty() {
            self.held.clear();
            self.held_bytes = 0;
            self.poisoned = outstanding;
        }
    }

    /// An ErrorResponse from the server: a running COPY FROM has ended; when pgcloak failed it,
    /// the client gets pgcloak's error instead of the server's (returns it).
    pub fn server_error(&mut self) -> Option<PgError> {
        if matches!(self.input, CopyIn::Encrypted(_)) {
            self.input = CopyIn::Dead;
        }
        self.output = None;
        self.error.take()
    }
}

impl SessionCrypto {
    /// The COPY plan of the statement whose CopyIn/OutResponse is arriving.
    fn next_copy(pipe: &mut Pipeline) -> Option<Arc<CopyPlan>> {
        match pipe.front_mut() {
            Some(Expect::Query { copies, .. }) => copies.pop_front().flatten(),
            Some(Expect::Execute(Some(p))) => {
                p.statement.plan.as_ref()?.copies.first().cloned().flatten()
            }
            _ => None,
        }
    }

    /// CopyInResponse / CopyOutResponse: starts the stream of the COPY it answers (mapped
    /// when the COPY is on a rules table). A response whose direction or format is not the
    /// planned one fails closed. Client COPY messages held until now are handled.
    pub(super) fn on_copy_response(
        &mut self,
        frame: &Frame,
        out: &mut Outputs<'_>,
        pipe: &mut Pipeline,
    ) -> bool {
        let direction = if BackendTag::from(frame.tag()) == BackendTag::CopyInResponse {
            CopyDirection::In
        } else {
            CopyDirection::Out
        };
        let plan = Self::next_copy(pipe);
        if direction == CopyDirection::In && std::mem::take(&mut self.copy.poisoned) {
            out.to_upstream.extend_from_slice(&copy_fail(
                "pgcloak: COPY data sent before an earlier COPY started was discarded",
            ));
            self.copy.error = Some(PgError::from(&EngineError::CopyPoisoned));
            self.copy.input = CopyIn::Dead;
            self.replay_held(out, pipe);
            return true;
        }
        let Some(plan) = plan else {
            if direction == CopyDirection::In {
                self.copy.input = CopyIn::Plain;
                self.replay_held(out, pipe);
            }
            return true;
        };
        let binary = response_is_binary(frame.body());
        if plan.direction != direction || binary != (plan.options.format == Format::Binary) {
            self.fail_result(PgError::from(&EngineError::CopyMismatch), out);
            if direction == CopyDirection::In {
                out.to_upstream
                    .extend_from_slice(&copy_fail("pgcloak: unexpected COPY response"));
                self.copy.input = CopyIn::Dead;
                self.replay_held(out, pipe);
            }
            return false;
        }
        let flow = CopyFlow::new(plan);
        match direction {
            CopyDirection::In => {
                self.copy.input = CopyIn::Encrypted(Box::new(flow));
                self.replay_held(out, pipe);
            }
            CopyDirection::Out => self.copy.output = Some(flow),
        }
        true
    }

    fn replay_held(&mut self, out: &mut Outputs<'_>, pipe: &Pipeline) {
        for f in self.copy.take_held() {
            self.client_copy(&f, out, pipe);
        }
    }

    /// Client CopyData / CopyDone / CopyFail (in an encrypted session). Data for a COPY FROM
    /// STDIN on a rules table is encrypted; for any other COPY it is forwarded; data that
    /// arrives before the server started a COPY is held until it does (and dropped if no COPY
    /// starts), so no row reaches the server unencrypted.
    pub(super) fn client_copy(&mut self, frame: &Frame, out: &mut Outputs<'_>, pipe: &Pipeline) {
        let tag = FrontendTag::from(frame.tag());
        let done = tag == FrontendTag::CopyDone;
        let end = matches!(tag, FrontendTag::CopyDone | FrontendTag::CopyFail);
        let flow = match &mut self.copy.input {
            CopyIn::Plain => {
                out.to_upstream.extend_from_slice(frame.bytes());
                if end {
                    self.copy.input = CopyIn::Idle;
                }
                return;
            }
            CopyIn::Idle if pipe.is_empty() => {
                // No request is outstanding, so no COPY can start: the data has no taker.
                return;
            }
            CopyIn::Idle => {
                self.copy.hold(frame);
                return;
            }
            CopyIn::Dead => {
                if end {
                    // The server ended the COPY already (or ignores this in normal mode).
                    out.to_upstream.extend_from_slice(frame.bytes());
                    self.copy.input = CopyIn::Idle;
                }
                return;
            }
            CopyIn::Encrypted(flow) => flow,
        };
        let ring = Arc::clone(self.keys.get());
        let result = match tag {
            FrontendTag::CopyData => flow.run(&ring, &self.text, Some(frame.body())),
            FrontendTag::CopyDone => flow.run(&ring, &self.text, None),
            _ => {
                out.to_upstream.extend_from_slice(frame.bytes());
                self.copy.input = CopyIn::Idle;
                return;
            }
        };
        match result {
            Ok(bytes) => {
                if !bytes.is_empty() {
                    out.to_upstream.extend_from_slice(&copy_data(&bytes));
                }
                if done {
                    out.to_upstream.extend_from_slice(&copy_done());
                    self.copy.input = CopyIn::Idle;
                }
            }
            Err(e) => {
                let err = PgError::from(&flow.error(e));
                tracing::debug!(sqlstate = err.code, "COPY row refused");
                out.to_upstream
                    .extend_from_slice(&copy_fail("pgcloak: COPY data refused"));
                self.copy.error = Some(err);
                self.copy.input = if done { CopyIn::Idle } else { CopyIn::Dead };
            }
        }
    }

    /// Server CopyData / CopyDone while a COPY TO STDOUT on a rules table runs. Returns false
    /// when the message was not for such a stream.
    pub(super) fn server_copy(&mut self, frame: &Frame, out: &mut Outputs<'_>) -> bool {
        let Some(flow) = self.copy.output.as_mut() else {
            return false;
        };
        let ring = Arc::clone(self.keys.get());
        let done = BackendTag::from(frame.tag()) == BackendTag::CopyDone;
        let payload = (!done).then(|| frame.body());
        match flow.run(&ring, &self.text, payload) {
            Ok(bytes) => {
                self.stall.done();
                if !bytes.is_empty() {
                    out.to_client.extend_from_slice(&copy_data(&bytes));
                }
                if done {
                    out.to_client.extend_from_slice(frame.bytes());
                    self.copy.output = None;
                }
            }
            Err(CopyError::Value(ValueError::UnknownVersion { .. })) if self.stall.may_retry() => {
                self.stall.hold(frame.clone());
            }
            Err(e) => {
                let err = PgError::from(&flow.error(e));
                tracing::warn!(sqlstate = err.code, "COPY TO: value withheld");
                self.copy.output = None;
                self.fail_result(err, out);
            }
        }
        true
    }
}
