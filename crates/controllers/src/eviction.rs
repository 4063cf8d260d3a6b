//! The node agent's eviction manager for local ephemeral storage (the kubelet's
//! `pkg/kubelet/eviction`): every interval (`up --eviction-interval`, 10 s as the kubelet's
//! housekeeping) each running pod's storage is measured by the runtime
//! ([`SandboxRuntime::storage_usage`]) and held against the kubelet's rules, in its order:
//!
//! 1. an `emptyDir` over its `sizeLimit`: `Usage of EmptyDir volume "x" exceeds the limit "1Mi". `
//! 2. the pod over the sum of its containers' `limits.ephemeral-storage`:
//!    `Pod ephemeral local storage usage exceeds the total limit of containers 2Mi. `
//! 3. a container (layer and logs) over its own limit:
//!    `Container x exceeded its local ephemeral storage limit "1Mi". `
//! 4. the Fargate VM's disk, which is the pod's provisioned ephemeral storage (20 GiB unless the
//!    pod asks for more), with less free than the kubelet's hard threshold `nodefs.available<10%`:
//!    the node-pressure eviction, `The node was low on resource: ephemeral-storage. …`. (Pods on
//!    a node group's nodes share the node's disk, which is not modelled: rules 1–3 only.)
//!
//! An evicted pod is `Failed` with reason `Evicted` and that message (plus the
//! `DisruptionTarget` condition for node pressure, as the kubelet adds it), gets a Warning
//! `Evicted` event, and its containers are killed with the eviction's 1 s grace period; they
//! are not restarted, and the pod stays until deleted (its controller makes a new one).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use localfargate_core::quantity::{self, Format};
use localfargate_runtime::{RuntimeKind, SandboxId, StorageUsage};
use localfargate_store::{StoreError, transaction};
use serde_json::{Map, Value};

use crate::context::ClusterContext;
use crate::events::{self, EventType};
use crate::fargate_scheduler::node_ip;
use crate::pod_spec;
use localfargate_registry::binding::set_condition;
use localfargate_registry::objects::{is_deleting, is_finished, resource, uid_of};
use localfargate_registry::typed;

/// The kubelet's reason for every eviction.
pub const REASON: &str = "Evicted";
/// The grace period of an eviction (`immediateEvictionGracePeriodSeconds`).
const EVICTION_GRACE: Duration = Duration::from_secs(1);
/// The kubelet's default hard threshold for the node's file system: `nodefs.available<10%`.
const NODEFS_AVAILABLE_PERCENT: u64 = 10;

/// Why a pod is evicted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eviction {
    /// The kubelet's message (each sentence ends with a space, as upstream's).
    pub message: String,
    /// A node-pressure eviction: the pod also gets the `DisruptionTarget` condition.
    pub node_pressure: bool,
}

/// A quantity as written in the pod, read with its format.
fn quantity_of(q: &Quantity) -> Option<(u64, Format)> {
    Some((
        quantity::base_units(&q.0).ok()?,
        quantity::format_of(&q.0).ok()?,
    ))
}

/// A container's `ephemeral-storage` in its `limits` (`requests` with `requests`).
fn ephemeral(c: &Container, requests: bool) -> Option<(u64, Format)> {
    let resources = c.resources.as_ref()?;
    let list = if requests {
        resources.requests.as_ref()
    } else {
        resources.limits.as_ref()
    };
    quantity_of(list?.get("ephemeral-storage")?)
}

fn ephemeral_limit(c: &Container) -> Option<(u64, Format)> {
    ephemeral(c, false)
}

/// The pod's `ephemeral-storage` limit as the kubelet sums it (`resourcehelper.PodLimits`):
/// regular containers and sidecars added up, or an init container's (with the sidecars before
/// it) when larger. `None` when no container sets one. A sum keeps the format of its first term.
fn pod_limit(spec: &PodSpec) -> Option<(u64, Format)> {
    let mut total: Option<(u64, Format)> = None;
    let add = |total: &mut Option<(u64, Format)>, (v, f): (u64, Format)| {
        *total = Some(match *total {
            None => (v, f),
            Some((t, tf)) => (t.saturating_add(v), tf),
        });
    };
    for c in &spec.containers {
        if let Some(l) = ephemeral_limit(c) {
            add(&mut total, l);
        }
    }
    let mut sidecars: Option<(u64, Format)> = None;
    let mut init_max: Option<(u64, Format)> = None;
    for c in spec.init_containers.iter().flatten() {
        let limit = ephemeral_limit(c);
        if c.restart_policy.as_deref() == Some("Always") {
            if let Some(l) = limit {
                add(&mut total, l);
                add(&mut sidecars, l);
            }
        } else if let Some((v, f)) = limit {
            let with_sidecars = v.saturating_add(sidecars.map_or(0, |s| s.0));
            if init_max.is_none_or(|(m, _)| with_sidecars > m) {
                init_max = Some((with_sidecars, f));
            }
        }
    }
    match (total, init_max) {
        (Some((t, _)), Some((i, f))) if i > t => Some((i, f)),
        (None, i) => i,
        (t, _) => t,
    }
}

