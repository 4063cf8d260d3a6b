//! Workload controllers: Deployment → ReplicaSet → Pods with rolling updates, Jobs, CronJobs,
//! DaemonSets (pods only on EC2 nodes) and StatefulSets (ordered). Level-triggered: each round
//! reads the cluster's current objects and moves each workload one step toward its spec, and runs
//! again on the next change.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use localfargate_core::selectors::LabelSelector;
use localfargate_registry::resources::ResourceType;
use localfargate_store::Object;
use serde_json::{Value, json};

use crate::context::ClusterContext;
use crate::cron;
use crate::events::{self, EventType as Kind};
use crate::wake::{Wake, Woken};
use localfargate_registry::binding::condition_is;
use localfargate_registry::objects::{
    DeleteOptions, KubeError, Objects, Propagation, is_deleting, name_of, namespace_of,
    now_rfc3339, resource, uid_of,
};

pub async fn run(ctx: Arc<ClusterContext>) {
    let kind = ctx.objects.store_kind().to_string();
    let pods_prefix = resource("", "pods").key_prefix(None);
    let mut wake = Wake::new(&kind, Duration::from_millis(30), Duration::from_secs(1));
    let mut index = PodIndex::default();
    // Workloads whose last step failed (a pod their template cannot make), by uid: tried again
    // after a pause, not on every wake.
    let mut backoff: HashMap<String, std::time::Instant> = HashMap::new();
    let nodes_prefix = resource("", "nodes").key_prefix(None);
    let mut relist = true;
    // What the changes since the last round touched, so a busy cluster does not mean reading
    // every workload's pods on every wake.
    let mut dirty = Dirty::everything();
    let mut last_full = std::time::Instant::now();
    loop {
        if relist {
            let revision = ctx.objects.store.revision().unwrap_or(0);
            wake.start(&*ctx.objects.store, revision);
            index = PodIndex::default();
            let _ = ctx.objects.scan(resource("", "pods"), None, &mut |p| {
                index.apply(&p.key, Some(&p.value));
            });
            dirty = Dirty::everything();
        }
        if last_full.elapsed() >= FULL_PASS_EVERY {
            dirty = Dirty::everything();
        }
        reconcile_all(&ctx.objects, &index, &mut backoff, &dirty);
        // Counted from the end of a full round, so a slow one does not make every round full.
        if dirty.all {
            last_full = std::time::Instant::now();
        }
        dirty = Dirty::default();
        match wake.wait(&*ctx.objects.store).await {
            Woken::Relist => relist = true,
            Woken::Changes(changes) => {
                relist = false;
                if changes.is_empty() {
                    // Woken by time alone.
                    dirty = Dirty::everything();
                }
                for e in &changes {
                    let (key, v) = (&e.object.key, &e.object.value);
                    if key.starts_with(&pods_prefix) {
                        // A pod that leaves its controller concerns the one it left too.
                        if let Some(before) = index.owner_of.get(key.as_str()) {
                            dirty.uids.insert(before.clone());
                        }
                        let gone = e.event_type == localfargate_store::EventType::Deleted;
                        index.apply(key, (!gone).then_some(v));
                    }
                    if key.starts_with(&nodes_prefix) {
                        // DaemonSets place by EC2 nodes; a Fargate node holds its one pod.
                        dirty.daemonsets |=
                            v["metadata"]["labels"]["eks.amazonaws.com/compute-type"] != "fargate";
                        continue;
                    }
                    dirty.uids.insert(uid_of(v).to_string());
                    if let Some(owner) = controller_uid(v) {
                        dirty.uids.insert(owner.to_string());
                    }
                }
            }
        }
    }
}

/// How often every workload is looked at, changed or not: for time-based work (CronJob
/// schedules, TTLs, deadlines, back-offs).
const FULL_PASS_EVERY: Duration = Duration::from_secs(1);

/// The workloads a round looks at.
#[derive(Default)]
struct Dirty {
    /// Every one: after a relist, when woken by time alone, and every `FULL_PASS_EVERY`.
    all: bool,
    /// Every DaemonSet: an EC2 node changed.
    daemonsets: bool,
    /// The workloads (by uid) a change touched: the workload itself, or an object it controls.
    uids: HashSet<String>,
}

impl Dirty {
    fn everything() -> Self {
        Dirty {
            all: true,
            ..Dirty::default()
        }
    }

    fn wants(&self, plural: &str, uid: &str) -> bool {
        self.all || (self.daemonsets && plural == "daemonsets") || self.uids.contains(uid)
    }
}

/// Pod keys by their controller's uid, kept up to date from the watch, so a controller finds
/// its pods without scanning every pod.
#[derive(Default)]
struct PodIndex {
    by_owner: HashMap<String, std::collections::BTreeSet<String>>,
    owner_of: HashMap<String, String>,
}

impl PodIndex {
    fn apply(&mut self, key: &str, pod: Option<&Value>) {
        let owner = pod.and_then(controller_uid);
        if let Some(old) = self.owner_of.get(key)
            && Some(old.as_str()) != owner
        {
            if let Some(set) = self.by_owner.get_mut(old) {
                set.remove(key);
                if set.is_empty() {
                    self.by_owner.remove(old);
                }
            }
            self.owner_of.remove(key);
        }
        if let Some(uid) = owner {
            self.owner_of.insert(key.to_string(), uid.to_string());
            self.by_owner
                .entry(uid.to_string())
                .or_default()
                .insert(key.to_string());
        }
    }

