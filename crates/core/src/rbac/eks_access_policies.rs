//! EKS access policies: the AWS-managed permission sets (`aws eks list-access-policies`) that
//! an access entry's principal gets through `associate-access-policy`, cluster-wide or in
//! some namespaces. In EKS a webhook authorizer grants them beside RBAC; here they become
//! ClusterRoles and bindings for the same [`Policy`](super::Policy) engine. These objects are
//! for decisions only: EKS shows none of them through the Kubernetes API, so they are not to be
//! stored or listed.
//!
//! The rules are those AWS documents ("Review access policy permissions", EKS User Guide).
//! For the policies AWS reserves for its own service-linked roles and describes only in prose
//! (Auto Mode, Hyperpod, EMR, Insights …) no rules are published; they are listed, and grant
//! nothing here.

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

const ARN_PREFIX: &str = "arn:aws:eks::aws:cluster-access-policy/";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// Name prefix of the ClusterRoles standing for access policies.
pub const CLUSTER_ROLE_PREFIX: &str = "eks:access-policy:";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];

/// Every access policy `list-access-policies` returns, in its (name) order.
pub const ACCESS_POLICY_NAMES: &[&str] = &[
    "AmazonAIOpsAssistantPolicy",
    "AmazonARCRegionSwitchScalingPolicy",
    "AmazonEKSAdminPolicy",
    "AmazonEKSAdminViewPolicy",
    "AmazonEKSAutoNodePolicy",
    "AmazonEKSBlockStorageClusterPolicy",
    "AmazonEKSBlockStoragePolicy",
    "AmazonEKSClusterAdminPolicy",
    "AmazonEKSClusterInsightsPolicy",
    "AmazonEKSComputeClusterPolicy",
    "AmazonEKSComputePolicy",
    "AmazonEKSEditPolicy",
    "AmazonEKSHybridPolicy",
    "AmazonEKSLoadBalancingClusterPolicy",
    "AmazonEKSLoadBalancingPolicy",
    "AmazonEKSNetworkingClusterPolicy",
    "AmazonEKSNetworkingPolicy",
    "AmazonEKSSecretReaderPolicy",
    "AmazonEKSViewPolicy",
    "AmazonEMRJobPolicy",
    "AmazonSagemakerHyperpodClusterPolicy",
    "AmazonSagemakerHyperpodControllerPolicy",
    "AmazonSagemakerHyperpodSystemNamespacePolicy",
];

/// One entry of `list-access-policies`: `{"name": …, "arn": …}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccessPolicy {
    pub name: String,
    pub arn: String,
}

/// The policies `list-access-policies` returns.
pub fn access_policies() -> Vec<AccessPolicy> {
    ACCESS_POLICY_NAMES
        .iter()
        .map(|name| AccessPolicy {
            name: name.to_string(),
            arn: policy_arn(name),
        })
        .collect()
}

/// `arn:aws:eks::aws:cluster-access-policy/NAME`.
pub fn policy_arn(name: &str) -> String {
    format!("{ARN_PREFIX}{name}")
}

/// The policy name an access-policy ARN names, if it is one `list-access-policies` returns.
pub fn policy_name(arn: &str) -> Option<&'static str> {
    let name = arn.strip_prefix(ARN_PREFIX)?;
    ACCESS_POLICY_NAMES.iter().copied().find(|n| *n == name)
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let owned = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(owned(groups)),
        resources: Some(owned(resources)),
        verbs: owned(verbs),
        ..PolicyRule::default()
    }
}

/// AmazonEKSViewPolicy's table.
fn view_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            &["apps"],
            &[
                "controllerrevisions",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
            ],
            READ,
        ),
        rule(
            &["autoscaling"],
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
            READ,
        ),
        rule(
            &["batch"],
            &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
            READ,
        ),
        rule(&["discovery.k8s.io"], &["endpointslices"], READ),
        rule(
            &["extensions"],
            &[
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "ingresses",
                "ingresses/status",
                "networkpolicies",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "replicationcontrollers/scale",
            ],
            READ,
        ),
        rule(
            &["networking.k8s.io"],
            &["ingresses", "ingresses/status", "networkpolicies"],
            READ,
        ),
        rule(
            &["policy"],
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
            READ,
        ),
        rule(
            &[""],
            &[
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
            ],
            READ,
        ),
        rule(
            &[""],
            &[
                "bindings",
                "events",
                "limitranges",
                "namespaces/status",
                "pods/log",
                "pods/status",
                "replicationcontrollers/status",
                "resourcequotas",
                "resourcequotas/status",
            ],
            READ,
        ),
        rule(&[""], &["namespaces"], READ),
    ]
}

/// AmazonEKSEditPolicy's table: the view rules plus these.
fn edit_rules() -> Vec<PolicyRule> {
    let mut rules = view_rules();
    rules.extend([
        rule(
            &["apps"],
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
            ],
            WRITE,
        ),
        rule(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
        rule(&["batch"], &["cronjobs", "jobs"], WRITE),
        rule(
            &["extensions"],
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "ingresses",
                "networkpolicies",
                "replicasets",
                "replicasets/scale",
                "replicationcontrollers/scale",
            ],
            WRITE,
        ),
        rule(
            &["networking.k8s.io"],
            &["ingresses", "networkpolicies"],
            WRITE,
        ),
        rule(&["policy"], &["poddisruptionbudgets"], WRITE),
        rule(
            &[""],
            &[
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "secrets",
                "services/proxy",
            ],
            READ,
        ),
        rule(&[""], &["serviceaccounts"], &["impersonate"]),
        rule(
            &[""],
            &[
                "pods",
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
            ],
            WRITE,
        ),
        rule(
            &[""],
            &[
                "configmaps",
                "events",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "secrets",
                "serviceaccounts",
                "services",
                "services/proxy",
            ],
            WRITE,
        ),
    ]);
    rules
}

