//! Sandboxes that run pods.
//!
//! Every Fargate pod gets its own sandbox. The node agent drives sandboxes through one object-safe
//! trait, [`SandboxRuntime`], held as `Arc<dyn SandboxRuntime>` and chosen with the CLI's
//! `--runtime` flag ([`by_name`]). Its inputs are plain structs ([`SandboxSpec`],
//! [`ContainerSpec`]), not Kubernetes types: the agent fills them after Fargate sizing and after
//! [`ipam::Ipam`] has given the pod an address in one of its profile's subnets.
//!
//! # Backends
//!
//! * [`SimulatedRuntime`] (`--runtime simulated`): no processes, no privileges; container
//!   states follow from elapsed time and `sim.localfargate.io/*` annotations. It backs API,
//!   controller and scheduler tests and scales to tens of thousands of pods.
//! * [`ProcessRuntime`] (`--runtime process`, and `auto` where the host allows it): each pod
//!   in its own network namespace and cgroups, its containers real processes run by runc from
//!   real images, through a shim per container that outlives localfargate (see [`process`]).
//! * `microvm` (a QEMU `microvm` or Firecracker VM per pod with an agent inside; not built yet).
//!
//! What backends share: [`image`] (pulls, loads, the layer store), [`net`] (pod network
//! namespaces and the host bridge), [`cgroups`] (v1 and v2), [`crilog`] (CRI log files),
//! [`restart`] (the kubelet's restart rules and back-off), [`ipam`].
//!
//! # How the later backends fit this trait unchanged
//!
//! The trait describes a *pod* runtime, like the agent inside a Fargate VM, not a CRI runtime:
//! the runtime itself applies the restart policy, runs init containers in order and restarts
//! crashed containers with the kubelet's back-off. Callers only say what should run and read
//! back what is running.
//!
//! * [`create_sandbox`](SandboxRuntime::create_sandbox) builds the isolation boundary and may
//!   return before it is ready ([`SandboxStatus::ready_at`] says when it is).
//!   - process: a network namespace with a veth pair on the host bridge, `eth0` set to
//!     [`SandboxSpec::ip`] with [`SandboxSpec::prefix_len`] and [`SandboxSpec::gateway`]; a pod
//!     cgroup with a CPU quota of [`SandboxSpec::vcpu`] and a memory limit of
//!     [`SandboxSpec::memory_mib`]; images unpacked to shared layers under overlay root
//!     filesystems. A supervisor task per sandbox starts, watches and restarts containers.
//!   - microvm: the same netns plus a tap device, then a VMM process in the pod cgroup with
//!     `vcpu`/`memory_mib` as the guest size; the guest agent's `CreateSandbox` over
//!     virtio-serial or vsock.
//! * [`start_container`](SandboxRuntime::start_container) is a request, not a synchronous run: the
//!   container starts once the sandbox is ready and, for a regular container, once every init
//!   container has exited 0. The agent calls it for every container right after creating the
//!   sandbox. Process: an OCI bundle run by runc (through the shim) in the pod netns and cgroup.
//!   MicroVM: the guest agent's `CreateContainer` + `StartContainer`.
//! * [`status`](SandboxRuntime::status) returns Kubernetes-shaped container states with restart
//!   counts. The simulated runtime knows when its status changes next
//!   ([`SandboxStatus::next_transition`]); real backends cannot know when a process exits, so
//!   they report `None` there and send the sandbox's id on [`changes`](SandboxRuntime::changes)
//!   instead. The agent waits for the earliest `next_transition` or a change, never polls in a
//!   loop.
//! * [`logs`](SandboxRuntime::logs) returns a [`LogStream`], an mpsc receiver of byte chunks that
//!   the HTTP layer streams as a chunked body. Real backends read per-container log files (CRI
//!   format: timestamp, stream, text) written by the supervisor or the guest agent.
//! * [`exec`](SandboxRuntime::exec) takes channels for stdin, stdout, stderr and terminal
//!   resizes ([`ExecRequest`]): process runs `runc exec` (with a pty for a terminal); microvm
//!   uses the agent's `ExecProcess` and its stdio streams. The simulated runtime refuses with
//!   [`RuntimeError::ExecUnsupported`].
//! * [`attach`](SandboxRuntime::attach) joins a container's main process ([`AttachRequest`]):
//!   process connects to the container's shim, which holds the process's stdin (a pipe, or
//!   the terminal for `tty: true`) and hands its output to every attached client; microvm
//!   would use the agent's console streams. The simulated runtime streams the synthesized
//!   output that follows (the exit line) and has no stdin.
//! * [`stop`](SandboxRuntime::stop) sends SIGTERM, waits up to the grace period, then SIGKILL; it
//!   returns when every container has exited. [`remove`](SandboxRuntime::remove) tears
//!   everything down (netns, cgroups, VM, files) and is idempotent.
//! * [`list`](SandboxRuntime::list) lets the agent find sandboxes left from an earlier run (real
//!   backends keep state on disk) and remove the ones with no pod.
//! * [`usage`](SandboxRuntime::usage) samples each running container's cumulative CPU time and
//!   memory working set, for `kubectl top` (the metrics collector turns two samples into a rate).
//!   Process: the container's cgroup (which outlives restarts, so its counter never goes back);
//!   simulated: a fixed rate and working set per container (see [`simulated`]); microvm: the
//!   guest agent's cgroup statistics.
//!
//! Timestamps are [`SystemTime`](std::time::SystemTime); the caller renders RFC3339.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

