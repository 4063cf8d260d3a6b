//! Which representation the client's `Accept` asks for, and re-encoding a JSON response as
//! protobuf when it asks for that first.

use axum::body::{Body, HttpBody};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{MEDIA_TYPE, ProtobufError, encode};

/// What an `Accept` header allows, in the client's order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The first acceptable media type is protobuf.
    pub prefers_protobuf: bool,
    /// JSON (or `*/*`) is acceptable at all.
    pub accepts_json: bool,
}

/// Reads `Accept` the way kube-apiserver's negotiation does for plain objects: alternatives
/// with `as=` (Tables, PartialObjectMetadata) are conversions served elsewhere, and `q=0`
/// excludes one. No `Accept` means JSON.
pub fn negotiate(headers: &HeaderMap) -> Negotiated {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut first = None;
    let mut accepts_json = accept.trim().is_empty();
    for alternative in accept.split(',') {
        let mut parts = alternative.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let params: Vec<&str> = parts.collect();
        let excluded = params
            .iter()
            .any(|p| p.starts_with("as=") || matches!(*p, "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
        if excluded {
            continue;
        }
        let json = matches!(media.as_str(), "application/json" | "*/*" | "application/*");
        let protobuf = media == MEDIA_TYPE;
        accepts_json |= json;
        if first.is_none() && (json || protobuf) {
            first = Some(protobuf);
        }
    }
    Negotiated {
        prefers_protobuf: first == Some(true),
        accepts_json,
    }
}

/// kube-apiserver's 406 for a kind it can only send as JSON or YAML.
pub fn not_acceptable() -> Response {
    let status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "only the following media types are accepted: application/json, application/yaml",
        "reason": "NotAcceptable",
        "code": 406,
    });
    (
        StatusCode::NOT_ACCEPTABLE,
        [(header::CONTENT_TYPE, "application/json")],
        status.to_string(),
    )
        .into_response()
}

/// `response` as the client asked for it: a complete `application/json` body is re-encoded as
/// protobuf when the client prefers protobuf and the object's kind has a protobuf form; a kind
/// without one (custom resources) stays JSON, or is a 406 when the client accepts no JSON.
/// Streams (watches, followed logs) and other content types (Tables) pass through.
pub async fn respond(headers: &HeaderMap, response: Response) -> Response {
    let negotiated = negotiate(headers);
    if !negotiated.prefers_protobuf {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/json");
    if !is_json || response.body().size_hint().exact().is_none() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "reading a response to re-encode as protobuf");
            return Response::from_parts(parts, Body::empty());
        }
    };
    let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    match encode(&value) {
        Ok(protobuf) => {
            parts
                .headers
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(protobuf))
        }
        Err(ProtobufError::NoProtobufForm { .. }) if !negotiated.accepts_json => not_acceptable(),
        Err(e) => {
            if !matches!(e, ProtobufError::NoProtobufForm { .. }) {
                // A stored object the v1.33 schema cannot carry: JSON is still right.
                tracing::warn!(error = %e, "answering JSON: the object has no protobuf encoding");
            }
            Response::from_parts(parts, Body::from(bytes))
        }
    }
}
