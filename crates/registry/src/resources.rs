//! The Kubernetes resource types a localfargate cluster serves, and where their objects live in
//! the store. One table drives discovery, OpenAPI, routing and storage, so a resource added here
//! is served everywhere at once.

/// A subresource as discovery describes it: `pods/log`, `deployments/scale`, …
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subresource {
    pub name: &'static str,
    /// The kind it accepts and returns, and that kind's group and version when they differ
    /// from the parent's (kubectl drain needs `policy/v1 Eviction`, scale `autoscaling/v1 Scale`).
    pub kind: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub verbs: &'static [&'static str],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResourceType {
    /// `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    /// The plural name in URLs: `pods`.
    pub resource: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Users may read but not write it (the mirrored Fargate profiles).
    pub read_only: bool,
    /// Writes to the main resource leave `.status` alone; `/status` writes only change it.
    pub has_status: bool,
    /// A review: created and answered, never stored (SelfSubjectAccessReview, …).
    pub create_only: bool,
    /// Defined at run time by a CustomResourceDefinition (see [`crate::custom`]).
    pub custom: bool,
    pub subresources: &'static [Subresource],
}

const ALL: &[&str] = &["all"];
const RW_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const RO_VERBS: &[&str] = &["get", "list", "watch"];
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

const fn status(kind: &'static str) -> Subresource {
    Subresource {
        name: "status",
        kind,
        group: "",
        version: "",
        verbs: STATUS_VERBS,
    }
}

const fn scale() -> Subresource {
    Subresource {
        name: "scale",
        kind: "Scale",
        group: "autoscaling",
        version: "v1",
        verbs: STATUS_VERBS,
    }
}

/// The API group of the mirrored Fargate profiles.
pub const FARGATE_GROUP: &str = "eks.localfargate.io";

/// Whether a k8s-openapi scope is namespaced, as a constant the table can use.
pub trait Scope {
    const NAMESPACED: bool;
}
impl Scope for k8s_openapi::NamespaceResourceScope {
    const NAMESPACED: bool = true;
}
impl Scope for k8s_openapi::ClusterResourceScope {
    const NAMESPACED: bool = false;
}

