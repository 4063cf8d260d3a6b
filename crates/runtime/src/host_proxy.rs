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
//!
//! A listener may be limited to client address ranges (a load balancer's
//! `loadBalancerSourceRanges`): a client outside them is reset at once (the connection is
//! accepted and closed with a zero linger, so it gets RST), and never reaches a backend.
//!
//! A [`HealthCheckListener`] answers kube-proxy's health check of a Service with
//! `externalTrafficPolicy: Local` on its `healthCheckNodePort`.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
    /// Client ranges let in (address, prefix length); empty: everyone.
    sources: Arc<Mutex<Vec<(Ipv4Addr, u8)>>>,
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
        HostListener::bind_at(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }

    /// Holds `addr` (another loopback address, such as a Service's external IP in
    /// 127.0.0.0/8); fails with `AddrInUse` when something else has it.
    pub fn bind_at(addr: SocketAddr) -> io::Result<HostListener> {
        let socket = socket_for(addr)?;
        Ok(HostListener {
            addr,
            backends: Arc::default(),
            sources: Arc::default(),
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
            sources: Arc::default(),
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

    /// The client ranges let in (empty: everyone).
    pub fn source_ranges(&self) -> Vec<(Ipv4Addr, u8)> {
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Lets in only clients in `ranges` (empty: everyone), from the next connection on.
    pub fn set_source_ranges(&self, ranges: Vec<(Ipv4Addr, u8)>) {
        *self.sources.lock().unwrap_or_else(|p| p.into_inner()) = ranges;
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
                let (backends, sources) = (Arc::clone(&self.backends), Arc::clone(&self.sources));
                self.state =
                    ListenState::Serving(tokio::spawn(accept_loop(listener, backends, sources)));
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
                let (backends, sources) = (Arc::clone(&self.backends), Arc::clone(&self.sources));
                self.state =
                    ListenState::Serving(tokio::spawn(accept_loop(listener, backends, sources)));
            }
            _ => {}
        }
        Ok(())
    }
}

/// Whether `ip` is in one of `ranges` (empty: every address is).
pub fn in_ranges(ip: IpAddr, ranges: &[(Ipv4Addr, u8)]) -> bool {
    if ranges.is_empty() {
        return true;
    }
    let IpAddr::V4(ip) = ip else {
        return false;
    };
    ranges.iter().any(|(net, len)| {
        let mask = if *len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from((*len).min(32)))
        };
        u32::from(ip) & mask == u32::from(*net) & mask
    })
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    backends: Arc<Mutex<Vec<SocketAddr>>>,
    sources: Arc<Mutex<Vec<(Ipv4Addr, u8)>>>,
) {
    let next = Arc::new(AtomicUsize::new(0));
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "accepting on a host listener");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let allowed = in_ranges(
            peer.ip(),
            &sources.lock().unwrap_or_else(|p| p.into_inner()),
        );
        if !allowed {
            // Outside the load balancer's source ranges: reset, not served.
            tracing::debug!(%peer, "a client outside the source ranges");
            let _ = client.set_zero_linger();
            drop(client);
            continue;
        }
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

/// The health check kube-proxy serves on a Service's `healthCheckNodePort`
/// (`externalTrafficPolicy: Local`), on `127.0.0.1`: every request gets the Service's name and
/// its local endpoint count as JSON, 200 when there is at least one, 503 otherwise, so a load
/// balancer sends traffic only to nodes that have local endpoints. Dropping it closes the
/// port.
pub struct HealthCheckListener {
    addr: SocketAddr,
    local_endpoints: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for HealthCheckListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The body kube-proxy's health check writes (tab-indented, no final newline).
pub fn health_check_body(namespace: &str, name: &str, local_endpoints: usize) -> String {
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "{{\n\t\"service\": {{\n\t\t\"namespace\": {},\n\t\t\"name\": {}\n\t}},\n\t\
         \"localEndpoints\": {local_endpoints},\n\t\"serviceProxyHealthy\": true\n}}",
        quote(namespace),
        quote(name)
    )
}

