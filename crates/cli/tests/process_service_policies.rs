//! End-to-end, with real kubectl, curl, nftables and network namespaces on `localfargate up
//! --runtime process`: what kube-proxy does beyond plain ClusterIPs.
//!
//! * `internalTrafficPolicy: Local`: each Fargate pod is its own node, so a pod that is an
//!   endpoint reaches only itself, a pod that is none is dropped (not refused), and the host,
//!   which runs every pod, reaches them all.
//! * Terminating endpoints: a Service whose only pod is terminating (its preStop hook still
//!   running) keeps serving through it instead of refusing.
//! * `externalIPs`: an address local to the host (on an empty bridge the test makes) and a
//!   Service port reach the endpoints, from the host and from pods.
//! * A LoadBalancer Service with `externalTrafficPolicy: Local` and `loadBalancerSourceRanges`:
//!   kube-proxy's health check on `127.0.0.1:<healthCheckNodePort>` (200 with the local
//!   endpoint count, 503 at zero), and clients outside the ranges reset.
//!
//! Needs root, runc, busybox-static, docker-registry, skopeo, nft and curl; skipped otherwise.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::process_cluster::{Cluster, busybox_layout, load, network_flags, text};
use serde_json::Value;

const IMAGE: &str = "localfargate.test/busybox:policies";
/// An address for the external IP: TEST-NET-2, on an interface of this test's own (an
/// empty bridge: nothing is attached to it, nothing leaves by it).
const EXTERNAL_IP: &str = "198.51.100.71";
const EXTERNAL_LINK: &str = "lfx71";

fn web(name: &str, replicas: u32, extra: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 90
      containers:
      - name: httpd
        image: {IMAGE}
        command: [sh, -c, 'mkdir -p /www; echo "$HOSTNAME" > /www/index.html; exec httpd -f -p 8080 -h /www']
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe: {{tcpSocket: {{port: http}}, periodSeconds: 1}}
{extra}"#
    )
}

const CLIENT: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers:
  - {name: c, image: localfargate.test/busybox:policies, command: [sleep, "3600"]}
"#;

/// Removes the interface when the test ends, however it ends.
struct Dummy;

impl Drop for Dummy {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", EXTERNAL_LINK])
            .output();
    }
}

/// An HTTP GET of `addr` from `pod` (busybox `nc`): the body, or nc's output.
fn pod_get(c: &Cluster, pod: &str, addr: &str) -> Result<String, String> {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = c.http_from("default", pod, host, port.parse().unwrap(), "/", 3);
    let all = String::from_utf8_lossy(&out.stdout).to_string();
    match all.split("\r\n\r\n").nth(1) {
        Some(body) if out.status.success() && !body.trim().is_empty() => {
            Ok(body.trim().to_string())
        }
        _ => Err(text(&out)),
    }
}

/// `curl` from the host with `args`: exit code, HTTP status and body.
fn curl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let all = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = all.rsplit_once('\n').unwrap_or(("", &all));
    (
        out.status.code().unwrap_or(-1),
        status.to_string(),
        body.trim().to_string(),
    )
}

