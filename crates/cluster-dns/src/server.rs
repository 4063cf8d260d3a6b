//! The DNS server: questions over UDP and TCP routed to the server block of the most specific
//! zone (as CoreDNS routes them), answered from the cluster's records or forwarded; responses
//! over UDP cut to the client's size with TC set; counted for `/metrics`; `loop`'s probe
//! watched for.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use hickory_proto::op::{Edns, Message, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::forward::Forwarder;
use crate::metrics::{Metrics, Plugin, ZoneCounters};
use crate::records::{Authority, Lookup};
use crate::state::ClusterState;

/// The largest UDP response without EDNS (RFC 1035).
const PLAIN_UDP: usize = 512;
/// The UDP size this server offers in its OPT record (the DNS flag day's 1232).
const EDNS_UDP: u16 = 1232;

/// Everything a server block's query needs: the cluster zone (`kubernetes`, when the block has
/// it), the cluster's objects, the forwarder and whether answers are shuffled (`loadbalance`).
pub struct DnsHandler {
    pub authority: Option<Authority>,
    pub state: Arc<RwLock<ClusterState>>,
    pub forwarder: Option<Forwarder>,
    pub loadbalance: bool,
}

/// A wire-format query decoded (`Ok`), or what to send back instead (`Err`: a FORMERR, or
/// nothing for a response or bytes shorter than a header).
fn decode(bytes: &[u8]) -> Result<Message, Option<Vec<u8>>> {
    match Message::from_vec(bytes) {
        Ok(m) if m.metadata.message_type == hickory_proto::op::MessageType::Query => Ok(m),
        Ok(_) => Err(None),
        Err(_) => {
            if bytes.len() < 12 || bytes[2] & 0x80 != 0 {
                return Err(None);
            }
            let id = u16::from_be_bytes([bytes[0], bytes[1]]);
            let m = Message::error_msg(id, OpCode::Query, ResponseCode::FormErr);
            Err(m.to_vec().ok())
        }
    }
}

/// `response` encoded for `request`'s transport: an OPT record when the client sent one, cut
/// to the client's UDP size.
fn encode(request: &Message, mut response: Message, udp: bool) -> Option<Vec<u8>> {
    let limit = if udp {
        request
            .edns
            .as_ref()
            .map(|e| usize::from(e.max_payload()).max(PLAIN_UDP))
            .unwrap_or(PLAIN_UDP)
    } else {
        usize::from(u16::MAX)
    };
    if request.edns.is_some() && response.edns.is_none() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_UDP);
        response.set_edns(edns);
    }
    fit(response, limit)
}

impl DnsHandler {
    /// The response to one wire-format query, or `None` for bytes not worth answering
    /// (shorter than a header, or a response).
    pub async fn handle(&self, bytes: &[u8], udp: bool) -> Option<Vec<u8>> {
        match decode(bytes) {
            Err(reply) => reply,
            Ok(request) => {
                let (response, _) = self.respond(&request, udp).await;
                encode(&request, response, udp)
            }
        }
    }

    /// The answer, shuffled with `loadbalance`, and the plugin that gave it (for
    /// `coredns_dns_responses_total`).
    async fn respond(&self, request: &Message, udp: bool) -> (Message, Plugin) {
        let (mut m, plugin) = self.answer(request, udp).await;
        if self.loadbalance {
            crate::loadbalance::shuffle(&mut m);
        }
        (m, plugin)
    }

