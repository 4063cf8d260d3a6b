//! Fargate profiles and node groups from the files users already have: an eksctl `ClusterConfig`,
//! the JSON of `aws eks describe-fargate-profile`, or a `CreateFargateProfile` request.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use localfargate_core::nodegroup::{NodeGroup, Taint};
use localfargate_core::profile::{FargateProfile, ProfileQuotas, ProfileStatus, Selector};
use serde::Deserialize;
use serde_yaml::Value;

use crate::yaml::{self, InputError};

/// eksctl's default instance type and node count for a node group.
const EKSCTL_INSTANCE_TYPE: &str = "m5.large";
const EKSCTL_DESIRED_CAPACITY: u32 = 2;

#[derive(Debug, Default)]
pub struct Cluster {
    pub name: Option<String>,
    pub region: Option<String>,
    pub profiles: Vec<FargateProfile>,
    pub node_groups: Vec<NodeGroup>,
    /// Where each profile came from, for messages.
    pub sources: BTreeMap<String, String>,
    /// What the inputs ask for that EKS ignores (Fargate Spot), naming the field.
    pub warnings: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClusterConfig {
    #[serde(default)]
    api_version: String,
    kind: String,
    #[serde(default)]
    metadata: ConfigMetadata,
    #[serde(default)]
    fargate_profiles: Vec<EksctlProfile>,
    #[serde(default)]
    managed_node_groups: Vec<EksctlNodeGroup>,
    #[serde(default)]
    node_groups: Vec<EksctlNodeGroup>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigMetadata {
    name: Option<String>,
    region: Option<String>,
}

#[derive(Debug, Deserialize)]
struct EksctlProfile {
    name: String,
    #[serde(default, rename = "podExecutionRoleARN")]
    pod_execution_role_arn: Option<String>,
    #[serde(default)]
    selectors: Vec<EksctlSelector>,
    #[serde(default)]
    subnets: Vec<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// Seen in guides as `FARGATE_SPOT`; EKS has no Fargate Spot.
    #[serde(default, rename = "capacityType")]
    capacity_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct EksctlSelector {
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EksctlNodeGroup {
    name: String,
    instance_type: Option<String>,
    #[serde(default)]
    instance_types: Vec<String>,
    desired_capacity: Option<u32>,
    min_size: Option<u32>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    taints: EksctlTaints,
}

/// eksctl accepts taints as a list of `{key, value, effect}` or, for unmanaged groups, as a map
/// of `key: value:effect`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum EksctlTaints {
    List(Vec<Taint>),
    Map(BTreeMap<String, String>),
}

impl Default for EksctlTaints {
    fn default() -> Self {
        EksctlTaints::List(Vec::new())
    }
}

impl EksctlTaints {
    fn into_taints(self) -> Vec<Taint> {
        match self {
            EksctlTaints::List(list) => list,
            EksctlTaints::Map(map) => map
                .into_iter()
                .map(|(key, spec)| {
                    let (value, effect) = spec
                        .rsplit_once(':')
                        .unwrap_or((spec.as_str(), "NoSchedule"));
                    Taint {
                        key,
                        value: value.to_string(),
                        effect: effect.to_string(),
                    }
                })
                .collect(),
        }
    }
}

impl Cluster {
    fn add_profile(&mut self, profile: FargateProfile, source: String) -> Result<(), InputError> {
        if let Some(earlier) = self.sources.get(&profile.name) {
            return Err(InputError(format!(
                "{source}: profile {} is already defined in {earlier}; profile names are unique in a cluster",
                profile.name
            )));
        }
        profile.validate(ProfileQuotas::default()).map_err(|e| {
            InputError(format!(
                "{source}: profile {}: EKS rejects it with InvalidParameterException: {e}",
                profile.name
            ))
        })?;
        self.sources.insert(profile.name.clone(), source);
        self.profiles.push(profile);
        Ok(())
    }

    /// Profiles and node groups from an eksctl ClusterConfig.
    pub fn add_cluster_config(&mut self, path: &Path) -> Result<(), InputError> {
        let text = yaml::read(path)?;
        let docs = yaml::documents(path, &text)?;
        let Some(doc) = docs.into_iter().next() else {
            return Err(InputError::at(
                path,
                None,
                "empty file: expected an eksctl ClusterConfig",
            ));
        };
        let line = doc.line;
        let config: ClusterConfig = yaml::typed(path, doc, "ClusterConfig")?;
        if config.kind != "ClusterConfig" {
            return Err(InputError::at(
                path,
                Some(line),
                format!(
                    "kind is {:?}: expected an eksctl ClusterConfig (apiVersion eksctl.io/v1alpha5)",
                    config.kind
                ),
            ));
        }
        if !config.api_version.is_empty() && !config.api_version.starts_with("eksctl.io/") {
            return Err(InputError::at(
                path,
                Some(line),
                format!(
                    "apiVersion is {:?}: expected eksctl.io/v1alpha5",
                    config.api_version
                ),
            ));
        }
        self.name = self.name.take().or(config.metadata.name.clone());
        self.region = self.region.take().or(config.metadata.region);
        let cluster = config.metadata.name.unwrap_or_default();
        for (index, p) in config.fargate_profiles.into_iter().enumerate() {
            if let Some(capacity) = &p.capacity_type {
                self.warnings.push(format!(
                    "{}: {}",
                    path.display(),
                    localfargate_core::fargate_spot::profile_warning(index, &p.name, capacity)
                ));
            }
            let profile = FargateProfile {
                name: p.name,
                cluster: cluster.clone(),
                pod_execution_role_arn: p.pod_execution_role_arn.unwrap_or_default(),
                subnets: p.subnets,
                selectors: p
                    .selectors
                    .into_iter()
                    .map(|s| Selector {
                        namespace: s.namespace,
                        labels: s.labels,
                    })
                    .collect(),
                // Planned profiles: as they will be once created.
                status: ProfileStatus::Active,
                tags: p.tags,
                ..Default::default()
            };
            self.add_profile(profile, path.display().to_string())?;
        }
        for g in config
            .managed_node_groups
            .into_iter()
            .chain(config.node_groups)
        {
            let mut instance_types = g.instance_types;
            if let Some(t) = g.instance_type {
                instance_types.insert(0, t);
            }
            if instance_types.is_empty() {
                instance_types.push(EKSCTL_INSTANCE_TYPE.to_string());
            }
            self.node_groups.push(NodeGroup {
                name: g.name,
                instance_types,
                desired_size: g
                    .desired_capacity
                    .or(g.min_size)
                    .unwrap_or(EKSCTL_DESIRED_CAPACITY),
                labels: g.labels,
                taints: g.taints.into_taints(),
            });
        }
        Ok(())
    }

    /// Profiles from `describe-fargate-profile` output, a `CreateFargateProfile` request, or a
    /// list of either (JSON or YAML).
    pub fn add_profile_file(&mut self, path: &Path) -> Result<(), InputError> {
        let text = yaml::read(path)?;
        for doc in yaml::documents(path, &text)? {
            let items: Vec<Value> = match doc.value {
                Value::Sequence(items) => items,
                other => vec![other],
            };
            for item in items {
                let item = match item {
                    Value::Mapping(mut map) if map.contains_key("fargateProfile") => {
                        map.remove("fargateProfile").unwrap_or(Value::Null)
                    }
                    other => other,
                };
                let has_name = item.get("fargateProfileName").is_some();
                let doc = yaml::Document {
                    value: item,
                    line: doc.line,
                };
                if !has_name {
                    return Err(InputError::at(
                        path,
                        Some(doc.line),
                        "expected describe-fargate-profile output ({\"fargateProfile\": {...}}) or a \
                         CreateFargateProfile request (with fargateProfileName)",
                    ));
                }
                let source = format!("{}:{}", path.display(), doc.line);
                let profile: FargateProfile = yaml::typed(path, doc, "Fargate profile")?;
                self.add_profile(profile, source)?;
            }
        }
        Ok(())
    }
}

pub fn load(config: Option<&PathBuf>, profile_files: &[PathBuf]) -> Result<Cluster, InputError> {
    let mut cluster = Cluster::default();
    if let Some(path) = config {
        cluster.add_cluster_config(path)?;
    }
    for path in profile_files {
        cluster.add_profile_file(path)?;
    }
    Ok(cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of the test's in a directory of its own, removed when the file is dropped.
    struct Written {
        _dir: tempfile::TempDir,
        path: PathBuf,
    }

    impl std::ops::Deref for Written {
        type Target = PathBuf;
        fn deref(&self) -> &PathBuf {
            &self.path
        }
    }

    fn write(name: &str, text: &str) -> Written {
        let dir = tempfile::Builder::new()
            .prefix("lf-inputs-")
            .tempdir()
            .unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        Written { _dir: dir, path }
    }

    #[test]
    fn cluster_config_with_profiles_and_node_groups() {
        let path = write(
            "cc.yaml",
            "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: c, region: us-west-2}\n\
             fargateProfiles:\n- name: fp-default\n  selectors:\n  - namespace: default\n  - namespace: kube-system\n    labels: {k8s-app: kube-dns}\n\
             managedNodeGroups:\n- name: ng\n  instanceType: c5.large\n  desiredCapacity: 3\n  taints: [{key: a, value: b, effect: NoSchedule}]\n\
             nodeGroups:\n- name: old\n  taints: {dedicated: 'gpu:NoExecute'}\n",
        );
        let c = load(Some(&path), &[]).unwrap();
        assert_eq!(c.region.as_deref(), Some("us-west-2"));
        assert_eq!(c.profiles[0].selectors[1].labels["k8s-app"], "kube-dns");
        assert_eq!(c.profiles[0].status, ProfileStatus::Active);
        assert_eq!(c.node_groups[0].instance_types, ["c5.large"]);
        assert_eq!(c.node_groups[0].desired_size, 3);
        assert_eq!(c.node_groups[1].instance_types, ["m5.large"]);
        assert_eq!(c.node_groups[1].desired_size, 2);
        assert_eq!(c.node_groups[1].taints[0].value, "gpu");
        assert_eq!(c.node_groups[1].taints[0].effect, "NoExecute");
    }

    #[test]
    fn describe_output_and_create_request() {
        let describe = write(
            "d.json",
            r#"{"fargateProfile": {"fargateProfileName": "fp-a", "clusterName": "c", "status": "CREATING",
                "selectors": [{"namespace": "a"}], "subnets": [], "podExecutionRoleArn": "arn:aws:iam::1:role/r"}}"#,
        );
        let request = write(
            "r.json",
            r#"{"fargateProfileName": "fp-b", "clusterName": "c", "selectors": [{"namespace": "b", "labels": {"x": "y"}}],
                "clientRequestToken": "t"}"#,
        );
        let c = load(None, &[describe.to_path_buf(), request.to_path_buf()]).unwrap();
        assert_eq!(c.profiles[0].status, ProfileStatus::Creating);
        assert_eq!(c.profiles[1].status, ProfileStatus::Active);
        let err = load(None, &[describe.to_path_buf(), describe.to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("profile fp-a is already defined in"), "{err}");
    }

    #[test]
    fn invalid_profiles_and_files_are_clear_errors() {
        let bad = write(
            "bad.json",
            r#"{"fargateProfileName": "eks-x", "selectors": [{"namespace": "a"}]}"#,
        );
        let err = load(None, &[bad.to_path_buf()]).unwrap_err().to_string();
        assert!(err.ends_with("profile eks-x: EKS rejects it with InvalidParameterException: The fargate profile name starts with the reserved prefix: 'eks-'."), "{err}");
        let other = write("other.json", r#"{"cluster": {}}"#);
        assert!(
            load(None, &[other.to_path_buf()])
                .unwrap_err()
                .to_string()
                .contains("expected describe-fargate-profile output")
        );
        let not_eksctl = write("k.yaml", "apiVersion: v1\nkind: Pod\n");
        assert!(
            load(Some(&not_eksctl), &[])
                .unwrap_err()
                .to_string()
                .contains("expected an eksctl ClusterConfig")
        );
        let typed = write(
            "t.json",
            r#"{"fargateProfileName": "x", "selectors": "default"}"#,
        );
        let err = load(None, &[typed.to_path_buf()]).unwrap_err().to_string();
        assert!(
            err.contains("Fargate profile: selectors: invalid type"),
            "{err}"
        );
    }
}
