//! Port-forward over a SPDY/3.1 session, upgraded directly or tunnelled through a WebSocket.
//!
//! As the kubelet's `httpStreamHandler`: streams are paired by their `requestID` header (for
//! clients that send none, by stream id: an error stream's id, a data stream's id minus 2);
//! once a pair has both its `error` and `data` streams, the connection to the `port` header's
//! port is made and both streams are closed when it ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use localfargate_registry::objects::KubeError;
use tokio::sync::watch;

use super::{Forwarder, Inbound, Outbound, PROTOCOL, pump};
use crate::response::error_response;
use crate::spdy::{self, Connection, Stream, StreamReader, StreamWriter};

const PROTOCOL_HEADER: &str = "x-stream-protocol-version";
const ACCEPTED_HEADER: &str = "x-accepted-stream-protocol-versions";

/// How long to wait, after the session, for the client to close the connection.
const LINGER: Duration = Duration::from_secs(1);

/// The kubelet's handshake: the client must offer `portforward.k8s.io`.
pub(super) fn negotiate<'a>(offered: impl Iterator<Item = &'a str>) -> Result<(), KubeError> {
    let offered: Vec<&str> = offered
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if offered.is_empty() {
        return Err(KubeError::BadRequest(
            "unable to upgrade: X-Stream-Protocol-Version is required".into(),
        ));
    }
    if offered.contains(&PROTOCOL) {
        return Ok(());
    }
    Err(KubeError::Forbidden(format!(
        "unable to upgrade: unable to negotiate protocol: client supports [{}], server accepts \
         [{PROTOCOL}]",
        offered.join(" ")
    )))
}

/// The refusal of a negotiation, naming what the server accepts.
pub(super) fn refusal(e: &KubeError) -> Response {
    let mut response = error_response(e);
    if matches!(e, KubeError::Forbidden(_)) {
        response
            .headers_mut()
            .append(ACCEPTED_HEADER, HeaderValue::from_static(PROTOCOL));
    }
    response
}

/// `Upgrade: SPDY/3.1`.
pub fn serve(forwarder: Arc<Forwarder>, request: Request) -> Response {
    let offered = request
        .headers()
        .get_all(PROTOCOL_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok());
    if let Err(e) = negotiate(offered) {
        return refusal(&e);
    }
    let mut headers = HeaderMap::new();
    headers.insert(PROTOCOL_HEADER, HeaderValue::from_static(PROTOCOL));
    spdy::upgrade(request, headers, move |conn| session(conn, forwarder)).into_response()
}

/// A connection's streams, as they come.
#[derive(Default)]
struct Pair {
    data: Option<Stream>,
    error: Option<Stream>,
}

/// Serves one session until the client closes it.
pub(super) async fn session(mut conn: Connection, forwarder: Arc<Forwarder>) {
    let (gone_tx, gone) = watch::channel(false);
    let mut pending: HashMap<String, Pair> = HashMap::new();
    while let Some(stream) = conn.accept().await {
        let kind = stream.headers.get("streamtype").unwrap_or("").to_string();
        let id = match stream.headers.get("requestid") {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => match kind.as_str() {
                "error" => stream.id.to_string(),
                _ => stream.id.saturating_sub(2).to_string(),
            },
        };
        let pair = pending.entry(id.clone()).or_default();
        let problem = match kind.as_str() {
            "error" if pair.error.is_some() => Some("error stream already assigned".to_string()),
            "data" if pair.data.is_some() => Some("data stream already assigned".to_string()),
            "error" => {
                pair.error = Some(stream);
                None
            }
            "data" => {
                pair.data = Some(stream);
                None
            }
            other => Some(format!("unexpected stream type: {other:?}")),
        };
        if let Some(problem) = problem {
            if let Some(error) = &pair.error {
                let message = format!("error processing stream for request {id}: {problem}");
                let _ = error.writer.write(message.as_bytes()).await;
            }
            continue;
        }
        if pair.data.is_some()
            && pair.error.is_some()
            && let Some(Pair {
                data: Some(data),
                error: Some(error),
            }) = pending.remove(&id)
        {
            tokio::spawn(forward(Arc::clone(&forwarder), data, error, gone.clone()));
        }
    }
    let _ = gone_tx.send(true);
    conn.close(LINGER).await;
}

/// One forwarded connection: the pod's port over the data stream, a failure on the error
/// stream; both closed at the end.
async fn forward(
    forwarder: Arc<Forwarder>,
    data: Stream,
    error: Stream,
    gone: watch::Receiver<bool>,
) {
    let port_header = data.headers.get("port").unwrap_or("").to_string();
    tracing::debug!(port = %port_header, data = data.id, error = error.id, "port-forward connection");
    match port_header.parse::<u16>() {
        Ok(port) if port > 0 => match forwarder.connect(port).await {
            Ok(stream) => {
                let writer = data.writer.clone();
                pump(stream, SpdyIn(data.reader), SpdyOut(writer), gone).await;
            }
            Err(message) => {
                let _ = error.writer.write(message.as_bytes()).await;
            }
        },
        _ => {
            let message = forwarder.failure(&port_header, &format!("invalid port {port_header:?}"));
            let _ = error.writer.write(message.as_bytes()).await;
        }
    }
    let _ = data.writer.finish().await;
    let _ = error.writer.finish().await;
}

struct SpdyIn(StreamReader);

impl Inbound for SpdyIn {
    async fn recv(&mut self) -> Option<Vec<u8>> {
        self.0.recv().await
    }
}

struct SpdyOut(StreamWriter);

impl Outbound for SpdyOut {
    async fn send(&mut self, data: Vec<u8>) -> bool {
        self.0.write(&data).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_is_the_kubelets() {
        assert!(negotiate(["portforward.k8s.io"].into_iter()).is_ok());
        assert!(negotiate(["v9.x, portforward.k8s.io"].into_iter()).is_ok());
        let none = negotiate(std::iter::empty()).unwrap_err();
        assert_eq!(none.code(), 400);
        let other = negotiate(["v4.channel.k8s.io"].into_iter()).unwrap_err();
        assert_eq!(other.code(), 403);
        assert_eq!(
            other.to_string(),
            "unable to upgrade: unable to negotiate protocol: client supports \
             [v4.channel.k8s.io], server accepts [portforward.k8s.io]"
        );
        let response = refusal(&other);
        assert_eq!(response.status(), 403);
        assert_eq!(
            response.headers().get(ACCEPTED_HEADER).unwrap(),
            "portforward.k8s.io"
        );
    }
}
