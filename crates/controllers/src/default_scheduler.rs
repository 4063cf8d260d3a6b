//! The EC2 side: one Node per desired instance of each ACTIVE managed node group, and the
//! default-scheduler that places every pod Fargate's webhook did not take. Filters are upstream's
//! (unschedulable, node selector and required affinity, taints, pod count, resources), scoring is
//! least-allocated, and a pod no node takes gets upstream's `0/N nodes are available: …` (or
//! `no nodes available to schedule pods`) as its condition and event.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use localfargate_core::eks::{NODEGROUP_KIND, Nodegroup, Record};
use localfargate_core::nodegroup::{
    Misfit, NodeGroup, NodeView, Taint, fits_node, instance_type, unschedulable_message,
};
use localfargate_core::sizing::{MIB, PodRequests};
use localfargate_core::{FARGATE_SCHEDULER, PodFacts, quantity};
use serde_json::{Value, json};

use crate::context::{ClusterContext, node_status};
use crate::events::{self, EventType as Kind};
use crate::wake::{Wake, Woken};
use localfargate_registry::binding::{self, set_condition};
use localfargate_registry::meta::label_of;
use localfargate_registry::objects::{
    DeleteOptions, KubeError, is_deleting, name_of, namespace_of, new_uid, resource, uid_of,
};
use localfargate_registry::typed::PodView;

pub const DEFAULT_SCHEDULER: &str = "default-scheduler";
/// Which node group made a node, and the subnet its pods take IPs from.
pub const SUBNET_ANNOTATION: &str = "localfargate.io/subnet-id";
const NODEGROUP_LABEL: &str = "eks.amazonaws.com/nodegroup";

/// Whether a pod waits for this scheduler.
fn waits_for_us(p: &Value) -> bool {
    let view = PodView::of(p);
    view.scheduler_name().unwrap_or(DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER
        && view.node_name().is_none()
        && !is_deleting(p)
        && view.is_pending()
}

/// What this scheduler reads of a stored Node, borrowed: its labels, taints, whether it is
/// cordoned, what it can hold and its address.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct StoredNode<'a> {
    #[serde(borrow)]
    metadata: StoredNodeMeta<'a>,
    spec: StoredNodeSpec,
    #[serde(borrow)]
    status: StoredNodeStatus<'a>,
}

#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct StoredNodeMeta<'a> {
    #[serde(borrow)]
    labels: BTreeMap<&'a str, &'a str>,
}

#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct StoredNodeSpec {
    taints: Vec<Taint>,
    unschedulable: bool,
}

#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct StoredNodeStatus<'a> {
    #[serde(borrow)]
    allocatable: BTreeMap<&'a str, Amount<'a>>,
    #[serde(borrow)]
    addresses: Vec<StoredNodeAddress<'a>>,
}

/// A quantity as written: a string, or a number (the API takes both for quantities).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Amount<'a> {
    Text(&'a str),
    Number(serde_json::Number),
}

impl Amount<'_> {
    fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Amount::Text(t) => std::borrow::Cow::Borrowed(t),
            Amount::Number(n) => std::borrow::Cow::Owned(n.to_string()),
        }
    }
}

#[derive(Default, serde::Deserialize)]
struct StoredNodeAddress<'a> {
    #[serde(borrow)]
    address: &'a str,
}

impl<'a> StoredNode<'a> {
    /// A node that does not decode reads as empty (no capacity: nothing fits on it).
    fn of(v: &'a Value) -> Self {
        use serde::Deserialize;
        StoredNode::deserialize(v).unwrap_or_default()
    }
}

