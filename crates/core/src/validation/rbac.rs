//! RBAC: Role, ClusterRole, RoleBinding, ClusterRoleBinding (`pkg/apis/rbac/validation`).

use serde_json::Value;

use super::field::{FieldError, go_quote, invalid, not_supported, required, shown};
use super::names::NameRule;
use super::{arr, text};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

pub(crate) fn validate_role(obj: &Value, namespaced: bool) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, rule) in arr(obj, "rules").iter().enumerate() {
        errors.extend(validate_policy_rule(
            rule,
            namespaced,
            &format!("rules[{i}]"),
        ));
    }
    if !namespaced
        && let Some(aggregation) = obj.get("aggregationRule").filter(|a| a.is_object())
        && arr(aggregation, "clusterRoleSelectors").is_empty()
    {
        errors.push(required(
            "aggregationRule.clusterRoleSelectors",
            "at least one clusterRoleSelector required if aggregationRule is non-nil",
        ));
    }
    errors
}

fn validate_policy_rule(rule: &Value, namespaced: bool, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if arr(rule, "verbs").is_empty() {
        errors.push(required(
            &format!("{path}.verbs"),
            "verbs must contain at least one value",
        ));
    }
    let urls = arr(rule, "nonResourceURLs");
    if !urls.is_empty() {
        let shown_urls = Value::Array(urls.to_vec());
        if namespaced {
            errors.push(invalid(
                &format!("{path}.nonResourceURLs"),
                shown_urls.clone(),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if ["apiGroups", "resources", "resourceNames"]
            .iter()
            .any(|k| !arr(rule, k).is_empty())
        {
            errors.push(invalid(
                &format!("{path}.nonResourceURLs"),
                shown_urls,
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return errors;
    }
    if arr(rule, "apiGroups").is_empty() {
        errors.push(required(
            &format!("{path}.apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if arr(rule, "resources").is_empty() {
        errors.push(required(
            &format!("{path}.resources"),
            "resource rules must supply at least one resource",
        ));
    }
    if !arr(rule, "resourceNames").is_empty() && arr(rule, "resources").len() > 1 {
        errors.push(required(
            &format!("{path}.resourceNames"),
            "resource names cannot apply to multiple resources",
        ));
    }
    errors
}

pub(crate) fn validate_binding(obj: &Value, namespaced: bool) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let role_ref = &obj["roleRef"];
    let group = text(role_ref, "apiGroup");
    if group != RBAC_GROUP {
        errors.push(not_supported("roleRef.apiGroup", group, &[RBAC_GROUP]));
    }
    let kind = text(role_ref, "kind");
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&kind) {
        errors.push(not_supported("roleRef.kind", kind, kinds));
    }
    let name = text(role_ref, "name");
    if name.is_empty() {
        errors.push(required("roleRef.name", ""));
    } else {
        for msg in NameRule::PathSegment.errors(name, false) {
            errors.push(invalid("roleRef.name", name, &msg));
        }
    }
    for (i, subject) in arr(obj, "subjects").iter().enumerate() {
        errors.extend(validate_subject(
            subject,
            namespaced,
            &format!("subjects[{i}]"),
        ));
    }
    errors
}

fn validate_subject(subject: &Value, namespaced: bool, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let name = text(subject, "name");
    if name.is_empty() {
        errors.push(required(&format!("{path}.name"), ""));
    }
    let group = text(subject, "apiGroup");
    match text(subject, "kind") {
        "ServiceAccount" => {
            if !name.is_empty() {
                for msg in NameRule::Dns1123Subdomain.errors(name, false) {
                    errors.push(invalid(&format!("{path}.name"), name, &msg));
                }
            }
            if !group.is_empty() {
                errors.push(not_supported(&format!("{path}.apiGroup"), group, &[""]));
            }
            if !namespaced && text(subject, "namespace").is_empty() {
                errors.push(required(&format!("{path}.namespace"), ""));
            }
        }
        // An empty apiGroup is defaulted to the RBAC group for users and groups.
        kind @ ("User" | "Group") => {
            if name.is_empty() {
                errors.push(invalid(
                    &format!("{path}.name"),
                    name,
                    &format!("{} name cannot be empty", kind.to_lowercase()),
                ));
            }
            if !group.is_empty() && group != RBAC_GROUP {
                errors.push(not_supported(
                    &format!("{path}.apiGroup"),
                    group,
                    &[RBAC_GROUP],
                ));
            }
        }
        other => errors.push(not_supported(
            &format!("{path}.kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
    errors
}

/// A binding's `roleRef` may not change: `roleRef: Invalid value: rbac.RoleRef{…}: cannot change
/// roleRef`.
pub(crate) fn validate_binding_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let fields = |v: &Value| {
        let r = &v["roleRef"];
        (
            text(r, "apiGroup").to_string(),
            text(r, "kind").to_string(),
            text(r, "name").to_string(),
        )
    };
    let (group, kind, name) = fields(new);
    if fields(old) == (group.clone(), kind.clone(), name.clone()) {
        return Vec::new();
    }
    vec![invalid(
        "roleRef",
        shown(format!(
            "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
            go_quote(&group),
            go_quote(&kind),
            go_quote(&name)
        )),
        "cannot change roleRef",
    )]
}
