//! The EKS resources localfargate serves besides Fargate profiles: clusters, managed node groups,
//! and the VPC model their subnets come from. Field names are the EKS API's JSON, so a resource
//! serializes as the wire shows it. Pure data and rules; the HTTP front end and the lifecycle
//! controller share them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::nodegroup::Taint;

/// Store kinds.
/// What every EKS API record's store kind starts with.
pub const EKS_KIND_PREFIX: &str = "eks.amazonaws.com/";
pub const CLUSTER_KIND: &str = "eks.amazonaws.com/Cluster";
pub const FARGATE_PROFILE_KIND: &str = "eks.amazonaws.com/FargateProfile";
pub const NODEGROUP_KIND: &str = "eks.amazonaws.com/Nodegroup";
pub const IDEMPOTENCY_KIND: &str = "eks.amazonaws.com/ClientRequestToken";
/// Add-ons, keyed `<cluster>/<addon>`.
pub const ADDON_KIND: &str = "eks.amazonaws.com/Addon";
/// Cluster, node group and add-on updates, keyed `<cluster>/<update id>`.
pub const UPDATE_KIND: &str = "eks.amazonaws.com/Update";
/// Identity provider configs, keyed `<cluster>/<type>/<name>`.
pub const IDENTITY_PROVIDER_CONFIG_KIND: &str = "eks.amazonaws.com/IdentityProviderConfig";
/// EKS Pod Identity associations, keyed `<cluster>/<association id>`.
pub const POD_IDENTITY_ASSOCIATION_KIND: &str = "eks.amazonaws.com/PodIdentityAssociation";

/// The Kubernetes version new clusters get (the versions are in [`crate::eks_catalog`]).
pub use crate::eks_catalog::DEFAULT_KUBERNETES_VERSION;

/// A stored resource and when its current status is due to change (epoch seconds): the
/// lifecycle controller moves CREATING to ACTIVE and DELETING to gone at that time, and finds the
/// time again after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record<T> {
    pub resource: T,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition_at: Option<f64>,
    /// What the resource keeps to itself (a cluster's CA key).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub private: Value,
}

