//! Service, Namespace (core `ValidateService`, `ValidateNamespace`).

use std::collections::BTreeSet;

use serde_json::Value;

use super::field::{FieldError, duplicate, forbidden, invalid, not_supported, required, shown};
use super::meta::validate_labels;
use super::names::{
    dns1123_label_errors, dns1123_subdomain_errors, port_num_errors, qualified_name_errors,
};
use super::pod::{one_of, port_num_or_name, protocol_errors};
use super::{arr, int, text};

const SERVICE_TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

fn is_headless(spec: &Value) -> bool {
    text(spec, "clusterIP") == "None"
}

pub(crate) fn validate_service(obj: &Value) -> Vec<FieldError> {
    let spec = &obj["spec"];
    let mut errors = Vec::new();
    let kind = spec.get("type").and_then(Value::as_str);
    let ports = arr(spec, "ports");
    if ports.is_empty() && !is_headless(spec) && kind != Some("ExternalName") {
        errors.push(required("spec.ports", ""));
    }
    if kind == Some("ExternalName") {
        let name = text(spec, "externalName");
        if name.is_empty() {
            errors.push(required("spec.externalName", ""));
        } else {
            errors.extend(fully_qualified_domain_name(name, "spec.externalName"));
        }
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let item = format!("spec.ports[{i}]");
        let name = text(port, "name");
        if ports.len() > 1 && name.is_empty() {
            errors.push(required(&format!("{item}.name"), ""));
        } else if !name.is_empty() {
            for msg in dns1123_label_errors(name) {
                errors.push(invalid(&format!("{item}.name"), name, &msg));
            }
            if !names.insert(name) {
                errors.push(duplicate(&format!("{item}.name"), name));
            }
        }
        let number = int(port, "port").unwrap_or(0);
        for msg in port_num_errors(number) {
            errors.push(invalid(&format!("{item}.port"), number, &msg));
        }
        if let Some(protocol) = port.get("protocol").and_then(Value::as_str) {
            errors.extend(protocol_errors(protocol, &format!("{item}.protocol")));
        }
        // An absent or zero targetPort is defaulted to the port.
        match port.get("targetPort") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_i64() == Some(0) => {}
            Some(Value::String(s)) if s.is_empty() => {}
            target => errors.extend(port_num_or_name(target, &format!("{item}.targetPort"))),
        }
    }
    errors.extend(validate_labels(
        spec.get("selector").and_then(Value::as_object),
        "spec.selector",
    ));
    if let Some(affinity) = spec.get("sessionAffinity").and_then(Value::as_str) {
        errors.extend(one_of(
            affinity,
            &["ClientIP", "None"],
            "spec.sessionAffinity",
        ));
    }
    if let Some(kind) = kind {
        if kind.is_empty() {
            errors.push(required("spec.type", ""));
        } else if !SERVICE_TYPES.contains(&kind) {
            errors.push(not_supported("spec.type", kind, &SERVICE_TYPES));
        }
    }
    if kind.is_none_or(|k| k == "ClusterIP") {
        for (i, port) in ports.iter().enumerate() {
            if int(port, "nodePort").is_some_and(|n| n != 0) {
                errors.push(forbidden(
                    &format!("spec.ports[{i}].nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    // Two ports may not share a protocol and port number.
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let protocol = port
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP");
        let number = int(port, "port").unwrap_or(0);
        if !seen.insert((protocol, number)) {
            errors.push(duplicate(
                &format!("spec.ports[{i}]"),
                shown(format!(
                    "core.ServicePort{{Name:\"\", Protocol:\"{protocol}\", AppProtocol:(*string)(nil), Port:{number}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}"
                )),
            ));
        }
    }
    errors
}

/// `IsFullyQualifiedDomainName`: a subdomain of at least two labels, a trailing dot allowed.
fn fully_qualified_domain_name(name: &str, path: &str) -> Vec<FieldError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let problems = dns1123_subdomain_errors(name);
    if !problems.is_empty() {
        return vec![invalid(path, name, &problems.join(","))];
    }
    if name.split('.').count() < 2 {
        return vec![invalid(
            path,
            name,
            "should be a domain with at least two segments separated by dots",
        )];
    }
    for label in name.split('.') {
        let problems = dns1123_label_errors(label);
        if !problems.is_empty() {
            return vec![invalid(path, label, &problems.join(","))];
        }
    }
    Vec::new()
}

/// A Service's cluster IP may not change once allocated, unless it is or becomes ExternalName.
pub(crate) fn validate_service_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let (o, n) = (&old["spec"], &new["spec"]);
    let external = |spec: &Value| text(spec, "type") == "ExternalName";
    let (old_ip, new_ip) = (text(o, "clusterIP"), text(n, "clusterIP"));
    if !external(n) && !external(o) && !old_ip.is_empty() && old_ip != new_ip {
        vec![invalid("spec.clusterIP", new_ip, "field is immutable")]
    } else {
        Vec::new()
    }
}

/// Namespace finalizers in `spec.finalizers` (`validateFinalizerName`).
pub(crate) fn validate_namespace(obj: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    // Upstream reports these against the list, without the index.
    let path = "spec.finalizers";
    for finalizer in arr(&obj["spec"], "finalizers") {
        let name = finalizer.as_str().unwrap_or("");
        for msg in qualified_name_errors(name) {
            errors.push(invalid(path, name, &msg));
        }
        if !name.contains('/') && name != "kubernetes" {
            errors.push(invalid(
                path,
                name,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    errors
}
