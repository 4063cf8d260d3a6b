//! What the EKS add-ons do inside a cluster. The coredns add-on manages the cluster's CoreDNS
//! Deployment in kube-system, as EKS's does once it is ACTIVE: the container image follows the
//! add-on's version, `replicaCount` sets the replicas, and `computeType: Fargate` removes the
//! `eks.amazonaws.com/compute-type: ec2` annotation from the pod template (so CoreDNS can run
//! on Fargate); any other compute type puts it back. Deleting the add-on without `preserve`
//! removes the Deployment, as EKS does. Without a coredns add-on the Deployment is left alone
//! (self-managed, as the guides patch it). The other add-ons have nothing to run locally.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use localfargate_core::COMPUTE_TYPE_ANNOTATION;
use localfargate_core::eks::ADDON_KIND;
use localfargate_registry::objects::{KubeError, Objects, resource};
use localfargate_registry::typed;
use serde_json::Value;

use crate::context::ClusterContext;

/// The CoreDNS Deployment as the coredns add-on `addon` (its stored resource) wants it, or
/// `None` when it already is (or it is not a Deployment that decodes).
pub fn desired_coredns(deployment: &Value, addon: &Value) -> Option<Value> {
    let config = addon["configurationValues"]
        .as_str()
        .and_then(|t| localfargate_core::eks_catalog::parse_configuration("coredns", t).ok())
        .unwrap_or_default();
    let current: Deployment = typed::decode_or_log(deployment)?;
    let mut next = current.clone();
    let spec = next.spec.as_mut()?;
    let template = spec.template.metadata.get_or_insert_default();
    if config.get("computeType").and_then(Value::as_str) == Some("Fargate") {
        if let Some(annotations) = template.annotations.as_mut() {
            annotations.remove(COMPUTE_TYPE_ANNOTATION);
        }
    } else {
        template
            .annotations
            .get_or_insert_default()
            .insert(COMPUTE_TYPE_ANNOTATION.to_string(), "ec2".to_string());
    }
    if let Some(replicas) = config
        .get("replicaCount")
        .and_then(Value::as_u64)
        .and_then(|r| i32::try_from(r).ok())
    {
        spec.replicas = Some(replicas);
    }
    if let Some(version) = addon["addonVersion"].as_str()
        && let Some(pod) = spec.template.spec.as_mut()
    {
        for c in pod.containers.iter_mut().filter(|c| c.name == "coredns") {
            if let Some((repo, _)) = c.image.as_deref().and_then(|i| i.rsplit_once(':')) {
                c.image = Some(format!("{repo}:{version}"));
            }
        }
    }
    if next == current {
        return None;
    }
    typed::to_json(&next)
        .map_err(|e| tracing::warn!(error = %e, "encoding the CoreDNS Deployment"))
        .ok()
}

/// Bring the CoreDNS Deployment in line with the coredns add-on record, if there is one.
pub fn reconcile(objects: &Objects, record: &Value) -> Result<(), KubeError> {
    let deployments = resource("apps", "deployments");
    let addon = &record["resource"];
    match addon["status"].as_str() {
        Some("ACTIVE" | "DEGRADED") => {}
        Some("DELETING") if record["preserve"] != true => {
            let opts = localfargate_registry::objects::DeleteOptions::default();
            return match objects.delete(deployments, "kube-system", "coredns", &opts) {
                Ok(_) | Err(KubeError::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            };
        }
        _ => return Ok(()),
    }
    let current = match objects.get(deployments, "kube-system", "coredns") {
        Ok(d) => d,
        Err(KubeError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    if let Some(next) = desired_coredns(&current, addon) {
        objects.update(deployments, "kube-system", "coredns", next, false, false)?;
        tracing::info!(cluster = %objects.cluster, "coredns add-on applied to the CoreDNS Deployment");
    }
    Ok(())
}

/// Follow the cluster's add-on records until the task is dropped.
pub async fn run(ctx: Arc<ClusterContext>) {
    let objects = &ctx.objects;
    let prefix = format!("{}/", objects.cluster);
    let key = format!("{prefix}coredns");
    loop {
        let revision = match objects.store.list(ADDON_KIND, &prefix) {
            Ok((addons, revision)) => {
                if let Some(coredns) = addons.iter().find(|o| o.key == key)
                    && let Err(e) = reconcile(objects, &coredns.value)
                {
                    tracing::warn!(cluster = %objects.cluster, error = %e, "applying the coredns add-on");
                }
                revision
            }
            Err(e) => {
                tracing::error!(error = %e, "listing add-ons");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Until an add-on changes; and now and then, for a Deployment that was not there yet.
        localfargate_store::changed_since(
            objects.store.as_ref(),
            ADDON_KIND,
            &prefix,
            revision,
            Duration::from_secs(5),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({"metadata": {"name": "coredns", "namespace": "kube-system"},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"k8s-app": "kube-dns"}}, "template": {
            "metadata": {"annotations": {COMPUTE_TYPE_ANNOTATION: "ec2"}},
            "spec": {"containers": [{"name": "coredns",
                "image": "602401143452.dkr.ecr.us-east-1.amazonaws.com/eks/coredns:v1.11.3-eksbuild.1"}]}}}})
    }

    #[test]
    fn fargate_compute_type_removes_the_annotation() {
        let addon = json!({"addonVersion": "v1.11.4-eksbuild.2",
                           "configurationValues": "{\"computeType\":\"Fargate\",\"replicaCount\":3}"});
        let next = desired_coredns(&deployment(), &addon).unwrap();
        assert_eq!(
            next["spec"]["template"]["metadata"]["annotations"],
            json!({})
        );
        assert_eq!(next["spec"]["replicas"], 3);
        assert!(
            next["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap()
                .ends_with("/eks/coredns:v1.11.4-eksbuild.2")
        );
        assert_eq!(desired_coredns(&next, &addon), None);
        // Without computeType the annotation comes back.
        let back = desired_coredns(&next, &json!({"addonVersion": "v1.11.4-eksbuild.2"})).unwrap();
        assert_eq!(
            back["spec"]["template"]["metadata"]["annotations"][COMPUTE_TYPE_ANNOTATION],
            "ec2"
        );
    }
}
