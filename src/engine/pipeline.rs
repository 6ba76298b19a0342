//! The one FIFO of a session: every request sent upstream that owes responses, in order, so
//! each backend message is tied to the request it answers, and the transaction status the last
//! ReadyForQuery reported. The raw relay queues only what ends with a ReadyForQuery (Query,
//! Sync, FunctionCall); an encrypted session queues every extended-protocol step, and the
//! proxy's own requests.

use std::collections::VecDeque;
use std::sync::Arc;

use super::state::{Portal, Statement};
use crate::protocol::backend::TxStatus;
use crate::rewrite::CopyPlan;

/// A response the server owes, in order.
#[derive(Debug)]
pub enum Expect {
    /// ParseComplete (`swallow`: the proxy's own message).
    Parse {
        swallow: bool,
    },
    Bind {
        swallow: bool,
    },
    Close {
        swallow: bool,
    },
    /// ParameterDescription then RowDescription/NoData.
    DescribeStatement(Arc<Statement>),
    /// RowDescription/NoData.
    DescribePortal {
        portal: Arc<Portal>,
        swallow: bool,
    },
    /// DataRows, then CommandComplete/EmptyQueryResponse/PortalSuspended (or an error).
    Execute(Option<Arc<Portal>>),
    /// ReadyForQuery of a Sync.
    Sync,
    /// The result, then the ReadyForQuery, of a FunctionCall.
    FunctionCall,
    /// Everything up to a ReadyForQuery of a simple Query; `copies`: the COPY plans of its
    /// COPY statements still to answer, in order.
    Query {
        ddl: bool,
        copies: VecDeque<Option<Arc<CopyPlan>>>,
    },
    /// The proxy's own Query aborting the server's transaction: swallow all of it.
    Injected,
    /// The proxy's own search_path question (see `search_path`): swallowed.
    SearchPath,
}

impl Expect {
    /// A simple Query with nothing to track but its end.
    #[inline]
    pub fn query() -> Expect {
        Expect::Query {
            ddl: false,
            copies: VecDeque::new(),
        }
    }

    /// True for the requests a ReadyForQuery ends (an error skips up to one of them).
    #[inline]
    pub fn ends_at_ready(&self) -> bool {
        matches!(
            self,
            Expect::Sync
                | Expect::FunctionCall
                | Expect::Query { .. }
                | Expect::Injected
                | Expect::SearchPath
        )
    }
}

/// The session's FIFO of expected responses, and its transaction status.
#[derive(Debug)]
pub struct Pipeline {
    expect: VecDeque<Expect>,
    tx: TxStatus,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline {
            expect: VecDeque::with_capacity(16),
            tx: TxStatus::Idle,
        }
    }
}

impl Pipeline {
    /// A request went upstream.
    #[inline]
    pub fn push(&mut self, e: Expect) {
        self.expect.push_back(e);
    }

    /// The oldest response still owed.
    #[inline]
    pub fn front(&self) -> Option<&Expect> {
        self.expect.front()
    }

    #[inline]
    pub fn front_mut(&mut self) -> Option<&mut Expect> {
        self.expect.front_mut()
    }

    /// The oldest response arrived.
    #[inline]
    pub fn pop(&mut self) -> Option<Expect> {
        self.expect.pop_front()
    }

    /// True when the server owes nothing.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.expect.is_empty()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.expect.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Expect> {
        self.expect.iter()
    }

    /// A ReadyForQuery with `status`: records it, and pops every entry up to and including the
    /// request it ends (returned; `None` when nothing was owed).
    #[inline]
    pub fn ready(&mut self, status: TxStatus) -> Option<Expect> {
        self.tx = status;
        while let Some(e) = self.expect.pop_front() {
            if e.ends_at_ready() {
                return Some(e);
            }
        }
        None
    }

    /// The client was told its transaction failed (the server's is still open).
    pub fn fail_transaction(&mut self) {
        self.tx = TxStatus::Failed;
    }

    /// Between transactions with no request waiting for its ReadyForQuery.
    pub fn is_idle(&self) -> bool {
        self.tx == TxStatus::Idle && !self.expect.iter().any(Expect::ends_at_ready)
    }
}
