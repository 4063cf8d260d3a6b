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

pub mod amount;

use localfargate_store::Tx;
use serde_json::{Map, Value, json};

use crate::custom::Catalog;
use crate::error::{KubeError, Result};
use crate::objects::{is_finished, name_of};
use crate::resources::ResourceType;
use amount::{Amount, Amounts, add_into, amounts_of, max_into, pretty};

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
pub fn pod_resources(spec: &Value, field: &str) -> Amounts {
    let mut sum = Amounts::new();
    for c in spec["containers"].as_array().into_iter().flatten() {
        add_into(&mut sum, &amounts_of(&c["resources"][field]));
    }
    let (mut sidecars, mut init_max) = (Amounts::new(), Amounts::new());
    for c in spec["initContainers"].as_array().into_iter().flatten() {
        let own = amounts_of(&c["resources"][field]);
        if c["restartPolicy"] == "Always" {
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
    add_into(&mut sum, &amounts_of(&spec["overhead"]));
    sum
}

/// What one object charges, by quota resource name.
pub fn usage(rt: &ResourceType, obj: &Value) -> Amounts {
    let mut out = Amounts::from([(count_name(rt), Amount::count(1))]);
    match (rt.group, rt.resource) {
        ("", "pods") => {
            // `count/pods` counts every pod in storage; `pods` and compute only live ones.
            if is_finished(obj) {
                return out;
            }
            out.insert("pods".into(), Amount::count(1));
            let spec = &obj["spec"];
            let usage = compute_usage(
                &pod_resources(spec, "requests"),
                &pod_resources(spec, "limits"),
            );
            out.extend(usage);
        }
        ("", "services") => {
            out.insert("services".into(), Amount::count(1));
            let ports = obj["spec"]["ports"].as_array().map_or(0, Vec::len) as u64;
            match obj["spec"]["type"].as_str() {
                Some("LoadBalancer") => {
                    out.insert("services.loadbalancers".into(), Amount::count(1));
                    let node_ports = obj["spec"]["allocateLoadBalancerNodePorts"] != false;
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
        ("", "persistentvolumeclaims") => {
            out.insert("persistentvolumeclaims".into(), Amount::count(1));
            if let Some(storage) = obj["spec"]["resources"]["requests"]["storage"]
                .as_str()
                .and_then(Amount::parse)
            {
                out.insert("requests.storage".into(), storage);
            }
        }
        ("", plural @ ("configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas")) => {
            out.insert(plural.to_string(), Amount::count(1));
        }
        _ => {}
    }
    out
}

/// Whether a pod falls under one scope (`Exists`), or under a scope selector's expression.
fn pod_in_scope(pod: &Value, scope: &str, operator: &str, values: &[&str]) -> bool {
    let spec = &pod["spec"];
    let holds = match scope {
        "Terminating" => spec["activeDeadlineSeconds"]
            .as_i64()
            .is_some_and(|s| s >= 0),
        "NotTerminating" => spec["activeDeadlineSeconds"].as_i64().is_none_or(|s| s < 0),
        "BestEffort" => crate::defaults::qos_class(spec) == "BestEffort",
        "NotBestEffort" => crate::defaults::qos_class(spec) != "BestEffort",
        "PriorityClass" => {
            let class = spec["priorityClassName"].as_str().unwrap_or("");
            return match operator {
                "In" => values.contains(&class),
                "NotIn" => !values.contains(&class),
                "DoesNotExist" => class.is_empty(),
                _ => !class.is_empty(),
            };
        }
        // Cross-namespace affinity terms: namespaces or a namespace selector named.
        "CrossNamespacePodAffinity" => ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
            let terms = &spec["affinity"][kind];
            [
                "requiredDuringSchedulingIgnoredDuringExecution",
                "preferredDuringSchedulingIgnoredDuringExecution",
            ]
            .iter()
            .flat_map(|when| terms[when].as_array().into_iter().flatten())
            .any(|t| {
                let t = if t["podAffinityTerm"].is_object() {
                    &t["podAffinityTerm"]
                } else {
                    t
                };
                t["namespaces"].as_array().is_some_and(|n| !n.is_empty())
                    || t["namespaceSelector"].is_object()
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
pub fn scopes_match(quota: &Value, rt: &ResourceType, obj: &Value) -> bool {
    let spec = &quota["spec"];
    let scopes: Vec<&str> = spec["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let expressions: Vec<&Value> = spec["scopeSelector"]["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if scopes.is_empty() && expressions.is_empty() {
        return true;
    }
    if !(rt.group.is_empty() && rt.resource == "pods") {
        return false;
    }
    scopes
        .iter()
        .all(|scope| pod_in_scope(obj, scope, "Exists", &[]))
        && expressions.iter().all(|e| {
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            pod_in_scope(
                obj,
                e["scopeName"].as_str().unwrap_or(""),
                e["operator"].as_str().unwrap_or(""),
                &values,
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
pub fn hard(quota: &Value) -> Amounts {
    amounts_of(&quota["spec"]["hard"])
}

/// A namespace's usage of what a quota names, counted from objects `list` reads (one
/// resource's objects in the quota's namespace): every hard resource, zero when nothing
/// charges it.
pub fn used(
    quota: &Value,
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
            if !scopes_match(quota, rt, &obj) {
                continue;
            }
            let charged: Amounts = usage(rt, &obj)
                .into_iter()
                .filter(|(k, _)| hard.contains_key(k))
                .collect();
            add_into(&mut out, &charged);
        }
    }
    Ok(out)
}

fn to_json(list: &Amounts) -> Value {
    Value::Object(
        list.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.to_string())))
            .collect::<Map<String, Value>>(),
    )
}

/// The status the quota controller writes: `hard` as the spec says, `used` as counted.
pub fn status(quota: &Value, used: &Amounts) -> Value {
    json!({"hard": to_json(&hard(quota)), "used": to_json(used)})
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
        let used = used(&current.value, &catalog, &mut |rt| {
            Ok(tx
                .list(kind, &rt.key_prefix(Some(namespace)))?
                .iter()
                .map(|o| o.value.clone())
                .collect())
        })?;
        let status = status(&current.value, &used);
        if status == current.value["status"] {
            return Ok(());
        }
        let mut new = current.value.clone();
        new["status"] = status;
        tx.update(kind, key, &new, Some(current.revision))?;
        Ok(())
    })
}

/// The names of the containers (regular, then init) that do not say `required` resources,
/// by resource (upstream's pod evaluator `Constraints`).
fn missing_compute(pod: &Value, required: &[&str]) -> Vec<(String, Vec<String>)> {
    let mut missing: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for list in ["containers", "initContainers"] {
        for c in pod["spec"][list].as_array().into_iter().flatten() {
            let said = compute_usage(
                &amounts_of(&c["resources"]["requests"]),
                &amounts_of(&c["resources"]["limits"]),
            );
            for r in required.iter().filter(|r| !said.contains_key(**r)) {
                let names = missing.entry(r.to_string()).or_default();
                names.push(c["name"].as_str().unwrap_or("").to_string());
            }
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
    let delta = usage(rt, obj);
    charge(tx, store_kind, catalog, rt, namespace, obj, delta, true)
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
    let grown: Amounts = usage(rt, new)
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
    charge(tx, store_kind, catalog, rt, namespace, new, grown, false)
}

/// Check `delta`, what `obj` adds to its namespace's usage, against each quota that takes it;
/// `constraints`: also the pod evaluator's rule that containers say what a quota limits.
#[allow(clippy::too_many_arguments)]
fn charge(
    tx: &mut dyn Tx,
    store_kind: &str,
    catalog: &Catalog,
    rt: &ResourceType,
    namespace: &str,
    obj: &Value,
    delta: Amounts,
    constraints: bool,
) -> Result<()> {
    let quotas_rt = crate::objects::resource("", "resourcequotas");
    let quotas = tx
        .list(store_kind, &quotas_rt.key_prefix(Some(namespace)))
        .map_err(KubeError::from_store)?;
    if quotas.is_empty() {
        return Ok(());
    }
    let forbidden = |why: String| {
        KubeError::Forbidden(format!(
            "{} \"{}\" is forbidden: {why}",
            rt.qualified(),
            name_of(obj)
        ))
    };
    let mut charged: Vec<(&str, Value, localfargate_store::Revision)> = Vec::new();
    for stored in &quotas {
        let quota = &stored.value;
        let hard = hard(quota);
        let matched: Vec<&str> = hard
            .keys()
            .map(String::as_str)
            .filter(|k| tracks(rt, k))
            .collect();
        if matched.is_empty() || !scopes_match(quota, rt, obj) {
            continue;
        }
        let quota_name = name_of(quota);
        if constraints && rt.group.is_empty() && rt.resource == "pods" {
            let required: Vec<&str> = MUST_SPECIFY
                .iter()
                .copied()
                .filter(|r| matched.contains(r))
                .collect();
            let missing = missing_compute(obj, &required);
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
        let recorded = amounts_of(&quota["status"]["used"]);
        let known = requested.keys().all(|k| recorded.contains_key(k))
            && same_amounts(&amounts_of(&quota["status"]["hard"]), &hard);
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
            let mut new = quota.clone();
            new["status"] = if known {
                let mut status = quota["status"].clone();
                for (k, v) in &requested {
                    status["used"][k] = json!(after.get(k).copied().unwrap_or(*v).to_string());
                }
                status
            } else {
                status(quota, &after)
            };
            charged.push((&stored.key, new, stored.revision));
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
    for (key, new, revision) in charged {
        tx.update(store_kind, key, &new, Some(revision))
            .map_err(KubeError::from_store)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
