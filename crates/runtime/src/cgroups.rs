//! Pod and container cgroups, on cgroup v1 (including "hybrid" hosts) and cgroup v2.
//!
//! The tree, below `<parent>` (e.g. `localfargate`) in every hierarchy used:
//!
//! ```text
//! <parent>/<pod>                      pod limits: the Fargate size (vCPU quota, memory, pids)
//! <parent>/<pod>/<container>          container limits; outlives container restarts
//! <parent>/<pod>/<container>/run-<n>  one run, created and deleted by runc (cgroupsPath)
//! ```
//!
//! runc is given a leaf below the container cgroup so that the container cgroup, and what it
//! counts, survives runc deleting the leaf when a run ends.
//!
//! # Layouts
//!
//! [`Cgroups::detect`] reads `/proc/self/mountinfo`. If a v1 hierarchy carries the `cpu` or
//! `memory` controller the host is v1 (possibly hybrid, with a controller-less cgroup2 mount at
//! `/sys/fs/cgroup/unified` that runc also populates, so it is kept for cleanup); `cpu` and
//! `cpuacct` may be one mount (`cpu,cpuacct`) or two. Otherwise the cgroup2 mount is used (stock
//! Debian 12 with systemd: `/sys/fs/cgroup`). Limits go to the `cpu`, `cpuacct`, `memory` and
//! `pids` hierarchies on v1; runc creates its leaf (and parents) in the others too, so removal
//! walks every hierarchy.
//!
//! # OOM kills
//!
//! Measured on the v1 test host (kernel 6.18): `memory.oom_control`'s `oom_kill` counts only in
//! the memory cgroup of the killed process, never in its ancestors, whether the limit that was hit
//! was the container's or the pod's (the kernel log names `oom_memcg=/…/pod` and
//! `task_memcg=/…/pod/ctr/run-1`; only `run-1` counted). So on v1 the count lives in runc's leaf
//! and goes away with it: [`Cgroups::oom_kills`] adds the container cgroup's own counter, the
//! counters of its present leaves, and the last counts it saw of leaves that are gone, which it
//! remembers in memory. Call it after a run's process has exited and before `runc delete`
//! removes the leaf (the supervisor does, to tell `OOMKilled` from other SIGKILLs); counts of
//! leaves removed unseen, or seen by an earlier process, are lost. On v2 `memory.events`'s
//! `oom_kill` is hierarchical (unless the cgroup2 mount has `memory_localevents`, not handled),
//! so the container cgroup's own file is the answer.
//!
//! Everything here is blocking file I/O on cgroupfs (fast, but [`Cgroups::remove_pod`] waits for
//! killed processes to leave); async callers use `spawn_blocking`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::statfs::{CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, statfs};
use nix::unistd::Pid;

/// The CFS period used for every quota: 100 ms, as Kubernetes does.
pub const CPU_PERIOD_US: u64 = 100_000;

/// The smallest CFS quota the kernel accepts (1 ms).
const MIN_QUOTA_US: u64 = 1_000;

/// Controllers enabled for children on v2.
const V2_CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

/// How long [`Cgroups::remove_pod`] waits for killed processes to leave their cgroups.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the cgroup hierarchies are mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    V1 {
        /// Controller (`cpu`, `memory`, ..., or `name=systemd`) → mount directory. Controllers
        /// co-mounted (`cpu,cpuacct`) map to the same directory.
        controllers: BTreeMap<String, PathBuf>,
        /// The cgroup2 mount of a hybrid host (no controllers; runc still makes its cgroups
        /// there).
        unified: Option<PathBuf>,
    },
    V2 {
        root: PathBuf,
    },
}

/// A pod's Fargate size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodLimits {
    /// CPU in millicores: 250 = 0.25 vCPU. 0 = no quota.
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub pids: Option<u64>,
}

/// A container's own limits inside its pod; `None` = only the pod's limit applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContainerLimits {
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// CPU time used by the cgroup and its descendants.
    pub cpu_usage_ns: u64,
    /// Usage minus inactive file cache, as cAdvisor (and so `kubectl top`) computes it.
    pub memory_working_set_bytes: u64,
    pub memory_usage_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no cgroup hierarchy is usable: {0}")]
    NoHierarchy(String),
    #[error("invalid cgroup name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("{}: unexpected content {content:?}", path.display())]
    Parse { path: PathBuf, content: String },
    #[error("pod cgroup {0} does not exist")]
    NoPod(String),
    #[error("processes {pids:?} are still in {} after SIGKILL", path.display())]
    Busy { path: PathBuf, pids: Vec<i32> },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The OOM counts seen in one v1 container cgroup's run leaves.
