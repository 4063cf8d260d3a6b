//! The process runtime (`--runtime process`): every pod in its own sandbox of Linux namespaces
//! and cgroups, its containers real processes run by runc from real images.
//!
//! Per pod (sandbox):
//! * a pod cgroup sized by the pod's Fargate size (CPU quota = vCPU, memory limit = memory,
//!   pids limit), and one cgroup per container below it for the container's own limits
//!   ([`crate::cgroups`]);
//! * its own network namespace with a veth on the host bridge and the pod IP on `eth0`
//!   ([`crate::net`]); shared IPC and UTS namespaces (hostname = pod name), kept by bind mounts;
//!   with `shareProcessNamespace`, a PID namespace whose init is the pod's pause process
//!   ([`pause`]);
//! * `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, and its volumes (`emptyDir`, tmpfs for
//!   `medium: Memory`, and the files of ConfigMap, Secret, downward API and projected volumes).
//!
//! Per container run: an overlay root filesystem over the image's shared unpacked layers
//! ([`crate::image`]) with a fresh upper directory, an OCI bundle ([`bundle`]) with the
//! container's seccomp profile ([`seccomp`]), and a shim ([`shim`]) that runs `runc create` +
//! `runc start`, writes the CRI log ([`crate::crilog`]) and records the exit. The shim outlives localfargate, so a restarted
//! localfargate adopts running containers from the state directory.
//!
//! A supervisor task per sandbox starts init containers in order, then the regular ones,
//! pulls images with the kubelet's policy and back-off, applies the restart policy through the
//! shared [`crate::restart`] state machine, runs probes and hooks, and announces every change on
//! [`SandboxRuntime::changes`].

mod atomic_writer;
mod attach;
mod bundle;
mod grpc_health;
mod insecure_tls;
mod pause;
mod probe;
mod reap;
mod sandbox_setup;
mod seccomp;
pub mod shim;
mod shim_attach;
mod usage;

pub use reap::{crashed_runs, remove_crashed_runs};

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, broadcast, watch};

use crate::cgroups::{Cgroups, ContainerLimits, PodLimits};
use crate::crilog;
use crate::image::{ImageError, ImageStore, RegistryConfig};
use crate::net::{NetworkConfig, PodAttachment, PodNetwork};
use crate::restart::{AfterExit, Backoff, RestartState};
use crate::storage::{self, ContainerStorage, StorageUsage, VolumeStorage};
use crate::timefmt::format_duration;
use crate::{
    AttachRequest, ContainerSpec, ContainerState, ContainerStatus, ExecRequest, ExitStatus,
    LogOptions, LogStream, PullPolicy, RuntimeConfig, RuntimeError, RuntimeEvent, RuntimeKind,
    SandboxId, SandboxRuntime, SandboxSpec, SandboxStatus, SandboxSummary,
    TerminationMessagePolicy,
};

use shim::{ShimArgs, ShimExit, ShimStarted};

/// Events kept per sandbox (the agent reads them soon after they happen).
const EVENTS_KEPT: usize = 64;
/// The kubelet retries a failed sandbox setup; so does the supervisor.
const SETUP_RETRY: Duration = Duration::from_secs(10);
/// The kubelet's image pull back-off: 10 s doubling to 5 min.
const IMAGE_BACKOFF: Backoff = Backoff::KUBELET;
/// The prefix of container ids, as Kubernetes shows them.
const CONTAINER_ID_SCHEME: &str = "containerd://";
/// The most of a termination message kept (the kubelet's limit).
const TERMINATION_MESSAGE_MAX: usize = 4096;
/// The pause process's cgroup below the pod's (not a DNS label, so no container's name).
const PAUSE_CGROUP: &str = "_pause";

/// The runtime with real processes. Cheap to clone.
#[derive(Clone)]
pub struct ProcessRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    config: RuntimeConfig,
    images: ImageStore,
    net: Arc<PodNetwork>,
    cgroups: Cgroups,
    sandboxes: Mutex<HashMap<SandboxId, Arc<Sandbox>>>,
    changes: broadcast::Sender<SandboxId>,
    /// The open-files hard limit containers get: Fargate's 65535, or the host's when lower.
    nofile_hard: u64,
    /// Whether the kernel filters syscalls (`RuntimeDefault` needs it).
    seccomp_available: bool,
    /// Gateways already put on the bridge.
    gateways: Mutex<std::collections::HashSet<(Ipv4Addr, u8)>>,
    /// The Service data path on the same bridge.
    service_path: Arc<crate::service_proxy::NftDataPath>,
    /// This process's claims on pod addresses, host-wide.
    address_claims: crate::address_claims::AddressClaims,
}

struct Sandbox {
    id: SandboxId,
    spec: SandboxSpec,
    dir: PathBuf,
    state: Mutex<State>,
    wake: Notify,
    /// Per container: `done` senders of the current run's log, for followers.
    log_done: Mutex<HashMap<String, watch::Sender<bool>>>,
    /// Running probe tasks per container, aborted when the run ends.
    probes: Mutex<HashMap<String, Vec<tokio::task::AbortHandle>>>,
    /// Let go by [`ProcessRuntime::abandon`]: its supervisor stops, its state is left alone.
    abandoned: std::sync::atomic::AtomicBool,
    /// One writer of `state.json` at a time (the supervisor, calls, probe tasks).
    persist_lock: Mutex<()>,
}

/// What a sandbox knows, persisted as `state.json` so a restarted localfargate adopts it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    created_at: SystemTime,
    ready_at: Option<SystemTime>,
    stopped_at: Option<SystemTime>,
    netns: Option<PathBuf>,
    containers: Vec<Ctr>,
    events: VecDeque<RuntimeEvent>,
    next_seq: u64,
    removed: bool,
}

/// One container's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ctr {
    name: String,
    init: bool,
    requested: bool,
    state: ContainerState,
    last_state: Option<ContainerState>,
    /// Kubernetes' `restartCount` and the back-off step (see [`RestartState`]).
    restart: RestartState,
    /// When a pending restart is due.
    restart_at: Option<SystemTime>,
    /// The current or last run.
    run: Option<Run>,
    image: Option<String>,
    image_id: Option<String>,
    /// Image pulls that failed in a row, and when the next may start.
    image_failures: u64,
    image_retry_at: Option<SystemTime>,
    ready: bool,
    started: bool,
    /// Ended by `stop`: never restarted.
    stopped: bool,
}

/// One run of a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Run {
    /// runc's container id (64 hex).
    id: String,
    /// The run's number (its `restartCount`), naming its log file.
    number: u32,
    dir: PathBuf,
    shim_pid: Option<i32>,
    pid: Option<i32>,
    started_at: Option<SystemTime>,
    /// The container cgroup's OOM kills before the run started.
    oom_before: u64,
    /// Whether the run's exit has been read.
    finished: bool,
}

impl Run {
    fn exit_file(&self) -> PathBuf {
        self.dir.join("exit.json")
    }
    fn started_file(&self) -> PathBuf {
        self.dir.join("started.json")
    }
    fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
}

/// Why a process runtime cannot be built on this host.
pub fn unavailable_reason(config: &RuntimeConfig) -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not running as root (namespaces, cgroups and mounts need it)".into());
    }
    if let Err(e) = Cgroups::detect(&config.cgroup_parent) {
        return Some(format!("no usable cgroups: {e}"));
    }
    if !Path::new("/proc/self/ns/net").exists() {
        return Some("network namespaces are not available".into());
    }
    let runc = std::process::Command::new(&config.oci_runtime)
        .arg("--version")
        .output();
    if !runc.is_ok_and(|o| o.status.success()) {
        return Some(format!(
            "the OCI runtime {} is not installed (apt-get install runc)",
            config.oci_runtime.display()
        ));
    }
    if config.shim_command.is_empty() {
        return Some("no shim command".into());
    }
    None
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> RuntimeError {
    let context = context.into();
    move |source| RuntimeError::Io { context, source }
}

