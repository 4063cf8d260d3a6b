//! The process runtime's own behaviour beyond the shared contract: Fargate sizing in cgroups,
//! the pod's files and volumes, exec with a terminal (and its clean-up when the client leaves),
//! termination messages, adoption by a restarted runtime, seccomp profiles, the pause process of
//! a shared PID namespace and ephemeral-storage measurement. Root only (skipped with the reason
//! otherwise).

mod support;

use std::time::Duration;

use localfargate_runtime::{
    ContainerSpec, ContainerState, ExecRequest, ProcessRuntime, RestartPolicy, SandboxRuntime,
    SandboxSpec, SeccompProfile, TerminalSize, TerminationMessagePolicy, Volume, VolumeFile,
    VolumeMount, VolumeSource,
};
use support::*;
use tokio::sync::mpsc;

macro_rules! skip_unless_able {
    () => {
        if let Some(why) = process_skip_reason() {
            eprintln!("skipped: the process runtime cannot run here: {why}");
            return;
        }
    };
}

fn spec(uid: &str, subnet: u32, containers: Vec<ContainerSpec>) -> SandboxSpec {
    pod_in_subnet(uid, subnet, containers)
}

async fn run_exec(
    rt: &dyn SandboxRuntime,
    id: &localfargate_runtime::SandboxId,
    command: &[&str],
) -> (i32, String) {
    run_exec_in(rt, id, "c", command).await
}

