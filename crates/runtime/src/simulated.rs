//! The simulated runtime: no processes, no privileges, deterministic.
//!
//! A sandbox is a few hundred bytes of state in one map. Nothing runs in the background: every
//! container's state is computed from the time elapsed since the sandbox was created, the pod's
//! restart policy and these annotations (all optional):
//!
//! | annotation | default | meaning |
//! |---|---|---|
//! | `sim.localfargate.io/start-delay` | `0` | time to create the sandbox; containers wait (`ContainerCreating`) until then |
//! | `sim.localfargate.io/run-duration` | `forever` for regular containers of `Always` pods, else `1s` | how long each run of a container lasts; `forever` never exits |
//! | `sim.localfargate.io/exit-code` | `0` | exit code at the end of each run |
//! | `sim.localfargate.io/log` | none | text the container writes (after the "started" line) |
//! | `sim.localfargate.io/stop-duration` | `0` | how long the container takes to exit after SIGTERM; when longer than the grace period it is killed (exit code 137) |
//! | `sim.localfargate.io/restart-backoff` | `10s` | first restart back-off, doubled per restart up to 5m (`CrashLoopBackOff`), as the kubelet does; `0` restarts at once |
//! | `sim.localfargate.io/cpu-usage` | 1–10m, per container | CPU the container uses while it runs (`kubectl top`), a CPU quantity |
//! | `sim.localfargate.io/memory-usage` | 8–40Mi, per container | its memory working set while it runs, a memory quantity |
//!
//! All but `start-delay` may be set for one container by appending `.<container-name>`, e.g.
//! `sim.localfargate.io/exit-code.worker: "3"`; that beats the pod-wide value. Durations are Go
//! durations (`500ms`, `2s`, `1m30s`). An unknown `sim.localfargate.io/` key, a suffix naming no
//! container or a malformed value makes `create_sandbox` fail with
//! [`RuntimeError::InvalidSpec`].
//!
//! Containers start when [`start_container`](SandboxRuntime::start_container) has been called
//! for them and the sandbox is ready; init containers run one after another, each after the
//! previous one exited 0, and regular containers after the last init container. A run that
//! ends restarts when the restart policy says so (init containers: when it failed and the policy
//! is not `Never`), after the back-off. A stopped sandbox starts nothing more.
//!
//! Time is tokio's clock, so tests with a paused clock (`start_paused`) are exact. Timestamps are
//! `epoch + elapsed`, where the epoch is the wall-clock time the runtime was created (or the one
//! given to [`SimulatedRuntime::with_epoch`]).
//!
//! Resource usage ([`SandboxRuntime::usage`]) is simulated too: a fixed CPU rate and working set
//! per running container, its CPU time the rate times how long its runs have lasted (see
//! [`usage`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

mod usage;

use crate::restart::{self, Backoff};
use crate::timefmt::{format_duration, parse_duration, rfc3339_nanos};
use crate::{
    AttachRequest, ContainerSpec, ContainerState, ContainerStatus, ContainerUsage, ExecRequest,
    ExitStatus, LogOptions, LogStream, RestartPolicy, RuntimeError, RuntimeKind, SandboxId,
    SandboxRuntime, SandboxSpec, SandboxStatus, SandboxSummary,
};

/// The prefix of the annotations the simulated runtime reads.
pub const ANNOTATION_PREFIX: &str = "sim.localfargate.io/";
pub const START_DELAY: &str = "sim.localfargate.io/start-delay";
pub const RUN_DURATION: &str = "sim.localfargate.io/run-duration";
pub const EXIT_CODE: &str = "sim.localfargate.io/exit-code";
pub const LOG: &str = "sim.localfargate.io/log";
pub const STOP_DURATION: &str = "sim.localfargate.io/stop-duration";
pub const RESTART_BACKOFF: &str = "sim.localfargate.io/restart-backoff";

/// The first line of every simulated container log starts with this.
pub const LOG_PREFIX: &str = "[localfargate simulated runtime]";

/// Exit code of a container killed at the end of its grace period (128 + SIGKILL).
pub const KILLED_EXIT_CODE: i32 = 137;

/// Nanoseconds since the runtime's epoch.
type Tick = u64;
/// "No such time": a run that never ends, a container never asked to start.
const NEVER: Tick = u64::MAX;
const SECOND: Tick = 1_000_000_000;
const DEFAULT_RUN: Tick = SECOND;
const DEFAULT_BACKOFF: Tick = 10 * SECOND;
/// Shortest restart cycle, so `run-duration: 0` with no back-off cannot loop without end.
const MIN_CYCLE: Tick = 1_000_000;

fn ticks(d: Duration) -> Tick {
    u64::try_from(d.as_nanos()).unwrap_or(NEVER)
}

