//! End-to-end: the EKS Fargate guides' kubectl workflows against a running `localfargate up`,
//! with the real kubectl binaries (1.31 unless a test says otherwise).

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Server, localfargate};
use serde_json::{Value, json};

const KUBECTL_DIR: &str = "/usr/lib/google-cloud-sdk/bin";

/// A cluster with a kubeconfig, on its own server.
struct Cluster {
    server: Server,
    name: String,
    kubeconfig: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn cluster(name: &str) -> Cluster {
    cluster_with_flags(name, &[])
}

fn cluster_with_flags(name: &str, flags: &[&str]) -> Cluster {
    cluster_with_args(name, flags, &[])
}

/// A cluster on a server started with `flags`, created with extra `create_args`.
fn cluster_with_args(name: &str, flags: &[&str], create_args: &[&str]) -> Cluster {
    let server = common::up_with("0.1", flags);
    let mut args = vec!["cluster", "create", "--name", name];
    args.extend(create_args);
    let created = localfargate(&server, &args);
    assert!(created.status.success(), "{}", text(&created));
    with_kubeconfig(server, name)
}

/// A cluster made by `localfargate apply -f` from an eksctl ClusterConfig.
fn cluster_from_config(name: &str, config: &str) -> Cluster {
    let server = common::up("0.1");
    let file = std::env::temp_dir().join(format!("lf-cfg-{name}-{}.yaml", std::process::id()));
    std::fs::write(&file, config).unwrap();
    let applied = localfargate(&server, &["apply", "-f", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
    assert!(applied.status.success(), "{}", text(&applied));
    with_kubeconfig(server, name)
}

fn with_kubeconfig(server: Server, name: &str) -> Cluster {
    let config = localfargate(&server, &["kubeconfig", "--cluster", name]);
    assert!(config.status.success(), "{}", text(&config));
    let kubeconfig = std::env::temp_dir().join(format!(
        "lf-wf-{name}-{}-{}",
        std::process::id(),
        common::free_port()
    ));
    std::fs::write(&kubeconfig, &config.stdout).unwrap();
    let c = Cluster {
        server,
        name: name.to_string(),
        kubeconfig,
    };
    // The API starts within a moment of ACTIVE, and the default namespace right after.
    c.eventually("the API and its default namespace", || {
        c.kubectl(&["get", "namespace", "default"]).status.success()
    });
    c
}

impl Cluster {
    fn kubectl_with(&self, version: &str, args: &[&str]) -> Output {
        self.kubectl_env(version, &[], args)
    }

    fn kubectl_env(&self, version: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
        Command::new(format!("{KUBECTL_DIR}/kubectl.{version}"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with("1.31", args)
    }

    /// kubectl that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.status.success(), "kubectl {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn apply(&self, yaml: &str) -> String {
        let out = common::output_with_stdin(
            Command::new(format!("{KUBECTL_DIR}/kubectl.1.31"))
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["apply", "-f", "-"]),
            yaml.as_bytes(),
        );
        assert!(out.status.success(), "apply: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut full = args.to_vec();
        full.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&full)).unwrap()
    }

    fn eks(&self, args: &[&str]) -> Output {
        let out = localfargate(&self.server, args);
        assert!(
            out.status.success(),
            "localfargate {args:?}: {}",
            text(&out)
        );
        out
    }

    fn profile(&self, name: &str, namespace: &str, labels: Option<&str>) {
        let mut args = vec![
            "profile",
            "create",
            "--cluster",
            &self.name,
            "--name",
            name,
            "--namespace",
            namespace,
        ];
        if let Some(l) = labels {
            args.extend(["--labels", l]);
        }
        self.eks(&args);
    }

    fn eventually(&self, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn events_of(&self, namespace: &str, pod: &str) -> Vec<(String, String, String, String)> {
        let selector = format!("involvedObject.name={pod}");
        let list = self.json(&[
            "get",
            "events",
            "-n",
            namespace,
            "--field-selector",
            &selector,
        ]);
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap_or("").to_string(),
                    e["reason"].as_str().unwrap_or("").to_string(),
                    e["source"]["component"].as_str().unwrap_or("").to_string(),
                    e["message"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    fn phase(&self, namespace: &str, pod: &str) -> String {
        self.kubectl(&[
            "get",
            "pod",
            pod,
            "-n",
            namespace,
            "-o",
            "jsonpath={.status.phase}",
        ])
        .stdout
        .iter()
        .map(|b| *b as char)
        .collect()
    }
}

const WEB: &str = "
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: demo
  labels: {app: web, tier: frontend}
spec:
  containers:
  - name: nginx
    image: nginx:1.27
    resources:
      requests: {cpu: 500m, memory: 1Gi}
";

#[test]
fn a_labelled_pod_runs_on_its_own_fargate_node_and_an_unlabelled_one_waits() {
    let c = cluster("guide");
    c.profile("fp-demo", "demo", Some("app=web,tier=frontend"));
    c.apply(WEB);
    c.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/web",
        "-n",
        "demo",
        "--timeout=30s",
    ]);
    let wide = c.ok(&["get", "pods", "-n", "demo", "-o", "wide"]);
    let row: Vec<&str> = wide.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], &["web", "1/1", "Running"], "{wide}");
    let (ip, node) = (row[5], row[6]);
    assert_eq!(
        node,
        format!("fargate-ip-{}.ec2.internal", ip.replace('.', "-"))
    );
    assert!(ip.starts_with("10.0."), "{ip}");
    let pod = c.json(&["get", "pod", "web", "-n", "demo"]);
    let annotations = &pod["metadata"]["annotations"];
    // 0.5 vCPU + 1 GiB, plus 256 MiB: the 0.5 vCPU / 2 GB tier.
    assert_eq!(annotations["CapacityProvisioned"], "0.5vCPU 2GB");
    assert_eq!(
        annotations["Logging"],
        "LoggingDisabled: LOGGING_CONFIGMAP_NOT_FOUND"
    );
    assert_eq!(
        pod["metadata"]["labels"]["eks.amazonaws.com/fargate-profile"],
        "fp-demo"
    );
    assert_eq!(pod["spec"]["schedulerName"], "fargate-scheduler");
    assert_eq!(pod["spec"]["priorityClassName"], "system-node-critical");
    let described = c.ok(&["describe", "pod", "web", "-n", "demo"]);
    assert!(
        described.contains("CapacityProvisioned: 0.5vCPU 2GB"),
        "{described}"
    );
    assert!(
        described.contains("fargate-scheduler  Successfully assigned demo/web to fargate-ip-"),
        "{described}"
    );
    let n = c.json(&["get", "node", node]);
    assert_eq!(
        n["metadata"]["labels"]["eks.amazonaws.com/compute-type"],
        "fargate"
    );
    assert_eq!(
        n["spec"]["taints"][0]["key"],
        "eks.amazonaws.com/compute-type"
    );
    assert_eq!(n["status"]["capacity"]["pods"], "1");

    // Missing one of the selector's labels: no profile takes it, and there are no EC2 nodes.
    c.apply(
        &WEB.replace("name: web\n", "name: api\n")
            .replace(", tier: frontend", ""),
    );
    c.eventually("the unmatched pod's FailedScheduling event", || {
        c.events_of("demo", "api")
            .iter()
            .any(|e| e.1 == "FailedScheduling")
    });
    let events = c.events_of("demo", "api");
    let failed = events.iter().find(|e| e.1 == "FailedScheduling").unwrap();
    assert_eq!(failed.2, "default-scheduler");
    assert_eq!(
        failed.3,
        "0/1 nodes are available: 1 node(s) had untolerated taint {eks.amazonaws.com/compute-type: fargate}. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.."
    );
    assert_eq!(c.phase("demo", "api"), "Pending");
    let api = c.json(&["get", "pod", "api", "-n", "demo"]);
    assert_eq!(api["spec"]["schedulerName"], "default-scheduler");

    // Deleting the pod removes its Fargate node.
    c.ok(&["delete", "pod", "web", "-n", "demo"]);
    c.eventually("the Fargate node to go", || {
        !c.kubectl(&["get", "node", node]).status.success()
    });
}

#[test]
fn unmatched_pods_fall_back_to_a_managed_node_group() {
    let c = cluster_from_config(
        "mixed",
        "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: mixed, region: us-east-1}\nmanagedNodeGroups:\n- name: system\n  instanceType: t3.large\n  desiredCapacity: 2\n  labels: {role: system}\n",
    );
    c.eventually("two ready EC2 nodes", || {
        let nodes = c.json(&["get", "nodes", "-l", "eks.amazonaws.com/nodegroup=system"]);
        nodes["items"].as_array().is_some_and(|i| i.len() == 2)
    });
    let nodes = c.json(&["get", "nodes", "-l", "role=system"]);
    let node = &nodes["items"][0];
    assert_eq!(
        node["metadata"]["labels"]["node.kubernetes.io/instance-type"],
        "t3.large"
    );
    assert_eq!(node["status"]["capacity"]["cpu"], "2");
    c.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: plain}\nspec:\n  containers:\n  - {name: c, image: busybox}\n",
    );
    c.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/plain",
        "--timeout=30s",
    ]);
    let pod = c.json(&["get", "pod", "plain"]);
    // eksctl puts managed node groups in the public subnets; pods take IPs from their node's.
    let on = pod["spec"]["nodeName"].as_str().unwrap();
    assert!(on.starts_with("ip-10-0-"), "{on}");
    let host = pod["status"]["hostIP"].as_str().unwrap();
    let ip = pod["status"]["podIP"].as_str().unwrap();
    assert_ne!(host, ip);
    assert_eq!(on, format!("ip-{}.ec2.internal", host.replace('.', "-")));
    let subnet = |a: &str| a.split('.').take(3).collect::<Vec<_>>().join(".");
    assert_eq!(subnet(host), subnet(ip), "{host} {ip}");
    // CoreDNS (compute-type ec2) lands there too.
    c.ok(&[
        "rollout",
        "status",
        "deployment/coredns",
        "-n",
        "kube-system",
        "--timeout=30s",
    ]);
    // A pod asking for more CPU than any node has gets upstream's message.
    c.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: huge}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    resources: {requests: {cpu: '16'}}\n",
    );
    c.eventually("huge's FailedScheduling", || {
        c.events_of("default", "huge")
            .iter()
            .any(|e| e.1 == "FailedScheduling")
    });
    let e = c.events_of("default", "huge");
    let msg = &e.iter().find(|e| e.1 == "FailedScheduling").unwrap().3;
    assert!(
        msg.starts_with("0/2 nodes are available: 2 Insufficient cpu."),
        "{msg}"
    );
    // kubectl drain: cordon (a strategic merge patch), evict (pods/eviction), and the
    // Deployment's pods come back on the other node.
    c.ok(&["delete", "pod", "huge"]);
    c.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ]);
    c.ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    let drained = c.ok(&[
        "drain",
        on,
        "--ignore-daemonsets",
        "--force",
        "--timeout=60s",
    ]);
    assert!(drained.contains(&format!("node/{on} drained")), "{drained}");
    let node = c.json(&["get", "node", on]);
    assert_eq!(node["spec"]["unschedulable"], true);
    c.ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    let pods = c.json(&["get", "pods", "-l", "app=web"]);
    for p in pods["items"].as_array().unwrap() {
        assert_ne!(p["spec"]["nodeName"], on, "{p}");
    }
    assert!(!c.kubectl(&["get", "pod", "plain"]).status.success());
}

