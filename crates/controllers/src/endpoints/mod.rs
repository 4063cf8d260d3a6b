//! The endpoints and endpointslice controllers: each Service that selects pods has an Endpoints
//! object of its name and EndpointSlices labelled with it, kept from its pods as
//! kube-controller-manager keeps them (the rules are in `rules`). Woken by changes to Services,
//! pods and the objects themselves (one deleted by hand comes back), and every 30 seconds.

pub mod rules;

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use localfargate_registry::meta::{DynamicObject, Field, annotation_of, is_deleting, label_of};
use localfargate_registry::objects::{
    DeleteOptions, KubeError, Objects, name_of, namespace_of, now_rfc3339, resource,
};
use localfargate_registry::typed::{decode, decode_or_log, to_json};
use localfargate_store::EventType;
use serde::Deserialize;
use serde_json::Value;

use crate::context::ClusterContext;
use crate::wake::{Wake, Woken};

/// The annotation upstream stamps on what it writes: when the change that caused it happened.
const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

pub async fn run(ctx: Arc<ClusterContext>) {
    let objects = &ctx.objects;
    let kind = objects.store_kind().to_string();
    let services = resource("", "services").key_prefix(None);
    let pods = resource("", "pods").key_prefix(None);
    let endpoints = resource("", "endpoints").key_prefix(None);
    let slices = resource("discovery.k8s.io", "endpointslices").key_prefix(None);
    let mut wake = Wake::watching(
        &kind,
        &[
            services.clone(),
            pods.clone(),
            endpoints.clone(),
            slices.clone(),
        ],
        Duration::from_millis(100),
        Duration::from_secs(30),
    );
    let mut relist = true;
    let mut dirty: Option<BTreeSet<String>> = None;
    // What each pod showed the Service controllers last (hashed by key): a pod change that
    // changes none of it (most status writes) wakes nothing, as upstream's
    // `podEndpointsChanged` filters them.
    let mut seen: HashMap<u64, u64> = HashMap::new();
    let hasher = std::collections::hash_map::RandomState::new();
    loop {
        if relist {
            wake.start(&*objects.store, objects.store.revision().unwrap_or(0));
            dirty = None;
            seen.clear();
            remove_leftover_endpoints(objects);
        }
        sync(objects, dirty.as_ref());
        match wake.wait(&*objects.store).await {
            Woken::Relist => relist = true,
            Woken::Changes(changes) => {
                relist = false;
                let mut namespaces = BTreeSet::new();
                for e in &changes {
                    let key = e.object.key.as_str();
                    let deleted = e.event_type == EventType::Deleted;
                    if key.starts_with(pods.as_str()) {
                        let at = hasher.hash_one(key);
                        if deleted {
                            seen.remove(&at);
                        } else {
                            match endpoint_facts(&e.object.value) {
                                Some(facts) => {
                                    let shown = hasher.hash_one(facts);
                                    if seen.insert(at, shown) == Some(shown) {
                                        continue;
                                    }
                                }
                                None => {
                                    seen.remove(&at);
                                }
                            }
                        }
                    }
                    // Its own writes do not wake it; a deletion of what it keeps does.
                    let relevant = key.starts_with(services.as_str())
                        || key.starts_with(pods.as_str())
                        || (deleted
                            && (key.starts_with(endpoints.as_str())
                                || key.starts_with(slices.as_str())));
                    if !relevant {
                        continue;
                    }
                    let ns = namespace_of(&e.object.value);
                    namespaces.insert(ns.to_string());
                    if deleted && key.starts_with(services.as_str()) {
                        remove_endpoints(objects, ns, name_of(&e.object.value));
                    }
                }
                // Woken by time alone: every Service, for anything missed.
                dirty = (!changes.is_empty()).then_some(namespaces);
            }
        }
    }
}

