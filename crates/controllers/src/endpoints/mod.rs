//! The endpoints and endpointslice controllers: each Service that selects pods has an Endpoints
//! object of its name and EndpointSlices labelled with it, kept from its pods as
//! kube-controller-manager keeps them (the rules are in `rules`). Woken by changes to Services,
//! pods and the objects themselves (one deleted by hand comes back), and every 30 seconds.

pub mod rules;

use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use localfargate_registry::objects::{
    DeleteOptions, KubeError, Objects, name_of, namespace_of, now_rfc3339, resource,
};
use localfargate_store::EventType;
use serde_json::{Value, json};

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
                            let shown = hasher.hash_one(endpoint_facts(&e.object.value));
                            if seen.insert(at, shown) == Some(shown) {
                                continue;
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
/// readiness, deletion, phase, hostname, subdomain, node and container ports.
fn endpoint_facts(pod: &Value) -> String {
    let ready = pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    let ports: Vec<&Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| &c["ports"])
        .collect();
    json!([
        pod["metadata"]["labels"],
        pod["status"]["podIP"],
        ready,
        pod["metadata"]["deletionTimestamp"],
        pod["status"]["phase"],
        pod["spec"]["hostname"],
        pod["spec"]["subdomain"],
        pod["spec"]["nodeName"],
        ports,
    ])
    .to_string()
}

