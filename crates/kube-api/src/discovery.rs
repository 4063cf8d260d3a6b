//! Discovery, legacy and aggregated, and the minimal OpenAPI v3 kubectl needs, all generated from
//! the one resource registry in `localfargate_registry::resources`.

use localfargate_registry::metrics::{GROUP as METRICS_GROUP, VERSION as METRICS_VERSION};
use localfargate_registry::resources::{self, ResourceType};
use serde_json::{Value, json};

/// A resource of the resource metrics API, which is served (not stored) beside the stored
/// resources, as kube-apiserver serves metrics-server's aggregated API: read-only, no watch.
struct MetricsResource {
    resource: &'static str,
    kind: &'static str,
    namespaced: bool,
}

const METRICS_RESOURCES: [MetricsResource; 2] = [
    MetricsResource {
        resource: "nodes",
        kind: "NodeMetrics",
        namespaced: false,
    },
    MetricsResource {
        resource: "pods",
        kind: "PodMetrics",
        namespaced: true,
    },
];
const METRICS_VERBS: &[&str] = &["get", "list"];

fn metrics_group_version() -> String {
    format!("{METRICS_GROUP}/{METRICS_VERSION}")
}

/// Whether `/apis/<group>` is a group this API serves.
pub fn serves_group(group: &str) -> bool {
    group == METRICS_GROUP || (!group.is_empty() && resources::groups().contains(&group))
}

/// `metrics.k8s.io` as an `APIGroupDiscovery` (one item of the aggregated `/apis`).
fn metrics_aggregated() -> Value {
    let resources: Vec<Value> = METRICS_RESOURCES
        .iter()
        .map(|r| {
            json!({
                "resource": r.resource,
                "responseKind": {"group": METRICS_GROUP, "version": METRICS_VERSION, "kind": r.kind},
                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                // metrics-server names no singular.
                "singularResource": "",
                "verbs": METRICS_VERBS,
            })
        })
        .collect();
    json!({
        "metadata": {"name": METRICS_GROUP, "creationTimestamp": null},
        "versions": [{"version": METRICS_VERSION, "resources": resources, "freshness": "Current"}],
    })
}

/// `/apis/metrics.k8s.io/v1beta1` as `APIResourceList`.
fn metrics_resource_list() -> Value {
    let resources: Vec<Value> = METRICS_RESOURCES
        .iter()
        .map(|r| {
            json!({
                "name": r.resource,
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": METRICS_VERBS,
            })
        })
        .collect();
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": metrics_group_version(),
        "resources": resources,
    })
}

/// Which aggregated-discovery version a request's `Accept` asks for, if any. kubectl 1.27–1.29
/// ask only for v2beta1, and answering those with v2 breaks them, so the version asked for is
/// the version given.
pub fn aggregated_version(accept: &str) -> Option<&'static str> {
    let wants = |v: &str| {
        accept.split(',').any(|alt| {
            let params: Vec<&str> = alt.split(';').map(str::trim).collect();
            params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&format!("v={v}").as_str())
                && params.contains(&"as=APIGroupDiscoveryList")
        })
    };
    if wants("v2") {
        Some("v2")
    } else if wants("v2beta1") {
        Some("v2beta1")
    } else {
        None
    }
}

pub fn aggregated_content_type(version: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
}

fn scope(r: &ResourceType) -> &'static str {
    if r.namespaced {
        "Namespaced"
    } else {
        "Cluster"
    }
}

fn response_kind(r: &ResourceType, group: &str, version: &str, kind: &str) -> Value {
    let (g, v) = if version.is_empty() {
        (r.group, r.version)
    } else {
        (group, version)
    };
    json!({"group": g, "version": v, "kind": kind})
}

