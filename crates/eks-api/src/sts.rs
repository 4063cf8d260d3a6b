//! AWS STS on its wire protocol (the Query protocol: a form of `Action`, `Version` and
//! parameters, answered in XML), on the same endpoint as the EKS API: `aws sts
//! get-caller-identity`, boto3 and Terraform's `aws_caller_identity` with nothing but an endpoint
//! override: GetCallerIdentity, AssumeRole (the role's trust policy evaluated),
//! AssumeRoleWithWebIdentity (the token verified with its cluster's key) and GetSessionToken;
//! every other action gets STS's `InvalidAction`.
//!
//! A request is STS's when it is a Query request (`POST /` with a form body, or `GET /?Action=`)
//! whose `Version` is STS's, or whose signature's credential scope names `sts`.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use serde_json::json;

use crate::AppState;
use crate::error::ApiError;
use crate::wire::query_one;

pub mod sessions;

const VERSION: &str = "2011-06-15";
const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// The parameters of a Query request to STS, or `None` when the request is not one.
#[cfg(test)]
fn parameters(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Vec<(String, String)>> {
    query_parameters(method, uri, headers, body).filter(|params| is_sts(params, headers))
}

/// The parameters of a Query request (`POST /` with a form body, or `GET /?Action=`) to any
/// service, or `None` when the request is not one.
pub fn query_parameters(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Vec<(String, String)>> {
    if uri.path() != "/" {
        return None;
    }
    let params = match *method {
        Method::POST => {
            let form = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
            if !form {
                return None;
            }
            crate::wire::form(std::str::from_utf8(body).ok()?)
        }
        Method::GET => crate::wire::form(uri.query().unwrap_or("")),
        _ => return None,
    };
    query_one(&params, "Action")?;
    Some(params)
}

/// Whether a Query request is STS's: its `Version`, or a signature scoped to `sts`.
pub fn is_sts(params: &[(String, String)], headers: &HeaderMap) -> bool {
    let value = |k: &str| query_one(params, k);
    let signed_for_sts = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("/sts/aws4_request"))
        || value("X-Amz-Credential").is_some_and(|c| c.contains("/sts/aws4_request"));
    value("Version") == Some(VERSION) || signed_for_sts
}

/// Answers one STS action for `caller` (an IAM principal's ARN).
pub fn handle(
    state: &AppState,
    params: &[(String, String)],
    caller: &str,
    request_id: &str,
) -> Response {
    let action = query_one(params, "Action").unwrap_or_default();
    let result = match action {
        "GetCallerIdentity" => {
            let account = caller.split(':').nth(4).unwrap_or_default();
            let id = stored_user_id(state, caller).unwrap_or_else(|| user_id(caller));
            Ok(json!({"Arn": caller, "UserId": id, "Account": account}))
        }
        "AssumeRole" => sessions::assume_role(state, params, caller),
        "AssumeRoleWithWebIdentity" => sessions::assume_role_with_web_identity(state, params),
        "GetSessionToken" => sessions::get_session_token(state, params, caller),
        _ => Err(StsError::new(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            format!("Could not find operation {action} for version {VERSION}"),
        )),
    };
    match result {
        Ok(result) => crate::iam::xml::ok(NAMESPACE, action, Some(&result), request_id),
        Err(e) => error(e.status, e.code, &e.message, request_id),
    }
}

/// Whether an STS action is one callers make without signing (web identity federation).
pub fn unsigned_action(params: &[(String, String)]) -> bool {
    matches!(
        query_one(params, "Action"),
        Some("AssumeRoleWithWebIdentity" | "AssumeRoleWithSAML")
    )
}

/// An STS error: code, HTTP status and message.
#[derive(Debug, Clone, PartialEq)]
pub struct StsError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl StsError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        StsError {
            status,
            code,
            message: message.into(),
        }
    }
}

/// An error of the EKS front end (authentication, say) in STS's XML.
pub fn from_api_error(e: &ApiError, request_id: &str) -> Response {
    error(e.status, e.error_type, &e.message, request_id)
}