#[test]
fn a_privileged_pod_gets_awss_event_and_stays_pending() {
    let c = cluster("refuse");
    c.profile("fp-default", "default", None);
    c.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: priv}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    securityContext: {privileged: true}\n",
    );
    c.eventually("the refusal event", || {
        c.events_of("default", "priv")
            .iter()
            .any(|e| e.1 == "FailedScheduling")
    });
    let events = c.events_of("default", "priv");
    assert!(
        events.contains(&(
            "Warning".into(),
            "FailedScheduling".into(),
            "fargate-scheduler".into(),
            "Pod not supported on Fargate: invalid SecurityContext fields: Privileged".into()
        )),
        "{events:?}"
    );
    assert_eq!(c.phase("default", "priv"), "Pending");
    let described = c.ok(&["describe", "pod", "priv"]);
    assert!(
        described.contains("Warning  FailedScheduling"),
        "{described}"
    );
}

#[test]
fn coredns_moves_to_fargate_with_the_guides_patch_and_restart() {
    let c = cluster("dns");
    let d = c.json(&["get", "deployment", "coredns", "-n", "kube-system"]);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["template"]["metadata"]["annotations"]["eks.amazonaws.com/compute-type"],
        "ec2"
    );
    c.profile("coredns", "kube-system", Some("k8s-app=kube-dns"));
    // The annotation keeps the existing pods off Fargate: Pending, no nodes.
    let pods = c.json(&["get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns"]);
    assert!(
        pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["spec"]["nodeName"].is_null())
    );
    c.ok(&[
        "patch", "deployment", "coredns", "-n", "kube-system", "--type", "json", "-p",
        r#"[{"op": "remove", "path": "/spec/template/metadata/annotations/eks.amazonaws.com~1compute-type"}]"#,
    ]);
    c.ok(&[
        "rollout",
        "restart",
        "-n",
        "kube-system",
        "deployment",
        "coredns",
    ]);
    c.ok(&[
        "rollout",
        "status",
        "-n",
        "kube-system",
        "deployment",
        "coredns",
        "--timeout=60s",
    ]);
    c.eventually("only the new CoreDNS pods", || {
        let pods = c.json(&["get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns"]);
        let items = pods["items"].as_array().unwrap().clone();
        items.len() == 2
            && items.iter().all(|p| {
                p["status"]["phase"] == "Running"
                    && p["spec"]["nodeName"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("fargate-ip-")
            })
    });
    let pods = c.json(&["get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns"]);
    for p in pods["items"].as_array().unwrap() {
        // 100m/70Mi (limit 170Mi) + 256 MiB: the smallest size.
        assert_eq!(
            p["metadata"]["annotations"]["CapacityProvisioned"],
            "0.25vCPU 0.5GB"
        );
        assert_eq!(
            p["metadata"]["labels"]["eks.amazonaws.com/fargate-profile"],
            "coredns"
        );
    }
    // The kube-dns Service a new cluster has now has CoreDNS's addresses as its endpoints.
    let mut ips: Vec<String> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap().to_string())
        .collect();
    ips.sort();
    c.eventually("kube-dns's endpoints", || {
        let e = c.json(&["get", "endpoints", "kube-dns", "-n", "kube-system"]);
        let mut seen: Vec<String> = e["subsets"][0]["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["ip"].as_str().map(str::to_string))
            .collect();
        seen.sort();
        seen == ips
    });
}

