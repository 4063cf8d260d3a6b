//! Managed node groups: the EC2 capacity pods fall back to when no Fargate profile takes them, and
//! the default scheduler's filters that decide whether a pod fits one (node selector, required node
//! affinity, taints and tolerations, resources), with upstream's wording.

pub mod drain;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, Pod, Toleration};
use serde::{Deserialize, Serialize};

use crate::sizing::{MIB, PodRequests};

/// An EC2 instance type's size, as a node reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceType {
    pub name: &'static str,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// Pods per node with the VPC CNI (eni-max-pods.txt).
    pub max_pods: u32,
    pub arch: &'static str,
}

const fn it(name: &'static str, vcpus: u32, memory_gib: u64, max_pods: u32) -> InstanceType {
    InstanceType {
        name,
        vcpus,
        memory_mib: memory_gib * 1024,
        max_pods,
        arch: "amd64",
    }
}

const fn graviton(name: &'static str, vcpus: u32, memory_gib: u64, max_pods: u32) -> InstanceType {
    InstanceType {
        name,
        vcpus,
        memory_mib: memory_gib * 1024,
        max_pods,
        arch: "arm64",
    }
}

/// Common node-group instance types.
pub const INSTANCE_TYPES: [InstanceType; 28] = [
    it("t3.micro", 2, 1, 4),
    it("t3.small", 2, 2, 11),
    it("t3.medium", 2, 4, 17),
    it("t3.large", 2, 8, 35),
    it("t3.xlarge", 4, 16, 58),
    it("t3.2xlarge", 8, 32, 58),
    it("t3a.medium", 2, 4, 17),
    it("t3a.large", 2, 8, 35),
    it("m5.large", 2, 8, 29),
    it("m5.xlarge", 4, 16, 58),
    it("m5.2xlarge", 8, 32, 58),
    it("m5.4xlarge", 16, 64, 234),
    it("m6i.large", 2, 8, 29),
    it("m6i.xlarge", 4, 16, 58),
    it("m6i.2xlarge", 8, 32, 58),
    it("m7i.large", 2, 8, 29),
    it("m7i.xlarge", 4, 16, 58),
    graviton("m6g.large", 2, 8, 29),
    graviton("m6g.xlarge", 4, 16, 58),
    it("c5.large", 2, 4, 29),
    it("c5.xlarge", 4, 8, 58),
    it("c5.2xlarge", 8, 16, 58),
    it("c6i.large", 2, 4, 29),
    it("c6i.xlarge", 4, 8, 58),
    it("r5.large", 2, 16, 29),
    it("r5.xlarge", 4, 32, 58),
    it("r6i.large", 2, 16, 29),
    it("r6i.xlarge", 4, 32, 58),
];

pub fn instance_type(name: &str) -> Option<&'static InstanceType> {
    INSTANCE_TYPES.iter().find(|t| t.name == name)
}

