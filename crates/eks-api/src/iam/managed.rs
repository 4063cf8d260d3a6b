//! AWS managed policies that EKS setups attach, with their published documents; read-only.

use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
pub struct AwsPolicy {
    pub name: String,
    pub version: String,
    pub created: String,
    pub description: String,
    pub document: Value,
}

impl AwsPolicy {
    pub fn arn(&self) -> String {
        format!("arn:aws:iam::aws:policy/{}", self.name)
    }
    /// The document as IAM stores it (compact JSON).
    pub fn document_text(&self) -> String {
        self.document.to_string()
    }
    /// A stable policy id (`ANPA…`) derived from the name.
    pub fn id(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.name.as_bytes());
        let tail: String = digest
            .iter()
            .take(17)
            .map(|b| char::from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[usize::from(b % 32)]))
            .collect();
        format!("ANPA{tail}")
    }
}

pub fn all() -> &'static [AwsPolicy] {
    static POLICIES: OnceLock<Vec<AwsPolicy>> = OnceLock::new();
    POLICIES.get_or_init(|| {
        serde_json::from_str(include_str!("aws_managed.json")).unwrap_or_else(|e| {
            tracing::error!(error = %e, "built-in AWS managed policies");
            Vec::new()
        })
    })
}

/// The AWS managed policy with this ARN (any partition).
pub fn find(arn: &str) -> Option<&'static AwsPolicy> {
    let name = arn
        .strip_prefix("arn:")
        .and_then(|r| r.split_once(":iam::aws:policy/"))
        .map(|(_, name)| name)?;
    all().iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_policies_parse_and_validate() {
        assert_eq!(all().len(), 7);
        for p in all() {
            localfargate_core::iam_policy::parse(
                &p.document_text(),
                localfargate_core::iam_policy::Kind::Identity,
            )
            .unwrap();
        }
        assert!(find("arn:aws:iam::aws:policy/AmazonEKSFargatePodExecutionRolePolicy").is_some());
        assert!(find("arn:aws:iam::aws:policy/Nope").is_none());
    }
}
