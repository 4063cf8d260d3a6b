//! The EKS lifecycle: clusters, Fargate profiles, node groups, add-ons and identity provider
//! configs go CREATING → ACTIVE, UPDATING → ACTIVE (with the record's `pending` values merged
//! into the resource), and DELETING → gone; updates go InProgress → Successful; each when its
//! record's `transitionAt` comes. Everything it needs is in the store, so after a restart it
//! picks up where it was.

use std::sync::Arc;
use std::time::Duration;

use localfargate_core::eks::{
    ADDON_KIND, CLUSTER_KIND, FARGATE_PROFILE_KIND, IDENTITY_PROVIDER_CONFIG_KIND, NODEGROUP_KIND,
    UPDATE_KIND,
};
use localfargate_store::{Store, StoreError, StoreExt};
use serde_json::Value;

const KINDS: [&str; 6] = [
    CLUSTER_KIND,
    FARGATE_PROFILE_KIND,
    NODEGROUP_KIND,
    ADDON_KIND,
    IDENTITY_PROVIDER_CONFIG_KIND,
    UPDATE_KIND,
];
/// The longest the loop sleeps, so new resources are seen promptly.
const MAX_SLEEP: Duration = Duration::from_millis(200);

/// Apply every transition due at `now` (epoch seconds). Returns the next one still to come.
pub fn reconcile_once(store: &dyn Store, now: f64) -> Result<Option<f64>, StoreError> {
    let mut next: Option<f64> = None;
    for kind in KINDS {
        let (objects, _) = store.list(kind, "")?;
        for object in objects {
            let Some(due) = object.value.get("transitionAt").and_then(Value::as_f64) else {
                continue;
            };
            if due > now {
                next = Some(next.map_or(due, |n| n.min(due)));
                continue;
            }
            let status = object.value["resource"]["status"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let outcome = match status.as_str() {
                "CREATING" | "UPDATING" | "InProgress" => {
                    let mut record = object.value.clone();
                    // An update decided at its start to fail (a node group drain a disruption
                    // budget blocks) ends Failed with its errors.
                    let failure = record.get("failure").filter(|f| f.is_array()).cloned();
                    let done = match (status.as_str(), &failure) {
                        ("InProgress", Some(_)) => "Failed",
                        ("InProgress", None) => "Successful",
                        _ => "ACTIVE",
                    };
                    record["resource"]["status"] = Value::from(done);
                    if let Some(errors) = failure {
                        record["resource"]["errors"] = errors;
                    }
                    if record["resource"].get("modifiedAt").is_some() {
                        record["resource"]["modifiedAt"] = Value::from(now);
                    }
                    if let Some(map) = record.as_object_mut() {
                        map.remove("transitionAt");
                        if let Some(Value::Object(pending)) = map.remove("pending")
                            && let Some(resource) =
                                map.get_mut("resource").and_then(Value::as_object_mut)
                        {
                            resource.extend(pending);
                        }
                    }
                    store
                        .update(kind, &object.key, &record, Some(object.revision))
                        .map(|_| ())
                }
                "DELETING" => store
                    .delete(kind, &object.key, Some(object.revision))
                    .map(|_| ()),
                _ => Ok(()),
            };
            match outcome {
                Ok(()) => {
                    tracing::info!(kind, key = %object.key, from = %status, "lifecycle transition")
                }
                // Changed under us (a delete raced the activation): the next pass sees the new state.
                Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(next)
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Run the lifecycle until the task is dropped.
pub async fn run(store: Arc<dyn Store>) {
    loop {
        let sleep = match reconcile_once(store.as_ref(), now()) {
            Ok(Some(next)) => {
                Duration::from_secs_f64((next - now()).clamp(0.005, MAX_SLEEP.as_secs_f64()))
            }
            Ok(None) => MAX_SLEEP,
            Err(e) => {
                tracing::error!(error = %e, "lifecycle pass failed");
                MAX_SLEEP
            }
        };
        tokio::time::sleep(sleep).await;
    }
}

#[cfg(test)]
mod tests {
    use localfargate_store::SqliteStore;
    use serde_json::json;

    use super::*;

    #[test]
    fn transitions_when_due_and_reports_the_next() {
        let store = SqliteStore::in_memory().unwrap();
        store
            .create(
                CLUSTER_KIND,
                "c1",
                &json!({"resource": {"status": "CREATING"}, "transitionAt": 10.0}),
            )
            .unwrap();
        store
            .create(
                FARGATE_PROFILE_KIND,
                "c1/p",
                &json!({"resource": {"status": "DELETING"}, "transitionAt": 20.0}),
            )
            .unwrap();
        store
            .create(
                NODEGROUP_KIND,
                "c1/n",
                &json!({"resource": {"status": "ACTIVE"}}),
            )
            .unwrap();
        assert_eq!(reconcile_once(&store, 5.0).unwrap(), Some(10.0));
        assert_eq!(reconcile_once(&store, 10.0).unwrap(), Some(20.0));
        let cluster = store
            .get(CLUSTER_KIND, "c1")
            .unwrap()
            .unwrap()
            .value
            .clone();
        assert_eq!(cluster, json!({"resource": {"status": "ACTIVE"}}));
        assert_eq!(reconcile_once(&store, 25.0).unwrap(), None);
        assert!(store.get(FARGATE_PROFILE_KIND, "c1/p").unwrap().is_none());
        assert!(store.get(NODEGROUP_KIND, "c1/n").unwrap().is_some());
    }
}
