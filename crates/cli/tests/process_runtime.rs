//! End-to-end: pods that really run. `localfargate up --runtime process` with real kubectl,
//! images from Debian's `docker-registry` on 127.0.0.1 (started here) and from
//! `localfargate image load`, each pod in its own sandbox of namespaces and cgroups.
//!
//! Needs root, runc, busybox-static, docker-registry and skopeo (`scripts/test` installs them
//! when it runs as root); skipped with the reason otherwise.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::process_cluster::{
    Cluster, KUBECTL, Registry, busybox_layout, image, load, sandboxes_left, text,
};
use serde_json::Value;

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

    // Deleting the cluster leaves no process, mount, network namespace or cgroup of its
    // sandboxes behind (other tests may have sandboxes of their own on this machine).
    let data = c.data.path().to_path_buf();
    let ids: Vec<String> = std::fs::read_dir(data.join("runtime/sandboxes"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!ids.is_empty());
    c.delete();
    assert_eq!(sandboxes_left(&data), 0);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(data.to_str().unwrap()),
        "mounts left under {}",
        data.display()
    );
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let netns = String::from_utf8_lossy(&netns.stdout);
    let shims = Command::new("pgrep")
        .args(["-f", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(shims.stdout.is_empty(), "processes left: {}", text(&shims));
    for id in &ids {
        let short = localfargate_runtime::net::short_id(id);
        assert!(
            !netns.split_whitespace().any(|n| n == format!("lf-{short}")),
            "network namespace of {id} left: {netns}"
        );
        // v1 controllers, and v2's unified tree.
        for controller in ["memory", "cpu", "pids", ""] {
            let dir = Path::new("/sys/fs/cgroup")
                .join(controller)
                .join("localfargate")
                .join(id);
            assert!(!dir.exists(), "{} left", dir.display());
        }
    }
}
