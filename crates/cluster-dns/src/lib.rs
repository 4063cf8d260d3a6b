//! The cluster DNS: Kubernetes DNS records from Services and EndpointSlices
//! ([`records`], pure), served over UDP and TCP with forwarding and a cache ([`server`],
//! [`forward`], answers shuffled by [`loadbalance`], counted by [`metrics`]), fed by a list +
//! watch of the Kubernetes API ([`kube`]); [`coredns`] is the built-in CoreDNS that runs from
//! EKS's CoreDNS image reference when it cannot be pulled.

pub mod coredns;
pub mod corefile;
pub mod forward;
pub mod kube;
pub mod loadbalance;
pub mod metrics;
pub mod records;
pub mod server;
pub mod state;

use std::net::SocketAddr;

/// What can go wrong serving DNS.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Corefile(String),
    #[error("{0}")]
    Config(String),
    #[error("the Kubernetes API: {0}")]
    Api(String),
    #[error("encoding a DNS message: {0}")]
    Proto(hickory_proto::ProtoError),
    #[error("decoding a DNS message: {0}")]
    Decode(String),
    #[error("the query has no question")]
    NoQuestion,
    #[error("no upstream resolver")]
    NoUpstream,
    #[error("{0} did not answer in time")]
    Timeout(SocketAddr),
}
