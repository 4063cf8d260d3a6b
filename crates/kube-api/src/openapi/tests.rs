use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use prost::Message;
use serde_json::{Value, json};

use super::*;

fn catalog() -> &'static Catalog {
    served().unwrap()
}

/// Every `$ref` of a document, each with the section it points into.
fn dangling(doc: &Value, prefix: &str, section: &Value) -> Vec<String> {
    let mut all = Vec::new();
    restrict::refs(doc, &mut all);
    all.into_iter()
        .filter_map(|r| r.strip_prefix(prefix))
        .filter(|name| section.get(*name).is_none())
        .map(String::from)
        .collect()
}

fn resource(
    group: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    subs: &[&str],
) -> ServedResource {
    ServedResource {
        group: group.into(),
        version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
        namespaced,
        subresources: subs.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn v2_is_restricted_to_the_served_resources() {
    let catalog = CatalogBuilder::new()
        .serve([
            resource("", "Pod", "pods", true, &["status", "eviction"]),
            resource("", "Node", "nodes", false, &["status"]),
            resource("apps", "Deployment", "deployments", true, &["scale"]),
            // Not upstream's: served with a schema that keeps every field.
            resource("example.com", "Widget", "widgets", false, &[]),
        ])
        .build()
        .unwrap();
    let v2 = catalog.v2();
    let definitions = &v2["definitions"];
    for present in [
        "io.k8s.api.core.v1.Pod",
        "io.k8s.api.core.v1.PodList",
        "io.k8s.api.core.v1.Node",
        "io.k8s.api.apps.v1.Deployment",
        "io.k8s.api.apps.v1.DeploymentList",
        "io.k8s.api.autoscaling.v1.Scale",
        "io.k8s.api.policy.v1.Eviction",
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "com.example.v1.Widget",
    ] {
        assert!(definitions.get(present).is_some(), "{present} missing");
    }
    for absent in [
        "io.k8s.api.core.v1.Service",
        "io.k8s.api.apps.v1.ReplicaSet",
        "io.k8s.api.batch.v1.Job",
        "io.k8s.api.rbac.v1.Role",
    ] {
        assert!(definitions.get(absent).is_none(), "{absent} is not served");
    }
    let paths: Vec<&String> = v2["paths"].as_object().unwrap().keys().collect();
    for present in [
        "/api/v1/namespaces/{namespace}/pods/{name}/eviction",
        "/api/v1/namespaces/{namespace}/pods/{name}/status",
        "/api/v1/pods",
        "/api/v1/nodes/{name}/status",
        "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
        "/apis/apps/v1/",
        "/apis/example.com/v1/widgets/{name}",
    ] {
        assert!(paths.iter().any(|p| *p == present), "{present} missing");
    }
    let unserved = [
        "/watch/",
        "/log",
        "/exec",
        "/binding",
        "proxy",
        "portforward",
        "configmaps",
        "replicasets",
        "/apis/batch",
        "/deployments/{name}/status",
    ];
    for p in &paths {
        assert!(!unserved.iter().any(|u| p.contains(u)), "{p} is not served");
    }
    // Closed under references: every definition and shared parameter referred to is there.
    assert_eq!(
        dangling(v2, "#/definitions/", definitions),
        Vec::<String>::new()
    );
    assert_eq!(
        dangling(v2, "#/parameters/", &v2["parameters"]),
        Vec::<String>::new()
    );
    // Upstream's extensions are kept.
    let containers = &definitions["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-list-type"], "map");
    assert_eq!(
        definitions["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"],
        json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
    );
    assert!(
        catalog
            .unknown_fields(
                "example.com",
                "v1",
                "Widget",
                &json!({"anything": {"goes": 1}})
            )
            .is_empty()
    );
}

#[test]
fn the_served_catalog_describes_every_served_resource() {
    let c = catalog();
    for r in localfargate_registry::resources::RESOURCES {
        let name = c.definition_of(r.group, r.version, r.kind);
        assert!(name.is_some(), "{}", r.kind);
        let gv = GroupVersion::new(r.group, r.version);
        let doc = c.v3_document(&gv);
        assert!(
            doc["components"]["schemas"].get(name.unwrap()).is_some(),
            "{} in {}",
            r.kind,
            gv.openapi_path()
        );
    }
    assert_eq!(
        c.definition_of("eks.localfargate.io", "v1", "FargateProfile"),
        Some("io.localfargate.eks.v1.FargateProfile")
    );
    let v2 = c.v2();
    assert_eq!(
        dangling(v2, "#/definitions/", &v2["definitions"]),
        Vec::<String>::new()
    );
}

#[test]
fn v2_converts_to_v3_as_kube_openapi_does() {
    let apps = GroupVersion::new("apps", "v1");
    let doc = catalog().v3_document(&apps);
    assert_eq!(doc["openapi"], "3.0.0");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"][0]["kind"],
        "Deployment"
    );
    let text = doc.to_string();
    assert!(!text.contains("#/definitions/"));
    assert!(!text.contains("#/parameters/"));
    assert_eq!(
        dangling(&doc, "#/components/schemas/", schemas),
        Vec::<String>::new()
    );
    // A reference with a description beside it is wrapped in allOf.
    let resources = &schemas["io.k8s.api.core.v1.Container"]["properties"]["resources"];
    assert_eq!(
        resources["allOf"],
        json!([{"$ref": "#/components/schemas/io.k8s.api.core.v1.ResourceRequirements"}])
    );
    assert!(
        resources["description"]
            .as_str()
            .unwrap()
            .starts_with("Compute Resources")
    );
    assert!(resources.get("$ref").is_none());
    // What v2 could only call strings.
    assert_eq!(
        schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["oneOf"],
        json!([{"type": "integer"}, {"type": "string"}])
    );
    assert!(
        schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
            .get("type")
            .is_none()
    );
    // Paths of this group-version only, operations with their kind and fieldValidation.
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.keys().all(|p| p.starts_with("/apis/apps/v1/")));
    let item = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
    let patch = &item["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"]["kind"],
        "Deployment"
    );
    let names: Vec<&str> = patch["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"fieldValidation") && names.contains(&"fieldManager"));
    assert!(
        patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["schema"].is_object())
    );
    assert!(
        patch["requestBody"]["content"]["application/strategic-merge-patch+json"]["schema"]
            .is_object()
    );
    assert_eq!(
        item["put"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/io.k8s.api.apps.v1.Deployment"
    );
    // A shared path parameter, resolved and inlined.
    assert!(
        item["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "namespace" && p["in"] == "path")
    );
}

#[test]
fn v3_schema_conversion_rewrites_and_wraps_references() {
    let v2 = json!({
        "type": "object",
        "properties": {
            "plain": {"$ref": "#/definitions/a.B"},
            "described": {"$ref": "#/definitions/a.C", "description": "d"},
            "list": {"type": "array", "items": {"$ref": "#/definitions/a.D"}},
            "map": {"type": "object", "additionalProperties": {"$ref": "#/definitions/a.E", "default": {}}},
        },
        "x-kubernetes-group-version-kind": [{"group": "", "kind": "K", "version": "v1"}],
    });
    assert_eq!(
        v3::schema(&v2),
        json!({
            "type": "object",
            "properties": {
                "plain": {"$ref": "#/components/schemas/a.B"},
                "described": {"allOf": [{"$ref": "#/components/schemas/a.C"}], "description": "d"},
                "list": {"type": "array", "items": {"$ref": "#/components/schemas/a.D"}},
                "map": {"type": "object", "additionalProperties": {"allOf": [{"$ref": "#/components/schemas/a.E"}], "default": {}}},
            },
            "x-kubernetes-group-version-kind": [{"group": "", "kind": "K", "version": "v1"}],
        })
    );
}

#[test]
fn the_v3_root_points_at_each_document_by_hash() {
    let root = catalog().v3_root();
    let paths = root["paths"].as_object().unwrap();
    for gv in [
        "api/v1",
        "apis/apps/v1",
        "apis/batch/v1",
        "apis/eks.localfargate.io/v1",
    ] {
        let url = paths[gv]["serverRelativeURL"].as_str().unwrap();
        let hash = url
            .strip_prefix(&format!("/openapi/v3/{gv}?hash="))
            .unwrap();
        assert_eq!(hash.len(), 128);
        assert!(
            hash.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
    }
    assert_eq!(paths.len(), catalog().group_versions().len());
}

#[test]
fn the_protobuf_decodes_to_the_same_document() {
    let v2 = catalog().v2();
    let doc = gnostic::document(v2);
    let bytes = doc.encode_to_vec();
    let decoded = gnostic::Document::decode(bytes.as_slice()).unwrap();
    assert_eq!(decoded, doc);
    assert_eq!(decoded.swagger, "2.0");
    let definitions = &decoded.definitions.as_ref().unwrap().additional_properties;
    assert_eq!(
        definitions.len(),
        v2["definitions"].as_object().unwrap().len()
    );
    let pod_spec = definitions
        .iter()
        .find(|d| d.name == "io.k8s.api.core.v1.PodSpec")
        .and_then(|d| d.value.as_ref())
        .unwrap();
    let containers = pod_spec
        .properties
        .as_ref()
        .unwrap()
        .additional_properties
        .iter()
        .find(|p| p.name == "containers")
        .and_then(|p| p.value.as_ref())
        .unwrap();
    assert_eq!(containers.r#type.as_ref().unwrap().value, vec!["array"]);
    assert_eq!(
        containers.items.as_ref().unwrap().schema[0].reference,
        "#/definitions/io.k8s.api.core.v1.Container"
    );
    // Extensions travel as YAML (here JSON) text that parses back to the original value.
    let extensions: Vec<(&str, Value)> = containers
        .vendor_extension
        .iter()
        .map(|e| {
            let yaml = &e.value.as_ref().unwrap().yaml;
            (
                e.name.as_str(),
                serde_yaml::from_str::<Value>(yaml).unwrap(),
            )
        })
        .collect();
    assert!(extensions.contains(&("x-kubernetes-patch-merge-key", json!("name"))));
    assert!(extensions.contains(&("x-kubernetes-list-map-keys", json!(["name"]))));
    // The patch operation's fieldValidation query parameter, which kubectl's v2 verifier reads.
    let paths = &decoded.paths.as_ref().unwrap().path;
    let item = paths
        .iter()
        .find(|p| p.name == "/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        .and_then(|p| p.value.as_ref())
        .unwrap();
    let has_field_validation = item.patch.as_ref().unwrap().parameters.iter().any(|p| {
        matches!(
            &p.oneof,
            Some(gnostic::ParametersItemOneof::Parameter(gnostic::Parameter {
                oneof: Some(gnostic::ParameterOneof::NonBodyParameter(gnostic::NonBodyParameter {
                    oneof: Some(gnostic::NonBodyParameterOneof::Query(q)),
                })),
            })) if q.name == "fieldValidation"
        )
    });
    assert!(has_field_validation);
}

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}}, "spec": spec})
}

