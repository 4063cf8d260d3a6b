//! Strict field validation: the fields of an object its schema does not know, as
//! kube-apiserver's strict decoding reports them (`spec.containers[0].foo`), and their removal,
//! as its decoding drops them.

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

/// Where an unknown field is: its path as upstream prints it, and the steps to its parent object.
struct Unknown {
    path: String,
    parent: Vec<Step>,
    name: String,
}

#[derive(Clone)]
enum Step {
    Field(String),
    Index(usize),
}

/// The position of the walk in the object.
struct At {
    path: String,
    steps: Vec<Step>,
}

impl At {
    fn field(&self, name: &str) -> At {
        let mut steps = self.steps.clone();
        steps.push(Step::Field(name.to_string()));
        At {
            path: if self.path.is_empty() {
                name.to_string()
            } else {
                format!("{}.{name}", self.path)
            },
            steps,
        }
    }

    fn index(&self, i: usize) -> At {
        let mut steps = self.steps.clone();
        steps.push(Step::Index(i));
        At {
            path: format!("{}[{i}]", self.path),
            steps,
        }
    }
}

/// Walks `value` against `schema`, collecting the fields it does not know.
fn walk(
    definitions: &Map<String, Value>,
    schema: &Value,
    value: &Value,
    at: &At,
    out: &mut Vec<Unknown>,
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
            for (name, v) in fields {
                let field_schema = match properties.and_then(|p| p.get(name)) {
                    Some(s) => Some(s),
                    None if embedded && name == "metadata" => Some(&object_meta),
                    None if embedded && matches!(name.as_str(), "apiVersion" | "kind") => None,
                    None => match additional {
                        Some(s) if s.is_object() => Some(s),
                        Some(Value::Bool(true)) => None,
                        _ if preserve => None,
                        _ => {
                            out.push(Unknown {
                                path: at.field(name).path,
                                parent: at.steps.clone(),
                                name: name.clone(),
                            });
                            continue;
                        }
                    },
                };
                if let Some(s) = field_schema {
                    walk(definitions, s, v, &at.field(name), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items").filter(|i| i.is_object()) {
                for (i, v) in items.iter().enumerate() {
                    walk(definitions, item, v, &at.index(i), out);
                }
            }
        }
        _ => {}
    }
}

fn unknown(definitions: &Map<String, Value>, name: &str, obj: &Value) -> Vec<Unknown> {
    let mut out = Vec::new();
    if let Some(schema) = definitions.get(name) {
        let root = At {
            path: String::new(),
            steps: Vec::new(),
        };
        walk(definitions, schema, obj, &root, &mut out);
    }
    out
}

/// The paths of the fields of `obj` that definition `name` does not know.
pub fn unknown_fields(definitions: &Map<String, Value>, name: &str, obj: &Value) -> Vec<String> {
    unknown(definitions, name, obj)
        .into_iter()
        .map(|u| u.path)
        .collect()
}

/// Where each field of `obj` that definition `name` does not know is: the steps to it from the
/// root, each a field name (a JSON string) or a list index (a JSON number).
pub fn unknown_field_steps(
    definitions: &Map<String, Value>,
    name: &str,
    obj: &Value,
) -> Vec<Vec<Value>> {
    unknown(definitions, name, obj)
        .into_iter()
        .map(|u| {
            let mut steps: Vec<Value> = u
                .parent
                .iter()
                .map(|s| match s {
                    Step::Field(f) => Value::String(f.clone()),
                    Step::Index(i) => Value::from(*i),
                })
                .collect();
            steps.push(Value::String(u.name));
            steps
        })
        .collect()
}

/// Removes the fields of `obj` that definition `name` does not know, except those at a path in
/// `keep`, as kube-apiserver's decoding drops them; the paths removed.
pub fn prune(
    definitions: &Map<String, Value>,
    name: &str,
    obj: &mut Value,
    keep: &[String],
) -> Vec<String> {
    let mut removed = Vec::new();
    for u in unknown(definitions, name, obj) {
        if keep.contains(&u.path) {
            continue;
        }
        let mut parent = Some(&mut *obj);
        for step in &u.parent {
            parent = parent.and_then(|p| match step {
                Step::Field(f) => p.get_mut(f.as_str()),
                Step::Index(i) => p.get_mut(*i),
            });
        }
        if let Some(Value::Object(fields)) = parent {
            fields.remove(&u.name);
        }
        removed.push(u.path);
    }
    removed
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