impl<T> Record<T> {
    pub fn new(resource: T, transition_at: Option<f64>) -> Self {
        Record {
            resource,
            transition_at,
            private: Value::Null,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    pub name: String,
    pub arn: String,
    pub created_at: f64,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub role_arn: String,
    pub resources_vpc_config: Value,
    pub kubernetes_network_config: Value,
    pub logging: Value,
    pub identity: Value,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_token: Option<String>,
    pub platform_version: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_config: Option<Value>,
    pub access_config: Value,
    pub upgrade_policy: Value,
    pub health: Value,
    /// Members of the request echoed back that this model does not interpret.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingConfig {
    pub min_size: u32,
    pub max_size: u32,
    pub desired_size: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Nodegroup {
    pub nodegroup_name: String,
    pub nodegroup_arn: String,
    pub cluster_name: String,
    pub version: String,
    pub release_version: String,
    pub created_at: f64,
    pub modified_at: f64,
    pub status: String,
    pub capacity_type: String,
    pub scaling_config: ScalingConfig,
    pub instance_types: Vec<String>,
    pub subnets: Vec<String>,
    pub ami_type: String,
    pub node_role: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    /// Absent with a launch template (the template sets the disk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_size: Option<u32>,
    pub health: Value,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Value>,
    /// Members kept as sent and returned: `remoteAccess`, `launchTemplate`, `updateConfig`,
    /// `nodeRepairConfig`.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// The VPCs clusters are created in: `localfargate network -o json` prints this shape, and
/// `--network FILE` loads one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Network {
    pub vpcs: Vec<Vpc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Vpc {
    pub vpc_id: String,
    pub cidr_block: String,
    pub subnets: Vec<Subnet>,
    /// The VPC's security groups, for `SecurityGroupPolicy` (the cluster security group EKS
    /// makes is not listed: it is each cluster's own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<crate::security_groups::SecurityGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subnet {
    pub subnet_id: String,
    pub availability_zone: String,
    pub cidr_block: String,
    pub private: bool,
}

impl Network {
    /// The default model: one VPC, 10.0.0.0/16, with a public and a private subnet in each of three
    /// zones. IDs and CIDRs are stable; docs/eks-api.md lists them.
    pub fn default_for(region: &str) -> Self {
        let subnet = |n: u32, zone: char, cidr: &str, private: bool| Subnet {
            subnet_id: format!("subnet-0a1b2c3d4e5f6000{n}"),
            availability_zone: format!("{region}{zone}"),
            cidr_block: cidr.to_string(),
            private,
        };
        Network {
            vpcs: vec![Vpc {
                vpc_id: "vpc-0a1b2c3d4e5f60000".to_string(),
                cidr_block: "10.0.0.0/16".to_string(),
                subnets: vec![
                    subnet(1, 'a', "10.0.0.0/20", false),
                    subnet(2, 'b', "10.0.16.0/20", false),
                    subnet(3, 'c', "10.0.32.0/20", false),
                    subnet(4, 'a', "10.0.128.0/19", true),
                    subnet(5, 'b', "10.0.160.0/19", true),
                    subnet(6, 'c', "10.0.192.0/19", true),
                ],
                security_groups: Vec::new(),
            }],
        }
    }

    /// Every security group of the model, with its VPC.
    pub fn security_groups(&self) -> impl Iterator<Item = &crate::security_groups::SecurityGroup> {
        self.vpcs.iter().flat_map(|v| v.security_groups.iter())
    }

    /// The subnet and the VPC it belongs to.
    pub fn subnet(&self, id: &str) -> Option<(&Vpc, &Subnet)> {
        self.vpcs
            .iter()
            .find_map(|v| v.subnets.iter().find(|s| s.subnet_id == id).map(|s| (v, s)))
    }

    pub fn vpc(&self, id: &str) -> Option<&Vpc> {
        self.vpcs.iter().find(|v| v.vpc_id == id)
    }

    /// Problems with a model loaded from a file: duplicate IDs, bad CIDRs.
    pub fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for vpc in &self.vpcs {
            parse_cidr(&vpc.cidr_block)
                .ok_or_else(|| format!("VPC {}: invalid CIDR {:?}", vpc.vpc_id, vpc.cidr_block))?;
            if !seen.insert(vpc.vpc_id.clone()) {
                return Err(format!("VPC {} is listed twice", vpc.vpc_id));
            }
            for s in &vpc.subnets {
                parse_cidr(&s.cidr_block).ok_or_else(|| {
                    format!("subnet {}: invalid CIDR {:?}", s.subnet_id, s.cidr_block)
                })?;
                if !seen.insert(s.subnet_id.clone()) {
                    return Err(format!("subnet {} is listed twice", s.subnet_id));
                }
            }
            for g in &vpc.security_groups {
                if !seen.insert(g.group_id.clone()) {
                    return Err(format!("security group {} is listed twice", g.group_id));
                }
            }
            crate::security_groups::check(&vpc.security_groups).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// `10.0.0.0/16` → (address, prefix length).
pub fn parse_cidr(cidr: &str) -> Option<(std::net::Ipv4Addr, u8)> {
    let (addr, len) = cidr.split_once('/')?;
    let len: u8 = len.parse().ok()?;
    (len <= 32).then_some(())?;
    Some((addr.parse().ok()?, len))
}

/// EKS cluster names: 1–100 characters, alphanumerics, hyphens and underscores, starting with an
/// alphanumeric.
pub fn valid_cluster_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() <= 100
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// An IAM role ARN (`arn:aws:iam::123456789012:role/name`); `path_allowed` false when the role may
/// not have a path (Fargate pod execution roles).
pub fn valid_role_arn(arn: &str, path_allowed: bool) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts[..] else {
        return false;
    };
    let Some(role) = resource.strip_prefix("role/") else {
        return false;
    };
    prefix == "arn"
        && partition.starts_with("aws")
        && service == "iam"
        && region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !role.is_empty()
        && (path_allowed || !role.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_network_is_consistent() {
        let n = Network::default_for("us-east-1");
        assert_eq!(n.check(), Ok(()));
        let (vpc, s) = n.subnet("subnet-0a1b2c3d4e5f60004").unwrap();
        assert!(
            s.private
                && vpc.vpc_id == "vpc-0a1b2c3d4e5f60000"
                && s.availability_zone == "us-east-1a"
        );
        assert_eq!(n.vpcs[0].subnets.iter().filter(|s| s.private).count(), 3);
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!(
            json["vpcs"][0]["subnets"][0]["subnetId"],
            "subnet-0a1b2c3d4e5f60001"
        );
        assert_eq!(json["vpcs"][0]["subnets"][5]["private"], true);
    }

    #[test]
    fn names_and_arns() {
        assert!(valid_cluster_name("my-cluster_1"));
        assert!(
            !valid_cluster_name("-bad") && !valid_cluster_name("") && !valid_cluster_name("a.b")
        );
        assert!(!valid_cluster_name(&"a".repeat(101)));
        assert!(valid_role_arn("arn:aws:iam::123456789012:role/eks", false));
        assert!(valid_role_arn(
            "arn:aws:iam::123456789012:role/path/eks",
            true
        ));
        assert!(!valid_role_arn(
            "arn:aws:iam::123456789012:role/path/eks",
            false
        ));
        assert!(!valid_role_arn("arn:invalid:format", true));
        assert!(!valid_role_arn("arn:aws:iam::12345:role/x", true));
    }
}

/// The loopback address of a cluster's portless OIDC issuer (`https://127.1.H.L/id/ID`, served on
/// port 443): derived from the cluster's Kubernetes API port, which no other cluster of the
/// machine's servers holds, so neither is the address. Every 127/8 address is the loopback
/// interface's on Linux: nothing is added to bind it.
pub fn issuer_address(kube_port: u16) -> std::net::Ipv4Addr {
    let [high, low] = kube_port.to_be_bytes();
    std::net::Ipv4Addr::new(127, 1, high, low)
}

/// The host (an IPv4 address, without a port) of a portless issuer URL, as
/// [`issuer_address`] makes them; `None` for an issuer with a port or a name.
pub fn portless_issuer_ip(issuer: &str) -> Option<std::net::Ipv4Addr> {
    let host = issuer.strip_prefix("https://")?.split('/').next()?;
    host.parse().ok()
}

#[cfg(test)]
mod issuer_tests {
    use super::*;

    #[test]
    fn issuer_addresses_follow_the_port() {
        assert_eq!(issuer_address(6443).to_string(), "127.1.25.43");
        assert_eq!(issuer_address(443).to_string(), "127.1.1.187");
        assert_eq!(
            portless_issuer_ip("https://127.1.25.43/id/ABC"),
            Some(std::net::Ipv4Addr::new(127, 1, 25, 43))
        );
        assert_eq!(portless_issuer_ip("https://127.0.0.1:6443/id/ABC"), None);
        assert_eq!(
            portless_issuer_ip("https://oidc.eks.us-east-1.amazonaws.com/id/A"),
            None
        );
    }
}
