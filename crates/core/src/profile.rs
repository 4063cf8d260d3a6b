//! The Fargate profile as EKS models it. Field names follow the EKS API's JSON (camelCase), so the
//! output of `aws eks describe-fargate-profile` deserializes into it as is.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProfileStatus {
    Creating,
    #[default]
    Active,
    Deleting,
    CreateFailed,
    DeleteFailed,
}

impl fmt::Display for ProfileStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProfileStatus::Creating => "CREATING",
            ProfileStatus::Active => "ACTIVE",
            ProfileStatus::Deleting => "DELETING",
            ProfileStatus::CreateFailed => "CREATE_FAILED",
            ProfileStatus::DeleteFailed => "DELETE_FAILED",
        })
    }
}

/// One selector: a namespace pattern and label patterns, all of which a pod must carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Selector {
    pub namespace: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Selector {
    pub fn new(namespace: &str, labels: &[(&str, &str)]) -> Self {
        Selector {
            namespace: namespace.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

impl fmt::Display for Selector {
    /// `namespace=prod,labels={tier=web,app=api}`, the form the aws CLI's shorthand uses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "namespace={}", self.namespace)?;
        if !self.labels.is_empty() {
            let labels: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            write!(f, ",labels={{{}}}", labels.join(","))?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct FargateProfile {
    #[serde(rename = "fargateProfileName")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fargate_profile_arn: Option<String>,
    #[serde(rename = "clusterName", default)]
    pub cluster: String,
    /// Epoch seconds, as the EKS API sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<f64>,
    #[serde(default)]
    pub pod_execution_role_arn: String,
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(default)]
    pub selectors: Vec<Selector>,
    #[serde(default)]
    pub status: ProfileStatus,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl FargateProfile {
    /// An ACTIVE profile with the given selectors; the rest left empty.
    pub fn active(name: &str, selectors: Vec<Selector>) -> Self {
        FargateProfile {
            name: name.to_string(),
            selectors,
            status: ProfileStatus::Active,
            ..Default::default()
        }
    }
}

/// Adjustable EKS quotas that shape a profile (eks-api.md §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileQuotas {
    pub selectors_per_profile: usize,
    pub labels_per_selector: usize,
}

impl Default for ProfileQuotas {
    fn default() -> Self {
        ProfileQuotas {
            selectors_per_profile: 5,
            labels_per_selector: 5,
        }
    }
}

/// Why EKS rejects a profile's definition. All are `InvalidParameterException` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("The fargate profile name starts with the reserved prefix: 'eks-'.")]
    ReservedPrefix,
    #[error("Fargate Profile requires at least one selector.")]
    NoSelector,
    #[error("Fargate Profile must have at least one selector with at least one namespace value.")]
    SelectorWithoutNamespace,
    /// AWS's wording for this one is unpublished; this follows the label message.
    #[error("Request contains more than {0} Selectors")]
    TooManySelectors(usize),
    #[error("Request contains Selector with more than {0} Label pairs")]
    TooManyLabels(usize),
    #[error("Label keys must be 1 to 127 characters and values 1 to 255: {0:?}")]
    LabelLength(String),
}

impl ProfileError {
    pub const AWS_ERROR_TYPE: &'static str = "InvalidParameterException";
}

impl FargateProfile {
    /// Check the profile's definition as CreateFargateProfile does, reporting the first problem.
    pub fn validate(&self, quotas: ProfileQuotas) -> Result<(), ProfileError> {
        if self.name.starts_with("eks-") {
            return Err(ProfileError::ReservedPrefix);
        }
        if self.selectors.is_empty() {
            return Err(ProfileError::NoSelector);
        }
        if self.selectors.len() > quotas.selectors_per_profile {
            return Err(ProfileError::TooManySelectors(quotas.selectors_per_profile));
        }
        for selector in &self.selectors {
            if selector.namespace.is_empty() {
                return Err(ProfileError::SelectorWithoutNamespace);
            }
            if selector.labels.len() > quotas.labels_per_selector {
                return Err(ProfileError::TooManyLabels(quotas.labels_per_selector));
            }
            for (k, v) in &selector.labels {
                let (kl, vl) = (k.chars().count(), v.chars().count());
                if !(1..=127).contains(&kl) || !(1..=255).contains(&vl) {
                    return Err(ProfileError::LabelLength(format!("{k}={v}")));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_messages() {
        let q = ProfileQuotas::default();
        let ok = FargateProfile::active("fp", vec![Selector::new("default", &[("a", "b")])]);
        assert_eq!(ok.validate(q), Ok(()));
        let named = |name: &str, selectors| FargateProfile::active(name, selectors);
        assert_eq!(
            named("eks-fp", vec![Selector::new("d", &[])])
                .validate(q)
                .unwrap_err()
                .to_string(),
            "The fargate profile name starts with the reserved prefix: 'eks-'."
        );
        assert_eq!(
            named("fp", vec![]).validate(q).unwrap_err().to_string(),
            "Fargate Profile requires at least one selector."
        );
        assert_eq!(
            named("fp", vec![Selector::new("", &[])])
                .validate(q)
                .unwrap_err()
                .to_string(),
            "Fargate Profile must have at least one selector with at least one namespace value."
        );
        let six = [
            ("a", "1"),
            ("b", "1"),
            ("c", "1"),
            ("d", "1"),
            ("e", "1"),
            ("f", "1"),
        ];
        assert_eq!(
            named("fp", vec![Selector::new("d", &six)])
                .validate(q)
                .unwrap_err()
                .to_string(),
            "Request contains Selector with more than 5 Label pairs"
        );
        assert_eq!(
            named("fp", vec![Selector::new("d", &[]); 6])
                .validate(q)
                .unwrap_err(),
            ProfileError::TooManySelectors(5)
        );
        let raised = ProfileQuotas {
            selectors_per_profile: 6,
            labels_per_selector: 6,
        };
        assert_eq!(
            named("fp", vec![Selector::new("d", &six); 6]).validate(raised),
            Ok(())
        );
        assert!(
            named("fp", vec![Selector::new("d", &[("k", "")])])
                .validate(q)
                .is_err()
        );
    }

    #[test]
    fn describe_fargate_profile_output_deserializes() {
        let json = r#"{
            "fargateProfileName": "fp-default",
            "fargateProfileArn": "arn:aws:eks:us-east-1:111122223333:fargateprofile/c/fp-default/1cb1a11a-1dc1-1d11-cf11-1111f11fa111",
            "clusterName": "c",
            "createdAt": 1700000000.123,
            "podExecutionRoleArn": "arn:aws:iam::111122223333:role/fp",
            "subnets": ["subnet-1"],
            "selectors": [{"namespace": "default"}, {"namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}}],
            "status": "CREATING",
            "tags": {"team": "a"}
        }"#;
        let profile: FargateProfile = serde_json::from_str(json).unwrap();
        assert_eq!(profile.name, "fp-default");
        assert_eq!(profile.status, ProfileStatus::Creating);
        assert_eq!(profile.selectors[1].labels["k8s-app"], "kube-dns");
        assert_eq!(
            profile.selectors[1].to_string(),
            "namespace=kube-system,labels={k8s-app=kube-dns}"
        );
        let back = serde_json::to_value(&profile).unwrap();
        assert_eq!(back["fargateProfileName"], "fp-default");
        assert_eq!(back["status"], "CREATING");
        assert_eq!(
            back["selectors"][0],
            serde_json::json!({"namespace": "default"})
        );
    }
}