/// Endpoints whose Service is gone (deleted while nothing watched), removed when the controller
/// starts, as upstream's `checkLeftoverEndpoints`; those holding a leader-election record stay.
fn remove_leftover_endpoints(objects: &Objects) {
    let Ok((endpoints, _)) = objects.list(resource("", "endpoints"), None) else {
        return;
    };
    for e in endpoints.iter().map(|o| &o.value) {
        if e["metadata"]["annotations"]["control-plane.alpha.kubernetes.io/leader"].is_string() {
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
    let mut by_namespace: HashMap<String, Vec<&Value>> = HashMap::new();
    for svc in listed.iter().map(|o| &o.value) {
        if rules::is_managed(svc) && !svc["metadata"]["deletionTimestamp"].is_string() {
            by_namespace
                .entry(namespace_of(svc).to_string())
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
        for svc in services {
            let selected: Vec<&Value> = pods
                .iter()
                .map(|o| &o.value)
                .filter(|p| rules::selects(svc, p))
                .collect();
            if let Err(e) = sync_endpoints(objects, svc, &selected) {
                tracing::debug!(service = name_of(svc), error = %e, "updating endpoints");
            }
            if let Err(e) = sync_slices(objects, svc, &selected, &zones, &slices) {
                tracing::debug!(service = name_of(svc), error = %e, "updating endpoint slices");
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
            let zone = o.value["metadata"]["labels"]["topology.kubernetes.io/zone"].as_str()?;
            Some((name_of(&o.value).to_string(), zone.to_string()))
        })
        .collect()
}

fn sync_endpoints(objects: &Objects, svc: &Value, pods: &[&Value]) -> Result<(), KubeError> {
    let rt = resource("", "endpoints");
    let ns = namespace_of(svc);
    let name = name_of(svc);
    let mut desired = rules::endpoints(svc, pods);
    let current = match objects.get(rt, ns, name) {
        Ok(c) => Some(c),
        Err(KubeError::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    let Some(current) = current else {
        desired["metadata"]["annotations"][TRIGGER_TIME] = json!(now_rfc3339());
        return match objects.create(rt, ns, desired) {
            Ok(_) | Err(KubeError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        };
    };
    let labels = desired["metadata"]["labels"].clone();
    let subsets = desired.get("subsets").cloned().unwrap_or(Value::Null);
    let truncated = desired["metadata"]["annotations"][rules::OVER_CAPACITY].is_string();
    let current_labels = current["metadata"]["labels"]
        .as_object()
        .filter(|l| !l.is_empty());
    if current.get("subsets").cloned().unwrap_or(Value::Null) == subsets
        && current_labels == labels.as_object()
        && current["metadata"]["annotations"][rules::OVER_CAPACITY].is_string() == truncated
    {
        return Ok(());
    }
    objects.update_with(rt, ns, name, false, None, &mut |cur| {
        let mut new = cur.clone();
        match new["metadata"].as_object_mut() {
            Some(m) if labels.is_null() => {
                m.remove("labels");
            }
            Some(m) => {
                m.insert("labels".into(), labels.clone());
            }
            None => {}
        }
        new["metadata"]["annotations"][TRIGGER_TIME] = json!(now_rfc3339());
        if truncated {
            new["metadata"]["annotations"][rules::OVER_CAPACITY] = json!("truncated");
        } else if let Some(a) = new["metadata"]["annotations"].as_object_mut() {
            a.remove(rules::OVER_CAPACITY);
        }
        match new.as_object_mut() {
            Some(o) if subsets.is_null() => {
                o.remove("subsets");
            }
            Some(o) => {
                o.insert("subsets".into(), subsets.clone());
            }
            None => {}
        }
        Ok(new)
    })?;
    Ok(())
}

/// The slices the controller keeps for the Service (managed by it and owned by this Service,
/// not being deleted), brought to what `rules::slice_contents` says as upstream's reconciler
/// does it: an endpoint stays in the slice that holds it, new ones fill slices with room (at
/// most [`rules::MAX_ENDPOINTS_PER_SLICE`]), then new slices; empty slices go, but one
/// placeholder stays when the Service has no endpoint at all.
fn sync_slices(
    objects: &Objects,
    svc: &Value,
    pods: &[&Value],
    zones: &HashMap<String, String>,
    namespace_slices: &[&Value],
) -> Result<(), KubeError> {
    let rt = resource("discovery.k8s.io", "endpointslices");
    let ns = namespace_of(svc);
    let uid = &svc["metadata"]["uid"];
    let mut existing: Vec<&Value> = namespace_slices
        .iter()
        .copied()
        .filter(|s| {
            s["metadata"]["labels"][rules::MANAGED_BY_LABEL] == rules::SLICE_MANAGER
                && s["metadata"]["labels"][rules::SERVICE_NAME_LABEL] == svc["metadata"]["name"]
                && !s["metadata"]["deletionTimestamp"].is_string()
                && s["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|r| &r["uid"] == uid))
        })
        .collect();
    existing.sort_by_key(|s| name_of(s).to_string());
    let wanted = rules::slice_contents(svc, pods, zones);
    let placeholder_only = wanted.len() == 1 && wanted[0].1.is_empty();
    // What each existing slice will hold (by index into `existing`), and the slices to create.
    let mut planned: Vec<Option<(Value, Vec<Value>)>> = vec![None; existing.len()];
    let mut created: Vec<(Value, Vec<Value>)> = Vec::new();
    if placeholder_only {
        if existing.is_empty() {
            created.push(wanted[0].clone());
        } else {
            planned[0] = Some(wanted[0].clone());
        }
    } else {
        let identity = |e: &Value| format!("{}/{}", e["targetRef"]["uid"], e["addresses"][0]);
        let same_ports = |a: &Value, b: &Value| {
            let empty = |v: &Value| v.as_array().is_none_or(Vec::is_empty);
            a == b || (empty(a) && empty(b))
        };
        for (ports, endpoints) in &wanted {
            let mut remaining: Vec<&Value> = endpoints.iter().collect();
            let mut holders: Vec<usize> = Vec::new();
            for (i, slice) in existing.iter().enumerate() {
                if planned[i].is_some() || !same_ports(&slice["ports"], ports) {
                    continue;
                }
                // The endpoints it holds that are still wanted, updated in place.
                let mut kept = Vec::new();
                for held in slice["endpoints"].as_array().into_iter().flatten() {
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
        let name = name_of(current);
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
        let same = ["endpoints", "ports", "addressType"]
            .iter()
            .all(|k| current.get(*k).unwrap_or(&Value::Null) == &desired[*k])
            && current["metadata"]["labels"] == desired["metadata"]["labels"];
        if same {
            continue;
        }
        objects.update_with(rt, ns, name, false, None, &mut |cur| {
            let mut new = cur.clone();
            for k in ["endpoints", "ports"] {
                new[k] = desired[k].clone();
            }
            new["metadata"]["labels"] = desired["metadata"]["labels"].clone();
            new["metadata"]["annotations"][TRIGGER_TIME] = json!(now_rfc3339());
            Ok(new)
        })?;
    }
    for (ports, endpoints) in created {
        let mut body = rules::slice(svc, &ports, &endpoints);
        body["metadata"]["annotations"] = json!({TRIGGER_TIME: now_rfc3339()});
        objects.create(rt, ns, body)?;
    }
    Ok(())
}
