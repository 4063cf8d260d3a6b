//! One strategy per resource, as kube-apiserver's registry has one per kind: what a create
//! defaults and starts with, what an update may not change, whether `generation` counts spec
//! changes, which admission runs, and how a delete proceeds. [`Objects`](crate::Objects) does
//! the storage semantics every resource shares and asks the resource's strategy for the rest,
//! so a new kind is a table row here, not another branch there.

use k8s_openapi::api::{apps, autoscaling, batch, core, policy};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration;
use serde::Serialize;
use serde_json::{Value, json};

use crate::meta::DynamicObject;
use crate::objects::{Objects, Result};
use crate::resources::ResourceType;
use crate::{admission, defaults};

/// How a DELETE of an object with no finalizers proceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// Removed at once.
    Immediate,
    /// Marked with a deletion timestamp and this grace period; whoever runs it (a pod's node
    /// agent) removes it when it has stopped.
    Graceful { seconds: i64 },
    /// Marked, and held until its own controller has emptied it (a namespace).
    HeldUntilFinalized,
}

pub trait Strategy: Sync {
    /// Whether `metadata.generation` starts at 1 and counts changes to the spec (upstream sets
    /// it in the PrepareForCreate of the kinds whose controllers report `observedGeneration`).
    fn tracks_generation(&self) -> bool {
        false
    }

    /// Upstream's defaults, and the checks the controllers rely on; run on create and again on
    /// every update, so a patch cannot remove what a controller needs.
    fn default(&self, _rt: &ResourceType, _obj: &mut DynamicObject) -> Result<()> {
        Ok(())
    }

    /// The status a new object starts with, whatever the request said (`None`: the object's
    /// own, for kinds without a status subresource).
    fn initial_status(&self, _obj: &DynamicObject) -> Option<Value> {
        None
    }

    /// Mutating admission on create (Fargate's webhook for pods).
    fn admit_create(&self, _objects: &Objects, _obj: &mut DynamicObject) -> Result<()> {
        Ok(())
    }

    /// Admission on an update of the object (not its status): what the kind's controllers
    /// would write at once (a definition's accepted names).
    fn admit_update(
        &self,
        _objects: &Objects,
        _old: &DynamicObject,
        _new: &mut DynamicObject,
    ) -> Result<()> {
        Ok(())
    }

    /// What an update may not change, beyond what a create is checked for.
    fn validate_update(
        &self,
        _rt: &ResourceType,
        _old: &DynamicObject,
        _new: &DynamicObject,
    ) -> Result<()> {
        Ok(())
    }

    /// Finalizers the server adds when a DELETE starts (a definition's cleanup).
    fn finalizers_on_delete(&self) -> &'static [&'static str] {
        &[]
    }

    /// How a DELETE proceeds, given the grace period the request asked for.
    fn deletion(&self, _obj: &DynamicObject, _requested_grace: Option<i64>) -> Deletion {
        Deletion::Immediate
    }

    /// Whether removing the last finalizer of an object being deleted removes it. Not for a
    /// namespace (its controller finishes it) or a pod still on a node (its node agent does).
    fn last_finalizer_deletes(&self, _obj: &DynamicObject) -> bool {
        true
    }
}