pub mod address_claims;
pub mod builtin_coredns;
pub mod cgroups;
mod config;
pub mod crilog;
mod error;
pub mod firewall;
pub mod host_proxy;
pub mod host_udp_proxy;
pub mod http_proxy;
pub mod image;
pub mod ipam;
pub mod net;
pub mod port_forward;
pub mod process;
pub mod restart;
pub mod service_proxy;
pub mod simulated;
pub mod storage;
pub mod test_images;
mod timefmt;
mod types;

pub use config::RuntimeConfig;
pub use error::RuntimeError;
pub use process::ProcessRuntime;
pub use simulated::SimulatedRuntime;
pub use storage::StorageUsage;
pub use types::{
    Action, AttachRequest, ContainerResources, ContainerSecurity, ContainerSpec, ContainerState,
    ContainerStatus, ContainerUsage, DnsConfig, ExecRequest, ExitStatus, LogOptions, LogStream,
    PodSecurity, Probe, PullPolicy, RestartPolicy, RuntimeEvent, SandboxId, SandboxSpec,
    SandboxStatus, SandboxSummary, SeccompProfile, TerminalSize, TerminationMessagePolicy, Volume,
    VolumeFile, VolumeMount, VolumeSource,
};

/// Runs pods, one sandbox each. Object-safe: hold it as `Arc<dyn SandboxRuntime>`.
#[async_trait]
pub trait SandboxRuntime: Send + Sync {
    fn kind(&self) -> RuntimeKind;

    /// Creates a sandbox for a pod; containers wait until started. Fails with
    /// [`RuntimeError::AlreadyExists`] when the pod already has one.
    async fn create_sandbox(&self, spec: SandboxSpec) -> Result<SandboxId, RuntimeError>;

    /// Asks for a container to be started: at once if the sandbox is ready and, for a regular
    /// container, the init containers have succeeded; otherwise as soon as they are. Calling it
    /// again is a no-op.
    async fn start_container(
        &self,
        sandbox: &SandboxId,
        container: &str,
    ) -> Result<(), RuntimeError>;

    /// The sandbox's containers now, one [`ContainerStatus`] per container in spec order.
    async fn status(&self, sandbox: &SandboxId) -> Result<SandboxStatus, RuntimeError>;

    /// The local ephemeral storage the sandbox's containers and `emptyDir` volumes use now
    /// ([`storage`]), for the agent's eviction manager. Backends that keep nothing on disk (the
    /// simulated one) report none.
    async fn storage_usage(&self, sandbox: &SandboxId) -> Result<StorageUsage, RuntimeError> {
        let _ = sandbox;
        Ok(StorageUsage::default())
    }

    /// A container's log. Without `follow` the stream closes after the text written so far.
    async fn logs(
        &self,
        sandbox: &SandboxId,
        container: &str,
        options: LogOptions,
    ) -> Result<LogStream, RuntimeError>;

    /// Runs a command in a running container and returns its exit code once it ends.
    async fn exec(
        &self,
        sandbox: &SandboxId,
        container: &str,
        request: ExecRequest,
    ) -> Result<ExitStatus, RuntimeError>;

