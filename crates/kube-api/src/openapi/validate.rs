//! Strict field validation: the fields of an object its schema does not know, as
//! kube-apiserver's strict decoding reports them (`spec.containers[0].foo`).

use serde_json::{Map, Value};

const OBJECT_META: &str = "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Follows a `$ref` to its definition.
fn resolve<'a>(definitions: &'a Map<String, Value>, mut schema: &'a Value) -> &'a Value {
    // A chain of references is short; the bound only guards against a cycle of them.
    for _ in 0..8 {
        match schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/definitions/"))
            .and_then(|name| definitions.get(name))
        {
            Some(target) => schema = target,
            None => break,
        }
    }
    schema
}

fn child(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// Walks `value` against `schema`, recording the paths of unknown fields; with `prune`, removes
/// those `prune` accepts.
fn walk(
    definitions: &Map<String, Value>,
    schema: &Value,
    value: &mut Value,
    path: &str,
    out: &mut Vec<String>,
    prune: Option<&dyn Fn(&str) -> bool>,
) {
    let schema = resolve(definitions, schema);
    match value {
        Value::Object(fields) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            if properties.is_none() && !additional.is_some_and(Value::is_object) {
                // A free-form object (RawExtension, FieldsV1, a map of anything), or a
                // non-object type, whose mismatch is another error than an unknown field.
                return;
            }
            let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
            let embedded = schema["x-kubernetes-embedded-resource"] == true;
            let object_meta = serde_json::json!({"$ref": OBJECT_META});
            let mut removed = Vec::new();
            for (name, v) in fields.iter_mut() {
                let at = child(path, name);
                let field_schema = match properties.and_then(|p| p.get(name)) {
                    Some(s) => Some(s),
                    None if embedded && name == "metadata" => Some(&object_meta),
                    None if embedded && matches!(name.as_str(), "apiVersion" | "kind") => None,
                    None => match additional {
                        Some(s) if s.is_object() => Some(s),
                        Some(Value::Bool(true)) => None,
                        _ if preserve => None,
                        _ => {
                            if prune.is_some_and(|p| p(&at)) {
                                removed.push(name.clone());
                            }
                            out.push(at);
                            continue;
                        }
                    },
                };
                if let Some(s) = field_schema {
                    walk(definitions, s, v, &at, out, prune);
                }
            }
            for name in removed {
                fields.remove(&name);
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items").filter(|i| i.is_object()) {
                for (i, v) in items.iter_mut().enumerate() {
                    walk(definitions, item, v, &format!("{path}[{i}]"), out, prune);
                }
            }
        }
        _ => {}
    }
}

/// The paths of the fields of `obj` that definition `name` does not know.
pub fn unknown_fields(definitions: &Map<String, Value>, name: &str, obj: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(schema) = definitions.get(name) {
        // The walk only removes with a pruner; a copy keeps `obj` borrowed immutably.
        let mut copy = obj.clone();
        walk(definitions, schema, &mut copy, "", &mut out, None);
    }
    out
}

/// Removes the fields of `obj` that definition `name` does not know, except those at a path in
/// `keep`, as kube-apiserver's decoding drops them; the paths removed.
pub fn prune(
    definitions: &Map<String, Value>,
    name: &str,
    obj: &mut Value,
    keep: &[String],
) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(schema) = definitions.get(name) {
        let pruner = |path: &str| !keep.iter().any(|k| k == path);
        walk(definitions, schema, obj, "", &mut found, Some(&pruner));
    }
    found.retain(|path| !keep.contains(path));
    found
}

/// kube-apiserver's message for unknown fields under `fieldValidation=Strict`:
/// `strict decoding error: unknown field "spec.foo", unknown field "spec.bar"`.
pub fn strict_decoding_message(fields: &[String]) -> String {
    let each: Vec<String> = fields
        .iter()
        .map(|f| format!("unknown field {f:?}"))
        .collect();
    format!("strict decoding error: {}", each.join(", "))
}