/// A built-in resource from k8s-openapi's metadata (group, version, kind, plural, scope): the
/// table below adds only what that metadata lacks (short names, categories, subresources).
/// `singular` is the lowercased kind, as upstream's for every built-in (a test checks it).
const fn of<T>(singular: &'static str) -> ResourceType
where
    T: k8s_openapi::Resource,
    T::Scope: Scope,
{
    ResourceType {
        group: T::GROUP,
        version: T::VERSION,
        resource: T::URL_PATH_SEGMENT,
        singular,
        kind: T::KIND,
        namespaced: <T::Scope as Scope>::NAMESPACED,
        short_names: &[],
        categories: &[],
        read_only: false,
        has_status: false,
        create_only: false,
        custom: false,
        subresources: &[],
    }
}

/// A resource with a status subresource: writes to the object leave `.status` alone.
const fn with_status(mut rt: ResourceType, subresources: &'static [Subresource]) -> ResourceType {
    rt.has_status = true;
    rt.subresources = subresources;
    rt
}

const fn rt(
    group: &'static str,
    resource: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
) -> ResourceType {
    ResourceType {
        group,
        version: "v1",
        resource,
        singular,
        kind,
        namespaced,
        short_names: &[],
        categories: &[],
        read_only: false,
        has_status: false,
        create_only: false,
        custom: false,
        subresources: &[],
    }
}

use k8s_openapi::api::{
    admissionregistration::v1 as admissionregistration, apps::v1 as apps,
    autoscaling::v2 as autoscaling, batch::v1 as batch, certificates::v1 as certificates,
    coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
    flowcontrol::v1 as flowcontrol, networking::v1 as networking, node::v1 as node,
    policy::v1 as policy, rbac::v1 as rbac, scheduling::v1 as scheduling, storage::v1 as storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apiregistration;

const API_EXTENSIONS: &[&str] = &["api-extensions"];
const CREATE_VERBS: &[&str] = &["create"];

/// A review kind: answered on create, never stored.
const fn review(rt: ResourceType) -> ResourceType {
    ResourceType {
        create_only: true,
        ..rt
    }
}

use k8s_openapi::api::authentication::v1 as authentication;
use k8s_openapi::api::authorization::v1 as authorization;

/// Every served resource, in discovery order: the kinds `kubectl api-resources` lists on an EKS
/// cluster, from k8s-openapi's metadata. Stored objects, then the access reviews (answered on
/// create, never stored), then the mirrored Fargate profiles.
pub const RESOURCES: &[ResourceType] = &[
    ResourceType {
        short_names: &["ns"],
        ..with_status(of::<core::Namespace>("namespace"), &[status("Namespace")])
    },
    ResourceType {
        short_names: &["po"],
        categories: ALL,
        ..with_status(
            of::<core::Pod>("pod"),
            &[
                status("Pod"),
                Subresource {
                    name: "log",
                    kind: "Pod",
                    group: "",
                    version: "",
                    verbs: &["get"],
                },
                Subresource {
                    name: "attach",
                    kind: "PodAttachOptions",
                    group: "",
                    version: "",
                    verbs: &["create", "get"],
                },
                Subresource {
                    name: "exec",
                    kind: "PodExecOptions",
                    group: "",
                    version: "",
                    verbs: &["create", "get"],
                },
                Subresource {
                    name: "portforward",
                    kind: "PodPortForwardOptions",
                    group: "",
                    version: "",
                    verbs: &["create", "get"],
                },
                Subresource {
                    name: "binding",
                    kind: "Binding",
                    group: "",
                    version: "",
                    verbs: &["create"],
                },
                Subresource {
                    name: "eviction",
                    kind: "Eviction",
                    group: "policy",
                    version: "v1",
                    verbs: &["create"],
                },
            ],
        )
    },
    ResourceType {
        short_names: &["no"],
        ..with_status(of::<core::Node>("node"), &[status("Node")])
    },
    ResourceType {
        short_names: &["ev"],
        ..of::<core::Event>("event")
    },
    ResourceType {
        short_names: &["cm"],
        ..of::<core::ConfigMap>("configmap")
    },
    of::<core::Secret>("secret"),
    ResourceType {
        short_names: &["sa"],
        subresources: &[Subresource {
            name: "token",
            kind: "TokenRequest",
            group: "authentication.k8s.io",
            version: "v1",
            verbs: &["create"],
        }],
        ..of::<core::ServiceAccount>("serviceaccount")
    },
    ResourceType {
        short_names: &["svc"],
        categories: ALL,
        ..with_status(of::<core::Service>("service"), &[status("Service")])
    },
    ResourceType {
        short_names: &["ep"],
        ..of::<core::Endpoints>("endpoints")
    },
    // Served, not stored: the health of the control plane's components (deprecated upstream,
    // still listed on EKS). See `crate::component_status`.
    ResourceType {
        short_names: &["cs"],
        read_only: true,
        ..of::<core::ComponentStatus>("componentstatus")
    },
    ResourceType {
        short_names: &["pvc"],
        ..with_status(
            of::<core::PersistentVolumeClaim>("persistentvolumeclaim"),
            &[status("PersistentVolumeClaim")],
        )
    },
    ResourceType {
        short_names: &["pv"],
        ..with_status(
            of::<core::PersistentVolume>("persistentvolume"),
            &[status("PersistentVolume")],
        )
    },
    of::<core::PodTemplate>("podtemplate"),
    ResourceType {
        short_names: &["rc"],
        categories: ALL,
        ..with_status(
            of::<core::ReplicationController>("replicationcontroller"),
            &[status("ReplicationController"), scale()],
        )
    },
    ResourceType {
        short_names: &["quota"],
        ..with_status(
            of::<core::ResourceQuota>("resourcequota"),
            &[status("ResourceQuota")],
        )
    },
    ResourceType {
        short_names: &["limits"],
        ..of::<core::LimitRange>("limitrange")
    },
    ResourceType {
        short_names: &["deploy"],
        categories: ALL,
        ..with_status(
            of::<apps::Deployment>("deployment"),
            &[status("Deployment"), scale()],
        )
    },
    ResourceType {
        short_names: &["rs"],
        categories: ALL,
        ..with_status(
            of::<apps::ReplicaSet>("replicaset"),
            &[status("ReplicaSet"), scale()],
        )
    },
    ResourceType {
        short_names: &["ds"],
        categories: ALL,
        ..with_status(of::<apps::DaemonSet>("daemonset"), &[status("DaemonSet")])
    },
    ResourceType {
        short_names: &["sts"],
        categories: ALL,
        ..with_status(
            of::<apps::StatefulSet>("statefulset"),
            &[status("StatefulSet"), scale()],
        )
    },
    of::<apps::ControllerRevision>("controllerrevision"),
    ResourceType {
        categories: ALL,
        ..with_status(of::<batch::Job>("job"), &[status("Job")])
    },
    ResourceType {
        short_names: &["cj"],
        categories: ALL,
        ..with_status(of::<batch::CronJob>("cronjob"), &[status("CronJob")])
    },
    ResourceType {
        short_names: &["hpa"],
        categories: ALL,
        ..with_status(
            of::<autoscaling::HorizontalPodAutoscaler>("horizontalpodautoscaler"),
            &[status("HorizontalPodAutoscaler")],
        )
    },
    ResourceType {
        short_names: &["pdb"],
        ..with_status(
            of::<policy::PodDisruptionBudget>("poddisruptionbudget"),
            &[status("PodDisruptionBudget")],
        )
    },
    of::<rbac::ClusterRole>("clusterrole"),
    of::<rbac::ClusterRoleBinding>("clusterrolebinding"),
    of::<rbac::Role>("role"),
    of::<rbac::RoleBinding>("rolebinding"),
    ResourceType {
        short_names: &["ing"],
        ..with_status(of::<networking::Ingress>("ingress"), &[status("Ingress")])
    },
    of::<networking::IngressClass>("ingressclass"),
    ResourceType {
        short_names: &["netpol"],
        ..of::<networking::NetworkPolicy>("networkpolicy")
    },
    of::<discovery::EndpointSlice>("endpointslice"),
    // The core Events, in their events.k8s.io form (see `crate::events_v1`).
    ResourceType {
        short_names: &["ev"],
        ..of::<k8s_openapi::api::events::v1::Event>("event")
    },
    ResourceType {
        short_names: &["sc"],
        ..of::<storage::StorageClass>("storageclass")
    },
    of::<storage::CSIDriver>("csidriver"),
    of::<storage::CSINode>("csinode"),
    of::<storage::CSIStorageCapacity>("csistoragecapacity"),
    with_status(
        of::<storage::VolumeAttachment>("volumeattachment"),
        &[status("VolumeAttachment")],
    ),
    ResourceType {
        short_names: &["pc"],
        ..of::<scheduling::PriorityClass>("priorityclass")
    },
    of::<coordination::Lease>("lease"),
    of::<node::RuntimeClass>("runtimeclass"),
    ResourceType {
        short_names: &["csr"],
        ..with_status(
            of::<certificates::CertificateSigningRequest>("certificatesigningrequest"),
            &[
                status("CertificateSigningRequest"),
                Subresource {
                    name: "approval",
                    kind: "CertificateSigningRequest",
                    group: "",
                    version: "",
                    verbs: STATUS_VERBS,
                },
            ],
        )
    },
    ResourceType {
        categories: API_EXTENSIONS,
        ..of::<admissionregistration::MutatingWebhookConfiguration>("mutatingwebhookconfiguration")
    },
    ResourceType {
        categories: API_EXTENSIONS,
        ..of::<admissionregistration::ValidatingWebhookConfiguration>(
            "validatingwebhookconfiguration",
        )
    },
    ResourceType {
        categories: API_EXTENSIONS,
        ..with_status(
            of::<admissionregistration::ValidatingAdmissionPolicy>("validatingadmissionpolicy"),
            &[status("ValidatingAdmissionPolicy")],
        )
    },
    ResourceType {
        categories: API_EXTENSIONS,
        ..of::<admissionregistration::ValidatingAdmissionPolicyBinding>(
            "validatingadmissionpolicybinding",
        )
    },
    ResourceType {
        short_names: &["crd", "crds"],
        categories: API_EXTENSIONS,
        ..with_status(
            of::<apiextensions::CustomResourceDefinition>("customresourcedefinition"),
            &[status("CustomResourceDefinition")],
        )
    },
    ResourceType {
        categories: API_EXTENSIONS,
        ..with_status(
            of::<apiregistration::APIService>("apiservice"),
            &[status("APIService")],
        )
    },
    with_status(
        of::<flowcontrol::FlowSchema>("flowschema"),
        &[status("FlowSchema")],
    ),
    with_status(
        of::<flowcontrol::PriorityLevelConfiguration>("prioritylevelconfiguration"),
        &[status("PriorityLevelConfiguration")],
    ),
    review(of::<authentication::SelfSubjectReview>("selfsubjectreview")),
    review(of::<authentication::TokenReview>("tokenreview")),
    review(of::<authorization::LocalSubjectAccessReview>(
        "localsubjectaccessreview",
    )),
    review(of::<authorization::SelfSubjectAccessReview>(
        "selfsubjectaccessreview",
    )),
    review(of::<authorization::SelfSubjectRulesReview>(
        "selfsubjectrulesreview",
    )),
    review(of::<authorization::SubjectAccessReview>(
        "subjectaccessreview",
    )),
    ResourceType {
        short_names: &["fp"],
        read_only: true,
        ..rt(
            FARGATE_GROUP,
            "fargateprofiles",
            "fargateprofile",
            "FargateProfile",
            false,
        )
    },
];

impl ResourceType {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn verbs(&self) -> &'static [&'static str] {
        if self.kind == "ComponentStatus" {
            // Answered from the components' health, never stored: no watch.
            return &["get", "list"];
        }
        if self.create_only {
            CREATE_VERBS
        } else if self.read_only {
            RO_VERBS
        } else {
            RW_VERBS
        }
    }

    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// `pods` or `deployments.apps`: how upstream names a resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// The prefix of this resource's keys, in one namespace or (with `None`) in all.
    pub fn key_prefix(&self, namespace: Option<&str>) -> String {
        // events.k8s.io Events are the core Events, stored once.
        let group = if self.group.is_empty() || self.group == crate::events_v1::GROUP {
            "core"
        } else {
            self.group
        };
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => format!("{group}/{}/{ns}/", self.resource),
            None => format!("{group}/{}/", self.resource),
        }
    }

    /// The store key of one object.
    pub fn key(&self, namespace: &str, name: &str) -> String {
        let mut k = self.key_prefix(Some(namespace));
        k.push_str(name);
        k
    }
}

