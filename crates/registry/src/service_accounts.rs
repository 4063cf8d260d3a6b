//! Each cluster's service-account token signer, from its EKS record: what the API verifies
//! tokens with and the node agent signs pods' projected tokens with.

use std::sync::Arc;

use localfargate_core::service_account_token::TokenSigner;
use serde_json::Value;

/// The cluster's service-account token signer: its own key, or (a cluster recorded before
/// clusters had one) its CA's; the issuer is the cluster's OIDC issuer URL.
pub fn token_signer(cluster: &str, record: &Value) -> Option<Arc<TokenSigner>> {
    let key = record["private"]["serviceAccountKeyPem"]
        .as_str()
        .or_else(|| record["private"]["caKeyPem"].as_str())?;
    let issuer = record["resource"]["identity"]["oidc"]["issuer"].as_str()?;
    match TokenSigner::new(key, issuer) {
        Ok(s) => Some(Arc::new(s)),
        Err(e) => {
            tracing::error!(cluster, error = %e, "no service-account tokens for this cluster");
            None
        }
    }
}
