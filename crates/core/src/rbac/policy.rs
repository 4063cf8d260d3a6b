//! The RBAC objects of one cluster, indexed by subject, and the decisions over them.

use std::collections::HashMap;

use k8s_openapi::api::authorization::v1::{
    NonResourceRule, ResourceRule, SubjectRulesReviewStatus,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

use super::go_format::{aggregate_errors, quote};
use super::rules::rule_allows;
use super::{Attributes, Decision, SYSTEM_MASTERS, UserInfo, service_account_user_name};

/// The status of a `SelfSubjectRulesReview`: `resourceRules`, `nonResourceRules`, `incomplete`
/// and `evaluationError`.
pub type RulesReview = SubjectRulesReviewStatus;

/// One binding, cluster-wide (`namespace` empty) or in a namespace.
#[derive(Debug)]
struct Binding {
    name: String,
    namespace: String,
    role_ref: RoleRef,
    subjects: Vec<Subject>,
}

/// Positions (in the order the bindings were given) of the bindings naming a user or a group.
/// Service-account subjects are filed under their user name, `system:serviceaccount:NS:NAME`.
#[derive(Debug, Default)]
struct SubjectIndex {
    by_user: HashMap<String, Vec<usize>>,
    by_group: HashMap<String, Vec<usize>>,
}

impl SubjectIndex {
    fn add(&mut self, position: usize, subject: &Subject, binding_namespace: &str) {
        let key = match subject.kind.as_str() {
            "User" => (&mut self.by_user, subject.name.clone()),
            "Group" => (&mut self.by_group, subject.name.clone()),
            "ServiceAccount" => {
                // A RoleBinding's service account without a namespace is one of its own namespace.
                let namespace = subject
                    .namespace
                    .as_deref()
                    .filter(|ns| !ns.is_empty())
                    .unwrap_or(binding_namespace);
                if namespace.is_empty() {
                    return;
                }
                (
                    &mut self.by_user,
                    service_account_user_name(namespace, &subject.name),
                )
            }
            _ => return,
        };
        let (map, name) = key;
        let positions = map.entry(name).or_default();
        if positions.last() != Some(&position) {
            positions.push(position);
        }
    }

    /// The bindings naming the user or one of its groups, in the order they were given.
    fn candidates(&self, user: &UserInfo) -> Vec<usize> {
        let mut found: Vec<usize> = Vec::new();
        if let Some(p) = self.by_user.get(&user.name) {
            found.extend_from_slice(p);
        }
        for group in &user.groups {
            if let Some(p) = self.by_group.get(group) {
                found.extend_from_slice(p);
            }
        }
        found.sort_unstable();
        found.dedup();
        found
    }
}

#[derive(Debug, Default)]
struct BindingSet {
    bindings: Vec<Binding>,
    index: SubjectIndex,
}

impl BindingSet {
    fn push(&mut self, binding: Binding) {
        let position = self.bindings.len();
        for subject in &binding.subjects {
            self.index.add(position, subject, &binding.namespace);
        }
        self.bindings.push(binding);
    }
}

/// ClusterRoles, Roles, ClusterRoleBindings and RoleBindings, indexed for decisions. Rules are
/// used as stored: aggregated ClusterRoles need [`super::aggregate`] first, as the
/// aggregation controller fills them in a real cluster.
#[derive(Debug, Default)]
pub struct Policy {
    cluster_roles: HashMap<String, Vec<PolicyRule>>,
    roles: HashMap<String, HashMap<String, Vec<PolicyRule>>>,
    cluster_bindings: BindingSet,
    namespace_bindings: HashMap<String, BindingSet>,
}

/// Where a rule came from, for the `allowed by …` reason.
struct Source<'a> {
    binding: &'a Binding,
    subject: &'a Subject,
}

impl Source<'_> {
    fn describe(&self) -> String {
        let b = self.binding;
        let subject = match self.subject.kind.as_str() {
            "ServiceAccount" => {
                let namespace = match self.subject.namespace.as_deref() {
                    Some(ns) if !ns.is_empty() => ns,
                    _ => &b.namespace,
                };
                format!(
                    "{} {}",
                    self.subject.kind,
                    quote(&format!("{}/{namespace}", self.subject.name))
                )
            }
            _ => format!("{} {}", self.subject.kind, quote(&self.subject.name)),
        };
        if b.namespace.is_empty() {
            format!(
                "ClusterRoleBinding {} of {} {} to {subject}",
                quote(&b.name),
                b.role_ref.kind,
                quote(&b.role_ref.name)
            )
        } else {
            format!(
                "RoleBinding {} of {} {} to {subject}",
                quote(&format!("{}/{}", b.name, b.namespace)),
                b.role_ref.kind,
                quote(&b.role_ref.name)
            )
        }
    }
}

fn applies_to(user: &UserInfo, subject: &Subject, binding_namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => user.name == subject.name,
        "Group" => user.groups.contains(&subject.name),
        "ServiceAccount" => {
            let namespace = match subject.namespace.as_deref() {
                Some(ns) if !ns.is_empty() => ns,
                _ => binding_namespace,
            };
            !namespace.is_empty()
                && user.name == service_account_user_name(namespace, &subject.name)
        }
        _ => false,
    }
}

