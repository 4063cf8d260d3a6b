//! `PodMetrics` and `NodeMetrics` as metrics-server serves them (`pkg/api`), from the stored
//! pods and nodes and the collector's samples: the pods and nodes are listed (with the request's
//! selectors) and each one with usage becomes an item; one without is left out of a list and is
//! a `NotFound` on a get, with metrics-server's messages.
//!
//! A node's usage is the sum of the usage of the pods on it: a Fargate node (`fargate-ip-…`)
//! has exactly one pod, so it shows that pod's usage; a node-group node adds up its pods, and
//! shows zero once the collector has sampled twice when none of its pods has usage. What the
//! node itself runs (a kubelet, the OS) is not modelled.

use std::collections::HashMap;
use std::time::SystemTime;

use localfargate_core::quantity::{format_binary_si, format_decimal_si};
use localfargate_core::selectors::{FieldSelector, LabelSelector};
use serde_json::{Value, json};

use super::store::{ContainerMetrics, MetricsStore, Usage, Window};
use super::{GROUP, VERSION};
use k8s_openapi::api::core::v1::Pod;

use crate::meta::{ObjectMeta, label_of, labels_of, name_of, namespace_of};
use crate::objects::{KubeError, Objects, now_rfc3339, resource, uid_of};
use crate::typed;

/// The selectors of a list request.
pub struct Selection<'a> {
    pub labels: &'a LabelSelector,
    pub fields: &'a FieldSelector,
}

impl Selection<'_> {
    fn matches(&self, object: &Value) -> bool {
        self.labels.matches(labels_of(object)) && self.fields.matches(object)
    }
}

fn api_version() -> String {
    format!("{GROUP}/{VERSION}")
}

fn rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(crate::objects::rfc3339)
        .unwrap_or_else(|_| now_rfc3339())
}

/// `{"cpu": "250m", "memory": "65536Ki"}`: CPU as nanocores at scale −9 and memory in bytes as
/// a binary quantity, as metrics-server builds them.
fn usage_json(u: Usage) -> Value {
    json!({
        "cpu": format_decimal_si(u.cpu_nanocores, -9),
        "memory": format_binary_si(u.memory_bytes),
    })
}

/// One `PodMetrics` or `NodeMetrics`, before it is serialized as an object or a table row.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsItem {
    metadata: ObjectMeta,
    window: Window,
    usage: ItemUsage,
}

#[derive(Debug, Clone, PartialEq)]
enum ItemUsage {
    Pod(Vec<ContainerMetrics>),
    Node(Usage),
}

impl MetricsItem {
    fn pod(pod: &Value, store: &MetricsStore) -> Option<MetricsItem> {
        let m = store.pod(uid_of(pod))?;
        Some(MetricsItem {
            metadata: metadata(pod, true),
            window: m.window,
            usage: ItemUsage::Pod(m.containers),
        })
    }

    fn node(node: &Value, usage: Usage, window: Window) -> MetricsItem {
        MetricsItem {
            metadata: metadata(node, false),
            window,
            usage: ItemUsage::Node(usage),
        }
    }

    fn name(&self) -> &str {
        self.metadata.name()
    }

    fn namespace(&self) -> &str {
        self.metadata.namespace()
    }

    fn total(&self) -> Usage {
        match &self.usage {
            ItemUsage::Pod(containers) => containers
                .iter()
                .fold(Usage::default(), |sum, c| sum + c.usage),
            ItemUsage::Node(u) => *u,
        }
    }

    /// The object as metrics-server returns it.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "apiVersion": api_version(),
            "metadata": Value::Object(self.metadata.clone().into_map()),
            "timestamp": rfc3339(self.window.timestamp),
            "window": localfargate_core::go_duration::format(self.window.length),
        });
        match &self.usage {
            ItemUsage::Pod(containers) => {
                v["kind"] = json!("PodMetrics");
                v["containers"] = containers
                    .iter()
                    .map(|c| json!({"name": c.name, "usage": usage_json(c.usage)}))
                    .collect();
            }
            ItemUsage::Node(u) => {
                v["kind"] = json!("NodeMetrics");
                v["usage"] = usage_json(*u);
            }
        }
        v
    }
}

