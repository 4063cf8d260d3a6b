//! Security groups for pods, as EKS applies them to Fargate pods: which groups a pod gets and
//! what they let in and out of its network interface. Pure: the VPC model holds the groups, and
//! the result is each group's [`GroupRules`], whose peers named by group the runtime resolves
//! through one set of member addresses per group.
//!
//! As on AWS:
//! - A Fargate pod gets the cluster security group unless a `SecurityGroupPolicy` of its namespace
//!   selects it; then it gets the policies' groups *instead* (AWS tells users to list the cluster
//!   security group among them when the pod must reach the control plane).
//! - Security groups are stateful (replies are always let through) and only allow: a packet is
//!   let in when any ingress rule of any of the pod's groups allows it, out when any egress rule
//!   does.
//! - A rule names its peers by CIDR or by security group (every address holding that group).
//! - A group made without egress rules allows all egress (EC2 adds that rule to a new group).
//! - The cluster security group EKS creates allows all traffic from itself and all egress.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as TypedLabelSelector;
use serde::{Deserialize, Serialize};

/// The annotation Fargate puts on a pod that got security groups from a `SecurityGroupPolicy`.
pub const POD_SG_ANNOTATION: &str = "fargate.amazonaws.com/pod-sg";

/// An EC2 security group of the VPC model, in the shape `aws ec2 describe-security-groups`
/// prints (camelCase, as the rest of the model file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityGroup {
    pub group_id: String,
    #[serde(default)]
    pub group_name: String,
    #[serde(default)]
    pub description: String,
    /// Ingress rules.
    #[serde(default)]
    pub ip_permissions: Vec<IpPermission>,
    /// Egress rules; absent means EC2's default rule for a new group: all traffic anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_permissions_egress: Option<Vec<IpPermission>>,
}

/// One rule of a security group, as EC2's `IpPermission`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpPermission {
    /// `tcp`, `udp`, `icmp`, a protocol number, or `-1` (all traffic).
    pub ip_protocol: String,
    /// First port (TCP/UDP) or ICMP type (`-1`: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_port: Option<i32>,
    /// Last port (TCP/UDP) or ICMP code (`-1`: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_ranges: Vec<IpRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_id_group_pairs: Vec<GroupPair>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpRange {
    pub cidr_ip: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupPair {
    pub group_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// What a rule matches beyond its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Traffic {
    /// `-1`: every protocol and port.
    All,
    /// TCP or UDP (by number: 6, 17) on a port range.
    Ports { protocol: u8, first: u16, last: u16 },
    /// ICMP, with a type (and code) or any.
    Icmp { kind: Option<u8>, code: Option<u8> },
    /// Any other IP protocol, by number.
    Protocol(u8),
}

/// Who a rule admits (ingress) or lets the pod reach (egress).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    /// An address or network (host bits cleared, as EC2 stores it).
    Cidr(Ipv4Addr, u8),
    /// Every address holding this security group.
    Group(String),
}

/// One allow rule of a group, resolved: traffic from (ingress) or to (egress) any of `peers`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupRule {
    pub traffic: Traffic,
    pub peers: Vec<Peer>,
}

/// A security group's rules, resolved for enforcement. Peers named by group stay names: the
/// enforcement keeps one set of member addresses per group, so a pod that starts or stops
/// changes set elements, never rules.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupRules {
    pub group_id: String,
    pub ingress: Vec<GroupRule>,
    pub egress: Vec<GroupRule>,
}

/// A rule of the model that cannot be enforced as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("security group {group}: invalid protocol {protocol:?}")]
    Protocol { group: String, protocol: String },
    #[error("security group {group}: invalid port range {from:?}-{to:?} for {protocol}")]
    Ports {
        group: String,
        protocol: String,
        from: Option<i32>,
        to: Option<i32>,
    },
    #[error("security group {group}: invalid CIDR {cidr:?}")]
    Cidr { group: String, cidr: String },
}

