//! Privilege-escalation prevention on RBAC writes (upstream's `policybased` storages for roles,
//! clusterroles and their bindings): a user may write only rules it already holds, unless it may
//! `escalate` the role (or `bind` the referenced role, for a binding), or is in `system:masters`.

use std::collections::BTreeSet;

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};

use super::go_format::{forbidden_status_message, quote, quote_list};
use super::rules::{compact, compact_string, uncovered};
use super::{Attributes, Policy, SYSTEM_MASTERS, UserInfo};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// One write that RBAC guards against escalation.
#[derive(Debug, Clone, Copy)]
pub enum EscalationRequest<'a> {
    /// Create or update of the Role `name` in `namespace` with these rules.
    Role {
        namespace: &'a str,
        name: &'a str,
        rules: &'a [PolicyRule],
    },
    /// Create or update of the ClusterRole `name`. `sets_aggregation_rule`: the object has an
    /// `aggregationRule` that is new (create) or changed (update), which needs full authority.
    ClusterRole {
        name: &'a str,
        rules: &'a [PolicyRule],
        sets_aggregation_rule: bool,
    },
    /// Create or update of the RoleBinding `name` in `namespace`.
    RoleBinding {
        namespace: &'a str,
        name: &'a str,
        role_ref: &'a RoleRef,
    },
    /// Create or update of the ClusterRoleBinding `name`.
    ClusterRoleBinding {
        name: &'a str,
        role_ref: &'a RoleRef,
    },
}

/// Why a write was refused; the message is the `Status` message upstream returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EscalationError {
    /// 403 Forbidden: `roles.rbac.authorization.k8s.io "r" is forbidden: user "bob" (groups=[…]) is
    /// attempting to grant RBAC permissions not currently held:\n{…}`.
    #[error("{0}")]
    Forbidden(String),
    /// 404 NotFound: the binding's roleRef names no role (`clusterroles.rbac.authorization.k8s.io
    /// "x" not found`).
    #[error("{0}")]
    RoleRefNotFound(String),
}

fn full_authority() -> Vec<PolicyRule> {
    vec![
        PolicyRule {
            api_groups: Some(vec!["*".into()]),
            resources: Some(vec!["*".into()]),
            verbs: vec!["*".into()],
            ..PolicyRule::default()
        },
        PolicyRule {
            non_resource_urls: Some(vec!["*".into()]),
            verbs: vec!["*".into()],
            ..PolicyRule::default()
        },
    ]
}

/// `ConfirmNoEscalation`: the user's rules in `namespace` must cover `rules`.
fn confirm_no_escalation(
    policy: &Policy,
    user: &UserInfo,
    namespace: &str,
    rules: &[PolicyRule],
) -> Result<(), String> {
    let (owner_rules, resolution_error) = policy.policy_rules_for(user, namespace);
    let missing = uncovered(&owner_rules, rules);
    if missing.is_empty() {
        return Ok(());
    }
    let descriptions: BTreeSet<String> = compact(missing).iter().map(compact_string).collect();
    let mut message = format!(
        "user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        quote(&user.name),
        quote_list(&user.groups),
        descriptions.into_iter().collect::<Vec<_>>().join("\n")
    );
    if let Some(error) = resolution_error {
        message.push_str(&format!("; resolution errors: [{error}]"));
    }
    Err(message)
}

fn authorized(
    policy: &Policy,
    user: &UserInfo,
    verb: &str,
    namespace: &str,
    resource: &str,
    group: &str,
    name: &str,
) -> bool {
    let attributes =
        Attributes::resource(user.clone(), verb, namespace, group, resource).with_name(name);
    policy.authorize(&attributes).is_allowed()
}

/// Whether `user` may make the write `request`, by upstream's escalation rules:
///
/// * `system:masters` may write anything;
/// * a Role/ClusterRole write passes when the user may `escalate` that role, else every rule in
///   it must be one the user holds (in the role's namespace, or cluster-wide); setting an
///   `aggregationRule` needs every permission (`must have cluster-admin privileges to use the
///   aggregationRule`);
/// * a binding passes when the user may `bind` the referenced role (in the binding's
///   namespace), else the user must hold every rule of the referenced role.
pub fn check_escalation(
    policy: &Policy,
    user: &UserInfo,
    request: &EscalationRequest<'_>,
) -> Result<(), EscalationError> {
    if user.groups.iter().any(|g| g == SYSTEM_MASTERS) {
        return Ok(());
    }
    match *request {
        EscalationRequest::Role {
            namespace,
            name,
            rules,
        } => {
            if authorized(
                policy, user, "escalate", namespace, "roles", RBAC_GROUP, name,
            ) {
                return Ok(());
            }
            confirm_no_escalation(policy, user, namespace, rules).map_err(|detail| {
                EscalationError::Forbidden(forbidden_status_message(
                    &format!("roles.{RBAC_GROUP}"),
                    name,
                    &detail,
                ))
            })
        }
        EscalationRequest::ClusterRole {
            name,
            rules,
            sets_aggregation_rule,
        } => {
            if authorized(
                policy,
                user,
                "escalate",
                "",
                "clusterroles",
                RBAC_GROUP,
                name,
            ) {
                return Ok(());
            }
            let resource = format!("clusterroles.{RBAC_GROUP}");
            if sets_aggregation_rule
                && confirm_no_escalation(policy, user, "", &full_authority()).is_err()
            {
                return Err(EscalationError::Forbidden(forbidden_status_message(
                    &resource,
                    name,
                    "must have cluster-admin privileges to use the aggregationRule",
                )));
            }
            confirm_no_escalation(policy, user, "", rules).map_err(|detail| {
                EscalationError::Forbidden(forbidden_status_message(&resource, name, &detail))
            })
        }
        EscalationRequest::RoleBinding {
            namespace,
            name,
            role_ref,
        } => check_binding(
            policy,
            user,
            namespace,
            name,
            role_ref,
            &format!("rolebindings.{RBAC_GROUP}"),
        ),
        EscalationRequest::ClusterRoleBinding { name, role_ref } => check_binding(
            policy,
            user,
            "",
            name,
            role_ref,
            &format!("clusterrolebindings.{RBAC_GROUP}"),
        ),
    }
}

fn check_binding(
    policy: &Policy,
    user: &UserInfo,
    namespace: &str,
    name: &str,
    role_ref: &RoleRef,
    resource: &str,
) -> Result<(), EscalationError> {
    let role_resource = match role_ref.kind.as_str() {
        "ClusterRole" => "clusterroles",
        "Role" => "roles",
        other => {
            return Err(EscalationError::Forbidden(forbidden_status_message(
                resource,
                name,
                &format!("unsupported role reference kind: {}", quote(other)),
            )));
        }
    };
    if authorized(
        policy,
        user,
        "bind",
        namespace,
        role_resource,
        &role_ref.api_group,
        &role_ref.name,
    ) {
        return Ok(());
    }
    // The registry's getters report a missing role by its plural resource.
    let rules = policy.role_ref_rules(role_ref, namespace).map_err(|_| {
        EscalationError::RoleRefNotFound(format!(
            "{role_resource}.{RBAC_GROUP} {} not found",
            quote(&role_ref.name)
        ))
    })?;
    confirm_no_escalation(policy, user, namespace, rules).map_err(|detail| {
        EscalationError::Forbidden(forbidden_status_message(resource, name, &detail))
    })
}
