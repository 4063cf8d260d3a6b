//! kube-apiserver's object validation, as pure functions over JSON objects.
//!
//! The API calls [`validate_create`] on a new object and [`validate_update`] on a replacement,
//! both **after defaulting**, and answers a non-empty list with a 422 `Status` whose message is
//! [`invalid_message`] and whose `details.causes` are [`causes`] — the same words, field paths and
//! reasons kube-apiserver 1.31 gives (`field.Error`, `apierrors.NewInvalid`).
//!
//! ```text
//! validate_create(group, kind, obj)            -> Vec<FieldError>   // empty: valid
//! validate_update(group, kind, old, new)       -> Vec<FieldError>   // create rules + immutability
//! invalid_message(group, kind, name, &errors)  -> String            // `Deployment.apps "x" is invalid: …`
//! causes(&errors)                              -> Vec<Value>        // [{reason, message, field}]
//! FieldError { error_type, field, value, detail }.message() / .reason()
//! ```
//!
//! What is covered, kind by kind, is listed in [`KINDS`]; kinds not listed validate to no errors
//! (CRDs and the API's virtual kinds have rules of their own). Fields upstream defaults are
//! checked when present and not required when absent, so objects defaulted less fully than
//! upstream's are not refused for it. Quantities and other values that fail to decode are left
//! to decoding, which answers 400 before validation runs upstream too. Nothing here does I/O, so
//! rules that need other objects (a single `globalDefault` PriorityClass, quota usage) are not
//! here.

mod admissionregistration;
mod config;
mod field;
mod meta;
mod names;
mod networking;
mod pod;
mod policy;
mod rbac;
mod resources;
mod service;
mod storage;
mod workloads;

#[cfg(test)]
mod tests;

use serde_json::Value;

pub use field::{ErrorType, FieldError, causes, go_quote, invalid_message, shown};
pub use names::{dns1035_label_errors, dns1123_label_errors, dns1123_subdomain_errors};

/// `ValidateObjectMeta` for a kind whose rules live outside this module (a
/// CustomResourceDefinition, whose name must be `plural.group`): `name_errors(name, prefix)` is
/// its `ValidateNameFunc`.
pub fn validate_object_meta_named(
    obj: &Value,
    namespaced: bool,
    name_errors: &dyn Fn(&str, bool) -> Vec<String>,
    path: &str,
) -> Vec<FieldError> {
    meta::validate_object_meta_with(obj, namespaced, name_errors, path)
}

/// `ValidateObjectMetaUpdate` for a kind whose rules live outside this module.
pub fn validate_object_meta_update(new: &Value, old: &Value, path: &str) -> Vec<FieldError> {
    meta::validate_object_meta_update(new, old, path)
}
use names::NameRule;

/// One validated kind: its API group, whether it is namespaced, how its names are checked, and
/// its rules beyond `metadata`.
struct KindRules {
    group: &'static str,
    kind: &'static str,
    namespaced: bool,
    name: NameRule,
    create: fn(&Value) -> Vec<FieldError>,
    update: fn(&Value, &Value) -> Vec<FieldError>,
}

fn none(_: &Value) -> Vec<FieldError> {
    Vec::new()
}

/// An APIService is named `VERSION.GROUP` (`v1.` for the core group), as the aggregator
/// requires (`ValidateAPIService`).
fn api_service(obj: &Value) -> Vec<FieldError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let expected = format!(
        "{}.{}",
        obj["spec"]["version"].as_str().unwrap_or(""),
        obj["spec"]["group"].as_str().unwrap_or("")
    );
    if name == expected {
        return Vec::new();
    }
    vec![field::invalid(
        "metadata.name",
        name,
        &format!("must be {expected}"),
    )]
}

fn no_update(_: &Value, _: &Value) -> Vec<FieldError> {
    Vec::new()
}

fn pod(obj: &Value) -> Vec<FieldError> {
    pod::validate_pod_spec(&obj["spec"], "spec")
}

fn role(obj: &Value) -> Vec<FieldError> {
    rbac::validate_role(obj, true)
}

fn cluster_role(obj: &Value) -> Vec<FieldError> {
    rbac::validate_role(obj, false)
}

fn role_binding(obj: &Value) -> Vec<FieldError> {
    rbac::validate_binding(obj, true)
}

fn cluster_role_binding(obj: &Value) -> Vec<FieldError> {
    rbac::validate_binding(obj, false)
}

