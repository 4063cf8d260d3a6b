//! Listeners on the host's loopback that proxy TCP to pods: what makes a LoadBalancer
//! Service (and a NodePort) reachable from the host, as the cloud's load balancer and the
//! node's port make it reachable on EKS.
//!
//! A [`HostListener`] owns one `127.0.0.1:<port>` and a set of backends (pod IP:port) that its
//! owner replaces as endpoints come and go; each accepted connection goes to the next backend
//! in turn (another one if that one refuses) and bytes are copied both ways.
//!
//! With no backend the port is still *held* (bound, not listening), so a client is refused
//! at once, as kube-proxy rejects traffic for a Service without endpoints, and nobody else
//! takes the port meanwhile. A port already in use (another localfargate, another program) is
//! an error for the owner to report: [`HostListener::bind`] fails with `AddrInUse`, never
//! panics, and [`HostListener::bind_any`] takes a free port instead.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;

/// How long a connect to a backend may take before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections waiting to be accepted.
const BACKLOG: u32 = 1024;

/// One loopback port proxying TCP to a set of backends. Dropping it closes the port and the
/// connections it accepted keep going.
pub struct HostListener {
    addr: SocketAddr,
    backends: Arc<Mutex<Vec<SocketAddr>>>,
    state: ListenState,
}

enum ListenState {
    /// Bound, not listening: connections are refused, the port is ours.
    Held(TcpSocket),
    Serving(JoinHandle<()>),
    /// Between the two (only while switching).
    Closed,
}

impl Drop for HostListener {
    fn drop(&mut self) {
        if let ListenState::Serving(task) = &self.state {
            task.abort();
        }
    }
}

/// A socket bound to `addr`, not listening. `SO_REUSEADDR` is on for the bind, so a port whose
/// earlier connections linger in TIME_WAIT can be had again, and off afterwards, so that no
/// other socket (another localfargate's included) can bind it while it is held.
fn socket_for(addr: SocketAddr) -> io::Result<TcpSocket> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.set_reuseaddr(false)?;
    Ok(socket)
}

/// Starts listening on a held socket (`SO_REUSEADDR` on again: `listen` checks the port anew,
/// against TIME_WAIT connections too).
fn listen(socket: TcpSocket) -> io::Result<tokio::net::TcpListener> {
    socket.set_reuseaddr(true)?;
    socket.listen(BACKLOG)
}

impl HostListener {
    /// Holds `127.0.0.1:port`; fails with `AddrInUse` when something else has it.
    pub fn bind(port: u16) -> io::Result<HostListener> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let socket = socket_for(addr)?;
        Ok(HostListener {
            addr,
            backends: Arc::default(),
            state: ListenState::Held(socket),
        })
    }

    /// Holds a free loopback port the kernel picks.
    pub fn bind_any() -> io::Result<HostListener> {
        let socket = socket_for(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let addr = socket.local_addr()?;
        Ok(HostListener {
            addr,
            backends: Arc::default(),
            state: ListenState::Held(socket),
        })
    }

    /// The address held, `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The backends now.
    pub fn backends(&self) -> Vec<SocketAddr> {
        self.backends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the backends. From none to some the port starts accepting; from some to none
    /// it goes back to refusing (open connections are left alone).
    pub async fn set_backends(&mut self, backends: Vec<SocketAddr>) -> io::Result<()> {
        let empty = backends.is_empty();
        *self.backends.lock().unwrap_or_else(|p| p.into_inner()) = backends;
        match (&self.state, empty) {
            (ListenState::Held(_), false) => {
                let ListenState::Held(socket) =
                    std::mem::replace(&mut self.state, ListenState::Closed)
                else {
                    return Ok(());
                };
                let listener = listen(socket)?;
                let backends = Arc::clone(&self.backends);
                self.state = ListenState::Serving(tokio::spawn(accept_loop(listener, backends)));
            }
            (ListenState::Serving(_), true) | (ListenState::Closed, true) => {
                if let ListenState::Serving(task) =
                    std::mem::replace(&mut self.state, ListenState::Closed)
                {
                    task.abort();
                    // The listening socket closes once the aborted task is dropped, which
                    // this waits for, so the port can be held again.
                    let _ = task.await;
                }
                self.state = ListenState::Held(socket_for(self.addr)?);
            }
            (ListenState::Closed, false) => {
                let listener = listen(socket_for(self.addr)?)?;
                let backends = Arc::clone(&self.backends);
                self.state = ListenState::Serving(tokio::spawn(accept_loop(listener, backends)));
            }
            _ => {}
        }
        Ok(())
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, backends: Arc<Mutex<Vec<SocketAddr>>>) {
    let next = Arc::new(AtomicUsize::new(0));
    loop {
        let (client, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "accepting on a host listener");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let candidates = backends.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let start = next.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            if let Some(mut backend) = connect_any(&candidates, start).await {
                let mut client = client;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
            }
        });
    }
}

/// The first backend, from `start` round, that accepts a connection.
async fn connect_any(candidates: &[SocketAddr], start: usize) -> Option<TcpStream> {
    let n = candidates.len();
    for i in 0..n {
        let addr = candidates[(start + i) % n];
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Some(s),
            Ok(Err(e)) => tracing::debug!(%addr, error = %e, "backend refused"),
            Err(_) => tracing::debug!(%addr, "backend timed out"),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn echo_server() -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    let n = s.read(&mut buf).await.unwrap();
                    s.write_all(&buf[..n]).await.unwrap();
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn refuses_without_backends_proxies_with_them_and_reports_a_taken_port() {
        let mut l = HostListener::bind_any().unwrap();
        let addr = l.addr();
        assert_eq!(addr.ip(), Ipv4Addr::LOCALHOST);
        // Held: refused.
        let refused = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        // Taken: the second bind says so.
        assert_eq!(
            HostListener::bind(addr.port()).err().unwrap().kind(),
            io::ErrorKind::AddrInUse
        );
        let echo = echo_server().await;
        l.set_backends(vec![echo]).await.unwrap();
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        // Back to none: refused again, the port still held.
        l.set_backends(vec![]).await.unwrap();
        let refused = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        assert!(HostListener::bind(addr.port()).is_err());
        drop(l);
        assert!(HostListener::bind(addr.port()).is_ok());
    }
}
