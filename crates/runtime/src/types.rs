//! The plain data a [`SandboxRuntime`](crate::SandboxRuntime) takes and returns.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// A backend's handle for one sandbox. Opaque to callers; stable for the sandbox's lifetime.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SandboxId(pub String);

impl SandboxId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SandboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for SandboxId {
    fn from(s: String) -> Self {
        SandboxId(s)
    }
}

impl From<&str> for SandboxId {
    fn from(s: &str) -> Self {
        SandboxId(s.to_string())
    }
}

/// The pod's `spec.restartPolicy`. It is the runtime, not the caller, that restarts containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    /// The Kubernetes spelling: `Always`, `OnFailure`, `Never`.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "Always",
            RestartPolicy::OnFailure => "OnFailure",
            RestartPolicy::Never => "Never",
        }
    }

    /// Whether a regular (non-init) container that exited with `exit_code` is started again.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }

    /// Whether an init container that exited with `exit_code` is run again (Kubernetes reruns a
    /// failed init container unless the policy is `Never`).
    pub fn restarts_init(self, exit_code: i32) -> bool {
        exit_code != 0 && self != RestartPolicy::Never
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RestartPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "Always" => Ok(RestartPolicy::Always),
            "OnFailure" => Ok(RestartPolicy::OnFailure),
            "Never" => Ok(RestartPolicy::Never),
            other => Err(format!(
                "unknown restart policy {other:?}: expected Always, OnFailure or Never"
            )),
        }
    }
}

/// Everything a backend needs to build one pod's sandbox. Not a Kubernetes type: the node agent
/// fills it from the pod after Fargate sizing and IP allocation, resolving every reference
/// (ConfigMaps, Secrets, the downward API, service-account tokens, pull secrets) so a backend
/// never reads the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxSpec {
    pub pod_uid: String,
    pub namespace: String,
    pub name: String,
    /// The pod IP, from [`crate::ipam::Ipam`].
    pub ip: Ipv4Addr,
    /// The prefix length of the pod's subnet (eth0 is `ip/prefix_len`).
    #[serde(default = "default_prefix_len")]
    pub prefix_len: u8,
    /// The subnet's router (the VPC's `.1`), the pod's default route.
    #[serde(default = "default_gateway")]
    pub gateway: Ipv4Addr,
    /// Fargate-rounded vCPU (0.25, 0.5, 1, 2, …).
    pub vcpu: f64,
    /// Fargate-rounded memory, including the 256 MiB Fargate adds.
    pub memory_mib: u64,
    /// Ephemeral storage of the pod (Fargate: 20 GiB unless the pod asks for more, up to 175).
    #[serde(default)]
    pub ephemeral_storage_bytes: Option<u64>,
    pub restart_policy: RestartPolicy,
    /// The pod's annotations. The simulated runtime reads `sim.localfargate.io/*` from them.
    pub annotations: BTreeMap<String, String>,
    /// The pod's hostname (`spec.hostname`, else the pod name, cut to 63 characters).
    #[serde(default)]
    pub hostname: String,
    /// `spec.subdomain`: the pod's FQDN is `hostname.subdomain.namespace.svc.<domain>`.
    #[serde(default)]
    pub subdomain: Option<String>,
    /// The pod's resolv.conf, from `dnsPolicy` and `dnsConfig`.
    #[serde(default)]
    pub dns: DnsConfig,
    /// `spec.hostAliases`: extra `/etc/hosts` lines (IP, names).
    #[serde(default)]
    pub host_aliases: Vec<(String, Vec<String>)>,
    /// `spec.shareProcessNamespace`: one PID namespace for every container of the pod.
    #[serde(default)]
    pub share_process_namespace: bool,
    /// The pod-level security context (applies to every container unless it sets its own).
    #[serde(default)]
    pub security: PodSecurity,
    /// `spec.terminationGracePeriodSeconds` (default 30 s), for containers ended by a failed
    /// liveness probe.
    #[serde(default = "default_grace")]
    pub termination_grace: Duration,
    /// The pod's volumes, resolved to what a backend mounts.
    #[serde(default)]
    pub volumes: Vec<Volume>,
    /// The contents of the pod's `imagePullSecrets` (`.dockerconfigjson`), in order.
    #[serde(default)]
    pub pull_secrets: Vec<Vec<u8>>,
    /// Init containers (`init: true`, run first, in this order) and regular containers.
    pub containers: Vec<ContainerSpec>,
}