impl HealthCheckListener {
    /// Listens on `127.0.0.1:port` for the Service `namespace/name`; fails with `AddrInUse`
    /// when something else has the port.
    pub fn bind(port: u16, namespace: &str, name: &str) -> io::Result<HealthCheckListener> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let listener = listen(socket_for(addr)?)?;
        let local_endpoints = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&local_endpoints);
        let (namespace, name) = (namespace.to_string(), name.to_string());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let (count, namespace, name) =
                    (Arc::clone(&count), namespace.clone(), name.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| {
                        let n = count.load(Ordering::Relaxed);
                        let body = health_check_body(&namespace, &name, n);
                        let mut response = http::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from(body),
                        ));
                        *response.status_mut() = if n > 0 {
                            http::StatusCode::OK
                        } else {
                            http::StatusCode::SERVICE_UNAVAILABLE
                        };
                        let headers = response.headers_mut();
                        headers.insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/json"),
                        );
                        headers.insert(
                            http::header::X_CONTENT_TYPE_OPTIONS,
                            http::HeaderValue::from_static("nosniff"),
                        );
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(HealthCheckListener {
            addr,
            local_endpoints,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The number of local endpoints the next answers report.
    pub fn set_local_endpoints(&self, n: usize) {
        self.local_endpoints.store(n, Ordering::Relaxed);
    }

    pub fn local_endpoints(&self) -> usize {
        self.local_endpoints.load(Ordering::Relaxed)
    }
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

    #[tokio::test]
    async fn clients_outside_the_source_ranges_are_reset() {
        let mut l = HostListener::bind_any().unwrap();
        let addr = l.addr();
        l.set_backends(vec![echo_server().await]).await.unwrap();
        l.set_source_ranges(vec![(Ipv4Addr::new(127, 0, 0, 2), 32)]);
        // From 127.0.0.1: accepted by the kernel, then reset before any byte.
        let mut c = TcpStream::connect(addr).await.unwrap();
        let _ = c.write_all(b"hello").await;
        let mut buf = [0u8; 5];
        let got = c.read(&mut buf).await;
        assert!(
            matches!(&got, Ok(0))
                || got
                    .as_ref()
                    .is_err_and(|e| e.kind() == io::ErrorKind::ConnectionReset),
            "{got:?}"
        );
        // From 127.0.0.2: served.
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut c = socket.connect(addr).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        assert!(in_ranges("10.1.2.3".parse().unwrap(), &[]));
        assert!(in_ranges(
            "127.9.9.9".parse().unwrap(),
            &[(Ipv4Addr::new(127, 0, 0, 0), 8)]
        ));
        assert!(!in_ranges(
            "10.1.2.3".parse().unwrap(),
            &[(Ipv4Addr::new(127, 0, 0, 0), 8)]
        ));
    }

    #[tokio::test]
    async fn the_health_check_answers_as_kube_proxy() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let hc = HealthCheckListener::bind(port, "default", "web").unwrap();
        let get = || async move {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let out = get().await;
        assert!(out.starts_with("HTTP/1.") && out.contains(" 503 "), "{out}");
        assert!(out.contains("content-type: application/json"), "{out}");
        assert!(out.contains("\"localEndpoints\": 0"), "{out}");
        hc.set_local_endpoints(2);
        let out = get().await;
        assert!(out.starts_with("HTTP/1.") && out.contains(" 200 "), "{out}");
        let body = out.split("\r\n\r\n").nth(1).unwrap();
        assert_eq!(
            body,
            "{\n\t\"service\": {\n\t\t\"namespace\": \"default\",\n\t\t\"name\": \"web\"\n\t},\n\t\"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": true\n}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["localEndpoints"], 2);
        // Taken: the second one says so.
        assert_eq!(
            HealthCheckListener::bind(port, "default", "web")
                .err()
                .unwrap()
                .kind(),
            io::ErrorKind::AddrInUse
        );
    }
}
