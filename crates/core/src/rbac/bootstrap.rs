//! kube-apiserver's bootstrap RBAC policy: the default objects it creates (and keeps up to date,
//! `rbac.authorization.kubernetes.io/autoupdate: "true"`) at start. The objects are upstream's
//! own test data, vendored in `bootstrap/` (see `bootstrap/PROVENANCE.md`).

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;

use super::{Policy, aggregate};

/// The default ClusterRoles, ClusterRoleBindings, Roles and RoleBindings, as stored objects
/// (aggregated ClusterRoles such as `admin`, `edit` and `view` with `rules: null`, as upstream
/// creates them before its aggregation controller fills them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BootstrapPolicy {
    pub cluster_roles: Vec<ClusterRole>,
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    pub roles: Vec<Role>,
    pub role_bindings: Vec<RoleBinding>,
}

impl BootstrapPolicy {
    /// The bootstrap objects with aggregation applied, indexed for decisions.
    pub fn into_policy(self) -> Policy {
        Policy::new(
            aggregate(&self.cluster_roles),
            self.roles,
            self.cluster_role_bindings,
            self.role_bindings,
        )
    }
}

const CONTROLLER_ROLE_PREFIX: &str = "system:controller:";

#[derive(serde::Deserialize)]
struct List<T> {
    items: Vec<T>,
}

/// Parses one vendored list. The data is compiled in and checked by the unit tests, so a
/// failure here is a defect in this crate, not in any input.
fn vendored<T: DeserializeOwned>(file: &str, yaml: &str) -> Vec<T> {
    match serde_yaml::from_str::<List<T>>(yaml) {
        Ok(list) => list.items,
        Err(e) => panic!("vendored bootstrap data {file} does not parse: {e}"),
    }
}

/// The binding upstream gives each `system:controller:NAME` role: to the service account
/// `kube-system/NAME` the controller-manager runs that controller as, with the role's labels and
/// annotations.
fn controller_binding(role: &ClusterRole) -> Option<ClusterRoleBinding> {
    let name = role.metadata.name.as_deref()?;
    let service_account = name.strip_prefix(CONTROLLER_ROLE_PREFIX)?;
    Some(ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: role.metadata.labels.clone(),
            annotations: role.metadata.annotations.clone(),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: name.to_string(),
        },
        subjects: Some(vec![Subject {
            api_group: None,
            kind: "ServiceAccount".into(),
            name: service_account.to_string(),
            namespace: Some("kube-system".into()),
        }]),
    })
}

/// kube-apiserver's bootstrap policy: cluster-admin, admin, edit, view, the
/// `system:aggregate-to-*` roles, system:discovery, system:basic-user,
/// system:public-info-viewer, system:node*, system:kube-*, system:controller:* and the rest,
/// with their bindings, labels (`kubernetes.io/bootstrapping: rbac-defaults`) and annotations.
pub fn bootstrap_policy() -> BootstrapPolicy {
    let mut cluster_roles: Vec<ClusterRole> = vendored(
        "cluster-roles.yaml",
        include_str!("bootstrap/cluster-roles.yaml"),
    );
    let controller_roles: Vec<ClusterRole> = vendored(
        "controller-roles.yaml",
        include_str!("bootstrap/controller-roles.yaml"),
    );
    let mut cluster_role_bindings: Vec<ClusterRoleBinding> = vendored(
        "cluster-role-bindings.yaml",
        include_str!("bootstrap/cluster-role-bindings.yaml"),
    );
    let controller_bindings: Vec<ClusterRoleBinding> = controller_roles
        .iter()
        .filter_map(controller_binding)
        .collect();
    cluster_roles.extend(controller_roles);
    cluster_role_bindings.extend(controller_bindings);
    BootstrapPolicy {
        cluster_roles,
        cluster_role_bindings,
        roles: vendored(
            "namespace-roles.yaml",
            include_str!("bootstrap/namespace-roles.yaml"),
        ),
        role_bindings: vendored(
            "namespace-role-bindings.yaml",
            include_str!("bootstrap/namespace-role-bindings.yaml"),
        ),
    }
}