async fn run_exec_in(
    rt: &dyn SandboxRuntime,
    id: &localfargate_runtime::SandboxId,
    container: &str,
    command: &[&str],
) -> (i32, String) {
    let (out, mut out_rx) = mpsc::channel(64);
    let (err, mut err_rx) = mpsc::channel(64);
    let collect = tokio::spawn(async move {
        let mut text = Vec::new();
        while let Some(c) = out_rx.recv().await {
            text.extend(c);
        }
        while let Some(c) = err_rx.recv().await {
            text.extend(c);
        }
        String::from_utf8_lossy(&text).into_owned()
    });
    let status = rt
        .exec(
            id,
            container,
            ExecRequest {
                command: command.iter().map(|s| s.to_string()).collect(),
                tty: false,
                stdin: None,
                stdout: out,
                stderr: err,
                resize: None,
            },
        )
        .await
        .expect("exec");
    (status.code, collect.await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_gets_its_size_network_files_and_volumes() {
    skip_unless_able!();
    let b = ProcessBackend::new().await;
    let rt: &dyn SandboxRuntime = &b.rt;
    let mut c = sh("c", "exec sleep 3600");
    c.env = vec![("FROM_SECRET".into(), "s3cr3t".into())];
    c.mounts = vec![
        VolumeMount {
            name: "cfg".into(),
            mount_path: "/etc/app".into(),
            read_only: true,
            sub_path: None,
        },
        VolumeMount {
            name: "scratch".into(),
            mount_path: "/scratch".into(),
            read_only: false,
            sub_path: None,
        },
    ];
    let mut s = spec("size1", 240, vec![c]);
    s.vcpu = 0.5;
    s.memory_mib = 1024;
    s.host_aliases = vec![("10.9.9.9".into(), vec!["db.local".into()])];
    s.dns.nameservers = vec!["10.100.0.10".into()];
    s.dns.searches = vec!["default.svc.cluster.local".into()];
    s.volumes = vec![
        Volume {
            name: "cfg".into(),
            source: VolumeSource::Files {
                files: vec![VolumeFile {
                    path: "app.conf".into(),
                    mode: None,
                    content: b"level=debug\n".to_vec(),
                }],
                default_mode: 0o644,
                memory: false,
            },
        },
        Volume {
            name: "scratch".into(),
            source: VolumeSource::EmptyDir {
                memory: true,
                size_limit: Some(8 * 1024 * 1024),
            },
        },
    ];
    let id = rt.create_sandbox(s).await.unwrap();
    rt.start_container(&id, "c").await.unwrap();
    let st = wait_for(rt, &id, Duration::from_secs(30), |s| {
        container(s, "c").ready
    })
    .await;
    assert!(container(&st, "c").state.is_running(), "{st:?}");

    // Fargate's size in the pod cgroup (cgroup v1 here; v2 hosts have cpu.max/memory.max).
    let v1 = std::path::Path::new("/sys/fs/cgroup/cpu").join(&b.config.cgroup_parent);
    if v1.exists() {
        let read = |ctl: &str, file: &str| {
            std::fs::read_to_string(
                std::path::Path::new("/sys/fs/cgroup")
                    .join(ctl)
                    .join(&b.config.cgroup_parent)
                    .join(id.as_str())
                    .join(file),
            )
            .unwrap()
            .trim()
            .to_string()
        };
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu", "cpu.cfs_period_us"), "100000");
        assert_eq!(
            read("memory", "memory.limit_in_bytes"),
            (1024u64 << 20).to_string()
        );
        assert_eq!(read("pids", "pids.max"), "65535");
    }
    let (code, out) = run_exec(rt, &id, &["hostname"]).await;
    assert_eq!((code, out.trim()), (0, "pod-size1"));
    let (_, out) = run_exec(rt, &id, &["ip", "-4", "-o", "addr", "show", "eth0"]).await;
    assert!(out.contains("10.250.240.20/24"), "{out}");
    let (_, out) = run_exec(rt, &id, &["ip", "route"]).await;
    assert!(out.contains("default via 10.250.240.1"), "{out}");
    let (code, _) = run_exec(rt, &id, &["ping", "-c1", "-W1", "169.254.169.254"]).await;
    assert_ne!(code, 0, "the instance metadata address must be unreachable");
    let (code, _) = run_exec(rt, &id, &["ping", "-c1", "-W2", "10.250.240.1"]).await;
    assert_eq!(code, 0, "the gateway answers");
    let (_, out) = run_exec(
        rt,
        &id,
        &["cat", "/etc/app/app.conf", "/etc/hosts", "/etc/resolv.conf"],
    )
    .await;
    assert!(out.contains("level=debug"), "{out}");
    assert!(out.contains("10.250.240.20\tpod-size1"), "{out}");
    assert!(out.contains("10.9.9.9\tdb.local"), "{out}");
    assert!(out.contains("nameserver 10.100.0.10"), "{out}");
    let (code, _) = run_exec(rt, &id, &["touch", "/etc/app/x"]).await;
    assert_ne!(code, 0, "read-only volume");
    let (_, out) = run_exec(
        rt,
        &id,
        &["sh", "-c", "echo $FROM_SECRET; df -k /scratch | tail -1"],
    )
    .await;
    assert!(out.starts_with("s3cr3t\n"), "{out}");
    assert!(out.contains("tmpfs"), "{out}");
    // Fargate's limits on the container's process (an exec'd one may get runc's own open-files
    // limit: a race in Debian's runc 1.1.5, see docs/runtime.md).
    let (_, out) = run_exec(
        rt,
        &id,
        &["grep", "-E", "open files|processes", "/proc/1/limits"],
    )
    .await;
    // "Max open files  SOFT HARD files", "Max processes  SOFT HARD processes".
    let soft: Vec<&str> = out
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(f.len().checked_sub(3)?).copied()
        })
        .collect();
    assert_eq!(soft, ["1024", "1024"], "{out}");
    let (_, out) = run_exec(rt, &id, &["id", "-u"]).await;
    assert_eq!(out, "0\n");

    // A terminal: the process sees a tty, and a resize reaches it.
    let (out, mut out_rx) = mpsc::channel(64);
    let (err, _err_rx) = mpsc::channel(64);
    let (in_tx, in_rx) = mpsc::channel(8);
    let (resize_tx, resize_rx) = mpsc::channel(8);
    resize_tx
        .send(TerminalSize {
            width: 91,
            height: 33,
        })
        .await
        .unwrap();
    let session = rt.exec(
        &id,
        "c",
        ExecRequest {
            command: vec!["sh".into()],
            tty: true,
            stdin: Some(in_rx),
            stdout: out,
            stderr: err,
            resize: Some(resize_rx),
        },
    );
    let driver = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        in_tx
            .send(b"tty; stty size; exit 5\n".to_vec())
            .await
            .unwrap();
        let mut text = Vec::new();
        while let Ok(Some(c)) = tokio::time::timeout(Duration::from_secs(10), out_rx.recv()).await {
            text.extend(c);
        }
        String::from_utf8_lossy(&text).into_owned()
    };
    let (status, text) = tokio::join!(session, driver);
    assert_eq!(status.unwrap().code, 5);
    assert!(text.contains("/dev/pts/"), "{text:?}");
    assert!(text.contains("33 91"), "{text:?}");
    rt.remove(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn termination_messages_and_adoption_after_a_restart() {
    skip_unless_able!();
    let b = ProcessBackend::new().await;
    let mut failing = sh(
        "c",
        "echo line one; sleep 0.2; echo the last words >&2; exit 2",
    );
    failing.termination_message_policy = TerminationMessagePolicy::FallbackToLogsOnError;
    let mut s = spec("term1", 241, vec![failing]);
    s.restart_policy = RestartPolicy::Never;
    let id = b.rt.create_sandbox(s).await.unwrap();
    b.rt.start_container(&id, "c").await.unwrap();
    let st = wait_for(&b.rt, &id, Duration::from_secs(30), |s| {
        is_terminated(container(s, "c"))
    })
    .await;
    let ContainerState::Terminated {
        exit_code, message, ..
    } = &container(&st, "c").state
    else {
        panic!("{st:?}");
    };
    assert_eq!(*exit_code, 2);
    assert_eq!(message.as_deref(), Some("line one\nthe last words\n"));
    b.rt.remove(&id).await.unwrap();

    // A running pod survives its runtime: a new runtime on the same state adopts it.
    let id =
        b.rt.create_sandbox(spec(
            "adopt1",
            242,
            vec![sh(
                "c",
                "i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done",
            )],
        ))
        .await
        .unwrap();
    b.rt.start_container(&id, "c").await.unwrap();
    let st = wait_for(&b.rt, &id, Duration::from_secs(30), |s| {
        container(s, "c").ready
    })
    .await;
    let before = container(&st, "c").container_id.clone();
    b.rt.abandon();
    let again = b.restarted().await;
    let st = wait_for(&again, &id, Duration::from_secs(10), |s| {
        container(s, "c").ready
    })
    .await;
    let c = container(&st, "c");
    assert!(c.state.is_running(), "{c:?}");
    assert_eq!(c.container_id, before);
    assert_eq!(c.restart_count, 0);
    let (code, out) = run_exec(&again, &id, &["echo", "adopted"]).await;
    assert_eq!((code, out.as_str()), (0, "adopted\n"));
    again.remove(&id).await.unwrap();
    assert!(again.list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_gate_readiness_and_restart_on_liveness_failure() {
    skip_unless_able!();
    let b = ProcessBackend::new().await;
    let rt: &dyn SandboxRuntime = &b.rt;
    let probe = |command: &[&str]| {
        let mut p = localfargate_runtime::Probe::new(localfargate_runtime::Action::Exec {
            command: command.iter().map(|s| s.to_string()).collect(),
        });
        p.period = Duration::from_millis(300);
        p.failure_threshold = 2;
        p
    };
    let mut c = sh("c", "exec sleep 3600");
    c.readiness = Some(probe(&["test", "-f", "/tmp/ready"]));
    c.liveness = Some(probe(&["test", "!", "-f", "/tmp/dead"]));
    let mut s = spec("probe1", 243, vec![c]);
    s.termination_grace = Duration::from_secs(1);
    let id = rt.create_sandbox(s).await.unwrap();
    rt.start_container(&id, "c").await.unwrap();
    let st = wait_for(rt, &id, Duration::from_secs(30), |s| {
        s.events.iter().any(|e| e.reason == "Unhealthy")
    })
    .await;
    let c = container(&st, "c");
    assert!(c.state.is_running() && !c.ready, "{c:?}");
    let unhealthy = st.events.iter().find(|e| e.reason == "Unhealthy").unwrap();
    assert!(
        unhealthy.message.starts_with("Readiness probe failed: "),
        "{unhealthy:?}"
    );
    assert_eq!(unhealthy.container.as_deref(), Some("c"));
    run_exec(rt, &id, &["touch", "/tmp/ready"]).await;
    wait_for(rt, &id, Duration::from_secs(30), |s| {
        container(s, "c").ready
    })
    .await;
    run_exec(rt, &id, &["touch", "/tmp/dead"]).await;
    let st = wait_for(rt, &id, Duration::from_secs(60), |s| {
        container(s, "c").restart_count >= 1
    })
    .await;
    assert!(container(&st, "c").restart_count >= 1, "{st:?}");
    assert!(
        st.events.iter().any(|e| e.reason == "Killing"
            && e.message == "Container c failed liveness probe, will be restarted"),
        "{:?}",
        st.events
    );
    rt.remove(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_the_log_of_a_fast_writer_ends_with_the_container() {
    skip_unless_able!();
    let b = ProcessBackend::new().await;
    let rt: &dyn SandboxRuntime = &b.rt;
    let mut s = spec(
        "flood1",
        244,
        vec![sh(
            "c",
            "yes 0123456789012345678901234567890123456789012345678901234567890123456789 | head -n 100000; echo the end",
        )],
    );
    s.restart_policy = RestartPolicy::Never;
    let id = rt.create_sandbox(s).await.unwrap();
    rt.start_container(&id, "c").await.unwrap();
    let stream = loop {
        match rt
            .logs(
                &id,
                "c",
                localfargate_runtime::LogOptions {
                    follow: true,
                    ..Default::default()
                },
            )
            .await
        {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    };
    let mut stream = stream;
    let text = tokio::time::timeout(Duration::from_secs(120), async move {
        let mut out = Vec::new();
        while let Some(chunk) = stream.recv().await {
            out.extend(chunk);
        }
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .expect("the follow ends once the container has exited");
    assert!(
        text.ends_with("the end\n"),
        "{}",
        &text[text.len().saturating_sub(200)..]
    );
    assert_eq!(text.lines().count(), 100_001);
    rt.remove(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_command_that_times_out_is_killed() {
    skip_unless_able!();
    let b = ProcessBackend::new().await;
    let rt: &dyn SandboxRuntime = &b.rt;
    let mut c = sh("c", "exec sleep 3600");
    let mut p = localfargate_runtime::Probe::new(localfargate_runtime::Action::Exec {
        command: vec!["sleep".into(), "777".into()],
    });
    p.timeout = Duration::from_millis(300);
    p.period = Duration::from_secs(30);
    c.readiness = Some(p);
    let id = rt
        .create_sandbox(spec("probe2", 245, vec![c]))
        .await
        .unwrap();
    rt.start_container(&id, "c").await.unwrap();
    let st = wait_for(rt, &id, Duration::from_secs(30), |s| {
        s.events.iter().any(|e| e.reason == "Unhealthy")
    })
    .await;
    let e = st
        .events
        .iter()
        .find(|e| e.reason == "Unhealthy")
        .expect("event");
    assert!(e.message.contains("timed out"), "{e:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, ps) = run_exec(rt, &id, &["ps"]).await;
    assert!(!ps.contains("sleep 777"), "{ps}");
    rt.remove(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_as_non_root_with_a_root_image_is_a_config_error() {
    skip_unless_able!();
    let b = ProcessBackend::new().await;
    let rt: &dyn SandboxRuntime = &b.rt;
    let mut c = sh("c", "exec sleep 3600");
    c.security.run_as_non_root = Some(true);
    let id = rt
        .create_sandbox(spec("nonroot1", 246, vec![c]))
        .await
        .unwrap();
    rt.start_container(&id, "c").await.unwrap();
    let st = wait_for(rt, &id, Duration::from_secs(30), |s| {
        container(s, "c").state.reason() == Some("CreateContainerConfigError")
    })
    .await;
    let ContainerState::Waiting { reason, message } = &container(&st, "c").state else {
        panic!("{st:?}");
    };
    assert_eq!(reason, "CreateContainerConfigError");
    assert_eq!(
        message.as_deref(),
        Some(
            "container has runAsNonRoot and image will run as root (pod: \"pod-nonroot1_default(nonroot1)\", container: c)"
        )
    );
    rt.remove(&id).await.unwrap();
}

/// Whether this kernel filters syscalls (the runtime applies no profile otherwise).
fn host_has_seccomp() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| s.contains("\nSeccomp:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seccomp_runtime_default_filters_syscalls_and_localhost_profiles_are_missing() {
    skip_unless_able!();
    if !host_has_seccomp() {
        eprintln!("skipped: this kernel has no seccomp");
        return;
    }
    let b = ProcessBackend::new().await;
    let rt: &dyn SandboxRuntime = &b.rt;
    // The pod asks for RuntimeDefault; one container overrides it with Unconfined.
    let mut unconfined = sh("u", "exec sleep 3600");
    unconfined.security.seccomp = Some(SeccompProfile::Unconfined);
    let mut s = spec(
        "seccomp1",
        247,
        vec![sh("c", "exec sleep 3600"), unconfined],
    );
    s.security.seccomp = Some(SeccompProfile::RuntimeDefault);
    let id = rt.create_sandbox(s).await.unwrap();
    for c in ["c", "u"] {
        rt.start_container(&id, c).await.unwrap();
    }
    wait_for(rt, &id, Duration::from_secs(30), |s| {
        container(s, "c").ready && container(s, "u").ready
    })
    .await;
    let (_, status) = run_exec_in(rt, &id, "c", &["grep", "^Seccomp:", "/proc/self/status"]).await;
    assert_eq!(status, "Seccomp:\t2\n", "filtered");
    let (_, status) = run_exec_in(rt, &id, "c", &["grep", "^Seccomp:", "/proc/1/status"]).await;
    assert_eq!(status, "Seccomp:\t2\n", "the container's own process too");
    // A new user namespace needs no capability, only the syscall: the profile refuses it.
    let (code, out) = run_exec_in(rt, &id, "c", &["unshare", "-U", "true"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("Operation not permitted"), "EPERM: {out}");
    let (code, out) = run_exec_in(rt, &id, "c", &["sh", "-c", "echo still allowed"]).await;
    assert_eq!((code, out.as_str()), (0, "still allowed\n"));
    // The container's own Unconfined wins over the pod's profile.
    let (_, status) = run_exec_in(rt, &id, "u", &["grep", "^Seccomp:", "/proc/self/status"]).await;
    assert_eq!(status, "Seccomp:\t0\n");
    let (code, out) = run_exec_in(rt, &id, "u", &["unshare", "-U", "true"]).await;
    assert_eq!(code, 0, "{out}");
    rt.remove(&id).await.unwrap();

    // No profile anywhere is the kubelet's default, Unconfined; a Localhost profile is not on
    // the node, and containerd refuses the container.
    let mut local = sh("l", "exec sleep 3600");
    local.security.seccomp = Some(SeccompProfile::Localhost("profiles/audit.json".into()));
    let id = rt
        .create_sandbox(spec(
            "seccomp2",
            248,
            vec![sh("c", "exec sleep 3600"), local],
        ))
        .await
        .unwrap();
    for c in ["c", "l"] {
        rt.start_container(&id, c).await.unwrap();
    }
    let st = wait_for(rt, &id, Duration::from_secs(30), |s| {
        container(s, "c").ready && container(s, "l").state.reason() == Some("CreateContainerError")
    })
    .await;
    let ContainerState::Waiting { reason, message } = &container(&st, "l").state else {
        panic!("{st:?}");
    };
    assert_eq!(reason, "CreateContainerError");
    assert_eq!(
        message.as_deref(),
        Some(
            "failed to create containerd container: cannot load seccomp profile \
             \"/var/lib/kubelet/seccomp/profiles/audit.json\": open \
             /var/lib/kubelet/seccomp/profiles/audit.json: no such file or directory"
        )
    );
    let (_, status) = run_exec_in(rt, &id, "c", &["grep", "^Seccomp:", "/proc/self/status"]).await;
    assert_eq!(status, "Seccomp:\t0\n");
    rt.remove(&id).await.unwrap();

    // A pod-level Localhost profile is the sandbox's own: the sandbox is not created.
    let mut s = spec("seccomp3", 249, vec![sh("c", "exec sleep 3600")]);
    s.security.seccomp = Some(SeccompProfile::Localhost("missing.json".into()));
    let id = rt.create_sandbox(s).await.unwrap();
    rt.start_container(&id, "c").await.unwrap();
    let st = wait_for(rt, &id, Duration::from_secs(30), |s| {
        s.events
            .iter()
            .any(|e| e.reason == "FailedCreatePodSandBox")
    })
    .await;
    let e = st
        .events
        .iter()
        .find(|e| e.reason == "FailedCreatePodSandBox")
        .expect("event");
    assert_eq!(
        e.message,
        "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to create \
         containerd container: cannot load seccomp profile \"/var/lib/kubelet/seccomp/missing.json\": \
         open /var/lib/kubelet/seccomp/missing.json: no such file or directory"
    );
    assert!(st.ready_at.is_none());
    rt.remove(&id).await.unwrap();
}

/// Host pids of processes whose command line is exactly `args`.
fn host_processes(args: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = args
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .collect()
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_process_namespace_has_a_pause_process_that_reaps_and_outlives_a_restart() {
    skip_unless_able!();
    let b = ProcessBackend::new().await;
    let mut s = spec(
        "pause1",
        250,
        vec![sh("c", "exec sleep 31111"), sh("d", "exec sleep 32222")],
    );
    s.share_process_namespace = true;
    s.termination_grace = Duration::from_secs(1);
    let id = b.rt.create_sandbox(s).await.unwrap();
    for c in ["c", "d"] {
        b.rt.start_container(&id, c).await.unwrap();
    }
    wait_for(&b.rt, &id, Duration::from_secs(30), |s| {
        container(s, "c").ready && container(s, "d").ready
    })
    .await;
    let pause: i32 = std::fs::read_to_string(
        b.config
            .state_dir
            .join("sandboxes")
            .join(id.as_str())
            .join("ns/pause.pid"),
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    assert!(alive(pause));
    // PID 1 is the pause process, and each container sees the other's processes.
    let (_, comm) = run_exec_in(&b.rt, &id, "d", &["cat", "/proc/1/comm"]).await;
    assert_eq!(comm, "pause\n");
    let (_, ps) = run_exec_in(&b.rt, &id, "d", &["ps", "-o", "pid,ppid,stat,args"]).await;
    assert!(ps.contains("sleep 31111"), "{ps}");
    assert!(ps.contains("sleep 32222"), "{ps}");

    // An orphan is re-parented to the pause process, which reaps it when it ends. (Its output
    // goes elsewhere: the exec's streams last as long as something holds them, as kubectl's.)
    let (code, out) = run_exec_in(
        &b.rt,
        &id,
        "c",
        &["sh", "-c", "(sleep 33333 >/dev/null 2>&1 &)"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let (_, ps) = run_exec_in(&b.rt, &id, "c", &["ps", "-o", "ppid,args"]).await;
    let orphan = ps
        .lines()
        .find(|l| l.ends_with("sleep 33333"))
        .unwrap_or("");
    assert_eq!(orphan.split_whitespace().next(), Some("1"), "{ps}");
    let (code, out) = run_exec_in(
        &b.rt,
        &id,
        "c",
        &[
            "sh",
            "-c",
            "kill $(ps -o pid,args | awk '/[s]leep 33333/ {print $1}')",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, ps) = run_exec_in(&b.rt, &id, "c", &["ps", "-o", "stat,args"]).await;
    assert!(!ps.contains("sleep 33333"), "reaped, not a zombie: {ps}");
    assert!(!ps.lines().any(|l| l.trim_start().starts_with('Z')), "{ps}");

    // A container that restarts joins the same namespace.
    let (code, out) = run_exec_in(
        &b.rt,
        &id,
        "d",
        &[
            "sh",
            "-c",
            "kill $(ps -o pid,args | awk '/[s]leep 31111/ {print $1}')",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let st = wait_for(&b.rt, &id, Duration::from_secs(30), |s| {
        container(s, "c").restart_count >= 1 && container(s, "c").ready
    })
    .await;
    assert!(container(&st, "c").ready, "{st:?}");
    let (_, comm) = run_exec_in(&b.rt, &id, "c", &["cat", "/proc/1/comm"]).await;
    assert_eq!(comm, "pause\n");

    // localfargate goes (kill -9) and comes back: the pause process and containers stay.
    b.rt.abandon();
    let again = b.restarted().await;
    wait_for(&again, &id, Duration::from_secs(10), |s| {
        container(s, "c").ready && container(s, "d").ready
    })
    .await;
    assert!(alive(pause));
    let (_, ps) = run_exec_in(&again, &id, "c", &["ps", "-o", "pid,args"]).await;
    assert!(ps.contains("sleep 32222"), "{ps}");
    let (_, comm) = run_exec_in(&again, &id, "d", &["cat", "/proc/1/comm"]).await;
    assert_eq!(comm, "pause\n");

    // Removing the sandbox leaves no process behind.
    again.remove(&id).await.unwrap();
    assert!(!alive(pause), "the pause process is gone");
    for args in [["sleep", "31111"], ["sleep", "32222"]] {
        assert!(host_processes(&args).is_empty(), "{args:?} is gone");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_share_process_namespace_each_container_is_its_own_pid_1() {
    skip_unless_able!();
    let b = ProcessBackend::new().await;
    let rt: &dyn SandboxRuntime = &b.rt;
    let id = rt
        .create_sandbox(spec(
            "pidns1",
            251,
            vec![sh("c", "exec sleep 34444"), sh("d", "exec sleep 35555")],
        ))
        .await
        .unwrap();
    for c in ["c", "d"] {
        rt.start_container(&id, c).await.unwrap();
    }
    wait_for(rt, &id, Duration::from_secs(30), |s| {
        container(s, "c").ready && container(s, "d").ready
    })
    .await;
    let (_, comm) = run_exec_in(rt, &id, "c", &["cat", "/proc/1/comm"]).await;
    assert_eq!(comm, "sleep\n");
    let (_, ps) = run_exec_in(rt, &id, "c", &["ps", "-o", "args"]).await;
    assert!(
        ps.contains("sleep 34444") && !ps.contains("sleep 35555"),
        "{ps}"
    );
    assert!(
        !b.config
            .state_dir
            .join("sandboxes")
            .join(id.as_str())
            .join("ns/pause.pid")
            .exists()
    );
    rt.remove(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_usage_measures_the_writable_layer_logs_and_disk_volumes() {
    skip_unless_able!();
    let b = ProcessBackend::new().await;
    let rt: &dyn SandboxRuntime = &b.rt;
    let mut c = sh(
        "c",
        "dd if=/dev/zero of=/layer bs=1048576 count=3 2>/dev/null; \
         dd if=/dev/zero of=/scratch/f bs=1048576 count=2 2>/dev/null; \
         dd if=/dev/zero of=/mem/f bs=1048576 count=1 2>/dev/null; \
         seq 1 2000; sync; touch /tmp/done; exec sleep 3600",
    );
    c.readiness = Some(localfargate_runtime::Probe {
        period: Duration::from_millis(200),
        ..localfargate_runtime::Probe::new(localfargate_runtime::Action::Exec {
            command: vec!["test".into(), "-f".into(), "/tmp/done".into()],
        })
    });
    c.mounts = ["scratch", "mem"]
        .iter()
        .map(|v| VolumeMount {
            name: v.to_string(),
            mount_path: format!("/{v}"),
            read_only: false,
            sub_path: None,
        })
        .collect();
    let mut s = spec("storage1", 252, vec![c]);
    s.volumes = vec![
        Volume {
            name: "scratch".into(),
            source: VolumeSource::EmptyDir {
                memory: false,
                size_limit: None,
            },
        },
        Volume {
            name: "mem".into(),
            source: VolumeSource::EmptyDir {
                memory: true,
                size_limit: None,
            },
        },
    ];
    let id = rt.create_sandbox(s).await.unwrap();
    rt.start_container(&id, "c").await.unwrap();
    let st = wait_for(rt, &id, Duration::from_secs(30), |s| {
        container(s, "c").ready
    })
    .await;
    assert!(container(&st, "c").ready, "{st:?}");
    let usage = rt.storage_usage(&id).await.unwrap();
    const MI: u64 = 1 << 20;
    let c = usage.container("c").expect("the container is measured");
    assert!(
        (3 * MI..4 * MI).contains(&c.rootfs_bytes),
        "the 3 MiB file in the writable layer: {usage:?}"
    );
    // 2000 lines of CRI log (timestamp, stream, tag, text): some 90 KB.
    assert!(
        (40 * 1024..512 * 1024).contains(&c.logs_bytes),
        "the log: {usage:?}"
    );
    let scratch = usage.volume("scratch").expect("the disk volume");
    assert!((2 * MI..3 * MI).contains(&scratch.used_bytes), "{usage:?}");
    assert!(usage.volume("mem").is_none(), "memory is not local storage");
    assert_eq!(
        usage.pod_bytes(),
        c.rootfs_bytes + c.logs_bytes + scratch.used_bytes
    );
    rt.remove(&id).await.unwrap();
    assert!(
        rt.storage_usage(&id).await.is_err(),
        "a removed sandbox has nothing to measure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_whose_client_leaves_has_its_command_killed() {
    skip_unless_able!();
    let b = ProcessBackend::new().await;
    let rt = b.rt.clone();
    let id = rt
        .create_sandbox(spec("exec1", 253, vec![sh("c", "exec sleep 3600")]))
        .await
        .unwrap();
    rt.start_container(&id, "c").await.unwrap();
    wait_for(&rt, &id, Duration::from_secs(30), |s| {
        container(s, "c").ready
    })
    .await;
    let running = |rt: ProcessRuntime, id: localfargate_runtime::SandboxId, what: &'static str| async move {
        let (_, ps) = run_exec_in(&rt, &id, "c", &["ps", "-o", "args"]).await;
        ps.lines().any(|l| l.trim() == what)
    };
    let start = |command: &str, stdin: bool| {
        let (out, out_rx) = mpsc::channel(64);
        let (err, err_rx) = mpsc::channel(64);
        let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(8);
        let (rt, id) = (rt.clone(), id.clone());
        let request = ExecRequest {
            command: command.split(' ').map(str::to_string).collect(),
            tty: false,
            stdin: stdin.then_some(in_rx),
            stdout: out,
            stderr: err,
            resize: None,
        };
        let task = tokio::spawn(async move { rt.exec(&id, "c", request).await });
        (task, out_rx, err_rx, in_tx)
    };
    let wait_running = |what: &'static str| {
        let (rt, id) = (rt.clone(), id.clone());
        async move {
            for _ in 0..200 {
                if running(rt.clone(), id.clone(), what).await {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            false
        }
    };

    // The client goes away (the WebSocket closes): its streams are dropped.
    let (task, out_rx, err_rx, in_tx) = start("sleep 36666", true);
    assert!(wait_running("sleep 36666").await);
    drop((out_rx, err_rx, in_tx));
    let ended = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the session ends once its client has gone")
        .unwrap();
    assert!(ended.is_ok(), "{ended:?}");
    assert!(!running(rt.clone(), id.clone(), "sleep 36666").await);

    // The session is dropped (the API server aborts it).
    let (task, _out_rx, _err_rx, _in_tx) = start("sleep 37777", false);
    assert!(wait_running("sleep 37777").await);
    task.abort();
    let _ = task.await;
    // Killed by the session's drop guard, in the background: give a loaded machine time.
    let mut gone = false;
    for _ in 0..750 {
        if !running(rt.clone(), id.clone(), "sleep 37777").await {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "the command ends with its session");

    // The session is dropped while `runc exec` starts the command, before it has written the
    // process's pid (the kill then waits for the pid: runc goes on and starts the command).
    // Several moments, since where runc is at a given moment varies; gone means not running in
    // several `ps` in a row, each an exec of its own, long after runc has started the command.
    for (command, delay) in [
        ("sleep 38881", 60),
        ("sleep 38882", 120),
        ("sleep 38883", 180),
    ] {
        let (task, _out_rx, _err_rx, _in_tx) = start(command, false);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        task.abort();
        let _ = task.await;
        let mut absent = 0;
        for _ in 0..750 {
            if running(rt.clone(), id.clone(), command).await {
                absent = 0;
            } else {
                absent += 1;
                if absent == 5 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            absent, 5,
            "{command}: a command whose session ended early ends too"
        );
    }
    rt.remove(&id).await.unwrap();
}
