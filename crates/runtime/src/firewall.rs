//! Security groups for pods enforced on the host, in one place for all of a cluster's pods: the
//! nftables table `inet localfargate_sg-<bridge>-<pid>-<cluster>` filters, at the `forward`
//! hook, what passes between pods and between pods and the outside, with one named set of member addresses
//! per security group (`g_<group id>`), the set `pods` of every filtered pod's address and the
//! set `self` of `address . address` pairs.
//!
//! Why on the host and not in each pod's namespace: a rule naming a group (the cluster security
//! group admits its own members) would otherwise list the group's members in every member's own
//! table, so each pod start would rewrite every other pod's rules. Here rules name sets, and a
//! pod that starts or stops adds or deletes its address in the sets of its groups: a few set
//! elements in one `nft` transaction, whatever the number of pods ([`members_script`]). The rules
//! change only when the groups' rules do ([`rules_script`]).
//!
//! The `forward` chain (priority filter, policy accept) accepts replies (`ct state
//! established,related`: security groups are stateful), a pod's traffic to itself (a Service
//! hairpin, which on Fargate never leaves the pod's VM), then sends packets from a pod through
//! `egress` (its groups' egress rules, `ip saddr @g_<group>`) and packets to a pod through
//! `ingress` (`ip daddr @g_<group>`); a rule that matches `return`s, and both chains end in
//! `drop`. The forward hook sees pod → pod traffic after the host translated a ClusterIP (so an
//! endpoint's rules apply to the client's own address, and a client's egress rules to the
//! endpoint's) and before a masquerade. Packets pods of one subnet exchange over the bridge pass
//! it too because the bridge is made with `nf_call_iptables` (`br_netfilter`). Traffic between
//! a pod and the host itself (the gateway: the control plane, the kubelet's probes,
//! port-forwards, load balancers) takes the input and output hooks and is not filtered.
//! Containers cannot change the table: it is in the host's namespace.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use localfargate_core::security_groups::{GroupRule, GroupRules, Peer, Traffic};

/// The table enforcing the security groups of `cluster`'s pods on `bridge`, for this process:
/// the pid is in the name so that tables of localfargate runs that are gone can be told apart
/// and removed ([`reap_dead_tables`]); several runs share the host and its bridge, and a table
/// left behind would drop the traffic of later pods given the same addresses.
pub fn table_name(bridge: &str, cluster: &str) -> String {
    format!("{TABLE_PREFIX}{bridge}-{}-{cluster}", std::process::id())
}

/// The pid in one of `bridge`'s table names; `None` for a name of another bridge, and
/// `Some(None)` for one without a pid (made before tables carried one).
fn table_pid(bridge: &str, name: &str) -> Option<Option<u32>> {
    let rest = name
        .strip_prefix(TABLE_PREFIX)?
        .strip_prefix(bridge)?
        .strip_prefix('-')?;
    Some(rest.split_once('-').and_then(|(pid, _)| pid.parse().ok()))
}