#[derive(Debug, Default)]
struct LeafCounts {
    /// Leaf name → its `oom_kill` when last read.
    leaves: BTreeMap<String, u64>,
    /// Sum of the last counts of leaves that are gone (or were recreated).
    retired: u64,
}

/// The pod cgroups below one parent cgroup.
#[derive(Debug)]
pub struct Cgroups {
    layout: CgroupLayout,
    /// Path components of the parent cgroup (`localfargate` → `["localfargate"]`).
    parent: Vec<String>,
    /// v1 only: OOM counts of run leaves per container memory cgroup directory.
    oom_seen: Mutex<HashMap<PathBuf, LeafCounts>>,
}

/// Which hierarchy a file lives in (v1), or the only one (v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctl {
    Cpu,
    Cpuacct,
    Memory,
    Pids,
}

impl Cgroups {
    /// Finds the hierarchies from `/proc/self/mountinfo`. `parent` is the cgroup (relative to
    /// each hierarchy's root) that holds the pods, e.g. `localfargate`.
    pub fn detect(parent: &str) -> Result<Cgroups, CgroupError> {
        let path = Path::new("/proc/self/mountinfo");
        let text = fs::read_to_string(path).map_err(io_err("read", path))?;
        let layout = parse_mountinfo(&text)?;
        tracing::debug!(?layout, "detected cgroup layout");
        Ok(Cgroups::with_root(layout, parent))
    }

    /// With a given layout (tests use directories in a tempdir).
    pub fn with_root(layout: CgroupLayout, parent: &str) -> Cgroups {
        Cgroups {
            layout,
            parent: parent
                .split('/')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
            oom_seen: Mutex::new(HashMap::new()),
        }
    }

    pub fn layout(&self) -> &CgroupLayout {
        &self.layout
    }

    /// Creates or updates the pod cgroup `<parent>/<pod>` with the pod's limits: CPU quota
    /// `cpu_millis * 100` µs per 100 ms (v1 `cpu.cfs_quota_us` + `cpu.shares`; v2 `cpu.max` +
    /// `cpu.weight`), memory limit (and no swap where the kernel accounts it), `pids.max`.
    /// Idempotent. On v2 enables `cpu`, `memory` and `pids` for the children of every cgroup
    /// from the root down to the pod.
    pub fn create_pod(&self, pod: &str, limits: &PodLimits) -> Result<(), CgroupError> {
        check_name(pod)?;
        let rel = self.rel(&[pod]);
        let quota = (limits.cpu_millis > 0).then(|| quota_us(limits.cpu_millis));
        let shares = shares(limits.cpu_millis.max(1));
        match &self.layout {
            CgroupLayout::V1 { .. } => {
                for dir in self.v1_dirs(&rel) {
                    fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
                }
                self.v1_cpu(&rel, quota, Some(shares))?;
                let mem = self.v1_dir(Ctl::Memory, &rel)?;
                v1_memory(&mem, Some(limits.memory_bytes))?;
                if let Ok(pids) = self.v1_dir(Ctl::Pids, &rel) {
                    write(&pids.join("pids.max"), &pids_value(limits.pids))?;
                } else if limits.pids.is_some() {
                    tracing::warn!(pod, "no pids cgroup hierarchy: pids limit not applied");
                }
            }
            CgroupLayout::V2 { root } => {
                // Controllers must be enabled in every ancestor's subtree_control.
                let mut dir = root.clone();
                v2_enable_controllers(&dir)?;
                for comp in &self.parent {
                    dir.push(comp);
                    mkdir(&dir)?;
                    v2_enable_controllers(&dir)?;
                }
                dir.push(pod);
                mkdir(&dir)?;
                v2_limits(
                    &dir,
                    quota,
                    Some(v2_weight(shares)),
                    Some(limits.memory_bytes),
                )?;
                write(&dir.join("pids.max"), &pids_value(limits.pids))?;
                v2_enable_controllers(&dir)?;
            }
        }
        tracing::debug!(pod, ?limits, "pod cgroup ready");
        Ok(())
    }