/// EKS's default instance type for a managed node group.
pub const DEFAULT_INSTANCE_TYPE: &str = "t3.medium";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taint {
    pub key: String,
    #[serde(default)]
    pub value: String,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute` (EKS's `NO_SCHEDULE` forms are accepted).
    pub effect: String,
}

impl Taint {
    /// The Kubernetes spelling of the effect.
    pub fn kube_effect(&self) -> &str {
        match self.effect.as_str() {
            "NO_SCHEDULE" => "NoSchedule",
            "NO_EXECUTE" => "NoExecute",
            "PREFER_NO_SCHEDULE" => "PreferNoSchedule",
            other => other,
        }
    }

    fn blocks_scheduling(&self) -> bool {
        matches!(self.kube_effect(), "NoSchedule" | "NoExecute")
    }

    fn tolerated_by(&self, t: &Toleration) -> bool {
        let effect_ok = t
            .effect
            .as_deref()
            .is_none_or(|e| e.is_empty() || e == self.kube_effect());
        let key = t.key.as_deref().unwrap_or("");
        match t.operator.as_deref().unwrap_or("Equal") {
            "Exists" => effect_ok && (key.is_empty() || key == self.key),
            _ => effect_ok && key == self.key && t.value.as_deref().unwrap_or("") == self.value,
        }
    }
}

/// A managed node group as far as scheduling and cost go.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeGroup {
    pub name: String,
    pub instance_types: Vec<String>,
    pub desired_size: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: Vec<Taint>,
}

impl NodeGroup {
    /// The instance type its nodes get: the first listed, else EKS's default.
    pub fn instance_type_name(&self) -> &str {
        self.instance_types
            .first()
            .map_or(DEFAULT_INSTANCE_TYPE, String::as_str)
    }

    pub fn instance_type(&self) -> Option<&'static InstanceType> {
        instance_type(self.instance_type_name())
    }

    /// The labels its nodes carry: the group's own plus the ones EKS sets.
    pub fn node_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert("eks.amazonaws.com/nodegroup".to_string(), self.name.clone());
        labels.insert(
            "eks.amazonaws.com/capacityType".to_string(),
            "ON_DEMAND".to_string(),
        );
        labels.insert(
            "node.kubernetes.io/instance-type".to_string(),
            self.instance_type_name().to_string(),
        );
        labels.insert("kubernetes.io/os".to_string(), "linux".to_string());
        let arch = self.instance_type().map_or("amd64", |t| t.arch);
        labels.insert("kubernetes.io/arch".to_string(), arch.to_string());
        labels
    }
}

/// Why a pod does not fit a node group, in the default scheduler's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misfit {
    Affinity,
    Taint(Taint),
    Insufficient(&'static str),
    NoNodes,
    Unschedulable,
    TooManyPods,
}

impl Misfit {
    /// Whether evicting lower-priority pods could make room (upstream's preemption wording).
    pub fn resource_shortage(&self) -> bool {
        matches!(self, Misfit::Insufficient(_) | Misfit::TooManyPods)
    }
}

impl std::fmt::Display for Misfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Misfit::Affinity => f.write_str("node(s) didn't match Pod's node affinity/selector"),
            Misfit::Taint(t) => {
                write!(
                    f,
                    "node(s) had untolerated taint {{{}: {}}}",
                    t.key, t.value
                )
            }
            Misfit::Insufficient(resource) => write!(f, "Insufficient {resource}"),
            Misfit::NoNodes => f.write_str("node group has no nodes"),
            Misfit::Unschedulable => f.write_str("node(s) were unschedulable"),
            Misfit::TooManyPods => f.write_str("Too many pods"),
        }
    }
}

/// Whether one pod with these requests could run on an empty node of the group.
pub fn fits(pod: &Pod, requests: &PodRequests, group: &NodeGroup) -> Result<(), Misfit> {
    if group.desired_size == 0 {
        return Err(Misfit::NoNodes);
    }
    let labels = group.node_labels();
    let spec = pod.spec.as_ref();
    if !affinity_matches(pod, &labels) {
        return Err(Misfit::Affinity);
    }
    let tolerations: &[Toleration] = spec.and_then(|s| s.tolerations.as_deref()).unwrap_or(&[]);
    if let Some(t) = group
        .taints
        .iter()
        .find(|t| t.blocks_scheduling() && !tolerations.iter().any(|tol| t.tolerated_by(tol)))
    {
        return Err(Misfit::Taint(t.clone()));
    }
    if let Some(it) = group.instance_type() {
        if requests.cpu_millis > u64::from(it.vcpus) * 1000 {
            return Err(Misfit::Insufficient("cpu"));
        }
        if requests.memory_bytes > it.memory_mib * MIB {
            return Err(Misfit::Insufficient("memory"));
        }
    }
    Ok(())
}

/// One node as the default scheduler's filters see it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeView {
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    /// What is left of the node's allocatable after the pods already on it.
    pub free_cpu_millis: u64,
    pub free_memory_bytes: u64,
    pub free_pods: u64,
}

/// Whether a pod fits one node now, checked in upstream's filter order.
pub fn fits_node(pod: &Pod, requests: &PodRequests, node: &NodeView) -> Result<(), Misfit> {
    let spec = pod.spec.as_ref();
    let tolerations: &[Toleration] = spec.and_then(|s| s.tolerations.as_deref()).unwrap_or(&[]);
    if node.unschedulable
        && !tolerations.iter().any(|t| {
            t.key.as_deref() == Some("node.kubernetes.io/unschedulable")
                && t.operator.as_deref() == Some("Exists")
        })
    {
        return Err(Misfit::Unschedulable);
    }
    if !affinity_matches(pod, &node.labels) {
        return Err(Misfit::Affinity);
    }
    if let Some(t) = node
        .taints
        .iter()
        .find(|t| t.blocks_scheduling() && !tolerations.iter().any(|tol| t.tolerated_by(tol)))
    {
        return Err(Misfit::Taint(t.clone()));
    }
    if node.free_pods == 0 {
        return Err(Misfit::TooManyPods);
    }
    if requests.cpu_millis > node.free_cpu_millis {
        return Err(Misfit::Insufficient("cpu"));
    }
    if requests.memory_bytes > node.free_memory_bytes {
        return Err(Misfit::Insufficient("memory"));
    }
    Ok(())
}

/// nodeSelector and required node affinity against a node's labels.
fn affinity_matches(pod: &Pod, labels: &BTreeMap<String, String>) -> bool {
    let spec = pod.spec.as_ref();
    if let Some(selector) = spec.and_then(|s| s.node_selector.as_ref())
        && !selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    let required = spec
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    // Terms are ORed; the expressions of one term are ANDed. An empty term matches no node, as
    // upstream's scheduler has it.
    match required {
        Some(required) => required.node_selector_terms.iter().any(|term| {
            let expressions = term.match_expressions.as_deref().unwrap_or(&[]);
            !expressions.is_empty() && expressions.iter().all(|e| requirement_matches(e, labels))
        }),
        None => true,
    }
}

/// Upstream's FailedScheduling message for a pod no node takes, from each node's reason.
pub fn unschedulable_message(misfits: &[Misfit]) -> String {
    let n = misfits.len();
    if n == 0 {
        return "no nodes available to schedule pods".to_string();
    }
    let histogram = |items: Vec<String>| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for i in items {
            *counts.entry(i).or_default() += 1;
        }
        let mut out: Vec<String> = counts
            .into_iter()
            .map(|(r, c)| format!("{c} {r}"))
            .collect();
        out.sort();
        out.join(", ")
    };
    let reasons = histogram(misfits.iter().map(ToString::to_string).collect());
    let preemption = histogram(
        misfits
            .iter()
            .map(|m| {
                if m.resource_shortage() {
                    "No preemption victims found for incoming pod.".to_string()
                } else {
                    "Preemption is not helpful for scheduling.".to_string()
                }
            })
            .collect(),
    );
    // The doubled final period is upstream's (observed on EKS: "…for scheduling..").
    format!(
        "0/{n} nodes are available: {reasons}. preemption: 0/{n} nodes are available: {preemption}."
    )
}

fn requirement_matches(e: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let value = labels.get(&e.key);
    let values = e.values.as_deref().unwrap_or(&[]);
    let number = |s: &str| s.parse::<i64>().ok();
    match e.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => {
            matches!((value.and_then(|v| number(v)), values.first().and_then(|v| number(v))), (Some(a), Some(b)) if a > b)
        }
        "Lt" => {
            matches!((value.and_then(|v| number(v)), values.first().and_then(|v| number(v))), (Some(a), Some(b)) if a < b)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sizing::GIB;
    use crate::test_pods::pod;

    fn group() -> NodeGroup {
        NodeGroup {
            name: "ng-1".to_string(),
            instance_types: vec!["m5.large".to_string()],
            desired_size: 2,
            labels: BTreeMap::from([("role".to_string(), "general".to_string())]),
            taints: vec![Taint {
                key: "dedicated".to_string(),
                value: "batch".to_string(),
                effect: "NO_SCHEDULE".to_string(),
            }],
        }
    }

    fn check(spec: serde_json::Value, cpu: u64, mem: u64) -> Result<(), String> {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": spec}));
        let r = PodRequests {
            cpu_millis: cpu,
            memory_bytes: mem,
            ..Default::default()
        };
        fits(&p, &r, &group()).map_err(|m| m.to_string())
    }

    const TOLERATE: &str =
        r#"[{"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}]"#;

    fn tolerating(mut spec: serde_json::Value) -> serde_json::Value {
        spec["tolerations"] = serde_json::from_str(TOLERATE).unwrap();
        spec
    }

    #[test]
    fn taints_block_untolerating_pods() {
        let spec = json!({"containers": [{"name": "c", "image": "x"}]});
        assert_eq!(
            check(spec.clone(), 0, 0).unwrap_err(),
            "node(s) had untolerated taint {dedicated: batch}"
        );
        assert_eq!(check(tolerating(spec.clone()), 0, 0), Ok(()));
        let mut exists = spec;
        exists["tolerations"] = json!([{"operator": "Exists"}]);
        assert_eq!(check(exists, 0, 0), Ok(()));
    }

    #[test]
    fn selectors_and_affinity() {
        let base = tolerating(json!({"containers": [{"name": "c", "image": "x"}]}));
        let mut s = base.clone();
        s["nodeSelector"] = json!({"role": "general", "eks.amazonaws.com/nodegroup": "ng-1"});
        assert_eq!(check(s, 0, 0), Ok(()));
        let mut s = base.clone();
        s["nodeSelector"] = json!({"role": "gpu"});
        assert_eq!(
            check(s, 0, 0).unwrap_err(),
            "node(s) didn't match Pod's node affinity/selector"
        );
        let mut s = base.clone();
        s["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "eks.amazonaws.com/compute-type", "operator": "NotIn", "values": ["fargate"]},
                {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]}]}]}}});
        assert_eq!(check(s, 0, 0), Ok(()));
        let mut s = base;
        s["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "role", "operator": "DoesNotExist"}]}]}}});
        assert!(check(s, 0, 0).is_err());
    }

    #[test]
    fn resources_must_fit_an_instance() {
        let spec = tolerating(json!({"containers": [{"name": "c", "image": "x"}]}));
        assert_eq!(check(spec.clone(), 2000, 8 * GIB), Ok(()));
        assert_eq!(
            check(spec.clone(), 2001, 0).unwrap_err(),
            "Insufficient cpu"
        );
        assert_eq!(
            check(spec, 0, 8 * GIB + 1).unwrap_err(),
            "Insufficient memory"
        );
    }

    #[test]
    fn node_level_fit_and_upstreams_message() {
        let spec = json!({"containers": [{"name": "c", "image": "x"}]});
        let p = pod(json!({"metadata": {"name": "p"}, "spec": spec}));
        let fargate = NodeView {
            taints: vec![Taint {
                key: "eks.amazonaws.com/compute-type".into(),
                value: "fargate".into(),
                effect: "NoSchedule".into(),
            }],
            free_pods: 0,
            ..Default::default()
        };
        let r = PodRequests {
            cpu_millis: 500,
            ..Default::default()
        };
        let m = fits_node(&p, &r, &fargate).unwrap_err();
        assert_eq!(
            unschedulable_message(&[m]),
            "0/1 nodes are available: 1 node(s) had untolerated taint {eks.amazonaws.com/compute-type: fargate}. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.."
        );
        let small = NodeView {
            free_cpu_millis: 100,
            free_memory_bytes: GIB,
            free_pods: 10,
            ..Default::default()
        };
        assert_eq!(fits_node(&p, &r, &small), Err(Misfit::Insufficient("cpu")));
        let cordoned = NodeView {
            unschedulable: true,
            ..small.clone()
        };
        assert_eq!(fits_node(&p, &r, &cordoned), Err(Misfit::Unschedulable));
        let roomy = NodeView {
            free_cpu_millis: 2000,
            ..small
        };
        assert_eq!(fits_node(&p, &r, &roomy), Ok(()));
        assert_eq!(
            unschedulable_message(&[]),
            "no nodes available to schedule pods"
        );
        let two = unschedulable_message(&[
            Misfit::Insufficient("cpu"),
            Misfit::Taint(fargate.taints[0].clone()),
        ]);
        assert_eq!(
            two,
            "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {eks.amazonaws.com/compute-type: fargate}. preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod., 1 Preemption is not helpful for scheduling.."
        );
    }

    #[test]
    fn node_labels_and_defaults() {
        let g = NodeGroup {
            name: "x".to_string(),
            desired_size: 1,
            ..Default::default()
        };
        assert_eq!(g.instance_type_name(), "t3.medium");
        let labels = g.node_labels();
        assert_eq!(labels["eks.amazonaws.com/nodegroup"], "x");
        assert_eq!(labels["node.kubernetes.io/instance-type"], "t3.medium");
        assert_eq!(instance_type("m6g.large").unwrap().arch, "arm64");
        let empty = NodeGroup {
            desired_size: 0,
            ..g
        };
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": []}}));
        assert_eq!(
            fits(&p, &PodRequests::default(), &empty),
            Err(Misfit::NoNodes)
        );
    }
}