impl Policy {
    pub fn new(
        cluster_roles: Vec<ClusterRole>,
        roles: Vec<Role>,
        cluster_role_bindings: Vec<ClusterRoleBinding>,
        role_bindings: Vec<RoleBinding>,
    ) -> Self {
        let mut policy = Policy::default();
        for role in cluster_roles {
            let name = role.metadata.name.unwrap_or_default();
            policy
                .cluster_roles
                .insert(name, role.rules.unwrap_or_default());
        }
        for role in roles {
            let namespace = role.metadata.namespace.unwrap_or_default();
            let name = role.metadata.name.unwrap_or_default();
            policy
                .roles
                .entry(namespace)
                .or_default()
                .insert(name, role.rules.unwrap_or_default());
        }
        for binding in cluster_role_bindings {
            policy.cluster_bindings.push(Binding {
                name: binding.metadata.name.unwrap_or_default(),
                namespace: String::new(),
                role_ref: binding.role_ref,
                subjects: binding.subjects.unwrap_or_default(),
            });
        }
        for binding in role_bindings {
            let namespace = binding.metadata.namespace.unwrap_or_default();
            if namespace.is_empty() {
                continue;
            }
            policy
                .namespace_bindings
                .entry(namespace.clone())
                .or_default()
                .push(Binding {
                    name: binding.metadata.name.unwrap_or_default(),
                    namespace,
                    role_ref: binding.role_ref,
                    subjects: binding.subjects.unwrap_or_default(),
                });
        }
        policy
    }

    /// The rules a role reference grants, or the error upstream's listers give for a missing role.
    pub(crate) fn role_ref_rules(
        &self,
        role_ref: &RoleRef,
        namespace: &str,
    ) -> Result<&[PolicyRule], String> {
        match role_ref.kind.as_str() {
            "Role" => self
                .roles
                .get(namespace)
                .and_then(|roles| roles.get(&role_ref.name))
                .map(Vec::as_slice)
                .ok_or_else(|| {
                    format!(
                        "role.rbac.authorization.k8s.io {} not found",
                        quote(&role_ref.name)
                    )
                }),
            "ClusterRole" => self
                .cluster_roles
                .get(&role_ref.name)
                .map(Vec::as_slice)
                .ok_or_else(|| {
                    format!(
                        "clusterrole.rbac.authorization.k8s.io {} not found",
                        quote(&role_ref.name)
                    )
                }),
            other => Err(format!("unsupported role reference kind: {}", quote(other))),
        }
    }

    /// Calls `visit` with every rule that applies to `user` in `namespace` (cluster bindings
    /// first, then the namespace's, each in the order given) until it returns `false`; errors
    /// resolving role references are collected in `errors`.
    fn visit_rules<'a>(
        &'a self,
        user: &UserInfo,
        namespace: &str,
        errors: &mut Vec<String>,
        mut visit: impl FnMut(Source<'a>, &'a PolicyRule) -> bool,
    ) {
        let namespace_set = if namespace.is_empty() {
            None
        } else {
            self.namespace_bindings.get(namespace)
        };
        let sets = std::iter::once(&self.cluster_bindings).chain(namespace_set);
        for set in sets {
            for position in set.index.candidates(user) {
                let binding = &set.bindings[position];
                let Some(subject) = binding
                    .subjects
                    .iter()
                    .find(|s| applies_to(user, s, &binding.namespace))
                else {
                    continue;
                };
                let rules = match self.role_ref_rules(&binding.role_ref, &binding.namespace) {
                    Ok(rules) => rules,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                };
                for rule in rules {
                    if !visit(Source { binding, subject }, rule) {
                        return;
                    }
                }
            }
        }
    }

    /// Whether RBAC allows the request, with upstream's reason.
    pub fn authorize(&self, a: &Attributes) -> Decision {
        if a.user.groups.iter().any(|g| g == SYSTEM_MASTERS) {
            return Decision::Allow {
                reason: String::new(),
            };
        }
        let mut errors = Vec::new();
        let mut allowed_by = None;
        self.visit_rules(&a.user, &a.namespace, &mut errors, |source, rule| {
            if rule_allows(a, rule) {
                allowed_by = Some(source.describe());
                false
            } else {
                true
            }
        });
        match allowed_by {
            Some(source) => Decision::Allow {
                reason: format!("RBAC: allowed by {source}"),
            },
            None if errors.is_empty() => Decision::NoOpinion {
                reason: String::new(),
            },
            None => Decision::NoOpinion {
                reason: format!("RBAC: {}", aggregate_errors(&errors)),
            },
        }
    }

    /// Every rule that applies to `user` in `namespace` (cluster-wide ones included), and the
    /// joined resolution errors.
    pub(crate) fn policy_rules_for(
        &self,
        user: &UserInfo,
        namespace: &str,
    ) -> (Vec<PolicyRule>, Option<String>) {
        let mut errors = Vec::new();
        let mut rules = Vec::new();
        self.visit_rules(user, namespace, &mut errors, |_, rule| {
            rules.push(rule.clone());
            true
        });
        let error = (!errors.is_empty()).then(|| aggregate_errors(&errors));
        (rules, error)
    }

    /// What a `SelfSubjectRulesReview` for `namespace` reports to `user`: each applicable rule
    /// with resources as a resource rule, each with non-resource URLs as a non-resource rule.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> RulesReview {
        let (rules, evaluation_error) = self.policy_rules_for(user, namespace);
        let mut review = RulesReview {
            evaluation_error,
            ..RulesReview::default()
        };
        for rule in rules {
            if rule.resources.as_ref().is_some_and(|r| !r.is_empty()) {
                review.resource_rules.push(ResourceRule {
                    verbs: rule.verbs.clone(),
                    api_groups: rule.api_groups.clone(),
                    resources: rule.resources.clone(),
                    resource_names: rule.resource_names.clone(),
                });
            }
            if rule
                .non_resource_urls
                .as_ref()
                .is_some_and(|u| !u.is_empty())
            {
                review.non_resource_rules.push(NonResourceRule {
                    verbs: rule.verbs,
                    non_resource_urls: rule.non_resource_urls,
                });
            }
        }
        review
    }
}
