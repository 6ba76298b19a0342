//! Server → client: every response is matched to the request it answers through the expect
//! FIFO. ParameterDescription and RowDescription show logical types for encrypted columns
//! (mapped by table OID + attnum through the catalog); DataRows of results with encrypted
//! columns are decrypted into the client's format, other rows go out raw. A value that fails
//! to decrypt is never forwarded: the client gets `XX001` and the rest of that result is
//! dropped up to ReadyForQuery.

use std::borrow::Cow;
use std::sync::Arc;

use super::handlers::Outputs;
use super::pipeline::{Expect, Pipeline};
use super::results::Rows;
use super::state::{SessionCrypto, Shape};
use crate::apply::values::{ValueError, decrypt_cell};
use crate::config::ColumnRule;
use crate::error::EngineError;
use crate::error::SessionError;
use crate::protocol::PgError;
use crate::protocol::backend::{TxStatus, ready_for_query};
use crate::protocol::extended::{
    data_row, decode_data_row, decode_parameter_description, decode_row_description, format_of,
    parameter_description, row_description,
};
use crate::protocol::{BackendTag, DecodeError, Frame};

fn proto(e: DecodeError) -> SessionError {
    SessionError::UpstreamDecode(e)
}

impl SessionCrypto {
    /// A message from the server other than ReadyForQuery and BackendKeyData (which
    /// [`super::Handlers`] handles).
    pub(super) fn backend(
        &mut self,
        frame: Frame,
        out: &mut Outputs<'_>,
        pipe: &mut Pipeline,
    ) -> Result<(), SessionError> {
        let tag = BackendTag::from(frame.tag());
        match tag {
            BackendTag::ParameterStatus => self.note_parameter(&frame),
            BackendTag::NoticeResponse => {
                if let Some(redacted) = super::redact::redact_message(&frame) {
                    out.to_client.extend_from_slice(&redacted);
                    return Ok(());
                }
            }
            BackendTag::NotificationResponse => {}
            _ if matches!(pipe.front(), Some(Expect::SearchPath)) => {
                self.path.answer(&frame, &mut self.text);
                return Ok(());
            }
            _ if self.results.is_discarding() || matches!(pipe.front(), Some(Expect::Injected)) => {
                return Ok(());
            }
            BackendTag::ParseComplete | BackendTag::BindComplete | BackendTag::CloseComplete => {
                if let Some(
                    Expect::Parse { swallow: true }
                    | Expect::Bind { swallow: true }
                    | Expect::Close { swallow: true },
                ) = pipe.pop()
                {
                    return Ok(());
                }
            }
            BackendTag::ParameterDescription => return self.on_parameters(frame, out, pipe),
            BackendTag::RowDescription => return self.on_row_description(frame, out, pipe),
            BackendTag::NoData if self.describe_answered(Shape::Plain, pipe) => return Ok(()),
            BackendTag::DataRow => return self.on_data_row(frame, out, pipe),
            BackendTag::CommandComplete
            | BackendTag::EmptyQueryResponse
            | BackendTag::PortalSuspended => self.on_complete(pipe),
            BackendTag::CopyInResponse | BackendTag::CopyOutResponse
                if !self.on_copy_response(&frame, out, pipe) =>
            {
                return Ok(());
            }
            BackendTag::CopyData | BackendTag::CopyDone if self.server_copy(&frame, out) => {
                return Ok(());
            }
            BackendTag::ErrorResponse => {
                self.on_error(pipe);
                if let Some(e) = self.copy.server_error() {
                    out.to_client.extend_from_slice(&e.encode());
                    return Ok(());
                }
                if let Some(redacted) = super::redact::redact_message(&frame) {
                    out.to_client.extend_from_slice(&redacted);
                    return Ok(());
                }
            }
            _ => {}
        }
        out.to_client.extend_from_slice(frame.bytes());
        Ok(())
    }

    /// A ReadyForQuery with `status` (recorded in `pipe` already), which ended the request
    /// `ended` (popped from `pipe`).
    pub(super) fn on_ready(
        &mut self,
        frame: &Frame,
        status: TxStatus,
        ended: Option<Expect>,
        out: &mut Outputs<'_>,
        pipe: &mut Pipeline,
    ) {
        self.results.end();
        let ddl = match ended {
            Some(Expect::Injected) => return,
            Some(Expect::SearchPath) => {
                self.path.done(status);
                return;
            }
            Some(Expect::Query { ddl, .. }) => ddl,
            _ => false,
        };
        self.copy.drop_orphaned(!pipe.is_empty());
        if ddl {
            self.stall.refresh_catalog();
        }
        if self.results.take_discarding() && status == TxStatus::InTransaction {
            // The client was told of an error: its transaction must be failed too.
            self.results.abort_upstream();
            pipe.fail_transaction();
            out.to_client
                .extend_from_slice(&ready_for_query(TxStatus::Failed));
            return;
        }
        out.to_client.extend_from_slice(frame.bytes());
        self.path_at_ready(status, out.to_upstream, pipe);
    }

    /// Records a Describe's answer (`Shape::Plain` for NoData). True when it is swallowed.
    fn describe_answered(&mut self, shape: Shape, pipe: &mut Pipeline) -> bool {
        match pipe.front() {
            Some(Expect::DescribeStatement(s)) => {
                let _ = s.shape.set(shape);
            }
            Some(Expect::DescribePortal { portal, swallow }) => {
                let _ = portal.shape.set(shape);
                let swallow = *swallow;
                pipe.pop();
                return swallow;
            }
            Some(Expect::Query { .. }) => {
                self.results.set(match shape {
                    Shape::Plain => Rows::Plain,
                    Shape::Encrypted(cols) => Rows::Encrypted {
                        cols,
                        formats: Arc::from(Vec::new()),
                    },
                });
                return false;
            }
            _ => return false,
        }
        pipe.pop();
        false
    }

