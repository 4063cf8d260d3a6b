//! Workload controllers: Deployment → ReplicaSet → Pods with rolling updates, Jobs, CronJobs,
//! DaemonSets (pods only on EC2 nodes) and StatefulSets (ordered). Level-triggered: each round
//! reads the cluster's current objects and moves each workload one step toward its spec, and runs
//! again on the next change.
//!
//! Each workload is read as its k8s-openapi type when it is reconciled, and what the controllers
//! write (pods, ReplicaSets, Jobs, statuses) is built typed. Pods are read through the registry's
//! borrowed reads (labels, owner, phase, Ready) and decoded only where a step needs their spec or
//! status: the pod index follows every pod event and must stay cheap.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::Resource;
use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetStatus, Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet,
    ReplicaSetSpec, ReplicaSetStatus, StatefulSet, StatefulSetStatus,
};
use k8s_openapi::api::batch::v1::{
    CronJob, CronJobStatus, Job, JobCondition, JobStatus, UncountedTerminatedPods,
};
use k8s_openapi::api::core::v1::{
    Node, ObjectReference, Pod, PodTemplateSpec, ReplicationController, ReplicationControllerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector as TypedSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use localfargate_core::selectors::LabelSelector;
use localfargate_registry::meta::{label_of, labels_of};
use localfargate_registry::resources::ResourceType;
use localfargate_registry::typed;
use localfargate_store::Object;
use serde_json::{Map, Value};

use crate::context::ClusterContext;
use crate::cron;
use crate::events::{self, EventType as Kind};
use crate::wake::{Wake, Woken};
use localfargate_registry::binding::condition_is;
use localfargate_registry::objects::{
    DeleteOptions, KubeError, Objects, Propagation, is_deleting, is_finished, name_of,
    namespace_of, resource, uid_of,
};

/// The uid of an object's controller (its owner reference with `controller: true`).
pub use localfargate_registry::meta::controller_uid_of as controller_uid;

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
                        dirty.daemonsets |= label_of(v, COMPUTE_TYPE) != Some("fargate");
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

/// The node label EKS sets to `fargate` on a Fargate node.
const COMPUTE_TYPE: &str = "eks.amazonaws.com/compute-type";
const POD_TEMPLATE_HASH: &str = "pod-template-hash";
const CONTROLLER_REVISION_HASH: &str = "controller-revision-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";
const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";

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

/// The workload a controller acts for: its stored JSON (for events and its metadata) and the
/// type it is.
#[derive(Clone, Copy)]
struct Owner<'a> {
    json: &'a Value,
    api_version: &'static str,
    kind: &'static str,
}

impl<'a> Owner<'a> {
    fn of<K: Resource>(json: &'a Value) -> Self {
        Owner {
            json,
            api_version: K::API_VERSION,
            kind: K::KIND,
        }
    }

    fn name(&self) -> &'a str {
        name_of(self.json)
    }

    fn namespace(&self) -> &'a str {
        namespace_of(self.json)
    }

    /// The owner reference of what it controls.
    fn reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: self.api_version.to_string(),
            kind: self.kind.to_string(),
            name: self.name().to_string(),
            uid: uid_of(self.json).to_string(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    /// The component its events come from.
    fn component(&self) -> &'static str {
        match self.kind {
            "ReplicaSet" => "replicaset-controller",
            "ReplicationController" => "replication-controller",
            "Deployment" => "deployment-controller",
            "Job" => "job-controller",
            "CronJob" => "cronjob-controller",
            "DaemonSet" => "daemonset-controller",
            "StatefulSet" => "statefulset-controller",
            _ => "controller-manager",
        }
    }

    fn event(&self, objects: &Objects, kind: Kind, reason: &str, message: &str) {
        events::emit(objects, self.json, kind, reason, message, self.component());
    }
}