    /// The current pods of an owner, read from the store's cache.
    fn pods_of(&self, objects: &Objects, owner: &Value) -> Vec<Arc<Object>> {
        let Some(keys) = self.by_owner.get(uid_of(owner)) else {
            return Vec::new();
        };
        keys.iter()
            .filter_map(|k| objects.store.get(objects.store_kind(), k).ok().flatten())
            .collect()
    }
}

/// The controller owner reference of an object, if any.
pub fn controller_uid(v: &Value) -> Option<&str> {
    v["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["controller"] == true)?["uid"]
        .as_str()
}

fn owner_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

fn is_active(p: &Value) -> bool {
    !is_deleting(p) && !localfargate_registry::objects::is_finished(p)
}

fn is_ready(p: &Value) -> bool {
    condition_is(p, "Ready", "True")
}

/// Objects by their controller's uid.
struct Owned<'a> {
    by_owner: HashMap<&'a str, Vec<&'a Value>>,
}

impl<'a> Owned<'a> {
    fn new(objects: &'a [Arc<Object>]) -> Self {
        let mut by_owner: HashMap<&str, Vec<&Value>> = HashMap::new();
        for o in objects {
            if let Some(uid) = controller_uid(&o.value) {
                by_owner.entry(uid).or_default().push(&o.value);
            }
        }
        Owned { by_owner }
    }

    fn of(&self, owner: &Value) -> Vec<&'a Value> {
        self.by_owner
            .get(uid_of(owner))
            .cloned()
            .unwrap_or_default()
    }
}

/// Move each workload `dirty` wants one step toward its spec.
fn reconcile_all(
    objects: &Objects,
    index: &PodIndex,
    backoff: &mut HashMap<String, std::time::Instant>,
    dirty: &Dirty,
) {
    let now = std::time::Instant::now();
    backoff.retain(|_, until| *until > now);
    for (group, plural) in [
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("batch", "cronjobs"),
        ("batch", "jobs"),
        ("apps", "daemonsets"),
        ("apps", "statefulsets"),
        ("", "replicationcontrollers"),
    ] {
        let rt = resource(group, plural);
        let Ok((items, _)) = objects.list(rt, None) else {
            continue;
        };
        for item in items.iter() {
            let v = &item.value;
            if is_deleting(v) || backoff.contains_key(uid_of(v)) || !dirty.wants(plural, uid_of(v))
            {
                continue;
            }
            let owned = index.pods_of(objects, v);
            let pods: Vec<&Value> = owned.iter().map(|o| &o.value).collect();
            let result = match plural {
                "deployments" => {
                    let rs_list = objects
                        .list(resource("apps", "replicasets"), Some(namespace_of(v)))
                        .map(|(l, _)| l)
                        .unwrap_or_default();
                    deployment(objects, v, &Owned::new(&rs_list))
                }
                "replicasets" => replicaset(objects, v, &pods),
                "replicationcontrollers" => replication_controller(objects, v, &pods),
                "jobs" => job(objects, v, &pods),
                "cronjobs" => {
                    let jobs_list = objects
                        .list(resource("batch", "jobs"), Some(namespace_of(v)))
                        .map(|(l, _)| l)
                        .unwrap_or_default();
                    cronjob(objects, v, &Owned::new(&jobs_list).of(v))
                }
                "daemonsets" => daemonset(objects, v, &pods),
                _ => statefulset(objects, v, &pods),
            };
            if let Err(e) = result {
                match e {
                    KubeError::Conflict { .. } | KubeError::NotFound { .. } => {}
                    e => {
                        tracing::warn!(kind = rt.kind, name = name_of(v), error = %e, "reconcile");
                        backoff.insert(uid_of(v).to_string(), now + Duration::from_secs(10));
                    }
                }
            }
        }
    }
}

/// Write `status` if it differs.
fn set_status(
    objects: &Objects,
    rt: &ResourceType,
    v: &Value,
    status: Value,
) -> Result<(), KubeError> {
    let mut merged = v["status"].clone();
    if !merged.is_object() {
        merged = json!({});
    }
    if let (Some(m), Some(s)) = (merged.as_object_mut(), status.as_object()) {
        for (k, x) in s {
            if x.is_null() {
                m.remove(k);
            } else {
                m.insert(k.clone(), x.clone());
            }
        }
    }
    if merged == v["status"] {
        return Ok(());
    }
    objects.update_with(rt, namespace_of(v), name_of(v), true, None, &mut |cur| {
        let mut cur = cur.clone();
        cur["status"] = merged.clone();
        Ok(cur)
    })?;
    Ok(())
}

/// A pod from a template, owned by `owner`.
fn pod_from_template(
    owner: &Value,
    template: &Value,
    name: Option<&str>,
    extra_labels: &[(&str, String)],
) -> Value {
    let mut meta = template["metadata"].clone();
    if !meta.is_object() {
        meta = json!({});
    }
    match name {
        Some(n) => meta["name"] = json!(n),
        None => meta["generateName"] = json!(format!("{}-", name_of(owner))),
    }
    meta["namespace"] = json!(namespace_of(owner));
    meta["ownerReferences"] = json!([owner_ref(owner)]);
    if !meta["labels"].is_object() {
        meta["labels"] = json!({});
    }
    for (k, v) in extra_labels {
        meta["labels"][*k] = json!(v);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]})
}

fn create_pod(objects: &Objects, owner: &Value, pod: Value) -> Result<(), KubeError> {
    match objects.create(resource("", "pods"), namespace_of(owner), pod) {
        Ok(created) => {
            events::emit(
                objects,
                owner,
                Kind::Normal,
                "SuccessfulCreate",
                &format!("Created pod: {}", name_of(&created)),
                controller_name(owner),
            );
            Ok(())
        }
        Err(KubeError::AlreadyExists { .. }) => Ok(()),
        Err(e) => {
            events::emit(
                objects,
                owner,
                Kind::Warning,
                "FailedCreate",
                &format!("Error creating: {e}"),
                controller_name(owner),
            );
            Err(e)
        }
    }
}

