//! Cgroups on the real host (root only): limits in the kernel's files, OOM kills at the
//! container's and at the pod's memory limit, usage, and removal with processes still running.
//! Everything lives below a parent cgroup unique to the test run, removed at the end also when an
//! assertion fails (the `Cleanup` guard).

use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use localfargate_runtime::cgroups::{CgroupLayout, Cgroups, ContainerLimits, PodLimits};

const MIB: u64 = 1 << 20;

fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".to_string());
    }
    if !Command::new("busybox")
        .arg("true")
        .status()
        .is_ok_and(|s| s.success())
    {
        return Some("busybox is not installed".to_string());
    }
    None
}

fn parent_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("lftest-{}-{:04x}", std::process::id(), nanos & 0xffff)
}

/// Every hierarchy root of a layout.
fn hierarchies(layout: &CgroupLayout) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = match layout {
        CgroupLayout::V1 {
            controllers,
            unified,
        } => controllers
            .values()
            .cloned()
            .chain(unified.iter().cloned())
            .collect(),
        CgroupLayout::V2 { root } => vec![root.clone()],
    };
    roots.sort();
    roots.dedup();
    roots
}

/// Kills the test's processes and removes the test's parent cgroup everywhere.
struct Cleanup<'a> {
    cg: &'a Cgroups,
    parent: String,
    children: Vec<Child>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Ok(pods) = self.cg.list_pods() {
            for pod in pods {
                if let Err(e) = self.cg.remove_pod(&pod) {
                    eprintln!("cleanup of pod cgroup {pod}: {e}");
                }
            }
        }
        for h in hierarchies(self.cg.layout()) {
            let dir = h.join(&self.parent);
            if dir.exists()
                && let Err(e) = fs::remove_dir(&dir)
            {
                eprintln!("cleanup of {}: {e}", dir.display());
            }
        }
    }
}

