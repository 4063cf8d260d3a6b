//! The Kubernetes resource types a localfargate cluster serves, and where their objects live in
//! the store. One table drives discovery, OpenAPI, routing and storage, so a resource added here
//! is served everywhere at once.

/// A subresource as discovery describes it: `pods/log`, `deployments/scale`, …
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    pub name: &'static str,
    /// The kind it accepts and returns, and that kind's group and version when they differ
    /// from the parent's (kubectl drain needs `policy/v1 Eviction`, scale `autoscaling/v1 Scale`).
    pub kind: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub verbs: &'static [&'static str],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
        subresources: &[],
    }
}

/// Every served resource, in discovery order.
pub const RESOURCES: &[ResourceType] = &[
    ResourceType {
        short_names: &["ns"],
        has_status: true,
        subresources: &[status("Namespace")],
        ..rt("", "namespaces", "namespace", "Namespace", false)
    },
    ResourceType {
        short_names: &["po"],
        categories: ALL,
        has_status: true,
        subresources: &[
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
        ..rt("", "pods", "pod", "Pod", true)
    },
    ResourceType {
        short_names: &["no"],
        has_status: true,
        subresources: &[status("Node")],
        ..rt("", "nodes", "node", "Node", false)
    },
    ResourceType {
        short_names: &["ev"],
        ..rt("", "events", "event", "Event", true)
    },
    ResourceType {
        short_names: &["cm"],
        ..rt("", "configmaps", "configmap", "ConfigMap", true)
    },
    rt("", "secrets", "secret", "Secret", true),
    ResourceType {
        short_names: &["sa"],
        ..rt(
            "",
            "serviceaccounts",
            "serviceaccount",
            "ServiceAccount",
            true,
        )
    },
    ResourceType {
        short_names: &["deploy"],
        categories: ALL,
        has_status: true,
        subresources: &[status("Deployment"), scale()],
        ..rt("apps", "deployments", "deployment", "Deployment", true)
    },
    ResourceType {
        short_names: &["rs"],
        categories: ALL,
        has_status: true,
        subresources: &[status("ReplicaSet"), scale()],
        ..rt("apps", "replicasets", "replicaset", "ReplicaSet", true)
    },
    ResourceType {
        short_names: &["ds"],
        categories: ALL,
        has_status: true,
        subresources: &[status("DaemonSet")],
        ..rt("apps", "daemonsets", "daemonset", "DaemonSet", true)
    },
    ResourceType {
        short_names: &["sts"],
        categories: ALL,
        has_status: true,
        subresources: &[status("StatefulSet"), scale()],
        ..rt("apps", "statefulsets", "statefulset", "StatefulSet", true)
    },
    ResourceType {
        categories: ALL,
        has_status: true,
        subresources: &[status("Job")],
        ..rt("batch", "jobs", "job", "Job", true)
    },
    ResourceType {
        short_names: &["cj"],
        categories: ALL,
        has_status: true,
        subresources: &[status("CronJob")],
        ..rt("batch", "cronjobs", "cronjob", "CronJob", true)
    },
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
        if self.read_only { RO_VERBS } else { RW_VERBS }
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
        let group = if self.group.is_empty() {
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
        assert_eq!(groups(), vec!["", "apps", "batch", FARGATE_GROUP]);
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