    /// Creates or updates the container cgroup `<parent>/<pod>/<container>` (the pod cgroup
    /// must exist). Runs go in leaves below it ([`run_path`](Self::run_path)). On v1 a CPU
    /// quota above the pod's is lowered to the pod's (the kernel refuses a child quota above its
    /// parent's; the effective limit is the same).
    pub fn create_container(
        &self,
        pod: &str,
        container: &str,
        limits: &ContainerLimits,
    ) -> Result<(), CgroupError> {
        check_name(pod)?;
        check_name(container)?;
        let pod_rel = self.rel(&[pod]);
        let rel = self.rel(&[pod, container]);
        let quota = limits.cpu_millis.map(quota_us);
        let shares = limits.cpu_millis.map(shares);
        match &self.layout {
            CgroupLayout::V1 { .. } => {
                if !self.v1_dir(Ctl::Memory, &pod_rel)?.is_dir() {
                    return Err(CgroupError::NoPod(pod_rel));
                }
                for dir in self.v1_dirs(&rel) {
                    mkdir(&dir)?;
                }
                let cpu_pod = self.v1_dir(Ctl::Cpu, &pod_rel)?;
                let pod_quota = read_i64(&cpu_pod.join("cpu.cfs_quota_us")).ok();
                let quota = match (quota, pod_quota) {
                    (Some(q), Some(p)) if p > 0 => Some(q.min(p.unsigned_abs())),
                    (q, _) => q,
                };
                self.v1_cpu(&rel, quota, shares)?;
                v1_memory(&self.v1_dir(Ctl::Memory, &rel)?, limits.memory_bytes)?;
            }
            CgroupLayout::V2 { root } => {
                let pod_dir = root.join(&pod_rel);
                if !pod_dir.is_dir() {
                    return Err(CgroupError::NoPod(pod_rel));
                }
                let dir = root.join(&rel);
                mkdir(&dir)?;
                v2_limits(&dir, quota, shares.map(v2_weight), limits.memory_bytes)?;
                // runc's leaf below needs the controllers (and the container cgroup itself never
                // holds processes, so v2's no-internal-process rule is kept).
                v2_enable_controllers(&dir)?;
            }
        }
        tracing::debug!(pod, container, ?limits, "container cgroup ready");
        Ok(())
    }

    /// The `cgroupsPath` for one run of a container, absolute within each hierarchy:
    /// `/<parent>/<pod>/<container>/run-<run>`.
    pub fn run_path(&self, pod: &str, container: &str, run: u32) -> String {
        format!("/{}", self.rel(&[pod, container, &format!("run-{run}")]))
    }

    /// The `cgroupsPath` of a pod's process that belongs to no container (its pause process):
    /// `/<parent>/<pod>/<leaf>`. `leaf` must not be a container's name.
    pub fn sandbox_path(&self, pod: &str, leaf: &str) -> String {
        format!("/{}", self.rel(&[pod, leaf]))
    }

