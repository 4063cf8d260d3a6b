//! PodDisruptionBudgets: the status kube-controller-manager's disruption controller keeps
//! ([`status`]) and the check the `pods/eviction` subresource makes against it ([`evict`]), with
//! upstream's rules and messages (`pkg/controller/disruption`, `pkg/registry/core/pod/storage/
//! eviction.go`). Budgets are read as k8s-openapi's `PodDisruptionBudget`; pods through the
//! borrowed metadata reads and their `Ready` condition.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use localfargate_core::selectors::LabelSelector;
use serde_json::{Value, json};

use crate::binding::condition_is;
use crate::meta::{DynamicObject, labels_of};
use crate::objects::{
    DeleteOptions, Deleted, KubeError, Objects, Result, is_deleting, name_of, namespace_of,
    resource,
};
use crate::typed;

/// An `IntOrString` scaled against `total` (percentages rounded up, as the disruption
/// controller rounds them).
fn scaled(v: &IntOrString, total: i64) -> i64 {
    match v {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) => (p * total + 99) / 100,
            None => s.parse().unwrap_or(0),
        },
    }
}

/// A budget that does not decode covers nothing and is left as it is (logged).
fn decoded(pdb: &Value) -> Option<PodDisruptionBudget> {
    typed::decode_or_log(pdb)
}

/// The budget's selector as the label matcher reads it (`None`: missing, covers nothing).
fn selector(pdb: &PodDisruptionBudget) -> Option<LabelSelector> {
    let selector = pdb.spec.as_ref()?.selector.as_ref()?;
    LabelSelector::from_typed(selector).ok()
}

/// Whether a budget covers a pod: a pod of its namespace its selector matches (an empty
/// selector matches every one, a missing one none, as in policy/v1).
pub fn covers(pdb: &Value, pod: &Value) -> bool {
    covered(pdb, std::iter::once(pod)).next().is_some()
}

/// The pods of `pods` a budget covers ([`covers`]), its selector read once for all of them.
pub fn covered<'a>(
    pdb: &Value,
    pods: impl Iterator<Item = &'a Value>,
) -> impl Iterator<Item = &'a Value> {
    let namespace = namespace_of(pdb).to_string();
    let selector = decoded(pdb).and_then(|pdb| selector(&pdb));
    pods.filter(move |pod| {
        namespace_of(pod) == namespace
            && selector.as_ref().is_some_and(|s| s.matches(labels_of(pod)))
    })
}

/// A pod that counts as healthy: ready and not being deleted.
fn healthy(pod: &Value) -> bool {
    !is_deleting(pod) && condition_is(pod, "Ready", "True")
}

fn clamp_i32(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX })
}

/// The budget's status from the pods it covers. `expected_scale` is the sum of the replicas of
/// the controllers of those pods (what a percentage or `maxUnavailable` is taken of). A budget
/// that does not decode keeps the status it has.
pub fn status(pdb: &Value, pods: &[&Value], expected_scale: i64) -> Value {
    let Some(budget) = decoded(pdb) else {
        return pdb.get("status").cloned().unwrap_or(Value::Null);
    };
    typed::to_json(&budget_status(&budget, pods, expected_scale)).unwrap_or(Value::Null)
}

fn budget_status(
    pdb: &PodDisruptionBudget,
    pods: &[&Value],
    expected_scale: i64,
) -> PodDisruptionBudgetStatus {
    let spec = pdb.spec.clone().unwrap_or_default();
    let (expected, desired) = match (&spec.max_unavailable, &spec.min_available) {
        (Some(max_unavailable), _) => {
            let expected = expected_scale;
            let unavailable = scaled(max_unavailable, expected);
            (expected, (expected - unavailable).max(0))
        }
        (None, Some(min @ IntOrString::String(_))) => {
            let expected = expected_scale;
            (expected, scaled(min, expected))
        }
        (None, min) => (
            pods.len() as i64,
            match min {
                Some(IntOrString::Int(n)) => i64::from(*n),
                _ => 0,
            },
        ),
    };
    // Pods evicted but not yet gone still count as disrupted, not healthy.
    let disrupted = pdb
        .status
        .as_ref()
        .and_then(|s| s.disrupted_pods.clone())
        .unwrap_or_default();
    let current = pods
        .iter()
        .filter(|p| healthy(p) && !disrupted.contains_key(name_of(p)))
        .count() as i64;
    let mut allowed = current - desired;
    if expected <= 0 || allowed <= 0 {
        allowed = 0;
    }
    let still_disrupted: std::collections::BTreeMap<String, Time> = disrupted
        .into_iter()
        .filter(|(name, _)| {
            pods.iter()
                .any(|p| name_of(p) == name.as_str() && !is_deleting(p))
        })
        .collect();
    PodDisruptionBudgetStatus {
        observed_generation: pdb.metadata.generation,
        disruptions_allowed: clamp_i32(allowed),
        current_healthy: clamp_i32(current),
        desired_healthy: clamp_i32(desired),
        expected_pods: clamp_i32(expected),
        conditions: Some(vec![condition(pdb, allowed > 0)]),
        disrupted_pods: (!still_disrupted.is_empty()).then_some(still_disrupted),
    }
}

