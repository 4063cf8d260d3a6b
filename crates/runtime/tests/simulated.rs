//! The simulated runtime through `Arc<dyn SandboxRuntime>`, on tokio's paused clock so every
//! time and timestamp is exact.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use localfargate_runtime::{
    ContainerSpec, ContainerState, ExecRequest, LogOptions, LogStream, RestartPolicy, RuntimeError,
    SandboxId, SandboxRuntime, SandboxSpec, SimulatedRuntime,
};
use tokio::sync::mpsc;
use tokio::time::sleep;

/// 2026-11-23T21:00:00Z.
fn epoch() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_467_600)
}

fn at(ms: u64) -> SystemTime {
    epoch() + Duration::from_millis(ms)
}

fn runtime() -> Arc<dyn SandboxRuntime> {
    Arc::new(SimulatedRuntime::with_epoch(epoch()))
}

fn container(name: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.to_string(),
        image: format!("public.ecr.aws/docker/library/{name}:1"),
        ..Default::default()
    }
}

fn init(name: &str) -> ContainerSpec {
    ContainerSpec {
        init: true,
        ..container(name)
    }
}

fn spec(
    policy: RestartPolicy,
    annotations: &[(&str, &str)],
    containers: Vec<ContainerSpec>,
) -> SandboxSpec {
    SandboxSpec {
        restart_policy: policy,
        annotations: annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..SandboxSpec::new(
            "uid-1",
            "default",
            "p1",
            "10.0.128.4".parse().unwrap(),
            containers,
        )
    }
}

/// Creates the sandbox and asks for every container to start, as the node agent does.
async fn run(rt: &dyn SandboxRuntime, spec: SandboxSpec) -> SandboxId {
    let names: Vec<String> = spec.containers.iter().map(|c| c.name.clone()).collect();
    let id = rt.create_sandbox(spec).await.unwrap();
    for name in names {
        rt.start_container(&id, &name).await.unwrap();
    }
    id
}

async fn state(rt: &dyn SandboxRuntime, id: &SandboxId, container: &str) -> ContainerState {
    rt.status(id)
        .await
        .unwrap()
        .container(container)
        .unwrap()
        .state
        .clone()
}

fn waiting(reason: &str) -> ContainerState {
    ContainerState::Waiting {
        reason: reason.to_string(),
        message: None,
    }
}

fn running(ms: u64) -> ContainerState {
    ContainerState::Running { started_at: at(ms) }
}

fn terminated(exit_code: i32, start_ms: u64, end_ms: u64) -> ContainerState {
    ContainerState::Terminated {
        exit_code,
        reason: if exit_code == 0 { "Completed" } else { "Error" }.to_string(),
        message: None,
        started_at: at(start_ms),
        finished_at: at(end_ms),
    }
}

async fn read_all(mut rx: LogStream) -> String {
    let mut out = Vec::new();
    while let Some(chunk) = rx.recv().await {
        out.extend(chunk);
    }
    String::from_utf8(out).unwrap()
}

async fn logs(rt: &dyn SandboxRuntime, id: &SandboxId, c: &str, options: LogOptions) -> String {
    read_all(rt.logs(id, c, options).await.unwrap()).await
}

#[tokio::test(start_paused = true)]
async fn container_creating_until_the_start_delay_then_running() {
    let rt = runtime();
    let id = rt
        .create_sandbox(spec(
            RestartPolicy::Always,
            &[("sim.localfargate.io/start-delay", "2s")],
            vec![container("web")],
        ))
        .await
        .unwrap();
    assert_eq!(id.as_str(), "sim-uid-1");
    rt.start_container(&id, "web").await.unwrap();

    let st = rt.status(&id).await.unwrap();
    assert_eq!(st.containers[0].state, waiting("ContainerCreating"));
    assert_eq!(st.created_at, epoch());
    assert_eq!(st.ready_at, None);
    assert_eq!(st.next_transition, Some(at(2000)));

    sleep(Duration::from_millis(1999)).await;
    assert_eq!(state(&*rt, &id, "web").await, waiting("ContainerCreating"));

    sleep(Duration::from_millis(1)).await;
    let st = rt.status(&id).await.unwrap();
    assert_eq!(st.containers[0].state, running(2000));
    assert_eq!(st.containers[0].restart_count, 0);
    assert_eq!(st.ready_at, Some(at(2000)));
    assert_eq!(st.next_transition, None, "an Always container runs forever");

    sleep(Duration::from_secs(86_400)).await;
    assert_eq!(state(&*rt, &id, "web").await, running(2000));
}

