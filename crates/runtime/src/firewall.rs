//! A pod's security groups enforced on its interface: an nftables table inside the pod's own
//! network namespace, as an ENI's security groups filter what reaches and leaves the pod.
//!
//! The table `inet localfargate_sg` has an `ingress` chain (hook input) and an `egress` chain
//! (hook output), both policy drop, with:
//! - loopback and replies (`ct state established,related`) accepted: security groups are
//!   stateful, and the pod's containers talk to each other over `lo`;
//! - the pod's gateway accepted both ways: that address is the host, standing for the control
//!   plane, the kubelet (probes), port-forwards and load balancers, which on AWS reach the pod
//!   over paths its security groups allow;
//! - one accept rule per resolved security group rule.
//!
//! Inside the pod's namespace the rules see the pod's own packets before the host translates
//! them: a connection to a Service's ClusterIP leaves with the ClusterIP as destination, so the
//! caller allows the service range in `egress` (the endpoint's own ingress rules still apply).
//! Containers cannot change the table: they run without `CAP_NET_ADMIN` (Fargate refuses pods
//! that add it).
//!
//! The whole table is replaced in one `nft -f` transaction run in the pod's namespace
//! (`nsenter --net`), so a pod never sees half a rule set.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

use localfargate_core::security_groups::{FirewallRule, PodFirewall, Traffic};

/// The table's name inside each pod namespace.
pub const TABLE: &str = "localfargate_sg";

/// The nft script that installs `firewall` in a pod namespace (replacing any earlier one), or
/// removes it when `firewall` is `None`. `host` is the pod's gateway address.
pub fn script(firewall: Option<&PodFirewall>, host: Ipv4Addr) -> String {
    // `add` then `delete` makes the delete succeed whether or not the table was there.
    let mut s = format!("add table inet {TABLE}\ndelete table inet {TABLE}\n");
    let Some(fw) = firewall else {
        return s;
    };
    let _ = writeln!(s, "table inet {TABLE} {{");
    for (chain, hook, peer, rules) in [
        ("ingress", "input", "saddr", &fw.ingress),
        ("egress", "output", "daddr", &fw.egress),
    ] {
        let lo = if hook == "input" { "iif" } else { "oif" };
        let _ = writeln!(s, "  chain {chain} {{");
        let _ = writeln!(
            s,
            "    type filter hook {hook} priority filter; policy drop;"
        );
        let _ = writeln!(s, "    {lo} \"lo\" accept");
        let _ = writeln!(s, "    ct state established,related accept");
        if !host.is_unspecified() {
            let _ = writeln!(s, "    ip {peer} {host} accept");
        }
        for rule in rules.iter() {
            if let Some(line) = rule_line(rule, peer) {
                let _ = writeln!(s, "    {line}");
            }
        }
        let _ = writeln!(s, "  }}");
    }
    let _ = writeln!(s, "}}");
    s
}

/// One accept rule, or `None` for a rule that matches no peer (a group nobody holds).
fn rule_line(rule: &FirewallRule, peer: &str) -> Option<String> {
    if rule.peers.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    if !rule.peers.iter().any(|(_, len)| *len == 0) {
        let peers: Vec<String> = rule
            .peers
            .iter()
            .map(|(ip, len)| {
                if *len == 32 {
                    ip.to_string()
                } else {
                    format!("{ip}/{len}")
                }
            })
            .collect();
        parts.push(format!("ip {peer} {{ {} }}", peers.join(", ")));
    }
    match rule.traffic {
        Traffic::All => {}
        Traffic::Ports {
            protocol,
            first,
            last,
        } => {
            let name = if protocol == 6 { "tcp" } else { "udp" };
            if first == last {
                parts.push(format!("{name} dport {first}"));
            } else {
                parts.push(format!("{name} dport {first}-{last}"));
            }
        }
        Traffic::Icmp { kind, code } => {
            parts.push("meta l4proto icmp".to_string());
            if let Some(kind) = kind {
                parts.push(format!("icmp type {kind}"));
            }
            if let Some(code) = code {
                parts.push(format!("icmp code {code}"));
            }
        }
        Traffic::Protocol(n) => parts.push(format!("meta l4proto {n}")),
    }
    parts.push("accept".to_string());
    Some(parts.join(" "))
}

/// Runs `script` with `nft` inside the network namespace at `netns`.
pub async fn apply(netns: &Path, script: &str) -> Result<(), crate::net::NetError> {
    let net = format!("--net={}", netns.display());
    crate::net::run("nsenter", &[&net, "nft", "-f", "-"], Some(script))
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fw() -> PodFirewall {
        PodFirewall {
            groups: vec!["sg-web".into()],
            ingress: vec![
                FirewallRule {
                    traffic: Traffic::Ports {
                        protocol: 6,
                        first: 80,
                        last: 80,
                    },
                    peers: vec![(Ipv4Addr::new(10, 0, 1, 5), 32)],
                },
                FirewallRule {
                    traffic: Traffic::Icmp {
                        kind: Some(8),
                        code: None,
                    },
                    peers: vec![(Ipv4Addr::new(10, 0, 0, 0), 16)],
                },
                // A group nobody holds: no rule.
                FirewallRule {
                    traffic: Traffic::All,
                    peers: vec![],
                },
            ],
            egress: vec![
                FirewallRule {
                    traffic: Traffic::All,
                    peers: vec![(Ipv4Addr::UNSPECIFIED, 0)],
                },
                FirewallRule {
                    traffic: Traffic::Ports {
                        protocol: 17,
                        first: 53,
                        last: 60,
                    },
                    peers: vec![(Ipv4Addr::new(10, 100, 0, 0), 16)],
                },
            ],
        }
    }

    #[test]
    fn the_script_replaces_the_table_with_one_rule_per_resolved_rule() {
        let s = script(Some(&fw()), Ipv4Addr::new(10, 0, 1, 1));
        assert!(
            s.starts_with("add table inet localfargate_sg\ndelete table inet localfargate_sg\n")
        );
        let want = [
            "type filter hook input priority filter; policy drop;",
            "iif \"lo\" accept",
            "ip saddr 10.0.1.1 accept",
            "ip saddr { 10.0.1.5 } tcp dport 80 accept",
            "ip saddr { 10.0.0.0/16 } meta l4proto icmp icmp type 8 accept",
            "type filter hook output priority filter; policy drop;",
            "oif \"lo\" accept",
            "ip daddr 10.0.1.1 accept",
            // Anywhere: no address match at all.
            "\n    accept\n",
            "ip daddr { 10.100.0.0/16 } udp dport 53-60 accept",
        ];
        for w in want {
            assert!(s.contains(w), "{w:?} missing from:\n{s}");
        }
        assert_eq!(s.matches("accept").count(), 10, "{s}");
    }

    #[test]
    fn no_firewall_removes_the_table() {
        assert_eq!(
            script(None, Ipv4Addr::new(10, 0, 1, 1)),
            "add table inet localfargate_sg\ndelete table inet localfargate_sg\n"
        );
    }
}
