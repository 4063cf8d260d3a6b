//! Names outside the cluster's zones: sent to upstream resolvers (CoreDNS's
//! `forward . /etc/resolv.conf`), answers kept for at most the cache's TTL (`cache 30`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::DnsError;
use crate::corefile::Policy;
use crate::metrics::Metrics;

/// How long one upstream gets before the next is tried.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
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

/// Where the cache's counters go: the metrics and the block's `server` and `zones` labels.
pub struct CacheMetrics {
    pub metrics: Arc<Metrics>,
    pub server: String,
    pub zones: String,
}

/// A forwarder to upstream resolvers with a TTL-capped cache.
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    max_ttl: u32,
    cache: Mutex<HashMap<Key, Entry>>,
    /// `forward FROM`: names under it are forwarded (the root: all).
    from: Name,
    /// `except`: names under these are not.
    except: Vec<Name>,
    policy: Policy,
    next: AtomicUsize,
    cache_metrics: Option<CacheMetrics>,
    /// Upstreams that failed lately, and when: tried after the others until they answer
    /// again (CoreDNS's forward marks failing upstreams down with its health checks).
    failed: Mutex<HashMap<SocketAddr, Instant>>,
}

/// How long a failed upstream goes to the end of the order.
const FAILED_FOR: Duration = Duration::from_secs(10);

impl Forwarder {
    /// Forwarding to `upstreams` in order; answers cached up to `max_ttl` seconds (0: none).
    pub fn new(upstreams: Vec<SocketAddr>, max_ttl: u32) -> Forwarder {
        Forwarder {
            upstreams,
            max_ttl,
            cache: Mutex::new(HashMap::new()),
            from: Name::root(),
            except: Vec::new(),
            policy: Policy::Sequential,
            next: AtomicUsize::new(0),
            cache_metrics: None,
            failed: Mutex::new(HashMap::new()),
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

    /// Count cache hits and misses into `m`.
    pub fn with_cache_metrics(mut self, m: CacheMetrics) -> Forwarder {
        self.cache_metrics = Some(m);
        self
    }

    /// Whether `name` is this forwarder's to forward (`FROM`, minus `except`).
    pub fn matches(&self, name: &Name) -> bool {
        self.from.zone_of(name) && !self.except.iter().any(|e| e.zone_of(name))
    }

    /// The upstreams in the order this query tries them.
    fn ordered(&self) -> Vec<SocketAddr> {
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
        // Those that failed lately last (a stable sort keeps the policy's order otherwise).
        let now = Instant::now();
        let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        v.sort_by_key(|a| {
            failed
                .get(a)
                .is_some_and(|t| now.duration_since(*t) < FAILED_FOR)
        });
        v
    }

    fn mark(&self, upstream: SocketAddr, ok: bool) {
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if ok {
            failed.remove(&upstream);
        } else {
            failed.insert(upstream, Instant::now());
        }
    }

    fn count_cache(&self, hit: Option<&Message>) {
        let Some(m) = &self.cache_metrics else {
            return;
        };
        if self.max_ttl == 0 {
            return;
        }
        let base = [
            ("server", m.server.as_str()),
            ("zones", m.zones.as_str()),
            ("view", ""),
        ];
        m.metrics.inc("coredns_cache_requests_total", &base);
        match hit {
            Some(msg) => {
                let kind = if msg.answers.is_empty() {
                    "denial"
                } else {
                    "success"
                };
                let mut l = base.to_vec();
                l.push(("type", kind));
                m.metrics.inc("coredns_cache_hits_total", &l);
            }
            None => m.metrics.inc("coredns_cache_misses_total", &base),
        }
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
        for upstream in &self.ordered() {
            let result = exchange(*upstream, request, tcp).await;
            self.mark(*upstream, result.is_ok());
            match result {
                Ok(mut response) => {
                    if response.metadata.truncation && !tcp {
                        // Too big for UDP upstream: ask again over TCP, as CoreDNS's forward
                        // does, so the client gets the whole answer or its own truncation.
                        if let Ok(r) = exchange(*upstream, request, true).await {
                            response = r;
                        }
                    }
                    self.store(key, &response);
                    response.metadata.id = request.metadata.id;
                    return Ok((response, false));
                }
                Err(e) => {
                    tracing::debug!(upstream = %upstream, error = %e, "upstream failed");
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
async fn exchange(upstream: SocketAddr, request: &Message, tcp: bool) -> Result<Message, DnsError> {
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
    let buf = tokio::time::timeout(UPSTREAM_TIMEOUT, io)
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
        assert_eq!(f.ordered(), ups);
        let rr = Forwarder::new(ups.clone(), 0).with_policy(Policy::RoundRobin);
        assert_eq!(rr.ordered()[0], ups[0]);
        assert_eq!(rr.ordered()[0], ups[1]);
        let random = Forwarder::new(ups.clone(), 0).with_policy(Policy::Random);
        let mut o = random.ordered();
        o.sort();
        assert_eq!(o, ups, "every upstream once");
    }

    #[tokio::test]
    async fn a_failing_upstream_is_tried_last_until_it_answers() {
        // Nothing listens on `dead` (refused at once); `live` answers.
        let dead = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let live_sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let live = live_sock.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, peer)) = live_sock.recv_from(&mut buf).await {
                let q = Message::from_vec(&buf[..n]).unwrap();
                let mut r = Message::response(q.metadata.id, OpCode::Query);
                r.queries = q.queries.clone();
                let _ = live_sock.send_to(&r.to_vec().unwrap(), peer).await;
            }
        });
        let f = Forwarder::new(vec![dead, live], 0);
        assert_eq!(f.ordered(), vec![dead, live]);
        let name = Name::from_ascii("example.test.").unwrap();
        assert!(f.lookup(&name, RecordType::A).await.is_ok());
        assert_eq!(f.ordered(), vec![live, dead]);
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
