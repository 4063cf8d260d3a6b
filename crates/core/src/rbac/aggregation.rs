//! The clusterrole-aggregation controller: a ClusterRole with an `aggregationRule` gets the
//! rules of every other ClusterRole its selectors pick.

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Map, Value};

use crate::selectors;

fn compile(selector: &LabelSelector) -> Option<selectors::LabelSelector> {
    selectors::LabelSelector::from_typed(selector).ok()
}

fn labels(role: &ClusterRole) -> Option<Map<String, Value>> {
    role.metadata.labels.as_ref().map(|labels| {
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect()
    })
}

/// The rules the controller would write into `roles[target]`: for each selector in turn, the
/// rules of the matching roles in name order (the target itself excluded), each rule once.
/// `None` when a selector is invalid: upstream then leaves the role as it is.
fn aggregated_rules(
    roles: &[ClusterRole],
    by_name: &[usize],
    target: usize,
) -> Option<Vec<PolicyRule>> {
    let role = &roles[target];
    let selectors = role
        .aggregation_rule
        .as_ref()?
        .cluster_role_selectors
        .as_deref()
        .unwrap_or(&[]);
    let mut rules: Vec<PolicyRule> = Vec::new();
    for selector in selectors {
        let selector = compile(selector)?;
        for &i in by_name {
            if i == target || roles[i].metadata.name == role.metadata.name {
                continue;
            }
            if !selector.matches(labels(&roles[i]).as_ref()) {
                continue;
            }
            for rule in roles[i].rules.as_deref().unwrap_or(&[]) {
                if !rules.contains(rule) {
                    rules.push(rule.clone());
                }
            }
        }
    }
    Some(rules)
}

/// Every ClusterRole, with the rules of those that have an `aggregationRule` recomputed from the
/// roles their selectors pick. Aggregations of aggregations (admin ← edit ← view) are followed
/// to the fixed point the controller reaches after its repeated syncs.
pub fn aggregate(cluster_roles: &[ClusterRole]) -> Vec<ClusterRole> {
    let mut roles = cluster_roles.to_vec();
    let mut by_name: Vec<usize> = (0..roles.len()).collect();
    by_name.sort_by(|&a, &b| roles[a].metadata.name.cmp(&roles[b].metadata.name));
    let aggregated: Vec<usize> = (0..roles.len())
        .filter(|&i| roles[i].aggregation_rule.is_some())
        .collect();
    // Each pass can only carry rules one aggregation level further, so this many passes reach
    // the fixed point even for a chain through every role.
    for _ in 0..=aggregated.len() {
        let mut changed = false;
        for &i in &aggregated {
            let Some(rules) = aggregated_rules(&roles, &by_name, i) else {
                continue;
            };
            if roles[i].rules.as_ref() != Some(&rules) {
                roles[i].rules = Some(rules);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    roles
}
