//! End-to-end on `localfargate up --runtime process`: the host's listeners for Services beyond
//! TCP load balancers: a UDP Service reached from the host, as an NLB's UDP listener and a
//! node's UDP port reach it on EKS, and external IPs on loopback. The pods run the host's own
//! `dnsmasq` (a real UDP and TCP server), the client is the host's `dig`.
//!
//! * A LoadBalancer Service with a UDP and a TCP port of the same number (mixed protocols):
//!   both answer on `127.0.0.1:<port>`, and the UDP node port too.
//! * Each client address is one flow to one pod; different clients are spread over the pods.
//! * `loadBalancerSourceRanges` drops UDP clients outside them (the node port is not limited).
//! * A ClusterIP Service's `externalIPs` on loopback (127.0.0.73) answer over UDP and TCP.
//! * Scaled to zero, datagrams are dropped; deleted, the ports are free again.
//!
//! Needs root, runc, busybox-static, nft, dig and dnsmasq; skipped otherwise.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::process_cluster::{Cluster, load, network_flags};

const IMAGE: &str = "localfargate.test/dnsmasq:udp";
const DNSMASQ: &str = "/usr/sbin/dnsmasq";
/// What the pods answer for `udp.test`.
const ANSWER: &str = "10.9.8.7";
/// The loopback external IP.
const LOOPBACK_EXTERNAL_IP: &str = "127.0.0.73";

/// `dig @127.0.0.1 -p PORT NAME TYPE` with one try: its short answer, or `None` when nothing
/// answered (or dig failed).
fn dig(port: u16, name: &str, kind: &str, extra: &[&str]) -> Option<String> {
    dig_at("127.0.0.1", port, name, kind, extra)
}

/// [`dig`] of the server at `server`.
fn dig_at(server: &str, port: u16, name: &str, kind: &str, extra: &[&str]) -> Option<String> {
    let out = Command::new("dig")
        .args([
            &format!("@{server}"),
            "-p",
            &port.to_string(),
            name,
            kind,
            "+short",
            "+tries=1",
            "+time=2",
        ])
        .args(extra)
        .output()
        .ok()?;
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !answer.is_empty() && !answer.starts_with(';')).then_some(answer)
}

/// A port free for both UDP and TCP on loopback.
fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn deployment(replicas: u32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: dns}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: dns}}}}
  template:
    metadata: {{labels: {{app: dns}}}}
    spec:
      containers:
      - name: dnsmasq
        image: {IMAGE}
        command: [sh, -c, 'exec {DNSMASQ} -k -p 5353 -C /dev/null --no-resolv --no-hosts --user=root --group=root --pid-file= --log-facility=- --address=/udp.test/{ANSWER} --txt-record=who.udp.test,$HOSTNAME']
        ports: [{{name: dns, containerPort: 5353, protocol: UDP}}, {{name: dns-tcp, containerPort: 5353}}]
        readinessProbe: {{tcpSocket: {{port: dns-tcp}}, periodSeconds: 1}}
"#
    )
}

#[test]
fn udp_load_balancers_node_ports_and_loopback_external_ips_reach_pods_from_the_host() {
    skip_unless_able!();
    if Command::new("dig").arg("-v").output().is_err() {
        eprintln!("skipped: dig is not installed (bind9-dnsutils)");
        return;
    }
    if !Path::new(DNSMASQ).exists() {
        eprintln!("skipped: {DNSMASQ} is not installed (dnsmasq-base)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout-dnsmasq");
    let programs = common::host_files::programs(&[DNSMASQ]).unwrap();
    localfargate_runtime::test_images::busybox_layout_with(&layout, IMAGE, &["sh"], programs)
        .unwrap();
    // A VPC model of its own (10.73.0.0/16): addresses no other test's pods have.
    let flags = network_flags(dir.path(), "10.73.", |_| {});
    let c = Cluster::new(&flags, |data| load(data, &layout));

    let port = free_port();
    c.apply(&deployment(2));
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: dns}}
spec:
  type: LoadBalancer
  selector: {{app: dns}}
  ports:
  - {{name: dns, port: {port}, targetPort: dns, protocol: UDP}}
  - {{name: dns-tcp, port: {port}, targetPort: dns-tcp, protocol: TCP}}
