//! The cluster's OIDC issuer, as EKS hosts it at `https://oidc.eks.REGION.amazonaws.com/id/ID`:
//! the discovery document at `ID/.well-known/openid-configuration` and the JSON Web Key Set at
//! `ID/keys`. Here the issuer is `https://HOST:PORT/id/ID` on the cluster's own Kubernetes API
//! listener, so it is served over TLS with the cluster's CA (DescribeCluster's
//! `certificateAuthority.data`), and anonymously: the documents are public on EKS too.
//!
//! A cluster recorded before its issuer was local (`https://oidc.eks…/id/ID`) is served at
//! the same path with its recorded issuer, which its tokens carry. See docs/irsa.md.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use localfargate_core::service_account_token::TokenSigner;
use serde_json::{Value, json};

use crate::authn::ClusterInfo;

/// The issuer's routes, answered without authentication.
pub fn router(info: Arc<ClusterInfo>) -> Router {
    Router::new()
        .route(
            "/id/{id}/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/id/{id}/keys", get(keys))
        .with_state(info)
}

/// The cluster's signer when its issuer is `…/id/{id}` (a local issuer or a recorded EKS one).
fn signer<'a>(signer: Option<&'a TokenSigner>, id: &str) -> Option<&'a TokenSigner> {
    let signer = signer?;
    let (_, own) = signer.issuer().rsplit_once("/id/")?;
    (own == id).then_some(signer)
}

/// The discovery document EKS serves for `issuer`, with this signer's algorithm.
pub fn discovery_document(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/keys"),
        "authorization_endpoint": "urn:kubernetes:programmatic_authorization",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "claims_supported": ["sub", "iss"],
        "id_token_signing_alg_values_supported": [TokenSigner::ALGORITHM],
    })
}

fn answer(body: Option<Value>) -> Response {
    match body {
        Some(body) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                // EKS asks clients to cache the keys (its endpoint is throttled).
                (header::CACHE_CONTROL, "max-age=3600"),
            ],
            body.to_string(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}

async fn openid_configuration(
    State(info): State<Arc<ClusterInfo>>,
    Path(id): Path<String>,
) -> Response {
    answer(signer(info.service_accounts.as_deref(), &id).map(|s| discovery_document(s.issuer())))
}

async fn keys(State(info): State<Arc<ClusterInfo>>, Path(id): Path<String>) -> Response {
    answer(signer(info.service_accounts.as_deref(), &id).map(TokenSigner::jwks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_points_at_its_keys() {
        let doc = discovery_document("https://127.0.0.1:6443/id/0123456789ABCDEF0123456789ABCDEF");
        assert_eq!(
            doc["jwks_uri"],
            "https://127.0.0.1:6443/id/0123456789ABCDEF0123456789ABCDEF/keys"
        );
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            json!(["ES256"])
        );
    }

    #[test]
    fn a_cluster_answers_for_its_own_id_whatever_host_its_issuer_names() {
        let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        for issuer in [
            "https://127.0.0.1:6443/id/0123456789ABCDEF0123456789ABCDEF",
            // A cluster recorded before issuers were local.
            "https://oidc.eks.us-east-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF",
        ] {
            let s = TokenSigner::new(&key, issuer).unwrap();
            let found = signer(Some(&s), "0123456789ABCDEF0123456789ABCDEF").unwrap();
            assert_eq!(discovery_document(found.issuer())["issuer"], issuer);
            assert!(signer(Some(&s), "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF").is_none());
        }
        assert!(signer(None, "0123456789ABCDEF0123456789ABCDEF").is_none());
    }
}
