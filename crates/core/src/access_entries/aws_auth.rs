//! The `aws-auth` ConfigMap (`kube-system`), as EKS's authenticator (aws-iam-authenticator)
//! reads it: `mapRoles` and `mapUsers`, each a YAML list in one data key.

use serde::Deserialize;
use serde_json::Value;

use super::{Principal, PrincipalKind};

/// The ConfigMap's namespace and name.
pub const NAMESPACE: &str = "kube-system";
pub const NAME: &str = "aws-auth";

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RoleMapping {
    #[serde(default)]
    pub rolearn: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct UserMapping {
    #[serde(default)]
    pub userarn: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// The mappings of one `aws-auth` ConfigMap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsAuth {
    pub roles: Vec<RoleMapping>,
    pub users: Vec<UserMapping>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsAuthError {
    #[error("aws-auth {key}: {source}")]
    Yaml {
        key: &'static str,
        #[source]
        source: YamlError,
    },
}

/// A YAML parse error, kept as text (serde_yaml's error is not `Clone`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct YamlError(String);

impl AwsAuth {
    /// From the ConfigMap object (its `data`). A key that does not parse is an error, as the
    /// authenticator then maps nobody from that key.
    pub fn from_config_map(config_map: &Value) -> Result<AwsAuth, AwsAuthError> {
        fn list<T: serde::de::DeserializeOwned>(
            data: &Value,
            key: &'static str,
        ) -> Result<Vec<T>, AwsAuthError> {
            match data[key].as_str() {
                None => Ok(Vec::new()),
                Some(text) if text.trim().is_empty() => Ok(Vec::new()),
                Some(text) => serde_yaml::from_str::<Option<Vec<T>>>(text)
                    .map(Option::unwrap_or_default)
                    .map_err(|e| AwsAuthError::Yaml {
                        key,
                        source: YamlError(e.to_string()),
                    }),
            }
        }
        let data = &config_map["data"];
        Ok(AwsAuth {
            roles: list(data, "mapRoles")?,
            users: list(data, "mapUsers")?,
        })
    }

    /// The username and groups mapped for a caller: a role session by its role's ARN without a
    /// path (the authenticator's canonical ARN, so a `rolearn` with a path never matches, as on
    /// EKS), a user by its ARN; ARNs compared case-insensitively.
    pub fn lookup(&self, caller: &Principal) -> Option<(&str, &[String])> {
        match caller.kind {
            PrincipalKind::Role => {
                let canonical = caller.canonical_arn();
                self.roles
                    .iter()
                    .find(|m| m.rolearn.eq_ignore_ascii_case(&canonical))
                    .map(|m| (m.username.as_str(), m.groups.as_slice()))
            }
            PrincipalKind::User => {
                let arn = caller.iam_arn();
                self.users
                    .iter()
                    .find(|m| m.userarn.eq_ignore_ascii_case(&arn))
                    .map(|m| (m.username.as_str(), m.groups.as_slice()))
            }
        }
    }
}
