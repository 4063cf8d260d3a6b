//! The HTTP surface of one cluster's API.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde_json::{Value, json};

/// What one cluster's API knows about itself.
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub name: String,
    /// `1.31`
    pub version: String,
    /// The static bearer token `localfargate kubeconfig` hands out.
    pub token: String,
}

/// A `metav1.Status` failure, as the API server sends it.
pub fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

/// Whether a bearer token is one this cluster accepts: its static token, or the presigned STS
/// GetCallerIdentity URL that `aws eks get-token` wraps as `k8s-aws-v1.<base64url>`.
fn authenticated(info: &ClusterInfo, header: Option<&str>) -> bool {
    let Some(token) = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return false;
    };
    if token == info.token {
        return true;
    }
    let Some(encoded) = token.strip_prefix("k8s-aws-v1.") else {
        return false;
    };
    let Ok(url) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('='))
    else {
        return false;
    };
    let url = String::from_utf8_lossy(&url);
    // Signature checking against STS credentials comes with strict auth; here any well-formed
    // presigned GetCallerIdentity request is accepted, as `--auth any` accepts any AWS keys.
    url.contains("Action=GetCallerIdentity") && url.contains("X-Amz-Signature=")
}

async fn authenticate(
    State(info): State<Arc<ClusterInfo>>,
    request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if !authenticated(&info, header) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    next.run(request).await
}

async fn version(State(info): State<Arc<ClusterInfo>>) -> axum::Json<Value> {
    let (major, minor) = info.version.split_once('.').unwrap_or(("1", "31"));
    axum::Json(json!({
        "major": major,
        "minor": minor,
        "gitVersion": format!("v{major}.{minor}.0-eks-localfargate"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.22.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }))
}

async fn not_found() -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
    )
}

/// One cluster's API.
pub fn router(info: ClusterInfo) -> Router {
    let info = Arc::new(info);
    Router::new()
        .route("/version", get(version))
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(info.clone(), authenticate))
        .with_state(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ClusterInfo {
        ClusterInfo {
            name: "c".into(),
            version: "1.31".into(),
            token: "secret".into(),
        }
    }

    #[test]
    fn tokens() {
        assert!(authenticated(&info(), Some("Bearer secret")));
        assert!(!authenticated(&info(), Some("Bearer wrong")));
        assert!(!authenticated(&info(), None));
        let url = "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Signature=abc";
        let token = format!(
            "k8s-aws-v1.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url)
        );
        assert!(authenticated(&info(), Some(&format!("Bearer {token}"))));
        assert!(!authenticated(
            &info(),
            Some("Bearer k8s-aws-v1.bm90LWEtdXJs")
        ));
    }
}
