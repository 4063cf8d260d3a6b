//! The process runtime measured beside its floor, in one run (root; runc, busybox-static,
//! docker-registry and skopeo + umoci installed):
//!
//! 1. pod start with the image present, create → Ready, sequential, beside `runc run -d` of a
//!    flattened copy of the same root filesystem;
//! 2. 100 pods at once from 32 tasks: time until all are Ready, and host memory per sandbox
//!    outside the app (the shim's proportional set size);
//! 3. pull and unpack of a ~50 MB image from a local registry, beside `skopeo copy` +
//!    `umoci unpack` of it;
//! 4. `exec true` round trips, and `logs -f` throughput from a container writing fast.
//!
//! `cargo run --release -p localfargate-runtime --example sandbox_bench [-- SEQUENTIAL_PODS]`

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use localfargate_runtime::image::{ImageConfig, LayoutFile, RegistryConfig, write_oci_layout};
use localfargate_runtime::restart::Backoff;
use localfargate_runtime::{
    ContainerSpec, ExecRequest, LogOptions, ProcessRuntime, PullPolicy, RuntimeConfig,
    SandboxRuntime, SandboxSpec,
};
use tokio::sync::mpsc;

const IMAGE: &str = "localfargate.test/busybox:1";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{name}: n={} p50={:.1} ms p90={:.1} ms p99={:.1} ms max={:.1} ms",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.9),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN)
    );
}

fn pod(i: usize, script: &str) -> SandboxSpec {
    let mut spec = SandboxSpec::new(
        format!("bench-{i}-{}", std::process::id()),
        "bench",
        format!("bench-{i}"),
        format!("10.251.{}.{}", 1 + i / 250, 2 + i % 250)
            .parse()
            .unwrap(),
        vec![ContainerSpec {
            name: "app".into(),
            image: IMAGE.into(),
            pull_policy: PullPolicy::Never,
            command: vec!["sh".into(), "-c".into(), script.into()],
            ..Default::default()
        }],
    );
    spec.gateway = format!("10.251.{}.1", 1 + i / 250).parse().unwrap();
    spec.prefix_len = 24;
    spec
}