fn names_and_ips(c: &Cluster, app: &str) -> Vec<(String, String)> {
    let pods: Value =
        serde_json::from_str(&c.ok(&["get", "pods", "-l", &format!("app={app}"), "-o", "json"]))
            .unwrap();
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                p["status"]["podIP"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn traffic_policies_terminating_endpoints_external_ips_and_source_ranges() {
    skip_unless_able!();
    for tool in ["nft", "curl"] {
        if Command::new(tool).arg("--version").output().is_err()
            && Command::new(tool).arg("-v").output().is_err()
        {
            eprintln!("skipped: {tool} is not installed");
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = busybox_layout(dir.path(), IMAGE, &["sh"]);
    // A VPC model of its own (10.71.0.0/16): addresses no other test's pods have.
    let flags = network_flags(dir.path(), "10.71.", |_| {});
    let c = Cluster::new(&flags, |data| load(data, &layout));

    let lb_port = free_port();
    let services = format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: local}}
spec:
  internalTrafficPolicy: Local
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]
---
apiVersion: v1
kind: Service
metadata: {{name: ext}}
spec:
  externalIPs: ["{EXTERNAL_IP}"]
  selector: {{app: web}}
  ports: [{{name: http, port: 8071, targetPort: http}}]
---
apiVersion: v1
kind: Service
metadata: {{name: lb}}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  loadBalancerSourceRanges: ["127.0.0.2/32"]
  selector: {{app: web}}
  ports: [{{name: http, port: {lb_port}, targetPort: http}}]
---
apiVersion: v1
kind: Service
metadata: {{name: drain}}
spec:
  selector: {{app: drain}}
  ports: [{{name: http, port: 80, targetPort: http}}]
"#
    );
    c.apply(&web("web", 2, ""));
    c.apply(&web(
        "drain",
        1,
        "        lifecycle: {preStop: {exec: {command: [sleep, \"60\"]}}}\n",
    ));
    c.apply(&services);
    c.apply(CLIENT);
    c.ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    c.ok(&["rollout", "status", "deploy/drain", "--timeout=120s"]);
    c.wait_ready("default", "client");
    let web_pods = names_and_ips(&c, "web");
    let names: BTreeSet<String> = web_pods.iter().map(|(n, _)| n.clone()).collect();
    let cluster_ip = |svc: &str| c.ok(&["get", "svc", svc, "-o", "jsonpath={.spec.clusterIP}"]);
    let local = format!("{}:80", cluster_ip("local"));

    // internalTrafficPolicy: Local. A web pod reaches only itself (its node's endpoint).
    let (me, _) = &web_pods[0];
    c.eventually(
        "a web pod reaching itself through the Local Service",
        Duration::from_secs(60),
        || pod_get(&c, me, &local).is_ok_and(|b| &b == me),
    );
    for _ in 0..5 {
        assert_eq!(pod_get(&c, me, &local).unwrap(), *me);
    }
    // The client, no endpoint on its node: dropped (a timeout), not refused.
    let err = pod_get(&c, "client", &local).unwrap_err();
    assert!(!err.contains("refused"), "{err}");
    let table = nft_table(c.server_pid());
    assert!(
        table.contains(&format!(
            "{local_ip} . tcp . 80 : drop",
            local_ip = cluster_ip("local")
        )),
        "{table}"
    );
    // The host runs every pod: both endpoints are local to it.
    let mut seen = BTreeSet::new();
    c.eventually(
        "both web pods from the host through the Local Service",
        Duration::from_secs(60),
        || {
            let (code, _, body) = curl(&[&format!("http://{local}/")]);
            if code == 0 {
                assert!(names.contains(&body), "{body}");
                seen.insert(body);
            }
            seen.len() == 2
        },
    );

    // externalIPs: an address of the host's own.
    let ok = |out: std::process::Output| assert!(out.status.success(), "{}", text(&out));
    let _dummy = Dummy;
    let _ = Command::new("ip")
        .args(["link", "del", EXTERNAL_LINK])
        .output();
    ok(Command::new("ip")
        .args(["link", "add", EXTERNAL_LINK, "type", "bridge"])
        .output()
        .unwrap());
    ok(Command::new("ip")
        .args([
            "addr",
            "add",
            &format!("{EXTERNAL_IP}/32"),
            "dev",
            EXTERNAL_LINK,
        ])
        .output()
        .unwrap());
    ok(Command::new("ip")
        .args(["link", "set", EXTERNAL_LINK, "up"])
        .output()
        .unwrap());
    let ext = format!("{EXTERNAL_IP}:8071");
    let mut last = (0, String::new(), String::new());
    c.eventually(
        "the external IP from the host",
        Duration::from_secs(60),
        || {
            last = curl(&[&format!("http://{ext}/")]);
            last.0 == 0 && names.contains(&last.2)
        },
    );
    c.eventually(
        "the external IP from a pod",
        Duration::from_secs(60),
        || pod_get(&c, "client", &ext).is_ok_and(|b| names.contains(&b)),
    );

    // The LoadBalancer: kube-proxy's health check, and the source ranges.
    let lb: Value = serde_json::from_str(&c.ok(&["get", "svc", "lb", "-o", "json"])).unwrap();
    let hc_port = lb["spec"]["healthCheckNodePort"].as_u64().unwrap();
    let hc = format!("http://127.0.0.1:{hc_port}/");
    let mut last = (0, String::new(), String::new());
    c.eventually("the health check", Duration::from_secs(60), || {
        last = curl(&[&hc]);
        last.1 == "200"
    });
    let health: Value = serde_json::from_str(&last.2).unwrap();
    assert_eq!(health["service"]["namespace"], "default");
    assert_eq!(health["service"]["name"], "lb");
    assert_eq!(health["localEndpoints"], 2, "{}", last.2);
    assert_eq!(health["serviceProxyHealthy"], true);
    let lb_url = format!("http://127.0.0.1:{lb_port}/");
    c.eventually(
        "the load balancer from 127.0.0.2",
        Duration::from_secs(60),
        || {
            let (code, _, body) = curl(&["--interface", "127.0.0.2", &lb_url]);
            code == 0 && names.contains(&body)
        },
    );
    // From 127.0.0.1, outside the ranges: reset (curl: 56, "Recv failure"; or 52, empty; or 7,
    // "Failed to connect", when the reset lands before curl has looked at its connect: under
    // load it reads the socket's error then). The listener is up: 127.0.0.2 was just served.
    let (code, _, body) = curl(&[&lb_url]);
    assert!(code == 56 || code == 52 || code == 7, "curl {code}: {body}");
    // Every range allowed again: served from 127.0.0.1 too.
    c.ok(&[
        "patch",
        "svc",
        "lb",
        "-p",
        r#"{"spec":{"loadBalancerSourceRanges":["127.0.0.0/8"]}}"#,
    ]);
    c.eventually(
        "the load balancer from 127.0.0.1",
        Duration::from_secs(60),
        || {
            let (code, _, body) = curl(&[&lb_url]);
            code == 0 && names.contains(&body)
        },
    );

    // Terminating endpoints: the drain pod deleted, its preStop hook keeps it serving, and
    // the Service uses it rather than refuse.
    let drain = format!("{}:80", cluster_ip("drain"));
    let (drain_pod, _) = names_and_ips(&c, "drain").remove(0);
    c.eventually("the drain Service", Duration::from_secs(60), || {
        pod_get(&c, "client", &drain).is_ok_and(|b| b == drain_pod)
    });
    c.ok(&["scale", "deploy/drain", "--replicas=0"]);
    c.eventually(
        "the drain pod serving and terminating in its slice",
        Duration::from_secs(60),
        || {
            let slices = c.ok(&[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=drain",
                "-o",
                "jsonpath={.items[*].endpoints[*].conditions}",
            ]);
            slices.contains("\"terminating\":true") && slices.contains("\"serving\":true")
        },
    );
    c.eventually(
        "the terminating pod still serving through the Service",
        Duration::from_secs(30),
        || pod_get(&c, "client", &drain).is_ok_and(|b| b == drain_pod),
    );
    // And it goes on doing so (the rules followed the slice, and kept it), never rejecting.
    for _ in 0..5 {
        assert_eq!(pod_get(&c, "client", &drain).unwrap(), drain_pod);
    }
    let table = nft_table(c.server_pid());
    assert!(
        !table.contains(&format!(
            "{} . tcp . 80 : goto reject_chain",
            cluster_ip("drain")
        )),
        "{table}"
    );

    // Scaled to zero: the health check says 503 with no local endpoint.
    c.ok(&["scale", "deploy/web", "--replicas=0"]);
    c.eventually("the health check failing", Duration::from_secs(90), || {
        last = curl(&[&hc]);
        last.1 == "503"
    });
    let health: Value = serde_json::from_str(&last.2).unwrap();
    assert_eq!(health["localEndpoints"], 0, "{}", last.2);
}

fn nft_table(pid: u32) -> String {
    let prefix = format!("lfsvc-{pid}-");
    let out = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    let name = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .find(|t| t.starts_with(&prefix))
        .unwrap_or_default();
    let out = Command::new("nft")
        .args(["list", "table", "ip", &name])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}
