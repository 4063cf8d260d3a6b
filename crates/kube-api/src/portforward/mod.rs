//! `pods/portforward`: `kubectl port-forward` to a pod (kubectl resolves Services and
//! Deployments to one of their pods itself).
//!
//! Every forwarded connection is a TCP connection the runtime opens to `localhost:<port>`
//! inside the pod's network namespace ([`SandboxRuntime::port_forward`], the CRI's
//! `PortForward`), so a server bound to 127.0.0.1 in the pod is reachable. Three transports
//! carry it, as kube-apiserver and the kubelet serve them:
//!
//! * [`spdy`]: an upgrade to `SPDY/3.1` negotiating `portforward.k8s.io`; for each connection
//!   the client opens a pair of streams (`streamType` `error` and `data`) with the same
//!   `requestID` and `port` headers (kubectl ≤ 1.30, and later ones when the tunnel fails);
//! * the same SPDY session tunnelled through a WebSocket whose subprotocol is
//!   `SPDY/3.1+portforward.k8s.io`, every binary message a piece of the SPDY byte stream
//!   (kubectl 1.31+, the `PortForwardWebsockets` feature);
//! * [`websocket`]'s channel protocol (`v4.channel.k8s.io`): the ports in the query, a data
//!   and an error channel per port, each starting with the port number (two bytes, little
//!   endian); one connection per port (the official Python client).
//!
//! A failed connection gets the kubelet's message on its error stream:
//! `error forwarding port 8080 to pod <sandbox>, uid : failed to execute portforward in network
//! namespace "…": failed to connect to localhost:8080 inside namespace "<sandbox>", IPv4: …`.
//!
//! [`SandboxRuntime::port_forward`]: localfargate_runtime::SandboxRuntime::port_forward

mod spdy;
mod websocket;

use std::future::Future;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{Method, header};
use axum::response::Response;
use localfargate_core::rbac::UserInfo;
use localfargate_registry::objects::KubeError;
use localfargate_runtime::port_forward::PortStream;
use localfargate_runtime::{RuntimeError, RuntimeKind, SandboxId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::context::Api;
use crate::pods::{bad, get_pod};
use crate::request::{Query, Target};
use crate::response::error_response;

/// The one port-forward protocol (`X-Stream-Protocol-Version`).
pub const PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket subprotocol prefix of a SPDY tunnel.
pub const TUNNEL_PREFIX: &str = "SPDY/3.1+";

/// Bytes read from the pod at a time.
const CHUNK: usize = 32 * 1024;

/// The pod a session forwards to.
pub struct Forwarder {
    api: Arc<Api>,
    sandbox: SandboxId,
}

impl Forwarder {
    /// Checks the pod before the connection is upgraded: it exists, it has a node, its
    /// sandbox runs.
    async fn prepare(api: &Arc<Api>, target: &Target) -> Result<Forwarder, KubeError> {
        let ns = target.namespace.clone().unwrap_or_default();
        let name = target.name.clone().unwrap_or_default();
        let pod = get_pod(api, &ns, &name)?;
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        if node.unwrap_or("").is_empty() {
            return Err(bad(format!("pod {name} does not have a host assigned")));
        }
        // Nothing listens in a simulated pod: said before the upgrade, so kubectl says it at
        // once rather than on the first connection.
        if api.runtime.kind() == RuntimeKind::Simulated {
            let e = RuntimeError::PortForwardUnsupported {
                pod: format!("{ns}/{name}"),
            };
            return Err(bad(e.to_string()));
        }
        let uid = pod.metadata.uid.as_deref().unwrap_or("");
        match api.runtime.sandbox_of_pod(uid).await.ok().flatten() {
            Some(summary) => Ok(Forwarder {
                api: Arc::clone(api),
                sandbox: summary.id,
            }),
            // The kubelet's answer for a pod it does not run.
            None => Err(KubeError::NotFound {
                message: format!("pod not found (\"{name}_{ns}\")"),
                kind: "pods".into(),
                name,
            }),
        }
    }

    /// Opens a connection to `port` in the pod, or the kubelet's message for the error stream.
    async fn connect(&self, port: u16) -> Result<PortStream, String> {
        self.api
            .runtime
            .port_forward(&self.sandbox, port)
            .await
            .map_err(|e| self.failure(port, &e.to_string()))
    }

    /// `error forwarding port P to pod <sandbox>, uid : <why>`: the CRI runtime gets the
    /// sandbox's id as the pod and no uid, and the kubelet says so.
    fn failure(&self, port: impl std::fmt::Display, why: &str) -> String {
        format!(
            "error forwarding port {port} to pod {}, uid : {why}",
            self.sandbox
        )
    }
}

/// What the client sends on a connection's data stream; `None` once it is done sending.
pub(crate) trait Inbound: Send {
    fn recv(&mut self) -> impl Future<Output = Option<Vec<u8>>> + Send;
}

/// Where the pod's bytes go; `send` is false once the client has gone. The caller closes
/// the streams once [`pump`] returns.
pub(crate) trait Outbound: Send {
    fn send(&mut self, data: Vec<u8>) -> impl Future<Output = bool> + Send;
}

/// Copies both ways until the pod closes the connection or the client's session ends
/// (`gone` turns true). The client being done sending half-closes the pod's side, which may
/// still answer.
pub(crate) async fn pump(
    stream: PortStream,
    mut inbound: impl Inbound,
    mut outbound: impl Outbound,
    mut gone: watch::Receiver<bool>,
) {
    let (mut from_pod, mut to_pod) = tokio::io::split(stream);
    let upstream = async move {
        while let Some(data) = inbound.recv().await {
            if to_pod.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = to_pod.shutdown().await;
        // Kept so the socket is not closed before the other direction ends.
        std::future::pending::<()>().await;
    };
    let downstream = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match from_pod.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !outbound.send(buf[..n].to_vec()).await {
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
        _ = gone.wait_for(|g| *g) => {}
    }
}

/// `GET`/`POST …/pods/<name>/portforward` with `Upgrade: SPDY/3.1` or `websocket`. Allowed
/// with `create` on `pods/portforward`, also for a WebSocket's `GET`.
pub async fn serve(
    api: Arc<Api>,
    user: &UserInfo,
    target: Target,
    query: Query,
    request: Request,
) -> Response {
    if request.method() == Method::GET {
        let create = crate::authz::resource_attributes(user, &Method::POST, &target, &query);
        if let Err(e) = api.authorizer.check(&create) {
            return error_response(&e);
        }
    }
    let upgrade = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let websocket = upgrade == "websocket";
    // The kubelet's checks of a WebSocket's ports come before the pod's.
    let ports = if websocket && !websocket::is_tunnel(request.headers()) {
        match websocket::ports(&query) {
            Ok(p) => Some(p),
            Err(e) => return error_response(&e),
        }
    } else {
        None
    };
    let forwarder = match Forwarder::prepare(&api, &target).await {
        Ok(f) => Arc::new(f),
        Err(e) => return error_response(&e),
    };
    if websocket {
        websocket::serve(forwarder, ports, request).await
    } else if crate::spdy::is_upgrade(request.headers()) {
        spdy::serve(forwarder, request)
    } else {
        error_response(&bad(format!(
            "unable to upgrade: the request must upgrade to websocket or {}, not {upgrade:?}",
            crate::spdy::SPDY_31
        )))
    }
}