fn storage_class(obj: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let provisioner = text(obj, "provisioner");
    if provisioner.is_empty() {
        errors.push(field::required("provisioner", ""));
    } else {
        if provisioner.len() > 63 {
            errors.push(field::too_long("provisioner", 63));
        }
        for msg in names::qualified_name_errors(&provisioner.to_lowercase()) {
            errors.push(field::invalid("provisioner", provisioner, &msg));
        }
    }
    if let Some(policy) = obj.get("reclaimPolicy").and_then(Value::as_str) {
        errors.extend(pod::one_of(policy, &["Delete", "Retain"], "reclaimPolicy"));
    }
    if let Some(mode) = obj.get("volumeBindingMode").and_then(Value::as_str) {
        errors.extend(pod::one_of(
            mode,
            &["Immediate", "WaitForFirstConsumer"],
            "volumeBindingMode",
        ));
    }
    errors
}

fn storage_class_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if old.get("parameters") != new.get("parameters") {
        errors.push(field::forbidden(
            "parameters",
            "updates to parameters are forbidden.",
        ));
    }
    for key in ["provisioner", "reclaimPolicy", "volumeBindingMode"] {
        if let (Some(o), Some(n)) = (old.get(key), new.get(key))
            && o != n
        {
            let message = if key == "provisioner" {
                "updates to provisioner are forbidden."
            } else if key == "reclaimPolicy" {
                "updates to reclaimPolicy are forbidden."
            } else {
                "field is immutable"
            };
            errors.push(if key == "volumeBindingMode" {
                field::invalid(key, n.clone(), message)
            } else {
                field::forbidden(key, message)
            });
        }
    }
    errors
}

const fn rules(
    group: &'static str,
    kind: &'static str,
    namespaced: bool,
    name: NameRule,
    create: fn(&Value) -> Vec<FieldError>,
    update: fn(&Value, &Value) -> Vec<FieldError>,
) -> KindRules {
    KindRules {
        group,
        kind,
        namespaced,
        name,
        create,
        update,
    }
}

use NameRule::{Dns1035Label, Dns1123Label, Dns1123Subdomain, PathSegment};

/// Every kind validated here. `update` holds the checks an update adds to the create rules
/// (immutable fields); metadata rules apply to all.
const KINDS: &[KindRules] = &[
    rules(
        "",
        "Pod",
        true,
        Dns1123Subdomain,
        pod,
        pod::validate_pod_update,
    ),
    rules(
        "",
        "ConfigMap",
        true,
        Dns1123Subdomain,
        config::validate_config_map,
        config::validate_config_map_update,
    ),
    rules(
        "",
        "Secret",
        true,
        Dns1123Subdomain,
        config::validate_secret,
        config::validate_secret_update,
    ),
    rules(
        "",
        "Service",
        true,
        Dns1035Label,
        service::validate_service,
        service::validate_service_update,
    ),
    rules(
        "",
        "Namespace",
        false,
        Dns1123Label,
        service::validate_namespace,
        no_update,
    ),
    rules(
        "",
        "ServiceAccount",
        true,
        Dns1123Subdomain,
        none,
        no_update,
    ),
    rules(
        "",
        "ReplicationController",
        true,
        Dns1123Subdomain,
        workloads::validate_replication_controller,
        no_update,
    ),
    rules(
        "",
        "PersistentVolumeClaim",
        true,
        Dns1123Subdomain,
        storage::validate_persistent_volume_claim,
        storage::validate_persistent_volume_claim_update,
    ),
    rules(
        "",
        "ResourceQuota",
        true,
        Dns1123Subdomain,
        storage::validate_resource_quota,
        no_update,
    ),
    rules(
        "",
        "LimitRange",
        true,
        Dns1123Subdomain,
        storage::validate_limit_range,
        no_update,
    ),
    rules("", "Endpoints", true, Dns1123Subdomain, none, no_update),
    rules("", "Node", false, Dns1123Subdomain, none, no_update),
    rules(
        "apps",
        "Deployment",
        true,
        Dns1123Subdomain,
        workloads::validate_deployment,
        workloads::immutable_selector,
    ),
    rules(
        "apps",
        "ReplicaSet",
        true,
        Dns1123Subdomain,
        workloads::validate_replica_set,
        workloads::immutable_selector,
    ),
    rules(
        "apps",
        "StatefulSet",
        true,
        Dns1123Label,
        workloads::validate_stateful_set,
        workloads::validate_stateful_set_update,
    ),
    rules(
        "apps",
        "DaemonSet",
        true,
        Dns1123Subdomain,
        workloads::validate_daemon_set,
        workloads::immutable_selector,
    ),
    rules(
        "batch",
        "Job",
        true,
        Dns1123Subdomain,
        workloads::validate_job,
        workloads::validate_job_update,
    ),
    rules(
        "batch",
        "CronJob",
        true,
        Dns1123Subdomain,
        workloads::validate_cron_job,
        no_update,
    ),
    rules(
        "rbac.authorization.k8s.io",
        "Role",
        true,
        PathSegment,
        role,
        no_update,
    ),
    rules(
        "rbac.authorization.k8s.io",
        "ClusterRole",
        false,
        PathSegment,
        cluster_role,
        no_update,
    ),
    rules(
        "rbac.authorization.k8s.io",
        "RoleBinding",
        true,
        PathSegment,
        role_binding,
        rbac::validate_binding_update,
    ),
    rules(
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        false,
        PathSegment,
        cluster_role_binding,
        rbac::validate_binding_update,
    ),
    rules(
        "policy",
        "PodDisruptionBudget",
        true,
        Dns1123Subdomain,
        policy::validate_pod_disruption_budget,
        no_update,
    ),
    rules(
        "autoscaling",
        "HorizontalPodAutoscaler",
        true,
        Dns1123Subdomain,
        policy::validate_horizontal_pod_autoscaler,
        no_update,
    ),
    rules(
        "networking.k8s.io",
        "Ingress",
        true,
        Dns1123Subdomain,
        networking::validate_ingress,
        no_update,
    ),
    rules(
        "networking.k8s.io",
        "NetworkPolicy",
        true,
        Dns1123Subdomain,
        networking::validate_network_policy,
        no_update,
    ),
    rules(
        "networking.k8s.io",
        "IngressClass",
        false,
        Dns1123Subdomain,
        none,
        no_update,
    ),
    rules(
        "storage.k8s.io",
        "StorageClass",
        false,
        Dns1123Subdomain,
        storage_class,
        storage_class_update,
    ),
    rules(
        "scheduling.k8s.io",
        "PriorityClass",
        false,
        Dns1123Subdomain,
        policy::validate_priority_class,
        policy::validate_priority_class_update,
    ),
    rules(
        "apiregistration.k8s.io",
        "APIService",
        false,
        PathSegment,
        api_service,
        no_update,
    ),
    rules(
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        false,
        Dns1123Subdomain,
        admissionregistration::validate_mutating,
        admissionregistration::validate_mutating_update,
    ),
    rules(
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        false,
        Dns1123Subdomain,
        admissionregistration::validate_validating,
        admissionregistration::validate_validating_update,
    ),
    rules(
        "coordination.k8s.io",
        "Lease",
        true,
        Dns1123Subdomain,
        policy::validate_lease,
        no_update,
    ),
];