async fn until_ready(rt: &dyn SandboxRuntime, id: &localfargate_runtime::SandboxId) {
    loop {
        let s = rt.status(id).await.expect("status");
        if s.containers.iter().all(|c| c.ready) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn pss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn shim_pids(state: &Path) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-f", &state.display().to_string()])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sequential: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = RuntimeConfig::under(dir.path());
    config.bridge = "lfbench0".into();
    config.netns_prefix = "lfb-".into();
    config.cgroup_parent = "lfbench".into();
    config.restart_backoff = Backoff::KUBELET;
    let shim = std::env::current_exe()
        .expect("exe")
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("localfargate-shim"))
        .expect("target dir");
    assert!(
        shim.exists(),
        "build the shim first: cargo build --release -p localfargate-runtime --bin localfargate-shim"
    );
    config.shim_command = vec![shim.display().to_string()];
    let rt = ProcessRuntime::new(config.clone()).await.expect("runtime");
    let layout = dir.path().join("layout");
    localfargate_runtime::test_images::busybox_layout(&layout, IMAGE, &["sh"]).expect("image");
    let image = rt.images().load(&layout).await.expect("load").remove(0);
    let rt: Arc<dyn SandboxRuntime> = Arc::new(rt.clone());

    // 1. Sequential pod starts, and the floor: runc run -d of the same root filesystem.
    let mut starts = Vec::new();
    for i in 0..sequential {
        let t = Instant::now();
        let id = rt
            .create_sandbox(pod(i, "exec sleep 3600"))
            .await
            .expect("create");
        rt.start_container(&id, "app").await.expect("start");
        until_ready(&*rt, &id).await;
        starts.push(t.elapsed().as_secs_f64() * 1000.0);
        rt.remove(&id).await.expect("remove");
    }
    summary("pod create → Ready (sequential)", starts);
    let bundle = dir.path().join("floor");
    let images =
        localfargate_runtime::image::ImageStore::open(&config.image_dir, RegistryConfig::default())
            .expect("store");
    images
        .flatten(&image, &bundle.join("rootfs"))
        .expect("flatten");
    let spec = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(&bundle)
        .status()
        .expect("runc spec");
    assert!(spec.success());
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).expect("config")).expect("json");
    cfg["process"]["terminal"] = false.into();
    cfg["process"]["args"] = serde_json::json!(["sleep", "3600"]);
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).expect("json")).expect("write");
    let root = dir.path().join("runc-floor");
    let mut floor = Vec::new();
    for i in 0..sequential {
        let id = format!("floor{i}");
        let t = Instant::now();
        let ok = Command::new("runc")
            .arg("--root")
            .arg(&root)
            .args(["run", "-d", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("runc run");
        floor.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(ok.success());
        let _ = Command::new("runc")
            .arg("--root")
            .arg(&root)
            .args(["delete", "-f", &id])
            .status();
    }
    summary(
        "floor: runc run -d (same rootfs, no network/cgroup setup)",
        floor,
    );

    // 2. 100 pods at once from 32 tasks.
    let t = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (rt, next) = (rt.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= 100 {
                    return ids;
                }
                let id = rt
                    .create_sandbox(pod(1000 + i, "exec sleep 3600"))
                    .await
                    .expect("create");
                rt.start_container(&id, "app").await.expect("start");
                ids.push(id);
            }
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await.expect("task"));
    }
    for id in &ids {
        until_ready(&*rt, id).await;
    }
    println!(
        "100 pods at once (32 tasks): all Ready in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let pids = shim_pids(dir.path());
    let pss: u64 = pids.iter().map(|p| pss_kib(p)).sum();
    println!(
        "host memory per sandbox outside the app: {:.0} KiB (shim PSS, {} shims)",
        pss as f64 / pids.len().max(1) as f64,
        pids.len()
    );

    // 4. exec round trips and log throughput.
    let mut execs = Vec::new();
    for _ in 0..30 {
        let (out, mut out_rx) = mpsc::channel(16);
        let (err, mut err_rx) = mpsc::channel(16);
        tokio::spawn(async move { while out_rx.recv().await.is_some() {} });
        tokio::spawn(async move { while err_rx.recv().await.is_some() {} });
        let t = Instant::now();
        let status = rt
            .exec(
                &ids[0],
                "app",
                ExecRequest {
                    command: vec!["true".into()],
                    tty: false,
                    stdin: None,
                    stdout: out,
                    stderr: err,
                    resize: None,
                },
            )
            .await
            .expect("exec");
        assert!(status.success());
        execs.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    summary("exec true (runtime call)", execs);
    for id in &ids {
        rt.remove(id).await.expect("remove");
    }
    let lines = 500_000;
    let mut flood = pod(
        2000,
        &format!(
            "yes 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 | head -n {lines}"
        ),
    );
    flood.restart_policy = localfargate_runtime::RestartPolicy::Never;
    let id = rt.create_sandbox(flood).await.expect("create");
    rt.start_container(&id, "app").await.expect("start");
    let t = Instant::now();
    // Follow from the first byte to the end of the run.
    let mut stream = loop {
        match rt
            .logs(
                &id,
                "app",
                LogOptions {
                    follow: true,
                    ..Default::default()
                },
            )
            .await
        {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    };
    let mut bytes = 0usize;
    let mut got_lines = 0usize;
    // Until the stream ends with the container (lines may be lost to rotation, 10 MiB × 5,
    // when the follower falls behind, as with the kubelet).
    while let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_secs(120), stream.recv()).await
    {
        bytes += chunk.len();
        got_lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "logs -f: {got_lines} of {lines} lines, {:.1} MB in {secs:.2} s = {:.1} MB/s (container writing as fast as it can)",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs
    );
    rt.remove(&id).await.expect("remove");

    // 3. Pull of a ~50 MB image, beside skopeo copy + umoci unpack.
    pull_bench(dir.path()).await;
    let _ = Command::new("ip")
        .args(["link", "del", "lfbench0"])
        .status();
    let _ = Command::new("nft")
        .args(["delete", "table", "inet", "localfargate-lfbench0"])
        .status();
}

async fn pull_bench(dir: &Path) {
    let port = 5099;
    let reg = dir.join("registry");
    std::fs::create_dir_all(&reg).expect("dir");
    std::fs::write(
        reg.join("config.yml"),
        format!(
            "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
            reg.join("data").display()
        ),
    )
    .expect("config");
    let mut registry = Command::new("docker-registry")
        .arg("serve")
        .arg(reg.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    // 50 MB of incompressible data in five files (/dev/urandom), plus busybox.
    let mut files = vec![LayoutFile::Dir {
        path: "data".into(),
        mode: 0o755,
    }];
    for i in 0..5 {
        let mut data = vec![0u8; 10 * 1024 * 1024];
        use std::io::Read;
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut data))
            .expect("urandom");
        files.push(LayoutFile::File {
            path: format!("data/blob{i}"),
            mode: 0o644,
            data,
        });
    }
    let layout = dir.join("big-layout");
    write_oci_layout(
        &layout,
        "big:1",
        &files,
        ImageConfig {
            entrypoint: vec![],
            cmd: vec!["sh".into()],
            env: vec![],
            working_dir: None,
            user: None,
        },
    )
    .expect("layout");
    let pushed = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:big:1", layout.display()))
        .arg(format!("docker://127.0.0.1:{port}/big:1"))
        .stdout(Stdio::null())
        .status()
        .expect("skopeo");
    assert!(pushed.success());
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for round in 0..3 {
        let store_dir = dir.join(format!("pull-store-{round}"));
        let store =
            localfargate_runtime::image::ImageStore::open(&store_dir, RegistryConfig::default())
                .expect("store");
        let t = Instant::now();
        store
            .ensure(&format!("127.0.0.1:{port}/big:1"), PullPolicy::Always, &[])
            .await
            .expect("pull");
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
        let oci = dir.join(format!("skopeo-{round}"));
        let t = Instant::now();
        let copied = Command::new("skopeo")
            .args(["copy", "--src-tls-verify=false"])
            .arg(format!("docker://127.0.0.1:{port}/big:1"))
            .arg(format!("oci:{}:big", oci.display()))
            .stdout(Stdio::null())
            .status()
            .expect("skopeo");
        let unpacked = Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:big", oci.display()))
            .arg(dir.join(format!("umoci-{round}")))
            .stdout(Stdio::null())
            .status()
            .expect("umoci");
        theirs.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(copied.success() && unpacked.success());
    }
    summary("pull + unpack of a 50 MB image (localfargate)", ours);
    summary("skopeo copy + umoci unpack of the same image", theirs);
    let _ = registry.kill();
    let _ = registry.wait();
}
