//! Work a session hands to its relay loop to await outside the synchronous handlers (a catalog
//! refresh after DDL, a key reload when a stored value names a key version the ring lacks),
//! and the once-per-frame retry of a backend frame held for a key reload.

use crate::control::encryption::Refresh;
use crate::protocol::Frame;

/// Work a session must await outside its synchronous handlers.
#[derive(Debug)]
pub enum AsyncWork {
    /// DDL completed: reload the catalog (and clear the plan cache if it changed).
    RefreshCatalog,
    /// A stored value named a key version the ring lacks: reload keys, then handle the held
    /// backend frame again.
    ReloadKeys(Frame),
}

impl AsyncWork {
    /// What the shared service reloads for it.
    pub fn refresh(&self) -> Refresh {
        match self {
            AsyncWork::RefreshCatalog => Refresh::Catalog,
            AsyncWork::ReloadKeys(_) => Refresh::Keys,
        }
    }
}

/// The work queued for the relay, and whether the frame being handled is a retry. After
/// [`Stall::take_work`] the work is gone while `retrying` holds until the retried frame is
/// handled (a catalog refresh may be queued meanwhile).
#[derive(Debug, Default)]
pub(super) struct Stall {
    work: Option<AsyncWork>,
    /// A key reload was already tried for the frame being retried.
    retrying: bool,
}

impl Stall {
    /// The work to await, taken.
    #[inline]
    pub fn take_work(&mut self) -> Option<AsyncWork> {
        self.work.take()
    }

    /// True while a backend frame is held for a key reload.
    #[inline]
    pub fn stalled(&self) -> bool {
        matches!(self.work, Some(AsyncWork::ReloadKeys(_)))
    }

    /// True when a frame naming an unknown key version may still be held for a reload (a
    /// retried frame is not held again).
    #[inline]
    pub fn may_retry(&self) -> bool {
        !self.retrying
    }

    /// Holds `frame` until keys are reloaded (once per frame).
    pub fn hold(&mut self, frame: Frame) {
        self.retrying = true;
        self.work = Some(AsyncWork::ReloadKeys(frame));
    }

    /// The frame was handled (decrypted, or its result failed).
    #[inline]
    pub fn done(&mut self) {
        self.retrying = false;
    }

    /// DDL ran: refresh the catalog, unless other work is queued already.
    pub fn refresh_catalog(&mut self) {
        if self.work.is_none() {
            self.work = Some(AsyncWork::RefreshCatalog);
        }
    }
}