fn kind_rules(group: &str, kind: &str) -> Option<&'static KindRules> {
    KINDS.iter().find(|r| r.group == group && r.kind == kind)
}

/// Errors of a new object of this group/kind, metadata included. Empty: valid, or a kind not
/// validated here.
/// Whether this module has kube-apiserver's rules for the kind (others are not validated).
pub fn knows(group: &str, kind: &str) -> bool {
    kind_rules(group, kind).is_some()
}

pub fn validate_create(group: &str, kind: &str, obj: &Value) -> Vec<FieldError> {
    let Some(rules) = kind_rules(group, kind) else {
        return Vec::new();
    };
    let mut errors = meta::validate_object_meta(obj, rules.namespaced, rules.name, "metadata");
    errors.extend((rules.create)(obj));
    errors
}

/// Errors of an update: what [`validate_create`] checks on `new` (except the name's format,
/// which cannot change), plus the fields that may not change from `old`.
pub fn validate_update(group: &str, kind: &str, old: &Value, new: &Value) -> Vec<FieldError> {
    let Some(rules) = kind_rules(group, kind) else {
        return Vec::new();
    };
    let meta_errors = meta::validate_object_meta_update(new, old, "metadata");
    if rules.group == "rbac.authorization.k8s.io" {
        // RBAC checks the object first, then its metadata and roleRef.
        let mut errors = (rules.create)(new);
        errors.extend(meta_errors);
        errors.extend((rules.update)(old, new));
        return errors;
    }
    let mut errors = meta_errors;
    errors.extend((rules.update)(old, new));
    // A webhook configuration's update has its own form of the create rules (upstream relaxes
    // them by what the stored configuration had).
    if rules.group != "admissionregistration.k8s.io" {
        errors.extend((rules.create)(new));
    }
    errors
}

// --- JSON access shared by the rule modules ---------------------------------------------------

/// A string field, `""` when absent or not a string.
fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A list field, empty when absent or not a list.
fn arr<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}

/// An integer field.
fn int(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}
