//! Unit tests of the RBAC module, by concern; shared fixtures below.

mod bootstrap;
mod coverage;
mod decisions;
mod eks;
mod escalation;
mod forbidden;
mod rules_review;

use k8s_openapi::api::authorization::v1::{NonResourceRule, ResourceRule};
use k8s_openapi::api::rbac::v1::{
    AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef,
    Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::eks_access_policies::{
    AccessPolicyError, AccessScope, AssociatedAccessPolicy, access_entry_bindings, access_policies,
    access_policy_cluster_roles, policy_arn,
};
use super::*;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..PolicyRule::default()
    }
}

fn url_rule(urls: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        non_resource_urls: Some(strings(urls)),
        verbs: strings(verbs),
        ..PolicyRule::default()
    }
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(String::from),
        ..ObjectMeta::default()
    }
}

fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: meta(name, None),
        rules: Some(rules),
        aggregation_rule: None,
    }
}

fn role(namespace: &str, name: &str, rules: Vec<PolicyRule>) -> Role {
    Role {
        metadata: meta(name, Some(namespace)),
        rules: Some(rules),
    }
}

fn subject(kind: &str, name: &str, namespace: Option<&str>) -> Subject {
    Subject {
        api_group: (kind != "ServiceAccount").then(|| "rbac.authorization.k8s.io".to_string()),
        kind: kind.into(),
        name: name.into(),
        namespace: namespace.map(String::from),
    }
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: name.into(),
    }
}

fn cluster_binding(name: &str, role: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(name, None),
        role_ref: role_ref("ClusterRole", role),
        subjects: Some(subjects),
    }
}

fn binding(
    namespace: &str,
    name: &str,
    kind: &str,
    role: &str,
    subjects: Vec<Subject>,
) -> RoleBinding {
    RoleBinding {
        metadata: meta(name, Some(namespace)),
        role_ref: role_ref(kind, role),
        subjects: Some(subjects),
    }
}

fn bob() -> UserInfo {
    UserInfo::new("bob", &["system:authenticated"])
}

fn allowed(policy: &Policy, a: &Attributes) -> bool {
    policy.authorize(a).is_allowed()
}

fn user_with_role_in(role: &str, namespace: &str) -> (Policy, UserInfo) {
    let b = bootstrap_policy();
    let mut bindings = b.role_bindings.clone();
    bindings.push(binding(
        namespace,
        "bob-binding",
        "ClusterRole",
        role,
        vec![subject("User", "bob", None)],
    ));
    (
        Policy::new(
            aggregate(&b.cluster_roles),
            b.roles,
            b.cluster_role_bindings,
            bindings,
        ),
        bob(),
    )
}
