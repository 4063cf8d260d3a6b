//! Server-side printing: the columns and row cells of a `meta.k8s.io/v1` Table, which kubectl
//! asks for on every `get` and prints as it is (it has no client-side printers for these kinds).
//!
//! Column names, types and cell values follow upstream's `pkg/printers/internalversion`, which
//! the API server runs with `wide` on, so every row carries the priority-1 cells too and kubectl
//! picks the columns to show. Ages are rendered here, as `duration.HumanDuration` does, because
//! kubectl prints a date cell verbatim.
//!
//! Everything is a pure function of the object (Kubernetes JSON form) and the current time.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::Resource;
use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetStatus, Deployment, DeploymentStatus, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::batch::v1::{CronJob, Job, JobCondition};
use k8s_openapi::api::core::v1::{
    Container, ContainerStateTerminated, ContainerStatus, Namespace, Node, NodeCondition,
    NodeSystemInfo, Pod, PodCondition, PodSpec, ReplicationController,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector as K8sLabelSelector, Time};
use localfargate_registry::meta::name_of;
use localfargate_registry::typed;
use serde::de::DeserializeOwned;

use localfargate_registry::meta::creation_timestamp_of;
use serde_json::{Value, json};

use localfargate_core::selectors::LabelSelector;

/// Upstream's `duration.HumanDuration` (<120s "Ns", <10m "MmSs" (omit 0s -> "Mm"), <3h "Mm",
/// <8h "HhMm", <48h "Hh", <8d "DdHh", <2y "Dd", else "YyDd"/"Yy"); negative/zero durations as
/// upstream does.
pub fn human_duration(d: Duration) -> String {
    human_nanos(i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// [`human_duration`] over a signed span: a clock slightly behind (under 2s) reads `0s`, more
/// than that `<invalid>`.
fn human_nanos(nanos: i128) -> String {
    const SECOND: i128 = 1_000_000_000;
    const MINUTE: i128 = 60 * SECOND;
    const HOUR: i128 = 60 * MINUTE;
    // Division truncates toward zero, as Go's `int(d.Seconds())` does.
    let seconds = nanos / SECOND;
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = nanos / MINUTE;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 3 * 60 {
        return format!("{minutes}m");
    }
    let hours = nanos / HOUR;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return match days % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        };
    }
    format!("{years}y")
}

/// metav1.TableColumnDefinition JSON objects ({"name","type","format","description","priority"})
/// for a resource, identified by API group ("" for core) and plural resource name.
pub fn columns(group: &str, resource: &str) -> Vec<Value> {
    printer(group, resource)
        .columns
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.kind,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect()
}

/// The row cells for one object, matching `columns` (same length, in order).
pub fn cells(group: &str, resource: &str, object: &Value, now: Timestamp) -> Vec<Value> {
    (printer(group, resource).cells)(object, now)
}

// ---------------------------------------------------------------------------------------------
// Column sets
// ---------------------------------------------------------------------------------------------

struct Column {
    name: &'static str,
    /// `string`, `integer` or `boolean`.
    kind: &'static str,
    format: &'static str,
    description: &'static str,
    priority: u8,
}

const fn col(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind,
        format: "",
        description,
        priority: 0,
    }
}

/// A column only `-o wide` shows.
const fn wide(name: &'static str, description: &'static str) -> Column {
    Column {
        priority: 1,
        ..col(name, "string", description)
    }
}

const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const CONTAINERS_DOC: &str = "Names of each container in the template.";
const IMAGES_DOC: &str = "Images referenced by each container in the template.";
const SELECTOR_DOC: &str = "A label query over pods that should match the replica count. It must match the pod template's labels.";

const NAME: Column = Column {
    format: "name",
    ..col("Name", "string", NAME_DOC)
};
const AGE: Column = col("Age", "string", AGE_DOC);
const CONTAINERS: Column = wide("Containers", CONTAINERS_DOC);
const IMAGES: Column = wide("Images", IMAGES_DOC);
const SELECTOR: Column = wide("Selector", SELECTOR_DOC);