    /// Puts process `pid` in the cgroup `cgroup_path` (e.g. a [`run_path`](Self::run_path)) of
    /// the hierarchies this module manages (v1: cpu, cpuacct, memory, pids), creating it as
    /// needed. For processes not started by runc (a microVM's VMM) and for tests.
    pub fn enter(&self, cgroup_path: &str, pid: u32) -> Result<(), CgroupError> {
        let rel = cgroup_path.trim_start_matches('/');
        for comp in rel.split('/') {
            check_name(comp)?;
        }
        let dirs = match &self.layout {
            CgroupLayout::V1 { .. } => self.v1_dirs(rel),
            CgroupLayout::V2 { root } => vec![root.join(rel)],
        };
        for dir in dirs {
            fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// OOM kills of processes of this container, across its runs (module docs). Increases
    /// when a process of the container is OOM-killed, whether the container's or the pod's
    /// memory limit was hit.
    pub fn oom_kills(&self, pod: &str, container: &str) -> Result<u64, CgroupError> {
        check_name(pod)?;
        check_name(container)?;
        let rel = self.rel(&[pod, container]);
        match &self.layout {
            CgroupLayout::V2 { root } => {
                let file = root.join(&rel).join("memory.events");
                Ok(keyed_value(&file, "oom_kill")?.unwrap_or(0))
            }
            CgroupLayout::V1 { .. } => {
                let dir = self.v1_dir(Ctl::Memory, &rel)?;
                let own = v1_oom_kill(&dir)?;
                let mut current = BTreeMap::new();
                let entries = fs::read_dir(&dir).map_err(io_err("list", &dir))?;
                for entry in entries {
                    let entry = entry.map_err(io_err("list", &dir))?;
                    if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                        continue;
                    }
                    let name = entry.file_name().to_string_lossy().into_owned();
                    // A leaf removed between listing and reading is simply gone.
                    match v1_oom_kill(&entry.path()) {
                        Ok(n) => {
                            current.insert(name, n);
                        }
                        Err(CgroupError::Io { source, .. })
                            if source.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
                let mut seen = self
                    .oom_seen
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let counts = seen.entry(dir).or_default();
                let mut retired = counts.retired;
                for (name, &last) in &counts.leaves {
                    match current.get(name) {
                        // A leaf's counter only grows while it lives; a smaller one is a new
                        // leaf of the same name.
                        Some(&now) if now >= last => {}
                        _ => retired += last,
                    }
                }
                counts.retired = retired;
                let live: u64 = current.values().sum();
                counts.leaves = current;
                Ok(own + retired + live)
            }
        }
    }

    /// CPU and memory usage of the pod cgroup, or of one of its containers.
    pub fn usage(&self, pod: &str, container: Option<&str>) -> Result<Usage, CgroupError> {
        check_name(pod)?;
        let rel = match container {
            Some(c) => {
                check_name(c)?;
                self.rel(&[pod, c])
            }
            None => self.rel(&[pod]),
        };
        match &self.layout {
            CgroupLayout::V1 { .. } => {
                let cpu_usage_ns = match self.v1_dir(Ctl::Cpuacct, &rel) {
                    Ok(dir) => read_u64(&dir.join("cpuacct.usage"))?,
                    Err(_) => 0,
                };
                let mem = self.v1_dir(Ctl::Memory, &rel)?;
                let usage = read_u64(&mem.join("memory.usage_in_bytes"))?;
                // total_* includes the descendants (the runs below a container cgroup).
                let inactive = keyed_value(&mem.join("memory.stat"), "total_inactive_file")?;
                Ok(Usage {
                    cpu_usage_ns,
                    memory_working_set_bytes: usage.saturating_sub(inactive.unwrap_or(0)),
                    memory_usage_bytes: usage,
                })
            }
            CgroupLayout::V2 { root } => {
                let dir = root.join(&rel);
                let usec = keyed_value(&dir.join("cpu.stat"), "usage_usec")?.unwrap_or(0);
                let usage = read_u64(&dir.join("memory.current"))?;
                let inactive = keyed_value(&dir.join("memory.stat"), "inactive_file")?;
                Ok(Usage {
                    cpu_usage_ns: usec.saturating_mul(1000),
                    memory_working_set_bytes: usage.saturating_sub(inactive.unwrap_or(0)),
                    memory_usage_bytes: usage,
                })
            }
        }
    }

    /// SIGKILLs every process left in the pod's cgroups (v2: `cgroup.kill` where the kernel has
    /// it), waits for them to leave, then removes the pod's directories bottom-up in every
    /// hierarchy, including those runc populated. Idempotent. Blocks up to 10 s.
    pub fn remove_pod(&self, pod: &str) -> Result<(), CgroupError> {
        check_name(pod)?;
        let rel = self.rel(&[pod]);
        let dirs: Vec<PathBuf> = self
            .hierarchies()
            .into_iter()
            .map(|h| h.join(&rel))
            .filter(|d| d.is_dir())
            .collect();
        // Kill in every hierarchy before removing any: a process may sit in only some of them.
        let real: Vec<&PathBuf> = dirs.iter().filter(|d| on_cgroupfs(d)).collect();
        if let CgroupLayout::V2 { .. } = self.layout {
            for dir in &real {
                let kill_file = dir.join("cgroup.kill");
                if kill_file.exists() {
                    write(&kill_file, "1")?;
                }
            }
        }
        let deadline = Instant::now() + KILL_TIMEOUT;
        for dir in &real {
            kill_all(dir, deadline)?;
        }
        for dir in &dirs {
            if on_cgroupfs(dir) {
                rmdir_tree(dir, deadline)?;
            } else {
                // A test fake: plain directories with plain files.
                fs::remove_dir_all(dir).or_else(ignore_not_found(dir, "remove"))?;
            }
        }
        let mut seen = self
            .oom_seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.retain(|path, _| !dirs.iter().any(|d| path.starts_with(d)));
        tracing::debug!(pod, "pod cgroups removed");
        Ok(())
    }

    /// Pods with a cgroup in any hierarchy (to find leftovers after a crash).
    pub fn list_pods(&self) -> Result<Vec<String>, CgroupError> {
        let parent = self.parent.join("/");
        let mut pods = BTreeSet::new();
        for h in self.hierarchies() {
            let dir = h.join(&parent);
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(CgroupError::Io {
                        action: "list",
                        path: dir,
                        source,
                    });
                }
            };
            for entry in entries {
                let entry = entry.map_err(io_err("list", &dir))?;
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    pods.insert(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        Ok(pods.into_iter().collect())
    }

    /// `<parent>/<a>/<b>...` relative to a hierarchy's root.
    fn rel(&self, parts: &[&str]) -> String {
        let mut all: Vec<&str> = self.parent.iter().map(String::as_str).collect();
        all.extend_from_slice(parts);
        all.join("/")
    }

    /// Every distinct hierarchy root (v1: each mount, plus the hybrid cgroup2 mount).
    fn hierarchies(&self) -> Vec<PathBuf> {
        match &self.layout {
            CgroupLayout::V1 {
                controllers,
                unified,
            } => {
                let mut roots: BTreeSet<PathBuf> = controllers.values().cloned().collect();
                roots.extend(unified.iter().cloned());
                roots.into_iter().collect()
            }
            CgroupLayout::V2 { root } => vec![root.clone()],
        }
    }

    fn v1_dir(&self, ctl: Ctl, rel: &str) -> Result<PathBuf, CgroupError> {
        let CgroupLayout::V1 { controllers, .. } = &self.layout else {
            return Err(CgroupError::NoHierarchy(
                "not a cgroup v1 layout".to_string(),
            ));
        };
        let name = match ctl {
            Ctl::Cpu => "cpu",
            Ctl::Cpuacct => "cpuacct",
            Ctl::Memory => "memory",
            Ctl::Pids => "pids",
        };
        controllers
            .get(name)
            .map(|m| m.join(rel))
            .ok_or_else(|| CgroupError::NoHierarchy(format!("no v1 {name} hierarchy")))
    }

    /// `rel` in each distinct hierarchy this module writes limits to (v1).
    fn v1_dirs(&self, rel: &str) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for ctl in [Ctl::Cpu, Ctl::Cpuacct, Ctl::Memory, Ctl::Pids] {
            if let Ok(d) = self.v1_dir(ctl, rel)
                && !dirs.contains(&d)
            {
                dirs.push(d);
            }
        }
        dirs
    }

    fn v1_cpu(
        &self,
        rel: &str,
        quota: Option<u64>,
        shares: Option<u64>,
    ) -> Result<(), CgroupError> {
        let dir = self.v1_dir(Ctl::Cpu, rel)?;
        // The period first: the kernel checks quota against it.
        write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
        let quota = quota.map_or_else(|| "-1".to_string(), |q| q.to_string());
        write(&dir.join("cpu.cfs_quota_us"), &quota)?;
        if let Some(shares) = shares {
            write(&dir.join("cpu.shares"), &shares.to_string())?;
        }
        Ok(())
    }
}

/// The CFS quota for `millis` per [`CPU_PERIOD_US`]: 250 → 25 000 µs.
fn quota_us(millis: u64) -> u64 {
    millis
        .saturating_mul(CPU_PERIOD_US / 1000)
        .max(MIN_QUOTA_US)
}

/// v1 `cpu.shares` as Kubernetes computes them: 1024 per CPU, at least 2.
fn shares(millis: u64) -> u64 {
    (millis.saturating_mul(1024) / 1000).clamp(2, 262_144)
}

/// v2 `cpu.weight` from shares, the conversion runc and Kubernetes use.
fn v2_weight(shares: u64) -> u64 {
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

fn pids_value(pids: Option<u64>) -> String {
    pids.map_or_else(|| "max".to_string(), |p| p.to_string())
}

/// Sets a v1 memory limit (`None` = unlimited) and, where the kernel accounts swap, the same
/// memory+swap limit (no swap). The kernel wants memsw ≥ memory at every step, so the order
/// depends on whether the limit goes up or down.
fn v1_memory(dir: &Path, limit: Option<u64>) -> Result<(), CgroupError> {
    let mem = dir.join("memory.limit_in_bytes");
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    let value = limit.map_or_else(|| "-1".to_string(), |l| l.to_string());
    if !memsw.exists() {
        return write(&mem, &value);
    }
    let current_memsw = read_u64(&memsw).unwrap_or(u64::MAX);
    if limit.unwrap_or(u64::MAX) > current_memsw {
        write(&memsw, &value)?;
        write(&mem, &value)
    } else {
        write(&mem, &value)?;
        write(&memsw, &value)
    }
}

fn v1_oom_kill(dir: &Path) -> Result<u64, CgroupError> {
    Ok(keyed_value(&dir.join("memory.oom_control"), "oom_kill")?.unwrap_or(0))
}

fn v2_limits(
    dir: &Path,
    quota: Option<u64>,
    weight: Option<u64>,
    memory: Option<u64>,
) -> Result<(), CgroupError> {
    let quota = quota.map_or_else(|| "max".to_string(), |q| q.to_string());
    write(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
    if let Some(weight) = weight {
        write(&dir.join("cpu.weight"), &weight.to_string())?;
    }
    let memory = memory.map_or_else(|| "max".to_string(), |m| m.to_string());
    write(&dir.join("memory.max"), &memory)?;
    let swap = dir.join("memory.swap.max");
    if swap.exists() {
        write(&swap, "0")?;
    }
    Ok(())
}

/// Enables cpu, memory and pids (those the cgroup has) for the children of `dir`.
fn v2_enable_controllers(dir: &Path) -> Result<(), CgroupError> {
    let available = match fs::read_to_string(dir.join("cgroup.controllers")) {
        Ok(s) => s.split_whitespace().map(str::to_string).collect(),
        // A test fake without the file: assume the kernel has them all.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            V2_CONTROLLERS.iter().map(|c| c.to_string()).collect()
        }
        Err(source) => {
            return Err(CgroupError::Io {
                action: "read",
                path: dir.join("cgroup.controllers"),
                source,
            });
        }
    };
    let available: BTreeSet<String> = available;
    let control = dir.join("cgroup.subtree_control");
    let enabled: BTreeSet<String> = match fs::read_to_string(&control) {
        Ok(s) => s.split_whitespace().map(str::to_string).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeSet::new(),
        Err(source) => {
            return Err(CgroupError::Io {
                action: "read",
                path: control,
                source,
            });
        }
    };
    let wanted: Vec<&str> = V2_CONTROLLERS
        .into_iter()
        .filter(|c| available.contains(*c))
        .collect();
    if wanted.iter().all(|c| enabled.contains(*c)) {
        return Ok(());
    }
    let line: Vec<String> = wanted.iter().map(|c| format!("+{c}")).collect();
    write(&control, &line.join(" "))
}

fn check_name(name: &str) -> Result<(), CgroupError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name == "." || name == ".." {
        "a relative path component"
    } else if name.contains('/') || name.contains('\0') {
        "contains '/' or NUL"
    } else if name.len() > 200 {
        "longer than 200 bytes"
    } else {
        return Ok(());
    };
    Err(CgroupError::InvalidName {
        name: name.to_string(),
        reason,
    })
}

fn mkdir(dir: &Path) -> Result<(), CgroupError> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(CgroupError::Io {
            action: "create",
            path: dir.to_path_buf(),
            source,
        }),
    }
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|source| CgroupError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    let s = fs::read_to_string(path).map_err(io_err("read", path))?;
    s.trim().parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        content: s,
    })
}