/// The name, namespace and labels of the pod or node, and the time of the request as its
/// creation time (metrics-server makes the object when asked).
fn metadata(object: &Value, namespaced: bool) -> ObjectMeta {
    ObjectMeta {
        name: Some(name_of(object).to_string()),
        creation_timestamp: Some(now_rfc3339()),
        namespace: namespaced.then(|| namespace_of(object).to_string()),
        labels: labels_of(object).map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        }),
        ..ObjectMeta::default()
    }
}

fn no_metrics(resource: &str, name: &str) -> KubeError {
    KubeError::NotFound {
        message: format!("{resource}.{GROUP} \"{name}\" not found"),
        kind: format!("{resource}.{GROUP}"),
        name: name.to_string(),
    }
}

/// `GET …/namespaces/NS/pods/NAME`: the pod's metrics; `pods "NAME" not found` for a pod that
/// does not exist, `podmetrics.metrics.k8s.io "NS/NAME" not found` for one without usage yet.
pub fn pod(
    objects: &Objects,
    store: &MetricsStore,
    namespace: &str,
    name: &str,
) -> Result<MetricsItem, KubeError> {
    let pod = objects.get(resource("", "pods"), namespace, name)?;
    MetricsItem::pod(&pod, store)
        .ok_or_else(|| no_metrics("podmetrics", &format!("{namespace}/{name}")))
}

/// `GET …/pods` in one namespace or all: the selected pods that have usage, by namespace and
/// name.
pub fn pods(
    objects: &Objects,
    store: &MetricsStore,
    namespace: Option<&str>,
    selection: &Selection<'_>,
) -> Result<Vec<MetricsItem>, KubeError> {
    let (stored, _) = objects.list(resource("", "pods"), namespace)?;
    let mut items: Vec<MetricsItem> = stored
        .iter()
        .filter(|o| selection.matches(&o.value))
        .filter_map(|o| MetricsItem::pod(&o.value, store))
        .collect();
    items.sort_by(|a, b| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())));
    Ok(items)
}

/// Usage per node name: the sum over the pods bound to it that have usage, and the earliest of
/// their windows.
fn usage_by_node(
    objects: &Objects,
    store: &MetricsStore,
) -> Result<HashMap<String, (Usage, Window)>, KubeError> {
    let (pods, _) = objects.list(resource("", "pods"), None)?;
    let mut by_node: HashMap<String, (Usage, Window)> = HashMap::new();
    for p in pods.iter() {
        let Some(node) = typed::decode_or_log::<Pod>(&p.value)
            .and_then(|pod| pod.spec?.node_name)
            .filter(|n| !n.is_empty())
        else {
            continue;
        };
        let Some(m) = store.pod(uid_of(&p.value)) else {
            continue;
        };
        let total = m.total();
        by_node
            .entry(node.to_string())
            .and_modify(|(usage, window)| {
                *usage = *usage + total;
                if m.window.timestamp < window.timestamp {
                    *window = m.window;
                }
            })
            .or_insert((total, m.window));
    }
    Ok(by_node)
}

fn is_fargate(node: &Value) -> bool {
    label_of(node, "eks.amazonaws.com/compute-type") == Some("fargate")
}

fn node_item(
    node: &Value,
    by_node: &HashMap<String, (Usage, Window)>,
    store: &MetricsStore,
) -> Option<MetricsItem> {
    let name = name_of(node);
    let (usage, window) = match by_node.get(name) {
        Some(found) => *found,
        // A node-group node none of whose pods has usage uses nothing.
        None if !is_fargate(node) => (Usage::default(), store.last_window()?),
        None => return None,
    };
    Some(MetricsItem::node(node, usage, window))
}

/// `GET …/nodes/NAME`: `node "NAME" not found` for a node that does not exist (metrics-server's
/// node lister's words), `nodemetrics.metrics.k8s.io "NAME" not found` for one without usage.
pub fn node(objects: &Objects, store: &MetricsStore, name: &str) -> Result<MetricsItem, KubeError> {
    let node = match objects.get(resource("", "nodes"), "", name) {
        Ok(n) => n,
        Err(KubeError::NotFound { .. }) => {
            return Err(KubeError::NotFound {
                message: format!("node \"{name}\" not found"),
                kind: "node".into(),
                name: name.to_string(),
            });
        }
        Err(e) => return Err(e),
    };
    let by_node = usage_by_node(objects, store)?;
    node_item(&node, &by_node, store).ok_or_else(|| no_metrics("nodemetrics", name))
}

