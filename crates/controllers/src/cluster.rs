//! Runs each ACTIVE cluster's Kubernetes controllers, seeds a new cluster with what EKS creates,
//! and clears a deleted cluster's objects and sandboxes.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use localfargate_core::eks::CLUSTER_KIND;
use localfargate_registry::resources as kube;
use localfargate_runtime::SandboxRuntime;
use localfargate_runtime::ipam::Ipam;
use localfargate_store::{Object, Store, transaction};
use serde_json::json;
use tokio::task::JoinSet;

use crate::context::ClusterContext;
use crate::fargate_scheduler::FARGATE_NODE_PREFIX;
use localfargate_registry::objects::{KubeError, Objects, name_of, resource, uid_of};
use localfargate_registry::service_ips;
use localfargate_registry::settings::Settings;
use localfargate_registry::typed::{PodView, internal_ip_of};

/// The objects a new EKS cluster has: the four namespaces, the `kubernetes` and `kube-dns`
/// Services at the service range's `.1` and `.10`, and
/// CoreDNS annotated to stay off Fargate (which is why the guides patch it).
pub fn seed(objects: &Objects) -> Result<(), KubeError> {
    localfargate_registry::bootstrap::bootstrap(objects)?;
    seed_services(objects)?;
    let sa = resource("", "serviceaccounts");
    match objects.create(sa, "kube-system", json!({"metadata": {"name": "coredns"}})) {
        Ok(_) | Err(KubeError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e),
    }
    crate::coredns_seed::seed(objects)?;
    let region = &objects.settings.region;
    let labels = json!({"k8s-app": "kube-dns", "eks.amazonaws.com/component": "coredns"});
    let coredns = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {"eks.amazonaws.com/compute-type": "ec2"},
                },
                "spec": {
                    "serviceAccountName": "coredns",
                    "priorityClassName": "system-cluster-critical",
                    "containers": [{
                        "name": "coredns",
                        "image": format!("602401143452.dkr.ecr.{region}.amazonaws.com/eks/coredns:v1.11.3-eksbuild.1"),
                        "args": ["-conf", "/etc/coredns/Corefile"],
                        "ports": [
                            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                            {"name": "metrics", "containerPort": 9153, "protocol": "TCP"},
                        ],
                        "resources": {"limits": {"memory": "170Mi"}, "requests": {"cpu": "100m", "memory": "70Mi"}},
                        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": true}],
                        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080, "scheme": "HTTP"},
                                          "initialDelaySeconds": 60, "timeoutSeconds": 5,
                                          "successThreshold": 1, "failureThreshold": 5},
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181, "scheme": "HTTP"}},
                        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}},
                    }],
                    "dnsPolicy": "Default",
                    "volumes": [{"name": "config-volume", "configMap": {"name": "coredns",
                                 "items": [{"key": "Corefile", "path": "Corefile"}]}}],
                    "tolerations": [
                        {"key": "CriticalAddonsOnly", "operator": "Exists"},
                        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                    ],
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [
                            {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]},
                        ]}]}}},
                },
            },
        },
    });
    match objects.create(resource("apps", "deployments"), "kube-system", coredns) {
        Ok(_) | Err(KubeError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The Services every EKS cluster has, as `kubectl get svc -A` lists them on a new one: the
/// API server's `kubernetes` (no selector: kube-apiserver keeps its endpoints) and CoreDNS's
/// `kube-dns` (its endpoints follow the CoreDNS pods once they run).
fn seed_services(objects: &Objects) -> Result<(), KubeError> {
    let at = |n: u32| service_ips::range_address(objects, n).to_string();
    let services = [
        (
            "default",
            json!({
                "metadata": {"name": "kubernetes",
                             "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"type": "ClusterIP", "clusterIP": at(service_ips::KUBERNETES_OFFSET), "sessionAffinity": "None",
                         "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}]},
            }),
        ),
        (
            "kube-system",
            json!({
                "metadata": {
                    "name": "kube-dns",
                    "labels": {"eks.amazonaws.com/component": "kube-dns", "k8s-app": "kube-dns",
                               "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
                    "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"},
                },
                "spec": {"type": "ClusterIP", "clusterIP": at(service_ips::KUBE_DNS_OFFSET), "sessionAffinity": "None",
                         "selector": {"k8s-app": "kube-dns"},
                         "ports": [
                             {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                             {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                             {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
                         ]},
            }),
        ),
    ];
    let rt = resource("", "services");
    for (namespace, service) in services {
        // Seeded once: on a restart the Service is there, holding its address (creating it
        // again would be refused for that address before its name is compared).
        let name = name_of(&service);
        match objects.get(rt, namespace, name) {
            Ok(_) => continue,
            Err(KubeError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        match objects.create(rt, namespace, service) {
            Ok(_) | Err(KubeError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Delete every Kubernetes object of a cluster that is gone.
fn purge_cluster(store: &dyn Store, cluster: &str) {
    let kind = kube::store_kind(cluster);
    let Ok((all, _)) = store.list(&kind, "") else {
        return;
    };
    if all.is_empty() {
        return;
    }
    let keys: Vec<String> = all.iter().map(|o| o.key.clone()).collect();
    for chunk in keys.chunks(1000) {
        let _ = transaction(store, |tx| {
            for k in chunk {
                match tx.delete(&kind, k, None) {
                    Ok(_) | Err(localfargate_store::StoreError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
    }
}

/// The IPAM over the network model, with every address stored pods and nodes hold.
fn rebuild_ipam(
    store: &dyn Store,
    settings: &Settings,
    claims: Option<&localfargate_runtime::address_claims::AddressClaims>,
) -> Ipam {
    let subnets: Vec<(String, String)> = settings
        .network
        .vpcs
        .iter()
        .flat_map(|v| v.subnets.iter())
        .map(|s| (s.subnet_id.clone(), s.cidr_block.clone()))
        .collect();
    let mut ipam = Ipam::from_subnets(subnets).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the network model's subnets cannot be used for IPs");
        Ipam::new()
    });
    let Ok((clusters, _)) = store.list(CLUSTER_KIND, "") else {
        return ipam;
    };
    for c in clusters.iter() {
        let kind = kube::store_kind(&c.key);
        let nodes = resource("", "nodes");
        let pods = resource("", "pods");
        let mut used: Vec<Ipv4Addr> = Vec::new();
        if let Ok((all, _)) = store.list(&kind, &nodes.key_prefix(None)) {
            used.extend(
                all.iter()
                    .filter_map(|n| internal_ip_of(&n.value)?.parse::<Ipv4Addr>().ok()),
            );
        }
        if let Ok((all, _)) = store.list(&kind, &pods.key_prefix(None)) {
            used.extend(
                all.iter()
                    .map(|p| PodView::of(&p.value))
                    // A Fargate pod's IP is its node's, counted above.
                    .filter(|p| {
                        !p.node_name()
                            .is_some_and(|n| n.starts_with(FARGATE_NODE_PREFIX))
                    })
                    .filter_map(|p| p.pod_ip()?.parse::<Ipv4Addr>().ok()),
            );
        }
        for ip in used {
            let subnet = ipam.subnet_of(ip).map(|p| p.subnet_id().to_string());
            if let Some(subnet) = subnet {
                let _ = ipam.reserve(&subnet, ip);
                // The pods adopted keep their addresses host-wide too (taking over the claims
                // of this process's earlier run).
                if let Some(claims) = claims {
                    claims.claim(ip);
                }
            }
        }
    }
    ipam
}

/// The controllers of one cluster, as tasks.
fn start(ctx: Arc<ClusterContext>) -> JoinSet<()> {
    let mut set = JoinSet::new();
    set.spawn(crate::fargate_scheduler::run(ctx.clone()));
    set.spawn(crate::default_scheduler::run(ctx.clone()));
    set.spawn(crate::node_agent::run(ctx.clone()));
    set.spawn(crate::eviction::run(ctx.clone()));
    set.spawn(crate::workloads::run(ctx.clone()));
    set.spawn(crate::lifecycle::run(ctx.clone()));
    set.spawn(crate::volume_sync::run(ctx.clone()));
    set.spawn(crate::disruption::run(ctx.clone()));
    set.spawn(crate::autoscaler::run(ctx.clone()));
    set.spawn(crate::endpoints::run(ctx.clone()));
    set.spawn(crate::load_balancers::run(ctx.clone()));
    set.spawn(crate::ingresses::run(ctx.clone()));
    set.spawn(crate::quota::run(ctx.clone()));
    set.spawn(crate::service_account_tokens::run(ctx.clone()));
    set.spawn(crate::security_groups::run(ctx.clone()));
    set.spawn(crate::network_policies::run(ctx.clone()));
    set.spawn(crate::root_ca::run(ctx.clone()));
    set.spawn(crate::service_proxy::run(ctx.clone()));
    set.spawn(crate::eks_addons::run(ctx.clone()));
    set.spawn(ctx.objects.clone().follow_definitions());
    set
}

/// Keep every ACTIVE cluster's controllers running until the task is dropped.
pub async fn run(
    store: Arc<dyn Store>,
    settings: Arc<Settings>,
    controller_settings: Arc<crate::settings::ControllerSettings>,
    runtime: Arc<dyn SandboxRuntime>,
    metrics: Arc<localfargate_registry::metrics::MetricsStore>,
) {
    let ipam = Arc::new(Mutex::new(rebuild_ipam(
        &*store,
        &settings,
        runtime.address_claims(),
    )));
    let mut running: HashMap<String, JoinSet<()>> = HashMap::new();
    // The Kubernetes version each cluster's controllers run with (the kubelet version nodes
    // report): an UpdateClusterVersion restarts them on the new one.
    let mut versions: HashMap<String, String> = HashMap::new();
    // Clusters whose controllers stopped (not ACTIVE) and whose pods wait for the record to go.
    let mut deleting: std::collections::HashSet<String> = Default::default();
    remove_orphan_sandboxes(&*store, &*runtime).await;
    let mut last_reap = tokio::time::Instant::now();
    loop {
        // Sandboxes that outlive their pods (a pod deleted while its agent was not watching)
        // are looked for once a minute; the simulated runtime's end with the process.
        if runtime.kind() != localfargate_runtime::RuntimeKind::Simulated
            && last_reap.elapsed() > Duration::from_secs(60)
        {
            remove_orphan_sandboxes(&*store, &*runtime).await;
            last_reap = tokio::time::Instant::now();
        }
        let (clusters, revision) = match store.list(CLUSTER_KIND, "") {
            Ok(listed) => listed,
            Err(e) => {
                tracing::error!(error = %e, "listing clusters");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut active = Vec::new();
        for c in clusters.iter() {
            // An UPDATING cluster keeps running, as on EKS.
            if !matches!(
                c.value["resource"]["status"].as_str(),
                Some("ACTIVE" | "UPDATING")
            ) {
                continue;
            }
            active.push(c.key.clone());
            let wanted = c.value["resource"]["version"].as_str().unwrap_or_default();
            if versions.get(&c.key).is_some_and(|v| v != wanted)
                && let Some(mut set) = running.remove(&c.key)
            {
                // Stopped and waited for, so the old set and the new never run together.
                set.shutdown().await;
            }
            versions.insert(c.key.clone(), wanted.to_string());
            if running.contains_key(&c.key) {
                continue;
            }
            let objects = Objects::new(store.clone(), &c.key, settings.clone());
            let version = c.value["resource"]["version"]
                .as_str()
                .unwrap_or(localfargate_core::eks::DEFAULT_KUBERNETES_VERSION)
                .to_string();
            // `kube-dns`'s address, as EKS gives it: the service range's `.10`.
            let cluster_dns = Some(service_ips::range_address(
                &objects,
                service_ips::KUBE_DNS_OFFSET,
            ));
            let ctx = Arc::new(ClusterContext {
                settings: controller_settings.clone(),
                objects,
                runtime: runtime.clone(),
                ipam: ipam.clone(),
                version,
                cluster_dns,
                tokens: localfargate_registry::service_accounts::token_signer(&c.key, &c.value),
                issued_tokens: Mutex::default(),
                metrics: metrics.clone(),
            });
            tracing::info!(cluster = %c.key, "Kubernetes controllers started");
            let mut tasks = start(ctx.clone());
            // Seeding runs beside the controllers, not before them: one seeded object that
            // cannot be written must not leave every pod of the cluster unmanaged.
            tasks.spawn(seed_until_done(ctx.objects.clone(), c.key.clone()));
            running.insert(c.key.clone(), tasks);
        }
        let stopped: Vec<String> = running
            .keys()
            .filter(|k| !active.contains(k))
            .cloned()
            .collect();
        for name in stopped {
            if let Some(mut set) = running.remove(&name) {
                set.abort_all();
            }
            // A DELETING cluster's controllers stop at once; its pods go once it is gone.
            deleting.insert(name);
        }
        let gone: Vec<String> = deleting
            .iter()
            .filter(|name| !clusters.iter().any(|c| &c.key == *name))
            .cloned()
            .collect();
        for name in gone {
            deleting.remove(&name);
            stop_sandboxes(&*store, &*runtime, &name, &ipam).await;
            crate::service_proxy::remove_cluster(&*runtime, &name).await;
            purge_cluster(&*store, &name);
            tracing::info!(cluster = %name, "cluster deleted: its Kubernetes objects are gone");
        }
        // Until a cluster record changes (created, ACTIVE, DELETING, gone), or the orphan
        // sandbox check is due.
        localfargate_store::changed_since(
            &*store,
            CLUSTER_KIND,
            "",
            revision,
            Duration::from_secs(60),
        )
        .await;
    }
}

/// Seeds the cluster (`seed`), trying again with a growing pause (1 s doubling to a minute)
/// until it succeeds or the cluster's tasks stop.
async fn seed_until_done(objects: Objects, cluster: String) {
    let mut pause = Duration::from_secs(1);
    loop {
        match seed(&objects) {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(%cluster, error = %e, retry_in = ?pause, "seeding the cluster's objects");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(60));
    }
}

/// Sandboxes an earlier run left (the process runtime keeps them across restarts) whose pod is
/// no longer stored in any cluster: a pod or cluster deleted while localfargate was down.
async fn remove_orphan_sandboxes(store: &dyn Store, runtime: &dyn SandboxRuntime) {
    let Ok(sandboxes) = runtime.list().await else {
        return;
    };
    if sandboxes.is_empty() {
        return;
    }
    let mut uids = std::collections::HashSet::new();
    // A store that cannot be read says nothing about which pods exist: remove nothing then.
    let Ok((clusters, _)) = store.list(CLUSTER_KIND, "") else {
        return;
    };
    let pods = resource("", "pods");
    for c in clusters.iter() {
        let kind = kube::store_kind(&c.key);
        let scanned = store.scan(&kind, &pods.key_prefix(None), &mut |o: Object| {
            let uid = uid_of(&o.value);
            if !uid.is_empty() {
                uids.insert(uid.to_string());
            }
        });
        if scanned.is_err() {
            return;
        }
    }
    for s in sandboxes {
        if !uids.contains(&s.pod_uid) {
            tracing::info!(sandbox = %s.id, pod = %format!("{}/{}", s.namespace, s.name), "removing the sandbox of a pod that is gone");
            if let Err(e) = runtime.remove(&s.id).await {
                tracing::warn!(sandbox = %s.id, error = %e, "removing an orphaned sandbox");
            }
        }
    }
}

async fn stop_sandboxes(
    store: &dyn Store,
    runtime: &dyn SandboxRuntime,
    cluster: &str,
    ipam: &Mutex<Ipam>,
) {
    let kind = kube::store_kind(cluster);
    let pods = resource("", "pods");
    let Ok((all, _)) = store.list(&kind, &pods.key_prefix(None)) else {
        return;
    };
    // All at once, as a node's pods stop together: each removal may wait out a grace period.
    futures_util::future::join_all(
        all.iter()
            .map(|p| crate::node_agent::remove_sandbox(runtime, &p.value)),
    )
    .await;
    for p in all.iter() {
        if let Some(ip) = PodView::of(&p.value).pod_ip().and_then(|s| s.parse().ok()) {
            ipam.lock().unwrap_or_else(|x| x.into_inner()).release(ip);
            if let Some(claims) = runtime.address_claims() {
                claims.release(ip);
            }
        }
    }
}
