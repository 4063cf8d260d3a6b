//! One contract, every backend: the same pods through `Arc<dyn SandboxRuntime>` on the simulated
//! runtime and on the process runtime (the microVM backend will have to pass these too). Each
//! pod says what to do twice: as `sim.localfargate.io/*` annotations for the simulated runtime
//! and as a real command for runtimes that run processes.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use localfargate_runtime::{
    AttachRequest, ContainerSpec, ContainerState, ExecRequest, LogOptions, RestartPolicy,
    RuntimeError, RuntimeKind, SandboxRuntime, SandboxSpec,
};
use support::*;
use tokio::sync::mpsc;

/// A pod for both kinds of backend.
fn pod(
    uid: &str,
    policy: RestartPolicy,
    containers: Vec<ContainerSpec>,
    annotations: &[(&str, &str)],
) -> SandboxSpec {
    let subnet = 200 + uid.bytes().map(u32::from).sum::<u32>() % 50;
    let mut spec = pod_in_subnet(uid, subnet, containers);
    spec.restart_policy = policy;
    spec.annotations = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<BTreeMap<_, _>>();
    spec
}

async fn start_all(rt: &dyn SandboxRuntime, spec: SandboxSpec) -> localfargate_runtime::SandboxId {
    let names: Vec<String> = spec.containers.iter().map(|c| c.name.clone()).collect();
    let id = rt.create_sandbox(spec).await.expect("create");
    for n in names {
        rt.start_container(&id, &n).await.expect("start");
    }
    id
}

async fn a_job_container_exits_with_its_code(rt: Arc<dyn SandboxRuntime>) {
    let spec = pod(
        "job1",
        RestartPolicy::Never,
        vec![sh("main", "echo hello from the job; sleep 0.2; exit 3")],
        &[
            ("sim.localfargate.io/run-duration", "200ms"),
            ("sim.localfargate.io/exit-code", "3"),
            ("sim.localfargate.io/log", "hello from the job"),
        ],
    );
    let id = start_all(&*rt, spec).await;
    let s = wait_for(&*rt, &id, Duration::from_secs(30), |s| {
        is_terminated(container(s, "main"))
    })
    .await;
    let c = container(&s, "main");
    assert_eq!(c.state.exit_code(), Some(3), "{c:?}");
    assert_eq!(c.state.reason(), Some("Error"));
    assert_eq!(c.restart_count, 0);
    assert!(!c.ready);
    assert!(
        c.container_id.as_deref().is_some_and(|i| i.contains("://")),
        "{c:?}"
    );
    assert!(
        c.image_id
            .as_deref()
            .is_some_and(|i| i.contains("@sha256:")),
        "{c:?}"
    );
    assert!(s.ready_at.is_some());
    let logs = read_all(rt.logs(&id, "main", LogOptions::default()).await.unwrap()).await;
    assert!(logs.contains("hello from the job"), "{logs:?}");
    rt.remove(&id).await.unwrap();
    assert!(matches!(
        rt.status(&id).await,
        Err(RuntimeError::NotFound(_))
    ));
    rt.remove(&id).await.expect("a second remove succeeds");
}

async fn a_long_running_container_runs_until_stopped(rt: Arc<dyn SandboxRuntime>) {
    let spec = pod(
        "svc1",
        RestartPolicy::Always,
        vec![sh("web", "echo up; exec sleep 3600")],
        &[("sim.localfargate.io/log", "up")],
    );
    let id = start_all(&*rt, spec.clone()).await;
    let s = wait_for(&*rt, &id, Duration::from_secs(30), |s| {
        container(s, "web").ready
    })
    .await;
    let c = container(&s, "web");
    assert!(c.state.is_running(), "{c:?}");
    assert!(c.started);
    assert!(matches!(
        rt.create_sandbox(spec).await,
        Err(RuntimeError::AlreadyExists { .. })
    ));
    assert!(matches!(
        rt.start_container(&id, "nope").await,
        Err(RuntimeError::NotFound(_))
    ));
    let summaries = rt.list().await.unwrap();
    assert!(summaries.iter().any(|x| x.id == id && x.pod_uid == "svc1"));
    let found = rt.sandbox_of_pod("svc1").await.unwrap().unwrap();
    assert_eq!((found.id, found.pod_uid.as_str()), (id.clone(), "svc1"));
    assert!(rt.sandbox_of_pod("no-such-pod").await.unwrap().is_none());
    rt.stop(&id, Duration::from_secs(5)).await.unwrap();
    let s = rt.status(&id).await.unwrap();
    let c = container(&s, "web");
    assert!(is_terminated(c), "{c:?}");
    assert_eq!(c.restart_count, 0);
    assert!(s.stopped_at.is_some());
    assert!(matches!(
        rt.start_container(&id, "web").await,
        Err(RuntimeError::Stopped { .. })
    ));
    rt.remove(&id).await.unwrap();
}

