//! ResourceQuota, as kube-apiserver's admission plugin and kube-controller-manager's quota
//! controller evaluate it: what an object charges (`usage`: pods' compute requests and limits,
//! services' load balancers and node ports, claims' storage, object counts), which quotas a pod
//! falls under (`scopes_match`: Terminating, NotTerminating, BestEffort, NotBestEffort,
//! PriorityClass), a namespace's usage counted from the store (`used`), the status the
//! controller writes (`status`), and the refusal of a create that would exceed a quota
//! (`admit_create`, `admit_update`). Admission runs inside the write's transaction: it checks
//! the usage the quota records (counted from the store when it has not recorded it yet) and
//! charges the quota's `status.used` in that same transaction, as upstream's admission charges
//! it before the object is stored, so two quick creates cannot both slip under the limit and a
//! create costs the same however many objects the namespace has.
//!
//! Quotas are read as k8s-openapi's `ResourceQuota`, and what they charge for (pods, Services,
//! claims) as their types; an object that does not decode is logged and charged its count only.

pub mod amount;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, Pod, PodAffinityTerm, PodSpec, ResourceQuota,
    ResourceQuotaStatus, Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use localfargate_store::Tx;
use serde_json::Value;

use crate::custom::Catalog;
use crate::error::{KubeError, Result};
use crate::meta::DynamicObject;
use crate::objects::name_of;
use crate::resources::ResourceType;
use crate::typed;
use amount::{Amount, Amounts, add_into, amounts_of, amounts_of_list, max_into, pretty};

