//! Legacy service-account tokens: the non-expiring JWTs kube-controller-manager's tokens
//! controller puts in `kubernetes.io/service-account-token` Secrets, signed with the same key as
//! bound tokens but issued as `kubernetes/serviceaccount`, with no audience or expiry, naming the
//! Secret that holds them (whoever verifies one checks that Secret and its ServiceAccount still
//! exist, which this module cannot).

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{TokenError, TokenSigner};

/// The issuer upstream writes in legacy tokens.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";

/// A legacy token's claims, with upstream's claim names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegacyClaims {
    pub iss: String,
    #[serde(rename = "kubernetes.io/serviceaccount/namespace")]
    pub namespace: String,
    #[serde(rename = "kubernetes.io/serviceaccount/secret.name")]
    pub secret_name: String,
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.name")]
    pub service_account_name: String,
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.uid")]
    pub service_account_uid: String,
    pub sub: String,
}

impl LegacyClaims {
    pub fn new(namespace: &str, service_account: &str, uid: &str, secret: &str) -> Self {
        LegacyClaims {
            iss: LEGACY_ISSUER.to_string(),
            namespace: namespace.to_string(),
            secret_name: secret.to_string(),
            service_account_name: service_account.to_string(),
            service_account_uid: uid.to_string(),
            sub: format!("system:serviceaccount:{namespace}:{service_account}"),
        }
    }
}

/// Whether a JWT says it is a legacy token (its unverified issuer): which verification to try.
pub fn is_legacy(token: &str) -> bool {
    use base64::Engine;
    token
        .split('.')
        .nth(1)
        .and_then(|payload| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .ok()
        })
        .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok())
        .is_some_and(|claims| claims["iss"] == LEGACY_ISSUER)
}

impl TokenSigner {
    /// A legacy token for a Secret's service account.
    pub fn issue_legacy(&self, claims: &LegacyClaims) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(TokenError::Sign)
    }

    /// The claims of a legacy token this signer issued (signature and issuer checked; the
    /// Secret and ServiceAccount it names are the caller's to check).
    pub fn verify_legacy(&self, token: &str) -> Result<LegacyClaims, TokenError> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[LEGACY_ISSUER]);
        validation.set_required_spec_claims(&["iss", "sub"]);
        validation.validate_exp = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<LegacyClaims>(token, &self.decoding, &validation)
            .map_err(TokenError::Invalid)?
            .claims;
        if claims.sub
            != format!(
                "system:serviceaccount:{}:{}",
                claims.namespace, claims.service_account_name
            )
        {
            return Err(TokenError::Subject(claims.sub));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_tokens_verify_only_as_legacy_tokens() {
        let key = rcgen::KeyPair::generate().unwrap();
        let s = TokenSigner::new(&key.serialize_pem(), "https://issuer").unwrap();
        let claims = LegacyClaims::new("ns", "robot", "uid-1", "robot-token");
        let token = s.issue_legacy(&claims).unwrap();
        assert_eq!(s.verify_legacy(&token).unwrap(), claims);
        assert!(is_legacy(&token));
        assert!(!is_legacy("not.a.token"));
        // Not a bound token: no audience, no expiry, another issuer.
        assert!(s.verify(&token, "https://kubernetes.default.svc").is_err());
        let other = TokenSigner::new(
            &rcgen::KeyPair::generate().unwrap().serialize_pem(),
            "https://issuer",
        )
        .unwrap();
        assert!(other.verify_legacy(&token).is_err());
    }
}
