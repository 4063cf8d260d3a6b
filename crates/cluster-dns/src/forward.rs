//! Names outside the cluster's zones: sent to upstream resolvers (CoreDNS's
//! `forward . /etc/resolv.conf`), answers kept for at most the cache's TTL (`cache 30`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::DnsError;

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

/// A forwarder to upstream resolvers with a TTL-capped cache.
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    max_ttl: u32,
    cache: Mutex<HashMap<Key, Entry>>,
}

impl Forwarder {
    /// Forwarding to `upstreams` in order; answers cached up to `max_ttl` seconds (0: none).
    pub fn new(upstreams: Vec<SocketAddr>, max_ttl: u32) -> Forwarder {
        Forwarder {
            upstreams,
            max_ttl,
            cache: Mutex::new(HashMap::new()),
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
        let query = request.queries.first().ok_or(DnsError::NoQuestion)?;
        let dnssec_ok = request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
        let key = Self::key(query, dnssec_ok);
        if let Some(mut cached) = self.cached(&key) {
            cached.metadata.id = request.metadata.id;
            cached.queries = request.queries.clone();
            return Ok(cached);
        }
        let mut last = DnsError::NoUpstream;
        for upstream in &self.upstreams {
            match exchange(*upstream, request, tcp).await {
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
                    return Ok(response);
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

fn rand_id() -> u16 {
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
