//! Port-forward over a WebSocket: the SPDY tunnel kubectl 1.31+ uses, and the channel
//! protocol (`v4.channel.k8s.io`) other clients use.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use localfargate_registry::objects::KubeError;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, watch};

use super::spdy::{negotiate, refusal};
use super::{Forwarder, Inbound, Outbound, TUNNEL_PREFIX, pump};
use crate::pods::bad;
use crate::request::Query;
use crate::spdy::Connection;

/// The tunnel's subprotocol: SPDY/3.1 carrying `portforward.k8s.io`.
const TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
/// The channel protocol, binary framing.
const V4: &str = "v4.channel.k8s.io";
/// SPDY bytes buffered between the WebSocket and the session.
const TUNNEL_BUFFER: usize = 256 * 1024;
/// Messages queued for the WebSocket.
const OUT_QUEUE: usize = 64;

/// The subprotocols a client offers.
fn offered(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The SPDY protocols a tunnel offers (`SPDY/3.1+<protocol>` with a Kubernetes suffix).
fn tunnelled(headers: &HeaderMap) -> Vec<String> {
    offered(headers)
        .into_iter()
        .filter_map(|p| {
            p.strip_prefix(TUNNEL_PREFIX)
                .filter(|rest| rest.ends_with(".k8s.io"))
                .map(str::to_string)
        })
        .collect()
}

/// Whether a WebSocket request asks for a SPDY tunnel.
pub(super) fn is_tunnel(headers: &HeaderMap) -> bool {
    !tunnelled(headers).is_empty()
}

/// The query's ports, with the kubelet's errors (`port`, as kube-apiserver passes the
/// `ports` of `PodPortForwardOptions` on; both are read).
pub(super) fn ports(query: &Query) -> Result<Vec<u16>, KubeError> {
    let values: Vec<&str> = query
        .all("ports")
        .into_iter()
        .chain(query.all("port"))
        .collect();
    if values.is_empty() {
        return Err(bad("query parameter \"port\" is required".into()));
    }
    let mut ports = Vec::new();
    for value in values {
        if value.is_empty() {
            return Err(bad("query parameter \"port\" cannot be empty".into()));
        }
        for p in value.split(',') {
            let port: u16 = p.parse().map_err(|_| {
                bad(format!(
                    "unable to parse {value:?} as a port: strconv.ParseUint: parsing {p:?}: \
                     invalid syntax"
                ))
            })?;
            if port < 1 {
                return Err(bad(format!("port {value:?} must be > 0")));
            }
            ports.push(port);
        }
    }
    Ok(ports)
}

pub async fn serve(
    forwarder: Arc<Forwarder>,
    ports: Option<Vec<u16>>,
    request: Request,
) -> Response {
    let spdy = tunnelled(request.headers());
    if !spdy.is_empty()
        && let Err(e) = negotiate(spdy.iter().map(String::as_str))
    {
        return refusal(&e);
    }
    let ws = match WebSocketUpgrade::from_request(request, &()).await {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    match ports {
        Some(ports) => ws
            .protocols([V4])
            .on_upgrade(move |socket| channels(socket, forwarder, ports)),
        None => ws.protocols([TUNNEL]).on_upgrade(move |socket| async move {
            tracing::debug!("port-forward: a SPDY session tunnelled through a WebSocket");
            let io = bridge(socket);
            super::spdy::session(Connection::serve(io), forwarder).await;
        }),
    }
}

/// The SPDY byte stream a tunnel carries: each binary message is the next piece of it; a
/// normal close is its end.
fn bridge(socket: WebSocket) -> DuplexStream {
    let (ours, theirs) = tokio::io::duplex(TUNNEL_BUFFER);
    tokio::spawn(async move {
        let (mut sink, mut messages) = socket.split();
        let (mut from_session, mut to_session) = tokio::io::split(theirs);
        let inbound = async move {
            while let Some(Ok(message)) = messages.next().await {
                match message {
                    Message::Binary(data) if to_session.write_all(&data).await.is_err() => break,
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            let _ = to_session.shutdown().await;
        };
        let outbound = async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match from_session.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let message = Message::Binary(buf[..n].to_vec().into());
                        if sink.send(message).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = sink.send(normal_close()).await;
        };
        tokio::join!(inbound, outbound);
    });
    ours
}

fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: close_code::NORMAL,
        reason: "".into(),
    }))
}

