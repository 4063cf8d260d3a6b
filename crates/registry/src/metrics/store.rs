//! The samples the collector keeps, and the usage computed from them, with metrics-server's
//! rules (`pkg/storage`): each container keeps its latest sample and the one before it, and its
//! CPU usage is the CPU time used between the two divided by the time between them.
//!
//! * A batch replaces the one before: a pod (or container) missing from it has no metrics until
//!   it has two samples again.
//! * The earlier sample is kept only while the container's counter has not started again (its
//!   origin, `since`, is before the latest sample's time), and only when the new sample is newer.
//! * A container that started less than one resolution ago (but at least 10 s ago) is measured
//!   from its start, where its counter was zero, so a new pod shows up after one sample, not two.
//! * A pod has metrics only when every one of its containers has two samples; its timestamp and
//!   window are those of its container with the earliest latest sample.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, SystemTime};

use localfargate_core::usage::ContainerUsage;

/// metrics-server's `freshContainerMinMetricsResolution`: a container measured from its start
/// must have run at least this long, or the rate is too coarse.
const FRESH_CONTAINER_MIN: Duration = Duration::from_secs(10);

/// One sample of a container (metrics-server's `MetricsPoint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Point {
    since: SystemTime,
    timestamp: SystemTime,
    cpu_ns: u64,
    memory_bytes: u64,
}

impl From<&ContainerUsage> for Point {
    fn from(u: &ContainerUsage) -> Point {
        Point {
            since: u.since,
            timestamp: u.timestamp,
            cpu_ns: u.cpu_ns,
            memory_bytes: u.memory_working_set_bytes,
        }
    }
}

#[derive(Debug, Clone)]
struct ContainerPoints {
    name: String,
    last: Point,
    prev: Option<Point>,
}

/// What a container uses: CPU in nanocores, memory working set in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub cpu_nanocores: u64,
    pub memory_bytes: u64,
}

impl std::ops::Add for Usage {
    type Output = Usage;

    fn add(self, other: Usage) -> Usage {
        Usage {
            cpu_nanocores: self.cpu_nanocores.saturating_add(other.cpu_nanocores),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
        }
    }
}

/// When a usage was measured: the latest sample's time, and how long before it the earlier
/// sample was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub timestamp: SystemTime,
    pub length: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerMetrics {
    pub name: String,
    pub usage: Usage,
}

/// A pod's usage, container by container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodMetrics {
    pub window: Window,
    pub containers: Vec<ContainerMetrics>,
}

impl PodMetrics {
    pub fn total(&self) -> Usage {
        self.containers
            .iter()
            .fold(Usage::default(), |sum, c| sum + c.usage)
    }
}

/// Why two samples give no usage (metrics-server logs and skips such a container).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("unexpected decrease in the start time of a container")]
    StartWentBack,
    #[error("unexpected decrease in cumulative CPU usage")]
    CpuWentBack,
    #[error("two samples at the same time")]
    NoWindow,
}

/// metrics-server's `resourceUsage`: the CPU rate between two samples (truncated to whole
/// nanocores) and the latest working set.
fn usage_between(last: &Point, prev: &Point) -> Result<(Usage, Window), RateError> {
    if last.since < prev.since {
        return Err(RateError::StartWentBack);
    }
    if last.cpu_ns < prev.cpu_ns {
        return Err(RateError::CpuWentBack);
    }
    let window = last
        .timestamp
        .duration_since(prev.timestamp)
        .ok()
        .filter(|w| !w.is_zero())
        .ok_or(RateError::NoWindow)?;
    let used = u128::from(last.cpu_ns - prev.cpu_ns);
    let nanocores = used * 1_000_000_000 / window.as_nanos();
    Ok((
        Usage {
            cpu_nanocores: u64::try_from(nanocores).unwrap_or(u64::MAX),
            memory_bytes: last.memory_bytes,
        },
        Window {
            timestamp: last.timestamp,
            length: window,
        },
    ))
}

/// The earlier sample a new one is measured against (metrics-server's `podStorage.Store`, for
/// one container).
fn earlier_point(
    new: &Point,
    stored: Option<&ContainerPoints>,
    resolution: Duration,
) -> Option<Point> {
    if let Ok(ran) = new.timestamp.duration_since(new.since)
        && !ran.is_zero()
        && ran < resolution
        && ran >= FRESH_CONTAINER_MIN
    {
        return Some(Point {
            timestamp: new.since,
            cpu_ns: 0,
            ..*new
        });
    }
    let stored = stored?;
    // The counter started again after the stored sample: nothing to subtract from.
    if new.since >= stored.last.timestamp {
        return None;
    }
    if new.timestamp > stored.last.timestamp {
        Some(stored.last)
    } else {
        stored.prev.filter(|p| p.timestamp < new.timestamp)
    }
}