/// The strategy of a resource: the kinds with their own rules, else a generic one that knows
/// only whether the kind counts generations and the status it starts with.
pub fn strategy_for(rt: &ResourceType) -> &'static dyn Strategy {
    if rt.custom {
        // Custom resources all count generations; their schema is applied by `Objects`, which
        // has the cluster's definitions.
        return &Generic {
            generation: true,
            status: None,
        };
    }
    match (rt.group, rt.kind) {
        ("", "Pod") => &PodStrategy,
        ("", "Namespace") => &NamespaceStrategy,
        ("apps", "Deployment") => &Workload(status_of::<apps::v1::DeploymentStatus>),
        ("apps", "ReplicaSet") => &Workload(status_of::<apps::v1::ReplicaSetStatus>),
        // Go writes `availableReplicas` without omitempty; k8s-openapi has it optional.
        ("apps", "StatefulSet") => &Workload(|| json!({"replicas": 0, "availableReplicas": 0})),
        ("apps", "DaemonSet") => &Workload(status_of::<apps::v1::DaemonSetStatus>),
        ("batch", "Job") => &JobStrategy,
        ("batch", "CronJob") => &CronJobStrategy,
        ("", "ReplicationController") => &Defaulted {
            defaults: defaults::replication_controller,
            generation: true,
            status: Some(status_of::<core::v1::ReplicationControllerStatus>),
        },
        ("", "Secret") => &SecretStrategy,
        ("", "Service") => &ServiceStrategy,
        ("", "PersistentVolumeClaim") => &ClaimStrategy,
        ("", "PersistentVolume") => &Generic {
            generation: false,
            status: Some(|| json!({"phase": "Pending"})),
        },
        // A node is registered with its status (capacity, addresses), as a kubelet does.
        ("", "Node") => &NodeStrategy,
        ("", "ResourceQuota") => &Generic {
            generation: false,
            status: Some(|| json!({})),
        },
        ("autoscaling", "HorizontalPodAutoscaler") => &Defaulted {
            defaults: defaults::horizontal_pod_autoscaler,
            generation: false,
            status: Some(status_of::<autoscaling::v2::HorizontalPodAutoscalerStatus>),
        },
        ("scheduling.k8s.io", "PriorityClass") => &Defaulted {
            defaults: defaults::priority_class,
            generation: false,
            status: None,
        },
        ("storage.k8s.io", "StorageClass") => &Defaulted {
            defaults: defaults::storage_class,
            generation: false,
            status: None,
        },
        ("networking.k8s.io", "NetworkPolicy") => &Defaulted {
            defaults: defaults::network_policy,
            generation: true,
            status: None,
        },
        ("policy", "PodDisruptionBudget") => &Generic {
            generation: true,
            status: Some(status_of::<policy::v1::PodDisruptionBudgetStatus>),
        },
        ("networking.k8s.io", "Ingress") => &Generic {
            generation: true,
            status: Some(|| json!({"loadBalancer": {}})),
        },
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            &crate::custom::strategy::DefinitionStrategy
        }
        ("apiregistration.k8s.io", "APIService") => &Generic {
            generation: false,
            status: Some(status_of::<apiregistration::v1::APIServiceStatus>),
        },
        ("networking.k8s.io", "IngressClass")
        | ("discovery.k8s.io", "EndpointSlice")
        | (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration"
            | "ValidatingWebhookConfiguration"
            | "ValidatingAdmissionPolicy"
            | "ValidatingAdmissionPolicyBinding",
        )
        | ("flowcontrol.apiserver.k8s.io", "FlowSchema" | "PriorityLevelConfiguration") => {
            &Generic {
                generation: true,
                status: Some(|| json!({})),
            }
        }
        _ if rt.has_status => &Generic {
            generation: false,
            status: Some(|| json!({})),
        },
        _ => &Generic {
            generation: false,
            status: None,
        },
    }
}

/// A status as kube-apiserver writes the zero value of the kind's Go status struct: the
/// counters Go always writes (no `omitempty`) present as 0, which k8s-openapi models as its
/// required fields. Typed clients fail on a DaemonSet without `numberReady`.
fn status_of<S: Default + Serialize>() -> Value {
    serde_json::to_value(S::default()).unwrap_or_else(|_| json!({}))
}

struct Generic {
    generation: bool,
    status: Option<fn() -> Value>,
}

impl Strategy for Generic {
    fn tracks_generation(&self) -> bool {
        self.generation
    }
    fn initial_status(&self, _obj: &DynamicObject) -> Option<Value> {
        self.status.map(|f| f())
    }
}

/// A Secret's `stringData` folded into `data`, and a Secret without a type `Opaque`
/// (kubectl 1.32+'s protobuf `create secret` sends "").
struct SecretStrategy;

impl Strategy for SecretStrategy {
    fn default(&self, _rt: &ResourceType, obj: &mut DynamicObject) -> Result<()> {
        defaults::secret(obj);
        Ok(())
    }
}

/// A kind with upstream defaults and nothing else of its own.
struct Defaulted {
    defaults: fn(&mut DynamicObject),
    generation: bool,
    status: Option<fn() -> Value>,
}

impl Strategy for Defaulted {
    fn tracks_generation(&self) -> bool {
        self.generation
    }
    fn default(&self, _rt: &ResourceType, obj: &mut DynamicObject) -> Result<()> {
        (self.defaults)(obj);
        Ok(())
    }
    fn initial_status(&self, _obj: &DynamicObject) -> Option<Value> {
        self.status.map(|f| f())
    }
}

