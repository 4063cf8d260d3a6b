//! End-to-end, with real kubectl, real nftables and real network namespaces on `localfargate up
//! --runtime process`: the Service data path and in-cluster access to the API. A web Deployment
//! (busybox httpd) behind a NodePort Service reached by its ClusterIP from another pod and from
//! the host, by its NodePort on a node's address from the host, by itself through its own
//! Service (hairpin), with `sessionAffinity: ClientIP`; the kubelet's Service variables; an
//! unmodified kubectl in a pod listing pods through the `kubernetes` Service with its
//! ServiceAccount token; scaling to zero refuses connections and leaves no endpoint in the
//! rules; a killed server's table is reaped by the next; deleting the cluster leaves no table.
//!
//! Needs root, runc, busybox-static, docker-registry, skopeo and nft; skipped otherwise.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::process_cluster::{Cluster, KUBECTL, load, network_flags, text};
use localfargate_runtime::image::LayoutFile;
use localfargate_runtime::test_images::busybox_layout_with;
use serde_json::Value;

const IMAGE: &str = "localfargate.test/busybox:svc";

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: httpd
        image: localfargate.test/busybox:svc
        command: [sh, -c, 'mkdir -p /www; echo "$HOSTNAME" > /www/index.html; exec httpd -f -p 8080 -h /www']
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"#;

const CLIENT: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers:
  - {name: c, image: localfargate.test/busybox:svc, command: [sleep, "3600"]}
"#;

fn nft_tables() -> Vec<String> {
    let out = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect()
}

fn table_of(pid: u32) -> Option<String> {
    let prefix = format!("lfsvc-{pid}-");
    nft_tables().into_iter().find(|t| t.starts_with(&prefix))
}

/// An HTTP GET from the host; the body, or the error.
fn host_get(addr: SocketAddr) -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string())
}

/// An HTTP GET of `addr` from `pod` (busybox `nc`: Debian's static busybox `wget` needs NSS
/// libraries the image does not have): the body, or nc's error.
fn pod_get(c: &Cluster, pod: &str, addr: &str) -> Result<String, String> {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = c.http_from("default", pod, host, port.parse().unwrap(), "/", 5);
    let all = String::from_utf8_lossy(&out.stdout).to_string();
    match all.split("\r\n\r\n").nth(1) {
        Some(body) if out.status.success() => Ok(body.trim().to_string()),
        _ => Err(text(&out)),
    }
}