/// The compute resources a quota on which makes every container say what it asks for (upstream's
/// backward-compatibility rule for `cpu` and `memory`).
const MUST_SPECIFY: [&str; 6] = [
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// The quota resource an object count of `rt` is tracked as: `count/pods`, `count/deployments.apps`.
fn count_name(rt: &ResourceType) -> String {
    format!("count/{}", rt.qualified())
}

/// Whether `name` (a key of `spec.hard`) is a pod compute resource.
fn is_pod_compute(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage")
        || name.starts_with("hugepages-")
        || (name.starts_with("requests.") && name != "requests.storage")
        || name.starts_with("limits.")
}

/// Whether the quota resource `name` is charged by objects of `rt`.
pub fn tracks(rt: &ResourceType, name: &str) -> bool {
    if name == count_name(rt) {
        return true;
    }
    match (rt.group, rt.resource) {
        ("", "pods") => name == "pods" || is_pod_compute(name),
        ("", "services") => matches!(
            name,
            "services" | "services.loadbalancers" | "services.nodeports"
        ),
        ("", "persistentvolumeclaims") => {
            matches!(name, "persistentvolumeclaims" | "requests.storage")
        }
        ("", plural @ ("configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas")) => {
            name == plural
        }
        _ => false,
    }
}

/// The served resources (built-in and custom) whose objects a quota resource name counts.
fn tracked_by(name: &str, served: &[&'static ResourceType]) -> Vec<&'static ResourceType> {
    let mut out: Vec<&'static ResourceType> = Vec::new();
    for rt in served.iter().copied().filter(|r| r.namespaced) {
        if tracks(rt, name)
            && !out
                .iter()
                .any(|o| o.key_prefix(None) == rt.key_prefix(None))
        {
            out.push(rt);
        }
    }
    out
}

/// A container's or pod's requests and limits as the quota resources they charge
/// (upstream's `podComputeUsageHelper`).
fn compute_usage(requests: &Amounts, limits: &Amounts) -> Amounts {
    let mut out = Amounts::new();
    for (name, q) in requests {
        match name.as_str() {
            "cpu" | "memory" | "ephemeral-storage" => {
                out.insert(name.clone(), *q);
                out.insert(format!("requests.{name}"), *q);
            }
            _ if name.starts_with("hugepages-") => {
                out.insert(format!("requests.{name}"), *q);
            }
            _ if name.contains('/') => {
                out.insert(format!("requests.{name}"), *q);
            }
            _ => {}
        }
    }
    for (name, q) in limits {
        if matches!(name.as_str(), "cpu" | "memory" | "ephemeral-storage") {
            out.insert(format!("limits.{name}"), *q);
        }
    }
    out
}

/// A pod's effective requests or limits (`field`): its containers' and restartable init
/// containers' sum, or the largest init container's (with the sidecars started before it) when
/// larger, plus the pod's overhead (upstream's `resourcehelper.PodRequests`/`PodLimits`).
///
/// This form reads a pod spec as JSON: the LimitRanger's admission holds the pod being created
/// with its body untyped (see [`typed_pod_resources`] for a stored pod).
pub fn pod_resources(spec: &Value, field: &str) -> Amounts {
    let containers = |key: &str| {
        spec.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    };
    let resources = |c: &Value| {
        amounts_of(
            c.get("resources")
                .and_then(|r| r.get(field))
                .unwrap_or(&Value::Null),
        )
    };
    effective(
        containers("containers").map(resources),
        containers("initContainers").map(|c| {
            (
                resources(c),
                c.get("restartPolicy").and_then(Value::as_str) == Some("Always"),
            )
        }),
        amounts_of(spec.get("overhead").unwrap_or(&Value::Null)),
    )
}

/// [`pod_resources`] of a typed pod spec.
pub fn typed_pod_resources(spec: &PodSpec, field: Field) -> Amounts {
    effective(
        spec.containers.iter().map(|c| container_amounts(c, field)),
        spec.init_containers.iter().flatten().map(|c| {
            (
                container_amounts(c, field),
                c.restart_policy.as_deref() == Some("Always"),
            )
        }),
        amounts_of_list(spec.overhead.as_ref()),
    )
}

/// Which of a container's resource lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Requests,
    Limits,
}

fn container_amounts(c: &Container, field: Field) -> Amounts {
    let resources = c.resources.as_ref();
    amounts_of_list(match field {
        Field::Requests => resources.and_then(|r| r.requests.as_ref()),
        Field::Limits => resources.and_then(|r| r.limits.as_ref()),
    })
}

/// The sum of the containers, or the largest init container's with the sidecars (restartable
/// init containers, `true`) started before it when larger, plus the overhead.
fn effective(
    containers: impl Iterator<Item = Amounts>,
    init_containers: impl Iterator<Item = (Amounts, bool)>,
    overhead: Amounts,
) -> Amounts {
    let mut sum = Amounts::new();
    for own in containers {
        add_into(&mut sum, &own);
    }
    let (mut sidecars, mut init_max) = (Amounts::new(), Amounts::new());
    for (own, sidecar) in init_containers {
        if sidecar {
            add_into(&mut sidecars, &own);
            max_into(&mut init_max, &sidecars);
        } else {
            let mut with_sidecars = sidecars.clone();
            add_into(&mut with_sidecars, &own);
            max_into(&mut init_max, &with_sidecars);
        }
    }
    add_into(&mut sum, &sidecars);
    max_into(&mut sum, &init_max);
    add_into(&mut sum, &overhead);
    sum
}

/// An object as quota evaluates it: the kinds that charge more than their count, typed.
pub enum Charged {
    Pod(Box<Pod>),
    Service(Box<Service>),
    Claim(Box<PersistentVolumeClaim>),
    /// Another kind, or an object that does not decode (logged): its count only.
    Counted,
}

impl Charged {
    pub fn of(rt: &ResourceType, obj: &Value) -> Charged {
        if !rt.group.is_empty() {
            return Charged::Counted;
        }
        let decoded = match rt.resource {
            "pods" => typed::decode_or_log(obj).map(|p| Charged::Pod(Box::new(p))),
            "services" => typed::decode_or_log(obj).map(|s| Charged::Service(Box::new(s))),
            "persistentvolumeclaims" => {
                typed::decode_or_log(obj).map(|c| Charged::Claim(Box::new(c)))
            }
            _ => None,
        };
        decoded.unwrap_or(Charged::Counted)
    }
}

/// What one object charges, by quota resource name.
pub fn usage(rt: &ResourceType, obj: &Value) -> Amounts {
    charged_usage(rt, &Charged::of(rt, obj))
}

fn charged_usage(rt: &ResourceType, obj: &Charged) -> Amounts {
    let mut out = Amounts::from([(count_name(rt), Amount::count(1))]);
    match (rt.group, rt.resource, obj) {
        ("", "pods", Charged::Pod(pod)) => {
            // `count/pods` counts every pod in storage; `pods` and compute only live ones.
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            if matches!(phase, Some("Succeeded" | "Failed")) {
                return out;
            }
            out.insert("pods".into(), Amount::count(1));
            if let Some(spec) = &pod.spec {
                let usage = compute_usage(
                    &typed_pod_resources(spec, Field::Requests),
                    &typed_pod_resources(spec, Field::Limits),
                );
                out.extend(usage);
            }
        }
        ("", "services", Charged::Service(svc)) => {
            out.insert("services".into(), Amount::count(1));
            let spec = svc.spec.as_ref();
            let ports = spec.and_then(|s| s.ports.as_ref()).map_or(0, Vec::len) as u64;
            match spec.and_then(|s| s.type_.as_deref()) {
                Some("LoadBalancer") => {
                    out.insert("services.loadbalancers".into(), Amount::count(1));
                    let node_ports =
                        spec.and_then(|s| s.allocate_load_balancer_node_ports) != Some(false);
                    out.insert(
                        "services.nodeports".into(),
                        Amount::count(if node_ports { ports } else { 0 }),
                    );
                }
                Some("NodePort") => {
                    out.insert("services.nodeports".into(), Amount::count(ports));
                }
                _ => {}
            }
        }
        ("", "persistentvolumeclaims", claim) => {
            out.insert("persistentvolumeclaims".into(), Amount::count(1));
            let requested = match claim {
                Charged::Claim(c) => c
                    .spec
                    .as_ref()
                    .and_then(|s| s.resources.as_ref())
                    .and_then(|r| r.requests.as_ref())
                    .and_then(|r| r.get("storage")),
                _ => None,
            };
            if let Some(storage) = requested.and_then(|q| Amount::parse(&q.0)) {
                out.insert("requests.storage".into(), storage);
            }
        }
        ("", "pods", _) => {
            out.insert("pods".into(), Amount::count(1));
        }
        ("", "services", _) => {
            out.insert("services".into(), Amount::count(1));
        }
        (
            "",
            plural @ ("configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas"),
            _,
        ) => {
            out.insert(plural.to_string(), Amount::count(1));
        }
        _ => {}
    }
    out
}

/// The pod's QoS class is `BestEffort`: no container (init or regular) asks for or limits
/// anything (the rest of `qos_class`'s rule tells Guaranteed from Burstable, which no scope
/// asks).
fn best_effort(spec: &PodSpec) -> bool {
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .all(|c| {
            let r = c.resources.as_ref();
            r.and_then(|r| r.requests.as_ref())
                .is_none_or(BTreeMap::is_empty)
                && r.and_then(|r| r.limits.as_ref())
                    .is_none_or(BTreeMap::is_empty)
        })
}

/// A pod affinity term naming other namespaces (a list or a selector).
fn cross_namespace(t: &PodAffinityTerm) -> bool {
    t.namespaces.as_ref().is_some_and(|n| !n.is_empty()) || t.namespace_selector.is_some()
}

/// Whether a pod falls under one scope (`Exists`), or under a scope selector's expression.
fn pod_in_scope(spec: &PodSpec, scope: &str, operator: &str, values: &[String]) -> bool {
    let holds = match scope {
        "Terminating" => spec.active_deadline_seconds.is_some_and(|s| s >= 0),
        "NotTerminating" => spec.active_deadline_seconds.is_none_or(|s| s < 0),
        "BestEffort" => best_effort(spec),
        "NotBestEffort" => !best_effort(spec),
        "PriorityClass" => {
            let class = spec.priority_class_name.as_deref().unwrap_or("");
            let listed = values.iter().any(|v| v == class);
            return match operator {
                "In" => listed,
                "NotIn" => !listed,
                "DoesNotExist" => class.is_empty(),
                _ => !class.is_empty(),
            };
        }
        // Cross-namespace affinity terms: namespaces or a namespace selector named.
        "CrossNamespacePodAffinity" => spec.affinity.as_ref().is_some_and(|a| {
            let affinity = a.pod_affinity.as_ref().map(|p| {
                (
                    &p.required_during_scheduling_ignored_during_execution,
                    &p.preferred_during_scheduling_ignored_during_execution,
                )
            });
            let anti = a.pod_anti_affinity.as_ref().map(|p| {
                (
                    &p.required_during_scheduling_ignored_during_execution,
                    &p.preferred_during_scheduling_ignored_during_execution,
                )
            });
            affinity
                .into_iter()
                .chain(anti)
                .any(|(required, preferred)| {
                    required.iter().flatten().any(cross_namespace)
                        || preferred
                            .iter()
                            .flatten()
                            .any(|w| cross_namespace(&w.pod_affinity_term))
                })
        }),
        _ => false,
    };
    match operator {
        "DoesNotExist" | "NotIn" => !holds,
        _ => holds,
    }
}

/// Whether a quota's scopes and scope selector all take the object: only pods have scopes, so a
/// scoped quota takes nothing else.
pub fn scopes_match(quota: &ResourceQuota, rt: &ResourceType, obj: &Charged) -> bool {
    let spec = quota.spec.as_ref();
    let scopes: &[String] = spec.and_then(|s| s.scopes.as_deref()).unwrap_or_default();
    let expressions = spec
        .and_then(|s| s.scope_selector.as_ref())
        .and_then(|s| s.match_expressions.as_deref())
        .unwrap_or_default();
    if scopes.is_empty() && expressions.is_empty() {
        return true;
    }
    if !(rt.group.is_empty() && rt.resource == "pods") {
        return false;
    }
    let default_spec = PodSpec::default();
    let spec = match obj {
        Charged::Pod(pod) => pod.spec.as_ref().unwrap_or(&default_spec),
        _ => &default_spec,
    };
    scopes
        .iter()
        .all(|scope| pod_in_scope(spec, scope, "Exists", &[]))
        && expressions.iter().all(|e| {
            pod_in_scope(
                spec,
                &e.scope_name,
                &e.operator,
                e.values.as_deref().unwrap_or_default(),
            )
        })
}

/// The same resources in the same amounts, however written.
fn same_amounts(a: &Amounts, b: &Amounts) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| w.nanos == v.nanos))
}