#[test]
fn deleting_a_profile_reschedules_its_pods_elsewhere() {
    let c = cluster("resched");
    c.profile("fp-a", "default", None);
    c.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ]);
    c.ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    c.profile("fp-b", "default", Some("app=web"));
    let before = c.json(&["get", "pods", "-l", "app=web"]);
    let old: Vec<String> = before["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        before["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["metadata"]["labels"]["eks.amazonaws.com/fargate-profile"] == "fp-a")
    );
    c.eks(&[
        "profile",
        "delete",
        "--cluster",
        "resched",
        "--name",
        "fp-a",
        "--wait",
    ]);
    c.eventually("two new pods on fp-b", || {
        let pods = c.json(&["get", "pods", "-l", "app=web"]);
        let items = pods["items"].as_array().unwrap().clone();
        items.len() == 2
            && items.iter().all(|p| {
                p["metadata"]["labels"]["eks.amazonaws.com/fargate-profile"] == "fp-b"
                    && p["status"]["phase"] == "Running"
                    && !old.contains(&p["metadata"]["name"].as_str().unwrap().to_string())
            })
    });
    // The mirror follows within a second or so.
    c.eventually(
        "the fargateprofiles mirror to show fp-b with 2 pods",
        || {
            let mirror = c.json(&["get", "fargateprofiles"]);
            let items = mirror["items"].as_array().unwrap();
            items.len() == 1
                && items[0]["metadata"]["name"] == "fp-b"
                && items[0]["status"]["pods"] == 2
        },
    );
    // The mirror is read-only.
    let refused = c.kubectl(&["delete", "fargateprofile", "fp-b"]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("read-only"), "{}", text(&refused));
}

