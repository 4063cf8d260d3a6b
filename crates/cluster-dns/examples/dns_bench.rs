//! DNS queries per second and latency (p50, p99) of the cluster DNS beside dnsmasq answering
//! the same names, in one run: N ClusterIP Services (`svc-I.bench.svc.cluster.local`), served by
//! this crate's server in a process of its own (with `loadbalance`, as EKS's Corefile has it)
//! and by `dnsmasq` (`--host-record` per name), both on loopback, each driven by the same
//! closed-loop load (C clients, each one query in flight, random names) for D seconds.
//!
//! `cargo run --release -p localfargate-cluster-dns --example dns_bench -- [--services N]
//! [--clients C] [--seconds D] [--rounds R] [--prometheus] [--anchor BIN]` (needs `dnsmasq`:
//! apt-get install dnsmasq-base).
//!
//! `--prometheus` also measures the server counting every query into its metrics (EKS's
//! Corefile has `prometheus`); `--anchor BIN` (repeatable) also measures another build of this
//! example (its `serve PORT N`, e.g. one of an older commit), so both are measured in the same
//! run by the same load. With `--rounds R` every server is measured R times, in turns, and the
//! medians are printed too.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use localfargate_cluster_dns::metrics::Metrics;
use localfargate_cluster_dns::records::Authority;
use localfargate_cluster_dns::server::{DnsHandler, Router, SharedRouter, serve_udp};
use localfargate_cluster_dns::state::{ClusterState, Kind};
use serde_json::json;
use tokio::net::UdpSocket;

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ip(i: u64) -> Ipv4Addr {
    Ipv4Addr::new(10, 100, 1 + (i / 250) as u8, 1 + (i % 250) as u8)
}

fn name(i: u64) -> String {
    format!("svc-{i}.bench.svc.cluster.local.")
}

/// `serve PORT N [--prometheus]`: the cluster DNS with N Services, until killed.
fn serve(port: u16, n: u64, prometheus: bool) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async move {
        let mut s = ClusterState::new();
        s.upsert(Kind::Namespace, &json!({"metadata": {"name": "bench"}}));
        for i in 0..n {
            s.upsert(
                Kind::Service,
                &json!({"metadata": {"name": format!("svc-{i}"), "namespace": "bench"},
                        "spec": {"clusterIP": ip(i).to_string(),
                                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}),
            );
        }
        let handler = DnsHandler {
            authority: Some(
                Authority::new("cluster.local", &["in-addr.arpa", "ip6.arpa"]).expect("the zone"),
            ),
            state: Arc::new(RwLock::new(s)),
            forwarder: None,
            loadbalance: true,
        };
        let mut router = Router::single(port, handler);
        let metrics = Metrics::default();
        if prometheus {
            router.count_into(&metrics);
        }
        let router = SharedRouter::new(router);
        let sock = UdpSocket::bind(("127.0.0.1", port)).await.expect("bind");
        serve_udp(sock, router).await;
    });
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Result {
    queries: u64,
    lost: u64,
    wrong: u64,
    qps: f64,
    p50: Duration,
    p99: Duration,
}

async fn one(sock: &UdpSocket, id: u16, i: u64) -> Option<bool> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        Name::from_ascii(name(i)).expect("a name"),
        RecordType::A,
    ));
    sock.send(&m.to_vec().ok()?).await.ok()?;
    let mut buf = [0u8; 1500];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf))
            .await
            .ok()?
            .ok()?;
        let r = Message::from_vec(&buf[..n]).ok()?;
        if r.metadata.id != id {
            continue;
        }
        let ok = r
            .answers
            .first()
            .is_some_and(|a| matches!(&a.data, hickory_proto::rr::RData::A(x) if x.0 == ip(i)));
        return Some(ok);
    }
}