fn default_prefix_len() -> u8 {
    24
}

fn default_gateway() -> Ipv4Addr {
    Ipv4Addr::UNSPECIFIED
}

fn default_grace() -> Duration {
    Duration::from_secs(30)
}

impl SandboxSpec {
    /// `namespace/name`, as used in messages.
    pub fn pod_ref(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// A spec with the given identity and containers and every other field at its Kubernetes
    /// default (for tests and simple callers).
    pub fn new(
        pod_uid: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
        ip: Ipv4Addr,
        containers: Vec<ContainerSpec>,
    ) -> SandboxSpec {
        let name = name.into();
        SandboxSpec {
            pod_uid: pod_uid.into(),
            namespace: namespace.into(),
            hostname: name.chars().take(63).collect(),
            name,
            ip,
            prefix_len: default_prefix_len(),
            gateway: default_gateway(),
            vcpu: 0.25,
            memory_mib: 512,
            ephemeral_storage_bytes: None,
            restart_policy: RestartPolicy::Always,
            annotations: BTreeMap::new(),
            subdomain: None,
            dns: DnsConfig::default(),
            host_aliases: Vec::new(),
            share_process_namespace: false,
            security: PodSecurity::default(),
            termination_grace: default_grace(),
            volumes: Vec::new(),
            pull_secrets: Vec::new(),
            containers,
        }
    }
}

/// The pod's `/etc/resolv.conf`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    /// `(name, value)`: `ndots:5` is `("ndots", Some("5"))`.
    pub options: Vec<(String, Option<String>)>,
}

/// `spec.securityContext`, the parts a runtime applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSecurity {
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_non_root: Option<bool>,
    /// Volumes are made group-owned by this GID, and it joins every container's groups.
    pub fs_group: Option<i64>,
    pub supplemental_groups: Vec<i64>,
    /// `seccompProfile`; `None` is the kubelet's default, unconfined.
    pub seccomp: Option<SeccompProfile>,
    /// `(name, value)`.
    pub sysctls: Vec<(String, String)>,
}

/// A container's `securityContext`. Unset fields inherit the pod's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSecurity {
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_non_root: Option<bool>,
    pub read_only_root_filesystem: bool,
    pub allow_privilege_escalation: Option<bool>,
    pub privileged: bool,
    /// Capability names as Kubernetes spells them (`NET_ADMIN`, without `CAP_`).
    pub capabilities_add: Vec<String>,
    pub capabilities_drop: Vec<String>,
    /// `seccompProfile`, overriding the pod's.
    pub seccomp: Option<SeccompProfile>,
}

/// A `seccompProfile`, as the kubelet hands it to the container runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeccompProfile {
    /// The runtime's default profile (containerd's, on EKS).
    RuntimeDefault,
    /// No filter.
    Unconfined,
    /// A profile file on the node, relative to the kubelet's seccomp directory
    /// (`localhostProfile`).
    Localhost(String),
}

/// One of the pod's volumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub source: VolumeSource,
}

/// What a volume holds. ConfigMap, Secret, downward API, projected and service-account-token
/// volumes all arrive as [`VolumeSource::Files`]: the agent has read their data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeSource {
    /// A fresh directory for the pod's lifetime; `memory` is a tmpfs (`medium: Memory`).
    EmptyDir {
        memory: bool,
        size_limit: Option<u64>,
    },
    /// Files written before the containers start (read-only to the containers).
    Files {
        files: Vec<VolumeFile>,
        /// `defaultMode`, applied to files without a mode of their own.
        default_mode: u32,
        /// Kept in memory (a tmpfs), never on disk: the kubelet does so for Secret, downward
        /// API and projected volumes, not for ConfigMap ones.
        #[serde(default)]
        memory: bool,
    },
    /// A kind the runtime cannot provide (e.g. a PersistentVolumeClaim with no storage on this
    /// machine): the container that mounts it does not start, with this message.
    Unsupported { message: String },
}

