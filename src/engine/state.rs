//! The per-session encryption state: prepared statements and portals the client created (with
//! their plans and result shapes), the session's text settings, and the sub-states of results,
//! COPY streams, the search_path and awaited work. The FIFO of responses expected from the
//! server is the session's [`super::pipeline::Pipeline`].

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::codec::TextContext;
use crate::config::ColumnRule;
use crate::control::catalog::CatalogReader;
use crate::crypto::KeyRingView;
use crate::protocol::backend::decode_parameter_status;
use crate::protocol::{BackendTag, Frame, MAX_FRAME_LEN, split_frame};
use crate::rewrite::Plan;

use super::copy::CopyState;
use super::results::ResultState;
use super::search_path::PathTracker;
use super::stall::{AsyncWork, Stall};
use crate::apply::matching::MatchParams;
use crate::control::encryption::Encryption;

/// Which result columns are encrypted, once a Describe (or a query's RowDescription) told it.
#[derive(Debug, Clone)]
pub enum Shape {
    /// No column of the result is encrypted (or the statement returns no rows).
    Plain,
    /// The rule of each result column (`None`: that column is not encrypted).
    Encrypted(Arc<[Option<Arc<ColumnRule>>]>),
}

/// A prepared statement as the client named it.
#[derive(Debug, Default)]
pub struct Statement {
    /// The plan for its parameters (`None`: nothing to encrypt).
    pub plan: Option<Arc<Plan>>,
    /// Its result shape, once a Describe of the statement answered.
    pub shape: OnceLock<Shape>,
    /// DDL: refresh the catalog after it runs.
    pub ddl: bool,
    /// The parameter type OIDs the client declared in Parse (0 = unspecified).
    pub declared: Vec<u32>,
    /// Extra parameters for comparisons on deterministic columns (see `matching`).
    pub matching: MatchParams,
    /// Its text may change the search_path: each Execute of it makes the path stale (it
    /// changes when the statement runs, not when it is parsed).
    pub changes_path: bool,
}

/// A portal as the client named it.
#[derive(Debug)]
pub struct Portal {
    pub statement: Arc<Statement>,
    /// Result format codes from Bind.
    pub formats: Vec<i16>,
    /// Its result shape, once a Describe of the portal answered.
    pub shape: OnceLock<Shape>,
}

impl Portal {
    /// The result shape if known (from Describe P, else from Describe S).
    pub fn shape(&self) -> Option<&Shape> {
        self.shape.get().or_else(|| self.statement.shape.get())
    }
}

/// A session's encryption state (see the module docs of `engine`).
pub struct SessionCrypto {
    pub(super) enc: Arc<Encryption>,
    pub(super) keys: KeyRingView,
    pub(super) catalog: CatalogReader,
    pub(super) text: TextContext,
    /// The session's search_path (see `search_path`).
    pub(super) path: PathTracker,
    pub(super) statements: HashMap<String, Arc<Statement>>,
    /// SQL-level prepared statements by name: true while every `PREPARE` of the name was
    /// passed unchanged (its parameters reach no encrypted column), false once one was not.
    pub(super) sql_prepared: HashMap<String, bool>,
    pub(super) portals: HashMap<String, Arc<Portal>>,
    /// The result whose rows are arriving.
    pub(super) results: ResultState,
    /// Work for the relay to await, and the retry of a held frame.
    pub(super) stall: Stall,
    /// The COPY streams (see `copy`).
    pub(super) copy: CopyState,
}

impl std::fmt::Debug for SessionCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCrypto")
            .field("statements", &self.statements.len())
            .field("portals", &self.portals.len())
            .finish_non_exhaustive()
    }
}

impl SessionCrypto {
    pub fn new(enc: Arc<Encryption>) -> Self {
        SessionCrypto {
            keys: enc.keys.view(),
            catalog: enc.catalog.reader(),
            enc,
            text: TextContext::default(),
            path: PathTracker::default(),
            statements: HashMap::new(),
            sql_prepared: HashMap::new(),
            portals: HashMap::new(),
            results: ResultState::default(),
            stall: Stall::default(),
            copy: CopyState::default(),
        }
    }

    /// The server's greeting as relayed to the client at login: its ParameterStatus messages
    /// (TimeZone, DateStyle, client_encoding, … as set by startup parameters) shape how values
    /// are read and written, like every later ParameterStatus.
    pub fn greeting(&mut self, bytes: &[u8]) {
        let mut buf = bytes::BytesMut::from(bytes);
        while let Ok(Some(f)) = split_frame(&mut buf, MAX_FRAME_LEN) {
            if BackendTag::from(f.tag()) == BackendTag::ParameterStatus {
                self.note_parameter(&f);
            }
        }
    }

    /// A ParameterStatus from the server: the codecs follow TimeZone, DateStyle, … .
    pub(super) fn note_parameter(&mut self, frame: &Frame) {
        if let Ok((name, value)) = decode_parameter_status(frame.body()) {
            self.text.set_parameter(name, value);
        }
    }

    /// The shared encryption state.
    pub fn encryption(&self) -> &Arc<Encryption> {
        &self.enc
    }

    /// Work the relay must await before handling more client input (catalog refresh), or
    /// before handling the held backend frame again (key reload).
    pub fn take_work(&mut self) -> Option<AsyncWork> {
        self.stall.take_work()
    }

    /// True while a backend frame is held for a key reload (stop handling upstream input).
    pub fn stalled(&self) -> bool {
        self.stall.stalled()
    }

    /// Statement by name, when the client prepared it through this session.
    pub(super) fn statement(&self, name: &str) -> Option<Arc<Statement>> {
        self.statements.get(name).cloned()
    }
}