#[test]
fn services_route_balance_hairpin_stick_and_reject_and_pods_reach_the_api() {
    skip_unless_able!();
    if Command::new("nft").arg("-v").output().is_err() {
        eprintln!("skipped: nft is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kubectl = std::fs::read(KUBECTL).unwrap();
    let layout = dir.path().join("layout");
    busybox_layout_with(
        &layout,
        IMAGE,
        &["sh"],
        vec![LayoutFile::File {
            path: "bin/kubectl".into(),
            mode: 0o755,
            data: kubectl,
        }],
    )
    .unwrap();
    // A VPC model of its own (10.61.0.0/16): addresses no other test's pods have.
    let flags = network_flags(dir.path(), "10.61.", |_| {});
    let mut c = Cluster::new(&flags, |data| load(data, &layout));
    let pid = c.server_pid();

    c.apply(WEB);
    c.ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    c.apply(CLIENT);
    c.wait_ready("default", "client");
    let svc: Value = serde_json::from_str(&c.ok(&["get", "svc", "web", "-o", "json"])).unwrap();
    let cluster_ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap() as u16;
    let pods: Value =
        serde_json::from_str(&c.ok(&["get", "pods", "-l", "app=web", "-o", "json"])).unwrap();
    let web: Vec<(String, String)> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                p["status"]["podIP"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let names: BTreeSet<String> = web.iter().map(|(n, _)| n.clone()).collect();
    let url = format!("{cluster_ip}:80");

    // The kubelet's Service variables.
    let env = c.ok(&["exec", "client", "--", "env"]);
    assert!(
        env.contains("KUBERNETES_SERVICE_HOST=10.100.0.1\n"),
        "{env}"
    );
    assert!(
        env.contains("KUBERNETES_PORT_443_TCP_ADDR=10.100.0.1\n"),
        "{env}"
    );
    assert!(env.contains("KUBERNETES_SERVICE_PORT=443\n"), "{env}");
    assert!(env.contains("KUBERNETES_SERVICE_PORT_HTTPS=443\n"), "{env}");
    assert!(
        env.contains("KUBERNETES_PORT=tcp://10.100.0.1:443\n"),
        "{env}"
    );
    assert!(
        env.contains(&format!("WEB_SERVICE_HOST={cluster_ip}\n")),
        "{env}"
    );
    assert!(
        env.contains(&format!("WEB_PORT_80_TCP=tcp://{cluster_ip}:80\n")),
        "{env}"
    );

    // ClusterIP from another pod, balanced over both endpoints.
    let mut seen = BTreeSet::new();
    c.eventually(
        "both web pods through the ClusterIP",
        Duration::from_secs(60),
        || {
            if let Ok(body) = pod_get(&c, "client", &url) {
                assert!(names.contains(&body), "{body}");
                seen.insert(body);
            }
            seen.len() == 2
        },
    );

    // From the host: the ClusterIP, and the NodePort on the client's node address.
    let host_ip: String = c.pod("default", "client")["status"]["hostIP"]
        .as_str()
        .unwrap()
        .to_string();
    for addr in [format!("{cluster_ip}:80"), format!("{host_ip}:{node_port}")] {
        let addr: SocketAddr = addr.parse().unwrap();
        let mut last = String::new();
        c.eventually(
            &format!("{addr} from the host"),
            Duration::from_secs(30),
            || match host_get(addr) {
                Ok(body) => {
                    last = body.clone();
                    names.contains(&body)
                }
                Err(e) => {
                    last = e;
                    false
                }
            },
        );
        assert!(names.contains(&last), "{addr}: {last}");
    }

    // Hairpin: a web pod reaches itself through its own Service.
    let (me, _) = &web[0];
    c.eventually(
        "a web pod answering itself through its Service",
        Duration::from_secs(60),
        || pod_get(&c, me, &url).is_ok_and(|body| &body == me),
    );

    // sessionAffinity: ClientIP sticks to one endpoint.
    c.ok(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"sessionAffinity":"ClientIP","sessionAffinityConfig":{"clientIP":{"timeoutSeconds":60}}}}"#,
    ]);
    c.eventually("the affinity in the rules", Duration::from_secs(30), || {
        let t = table_of(pid).unwrap_or_default();
        let out = Command::new("nft")
            .args(["list", "table", "ip", &t])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("timeout 1m")
    });
    let first = pod_get(&c, "client", &url).unwrap();
    for _ in 0..10 {
        assert_eq!(pod_get(&c, "client", &url).unwrap(), first);
    }

    // kubectl in a pod, through the `kubernetes` Service, with its ServiceAccount token.
    c.ok(&[
        "create",
        "rolebinding",
        "default-view",
        "--clusterrole=view",
        "--serviceaccount=default:default",
    ]);
    let ep: Value =
        serde_json::from_str(&c.ok(&["get", "endpoints", "kubernetes", "-o", "json"])).unwrap();
    assert!(ep["subsets"][0]["addresses"][0]["ip"].is_string(), "{ep}");
    let cm = c.ok(&[
        "get",
        "configmap",
        "kube-root-ca.crt",
        "-o",
        "jsonpath={.data.ca\\.crt}",
    ]);
    assert!(cm.contains("BEGIN CERTIFICATE"), "{cm}");
    let mut listed = String::new();
    c.eventually(
        "kubectl in a pod listing pods",
        Duration::from_secs(30),
        || {
            let out = c.kubectl(&[
                "exec", "client", "--", "kubectl", "get", "pods", "-o", "name",
            ]);
            listed = text(&out);
            out.status.success()
        },
    );
    assert!(listed.contains("pod/client"), "{listed}");
    for (name, _) in &web {
        assert!(listed.contains(&format!("pod/{name}")), "{listed}");
    }
    let out = c.kubectl(&["exec", "client", "--", "kubectl", "get", "secrets"]);
    assert!(text(&out).contains("forbidden"), "{}", text(&out));

    // Scaled to zero: connections are refused and no endpoint stays in the rules.
    c.ok(&["scale", "deploy/web", "--replicas=0"]);
    let mut last = String::new();
    c.eventually("a refused connection", Duration::from_secs(90), || {
        last = pod_get(&c, "client", &url).err().unwrap_or_default();
        last.contains("Connection refused")
    });
    // The refusal may come from a terminating pod still in the rules (kube-proxy's fallback to
    // serving, terminating endpoints when none is ready); once the pods are gone, none is left.
    let t = table_of(pid).expect("the cluster's table");
    let mut rules = String::new();
    c.eventually(
        "no endpoint left in the rules",
        Duration::from_secs(90),
        || {
            let out = Command::new("nft")
                .args(["list", "table", "ip", &t])
                .output()
                .unwrap();
            rules = String::from_utf8_lossy(&out.stdout).to_string();
            web.iter()
                .all(|(_, ip)| !rules.contains(&format!("dnat to {ip}:")))
                && rules.contains(&format!("{cluster_ip} . tcp . 80 : goto reject_chain"))
        },
    );

    // A killed server's table is reaped by the next one, which serves the pods again.
    c.crash_and_restart();
    let restarted = c.server_pid();
    c.eventually(
        "the restarted server's table",
        Duration::from_secs(60),
        || table_of(restarted).is_some() && table_of(pid).is_none(),
    );
    c.eventually(
        "a refused connection again",
        Duration::from_secs(60),
        || {
            pod_get(&c, "client", &url)
                .err()
                .is_some_and(|e| e.contains("Connection refused"))
        },
    );

    // Deleting the cluster removes its table.
    c.delete();
    assert_eq!(table_of(restarted), None);
}
