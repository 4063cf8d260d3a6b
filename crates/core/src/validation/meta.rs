//! `ObjectMeta` rules every kind shares (apimachinery `api/validation/objectmeta.go`, plus core's
//! finalizer-name check).

use serde_json::{Map, Value};

use super::field::{FieldError, forbidden, invalid, required, too_long};
use super::names::{NameRule, label_value_errors, qualified_name_errors};

/// Total bytes of annotation keys and values.
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

fn text<'a>(meta: &'a Value, key: &str) -> &'a str {
    meta.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `ValidateObjectMeta` on create: name (or generateName), namespace, labels, annotations,
/// ownerReferences and finalizers.
pub(crate) fn validate_object_meta(
    obj: &Value,
    namespaced: bool,
    rule: NameRule,
    path: &str,
) -> Vec<FieldError> {
    validate_object_meta_with(
        obj,
        namespaced,
        &|name, prefix| rule.errors(name, prefix),
        path,
    )
}

/// [`validate_object_meta`] with a kind's own name check (`ValidateNameFunc`): `name_errors(name,
/// prefix)` gives the messages for a name, or a generateName when `prefix`.
pub(crate) fn validate_object_meta_with(
    obj: &Value,
    namespaced: bool,
    name_errors: &dyn Fn(&str, bool) -> Vec<String>,
    path: &str,
) -> Vec<FieldError> {
    let meta = &obj["metadata"];
    let mut errors = Vec::new();
    let generate_name = text(meta, "generateName");
    if !generate_name.is_empty() {
        for msg in name_errors(generate_name, true) {
            errors.push(invalid(
                &format!("{path}.generateName"),
                generate_name,
                &msg,
            ));
        }
    }
    let name = text(meta, "name");
    if name.is_empty() {
        errors.push(required(
            &format!("{path}.name"),
            "name or generateName is required",
        ));
    } else {
        for msg in name_errors(name, false) {
            errors.push(invalid(&format!("{path}.name"), name, &msg));
        }
    }
    errors.extend(common(meta, namespaced, path));
    errors
}

fn common(meta: &Value, namespaced: bool, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let namespace = text(meta, "namespace");
    if namespaced {
        if namespace.is_empty() {
            errors.push(required(&format!("{path}.namespace"), ""));
        } else {
            for msg in NameRule::Dns1123Label.errors(namespace, false) {
                errors.push(invalid(&format!("{path}.namespace"), namespace, &msg));
            }
        }
    } else if !namespace.is_empty() {
        errors.push(forbidden(
            &format!("{path}.namespace"),
            "not allowed on this type",
        ));
    }
    if let Some(generation) = meta.get("generation").and_then(Value::as_i64)
        && generation < 0
    {
        errors.push(invalid(
            &format!("{path}.generation"),
            generation,
            "must be greater than or equal to 0",
        ));
    }
    errors.extend(validate_labels(
        meta.get("labels").and_then(Value::as_object),
        &format!("{path}.labels"),
    ));
    errors.extend(validate_annotations(
        meta.get("annotations").and_then(Value::as_object),
        &format!("{path}.annotations"),
    ));
    errors.extend(validate_owner_references(
        meta.get("ownerReferences").and_then(Value::as_array),
        &format!("{path}.ownerReferences"),
    ));
    errors.extend(validate_finalizers(
        meta.get("finalizers").and_then(Value::as_array),
        &format!("{path}.finalizers"),
    ));
    errors
}

/// `ValidateLabels`: qualified-name keys and label values, both reported against the map's path.
pub(crate) fn validate_labels(labels: Option<&Map<String, Value>>, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (key, value) in labels.into_iter().flatten() {
        for msg in qualified_name_errors(key) {
            errors.push(invalid(path, key.as_str(), &msg));
        }
        let value = value.as_str().unwrap_or("");
        for msg in label_value_errors(value) {
            errors.push(invalid(path, value, &msg));
        }
    }
    errors
}

