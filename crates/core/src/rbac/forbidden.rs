//! The 403 message kube-apiserver writes when no authorizer allows a request
//! (`responsewriters.Forbidden` wrapped in `errors.NewForbidden`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, Status, StatusDetails};

use super::Attributes;
use super::go_format::{forbidden_status_message, group_resource, quote};

/// The `message` of the Forbidden `Status`, e.g.
/// `pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "default"`.
/// Non-resource requests read `forbidden: User "bob" cannot get path "/metrics"`; cluster-scoped
/// ones end `at the cluster scope`; a named object is quoted after the resource
/// (`pods "web" is forbidden: …`), and a subresource shows as `resource "pods/log"`.
pub fn forbidden_message(a: &Attributes) -> String {
    forbidden_message_with_reason(a, "")
}

/// As [`forbidden_message`], with the authorizers' reason appended (`…: reason`) when it is not
/// empty, as upstream does; RBAC's reason is empty unless a binding named a missing role.
pub fn forbidden_message_with_reason(a: &Attributes, reason: &str) -> String {
    let user = quote(&a.user.name);
    let mut detail = if !a.resource_request {
        format!("User {user} cannot {} path {}", a.verb, quote(&a.path))
    } else {
        let resource = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        let scope = if a.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace {}", quote(&a.namespace))
        };
        format!(
            "User {user} cannot {} resource {} in API group {} {scope}",
            a.verb,
            quote(&resource),
            quote(&a.api_group)
        )
    };
    if !reason.is_empty() {
        detail = format!("{detail}: {reason}");
    }
    // Upstream qualifies the Status by the request's group and resource, which a non-resource
    // request leaves empty: then it reads `forbidden: …`.
    let qualified = group_resource(&a.api_group, &a.resource);
    forbidden_status_message(&qualified, &a.name, &detail)
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// The whole 403 `Status` kube-apiserver answers: `reason: Forbidden`, `code: 403`, the message of
/// [`forbidden_message_with_reason`], and `details` naming the group, the resource (as `kind`) and
/// the object (`{}` for a non-resource request).
pub fn forbidden_status(a: &Attributes, reason: &str) -> Status {
    Status {
        code: Some(403),
        details: Some(StatusDetails {
            group: non_empty(&a.api_group),
            kind: non_empty(&a.resource),
            name: non_empty(&a.name),
            ..StatusDetails::default()
        }),
        message: Some(forbidden_message_with_reason(a, reason)),
        metadata: ListMeta::default(),
        reason: Some("Forbidden".into()),
        status: Some("Failure".into()),
    }
}