/// AmazonEKSAdminPolicy's table: the edit rules plus these.
fn admin_rules() -> Vec<PolicyRule> {
    let mut rules = edit_rules();
    rules.extend([
        rule(
            &["authorization.k8s.io"],
            &["localsubjectaccessreviews"],
            &["create"],
        ),
        rule(
            &[RBAC_GROUP],
            &["rolebindings", "roles"],
            &[
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ],
        ),
    ]);
    rules
}

/// The Kubernetes permissions a policy grants, `None` for a name `list-access-policies` does
/// not return. Policies whose rules AWS does not publish grant nothing (an empty list).
pub fn policy_rules(name: &str) -> Option<Vec<PolicyRule>> {
    let rules = match name {
        "AmazonEKSClusterAdminPolicy" => vec![
            rule(&["*"], &["*"], &["*"]),
            PolicyRule {
                non_resource_urls: Some(vec!["*".into()]),
                verbs: vec!["*".into()],
                ..PolicyRule::default()
            },
        ],
        "AmazonEKSAdminPolicy" => admin_rules(),
        "AmazonEKSEditPolicy" => edit_rules(),
        "AmazonEKSViewPolicy" => view_rules(),
        "AmazonEKSAdminViewPolicy" => vec![rule(&["*"], &["*"], READ)],
        "AmazonEKSSecretReaderPolicy" => vec![rule(&[""], &["secrets"], READ)],
        "AmazonEKSHybridPolicy" => vec![rule(&["*"], &["nodes"], &["list"])],
        other if ACCESS_POLICY_NAMES.contains(&other) => Vec::new(),
        _ => return None,
    };
    Some(rules)
}

/// The ClusterRole standing for each access policy, named `eks:access-policy:NAME`.
pub fn access_policy_cluster_roles() -> Vec<ClusterRole> {
    ACCESS_POLICY_NAMES
        .iter()
        .map(|name| ClusterRole {
            metadata: ObjectMeta {
                name: Some(format!("{CLUSTER_ROLE_PREFIX}{name}")),
                ..ObjectMeta::default()
            },
            rules: policy_rules(name),
            aggregation_rule: None,
        })
        .collect()
}

/// Where an associated access policy applies (`accessScope`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessScope {
    /// `{"type": "cluster"}`: every namespace and the cluster-scoped resources.
    Cluster,
    /// `{"type": "namespace", "namespaces": […]}`: only in these namespaces.
    Namespaces(Vec<String>),
}

/// One `associate-access-policy` of an access entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociatedAccessPolicy {
    pub policy_arn: String,
    pub scope: AccessScope,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessPolicyError {
    #[error("{0} is not an access policy ARN that list-access-policies returns")]
    UnknownPolicy(String),
}

/// The bindings that give the access entry's Kubernetes user `username` its associated
/// policies: a ClusterRoleBinding for a cluster scope, a RoleBinding in each namespace of a
/// namespace scope, each to the policy's ClusterRole from [`access_policy_cluster_roles`].
pub fn access_entry_bindings(
    username: &str,
    associations: &[AssociatedAccessPolicy],
) -> Result<(Vec<ClusterRoleBinding>, Vec<RoleBinding>), AccessPolicyError> {
    let mut cluster_bindings = Vec::new();
    let mut namespace_bindings = Vec::new();
    for association in associations {
        let name = policy_name(&association.policy_arn)
            .ok_or_else(|| AccessPolicyError::UnknownPolicy(association.policy_arn.clone()))?;
        let role_ref = RoleRef {
            api_group: RBAC_GROUP.into(),
            kind: "ClusterRole".into(),
            name: format!("{CLUSTER_ROLE_PREFIX}{name}"),
        };
        let subjects = Some(vec![Subject {
            api_group: Some(RBAC_GROUP.into()),
            kind: "User".into(),
            name: username.into(),
            namespace: None,
        }]);
        let binding_name = format!("eks:access-entry:{username}:{name}");
        match &association.scope {
            AccessScope::Cluster => cluster_bindings.push(ClusterRoleBinding {
                metadata: ObjectMeta {
                    name: Some(binding_name),
                    ..ObjectMeta::default()
                },
                role_ref,
                subjects,
            }),
            AccessScope::Namespaces(namespaces) => {
                for namespace in namespaces {
                    namespace_bindings.push(RoleBinding {
                        metadata: ObjectMeta {
                            name: Some(binding_name.clone()),
                            namespace: Some(namespace.clone()),
                            ..ObjectMeta::default()
                        },
                        role_ref: role_ref.clone(),
                        subjects: subjects.clone(),
                    });
                }
            }
        }
    }
    Ok((cluster_bindings, namespace_bindings))
}
