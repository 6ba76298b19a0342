//! Change notification between replicas: PostgreSQL `LISTEN/NOTIFY` on channel
//! [`CHANNEL`]. Every proxy keeps one listening control connection per rules database (beside
//! its shared one) and reloads its data keys and catalog as soon as a notification arrives;
//! the CLI's `keys` commands and a proxy whose catalog changed after DDL send one. The poll
//! stays as the fallback (a lost connection, a change made around pgcloak).

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{ControlError, connect_with};
use crate::config::Config;

/// The notification channel.
pub const CHANNEL: &str = "pgcloak";

/// What changed (the notification payload).
pub const KEYS: &str = "keys";
pub const CATALOG: &str = "catalog";

/// A listening control connection: notifications on [`CHANNEL`] arrive on `rx`; it closes
/// when the connection ends.
pub struct Listener {
    /// Kept so the connection stays open.
    pub client: tokio_postgres::Client,
    pub rx: mpsc::UnboundedReceiver<String>,
}

/// Opens a control connection to `database` that LISTENs on [`CHANNEL`].
pub async fn listen(cfg: &Config, password: &str, database: &str) -> Result<Listener, ListenError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = connect_with(cfg, password, database, move |mut connection| async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    debug!(error = %e, "listening control connection ended");
                    return;
                }
            }
        }
    })
    .await?;
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(ListenError::Listen)?;
    Ok(Listener { client, rx })
}

/// Tells every replica that `what` ([`KEYS`], [`CATALOG`]) changed in the database `client`
/// is connected to. A failure is only logged: replicas still poll.
pub async fn notify(client: &tokio_postgres::Client, what: &str) {
    if let Err(e) = client
        .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &what])
        .await
    {
        warn!(error = %e, "could not notify other pgcloak replicas (they will poll)");
    }
}

/// The listening connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("LISTEN failed: {0}")]
    Listen(tokio_postgres::Error),
}