/// A quota's `spec.hard`.
pub fn hard(quota: &ResourceQuota) -> Amounts {
    amounts_of_list(quota.spec.as_ref().and_then(|s| s.hard.as_ref()))
}

/// A namespace's usage of what a quota names, counted from objects `list` reads (one
/// resource's objects in the quota's namespace): every hard resource, zero when nothing
/// charges it.
pub fn used(
    quota: &ResourceQuota,
    catalog: &Catalog,
    list: &mut dyn FnMut(&ResourceType) -> Result<Vec<Value>>,
) -> Result<Amounts> {
    let hard = hard(quota);
    let mut out: Amounts = hard.keys().map(|k| (k.clone(), Amount::ZERO)).collect();
    let served = catalog.all_resources();
    let mut types: Vec<&'static ResourceType> = Vec::new();
    for name in hard.keys() {
        for rt in tracked_by(name, &served) {
            if !types
                .iter()
                .any(|t| t.key_prefix(None) == rt.key_prefix(None))
            {
                types.push(rt);
            }
        }
    }
    for rt in types {
        for obj in list(rt)? {
            let obj = Charged::of(rt, &obj);
            if !scopes_match(quota, rt, &obj) {
                continue;
            }
            let charged: Amounts = charged_usage(rt, &obj)
                .into_iter()
                .filter(|(k, _)| hard.contains_key(k))
                .collect();
            add_into(&mut out, &charged);
        }
    }
    Ok(out)
}