fn delete_pod(objects: &Objects, owner: &Value, pod: &Value) {
    let _ = objects.delete(
        resource("", "pods"),
        namespace_of(pod),
        name_of(pod),
        &DeleteOptions::default(),
    );
    events::emit(
        objects,
        owner,
        Kind::Normal,
        "SuccessfulDelete",
        &format!("Deleted pod: {}", name_of(pod)),
        controller_name(owner),
    );
}

fn controller_name(owner: &Value) -> &'static str {
    match owner["kind"].as_str() {
        Some("ReplicaSet") => "replicaset-controller",
        Some("ReplicationController") => "replication-controller",
        Some("Deployment") => "deployment-controller",
        Some("Job") => "job-controller",
        Some("CronJob") => "cronjob-controller",
        Some("DaemonSet") => "daemonset-controller",
        Some("StatefulSet") => "statefulset-controller",
        _ => "controller-manager",
    }
}

fn selector_of(v: &Value) -> Result<LabelSelector, KubeError> {
    LabelSelector::from_json(&v["spec"]["selector"])
        .map_err(|e| KubeError::BadRequest(e.to_string()))
}

fn replicaset(objects: &Objects, rs: &Value, pods: &[&Value]) -> Result<(), KubeError> {
    let selector = selector_of(rs)?;
    keep_replicas(
        objects,
        resource("apps", "replicasets"),
        rs,
        &selector,
        pods,
    )
}

/// A ReplicationController: a ReplicaSet with an equality-only selector (a label map, or the
/// template's labels when it has none), as kube-controller-manager's replication manager runs it.
fn replication_controller(objects: &Objects, rc: &Value, pods: &[&Value]) -> Result<(), KubeError> {
    let labels = if rc["spec"]["selector"].is_object() {
        &rc["spec"]["selector"]
    } else {
        &rc["spec"]["template"]["metadata"]["labels"]
    };
    let selector = LabelSelector::from_json(&json!({"matchLabels": labels}))
        .map_err(|e| KubeError::BadRequest(e.to_string()))?;
    keep_replicas(
        objects,
        resource("", "replicationcontrollers"),
        rc,
        &selector,
        pods,
    )
}

/// Keep `spec.replicas` pods of the template, and the status counters.
fn keep_replicas(
    objects: &Objects,
    rt: &ResourceType,
    rs: &Value,
    selector: &LabelSelector,
    pods: &[&Value],
) -> Result<(), KubeError> {
    let want = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
    let mut active: Vec<&Value> = pods.iter().copied().filter(|p| is_active(p)).collect();
    if active.len() < want {
        // Upstream creates in slow-start batches; one round creates up to 500.
        for _ in 0..(want - active.len()).min(500) {
            let pod = pod_from_template(rs, &rs["spec"]["template"], None, &[]);
            create_pod(objects, rs, pod)?;
        }
    } else if active.len() > want {
        // Delete the least useful first: unscheduled, then not ready, then the newest.
        active.sort_by_key(|p| {
            (
                p["spec"]["nodeName"]
                    .as_str()
                    .is_some_and(|n| !n.is_empty()),
                is_ready(p),
                std::cmp::Reverse(
                    p["metadata"]["creationTimestamp"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                ),
            )
        });
        for p in &active[..active.len() - want] {
            delete_pod(objects, rs, p);
        }
    }
    let alive: Vec<&&Value> = pods
        .iter()
        .filter(|p| !is_deleting(p) && is_active(p))
        .collect();
    let ready = alive.iter().filter(|p| is_ready(p)).count();
    let labelled = alive
        .iter()
        .filter(|p| selector.matches(p["metadata"]["labels"].as_object()))
        .count();
    set_status(
        objects,
        rt,
        rs,
        json!({
            "replicas": alive.len(),
            "fullyLabeledReplicas": labelled,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"]["generation"],
        }),
    )
}

/// A stable short hash of a pod template, in upstream's safe alphabet: the `pod-template-hash`.
pub fn template_hash(template: &Value) -> String {
    const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let text = template.to_string();
    let h = localfargate_core::matching::fnv1a(&[&text]);
    (0..10)
        .map(|i| SAFE[((h >> (i * 6)) % SAFE.len() as u64) as usize] as char)
        .collect()
}

/// `25%` of `total`, or an absolute number.
fn int_or_percent(v: &Value, total: i64, round_up: bool, default: i64) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(default),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) if round_up => (p * total + 99) / 100,
            Some(p) => p * total / 100,
            None => s.parse().unwrap_or(default),
        },
        _ => default,
    }
}

