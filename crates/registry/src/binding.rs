//! `pods/binding`: binding a pod to a node, as both schedulers and the API do, and the pod
//! conditions that say so.

use localfargate_store::{StoreError, transaction};
use serde_json::{Value, json};

use crate::objects::{KubeError, Objects, Result, now_rfc3339, resource};

/// Set (or replace) a condition in `status.conditions`, keeping its transition time when the
/// status did not change.
pub fn set_condition(
    pod: &mut Value,
    condition: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<&str>,
) {
    let status_text = if status { "True" } else { "False" };
    if !pod["status"].is_object() {
        pod["status"] = json!({});
    }
    if !pod["status"]["conditions"].is_array() {
        pod["status"]["conditions"] = json!([]);
    }
    let now = now_rfc3339();
    let Some(list) = pod["status"]["conditions"].as_array_mut() else {
        return;
    };
    let mut c = json!({
        "type": condition,
        "status": status_text,
        "lastProbeTime": null,
        "lastTransitionTime": now,
    });
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    match list.iter_mut().find(|x| x["type"] == condition) {
        Some(existing) => {
            if existing["status"] == status_text {
                c["lastTransitionTime"] = existing["lastTransitionTime"].clone();
            }
            *existing = c;
        }
        None => list.push(c),
    }
}

pub fn condition_is(pod: &Value, condition: &str, status: &str) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|l| {
        l.iter()
            .any(|c| c["type"] == condition && c["status"] == status)
    })
}

/// Bind a pod to a node, as `pods/binding` does: set `spec.nodeName` and `PodScheduled=True`.
/// A pod already bound is a conflict.
pub fn bind(objects: &Objects, namespace: &str, name: &str, node: &str) -> Result<()> {
    let pods = resource("", "pods");
    let key = pods.key(namespace, name);
    let kind = objects.store_kind().to_string();
    transaction(&*objects.store, |tx| {
        let Some(current) = tx.get(&kind, &key)? else {
            return Err(KubeError::not_found(pods, name));
        };
        if let Some(existing) = current.value["spec"]["nodeName"]
            .as_str()
            .filter(|n| !n.is_empty())
        {
            return Err(KubeError::Conflict {
                message: format!("pod {name} is already assigned to node \"{existing}\""),
                kind: "pods".into(),
                name: name.to_string(),
            });
        }
        let mut pod = current.value.clone();
        pod["spec"]["nodeName"] = json!(node);
        set_condition(&mut pod, "PodScheduled", true, None, None);
        tx.update(&kind, &key, &pod, Some(current.revision))
            .map_err(|e| match e {
                StoreError::NotFound { .. } => KubeError::not_found(pods, name),
                StoreError::Conflict { .. } => KubeError::conflict(pods, name),
                other => other.into(),
            })
    })?;
    Ok(())
}
