//! Draining a managed node group to update its version: EKS evicts the pods on the group's
//! nodes, and a pod that a PodDisruptionBudget allows no disruption of
//! (`status.disruptionsAllowed: 0`) makes the update fail with `PodEvictionFailure`, unless it
//! is forced. This is the rule; the EKS API reads the objects and records the failure.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::{Map, Value};

use crate::selectors::LabelSelector;

/// The label EKS puts on a managed node group's nodes.
pub const NODEGROUP_LABEL: &str = "eks.amazonaws.com/nodegroup";

/// The nodes of node group `nodegroup` that hold a pod no budget lets be evicted, in name order.
/// A budget selects the pods of its namespace its whole selector matches (an empty selector
/// every one, a missing one none, as in policy/v1); a budget without a status yet blocks
/// nothing (its controller has not counted it).
pub fn eviction_blocked_nodes<'a>(
    nodegroup: &str,
    nodes: impl IntoIterator<Item = &'a Node>,
    budgets: impl IntoIterator<Item = &'a PodDisruptionBudget>,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Vec<String> {
    let nodes: BTreeSet<&str> = nodes
        .into_iter()
        .filter(|n| {
            n.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(NODEGROUP_LABEL))
                .is_some_and(|g| g == nodegroup)
        })
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    if nodes.is_empty() {
        return Vec::new();
    }
    let blocking: Vec<(Option<&str>, LabelSelector)> = budgets
        .into_iter()
        .filter(|b| b.status.as_ref().map(|s| s.disruptions_allowed) == Some(0))
        .filter_map(|b| {
            let selector = b.spec.as_ref()?.selector.as_ref()?;
            Some((
                b.metadata.namespace.as_deref(),
                LabelSelector::from_typed(selector).ok()?,
            ))
        })
        .collect();
    if blocking.is_empty() {
        return Vec::new();
    }
    let mut blocked = BTreeSet::new();
    for pod in pods {
        let Some(node) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .filter(|n| nodes.contains(n))
        else {
            continue;
        };
        let labels: Map<String, Value> = pod
            .metadata
            .labels
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let held = blocking.iter().any(|(namespace, selector)| {
            *namespace == pod.metadata.namespace.as_deref() && selector.matches(Some(&labels))
        });
        if held {
            blocked.insert(node.to_string());
        }
    }
    blocked.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, group: &str) -> Node {
        serde_json::from_value(
            json!({"metadata": {"name": name, "labels": {NODEGROUP_LABEL: group}}}),
        )
        .unwrap()
    }

    fn pod(name: &str, namespace: &str, node: &str, labels: Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"nodeName": node, "containers": []}}),
        )
        .unwrap()
    }

    fn budget(namespace: &str, selector: Value, allowed: Option<i32>) -> PodDisruptionBudget {
        let mut b = json!({"metadata": {"name": "b", "namespace": namespace}, "spec": {"selector": selector}});
        if let Some(n) = allowed {
            b["status"] = json!({"disruptionsAllowed": n, "currentHealthy": 1, "desiredHealthy": 1,
                "expectedPods": 1});
        }
        if selector.is_null() {
            b["spec"] = json!({});
        }
        serde_json::from_value(b).unwrap()
    }

    #[test]
    fn a_budget_allowing_no_disruption_blocks_the_nodes_of_its_pods() {
        let nodes = [node("n1", "ng"), node("n2", "ng"), node("other", "ng2")];
        let pods = [
            pod(
                "web-1",
                "apps",
                "n1",
                json!({"app": "web", "tier": "front"}),
            ),
            pod("db-1", "apps", "n2", json!({"app": "db"})),
            pod(
                "web-2",
                "apps",
                "other",
                json!({"app": "web", "tier": "front"}),
            ),
            pod(
                "web-3",
                "elsewhere",
                "n2",
                json!({"app": "web", "tier": "front"}),
            ),
        ];
        let blocked = |b: PodDisruptionBudget| eviction_blocked_nodes("ng", &nodes, [&b], &pods);
        // matchLabels and matchExpressions alike; only the group's nodes, only its namespace.
        assert_eq!(
            blocked(budget(
                "apps",
                json!({"matchLabels": {"app": "web"}}),
                Some(0)
            )),
            ["n1"]
        );
        assert_eq!(
            blocked(budget(
                "apps",
                json!({"matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front"]}]}),
                Some(0)
            )),
            ["n1"]
        );
        assert_eq!(
            blocked(budget(
                "apps",
                json!({"matchExpressions": [
                {"key": "tier", "operator": "DoesNotExist"}]}),
                Some(0)
            )),
            ["n2"]
        );
        // An empty selector takes every pod of the namespace, a missing one none.
        assert_eq!(blocked(budget("apps", json!({}), Some(0))), ["n1", "n2"]);
        assert!(blocked(budget("apps", Value::Null, Some(0))).is_empty());
        // A budget that allows a disruption, or has not been counted yet, blocks nothing.
        assert!(blocked(budget("apps", json!({}), Some(1))).is_empty());
        assert!(blocked(budget("apps", json!({}), None)).is_empty());
        // Another group's update is not held by these pods.
        let b = budget("apps", json!({}), Some(0));
        assert!(eviction_blocked_nodes("ng3", &nodes, [&b], &pods).is_empty());
    }
}