/// A shell that waits for a line on stdin, then runs `script`: it is moved into its cgroup
/// before it allocates anything.
fn gated_shell(script: &str) -> Child {
    Command::new("busybox")
        .args(["sh", "-c", &format!("read _; {script}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn release(child: &mut Child) {
    let stdin = child.stdin.as_mut().unwrap();
    stdin.write_all(b"go\n").unwrap();
    stdin.flush().unwrap();
}

/// Waits for the child to exit (at most `limit`).
fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < limit,
            "process {} still running after {limit:?}",
            child.id()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Doubles a string until the memory limit stops it.
const MEMORY_HOG: &str = "x=0123456789abcdef; while :; do x=$x$x; done";

/// Removes a run leaf in every hierarchy, as `runc delete` does.
fn remove_leaf(cg: &Cgroups, run_path: &str) {
    for h in hierarchies(cg.layout()) {
        let dir = h.join(run_path.trim_start_matches('/'));
        if dir.exists() {
            fs::remove_dir(&dir).unwrap();
        }
    }
}

#[test]
fn pod_cgroups_limit_count_oom_kills_and_clean_up() {
    if let Some(reason) = skip_reason() {
        println!("skipping the cgroup host test: {reason}");
        return;
    }
    let parent = parent_name();
    let cg = match Cgroups::detect(&parent) {
        Ok(cg) => cg,
        Err(e) => {
            println!("skipping the cgroup host test: {e}");
            return;
        }
    };
    println!("layout: {:?}", cg.layout());
    let mut guard = Cleanup {
        cg: &cg,
        parent: parent.clone(),
        children: Vec::new(),
    };

    let limits = PodLimits {
        cpu_millis: 250,
        memory_bytes: 64 * MIB,
        pids: Some(64),
    };
    cg.create_pod("p1", &limits).unwrap();
    cg.create_pod("p1", &limits).unwrap();
    cg.create_container(
        "p1",
        "small",
        &ContainerLimits {
            cpu_millis: Some(250),
            memory_bytes: Some(32 * MIB),
        },
    )
    .unwrap();
    cg.create_container("p1", "big", &ContainerLimits::default())
        .unwrap();
    cg.create_container("p1", "idle", &ContainerLimits::default())
        .unwrap();

    // The kernel took the values.
    let file = |ctl: &str, rel: &str, name: &str| -> String {
        let dir = match cg.layout() {
            CgroupLayout::V1 { controllers, .. } => controllers[ctl].join(&parent).join(rel),
            CgroupLayout::V2 { root } => root.join(&parent).join(rel),
        };
        fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("{}/{name}: {e}", dir.display()))
            .trim()
            .to_string()
    };
    match cg.layout() {
        CgroupLayout::V1 { .. } => {
            assert_eq!(file("cpu", "p1", "cpu.cfs_quota_us"), "25000");
            assert_eq!(file("cpu", "p1", "cpu.cfs_period_us"), "100000");
            assert_eq!(file("cpu", "p1", "cpu.shares"), "256");
            assert_eq!(file("memory", "p1", "memory.limit_in_bytes"), "67108864");
            assert_eq!(
                file("memory", "p1/small", "memory.limit_in_bytes"),
                "33554432"
            );
            assert_eq!(file("pids", "p1", "pids.max"), "64");
        }
        CgroupLayout::V2 { .. } => {
            assert_eq!(file("", "p1", "cpu.max"), "25000 100000");
            assert_eq!(file("", "p1", "memory.max"), "67108864");
            assert_eq!(file("", "p1/small", "memory.max"), "33554432");
            assert_eq!(file("", "p1", "pids.max"), "64");
        }
    }

    // 1. The container's own limit (32 MiB) is hit.
    assert_eq!(cg.oom_kills("p1", "small").unwrap(), 0);
    let run = cg.run_path("p1", "small", 1);
    let mut hog = gated_shell(MEMORY_HOG);
    cg.enter(&run, hog.id()).unwrap();
    release(&mut hog);
    let status = wait_exit(&mut hog, Duration::from_secs(60));
    assert_eq!(
        status.signal(),
        Some(9),
        "OOM-killed with SIGKILL: {status:?}"
    );
    assert_eq!(cg.oom_kills("p1", "small").unwrap(), 1);
    // runc deletes the run's leaf; the count stays.
    remove_leaf(&cg, &run);
    assert_eq!(cg.oom_kills("p1", "small").unwrap(), 1);

    // 2. The pod's limit (64 MiB) is hit by a container without its own limit.
    let run = cg.run_path("p1", "big", 1);
    let mut hog = gated_shell(MEMORY_HOG);
    cg.enter(&run, hog.id()).unwrap();
    release(&mut hog);
    let status = wait_exit(&mut hog, Duration::from_secs(60));
    assert_eq!(
        status.signal(),
        Some(9),
        "OOM-killed with SIGKILL: {status:?}"
    );
    assert_eq!(cg.oom_kills("p1", "big").unwrap(), 1);
    assert_eq!(cg.oom_kills("p1", "small").unwrap(), 1, "not small's kill");
    assert_eq!(cg.oom_kills("p1", "idle").unwrap(), 0);
    remove_leaf(&cg, &run);
    assert_eq!(cg.oom_kills("p1", "big").unwrap(), 1);

    // 3. Usage: the hogs burnt CPU; a process holding 8 MB shows in memory.
    let small = cg.usage("p1", Some("small")).unwrap();
    let pod = cg.usage("p1", None).unwrap();
    println!("usage small: {small:?}, pod: {pod:?}");
    assert!(small.cpu_usage_ns > 0);
    assert!(pod.cpu_usage_ns >= small.cpu_usage_ns);

    // The shell keeps `x` while its child sleeps (an `exec` would free it).
    let mut holder = gated_shell(
        // `; :` after the sleep: busybox sh may exec its last command, which would free `x`.
        "x=$(busybox head -c 8000000 /dev/zero | busybox tr '\\0' a); busybox sleep 600; :",
    );
    let holder_pid = holder.id();
    cg.enter(&cg.run_path("p1", "idle", 1), holder_pid).unwrap();
    // Its forks (the pipeline) are in the cgroup too: holder is moved before it reads.
    release(&mut holder);
    guard.children.push(holder);
    let start = Instant::now();
    let idle = loop {
        let u = cg.usage("p1", Some("idle")).unwrap();
        // Generous: on a loaded 2-core machine the pipeline can take a while to start.
        if u.memory_usage_bytes > 8_000_000 || start.elapsed() > Duration::from_secs(90) {
            break u;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    println!("usage idle (holding 8 MB): {idle:?}");
    assert!(idle.memory_usage_bytes > 8_000_000, "{idle:?}");
    assert!(idle.memory_working_set_bytes <= idle.memory_usage_bytes);
    assert!(idle.memory_working_set_bytes > 0);

    // 4. Removal while a process still runs: it is killed and every directory goes.
    assert_eq!(cg.list_pods().unwrap(), ["p1"]);
    let t = Instant::now();
    cg.remove_pod("p1").unwrap();
    println!("remove_pod with a running process: {:?}", t.elapsed());
    let holder = guard.children.last_mut().unwrap();
    let status = wait_exit(holder, Duration::from_secs(10));
    assert_eq!(status.signal(), Some(9), "{status:?}");
    for h in hierarchies(cg.layout()) {
        assert!(!h.join(&parent).join("p1").exists(), "{}", h.display());
    }
    assert!(cg.list_pods().unwrap().is_empty());
    cg.remove_pod("p1").unwrap();
    drop(guard);
    for h in hierarchies(cg.layout()) {
        assert!(!h.join(&parent).exists(), "{}", h.display());
    }
}
