//! End-to-end: `kubectl exec` over SPDY/3.1 from kubectl 1.27, 1.28 and 1.29 (plain, `-i`,
//! `-it`, exit codes, `kubectl cp`), and `kubectl attach` over SPDY (1.29) and WebSocket (1.31):
//! to a container writing periodically, `-i` to a `stdin: true` container, `-it` to a
//! `tty: true` one. `localfargate up --runtime process` with busybox loaded by
//! `localfargate image load`.
//!
//! Needs root, runc, busybox-static and the kubectl versions (`scripts/test` installs them when
//! it runs as root); skipped with the reason otherwise.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::process_cluster::{busybox_layout, load, text};

const KUBECTL_DIR: &str = "/usr/lib/google-cloud-sdk/bin";
/// The SPDY versions, and a WebSocket one for attach.
const SPDY_VERSIONS: [&str; 3] = ["1.27", "1.28", "1.29"];
const WEBSOCKET_VERSION: &str = "1.31";

fn kubectl_path(version: &str) -> PathBuf {
    Path::new(KUBECTL_DIR).join(format!("kubectl.{version}"))
}

/// What the shared process cluster needs, and `script` and every kubectl version used here.
fn skip_reason() -> Option<String> {
    if let Some(why) = common::process_cluster::skip_reason() {
        return Some(why);
    }
    let script = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("script").is_file()));
    if !script {
        return Some("script is not installed".into());
    }
    SPDY_VERSIONS
        .iter()
        .chain([&WEBSOCKET_VERSION])
        .map(|v| kubectl_path(v))
        .find(|k| !k.exists())
        .map(|k| format!("{} is not installed", k.display()))
}

/// The shared process cluster, driven with a chosen kubectl version.
struct Cluster {
    inner: common::process_cluster::Cluster,
}

impl Cluster {
    fn new() -> Cluster {
        let work = tempfile::tempdir().unwrap();
        let busybox = busybox_layout(work.path(), "localfargate.test/busybox:1", &["sh"]);
        let inner = common::process_cluster::Cluster::new(&[], |data| load(data, &busybox));
        Cluster { inner }
    }

    fn command(&self, version: &str) -> Command {
        let mut cmd = Command::new(kubectl_path(version));
        cmd.arg("--kubeconfig").arg(&self.inner.kubeconfig);
        cmd
    }

    fn kubectl(&self, version: &str, args: &[&str]) -> Output {
        self.command(version).args(args).output().unwrap()
    }

    fn ok(&self, version: &str, args: &[&str]) -> String {
        let out = self.kubectl(version, args);
        assert!(
            out.status.success(),
            "kubectl {version} {args:?}: {}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn with_stdin(&self, version: &str, args: &[&str], input: &[u8]) -> Output {
        common::output_with_stdin(self.command(version).args(args), input)
    }

    /// `kubectl ARGS` in a terminal (`script`), with `input` typed once `ready` shows; what
    /// the terminal showed and the exit code.
    fn in_terminal(&self, version: &str, args: &str, steps: &[(&str, &[u8])]) -> (String, i32) {
        let line = format!(
            "{} --kubeconfig {} {args}",
            kubectl_path(version).display(),
            self.inner.kubeconfig.display()
        );
        let mut session = Interactive::spawn(
            Command::new("script")
                .arg("-qefc")
                .arg(line)
                .arg("/dev/null")
                .env("COLUMNS", "101")
                .env("LINES", "31"),
        );
        for (ready, input) in steps {
            session.read_until(ready);
            session.type_in(input);
        }
        session.finish()
    }

    fn wait_running(&self, pod: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let out = self.kubectl(
                "1.29",
                &[
                    "get",
                    "pod",
                    pod,
                    "-o",
                    "jsonpath={.status.containerStatuses[0].state.running.startedAt}",
                ],
            );
            if out.status.success() && !out.stdout.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "pod {pod} did not run");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A client process whose stdout is read in the background while the test types.
struct Interactive {
    child: Child,
    lines: mpsc::Receiver<Vec<u8>>,
    seen: String,
}

impl Interactive {
    fn spawn(command: &mut Command) -> Interactive {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Interactive {
            child,
            lines,
            seen: String::new(),
        }
    }

    fn read_until(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.seen.contains(text) {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(chunk) => self.seen.push_str(&String::from_utf8_lossy(&chunk)),
                Err(_) => {
                    let _ = self.child.kill();
                    let mut err = String::new();
                    if let Some(mut e) = self.child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    panic!("no {text:?} in {:?} (stderr {err:?})", self.seen);
                }
            }
        }
    }

    fn type_in(&mut self, input: &[u8]) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(input).unwrap();
        stdin.flush().unwrap();
    }

