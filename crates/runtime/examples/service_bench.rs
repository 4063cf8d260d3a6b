//! Benchmarks of the Service data path (`localfargate_runtime::service_proxy`), each figure beside
//! an anchor measured in the same run. Needs root and nft. Used by scripts/bench-services.
//!
//! * `service_bench conn ADDR N`: N sequential HTTP/1.0 requests (a new TCP connection each) to
//!   ADDR; prints connections per second and the p50/p99 latency of connect + request +
//!   response. scripts/bench-services runs it against a ClusterIP and against the pod IP behind
//!   it.
//! * `service_bench rules [SERVICES] [ENDPOINTS] [N]`: on a bridge of its own with no ports
//!   (`lfsvcbench0`, 10.252.0.1, the range 10.251.0.0/16 routed to it) and a table of its own,
//!   the latency of N connections to one Service whose endpoint is a local listener, with that
//!   Service alone and then with SERVICES-1 more Services of ENDPOINTS endpoints each installed
//!   (the per-packet cost as the number of Services grows), beside the listener reached
//!   directly; the time to compute and apply the whole table, and to apply one Service's change
//!   incrementally. Removes everything it made.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use localfargate_runtime::service_proxy::{
    ClusterServices, Protocol, Ruleset, ServicePort, TableId, base_commands, incremental_commands,
    transaction,
};

fn request(addr: SocketAddr) -> std::io::Result<Duration> {
    let start = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_nodelay(true)?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    if buf.is_empty() {
        return Err(std::io::Error::other("empty response"));
    }
    Ok(start.elapsed())
}

struct Stats {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    failed: usize,
}

fn measure(addr: SocketAddr, n: usize) -> Stats {
    // A few warm-up connections (ARP, caches).
    for _ in 0..20 {
        let _ = request(addr);
    }
    let mut lat = Vec::with_capacity(n);
    let mut failed = 0;
    let start = Instant::now();
    for _ in 0..n {
        match request(addr) {
            Ok(d) => lat.push(d),
            Err(_) => failed += 1,
        }
    }
    let total = start.elapsed();
    lat.sort();
    let at = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Stats {
        per_second: lat.len() as f64 / total.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        failed,
    }
}

fn show(what: &str, s: &Stats) {
    println!(
        "{what:<52} {:>9.0} conn/s   p50 {:>7.1} µs   p99 {:>7.1} µs{}",
        s.per_second,
        s.p50.as_secs_f64() * 1e6,
        s.p99.as_secs_f64() * 1e6,
        if s.failed > 0 {
            format!("   ({} failed)", s.failed)
        } else {
            String::new()
        }
    );
}

