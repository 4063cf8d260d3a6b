//! SPDY/3.1, as far as Kubernetes' streaming endpoints use it: kubectl ≤ 1.29 runs `exec`,
//! `attach` (and `port-forward`) over an HTTP/1.1 connection upgraded to `SPDY/3.1`, with one
//! SPDY stream per channel. This module is the transport only (frames, compressed header
//! blocks, a session that accepts the client's streams); what the streams mean is up to the
//! protocol on top ([`crate::remotecommand`]).
//!
//! No kept crate serves SPDY: the one current Rust SPDY/3.1 crate (`spdy-mux`) is a client
//! that opens stream pairs over WebSocket transports.

mod connection;
mod dictionary;
mod frame;
mod headers;
#[cfg(test)]
pub(crate) mod testing;

pub use connection::{Connection, Stream, StreamReader, StreamWriter};
pub use frame::{Frame, RstStatus};
pub use headers::Headers;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;

/// The `Upgrade` token.
pub const SPDY_31: &str = "SPDY/3.1";

#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("SPDY protocol error: {0}")]
    Protocol(String),
    #[error("SPDY header compression: {0}")]
    Compression(String),
    #[error("the SPDY session is closed")]
    Closed,
}

/// Whether a request asks to upgrade to SPDY/3.1 (`Connection: Upgrade`, `Upgrade: SPDY/3.1`),
/// compared as Kubernetes does: case-insensitive substrings.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains(token))
        })
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, &SPDY_31.to_ascii_lowercase())
}

/// Answers `101 Switching Protocols` with `headers` added, and serves a SPDY session on the
/// connection once hyper hands it over. `on_session` runs in its own task.
pub fn upgrade<F, Fut>(mut request: Request, headers: HeaderMap, on_session: F) -> Response
where
    F: FnOnce(Connection) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => on_session(Connection::serve(TokioIo::new(upgraded))).await,
            Err(e) => tracing::debug!(error = %e, "SPDY upgrade failed"),
        }
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static(SPDY_31));
    for (name, value) in headers.iter() {
        h.append(name, value.clone());
    }
    response
}
