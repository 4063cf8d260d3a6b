//! Discovery, legacy and aggregated, generated from the one resource registry in
//! `localfargate_registry::resources` and the cluster's custom resources (a
//! [`Catalog`]); OpenAPI is in `openapi`.

use localfargate_registry::custom::Catalog;
use localfargate_registry::metrics::{GROUP as METRICS_GROUP, VERSION as METRICS_VERSION};
use localfargate_registry::resources::ResourceType;
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
pub fn serves_group(catalog: &Catalog, group: &str) -> bool {
    group == METRICS_GROUP || (!group.is_empty() && catalog.group(group).is_some())
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
pub fn aggregated(catalog: &Catalog, core: bool, version: &str) -> Value {
    let mut items: Vec<Value> = catalog
        .groups()
        .into_iter()
        .filter(|g| g.name.is_empty() == core)
        .map(|group| {
            let versions: Vec<Value> = group
                .versions
                .iter()
                .map(|version| {
                    let resources: Vec<Value> = catalog
                        .in_group_version(group.name, version)
                        .into_iter()
                        .map(aggregated_resource)
                        .collect();
                    json!({"version": version, "resources": resources, "freshness": "Current"})
                })
                .collect();
            let mut meta = json!({"creationTimestamp": null});
            if !group.name.is_empty() {
                meta["name"] = json!(group.name);
            }
            json!({"metadata": meta, "versions": versions})
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
pub fn api_group_list(catalog: &Catalog) -> Value {
    let groups: Vec<Value> = catalog
        .groups()
        .into_iter()
        .map(|g| g.name)
        .filter(|g| !g.is_empty())
        .chain([METRICS_GROUP])
        .map(|g| api_group(catalog, g))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>` as `APIGroup`.
pub fn api_group(catalog: &Catalog, group: &str) -> Value {
    let versions = if group == METRICS_GROUP {
        vec![METRICS_VERSION]
    } else {
        catalog
            .group(group)
            .map(|g| g.versions)
            .unwrap_or_else(|| vec!["v1"])
    };
    let gvs: Vec<Value> = versions
        .iter()
        .map(|version| json!({"groupVersion": format!("{group}/{version}"), "version": version}))
        .collect();
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gvs, "preferredVersion": gvs[0]})
}

/// `/api/v1`, `/apis/<group>/v1` or `/apis/metrics.k8s.io/v1beta1` as `APIResourceList`, or
/// None for a group or version not served.
pub fn resource_list(catalog: &Catalog, group: &str, version: &str) -> Option<Value> {
    if group == METRICS_GROUP {
        return (version == METRICS_VERSION).then(metrics_resource_list);
    }
    let served = catalog.in_group_version(group, version);
    if served.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for r in served {
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
        let core = aggregated(&Catalog::default(), true, "v2");
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
        let apis = aggregated(&Catalog::default(), false, "v2beta1");
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
            let apis = aggregated(&Catalog::default(), false, version);
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
            aggregated(&Catalog::default(), true, "v2")["items"][0]["versions"][0]["resources"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| !r["responseKind"]["kind"]
                    .as_str()
                    .unwrap()
                    .ends_with("Metrics"))
        );
        let legacy = api_group_list(&Catalog::default());
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
        assert!(
            serves_group(&Catalog::default(), "metrics.k8s.io")
                && serves_group(&Catalog::default(), "apps")
        );
        assert!(
            !serves_group(&Catalog::default(), "")
                && !serves_group(&Catalog::default(), "example.com")
        );
        let list = resource_list(&Catalog::default(), "metrics.k8s.io", "v1beta1").unwrap();
        assert_eq!(list["groupVersion"], "metrics.k8s.io/v1beta1");
        let nodes = &list["resources"][0];
        assert_eq!(nodes["name"], "nodes");
        assert_eq!(nodes["kind"], "NodeMetrics");
        assert_eq!(nodes["namespaced"], false);
        assert!(resource_list(&Catalog::default(), "metrics.k8s.io", "v1").is_none());
    }

    #[test]
    fn legacy_discovery_lists_subresources_with_their_kinds() {
        let list = resource_list(&Catalog::default(), "apps", "v1").unwrap();
        assert_eq!(list["groupVersion"], "apps/v1");
        let scale = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["kind"], "Scale");
        assert!(resource_list(&Catalog::default(), "apps", "v2").is_none());
        assert!(resource_list(&Catalog::default(), "example.com", "v1").is_none());
        assert_eq!(
            api_group_list(&Catalog::default())["groups"][0]["name"],
            "apps"
        );
    }
}
