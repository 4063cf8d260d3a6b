//! Names outside the cluster's zones: sent to upstream resolvers (CoreDNS's
//! `forward . /etc/resolv.conf`), answers kept for at most the cache's TTL (`cache 30`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::DnsError;
use crate::corefile::{HealthCheck, Policy};
use crate::metrics::{CacheCounters, Metrics};

/// How long one upstream gets before the next is tried.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a health check waits for its answer (CoreDNS's checker's read timeout).
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// Entries kept at most (CoreDNS's cache holds 9984 per kind by default).
const CACHE_CAPACITY: usize = 10_000;

/// The nameservers of a resolv.conf, in order (IPv4 and IPv6, port 53).
pub fn resolv_conf_nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            let ip: IpAddr = words.next()?.split('%').next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    name: Name,
    qtype: RecordType,
    qclass: DNSClass,
    dnssec_ok: bool,
}

struct Entry {
    message: Message,
    stored: Instant,
    expires: Instant,
}

/// One upstream and its health, as CoreDNS's forward keeps it per proxy.
struct Upstream {
    addr: SocketAddr,
    /// Health checks failed in a row (reset by one that passes).
    fails: AtomicU32,
    /// A check loop runs for it (at most one at a time).
    checking: AtomicBool,
}

/// A forwarder to upstream resolvers with a TTL-capped cache.
///
/// Health, as CoreDNS's forward plugin checks it: an upstream whose exchange fails gets a
/// check loop (`. IN NS` every `health_check` interval until one is answered, any answer at
/// all counting as healthy); each failed check counts, and an upstream with more than
/// `max_fails` failed checks in a row is down: skipped by queries until a check passes. When
/// every upstream is down, a random one is tried anyway (or, with `failfast`, none).
pub struct Forwarder {
    upstreams: Vec<Arc<Upstream>>,
    max_ttl: u32,
    cache: Mutex<HashMap<Key, Entry>>,
    /// `forward FROM`: names under it are forwarded (the root: all).
    from: Name,
    /// `except`: names under these are not.
    except: Vec<Name>,
    policy: Policy,
    next: AtomicUsize,
    cache_counters: Option<Arc<CacheCounters>>,
    health: HealthCheck,
    health_check_query: Option<Arc<Message>>,
    /// `coredns_forward_healthcheck_broken_total`'s registry, when metrics are kept.
    metrics: Option<Arc<Metrics>>,
}

impl Forwarder {
    /// Forwarding to `upstreams` in order; answers cached up to `max_ttl` seconds (0: none);
    /// no health checks (`max_fails 0`) until [`Forwarder::with_health`].
    pub fn new(upstreams: Vec<SocketAddr>, max_ttl: u32) -> Forwarder {
        Forwarder {
            upstreams: upstreams
                .into_iter()
                .map(|addr| {
                    Arc::new(Upstream {
                        addr,
                        fails: AtomicU32::new(0),
                        checking: AtomicBool::new(false),
                    })
                })
                .collect(),
            max_ttl,
            cache: Mutex::new(HashMap::new()),
            from: Name::root(),
            except: Vec::new(),
            policy: Policy::Sequential,
            next: AtomicUsize::new(0),
            cache_counters: None,
            health: HealthCheck {
                max_fails: 0,
                ..HealthCheck::default()
            },
            health_check_query: None,
            metrics: None,
        }
    }

    /// Only names under `from` and under none of `except` are forwarded.
    pub fn with_scope(mut self, from: Name, except: Vec<Name>) -> Forwarder {
        self.from = from;
        self.except = except;
        self
    }

    /// The order upstreams are tried in.
    pub fn with_policy(mut self, policy: Policy) -> Forwarder {
        self.policy = policy;
        self
    }