---
apiVersion: v1
kind: Service
metadata: {{name: loopback}}
spec:
  externalIPs: ["{LOOPBACK_EXTERNAL_IP}"]
  selector: {{app: dns}}
  ports:
  - {{name: dns, port: {port}, targetPort: dns, protocol: UDP}}
  - {{name: dns-tcp, port: {port}, targetPort: dns-tcp, protocol: TCP}}
"#
    ));
    c.ok(&["rollout", "status", "deploy/dns", "--timeout=120s"]);

    // The load balancer's UDP and TCP listeners on the same port.
    c.eventually("an answer over UDP", Duration::from_secs(60), || {
        dig(port, "udp.test", "A", &[]).as_deref() == Some(ANSWER)
    });
    assert_eq!(
        dig(port, "udp.test", "A", &["+tcp"]).as_deref(),
        Some(ANSWER)
    );
    // The UDP node port.
    let node_port: u16 = c
        .ok(&[
            "get",
            "svc",
            "dns",
            "-o",
            "jsonpath={.spec.ports[?(@.protocol==\"UDP\")].nodePort}",
        ])
        .trim()
        .parse()
        .unwrap();
    c.eventually(
        "an answer on the UDP node port",
        Duration::from_secs(30),
        || dig(node_port, "udp.test", "A", &[]).as_deref() == Some(ANSWER),
    );

    // The external IP on loopback, both protocols.
    c.eventually(
        "an answer on the loopback external IP",
        Duration::from_secs(30),
        || dig_at(LOOPBACK_EXTERNAL_IP, port, "udp.test", "A", &[]).as_deref() == Some(ANSWER),
    );
    assert_eq!(
        dig_at(LOOPBACK_EXTERNAL_IP, port, "udp.test", "A", &["+tcp"]).as_deref(),
        Some(ANSWER)
    );

    // Each dig is a new client (a new source port), so a new flow: they are spread over both
    // pods, which answer with their names.
    let pods: BTreeSet<String> = c
        .ok(&[
            "get",
            "pods",
            "-l",
            "app=dns",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .split_whitespace()
        .map(|n| format!("\"{n}\""))
        .collect();
    assert_eq!(pods.len(), 2);
    let mut answered = BTreeSet::new();
    for _ in 0..20 {
        if let Some(who) = dig(port, "who.udp.test", "TXT", &[]) {
            answered.insert(who);
        }
        if answered == pods {
            break;
        }
    }
    assert_eq!(answered, pods, "clients spread over both pods");

    // Source ranges: the host's 127.0.0.1 is outside 10.0.0.0/8, so its datagrams are dropped
    // (no answer); the node port is not limited.
    c.ok(&[
        "patch",
        "svc",
        "dns",
        "--type=merge",
        "-p",
        r#"{"spec":{"loadBalancerSourceRanges":["10.0.0.0/8"]}}"#,
    ]);
    c.eventually(
        "UDP from outside the source ranges dropped",
        Duration::from_secs(30),
        || dig(port, "udp.test", "A", &[]).is_none(),
    );
    assert_eq!(
        dig(node_port, "udp.test", "A", &[]).as_deref(),
        Some(ANSWER)
    );
    c.ok(&[
        "patch",
        "svc",
        "dns",
        "--type=merge",
        "-p",
        r#"{"spec":{"loadBalancerSourceRanges":null}}"#,
    ]);
    c.eventually("UDP let in again", Duration::from_secs(30), || {
        dig(port, "udp.test", "A", &[]).as_deref() == Some(ANSWER)
    });

    // No endpoints: dropped; endpoints again: answered.
    c.ok(&["scale", "deploy/dns", "--replicas=0"]);
    c.eventually(
        "no answer at zero replicas",
        Duration::from_secs(60),
        || dig(port, "udp.test", "A", &[]).is_none(),
    );
    c.ok(&["scale", "deploy/dns", "--replicas=1"]);
    c.eventually("an answer at one replica", Duration::from_secs(90), || {
        dig(port, "udp.test", "A", &[]).as_deref() == Some(ANSWER)
    });

    // Deleted: the ports are the host's again.
    c.ok(&["delete", "svc", "dns", "loopback"]);
    c.eventually("the UDP ports free", Duration::from_secs(30), || {
        std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", node_port)).is_ok()
            && std::net::UdpSocket::bind((LOOPBACK_EXTERNAL_IP, port)).is_ok()
            && std::net::TcpListener::bind((LOOPBACK_EXTERNAL_IP, port)).is_ok()
    });
}
