//! AWS Signature Version 4: the signing math the EKS API checks requests with, and the
//! verification of the presigned STS `GetCallerIdentity` URLs that `aws eks get-token` hands
//! kubectl as a bearer token. Pure functions over strings and bytes.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The IAM principal the key belongs to (`arn:aws:iam::ACCOUNT:user/NAME`, a role, or an
    /// assumed-role session): who its caller is to EKS. None: the account's default identity.
    pub principal_arn: Option<String>,
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// RFC 3986 encoding as SigV4 wants it: everything but unreserved characters (and `/` in paths).
pub fn uri_encode(text: &str, keep_slash: bool) -> String {
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
pub fn botocore_query(raw_query: &str) -> String {
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
pub fn go_sdk_query(raw_query: &str) -> String {
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

pub fn signature_with(secret: &str, r: &SignedRequest<'_>, canonical_query: &str) -> String {
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

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `20261123T190000Z` → seconds since the epoch.
pub fn parse_amz_date(value: &str) -> Option<i64> {
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

/// How far a token's signing time may be from now: the 15 minutes EKS's authenticator allows.
pub const TOKEN_LIFETIME_SECONDS: i64 = 15 * 60;
/// How far in the future a token's signing time may be: clock skew, not a token made to last.
pub const MAX_FUTURE_SKEW_SECONDS: i64 = 5 * 60;

/// Whether a URL's `host[:port]` is this machine: a loopback address, `localhost` or a
/// `*.localhost` name.
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name == "::1"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Check a presigned STS `GetCallerIdentity` URL, as `aws eks get-token` makes one, for
/// `cluster` (the `x-k8s-aws-id` header it must have signed) against `credentials`, at `now`
/// (epoch seconds): the credentials that signed it, or why it is refused, for the server's log.
pub fn verify_presigned_sts<'a>(
    url: &str,
    credentials: &'a [Credentials],
    cluster: &str,
    now: i64,
) -> Result<&'a Credentials, String> {
    // `aws eks get-token` presigns for STS's public endpoint, or, with `AWS_ENDPOINT_URL`
    // exported (as `localfargate up` advises), for localfargate's own endpoint on this machine,
    // over plain http: the signature covers the host either way.
    let (https, rest) = match url.strip_prefix("https://") {
        Some(rest) => (true, rest),
        None => (
            false,
            url.strip_prefix("http://")
                .ok_or("the URL is neither https nor http")?,
        ),
    };
    let (host, path_query) = rest.split_once('/').unwrap_or((rest, ""));
    let (path, raw_query) = path_query.split_once('?').unwrap_or((path_query, ""));
    let regional = host
        .strip_prefix("sts.")
        .and_then(|h| h.strip_suffix(".amazonaws.com"))
        .is_some_and(|region| {
            !region.is_empty()
                && region
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    let aws = https && (host == "sts.amazonaws.com" || regional);
    if !(aws || is_loopback_host(host)) {
        return Err(format!("{host} is not an STS endpoint"));
    }
    let decode = |v: &str| {
        percent_encoding::percent_decode_str(v)
            .decode_utf8_lossy()
            .into_owned()
    };
    let param = |name: &str| {
        raw_query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| decode(v))
    };
    if param("Action").as_deref() != Some("GetCallerIdentity") {
        return Err("not a GetCallerIdentity request".into());
    }
    if param("X-Amz-Algorithm").as_deref() != Some("AWS4-HMAC-SHA256") {
        return Err("not signed with AWS4-HMAC-SHA256".into());
    }
    let credential = param("X-Amz-Credential").ok_or("no X-Amz-Credential")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(format!("malformed credential scope {credential:?}"));
    };
    if *service != "sts" {
        return Err(format!("signed for {service}, not sts"));
    }
    let creds = credentials
        .iter()
        .find(|c| c.access_key_id == *access_key)
        .ok_or_else(|| format!("unknown access key {access_key}"))?;
    let amz_date = param("X-Amz-Date").ok_or("no X-Amz-Date")?;
    let signed_at = parse_amz_date(&amz_date).ok_or("malformed X-Amz-Date")?;
    if !amz_date.starts_with(date) {
        return Err("X-Amz-Date does not match the credential scope".into());
    }
    // Valid for 15 minutes after signing (the authenticator's window, longer than the URL's own
    // X-Amz-Expires, which STS would enforce); a little clock skew into the future is allowed.
    if now - signed_at > TOKEN_LIFETIME_SECONDS || signed_at - now > MAX_FUTURE_SKEW_SECONDS {
        return Err(format!(
            "the token was signed at {amz_date}, outside its 15 minutes"
        ));
    }
    let signed_names = param("X-Amz-SignedHeaders").ok_or("no X-Amz-SignedHeaders")?;
    let mut headers = Vec::new();
    for name in signed_names.split(';') {
        let value = match name {
            "host" => host.to_string(),
            "x-k8s-aws-id" => cluster.to_string(),
            other => return Err(format!("unexpected signed header {other}")),
        };
        headers.push((name.to_string(), value));
    }
    if !headers.iter().any(|(n, _)| n == "x-k8s-aws-id") {
        return Err("the token does not name a cluster (x-k8s-aws-id is not signed)".into());
    }
    let given = param("X-Amz-Signature").ok_or("no X-Amz-Signature")?;
    let unsigned: String = raw_query
        .split('&')
        .filter(|p| !p.starts_with("X-Amz-Signature="))
        .collect::<Vec<_>>()
        .join("&");
    let empty_hash = hex::encode(Sha256::digest(b""));
    let genuine = [empty_hash.as_str(), "UNSIGNED-PAYLOAD"]
        .iter()
        .any(|payload_hash| {
            let request = SignedRequest {
                method: "GET",
                raw_path: if path.is_empty() { "/" } else { path },
                raw_query: &unsigned,
                headers: &headers,
                payload_hash,
                amz_date: &amz_date,
                scope: (date, region, service),
            };
            [botocore_query(&unsigned), go_sdk_query(&unsigned)]
                .iter()
                .any(|q| {
                    constant_time_eq(
                        signature_with(&creds.secret_access_key, &request, q).as_bytes(),
                        given.as_bytes(),
                    )
                })
        });
    if genuine {
        Ok(creds)
    } else {
        Err(
            "the signature does not match (wrong secret key, or a token for another cluster)"
                .into(),
        )
    }
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
    fn loopback_hosts() {
        for h in [
            "127.0.0.1:4566",
            "localhost:4566",
            "LOCALHOST",
            "lf.localhost:1",
            "[::1]:4566",
            "127.1.2.3",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "10.0.0.1:4566",
            "example.com",
            "localhost.example.com",
            "[::2]:1",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(parse_amz_date("2015-08-30"), None);
    }

    /// A token `aws eks get-token --cluster-name demo` (aws CLI 1.x, botocore) made with
    /// these keys at 2026-11-23T21:41:41Z.
    const AWS_CLI_TOKEN_URL: &str = "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDLOCALFARGATE%2F20261123%2Fus-east-1%2Fsts%2Faws4_request&X-Amz-Date=20261123T214141Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature=1a738ab1fe031b4098fe8d7f175a2f59d35a780b67d41412dee31b2940e9ba07";

    fn keys(secret: &str) -> Vec<Credentials> {
        vec![Credentials {
            access_key_id: "AKIDLOCALFARGATE".into(),
            secret_access_key: secret.into(),
            principal_arn: None,
        }]
    }

    #[test]
    fn presigned_sts_tokens_from_the_aws_cli_verify() {
        let signed_at = parse_amz_date("20261123T214141Z").unwrap();
        let local = keys("secretlocalfargate");
        let ok = verify_presigned_sts(AWS_CLI_TOKEN_URL, &local, "demo", signed_at + 60);
        assert_eq!(ok.map(|c| c.access_key_id.as_str()), Ok("AKIDLOCALFARGATE"));
        // Another cluster's name, another secret, an unknown key, a stale or tampered token.
        let other = verify_presigned_sts(AWS_CLI_TOKEN_URL, &local, "prod", signed_at);
        assert!(other.unwrap_err().contains("signature does not match"));
        assert!(
            verify_presigned_sts(AWS_CLI_TOKEN_URL, &keys("wrong"), "demo", signed_at).is_err()
        );
        let unknown = vec![Credentials {
            access_key_id: "AKIDOTHER".into(),
            secret_access_key: "x".into(),
            principal_arn: None,
        }];
        assert!(
            verify_presigned_sts(AWS_CLI_TOKEN_URL, &unknown, "demo", signed_at)
                .unwrap_err()
                .contains("unknown access key")
        );
        let late = verify_presigned_sts(AWS_CLI_TOKEN_URL, &local, "demo", signed_at + 16 * 60);
        assert!(late.unwrap_err().contains("15 minutes"));
        let early = verify_presigned_sts(AWS_CLI_TOKEN_URL, &local, "demo", signed_at - 10 * 60);
        assert!(early.unwrap_err().contains("15 minutes"));
        let tampered = AWS_CLI_TOKEN_URL.replace("Version=2011-06-15", "Version=2011-06-16");
        assert!(verify_presigned_sts(&tampered, &local, "demo", signed_at).is_err());
        let plain_http = AWS_CLI_TOKEN_URL.replace("https://", "http://");
        assert!(
            verify_presigned_sts(&plain_http, &local, "demo", signed_at)
                .unwrap_err()
                .contains("not an STS endpoint")
        );
        let elsewhere =
            AWS_CLI_TOKEN_URL.replace("sts.us-east-1.amazonaws.com", "evil.example.com");
        assert!(
            verify_presigned_sts(&elsewhere, &local, "demo", signed_at)
                .unwrap_err()
                .contains("not an STS endpoint")
        );
    }
}
