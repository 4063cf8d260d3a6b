//! The cluster's Service data path (what kube-proxy does on each node) and the API's own
//! endpoint (what kube-apiserver's endpoint reconciler keeps).
//!
//! * The `kubernetes` Service in `default` has an Endpoints object and an EndpointSlice of its
//!   name pointing at an address pods reach: the gateway of the cluster's first subnet on the pod
//!   bridge, at the cluster's API port. A relay listens there and passes each connection to the
//!   API's own listener (TLS goes through untouched; the API's certificate names the Service's
//!   ClusterIP). So a pod reaches the API at `https://$KUBERNETES_SERVICE_HOST`, through the
//!   data path.
//! * With a runtime that has a data path ([`SandboxRuntime::service_data_path`], the process
//!   runtime), the Services and their EndpointSlices' ready endpoints are turned into
//!   [`ClusterServices`] ([`desired`], pure) and applied to the host (see
//!   `localfargate_runtime::service_proxy`), again after every change to Services,
//!   EndpointSlices, pods or nodes, and every 30 seconds.
//!
//! [`SandboxRuntime::service_data_path`]: localfargate_runtime::SandboxRuntime::service_data_path

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    self as core, EndpointAddress, EndpointSubset, Endpoints, Node, Pod, Service,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use localfargate_core::eks::CLUSTER_KIND;
use localfargate_registry::meta::DynamicObject;
use localfargate_registry::objects::{KubeError, Objects, resource};
use localfargate_registry::{service_ips, typed};
use localfargate_runtime::service_proxy::{ClusterServices, Protocol, ServicePort};

use crate::context::ClusterContext;
use crate::wake::{Wake, under};

/// The label naming a slice's Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// `sessionAffinityConfig.clientIP.timeoutSeconds`'s default (3 hours).
const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;

/// What the data path serves for these objects. Pure.
///
/// * Service ports of every Service with a ClusterIP (not headless, not ExternalName).
/// * Their endpoints: the EndpointSlices labelled `kubernetes.io/service-name`, IPv4, whose
///   port has the Service port's name and protocol, each endpoint's first address; the ready
///   ones, or the serving and terminating ones when none is ready; with
///   `internalTrafficPolicy: Local`, each client's local ones ([`topology`]).
/// * `spec.externalIPs`.
/// * `pod_ips`: the addresses of pods that are not finished; `node_ips`: the nodes'
///   InternalIPs.
pub fn desired(
    services: &[Service],
    slices: &[EndpointSlice],
    pods: &[Pod],
    nodes: &[Node],
    subnets: Vec<(Ipv4Addr, u8)>,
) -> ClusterServices {
    let mut by_service: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
    for s in slices {
        if s.address_type != "IPv4" {
            continue;
        }
        let label = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL));
        if let Some(svc) = label {
            by_service
                .entry((s.metadata.namespace.as_deref().unwrap_or(""), svc))
                .or_default()
                .push(s);
        }
    }
    let is_live = |p: &&Pod| {
        !matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
    };
    let pod_ip =
        |p: &Pod| -> Option<Ipv4Addr> { p.status.as_ref()?.pod_ip.as_deref()?.parse().ok() };
    // Each pod's address and node: whose local endpoints a client pod gets.
    let pod_nodes: BTreeMap<Ipv4Addr, String> = pods
        .iter()
        .filter(is_live)
        .filter_map(|p| Some((pod_ip(p)?, p.spec.as_ref()?.node_name.clone()?)))
        .collect();
    let mut ports = Vec::new();
    for svc in services {
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let Some(cluster_ip) = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        let ns = svc.metadata.namespace.as_deref().unwrap_or("");
        let name = svc.metadata.name.as_deref().unwrap_or("");
        let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
        });
        let slices = by_service
            .get(&(ns, name))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let external_ips: BTreeSet<Ipv4Addr> = spec
            .external_ips
            .iter()
            .flatten()
            .filter_map(|a| a.parse().ok())
            .collect();
        for p in spec.ports.iter().flatten() {
            let protocol_name = p.protocol.as_deref().unwrap_or("TCP");
            let (Some(protocol), Ok(port)) =
                (Protocol::parse(protocol_name), u16::try_from(p.port))
            else {
                continue;
            };
            let port_name = p.name.as_deref().unwrap_or("");
            let eps = topology::slice_endpoints(slices, port_name, protocol_name);
            let endpoints = topology::usable(eps.iter());
            let internal_local = (spec.internal_traffic_policy.as_deref() == Some("Local"))
                .then(|| topology::local_endpoints(&eps, &pod_nodes));
            let node_port = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"))
                .then(|| p.node_port.and_then(|x| u16::try_from(x).ok()))
                .flatten();
            ports.push(ServicePort {
                namespace: ns.to_string(),
                name: name.to_string(),
                port_name: port_name.to_string(),
                protocol,
                cluster_ip,
                port,
                node_port,
                affinity_timeout,
                endpoints,
                internal_local,
                external_ips: external_ips.clone(),
            });
        }
    }
    let pod_ips = pods.iter().filter(is_live).filter_map(pod_ip).collect();
    let node_ips = nodes
        .iter()
        .filter_map(|n| {
            n.status
                .as_ref()?
                .addresses
                .as_ref()?
                .iter()
                .find(|a| a.type_ == "InternalIP")?
                .address
                .parse()
                .ok()
        })
        .collect();
    ClusterServices {
        pod_ips,
        node_ips,
        subnets,
        ports,
    }
}