    async fn answer(&self, request: &Message, udp: bool) -> (Message, Plugin) {
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.recursion_available = true;
        let error = |code: ResponseCode| {
            let mut m = Message::response(request.metadata.id, request.metadata.op_code);
            m.metadata = meta;
            m.metadata.response_code = code;
            m.queries = request.queries.clone();
            m
        };
        if request.metadata.op_code != OpCode::Query {
            return (error(ResponseCode::NotImp), Plugin::None);
        }
        let [query] = request.queries.as_slice() else {
            return (error(ResponseCode::FormErr), Plugin::None);
        };
        let (lookup, serial) = match &self.authority {
            Some(authority) => {
                let state = self.state.read().unwrap_or_else(|p| p.into_inner());
                (
                    authority.lookup(&state, query.name(), query.query_type()),
                    state.serial,
                )
            }
            None => (Lookup::Fallthrough, 0),
        };
        let Some(authority) = &self.authority else {
            return self.forward(request, udp, &error).await;
        };
        let mut m = error(ResponseCode::NoError);
        match lookup {
            Lookup::Fallthrough => {
                if self.forwarder.is_none() && authority.serves(query.name()) {
                    return (error(ResponseCode::NXDomain), Plugin::Kubernetes);
                }
                return self.forward(request, udp, &error).await;
            }
            Lookup::Answer {
                answers,
                additionals,
            } => {
                m.metadata.authoritative = true;
                let chase = match answers.as_slice() {
                    [one] if query.query_type() != RecordType::CNAME => match &one.data {
                        RData::CNAME(t) => Some(t.0.clone()),
                        _ => None,
                    },
                    _ => None,
                };
                m.answers = answers;
                m.additionals = additionals;
                if let Some(target) = chase {
                    // An ExternalName's target, resolved as CoreDNS does for A/AAAA.
                    self.chase(&mut m, &target, query.query_type()).await;
                }
            }
            Lookup::NoData => {
                m.metadata.authoritative = true;
                m.authorities = vec![authority.soa_for(query.name(), serial)];
            }
            Lookup::NxDomain => {
                m.metadata.authoritative = true;
                m.metadata.response_code = ResponseCode::NXDomain;
                m.authorities = vec![authority.soa_for(query.name(), serial)];
            }
        }
        (m, Plugin::Kubernetes)
    }

    /// The name to the forwarder, when it takes it (`FROM`, not `except`); otherwise, as
    /// CoreDNS's last plugin passing a query on, SERVFAIL.
    async fn forward(
        &self,
        request: &Message,
        udp: bool,
        error: &(dyn Fn(ResponseCode) -> Message + Sync),
    ) -> (Message, Plugin) {
        let Some(query) = request.queries.first() else {
            return (error(ResponseCode::FormErr), Plugin::None);
        };
        let Some(f) = self.forwarder.as_ref().filter(|f| f.matches(query.name())) else {
            tracing::debug!(name = %query.name(), "no next plugin found");
            return (error(ResponseCode::ServFail), Plugin::None);
        };
        match f.resolve_from(request, !udp).await {
            Ok((mut r, cached)) => {
                r.metadata.recursion_available = true;
                (
                    r,
                    if cached {
                        Plugin::Cache
                    } else {
                        Plugin::Forward
                    },
                )
            }
            Err(e) => {
                tracing::debug!(name = %query.name(), error = %e, "forwarding failed");
                (error(ResponseCode::ServFail), Plugin::Forward)
            }
        }
    }

    async fn chase(&self, m: &mut Message, target: &hickory_proto::rr::Name, qtype: RecordType) {
        if let Some(authority) = &self.authority
            && authority.serves(target)
        {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            if let Lookup::Answer { answers, .. } = authority.lookup(&state, target, qtype) {
                m.answers.extend(answers);
            }
            return;
        }
        if let Some(f) = &self.forwarder
            && let Ok(r) = f.lookup(target, qtype).await
        {
            m.answers.extend(r.answers);
        }
    }
}

/// `m` encoded within `limit` bytes: additional records dropped first, then answers from the
/// end, with TC set when anything of the answer had to go.
fn fit(mut m: Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = m.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    m.additionals.clear();
    loop {
        let bytes = m.to_vec().ok()?;
        if bytes.len() <= limit {
            return Some(bytes);
        }
        if m.answers.pop().is_none() && m.authorities.pop().is_none() {
            return Some(bytes);
        }
        m.metadata.truncation = true;
    }
}

/// One server block as the server routes to it.
pub struct Block {
    /// The block's zone (`.`, `example.internal.`).
    pub zone: Name,
    pub handler: DnsHandler,
    /// Its request and response counters, when metrics are kept (see [`Router::count_into`]).
    pub counters: Option<Arc<ZoneCounters>>,
}

impl Block {
    pub fn new(zone: Name, handler: DnsHandler) -> Block {
        Block {
            zone,
            handler,
            counters: None,
        }
    }
}