/// What of a pod its Services' endpoints show: labels (which Services select it), address,
/// readiness, deletion, phase, hostname, subdomain, node and container ports. Read where the pod
/// is stored (borrowed strings, the rest of the pod skipped), not as a whole `Pod`: this runs
/// for every pod event. `None` when the pod does not read so (it then counts as changed).
fn endpoint_facts(pod: &Value) -> Option<impl std::hash::Hash + use<'_>> {
    let f = PodFacts::deserialize(pod).ok()?;
    let ready = f
        .status
        .conditions
        .iter()
        .any(|c| c.type_ == Some("Ready") && c.status == Some("True"));
    let ports: Vec<_> = f.spec.containers.into_iter().map(|c| c.ports).collect();
    Some((
        f.metadata.labels,
        f.status.pod_ip,
        ready,
        f.metadata.deletion_timestamp,
        f.status.phase,
        f.spec.hostname,
        f.spec.subdomain,
        f.spec.node_name,
        ports,
    ))
}

/// The fields of a pod [`endpoint_facts`] reads.
#[derive(Deserialize, Default)]
#[serde(default)]
struct PodFacts<'a> {
    #[serde(borrow)]
    metadata: PodFactsMeta<'a>,
    #[serde(borrow)]
    spec: PodFactsSpec<'a>,
    #[serde(borrow)]
    status: PodFactsStatus<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PodFactsMeta<'a> {
    #[serde(borrow)]
    labels: Option<BTreeMap<&'a str, &'a str>>,
    #[serde(borrow)]
    deletion_timestamp: Option<&'a str>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PodFactsSpec<'a> {
    #[serde(borrow)]
    hostname: Option<&'a str>,
    #[serde(borrow)]
    subdomain: Option<&'a str>,
    #[serde(borrow)]
    node_name: Option<&'a str>,
    #[serde(borrow)]
    containers: Vec<PodFactsContainer<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PodFactsContainer<'a> {
    #[serde(borrow)]
    ports: Option<Vec<PodFactsPort<'a>>>,
}

/// A container port, every field of it.
#[derive(Deserialize, Default, Hash)]
#[serde(default, rename_all = "camelCase")]
struct PodFactsPort<'a> {
    #[serde(borrow)]
    name: Option<&'a str>,
    container_port: Option<i64>,
    #[serde(borrow)]
    protocol: Option<&'a str>,
    host_port: Option<i64>,
    #[serde(borrow, rename = "hostIP")]
    host_ip: Option<&'a str>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PodFactsStatus<'a> {
    #[serde(borrow, rename = "podIP")]
    pod_ip: Option<&'a str>,
    #[serde(borrow)]
    phase: Option<&'a str>,
    #[serde(borrow)]
    conditions: Vec<PodFactsCondition<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PodFactsCondition<'a> {
    #[serde(borrow, rename = "type")]
    type_: Option<&'a str>,
    #[serde(borrow)]
    status: Option<&'a str>,
}

/// Endpoints whose Service is gone (deleted while nothing watched), removed when the controller
/// starts, as upstream's `checkLeftoverEndpoints`; those holding a leader-election record stay.
fn remove_leftover_endpoints(objects: &Objects) {
    let Ok((endpoints, _)) = objects.list(resource("", "endpoints"), None) else {
        return;
    };
    for e in endpoints.iter().map(|o| &o.value) {
        if annotation_of(e, "control-plane.alpha.kubernetes.io/leader").is_some() {
            continue;
        }
        let ns = namespace_of(e);
        let name = name_of(e);
        if let Err(KubeError::NotFound { .. }) = objects.get(resource("", "services"), ns, name) {
            remove_endpoints(objects, ns, name);
        }
    }
}

/// A deleted Service's Endpoints go with it (its slices go by garbage collection).
fn remove_endpoints(objects: &Objects, namespace: &str, name: &str) {
    let rt = resource("", "endpoints");
    match objects.delete(rt, namespace, name, &DeleteOptions::default()) {
        Ok(_) | Err(KubeError::NotFound { .. }) => {}
        Err(e) => tracing::debug!(service = name, error = %e, "deleting a Service's endpoints"),
    }
}

