//! A cluster's OIDC issuer as a client outside it sees it: its discovery document and keys
//! fetched over https with curl, trusting only the cluster's CA, and tokens verified against
//! those keys with a JWT library of the test's own.

use std::path::Path;
use std::process::Command;

use base64::Engine;
use serde_json::Value;

/// The cluster's issuer URL, with its CA (DescribeCluster's `certificateAuthority.data`)
/// written as PEM to `dir/ca.pem`.
pub fn issuer_and_ca(cluster: &Value, dir: &Path) -> (String, std::path::PathBuf) {
    let issuer = cluster["identity"]["oidc"]["issuer"]
        .as_str()
        .unwrap_or_else(|| panic!("no issuer: {cluster:#}"))
        .to_string();
    let pem = base64::engine::general_purpose::STANDARD
        .decode(cluster["certificateAuthority"]["data"].as_str().unwrap())
        .unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    (issuer, ca)
}

/// `curl --cacert CA URL`: its HTTP status and body.
pub fn https_get(url: &str, ca: &Path) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(ca)
        .args(["-w", "\n%{http_code}", url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl {url}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

/// The issuer's discovery document and key set, checked as a relying party would.
pub fn discover(issuer: &str, ca: &Path) -> (Value, Value) {
    let (status, body) = https_get(&format!("{issuer}/.well-known/openid-configuration"), ca);
    assert_eq!(status, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["issuer"], issuer);
    let jwks_uri = doc["jwks_uri"].as_str().unwrap();
    assert_eq!(jwks_uri, format!("{issuer}/keys"));
    let (status, body) = https_get(jwks_uri, ca);
    assert_eq!(status, 200, "{body}");
    (doc, serde_json::from_str(&body).unwrap())
}

/// The claims of `token`, verified with the key of `jwks` its header names, for `issuer` and
/// `audience`.
pub fn verify(token: &str, jwks: &Value, issuer: &str, audience: &str) -> Value {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header, jwk::JwkSet};
    let set: JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    let header = decode_header(token).unwrap();
    let kid = header.kid.expect("a key id");
    let jwk = set.find(&kid).expect("the token's key in the JWKS");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    // The algorithm the discovery document names, not the token's say-so.
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    decode::<Value>(token, &key, &validation)
        .unwrap_or_else(|e| panic!("token does not verify: {e}"))
        .claims
}
