//! OpenAPI 3.0 documents from the v2 one, one per group-version, converted as kube-openapi's
//! `openapiconv` does: `#/definitions/X` becomes `#/components/schemas/X`, a `$ref` with
//! siblings is wrapped in `allOf` (OpenAPI 3.0 ignores a reference's siblings), body parameters
//! become request bodies and response schemas move under their media types. Shared parameters
//! are inlined, as kube-apiserver's own v3 documents have them.

use serde_json::{Map, Value, json};

use super::GroupVersion;
use super::restrict::reachable;

const V2_DEFINITIONS: &str = "#/definitions/";
const V3_SCHEMAS: &str = "#/components/schemas/";

/// A v2 schema in v3.
pub fn schema(v: &Value) -> Value {
    let Some(map) = v.as_object() else {
        return v.clone();
    };
    let mut out = Map::new();
    for (k, val) in map {
        let converted = match k.as_str() {
            "$ref" => match val.as_str().and_then(|r| r.strip_prefix(V2_DEFINITIONS)) {
                Some(name) => json!(format!("{V3_SCHEMAS}{name}")),
                None => val.clone(),
            },
            "properties" => Value::Object(
                val.as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, s)| (name.clone(), schema(s)))
                    .collect(),
            ),
            "items" | "additionalProperties" | "additionalItems" if val.is_object() => schema(val),
            "items" | "allOf" | "anyOf" | "oneOf" if val.is_array() => {
                Value::Array(val.as_array().into_iter().flatten().map(schema).collect())
            }
            _ => val.clone(),
        };
        out.insert(k.clone(), converted);
    }
    if out.len() > 1
        && let Some(reference) = out.remove("$ref")
    {
        out.insert("allOf".into(), json!([{"$ref": reference}]));
    }
    Value::Object(out)
}

/// The types v2 can only call strings, which kube-apiserver's v3 documents state as what they
/// are (kube-openapi's `OpenAPIV3OneOfTypes`): a quantity is a string or a number, an
/// int-or-string an integer or a string. `kubectl explain` then names them (`Quantity`).
fn one_of_types(name: &str, mut converted: Value) -> Value {
    let types = match name {
        "io.k8s.apimachinery.pkg.api.resource.Quantity" => ["string", "number"],
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString" => ["integer", "string"],
        _ => return converted,
    };
    if let Some(map) = converted.as_object_mut() {
        map.remove("type");
        map.insert(
            "oneOf".into(),
            Value::Array(types.iter().map(|t| json!({"type": t})).collect()),
        );
    }
    converted
}

/// A v2 parameter (after resolving a shared one) as a v3 parameter.
fn parameter(p: &Value) -> Value {
    let mut out = Map::new();
    for key in ["name", "in", "description", "required", "allowEmptyValue"] {
        if let Some(v) = p.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    let param_schema = match p.get("schema") {
        Some(s) => schema(s),
        None => {
            let mut s = Map::new();
            for key in ["type", "format", "uniqueItems", "items", "enum", "default"] {
                if let Some(v) = p.get(key) {
                    s.insert(key.into(), v.clone());
                }
            }
            Value::Object(s)
        }
    };
    out.insert("schema".into(), param_schema);
    for (k, v) in p.as_object().into_iter().flatten() {
        if k.starts_with("x-") {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

fn resolve<'a>(v2: &'a Value, p: &'a Value) -> &'a Value {
    match p
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/parameters/"))
    {
        Some(name) => &v2["parameters"][name],
        None => p,
    }
}

fn media(types: Option<&Value>, s: &Value) -> Value {
    Value::Object(
        types
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|t| (t.to_string(), json!({"schema": schema(s)})))
            .collect(),
    )
}

fn operation(v2: &Value, op: &Value) -> Value {
    let mut out = Map::new();
    for (k, v) in op.as_object().into_iter().flatten() {
        if matches!(
            k.as_str(),
            "tags" | "summary" | "description" | "operationId" | "deprecated" | "externalDocs"
        ) || k.starts_with("x-")
        {
            out.insert(k.clone(), v.clone());
        }
    }
    let mut parameters = Vec::new();
    for p in op["parameters"].as_array().into_iter().flatten() {
        let p = resolve(v2, p);
        match p.get("schema") {
            Some(body) if p["in"] == "body" => {
                out.insert(
                    "requestBody".into(),
                    json!({"content": media(op.get("consumes"), body)}),
                );
            }
            _ => parameters.push(parameter(p)),
        }
    }
    if !parameters.is_empty() {
        out.insert("parameters".into(), Value::Array(parameters));
    }
    let responses: Map<String, Value> = op["responses"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(code, r)| {
            let mut response = json!({"description": r["description"]});
            if let Some(s) = r.get("schema") {
                response["content"] = media(op.get("produces"), s);
            }
            (code.clone(), response)
        })
        .collect();
    out.insert("responses".into(), Value::Object(responses));
    Value::Object(out)
}

fn path_item(v2: &Value, item: &Value) -> Value {
    let mut out = Map::new();
    for (k, v) in item.as_object().into_iter().flatten() {
        let converted = match k.as_str() {
            "parameters" => Value::Array(
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| parameter(resolve(v2, p)))
                    .collect(),
            ),
            "get" | "put" | "post" | "delete" | "options" | "head" | "patch" => operation(v2, v),
            _ if k.starts_with("x-") => v.clone(),
            _ => continue,
        };
        out.insert(k.clone(), converted);
    }
    Value::Object(out)
}

/// The v3 document of one group-version: its paths and the schemas they reach.
pub fn document(v2: &Value, gv: &GroupVersion) -> Value {
    let prefix = gv.url_prefix();
    let v2_paths: Vec<(&String, &Value)> = v2["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(p, _)| {
            p.strip_prefix(&prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .collect();
    let roots: Vec<&Value> = v2_paths.iter().map(|(_, v)| *v).collect();
    let (definitions, _) = reachable(v2, [], &roots);
    let paths: Map<String, Value> = v2_paths
        .iter()
        .map(|(p, item)| ((*p).clone(), path_item(v2, item)))
        .collect();
    let schemas: Map<String, Value> = definitions
        .iter()
        .filter_map(|name| {
            v2["definitions"]
                .get(name)
                .map(|d| (name.clone(), one_of_types(name, schema(d))))
        })
        .collect();
    let security_schemes: Map<String, Value> = v2["securityDefinitions"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, d)| {
            let mut s = Map::new();
            for key in ["type", "description", "name", "in"] {
                if let Some(v) = d.get(key) {
                    s.insert(key.into(), v.clone());
                }
            }
            (name.clone(), Value::Object(s))
        })
        .collect();
    json!({
        "openapi": "3.0.0",
        "info": v2["info"],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": security_schemes},
    })
}