/// `ValidateAnnotations`: keys are qualified names (case ignored), and keys plus values hold at
/// most 256 KiB.
pub(crate) fn validate_annotations(
    annotations: Option<&Map<String, Value>>,
    path: &str,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut total = 0usize;
    for (key, value) in annotations.into_iter().flatten() {
        for msg in qualified_name_errors(&key.to_lowercase()) {
            errors.push(invalid(path, key.as_str(), &msg));
        }
        total += key.len() + value.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errors.push(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errors
}

fn validate_owner_references(refs: Option<&Vec<Value>>, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut first_controller: Option<String> = None;
    for reference in refs.into_iter().flatten() {
        let api_version = text(reference, "apiVersion");
        let kind = text(reference, "kind");
        let version = api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() || api_version.split('/').count() > 2 {
            errors.push(invalid(
                &format!("{path}.apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        for (key, value) in [
            ("kind", kind),
            ("name", text(reference, "name")),
            ("uid", text(reference, "uid")),
        ] {
            if value.is_empty() {
                errors.push(invalid(
                    &format!("{path}.{key}"),
                    value,
                    "must not be empty",
                ));
            }
        }
        if api_version == "v1" && kind == "Event" {
            errors.push(invalid(
                path,
                reference.clone(),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if reference.get("controller").and_then(Value::as_bool) == Some(true) {
            let current = format!("{kind}/{}", text(reference, "name"));
            match &first_controller {
                Some(first) => errors.push(invalid(
                    path,
                    Value::Array(refs.cloned().unwrap_or_default()),
                    &format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                    ),
                )),
                None => first_controller = Some(current),
            }
        }
    }
    errors
}

fn validate_finalizers(finalizers: Option<&Vec<Value>>, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let names: Vec<&str> = finalizers
        .into_iter()
        .flatten()
        .map(|f| f.as_str().unwrap_or(""))
        .collect();
    for name in &names {
        for msg in qualified_name_errors(name) {
            errors.push(invalid(path, *name, &msg));
        }
    }
    if names.contains(&"orphan") && names.contains(&"foregroundDeletion") {
        errors.push(invalid(
            path,
            Value::Array(names.iter().map(|n| Value::from(*n)).collect()),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    // core's `validateKubeFinalizerName`: names without a domain must be standard ones.
    // It re-runs the qualified-name check against the indexed path, so a bad name is reported
    // twice, as upstream does.
    for (i, name) in names.iter().enumerate() {
        let item = format!("{path}[{i}]");
        for msg in qualified_name_errors(name) {
            errors.push(invalid(&item, *name, &msg));
        }
        if !name.contains('/') && !STANDARD_FINALIZERS.contains(name) {
            errors.push(invalid(
                &item,
                *name,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    errors
}

/// Finalizer names that need no domain (`helper.IsStandardFinalizerName`).
const STANDARD_FINALIZERS: [&str; 3] = ["kubernetes", "orphan", "foregroundDeletion"];

/// `ValidateObjectMetaUpdate`: everything checked on create except the name rule, plus name,
/// namespace, uid and creationTimestamp unchanged.
pub(crate) fn validate_object_meta_update(new: &Value, old: &Value, path: &str) -> Vec<FieldError> {
    let (new_meta, old_meta) = (&new["metadata"], &old["metadata"]);
    let mut errors = Vec::new();
    for key in ["name", "namespace", "uid", "creationTimestamp"] {
        let (n, o) = (text(new_meta, key), text(old_meta, key));
        // uid and creationTimestamp are the server's; compare them only when both sides hold one.
        let both_set = !n.is_empty() && !o.is_empty();
        if n != o && (both_set || key == "name" || key == "namespace") {
            errors.push(invalid(&format!("{path}.{key}"), n, "field is immutable"));
        }
    }
    if let (Some(n), Some(o)) = (
        new_meta.get("generation").and_then(Value::as_i64),
        old_meta.get("generation").and_then(Value::as_i64),
    ) && n < o
    {
        errors.push(invalid(
            &format!("{path}.generation"),
            n,
            "must not be decremented",
        ));
    }
    errors.extend(validate_labels(
        new_meta.get("labels").and_then(Value::as_object),
        &format!("{path}.labels"),
    ));
    errors.extend(validate_annotations(
        new_meta.get("annotations").and_then(Value::as_object),
        &format!("{path}.annotations"),
    ));
    errors.extend(validate_owner_references(
        new_meta.get("ownerReferences").and_then(Value::as_array),
        &format!("{path}.ownerReferences"),
    ));
    errors.extend(validate_finalizers(
        new_meta.get("finalizers").and_then(Value::as_array),
        &format!("{path}.finalizers"),
    ));
    errors
}
