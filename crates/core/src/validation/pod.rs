//! `PodSpec` rules (core `ValidatePodSpec` and the container, volume, probe, port and env rules
//! beneath it), for pods and for the templates of workloads.
//!
//! Fields upstream defaults (a port's protocol, a probe's thresholds, `imagePullPolicy`, …) are
//! checked when present and not required when absent, so an object defaulted less fully than
//! upstream's is not refused for what upstream would have filled in.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::field::{FieldError, duplicate, forbidden, invalid, not_found, not_supported, required};
use super::meta::validate_labels;
use super::names::{
    NameRule, config_key_errors, dns1123_label_errors, env_var_name_errors, inclusive_range_error,
    port_name_errors, port_num_errors,
};
use super::resources::{NEGATIVE_MSG, Quantity, validate_container_resources};
use super::{arr, int, text};

/// Every volume source field of `VolumeSource`, in upstream's order.
const VOLUME_SOURCES: [&str; 30] = [
    "emptyDir",
    "hostPath",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "flocker",
    "persistentVolumeClaim",
    "rbd",
    "cinder",
    "cephfs",
    "quobyte",
    "downwardAPI",
    "fc",
    "flexVolume",
    "configMap",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "storageos",
    "projected",
    "scaleIO",
    "csi",
    "ephemeral",
    "image",
];

/// The path upstream reports a second volume source under (two of them are spelled oddly there).
fn source_error_path(source: &str) -> &str {
    match source {
        "downwardAPI" => "downwarAPI",
        "cephfs" => "cephFS",
        other => other,
    }
}

