//! What a pod start costs the enforcement of security groups when every pod holds the cluster
//! security group (which admits its own members), beside what it would cost with one table per
//! pod. Needs root, `ip` and `nft`; works in a network namespace of its own (`lfsgbench<pid>`),
//! which it removes.
//!
//! `sg_bench [PODS] [STARTS]` (default 200 and 20):
//! * sets: the table of `localfargate_runtime::firewall` holding PODS members of the cluster
//!   group; a pod start is one `nft -f` of `members_script` (its address added to `pods`, `self`
//!   and its group's set). Prints the time to install the whole table and the median of STARTS
//!   pod starts (each added, then removed).
//! * per pod: PODS tables, one per pod, each admitting the cluster group's members by address,
//!   as a per-pod design must; a pod start rewrites every member's table (one `nsenter … nft -f`
//!   each, as the runtime runs them). Prints the median of STARTS/4 pod starts. The tables share
//!   the example's one namespace, so each run also reads the others: an upper bound of what
//!   one table per pod namespace costs.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use localfargate_core::security_groups::{cluster_security_group, rules_of};
use localfargate_runtime::firewall::{Member, members_script, rules_script};

fn nft(netns: &str, script: &str) {
    let mut child = Command::new("nsenter")
        .args([&format!("--net=/run/netns/{netns}"), "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("nsenter runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("script written");
    let status = child.wait().expect("nft ends");
    assert!(status.success(), "nft failed on:\n{script}");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn pod_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 10)) + i as u32)
}

/// The per-pod table of pod `i` admitting `members` (any traffic), as a per-pod design writes it.
fn per_pod_table(i: usize, members: &[Ipv4Addr]) -> String {
    let peers: Vec<String> = members.iter().map(Ipv4Addr::to_string).collect();
    format!(
        "add table inet pod{i}\ndelete table inet pod{i}\ntable inet pod{i} {{\n  chain ingress {{\n    \
         type filter hook input priority filter; policy drop;\n    iif \"lo\" accept\n    \
         ct state established,related accept\n    ip saddr {{ {} }} accept\n  }}\n}}\n",
        peers.join(", ")
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let pods: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let starts: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let netns = format!("lfsgbench{}", std::process::id());
    let made = Command::new("ip")
        .args(["netns", "add", &netns])
        .status()
        .expect("ip runs");
    assert!(made.success(), "ip netns add {netns}");

    let group = "sg-0cluster000000001".to_string();
    let rules = rules_of(
        &BTreeSet::from([group.clone()]),
        &[cluster_security_group(&group)],
    )
    .expect("the cluster group's rules");
    let members: Vec<Member> = (0..pods)
        .map(|i| (pod_ip(i), vec![group.clone()]))
        .collect();
    let table = "localfargate_sg-bench-bench";
    let t = Instant::now();
    nft(&netns, &rules_script(table, &rules, Some(&members)));
    println!(
        "sets: whole table with {pods} members installed in {:?}",
        t.elapsed()
    );
    let mut times = Vec::new();
    for n in 0..starts {
        let new = [(pod_ip(pods + n), vec![group.clone()])];
        let t = Instant::now();
        nft(&netns, &members_script(table, &new, &[]));
        times.push(t.elapsed());
        nft(&netns, &members_script(table, &[], &new));
    }
    println!(
        "sets: pod start with {pods} members: median {:?} (one nft -f, {} lines)",
        median(times),
        members_script(table, &[(pod_ip(pods), vec![group.clone()])], &[])
            .lines()
            .count()
    );

    let addresses: Vec<Ipv4Addr> = (0..pods).map(pod_ip).collect();
    for i in 0..pods {
        nft(&netns, &per_pod_table(i, &addresses));
    }
    let mut times = Vec::new();
    for n in 0..(starts / 4).max(1) {
        let mut with_new = addresses.clone();
        with_new.push(pod_ip(pods + n));
        let t = Instant::now();
        for i in 0..=pods {
            nft(&netns, &per_pod_table(i, &with_new));
        }
        times.push(t.elapsed());
    }
    println!(
        "per pod: pod start with {pods} members: median {:?} ({} nft -f runs)",
        median(times),
        pods + 1
    );
    let _ = Command::new("ip").args(["netns", "del", &netns]).status();
}
