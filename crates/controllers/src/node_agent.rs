//! The node agent (the kubelet's part): every pod bound to a node gets a sandbox from the
//! `SandboxRuntime`, and its status follows the sandbox's: ContainerCreating, Running, Ready,
//! restarts, Succeeded or Failed. A deleted pod's sandbox is stopped and removed, and then the pod
//! is gone. Status writes are batched into one store transaction per round.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use localfargate_core::CAPACITY_ANNOTATION;
use localfargate_runtime::{
    ContainerState, RuntimeError, RuntimeKind, SandboxId, SandboxRuntime, SandboxStatus,
};
use localfargate_store::{Event, EventType, Object, Revision, StoreError, transaction};
use serde_json::{Value, json};

use crate::context::ClusterContext;
use crate::events::{self, EventType as Kind};
use crate::fargate_scheduler::node_ip;
use crate::pod_spec;
use localfargate_registry::binding::set_condition;
use localfargate_registry::meta::{ObjectMeta, annotation_of};
use localfargate_registry::objects::{finalizers, is_deleting, resource, uid_of};
use localfargate_registry::typed::{PodView, internal_ip_of};

/// Per-pod state the agent keeps: the sandbox and when to look again.
struct Tracked {
    sandbox: SandboxId,
    uid: String,
    /// An address this agent allocated (pods on EC2 nodes); Fargate pods use their node's.
    own_ip: Option<Ipv4Addr>,
    next: Option<Instant>,
    /// Containers already announced as started, so each start gets its events once (runtimes
    /// that report no events of their own: the simulated one).
    started: HashSet<String>,
    /// The last runtime event turned into a Kubernetes Event.
    events_seen: u64,
    /// The revision of the agent's last status write: its own change coming back through the
    /// watch needs no look.
    written: Revision,
}

/// The pods the agent runs, by key, and which pod each sandbox is (the runtime reports changes
/// by sandbox; with thousands of pods, a search per change would cost a scan of them all).
#[derive(Default)]
struct Tracker {
    pods: HashMap<String, Tracked>,
    by_sandbox: HashMap<SandboxId, String>,
    /// When pods want another look (their `next`), soonest first. An entry whose pod has moved
    /// its `next` since is dropped when it comes up.
    timers: BinaryHeap<Reverse<(Instant, String)>>,
}

impl Tracker {
    fn get(&self, key: &str) -> Option<&Tracked> {
        self.pods.get(key)
    }
    fn get_mut(&mut self, key: &str) -> Option<&mut Tracked> {
        self.pods.get_mut(key)
    }
    fn contains_key(&self, key: &str) -> bool {
        self.pods.contains_key(key)
    }
    fn insert(&mut self, key: String, t: Tracked) {
        self.by_sandbox.insert(t.sandbox.clone(), key.clone());
        if let Some(old) = self.pods.insert(key, t) {
            self.by_sandbox.remove(&old.sandbox);
        }
    }
    fn remove(&mut self, key: &str) -> Option<Tracked> {
        let t = self.pods.remove(key)?;
        self.by_sandbox.remove(&t.sandbox);
        Some(t)
    }
    fn pod_of(&self, sandbox: &SandboxId) -> Option<&String> {
        self.by_sandbox.get(sandbox)
    }
    /// Look at `key` again at `at`.
    fn wake_at(&mut self, key: &str, at: Instant) {
        self.timers.push(Reverse((at, key.to_string())));
    }
    /// Set when to look at `key` again (`None`: only on changes). The runtime's instants are
    /// read against the clock each time, so one transition differs a little from look to look:
    /// a pending timer within `TIMER_SLACK` of the new time stands, rather than a second one
    /// going on the heap.
    fn set_next(&mut self, key: &str, next: Option<Instant>, now: Instant) {
        let Some(t) = self.pods.get_mut(key) else {
            return;
        };
        if let (Some(at), Some(pending)) = (next, t.next)
            && pending > now
            && at.max(pending).duration_since(at.min(pending)) <= TIMER_SLACK
        {
            return;
        }
        t.next = next;
        if let Some(at) = next {
            self.wake_at(key, at);
        }
    }
    /// When the next timer is due.
    fn next_timer(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }
    /// Queue the pods whose timers are due.
    fn queue_due(&mut self, queue: &mut Queue, now: Instant) {
        while let Some(Reverse((at, _))) = self.timers.peek()
            && *at <= now
        {
            let Some(Reverse((at, key))) = self.timers.pop() else {
                break;
            };
            // Still the pod's timer: the look it asks for sets the next one.
            if self.pods.get(&key).is_some_and(|t| t.next == Some(at)) {
                queue.add(&key);
            }
        }
    }
}

/// How far apart two readings of one runtime transition can be and still be the same timer.
const TIMER_SLACK: Duration = Duration::from_millis(5);

/// Pods a round looks at, at most: its status writes are one transaction, and what it holds
/// (each pod and its new status) is bounded.
const ROUND: usize = 512;
/// Queued pods beyond which the watch's copies are not kept: the pod is read again in its round.
const QUEUE_OBJECTS: usize = 512;
/// Queued pods beyond which the watch is left until the queue is worked down.
const QUEUE_LIMIT: usize = 4096;