fn sh(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn nft(doc: &serde_json::Value) -> Result<Duration, String> {
    let start = Instant::now();
    let mut child = Command::new("nft")
        .args(["-j", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(doc.to_string().as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(start.elapsed())
}

fn serve(listener: TcpListener) {
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
}

fn port(i: usize, vip: Ipv4Addr, endpoints: Vec<(Ipv4Addr, u16)>) -> ServicePort {
    ServicePort {
        namespace: "bench".into(),
        name: format!("svc-{i}"),
        port_name: "http".into(),
        protocol: Protocol::Tcp,
        cluster_ip: vip,
        port: 80,
        node_port: None,
        affinity_timeout: None,
        endpoints: endpoints.into_iter().collect(),
        internal_local: None,
        external_ips: Default::default(),
    }
}

fn rules(services: usize, endpoints: usize, n: usize) -> Result<(), String> {
    let dev = "lfsvcbench0";
    let local = Ipv4Addr::new(10, 252, 0, 1);
    let _ = sh(&["ip", "link", "del", dev]);
    sh(&["ip", "link", "add", dev, "type", "bridge"])?;
    let result = (|| {
        sh(&["ip", "addr", "add", "10.252.0.1/32", "dev", dev])?;
        sh(&["ip", "link", "set", dev, "up"])?;
        sh(&["ip", "route", "add", "10.251.0.0/16", "dev", dev])?;
        let listener = TcpListener::bind((local, 0)).map_err(|e| e.to_string())?;
        let backend = listener.local_addr().map_err(|e| e.to_string())?;
        serve(listener);
        let vip = Ipv4Addr::new(10, 251, 0, 1);
        let measured = port(0, vip, vec![(local, backend.port())]);
        let id = TableId::new("bench", "bench", dev, (Ipv4Addr::new(10, 251, 0, 0), 16));
        let one = ClusterServices {
            ports: vec![measured.clone()],
            ..Default::default()
        };
        let small = Ruleset::compute(&one);
        let mut c = base_commands(&id);
        c.extend(incremental_commands(&id, None, &small));
        nft(&transaction(c))?;
        let vip_addr = SocketAddr::new(vip.into(), 80);
        println!("{services} Services × {endpoints} endpoints, {n} sequential connections each");
        show("listener directly (anchor)", &measure(backend, n));
        show(
            "through a ClusterIP, 1 Service installed",
            &measure(vip_addr, n),
        );

        // The big table.
        let mut ports = vec![measured];
        for i in 1..services {
            let vip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 251, 0, 1)) + i as u32);
            let eps = (0..endpoints)
                .map(|e| {
                    (
                        Ipv4Addr::from(
                            u32::from(Ipv4Addr::new(10, 253, 0, 0)) + (i * endpoints + e) as u32,
                        ),
                        8080,
                    )
                })
                .collect();
            ports.push(port(i, vip, eps));
        }
        let mut big_services = ClusterServices {
            ports,
            ..Default::default()
        };
        let started = Instant::now();
        let big = Ruleset::compute(&big_services);
        let computed = started.elapsed();
        let started = Instant::now();
        let mut c = base_commands(&id);
        c.extend(incremental_commands(&id, None, &big));
        let commands = c.len();
        let doc = transaction(c);
        let built = started.elapsed();
        let applied = nft(&doc)?;
        println!(
            "whole table: compute {:.1} ms, {} commands built in {:.1} ms, nft transaction {:.0} ms ({} chains)",
            computed.as_secs_f64() * 1e3,
            commands,
            built.as_secs_f64() * 1e3,
            applied.as_secs_f64() * 1e3,
            big.chains.len()
        );
        show("listener directly (anchor)", &measure(backend, n));
        show(
            &format!("through a ClusterIP, {services} Services installed"),
            &measure(vip_addr, n),
        );

        // One Service changes: one endpoint less, then back.
        let mut times = Vec::new();
        for round in 0..10 {
            let mut next = big_services.clone();
            if round % 2 == 0 {
                let first = next.ports[1].endpoints.iter().next().copied();
                if let Some(e) = first {
                    next.ports[1].endpoints.remove(&e);
                }
            }
            let old = Ruleset::compute(&big_services);
            let started = Instant::now();
            let new = Ruleset::compute(&next);
            let cmds = incremental_commands(&id, Some(&old), &new);
            let k = cmds.len();
            let apply = nft(&transaction(cmds))?;
            times.push((started.elapsed(), apply, k));
            big_services = next;
        }
        times.sort();
        let (total, apply, k) = times[times.len() / 2];
        println!(
            "one Service's endpoint change, incremental (median of 10): {:.1} ms in all, nft {:.1} ms, {k} commands",
            total.as_secs_f64() * 1e3,
            apply.as_secs_f64() * 1e3
        );
        Ok(())
    })();
    let _ = sh(&[
        "nft",
        "delete",
        "table",
        "ip",
        &TableId::new("bench", "bench", dev, (Ipv4Addr::new(10, 251, 0, 0), 16)).name,
    ]);
    let _ = sh(&["ip", "link", "del", dev]);
    result
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num =
        |i: usize, default: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("conn") => {
            let addr: SocketAddr = args
                .get(1)
                .and_then(|a| a.parse().ok())
                .ok_or("usage: service_bench conn ADDR N")?;
            let label = args.get(3).cloned().unwrap_or_else(|| addr.to_string());
            show(&label, &measure(addr, num(2, 2000)));
            Ok(())
        }
        Some("rules") => rules(num(1, 1000), num(2, 10), num(3, 2000)),
        _ => Err("usage: service_bench conn ADDR N [LABEL] | service_bench rules [SERVICES] [ENDPOINTS] [N]".into()),
    }
}
