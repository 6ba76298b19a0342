//! The watcher of one rules database's [`Encryption`]: polls its control login for new
//! data-key versions and catalog changes, and listens for other replicas' notifications.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::warn;

use super::{Encryption, EncryptionError};
use crate::control::keys::KeysError;

impl Encryption {
    /// Runs [`Encryption::reload_keys`] / [`Encryption::refresh_catalog`] every
    /// [`POLL_INTERVAL`], and at once when another replica or the CLI notifies a change
    /// (`LISTEN`, see [`crate::control::listen`]), until shutdown.
    pub fn spawn_watcher(self: &Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let enc = Arc::clone(self);
        tokio::spawn(async move {
            let every = Duration::from_secs(enc.control.config().control.poll_interval_secs.max(1));
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut failures, mut skip) = (0u32, 0u32);
            let mut listener = None;
            loop {
                // Retired by a reload and no session left: stop polling.
                if Arc::strong_count(&enc) == 1 {
                    return;
                }
                tokio::select! {
                    _ = tick.tick() => {}
                    n = next_notification(&mut listener) => {
                        if n.is_none() {
                            listener = None;
                            continue;
                        }
                    }
                    r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return },
                }
                if listener.is_none() {
                    listener = enc.control.listen().await.ok();
                }
                // After failed key loads (database or key provider down), polls back off:
                // 1, 2, 4 … up to 16 intervals are skipped; the loaded key ring keeps serving.
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                if enc.poll_once().await {
                    failures = 0;
                } else {
                    failures = failures.saturating_add(1);
                    skip = (1u32 << failures.min(5)) / 2;
                }
            }
        });
    }

    /// One poll: keys, then catalog; the outcome goes to [`Encryption::health`].
    async fn poll_once(&self) -> bool {
        if let Err(e) = self.reload_keys(false).await {
            warn!(database = %self.database, error = %e, "data key poll failed; keeping the loaded keys");
            if matches!(e, EncryptionError::Keys(KeysError::Provider(_))) {
                crate::net::metrics::provider_error(self.provider.kind().name());
            }
            self.health.failed(&e.to_string());
            self.control.reset().await;
            return false;
        }
        match self.refresh_catalog().await {
            Ok(_) => self.health.ok(),
            Err(e) => {
                warn!(database = %self.database, error = %e, "catalog poll failed");
                self.health.failed(&e.to_string());
            }
        }
        true
    }
}

/// The next notification of a listening connection; pending forever without one, `None`
/// when it closed.
async fn next_notification(l: &mut Option<crate::control::listen::Listener>) -> Option<String> {
    match l {
        Some(l) => l.rx.recv().await,
        None => std::future::pending().await,
    }
}