/// Where pods reach the cluster's API: the gateway of the cluster's first subnet (with its
/// prefix length) and the API's port; and the API's own address, which the relay connects to.
struct ApiAddress {
    gateway: Ipv4Addr,
    prefix_len: u8,
    port: u16,
    upstream: SocketAddr,
}

fn api_address(ctx: &ClusterContext) -> Option<ApiAddress> {
    let objects = &ctx.objects;
    let record = objects.store.get(CLUSTER_KIND, &objects.cluster).ok()??;
    let port = u16::try_from(record.value["private"]["kubePort"].as_u64()?).ok()?;
    let host = record.value["resource"]["endpoint"]
        .as_str()?
        .strip_prefix("https://")?
        .rsplit_once(':')?
        .0
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
        .ok()?;
    let host = if host.is_unspecified() {
        std::net::IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host
    };
    let subnet_ids: Vec<String> = record.value["resource"]["resourcesVpcConfig"]["subnetIds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    let ipam = ctx.ipam.lock().unwrap_or_else(|p| p.into_inner());
    let pool = subnet_ids
        .iter()
        .find_map(|id| ipam.pool(id))
        .or_else(|| ipam.pools().next())?;
    Some(ApiAddress {
        gateway: pool.gateway(),
        prefix_len: pool.prefix_len(),
        port,
        upstream: SocketAddr::new(host, port),
    })
}

/// The `kubernetes` Service's Endpoints and EndpointSlice, as kube-apiserver's reconciler
/// writes them.
pub fn api_endpoints(address: Ipv4Addr, port: u16) -> (Endpoints, EndpointSlice) {
    let meta = |label: (&str, &str)| ObjectMeta {
        name: Some("kubernetes".to_string()),
        namespace: Some("default".to_string()),
        labels: Some(BTreeMap::from([(label.0.to_string(), label.1.to_string())])),
        ..ObjectMeta::default()
    };
    let endpoints = Endpoints {
        metadata: meta(("endpointslice.kubernetes.io/skip-mirror", "true")),
        subsets: Some(vec![EndpointSubset {
            addresses: Some(vec![EndpointAddress {
                ip: address.to_string(),
                ..EndpointAddress::default()
            }]),
            ports: Some(vec![core::EndpointPort {
                name: Some("https".to_string()),
                port: i32::from(port),
                protocol: Some("TCP".to_string()),
                app_protocol: None,
            }]),
            not_ready_addresses: None,
        }]),
    };
    let slice = EndpointSlice {
        metadata: meta((SERVICE_NAME_LABEL, "kubernetes")),
        address_type: "IPv4".to_string(),
        endpoints: vec![Endpoint {
            addresses: vec![address.to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                ..EndpointConditions::default()
            }),
            ..Endpoint::default()
        }],
        ports: Some(vec![EndpointPort {
            name: Some("https".to_string()),
            port: Some(i32::from(port)),
            protocol: Some("TCP".to_string()),
            app_protocol: None,
        }]),
    };
    (endpoints, slice)
}