/// Pods to look at, first queued first looked at, each with its latest version from the watch
/// when there is one (`None`: read it from the store), so a change is not decoded again.
#[derive(Default)]
struct Queue {
    order: std::collections::VecDeque<String>,
    pods: HashMap<String, Option<Arc<Object>>>,
}

impl Queue {
    fn len(&self) -> usize {
        self.pods.len()
    }
    fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }
    /// Queue `key` with this copy, replacing an older one; it keeps its place if queued.
    fn set(&mut self, key: &str, copy: Option<Arc<Object>>) {
        match self.pods.get_mut(key) {
            Some(slot) => *slot = copy,
            None => {
                self.order.push_back(key.to_string());
                self.pods.insert(key.to_string(), copy);
            }
        }
    }
    /// Queue `key` to be read from the store, unless it is queued already.
    fn add(&mut self, key: &str) {
        if !self.pods.contains_key(key) {
            self.set(key, None);
        }
    }
    /// The first `n` queued pods, taken out.
    fn take(&mut self, n: usize) -> Vec<(String, Option<Arc<Object>>)> {
        let mut out = Vec::with_capacity(n.min(self.len()));
        while out.len() < n
            && let Some(key) = self.order.pop_front()
        {
            if let Some(copy) = self.pods.remove(&key) {
                out.push((key, copy));
            }
        }
        out
    }
}

/// Queue a watched change, unless it cannot concern the agent: a pod not bound to a node yet,
/// or a version no later than the agent's own last write to it (its write coming back, or an
/// older version it already wrote over).
fn queue_change(queue: &mut Queue, tracked: &Tracker, e: Event) {
    let key = &e.object.key;
    if e.event_type == EventType::Deleted {
        queue.set(key, None);
        return;
    }
    let v = &e.object.value;
    let unbound = PodView::of(v).node_name().is_none();
    let written_over = tracked
        .get(key)
        .is_some_and(|t| e.object.revision <= t.written);
    if !unbound && !written_over {
        let keep = queue.len() < QUEUE_OBJECTS;
        queue.set(key, keep.then(|| e.object.clone()));
    }
}

/// Queue the pod whose sandbox changed; `None`: changes were lost, so every pod.
fn queue_runtime_change(queue: &mut Queue, tracked: &Tracker, sandbox: Option<SandboxId>) {
    match sandbox {
        Some(id) => {
            if let Some(k) = tracked.pod_of(&id) {
                queue.add(k);
            }
        }
        None => {
            for k in tracked.pods.keys() {
                queue.add(k);
            }
        }
    }
}

pub async fn run(ctx: Arc<ClusterContext>) {
    let mut tracked = Tracker::default();
    let mut changes = ctx.runtime.changes();
    // Pods whose sandboxes are stopping in the background (a grace period must not hold up
    // every other pod), and pods whose sandbox failed to start, with when to try again.
    let stopping: Stopping = Arc::default();
    let mut retry_at: HashMap<String, Instant> = HashMap::new();
    loop {
        let mut queue = Queue::default();
        let mut watcher = ctx
            .scan_and_watch_pods("node agent", &mut |o| queue.add(&o.key))
            .await;
        loop {
            let failed = round(
                &ctx,
                &mut tracked,
                queue.take(ROUND),
                &stopping,
                &mut retry_at,
            )
            .await;
            for key in failed {
                queue.add(&key);
            }
            let now = Instant::now();
            // With pods still queued, the next round follows once what is ready is taken.
            let wait = if queue.is_empty() {
                tracked
                    .next_timer()
                    .into_iter()
                    .chain(retry_at.values().copied())
                    .min()
                    .map(|at| at.saturating_duration_since(now))
                    .unwrap_or(Duration::from_secs(5))
                    .min(Duration::from_secs(5))
            } else {
                Duration::ZERO
            };
            tokio::select! {
                e = watcher.next() => match e {
                    Ok(e) => queue_change(&mut queue, &tracked, e),
                    Err(StoreError::Expired { .. }) => break,
                    Err(e) => { tracing::error!(error = %e, "node agent watch"); break; }
                },
                c = changes.recv() => queue_runtime_change(&mut queue, &tracked, c.ok()),
                _ = tokio::time::sleep(wait) => {}
            }
            // The runtime's changes are taken as they come, so its channel does not overflow
            // (which costs a look at every pod).
            loop {
                let sandbox = match changes.try_recv() {
                    Ok(id) => Some(id),
                    Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => None,
                    Err(_) => break,
                };
                queue_runtime_change(&mut queue, &tracked, sandbox);
            }
            while queue.len() < QUEUE_LIMIT {
                match watcher.try_next() {
                    Some(Ok(e)) => queue_change(&mut queue, &tracked, e),
                    _ => break,
                }
            }
            let now = Instant::now();
            tracked.queue_due(&mut queue, now);
            retry_at.retain(|k, at| {
                let due = *at <= now;
                if due {
                    queue.add(k);
                }
                !due
            });
        }
    }
}

type Stopping = Arc<std::sync::Mutex<HashSet<String>>>;

/// An Event a round writes: about which pod, its type, reason and message, and the container
/// it is about (`involvedObject.fieldPath`).
type NewEvent = (Arc<Object>, Kind, String, String, Option<String>);

