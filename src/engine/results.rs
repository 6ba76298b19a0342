//! The state of the result whose rows are arriving from the server: whether its DataRows go
//! out raw, are decrypted with a known column map, or are dropped after a decrypt failure, and
//! whether the server's transaction must still be failed after such a failure.

use std::sync::Arc;

use crate::config::ColumnRule;

/// What the session does with the DataRows arriving.
#[derive(Debug, Clone)]
pub(super) enum Rows {
    /// Not yet determined.
    Unknown,
    /// No encrypted column: forward rows raw.
    Plain,
    /// Decrypt these columns; each column's format (the server sends what the client asked).
    Encrypted {
        cols: Arc<[Option<Arc<ColumnRule>>]>,
        formats: Arc<[i16]>,
    },
    /// After a decrypt failure: every backend message is dropped until ReadyForQuery.
    Discarding,
}

/// The rows state, and a pending abort of the server's transaction. The two are independent:
/// with pipelined Queries, the first one's decrypt failure leaves an abort pending (consumed
/// before the client's next message) while the next one's rows still decode.
#[derive(Debug)]
pub(super) struct ResultState {
    rows: Rows,
    /// Inject a raising Query before the client's next message (server still in a block).
    abort_pending: bool,
}

impl Default for ResultState {
    fn default() -> Self {
        ResultState {
            rows: Rows::Unknown,
            abort_pending: false,
        }
    }
}

impl ResultState {
    #[inline]
    pub fn rows(&self) -> &Rows {
        &self.rows
    }

    /// True after a decrypt failure, until ReadyForQuery.
    #[inline]
    pub fn is_discarding(&self) -> bool {
        matches!(self.rows, Rows::Discarding)
    }

    /// The rows of the arriving result are now known (never called while discarding).
    pub fn set(&mut self, rows: Rows) {
        debug_assert!(!self.is_discarding());
        self.rows = rows;
    }

    /// A RowDescription of a Query told the formats of the encrypted result being set up.
    pub fn set_formats(&mut self, formats: Arc<[i16]>) {
        if let Rows::Encrypted { cols, .. } = &self.rows {
            self.rows = Rows::Encrypted {
                cols: cols.clone(),
                formats,
            };
        }
    }

    /// A result ended: the next one's columns are not known yet. A discard goes on to
    /// ReadyForQuery.
    pub fn end(&mut self) {
        if !self.is_discarding() {
            self.rows = Rows::Unknown;
        }
    }

    /// A decrypt failure: drop the rest up to ReadyForQuery.
    pub fn discard(&mut self) {
        self.rows = Rows::Discarding;
    }

    /// At the ReadyForQuery the client is owed: ends a discard, and returns whether one ran.
    pub fn take_discarding(&mut self) -> bool {
        let rows = std::mem::replace(&mut self.rows, Rows::Unknown);
        matches!(rows, Rows::Discarding)
    }

    /// The client was told of an error inside a transaction: fail the server's transaction
    /// before the client's next message.
    pub fn abort_upstream(&mut self) {
        self.abort_pending = true;
    }

    #[inline]
    pub fn abort_pending(&self) -> bool {
        self.abort_pending
    }

    /// The pending abort, consumed.
    #[inline]
    pub fn take_abort(&mut self) -> bool {
        std::mem::take(&mut self.abort_pending)
    }
}