fn quantities(list: &Amounts) -> BTreeMap<String, Quantity> {
    list.iter()
        .map(|(k, v)| (k.clone(), Quantity(v.to_string())))
        .collect()
}

/// The status the quota controller writes: `hard` as the spec says, `used` as counted.
pub fn status(quota: &ResourceQuota, used: &Amounts) -> ResourceQuotaStatus {
    ResourceQuotaStatus {
        hard: Some(quantities(&hard(quota))),
        used: Some(quantities(used)),
    }
}

/// A stored quota with its status replaced (the rest of the object as stored).
fn with_status(stored: &Value, status: &ResourceQuotaStatus) -> Result<Value> {
    let mut quota = DynamicObject::from_value(stored.clone())?;
    *quota.field_mut("status") = typed::to_json(status)?;
    Ok(quota.into_value())
}

/// Count one quota's usage (the quota at store key `key`) and write its status, in one
/// transaction, as the quota controller does: admission charges the quota in the transactions
/// that write objects, so a count read outside one could overwrite a charge made after it.
pub fn recount(objects: &crate::Objects, key: &str, namespace: &str) -> Result<()> {
    let kind = objects.store_kind();
    let catalog = objects.catalog()?;
    localfargate_store::transaction(&*objects.store, |tx| {
        let Some(current) = tx.get(kind, key)? else {
            return Ok(());
        };
        let Some(quota) = typed::decode_or_log::<ResourceQuota>(&current.value) else {
            return Ok(());
        };
        let used = used(&quota, &catalog, &mut |rt| {
            Ok(tx
                .list(kind, &rt.key_prefix(Some(namespace)))?
                .iter()
                .map(|o| o.value.clone())
                .collect())
        })?;
        let status = typed::to_json(&status(&quota, &used))?;
        let mut new = DynamicObject::from_value(current.value.clone())?;
        if new.status() == &status {
            return Ok(());
        }
        *new.field_mut("status") = status;
        tx.update(kind, key, &new.into_value(), Some(current.revision))?;
        Ok(())
    })
}