/// A file of a [`VolumeSource::Files`] volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeFile {
    /// Relative path inside the volume (`key`, or `items[].path`).
    pub path: String,
    pub mode: Option<u32>,
    pub content: Vec<u8>,
}

/// A container's `volumeMounts[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    pub read_only: bool,
    /// `subPath` (resolved from `subPathExpr` by the agent).
    pub sub_path: Option<String>,
}

/// The image pull policy, as the kubelet applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// Kubernetes' default: `Always` when the tag is `latest` (written or implied: no tag and
    /// no digest), else `IfNotPresent`; an unparsable name gets `IfNotPresent`, as in the API
    /// server (the pull then fails with `InvalidImageName`).
    pub fn default_for(image: &str) -> PullPolicy {
        match crate::image::ImageRef::parse(image) {
            Ok(r) if r.tag.as_deref() == Some("latest") => PullPolicy::Always,
            _ => PullPolicy::IfNotPresent,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PullPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "Always" => Ok(PullPolicy::Always),
            "IfNotPresent" => Ok(PullPolicy::IfNotPresent),
            "Never" => Ok(PullPolicy::Never),
            // The API server's wording for an enum field.
            other => Err(format!(
                "Unsupported value: {other:?}: supported values: \"Always\", \"IfNotPresent\", \"Never\""
            )),
        }
    }
}

/// A probe (`livenessProbe`, `readinessProbe`, `startupProbe`) with the kubelet's defaults
/// filled in. Named ports are resolved to numbers by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub action: Action,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// `terminationGracePeriodSeconds` of a liveness or startup probe.
    pub termination_grace: Option<Duration>,
}

impl Probe {
    /// A probe with the kubelet's defaults: no delay, every 10 s, 1 s timeout, 1 success,
    /// 3 failures.
    pub fn new(action: Action) -> Probe {
        Probe {
            action,
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
            termination_grace: None,
        }
    }
}

/// What a probe or a lifecycle hook does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Runs a command in the container; exit 0 is success.
    Exec { command: Vec<String> },
    /// An HTTP GET; 200–399 is success. `host` empty means the pod IP.
    HttpGet {
        scheme: String,
        host: String,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    /// A TCP connection that opens is success. `host` empty means the pod IP.
    TcpSocket { host: String, port: u16 },
    /// The gRPC health-checking protocol; `SERVING` is success.
    Grpc { port: u16, service: String },
    /// `lifecycle.*.sleep`.
    Sleep { seconds: u64 },
}

/// `terminationMessagePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TerminationMessagePolicy {
    #[default]
    File,
    FallbackToLogsOnError,
}

/// A container's resources: what its cgroup is limited to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerResources {
    /// `limits.cpu` in millicores.
    pub cpu_limit_millis: Option<u64>,
    /// `limits.memory` in bytes.
    pub memory_limit_bytes: Option<u64>,
    /// `requests.cpu` in millicores (CPU shares).
    pub cpu_request_millis: Option<u64>,
    /// `requests.memory` in bytes.
    pub memory_request_bytes: Option<u64>,
}

