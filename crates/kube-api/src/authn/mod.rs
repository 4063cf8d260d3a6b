//! Authentication: who a request's bearer token is. The static token of `localfargate
//! kubeconfig` is the cluster's administrator; `aws eks get-token` tokens are the IAM principal
//! that presigned them, mapped to a Kubernetes user by `iam` (access entries, `aws-auth`);
//! service-account tokens (bound or legacy) are their account. `TokenReview` answers the same.

mod iam;

pub use iam::IamIdentities;

use std::sync::Arc;

use base64::Engine;
use k8s_openapi::api::authentication::v1::{TokenReviewSpec, TokenReviewStatus};
use localfargate_core::rbac::{self, UserInfo};
use localfargate_core::service_account_token::TokenSigner;
use localfargate_core::sigv4::Credentials;
use localfargate_core::sigv4::verify_presigned_sts;
use localfargate_registry::KubeError;
use serde_json::Value;

/// What one cluster's API knows about itself.
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub name: String,
    /// `1.31`
    pub version: String,
    /// The static bearer token `localfargate kubeconfig` hands out.
    pub token: String,
    /// With `--auth strict`, the access keys `aws eks get-token` tokens must be signed with;
    /// otherwise any well-formed token is accepted, as the EKS API accepts any keys.
    pub strict: Option<Arc<Vec<Credentials>>>,
    /// Verifies service-account tokens (those the cluster's pods get, for in-cluster clients).
    pub service_accounts: Option<Arc<TokenSigner>>,
    /// Who `aws eks get-token` callers are here (access entries, `aws-auth`).
    pub iam: Arc<IamIdentities>,
}

/// The audience kube-apiserver's own service-account tokens are for (`--api-audiences`).
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc";

/// The cluster's administrator: the static token of `localfargate kubeconfig`.
fn cluster_admin() -> UserInfo {
    UserInfo::new(
        "kubernetes-admin",
        &[rbac::SYSTEM_MASTERS, rbac::SYSTEM_AUTHENTICATED],
    )
}

/// Who a bearer token is, when it is one this cluster accepts: its static token, a
/// service-account token of its own, or the presigned STS GetCallerIdentity URL that
/// `aws eks get-token` wraps as `k8s-aws-v1.<base64url>`.
pub(crate) fn authenticated(info: &ClusterInfo, header: Option<&str>) -> Option<UserInfo> {
    let token = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)?;
    if localfargate_core::sigv4::constant_time_eq(token.as_bytes(), info.token.as_bytes()) {
        return Some(cluster_admin());
    }
    let Some(encoded) = token.strip_prefix("k8s-aws-v1.") else {
        return service_account(info, token);
    };
    let (principal, access_key_id) = aws_token(info, encoded)?;
    info.iam.user(principal.as_deref(), &access_key_id)
}

/// `TokenReview` (`authentication.k8s.io/v1`): who a token is, as this cluster's API would
/// authenticate it (webhook token authenticators and in-cluster components ask). The token's
/// audiences are the API's; a review asking for others is not authenticated.
pub fn token_review(info: &ClusterInfo, review: Value) -> Result<Value, KubeError> {
    let mut out = crate::authz::review_envelope(review, "authentication.k8s.io/v1", "TokenReview")?;
    let spec: TokenReviewSpec = crate::authz::review_spec(&out)?;
    let token = spec.token.unwrap_or_default();
    let asked = spec.audiences.unwrap_or_default();
    let audiences_ok = asked.is_empty() || asked.iter().any(|a| a == API_AUDIENCE);
    let user = if token.is_empty() || !audiences_ok {
        None
    } else {
        authenticated(info, Some(&format!("Bearer {token}")))
    };
    let unknown = |error: &str| TokenReviewStatus {
        user: Some(Default::default()),
        error: Some(error.to_string()),
        ..Default::default()
    };
    let status = match user {
        Some(u) => TokenReviewStatus {
            authenticated: Some(true),
            user: Some(crate::authz::user_info(&u, false)),
            audiences: Some(vec![API_AUDIENCE.to_string()]),
            error: None,
        },
        None if !audiences_ok => unknown("token audiences do not match the API's"),
        None => unknown("invalid bearer token"),
    };
    *out.field_mut("status") = localfargate_registry::typed::to_json(&status)?;
    Ok(out.into_value())
}

