//! `x-kubernetes-embedded-resource` objects: `apiVersion` and `kind` required and well formed,
//! `metadata` valid object metadata (apiextensions-apiserver `schema/objectmeta` validation).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use localfargate_core::validation::{FieldError, dns1035_label_errors, validate_object_meta_named};
use serde_json::{Value, json};

use super::lists::{child, key};
use super::prune::{additional, items};
use super::report::{invalid, required};

/// The errors of every embedded resource in `obj` (at `path`, `""` for the resource itself,
/// whose own type and object metadata the API checks elsewhere).
pub(crate) fn embedded_meta_errors(
    obj: &Value,
    s: &JSONSchemaProps,
    path: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match obj {
        Value::Object(map) => {
            if s.x_kubernetes_embedded_resource == Some(true) {
                errs.extend(embedded_resource(map, path));
            }
            for (k, v) in map {
                if let Some(prop) = s.properties.as_ref().and_then(|p| p.get(k)) {
                    errs.extend(embedded_meta_errors(v, prop, &child(path, k)));
                } else if let Some(extra) = additional(s) {
                    errs.extend(embedded_meta_errors(v, extra, &key(path, k)));
                }
            }
        }
        Value::Array(list) => {
            if let Some(item) = items(s) {
                for (i, v) in list.iter().enumerate() {
                    errs.extend(embedded_meta_errors(v, item, &format!("{path}[{i}]")));
                }
            }
        }
        _ => {}
    }
    errs
}

/// `path.ValidatePathSegmentName`, the name rule of embedded objects.
fn path_segment_errors(name: &str, _prefix: bool) -> Vec<String> {
    if name == "." || name == ".." {
        return vec![format!("may not be '{name}'")];
    }
    let mut out = Vec::new();
    for bad in ["/", "%"] {
        if name.contains(bad) {
            out.push(format!("may not contain '{bad}'"));
        }
    }
    out
}

fn embedded_resource(map: &serde_json::Map<String, Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let api_version_path = child(path, "apiVersion");
    let kind_path = child(path, "kind");
    if !map.contains_key("apiVersion") {
        errs.push(required(&api_version_path, ""));
    }
    if !map.contains_key("kind") {
        errs.push(required(&kind_path, ""));
    }
    for (k, v) in map {
        match k.as_str() {
            "apiVersion" => match v.as_str() {
                None => errs.push(invalid(&api_version_path, v, "must be a string")),
                Some("") => errs.push(required(&api_version_path, "")),
                Some(av) if av.matches('/').count() > 1 => errs.push(invalid(
                    &api_version_path,
                    v,
                    format!("unexpected GroupVersion string: {av}"),
                )),
                Some(_) => {}
            },
            "kind" => match v.as_str() {
                None => errs.push(invalid(&kind_path, v, "must be a string")),
                Some("") => errs.push(required(&kind_path, "")),
                Some(kind) => {
                    let problems = dns1035_label_errors(&kind.to_lowercase());
                    if !problems.is_empty() {
                        errs.push(invalid(
                            &kind_path,
                            v,
                            format!(
                                "may have mixed case, but should otherwise match: {}",
                                problems.join(",")
                            ),
                        ));
                    }
                }
            },
            "metadata" => {
                let meta_path = child(path, "metadata");
                let mut meta = match v {
                    Value::Object(meta) => meta.clone(),
                    // JSON null decodes into an empty ObjectMeta.
                    Value::Null => serde_json::Map::new(),
                    other => {
                        errs.push(invalid(
                            &meta_path,
                            other,
                            format!(
                                "json: cannot unmarshal {} into Go value of type v1.ObjectMeta",
                                json_type(other)
                            ),
                        ));
                        continue;
                    }
                };
                let name_missing = meta
                    .get("name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty);
                if name_missing {
                    // Upstream sets a placeholder so that a missing name is no error.
                    meta.insert("name".to_string(), json!("fakename"));
                }
                let namespaced = meta
                    .get("namespace")
                    .and_then(Value::as_str)
                    .is_some_and(|ns| !ns.is_empty());
                errs.extend(validate_object_meta_named(
                    &json!({ "metadata": meta }),
                    namespaced,
                    &path_segment_errors,
                    &meta_path,
                ));
            }
            _ => {}
        }
    }
    errs
}

/// The JSON type name Go's `encoding/json` uses in an unmarshal error.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
