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
            .stderr(std::fs::File::create(dir.path().join("coredns.log")).unwrap())
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

/// An upstream resolver on loopback (`dnsmasq`) answering `address` rules (`/domain/ip`).
fn dnsmasq(port: u16, addresses: &[&str]) -> Killed {
    let mut cmd = Command::new("dnsmasq");
    cmd.args([
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--listen-address=127.0.0.1",
        &format!("--port={port}"),
        // Answers with a TTL the cache keeps (dnsmasq's own default is 0).
        "--local-ttl=60",
        "--pid-file=",
        "--user=root",
    ]);
    for a in addresses {
        cmd.arg(format!("--address={a}"));
    }
    Killed(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn http_body(port: u16, path: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The value of the series of `family` whose labels include all of `labels`.
fn metric(text: &str, family: &str, labels: &[&str]) -> Option<u64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn stub_domains_reload_and_metrics() {
    if skip_without_kubectl() {
        return;
    }
    if let Some(why) = missing_tools() {
        eprintln!("skipped: {why}");
        return;
    }
    let c = KubeCluster::create("dnsstub");
    let out = c.apply(
        V,
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n",
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let web_ip = c.json(V, &["get", "service", "web"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
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

    // The cluster's upstream (the VPC resolver's stand-in) and a corporate resolver that the
    // stub domains go to; each answers the other's names differently, so a wrong route shows.
    let (vpc, corp, dead) = (free_port(), free_port(), free_port());
    let _vpc = dnsmasq(
        vpc,
        &[
            "/upstream.example.test/192.0.2.7",
            "/example.internal/192.0.2.66",
        ],
    );
    let _corp = dnsmasq(
        corp,
        &[
            "/example.internal/10.9.8.7",
            "/corp.test/10.7.7.7",
            "/upstream.example.test/203.0.113.9",
        ],
    );

    let (dns, ready, prom) = (free_port(), free_port(), free_port());
    let corefile = dir.path().join("Corefile");
    // A stub domain beside EKS's block, as users add it to the `coredns` ConfigMap: two
    // upstreams (the first one dead, tried first), an `except`, and a plugin the built-in
    // does not do.
    let stub = format!(
        "example.internal:{dns} {{\n    errors\n    cache 30\n    forward . 127.0.0.1:{dead} 127.0.0.1:{corp} {{\n        policy sequential\n        except skip.example.internal\n    }}\n    hosts /etc/hosts.corp\n}}\n"
    );
    let root = format!(
        ".:{dns} {{\n    errors\n    ready 127.0.0.1:{ready}\n    kubernetes cluster.local in-addr.arpa ip6.arpa {{\n      pods insecure\n      fallthrough in-addr.arpa ip6.arpa\n      kubeconfig {}\n    }}\n    prometheus 127.0.0.1:{prom}\n    forward . 127.0.0.1:{vpc}\n    cache 30\n    loop\n    reload 2s 1s\n    loadbalance\n}}\n",
        kubeconfig.display()
    );
    std::fs::write(&corefile, format!("{stub}{root}")).unwrap();
    let log = dir.path().join("coredns.log");
    let _coredns = Killed(
        Command::new(env!("CARGO_BIN_EXE_localfargate"))
            .args(["coredns", "-conf"])
            .arg(&corefile)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    eventually("/ready", || http_status(ready, "/ready") == Some(200));
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        logged().contains("not supported") && logged().contains("plugins=hosts"),
        "{}",
        logged()
    );

    // Routed by the most specific zone: the stub's names to the corporate resolver (past the
    // dead first upstream), the rest to the VPC's, the cluster's from the API.
    assert_eq!(short(dns, "db.example.internal", "A"), ["10.9.8.7"]);
    assert_eq!(short(dns, "upstream.example.test", "A"), ["192.0.2.7"]);
    assert_eq!(
        short(dns, "web.default.svc.cluster.local", "A"),
        [web_ip.as_str()]
    );
    assert_eq!(
        status(dns, "a.skip.example.internal", "A"),
        ("SERVFAIL".to_string(), 0)
    );
    // Not yet a stub domain: corp.test goes to the VPC resolver, which does not know it.
    assert_ne!(short(dns, "app.corp.test", "A"), ["10.7.7.7"]);
    // A second time from the stub block's cache.
    assert_eq!(short(dns, "db.example.internal", "A"), ["10.9.8.7"]);

    // `/metrics` with CoreDNS's names and labels.
    let m = http_body(prom, "/metrics");
    assert!(m.contains("coredns_build_info{"), "{m}");
    let server = format!("server=\"dns://:{dns}\"");
    assert!(
        metric(
            &m,
            "coredns_dns_requests_total",
            &[
                &server,
                "zone=\"example.internal.\"",
                "proto=\"udp\"",
                "type=\"A\""
            ]
        )
        .is_some_and(|n| n >= 3),
        "{m}"
    );
    assert!(
        metric(
            &m,
            "coredns_dns_responses_total",
            &[&server, "zone=\"example.internal.\"", "rcode=\"SERVFAIL\""]
        )
        .is_some_and(|n| n >= 1),
        "{m}"
    );
    assert!(
        metric(
            &m,
            "coredns_dns_responses_total",
            &[&server, "zone=\"cluster.local.\"", "rcode=\"NOERROR\""]
        )
        .is_none()
            && metric(
                &m,
                "coredns_dns_responses_total",
                &[
                    &server,
                    "zone=\".\"",
                    "rcode=\"NOERROR\"",
                    "plugin=\"kubernetes\""
                ]
            )
            .is_some_and(|n| n >= 1),
        "{m}"
    );
    assert!(
        metric(
            &m,
            "coredns_cache_hits_total",
            &[&server, "zones=\"example.internal.\"", "type=\"success\""]
        )
        .is_some_and(|n| n >= 1),
        "{m}"
    );
    assert!(
        metric(
            &m,
            "coredns_cache_misses_total",
            &[&server, "zones=\"example.internal.\""]
        )
        .is_some_and(|n| n >= 1),
        "{m}"
    );

    // `reload`: a new stub domain in the Corefile is served without a restart.
    let corp_block = format!("corp.test:{dns} {{\n    forward . 127.0.0.1:{corp}\n}}\n");
    std::fs::write(&corefile, format!("{stub}{corp_block}{root}")).unwrap();
    eventually("the reloaded Corefile's stub domain", || {
        short(dns, "app.corp.test", "A") == ["10.7.7.7"]
    });
    assert_eq!(
        short(dns, "web.default.svc.cluster.local", "A"),
        [web_ip.as_str()]
    );
    // A Corefile that does not parse: the old config keeps serving, the error is logged.
    let broken = root.replace("    loadbalance\n", "    loadbalance\n    banana\n");
    std::fs::write(&corefile, format!("{stub}{corp_block}{broken}")).unwrap();
    eventually("the failed reload's log", || {
        logged().contains("Corefile changed but reload failed")
    });
    assert!(
        logged().contains("Unknown directive 'banana'"),
        "{}",
        logged()
    );
    assert_eq!(short(dns, "app.corp.test", "A"), ["10.7.7.7"]);
    let m = http_body(prom, "/metrics");
    assert!(
        metric(&m, "coredns_reload_failed_total", &[]).is_some_and(|n| n >= 1),
        "{m}"
    );
}

#[test]
fn loop_stops_a_server_that_forwards_to_itself() {
    // CoreDNS's own example: `loop` and a `forward` to this very server.
    let dir = tempfile::tempdir().unwrap();
    let dns = free_port();
    let corefile = dir.path().join("Corefile");
    std::fs::write(
        &corefile,
        format!(".:{dns} {{\n    loop\n    forward . 127.0.0.1:{dns}\n}}\n"),
    )
    .unwrap();
    let log = dir.path().join("coredns.log");
    let mut coredns = Killed(
        Command::new(env!("CARGO_BIN_EXE_localfargate"))
            .args(["coredns", "-conf"])
            .arg(&corefile)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut exit = None;
    eventually("the server to stop", || {
        exit = coredns.0.try_wait().unwrap();
        exit.is_some()
    });
    assert_eq!(exit.and_then(|s| s.code()), Some(1));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains(&format!(" -> :{dns}) detected for zone \".\", see https://coredns.io/plugins/loop#troubleshooting. Query: \"HINFO "))
            && logged.contains("plugin/loop: Loop (127.0.0.1:"),
        "{logged}"
    );
}

/// The type of the question of a DNS query in `buf` (after the header and the name).
fn question_type(buf: &[u8]) -> Option<u16> {
    let mut i = 12;
    loop {
        let len = usize::from(*buf.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        i += len;
    }
    Some(u16::from_be_bytes([*buf.get(i)?, *buf.get(i + 1)?]))
}

/// An upstream that has died without its address going away (a host that drops packets): it
/// receives queries and never answers, counting the A questions and the NS ones (forward's
/// health checks ask `. IN NS`).
struct Silent {
    port: u16,
    a: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ns: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Silent {
    fn start() -> Silent {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let (a, ns) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (a, ns, stop) = (a.clone(), ns.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Acquire) {
                    let Ok(n) = sock.recv(&mut buf) else {
                        continue;
                    };
                    match question_type(&buf[..n]) {
                        Some(1) => a.fetch_add(1, Ordering::AcqRel),
                        Some(2) => ns.fetch_add(1, Ordering::AcqRel),
                        _ => 0,
                    };
                }
            })
        };
        Silent {
            port,
            a,
            ns,
            stop,
            thread: Some(thread),
        }
    }

    fn a(&self) -> u64 {
        self.a.load(std::sync::atomic::Ordering::Acquire)
    }

    fn ns(&self) -> u64 {
        self.ns.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Close its socket (the port is free again).
    fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

#[test]
fn forward_marks_a_dead_upstream_down_until_its_health_check_passes_and_loadbalance_shuffles() {
    if let Some(why) = missing_tools() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The first upstream is silent; the second (dnsmasq) answers `*.x.test` and two names of
    // four addresses each.
    let silent = Silent::start();
    let dead = silent.port;
    let (live, dns, prom) = (free_port(), free_port(), free_port());
    let mut records = Vec::new();
    for name in ["lb.test", "lb.rr.test"] {
        for i in 1..=4 {
            records.push(format!("--host-record={name},10.3.0.{i}"));
        }
    }
    let _live = {
        let mut cmd = Command::new("dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            &format!("--port={live}"),
            "--local-ttl=60",
            "--address=/x.test/10.2.2.2",
            "--pid-file=",
            "--user=root",
        ])
        .args(&records);
        Killed(
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    // `lb.test` has a block without loadbalance (its cached answer keeps one order); the root
    // block has it. Both cache, so the order an answer has is the server's, not dnsmasq's.
    let corefile = dir.path().join("Corefile");
    std::fs::write(
        &corefile,
        format!(
            "lb.test:{dns} {{\n    cache 30\n    forward . 127.0.0.1:{live}\n}}\n.:{dns} {{\n    prometheus 127.0.0.1:{prom}\n    cache 30\n    forward . 127.0.0.1:{dead} 127.0.0.1:{live} {{\n        policy sequential\n        max_fails 2\n        health_check 100ms\n    }}\n    loadbalance\n}}\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("coredns.log");
    let _coredns = Killed(
        Command::new(env!("CARGO_BIN_EXE_localfargate"))
            .args(["coredns", "-conf"])
            .arg(&corefile)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    // Names no cache holds yet, one per question.
    let mut n = 0;
    let mut fresh = || {
        n += 1;
        format!("q{n}.x.test")
    };
    // The silent upstream is tried first and times out; the next one answers; the silent one
    // gets health checks from then on.
    let slow = |name: &str| -> Vec<String> {
        dig(dns, &["+time=5", "+short", name])
            .lines()
            .map(str::to_string)
            .collect()
    };
    eventually("a first answer", || slow(&fresh()) == ["10.2.2.2"]);
    assert!(!logged().contains("not supported"), "{}", logged());
    let failures = |m: &str| {
        metric(
            m,
            "coredns_proxy_healthcheck_failures_total",
            &[
                "proxy_name=\"forward\"",
                &format!("to=\"127.0.0.1:{dead}\""),
            ],
        )
        .unwrap_or(0)
    };
    // More than max_fails (2) failed checks: down.
    eventually("three failed health checks", || {
        failures(&http_body(prom, "/metrics")) >= 3
    });
    assert!(silent.ns() >= 3, "the checks ask NS: {}", silent.ns());
    // Down: skipped, so it sees no more of the questions while the other answers them.
    let asked = silent.a();
    for _ in 0..5 {
        assert_eq!(slow(&fresh()), ["10.2.2.2"]);
    }
    assert_eq!(silent.a(), asked, "a down upstream is skipped");

    // loadbalance: the root block's cached answer comes in many orders, the other block's in
    // one; every address always there.
    let order = |name: &str| -> Vec<String> {
        dig(dns, &["+short", name, "A"])
            .lines()
            .map(str::to_string)
            .collect()
    };
    let firsts = |name: &str| {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..40 {
            let o = order(name);
            let mut sorted = o.clone();
            sorted.sort();
            assert_eq!(sorted, ["10.3.0.1", "10.3.0.2", "10.3.0.3", "10.3.0.4"]);
            seen.insert(o.join(" "));
        }
        seen
    };
    assert!(firsts("lb.rr.test").len() > 1, "loadbalance shuffles");
    assert_eq!(firsts("lb.test").len(), 1, "no loadbalance, one order");

    // It comes back (a resolver on the same address): a check passes, it is up and, first in
    // the sequential order, answers again.
    silent.stop();
    let _back = dnsmasq(dead, &["/x.test/10.1.1.1"]);
    eventually("the upstream to be used again", || {
        slow(&fresh()) == ["10.1.1.1"]
    });
}