/// Bring the endpoints of the Services of these namespaces (all with `None`) up to date.
fn sync(objects: &Objects, namespaces: Option<&BTreeSet<String>>) {
    let services_rt = resource("", "services");
    let listed = match namespaces {
        None => objects.list(services_rt, None).map(|(l, _)| l),
        Some(set) => {
            let mut all = Vec::new();
            for ns in set {
                match objects.list(services_rt, Some(ns)) {
                    Ok((l, _)) => all.extend(l.iter().cloned()),
                    Err(e) => tracing::debug!(namespace = %ns, error = %e, "listing services"),
                }
            }
            Ok(all)
        }
    };
    let Ok(listed) = listed else {
        return;
    };
    let mut by_namespace: HashMap<String, Vec<Service>> = HashMap::new();
    for svc in listed
        .iter()
        .filter_map(|o| decode_or_log::<Service>(&o.value))
    {
        if rules::is_managed(&svc) && svc.metadata.deletion_timestamp.is_none() {
            by_namespace
                .entry(svc.metadata.namespace.clone().unwrap_or_default())
                .or_default()
                .push(svc);
        }
    }
    if by_namespace.is_empty() {
        return;
    }
    let zones = node_zones(objects);
    for (ns, services) in by_namespace {
        let Ok((pods, _)) = objects.list(resource("", "pods"), Some(&ns)) else {
            continue;
        };
        let slices = match objects.list(resource("discovery.k8s.io", "endpointslices"), Some(&ns)) {
            Ok((l, _)) => l,
            Err(e) => {
                tracing::debug!(namespace = %ns, error = %e, "listing endpoint slices");
                continue;
            }
        };
        let slices: Vec<&Value> = slices.iter().map(|o| &o.value).collect();
        // A pod is decoded when some Service selects it, once however many do.
        let decoded: Vec<OnceCell<Option<Pod>>> = pods.iter().map(|_| OnceCell::new()).collect();
        for svc in &services {
            let selected: Vec<&Pod> = pods
                .iter()
                .zip(&decoded)
                .filter(|(o, _)| rules::selects(svc, &o.value))
                .filter_map(|(o, d)| d.get_or_init(|| decode_or_log(&o.value)).as_ref())
                .collect();
            let name = svc.metadata.name.as_deref().unwrap_or("");
            if let Err(e) = sync_endpoints(objects, svc, &selected) {
                tracing::debug!(service = name, error = %e, "updating endpoints");
            }
            if let Err(e) = sync_slices(objects, svc, &selected, &zones, &slices) {
                tracing::debug!(service = name, error = %e, "updating endpoint slices");
            }
        }
    }
}

/// Each node's zone (`topology.kubernetes.io/zone`), for the slices' endpoints.
fn node_zones(objects: &Objects) -> HashMap<String, String> {
    let Ok((nodes, _)) = objects.list(resource("", "nodes"), None) else {
        return HashMap::new();
    };
    nodes
        .iter()
        .filter_map(|o| {
            let zone = label_of(&o.value, "topology.kubernetes.io/zone")?;
            Some((name_of(&o.value).to_string(), zone.to_string()))
        })
        .collect()
}