fn is_active(p: &Value) -> bool {
    !is_deleting(p) && !is_finished(p)
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
                "deployments" => typed::decode(v).map_err(KubeError::from).and_then(|d| {
                    let rs_list = objects
                        .list(resource("apps", "replicasets"), Some(namespace_of(v)))
                        .map(|(l, _)| l)
                        .unwrap_or_default();
                    deployment(objects, v, &d, &Owned::new(&rs_list))
                }),
                "replicasets" => typed::decode(v)
                    .map_err(KubeError::from)
                    .and_then(|rs| replicaset(objects, v, &rs, &pods)),
                "replicationcontrollers" => typed::decode(v)
                    .map_err(KubeError::from)
                    .and_then(|rc| replication_controller(objects, v, &rc, &pods)),
                "jobs" => typed::decode(v)
                    .map_err(KubeError::from)
                    .and_then(|j| job(objects, v, &j, &pods)),
                "cronjobs" => typed::decode(v).map_err(KubeError::from).and_then(|cj| {
                    let jobs_list = objects
                        .list(resource("batch", "jobs"), Some(namespace_of(v)))
                        .map(|(l, _)| l)
                        .unwrap_or_default();
                    cronjob(objects, v, &cj, &Owned::new(&jobs_list).of(v))
                }),
                "daemonsets" => typed::decode(v)
                    .map_err(KubeError::from)
                    .and_then(|ds| daemonset(objects, v, &ds, &pods)),
                _ => typed::decode(v)
                    .map_err(KubeError::from)
                    .and_then(|sts| statefulset(objects, v, &sts, &pods)),
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

/// Write a status if it changes the stored one: the fields `status` holds replace those stored
/// (what the controller does not own stays), and the `cleared` fields it leaves out are removed.
fn set_status(
    objects: &Objects,
    rt: &ResourceType,
    v: &Value,
    status: Value,
    cleared: &[&str],
) -> Result<(), KubeError> {
    // A merge of the status's JSON into the stored status's JSON (as a merge patch of the
    // status subresource would be): JSON by nature.
    let stored = v.get("status").unwrap_or(&Value::Null);
    let mut merged = match stored {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    if let Value::Object(s) = status {
        for key in cleared {
            if !s.contains_key(*key) {
                merged.remove(*key);
            }
        }
        merged.extend(s);
    }
    let merged = Value::Object(merged);
    if &merged == stored {
        return Ok(());
    }
    objects.update_with(rt, namespace_of(v), name_of(v), true, None, &mut |cur| {
        let mut cur = cur.clone();
        if let Some(m) = cur.as_object_mut() {
            m.insert("status".to_string(), merged.clone());
        }
        Ok(cur)
    })?;
    Ok(())
}

/// A count as the API's `int32` fields hold it.
fn int32(n: impl TryInto<i32>) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

/// A pod from a template, owned by `owner`.
fn pod_from_template(
    owner: &Owner<'_>,
    template: Option<&PodTemplateSpec>,
    name: Option<&str>,
    extra_labels: &[(&str, String)],
) -> Pod {
    let mut metadata = template
        .and_then(|t| t.metadata.clone())
        .unwrap_or_default();
    match name {
        Some(n) => metadata.name = Some(n.to_string()),
        None => metadata.generate_name = Some(format!("{}-", owner.name())),
    }
    metadata.namespace = Some(owner.namespace().to_string());
    metadata.owner_references = Some(vec![owner.reference()]);
    let labels = metadata.labels.get_or_insert_default();
    for (k, v) in extra_labels {
        labels.insert(k.to_string(), v.clone());
    }
    Pod {
        metadata,
        spec: template.and_then(|t| t.spec.clone()),
        status: None,
    }
}

fn create_pod(objects: &Objects, owner: &Owner<'_>, pod: &Pod) -> Result<(), KubeError> {
    match objects.create(
        resource("", "pods"),
        owner.namespace(),
        typed::to_json(pod)?,
    ) {
        Ok(created) => {
            owner.event(
                objects,
                Kind::Normal,
                "SuccessfulCreate",
                &format!("Created pod: {}", name_of(&created)),
            );
            Ok(())
        }
        Err(KubeError::AlreadyExists { .. }) => Ok(()),
        Err(e) => {
            owner.event(
                objects,
                Kind::Warning,
                "FailedCreate",
                &format!("Error creating: {e}"),
            );
            Err(e)
        }
    }
}

fn delete_pod(objects: &Objects, owner: &Owner<'_>, pod: &Value) {
    let _ = objects.delete(
        resource("", "pods"),
        namespace_of(pod),
        name_of(pod),
        &DeleteOptions::default(),
    );
    owner.event(
        objects,
        Kind::Normal,
        "SuccessfulDelete",
        &format!("Deleted pod: {}", name_of(pod)),
    );
}

/// A workload's label selector, for matching pods' labels.
fn selector_of(selector: Option<&TypedSelector>) -> Result<LabelSelector, KubeError> {
    match selector {
        Some(s) => LabelSelector::from_typed(s),
        None => Ok(LabelSelector::default()),
    }
    .map_err(|e| KubeError::BadRequest(e.to_string()))
}

/// `spec.replicas`, 1 when unset (as the API defaults it).
fn replicas_or_one(replicas: Option<i32>) -> i64 {
    i64::from(replicas.unwrap_or(1)).max(0)
}

fn replicaset(
    objects: &Objects,
    v: &Value,
    rs: &ReplicaSet,
    pods: &[&Value],
) -> Result<(), KubeError> {
    let spec = rs.spec.as_ref();
    let selector = selector_of(spec.map(|s| &s.selector))?;
    let counts = keep_replicas(
        objects,
        &Owner::of::<ReplicaSet>(v),
        replicas_or_one(spec.and_then(|s| s.replicas)),
        spec.and_then(|s| s.template.as_ref()),
        &selector,
        pods,
    )?;
    let status = ReplicaSetStatus {
        replicas: int32(counts.alive),
        fully_labeled_replicas: Some(int32(counts.labelled)),
        ready_replicas: Some(int32(counts.ready)),
        available_replicas: Some(int32(counts.ready)),
        observed_generation: rs.metadata.generation,
        ..Default::default()
    };
    set_status(
        objects,
        resource("apps", "replicasets"),
        v,
        typed::to_json(&status)?,
        &[],
    )
}

/// A ReplicationController: a ReplicaSet with an equality-only selector (a label map, or the
/// template's labels when it has none), as kube-controller-manager's replication manager runs it.
fn replication_controller(
    objects: &Objects,
    v: &Value,
    rc: &ReplicationController,
    pods: &[&Value],
) -> Result<(), KubeError> {
    let spec = rc.spec.as_ref();
    let template = spec.and_then(|s| s.template.as_ref());
    let labels = spec.and_then(|s| s.selector.clone()).or_else(|| {
        template
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
    });
    let selector = selector_of(Some(&TypedSelector {
        match_labels: labels,
        match_expressions: None,
    }))?;
    let counts = keep_replicas(
        objects,
        &Owner::of::<ReplicationController>(v),
        replicas_or_one(spec.and_then(|s| s.replicas)),
        template,
        &selector,
        pods,
    )?;
    let status = ReplicationControllerStatus {
        replicas: int32(counts.alive),
        fully_labeled_replicas: Some(int32(counts.labelled)),
        ready_replicas: Some(int32(counts.ready)),
        available_replicas: Some(int32(counts.ready)),
        observed_generation: rc.metadata.generation,
        ..Default::default()
    };
    set_status(
        objects,
        resource("", "replicationcontrollers"),
        v,
        typed::to_json(&status)?,
        &[],
    )
}

/// What a replica keeper counts for its status.
struct ReplicaCounts {
    alive: usize,
    labelled: usize,
    ready: usize,
}

/// Keep `want` pods of the template; the counters of its status.
fn keep_replicas(
    objects: &Objects,
    owner: &Owner<'_>,
    want: i64,
    template: Option<&PodTemplateSpec>,
    selector: &LabelSelector,
    pods: &[&Value],
) -> Result<ReplicaCounts, KubeError> {
    let want = want as usize;
    let active: Vec<&Value> = pods.iter().copied().filter(|p| is_active(p)).collect();
    if active.len() < want {
        // Upstream creates in slow-start batches; one round creates up to 500.
        let pod = pod_from_template(owner, template, None, &[]);
        for _ in 0..(want - active.len()).min(500) {
            create_pod(objects, owner, &pod)?;
        }
    } else if active.len() > want {
        // Delete the least useful first: unscheduled, then not ready, then the newest. Only
        // here are the pods' spec and creation time needed: decoded for it.
        let mut ranked: Vec<(&Value, Pod)> = active
            .iter()
            .filter_map(|p| Some((*p, typed::decode_or_log::<Pod>(p)?)))
            .collect();
        ranked.sort_by_key(|(json, p)| {
            (
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_some_and(|n| !n.is_empty()),
                is_ready(json),
                std::cmp::Reverse(p.metadata.creation_timestamp.clone()),
            )
        });
        for (p, _) in ranked.iter().take(active.len() - want) {
            delete_pod(objects, owner, p);
        }
    }
    let alive: Vec<&&Value> = pods
        .iter()
        .filter(|p| !is_deleting(p) && is_active(p))
        .collect();
    Ok(ReplicaCounts {
        alive: alive.len(),
        labelled: alive
            .iter()
            .filter(|p| selector.matches(labels_of(p)))
            .count(),
        ready: alive.iter().filter(|p| is_ready(p)).count(),
    })
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

/// The hash of a workload's pod template as stored (`spec.template`). Hashed as the stored JSON,
/// not as the typed template re-encoded, so a template hashes as it always has (the names of
/// ReplicaSets and the revisions of pods carry the hash): the hash is of the document itself.
fn stored_template_hash(workload: &Value) -> String {
    template_hash(workload.pointer("/spec/template").unwrap_or(&Value::Null))
}

/// `25%` of `total`, or an absolute number; `default` when unset.
fn int_or_percent(v: Option<&IntOrString>, total: i64, round_up: bool, default: i64) -> i64 {
    match v {
        Some(IntOrString::Int(n)) => i64::from(*n),
        Some(IntOrString::String(s)) => {
            match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
                Some(p) if round_up => (p * total + 99) / 100,
                Some(p) => p * total / 100,
                None => s.parse().unwrap_or(default),
            }
        }
        None => default,
    }
}

/// A ReplicaSet's revision (`deployment.kubernetes.io/revision`), 0 when unset.
fn rs_revision(r: &ReplicaSet) -> i64 {
    r.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(0)
}

fn rs_spec_replicas(r: &ReplicaSet) -> i64 {
    i64::from(r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0))
}

fn rs_status_replicas(r: &ReplicaSet) -> i64 {
    i64::from(r.status.as_ref().map_or(0, |s| s.replicas))
}

fn rs_ready(r: &ReplicaSet) -> i64 {
    i64::from(
        r.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0),
    )
}