const POD_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    col(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    col(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    wide(
        "IP",
        "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
    ),
    wide(
        "Node",
        "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName.",
    ),
    wide(
        "Nominated Node",
        "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.",
    ),
    wide(
        "Readiness Gates",
        "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\"",
    ),
];

const NODE_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", "Kubelet Version reported by the node."),
    wide("Internal-IP", "List of addresses reachable to the node."),
    wide("External-IP", "List of addresses reachable to the node."),
    wide(
        "OS-Image",
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
    ),
    wide(
        "Kernel-Version",
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
    ),
    wide(
        "Container-Runtime",
        "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
    ),
];

const NAMESPACE_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];

const EVENT_COLUMNS: &[Column] = &[
    col(
        "Last Seen",
        "string",
        "The time at which the most recent occurrence of this event was recorded.",
    ),
    col(
        "Type",
        "string",
        "Type of this event (Normal, Warning), new types could be added in the future",
    ),
    col(
        "Reason",
        "string",
        "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
    ),
    col("Object", "string", "The object that this event is about."),
    wide(
        "Subobject",
        "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].",
    ),
    wide(
        "Source",
        "The component reporting this event. Should be a short machine understandable string.",
    ),
    col(
        "Message",
        "string",
        "A human-readable description of the status of this operation.",
    ),
    wide(
        "First Seen",
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
    ),
    wide("Count", "The number of times this event has occurred."),
    Column {
        format: "name",
        ..wide("Name", NAME_DOC)
    },
];

const CONFIGMAP_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Data",
        "string",
        "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'.",
    ),
    AGE,
];

const SECRET_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Type",
        "string",
        "Used to facilitate programmatic handling of secret data.",
    ),
    col(
        "Data",
        "string",
        "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'.",
    ),
    AGE,
];

const SERVICEACCOUNT_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Secrets",
        "string",
        "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
    ),
    AGE,
];

const DEPLOYMENT_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col(
        "Up-to-date",
        "string",
        "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
    ),
    col(
        "Available",
        "string",
        "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

const REPLICASET_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Desired",
        "integer",
        "Replicas is the number of desired replicas.",
    ),
    col(
        "Current",
        "integer",
        "Replicas is the most recently observed number of replicas.",
    ),
    col(
        "Ready",
        "integer",
        "The number of ready replicas for this replica set.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

const DAEMONSET_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Desired",
        "integer",
        "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod).",
    ),
    col(
        "Current",
        "integer",
        "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
    ),
    col(
        "Ready",
        "integer",
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
    ),
    col(
        "Up-to-date",
        "integer",
        "The total number of nodes that are running updated daemon pod",
    ),
    col(
        "Available",
        "integer",
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
    ),
    col(
        "Node Selector",
        "string",
        "NodeSelector is a selector which must be true for the pod to fit on a node.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

const STATEFULSET_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    AGE,
    CONTAINERS,
    IMAGES,
];

const JOB_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "Status of the job."),
    col(
        "Completions",
        "string",
        "The number of pods which reached phase Succeeded.",
    ),
    col("Duration", "string", "Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

const CRONJOB_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Schedule",
        "string",
        "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
    ),
    col(
        "Timezone",
        "string",
        "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones.",
    ),
    col(
        "Suspend",
        "boolean",
        "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.",
    ),
    col(
        "Active",
        "integer",
        "A list of pointers to currently running jobs.",
    ),
    col(
        "Last Schedule",
        "string",
        "Information when was the last time the job was successfully scheduled.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

const FARGATE_PROFILE_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Status",
        "string",
        "The EKS status of the Fargate profile (CREATING, ACTIVE, DELETING, …).",
    ),
    col(
        "Selectors",
        "string",
        "The namespaces and labels of the pods the profile runs on Fargate.",
    ),
    col(
        "Pods",
        "integer",
        "The number of pods running on Fargate under this profile.",
    ),
    AGE,
    wide(
        "Pod Execution Role ARN",
        "The IAM role the profile's pods run with.",
    ),
    wide("Subnets", "The subnets the profile's pods are placed in."),
];

/// Kinds without a printer of their own (upstream shows a CRD's Name and Created At; a date
/// prints verbatim, so this shows an age).
const DEFAULT_COLUMNS: &[Column] = &[NAME, AGE];