/// Sets a terminal's window size through its master (a `kubectl exec -it` or `attach` resize).
fn set_window_size(master: &impl std::os::fd::AsRawFd, size: crate::TerminalSize) {
    let ws = libc::winsize {
        ws_row: size.height,
        ws_col: size.width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // Safety: TIOCSWINSZ on an open terminal master with a valid winsize.
    unsafe {
        libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
    }
}

/// A pod's sandbox id: `p` and 11 hex digits of a hash of its uid (short enough for interface,
/// netns and cgroup names).
fn sandbox_id_of(pod_uid: &str) -> SandboxId {
    SandboxId(format!("p{}", &hex_id(&[pod_uid])[..11]))
}

fn hex_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

impl ProcessRuntime {
    /// Builds the runtime and adopts the sandboxes an earlier run left in the state directory.
    pub async fn new(config: RuntimeConfig) -> Result<ProcessRuntime, RuntimeError> {
        if let Some(reason) = unavailable_reason(&config) {
            return Err(RuntimeError::Unavailable {
                kind: RuntimeKind::Process,
                reason,
            });
        }
        for d in [&config.state_dir, &config.log_dir, &config.image_dir] {
            std::fs::create_dir_all(d).map_err(io_err(format!("creating {}", d.display())))?;
        }
        let images = ImageStore::open(
            &config.image_dir,
            RegistryConfig {
                insecure: config.insecure_registries.clone(),
                mirrors: config.registry_mirrors.clone(),
            },
        )?;
        let net = Arc::new(PodNetwork::new(NetworkConfig {
            bridge: config.bridge.clone(),
            netns_prefix: config.netns_prefix.clone(),
            egress: config.egress,
        }));
        let cgroups = Cgroups::detect(&config.cgroup_parent)?;
        let host_hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(_, hard)| hard)
            .unwrap_or(bundle::FARGATE_NOFILE.1);
        let nofile_hard = bundle::FARGATE_NOFILE.1.min(host_hard);
        if nofile_hard < bundle::FARGATE_NOFILE.1 {
            tracing::info!(
                host = host_hard,
                "containers get an open-files hard limit of {nofile_hard}, this host's, instead of Fargate's 65535"
            );
        }
        let seccomp_available = seccomp::host_supports_seccomp();
        if !seccomp_available {
            tracing::warn!(
                "this kernel has no seccomp: containers asking for the RuntimeDefault seccomp profile run without one"
            );
        }
        let (changes, _) = broadcast::channel(4096);
        let rt = ProcessRuntime {
            inner: Arc::new(Inner {
                config,
                images,
                net: net.clone(),
                cgroups,
                sandboxes: Mutex::new(HashMap::new()),
                changes,
                nofile_hard,
                seccomp_available,
                gateways: Mutex::new(Default::default()),
                service_path: Arc::new(crate::service_proxy::NftDataPath::new(net.clone())),
                address_claims: crate::address_claims::AddressClaims::new(
                    crate::address_claims::CLAIMS_DIR,
                ),
            }),
        };
        rt.adopt().await;
        Ok(rt)
    }

    /// The image store (for `localfargate image …`).
    pub fn images(&self) -> &ImageStore {
        &self.inner.images
    }

    fn sandboxes_dir(&self) -> PathBuf {
        self.inner.config.state_dir.join("sandboxes")
    }

    /// Finds sandboxes of an earlier run and resumes supervising them: running containers
    /// keep running (their shims are alive), exits that happened meanwhile are read.
    async fn adopt(&self) {
        let Ok(entries) = std::fs::read_dir(self.sandboxes_dir()) else {
            return;
        };
        for e in entries.flatten() {
            let dir = e.path();
            let spec: Option<SandboxSpec> = std::fs::read(dir.join("spec.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let state: Option<State> = std::fs::read(dir.join("state.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let id = SandboxId(e.file_name().to_string_lossy().into_owned());
            match (spec, state) {
                (Some(spec), Some(state)) if !state.removed => {
                    tracing::info!(sandbox = %id, pod = %spec.pod_ref(), "adopting sandbox");
                    let sb = self.insert(id, spec, dir, state);
                    let containers = sb.state().containers.clone();
                    for (i, c) in containers.iter().enumerate() {
                        if let Some(run) = c.run.as_ref().filter(|r| !r.finished) {
                            self.watch_shim(&sb, run);
                            if run.started_at.is_some()
                                && let Some(spec) = sb.spec.containers.get(i)
                            {
                                probe::start(self, &sb, i, spec, run);
                            }
                            let (tx, _) = watch::channel(false);
                            sb.log_done
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(c.name.clone(), tx);
                        }
                    }
                }
                _ => {
                    // Half made, or removed but not cleaned up: clean it up.
                    tracing::info!(sandbox = %id, "removing a leftover sandbox");
                    self.teardown(&id, &dir, None).await;
                }
            }
        }
    }

    fn insert(&self, id: SandboxId, spec: SandboxSpec, dir: PathBuf, state: State) -> Arc<Sandbox> {
        let sb = Arc::new(Sandbox {
            id: id.clone(),
            spec,
            dir,
            state: Mutex::new(state),
            wake: Notify::new(),
            log_done: Mutex::new(HashMap::new()),
            probes: Mutex::new(HashMap::new()),
            abandoned: Default::default(),
            persist_lock: Mutex::new(()),
        });
        self.map().insert(id, sb.clone());
        let rt = self.clone();
        let sb2 = sb.clone();
        tokio::spawn(async move { rt.supervise(sb2).await });
        sb
    }

    fn map(&self) -> MutexGuard<'_, HashMap<SandboxId, Arc<Sandbox>>> {
        self.inner
            .sandboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, id: &SandboxId) -> Result<Arc<Sandbox>, RuntimeError> {
        self.map()
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::NotFound(format!("sandbox {id}")))
    }

    fn changed(&self, id: &SandboxId) {
        let _ = self.inner.changes.send(id.clone());
    }

    /// Wakes the supervisor when the shim of `run` exits (a pidfd becomes readable).
    fn watch_shim(&self, sb: &Arc<Sandbox>, run: &Run) {
        let Some(pid) = run.shim_pid else {
            sb.wake.notify_one();
            return;
        };
        let sb = sb.clone();
        tokio::spawn(async move {
            // Safety: pidfd_open takes a pid and flags and returns a new descriptor or -1.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
            if fd >= 0 {
                // Safety: the descriptor was just opened and is owned here alone.
                let owned = unsafe { OwnedFd::from_raw_fd(fd as i32) };
                // Safety: `owned` is an open pidfd that the AsyncFd owns until it is dropped.
                if let Ok(afd) =
                    unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }
                {
                    let _ = afd.readable().await;
                }
            }
            // The shim is gone (or was already gone): let the supervisor read the exit.
            sb.wake.notify_one();
        });
    }

    /// Lets go of every sandbox without touching them, as a `kill -9` of localfargate would:
    /// supervisors and probes stop, containers go on. For tests of adoption.
    #[doc(hidden)]
    pub fn abandon(&self) {
        let all: Vec<Arc<Sandbox>> = self.map().drain().map(|(_, sb)| sb).collect();
        for sb in all {
            sb.abandoned
                .store(true, std::sync::atomic::Ordering::SeqCst);
            for c in &sb.spec.containers {
                self.stop_probes(&sb, &c.name);
            }
            sb.wake.notify_one();
        }
    }

    /// The supervisor loop of one sandbox.
    async fn supervise(&self, sb: Arc<Sandbox>) {
        loop {
            if sb.state().removed || sb.abandoned.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let next = self.step(&sb).await;
            sb.persist();
            self.changed(&sb.id);
            let sleep = next
                .and_then(|t| t.duration_since(SystemTime::now()).ok())
                .unwrap_or(Duration::from_secs(3600));
            if next.is_some_and(|t| t <= SystemTime::now()) {
                continue;
            }
            tokio::select! {
                _ = sb.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// One look at the sandbox: set it up, read exits, start what is due. Returns when to look
    /// again at the latest.
    async fn step(&self, sb: &Arc<Sandbox>) -> Option<SystemTime> {
        let now = SystemTime::now();
        let (ready, stopped) = {
            let st = sb.state();
            (st.ready_at.is_some(), st.stopped_at.is_some())
        };
        if !ready && !stopped {
            match self.setup(sb).await {
                Ok(netns) => {
                    let mut st = sb.state();
                    st.ready_at = Some(SystemTime::now());
                    st.netns = Some(netns);
                }
                Err(e) => {
                    sb.event(
                        true,
                        "FailedCreatePodSandBox",
                        format!("Failed to create pod sandbox: {e}"),
                        None,
                    );
                    return Some(now + SETUP_RETRY);
                }
            }
        }
        self.read_exits(sb).await;
        if sb.state().stopped_at.is_some() {
            return None;
        }
        let mut next: Option<SystemTime> = None;
        let mut earliest = |t: SystemTime| next = Some(next.map_or(t, |n: SystemTime| n.min(t)));
        // Which containers may run now: the first init container that has not succeeded, or,
        // once every init container has, all regular ones.
        let due: Vec<usize> = {
            let st = sb.state();
            let mut due = Vec::new();
            let mut inits_done = true;
            for (i, c) in st.containers.iter().enumerate().filter(|(_, c)| c.init) {
                if c.state.exit_code() == Some(0) && c.restart_at.is_none() {
                    continue;
                }
                inits_done = false;
                if c.requested && !c.state.is_running() && c.run_pending() {
                    due.push(i);
                }
                break;
            }
            if inits_done {
                for (i, c) in st.containers.iter().enumerate().filter(|(_, c)| !c.init) {
                    if c.requested && !c.state.is_running() && c.run_pending() {
                        due.push(i);
                    }
                }
            }
            due
        };
        for i in due {
            let wait = {
                let st = sb.state();
                let c = &st.containers[i];
                [c.restart_at, c.image_retry_at]
                    .into_iter()
                    .flatten()
                    .filter(|t| *t > now)
                    .max()
            };
            match wait {
                Some(t) => earliest(t),
                None => {
                    if let Some(t) = self.start_run(sb, i).await {
                        earliest(t);
                    }
                }
            }
        }
        next
    }

    /// Builds the sandbox: cgroups, network namespace, shared namespaces, `/etc` files,
    /// volumes. Idempotent.
    async fn setup(&self, sb: &Arc<Sandbox>) -> Result<PathBuf, RuntimeError> {
        let spec = &sb.spec;
        let inner = &self.inner;
        // The pod-level profile is the sandbox's own too: containerd cannot create it.
        if let Some(crate::SeccompProfile::Localhost(profile)) = &spec.security.seccomp {
            return Err(RuntimeError::Backend(format!(
                "rpc error: code = Unknown desc = {}",
                seccomp::missing_localhost_profile(profile)
            )));
        }
        inner.cgroups.create_pod(
            sb.id.as_str(),
            &PodLimits {
                cpu_millis: (spec.vcpu * 1000.0).round() as u64,
                memory_bytes: spec.memory_mib * 1024 * 1024,
                pids: Some(bundle::FARGATE_NOFILE.1),
            },
        )?;
        for c in &spec.containers {
            inner.cgroups.create_container(
                sb.id.as_str(),
                &c.name,
                &ContainerLimits {
                    cpu_millis: c.resources.cpu_limit_millis,
                    memory_bytes: c.resources.memory_limit_bytes,
                },
            )?;
        }
        let gw = (spec.gateway, spec.prefix_len);
        if !spec.gateway.is_unspecified() {
            let known = inner
                .gateways
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&gw);
            if !known {
                inner.net.ensure_gateway(gw.0, gw.1).await?;
                inner
                    .gateways
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(gw);
            }
        }
        let netns = inner
            .net
            .attach(&PodAttachment {
                id: sb.id.to_string(),
                ip: spec.ip,
                prefix_len: spec.prefix_len,
                gateway: spec.gateway,
            })
            .await?;
        let dir = sb.dir.clone();
        let spec = spec.clone();
        let (rt, id) = (self.clone(), sb.id.clone());
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            sandbox_setup::create_namespaces(&dir.join("ns"), &spec.hostname)?;
            if spec.share_process_namespace {
                rt.ensure_pause(&id, &dir)?;
            }
            sandbox_setup::write_etc(&dir.join("etc"), &spec)?;
            sandbox_setup::make_volumes(&dir.join("volumes"), &spec)?;
            Ok(())
        })
        .await
        .map_err(|e| RuntimeError::Io {
            context: "setting up the sandbox".into(),
            source: io::Error::other(e),
        })?
        .map_err(io_err("setting up the sandbox"))?;
        Ok(netns)
    }

    /// Starts the next run of container `i`. Returns when to look again if it could not start
    /// (an image back-off).
    async fn start_run(&self, sb: &Arc<Sandbox>, i: usize) -> Option<SystemTime> {
        let c = sb.spec.containers[i].clone();
        {
            let mut st = sb.state();
            let ctr = &mut st.containers[i];
            if ctr.restart_at.take().is_some() {
                ctr.restart.restarted();
            }
        }
        // The image, as the kubelet's pull policy says.
        let present = self.inner.images.get(&c.image).is_some();
        let will_pull = match c.pull_policy {
            PullPolicy::Always => true,
            PullPolicy::IfNotPresent => !present,
            PullPolicy::Never => false,
        };
        if will_pull {
            sb.event(
                false,
                "Pulling",
                format!("Pulling image \"{}\"", c.image),
                Some(&c.name),
            );
            self.changed(&sb.id);
        }
        let outcome = self
            .inner
            .images
            .ensure(&c.image, c.pull_policy, &sb.spec.pull_secrets)
            .await;
        // EKS's CoreDNS image out of reach (offline): the built-in CoreDNS runs instead.
        let mut builtin = false;
        let outcome = match outcome {
            Err(e) if crate::builtin_coredns::replaces(&c.image) => {
                match crate::builtin_coredns::ensure(&self.inner.images).await {
                    Ok(o) => {
                        builtin = true;
                        sb.event(
                            false,
                            "BuiltinImage",
                            format!("Image \"{}\" cannot be pulled ({e}): running localfargate's built-in CoreDNS instead", c.image),
                            Some(&c.name),
                        );
                        Ok(o)
                    }
                    Err(b) => {
                        tracing::warn!(error = %b, "preparing the built-in CoreDNS image");
                        Err(e)
                    }
                }
            }
            other => other,
        };
        let image = match outcome {
            Ok(o) => {
                if builtin {
                    // The BuiltinImage event said where the image came from.
                } else if o.pulled || will_pull {
                    sb.event(
                        false,
                        "Pulled",
                        format!(
                            "Successfully pulled image \"{}\" in {} ({} including waiting). Image size: {} bytes.",
                            c.image,
                            format_duration(o.took),
                            format_duration(o.took),
                            o.image.size
                        ),
                        Some(&c.name),
                    );
                } else {
                    sb.event(
                        false,
                        "Pulled",
                        format!("Container image \"{}\" already present on machine", c.image),
                        Some(&c.name),
                    );
                }
                let mut st = sb.state();
                let ctr = &mut st.containers[i];
                ctr.image_failures = 0;
                ctr.image_retry_at = None;
                ctr.image = Some(o.image.reference.clone());
                ctr.image_id = Some(o.image.image_id.clone());
                o.image
            }
            Err(e) => return Some(self.image_failed(sb, i, &c, e)),
        };
        if sb.stopping() {
            return None;
        }
        // A bad volume or a config error ends here, before any process.
        if let Some(msg) = unsupported_mount(&sb.spec, &c) {
            let mut st = sb.state();
            st.containers[i].state = ContainerState::Waiting {
                reason: "CreateContainerConfigError".into(),
                message: Some(msg.clone()),
            };
            drop(st);
            sb.event(true, "Failed", format!("Error: {msg}"), Some(&c.name));
            return Some(SystemTime::now() + SETUP_RETRY);
        }
        let number = sb.state().containers[i].restart.restart_count;
        let run_id = hex_id(&[
            sb.id.as_str(),
            &c.name,
            &number.to_string(),
            &format!("{:?}", SystemTime::now()),
        ]);
        let run_dir = sb
            .dir
            .join("containers")
            .join(&c.name)
            .join(number.to_string());
        let oom_before = self
            .inner
            .cgroups
            .oom_kills(sb.id.as_str(), &c.name)
            .unwrap_or(0);
        let mut run = Run {
            id: run_id.clone(),
            number,
            dir: run_dir.clone(),
            shim_pid: None,
            pid: None,
            started_at: None,
            oom_before,
            finished: false,
        };
        match self.prepare_run(sb, &c, &image, &run).await {
            Ok(()) => {}
            Err(e @ (bundle::BundleError::Config(_) | bundle::BundleError::Create(_))) => {
                sandbox_setup::unmount_rootfs(&run.rootfs());
                let reason = match e {
                    bundle::BundleError::Config(_) => "CreateContainerConfigError",
                    _ => "CreateContainerError",
                };
                let msg = e.to_string();
                sb.state().containers[i].state = ContainerState::Waiting {
                    reason: reason.into(),
                    message: Some(msg.clone()),
                };
                sb.event(true, "Failed", format!("Error: {msg}"), Some(&c.name));
                return Some(SystemTime::now() + SETUP_RETRY);
            }
            Err(e) => return self.start_failed(sb, i, &run, e.to_string()),
        }
        if sb.stopping() {
            // Deleted while the run was being prepared: nothing starts.
            sandbox_setup::unmount_rootfs(&run.rootfs());
            return None;
        }
        self.prune_runs(sb, &c.name, number);
        sb.event(
            false,
            "Created",
            format!("Created container {}", c.name),
            Some(&c.name),
        );
        let log = self.log_path(sb, &c.name, number);
        let args = ShimArgs {
            runc: self.inner.config.oci_runtime.clone(),
            root: self.runc_root(),
            bundle: run_dir.clone(),
            id: run_id.clone(),
            log: log.clone(),
            log_max_bytes: self.inner.config.log_max_bytes,
            log_max_files: self.inner.config.log_max_files,
            exit: run.exit_file(),
            started: run.started_file(),
            stdin: c.stdin,
            tty: c.tty,
        };
        let command = self.inner.config.shim_command.clone();
        let spawned = tokio::task::spawn_blocking(move || shim::spawn(&command, &args)).await;
        let shim_pid = match spawned {
            Ok(Ok(pid)) => pid,
            Ok(Err(e)) => return self.start_failed(sb, i, &run, format!("starting the shim: {e}")),
            Err(e) => return self.start_failed(sb, i, &run, format!("starting the shim: {e}")),
        };
        run.shim_pid = Some(shim_pid);
        let (done_tx, _) = watch::channel(false);
        sb.log_done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(c.name.clone(), done_tx);
        {
            let mut st = sb.state();
            st.containers[i].run = Some(run.clone());
        }
        sb.persist();
        self.watch_shim(sb, &run);
        // runc create + start take tens of milliseconds; wait for one of the shim's files.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(started) = read_json::<ShimStarted>(&run.started_file()) {
                let mut st = sb.state();
                let ctr = &mut st.containers[i];
                if let Some(r) = ctr.run.as_mut() {
                    r.started_at = Some(started.started_at);
                    r.pid = Some(started.pid);
                }
                ctr.state = ContainerState::Running {
                    started_at: started.started_at,
                };
                let (has_startup, has_readiness) = (c.startup.is_some(), c.readiness.is_some());
                ctr.started = !has_startup;
                ctr.ready = !has_startup && !has_readiness;
                drop(st);
                sb.event(
                    false,
                    "Started",
                    format!("Started container {}", c.name),
                    Some(&c.name),
                );
                break;
            }
            if run.exit_file().exists() || Instant::now() > deadline {
                // The exit is read by `read_exits`.
                sb.wake.notify_one();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.after_start(sb, i, &c, &run).await;
        None
    }

    /// The postStart hook and the probes of a run that has just started.
    async fn after_start(&self, sb: &Arc<Sandbox>, i: usize, c: &ContainerSpec, run: &Run) {
        if let Some(hook) = &c.post_start
            && let Err(msg) = probe::perform(self, sb, run, hook, sb.spec.termination_grace).await
        {
            // As the kubelet: the handler's output stays out of the event (it may hold secrets).
            tracing::info!(sandbox = %sb.id, container = %c.name, "postStart hook failed: {msg}");
            sb.event(
                true,
                "FailedPostStartHook",
                "PostStartHook failed".into(),
                Some(&c.name),
            );
            let deadline = Instant::now() + sb.spec.termination_grace;
            self.kill_container(sb, c, run, "FailedPostStartHook".into(), deadline)
                .await;
            return;
        }
        probe::start(self, sb, i, c, run);
    }

    /// Overlay root filesystem, termination-log file and `config.json` of a run.
    async fn prepare_run(
        &self,
        sb: &Arc<Sandbox>,
        c: &ContainerSpec,
        image: &crate::image::Image,
        run: &Run,
    ) -> Result<(), bundle::BundleError> {
        let layers = image.layers.clone();
        let run_dir = run.dir.clone();
        let rootfs = run.rootfs();
        let sandbox_dir = sb.dir.clone();
        let pod = sb.spec.clone();
        let c2 = c.clone();
        let image_config = image.config.clone();
        let builtin_coredns = crate::builtin_coredns::is_builtin(&image.reference);
        let cgroups_path = self
            .inner
            .cgroups
            .run_path(sb.id.as_str(), &c.name, run.number);
        let netns = sb.state().netns.clone().unwrap_or_default();
        let nofile_hard = self.inner.nofile_hard;
        let seccomp_available = self.inner.seccomp_available;
        let (rt, id) = (self.clone(), sb.id.clone());
        tokio::task::spawn_blocking(move || -> Result<(), bundle::BundleError> {
            // The pod's PID namespace, held by its pause process (started again if it died).
            let pid_ns = if pod.share_process_namespace {
                Some(rt.ensure_pause(&id, &sandbox_dir).map_err(|e| {
                    bundle::BundleError::Invalid(format!("starting the pause process: {e}"))
                })?)
            } else {
                None
            };
            let _ = std::fs::remove_dir_all(&run_dir);
            std::fs::create_dir_all(&run_dir).map_err(|e| {
                bundle::BundleError::Invalid(format!("creating {}: {e}", run_dir.display()))
            })?;
            sandbox_setup::mount_rootfs(
                &layers,
                &run_dir.join("upper"),
                &run_dir.join("work"),
                &rootfs,
            )
            .map_err(|e| {
                bundle::BundleError::Invalid(format!("mounting the root filesystem: {e}"))
            })?;
            let termination_log = run_dir.join("termination-log");
            std::fs::write(&termination_log, b"")
                .map_err(|e| bundle::BundleError::Invalid(e.to_string()))?;
            let volumes = pod
                .volumes
                .iter()
                .map(|v| (v.name.clone(), sandbox_dir.join("volumes").join(&v.name)))
                .collect::<Vec<_>>();
            let paths = bundle::RunPaths {
                rootfs: &rootfs,
                netns: &netns,
                ipc_ns: &sandbox_dir.join("ns/ipc"),
                uts_ns: &sandbox_dir.join("ns/uts"),
                pid_ns: pid_ns.as_deref(),
                etc_dir: &sandbox_dir.join("etc"),
                termination_log: &termination_log,
                volumes: &volumes,
                cgroups_path: &cgroups_path,
                nofile_hard,
                seccomp_available,
            };
            let mut spec = bundle::spec(&pod, &c2, &image_config, &paths)?;
            if builtin_coredns {
                // The built-in CoreDNS: localfargate's binary and its libraries, read-only.
                let mut mounts = spec.mounts().clone().unwrap_or_default();
                for (dest, source) in
                    crate::builtin_coredns::mounts().map_err(bundle::BundleError::Invalid)?
                {
                    mounts.push(bundle::bind(&dest, &source, true)?);
                }
                spec.set_mounts(Some(mounts));
            }
            spec.save(run_dir.join("config.json"))
                .map_err(|e| bundle::BundleError::Invalid(format!("writing config.json: {e}")))?;
            Ok(())
        })
        .await
        .map_err(|e| bundle::BundleError::Invalid(e.to_string()))?
    }

    /// Keeps the current and the previous run of a container (what `--previous` reads), as
    /// the kubelet does: older runs' directories and logs go.
    fn prune_runs(&self, sb: &Sandbox, container: &str, number: u32) {
        if let Some(old) = number.checked_sub(2) {
            let dir = sb.dir.join("containers").join(container);
            let log_dir = self.log_dir(sb).join(container);
            for n in 0..=old {
                let run_dir = dir.join(n.to_string());
                if run_dir.exists() {
                    sandbox_setup::unmount_rootfs(&run_dir.join("rootfs"));
                    let _ = std::fs::remove_dir_all(&run_dir);
                }
                if let Ok(entries) = std::fs::read_dir(&log_dir) {
                    let prefix = format!("{n}.log");
                    for e in entries.flatten() {
                        if e.file_name().to_string_lossy().starts_with(&prefix) {
                            let _ = std::fs::remove_file(e.path());
                        }
                    }
                }
            }
        }
    }

    fn runc_root(&self) -> PathBuf {
        self.inner.config.state_dir.join("runc")
    }

    fn log_dir(&self, sb: &Sandbox) -> PathBuf {
        self.inner.config.log_dir.join(format!(
            "{}_{}_{}",
            sb.spec.namespace, sb.spec.name, sb.spec.pod_uid
        ))
    }

    fn log_path(&self, sb: &Sandbox, container: &str, number: u32) -> PathBuf {
        self.log_dir(sb)
            .join(container)
            .join(format!("{number}.log"))
    }

    /// A pull that failed: `ErrImagePull` (then `ImagePullBackOff`), `InvalidImageName` or
    /// `ErrImageNeverPull`, with the kubelet's events. Returns when to try again.
    fn image_failed(
        &self,
        sb: &Arc<Sandbox>,
        i: usize,
        c: &ContainerSpec,
        e: ImageError,
    ) -> SystemTime {
        let now = SystemTime::now();
        let (reason, message, retry) = match &e {
            ImageError::InvalidName { .. } => {
                sb.event(true, "InspectFailed", e.to_string(), Some(&c.name));
                sb.event(
                    true,
                    "Failed",
                    "Error: InvalidImageName".into(),
                    Some(&c.name),
                );
                ("InvalidImageName", e.to_string(), Duration::from_secs(300))
            }
            ImageError::NeverPull { .. } => {
                sb.event(true, "ErrImageNeverPull", e.to_string(), Some(&c.name));
                sb.event(
                    true,
                    "Failed",
                    "Error: ErrImageNeverPull".into(),
                    Some(&c.name),
                );
                ("ErrImageNeverPull", e.to_string(), Duration::from_secs(10))
            }
            _ => {
                let failures = sb.state().containers[i].image_failures;
                let msg = e.pull_message(&c.image);
                if failures == 0 {
                    sb.event(true, "Failed", msg.clone(), Some(&c.name));
                    sb.event(true, "Failed", "Error: ErrImagePull".into(), Some(&c.name));
                    ("ErrImagePull", msg, IMAGE_BACKOFF.delay(1, None))
                } else {
                    let back = format!("Back-off pulling image \"{}\"", c.image);
                    sb.event(false, "BackOff", back.clone(), Some(&c.name));
                    sb.event(
                        true,
                        "Failed",
                        "Error: ImagePullBackOff".into(),
                        Some(&c.name),
                    );
                    (
                        "ImagePullBackOff",
                        back,
                        IMAGE_BACKOFF.delay(failures + 1, None),
                    )
                }
            }
        };
        let mut st = sb.state();
        let ctr = &mut st.containers[i];
        ctr.image_failures += 1;
        ctr.image_retry_at = Some(now + retry);
        ctr.state = ContainerState::Waiting {
            reason: reason.into(),
            message: Some(message),
        };
        now + retry
    }

    /// A run that could not start (runc refused it: a missing binary, `exec format error`, a
    /// bad mount): `RunContainerError`, then restarts by the policy like an exit with 128.
    fn start_failed(
        &self,
        sb: &Arc<Sandbox>,
        i: usize,
        run: &Run,
        message: String,
    ) -> Option<SystemTime> {
        let name = sb.spec.containers[i].name.clone();
        sb.event(true, "Failed", format!("Error: {message}"), Some(&name));
        let rootfs = run.rootfs();
        sandbox_setup::unmount_rootfs(&rootfs);
        let now = SystemTime::now();
        let terminated = ContainerState::Terminated {
            exit_code: 128,
            reason: "StartError".into(),
            message: Some(message.clone()),
            started_at: now,
            finished_at: now,
        };
        let mut st = sb.state();
        let ctr = &mut st.containers[i];
        match ctr.run_ended(
            run,
            &self.inner.config.restart_backoff,
            sb.spec.restart_policy,
            128,
            Duration::ZERO,
            false,
        ) {
            AfterExit::Restart { delay } => {
                ctr.last_state = Some(terminated);
                ctr.state = ContainerState::Waiting {
                    reason: "RunContainerError".into(),
                    message: Some(message),
                };
                ctr.restart_at = Some(now + delay);
                Some(now + delay)
            }
            AfterExit::Done => {
                ctr.state = terminated;
                None
            }
        }
    }

    /// Reads the exit of every run whose shim has ended.
    async fn read_exits(&self, sb: &Arc<Sandbox>) {
        let runs: Vec<(usize, Run)> = sb
            .state()
            .containers
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.run.clone().filter(|r| !r.finished).map(|r| (i, r)))
            .collect();
        for (i, mut run) in runs {
            // Started while nobody looked (a restart of localfargate, a slow start).
            if run.started_at.is_none()
                && let Some(started) = read_json::<ShimStarted>(&run.started_file())
            {
                let mut st = sb.state();
                let ctr = &mut st.containers[i];
                if let Some(r) = ctr.run.as_mut() {
                    r.started_at = Some(started.started_at);
                    r.pid = Some(started.pid);
                    run = r.clone();
                }
                if !ctr.state.is_running() {
                    ctr.state = ContainerState::Running {
                        started_at: started.started_at,
                    };
                    let spec = &sb.spec.containers[i];
                    ctr.started = spec.startup.is_none();
                    ctr.ready = spec.startup.is_none() && spec.readiness.is_none();
                }
            }
            let exit = read_json::<ShimExit>(&run.exit_file());
            let alive = run.shim_pid.is_some_and(pid_alive);
            let exit = match exit {
                Some(e) => e,
                None if alive => continue,
                // The shim died without writing its exit (killed): the container is gone too
                // (its init was the shim's child) or orphaned; say so.
                None => {
                    let _ = self
                        .runc()
                        .args(["delete", "--force", &run.id])
                        .output()
                        .await;
                    ShimExit {
                        exit_code: 137,
                        signal: None,
                        finished_at: SystemTime::now(),
                        error: Some("the container's shim ended unexpectedly".into()),
                    }
                }
            };
            self.finish_run(sb, i, &run, exit).await;
        }
    }

    /// Records a run's end: `OOMKilled`, `Completed`, `Error` or a start error, its
    /// termination message, and whether (and when) it restarts.
    async fn finish_run(&self, sb: &Arc<Sandbox>, i: usize, run: &Run, exit: ShimExit) {
        // The supervisor and `stop` may both read an exit: it is recorded once.
        {
            let mut st = sb.state();
            match st.containers[i].run.as_mut() {
                Some(r) if r.id == run.id && !r.finished => r.finished = true,
                _ => return,
            }
        }
        let c = sb.spec.containers[i].clone();
        self.stop_probes(sb, &c.name);
        if let Some(tx) = sb
            .log_done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&c.name)
        {
            let _ = tx.send(true);
        }
        sandbox_setup::unmount_rootfs(&run.rootfs());
        if let Some(message) = exit.error.clone().filter(|_| run.started_at.is_none()) {
            let _ = self.start_failed(sb, i, run, message);
            return;
        }
        // Before the runc container goes: on cgroup v1 its leaf cgroup holds the OOM count.
        let oom_after = self
            .inner
            .cgroups
            .oom_kills(sb.id.as_str(), &c.name)
            .unwrap_or(0);
        let _ = self
            .runc()
            .args(["delete", "--force", &run.id])
            .output()
            .await;
        // As containerd reports it: the run failed and the OOM killer killed one of its
        // processes (its init, or a child whose death failed the init).
        let oom = oom_after > run.oom_before && exit.exit_code != 0;
        let reason = if oom {
            "OOMKilled"
        } else if exit.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        };
        let log = self.log_path(sb, &c.name, run.number);
        let message =
            termination_message(&run.dir.join("termination-log"), &log, &c, exit.exit_code);
        let started_at = run.started_at.unwrap_or(exit.finished_at);
        let terminated = ContainerState::Terminated {
            exit_code: exit.exit_code,
            reason: reason.into(),
            message,
            started_at,
            finished_at: exit.finished_at,
        };
        let ran = exit
            .finished_at
            .duration_since(started_at)
            .unwrap_or_default();
        let policy = sb.spec.restart_policy;
        let pod = format!(
            "{}_{}({})",
            sb.spec.name, sb.spec.namespace, sb.spec.pod_uid
        );
        let mut st = sb.state();
        let stopping = st.stopped_at.is_some();
        let ctr = &mut st.containers[i];
        match ctr.run_ended(
            run,
            &self.inner.config.restart_backoff,
            policy,
            exit.exit_code,
            ran,
            stopping,
        ) {
            AfterExit::Restart { delay } => {
                ctr.last_state = Some(terminated);
                ctr.restart_at = Some(SystemTime::now() + delay);
                ctr.state = ContainerState::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: Some(format!(
                        "back-off {} restarting failed container={} pod={pod}",
                        format_duration(delay),
                        c.name
                    )),
                };
                drop(st);
                sb.event(
                    true,
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {} in pod {pod}",
                        c.name
                    ),
                    Some(&c.name),
                );
            }
            AfterExit::Done => {
                ctr.state = terminated;
            }
        }
    }

    fn stop_probes(&self, sb: &Sandbox, container: &str) {
        if let Some(handles) = sb
            .probes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(container)
        {
            for h in handles {
                h.abort();
            }
        }
    }

    fn runc(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.inner.config.oci_runtime);
        c.arg("--root").arg(self.runc_root());
        c.kill_on_drop(true);
        c
    }

    /// `runc exec --process FILE ID`: the process is the container's own (environment, user,
    /// capabilities, Fargate's rlimits), written with `command` and `tty` to a file in the
    /// run's directory, as containerd does. Without `--process`, runc 1.1 gives the exec'd
    /// process runc's own open-files limit instead of the container's.
    fn runc_exec(
        &self,
        run: &Run,
        command: &[String],
        tty: bool,
        pid_file: Option<&Path>,
    ) -> Result<(tokio::process::Command, PathBuf), RuntimeError> {
        let config = oci_spec::runtime::Spec::load(run.dir.join("config.json")).map_err(|e| {
            RuntimeError::Io {
                context: format!(
                    "reading the container's config.json in {}",
                    run.dir.display()
                ),
                source: io::Error::other(e),
            }
        })?;
        let mut process = config.process().clone().unwrap_or_default();
        process.set_args(Some(command.to_vec()));
        process.set_terminal(Some(tty));
        let file = run.dir.join(format!(
            "exec-{}.json",
            &hex_id(&[&format!("{:?}", Instant::now()), &run.id])[..16]
        ));
        shim::write_json(&file, &process).map_err(io_err("writing the exec process"))?;
        let mut c = self.runc();
        c.arg("exec");
        if let Some(p) = pid_file {
            c.arg("--pid-file").arg(p);
        }
        c.arg("--process").arg(&file).arg(&run.id);
        Ok((c, file))
    }

    /// The kubelet's way to kill a container (deletion, a failed liveness or startup probe): the
    /// `Killing` event with `message`, the preStop hook within the grace period, then SIGTERM and
    /// SIGKILL at `deadline`.
    async fn kill_container(
        &self,
        sb: &Arc<Sandbox>,
        c: &ContainerSpec,
        run: &Run,
        message: String,
        deadline: Instant,
    ) {
        sb.event(false, "Killing", message, Some(&c.name));
        if let Some(hook) = &c.pre_stop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(msg) = tokio::time::timeout(left, probe::perform(self, sb, run, hook, left))
                .await
                .unwrap_or_else(|_| Err("timed out".into()))
            {
                tracing::info!(sandbox = %sb.id, container = %c.name, "preStop hook failed: {msg}");
                sb.event(
                    true,
                    "FailedPreStopHook",
                    "PreStopHook failed".into(),
                    Some(&c.name),
                );
            }
        }
        self.kill_run(run, deadline.saturating_duration_since(Instant::now()))
            .await;
    }

    /// SIGTERM, then SIGKILL after `grace`; returns once the run's shim has written its exit.
    async fn kill_run(&self, run: &Run, grace: Duration) {
        let _ = self.runc().args(["kill", &run.id, "TERM"]).output().await;
        let deadline = Instant::now() + grace;
        while !run.exit_file().exists() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !run.exit_file().exists() {
            let _ = self
                .runc()
                .args(["kill", "--all", &run.id, "KILL"])
                .output()
                .await;
            let deadline = Instant::now() + Duration::from_secs(10);
            while !run.exit_file().exists() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Removes everything of a sandbox: containers, mounts, network, cgroups, files, logs.
    async fn teardown(&self, id: &SandboxId, dir: &Path, log_dir: Option<PathBuf>) {
        // Every run's runc container and root filesystem.
        if let Ok(names) = std::fs::read_dir(dir.join("containers")) {
            for n in names.flatten() {
                if let Ok(runs) = std::fs::read_dir(n.path()) {
                    for r in runs.flatten() {
                        let rootfs = r.path().join("rootfs");
                        sandbox_setup::unmount_rootfs(&rootfs);
                    }
                }
            }
        }
        if let Ok(out) = self
            .runc()
            .args(["list", "--format", "json"])
            .output()
            .await
        {
            let list: Vec<serde_json::Value> =
                serde_json::from_slice(&out.stdout).unwrap_or_default();
            for c in list {
                let bundle = c["bundle"].as_str().unwrap_or("");
                if Path::new(bundle).starts_with(dir)
                    && let Some(cid) = c["id"].as_str()
                {
                    let _ = self.runc().args(["delete", "--force", cid]).output().await;
                }
            }
        }
        sandbox_setup::unmount_volumes(&dir.join("volumes"));
        // Every container is gone: the pause process ends, and its PID namespace with it.
        let ns_dir = dir.join("ns");
        let _ = tokio::task::spawn_blocking(move || pause::stop(&ns_dir)).await;
        sandbox_setup::remove_namespaces(&dir.join("ns"));
        if let Err(e) = self.inner.net.detach(id.as_str()).await {
            tracing::warn!(sandbox = %id, error = %e, "removing the pod network");
        }
        if let Err(e) = self.inner.cgroups.remove_pod(id.as_str()) {
            tracing::warn!(sandbox = %id, error = %e, "removing the pod cgroups");
        }
        if let Err(e) = std::fs::remove_dir_all(dir)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(sandbox = %id, error = %e, "removing the sandbox directory");
        }
        if let Some(l) = log_dir {
            let _ = std::fs::remove_dir_all(l);
        }
    }

    /// The pod's pause process (`shareProcessNamespace`), started unless it runs; its PID
    /// namespace's path. Blocking.
    fn ensure_pause(&self, id: &SandboxId, dir: &Path) -> io::Result<PathBuf> {
        let cgroup = self.inner.cgroups.sandbox_path(id.as_str(), PAUSE_CGROUP);
        pause::ensure(&dir.join("ns"), &self.inner.config.shim_command, |pid| {
            self.inner
                .cgroups
                .enter(&cgroup, pid)
                .map_err(io::Error::other)
        })
    }

    fn running_run(&self, sb: &Sandbox, container: &str) -> Result<Run, RuntimeError> {
        let st = sb.state();
        let c = st.container(container, &sb.spec)?;
        match (&c.state, &c.run) {
            (ContainerState::Running { .. }, Some(run)) if !run.finished => Ok(run.clone()),
            _ => Err(RuntimeError::NotRunning {
                pod: sb.spec.name.clone(),
                container: container.to_string(),
            }),
        }
    }
}

