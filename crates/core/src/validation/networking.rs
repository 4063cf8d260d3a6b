//! Ingress and NetworkPolicy (`pkg/apis/networking/validation`).

use std::net::IpAddr;

use serde_json::Value;

use super::field::{FieldError, forbidden, invalid, not_supported, required, shown};
use super::names::{NameRule, dns1123_subdomain_errors, port_name_errors, port_num_errors};
use super::workloads::validate_label_selector;
use super::{arr, int, text};

const WILDCARD_MSG: &str = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

pub(crate) fn validate_ingress(obj: &Value) -> Vec<FieldError> {
    let spec = &obj["spec"];
    let mut errors = Vec::new();
    let rules = arr(spec, "rules");
    let default_backend = spec.get("defaultBackend").filter(|b| b.is_object());
    if rules.is_empty() && default_backend.is_none() {
        errors.push(invalid(
            "spec",
            shown("[]networking.IngressRule(nil)"),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(backend) = default_backend {
        errors.extend(validate_backend(backend, "spec.defaultBackend"));
    }
    for (i, rule) in rules.iter().enumerate() {
        let item = format!("spec.rules[{i}]");
        let host = text(rule, "host");
        if !host.is_empty() {
            if host.parse::<IpAddr>().is_ok() {
                errors.push(invalid(
                    &format!("{item}.host"),
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
            let problems = if host.contains('*') {
                wildcard_errors(host)
            } else {
                dns1123_subdomain_errors(host)
            };
            for msg in problems {
                errors.push(invalid(&format!("{item}.host"), host, &msg));
            }
        }
        let Some(http) = rule.get("http").filter(|h| h.is_object()) else {
            continue;
        };
        let paths = arr(http, "paths");
        if paths.is_empty() {
            errors.push(required(&format!("{item}.http.paths"), ""));
        }
        for (j, path) in paths.iter().enumerate() {
            let path_item = format!("{item}.http.paths[{j}]");
            let p = text(path, "path");
            let path_path = format!("{path_item}.path");
            match path.get("pathType").and_then(Value::as_str) {
                None => {
                    // Upstream stops at the missing pathType, backend unchecked.
                    errors.push(required(
                        &format!("{path_item}.pathType"),
                        "pathType must be specified",
                    ));
                    continue;
                }
                Some("Exact" | "Prefix") => {
                    if !p.starts_with('/') {
                        errors.push(invalid(&path_path, p, "must be an absolute path"));
                    }
                    for sequence in ["//", "/./", "/../", "%2f", "%2F"] {
                        if p.contains(sequence) {
                            errors.push(invalid(
                                &path_path,
                                p,
                                &format!("must not contain '{sequence}'"),
                            ));
                        }
                    }
                    for suffix in ["/..", "/."] {
                        if p.ends_with(suffix) {
                            errors.push(invalid(
                                &path_path,
                                p,
                                &format!("cannot end with '{suffix}'"),
                            ));
                        }
                    }
                }
                Some("ImplementationSpecific") => {
                    if !p.is_empty() && !p.starts_with('/') {
                        errors.push(invalid(&path_path, p, "must be an absolute path"));
                    }
                }
                Some(other) => errors.push(not_supported(
                    &format!("{path_item}.pathType"),
                    other,
                    &["Exact", "ImplementationSpecific", "Prefix"],
                )),
            }
            let empty = serde_json::json!({});
            let backend = path
                .get("backend")
                .filter(|b| b.is_object())
                .unwrap_or(&empty);
            errors.extend(validate_backend(backend, &format!("{path_item}.backend")));
        }
    }
    for (i, tls) in arr(spec, "tls").iter().enumerate() {
        for (j, host) in arr(tls, "hosts").iter().enumerate() {
            let host = host.as_str().unwrap_or("");
            let problems = if host.contains('*') {
                wildcard_errors(host)
            } else {
                dns1123_subdomain_errors(host)
            };
            for msg in problems {
                errors.push(invalid(&format!("spec.tls[{i}].hosts[{j}]"), host, &msg));
            }
        }
        let secret = text(tls, "secretName");
        if !secret.is_empty() {
            for msg in NameRule::Dns1123Subdomain.errors(secret, false) {
                errors.push(invalid(&format!("spec.tls[{i}].secretName"), secret, &msg));
            }
        }
    }
    let class = text(spec, "ingressClassName");
    if !class.is_empty() {
        for msg in NameRule::Dns1123Subdomain.errors(class, false) {
            errors.push(invalid("spec.ingressClassName", class, &msg));
        }
    }
    errors
}

fn wildcard_errors(host: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if host.len() > 253 {
        errors.push(super::names::max_len_error(253));
    }
    let ok = host
        .strip_prefix("*.")
        .is_some_and(|rest| dns1123_subdomain_errors(rest).is_empty());
    if !ok {
        errors.push(WILDCARD_MSG.to_string());
    }
    errors
}

fn validate_backend(backend: &Value, path: &str) -> Vec<FieldError> {
    let resource = backend.get("resource").filter(|r| r.is_object());
    let service = backend.get("service").filter(|s| s.is_object());
    match (resource, service) {
        (Some(_), Some(_)) => vec![invalid(
            path,
            "",
            "cannot set both resource and service backends",
        )],
        (Some(resource), None) => {
            let mut errors = Vec::new();
            if let Some(group) = resource.get("apiGroup").and_then(Value::as_str) {
                for msg in dns1123_subdomain_errors(group) {
                    errors.push(invalid(&format!("{path}.resource.apiGroup"), group, &msg));
                }
            }
            for key in ["kind", "name"] {
                let value = text(resource, key);
                let item = format!("{path}.resource.{key}");
                if value.is_empty() {
                    errors.push(required(&item, ""));
                } else {
                    for msg in NameRule::PathSegment.errors(value, false) {
                        errors.push(invalid(&item, value, &msg));
                    }
                }
            }
            errors
        }
        (None, Some(service)) => {
            let mut errors = Vec::new();
            let name = text(service, "name");
            if name.is_empty() {
                errors.push(required(&format!("{path}.service.name"), ""));
            } else {
                for msg in NameRule::Dns1035Label.errors(name, false) {
                    errors.push(invalid(&format!("{path}.service.name"), name, &msg));
                }
            }
            let port = &service["port"];
            let port_name = text(port, "name");
            let number = int(port, "number").unwrap_or(0);
            match (port_name.is_empty(), number == 0) {
                (false, false) => {
                    errors.push(invalid(path, "", "cannot set both port name & port number"))
                }
                (false, true) => {
                    for msg in port_name_errors(port_name) {
                        errors.push(invalid(
                            &format!("{path}.service.port.name"),
                            port_name,
                            &msg,
                        ));
                    }
                }
                (true, false) => {
                    for msg in port_num_errors(number) {
                        errors.push(invalid(
                            &format!("{path}.service.port.number"),
                            number,
                            &msg,
                        ));
                    }
                }
                (true, true) => errors.push(required(path, "port name or number is required")),
            }
            errors
        }
        (None, None) => vec![invalid(path, "", "resource or service backend is required")],
    }
}

pub(crate) fn validate_network_policy(obj: &Value) -> Vec<FieldError> {
    let spec = &obj["spec"];
    let mut errors = Vec::new();
    if let Some(selector) = spec.get("podSelector").filter(|s| s.is_object()) {
        errors.extend(validate_label_selector(selector, "spec.podSelector"));
    }
    for (direction, peers_key) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in arr(spec, direction).iter().enumerate() {
            let item = format!("spec.{direction}[{i}]");
            for (p, port) in arr(rule, "ports").iter().enumerate() {
                errors.extend(validate_policy_port(port, &format!("{item}.ports[{p}]")));
            }
            for (p, peer) in arr(rule, peers_key).iter().enumerate() {
                errors.extend(validate_peer(peer, &format!("{item}.{peers_key}[{p}]")));
            }
        }
    }
    let types = arr(spec, "policyTypes");
    if types.len() > 2 {
        errors.push(invalid(
            "spec.policyTypes",
            Value::Array(types.to_vec()),
            "may not specify more than two policyTypes",
        ));
        return errors;
    }
    for (i, kind) in types.iter().enumerate() {
        let kind = kind.as_str().unwrap_or("");
        if kind != "Ingress" && kind != "Egress" {
            errors.push(not_supported(
                &format!("spec.policyTypes[{i}]"),
                kind,
                &["Ingress", "Egress"],
            ));
        }
    }
    errors
}

fn validate_policy_port(port: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(protocol) = port.get("protocol").and_then(Value::as_str)
        && !["TCP", "UDP", "SCTP"].contains(&protocol)
    {
        errors.push(not_supported(
            &format!("{path}.protocol"),
            protocol,
            &["TCP", "UDP", "SCTP"],
        ));
    }
    let end = int(port, "endPort");
    match port.get("port") {
        Some(Value::Number(n)) => {
            let number = n.as_i64().unwrap_or(0);
            for msg in port_num_errors(number) {
                errors.push(invalid(&format!("{path}.port"), number, &msg));
            }
            if let Some(end) = end {
                if end < number {
                    errors.push(invalid(
                        &format!("{path}.endPort"),
                        end,
                        "must be greater than or equal to `port`",
                    ));
                }
                for msg in port_num_errors(end) {
                    errors.push(invalid(&format!("{path}.endPort"), end, &msg));
                }
            }
        }
        Some(Value::String(name)) => {
            if let Some(end) = end {
                errors.push(invalid(
                    &format!("{path}.endPort"),
                    end,
                    "may not be specified when `port` is non-numeric",
                ));
            }
            for msg in port_name_errors(name) {
                errors.push(invalid(&format!("{path}.port"), name.as_str(), &msg));
            }
        }
        _ => {
            if let Some(end) = end {
                errors.push(invalid(
                    &format!("{path}.endPort"),
                    end,
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
    errors
}

fn validate_peer(peer: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut count = 0;
    for key in ["podSelector", "namespaceSelector"] {
        if let Some(selector) = peer.get(key).filter(|s| s.is_object()) {
            count += 1;
            errors.extend(validate_label_selector(selector, &format!("{path}.{key}")));
        }
    }
    let block = peer.get("ipBlock").filter(|b| b.is_object());
    if let Some(block) = block {
        count += 1;
        if text(block, "cidr").is_empty() {
            errors.push(required(&format!("{path}.ipBlock.cidr"), ""));
        }
    }
    if count == 0 {
        errors.push(required(path, "must specify a peer"));
    } else if count > 1 && block.is_some() {
        errors.push(forbidden(
            path,
            "may not specify both ipBlock and another peer",
        ));
    }
    errors
}