/// The channel protocol: channel `2i` carries port `i`'s data, `2i+1` its errors; each starts
/// with the port (little endian); the connections are made at once, one per port, and the
/// WebSocket closes once all have ended.
async fn channels(socket: WebSocket, forwarder: Arc<Forwarder>, ports: Vec<u16>) {
    let (mut sink, mut messages) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(OUT_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(frame) = out_rx.recv().await {
            if sink.send(Message::Binary(frame.into())).await.is_err() {
                return;
            }
        }
        let _ = sink.send(normal_close()).await;
    });
    let (gone_tx, gone) = watch::channel(false);
    let mut inputs = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, port) in ports.iter().copied().enumerate() {
        let (data, error) = ((2 * i) as u8, (2 * i + 1) as u8);
        let prefix = port.to_le_bytes();
        for channel in [data, error] {
            let _ = out_tx.send(vec![channel, prefix[0], prefix[1]]).await;
        }
        let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(OUT_QUEUE);
        inputs.push(Some(in_tx));
        let (forwarder, out, gone) = (Arc::clone(&forwarder), out_tx.clone(), gone.clone());
        tasks.spawn(async move {
            match forwarder.connect(port).await {
                Ok(stream) => {
                    let outbound = ChannelOut {
                        channel: data,
                        out: out.clone(),
                    };
                    pump(stream, ChannelIn(in_rx), outbound, gone).await;
                }
                Err(message) => {
                    let mut frame = vec![error];
                    frame.extend_from_slice(message.as_bytes());
                    let _ = out.send(frame).await;
                }
            }
        });
    }
    drop(out_tx);
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(Ok(Message::Binary(data))) => {
                    if let Some((&channel, rest)) = data.split_first()
                        && channel % 2 == 0
                        && let Some(slot) = inputs.get_mut(usize::from(channel / 2))
                        && let Some(tx) = slot
                        && tx.send(rest.to_vec()).await.is_err()
                    {
                        *slot = None;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            done = tasks.join_next() => {
                if done.is_none() {
                    break;
                }
            }
        }
    }
    let _ = gone_tx.send(true);
    drop(inputs);
    while tasks.join_next().await.is_some() {}
    let _ = writer.await;
}

struct ChannelIn(mpsc::Receiver<Vec<u8>>);

impl Inbound for ChannelIn {
    async fn recv(&mut self) -> Option<Vec<u8>> {
        self.0.recv().await
    }
}

struct ChannelOut {
    channel: u8,
    out: mpsc::Sender<Vec<u8>>,
}

impl Outbound for ChannelOut {
    async fn send(&mut self, data: Vec<u8>) -> bool {
        let mut frame = Vec::with_capacity(data.len() + 1);
        frame.push(self.channel);
        frame.extend_from_slice(&data);
        self.out.send(frame).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn ports_are_read_as_the_kubelet_reads_them() {
        let q = |s: &str| Query::parse(Some(s));
        assert_eq!(
            ports(&q("ports=80,8080&ports=9000")).unwrap(),
            [80, 8080, 9000]
        );
        assert_eq!(
            ports(&q("container=x")).unwrap_err().to_string(),
            "query parameter \"port\" is required"
        );
        assert_eq!(
            ports(&q("ports=0")).unwrap_err().to_string(),
            "port \"0\" must be > 0"
        );
        assert!(ports(&q("ports=http")).is_err());
    }

    #[test]
    fn a_tunnel_is_told_by_its_subprotocol() {
        let mut h = HeaderMap::new();
        h.insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("SPDY/3.1+portforward.k8s.io, v4.channel.k8s.io"),
        );
        assert_eq!(tunnelled(&h), ["portforward.k8s.io"]);
        h.insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("v4.channel.k8s.io"),
        );
        assert!(!is_tunnel(&h));
    }
}