fn write_api_endpoints(objects: &Objects, address: Ipv4Addr, port: u16) {
    let (endpoints, slice) = api_endpoints(address, port);
    let results = [
        write_api_object(objects, &endpoints, |current: &Endpoints| {
            current.subsets == endpoints.subsets
        }),
        write_api_object(objects, &slice, |current: &EndpointSlice| {
            current.address_type == slice.address_type
                && current.endpoints == slice.endpoints
                && current.ports == slice.ports
        }),
    ];
    for e in results.into_iter().filter_map(Result::err) {
        tracing::warn!(error = %e, "the kubernetes Service's endpoints");
    }
}

/// Create `desired` (`default/kubernetes`), or, when it is there and `same` says it differs,
/// make its body (all but the metadata) what `desired`'s is.
fn write_api_object<K>(
    objects: &Objects,
    desired: &K,
    same: impl Fn(&K) -> bool,
) -> Result<(), KubeError>
where
    K: k8s_openapi::Resource
        + k8s_openapi::Metadata<Ty = ObjectMeta>
        + serde::de::DeserializeOwned
        + serde::Serialize,
{
    let Some(rt) = typed::resource_type::<K>() else {
        return Err(KubeError::Internal(format!("{} is not served", K::KIND)));
    };
    let body = typed::to_json(desired)?;
    match typed::get::<K>(objects, "default", "kubernetes")? {
        Some(current) if same(&current) => Ok(()),
        Some(_) => {
            let want = DynamicObject::from_value(body)?;
            objects
                .update_with(rt, "default", "kubernetes", false, None, &mut |cur| {
                    let mut new = DynamicObject::from_value(cur.clone())?;
                    new.body.clone_from(&want.body);
                    Ok(new.into_value())
                })
                .map(|_| ())
        }
        None => match objects.create(rt, "default", body) {
            Ok(_) | Err(KubeError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        },
    }
}

/// Passes every connection to `listen` on to `upstream`, byte for byte, until the task is
/// aborted; `what` names it in the log (waiting for the address is retried every 2 s).
pub(crate) async fn relay(listen: SocketAddr, upstream: SocketAddr, what: &'static str) {
    let listener = loop {
        match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => break l,
            Err(e) => {
                tracing::debug!(%listen, error = %e, "the {what} relay for pods waits for its address");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    tracing::info!(%listen, %upstream, "the {what} is reachable from pods");
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(async move {
            let _ = inbound.set_nodelay(true);
            if let Ok(mut out) = tokio::net::TcpStream::connect(upstream).await {
                let _ = out.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
            }
        });
    }
}

fn subnets(ctx: &ClusterContext) -> Vec<(Ipv4Addr, u8)> {
    let ipam = ctx.ipam.lock().unwrap_or_else(|p| p.into_inner());
    ipam.pools()
        .map(|p| (p.network(), p.prefix_len()))
        .collect()
}

pub async fn run(ctx: Arc<ClusterContext>) {
    let objects = &ctx.objects;
    let path = ctx.runtime.service_data_path();
    // The API's endpoint for pods, and the relay behind it.
    let mut _relay: Option<AbortOnDrop> = None;
    // `up --pod-aws-endpoint`: the EKS API at the same gateway (crate::aws_endpoint_relay).
    let mut _aws_relay: Option<AbortOnDrop> = None;
    let mut api: Option<(Ipv4Addr, u16)> = None;
    let kind = objects.store_kind().to_string();
    // Without a data path (the simulated runtime) only the `kubernetes` Service's endpoints are
    // kept: pod and node writes are nothing to this controller then.
    let mut watched = vec![
        resource("", "services").key_prefix(None),
        resource("discovery.k8s.io", "endpointslices").key_prefix(None),
        resource("", "endpoints").key_prefix(None),
    ];
    if path.is_some() {
        watched.push(resource("", "pods").key_prefix(None));
        watched.push(resource("", "nodes").key_prefix(None));
    }
    let mut wake = Wake::watching(
        &kind,
        &watched,
        Duration::from_millis(100),
        Duration::from_secs(30),
    );
    let mut last_applied: Option<ClusterServices> = None;
    wake.start(&*objects.store, objects.store.revision().unwrap_or(0));
    loop {
        if let Some(a) = api_address(&ctx) {
            let mut ready = true;
            if let Some(path) = &path
                && api != Some((a.gateway, a.port))
            {
                ready = match path.ensure_host_address(a.gateway, a.prefix_len).await {
                    Ok(()) => {
                        _relay = Some(AbortOnDrop(tokio::spawn(relay(
                            SocketAddr::new(a.gateway.into(), a.port),
                            a.upstream,
                            "API",
                        ))));
                        _aws_relay = objects
                            .settings
                            .pod_aws_endpoint
                            .and_then(crate::aws_endpoint_relay::upstream)
                            .map(|eks| {
                                let listen = SocketAddr::new(a.gateway.into(), eks.port());
                                AbortOnDrop(tokio::spawn(relay(listen, eks, "AWS endpoint")))
                            });
                        true
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "putting the API's address on the pod bridge");
                        false
                    }
                };
            }
            if ready {
                api = Some((a.gateway, a.port));
                write_api_endpoints(objects, a.gateway, a.port);
            }
        }
        if let Some(path) = &path {
            let lists = (
                typed::list::<Service>(objects, None),
                typed::list::<EndpointSlice>(objects, None),
                typed::list::<Pod>(objects, None),
                typed::list::<Node>(objects, None),
            );
            if let (Ok(svcs), Ok(slices), Ok(pods), Ok(nodes)) = lists {
                let want = desired(&svcs, &slices, &pods, &nodes, subnets(&ctx));
                if last_applied.as_ref() != Some(&want) {
                    let range = service_ips::range(objects);
                    let started = std::time::Instant::now();
                    match path.apply(&objects.cluster, range, &want).await {
                        Ok(stats) => {
                            tracing::debug!(
                                cluster = %objects.cluster,
                                full = stats.full,
                                commands = stats.commands,
                                took = ?started.elapsed(),
                                "Service rules applied"
                            );
                            last_applied = Some(want);
                        }
                        Err(e) => {
                            tracing::warn!(cluster = %objects.cluster, error = %e, "applying Service rules");
                            last_applied = None;
                        }
                    }
                }
            }
        }
        // Until something this controller reads changes; a timeout (no changes) resyncs.
        wake.until(&*objects.store, under(&watched)).await;
    }
}

/// A task aborted when its handle goes (the relay stops with the controller).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Removes a deleted cluster's Service rules from the host.
pub async fn remove_cluster(runtime: &dyn localfargate_runtime::SandboxRuntime, cluster: &str) {
    if let Some(path) = runtime.service_data_path()
        && let Err(e) = path.remove(cluster).await
    {
        tracing::warn!(cluster, error = %e, "removing the cluster's Service rules");
    }
}

pub mod topology;

#[cfg(test)]
mod tests;
