//! The LimitRanger admission plugin on pod CREATE: containers that do not say what they request
//! or may use get their namespace's LimitRange defaults (`defaultRequest`, `default` of the
//! `Container` limits), recorded in the `kubernetes.io/limit-ranger` annotation with upstream's
//! words. On Fargate this decides a pod's size: the fargate-scheduler sizes from the requests
//! the pod has after admission. Its validation (`min`, `max`, `maxLimitRequestRatio` of pods,
//! containers and claims) is in [`bounds`].

use serde_json::{Map, Value, json};

mod bounds;
pub use bounds::{validate_claim, validate_pod};

use crate::meta::DynamicObject;
use crate::objects::{Objects, Result};

/// The annotation upstream records what the plugin set in.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// The `Container` defaults of a namespace's LimitRanges: (default limits, default requests).
fn container_defaults(
    objects: &Objects,
    namespace: &str,
) -> Result<(Map<String, Value>, Map<String, Value>)> {
    let (mut limits, mut requests) = (Map::new(), Map::new());
    for item in bounds::limit_items(objects, namespace)? {
        if item.type_ != "Container" {
            continue;
        }
        for (into, list) in [
            (&mut limits, &item.default),
            (&mut requests, &item.default_request),
        ] {
            for (name, q) in list.iter().flatten() {
                into.entry(name.clone())
                    .or_insert_with(|| Value::String(q.0.clone()));
            }
        }
    }
    Ok((limits, requests))
}

