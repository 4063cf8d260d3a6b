//! PersistentVolumeClaim, ResourceQuota and LimitRange (core validation).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::field::{FieldError, duplicate, forbidden, invalid, not_supported, required, shown};
use super::names::qualified_name_errors;
use super::resources::{
    Quantity, is_standard_quota_resource, quantity_value_errors, resource_name_errors,
};
use super::workloads::validate_label_selector;
use super::{arr, text};

const ACCESS_MODES: [&str; 4] = [
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

pub(crate) fn validate_persistent_volume_claim(obj: &Value) -> Vec<FieldError> {
    let spec = &obj["spec"];
    let mut errors = Vec::new();
    let modes = arr(spec, "accessModes");
    if modes.is_empty() {
        errors.push(required(
            "spec.accessModes",
            "at least 1 access mode is required",
        ));
    }
    if let Some(selector) = spec.get("selector").filter(|s| s.is_object()) {
        errors.extend(validate_label_selector(selector, "spec.selector"));
    }
    let (mut once_pod, mut others) = (false, false);
    for mode in modes {
        let mode = mode.as_str().unwrap_or("");
        if !ACCESS_MODES.contains(&mode) {
            errors.push(not_supported("spec.accessModes", mode, &ACCESS_MODES));
        } else if mode == "ReadWriteOncePod" {
            once_pod = true;
        } else {
            others = true;
        }
    }
    if once_pod && others {
        errors.push(forbidden(
            "spec.accessModes",
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    match spec["resources"]["requests"].get("storage") {
        None => errors.push(required("spec.resources[storage]", "")),
        Some(value) => {
            if let Some(q) = Quantity::parse(value)
                && !q.is_positive()
            {
                errors.push(invalid(
                    "spec.resources[storage]",
                    q.canonical(),
                    "must be greater than zero",
                ));
            }
        }
    }
    let class = text(spec, "storageClassName");
    if !class.is_empty() {
        for msg in super::names::NameRule::Dns1123Subdomain.errors(class, false) {
            errors.push(invalid("spec.storageClassName", class, &msg));
        }
    }
    if let Some(mode) = spec.get("volumeMode").and_then(Value::as_str)
        && mode != "Block"
        && mode != "Filesystem"
    {
        errors.push(not_supported(
            "spec.volumeMode",
            mode,
            &["Block", "Filesystem"],
        ));
    }
    errors
}

/// A claim's storage request may grow but not shrink.
pub(crate) fn validate_persistent_volume_claim_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let size = |v: &Value| Quantity::parse(&v["spec"]["resources"]["requests"]["storage"]);
    match (size(old), size(new)) {
        (Some(o), Some(n)) if n.compare(&o).is_lt() => vec![forbidden(
            "spec.resources.requests.storage",
            "field can not be less than previous value",
        )],
        _ => Vec::new(),
    }
}

pub(crate) fn validate_resource_quota(obj: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (name, value) in obj["spec"]
        .get("hard")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let path = format!("spec.hard[{name}]");
        errors.extend(resource_name_errors(name, &path));
        if !name.contains('/') && !is_standard_quota_resource(name) {
            errors.push(invalid(
                &path,
                name.as_str(),
                "must be a standard resource for quota",
            ));
        }
        if let Some(q) = Quantity::parse(value) {
            errors.extend(quantity_value_errors(name, &q, &path));
        }
    }
    let scopes = [
        "Terminating",
        "NotTerminating",
        "BestEffort",
        "NotBestEffort",
        "PriorityClass",
        "CrossNamespacePodAffinity",
    ];
    let listed = arr(&obj["spec"], "scopes");
    if listed
        .iter()
        .any(|scope| !scopes.contains(&scope.as_str().unwrap_or("")))
    {
        errors.push(invalid(
            "spec.scopes",
            Value::Array(listed.to_vec()),
            "unsupported scope",
        ));
    }
    errors
}

const LIMIT_TYPES: [&str; 3] = ["Pod", "Container", "PersistentVolumeClaim"];

pub(crate) fn validate_limit_range(obj: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut types = Vec::new();
    for (i, limit) in arr(&obj["spec"], "limits").iter().enumerate() {
        let item = format!("spec.limits[{i}]");
        let kind = text(limit, "type");
        let type_path = format!("{item}.type");
        let problems = qualified_name_errors(kind);
        if !problems.is_empty() {
            for msg in problems {
                errors.push(invalid(&type_path, kind, &msg));
            }
        } else if !kind.contains('/') && !LIMIT_TYPES.contains(&kind) {
            errors.push(invalid(
                &type_path,
                kind,
                "must be a standard limit type or fully qualified",
            ));
        }
        if types.contains(&kind) {
            errors.push(duplicate(&type_path, kind));
        }
        types.push(kind);
        let section = |key: &str| -> BTreeMap<String, Quantity> {
            limit
                .get(key)
                .and_then(Value::as_object)
                .map(parsed)
                .unwrap_or_default()
        };
        for key in [
            "max",
            "min",
            "default",
            "defaultRequest",
            "maxLimitRequestRatio",
        ] {
            for name in limit
                .get(key)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
            {
                errors.extend(resource_name_errors(name, &format!("{item}.{key}[{name}]")));
            }
        }
        let (max, min, default, default_request, ratio) = (
            section("max"),
            section("min"),
            section("default"),
            section("defaultRequest"),
            section("maxLimitRequestRatio"),
        );
        if kind == "Pod" {
            for key in ["default", "defaultRequest"] {
                if limit
                    .get(key)
                    .and_then(Value::as_object)
                    .is_some_and(|m| !m.is_empty())
                {
                    errors.push(forbidden(
                        &format!("{item}.{key}"),
                        "may not be specified when `type` is 'Pod'",
                    ));
                }
            }
        }
        let names: std::collections::BTreeSet<&String> = max
            .keys()
            .chain(min.keys())
            .chain(default.keys())
            .chain(default_request.keys())
            .chain(ratio.keys())
            .collect();
        for name in names {
            let s = |q: &Quantity| shown(q.canonical());
            let (mn, mx, df, dr) = (
                min.get(name),
                max.get(name),
                default.get(name),
                default_request.get(name),
            );
            if let (Some(a), Some(b)) = (mn, mx)
                && a.compare(b).is_gt()
            {
                errors.push(invalid(
                    &format!("{item}.min[{name}]"),
                    s(a),
                    &format!(
                        "min value {} is greater than max value {}",
                        a.canonical(),
                        b.canonical()
                    ),
                ));
            }
            if let (Some(r), Some(a)) = (dr, mn)
                && a.compare(r).is_gt()
            {
                errors.push(invalid(
                    &format!("{item}.defaultRequest[{name}]"),
                    s(r),
                    &format!(
                        "min value {} is greater than default request value {}",
                        a.canonical(),
                        r.canonical()
                    ),
                ));
            }
            if let (Some(r), Some(b)) = (dr, mx)
                && r.compare(b).is_gt()
            {
                errors.push(invalid(
                    &format!("{item}.defaultRequest[{name}]"),
                    s(r),
                    &format!(
                        "default request value {} is greater than max value {}",
                        r.canonical(),
                        b.canonical()
                    ),
                ));
            }
            if let (Some(r), Some(d)) = (dr, df)
                && r.compare(d).is_gt()
            {
                errors.push(invalid(
                    &format!("{item}.defaultRequest[{name}]"),
                    s(r),
                    &format!(
                        "default request value {} is greater than default limit value {}",
                        r.canonical(),
                        d.canonical()
                    ),
                ));
            }
            if let (Some(d), Some(a)) = (df, mn)
                && a.compare(d).is_gt()
            {
                errors.push(invalid(
                    &format!("{item}.default[{name}]"),
                    s(a),
                    &format!(
                        "min value {} is greater than default value {}",
                        a.canonical(),
                        d.canonical()
                    ),
                ));
            }
            if let (Some(d), Some(b)) = (df, mx)
                && d.compare(b).is_gt()
            {
                errors.push(invalid(
                    &format!("{item}.default[{name}]"),
                    s(b),
                    &format!(
                        "default value {} is greater than max value {}",
                        d.canonical(),
                        b.canonical()
                    ),
                ));
            }
            if let Some(r) = ratio.get(name)
                && r.compare(&Quantity::one()).is_lt()
            {
                errors.push(invalid(
                    &format!("{item}.maxLimitRequestRatio[{name}]"),
                    s(r),
                    &format!("ratio {} is less than 1", r.canonical()),
                ));
            }
        }
    }
    errors
}

fn parsed(map: &Map<String, Value>) -> BTreeMap<String, Quantity> {
    map.iter()
        .filter_map(|(k, v)| Quantity::parse(v).map(|q| (k.clone(), q)))
        .collect()
}