    /// Check upstreams that fail, and skip those that are down (`max_fails`, `health_check`).
    pub fn with_health(mut self, health: HealthCheck) -> Forwarder {
        let domain = Name::from_ascii(&health.domain).unwrap_or_else(|_| Name::root());
        let mut m = Message::new(0, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = health.recursion_desired;
        m.add_query(Query::query(domain, RecordType::NS));
        self.health_check_query = Some(Arc::new(m));
        self.health = health;
        self
    }

    /// Count cache lookups into `c`.
    pub fn with_cache_counters(mut self, c: Arc<CacheCounters>) -> Forwarder {
        self.cache_counters = Some(c);
        self
    }

    /// Count the times every upstream was down into `m`.
    pub fn with_metrics(mut self, m: Arc<Metrics>) -> Forwarder {
        self.metrics = Some(m);
        self
    }

    /// Whether `name` is this forwarder's to forward (`FROM`, minus `except`).
    pub fn matches(&self, name: &Name) -> bool {
        self.from.zone_of(name) && !self.except.iter().any(|e| e.zone_of(name))
    }

    /// Whether `upstream` is down: more than `max_fails` failed checks in a row.
    fn down(&self, upstream: &Upstream) -> bool {
        self.health.max_fails != 0 && upstream.fails.load(Ordering::Acquire) > self.health.max_fails
    }

    /// The upstreams in the order this query tries them, by the policy.
    fn ordered(&self) -> Vec<Arc<Upstream>> {
        let n = self.upstreams.len();
        if n < 2 {
            return self.upstreams.clone();
        }
        let start = match self.policy {
            Policy::Sequential => 0,
            Policy::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % n,
            Policy::Random => usize::from(rand_id()) % n,
        };
        let mut v = self.upstreams.clone();
        v.rotate_left(start);
        if self.policy == Policy::Random {
            // The rest in a random order too, as CoreDNS's random policy shuffles them all.
            for i in (2..v.len()).rev() {
                let j = 1 + usize::from(rand_id()) % i;
                v.swap(i, j);
            }
        }
        v
    }

    /// The upstreams this query tries: those up, in the policy's order; when all are down, one
    /// at random (none with `failfast_all_unhealthy_upstreams`), as CoreDNS assumes its
    /// health checking is what broke.
    fn candidates(&self) -> Vec<Arc<Upstream>> {
        let mut up = self.ordered();
        up.retain(|u| !self.down(u));
        if up.is_empty() && !self.upstreams.is_empty() {
            if let Some(m) = &self.metrics {
                m.inc("coredns_forward_healthcheck_broken_total", &[]);
            }
            if self.health.failfast {
                return Vec::new();
            }
            let i = usize::from(rand_id()) % self.upstreams.len();
            up.push(self.upstreams[i].clone());
        }
        up
    }

    /// `upstream` failed an exchange: check it until it answers (unless checks are off or a
    /// check loop already runs for it).
    fn failed(&self, upstream: &Arc<Upstream>) {
        let Some(query) = self.health_check_query.clone() else {
            return;
        };
        if self.health.max_fails == 0 || upstream.checking.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(upstream);
        let interval = self.health.interval;
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            // Until the check passes, or the forwarder (a config reloaded away) is gone.
            while let Some(u) = weak.upgrade() {
                let mut ping = (*query).clone();
                ping.metadata.id = rand_id();
                match exchange(u.addr, &ping, false, HEALTH_CHECK_TIMEOUT).await {
                    Ok(_) => {
                        u.fails.store(0, Ordering::Release);
                        u.checking.store(false, Ordering::Release);
                        tracing::debug!(upstream = %u.addr, "upstream healthy");
                        return;
                    }
                    Err(e) => {
                        let fails = u.fails.fetch_add(1, Ordering::AcqRel).saturating_add(1);
                        if let Some(m) = &metrics {
                            m.inc(
                                "coredns_proxy_healthcheck_failures_total",
                                &[("proxy_name", "forward"), ("to", &u.addr.to_string())],
                            );
                        }
                        tracing::debug!(upstream = %u.addr, fails, error = %e, "health check failed");
                    }
                }
                drop(u);
                tokio::time::sleep(interval).await;
            }
        });
    }

    fn count_cache(&self, hit: Option<&Message>) {
        let Some(c) = &self.cache_counters else {
            return;
        };
        if self.max_ttl == 0 {
            return;
        }
        c.lookup(hit.map(|m| m.answers.is_empty()));
    }

    fn key(query: &Query, dnssec_ok: bool) -> Key {
        Key {
            name: query.name().to_lowercase(),
            qtype: query.query_type(),
            qclass: query.query_class(),
            dnssec_ok,
        }
    }

    /// The answer to `request`'s question, from the cache or an upstream (over TCP when
    /// `tcp`), with `request`'s id.
    pub async fn resolve(&self, request: &Message, tcp: bool) -> Result<Message, DnsError> {
        self.resolve_from(request, tcp).await.map(|(m, _)| m)
    }

    /// As [`Forwarder::resolve`], and whether the answer came from the cache.
    pub async fn resolve_from(
        &self,
        request: &Message,
        tcp: bool,
    ) -> Result<(Message, bool), DnsError> {
        let query = request.queries.first().ok_or(DnsError::NoQuestion)?;
        let dnssec_ok = request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
        let key = Self::key(query, dnssec_ok);
        let cached = self.cached(&key);
        self.count_cache(cached.as_ref());
        if let Some(mut cached) = cached {
            cached.metadata.id = request.metadata.id;
            cached.queries = request.queries.clone();
            return Ok((cached, true));
        }
        let mut last = DnsError::NoUpstream;
        for upstream in &self.candidates() {
            let result = exchange(upstream.addr, request, tcp, UPSTREAM_TIMEOUT).await;
            match result {
                Ok(mut response) => {
                    if response.metadata.truncation && !tcp {
                        // Too big for UDP upstream: ask again over TCP, as CoreDNS's forward
                        // does, so the client gets the whole answer or its own truncation.
                        if let Ok(r) =
                            exchange(upstream.addr, request, true, UPSTREAM_TIMEOUT).await
                        {
                            response = r;
                        }
                    }
                    self.store(key, &response);
                    response.metadata.id = request.metadata.id;
                    return Ok((response, false));
                }
                Err(e) => {
                    tracing::debug!(upstream = %upstream.addr, error = %e, "upstream failed");
                    self.failed(upstream);
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// A question of our own (an ExternalName's target): the answer's records.
    pub async fn lookup(&self, name: &Name, qtype: RecordType) -> Result<Message, DnsError> {
        let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(name.clone(), qtype));
        self.resolve(&m, false).await
    }

    fn cached(&self, key: &Key) -> Option<Message> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let e = cache.get(key)?;
        let now = Instant::now();
        if now >= e.expires {
            return None;
        }
        let age = u32::try_from(now.duration_since(e.stored).as_secs()).unwrap_or(u32::MAX);
        let mut m = e.message.clone();
        for r in m
            .answers
            .iter_mut()
            .chain(m.authorities.iter_mut())
            .chain(m.additionals.iter_mut())
        {
            r.ttl = r.ttl.saturating_sub(age);
        }
        Some(m)
    }

    fn store(&self, key: Key, response: &Message) {
        if self.max_ttl == 0 || response.metadata.truncation {
            return;
        }
        use hickory_proto::op::ResponseCode;
        let rcode = response.metadata.response_code;
        if rcode != ResponseCode::NoError && rcode != ResponseCode::NXDomain {
            return;
        }
        // Positive answers live their records' least TTL; denials their SOA's minimum; both
        // at most the cache's cap.
        let ttl = if response.answers.is_empty() {
            response
                .authorities
                .iter()
                .find_map(|r| match &r.data {
                    RData::SOA(soa) => Some(soa.minimum.min(r.ttl)),
                    _ => None,
                })
                .unwrap_or(0)
        } else {
            response.answers.iter().map(|r| r.ttl).min().unwrap_or(0)
        }
        .min(self.max_ttl);
        if ttl == 0 {
            return;
        }
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, e| e.expires > now);
            if cache.len() >= CACHE_CAPACITY {
                return;
            }
        }
        cache.insert(
            key,
            Entry {
                message: response.clone(),
                stored: now,
                expires: now + Duration::from_secs(u64::from(ttl)),
            },
        );
    }
}