fn rs_available(r: &ReplicaSet) -> i64 {
    i64::from(
        r.status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0),
    )
}

fn name(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}

fn deployment(
    objects: &Objects,
    v: &Value,
    d: &Deployment,
    owned: &Owned<'_>,
) -> Result<(), KubeError> {
    let owner = Owner::of::<Deployment>(v);
    let rs_rt = resource("apps", "replicasets");
    let spec = d.spec.as_ref();
    let replicas = replicas_or_one(spec.and_then(|s| s.replicas));
    let hash = stored_template_hash(v);
    let sets: Vec<ReplicaSet> = owned
        .of(v)
        .into_iter()
        .filter(|r| !is_deleting(r))
        .filter_map(typed::decode_or_log::<ReplicaSet>)
        .collect();
    let max_revision = sets.iter().map(rs_revision).max().unwrap_or(0);
    let existing = sets.iter().find(|r| {
        r.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(POD_TEMPLATE_HASH))
            == Some(&hash)
    });
    let new_rs: ReplicaSet = match existing {
        Some(r) => {
            // Rolling back to an old template makes its set the newest revision again.
            if rs_revision(r) < max_revision {
                let updated = objects.update_with(
                    rs_rt,
                    r.metadata.namespace.as_deref().unwrap_or(""),
                    name(&r.metadata),
                    false,
                    None,
                    &mut |cur| {
                        let mut cur: ReplicaSet = typed::decode(cur)?;
                        cur.metadata
                            .annotations
                            .get_or_insert_default()
                            .insert(REVISION.to_string(), (max_revision + 1).to_string());
                        typed::to_json(&cur)
                    },
                )?;
                typed::decode(&updated)?
            } else {
                r.clone()
            }
        }
        None => {
            let mut template = spec.map(|s| s.template.clone()).unwrap_or_default();
            template
                .metadata
                .get_or_insert_default()
                .labels
                .get_or_insert_default()
                .insert(POD_TEMPLATE_HASH.to_string(), hash.clone());
            let mut selector = spec.map(|s| s.selector.clone()).unwrap_or_default();
            selector
                .match_labels
                .get_or_insert_default()
                .insert(POD_TEMPLATE_HASH.to_string(), hash.clone());
            let labels = template.metadata.as_ref().and_then(|m| m.labels.clone());
            let first = if sets.is_empty() { replicas } else { 0 };
            let body = ReplicaSet {
                metadata: ObjectMeta {
                    name: Some(format!("{}-{hash}", name_of(v))),
                    namespace: Some(namespace_of(v).to_string()),
                    labels,
                    annotations: Some(BTreeMap::from([
                        (REVISION.to_string(), (max_revision + 1).to_string()),
                        (DESIRED_REPLICAS.to_string(), replicas.to_string()),
                    ])),
                    owner_references: Some(vec![owner.reference()]),
                    ..Default::default()
                },
                spec: Some(ReplicaSetSpec {
                    replicas: Some(int32(first)),
                    selector,
                    template: Some(template),
                    min_ready_seconds: Some(spec.and_then(|s| s.min_ready_seconds).unwrap_or(0)),
                }),
                status: None,
            };
            let created = match objects.create(rs_rt, namespace_of(v), typed::to_json(&body)?) {
                Ok(c) => c,
                Err(KubeError::AlreadyExists { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
            owner.event(
                objects,
                Kind::Normal,
                "ScalingReplicaSet",
                &format!(
                    "Scaled up replica set {} from 0 to {first}",
                    name_of(&created)
                ),
            );
            typed::decode(&created)?
        }
    };
    let new_uid = new_rs.metadata.uid.as_deref();
    let old: Vec<&ReplicaSet> = sets
        .iter()
        .filter(|r| r.metadata.uid.as_deref() != new_uid)
        .collect();
    let scale = |r: &ReplicaSet, to: i64| -> Result<(), KubeError> {
        let from = rs_spec_replicas(r);
        if from == to {
            return Ok(());
        }
        objects.update_with(
            rs_rt,
            r.metadata.namespace.as_deref().unwrap_or(""),
            name(&r.metadata),
            false,
            None,
            &mut |cur| {
                let mut cur: ReplicaSet = typed::decode(cur)?;
                cur.spec.get_or_insert_default().replicas = Some(int32(to));
                cur.metadata
                    .annotations
                    .get_or_insert_default()
                    .insert(DESIRED_REPLICAS.to_string(), replicas.to_string());
                typed::to_json(&cur)
            },
        )?;
        let verb = if to > from { "up" } else { "down" };
        owner.event(
            objects,
            Kind::Normal,
            "ScalingReplicaSet",
            &format!(
                "Scaled {verb} replica set {} from {from} to {to}",
                name(&r.metadata)
            ),
        );
        Ok(())
    };
    let strategy = spec.and_then(|s| s.strategy.as_ref());
    let recreate = strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    let max_surge = rolling.and_then(|r| r.max_surge.as_ref());
    let max_unavailable = rolling.and_then(|r| r.max_unavailable.as_ref());
    let old_total: i64 = old.iter().map(|r| rs_spec_replicas(r)).sum();
    if recreate {
        for r in &old {
            scale(r, 0)?;
        }
        let old_pods_left: i64 = old.iter().map(|r| rs_status_replicas(r)).sum();
        if old_pods_left == 0 {
            scale(&new_rs, replicas)?;
        }
    } else {
        let surge = int_or_percent(max_surge, replicas, true, 1);
        let mut unavailable = int_or_percent(max_unavailable, replicas, false, 0);
        if surge == 0 && unavailable == 0 {
            unavailable = 1;
        }
        // Scale up the new set as far as the surge allows.
        let new_replicas = rs_spec_replicas(&new_rs);
        let total = old_total + new_replicas;
        if new_replicas > replicas {
            scale(&new_rs, replicas)?;
        } else if new_replicas < replicas && total < replicas + surge {
            let to = (new_replicas + (replicas + surge - total)).min(replicas);
            scale(&new_rs, to)?;
        }
        // Scale down old sets as far as availability allows.
        let all_available: i64 =
            rs_available(&new_rs) + old.iter().map(|r| rs_available(r)).sum::<i64>();
        let min_available = replicas - unavailable;
        let mut can_remove = (all_available - min_available).max(0);
        for r in &old {
            let cur = rs_spec_replicas(r);
            // An old set's unavailable pods go first and cost nothing.
            let unhealthy = (cur - rs_available(r)).max(0);
            let remove = (unhealthy + can_remove).min(cur);
            if remove > 0 {
                can_remove -= (remove - unhealthy).max(0);
                scale(r, cur - remove)?;
            }
        }
    }
    // History: keep `revisionHistoryLimit` old sets with no replicas.
    let limit = i64::from(
        spec.and_then(|s| s.revision_history_limit)
            .unwrap_or(10)
            .max(0),
    ) as usize;
    let mut empty_old: Vec<&ReplicaSet> = old
        .iter()
        .copied()
        .filter(|r| rs_spec_replicas(r) == 0 && rs_status_replicas(r) == 0)
        .collect();
    if empty_old.len() > limit {
        empty_old.sort_by_key(|r| rs_revision(r));
        for r in &empty_old[..empty_old.len() - limit] {
            let _ = objects.delete(
                rs_rt,
                r.metadata.namespace.as_deref().unwrap_or(""),
                name(&r.metadata),
                &DeleteOptions::default(),
            );
        }
    }
    // Status from the sets as they are now.
    let all: Vec<&ReplicaSet> = std::iter::once(&new_rs)
        .chain(old.iter().copied())
        .collect();
    let total_replicas: i64 = all.iter().map(|r| rs_status_replicas(r)).sum();
    let ready: i64 = all.iter().map(|r| rs_ready(r)).sum();
    let avail: i64 = all.iter().map(|r| rs_available(r)).sum();
    let updated = rs_status_replicas(&new_rs);
    let max_unavailable = if recreate {
        0
    } else {
        int_or_percent(max_unavailable, replicas, false, 0)
    };
    let now = Time(jiff::Timestamp::now());
    let complete = updated == replicas && total_replicas == replicas && avail >= replicas;
    let prior_conditions = d.status.as_ref().and_then(|s| s.conditions.as_deref());
    let condition = |t: &str, ok: bool, reason: &str, message: String| {
        let status = if ok { "True" } else { "False" };
        let prior = prior_conditions.and_then(|l| l.iter().find(|c| c.type_ == t));
        match prior {
            Some(p) if p.status == status && p.reason.as_deref() == Some(reason) => p.clone(),
            _ => DeploymentCondition {
                type_: t.to_string(),
                status: status.to_string(),
                last_update_time: Some(now.clone()),
                last_transition_time: Some(now.clone()),
                reason: Some(reason.to_string()),
                message: Some(message),
            },
        }
    };
    let available_ok = avail >= replicas - max_unavailable;
    let new_name = name(&new_rs.metadata);
    let conditions = vec![
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
            },
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
                format!("ReplicaSet \"{new_name}\" has successfully progressed.")
            } else {
                format!("ReplicaSet \"{new_name}\" is progressing.")
            },
        ),
    ];
    let status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(int32(total_replicas)),
        updated_replicas: Some(int32(updated)),
        ready_replicas: Some(int32(ready)),
        available_replicas: Some(int32(avail)),
        unavailable_replicas: (replicas > avail).then(|| int32(replicas - avail)),
        conditions: Some(conditions),
        ..Default::default()
    };
    set_status(
        objects,
        resource("apps", "deployments"),
        v,
        typed::to_json(&status)?,
        &["unavailableReplicas"],
    )
}