/// `loop`'s probe: the random name it asks itself, and how often that came back.
pub struct LoopProbe {
    pub name: Name,
    /// The zone, for the message (`"."`).
    pub zone: String,
    seen: AtomicU32,
    disabled: AtomicBool,
}

impl LoopProbe {
    /// A probe for `zone`: `<random>.<random>.zone`.
    pub fn new(zone: &Name) -> Option<LoopProbe> {
        let label = || {
            use std::hash::{BuildHasher, RandomState};
            RandomState::new()
                .hash_one(std::time::Instant::now())
                .to_string()
        };
        let (a, b) = (label(), label());
        let name = Name::from_ascii(format!("{a}.{b}"))
            .ok()?
            .append_domain(zone)
            .ok()?;
        Some(LoopProbe {
            name,
            zone: zone.to_string(),
            seen: AtomicU32::new(0),
            disabled: AtomicBool::new(false),
        })
    }

    /// The probe got an answer or gave up: stop counting (a later query of the same name
    /// must not kill the server).
    pub fn disable(&self) {
        self.disabled.store(true, Ordering::Release);
    }

    /// A probe that failed starts over, as CoreDNS's does.
    pub fn reset(&self) {
        self.seen.store(0, Ordering::Release);
    }

    /// Count `name`; whether it has now been seen more than twice (a loop).
    fn saw(&self, name: &Name, qtype: RecordType) -> bool {
        if self.disabled.load(Ordering::Acquire)
            || qtype != RecordType::HINFO
            || !self.name.eq_case(&name.to_lowercase())
        {
            return false;
        }
        self.seen.fetch_add(1, Ordering::AcqRel) + 1 > 2
    }
}

/// The server blocks on one port: a query goes to the block of the most specific zone that
/// holds its name; no block, REFUSED (as CoreDNS answers).
pub struct Router {
    /// The port, for the `server` label (`dns://:53`) and loop's message.
    pub port: u16,
    pub blocks: Vec<Block>,
    /// The counters of queries no block holds (zone `dropped`), when metrics are kept.
    pub dropped: Option<Arc<ZoneCounters>>,
    pub probes: Vec<Arc<LoopProbe>>,
}

/// The router a listener asks, replaced whole when the Corefile is reloaded. A listener keeps
/// the router it last read and reads it again only when the generation moved, so a query
/// takes no lock.
pub struct SharedRouter {
    generation: AtomicU64,
    router: RwLock<Arc<Router>>,
}

impl SharedRouter {
    pub fn new(router: Router) -> Arc<SharedRouter> {
        Arc::new(SharedRouter {
            generation: AtomicU64::new(0),
            router: RwLock::new(Arc::new(router)),
        })
    }

    /// Serve `router` from the next query on.
    pub fn replace(&self, router: Router) {
        *self.router.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(router);
        // After the write: a listener that sees the new generation reads the new router.
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn current(&self) -> (u64, Arc<Router>) {
        let generation = self.generation.load(Ordering::Acquire);
        let router = self
            .router
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        (generation, router)
    }
}

/// A listener's copy of the shared router.
struct CachedRouter {
    shared: Arc<SharedRouter>,
    generation: u64,
    router: Arc<Router>,
}

impl CachedRouter {
    fn new(shared: Arc<SharedRouter>) -> CachedRouter {
        let (generation, router) = shared.current();
        CachedRouter {
            shared,
            generation,
            router,
        }
    }

    fn get(&mut self) -> &Arc<Router> {
        if self.shared.generation.load(Ordering::Acquire) != self.generation {
            (self.generation, self.router) = self.shared.current();
        }
        &self.router
    }
}

impl Router {
    /// A router of one block for the root zone.
    pub fn single(port: u16, handler: DnsHandler) -> Router {
        Router {
            port,
            blocks: vec![Block::new(Name::root(), handler)],
            dropped: None,
            probes: Vec::new(),
        }
    }

    /// The `server` label: `dns://:PORT`.
    pub fn server_label(&self) -> String {
        format!("dns://:{}", self.port)
    }

