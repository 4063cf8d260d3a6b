//! The WebSocket transport (`v5.channel.k8s.io`, `v4.channel.k8s.io`), what kubectl 1.30+
//! uses: binary messages whose first byte is the channel (0 stdin, 1 stdout, 2 stderr,
//! 3 status, 4 resize; v5 adds 255, `[255, 0]` being the end of stdin).

use axum::extract::Request;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequest, ws::close_code};
use axum::response::{IntoResponse, Response};

use super::{Input, Outcome, Output, Session, Transport, drive};

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";

pub async fn serve(session: Session, request: Request) -> Response {
    let ws = match WebSocketUpgrade::from_request(request, &()).await {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    ws.protocols([V5, V4]).on_upgrade(move |socket| async move {
        drive(session, WebSocketTransport { socket }).await;
    })
}

struct WebSocketTransport {
    socket: WebSocket,
}

impl WebSocketTransport {
    async fn send(&mut self, channel: u8, data: &[u8]) -> bool {
        let mut frame = Vec::with_capacity(data.len() + 1);
        frame.push(channel);
        frame.extend_from_slice(data);
        self.socket
            .send(Message::Binary(frame.into()))
            .await
            .is_ok()
    }
}

/// `{"Width": W, "Height": H}`, as the client sends a terminal size.
pub(super) fn terminal_size(value: &serde_json::Value) -> localfargate_runtime::TerminalSize {
    let dim = |k: &str| value[k].as_u64().unwrap_or(0).min(u64::from(u16::MAX)) as u16;
    localfargate_runtime::TerminalSize {
        width: dim("Width"),
        height: dim("Height"),
    }
}

impl Transport for WebSocketTransport {
    async fn next(&mut self) -> Option<Input> {
        loop {
            // Binary frames, as kubectl sends; text frames too, as kube-apiserver takes them
            // (its golang.org/x/net/websocket codec reads either into bytes): the official
            // Python client sends stdin given as a `str` in text frames.
            let data: bytes::Bytes = match self.socket.recv().await {
                Some(Ok(Message::Binary(data))) => data,
                Some(Ok(Message::Text(text))) => bytes::Bytes::from(text.as_str().to_owned()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                _ => continue,
            };
            match data.first() {
                Some(0) => return Some(Input::Stdin(data[1..].to_vec())),
                Some(4) => {
                    if let Ok(size) = serde_json::from_slice(&data[1..]) {
                        return Some(Input::Resize(terminal_size(&size)));
                    }
                }
                // v5: the client closed a stream; stdin is the only one it can close.
                Some(255) if data.get(1) == Some(&0) => return Some(Input::StdinEnd),
                _ => {}
            }
        }
    }

    async fn output(&mut self, to: Output, data: Vec<u8>) -> bool {
        let channel = match to {
            Output::Stdout => 1,
            Output::Stderr => 2,
        };
        self.send(channel, &data).await
    }

    async fn finish(mut self, outcome: Outcome) {
        self.send(3, outcome.status().to_string().as_bytes()).await;
        // A normal closure: kubectl treats any other code as a broken stream.
        let _ = self
            .socket
            .send(Message::Close(Some(CloseFrame {
                code: close_code::NORMAL,
                reason: "".into(),
            })))
            .await;
    }
}
