//! The DNS server: questions over UDP and TCP answered from the cluster's records, other names
//! forwarded; responses over UDP cut to the client's size with TC set.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use hickory_proto::op::{Edns, Message, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::forward::Forwarder;
use crate::records::{Authority, Lookup};
use crate::state::ClusterState;

/// The largest UDP response without EDNS (RFC 1035).
const PLAIN_UDP: usize = 512;
/// The UDP size this server offers in its OPT record (the DNS flag day's 1232).
const EDNS_UDP: u16 = 1232;

/// Everything a query needs: the zone, the cluster's objects and the forwarder.
pub struct DnsHandler {
    pub authority: Authority,
    pub state: Arc<RwLock<ClusterState>>,
    pub forwarder: Option<Forwarder>,
}

impl DnsHandler {
    /// The response to one wire-format query, or `None` for bytes not worth answering
    /// (shorter than a header, or a response).
    pub async fn handle(&self, bytes: &[u8], udp: bool) -> Option<Vec<u8>> {
        let request = match Message::from_vec(bytes) {
            Ok(m) => m,
            Err(_) => {
                if bytes.len() < 12 || bytes[2] & 0x80 != 0 {
                    return None;
                }
                let id = u16::from_be_bytes([bytes[0], bytes[1]]);
                let m = Message::error_msg(id, OpCode::Query, ResponseCode::FormErr);
                return m.to_vec().ok();
            }
        };
        if request.metadata.message_type != hickory_proto::op::MessageType::Query {
            return None;
        }
        let mut response = self.respond(&request, udp).await;
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

    async fn respond(&self, request: &Message, udp: bool) -> Message {
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
            return error(ResponseCode::NotImp);
        }
        let [query] = request.queries.as_slice() else {
            return error(ResponseCode::FormErr);
        };
        let (lookup, serial) = {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            (
                self.authority
                    .lookup(&state, query.name(), query.query_type()),
                state.serial,
            )
        };
        let mut m = error(ResponseCode::NoError);
        match lookup {
            Lookup::Fallthrough => {
                let Some(f) = &self.forwarder else {
                    return error(if self.authority.serves(query.name()) {
                        ResponseCode::NXDomain
                    } else {
                        ResponseCode::Refused
                    });
                };
                return match f.resolve(request, !udp).await {
                    Ok(mut r) => {
                        r.metadata.recursion_available = true;
                        r
                    }
                    Err(e) => {
                        tracing::debug!(name = %query.name(), error = %e, "forwarding failed");
                        error(ResponseCode::ServFail)
                    }
                };
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
                m.authorities = vec![self.authority.soa_for(query.name(), serial)];
            }
            Lookup::NxDomain => {
                m.metadata.authoritative = true;
                m.metadata.response_code = ResponseCode::NXDomain;
                m.authorities = vec![self.authority.soa_for(query.name(), serial)];
            }
        }
        m
    }

    async fn chase(&self, m: &mut Message, target: &hickory_proto::rr::Name, qtype: RecordType) {
        if self.authority.serves(target) {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            if let Lookup::Answer { answers, .. } = self.authority.lookup(&state, target, qtype) {
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

/// Answer UDP queries on `socket` until the task ends.
pub async fn serve_udp(socket: UdpSocket, handler: Arc<DnsHandler>) {
    let socket = Arc::new(socket);
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
        let (socket, handler) = (socket.clone(), handler.clone());
        tokio::spawn(async move {
            if let Some(out) = handler.handle(&query, true).await {
                let _ = socket.send_to(&out, peer).await;
            }
        });
    }
}

/// Answer TCP connections on `listener` (several queries per connection, length-prefixed).
pub async fn serve_tcp(listener: TcpListener, handler: Arc<DnsHandler>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "accepting a TCP connection");
                continue;
            }
        };
        tokio::spawn(tcp_connection(stream, peer, handler.clone()));
    }
}

async fn tcp_connection(mut stream: TcpStream, peer: SocketAddr, handler: Arc<DnsHandler>) {
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
        let Some(out) = handler.handle(&query, false).await else {
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
    use hickory_proto::rr::Name;
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
            authority: Authority::new("cluster.local", &["in-addr.arpa"]).unwrap(),
            state: Arc::new(RwLock::new(s)),
            forwarder: None,
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
        // No forwarder: names elsewhere are refused.
        let m = Message::from_vec(
            &h.handle(&query("example.com.", RecordType::A, None), true)
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        let garbage = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff];
        let m = Message::from_vec(&h.handle(&garbage, true).await.unwrap()).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(m.metadata.id, 0x1234);
    }
}