async fn init_containers_run_first(rt: Arc<dyn SandboxRuntime>) {
    let mut init = sh("setup", "echo init done; sleep 0.3");
    init.init = true;
    let spec = pod(
        "init1",
        RestartPolicy::Always,
        vec![init, sh("app", "exec sleep 3600")],
        &[("sim.localfargate.io/run-duration.setup", "300ms")],
    );
    let id = start_all(&*rt, spec).await;
    let s = wait_for(&*rt, &id, Duration::from_secs(30), |s| {
        container(s, "app").state.is_running()
    })
    .await;
    let (setup, app) = (container(&s, "setup"), container(&s, "app"));
    assert_eq!(setup.state.exit_code(), Some(0), "{setup:?}");
    assert_eq!(setup.state.reason(), Some("Completed"));
    let (ContainerState::Terminated { finished_at, .. }, ContainerState::Running { started_at }) =
        (&setup.state, &app.state)
    else {
        panic!("unexpected states {setup:?} {app:?}");
    };
    assert!(started_at >= finished_at);
    rt.remove(&id).await.unwrap();
}

async fn failed_containers_restart_with_back_off(rt: Arc<dyn SandboxRuntime>) {
    let spec = pod(
        "crash1",
        RestartPolicy::OnFailure,
        vec![sh("worker", "echo crashing; exit 1")],
        &[
            ("sim.localfargate.io/run-duration", "50ms"),
            ("sim.localfargate.io/exit-code", "1"),
            ("sim.localfargate.io/restart-backoff", "300ms"),
        ],
    );
    let id = start_all(&*rt, spec).await;
    let s = wait_for(&*rt, &id, Duration::from_secs(30), |s| {
        container(s, "worker").restart_count >= 2
    })
    .await;
    let c = container(&s, "worker");
    assert!(c.restart_count >= 2, "{c:?}");
    let last = c.last_state.as_ref().expect("last state");
    assert_eq!(last.exit_code(), Some(1), "{last:?}");
    let s = wait_for(&*rt, &id, Duration::from_secs(30), |s| {
        container(s, "worker").state.reason() == Some("CrashLoopBackOff")
    })
    .await;
    let c = container(&s, "worker");
    let ContainerState::Waiting { reason, message } = &c.state else {
        panic!("{c:?}");
    };
    assert_eq!(reason, "CrashLoopBackOff");
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("restarting failed container=worker")),
        "{message:?}"
    );
    let previous = rt
        .logs(
            &id,
            "worker",
            LogOptions {
                previous: true,
                ..Default::default()
            },
        )
        .await;
    assert!(previous.is_ok(), "{previous:?}");
    rt.remove(&id).await.unwrap();
}

/// Usage samples of running containers: CPU time that grows while a container burns CPU, a
/// working set that holds what it wrote to memory, nothing for a sandbox that has stopped.
async fn running_containers_report_their_usage(rt: Arc<dyn SandboxRuntime>) {
    const MIB: u64 = 1 << 20;
    let spec = pod(
        "top1",
        RestartPolicy::Always,
        vec![
            sh("burn", "while :; do :; done"),
            // 16 MiB in the container's /dev/shm (a tmpfs): memory charged to its cgroup.
            sh(
                "fill",
                "busybox dd if=/dev/zero of=/dev/shm/fill bs=1M count=16 2>/dev/null; \
                 exec sleep 3600",
            ),
        ],
        &[
            ("sim.localfargate.io/cpu-usage.burn", "250m"),
            ("sim.localfargate.io/memory-usage.fill", "17Mi"),
        ],
    );
    let id = start_all(&*rt, spec).await;
    wait_for(&*rt, &id, Duration::from_secs(30), |s| {
        container(s, "burn").state.is_running() && container(s, "fill").state.is_running()
    })
    .await;
    // Until dd has written its 16 MiB (at once in the simulated runtime).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let first = loop {
        let sample = rt.usage(&id).await.expect("usage");
        let names: Vec<&str> = sample.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["burn", "fill"], "{sample:?}");
        if sample[1].memory_working_set_bytes >= 16 * MIB || tokio::time::Instant::now() > deadline
        {
            break sample;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        first[1].memory_working_set_bytes >= 16 * MIB,
        "the 16 MiB written to /dev/shm count: {first:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = rt.usage(&id).await.expect("usage");
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(
            a.since, b.since,
            "the counter did not start again: {a:?} {b:?}"
        );
        assert!(
            a.since <= a.timestamp && a.timestamp < b.timestamp,
            "{a:?} {b:?}"
        );
        assert!(b.cpu_ns >= a.cpu_ns, "{a:?} {b:?}");
    }
    let burned = second[0].cpu_ns - first[0].cpu_ns;
    let idled = second[1].cpu_ns - first[1].cpu_ns;
    assert!(
        burned > idled,
        "the busy loop used more CPU ({burned} ns) than sleep ({idled} ns)"
    );
    rt.stop(&id, Duration::from_secs(5)).await.unwrap();
    assert_eq!(rt.usage(&id).await.expect("usage"), []);
    rt.remove(&id).await.unwrap();
    assert!(matches!(
        rt.usage(&id).await,
        Err(RuntimeError::NotFound(_))
    ));
}

