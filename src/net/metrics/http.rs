//! The HTTP endpoint on `[metrics] address` (hyper 1, HTTP/1.1): `GET /metrics` (Prometheus
//! text format), `GET /healthz` (the process is alive: always 200) and `GET /readyz` (200
//! when listening with every rules database's key ring loaded, its control connection
//! healthy and its last poll recent; else 503 with the reasons, one a line; a ready proxy
//! with pending columns says `ready, degraded:` and names them). Anything else is a 404.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::debug;

use super::Instance;

/// Time a client has to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

struct State {
    registry: Registry,
    instance: Arc<Instance>,
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

const PLAIN: &str = "text/plain; charset=utf-8";

fn respond(state: &State, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, PLAIN, "GET only\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            let mut body = String::with_capacity(8192);
            match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
                Ok(()) => text(
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    body,
                ),
                Err(_) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    PLAIN,
                    "encoding failed\n".into(),
                ),
            }
        }
        "/healthz" => text(StatusCode::OK, PLAIN, "ok\n".into()),
        "/readyz" => {
            let why = state.instance.not_ready();
            let degraded = state.instance.degraded();
            if why.is_empty() && degraded.is_empty() {
                text(StatusCode::OK, PLAIN, "ready\n".into())
            } else if why.is_empty() {
                let body = format!("ready, degraded:\n{}\n", degraded.join("\n"));
                text(StatusCode::OK, PLAIN, body)
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    PLAIN,
                    format!("not ready:\n{}\n", why.join("\n")),
                )
            }
        }
        _ => text(StatusCode::NOT_FOUND, PLAIN, "not found\n".into()),
    }
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, instance: Arc<Instance>) {
    let state = Arc::new(State {
        registry: super::registry(Arc::clone(&instance)),
        instance,
    });
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                debug!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let r = respond(&state, &req);
                async move { Ok::<_, Infallible>(r) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service);
            if let Err(e) = conn.await {
                debug!(error = %e, "metrics connection ended");
            }
        });
    }
}