async fn load(server: SocketAddr, n: u64, clients: u64, seconds: u64) -> Result {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let start = Instant::now();
    for c in 0..clients {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            sock.connect(server).await.expect("connect");
            let mut lat = Vec::new();
            let (mut lost, mut wrong) = (0u64, 0u64);
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ (c + 1);
            let mut id: u16 = (c as u16).wrapping_mul(7919);
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                id = id.wrapping_add(1);
                let t = Instant::now();
                match one(&sock, id, x % n).await {
                    Some(true) => lat.push(t.elapsed()),
                    Some(false) => wrong += 1,
                    None => lost += 1,
                }
            }
            (lat, lost, wrong)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let (mut lost, mut wrong) = (0, 0);
    for t in tasks {
        let (l, lo, w) = t.await.expect("a client");
        all.extend(l);
        lost += lo;
        wrong += w;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Result {
        queries: all.len() as u64,
        lost,
        wrong,
        qps: all.len() as f64 / elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

fn wait_answering(addr: SocketAddr) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        sock.connect(addr).await.expect("connect");
        for _ in 0..100 {
            if one(&sock, 1, 0).await == Some(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{addr} does not answer svc-0");
    });
}

fn spawn_server(program: &std::path::Path, port: u16, n: u64, extra: &[&str]) -> Killed {
    Killed(
        Command::new(program)
            .args(["serve", &port.to_string(), &n.to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("the cluster DNS"),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        let port = args[2].parse().expect("a port");
        let n = args[3].parse().expect("a count");
        serve(port, n, args.iter().any(|a| a == "--prometheus"));
        return;
    }
    let n = arg(&args, "--services", 1000);
    let clients = arg(&args, "--clients", 16);
    let seconds = arg(&args, "--seconds", 10);
    let rounds = arg(&args, "--rounds", 1).max(1);
    let prometheus = args.iter().any(|a| a == "--prometheus");
    // `--anchor BIN`, as often as wanted; each measured under its file name.
    let anchors: Vec<std::path::PathBuf> = args
        .windows(2)
        .filter(|w| w[0] == "--anchor")
        .map(|w| std::path::PathBuf::from(&w[1]))
        .collect();

    let this = std::env::current_exe().expect("this program");
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    // The servers, each in a process of its own, started once and measured in turns.
    let mut servers: Vec<(String, SocketAddr, Killed)> = Vec::new();
    for bin in &anchors {
        let port = free_udp_port();
        let label = bin.file_name().map_or_else(
            || bin.display().to_string(),
            |f| f.to_string_lossy().into_owned(),
        );
        servers.push((
            label,
            SocketAddr::new(local, port),
            spawn_server(bin, port, n, &[]),
        ));
    }
    let port = free_udp_port();
    servers.push((
        "cluster DNS".to_string(),
        SocketAddr::new(local, port),
        spawn_server(&this, port, n, &[]),
    ));
    if prometheus {
        let port = free_udp_port();
        servers.push((
            "cluster DNS + prometheus".to_string(),
            SocketAddr::new(local, port),
            spawn_server(&this, port, n, &["--prometheus"]),
        ));
    }
    let dir = std::env::temp_dir().join(format!("dns-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let conf = dir.join("dnsmasq.conf");
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!(
            "host-record={},{}\n",
            name(i).trim_end_matches('.'),
            ip(i)
        ));
    }
    std::fs::write(&conf, text).expect("dnsmasq's configuration");
    let theirs = free_udp_port();
    servers.push((
        "dnsmasq".to_string(),
        SocketAddr::new(local, theirs),
        Killed(
            Command::new("dnsmasq")
                .args([
                    "--keep-in-foreground",
                    "--no-resolv",
                    "--no-hosts",
                    "--bind-interfaces",
                    "--listen-address=127.0.0.1",
                    &format!("--port={theirs}"),
                    &format!("--conf-file={}", conf.display()),
                    "--pid-file=",
                    "--user=root",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("dnsmasq (apt-get install dnsmasq-base)"),
        ),
    ));
    for (_, addr, _) in &servers {
        wait_answering(*addr);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    println!(
        "{n} Services, {clients} clients (one query in flight each), {seconds} s per server and round, {rounds} round(s), A queries for random names over UDP on loopback"
    );
    println!(
        "{:<5} {:<26} {:>10} {:>10} {:>10} {:>10} {:>6} {:>6}",
        "round", "server", "queries", "q/s", "p50 µs", "p99 µs", "lost", "wrong"
    );
    let mut results: Vec<Vec<Result>> = servers.iter().map(|_| Vec::new()).collect();
    for round in 1..=rounds {
        for (i, (label, addr, _)) in servers.iter().enumerate() {
            let r = rt.block_on(load(*addr, n, clients, seconds));
            println!(
                "{:<5} {:<26} {:>10} {:>10.0} {:>10} {:>10} {:>6} {:>6}",
                round,
                label,
                r.queries,
                r.qps,
                r.p50.as_micros(),
                r.p99.as_micros(),
                r.lost,
                r.wrong
            );
            results[i].push(r);
        }
    }
    if rounds > 1 {
        println!("medians over {rounds} rounds:");
        for ((label, _, _), rs) in servers.iter().zip(&results) {
            println!(
                "      {:<26} {:>10} {:>10.0} {:>10.0} {:>10.0}",
                label,
                "",
                median(rs.iter().map(|r| r.qps).collect()),
                median(rs.iter().map(|r| r.p50.as_micros() as f64).collect()),
                median(rs.iter().map(|r| r.p99.as_micros() as f64).collect()),
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