#[tokio::test(start_paused = true)]
async fn containers_wait_for_start_container() {
    let rt = runtime();
    let id = rt
        .create_sandbox(spec(RestartPolicy::Always, &[], vec![container("web")]))
        .await
        .unwrap();
    sleep(Duration::from_secs(5)).await;
    let st = rt.status(&id).await.unwrap();
    assert_eq!(st.ready_at, Some(epoch()));
    assert_eq!(st.containers[0].state, waiting("ContainerCreating"));
    assert_eq!(st.next_transition, None);
    rt.start_container(&id, "web").await.unwrap();
    assert_eq!(state(&*rt, &id, "web").await, running(5000));
    // Starting again changes nothing.
    sleep(Duration::from_secs(1)).await;
    rt.start_container(&id, "web").await.unwrap();
    assert_eq!(state(&*rt, &id, "web").await, running(5000));
    assert!(matches!(
        rt.start_container(&id, "nope").await,
        Err(RuntimeError::NotFound(what)) if what == "container \"nope\" in pod default/p1"
    ));
}

#[tokio::test(start_paused = true)]
async fn never_pods_complete_after_one_second_with_the_annotated_exit_codes() {
    let rt = runtime();
    let id = run(
        &*rt,
        spec(
            RestartPolicy::Never,
            &[
                ("sim.localfargate.io/exit-code", "3"),
                ("sim.localfargate.io/exit-code.ok", "0"),
                ("sim.localfargate.io/run-duration.ok", "2500ms"),
            ],
            vec![container("ok"), container("bad")],
        ),
    )
    .await;
    let st = rt.status(&id).await.unwrap();
    assert_eq!(st.containers[0].state, running(0));
    assert_eq!(st.containers[1].state, running(0));
    assert_eq!(st.next_transition, Some(at(1000)));

    sleep(Duration::from_secs(1)).await;
    let st = rt.status(&id).await.unwrap();
    assert_eq!(st.containers[1].state, terminated(3, 0, 1000));
    assert_eq!(st.containers[1].state.reason(), Some("Error"));
    assert_eq!(st.containers[0].state, running(0));
    assert_eq!(st.next_transition, Some(at(2500)));

    sleep(Duration::from_secs(10)).await;
    let st = rt.status(&id).await.unwrap();
    assert_eq!(st.containers[0].state, terminated(0, 0, 2500));
    assert_eq!(st.containers[0].state.reason(), Some("Completed"));
    assert_eq!(st.containers[1].state, terminated(3, 0, 1000));
    assert!(st.containers.iter().all(|c| c.restart_count == 0));
    assert_eq!(st.next_transition, None);
}

#[tokio::test(start_paused = true)]
async fn always_restarts_with_the_kubelet_back_off() {
    let t0 = tokio::time::Instant::now();
    let rt = runtime();
    let id = run(
        &*rt,
        spec(
            RestartPolicy::Always,
            &[
                ("sim.localfargate.io/run-duration", "1s"),
                ("sim.localfargate.io/exit-code", "1"),
            ],
            vec![container("app")],
        ),
    )
    .await;
    sleep(Duration::from_secs(1)).await;
    let st = rt.status(&id).await.unwrap();
    let app = &st.containers[0];
    assert_eq!(
        app.state,
        ContainerState::Waiting {
            reason: "CrashLoopBackOff".to_string(),
            message: Some(
                "back-off 10s restarting failed container=app pod=p1_default(uid-1)".to_string()
            ),
        }
    );
    assert_eq!(app.last_state, Some(terminated(1, 0, 1000)));
    assert_eq!(app.restart_count, 0);
    assert_eq!(st.next_transition, Some(at(11_000)));

    sleep(Duration::from_secs(10)).await;
    let st = rt.status(&id).await.unwrap();
    assert_eq!(st.containers[0].state, running(11_000));
    assert_eq!(st.containers[0].restart_count, 1);
    assert_eq!(st.containers[0].last_state, Some(terminated(1, 0, 1000)));

    sleep(Duration::from_secs(1)).await;
    let st = rt.status(&id).await.unwrap();
    let ContainerState::Waiting { message, .. } = &st.containers[0].state else {
        panic!("{:?}", st.containers[0].state);
    };
    assert!(message.as_deref().unwrap().starts_with("back-off 20s "));
    assert_eq!(st.next_transition, Some(at(32_000)));

    // Runs start at 0, 11, 32, 73, 154, 315 (back-off 10s doubling), then every 301s once the
    // back-off is capped at 5m: 616, 917, …, 3325 (run 15), each lasting 1s.
    tokio::time::sleep_until(t0 + Duration::from_secs(3600)).await;
    let st = rt.status(&id).await.unwrap();
    let app = &st.containers[0];
    assert_eq!(app.restart_count, 15);
    assert_eq!(app.last_state, Some(terminated(1, 3_325_000, 3_326_000)));
    let ContainerState::Waiting { reason, message } = &app.state else {
        panic!("{:?}", app.state);
    };
    assert_eq!(reason, "CrashLoopBackOff");
    assert!(message.as_deref().unwrap().starts_with("back-off 5m0s "));
    assert_eq!(st.next_transition, Some(at(3_626_000)));
}