    fn on_parameters(
        &mut self,
        frame: Frame,
        out: &mut Outputs<'_>,
        pipe: &Pipeline,
    ) -> Result<(), SessionError> {
        let stmt = match pipe.front() {
            Some(Expect::DescribeStatement(s)) => Some(s.clone()),
            _ => None,
        };
        let plan = stmt.as_ref().and_then(|s| s.plan.clone());
        match (plan.filter(|p| p.rewrites_param_description()), stmt) {
            (Some(plan), Some(stmt)) => {
                let oids = decode_parameter_description(frame.body()).map_err(proto)?;
                let oids = plan.describe_params(oids, &stmt.declared, &stmt.matching);
                out.to_client
                    .extend_from_slice(&parameter_description(&oids));
            }
            _ => out.to_client.extend_from_slice(frame.bytes()),
        }
        Ok(())
    }

    fn on_row_description(
        &mut self,
        frame: Frame,
        out: &mut Outputs<'_>,
        pipe: &mut Pipeline,
    ) -> Result<(), SessionError> {
        let mut fields = decode_row_description(frame.body()).map_err(proto)?;
        let catalog = self.catalog.get();
        let cols: Vec<Option<Arc<ColumnRule>>> = fields
            .iter()
            .map(|f| catalog.rule(f.table_oid, f.attnum).cloned())
            .collect();
        if cols.iter().all(Option::is_none) {
            let swallow = self.describe_answered(Shape::Plain, pipe);
            if !swallow {
                out.to_client.extend_from_slice(frame.bytes());
            }
            return Ok(());
        }
        for (f, rule) in fields.iter_mut().zip(&cols) {
            if let Some(rule) = rule {
                f.type_oid = rule.ty.oid();
                f.typlen = rule.ty.typlen();
                f.typmod = -1;
            }
        }
        let formats: Arc<[i16]> = fields.iter().map(|f| f.format).collect();
        let rewritten = row_description(&fields);
        let is_query = matches!(pipe.front(), Some(Expect::Query { .. }));
        let swallow = self.describe_answered(Shape::Encrypted(cols.into()), pipe);
        if is_query {
            self.results.set_formats(formats);
        }
        if !swallow {
            out.to_client.extend_from_slice(&rewritten);
        }
        Ok(())
    }

    /// Determines the current result from the Execute at the front.
    fn resolve_current(&mut self, pipe: &Pipeline) {
        let Some(Expect::Execute(Some(portal))) = pipe.front() else {
            return;
        };
        self.results.set(match portal.shape() {
            None => Rows::Unknown,
            Some(Shape::Plain) => Rows::Plain,
            Some(Shape::Encrypted(cols)) => Rows::Encrypted {
                formats: (0..cols.len())
                    .map(|i| format_of(&portal.formats, i))
                    .collect(),
                cols: cols.clone(),
            },
        });
    }

    fn on_data_row(
        &mut self,
        frame: Frame,
        out: &mut Outputs<'_>,
        pipe: &Pipeline,
    ) -> Result<(), SessionError> {
        if matches!(self.results.rows(), Rows::Unknown) {
            self.resolve_current(pipe);
        }
        let (cols, formats) = match self.results.rows() {
            Rows::Plain => {
                out.to_client.extend_from_slice(frame.bytes());
                return Ok(());
            }
            // Never here: DataRows are dropped while discarding.
            Rows::Unknown | Rows::Discarding => {
                self.fail_result(PgError::from(&EngineError::UnknownColumns), out);
                return Ok(());
            }
            Rows::Encrypted { cols, formats } => (cols.clone(), formats.clone()),
        };
        let cells = decode_data_row(frame.body()).map_err(proto)?;
        let ring = Arc::clone(self.keys.get());
        let mut outcells: Vec<Option<Cow<'_, [u8]>>> = Vec::with_capacity(cells.len());
        for (i, cell) in cells.iter().enumerate() {
            let rule = cols.get(i).and_then(Option::as_ref);
            let (Some(rule), Some(v)) = (rule, cell) else {
                outcells.push(cell.map(Cow::Borrowed));
                continue;
            };
            let fmt = formats.get(i).copied().unwrap_or(0);
            match decrypt_cell(&ring, rule, v, fmt, fmt, &self.text) {
                Ok(plain) => outcells.push(Some(Cow::Owned(plain))),
                Err(ValueError::UnknownVersion { .. }) if self.stall.may_retry() => {
                    self.stall.hold(frame.clone());
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "decryption failed; result withheld");
                    self.fail_result(PgError::from(&e), out);
                    return Ok(());
                }
            }
        }
        self.stall.done();
        out.to_client.extend_from_slice(&data_row(&outcells));
        Ok(())
    }

    /// Sends `e` in place of the rest of the current result; drops everything up to
    /// ReadyForQuery.
    pub(super) fn fail_result(&mut self, e: PgError, out: &mut Outputs<'_>) {
        out.to_client.extend_from_slice(&e.encode());
        self.results.discard();
        self.stall.done();
    }

    fn on_complete(&mut self, pipe: &mut Pipeline) {
        self.results.end();
        if let Some(Expect::Execute(portal)) = pipe.front() {
            if portal.as_ref().is_some_and(|p| p.statement.ddl) {
                self.stall.refresh_catalog();
            }
            pipe.pop();
        }
    }

    fn on_error(&mut self, pipe: &mut Pipeline) {
        self.results.end();
        // Extended protocol: the server skips everything up to the next Sync.
        while let Some(e) = pipe.front() {
            if e.ends_at_ready() {
                break;
            }
            pipe.pop();
        }
    }
}
