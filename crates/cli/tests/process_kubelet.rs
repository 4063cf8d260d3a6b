//! End-to-end, with real kubectl on `localfargate up --runtime process`: what the kubelet does
//! that a kubectl user sees, on pods that really run. `logs -f` as lines appear and its end
//! with the container or the pod; `logs -c` and `--limit-bytes` on a two-container pod and the
//! API's error without a container; deletion (preStop, SIGTERM, the grace period, SIGKILL); a
//! ConfigMap volume that does not exist yet; startup probes; the pod's conditions and events;
//! what the containers of a pod share; a missing binary's `RunContainerError`; environment and
//! volume kinds resolved into a real container; runc's masked and read-only paths; and a
//! terminal's resize through `kubectl exec -it`.
//!
//! Needs root, runc, busybox-static, docker-registry and skopeo (`scripts/test` installs them
//! when it runs as root); skipped with the reason otherwise.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::process_cluster::{Cluster, KUBECTL, busybox_layout, load, text};
use serde_json::Value;

const IMAGE: &str = "localfargate.test/busybox:1";

/// `kubectl ARGS` running, its stdout's lines arriving on a channel as they are printed.
fn spawn_lines(c: &Cluster, args: &[&str]) -> (Child, Receiver<String>) {
    let mut child = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Lines from `rx` until one satisfies `until` (included), or the stream ends when `until` is
/// `None`; fails after `limit`.
fn read_lines(
    rx: &Receiver<String>,
    limit: Duration,
    until: Option<&dyn Fn(&str) -> bool>,
) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = until.is_some_and(|f| f(&line));
                lines.push(line);
                if done {
                    return lines;
                }
            }
            Err(RecvTimeoutError::Disconnected) if until.is_none() => return lines,
            Err(e) => panic!("{e:?} while reading lines; so far: {lines:?}"),
        }
    }
}

/// Waits (at most 30 s) for a spawned kubectl to end; its exit status.
fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("kubectl did not end");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The pod condition of type `kind`: (status, reason, message).
fn condition(p: &Value, kind: &str) -> (String, String, String) {
    let c = p["status"]["conditions"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["type"] == kind))
        .cloned()
        .unwrap_or(Value::Null);
    let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
    (s("status"), s("reason"), s("message"))
}

fn has_event(c: &Cluster, pod: &str, reason: &str, message: impl Fn(&str) -> bool) -> bool {
    c.events("default", pod)
        .iter()
        .any(|(r, m)| r == reason && message(m))
}

/// How many times the kubelet reported an event: the `count`s of those of `pod` with `reason`
/// whose message starts with `prefix` (repeats are counted on one Event, not duplicated).
fn event_count(c: &Cluster, pod: &str, reason: &str, prefix: &str) -> u64 {
    let selector = format!("involvedObject.name={pod},reason={reason}");
    let list: Value = serde_json::from_str(&c.ok(&[
        "get",
        "events",
        "--field-selector",
        &selector,
        "-o",
        "json",
    ]))
    .unwrap();
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["message"].as_str().unwrap_or("").starts_with(prefix))
        .map(|e| e["count"].as_u64().unwrap_or(1))
        .sum()
}