pub async fn run(ctx: Arc<ClusterContext>) {
    let kind = ctx.objects.store_kind().to_string();
    let pods_prefix = resource("", "pods").key_prefix(None);
    let nodes_prefix = resource("", "nodes").key_prefix(None);
    // Unschedulable pods are tried again when EC2 nodes change, or after this long.
    let retry_every = Duration::from_secs(30);
    let mut failed: HashMap<String, (u64, Instant)> = HashMap::new();
    let mut wake = Wake::new(&kind, Duration::from_millis(20), Duration::from_secs(1));
    // Pending pods of ours, kept from the watch: with thousands of Fargate pods, nothing here
    // scans them.
    let mut pending: BTreeSet<String> = BTreeSet::new();
    // Bumped by every change to a node that could take a pod (EC2 nodes; a Fargate node holds
    // its one pod), and to the node groups.
    let mut epoch: u64 = 0;
    let mut groups_seen: Vec<(String, u64)> = Vec::new();
    let mut last_sync = Instant::now();
    let mut relist = true;
    loop {
        if relist {
            wake.start(
                &*ctx.objects.store,
                ctx.objects.store.revision().unwrap_or(0),
            );
            pending = BTreeSet::new();
            let _ = ctx.objects.scan(resource("", "pods"), None, &mut |o| {
                if waits_for_us(&o.value) {
                    pending.insert(o.key);
                }
            });
            epoch += 1;
        }
        let groups: Vec<(String, u64)> = ctx
            .objects
            .store
            .list(NODEGROUP_KIND, &format!("{}/", ctx.objects.cluster))
            .map(|(l, _)| l.iter().map(|o| (o.key.clone(), o.revision)).collect())
            .unwrap_or_default();
        if relist || groups != groups_seen || last_sync.elapsed() > Duration::from_secs(10) {
            ensure_nodegroup_nodes(&ctx);
            groups_seen = groups;
            last_sync = Instant::now();
        }
        schedule(&ctx, &pending, epoch, &mut failed, retry_every);
        match wake.wait(&*ctx.objects.store).await {
            Woken::Relist => relist = true,
            Woken::Changes(changes) => {
                relist = false;
                for e in &changes {
                    let key = &e.object.key;
                    let alive = e.event_type != localfargate_store::EventType::Deleted;
                    if key.starts_with(&pods_prefix) {
                        if alive && waits_for_us(&e.object.value) {
                            pending.insert(key.clone());
                        } else {
                            pending.remove(key);
                            failed.remove(localfargate_registry::objects::uid_of(&e.object.value));
                        }
                    } else if key.starts_with(&nodes_prefix)
                        && label_of(&e.object.value, "eks.amazonaws.com/compute-type")
                            != Some("fargate")
                    {
                        epoch += 1;
                    }
                }
            }
        }
    }
}

fn nodegroups(ctx: &ClusterContext) -> Vec<Nodegroup> {
    ctx.objects
        .store
        .list(NODEGROUP_KIND, &format!("{}/", ctx.objects.cluster))
        .map(|(l, _)| {
            l.iter()
                .filter_map(|o| serde_json::from_value::<Record<Nodegroup>>(o.value.clone()).ok())
                .map(|r| r.resource)
                .collect()
        })
        .unwrap_or_default()
}

/// Make the nodes of each ACTIVE node group match its desired size; remove the nodes of groups
/// that are going, and the pods on them.
fn ensure_nodegroup_nodes(ctx: &ClusterContext) {
    // Scanned, not listed: with thousands of Fargate nodes, only node groups' are kept.
    let mut by_group: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let scanned = ctx.objects.scan(resource("", "nodes"), None, &mut |n| {
        if let Some(g) = label_of(&n.value, NODEGROUP_LABEL) {
            by_group.entry(g.to_string()).or_default().push(n.value);
        }
    });
    if scanned.is_err() {
        return;
    }
    let groups = nodegroups(ctx);
    for g in &groups {
        let active = matches!(g.status.as_str(), "ACTIVE" | "UPDATING");
        let want = if active {
            g.scaling_config.desired_size as usize
        } else {
            0
        };
        let have = by_group.remove(&g.nodegroup_name).unwrap_or_default();
        if have.len() > want {
            for n in &have[want..] {
                remove_node(ctx, n);
            }
        }
        for i in have.len()..want {
            if let Err(e) = add_node(ctx, g, i) {
                tracing::warn!(nodegroup = %g.nodegroup_name, error = %e, "adding a node");
                break;
            }
        }
    }
    // Nodes of groups that no longer exist.
    for (_, nodes) in by_group {
        for n in &nodes {
            remove_node(ctx, n);
        }
    }
}