fn sync_endpoints(objects: &Objects, svc: &Service, pods: &[&Pod]) -> Result<(), KubeError> {
    let rt = resource("", "endpoints");
    let ns = svc.metadata.namespace.as_deref().unwrap_or("");
    let name = svc.metadata.name.as_deref().unwrap_or("");
    let mut desired = rules::endpoints(svc, pods);
    let current = match objects.get(rt, ns, name) {
        Ok(c) => Some(decode::<Endpoints>(&c)?),
        Err(KubeError::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    let Some(current) = current else {
        desired
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(TRIGGER_TIME.to_string(), now_rfc3339());
        return match objects.create(rt, ns, to_json(&desired)?) {
            Ok(_) | Err(KubeError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        };
    };
    let truncated = over_capacity(&desired.metadata);
    let current_labels = current.metadata.labels.as_ref().filter(|l| !l.is_empty());
    if current.subsets == desired.subsets
        && current_labels == desired.metadata.labels.as_ref()
        && over_capacity(&current.metadata) == truncated
    {
        return Ok(());
    }
    let labels = desired.metadata.labels;
    let subsets = desired.subsets.map(|s| to_json(&s)).transpose()?;
    objects.update_with(rt, ns, name, false, None, &mut |cur| {
        let mut new = DynamicObject::from_value(cur.clone())?;
        let meta = &mut new.metadata;
        meta.clear(Field::Labels);
        meta.labels.clone_from(&labels);
        meta.insert_annotation(TRIGGER_TIME, now_rfc3339());
        if truncated {
            meta.insert_annotation(rules::OVER_CAPACITY, "truncated".to_string());
        } else if let Some(a) = meta.annotations.as_mut() {
            a.remove(rules::OVER_CAPACITY);
        }
        match &subsets {
            None => {
                new.body.remove("subsets");
            }
            Some(s) => {
                new.body.insert("subsets".into(), s.clone());
            }
        }
        Ok(new.into_value())
    })?;
    Ok(())
}

fn over_capacity(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(rules::OVER_CAPACITY))
}

/// The slices the controller keeps for the Service (managed by it and owned by this Service,
/// not being deleted), brought to what `rules::slice_contents` says as upstream's reconciler
/// does it: an endpoint stays in the slice that holds it, new ones fill slices with room (at
/// most [`rules::MAX_ENDPOINTS_PER_SLICE`]), then new slices; empty slices go, but one
/// placeholder stays when the Service has no endpoint at all.
fn sync_slices(
    objects: &Objects,
    svc: &Service,
    pods: &[&Pod],
    zones: &HashMap<String, String>,
    namespace_slices: &[&Value],
) -> Result<(), KubeError> {
    let rt = resource("discovery.k8s.io", "endpointslices");
    let ns = svc.metadata.namespace.as_deref().unwrap_or("");
    let svc_name = svc.metadata.name.as_deref().unwrap_or("");
    let uid = svc.metadata.uid.as_deref().unwrap_or("");
    let mut existing: Vec<EndpointSlice> = namespace_slices
        .iter()
        .copied()
        .filter(|s| {
            label_of(s, rules::MANAGED_BY_LABEL) == Some(rules::SLICE_MANAGER)
                && label_of(s, rules::SERVICE_NAME_LABEL) == Some(svc_name)
                && !is_deleting(s)
        })
        .filter_map(decode_or_log::<EndpointSlice>)
        .filter(|s| {
            s.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.uid == uid)
        })
        .collect();
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let wanted = rules::slice_contents(svc, pods, zones);
    let placeholder_only = wanted.len() == 1 && wanted[0].1.is_empty();
    // What each existing slice will hold (by index into `existing`), and the slices to create.
    let mut planned: Vec<Option<rules::SliceContents>> = vec![None; existing.len()];
    let mut created: Vec<rules::SliceContents> = Vec::new();
    if placeholder_only {
        if existing.is_empty() {
            created.push(wanted[0].clone());
        } else {
            planned[0] = Some(wanted[0].clone());
        }
    } else {
        let identity = |e: &Endpoint| {
            (
                e.target_ref.as_ref().and_then(|r| r.uid.clone()),
                e.addresses.first().cloned(),
            )
        };
        let same_ports = |a: &Option<Vec<EndpointPort>>, b: &[EndpointPort]| {
            a.as_deref().unwrap_or_default() == b
        };
        for (ports, endpoints) in &wanted {
            let mut remaining: Vec<&Endpoint> = endpoints.iter().collect();
            let mut holders: Vec<usize> = Vec::new();
            for (i, slice) in existing.iter().enumerate() {
                if planned[i].is_some() || !same_ports(&slice.ports, ports) {
                    continue;
                }
                // The endpoints it holds that are still wanted, updated in place.
                let mut kept = Vec::new();
                for held in &slice.endpoints {
                    if let Some(at) = remaining.iter().position(|e| identity(e) == identity(held)) {
                        kept.push(remaining.remove(at).clone());
                    }
                }
                planned[i] = Some((ports.clone(), kept));
                holders.push(i);
            }
            for i in holders {
                if let Some((_, held)) = planned[i].as_mut() {
                    while held.len() < rules::MAX_ENDPOINTS_PER_SLICE && !remaining.is_empty() {
                        held.push(remaining.remove(0).clone());
                    }
                }
            }
            for chunk in remaining.chunks(rules::MAX_ENDPOINTS_PER_SLICE) {
                created.push((ports.clone(), chunk.iter().map(|e| (*e).clone()).collect()));
            }
        }
    }
    for (i, current) in existing.iter().enumerate() {
        let name = current.metadata.name.as_deref().unwrap_or("");
        let Some((ports, endpoints)) = planned[i]
            .take()
            .filter(|(_, e)| !e.is_empty() || placeholder_only)
        else {
            match objects.delete(rt, ns, name, &DeleteOptions::default()) {
                Ok(_) | Err(KubeError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            continue;
        };
        let desired = rules::slice(svc, &ports, &endpoints);
        if current.endpoints == desired.endpoints
            && current.ports == desired.ports
            && current.address_type == desired.address_type
            && current.metadata.labels == desired.metadata.labels
        {
            continue;
        }
        let labels = desired.metadata.labels.clone();
        let body = rules::slice_json(&desired).map_err(|e| KubeError::Internal(e.to_string()))?;
        objects.update_with(rt, ns, name, false, None, &mut |cur| {
            let mut new = DynamicObject::from_value(cur.clone())?;
            // The slice's own fields, as the controller writes them (see `rules::slice_json`).
            for k in ["endpoints", "ports"] {
                new.body
                    .insert(k.to_string(), body.get(k).cloned().unwrap_or(Value::Null));
            }
            new.metadata.clear(Field::Labels);
            new.metadata.labels.clone_from(&labels);
            new.metadata.insert_annotation(TRIGGER_TIME, now_rfc3339());
            Ok(new.into_value())
        })?;
    }
    for (ports, endpoints) in created {
        let mut desired = rules::slice(svc, &ports, &endpoints);
        desired.metadata.annotations =
            Some(BTreeMap::from([(TRIGGER_TIME.to_string(), now_rfc3339())]));
        let body = rules::slice_json(&desired).map_err(|e| KubeError::Internal(e.to_string()))?;
        objects.create(rt, ns, body)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A stored pod: its app label, its Ready and PodScheduled conditions, its container port,
    /// whether it is being deleted.
    fn pod(app: &str, ready: bool, scheduled: bool, port: u16, deleting: bool) -> Value {
        let status = |b: bool| if b { "True" } else { "False" };
        let mut metadata = json!({"name": "a", "namespace": "default", "labels": {"app": app}});
        if deleting && let Some(m) = metadata.as_object_mut() {
            m.insert("deletionTimestamp".into(), json!("2026-01-01T00:00:00Z"));
        }
        json!({
            "metadata": metadata,
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"containerPort": port}]}]},
            "status": {"phase": "Running", "podIP": "10.0.1.5",
                       "conditions": [{"type": "Ready", "status": status(ready)},
                                      {"type": "PodScheduled", "status": status(scheduled)}]},
        })
    }

    /// A status write that changes nothing endpoints show wakes nothing; a label, readiness,
    /// port or deletion change does.
    #[test]
    fn only_what_endpoints_show_of_a_pod_counts_as_a_change() {
        let hasher = std::collections::hash_map::RandomState::new();
        let h = |v: &Value| endpoint_facts(v).map(|f| hasher.hash_one(f));
        let base = h(&pod("web", true, true, 80, false));
        assert!(base.is_some());
        assert_eq!(base, h(&pod("web", true, false, 80, false)));
        for changed in [
            pod("db", true, true, 80, false),
            pod("web", false, true, 80, false),
            pod("web", true, true, 81, false),
            pod("web", true, true, 80, true),
        ] {
            assert_ne!(base, h(&changed), "{changed}");
        }
        assert!(endpoint_facts(&json!({"spec": {"containers": 5}})).is_none());
    }
}