/// What the kubelet's eviction manager decides for a pod with this `usage`, whose Fargate
/// ephemeral storage (its VM's disk) is `disk_bytes`.
pub fn decide(pod: &Pod, usage: &StorageUsage, disk_bytes: u64) -> Option<Eviction> {
    let spec = pod.spec.as_ref()?;
    let limit_eviction = |message: String| {
        Some(Eviction {
            message,
            node_pressure: false,
        })
    };
    for v in spec.volumes.iter().flatten() {
        let name = v.name.as_str();
        let Some((size, format)) = v
            .empty_dir
            .as_ref()
            .and_then(|d| d.size_limit.as_ref())
            .and_then(quantity_of)
        else {
            continue;
        };
        let used = usage.volume(name).map(|u| u.used_bytes);
        if size > 0 && used.is_some_and(|u| u > size) {
            return limit_eviction(format!(
                "Usage of EmptyDir volume \"{name}\" exceeds the limit \"{}\". ",
                quantity::canonical(size, format)
            ));
        }
    }
    if let Some((limit, format)) = pod_limit(spec)
        && usage.pod_bytes() > limit
    {
        return limit_eviction(format!(
            "Pod ephemeral local storage usage exceeds the total limit of containers {}. ",
            quantity::canonical(limit, format)
        ));
    }
    for c in &spec.containers {
        let name = c.name.as_str();
        let Some((limit, format)) = ephemeral_limit(c).filter(|(l, _)| *l > 0) else {
            continue;
        };
        if usage
            .container(name)
            .is_some_and(|u| u.used_bytes() > limit)
        {
            return limit_eviction(format!(
                "Container {name} exceeded its local ephemeral storage limit \"{}\". ",
                quantity::canonical(limit, format)
            ));
        }
    }
    node_pressure(spec, usage, disk_bytes)
}

/// The node-pressure eviction for `ephemeral-storage` (`evictionMessage`): the threshold, what
/// is left, and each container using more than it requested.
fn node_pressure(spec: &PodSpec, usage: &StorageUsage, disk_bytes: u64) -> Option<Eviction> {
    let threshold = disk_bytes / NODEFS_AVAILABLE_PERCENT;
    let available = disk_bytes.saturating_sub(usage.pod_bytes());
    if disk_bytes == 0 || available >= threshold {
        return None;
    }
    let mut message = format!(
        "The node was low on resource: ephemeral-storage. Threshold quantity: {}, available: {}. ",
        quantity::canonical(threshold, Format::BinarySI),
        quantity::canonical(available, Format::BinarySI)
    );
    for c in &spec.containers {
        let name = c.name.as_str();
        let Some(used) = usage.container(name).map(|u| u.used_bytes()) else {
            continue;
        };
        let (request, format) = ephemeral(c, true)
            .or_else(|| ephemeral_limit(c))
            .unwrap_or((0, Format::DecimalSI));
        if used > request {
            message.push_str(&format!(
                "Container {name} was using {}, request is {}, has larger consumption of ephemeral-storage. ",
                quantity::canonical(used, Format::BinarySI),
                quantity::canonical(request, format)
            ));
        }
    }
    Some(Eviction {
        message,
        node_pressure: true,
    })
}