#[test]
fn unknown_fields_are_found_where_the_schema_has_none() {
    let c = catalog();
    let valid = pod(json!({
        "containers": [{"name": "c", "image": "i", "resources": {"limits": {"cpu": "1"}},
                        "ports": [{"containerPort": 80}], "env": [{"name": "X", "value": "1"}]}],
        "nodeSelector": {"k": "v"},
    }));
    assert_eq!(
        c.unknown_fields("", "v1", "Pod", &valid),
        Vec::<String>::new()
    );
    let invalid = pod(json!({
        "foo": 1,
        "containers": [{"name": "c", "image": "i"}, {"name": "d", "image": "i", "bar": {"x": 1}}],
    }));
    assert_eq!(
        c.unknown_fields("", "v1", "Pod", &invalid),
        vec!["spec.containers[1].bar", "spec.foo"]
    );
    let mut with_meta = valid.clone();
    with_meta["metadata"]["colour"] = json!("red");
    with_meta["status"] = json!({"phase": "Running", "mood": "good"});
    assert_eq!(
        c.unknown_fields("", "v1", "Pod", &with_meta),
        vec!["metadata.colour", "status.mood"]
    );
    // Free-form objects (managedFields' fieldsV1) and int-or-string values.
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i", "unknown": true}]}},
        },
    });
    assert_eq!(
        c.unknown_fields("apps", "v1", "Deployment", &deployment),
        vec!["spec.template.spec.containers[0].unknown"]
    );
    // A kind without a schema has no unknown fields.
    assert!(
        c.unknown_fields("example.com", "v1", "Widget", &json!({"x": 1}))
            .is_empty()
    );
    assert_eq!(
        strict_decoding_message(&["spec.foo".into(), "spec.bar".into()]),
        r#"strict decoding error: unknown field "spec.foo", unknown field "spec.bar""#
    );
}

