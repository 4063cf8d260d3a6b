//! The plain data a [`SandboxRuntime`](crate::SandboxRuntime) takes and returns.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::SystemTime;

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
/// fills it from the pod after Fargate sizing and IP allocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxSpec {
    pub pod_uid: String,
    pub namespace: String,
    pub name: String,
    /// The pod IP, from [`crate::ipam::Ipam`]. Its subnet (prefix length, router) is found with
    /// [`crate::ipam::Ipam::subnet_of`].
    pub ip: Ipv4Addr,
    /// Fargate-rounded vCPU (0.25, 0.5, 1, 2, …).
    pub vcpu: f64,
    /// Fargate-rounded memory, including the 256 MiB Fargate adds.
    pub memory_mib: u64,
    pub restart_policy: RestartPolicy,
    /// The pod's annotations. The simulated runtime reads `sim.localfargate.io/*` from them.
    pub annotations: BTreeMap<String, String>,
    /// Init containers (`init: true`, run first, in this order) and regular containers.
    pub containers: Vec<ContainerSpec>,
}

impl SandboxSpec {
    /// `namespace/name`, as used in messages.
    pub fn pod_ref(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// One container of a [`SandboxSpec`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// Replaces the image's entrypoint when not empty.
    pub command: Vec<String>,
    /// Replaces the image's cmd when not empty.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
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
    /// Exited. `reason` is `Completed` for exit code 0 and `Error` otherwise.
    Terminated {
        exit_code: i32,
        reason: String,
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
