//! Object lifecycles that are not a workload's: ownerReference garbage collection (background,
//! foreground and orphan), namespace deletion, each namespace's `default` ServiceAccount, and the
//! read-only `fargateprofiles` mirror of the EKS API's profiles with their pod counts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use localfargate_core::kube::{FARGATE_GROUP, RESOURCES};
use localfargate_core::{FARGATE_SCHEDULER, PROFILE_LABEL};
use localfargate_store::Object;
use serde_json::{Value, json};

use crate::cluster::ClusterContext;
use crate::objects::{
    DeleteOptions, FOREGROUND_FINALIZER, KubeError, ORPHAN_FINALIZER, Objects, finalizers,
    is_deleting, name_of, namespace_of, now_rfc3339, resource, uid_of,
};
use crate::wake::Wake;

pub async fn run(ctx: Arc<ClusterContext>) {
    let kind = ctx.objects.store_kind().to_string();
    // Garbage collection and namespace cleanup need not be instant: once a second at most keeps
    // their whole-cluster scans cheap when thousands of pods change.
    let mut wake = Wake::new(&kind, Duration::from_secs(1), Duration::from_secs(1));
    wake.start(
        &*ctx.objects.store,
        ctx.objects.store.revision().unwrap_or(0),
    );
    loop {
        let objects = &ctx.objects;
        let all = objects
            .store
            .list(&kind, "")
            .map(|(l, _)| l)
            .unwrap_or_default();
        collect_garbage(objects, &all);
        namespaces(objects, &all);
        mirror_profiles(objects, &all);
        drop(all);
        let _ = wake.wait(&*objects.store).await;
    }
}

/// The resource type of a stored key (`apps/deployments/ns/name`).
fn resource_of_key(key: &str) -> Option<&'static localfargate_core::kube::ResourceType> {
    let mut parts = key.splitn(3, '/');
    let group = parts.next()?;
    let plural = parts.next()?;
    let group = if group == "core" { "" } else { group };
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.resource == plural)
}