/// `GET …/nodes`: the selected nodes that have usage, by name.
pub fn nodes(
    objects: &Objects,
    store: &MetricsStore,
    selection: &Selection<'_>,
) -> Result<Vec<MetricsItem>, KubeError> {
    let (stored, _) = objects.list(resource("", "nodes"), None)?;
    let by_node = usage_by_node(objects, store)?;
    let mut items: Vec<MetricsItem> = stored
        .iter()
        .filter(|o| selection.matches(&o.value))
        .filter_map(|o| node_item(&o.value, &by_node, store))
        .collect();
    items.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(items)
}

/// A `PodMetricsList` or `NodeMetricsList` (`kind`).
pub fn list(kind: &str, items: &[MetricsItem]) -> Value {
    json!({
        "kind": kind,
        "apiVersion": api_version(),
        "metadata": {},
        "items": items.iter().map(MetricsItem::to_json).collect::<Vec<_>>(),
    })
}

/// The server-side Table metrics-server gives `kubectl get podmetrics` (or `nodemetrics`):
/// name, the usage summed over containers, and the window.
pub fn table(items: &[MetricsItem]) -> Value {
    let column = |name: &str, format: &str, description: &str| json!({"name": name, "type": "string", "format": format, "description": description, "priority": 0});
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let usage = item.total();
            json!({
                "cells": [
                    item.name(),
                    format_decimal_si(usage.cpu_nanocores, -9),
                    format_binary_si(usage.memory_bytes),
                    localfargate_core::go_duration::format(item.window.length),
                ],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": Value::Object(item.metadata.clone().into_map()),
                },
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": [
            column("Name", "name", "Name of the resource"),
            column("cpu", "quantity", ""),
            column("memory", "quantity", ""),
            column("Window", "duration", ""),
        ],
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn items_serialize_as_metrics_server_and_tables_sum_containers() {
        let pod = json!({"metadata": {"name": "p", "namespace": "default", "labels": {"app": "x"}, "uid": "u"}});
        let window = Window {
            timestamp: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            length: Duration::from_millis(10_500),
        };
        let item = MetricsItem {
            metadata: metadata(&pod, true),
            window,
            usage: ItemUsage::Pod(vec![
                ContainerMetrics {
                    name: "a".into(),
                    usage: Usage {
                        cpu_nanocores: 329_087_452,
                        memory_bytes: 1 << 20,
                    },
                },
                ContainerMetrics {
                    name: "b".into(),
                    usage: Usage {
                        cpu_nanocores: 250_000_000,
                        memory_bytes: 512 << 10,
                    },
                },
            ]),
        };
        let v = item.to_json();
        assert_eq!(v["kind"], "PodMetrics");
        assert_eq!(v["apiVersion"], "metrics.k8s.io/v1beta1");
        assert_eq!(v["metadata"]["namespace"], "default");
        assert_eq!(v["metadata"]["labels"], json!({"app": "x"}));
        assert!(v["metadata"]["uid"].is_null());
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(v["window"], "10.5s");
        assert_eq!(
            v["containers"],
            json!([
                {"name": "a", "usage": {"cpu": "329087452n", "memory": "1Mi"}},
                {"name": "b", "usage": {"cpu": "250m", "memory": "512Ki"}},
            ])
        );
        let t = table(std::slice::from_ref(&item));
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["p", "579087452n", "1536Ki", "10.5s"])
        );
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "cpu", "memory", "Window"]);
        let node = MetricsItem::node(
            &json!({"metadata": {"name": "n"}}),
            Usage {
                cpu_nanocores: 1_000_000_000,
                memory_bytes: 2 << 30,
            },
            window,
        );
        let v = node.to_json();
        assert_eq!(v["kind"], "NodeMetrics");
        assert_eq!(v["usage"], json!({"cpu": "1", "memory": "2Gi"}));
        assert!(v["metadata"]["namespace"].is_null());
        let l = list("NodeMetricsList", &[node]);
        assert_eq!(l["kind"], "NodeMetricsList");
        assert_eq!(l["items"][0]["metadata"]["name"], "n");
    }
}