pub(crate) fn rand_id() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    (RandomState::new().hash_one(Instant::now()) & 0xffff) as u16
}

/// One question to one upstream.
async fn exchange(
    upstream: SocketAddr,
    request: &Message,
    tcp: bool,
    timeout: Duration,
) -> Result<Message, DnsError> {
    let id = rand_id();
    let mut out = request.clone();
    out.metadata.id = id;
    let bytes = out.to_vec().map_err(DnsError::Proto)?;
    let io = async {
        if tcp {
            let mut s = TcpStream::connect(upstream).await?;
            let len = u16::try_from(bytes.len()).map_err(|_| std::io::Error::other("too long"))?;
            s.write_all(&len.to_be_bytes()).await?;
            s.write_all(&bytes).await?;
            let mut lb = [0u8; 2];
            s.read_exact(&mut lb).await?;
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(lb))];
            s.read_exact(&mut buf).await?;
            Ok::<Vec<u8>, std::io::Error>(buf)
        } else {
            let bind: SocketAddr = if upstream.is_ipv4() {
                "0.0.0.0:0".parse().map_err(std::io::Error::other)?
            } else {
                "[::]:0".parse().map_err(std::io::Error::other)?
            };
            let s = UdpSocket::bind(bind).await?;
            s.connect(upstream).await?;
            s.send(&bytes).await?;
            let mut buf = vec![0u8; 65535];
            loop {
                let n = s.recv(&mut buf).await?;
                // Anything but the answer to this id (a late one) is dropped.
                if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                    buf.truncate(n);
                    return Ok(buf);
                }
            }
        }
    };
    let buf = tokio::time::timeout(timeout, io)
        .await
        .map_err(|_| DnsError::Timeout(upstream))?
        .map_err(|e| DnsError::Io {
            context: format!("asking {upstream}"),
            source: e,
        })?;
    let m = Message::from_vec(&buf).map_err(|e| DnsError::Decode(e.to_string()))?;
    if m.metadata.message_type != MessageType::Response {
        return Err(DnsError::Decode("upstream sent a query".into()));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(v: &[Arc<Upstream>]) -> Vec<SocketAddr> {
        v.iter().map(|u| u.addr).collect()
    }

    #[test]
    fn scope_and_order() {
        let ups: Vec<SocketAddr> = ["10.0.0.1:53", "10.0.0.2:53", "10.0.0.3:53"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let f = Forwarder::new(ups.clone(), 0).with_scope(
            Name::from_ascii("example.internal.").unwrap(),
            vec![Name::from_ascii("skip.example.internal.").unwrap()],
        );
        let n = |s: &str| Name::from_ascii(s).unwrap();
        assert!(f.matches(&n("a.example.internal.")));
        assert!(f.matches(&n("EXAMPLE.internal.")));
        assert!(!f.matches(&n("a.skip.example.internal.")));
        assert!(!f.matches(&n("example.com.")));
        assert_eq!(addrs(&f.ordered()), ups);
        let rr = Forwarder::new(ups.clone(), 0).with_policy(Policy::RoundRobin);
        assert_eq!(rr.ordered()[0].addr, ups[0]);
        assert_eq!(rr.ordered()[0].addr, ups[1]);
        let random = Forwarder::new(ups.clone(), 0).with_policy(Policy::Random);
        let mut o = addrs(&random.ordered());
        o.sort();
        assert_eq!(o, ups, "every upstream once");
    }

    #[test]
    fn down_upstreams_are_skipped_and_when_all_are_down_one_is_tried() {
        let ups: Vec<SocketAddr> = ["10.0.0.1:53", "10.0.0.2:53"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let metrics = Arc::new(Metrics::default());
        let f = Forwarder::new(ups.clone(), 0)
            .with_health(HealthCheck::default())
            .with_metrics(metrics.clone());
        // Two failed checks in a row are not yet down (more than max_fails are).
        f.upstreams[0].fails.store(2, Ordering::Release);
        assert_eq!(addrs(&f.candidates()), ups);
        f.upstreams[0].fails.store(3, Ordering::Release);
        assert_eq!(addrs(&f.candidates()), [ups[1]]);
        f.upstreams[1].fails.store(3, Ordering::Release);
        let one = f.candidates();
        assert_eq!(one.len(), 1, "a random one when all are down");
        assert!(ups.contains(&one[0].addr));
        assert_eq!(
            metrics.get("coredns_forward_healthcheck_broken_total", &[]),
            1
        );
        // failfast_all_unhealthy_upstreams: none.
        let failfast = Forwarder::new(ups.clone(), 0).with_health(HealthCheck {
            failfast: true,
            ..HealthCheck::default()
        });
        for u in &failfast.upstreams {
            u.fails.store(3, Ordering::Release);
        }
        assert!(failfast.candidates().is_empty());
        // max_fails 0: never down.
        let never = Forwarder::new(ups.clone(), 0).with_health(HealthCheck {
            max_fails: 0,
            ..HealthCheck::default()
        });
        never.upstreams[0].fails.store(100, Ordering::Release);
        assert_eq!(addrs(&never.candidates()), ups);
    }

    /// An upstream on `sock` answering A questions with `ip` and NS questions (the checks)
    /// with an empty NOERROR.
    fn answering(sock: UdpSocket, ip: [u8; 4]) {
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
                let q = Message::from_vec(&buf[..n]).unwrap();
                let mut r = Message::response(q.metadata.id, OpCode::Query);
                r.queries = q.queries.clone();
                if q.queries[0].query_type() == RecordType::A {
                    r.answers.push(hickory_proto::rr::Record::from_rdata(
                        q.queries[0].name().clone(),
                        60,
                        RData::A(hickory_proto::rr::rdata::A::from(std::net::Ipv4Addr::from(
                            ip,
                        ))),
                    ));
                }
                let _ = sock.send_to(&r.to_vec().unwrap(), peer).await;
            }
        });
    }

    async fn eventually(what: &str, check: impl Fn() -> bool) {
        for _ in 0..600 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn a_dead_upstream_is_marked_down_skipped_and_used_again_once_it_answers() {
        // Nothing listens on `dead`'s port (refused at once) until the test binds it.
        let dead = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let live_sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let live = live_sock.local_addr().unwrap();
        answering(live_sock, [192, 0, 2, 2]);
        let metrics = Arc::new(Metrics::default());
        let f = Forwarder::new(vec![dead, live], 0)
            .with_health(HealthCheck {
                interval: Duration::from_millis(20),
                ..HealthCheck::default()
            })
            .with_metrics(metrics.clone());
        let name = Name::from_ascii("example.test.").unwrap();
        let first = |m: Message| m.answers.first().map(|r| r.data.to_string());
        // `dead` is first (sequential); it fails, `live` answers, and `dead` is checked.
        let m = f.lookup(&name, RecordType::A).await.unwrap();
        assert_eq!(first(m).as_deref(), Some("192.0.2.2"));
        eventually("dead to be marked down", || f.down(&f.upstreams[0])).await;
        assert!(!f.down(&f.upstreams[1]));
        assert_eq!(addrs(&f.candidates()), [live]);
        let failures = [("proxy_name", "forward"), ("to", &*dead.to_string())];
        assert!(metrics.get("coredns_proxy_healthcheck_failures_total", &failures) >= 3);
        let m = f.lookup(&name, RecordType::A).await.unwrap();
        assert_eq!(first(m).as_deref(), Some("192.0.2.2"));
        // It comes back: a check passes, it is up, and first again.
        let Ok(back) = UdpSocket::bind(dead).await else {
            eprintln!("skipped the return: {dead} was taken meanwhile");
            return;
        };
        answering(back, [192, 0, 2, 1]);
        eventually("dead to be up again", || !f.down(&f.upstreams[0])).await;
        let m = f.lookup(&name, RecordType::A).await.unwrap();
        assert_eq!(first(m).as_deref(), Some("192.0.2.1"));
    }

    #[test]
    fn nameservers_of_a_resolv_conf() {
        let text = "# generated\nsearch ec2.internal\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\noptions ndots:5\nnameserver bogus\n";
        assert_eq!(
            resolv_conf_nameservers(text),
            vec![
                "10.0.0.2:53".parse::<SocketAddr>().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }
}
