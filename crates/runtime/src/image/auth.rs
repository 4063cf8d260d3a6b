//! Registry credentials from `kubernetes.io/dockerconfigjson` (and `dockercfg`) secrets and the
//! user's `~/.docker/config.json`, matched to a registry host the way the kubelet does.

use std::path::PathBuf;

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde_json::Value;
use tracing::{debug, warn};

/// Candidate credentials for `registry`/`repository`, in the order to try them: matching entries
/// of each secret in order, then of the user's Docker config, then anonymous access (always
/// last, always present). Duplicates are dropped.
pub(crate) fn candidates(
    registry: &str,
    repository: &str,
    secrets: &[Vec<u8>],
) -> Vec<RegistryAuth> {
    let mut out = Vec::new();
    for (i, secret) in secrets.iter().enumerate() {
        match serde_json::from_slice::<Value>(secret) {
            Ok(v) => matching(&v, registry, repository, &mut out),
            Err(e) => warn!(secret = i, error = %e, "image pull secret is not valid JSON; ignored"),
        }
    }
    if let Some(path) = docker_config_path() {
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => matching(&v, registry, repository, &mut out),
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "docker config is not valid JSON; ignored")
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => debug!(path = %path.display(), error = %e, "cannot read docker config"),
        }
    }
    out.push(RegistryAuth::Anonymous);
    let mut seen: Vec<RegistryAuth> = Vec::new();
    out.retain(|a| {
        if seen.contains(a) {
            false
        } else {
            seen.push(a.clone());
            true
        }
    });
    out
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn docker_config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir).join("config.json")),
        _ => dirs::home_dir().map(|h| h.join(".docker").join("config.json")),
    }
}

/// Appends the credentials of `config` (`{"auths": {...}}`, or the older `.dockercfg` map
/// without `auths`) whose key matches the image.
fn matching(config: &Value, registry: &str, repository: &str, out: &mut Vec<RegistryAuth>) {
    let auths = match config.get("auths").and_then(Value::as_object) {
        Some(a) => a,
        None => match config.as_object() {
            Some(a) if !a.contains_key("auths") => a,
            _ => return,
        },
    };
    // More specific keys (longer paths) first, like the kubelet's keyring.
    let mut keys: Vec<(&String, &Value)> = auths
        .iter()
        .filter(|(k, _)| key_matches(k, registry, repository))
        .collect();
    keys.sort_by_key(|(k, _)| std::cmp::Reverse(key_path(k).len()));
    for (key, entry) in keys {
        match entry_auth(entry) {
            Some(a) => out.push(a),
            None => debug!(key = %key, "registry credential entry without usable auth; ignored"),
        }
    }
}

/// One `auths` entry: `auth` (base64 `user:password`), else `username`/`password`, else
/// `registrytoken` (a bearer token). `identitytoken` (an OAuth refresh token) is not supported.
fn entry_auth(entry: &Value) -> Option<RegistryAuth> {
    let s = |k: &str| {
        entry
            .get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    if let Some(auth) = s("auth") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())?;
        let (user, pass) = decoded.split_once(':')?;
        return Some(RegistryAuth::Basic(user.to_string(), pass.to_string()));
    }
    if let (Some(user), Some(pass)) = (s("username"), s("password")) {
        return Some(RegistryAuth::Basic(user.to_string(), pass.to_string()));
    }
    if let Some(token) = s("registrytoken") {
        return Some(RegistryAuth::Bearer(token.to_string()));
    }
    if s("identitytoken").is_some() {
        warn!("registry credential with an identitytoken (OAuth refresh token) is not supported");
    }
    None
}

/// Docker Hub's names all mean `docker.io`.
fn canonical_host(host: &str) -> String {
    let h = host.to_ascii_lowercase();
    match h.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => h,
    }
}

/// The path part of a key (`registry.io/team/` -> `team`), without the legacy `v1`/`v2`.
fn key_path(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let path = rest.split_once('/').map(|(_, p)| p).unwrap_or("");
    let path = path.trim_matches('/');
    match path {
        "v1" | "v2" => "",
        p => p,
    }
}

