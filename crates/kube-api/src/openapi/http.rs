//! Serving the catalog as kube-apiserver does: content negotiation on `Accept` (JSON, or the
//! gnostic protobuf for v2), entity tags with `If-None-Match`, and for v3 documents the `hash`
//! query that makes them immutable (a stale hash is redirected to the current one).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::{Catalog, server_relative_url};

/// What kube-apiserver answers a v2 protobuf request with.
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
/// What client-go asks for (the deprecated spelling, still accepted).
pub const V2_PROTOBUF_DEPRECATED: &str =
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Protobuf,
}

/// The first representation the `Accept` header's clauses, in order, allow.
fn negotiate(accept: &str, protobuf: bool) -> Option<Format> {
    let accept = if accept.trim().is_empty() {
        "*/*"
    } else {
        accept
    };
    let offered: &[(&str, &str, Format)] = &[
        ("application", "json", Format::Json),
        (
            "application",
            "com.github.proto-openapi.spec.v2@v1.0+protobuf",
            Format::Protobuf,
        ),
        (
            "application",
            "com.github.proto-openapi.spec.v2.v1.0+protobuf",
            Format::Protobuf,
        ),
    ];
    for clause in accept.split(',') {
        let media = clause.split(';').next().unwrap_or("").trim();
        let (kind, sub) = media.split_once('/').unwrap_or((media, ""));
        for (t, s, format) in offered {
            if *format == Format::Protobuf && !protobuf {
                continue;
            }
            if (kind == *t || kind == "*") && (sub == *s || sub == "*") {
                return Some(*format);
            }
        }
    }
    None
}

fn header_value(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A document with its entity tag, or 304 when the client has it already.
fn document(headers: &HeaderMap, body: Bytes, etag: &str, content_type: &str) -> Response {
    let quoted = format!("\"{etag}\"");
    let mut response = if header_value(headers, header::IF_NONE_MATCH)
        .split(',')
        .any(|t| t.trim() == quoted || t.trim() == "*")
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, Body::from(body)).into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&quoted) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

fn not_acceptable() -> Response {
    StatusCode::NOT_ACCEPTABLE.into_response()
}

/// `/openapi/v2`.
pub fn v2(catalog: &Catalog, headers: &HeaderMap) -> Response {
    let docs = catalog.documents();
    match negotiate(header_value(headers, header::ACCEPT), true) {
        Some(Format::Json) => document(
            headers,
            docs.v2_json.body.clone(),
            &docs.v2_json.etag,
            "application/json",
        ),
        Some(Format::Protobuf) => document(
            headers,
            docs.v2_protobuf.clone(),
            &docs.v2_json.etag,
            V2_PROTOBUF,
        ),
        None => not_acceptable(),
    }
}

/// `/openapi/v3`.
pub fn v3_root(catalog: &Catalog, headers: &HeaderMap) -> Response {
    let root = &catalog.documents().v3_root;
    document(headers, root.body.clone(), &root.etag, "application/json")
}

/// `/openapi/v3/<path>` (`api/v1`, `apis/apps/v1`), or None for a group-version not served.
pub fn v3(
    catalog: &Catalog,
    path: &str,
    hash: Option<&str>,
    headers: &HeaderMap,
) -> Option<Response> {
    let doc = catalog.documents().v3.get(path)?;
    if negotiate(header_value(headers, header::ACCEPT), false).is_none() {
        return Some(not_acceptable());
    }
    let Some(hash) = hash.filter(|h| !h.is_empty()) else {
        return Some(document(
            headers,
            doc.body.clone(),
            &doc.etag,
            "application/json",
        ));
    };
    if hash != doc.etag {
        let location = server_relative_url(path, &doc.etag);
        let mut response = StatusCode::MOVED_PERMANENTLY.into_response();
        if let Ok(v) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, v);
        }
        return Some(response);
    }
    let mut response = document(headers, doc.body.clone(), &doc.etag, "application/json");
    let h = response.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, immutable"),
    );
    let a_year = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24 * 365))
        .unwrap_or_else(|_| jiff::Timestamp::now());
    let expires = a_year.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string();
    if let Ok(v) = HeaderValue::from_str(&expires) {
        h.insert(header::EXPIRES, v);
    }
    Some(response)
}

fn query_value<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// The OpenAPI endpoints of `catalog`, or None when `path` is not one.
pub fn serve_catalog(
    catalog: &Catalog,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Option<Response> {
    let trimmed = path.trim_end_matches('/');
    if trimmed == "/openapi/v2" {
        return Some(v2(catalog, headers));
    }
    if trimmed == "/openapi/v3" {
        return Some(v3_root(catalog, headers));
    }
    let gv = trimmed.strip_prefix("/openapi/v3/")?;
    Some(
        v3(catalog, gv, query_value(query, "hash"), headers).unwrap_or_else(|| {
            crate::response::status(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            )
        }),
    )
}

/// The OpenAPI endpoints of a cluster's catalog, or None when `path` is not one of them.
/// `catalog` builds the catalog (the built-ins' [`super::served`], or one with the cluster's
/// custom resources) only when the path is one.
pub fn serve<C: std::ops::Deref<Target = super::Catalog>>(
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    catalog: impl FnOnce() -> Result<C, String>,
) -> Option<Response> {
    if !path.starts_with("/openapi/") {
        return None;
    }
    match catalog() {
        Ok(catalog) => serve_catalog(&catalog, path, query, headers),
        Err(e) => Some(crate::response::status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            &e.to_string(),
        )),
    }
}
