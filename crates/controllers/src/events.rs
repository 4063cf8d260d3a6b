//! core/v1 Events, as `kubectl describe` reads them: about one object (uid included, since
//! describe filters on it), from one component, repeated ones counted rather than duplicated.

use localfargate_store::{Result as StoreResult, StoreError, Tx};
use serde_json::{Value, json};

use localfargate_registry::meta::ObjectMeta;
use localfargate_registry::objects::{
    KubeError, Objects, Result, name_of, namespace_of, now_rfc3339, resource, uid_of,
};
use localfargate_registry::typed::MetaView;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// A short stable hash, so the same (object, reason, message) lands on the same Event.
fn fingerprint(parts: &[&str]) -> String {
    use std::hash::Hasher;
    let mut h = localfargate_core::matching::Fnv1a::default();
    for p in parts {
        h.write(p.as_bytes());
        h.write(&[0]);
    }
    format!("{:016x}", h.finish())
}

/// A new Event about `object`, stamped, and its store key: for writers that batch events into
/// their own transaction.
pub fn build(
    object: &Value,
    event_type: EventType,
    reason: &str,
    message: &str,
    component: &str,
) -> (String, Value) {
    // Written straight to the store (the node agent's batch), so stamped here as the registry
    // stamps what it creates.
    let (namespace, name, body) = body(object, event_type, reason, message, component, true);
    (resource("", "events").key(&namespace, &name), body)
}

/// Writes an Event made by [`build`] in `tx`, or, when that object already has one with this
/// reason and message, counts it there (`count`, `lastTimestamp`), as the kubelet's event
/// correlator does: `kubectl describe` shows `(x5 over 7s)`.
pub fn write_in(tx: &mut dyn Tx, kind: &str, key: &str, event: &Value) -> StoreResult<()> {
    match tx.create(kind, key, event) {
        Ok(_) => Ok(()),
        Err(StoreError::AlreadyExists { .. }) => {
            let Some(old) = tx.get(kind, key)? else {
                return Ok(());
            };
            let mut counted = old.value.clone();
            counted["count"] = json!(counted["count"].as_i64().unwrap_or(1) + 1);
            counted["lastTimestamp"] = event["lastTimestamp"].clone();
            tx.update(kind, key, &counted, Some(old.revision))
                .map(|_| ())
        }
        Err(e) => Err(e),
    }
}

fn event_name(object: &Value, reason: &str, message: &str, component: &str) -> String {
    let kind = object["kind"].as_str().unwrap_or("");
    let uid = uid_of(object);
    format!(
        "{}.{}",
        name_of(object),
        fingerprint(&[kind, uid, reason, message, component])
    )
}

fn event_namespace(object: &Value) -> String {
    match namespace_of(object) {
        "" => "default".to_string(),
        ns => ns.to_string(),
    }
}

/// (namespace, name, Event) for a first occurrence.
fn body(
    object: &Value,
    event_type: EventType,
    reason: &str,
    message: &str,
    component: &str,
    stamped: bool,
) -> (String, String, Value) {
    let namespace = event_namespace(object);
    let event_name = event_name(object, reason, message, component);
    let now = now_rfc3339();
    let mut metadata = ObjectMeta {
        name: Some(event_name.clone()),
        namespace: Some(namespace.clone()),
        ..Default::default()
    };
    if stamped {
        metadata.uid = Some(localfargate_registry::objects::new_uid());
        metadata.creation_timestamp = Some(now.clone());
    }
    let meta = MetaView::of(object);
    let body = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": Value::Object(metadata.into_map()),
        "involvedObject": {
            "kind": object["kind"],
            "namespace": namespace_of(object),
            "name": name_of(object),
            "uid": meta.uid,
            "apiVersion": object["apiVersion"],
            "resourceVersion": meta.resource_version,
        },
        "reason": reason,
        "message": message,
        "type": event_type.as_str(),
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": "",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    });
    (namespace, event_name, body)
}

/// Record an event about `object` (any kind), counting repeats.
pub fn record(
    objects: &Objects,
    object: &Value,
    event_type: EventType,
    reason: &str,
    message: &str,
    component: &str,
) -> Result<()> {
    let events = resource("", "events");
    let (namespace, event_name, body) = body(object, event_type, reason, message, component, false);
    let now = now_rfc3339();
    let updated = objects.update_with(events, &namespace, &event_name, false, None, &mut |e| {
        let mut e = e.clone();
        e["count"] = json!(e["count"].as_i64().unwrap_or(1) + 1);
        e["lastTimestamp"] = json!(now);
        Ok(e)
    });
    match updated {
        Ok(_) => Ok(()),
        Err(KubeError::NotFound { .. }) => {
            match objects.create(events, &namespace, body) {
                // A namespace being deleted takes no new events; that is not the caller's failure.
                Ok(_) | Err(KubeError::Forbidden(_)) | Err(KubeError::NotFound { .. }) => Ok(()),
                Err(KubeError::AlreadyExists { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Record an event, logging rather than failing: events are advisory.
pub fn emit(
    objects: &Objects,
    object: &Value,
    event_type: EventType,
    reason: &str,
    message: &str,
    component: &str,
) {
    if let Err(e) = record(objects, object, event_type, reason, message, component) {
        tracing::warn!(error = %e, reason, "recording an event");
    }
}