/// `ValidatePodSpec`. `path` is where the spec sits (`spec`, `spec.template.spec`).
pub(crate) fn validate_pod_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let volumes = validate_volumes(
        arr(spec, "volumes"),
        &format!("{path}.volumes"),
        &mut errors,
    );
    let containers = arr(spec, "containers");
    let init = arr(spec, "initContainers");
    validate_containers(
        containers,
        &volumes,
        &format!("{path}.containers"),
        &mut errors,
    );
    validate_init_containers(
        init,
        containers,
        &volumes,
        &format!("{path}.initContainers"),
        &mut errors,
    );
    validate_ephemeral_containers(
        arr(spec, "ephemeralContainers"),
        containers,
        init,
        &volumes,
        &format!("{path}.ephemeralContainers"),
        &mut errors,
    );
    if let Some(policy) = spec.get("restartPolicy").and_then(Value::as_str) {
        errors.extend(one_of(
            policy,
            &["Always", "OnFailure", "Never"],
            &format!("{path}.restartPolicy"),
        ));
    }
    if let Some(policy) = spec.get("dnsPolicy").and_then(Value::as_str) {
        errors.extend(one_of(
            policy,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
            &format!("{path}.dnsPolicy"),
        ));
        if policy == "None" {
            match spec.get("dnsConfig").filter(|c| c.is_object()) {
                None => errors.push(required(
                    &format!("{path}.dnsConfig"),
                    "must provide `dnsConfig` when `dnsPolicy` is None",
                )),
                Some(config) if arr(config, "nameservers").is_empty() => errors.push(required(
                    &format!("{path}.dnsConfig.nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                )),
                Some(_) => {}
            }
        }
    }
    errors.extend(validate_labels(
        spec.get("nodeSelector").and_then(Value::as_object),
        &format!("{path}.nodeSelector"),
    ));
    for (key, rule) in [
        ("serviceAccountName", NameRule::Dns1123Subdomain),
        ("nodeName", NameRule::Dns1123Subdomain),
        ("priorityClassName", NameRule::Dns1123Subdomain),
    ] {
        let value = text(spec, key);
        if !value.is_empty() {
            for msg in rule.errors(value, false) {
                errors.push(invalid(&format!("{path}.{key}"), value, &msg));
            }
        }
    }
    if let Some(deadline) = int(spec, "activeDeadlineSeconds")
        && !(1..=i64::from(i32::MAX)).contains(&deadline)
    {
        errors.push(invalid(
            &format!("{path}.activeDeadlineSeconds"),
            deadline,
            &inclusive_range_error(1, i64::from(i32::MAX)),
        ));
    }
    for key in ["hostname", "subdomain"] {
        let value = text(spec, key);
        if !value.is_empty() {
            for msg in dns1123_label_errors(value) {
                errors.push(invalid(&format!("{path}.{key}"), value, &msg));
            }
        }
    }
    for (i, secret) in arr(spec, "imagePullSecrets").iter().enumerate() {
        let name = text(secret, "name");
        if name.is_empty() {
            errors.push(required(&format!("{path}.imagePullSecrets[{i}].name"), ""));
        }
    }
    errors
}

/// `NotSupported` for a value outside `allowed`; `Required` for an empty one.
pub(crate) fn one_of(value: &str, allowed: &[&str], path: &str) -> Vec<FieldError> {
    if value.is_empty() {
        vec![required(path, "")]
    } else if allowed.contains(&value) {
        Vec::new()
    } else {
        vec![not_supported(path, value, allowed)]
    }
}

/// `ValidateVolumes`; returns the names of the valid volumes, which mounts may refer to.
fn validate_volumes(
    volumes: &[Value],
    path: &str,
    errors: &mut Vec<FieldError>,
) -> BTreeMap<String, String> {
    let mut valid = BTreeMap::new();
    for (i, volume) in volumes.iter().enumerate() {
        let item = format!("{path}[{i}]");
        let name = text(volume, "name");
        let mut own = Vec::new();
        let mut kind = String::new();
        for source in VOLUME_SOURCES {
            let Some(body) = volume.get(source).filter(|b| !b.is_null()) else {
                continue;
            };
            if kind.is_empty() {
                kind = source.to_string();
                own.extend(validate_volume_source(
                    source,
                    body,
                    &format!("{item}.{source}"),
                ));
            } else {
                own.push(forbidden(
                    &format!("{item}.{}", source_error_path(source)),
                    "may not specify more than 1 volume type",
                ));
            }
        }
        if kind.is_empty() {
            own.push(required(&item, "must specify a volume type"));
        }
        if name.is_empty() {
            own.push(required(&format!("{item}.name"), ""));
        } else {
            for msg in dns1123_label_errors(name) {
                own.push(invalid(&format!("{item}.name"), name, &msg));
            }
        }
        if valid.contains_key(name) {
            own.push(duplicate(&format!("{item}.name"), name));
        }
        if own.is_empty() {
            valid.insert(name.to_string(), kind);
        } else {
            errors.extend(own);
        }
    }
    valid
}

fn validate_volume_source(source: &str, body: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let must = |key: &str, errors: &mut Vec<FieldError>| {
        if text(body, key).is_empty() {
            errors.push(required(&format!("{path}.{key}"), ""));
        }
    };
    match source {
        "emptyDir" => {
            if let Some(limit) = body.get("sizeLimit").and_then(Quantity::parse)
                && limit.is_negative()
            {
                errors.push(forbidden(
                    &format!("{path}.sizeLimit"),
                    "SizeLimit field must be a valid resource quantity",
                ));
            }
        }
        "hostPath" => must("path", &mut errors),
        "secret" => {
            must("secretName", &mut errors);
            errors.extend(mode_errors(body, "defaultMode", path));
            errors.extend(key_to_paths(body, path));
        }
        "configMap" => {
            must("name", &mut errors);
            errors.extend(mode_errors(body, "defaultMode", path));
            errors.extend(key_to_paths(body, path));
        }
        "persistentVolumeClaim" => must("claimName", &mut errors),
        "nfs" => {
            must("server", &mut errors);
            must("path", &mut errors);
            let nfs_path = text(body, "path");
            if !nfs_path.starts_with('/') {
                errors.push(invalid(
                    &format!("{path}.path"),
                    nfs_path,
                    "must be an absolute path",
                ));
            }
        }
        "downwardAPI" => errors.extend(mode_errors(body, "defaultMode", path)),
        "csi" => must("driver", &mut errors),
        _ => {}
    }
    errors
}

const FILE_MODE_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";

fn mode_errors(body: &Value, key: &str, path: &str) -> Vec<FieldError> {
    match int(body, key) {
        Some(mode) if !(0..=0o777).contains(&mode) => {
            vec![invalid(&format!("{path}.{key}"), mode, FILE_MODE_MSG)]
        }
        _ => Vec::new(),
    }
}

fn key_to_paths(body: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, item) in arr(body, "items").iter().enumerate() {
        let item_path = format!("{path}.items[{i}]");
        if text(item, "key").is_empty() {
            errors.push(required(&format!("{item_path}.key"), ""));
        }
        let target = text(item, "path");
        if target.is_empty() {
            errors.push(required(&format!("{item_path}.path"), ""));
        }
        errors.extend(local_descending_path(target, &format!("{item_path}.path")));
        errors.extend(mode_errors(item, "mode", &item_path));
    }
    errors
}

/// `validateLocalDescendingPath`: relative, without `..` steps.
fn local_descending_path(target: &str, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if target.starts_with('/') {
        errors.push(invalid(path, target, "must be a relative path"));
    }
    if target.split('/').any(|part| part == "..") {
        errors.push(invalid(path, target, "must not contain '..'"));
    }
    errors
}

fn validate_containers(
    containers: &[Value],
    volumes: &BTreeMap<String, String>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if containers.is_empty() {
        errors.push(required(path, ""));
        return;
    }
    let mut names = BTreeSet::new();
    for (i, container) in containers.iter().enumerate() {
        let item = format!("{path}[{i}]");
        errors.extend(validate_container_common(container, volumes, &item));
        let name = text(container, "name");
        if !names.insert(name) {
            errors.push(duplicate(&format!("{item}.name"), name));
        }
        errors.extend(lifecycle_and_probes(container, &item));
        if container.get("restartPolicy").is_some_and(|p| !p.is_null()) {
            errors.push(forbidden(
                &format!("{item}.restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
}

fn lifecycle_and_probes(container: &Value, item: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(lifecycle) = container.get("lifecycle").filter(|l| l.is_object()) {
        for hook in ["postStart", "preStop"] {
            if let Some(handler) = lifecycle.get(hook).filter(|h| h.is_object()) {
                errors.extend(validate_handler(
                    handler,
                    &["exec", "httpGet", "tcpSocket", "sleep"],
                    &format!("{item}.lifecycle.{hook}"),
                ));
            }
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(body) = container.get(probe).filter(|p| p.is_object()) {
            errors.extend(validate_probe(probe, body, &format!("{item}.{probe}")));
        }
    }
    errors
}

fn validate_init_containers(
    init: &[Value],
    regular: &[Value],
    volumes: &BTreeMap<String, String>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let mut names: BTreeSet<&str> = regular.iter().map(|c| text(c, "name")).collect();
    for (i, container) in init.iter().enumerate() {
        let item = format!("{path}[{i}]");
        errors.extend(validate_container_common(container, volumes, &item));
        let restart = container.get("restartPolicy").and_then(Value::as_str);
        if let Some(policy) = restart
            && policy != "Always"
        {
            errors.push(not_supported(
                &format!("{item}.restartPolicy"),
                policy,
                &["Always"],
            ));
        }
        let name = text(container, "name");
        if names.contains(name) {
            errors.push(duplicate(&format!("{item}.name"), name));
        } else if !name.is_empty() {
            names.insert(name);
        }
        if restart == Some("Always") {
            errors.extend(lifecycle_and_probes(container, &item));
        } else {
            for key in [
                "lifecycle",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
            ] {
                if container.get(key).is_some_and(|v| !v.is_null()) {
                    errors.push(forbidden(
                        &format!("{item}.{key}"),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }
}

/// `EphemeralContainerCommon` fields an ephemeral container may not set, in struct order.
const EPHEMERAL_FORBIDDEN: [&str; 8] = [
    "ports",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
];

fn validate_ephemeral_containers(
    ephemeral: &[Value],
    regular: &[Value],
    init: &[Value],
    volumes: &BTreeMap<String, String>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let others: BTreeSet<&str> = regular
        .iter()
        .chain(init)
        .map(|c| text(c, "name"))
        .collect();
    let mut all = others.clone();
    for (i, container) in ephemeral.iter().enumerate() {
        let item = format!("{path}[{i}]");
        errors.extend(validate_container_common(container, volumes, &item));
        let name = text(container, "name");
        if !all.insert(name) {
            errors.push(duplicate(&format!("{item}.name"), name));
        }
        let target = text(container, "targetContainerName");
        if !target.is_empty() && !others.contains(target) {
            errors.push(not_found(&format!("{item}.targetContainerName"), target));
        }
        for key in EPHEMERAL_FORBIDDEN {
            let set = match container.get(key) {
                None | Some(Value::Null) => false,
                Some(Value::Object(o)) => !o.is_empty(),
                Some(Value::Array(a)) => !a.is_empty(),
                Some(Value::String(s)) => !s.is_empty(),
                Some(_) => true,
            };
            if set {
                errors.push(forbidden(
                    &format!("{item}.{key}"),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
        for (m, mount) in arr(container, "volumeMounts").iter().enumerate() {
            for key in ["subPath", "subPathExpr"] {
                if !text(mount, key).is_empty() {
                    errors.push(forbidden(
                        &format!("{item}.volumeMounts[{m}].{key}"),
                        "cannot be set for an Ephemeral Container",
                    ));
                }
            }
        }
    }
}

/// `validateContainerCommon`: name, image, ports, env, mounts, pull policy and resources.
fn validate_container_common(
    container: &Value,
    volumes: &BTreeMap<String, String>,
    path: &str,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let name = text(container, "name");
    if name.is_empty() {
        errors.push(required(&format!("{path}.name"), ""));
    } else {
        for msg in dns1123_label_errors(name) {
            errors.push(invalid(&format!("{path}.name"), name, &msg));
        }
    }
    if text(container, "image").is_empty() {
        errors.push(required(&format!("{path}.image"), ""));
    }
    if let Some(policy) = container
        .get("terminationMessagePolicy")
        .and_then(Value::as_str)
    {
        errors.extend(one_of(
            policy,
            &["File", "FallbackToLogsOnError"],
            &format!("{path}.terminationMessagePolicy"),
        ));
    }
    errors.extend(validate_ports(
        arr(container, "ports"),
        &format!("{path}.ports"),
    ));
    errors.extend(validate_env(arr(container, "env"), &format!("{path}.env")));
    errors.extend(validate_env_from(
        arr(container, "envFrom"),
        &format!("{path}.envFrom"),
    ));
    errors.extend(validate_mounts(
        arr(container, "volumeMounts"),
        volumes,
        &format!("{path}.volumeMounts"),
    ));
    if let Some(policy) = container.get("imagePullPolicy").and_then(Value::as_str) {
        errors.extend(one_of(
            policy,
            &["Always", "IfNotPresent", "Never"],
            &format!("{path}.imagePullPolicy"),
        ));
    }
    if let Some(resources) = container.get("resources").filter(|r| r.is_object()) {
        errors.extend(validate_container_resources(
            resources,
            &format!("{path}.resources"),
        ));
    }
    errors
}

fn validate_ports(ports: &[Value], path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let item = format!("{path}[{i}]");
        let name = text(port, "name");
        if !name.is_empty() {
            let problems = port_name_errors(name);
            if !problems.is_empty() {
                for msg in problems {
                    errors.push(invalid(&format!("{item}.name"), name, &msg));
                }
            } else if !names.insert(name) {
                errors.push(duplicate(&format!("{item}.name"), name));
            }
        }
        match int(port, "containerPort") {
            None | Some(0) => errors.push(required(&format!("{item}.containerPort"), "")),
            Some(number) => {
                for msg in port_num_errors(number) {
                    errors.push(invalid(&format!("{item}.containerPort"), number, &msg));
                }
            }
        }
        if let Some(host) = int(port, "hostPort").filter(|p| *p != 0) {
            for msg in port_num_errors(host) {
                errors.push(invalid(&format!("{item}.hostPort"), host, &msg));
            }
        }
        if let Some(protocol) = port.get("protocol").and_then(Value::as_str) {
            errors.extend(protocol_errors(protocol, &format!("{item}.protocol")));
        }
    }
    errors
}

/// A port protocol: one of TCP, UDP, SCTP.
pub(crate) fn protocol_errors(protocol: &str, path: &str) -> Vec<FieldError> {
    one_of(protocol, &["SCTP", "TCP", "UDP"], path)
}

fn validate_env(vars: &[Value], path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, var) in vars.iter().enumerate() {
        let item = format!("{path}[{i}]");
        let name = text(var, "name");
        if name.is_empty() {
            errors.push(required(&format!("{item}.name"), ""));
        } else {
            for msg in env_var_name_errors(name) {
                errors.push(invalid(&format!("{item}.name"), name, &msg));
            }
        }
        let Some(from) = var.get("valueFrom").filter(|f| f.is_object()) else {
            continue;
        };
        let from_path = format!("{item}.valueFrom");
        let mut sources = 0;
        for source in [
            "fieldRef",
            "resourceFieldRef",
            "configMapKeyRef",
            "secretKeyRef",
        ] {
            let Some(body) = from.get(source).filter(|b| b.is_object()) else {
                continue;
            };
            sources += 1;
            let source_path = format!("{from_path}.{source}");
            match source {
                "fieldRef" => {
                    if text(body, "fieldPath").is_empty() {
                        errors.push(required(&format!("{source_path}.fieldPath"), ""));
                    }
                }
                "resourceFieldRef" => {
                    if text(body, "resource").is_empty() {
                        errors.push(required(&format!("{source_path}.resource"), ""));
                    }
                }
                _ => errors.extend(key_selector(body, &source_path)),
            }
        }
        let has_value = !text(var, "value").is_empty();
        let detail = if sources == 0 {
            Some(
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            )
        } else if has_value {
            Some("may not be specified when `value` is not empty")
        } else if sources > 1 {
            Some("may not have more than one field specified at a time")
        } else {
            None
        };
        if let Some(detail) = detail {
            errors.push(invalid(&from_path, "", detail));
        }
    }
    errors
}

/// A `configMapKeyRef`/`secretKeyRef`: a valid object name and a config key.
fn key_selector(body: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let name = text(body, "name");
    for msg in NameRule::Dns1123Subdomain.errors(name, false) {
        errors.push(invalid(&format!("{path}.name"), name, &msg));
    }
    let key = text(body, "key");
    if key.is_empty() {
        errors.push(required(&format!("{path}.key"), ""));
    } else {
        for msg in config_key_errors(key) {
            errors.push(invalid(&format!("{path}.key"), key, &msg));
        }
    }
    errors
}

fn validate_env_from(sources: &[Value], path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let item = format!("{path}[{i}]");
        let prefix = text(source, "prefix");
        if !prefix.is_empty() {
            for msg in env_var_name_errors(prefix) {
                errors.push(invalid(&format!("{item}.prefix"), prefix, &msg));
            }
        }
        let mut count = 0;
        for key in ["configMapRef", "secretRef"] {
            let Some(body) = source.get(key).filter(|b| b.is_object()) else {
                continue;
            };
            count += 1;
            let name = text(body, "name");
            if name.is_empty() {
                errors.push(required(&format!("{item}.{key}.name"), ""));
            } else {
                for msg in NameRule::Dns1123Subdomain.errors(name, true) {
                    errors.push(invalid(&format!("{item}.{key}.name"), name, &msg));
                }
            }
        }
        // Upstream reports these against the list, not the entry.
        if count == 0 {
            errors.push(invalid(
                path,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if count > 1 {
            errors.push(invalid(
                path,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
    errors
}

fn validate_mounts(
    mounts: &[Value],
    volumes: &BTreeMap<String, String>,
    path: &str,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut mount_points = BTreeSet::new();
    for (i, mount) in mounts.iter().enumerate() {
        let item = format!("{path}[{i}]");
        let name = text(mount, "name");
        if name.is_empty() {
            errors.push(required(&format!("{item}.name"), ""));
        }
        if !volumes.contains_key(name) {
            errors.push(not_found(&format!("{item}.name"), name));
        }
        let mount_path = text(mount, "mountPath");
        if mount_path.is_empty() {
            errors.push(required(&format!("{item}.mountPath"), ""));
        }
        if !mount_points.insert(mount_path) {
            errors.push(invalid(
                &format!("{item}.mountPath"),
                mount_path,
                "must be unique",
            ));
        }
        // Upstream reports sub-path problems against the list path, without the index.
        let sub_path = text(mount, "subPath");
        if !sub_path.is_empty() {
            errors.extend(local_descending_path(sub_path, &format!("{path}.subPath")));
        }
        let expr = text(mount, "subPathExpr");
        if !expr.is_empty() {
            if !sub_path.is_empty() {
                errors.push(invalid(
                    &format!("{item}.subPathExpr"),
                    expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            errors.extend(local_descending_path(expr, &format!("{path}.subPathExpr")));
        }
    }
    errors
}

fn validate_probe(kind: &str, probe: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = validate_handler(probe, &["exec", "httpGet", "tcpSocket", "grpc"], path);
    for key in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        if let Some(value) = int(probe, key)
            && value < 0
        {
            errors.push(invalid(&format!("{path}.{key}"), value, NEGATIVE_MSG));
        }
    }
    if let Some(grace) = int(probe, "terminationGracePeriodSeconds")
        && grace <= 0
    {
        errors.push(invalid(
            &format!("{path}.terminationGracePeriodSeconds"),
            grace,
            "must be greater than 0",
        ));
    }
    match kind {
        "livenessProbe" | "startupProbe" => {
            if let Some(success) = int(probe, "successThreshold")
                && success != 1
            {
                errors.push(invalid(
                    &format!("{path}.successThreshold"),
                    success,
                    "must be 1",
                ));
            }
        }
        _ => {
            if let Some(grace) = probe
                .get("terminationGracePeriodSeconds")
                .filter(|g| !g.is_null())
            {
                errors.push(invalid(
                    &format!("{path}.terminationGracePeriodSeconds"),
                    grace.clone(),
                    "must not be set for readinessProbes",
                ));
            }
        }
    }
    errors
}

/// `validateHandler`: exactly one of the handler kinds.
fn validate_handler(handler: &Value, kinds: &[&str], path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut found = false;
    for kind in kinds {
        let Some(body) = handler.get(*kind).filter(|b| b.is_object()) else {
            continue;
        };
        let item = format!("{path}.{kind}");
        if found {
            errors.push(forbidden(&item, "may not specify more than 1 handler type"));
            continue;
        }
        found = true;
        match *kind {
            "exec" if arr(body, "command").is_empty() => {
                errors.push(required(&format!("{item}.command"), ""));
            }
            "httpGet" => {
                if body.get("path").is_some_and(|p| p.as_str() == Some("")) {
                    errors.push(required(&format!("{item}.path"), ""));
                }
                errors.extend(port_num_or_name(body.get("port"), &format!("{item}.port")));
                if let Some(scheme) = body.get("scheme").and_then(Value::as_str) {
                    errors.extend(one_of(
                        scheme,
                        &["HTTP", "HTTPS"],
                        &format!("{item}.scheme"),
                    ));
                }
            }
            "tcpSocket" | "grpc" => {
                errors.extend(port_num_or_name(body.get("port"), &format!("{item}.port")));
            }
            _ => {}
        }
    }
    if !found {
        errors.push(required(path, "must specify a handler type"));
    }
    errors
}

/// `ValidatePortNumOrName` for an `IntOrString` port.
pub(crate) fn port_num_or_name(port: Option<&Value>, path: &str) -> Vec<FieldError> {
    match port {
        Some(Value::String(name)) => port_name_errors(name)
            .iter()
            .map(|msg| invalid(path, name.as_str(), msg))
            .collect(),
        Some(Value::Number(n)) => {
            let number = n.as_i64().unwrap_or(0);
            port_num_errors(number)
                .iter()
                .map(|msg| invalid(path, number, msg))
                .collect()
        }
        _ => port_num_errors(0)
            .iter()
            .map(|msg| invalid(path, 0, msg))
            .collect(),
    }
}

/// What an update may change in a pod's spec: container and init container images,
/// `activeDeadlineSeconds`, tolerations (upstream only allows additions) and
/// `terminationGracePeriodSeconds`.
pub(crate) fn validate_pod_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let strip = |v: &Value| {
        let mut spec = v["spec"].clone();
        for list in ["containers", "initContainers"] {
            if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
                for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                    c.remove("image");
                }
            }
        }
        if let Some(o) = spec.as_object_mut() {
            for key in [
                "activeDeadlineSeconds",
                "tolerations",
                "terminationGracePeriodSeconds",
                "ephemeralContainers",
            ] {
                o.remove(key);
            }
        }
        spec
    };
    if strip(old) == strip(new) {
        return Vec::new();
    }
    vec![forbidden(
        "spec",
        "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
    )]
}
