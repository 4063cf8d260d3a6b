//! The LimitRanger's validation: a pod's containers (type `Container`) and the pod as a whole
//! (type `Pod`) within their namespace's LimitRanges' `min`, `max` and `maxLimitRequestRatio`,
//! and a claim's storage request (type `PersistentVolumeClaim`) within `min` and `max`; refused
//! with upstream's messages, every violation of every range aggregated as upstream's
//! `utilerrors.NewAggregate` prints them.

use serde_json::{Map, Value};

use crate::error::{KubeError, Result};
use crate::meta::DynamicObject;
use crate::objects::{Objects, resource};
use k8s_openapi::api::core::v1::{LimitRange, LimitRangeItem};

use crate::quota::amount::{Amount, Amounts, amounts_of, amounts_of_list};
use crate::quota::pod_resources;
use crate::resources::ResourceType;
use crate::typed;

/// A quantity in thousandths, rounded up, as upstream compares them (`MilliValue`).
fn millis(a: &Amount) -> u128 {
    a.nanos.div_ceil(1_000_000)
}

fn min_constraint(
    kind: &str,
    name: &str,
    enforced: &Amount,
    requests: &Amounts,
    limits: &Amounts,
) -> Option<String> {
    let Some(req) = requests.get(name) else {
        return Some(format!(
            "minimum {name} usage per {kind} is {enforced}.  No request is specified"
        ));
    };
    if millis(req) < millis(enforced) {
        return Some(format!(
            "minimum {name} usage per {kind} is {enforced}, but request is {req}"
        ));
    }
    match limits.get(name) {
        Some(lim) if millis(lim) < millis(enforced) => Some(format!(
            "minimum {name} usage per {kind} is {enforced}, but limit is {lim}"
        )),
        _ => None,
    }
}

fn max_constraint(
    kind: &str,
    name: &str,
    enforced: &Amount,
    requests: &Amounts,
    limits: &Amounts,
) -> Option<String> {
    let Some(lim) = limits.get(name) else {
        return Some(format!(
            "maximum {name} usage per {kind} is {enforced}.  No limit is specified"
        ));
    };
    if millis(lim) > millis(enforced) {
        return Some(format!(
            "maximum {name} usage per {kind} is {enforced}, but limit is {lim}"
        ));
    }
    match requests.get(name) {
        Some(req) if millis(req) > millis(enforced) => Some(format!(
            "maximum {name} usage per {kind} is {enforced}, but request is {req}"
        )),
        _ => None,
    }
}

/// `max` for a kind whose limits are not user input (claims): the request is checked.
fn max_request_constraint(
    kind: &str,
    name: &str,
    enforced: &Amount,
    requests: &Amounts,
) -> Option<String> {
    let Some(req) = requests.get(name) else {
        return Some(format!(
            "maximum {name} usage per {kind} is {enforced}.  No request is specified"
        ));
    };
    (millis(req) > millis(enforced))
        .then(|| format!("maximum {name} usage per {kind} is {enforced}, but request is {req}"))
}

fn ratio_constraint(
    kind: &str,
    name: &str,
    enforced: &Amount,
    requests: &Amounts,
    limits: &Amounts,
) -> Option<String> {
    let req = requests.get(name).map(millis).filter(|r| *r != 0);
    let Some(req) = req else {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {enforced}, but no request is specified or request is 0"
        ));
    };
    let lim = limits.get(name).map(millis).filter(|l| *l != 0);
    let Some(lim) = lim else {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {enforced}, but no limit is specified or limit is 0"
        ));
    };
    let observed = lim as f64 / req as f64;
    (observed * 1000.0 > millis(enforced) as f64).then(|| {
        format!(
            "{name} max limit to request ratio per {kind} is {enforced}, but provided ratio is {observed:.6}"
        )
    })
}

/// One limit item's `min`, `max` and `maxLimitRequestRatio` over these requests and limits.
fn check(
    item: &LimitRangeItem,
    kind: &str,
    requests: &Amounts,
    limits: &Amounts,
    out: &mut Vec<String>,
) {
    for (name, q) in amounts_of_list(item.min.as_ref()) {
        out.extend(min_constraint(kind, &name, &q, requests, limits));
    }
    for (name, q) in amounts_of_list(item.max.as_ref()) {
        out.extend(max_constraint(kind, &name, &q, requests, limits));
    }
    for (name, q) in amounts_of_list(item.max_limit_request_ratio.as_ref()) {
        out.extend(ratio_constraint(kind, &name, &q, requests, limits));
    }
}