/// The names of the containers (regular, then init) that do not say `required` resources,
/// by resource (upstream's pod evaluator `Constraints`).
fn missing_compute(pod: &Charged, required: &[&str]) -> Vec<(String, Vec<String>)> {
    let mut missing: BTreeMap<String, Vec<String>> = Default::default();
    let spec = match pod {
        Charged::Pod(pod) => pod.spec.as_ref(),
        _ => None,
    };
    let containers = spec.into_iter().flat_map(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
    });
    for c in containers {
        let said = compute_usage(
            &container_amounts(c, Field::Requests),
            &container_amounts(c, Field::Limits),
        );
        for r in required.iter().filter(|r| !said.contains_key(**r)) {
            let names = missing.entry(r.to_string()).or_default();
            names.push(c.name.clone());
        }
    }
    missing
        .into_iter()
        .map(|(r, mut names)| {
            names.sort();
            names.dedup();
            (r, names)
        })
        .collect()
}

/// Refuse a new object a quota of its namespace does not leave room for (or, for a pod, one
/// whose containers do not say the compute resources a quota limits): read in the create's
/// transaction, counting usage from the store.
pub fn admit_create(
    tx: &mut dyn Tx,
    store_kind: &str,
    catalog: &Catalog,
    rt: &ResourceType,
    namespace: &str,
    obj: &Value,
) -> Result<()> {
    if !rt.namespaced {
        return Ok(());
    }
    charge(tx, store_kind, catalog, rt, namespace, obj, None, true)
}

/// Refuse an update that would take a quota past its limit: a Service becoming a load balancer
/// or gaining node ports, a claim asking for more storage (the kinds whose evaluators upstream
/// charges updates for); only what grows is charged.
pub fn admit_update(
    tx: &mut dyn Tx,
    store_kind: &str,
    catalog: &Catalog,
    rt: &ResourceType,
    namespace: &str,
    old: &Value,
    new: &Value,
) -> Result<()> {
    if !rt.group.is_empty() || !matches!(rt.resource, "services" | "persistentvolumeclaims") {
        return Ok(());
    }
    let before = usage(rt, old);
    let new_charged = Charged::of(rt, new);
    let grown: Amounts = charged_usage(rt, &new_charged)
        .into_iter()
        .filter_map(|(k, v)| {
            let had = before.get(&k).map_or(0, |a| a.nanos);
            (v.nanos > had).then(|| {
                let nanos = v.nanos - had;
                (k, Amount { nanos, ..v })
            })
        })
        .collect();
    if grown.is_empty() {
        return Ok(());
    }
    charge(
        tx,
        store_kind,
        catalog,
        rt,
        namespace,
        new,
        Some(grown),
        false,
    )
}

