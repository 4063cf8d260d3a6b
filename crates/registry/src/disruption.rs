//! PodDisruptionBudgets: the status kube-controller-manager's disruption controller keeps
//! ([`status`]) and the check the `pods/eviction` subresource makes against it ([`evict`]), with
//! upstream's rules and messages (`pkg/controller/disruption`, `pkg/registry/core/pod/storage/
//! eviction.go`).

use localfargate_core::selectors::LabelSelector;
use serde_json::{Value, json};

use crate::binding::condition_is;
use crate::objects::{
    DeleteOptions, Deleted, KubeError, Objects, Result, is_deleting, name_of, namespace_of,
    now_rfc3339, resource,
};

/// What kind of value `intstr` holds, scaled against `total` (percentages rounded up, as the
/// disruption controller rounds them).
fn scaled(v: &Value, total: i64) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) => (p * total + 99) / 100,
            None => s.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

/// The pods a budget covers: its namespace's pods its selector matches (an empty selector
/// matches every one, a missing one none, as in policy/v1).
pub fn covers(pdb: &Value, pod: &Value) -> bool {
    if namespace_of(pdb) != namespace_of(pod) || !pdb["spec"]["selector"].is_object() {
        return false;
    }
    LabelSelector::from_json(&pdb["spec"]["selector"])
        .is_ok_and(|s| s.matches(pod["metadata"]["labels"].as_object()))
}

/// A pod that counts as healthy: ready and not being deleted.
fn healthy(pod: &Value) -> bool {
    !is_deleting(pod) && condition_is(pod, "Ready", "True")
}

