//! `up --pod-aws-endpoint`: the EKS API (and the rest of localfargate's AWS endpoint) as pods
//! reach it. The pod identity webhook's mutation sets `AWS_ENDPOINT_URL=http://GATEWAY:PORT`
//! (the gateway of the cluster's first subnet, the host's address on the pod bridge, where the
//! `kubernetes` Service's relay listens too); this relay listens there and passes each
//! connection to the EKS API's own listener on the host. Pod traffic stays on the machine.
//!
//! Clusters sharing a first subnet share its gateway: the first cluster's relay serves it and
//! the others wait, quietly, until the address is free (that cluster gone). The relay itself is
//! the `kubernetes` Service's ([`crate::service_proxy::relay`]).

use std::net::SocketAddr;

/// Where the relay connects: the EKS API's address, loopback when it listens on every address.
/// `None` when there is nothing to relay: a wildcard listener already answers on the gateway.
pub fn upstream(eks: SocketAddr) -> Option<SocketAddr> {
    (!eks.ip().is_unspecified()).then_some(eks)
}
