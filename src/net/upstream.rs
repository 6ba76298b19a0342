//! The upstream leg: TCP (nodelay, connect timeout) → SSLRequest → the server must answer `S`
//! → TLS verified as configured. Also sends CancelRequests for the cancel registry.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::UpstreamStream;
use super::tls::{TlsError, client_config, upstream_server_name};
use crate::config;
use crate::protocol::startup::{CancelKey, cancel_request, ssl_request};

/// Why the upstream connection could not be made. The log gets the whole error; the client
/// gets [`UpstreamError::pg_error`].
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to upstream {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("upstream {addr} did not answer within {secs} s")]
    Timeout { addr: String, secs: u64 },
    #[error("upstream {addr} refused TLS (answered the SSLRequest with N)")]
    TlsRefused { addr: String },
    #[error(
        "upstream {addr} answered the SSLRequest with byte {byte:#04x}, not a PostgreSQL server?"
    )]
    NotPostgres { addr: String, byte: u8 },
    #[error("TLS with upstream {addr} failed: {source}")]
    Handshake {
        addr: String,
        source: std::io::Error,
    },
}

/// Connects to the configured upstream. Built once; cheap to share.
#[derive(Clone)]
pub struct UpstreamConnector {
    host: String,
    port: u16,
    timeout: Duration,
    tls: TlsConnector,
    server_name: ServerName<'static>,
}

impl UpstreamConnector {
    pub fn new(cfg: &config::file::Upstream) -> Result<Self, TlsError> {
        Ok(UpstreamConnector {
            host: cfg.host.clone(),
            port: cfg.port,
            timeout: Duration::from_secs(cfg.connect_timeout_secs.max(1)),
            tls: TlsConnector::from(Arc::new(client_config(cfg)?)),
            server_name: upstream_server_name(cfg)?,
        })
    }

    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// TCP → SSLRequest → `S` → verified TLS, all within the connect timeout.
    pub async fn connect(&self) -> Result<UpstreamStream, UpstreamError> {
        let secs = self.timeout.as_secs();
        match tokio::time::timeout(self.timeout, self.connect_inner()).await {
            Ok(r) => r,
            Err(_) => Err(UpstreamError::Timeout {
                addr: self.addr(),
                secs,
            }),
        }
    }

    async fn connect_inner(&self) -> Result<UpstreamStream, UpstreamError> {
        let addr = self.addr();
        let io_err = |source| UpstreamError::Connect {
            addr: addr.clone(),
            source,
        };
        let mut tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(io_err)?;
        tcp.set_nodelay(true).map_err(io_err)?;
        tcp.write_all(&ssl_request()).await.map_err(io_err)?;
        // Read exactly one byte: nothing may be buffered from before the handshake.
        let answer = tcp.read_u8().await.map_err(io_err)?;
        match answer {
            b'S' => {}
            b'N' => return Err(UpstreamError::TlsRefused { addr }),
            byte => return Err(UpstreamError::NotPostgres { addr, byte }),
        }
        self.tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|source| UpstreamError::Handshake { addr, source })
    }

    /// Opens a new TLS connection and sends a CancelRequest for `key` (the upstream backend's
    /// real key); PostgreSQL answers nothing and closes.
    pub async fn cancel(&self, key: &CancelKey) -> Result<(), UpstreamError> {
        let mut s = self.connect().await?;
        let addr = self.addr();
        let io_err = |source| UpstreamError::Connect {
            addr: addr.clone(),
            source,
        };
        s.write_all(&cancel_request(key)).await.map_err(io_err)?;
        s.flush().await.map_err(io_err)?;
        let mut sink = [0u8; 64];
        // Wait (bounded) for the server to close, so the request is processed before we go.
        let _ = tokio::time::timeout(self.timeout, s.read(&mut sink)).await;
        Ok(())
    }
}

/// The upstream's leaf certificate (DER), for SCRAM-SHA-256-PLUS channel binding.
pub fn peer_cert_der(stream: &UpstreamStream) -> Option<Vec<u8>> {
    let (_, conn) = stream.get_ref();
    conn.peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
}