impl Ctr {
    /// Records the end of `run` (not ready, not started) and what the restart policy says
    /// follows; a container of a stopping sandbox never restarts.
    fn run_ended(
        &mut self,
        run: &Run,
        backoff: &Backoff,
        policy: crate::RestartPolicy,
        exit_code: i32,
        ran: Duration,
        stopping: bool,
    ) -> AfterExit {
        let mut finished = run.clone();
        finished.finished = true;
        self.run = Some(finished);
        self.ready = false;
        self.started = false;
        self.restart.on_exit(
            backoff,
            policy,
            self.init,
            exit_code,
            ran,
            self.stopped || stopping,
        )
    }

    /// Whether the container should (eventually) run again: never ran, or a restart is pending,
    /// or its image is being retried.
    fn run_pending(&self) -> bool {
        !self.stopped
            && (self.run.is_none()
                || self.restart_at.is_some()
                || self.image_retry_at.is_some()
                || matches!(&self.state, ContainerState::Waiting { reason, .. }
                    if reason == "CreateContainerConfigError" || reason == "CreateContainerError"))
    }
}

impl State {
    /// The container named `name`, or the error that names it and its pod.
    fn container(&self, name: &str, spec: &SandboxSpec) -> Result<&Ctr, RuntimeError> {
        Ok(&self.containers[self.index_of(name, spec)?])
    }