/// The runtime with no processes. Cheap to clone (shared state).
#[derive(Clone)]
pub struct SimulatedRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    epoch_instant: Instant,
    epoch_system: SystemTime,
    sandboxes: Mutex<HashMap<SandboxId, SimSandbox>>,
    /// Bumped on every call that changes a sandbox; wakes log followers.
    generation: watch::Sender<u64>,
    changes: broadcast::Sender<SandboxId>,
}

#[derive(Debug, Clone, Copy)]
struct Stop {
    at: Tick,
    grace: Tick,
}

struct SimSandbox {
    /// `namespace/name`.
    pod: Box<str>,
    created: Tick,
    ready: Tick,
    stop: Option<Stop>,
    restart: RestartPolicy,
    containers: Box<[SimContainer]>,
}

struct SimContainer {
    name: Box<str>,
    image: Box<str>,
    /// ` with command: …` for the first log line, when the spec has a command or args.
    command: Option<Box<str>>,
    log: Option<Box<str>>,
    run: Tick,
    stop_duration: Tick,
    backoff: Tick,
    /// When `start_container` was called; `NEVER` before.
    requested: Tick,
    exit_code: i32,
    init: bool,
    usage: usage::UsageModel,
}

/// One run of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    start: Tick,
    /// `NEVER` while it runs forever.
    end: Tick,
    exit_code: i32,
    /// Ended by [`SandboxRuntime::stop`], not by itself; such a run is never restarted.
    stopped: bool,
}

/// A container at one instant.
struct Eval {
    /// The latest run that started at or before now.
    current: Option<Run>,
    /// The run before `current`.
    previous: Option<Run>,
    restart_count: u64,
    /// `(when, back-off)` when `current` has ended and will be restarted.
    restart_at: Option<(Tick, Tick)>,
    next_change: Tick,
}

impl SimContainer {
    fn restarts(&self, policy: RestartPolicy, exit_code: i32) -> bool {
        restart::restarts(policy, self.init, exit_code)
    }

    /// The back-off before restart number `n` (1-based): the kubelet's, from the shared state
    /// machine, with a floor so a zero-length cycle cannot loop without end.
    fn backoff_for(&self, n: u64) -> Tick {
        let run = (self.run != NEVER).then(|| Duration::from_nanos(self.run));
        let b = ticks(Backoff::starting_at(Duration::from_nanos(self.backoff)).delay(n, run));
        if self.run.saturating_add(b) < MIN_CYCLE {
            MIN_CYCLE - self.run
        } else {
            b
        }
    }

    /// Whether the back-off stays the same from restart `n` on (it only grows, up to a cap, and
    /// has certainly reached it 64 doublings later).
    fn backoff_steady(&self, n: u64) -> bool {
        self.backoff_for(n) == self.backoff_for(n.saturating_add(64))
    }

    /// The run starting at `start`, cut short by a stop if there is one.
    fn run_from(&self, start: Tick, stop: Option<Stop>) -> Run {
        let natural = Run {
            start,
            end: start.saturating_add(self.run),
            exit_code: self.exit_code,
            stopped: false,
        };
        match stop {
            Some(stop) if start <= stop.at => {
                let (cut, exit_code) = if self.stop_duration <= stop.grace {
                    (stop.at.saturating_add(self.stop_duration), 0)
                } else {
                    (stop.at.saturating_add(stop.grace), KILLED_EXIT_CODE)
                };
                if natural.end <= cut {
                    natural
                } else {
                    Run {
                        start,
                        end: cut,
                        exit_code,
                        stopped: true,
                    }
                }
            }
            _ => natural,
        }
    }

    /// When the container has completed successfully for good (what the next init container or
    /// the regular containers wait for), if ever.
    fn success_at(&self, gate: Tick, stop: Option<Stop>) -> Tick {
        if gate == NEVER || stop.is_some_and(|s| gate > s.at) {
            return NEVER;
        }
        let run = self.run_from(gate, stop);
        if run.end != NEVER && !run.stopped && run.exit_code == 0 {
            run.end
        } else {
            NEVER
        }
    }

    /// The container at `now`, when its first run may start at `gate`.
    fn eval(&self, gate: Tick, policy: RestartPolicy, stop: Option<Stop>, now: Tick) -> Eval {
        let horizon = stop.map_or(NEVER, |s| s.at);
        let mut ev = Eval {
            current: None,
            previous: None,
            restart_count: 0,
            restart_at: None,
            next_change: NEVER,
        };
        if gate == NEVER || gate > horizon {
            return ev;
        }
        if gate > now {
            ev.next_change = gate;
            return ev;
        }
        let (mut k, mut start, mut prev) = (0u64, gate, None);
        loop {
            let run = self.run_from(start, stop);
            if run.end == NEVER || run.stopped || !self.restarts(policy, run.exit_code) {
                break;
            }
            let backoff = self.backoff_for(k + 1);
            let next = run.end.saturating_add(backoff);
            if next > now || next > horizon {
                break;
            }
            if self.backoff_steady(k + 1) {
                // Every later cycle is `run + backoff` long and ends by itself before `limit`
                // (the stop, if any, comes later): jump to the last run that starts by then.
                let cycle = self.run + backoff;
                let limit = now.min(horizon);
                let j = (limit - start) / cycle;
                prev = Some(start + (j - 1) * cycle);
                start += j * cycle;
                k += j;
                continue;
            }
            prev = Some(start);
            start = next;
            k += 1;
        }
        let run = self.run_from(start, stop);
        ev.current = Some(run);
        // A run that was followed by another ended by itself.
        ev.previous = prev.map(|p| Run {
            start: p,
            end: p.saturating_add(self.run),
            exit_code: self.exit_code,
            stopped: false,
        });
        ev.restart_count = k;
        if run.end > now {
            ev.next_change = run.end;
        } else if !run.stopped && self.restarts(policy, run.exit_code) {
            let backoff = self.backoff_for(k + 1);
            let next = run.end.saturating_add(backoff);
            if next <= horizon {
                ev.restart_at = Some((next, backoff));
                ev.next_change = next;
            }
        }
        ev
    }

