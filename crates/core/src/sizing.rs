//! Fargate pod sizing (fargate-behavior.md §2): the requests that count, the 256 MiB Fargate adds,
//! and rounding up to a valid vCPU/memory combination; ephemeral storage (§2.4).

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde::Serialize;
use thiserror::Error;

use crate::quantity;

pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
/// Memory Fargate adds to every pod for kubelet, kube-proxy and containerd.
pub const FARGATE_MEMORY_OVERHEAD: u64 = 256 * MIB;
/// Ephemeral storage every pod gets without asking, and the most it can get.
pub const DEFAULT_STORAGE_GIB: u64 = 20;
pub const MAX_STORAGE_GIB: u64 = 175;

pub const TOO_BIG_REASON: &str = "POD_CPU_MEM_EXCEEDS_MAX_FARGATE_SIZE";
pub const TOO_BIG_MESSAGE: &str =
    "Your pod's cpu/memory requirements exceed the max Fargate configuration";

/// One vCPU row of the table in §2.2, with its memory options in MiB, ascending.
struct Tier {
    vcpu_millis: u32,
    memory_mib: &'static [u32],
}

/// `N` memory options from `min` MiB in steps of `step` MiB.
const fn steps<const N: usize>(min: u32, step: u32) -> [u32; N] {
    let mut out = [0; N];
    let mut i = 0;
    while i < N {
        out[i] = min + step * i as u32;
        i += 1;
    }
    out
}

const GB: u32 = 1024;
const HALF_VCPU: [u32; 4] = steps(GB, GB); // 1–4 GB
const ONE_VCPU: [u32; 7] = steps(2 * GB, GB); // 2–8 GB
const TWO_VCPU: [u32; 13] = steps(4 * GB, GB); // 4–16 GB
const FOUR_VCPU: [u32; 23] = steps(8 * GB, GB); // 8–30 GB
const EIGHT_VCPU: [u32; 12] = steps(16 * GB, 4 * GB); // 16–60 GB by 4
const SIXTEEN_VCPU: [u32; 12] = steps(32 * GB, 8 * GB); // 32–120 GB by 8

const TIERS: [Tier; 7] = [
    Tier {
        vcpu_millis: 250,
        memory_mib: &[GB / 2, GB, 2 * GB],
    },
    Tier {
        vcpu_millis: 500,
        memory_mib: &HALF_VCPU,
    },
    Tier {
        vcpu_millis: 1000,
        memory_mib: &ONE_VCPU,
    },
    Tier {
        vcpu_millis: 2000,
        memory_mib: &TWO_VCPU,
    },
    Tier {
        vcpu_millis: 4000,
        memory_mib: &FOUR_VCPU,
    },
    Tier {
        vcpu_millis: 8000,
        memory_mib: &EIGHT_VCPU,
    },
    Tier {
        vcpu_millis: 16000,
        memory_mib: &SIXTEEN_VCPU,
    },
];

/// A valid Fargate vCPU/memory combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct FargateSize {
    pub vcpu_millis: u32,
    pub memory_mib: u32,
}

impl FargateSize {
    pub const SMALLEST: FargateSize = FargateSize {
        vcpu_millis: 250,
        memory_mib: 512,
    };
    pub const LARGEST: FargateSize = FargateSize {
        vcpu_millis: 16000,
        memory_mib: 122_880,
    };

    pub fn vcpu(&self) -> f64 {
        f64::from(self.vcpu_millis) / 1000.0
    }

    pub fn memory_gib(&self) -> f64 {
        f64::from(self.memory_mib) / 1024.0
    }

    /// Every valid combination, smallest vCPU first, then smallest memory.
    pub fn all() -> impl Iterator<Item = FargateSize> {
        TIERS.iter().flat_map(|t| {
            t.memory_mib.iter().map(move |&memory_mib| FargateSize {
                vcpu_millis: t.vcpu_millis,
                memory_mib,
            })
        })
    }

