//! The ServiceAccount admission plugin's token volume, on pod CREATE: unless the pod (or, when
//! the pod does not say, its ServiceAccount) sets `automountServiceAccountToken: false`, the pod
//! gets the projected volume `kube-api-access-<5 characters>` (a bound token, the cluster CA
//! from the `kube-root-ca.crt` ConfigMap, the namespace) mounted read-only at
//! `/var/run/secrets/kubernetes.io/serviceaccount` in every container and init container that
//! has nothing mounted there, as upstream's plugin does. What in-cluster clients (client-go's
//! in-cluster config, `kubectl` in a pod) read.
//!
//! Unlike upstream, a pod naming a ServiceAccount that does not exist (yet) is not refused:
//! it gets the volume, as it would once the account exists.

use serde_json::{Value, json};

use crate::meta::DynamicObject;
use crate::objects::{Objects, resource};

/// Where the token, CA and namespace are mounted.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The volume's name prefix.
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// The token's lifetime the plugin asks for (an hour and 7 seconds, upstream's value).
const EXPIRATION_SECONDS: u64 = 3607;

/// Adds the token volume and its mounts to `pod` (in `namespace`) where upstream would.
pub fn admit(objects: &Objects, namespace: &str, pod: &mut DynamicObject) {
    let spec = pod.spec();
    let automount = match spec["automountServiceAccountToken"].as_bool() {
        Some(b) => b,
        None => {
            let sa = spec["serviceAccountName"].as_str().unwrap_or("default");
            objects
                .get(resource("", "serviceaccounts"), namespace, sa)
                .ok()
                .and_then(|sa| sa["automountServiceAccountToken"].as_bool())
                .unwrap_or(true)
        }
    };
    if automount {
        mount_token(pod.field_mut("spec"), &crate::objects::random_suffix());
    }
}

/// The volume and mounts in a pod's `spec`, with `suffix` for the volume's name. Pure.
pub fn mount_token(spec: &mut Value, suffix: &str) {
    let existing = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|v| {
            v["name"]
                .as_str()
                .filter(|n| n.starts_with(VOLUME_PREFIX) && v["projected"].is_object())
                .map(str::to_string)
        });
    let name = existing
        .clone()
        .unwrap_or_else(|| format!("{VOLUME_PREFIX}{suffix}"));
    let mut mounted = false;
    for kind in ["initContainers", "containers"] {
        // `get_mut`, not indexing: indexing a missing key mutably would write `null` there.
        let Some(containers) = spec.get_mut(kind).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers {
            let taken = c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["mountPath"].as_str() == Some(TOKEN_MOUNT_PATH));
            if taken {
                continue;
            }
            let mount = json!({"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
            match c["volumeMounts"].as_array_mut() {
                Some(mounts) => mounts.push(mount),
                None => c["volumeMounts"] = json!([mount]),
            }
            mounted = true;
        }
    }
    if !mounted || existing.is_some() {
        return;
    }
    let volume = json!({
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt",
                               "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
            "defaultMode": 420,
        },
    });
    match spec["volumes"].as_array_mut() {
        Some(v) => v.push(volume),
        None => spec["volumes"] = json!([volume]),
    }
}

/// On update: a manifest sent back without the token volume (one written before it was
/// added) keeps the stored pod's volume and mounts, so an unchanged manifest stays a no-op.
pub fn keep_on_update(old: &DynamicObject, new: &mut DynamicObject) {
    let old = old.spec();
    let new = new.field_mut("spec");
    let Some(volume) = old["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| {
            v["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(VOLUME_PREFIX))
        })
        .cloned()
    else {
        return;
    };
    let name = volume["name"].clone();
    let has = new["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|v| v["name"] == name);
    if has {
        return;
    }
    match new["volumes"].as_array_mut() {
        Some(v) => v.push(volume),
        None => new["volumes"] = json!([volume]),
    }
    for kind in ["initContainers", "containers"] {
        let Some(containers) = new.get_mut(kind).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers {
            let old_mount = old[kind]
                .as_array()
                .into_iter()
                .flatten()
                .find(|o| o["name"] == c["name"])
                .and_then(|o| {
                    o["volumeMounts"]
                        .as_array()?
                        .iter()
                        .find(|m| m["name"] == name)
                        .cloned()
                });
            let Some(mount) = old_mount else { continue };
            match c["volumeMounts"].as_array_mut() {
                Some(m) => m.push(mount),
                None => c["volumeMounts"] = json!([mount]),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_container_gets_the_volume_once() {
        let mut pod = json!({"spec": {
            "initContainers": [{"name": "i"}],
            "containers": [
                {"name": "a"},
                {"name": "b", "volumeMounts": [{"name": "own", "mountPath": TOKEN_MOUNT_PATH}]},
            ],
        }});
        mount_token(&mut pod["spec"], "abcde");
        let volumes = pod["spec"]["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 1);
        assert_eq!(volumes[0]["name"], "kube-api-access-abcde");
        assert_eq!(
            volumes[0]["projected"]["sources"][1]["configMap"]["name"],
            "kube-root-ca.crt"
        );
        assert_eq!(
            pod["spec"]["initContainers"][0]["volumeMounts"][0],
            json!({"name": "kube-api-access-abcde", "readOnly": true, "mountPath": TOKEN_MOUNT_PATH})
        );
        assert_eq!(
            pod["spec"]["containers"][0]["volumeMounts"][0]["readOnly"],
            true
        );
        // b keeps its own mount only.
        assert_eq!(
            pod["spec"]["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        // Again (an existing volume): nothing doubles.
        mount_token(&mut pod["spec"], "zzzzz");
        assert_eq!(pod["spec"]["volumes"].as_array().unwrap().len(), 1);
    }
}
