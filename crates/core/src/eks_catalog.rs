//! What EKS offers, as one snapshot taken at this release: the Kubernetes versions (standard
//! and extended support, their dates, the default) and the four AWS add-ons localfargate knows
//! (coredns, kube-proxy, vpc-cni, eks-pod-identity-agent) with their versions per Kubernetes
//! version and their configuration schemas. CreateCluster's validation, DescribeClusterVersions,
//! DescribeAddonVersions and DescribeAddonConfiguration all read it from here. The statuses are
//! the snapshot's, not recomputed from the clock: a test run in a year answers as today.

use serde_json::{Map, Value, json};

/// EKS's support status of a Kubernetes minor version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupportStatus {
    Standard,
    Extended,
}

impl SupportStatus {
    /// `versionStatus` on the wire.
    pub fn version_status(self) -> &'static str {
        match self {
            SupportStatus::Standard => "STANDARD_SUPPORT",
            SupportStatus::Extended => "EXTENDED_SUPPORT",
        }
    }
    /// The deprecated `status` member.
    pub fn status(self) -> &'static str {
        match self {
            SupportStatus::Standard => "standard-support",
            SupportStatus::Extended => "extended-support",
        }
    }
}

/// One Kubernetes minor version as EKS lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KubernetesVersion {
    pub version: &'static str,
    /// Its newest patch release on EKS.
    pub patch: &'static str,
    pub platform_version: &'static str,
    /// Release, end of standard support and end of extended support (`YYYY-MM-DD`).
    pub released: &'static str,
    pub end_of_standard_support: &'static str,
    pub end_of_extended_support: &'static str,
    pub support: SupportStatus,
}

const fn v(
    version: &'static str,
    patch: &'static str,
    platform_version: &'static str,
    dates: [&'static str; 3],
    support: SupportStatus,
) -> KubernetesVersion {
    KubernetesVersion {
        version,
        patch,
        platform_version,
        released: dates[0],
        end_of_standard_support: dates[1],
        end_of_extended_support: dates[2],
        support,
    }
}

/// The versions EKS offers in this snapshot, newest first (EKS's calendar: 14 months of standard
/// support, then 12 of extended support).
pub const KUBERNETES_VERSIONS: [KubernetesVersion; 7] = [
    v(
        "1.35",
        "1.35.0",
        "eks.3",
        ["2026-01-28", "2027-03-27", "2028-03-27"],
        SupportStatus::Standard,
    ),
    v(
        "1.34",
        "1.34.2",
        "eks.13",
        ["2025-10-02", "2026-12-02", "2027-12-02"],
        SupportStatus::Standard,
    ),
    v(
        "1.33",
        "1.33.5",
        "eks.27",
        ["2025-05-29", "2026-07-29", "2027-07-29"],
        SupportStatus::Standard,
    ),
    v(
        "1.32",
        "1.32.9",
        "eks.34",
        ["2025-01-23", "2026-03-23", "2027-03-23"],
        SupportStatus::Standard,
    ),
    v(
        "1.31",
        "1.31.13",
        "eks.50",
        ["2024-09-26", "2025-11-26", "2026-11-26"],
        SupportStatus::Extended,
    ),
    v(
        "1.30",
        "1.30.14",
        "eks.58",
        ["2024-05-23", "2025-07-23", "2026-07-23"],
        SupportStatus::Extended,
    ),
    v(
        "1.29",
        "1.29.15",
        "eks.61",
        ["2024-01-23", "2025-03-23", "2026-03-23"],
        SupportStatus::Extended,
    ),
];

/// The version CreateCluster gives a cluster that names none (EKS's default, one behind the
/// newest).
pub const DEFAULT_KUBERNETES_VERSION: &str = "1.34";

pub fn kubernetes_version(version: &str) -> Option<&'static KubernetesVersion> {
    KUBERNETES_VERSIONS.iter().find(|v| v.version == version)
}

pub fn supported_versions() -> impl Iterator<Item = &'static str> {
    KUBERNETES_VERSIONS.iter().map(|v| v.version)
}

/// The minor version after `version` (`1.33` → `1.34`), if it parses.
pub fn next_minor(version: &str) -> Option<String> {
    let (major, minor) = version.split_once('.')?;
    let minor: u32 = minor.parse().ok()?;
    Some(format!("{major}.{}", minor + 1))
}

/// A release date as epoch seconds (midnight UTC), as the API's timestamps are.
pub fn epoch_seconds(date: &str) -> f64 {
    date.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map_or(0.0, |z| z.timestamp().as_second() as f64)
}

/// One add-on version and the Kubernetes versions it runs on, with those it is the default for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonVersion {
    pub version: String,
    pub compatible: Vec<&'static str>,
    pub default_for: Vec<&'static str>,
}

