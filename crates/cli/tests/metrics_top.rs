//! End-to-end: `kubectl top pod|node` (real kubectl 1.31 and 1.27) against
//! `metrics.k8s.io/v1beta1`, fed by the metrics collector every second (`--metrics-interval 1`):
//! pods that really burn CPU and fill memory under `--runtime process`, and the simulated
//! runtime's exact usage on Fargate and node-group nodes.
//!
//! The process test needs root, runc and busybox-static (`scripts/test` installs them when it
//! runs as root); it is skipped with the reason otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Server, localfargate};
use serde_json::Value;

const KUBECTL_DIR: &str = "/usr/lib/google-cloud-sdk/bin";
const BUSYBOX: &str = "localfargate.test/busybox:1";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn kubectl_missing() -> Option<String> {
    ["1.31", "1.27"]
        .iter()
        .map(|v| format!("{KUBECTL_DIR}/kubectl.{v}"))
        .find(|k| !Path::new(k).exists())
        .map(|k| format!("{k} is not installed"))
}

fn process_skip_reason() -> Option<String> {
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
    kubectl_missing()
}

/// A cluster with a kubeconfig on its own server. With the process runtime its profile
/// `fp-default`, then the cluster, are deleted before the server stops, which removes its
/// sandboxes.
struct Cluster {
    server: Option<Server>,
    name: String,
    kubeconfig: PathBuf,
    /// The process runtime's data directory, when the server has one.
    data: Option<tempfile::TempDir>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let (Some(server), Some(data)) = (&self.server, &self.data) {
            // A cluster with a profile cannot be deleted (ResourceInUseException), as on AWS.
            let _ = localfargate(
                server,
                &[
                    "profile",
                    "delete",
                    "--cluster",
                    &self.name,
                    "--name",
                    "fp-default",
                    "--wait",
                ],
            );
            let _ = localfargate(
                server,
                &["cluster", "delete", "--name", &self.name, "--wait"],
            );
            let sandboxes = data.path().join("runtime/sandboxes");
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline
                && std::fs::read_dir(&sandboxes).is_ok_and(|mut d| d.next().is_some())
            {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        self.server.take();
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

impl Cluster {
    /// `localfargate apply -f` of an eksctl ClusterConfig on a server started with `flags`.
    fn from_config(
        name: &str,
        config: &str,
        flags: &[&str],
        data: Option<tempfile::TempDir>,
    ) -> Cluster {
        let server = if data.is_some() {
            common::up_with_store("0.1", flags)
        } else {
            common::up_with("0.1", flags)
        };
        let file = std::env::temp_dir().join(format!("lf-top-{name}-{}.yaml", std::process::id()));
        std::fs::write(&file, config).unwrap();
        let applied = localfargate(&server, &["apply", "-f", file.to_str().unwrap()]);
        let _ = std::fs::remove_file(&file);
        assert!(applied.status.success(), "{}", text(&applied));
        let kubeconfig = localfargate(&server, &["kubeconfig", "--cluster", name]);
        assert!(kubeconfig.status.success(), "{}", text(&kubeconfig));
        let path = std::env::temp_dir().join(format!(
            "lf-top-{name}-{}-{}",
            std::process::id(),
            common::free_port()
        ));
        std::fs::write(&path, &kubeconfig.stdout).unwrap();
        let c = Cluster {
            server: Some(server),
            name: name.to_string(),
            kubeconfig: path,
            data,
        };
        c.eventually(
            "the API and its default namespace",
            Duration::from_secs(30),
            || c.kubectl(&["get", "namespace", "default"]).status.success(),
        );
        c
    }

    fn kubectl_with(&self, version: &str, args: &[&str]) -> Output {
        Command::new(format!("{KUBECTL_DIR}/kubectl.{version}"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .unwrap()
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with("1.31", args)
    }

    fn ok_with(&self, version: &str, args: &[&str]) -> String {
        let out = self.kubectl_with(version, args);
        assert!(
            out.status.success(),
            "kubectl {version} {args:?}: {}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_with("1.31", args)
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    fn apply(&self, yaml: &str) {
        let out = common::output_with_stdin(
            Command::new(format!("{KUBECTL_DIR}/kubectl.1.31"))
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["apply", "-f", "-"]),
            yaml.as_bytes(),
        );
        assert!(out.status.success(), "apply: {}", text(&out));
    }

    fn eventually(&self, what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn wait_ready(&self, namespace: &str, pod: &str) {
        self.ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{pod}"),
            "-n",
            namespace,
            "--timeout=90s",
        ]);
    }

    fn node_of(&self, namespace: &str, pod: &str) -> String {
        let p = self.json(&["get", "pod", pod, "-n", namespace, "-o", "json"]);
        p["spec"]["nodeName"].as_str().unwrap().to_string()
    }

    /// `kubectl top ARGS` once it succeeds (the pods have been sampled twice), parsed.
    fn top(&self, version: &str, args: &[&str]) -> Table {
        self.top_showing(version, args, &[])
    }

    /// `kubectl top ARGS` once it succeeds and shows a row for each of `rows`: pods that became
    /// Ready at different times are sampled in different collector rounds, so a listing can
    /// succeed before every pod has its two samples.
    fn top_showing(&self, version: &str, args: &[&str], rows: &[&[&str]]) -> Table {
        let mut full = vec!["top"];
        full.extend(args);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.kubectl_with(version, &full);
            if out.status.success() {
                let table = Table::parse(&String::from_utf8_lossy(&out.stdout));
                if rows.iter().all(|key| table.row(key).is_some()) {
                    return table;
                }
                assert!(
                    Instant::now() < deadline,
                    "kubectl {version} top {args:?} never showed {rows:?}: {table:?}"
                );
            } else {
                assert!(
                    Instant::now() < deadline,
                    "kubectl {version} top {args:?}: {}",
                    text(&out)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// A usage from the API as raw JSON.
    fn raw(&self, path: &str) -> Value {
        self.json(&["get", "--raw", path])
    }
}

/// kubectl's table output: a header and rows of cells split on whitespace.
#[derive(Debug)]
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn parse(text: &str) -> Table {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let split = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        let header = lines.next().map(split).unwrap_or_default();
        Table {
            header,
            rows: lines.map(split).collect(),
        }
    }

    /// The cell in column `column` of the row whose cells include `key` (a pod or node name,
    /// or a container's).
    fn cell(&self, key: &[&str], column: &str) -> &str {
        let i = self
            .header
            .iter()
            .position(|h| h == column)
            .unwrap_or_else(|| panic!("no column {column}: {self:?}"));
        let row = self
            .row(key)
            .unwrap_or_else(|| panic!("no row {key:?}: {self:?}"));
        &row[i]
    }

    /// The row whose cells include every one of `key`.
    fn row(&self, key: &[&str]) -> Option<&Vec<String>> {
        self.rows
            .iter()
            .find(|r| key.iter().all(|k| r.iter().any(|c| c == k)))
    }

    fn names(&self) -> Vec<&str> {
        self.rows.iter().map(|r| r[0].as_str()).collect()
    }
}

/// `250m` → 250, `1` → 1000 (kubectl prints whole millicores).
fn millicores(cell: &str) -> u64 {
    match cell.strip_suffix('m') {
        Some(m) => m.parse().unwrap(),
        None => cell.parse::<u64>().unwrap() * 1000,
    }
}

/// `64Mi` → 64 (kubectl prints whole MiB).
fn mebibytes(cell: &str) -> u64 {
    cell.strip_suffix("Mi")
        .unwrap_or_else(|| panic!("{cell} is not in Mi"))
        .parse()
        .unwrap()
}

/// `250000000n`, `250m`, `1` as nanocores: the API's exact CPU quantities.
fn nanocores(q: &str) -> u64 {
    let (number, scale) = match q.char_indices().last() {
        Some((i, 'n')) => (&q[..i], 1),
        Some((i, 'u')) => (&q[..i], 1_000),
        Some((i, 'm')) => (&q[..i], 1_000_000),
        _ => (q, 1_000_000_000),
    };
    number.parse::<u64>().unwrap() * scale
}

#[test]
fn kubectl_top_shows_what_process_pods_really_use() {
    if let Some(why) = process_skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let layout = data.path().join("busybox-layout");
    localfargate_runtime::test_images::busybox_layout(&layout, BUSYBOX, &["sh"]).unwrap();
    let loaded = Command::new(env!("CARGO_BIN_EXE_localfargate"))
        .args(["image", "load", layout.to_str().unwrap(), "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(loaded.status.success(), "{}", text(&loaded));
    let dir = data.path().to_str().unwrap().to_string();
    let c = Cluster::from_config(
        "top",
        "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: top, region: us-east-1}\n\
         fargateProfiles:\n- name: fp-default\n  selectors:\n  - namespace: default\n",
        &[
            "--runtime",
            "process",
            "--data-dir",
            &dir,
            "--metrics-interval",
            "1",
        ],
        Some(data),
    );
    // A busy loop beside an idle container, and 64 MiB written into a memory-backed emptyDir.
    c.apply(
        &r#"
apiVersion: v1
kind: Pod
metadata: {name: burner, labels: {app: burner}}
spec:
  containers:
  - {name: burn, image: BUSYBOX, command: [sh, -c, 'while :; do :; done']}
  - {name: idle, image: BUSYBOX, command: [sleep, '3600']}
---
apiVersion: v1
kind: Pod
metadata: {name: filler, labels: {app: filler}}
spec:
  containers:
  - name: fill
    image: BUSYBOX
    command: [sh, -c, 'busybox dd if=/dev/zero of=/cache/fill bs=1M count=64 && exec sleep 3600']
    volumeMounts: [{name: cache, mountPath: /cache}]
  volumes: [{name: cache, emptyDir: {medium: Memory}}]
---
apiVersion: v1
kind: Pod
metadata: {name: waiting, labels: {app: waiting}}
spec:
  containers:
  - {name: c, image: localfargate.test/absent:1, imagePullPolicy: Never}
"#
        .replace("BUSYBOX", BUSYBOX),
    );
    c.wait_ready("default", "burner");
    c.wait_ready("default", "filler");

    // Usage shows after two samples; the busy loop gets its pod's 0.25 vCPU (the CFS quota),
    // more or less, so well above nothing; the filler holds its 64 MiB of tmpfs pages.
    // Both pods listed first: a listing can succeed a collector round before both have their
    // two samples.
    let both: &[&[&str]] = &[&["burner"], &["filler"]];
    let mut top = c.top_showing("1.31", &["pod"], both);
    c.eventually(
        "the busy loop's CPU in kubectl top",
        Duration::from_secs(60),
        || {
            top = c.top_showing("1.31", &["pod"], both);
            millicores(top.cell(&["burner"], "CPU(cores)")) >= 100
                && mebibytes(top.cell(&["filler"], "MEMORY(bytes)")) >= 64
        },
    );
    eprintln!("kubectl top pod:\n{top:?}");
    assert!(
        millicores(top.cell(&["burner"], "CPU(cores)")) <= 350,
        "{top:?}"
    );
    assert!(
        mebibytes(top.cell(&["burner"], "MEMORY(bytes)")) < 64,
        "the burner holds little memory: {top:?}"
    );
    assert!(!top.names().contains(&"waiting"), "{top:?}");

    let mine = c.top("1.31", &["pod", "-l", "app=burner", "--containers"]);
    assert_eq!(mine.header[..2], ["POD", "NAME"], "{mine:?}");
    assert_eq!(mine.rows.len(), 2, "{mine:?}");
    let burn = millicores(mine.cell(&["burner", "burn"], "CPU(cores)"));
    let idle = millicores(mine.cell(&["burner", "idle"], "CPU(cores)"));
    assert!(burn > idle, "burn {burn}m, idle {idle}m: {mine:?}");

    // Each Fargate pod's node shows its pod's usage; kubectl 1.27 reads it too.
    let node = c.node_of("default", "burner");
    assert!(node.starts_with("fargate-ip-"), "{node}");
    let nodes = c.top_showing("1.31", &["node"], &[&[node.as_str()]]);
    assert!(
        millicores(nodes.cell(&[&node], "CPU(cores)")) >= 50,
        "{nodes:?}"
    );
    let old = c.top("1.27", &["node", &node]);
    assert_eq!(old.names(), [node.as_str()], "{old:?}");
    let old = c.top("1.27", &["pod", "filler"]);
    assert!(
        mebibytes(old.cell(&["filler"], "MEMORY(bytes)")) >= 64,
        "{old:?}"
    );

    // metrics-server's shapes.
    let m = c.raw("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/burner");
    assert_eq!(m["kind"], "PodMetrics", "{m:#}");
    assert_eq!(m["apiVersion"], "metrics.k8s.io/v1beta1");
    assert_eq!(m["metadata"]["labels"]["app"], "burner");
    assert!(m["window"].as_str().unwrap().ends_with('s'), "{m:#}");
    assert!(m["timestamp"].as_str().unwrap().ends_with('Z'), "{m:#}");
    let containers: Vec<&str> = m["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(containers, ["burn", "idle"]);
    assert!(nanocores(m["containers"][0]["usage"]["cpu"].as_str().unwrap()) > 0);
    let memory = m["containers"][0]["usage"]["memory"].as_str().unwrap();
    assert!(memory.ends_with("Ki") || memory.ends_with("Mi"), "{memory}");

    // A pod that never runs: a list without it ("metrics not available yet" from kubectl, for
    // a pod under two minutes old), and metrics-server's NotFound for it and its node.
    let out = c.kubectl(&["top", "pod", "-l", "app=waiting"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("error: metrics not available yet"),
        "{}",
        text(&out)
    );
    let out = c.kubectl(&["top", "pod", "waiting"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(
            "Error from server (NotFound): podmetrics.metrics.k8s.io \"default/waiting\" not found"
        ),
        "{}",
        text(&out)
    );
    let waiting_node = c.node_of("default", "waiting");
    let out = c.kubectl(&["top", "node", &waiting_node]);
    assert!(
        text(&out).contains(&format!(
            "Error from server (NotFound): nodemetrics.metrics.k8s.io \"{waiting_node}\" not found"
        )),
        "{}",
        text(&out)
    );
    let out = c.kubectl(&["top", "pod", "nope"]);
    assert!(
        text(&out).contains("Error from server (NotFound): pods \"nope\" not found"),
        "{}",
        text(&out)
    );
}

#[test]
fn kubectl_top_with_the_simulated_runtime_on_fargate_and_node_group_nodes() {
    if let Some(why) = kubectl_missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let c = Cluster::from_config(
        "simtop",
        "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: simtop, region: us-east-1}\n\
         fargateProfiles:\n- name: fp-default\n  selectors:\n  - namespace: default\n\
         managedNodeGroups:\n- name: workers\n  instanceType: t3.large\n  desiredCapacity: 1\n",
        &["--runtime", "simulated", "--metrics-interval", "1"],
        None,
    );
    // Usage as the pods' annotations set it: exact, whatever the window.
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
  annotations:
    sim.localfargate.io/cpu-usage.app: 250m
    sim.localfargate.io/memory-usage.app: 64Mi
    sim.localfargate.io/cpu-usage.proxy: 50m
    sim.localfargate.io/memory-usage.proxy: 16Mi
spec:
  containers:
  - {name: app, image: nginx}
  - {name: proxy, image: envoy}
---
apiVersion: v1
kind: Namespace
metadata: {name: batch}
---
apiVersion: v1
kind: Pod
metadata:
  name: a
  namespace: batch
  annotations: {sim.localfargate.io/cpu-usage: 100m, sim.localfargate.io/memory-usage: 100Mi}
spec:
  containers:
  - {name: c, image: busybox}
---
apiVersion: v1
kind: Pod
metadata:
  name: b
  namespace: batch
  annotations: {sim.localfargate.io/cpu-usage: 300m, sim.localfargate.io/memory-usage: 200Mi}
spec:
  containers:
  - {name: c, image: busybox}
---
apiVersion: v1
kind: Pod
metadata:
  name: slow
  labels: {app: slow}
  annotations: {sim.localfargate.io/start-delay: 1h}
spec:
  containers:
  - {name: c, image: busybox}
"#,
    );
    for (ns, pod) in [("default", "web"), ("batch", "a"), ("batch", "b")] {
        c.wait_ready(ns, pod);
    }

    for version in ["1.31", "1.27"] {
        let top = c.top(version, &["pod", "-l", "app=web"]);
        assert_eq!(top.names(), ["web"], "{top:?}");
        assert_eq!(top.cell(&["web"], "CPU(cores)"), "300m", "{top:?}");
        assert_eq!(top.cell(&["web"], "MEMORY(bytes)"), "80Mi", "{top:?}");
        let containers = c.top(version, &["pod", "web", "--containers"]);
        assert_eq!(containers.cell(&["web", "app"], "CPU(cores)"), "250m");
        assert_eq!(containers.cell(&["web", "app"], "MEMORY(bytes)"), "64Mi");
        assert_eq!(containers.cell(&["web", "proxy"], "CPU(cores)"), "50m");
        assert_eq!(containers.cell(&["web", "proxy"], "MEMORY(bytes)"), "16Mi");
    }
    let all = c.top_showing(
        "1.31",
        &["pod", "-A"],
        &[&["default", "web"], &["batch", "a"], &["batch", "b"]],
    );
    assert_eq!(all.cell(&["batch", "b"], "CPU(cores)"), "300m", "{all:?}");
    assert_eq!(
        all.cell(&["batch", "a"], "MEMORY(bytes)"),
        "100Mi",
        "{all:?}"
    );

    // The Fargate node shows its one pod; the node-group node the sum of its pods (a, b and
    // CoreDNS, which stays off Fargate).
    let fargate = c.node_of("default", "web");
    let nodes = c.top("1.31", &["node"]);
    assert_eq!(nodes.cell(&[&fargate], "CPU(cores)"), "300m", "{nodes:?}");
    assert_eq!(
        nodes.cell(&[&fargate], "MEMORY(bytes)"),
        "80Mi",
        "{nodes:?}"
    );
    let ec2 = c.node_of("batch", "a");
    assert_eq!(ec2, c.node_of("batch", "b"));
    assert!(!ec2.starts_with("fargate-"), "{ec2}");
    let on_node: Vec<(String, String)> = c.json(&[
        "get",
        "pods",
        "-A",
        "--field-selector",
        &format!("spec.nodeName={ec2}"),
        "-o",
        "json",
    ])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["metadata"]["namespace"].as_str().unwrap().to_string(),
                p["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(on_node.len() >= 2, "{on_node:?}");
    // The node's usage is the sum of its pods' once every pod on it has been sampled (CoreDNS
    // may become Ready a collector round after the test's pods).
    let (mut node, mut pods) = (Value::Null, Value::Null);
    c.eventually(
        "the node's usage to be its pods' sum",
        Duration::from_secs(60),
        || {
            node = c.raw(&format!("/apis/metrics.k8s.io/v1beta1/nodes/{ec2}"));
            pods = c.raw("/apis/metrics.k8s.io/v1beta1/pods");
            let sampled: Vec<&Value> = pods["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| {
                    on_node.contains(&(
                        m["metadata"]["namespace"].as_str().unwrap().to_string(),
                        m["metadata"]["name"].as_str().unwrap().to_string(),
                    ))
                })
                .collect();
            let sum: u64 = sampled
                .iter()
                .flat_map(|m| m["containers"].as_array().unwrap().iter())
                .map(|c| nanocores(c["usage"]["cpu"].as_str().unwrap()))
                .sum();
            sampled.len() == on_node.len()
                && node["usage"]["cpu"].as_str().map(nanocores) == Some(sum)
        },
    );
    assert_eq!(node["kind"], "NodeMetrics", "{node:#}");
    assert_eq!(pods["kind"], "PodMetricsList", "{pods:#}");
    assert!(
        nanocores(node["usage"]["cpu"].as_str().unwrap()) >= 400_000_000,
        "{node:#}"
    );

    // A pod still starting: kubectl's "not available yet", and metrics-server's NotFound.
    let out = c.kubectl(&["top", "pod", "-l", "app=slow"]);
    assert!(
        text(&out).contains("error: metrics not available yet"),
        "{}",
        text(&out)
    );
    let out = c.kubectl(&["top", "pod", "slow"]);
    assert!(
        text(&out).contains(
            "Error from server (NotFound): podmetrics.metrics.k8s.io \"default/slow\" not found"
        ),
        "{}",
        text(&out)
    );

    // `kubectl get` of the metrics resources: metrics-server's Table.
    let table = Table::parse(&c.ok(&["get", "podmetrics", "web"]));
    assert_eq!(
        table.header,
        ["NAME", "CPU", "MEMORY", "WINDOW"],
        "{table:?}"
    );
    assert_eq!(table.cell(&["web"], "CPU"), "300m", "{table:?}");
    assert_eq!(table.cell(&["web"], "MEMORY"), "80Mi", "{table:?}");
    // Only get and list: metrics are not objects anyone writes.
    let out = c.kubectl(&["delete", "podmetrics", "web"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("MethodNotAllowed") || text(&out).contains("not allow"),
        "{}",
        text(&out)
    );
}