fn attach_request() -> (AttachRequest, mpsc::Receiver<Vec<u8>>) {
    let (stdout, out_rx) = mpsc::channel(256);
    let (stderr, _) = mpsc::channel(1);
    let request = AttachRequest {
        stdin: None,
        stdout,
        stderr,
        resize: None,
    };
    (request, out_rx)
}

/// Attach gets the output that follows and returns once the container's process has exited;
/// a container that has exited, or is not in the pod, cannot be attached to.
async fn attach_follows_the_process_until_it_exits(rt: Arc<dyn SandboxRuntime>) {
    let spec = pod(
        "att1",
        RestartPolicy::Never,
        vec![sh(
            "main",
            "i=0; while [ $i -lt 15 ]; do echo tick $i; i=$((i+1)); sleep 0.1; done",
        )],
        &[("sim.localfargate.io/run-duration", "1500ms")],
    );
    let id = start_all(&*rt, spec).await;
    wait_for(&*rt, &id, Duration::from_secs(30), |s| {
        matches!(container(s, "main").state, ContainerState::Running { .. })
    })
    .await;
    let (request, mut out_rx) = attach_request();
    rt.attach(&id, "main", request).await.expect("attach");
    let mut out = Vec::new();
    while let Ok(chunk) = out_rx.try_recv() {
        out.extend(chunk);
    }
    let out = String::from_utf8_lossy(&out);
    match rt.kind() {
        // Whatever part of the run it saw, the run's last line ends it.
        RuntimeKind::Process => {
            assert!(out.ends_with("tick 14\n"), "{out:?}");
            assert!(out.lines().all(|l| l.starts_with("tick ")), "{out:?}");
        }
        _ => assert!(out.ends_with("exited with code 0\n"), "{out:?}"),
    }
    let s = wait_for(&*rt, &id, Duration::from_secs(30), |s| {
        is_terminated(container(s, "main"))
    })
    .await;
    assert!(is_terminated(container(&s, "main")));
    let (request, _) = attach_request();
    let after = rt.attach(&id, "main", request).await;
    assert!(
        matches!(after, Err(RuntimeError::NotRunning { .. })),
        "{after:?}"
    );
    let (request, _) = attach_request();
    let missing = rt.attach(&id, "nope", request).await;
    assert!(
        matches!(missing, Err(RuntimeError::NotFound(_))),
        "{missing:?}"
    );
    rt.remove(&id).await.unwrap();
}

macro_rules! for_each_backend {
    ($($name:ident),* $(,)?) => {
        mod simulated_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::simulated()).await;
                }
            )*
        }
        mod process_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(why) = super::process_skip_reason() {
                        eprintln!("skipped: the process runtime cannot run here: {why}");
                        return;
                    }
                    let backend = super::ProcessBackend::new().await;
                    super::$name(std::sync::Arc::new(backend.rt.clone())).await;
                }
            )*
        }
    };
}

for_each_backend!(
    a_job_container_exits_with_its_code,
    a_long_running_container_runs_until_stopped,
    init_containers_run_first,
    failed_containers_restart_with_back_off,
    running_containers_report_their_usage,
    attach_follows_the_process_until_it_exits,
);

/// Exec is the one call the simulated runtime refuses (nothing runs there).
#[tokio::test]
async fn the_simulated_runtime_refuses_exec_with_advice() {
    let rt = simulated();
    let id = start_all(
        &*rt,
        pod("ex0", RestartPolicy::Always, vec![sh("c", "sleep 1")], &[]),
    )
    .await;
    let (out, _o) = mpsc::channel(1);
    let (err, _e) = mpsc::channel(1);
    let r = rt
        .exec(
            &id,
            "c",
            ExecRequest {
                command: vec!["true".into()],
                tty: false,
                stdin: None,
                stdout: out,
                stderr: err,
                resize: None,
            },
        )
        .await;
    assert!(matches!(r, Err(RuntimeError::ExecUnsupported { .. })));
}
