//! The simulated runtime's resource usage: no process runs, so each container is given a fixed
//! CPU rate and memory working set while it runs, and its cumulative CPU time is the rate times
//! the time its runs have lasted. Deterministic: the same pod gives the same numbers, and with a
//! paused clock the same samples.
//!
//! `sim.localfargate.io/cpu-usage` (a CPU quantity: `250m`, `1.5`) and
//! `sim.localfargate.io/memory-usage` (a memory quantity: `64Mi`) set them, for the pod or, with a
//! `.<container>` suffix, for one container. Without them a container idles plausibly: 1 to 10
//! millicores and 8 to 40 MiB (in whole pages), picked from a digest of the pod's uid and the
//! container's name, so pods differ from one another but not from one sample to the next.

use super::{NEVER, SimAnnotations, Tick};

/// What a container uses while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct UsageModel {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;

impl UsageModel {
    /// From the annotations, else the idle default for this pod's container.
    pub fn for_container(
        ann: &SimAnnotations<'_>,
        pod_uid: &str,
        container: &str,
    ) -> Result<UsageModel, String> {
        let seed = seed(pod_uid, container);
        let cpu_millis = match ann.get("cpu-usage", Some(container)) {
            Some((key, value)) => localfargate_core::quantity::cpu_millis(value)
                .map_err(|e| format!("annotation {key}: {e}"))?,
            None => 1 + seed % 10,
        };
        let memory_bytes = match ann.get("memory-usage", Some(container)) {
            Some((key, value)) => localfargate_core::quantity::base_units(value)
                .map_err(|e| format!("annotation {key}: {e}"))?,
            None => 8 * MIB + (seed >> 8) % (32 * MIB / PAGE) * PAGE,
        };
        Ok(UsageModel {
            cpu_millis,
            memory_bytes,
        })
    }

    /// CPU time, in nanoseconds, used by `restarts` earlier runs of `run` ticks each (runs
    /// that were followed by another ended by themselves, so lasted their full length) and a
    /// current run that has lasted `current`.
    pub fn cpu_ns(&self, restarts: u64, run: Tick, current: Tick) -> u64 {
        let earlier = if run == NEVER {
            0
        } else {
            u128::from(restarts) * u128::from(run)
        };
        let ran = earlier + u128::from(current);
        u64::try_from(ran * u128::from(self.cpu_millis) / 1000).unwrap_or(u64::MAX)
    }
}

fn seed(pod_uid: &str, container: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{pod_uid}/{container}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{ContainerSpec, SandboxSpec};

    fn spec(annotations: &[(&str, &str)]) -> SandboxSpec {
        let mut s = SandboxSpec::new(
            "uid-1",
            "default",
            "p".to_string(),
            "10.0.0.2".parse().unwrap(),
            vec![
                ContainerSpec {
                    name: "a".into(),
                    image: "busybox".into(),
                    ..Default::default()
                },
                ContainerSpec {
                    name: "b".into(),
                    image: "busybox".into(),
                    ..Default::default()
                },
            ],
        );
        s.annotations = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>();
        s
    }

    #[test]
    fn annotations_set_the_usage_per_pod_and_per_container() {
        let s = spec(&[
            ("sim.localfargate.io/cpu-usage", "250m"),
            ("sim.localfargate.io/memory-usage", "64Mi"),
            ("sim.localfargate.io/cpu-usage.b", "1.5"),
        ]);
        let ann = SimAnnotations::new(&s).unwrap();
        let a = UsageModel::for_container(&ann, "uid-1", "a").unwrap();
        let b = UsageModel::for_container(&ann, "uid-1", "b").unwrap();
        assert_eq!(
            a,
            UsageModel {
                cpu_millis: 250,
                memory_bytes: 64 * MIB
            }
        );
        assert_eq!(b.cpu_millis, 1500);
        assert_eq!(b.memory_bytes, 64 * MIB);
        let s = spec(&[("sim.localfargate.io/memory-usage.a", "lots")]);
        let ann = SimAnnotations::new(&s).unwrap();
        let e = UsageModel::for_container(&ann, "uid-1", "a").unwrap_err();
        assert!(
            e.starts_with("annotation sim.localfargate.io/memory-usage.a: quantities must match"),
            "{e}"
        );
    }

    #[test]
    fn the_default_is_a_plausible_idle_container_and_the_same_each_time() {
        let s = spec(&[]);
        let ann = SimAnnotations::new(&s).unwrap();
        for (uid, c) in [("uid-1", "a"), ("uid-1", "b"), ("uid-2", "a"), ("x", "y")] {
            let m = UsageModel::for_container(&ann, uid, c).unwrap();
            assert_eq!(m, UsageModel::for_container(&ann, uid, c).unwrap());
            assert!((1..=10).contains(&m.cpu_millis), "{m:?}");
            assert!((8 * MIB..40 * MIB).contains(&m.memory_bytes), "{m:?}");
            assert_eq!(m.memory_bytes % PAGE, 0);
        }
    }

    #[test]
    fn cpu_time_counts_every_run() {
        let m = UsageModel {
            cpu_millis: 250,
            memory_bytes: 0,
        };
        let second = 1_000_000_000;
        assert_eq!(m.cpu_ns(0, NEVER, 4 * second), second);
        // Two runs of 2 s before the current one, which has run 1 s: 5 s at a quarter CPU.
        assert_eq!(m.cpu_ns(2, 2 * second, second), 1_250_000_000);
    }
}
