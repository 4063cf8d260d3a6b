//! The runtime side of `kubectl port-forward`: a TCP connection to `localhost:<port>` *inside*
//! a pod's network namespace, as the CRI's `PortForward` (containerd's) opens it.
//!
//! The socket is created by a short-lived thread that has joined the pod's network namespace
//! with `setns(2)`; a socket belongs to the namespace it was created in, so the connection
//! stays there when the thread ends and the rest of localfargate (in the host's namespace)
//! reads and writes it like any other. This is what makes a server bound to `127.0.0.1` in
//! the pod reachable, which the pod's IP from the host is not. The thread is a fresh OS
//! thread, never one of tokio's: a pooled thread left in a pod's namespace would open later
//! sockets there.
//!
//! Errors are worded as containerd words them, which the kubelet wraps into
//! `error forwarding port P to pod <sandbox>, uid : …` for kubectl:
//! `failed to execute portforward in network namespace "/run/netns/lf-…": failed to connect to
//! localhost:P inside namespace "<sandbox>", IPv4: dial tcp4 127.0.0.1:P: connect: connection
//! refused IPv6 dial tcp6 [::1]:P: connect: connection refused `.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::RuntimeError;
use crate::error::go_text;

/// A forwarded connection: bytes to and from the pod's port.
pub trait PortConnection: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> PortConnection for T {}

/// What [`SandboxRuntime::port_forward`](crate::SandboxRuntime::port_forward) returns.
pub type PortStream = Box<dyn PortConnection>;

/// How long one connect inside the namespace may take (Go's dialer has no timeout there; a
/// loopback connect answers at once, this only bounds a pathological case).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Connects to `localhost:port` in the network namespace bound at `netns`, IPv4 first, then
/// IPv6, as containerd does. `sandbox` names the sandbox in the error.
pub async fn connect(netns: &Path, sandbox: &str, port: u16) -> Result<PortStream, RuntimeError> {
    let path = netns.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sandbox_name = sandbox.to_string();
    let spawned = std::thread::Builder::new()
        .name("lf-portforward".into())
        .spawn(move || {
            let _ = tx.send(connect_in(&path, &sandbox_name, port));
        });
    if let Err(e) = spawned {
        return Err(RuntimeError::Io {
            context: "starting the port-forward thread".into(),
            source: e,
        });
    }
    let stream = rx
        .await
        .map_err(|_| RuntimeError::Backend("the port-forward thread ended early".into()))?
        .map_err(|inner| {
            RuntimeError::PortForward(format!(
                "failed to execute portforward in network namespace {:?}: {inner}",
                netns.display().to_string()
            ))
        })?;
    stream
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpStream::from_std(stream))
        .map(|s| Box::new(s) as PortStream)
        .map_err(|e| RuntimeError::Io {
            context: "registering the forwarded connection".into(),
            source: e,
        })
}

/// On the calling thread, which it moves into the namespace for good: only for a thread of
/// its own.
fn connect_in(netns: &Path, sandbox: &str, port: u16) -> Result<TcpStream, String> {
    let ns = std::fs::File::open(netns).map_err(|e| go_text(&e))?;
    nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| go_text(&io::Error::from(e)))?;
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let e4 = match TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT) {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    let e6 = match TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT) {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    Err(format!(
        "failed to connect to localhost:{port} inside namespace {sandbox:?}, IPv4: dial tcp4 \
         {v4}: connect: {} IPv6 dial tcp6 {v6}: connect: {} ",
        go_text(&e4),
        go_text(&e6)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_namespace_that_is_gone_is_named() {
        let err = connect(Path::new("/run/netns/lf-no-such-namespace"), "sb1", 80)
            .await
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "failed to execute portforward in network namespace \
             \"/run/netns/lf-no-such-namespace\": no such file or directory"
        );
    }
}
