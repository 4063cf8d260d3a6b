//! End-to-end: pods that really run. `localfargate up --runtime process` with real kubectl,
//! images from Debian's `docker-registry` on 127.0.0.1 (started here) and from
//! `localfargate image load`, each pod in its own sandbox of namespaces and cgroups.
//!
//! Needs root, runc, busybox-static, docker-registry and skopeo (`scripts/test` installs them
//! when it runs as root); skipped with the reason otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Server, localfargate};
use serde_json::Value;

const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.31";

fn skip_reason() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not root".into());
    }
    for tool in ["runc", "skopeo", "docker-registry"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    if !localfargate_runtime::test_images::busybox_available() {
        return Some("/bin/busybox is not installed (busybox-static)".into());
    }
    if !Path::new(KUBECTL).exists() {
        return Some(format!("{KUBECTL} is not installed"));
    }
    None
}

macro_rules! skip_unless_able {
    () => {
        if let Some(why) = skip_reason() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Debian's registry on a free loopback port, with an optional htpasswd file; killed on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    fn start(auth: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = common::free_port();
        let mut config = format!(
            "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
            dir.path().join("data").display()
        );
        if let Some((user, pass)) = auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", text(&out));
            std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
            config.push_str(&format!(
                "auth: {{htpasswd: {{realm: test, path: {}}}}}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        common::wait_listening(port, "docker-registry");
        Registry {
            child,
            port,
            _dir: dir,
        }
    }

    /// Pushes an OCI layout into the registry as `repo:tag`.
    fn push(&self, layout: &Path, tag_in_layout: &str, target: &str, creds: Option<&str>) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--dest-tls-verify=false"]);
        if let Some(c) = creds {
            cmd.args(["--dest-creds", c]);
        }
        let out = cmd
            .arg(format!("oci:{}:{tag_in_layout}", layout.display()))
            .arg(format!("docker://127.0.0.1:{}/{target}", self.port))
            .output()
            .unwrap();
        assert!(out.status.success(), "skopeo: {}", text(&out));
    }
}

/// A cluster on a `--runtime process` server with a Fargate profile for `default` and `jobs`.
struct Cluster {
    server: Option<Server>,
    kubeconfig: PathBuf,
    data: tempfile::TempDir,
    flags: Vec<String>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.delete();
    }
}

