//! Custom resources in the v2 document: a CRD version's OpenAPI v3 schema published as a v2
//! definition (named as kube-apiserver names CRD definitions, the group reversed:
//! `com.example.stable.v1.CronTab`), its list, and its resource paths.

use serde_json::{Map, Value, json};

use super::restrict::reachable;
use super::{CustomResource, OpenApiError, upstream};

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";
/// The upstream definition whose `apiVersion`, `kind` and `metadata` descriptions a custom
/// resource's definition reuses, as every upstream kind has the same ones.
const TYPE_META_SOURCE: &str = "io.k8s.api.core.v1.ConfigMap";
const LIST_SOURCE: &str = "io.k8s.api.core.v1.ConfigMapList";

/// `stable.example.com`, `v1`, `CronTab` → `com.example.stable.v1.CronTab`.
pub fn definition_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/definitions/{name}")})
}

/// A structural v3 schema as v2 can state it: what v2 lacks (`nullable`, `anyOf`, `oneOf`,
/// `not`, `allOf`) is dropped, as kube-apiserver does when it publishes CRDs in v2.
fn to_v2(schema: &Value) -> Value {
    let Some(map) = schema.as_object() else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (k, v) in map {
        let converted = match k.as_str() {
            "nullable" | "anyOf" | "oneOf" | "not" | "allOf" => continue,
            "properties" => Value::Object(
                v.as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, s)| (name.clone(), to_v2(s)))
                    .collect(),
            ),
            "items" | "additionalProperties" if v.is_object() => to_v2(v),
            _ => v.clone(),
        };
        out.insert(k.clone(), converted);
    }
    Value::Object(out)
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!([{"group": group, "kind": kind, "version": version}])
}

/// Add `c` to a v2 document.
pub fn add(v2: &mut Value, c: &CustomResource) -> Result<(), OpenApiError> {
    let r = &c.resource;
    if !c.schema.is_object() {
        return Err(OpenApiError::CustomSchema {
            group: r.group.clone(),
            kind: r.kind.clone(),
        });
    }
    let spec = upstream::spec()?;
    // The meta types a custom resource refers to, in case no upstream resource brought them.
    let (needed, _) = reachable(
        spec,
        [OBJECT_META, LIST_META, STATUS, DELETE_OPTIONS].map(String::from),
        &[],
    );
    if !v2["definitions"].is_object() {
        v2["definitions"] = json!({});
    }
    for name in needed {
        if v2["definitions"].get(&name).is_none() {
            v2["definitions"][&name] = spec["definitions"][&name].clone();
        }
    }
    let type_meta = &spec["definitions"][TYPE_META_SOURCE]["properties"];
    let list_props = &spec["definitions"][LIST_SOURCE]["properties"];
    let name = definition_name(&r.group, &r.version, &r.kind);
    let mut def = to_v2(&c.schema);
    if def.get("type").is_none() {
        def["type"] = json!("object");
    }
    if !def["properties"].is_object() && def["x-kubernetes-preserve-unknown-fields"] != true {
        def["properties"] = json!({});
    }
    if def["properties"].is_object() {
        for field in ["apiVersion", "kind", "metadata"] {
            def["properties"][field] = type_meta[field].clone();
        }
    }
    def["x-kubernetes-group-version-kind"] = gvk(&r.group, &r.version, &r.kind);
    let list_name = format!("{name}List");
    // OpenAPI schemas are JSON by nature: the list's properties are copied from a schema.
    let list = json!({
        "description": format!("{}List is a list of {}", r.kind, r.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": list_props["apiVersion"],
            "kind": list_props["kind"],
            "metadata": list_props["metadata"],
            "items": {
                "description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md", r.plural),
                "type": "array",
                "items": reference(&name),
            },
        },
        "x-kubernetes-group-version-kind": gvk(&r.group, &r.version, &format!("{}List", r.kind)),
    });
    v2["definitions"][&name] = def;
    v2["definitions"][&list_name] = list;
    if !v2["paths"].is_object() {
        v2["paths"] = json!({});
    }
    for (path, item) in paths(c, &name, &list_name) {
        v2["paths"][path] = item;
    }
    Ok(())
}

fn path_parameter(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "type": "string", "uniqueItems": true})
}

fn query_parameter(name: &str) -> Value {
    json!({"name": name, "in": "query", "type": "string", "uniqueItems": true})
}

