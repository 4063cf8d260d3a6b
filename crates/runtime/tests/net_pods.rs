//! Pod networking on the real host (root only): a test bridge with two subnets and three pods.
//!
//! Traffic only goes to addresses inside the network namespaces this test creates
//! (10.250.1.0/24 and 10.250.2.0/24, local to the host) or to the test bridge. Everything is
//! removed at the end, also when an assertion fails (the `Cleanup` guard).

use std::collections::BTreeSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use localfargate_runtime::net::{
    NetworkConfig, PodAttachment, PodNetwork, guard_ruleset, short_id,
};

/// Why the test cannot run here, if it cannot.
fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".to_string());
    }
    for tool in ["ip", "nft", "busybox"] {
        let found = Command::new(tool)
            .arg(if tool == "busybox" { "true" } else { "-V" })
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

fn random4() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{:04x}",
        (nanos ^ std::process::id().rotate_left(16)) & 0xffff
    )
}

fn sh(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"))
}

fn stdout(program: &str, args: &[&str]) -> String {
    let out = sh(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One ping; `ns` None = from the host. `ip netns exec` is fine here: nothing run by it uses
/// cgroups.
fn ping_once(ns: Option<&str>, addr: &str) -> bool {
    let out = match ns {
        Some(ns) => sh(
            "ip",
            &["netns", "exec", ns, "busybox", "ping", "-c1", "-W1", addr],
        ),
        None => sh("busybox", &["ping", "-c1", "-W1", addr]),
    };
    out.status.success()
}

/// Expects `addr` to answer; a first echo can be lost while neighbours are resolved, so up to
/// three tries.
fn assert_reaches(ns: Option<&str>, addr: &str, what: &str) {
    if (0..3).any(|_| ping_once(ns, addr)) {
        return;
    }
    let diag = |args: &[&str]| {
        let mut full: Vec<&str> = Vec::new();
        if let Some(ns) = ns {
            full.extend(["-n", ns]);
        }
        full.extend_from_slice(args);
        String::from_utf8_lossy(&sh("ip", &full).stdout).into_owned()
    };
    panic!(
        "{what}: no answer from {addr}\naddr:\n{}\nroute:\n{}\nneigh:\n{}",
        diag(&["addr"]),
        diag(&["route"]),
        diag(&["neigh"])
    );
}

/// Removes whatever the test made, synchronously, even after a panic.
struct Cleanup {
    bridge: String,
    prefix: String,
    /// The "outside" network: a netns and the host end of its veth.
    outside_ns: String,
    outside_veth: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["-o", "link", "show", "master", &self.bridge])
            .output()
        {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                // "12: lfv0123456789ab@if2: <...>"
                if let Some(name) = line.split(':').nth(1) {
                    let name = name.trim().split('@').next().unwrap_or_default();
                    if name.starts_with("lfv") {
                        let _ = Command::new("ip").args(["link", "del", name]).output();
                    }
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir("/run/netns") {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&self.prefix) {
                    let _ = Command::new("ip").args(["netns", "del", &name]).output();
                }
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.outside_veth])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.outside_ns])
            .output();
        let table = format!("localfargate-{}", self.bridge);
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &table])
            .output();
    }
}

/// Names of host interfaces that look like pod veths (`lfv...`), of any PodNetwork.
fn veths() -> Vec<String> {
    let links = stdout("ip", &["-o", "link", "show"]);
    let mut names: Vec<String> = links
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or_default().to_string())
        .filter(|n| n.starts_with("lfv"))
        .collect();
    names.sort();
    names
}

fn pod(id: &str, ip: [u8; 4], gw: [u8; 4]) -> PodAttachment {
    PodAttachment {
        id: id.to_string(),
        ip: Ipv4Addr::from(ip),
        prefix_len: 24,
        gateway: Ipv4Addr::from(gw),
    }
}

fn netns_name(prefix: &str, id: &str) -> String {
    format!("{prefix}{}", short_id(id))
}

