//! End-to-end: the process sandbox's isolation and limits, through real kubectl against
//! `localfargate up --runtime process` with a busybox image loaded (`localfargate image load`):
//! `shareProcessNamespace` (a pause process is PID 1), seccomp `RuntimeDefault`, and the
//! eviction of pods that write beyond their ephemeral storage.
//!
//! Needs what `common::process_cluster` needs (root, runc, busybox-static, docker-registry,
//! skopeo); skipped with the reason otherwise.

mod common;

use std::process::Command;
use std::time::Duration;

use common::process_cluster::{Cluster, KUBECTL, busybox_layout, load, text};
use serde_json::Value;

const IMAGE: &str = "localfargate.test/busybox:1";

#[test]
fn shared_pid_namespaces_seccomp_and_ephemeral_storage_evictions() {
    skip_unless_able!();
    let work = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(work.path(), IMAGE, &["sh"]);
    // Storage measured every half second, not the kubelet's ten.
    let flags = ["--eviction-interval".to_string(), "0.5".to_string()];
    let mut c = Cluster::new(&flags, |data| load(data, &busybox));
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
    c.wait_ready("default", "shared");
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
    c.wait_ready("default", "confined");
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
                p = c.pod("default", pod);
                p["status"]["phase"] == "Failed"
                    && p["status"]["containerStatuses"][0]["state"]["terminated"].is_object()
            },
        );
        assert_eq!(p["status"]["reason"], "Evicted", "{p:#}");
        assert_eq!(p["status"]["message"], message, "{p:#}");
        let cs = &p["status"]["containerStatuses"][0];
        assert_eq!(cs["restartCount"], 0, "{cs:#}");
        assert_eq!(cs["ready"], false, "{cs:#}");
        let events = c.events("default", pod);
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
    assert_eq!(c.pod("default", "shared")["status"]["phase"], "Running");
    assert_eq!(c.pod("default", "confined")["status"]["phase"], "Running");

    // `kill -9` of localfargate: the shared pod, its pause process and its namespace stay.
    let ids = |c: &Cluster| c.pod("default", "shared")["status"]["containerStatuses"].clone();
    let before = ids(&c);
    c.crash_and_restart();
    c.wait_ready("default", "shared");
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
    assert_eq!(c.pod("default", "filler")["status"]["reason"], "Evicted");
}