/// The collector's latest samples of every running container, by pod uid, shared with every
/// cluster's API. Not stored objects: kept in memory only, as metrics-server keeps them.
#[derive(Debug)]
pub struct MetricsStore {
    resolution: Duration,
    samples: RwLock<Samples>,
}

#[derive(Debug, Default)]
struct Samples {
    pods: HashMap<String, Vec<ContainerPoints>>,
    /// When the last two batches were taken.
    batches: (Option<SystemTime>, Option<SystemTime>),
}

impl MetricsStore {
    /// A store for samples taken every `resolution`.
    pub fn new(resolution: Duration) -> MetricsStore {
        MetricsStore {
            resolution,
            samples: RwLock::new(Samples::default()),
        }
    }

    /// How often the collector samples.
    pub fn resolution(&self) -> Duration {
        self.resolution
    }

    /// Replaces the samples with a new batch taken at `taken`: pod uid → its running
    /// containers' samples.
    pub fn store(&self, taken: SystemTime, batch: HashMap<String, Vec<ContainerUsage>>) {
        let mut samples = self.samples.write().unwrap_or_else(|p| p.into_inner());
        let mut pods = HashMap::with_capacity(batch.len());
        for (uid, containers) in batch {
            if containers.is_empty() {
                continue;
            }
            let stored = samples.pods.get(&uid);
            let points = containers
                .iter()
                .map(|c| {
                    let last = Point::from(c);
                    let before = stored.and_then(|s| s.iter().find(|p| p.name == c.name));
                    ContainerPoints {
                        name: c.name.clone(),
                        last,
                        prev: earlier_point(&last, before, self.resolution),
                    }
                })
                .collect();
            pods.insert(uid, points);
        }
        samples.pods = pods;
        samples.batches = (Some(taken), samples.batches.0);
    }

    /// The pod's usage, if every container it runs has been sampled twice.
    pub fn pod(&self, uid: &str) -> Option<PodMetrics> {
        let samples = self.samples.read().unwrap_or_else(|p| p.into_inner());
        let points = samples.pods.get(uid)?;
        let mut earliest: Option<Window> = None;
        let mut containers = Vec::with_capacity(points.len());
        for c in points {
            let prev = c.prev.as_ref()?;
            match usage_between(&c.last, prev) {
                Ok((usage, window)) => {
                    if earliest.is_none_or(|e| window.timestamp < e.timestamp) {
                        earliest = Some(window);
                    }
                    containers.push(ContainerMetrics {
                        name: c.name.clone(),
                        usage,
                    });
                }
                Err(e) => {
                    tracing::debug!(pod_uid = uid, container = %c.name, error = %e, "skipping a container's usage");
                }
            }
        }
        Some(PodMetrics {
            window: earliest?,
            containers,
        })
    }