fn container(p: &Value, name: &str) -> Value {
    p["status"]["containerStatuses"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn what_the_kubelet_does_as_kubectl_users_see_it() {
    skip_unless_able!();
    let work = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(work.path(), IMAGE, &["sh"]);
    let c = Cluster::new(&[], |data| load(data, &busybox));
    // Pods go within a second when the cluster does, unless they say otherwise.
    let pod = |name: &str, spec: &str| {
        let grace = if spec.contains("terminationGracePeriodSeconds") {
            ""
        } else {
            "  terminationGracePeriodSeconds: 1\n"
        };
        format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{grace}{}",
            spec.replace("IMAGE", IMAGE)
        )
    };
    let run = |command: &str| {
        format!(
            "  - name: app\n    image: IMAGE\n    imagePullPolicy: Never\n    command: [sh, -c, '{command}']\n"
        )
    };
    let mut all = String::new();
    // Ticks until told to stop, for `logs -f`.
    all += &pod(
        "ticker",
        &format!(
            "  restartPolicy: Never\n  containers:\n{}",
            run(
                "i=0; while [ ! -f /tmp/stop ]; do i=$((i+1)); echo tick $i; sleep 0.2; done; echo bye"
            )
        ),
    );
    // Two containers: an httpd the sidecar reaches on 127.0.0.1.
    all += &pod(
        "duo",
        concat!(
            "  containers:\n",
            "  - name: a\n    image: IMAGE\n    imagePullPolicy: Never\n",
            "    command: [sh, -c, 'echo I am a; mkdir -p /www; echo hello from a > /www/index.html; exec httpd -f -p 8080 -h /www']\n",
            "  - name: b\n    image: IMAGE\n    imagePullPolicy: Never\n",
            "    command: [sh, -c, 'echo I am b; exec sleep 3600']\n",
        ),
    );
    // Deletion: a preStop hook that writes to the container's log, a TERM trap that ends it.
    all += &pod(
        "graceful",
        &format!(
            "  terminationGracePeriodSeconds: 30\n  containers:\n{}{}",
            run("trap \"echo term; exit 0\" TERM; echo started; while true; do sleep 0.1; done"),
            "    lifecycle: {preStop: {exec: {command: [sh, -c, 'echo prestop > /proc/1/fd/1']}}}\n"
        ),
    );
    // A container that outlives its TERM: killed when the grace period ends.
    all += &pod(
        "stubborn",
        &format!(
            "  containers:\n{}",
            run("trap \"echo ignoring term\" TERM; echo started; while true; do sleep 0.1; done")
        ),
    );
    // A ConfigMap volume whose ConfigMap comes later.
    all += &pod(
        "mounty",
        &format!(
            "  volumes: [{{name: cfg, configMap: {{name: later}}}}]\n  containers:\n{}{}",
            run("exec sleep 3600"),
            "    volumeMounts: [{name: cfg, mountPath: /etc/later}]\n"
        ),
    );
    // Liveness and readiness wait for the startup probe, which waits for a file.
    all += &pod(
        "slowstart",
        &format!(
            "  containers:\n{}{}",
            run("exec sleep 3600"),
            concat!(
                "    startupProbe: {exec: {command: [test, -f, /tmp/started]}, periodSeconds: 1, failureThreshold: 600}\n",
                "    livenessProbe: {exec: {command: [test, -f, /tmp/started]}, periodSeconds: 1, failureThreshold: 1}\n",
                "    readinessProbe: {exec: {command: [test, -f, /tmp/started]}, periodSeconds: 1}\n",
            )
        ),
    );
    // A startup probe that never passes.
    all += &pod(
        "neverstarts",
        &format!(
            "  containers:\n{}{}",
            run("exec sleep 3600"),
            "    startupProbe: {exec: {command: ['false']}, periodSeconds: 1, failureThreshold: 2}\n"
        ),
    );
    // An init container that waits to be told to finish.
    all += &pod(
        "inited",
        &format!(
            "  initContainers:\n  - name: init\n    image: IMAGE\n    imagePullPolicy: Never\n    command: [sh, -c, 'until [ -f /tmp/go ]; do sleep 0.1; done']\n  containers:\n{}",
            run("exec sleep 3600")
        ),
    );
    // A crash loop, and a binary that is not there.
    all += &pod(
        "loops",
        &format!("  containers:\n{}", run("echo run; exit 1")),
    );
    all += &pod(
        "nobin",
        "  containers:\n  - name: app\n    image: IMAGE\n    imagePullPolicy: Never\n    command: [/no/such/binary]\n",
    );
    // Every kind of environment and a Secret volume, for real.
    all += concat!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {password: hunter2}\n",
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {A: '1', B: two}\n",
    );
    all += &pod(
        "envy",
        concat!(
            "  volumes: [{name: secret, secret: {secretName: creds, defaultMode: 0400}}]\n",
            "  containers:\n  - name: app\n    image: IMAGE\n    imagePullPolicy: Never\n",
            "    command: [sh, -c, 'exec sleep 3600']\n",
            "    workingDir: /srv/app\n",
            "    resources: {limits: {memory: 64Mi}, requests: {memory: 64Mi}}\n",
            "    volumeMounts: [{name: secret, mountPath: /etc/creds, readOnly: true}]\n",
            "    envFrom: [{prefix: CFG_, configMapRef: {name: settings}}]\n",
            "    env:\n",
            "    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}\n",
            "    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n",
            "    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}\n",
            "    - {name: MEMORY_MI, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}\n",
        ),
    );
    c.apply(&all);

    // 1. `logs -f` reads the ticks as they come, and ends with the container.
    c.eventually("ticker's first tick", Duration::from_secs(90), || {
        c.kubectl(&["logs", "ticker"])
            .stdout
            .starts_with(b"tick 1\n")
    });
    let (mut follow, lines) = spawn_lines(&c, &["logs", "-f", "ticker"]);
    let seen = read_lines(
        &lines,
        Duration::from_secs(30),
        Some(&|l: &str| l == "tick 3"),
    );
    // The container is still running: these lines came while it printed them.
    assert_eq!(c.pod("default", "ticker")["status"]["phase"], "Running");
    c.ok(&["exec", "ticker", "--", "touch", "/tmp/stop"]);
    let rest = read_lines(&lines, Duration::from_secs(30), None);
    assert!(wait_exit(&mut follow).success());
    let all_lines: Vec<String> = seen.into_iter().chain(rest).collect();
    let (last, ticks) = all_lines.split_last().unwrap();
    assert_eq!(last, "bye", "{all_lines:?}");
    for (i, t) in ticks.iter().enumerate() {
        assert_eq!(*t, format!("tick {}", i + 1), "{all_lines:?}");
    }
    assert_eq!(
        c.wait_phase("default", "ticker", &["Succeeded", "Failed"])["status"]["phase"],
        "Succeeded"
    );

    // 2. Two containers: `-c`, kubectl's default, the API's error without one, --limit-bytes.
    c.eventually("both containers' logs", Duration::from_secs(60), || {
        c.kubectl(&["logs", "duo", "-c", "b"]).stdout == b"I am b\n"
    });
    assert_eq!(c.ok(&["logs", "duo", "-c", "a"]), "I am a\n");
    let defaulted = c.kubectl(&["logs", "duo"]);
    assert_eq!(String::from_utf8_lossy(&defaulted.stdout), "I am a\n");
    assert!(
        String::from_utf8_lossy(&defaulted.stderr)
            .contains("Defaulted container \"a\" out of: a, b"),
        "{}",
        text(&defaulted)
    );
    let raw = c.kubectl(&["get", "--raw", "/api/v1/namespaces/default/pods/duo/log"]);
    assert!(!raw.status.success());
    assert!(
        text(&raw).contains("a container name must be specified for pod duo, choose one of: [a b]"),
        "{}",
        text(&raw)
    );
    let nosuch = c.kubectl(&["logs", "duo", "-c", "c"]);
    assert!(
        text(&nosuch).contains("container c is not valid for pod duo"),
        "{}",
        text(&nosuch)
    );
    assert_eq!(
        c.ok(&["logs", "duo", "-c", "b", "--limit-bytes", "4"]),
        "I am"
    );

    // 7. What the containers of a pod share: the network (the sidecar reaches the app on
    // 127.0.0.1), IPC and UTS namespaces; each has its own mount namespace.
    c.eventually(
        "the sidecar to reach httpd",
        Duration::from_secs(30),
        || {
            let out = c.kubectl(&[
                "exec",
                "duo",
                "-c",
                "b",
                "--",
                "sh",
                "-c",
                "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 127.0.0.1 8080",
            ]);
            String::from_utf8_lossy(&out.stdout).ends_with("\r\n\r\nhello from a\n")
        },
    );
    let namespaces = |name: &str| {
        c.ok(&[
            "exec",
            "duo",
            "-c",
            name,
            "--",
            "stat",
            "-c",
            "%N",
            "/proc/self/ns/net",
            "/proc/self/ns/ipc",
            "/proc/self/ns/uts",
            "/proc/self/ns/mnt",
        ])
        .lines()
        .map(str::to_string)
        .collect::<Vec<_>>()
    };
    let (a, b) = (namespaces("a"), namespaces("b"));
    assert_eq!(a.len(), 4, "{a:?}");
    assert_eq!(a[..3], b[..3], "net, ipc and uts are the pod's");
    assert_ne!(a[3], b[3], "each container has its own mount namespace");
    assert_eq!(c.ok(&["exec", "duo", "-c", "b", "--", "hostname"]), "duo\n");

    // 3. Deletion: the preStop hook runs, then SIGTERM; `logs -f` sees both and ends.
    c.eventually("graceful to start", Duration::from_secs(60), || {
        c.kubectl(&["logs", "graceful"]).stdout == b"started\n"
    });
    let (mut follow, lines) = spawn_lines(&c, &["logs", "-f", "graceful"]);
    read_lines(
        &lines,
        Duration::from_secs(30),
        Some(&|l: &str| l == "started"),
    );
    c.ok(&["delete", "pod", "graceful", "--wait=false"]);
    let rest = read_lines(&lines, Duration::from_secs(60), None);
    assert_eq!(rest, ["prestop", "term"], "the hook runs before the TERM");
    assert!(wait_exit(&mut follow).success());
    c.eventually("the Killing event", Duration::from_secs(30), || {
        has_event(&c, "graceful", "Killing", |m| m == "Stopping container app")
    });
    c.eventually("graceful to go", Duration::from_secs(60), || {
        !c.kubectl(&["get", "pod", "graceful"]).status.success()
    });

    // A container that survives its TERM is killed when the grace period ends, not before.
    c.eventually("stubborn to start", Duration::from_secs(60), || {
        c.kubectl(&["logs", "stubborn"]).stdout == b"started\n"
    });
    c.ok(&[
        "delete",
        "pod",
        "stubborn",
        "--grace-period=5",
        "--wait=false",
    ]);
    c.eventually("stubborn to get its TERM", Duration::from_secs(30), || {
        c.kubectl(&["logs", "stubborn"]).stdout == b"started\nignoring term\n"
    });
    // The TERM did not end it: it still runs, its pod terminating, until the KILL.
    let p = c.pod("default", "stubborn");
    assert!(p["metadata"]["deletionTimestamp"].is_string(), "{p:#}");
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 5);
    c.ok(&["exec", "stubborn", "--", "true"]);
    c.eventually("stubborn to be killed", Duration::from_secs(60), || {
        !c.kubectl(&["get", "pod", "stubborn"]).status.success()
    });

    // 4. A ConfigMap volume that does not exist: ContainerCreating with FailedMount, until it
    // does.
    c.eventually("FailedMount", Duration::from_secs(60), || {
        has_event(&c, "mounty", "FailedMount", |m| {
            m == "MountVolume.SetUp failed for volume \"cfg\" : configmap \"later\" not found"
        })
    });
    let p = c.pod("default", "mounty");
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(
        container(&p, "app")["state"]["waiting"]["reason"],
        "ContainerCreating",
        "{p:#}"
    );
    assert_eq!(
        condition(&p, "PodReadyToStartContainers").0,
        "False",
        "{p:#}"
    );
    assert_eq!(
        condition(&p, "Ready"),
        (
            "False".into(),
            "ContainersNotReady".into(),
            "containers with unready status: [app]".into()
        ),
        "{p:#}"
    );
    c.ok(&["create", "configmap", "later", "--from-literal=key=value"]);
    c.wait_ready("default", "mounty");
    assert_eq!(
        c.ok(&["exec", "mounty", "--", "cat", "/etc/later/key"]),
        "value"
    );

    // 5. The startup probe holds liveness and readiness off until it passes.
    c.eventually(
        "slowstart's startup probe to fail a few times",
        Duration::from_secs(60),
        || event_count(&c, "slowstart", "Unhealthy", "Startup probe failed") >= 3,
    );
    let p = c.pod("default", "slowstart");
    let app = container(&p, "app");
    assert_eq!(app["started"], false, "{app:#}");
    assert_eq!(app["ready"], false, "{app:#}");
    assert_eq!(
        app["restartCount"], 0,
        "liveness waits for the startup probe"
    );
    assert!(
        !has_event(&c, "slowstart", "Unhealthy", |m| m
            .starts_with("Liveness probe failed")
            || m.starts_with("Readiness probe failed")),
        "{:?}",
        c.events("default", "slowstart")
    );
    c.ok(&["exec", "slowstart", "--", "touch", "/tmp/started"]);
    let p = c.wait_ready("default", "slowstart");
    let app = container(&p, "app");
    assert_eq!(app["started"], true, "{app:#}");
    assert_eq!(app["restartCount"], 0, "{app:#}");
    // A startup probe that fails its threshold restarts the container.
    c.eventually("neverstarts to restart", Duration::from_secs(60), || {
        container(&c.pod("default", "neverstarts"), "app")["restartCount"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    });
    assert!(
        has_event(&c, "neverstarts", "Killing", |m| {
            m == "Container app failed startup probe, will be restarted"
        }),
        "{:?}",
        c.events("default", "neverstarts")
    );

    // 6. Conditions as the kubelet writes them, while an init container runs and after.
    c.eventually("init to run", Duration::from_secs(60), || {
        let p = c.pod("default", "inited");
        p["status"]["initContainerStatuses"][0]["state"]["running"].is_object()
    });
    let p = c.pod("default", "inited");
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(
        condition(&p, "PodReadyToStartContainers").0,
        "True",
        "{p:#}"
    );
    assert_eq!(
        condition(&p, "Initialized"),
        (
            "False".into(),
            "ContainersNotInitialized".into(),
            "containers with incomplete status: [init]".into()
        ),
        "{p:#}"
    );
    let unready = (
        "False".to_string(),
        "ContainersNotReady".to_string(),
        "containers with unready status: [app]".to_string(),
    );
    assert_eq!(condition(&p, "ContainersReady"), unready, "{p:#}");
    assert_eq!(condition(&p, "Ready"), unready, "{p:#}");
    assert_eq!(condition(&p, "PodScheduled").0, "True", "{p:#}");
    assert_eq!(
        container(&p, "app")["state"]["waiting"]["reason"],
        "PodInitializing"
    );
    c.ok(&["exec", "inited", "-c", "init", "--", "touch", "/tmp/go"]);
    let p = c.wait_ready("default", "inited");
    for kind in [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
    ] {
        assert_eq!(
            condition(&p, kind),
            ("True".into(), String::new(), String::new()),
            "{kind}: {p:#}"
        );
    }
    let init = &p["status"]["initContainerStatuses"][0];
    assert_eq!(init["state"]["terminated"]["reason"], "Completed", "{p:#}");
    for name in ["init", "app"] {
        assert!(has_event(&c, "inited", "Created", |m| m
            == format!("Created container {name}")));
        assert!(has_event(&c, "inited", "Started", |m| m
            == format!("Started container {name}")));
    }
    // A crash loop's BackOff event names the pod as the kubelet does.
    let uid = c.pod("default", "loops")["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let backoff = format!("Back-off restarting failed container app in pod loops_default({uid})");
    c.eventually("loops' BackOff event", Duration::from_secs(60), || {
        has_event(&c, "loops", "BackOff", |m| m == backoff)
    });
    let p = c.pod("default", "loops");
    assert_eq!(condition(&p, "Ready").1, "ContainersNotReady", "{p:#}");

    // 8. A binary that is not there: RunContainerError with runc's message, and restarts.
    c.eventually("RunContainerError", Duration::from_secs(60), || {
        let app = container(&c.pod("default", "nobin"), "app");
        app["state"]["waiting"]["reason"] == "RunContainerError"
    });
    let app = container(&c.pod("default", "nobin"), "app");
    let message = app["state"]["waiting"]["message"].as_str().unwrap_or("");
    assert!(
        message
            .contains("exec: \"/no/such/binary\": stat /no/such/binary: no such file or directory"),
        "{app:#}"
    );
    c.eventually("nobin to restart", Duration::from_secs(60), || {
        container(&c.pod("default", "nobin"), "app")["restartCount"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    });
    let app = container(&c.pod("default", "nobin"), "app");
    let last = &app["lastState"]["terminated"];
    assert_eq!(last["reason"], "StartError", "{app:#}");
    assert_eq!(last["exitCode"], 128, "{app:#}");

    // 9. Environment and volumes resolved into a real container.
    let p = c.wait_ready("default", "envy");
    let ip = p["status"]["podIP"].as_str().unwrap().to_string();
    let env = c.ok(&["exec", "envy", "--", "env"]);
    let var = |name: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} not in {env}"))
            .to_string()
    };
    assert_eq!(var("PASSWORD"), "hunter2");
    assert_eq!(var("POD_NAME"), "envy");
    assert_eq!(var("POD_IP"), ip);
    assert_eq!(var("MEMORY_MI"), "64");
    assert_eq!(var("CFG_A"), "1");
    assert_eq!(var("CFG_B"), "two");
    assert_eq!(
        c.ok(&["exec", "envy", "--", "sh", "-c", "pwd"]),
        "/srv/app\n"
    );
    assert_eq!(
        c.ok(&["exec", "envy", "--", "cat", "/etc/creds/password"]),
        "hunter2"
    );
    assert_eq!(
        c.ok(&[
            "exec",
            "envy",
            "--",
            "stat",
            "-L",
            "-c",
            "%a",
            "/etc/creds/password"
        ]),
        "400\n"
    );

    // 10. runc's defaults: masked paths read as nothing, read-only paths refuse writes.
    let kcore = c.kubectl(&["exec", "envy", "--", "cat", "/proc/kcore"]);
    assert!(kcore.stdout.is_empty(), "{}", text(&kcore));
    let sysctl = c.kubectl(&[
        "exec",
        "envy",
        "--",
        "sh",
        "-c",
        "echo 1 > /proc/sys/kernel/domainname",
    ]);
    assert!(!sysctl.status.success());
    assert!(
        text(&sysctl).contains("Read-only file system"),
        "{}",
        text(&sysctl)
    );

    // 11. `kubectl exec -it`: kubectl's terminal size reaches the container's, and so does a
    // resize. The terminal is `script`'s. The container's terminal takes kubectl's size once
    // its first resize message arrives (as with containerd, the process may start before), so
    // the container waits for 24x80, says so, then for the resize the test makes.
    let kubectl = format!("{KUBECTL} --kubeconfig {}", c.kubeconfig.display());
    let inner = concat!(
        "wait_for() { i=0; until [ \"$(stty size 2>/dev/null)\" = \"$1\" ]; do ",
        "i=$((i+1)); [ $i -lt 1200 ] || exit 1; sleep 0.1; done; }; ",
        "wait_for \"24 80\"; echo sized to 24 80; touch /tmp/tty-up; ",
        "wait_for \"40 120\"; echo resized to 40 120",
    );
    let outer = format!(
        "stty cols 80 rows 24; \
         (until {kubectl} exec envy -- test -f /tmp/tty-up > /dev/null 2>&1; do sleep 0.2; done; \
         stty cols 120 rows 40 < /dev/tty) & \
         {kubectl} exec -it envy -- sh -c '{inner}'"
    );
    let tty = Command::new("script")
        .args(["-qec", &outer, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(tty.status.success(), "{}", text(&tty));
    let shown = String::from_utf8_lossy(&tty.stdout).replace('\r', "");
    assert!(
        shown.contains("sized to 24 80\nresized to 40 120\n"),
        "{}",
        text(&tty)
    );
}
