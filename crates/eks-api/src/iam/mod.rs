//! AWS IAM on its wire protocol (the Query protocol, answered in XML in botocore's shapes), on
//! the same endpoint as the EKS API: roles, managed and inline policies, users and access keys,
//! OpenID Connect providers. IAM is global: requests are signed for `iam` in `us-east-1`, and
//! are told apart from STS's by the form's `Version` (`2010-05-08`) or the credential scope.
//! Everything is kept in the store, like the EKS resources; AWS's managed policies are built in
//! and read-only.

mod managed;
mod oidc;
mod params;
mod policies;
mod roles;
mod users;
pub(crate) mod xml;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use serde_json::Value;

use crate::AppState;
use crate::error::ApiError;
pub use oidc::provider_for_issuer;
use params::Params;
pub use roles::{Role, load_role};

pub const VERSION: &str = "2010-05-08";
const NAMESPACE: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

pub const ROLE_KIND: &str = "iam.amazonaws.com/Role";
pub const POLICY_KIND: &str = "iam.amazonaws.com/Policy";
pub use localfargate_core::stored_credentials::{ACCESS_KEY_KIND, USER_KIND};
pub const OIDC_KIND: &str = "iam.amazonaws.com/OpenIDConnectProvider";
/// The prefixes of the kinds IAM and STS keep in the store: few objects, read often (kept
/// decoded in the store's cache, like the EKS records).
pub const KIND_PREFIXES: [&str; 2] = ["iam.amazonaws.com/", "sts.amazonaws.com/"];

/// An IAM error: its wire code, HTTP status and message.
#[derive(Debug, Clone, PartialEq)]
pub struct IamError {
    pub code: &'static str,
    pub status: StatusCode,
    pub message: String,
}

impl IamError {
    fn new(code: &'static str, status: StatusCode, message: impl Into<String>) -> Self {
        IamError {
            code,
            status,
            message: message.into(),
        }
    }
    pub fn no_such_entity(m: impl Into<String>) -> Self {
        Self::new("NoSuchEntity", StatusCode::NOT_FOUND, m)
    }
    pub fn already_exists(m: impl Into<String>) -> Self {
        Self::new("EntityAlreadyExists", StatusCode::CONFLICT, m)
    }
    pub fn malformed(m: impl Into<String>) -> Self {
        Self::new("MalformedPolicyDocument", StatusCode::BAD_REQUEST, m)
    }
    pub fn delete_conflict(m: impl Into<String>) -> Self {
        Self::new("DeleteConflict", StatusCode::CONFLICT, m)
    }
    pub fn limit_exceeded(m: impl Into<String>) -> Self {
        Self::new("LimitExceeded", StatusCode::CONFLICT, m)
    }
    pub fn invalid_input(m: impl Into<String>) -> Self {
        Self::new("InvalidInput", StatusCode::BAD_REQUEST, m)
    }
    pub fn validation(m: impl Into<String>) -> Self {
        Self::new("ValidationError", StatusCode::BAD_REQUEST, m)
    }
    pub fn unmodifiable(m: impl Into<String>) -> Self {
        Self::new("UnmodifiableEntity", StatusCode::BAD_REQUEST, m)
    }
    pub fn not_attachable(m: impl Into<String>) -> Self {
        Self::new("PolicyNotAttachable", StatusCode::BAD_REQUEST, m)
    }
    pub fn server(m: impl Into<String>) -> Self {
        Self::new("ServiceFailure", StatusCode::INTERNAL_SERVER_ERROR, m)
    }
}

impl From<localfargate_store::StoreError> for IamError {
    fn from(e: localfargate_store::StoreError) -> Self {
        tracing::error!(error = %e, "store");
        IamError::server(format!("internal store error: {e}"))
    }
}

impl From<ApiError> for IamError {
    fn from(e: ApiError) -> Self {
        IamError::new(e.error_type, e.status, e.message)
    }
}

/// Whether a Query request is IAM's: its `Version`, or a signature scoped to `iam`.
pub fn is_iam(params: &[(String, String)], headers: &HeaderMap) -> bool {
    let value = |k: &str| crate::wire::query_one(params, k);
    value("Version") == Some(VERSION)
        || headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("/iam/aws4_request"))
}

type Outcome = Result<Option<Value>, IamError>;

