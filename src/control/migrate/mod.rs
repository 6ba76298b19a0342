//! `pgcloak migrate encrypt|decrypt|status` (spec §1): bring an existing plaintext column under
//! its rule online, or back.
//!
//! The mechanism, all state in the database (schema `pgcloak`, [`state`]):
//! 1. [`plan`] inspects the table and refuses up front what cannot be carried over (no primary
//!    key, the column in it, foreign keys, views, generated columns, partitions, statistics,
//!    policies, CHECKs, defaults, multi-column or expression indexes, a UNIQUE/PK on a
//!    randomized rule).
//! 2. A shadow column `column$pgcloak` (`bytea`; the plaintext type for `decrypt`) and a
//!    trigger that records the primary key of every row whose column is written into
//!    `pgcloak.migrate_queue` (the database cannot encrypt). Writes through the proxy keep going
//!    to the plaintext column: a rules column that is not `bytea` is *pending* and served as
//!    plain, while reads of the shadow are already decrypted (control/catalog.rs).
//! 3. [`backfill`]: batches in primary-key order, each its own short transaction that also
//!    records the last key (resumable after `kill -9`), then the queue is drained.
//! 4. Indexes the column had are built on the shadow `CONCURRENTLY` (deterministic rules).
//! 5. [`verify`]: in one snapshot, every row not waiting in the queue has a shadow that decrypts
//!    to its plaintext (count and checksum compared, nothing written).
//! 6. [`switch`]: one short transaction under `lock_timeout` (retried): lock, drain the last
//!    queue entries, drop the plaintext column, rename the shadow, attach its indexes as the
//!    old constraints, add a guard trigger that refuses any non-envelope value (a statement
//!    planned by a proxy before the switch cannot store plaintext), drop the capture trigger.
//!    Proxies see new attnums at their next catalog poll; until then they already decrypt the
//!    renamed shadow.
//! 7. `NOT NULL` is re-established without a long lock (a `NOT VALID` check, validated, then
//!    `SET NOT NULL`), and the stored values are verified again.

pub mod backfill;
pub mod ddl;
pub mod plan;
pub mod progress;
pub mod run;
pub mod state;
pub mod switch;
pub mod verify;

pub use plan::{Direction, Plan};
pub use run::{Options, Outcome, migrate, migrate_together};
pub use state::{MigrationRow, status};

use crate::codec::CodecError;
use crate::crypto::CryptoError;

/// A migration problem. Messages name the column and what to do; never a value.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{column}: database error: {}", db_text(.source))]
    Db {
        column: String,
        source: tokio_postgres::Error,
    },
    #[error("{column}: {reason}")]
    Refused { column: String, reason: String },
    #[error(
        "{column}: the value in the row with key ({key}) is not a valid {ty} ({detail}); nothing \
         was stored for it: fix that row and run the command again (it resumes)"
    )]
    Value {
        column: String,
        key: String,
        ty: &'static str,
        detail: String,
    },
    #[error(
        "{column}: a stored value in the row with key ({key}) does not decrypt with the column's \
         data key; fix or delete that row and run the command again"
    )]
    Undecryptable { column: String, key: String },
    #[error("{column}: verification failed: {detail}")]
    Verify { column: String, detail: String },
    #[error("{column}: {0}", column = .1)]
    Crypto(CryptoError, String),
    #[error(
        "{column}: could not take the table lock within lock_timeout after {tries} tries (long \
         transactions on the table?); run the command again"
    )]
    LockTimeout { column: String, tries: u32 },
}

impl MigrateError {
    pub(crate) fn db(column: &str) -> impl FnOnce(tokio_postgres::Error) -> Self + '_ {
        move |source| MigrateError::Db {
            column: column.to_owned(),
            source,
        }
    }

    pub(crate) fn refused(column: &str, reason: impl Into<String>) -> Self {
        MigrateError::Refused {
            column: column.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The server's code and message (its DETAIL, which may quote values, is left out).
fn db_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// Codec messages may quote the value: only the redacted form is kept.
pub(crate) fn codec_detail(e: &CodecError) -> String {
    e.redacted().to_owned()
}

/// A quoted SQL identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