/// A Service: upstream's defaults, a ClusterIP from the cluster's service range, and an empty
/// load-balancer status.
struct ServiceStrategy;

impl Strategy for ServiceStrategy {
    fn default(&self, _rt: &ResourceType, obj: &mut DynamicObject) -> Result<()> {
        defaults::service(obj);
        Ok(())
    }
    fn initial_status(&self, _obj: &DynamicObject) -> Option<Value> {
        Some(json!({"loadBalancer": {}}))
    }
    fn admit_create(&self, objects: &Objects, obj: &mut DynamicObject) -> Result<()> {
        crate::service_ips::allocate(objects, obj)?;
        crate::node_ports::allocate(objects, obj, None)
    }
    fn admit_update(
        &self,
        objects: &Objects,
        old: &DynamicObject,
        new: &mut DynamicObject,
    ) -> Result<()> {
        crate::node_ports::allocate(objects, new, Some(old))
    }
}

/// A PersistentVolumeClaim: its storage request within the namespace's LimitRanges, on create
/// and on a resize.
struct ClaimStrategy;

impl Strategy for ClaimStrategy {
    fn initial_status(&self, _obj: &DynamicObject) -> Option<Value> {
        Some(json!({"phase": "Pending"}))
    }
    fn admit_create(&self, objects: &Objects, obj: &mut DynamicObject) -> Result<()> {
        crate::limit_ranger::validate_claim(objects, obj)
    }
    fn admit_update(
        &self,
        objects: &Objects,
        old: &DynamicObject,
        new: &mut DynamicObject,
    ) -> Result<()> {
        if old.spec()["resources"] == new.spec()["resources"] {
            return Ok(());
        }
        crate::limit_ranger::validate_claim(objects, new)
    }
}

struct NodeStrategy;

impl Strategy for NodeStrategy {
    fn initial_status(&self, obj: &DynamicObject) -> Option<Value> {
        Some(match obj.status() {
            Value::Object(status) => Value::Object(status.clone()),
            _ => json!({}),
        })
    }
}

struct PodStrategy;

/// A pod bound to a node whose containers have not finished: its node agent stops it.
fn running_on_node(pod: &DynamicObject) -> bool {
    pod.spec()["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty())
        && !matches!(pod.status()["phase"].as_str(), Some("Succeeded" | "Failed"))
}

impl Strategy for PodStrategy {
    fn default(&self, rt: &ResourceType, obj: &mut DynamicObject) -> Result<()> {
        defaults::pod(rt, obj)
    }
    fn initial_status(&self, obj: &DynamicObject) -> Option<Value> {
        Some(json!({"phase": "Pending", "qosClass": defaults::qos_class(obj.spec())}))
    }
    fn admit_create(&self, objects: &Objects, obj: &mut DynamicObject) -> Result<()> {
        // The built-in LimitRanger first, then Fargate's mutating webhook, as on EKS.
        crate::limit_ranger::admit(objects, obj)?;
        crate::limit_ranger::validate_pod(objects, obj)?;
        obj.field_mut("status")["qosClass"] = json!(defaults::qos_class(obj.spec()));
        let namespace = obj.metadata.namespace().to_string();
        crate::service_account_admission::admit(objects, &namespace, obj);
        // EKS's pod identity webhook (IRSA), which runs for every pod on EKS.
        crate::pod_identity_webhook::admit(objects, &namespace, obj);
        admission::admit_pod(objects, obj)
    }
    fn admit_update(
        &self,
        _objects: &Objects,
        old: &DynamicObject,
        new: &mut DynamicObject,
    ) -> Result<()> {
        crate::service_account_admission::keep_on_update(old, new);
        Ok(())
    }
    fn validate_update(
        &self,
        rt: &ResourceType,
        old: &DynamicObject,
        new: &DynamicObject,
    ) -> Result<()> {
        defaults::check_pod_update(rt, old, new)
    }
    fn deletion(&self, obj: &DynamicObject, requested_grace: Option<i64>) -> Deletion {
        if !running_on_node(obj) || requested_grace == Some(0) {
            return Deletion::Immediate;
        }
        Deletion::Graceful {
            seconds: requested_grace.unwrap_or_else(|| {
                obj.spec()["terminationGracePeriodSeconds"]
                    .as_i64()
                    .unwrap_or(30)
            }),
        }
    }
    fn last_finalizer_deletes(&self, obj: &DynamicObject) -> bool {
        !running_on_node(obj)
    }
}

struct NamespaceStrategy;

impl Strategy for NamespaceStrategy {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, _rt: &ResourceType, obj: &mut DynamicObject) -> Result<()> {
        defaults::namespace(obj);
        Ok(())
    }
    fn initial_status(&self, _obj: &DynamicObject) -> Option<Value> {
        Some(json!({"phase": "Active"}))
    }
    fn deletion(&self, _obj: &DynamicObject, _requested_grace: Option<i64>) -> Deletion {
        Deletion::HeldUntilFinalized
    }
    fn last_finalizer_deletes(&self, _obj: &DynamicObject) -> bool {
        false
    }
}

