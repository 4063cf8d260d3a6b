//! Resource names and quantities in containers, quotas and limit ranges (`ResourceRequirements`,
//! `ValidateResourceQuantityValue`).

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::field::{FieldError, invalid, required};
use super::names::qualified_name_errors;
use crate::quantity::{self, Format, NANOS_PER_UNIT};

pub(crate) const NEGATIVE_MSG: &str = "must be greater than or equal to 0";

/// A quantity parsed for comparing and printing as `resource.Quantity.String()` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quantity {
    negative: bool,
    nanos: u128,
    format: Format,
}

impl Quantity {
    /// `None` for text that is not a quantity (decoding refuses those before validation).
    pub(crate) fn parse(value: &Value) -> Option<Quantity> {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        let (negative, nanos) = quantity::signed_nanos(&text).ok()?;
        let magnitude = text.trim().trim_start_matches(['-', '+']);
        let format = quantity::format_of(magnitude).ok()?;
        Some(Quantity {
            negative,
            nanos,
            format,
        })
    }

    /// The quantity `1`.
    pub(crate) fn one() -> Quantity {
        Quantity {
            negative: false,
            nanos: NANOS_PER_UNIT,
            format: Format::DecimalSI,
        }
    }

    pub(crate) fn is_negative(&self) -> bool {
        self.negative && self.nanos > 0
    }

    pub(crate) fn is_positive(&self) -> bool {
        !self.negative && self.nanos > 0
    }

    /// Whether it is a whole number of units (`MilliValue() % 1000 == 0`).
    pub(crate) fn is_whole(&self) -> bool {
        self.nanos.div_ceil(1_000_000).is_multiple_of(1000)
    }

    pub(crate) fn compare(&self, other: &Quantity) -> Ordering {
        let signed = |q: &Quantity| {
            if q.is_negative() {
                -i128::try_from(q.nanos).unwrap_or(i128::MAX)
            } else {
                i128::try_from(q.nanos).unwrap_or(i128::MAX)
            }
        };
        signed(self).cmp(&signed(other))
    }

    /// `Quantity.String()`: the canonical form (`1Gi`, `500m`, `-1`).
    pub(crate) fn canonical(&self) -> String {
        quantity::canonical_nanos(self.is_negative(), self.nanos, self.format)
    }
}

/// Resource names the core group defines for containers (`IsStandardContainerResourceName`).
fn is_standard_container_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-")
}

/// `IsStandardResourceName`: container resources plus the quota names.
pub(crate) fn is_standard_resource(name: &str) -> bool {
    is_standard_container_resource(name)
        || is_standard_quota_resource(name)
        || matches!(name, "storage" | "pods")
}

/// `IsStandardQuotaResourceName`.
pub(crate) fn is_standard_quota_resource(name: &str) -> bool {
    matches!(
        name,
        "pods"
            | "services"
            | "replicationcontrollers"
            | "resourcequotas"
            | "secrets"
            | "configmaps"
            | "persistentvolumeclaims"
            | "services.nodeports"
            | "services.loadbalancers"
            | "cpu"
            | "memory"
            | "ephemeral-storage"
            | "requests.cpu"
            | "requests.memory"
            | "requests.storage"
            | "requests.ephemeral-storage"
            | "limits.cpu"
            | "limits.memory"
            | "limits.ephemeral-storage"
    ) || name.starts_with("requests.hugepages-")
        || name.starts_with("count/")
        || name.ends_with(".storageclass.storage.k8s.io/requests.storage")
        || name.ends_with(".storageclass.storage.k8s.io/persistentvolumeclaims")
}

/// Names without a domain, or in `kubernetes.io` (`IsNativeResource`).
fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// Extended resources may not be overcommitted: their requests must equal their limits, and
/// so may hugepages.
fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !name.starts_with("hugepages-")
}

/// `IsExtendedResourceName`: a domain-qualified name outside `kubernetes.io` that is a valid
/// quota name once prefixed with `requests.`.
fn is_extended(name: &str) -> bool {
    !is_native(name)
        && !name.starts_with("requests.")
        && qualified_name_errors(&format!("requests.{name}")).is_empty()
}

/// `validateResourceName`.
pub(crate) fn resource_name_errors(name: &str, path: &str) -> Vec<FieldError> {
    let mut errors: Vec<FieldError> = qualified_name_errors(name)
        .iter()
        .map(|msg| invalid(path, name, msg))
        .collect();
    if errors.is_empty() && !name.contains('/') && !is_standard_resource(name) {
        errors.push(invalid(
            path,
            name,
            "must be a standard resource type or fully qualified",
        ));
    }
    errors
}

fn container_resource_name_errors(name: &str, path: &str) -> Vec<FieldError> {
    let mut errors = resource_name_errors(name, path);
    if !name.contains('/') {
        if !is_standard_container_resource(name) {
            errors.push(invalid(
                path,
                name,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native(name) && !is_extended(name) {
        errors.push(invalid(
            path,
            name,
            "doesn't follow extended resource name standard",
        ));
    }
    errors
}

/// `ValidateResourceQuantityValue`: never negative, and whole for extended resources.
pub(crate) fn quantity_value_errors(name: &str, q: &Quantity, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if q.is_negative() {
        errors.push(invalid(path, q.canonical(), NEGATIVE_MSG));
    }
    let integer_resource =
        is_extended(name) || name.strip_prefix("requests.").is_some_and(is_extended);
    if integer_resource && !q.is_whole() {
        errors.push(invalid(path, q.canonical(), "must be an integer"));
    }
    errors
}

fn quantities(list: Option<&Map<String, Value>>) -> Vec<(&str, Option<Quantity>)> {
    list.into_iter()
        .flatten()
        .map(|(name, value)| (name.as_str(), Quantity::parse(value)))
        .collect()
}

/// `ValidateContainerResourceRequirements`: names, non-negative quantities, and requests no
/// greater than limits (equal, for resources that cannot be overcommitted).
pub(crate) fn validate_container_resources(resources: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let limits_path = format!("{path}.limits");
    let requests_path = format!("{path}.requests");
    let limits = quantities(resources.get("limits").and_then(Value::as_object));
    let requests = quantities(resources.get("requests").and_then(Value::as_object));
    for (name, q) in &limits {
        let item = format!("{limits_path}[{name}]");
        errors.extend(container_resource_name_errors(name, &item));
        if let Some(q) = q {
            errors.extend(quantity_value_errors(name, q, &item));
        }
    }
    for (name, q) in &requests {
        let item = format!("{requests_path}[{name}]");
        errors.extend(container_resource_name_errors(name, &item));
        let Some(q) = q else { continue };
        errors.extend(quantity_value_errors(name, q, &item));
        match limits.iter().find(|(n, _)| n == name) {
            Some((_, Some(limit))) => {
                let order = q.compare(limit);
                if order != Ordering::Equal && !overcommit_allowed(name) {
                    errors.push(invalid(
                        &requests_path,
                        q.canonical(),
                        &format!("must be equal to {name} limit of {}", limit.canonical()),
                    ));
                } else if order == Ordering::Greater {
                    errors.push(invalid(
                        &requests_path,
                        q.canonical(),
                        &format!(
                            "must be less than or equal to {name} limit of {}",
                            limit.canonical()
                        ),
                    ));
                }
            }
            Some((_, None)) => {}
            None if !overcommit_allowed(name) => errors.push(required(
                &limits_path,
                "Limit must be set for non overcommitable resources",
            )),
            None => {}
        }
    }
    errors
}