/// The cluster security group EKS creates: all traffic from itself, all egress.
pub fn cluster_security_group(group_id: &str) -> SecurityGroup {
    SecurityGroup {
        group_id: group_id.to_string(),
        group_name: format!("eks-cluster-sg-{group_id}"),
        description: "EKS created security group applied to ENI that is attached to EKS Control \
                      Plane master nodes, as well as any managed workloads."
            .to_string(),
        ip_permissions: vec![IpPermission {
            ip_protocol: "-1".to_string(),
            from_port: None,
            to_port: None,
            ip_ranges: Vec::new(),
            user_id_group_pairs: vec![GroupPair {
                group_id: group_id.to_string(),
                description: None,
            }],
        }],
        ip_permissions_egress: None,
    }
}

/// Check every rule of a model's groups, so a bad file is refused when it is loaded.
pub fn check(groups: &[SecurityGroup]) -> Result<(), RuleError> {
    for g in groups {
        for p in g.ip_permissions.iter().chain(egress(g).iter()) {
            rule(&g.group_id, p)?;
        }
    }
    Ok(())
}

/// A group's egress rules, EC2's default when it names none.
fn egress(group: &SecurityGroup) -> Vec<IpPermission> {
    group.ip_permissions_egress.clone().unwrap_or_else(|| {
        vec![IpPermission {
            ip_protocol: "-1".to_string(),
            from_port: None,
            to_port: None,
            ip_ranges: vec![IpRange {
                cidr_ip: "0.0.0.0/0".to_string(),
                description: None,
            }],
            user_id_group_pairs: Vec::new(),
        }]
    })
}

fn traffic(group: &str, p: &IpPermission) -> Result<Traffic, RuleError> {
    let protocol = p.ip_protocol.to_ascii_lowercase();
    let number: Option<u8> = match protocol.as_str() {
        "-1" | "all" => return Ok(Traffic::All),
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmp" => Some(1),
        other => other.parse().ok(),
    };
    let Some(number) = number else {
        return Err(RuleError::Protocol {
            group: group.to_string(),
            protocol: p.ip_protocol.clone(),
        });
    };
    let bad_ports = || RuleError::Ports {
        group: group.to_string(),
        protocol: p.ip_protocol.clone(),
        from: p.from_port,
        to: p.to_port,
    };
    match number {
        6 | 17 => {
            let (Some(from), Some(to)) = (p.from_port, p.to_port) else {
                return Err(bad_ports());
            };
            let (Ok(first), Ok(last)) = (u16::try_from(from), u16::try_from(to)) else {
                return Err(bad_ports());
            };
            if first > last {
                return Err(bad_ports());
            }
            Ok(Traffic::Ports {
                protocol: number,
                first,
                last,
            })
        }
        1 => {
            let part = |v: Option<i32>| match v {
                None | Some(-1) => Ok(None),
                Some(n) => u8::try_from(n).map(Some).map_err(|_| bad_ports()),
            };
            Ok(Traffic::Icmp {
                kind: part(p.from_port)?,
                code: part(p.to_port)?,
            })
        }
        n => Ok(Traffic::Protocol(n)),
    }
}

fn rule(group: &str, p: &IpPermission) -> Result<GroupRule, RuleError> {
    let traffic = traffic(group, p)?;
    let mut peers = BTreeSet::new();
    for r in &p.ip_ranges {
        let (addr, len) = crate::eks::parse_cidr(&r.cidr_ip).ok_or_else(|| RuleError::Cidr {
            group: group.to_string(),
            cidr: r.cidr_ip.clone(),
        })?;
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        peers.insert(Peer::Cidr(Ipv4Addr::from(u32::from(addr) & mask), len));
    }
    for pair in &p.user_id_group_pairs {
        peers.insert(Peer::Group(pair.group_id.clone()));
    }
    Ok(GroupRule {
        traffic,
        peers: peers.into_iter().collect(),
    })
}