fn aggregated_resource(r: &ResourceType) -> Value {
    let subresources: Vec<Value> = r
        .subresources
        .iter()
        .map(|s| {
            json!({
                "subresource": s.name,
                "responseKind": response_kind(r, s.group, s.version, s.kind),
                "verbs": s.verbs,
            })
        })
        .collect();
    let mut v = json!({
        "resource": r.resource,
        "responseKind": response_kind(r, "", "", r.kind),
        "scope": scope(r),
        "singularResource": r.singular,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    if !subresources.is_empty() {
        v["subresources"] = json!(subresources);
    }
    v
}

/// `/api` (core only) or `/apis` (every other group) as an `APIGroupDiscoveryList`.
pub fn aggregated(core: bool, version: &str) -> Value {
    let mut items: Vec<Value> = resources::groups()
        .into_iter()
        .filter(|g| g.is_empty() == core)
        .map(|group| {
            let resources: Vec<Value> = resources::RESOURCES
                .iter()
                .filter(|r| r.group == group)
                .map(aggregated_resource)
                .collect();
            let mut meta = json!({"creationTimestamp": null});
            if !group.is_empty() {
                meta["name"] = json!(group);
            }
            let version = resources::group_version(group).unwrap_or("v1");
            json!({
                "metadata": meta,
                "versions": [{"version": version, "resources": resources, "freshness": "Current"}],
            })
        })
        .collect();
    if !core {
        items.push(metrics_aggregated());
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

/// `/api` as `APIVersions`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `/apis` as `APIGroupList`.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = resources::groups()
        .into_iter()
        .filter(|g| !g.is_empty())
        .chain([METRICS_GROUP])
        .map(api_group)
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>` as `APIGroup`.
pub fn api_group(group: &str) -> Value {
    let version = if group == METRICS_GROUP {
        METRICS_VERSION
    } else {
        resources::group_version(group).unwrap_or("v1")
    };
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `/api/v1`, `/apis/<group>/v1` or `/apis/metrics.k8s.io/v1beta1` as `APIResourceList`, or
/// None for a group or version not served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    if group == METRICS_GROUP {
        return (version == METRICS_VERSION).then(metrics_resource_list);
    }
    if resources::group_version(group) != Some(version) {
        return None;
    }
    let mut resources = Vec::new();
    for r in resources::RESOURCES.iter().filter(|r| r.group == group) {
        let mut v = json!({
            "name": r.resource,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs(),
        });
        if !r.short_names.is_empty() {
            v["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            v["categories"] = json!(r.categories);
        }
        resources.push(v);
        for s in r.subresources {
            let mut sub = json!({
                "name": format!("{}/{}", r.resource, s.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": s.kind,
                "verbs": s.verbs,
            });
            if !s.group.is_empty() {
                sub["group"] = json!(s.group);
                sub["version"] = json!(s.version);
            }
            resources.push(sub);
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

/// A cache key for the OpenAPI documents: they change only with the binary.
const OPENAPI_HASH: &str = concat!("localfargate-", env!("CARGO_PKG_VERSION"));

fn openapi_path(group: &str) -> String {
    if group.is_empty() {
        "api/v1".to_string()
    } else {
        let version = resources::group_version(group).unwrap_or("v1");
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: where each GroupVersion's document is.
pub fn openapi_root() -> Value {
    let mut paths = serde_json::Map::new();
    for group in resources::groups() {
        let p = openapi_path(group);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={OPENAPI_HASH}")}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/<group>/v1`: the operations, with their
/// group-version-kind and the `fieldValidation` parameter, which is what tells kubectl the
/// server validates fields itself. Schemas are left out on purpose: without them kubectl computes
/// strategic merge patches from its compiled-in types, which know every merge key.
pub fn openapi_document(path: &str) -> Option<Value> {
    let group = resources::groups()
        .into_iter()
        .find(|g| openapi_path(g) == path)?;
    let mut paths = serde_json::Map::new();
    for r in resources::RESOURCES.iter().filter(|r| r.group == group) {
        let prefix = if group.is_empty() {
            "/api/v1".to_string()
        } else {
            format!("/apis/{group}/v1")
        };
        let collection = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", r.resource)
        } else {
            format!("{prefix}/{}", r.resource)
        };
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
        ]);
        let op = |verb: &str| {
            json!({
                "operationId": format!("{verb}{}", r.kind),
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
            })
        };
        paths.insert(
            collection.clone(),
            json!({"post": op("post"), "get": op("list")}),
        );
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.31.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECTL_131: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    const KUBECTL_128: &str = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    #[test]
    fn aggregated_discovery_answers_the_version_asked() {
        assert_eq!(aggregated_version(KUBECTL_131), Some("v2"));
        assert_eq!(aggregated_version(KUBECTL_128), Some("v2beta1"));
        assert_eq!(aggregated_version("application/json, */*"), None);
        let core = aggregated(true, "v2");
        assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2");
        let items = core["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert!(items[0]["metadata"]["name"].is_null());
        let pods = items[0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap();
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["shortNames"], json!(["po"]));
        let eviction = pods["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subresource"] == "eviction")
            .unwrap();
        assert_eq!(
            eviction["responseKind"],
            json!({"group": "policy", "version": "v1", "kind": "Eviction"})
        );
        let apis = aggregated(false, "v2beta1");
        let groups: Vec<&str> = apis["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(&groups[..3], ["apps", "batch", "autoscaling"]);
        assert_eq!(
            &groups[groups.len() - 2..],
            ["eks.localfargate.io", "metrics.k8s.io"]
        );
        let autoscaling = &apis["items"][2]["versions"][0];
        assert_eq!(autoscaling["version"], "v2");
    }

    #[test]
    fn the_metrics_api_is_discovered_in_every_form() {
        for version in ["v2", "v2beta1"] {
            let apis = aggregated(false, version);
            let metrics = apis["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["metadata"]["name"] == "metrics.k8s.io")
                .unwrap();
            let v = &metrics["versions"][0];
            assert_eq!(v["version"], "v1beta1");
            let pods = v["resources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["resource"] == "pods")
                .unwrap();
            assert_eq!(pods["scope"], "Namespaced");
            assert_eq!(pods["responseKind"]["kind"], "PodMetrics");
            assert_eq!(pods["verbs"], json!(["get", "list"]));
        }
        assert!(
            aggregated(true, "v2")["items"][0]["versions"][0]["resources"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| !r["responseKind"]["kind"]
                    .as_str()
                    .unwrap()
                    .ends_with("Metrics"))
        );
        let legacy = api_group_list();
        let group = legacy["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "metrics.k8s.io")
            .unwrap();
        assert_eq!(
            group["preferredVersion"],
            json!({"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"})
        );
        assert!(serves_group("metrics.k8s.io") && serves_group("apps"));
        assert!(!serves_group("") && !serves_group("example.com"));
        let list = resource_list("metrics.k8s.io", "v1beta1").unwrap();
        assert_eq!(list["groupVersion"], "metrics.k8s.io/v1beta1");
        let nodes = &list["resources"][0];
        assert_eq!(nodes["name"], "nodes");
        assert_eq!(nodes["kind"], "NodeMetrics");
        assert_eq!(nodes["namespaced"], false);
        assert!(resource_list("metrics.k8s.io", "v1").is_none());
    }

    #[test]
    fn legacy_discovery_lists_subresources_with_their_kinds() {
        let list = resource_list("apps", "v1").unwrap();
        assert_eq!(list["groupVersion"], "apps/v1");
        let scale = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["kind"], "Scale");
        assert!(resource_list("apps", "v2").is_none());
        assert!(resource_list("example.com", "v1").is_none());
        assert_eq!(api_group_list()["groups"][0]["name"], "apps");
    }

    #[test]
    fn openapi_declares_field_validation() {
        let root = openapi_root();
        let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        let doc = openapi_document("apis/apps/v1").unwrap();
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(openapi_document("apis/nope/v1").is_none());
    }
}