fn locked(s: &Stopping) -> std::sync::MutexGuard<'_, HashSet<String>> {
    s.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// After its sandbox stopped, a deleted pod is gone, unless finalizers still hold it.
fn finish_deletion(ctx: &ClusterContext, key: &str) {
    let kind = ctx.objects.store_kind().to_string();
    let _ = transaction(&*ctx.objects.store, |tx| match tx.get(&kind, key)? {
        Some(p) if is_deleting(&p.value) && finalizers(&p.value).is_empty() => {
            tx.delete(&kind, key, Some(p.revision)).map(|_| ())
        }
        _ => Ok(()),
    });
}

/// Look at each pod once, then write every status change in one transaction. Returns the pods
/// to look at again: their write failed, or met a newer version of the pod.
async fn round(
    ctx: &Arc<ClusterContext>,
    tracked: &mut Tracker,
    pods: Vec<(String, Option<Arc<Object>>)>,
    stopping: &Stopping,
    retry_at: &mut HashMap<String, Instant>,
) -> Vec<String> {
    if pods.is_empty() {
        return Vec::new();
    }
    let kind = ctx.objects.store_kind().to_string();
    let mut writes: Vec<(Arc<Object>, Value)> = Vec::new();
    let mut new_events: Vec<NewEvent> = Vec::new();
    let mut finished: Vec<Arc<Object>> = Vec::new();
    for (key, seen) in pods {
        let pod = match seen {
            Some(pod) => Some(pod),
            None => ctx.objects.store.get(&kind, &key).ok().flatten(),
        };
        let Some(pod) = pod else {
            if let Some(t) = tracked.remove(&key) {
                forget(ctx, t).await;
            }
            continue;
        };
        let v = &pod.value;
        let Some(node) = PodView::of(v).node_name() else {
            continue;
        };
        // A pod recreated under the same name is a different pod.
        if let Some(t) = tracked.get(&key)
            && t.uid != uid_of(v)
            && let Some(t) = tracked.remove(&key)
        {
            forget(ctx, t).await;
        }
        if is_deleting(v) {
            retry_at.remove(&key);
            if let Some(t) = tracked.remove(&key) {
                let grace = ObjectMeta::of(v)
                    .deletion_grace_period_seconds
                    .and_then(|g| u64::try_from(g).ok())
                    .unwrap_or(30);
                locked(stopping).insert(key.clone());
                let (ctx, stopping, key) = (ctx.clone(), stopping.clone(), key.clone());
                let pod = pod.clone();
                tokio::spawn(async move {
                    stop_reporting(&ctx, &pod, &t, Duration::from_secs(grace)).await;
                    forget(&ctx, t).await;
                    finish_deletion(&ctx, &key);
                    locked(&stopping).remove(&key);
                });
            } else if !locked(stopping).contains(&key) && finalizers(v).is_empty() {
                finished.push(pod.clone());
            }
            continue;
        }
        let terminal = localfargate_registry::objects::is_finished(v);
        if !tracked.contains_key(&key) {
            if terminal {
                // A finished pod whose sandbox outlived a restart (the process runtime keeps
                // them): tracked again, so it goes when the pod does.
                if ctx.runtime.kind() != RuntimeKind::Simulated
                    && let Some(sandbox) = sandbox_of(&*ctx.runtime, uid_of(v)).await
                {
                    tracked.insert(
                        key.clone(),
                        Tracked {
                            sandbox,
                            uid: uid_of(v).to_string(),
                            own_ip: node_ip(node)
                                .is_none()
                                .then(|| PodView::of(v).pod_ip()?.parse().ok())
                                .flatten(),
                            next: None,
                            started: HashSet::new(),
                            events_seen: u64::MAX,
                            written: 0,
                        },
                    );
                }
                continue;
            }
            match start(ctx, v, node).await {
                Ok((t, warnings)) => {
                    retry_at.remove(&key);
                    tracked.insert(key.clone(), t);
                    for w in warnings {
                        new_events.push((pod.clone(), Kind::Warning, w.reason, w.message, None));
                    }
                }
                Err(e) => {
                    let (reason, message, about) = match e {
                        StartError::Sandbox(m) => ("FailedCreatePodSandBox", m, None),
                        StartError::Mount(m) => {
                            let new = waiting_status(v, None);
                            if new != *v {
                                writes.push((pod.clone(), new));
                            }
                            ("FailedMount", m, None)
                        }
                        StartError::Config { container, message } => {
                            let new = waiting_status(v, Some((&container, &message)));
                            if new != *v {
                                writes.push((pod.clone(), new));
                            }
                            ("Failed", format!("Error: {message}"), Some(container))
                        }
                    };
                    new_events.push((pod.clone(), Kind::Warning, reason.into(), message, about));
                    // The kubelet retries; so does the agent, every 10 s.
                    retry_at.insert(key.clone(), Instant::now() + Duration::from_secs(10));
                    continue;
                }
            }
        }
        let Some(t) = tracked.get_mut(&key) else {
            continue;
        };
        let status = match ctx.runtime.status(&t.sandbox).await {
            Ok(s) => s,
            Err(RuntimeError::NotFound(_)) => {
                // The sandbox is gone (a runtime restart): free what it held and start again.
                if let Some(t) = tracked.remove(&key) {
                    forget(ctx, t).await;
                }
                retry_at.insert(key.clone(), Instant::now());
                continue;
            }
            Err(e) => {
                tracing::warn!(pod = %key, error = %e, "sandbox status");
                retry_at.insert(key.clone(), Instant::now() + Duration::from_secs(1));
                continue;
            }
        };
        let now = Instant::now();
        let next = status
            .next_transition
            .map(|at| now + at.duration_since(SystemTime::now()).unwrap_or_default());

        if ctx.runtime.kind() == RuntimeKind::Simulated {
            // Nothing is pulled or created: the agent announces each first start.
            for c in &status.containers {
                if !c.state.is_waiting() && t.started.insert(c.name.clone()) {
                    let image = container_image(v, &c.name);
                    let about = Some(c.name.clone());
                    new_events.push((
                        pod.clone(),
                        Kind::Normal,
                        "Pulled".into(),
                        format!("Container image \"{image}\" already present on machine"),
                        about.clone(),
                    ));
                    new_events.push((
                        pod.clone(),
                        Kind::Normal,
                        "Created".into(),
                        format!("Created container {}", c.name),
                        about.clone(),
                    ));
                    new_events.push((
                        pod.clone(),
                        Kind::Normal,
                        "Started".into(),
                        format!("Started container {}", c.name),
                        about,
                    ));
                }
            }
        } else {
            let seen = t.events_seen;
            for e in status.events.iter().filter(|e| e.seq > seen) {
                let kind_ = if e.warning {
                    Kind::Warning
                } else {
                    Kind::Normal
                };
                new_events.push((
                    pod.clone(),
                    kind_,
                    e.reason.clone(),
                    e.message.clone(),
                    e.container.clone(),
                ));
                t.events_seen = e.seq;
            }
        }
        let ip = t.own_ip.or_else(|| node_ip(node)).map(|ip| ip.to_string());
        tracked.set_next(&key, next, now);
        let new = pod_with_status(
            v,
            &status,
            ip.as_deref(),
            &host_ip(ctx, node, ip.as_deref()),
        );
        if new != *v {
            writes.push((pod.clone(), new));
        }
    }
    let mut written: Vec<(&str, Revision)> = Vec::new();
    let mut newer: Vec<String> = Vec::new();
    let result = transaction(&*ctx.objects.store, |tx| {
        written.clear();
        newer.clear();
        for (old, new) in &writes {
            match tx.update(&kind, &old.key, new, Some(old.revision)) {
                Ok(o) => written.push((old.key.as_str(), o.revision)),
                // Written meanwhile (or the copy looked at was stale): looked at again.
                Err(StoreError::Conflict { .. }) => newer.push(old.key.clone()),
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        for old in &finished {
            match tx.delete(&kind, &old.key, Some(old.revision)) {
                Ok(_) | Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        for (involved, kind_, reason, message, container) in &new_events {
            let (key, mut event) =
                events::build(&involved.value, *kind_, reason, message, "kubelet");
            if let Some(c) = container {
                event["involvedObject"]["fieldPath"] = json!(field_path(&involved.value, c));
            }
            events::write_in(tx, &kind, &key, &event)?;
        }
        Ok(())
    });
    match result {
        Ok(()) => {
            for (key, revision) in written {
                if let Some(t) = tracked.get_mut(key) {
                    t.written = revision;
                }
            }
            newer
        }
        Err(e) => {
            tracing::warn!(error = %e, "node agent status batch failed; retrying");
            writes
                .iter()
                .map(|(o, _)| o.key.clone())
                .chain(finished.iter().map(|o| o.key.clone()))
                .collect()
        }
    }
}

/// Stops a deleted pod's sandbox within `grace`, turning what the runtime reports meanwhile
/// (`Killing`, `FailedPreStopHook`, …) into the pod's Events as it happens: the pod has left
/// the rounds that post them.
async fn stop_reporting(
    ctx: &Arc<ClusterContext>,
    pod: &Arc<Object>,
    t: &Tracked,
    grace: Duration,
) {
    let (runtime, sandbox) = (ctx.runtime.clone(), t.sandbox.clone());
    let stop = tokio::spawn(async move { runtime.stop(&sandbox, grace).await });
    if ctx.runtime.kind() == RuntimeKind::Simulated {
        let _ = stop.await;
        return;
    }
    let mut seen = t.events_seen;
    loop {
        let done = stop.is_finished();
        if let Ok(status) = ctx.runtime.status(&t.sandbox).await {
            let new: Vec<_> = status.events.iter().filter(|e| e.seq > seen).collect();
            if let Some(last) = new.last() {
                seen = last.seq;
            }
            if !new.is_empty() {
                let kind = ctx.objects.store_kind().to_string();
                let written = transaction(&*ctx.objects.store, |tx| {
                    for e in &new {
                        let type_ = if e.warning {
                            Kind::Warning
                        } else {
                            Kind::Normal
                        };
                        let (key, mut event) =
                            events::build(&pod.value, type_, &e.reason, &e.message, "kubelet");
                        if let Some(c) = &e.container {
                            event["involvedObject"]["fieldPath"] = json!(field_path(&pod.value, c));
                        }
                        events::write_in(tx, &kind, &key, &event)?;
                    }
                    Ok::<(), StoreError>(())
                });
                if let Err(e) = written {
                    tracing::warn!(pod = %pod.key, error = %e, "recording a stopping pod's events");
                }
            }
        }
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn forget(ctx: &ClusterContext, t: Tracked) {
    if let Err(e) = ctx.runtime.remove(&t.sandbox).await {
        tracing::warn!(sandbox = %t.sandbox, error = %e, "removing a sandbox");
    }
    if let Some(ip) = t.own_ip {
        ctx.release_ip(ip);
    }
}

/// Remove whatever sandbox a pod has (cluster deletion).
pub async fn remove_sandbox(runtime: &dyn SandboxRuntime, pod: &Value) {
    if let Some(id) = sandbox_of(runtime, uid_of(pod)).await {
        let _ = runtime.remove(&id).await;
    }
}

/// The sandbox running a pod, by the pod's uid.
pub async fn sandbox_of(runtime: &dyn SandboxRuntime, pod_uid: &str) -> Option<SandboxId> {
    runtime
        .sandbox_of_pod(pod_uid)
        .await
        .ok()
        .flatten()
        .map(|s| s.id)
}

fn container_image(pod: &Value, name: &str) -> String {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|k| pod["spec"][*k].as_array())
        .flatten()
        .find(|c| c["name"] == name)
        .and_then(|c| c["image"].as_str())
        .unwrap_or("")
        .to_string()
}

/// `spec.containers{name}` or `spec.initContainers{name}`: what an Event about a container
/// names as its `involvedObject.fieldPath`.
fn field_path(pod: &Value, container: &str) -> String {
    let init = pod["spec"]["initContainers"]
        .as_array()
        .is_some_and(|a| a.iter().any(|c| c["name"] == container));
    if init {
        format!("spec.initContainers{{{container}}}")
    } else {
        format!("spec.containers{{{container}}}")
    }
}

fn host_ip(ctx: &ClusterContext, node: &str, pod_ip: Option<&str>) -> String {
    if node_ip(node).is_some() {
        return pod_ip.unwrap_or_default().to_string();
    }
    ctx.objects
        .get_object(resource("", "nodes"), "", node)
        .ok()
        .flatten()
        .and_then(|n| internal_ip_of(&n.value).map(str::to_string))
        .unwrap_or_default()
}

/// `0.25vCPU 0.5GB` → (0.25, 512).
fn provisioned(pod: &Value) -> Option<(f64, u64)> {
    let text = annotation_of(pod, CAPACITY_ANNOTATION)?;
    let (cpu, mem) = text.split_once(' ')?;
    let vcpu: f64 = cpu.strip_suffix("vCPU")?.parse().ok()?;
    let gb: f64 = mem.strip_suffix("GB")?.parse().ok()?;
    Some((vcpu, (gb * 1024.0) as u64))
}

/// Why a pod's sandbox was not made, as the kubelet reports it.
enum StartError {
    /// `FailedCreatePodSandBox`.
    Sandbox(String),
    /// A container's configuration cannot be resolved (`CreateContainerConfigError`).
    Config { container: String, message: String },
    /// A volume cannot be set up (`FailedMount`).
    Mount(String),
}

/// Reads what a pod refers to from the cluster's store.
pub(crate) struct StoreRefs<'a>(pub(crate) &'a ClusterContext);

impl pod_spec::PodRefs for StoreRefs<'_> {
    fn services(&self, namespace: &str) -> Vec<Value> {
        self.0
            .objects
            .list(resource("", "services"), Some(namespace))
            .map(|(l, _)| l.iter().map(|o| o.value.clone()).collect())
            .unwrap_or_default()
    }

    fn config_map(&self, namespace: &str, name: &str) -> Option<Value> {
        self.0
            .objects
            .get_object(resource("", "configmaps"), namespace, name)
            .ok()
            .flatten()
            .map(|o| o.value.clone())
    }

    fn secret(&self, namespace: &str, name: &str) -> Option<Value> {
        self.0
            .objects
            .get_object(resource("", "secrets"), namespace, name)
            .ok()
            .flatten()
            .map(|o| o.value.clone())
    }

    fn files_are_read(&self) -> bool {
        self.0.runtime.kind() != RuntimeKind::Simulated
    }

    fn service_account_token(&self, request: &pod_spec::TokenRequest<'_>) -> Option<String> {
        let signer = self.0.tokens.as_ref()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut issued = self
            .0
            .issued_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        issued.get_or_issue(request, now, |r| {
            signer
                .issue(r, now)
                .inspect_err(|e| tracing::error!(error = %e, "service-account token"))
                .ok()
        })
    }
}

/// Where and how big a pod with address `ip` runs on `node`: what its spec is resolved with.
pub(crate) fn placement(
    ctx: &ClusterContext,
    pod: &Value,
    node: &str,
    ip: Ipv4Addr,
) -> pod_spec::PodPlacement {
    let (vcpu, memory_mib) = provisioned(pod).unwrap_or((0.25, 512));
    let (prefix_len, gateway) = ctx.subnet_of(ip).unwrap_or((24, Ipv4Addr::UNSPECIFIED));
    pod_spec::PodPlacement {
        ip,
        prefix_len,
        gateway,
        vcpu,
        memory_mib,
        node_name: node.to_string(),
        host_ip: host_ip(ctx, node, Some(&ip.to_string())),
        cluster_dns: ctx.cluster_dns,
        cluster_domain: "cluster.local".to_string(),
        region: ctx.objects.settings.region.clone(),
    }
}

async fn start(
    ctx: &ClusterContext,
    pod: &Value,
    node: &str,
) -> Result<(Tracked, Vec<pod_spec::PodWarning>), StartError> {
    let stored_ip = PodView::of(pod)
        .pod_ip()
        .and_then(|s| s.parse::<Ipv4Addr>().ok());
    // A sandbox that outlived a restart (the process runtime keeps them) runs as it is: the
    // pod is not resolved again, and its address stays taken.
    if ctx.runtime.kind() != RuntimeKind::Simulated
        && let Some(sandbox) = sandbox_of(&*ctx.runtime, uid_of(pod)).await
    {
        return Ok((
            Tracked {
                sandbox,
                uid: uid_of(pod).to_string(),
                own_ip: node_ip(node).is_none().then_some(stored_ip).flatten(),
                next: None,
                started: HashSet::new(),
                events_seen: 0,
                written: 0,
            },
            Vec::new(),
        ));
    }
    let (ip, own_ip) = match (node_ip(node), stored_ip) {
        (Some(ip), _) => (ip, None),
        // Restarted: the pod keeps the address it had (the IPAM reserved it at start-up).
        (None, Some(ip)) => (ip, Some(ip)),
        (None, None) => {
            let subnet = ctx
                .objects
                .get_object(resource("", "nodes"), "", node)
                .ok()
                .flatten()
                .and_then(|n| {
                    annotation_of(&n.value, crate::default_scheduler::SUBNET_ANNOTATION)
                        .map(str::to_string)
                })
                .ok_or_else(|| {
                    StartError::Sandbox(format!("node {node} has no subnet to take a pod IP from"))
                })?;
            let (_, ip) = ctx.allocate_ip(&[subnet], 0).map_err(StartError::Sandbox)?;
            (ip, Some(ip))
        }
    };
    let release = || {
        if let Some(ip) = own_ip {
            ctx.release_ip(ip);
        }
    };
    let placement = placement(ctx, pod, node, ip);
    let resolved = pod_spec::resolve(
        pod,
        &placement,
        &StoreRefs(ctx),
        &pod_spec::host_resolv_conf,
    )
    .map_err(|e| {
        release();
        match e {
            pod_spec::ResolveError::ContainerConfig { container, message } => {
                StartError::Config { container, message }
            }
            pod_spec::ResolveError::Volume { message, .. } => StartError::Mount(message),
            pod_spec::ResolveError::Invalid { message } => StartError::Sandbox(message),
        }
    })?;
    let spec = resolved.spec;
    let names: Vec<String> = spec.containers.iter().map(|c| c.name.clone()).collect();
    let sandbox = match ctx.runtime.create_sandbox(spec).await {
        Ok(id) => id,
        Err(RuntimeError::AlreadyExists { sandbox, .. }) => sandbox,
        Err(e) => {
            release();
            return Err(StartError::Sandbox(e.to_string()));
        }
    };
    // The pod's security groups hold before any of its containers runs.
    let enforced = crate::security_groups::admit(ctx, pod, ip).await;
    // A sandbox that cannot get going is removed before its address is given back: a retry
    // would otherwise adopt it as running (and never start its containers), with its address
    // free to be handed out again.
    let give_up = |message: String| {
        let sandbox = &sandbox;
        async move {
            if let Err(e) = ctx.runtime.remove(sandbox).await {
                tracing::warn!(%sandbox, error = %e, "removing a sandbox that could not start");
            }
            release();
            StartError::Sandbox(message)
        }
    };
    if let Err(e) = enforced {
        return Err(give_up(format!("enforcing the pod's security groups: {e}")).await);
    }
    for name in &names {
        if let Err(e) = ctx.runtime.start_container(&sandbox, name).await {
            return Err(give_up(e.to_string()).await);
        }
    }
    Ok((
        Tracked {
            sandbox,
            uid: uid_of(pod).to_string(),
            own_ip,
            next: None,
            started: HashSet::new(),
            events_seen: 0,
            written: 0,
        },
        resolved.warnings,
    ))
}

/// The status of a pod whose sandbox could not be made: every container waits with
/// `ContainerCreating` (a volume that cannot be set up), or one, `failed`, with
/// `CreateContainerConfigError` and its message; conditions as the kubelet's for such a pod.
fn waiting_status(pod: &Value, failed: Option<(&str, &str)>) -> Value {
    let mut p = pod.clone();
    let waiting = |name: &str| {
        if let Some((_, message)) = failed.filter(|(f, _)| *f == name) {
            json!({"reason": "CreateContainerConfigError", "message": message})
        } else {
            json!({"reason": "ContainerCreating"})
        }
    };
    let statuses = |key: &str| -> Vec<Value> {
        pod["spec"][key]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str())
                    .map(|name| {
                        json!({
                            "name": name,
                            "image": container_image(pod, name),
                            "imageID": "",
                            "ready": false,
                            "started": false,
                            "restartCount": 0,
                            "state": {"waiting": waiting(name)},
                            "lastState": {},
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    if !p["status"].is_object() {
        p["status"] = json!({});
    }
    let init = statuses("initContainers");
    if !init.is_empty() {
        p["status"]["initContainerStatuses"] = json!(init);
    }
    p["status"]["containerStatuses"] = json!(statuses("containers"));
    p["status"]["phase"] = json!("Pending");
    if p["status"]["startTime"].is_null() {
        p["status"]["startTime"] = json!(rfc3339(SystemTime::now()));
    }
    let names = |key: &str| -> Vec<String> {
        pod["spec"][key]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    set_pod_conditions(
        &mut p,
        false,
        &names("initContainers"),
        &names("containers"),
        "Pending",
    );
    p
}

/// The conditions the kubelet writes (its `status/generate.go`): the sandbox's
/// `PodReadyToStartContainers`; `Initialized` unless init containers are `incomplete`;
/// `ContainersReady` and `Ready` unless containers are `unready`, or the pod has finished.
/// Messages list the containers as Go prints a `[]string`.
fn set_pod_conditions(
    p: &mut Value,
    sandbox_ready: bool,
    incomplete: &[String],
    unready: &[String],
    phase: &str,
) {
    set_condition(p, "PodReadyToStartContainers", sandbox_ready, None, None);
    let initialized = if phase == "Succeeded" {
        (true, Some("PodCompleted"), None)
    } else if incomplete.is_empty() {
        (true, None, None)
    } else {
        (
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
        )
    };
    set_condition(
        p,
        "Initialized",
        initialized.0,
        initialized.1,
        initialized.2.as_deref(),
    );
    let ready = match phase {
        "Succeeded" => (false, Some("PodCompleted"), None),
        "Failed" => (false, Some("PodFailed"), None),
        _ if unready.is_empty() => (true, None, None),
        _ => (
            false,
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        ),
    };
    for kind in ["ContainersReady", "Ready"] {
        set_condition(p, kind, ready.0, ready.1, ready.2.as_deref());
    }
}

fn rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(localfargate_registry::objects::rfc3339)
        .unwrap_or_default()
}

fn state_json(state: &ContainerState, container_id: &str) -> Value {
    match state {
        ContainerState::Waiting { reason, message } => {
            let mut w = json!({"reason": reason});
            if let Some(m) = message {
                w["message"] = json!(m);
            }
            json!({"waiting": w})
        }
        ContainerState::Running { started_at } => {
            json!({"running": {"startedAt": rfc3339(*started_at)}})
        }
        ContainerState::Terminated {
            exit_code,
            reason,
            message,
            started_at,
            finished_at,
        } => {
            let mut t = json!({
                "exitCode": exit_code,
                "reason": reason,
                "startedAt": rfc3339(*started_at),
                "finishedAt": rfc3339(*finished_at),
            });
            if !container_id.is_empty() {
                t["containerID"] = json!(container_id);
            }
            if let Some(m) = message {
                t["message"] = json!(m);
            }
            json!({"terminated": t})
        }
    }
}

/// The pod's status as its sandbox's state says.
fn pod_with_status(pod: &Value, s: &SandboxStatus, ip: Option<&str>, host_ip: &str) -> Value {
    let mut p = pod.clone();
    let view = PodView::of(pod);
    let restart = view.restart_policy();
    let ready_sandbox = s.ready_at.is_some();
    let mut statuses = (Vec::new(), Vec::new());
    let (mut init_done, mut any_running) = (true, false);
    let (mut all_terminated, mut all_succeeded) = (true, true);
    let (mut incomplete, mut unready, mut any_started) = (Vec::new(), Vec::new(), false);
    for c in &s.containers {
        let id = c.container_id.clone().unwrap_or_default();
        let running = c.state.is_running();
        let mut st = json!({
            "name": c.name,
            "image": c.image.clone().unwrap_or_else(|| container_image(pod, &c.name)),
            "imageID": c.image_id.clone().unwrap_or_default(),
            "ready": c.ready && running,
            "started": c.started && running,
            "restartCount": c.restart_count,
            "state": state_json(&c.state, &id),
            "lastState": c.last_state.as_ref().map(|l| state_json(l, &id)).unwrap_or(json!({})),
        });
        if c.container_id.is_some() && (!c.state.is_waiting() || c.last_state.is_some()) {
            st["containerID"] = json!(id);
        }
        if c.init {
            if c.state.exit_code() != Some(0) {
                init_done = false;
                incomplete.push(c.name.clone());
            }
            st["ready"] = json!(c.state.exit_code() == Some(0));
            statuses.0.push(st);
        } else {
            if !(c.ready && running) {
                unready.push(c.name.clone());
            }
            any_started |= !c.state.is_waiting() || c.last_state.is_some();
            any_running |= running;
            match c.state.exit_code() {
                Some(0) => {}
                Some(_) => all_succeeded = false,
                None => {
                    all_terminated = false;
                    all_succeeded = false;
                }
            }
            statuses.1.push(st);
        }
    }
    let phase = if all_terminated && restart != "Always" && init_done {
        if all_succeeded {
            "Succeeded"
        } else if restart == "Never" {
            "Failed"
        } else {
            "Running"
        }
    } else if ready_sandbox
        && init_done
        && (any_running
            || s.containers
                .iter()
                .any(|c| !c.init && !c.state.is_waiting()))
    {
        "Running"
    } else {
        "Pending"
    };
    // A terminal phase stays (the API server keeps pods from leaving it): a pod the eviction
    // manager failed keeps `Failed` while its containers are killed and restart no more.
    let phase = match view.phase() {
        Some(done @ ("Succeeded" | "Failed")) => done,
        _ => phase,
    };
    let status = &mut p["status"];
    if !status.is_object() {
        *status = json!({});
    }
    status["phase"] = json!(phase);
    if let Some(ip) = ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    if !host_ip.is_empty() {
        status["hostIP"] = json!(host_ip);
        status["hostIPs"] = json!([{"ip": host_ip}]);
    }
    if status["startTime"].is_null() {
        status["startTime"] = json!(rfc3339(s.created_at));
    }
    if !statuses.0.is_empty() {
        status["initContainerStatuses"] = json!(statuses.0);
    }
    status["containerStatuses"] = json!(statuses.1);
    // A pod whose containers have started has been initialized (its init containers'
    // statuses may be gone or restarting), as the kubelet says.
    if any_started {
        incomplete.clear();
    }
    set_pod_conditions(&mut p, ready_sandbox, &incomplete, &unready, phase);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str, revision: Revision, node: &str) -> Event {
        Event {
            event_type: EventType::Modified,
            object: Arc::new(Object {
                kind: "k8s/c".into(),
                key: key.into(),
                value: json!({"spec": {"nodeName": node}}),
                revision,
                created: 1,
            }),
        }
    }

    fn tracked(written: Revision, next: Option<Instant>) -> Tracked {
        Tracked {
            sandbox: SandboxId("sim-1".into()),
            uid: "u".into(),
            own_ip: None,
            next,
            started: HashSet::new(),
            events_seen: 0,
            written,
        }
    }

    #[test]
    fn the_queue_is_first_in_first_out_and_keeps_the_latest_copy() {
        let mut q = Queue::default();
        for k in ["a", "b", "c"] {
            q.add(k);
        }
        q.set("a", Some(change("a", 7, "n").object));
        q.add("a");
        let first: Vec<_> = q.take(2);
        assert_eq!(
            first.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(first[0].1.as_ref().map(|o| o.revision), Some(7));
        q.add("d");
        let rest: Vec<_> = q.take(10).into_iter().map(|(k, _)| k).collect();
        assert_eq!(rest, ["c", "d"]);
        assert!(q.is_empty());
    }

    #[test]
    fn changes_the_agent_wrote_over_or_to_unbound_pods_are_not_queued() {
        let mut t = Tracker::default();
        t.insert("p".into(), tracked(10, None));
        let mut q = Queue::default();
        queue_change(&mut q, &t, change("p", 9, "n"));
        queue_change(&mut q, &t, change("p", 10, "n"));
        queue_change(&mut q, &t, change("u", 3, ""));
        assert!(
            q.is_empty(),
            "older than, or the agent's own write, or unbound"
        );
        queue_change(&mut q, &t, change("p", 11, "n"));
        assert_eq!(q.take(1)[0].1.as_ref().map(|o| o.revision), Some(11));
    }

    #[test]
    fn due_timers_queue_their_pods_and_moved_ones_are_dropped() {
        let now = Instant::now();
        let (soon, later) = (
            now - Duration::from_millis(1),
            now + Duration::from_secs(60),
        );
        let mut t = Tracker::default();
        t.insert("due".into(), tracked(0, Some(soon)));
        t.insert("moved".into(), tracked(0, Some(later)));
        t.wake_at("due", soon);
        t.wake_at("moved", soon);
        t.wake_at("moved", later);
        let mut q = Queue::default();
        t.queue_due(&mut q, now);
        let due: Vec<_> = q.take(10).into_iter().map(|(k, _)| k).collect();
        assert_eq!(due, ["due"]);
        assert_eq!(t.next_timer(), Some(later));
    }

    #[test]
    fn a_transition_read_again_keeps_its_timer() {
        let now = Instant::now();
        let at = now + Duration::from_millis(50);
        let mut t = Tracker::default();
        t.insert("p".into(), tracked(0, None));
        t.set_next("p", Some(at), now);
        // Read again a little later, a hair apart: the pending timer stands, and fires.
        t.set_next("p", Some(at + Duration::from_micros(300)), now);
        assert_eq!(t.timers.len(), 1);
        let mut q = Queue::default();
        t.queue_due(&mut q, at);
        assert_eq!(
            q.take(1).len(),
            1,
            "the pod is looked at when its timer comes up"
        );
        // Once it has come up, the next reading sets a new one.
        t.set_next(
            "p",
            Some(at + Duration::from_millis(100)),
            at + Duration::from_millis(1),
        );
        assert_eq!(t.next_timer(), Some(at + Duration::from_millis(100)));
        // No next transition: the pending timer is dropped when it comes up.
        t.set_next("p", None, at + Duration::from_millis(2));
        t.queue_due(&mut q, at + Duration::from_secs(1));
        assert!(q.is_empty());
    }
}
