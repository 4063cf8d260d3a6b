//! The SPDY/3.1 transport, what kubectl ≤ 1.29 uses (and 1.30+ falls back to).
//!
//! The client names the protocol versions it speaks in `X-Stream-Protocol-Version` headers;
//! the first one the server serves wins and is echoed in the `101` response. The client then
//! opens one stream per channel, each with a `streamType` header (`error`, `stdin`, `stdout`,
//! `stderr`, and `resize` with a terminal from v3 on), and the session starts once all have
//! come. The versions differ only in:
//!
//! * v1 `channel.k8s.io`, v2: no resize stream; the error stream carries the failure's message
//!   as text, nothing on success;
//! * v3: adds the resize stream (a sequence of `{"Width":W,"Height":H}` objects);
//! * v4: the error stream carries a `metav1.Status` as JSON, success included, with the exit
//!   code in a `NonZeroExitCode` status;
//! * v5 over SPDY is v4 (its close signal is WebSocket-only).

use std::collections::VecDeque;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use localfargate_registry::objects::KubeError;
use serde_json::Value;

use super::websocket::terminal_size;
use super::{Input, Outcome, Output, Session, Transport, drive};
use crate::request::Query;
use crate::response::error_response;
use crate::spdy::{self, Connection, StreamReader, StreamWriter};

const PROTOCOL_HEADER: &str = "x-stream-protocol-version";
const ACCEPTED_HEADER: &str = "x-accepted-stream-protocol-versions";

/// What this server speaks, preferred first (the kubelet's list).
const PROTOCOLS: [&str; 5] = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// How long the client has to open its streams (the kubelet's default).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait, after the end, for the client to close the connection.
const LINGER: Duration = Duration::from_secs(10);

/// The negotiated version's number (1–5).
fn version(protocol: &str) -> u8 {
    match protocol {
        "v5.channel.k8s.io" => 5,
        "v4.channel.k8s.io" => 4,
        "v3.channel.k8s.io" => 3,
        "v2.channel.k8s.io" => 2,
        _ => 1,
    }
}

/// The first protocol of the client's (comma-separated, over any number of headers) that this
/// server speaks, or the kubelet's error.
fn negotiate(headers: &HeaderMap) -> Result<&'static str, KubeError> {
    let offered: Vec<String> = headers
        .get_all(PROTOCOL_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if offered.is_empty() {
        return Err(KubeError::BadRequest(
            "unable to upgrade: X-Stream-Protocol-Version is required".into(),
        ));
    }
    offered
        .iter()
        .find_map(|o| PROTOCOLS.iter().find(|p| **p == o).copied())
        .ok_or_else(|| {
            KubeError::Forbidden(format!(
                "unable to upgrade: unable to negotiate protocol: client supports [{}], server \
                 accepts [{}]",
                offered.join(" "),
                PROTOCOLS.join(" ")
            ))
        })
}

/// The refusal of a negotiation, naming what this server accepts.
fn refusal(e: &KubeError) -> Response {
    let mut response = error_response(e);
    if matches!(e, KubeError::Forbidden(_)) {
        for p in PROTOCOLS {
            response
                .headers_mut()
                .append(ACCEPTED_HEADER, HeaderValue::from_static(p));
        }
    }
    response
}

pub fn serve(session: Session, query: &Query, request: Request) -> Response {
    let protocol = match negotiate(request.headers()) {
        Ok(p) => p,
        Err(e) => return refusal(&e),
    };
    // The streams the client opens follow its own flags.
    let tty = query.flag("tty");
    let mut expected = vec!["error"];
    for (asked, kind) in [
        (query.flag("stdin"), "stdin"),
        (query.flag("stdout"), "stdout"),
        (query.flag("stderr") && !tty, "stderr"),
        (tty && version(protocol) >= 3, "resize"),
    ] {
        if asked {
            expected.push(kind);
        }
    }
    let mut headers = HeaderMap::new();
    headers.insert(PROTOCOL_HEADER, HeaderValue::from_static(protocol));
    spdy::upgrade(request, headers, move |conn| async move {
        match SpdyTransport::accept(conn, version(protocol), &expected).await {
            Some(transport) => drive(session, transport).await,
            None => tracing::debug!("a SPDY client did not open its streams"),
        }
    })
    .into_response()
}

struct SpdyTransport {
    conn: Connection,
    version: u8,
    error: Option<StreamWriter>,
    stdin: Option<StreamReader>,
    stdout: Option<StreamWriter>,
    stderr: Option<StreamWriter>,
    resize: Option<StreamReader>,
    /// Resize bytes not yet a whole JSON object, and sizes read but not yet handed on.
    resize_buf: Vec<u8>,
    sizes: VecDeque<Input>,
    /// Our side of every stream, half-closed at the end.
    writers: Vec<StreamWriter>,
}