    /// The log lines of one run written by `now`.
    fn log_lines(&self, run: Run, now: Tick) -> Vec<(Tick, String)> {
        let mut lines = vec![(
            run.start,
            format!(
                "{LOG_PREFIX} container {} image {} started{}",
                self.name,
                self.image,
                self.command.as_deref().unwrap_or("")
            ),
        )];
        if let Some(log) = &self.log {
            let log = log.strip_suffix('\n').unwrap_or(log);
            lines.extend(log.split('\n').map(|l| (run.start, l.to_string())));
        }
        if run.end <= now {
            lines.push((run.end, exit_line(run.exit_code)));
        }
        lines
    }
}

/// A simulated container's id, `simulated://<64 hex>`: a digest of what names the run, since
/// no runtime made one.
fn simulated_id(parts: &[&str]) -> String {
    format!(
        "simulated://{}",
        &simulated_digest(&parts.join("/"))["sha256:".len()..]
    )
}

/// `sha256:<hex>` of a name. Nothing is pulled, so a simulated image's id is a digest of its
/// reference, not of a manifest.
fn simulated_digest(name: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(name.as_bytes())))
}

fn exit_line(code: i32) -> String {
    format!("{LOG_PREFIX} exited with code {code}")
}

impl SimSandbox {
    fn pod_name(&self) -> &str {
        self.pod.split_once('/').map_or(&self.pod, |(_, n)| n)
    }

    fn has_init(&self) -> bool {
        self.containers.iter().any(|c| c.init)
    }

    /// The kubelet's reason for containers that have not started.
    fn waiting_reason(&self) -> &'static str {
        if self.has_init() {
            "PodInitializing"
        } else {
            "ContainerCreating"
        }
    }

    /// When each container's first run may start: the sandbox is ready, `start_container` was
    /// called, and (for regular containers) every init container has succeeded, in order.
    fn gates(&self) -> Vec<Tick> {
        let mut gates = vec![NEVER; self.containers.len()];
        let mut init_done = self.ready;
        for (i, c) in self.containers.iter().enumerate().filter(|(_, c)| c.init) {
            let gate = init_done.max(c.requested);
            gates[i] = gate;
            init_done = c.success_at(gate, self.stop);
        }
        for (i, c) in self.containers.iter().enumerate().filter(|(_, c)| !c.init) {
            gates[i] = init_done.max(c.requested);
        }
        gates
    }

    fn container(&self, name: &str) -> Result<usize, RuntimeError> {
        self.containers
            .iter()
            .position(|c| &*c.name == name)
            .ok_or_else(|| {
                RuntimeError::NotFound(format!("container {name:?} in pod {}", self.pod))
            })
    }
}

impl Default for SimulatedRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl SimulatedRuntime {
    /// A runtime whose timestamps start at the current wall-clock time.
    pub fn new() -> Self {
        Self::with_epoch(SystemTime::now())
    }

    /// A runtime whose clock reads `epoch` now; with a paused tokio clock, every timestamp it
    /// reports is then exact.
    pub fn with_epoch(epoch: SystemTime) -> Self {
        SimulatedRuntime {
            inner: Arc::new(Inner {
                epoch_instant: Instant::now(),
                epoch_system: epoch,
                sandboxes: Mutex::new(HashMap::new()),
                generation: watch::Sender::new(0),
                changes: broadcast::channel(1024).0,
            }),
        }
    }

