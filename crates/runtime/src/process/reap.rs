//! Sandboxes of a run that crashed and will not come back: an `up --ephemeral` killed with
//! `kill -9` leaves its pods running (their shims are separate processes) under a state
//! directory named after its pid, which no later run opens. The next run with the process
//! runtime finds such directories whose owner is gone and removes everything in them through
//! the runtime's own teardown: processes, mounts, network namespaces, cgroups, files.

use std::path::{Path, PathBuf};

use super::ProcessRuntime;
use crate::{RuntimeConfig, SandboxRuntime};

/// The process that owns `dir`, named `<prefix><pid>`, if the name says so.
fn owner_pid(dir: &Path, prefix: &str) -> Option<u32> {
    dir.file_name()?
        .to_str()?
        .strip_prefix(prefix)?
        .parse()
        .ok()
}

/// Whether `pid` is a live localfargate process (a pid reused by another program is not).
fn is_live_localfargate(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|comm| comm.trim_end().starts_with("localfargate"))
}

/// State directories under `parent` named `<prefix><pid>` whose localfargate has gone.
pub fn crashed_runs(parent: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let me = std::process::id();
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|d| d.is_dir())
        .filter(|d| owner_pid(d, prefix).is_some_and(|pid| pid != me && !is_live_localfargate(pid)))
        .collect()
}

/// Removes every sandbox of each crashed run under `parent` (see [`crashed_runs`]), then its
/// directory. `template` gives the network, cgroup and image settings, which runs share; the
/// state and log directories are the crashed run's. Returns how many sandboxes were removed.
pub async fn remove_crashed_runs(parent: &Path, prefix: &str, template: &RuntimeConfig) -> usize {
    let mut removed = 0;
    for dir in crashed_runs(parent, prefix) {
        let own = RuntimeConfig::under(&dir);
        let config = RuntimeConfig {
            state_dir: own.state_dir,
            log_dir: own.log_dir,
            ..template.clone()
        };
        match ProcessRuntime::new(config).await {
            Ok(rt) => {
                for s in rt.list().await.unwrap_or_default() {
                    tracing::info!(sandbox = %s.id, pod = %format!("{}/{}", s.namespace, s.name), run = %dir.display(), "removing a sandbox of a run that crashed");
                    match rt.remove(&s.id).await {
                        Ok(()) => removed += 1,
                        Err(e) => {
                            tracing::warn!(sandbox = %s.id, error = %e, "removing a crashed run's sandbox")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(run = %dir.display(), error = %e, "cannot open a crashed run's sandboxes");
                continue;
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(run = %dir.display(), error = %e, "removing a crashed run's directory");
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_directories_of_gone_runs_are_crashed() {
        let parent = tempfile::tempdir().unwrap();
        let me = std::process::id();
        // A pid far above any this machine hands out (pid_max ≤ 4194304).
        for name in [
            format!("localfargate-{me}"),
            "localfargate-4194399".to_string(),
            "localfargate-notapid".to_string(),
            "other-4194399".to_string(),
        ] {
            std::fs::create_dir(parent.path().join(name)).unwrap();
        }
        let crashed = crashed_runs(parent.path(), "localfargate-");
        assert_eq!(crashed, vec![parent.path().join("localfargate-4194399")]);
        // PID 1 is alive but is not localfargate: its directory counts as crashed.
        assert!(!is_live_localfargate(1));
    }
}