fn crontab_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "description": "The CronTab's schedule.",
                "properties": {
                    "cronSpec": {"type": "string", "nullable": true},
                    "replicas": {"type": "integer"},
                    "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                                 "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}},
                    "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
        },
    })
}

#[test]
fn custom_resources_are_published_and_validated() {
    let schema = crontab_schema();
    let catalog = CatalogBuilder::new()
        .serve(
            localfargate_registry::resources::RESOURCES
                .iter()
                .map(ServedResource::from),
        )
        .with_custom_resource(
            "stable.example.com",
            "v1",
            "CronTab",
            "crontabs",
            true,
            &["status", "scale"],
            &schema,
        )
        .build()
        .unwrap();
    let v2 = catalog.v2();
    let status =
        &v2["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}/status"];
    assert_eq!(status["put"]["operationId"], "replaceCronTabStatus");
    assert_eq!(
        status["get"]["description"],
        "read status of the specified CronTab"
    );
    let scale =
        &v2["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}/scale"];
    assert_eq!(scale["patch"]["operationId"], "patchCronTabScale");
    assert_eq!(
        scale["get"]["responses"]["200"]["schema"]["$ref"],
        "#/definitions/io.k8s.api.autoscaling.v1.Scale"
    );
    assert_eq!(
        scale["get"]["x-kubernetes-group-version-kind"]["kind"],
        "Scale"
    );
    let def = &v2["definitions"]["com.example.stable.v1.CronTab"];
    assert_eq!(
        def["x-kubernetes-group-version-kind"],
        json!([{"group": "stable.example.com", "kind": "CronTab", "version": "v1"}])
    );
    assert_eq!(
        def["properties"]["metadata"]["$ref"],
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert!(
        def["properties"]["spec"]["properties"]["cronSpec"]
            .get("nullable")
            .is_none()
    );
    assert!(v2["definitions"]["com.example.stable.v1.CronTabList"].is_object());
    let item = &v2["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"];
    assert_eq!(
        item["patch"]["x-kubernetes-group-version-kind"]["kind"],
        "CronTab"
    );
    assert!(
        item["patch"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation")
    );
    assert_eq!(
        dangling(v2, "#/definitions/", &v2["definitions"]),
        Vec::<String>::new()
    );

    let gv = GroupVersion::new("stable.example.com", "v1");
    assert!(catalog.group_versions().contains(&gv));
    let doc = catalog.v3_document(&gv);
    assert_eq!(
        doc["components"]["schemas"]["com.example.stable.v1.CronTab"]["properties"]["spec"]["description"],
        "The CronTab's schedule."
    );
    // The scale subresource's Scale comes with the group-version's document.
    assert!(doc["components"]["schemas"]["io.k8s.api.autoscaling.v1.Scale"].is_object());
    assert!(
        doc["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}/status"]
            ["patch"]
            .is_object()
    );
    assert!(catalog.v3_root()["paths"]["apis/stable.example.com/v1"].is_object());
    let decoded =
        gnostic::Document::decode(gnostic::document(v2).encode_to_vec().as_slice()).unwrap();
    assert!(
        decoded
            .definitions
            .unwrap()
            .additional_properties
            .iter()
            .any(|d| d.name == "com.example.stable.v1.CronTab")
    );

    let obj = json!({
        "apiVersion": "stable.example.com/v1", "kind": "CronTab",
        "metadata": {"name": "c", "nope": 1},
        "spec": {
            "cronSpec": "* * * * */5", "replicas": 1, "port": "http", "image": "x",
            "extra": {"anything": {"goes": true}},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "t", "bad": 1}, "spec": {"a": "b", "c": "d"}},
            "tags": {"any": "thing"},
        },
    });
    assert_eq!(
        catalog.unknown_fields("stable.example.com", "v1", "CronTab", &obj),
        vec![
            "metadata.nope",
            "spec.image",
            "spec.template.metadata.bad",
            "spec.template.spec.c"
        ]
    );

    // A changed schema changes the group-version's hash, and leaves the others alone.
    let mut changed = schema.clone();
    changed["properties"]["spec"]["properties"]["image"] = json!({"type": "string"});
    let other = CatalogBuilder::new()
        .serve(
            localfargate_registry::resources::RESOURCES
                .iter()
                .map(ServedResource::from),
        )
        .with_custom_resource(
            "stable.example.com",
            "v1",
            "CronTab",
            "crontabs",
            true,
            &[],
            &changed,
        )
        .build()
        .unwrap();
    let (a, b) = (catalog.v3_root(), other.v3_root());
    assert_ne!(
        a["paths"]["apis/stable.example.com/v1"],
        b["paths"]["apis/stable.example.com/v1"]
    );
    assert_eq!(a["paths"]["apis/apps/v1"], b["paths"]["apis/apps/v1"]);
    assert!(
        other
            .unknown_fields("stable.example.com", "v1", "CronTab", &obj)
            .len()
            == 3
    );

    let bad = CatalogBuilder::new()
        .with_custom_resource("x.io", "v1", "X", "xs", false, &[], &json!("not a schema"))
        .build();
    assert!(matches!(bad, Err(OpenApiError::CustomSchema { .. })));
}

fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
    }
    h
}

async fn body(r: axum::response::Response) -> Vec<u8> {
    axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn documents_are_negotiated_and_cached_as_upstream_serves_them() {
    let c = catalog();
    let json_reply = http::serve_catalog(
        c,
        "/openapi/v2",
        None,
        &headers(&[(header::ACCEPT, "application/json")]),
    )
    .unwrap();
    assert_eq!(json_reply.status(), StatusCode::OK);
    assert_eq!(
        json_reply.headers()[header::CONTENT_TYPE],
        "application/json"
    );
    let etag = json_reply.headers()[header::ETAG]
        .to_str()
        .unwrap()
        .to_string();
    let v: Value = serde_json::from_slice(&body(json_reply).await).unwrap();
    assert!(v["definitions"]["io.k8s.api.core.v1.Pod"].is_object());

    let client_go = format!("{},application/json", http::V2_PROTOBUF_DEPRECATED);
    let pb = http::serve_catalog(
        c,
        "/openapi/v2",
        None,
        &headers(&[(header::ACCEPT, &client_go)]),
    )
    .unwrap();
    assert_eq!(pb.headers()[header::CONTENT_TYPE], http::V2_PROTOBUF);
    let decoded = gnostic::Document::decode(body(pb).await.as_slice()).unwrap();
    assert_eq!(decoded.info.unwrap().version, "v1.33.1");

    let unchanged = http::serve_catalog(
        c,
        "/openapi/v2",
        None,
        &headers(&[(header::IF_NONE_MATCH, &etag)]),
    )
    .unwrap();
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    let html = http::serve_catalog(
        c,
        "/openapi/v2",
        None,
        &headers(&[(header::ACCEPT, "text/html")]),
    )
    .unwrap();
    assert_eq!(html.status(), StatusCode::NOT_ACCEPTABLE);

    let root: Value = serde_json::from_slice(
        &body(http::serve_catalog(c, "/openapi/v3", None, &HeaderMap::new()).unwrap()).await,
    )
    .unwrap();
    let url = root["paths"]["api/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap();
    let (path, query) = url.split_once('?').unwrap();
    let current = http::serve_catalog(
        c,
        path,
        Some(query),
        &headers(&[(header::ACCEPT, "application/json")]),
    )
    .unwrap();
    assert_eq!(current.status(), StatusCode::OK);
    assert_eq!(
        current.headers()[header::CACHE_CONTROL],
        "public, immutable"
    );
    let stale = http::serve_catalog(c, path, Some("hash=0123"), &HeaderMap::new()).unwrap();
    assert_eq!(stale.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(stale.headers()[header::LOCATION], url);
    let missing =
        http::serve_catalog(c, "/openapi/v3/apis/nope/v1", None, &HeaderMap::new()).unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(http::serve_catalog(c, "/api/v1", None, &HeaderMap::new()).is_none());
}

#[test]
fn field_validation_directives_answer_as_upstream() {
    let with = pod(json!({"containers": [{"name": "c", "image": "i", "colour": "blue"}]}));
    let without = pod(json!({"containers": [{"name": "c", "image": "i"}]}));
    let field = "spec.containers[0].colour";
    let check = |directive, before: Option<&Value>| {
        let mut obj = with.clone();
        let verdict = check_fields("", "v1", "Pod", directive, &mut obj, before);
        (verdict, obj)
    };
    assert_eq!(
        check(Some("Strict"), None).0,
        Err(format!(
            "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"{field}\""
        ))
    );
    // Upstream's default is Warn; Warn and Ignore drop the field.
    let dropped = vec![field.to_string()];
    for directive in [Some("Warn"), None] {
        let warnings = vec![format!("unknown field \"{field}\"")];
        let expected = FieldCheck {
            warnings,
            dropped: dropped.clone(),
            rewritten: true,
        };
        assert_eq!(check(directive, None), (Ok(expected), without.clone()));
    }
    let ignored = FieldCheck {
        warnings: vec![],
        dropped,
        rewritten: true,
    };
    assert_eq!(check(Some("Ignore"), None), (Ok(ignored), without.clone()));
    // A patched object: the bare strict-decoding error, for fields the patch brought only.
    assert_eq!(
        check(Some("Strict"), Some(&without)).0,
        Err(format!("strict decoding error: unknown field \"{field}\""))
    );
    assert_eq!(
        check(Some("Strict"), Some(&with)),
        (Ok(FieldCheck::default()), with.clone())
    );
    assert_eq!(
        warning_header(r#"unknown field "a.b""#),
        r#"299 - "unknown field \"a.b\"""#
    );
}

#[test]
fn values_of_the_wrong_json_type_are_decoding_errors_in_gos_words() {
    let service = |spec: Value| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": spec});
    let create = |kind: &str, group: &str, version: &str, obj: Value| {
        let mut obj = obj;
        check_fields(group, version, kind, None, &mut obj, None).map(|_| ())
    };
    let prefix = "Service in version \"v1\" cannot be handled as a Service: ";
    let refused = [
        (
            json!("x"),
            "json: cannot unmarshal string into Go struct field Service.spec of type v1.ServiceSpec",
        ),
        (
            json!({"ports": ["x"]}),
            "json: cannot unmarshal string into Go struct field ServiceSpec.spec.ports of type v1.ServicePort",
        ),
        (
            json!({"ports": "x"}),
            "json: cannot unmarshal string into Go struct field ServiceSpec.spec.ports of type []v1.ServicePort",
        ),
        (
            json!({"ports": [{"port": 80, "nodePort": "x"}]}),
            "json: cannot unmarshal string into Go struct field ServicePort.spec.ports.nodePort of type int32",
        ),
        (
            json!({"ports": [{"port": 99999999999_i64}]}),
            "json: cannot unmarshal number 99999999999 into Go struct field ServicePort.spec.ports.port of type int32",
        ),
        (
            json!({"clusterIP": 5}),
            "json: cannot unmarshal number into Go struct field ServiceSpec.spec.clusterIP of type string",
        ),
        (
            json!({"publishNotReadyAddresses": "yes"}),
            "json: cannot unmarshal string into Go struct field ServiceSpec.spec.publishNotReadyAddresses of type bool",
        ),
    ];
    for (spec, message) in refused {
        assert_eq!(
            create("Service", "", "v1", service(spec)),
            Err(format!("{prefix}{message}"))
        );
    }
    // Map values, in the struct that holds the map.
    let labelled = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": 1}}});
    assert_eq!(
        create("ConfigMap", "", "v1", labelled),
        Err("ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string".into())
    );
    // What Go takes: nulls, quantities as numbers, int-or-string either way, raw extensions.
    let fine = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": null},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d"}},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [
                {"name": "c", "image": "i", "resources": {"limits": {"cpu": 1, "memory": "1Gi"}},
                 "ports": [{"containerPort": 80}], "readinessProbe": {"httpGet": {"port": "http"}}}]}}}});
    assert_eq!(create("Deployment", "apps", "v1", fine), Ok(()));
    let fractional = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": 1.5}});
    assert_eq!(
        create("Deployment", "apps", "v1", fractional),
        Err("Deployment in version \"v1\" cannot be handled as a Deployment: json: cannot unmarshal number 1.5 into Go struct field DeploymentSpec.spec.replicas of type int32".into())
    );
    // A patched object's error is the bare decoding error.
    let mut patched = service(json!("x"));
    assert_eq!(
        check_fields("", "v1", "Service", None, &mut patched, Some(&service(json!({})))).map(|_| ()),
        Err("json: cannot unmarshal string into Go struct field Service.spec of type v1.ServiceSpec".into())
    );
}