/// Whether a dockerconfigjson key applies to `registry` (host[:port]) and `repository`: the
/// scheme is ignored, the host matches exactly or by `*` globs per dot-separated label
/// (`*.example.com`), the port must be equal, and a key path must prefix the repository.
pub(crate) fn key_matches(key: &str, registry: &str, repository: &str) -> bool {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return false;
    }
    let (khost, kport) = split_port(host);
    let (rhost, rport) = split_port(registry);
    if kport != rport {
        return false;
    }
    let (khost, rhost) = (canonical_host(khost), canonical_host(rhost));
    let host_ok = if khost.contains('*') {
        let kl: Vec<&str> = khost.split('.').collect();
        let rl: Vec<&str> = rhost.split('.').collect();
        kl.len() == rl.len() && kl.iter().zip(&rl).all(|(k, r)| glob(k, r))
    } else {
        khost == rhost
    };
    if !host_ok {
        return false;
    }
    let path = key_path(key);
    path.is_empty()
        || repository == path
        || repository
            .strip_prefix(path)
            .is_some_and(|r| r.starts_with('/'))
}

fn split_port(host: &str) -> (&str, Option<&str>) {
    match host.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (host, None),
    }
}

/// `*` matches any run of characters within one label.
fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((prefix, rest)) => {
            let Some(s) = s.strip_prefix(prefix) else {
                return false;
            };
            (0..=s.len()).any(|i| s.is_char_boundary(i) && glob(rest, &s[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_matching() {
        let yes = [
            (
                "https://index.docker.io/v1/",
                "docker.io",
                "library/busybox",
            ),
            ("index.docker.io", "docker.io", "library/busybox"),
            ("docker.io", "docker.io", "user/app"),
            ("127.0.0.1:5000", "127.0.0.1:5000", "busybox"),
            ("http://127.0.0.1:5000", "127.0.0.1:5000", "busybox"),
            ("https://127.0.0.1:5000/v2/", "127.0.0.1:5000", "busybox"),
            (
                "*.dkr.ecr.us-east-1.amazonaws.com",
                "123.dkr.ecr.us-east-1.amazonaws.com",
                "x",
            ),
            ("registry.io/team", "registry.io", "team/app"),
            ("registry.io/team/", "registry.io", "team"),
            ("REGISTRY.io", "registry.io", "x"),
        ];
        for (k, r, repo) in yes {
            assert!(key_matches(k, r, repo), "{k} should match {r}/{repo}");
        }
        let no = [
            ("https://index.docker.io/v1/", "quay.io", "x"),
            ("127.0.0.1:5000", "127.0.0.1:5001", "busybox"),
            ("127.0.0.1", "127.0.0.1:5000", "busybox"),
            ("*.example.com", "a.b.example.com", "x"),
            ("registry.io/team", "registry.io", "teamx/app"),
            ("registry.io/team", "registry.io", "other/app"),
            ("", "docker.io", "x"),
        ];
        for (k, r, repo) in no {
            assert!(!key_matches(k, r, repo), "{k} should not match {r}/{repo}");
        }
    }

    #[test]
    fn secrets_in_order_then_anonymous() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let s1 = serde_json::json!({"auths": {
            "other.io": {"auth": b64("no:no")},
            "127.0.0.1:5000": {"auth": b64("user:pa:ss")},
        }})
        .to_string()
        .into_bytes();
        let s2 = serde_json::json!({"auths": {
            "http://127.0.0.1:5000": {"username": "u2", "password": "p2"},
            "127.0.0.1:5000/busybox": {"auth": b64("user:pa:ss")},
        }})
        .to_string()
        .into_bytes();
        // An old-style .dockercfg secret without "auths".
        let s3 = serde_json::json!({"127.0.0.1:5000": {"registrytoken": "tok"}})
            .to_string()
            .into_bytes();
        let got = candidates(
            "127.0.0.1:5000",
            "busybox",
            &[b"not json".to_vec(), s1, s2, s3],
        );
        // Docker config of the test machine may add entries between; check the order of ours.
        let ours: Vec<&RegistryAuth> = got
            .iter()
            .filter(|a| match a {
                RegistryAuth::Basic(u, _) => u == "user" || u == "u2",
                RegistryAuth::Bearer(t) => t == "tok",
                RegistryAuth::Anonymous => true,
            })
            .collect();
        assert_eq!(
            ours,
            vec![
                &RegistryAuth::Basic("user".into(), "pa:ss".into()),
                &RegistryAuth::Basic("u2".into(), "p2".into()),
                &RegistryAuth::Bearer("tok".into()),
                &RegistryAuth::Anonymous,
            ]
        );
        assert_eq!(got.last(), Some(&RegistryAuth::Anonymous));
    }

    #[test]
    fn globs() {
        assert!(glob("*", "abc"));
        assert!(glob("a*c", "abbbc"));
        assert!(glob("*.x", "a.x"));
        assert!(!glob("a*c", "abd"));
    }
}
