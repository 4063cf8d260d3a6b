//! Stored built-in objects read as k8s-openapi's types (`Pod`, `Deployment`, `Service`, …): how
//! the controllers and the front ends reason about a built-in object's spec and status, instead
//! of indexing its JSON by string.
//!
//! A stored built-in object decodes: every write through the API was walked against the served
//! schema (wrong JSON types are refused) and validated, and the registry's own writes go through
//! the same strategies. Decoding borrows the stored JSON (`K::deserialize(&Value)`), so a read
//! copies only what the typed form keeps. Writes stay in the registry's hands: a controller
//! builds the part it owns (a status, a new pod) typed and hands its JSON ([`to_json`]) to
//! `Objects`, which merges, validates and stores it as for any client.
//!
//! Metadata-only reads of a stored object (name, namespace, uid, one label) stay the borrowed
//! reads in [`crate::meta`]: decoding a whole object to read its name would cost a conversion
//! per object for nothing.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, Resource};
use localfargate_store::Object;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::meta::{name_of, namespace_of};
use crate::resources::{RESOURCES, ResourceType};
use crate::{KubeError, Objects};

/// A stored object that does not decode as its type: a write that bypassed the API, or a bug.
#[derive(Debug, thiserror::Error)]
#[error("{kind} {namespace}/{name} does not decode: {source}")]
pub struct DecodeError {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    #[source]
    pub source: serde_json::Error,
}

impl From<DecodeError> for KubeError {
    fn from(e: DecodeError) -> Self {
        KubeError::Internal(e.to_string())
    }
}

/// Decode a stored object (or any object JSON) as `K`, borrowing the JSON.
pub fn decode<K: Resource + DeserializeOwned>(v: &Value) -> Result<K, DecodeError> {
    K::deserialize(v).map_err(|source| DecodeError {
        kind: K::KIND,
        namespace: namespace_of(v).to_string(),
        name: name_of(v).to_string(),
        source,
    })
}

/// Decode, or log why not and give `None`: for a controller's scan, where one bad object must
/// not stop the others.
pub fn decode_or_log<K: Resource + DeserializeOwned>(v: &Value) -> Option<K> {
    decode(v)
        .map_err(|e| tracing::warn!(error = %e, "skipping an object that does not decode"))
        .ok()
}

/// A typed value as the JSON the registry stores (absent options are left out, as
/// k8s-openapi serializes them).
pub fn to_json<T: Serialize>(value: &T) -> Result<Value, KubeError> {
    serde_json::to_value(value).map_err(|e| KubeError::Internal(e.to_string()))
}

/// The served resource of a k8s-openapi type (by group, version and kind), `None` for a type
/// this registry does not serve.
pub fn resource_type<K: Resource>() -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == K::GROUP && r.version == K::VERSION && r.kind == K::KIND)
}

/// A stored object decoded, with its `resourceVersion` (the store keeps it beside the JSON).
pub fn decode_stored<K: Resource + Metadata<Ty = ObjectMeta> + DeserializeOwned>(
    o: &Object,
) -> Result<K, DecodeError> {
    let mut k: K = decode(&o.value)?;
    k.metadata_mut().resource_version = Some(o.revision.to_string());
    Ok(k)
}

/// Every stored object of `K` in `namespace` (or all), decoded with its `resourceVersion`;
/// objects that do not decode are logged and skipped.
pub fn list<K: Resource + Metadata<Ty = ObjectMeta> + DeserializeOwned>(
    objects: &Objects,
    namespace: Option<&str>,
) -> Result<Vec<K>, KubeError> {
    let Some(rt) = resource_type::<K>() else {
        return Err(KubeError::Internal(format!("{} is not served", K::KIND)));
    };
    let (stored, _) = objects.list(rt, namespace)?;
    Ok(stored
        .iter()
        .filter_map(|o: &Arc<Object>| {
            decode_stored(o)
                .map_err(|e| tracing::warn!(error = %e, "skipping an object that does not decode"))
                .ok()
        })
        .collect())
}

/// One stored object of `K`, decoded with its `resourceVersion`; `None` when it does not exist.
pub fn get<K: Resource + Metadata<Ty = ObjectMeta> + DeserializeOwned>(
    objects: &Objects,
    namespace: &str,
    name: &str,
) -> Result<Option<K>, KubeError> {
    let Some(rt) = resource_type::<K>() else {
        return Err(KubeError::Internal(format!("{} is not served", K::KIND)));
    };
    match objects.get_object(rt, namespace, name)? {
        Some(o) => Ok(Some(decode_stored(&o)?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    #[test]
    fn stored_objects_decode_as_their_type_and_serve_their_resource() {
        let v = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "a", "labels": {"app": "web"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        let d: Deployment = decode(&v).unwrap();
        assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(3));
        assert_eq!(d.metadata.name.as_deref(), Some("web"));
        assert_eq!(
            resource_type::<Deployment>().map(|r| r.resource),
            Some("deployments")
        );
        assert_eq!(resource_type::<Pod>().map(|r| r.resource), Some("pods"));
        let back = to_json(&d).unwrap();
        assert_eq!(
            back["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx"
        );
    }

    #[test]
    fn an_object_of_the_wrong_shape_names_itself_in_the_error() {
        let v = json!({"metadata": {"name": "p", "namespace": "a"}, "spec": {"containers": 5}});
        let e = decode::<Pod>(&v).unwrap_err();
        assert_eq!(
            (e.kind, e.namespace.as_str(), e.name.as_str()),
            ("Pod", "a", "p")
        );
        assert!(
            e.to_string()
                .starts_with("Pod a/p does not decode: invalid type"),
            "{e}"
        );
    }
}