/// Renders one object's row.
type Cells = fn(&Value, Timestamp) -> Vec<Value>;

struct Printer {
    columns: &'static [Column],
    cells: Cells,
}

fn printer(group: &str, resource: &str) -> Printer {
    let (columns, cells): (&'static [Column], Cells) = match (group, resource) {
        ("", "pods") => (POD_COLUMNS, |v, now| typed_cells::<Pod>(v, now, pod_cells)),
        ("", "nodes") => (NODE_COLUMNS, |v, now| {
            typed_cells::<Node>(v, now, node_cells)
        }),
        ("", "namespaces") => (NAMESPACE_COLUMNS, |v, now| {
            typed_cells::<Namespace>(v, now, namespace_cells)
        }),
        ("", "events") => (EVENT_COLUMNS, event_cells),
        // The same Events in their events.k8s.io form: printed as upstream prints them (its
        // printer works on the one internal type).
        ("events.k8s.io", "events") => (EVENT_COLUMNS, |v, now| {
            event_cells(&localfargate_registry::events_v1::to_core(v), now)
        }),
        ("", "configmaps") => (CONFIGMAP_COLUMNS, configmap_cells),
        ("", "secrets") => (SECRET_COLUMNS, secret_cells),
        ("", "serviceaccounts") => (SERVICEACCOUNT_COLUMNS, serviceaccount_cells),
        ("apps", "deployments") => (DEPLOYMENT_COLUMNS, |v, now| {
            typed_cells::<Deployment>(v, now, deployment_cells)
        }),
        ("apps", "replicasets") => (REPLICASET_COLUMNS, |v, now| {
            typed_cells::<ReplicaSet>(v, now, replicaset_cells)
        }),
        // Upstream prints ReplicationControllers with the ReplicaSet columns; the selector is
        // a label map.
        ("", "replicationcontrollers") => (REPLICASET_COLUMNS, |v, now| {
            typed_cells::<ReplicationController>(v, now, replication_controller_cells)
        }),
        ("apps", "daemonsets") => (DAEMONSET_COLUMNS, |v, now| {
            typed_cells::<DaemonSet>(v, now, daemonset_cells)
        }),
        ("apps", "statefulsets") => (STATEFULSET_COLUMNS, |v, now| {
            typed_cells::<StatefulSet>(v, now, statefulset_cells)
        }),
        ("batch", "jobs") => (JOB_COLUMNS, |v, now| typed_cells::<Job>(v, now, job_cells)),
        ("batch", "cronjobs") => (CRONJOB_COLUMNS, |v, now| {
            typed_cells::<CronJob>(v, now, cronjob_cells)
        }),
        ("eks.localfargate.io", "fargateprofiles") => {
            (FARGATE_PROFILE_COLUMNS, fargate_profile_cells)
        }
        _ => cluster_kinds::printer(group, resource)
            .or_else(|| platform_kinds::printer(group, resource))
            .unwrap_or((DEFAULT_COLUMNS, default_cells)),
    };
    Printer { columns, cells }
}

// ---------------------------------------------------------------------------------------------
// Reading objects
// ---------------------------------------------------------------------------------------------

/// The string at a JSON pointer, `""` when missing.
fn text<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The integer at a JSON pointer, `default` when missing.
fn int(v: &Value, ptr: &str, default: i64) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(default)
}

fn items<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The number of entries of an object or list at a JSON pointer.
fn count(v: &Value, ptr: &str) -> i64 {
    let n = match v.pointer(ptr) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    };
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "<none>" } else { s }
}

fn timestamp(v: &Value, ptr: &str) -> Option<Timestamp> {
    text(v, ptr).parse().ok()
}

/// Upstream's `translateTimestampSince`: the age of a timestamp, `<unknown>` when unset.
fn since(t: Option<Timestamp>, now: Timestamp) -> String {
    match t {
        Some(t) => human_nanos(now.as_nanosecond() - t.as_nanosecond()),
        None => "<unknown>".into(),
    }
}

fn age(object: &Value, now: Timestamp) -> Value {
    let created = creation_timestamp_of(object).and_then(|t| t.parse().ok());
    since(created, now).into()
}