fn remove_node(ctx: &ClusterContext, node: &Value) {
    let pods = resource("", "pods");
    let name = name_of(node);
    let mut on_node: Vec<(String, String)> = Vec::new();
    let _ = ctx.objects.scan(pods, None, &mut |p| {
        if PodView::of(&p.value).node_name() == Some(name) {
            on_node.push((namespace_of(&p.value).into(), name_of(&p.value).into()));
        }
    });
    for (ns, pod) in on_node {
        let _ = ctx.objects.delete(
            pods,
            &ns,
            &pod,
            &DeleteOptions {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        );
    }
    let _ = ctx.objects.purge(resource("", "nodes"), "", name);
    if let Some(ip) = StoredNode::of(node)
        .status
        .addresses
        .first()
        .and_then(|a| a.address.parse().ok())
    {
        ctx.release_ip(ip);
    }
}

fn add_node(ctx: &ClusterContext, g: &Nodegroup, index: usize) -> Result<(), String> {
    let (subnet, ip) = ctx.allocate_ip(&g.subnets, index as u64)?;
    let settings = &ctx.objects.settings;
    let zone = settings
        .network
        .subnet(&subnet)
        .map(|(_, s)| s.availability_zone.clone())
        .unwrap_or_default();
    let [a, b, c, d] = ip.octets();
    let name = format!("ip-{a}-{b}-{c}-{d}.{}", settings.dns_suffix());
    let group = NodeGroup {
        name: g.nodegroup_name.clone(),
        instance_types: g.instance_types.clone(),
        desired_size: g.scaling_config.desired_size,
        labels: g.labels.clone(),
        taints: g.taints.clone(),
    };
    let mut labels = group.node_labels();
    let region = settings.region.clone();
    for (k, v) in [
        ("kubernetes.io/hostname", name.clone()),
        ("topology.kubernetes.io/zone", zone.clone()),
        ("topology.kubernetes.io/region", region.clone()),
        ("failure-domain.beta.kubernetes.io/zone", zone.clone()),
        ("failure-domain.beta.kubernetes.io/region", region.clone()),
        ("beta.kubernetes.io/os", "linux".into()),
        (
            "beta.kubernetes.io/instance-type",
            group.instance_type_name().to_string(),
        ),
        (
            "eks.amazonaws.com/nodegroup-image",
            "ami-0123456789abcdef0".into(),
        ),
    ] {
        labels.insert(k.to_string(), v);
    }
    labels.insert(
        "beta.kubernetes.io/arch".into(),
        labels
            .get("kubernetes.io/arch")
            .cloned()
            .unwrap_or_else(|| "amd64".into()),
    );
    let it = group
        .instance_type()
        .or_else(|| instance_type("t3.medium"))
        .ok_or_else(|| "no instance type".to_string())?;
    // EKS's reservations: kube-reserved memory 11 MiB per pod + 255 MiB, eviction 100 MiB.
    let memory_ki = it.memory_mib * 1024;
    let reserved_ki = (11 * u64::from(it.max_pods) + 255 + 100) * 1024;
    let capacity = json!({"cpu": it.vcpus.to_string(), "memory": format!("{memory_ki}Ki"),
                          "ephemeral-storage": "20959212Ki", "pods": it.max_pods.to_string()});
    let allocatable = json!({"cpu": format!("{}m", it.vcpus * 1000 - 70),
                             "memory": format!("{}Ki", memory_ki.saturating_sub(reserved_ki)),
                             "ephemeral-storage": "18242267924", "pods": it.max_pods.to_string()});
    let taints: Vec<Value> = g
        .taints
        .iter()
        .map(|t| json!({"key": t.key, "value": t.value, "effect": t.kube_effect()}))
        .collect();
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {SUBNET_ANNOTATION: subnet, "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"providerID": format!("aws:///{zone}/i-{}", &new_uid().replace('-', "")[..17]), "taints": taints},
        "status": node_status(ip, &name, &ctx.kubelet_version(), capacity, allocatable),
    });
    match ctx.objects.create(resource("", "nodes"), "", node) {
        Ok(_) => Ok(()),
        Err(e) => {
            ctx.release_ip(ip);
            Err(e.to_string())
        }
    }
}

