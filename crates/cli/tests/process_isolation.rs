//! End-to-end: the process sandbox's isolation and limits, through real kubectl against
//! `localfargate up --runtime process` with a busybox image loaded (`localfargate image load`):
//! `shareProcessNamespace` (a pause process is PID 1), seccomp `RuntimeDefault`, and the
//! eviction of pods that write beyond their ephemeral storage.
//!
//! Needs root, runc and busybox-static; skipped with the reason otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Server, localfargate};
use serde_json::Value;

const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.31";
const IMAGE: &str = "localfargate.test/busybox:1";

fn skip_reason() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not root".into());
    }
    let runc = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("runc").is_file()));
    if !runc {
        return Some("runc is not installed".into());
    }
    if !localfargate_runtime::test_images::busybox_available() {
        return Some("/bin/busybox is not installed (busybox-static)".into());
    }
    if !Path::new(KUBECTL).exists() {
        return Some(format!("{KUBECTL} is not installed"));
    }
    None
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `localfargate up` with the process runtime on `data`, measuring storage every half second.
fn server(data: &Path) -> Server {
    common::up_with_store(
        "0.1",
        &[
            "--runtime",
            "process",
            "--data-dir",
            data.to_str().unwrap(),
            "--eviction-interval",
            "0.5",
        ],
    )
}

/// A cluster `iso` with a Fargate profile for `default`, on a process-runtime server that
/// measures ephemeral storage every half second; deleted (with every sandbox) on drop.
struct Cluster {
    server: Option<Server>,
    kubeconfig: PathBuf,
    data: tempfile::TempDir,
}

impl Cluster {
    fn new() -> Cluster {
        let data = tempfile::tempdir().unwrap();
        let layout = data.path().join("busybox-layout");
        localfargate_runtime::test_images::busybox_layout(&layout, IMAGE, &["sh"]).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_localfargate"))
            .args(["image", "load"])
            .arg(&layout)
            .arg("--data-dir")
            .arg(data.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "image load: {}", text(&out));
        let server = server(data.path());
        let ok = |out: Output| assert!(out.status.success(), "{}", text(&out));
        ok(localfargate(
            &server,
            &["cluster", "create", "--name", "iso"],
        ));
        ok(localfargate(
            &server,
            &[
                "profile",
                "create",
                "--cluster",
                "iso",
                "--name",
                "fp-default",
                "--namespace",
                "default",
            ],
        ));
        let config = localfargate(&server, &["kubeconfig", "--cluster", "iso"]);
        assert!(config.status.success(), "{}", text(&config));
        let kubeconfig = data.path().join("kubeconfig");
        std::fs::write(&kubeconfig, &config.stdout).unwrap();
        let c = Cluster {
            server: Some(server),
            kubeconfig,
            data,
        };
        c.eventually("the default namespace", Duration::from_secs(30), || {
            c.kubectl(&["get", "namespace", "default"]).status.success()
        });
        c
    }

    /// Kills the server as `kill -9` would and starts another on the same data directory.
    fn crash_and_restart(&mut self) {
        self.server.take();
        self.server = Some(server(self.data.path()));
        self.eventually("the API after a restart", Duration::from_secs(30), || {
            self.kubectl(&["get", "namespace", "default"])
                .status
                .success()
        });
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

    fn pod(&self, name: &str) -> Value {
        serde_json::from_str(&self.ok(&["get", "pod", name, "-o", "json"])).unwrap()
    }

    fn eventually(&self, what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_ready(&self, name: &str) {
        self.eventually(
            &format!("pod {name} Ready"),
            Duration::from_secs(90),
            || {
                self.pod(name)["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
            },
        );
    }

    /// `(reason, message)` of the pod's events.
    fn events(&self, pod: &str) -> Vec<(String, String)> {
        let selector = format!("involvedObject.name={pod}");
        let list: Value = serde_json::from_str(&self.ok(&[
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
            .map(|e| {
                (
                    e["reason"].as_str().unwrap_or("").to_string(),
                    e["message"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            let _ = localfargate(
                server,
                &[
                    "profile",
                    "delete",
                    "--cluster",
                    "iso",
                    "--name",
                    "fp-default",
                    "--wait",
                ],
            );
            let _ = localfargate(server, &["cluster", "delete", "--name", "iso", "--wait"]);
            let sandboxes = self.data.path().join("runtime/sandboxes");
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline
                && std::fs::read_dir(&sandboxes).is_ok_and(|d| d.count() > 0)
            {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        self.server.take();
    }
}

#[test]
fn shared_pid_namespaces_seccomp_and_ephemeral_storage_evictions() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let mut c = Cluster::new();
    c.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: shared}}\n\
         spec:\n  terminationGracePeriodSeconds: 1\n  shareProcessNamespace: true\n  containers:\n\
         \x20 - {{name: app, image: '{IMAGE}', command: [sleep, '41111']}}\n\
         \x20 - {{name: sidecar, image: '{IMAGE}', command: [sleep, '42222']}}\n\
         ---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: confined}}\n\
         spec:\n  terminationGracePeriodSeconds: 1\n  securityContext:\n    seccompProfile: {{type: RuntimeDefault}}\n  containers:\n\
         \x20 - {{name: app, image: '{IMAGE}', command: [sleep, '3600']}}\n\
         ---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: filler}}\n\
         spec:\n  containers:\n\
         \x20 - name: writer\n    image: '{IMAGE}'\n\
         \x20   command: [sh, -c, 'dd if=/dev/zero of=/big bs=1048576 count=4; exec sleep 3600']\n\
         \x20   resources: {{limits: {{ephemeral-storage: 1Mi}}}}\n\
         ---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: scratch}}\n\
         spec:\n  volumes:\n  - {{name: tmp, emptyDir: {{sizeLimit: 1Mi}}}}\n  containers:\n\
         \x20 - name: writer\n    image: '{IMAGE}'\n\
         \x20   command: [sh, -c, 'dd if=/dev/zero of=/tmp/big bs=1048576 count=3; exec sleep 3600']\n\
         \x20   volumeMounts: [{{name: tmp, mountPath: /tmp}}]\n"
    ));