fn deployment(objects: &Objects, d: &Value, owned: &Owned<'_>) -> Result<(), KubeError> {
    let rs_rt = resource("apps", "replicasets");
    let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
    let hash = template_hash(&d["spec"]["template"]);
    let sets: Vec<&Value> = owned
        .of(d)
        .into_iter()
        .filter(|r| !is_deleting(r))
        .collect();
    let revision = |r: &Value| {
        r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let max_revision = sets.iter().map(|r| revision(r)).max().unwrap_or(0);
    let new_rs = sets
        .iter()
        .find(|r| r["metadata"]["labels"]["pod-template-hash"] == hash.as_str())
        .copied();
    let new_rs = match new_rs {
        Some(r) => {
            // Rolling back to an old template makes its set the newest revision again.
            if revision(r) < max_revision {
                objects.update_with(
                    rs_rt,
                    namespace_of(r),
                    name_of(r),
                    false,
                    None,
                    &mut |cur| {
                        let mut cur = cur.clone();
                        cur["metadata"]["annotations"]["deployment.kubernetes.io/revision"] =
                            json!((max_revision + 1).to_string());
                        Ok(cur)
                    },
                )?
            } else {
                r.clone()
            }
        }
        None => {
            let mut template = d["spec"]["template"].clone();
            template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
            let mut selector = d["spec"]["selector"].clone();
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let mut labels = template["metadata"]["labels"].clone();
            labels["pod-template-hash"] = json!(hash);
            let first = if sets.is_empty() { replicas } else { 0 };
            let body = json!({
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": format!("{}-{hash}", name_of(d)),
                    "namespace": namespace_of(d),
                    "labels": labels,
                    "annotations": {
                        "deployment.kubernetes.io/revision": (max_revision + 1).to_string(),
                        "deployment.kubernetes.io/desired-replicas": replicas.to_string(),
                    },
                    "ownerReferences": [owner_ref(d)],
                },
                "spec": {"replicas": first, "selector": selector, "template": template,
                         "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0)},
            });
            let created = match objects.create(rs_rt, namespace_of(d), body) {
                Ok(c) => c,
                Err(KubeError::AlreadyExists { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
            events::emit(
                objects,
                d,
                Kind::Normal,
                "ScalingReplicaSet",
                &format!(
                    "Scaled up replica set {} from 0 to {first}",
                    name_of(&created)
                ),
                "deployment-controller",
            );
            created
        }
    };
    let old: Vec<&Value> = sets
        .iter()
        .copied()
        .filter(|r| uid_of(r) != uid_of(&new_rs))
        .collect();
    let spec_replicas = |r: &Value| r["spec"]["replicas"].as_i64().unwrap_or(0);
    let available = |r: &Value| r["status"]["availableReplicas"].as_i64().unwrap_or(0);
    let scale = |r: &Value, to: i64| -> Result<(), KubeError> {
        let from = spec_replicas(r);
        if from == to {
            return Ok(());
        }
        objects.update_with(
            rs_rt,
            namespace_of(r),
            name_of(r),
            false,
            None,
            &mut |cur| {
                let mut cur = cur.clone();
                cur["spec"]["replicas"] = json!(to);
                cur["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] =
                    json!(replicas.to_string());
                Ok(cur)
            },
        )?;
        let verb = if to > from { "up" } else { "down" };
        events::emit(
            objects,
            d,
            Kind::Normal,
            "ScalingReplicaSet",
            &format!(
                "Scaled {verb} replica set {} from {from} to {to}",
                name_of(r)
            ),
            "deployment-controller",
        );
        Ok(())
    };
    let recreate = d["spec"]["strategy"]["type"] == "Recreate";
    let old_total: i64 = old.iter().map(|r| spec_replicas(r)).sum();
    if recreate {
        for r in &old {
            scale(r, 0)?;
        }
        let old_pods_left: i64 = old
            .iter()
            .map(|r| r["status"]["replicas"].as_i64().unwrap_or(0))
            .sum();
        if old_pods_left == 0 {
            scale(&new_rs, replicas)?;
        }
    } else {
        let ru = &d["spec"]["strategy"]["rollingUpdate"];
        let surge = int_or_percent(&ru["maxSurge"], replicas, true, 1);
        let mut unavailable = int_or_percent(&ru["maxUnavailable"], replicas, false, 0);
        if surge == 0 && unavailable == 0 {
            unavailable = 1;
        }
        // Scale up the new set as far as the surge allows.
        let new_replicas = spec_replicas(&new_rs);
        let total = old_total + new_replicas;
        if new_replicas > replicas {
            scale(&new_rs, replicas)?;
        } else if new_replicas < replicas && total < replicas + surge {
            let to = (new_replicas + (replicas + surge - total)).min(replicas);
            scale(&new_rs, to)?;
        }
        // Scale down old sets as far as availability allows.
        let all_available: i64 = available(&new_rs) + old.iter().map(|r| available(r)).sum::<i64>();
        let min_available = replicas - unavailable;
        let mut can_remove = (all_available - min_available).max(0);
        for r in &old {
            let cur = spec_replicas(r);
            // An old set's unavailable pods go first and cost nothing.
            let unhealthy = (cur - available(r)).max(0);
            let remove = (unhealthy + can_remove).min(cur);
            if remove > 0 {
                can_remove -= (remove - unhealthy).max(0);
                scale(r, cur - remove)?;
            }
        }
    }
    // History: keep `revisionHistoryLimit` old sets with no replicas.
    let limit = d["spec"]["revisionHistoryLimit"]
        .as_i64()
        .unwrap_or(10)
        .max(0) as usize;
    let mut empty_old: Vec<&Value> = old
        .iter()
        .copied()
        .filter(|r| spec_replicas(r) == 0 && r["status"]["replicas"].as_i64().unwrap_or(0) == 0)
        .collect();
    if empty_old.len() > limit {
        empty_old.sort_by_key(|r| revision(r));
        for r in &empty_old[..empty_old.len() - limit] {
            let _ = objects.delete(
                rs_rt,
                namespace_of(r),
                name_of(r),
                &DeleteOptions::default(),
            );
        }
    }
    // Status from the sets as they are now.
    let all: Vec<&Value> = std::iter::once(&new_rs)
        .chain(old.iter().copied())
        .collect();
    let status_of = |r: &Value, k: &str| r["status"][k].as_i64().unwrap_or(0);
    let total_replicas: i64 = all.iter().map(|r| status_of(r, "replicas")).sum();
    let ready: i64 = all.iter().map(|r| status_of(r, "readyReplicas")).sum();
    let avail: i64 = all.iter().map(|r| status_of(r, "availableReplicas")).sum();
    let updated = status_of(&new_rs, "replicas");
    let ru = &d["spec"]["strategy"]["rollingUpdate"];
    let max_unavailable = if recreate {
        0
    } else {
        int_or_percent(&ru["maxUnavailable"], replicas, false, 0)
    };
    let now = now_rfc3339();
    let complete = updated == replicas && total_replicas == replicas && avail >= replicas;
    let condition = |t: &str, ok: bool, reason: &str, message: String| {
        let prior = d["status"]["conditions"]
            .as_array()
            .and_then(|l| l.iter().find(|c| c["type"] == t).cloned());
        let status = if ok { "True" } else { "False" };
        let keep = prior
            .as_ref()
            .is_some_and(|p| p["status"] == status && p["reason"] == reason);
        match prior {
            Some(p) if keep => p,
            _ => {
                json!({"type": t, "status": status, "lastUpdateTime": now, "lastTransitionTime": now, "reason": reason, "message": message})
            }
        }
    };
    let available_ok = avail >= replicas - max_unavailable;
    let conditions = json!([
        condition(
            "Available",
            available_ok,
            if available_ok {
                "MinimumReplicasAvailable"
            } else {
                "MinimumReplicasUnavailable"
            },
            if available_ok {
                "Deployment has minimum availability.".to_string()
            } else {
                "Deployment does not have minimum availability.".to_string()
            }
        ),
        condition(
            "Progressing",
            true,
            if complete {
                "NewReplicaSetAvailable"
            } else {
                "ReplicaSetUpdated"
            },
            if complete {
                format!(
                    "ReplicaSet \"{}\" has successfully progressed.",
                    name_of(&new_rs)
                )
            } else {
                format!("ReplicaSet \"{}\" is progressing.", name_of(&new_rs))
            }
        ),
    ]);
    set_status(
        objects,
        resource("apps", "deployments"),
        d,
        json!({
            "observedGeneration": d["metadata"]["generation"],
            "replicas": total_replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": avail,
            "unavailableReplicas": if replicas > avail { json!(replicas - avail) } else { Value::Null },
            "conditions": conditions,
        }),
    )
}

fn job(objects: &Objects, j: &Value, pods: &[&Value]) -> Result<(), KubeError> {
    let jobs = resource("batch", "jobs");
    let finished = ["Complete", "Failed"]
        .iter()
        .any(|c| condition_is(j, c, "True"));
    if finished {
        return job_ttl(objects, j);
    }
    if j["spec"]["suspend"].as_bool().unwrap_or(false) {
        return Ok(());
    }
    let completions = j["spec"]["completions"].as_i64().unwrap_or(1);
    let parallelism = j["spec"]["parallelism"].as_i64().unwrap_or(1);
    let backoff = j["spec"]["backoffLimit"].as_i64().unwrap_or(6);
    let phase = |p: &&&Value| p["status"]["phase"].as_str().unwrap_or("").to_string();
    let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count() as i64;
    // OnFailure pods restart in place; their restarts count as failures toward the limit.
    let restarts: i64 = pods
        .iter()
        .flat_map(|p| {
            p["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
        .sum();
    let failed = pods.iter().filter(|p| phase(p) == "Failed").count() as i64 + restarts;
    let active: Vec<&&Value> = pods.iter().filter(|p| is_active(p)).collect();
    let ready = active.iter().filter(|p| is_ready(p)).count();
    let now = now_rfc3339();
    let start = j["status"]["startTime"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| now.clone());
    let condition = |t: &str, reason: &str, message: &str| json!({"type": t, "status": "True", "lastProbeTime": now, "lastTransitionTime": now, "reason": reason, "message": message});
    let mut status = json!({
        "startTime": start,
        "active": active.len(),
        "succeeded": succeeded,
        "failed": failed,
        "ready": ready,
        "terminating": 0,
        "uncountedTerminatedPods": {},
    });
    if succeeded >= completions {
        for p in &active {
            delete_pod(objects, j, p);
        }
        status["active"] = json!(0);
        status["completionTime"] = json!(now);
        status["conditions"] = json!([
            condition(
                "SuccessCriteriaMet",
                "CompletionsReached",
                "Reached expected number of succeeded pods"
            ),
            condition(
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods"
            ),
        ]);
        events::emit(
            objects,
            j,
            Kind::Normal,
            "Completed",
            "Job completed",
            "job-controller",
        );
    } else if failed > backoff {
        for p in &active {
            delete_pod(objects, j, p);
        }
        status["active"] = json!(0);
        status["conditions"] = json!([
            condition(
                "FailureTarget",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit"
            ),
            condition(
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit"
            ),
        ]);
        events::emit(
            objects,
            j,
            Kind::Warning,
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
            "job-controller",
        );
    } else {
        let remaining = completions - succeeded;
        let want = parallelism.min(remaining).max(0) as usize;
        for _ in active.len()..want {
            let pod = pod_from_template(j, &j["spec"]["template"], None, &[]);
            create_pod(objects, j, pod)?;
        }
    }
    set_status(objects, jobs, j, status)
}

/// `ttlSecondsAfterFinished`: a finished Job is deleted, with its pods, that long after it ended.
fn job_ttl(objects: &Objects, j: &Value) -> Result<(), KubeError> {
    let Some(ttl) = j["spec"]["ttlSecondsAfterFinished"].as_i64() else {
        return Ok(());
    };
    let finished_at = j["status"]["completionTime"]
        .as_str()
        .or_else(|| {
            j["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Failed")?["lastTransitionTime"]
                .as_str()
        })
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let Some(at) = finished_at else {
        return Ok(());
    };
    if jiff::Timestamp::now().as_second() >= at.as_second() + ttl {
        objects.delete(
            resource("batch", "jobs"),
            namespace_of(j),
            name_of(j),
            &DeleteOptions {
                propagation: Some(Propagation::Background),
                ..Default::default()
            },
        )?;
    }
    Ok(())
}

fn cronjob(objects: &Objects, cj: &Value, jobs: &[&Value]) -> Result<(), KubeError> {
    let cj_rt = resource("batch", "cronjobs");
    let jobs_rt = resource("batch", "jobs");
    let schedule = cj["spec"]["schedule"].as_str().unwrap_or("");
    let Ok(parsed) = cron::Schedule::parse(schedule) else {
        return Ok(());
    };
    let finished = |j: &Value| {
        ["Complete", "Failed"]
            .iter()
            .any(|c| condition_is(j, c, "True"))
    };
    let active: Vec<&&Value> = jobs
        .iter()
        .filter(|j| !finished(j) && !is_deleting(j))
        .collect();
    let now = jiff::Timestamp::now();
    let last = cj["status"]["lastScheduleTime"]
        .as_str()
        .or(cj["metadata"]["creationTimestamp"].as_str())
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .unwrap_or(now);
    let mut status = json!({
        "active": active.iter().map(|j| json!({"apiVersion": "batch/v1", "kind": "Job", "name": name_of(j), "namespace": namespace_of(j), "uid": uid_of(j)})).collect::<Vec<_>>(),
    });
    if active.is_empty() {
        status["active"] = Value::Null;
    }
    let suspended = cj["spec"]["suspend"].as_bool().unwrap_or(false);
    if let Some(due) = parsed
        .latest_between(last.as_second(), now.as_second())
        .filter(|_| !suspended)
    {
        let policy = cj["spec"]["concurrencyPolicy"].as_str().unwrap_or("Allow");
        let skip = policy == "Forbid" && !active.is_empty();
        if policy == "Replace" {
            for j in &active {
                let _ = objects.delete(
                    jobs_rt,
                    namespace_of(j),
                    name_of(j),
                    &DeleteOptions {
                        propagation: Some(Propagation::Background),
                        ..Default::default()
                    },
                );
            }
        }
        if !skip {
            // Upstream names a scheduled Job after the scheduled minute.
            let name = format!("{}-{}", name_of(cj), due / 60);
            let template = &cj["spec"]["jobTemplate"];
            let mut meta = template["metadata"].clone();
            if !meta.is_object() {
                meta = json!({});
            }
            meta["name"] = json!(name);
            meta["ownerReferences"] = json!([owner_ref(cj)]);
            if !meta["annotations"].is_object() {
                meta["annotations"] = json!({});
            }
            let due_text = jiff::Timestamp::from_second(due)
                .map(localfargate_registry::objects::rfc3339)
                .unwrap_or_default();
            meta["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] =
                json!(due_text);
            let body = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": template["spec"]});
            match objects.create(jobs_rt, namespace_of(cj), body) {
                Ok(_) => events::emit(
                    objects,
                    cj,
                    Kind::Normal,
                    "SuccessfulCreate",
                    &format!("Created job {name}"),
                    "cronjob-controller",
                ),
                Err(KubeError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        status["lastScheduleTime"] = json!(
            jiff::Timestamp::from_second(due)
                .map(localfargate_registry::objects::rfc3339)
                .unwrap_or_default()
        );
    }
    // History limits.
    for (cond, key, default) in [
        ("Complete", "successfulJobsHistoryLimit", 3),
        ("Failed", "failedJobsHistoryLimit", 1),
    ] {
        let limit = cj["spec"][key].as_i64().unwrap_or(default).max(0) as usize;
        let mut done: Vec<&&Value> = jobs
            .iter()
            .filter(|j| condition_is(j, cond, "True") && !is_deleting(j))
            .collect();
        if done.len() > limit {
            done.sort_by_key(|j| {
                j["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            });
            for j in &done[..done.len() - limit] {
                let _ = objects.delete(
                    jobs_rt,
                    namespace_of(j),
                    name_of(j),
                    &DeleteOptions {
                        propagation: Some(Propagation::Background),
                        ..Default::default()
                    },
                );
            }
        }
    }
    if let Some(last_done) = jobs
        .iter()
        .filter(|j| condition_is(j, "Complete", "True"))
        .filter_map(|j| j["status"]["completionTime"].as_str())
        .max()
    {
        status["lastSuccessfulTime"] = json!(last_done);
    }
    set_status(objects, cj_rt, cj, status)
}

/// Whether a DaemonSet pod belongs on a node: EC2 nodes only (Fargate does not run DaemonSets),
/// and the node must pass the pod's selector, affinity and taint filters.
fn daemon_fits(template_pod: &Value, node: &Value) -> bool {
    if node["metadata"]["labels"]["eks.amazonaws.com/compute-type"] == "fargate" {
        return false;
    }
    let Ok(typed) = localfargate_registry::admission::decode_pod(template_pod) else {
        return false;
    };
    let view = localfargate_core::nodegroup::NodeView {
        labels: node["metadata"]["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
        taints: serde_json::from_value(node["spec"]["taints"].clone()).unwrap_or_default(),
        unschedulable: false,
        free_cpu_millis: u64::MAX,
        free_memory_bytes: u64::MAX,
        free_pods: u64::MAX,
    };
    localfargate_core::nodegroup::fits_node(&typed, &Default::default(), &view).is_ok()
}

fn daemonset(objects: &Objects, ds: &Value, pods: &[&Value]) -> Result<(), KubeError> {
    let nodes = objects
        .list(resource("", "nodes"), None)
        .map(|(l, _)| l)
        .unwrap_or_default();
    let hash = template_hash(&ds["spec"]["template"]);
    let probe = json!({"metadata": ds["spec"]["template"]["metadata"], "spec": ds["spec"]["template"]["spec"]});
    let wanted: Vec<&Value> = nodes
        .iter()
        .map(|n| &n.value)
        .filter(|n| daemon_fits(&probe, n))
        .collect();
    let mut on_node: HashMap<&str, Vec<&Value>> = HashMap::new();
    for p in pods.iter().filter(|p| is_active(p)) {
        on_node
            .entry(p["spec"]["nodeName"].as_str().unwrap_or(""))
            .or_default()
            .push(p);
    }
    for n in &wanted {
        let name = name_of(n);
        let existing = on_node.remove(name).unwrap_or_default();
        let current: Vec<&&Value> = existing
            .iter()
            .filter(|p| p["metadata"]["labels"]["controller-revision-hash"] == hash.as_str())
            .collect();
        for p in existing
            .iter()
            .filter(|p| p["metadata"]["labels"]["controller-revision-hash"] != hash.as_str())
        {
            delete_pod(objects, ds, p);
        }
        if current.is_empty() {
            let mut pod = pod_from_template(
                ds,
                &ds["spec"]["template"],
                None,
                &[
                    ("controller-revision-hash", hash.clone()),
                    (
                        "pod-template-generation",
                        ds["metadata"]["generation"].to_string(),
                    ),
                ],
            );
            // The DaemonSet controller pins each pod to its node.
            pod["spec"]["nodeName"] = json!(name);
            create_pod(objects, ds, pod)?;
        }
    }
    for (_, leftover) in on_node {
        for p in leftover {
            delete_pod(objects, ds, p);
        }
    }
    let (alive, ready, updated) = revision_counts(pods, &hash);
    set_status(
        objects,
        resource("apps", "daemonsets"),
        ds,
        json!({
            "desiredNumberScheduled": wanted.len(),
            "currentNumberScheduled": alive,
            "numberReady": ready,
            "numberAvailable": ready,
            "updatedNumberScheduled": updated,
            "numberMisscheduled": 0,
            "observedGeneration": ds["metadata"]["generation"],
            "numberUnavailable": if wanted.len() > ready { json!(wanted.len() - ready) } else { Value::Null },
        }),
    )
}

/// Active pods, how many are Ready, and how many are at `revision` (`controller-revision-hash`).
fn revision_counts(pods: &[&Value], revision: &str) -> (usize, usize, usize) {
    let alive: Vec<&&Value> = pods.iter().filter(|p| is_active(p)).collect();
    let ready = alive.iter().filter(|p| is_ready(p)).count();
    let updated = alive
        .iter()
        .filter(|p| p["metadata"]["labels"]["controller-revision-hash"] == revision)
        .count();
    (alive.len(), ready, updated)
}

fn statefulset(objects: &Objects, sts: &Value, pods: &[&Value]) -> Result<(), KubeError> {
    let replicas = sts["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
    let parallel = sts["spec"]["podManagementPolicy"] == "Parallel";
    let hash = template_hash(&sts["spec"]["template"]);
    let revision = format!("{}-{hash}", name_of(sts));
    let base = name_of(sts);
    let by_ordinal: HashMap<usize, &Value> = pods
        .iter()
        .filter(|p| !is_deleting(p))
        .filter_map(|p| {
            Some((
                name_of(p).strip_prefix(&format!("{base}-"))?.parse().ok()?,
                *p,
            ))
        })
        .collect();
    let terminating = pods.iter().any(|p| is_deleting(p));
    let mut acted = false;
    // Create missing ordinals in order; with OrderedReady, each waits for the one before.
    for i in 0..replicas {
        match by_ordinal.get(&i) {
            Some(p) => {
                if !parallel && !is_ready(p) {
                    break;
                }
            }
            None => {
                if !parallel && (acted || terminating) {
                    break;
                }
                let name = format!("{base}-{i}");
                let pod = pod_from_template(
                    sts,
                    &sts["spec"]["template"],
                    Some(&name),
                    &[
                        ("statefulset.kubernetes.io/pod-name", name.clone()),
                        ("apps.kubernetes.io/pod-index", i.to_string()),
                        ("controller-revision-hash", revision.clone()),
                    ],
                );
                // Its stable network identity (upstream's `initIdentity`): the pod's name as
                // hostname in the governing Service's subdomain.
                let mut pod = pod;
                pod["spec"]["hostname"] = serde_json::json!(name);
                if let Some(service) = sts["spec"]["serviceName"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                {
                    pod["spec"]["subdomain"] = serde_json::json!(service);
                }
                create_pod(objects, sts, pod)?;
                acted = true;
                if !parallel {
                    break;
                }
            }
        }
    }
    // Remove ordinals past the end, highest first, one at a time when ordered.
    let mut extra: Vec<usize> = by_ordinal
        .keys()
        .copied()
        .filter(|i| *i >= replicas)
        .collect();
    extra.sort_unstable_by(|a, b| b.cmp(a));
    for i in extra {
        if !parallel && (acted || terminating) {
            break;
        }
        if let Some(p) = by_ordinal.get(&i) {
            delete_pod(objects, sts, p);
            acted = true;
        }
    }
    // Rolling update: replace outdated pods from the highest ordinal, one at a time.
    if !acted && !terminating && sts["spec"]["updateStrategy"]["type"] != "OnDelete" {
        let all_ready = (0..replicas).all(|i| by_ordinal.get(&i).is_some_and(|p| is_ready(p)));
        if all_ready
            && let Some(p) = (0..replicas)
                .rev()
                .filter_map(|i| by_ordinal.get(&i))
                .find(|p| p["metadata"]["labels"]["controller-revision-hash"] != revision.as_str())
        {
            delete_pod(objects, sts, p);
        }
    }
    let (alive, ready, updated) = revision_counts(pods, &revision);
    set_status(
        objects,
        resource("apps", "statefulsets"),
        sts,
        json!({
            "replicas": alive,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": updated,
            "updatedReplicas": updated,
            "currentRevision": revision,
            "updateRevision": revision,
            "observedGeneration": sts["metadata"]["generation"],
            "collisionCount": 0,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hashes_are_stable_and_safe() {
        let a = template_hash(&json!({"spec": {"containers": [{"name": "c", "image": "nginx"}]}}));
        let b =
            template_hash(&json!({"spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}));
        assert_eq!(a.len(), 10);
        assert_ne!(a, b);
        assert_eq!(
            a,
            template_hash(&json!({"spec": {"containers": [{"name": "c", "image": "nginx"}]}}))
        );
        assert!(
            a.bytes()
                .all(|c| b"bcdfghjklmnpqrstvwxz2456789".contains(&c))
        );
    }

    #[test]
    fn surge_and_unavailable_round_like_upstream() {
        assert_eq!(int_or_percent(&json!("25%"), 2, true, 0), 1);
        assert_eq!(int_or_percent(&json!("25%"), 2, false, 0), 0);
        assert_eq!(int_or_percent(&json!(3), 10, false, 0), 3);
        assert_eq!(int_or_percent(&Value::Null, 10, false, 7), 7);
    }

    fn objects() -> Objects {
        let store: Arc<dyn localfargate_store::Store> =
            Arc::new(localfargate_store::SqliteStore::in_memory().unwrap());
        let o = Objects::new(
            store,
            "c",
            Arc::new(localfargate_registry::Settings::new("us-east-1")),
        );
        o.create(
            localfargate_registry::objects::namespaces(),
            "",
            json!({"metadata": {"name": "default"}}),
        )
        .unwrap();
        o
    }

    #[test]
    fn a_round_with_changes_looks_only_at_the_workloads_they_touched() {
        let o = objects();
        let rs = resource("apps", "replicasets");
        let uids: Vec<String> = ["a", "b"]
            .iter()
            .map(|name| {
                let created = o
                    .create(
                        rs,
                        "default",
                        json!({"metadata": {"name": name}, "spec": {"replicas": 1,
                            "selector": {"matchLabels": {"app": name}},
                            "template": {"metadata": {"labels": {"app": name}},
                                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}),
                    )
                    .unwrap();
                uid_of(&created).to_string()
            })
            .collect();
        let pods_of = |name: &str| {
            o.list(resource("", "pods"), Some("default"))
                .unwrap()
                .0
                .iter()
                .filter(|p| p.value["metadata"]["labels"]["app"] == name)
                .count()
        };
        let index = PodIndex::default();
        let mut backoff = HashMap::new();
        let touched = Dirty {
            uids: [uids[0].clone()].into(),
            ..Dirty::default()
        };
        reconcile_all(&o, &index, &mut backoff, &touched);
        assert_eq!((pods_of("a"), pods_of("b")), (1, 0));
        reconcile_all(&o, &index, &mut backoff, &Dirty::everything());
        assert_eq!(pods_of("b"), 1, "a full round looks at every workload");
    }

    #[test]
    fn a_cronjob_that_is_due_makes_its_job_once() {
        let o = objects();
        let cronjobs = resource("batch", "cronjobs");
        o.create(
            cronjobs,
            "default",
            json!({"metadata": {"name": "tick"}, "spec": {"schedule": "* * * * *",
                "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}]}}}}}}),
        )
        .unwrap();
        // Created two minutes ago, so a scheduled minute has passed since.
        let ago = jiff::Timestamp::now().as_second() - 120;
        let created = jiff::Timestamp::from_second(ago)
            .unwrap()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let kind = o.store_kind().to_string();
        let key = cronjobs.key("default", "tick");
        localfargate_store::transaction(&*o.store, |tx| {
            let cur = tx.get(&kind, &key)?.unwrap();
            let mut v = cur.value.clone();
            v["metadata"]["creationTimestamp"] = json!(created);
            tx.update(&kind, &key, &v, None)
        })
        .unwrap();
        let index = PodIndex::default();
        let mut backoff = HashMap::new();
        reconcile_all(&o, &index, &mut backoff, &Dirty::everything());
        reconcile_all(&o, &index, &mut backoff, &Dirty::everything());
        let (jobs, _) = o.list(resource("batch", "jobs"), Some("default")).unwrap();
        assert_eq!(jobs.len(), 1, "one Job for the latest missed minute");
        let job = &jobs[0].value;
        assert!(name_of(job).starts_with("tick-"));
        assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
        let cj = o.get(cronjobs, "default", "tick").unwrap();
        assert!(cj["status"]["lastScheduleTime"].is_string());
        assert!(backoff.is_empty());
    }
}