/// The rules of each of `groups` (the groups pods hold and the model's), in the model. A group
/// the model does not have allows nothing in and everything out (a new EC2 group's rules); the
/// caller warns. Repeated rules of a group are kept once.
pub fn rules_of(
    groups: &BTreeSet<String>,
    model: &[SecurityGroup],
) -> Result<Vec<GroupRules>, RuleError> {
    let mut out = Vec::new();
    for id in groups {
        let group = model
            .iter()
            .find(|g| &g.group_id == id)
            .cloned()
            .unwrap_or_else(|| SecurityGroup {
                group_id: id.clone(),
                group_name: String::new(),
                description: String::new(),
                ip_permissions: Vec::new(),
                ip_permissions_egress: None,
            });
        let mut ingress = BTreeSet::new();
        for p in &group.ip_permissions {
            ingress.insert(rule(id, p)?);
        }
        let mut egress_rules = BTreeSet::new();
        for p in &egress(&group) {
            egress_rules.insert(rule(id, p)?);
        }
        out.push(GroupRules {
            group_id: id.clone(),
            ingress: ingress.into_iter().collect(),
            egress: egress_rules.into_iter().collect(),
        });
    }
    Ok(out)
}

/// The spec of a `SecurityGroupPolicy` (`vpcresources.k8s.aws/v1beta1`, a custom resource EKS
/// installs, so it has no k8s-openapi type): which pods it selects and the groups it gives them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SecurityGroupPolicySpec {
    pub pod_selector: Option<TypedLabelSelector>,
    pub service_account_selector: Option<TypedLabelSelector>,
    pub security_groups: PolicyGroupIds,
}

/// `spec.securityGroups` of a `SecurityGroupPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PolicyGroupIds {
    pub group_ids: Vec<String>,
}

/// The groups of every `SecurityGroupPolicy` that selects a pod, in policy order without
/// repeats: by `podSelector` on the pod's labels, or `serviceAccountSelector` on its service
/// account's labels. Empty when none selects it (the pod keeps the cluster group).
pub fn groups_from_policies<'a>(
    policies: impl IntoIterator<Item = &'a SecurityGroupPolicySpec>,
    pod_labels: Option<&Labels>,
    service_account_labels: Option<&Labels>,
) -> Vec<String> {
    let mut groups: Vec<String> = Vec::new();
    for spec in policies {
        let selects = if let Some(sel) = &spec.pod_selector {
            selector_matches(sel, pod_labels)
        } else if let Some(sel) = &spec.service_account_selector {
            selector_matches(sel, service_account_labels)
        } else {
            false
        };
        if !selects {
            continue;
        }
        for id in &spec.security_groups.group_ids {
            if !groups.contains(id) {
                groups.push(id.clone());
            }
        }
    }
    groups
}

/// An object's `metadata.labels`.
pub type Labels = serde_json::Map<String, serde_json::Value>;