/// An add-on of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddonDefinition {
    pub name: &'static str,
    /// `type` in DescribeAddonVersions.
    pub kind: &'static str,
    pub namespace: &'static str,
    /// Whether it can run on Fargate (eks-pod-identity-agent is a DaemonSet on nodes' host
    /// network: it does not).
    pub runs_on_fargate: bool,
    pub requires_iam_permissions: bool,
}

pub const ADDONS: [AddonDefinition; 4] = [
    AddonDefinition {
        name: "coredns",
        kind: "networking",
        namespace: "kube-system",
        runs_on_fargate: true,
        requires_iam_permissions: false,
    },
    AddonDefinition {
        name: "eks-pod-identity-agent",
        kind: "security",
        namespace: "kube-system",
        runs_on_fargate: false,
        requires_iam_permissions: false,
    },
    AddonDefinition {
        name: "kube-proxy",
        kind: "networking",
        namespace: "kube-system",
        runs_on_fargate: false,
        requires_iam_permissions: false,
    },
    AddonDefinition {
        name: "vpc-cni",
        kind: "networking",
        namespace: "kube-system",
        runs_on_fargate: false,
        requires_iam_permissions: true,
    },
];

pub fn addon(name: &str) -> Option<&'static AddonDefinition> {
    ADDONS.iter().find(|a| a.name == name)
}

fn all_versions() -> Vec<&'static str> {
    supported_versions().collect()
}

/// The versions of `addon`, newest first.
pub fn addon_versions(addon: &str) -> Vec<AddonVersion> {
    let each =
        |version: &str, compatible: &[&'static str], default_for: &[&'static str]| AddonVersion {
            version: version.to_string(),
            compatible: compatible.to_vec(),
            default_for: default_for.to_vec(),
        };
    match addon {
        "coredns" => vec![
            each("v1.13.2-eksbuild.1", &["1.35", "1.34"], &["1.35"]),
            each("v1.12.4-eksbuild.1", &["1.35", "1.34", "1.33"], &["1.34"]),
            each(
                "v1.12.1-eksbuild.2",
                &["1.33", "1.32", "1.31", "1.30", "1.29"],
                &["1.33"],
            ),
            each(
                "v1.11.4-eksbuild.2",
                &["1.32", "1.31", "1.30", "1.29"],
                &["1.32", "1.31", "1.30", "1.29"],
            ),
            each("v1.11.3-eksbuild.1", &["1.32", "1.31", "1.30", "1.29"], &[]),
        ],
        // kube-proxy follows the cluster's minor version exactly.
        "kube-proxy" => KUBERNETES_VERSIONS
            .iter()
            .flat_map(|k| {
                let patch = k.patch;
                [
                    each(&format!("v{patch}-eksbuild.2"), &[k.version], &[k.version]),
                    each(&format!("v{patch}-eksbuild.1"), &[k.version], &[]),
                ]
            })
            .collect(),
        "vpc-cni" => {
            let all = all_versions();
            vec![
                each("v1.20.4-eksbuild.1", &all, &all),
                each("v1.19.6-eksbuild.7", &all, &[]),
            ]
        }
        "eks-pod-identity-agent" => {
            let all = all_versions();
            vec![
                each("v1.3.9-eksbuild.3", &all, &all),
                each("v1.3.8-eksbuild.2", &all, &[]),
            ]
        }
        _ => Vec::new(),
    }
}

/// The version of `addon` a cluster of `kubernetes` gets when none is named.
pub fn default_addon_version(addon: &str, kubernetes: &str) -> Option<String> {
    addon_versions(addon)
        .into_iter()
        .find(|v| v.default_for.contains(&kubernetes))
        .map(|v| v.version)
}

fn object(properties: Value) -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": properties})
}

