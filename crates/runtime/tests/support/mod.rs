//! Backends for the runtime's tests: the simulated runtime, and a process runtime on its own
//! bridge, network-namespace prefix, cgroup parent and directories, torn down on drop.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use localfargate_runtime::restart::Backoff;
use localfargate_runtime::{
    ContainerState, ContainerStatus, ProcessRuntime, RuntimeConfig, SandboxId, SandboxRuntime,
    SandboxStatus, SimulatedRuntime,
};

/// The image the process tests run.
pub const BUSYBOX_IMAGE: &str = "localfargate.test/busybox:1";

/// Why the process runtime cannot be tested here, if it cannot.
pub fn process_skip_reason() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not root".into());
    }
    if !localfargate_runtime::test_images::busybox_available() {
        return Some("no /bin/busybox (apt-get install busybox-static)".into());
    }
    let dir = std::env::temp_dir();
    let config = RuntimeConfig::under(&dir);
    localfargate_runtime::process::unavailable_reason(&config)
}

pub struct ProcessBackend {
    pub rt: ProcessRuntime,
    pub config: RuntimeConfig,
    pub dir: tempfile::TempDir,
}

impl ProcessBackend {
    /// A process runtime with a fresh state, the busybox test image loaded, and a short crash
    /// back-off.
    pub async fn new() -> ProcessBackend {
        let dir = tempfile::tempdir().expect("tempdir");
        let tag = &uuid_like()[..6];
        let mut config = RuntimeConfig::under(dir.path());
        config.bridge = format!("lft{tag}");
        config.netns_prefix = format!("lft{tag}-");
        config.cgroup_parent = format!("lftest-{tag}");
        config.shim_command = vec![env!("CARGO_BIN_EXE_localfargate-shim").to_string()];
        config.restart_backoff = Backoff::starting_at(Duration::from_millis(300));
        let rt = ProcessRuntime::new(config.clone())
            .await
            .expect("process runtime");
        let layout = dir.path().join("busybox-layout");
        localfargate_runtime::test_images::busybox_layout(&layout, BUSYBOX_IMAGE, &["sh"])
            .expect("busybox image");
        rt.images().load(&layout).await.expect("loading busybox");
        ProcessBackend { rt, config, dir }
    }

    /// Another runtime over the same state, as a restarted localfargate builds it.
    pub async fn restarted(&self) -> ProcessRuntime {
        ProcessRuntime::new(self.config.clone())
            .await
            .expect("process runtime")
    }
}

impl Drop for ProcessBackend {
    /// Whatever a test left (it failed half-way): a runtime on the same state adopts and
    /// removes every sandbox, then the bridge, its nftables table and the cgroup parent go.
    fn drop(&mut self) {
        self.rt.abandon();
        let config = self.config.clone();
        let _ = std::thread::spawn(move || {
            let Ok(tokio) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            tokio.block_on(async {
                if let Ok(rt) = ProcessRuntime::new(config.clone()).await {
                    for s in rt.list().await.unwrap_or_default() {
                        let _ = rt.remove(&s.id).await;
                    }
                }
                let net = localfargate_runtime::net::PodNetwork::new(
                    localfargate_runtime::net::NetworkConfig {
                        bridge: config.bridge.clone(),
                        netns_prefix: config.netns_prefix.clone(),
                        egress: false,
                    },
                );
                let _ = net.teardown().await;
            });
        })
        .join();
        for root in [
            "cpu", "cpuacct", "memory", "pids", "cpuset", "blkio", "devices", "freezer", "systemd",
            "unified", "",
        ] {
            let p = std::path::Path::new("/sys/fs/cgroup")
                .join(root)
                .join(&self.config.cgroup_parent);
            let _ = std::fs::remove_dir(p);
        }
    }
}

fn uuid_like() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!("{:016x}", h.finish())
}

/// A busybox container running `script` with `sh -c`.
pub fn sh(name: &str, script: &str) -> localfargate_runtime::ContainerSpec {
    localfargate_runtime::ContainerSpec {
        name: name.into(),
        image: BUSYBOX_IMAGE.into(),
        pull_policy: localfargate_runtime::PullPolicy::Never,
        command: vec!["sh".into(), "-c".into(), script.into()],
        ..Default::default()
    }
}

/// A pod in `default` with its own subnet `10.250.<subnet>.0/24` (tests run at once, each
/// process backend on its own bridge; private addresses, local to this machine).
pub fn pod_in_subnet(
    uid: &str,
    subnet: u32,
    containers: Vec<localfargate_runtime::ContainerSpec>,
) -> localfargate_runtime::SandboxSpec {
    let mut s = localfargate_runtime::SandboxSpec::new(
        uid,
        "default",
        format!("pod-{uid}"),
        format!("10.250.{subnet}.20").parse().expect("address"),
        containers,
    );
    s.gateway = format!("10.250.{subnet}.1").parse().expect("address");
    s.prefix_len = 24;
    s
}

pub fn simulated() -> Arc<dyn SandboxRuntime> {
    Arc::new(SimulatedRuntime::new())
}

/// Reads the sandbox's status until `done` holds (at most `limit`), returning the last one.
pub async fn wait_for(
    rt: &dyn SandboxRuntime,
    id: &SandboxId,
    limit: Duration,
    done: impl Fn(&SandboxStatus) -> bool,
) -> SandboxStatus {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let s = rt.status(id).await.expect("status");
        if done(&s) || tokio::time::Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn container<'a>(s: &'a SandboxStatus, name: &str) -> &'a ContainerStatus {
    s.container(name).expect("container in status")
}

pub fn is_terminated(c: &ContainerStatus) -> bool {
    matches!(c.state, ContainerState::Terminated { .. })
}

pub async fn read_all(mut rx: localfargate_runtime::LogStream) -> String {
    let mut out = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .ok()
        .flatten()
    {
        out.extend_from_slice(&chunk);
    }
    String::from_utf8_lossy(&out).into_owned()
}
