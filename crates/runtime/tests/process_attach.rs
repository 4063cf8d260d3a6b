//! `attach` on the process runtime beyond the shared contract: a container's stdin (kept open
//! by its shim, closed by `stdinOnce`), detaching and attaching again, and a container with a
//! terminal and its resizes. Root only (skipped with the reason otherwise).

mod support;

use std::time::Duration;

use localfargate_runtime::{
    AttachRequest, ContainerSpec, ContainerState, RestartPolicy, SandboxId, SandboxRuntime,
    TerminalSize,
};
use support::*;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

macro_rules! skip_unless_able {
    () => {
        if let Some(why) = process_skip_reason() {
            eprintln!("skipped: the process runtime cannot run here: {why}");
            return;
        }
    };
}

/// A client attached in the background: what it types, what it reads, its terminal.
struct Client {
    stdin: Option<mpsc::Sender<Vec<u8>>>,
    resize: mpsc::Sender<TerminalSize>,
    stdout: mpsc::Receiver<Vec<u8>>,
    seen: String,
    session: JoinHandle<Result<(), localfargate_runtime::RuntimeError>>,
}

impl Client {
    fn attach(rt: &ProcessBackend, id: &SandboxId, container: &str) -> Client {
        let (stdin, stdin_rx) = mpsc::channel(16);
        let (resize, resize_rx) = mpsc::channel(4);
        let (out, stdout) = mpsc::channel(256);
        let (err, _) = mpsc::channel(1);
        let rt = rt.rt.clone();
        let (id, container) = (id.clone(), container.to_string());
        let session = tokio::spawn(async move {
            rt.attach(
                &id,
                &container,
                AttachRequest {
                    stdin: Some(stdin_rx),
                    stdout: out,
                    stderr: err,
                    resize: Some(resize_rx),
                },
            )
            .await
        });
        Client {
            stdin: Some(stdin),
            resize,
            stdout,
            seen: String::new(),
            session,
        }
    }

    async fn type_in(&self, text: &str) {
        let stdin = self.stdin.as_ref().expect("stdin open");
        stdin.send(text.as_bytes().to_vec()).await.expect("typing");
    }

    /// Reads output until it contains `text` (at most 30 s).
    async fn read_until(&mut self, text: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !self.seen.contains(text) {
            match tokio::time::timeout_at(deadline, self.stdout.recv()).await {
                Ok(Some(chunk)) => self.seen.push_str(&String::from_utf8_lossy(&chunk)),
                _ => panic!("no {text:?} in the output: {:?}", self.seen),
            }
        }
    }

    /// Waits for the session to return.
    async fn ended(self) {
        tokio::time::timeout(Duration::from_secs(30), self.session)
            .await
            .expect("the attach session to end")
            .expect("attach task")
            .expect("attach");
    }
}

fn with_stdin(mut c: ContainerSpec, once: bool, tty: bool) -> ContainerSpec {
    c.stdin = true;
    c.stdin_once = once;
    c.tty = tty;
    c
}

/// Creates the pod, starts its containers and waits for `names` to run.
async fn running(
    rt: &ProcessBackend,
    spec: localfargate_runtime::SandboxSpec,
    names: &[&str],
) -> SandboxId {
    let all: Vec<String> = spec.containers.iter().map(|c| c.name.clone()).collect();
    let id = rt.rt.create_sandbox(spec).await.expect("create");
    for n in &all {
        rt.rt.start_container(&id, n).await.expect("start");
    }
    let runs = |s: &localfargate_runtime::SandboxStatus, n: &str| {
        matches!(container(s, n).state, ContainerState::Running { .. })
    };
    let s = wait_for(&rt.rt, &id, Duration::from_secs(60), |s| {
        names.iter().all(|n| runs(s, n))
    })
    .await;
    assert!(names.iter().all(|n| runs(&s, n)), "{s:#?}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_reaches_the_process_detach_and_stdin_once() {
    skip_unless_able!();
    let rt = ProcessBackend::new().await;
    let echo = "while read l; do echo \"got $l\"; done; echo stdin closed";
    let mut spec = pod_in_subnet(
        "attach1",
        31,
        vec![
            with_stdin(sh("kept", echo), false, false),
            with_stdin(sh("once", echo), true, false),
            sh("none", echo),
        ],
    );
    spec.restart_policy = RestartPolicy::Never;
    let id = running(&rt, spec, &["kept", "once"]).await;

    // The end of the client's stdin detaches; the container's stdin stays open for the next.
    let mut first = Client::attach(&rt, &id, "kept");
    first.type_in("one\n").await;
    first.read_until("got one\n").await;
    first.stdin.take();
    first.ended().await;
    let mut second = Client::attach(&rt, &id, "kept");
    second.type_in("two\n").await;
    second.read_until("got two\n").await;
    assert!(!second.seen.contains("one"), "{:?}", second.seen);

    // With stdinOnce the end of the client's stdin closes the container's: it finishes, and
    // the session ends with it.
    let mut once = Client::attach(&rt, &id, "once");
    once.type_in("x\n").await;
    once.read_until("got x\n").await;
    once.stdin.take();
    once.read_until("stdin closed\n").await;
    once.ended().await;
    let s = wait_for(&rt.rt, &id, Duration::from_secs(30), |s| {
        is_terminated(container(s, "once"))
    })
    .await;
    match &container(&s, "once").state {
        ContainerState::Terminated { exit_code, .. } => assert_eq!(*exit_code, 0),
        other => panic!("{other:?}"),
    }

    // A container without stdin has /dev/null there: it finished at once.
    let s = wait_for(&rt.rt, &id, Duration::from_secs(30), |s| {
        is_terminated(container(s, "none"))
    })
    .await;
    assert!(is_terminated(container(&s, "none")), "{s:#?}");
    let log = read_all(
        rt.rt
            .logs(&id, "none", Default::default())
            .await
            .expect("logs"),
    )
    .await;
    assert_eq!(log, "stdin closed\n");
    drop(second);
    rt.rt.remove(&id).await.expect("remove");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_container_is_attached_with_resizes() {
    skip_unless_able!();
    let rt = ProcessBackend::new().await;
    let mut c = with_stdin(sh("shell", "exec sh"), true, true);
    c.command = vec!["sh".into()];
    let mut spec = pod_in_subnet("attach2", 32, vec![c]);
    spec.restart_policy = RestartPolicy::Never;
    let id = running(&rt, spec, &["shell"]).await;
    let mut client = Client::attach(&rt, &id, "shell");
    client
        .resize
        .send(TerminalSize {
            width: 123,
            height: 45,
        })
        .await
        .expect("resize");
    client.type_in("tty; stty size\n").await;
    client.read_until("45 123").await;
    assert!(client.seen.contains("/dev/pts/"), "{:?}", client.seen);
    client.type_in("exit 4\n").await;
    client.ended().await;
    let s = wait_for(&rt.rt, &id, Duration::from_secs(30), |s| {
        is_terminated(container(s, "shell"))
    })
    .await;
    match &container(&s, "shell").state {
        ContainerState::Terminated { exit_code, .. } => assert_eq!(*exit_code, 4),
        other => panic!("{other:?}"),
    }
    // What the terminal showed is the container's log, on stdout.
    let log = read_all(
        rt.rt
            .logs(&id, "shell", Default::default())
            .await
            .expect("logs"),
    )
    .await;
    assert!(log.contains("45 123"), "{log:?}");
    rt.rt.remove(&id).await.expect("remove");
}
