//! Temporary credentials: AssumeRole (the role's trust policy evaluated for the caller),
//! AssumeRoleWithWebIdentity (a service-account token of one of this machine's clusters, through
//! the account's IAM OIDC provider for its issuer) and GetSessionToken. Issued sessions are kept
//! in the store, so that under `--auth strict` requests signed with them are verified and their
//! caller is the assumed-role ARN.

use axum::http::StatusCode;
use base64::Engine;
use localfargate_core::eks::CLUSTER_KIND;
use localfargate_core::iam_policy::{self, Kind, Principal, Request};
use localfargate_core::service_account_token::TokenSigner;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::StsError;
use crate::AppState;
use crate::iam::{self, Role};
use crate::wire::query_one;

pub use localfargate_core::stored_credentials::SESSION_KIND;

/// One issued set of temporary credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// Whom requests signed with it are: an assumed-role ARN, or (GetSessionToken) the caller.
    pub principal_arn: String,
    /// Seconds since the epoch.
    pub expiration: i64,
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn iso(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn validation(message: impl Into<String>) -> StsError {
    StsError::new(StatusCode::BAD_REQUEST, "ValidationError", message)
}

fn access_denied(message: impl Into<String>) -> StsError {
    StsError::new(StatusCode::FORBIDDEN, "AccessDenied", message)
}

fn invalid_token(message: impl Into<String>) -> StsError {
    StsError::new(StatusCode::BAD_REQUEST, "InvalidIdentityToken", message)
}

fn required<'a>(
    params: &'a [(String, String)],
    name: &str,
    member: &str,
) -> Result<&'a str, StsError> {
    query_one(params, name).ok_or_else(|| {
        validation(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

fn session_name(params: &[(String, String)]) -> Result<&str, StsError> {
    let name = required(params, "RoleSessionName", "roleSessionName")?;
    let len = name.chars().count();
    let constraint = if len < 2 {
        Some("Member must have length greater than or equal to 2".to_string())
    } else if len > 64 {
        Some("Member must have length less than or equal to 64".to_string())
    } else if !name
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || "+=,.@-".contains(c))
    {
        Some("Member must satisfy regular expression pattern: [\\w+=,.@-]*".to_string())
    } else {
        None
    };
    match constraint {
        Some(c) => Err(validation(format!(
            "1 validation error detected: Value '{name}' at 'roleSessionName' failed to satisfy constraint: {c}"
        ))),
        None => Ok(name),
    }
}

fn duration(params: &[(String, String)], max: i64, default: i64) -> Result<i64, StsError> {
    let Some(v) = query_one(params, "DurationSeconds") else {
        return Ok(default.min(max));
    };
    let n: i64 = v.parse().map_err(|_| {
        validation(format!(
            "1 validation error detected: Value '{v}' at 'durationSeconds' failed to satisfy constraint: Member must be a number"
        ))
    })?;
    if n < 900 {
        return Err(validation(format!(
            "1 validation error detected: Value '{n}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900"
        )));
    }
    if n > max {
        return Err(validation(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        ));
    }
    Ok(n)
}

/// The role an ARN names in this account, when it exists with that ARN.
fn role_of(state: &AppState, role_arn: &str) -> Result<Option<Role>, StsError> {
    let parts: Vec<&str> = role_arn.splitn(6, ':').collect();
    let ["arn", _, "iam", "", account, resource] = parts[..] else {
        return Err(validation(format!("{role_arn} is invalid")));
    };
    let Some(path_name) = resource.strip_prefix("role/") else {
        return Err(validation(format!("{role_arn} is invalid")));
    };
    if account != state.config.account_id {
        return Ok(None);
    }
    let name = path_name.rsplit('/').next().unwrap_or(path_name);
    let found =
        localfargate_store::transaction(state.store.as_ref(), |tx| iam::load_role(tx, name))
            .map_err(|e| {
                StsError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalFailure",
                    e.message,
                )
            })?;
    Ok(found.map(|(r, _)| r).filter(|r| r.arn == role_arn))
}

fn trust_allows(role: &Role, request: &Request<'_>) -> bool {
    // Stored trust policies were validated when stored; one that no longer parses trusts nobody.
    iam_policy::parse(&role.assume_role_policy, Kind::Trust)
        .map(|doc| doc.allows(request))
        .unwrap_or(false)
}

fn random_b64(bytes: usize) -> String {
    let mut raw = Vec::with_capacity(bytes + 16);
    while raw.len() < bytes {
        raw.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    raw.truncate(bytes);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Issues and stores credentials for `principal_arn`, valid `seconds`.
fn issue(
    state: &AppState,
    principal_arn: &str,
    seconds: i64,
) -> Result<(Session, Value), StsError> {
    let session = Session {
        access_key_id: iam::unique_id("ASIA", 16),
        secret_access_key: iam::secret(),
        session_token: format!("IQoJb3JpZ2luX2VjE{}", random_b64(240)),
        principal_arn: principal_arn.to_string(),
        expiration: now() + seconds,
    };
    let value = serde_json::to_value(&session).unwrap_or(Value::Null);
    localfargate_store::transaction(state.store.as_ref(), |tx| {
        // Sessions that expired more than a day ago are dropped as new ones are issued.
        let cutoff = now() - 86_400;
        for o in tx.list(SESSION_KIND, "")? {
            if o.value["expiration"].as_i64().is_some_and(|e| e < cutoff) {
                tx.delete(SESSION_KIND, &o.key, Some(o.revision))?;
            }
        }
        tx.create(SESSION_KIND, &session.access_key_id, &value)
            .map(|_| ())
    })
    .map_err(|e: localfargate_store::StoreError| {
        StsError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            e.to_string(),
        )
    })?;
    let credentials = json!({
        "AccessKeyId": session.access_key_id,
        "SecretAccessKey": session.secret_access_key,
        "SessionToken": session.session_token,
        "Expiration": iso(session.expiration),
    });
    Ok((session, credentials))
}

fn assumed_role_arn(state: &AppState, role: &Role, session: &str) -> String {
    format!(
        "arn:{}:sts::{}:assumed-role/{}/{session}",
        state.config.partition(),
        state.config.account_id,
        role.name
    )
}

/// Session tags (`Tags.member.N.Key`/`.Value`) as request-context keys.
fn session_tags(params: &[(String, String)]) -> Vec<(String, String)> {
    let mut by_index: std::collections::BTreeMap<u32, (String, String)> = Default::default();
    for (k, v) in params {
        let Some(rest) = k.strip_prefix("Tags.member.") else {
            continue;
        };
        let Some((i, field)) = rest.split_once('.') else {
            continue;
        };
        let Ok(i) = i.parse::<u32>() else { continue };
        let e = by_index.entry(i).or_default();
        match field {
            "Key" => e.0 = v.clone(),
            "Value" => e.1 = v.clone(),
            _ => {}
        }
    }
    by_index.into_values().collect()
}

pub fn assume_role(
    state: &AppState,
    params: &[(String, String)],
    caller: &str,
) -> Result<Value, StsError> {
    let role_arn = required(params, "RoleArn", "roleArn")?;
    let session = session_name(params)?;
    let denied = || {
        access_denied(format!(
            "User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
        ))
    };
    let role = role_of(state, role_arn)?.ok_or_else(denied)?;
    let seconds = duration(params, role.max_session_duration, 3600)?;
    let account = caller.split(':').nth(4).unwrap_or_default();
    let mut request = Request::new(Principal::Aws(caller.to_string()), "sts:AssumeRole")
        .with("aws:PrincipalArn", caller)
        .with("aws:PrincipalAccount", account)
        .with("sts:RoleSessionName", session);
    if let Some(external) = query_one(params, "ExternalId") {
        request = request.with("sts:ExternalId", external);
    }
    if let Some(source) = query_one(params, "SourceIdentity") {
        request = request.with("sts:SourceIdentity", source);
    }
    let tags = session_tags(params);
    for (k, v) in &tags {
        request = request
            .with(&format!("aws:RequestTag/{k}"), v)
            .with("aws:TagKeys", k);
    }
    if !trust_allows(&role, &request) {
        return Err(denied());
    }
    if !tags.is_empty() {
        let mut tagging = request.clone();
        tagging.action = "sts:TagSession";
        if !trust_allows(&role, &tagging) {
            return Err(access_denied(format!(
                "User: {caller} is not authorized to perform: sts:TagSession on resource: {role_arn}"
            )));
        }
    }
    let arn = assumed_role_arn(state, &role, session);
    let (_, credentials) = issue(state, &arn, seconds)?;
    let mut result = json!({
        "Credentials": credentials,
        "AssumedRoleUser": {"AssumedRoleId": format!("{}:{session}", role.id), "Arn": arn},
    });
    if let Some(source) = query_one(params, "SourceIdentity") {
        result["SourceIdentity"] = json!(source);
    }
    Ok(result)
}

/// The claims of a JWT, unverified (to find who can verify it).
fn claims(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(Value::is_object)
}

/// The service-account token signer of the cluster whose OIDC issuer is `issuer`.
fn cluster_signer(state: &AppState, issuer: &str) -> Option<TokenSigner> {
    let (clusters, _) = state.store.list(CLUSTER_KIND, "").ok()?;
    clusters.iter().find_map(|o| {
        let record = &o.value;
        if record["resource"]["identity"]["oidc"]["issuer"].as_str() != Some(issuer) {
            return None;
        }
        let key = record["private"]["serviceAccountKeyPem"]
            .as_str()
            .or_else(|| record["private"]["caKeyPem"].as_str())?;
        TokenSigner::new(key, issuer).ok()
    })
}

pub fn assume_role_with_web_identity(
    state: &AppState,
    params: &[(String, String)],
) -> Result<Value, StsError> {
    let role_arn = required(params, "RoleArn", "roleArn")?;
    let session = session_name(params)?;
    let token = required(params, "WebIdentityToken", "webIdentityToken")?;
    if token.len() < 4 || token.len() > 20000 {
        return Err(validation(
            "1 validation error detected: Value at 'webIdentityToken' failed to satisfy constraint: Member must have length less than or equal to 20000",
        ));
    }
    let claims = claims(token).ok_or_else(|| {
        invalid_token(
            "The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)",
        )
    })?;
    let issuer = claims["iss"].as_str().unwrap_or_default().to_string();
    let provider = iam::provider_for_issuer(state, &issuer).ok_or_else(|| {
        invalid_token(format!(
            "No OpenIDConnect provider found in your account for {issuer}"
        ))
    })?;
    let audiences: Vec<String> = match &claims["aud"] {
        Value::String(a) => vec![a.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let audience = audiences
        .iter()
        .find(|a| provider.client_ids.contains(a))
        .cloned()
        .ok_or_else(|| invalid_token("Incorrect token audience"))?;
    let exp = claims["exp"].as_i64().unwrap_or(0);
    let now = now();
    if exp + 60 < now {
        // STS's own code and text for an expired web identity token (not InvalidIdentityToken).
        return Err(StsError::new(
            StatusCode::BAD_REQUEST,
            "ExpiredTokenException",
            format!(
                "Token expired: current date/time {now} must be before the expiration date/time {exp}"
            ),
        ));
    }
    let signer = cluster_signer(state, &issuer).ok_or_else(|| {
        invalid_token(
            "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements",
        )
    })?;
    if signer.verify(token, &audience).is_err() {
        return Err(invalid_token(
            "The web identity token could not be verified with its issuer's keys.",
        ));
    }
    let subject = claims["sub"].as_str().unwrap_or_default();
    let denied = || access_denied("Not authorized to perform sts:AssumeRoleWithWebIdentity");
    let role = role_of(state, role_arn)?.ok_or_else(denied)?;
    let seconds = duration(params, role.max_session_duration, 3600)?;
    let url = &provider.url;
    let mut request = Request::new(
        Principal::Federated(provider.arn.clone()),
        "sts:AssumeRoleWithWebIdentity",
    )
    .with(&format!("{url}:sub"), subject)
    .with("sts:RoleSessionName", session);
    for a in &audiences {
        request = request
            .with(&format!("{url}:aud"), a)
            .with(&format!("{url}:oaud"), a);
    }
    if !trust_allows(&role, &request) {
        return Err(denied());
    }
    let arn = assumed_role_arn(state, &role, session);
    let (_, credentials) = issue(state, &arn, seconds)?;
    Ok(json!({
        "Credentials": credentials,
        "SubjectFromWebIdentityToken": subject,
        "AssumedRoleUser": {"AssumedRoleId": format!("{}:{session}", role.id), "Arn": arn},
        "Provider": provider.arn,
        "Audience": audience,
    }))
}

pub fn get_session_token(
    state: &AppState,
    params: &[(String, String)],
    caller: &str,
) -> Result<Value, StsError> {
    if caller.contains(":assumed-role/") {
        return Err(access_denied(
            "Cannot call GetSessionToken with session credentials",
        ));
    }
    let seconds = duration(params, 129_600, 43_200)?;
    let (_, credentials) = issue(state, caller, seconds)?;
    Ok(json!({"Credentials": credentials}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_three_part_tokens_with_an_object_payload_have_claims() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"iss":"https://issuer.localhost/id/X","aud":["sts.amazonaws.com"]}"#);
        let claims = claims(&format!("e30.{payload}.sig")).unwrap();
        assert_eq!(claims["iss"], "https://issuer.localhost/id/X");
        assert!(super::claims("not-a-jwt").is_none());
        assert!(super::claims(&format!("a.{payload}.b.c")).is_none());
        let array = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"[1]");
        assert!(super::claims(&format!("a.{array}.b")).is_none());
    }

    #[test]
    fn expirations_are_iso_8601_utc() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1_440_938_160), "2015-08-30T12:36:00Z");
    }
}
