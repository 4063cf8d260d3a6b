//! Request authentication. By default any credentials are accepted, as local emulators do;
//! `AuthMode::Strict` verifies AWS Signature Version 4 against configured access keys and answers
//! the rest with AWS's 403 errors.

use axum::http::{HeaderMap, Method, Uri};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AuthMode {
    #[default]
    Any,
    Strict(Vec<Credentials>),
}

/// How far a request's `X-Amz-Date` may be from the server's clock, as AWS allows.
const MAX_SKEW_SECONDS: i64 = 15 * 60;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// RFC 3986 encoding as SigV4 wants it: everything but unreserved characters (and `/` in paths).
fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

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

/// What a SigV4 signature covers.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    /// The signed headers, lower-case names in signing order, values trimmed.
    pub headers: &'a [(String, String)],
    pub payload_hash: &'a str,
    pub amz_date: &'a str,
    /// Credential scope: date, region, service.
    pub scope: (&'a str, &'a str, &'a str),
}

/// The signature for a request, computed as botocore computes it for rest-json services: the raw
/// path encoded once more, the raw query pairs sorted.
pub fn signature(secret: &str, r: &SignedRequest<'_>) -> String {
    signature_with(secret, r, &botocore_query(r.raw_query))
}

/// The query as botocore canonicalizes it: the raw pairs, sorted as sent.
fn botocore_query(raw_query: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort();
    let pairs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join("&")
}

/// The query as the Go SDKs canonicalize it: decoded pairs sorted, then encoded again.
fn go_sdk_query(raw_query: &str) -> String {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    pairs.sort();
    let pairs: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", uri_encode(k, false), uri_encode(v, false)))
        .collect();
    pairs.join("&")
}

fn signature_with(secret: &str, r: &SignedRequest<'_>, canonical_query: &str) -> String {
    let SignedRequest {
        method,
        raw_path,
        headers,
        payload_hash,
        amz_date,
        scope,
        ..
    } = *r;
    let canonical_uri = uri_encode(if raw_path.is_empty() { "/" } else { raw_path }, true);
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let canonical_request = format!(
        "{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{}\n{payload_hash}",
        signed.join(";")
    );
    let (date, region, service) = scope;
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    hex::encode(hmac(&k_signing, string_to_sign.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `20261123T190000Z` → seconds since the epoch.
fn parse_amz_date(value: &str) -> Option<i64> {
    if value.len() != 16 || !value.ends_with('Z') || value.as_bytes()[8] != b'T' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| value.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, s) = (
        n(0..4)?,
        n(4..6)?,
        n(6..8)?,
        n(9..11)?,
        n(11..13)?,
        n(13..15)?,
    );
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

pub fn check(
    mode: &AuthMode,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), ApiError> {
    let AuthMode::Strict(credentials) = mode else {
        return Ok(());
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
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
    let Some(creds) = credentials
        .iter()
        .find(|c| c.access_key_id == auth.access_key)
    else {
        return Err(ApiError::access_denied(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
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
    if auth.service != "eks"
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_documentation_example_signature() {
        // The GET example of AWS's "Signature Version 4 signing process" documentation (IAM
        // ListUsers), with its published signature.
        let headers = vec![
            (
                "content-type".to_string(),
                "application/x-www-form-urlencoded; charset=utf-8".to_string(),
            ),
            ("host".to_string(), "iam.amazonaws.com".to_string()),
            ("x-amz-date".to_string(), "20150830T123600Z".to_string()),
        ];
        let sig = signature(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            &SignedRequest {
                method: "GET",
                raw_path: "/",
                raw_query: "Action=ListUsers&Version=2010-05-08",
                headers: &headers,
                payload_hash: &hex::encode(Sha256::digest(b"")),
                amz_date: "20150830T123600Z",
                scope: ("20150830", "us-east-1", "iam"),
            },
        );
        assert_eq!(
            sig,
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn query_orders() {
        let raw = "tagKeys=team%3Aowner&tagKeys=team-name";
        assert_eq!(
            botocore_query(raw),
            "tagKeys=team%3Aowner&tagKeys=team-name"
        );
        assert_eq!(go_sdk_query(raw), "tagKeys=team-name&tagKeys=team%3Aowner");
        assert!(
            constant_time_eq(b"abc", b"abc")
                && !constant_time_eq(b"abc", b"abd")
                && !constant_time_eq(b"ab", b"abc")
        );
    }

    #[test]
    fn dates() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(parse_amz_date("2015-08-30"), None);
    }

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
}
