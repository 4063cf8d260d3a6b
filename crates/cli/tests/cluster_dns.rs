//! End-to-end: the built-in CoreDNS (`localfargate coredns -conf FILE`, as the CoreDNS pods run
//! it) against a cluster's real Kubernetes API with the `coredns` ServiceAccount's token,
//! queried by a real DNS client (`dig`), forwarding other names to a real upstream (`dnsmasq`
//! on loopback): ClusterIP, headless and endpoint names, SRV, ExternalName, PTR, pod records,
//! NXDOMAIN vs NODATA, TCP, and answers following changes through the watch.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::free_port;
use common::kube_cluster::{KubeCluster, skip_without_kubectl, text};

const V: &str = "1.33";

const APPS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: nginx
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: default, labels: {app: db}}
spec:
  hostname: db-0
  subdomain: db
  containers: [{name: pg, image: postgres}]
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: default}
spec:
  type: ExternalName
  externalName: upstream.example.test
"#;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn missing_tools() -> Option<String> {
    for tool in ["dig", "dnsmasq"] {
        let found = ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(tool).exists());
        if !found {
            return Some(format!(
                "{tool} is not installed (apt-get install bind9-dnsutils dnsmasq-base)"
            ));
        }
    }
    None
}

/// `dig` at the server: `+short` answers, or the whole reply when `short` is false.
fn dig(port: u16, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=2", "+tries=2"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn short(port: u16, name: &str, qtype: &str) -> Vec<String> {
    let mut v: Vec<String> = dig(port, &["+short", name, qtype])
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// The status of the reply (`NOERROR`, `NXDOMAIN`) and its answer count.
fn status(port: u16, name: &str, qtype: &str) -> (String, usize) {
    let out = dig(port, &[name, qtype]);
    let st = out
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_else(|| panic!("no status in {out}"))
        .to_string();
    let answers = out
        .split("ANSWER: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no answer count in {out}"));
    (st, answers)
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_whitespace().nth(1)?.parse().ok()
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_builtin_coredns_answers_from_the_clusters_api() {
    if skip_without_kubectl() {
        return;
    }
    if let Some(why) = missing_tools() {
        eprintln!("skipped: {why}");
        return;
    }
    let c = KubeCluster::create("dns");
    c.fargate_profile("default", "default");
    let out = c.apply(V, APPS, &[]);
    assert!(out.status.success(), "{}", text(&out));

    // EKS's CoreDNS objects: the ConfigMap with its Corefile, the ClusterRole and binding.
    let cm = c.json(V, &["get", "configmap", "coredns", "-n", "kube-system"]);
    assert!(
        cm["data"]["Corefile"]
            .as_str()
            .unwrap()
            .contains("kubernetes cluster.local in-addr.arpa ip6.arpa"),
        "{cm:#}"
    );
    let can = c.ok(
        V,
        &[
            "auth",
            "can-i",
            "watch",
            "endpointslices.discovery.k8s.io",
            "--as",
            "system:serviceaccount:kube-system:coredns",
        ],
    );
    assert_eq!(can.trim(), "yes");

    // The ServiceAccount's token, and a kubeconfig with it (the `kubeconfig` option of the
    // kubernetes plugin; in a pod the in-cluster config serves).
    let token = c.ok(V, &["create", "token", "coredns", "-n", "kube-system"]);
    let admin: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&c.kubeconfig).unwrap()).unwrap();
    let cluster = &admin["clusters"][0]["cluster"];
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: coredns\n  user:\n    token: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: coredns}}\ncurrent-context: c\n",
            cluster["server"].as_str().unwrap(),
            cluster["certificate-authority-data"].as_str().unwrap(),
            token.trim()
        ),
    )
    .unwrap();

    // An upstream resolver on loopback for names outside the cluster.
    let upstream = free_port();
    let _dnsmasq = Killed(
        Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                &format!("--port={upstream}"),
                "--address=/upstream.example.test/192.0.2.7",
                "--ptr-record=7.2.0.192.in-addr.arpa,upstream.example.test",
                "--pid-file=",
                "--user=root",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let (dns, health, ready) = (free_port(), free_port(), free_port());
    let corefile = dir.path().join("Corefile");
    std::fs::write(
        &corefile,
        format!(
            ".:{dns} {{\n    errors\n    health 127.0.0.1:{health} {{\n        lameduck 5s\n    }}\n    ready 127.0.0.1:{ready}\n    kubernetes cluster.local in-addr.arpa ip6.arpa {{\n      pods insecure\n      fallthrough in-addr.arpa ip6.arpa\n      kubeconfig {}\n    }}\n    forward . 127.0.0.1:{upstream}\n    cache 30\n    loop\n    reload\n    loadbalance\n}}\n",
            kubeconfig.display()
        ),
    )
    .unwrap();
    let _coredns = Killed(
        Command::new(env!("CARGO_BIN_EXE_localfargate"))
            .args(["coredns", "-conf"])
            .arg(&corefile)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually("/ready", || http_status(ready, "/ready") == Some(200));
    assert_eq!(http_status(health, "/health"), Some(200));

    // A ClusterIP Service: its address; no AAAA (NODATA, not NXDOMAIN).
    let web_ip = c.json(V, &["get", "service", "web"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        short(dns, "web.default.svc.cluster.local", "A"),
        [web_ip.as_str()]
    );
    assert_eq!(
        status(dns, "web.default.svc.cluster.local", "AAAA"),
        ("NOERROR".to_string(), 0)
    );
    assert_eq!(
        status(dns, "nope.default.svc.cluster.local", "A"),
        ("NXDOMAIN".to_string(), 0)
    );
    assert_eq!(
        status(dns, "web.default.other.svc.cluster.local", "A"),
        ("NXDOMAIN".to_string(), 0)
    );
    // Over TCP too.
    assert_eq!(
        dig(dns, &["+tcp", "+short", "web.default.svc.cluster.local"]).trim(),
        web_ip
    );
    // SRV of the named port.
    assert_eq!(
        short(dns, "_http._tcp.web.default.svc.cluster.local", "SRV"),
        ["0 100 80 web.default.svc.cluster.local."]
    );
    // PTR of the Service's address.
    let ptr = dig(dns, &["+short", "-x", &web_ip]);
    assert_eq!(ptr.trim(), "web.default.svc.cluster.local.");

    // The headless Service: its ready pod's address, under the pod's hostname too.
    let db_ip = || {
        c.json(V, &["get", "pod", "db-0"])["status"]["podIP"]
            .as_str()
            .map(str::to_string)
    };
    eventually("db-0's address", || db_ip().is_some());
    let db_ip = db_ip().unwrap();
    eventually("the headless Service's endpoint", || {
        short(dns, "db.default.svc.cluster.local", "A") == [db_ip.clone()]
    });
    assert_eq!(
        short(dns, "db-0.db.default.svc.cluster.local", "A"),
        [db_ip.as_str()]
    );
    assert_eq!(
        short(dns, "_pg._tcp.db.default.svc.cluster.local", "SRV"),
        ["0 100 5432 db-0.db.default.svc.cluster.local."]
    );
    assert_eq!(
        dig(dns, &["+short", "-x", &db_ip]).trim(),
        "db-0.db.default.svc.cluster.local."
    );
    // The pod record (`pods insecure`).
    let dashed = db_ip.replace('.', "-");
    assert_eq!(
        short(dns, &format!("{dashed}.default.pod.cluster.local"), "A"),
        [db_ip.as_str()]
    );

    // ExternalName: a CNAME, its target resolved upstream.
    assert_eq!(
        dig(dns, &["+short", "ext.default.svc.cluster.local", "A"])
            .lines()
            .collect::<Vec<_>>(),
        ["upstream.example.test.", "192.0.2.7"]
    );
    // Names outside the cluster, and reverse names it does not know: forwarded.
    assert_eq!(
        short(dns, "upstream.example.test", "A"),
        ["192.0.2.7".to_string()]
    );
    assert_eq!(
        dig(dns, &["+short", "-x", "192.0.2.7"]).trim(),
        "upstream.example.test."
    );
    // The zone's SOA, on a miss and on its own.
    assert!(
        dig(dns, &["nope.default.svc.cluster.local"])
            .contains("ns.dns.cluster.local. hostmaster.cluster.local."),
    );
    assert_eq!(short(dns, "cluster.local", "SOA").len(), 1);

    // Changes arrive through the watch: the Service goes, its name with it.
    c.ok(V, &["delete", "service", "web"]);
    eventually("web's name to go", || {
        status(dns, "web.default.svc.cluster.local", "A").0 == "NXDOMAIN"
    });
}
