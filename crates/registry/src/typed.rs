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

/// What the controllers read of a stored pod on every pod event (where it is bound, by whom it
/// is scheduled, its phase and address), decoded borrowing the stored strings: a handful of
/// fields instead of a whole `Pod` per event. A pod that does not decode reads as empty (every
/// field `None`), as a missing field does.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct PodView<'a> {
    #[serde(borrow)]
    spec: PodSpecView<'a>,
    #[serde(borrow)]
    status: PodStatusView<'a>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct PodSpecView<'a> {
    #[serde(borrow)]
    node_name: Option<&'a str>,
    #[serde(borrow)]
    scheduler_name: Option<&'a str>,
    #[serde(borrow)]
    restart_policy: Option<&'a str>,
    #[serde(borrow)]
    service_account_name: Option<&'a str>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct PodStatusView<'a> {
    #[serde(borrow)]
    phase: Option<&'a str>,
    #[serde(borrow, rename = "podIP")]
    pod_ip: Option<&'a str>,
}

impl<'a> PodView<'a> {
    pub fn of(pod: &'a Value) -> Self {
        use serde::Deserialize;
        PodView::deserialize(pod).unwrap_or_default()
    }

    /// `spec.nodeName`, `None` when unset or empty (unbound).
    pub fn node_name(&self) -> Option<&'a str> {
        self.spec.node_name.filter(|n| !n.is_empty())
    }

    pub fn scheduler_name(&self) -> Option<&'a str> {
        self.spec.scheduler_name
    }

    /// `spec.restartPolicy`, `Always` when unset (the API defaults it).
    pub fn restart_policy(&self) -> &'a str {
        self.spec.restart_policy.unwrap_or("Always")
    }

    /// `spec.serviceAccountName`, `default` when unset or empty (as the API defaults it).
    pub fn service_account_name(&self) -> &'a str {
        self.spec
            .service_account_name
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
    }

    pub fn phase(&self) -> Option<&'a str> {
        self.status.phase
    }

    /// Not yet running or done: no phase, or `Pending`.
    pub fn is_pending(&self) -> bool {
        self.status.phase.is_none_or(|p| p == "Pending")
    }

    /// Done for good: `Succeeded` or `Failed`.
    pub fn is_finished(&self) -> bool {
        matches!(self.status.phase, Some("Succeeded" | "Failed"))
    }

    /// `status.podIP` as written, `None` when unset.
    pub fn pod_ip(&self) -> Option<&'a str> {
        self.status.pod_ip
    }
}

/// The scalar fields of a stored object's metadata, borrowed (labels, annotations and owners
/// have their own reads in [`crate::meta`] and [`owner_references_of`]): for reads that need
/// more than a name and would otherwise copy the metadata.
#[derive(Debug, Default, Clone, Copy, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MetaView<'a> {
    #[serde(borrow)]
    pub name: Option<&'a str>,
    #[serde(borrow)]
    pub namespace: Option<&'a str>,
    #[serde(borrow)]
    pub uid: Option<&'a str>,
    #[serde(borrow)]
    pub resource_version: Option<&'a str>,
    pub generation: Option<i64>,
    #[serde(borrow)]
    pub deletion_timestamp: Option<&'a str>,
    pub deletion_grace_period_seconds: Option<i64>,
}

impl<'a> MetaView<'a> {
    /// A stored object's metadata; empty when it has none or it does not decode.
    pub fn of(v: &'a Value) -> Self {
        use serde::Deserialize;
        v.get("metadata")
            .and_then(|m| MetaView::deserialize(m).ok())
            .unwrap_or_default()
    }
}

/// A stored Node's `InternalIP` address, borrowed (`None` when it has none).
pub fn internal_ip_of(node: &Value) -> Option<&str> {
    use serde::Deserialize;
    #[derive(Default, serde::Deserialize)]
    #[serde(default)]
    struct Address<'a> {
        #[serde(borrow, rename = "type")]
        type_: &'a str,
        #[serde(borrow)]
        address: &'a str,
    }
    #[derive(Default, serde::Deserialize)]
    #[serde(default)]
    struct Status<'a> {
        #[serde(borrow)]
        addresses: Vec<Address<'a>>,
    }
    let status = Status::deserialize(node.get("status")?).ok()?;
    status
        .addresses
        .into_iter()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address)
}

/// One entry of a stored object's `metadata.ownerReferences`, borrowed: what the garbage
/// collector and the controllers read of every object's owners.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OwnerReferenceView<'a> {
    #[serde(borrow)]
    pub api_version: Option<&'a str>,
    #[serde(borrow)]
    pub kind: Option<&'a str>,
    #[serde(borrow)]
    pub name: Option<&'a str>,
    #[serde(borrow)]
    pub uid: Option<&'a str>,
    pub controller: Option<bool>,
}

/// A stored object's owner references, borrowed (none when it has none or they do not
/// decode: the API refuses ill-typed ones).
pub fn owner_references_of(v: &Value) -> Vec<OwnerReferenceView<'_>> {
    use serde::Deserialize;
    #[derive(Default, serde::Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    struct Meta<'a> {
        #[serde(borrow)]
        owner_references: Vec<OwnerReferenceView<'a>>,
    }
    v.get("metadata")
        .and_then(|m| Meta::deserialize(m).ok())
        .map(|m| m.owner_references)
        .unwrap_or_default()
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
    fn the_pod_view_reads_what_the_controllers_read_on_every_event() {
        let v = json!({"metadata": {"name": "p", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": true},
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "u2"}]},
            "spec": {"nodeName": "n1", "schedulerName": "fargate-scheduler",
                     "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.7"}});
        let p = PodView::of(&v);
        assert_eq!(p.node_name(), Some("n1"));
        assert_eq!(p.scheduler_name(), Some("fargate-scheduler"));
        assert_eq!(
            (p.phase(), p.is_pending(), p.is_finished()),
            (Some("Running"), false, false)
        );
        assert_eq!(p.pod_ip(), Some("10.0.0.7"));
        assert_eq!(p.restart_policy(), "Always");
        assert_eq!(p.service_account_name(), "default");
        let unbound = json!({"spec": {"nodeName": ""}});
        let p = PodView::of(&unbound);
        assert_eq!(
            (p.node_name(), p.is_pending(), p.pod_ip()),
            (None, true, None)
        );
        let owners = owner_references_of(&v);
        assert_eq!(owners.len(), 2);
        assert_eq!(
            (owners[0].uid, owners[0].controller),
            (Some("u1"), Some(true))
        );
        assert_eq!(
            (owners[1].kind, owners[1].controller),
            (Some("ConfigMap"), None)
        );
        assert!(owner_references_of(&json!({"metadata": {}})).is_empty());
        let node = json!({"status": {"addresses": [{"type": "Hostname", "address": "h"},
                                                    {"type": "InternalIP", "address": "10.1.2.3"}]}});
        assert_eq!(internal_ip_of(&node), Some("10.1.2.3"));
        assert_eq!(internal_ip_of(&json!({"metadata": {}})), None);
        let stored = json!({"metadata": {"name": "n", "uid": "u", "resourceVersion": "7",
            "deletionGracePeriodSeconds": 5, "labels": {"a": "b"}}});
        let m = MetaView::of(&stored);
        assert_eq!(
            (m.name, m.uid, m.resource_version),
            (Some("n"), Some("u"), Some("7"))
        );
        assert_eq!(
            (m.deletion_grace_period_seconds, m.namespace),
            (Some(5), None)
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
