//! Service-account tokens as kube-apiserver issues them for projected `serviceAccountToken`
//! volumes: JWTs bound to a pod, signed with the cluster's service-account key and carrying the
//! cluster's OIDC issuer (`https://oidc.eks.REGION.amazonaws.com/id/…` on EKS, a local
//! `https://HOST:PORT/id/…` here, docs/irsa.md), so that whoever
//! verifies them (the cluster's own API, an app, STS for IRSA) sees what EKS's tokens say.
//!
//! The key is ECDSA P-256 (ES256), which kube-apiserver accepts as a service-account key and
//! IAM accepts for OIDC providers; its key id is kube-apiserver's: the unpadded base64url SHA-256
//! of the public key's DER (SubjectPublicKeyInfo).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub mod legacy;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("service-account signing key: {0}")]
    Key(#[source] rcgen::Error),
    #[error("service-account signing key is not ECDSA P-256")]
    KeyType,
    #[error("signing a service-account token: {0}")]
    Sign(#[source] jsonwebtoken::errors::Error),
    /// A token that is not one of this cluster's, or no longer valid.
    #[error("invalid service-account token: {0}")]
    Invalid(#[source] jsonwebtoken::errors::Error),
    #[error("invalid service-account token: subject {0:?} is not a service account")]
    Subject(String),
}

/// What a projected token is bound to and for.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRequest<'a> {
    pub namespace: &'a str,
    pub service_account: &'a str,
    /// The ServiceAccount object's uid, when the cluster has the object.
    pub service_account_uid: Option<&'a str>,
    pub audience: &'a str,
    pub expiration_seconds: u64,
    pub pod_name: &'a str,
    pub pod_uid: &'a str,
    pub node_name: &'a str,
}

/// The `kubernetes.io` private claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NameUid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<NameUid>,
    pub serviceaccount: NameUid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NameUid {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub aud: Vec<String>,
    pub exp: u64,
    pub iat: u64,
    pub nbf: u64,
    pub iss: String,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
    pub sub: String,
}

/// Who a verified token says it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceAccountUser {
    /// `system:serviceaccount:NS:NAME`
    pub username: String,
    pub namespace: String,
    pub name: String,
    pub claims: Claims,
}

/// One cluster's service-account token signer and verifier.
pub struct TokenSigner {
    issuer: String,
    key_id: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The public key as a JWK (`kty`, `crv`, `x`, `y`, `kid`, `use`, `alg`).
    jwk: Value,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("issuer", &self.issuer)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// The JWS algorithm its tokens are signed with (the discovery document's
    /// `id_token_signing_alg_values_supported`).
    pub const ALGORITHM: &'static str = "ES256";