impl SpdyTransport {
    /// Waits for the client's streams; `None` if they do not all come in time.
    async fn accept(mut conn: Connection, version: u8, expected: &[&str]) -> Option<SpdyTransport> {
        let (mut error, mut stdin, mut stdout, mut stderr, mut resize) =
            (None, None, None, None, None);
        let mut writers = Vec::new();
        let mut missing: Vec<&str> = expected.to_vec();
        let deadline = tokio::time::Instant::now() + STREAM_CREATION_TIMEOUT;
        while !missing.is_empty() {
            let stream = tokio::time::timeout_at(deadline, conn.accept())
                .await
                .ok()??;
            let kind = stream.headers.get("streamtype").unwrap_or("").to_string();
            writers.push(stream.writer.clone());
            match kind.as_str() {
                "error" => error = Some(stream.writer),
                "stdin" => stdin = Some(stream.reader),
                "stdout" => stdout = Some(stream.writer),
                "stderr" => stderr = Some(stream.writer),
                "resize" => resize = Some(stream.reader),
                other => {
                    tracing::debug!(stream_type = other, "unexpected remote-command stream");
                    continue;
                }
            }
            missing.retain(|m| *m != kind);
        }
        Some(SpdyTransport {
            conn,
            version,
            error,
            stdin,
            stdout,
            stderr,
            resize,
            resize_buf: Vec::new(),
            sizes: VecDeque::new(),
            writers,
        })
    }

    /// Takes whole JSON objects off the front of the resize bytes.
    fn parse_sizes(&mut self) {
        let mut objects =
            serde_json::Deserializer::from_slice(&self.resize_buf).into_iter::<Value>();
        let mut used = 0;
        while let Some(Ok(v)) = objects.next() {
            used = objects.byte_offset();
            self.sizes.push_back(Input::Resize(terminal_size(&v)));
        }
        self.resize_buf.drain(..used);
    }
}

impl Transport for SpdyTransport {
    async fn next(&mut self) -> Option<Input> {
        loop {
            if let Some(size) = self.sizes.pop_front() {
                return Some(size);
            }
            tokio::select! {
                data = async { self.stdin.as_mut()?.recv().await }, if self.stdin.is_some() => {
                    match data {
                        Some(data) => return Some(Input::Stdin(data)),
                        None => {
                            self.stdin = None;
                            return Some(Input::StdinEnd);
                        }
                    }
                }
                data = async { self.resize.as_mut()?.recv().await }, if self.resize.is_some() => {
                    match data {
                        Some(data) => {
                            self.resize_buf.extend_from_slice(&data);
                            self.parse_sizes();
                        }
                        None => self.resize = None,
                    }
                }
                // Streams past the ones the session uses are dropped, so that data the client
                // sends on them is discarded instead of holding the connection up. The end of
                // the streams is the end of the connection: the client has gone.
                extra = self.conn.accept() => drop(extra?),
            }
        }
    }

    async fn output(&mut self, to: Output, data: Vec<u8>) -> bool {
        let stream = match to {
            Output::Stdout => &self.stdout,
            Output::Stderr => &self.stderr,
        };
        match stream {
            Some(w) => w.write(&data).await.is_ok(),
            // A stream the client did not open: nowhere to send it.
            None => true,
        }
    }