    /// Attaches to a running container's main process (`kubectl attach`): its output from now
    /// on, its stdin when the container has `stdin: true`, terminal resizes when it has
    /// `tty: true`. Returns when the process exits or the session detaches (the client's stdin
    /// ended, see [`AttachRequest::stdin`]). Fails with [`RuntimeError::NotRunning`] when the
    /// container does not run.
    async fn attach(
        &self,
        sandbox: &SandboxId,
        container: &str,
        request: AttachRequest,
    ) -> Result<(), RuntimeError>;

    /// Opens a TCP connection to `localhost:<port>` inside the sandbox's network namespace
    /// (the CRI's `PortForward`, what `kubectl port-forward` reaches), so a server bound to
    /// 127.0.0.1 in the pod is reachable. Process: see [`port_forward`]; the simulated runtime
    /// refuses with [`RuntimeError::PortForwardUnsupported`].
    async fn port_forward(
        &self,
        sandbox: &SandboxId,
        port: u16,
    ) -> Result<port_forward::PortStream, RuntimeError>;

    /// Stops every container (SIGTERM, then SIGKILL after `grace`) and starts nothing more.
    /// Returns once all containers have exited. A second call may shorten the grace period.
    async fn stop(&self, sandbox: &SandboxId, grace: Duration) -> Result<(), RuntimeError>;

    /// Removes the sandbox and everything it holds, stopping it first if needed. Removing a
    /// sandbox that does not exist succeeds.
    async fn remove(&self, sandbox: &SandboxId) -> Result<(), RuntimeError>;

    /// Every sandbox this runtime holds.
    async fn list(&self) -> Result<Vec<SandboxSummary>, RuntimeError>;

    /// The sandbox of the pod with this uid, if the runtime holds one. Backends whose ids
    /// follow from the uid answer without listing.
    async fn sandbox_of_pod(&self, pod_uid: &str) -> Result<Option<SandboxSummary>, RuntimeError> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .find(|s| s.pod_uid == pod_uid))
    }

    /// Replaces the files of one of the sandbox's file volumes (ConfigMap, Secret, downward
    /// API, projected) as the kubelet's volume sync does: all at once, and nothing when they are
    /// the same. A backend whose pods have no files (the simulated one) has nothing to update.
    async fn update_volume(
        &self,
        sandbox: &SandboxId,
        volume: &str,
        files: Vec<VolumeFile>,
    ) -> Result<(), RuntimeError> {
        let _ = (sandbox, volume, files);
        Ok(())
    }

    /// Installs the security groups' `rules` for `cluster`'s pods, keeping the member sets, or
    /// with `members` (each pod's address and groups) replacing everything (see [`firewall`]).
    /// A backend without a real network (the simulated one) has nothing to filter.
    async fn set_security_group_rules(
        &self,
        cluster: &str,
        rules: &[localfargate_core::security_groups::GroupRules],
        members: Option<&[firewall::Member]>,
    ) -> Result<(), RuntimeError> {
        let _ = (cluster, rules, members);
        Ok(())
    }

    /// Adds pods to and removes pods from the member sets of their security groups: what a pod
    /// start or end costs, whatever the number of pods.
    async fn change_security_group_members(
        &self,
        cluster: &str,
        add: &[firewall::Member],
        remove: &[firewall::Member],
    ) -> Result<(), RuntimeError> {
        let _ = (cluster, add, remove);
        Ok(())
    }

    /// The resource usage of the sandbox's running containers now, in spec order (none while
    /// nothing runs): cumulative CPU time and memory working set, what a kubelet reports to
    /// metrics-server.
    async fn usage(&self, sandbox: &SandboxId) -> Result<Vec<ContainerUsage>, RuntimeError>;

    /// Ids of sandboxes whose status changed in a way the last status's
    /// [`next_transition`](SandboxStatus::next_transition) did not announce (a process exited, a
    /// VM died, a call changed it). A receiver that lags should re-read every sandbox.
    fn changes(&self) -> broadcast::Receiver<SandboxId>;

    /// The host's Service data path (ClusterIPs, NodePorts) for this runtime's pods, if it has
    /// one: the process runtime's nftables tables ([`service_proxy`]); the simulated runtime
    /// has none.
    fn service_data_path(&self) -> Option<Arc<dyn service_proxy::ServiceDataPath>> {
        None
    }

    /// The host-wide claims on pod addresses, for a runtime whose pods share the host's network
    /// with other localfargates ([`address_claims`]); none for the simulated runtime, whose
    /// addresses carry no packets.
    fn address_claims(&self) -> Option<&address_claims::AddressClaims> {
        None
    }
}

