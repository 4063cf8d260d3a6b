//! Kubernetes RBAC authorization as kube-apiserver decides it, plus EKS access policies. Pure
//! decision logic over `rbac.authorization.k8s.io/v1` objects: no I/O, no clocks.
//!
//! # Interface
//!
//! * [`Policy::new`]`(cluster_roles, roles, cluster_role_bindings, role_bindings)` indexes the
//!   four kinds of RBAC object by subject, so a decision looks only at the bindings that name
//!   the user, one of its groups or its service account.
//! * [`Policy::authorize`]`(&Attributes) -> Decision`: `Allow { reason }` with upstream's
//!   `RBAC: allowed by ClusterRoleBinding "…" of ClusterRole "…" to Group "…"`, or
//!   `NoOpinion { reason }` (empty unless a binding pointed at a missing role, as upstream).
//!   Members of `system:masters` are allowed everything, as the apiserver's privileged-group
//!   authorizer in front of RBAC does.
//! * [`Policy::rules_for`]`(&UserInfo, namespace) -> RulesReview`: the status of a
//!   `SelfSubjectRulesReview`.
//! * [`forbidden_message`]`(&Attributes)`: the message of the 403 `Status` kube-apiserver writes;
//!   [`forbidden_status`] the whole `Status`.
//! * [`aggregate`]`(&[ClusterRole])`: the clusterrole-aggregation controller.
//! * [`bootstrap_policy`]`()`: the default ClusterRoles, ClusterRoleBindings, Roles and
//!   RoleBindings kube-apiserver creates at start (vendored upstream data, see
//!   `rbac/bootstrap/PROVENANCE.md`).
//! * [`check_escalation`]`(&Policy, &UserInfo, &EscalationRequest)`: privilege-escalation
//!   prevention for Role/ClusterRole writes (`escalate` verb) and bindings (`bind` verb).
//! * [`eks_access_policies`]: the EKS access policies and the RBAC objects that give an access
//!   entry's associated policies to its user, decided by the same [`Policy`].
//!
//! Upstream sources followed: `plugin/pkg/auth/authorizer/rbac/rbac.go`,
//! `pkg/registry/rbac/validation/rule.go`, `pkg/apis/rbac/v1/evaluation_helpers.go`,
//! `component-helpers/auth/rbac/validation/policy_comparator.go`,
//! `pkg/controller/clusterroleaggregation`, `apiserver/pkg/endpoints/handlers/responsewriters`.

use std::collections::BTreeMap;

mod aggregation;
mod bootstrap;
pub mod eks_access_policies;
mod escalation;
mod forbidden;
mod go_format;
mod policy;
mod rules;

#[cfg(test)]
mod tests;

pub use aggregation::aggregate;
pub use bootstrap::{BootstrapPolicy, bootstrap_policy};
pub use escalation::{EscalationError, EscalationRequest, check_escalation};
pub use forbidden::{forbidden_message, forbidden_message_with_reason, forbidden_status};
pub use policy::{Policy, RulesReview};
pub use rules::rule_allows;

/// The group whose members the apiserver allows everything, before RBAC is asked.
pub const SYSTEM_MASTERS: &str = "system:masters";
/// The group every authenticated user is in.
pub const SYSTEM_AUTHENTICATED: &str = "system:authenticated";
/// The group of every service account.
pub const SYSTEM_SERVICE_ACCOUNTS: &str = "system:serviceaccounts";
/// The user-name prefix of service accounts: `system:serviceaccount:NAMESPACE:NAME`.
pub const SERVICE_ACCOUNT_USER_PREFIX: &str = "system:serviceaccount:";

/// Who makes a request, as the authenticator found it (`user.Info`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    pub fn new(name: impl Into<String>, groups: &[&str]) -> Self {
        Self {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Self::default()
        }
    }

    /// A service account's identity as its token authenticates it: the user
    /// `system:serviceaccount:NS:NAME` in `system:serviceaccounts`, `system:serviceaccounts:NS` and
    /// `system:authenticated`.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            name: service_account_user_name(namespace, name),
            groups: vec![
                SYSTEM_SERVICE_ACCOUNTS.to_string(),
                format!("{SYSTEM_SERVICE_ACCOUNTS}:{namespace}"),
                SYSTEM_AUTHENTICATED.to_string(),
            ],
            ..Self::default()
        }
    }
}

/// `system:serviceaccount:NS:NAME`.
pub fn service_account_user_name(namespace: &str, name: &str) -> String {
    format!("{SERVICE_ACCOUNT_USER_PREFIX}{namespace}:{name}")
}

/// One request as the authorizer sees it (`authorizer.Attributes`). For a resource request
/// `path` is unused; for a non-resource request only `user`, `verb` and `path` are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub user: UserInfo,
    pub verb: String,
    pub namespace: String,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    pub resource_request: bool,
    /// The URL path of a non-resource request, e.g. `/healthz`.
    pub path: String,
}

impl Attributes {
    /// A resource request; `namespace` empty for cluster scope.
    pub fn resource(
        user: UserInfo,
        verb: &str,
        namespace: &str,
        api_group: &str,
        resource: &str,
    ) -> Self {
        Self {
            user,
            verb: verb.into(),
            namespace: namespace.into(),
            api_group: api_group.into(),
            resource: resource.into(),
            resource_request: true,
            ..Self::default()
        }
    }

    /// A non-resource request (`/healthz`, `/version`, `/apis` …).
    pub fn non_resource(user: UserInfo, verb: &str, path: &str) -> Self {
        Self {
            user,
            verb: verb.into(),
            path: path.into(),
            ..Self::default()
        }
    }

    pub fn with_subresource(mut self, subresource: &str) -> Self {
        self.subresource = subresource.into();
        self
    }

    pub fn with_name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }
}

/// An authorizer's answer. RBAC never denies outright: what it does not allow it has no
/// opinion on, and the apiserver then answers 403 with [`forbidden_message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow { reason: String },
    NoOpinion { reason: String },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }

    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow { reason } | Decision::NoOpinion { reason } => reason,
        }
    }
}