    /// Count this router's queries into `metrics`: each block's counters (and `dropped`'s)
    /// registered now, their labels made once, so a query only adds to atomics.
    pub fn count_into(&mut self, metrics: &Metrics) {
        let server = self.server_label();
        for b in &mut self.blocks {
            b.counters = Some(metrics.zone(&server, &b.zone.to_string()));
        }
        self.dropped = Some(metrics.zone(&server, "dropped"));
    }

    fn block_for(&self, name: &Name) -> Option<&Block> {
        self.blocks
            .iter()
            .filter(|b| b.zone.zone_of(name))
            .max_by_key(|b| b.zone.num_labels())
    }

    /// The response to one wire-format query from `peer`.
    pub async fn handle(&self, bytes: &[u8], udp: bool, peer: SocketAddr) -> Option<Vec<u8>> {
        let request = match decode(bytes) {
            Err(reply) => return reply,
            Ok(m) => m,
        };
        let Some(query) = request.queries.first() else {
            let (m, _) = self.blocks.first()?.handler.respond(&request, udp).await;
            return encode(&request, m, udp);
        };
        for p in &self.probes {
            if p.saw(query.name(), query.query_type()) {
                let msg = format!(
                    "Loop ({peer} -> :{}) detected for zone {:?}, see https://coredns.io/plugins/loop#troubleshooting. Query: \"HINFO {}\"",
                    self.port, p.zone, p.name
                );
                tracing::error!(target: "plugin/loop", "{msg}");
                eprintln!("[FATAL] plugin/loop: {msg}");
                std::process::exit(1);
            }
        }
        let block = self.block_for(query.name());
        let (response, plugin) = match block {
            Some(b) => b.handler.respond(&request, udp).await,
            None => {
                let mut m = Message::response(request.metadata.id, request.metadata.op_code);
                m.metadata = Metadata::response_from_request(&request.metadata);
                m.metadata.response_code = ResponseCode::Refused;
                m.queries = request.queries.clone();
                (m, Plugin::None)
            }
        };
        // No block: CoreDNS counts the query under the zone `dropped`.
        let counters = match block {
            Some(b) => b.counters.as_deref(),
            None => self.dropped.as_deref(),
        };
        if let Some(c) = counters {
            c.request(udp, peer.is_ipv4(), query.query_type());
            c.response(response.metadata.response_code, plugin);
        }
        encode(&request, response, udp)
    }
}

/// Answer UDP queries on `socket` until the task ends: one receiving loop per worker thread
/// of the runtime (see [`udp_loop`]).
pub async fn serve_udp(socket: UdpSocket, router: Arc<SharedRouter>) {
    let socket = Arc::new(socket);
    let loops = tokio::runtime::Handle::current()
        .metrics()
        .num_workers()
        .max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 1..loops {
        tasks.spawn(udp_loop(socket.clone(), router.clone()));
    }
    udp_loop(socket, router).await;
}

/// Receive queries and answer them. A query whose answer is ready at once (the cluster's
/// names, cached names) is answered in the loop; one that waits (forwarded, or an
/// ExternalName's target) goes on in a task of its own, so the loop never waits on an
/// upstream.
async fn udp_loop(socket: Arc<UdpSocket>, router: Arc<SharedRouter>) {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let mut router = CachedRouter::new(router);
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "receiving a UDP query");
                continue;
            }
        };
        let query = buf[..n].to_vec();
        let r = router.get().clone();
        let mut answer = Box::pin(async move { r.handle(&query, true, peer).await });
        // One poll here: a future that is pending has registered the no-op waker, and once
        // spawned is polled again by the runtime with its own, as a future must allow.
        let polled = answer
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        match polled {
            Poll::Ready(out) => {
                if let Some(out) = out {
                    let _ = socket.send_to(&out, peer).await;
                }
            }
            Poll::Pending => {
                let socket = socket.clone();
                tokio::spawn(async move {
                    if let Some(out) = answer.await {
                        let _ = socket.send_to(&out, peer).await;
                    }
                });
            }
        }
    }
}

/// Answer TCP connections on `listener` (several queries per connection, length-prefixed).
pub async fn serve_tcp(listener: TcpListener, router: Arc<SharedRouter>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "accepting a TCP connection");
                continue;
            }
        };
        tokio::spawn(tcp_connection(stream, peer, router.clone()));
    }
}

