//! Sans-IO PostgreSQL v3 wire protocol: framing ([`frame`]), message tags ([`tags`]), the typed
//! messages the proxy itself reads or writes ([`startup`], [`backend`], [`frontend`]) and the
//! SQLSTATE catalogue with the single error → `ErrorResponse` mapping ([`sqlstate`]); the COPY
//! messages pgcloak writes ([`copy`]).
//!
//! Everything here takes bytes and returns values; no sockets, no tokio. Messages the proxy does
//! not need to understand are never decoded: the session forwards their raw [`Frame`]s.
//! Issue 4 adds the extended-protocol messages it rewrites (Parse, Bind, Describe,
//! RowDescription, DataRow, ParameterDescription) as new modules beside [`frontend`] and
//! [`backend`].

pub mod backend;
pub mod copy;
pub mod extended;
pub mod frame;
pub mod frontend;
pub mod sqlstate;
pub mod startup;
pub mod tags;
mod wire;

pub use frame::{Frame, FrameError, MAX_FRAME_LEN, MAX_STARTUP_LEN, split_frame, split_startup};
pub use sqlstate::{PgError, Severity};
pub use tags::{BackendTag, FrontendTag};
pub use wire::DecodeError;
