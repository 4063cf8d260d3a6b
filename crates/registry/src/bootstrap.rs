//! What kube-apiserver creates in a new cluster before anyone asks (its post-start hooks), and
//! what EKS adds: the system namespaces, the default PriorityClasses, the bootstrap RBAC policy
//! (aggregated, as the clusterrole-aggregation controller leaves it, with metrics-server's
//! `system:aggregated-metrics-reader` since its API is built in) and EKS's `gp2` StorageClass. Creating them again is harmless: an object that exists is left as it is.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use localfargate_core::rbac;
use serde::Serialize;
use serde_json::{Value, json};

use crate::objects::{KubeError, Objects, Result, resource};
use crate::resources::ResourceType;

/// The namespaces every cluster starts with.
pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

fn ensure(objects: &Objects, rt: &ResourceType, namespace: &str, body: Value) -> Result<()> {
    match objects.create(rt, namespace, body) {
        Ok(_) | Err(KubeError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

fn ensure_all<T: Serialize + k8s_openapi::Metadata<Ty = ObjectMeta>>(
    objects: &Objects,
    group: &str,
    plural: &str,
    items: &[T],
) -> Result<()> {
    let rt = resource(group, plural);
    for item in items {
        let body = serde_json::to_value(item)
            .map_err(|e| KubeError::Internal(format!("bootstrap {plural}: {e}")))?;
        let namespace = item.metadata().namespace.clone().unwrap_or_default();
        ensure(objects, rt, &namespace, body)?;
    }
    Ok(())
}

/// metrics-server's `system:aggregated-metrics-reader`, which its manifest installs with the
/// API it serves (here built in): reading `metrics.k8s.io` is part of view, edit and admin.
fn metrics_reader() -> k8s_openapi::api::rbac::v1::ClusterRole {
    use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
    ClusterRole {
        metadata: ObjectMeta {
            name: Some("system:aggregated-metrics-reader".into()),
            labels: Some(
                [
                    ("k8s-app", "metrics-server"),
                    ("rbac.authorization.k8s.io/aggregate-to-admin", "true"),
                    ("rbac.authorization.k8s.io/aggregate-to-edit", "true"),
                    ("rbac.authorization.k8s.io/aggregate-to-view", "true"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ),
            ..ObjectMeta::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["metrics.k8s.io".into()]),
            resources: Some(vec!["pods".into(), "nodes".into()]),
            verbs: vec!["get".into(), "list".into(), "watch".into()],
            ..PolicyRule::default()
        }]),
        ..ClusterRole::default()
    }
}

/// Create what a new cluster has.
pub fn bootstrap(objects: &Objects) -> Result<()> {
    let namespaces = resource("", "namespaces");
    for ns in SYSTEM_NAMESPACES {
        ensure(objects, namespaces, "", json!({"metadata": {"name": ns}}))?;
    }
    let priority_classes = resource("scheduling.k8s.io", "priorityclasses");
    for (name, value, description) in [
        (
            "system-node-critical",
            2_000_001_000,
            "Used for system critical pods that must not be moved from their current node.",
        ),
        (
            "system-cluster-critical",
            2_000_000_000,
            "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
        ),
    ] {
        ensure(
            objects,
            priority_classes,
            "",
            json!({"metadata": {"name": name}, "value": value, "globalDefault": false,
                   "description": description, "preemptionPolicy": "PreemptLowerPriority"}),
        )?;
    }
    // EKS creates `gp2` (in-tree EBS); since 1.30 it is no longer marked the default class.
    ensure(
        objects,
        resource("storage.k8s.io", "storageclasses"),
        "",
        json!({"metadata": {"name": "gp2"}, "provisioner": "kubernetes.io/aws-ebs",
               "parameters": {"fsType": "ext4", "type": "gp2"},
               "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"}),
    )?;
    let mut policy = rbac::bootstrap_policy();
    policy.cluster_roles.push(metrics_reader());
    let cluster_roles = rbac::aggregate(&policy.cluster_roles);
    const RBAC: &str = "rbac.authorization.k8s.io";
    ensure_all(objects, RBAC, "clusterroles", &cluster_roles)?;
    ensure_all(
        objects,
        RBAC,
        "clusterrolebindings",
        &policy.cluster_role_bindings,
    )?;
    ensure_all(objects, RBAC, "roles", &policy.roles)?;
    ensure_all(objects, RBAC, "rolebindings", &policy.role_bindings)?;
    api_services(objects)?;
    for (name, yaml) in EKS_DEFINITIONS {
        let body: Value = serde_yaml::from_str(yaml)
            .map_err(|e| KubeError::Internal(format!("the vendored definition {name}: {e}")))?;
        ensure(
            objects,
            resource("apiextensions.k8s.io", "customresourcedefinitions"),
            "",
            body,
        )?;
    }
    Ok(())
}

/// The APIServices kube-apiserver's autoregister controller keeps for its own group-versions
/// (`Local`), and metrics-server's `v1beta1.metrics.k8s.io`, which EKS lists as an available
/// aggregated API (here the API itself serves it, from the runtime's samples).
fn api_services(objects: &Objects) -> Result<()> {
    let rt = resource("apiregistration.k8s.io", "apiservices");
    let mut services: Vec<(Value, Value)> = crate::resources::groups()
        .into_iter()
        .filter_map(|group| {
            let version = crate::resources::group_version(group)?;
            let (group_priority, version_priority) = if group.is_empty() {
                (18000, 1)
            } else {
                (1000, 15)
            };
            Some((
                json!({"metadata": {"name": format!("{version}.{group}"),
                                    "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}},
                       "spec": {"group": group, "version": version,
                                "groupPriorityMinimum": group_priority,
                                "versionPriority": version_priority}}),
                json!({"conditions": [{"type": "Available", "status": "True", "reason": "Local",
                                       "message": "Local APIServices are always available",
                                       "lastTransitionTime": crate::objects::now_rfc3339()}]}),
            ))
        })
        .collect();
    services.push((
        json!({"metadata": {"name": "v1beta1.metrics.k8s.io", "labels": {"k8s-app": "metrics-server"}},
               "spec": {"group": "metrics.k8s.io", "version": "v1beta1",
                        "service": {"namespace": "kube-system", "name": "metrics-server", "port": 443},
                        "insecureSkipTLSVerify": true,
                        "groupPriorityMinimum": 100, "versionPriority": 100}}),
        json!({"conditions": [{"type": "Available", "status": "True", "reason": "Passed",
                               "message": "all checks passed",
                               "lastTransitionTime": crate::objects::now_rfc3339()}]}),
    ));
    for (body, status) in services {
        let name = crate::meta::name_of(&body).to_string();
        if objects.get(rt, "", &name).is_ok() {
            continue;
        }
        ensure(objects, rt, "", body)?;
        objects.update_with(rt, "", &name, true, None, &mut |cur| {
            let mut new = crate::meta::DynamicObject::from_value(cur.clone())?;
            *new.field_mut("status") = status.clone();
            Ok(new.into_value())
        })?;
    }
    Ok(())
}

/// The CustomResourceDefinitions a new EKS cluster has (see `crds/README.md`).
const EKS_DEFINITIONS: [(&str, &str); 4] = [
    (
        "securitygrouppolicies.vpcresources.k8s.aws",
        include_str!("../crds/securitygrouppolicies.vpcresources.k8s.aws.yaml"),
    ),
    (
        "cninodes.vpcresources.k8s.aws",
        include_str!("../crds/cninodes.vpcresources.k8s.aws.yaml"),
    ),
    (
        "eniconfigs.crd.k8s.amazonaws.com",
        include_str!("../crds/eniconfigs.crd.k8s.amazonaws.com.yaml"),
    ),
    (
        "policyendpoints.networking.k8s.aws",
        include_str!("../crds/policyendpoints.networking.k8s.aws.yaml"),
    ),
];

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use localfargate_store::{SqliteStore, Store};

    use super::*;
    use crate::Settings;

    #[test]
    fn a_new_cluster_has_what_kube_apiserver_and_eks_create_and_again_changes_nothing() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let o = Objects::new(store, "c", Arc::new(Settings::new("us-west-2")));
        bootstrap(&o).unwrap();
        let (_, first) = o.list(resource("", "namespaces"), None).unwrap();
        // EKS's definitions are established: their resources are served at once.
        let catalog = o.catalog().unwrap();
        for (group, plural) in [
            ("vpcresources.k8s.aws", "securitygrouppolicies"),
            ("vpcresources.k8s.aws", "cninodes"),
            ("crd.k8s.amazonaws.com", "eniconfigs"),
            ("networking.k8s.aws", "policyendpoints"),
        ] {
            assert!(catalog.custom(group, plural).is_some(), "{plural}.{group}");
        }
        let sgp = catalog
            .resource("vpcresources.k8s.aws", "v1beta1", "securitygrouppolicies")
            .unwrap();
        assert_eq!(sgp.short_names, ["sgp"]);
        let metrics = o
            .get(
                resource("apiregistration.k8s.io", "apiservices"),
                "",
                "v1beta1.metrics.k8s.io",
            )
            .unwrap();
        assert_eq!(metrics["status"]["conditions"][0]["status"], "True");
        o.get(
            resource("apiregistration.k8s.io", "apiservices"),
            "",
            "v1.apps",
        )
        .unwrap();
        bootstrap(&o).unwrap();
        let (_, second) = o.list(resource("", "namespaces"), None).unwrap();
        assert_eq!(first, second, "a second bootstrap wrote nothing");

        let pc = o
            .get(
                resource("scheduling.k8s.io", "priorityclasses"),
                "",
                "system-node-critical",
            )
            .unwrap();
        assert_eq!(pc["value"], 2_000_001_000);
        let rbac = |plural| resource("rbac.authorization.k8s.io", plural);
        // The aggregated roles carry the rules of the roles they aggregate.
        let admin = o.get(rbac("clusterroles"), "", "admin").unwrap();
        let rules = admin["rules"].as_array().unwrap();
        assert!(
            rules.iter().any(|r| r["resources"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|x| x == "rolebindings"))),
            "{admin:#}"
        );
        // Names with ':' are valid RBAC names.
        o.get(rbac("clusterroles"), "", "system:discovery").unwrap();
        let binding = o
            .get(rbac("clusterrolebindings"), "", "cluster-admin")
            .unwrap();
        assert_eq!(binding["subjects"][0]["name"], "system:masters");
        assert!(
            o.get(resource("storage.k8s.io", "storageclasses"), "", "gp2")
                .is_ok()
        );
    }
}