async fn tcp_connection(mut stream: TcpStream, peer: SocketAddr, router: Arc<SharedRouter>) {
    let mut router = CachedRouter::new(router);
    let idle = std::time::Duration::from_secs(10);
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(idle, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut query).await.is_err() {
            return;
        }
        let Some(out) = router.get().clone().handle(&query, false, peer).await else {
            return;
        };
        let Ok(n) = u16::try_from(out.len()) else {
            return;
        };
        let mut framed = n.to_be_bytes().to_vec();
        framed.extend(out);
        if let Err(e) = stream.write_all(&framed).await {
            tracing::debug!(peer = %peer, error = %e, "answering over TCP");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Kind;
    use hickory_proto::op::{MessageType, Query};
    use serde_json::json;

    fn handler(endpoints: usize) -> DnsHandler {
        let mut s = ClusterState::new();
        s.upsert(Kind::Namespace, &json!({"metadata": {"name": "default"}}));
        s.upsert(
            Kind::Service,
            &json!({"metadata": {"name": "many", "namespace": "default"}, "spec": {"clusterIP": "None"}}),
        );
        let eps: Vec<_> = (0..endpoints)
            .map(|i| json!({"addresses": [format!("10.0.{}.{}", i / 200, i % 200 + 1)]}))
            .collect();
        s.upsert(
            Kind::EndpointSlice,
            &json!({"metadata": {"name": "many-x", "namespace": "default",
                                 "labels": {"kubernetes.io/service-name": "many"}},
                    "addressType": "IPv4", "endpoints": eps}),
        );
        DnsHandler {
            authority: Some(Authority::new("cluster.local", &["in-addr.arpa"]).unwrap()),
            state: Arc::new(RwLock::new(s)),
            forwarder: None,
            loadbalance: false,
        }
    }

    fn query(name: &str, t: RecordType, edns: Option<u16>) -> Vec<u8> {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    #[tokio::test]
    async fn udp_answers_are_cut_to_size_with_tc_and_tcp_ones_are_whole() {
        let h = handler(100);
        let q = query("many.default.svc.cluster.local.", RecordType::A, None);
        let udp = h.handle(&q, true).await.unwrap();
        assert!(udp.len() <= 512, "{}", udp.len());
        let m = Message::from_vec(&udp).unwrap();
        assert!(m.metadata.truncation);
        assert_eq!(m.metadata.id, 7);
        assert!(m.answers.len() < 100);
        // EDNS raises the limit to the client's size.
        let q4k = query("many.default.svc.cluster.local.", RecordType::A, Some(4096));
        let m = Message::from_vec(&h.handle(&q4k, true).await.unwrap()).unwrap();
        assert!(!m.metadata.truncation);
        assert_eq!(m.answers.len(), 100);
        assert!(m.edns.is_some());
        let m = Message::from_vec(&h.handle(&q, false).await.unwrap()).unwrap();
        assert!(!m.metadata.truncation);
        assert_eq!(m.answers.len(), 100);
        assert!(m.metadata.authoritative);
    }

    #[tokio::test]
    async fn nxdomain_and_nodata_carry_the_soa_and_garbage_gets_formerr() {
        let h = handler(1);
        let m = Message::from_vec(
            &h.handle(
                &query("nope.default.svc.cluster.local.", RecordType::A, None),
                true,
            )
            .await
            .unwrap(),
        )
        .unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
        let m = Message::from_vec(
            &h.handle(
                &query("many.default.svc.cluster.local.", RecordType::AAAA, None),
                true,
            )
            .await
            .unwrap(),
        )
        .unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
        assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
        // No forwarder: names elsewhere have no next plugin, SERVFAIL as in CoreDNS.
        let m = Message::from_vec(
            &h.handle(&query("example.com.", RecordType::A, None), true)
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        let garbage = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff];
        let m = Message::from_vec(&h.handle(&garbage, true).await.unwrap()).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(m.metadata.id, 0x1234);
    }

    /// An upstream on loopback answering every A question with `ip` (TTL 60).
    async fn upstream(ip: [u8; 4]) -> SocketAddr {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
                let q = Message::from_vec(&buf[..n]).unwrap();
                let mut r = Message::response(q.metadata.id, OpCode::Query);
                r.queries = q.queries.clone();
                r.answers.push(hickory_proto::rr::Record::from_rdata(
                    q.queries[0].name().clone(),
                    60,
                    RData::A(hickory_proto::rr::rdata::A::from(std::net::Ipv4Addr::from(
                        ip,
                    ))),
                ));
                let _ = sock.send_to(&r.to_vec().unwrap(), peer).await;
            }
        });
        addr
    }

    fn answer(bytes: Option<Vec<u8>>) -> (ResponseCode, Vec<String>) {
        let m = Message::from_vec(&bytes.unwrap()).unwrap();
        (
            m.metadata.response_code,
            m.answers.iter().map(|r| r.data.to_string()).collect(),
        )
    }

    #[tokio::test]
    async fn queries_go_to_the_most_specific_block_and_are_counted() {
        let root_up = upstream([192, 0, 2, 1]).await;
        let stub_up = upstream([10, 9, 8, 7]).await;
        let metrics = Arc::new(Metrics::default());
        let mut root = handler(1);
        root.forwarder = Some(
            Forwarder::new(vec![root_up], 30).with_cache_counters(metrics.cache("dns://:53", ".")),
        );
        let stub = DnsHandler {
            authority: None,
            state: root.state.clone(),
            forwarder: Some(Forwarder::new(vec![stub_up], 0).with_scope(
                Name::root(),
                vec![Name::from_ascii("skip.example.internal.").unwrap()],
            )),
            loadbalance: false,
        };
        let mut router = Router {
            port: 53,
            blocks: vec![
                Block::new(Name::root(), root),
                Block::new(Name::from_ascii("example.internal.").unwrap(), stub),
            ],
            dropped: None,
            probes: Vec::new(),
        };
        router.count_into(&metrics);
        let peer: SocketAddr = "10.0.0.5:4000".parse().unwrap();
        let ask = |name: &str| {
            let q = query(name, RecordType::A, None);
            let router = &router;
            async move { answer(router.handle(&q, true, peer).await) }
        };
        // The stub domain's names go to its own upstream; the rest to the root's.
        assert_eq!(
            ask("db.example.internal.").await,
            (ResponseCode::NoError, vec!["10.9.8.7".to_string()])
        );
        assert_eq!(
            ask("example.com.").await,
            (ResponseCode::NoError, vec!["192.0.2.1".to_string()])
        );
        // `except`: not forwarded, and no plugin after it.
        assert_eq!(
            ask("a.skip.example.internal.").await,
            (ResponseCode::ServFail, vec![])
        );
        // The cluster's names stay with the kubernetes block.
        assert_eq!(
            ask("nope.default.svc.cluster.local.").await.0,
            ResponseCode::NXDomain
        );
        // Again from the cache.
        assert_eq!(
            ask("example.com.").await,
            (ResponseCode::NoError, vec!["192.0.2.1".to_string()])
        );
        let l = |zone: &str, rcode: &str, plugin: &str| {
            metrics.get(
                "coredns_dns_responses_total",
                &[
                    ("server", "dns://:53"),
                    ("zone", zone),
                    ("view", ""),
                    ("rcode", rcode),
                    ("plugin", plugin),
                ],
            )
        };
        assert_eq!(l("example.internal.", "NOERROR", "forward"), 1);
        assert_eq!(l("example.internal.", "SERVFAIL", ""), 1);
        assert_eq!(l(".", "NOERROR", "forward"), 1);
        assert_eq!(l(".", "NOERROR", "cache"), 1);
        assert_eq!(l(".", "NXDOMAIN", "kubernetes"), 1);
        let requests = |zone: &str| {
            metrics.get(
                "coredns_dns_requests_total",
                &[
                    ("server", "dns://:53"),
                    ("zone", zone),
                    ("view", ""),
                    ("proto", "udp"),
                    ("family", "1"),
                    ("type", "A"),
                ],
            )
        };
        assert_eq!((requests("."), requests("example.internal.")), (3, 2));
        let cache = [("server", "dns://:53"), ("zones", "."), ("view", "")];
        assert_eq!(metrics.get("coredns_cache_misses_total", &cache), 1);
        let mut hit = cache.to_vec();
        hit.push(("type", "success"));
        assert_eq!(metrics.get("coredns_cache_hits_total", &hit), 1);
    }

    #[tokio::test]
    async fn no_block_for_the_zone_is_refused_and_counted_as_dropped() {
        let mut router = Router {
            port: 53,
            blocks: vec![Block::new(
                Name::from_ascii("example.internal.").unwrap(),
                handler(1),
            )],
            dropped: None,
            probes: Vec::new(),
        };
        let metrics = Metrics::default();
        router.count_into(&metrics);
        let q = query("example.com.", RecordType::A, None);
        let got = answer(router.handle(&q, true, "[::1]:1".parse().unwrap()).await);
        assert_eq!(got, (ResponseCode::Refused, vec![]));
        let dropped = [
            ("server", "dns://:53"),
            ("zone", "dropped"),
            ("view", ""),
            ("proto", "udp"),
            ("family", "2"),
            ("type", "A"),
        ];
        assert_eq!(metrics.get("coredns_dns_requests_total", &dropped), 1);
    }

    async fn firsts(h: &DnsHandler, q: &[u8]) -> std::collections::BTreeSet<String> {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..100 {
            let (_, answers) = answer(h.handle(q, true).await);
            assert_eq!(answers.len(), 4);
            seen.insert(answers[0].clone());
        }
        seen
    }

    #[tokio::test]
    async fn loadbalance_shuffles_a_headless_services_addresses() {
        let mut h = handler(4);
        let q = query("many.default.svc.cluster.local.", RecordType::A, None);
        assert_eq!(firsts(&h, &q).await.len(), 1, "in address order without it");
        h.loadbalance = true;
        assert_eq!(
            firsts(&h, &q).await.len(),
            4,
            "each address first some time"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn udp_listeners_answer_the_clusters_names_and_forwarded_ones() {
        let up = upstream([192, 0, 2, 9]).await;
        let mut h = handler(1);
        h.forwarder = Some(Forwarder::new(vec![up], 0));
        let shared = SharedRouter::new(Router::single(53, h));
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        tokio::spawn(serve_udp(sock, shared.clone()));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(addr).await.unwrap();
        let ask = |name: &'static str| {
            let client = &client;
            async move {
                client
                    .send(&query(name, RecordType::A, None))
                    .await
                    .unwrap();
                let mut buf = vec![0u8; 4096];
                let n =
                    tokio::time::timeout(std::time::Duration::from_secs(10), client.recv(&mut buf))
                        .await
                        .unwrap()
                        .unwrap();
                answer(Some(buf[..n].to_vec()))
            }
        };
        // Answered at once (in the receiving loop), and after an upstream's answer (in a task).
        assert_eq!(
            ask("many.default.svc.cluster.local.").await,
            (ResponseCode::NoError, vec!["10.0.0.1".to_string()])
        );
        assert_eq!(
            ask("example.com.").await,
            (ResponseCode::NoError, vec!["192.0.2.9".to_string()])
        );
        // A reload: the listener serves the new router from the next query on.
        shared.replace(Router {
            port: 53,
            blocks: vec![Block::new(
                Name::from_ascii("example.internal.").unwrap(),
                handler(1),
            )],
            dropped: None,
            probes: Vec::new(),
        });
        assert_eq!(ask("example.com.").await, (ResponseCode::Refused, vec![]));
    }

    #[test]
    fn the_loop_probe_counts_its_own_name_until_disabled() {
        let p = LoopProbe::new(&Name::root()).unwrap();
        assert_eq!(p.name.num_labels(), 2);
        let other = Name::from_ascii("x.y.").unwrap();
        assert!(!p.saw(&other, RecordType::HINFO));
        assert!(!p.saw(&p.name, RecordType::A));
        assert!(!p.saw(&p.name, RecordType::HINFO));
        assert!(!p.saw(&p.name, RecordType::HINFO));
        assert!(
            p.saw(&p.name, RecordType::HINFO),
            "the third time is a loop"
        );
        p.reset();
        assert!(!p.saw(&p.name, RecordType::HINFO));
        p.disable();
        for _ in 0..5 {
            assert!(!p.saw(&p.name, RecordType::HINFO));
        }
    }
}
