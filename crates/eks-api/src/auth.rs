//! Request authentication. By default any credentials are accepted, as local emulators do;
//! `AuthMode::Strict` verifies AWS Signature Version 4 against configured access keys and answers
//! the rest with AWS's 403 errors.

use axum::http::{HeaderMap, Method, Uri};
pub use localfargate_core::sigv4::{Credentials, signature};
use localfargate_core::sigv4::{
    SignedRequest, botocore_query, constant_time_eq, go_sdk_query, parse_amz_date, signature_with,
};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AuthMode {
    #[default]
    Any,
    Strict(Vec<Credentials>),
}

pub use localfargate_core::stored_credentials::StoredKey;
use localfargate_core::stored_credentials::StoredKeyRefusal;

/// Finds stored credentials by access key id.
pub type KeyLookup<'a> = &'a dyn Fn(&str) -> Option<StoredKey>;

/// How far a request's `X-Amz-Date` may be from the server's clock, as AWS allows.
const MAX_SKEW_SECONDS: i64 = 15 * 60;

struct Authorization<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Option<Authorization<'_>> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256")?.trim_start();
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed_headers = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let mut scope = credential?.split('/');
    let access_key = scope.next()?;
    let date = scope.next()?;
    let region = scope.next()?;
    let service = scope.next()?;
    (scope.next()? == "aws4_request").then_some(())?;
    Some(Authorization {
        access_key,
        date,
        region,
        service,
        signed_headers: signed_headers?,
        signature: signature?,
    })
}

/// Without `--auth strict` nothing is refused, but a request signed with a key IAM or STS
/// issued (a session's with its token, unexpired; an IAM user's active key) is its principal's,
/// as on AWS: an SDK that assumed a role (IRSA's web identity exchange, say) and asks
/// GetCallerIdentity is the assumed role, not the account's default identity. The signature is
/// not checked.
fn issued_key_principal<'h>(
    stored: KeyLookup<'_>,
    header: impl Fn(&str) -> Option<&'h str>,
) -> Option<String> {
    let auth = parse_authorization(header("authorization")?)?;
    let found = stored(auth.access_key)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    found
        .refusal(header("x-amz-security-token"), now)
        .is_none()
        .then_some(found.credentials.principal_arn)
        .flatten()
}

/// Check a request's signature; the principal of the access key that signed it, when one was
/// configured for it (None: the account's default identity, which every caller is with
/// `AuthMode::Any`).
pub fn check(
    mode: &AuthMode,
    stored: KeyLookup<'_>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<String>, ApiError> {
    check_for("eks", mode, stored, method, uri, headers, body)
}