/// A pod's phase, when it decodes.
fn phase_of(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn job_finished(j: &Job) -> bool {
    j.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
}

fn job_condition_is(j: &Job, condition: &str) -> bool {
    j.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == condition && c.status == "True")
}

fn job(objects: &Objects, v: &Value, j: &Job, pods: &[&Value]) -> Result<(), KubeError> {
    let owner = Owner::of::<Job>(v);
    let jobs = resource("batch", "jobs");
    if job_finished(j) {
        return job_ttl(objects, v, j);
    }
    let spec = j.spec.as_ref();
    if spec.and_then(|s| s.suspend).unwrap_or(false) {
        return Ok(());
    }
    let completions = i64::from(spec.and_then(|s| s.completions).unwrap_or(1));
    let parallelism = i64::from(spec.and_then(|s| s.parallelism).unwrap_or(1));
    let backoff = i64::from(spec.and_then(|s| s.backoff_limit).unwrap_or(6));
    // The pods' phases and restarts: decoded.
    let typed_pods: Vec<Pod> = pods
        .iter()
        .filter_map(|p| typed::decode_or_log::<Pod>(p))
        .collect();
    let succeeded = typed_pods
        .iter()
        .filter(|p| phase_of(p) == "Succeeded")
        .count() as i64;
    // OnFailure pods restart in place; their restarts count as failures toward the limit.
    let restarts: i64 = typed_pods
        .iter()
        .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .map(|c| i64::from(c.restart_count))
        .sum();
    let failed = typed_pods
        .iter()
        .filter(|p| phase_of(p) == "Failed")
        .count() as i64
        + restarts;
    let active: Vec<&&Value> = pods.iter().filter(|p| is_active(p)).collect();
    let ready = active.iter().filter(|p| is_ready(p)).count();
    let now = Time(jiff::Timestamp::now());
    let start = j
        .status
        .as_ref()
        .and_then(|s| s.start_time.clone())
        .unwrap_or_else(|| now.clone());
    let condition = |t: &str, reason: &str, message: &str| JobCondition {
        type_: t.to_string(),
        status: "True".to_string(),
        last_probe_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
    };
    let mut status = JobStatus {
        start_time: Some(start),
        active: Some(int32(active.len())),
        succeeded: Some(int32(succeeded)),
        failed: Some(int32(failed)),
        ready: Some(int32(ready)),
        terminating: Some(0),
        uncounted_terminated_pods: Some(UncountedTerminatedPods::default()),
        ..Default::default()
    };
    if succeeded >= completions {
        for p in &active {
            delete_pod(objects, &owner, p);
        }
        status.active = Some(0);
        status.completion_time = Some(now.clone());
        status.conditions = Some(vec![
            condition(
                "SuccessCriteriaMet",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            ),
            condition(
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            ),
        ]);
        owner.event(objects, Kind::Normal, "Completed", "Job completed");
    } else if failed > backoff {
        for p in &active {
            delete_pod(objects, &owner, p);
        }
        status.active = Some(0);
        status.conditions = Some(vec![
            condition(
                "FailureTarget",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ),
            condition(
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ),
        ]);
        owner.event(
            objects,
            Kind::Warning,
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        );
    } else {
        let remaining = completions - succeeded;
        let want = parallelism.min(remaining).max(0) as usize;
        let pod = pod_from_template(&owner, spec.map(|s| &s.template), None, &[]);
        for _ in active.len()..want {
            create_pod(objects, &owner, &pod)?;
        }
    }
    set_status(objects, jobs, v, typed::to_json(&status)?, &[])
}

