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

use crate::objects::{KubeError, Objects, Result};

/// Decode a pod as the API server would, refusing one whose fields have the wrong types.
pub fn decode_pod(pod: &Value) -> Result<Pod> {
    // Decoding from a reference: no copy of the pod's JSON.
    <Pod as serde::Deserialize>::deserialize(pod).map_err(|e| {
        KubeError::BadRequest(format!(
            "Pod in version \"v1\" cannot be handled as a Pod: {e}"
        ))
    })
}

/// Run the webhook on a new pod.
pub fn admit_pod(objects: &Objects, pod: &mut Value) -> Result<()> {
    let typed = decode_pod(pod)?;
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
        mutate(pod, &profile);
    }
    Ok(())
}

/// What `localfargate_core::admission::mutate` does to a typed pod, on the JSON form so fields
/// k8s-openapi does not know survive.
pub fn mutate(pod: &mut Value, profile: &str) {
    if !pod["metadata"]["labels"].is_object() {
        pod["metadata"]["labels"] = json!({});
    }
    pod["metadata"]["labels"][PROFILE_LABEL] = json!(profile);
    pod["spec"]["schedulerName"] = json!(FARGATE_SCHEDULER);
    pod["spec"]["priorityClassName"] = json!(FARGATE_PRIORITY_CLASS);
    pod["spec"]["priority"] = json!(FARGATE_PRIORITY);
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
        assert_eq!(value, serde_json::to_value(&typed).unwrap());
    }
}