/// The JSON schema of `addon`'s `configurationValues` (DescribeAddonConfiguration), the members
/// EKS's schemas have at the top level.
pub fn configuration_schema(addon: &str) -> Option<Value> {
    let resources = json!({"type": "object", "properties": {
        "limits": {"type": "object"}, "requests": {"type": "object"}}});
    let common = json!({
        "affinity": {"type": ["object", "null"]},
        "nodeSelector": {"type": "object", "additionalProperties": {"type": "string"}},
        "podAnnotations": {"type": "object"},
        "podLabels": {"type": "object"},
        "resources": resources,
        "tolerations": {"type": "array"},
    });
    let mut props = common.as_object().cloned().unwrap_or_default();
    let extra = match addon {
        "coredns" => json!({
            "autoScaling": {"type": "object", "properties": {
                "enabled": {"type": "boolean"}, "minReplicas": {"type": "integer"},
                "maxReplicas": {"type": "integer"}}},
            "computeType": {"type": "string", "description":
                "Fargate removes the eks.amazonaws.com/compute-type: ec2 annotation so CoreDNS can run on Fargate"},
            "corefile": {"type": "string"},
            "podDisruptionBudget": {"type": "object"},
            "priorityClassName": {"type": "string"},
            "replicaCount": {"type": "integer", "minimum": 0},
            "topologySpreadConstraints": {"type": "array"},
        }),
        "kube-proxy" => json!({
            "ipvs": {"type": "object"},
            "mode": {"type": "string", "enum": ["iptables", "ipvs", "nftables"]},
            "priorityClassName": {"type": "string"},
        }),
        "vpc-cni" => json!({
            "env": {"type": "object"},
            "enableNetworkPolicy": {"type": "string"},
            "enableWindowsIpam": {"type": "string"},
            "init": {"type": "object"},
            "nodeAgent": {"type": "object"},
        }),
        "eks-pod-identity-agent" => json!({
            "agent": {"type": "object"},
            "priorityClassName": {"type": "string"},
            "updateStrategy": {"type": "object"},
        }),
        _ => return None,
    };
    if let Value::Object(extra) = extra {
        props.extend(extra);
    }
    let mut schema = object(Value::Object(props));
    schema["$ref"] = json!("#/definitions/Config");
    let mut definitions = Map::new();
    definitions.insert("Config".to_string(), schema.clone());
    Some(json!({
        "$ref": "#/definitions/Config",
        "$schema": "http://json-schema.org/draft-06/schema#",
        "definitions": definitions,
    }))
}

/// An add-on's `configurationValues` (JSON or YAML) checked against its schema's top-level
/// members and their types, as EKS refuses them before anything changes. Returns the parsed
/// object.
pub fn parse_configuration(addon: &str, text: &str) -> Result<Map<String, Value>, String> {
    let prefix = "ConfigurationValue provided in request is not supported";
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => serde_yaml::from_str(text).map_err(|e| {
            format!("{prefix}: configuration values are neither JSON nor YAML: {e}")
        })?,
    };
    let Value::Object(map) = value else {
        return Err(format!(
            "{prefix}: Json schema validation failed with error: [$: is not an object]"
        ));
    };
    let schema = configuration_schema(addon).unwrap_or(json!({}));
    let props = &schema["definitions"]["Config"]["properties"];
    let mut errors = Vec::new();
    for (key, value) in &map {
        let Some(prop) = props.get(key) else {
            errors.push(format!(
                "$.{key}: is not defined in the schema and the schema does not allow additional properties"
            ));
            continue;
        };
        let types: Vec<&str> = match &prop["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let ok = types.is_empty()
            || types.iter().any(|t| match *t {
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "boolean" => value.is_boolean(),
                "null" => value.is_null(),
                _ => true,
            });
        if !ok {
            errors.push(format!(
                "$.{key}: {} found, {} expected",
                json_type(value),
                types.join(", ")
            ));
        }
    }
    if errors.is_empty() {
        Ok(map)
    } else {
        Err(format!(
            "{prefix}: Json schema validation failed with error: [{}]",
            errors.join(", ")
        ))
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_defaults() {
        assert!(kubernetes_version("1.35").is_some());
        assert!(kubernetes_version("1.34").is_some());
        assert!(kubernetes_version("1.28").is_none());
        assert!(kubernetes_version(DEFAULT_KUBERNETES_VERSION).is_some());
        assert_eq!(next_minor("1.33").as_deref(), Some("1.34"));
        for k in supported_versions() {
            for a in ADDONS {
                assert!(
                    default_addon_version(a.name, k).is_some(),
                    "{} has no default for {k}",
                    a.name
                );
            }
        }
        assert_eq!(epoch_seconds("1970-01-02"), 86400.0);
    }

    #[test]
    fn configuration_values_are_checked() {
        let ok = parse_configuration(
            "coredns",
            r#"{"computeType": "Fargate", "replicaCount": 3}"#,
        )
        .unwrap();
        assert_eq!(ok["computeType"], "Fargate");
        assert!(parse_configuration("coredns", "computeType: Fargate\n").is_ok());
        let bad = parse_configuration("coredns", r#"{"nope": 1}"#).unwrap_err();
        assert!(
            bad.contains("$.nope: is not defined in the schema"),
            "{bad}"
        );
        let bad = parse_configuration("coredns", r#"{"replicaCount": "two"}"#).unwrap_err();
        assert!(
            bad.contains("$.replicaCount: string found, integer expected"),
            "{bad}"
        );
    }
}