/// Answers one IAM action.
pub fn handle(
    state: &AppState,
    params: &[(String, String)],
    caller: &str,
    request_id: &str,
) -> Response {
    let p = Params(params, caller);
    let action = p.opt("Action").unwrap_or_default();
    let result = dispatch(state, action, &p);
    match result {
        Ok(result) => xml::ok(NAMESPACE, action, result.as_ref(), request_id),
        Err(e) => {
            tracing::debug!(action, code = e.code, message = %e.message, "iam client error");
            xml::error(NAMESPACE, e.status, e.code, &e.message, request_id)
        }
    }
}

/// An IAM error response for an error of the front end (authentication, say).
pub fn from_api_error(e: &ApiError, request_id: &str) -> Response {
    xml::error(NAMESPACE, e.status, e.error_type, &e.message, request_id)
}

fn dispatch(state: &AppState, action: &str, p: &Params<'_>) -> Outcome {
    match action {
        "CreateRole" => roles::create(state, p),
        "GetRole" => roles::get(state, p),
        "ListRoles" => roles::list(state, p),
        "DeleteRole" => roles::delete(state, p),
        "UpdateAssumeRolePolicy" => roles::update_assume_role_policy(state, p),
        "UpdateRole" => roles::update(state, p),
        "UpdateRoleDescription" => roles::update_description(state, p),
        "TagRole" => roles::tag(state, p),
        "UntagRole" => roles::untag(state, p),
        "ListRoleTags" => roles::list_tags(state, p),
        "AttachRolePolicy" => roles::attach(state, p),
        "DetachRolePolicy" => roles::detach(state, p),
        "ListAttachedRolePolicies" => roles::list_attached(state, p),
        "PutRolePolicy" => roles::put_inline(state, p),
        "GetRolePolicy" => roles::get_inline(state, p),
        "ListRolePolicies" => roles::list_inline(state, p),
        "DeleteRolePolicy" => roles::delete_inline(state, p),
        "ListInstanceProfilesForRole" => roles::list_instance_profiles(state, p),
        "CreatePolicy" => policies::create(state, p),
        "GetPolicy" => policies::get(state, p),
        "DeletePolicy" => policies::delete(state, p),
        "ListPolicies" => policies::list(state, p),
        "GetPolicyVersion" => policies::get_version(state, p),
        "ListPolicyVersions" => policies::list_versions(state, p),
        "CreatePolicyVersion" => policies::create_version(state, p),
        "DeletePolicyVersion" => policies::delete_version(state, p),
        "SetDefaultPolicyVersion" => policies::set_default_version(state, p),
        "TagPolicy" => policies::tag(state, p),
        "UntagPolicy" => policies::untag(state, p),
        "ListPolicyTags" => policies::list_tags(state, p),
        "ListEntitiesForPolicy" => policies::list_entities(state, p),
        "CreateUser" => users::create(state, p),
        "GetUser" => users::get(state, p),
        "ListUsers" => users::list(state, p),
        "DeleteUser" => users::delete(state, p),
        "TagUser" => users::tag(state, p),
        "UntagUser" => users::untag(state, p),
        "ListUserTags" => users::list_tags(state, p),
        "CreateAccessKey" => users::create_access_key(state, p),
        "ListAccessKeys" => users::list_access_keys(state, p),
        "DeleteAccessKey" => users::delete_access_key(state, p),
        "UpdateAccessKey" => users::update_access_key(state, p),
        "ListAttachedUserPolicies" => users::list_attached(state, p),
        "ListUserPolicies" => users::list_inline(state, p),
        "ListGroupsForUser" => users::list_groups(state, p),
        "CreateOpenIDConnectProvider" => oidc::create(state, p),
        "GetOpenIDConnectProvider" => oidc::get(state, p),
        "ListOpenIDConnectProviders" => oidc::list(state, p),
        "DeleteOpenIDConnectProvider" => oidc::delete(state, p),
        "UpdateOpenIDConnectProviderThumbprint" => oidc::update_thumbprints(state, p),
        "AddClientIDToOpenIDConnectProvider" => oidc::add_client_id(state, p),
        "RemoveClientIDFromOpenIDConnectProvider" => oidc::remove_client_id(state, p),
        "TagOpenIDConnectProvider" => oidc::tag(state, p),
        "UntagOpenIDConnectProvider" => oidc::untag(state, p),
        "ListOpenIDConnectProviderTags" => oidc::list_tags(state, p),
        _ => Err(IamError::new(
            "InvalidAction",
            StatusCode::BAD_REQUEST,
            format!("Could not find operation {action} for version {VERSION}"),
        )),
    }
}