#[tokio::test(start_paused = true)]
async fn restart_counts_follow_policy_and_exit_code() {
    let rt = runtime();
    let mut sb = spec(
        RestartPolicy::Always,
        &[
            ("sim.localfargate.io/run-duration", "1s"),
            ("sim.localfargate.io/restart-backoff", "0"),
            ("sim.localfargate.io/exit-code.failing", "2"),
        ],
        vec![container("done"), container("failing")],
    );
    let always = run(&*rt, sb.clone()).await;
    sb.pod_uid = "uid-2".to_string();
    sb.restart_policy = RestartPolicy::OnFailure;
    let on_failure = run(&*rt, sb.clone()).await;
    sb.pod_uid = "uid-3".to_string();
    sb.restart_policy = RestartPolicy::Never;
    let never = run(&*rt, sb).await;

    sleep(Duration::from_millis(10_500)).await;
    // Always: both restart every second, whatever the exit code.
    let st = rt.status(&always).await.unwrap();
    for c in &st.containers {
        assert_eq!(c.restart_count, 10, "{}", c.name);
        assert_eq!(c.state, running(10_000));
    }
    assert_eq!(
        st.containers[0].last_state,
        Some(terminated(0, 9000, 10_000))
    );
    assert_eq!(
        st.containers[1].last_state,
        Some(terminated(2, 9000, 10_000))
    );
    assert_eq!(st.next_transition, Some(at(11_000)));
    // OnFailure: only the failing one restarts.
    let st = rt.status(&on_failure).await.unwrap();
    assert_eq!(st.containers[0].state, terminated(0, 0, 1000));
    assert_eq!(st.containers[0].restart_count, 0);
    assert_eq!(st.containers[1].state, running(10_000));
    assert_eq!(st.containers[1].restart_count, 10);
    // Never: neither.
    let st = rt.status(&never).await.unwrap();
    assert_eq!(st.containers[0].state, terminated(0, 0, 1000));
    assert_eq!(st.containers[1].state, terminated(2, 0, 1000));
    assert_eq!(st.containers[1].restart_count, 0);
    assert_eq!(st.containers[1].last_state, None);
    assert_eq!(st.next_transition, None);
}

#[tokio::test(start_paused = true)]
async fn init_containers_run_in_order_before_the_app() {
    let rt = runtime();
    let id = run(
        &*rt,
        spec(
            RestartPolicy::Always,
            &[("sim.localfargate.io/run-duration.init-b", "2s")],
            vec![init("init-a"), init("init-b"), container("app")],
        ),
    )
    .await;
    let st = rt.status(&id).await.unwrap();
    assert_eq!(st.containers[0].state, running(0));
    assert!(st.containers[0].init && !st.containers[2].init);
    assert_eq!(st.containers[1].state, waiting("PodInitializing"));
    assert_eq!(st.containers[2].state, waiting("PodInitializing"));
    assert_eq!(st.next_transition, Some(at(1000)));

    sleep(Duration::from_secs(1)).await;
    let st = rt.status(&id).await.unwrap();
    assert_eq!(st.containers[0].state, terminated(0, 0, 1000));
    assert_eq!(st.containers[1].state, running(1000));
    assert_eq!(st.containers[2].state, waiting("PodInitializing"));
    assert_eq!(st.next_transition, Some(at(3000)));

    sleep(Duration::from_secs(2)).await;
    let st = rt.status(&id).await.unwrap();
    assert_eq!(st.containers[1].state, terminated(0, 1000, 3000));
    assert_eq!(st.containers[2].state, running(3000));
    assert_eq!(st.next_transition, None);
}