    /// How many sandboxes exist (created and not removed).
    pub fn sandbox_count(&self) -> usize {
        self.inner.lock().len()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<SandboxId, SimSandbox>> {
        self.sandboxes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> Tick {
        ticks(self.epoch_instant.elapsed())
    }

    fn system(&self, t: Tick) -> SystemTime {
        self.epoch_system + Duration::from_nanos(t)
    }

    fn instant(&self, t: Tick) -> Instant {
        self.epoch_instant + Duration::from_nanos(t)
    }

    fn changed(&self, id: &SandboxId) {
        self.generation.send_modify(|g| *g += 1);
        let _ = self.changes.send(id.clone());
    }

    fn terminated(&self, run: Run) -> ContainerState {
        ContainerState::Terminated {
            exit_code: run.exit_code,
            reason: if run.exit_code == 0 {
                "Completed"
            } else {
                "Error"
            }
            .to_string(),
            message: None,
            started_at: self.system(run.start),
            finished_at: self.system(run.end),
        }
    }

    /// Renders lines for `options`: `since`, then `tail_lines`, then timestamps, then
    /// `limit_bytes` (which `remaining` tracks across chunks).
    fn render(
        &self,
        lines: &[(Tick, String)],
        options: &LogOptions,
        tail: bool,
        remaining: &mut Option<u64>,
    ) -> Vec<u8> {
        let mut selected: Vec<&(Tick, String)> = lines
            .iter()
            .filter(|(t, _)| options.since.is_none_or(|s| self.system(*t) >= s))
            .collect();
        if tail && let Some(n) = options.tail_lines {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            selected.drain(..selected.len().saturating_sub(n));
        }
        let mut out = Vec::new();
        for (t, line) in selected {
            if options.timestamps {
                out.extend_from_slice(rfc3339_nanos(self.system(*t)).as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        if let Some(left) = remaining {
            let keep = out.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
            out.truncate(keep);
            *left -= keep as u64;
        }
        out
    }
}

/// Quotes one argument the way a shell user would type it.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

fn command_suffix(c: &ContainerSpec) -> Option<Box<str>> {
    let (label, words): (&str, Vec<&String>) = if !c.command.is_empty() {
        ("command", c.command.iter().chain(&c.args).collect())
    } else if !c.args.is_empty() {
        ("args", c.args.iter().collect())
    } else {
        return None;
    };
    let quoted: Vec<String> = words.into_iter().map(|w| shell_quote(w)).collect();
    Some(format!(" with {label}: {}", quoted.join(" ")).into_boxed_str())
}

/// The `sim.localfargate.io/*` annotations of one pod, checked.
struct SimAnnotations<'a> {
    annotations: &'a BTreeMap<String, String>,
    any: bool,
}

const PER_CONTAINER_KEYS: [&str; 7] = [
    "run-duration",
    "exit-code",
    "log",
    "stop-duration",
    "restart-backoff",
    "cpu-usage",
    "memory-usage",
];

impl<'a> SimAnnotations<'a> {
    fn new(spec: &'a SandboxSpec) -> Result<Self, String> {
        let mut any = false;
        for key in spec.annotations.keys() {
            let Some(rest) = key.strip_prefix(ANNOTATION_PREFIX) else {
                continue;
            };
            any = true;
            let (name, container) = match rest.split_once('.') {
                Some((name, container)) => (name, Some(container)),
                None => (rest, None),
            };
            if name == "start-delay" {
                if container.is_some() {
                    return Err(format!(
                        "annotation {key}: {START_DELAY} applies to the whole pod and takes no \
                         container suffix"
                    ));
                }
            } else if !PER_CONTAINER_KEYS.contains(&name) {
                return Err(format!(
                    "unknown annotation {key}: the simulated runtime reads {ANNOTATION_PREFIX}\
                     start-delay, run-duration, exit-code, log, stop-duration, restart-backoff, \
                     cpu-usage and memory-usage"
                ));
            }
            if let Some(container) = container
                && !spec.containers.iter().any(|c| c.name == container)
            {
                return Err(format!(
                    "annotation {key}: the pod has no container named {container:?}"
                ));
            }
        }
        Ok(SimAnnotations {
            annotations: &spec.annotations,
            any,
        })
    }

    /// The container's own value, else the pod-wide one: `(full key, value)`.
    fn get(&self, key: &str, container: Option<&str>) -> Option<(String, &'a str)> {
        if !self.any {
            return None;
        }
        let base = format!("{ANNOTATION_PREFIX}{key}");
        if let Some(c) = container {
            let k = format!("{base}.{c}");
            if let Some(v) = self.annotations.get(&k) {
                return Some((k, v));
            }
        }
        self.annotations.get(&base).map(|v| (base, v.as_str()))
    }

    fn duration(&self, key: &str, container: Option<&str>) -> Result<Option<Tick>, String> {
        match self.get(key, container) {
            None => Ok(None),
            Some((k, v)) => parse_duration(v)
                .map(|d| Some(ticks(d)))
                .map_err(|e| format!("annotation {k}: {e}")),
        }
    }

    fn run_duration(&self, container: &str) -> Result<Option<Tick>, String> {
        match self.get("run-duration", Some(container)) {
            Some((_, v)) if v.trim() == "forever" => Ok(Some(NEVER)),
            Some((k, v)) => parse_duration(v)
                .map(|d| Some(ticks(d)))
                .map_err(|e| format!("annotation {k}: {e} or forever")),
            None => Ok(None),
        }
    }

    fn exit_code(&self, container: &str) -> Result<Option<i32>, String> {
        match self.get("exit-code", Some(container)) {
            None => Ok(None),
            Some((k, v)) => v.trim().parse().map(Some).map_err(|_| {
                format!("annotation {k}: {v:?} is not an exit code (an integer such as 0 or 1)")
            }),
        }
    }
}

fn build_sandbox(spec: &SandboxSpec, now: Tick) -> Result<SimSandbox, String> {
    if spec.pod_uid.is_empty() {
        return Err("the pod has no UID".to_string());
    }
    if spec.namespace.is_empty() || spec.name.is_empty() {
        return Err("the pod has no namespace or name".to_string());
    }
    if !spec.containers.iter().any(|c| !c.init) {
        return Err("the pod has no containers (only init containers, or none)".to_string());
    }
    for (i, c) in spec.containers.iter().enumerate() {
        if c.name.is_empty() {
            return Err(format!("container {i} has no name"));
        }
        if spec.containers[..i].iter().any(|o| o.name == c.name) {
            return Err(format!("two containers are named {:?}", c.name));
        }
    }
    let ann = SimAnnotations::new(spec)?;
    let start_delay = ann.duration("start-delay", None)?.unwrap_or(0);
    let containers = spec
        .containers
        .iter()
        .map(|c| {
            let name = Some(c.name.as_str());
            let default_run = if !c.init && spec.restart_policy == RestartPolicy::Always {
                NEVER
            } else {
                DEFAULT_RUN
            };
            Ok(SimContainer {
                name: c.name.as_str().into(),
                image: c.image.as_str().into(),
                command: command_suffix(c),
                log: ann.get("log", name).map(|(_, v)| v.into()),
                run: ann.run_duration(&c.name)?.unwrap_or(default_run),
                stop_duration: ann.duration("stop-duration", name)?.unwrap_or(0),
                backoff: ann
                    .duration("restart-backoff", name)?
                    .unwrap_or(DEFAULT_BACKOFF),
                requested: NEVER,
                exit_code: ann.exit_code(&c.name)?.unwrap_or(0),
                init: c.init,
                usage: usage::UsageModel::for_container(&ann, &spec.pod_uid, &c.name)?,
            })
        })
        .collect::<Result<Box<[_]>, String>>()?;
    Ok(SimSandbox {
        pod: spec.pod_ref().into_boxed_str(),
        created: now,
        ready: now.saturating_add(start_delay),
        stop: None,
        restart: spec.restart_policy,
        containers,
    })
}

const ID_PREFIX: &str = "sim-";

#[async_trait]
impl SandboxRuntime for SimulatedRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Simulated
    }

    async fn create_sandbox(&self, spec: SandboxSpec) -> Result<SandboxId, RuntimeError> {
        let now = self.inner.now();
        let sandbox = build_sandbox(&spec, now).map_err(|message| RuntimeError::InvalidSpec {
            pod: spec.pod_ref(),
            message,
        })?;
        let id = SandboxId(format!("{ID_PREFIX}{}", spec.pod_uid));
        {
            let mut map = self.inner.lock();
            if map.contains_key(&id) {
                return Err(RuntimeError::AlreadyExists {
                    sandbox: id,
                    pod: spec.pod_ref(),
                });
            }
            map.insert(id.clone(), sandbox);
        }
        tracing::debug!(sandbox = %id, pod = %spec.pod_ref(), "simulated sandbox created");
        self.inner.changed(&id);
        Ok(id)
    }

    async fn start_container(
        &self,
        sandbox: &SandboxId,
        container: &str,
    ) -> Result<(), RuntimeError> {
        let now = self.inner.now();
        {
            let mut map = self.inner.lock();
            let sb = map
                .get_mut(sandbox)
                .ok_or_else(|| RuntimeError::NotFound(format!("sandbox {sandbox}")))?;
            if sb.stop.is_some() {
                return Err(RuntimeError::Stopped {
                    sandbox: sandbox.clone(),
                    pod: sb.pod.to_string(),
                });
            }
            let i = sb.container(container)?;
            let c = &mut sb.containers[i];
            if c.requested == NEVER {
                c.requested = now;
            }
        }
        self.inner.changed(sandbox);
        Ok(())
    }

    async fn status(&self, sandbox: &SandboxId) -> Result<SandboxStatus, RuntimeError> {
        let inner = &self.inner;
        let now = inner.now();
        let map = inner.lock();
        let sb = map
            .get(sandbox)
            .ok_or_else(|| RuntimeError::NotFound(format!("sandbox {sandbox}")))?;
        let gates = sb.gates();
        let mut next = if sb.ready > now { sb.ready } else { NEVER };
        let uid = sandbox.0.strip_prefix(ID_PREFIX).unwrap_or(&sandbox.0);
        let namespace = sb.pod.split_once('/').map_or("", |(ns, _)| ns);
        let containers = sb
            .containers
            .iter()
            .zip(gates)
            .map(|(c, gate)| {
                let ev = c.eval(gate, sb.restart, sb.stop, now);
                next = next.min(ev.next_change);
                let (state, last_state) = match ev.current {
                    None => (
                        ContainerState::Waiting {
                            reason: sb.waiting_reason().to_string(),
                            message: None,
                        },
                        None,
                    ),
                    Some(run) if run.end > now => (
                        ContainerState::Running {
                            started_at: inner.system(run.start),
                        },
                        ev.previous.map(|r| inner.terminated(r)),
                    ),
                    Some(run) => match ev.restart_at {
                        Some((_, backoff)) => (
                            ContainerState::Waiting {
                                reason: "CrashLoopBackOff".to_string(),
                                message: Some(format!(
                                    "back-off {} restarting failed container={} pod={}_{}({})",
                                    format_duration(Duration::from_nanos(backoff)),
                                    c.name,
                                    sb.pod_name(),
                                    namespace,
                                    uid
                                )),
                            },
                            Some(inner.terminated(run)),
                        ),
                        None => (
                            inner.terminated(run),
                            ev.previous.map(|r| inner.terminated(r)),
                        ),
                    },
                };
                let restart_count = u32::try_from(ev.restart_count).unwrap_or(u32::MAX);
                let running = state.is_running();
                let container_id = ev.current.map(|_| {
                    simulated_id(&[sandbox.as_str(), &c.name, &restart_count.to_string()])
                });
                ContainerStatus {
                    name: c.name.to_string(),
                    init: c.init,
                    state,
                    last_state,
                    restart_count,
                    ready: running,
                    started: running,
                    container_id,
                    image: Some(c.image.to_string()),
                    image_id: Some(format!("{}@{}", c.image, simulated_digest(&c.image))),
                }
            })
            .collect();
        Ok(SandboxStatus {
            id: sandbox.clone(),
            created_at: inner.system(sb.created),
            ready_at: (sb.ready <= now).then(|| inner.system(sb.ready)),
            stopped_at: sb.stop.map(|s| inner.system(s.at)),
            containers,
            next_transition: (next != NEVER).then(|| inner.system(next)),
            events: Vec::new(),
        })
    }

    async fn logs(
        &self,
        sandbox: &SandboxId,
        container: &str,
        options: LogOptions,
    ) -> Result<LogStream, RuntimeError> {
        let inner = &self.inner;
        let now = inner.now();
        let (index, run, lines) = {
            let map = inner.lock();
            let sb = map
                .get(sandbox)
                .ok_or_else(|| RuntimeError::NotFound(format!("sandbox {sandbox}")))?;
            let index = sb.container(container)?;
            let c = &sb.containers[index];
            let ev = c.eval(sb.gates()[index], sb.restart, sb.stop, now);
            let run = if options.previous {
                // During a back-off the kubelet's "previous" is the run that just ended.
                let prev = if ev.restart_at.is_some() {
                    ev.current
                } else {
                    ev.previous
                };
                prev.ok_or_else(|| RuntimeError::PreviousNotFound {
                    pod: sb.pod_name().to_string(),
                    container: container.to_string(),
                })?
            } else {
                ev.current.ok_or_else(|| RuntimeError::ContainerWaiting {
                    pod: sb.pod_name().to_string(),
                    container: container.to_string(),
                    reason: sb.waiting_reason().to_string(),
                })?
            };
            (index, run, c.log_lines(run, now))
        };
        let mut remaining = options.limit_bytes;
        let text = inner.render(&lines, &options, true, &mut remaining);
        let follow = options.follow && run.end > now && remaining != Some(0);
        let (tx, rx) = mpsc::channel(if follow { 8 } else { 1 });
        if !text.is_empty() {
            // A fresh channel has room for this first chunk.
            let _ = tx.try_send(text);
        }
        if follow {
            let inner = Arc::clone(inner);
            let sandbox = sandbox.clone();
            tokio::spawn(async move {
                follow_logs(inner, sandbox, index, run.start, options, remaining, tx).await;
            });
        }
        Ok(rx)
    }

    async fn exec(
        &self,
        sandbox: &SandboxId,
        container: &str,
        _request: ExecRequest,
    ) -> Result<ExitStatus, RuntimeError> {
        let map = self.inner.lock();
        let sb = map
            .get(sandbox)
            .ok_or_else(|| RuntimeError::NotFound(format!("sandbox {sandbox}")))?;
        sb.container(container)?;
        Err(RuntimeError::ExecUnsupported {
            pod: sb.pod.to_string(),
        })
    }

    async fn port_forward(
        &self,
        sandbox: &SandboxId,
        _port: u16,
    ) -> Result<crate::port_forward::PortStream, RuntimeError> {
        let map = self.inner.lock();
        let sb = map
            .get(sandbox)
            .ok_or_else(|| RuntimeError::NotFound(format!("sandbox {sandbox}")))?;
        Err(RuntimeError::PortForwardUnsupported {
            pod: sb.pod.to_string(),
        })
    }

    /// No process runs, so there is no stdin: attach streams the synthesized output that follows
    /// (the exit line once the run ends) and returns when the run does.
    async fn attach(
        &self,
        sandbox: &SandboxId,
        container: &str,
        request: AttachRequest,
    ) -> Result<(), RuntimeError> {
        let (pod, index) = {
            let map = self.inner.lock();
            let sb = map
                .get(sandbox)
                .ok_or_else(|| RuntimeError::NotFound(format!("sandbox {sandbox}")))?;
            (sb.pod_name().to_string(), sb.container(container)?)
        };
        let status = self.status(sandbox).await?;
        let running = status
            .containers
            .get(index)
            .is_some_and(|c| matches!(c.state, ContainerState::Running { .. }));
        if !running {
            return Err(RuntimeError::NotRunning {
                pod,
                container: container.to_string(),
            });
        }
        let now = self.inner.system(self.inner.now());
        let options = LogOptions {
            follow: true,
            since: Some(now),
            ..Default::default()
        };
        let mut output = self.logs(sandbox, container, options).await?;
        while let Some(chunk) = output.recv().await {
            if request.stdout.send(chunk).await.is_err() {
                break;
            }
        }
        Ok(())
    }

    async fn stop(&self, sandbox: &SandboxId, grace: Duration) -> Result<(), RuntimeError> {
        let inner = &self.inner;
        let now = inner.now();
        let last_exit = {
            let mut map = inner.lock();
            let sb = map
                .get_mut(sandbox)
                .ok_or_else(|| RuntimeError::NotFound(format!("sandbox {sandbox}")))?;
            let kill_at = now.saturating_add(ticks(grace));
            sb.stop = Some(match sb.stop {
                None => Stop {
                    at: now,
                    grace: ticks(grace),
                },
                // A second stop may only bring the kill forward.
                Some(s) => Stop {
                    at: s.at,
                    grace: s.grace.min(kill_at - s.at),
                },
            });
            let gates = sb.gates();
            sb.containers
                .iter()
                .zip(gates)
                .filter_map(|(c, gate)| c.eval(gate, sb.restart, sb.stop, now).current)
                .map(|run| run.end)
                .filter(|&end| end > now && end != NEVER)
                .max()
        };
        inner.changed(sandbox);
        if let Some(end) = last_exit {
            tokio::time::sleep_until(inner.instant(end)).await;
        }
        Ok(())
    }

    async fn remove(&self, sandbox: &SandboxId) -> Result<(), RuntimeError> {
        let removed = self.inner.lock().remove(sandbox).is_some();
        if removed {
            self.inner.changed(sandbox);
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<SandboxSummary>, RuntimeError> {
        let map = self.inner.lock();
        let mut list: Vec<SandboxSummary> = map
            .iter()
            .map(|(id, sb)| {
                let (namespace, name) = sb.pod.split_once('/').unwrap_or(("", &sb.pod));
                SandboxSummary {
                    id: id.clone(),
                    pod_uid: id.0.strip_prefix(ID_PREFIX).unwrap_or(&id.0).to_string(),
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                }
            })
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(list)
    }

    async fn sandbox_of_pod(&self, pod_uid: &str) -> Result<Option<SandboxSummary>, RuntimeError> {
        let id = SandboxId(format!("{ID_PREFIX}{pod_uid}"));
        let map = self.inner.lock();
        Ok(map.get(&id).map(|sb| {
            let (namespace, name) = sb.pod.split_once('/').unwrap_or(("", &sb.pod));
            SandboxSummary {
                id: id.clone(),
                pod_uid: pod_uid.to_string(),
                namespace: namespace.to_string(),
                name: name.to_string(),
            }
        }))
    }

    async fn usage(&self, sandbox: &SandboxId) -> Result<Vec<ContainerUsage>, RuntimeError> {
        let inner = &self.inner;
        // On whole microseconds: the CPU time between two samples is then exactly the rate
        // times their distance (whole millicores times whole microseconds are whole
        // nanoseconds), so a container set to `250m` shows `250m`, not `249999999n`.
        let now = inner.now() / 1_000 * 1_000;
        let map = inner.lock();
        let sb = map
            .get(sandbox)
            .ok_or_else(|| RuntimeError::NotFound(format!("sandbox {sandbox}")))?;
        let gates = sb.gates();
        Ok(sb
            .containers
            .iter()
            .zip(gates)
            .filter_map(|(c, gate)| {
                let ev = c.eval(gate, sb.restart, sb.stop, now);
                let run = ev.current.filter(|r| r.end > now)?;
                Some(ContainerUsage {
                    name: c.name.to_string(),
                    // The first run starts at the gate; the counter covers every run since.
                    since: inner.system(gate),
                    timestamp: inner.system(now),
                    cpu_ns: c.usage.cpu_ns(ev.restart_count, c.run, now - run.start),
                    memory_working_set_bytes: c.usage.memory_bytes,
                })
            })
            .collect())
    }

    fn changes(&self) -> broadcast::Receiver<SandboxId> {
        self.inner.changes.subscribe()
    }
}

/// Sends the exit line of the run that started at `start` once it has ended; ends early when the
/// receiver is dropped or the sandbox removed.
async fn follow_logs(
    inner: Arc<Inner>,
    sandbox: SandboxId,
    index: usize,
    start: Tick,
    options: LogOptions,
    mut remaining: Option<u64>,
    tx: mpsc::Sender<Vec<u8>>,
) {
    let mut generation = inner.generation.subscribe();
    loop {
        generation.borrow_and_update();
        let run = {
            let map = inner.lock();
            let Some(c) = map
                .get(&sandbox)
                .and_then(|sb| sb.containers.get(index).map(|c| c.run_from(start, sb.stop)))
            else {
                return;
            };
            c
        };
        if run.end <= inner.now() {
            let line = [(run.end, exit_line(run.exit_code))];
            let text = inner.render(&line, &options, false, &mut remaining);
            if !text.is_empty() {
                let _ = tx.send(text).await;
            }
            return;
        }
        let wake = if run.end == NEVER {
            None
        } else {
            Some(inner.instant(run.end))
        };
        tokio::select! {
            _ = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {}
            changed = generation.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Tick = 1_000_000;

    /// Runs one restart at a time, without the closed-form jump.
    fn step_by_step(
        c: &SimContainer,
        gate: Tick,
        policy: RestartPolicy,
        stop: Option<Stop>,
        now: Tick,
    ) -> (Option<Run>, Option<Run>, u64) {
        let horizon = stop.map_or(NEVER, |s| s.at);
        if gate > horizon || gate > now {
            return (None, None, 0);
        }
        let mut runs: Vec<Run> = Vec::new();
        let mut start = gate;
        loop {
            let run = c.run_from(start, stop);
            runs.push(run);
            if run.end == NEVER || run.stopped || !c.restarts(policy, run.exit_code) {
                break;
            }
            let next = run.end + c.backoff_for(runs.len() as u64);
            if next > now || next > horizon {
                break;
            }
            start = next;
        }
        let n = runs.len();
        (
            runs.last().copied(),
            n.checked_sub(2).map(|i| runs[i]),
            n as u64 - 1,
        )
    }

    fn container(run: Tick, backoff: Tick, exit_code: i32, init: bool) -> SimContainer {
        SimContainer {
            name: "c".into(),
            image: "i".into(),
            command: None,
            log: None,
            run,
            stop_duration: 2000 * MS,
            backoff,
            requested: 0,
            exit_code,
            init,
            usage: usage::UsageModel {
                cpu_millis: 100,
                memory_bytes: 1 << 20,
            },
        }
    }

    fn policy() -> impl Strategy<Value = RestartPolicy> {
        prop_oneof![
            Just(RestartPolicy::Always),
            Just(RestartPolicy::OnFailure),
            Just(RestartPolicy::Never),
        ]
    }

    proptest! {
        #[test]
        fn closed_form_matches_step_by_step(
            run_ms in 0u64..12_000,
            backoff_ms in prop_oneof![Just(0u64), 1u64..20_000],
            exit_code in 0i32..3,
            init in any::<bool>(),
            policy in policy(),
            gate_ms in 0u64..5_000,
            now_ms in 0u64..7_200_000,
            stop in proptest::option::of((0u64..7_200_000, 0u64..5_000)),
        ) {
            // Keep step-by-step cheap: cycles of at least a second.
            let run = run_ms.max(1000 - backoff_ms.min(1000)) * MS;
            let c = container(run, backoff_ms * MS, exit_code, init);
            let stop = stop.map(|(at, grace)| Stop { at: at * MS, grace: grace * MS });
            let (gate, now) = (gate_ms * MS, now_ms * MS);
            let ev = c.eval(gate, policy, stop, now);
            let (current, previous, restarts) = step_by_step(&c, gate, policy, stop, now);
            prop_assert_eq!(ev.current, current);
            prop_assert_eq!(ev.previous, previous);
            prop_assert_eq!(ev.restart_count, restarts);
            prop_assert!(ev.next_change > now);
            if let Some(run) = current {
                prop_assert!(run.start <= now);
            }
        }
    }

    #[test]
    fn stop_cuts_a_run_and_prevents_restarts() {
        let c = container(NEVER, 0, 0, false);
        let stop = Some(Stop {
            at: 5000 * MS,
            grace: 1000 * MS,
        });
        // stop-duration 2s > grace 1s: killed at 6s.
        let ev = c.eval(0, RestartPolicy::Always, stop, 10_000 * MS);
        assert_eq!(
            ev.current,
            Some(Run {
                start: 0,
                end: 6000 * MS,
                exit_code: KILLED_EXIT_CODE,
                stopped: true
            })
        );
        assert_eq!((ev.restart_count, ev.restart_at), (0, None));
        assert_eq!(ev.next_change, NEVER);
    }
}