/// The collection and item paths of a custom resource, with the operations kubectl looks for.
fn paths(c: &CustomResource, name: &str, list_name: &str) -> Vec<(String, Value)> {
    let r = &c.resource;
    let prefix = format!("/apis/{}/{}", r.group, r.version);
    let collection = if r.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{prefix}/{}", r.plural)
    };
    let gvk = json!({"group": r.group, "kind": r.kind, "version": r.version});
    let tag = format!(
        "{}_{}",
        r.group.split('.').next().unwrap_or(&r.group),
        r.version
    );
    let write_parameters = || {
        ["dryRun", "fieldManager", "fieldValidation"]
            .map(query_parameter)
            .to_vec()
    };
    let op = |action: &str, verb: &str, target: &str, body: Option<Value>, consumes: &[&str]| {
        let mut parameters = Vec::new();
        if let Some(schema) = body {
            parameters
                .push(json!({"name": "body", "in": "body", "required": true, "schema": schema}));
        }
        if matches!(action, "post" | "put" | "patch") {
            parameters.extend(write_parameters());
        }
        json!({
            "description": format!("{verb} {}", r.kind),
            "operationId": format!("{}{}", operation_verb(action), r.kind),
            "consumes": consumes,
            "produces": ["application/json", "application/yaml"],
            "schemes": ["https"],
            "tags": [tag],
            "parameters": parameters,
            "responses": {
                "200": {"description": "OK", "schema": reference(target)},
                "401": {"description": "Unauthorized"},
            },
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
        })
    };
    let scope_parameters = |with_name: bool| {
        let mut p = Vec::new();
        if with_name {
            p.push(path_parameter("name"));
        }
        if r.namespaced {
            p.push(path_parameter("namespace"));
        }
        Value::Array(p)
    };
    let patch_types = [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    ];
    let mut out = vec![
        (
            collection.clone(),
            json!({
                "get": op("list", "list or watch objects of kind", list_name, None, &["*/*"]),
                "post": op("post", "create a", name, Some(reference(name)), &["*/*"]),
                "delete": op("deletecollection", "delete collection of", STATUS, None, &["*/*"]),
                "parameters": scope_parameters(false),
            }),
        ),
        (
            format!("{collection}/{{name}}"),
            json!({
                "get": op("get", "read the specified", name, None, &["*/*"]),
                "put": op("put", "replace the specified", name, Some(reference(name)), &["*/*"]),
                "patch": op("patch", "partially update the specified", name, Some(json!({"type": "object"})), &patch_types),
                "delete": op("delete", "delete a", STATUS, Some(reference(DELETE_OPTIONS)), &["*/*"]),
                "parameters": scope_parameters(true),
            }),
        ),
    ];
    let item = format!("{collection}/{{name}}");
    if r.subresources.iter().any(|s| s == "status") {
        let mut get = op("get", "read status of the specified", name, None, &["*/*"]);
        get["operationId"] = json!(format!("read{}Status", r.kind));
        let mut put = op(
            "put",
            "replace status of the specified",
            name,
            Some(reference(name)),
            &["*/*"],
        );
        put["operationId"] = json!(format!("replace{}Status", r.kind));
        let mut patch = op(
            "patch",
            "partially update status of the specified",
            name,
            Some(json!({"type": "object"})),
            &patch_types,
        );
        patch["operationId"] = json!(format!("patch{}Status", r.kind));
        out.push((
            format!("{item}/status"),
            json!({"get": get, "put": put, "patch": patch, "parameters": scope_parameters(true)}),
        ));
    }
    if r.subresources.iter().any(|s| s == "scale") {
        // The scale subresource speaks autoscaling/v1's Scale, whatever the resource's group.
        let scale_gvk = json!({"group": "autoscaling", "kind": "Scale", "version": "v1"});
        let mut get = op("get", "read scale of the specified", SCALE, None, &["*/*"]);
        get["operationId"] = json!(format!("read{}Scale", r.kind));
        let mut put = op(
            "put",
            "replace scale of the specified",
            SCALE,
            Some(reference(SCALE)),
            &["*/*"],
        );
        put["operationId"] = json!(format!("replace{}Scale", r.kind));
        let mut patch = op(
            "patch",
            "partially update scale of the specified",
            SCALE,
            Some(json!({"type": "object"})),
            &patch_types,
        );
        patch["operationId"] = json!(format!("patch{}Scale", r.kind));
        for o in [&mut get, &mut put, &mut patch] {
            o["x-kubernetes-group-version-kind"] = scale_gvk.clone();
        }
        out.push((
            format!("{item}/scale"),
            json!({"get": get, "put": put, "patch": patch, "parameters": scope_parameters(true)}),
        ));
    }
    if r.namespaced {
        let mut all = op(
            "list",
            "list or watch objects of kind",
            list_name,
            None,
            &["*/*"],
        );
        all["operationId"] = json!(format!("list{}ForAllNamespaces", r.kind));
        out.push((format!("{prefix}/{}", r.plural), json!({"get": all})));
    }
    out
}

/// The verb upstream's operation ids start with.
fn operation_verb(action: &str) -> &str {
    match action {
        "post" => "create",
        "put" => "replace",
        "get" => "read",
        "deletecollection" => "deleteCollection",
        other => other,
    }
}