fn quantity_of(text: Option<&str>, millis: bool) -> u64 {
    let Some(text) = text else {
        return 0;
    };
    let parsed = if millis {
        quantity::cpu_millis(text)
    } else {
        quantity::base_units(text)
    };
    parsed.unwrap_or(0)
}

fn requests_of(pod: &Value) -> PodRequests {
    localfargate_registry::admission::decode_pod(pod)
        .ok()
        .and_then(|p| PodFacts::of(&p).ok())
        .map(|f| f.requests())
        .unwrap_or_default()
}

fn schedule(
    ctx: &ClusterContext,
    pending: &BTreeSet<String>,
    epoch: u64,
    failed: &mut HashMap<String, (u64, Instant)>,
    retry_every: Duration,
) {
    let kind = ctx.objects.store_kind();
    let due: Vec<Arc<localfargate_store::Object>> = pending
        .iter()
        .filter_map(|k| ctx.objects.store.get(kind, k).ok().flatten())
        .filter(|o| waits_for_us(&o.value))
        .filter(|o| {
            failed
                .get(uid_of(&o.value))
                .is_none_or(|(seen, at)| *seen != epoch || at.elapsed() >= retry_every)
        })
        .collect();
    if due.is_empty() {
        return;
    }
    let pending: Vec<&Value> = due.iter().map(|o| &o.value).collect();
    // What the pods already on each node use. Pods and nodes are scanned one at a time: with
    // thousands of Fargate pods, holding them all at once would cost more than the cluster.
    let mut used: HashMap<String, (u64, u64, u64)> = HashMap::new();
    let scanned = ctx.objects.scan(resource("", "pods"), None, &mut |o| {
        let p = &o.value;
        let view = PodView::of(p);
        let Some(node) = view.node_name() else {
            return;
        };
        if view.is_finished() {
            return;
        }
        let r = if view.scheduler_name() == Some(FARGATE_SCHEDULER) {
            PodRequests::default()
        } else {
            requests_of(p)
        };
        let e = used.entry(node.to_string()).or_default();
        e.0 += r.cpu_millis;
        e.1 += r.memory_bytes;
        e.2 += 1;
    });
    if scanned.is_err() {
        return;
    }
    let mut views: Vec<(String, NodeView)> = Vec::new();
    let scanned = ctx.objects.scan(resource("", "nodes"), None, &mut |n| {
        views.push({
            let v = &n.value;
            let (cpu, mem, count) = used.get(name_of(v)).copied().unwrap_or_default();
            let node = StoredNode::of(v);
            let alloc = |r: &str| node.status.allocatable.get(r).map(Amount::text);
            let view = NodeView {
                labels: node
                    .metadata
                    .labels
                    .iter()
                    .map(|(k, x)| (k.to_string(), x.to_string()))
                    .collect(),
                free_cpu_millis: quantity_of(alloc("cpu").as_deref(), true).saturating_sub(cpu),
                free_memory_bytes: quantity_of(alloc("memory").as_deref(), false)
                    .saturating_sub(mem),
                free_pods: quantity_of(alloc("pods").as_deref(), false).saturating_sub(count),
                taints: node.spec.taints,
                unschedulable: node.spec.unschedulable,
            };
            (name_of(v).to_string(), view)
        });
    });
    if scanned.is_err() {
        return;
    }
    for pod in pending {
        let uid = uid_of(pod).to_string();
        let Ok(typed) = localfargate_registry::admission::decode_pod(pod) else {
            continue;
        };
        let requests = PodFacts::of(&typed)
            .map(|f| f.requests())
            .unwrap_or_default();
        let mut misfits: Vec<Misfit> = Vec::new();
        let mut best: Option<(usize, u64)> = None;
        for (i, (_, view)) in views.iter().enumerate() {
            match fits_node(&typed, &requests, view) {
                Ok(()) => {
                    // Least allocated: the most free CPU and memory, as shares.
                    let score = view.free_cpu_millis.saturating_sub(requests.cpu_millis)
                        + view.free_memory_bytes.saturating_sub(requests.memory_bytes) / MIB;
                    if best.is_none_or(|(_, s)| score > s) {
                        best = Some((i, score));
                    }
                }
                Err(m) => misfits.push(m),
            }
        }
        let ns = namespace_of(pod).to_string();
        let name = name_of(pod).to_string();
        match best {
            Some((i, _)) => {
                let node = views[i].0.clone();
                match binding::bind(&ctx.objects, &ns, &name, &node) {
                    Ok(()) => {
                        let v = &mut views[i].1;
                        v.free_cpu_millis = v.free_cpu_millis.saturating_sub(requests.cpu_millis);
                        v.free_memory_bytes =
                            v.free_memory_bytes.saturating_sub(requests.memory_bytes);
                        v.free_pods = v.free_pods.saturating_sub(1);
                        failed.remove(&uid);
                        events::emit(
                            &ctx.objects,
                            pod,
                            Kind::Normal,
                            "Scheduled",
                            &format!("Successfully assigned {ns}/{name} to {node}"),
                            DEFAULT_SCHEDULER,
                        );
                    }
                    Err(KubeError::Conflict { .. } | KubeError::NotFound { .. }) => {}
                    Err(e) => tracing::warn!(pod = %name, error = %e, "binding"),
                }
            }
            None => {
                let message = unschedulable_message(&misfits);
                failed.insert(uid, (epoch, Instant::now()));
                let pods = resource("", "pods");
                let already = typed
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| {
                        cs.iter().any(|c| {
                            c.type_ == "PodScheduled"
                                && c.status == "False"
                                && c.message.as_deref() == Some(message.as_str())
                        })
                    });
                if !already {
                    let _ = ctx
                        .objects
                        .update_with(pods, &ns, &name, true, None, &mut |p| {
                            let mut p = p.clone();
                            set_condition(
                                &mut p,
                                "PodScheduled",
                                false,
                                Some("Unschedulable"),
                                Some(&message),
                            );
                            Ok(p)
                        });
                }
                events::emit(
                    &ctx.objects,
                    pod,
                    Kind::Warning,
                    "FailedScheduling",
                    &message,
                    DEFAULT_SCHEDULER,
                );
                if ctx.settings.explain_misses {
                    explain_miss(ctx, &typed, pod);
                }
            }
        }
    }
}