    async fn finish(self, outcome: Outcome) {
        if let Some(error) = &self.error {
            let message = if self.version >= 4 {
                Some(outcome.status().to_string())
            } else {
                outcome.text()
            };
            if let Some(m) = message {
                let _ = error.write(m.as_bytes()).await;
            }
        }
        for w in &self.writers {
            let _ = w.finish().await;
        }
        self.conn.close(LINGER).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spdy::Frame;

    fn offer(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(PROTOCOL_HEADER, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn negotiation_takes_the_clients_first_known_protocol() {
        // kubectl 1.27–1.29, one header per version.
        let old = offer(&[
            "v4.channel.k8s.io",
            "v3.channel.k8s.io",
            "v2.channel.k8s.io",
            "channel.k8s.io",
        ]);
        assert_eq!(negotiate(&old).unwrap(), "v4.channel.k8s.io");
        assert_eq!(version("v4.channel.k8s.io"), 4);
        assert_eq!(
            negotiate(&offer(&["v9.channel.k8s.io, v2.channel.k8s.io"])).unwrap(),
            "v2.channel.k8s.io"
        );
        assert_eq!(negotiate(&offer(&["channel.k8s.io"])).map(version), Ok(1));
        let none = negotiate(&HeaderMap::new()).unwrap_err();
        assert_eq!(none.code(), 400);
        assert_eq!(
            none.to_string(),
            "unable to upgrade: X-Stream-Protocol-Version is required"
        );
        let unknown = negotiate(&offer(&["v9.channel.k8s.io"])).unwrap_err();
        assert_eq!(unknown.code(), 403);
        assert!(
            unknown
                .to_string()
                .starts_with("unable to upgrade: unable to negotiate protocol: client supports [v9.channel.k8s.io], server accepts [v5.channel.k8s.io v4.channel.k8s.io"),
            "{unknown}"
        );
        let response = refusal(&unknown);
        assert_eq!(response.status(), 403);
        assert_eq!(
            response.headers().get_all(ACCEPTED_HEADER).iter().count(),
            5
        );
    }

    /// The client opens its streams, gets output, and at the end the outcome on the error
    /// stream in the version's form, every stream half-closed, and the session's end.
    async fn session_frames(version: u8, outcome: Outcome) -> (Vec<Frame>, Option<Input>) {
        use crate::spdy::testing::pair;
        let (conn, mut peer) = pair();
        let kinds = ["error", "stdin", "stdout", "stderr"];
        for (i, kind) in kinds.iter().enumerate() {
            peer.open(1 + 2 * i as u32, kind).await;
        }
        let mut t = SpdyTransport::accept(conn, version, &kinds).await.unwrap();
        peer.send(Frame::Data {
            stream_id: 3,
            fin: true,
            data: b"in".to_vec(),
        })
        .await;
        assert_eq!(t.next().await, Some(Input::Stdin(b"in".to_vec())));
        let end = t.next().await;
        assert!(t.output(Output::Stderr, b"oops".to_vec()).await);
        let finishing = tokio::spawn(t.finish(outcome));
        let frames = peer.recv_all().await;
        drop(peer);
        finishing.await.unwrap();
        let frames = frames
            .into_iter()
            .filter(|f| !matches!(f, Frame::SynReply { .. } | Frame::GoAway { .. }))
            .collect();
        (frames, end)
    }

    fn data(stream_id: u32, fin: bool, data: &[u8]) -> Frame {
        Frame::Data {
            stream_id,
            fin,
            data: data.to_vec(),
        }
    }

    fn fins() -> Vec<Frame> {
        [1, 3, 5, 7].iter().map(|&id| data(id, true, b"")).collect()
    }

    #[tokio::test]
    async fn the_error_stream_speaks_each_versions_form() {
        let failed = Outcome::ExitCode(2, "false".into());
        let (v4, end) = session_frames(4, failed.clone()).await;
        assert_eq!(end, Some(Input::StdinEnd));
        let mut want = vec![
            data(7, false, b"oops"),
            data(1, false, failed.status().to_string().as_bytes()),
        ];
        want.extend(fins());
        assert_eq!(v4, want);
        // v4 writes success too; v1–v3 write nothing for it, and the message for a failure.
        let (v4_ok, _) = session_frames(4, Outcome::Success).await;
        assert_eq!(
            v4_ok[1],
            data(1, false, br#"{"metadata":{},"status":"Success"}"#)
        );
        let (v3_ok, _) = session_frames(3, Outcome::Success).await;
        let mut want = vec![data(7, false, b"oops")];
        want.extend(fins());
        assert_eq!(v3_ok, want);
        let (v2, _) = session_frames(2, failed.clone()).await;
        assert_eq!(
            v2[1],
            data(
                1,
                false,
                b"command terminated with non-zero exit code: error executing command [false], exit code 2"
            )
        );
    }

    #[tokio::test]
    async fn resizes_are_read_as_a_json_stream() {
        use crate::spdy::testing::pair;
        let (conn, mut peer) = pair();
        let kinds = ["error", "stdout", "resize"];
        for (i, kind) in kinds.iter().enumerate() {
            peer.open(1 + 2 * i as u32, kind).await;
        }
        let mut t = SpdyTransport::accept(conn, 4, &kinds).await.unwrap();
        // Two sizes in one frame, the third split across two.
        for chunk in [
            &br#"{"Width":80,"Height":24}{"Width":81,"#[..],
            br#""Height":25}{"Width":100"#,
            br#","Height":30}"#,
        ] {
            peer.send(data(5, false, chunk)).await;
        }
        let size =
            |width, height| Input::Resize(localfargate_runtime::TerminalSize { width, height });
        assert_eq!(t.next().await, Some(size(80, 24)));
        assert_eq!(t.next().await, Some(size(81, 25)));
        assert_eq!(t.next().await, Some(size(100, 30)));
        // The client going away ends the input.
        drop(peer);
        assert_eq!(t.next().await, None);
    }
}