/// The unique id of a caller IAM has a record of: an assumed role's (`AROA…:SESSION`), or a
/// user's (`AIDA…`).
fn stored_user_id(state: &AppState, caller: &str) -> Option<String> {
    let resource = caller.splitn(6, ':').nth(5)?;
    if caller.split(':').nth(4) != Some(state.config.account_id.as_str()) {
        return None;
    }
    if let Some(rest) = resource.strip_prefix("assumed-role/") {
        let (role, session) = rest.split_once('/')?;
        let found = localfargate_store::transaction(state.store.as_ref(), |tx| {
            crate::iam::load_role(tx, role)
        })
        .ok()??;
        return Some(format!("{}:{session}", found.0.id));
    }
    let name = resource.strip_prefix("user/")?.rsplit('/').next()?;
    let o = state
        .store
        .get(crate::iam::USER_KIND, &name.to_ascii_lowercase())
        .ok()??;
    o.value["id"].as_str().map(str::to_string)
}

/// The unique id STS reports: an IAM user's id (`AIDA…`), or for an assumed role the role's id
/// (`AROA…`) and the session name. Stable for an ARN: derived from it.
pub(crate) fn user_id(arn: &str) -> String {
    use sha2::{Digest, Sha256};
    let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
    let id = |prefix: &str, of: &str| {
        let digest = Sha256::digest(of.as_bytes());
        let tail: String = digest
            .iter()
            .take(17)
            .map(|b| char::from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[usize::from(b % 32)]))
            .collect();
        format!("{prefix}{tail}")
    };
    match resource.strip_prefix("assumed-role/") {
        Some(rest) => {
            let (role, session) = rest.split_once('/').unwrap_or((rest, ""));
            format!("{}:{session}", id("AROA", role))
        }
        None if resource == "root" => arn.split(':').nth(4).unwrap_or_default().to_string(),
        None => id("AIDA", resource),
    }
}

fn error(status: StatusCode, code: &str, message: &str, request_id: &str) -> Response {
    let kind = if status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    xml(
        status,
        format!(
            "<ErrorResponse xmlns=\"{NAMESPACE}\">\n  <Error>\n    <Type>{kind}</Type>\n    \
             <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  \
             <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n",
            escape(code),
            escape(message)
        ),
    )
}

fn xml(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("text/xml"));
    response
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "content-type",
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        h
    }

    #[test]
    fn query_requests_are_told_apart_from_eks_calls() {
        let root: Uri = "/".parse().unwrap();
        let body = b"Action=GetCallerIdentity&Version=2011-06-15";
        assert!(parameters(&Method::POST, &root, &form(), body).is_some());
        // IAM's version is not STS's.
        let iam = b"Action=ListRoles&Version=2010-05-08";
        assert!(parameters(&Method::POST, &root, &form(), iam).is_none());
        // A JSON body to / is not a Query request.
        assert!(parameters(&Method::POST, &root, &HeaderMap::new(), body).is_none());
        let clusters: Uri = "/clusters".parse().unwrap();
        assert!(parameters(&Method::POST, &clusters, &form(), body).is_none());
        let presigned: Uri = "/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Credential=AK%2F20261205%2Fus-east-1%2Fsts%2Faws4_request"
            .parse()
            .unwrap();
        assert!(parameters(&Method::GET, &presigned, &HeaderMap::new(), b"").is_some());
    }

    #[test]
    fn user_ids_are_stable_and_shaped_as_sts_gives_them() {
        let user = user_id("arn:aws:iam::123456789012:user/alice");
        assert!(user.starts_with("AIDA") && user.len() == 21, "{user}");
        assert_eq!(user, user_id("arn:aws:iam::123456789012:user/alice"));
        let role = user_id("arn:aws:sts::123456789012:assumed-role/dev/bob");
        assert!(role.starts_with("AROA") && role.ends_with(":bob"), "{role}");
        assert_eq!(user_id("arn:aws:iam::123456789012:root"), "123456789012");
    }

    #[test]
    fn form_values_decode_plus_as_space() {
        assert_eq!(
            crate::wire::form("a=x+y%2Bz&b"),
            vec![("a".into(), "x y+z".into()), ("b".into(), String::new())]
        );
    }
}