fn owners(v: &Value) -> Vec<&Value> {
    v["metadata"]["ownerReferences"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn collect_garbage(objects: &Objects, all: &[Arc<Object>]) {
    // Every live uid, and which of them are being deleted in the foreground.
    let mut alive: HashSet<&str> = HashSet::new();
    let mut foreground: HashSet<&str> = HashSet::new();
    let mut orphaning: HashSet<&str> = HashSet::new();
    for o in all {
        let v = &o.value;
        alive.insert(uid_of(v));
        if is_deleting(v) {
            let f = finalizers(v);
            if f.iter().any(|x| x == FOREGROUND_FINALIZER) {
                foreground.insert(uid_of(v));
            }
            if f.iter().any(|x| x == ORPHAN_FINALIZER) {
                orphaning.insert(uid_of(v));
            }
        }
    }
    let mut dependents_of: HashMap<&str, usize> = HashMap::new();
    for o in all {
        let v = &o.value;
        let refs = owners(v);
        if refs.is_empty() {
            continue;
        }
        let Some(rt) = resource_of_key(&o.key) else {
            continue;
        };
        for r in &refs {
            if let Some(uid) = r["uid"].as_str() {
                *dependents_of.entry(uid).or_default() += 1;
            }
        }
        // Orphaning owners let go of their dependents.
        if refs
            .iter()
            .any(|r| r["uid"].as_str().is_some_and(|u| orphaning.contains(u)))
        {
            let _ = objects.update_with(rt, namespace_of(v), name_of(v), false, None, &mut |cur| {
                let mut cur = cur.clone();
                let kept: Vec<Value> = owners(&cur)
                    .into_iter()
                    .filter(|r| !r["uid"].as_str().is_some_and(|u| orphaning.contains(u)))
                    .cloned()
                    .collect();
                cur["metadata"]["ownerReferences"] = json!(kept);
                Ok(cur)
            });
            continue;
        }
        if is_deleting(v) {
            continue;
        }
        let all_gone = refs
            .iter()
            .all(|r| r["uid"].as_str().is_none_or(|u| !alive.contains(u)));
        let in_foreground = refs
            .iter()
            .any(|r| r["uid"].as_str().is_some_and(|u| foreground.contains(u)));
        if all_gone || in_foreground {
            let propagation = if in_foreground {
                Some(crate::objects::Propagation::Foreground)
            } else {
                None
            };
            match objects.delete(
                rt,
                namespace_of(v),
                name_of(v),
                &DeleteOptions {
                    propagation,
                    ..Default::default()
                },
            ) {
                Ok(_) | Err(KubeError::NotFound { .. }) => {}
                Err(e) => tracing::warn!(key = %o.key, error = %e, "garbage collection"),
            }
        }
    }
    // Release owners whose dependents are gone (foreground) or orphaned.
    for o in all {
        let v = &o.value;
        if !is_deleting(v) {
            continue;
        }
        let f = finalizers(v);
        let uid = uid_of(v);
        let remove: Vec<&str> = [FOREGROUND_FINALIZER, ORPHAN_FINALIZER]
            .into_iter()
            .filter(|x| f.iter().any(|y| y == x))
            .filter(|x| *x == ORPHAN_FINALIZER || dependents_of.get(uid).copied().unwrap_or(0) == 0)
            .collect();
        if remove.is_empty() {
            continue;
        }
        let Some(rt) = resource_of_key(&o.key) else {
            continue;
        };
        let _ = objects.update_with(rt, namespace_of(v), name_of(v), false, None, &mut |cur| {
            let mut cur = cur.clone();
            let kept: Vec<String> = finalizers(&cur)
                .into_iter()
                .filter(|x| !remove.contains(&x.as_str()))
                .collect();
            cur["metadata"]["finalizers"] = json!(kept);
            Ok(cur)
        });
    }
}

/// Terminating namespaces are emptied, then removed; active ones get a `default` ServiceAccount.
fn namespaces(objects: &Objects, all: &[Arc<Object>]) {
    let ns_rt = resource("", "namespaces");
    let sa_rt = resource("", "serviceaccounts");
    let mut content: BTreeMap<&str, Vec<&Arc<Object>>> = BTreeMap::new();
    for o in all {
        let ns = namespace_of(&o.value);
        if !ns.is_empty() {
            content.entry(ns).or_default().push(o);
        }
    }
    for o in all
        .iter()
        .filter(|o| o.key.starts_with(&ns_rt.key_prefix(None)))
    {
        let ns = name_of(&o.value);
        let inside = content.get(ns).cloned().unwrap_or_default();
        if !is_deleting(&o.value) {
            let has_default = inside.iter().any(|x| x.key == sa_rt.key(ns, "default"));
            if !has_default {
                match objects.create(sa_rt, ns, json!({"metadata": {"name": "default"}})) {
                    Ok(_) | Err(KubeError::AlreadyExists { .. }) | Err(KubeError::Forbidden(_)) => {
                    }
                    Err(e) => tracing::warn!(namespace = ns, error = %e, "default service account"),
                }
            }
            continue;
        }
        // A terminating namespace's Events go with it.
        if let Ok((events, _)) = objects.list(resource("", "events"), Some(ns)) {
            for e in events.iter() {
                let _ = objects.purge(resource("", "events"), ns, name_of(&e.value));
            }
        }
        if inside.is_empty() {
            let _ = objects.purge(ns_rt, "", ns);
            continue;
        }
        for x in inside {
            let Some(rt) = resource_of_key(&x.key) else {
                continue;
            };
            if is_deleting(&x.value) && rt.kind != "Pod" {
                // Anything held by a finalizer of its own is released: the namespace is going.
                let _ = objects.purge(rt, ns, name_of(&x.value));
                continue;
            }
            if !is_deleting(&x.value) {
                let _ = objects.delete(rt, ns, name_of(&x.value), &DeleteOptions::default());
            }
        }
    }
}

/// Keep one `fargateprofiles.eks.localfargate.io` object per EKS profile, with its pod count.
fn mirror_profiles(objects: &Objects, all: &[Arc<Object>]) {
    let rt = resource(FARGATE_GROUP, "fargateprofiles");
    let profiles = crate::admission::profiles(&*objects.store, &objects.cluster);
    let mut pods: HashMap<&str, u64> = HashMap::new();
    let pod_prefix = resource("", "pods").key_prefix(None);
    for o in all.iter().filter(|o| o.key.starts_with(&pod_prefix)) {
        let v = &o.value;
        if v["spec"]["schedulerName"] == FARGATE_SCHEDULER
            && v["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
            && !matches!(v["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
            && let Some(p) = v["metadata"]["labels"][PROFILE_LABEL].as_str()
        {
            *pods.entry(p).or_default() += 1;
        }
    }
    let kind = objects.store_kind().to_string();
    let existing: HashMap<&str, &Arc<Object>> = all
        .iter()
        .filter(|o| o.key.starts_with(&rt.key_prefix(None)))
        .map(|o| (name_of(&o.value), o))
        .collect();
    let mut wanted = HashSet::new();
    for p in &profiles {
        wanted.insert(p.name.as_str());
        let selectors: Vec<Value> = p
            .selectors
            .iter()
            .map(|s| json!({"namespace": s.namespace, "labels": s.labels}))
            .collect();
        let spec = json!({
            "clusterName": objects.cluster,
            "fargateProfileArn": p.fargate_profile_arn,
            "podExecutionRoleArn": p.pod_execution_role_arn,
            "subnets": p.subnets,
            "selectors": selectors,
        });
        let status = json!({"status": p.status.to_string(), "pods": pods.get(p.name.as_str()).copied().unwrap_or(0)});
        let result = match existing.get(p.name.as_str()) {
            Some(o) if o.value["spec"] == spec && o.value["status"] == status => continue,
            Some(o) => {
                let mut v = o.value.clone();
                v["spec"] = spec;
                v["status"] = status;
                localfargate_store::transaction(&*objects.store, |tx| {
                    tx.update(&kind, &o.key, &v, Some(o.revision))
                })
                .map(|_| ())
            }
            None => {
                let created_at = p
                    .created_at
                    .and_then(|s| jiff::Timestamp::from_second(s as i64).ok())
                    .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_else(now_rfc3339);
                let v = json!({
                    "apiVersion": format!("{FARGATE_GROUP}/v1"),
                    "kind": "FargateProfile",
                    "metadata": {"name": p.name, "uid": crate::objects::new_uid(), "creationTimestamp": created_at},
                    "spec": spec,
                    "status": status,
                });
                localfargate_store::transaction(&*objects.store, |tx| {
                    tx.create(&kind, &rt.key("", &p.name), &v)
                })
                .map(|_| ())
            }
        };
        if let Err(e) = result {
            tracing::debug!(profile = %p.name, error = %e, "mirroring a profile");
        }
    }
    for (name, o) in existing {
        if !wanted.contains(name) {
            let _ = localfargate_store::transaction(&*objects.store, |tx| {
                tx.delete(&kind, &o.key, None)
            });
        }
    }
}