    /// The window of the last two batches, once there are two.
    pub fn last_window(&self) -> Option<Window> {
        let samples = self.samples.read().unwrap_or_else(|p| p.into_inner());
        let (Some(last), Some(prev)) = samples.batches else {
            return None;
        };
        Some(Window {
            timestamp: last,
            length: last.duration_since(prev).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn sample(name: &str, since: u64, now: u64, cpu_ns: u64, memory: u64) -> ContainerUsage {
        ContainerUsage {
            name: name.into(),
            since: at(since),
            timestamp: at(now),
            cpu_ns,
            memory_working_set_bytes: memory,
        }
    }

    fn batch(pods: &[(&str, Vec<ContainerUsage>)]) -> HashMap<String, Vec<ContainerUsage>> {
        pods.iter()
            .map(|(uid, c)| (uid.to_string(), c.clone()))
            .collect()
    }

    #[test]
    fn the_rate_is_the_cpu_time_between_two_samples_over_their_distance() {
        let store = MetricsStore::new(10 * S);
        store.store(
            at(100),
            batch(&[("p", vec![sample("c", 0, 100, 5_000_000_000, 1)])]),
        );
        assert_eq!(store.pod("p"), None, "one sample is no rate");
        assert_eq!(store.last_window(), None);
        // 2.5 s of CPU in 10 s: a quarter of a core.
        store.store(
            at(110),
            batch(&[("p", vec![sample("c", 0, 110, 7_500_000_000, 64 << 20)])]),
        );
        let m = store.pod("p").unwrap();
        assert_eq!(
            m.containers,
            vec![ContainerMetrics {
                name: "c".into(),
                usage: Usage {
                    cpu_nanocores: 250_000_000,
                    memory_bytes: 64 << 20
                }
            }]
        );
        assert_eq!(
            m.window,
            Window {
                timestamp: at(110),
                length: 10 * S
            }
        );
        assert_eq!(
            store.last_window(),
            Some(Window {
                timestamp: at(110),
                length: 10 * S
            })
        );
        // Truncated to whole nanocores, as metrics-server's float-to-integer conversion does.
        let (u, _) = usage_between(
            &Point::from(&sample("c", 0, 3, 2, 0)),
            &Point::from(&sample("c", 0, 0, 0, 0)),
        )
        .unwrap();
        assert_eq!(u.cpu_nanocores, 0);
        let (u, _) = usage_between(
            &Point::from(&sample("c", 0, 3, 10, 0)),
            &Point::from(&sample("c", 0, 0, 0, 0)),
        )
        .unwrap();
        assert_eq!(u.cpu_nanocores, 3);
    }

    #[test]
    fn a_pod_needs_two_samples_of_every_container_and_takes_the_earliest_window() {
        let store = MetricsStore::new(10 * S);
        store.store(at(100), batch(&[("p", vec![sample("a", 0, 100, 0, 1)])]));
        store.store(
            at(110),
            batch(&[(
                "p",
                vec![sample("a", 0, 109, 1_000, 1), sample("b", 0, 110, 0, 1)],
            )]),
        );
        assert_eq!(store.pod("p"), None, "b has one sample");
        store.store(
            at(120),
            batch(&[(
                "p",
                vec![
                    sample("a", 0, 119, 1_000_000_000, 1),
                    sample("b", 0, 121, 0, 1),
                ],
            )]),
        );
        let m = store.pod("p").unwrap();
        assert_eq!(m.window.timestamp, at(119));
        assert_eq!(m.window.length, 10 * S);
        assert_eq!(m.containers[0].usage.cpu_nanocores, 99_999_900);
        assert_eq!(m.total().memory_bytes, 2);
        // A pod missing from a batch is gone.
        store.store(at(130), batch(&[]));
        assert_eq!(store.pod("p"), None);
    }

    #[test]
    fn a_counter_that_started_again_waits_for_a_new_pair() {
        let store = MetricsStore::new(10 * S);
        store.store(at(100), batch(&[("p", vec![sample("c", 0, 100, 900, 1)])]));
        // Started again at 105: its counter counts from there.
        store.store(at(110), batch(&[("p", vec![sample("c", 105, 110, 10, 1)])]));
        assert_eq!(store.pod("p"), None);
        store.store(at(120), batch(&[("p", vec![sample("c", 105, 120, 20, 1)])]));
        assert_eq!(store.pod("p").unwrap().containers[0].usage.cpu_nanocores, 1);
    }

    #[test]
    fn a_container_started_within_one_resolution_is_measured_from_its_start() {
        let store = MetricsStore::new(15 * S);
        // Started 12 s ago with 3 s of CPU: measured over those 12 s at once.
        store.store(
            at(112),
            batch(&[("p", vec![sample("c", 100, 112, 3_000_000_000, 1)])]),
        );
        let m = store.pod("p").unwrap();
        assert_eq!(m.containers[0].usage.cpu_nanocores, 250_000_000);
        assert_eq!(m.window.length, 12 * S);
        // Under 10 s is too short, and from one resolution on two samples are needed.
        let store = MetricsStore::new(15 * S);
        store.store(at(105), batch(&[("p", vec![sample("c", 100, 105, 1, 1)])]));
        store.store(at(130), batch(&[("q", vec![sample("c", 100, 130, 1, 1)])]));
        assert_eq!(store.pod("p"), None);
        assert_eq!(store.pod("q"), None);
    }

    #[test]
    fn a_sample_no_newer_than_the_stored_one_keeps_the_earlier_pair() {
        let store = MetricsStore::new(10 * S);
        store.store(at(100), batch(&[("p", vec![sample("c", 0, 100, 0, 1)])]));
        store.store(
            at(110),
            batch(&[("p", vec![sample("c", 0, 110, 1_000_000_000, 1)])]),
        );
        // The runtime handed back the same sample: the pair stays 100 → 110.
        store.store(
            at(120),
            batch(&[("p", vec![sample("c", 0, 110, 1_000_000_000, 1)])]),
        );
        let m = store.pod("p").unwrap();
        assert_eq!(m.window.length, 10 * S);
        assert_eq!(m.containers[0].usage.cpu_nanocores, 100_000_000);
    }

    #[test]
    fn counters_that_go_back_give_no_usage() {
        let p = |since, now, cpu| Point::from(&sample("c", since, now, cpu, 0));
        assert_eq!(
            usage_between(&p(0, 10, 5), &p(0, 0, 6)),
            Err(RateError::CpuWentBack)
        );
        assert_eq!(
            usage_between(&p(0, 10, 5), &p(1, 0, 1)),
            Err(RateError::StartWentBack)
        );
        assert_eq!(
            usage_between(&p(0, 10, 5), &p(0, 10, 1)),
            Err(RateError::NoWindow)
        );
    }
}
