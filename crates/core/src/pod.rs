//! What the Fargate policy needs of a pod, decoded once: its identity for matching and its
//! containers' parsed requests for sizing. A k8s-openapi `Pod` spreads this over kilobytes of
//! structs and a dozen heap allocations per container; deciding from these facts touches a few
//! cache lines, which is what lets a scheduler decide millions of pods a second.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use crate::COMPUTE_TYPE_ANNOTATION;
use crate::matching::PodIdentity;
use crate::sizing::{self, ContainerDemand, PodRequests, SizingError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFacts {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Only the annotations the policy reads: the compute-type opt-out.
    pub annotations: BTreeMap<String, String>,
    pub containers: Vec<ContainerDemand>,
}

impl PodFacts {
    /// Decode a pod; fails only on a quantity the API server would reject.
    pub fn of(pod: &Pod) -> Result<Self, SizingError> {
        let id = PodIdentity::of(pod);
        let annotations = id
            .annotations
            .get_key_value(COMPUTE_TYPE_ANNOTATION)
            .map(|(k, v)| (k.clone(), v.clone()))
            .into_iter()
            .collect();
        let containers = match &pod.spec {
            Some(spec) => sizing::container_demands(spec)?,
            None => Vec::new(),
        };
        Ok(PodFacts {
            namespace: id.namespace.to_string(),
            name: id.name.to_string(),
            labels: id.labels.clone(),
            annotations,
            containers,
        })
    }

    pub fn identity(&self) -> PodIdentity<'_> {
        PodIdentity {
            namespace: &self.namespace,
            name: &self.name,
            labels: &self.labels,
            annotations: &self.annotations,
        }
    }

    /// The pod's effective requests.
    pub fn requests(&self) -> PodRequests {
        sizing::combine(&self.containers)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::profile::{FargateProfile, Selector};
    use crate::test_pods::{container, pod};
    use crate::{ProfileIndex, SelectionRule};

    #[test]
    fn facts_decide_like_the_pod() {
        let p = pod(json!({
            "metadata": {"name": "coredns-1", "namespace": "kube-system",
                "labels": {"k8s-app": "kube-dns"},
                "annotations": {"eks.amazonaws.com/compute-type": "ec2", "other": "x"}},
            "spec": {
                "initContainers": [container("init", &[("cpu", "2")], &[])],
                "containers": [container("a", &[("cpu", "100m"), ("memory", "70Mi")], &[("memory", "170Mi")])]
            }
        }));
        let facts = PodFacts::of(&p).unwrap();
        assert_eq!(facts.annotations.len(), 1, "only what the policy reads");
        assert_eq!(
            facts.requests(),
            sizing::pod_requests(p.spec.as_ref().unwrap()).unwrap()
        );
        // By hand: CPU is the init container's 2 over the app's 100m; memory is the app's 70Mi
        // request (its 170Mi limit does not count when a request is set).
        assert_eq!(facts.requests().cpu_millis, 2000);
        assert_eq!(facts.requests().memory_bytes, 70 * 1024 * 1024);
        let index = ProfileIndex::new(vec![FargateProfile::active(
            "fp",
            vec![Selector::new("kube-system", &[("k8s-app", "kube-dns")])],
        )]);
        assert_eq!(
            index.place(&facts.identity(), SelectionRule::Name),
            index.place(&PodIdentity::of(&p), SelectionRule::Name)
        );
    }
}