#[tokio::test(start_paused = true)]
async fn a_failing_init_container_blocks_the_app() {
    let rt = runtime();
    let mut sb = spec(
        RestartPolicy::Never,
        &[("sim.localfargate.io/exit-code.setup", "1")],
        vec![init("setup"), container("app")],
    );
    let never = run(&*rt, sb.clone()).await;
    sb.pod_uid = "uid-2".to_string();
    sb.restart_policy = RestartPolicy::OnFailure;
    let on_failure = run(&*rt, sb).await;

    sleep(Duration::from_secs(60)).await;
    let st = rt.status(&never).await.unwrap();
    assert_eq!(st.containers[0].state, terminated(1, 0, 1000));
    assert_eq!(st.containers[1].state, waiting("PodInitializing"));
    assert_eq!(st.next_transition, None);

    // OnFailure reruns the init container: 0–1s, 11–12s, 32–33s; the next starts at 73s.
    let st = rt.status(&on_failure).await.unwrap();
    assert_eq!(st.containers[0].restart_count, 2);
    assert_eq!(st.containers[0].state.reason(), Some("CrashLoopBackOff"));
    assert_eq!(
        st.containers[0].last_state,
        Some(terminated(1, 32_000, 33_000))
    );
    assert_eq!(st.containers[1].state, waiting("PodInitializing"));
    assert_eq!(st.next_transition, Some(at(73_000)));
}

#[tokio::test(start_paused = true)]
async fn logs_are_deterministic_and_honour_options() {
    let rt = runtime();
    let mut worker = container("worker");
    worker.command = vec!["sh".into(), "-c".into()];
    worker.args = vec!["echo hello; it's done".into()];
    let id = run(
        &*rt,
        spec(
            RestartPolicy::Never,
            &[
                ("sim.localfargate.io/log.worker", "line one\nline two\n"),
                ("sim.localfargate.io/exit-code.worker", "4"),
                ("sim.localfargate.io/run-duration", "3s"),
            ],
            vec![worker],
        ),
    )
    .await;
    let start = "[localfargate simulated runtime] container worker image \
                 public.ecr.aws/docker/library/worker:1 started with command: sh -c \
                 'echo hello; it'\\''s done'";
    let o = LogOptions::default;

    assert_eq!(
        logs(&*rt, &id, "worker", o()).await,
        format!("{start}\nline one\nline two\n")
    );
    sleep(Duration::from_secs(3)).await;
    let full = format!(
        "{start}\nline one\nline two\n[localfargate simulated runtime] exited with code 4\n"
    );
    assert_eq!(logs(&*rt, &id, "worker", o()).await, full);

    let tail = LogOptions {
        tail_lines: Some(2),
        ..o()
    };
    assert_eq!(
        logs(&*rt, &id, "worker", tail).await,
        "line two\n[localfargate simulated runtime] exited with code 4\n"
    );
    let limited = LogOptions {
        limit_bytes: Some(10),
        ..o()
    };
    assert_eq!(logs(&*rt, &id, "worker", limited).await, "[localfarg");
    let stamped = LogOptions {
        timestamps: true,
        tail_lines: Some(2),
        ..o()
    };
    assert_eq!(
        logs(&*rt, &id, "worker", stamped).await,
        "2026-11-23T21:00:00.000000000Z line two\n\
         2026-11-23T21:00:03.000000000Z [localfargate simulated runtime] exited with code 4\n"
    );
    let since = LogOptions {
        since: Some(at(1)),
        ..o()
    };
    assert_eq!(
        logs(&*rt, &id, "worker", since).await,
        "[localfargate simulated runtime] exited with code 4\n"
    );
    let zero = LogOptions {
        tail_lines: Some(0),
        ..o()
    };
    assert_eq!(logs(&*rt, &id, "worker", zero).await, "");
    // No restart, so no previous run.
    let prev = rt
        .logs(
            &id,
            "worker",
            LogOptions {
                previous: true,
                ..o()
            },
        )
        .await;
    assert_eq!(
        prev.err().unwrap().to_string(),
        "previous terminated container \"worker\" in pod \"p1\" not found"
    );
}