/// The resource served at `group`/`version`/`resource`.
pub fn resource(group: &str, version: &str, resource: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.resource == resource)
}

/// The resource of an object's `apiVersion` and `kind`.
pub fn resource_for_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// The store kind holding every Kubernetes object of one cluster.
pub fn store_kind(cluster: &str) -> String {
    format!("{KUBE_KIND_PREFIX}{cluster}")
}

/// What every cluster's store kind starts with.
pub const KUBE_KIND_PREFIX: &str = "k8s/";

/// The store keys of Events (`core/events/<namespace>/<name>`) start with this.
pub const EVENTS_KEY_PREFIX: &str = "core/events/";

/// The one version a served group has (`v1`; `v2` for autoscaling).
pub fn group_version(group: &str) -> Option<&'static str> {
    RESOURCES
        .iter()
        .find(|r| r.group == group)
        .map(|r| r.version)
}

/// The API groups served, in discovery order, with their one version.
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_events_key_prefix_is_the_events_resources() {
        let events = resource("", "v1", "events").map(|rt| rt.key_prefix(None));
        assert_eq!(events.as_deref(), Some(EVENTS_KEY_PREFIX));
        assert!(store_kind("c").starts_with(KUBE_KIND_PREFIX));
    }

    #[test]
    fn keys_nest_namespaces_under_resources() {
        let pods = resource("", "v1", "pods").unwrap();
        assert_eq!(pods.key("demo", "p1"), "core/pods/demo/p1");
        assert_eq!(pods.key_prefix(Some("demo")), "core/pods/demo/");
        assert_eq!(pods.key_prefix(None), "core/pods/");
        let nodes = resource("", "v1", "nodes").unwrap();
        // Cluster-scoped: the namespace is ignored.
        assert_eq!(nodes.key("demo", "n1"), "core/nodes/n1");
        let deploy = resource_for_kind("apps/v1", "Deployment").unwrap();
        assert_eq!(deploy.key("d", "web"), "apps/deployments/d/web");
        assert_eq!(deploy.qualified(), "deployments.apps");
        assert_eq!(deploy.api_version(), "apps/v1");
    }

    #[test]
    fn registry_is_consistent() {
        assert_eq!(
            groups(),
            vec![
                "",
                "apps",
                "batch",
                "autoscaling",
                "policy",
                "rbac.authorization.k8s.io",
                "networking.k8s.io",
                "discovery.k8s.io",
                "events.k8s.io",
                "storage.k8s.io",
                "scheduling.k8s.io",
                "coordination.k8s.io",
                "node.k8s.io",
                "certificates.k8s.io",
                "admissionregistration.k8s.io",
                "apiextensions.k8s.io",
                "apiregistration.k8s.io",
                "flowcontrol.apiserver.k8s.io",
                "authentication.k8s.io",
                "authorization.k8s.io",
                FARGATE_GROUP
            ]
        );
        assert_eq!(group_version("autoscaling"), Some("v2"));
        for r in RESOURCES {
            // Upstream's singular name of every built-in is its lowercased kind.
            assert_eq!(r.singular, r.kind.to_lowercase(), "{}", r.resource);
            // One version per group: discovery and the store keys assume it.
            assert_eq!(group_version(r.group), Some(r.version), "{}", r.resource);
            let same = RESOURCES
                .iter()
                .filter(|o| o.group == r.group && o.resource == r.resource)
                .count();
            assert_eq!(same, 1, "{} served twice", r.qualified());
        }
        let pods = resource("", "v1", "pods").unwrap();
        let eviction = pods.subresource("eviction").unwrap();
        assert_eq!((eviction.group, eviction.version), ("policy", "v1"));
        assert!(
            resource(FARGATE_GROUP, "v1", "fargateprofiles")
                .unwrap()
                .read_only
        );
        assert_eq!(
            resource(FARGATE_GROUP, "v1", "fargateprofiles")
                .unwrap()
                .verbs(),
            RO_VERBS
        );
        for r in RESOURCES {
            assert!(resource_for_kind(&r.api_version(), r.kind).is_some());
        }
        assert!(resource("", "v1", "widgets").is_none());
    }
}