    pub fn is_valid(&self) -> bool {
        FargateSize::all().any(|s| s == *self)
    }

    /// The smallest combination with at least this CPU and this memory (overhead already added).
    pub fn round_up(cpu_millis: u64, memory_bytes: u64) -> Option<FargateSize> {
        // Higher tiers have higher memory minimums, so the first fitting tier is also the cheapest.
        TIERS
            .iter()
            .filter(|t| u64::from(t.vcpu_millis) >= cpu_millis)
            .find_map(|t| {
                let i = t
                    .memory_mib
                    .partition_point(|&m| u64::from(m) * MIB < memory_bytes);
                t.memory_mib.get(i).map(|&memory_mib| FargateSize {
                    vcpu_millis: t.vcpu_millis,
                    memory_mib,
                })
            })
    }
}

impl fmt::Display for FargateSize {
    /// As the `CapacityProvisioned` annotation shows it: `0.25vCPU 0.5GB`, `2vCPU 9GB`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}vCPU {}GB",
            shortest(f64::from(self.vcpu_millis) / 1000.0),
            shortest(f64::from(self.memory_mib) / 1024.0)
        )
    }
}

/// The shortest decimal form: 0.25, 0.5, 1, 16. Table values are exact in binary.
fn shortest(value: f64) -> String {
    let text = format!("{value}");
    text.strip_suffix(".0").map(str::to_string).unwrap_or(text)
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SizingError {
    #[error("container {container:?}: {resource}: {source}")]
    InvalidQuantity {
        container: String,
        resource: String,
        #[source]
        source: quantity::QuantityError,
    },
}

/// What a pod asks for, by the Kubernetes rule for a pod's effective requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PodRequests {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
    /// Any other resource (GPUs, hugepages, device plugins), in base units.
    pub extended: BTreeMap<String, u64>,
}

impl PodRequests {
    fn add(&mut self, other: &PodRequests) {
        self.cpu_millis = self.cpu_millis.saturating_add(other.cpu_millis);
        self.memory_bytes = self.memory_bytes.saturating_add(other.memory_bytes);
        self.ephemeral_storage_bytes = self
            .ephemeral_storage_bytes
            .saturating_add(other.ephemeral_storage_bytes);
        for (k, v) in &other.extended {
            let e = self.extended.entry(k.clone()).or_insert(0);
            *e = e.saturating_add(*v);
        }
    }

    fn max_with(&mut self, other: &PodRequests) {
        self.cpu_millis = self.cpu_millis.max(other.cpu_millis);
        self.memory_bytes = self.memory_bytes.max(other.memory_bytes);
        self.ephemeral_storage_bytes = self
            .ephemeral_storage_bytes
            .max(other.ephemeral_storage_bytes);
        for (k, v) in &other.extended {
            let e = self.extended.entry(k.clone()).or_insert(0);
            *e = (*e).max(*v);
        }
    }

    /// The Fargate size these requests provision, or `None` when no combination is big enough.
    pub fn fargate_size(&self) -> Option<FargateSize> {
        FargateSize::round_up(
            self.cpu_millis,
            self.memory_bytes.saturating_add(FARGATE_MEMORY_OVERHEAD),
        )
    }

    /// The size these requests would get if Fargate added no memory: to show what the overhead costs.
    pub fn size_without_overhead(&self) -> Option<FargateSize> {
        FargateSize::round_up(self.cpu_millis, self.memory_bytes)
    }
}