/// Check `delta`, what `obj` adds to its namespace's usage (`None`: all it charges), against
/// each quota that takes it; `constraints`: also the pod evaluator's rule that containers say
/// what a quota limits. The object is decoded only when its namespace has a quota (a create in
/// a namespace without one costs a list of nothing).
#[allow(clippy::too_many_arguments)]
fn charge(
    tx: &mut dyn Tx,
    store_kind: &str,
    catalog: &Catalog,
    rt: &ResourceType,
    namespace: &str,
    obj: &Value,
    delta: Option<Amounts>,
    constraints: bool,
) -> Result<()> {
    let quotas_rt = crate::objects::resource("", "resourcequotas");
    let quotas = tx
        .list(store_kind, &quotas_rt.key_prefix(Some(namespace)))
        .map_err(KubeError::from_store)?;
    if quotas.is_empty() {
        return Ok(());
    }
    let charged = Charged::of(rt, obj);
    let delta = delta.unwrap_or_else(|| charged_usage(rt, &charged));
    let forbidden = |why: String| {
        KubeError::Forbidden(format!(
            "{} \"{}\" is forbidden: {why}",
            rt.qualified(),
            name_of(obj)
        ))
    };
    let mut writes: Vec<(&str, Value, localfargate_store::Revision)> = Vec::new();
    for stored in &quotas {
        let Some(quota) = typed::decode_or_log::<ResourceQuota>(&stored.value) else {
            continue;
        };
        let quota = &quota;
        let hard = hard(quota);
        let matched: Vec<&str> = hard
            .keys()
            .map(String::as_str)
            .filter(|k| tracks(rt, k))
            .collect();
        if matched.is_empty() || !scopes_match(quota, rt, &charged) {
            continue;
        }
        let quota_name = name_of(&stored.value);
        if constraints && rt.group.is_empty() && rt.resource == "pods" {
            let required: Vec<&str> = MUST_SPECIFY
                .iter()
                .copied()
                .filter(|r| matched.contains(r))
                .collect();
            let missing = missing_compute(&charged, &required);
            if !missing.is_empty() {
                let said: Vec<String> = missing
                    .iter()
                    .map(|(r, names)| format!("must specify {r} for: {}", names.join(",")))
                    .collect();
                return Err(forbidden(format!(
                    "failed quota: {quota_name}: {}",
                    said.join("; ")
                )));
            }
        }
        let requested: Amounts = delta
            .iter()
            .filter(|(k, _)| matched.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if requested.is_empty() {
            continue;
        }
        // The usage the quota records (kept by this charging and the controller), as
        // upstream's admission reads it; counted from the store when the quota has not
        // recorded it yet (just created, or a resource just added to its hard).
        let recorded_status = quota.status.clone().unwrap_or_default();
        let recorded = amounts_of_list(recorded_status.used.as_ref());
        let known = requested.keys().all(|k| recorded.contains_key(k))
            && same_amounts(&amounts_of_list(recorded_status.hard.as_ref()), &hard);
        let used = if known {
            recorded
        } else {
            used(quota, catalog, &mut |t| {
                Ok(tx
                    .list(store_kind, &t.key_prefix(Some(namespace)))
                    .map_err(KubeError::from_store)?
                    .iter()
                    .map(|o| o.value.clone())
                    .collect())
            })?
        };
        let exceeded: Vec<&String> = requested
            .iter()
            .filter(|(k, v)| {
                let have = used.get(*k).copied().unwrap_or(Amount::ZERO);
                hard.get(*k)
                    .is_some_and(|limit| have.nanos.saturating_add(v.nanos) > limit.nanos)
            })
            .map(|(k, _)| k)
            .collect();
        if exceeded.is_empty() {
            let mut after = used.clone();
            add_into(&mut after, &requested);
            let new_status = if known {
                let mut status = recorded_status;
                let used = status.used.get_or_insert_default();
                for (k, v) in &requested {
                    let total = after.get(k).copied().unwrap_or(*v);
                    used.insert(k.clone(), Quantity(total.to_string()));
                }
                status
            } else {
                status(quota, &after)
            };
            writes.push((
                &stored.key,
                with_status(&stored.value, &new_status)?,
                stored.revision,
            ));
            continue;
        }
        let mask = |list: &Amounts| -> Amounts {
            exceeded
                .iter()
                .map(|k| ((*k).clone(), list.get(*k).copied().unwrap_or(Amount::ZERO)))
                .collect()
        };
        return Err(forbidden(format!(
            "exceeded quota: {quota_name}, requested: {}, used: {}, limited: {}",
            pretty(&mask(&requested)),
            pretty(&mask(&used)),
            pretty(&mask(&hard))
        )));
    }
    // Every quota allowed it: charge them, in the transaction that writes the object, so the
    // next admission sees this one.
    for (key, new, revision) in writes {
        tx.update(store_kind, key, &new, Some(revision))
            .map_err(KubeError::from_store)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