fn name(object: &Value) -> Value {
    name_of(object).into()
}

/// A condition of a built-in kind's status (their types differ; the printers read two fields).
trait Condition {
    fn kind(&self) -> &str;
    fn status(&self) -> &str;
}

macro_rules! conditions {
    ($($t:ty),*) => {$(
        impl Condition for $t {
            fn kind(&self) -> &str {
                &self.type_
            }
            fn status(&self) -> &str {
                &self.status
            }
        }
    )*};
}

conditions!(PodCondition, NodeCondition, JobCondition);

/// Whether the first condition of this type has status `True`.
fn condition_true<C: Condition>(conditions: &[C], kind: &str) -> bool {
    conditions
        .iter()
        .find(|c| c.kind() == kind)
        .is_some_and(|c| c.status() == "True")
}

/// A built-in object's cells from its k8s-openapi type. One that does not decode (a bug: the
/// API validated it) is logged and printed as an empty object of its kind, under its name.
fn typed_cells<K: Resource + DeserializeOwned + Default>(
    object: &Value,
    now: Timestamp,
    cells: fn(&K, &Value, Timestamp) -> Vec<Value>,
) -> Vec<Value> {
    let typed = typed::decode_or_log::<K>(object).unwrap_or_default();
    cells(&typed, object, now)
}

fn time(t: Option<&Time>) -> Option<Timestamp> {
    t.map(|t| t.0)
}

fn string(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

/// Upstream's `metav1.FormatLabelSelector`: `<none>` when empty, `<error>` when invalid.
fn format_selector(selector: &Value) -> Value {
    match LabelSelector::from_json(selector) {
        Ok(s) if s.is_empty() => "<none>".into(),
        Ok(s) => s.to_string().into(),
        Err(_) => "<error>".into(),
    }
}

/// Upstream's `layoutContainerCells`: a pod template's container names and images,
/// comma-separated.
fn template_containers(spec: Option<&PodSpec>) -> [Value; 2] {
    let list = spec.map_or(&[][..], |s| s.containers.as_slice());
    let join = |field: fn(&Container) -> &str| list.iter().map(field).collect::<Vec<_>>().join(",");
    [
        join(|c| &c.name).into(),
        join(|c| c.image.as_deref().unwrap_or("")).into(),
    ]
}

/// [`format_selector`] of a typed selector.
fn format_typed_selector(selector: Option<&K8sLabelSelector>) -> Value {
    match selector {
        None => "<none>".into(),
        Some(s) => match typed::to_json(s) {
            Ok(v) => format_selector(&v),
            Err(_) => "<error>".into(),
        },
    }
}

/// Upstream's `labels.FormatLabels`: `k=v` sorted by key, comma-separated; `<none>` if empty.
fn format_label_map(labels: Option<&BTreeMap<String, String>>) -> String {
    let s = labels
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    or_none(&s).to_string()
}

// ---------------------------------------------------------------------------------------------
// Pods
// ---------------------------------------------------------------------------------------------

/// What upstream's `printPod` works out from the container statuses.
struct PodSummary {
    ready: usize,
    total: usize,
    reason: String,
    restarts: i64,
    last_restart: Option<Timestamp>,
}

fn later(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    a.max(b)
}

/// When a container last terminated, from its last state.
fn last_finished(cs: &ContainerStatus) -> Option<Timestamp> {
    time(
        cs.last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.finished_at.as_ref()),
    )
}

fn waiting_reason(cs: &ContainerStatus) -> &str {
    cs.state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.as_deref())
        .unwrap_or("")
}

