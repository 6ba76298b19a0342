//! A tiny Prometheus endpoint (`GET /metrics`, text format 0.0.4) on `[metrics] address`,
//! with tokio only. Counters are plain atomics updated at session boundaries, never per
//! message, so the relay's hot path touches nothing shared.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::debug;

/// Process-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    pub connections_total: AtomicU64,
    pub connections_active: AtomicU64,
    pub sessions_failed_total: AtomicU64,
    pub bytes_from_clients_total: AtomicU64,
    pub bytes_from_upstream_total: AtomicU64,
}

/// Counts one connection as active while alive.
pub struct ActiveGuard(Arc<Metrics>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.connections_active.fetch_sub(1, Relaxed);
    }
}

impl Metrics {
    /// A new connection was accepted.
    pub fn connection(self: &Arc<Self>) -> ActiveGuard {
        self.connections_total.fetch_add(1, Relaxed);
        self.connections_active.fetch_add(1, Relaxed);
        ActiveGuard(Arc::clone(self))
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let rows = [
            (
                "pgcloak_connections_total",
                "counter",
                "Client connections accepted.",
                &self.connections_total,
            ),
            (
                "pgcloak_connections_active",
                "gauge",
                "Client connections open now.",
                &self.connections_active,
            ),
            (
                "pgcloak_sessions_failed_total",
                "counter",
                "Connections that ended with an error.",
                &self.sessions_failed_total,
            ),
            (
                "pgcloak_client_bytes_total",
                "counter",
                "Bytes received from clients (relayed sessions, counted when they end).",
                &self.bytes_from_clients_total,
            ),
            (
                "pgcloak_upstream_bytes_total",
                "counter",
                "Bytes received from upstream (relayed sessions, counted when they end).",
                &self.bytes_from_upstream_total,
            ),
        ];
        let mut out = String::with_capacity(1024);
        for (name, kind, help, v) in rows {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}\n",
                v.load(Relaxed)
            ));
        }
        out
    }
}

/// Serves `/metrics` until the task is dropped. Anything else gets 404.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let mut req = [0u8; 1024];
            let read = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut req)).await;
            let Ok(Ok(n)) = read else { return };
            let response = if req[..n].starts_with(b"GET /metrics ") {
                let body = metrics.render();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
            };
            if let Err(e) = conn.write_all(response.as_bytes()).await {
                debug!(error = %e, "metrics response not sent");
            }
            let _ = conn.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_counters_over_http() {
        let m = Arc::new(Metrics::default());
        let g = m.connection();
        m.bytes_from_clients_total.fetch_add(42, Relaxed);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, Arc::clone(&m)));
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut body = String::new();
            s.read_to_string(&mut body).await.unwrap();
            body
        };
        let body = get("/metrics").await;
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(body.contains("\npgcloak_connections_total 1\n"), "{body}");
        assert!(body.contains("\npgcloak_connections_active 1\n"), "{body}");
        assert!(body.contains("\npgcloak_client_bytes_total 42\n"), "{body}");
        drop(g);
        assert!(
            get("/metrics")
                .await
                .contains("\npgcloak_connections_active 0\n")
        );
        assert!(get("/other").await.starts_with("HTTP/1.1 404"));
        server.abort();
    }
}
