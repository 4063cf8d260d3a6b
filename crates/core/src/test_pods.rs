//! Building pods for tests from JSON, the way users write them.

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use serde_json::{Value, json};

pub fn pod(value: Value) -> Pod {
    serde_json::from_value(value).expect("test pod JSON is a valid Pod")
}

pub fn spec(value: Value) -> PodSpec {
    serde_json::from_value(value).expect("test spec JSON is a valid PodSpec")
}

/// A container with the given requests and limits (`[("cpu", "1")]`).
pub fn container(name: &str, requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Value {
    let map = |pairs: &[(&str, &str)]| -> Value {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    json!({
        "name": name,
        "image": "nginx",
        "resources": {"requests": map(requests), "limits": map(limits)}
    })
}

/// A pod with labels and annotations in a namespace.
pub fn labelled(namespace: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Pod {
    let map = |pairs: &[(&str, &str)]| -> Value {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    pod(json!({
        "metadata": {"name": "p", "namespace": namespace, "labels": map(labels), "annotations": map(annotations)},
        "spec": {"containers": [{"name": "app", "image": "nginx"}]}
    }))
}