#[tokio::test(start_paused = true)]
async fn logs_of_a_waiting_container_and_of_the_previous_run() {
    let rt = runtime();
    let id = run(
        &*rt,
        spec(
            RestartPolicy::Always,
            &[
                ("sim.localfargate.io/start-delay", "500ms"),
                ("sim.localfargate.io/run-duration", "1s"),
                ("sim.localfargate.io/restart-backoff", "2s"),
            ],
            vec![container("app")],
        ),
    )
    .await;
    let err = rt
        .logs(&id, "app", LogOptions::default())
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "container \"app\" in pod \"p1\" is waiting to start: ContainerCreating"
    );
    // Run 0: 0.5–1.5s; back-off 2s; run 1 from 3.5s.
    sleep(Duration::from_millis(4000)).await;
    let stamped = LogOptions {
        timestamps: true,
        ..LogOptions::default()
    };
    let current = logs(&*rt, &id, "app", stamped.clone()).await;
    assert!(
        current.starts_with(
            "2026-11-23T21:00:03.500000000Z [localfargate simulated runtime] container app"
        ),
        "{current}"
    );
    assert_eq!(current.lines().count(), 1);
    let previous = logs(
        &*rt,
        &id,
        "app",
        LogOptions {
            previous: true,
            ..stamped
        },
    )
    .await;
    assert!(
        previous.starts_with("2026-11-23T21:00:00.500000000Z "),
        "{previous}"
    );
    assert!(previous.ends_with(
        "2026-11-23T21:00:01.500000000Z [localfargate simulated runtime] exited with code 0\n"
    ));
}

#[tokio::test(start_paused = true)]
async fn follow_streams_until_the_container_exits() {
    let rt = runtime();
    let id = run(
        &*rt,
        spec(
            RestartPolicy::Never,
            &[("sim.localfargate.io/run-duration", "2s")],
            vec![container("job")],
        ),
    )
    .await;
    sleep(Duration::from_millis(500)).await;
    let mut rx = rt
        .logs(
            &id,
            "job",
            LogOptions {
                follow: true,
                ..LogOptions::default()
            },
        )
        .await
        .unwrap();
    let first = String::from_utf8(rx.recv().await.unwrap()).unwrap();
    assert!(first.ends_with("job:1 started\n"), "{first}");
    let started = tokio::time::Instant::now();
    let second = String::from_utf8(rx.recv().await.unwrap()).unwrap();
    assert_eq!(
        second,
        "[localfargate simulated runtime] exited with code 0\n"
    );
    // The exit line arrives when the run ends, 1.5s of (paused) clock later.
    assert_eq!(started.elapsed(), Duration::from_millis(1500));
    assert!(
        rx.recv().await.is_none(),
        "the stream closes after the exit"
    );
}

