//! Resource usage of a sandbox's running containers, read from their cgroups.
//!
//! Each container has a cgroup of its own below the pod's (`<parent>/<pod>/<container>`), created
//! when the sandbox is set up and kept across restarts, with runc's per-run leaves below it
//! ([`crate::cgroups`]). Its counters are hierarchical, so they include every run: CPU time
//! counts from the sandbox's setup and never goes back while the sandbox lives, and the memory
//! working set is the container's usage minus its inactive file cache, as cAdvisor computes it
//! for the kubelet (v1 `memory.usage_in_bytes` − `total_inactive_file`, v2 `memory.current` −
//! `inactive_file`). Pages a container wrote into a `medium: Memory` volume or `/dev/shm` are
//! charged to it and count, as on a kubelet.

use std::time::SystemTime;

use super::ProcessRuntime;
use crate::{ContainerUsage, RuntimeError, SandboxId};

impl ProcessRuntime {
    /// [`crate::SandboxRuntime::usage`]: one sample per running container, in spec order.
    pub(super) async fn container_usage(
        &self,
        sandbox: &SandboxId,
    ) -> Result<Vec<ContainerUsage>, RuntimeError> {
        let sb = self.get(sandbox)?;
        let (since, running) = {
            let st = sb.state();
            let running: Vec<String> = st
                .containers
                .iter()
                .filter(|c| c.state.is_running())
                .map(|c| c.name.clone())
                .collect();
            // The container cgroups are made while the sandbox is set up, before it is ready and
            // before any process joins them: their counters are zero until then.
            (st.ready_at.unwrap_or(st.created_at), running)
        };
        if running.is_empty() {
            return Ok(Vec::new());
        }
        let inner = self.inner.clone();
        let pod = sandbox.as_str().to_string();
        tokio::task::spawn_blocking(move || {
            running
                .into_iter()
                .map(|name| {
                    // Before the CPU counter is read: the rate's window is measured on this.
                    let timestamp = SystemTime::now();
                    let usage = inner.cgroups.usage(&pod, Some(&name))?;
                    Ok(ContainerUsage {
                        name,
                        since,
                        timestamp,
                        cpu_ns: usage.cpu_usage_ns,
                        memory_working_set_bytes: usage.memory_working_set_bytes,
                    })
                })
                .collect::<Result<Vec<_>, RuntimeError>>()
        })
        .await
        .map_err(|e| RuntimeError::Io {
            context: format!("reading the cgroups of sandbox {sandbox}"),
            source: std::io::Error::other(e),
        })?
    }
}
