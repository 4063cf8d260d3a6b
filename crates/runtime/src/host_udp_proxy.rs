//! UDP on the host's loopback for LoadBalancer Services and NodePorts: the UDP half of
//! [`crate::host_proxy`], standing in for an NLB's UDP listener and a node's UDP port.
//!
//! UDP has no connections, so a [`UdpHostListener`] keeps a *flow* per client address, as
//! conntrack does for kube-proxy: the first datagram from a client picks the next backend in
//! turn, later ones from that client go to the same backend, and the backend's replies go back
//! to the client from the listener's address. A flow idle for [`FLOW_IDLE`] is forgotten (the
//! kernel's `nf_conntrack_udp_timeout`), and so is one whose backend left the set, as
//! kube-proxy clears the UDP conntrack entries of removed endpoints so clients move on at once.
//!
//! Without backends (or for a client outside the source ranges) datagrams are dropped. kube-proxy
//! answers ICMP port-unreachable for a Service without endpoints; a user-space socket cannot
//! send that, and closing the socket instead would let another program take the port, so the
//! port stays held and the client times out. A taken port is `AddrInUse` from
//! [`UdpHostListener::bind`], never a panic.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::host_proxy::in_ranges;

/// How long a flow lives without a datagram either way (Linux's `nf_conntrack_udp_timeout`).
pub const FLOW_IDLE: Duration = Duration::from_secs(30);
/// How often idle flows are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// The largest UDP payload.
const DATAGRAM_MAX: usize = 65_535;

/// What the listener's owner changes while it serves.
#[derive(Default)]
struct Targets {
    backends: Mutex<Vec<SocketAddr>>,
    /// Client ranges let in (address, prefix length); empty: everyone.
    sources: Mutex<Vec<(Ipv4Addr, u8)>>,
}

/// One loopback UDP port relaying datagrams to a set of backends. Dropping it closes the port
/// and forgets its flows.
pub struct UdpHostListener {
    addr: SocketAddr,
    targets: Arc<Targets>,
    task: JoinHandle<()>,
}

impl Drop for UdpHostListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl UdpHostListener {
    /// Holds `127.0.0.1:port` for UDP; fails with `AddrInUse` when something else has it.
    /// Must be called within a Tokio runtime (the relay is a task of it).
    pub fn bind(port: u16) -> io::Result<UdpHostListener> {
        UdpHostListener::start(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }

    /// Holds `addr` for UDP (another loopback address, such as a Service's external IP in
    /// 127.0.0.0/8); fails with `AddrInUse` when something else has it.
    pub fn bind_at(addr: SocketAddr) -> io::Result<UdpHostListener> {
        UdpHostListener::start(addr)
    }

    /// Holds a free loopback UDP port the kernel picks.
    pub fn bind_any() -> io::Result<UdpHostListener> {
        UdpHostListener::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
    }

    fn start(addr: SocketAddr) -> io::Result<UdpHostListener> {
        let socket = std::net::UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(socket)?;
        let addr = socket.local_addr()?;
        let targets = Arc::new(Targets::default());
        let task = tokio::spawn(relay(Arc::new(socket), Arc::clone(&targets)));
        Ok(UdpHostListener {
            addr,
            targets,
            task,
        })
    }

    /// The address held, `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The backends now.
    pub fn backends(&self) -> Vec<SocketAddr> {
        lock(&self.targets.backends).clone()
    }

    /// Replaces the backends; flows to a backend no longer listed end at their next datagram.
    pub fn set_backends(&self, backends: Vec<SocketAddr>) {
        *lock(&self.targets.backends) = backends;
    }

    /// The client ranges let in (empty: everyone).
    pub fn source_ranges(&self) -> Vec<(Ipv4Addr, u8)> {
        lock(&self.targets.sources).clone()
    }

    /// Lets in only clients in `ranges` (empty: everyone), from the next datagram on.
    pub fn set_source_ranges(&self, ranges: Vec<(Ipv4Addr, u8)>) {
        *lock(&self.targets.sources) = ranges;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Milliseconds since `start` (a relay's clock for its flows' last datagrams).
fn millis_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One client's flow: a socket connected to its backend, and the task copying replies back.
struct Flow {
    backend: SocketAddr,
    upstream: Arc<UdpSocket>,
    /// [`millis_since`] the relay started, at the flow's last datagram either way.
    last_seen: Arc<AtomicU64>,
    replies: JoinHandle<()>,
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.replies.abort();
    }
}

async fn relay(socket: Arc<UdpSocket>, targets: Arc<Targets>) {
    let started = Instant::now();
    let now_ms = move || millis_since(started);
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let next = AtomicUsize::new(0);
    let mut buf = vec![0u8; DATAGRAM_MAX];
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (n, client) = match received {
                    Ok(r) => r,
                    Err(e) => {
                        // An ICMP error from an earlier send to a client, mostly: not fatal.
                        tracing::debug!(error = %e, "receiving on a host UDP listener");
                        continue;
                    }
                };
                if !in_ranges(client.ip(), &lock(&targets.sources)) {
                    tracing::debug!(%client, "a UDP client outside the source ranges");
                    continue;
                }
                let backends = lock(&targets.backends).clone();
                if flows.get(&client).is_some_and(|f| !backends.contains(&f.backend)) {
                    flows.remove(&client);
                }
                let flow = match flows.entry(client) {
                    Entry::Occupied(flow) => flow.into_mut(),
                    Entry::Vacant(slot) => {
                        if backends.is_empty() {
                            continue;
                        }
                        let backend =
                            backends[next.fetch_add(1, Ordering::Relaxed) % backends.len()];
                        match open_flow(&socket, client, backend, started).await {
                            Ok(flow) => slot.insert(flow),
                            Err(e) => {
                                tracing::debug!(%backend, error = %e, "opening a UDP flow");
                                continue;
                            }
                        }
                    }
                };
                flow.last_seen.store(now_ms(), Ordering::Relaxed);
                if let Err(e) = flow.upstream.send(&buf[..n]).await {
                    tracing::debug!(backend = %flow.backend, error = %e, "relaying a datagram");
                }
            }
            _ = sweep.tick() => {
                let backends = lock(&targets.backends).clone();
                let idle_ms = u64::try_from(FLOW_IDLE.as_millis()).unwrap_or(u64::MAX);
                let now = now_ms();
                flows.retain(|_, f| {
                    backends.contains(&f.backend)
                        && now.saturating_sub(f.last_seen.load(Ordering::Relaxed)) < idle_ms
                });
            }
        }
    }
}