#[test]
fn quantities_are_written_back_in_canonical_form_as_kube_apiserver_stores_them() {
    let mut written = pod(json!({
        "containers": [{"name": "c", "image": "i", "resources": {
            "requests": {"cpu": 1, "memory": "0.5Gi"},
            "limits": {"cpu": "2000m", "memory": 1.5, "example.com/gpu": 2}}}],
        "initContainers": [{"name": "i", "image": "i", "resources": {"requests": {"cpu": "0.25"}}}],
        "overhead": {"cpu": "250m"},
        "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1024Mi"}}],
    }));
    let checked = check_fields("", "v1", "Pod", None, &mut written, None).unwrap();
    assert!(checked.rewritten && checked.dropped.is_empty());
    assert_eq!(
        written["spec"]["containers"][0]["resources"],
        json!({"requests": {"cpu": "1", "memory": "512Mi"},
               "limits": {"cpu": "2", "memory": "1500m", "example.com/gpu": "2"}})
    );
    assert_eq!(
        written["spec"]["initContainers"][0]["resources"]["requests"]["cpu"],
        "250m"
    );
    assert_eq!(written["spec"]["overhead"]["cpu"], "250m");
    assert_eq!(
        written["spec"]["volumes"][0]["emptyDir"]["sizeLimit"],
        "1Gi"
    );
    // Already canonical: nothing to rewrite, the body goes on as sent.
    let mut canonical = written.clone();
    let checked = check_fields("", "v1", "Pod", None, &mut canonical, None).unwrap();
    assert!(!checked.rewritten);
    assert_eq!(canonical, written);
    // A quota's hard limits, a workload's template, a claim.
    let mut quota = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
        "spec": {"hard": {"pods": 10, "requests.cpu": "4000m", "count/configmaps": "5"}}});
    check_fields("", "v1", "ResourceQuota", None, &mut quota, None).unwrap();
    assert_eq!(
        quota["spec"]["hard"],
        json!({"pods": "10", "requests.cpu": "4", "count/configmaps": "5"})
    );
    let mut deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "i", "resources": {"limits": {"memory": "1000Mi"}}}]}}}});
    check_fields("apps", "v1", "Deployment", None, &mut deployment, None).unwrap();
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"],
        "1000Mi"
    );
    let mut claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"},
        "spec": {"resources": {"requests": {"storage": "1000M"}}}});
    check_fields("", "v1", "PersistentVolumeClaim", None, &mut claim, None).unwrap();
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1G");
    // Text that is not a quantity is upstream's decoding error, a 400.
    let mut bad = pod(json!({"containers": [{"name": "c", "image": "i",
        "resources": {"requests": {"cpu": "abc"}}}]}));
    assert_eq!(
        check_fields("", "v1", "Pod", None, &mut bad, None),
        Err("Pod in version \"v1\" cannot be handled as a Pod: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'".into())
    );
    assert_eq!(
        check_fields("", "v1", "Pod", None, &mut bad, Some(&written)),
        Err("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'".into())
    );
    // Definitions that hold neither a quantity nor a timestamp are not walked at all.
    let c = catalog();
    assert!(c.reencoded_holders.contains("io.k8s.api.core.v1.Pod"));
    assert!(
        c.reencoded_holders
            .contains("io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler")
    );
    assert!(
        c.reencoded_holders
            .contains("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
    );
    assert!(
        !c.reencoded_holders
            .contains("io.k8s.api.core.v1.ConfigMapKeySelector")
    );
    assert!(
        !c.reencoded_holders
            .contains("io.k8s.api.core.v1.ServicePort")
    );
}