/// One container of a [`SandboxSpec`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub name: String,
    /// The image as the pod names it (`nginx`, `public.ecr.aws/…:1`).
    pub image: String,
    #[serde(default)]
    pub pull_policy: PullPolicy,
    /// Replaces the image's entrypoint when not empty.
    pub command: Vec<String>,
    /// Replaces the image's cmd when not empty.
    pub args: Vec<String>,
    /// `workingDir`; the image's when `None`.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// The environment, fully resolved (`envFrom` first, then `env`, later names winning;
    /// `valueFrom` read and `$(VAR)` references expanded by the agent).
    pub env: Vec<(String, String)>,
    #[serde(default)]
    pub mounts: Vec<VolumeMount>,
    #[serde(default)]
    pub security: ContainerSecurity,
    #[serde(default)]
    pub resources: ContainerResources,
    #[serde(default)]
    pub liveness: Option<Probe>,
    #[serde(default)]
    pub readiness: Option<Probe>,
    #[serde(default)]
    pub startup: Option<Probe>,
    #[serde(default)]
    pub post_start: Option<Action>,
    #[serde(default)]
    pub pre_stop: Option<Action>,
    /// `terminationMessagePath` (default `/dev/termination-log`).
    #[serde(default)]
    pub termination_message_path: Option<String>,
    #[serde(default)]
    pub termination_message_policy: TerminationMessagePolicy,
    /// `tty`, `stdin`, `stdinOnce`: what `kubectl attach` and `run -it` use.
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub stdin: bool,
    #[serde(default)]
    pub stdin_once: bool,
    /// An init container: runs to completion before the regular containers start.
    pub init: bool,
}

/// One container's state, as in the Kubernetes `ContainerState`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    /// Not running: `ContainerCreating`, `PodInitializing`, `CrashLoopBackOff`, …
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: SystemTime,
    },
    /// Exited. `reason` is `Completed` for exit code 0, `OOMKilled` for a container its memory
    /// limit killed, and `Error` otherwise; `message` is the termination message.
    Terminated {
        exit_code: i32,
        reason: String,
        #[serde(default)]
        message: Option<String>,
        started_at: SystemTime,
        finished_at: SystemTime,
    },
}

impl ContainerState {
    pub fn is_running(&self) -> bool {
        matches!(self, ContainerState::Running { .. })
    }

    pub fn is_waiting(&self) -> bool {
        matches!(self, ContainerState::Waiting { .. })
    }

    /// The exit code when terminated.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            ContainerState::Terminated { exit_code, .. } => Some(*exit_code),
            _ => None,
        }
    }

    /// The waiting or termination reason.
    pub fn reason(&self) -> Option<&str> {
        match self {
            ContainerState::Waiting { reason, .. } | ContainerState::Terminated { reason, .. } => {
                Some(reason)
            }
            ContainerState::Running { .. } => None,
        }
    }
}

/// One container's status in a [`SandboxStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub name: String,
    pub init: bool,
    pub state: ContainerState,
    /// The previous run's termination (Kubernetes `lastState`), when the container has restarted
    /// or is waiting to restart.
    pub last_state: Option<ContainerState>,
    pub restart_count: u32,
    /// Passed its readiness probe (or running, without one).
    #[serde(default)]
    pub ready: bool,
    /// Passed its startup probe (or running, without one): Kubernetes' `started`.
    #[serde(default)]
    pub started: bool,
    /// The runtime's id of the current (or last) instance, as Kubernetes shows it
    /// (`containerd://…`-style: `<runtime>://<id>`); `None` before the first start.
    #[serde(default)]
    pub container_id: Option<String>,
    /// The image the runtime resolved (`docker.io/library/nginx:latest`), once pulled.
    #[serde(default)]
    pub image: Option<String>,
    /// The image's digest reference (`docker.io/library/nginx@sha256:…`), once pulled.
    #[serde(default)]
    pub image_id: Option<String>,
}