/// One container's requests, a limit standing in where a request is absent (as the API server
/// defaults it).
pub fn container_requests(container: &Container) -> Result<PodRequests, SizingError> {
    let mut out = PodRequests::default();
    let Some(resources) = &container.resources else {
        return Ok(out);
    };
    let requests = resources.requests.as_ref();
    let limits = resources.limits.as_ref();
    // Requests, and limits only where no request stands: each resource is parsed once.
    let from_limits = limits
        .into_iter()
        .flatten()
        .filter(|(name, _)| requests.is_none_or(|r| !r.contains_key(*name)));
    for (name, value) in requests.into_iter().flatten().chain(from_limits) {
        let invalid = |source| SizingError::InvalidQuantity {
            container: container.name.clone(),
            resource: name.clone(),
            source,
        };
        match name.as_str() {
            "cpu" => out.cpu_millis = quantity::cpu_millis(&value.0).map_err(invalid)?,
            "memory" => out.memory_bytes = quantity::base_units(&value.0).map_err(invalid)?,
            "ephemeral-storage" => {
                out.ephemeral_storage_bytes = quantity::base_units(&value.0).map_err(invalid)?
            }
            other => {
                let amount = quantity::base_units(&value.0).map_err(invalid)?;
                out.extended.insert(other.to_string(), amount);
            }
        }
    }
    Ok(out)
}

/// How a container's requests count toward its pod's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerRole {
    App,
    /// Runs to completion before the app containers start.
    Init,
    /// An init container with `restartPolicy: Always`: runs beside everything after it.
    Sidecar,
}

/// One container's role and requests, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDemand {
    pub role: ContainerRole,
    pub requests: PodRequests,
}

/// Every container of a pod, init containers first, in order.
pub fn container_demands(spec: &PodSpec) -> Result<Vec<ContainerDemand>, SizingError> {
    let init = spec.init_containers.iter().flatten().map(|c| {
        let role = if c.restart_policy.as_deref() == Some("Always") {
            ContainerRole::Sidecar
        } else {
            ContainerRole::Init
        };
        (role, c)
    });
    let apps = spec.containers.iter().map(|c| (ContainerRole::App, c));
    init.chain(apps)
        .map(|(role, c)| {
            Ok(ContainerDemand {
                role,
                requests: container_requests(c)?,
            })
        })
        .collect()
}

/// A pod's effective requests: the larger of the largest init container and the sum of the app
/// containers. Native sidecars (init containers with `restartPolicy: Always`) run beside the app
/// containers and every later init container, so they count in both, as in Kubernetes.
pub fn combine(demands: &[ContainerDemand]) -> PodRequests {
    let mut apps = PodRequests::default();
    let mut sidecars = PodRequests::default();
    let mut init_peak = PodRequests::default();
    for d in demands {
        match d.role {
            ContainerRole::App => apps.add(&d.requests),
            ContainerRole::Sidecar => {
                sidecars.add(&d.requests);
                init_peak.max_with(&sidecars);
            }
            ContainerRole::Init => {
                let mut during = d.requests.clone();
                during.add(&sidecars);
                init_peak.max_with(&during);
            }
        }
    }
    apps.add(&sidecars);
    apps.max_with(&init_peak);
    apps
}

/// A pod's effective requests (see [`combine`]).
pub fn pod_requests(spec: &PodSpec) -> Result<PodRequests, SizingError> {
    container_demands(spec).map(|d| combine(&d))
}

/// Ephemeral storage Fargate provisions, in GiB: 20 by default; more when the pod asks, as
/// requests + 10% + 5 GiB rounded up to a whole GiB (a 100 GiB request provisions 115 GiB).
/// `None` when that exceeds the 175 GiB maximum.
pub fn provisioned_storage_gib(requested_bytes: u64) -> Option<u64> {
    if requested_bytes == 0 {
        return Some(DEFAULT_STORAGE_GIB);
    }
    // ceil(requested × 1.1 + 5 GiB), in whole GiB, with integer arithmetic.
    let tenths = u128::from(requested_bytes) * 11;
    let bytes = tenths.div_ceil(10) + u128::from(5 * GIB);
    let gib = bytes.div_ceil(u128::from(GIB));
    let gib = u64::try_from(gib).ok()?.max(DEFAULT_STORAGE_GIB);
    (gib <= MAX_STORAGE_GIB).then_some(gib)
}

#[cfg(test)]
mod tests;