#[test]
fn timestamps_are_written_back_in_utc_as_kube_apiserver_stores_them() {
    // metav1.Time: UTC, to the second; metav1.MicroTime: UTC, to the microsecond.
    let mut event = json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "e", "namespace": "default", "creationTimestamp": null},
        "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Tested",
        "firstTimestamp": "2024-01-01T10:00:00.5+02:00", "lastTimestamp": "2024-01-01T08:00:00Z",
        "eventTime": "2024-01-01T10:00:00.123456+02:00"});
    let checked = check_fields("", "v1", "Event", None, &mut event, None).unwrap();
    assert!(checked.rewritten);
    assert_eq!(event["firstTimestamp"], "2024-01-01T08:00:00Z");
    assert_eq!(event["lastTimestamp"], "2024-01-01T08:00:00Z");
    assert_eq!(event["eventTime"], "2024-01-01T08:00:00.123456Z");
    assert_eq!(event["metadata"]["creationTimestamp"], Value::Null);
    let mut lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "l"}, "spec": {"holderIdentity": "me",
        "renewTime": "2024-01-01T08:00:00.000001-00:30"}});
    check_fields("coordination.k8s.io", "v1", "Lease", None, &mut lease, None).unwrap();
    assert_eq!(lease["spec"]["renewTime"], "2024-01-01T08:30:00.000001Z");
    // Conditions in a status, as a PUT to /status writes them.
    let mut status = pod(json!({"containers": [{"name": "c", "image": "i"}]}));
    status["status"] = json!({"conditions": [{"type": "Ready", "status": "True",
        "lastTransitionTime": "2024-01-01T08:00:00.999+00:00"}], "startTime": "2024-01-01T08:00:00Z"});
    check_fields("", "v1", "Pod", None, &mut status, None).unwrap();
    assert_eq!(
        status["status"]["conditions"][0]["lastTransitionTime"],
        "2024-01-01T08:00:00Z"
    );
    // Already in stored form: nothing rewritten.
    let mut again = status.clone();
    assert!(
        !check_fields("", "v1", "Pod", None, &mut again, None)
            .unwrap()
            .rewritten
    );
    // A time Go's parser refuses: its error, as kube-apiserver's decoding error.
    let mut naive = lease.clone();
    naive["spec"]["acquireTime"] = json!("2024-01-01T08:00:00.123456");
    assert_eq!(
        check_fields("coordination.k8s.io", "v1", "Lease", None, &mut naive, None),
        Err("Lease in version \"v1\" cannot be handled as a Lease: parsing time \"2024-01-01T08:00:00.123456\" as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse \"\" as \"Z07:00\"".into())
    );
    let mut yesterday = event.clone();
    yesterday["lastTimestamp"] = json!("yesterday");
    assert_eq!(
        check_fields("", "v1", "Event", None, &mut yesterday, Some(&event)),
        Err("parsing time \"yesterday\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"yesterday\" as \"2006\"".into())
    );
}