/// Apply the defaults to a new pod.
pub fn admit(objects: &Objects, pod: &mut DynamicObject) -> Result<()> {
    let namespace = pod.metadata.namespace().to_string();
    let (limits, requests) = container_defaults(objects, &namespace)?;
    if limits.is_empty() && requests.is_empty() {
        return Ok(());
    }
    let mut said = Vec::new();
    for (list, kind) in [
        ("initContainers", "init container"),
        ("containers", "container"),
    ] {
        // `get_mut`, not indexing: indexing a missing key mutably would write `null` there.
        let Some(containers) = pod
            .field_mut("spec")
            .get_mut(list)
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in containers.iter_mut() {
            let name = c["name"].as_str().unwrap_or_default().to_string();
            if !c["resources"].is_object() {
                c["resources"] = json!({});
            }
            let mut set = |field: &str, defaults: &Map<String, Value>| -> Vec<String> {
                let mut names = Vec::new();
                if !c["resources"][field].is_object() {
                    c["resources"][field] = json!({});
                }
                if let Some(have) = c["resources"][field].as_object_mut() {
                    for (resource_name, q) in defaults {
                        if !have.contains_key(resource_name) {
                            have.insert(resource_name.clone(), q.clone());
                            names.push(resource_name.clone());
                        }
                    }
                }
                if c["resources"][field].as_object().is_some_and(Map::is_empty)
                    && let Some(r) = c["resources"].as_object_mut()
                {
                    r.remove(field);
                }
                names
            };
            let set_requests = set("requests", &requests);
            let set_limits = set("limits", &limits);
            if !set_requests.is_empty() {
                said.push(format!(
                    "{} request for {kind} {name}",
                    set_requests.join(", ")
                ));
            }
            if !set_limits.is_empty() {
                said.push(format!("{} limit for {kind} {name}", set_limits.join(", ")));
            }
        }
    }
    if !said.is_empty() {
        pod.metadata.insert_annotation(
            ANNOTATION,
            format!("LimitRanger plugin set: {}", said.join("; ")),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    use super::*;

    use crate::objects::resource;

    #[test]
    fn containers_get_their_namespaces_defaults_and_the_annotation_says_so() {
        let o = crate::objects::in_memory_with_namespace("ns");
        o.create(
            resource("", "limitranges"),
            "ns",
            json!({"metadata": {"name": "lr"}, "spec": {"limits": [{"type": "Container",
                "default": {"cpu": "1", "memory": "1Gi"}, "defaultRequest": {"cpu": "500m", "memory": "512Mi"}}]}}),
        )
        .unwrap();
        let pod = o
            .create(
                resource("", "pods"),
                "ns",
                json!({"metadata": {"name": "p"}, "spec": {"containers": [
                    {"name": "a", "image": "busybox"},
                    {"name": "b", "image": "busybox", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "2"}}}]}}),
            )
            .unwrap();
        let a = &pod["spec"]["containers"][0]["resources"];
        assert_eq!(a["requests"], json!({"cpu": "500m", "memory": "512Mi"}));
        assert_eq!(a["limits"], json!({"cpu": "1", "memory": "1Gi"}));
        let b = &pod["spec"]["containers"][1]["resources"];
        assert_eq!(b["requests"], json!({"cpu": "2", "memory": "512Mi"}));
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container a; cpu, memory limit for container a; memory request for container b; memory limit for container b"
        );
        assert_eq!(pod["status"]["qosClass"], "Burstable");
    }

    fn cluster() -> Objects {
        crate::objects::in_memory_with_namespace("ns")
    }

    #[test]
    fn pods_outside_min_and_max_are_refused_with_every_reason() {
        let o = cluster();
        o.create(
            resource("", "limitranges"),
            "ns",
            json!({"metadata": {"name": "lr"}, "spec": {"limits": [
                {"type": "Container", "min": {"cpu": "100m"}, "max": {"memory": "1Gi"},
                 "maxLimitRequestRatio": {"cpu": "2"}},
                {"type": "Pod", "max": {"cpu": "2"}}]}}),
        )
        .unwrap();
        let pod = |name: &str, requests: Value, limits: Value| {
            json!({"metadata": {"name": name}, "spec": {"containers": [
                {"name": "a", "image": "busybox", "resources": {"requests": requests, "limits": limits}}]}})
        };
        let err = o
            .create(
                resource("", "pods"),
                "ns",
                pod(
                    "x",
                    json!({"cpu": "50m"}),
                    json!({"cpu": "100m", "memory": "2Gi"}),
                ),
            )
            .unwrap_err();
        assert_eq!(err.code(), 403);
        assert_eq!(
            err.to_string(),
            "pods \"x\" is forbidden: [minimum cpu usage per Container is 100m, but request is 50m, maximum memory usage per Container is 1Gi, but limit is 2Gi]"
        );
        let err = o
            .create(
                resource("", "pods"),
                "ns",
                pod(
                    "y",
                    json!({"cpu": "200m"}),
                    json!({"cpu": "1", "memory": "1Gi"}),
                ),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "pods \"y\" is forbidden: cpu max limit to request ratio per Container is 2, but provided ratio is 5.000000"
        );
        let err = o
            .create(resource("", "pods"), "ns", pod("z", json!({}), json!({})))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "pods \"z\" is forbidden: [minimum cpu usage per Container is 100m.  No request is specified, maximum memory usage per Container is 1Gi.  No limit is specified, cpu max limit to request ratio per Container is 2, but no request is specified or request is 0, maximum cpu usage per Pod is 2.  No limit is specified]"
        );
        o.create(
            resource("", "pods"),
            "ns",
            pod(
                "ok",
                json!({"cpu": "500m"}),
                json!({"cpu": "1", "memory": "1Gi"}),
            ),
        )
        .unwrap();
    }

    #[test]
    fn claims_outside_min_and_max_storage_are_refused() {
        let o = cluster();
        o.create(
            resource("", "limitranges"),
            "ns",
            json!({"metadata": {"name": "lr"}, "spec": {"limits": [
                {"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}]}}),
        )
        .unwrap();
        let claim = |name: &str, size: &str| {
            json!({"metadata": {"name": name}, "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}}}})
        };
        let pvcs = resource("", "persistentvolumeclaims");
        let err = o.create(pvcs, "ns", claim("big", "20Gi")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "persistentvolumeclaims \"big\" is forbidden: maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"
        );
        let err = o.create(pvcs, "ns", claim("small", "500Mi")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "persistentvolumeclaims \"small\" is forbidden: minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"
        );
        o.create(pvcs, "ns", claim("fits", "5Gi")).unwrap();
    }
}