    /// A signer from the cluster's PKCS#8 PEM private key, issuing as `issuer`.
    pub fn new(private_key_pem: &str, issuer: &str) -> Result<TokenSigner, TokenError> {
        let pair = rcgen::KeyPair::from_pem(private_key_pem).map_err(TokenError::Key)?;
        if !pair.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) {
            return Err(TokenError::KeyType);
        }
        // The uncompressed point: 0x04 ‖ X ‖ Y.
        let point = pair.public_key_raw();
        if point.len() != 65 || point[0] != 4 {
            return Err(TokenError::KeyType);
        }
        let (x, y) = (
            URL_SAFE_NO_PAD.encode(&point[1..33]),
            URL_SAFE_NO_PAD.encode(&point[33..]),
        );
        let key_id = URL_SAFE_NO_PAD.encode(Sha256::digest(
            rcgen::PublicKeyData::subject_public_key_info(&pair),
        ));
        let decoding = DecodingKey::from_ec_components(&x, &y).map_err(TokenError::Invalid)?;
        let encoding = EncodingKey::from_ec_der(&pair.serialize_der());
        let jwk = json!({
            "use": "sig", "kty": "EC", "kid": key_id, "crv": "P-256", "alg": "ES256",
            "x": x, "y": y,
        });
        Ok(TokenSigner {
            issuer: issuer.to_string(),
            key_id,
            encoding,
            decoding,
            jwk,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The JSON Web Key Set an OIDC discovery endpoint serves for this signer.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// The claims kube-apiserver puts in a pod-bound token issued at `now` (Unix seconds).
    pub fn claims(&self, request: &TokenRequest<'_>, now: u64) -> Claims {
        Claims {
            aud: vec![request.audience.to_string()],
            exp: now + request.expiration_seconds,
            iat: now,
            nbf: now,
            iss: self.issuer.clone(),
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes: KubernetesClaims {
                namespace: request.namespace.to_string(),
                node: (!request.node_name.is_empty()).then(|| NameUid {
                    name: request.node_name.to_string(),
                    uid: String::new(),
                }),
                pod: Some(NameUid {
                    name: request.pod_name.to_string(),
                    uid: request.pod_uid.to_string(),
                }),
                serviceaccount: NameUid {
                    name: request.service_account.to_string(),
                    uid: request.service_account_uid.unwrap_or("").to_string(),
                },
            },
            sub: format!(
                "system:serviceaccount:{}:{}",
                request.namespace, request.service_account
            ),
        }
    }

    /// A signed token for `request`, issued at `now` (Unix seconds).
    pub fn issue(&self, request: &TokenRequest<'_>, now: u64) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, &self.claims(request, now), &self.encoding)
            .map_err(TokenError::Sign)
    }

    /// Checks a token's signature, issuer, time window (at the machine's clock) and that one of
    /// its audiences is `audience`; the service account it names.
    pub fn verify(&self, token: &str, audience: &str) -> Result<ServiceAccountUser, TokenError> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[audience]);
        validation.validate_nbf = true;
        validation.leeway = 60;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(TokenError::Invalid)?;
        let claims = data.claims;
        let parts: Vec<&str> = claims.sub.splitn(4, ':').collect();
        let ["system", "serviceaccount", namespace, name] = parts[..] else {
            return Err(TokenError::Subject(claims.sub.clone()));
        };
        Ok(ServiceAccountUser {
            username: claims.sub.clone(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            claims,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str =
        "https://oidc.eks.us-east-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF";

    fn signer() -> TokenSigner {
        let key = rcgen::KeyPair::generate().unwrap();
        TokenSigner::new(&key.serialize_pem(), ISSUER).unwrap()
    }

    fn request(audience: &str) -> TokenRequest<'_> {
        TokenRequest {
            namespace: "jobs",
            service_account: "processor",
            service_account_uid: None,
            audience,
            expiration_seconds: 3600,
            pod_name: "data-processor",
            pod_uid: "6f0c2a9e-0000-4000-8000-000000000001",
            node_name: "fargate-ip-10-0-1-5.ec2.internal",
        }
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn issued_tokens_carry_kube_apiservers_claims_and_verify() {
        let s = signer();
        let token = s.issue(&request("sts.amazonaws.com"), now()).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(
            header.kid.as_deref(),
            Some(s.jwks()["keys"][0]["kid"].as_str().unwrap())
        );
        let user = s.verify(&token, "sts.amazonaws.com").unwrap();
        assert_eq!(user.username, "system:serviceaccount:jobs:processor");
        assert_eq!(
            (user.namespace.as_str(), user.name.as_str()),
            ("jobs", "processor")
        );
        let c = user.claims;
        assert_eq!(c.iss, ISSUER);
        assert_eq!(c.aud, vec!["sts.amazonaws.com"]);
        assert_eq!(c.exp - c.iat, 3600);
        assert_eq!(c.kubernetes.pod.unwrap().name, "data-processor");
        assert_eq!(
            c.kubernetes.node.unwrap().name,
            "fargate-ip-10-0-1-5.ec2.internal"
        );
    }

    #[test]
    fn other_audiences_other_keys_expired_and_tampered_tokens_are_refused() {
        let s = signer();
        let token = s.issue(&request("sts.amazonaws.com"), now()).unwrap();
        assert!(s.verify(&token, "https://kubernetes.default.svc").is_err());
        assert!(signer().verify(&token, "sts.amazonaws.com").is_err());
        let old = s
            .issue(&request("sts.amazonaws.com"), now() - 7200)
            .unwrap();
        assert!(s.verify(&old, "sts.amazonaws.com").is_err());
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let mut claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        claims["sub"] = json!("system:serviceaccount:kube-system:admin");
        parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
        assert!(s.verify(&parts.join("."), "sts.amazonaws.com").is_err());
    }

    #[test]
    fn the_key_id_is_kube_apiservers_and_only_p256_keys_sign() {
        let key = rcgen::KeyPair::generate().unwrap();
        let s = TokenSigner::new(&key.serialize_pem(), ISSUER).unwrap();
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(
            rcgen::PublicKeyData::subject_public_key_info(&key),
        ));
        assert_eq!(s.jwks()["keys"][0]["kid"], expected);
        assert!(matches!(
            TokenSigner::new("not a key", ISSUER),
            Err(TokenError::Key(_))
        ));
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        assert!(matches!(
            TokenSigner::new(&ed.serialize_pem(), ISSUER),
            Err(TokenError::KeyType)
        ));
    }
}