fn read_i64(path: &Path) -> Result<i64, CgroupError> {
    let s = fs::read_to_string(path).map_err(io_err("read", path))?;
    s.trim().parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        content: s,
    })
}

/// The value of `key` in a flat-keyed file (`memory.stat`, `memory.events`, `cpu.stat`,
/// `memory.oom_control`): lines of `key value`.
fn keyed_value(path: &Path, key: &str) -> Result<Option<u64>, CgroupError> {
    let s = fs::read_to_string(path).map_err(io_err("read", path))?;
    for line in s.lines() {
        let mut parts = line.split_whitespace();
        if parts.next() == Some(key) {
            let value = parts.next().unwrap_or_default();
            return value.parse().map(Some).map_err(|_| CgroupError::Parse {
                path: path.to_path_buf(),
                content: line.to_string(),
            });
        }
    }
    Ok(None)
}

fn ignore_not_found<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(io::Error) -> Result<(), CgroupError> + 'a {
    move |e| {
        if e.kind() == io::ErrorKind::NotFound {
            Ok(())
        } else {
            Err(CgroupError::Io {
                action,
                path: path.to_path_buf(),
                source: e,
            })
        }
    }
}

/// Whether `path` is on a real cgroup filesystem. Only there are pids read from `cgroup.procs`
/// signalled; anything else is a test fake whose files must not make us kill anything.
fn on_cgroupfs(path: &Path) -> bool {
    statfs(path).is_ok_and(|s| {
        let t = s.filesystem_type();
        t == CGROUP_SUPER_MAGIC || t == CGROUP2_SUPER_MAGIC
    })
}

