//! The cleanup of a CustomResourceDefinition being deleted, as apiextensions-apiserver's
//! finalizer controller does it: the definition says `Terminating`, its custom resources are
//! deleted (each as a DELETE would, so their own finalizers hold them), and once none is left
//! the `customresourcecleanup.apiextensions.k8s.io` finalizer goes and the definition with it.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use localfargate_registry::custom::CustomResource;
use localfargate_registry::custom::catalog::{CLEANUP_FINALIZER, CRD_GROUP};
use localfargate_registry::meta::{DynamicObject, label_of};
use localfargate_registry::objects::{
    DeleteOptions, Objects, finalizers, is_deleting, name_of, namespace_of, now_rfc3339, resource,
};
use localfargate_registry::typed;
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
    let crd: CustomResourceDefinition = typed::decode(&objects.get(definitions, "", name)?)?;
    let terminating = crd
        .status
        .and_then(|s| s.conditions)
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Terminating"));
    if terminating {
        return Ok(());
    }
    objects.update_with(definitions, "", name, true, None, &mut |cur| {
        let mut new = DynamicObject::from_value(cur.clone())?;
        // The status is the API server's own to write; a condition is added by its type.
        let status = new.field_mut("status");
        let mut conditions: Vec<Value> =
            status["conditions"].as_array().cloned().unwrap_or_default();
        conditions.retain(|c| c["type"] != "Terminating");
        conditions.push(json!({
            "type": "Terminating",
            "status": "True",
            "lastTransitionTime": now_rfc3339(),
            "reason": "InstanceDeletionInProgress",
            "message": "CustomResource deletion is in progress",
        }));
        status["conditions"] = Value::Array(conditions);
        Ok(new.into_value())
    })?;
    Ok(())
}

/// Remove the cleanup finalizer: the definition goes when it was the last.
fn release(objects: &Objects, name: &str) {
    let definitions = resource(CRD_GROUP, "customresourcedefinitions");
    let result = objects.update_with(definitions, "", name, false, None, &mut |cur| {
        let mut new = DynamicObject::from_value(cur.clone())?;
        let kept: Vec<String> = new
            .metadata
            .finalizers()
            .iter()
            .filter(|f| *f != CLEANUP_FINALIZER)
            .cloned()
            .collect();
        new.metadata.set_finalizers(kept);
        Ok(new.into_value())
    });
    if let Err(e) = result {
        tracing::warn!(definition = name, error = %e, "releasing a definition");
    }
}

/// The label kube-aggregator's autoregister controller marks the APIServices it keeps with;
/// `true` for those kept in sync with the definitions (its `AddAPIServiceToSync`).
const AUTOMANAGED: &str = "kube-aggregator.kubernetes.io/automanaged";

/// One APIService (`Local`) per group-version some CustomResourceDefinition serves, and none
/// left for a group-version no definition serves any more, as kube-apiserver's CRD registration
/// controller keeps them: `kubectl get apiservices` lists `v1beta1.vpcresources.k8s.aws` as on
/// EKS.
pub fn sync_api_services(objects: &Objects) -> Result<(), localfargate_registry::KubeError> {
    let definitions = resource(CRD_GROUP, "customresourcedefinitions");
    let api_services = resource("apiregistration.k8s.io", "apiservices");
    let (crds, _) = objects.list(definitions, None)?;
    let mut wanted: std::collections::BTreeMap<String, (String, String)> = Default::default();
    for crd in crds.iter() {
        let Some(crd) = typed::decode_or_log::<CustomResourceDefinition>(&crd.value) else {
            continue;
        };
        let group = crd.spec.group.as_str();
        for version in &crd.spec.versions {
            let name = version.name.as_str();
            if group.is_empty() || name.is_empty() || !version.served {
                continue;
            }
            wanted.insert(
                format!("{name}.{group}"),
                (group.to_string(), name.to_string()),
            );
        }
    }
    let (existing, _) = objects.list(api_services, None)?;
    for o in existing.iter() {
        let name = name_of(&o.value);
        if label_of(&o.value, AUTOMANAGED) == Some("true") && !wanted.contains_key(name) {
            match objects.delete(api_services, "", name, &DeleteOptions::default()) {
                Ok(_) | Err(localfargate_registry::KubeError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    for (name, (group, version)) in wanted {
        // A group-version that already has an APIService (a built-in one, or kept) is left,
        // but one of these whose status was never written gets it now.
        if let Some(kept) = existing.iter().find(|o| name_of(&o.value) == name) {
            let available = typed::decode_or_log::<APIService>(&kept.value)
                .and_then(|a| a.status?.conditions)
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Available"));
            if label_of(&kept.value, AUTOMANAGED) == Some("true") && !available {
                set_local_status(objects, &name)?;
            }
            continue;
        }
        let body = json!({
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": name, "labels": {AUTOMANAGED: "true"}},
            // CRDs sort after the built-in groups, and by kube-like version among themselves.
            "spec": {"group": group, "version": version,
                     "groupPriorityMinimum": 1000, "versionPriority": 100},
        });
        match objects.create(api_services, "", body) {
            Ok(_) => {}
            Err(localfargate_registry::KubeError::AlreadyExists { .. }) => continue,
            Err(e) => return Err(e),
        }
        set_local_status(objects, &name)?;
    }
    Ok(())
}

/// The status of an APIService the API server serves itself.
fn set_local_status(objects: &Objects, name: &str) -> Result<(), localfargate_registry::KubeError> {
    let api_services = resource("apiregistration.k8s.io", "apiservices");
    objects.update_with(api_services, "", name, true, None, &mut |cur| {
        let mut new = DynamicObject::from_value(cur.clone())?;
        *new.field_mut("status") = json!({"conditions": [{
            "type": "Available", "status": "True", "reason": "Local",
            "message": "Local APIServices are always available",
            "lastTransitionTime": now_rfc3339(),
        }]});
        Ok(new.into_value())
    })?;
    Ok(())
}
