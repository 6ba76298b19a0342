//! Networking: TLS configurations ([`tls`]), the upstream connection ([`upstream`]: TCP →
//! SSLRequest → TLS, and cancel requests), the stream types sessions run on, and the
//! Prometheus endpoint ([`metrics`]), and the limits every session shares ([`limits`]).

pub mod limits;
pub mod metrics;
pub mod tls;
pub mod upstream;

use tokio::net::TcpStream;

/// The client leg after the TLS handshake (the proxy is the TLS server).
pub type ClientStream = tokio_rustls::server::TlsStream<TcpStream>;
/// The upstream leg after the TLS handshake (the proxy is the TLS client).
pub type UpstreamStream = tokio_rustls::client::TlsStream<TcpStream>;
