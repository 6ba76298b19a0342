//! One connection after login, sans-IO: frames in, bytes out. [`handlers::Handlers`] takes
//! each client and server frame, keeps the session's one FIFO of requests in flight and its
//! transaction status ([`pipeline`]), and appends what goes on to the other side's output
//! buffer; a session whose startup packet names a rules database also gets a [`SessionCrypto`]
//! ([`state`]) over that database's shared [`crate::control::encryption::Encryption`] service,
//! with sub-states for results ([`results`]) and awaited work ([`stall`]). Its frontend side
//! ([`frontend`], [`extended`]) encrypts literals and parameters and delivers refusals through
//! the server; its backend side ([`backend`]) maps RowDescriptions to rules and decrypts
//! DataRows; COPY on a rules table streams through [`copy`]; the session's search_path is
//! tracked by [`search_path`]; server messages quoting ciphertext are [`redact`]ed. The value
//! work is [`crate::apply`]'s. Nothing here does I/O or imports [`crate::session`].

mod backend;
mod copy;
mod extended;
mod frontend;
pub mod handlers;
mod pipeline;
mod redact;
mod results;
mod search_path;
mod stall;
mod state;

#[cfg(test)]
mod tests;

pub use handlers::{Flow, Handlers, Outputs};
pub use stall::AsyncWork;
pub use state::SessionCrypto;