/// The `DisruptionAllowed` condition, keeping its transition time while it holds.
fn condition(pdb: &PodDisruptionBudget, allowed: bool) -> Condition {
    let (status, reason) = if allowed {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let previous = pdb
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "DisruptionAllowed"));
    let time = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Time(jiff::Timestamp::now()),
    };
    Condition {
        type_: "DisruptionAllowed".into(),
        status: status.into(),
        reason: reason.into(),
        message: String::new(),
        observed_generation: pdb.metadata.generation,
        last_transition_time: time,
    }
}

fn refused(message: String, retry_after_seconds: i64) -> KubeError {
    KubeError::TooManyRequests {
        message: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
        causes: vec![json!({"reason": "DisruptionBudget", "message": message})],
        retry_after_seconds,
    }
}

/// Whether a pod that is not running, or already going, and so not protected by a budget.
fn unprotected(pod: &Value) -> bool {
    let phase = typed::decode_or_log::<k8s_openapi::api::core::v1::Pod>(pod)
        .and_then(|p| p.status?.phase)
        .unwrap_or_else(|| "Pending".to_string());
    matches!(phase.as_str(), "Succeeded" | "Failed" | "Pending") || is_deleting(pod)
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
    if !unprotected(&pod) {
        let budgets = resource("policy", "poddisruptionbudgets");
        let (all, _) = objects.list(budgets, Some(namespace))?;
        // Decoded as stored, without the store's revision: the write below takes the
        // disruption from whatever the budget is then, as it always has.
        let matching: Vec<PodDisruptionBudget> = all
            .iter()
            .filter_map(|o| decoded(&o.value))
            .filter(|pdb| selector(pdb).is_some_and(|s| s.matches(labels_of(&pod))))
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
fn take_disruption(
    objects: &Objects,
    pdb: &PodDisruptionBudget,
    pod: &Value,
    dry_run: bool,
) -> Result<()> {
    let budgets = resource("policy", "poddisruptionbudgets");
    let pdb_name = pdb.metadata.name.clone().unwrap_or_default();
    let status = pdb.status.clone().unwrap_or_default();
    // A pod that is not healthy anyway may go while the budget is met (`IfHealthyBudget`, the
    // default `unhealthyPodEvictionPolicy`; `AlwaysAllow` lets it go regardless).
    if !healthy(pod) {
        let always = pdb
            .spec
            .as_ref()
            .and_then(|s| s.unhealthy_pod_eviction_policy.as_deref())
            == Some("AlwaysAllow");
        let met = status.current_healthy >= status.desired_healthy;
        if always || met {
            return Ok(());
        }
    }
    if status.observed_generation.unwrap_or(0) < pdb.metadata.generation.unwrap_or(0) {
        return Err(refused(
            format!("The disruption budget {pdb_name} is still being processed by the server."),
            10,
        ));
    }
    let allowed = status.disruptions_allowed;
    if allowed < 0 {
        return Err(KubeError::Forbidden(format!(
            "poddisruptionbudgets.policy \"{pdb_name}\" is forbidden: pdb disruptions allowed is negative"
        )));
    }
    if allowed == 0 {
        return Err(refused(
            format!(
                "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                status.desired_healthy, status.current_healthy
            ),
            0,
        ));
    }
    if dry_run {
        return Ok(());
    }
    let revision = pdb
        .metadata
        .resource_version
        .as_deref()
        .and_then(|r| r.parse().ok());
    let pod_name = name_of(pod).to_string();
    objects.update_with(
        budgets,
        pdb.metadata.namespace.as_deref().unwrap_or(""),
        &pdb_name,
        true,
        revision,
        &mut |current| {
            let budget: PodDisruptionBudget = typed::decode(current)?;
            let mut status = budget.status.clone().unwrap_or_default();
            let left = allowed - 1;
            status.disruptions_allowed = left;
            if left == 0 {
                status.conditions = Some(vec![condition(&budget, false)]);
            }
            status
                .disrupted_pods
                .get_or_insert_default()
                .insert(pod_name.clone(), Time(jiff::Timestamp::now()));
            let mut new = DynamicObject::from_value(current.clone())?;
            *new.field_mut("status") = typed::to_json(&status)?;
            Ok(new.into_value())
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