/// The limit items of a namespace's LimitRanges, in order (a LimitRange that does not decode
/// is logged and skipped). Listed on every pod create: a namespace without one decodes nothing.
pub(super) fn limit_items(objects: &Objects, namespace: &str) -> Result<Vec<LimitRangeItem>> {
    let (ranges, _) = objects.list(resource("", "limitranges"), Some(namespace))?;
    Ok(ranges
        .iter()
        .filter_map(|r| typed::decode_or_log::<LimitRange>(&r.value))
        .flat_map(|r| r.spec.map(|s| s.limits).unwrap_or_default())
        .collect())
}

/// Upstream's aggregate: one message alone, several (deduplicated) in brackets.
fn refuse(rt: &ResourceType, obj: &DynamicObject, messages: Vec<String>) -> Result<()> {
    let mut unique: Vec<String> = Vec::new();
    for m in messages {
        if !unique.contains(&m) {
            unique.push(m);
        }
    }
    let said = match unique.len() {
        0 => return Ok(()),
        1 => unique.remove(0),
        _ => format!("[{}]", unique.join(", ")),
    };
    Err(KubeError::Forbidden(format!(
        "{} \"{}\" is forbidden: {said}",
        rt.qualified(),
        obj.metadata.name()
    )))
}

/// The sum of the containers' requests or limits, or the largest init container's when larger
/// (upstream LimitRanger's `podRequests`/`podLimits`: no overhead, no sidecar rules).
fn pod_totals(spec: &Value, field: &str) -> Amounts {
    let plain = {
        let mut s = Map::new();
        for key in ["containers", "initContainers"] {
            if let Some(list) = spec[key].as_array() {
                let list: Vec<Value> = list
                    .iter()
                    .map(|c| {
                        let mut c = c.clone();
                        if let Some(o) = c.as_object_mut() {
                            o.remove("restartPolicy");
                        }
                        c
                    })
                    .collect();
                s.insert(key.to_string(), Value::Array(list));
            }
        }
        Value::Object(s)
    };
    pod_resources(&plain, field)
}

/// Refuse a new pod outside its namespace's `Container` and `Pod` limits.
pub fn validate_pod(objects: &Objects, pod: &DynamicObject) -> Result<()> {
    let items = limit_items(objects, pod.metadata.namespace())?;
    let mut messages = Vec::new();
    for item in &items {
        match item.type_.as_str() {
            "Container" => {
                for list in ["containers", "initContainers"] {
                    for c in pod.spec()[list].as_array().into_iter().flatten() {
                        let requests = amounts_of(&c["resources"]["requests"]);
                        let limits = amounts_of(&c["resources"]["limits"]);
                        check(item, "Container", &requests, &limits, &mut messages);
                    }
                }
            }
            "Pod" => {
                let requests = pod_totals(pod.spec(), "requests");
                let limits = pod_totals(pod.spec(), "limits");
                check(item, "Pod", &requests, &limits, &mut messages);
            }
            _ => {}
        }
    }
    refuse(resource("", "pods"), pod, messages)
}

/// Refuse a claim whose storage request is outside its namespace's `PersistentVolumeClaim`
/// limits.
pub fn validate_claim(objects: &Objects, claim: &DynamicObject) -> Result<()> {
    let items = limit_items(objects, claim.metadata.namespace())?;
    let requests = amounts_of(&claim.spec()["resources"]["requests"]);
    let mut messages = Vec::new();
    for item in items.iter().filter(|i| i.type_ == "PersistentVolumeClaim") {
        let none = Amounts::new();
        for (name, q) in amounts_of_list(item.min.as_ref()) {
            messages.extend(min_constraint(
                "PersistentVolumeClaim",
                &name,
                &q,
                &requests,
                &none,
            ));
        }
        for (name, q) in amounts_of_list(item.max.as_ref()) {
            messages.extend(max_request_constraint(
                "PersistentVolumeClaim",
                &name,
                &q,
                &requests,
            ));
        }
    }
    refuse(resource("", "persistentvolumeclaims"), claim, messages)
}