/// A Kubernetes label selector (matchLabels, matchExpressions) on labels; empty selects all, and
/// one that does not parse selects nothing.
fn selector_matches(selector: &TypedLabelSelector, labels: Option<&Labels>) -> bool {
    crate::selectors::LabelSelector::from_typed(selector).is_ok_and(|s| s.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn group(v: serde_json::Value) -> SecurityGroup {
        serde_json::from_value(v).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect()
    }

    fn ids(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rules_resolve_cidrs_groups_and_ec2_defaults() {
        let web = group(json!({
            "groupId": "sg-web",
            "ipPermissions": [
                {"ipProtocol": "tcp", "fromPort": 80, "toPort": 80,
                 "userIdGroupPairs": [{"groupId": "sg-client"}]},
                {"ipProtocol": "icmp", "fromPort": -1, "toPort": -1,
                 "ipRanges": [{"cidrIp": "10.0.0.7/16"}]}
            ]
        }));
        let rules = rules_of(&ids(&["sg-web"]), &[web]).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(
            rules[0].ingress,
            vec![
                GroupRule {
                    traffic: Traffic::Ports {
                        protocol: 6,
                        first: 80,
                        last: 80
                    },
                    peers: vec![Peer::Group("sg-client".into())],
                },
                GroupRule {
                    traffic: Traffic::Icmp {
                        kind: None,
                        code: None
                    },
                    // The host bits of a CIDR are dropped, as EC2 stores it.
                    peers: vec![Peer::Cidr(Ipv4Addr::new(10, 0, 0, 0), 16)],
                },
            ]
        );
        // No egress rules named: EC2's default, everything out.
        assert_eq!(
            rules[0].egress,
            vec![GroupRule {
                traffic: Traffic::All,
                peers: vec![Peer::Cidr(Ipv4Addr::UNSPECIFIED, 0)]
            }]
        );
    }

    #[test]
    fn the_cluster_group_lets_its_own_members_in_and_unknown_groups_nothing() {
        let cluster = cluster_security_group("sg-cluster");
        let rules = rules_of(&ids(&["sg-cluster", "sg-nope"]), &[cluster]).unwrap();
        assert_eq!(rules[0].group_id, "sg-cluster");
        assert_eq!(rules[0].ingress[0].traffic, Traffic::All);
        assert_eq!(
            rules[0].ingress[0].peers,
            vec![Peer::Group("sg-cluster".into())]
        );
        assert_eq!(rules[1].group_id, "sg-nope");
        assert!(rules[1].ingress.is_empty());
        assert_eq!(rules[1].egress[0].traffic, Traffic::All);
    }

    #[test]
    fn bad_rules_are_refused_with_the_group_named() {
        let bad = group(json!({"groupId": "sg-a", "ipPermissions": [
            {"ipProtocol": "tcp", "fromPort": 90, "toPort": 80, "ipRanges": [{"cidrIp": "0.0.0.0/0"}]}
        ]}));
        assert!(matches!(check(&[bad]), Err(RuleError::Ports { .. })));
        let bad = group(json!({"groupId": "sg-a", "ipPermissions": [
            {"ipProtocol": "gre-ish"}
        ]}));
        assert_eq!(
            check(&[bad]).unwrap_err().to_string(),
            "security group sg-a: invalid protocol \"gre-ish\""
        );
        let bad = group(json!({"groupId": "sg-a", "ipPermissionsEgress": [
            {"ipProtocol": "-1", "ipRanges": [{"cidrIp": "10.0.0.0/33"}]}
        ]}));
        assert!(matches!(check(&[bad]), Err(RuleError::Cidr { .. })));
    }

    #[test]
    fn policies_select_by_pod_or_service_account_labels() {
        let by_pod = json!({"podSelector": {"matchLabels": {"app": "payment-service"}},
                            "securityGroups": {"groupIds": ["sg-pay", "sg-cluster"]}});
        let by_sa = json!({"serviceAccountSelector": {"matchExpressions": [
                              {"key": "team", "operator": "In", "values": ["pay"]}]},
                           "securityGroups": {"groupIds": ["sg-cluster", "sg-db"]}});
        let everyone = json!({"podSelector": {}, "securityGroups": {"groupIds": ["sg-all"]}});
        let spec = |v: &serde_json::Value| -> SecurityGroupPolicySpec {
            serde_json::from_value(v.clone()).unwrap()
        };
        let (by_pod, by_sa, everyone) = (spec(&by_pod), spec(&by_sa), spec(&everyone));
        let pod = labels(&[("app", "payment-service")]);
        let sa = labels(&[("team", "pay")]);
        assert_eq!(
            groups_from_policies([&by_pod, &by_sa], Some(&pod), Some(&sa)),
            vec!["sg-pay", "sg-cluster", "sg-db"]
        );
        assert_eq!(
            groups_from_policies([&by_pod, &by_sa], None, Some(&labels(&[]))),
            Vec::<String>::new()
        );
        assert_eq!(
            groups_from_policies([&everyone], None, None),
            vec!["sg-all"]
        );
    }
}
