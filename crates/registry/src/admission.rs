//! Fargate's mutating webhook, on pod CREATE only (as on AWS): a pod a profile takes gets the
//! `fargate-scheduler`, the profile label and Fargate's forced priority; every other pod is left to
//! the default scheduler. Validation ("Pod not supported on Fargate: …") is the fargate-scheduler's,
//! so a refused pod is still created and stays Pending with the event, as on AWS.

use k8s_openapi::api::core::v1::Pod;
use localfargate_core::{
    FARGATE_PRIORITY, FARGATE_PRIORITY_CLASS, FARGATE_SCHEDULER, PROFILE_LABEL, Placement,
    PodIdentity,
};
use serde_json::{Value, json};

use crate::meta::DynamicObject;
use crate::objects::{KubeError, Objects, Result};

fn cannot_handle(e: serde_json::Error) -> KubeError {
    KubeError::BadRequest(format!(
        "Pod in version \"v1\" cannot be handled as a Pod: {e}"
    ))
}

/// Decode a pod as the API server would, refusing one whose fields have the wrong types.
pub fn decode_pod(pod: &Value) -> Result<Pod> {
    // Decoding from a reference: no copy of the pod's JSON.
    <Pod as serde::Deserialize>::deserialize(pod).map_err(cannot_handle)
}

/// [`decode_pod`] of a pod the registry holds (the same words for the same faults).
pub fn decode_pod_object(pod: &DynamicObject) -> Result<Pod> {
    pod.decode().map_err(cannot_handle)
}

/// Run the webhook on a new pod.
pub fn admit_pod(objects: &Objects, pod: &mut DynamicObject) -> Result<()> {
    let typed = decode_pod_object(pod)?;
    if let Some(w) = typed
        .metadata
        .annotations
        .as_ref()
        .and_then(localfargate_core::fargate_spot::annotation_warning)
    {
        crate::webhooks::warn(w);
    }
    let index = objects.profile_index();
    let identity = PodIdentity::of(&typed);
    let placement = index.place(&identity, objects.settings.selection_rule);
    if let Placement::Fargate(m) = placement {
        let profile = m.profile.name.clone();
        mutate_object(pod, &profile);
    }
    Ok(())
}

/// [`mutate`] of a pod the registry holds.
pub fn mutate_object(pod: &mut DynamicObject, profile: &str) {
    pod.metadata
        .insert_label(PROFILE_LABEL, profile.to_string());
    let spec = pod.field_mut("spec");
    spec["schedulerName"] = json!(FARGATE_SCHEDULER);
    spec["priorityClassName"] = json!(FARGATE_PRIORITY_CLASS);
    spec["priority"] = json!(FARGATE_PRIORITY);
}

/// What `localfargate_core::admission::mutate` does to a typed pod, on the JSON form so fields
/// k8s-openapi does not know survive: [`mutate_object`] of the pod moved into its typed-metadata
/// form and back (no copy). Something that is not an object with object metadata is not a pod,
/// and is left as it is.
pub fn mutate(pod: &mut Value, profile: &str) {
    let pod_shaped = pod.is_object()
        && pod
            .get("metadata")
            .is_none_or(|m| m.is_object() || m.is_null());
    if !pod_shaped {
        return;
    }
    if let Ok(mut object) = DynamicObject::from_value(std::mem::take(pod)) {
        mutate_object(&mut object, profile);
        *pod = object.into_value();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutation_matches_core() {
        let mut typed: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}
        }))
        .unwrap();
        let mut value = serde_json::to_value(&typed).unwrap();
        localfargate_core::admission::mutate(&mut typed, "fp-default");
        mutate(&mut value, "fp-default");
        let mut object = DynamicObject::from_value(value.clone()).unwrap();
        mutate_object(&mut object, "fp-default");
        assert_eq!(value, serde_json::to_value(&typed).unwrap());
        assert_eq!(object.into_value(), value);
    }

    #[test]
    fn a_pod_decodes_with_the_same_words_whole_or_typed() {
        for pod in [
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "p", "labels": {"a": "1"}},
                   "spec": {"containers": [{"name": "c", "image": "nginx"}]}}),
            json!({"metadata": {"name": "p", "labels": {"a": 1}},
                   "spec": {"containers": [{"name": "c", "image": 5}]}}),
            json!({"metadata": {"name": 3}, "spec": {"containers": "no"}}),
            json!({"apiVersion": "v2", "kind": "Pod", "spec": {}}),
            json!({"kind": 7, "spec": {"containers": []}, "status": {"phase": 1}}),
        ] {
            let whole = decode_pod(&pod).map_err(|e| e.to_string());
            let object = DynamicObject::from_value(pod.clone()).unwrap();
            let typed = decode_pod_object(&object).map_err(|e| e.to_string());
            assert_eq!(whole, typed, "{pod}");
        }
    }
}