#[test]
fn byte_fields_are_written_back_in_standard_base64() {
    // Go's []byte: line breaks dropped, re-encoded; `stringData` is text and stays.
    let mut secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
        "data": {"a": "aGVs\nbG8=\n", "b": "aGVsbG8="}, "stringData": {"c": "not base64!"}});
    let checked = check_fields("", "v1", "Secret", None, &mut secret, None).unwrap();
    assert!(checked.rewritten);
    assert_eq!(secret["data"], json!({"a": "aGVsbG8=", "b": "aGVsbG8="}));
    assert_eq!(secret["stringData"]["c"], "not base64!");
    let mut config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
        "data": {"t": "plain text"}, "binaryData": {"b": "AAEC\r\n"}});
    check_fields("", "v1", "ConfigMap", None, &mut config, None).unwrap();
    assert_eq!(config["binaryData"]["b"], "AAEC");
    assert_eq!(config["data"]["t"], "plain text");
    // A webhook's caBundle, inside a list of its configuration.
    let mut hooks = json!({"apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "w"},
        "webhooks": [{"name": "w.example.com", "clientConfig": {"caBundle": "Y2E=\n"},
            "sideEffects": "None", "admissionReviewVersions": ["v1"]}]});
    check_fields(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        None,
        &mut hooks,
        None,
    )
    .unwrap();
    assert_eq!(hooks["webhooks"][0]["clientConfig"]["caBundle"], "Y2E=");
    // Text Go's decoder refuses: its error, at the byte where it stops.
    let mut bad = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
        "data": {"password": "hunter2"}});
    assert_eq!(
        check_fields("", "v1", "Secret", None, &mut bad, None),
        Err("Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 4".into())
    );
}