#[tokio::test(flavor = "current_thread")]
async fn pods_on_two_subnets_reach_each_other_and_nothing_else() {
    if let Some(reason) = skip_reason() {
        println!("skipping the pod network test: {reason}");
        return;
    }
    let r = random4();
    let bridge = format!("lft{r}");
    let prefix = format!("lft{r}-");
    let outside_ns = format!("lfx{r}-outside");
    let outside_veth = format!("lfx{r}o");
    let _cleanup = Cleanup {
        bridge: bridge.clone(),
        prefix: prefix.clone(),
        outside_ns: outside_ns.clone(),
        outside_veth: outside_veth.clone(),
    };
    let veths_before = veths();
    let forward_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let net = PodNetwork::new(NetworkConfig {
        bridge: bridge.clone(),
        netns_prefix: prefix.clone(),
        egress: false,
    });

    let gw1 = Ipv4Addr::new(10, 250, 1, 1);
    let gw2 = Ipv4Addr::new(10, 250, 2, 1);
    let t = Instant::now();
    net.ensure_gateway(gw1, 24).await.unwrap();
    println!(
        "ensure_gateway (creates bridge and table): {:?}",
        t.elapsed()
    );
    net.ensure_gateway(gw2, 24).await.unwrap();
    let t = Instant::now();
    net.ensure_gateway(gw1, 24).await.unwrap();
    println!("ensure_gateway (already there): {:?}", t.elapsed());

    let addrs = stdout("ip", &["-o", "-4", "addr", "show", "dev", &bridge]);
    assert!(addrs.contains("10.250.1.1/24"), "{addrs}");
    assert!(addrs.contains("10.250.2.1/24"), "{addrs}");
    assert_eq!(addrs.lines().count(), 2, "{addrs}");
    let conf = format!("/proc/sys/net/ipv4/conf/{bridge}");
    assert_eq!(
        std::fs::read_to_string(format!("{conf}/forwarding"))
            .unwrap()
            .trim(),
        "1"
    );
    let table = stdout(
        "nft",
        &["list", "table", "inet", &format!("localfargate-{bridge}")],
    );
    assert!(
        table.contains("10.250.1.0/24") && table.contains("10.250.2.0/24"),
        "{table}"
    );
    assert!(
        table.contains(&format!("iifname \"{bridge}\" drop")),
        "{table}"
    );
    assert!(!table.contains("masquerade"), "{table}");
    // The egress variant is accepted by the kernel too (`nft -c`: checked, not applied; egress
    // would turn on net.ipv4.ip_forward, which this test leaves alone).
    let egress = guard_ruleset(
        &format!("localfargate-{bridge}"),
        &bridge,
        &BTreeSet::from([(Ipv4Addr::new(10, 250, 1, 0), 24)]),
        true,
    );
    let mut check = Command::new("nft")
        .args(["-c", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(egress.as_bytes())
        .unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let table = stdout(
        "nft",
        &["list", "table", "inet", &format!("localfargate-{bridge}")],
    );
    assert!(
        !table.contains("masquerade"),
        "nft -c applied nothing: {table}"
    );

    let long_id = format!("sandbox-{r}-default-web-0123456789abcdef-with-a-long-name");
    let a = pod(&format!("a{r}"), [10, 250, 1, 10], [10, 250, 1, 1]);
    let b = pod(&long_id, [10, 250, 1, 11], [10, 250, 1, 1]);
    let c = pod(&format!("c{r}"), [10, 250, 2, 10], [10, 250, 2, 1]);
    let mut times = Vec::new();
    for p in [&a, &b, &c] {
        let t = Instant::now();
        let path = net.attach(p).await.unwrap();
        times.push(t.elapsed());
        assert_eq!(path, net.netns_path(&p.id));
        assert!(path.exists());
    }
    println!("attach (3 pods): {times:?}");
    let (ns_a, ns_b, ns_c) = (
        netns_name(&prefix, &a.id),
        netns_name(&prefix, &b.id),
        netns_name(&prefix, &c.id),
    );
    assert!(ns_b.len() <= prefix.len() + 12);

    for (ns, p) in [(&ns_a, &a), (&ns_b, &b), (&ns_c, &c)] {
        let eth0 = stdout("ip", &["-n", ns, "-o", "-4", "addr", "show", "dev", "eth0"]);
        assert!(eth0.contains(&format!("{}/24", p.ip)), "{ns}: {eth0}");
        let routes = stdout("ip", &["-n", ns, "route", "show"]);
        assert!(
            routes.contains(&format!("default via {} dev eth0", p.gateway)),
            "{ns}: {routes}"
        );
        assert!(
            routes.contains("prohibit 169.254.169.254"),
            "{ns}: {routes}"
        );
        let lo = stdout("ip", &["-n", ns, "-o", "link", "show", "dev", "lo"]);
        assert!(lo.contains("UP"), "{lo}");
    }
    let ports = stdout("ip", &["-o", "link", "show", "master", &bridge]);
    assert_eq!(ports.lines().count(), 3, "{ports}");

    // Same subnet (layer 2), across subnets (routed by the host), host to pods.
    assert_reaches(Some(&ns_a), "10.250.1.11", "a -> b (same subnet)");
    assert_reaches(Some(&ns_a), "10.250.2.10", "a -> c (across subnets)");
    assert_reaches(Some(&ns_c), "10.250.1.11", "c -> b (across subnets)");
    assert_reaches(Some(&ns_b), "10.250.1.1", "b -> its gateway");
    assert_reaches(None, "10.250.1.10", "host -> a");
    assert_reaches(None, "10.250.2.10", "host -> c");

    // The guard: a stand-in for the outside world, a netns behind another host interface
    // (10.251.0.0/30, not on the bridge), routed to the pods through the host.
    stdout("ip", &["netns", "add", &outside_ns]);
    stdout(
        "ip",
        &[
            "link",
            "add",
            &outside_veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &outside_ns,
        ],
    );
    stdout(
        "ip",
        &["addr", "add", "10.251.0.1/30", "dev", &outside_veth],
    );
    stdout("ip", &["link", "set", &outside_veth, "up"]);
    for cmd in [
        &["addr", "add", "10.251.0.2/30", "dev", "eth0"][..],
        &["link", "set", "eth0", "up"],
        &["route", "add", "10.250.0.0/16", "via", "10.251.0.1"],
    ] {
        let mut args = vec!["-n", outside_ns.as_str()];
        args.extend_from_slice(cmd);
        stdout("ip", &args);
    }
    assert_reaches(Some(&outside_ns), "10.251.0.1", "outside -> host");
    assert_reaches(
        Some(&ns_a),
        "10.251.0.1",
        "a -> host address on another interface",
    );
    // The host forwards what arrives on that interface too (a host with ip_forward = 1).
    let out_conf = format!("/proc/sys/net/ipv4/conf/{outside_veth}/forwarding");
    std::fs::write(&out_conf, "1").unwrap();
    let blocked = |when: &str| {
        assert!(
            !ping_once(Some(&ns_a), "10.251.0.2"),
            "{when}: a pod reached a network behind another interface"
        );
        assert!(
            !ping_once(Some(&outside_ns), "10.250.1.10"),
            "{when}: the outside opened a connection to a pod"
        );
    };
    blocked("with the guard");
    // Control: without the table both directions work, so the guard is what stopped them.
    let table_name = format!("localfargate-{bridge}");
    stdout("nft", &["delete", "table", "inet", &table_name]);
    assert_reaches(
        Some(&ns_a),
        "10.251.0.2",
        "control: a -> outside without the guard",
    );
    assert_reaches(
        Some(&outside_ns),
        "10.250.1.10",
        "control: outside -> a without the guard",
    );
    // ensure_gateway puts the guard back.
    net.ensure_gateway(gw1, 24).await.unwrap();
    blocked("with the guard reinstalled");
    stdout("ip", &["link", "del", &outside_veth]);
    stdout("ip", &["netns", "del", &outside_ns]);

    // No instance metadata service.
    assert!(!ping_once(Some(&ns_a), "169.254.169.254"));
    let get = sh("ip", &["-n", &ns_a, "route", "get", "169.254.169.254"]);
    assert!(!get.status.success());
    assert!(
        String::from_utf8_lossy(&get.stderr).contains("Permission denied"),
        "a prohibit route answers EACCES: {get:?}"
    );

    // Attach again: nothing is recreated.
    let ino = |ns: &str| {
        std::fs::metadata(Path::new("/run/netns").join(ns))
            .unwrap()
            .ino()
    };
    let before = ino(&ns_a);
    let t = Instant::now();
    net.attach(&a).await.unwrap();
    println!("attach again (intact, no change): {:?}", t.elapsed());
    assert_eq!(ino(&ns_a), before);
    assert_reaches(Some(&ns_a), "10.250.2.10", "a -> c after attach again");

    // Half made (a route lost): attach again rebuilds it.
    stdout("ip", &["-n", &ns_c, "route", "del", "default"]);
    let t = Instant::now();
    net.attach(&c).await.unwrap();
    println!("attach again (half made, rebuilt): {:?}", t.elapsed());
    assert_reaches(Some(&ns_c), "10.250.1.10", "c -> a after rebuild");

    let mut listed = net.list().await.unwrap();
    listed.sort();
    let mut expected = vec![short_id(&a.id), short_id(&b.id), short_id(&c.id)];
    expected.sort();
    assert_eq!(listed, expected);

    let t = Instant::now();
    net.detach(&b.id).await.unwrap();
    println!("detach: {:?}", t.elapsed());
    assert!(!Path::new("/run/netns").join(&ns_b).exists());
    let ports = stdout("ip", &["-o", "link", "show", "master", &bridge]);
    assert_eq!(ports.lines().count(), 2, "{ports}");
    net.detach(&b.id).await.unwrap();
    // A leftover found by list() is detached by its short id.
    net.detach(&short_id(&c.id)).await.unwrap();
    assert!(!Path::new("/run/netns").join(&ns_c).exists());
    assert!(!ping_once(Some(&ns_a), "10.250.2.10"));

    let t = Instant::now();
    net.teardown().await.unwrap();
    println!("teardown: {:?}", t.elapsed());
    net.teardown().await.unwrap();
    let links = stdout("ip", &["-o", "link", "show"]);
    assert!(!links.contains(&bridge), "{links}");
    assert_eq!(veths(), veths_before, "veths left behind");
    let netns = stdout("ip", &["netns", "list"]);
    assert!(!netns.contains(&prefix), "{netns}");
    let tables = stdout("nft", &["list", "tables"]);
    assert!(!tables.contains(&bridge), "{tables}");
    assert!(net.list().await.unwrap().is_empty());
    // The global switch was never touched.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        forward_before
    );
}