/// Deployments, ReplicaSets, StatefulSets and DaemonSets: defaults, selector checks, and the
/// kind's zero status.
struct Workload(fn() -> Value);

impl Strategy for Workload {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, rt: &ResourceType, obj: &mut DynamicObject) -> Result<()> {
        defaults::workload_defaults(rt, obj)
    }
    fn initial_status(&self, _obj: &DynamicObject) -> Option<Value> {
        Some(self.0())
    }
}

struct JobStrategy;

impl Strategy for JobStrategy {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, rt: &ResourceType, obj: &mut DynamicObject) -> Result<()> {
        defaults::job_defaults(rt, obj)
    }
    fn initial_status(&self, _obj: &DynamicObject) -> Option<Value> {
        Some(status_of::<batch::v1::JobStatus>())
    }
}

struct CronJobStrategy;

impl Strategy for CronJobStrategy {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, rt: &ResourceType, obj: &mut DynamicObject) -> Result<()> {
        defaults::cronjob(rt, obj)
    }
    fn initial_status(&self, _obj: &DynamicObject) -> Option<Value> {
        Some(status_of::<batch::v1::CronJobStatus>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{RESOURCES, resource};

    #[test]
    fn new_workloads_start_with_the_counters_go_always_writes() {
        let status = |group: &str, plural: &str| {
            let rt = resource(
                group,
                if group == "autoscaling" { "v2" } else { "v1" },
                plural,
            )
            .unwrap();
            strategy_for(rt).initial_status(&DynamicObject::default())
        };
        assert_eq!(
            status("apps", "daemonsets"),
            Some(json!({
                "currentNumberScheduled": 0,
                "desiredNumberScheduled": 0,
                "numberMisscheduled": 0,
                "numberReady": 0
            }))
        );
        assert_eq!(status("apps", "replicasets"), Some(json!({"replicas": 0})));
        assert_eq!(
            status("apps", "statefulsets"),
            Some(json!({"availableReplicas": 0, "replicas": 0}))
        );
        assert_eq!(status("apps", "deployments"), Some(json!({})));
        assert_eq!(
            status("policy", "poddisruptionbudgets"),
            Some(json!({
                "currentHealthy": 0,
                "desiredHealthy": 0,
                "disruptionsAllowed": 0,
                "expectedPods": 0
            }))
        );
        assert_eq!(
            status("autoscaling", "horizontalpodautoscalers"),
            Some(json!({"desiredReplicas": 0}))
        );
        assert_eq!(status("", "configmaps"), None);
    }

    #[test]
    fn every_resource_with_a_status_subresource_starts_with_a_status() {
        for rt in RESOURCES.iter().filter(|r| r.has_status) {
            assert!(
                strategy_for(rt)
                    .initial_status(&DynamicObject::default())
                    .is_some(),
                "{}",
                rt.qualified()
            );
        }
    }

    #[test]
    fn a_pod_on_a_node_is_deleted_gracefully_unless_forced_or_finished() {
        let rt = resource("", "v1", "pods").unwrap();
        let object = |v: Value| DynamicObject::from_value(v).unwrap();
        let pod = object(json!({"spec": {"nodeName": "n", "terminationGracePeriodSeconds": 5}}));
        let s = strategy_for(rt);
        assert_eq!(s.deletion(&pod, None), Deletion::Graceful { seconds: 5 });
        assert_eq!(s.deletion(&pod, Some(0)), Deletion::Immediate);
        let done = object(json!({"spec": {"nodeName": "n"}, "status": {"phase": "Succeeded"}}));
        assert_eq!(s.deletion(&done, None), Deletion::Immediate);
        assert!(!s.last_finalizer_deletes(&pod));
        assert!(s.last_finalizer_deletes(&done));
    }
}
