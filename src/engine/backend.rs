//! Server → client: every response is matched to the request it answers through the expect
//! FIFO. ParameterDescription and RowDescription show logical types for encrypted columns
//! (mapped by table OID + attnum through the catalog); DataRows of results with encrypted
//! columns are decrypted into the client's format, other rows go out raw. A value that fails
//! to decrypt is never forwarded: the client gets `XX001` and the rest of that result is
//! dropped up to ReadyForQuery.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

use super::handlers::{Outputs, Pending};
use super::results::Rows;
use super::state::{Expect, SessionCrypto, Shape};
use crate::apply::values::{ValueError, decrypt_cell};
use crate::config::ColumnRule;
use crate::error::EngineError;
use crate::error::SessionError;
use crate::protocol::PgError;
use crate::protocol::backend::{TxStatus, decode_ready_for_query, ready_for_query};
use crate::protocol::extended::{
    data_row, decode_data_row, decode_parameter_description, decode_row_description, format_of,
    parameter_description, row_description,
};
use crate::protocol::{BackendTag, DecodeError, Frame};

fn proto(e: DecodeError) -> SessionError {
    SessionError::UpstreamDecode(e)
}

impl SessionCrypto {
    /// A message from the server. Keeps the session's `pending` FIFO and transaction status
    /// as the plain relay does.
    pub fn backend(
        &mut self,
        frame: Frame,
        out: &mut Outputs<'_>,
        pending: &mut VecDeque<Pending>,
        tx: &mut TxStatus,
    ) -> Result<(), SessionError> {
        let tag = BackendTag::from(frame.tag);
        match tag {
            BackendTag::ReadyForQuery => return self.on_ready(&frame, out, pending, tx),
            BackendTag::BackendKeyData => return Ok(()),
            BackendTag::ParameterStatus => self.note_parameter(&frame),
            BackendTag::NoticeResponse => {
                if let Some(redacted) = super::redact::redact_message(&frame) {
                    out.to_client.extend_from_slice(&redacted);
                    return Ok(());
                }
            }
            BackendTag::NotificationResponse => {}
            _ if matches!(self.expect.front(), Some(Expect::SearchPath)) => {
                self.path.answer(&frame, &mut self.text);
                return Ok(());
            }
            _ if self.results.is_discarding() || matches!(self.expect.front(), Some(Expect::Injected)) => {
                return Ok(());
            }
            BackendTag::ParseComplete | BackendTag::BindComplete | BackendTag::CloseComplete => {
                if let Some(
                    Expect::Parse { swallow: true }
                    | Expect::Bind { swallow: true }
                    | Expect::Close { swallow: true },
                ) = self.expect.pop_front()
                {
                    return Ok(());
                }
            }
            BackendTag::ParameterDescription => return self.on_parameters(frame, out),
            BackendTag::RowDescription => return self.on_row_description(frame, out),
            BackendTag::NoData if self.describe_answered(Shape::Plain) => return Ok(()),
            BackendTag::DataRow => return self.on_data_row(frame, out),
            BackendTag::CommandComplete
            | BackendTag::EmptyQueryResponse
            | BackendTag::PortalSuspended => self.on_complete(),
            BackendTag::CopyInResponse | BackendTag::CopyOutResponse
                if !self.on_copy_response(&frame, out) =>
            {
                return Ok(());
            }
            BackendTag::CopyData | BackendTag::CopyDone if self.server_copy(&frame, out) => {
                return Ok(());
            }
            BackendTag::ErrorResponse => {
                self.on_error();
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
        out.to_client.extend_from_slice(&frame.bytes);
        Ok(())
    }

    fn on_ready(
        &mut self,
        frame: &Frame,
        out: &mut Outputs<'_>,
        pending: &mut VecDeque<Pending>,
        tx: &mut TxStatus,
    ) -> Result<(), SessionError> {
        let status = decode_ready_for_query(frame.body()).map_err(proto)?;
        *tx = status;
        self.results.end();
        let mut ddl = false;
        while let Some(e) = self.expect.pop_front() {
            match e {
                Expect::Injected => return Ok(()),
                Expect::SearchPath => {
                    self.path.done(status);
                    return Ok(());
                }
                Expect::Query { ddl: d, .. } => {
                    ddl = d;
                    break;
                }
                Expect::Sync => break,
                _ => {}
            }
        }
        pending.pop_front();
        self.copy.drop_orphaned(!self.expect.is_empty());
        if ddl {
            self.stall.refresh_catalog();
        }
        if self.results.take_discarding() && status == TxStatus::InTransaction {
            // The client was told of an error: its transaction must be failed too.
            self.results.abort_upstream();
            *tx = TxStatus::Failed;
            out.to_client
                .extend_from_slice(&ready_for_query(TxStatus::Failed));
            return Ok(());
        }
        out.to_client.extend_from_slice(&frame.bytes);
        self.path_at_ready(status, out.to_upstream);
        Ok(())
    }

    /// Records a Describe's answer (`Shape::Plain` for NoData). True when it is swallowed.
    fn describe_answered(&mut self, shape: Shape) -> bool {
        match self.expect.front() {
            Some(Expect::DescribeStatement(s)) => {
                let _ = s.shape.set(shape);
            }
            Some(Expect::DescribePortal { portal, swallow }) => {
                let _ = portal.shape.set(shape);
                let swallow = *swallow;
                self.expect.pop_front();
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
        self.expect.pop_front();
        false
    }

    fn on_parameters(&mut self, frame: Frame, out: &mut Outputs<'_>) -> Result<(), SessionError> {
        let stmt = match self.expect.front() {
            Some(Expect::DescribeStatement(s)) => Some(s.clone()),
            _ => None,
        };
        let plan = stmt.as_ref().and_then(|s| s.plan.clone());
        match (
            plan.filter(|p| p.params.iter().any(Option::is_some) || !p.matches.is_empty()),
            stmt,
        ) {
            (Some(plan), Some(stmt)) => {
                let mut oids = decode_parameter_description(frame.body()).map_err(proto)?;
                if !stmt.matching.extras.is_empty() {
                    // The extra parameters of comparisons are the proxy's own.
                    oids.truncate(stmt.matching.base);
                }
                for (i, (oid, rule)) in oids.iter_mut().zip(plan.params.iter()).enumerate() {
                    if let Some(rule) = rule {
                        // PostgreSQL echoes a declared type; the logical type fills in the rest.
                        *oid = match stmt.declared(i) {
                            0 if plan.is_array_param(i) => rule.ty.array_oid(),
                            0 => rule.ty.oid(),
                            d => d,
                        };
                    }
                }
                out.to_client
                    .extend_from_slice(&parameter_description(&oids));
            }
            _ => out.to_client.extend_from_slice(&frame.bytes),
        }
        Ok(())
    }

    fn on_row_description(
        &mut self,
        frame: Frame,
        out: &mut Outputs<'_>,
    ) -> Result<(), SessionError> {
        let mut fields = decode_row_description(frame.body()).map_err(proto)?;
        let catalog = self.catalog.get();
        let cols: Vec<Option<Arc<ColumnRule>>> = fields
            .iter()
            .map(|f| catalog.rule(f.table_oid, f.attnum).cloned())
            .collect();
        if cols.iter().all(Option::is_none) {
            let swallow = self.describe_answered(Shape::Plain);
            if !swallow {
                out.to_client.extend_from_slice(&frame.bytes);
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
        let is_query = matches!(self.expect.front(), Some(Expect::Query { .. }));
        let swallow = self.describe_answered(Shape::Encrypted(cols.into()));
        if is_query {
            self.results.set_formats(formats);
        }
        if !swallow {
            out.to_client.extend_from_slice(&rewritten);
        }
        Ok(())
    }

    /// Determines the current result from the Execute at the front.
    fn resolve_current(&mut self) {
        let Some(Expect::Execute(Some(portal))) = self.expect.front() else {
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

    fn on_data_row(&mut self, frame: Frame, out: &mut Outputs<'_>) -> Result<(), SessionError> {
        if matches!(self.results.rows(), Rows::Unknown) {
            self.resolve_current();
        }
        let (cols, formats) = match self.results.rows() {
            Rows::Plain => {
                out.to_client.extend_from_slice(&frame.bytes);
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

    fn on_complete(&mut self) {
        self.results.end();
        if let Some(Expect::Execute(portal)) = self.expect.front() {
            if portal.as_ref().is_some_and(|p| p.statement.ddl) {
                self.stall.refresh_catalog();
            }
            self.expect.pop_front();
        }
    }

    fn on_error(&mut self) {
        self.results.end();
        // Extended protocol: the server skips everything up to the next Sync.
        while let Some(e) = self.expect.front() {
            if matches!(e, Expect::Sync | Expect::Query { .. } | Expect::Injected) {
                break;
            }
            self.expect.pop_front();
        }
    }
}
