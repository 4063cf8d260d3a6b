//! The collector: metrics-server's scrape loop, over the sandbox runtime instead of kubelets.
//! Every resolution it samples each running container of every sandbox the runtime holds and
//! hands the batch to the [`MetricsStore`].
//!
//! One collector serves every cluster: the runtime (like a fleet of kubelets) is shared by all
//! of them, and samples are kept by pod uid, which is unique across clusters; each cluster's API
//! finds its pods' samples by their uids. So a sandbox is read once per resolution however many
//! clusters there are, and no cluster's pods need to be listed to sample them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use localfargate_runtime::{ContainerUsage, RuntimeError, SandboxRuntime};
use tokio::time::MissedTickBehavior;

use localfargate_registry::metrics::MetricsStore;

/// Samples every resolution until the task is dropped.
pub async fn run(runtime: Arc<dyn SandboxRuntime>, store: Arc<MetricsStore>) {
    let mut ticks = tokio::time::interval(store.resolution());
    // A slow round (a busy host) delays the next rather than bunching samples together.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match sample(&*runtime).await {
            Ok(batch) => store.store(SystemTime::now(), batch),
            Err(e) => tracing::warn!(error = %e, "cannot list sandboxes to sample their usage"),
        }
    }
}

/// One batch: pod uid → its running containers' usage. A sandbox that cannot be read (removed
/// meanwhile, say) is left out, and so has no metrics until it is read twice again, as a pod
/// whose kubelet failed a scrape in metrics-server.
pub async fn sample(
    runtime: &dyn SandboxRuntime,
) -> Result<HashMap<String, Vec<ContainerUsage>>, RuntimeError> {
    let sandboxes = runtime.list().await?;
    let mut batch = HashMap::with_capacity(sandboxes.len());
    for s in sandboxes {
        match runtime.usage(&s.id).await {
            Ok(containers) if containers.is_empty() => {}
            Ok(containers) => {
                batch.insert(s.pod_uid, containers);
            }
            Err(e) => {
                tracing::debug!(sandbox = %s.id, error = %e, "cannot read a sandbox's usage");
            }
        }
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use localfargate_runtime::{ContainerSpec, SandboxSpec, SimulatedRuntime};

    use super::*;

    fn spec(uid: &str, cpu: &str) -> SandboxSpec {
        let mut s = SandboxSpec::new(
            uid,
            "default",
            format!("pod-{uid}"),
            "10.0.0.9".parse().unwrap(),
            vec![ContainerSpec {
                name: "app".into(),
                image: "busybox".into(),
                ..Default::default()
            }],
        );
        s.annotations
            .insert("sim.localfargate.io/cpu-usage".into(), cpu.into());
        s
    }

    /// Two rounds over the simulated runtime, on tokio's paused clock: exact rates.
    #[tokio::test(start_paused = true)]
    async fn two_rounds_give_each_running_pod_its_rate() {
        let runtime = SimulatedRuntime::new();
        for (uid, cpu) in [("a", "250m"), ("b", "1")] {
            let id = runtime.create_sandbox(spec(uid, cpu)).await.unwrap();
            runtime.start_container(&id, "app").await.unwrap();
        }
        let idle = runtime
            .create_sandbox(spec("never-started", "2"))
            .await
            .unwrap();
        let store = MetricsStore::new(Duration::from_secs(10));
        // A sample taken the instant a container started cannot tell a new counter from the
        // one before (metrics-server needs the start strictly before the earlier sample).
        tokio::time::advance(Duration::from_secs(1)).await;
        let first = sample(&runtime).await.unwrap();
        assert!(!first.contains_key("never-started"), "{first:?}");
        store.store(SystemTime::now(), first);
        tokio::time::advance(Duration::from_secs(10)).await;
        store.store(SystemTime::now(), sample(&runtime).await.unwrap());
        let a = store.pod("a").unwrap();
        assert_eq!(a.containers[0].usage.cpu_nanocores, 250_000_000);
        assert_eq!(a.window.length, Duration::from_secs(10));
        assert_eq!(
            store.pod("b").unwrap().containers[0].usage.cpu_nanocores,
            1_000_000_000
        );
        assert_eq!(store.pod("never-started"), None);
        runtime.remove(&idle).await.unwrap();
    }
}
