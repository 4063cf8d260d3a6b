//! What a sandbox runtime measures of a running container, and what the metrics API turns into
//! `kubectl top`'s figures.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// One running container's resource usage at one instant, from
/// a sandbox runtime's `usage`: what a kubelet's stats give metrics-server, which
/// turns two of them into a CPU rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerUsage {
    pub name: String,
    /// When `cpu_ns` was zero. Two samples with the same origin can be subtracted; a later origin
    /// means the counter started again.
    pub since: SystemTime,
    /// When the sample was read.
    pub timestamp: SystemTime,
    /// CPU time used since `since`, in nanoseconds.
    pub cpu_ns: u64,
    /// Memory usage minus inactive file cache: cAdvisor's working set, what `kubectl top` shows.
    pub memory_working_set_bytes: u64,
}
