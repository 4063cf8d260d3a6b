//! How a runtime is built: where it keeps its state, logs and images, and how pods reach the
//! network and registries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::restart::Backoff;

/// Construction settings shared by every backend. The simulated runtime reads none of them; the
/// process (and later microVM) backends read all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Sandboxes' state (specs, bundles, root filesystems, exit files), so a restarted
    /// localfargate finds and adopts them.
    pub state_dir: PathBuf,
    /// Container logs, laid out as the kubelet's `/var/log/pods`:
    /// `<namespace>_<pod>_<uid>/<container>/<restartCount>.log`.
    pub log_dir: PathBuf,
    /// The content-addressed image store, shared by every pod and cluster.
    pub image_dir: PathBuf,
    /// The host bridge every pod's veth joins; it carries each subnet's gateway address.
    pub bridge: String,
    /// Prefix of the pods' network namespaces (`/run/netns/<prefix><id>`).
    pub netns_prefix: String,
    /// The parent cgroup of every pod (`/sys/fs/cgroup/…/<cgroup_parent>/<sandbox>`).
    pub cgroup_parent: String,
    /// Let pods reach addresses outside this machine (NAT through the host). Off by default:
    /// pod traffic stays on the machine.
    pub egress: bool,
    /// Registries served over plain HTTP (`host:port`), as `--insecure-registry`.
    pub insecure_registries: Vec<String>,
    /// Registry mirrors, as containerd's: `docker.io` → `["http://127.0.0.1:5000"]`.
    pub registry_mirrors: BTreeMap<String, Vec<String>>,
    /// The OCI runtime binary (`runc`).
    pub oci_runtime: PathBuf,
    /// The command that runs a container shim: the program and the arguments before the
    /// shim's own (the `localfargate` binary and its hidden `shim` subcommand).
    pub shim_command: Vec<String>,
    /// Container log rotation, as the kubelet's `containerLogMaxSize` and `containerLogMaxFiles`.
    pub log_max_bytes: u64,
    pub log_max_files: usize,
    /// The crash back-off of restarted containers (the kubelet's: 10 s doubling to 5 min).
    pub restart_backoff: Backoff,
}

impl RuntimeConfig {
    /// Everything under one data directory (`up`'s `--data-dir`), with the defaults.
    pub fn under(data_dir: &Path) -> RuntimeConfig {
        RuntimeConfig {
            state_dir: data_dir.join("runtime"),
            log_dir: data_dir.join("pods"),
            image_dir: data_dir.join("images"),
            bridge: "lfbr0".to_string(),
            netns_prefix: "lf-".to_string(),
            cgroup_parent: "localfargate".to_string(),
            egress: false,
            insecure_registries: Vec::new(),
            registry_mirrors: BTreeMap::new(),
            oci_runtime: PathBuf::from("runc"),
            shim_command: std::env::current_exe()
                .map(|p| vec![p.display().to_string(), "shim".to_string()])
                .unwrap_or_default(),
            log_max_bytes: 10 * 1024 * 1024,
            log_max_files: 5,
            restart_backoff: Backoff::KUBELET,
        }
    }
}