/// The backends the `--runtime` flag names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeKind {
    Simulated,
    Process,
    MicroVm,
}

impl RuntimeKind {
    pub const ALL: [RuntimeKind; 3] = [
        RuntimeKind::Simulated,
        RuntimeKind::Process,
        RuntimeKind::MicroVm,
    ];

    /// The flag value: `simulated`, `process`, `microvm`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Simulated => "simulated",
            RuntimeKind::Process => "process",
            RuntimeKind::MicroVm => "microvm",
        }
    }

    /// Whether this build has the backend.
    pub fn is_built(self) -> bool {
        self != RuntimeKind::MicroVm
    }

    /// A new runtime of this kind, or why it cannot be had here.
    pub async fn build(
        self,
        config: &RuntimeConfig,
    ) -> Result<Arc<dyn SandboxRuntime>, RuntimeError> {
        match self {
            RuntimeKind::Simulated => Ok(Arc::new(SimulatedRuntime::new())),
            RuntimeKind::Process => Ok(Arc::new(ProcessRuntime::new(config.clone()).await?)),
            RuntimeKind::MicroVm => Err(RuntimeError::NotBuilt(self)),
        }
    }
}

impl std::fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RuntimeKind {
    type Err = RuntimeError;

    fn from_str(s: &str) -> Result<Self, RuntimeError> {
        RuntimeKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| RuntimeError::UnknownRuntime(s.to_string()))
    }
}

/// What `--runtime auto` picks here: `process` where the host allows it (root, cgroups,
/// network namespaces, runc), else `simulated` and the reason.
pub fn auto_kind(config: &RuntimeConfig) -> (RuntimeKind, Option<String>) {
    match process::unavailable_reason(config) {
        None => (RuntimeKind::Process, None),
        Some(reason) => (RuntimeKind::Simulated, Some(reason)),
    }
}

/// The runtime for a `--runtime` value: `auto`, `simulated`, `process`; `microvm` fails with
/// "not built yet"; anything else with "unknown runtime".
pub async fn by_name(
    name: &str,
    config: &RuntimeConfig,
) -> Result<Arc<dyn SandboxRuntime>, RuntimeError> {
    if name == "auto" {
        let (kind, why) = auto_kind(config);
        if let Some(why) = why {
            tracing::warn!(
                "pods run in the simulated runtime: the process runtime cannot run here: {why}"
            );
        }
        return kind.build(config).await;
    }
    name.parse::<RuntimeKind>()?.build(config).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn by_name_builds_simulated_and_explains_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let config = RuntimeConfig::under(dir.path());
        assert_eq!(
            by_name("simulated", &config).await.unwrap().kind(),
            RuntimeKind::Simulated
        );
        assert_eq!(
            by_name("microvm", &config).await.err().unwrap().to_string(),
            "the microvm runtime is not built yet; start localfargate with --runtime process or \
             --runtime simulated"
        );
        assert_eq!(
            by_name("docker", &config).await.err().unwrap().to_string(),
            "unknown runtime \"docker\": expected one of auto, simulated, process, microvm"
        );
        for k in RuntimeKind::ALL {
            assert_eq!(k.as_str().parse::<RuntimeKind>().unwrap(), k);
        }
        // Without an OCI runtime, auto falls back to simulated and says why (on a host that
        // lacks something checked earlier, that is the reason given).
        let missing = RuntimeConfig {
            oci_runtime: dir.path().join("no-runc"),
            ..config.clone()
        };
        let (kind, why) = auto_kind(&missing);
        assert_eq!(kind, RuntimeKind::Simulated);
        let why = why.unwrap();
        match process::unavailable_reason(&config) {
            None => assert!(why.contains("no-runc"), "{why}"),
            Some(earlier) => assert_eq!(why, earlier),
        }
    }
}
