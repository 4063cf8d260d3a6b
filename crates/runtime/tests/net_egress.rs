//! Pod egress (`up --pod-egress`) for real, root only, entirely inside network namespaces this
//! test creates: a stand-in host namespace (where the bridge, the nftables table and
//! `ip_forward` live) linked to a stand-in outside namespace that has no route back to the pod
//! range. A pod reaches the outside only if its packets are masqueraded to the stand-in host's
//! address. Nothing here touches the real host's interfaces, forwarding or tables.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use localfargate_runtime::net::{NetworkConfig, PodAttachment, PodNetwork};

/// The test re-runs itself inside the stand-in host namespace with these set.
const INNER: &str = "LF_EGRESS_INNER";
const OUTSIDE: &str = "LF_EGRESS_OUTSIDE";
const RUN: &str = "LF_EGRESS_RUN";
/// The link between the stand-in host and outside (TEST-NET-2, never routed anywhere).
const HOST_ADDR: &str = "198.51.100.1";
const OUTSIDE_ADDR: &str = "198.51.100.2";

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

fn sh(args: &[&str]) -> std::process::Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn ok(args: &[&str]) -> String {
    let out = sh(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes both stand-in namespaces and every pod namespace of the run (deleting the stand-in
/// host's namespace takes its bridge, veths and table with it).
struct Cleanup {
    run: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir("/run/netns") {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&self.run) {
                    let _ = Command::new("ip").args(["netns", "del", &name]).output();
                }
            }
        }
    }
}

#[test]
fn egress_masquerades_pod_traffic_leaving_the_stand_in_host() {
    if std::env::var_os(INNER).is_some() {
        return inner();
    }
    if let Some(reason) = skip_reason() {
        println!("skipping the egress test: {reason}");
        return;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let run = format!("lfe{:04x}", (nanos ^ std::process::id()) & 0xffff);
    let _cleanup = Cleanup { run: run.clone() };
    let host = format!("{run}-host");
    let outside = format!("{run}-out");
    ok(&["ip", "netns", "add", &host]);
    ok(&["ip", "netns", "add", &outside]);
    ok(&[
        "ip", "-n", &host, "link", "add", "uplink", "type", "veth", "peer", "name", "eth0",
        "netns", &outside,
    ]);
    ok(&[
        "ip",
        "-n",
        &host,
        "addr",
        "add",
        &format!("{HOST_ADDR}/30"),
        "dev",
        "uplink",
    ]);
    ok(&["ip", "-n", &host, "link", "set", "uplink", "up"]);
    ok(&["ip", "-n", &host, "link", "set", "lo", "up"]);
    ok(&[
        "ip",
        "-n",
        &host,
        "route",
        "add",
        "default",
        "via",
        OUTSIDE_ADDR,
    ]);
    ok(&[
        "ip",
        "-n",
        &outside,
        "addr",
        "add",
        &format!("{OUTSIDE_ADDR}/30"),
        "dev",
        "eth0",
    ]);
    ok(&["ip", "-n", &outside, "link", "set", "eth0", "up"]);
    ok(&["ip", "-n", &outside, "link", "set", "lo", "up"]);
    // The outside knows only its link: a reply to a pod address has nowhere to go.
    let routes = ok(&["ip", "-n", &outside, "route", "show"]);
    assert!(
        !routes.contains("default") && !routes.contains("10."),
        "{routes}"
    );

    let exe = std::env::current_exe().unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &host])
        .arg(&exe)
        .args([
            "--exact",
            "egress_masquerades_pod_traffic_leaving_the_stand_in_host",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INNER, "1")
        .env(OUTSIDE, &outside)
        .env(RUN, &run)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the run in the stand-in host failed:\n{said}"
    );
    assert!(said.contains("egress checked"), "{said}");
}

/// The run inside the stand-in host namespace: a pod network with egress, one pod, its traffic
/// to the outside.
fn inner() {
    let outside = std::env::var(OUTSIDE).unwrap();
    let run = std::env::var(RUN).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ping = |ns: &str, addr: &str| {
            (0..3).any(|_| {
                sh(&[
                    "ip", "netns", "exec", ns, "busybox", "ping", "-c1", "-W1", addr,
                ])
                .status
                .success()
            })
        };
        let pod = PodAttachment {
            id: format!("{run}-pod"),
            ip: Ipv4Addr::new(10, 252, 1, 10),
            prefix_len: 24,
            gateway: Ipv4Addr::new(10, 252, 1, 1),
        };
        let pod_ns = |net: &PodNetwork| {
            net.netns_path(&pod.id)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        };

        // Without egress the guard drops what leaves the bridge.
        let closed = PodNetwork::new(NetworkConfig {
            bridge: format!("{run}b"),
            netns_prefix: format!("{run}-p-"),
            egress: false,
        });
        closed.ensure_gateway(pod.gateway, 24).await.unwrap();
        closed.attach(&pod).await.unwrap();
        let ns = pod_ns(&closed);
        assert!(ping(&ns, "10.252.1.1"), "the pod reaches its gateway");
        assert!(!ping(&ns, OUTSIDE_ADDR), "without egress nothing leaves");
        closed.detach(&pod.id).await.unwrap();
        closed.teardown().await.unwrap();

        // With egress: masqueraded to the stand-in host's address, so the outside answers.
        let open = PodNetwork::new(NetworkConfig {
            bridge: format!("{run}b"),
            netns_prefix: format!("{run}-p-"),
            egress: true,
        });
        open.ensure_gateway(pod.gateway, 24).await.unwrap();
        open.attach(&pod).await.unwrap();
        let ns = pod_ns(&open);
        let forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
        assert_eq!(
            forward.trim(),
            "1",
            "egress turns forwarding on in this namespace"
        );
        let table = ok(&["nft", "list", "table", "inet", &open.table_name()]);
        assert!(table.contains("masquerade"), "{table}");
        // The outside counts the echo requests it gets by source address.
        let rules = format!(
            "add table inet seen\n\
             add chain inet seen input {{ type filter hook input priority 0; }}\n\
             add rule inet seen input ip saddr {HOST_ADDR} icmp type echo-request counter\n\
             add rule inet seen input ip saddr 10.252.0.0/16 counter\n"
        );
        let rules_file = std::env::temp_dir().join(format!("{run}-seen.nft"));
        std::fs::write(&rules_file, rules).unwrap();
        ok(&[
            "ip",
            "netns",
            "exec",
            &outside,
            "nft",
            "-f",
            rules_file.to_str().unwrap(),
        ]);
        let _ = std::fs::remove_file(&rules_file);
        assert!(ping(&ns, OUTSIDE_ADDR), "the pod reaches the outside");
        // It saw the stand-in host's address, never the pod's.
        let seen = ok(&[
            "ip", "netns", "exec", &outside, "nft", "list", "table", "inet", "seen",
        ]);
        let packets = |from: &str| -> u64 {
            seen.lines()
                .find(|l| l.contains(&format!("ip saddr {from}")))
                .and_then(|l| l.split("packets ").nth(1))
                .and_then(|p| p.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no counter for {from}: {seen}"))
        };
        assert!(packets(HOST_ADDR) >= 1, "{seen}");
        assert_eq!(packets("10.252.0.0/16"), 0, "{seen}");
        // The metadata service stays unreachable with egress on.
        assert!(!ping(&ns, "169.254.169.254"));
        open.detach(&pod.id).await.unwrap();
        open.teardown().await.unwrap();
        let forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
        assert_eq!(forward.trim(), "0", "teardown puts forwarding back");
        println!("egress checked");
    });
}