/// The budget's status from the pods it covers. `expected_scale` is the sum of the replicas of
/// the controllers of those pods (what a percentage or `maxUnavailable` is taken of).
pub fn status(pdb: &Value, pods: &[&Value], expected_scale: i64) -> Value {
    let spec = &pdb["spec"];
    let (expected, desired) = if !spec["maxUnavailable"].is_null() {
        let expected = expected_scale;
        let unavailable = scaled(&spec["maxUnavailable"], expected);
        (expected, (expected - unavailable).max(0))
    } else if spec["minAvailable"].is_string() {
        let expected = expected_scale;
        (expected, scaled(&spec["minAvailable"], expected))
    } else {
        (
            pods.len() as i64,
            spec["minAvailable"].as_i64().unwrap_or(0),
        )
    };
    // Pods evicted but not yet gone still count as disrupted, not healthy.
    let disrupted = &pdb["status"]["disruptedPods"];
    let current = pods
        .iter()
        .filter(|p| healthy(p) && disrupted.get(name_of(p)).is_none())
        .count() as i64;
    let mut allowed = current - desired;
    if expected <= 0 || allowed <= 0 {
        allowed = 0;
    }
    let still_disrupted: serde_json::Map<String, Value> = disrupted
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(name, _)| {
                    pods.iter()
                        .any(|p| name_of(p) == name.as_str() && !is_deleting(p))
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let mut out = json!({
        "observedGeneration": pdb["metadata"]["generation"],
        "disruptionsAllowed": allowed,
        "currentHealthy": current,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "conditions": [condition(pdb, allowed > 0)],
    });
    if !still_disrupted.is_empty() {
        out["disruptedPods"] = Value::Object(still_disrupted);
    }
    out
}

/// The `DisruptionAllowed` condition, keeping its transition time while it holds.
fn condition(pdb: &Value, allowed: bool) -> Value {
    let (status, reason) = if allowed {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let previous = pdb["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "DisruptionAllowed"));
    let time = match previous {
        Some(p) if p["status"] == status => p["lastTransitionTime"].clone(),
        _ => json!(now_rfc3339()),
    };
    json!({
        "type": "DisruptionAllowed",
        "status": status,
        "reason": reason,
        "message": "",
        "observedGeneration": pdb["metadata"]["generation"],
        "lastTransitionTime": time,
    })
}

fn refused(message: String, retry_after_seconds: i64) -> KubeError {
    KubeError::TooManyRequests {
        message: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
        causes: vec![json!({"reason": "DisruptionBudget", "message": message})],
        retry_after_seconds,
    }
}

/// `POST pods/NAME/eviction`: delete the pod if its disruption budget allows, taking one
/// disruption from the budget; refuse with 429 otherwise.
pub fn evict(
    objects: &Objects,
    namespace: &str,
    name: &str,
    options: &DeleteOptions,
    dry_run: bool,
) -> Result<Deleted> {
    let pods = resource("", "pods");
    let pod = objects.get(pods, namespace, name)?;
    // Pods that are not running, or already going, are not protected by a budget.
    let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
    let protected = !matches!(phase, "Succeeded" | "Failed" | "Pending") && !is_deleting(&pod);
    if protected {
        let budgets = resource("policy", "poddisruptionbudgets");
        let (all, _) = objects.list(budgets, Some(namespace))?;
        let matching: Vec<&Value> = all
            .iter()
            .map(|o| &o.value)
            .filter(|pdb| covers(pdb, &pod))
            .collect();
        if matching.len() > 1 {
            return Err(KubeError::Internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into(),
            ));
        }
        if let Some(pdb) = matching.first() {
            take_disruption(objects, pdb, &pod, dry_run)?;
        }
    }
    if dry_run {
        return Ok(Deleted::Pending(pod));
    }
    objects.delete(pods, namespace, name, options)
}

/// One disruption from the budget, or upstream's refusal.
fn take_disruption(objects: &Objects, pdb: &Value, pod: &Value, dry_run: bool) -> Result<()> {
    let budgets = resource("policy", "poddisruptionbudgets");
    let pdb_name = name_of(pdb).to_string();
    let status = &pdb["status"];
    // A pod that is not healthy anyway may go while the budget is met (`IfHealthyBudget`, the
    // default `unhealthyPodEvictionPolicy`; `AlwaysAllow` lets it go regardless).
    if !healthy(pod) {
        let always = pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow";
        let met = status["currentHealthy"].as_i64().unwrap_or(0)
            >= status["desiredHealthy"].as_i64().unwrap_or(0);
        if always || met {
            return Ok(());
        }
    }
    if status["observedGeneration"].as_i64().unwrap_or(0)
        < pdb["metadata"]["generation"].as_i64().unwrap_or(0)
    {
        return Err(refused(
            format!("The disruption budget {pdb_name} is still being processed by the server."),
            10,
        ));
    }
    let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
    if allowed < 0 {
        return Err(KubeError::Forbidden(format!(
            "poddisruptionbudgets.policy \"{pdb_name}\" is forbidden: pdb disruptions allowed is negative"
        )));
    }
    if allowed == 0 {
        return Err(refused(
            format!(
                "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                status["desiredHealthy"].as_i64().unwrap_or(0),
                status["currentHealthy"].as_i64().unwrap_or(0)
            ),
            0,
        ));
    }
    if dry_run {
        return Ok(());
    }
    let revision = pdb["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|r| r.parse().ok());
    let pod_name = name_of(pod).to_string();
    objects.update_with(
        budgets,
        namespace_of(pdb),
        &pdb_name,
        true,
        revision,
        &mut |current| {
            let mut new = current.clone();
            let left = allowed - 1;
            new["status"]["disruptionsAllowed"] = json!(left);
            if left == 0 {
                new["status"]["conditions"] = json!([condition(current, false)]);
            }
            if !new["status"]["disruptedPods"].is_object() {
                new["status"]["disruptedPods"] = json!({});
            }
            new["status"]["disruptedPods"][&pod_name] = json!(now_rfc3339());
            Ok(new)
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ready: bool) -> Value {
        json!({"metadata": {"name": name, "namespace": "d", "labels": {"app": "web"}},
               "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    #[test]
    fn min_available_counts_healthy_pods() {
        let pdb = json!({"metadata": {"name": "b", "namespace": "d", "generation": 1},
                         "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}});
        let pods = [
            pod("a", true),
            pod("b", true),
            pod("c", true),
            pod("x", false),
        ];
        let refs: Vec<&Value> = pods.iter().collect();
        assert!(refs.iter().all(|p| covers(&pdb, p)));
        let s = status(&pdb, &refs, 0);
        assert_eq!(s["currentHealthy"], 3);
        assert_eq!(s["desiredHealthy"], 2);
        assert_eq!(s["expectedPods"], 4);
        assert_eq!(s["disruptionsAllowed"], 1);
        assert_eq!(s["conditions"][0]["reason"], "SufficientPods");
    }

    #[test]
    fn max_unavailable_is_taken_of_the_controllers_scale() {
        let pdb = json!({"metadata": {"name": "b", "namespace": "d", "generation": 1},
                         "spec": {"maxUnavailable": "25%", "selector": {"matchLabels": {"app": "web"}}}});
        let pods = [pod("a", true), pod("b", true)];
        let refs: Vec<&Value> = pods.iter().collect();
        let s = status(&pdb, &refs, 3);
        // 25% of 3 rounds up to 1: 2 must stay healthy, 2 are.
        assert_eq!(s["desiredHealthy"], 2);
        assert_eq!(s["disruptionsAllowed"], 0);
        assert_eq!(s["conditions"][0]["status"], "False");
        assert_eq!(s["conditions"][0]["reason"], "InsufficientPods");
    }

    #[test]
    fn a_missing_selector_covers_nothing_an_empty_one_everything() {
        let none = json!({"metadata": {"namespace": "d"}, "spec": {}});
        let all = json!({"metadata": {"namespace": "d"}, "spec": {"selector": {}}});
        assert!(!covers(&none, &pod("a", true)));
        assert!(covers(&all, &pod("a", true)));
    }
}
