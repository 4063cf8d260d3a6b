//! PodDisruptionBudget, HorizontalPodAutoscaler, PriorityClass and Lease
//! (`pkg/apis/{policy,autoscaling,scheduling,coordination}/validation`).

use serde_json::Value;

use super::field::{FieldError, forbidden, invalid, not_supported, required, shown};
use super::names::NameRule;
use super::pod::one_of;
use super::workloads::validate_label_selector;
use super::{int, text};

const PERCENT_MSG: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

/// `ValidatePositiveIntOrPercent` and `IsNotMoreThan100Percent` (an `IntOrString` prints
/// unquoted, through its `String()` method).
fn int_or_percent(value: &Value, path: &str) -> Vec<FieldError> {
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(v) if v < 0 => vec![invalid(path, v, "must be greater than or equal to 0")],
            _ => Vec::new(),
        },
        Value::String(s) => {
            let digits = s.strip_suffix('%').unwrap_or("");
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                vec![invalid(path, shown(s.as_str()), PERCENT_MSG)]
            } else if digits.parse::<u64>().is_ok_and(|v| v > 100) {
                vec![invalid(
                    path,
                    shown(s.as_str()),
                    "must not be greater than 100%",
                )]
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    }
}

pub(crate) fn validate_pod_disruption_budget(obj: &Value) -> Vec<FieldError> {
    let spec = &obj["spec"];
    let mut errors = Vec::new();
    let min = spec.get("minAvailable").filter(|v| !v.is_null());
    let max = spec.get("maxUnavailable").filter(|v| !v.is_null());
    if min.is_some() && max.is_some() {
        errors.push(invalid(
            "spec",
            spec.clone(),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    if let Some(min) = min {
        errors.extend(int_or_percent(min, "spec.minAvailable"));
    }
    if let Some(max) = max {
        errors.extend(int_or_percent(max, "spec.maxUnavailable"));
    }
    if let Some(selector) = spec.get("selector").filter(|s| s.is_object()) {
        errors.extend(validate_label_selector(selector, "spec.selector"));
    }
    if let Some(policy) = spec
        .get("unhealthyPodEvictionPolicy")
        .and_then(Value::as_str)
    {
        let supported = ["AlwaysAllow", "IfHealthyBudget"];
        if !supported.contains(&policy) {
            errors.push(not_supported(
                "spec.unhealthyPodEvictionPolicy",
                policy,
                &supported,
            ));
        }
    }
    errors
}

pub(crate) fn validate_horizontal_pod_autoscaler(obj: &Value) -> Vec<FieldError> {
    let spec = &obj["spec"];
    let mut errors = Vec::new();
    let min = int(spec, "minReplicas");
    let max = int(spec, "maxReplicas").unwrap_or(0);
    if let Some(min) = min
        && min < 1
    {
        errors.push(invalid(
            "spec.minReplicas",
            min,
            "must be greater than or equal to 1",
        ));
    }
    if max < 1 {
        errors.push(invalid("spec.maxReplicas", max, "must be greater than 0"));
    }
    if let Some(min) = min
        && max < min
    {
        errors.push(invalid(
            "spec.maxReplicas",
            max,
            "must be greater than or equal to `minReplicas`",
        ));
    }
    let target = &spec["scaleTargetRef"];
    for key in ["kind", "name"] {
        let value = text(target, key);
        let path = format!("spec.scaleTargetRef.{key}");
        if value.is_empty() {
            errors.push(required(&path, ""));
        } else {
            for msg in NameRule::PathSegment.errors(value, false) {
                errors.push(invalid(&path, value, &msg));
            }
        }
    }
    if let Some(percent) = int(spec, "targetCPUUtilizationPercentage")
        && percent < 1
    {
        // autoscaling/v1's field, converted to the first metric's target upstream.
        errors.push(invalid(
            "spec.metrics[0].resource.target.averageUtilization",
            percent,
            "must be greater than 0",
        ));
    }
    errors
}

/// Priorities above this are reserved for the system classes.
const HIGHEST_USER_DEFINABLE_PRIORITY: i64 = 1_000_000_000;

/// The built-in classes whose `system-` names are reserved, with their values.
const SYSTEM_PRIORITY_CLASSES: [(&str, i64); 2] = [
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

pub(crate) fn validate_priority_class(obj: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let name = text(&obj["metadata"], "name");
    let value = int(obj, "value").unwrap_or(0);
    let global_default = obj
        .get("globalDefault")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if name.starts_with("system-") {
        let problem = match SYSTEM_PRIORITY_CLASSES.iter().find(|(n, _)| *n == name) {
            None => Some(format!("{name} is not a known system priority class")),
            Some((_, want)) if *want != value => {
                Some(format!("value of {name} PriorityClass must be {want}"))
            }
            Some(_) if global_default => Some(format!(
                "globalDefault of {name} PriorityClass must be false"
            )),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            errors.push(forbidden(
                "metadata.name",
                &format!(
                    "priority class names with 'system-' prefix are reserved for system use only. error: {problem}"
                ),
            ));
        }
    } else if value > HIGHEST_USER_DEFINABLE_PRIORITY {
        errors.push(forbidden(
            "value",
            &format!(
                "maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"
            ),
        ));
    }
    if let Some(policy) = obj.get("preemptionPolicy").and_then(Value::as_str) {
        errors.extend(one_of(
            policy,
            &["PreemptLowerPriority", "Never"],
            "preemptionPolicy",
        ));
    }
    errors
}

pub(crate) fn validate_priority_class_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if int(old, "value") != int(new, "value") {
        errors.push(forbidden("value", "may not be changed in an update."));
    }
    let policy = |v: &Value| {
        v.get("preemptionPolicy")
            .and_then(Value::as_str)
            .unwrap_or("PreemptLowerPriority")
            .to_string()
    };
    if policy(old) != policy(new) {
        errors.push(invalid(
            "preemptionPolicy",
            policy(new),
            "field is immutable",
        ));
    }
    errors
}

pub(crate) fn validate_lease(obj: &Value) -> Vec<FieldError> {
    let spec = &obj["spec"];
    let mut errors = Vec::new();
    if let Some(duration) = int(spec, "leaseDurationSeconds")
        && duration <= 0
    {
        errors.push(invalid(
            "spec.leaseDurationSeconds",
            duration,
            "must be greater than 0",
        ));
    }
    if let Some(transitions) = int(spec, "leaseTransitions")
        && transitions < 0
    {
        errors.push(invalid(
            "spec.leaseTransitions",
            transitions,
            "must be greater than or equal to 0",
        ));
    }
    errors
}