/// `ttlSecondsAfterFinished`: a finished Job is deleted, with its pods, that long after it ended.
fn job_ttl(objects: &Objects, v: &Value, j: &Job) -> Result<(), KubeError> {
    let Some(ttl) = j.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
        return Ok(());
    };
    let status = j.status.as_ref();
    let finished_at = status.and_then(|s| s.completion_time.as_ref()).or_else(|| {
        status?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "Failed")?
            .last_transition_time
            .as_ref()
    });
    let Some(at) = finished_at else {
        return Ok(());
    };
    if jiff::Timestamp::now().as_second() >= at.0.as_second() + i64::from(ttl) {
        objects.delete(
            resource("batch", "jobs"),
            namespace_of(v),
            name_of(v),
            &DeleteOptions {
                propagation: Some(Propagation::Background),
                ..Default::default()
            },
        )?;
    }
    Ok(())
}

fn cronjob(objects: &Objects, v: &Value, cj: &CronJob, owned: &[&Value]) -> Result<(), KubeError> {
    let owner = Owner::of::<CronJob>(v);
    let cj_rt = resource("batch", "cronjobs");
    let jobs_rt = resource("batch", "jobs");
    let Some(spec) = cj.spec.as_ref() else {
        return Ok(());
    };
    let Ok(parsed) = cron::Schedule::parse(&spec.schedule) else {
        return Ok(());
    };
    let jobs: Vec<Job> = owned
        .iter()
        .filter_map(|j| typed::decode_or_log::<Job>(j))
        .collect();
    let active: Vec<&Job> = jobs
        .iter()
        .filter(|j| !job_finished(j) && j.metadata.deletion_timestamp.is_none())
        .collect();
    let now = jiff::Timestamp::now();
    let last = cj
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .or(cj.metadata.creation_timestamp.as_ref())
        .map_or(now, |t| t.0);
    let mut status = CronJobStatus {
        active: (!active.is_empty()).then(|| {
            active
                .iter()
                .map(|j| ObjectReference {
                    api_version: Some(Job::API_VERSION.to_string()),
                    kind: Some(Job::KIND.to_string()),
                    name: j.metadata.name.clone(),
                    namespace: j.metadata.namespace.clone(),
                    uid: j.metadata.uid.clone(),
                    ..Default::default()
                })
                .collect()
        }),
        ..Default::default()
    };
    let suspended = spec.suspend.unwrap_or(false);
    if let Some(due) = parsed
        .latest_between(last.as_second(), now.as_second())
        .filter(|_| !suspended)
    {
        let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
        let skip = policy == "Forbid" && !active.is_empty();
        if policy == "Replace" {
            for j in &active {
                let _ = objects.delete(
                    jobs_rt,
                    j.metadata.namespace.as_deref().unwrap_or(""),
                    name(&j.metadata),
                    &DeleteOptions {
                        propagation: Some(Propagation::Background),
                        ..Default::default()
                    },
                );
            }
        }
        let due_time = jiff::Timestamp::from_second(due).ok().map(Time);
        if !skip {
            // Upstream names a scheduled Job after the scheduled minute.
            let job_name = format!("{}-{}", name_of(v), due / 60);
            let template = &spec.job_template;
            let mut metadata = template.metadata.clone().unwrap_or_default();
            metadata.name = Some(job_name.clone());
            metadata.owner_references = Some(vec![owner.reference()]);
            metadata.annotations.get_or_insert_default().insert(
                "batch.kubernetes.io/cronjob-scheduled-timestamp".to_string(),
                due_time.as_ref().map(rfc3339).unwrap_or_default(),
            );
            let body = Job {
                metadata,
                spec: template.spec.clone(),
                status: None,
            };
            match objects.create(jobs_rt, namespace_of(v), typed::to_json(&body)?) {
                Ok(_) => owner.event(
                    objects,
                    Kind::Normal,
                    "SuccessfulCreate",
                    &format!("Created job {job_name}"),
                ),
                Err(KubeError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        status.last_schedule_time = due_time;
    }
    // History limits.
    for (cond, limit, default) in [
        ("Complete", spec.successful_jobs_history_limit, 3),
        ("Failed", spec.failed_jobs_history_limit, 1),
    ] {
        let limit = i64::from(limit.unwrap_or(default).max(0)) as usize;
        let mut done: Vec<&Job> = jobs
            .iter()
            .filter(|j| job_condition_is(j, cond) && j.metadata.deletion_timestamp.is_none())
            .collect();
        if done.len() > limit {
            done.sort_by_key(|j| j.metadata.creation_timestamp.clone());
            for j in &done[..done.len() - limit] {
                let _ = objects.delete(
                    jobs_rt,
                    j.metadata.namespace.as_deref().unwrap_or(""),
                    name(&j.metadata),
                    &DeleteOptions {
                        propagation: Some(Propagation::Background),
                        ..Default::default()
                    },
                );
            }
        }
    }
    status.last_successful_time = jobs
        .iter()
        .filter(|j| job_condition_is(j, "Complete"))
        .filter_map(|j| j.status.as_ref()?.completion_time.clone())
        .max();
    set_status(objects, cj_rt, v, typed::to_json(&status)?, &["active"])
}

/// A time as the API writes it.
fn rfc3339(t: &Time) -> String {
    localfargate_registry::objects::rfc3339(t.0)
}

/// Whether a DaemonSet pod belongs on a node: EC2 nodes only (Fargate does not run DaemonSets),
/// and the node must pass the pod's selector, affinity and taint filters.
fn daemon_fits(template_pod: &Pod, node: &Node) -> bool {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    if labels.get(COMPUTE_TYPE).map(String::as_str) == Some("fargate") {
        return false;
    }
    let view = localfargate_core::nodegroup::NodeView {
        labels,
        taints: node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .map(|taints| {
                taints
                    .iter()
                    .map(|t| localfargate_core::nodegroup::Taint {
                        key: t.key.clone(),
                        value: t.value.clone().unwrap_or_default(),
                        effect: t.effect.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        unschedulable: false,
        free_cpu_millis: u64::MAX,
        free_memory_bytes: u64::MAX,
        free_pods: u64::MAX,
    };
    localfargate_core::nodegroup::fits_node(template_pod, &Default::default(), &view).is_ok()
}

fn daemonset(
    objects: &Objects,
    v: &Value,
    ds: &DaemonSet,
    pods: &[&Value],
) -> Result<(), KubeError> {
    let owner = Owner::of::<DaemonSet>(v);
    let nodes = objects
        .list(resource("", "nodes"), None)
        .map(|(l, _)| l)
        .unwrap_or_default();
    let template = ds.spec.as_ref().map(|s| &s.template);
    let hash = stored_template_hash(v);
    let probe = Pod {
        metadata: template
            .and_then(|t| t.metadata.clone())
            .unwrap_or_default(),
        spec: template.and_then(|t| t.spec.clone()),
        status: None,
    };
    let wanted: Vec<Node> = nodes
        .iter()
        .filter_map(|n| typed::decode_or_log::<Node>(&n.value))
        .filter(|n| daemon_fits(&probe, n))
        .collect();
    // Which node each active pod is on: the pods' spec, decoded.
    let mut on_node: HashMap<String, Vec<&Value>> = HashMap::new();
    for p in pods.iter().filter(|p| is_active(p)) {
        let node = typed::decode_or_log::<Pod>(p)
            .and_then(|pod| pod.spec?.node_name)
            .unwrap_or_default();
        on_node.entry(node).or_default().push(p);
    }
    let generation = ds.metadata.generation;
    for n in &wanted {
        let node_name = name(&n.metadata);
        let existing = on_node.remove(node_name).unwrap_or_default();
        let is_current = |p: &Value| label_of(p, CONTROLLER_REVISION_HASH) == Some(hash.as_str());
        for p in existing.iter().filter(|p| !is_current(p)) {
            delete_pod(objects, &owner, p);
        }
        if !existing.iter().any(|p| is_current(p)) {
            let mut pod = pod_from_template(
                &owner,
                template,
                None,
                &[
                    (CONTROLLER_REVISION_HASH, hash.clone()),
                    (
                        "pod-template-generation",
                        // As the JSON number it is written as (`null` when unset).
                        generation.map_or_else(|| "null".to_string(), |g| g.to_string()),
                    ),
                ],
            );
            // The DaemonSet controller pins each pod to its node.
            pod.spec.get_or_insert_default().node_name = Some(node_name.to_string());
            create_pod(objects, &owner, &pod)?;
        }
    }
    for (_, leftover) in on_node {
        for p in leftover {
            delete_pod(objects, &owner, p);
        }
    }
    let (alive, ready, updated) = revision_counts(pods, &hash);
    let desired = wanted.len();
    let status = DaemonSetStatus {
        desired_number_scheduled: int32(desired),
        current_number_scheduled: int32(alive),
        number_ready: int32(ready),
        number_available: Some(int32(ready)),
        updated_number_scheduled: Some(int32(updated)),
        number_misscheduled: 0,
        observed_generation: generation,
        number_unavailable: (desired > ready).then(|| int32(desired - ready)),
        ..Default::default()
    };
    set_status(
        objects,
        resource("apps", "daemonsets"),
        v,
        typed::to_json(&status)?,
        &["numberUnavailable"],
    )
}

/// Active pods, how many are Ready, and how many are at `revision` (`controller-revision-hash`).
fn revision_counts(pods: &[&Value], revision: &str) -> (usize, usize, usize) {
    let alive: Vec<&&Value> = pods.iter().filter(|p| is_active(p)).collect();
    let ready = alive.iter().filter(|p| is_ready(p)).count();
    let updated = alive
        .iter()
        .filter(|p| label_of(p, CONTROLLER_REVISION_HASH) == Some(revision))
        .count();
    (alive.len(), ready, updated)
}

fn statefulset(
    objects: &Objects,
    v: &Value,
    sts: &StatefulSet,
    pods: &[&Value],
) -> Result<(), KubeError> {
    let owner = Owner::of::<StatefulSet>(v);
    let spec = sts.spec.as_ref();
    let replicas = replicas_or_one(spec.and_then(|s| s.replicas)) as usize;
    let parallel = spec.and_then(|s| s.pod_management_policy.as_deref()) == Some("Parallel");
    let hash = stored_template_hash(v);
    let base = name_of(v);
    let revision = format!("{base}-{hash}");
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
                let pod_name = format!("{base}-{i}");
                let mut pod = pod_from_template(
                    &owner,
                    spec.map(|s| &s.template),
                    Some(&pod_name),
                    &[
                        ("statefulset.kubernetes.io/pod-name", pod_name.clone()),
                        ("apps.kubernetes.io/pod-index", i.to_string()),
                        (CONTROLLER_REVISION_HASH, revision.clone()),
                    ],
                );
                // Its stable network identity (upstream's `initIdentity`): the pod's name as
                // hostname in the governing Service's subdomain.
                let pod_spec = pod.spec.get_or_insert_default();
                pod_spec.hostname = Some(pod_name.clone());
                if let Some(service) = spec
                    .and_then(|s| s.service_name.as_deref())
                    .filter(|s| !s.is_empty())
                {
                    pod_spec.subdomain = Some(service.to_string());
                }
                create_pod(objects, &owner, &pod)?;
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
            delete_pod(objects, &owner, p);
            acted = true;
        }
    }
    // Rolling update: replace outdated pods from the highest ordinal, one at a time.
    let on_delete = spec
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        == Some("OnDelete");
    if !acted && !terminating && !on_delete {
        let all_ready = (0..replicas).all(|i| by_ordinal.get(&i).is_some_and(|p| is_ready(p)));
        if all_ready
            && let Some(p) = (0..replicas)
                .rev()
                .filter_map(|i| by_ordinal.get(&i))
                .find(|p| label_of(p, CONTROLLER_REVISION_HASH) != Some(revision.as_str()))
        {
            delete_pod(objects, &owner, p);
        }
    }
    let (alive, ready, updated) = revision_counts(pods, &revision);
    let status = StatefulSetStatus {
        replicas: int32(alive),
        ready_replicas: Some(int32(ready)),
        available_replicas: Some(int32(ready)),
        current_replicas: Some(int32(updated)),
        updated_replicas: Some(int32(updated)),
        current_revision: Some(revision.clone()),
        update_revision: Some(revision),
        observed_generation: sts.metadata.generation,
        collision_count: Some(0),
        ..Default::default()
    };
    set_status(
        objects,
        resource("apps", "statefulsets"),
        v,
        typed::to_json(&status)?,
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let quarter = IntOrString::String("25%".into());
        assert_eq!(int_or_percent(Some(&quarter), 2, true, 0), 1);
        assert_eq!(int_or_percent(Some(&quarter), 2, false, 0), 0);
        assert_eq!(int_or_percent(Some(&IntOrString::Int(3)), 10, false, 0), 3);
        let three = IntOrString::String("3".into());
        assert_eq!(int_or_percent(Some(&three), 10, false, 0), 3);
        assert_eq!(int_or_percent(None, 10, false, 7), 7);
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
                .filter(|p| label_of(&p.value, "app") == Some(name))
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
    fn a_status_write_replaces_its_fields_and_clears_those_it_dropped() {
        let o = objects();
        let deployments = resource("apps", "deployments");
        o.create(
            deployments,
            "default",
            json!({"metadata": {"name": "web"}, "spec": {"replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}),
        )
        .unwrap();
        let read = || -> Deployment {
            typed::decode(&o.get(deployments, "default", "web").unwrap()).unwrap()
        };
        let write = |status: DeploymentStatus| {
            let v = o.get(deployments, "default", "web").unwrap();
            set_status(
                &o,
                deployments,
                &v,
                typed::to_json(&status).unwrap(),
                &["unavailableReplicas"],
            )
            .unwrap();
        };
        write(DeploymentStatus {
            replicas: Some(2),
            unavailable_replicas: Some(2),
            collision_count: Some(1),
            ..Default::default()
        });
        write(DeploymentStatus {
            replicas: Some(2),
            available_replicas: Some(2),
            ..Default::default()
        });
        let status = read().status.unwrap();
        assert_eq!(
            (
                status.replicas,
                status.available_replicas,
                status.unavailable_replicas,
                status.collision_count
            ),
            (Some(2), Some(2), None, Some(1)),
            "what the write leaves out stays, unless it is one it clears"
        );
    }

    #[test]
    fn a_statefulset_makes_its_first_pod_with_its_identity() {
        let o = objects();
        let statefulsets = resource("apps", "statefulsets");
        let created = o
            .create(
                statefulsets,
                "default",
                json!({"metadata": {"name": "db"}, "spec": {"replicas": 2, "serviceName": "db",
                    "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"},
                                              "annotations": {"note": "kept"}},
                        "spec": {"containers": [{"name": "c", "image": "postgres"}]}}}}),
            )
            .unwrap();
        let index = PodIndex::default();
        let mut backoff = HashMap::new();
        reconcile_all(&o, &index, &mut backoff, &Dirty::everything());
        let (pods, _) = o.list(resource("", "pods"), Some("default")).unwrap();
        let names: Vec<&str> = pods.iter().map(|p| name_of(&p.value)).collect();
        assert_eq!(names, ["db-0"], "ordered: the second waits for the first");
        let pod: Pod = typed::decode(&pods[0].value).unwrap();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let revision = format!("db-{}", stored_template_hash(&created));
        assert_eq!(
            labels,
            BTreeMap::from([
                ("app".to_string(), "db".to_string()),
                ("apps.kubernetes.io/pod-index".to_string(), "0".to_string()),
                (CONTROLLER_REVISION_HASH.to_string(), revision.clone()),
                (
                    "statefulset.kubernetes.io/pod-name".to_string(),
                    "db-0".to_string()
                ),
            ])
        );
        assert_eq!(
            pod.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("note"))
                .map(String::as_str),
            Some("kept")
        );
        let owner = pod.metadata.owner_references.unwrap_or_default();
        assert_eq!(
            owner
                .iter()
                .map(|r| (
                    r.kind.as_str(),
                    r.name.as_str(),
                    r.uid.as_str(),
                    r.controller
                ))
                .collect::<Vec<_>>(),
            [("StatefulSet", "db", uid_of(&created), Some(true))]
        );
        let spec = pod.spec.unwrap_or_default();
        assert_eq!(
            (spec.hostname.as_deref(), spec.subdomain.as_deref()),
            (Some("db-0"), Some("db"))
        );
        let sts: StatefulSet =
            typed::decode(&o.get(statefulsets, "default", "db").unwrap()).unwrap();
        let status = sts.status.unwrap_or_default();
        assert_eq!(
            (
                status.replicas,
                status.ready_replicas,
                status.update_revision.as_deref(),
                status.collision_count
            ),
            (0, Some(0), Some(revision.as_str()), Some(0)),
            "counted from the pods it had (none) when it made the first"
        );
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
        let created = Time(jiff::Timestamp::from_second(ago).unwrap());
        let kind = o.store_kind().to_string();
        let key = cronjobs.key("default", "tick");
        localfargate_store::transaction(&*o.store, |tx| {
            let cur = tx.get(&kind, &key)?.unwrap();
            let mut cj: CronJob = typed::decode(&cur.value).unwrap();
            cj.metadata.creation_timestamp = Some(created.clone());
            tx.update(&kind, &key, &typed::to_json(&cj).unwrap(), None)
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
        let job: Job = typed::decode(job).unwrap();
        let owners = job.metadata.owner_references.unwrap_or_default();
        assert_eq!(
            owners.iter().map(|o| o.kind.as_str()).collect::<Vec<_>>(),
            ["CronJob"]
        );
        let cj: CronJob = typed::decode(&o.get(cronjobs, "default", "tick").unwrap()).unwrap();
        assert!(cj.status.and_then(|s| s.last_schedule_time).is_some());
        assert!(backoff.is_empty());
    }
}