#[tokio::test(start_paused = true)]
async fn follow_ends_on_stop_and_on_remove() {
    let rt = runtime();
    let id = run(
        &*rt,
        spec(RestartPolicy::Always, &[], vec![container("web")]),
    )
    .await;
    let follow = LogOptions {
        follow: true,
        limit_bytes: Some(10_000),
        ..LogOptions::default()
    };
    let rx = rt.logs(&id, "web", follow.clone()).await.unwrap();
    let reader = tokio::spawn(read_all(rx));
    sleep(Duration::from_secs(30)).await;
    rt.stop(&id, Duration::from_secs(30)).await.unwrap();
    let text = reader.await.unwrap();
    assert!(
        text.ends_with("started\n[localfargate simulated runtime] exited with code 0\n"),
        "{text}"
    );

    let mut sb = spec(RestartPolicy::Always, &[], vec![container("web")]);
    sb.pod_uid = "uid-2".to_string();
    let id2 = run(&*rt, sb).await;
    let rx = rt.logs(&id2, "web", follow).await.unwrap();
    let reader = tokio::spawn(read_all(rx));
    sleep(Duration::from_secs(1)).await;
    rt.remove(&id2).await.unwrap();
    let text = reader.await.unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_follower_stops_when_its_receiver_is_dropped() {
    let alive = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let rt = runtime();
    let id = run(
        &*rt,
        spec(RestartPolicy::Always, &[], vec![container("web")]),
    )
    .await;
    assert_eq!(alive(), 0, "a sandbox has no task of its own");
    let follow = LogOptions {
        follow: true,
        ..LogOptions::default()
    };
    let mut rx = rt.logs(&id, "web", follow).await.unwrap();
    assert!(rx.recv().await.unwrap().ends_with(b"web:1 started\n"));
    sleep(Duration::from_secs(60)).await;
    assert_eq!(alive(), 1, "the follower waits for the container to exit");
    drop(rx);
    sleep(Duration::from_millis(1)).await;
    assert_eq!(alive(), 0);
}

#[tokio::test(start_paused = true)]
async fn stop_is_graceful_or_kills_after_the_grace_period() {
    let rt = runtime();
    let id = run(
        &*rt,
        spec(
            RestartPolicy::Always,
            &[("sim.localfargate.io/stop-duration.slow", "5s")],
            vec![container("fast"), container("slow")],
        ),
    )
    .await;
    sleep(Duration::from_secs(10)).await;
    let before = tokio::time::Instant::now();
    rt.stop(&id, Duration::from_secs(2)).await.unwrap();
    assert_eq!(
        before.elapsed(),
        Duration::from_secs(2),
        "stop returns when the slow container is killed"
    );
    let st = rt.status(&id).await.unwrap();
    assert_eq!(st.stopped_at, Some(at(10_000)));
    assert_eq!(st.containers[0].state, terminated(0, 0, 10_000));
    assert_eq!(st.containers[1].state, terminated(137, 0, 12_000));
    assert_eq!(st.next_transition, None);
    // Nothing restarts after a stop, nothing new starts.
    sleep(Duration::from_secs(600)).await;
    assert_eq!(state(&*rt, &id, "fast").await, terminated(0, 0, 10_000));
    assert!(matches!(
        rt.start_container(&id, "fast").await,
        Err(RuntimeError::Stopped { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_second_stop_can_shorten_the_grace_period() {
    let rt = SimulatedRuntime::with_epoch(epoch());
    let id = run(
        &rt,
        spec(
            RestartPolicy::Always,
            &[("sim.localfargate.io/stop-duration", "1m")],
            vec![container("app")],
        ),
    )
    .await;
    let rt2 = rt.clone();
    let id2 = id.clone();
    let first = tokio::spawn(async move { rt2.stop(&id2, Duration::from_secs(30)).await });
    sleep(Duration::from_secs(5)).await;
    assert!(
        state(&rt, &id, "app").await.is_running(),
        "still in its grace period"
    );
    rt.stop(&id, Duration::ZERO).await.unwrap();
    assert_eq!(state(&rt, &id, "app").await, terminated(137, 0, 5000));
    first.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn exec_is_refused_with_a_clear_message() {
    let rt = runtime();
    let id = run(
        &*rt,
        spec(RestartPolicy::Always, &[], vec![container("web")]),
    )
    .await;
    let (stdout, _out) = mpsc::channel(1);
    let (stderr, _err) = mpsc::channel(1);
    let request = || ExecRequest {
        command: vec!["sh".to_string()],
        tty: true,
        stdin: None,
        stdout: stdout.clone(),
        stderr: stderr.clone(),
        resize: None,
    };
    let err = rt.exec(&id, "web", request()).await.unwrap_err();
    assert!(matches!(err, RuntimeError::ExecUnsupported { .. }));
    assert_eq!(
        err.to_string(),
        "exec is not available in the simulated runtime: pod default/p1 is simulated, no process \
         runs; start localfargate with --runtime process to exec into pods"
    );
    let err = rt
        .exec(&SandboxId::from("sim-nope"), "web", request())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "sandbox sim-nope not found");
}

#[tokio::test(start_paused = true)]
async fn create_remove_list_and_change_notices() {
    let rt = runtime();
    let mut changes = rt.changes();
    let id = rt
        .create_sandbox(spec(RestartPolicy::Always, &[], vec![container("web")]))
        .await
        .unwrap();
    assert_eq!(changes.recv().await.unwrap(), id);
    let again = rt
        .create_sandbox(spec(RestartPolicy::Always, &[], vec![container("web")]))
        .await;
    assert_eq!(
        again.err().unwrap().to_string(),
        "pod default/p1 already has sandbox sim-uid-1"
    );
    rt.start_container(&id, "web").await.unwrap();
    assert_eq!(changes.recv().await.unwrap(), id);

    let list = rt.list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (
            list[0].pod_uid.as_str(),
            list[0].namespace.as_str(),
            list[0].name.as_str()
        ),
        ("uid-1", "default", "p1")
    );
    rt.remove(&id).await.unwrap();
    rt.remove(&id).await.unwrap();
    assert!(rt.list().await.unwrap().is_empty());
    assert!(matches!(
        rt.status(&id).await,
        Err(RuntimeError::NotFound(what)) if what == "sandbox sim-uid-1"
    ));
}

#[tokio::test(start_paused = true)]
async fn bad_specs_and_annotations_are_refused() {
    let rt = runtime();
    let cases: Vec<(SandboxSpec, &str)> = vec![
        (
            spec(
                RestartPolicy::Never,
                &[("sim.localfargate.io/run-duration", "soon")],
                vec![container("a")],
            ),
            "invalid sandbox spec for pod default/p1: annotation sim.localfargate.io/run-duration: \
             invalid duration \"soon\": expected e.g. 500ms, 2s, 1m30s or forever",
        ),
        (
            spec(
                RestartPolicy::Never,
                &[("sim.localfargate.io/exit-code.a", "one")],
                vec![container("a")],
            ),
            "invalid sandbox spec for pod default/p1: annotation sim.localfargate.io/exit-code.a: \
             \"one\" is not an exit code (an integer such as 0 or 1)",
        ),
        (
            spec(
                RestartPolicy::Never,
                &[("sim.localfargate.io/exit-code.b", "1")],
                vec![container("a")],
            ),
            "invalid sandbox spec for pod default/p1: annotation sim.localfargate.io/exit-code.b: \
             the pod has no container named \"b\"",
        ),
        (
            spec(
                RestartPolicy::Never,
                &[("sim.localfargate.io/exitcode", "1")],
                vec![container("a")],
            ),
            "unknown annotation sim.localfargate.io/exitcode",
        ),
        (
            spec(
                RestartPolicy::Never,
                &[],
                vec![container("a"), container("a")],
            ),
            "two containers are named \"a\"",
        ),
        (
            spec(RestartPolicy::Never, &[], vec![init("a")]),
            "the pod has no containers",
        ),
    ];
    for (sb, want) in cases {
        let err = rt.create_sandbox(sb).await.unwrap_err();
        assert!(matches!(err, RuntimeError::InvalidSpec { .. }));
        assert!(err.to_string().contains(want), "{err}");
    }
    assert!(rt.list().await.unwrap().is_empty());

    // `forever` overrides the 1s default of a Job's container.
    let id = run(
        &*rt,
        spec(
            RestartPolicy::Never,
            &[("sim.localfargate.io/run-duration", "forever")],
            vec![container("a")],
        ),
    )
    .await;
    sleep(Duration::from_secs(3600)).await;
    assert_eq!(state(&*rt, &id, "a").await, running(0));
}

#[tokio::test(start_paused = true)]
async fn next_transition_drives_an_agent_loop() {
    // An agent that sleeps until the announced transitions sees every state a Job goes through.
    let t0 = tokio::time::Instant::now();
    let rt = runtime();
    let id = run(
        &*rt,
        spec(
            RestartPolicy::OnFailure,
            &[
                ("sim.localfargate.io/start-delay", "1s"),
                ("sim.localfargate.io/exit-code", "1"),
                ("sim.localfargate.io/restart-backoff", "1s"),
            ],
            vec![container("job")],
        ),
    )
    .await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        let st = rt.status(&id).await.unwrap();
        let c = &st.containers[0];
        seen.push((
            c.state.reason().unwrap_or("Running").to_string(),
            c.restart_count,
        ));
        let next = st.next_transition.unwrap();
        tokio::time::sleep_until(t0 + next.duration_since(epoch()).unwrap()).await;
    }
    assert_eq!(
        seen,
        [
            ("ContainerCreating".to_string(), 0),
            ("Running".to_string(), 0),
            ("CrashLoopBackOff".to_string(), 0),
            ("Running".to_string(), 1),
            ("CrashLoopBackOff".to_string(), 1),
            ("Running".to_string(), 2),
        ]
    );
}