/// Deletes `bridge`'s security-group tables of localfargate runs that are gone (and those
/// without a pid in their name); the number deleted.
pub async fn reap_dead_tables(bridge: &str) -> Result<usize, crate::net::NetError> {
    let listed = crate::net::run("nft", &["-j", "list", "tables"], None).await?;
    let doc: serde_json::Value = serde_json::from_str(&listed).unwrap_or_default();
    let mut n = 0;
    for item in doc["nftables"].as_array().into_iter().flatten() {
        let table = &item["table"];
        let Some(name) = table["name"].as_str().filter(|_| table["family"] == "inet") else {
            continue;
        };
        let Some(pid) = table_pid(bridge, name) else {
            continue;
        };
        if pid.is_some_and(crate::address_claims::localfargate_runs) {
            continue;
        }
        tracing::info!(
            table = name,
            "removing the security-group table of a stopped localfargate run"
        );
        match crate::net::run("nft", &["delete", "table", "inet", name], None).await {
            Ok(_) => n += 1,
            Err(e) if e.says("No such file") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Prefix of the tables this module makes.
pub const TABLE_PREFIX: &str = "localfargate_sg-";

/// The set holding the addresses of the pods holding `group`.
pub fn set_name(group: &str) -> String {
    let id: String = group
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("g_{id}")
}

/// A pod's address and the security groups it holds.
pub type Member = (Ipv4Addr, Vec<String>);

fn declare_sets<'a>(s: &mut String, t: &str, groups: impl IntoIterator<Item = &'a String>) {
    let _ = writeln!(s, "add table {t}");
    let _ = writeln!(s, "add set {t} pods {{ type ipv4_addr; }}");
    let _ = writeln!(s, "add set {t} self {{ type ipv4_addr . ipv4_addr; }}");
    let names: BTreeSet<String> = groups.into_iter().map(|g| set_name(g)).collect();
    for name in names {
        let _ = writeln!(s, "add set {t} {name} {{ type ipv4_addr; }}");
    }
}

fn element_lines(s: &mut String, verb: &str, t: &str, members: &[Member]) {
    for (ip, groups) in members {
        let _ = writeln!(s, "{verb} element {t} pods {{ {ip} }}");
        let _ = writeln!(s, "{verb} element {t} self {{ {ip} . {ip} }}");
        let names: BTreeSet<String> = groups.iter().map(|g| set_name(g)).collect();
        for name in names {
            let _ = writeln!(s, "{verb} element {t} {name} {{ {ip} }}");
        }
    }
}

/// The nft script that adds `add` to and deletes `remove` from the member sets: what a pod's
/// start or end costs. Adding is idempotent (the sets are declared if missing, an element
/// already there is no error); deleting an element that is not there fails the transaction.
pub fn members_script(table: &str, add: &[Member], remove: &[Member]) -> String {
    let t = format!("inet {table}");
    let mut s = String::new();
    declare_sets(&mut s, &t, add.iter().flat_map(|(_, g)| g.iter()));
    element_lines(&mut s, "delete", &t, remove);
    element_lines(&mut s, "add", &t, add);
    s
}

/// The nft script that installs the groups' `rules`, leaving the member sets as they are, or,
/// with `members`, replaces the whole table (sets included) in one transaction.
pub fn rules_script(table: &str, rules: &[GroupRules], members: Option<&[Member]>) -> String {
    let t = format!("inet {table}");
    let mut s = String::new();
    if members.is_some() {
        // `add` then `delete` makes the delete succeed whether or not the table was there.
        let _ = writeln!(s, "add table {t}\ndelete table {t}");
    }
    let mut groups: BTreeSet<&String> = BTreeSet::new();
    for g in rules {
        groups.insert(&g.group_id);
        for r in g.ingress.iter().chain(&g.egress) {
            for p in &r.peers {
                if let Peer::Group(id) = p {
                    groups.insert(id);
                }
            }
        }
    }
    for (_, held) in members.into_iter().flatten() {
        groups.extend(held.iter());
    }
    declare_sets(&mut s, &t, groups);
    let _ = writeln!(
        s,
        "add chain {t} forward {{ type filter hook forward priority filter; policy accept; }}"
    );
    for chain in ["forward", "egress", "ingress"] {
        let _ = writeln!(s, "add chain {t} {chain}\nflush chain {t} {chain}");
    }
    let _ = writeln!(
        s,
        "add rule {t} forward ct state established,related accept"
    );
    let _ = writeln!(s, "add rule {t} forward ip saddr . ip daddr @self accept");
    let _ = writeln!(s, "add rule {t} forward ip saddr @pods jump egress");
    let _ = writeln!(s, "add rule {t} forward ip daddr @pods jump ingress");
    for g in rules {
        let own = set_name(&g.group_id);
        for (chain, mine, theirs, list) in [
            ("ingress", "daddr", "saddr", &g.ingress),
            ("egress", "saddr", "daddr", &g.egress),
        ] {
            for r in list.iter() {
                for line in rule_lines(r, theirs) {
                    let _ = writeln!(s, "add rule {t} {chain} ip {mine} @{own} {line}");
                }
            }
        }
    }
    let _ = writeln!(s, "add rule {t} egress drop\nadd rule {t} ingress drop");
    if let Some(members) = members {
        element_lines(&mut s, "add", &t, members);
    }
    s
}

/// The rules for one group rule: one with the CIDR peers, one per peer group.
fn rule_lines(rule: &GroupRule, peer: &str) -> Vec<String> {
    let mut cidrs = Vec::new();
    let mut anywhere = false;
    let mut lines = Vec::new();
    let traffic = traffic_match(rule.traffic);
    for p in &rule.peers {
        match p {
            Peer::Cidr(_, 0) => anywhere = true,
            Peer::Cidr(ip, 32) => cidrs.push(ip.to_string()),
            Peer::Cidr(ip, len) => cidrs.push(format!("{ip}/{len}")),
            Peer::Group(id) => lines.push(join(&[
                format!("ip {peer} @{}", set_name(id)),
                traffic.clone(),
            ])),
        }
    }
    if anywhere {
        lines.push(join(&[traffic]));
    } else if !cidrs.is_empty() {
        lines.push(join(&[
            format!("ip {peer} {{ {} }}", cidrs.join(", ")),
            traffic,
        ]));
    }
    lines
}

fn join(parts: &[String]) -> String {
    let mut out: Vec<&str> = parts
        .iter()
        .map(String::as_str)
        .filter(|p| !p.is_empty())
        .collect();
    out.push("return");
    out.join(" ")
}

/// What a rule matches beyond its peers, as nft expressions (empty: everything).
fn traffic_match(traffic: Traffic) -> String {
    let mut parts: Vec<String> = Vec::new();
    match traffic {
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
    parts.join(" ")
}

/// Runs `script` with `nft` in the host's namespace.
pub async fn apply(script: &str) -> Result<(), crate::net::NetError> {
    crate::net::run("nft", &["-f", "-"], Some(script))
        .await
        .map(drop)
}

/// Deletes every security-group table of `bridge` (when the pod network is torn down).
pub async fn remove_all(bridge: &str) -> Result<(), crate::net::NetError> {
    let listed = crate::net::run("nft", &["-j", "list", "tables"], None).await?;
    let doc: serde_json::Value = serde_json::from_str(&listed).unwrap_or_default();
    let prefix = format!("{TABLE_PREFIX}{bridge}-");
    for item in doc["nftables"].as_array().into_iter().flatten() {
        let table = &item["table"];
        if table["family"] == "inet"
            && let Some(name) = table["name"].as_str()
            && name.starts_with(&prefix)
        {
            match crate::net::run("nft", &["delete", "table", "inet", name], None).await {
                Ok(_) => {}
                Err(e) if e.says("No such file") => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_carry_the_pid_and_are_parsed_back() {
        let mine = table_name("lfbr0", "run-1");
        assert_eq!(table_pid("lfbr0", &mine), Some(Some(std::process::id())));
        assert_eq!(table_pid("lfbr0", "localfargate_sg-lfbr0-run"), Some(None));
        assert_eq!(table_pid("lfbr1", &mine), None);
        assert_eq!(table_pid("lfbr0", "localfargate-lfbr0"), None);
    }

    fn rules() -> Vec<GroupRules> {
        vec![
            GroupRules {
                group_id: "sg-cluster".into(),
                ingress: vec![GroupRule {
                    traffic: Traffic::All,
                    peers: vec![Peer::Group("sg-cluster".into())],
                }],
                egress: vec![GroupRule {
                    traffic: Traffic::All,
                    peers: vec![Peer::Cidr(Ipv4Addr::UNSPECIFIED, 0)],
                }],
            },
            GroupRules {
                group_id: "sg-web".into(),
                ingress: vec![
                    GroupRule {
                        traffic: Traffic::Ports {
                            protocol: 6,
                            first: 80,
                            last: 80,
                        },
                        peers: vec![
                            Peer::Cidr(Ipv4Addr::new(10, 0, 1, 5), 32),
                            Peer::Cidr(Ipv4Addr::new(10, 0, 0, 0), 16),
                            Peer::Group("sg-client".into()),
                        ],
                    },
                    GroupRule {
                        traffic: Traffic::Icmp {
                            kind: Some(8),
                            code: None,
                        },
                        peers: vec![],
                    },
                ],
                egress: vec![GroupRule {
                    traffic: Traffic::Ports {
                        protocol: 17,
                        first: 53,
                        last: 60,
                    },
                    peers: vec![Peer::Cidr(Ipv4Addr::new(10, 100, 0, 0), 16)],
                }],
            },
        ]
    }

    #[test]
    fn rules_name_member_sets_and_end_in_drop() {
        let s = rules_script("T", &rules(), None);
        let want = [
            "add set inet T g_sg_client { type ipv4_addr; }",
            "add rule inet T forward ct state established,related accept",
            "add rule inet T forward ip saddr . ip daddr @self accept",
            "add rule inet T forward ip saddr @pods jump egress",
            "add rule inet T forward ip daddr @pods jump ingress",
            "add rule inet T ingress ip daddr @g_sg_cluster ip saddr @g_sg_cluster return",
            "add rule inet T egress ip saddr @g_sg_cluster return",
            "add rule inet T ingress ip daddr @g_sg_web ip saddr @g_sg_client tcp dport 80 return",
            "add rule inet T ingress ip daddr @g_sg_web ip saddr { 10.0.1.5, 10.0.0.0/16 } \
             tcp dport 80 return",
            "add rule inet T egress ip saddr @g_sg_web ip daddr { 10.100.0.0/16 } udp dport 53-60 \
             return",
            "add rule inet T egress drop",
            "add rule inet T ingress drop",
        ];
        for w in want {
            assert!(s.contains(w), "{w:?} missing from:\n{s}");
        }
        // A rule without peers matches nothing and is left out; the sets are kept.
        assert!(!s.contains("icmp"), "{s}");
        assert!(!s.contains("delete"), "{s}");
        assert!(!s.contains("element"), "{s}");
    }

    #[test]
    fn a_rebuild_replaces_the_table_with_its_members() {
        let members = vec![(
            Ipv4Addr::new(10, 0, 1, 5),
            vec!["sg-cluster".to_string(), "sg-other".to_string()],
        )];
        let s = rules_script("T", &rules(), Some(&members));
        assert!(
            s.starts_with("add table inet T\ndelete table inet T\n"),
            "{s}"
        );
        for w in [
            "add set inet T g_sg_other { type ipv4_addr; }",
            "add element inet T pods { 10.0.1.5 }",
            "add element inet T self { 10.0.1.5 . 10.0.1.5 }",
            "add element inet T g_sg_cluster { 10.0.1.5 }",
            "add element inet T g_sg_other { 10.0.1.5 }",
        ] {
            assert!(s.contains(w), "{w:?} missing from:\n{s}");
        }
    }

    #[test]
    fn a_pod_start_changes_only_its_own_elements() {
        let add = vec![(Ipv4Addr::new(10, 0, 1, 6), vec!["sg-web".to_string()])];
        let remove = vec![(Ipv4Addr::new(10, 0, 1, 5), vec!["sg-cluster".to_string()])];
        let s = members_script("T", &add, &remove);
        assert!(!s.contains("rule"), "{s}");
        assert!(!s.contains("flush"), "{s}");
        for w in [
            "add set inet T g_sg_web { type ipv4_addr; }",
            "delete element inet T pods { 10.0.1.5 }",
            "delete element inet T g_sg_cluster { 10.0.1.5 }",
            "add element inet T g_sg_web { 10.0.1.6 }",
        ] {
            assert!(s.contains(w), "{w:?} missing from:\n{s}");
        }
    }
}
