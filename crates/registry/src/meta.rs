//! Reading and stamping an object's metadata in its untyped JSON body: names, uids, timestamps,
//! resource versions, finalizers. Pure functions every part of the registry shares.

use std::sync::Arc;

use localfargate_store::{Object, Revision};
use serde_json::Value;

/// A time as the API writes timestamps: RFC 3339, seconds, UTC.
pub fn rfc3339(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The current time as the API writes timestamps.
pub fn now_rfc3339() -> String {
    rfc3339(jiff::Timestamp::now())
}

/// A pod whose containers are done for good: Succeeded or Failed.
pub fn is_finished(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

/// A fresh object uid.
pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `metadata.name` of an object, or "".
pub fn name_of(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or("")
}

pub fn namespace_of(v: &Value) -> &str {
    v["metadata"]["namespace"].as_str().unwrap_or("")
}

pub fn uid_of(v: &Value) -> &str {
    v["metadata"]["uid"].as_str().unwrap_or("")
}

/// The object with its `resourceVersion` filled in from the store revision.
pub fn with_resource_version(o: &Object) -> Value {
    let mut v = o.value.clone();
    set_resource_version(&mut v, o.revision);
    v
}

/// Like `with_resource_version`, without a copy when nothing else holds the object (a read
/// from the store decodes a fresh one).
pub fn into_resource_version(o: Arc<Object>) -> Value {
    let revision = o.revision;
    let mut v = Arc::try_unwrap(o).map_or_else(|shared| shared.value.clone(), |own| own.value);
    set_resource_version(&mut v, revision);
    v
}

pub fn set_resource_version(v: &mut Value, revision: Revision) {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".to_string(),
            Value::String(revision.to_string()),
        );
    }
}

pub fn is_deleting(v: &Value) -> bool {
    v["metadata"]["deletionTimestamp"].is_string()
}

pub fn finalizers(v: &Value) -> Vec<String> {
    v["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