/// The principal (None: the account's default identity) and access key that signed a token.
fn aws_token(info: &ClusterInfo, encoded: &str) -> Option<(Option<String>, String)> {
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .ok()?;
    let url = String::from_utf8_lossy(&url);
    match &info.strict {
        Some(credentials) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            // The `--access-key` pairs, else the keys IAM and STS issued (a user's access key,
            // a session, whose token the URL must carry), as the AWS endpoint verifies them.
            let access_key = presigned_access_key(&url);
            let stored = if credentials.iter().any(|c| c.access_key_id == access_key) {
                None
            } else {
                stored_key(info, &access_key, &url, now)
            };
            let checked = match &stored {
                Some(key) => verify_presigned_sts(
                    &url,
                    std::slice::from_ref(&key.credentials),
                    &info.name,
                    now,
                ),
                None => verify_presigned_sts(&url, credentials, &info.name, now),
            };
            match checked {
                Ok(creds) => Some((creds.principal_arn.clone(), creds.access_key_id.clone())),
                Err(why) => {
                    tracing::info!(cluster = %info.name, reason = %why, "token refused");
                    None
                }
            }
        }
        // Any well-formed presigned GetCallerIdentity request, as `--auth any` accepts any keys:
        // its caller is the account's default identity.
        None => (url.contains("Action=GetCallerIdentity") && url.contains("X-Amz-Signature="))
            .then(|| (None, presigned_access_key(&url))),
    }
}

/// The stored credentials (an IAM user's key, an STS session) that presigned `url`, when usable:
/// a session's must come with its `X-Amz-Security-Token` and be unexpired.
fn stored_key(
    info: &ClusterInfo,
    access_key: &str,
    url: &str,
    now: i64,
) -> Option<localfargate_core::stored_credentials::StoredKey> {
    let store = &info.iam.objects().store;
    let get = |kind: &str, key: &str| store.get(kind, key).ok().flatten().map(|o| o.value.clone());
    let key = localfargate_core::stored_credentials::lookup(&get, access_key)?;
    let token = presigned_param(url, "X-Amz-Security-Token");
    match key.refusal(token.as_deref(), now) {
        None => Some(key),
        Some(why) => {
            tracing::info!(cluster = %info.name, ?why, "token refused: its session key");
            None
        }
    }
}

/// A query parameter of a presigned URL, percent-decoded.
fn presigned_param(url: &str, name: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    query.split('&').find_map(|p| {
        p.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
            .map(|v| {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned()
            })
    })
}