/// The eviction manager of one cluster's node agent.
pub async fn run(ctx: Arc<ClusterContext>) {
    if ctx.runtime.kind() == RuntimeKind::Simulated {
        // Nothing is written anywhere: nothing to measure.
        return;
    }
    let interval = ctx.settings.eviction_interval;
    loop {
        tokio::time::sleep(interval).await;
        let Ok(sandboxes) = ctx.runtime.list().await else {
            continue;
        };
        for s in sandboxes {
            // The runtime is shared by every cluster: only this cluster's running pods.
            let pod = ctx
                .objects
                .get_object(resource("", "pods"), &s.namespace, &s.name)
                .ok()
                .flatten();
            let Some(pod) = pod.filter(|p| {
                let v = &p.value;
                uid_of(v) == s.pod_uid && !is_finished(v) && !is_deleting(v)
            }) else {
                continue;
            };
            let Some(typed_pod) = typed::decode_or_log::<Pod>(&pod.value) else {
                continue;
            };
            let Some(spec) = typed_pod.spec.as_ref() else {
                continue;
            };
            let node = spec.node_name.as_deref().unwrap_or("");
            if node.is_empty() {
                continue;
            }
            let usage = match ctx.runtime.storage_usage(&s.id).await {
                Ok(u) => u,
                Err(e) => {
                    tracing::debug!(sandbox = %s.id, error = %e, "measuring local storage");
                    continue;
                }
            };
            // A Fargate pod has its VM's disk to itself; a node group's node shares its disk
            // among its pods, which is not modelled (0: no node-pressure check).
            let disk = if node_ip(node).is_some() {
                // `pod_spec` sizes a Fargate pod from its spec's JSON.
                typed::to_json(spec)
                    .ok()
                    .and_then(|spec| pod_spec::ephemeral_storage(&spec).ok())
                    .unwrap_or(0)
            } else {
                0
            };
            if let Some(eviction) = decide(&typed_pod, &usage, disk) {
                evict(&ctx, &pod.key, &s.id, &eviction).await;
            }
        }
    }
}

