//! The HTTP surface of one cluster's API: authentication, version, health, discovery and OpenAPI
//! here; resources in `rest`, watches in `watch`, logs in `pods`, exec and attach in
//! `remotecommand`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use localfargate_core::rbac::UserInfo;
use localfargate_registry::KubeError;
use localfargate_registry::custom::Catalog;
use serde_json::{Value, json};

use crate::authn::ClusterInfo;
use crate::authn::authenticated;
use crate::authz::{self};
use crate::context::Api;
use crate::request::{Query, parse_target};
use crate::response::{error_response, json_response, json_typed, status};
use crate::rest;
use crate::{discovery, metrics, remotecommand};

async fn authenticate(
    State(info): State<Arc<ClusterInfo>>,
    request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let Some(user) = authenticated(&info, header) else {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    };
    let mut request = request;
    request.extensions_mut().insert(user);
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

fn not_found() -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn accept(headers: &HeaderMap) -> &str {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Discovery and OpenAPI, or None when the path is a resource path.
fn discovery(api: &Api, catalog: &Catalog, path: &str, headers: &HeaderMap) -> Option<Response> {
    let aggregated = discovery::aggregated_version(accept(headers));
    let ok = |v: Value| json_response(StatusCode::OK, &v);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    Some(match segments.as_slice() {
        ["api"] | ["apis"] => {
            let core = segments[0] == "api";
            match aggregated {
                Some(version) => json_typed(
                    StatusCode::OK,
                    &discovery::aggregated(catalog, core, version),
                    &discovery::aggregated_content_type(version),
                ),
                None if core => ok(discovery::api_versions(&api.server_address)),
                None => ok(discovery::api_group_list(catalog)),
            }
        }
        ["api", version] => {
            discovery::resource_list(catalog, "", version).map_or_else(not_found, ok)
        }
        ["apis", group] => {
            if discovery::serves_group(catalog, group) {
                ok(discovery::api_group(catalog, group))
            } else {
                not_found()
            }
        }
        ["apis", group, version] => {
            discovery::resource_list(catalog, group, version).map_or_else(not_found, ok)
        }
        _ => return None,
    })
}

async fn serve(State(api): State<Arc<Api>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let Some(authenticated) = request.extensions().get::<UserInfo>().cloned() else {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    };
    let user = match authz::impersonate(&api.authorizer, &authenticated, request.headers()) {
        Ok(u) => u,
        Err(e) => return error_response(&e),
    };
    let catalog = match api.objects.catalog() {
        Ok(c) => c,
        Err(e) => return error_response(&e),
    };
    let is_resource = parse_target(&path, &catalog).is_ok();
    if !is_resource && metrics::resource_path(&path).is_none() {
        let a = authz::path_attributes(&user, request.method(), &path);
        if let Err(e) = api.authorizer.check(&a) {
            return error_response(&e);
        }
    }
    if let Some(r) =
        crate::openapi::http::serve(&path, request.uri().query(), request.headers(), || {
            api.openapi.catalog(&catalog)
        })
    {
        return r;
    }
    if let Some(r) = discovery(&api, &catalog, &path, request.headers()) {
        return r;
    }
    if let Some(rest) = metrics::resource_path(&path) {
        let query = Query::parse(request.uri().query());
        if let Some(a) = metrics::attributes(&user, request.method(), rest, &query)
            && let Err(e) = api.authorizer.check(&a)
        {
            return error_response(&e);
        }
        return metrics::serve(&api, request.method(), rest, &query, request.headers());
    }
    let target = match parse_target(&path, &catalog) {
        Ok(t) => t,
        Err(e) => return error_response(&e),
    };
    let query = Query::parse(request.uri().query());
    let attributes = authz::resource_attributes(&user, request.method(), &target, &query);
    if let Err(e) = api.authorizer.check(&attributes) {
        return error_response(&e);
    }
    let streaming = target.subresource.as_deref();
    if matches!(streaming, Some("exec" | "attach"))
        && request.headers().contains_key(header::UPGRADE)
    {
        let attach = streaming == Some("attach");
        // CONNECT admission: webhooks that take `pods/exec` or `pods/attach` first.
        if let Err(e) = connect_admission(&api, user, &target, &query, attach) {
            return error_response(&e);
        }
        return remotecommand::serve(api, target, query, request, attach).await;
    }
    if streaming == Some("portforward") && request.headers().contains_key(header::UPGRADE) {
        // CONNECT admission for `pods/portforward`, as for exec and attach.
        if let Err(e) = portforward_admission(&api, user.clone(), &target, &query) {
            return error_response(&e);
        }
        return crate::portforward::serve(api, &user, target, query, request).await;
    }
    let method = request.method().clone();
    let headers = request.headers().clone();
    let body = match read_body(request.into_body()).await {
        Ok(b) => b,
        Err(e) => return error_response(&e),
    };
    rest::handle(api, user, method, target, query, headers, body).await
}

/// The admission webhooks of an exec or attach, with the options as upstream decodes them
/// (`PodExecOptions`, `PodAttachOptions`).
fn connect_admission(
    api: &Api,
    user: localfargate_core::rbac::UserInfo,
    target: &crate::request::Target,
    query: &crate::request::Query,
    attach: bool,
) -> Result<(), localfargate_registry::objects::KubeError> {
    let kind = if attach {
        "PodAttachOptions"
    } else {
        "PodExecOptions"
    };
    let mut options = serde_json::json!({"kind": kind, "apiVersion": "v1"});
    for flag in ["stdin", "stdout", "stderr", "tty"] {
        if query.flag(flag) {
            options[flag] = serde_json::json!(true);
        }
    }
    if let Some(c) = query.get("container") {
        options["container"] = serde_json::json!(c);
    }
    if !attach {
        options["command"] = serde_json::json!(query.all("command"));
    }
    api.objects.admit_connect(
        user,
        target.rt,
        target.namespace.as_deref().unwrap_or(""),
        target.name.as_deref().unwrap_or(""),
        target.subresource.as_deref().unwrap_or(""),
        kind,
        &options,
    )
}

/// The admission webhooks of a port-forward, with `PodPortForwardOptions` as upstream decodes
/// them from the query (`ports`; SPDY clients name their ports in stream headers instead, so
/// theirs come with none).
fn portforward_admission(
    api: &Api,
    user: localfargate_core::rbac::UserInfo,
    target: &crate::request::Target,
    query: &crate::request::Query,
) -> Result<(), localfargate_registry::objects::KubeError> {
    let mut options = serde_json::json!({"kind": "PodPortForwardOptions", "apiVersion": "v1"});
    let ports: Vec<u64> = query
        .all("ports")
        .iter()
        .flat_map(|p| p.split(','))
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    if !ports.is_empty() {
        options["ports"] = serde_json::json!(ports);
    }
    api.objects.admit_connect(
        user,
        target.rt,
        target.namespace.as_deref().unwrap_or(""),
        target.name.as_deref().unwrap_or(""),
        "portforward",
        "PodPortForwardOptions",
        &options,
    )
}

/// kube-apiserver's `--max-request-body-bytes` default (3 MiB): a larger write is refused with
/// 413 before it is decoded.
pub const MAX_REQUEST_BODY_BYTES: usize = 3 * 1024 * 1024;
/// How much of a refused body is read (and dropped) before the 413: a client still sending
/// would otherwise see its connection reset instead of the answer. Past this, it is closed.
const DRAINED_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The request body, or 413 once it passes the limit (read on to `DRAINED_BODY_BYTES`, so the
/// client gets the answer).
async fn read_body(body: axum::body::Body) -> Result<axum::body::Bytes, KubeError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| KubeError::BadRequest(format!("reading the request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len();
        if seen <= MAX_REQUEST_BODY_BYTES {
            kept.extend_from_slice(&data);
        } else if seen > DRAINED_BODY_BYTES {
            break;
        }
    }
    if seen > MAX_REQUEST_BODY_BYTES {
        return Err(KubeError::RequestEntityTooLarge(format!(
            "limit is {MAX_REQUEST_BODY_BYTES}"
        )));
    }
    Ok(axum::body::Bytes::from(kept))
}

/// One cluster's API.
pub fn router(api: Api) -> Router {
    let info = Arc::new(api.info.clone());
    let api = Arc::new(api);
    Router::new()
        .route("/version", get(version).with_state(info.clone()))
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .fallback(serve)
        .with_state(api)
        .layer(middleware::from_fn_with_state(info.clone(), authenticate))
        // The OIDC issuer's documents are public: merged after the authentication layer.
        .merge(crate::oidc::router(info))
}
