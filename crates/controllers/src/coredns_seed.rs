//! What EKS's CoreDNS add-on installs beside the Deployment: the `coredns` ConfigMap with
//! EKS's Corefile, and the `system:coredns` ClusterRole and binding that let the `coredns`
//! ServiceAccount list and watch what the kubernetes plugin serves.

use localfargate_registry::objects::{KubeError, Objects, resource};
use serde_json::{Value, json};

fn ensure(
    objects: &Objects,
    group: &str,
    plural: &str,
    ns: &str,
    body: Value,
) -> Result<(), KubeError> {
    match objects.create(resource(group, plural), ns, body) {
        Ok(_) | Err(KubeError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Create the ConfigMap, ClusterRole and ClusterRoleBinding when missing.
pub fn seed(objects: &Objects) -> Result<(), KubeError> {
    let labels = json!({"eks.amazonaws.com/component": "coredns", "k8s-app": "kube-dns"});
    ensure(
        objects,
        "",
        "configmaps",
        "kube-system",
        json!({"metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
               "data": {"Corefile": localfargate_cluster_dns::corefile::EKS_COREFILE}}),
    )?;
    const RBAC: &str = "rbac.authorization.k8s.io";
    let mut role_labels = labels.clone();
    role_labels["kubernetes.io/bootstrapping"] = json!("rbac-defaults");
    ensure(
        objects,
        RBAC,
        "clusterroles",
        "",
        json!({"metadata": {"name": "system:coredns", "labels": role_labels},
        "rules": [
            {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
             "verbs": ["list", "watch"]},
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
             "verbs": ["list", "watch"]},
        ]}),
    )?;
    ensure(
        objects,
        RBAC,
        "clusterrolebindings",
        "",
        json!({"metadata": {"name": "system:coredns", "labels": labels,
                            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
               "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "system:coredns"},
               "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]}),
    )
}
