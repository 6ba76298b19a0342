//! Session workers: one single-threaded tokio runtime per core, each on its own OS thread. A
//! session runs wholly on one worker (its task, both sockets and its timers are registered with
//! that worker's reactor), so a round trip through the proxy wakes no other thread. Under the
//! multi-thread scheduler, the thread that saw a socket become readable was often not the one
//! that ran the session, and those cross-thread wakeups (futex, scheduler bookkeeping) were the
//! largest cost left in a `pgbench -S` profile.

use std::num::NonZeroUsize;

use tokio::net::TcpStream;
use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// The running workers; dropping this stops them (their remaining tasks are dropped).
pub struct Workers {
    handles: Vec<Handle>,
    stops: Vec<oneshot::Sender<()>>,
    next: usize,
}

impl Workers {
    /// One worker per available core.
    pub fn start() -> std::io::Result<Self> {
        let n = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        Self::with(n)
    }

    /// `n` workers (at least one).
    pub fn with(n: usize) -> std::io::Result<Self> {
        let mut w = Workers {
            handles: Vec::with_capacity(n),
            stops: Vec::with_capacity(n),
            next: 0,
        };
        for i in 0..n.max(1) {
            let rt = Builder::new_current_thread().enable_all().build()?;
            let (tx, rx) = oneshot::channel::<()>();
            w.handles.push(rt.handle().clone());
            w.stops.push(tx);
            std::thread::Builder::new()
                .name(format!("pgcloak-worker-{i}"))
                .spawn(move || {
                    rt.block_on(async {
                        let _ = rx.await;
                    });
                })?;
        }
        Ok(w)
    }

    /// The worker for the next session (round robin).
    pub fn pick(&mut self) -> &Handle {
        let i = self.next % self.handles.len();
        self.next = self.next.wrapping_add(1);
        &self.handles[i]
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for tx in self.stops.drain(..) {
            let _ = tx.send(());
        }
    }
}

/// Moves an accepted connection to the reactor of the runtime this is awaited on.
pub fn adopt(std_tcp: std::net::TcpStream) -> std::io::Result<TcpStream> {
    TcpStream::from_std(std_tcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_run_on_the_workers_round_robin() {
        let rt = Builder::new_current_thread().enable_all().build().unwrap();
        let mut w = Workers::with(2).unwrap();
        let names: Vec<String> = rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..4 {
                set.spawn_on(
                    async { std::thread::current().name().unwrap_or("").to_owned() },
                    w.pick(),
                );
            }
            let mut out = Vec::new();
            while let Some(r) = set.join_next().await {
                out.push(r.unwrap());
            }
            out
        });
        for i in 0..2 {
            let name = format!("pgcloak-worker-{i}");
            assert_eq!(names.iter().filter(|n| **n == name).count(), 2, "{names:?}");
        }
    }
}