fn sandboxes_left(data: &Path) -> usize {
    std::fs::read_dir(data.join("runtime/sandboxes"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn server(data: &Path, flags: &[String]) -> Server {
    let mut args: Vec<&str> = vec!["--runtime", "process", "--data-dir", data.to_str().unwrap()];
    args.extend(flags.iter().map(String::as_str));
    // `up_with` passes --ephemeral; the data directory wins for the process runtime's state.
    common::up_with_store("0.1", &args)
}

impl Cluster {
    fn new(flags: &[String], prepare: impl FnOnce(&Path)) -> Cluster {
        let data = tempfile::tempdir().unwrap();
        prepare(data.path());
        let server = server(data.path(), flags);
        let ok = |out: Output| assert!(out.status.success(), "{}", text(&out));
        ok(localfargate(
            &server,
            &["cluster", "create", "--name", "run"],
        ));
        for (name, ns) in [("fp-default", "default"), ("fp-jobs", "jobs")] {
            ok(localfargate(
                &server,
                &[
                    "profile",
                    "create",
                    "--cluster",
                    "run",
                    "--name",
                    name,
                    "--namespace",
                    ns,
                ],
            ));
        }
        let config = localfargate(&server, &["kubeconfig", "--cluster", "run"]);
        ok(config.clone());
        let kubeconfig = data.path().join("kubeconfig");
        std::fs::write(&kubeconfig, &config.stdout).unwrap();
        let c = Cluster {
            server: Some(server),
            kubeconfig,
            data,
            flags: flags.to_vec(),
        };
        c.eventually("the default namespace", Duration::from_secs(30), || {
            c.kubectl(&["get", "namespace", "default"]).status.success()
        });
        c
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.status.success(), "kubectl {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn apply(&self, yaml: &str) {
        let out = common::output_with_stdin(
            Command::new(KUBECTL)
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["apply", "-f", "-"]),
            yaml.as_bytes(),
        );
        assert!(out.status.success(), "apply: {}", text(&out));
    }

    fn pod(&self, ns: &str, name: &str) -> Value {
        serde_json::from_str(&self.ok(&["get", "pod", "-n", ns, name, "-o", "json"])).unwrap()
    }

    fn eventually(&self, what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_phase(&self, ns: &str, name: &str, phases: &[&str]) -> Value {
        let mut last = Value::Null;
        self.eventually(
            &format!("pod {ns}/{name} in {phases:?}"),
            Duration::from_secs(90),
            || {
                last = self.pod(ns, name);
                phases.contains(&last["status"]["phase"].as_str().unwrap_or(""))
            },
        );
        last
    }

    fn wait_ready(&self, ns: &str, name: &str) -> Value {
        let mut last = Value::Null;
        self.eventually(
            &format!("pod {ns}/{name} Ready"),
            Duration::from_secs(90),
            || {
                last = self.pod(ns, name);
                last["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            },
        );
        last
    }

    fn events(&self, ns: &str, pod: &str) -> Vec<(String, String)> {
        let selector = format!("involvedObject.name={pod}");
        let list: Value = serde_json::from_str(&self.ok(&[
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            &selector,
            "-o",
            "json",
        ]))
        .unwrap();
        list["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["reason"].as_str().unwrap_or("").to_string(),
                            e["message"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Deletes the profiles, then the cluster (which removes every sandbox), then stops the
    /// server.
    fn delete(&mut self) {
        if let Some(server) = &self.server {
            for p in ["fp-default", "fp-jobs"] {
                let _ = localfargate(
                    server,
                    &[
                        "profile",
                        "delete",
                        "--cluster",
                        "run",
                        "--name",
                        p,
                        "--wait",
                    ],
                );
            }
            let _ = localfargate(server, &["cluster", "delete", "--name", "run", "--wait"]);
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline && sandboxes_left(self.data.path()) > 0 {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        self.server.take();
    }

    /// Kills the server as `kill -9` would and starts another on the same data directory.
    fn crash_and_restart(&mut self) {
        self.server.take();
        let server = server(self.data.path(), &self.flags);
        self.server = Some(server);
        self.eventually("the API after a restart", Duration::from_secs(30), || {
            self.kubectl(&["get", "namespace", "default"])
                .status
                .success()
        });
    }
}

/// The busybox image as an OCI layout, tagged `tag`.
fn busybox_layout(dir: &Path, tag: &str, cmd: &[&str]) -> PathBuf {
    let layout = dir.join(format!("layout-{}", tag.replace([':', '/'], "-")));
    localfargate_runtime::test_images::busybox_layout(&layout, tag, cmd).unwrap();
    layout
}

/// `localfargate image ARGS --data-dir DATA`, which must succeed; its output.
fn image(data: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_localfargate"))
        .arg("image")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    assert!(out.status.success(), "image {args:?}: {}", text(&out));
    text(&out)
}

fn load(data: &Path, layout: &Path) {
    let loaded = image(data, &["load", layout.to_str().unwrap()]);
    assert!(loaded.contains("Loaded image"), "{loaded}");
}

#[test]
fn pods_really_run_logs_exec_exit_codes_and_restarts() {
    skip_unless_able!();
    let registry = Registry::start(None);
    let work = tempfile::tempdir().unwrap();
    // The seed's data-processor image, served by the local registry as a docker.io mirror.
    let processor = busybox_layout(
        work.path(),
        "latest",
        &["sh", "-c", "echo processing batch; echo done"],
    );
    registry.push(&processor, "latest", "myapp/processor:latest", None);
    let flags = vec![
        "--insecure-registry".to_string(),
        format!("127.0.0.1:{}", registry.port),
        "--registry-mirror".to_string(),
        format!("docker.io=http://127.0.0.1:{}", registry.port),
    ];
    let busybox = busybox_layout(work.path(), "localfargate.test/busybox:1", &["sh"]);
    let extra = busybox_layout(work.path(), "localfargate.test/extra:1", &["sh"]);
    let mut c = Cluster::new(&flags, |data| {
        load(data, &busybox);
        // `image ls` and `image rm`, on an image no pod uses.
        load(data, &extra);
        let listed = image(data, &["ls"]);
        assert!(listed.contains("localfargate.test/busybox:1"), "{listed}");
        assert!(listed.contains("localfargate.test/extra:1"), "{listed}");
        image(data, &["rm", "localfargate.test/extra:1"]);
        let listed = image(data, &["ls"]);
        assert!(!listed.contains("localfargate.test/extra:1"), "{listed}");
        assert!(listed.contains("localfargate.test/busybox:1"), "{listed}");
    });

    // The seed's pod, pulled (policy Always for :latest) through the mirror.
    c.apply(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: jobs}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata:\n  name: data-processor\n  namespace: jobs\n  labels: {workload: batch, environment: production}\n\
         spec:\n  restartPolicy: Never\n  containers:\n  - name: processor\n    image: myapp/processor:latest\n",
    );
    let p = c.wait_phase("jobs", "data-processor", &["Succeeded", "Failed"]);
    assert_eq!(p["status"]["phase"], "Succeeded", "{p:#}");
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["state"]["terminated"]["exitCode"], 0);
    assert_eq!(cs["state"]["terminated"]["reason"], "Completed");
    assert!(
        cs["imageID"].as_str().unwrap().contains("@sha256:"),
        "{cs:#}"
    );
    assert!(
        cs["containerID"]
            .as_str()
            .unwrap()
            .starts_with("containerd://"),
        "{cs:#}"
    );
    assert_eq!(
        c.ok(&["logs", "-n", "jobs", "data-processor"]),
        "processing batch\ndone\n"
    );
    let events = c.events("jobs", "data-processor");
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "Pulling" && m == "Pulling image \"myapp/processor:latest\""),
        "{events:?}"
    );
    assert!(
        events.iter().any(|(r, m)| r == "Pulled"
            && m.starts_with("Successfully pulled image \"myapp/processor:latest\" in ")),
        "{events:?}"
    );
    assert!(events.iter().any(|(r, _)| r == "Started"), "{events:?}");

    // A long-running pod: Ready, its own IP and hostname, exec with exit codes, Fargate limits.
    c.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - name: app\n    image: localfargate.test/busybox:1\n    imagePullPolicy: Never\n\
         \x20   command: [sh, -c, 'echo started; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done']\n\
         \x20   env: [{name: GREETING, value: hello}]\n",
    );
    let p = c.wait_ready("default", "web");
    let ip = p["status"]["podIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10."), "{ip}");
    assert_eq!(c.ok(&["exec", "web", "--", "hostname"]).trim(), "web");
    assert_eq!(
        c.ok(&["exec", "web", "--", "sh", "-c", "echo $GREETING"])
            .trim(),
        "hello"
    );
    let addr = c.ok(&[
        "exec", "web", "--", "ip", "-4", "-o", "addr", "show", "eth0",
    ]);
    assert!(addr.contains(&format!("{ip}/")), "{addr}");
    // Fargate's open-files limit on the container's process: soft 1024, hard 65535 or the
    // host's hard limit when lower.
    let limits = c.ok(&["exec", "web", "--", "grep", "open files", "/proc/1/limits"]);
    let fields: Vec<&str> = limits.split_whitespace().collect();
    assert_eq!(fields.get(3), Some(&"1024"), "{limits}");
    let hard: u64 = fields[4].parse().unwrap();
    assert!((1024..=65535).contains(&hard), "{limits}");
    let failed = c.kubectl(&["exec", "web", "--", "sh", "-c", "exit 7"]);
    assert_eq!(failed.status.code(), Some(7), "{}", text(&failed));
    let piped = {
        common::output_with_stdin(
            Command::new(KUBECTL)
                .arg("--kubeconfig")
                .arg(&c.kubeconfig)
                .args(["exec", "-i", "web", "--", "cat"]),
            b"through stdin\n",
        )
    };
    assert_eq!(String::from_utf8_lossy(&piped.stdout), "through stdin\n");
    // `kubectl cp` both ways (tar through exec), and `kubectl exec -it` from a terminal.
    let local = c.data.path().join("to-pod.txt");
    std::fs::write(&local, "copied in\n").unwrap();
    c.ok(&["cp", local.to_str().unwrap(), "web:/tmp/in.txt"]);
    assert_eq!(
        c.ok(&["exec", "web", "--", "cat", "/tmp/in.txt"]),
        "copied in\n"
    );
    let back = c.data.path().join("from-pod.txt");
    c.ok(&["cp", "web:/tmp/in.txt", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "copied in\n");
    let tty = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{KUBECTL} --kubeconfig {} exec -it web -- sh -c 'tty; stty size; exit 3'",
            c.kubeconfig.display()
        ))
        .arg("/dev/null")
        .env("COLUMNS", "101")
        .env("LINES", "31")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert!(shown.contains("/dev/pts/"), "{shown}");
    assert_eq!(tty.status.code(), Some(3), "{}", text(&tty));
    let tail = c.ok(&["logs", "web", "--tail", "1"]);
    assert!(tail.starts_with("tick "), "{tail}");
    let stamped = c.ok(&["logs", "web", "--timestamps", "--tail", "1"]);
    assert!(
        stamped.split(' ').next().unwrap().ends_with('Z'),
        "{stamped}"
    );

    // Environment from a ConfigMap that does not exist yet: the kubelet's
    // CreateContainerConfigError, until it does.
    c.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: configured}\nspec:\n  containers:\n  - name: c\n    image: localfargate.test/busybox:1\n    imagePullPolicy: Never\n\
         \x20   command: [sh, -c, 'exec sleep 3600']\n    env: [{name: LEVEL, valueFrom: {configMapKeyRef: {name: settings, key: level}}}]\n",
    );
    c.eventually(
        "CreateContainerConfigError",
        Duration::from_secs(60),
        || {
            let p = c.pod("default", "configured");
            let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
            w["reason"] == "CreateContainerConfigError"
                && w["message"] == "configmap \"settings\" not found"
        },
    );
    c.ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=level=debug",
    ]);
    c.wait_ready("default", "configured");
    assert_eq!(
        c.ok(&["exec", "configured", "--", "sh", "-c", "echo $LEVEL"]),
        "debug\n"
    );

    // A pod that fails by its exit code, and one that crash-loops.
    c.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: fails}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: localfargate.test/busybox:1\n    imagePullPolicy: Never\n\
         \x20   command: [sh, -c, 'echo about to fail >&2; echo bad input > /dev/termination-log; exit 3']\n\
         ---\napiVersion: v1\nkind: Pod\nmetadata: {name: loops}\nspec:\n  containers:\n  - name: c\n    image: localfargate.test/busybox:1\n    imagePullPolicy: Never\n    command: [sh, -c, 'echo run; exit 1']\n",
    );
    let p = c.wait_phase("default", "fails", &["Failed", "Succeeded"]);
    let t = &p["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(p["status"]["phase"], "Failed");
    assert_eq!(t["exitCode"], 3, "{t:#}");
    assert_eq!(t["reason"], "Error");
    assert_eq!(t["message"], "bad input\n");
    assert_eq!(c.ok(&["logs", "fails"]), "about to fail\n");
    c.eventually("loops to restart", Duration::from_secs(60), || {
        c.pod("default", "loops")["status"]["containerStatuses"][0]["restartCount"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    });
    let p = c.pod("default", "loops");
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1, "{cs:#}");
    assert_eq!(c.ok(&["logs", "loops", "--previous"]), "run\n");

    // An image that cannot be pulled, and a command that does not exist: that pod alone.
    c.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: noimage}\nspec:\n  containers:\n  - name: c\n    image: 127.0.0.1:1/nothing/here:1\n\
         ---\napiVersion: v1\nkind: Pod\nmetadata: {name: nobinary}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: localfargate.test/busybox:1\n    imagePullPolicy: Never\n    command: [/no/such/binary]\n",
    );
    c.eventually("ErrImagePull", Duration::from_secs(60), || {
        let p = c.pod("default", "noimage");
        let reason = p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            .as_str()
            .unwrap_or("")
            .to_string();
        reason == "ErrImagePull" || reason == "ImagePullBackOff"
    });
    let p = c.wait_phase("default", "nobinary", &["Failed"]);
    let t = &p["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["reason"], "StartError", "{t:#}");
    assert!(
        t["message"].as_str().unwrap().contains("/no/such/binary"),
        "{t:#}"
    );
    assert!(c.wait_ready("default", "web")["status"]["podIP"] == ip.as_str());

    // Over its memory limit a container is OOM-killed; a readiness probe gates Ready; a Job
    // with ttlSecondsAfterFinished really runs, succeeds and goes.
    c.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: hog}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: localfargate.test/busybox:1\n    imagePullPolicy: Never\n\
         \x20   command: [sh, -c, 'exec tail /dev/zero']\n    resources: {limits: {memory: 32Mi}, requests: {memory: 32Mi}}\n\
         ---\napiVersion: v1\nkind: Pod\nmetadata: {name: gated}\nspec:\n  containers:\n  - name: c\n    image: localfargate.test/busybox:1\n    imagePullPolicy: Never\n\
         \x20   command: [sh, -c, 'exec sleep 3600']\n    readinessProbe: {exec: {command: [test, -f, /tmp/ready]}, periodSeconds: 1}\n\
         ---\napiVersion: batch/v1\nkind: Job\nmetadata: {name: compute}\nspec:\n  ttlSecondsAfterFinished: 3\n  template:\n    spec:\n      restartPolicy: Never\n\
         \x20     containers:\n      - name: c\n        image: localfargate.test/busybox:1\n        imagePullPolicy: Never\n        command: [sh, -c, 'echo computed 42']\n",
    );
    let p = c.wait_phase("default", "hog", &["Failed", "Succeeded"]);
    let t = &p["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["reason"], "OOMKilled", "{t:#}");
    assert_eq!(t["exitCode"], 137, "{t:#}");
    c.eventually("gated to run, not ready", Duration::from_secs(60), || {
        let p = c.pod("default", "gated");
        let cs = &p["status"]["containerStatuses"][0];
        cs["state"]["running"].is_object() && cs["ready"] == false
    });
    c.eventually(
        "a readiness probe failure event",
        Duration::from_secs(30),
        || {
            c.events("default", "gated")
                .iter()
                .any(|(r, m)| r == "Unhealthy" && m.starts_with("Readiness probe failed"))
        },
    );
    c.ok(&["exec", "gated", "--", "touch", "/tmp/ready"]);
    c.wait_ready("default", "gated");
    c.eventually("the Job to succeed", Duration::from_secs(60), || {
        let out = c.kubectl(&["get", "job", "compute", "-o", "json"]);
        serde_json::from_slice::<Value>(&out.stdout).is_ok_and(|j| j["status"]["succeeded"] == 1)
    });
    c.eventually("the finished Job to go", Duration::from_secs(60), || {
        !c.kubectl(&["get", "job", "compute"]).status.success()
    });

    // `kill -9` of localfargate: the pod keeps running and is adopted, not duplicated.
    let before = c.pod("default", "web")["status"]["containerStatuses"][0]["containerID"].clone();
    c.crash_and_restart();
    let p = c.wait_ready("default", "web");
    assert_eq!(p["status"]["containerStatuses"][0]["containerID"], before);
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);
    assert_eq!(
        c.ok(&["exec", "web", "--", "echo", "still here"]).trim(),
        "still here"
    );
    let last = c.ok(&["logs", "web", "--tail", "1"]);
    std::thread::sleep(Duration::from_millis(600));
    assert_ne!(
        c.ok(&["logs", "web", "--tail", "1"]),
        last,
        "the log goes on"
    );

    // Deletion: SIGTERM, the grace period, then the pod's sandbox is gone.
    let before = sandboxes_left(c.data.path());
    c.ok(&["delete", "pod", "web", "--grace-period", "1"]);
    c.eventually(
        "web's sandbox to be removed",
        Duration::from_secs(30),
        || sandboxes_left(c.data.path()) < before,
    );

    // Deleting the cluster leaves no process, mount, network namespace or cgroup behind.
    let data = c.data.path().to_path_buf();
    c.delete();
    assert_eq!(sandboxes_left(&data), 0);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(data.to_str().unwrap()),
        "mounts left under {}",
        data.display()
    );
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&netns.stdout).contains("lf-p"),
        "{}",
        text(&netns)
    );
    let shims = Command::new("pgrep")
        .args(["-f", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(shims.stdout.is_empty(), "processes left: {}", text(&shims));
    let cgroups = std::fs::read_dir("/sys/fs/cgroup/memory/localfargate")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .count()
        })
        .unwrap_or(0);
    assert_eq!(cgroups, 0, "pod cgroups left");
}
