//! Protobuf request bodies. kubectl 1.32+ sends `application/vnd.kubernetes.protobuf` for
//! `kubectl create namespace|configmap|secret|serviceaccount` (and for a `DeleteOptions` when
//! drain deletes a pod), and does not retry a 415 as JSON. The `k8s\0`-framed `runtime.Unknown`
//! is decoded with k8s-pb and turned into the JSON the rest of the API works on. Other kinds
//! (`kubectl create deployment|job|cronjob`) are refused with a clear 415.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_pb::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_pb::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta};
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use localfargate_registry::KubeError;
use prost::Message;
use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";

fn malformed(e: impl std::fmt::Display) -> KubeError {
    KubeError::BadRequest(format!(
        "the protobuf request body could not be decoded: {e}"
    ))
}

fn metadata(meta: Option<ObjectMeta>) -> Value {
    let meta = meta.unwrap_or_default();
    let mut out = Map::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            out.insert(k.to_string(), json!(v));
        }
    };
    put("name", meta.name);
    put("generateName", meta.generate_name);
    put("namespace", meta.namespace);
    put("resourceVersion", meta.resource_version);
    if !meta.labels.is_empty() {
        out.insert("labels".into(), json!(meta.labels));
    }
    if !meta.annotations.is_empty() {
        out.insert("annotations".into(), json!(meta.annotations));
    }
    if !meta.finalizers.is_empty() {
        out.insert("finalizers".into(), json!(meta.finalizers));
    }
    Value::Object(out)
}

fn base64_map(data: BTreeMap<String, Vec<u8>>) -> Value {
    let engine = base64::engine::general_purpose::STANDARD;
    Value::Object(
        data.into_iter()
            .map(|(k, v)| (k, json!(engine.encode(v))))
            .collect(),
    )
}

/// The JSON object a protobuf body carries.
pub fn decode(body: &[u8]) -> Result<Value, KubeError> {
    let framed = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| malformed("it does not start with the k8s protobuf magic"))?;
    let unknown = Unknown::decode(framed).map_err(malformed)?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let raw = raw.as_slice();
    let object = match (api_version.as_str(), kind.as_str()) {
        ("v1", "ConfigMap") => {
            let c = ConfigMap::decode(raw).map_err(malformed)?;
            let mut v = json!({"metadata": metadata(c.metadata), "data": c.data});
            if !c.binary_data.is_empty() {
                v["binaryData"] = base64_map(c.binary_data);
            }
            if let Some(i) = c.immutable {
                v["immutable"] = json!(i);
            }
            v
        }
        ("v1", "Secret") => {
            let s = Secret::decode(raw).map_err(malformed)?;
            let mut v = json!({"metadata": metadata(s.metadata), "data": base64_map(s.data)});
            if !s.string_data.is_empty() {
                v["stringData"] = json!(s.string_data);
            }
            if let Some(t) = s.r#type {
                v["type"] = json!(t);
            }
            v
        }
        ("v1", "Namespace") => {
            let n = Namespace::decode(raw).map_err(malformed)?;
            json!({"metadata": metadata(n.metadata)})
        }
        ("v1", "ServiceAccount") => {
            let s = ServiceAccount::decode(raw).map_err(malformed)?;
            let mut v = json!({"metadata": metadata(s.metadata)});
            if let Some(a) = s.automount_service_account_token {
                v["automountServiceAccountToken"] = json!(a);
            }
            v
        }
        ("v1" | "meta.k8s.io/v1", "DeleteOptions") | ("", "") => {
            let d = DeleteOptions::decode(raw).map_err(malformed)?;
            let mut v = json!({});
            if let Some(p) = d.propagation_policy {
                v["propagationPolicy"] = json!(p);
            }
            if let Some(g) = d.grace_period_seconds {
                v["gracePeriodSeconds"] = json!(g);
            }
            if let Some(o) = d.orphan_dependents {
                v["orphanDependents"] = json!(o);
            }
            if let Some(p) = d.preconditions {
                v["preconditions"] = json!({"uid": p.uid, "resourceVersion": p.resource_version});
            }
            if !d.dry_run.is_empty() {
                v["dryRun"] = json!(d.dry_run);
            }
            return Ok(v);
        }
        _ => {
            return Err(KubeError::UnsupportedMediaType(format!(
                "localfargate decodes protobuf bodies only for ConfigMap, Secret, Namespace, ServiceAccount and DeleteOptions, not {api_version} {kind}: use `kubectl apply -f`, `kubectl create -f`, or kubectl 1.31 (which sends JSON)"
            )));
        }
    };
    let mut object = object;
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::apimachinery::pkg::runtime::TypeMeta;

    fn frame(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut out = MAGIC.to_vec();
        out.extend(unknown.encode_to_vec());
        out
    }

    #[test]
    fn configmaps_and_secrets_as_kubectl_132_sends_them() {
        let cm = ConfigMap {
            metadata: Some(ObjectMeta {
                name: Some("cm2".into()),
                ..Default::default()
            }),
            data: BTreeMap::from([("x".into(), "y".into())]),
            ..Default::default()
        };
        let v = decode(&frame("v1", "ConfigMap", cm.encode_to_vec())).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm2"}, "data": {"x": "y"}})
        );
        let s = Secret {
            metadata: Some(ObjectMeta {
                name: Some("s1".into()),
                ..Default::default()
            }),
            data: BTreeMap::from([("pw".into(), b"hunter2".to_vec())]),
            r#type: Some("Opaque".into()),
            ..Default::default()
        };
        let v = decode(&frame("v1", "Secret", s.encode_to_vec())).unwrap();
        assert_eq!(v["data"]["pw"], "aHVudGVyMg==");
        assert_eq!(v["type"], "Opaque");
    }

    #[test]
    fn other_kinds_and_garbage_are_refused_clearly() {
        let e = decode(&frame("apps/v1", "Deployment", vec![])).unwrap_err();
        assert_eq!(e.code(), 415);
        assert!(e.to_string().contains("kubectl apply -f"));
        assert_eq!(decode(b"{}").unwrap_err().code(), 400);
        assert_eq!(decode(b"k8s\0\xff\xff\xff").unwrap_err().code(), 400);
    }
}