/// Beyond AWS (`--explain-fargate-misses`): say which Fargate selector the pod came closest to.
fn explain_miss(ctx: &ClusterContext, typed: &k8s_openapi::api::core::v1::Pod, pod: &Value) {
    let index = ctx.objects.profile_index();
    let id = localfargate_core::PodIdentity::of(typed);
    if let Some(miss) = index.nearest_selector(&id) {
        events::emit(
            &ctx.objects,
            pod,
            Kind::Normal,
            "NoFargateProfileMatched",
            &format!("no Fargate profile selects this pod; {miss}"),
            FARGATE_SCHEDULER,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_node_reads_its_labels_taints_capacity_and_address_quantities_as_text_or_number() {
        let v = json!({"metadata": {"name": "n", "labels": {"a": "b"}},
            "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}], "unschedulable": true},
            "status": {"allocatable": {"cpu": "1930m", "memory": "3Gi", "pods": 17},
                       "addresses": [{"type": "InternalIP", "address": "10.0.3.4"}]}});
        let n = StoredNode::of(&v);
        assert_eq!(n.metadata.labels.get("a"), Some(&"b"));
        assert_eq!(n.spec.taints.len(), 1);
        assert!(n.spec.unschedulable);
        let alloc = |r: &str| n.status.allocatable.get(r).map(Amount::text);
        assert_eq!(quantity_of(alloc("cpu").as_deref(), true), 1930);
        assert_eq!(quantity_of(alloc("memory").as_deref(), false), 3 << 30);
        assert_eq!(quantity_of(alloc("pods").as_deref(), false), 17);
        assert_eq!(n.status.addresses[0].address, "10.0.3.4");
        let empty = json!({"metadata": {"name": "x"}});
        assert!(StoredNode::of(&empty).status.allocatable.is_empty());
    }
}