/// Directories of the tree at `dir`, children before parents.
fn subtree_post_order(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
    match fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(io_err("list", dir))?;
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    subtree_post_order(&entry.path(), out)?;
                }
            }
        }
        // Removed meanwhile (runc deleting its leaf).
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Io {
                action: "list",
                path: dir.to_path_buf(),
                source,
            });
        }
    }
    out.push(dir.to_path_buf());
    Ok(())
}

fn procs_in(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let file = dir.join("cgroup.procs");
    match fs::read_to_string(&file) {
        Ok(s) => Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(CgroupError::Io {
            action: "read",
            path: file,
            source,
        }),
    }
}

/// SIGKILLs every process in the tree at `dir` until none is left. Processes forked between a
/// read and the kills are found by the next round; a killed process cannot fork any more.
fn kill_all(dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    let me = std::process::id() as i32;
    loop {
        let mut tree = Vec::new();
        subtree_post_order(dir, &mut tree)?;
        let mut left = Vec::new();
        for d in &tree {
            for pid in procs_in(d)? {
                // Never signal ourselves or init, whatever a cgroup.procs says.
                if pid <= 1 || pid == me {
                    continue;
                }
                left.push(pid);
                match kill(Pid::from_raw(pid), Signal::SIGKILL) {
                    Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                    Err(e) => tracing::warn!(pid, error = %e, "SIGKILL failed"),
                }
            }
        }
        if left.is_empty() {
            return Ok(());
        }
        tracing::debug!(dir = %dir.display(), pids = ?left, "killed processes left in pod cgroup");
        if Instant::now() >= deadline {
            return Err(CgroupError::Busy {
                path: dir.to_path_buf(),
                pids: left,
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Removes the cgroup tree at `dir`, children first. `rmdir` fails with EBUSY while a dying
/// process is still being removed from its cgroup, so that is retried until `deadline`.
fn rmdir_tree(dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    let mut tree = Vec::new();
    subtree_post_order(dir, &mut tree)?;
    for d in tree {
        loop {
            match fs::remove_dir(&d) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(source) => {
                    return Err(CgroupError::Io {
                        action: "remove",
                        path: d,
                        source,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Options of a cgroup v1 mount's super block that are not controllers.
const V1_NON_CONTROLLER_OPTIONS: [&str; 7] = [
    "rw",
    "ro",
    "xattr",
    "noprefix",
    "clone_children",
    "cpuset_v2_mode",
    "favordynmods",
];

/// The cgroup layout described by a `/proc/self/mountinfo`.
pub fn parse_mountinfo(text: &str) -> Result<CgroupLayout, CgroupError> {
    // Controller → (mount point, whether the mount shows the whole hierarchy).
    let mut found: BTreeMap<String, (PathBuf, bool)> = BTreeMap::new();
    let mut unified: Option<PathBuf> = None;
    for line in text.lines() {
        // `<id> <parent> <maj:min> <root> <mount point> <options> [optional...] - <fstype>
        // <source> <super options>`
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(mount_point), Some(fstype)) =
            (left.get(3), left.get(4), right.first())
        else {
            continue;
        };
        let mount_point = PathBuf::from(unescape_mountinfo(mount_point));
        let whole = *root == "/";
        match *fstype {
            "cgroup" => {
                let options = right.get(2).copied().unwrap_or_default();
                for opt in options.split(',') {
                    let is_controller = !opt.is_empty()
                        && !V1_NON_CONTROLLER_OPTIONS.contains(&opt)
                        && (!opt.contains('=') || opt.starts_with("name="));
                    if !is_controller {
                        continue;
                    }
                    // A hierarchy mounted more than once (bind mounts of a subtree): keep the
                    // first mount that shows the whole hierarchy.
                    let keep = match found.get(opt) {
                        None => true,
                        Some((_, had_whole)) => whole && !had_whole,
                    };
                    if keep {
                        found.insert(opt.to_string(), (mount_point.clone(), whole));
                    }
                }
            }
            "cgroup2" if unified.is_none() || mount_point == Path::new("/sys/fs/cgroup") => {
                unified = Some(mount_point);
            }
            _ => {}
        }
    }
    let controllers: BTreeMap<String, PathBuf> =
        found.into_iter().map(|(c, (m, _))| (c, m)).collect();
    if controllers.contains_key("memory") || controllers.contains_key("cpu") {
        for needed in ["cpu", "memory"] {
            if !controllers.contains_key(needed) {
                return Err(CgroupError::NoHierarchy(format!(
                    "cgroup v1 without the {needed} controller"
                )));
            }
        }
        return Ok(CgroupLayout::V1 {
            controllers,
            unified,
        });
    }
    match unified {
        Some(root) => Ok(CgroupLayout::V2 { root }),
        None => Err(CgroupError::NoHierarchy(
            "neither cgroup v1 cpu/memory hierarchies nor a cgroup2 mount in /proc/self/mountinfo"
                .to_string(),
        )),
    }
}

/// Mount points in mountinfo escape space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let digit = |j: usize| u32::from(bytes[i + j] - b'0');
            let v = digit(1) * 64 + digit(2) * 8 + digit(3);
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn parses_hybrid_v1_with_separate_cpu_and_cpuacct() {
        let CgroupLayout::V1 {
            controllers,
            unified,
        } = parse_mountinfo(HYBRID).unwrap()
        else {
            panic!("expected v1");
        };
        assert_eq!(controllers["cpu"], Path::new("/sys/fs/cgroup/cpu"));
        assert_eq!(controllers["cpuacct"], Path::new("/sys/fs/cgroup/cpuacct"));
        assert_eq!(controllers["memory"], Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(
            controllers["name=systemd"],
            Path::new("/sys/fs/cgroup/systemd")
        );
        assert!(!controllers.contains_key("xattr"));
        assert!(!controllers.contains_key("rw"));
        assert_eq!(
            unified.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified"))
        );
    }

    #[test]
    fn parses_combined_cpu_cpuacct_and_prefers_whole_hierarchies() {
        let text = "\
50 31 0:40 /kubepods /mnt/sub rw - cgroup cgroup rw,memory
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/my\\040dir rw - cgroup cgroup rw,pids
";
        let CgroupLayout::V1 {
            controllers,
            unified,
        } = parse_mountinfo(text).unwrap()
        else {
            panic!("expected v1");
        };
        assert_eq!(controllers["cpu"], controllers["cpuacct"]);
        assert_eq!(controllers["cpu"], Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(controllers["memory"], Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(controllers["pids"], Path::new("/sys/fs/cgroup/my dir"));
        assert_eq!(unified, None);
    }

    #[test]
    fn parses_unified_v2() {
        let text = "\
25 23 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";
        assert_eq!(
            parse_mountinfo(text).unwrap(),
            CgroupLayout::V2 {
                root: PathBuf::from("/sys/fs/cgroup")
            }
        );
        assert!(matches!(
            parse_mountinfo("1 0 0:1 / / rw - ext4 /dev/vda rw\n"),
            Err(CgroupError::NoHierarchy(_))
        ));
    }

    #[test]
    fn cpu_conversions() {
        assert_eq!(quota_us(250), 25_000);
        assert_eq!(quota_us(4000), 400_000);
        assert_eq!(quota_us(1), MIN_QUOTA_US);
        assert_eq!(shares(250), 256);
        assert_eq!(shares(1), 2);
        assert_eq!(v2_weight(2), 1);
        assert_eq!(v2_weight(1024), 39);
        assert_eq!(v2_weight(262_144), 10_000);
    }

    #[test]
    fn names_are_checked() {
        for bad in ["", ".", "..", "a/b"] {
            assert!(matches!(
                check_name(bad),
                Err(CgroupError::InvalidName { .. })
            ));
        }
        assert!(check_name("default_web-1.abc").is_ok());
    }
}