#[test]
fn a_job_completes_logs_and_is_cleaned_up_after_its_ttl() {
    let c = cluster("batch");
    c.profile("fp-default", "default", None);
    c.apply(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec:\n  ttlSecondsAfterFinished: 2\n  template:\n    metadata:\n      annotations: {sim.localfargate.io/log: '3.14159'}\n    spec:\n      restartPolicy: Never\n      containers:\n      - {name: pi, image: perl}\n",
    );
    c.ok(&[
        "wait",
        "--for=condition=complete",
        "job/pi",
        "--timeout=30s",
    ]);
    let logs = c.ok(&["logs", "job/pi"]);
    assert!(logs.contains("3.14159"), "{logs}");
    assert!(logs.contains("exited with code 0"), "{logs}");
    let job = c.json(&["get", "job", "pi"]);
    assert_eq!(job["status"]["succeeded"], 1);
    c.eventually("the Job and its pod to be gone", || {
        !c.kubectl(&["get", "job", "pi"]).status.success()
            && c.json(&["get", "pods", "-l", "job-name=pi"])["items"]
                .as_array()
                .is_some_and(|i| i.is_empty())
    });
}

#[test]
fn get_watch_streams_changes_and_apply_twice_is_a_noop() {
    let c = cluster("watch");
    c.profile("fp-default", "default", None);
    let mut watch = Command::new(format!("{KUBECTL_DIR}/kubectl.1.31"))
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args([
            "get",
            "pods",
            "-w",
            "--output-watch-events",
            "-o",
            r#"jsonpath={.type} {.object.metadata.name}{"\n"}"#,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: w1}\nspec:\n  containers:\n  - {name: c, image: nginx}\n";
    assert!(c.apply(pod).contains("pod/w1 created"));
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.iter().any(|l: &String| l.starts_with("MODIFIED")) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("no MODIFIED event; saw {seen:?}"),
        }
    }
    assert_eq!(seen[0], "ADDED w1");
    c.ok(&["wait", "--for=condition=Ready", "pod/w1", "--timeout=30s"]);
    let rv = c.ok(&[
        "get",
        "pod",
        "w1",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    assert!(c.apply(pod).contains("pod/w1 unchanged"));
    assert_eq!(
        c.ok(&[
            "get",
            "pod",
            "w1",
            "-o",
            "jsonpath={.metadata.resourceVersion}"
        ]),
        rv
    );
    c.ok(&["delete", "pod", "w1"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) if l == "DELETED w1" => break,
            Ok(_) => {}
            Err(_) => panic!("no DELETED event"),
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
}

#[test]
fn logs_work_and_exec_explains_the_simulated_runtime() {
    let c = cluster("exec");
    c.profile("fp-default", "default", None);
    c.apply("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p1\n  annotations: {sim.localfargate.io/log: hello from p1}\nspec:\n  containers:\n  - {name: c, image: nginx}\n");
    c.ok(&["wait", "--for=condition=Ready", "pod/p1", "--timeout=30s"]);
    let logs = c.ok(&["logs", "p1"]);
    assert!(logs.contains("container c image nginx started"), "{logs}");
    assert!(logs.contains("hello from p1"), "{logs}");
    assert_eq!(c.ok(&["logs", "p1", "--tail=1"]).trim(), "hello from p1");
    // kubectl 1.30+ speaks WebSocket v5: the upgrade succeeds and the error comes on the
    // status channel.
    let out = c.kubectl(&["exec", "p1", "--", "ls", "/"]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("exec is not available in the simulated runtime: pod default/p1 is simulated"),
        "{t}"
    );
    assert!(!t.contains("websocket: close"), "{t}");
    // kubectl 1.29 speaks SPDY (or WebSocket when told to): the same error either way.
    let spdy = c.kubectl_with("1.29", &["exec", "p1", "--", "ls"]);
    assert!(!spdy.status.success());
    assert!(
        text(&spdy).contains("exec is not available in the simulated runtime: pod default/p1"),
        "{}",
        text(&spdy)
    );
    let told = c.kubectl_env(
        "1.29",
        &[("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "true")],
        &["exec", "p1", "--", "ls"],
    );
    assert!(!told.status.success());
    assert!(
        text(&told).contains("exec is not available in the simulated runtime"),
        "{}",
        text(&told)
    );
    let bad = c.kubectl(&["logs", "p1", "-c", "nope"]);
    assert!(
        text(&bad).contains("container nope is not valid for pod p1"),
        "{}",
        text(&bad)
    );
}

#[test]
fn server_side_dry_runs_check_updates_and_write_nothing() {
    let c = cluster("dryrun");
    c.profile("fp-default", "default", None);
    c.apply("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p1\nspec:\n  containers:\n  - {name: c, image: nginx}\n");
    c.ok(&["wait", "--for=condition=Ready", "pod/p1", "--timeout=30s"]);
    let before = c.ok(&[
        "get",
        "pod",
        "p1",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    // A valid change comes back as it would be stored, and is not stored.
    let preview = c.ok(&[
        "label",
        "pod",
        "p1",
        "tier=web",
        "--dry-run=server",
        "-o",
        "jsonpath={.metadata.labels.tier}",
    ]);
    assert_eq!(preview, "web");
    let replaced = c.ok(&[
        "set",
        "image",
        "pod/p1",
        "c=nginx:1.27",
        "--dry-run=server",
        "-o",
        "jsonpath={.spec.containers[0].image}",
    ]);
    assert_eq!(replaced, "nginx:1.27");
    assert_eq!(
        c.ok(&["get", "pod", "p1", "-o", "jsonpath={.metadata.labels.tier}/{.spec.containers[0].image}/{.metadata.resourceVersion}"]),
        format!("/nginx/{before}")
    );
    // A change the update would refuse is refused in the dry run too, by PATCH and by PUT.
    let patched = c.kubectl(&[
        "patch",
        "pod",
        "p1",
        "--dry-run=server",
        "-p",
        r#"{"spec":{"containers":[{"name":"c","resources":{"limits":{"cpu":"2"}}}]}}"#,
    ]);
    assert!(!patched.status.success());
    assert!(
        text(&patched).contains("pod updates may not change fields"),
        "{}",
        text(&patched)
    );
    // Scaling, through the scale subresource, too.
    c.apply("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: d}}\n  template:\n    metadata: {labels: {app: d}}\n    spec: {containers: [{name: c, image: nginx}]}\n");
    c.ok(&[
        "scale",
        "deployment",
        "d",
        "--replicas=3",
        "--dry-run=server",
    ]);
    assert_eq!(
        c.ok(&["get", "deployment", "d", "-o", "jsonpath={.spec.replicas}"]),
        "1"
    );
    let mut pod = c.json(&["get", "pod", "p1"]);
    pod["spec"]["containers"][0]["name"] = json!("renamed");
    let file = std::env::temp_dir().join(format!("lf-dryrun-{}.json", std::process::id()));
    std::fs::write(&file, pod.to_string()).unwrap();
    let replaced = c.kubectl(&["replace", "--dry-run=server", "-f", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
    assert!(!replaced.status.success());
    assert!(
        text(&replaced).contains("pod updates may not change fields"),
        "{}",
        text(&replaced)
    );
}

#[test]
fn kubectl_129_to_133_apply_get_patch_and_delete() {
    let c = cluster("versions");
    for v in ["1.29", "1.30", "1.32", "1.33"] {
        let name = format!("cm-{}", v.replace('.', "-"));
        let file = std::env::temp_dir().join(format!("lf-{name}-{}.yaml", std::process::id()));
        std::fs::write(
            &file,
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{a: '1'}}\n"
            ),
        )
        .unwrap();
        let applied = c.kubectl_with(v, &["apply", "-f", file.to_str().unwrap()]);
        assert!(applied.status.success(), "{v}: {}", text(&applied));
        let got = c.kubectl_with(v, &["get", "configmaps"]);
        let listing = text(&got);
        assert!(
            listing.contains("DATA") && listing.contains(&name),
            "{v}: {listing}"
        );
        let patched = c.kubectl_with(
            v,
            &["patch", "configmap", &name, "-p", r#"{"data":{"b":"2"}}"#],
        );
        assert!(patched.status.success(), "{v}: {}", text(&patched));
        let deleted = c.kubectl_with(v, &["delete", "configmap", &name]);
        assert!(deleted.status.success(), "{v}: {}", text(&deleted));
        let _ = std::fs::remove_file(file);
    }
    // kubectl 1.32+ typed `create` sends protobuf (every kind: tests/protobuf_clients.rs).
    for (v, args) in [
        (
            "1.32",
            vec!["create", "configmap", "pb", "--from-literal=a=b"],
        ),
        (
            "1.33",
            vec![
                "create",
                "secret",
                "generic",
                "pb",
                "--from-literal=pw=hunter2",
            ],
        ),
        ("1.33", vec!["create", "namespace", "pb-ns"]),
    ] {
        let out = c.kubectl_with(v, &args);
        assert!(out.status.success(), "{v} {args:?}: {}", text(&out));
    }
    assert_eq!(
        c.ok(&["get", "configmap", "pb", "-o", "jsonpath={.data.a}"]),
        "b"
    );
    assert_eq!(
        c.ok(&["get", "secret", "pb", "-o", "jsonpath={.data.pw}"]),
        "aHVudGVyMg=="
    );
}

#[test]
fn server_side_apply_scale_selectors_and_namespace_deletion() {
    let c = cluster("misc");
    c.profile("fp-default", "*", None);
    let cm = std::env::temp_dir().join(format!("lf-ssa-{}.yaml", std::process::id()));
    std::fs::write(&cm, "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d1, namespace: team}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: d1}}\n  template:\n    metadata: {labels: {app: d1}}\n    spec:\n      containers:\n      - {name: c, image: nginx}\n").unwrap();
    let out = c.ok(&["apply", "--server-side", "-f", cm.to_str().unwrap()]);
    assert!(
        out.contains("deployment.apps/d1 serverside-applied"),
        "{out}"
    );
    c.ok(&[
        "rollout",
        "status",
        "deployment/d1",
        "-n",
        "team",
        "--timeout=30s",
    ]);
    c.ok(&["scale", "deployment/d1", "-n", "team", "--replicas=3"]);
    c.ok(&[
        "rollout",
        "status",
        "deployment/d1",
        "-n",
        "team",
        "--timeout=30s",
    ]);
    let running = c.ok(&[
        "get",
        "pods",
        "-n",
        "team",
        "-l",
        "app=d1",
        "--field-selector",
        "status.phase=Running",
        "-o",
        "name",
    ]);
    assert_eq!(running.lines().count(), 3, "{running}");
    let chunked = c.ok(&["get", "pods", "-n", "team", "--chunk-size=1", "-o", "name"]);
    assert_eq!(chunked.lines().count(), 3, "{chunked}");
    let bad = c.kubectl(&["get", "pods", "--field-selector", "spec.bogus=1"]);
    assert!(
        text(&bad).contains("field label not supported: spec.bogus"),
        "{}",
        text(&bad)
    );
    c.ok(&["delete", "namespace", "team", "--timeout=60s"]);
    assert!(!c.kubectl(&["get", "namespace", "team"]).status.success());
    let left = c.json(&["get", "pods", "-A", "-l", "app=d1"]);
    assert!(left["items"].as_array().unwrap().is_empty());
    let _ = std::fs::remove_file(cm);
}

#[test]
fn beyond_aws_flags_explain_misses_and_replace_pending_pods() {
    let c = cluster_with_flags(
        "beyond",
        &["--explain-fargate-misses", "--replace-pending-pods"],
    );
    c.profile("fp-web", "default", Some("app=web"));
    c.apply("apiVersion: v1\nkind: Pod\nmetadata:\n  name: api\n  labels: {app: api}\nspec:\n  containers:\n  - {name: c, image: nginx}\n");
    c.eventually("the nearest-selector event", || {
        c.events_of("default", "api")
            .iter()
            .any(|e| e.1 == "NoFargateProfileMatched")
    });
    let events = c.events_of("default", "api");
    let miss = events
        .iter()
        .find(|e| e.1 == "NoFargateProfileMatched")
        .unwrap();
    assert!(
        miss.3
            .contains("nearest selector is profile fp-web selector 1"),
        "{}",
        miss.3
    );
    assert!(
        miss.3
            .contains("label app is \"api\", the selector wants \"web\""),
        "{}",
        miss.3
    );
    assert_eq!(c.phase("default", "api"), "Pending");
    // A profile that selects it appears: the Pending pod moves to Fargate.
    c.profile("fp-api", "default", Some("app=api"));
    c.ok(&["wait", "--for=condition=Ready", "pod/api", "--timeout=30s"]);
    let pod = c.json(&["get", "pod", "api"]);
    assert_eq!(
        pod["metadata"]["labels"]["eks.amazonaws.com/fargate-profile"],
        "fp-api"
    );
    assert!(
        pod["spec"]["nodeName"]
            .as_str()
            .unwrap()
            .starts_with("fargate-ip-")
    );
}

#[test]
fn statefulsets_start_in_order_and_daemonsets_skip_fargate_nodes() {
    let c = cluster_from_config(
        "sets",
        "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: sets, region: us-east-1}\nfargateProfiles:\n- name: fp-default\n  selectors: [{namespace: default}]\nmanagedNodeGroups:\n- name: ng\n  instanceType: t3.medium\n  desiredCapacity: 2\n",
    );
    c.apply("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  replicas: 3\n  serviceName: db\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec:\n      containers:\n      - {name: c, image: postgres}\n");
    c.ok(&["rollout", "status", "statefulset/db", "--timeout=60s"]);
    let pods = c.json(&["get", "pods", "-l", "app=db"]);
    let mut made: Vec<(String, String)> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                p["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    made.sort();
    let names: Vec<&str> = made.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names.len(), 3);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, vec!["db-0", "db-1", "db-2"]);
    assert!(pods["items"].as_array().unwrap().iter().all(|p| {
        p["spec"]["nodeName"]
            .as_str()
            .unwrap()
            .starts_with("fargate-ip-")
    }));
    c.ok(&["scale", "statefulset/db", "--replicas=1"]);
    c.eventually("db scaled to db-0", || {
        let names: Vec<String> = c.json(&["get", "pods", "-l", "app=db"])["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        names == vec!["db-0".to_string()]
    });
    // A DaemonSet runs on the two EC2 nodes and on none of the Fargate nodes.
    c.apply("apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent, namespace: kube-system}\nspec:\n  selector: {matchLabels: {app: agent}}\n  template:\n    metadata: {labels: {app: agent}}\n    spec:\n      tolerations: [{operator: Exists}]\n      containers:\n      - {name: c, image: fluent-bit}\n");
    c.ok(&[
        "rollout",
        "status",
        "daemonset/agent",
        "-n",
        "kube-system",
        "--timeout=60s",
    ]);
    let ds = c.json(&["get", "daemonset", "agent", "-n", "kube-system"]);
    assert_eq!(ds["status"]["desiredNumberScheduled"], 2);
    assert_eq!(ds["status"]["numberReady"], 2);
    let agents = c.json(&["get", "pods", "-n", "kube-system", "-l", "app=agent"]);
    for p in agents["items"].as_array().unwrap() {
        assert!(
            p["spec"]["nodeName"].as_str().unwrap().starts_with("ip-"),
            "{p}"
        );
    }
}

#[test]
fn a_full_subnet_leaves_pods_pending_and_logging_follows_the_configmap() {
    let network = std::env::temp_dir().join(format!("lf-net-{}.json", std::process::id()));
    std::fs::write(
        &network,
        r#"{"vpcs": [{"vpcId": "vpc-1", "cidrBlock": "10.1.0.0/16", "subnets": [
            {"subnetId": "subnet-pub-a", "availabilityZone": "us-east-1a", "cidrBlock": "10.1.0.0/24", "private": false},
            {"subnetId": "subnet-pub-b", "availabilityZone": "us-east-1b", "cidrBlock": "10.1.1.0/24", "private": false},
            {"subnetId": "subnet-tiny", "availabilityZone": "us-east-1a", "cidrBlock": "10.1.2.0/28", "private": true},
            {"subnetId": "subnet-priv-b", "availabilityZone": "us-east-1b", "cidrBlock": "10.1.3.0/24", "private": true}]}]}"#,
    )
    .unwrap();
    let c = cluster_with_args(
        "tiny",
        &["--network", network.to_str().unwrap()],
        // No --subnets: the CLI asks the server for its VPC model.
        &[],
    );
    c.eks(&[
        "profile",
        "create",
        "--cluster",
        "tiny",
        "--name",
        "fp-tiny",
        "--namespace",
        "default",
        "--subnets",
        "subnet-tiny",
    ]);
    // Logging on, for the pods created from now on.
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: aws-observability\n  labels: {aws-observability: enabled}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: aws-logging, namespace: aws-observability}\ndata:\n  output.conf: |\n    [OUTPUT]\n        Name cloudwatch_logs\n        Match   *\n        region us-east-1\n");
    // A /28 has 16 addresses, 5 of them AWS's: 11 pods fit.
    c.ok(&[
        "create",
        "deployment",
        "many",
        "--image=nginx",
        "--replicas=12",
    ]);
    c.eventually("11 Running pods and one FailedScheduling event", || {
        let pods = c.json(&["get", "pods", "-l", "app=many"]);
        let items = pods["items"].as_array().unwrap();
        let running = items
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count();
        running == 11
            && items.iter().any(|p| {
                p["status"]["phase"] == "Pending"
                    && c.events_of("default", p["metadata"]["name"].as_str().unwrap())
                        .iter()
                        .any(|e| e.1 == "FailedScheduling")
            })
    });
    let pods = c.json(&["get", "pods", "-l", "app=many"]);
    let items = pods["items"].as_array().unwrap();
    let pending = items
        .iter()
        .find(|p| p["status"]["phase"] == "Pending")
        .unwrap();
    let events = c.events_of("default", pending["metadata"]["name"].as_str().unwrap());
    let e = events.iter().find(|e| e.1 == "FailedScheduling").unwrap();
    assert_eq!(e.2, "fargate-scheduler");
    assert_eq!(e.3, "no free IP addresses in subnet subnet-tiny");
    let mut ips: Vec<String> = items
        .iter()
        .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string))
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 11);
    assert!(ips.iter().all(|ip| ip.starts_with("10.1.2.")), "{ips:?}");
    assert!(!ips.contains(&"10.1.2.0".to_string()) && !ips.contains(&"10.1.2.3".to_string()));
    let running = items
        .iter()
        .find(|p| p["status"]["phase"] == "Running")
        .unwrap();
    assert_eq!(
        running["metadata"]["annotations"]["Logging"],
        "LoggingEnabled"
    );
    let name = running["metadata"]["name"].as_str().unwrap();
    assert!(c.events_of("default", name).contains(&(
        "Normal".into(),
        "LoggingEnabled".into(),
        "fargate-scheduler".into(),
        "Successfully enabled logging for pod".into()
    )));
    let _ = std::fs::remove_file(network);
}