/// [`check`], for a request to `service` (the signature's credential scope must name it).
pub fn check_for(
    service: &str,
    mode: &AuthMode,
    stored: KeyLookup<'_>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<String>, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let AuthMode::Strict(credentials) = mode else {
        return Ok(issued_key_principal(stored, header));
    };
    let Some(value) = header("authorization") else {
        return Err(ApiError::access_denied(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let incomplete = || {
        ApiError::access_denied(
            "IncompleteSignatureException",
            format!(
                "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters: {value}"
            ),
        )
    };
    let auth = parse_authorization(value).ok_or_else(incomplete)?;
    let unrecognized = || {
        ApiError::access_denied(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    };
    let creds = match credentials
        .iter()
        .find(|c| c.access_key_id == auth.access_key)
    {
        Some(c) => c.clone(),
        None => {
            // Keys IAM and STS issued: a session's token must come with it, unexpired.
            let found = stored(auth.access_key).ok_or_else(unrecognized)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            match found.refusal(header("x-amz-security-token"), now) {
                Some(StoredKeyRefusal::WrongToken) => return Err(unrecognized()),
                Some(StoredKeyRefusal::Expired) => {
                    return Err(ApiError::access_denied(
                        "ExpiredTokenException",
                        "The security token included in the request is expired",
                    ));
                }
                None => {}
            }
            found.credentials
        }
    };
    let amz_date = header("x-amz-date").ok_or_else(incomplete)?;
    let signed_at = parse_amz_date(amz_date).ok_or_else(incomplete)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if (now - signed_at).abs() > MAX_SKEW_SECONDS {
        return Err(ApiError::access_denied(
            "InvalidSignatureException",
            format!(
                "Signature expired: {amz_date} is more than 15 minutes from the server's time."
            ),
        ));
    }
    let mut signed_headers = Vec::new();
    for name in auth.signed_headers.split(';') {
        let joined: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let value = joined.join(",");
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        signed_headers.push((name.to_string(), value));
    }
    let payload_hash = hex::encode(Sha256::digest(body));
    if header("x-amz-content-sha256").is_some_and(|h| h != payload_hash) {
        return Err(ApiError::access_denied(
            "InvalidSignatureException",
            "The provided x-amz-content-sha256 header does not match the request body.",
        ));
    }
    if auth.service != service
        || !amz_date.starts_with(auth.date)
        || !auth.signed_headers.split(';').any(|h| h == "host")
    {
        return Err(incomplete());
    }
    let request = SignedRequest {
        method: method.as_str(),
        raw_path: uri.path(),
        raw_query: uri.query().unwrap_or(""),
        headers: &signed_headers,
        payload_hash: &payload_hash,
        amz_date,
        scope: (auth.date, auth.region, auth.service),
    };
    let raw_query = uri.query().unwrap_or("");
    // botocore and the Go SDKs order query pairs differently; either signature is genuine.
    let matches = [botocore_query(raw_query), go_sdk_query(raw_query)]
        .iter()
        .any(|q| {
            constant_time_eq(
                signature_with(&creds.secret_access_key, &request, q).as_bytes(),
                auth.signature.as_bytes(),
            )
        });
    if !matches {
        return Err(ApiError::access_denied(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret \
             Access Key and signing method. Consult the service documentation for details.",
        ));
    }
    Ok(creds.principal_arn.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_authorization_header() {
        let a = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKID/20261123/us-east-1/eks/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
        )
        .unwrap();
        assert_eq!(
            (a.access_key, a.region, a.service, a.signature),
            ("AKID", "us-east-1", "eks", "abc")
        );
        assert!(parse_authorization("Bearer x").is_none());
    }

    #[test]
    fn without_strict_auth_issued_keys_are_their_principals_and_nothing_is_refused() {
        let session = |id: &str| {
            (id == "ASIASESSION").then(|| StoredKey {
                credentials: Credentials {
                    access_key_id: id.to_string(),
                    secret_access_key: "secret".to_string(),
                    principal_arn: Some("arn:aws:sts::1:assumed-role/r/s".to_string()),
                },
                session_token: Some("token".to_string()),
                expiration: Some(i64::MAX),
            })
        };
        let signed = |key: &str, token: Option<&str>| {
            let mut headers = HeaderMap::new();
            let auth = format!(
                "AWS4-HMAC-SHA256 Credential={key}/20261123/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=bad"
            );
            headers.insert("authorization", auth.parse().unwrap());
            if let Some(t) = token {
                headers.insert("x-amz-security-token", t.parse().unwrap());
            }
            check_for(
                "sts",
                &AuthMode::Any,
                &session,
                &Method::POST,
                &Uri::from_static("/"),
                &headers,
                b"",
            )
        };
        assert_eq!(
            signed("ASIASESSION", Some("token")).unwrap().as_deref(),
            Some("arn:aws:sts::1:assumed-role/r/s")
        );
        // Not the session without its token; another key is the default identity.
        assert_eq!(signed("ASIASESSION", None).unwrap(), None);
        assert_eq!(signed("test", None).unwrap(), None);
        let unsigned = check_for(
            "sts",
            &AuthMode::Any,
            &session,
            &Method::POST,
            &Uri::from_static("/"),
            &HeaderMap::new(),
            b"",
        );
        assert_eq!(unsigned.unwrap(), None);
    }
}