/// A sandbox's status at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxStatus {
    pub id: SandboxId,
    pub created_at: SystemTime,
    /// When the sandbox became ready to start containers (Kubernetes'
    /// `PodReadyToStartContainers`); `None` while it is still being created.
    pub ready_at: Option<SystemTime>,
    /// When [`stop`](crate::SandboxRuntime::stop) was called.
    pub stopped_at: Option<SystemTime>,
    /// One entry per container of the spec, in spec order.
    pub containers: Vec<ContainerStatus>,
    /// The next instant at which this status will change by itself, if the backend can know it
    /// (the simulated runtime always can; process backends report `None` and announce changes
    /// through [`changes`](crate::SandboxRuntime::changes)). Poll again then, not before.
    pub next_transition: Option<SystemTime>,
    /// What happened in the sandbox, as the kubelet's events (`Pulling`, `Pulled`, `Created`,
    /// `Started`, `Killing`, `Unhealthy`, `BackOff`, `Failed`), oldest first, numbered so a
    /// caller emits each once. Backends keep the most recent ones only. The simulated runtime
    /// reports none (the agent announces its starts).
    #[serde(default)]
    pub events: Vec<RuntimeEvent>,
}

/// One event of a sandbox, for the pod's Kubernetes Events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeEvent {
    /// Increases by one per event of the sandbox, from 1.
    pub seq: u64,
    pub at: SystemTime,
    pub warning: bool,
    pub reason: String,
    pub message: String,
    /// The container it is about (the event's `involvedObject.fieldPath`).
    pub container: Option<String>,
}

impl SandboxStatus {
    pub fn container(&self, name: &str) -> Option<&ContainerStatus> {
        self.containers.iter().find(|c| c.name == name)
    }
}

/// Options of [`logs`](crate::SandboxRuntime::logs), as in the kubelet's `PodLogOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOptions {
    /// Keep the stream open and send new lines until the container instance exits or the
    /// receiver is dropped. Otherwise the stream closes after the text already written.
    pub follow: bool,
    /// Only the last N lines already written (after `since`).
    pub tail_lines: Option<u64>,
    /// Stop after this many bytes (the last line may be cut).
    pub limit_bytes: Option<u64>,
    /// Prefix each line with its RFC3339 nanosecond timestamp and a space.
    pub timestamps: bool,
    /// Only lines written at or after this time (`sinceTime`, or now minus `sinceSeconds`).
    pub since: Option<SystemTime>,
    /// The previous run of the container (`kubectl logs --previous`).
    pub previous: bool,
}

/// Log text in chunks, in order. The channel closes at the end of the log.
pub type LogStream = mpsc::Receiver<Vec<u8>>;

/// A terminal size for a TTY exec session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    pub width: u16,
    pub height: u16,
}

/// One `kubectl exec` session.
#[derive(Debug)]
pub struct ExecRequest {
    /// argv; `command[0]` is looked up in the container's PATH.
    pub command: Vec<String>,
    /// Allocate a terminal; stderr is then merged into stdout, as with Kubernetes.
    pub tty: bool,
    /// Bytes for the process's stdin; closing the channel closes stdin.
    pub stdin: Option<mpsc::Receiver<Vec<u8>>>,
    pub stdout: mpsc::Sender<Vec<u8>>,
    pub stderr: mpsc::Sender<Vec<u8>>,
    /// Terminal resizes, when `tty`.
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
}

/// One `kubectl attach` session to a container's main process.
#[derive(Debug)]
pub struct AttachRequest {
    /// Bytes for the process's stdin; ignored unless the container has `stdin: true` (as
    /// containerd does). Its end detaches, or, with `stdinOnce` and no terminal, closes the
    /// process's stdin.
    pub stdin: Option<mpsc::Receiver<Vec<u8>>>,
    /// The process's output from now on; with a terminal everything comes on stdout.
    pub stdout: mpsc::Sender<Vec<u8>>,
    pub stderr: mpsc::Sender<Vec<u8>>,
    /// Terminal resizes; used when the container has `tty: true`.
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
}

/// How an exec'd process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    pub code: i32,
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self.code == 0
    }
}

/// One sandbox a runtime holds, from [`list`](crate::SandboxRuntime::list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSummary {
    pub id: SandboxId,
    pub pod_uid: String,
    pub namespace: String,
    pub name: String,
}

/// One running container's resource usage at one instant (defined in the core, where the
/// metrics API's registry reads it too).
pub use localfargate_core::usage::ContainerUsage;