/// Fails the pod with the eviction's reason, message and event, then kills its containers.
async fn evict(ctx: &ClusterContext, key: &str, sandbox: &SandboxId, eviction: &Eviction) {
    let kind = ctx.objects.store_kind().to_string();
    let written = transaction(&*ctx.objects.store, |tx| {
        let Some(pod) = tx.get(&kind, key)? else {
            return Ok(false);
        };
        if is_finished(&pod.value) || is_deleting(&pod.value) {
            return Ok(false);
        }
        let failed = PodStatus {
            phase: Some("Failed".to_string()),
            reason: Some(REASON.to_string()),
            message: Some(eviction.message.clone()),
            ..Default::default()
        };
        let Ok(Value::Object(failed)) = typed::to_json(&failed) else {
            return Ok(false);
        };
        // These fields over the stored status, the rest of it as stored (as the kubelet's
        // status manager merges what it sets): a merge of JSON maps.
        let mut new = pod.value.clone();
        if let Some(m) = new.as_object_mut() {
            let status = m
                .entry("status")
                .or_insert_with(|| Value::Object(Map::new()));
            if !status.is_object() {
                *status = Value::Object(Map::new());
            }
            if let Some(status) = status.as_object_mut() {
                status.extend(failed);
            }
        }
        if eviction.node_pressure {
            set_condition(
                &mut new,
                "DisruptionTarget",
                true,
                Some("TerminationByKubelet"),
                Some(&eviction.message),
            );
        }
        tx.update(&kind, key, &new, Some(pod.revision))?;
        let (event_key, event) = events::build(
            &pod.value,
            EventType::Warning,
            REASON,
            &eviction.message,
            "kubelet",
        );
        match tx.create(&kind, &event_key, &event) {
            Ok(_) | Err(StoreError::AlreadyExists { .. }) => Ok(true),
            Err(e) => Err(e),
        }
    });
    match written {
        Ok(true) => {
            tracing::info!(pod = key, message = %eviction.message, "evicting a pod");
            if let Err(e) = ctx.runtime.stop(sandbox, EVICTION_GRACE).await {
                tracing::warn!(sandbox = %sandbox, error = %e, "stopping an evicted pod");
            }
        }
        Ok(false) => {}
        // Changed meanwhile (or the store failed): the next look decides again.
        Err(e) => tracing::debug!(pod = key, error = %e, "evicting a pod"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use localfargate_runtime::storage::{ContainerStorage, VolumeStorage};
    use serde_json::json;

    const MI: u64 = 1 << 20;

    fn usage(containers: &[(&str, u64, u64)], volumes: &[(&str, u64)]) -> StorageUsage {
        StorageUsage {
            containers: containers
                .iter()
                .map(|(n, r, l)| ContainerStorage {
                    name: n.to_string(),
                    rootfs_bytes: *r,
                    logs_bytes: *l,
                })
                .collect(),
            volumes: volumes
                .iter()
                .map(|(n, u)| VolumeStorage {
                    name: n.to_string(),
                    used_bytes: *u,
                })
                .collect(),
        }
    }

    fn pod(spec: Value) -> Pod {
        typed::decode(&json!({"metadata": {"name": "p", "namespace": "default"}, "spec": spec}))
            .unwrap()
    }

    fn spec(spec: Value) -> PodSpec {
        serde_json::from_value(spec).unwrap()
    }

    const DISK: u64 = 20 << 30;

    #[test]
    fn an_empty_dir_over_its_size_limit_is_evicted_first() {
        let p = pod(json!({
            "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}],
            "containers": [{"name": "c", "resources": {"limits": {"ephemeral-storage": "1Mi"}}}]
        }));
        let e = decide(
            &p,
            &usage(&[("c", 3 * MI, 0)], &[("scratch", 2 * MI)]),
            DISK,
        )
        .unwrap();
        assert_eq!(
            e.message,
            "Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Mi\". "
        );
        assert!(!e.node_pressure);
        assert_eq!(
            decide(&p, &usage(&[("c", 0, 0)], &[("scratch", MI)]), DISK),
            None,
            "at the limit is not over it"
        );
    }

    #[test]
    fn the_pod_limit_is_the_sum_of_its_containers_limits() {
        let p = pod(json!({
            "volumes": [{"name": "scratch", "emptyDir": {}}],
            "containers": [
                {"name": "a", "resources": {"limits": {"ephemeral-storage": "1Mi"}}},
                {"name": "b", "resources": {"limits": {"ephemeral-storage": "1Mi"}}},
                {"name": "c"}
            ]
        }));
        // Within each container's limit, but the volume pushes the pod over 2Mi.
        let e = decide(
            &p,
            &usage(
                &[("a", MI / 2, 0), ("b", MI / 2, 0)],
                &[("scratch", 2 * MI)],
            ),
            DISK,
        )
        .unwrap();
        assert_eq!(
            e.message,
            "Pod ephemeral local storage usage exceeds the total limit of containers 2Mi. "
        );
        let p = pod(json!({
            "containers": [
                {"name": "a", "resources": {"limits": {"ephemeral-storage": "1M"}}},
                {"name": "b", "resources": {"limits": {"ephemeral-storage": "500k"}}}
            ]
        }));
        let e = decide(&p, &usage(&[("a", 2 * MI, 0)], &[]), DISK).unwrap();
        assert_eq!(
            e.message,
            "Pod ephemeral local storage usage exceeds the total limit of containers 1500k. "
        );
    }

    #[test]
    fn a_container_over_its_own_limit_counts_its_layer_and_logs() {
        let p = pod(json!({
            "containers": [
                {"name": "a", "resources": {"limits": {"ephemeral-storage": "4Mi"}}},
                {"name": "b", "resources": {"limits": {"ephemeral-storage": "1Mi"}}}
            ]
        }));
        let e = decide(&p, &usage(&[("a", 0, 0), ("b", MI, 4096)], &[]), DISK).unwrap();
        assert_eq!(
            e.message,
            "Container b exceeded its local ephemeral storage limit \"1Mi\". "
        );
        assert_eq!(
            decide(&p, &usage(&[("a", 0, 0), ("b", MI, 0)], &[]), DISK),
            None
        );
    }

    #[test]
    fn init_containers_and_sidecars_count_as_the_kubelet_sums_them() {
        let spec = spec(json!({
            "initContainers": [
                {"name": "side", "restartPolicy": "Always",
                 "resources": {"limits": {"ephemeral-storage": "1Mi"}}},
                {"name": "setup", "resources": {"limits": {"ephemeral-storage": "8Mi"}}}
            ],
            "containers": [{"name": "c", "resources": {"limits": {"ephemeral-storage": "2Mi"}}}]
        }));
        assert_eq!(pod_limit(&spec), Some((9 * MI, Format::BinarySI)));
        assert_eq!(
            pod_limit(&self::spec(json!({"containers": [{"name": "c"}]}))),
            None
        );
    }

    #[test]
    fn a_full_fargate_disk_is_a_node_pressure_eviction() {
        let p = pod(json!({
            "containers": [
                {"name": "big", "resources": {"requests": {"ephemeral-storage": "1Gi"}}},
                {"name": "small"}
            ]
        }));
        assert_eq!(
            decide(&p, &usage(&[("big", 17 << 30, 0)], &[]), DISK),
            None,
            "3 GiB left is above the 10% threshold"
        );
        let e = decide(
            &p,
            &usage(&[("big", (18 << 30) + MI, 0), ("small", 0, 0)], &[]),
            DISK,
        )
        .unwrap();
        assert!(e.node_pressure);
        assert_eq!(
            e.message,
            "The node was low on resource: ephemeral-storage. Threshold quantity: 2Gi, available: 2047Mi. \
             Container big was using 18433Mi, request is 1Gi, has larger consumption of ephemeral-storage. "
        );
    }
}