    // shareProcessNamespace: one PID namespace, whose PID 1 is the pod's pause process.
    c.wait_ready("shared");
    assert_eq!(
        c.ok(&[
            "exec",
            "shared",
            "-c",
            "sidecar",
            "--",
            "cat",
            "/proc/1/comm"
        ]),
        "pause\n"
    );
    let ps = c.ok(&[
        "exec", "shared", "-c", "sidecar", "--", "ps", "-o", "pid,args",
    ]);
    assert!(ps.contains("sleep 41111"), "the app's process: {ps}");
    assert!(ps.contains("sleep 42222"), "{ps}");

    // A `kubectl exec` whose client goes away has its command killed, not left running.
    let ps = |c: &Cluster| c.ok(&["exec", "shared", "-c", "app", "--", "ps", "-o", "args"]);
    let mut client = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args(["exec", "shared", "-c", "app", "--", "sleep", "43333"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    c.eventually("the exec'd command", Duration::from_secs(30), || {
        ps(&c).lines().any(|l| l.trim() == "sleep 43333")
    });
    client.kill().unwrap();
    client.wait().unwrap();
    c.eventually(
        "the exec'd command to end with its client",
        Duration::from_secs(30),
        || !ps(&c).lines().any(|l| l.trim() == "sleep 43333"),
    );

    // RuntimeDefault: the filter is on, and a syscall containerd's profile refuses fails.
    c.wait_ready("confined");
    if std::fs::read_to_string("/proc/self/status").is_ok_and(|s| s.contains("\nSeccomp:")) {
        assert_eq!(
            c.ok(&[
                "exec",
                "confined",
                "--",
                "grep",
                "^Seccomp:",
                "/proc/self/status"
            ]),
            "Seccomp:\t2\n"
        );
        let out = c.kubectl(&["exec", "confined", "--", "unshare", "-U", "true"]);
        assert!(!out.status.success());
        let said = text(&out);
        assert!(said.contains("Operation not permitted"), "{said}");
        assert!(
            said.contains("command terminated with exit code 1"),
            "{said}"
        );
    }
    // Without a profile: the kubelet's default, Unconfined.
    assert_eq!(
        c.ok(&[
            "exec",
            "shared",
            "-c",
            "app",
            "--",
            "grep",
            "^Seccomp:",
            "/proc/self/status"
        ]),
        "Seccomp:\t0\n"
    );

    // Writing beyond the limits: Failed, reason Evicted, the kubelet's message and event, and
    // the containers are killed, not restarted.
    for (pod, message) in [
        (
            "filler",
            "Pod ephemeral local storage usage exceeds the total limit of containers 1Mi. ",
        ),
        (
            "scratch",
            "Usage of EmptyDir volume \"tmp\" exceeds the limit \"1Mi\". ",
        ),
    ] {
        let mut p = Value::Null;
        c.eventually(
            &format!("pod {pod} evicted"),
            Duration::from_secs(60),
            || {
                p = c.pod(pod);
                p["status"]["phase"] == "Failed"
                    && p["status"]["containerStatuses"][0]["state"]["terminated"].is_object()
            },
        );
        assert_eq!(p["status"]["reason"], "Evicted", "{p:#}");
        assert_eq!(p["status"]["message"], message, "{p:#}");
        let cs = &p["status"]["containerStatuses"][0];
        assert_eq!(cs["restartCount"], 0, "{cs:#}");
        assert_eq!(cs["ready"], false, "{cs:#}");
        let events = c.events(pod);
        assert!(
            events.iter().any(|(r, m)| r == "Evicted" && m == message),
            "{events:?}"
        );
        // Killed: containerd's `Error` (137), which is what `kubectl get` shows for it, as
        // for an evicted pod on EKS; `describe` says why.
        assert_eq!(cs["state"]["terminated"]["exitCode"], 137, "{cs:#}");
        assert_eq!(cs["state"]["terminated"]["reason"], "Error", "{cs:#}");
        let described = c.ok(&["describe", "pod", pod]);
        assert!(
            described
                .lines()
                .any(|l| l.starts_with("Reason:") && l.ends_with("Evicted")),
            "{described}"
        );
    }
    // The pods that stayed within their storage run on.
    assert_eq!(c.pod("shared")["status"]["phase"], "Running");
    assert_eq!(c.pod("confined")["status"]["phase"], "Running");

    // `kill -9` of localfargate: the shared pod, its pause process and its namespace stay.
    let ids = |c: &Cluster| c.pod("shared")["status"]["containerStatuses"].clone();
    let before = ids(&c);
    c.crash_and_restart();
    c.wait_ready("shared");
    let after = ids(&c);
    for i in 0..2 {
        assert_eq!(
            after[i]["containerID"], before[i]["containerID"],
            "{after:#}"
        );
        assert_eq!(after[i]["restartCount"], 0, "{after:#}");
    }
    assert_eq!(
        c.ok(&["exec", "shared", "-c", "app", "--", "cat", "/proc/1/comm"]),
        "pause\n"
    );
    let ps = c.ok(&["exec", "shared", "-c", "app", "--", "ps", "-o", "pid,args"]);
    assert!(ps.contains("sleep 42222"), "{ps}");
    // The evicted pods stay evicted.
    assert_eq!(c.pod("filler")["status"]["reason"], "Evicted");
}