    fn index_of(&self, name: &str, spec: &SandboxSpec) -> Result<usize, RuntimeError> {
        self.containers
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| {
                RuntimeError::NotFound(format!("container \"{name}\" in pod {}", spec.pod_ref()))
            })
    }
}

impl Sandbox {
    fn summary(&self) -> SandboxSummary {
        SandboxSummary {
            id: self.id.clone(),
            pod_uid: self.spec.pod_uid.clone(),
            namespace: self.spec.namespace.clone(),
            name: self.spec.name.clone(),
        }
    }

    /// Being stopped or removed: nothing more starts.
    fn stopping(&self) -> bool {
        let st = self.state();
        st.stopped_at.is_some() || st.removed
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn event(&self, warning: bool, reason: &str, message: String, container: Option<&str>) {
        let mut st = self.state();
        st.next_seq += 1;
        let seq = st.next_seq;
        st.events.push_back(RuntimeEvent {
            seq,
            at: SystemTime::now(),
            warning,
            reason: reason.to_string(),
            message,
            container: container.map(str::to_string),
        });
        while st.events.len() > EVENTS_KEPT {
            st.events.pop_front();
        }
    }

    /// Writes `state.json` (atomically), so a restart finds the sandbox as it is.
    fn persist(&self) {
        let _one = self.persist_lock.lock().unwrap_or_else(|p| p.into_inner());
        let st = self.state().clone();
        if st.removed || self.abandoned.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        if let Err(e) = shim::write_json(&self.dir.join("state.json"), &st) {
            tracing::warn!(sandbox = %self.id, error = %e, "saving sandbox state");
        }
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

fn pid_alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit(')')
                    .next()
                    .map(|r| !r.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
}

/// A volume the container mounts that the runtime cannot provide, as the message.
fn unsupported_mount(spec: &SandboxSpec, c: &ContainerSpec) -> Option<String> {
    c.mounts.iter().find_map(|m| {
        spec.volumes
            .iter()
            .find(|v| v.name == m.name)
            .and_then(|v| match &v.source {
                crate::VolumeSource::Unsupported { message } => Some(message.clone()),
                _ => None,
            })
    })
}

/// The termination message: the file the container wrote (at most 4 KiB), or, with
/// `FallbackToLogsOnError` and a failure, the last lines of its log (at most 80 lines, 2 KiB).
fn termination_message(
    file: &Path,
    log: &Path,
    c: &ContainerSpec,
    exit_code: i32,
) -> Option<String> {
    let mut text = std::fs::read(file).unwrap_or_default();
    text.truncate(TERMINATION_MESSAGE_MAX);
    if text.is_empty()
        && exit_code != 0
        && c.termination_message_policy == TerminationMessagePolicy::FallbackToLogsOnError
    {
        let options = LogOptions {
            tail_lines: Some(80),
            ..Default::default()
        };
        text = crilog::read_log(log, &options).unwrap_or_default();
        if text.len() > 2048 {
            text = text.split_off(text.len() - 2048);
        }
    }
    (!text.is_empty()).then(|| String::from_utf8_lossy(&text).into_owned())
}

#[async_trait]
impl SandboxRuntime for ProcessRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Process
    }

    async fn set_security_group_rules(
        &self,
        cluster: &str,
        rules: &[localfargate_core::security_groups::GroupRules],
        members: Option<&[crate::firewall::Member]>,
    ) -> Result<(), RuntimeError> {
        let bridge = &self.inner.net.config().bridge;
        // Whole tables are written at a cluster's start (and after a failed update): the time
        // to remove those of runs that are gone, whose sets may hold addresses reused here.
        if let Err(e) = crate::firewall::reap_dead_tables(bridge).await {
            tracing::warn!(error = %e, "removing security-group tables of stopped localfargate runs");
        }
        let table = crate::firewall::table_name(bridge, cluster);
        crate::firewall::apply(&crate::firewall::rules_script(&table, rules, members)).await?;
        Ok(())
    }

    async fn change_security_group_members(
        &self,
        cluster: &str,
        add: &[crate::firewall::Member],
        remove: &[crate::firewall::Member],
    ) -> Result<(), RuntimeError> {
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        let table = crate::firewall::table_name(&self.inner.net.config().bridge, cluster);
        crate::firewall::apply(&crate::firewall::members_script(&table, add, remove)).await?;
        Ok(())
    }

    async fn create_sandbox(&self, spec: SandboxSpec) -> Result<SandboxId, RuntimeError> {
        if let Some(existing) = self.map().values().find(|s| s.spec.pod_uid == spec.pod_uid) {
            return Err(RuntimeError::AlreadyExists {
                sandbox: existing.id.clone(),
                pod: spec.pod_ref(),
            });
        }
        let mut names = std::collections::HashSet::new();
        for c in &spec.containers {
            if !names.insert(c.name.as_str()) {
                return Err(RuntimeError::InvalidSpec {
                    pod: spec.pod_ref(),
                    message: format!("two containers are named {:?}", c.name),
                });
            }
        }
        // Short and stable: network interface and namespace names derive from it.
        let id = sandbox_id_of(&spec.pod_uid);
        let dir = self.sandboxes_dir().join(id.as_str());
        std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        shim::write_json(&dir.join("spec.json"), &spec)
            .map_err(io_err("saving the sandbox spec"))?;
        let state = State {
            created_at: SystemTime::now(),
            ready_at: None,
            stopped_at: None,
            netns: None,
            containers: spec
                .containers
                .iter()
                .map(|c| Ctr {
                    name: c.name.clone(),
                    init: c.init,
                    requested: false,
                    state: ContainerState::Waiting {
                        reason: "ContainerCreating".into(),
                        message: None,
                    },
                    last_state: None,
                    restart: RestartState::default(),
                    restart_at: None,
                    run: None,
                    image: None,
                    image_id: None,
                    image_failures: 0,
                    image_retry_at: None,
                    ready: false,
                    started: false,
                    stopped: false,
                })
                .collect(),
            events: VecDeque::new(),
            next_seq: 0,
            removed: false,
        };
        let sb = self.insert(id.clone(), spec, dir, state);
        sb.persist();
        Ok(id)
    }

    async fn start_container(
        &self,
        sandbox: &SandboxId,
        container: &str,
    ) -> Result<(), RuntimeError> {
        let sb = self.get(sandbox)?;
        {
            let mut st = sb.state();
            if st.stopped_at.is_some() {
                return Err(RuntimeError::Stopped {
                    sandbox: sandbox.clone(),
                    pod: sb.spec.pod_ref(),
                });
            }
            let i = st.index_of(container, &sb.spec)?;
            let c = &mut st.containers[i];
            if c.requested {
                return Ok(());
            }
            c.requested = true;
        }
        sb.wake.notify_one();
        Ok(())
    }

    async fn status(&self, sandbox: &SandboxId) -> Result<SandboxStatus, RuntimeError> {
        let sb = self.get(sandbox)?;
        let st = sb.state();
        let inits_pending = st
            .containers
            .iter()
            .any(|c| c.init && c.state.exit_code() != Some(0));
        let containers = st
            .containers
            .iter()
            .map(|c| {
                let state = match &c.state {
                    ContainerState::Waiting { reason, message }
                        if reason == "ContainerCreating"
                            && !c.init
                            && inits_pending
                            && st.ready_at.is_some() =>
                    {
                        ContainerState::Waiting {
                            reason: "PodInitializing".into(),
                            message: message.clone(),
                        }
                    }
                    s => s.clone(),
                };
                ContainerStatus {
                    name: c.name.clone(),
                    init: c.init,
                    ready: c.ready && c.state.is_running(),
                    started: c.started && c.state.is_running(),
                    container_id: c
                        .run
                        .as_ref()
                        .map(|r| format!("{CONTAINER_ID_SCHEME}{}", r.id)),
                    image: c.image.clone(),
                    image_id: c.image_id.clone(),
                    state,
                    last_state: c.last_state.clone(),
                    restart_count: c.restart.restart_count,
                }
            })
            .collect();
        Ok(SandboxStatus {
            id: sandbox.clone(),
            created_at: st.created_at,
            ready_at: st.ready_at,
            stopped_at: st.stopped_at,
            containers,
            next_transition: None,
            events: st.events.iter().cloned().collect(),
        })
    }

    async fn storage_usage(&self, sandbox: &SandboxId) -> Result<StorageUsage, RuntimeError> {
        let sb = self.get(sandbox)?;
        // What to measure, read under the lock; measured on a blocking thread.
        let containers: Vec<(String, Option<PathBuf>, PathBuf)> = sb
            .state()
            .containers
            .iter()
            .filter(|c| c.run.is_some())
            .map(|c| {
                let upper = c.run.as_ref().map(|r| r.dir.join("upper"));
                (c.name.clone(), upper, self.log_dir(&sb).join(&c.name))
            })
            .collect();
        let volumes: Vec<(String, PathBuf)> = sb
            .spec
            .volumes
            .iter()
            .filter(|v| {
                matches!(
                    v.source,
                    crate::VolumeSource::EmptyDir { memory: false, .. }
                )
            })
            .map(|v| (v.name.clone(), sb.dir.join("volumes").join(&v.name)))
            .collect();
        tokio::task::spawn_blocking(move || StorageUsage {
            containers: containers
                .into_iter()
                .map(|(name, upper, logs)| ContainerStorage {
                    name,
                    rootfs_bytes: upper.as_deref().map_or(0, storage::disk_usage),
                    logs_bytes: storage::disk_usage(&logs),
                })
                .collect(),
            volumes: volumes
                .into_iter()
                .map(|(name, dir)| VolumeStorage {
                    name,
                    used_bytes: storage::disk_usage(&dir),
                })
                .collect(),
        })
        .await
        .map_err(|e| RuntimeError::Backend(format!("measuring local storage: {e}")))
    }

    async fn logs(
        &self,
        sandbox: &SandboxId,
        container: &str,
        options: LogOptions,
    ) -> Result<LogStream, RuntimeError> {
        let sb = self.get(sandbox)?;
        // `again`: the last run has ended and another will follow (waiting in back-off, or
        // being started), so that last run is what `--previous` shows.
        let (number, finished, again, waiting) = {
            let st = sb.state();
            let c = st.container(container, &sb.spec)?;
            let again = !matches!(c.state, ContainerState::Terminated { .. });
            match &c.run {
                None => (None, true, false, c.state.reason().map(str::to_string)),
                Some(r) => (Some(r.number), r.finished, again, None),
            }
        };
        let Some(number) = number else {
            return Err(RuntimeError::ContainerWaiting {
                pod: sb.spec.name.clone(),
                container: container.to_string(),
                reason: waiting.unwrap_or_else(|| "ContainerCreating".into()),
            });
        };
        // The current run is `number` unless it is the one waiting to restart.
        let number = if options.previous {
            let prev = if again && finished {
                Some(number)
            } else {
                number.checked_sub(1)
            };
            match prev {
                Some(n) if self.log_path(&sb, container, n).exists() => n,
                _ => {
                    return Err(RuntimeError::PreviousNotFound {
                        pod: sb.spec.name.clone(),
                        container: container.to_string(),
                    });
                }
            }
        } else {
            number
        };
        let path = self.log_path(&sb, container, number);
        let done = if finished || options.previous {
            watch::channel(true).1
        } else {
            sb.log_done
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(container)
                .map(|tx| tx.subscribe())
                .unwrap_or_else(|| watch::channel(true).1)
        };
        Ok(crilog::stream_log(path, options, done))
    }

    async fn exec(
        &self,
        sandbox: &SandboxId,
        container: &str,
        request: ExecRequest,
    ) -> Result<ExitStatus, RuntimeError> {
        let sb = self.get(sandbox)?;
        let run = self.running_run(&sb, container)?;
        probe::exec_session(self, &run, request).await
    }

    async fn port_forward(
        &self,
        sandbox: &SandboxId,
        port: u16,
    ) -> Result<crate::port_forward::PortStream, RuntimeError> {
        let sb = self.get(sandbox)?;
        let netns = sb.state().netns.clone();
        match netns.filter(|p| p.exists()) {
            Some(netns) => crate::port_forward::connect(&netns, sandbox.as_str(), port).await,
            // containerd's words for a sandbox whose namespace is gone.
            None => Err(RuntimeError::PortForward(format!(
                "network namespace for sandbox {:?} is closed",
                sandbox.as_str()
            ))),
        }
    }

    async fn attach(
        &self,
        sandbox: &SandboxId,
        container: &str,
        request: AttachRequest,
    ) -> Result<(), RuntimeError> {
        let sb = self.get(sandbox)?;
        let run = self.running_run(&sb, container)?;
        let index = sb.state().index_of(container, &sb.spec)?;
        let spec = &sb.spec.containers[index];
        attach::session(&run.dir, &sb.spec.name, spec, request).await
    }

    async fn stop(&self, sandbox: &SandboxId, grace: Duration) -> Result<(), RuntimeError> {
        let sb = self.get(sandbox)?;
        let runs: Vec<(ContainerSpec, Run)> = {
            let mut st = sb.state();
            if st.stopped_at.is_none() {
                st.stopped_at = Some(SystemTime::now());
            }
            for c in &mut st.containers {
                c.stopped = true;
                c.restart_at = None;
                if c.run.is_none() {
                    c.state = ContainerState::Waiting {
                        reason: "ContainerCreating".into(),
                        message: None,
                    };
                }
            }
            st.containers
                .iter()
                .zip(&sb.spec.containers)
                .filter_map(|(c, spec)| {
                    c.run
                        .clone()
                        .filter(|r| !r.finished && r.started_at.is_some())
                        .map(|r| (spec.clone(), r))
                })
                .collect()
        };
        sb.persist();
        let deadline = Instant::now() + grace;
        let stops = runs.into_iter().map(|(c, run)| {
            let sb = sb.clone();
            async move {
                let message = format!("Stopping container {}", c.name);
                self.kill_container(&sb, &c, &run, message, deadline).await;
            }
        });
        futures_util::future::join_all(stops).await;
        sb.wake.notify_one();
        // Let the supervisor read the exits before returning.
        for _ in 0..200 {
            // Until each exit is read and recorded (a run is marked finished when its exit is
            // taken, and shows Terminated once recorded).
            let pending = sb.state().containers.iter().any(|c| {
                c.state.is_running()
                    || c.run
                        .as_ref()
                        .is_some_and(|r| !r.finished && r.started_at.is_some())
            });
            if !pending {
                break;
            }
            self.read_exits(&sb).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.changed(sandbox);
        Ok(())
    }

    async fn remove(&self, sandbox: &SandboxId) -> Result<(), RuntimeError> {
        let Ok(sb) = self.get(sandbox) else {
            // Not known (already removed, or never adopted): clean whatever is on disk.
            let dir = self.sandboxes_dir().join(sandbox.as_str());
            if dir.exists() {
                self.teardown(sandbox, &dir, None).await;
            }
            return Ok(());
        };
        self.stop(sandbox, Duration::from_secs(2)).await?;
        for c in &sb.spec.containers {
            self.stop_probes(&sb, &c.name);
        }
        sb.state().removed = true;
        sb.wake.notify_one();
        let log_dir = self.log_dir(&sb);
        self.teardown(sandbox, &sb.dir, Some(log_dir)).await;
        self.map().remove(sandbox);
        self.changed(sandbox);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<SandboxSummary>, RuntimeError> {
        Ok(self.map().values().map(|s| s.summary()).collect())
    }

    async fn sandbox_of_pod(&self, pod_uid: &str) -> Result<Option<SandboxSummary>, RuntimeError> {
        Ok(self
            .map()
            .get(&sandbox_id_of(pod_uid))
            .filter(|s| s.spec.pod_uid == pod_uid)
            .map(|s| s.summary()))
    }

    async fn update_volume(
        &self,
        sandbox: &SandboxId,
        volume: &str,
        files: Vec<crate::VolumeFile>,
    ) -> Result<(), RuntimeError> {
        let sb = self.get(sandbox)?;
        let Some(default_mode) = sb.spec.volumes.iter().find_map(|v| match &v.source {
            crate::VolumeSource::Files { default_mode, .. } if v.name == volume => {
                Some(*default_mode)
            }
            _ => None,
        }) else {
            return Err(RuntimeError::NotFound(format!(
                "file volume {volume:?} of sandbox {sandbox}"
            )));
        };
        let gid = sb
            .spec
            .security
            .fs_group
            .and_then(|g| u32::try_from(g).ok());
        let dir = sb
            .dir
            .join("volumes")
            .join(sandbox_setup::safe_name(volume));
        let changed = atomic_writer::write(volume, &dir, &files, default_mode, gid)
            .map_err(io_err(format!("updating volume {volume:?}")))?;
        if changed {
            tracing::debug!(sandbox = %sandbox, volume, "volume updated");
        }
        Ok(())
    }

    async fn usage(&self, sandbox: &SandboxId) -> Result<Vec<crate::ContainerUsage>, RuntimeError> {
        self.container_usage(sandbox).await
    }

    fn changes(&self) -> broadcast::Receiver<SandboxId> {
        self.inner.changes.subscribe()
    }

    fn service_data_path(&self) -> Option<Arc<dyn crate::service_proxy::ServiceDataPath>> {
        Some(self.inner.service_path.clone())
    }

    fn address_claims(&self) -> Option<&crate::address_claims::AddressClaims> {
        Some(&self.inner.address_claims)
    }
}
