//! The cleanup of a CustomResourceDefinition being deleted, as apiextensions-apiserver's
//! finalizer controller does it: the definition says `Terminating`, its custom resources are
//! deleted (each as a DELETE would, so their own finalizers hold them), and once none is left
//! the `customresourcecleanup.apiextensions.k8s.io` finalizer goes and the definition with it.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use localfargate_registry::custom::CustomResource;
use localfargate_registry::custom::catalog::{CLEANUP_FINALIZER, CRD_GROUP};
use localfargate_registry::objects::{
    DeleteOptions, Objects, finalizers, is_deleting, name_of, namespace_of, now_rfc3339, resource,
};
use serde_json::{Value, json};

/// One step of the cleanup of definition `name`; called again until the definition is gone.
pub fn clean_up(objects: &Objects, name: &str) {
    let definitions = resource(CRD_GROUP, "customresourcedefinitions");
    let Ok(crd) = objects.get(definitions, "", name) else {
        return;
    };
    if !is_deleting(&crd) || !finalizers(&crd).iter().any(|f| f == CLEANUP_FINALIZER) {
        return;
    }
    if let Err(e) = mark_terminating(objects, name) {
        tracing::warn!(definition = name, error = %e, "marking a definition Terminating");
    }
    let resource = match serde_json::from_value::<CustomResourceDefinition>(crd.clone())
        .map_err(|e| e.to_string())
        .and_then(|typed| CustomResource::from_definition(&typed, &crd).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            // A definition that cannot be read has no objects this could find: let it go.
            tracing::warn!(definition = name, error = %e, "an unreadable definition is deleted without cleanup");
            release(objects, name);
            return;
        }
    };
    let Some(rt) = resource.storage() else {
        release(objects, name);
        return;
    };
    let Ok((remaining, _)) = objects.list(rt, None) else {
        return;
    };
    for o in remaining.iter().filter(|o| !is_deleting(&o.value)) {
        let _ = objects.delete(
            rt,
            namespace_of(&o.value),
            name_of(&o.value),
            &DeleteOptions::default(),
        );
    }
    if remaining.is_empty() {
        release(objects, name);
    }
}

/// The `Terminating` condition, once.
fn mark_terminating(objects: &Objects, name: &str) -> Result<(), localfargate_registry::KubeError> {
    let definitions = resource(CRD_GROUP, "customresourcedefinitions");
    let crd = objects.get(definitions, "", name)?;
    let terminating = crd["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Terminating"));
    if terminating {
        return Ok(());
    }
    objects.update_with(definitions, "", name, true, None, &mut |cur| {
        let mut new = cur.clone();
        let mut conditions: Vec<Value> = new["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        conditions.retain(|c| c["type"] != "Terminating");
        conditions.push(json!({
            "type": "Terminating",
            "status": "True",
            "lastTransitionTime": now_rfc3339(),
            "reason": "InstanceDeletionInProgress",
            "message": "CustomResource deletion is in progress",
        }));
        new["status"]["conditions"] = Value::Array(conditions);
        Ok(new)
    })?;
    Ok(())
}

/// Remove the cleanup finalizer: the definition goes when it was the last.
fn release(objects: &Objects, name: &str) {
    let definitions = resource(CRD_GROUP, "customresourcedefinitions");
    let result = objects.update_with(definitions, "", name, false, None, &mut |cur| {
        let mut new = cur.clone();
        let kept: Vec<String> = finalizers(cur)
            .into_iter()
            .filter(|f| f != CLEANUP_FINALIZER)
            .collect();
        new["metadata"]["finalizers"] = json!(kept);
        Ok(new)
    });
    if let Err(e) = result {
        tracing::warn!(definition = name, error = %e, "releasing a definition");
    }
}