/// Now, as IAM writes dates (ISO 8601, UTC, seconds).
pub(crate) fn now_iso() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// An IAM unique id: a four-letter prefix (`AROA` role, `ANPA` policy, `AIDA` user, `AKIA`
/// access key) and random upper-case base32.
pub fn unique_id(prefix: &str, len: usize) -> String {
    let bytes = uuid::Uuid::new_v4();
    let more = uuid::Uuid::new_v4();
    let tail: String = bytes
        .as_bytes()
        .iter()
        .chain(more.as_bytes())
        .take(len)
        .map(|b| char::from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[usize::from(b % 32)]))
        .collect();
    format!("{prefix}{tail}")
}

/// A secret access key: 40 characters of base64.
pub fn secret() -> String {
    let mut bytes = Vec::new();
    for _ in 0..2 {
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .chars()
        .take(40)
        .collect()
}

/// `arn:PARTITION:iam::ACCOUNT:RESOURCE`
pub(crate) fn arn(state: &AppState, resource: &str) -> String {
    format!(
        "arn:{}:iam::{}:{resource}",
        state.config.partition(),
        state.config.account_id
    )
}

/// Run `f` in one store transaction; an IAM error rolls it back.
pub(crate) fn in_tx<R>(
    state: &AppState,
    f: impl FnMut(&mut dyn localfargate_store::Tx) -> Result<R, IamError>,
) -> Result<R, IamError> {
    localfargate_store::transaction(state.store.as_ref(), f)
}

pub(crate) fn load<T: serde::de::DeserializeOwned>(
    value: &Value,
    what: &str,
) -> Result<T, IamError> {
    serde::Deserialize::deserialize(value)
        .map_err(|e| IamError::server(format!("stored {what}: {e}")))
}

pub(crate) fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// A page of items by `Marker` and `MaxItems` (1–1000, default 100), with `IsTruncated`.
pub(crate) fn page<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    p: &Params<'_>,
) -> Result<(Vec<T>, Option<String>), IamError> {
    let max = match p.opt("MaxItems") {
        None => 100,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(IamError::validation(format!(
                    "1 validation error detected: Value '{v}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000"
                )));
            }
        },
    };
    let after = match p.opt("Marker") {
        None => None,
        Some(m) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(m)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| IamError::invalid_input("Invalid Marker."))?,
        ),
    };
    let rest: Vec<T> = items
        .into_iter()
        .filter(|i| after.as_ref().is_none_or(|a| &key(i) > a))
        .collect();
    let more = rest.len() > max;
    let out: Vec<T> = rest.into_iter().take(max).collect();
    let marker = match (more, out.last()) {
        (true, Some(last)) => {
            Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key(last)))
        }
        _ => None,
    };
    Ok((out, marker))
}

/// `{"IsTruncated": …, "Marker": …}` members of a paged result, merged into `result`.
pub(crate) fn paged(mut result: serde_json::Map<String, Value>, marker: Option<String>) -> Value {
    result.insert("IsTruncated".into(), Value::Bool(marker.is_some()));
    if let Some(m) = marker {
        result.insert("Marker".into(), Value::String(m));
    }
    Value::Object(result)
}

/// Tags as IAM returns them: a list of `{Key, Value}`.
pub(crate) fn wire_tags(tags: &[(String, String)]) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| serde_json::json!({"Key": k, "Value": v}))
            .collect(),
    )
}

/// Merges `new` tags into `tags` (a key given again replaces its value), within IAM's 50.
pub(crate) fn merge_tags(
    tags: &mut Vec<(String, String)>,
    new: Vec<(String, String)>,
) -> Result<(), IamError> {
    for (k, v) in new {
        match tags.iter_mut().find(|(key, _)| *key == k) {
            Some(existing) => existing.1 = v,
            None => tags.push((k, v)),
        }
    }
    if tags.len() > 50 {
        return Err(IamError::limit_exceeded(
            "The number of tags has reached the maximum limit.",
        ));
    }
    Ok(())
}
