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

fn walk(
    definitions: &Map<String, Value>,
    schema: &Value,
    value: &Value,
    path: &str,
    out: &mut Vec<String>,
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
            for (name, v) in fields {
                let at = child(path, name);
                if let Some(s) = properties.and_then(|p| p.get(name)) {
                    walk(definitions, s, v, &at, out);
                } else if embedded && matches!(name.as_str(), "apiVersion" | "kind") {
                } else if embedded && name == "metadata" {
                    walk(
                        definitions,
                        &serde_json::json!({"$ref": OBJECT_META}),
                        v,
                        &at,
                        out,
                    );
                } else if let Some(s) = additional.filter(|a| a.is_object()) {
                    walk(definitions, s, v, &at, out);
                } else if !(preserve || additional == Some(&Value::Bool(true))) {
                    out.push(at);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items").filter(|i| i.is_object()) {
                for (i, v) in items.iter().enumerate() {
                    walk(definitions, item, v, &format!("{path}[{i}]"), out);
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
        walk(definitions, schema, obj, "", &mut out);
    }
    out
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