/// The access key ID in a presigned URL's `X-Amz-Credential` (empty when there is none).
fn presigned_access_key(url: &str) -> String {
    url.split(['?', '&'])
        .find_map(|p| p.strip_prefix("X-Amz-Credential="))
        .map(|c| {
            percent_encoding::percent_decode_str(c)
                .decode_utf8_lossy()
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default()
}

/// A service-account token of this cluster's, for its API.
fn service_account(info: &ClusterInfo, token: &str) -> Option<UserInfo> {
    let signer = info.service_accounts.as_ref()?;
    match signer.verify(token, API_AUDIENCE) {
        Ok(user) => {
            tracing::debug!(cluster = %info.name, user = %user.username, "service-account token");
            let mut info = UserInfo::service_account(&user.namespace, &user.name);
            info.uid = user.claims.kubernetes.serviceaccount.uid.clone();
            Some(info)
        }
        // A legacy token of a `kubernetes.io/service-account-token` Secret.
        Err(e) if localfargate_core::service_account_token::legacy::is_legacy(token) => {
            match localfargate_registry::legacy_tokens::authenticate(
                info.iam.objects(),
                signer,
                token,
            ) {
                Ok(claims) => {
                    let mut user =
                        UserInfo::service_account(&claims.namespace, &claims.service_account_name);
                    user.uid = claims.service_account_uid;
                    Some(user)
                }
                Err(why) => {
                    tracing::info!(cluster = %info.name, reason = %why, bound = %e, "legacy token refused");
                    None
                }
            }
        }
        Err(e) => {
            tracing::info!(cluster = %info.name, reason = %e, "token refused");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use localfargate_registry::Objects;
    use serde_json::json;

    fn info() -> ClusterInfo {
        // Cluster "c" in CONFIG_MAP mode, created by the account's default identity: the one
        // every `--auth any` caller is.
        use localfargate_store::StoreExt;
        let store: Arc<dyn localfargate_store::Store> =
            Arc::new(localfargate_store::SqliteStore::in_memory().unwrap());
        store
            .create(
                localfargate_core::eks::CLUSTER_KIND,
                "c",
                &json!({
                    "resource": {"arn": "arn:aws:eks:us-east-1:000000000000:cluster/c",
                                 "accessConfig": {"authenticationMode": "CONFIG_MAP"}},
                    "private": {"creatorArn": "arn:aws:iam::000000000000:user/localfargate"},
                }),
            )
            .unwrap();
        let settings = Arc::new(localfargate_registry::Settings::new("us-east-1"));
        ClusterInfo {
            name: "c".into(),
            version: "1.31".into(),
            token: "secret".into(),
            strict: None,
            service_accounts: Some(signer()),
            iam: Arc::new(IamIdentities::new(Objects::new(store, "c", settings))),
        }
    }

    fn signer() -> Arc<TokenSigner> {
        // One key per test process, so tokens of `info()` verify against another `info()`.
        static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let key = KEY.get_or_init(|| rcgen::KeyPair::generate().unwrap().serialize_pem());
        Arc::new(TokenSigner::new(key, "https://oidc.eks.us-east-1.amazonaws.com/id/X").unwrap())
    }

    #[test]
    fn token_reviews_say_who_a_token_is() {
        let reviewed = token_review(&info(), json!({"spec": {"token": "secret"}})).unwrap();
        assert_eq!(reviewed["kind"], "TokenReview");
        assert_eq!(reviewed["status"]["authenticated"], true);
        assert_eq!(reviewed["status"]["user"]["username"], "kubernetes-admin");
        let bad = token_review(&info(), json!({"spec": {"token": "wrong"}})).unwrap();
        assert_eq!(bad["status"]["authenticated"], Value::Null);
        assert_eq!(bad["status"]["error"], "invalid bearer token");
        let elsewhere = token_review(
            &info(),
            json!({"spec": {"token": "secret", "audiences": ["sts.amazonaws.com"]}}),
        )
        .unwrap();
        assert!(elsewhere["status"]["error"].is_string());
    }

    #[test]
    fn service_account_tokens_for_the_api_are_accepted() {
        let request = |audience| localfargate_core::service_account_token::TokenRequest {
            namespace: "default",
            service_account: "default",
            service_account_uid: None,
            audience,
            expiration_seconds: 3600,
            pod_name: "p",
            pod_uid: "u",
            node_name: "n",
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let for_api = signer().issue(&request(API_AUDIENCE), now).unwrap();
        let user = authenticated(&info(), Some(&format!("Bearer {for_api}"))).unwrap();
        assert_eq!(user.name, "system:serviceaccount:default:default");
        assert!(
            user.groups
                .iter()
                .any(|g| g == "system:serviceaccounts:default")
        );
        let for_sts = signer().issue(&request("sts.amazonaws.com"), now).unwrap();
        assert!(authenticated(&info(), Some(&format!("Bearer {for_sts}"))).is_none());
        let mut without = info();
        without.service_accounts = None;
        assert!(authenticated(&without, Some(&format!("Bearer {for_api}"))).is_none());
    }

    #[test]
    fn tokens() {
        let admin = authenticated(&info(), Some("Bearer secret")).unwrap();
        assert!(admin.groups.iter().any(|g| g == rbac::SYSTEM_MASTERS));
        assert!(authenticated(&info(), Some("Bearer wrong")).is_none());
        assert!(authenticated(&info(), None).is_none());
        let url = "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Signature=abc";
        let token = format!(
            "k8s-aws-v1.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url)
        );
        let creator = authenticated(&info(), Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(creator.name, "kubernetes-admin");
        assert!(creator.groups.iter().any(|g| g == rbac::SYSTEM_MASTERS));
        assert!(authenticated(&info(), Some("Bearer k8s-aws-v1.bm90LWEtdXJs")).is_none());
    }
}
