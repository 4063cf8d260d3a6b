//! ConfigMap and Secret (core `ValidateConfigMap`, `ValidateSecret` and their updates).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::field::{FieldError, forbidden, invalid, required, too_long};
use super::names::config_key_errors;

/// `MaxSecretSize`, the bound on a ConfigMap's or a Secret's data: 1 MiB.
const MAX_DATA_SIZE: usize = 1024 * 1024;
const IMMUTABLE_MSG: &str = "field is immutable when `immutable` is set";

fn map<'a>(obj: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    obj.get(key).and_then(Value::as_object)
}

/// Bytes a base64 value decodes to (what upstream counts); its text length when it is not base64.
fn decoded_len(value: &Value) -> usize {
    let text = value.as_str().unwrap_or("");
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_or(text.len(), |bytes| bytes.len())
}

pub(crate) fn validate_config_map(obj: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let data = map(obj, "data");
    let binary = map(obj, "binaryData");
    let mut total = 0usize;
    for (key, value) in data.into_iter().flatten() {
        let path = format!("data[{key}]");
        for msg in config_key_errors(key) {
            errors.push(invalid(&path, key.as_str(), &msg));
        }
        if binary.is_some_and(|b| b.contains_key(key)) {
            errors.push(invalid(
                &path,
                key.as_str(),
                "duplicate of key present in binaryData",
            ));
        }
        total += value.as_str().map_or(0, str::len);
    }
    for (key, value) in binary.into_iter().flatten() {
        for msg in config_key_errors(key) {
            errors.push(invalid(&format!("binaryData[{key}]"), key.as_str(), &msg));
        }
        total += decoded_len(value);
    }
    if total > MAX_DATA_SIZE {
        // Upstream reports this against the whole object: an empty field path.
        errors.push(too_long("", MAX_DATA_SIZE));
    }
    errors
}

pub(crate) fn validate_config_map_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if is_immutable(old) {
        if !is_immutable(new) {
            errors.push(forbidden("immutable", IMMUTABLE_MSG));
        }
        for key in ["data", "binaryData"] {
            if !same_map(old, new, key) {
                errors.push(forbidden(key, IMMUTABLE_MSG));
            }
        }
    }
    errors
}

fn is_immutable(obj: &Value) -> bool {
    obj.get("immutable").and_then(Value::as_bool) == Some(true)
}

/// Equal maps, an absent map and an empty one counting the same (as Go's nil and empty maps
/// compare under `reflect.DeepEqual` after decoding drops empty ones).
fn same_map(old: &Value, new: &Value, key: &str) -> bool {
    let empty = Map::new();
    map(old, key).unwrap_or(&empty) == map(new, key).unwrap_or(&empty)
}

/// A Secret's data as the API sees it after decoding: `data` (base64) with `stringData` merged
/// over it.
fn secret_data(obj: &Value) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = map(obj, "data")
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let text = v.as_str().unwrap_or("");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap_or_else(|_| text.as_bytes().to_vec());
            (k.clone(), bytes)
        })
        .collect();
    for (key, value) in map(obj, "stringData").into_iter().flatten() {
        data.insert(
            key.clone(),
            value.as_str().unwrap_or("").as_bytes().to_vec(),
        );
    }
    data
}

pub(crate) fn validate_secret(obj: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let data = secret_data(obj);
    let mut total = 0usize;
    for (key, bytes) in &data {
        for msg in config_key_errors(key) {
            errors.push(invalid(&format!("data[{key}]"), key.as_str(), &msg));
        }
        total += bytes.len();
    }
    if total > MAX_DATA_SIZE {
        errors.push(too_long("data", MAX_DATA_SIZE));
    }
    let need = |key: &str, errors: &mut Vec<FieldError>| {
        if !data.contains_key(key) {
            errors.push(required(&format!("data[{key}]"), ""));
        }
    };
    match obj.get("type").and_then(Value::as_str).unwrap_or("") {
        "kubernetes.io/service-account-token" => {
            let name = obj["metadata"]["annotations"]["kubernetes.io/service-account.name"]
                .as_str()
                .unwrap_or("");
            if name.is_empty() {
                errors.push(required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" => {
            need(".dockercfg", &mut errors);
            errors.extend(json_content(obj, ".dockercfg"));
        }
        "kubernetes.io/dockerconfigjson" => {
            need(".dockerconfigjson", &mut errors);
            errors.extend(json_content(obj, ".dockerconfigjson"));
        }
        "kubernetes.io/basic-auth"
            if !data.contains_key("username") && !data.contains_key("password") =>
        {
            need("username", &mut errors);
            need("password", &mut errors);
        }
        "kubernetes.io/ssh-auth" if data.get("ssh-privatekey").is_none_or(Vec::is_empty) => {
            errors.push(required("data[ssh-privatekey]", ""));
        }
        "kubernetes.io/tls" => {
            need("tls.crt", &mut errors);
            need("tls.key", &mut errors);
        }
        _ => {}
    }
    errors
}

/// A docker config key must hold a JSON object; upstream shows Go's decoding error, which we
/// cannot reproduce word for word, so the detail names the problem in serde's words.
fn json_content(obj: &Value, key: &str) -> Vec<FieldError> {
    let raw = match (
        obj["stringData"].get(key).and_then(Value::as_str),
        obj["data"].get(key).and_then(Value::as_str),
    ) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(encoded)) => match base64::engine::general_purpose::STANDARD.decode(encoded) {
            Ok(bytes) => bytes,
            Err(_) => return Vec::new(),
        },
        (None, None) => return Vec::new(),
    };
    match serde_json::from_slice::<Map<String, Value>>(&raw) {
        Ok(_) => Vec::new(),
        Err(e) => vec![invalid(
            &format!("data[{key}]"),
            "<secret contents redacted>",
            &e.to_string(),
        )],
    }
}

pub(crate) fn validate_secret_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let type_of = |v: &Value| {
        v.get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if type_of(old) != type_of(new) {
        errors.push(invalid("type", type_of(new), "field is immutable"));
    }
    if is_immutable(old) {
        if !is_immutable(new) {
            errors.push(forbidden("immutable", IMMUTABLE_MSG));
        }
        if secret_data(old) != secret_data(new) {
            errors.push(forbidden("data", IMMUTABLE_MSG));
        }
    }
    errors
}