/// A socket connected to `backend` for `client`'s datagrams, and the task sending the
/// backend's replies to the client from the listener's own address.
async fn open_flow(
    listener: &Arc<UdpSocket>,
    client: SocketAddr,
    backend: SocketAddr,
    started: Instant,
) -> io::Result<Flow> {
    let upstream = Arc::new(UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))).await?);
    upstream.connect(backend).await?;
    let last_seen = Arc::new(AtomicU64::new(millis_since(started)));
    let replies = {
        let (upstream, listener) = (Arc::clone(&upstream), Arc::clone(listener));
        let last_seen = Arc::clone(&last_seen);
        tokio::spawn(async move {
            let mut buf = vec![0u8; DATAGRAM_MAX];
            loop {
                match upstream.recv(&mut buf).await {
                    Ok(n) => {
                        last_seen.store(millis_since(started), Ordering::Relaxed);
                        let _ = listener.send_to(&buf[..n], client).await;
                    }
                    // The backend's port is closed (ICMP port unreachable): keep waiting, the
                    // client may retry once the pod listens.
                    Err(e) => {
                        tracing::debug!(%backend, error = %e, "a UDP backend's reply");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        })
    };
    Ok(Flow {
        backend,
        upstream,
        last_seen,
        replies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP echo server on loopback that prefixes replies with `tag`.
    async fn echo(tag: &'static str) -> (SocketAddr, JoinHandle<()>) {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = s.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, from)) = s.recv_from(&mut buf).await else {
                    return;
                };
                let mut reply = tag.as_bytes().to_vec();
                reply.extend_from_slice(&buf[..n]);
                let _ = s.send_to(&reply, from).await;
            }
        });
        (addr, task)
    }

    async fn ask(client: &UdpSocket, to: SocketAddr, what: &str) -> Option<String> {
        client.send_to(what.as_bytes(), to).await.unwrap();
        let mut buf = [0u8; 1500];
        match tokio::time::timeout(Duration::from_millis(500), client.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => {
                assert_eq!(from, to, "replies come from the listener's address");
                Some(String::from_utf8_lossy(&buf[..n]).into_owned())
            }
            _ => None,
        }
    }

    #[tokio::test]
    async fn flows_keep_their_backend_and_move_when_it_leaves() {
        let (a, _ta) = echo("a:").await;
        let (b, _tb) = echo("b:").await;
        let l = UdpHostListener::bind_any().unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // No backend: dropped.
        assert_eq!(ask(&client, l.addr(), "x").await, None);
        l.set_backends(vec![a, b]);
        let first = ask(&client, l.addr(), "1").await.unwrap();
        let second = ask(&client, l.addr(), "2").await.unwrap();
        assert_eq!(first[..2], second[..2], "one client, one flow, one backend");
        // Another client gets the next backend in turn.
        let other = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let theirs = ask(&other, l.addr(), "3").await.unwrap();
        assert_ne!(first[..2], theirs[..2]);
        // The first client's backend leaves: its next datagram goes to the one left.
        let kept = if first.starts_with("a:") { b } else { a };
        l.set_backends(vec![kept]);
        let moved = ask(&client, l.addr(), "4").await.unwrap();
        assert_eq!(moved, format!("{}4", if kept == a { "a:" } else { "b:" }));
    }

    #[tokio::test]
    async fn clients_outside_the_source_ranges_are_dropped() {
        let (a, _ta) = echo("a:").await;
        let l = UdpHostListener::bind_any().unwrap();
        l.set_backends(vec![a]);
        l.set_source_ranges(vec![(Ipv4Addr::new(10, 0, 0, 0), 8)]);
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert_eq!(ask(&client, l.addr(), "x").await, None);
        l.set_source_ranges(vec![(Ipv4Addr::new(127, 0, 0, 0), 8)]);
        assert_eq!(ask(&client, l.addr(), "y").await.as_deref(), Some("a:y"));
    }

    #[tokio::test]
    async fn a_taken_port_is_addr_in_use() {
        let l = UdpHostListener::bind_any().unwrap();
        let Err(e) = UdpHostListener::bind(l.addr().port()) else {
            panic!("bound a taken port");
        };
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    }
}
