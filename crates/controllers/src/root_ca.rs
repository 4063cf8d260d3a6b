//! kube-controller-manager's root-ca-cert-publisher: every namespace has the ConfigMap
//! `kube-root-ca.crt` holding the cluster CA (`ca.crt`), which the projected service-account
//! volume of every pod mounts; one changed or deleted by hand is put back.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use localfargate_core::eks::CLUSTER_KIND;
use localfargate_registry::meta::DynamicObject;
use localfargate_registry::objects::{KubeError, Objects, is_deleting, name_of, resource};
use localfargate_registry::typed;
use serde_json::{Value, json};

use crate::context::ClusterContext;
use crate::wake::Wake;

pub const NAME: &str = "kube-root-ca.crt";

/// The description upstream's publisher annotates the ConfigMap with.
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver \
    when using internal endpoints such as the internal service IP or kubernetes.default.svc. No \
    other usage is guaranteed across distributions of Kubernetes clusters.";

/// The ConfigMap for `ca_pem`.
pub fn config_map(ca_pem: &str) -> Value {
    json!({
        "metadata": {"name": NAME, "annotations": {"kubernetes.io/description": DESCRIPTION}},
        "data": {"ca.crt": ca_pem},
    })
}

fn ca_pem(objects: &Objects) -> Option<String> {
    let record = objects.store.get(CLUSTER_KIND, &objects.cluster).ok()??;
    record.value["private"]["caCertPem"]
        .as_str()
        .map(str::to_string)
}

fn sync(objects: &Objects) {
    let Some(ca) = ca_pem(objects) else {
        return;
    };
    let Ok((namespaces, _)) = objects.list(resource("", "namespaces"), None) else {
        return;
    };
    let rt = resource("", "configmaps");
    for ns in namespaces.iter() {
        let phase = typed::decode_or_log::<Namespace>(&ns.value).and_then(|n| n.status?.phase);
        if phase.as_deref() == Some("Terminating") || is_deleting(&ns.value) {
            continue;
        }
        let ns = name_of(&ns.value);
        let result = match objects.get(rt, ns, NAME) {
            Ok(cm)
                if typed::decode_or_log::<ConfigMap>(&cm)
                    .and_then(|c| c.data?.remove("ca.crt"))
                    .as_deref()
                    == Some(ca.as_str()) =>
            {
                Ok(())
            }
            Ok(_) => objects
                .update_with(rt, ns, NAME, false, None, &mut |cur| {
                    let mut new = DynamicObject::from_value(cur.clone())?;
                    *new.field_mut("data") = json!({"ca.crt": ca});
                    Ok(new.into_value())
                })
                .map(|_| ()),
            Err(KubeError::NotFound { .. }) => match objects.create(rt, ns, config_map(&ca)) {
                Ok(_) | Err(KubeError::AlreadyExists { .. }) | Err(KubeError::Forbidden(_)) => {
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(namespace = ns, error = %e, "publishing {NAME}");
        }
    }
}

pub async fn run(ctx: Arc<ClusterContext>) {
    let objects = &ctx.objects;
    let kind = objects.store_kind().to_string();
    let namespaces = resource("", "namespaces").key_prefix(None);
    let configmaps = resource("", "configmaps").key_prefix(None);
    let mut wake = Wake::watching(
        &kind,
        &[namespaces.clone(), configmaps.clone()],
        Duration::from_millis(50),
        Duration::from_secs(60),
    );
    wake.start(&*objects.store, objects.store.revision().unwrap_or(0));
    loop {
        sync(objects);
        wake.until(&*objects.store, |e: &localfargate_store::Event| {
            let k = e.object.key.as_str();
            k.starts_with(namespaces.as_str())
                || (k.starts_with(configmaps.as_str()) && name_of(&e.object.value) == NAME)
        })
        .await;
    }
}