    /// Closes stdin and waits (at most 30 s) for the exit: what it wrote, and its code.
    fn finish(mut self) -> (String, i32) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the client did not exit: {:?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(chunk) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        self.seen.push_str(&err);
        (self.seen, status.code().unwrap_or(-1))
    }
}

#[test]
fn exec_over_spdy_and_attach_over_both_transports() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let c = Cluster::new();
    let busybox = "image: localfargate.test/busybox:1\n    imagePullPolicy: Never";
    let applied = c.with_stdin(
        "1.29",
        &["apply", "-f", "-"],
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    {busybox}\n\
             \x20   command: [sh, -c, 'echo started; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done']\n\
             ---\napiVersion: v1\nkind: Pod\nmetadata: {{name: echo}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: echo\n    {busybox}\n    stdin: true\n\
             \x20   command: [sh, -c, 'while read l; do echo \"echo: $l\"; done']\n\
             ---\napiVersion: v1\nkind: Pod\nmetadata: {{name: shell-1.29}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: shell\n    {busybox}\n    stdin: true\n    tty: true\n    command: [sh]\n\
             ---\napiVersion: v1\nkind: Pod\nmetadata: {{name: shell-1.31}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: shell\n    {busybox}\n    stdin: true\n    tty: true\n    command: [sh]\n"
        )
        .as_bytes(),
    );
    assert!(applied.status.success(), "apply: {}", text(&applied));
    for pod in ["web", "echo", "shell-1.29", "shell-1.31"] {
        c.wait_running(pod);
    }

    // exec over SPDY: output, stdin, exit codes, a terminal.
    for v in SPDY_VERSIONS {
        assert_eq!(
            c.ok(v, &["exec", "web", "--", "echo", &format!("hello {v}")]),
            format!("hello {v}\n")
        );
        let failed = c.kubectl(
            v,
            &[
                "exec",
                "web",
                "--",
                "sh",
                "-c",
                "echo out; echo err >&2; exit 3",
            ],
        );
        assert_eq!(failed.status.code(), Some(3), "{v}: {}", text(&failed));
        assert_eq!(String::from_utf8_lossy(&failed.stdout), "out\n");
        let stderr = String::from_utf8_lossy(&failed.stderr);
        assert!(stderr.starts_with("err\n"), "{v}: {stderr}");
        assert!(
            stderr.contains("command terminated with exit code 3"),
            "{v}: {stderr}"
        );
        let piped = c.with_stdin(v, &["exec", "-i", "web", "--", "cat"], b"through stdin\n");
        assert!(piped.status.success(), "{v}: {}", text(&piped));
        assert_eq!(String::from_utf8_lossy(&piped.stdout), "through stdin\n");
        let (shown, code) = c.in_terminal(
            v,
            "exec -it web -- sh -c 'tty; read answer; echo got $answer; exit 4'",
            &[("/dev/pts/", b"yes\r")],
        );
        assert_eq!(code, 4, "{v}: {shown}");
        assert!(shown.contains("got yes"), "{v}: {shown}");
    }
    // `kubectl cp` is tar through exec, both ways.
    let local = c.inner.data.path().join("to-pod.txt");
    std::fs::write(&local, "copied in\n").unwrap();
    c.ok("1.28", &["cp", local.to_str().unwrap(), "web:/tmp/in.txt"]);
    assert_eq!(
        c.ok("1.28", &["exec", "web", "--", "cat", "/tmp/in.txt"]),
        "copied in\n"
    );
    let back = c.inner.data.path().join("from-pod.txt");
    c.ok("1.28", &["cp", "web:/tmp/in.txt", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "copied in\n");

    for v in ["1.29", WEBSOCKET_VERSION] {
        // The output of a running container, from now on.
        let mut attached = Interactive::spawn(c.command(v).args(["attach", "web"]));
        attached.read_until("tick");
        let first: u64 = tick_numbers(&attached.seen)[0];
        attached.read_until(&format!("tick {}\n", first + 3));
        let _ = attached.child.kill();
        let ticks = tick_numbers(&attached.seen);
        assert!(
            first > 1,
            "{v}: attach showed the start: {:?}",
            attached.seen
        );
        assert!(
            ticks.windows(2).all(|w| w[1] == w[0] + 1),
            "{v}: {:?}",
            attached.seen
        );
        assert!(!attached.seen.contains("started"), "{:?}", attached.seen);

        // `-i` to a container with stdin: what is typed reaches it; the end of stdin detaches
        // (no stdinOnce), and the container goes on.
        let mut typed = Interactive::spawn(c.command(v).args(["attach", "-i", "echo"]));
        typed.type_in(format!("hello from {v}\n").as_bytes());
        typed.read_until(&format!("echo: hello from {v}\n"));
        let (out, code) = typed.finish();
        assert_eq!(code, 0, "{v}: {out}");

        // `-it` to a container with a terminal: a shell, until it exits (these kubectl
        // versions have no detach keys); then it restarts, as its policy says.
        let pod = format!("shell-{v}");
        let (shown, code) = c.in_terminal(
            v,
            &format!("attach -it {pod}"),
            &[
                ("If you don't see a command prompt", b"echo $((6 * 7))\r"),
                ("42", b"exit 5\r"),
            ],
        );
        assert_eq!(code, 0, "{v}: {shown}");
        assert!(
            shown.contains(&format!(
                "Session ended, resume using 'kubectl attach {pod} -c shell -i -t' command"
            )),
            "{v}: {shown}"
        );
        // The attach ended with the shell; its pod records how, soon after.
        let exit_code = || {
            c.ok(
                v,
                &[
                    "get",
                    "pod",
                    &pod,
                    "-o",
                    "jsonpath={.status.containerStatuses[0].lastState.terminated.exitCode}",
                ],
            )
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut exit = exit_code();
        while exit.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            exit = exit_code();
        }
        assert_eq!(exit, "5", "{v}");
    }
    // `kubectl run -i --rm`: a pod with stdin and stdinOnce, attached to as soon as it runs;
    // the end of stdin closes the container's, so it finishes, and kubectl deletes it.
    let run = c.with_stdin(
        "1.29",
        &[
            "run",
            "once",
            "--image=localfargate.test/busybox:1",
            "--image-pull-policy=Never",
            "--restart=Never",
            "-i",
            "--rm",
            "--",
            "sh",
            "-c",
            "read x; echo got $x; cat; echo stdin closed",
        ],
        b"hi\nmore\n",
    );
    let shown = text(&run);
    assert!(run.status.success(), "{shown}");
    assert!(shown.contains("got hi\nmore\nstdin closed\n"), "{shown}");
    assert!(shown.contains("pod \"once\" deleted"), "{shown}");
    // Everything typed went to the same process: it kept running across attaches.
    let log = c.ok("1.29", &["logs", "echo"]);
    assert_eq!(log, "echo: hello from 1.29\necho: hello from 1.31\n");
    assert_eq!(
        c.ok(
            "1.29",
            &[
                "get",
                "pod",
                "echo",
                "-o",
                "jsonpath={.status.containerStatuses[0].restartCount}"
            ]
        ),
        "0"
    );
}

fn tick_numbers(text: &str) -> Vec<u64> {
    BufReader::new(text.as_bytes())
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| l.strip_prefix("tick ").and_then(|n| n.trim().parse().ok()))
        .collect()
}