fn pod_summary(pod: &Pod) -> PodSummary {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
    let status_reason = status.and_then(|s| s.reason.as_deref()).unwrap_or("");
    let mut reason = match status_reason {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    if conditions
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated"))
    {
        reason = "SchedulingGated".into();
    }

    let spec = pod.spec.as_ref();
    let init_specs = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let always = |c: &&Container| c.restart_policy.as_deref() == Some("Always");
    let restartable = |name: &str| init_specs.iter().filter(always).any(|c| c.name == name);
    let mut total = spec.map_or(0, |s| s.containers.len());
    total += init_specs.iter().filter(always).count();

    let mut ready = 0;
    let mut restarts = 0;
    let mut last_restart = None;
    let mut sidecar_restarts = 0;
    let mut sidecar_last_restart = None;
    let mut initializing = false;
    let init_statuses = status
        .and_then(|s| s.init_container_statuses.as_deref())
        .unwrap_or_default();
    for (i, cs) in init_statuses.iter().enumerate() {
        let count = i64::from(cs.restart_count);
        let finished = last_finished(cs);
        restarts += count;
        last_restart = later(last_restart, finished);
        let sidecar = restartable(&cs.name);
        if sidecar {
            sidecar_restarts += count;
            sidecar_last_restart = later(sidecar_last_restart, finished);
        }
        let terminated = cs.state.as_ref().and_then(|s| s.terminated.as_ref());
        let waiting_reason = waiting_reason(cs);
        if terminated.is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if sidecar && cs.started == Some(true) {
            if cs.ready {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            match string(&t.reason) {
                "" => format!("Init:{}", exit_reason(t)),
                r => format!("Init:{r}"),
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true(conditions, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = sidecar_last_restart;
        let mut has_running = false;
        let statuses = status
            .and_then(|s| s.container_statuses.as_deref())
            .unwrap_or_default();
        for cs in statuses.iter().rev() {
            restarts += i64::from(cs.restart_count);
            last_restart = later(last_restart, last_finished(cs));
            let state = cs.state.as_ref();
            let terminated = state.and_then(|s| s.terminated.as_ref());
            let waiting_reason = waiting_reason(cs);
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                reason = match string(&t.reason) {
                    "" => exit_reason(t),
                    r => r.to_string(),
                };
            } else if cs.ready && state.is_some_and(|s| s.running.is_some()) {
                has_running = true;
                ready += 1;
            }
        }
        // A completed container beside a running one: the pod is still up.
        if reason == "Completed" && has_running {
            reason = if condition_true(conditions, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    if pod.metadata.deletion_timestamp.is_some() {
        if status_reason == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }

    PodSummary {
        ready,
        total,
        reason,
        restarts,
        last_restart,
    }
}

/// `Signal:N` or `ExitCode:N` for a terminated state without a reason.
fn exit_reason(terminated: &ContainerStateTerminated) -> String {
    match terminated.signal.unwrap_or(0) {
        0 => format!("ExitCode:{}", terminated.exit_code),
        signal => format!("Signal:{signal}"),
    }
}

fn pod_cells(pod: &Pod, object: &Value, now: Timestamp) -> Vec<Value> {
    let s = pod_summary(pod);
    let restarts = match s.last_restart {
        Some(t) if s.restarts != 0 => format!("{} ({} ago)", s.restarts, since(Some(t), now)),
        _ => s.restarts.to_string(),
    };
    let status = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let first_ip = status
        .and_then(|s| s.pod_ips.as_deref())
        .and_then(|ips| ips.first())
        .map_or("", |ip| ip.ip.as_str());
    let ip = match first_ip {
        "" => status.and_then(|s| s.pod_ip.as_deref()).unwrap_or(""),
        ip => ip,
    };
    let gates = spec
        .and_then(|s| s.readiness_gates.as_deref())
        .unwrap_or_default();
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = status
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default();
        let met = gates
            .iter()
            .filter(|g| condition_true(conditions, &g.condition_type))
            .count();
        format!("{met}/{}", gates.len())
    };
    vec![
        name(object),
        format!("{}/{}", s.ready, s.total).into(),
        s.reason.into(),
        restarts.into(),
        age(object, now),
        or_none(ip).into(),
        or_none(spec.and_then(|s| s.node_name.as_deref()).unwrap_or("")).into(),
        or_none(
            status
                .and_then(|s| s.nominated_node_name.as_deref())
                .unwrap_or(""),
        )
        .into(),
        readiness_gates.into(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Other core kinds
// ---------------------------------------------------------------------------------------------

fn node_cells(node: &Node, object: &Value, now: Timestamp) -> Vec<Value> {
    let status = node.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == "Ready");
    let mut state = vec![match ready {
        Some(c) if c.status == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        state.push("SchedulingDisabled");
    }
    // Roles from `node-role.kubernetes.io/<role>` keys and a `kubernetes.io/role` value.
    let mut roles: Vec<&str> = node
        .metadata
        .labels
        .iter()
        .flatten()
        .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
            Some(role) => Some(role),
            None if k == "kubernetes.io/role" => Some(v.as_str()),
            None => None,
        })
        .filter(|r| !r.is_empty())
        .collect();
    roles.sort_unstable();
    roles.dedup();
    let address = |kind: &str| {
        status
            .and_then(|s| s.addresses.as_deref())
            .unwrap_or_default()
            .iter()
            .find(|a| a.type_ == kind)
            .map_or("<none>", |a| a.address.as_str())
            .to_string()
    };
    let node_info = status.and_then(|s| s.node_info.as_ref());
    let info = |field: fn(&NodeSystemInfo) -> &str| match node_info.map_or("", field) {
        "" => "<unknown>".to_string(),
        v => v.to_string(),
    };
    vec![
        name(object),
        state.join(",").into(),
        or_none(&roles.join(",")).into(),
        age(object, now),
        node_info.map_or("", |i| &i.kubelet_version).into(),
        address("InternalIP").into(),
        address("ExternalIP").into(),
        info(|i| &i.os_image).into(),
        info(|i| &i.kernel_version).into(),
        info(|i| &i.container_runtime_version).into(),
    ]
}

fn namespace_cells(ns: &Namespace, object: &Value, now: Timestamp) -> Vec<Value> {
    let phase = ns.status.as_ref().and_then(|s| s.phase.as_deref());
    vec![name(object), phase.unwrap_or("").into(), age(object, now)]
}

fn event_cells(event: &Value, now: Timestamp) -> Vec<Value> {
    let first = match timestamp(event, "/firstTimestamp") {
        Some(t) => since(Some(t), now),
        None => since(timestamp(event, "/eventTime"), now),
    };
    let mut last = match timestamp(event, "/lastTimestamp") {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = int(event, "/count", 0);
    if event.get("series").is_some_and(Value::is_object) {
        last = since(timestamp(event, "/series/lastObservedTime"), now);
        count = int(event, "/series/count", 0);
    } else if count == 0 {
        // Events from the events.k8s.io API leave the count unset when they happened once.
        count = 1;
    }
    let kind = text(event, "/involvedObject/kind").to_lowercase();
    let object = match text(event, "/involvedObject/name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let component = match text(event, "/source/component") {
        "" => text(event, "/reportingComponent"),
        c => c,
    };
    let source = match text(event, "/source/host") {
        "" => match text(event, "/reportingInstance") {
            "" => component.to_string(),
            instance => format!("{component}, {instance}"),
        },
        host => format!("{component}, {host}"),
    };
    vec![
        last.into(),
        text(event, "/type").into(),
        text(event, "/reason").into(),
        object.into(),
        text(event, "/involvedObject/fieldPath").into(),
        source.into(),
        text(event, "/message").trim().into(),
        first.into(),
        count.into(),
        name(event),
    ]
}

fn configmap_cells(cm: &Value, now: Timestamp) -> Vec<Value> {
    let data = count(cm, "/data") + count(cm, "/binaryData");
    vec![name(cm), data.into(), age(cm, now)]
}

fn secret_cells(secret: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(secret),
        text(secret, "/type").into(),
        count(secret, "/data").into(),
        age(secret, now),
    ]
}

fn serviceaccount_cells(sa: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(sa), count(sa, "/secrets").into(), age(sa, now)]
}

// ---------------------------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------------------------

/// `spec.replicas`, which the API server defaults to 1.
fn desired_replicas(replicas: Option<i32>) -> i64 {
    i64::from(replicas.unwrap_or(1))
}

fn deployment_cells(d: &Deployment, object: &Value, now: Timestamp) -> Vec<Value> {
    let spec = d.spec.as_ref();
    let status = d.status.as_ref();
    let [names, images] = template_containers(spec.and_then(|s| s.template.spec.as_ref()));
    let selector = spec
        .map_or_else(
            || Ok(LabelSelector::default()),
            |s| LabelSelector::from_typed(&s.selector),
        )
        .map_or_else(|_| "<invalid>".to_string(), |s| s.to_string());
    let of_status = |field: fn(&DeploymentStatus) -> Option<i32>| {
        i64::from(status.and_then(field).unwrap_or(0))
    };
    vec![
        name(object),
        format!(
            "{}/{}",
            of_status(|s| s.ready_replicas),
            desired_replicas(spec.and_then(|s| s.replicas))
        )
        .into(),
        of_status(|s| s.updated_replicas).into(),
        of_status(|s| s.available_replicas).into(),
        age(object, now),
        names,
        images,
        selector.into(),
    ]
}

fn replicaset_cells(rs: &ReplicaSet, object: &Value, now: Timestamp) -> Vec<Value> {
    let spec = rs.spec.as_ref();
    let status = rs.status.as_ref();
    let [names, images] = template_containers(
        spec.and_then(|s| s.template.as_ref())
            .and_then(|t| t.spec.as_ref()),
    );
    vec![
        name(object),
        desired_replicas(spec.and_then(|s| s.replicas)).into(),
        i64::from(status.map_or(0, |s| s.replicas)).into(),
        i64::from(status.and_then(|s| s.ready_replicas).unwrap_or(0)).into(),
        age(object, now),
        names,
        images,
        format_typed_selector(spec.map(|s| &s.selector)),
    ]
}

fn replication_controller_cells(
    rc: &ReplicationController,
    object: &Value,
    now: Timestamp,
) -> Vec<Value> {
    let spec = rc.spec.as_ref();
    let status = rc.status.as_ref();
    let [names, images] = template_containers(
        spec.and_then(|s| s.template.as_ref())
            .and_then(|t| t.spec.as_ref()),
    );
    vec![
        name(object),
        desired_replicas(spec.and_then(|s| s.replicas)).into(),
        i64::from(status.map_or(0, |s| s.replicas)).into(),
        i64::from(status.and_then(|s| s.ready_replicas).unwrap_or(0)).into(),
        age(object, now),
        names,
        images,
        format_label_map(spec.and_then(|s| s.selector.as_ref())).into(),
    ]
}

fn daemonset_cells(ds: &DaemonSet, object: &Value, now: Timestamp) -> Vec<Value> {
    let spec = ds.spec.as_ref();
    let pod_spec = spec.and_then(|s| s.template.spec.as_ref());
    let [names, images] = template_containers(pod_spec);
    let status = |field: fn(&DaemonSetStatus) -> i32| {
        Value::from(i64::from(ds.status.as_ref().map_or(0, field)))
    };
    let optional = |field: fn(&DaemonSetStatus) -> Option<i32>| {
        Value::from(i64::from(ds.status.as_ref().and_then(field).unwrap_or(0)))
    };
    vec![
        name(object),
        status(|s| s.desired_number_scheduled),
        status(|s| s.current_number_scheduled),
        status(|s| s.number_ready),
        optional(|s| s.updated_number_scheduled),
        optional(|s| s.number_available),
        format_label_map(pod_spec.and_then(|s| s.node_selector.as_ref())).into(),
        age(object, now),
        names,
        images,
        format_typed_selector(spec.map(|s| &s.selector)),
    ]
}

fn statefulset_cells(sts: &StatefulSet, object: &Value, now: Timestamp) -> Vec<Value> {
    let spec = sts.spec.as_ref();
    let [names, images] = template_containers(spec.and_then(|s| s.template.spec.as_ref()));
    let ready = sts.status.as_ref().and_then(|s| s.ready_replicas);
    vec![
        name(object),
        format!(
            "{}/{}",
            i64::from(ready.unwrap_or(0)),
            desired_replicas(spec.and_then(|s| s.replicas))
        )
        .into(),
        age(object, now),
        names,
        images,
    ]
}

fn job_cells(job: &Job, object: &Value, now: Timestamp) -> Vec<Value> {
    let spec = job.spec.as_ref();
    let status = job.status.as_ref();
    let succeeded = status.and_then(|s| s.succeeded).unwrap_or(0);
    let completions = match spec.and_then(|s| s.completions) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match spec.and_then(|s| s.parallelism).unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (
        time(status.and_then(|s| s.start_time.as_ref())),
        time(status.and_then(|s| s.completion_time.as_ref())),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => since(Some(start), now),
        (Some(start), Some(end)) => human_nanos(end.as_nanosecond() - start.as_nanosecond()),
    };
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let deleting = job.metadata.deletion_timestamp.is_some();
    let state = if condition_true(conditions, "Complete") {
        "Complete"
    } else if condition_true(conditions, "Failed") {
        "Failed"
    } else if deleting {
        "Terminating"
    } else if condition_true(conditions, "Suspended") {
        "Suspended"
    } else if condition_true(conditions, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let [names, images] = template_containers(spec.and_then(|s| s.template.spec.as_ref()));
    vec![
        name(object),
        state.into(),
        completions.into(),
        duration.into(),
        age(object, now),
        names,
        images,
        format_typed_selector(spec.and_then(|s| s.selector.as_ref())),
    ]
}

fn cronjob_cells(cj: &CronJob, object: &Value, now: Timestamp) -> Vec<Value> {
    let spec = cj.spec.as_ref();
    let status = cj.status.as_ref();
    let last_schedule = match time(status.and_then(|s| s.last_schedule_time.as_ref())) {
        Some(t) => since(Some(t), now),
        None => "<none>".into(),
    };
    // `spec.suspend` defaults to false.
    let suspend = match spec.and_then(|s| s.suspend) {
        Some(true) => "True",
        _ => "False",
    };
    let job_spec = spec.and_then(|s| s.job_template.spec.as_ref());
    let [names, images] = template_containers(job_spec.and_then(|j| j.template.spec.as_ref()));
    let active = status.and_then(|s| s.active.as_ref()).map_or(0, Vec::len);
    vec![
        name(object),
        spec.map_or("", |s| s.schedule.as_str()).into(),
        or_none(spec.and_then(|s| s.time_zone.as_deref()).unwrap_or("")).into(),
        suspend.into(),
        i64::try_from(active).unwrap_or(i64::MAX).into(),
        last_schedule.into(),
        age(object, now),
        names,
        images,
        format_typed_selector(job_spec.and_then(|j| j.selector.as_ref())),
    ]
}

// ---------------------------------------------------------------------------------------------
// Fargate profiles and everything else
// ---------------------------------------------------------------------------------------------

/// A mirrored EKS Fargate profile. The fields are read from `spec` (`podExecutionRoleArn`,
/// `subnets`, `selectors: [{namespace, labels}]`) and `status` (`status`, `pods`); the EKS wire
/// shape, with those fields and a string `status` at the top level, reads the same. Read as
/// JSON: a Fargate profile is localfargate's own kind, with no k8s-openapi type.
fn fargate_profile_cells(fp: &Value, now: Timestamp) -> Vec<Value> {
    let field = |key: &str| {
        fp.pointer(&format!("/spec/{key}"))
            .filter(|v| !v.is_null())
            .or_else(|| fp.get(key))
            .unwrap_or(&Value::Null)
    };
    let status = match &fp["status"] {
        Value::String(s) => s.as_str(),
        s => s["status"].as_str().unwrap_or(""),
    };
    let selectors = field("selectors")
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|s| {
            let namespace = format!("ns={}", s["namespace"].as_str().unwrap_or(""));
            let labels = s["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                .collect::<BTreeMap<_, _>>();
            std::iter::once(namespace)
                .chain(labels.iter().map(|(k, v)| format!("{k}={v}")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect::<Vec<_>>()
        .join("; ");
    let subnets = field("subnets")
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(",");
    vec![
        name(fp),
        or_none(status).into(),
        or_none(&selectors).into(),
        int(fp, "/status/pods", 0).into(),
        age(fp, now),
        or_none(field("podExecutionRoleArn").as_str().unwrap_or("")).into(),
        or_none(&subnets).into(),
    ]
}

fn default_cells(object: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(object), age(object, now)]
}

mod cluster_kinds;
pub mod custom;
mod platform_kinds;

#[cfg(test)]
mod tests;
