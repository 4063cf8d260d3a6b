//! Request plumbing shared by the operations: path segments, query strings, JSON bodies, pages,
//! tags, idempotency tokens, time.

use std::collections::BTreeMap;

use base64::Engine;
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use localfargate_core::eks::IDEMPOTENCY_KIND;
use localfargate_store::Tx;

use crate::error::ApiError;

/// Split the raw path on `/` and percent-decode each segment afterwards, so an ARN sent as one
/// `%2F`-encoded segment stays one segment.
pub fn segments(raw_path: &str) -> Vec<String> {
    raw_path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect()
}

/// Query parameters, repeated keys kept in order.
pub fn query(raw: Option<&str>) -> Vec<(String, String)> {
    pairs(raw.unwrap_or(""), false)
}

/// An `application/x-www-form-urlencoded` body (the Query protocol's): as [`query`], with `+`
/// a space.
pub fn form(raw: &str) -> Vec<(String, String)> {
    pairs(raw, true)
}

fn pairs(raw: &str, plus_is_space: bool) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                let s = if plus_is_space {
                    std::borrow::Cow::Owned(s.replace('+', " "))
                } else {
                    std::borrow::Cow::Borrowed(s)
                };
                percent_decode_str(&s).decode_utf8_lossy().into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

pub fn query_one<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A JSON object body; an empty body is an empty object.
pub fn body(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::serialization(
            "The request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::serialization(format!(
            "The request body is not valid JSON: {e}"
        ))),
    }
}

pub fn required_str<'a>(body: &'a Map<String, Value>, member: &str) -> Result<&'a str, ApiError> {
    match body.get(member) {
        Some(Value::String(s)) => Ok(s),
        Some(Value::Null) | None => {
            Err(ApiError::invalid_parameter(format!("{member} is required")))
        }
        Some(_) => Err(ApiError::serialization(format!(
            "{member} must be a string"
        ))),
    }
}

pub fn optional_str<'a>(
    body: &'a Map<String, Value>,
    member: &str,
) -> Result<Option<&'a str>, ApiError> {
    match body.get(member) {
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Null) | None => Ok(None),
        Some(_) => Err(ApiError::serialization(format!(
            "{member} must be a string"
        ))),
    }
}

pub fn string_list(body: &Map<String, Value>, member: &str) -> Result<Vec<String>, ApiError> {
    match body.get(member) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    ApiError::serialization(format!("{member} must be a list of strings"))
                })
            })
            .collect(),
        Some(_) => Err(ApiError::serialization(format!(
            "{member} must be a list of strings"
        ))),
    }
}

/// Tags as EKS constrains them: at most 50, keys 1–128 characters, values up to 256, no `aws:`
/// prefix.
/// `required` for TagResource, whose problems are BadRequestException; a Create call's optional
/// tags get its modelled InvalidParameterException instead.
pub fn tags(value: Option<&Value>, required: bool) -> Result<BTreeMap<String, String>, ApiError> {
    let on_create = !required;
    let bad = |m: String| {
        if on_create {
            ApiError::invalid_parameter(m)
        } else {
            ApiError::bad_request(m)
        }
    };
    let map: BTreeMap<String, String> = match value {
        None | Some(Value::Null) if !required => return Ok(BTreeMap::new()),
        None | Some(Value::Null) => return Err(bad("tags is required".to_string())),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|_| ApiError::serialization("tags must be a map of strings to strings"))?,
    };
    if map.len() > 50 {
        return Err(bad("The number of tags exceeds the limit of 50".to_string()));
    }
    for (k, v) in &map {
        let klen = k.chars().count();
        if klen == 0 || klen > 128 {
            return Err(bad(format!("Tag key {k:?} must be 1 to 128 characters")));
        }
        if v.chars().count() > 256 {
            return Err(bad(format!(
                "Tag value for {k:?} must be at most 256 characters"
            )));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(bad(format!("Tag key {k:?} uses the reserved prefix aws:")));
        }
    }
    Ok(map)
}

/// A page of sorted names: `maxResults` 1–100 (default 100) and an opaque `nextToken`.
pub fn page(
    names: Vec<String>,
    q: &[(String, String)],
) -> Result<(Vec<String>, Option<String>), ApiError> {
    let max = match query_one(q, "maxResults") {
        None => 100,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid_parameter(format!(
                    "maxResults must be between 1 and 100, got {v}"
                )));
            }
        },
    };
    let after = match query_one(q, "nextToken") {
        None => None,
        Some(token) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.strip_prefix("after:").map(str::to_string))
                .ok_or_else(|| ApiError::invalid_parameter("The nextToken is not valid"))?,
        ),
    };
    let rest: Vec<String> = names
        .into_iter()
        .filter(|n| after.as_ref().is_none_or(|a| n > a))
        .collect();
    let more = rest.len() > max;
    let items: Vec<String> = rest.into_iter().take(max).collect();
    let token = match (more, items.last()) {
        (true, Some(last)) => {
            Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("after:{last}")))
        }
        _ => None,
    };
    Ok((items, token))
}

pub fn now() -> f64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // Milliseconds, as EKS reports them.
    (d.as_millis() as f64) / 1000.0
}

/// `clientRequestToken` handling: a replay of the same request with the same token gets the
/// first answer; the same token with a different request is refused.
pub struct Idempotency {
    key: Option<String>,
    hash: String,
    /// The resource the request creates: a replay only stands while it exists.
    resource: (&'static str, String),
}

impl Idempotency {
    pub fn new(
        operation: &str,
        kind: &'static str,
        scope: &str,
        body: &Map<String, Value>,
    ) -> Result<Self, ApiError> {
        let token = optional_str(body, "clientRequestToken")?;
        // serde_json maps are sorted, so equal requests hash equally.
        let canonical = serde_json::to_string(body).unwrap_or_default();
        let hash = hex::encode(Sha256::digest(canonical.as_bytes()));
        Ok(Idempotency {
            key: token.map(|t| format!("{operation}/{scope}/{t}")),
            hash,
            resource: (kind, scope.to_string()),
        })
    }

    /// The stored answer for a replay, or an error for a reused token.
    pub fn replay(&self, tx: &mut dyn Tx) -> Result<Option<Value>, ApiError> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        let Some(found) = tx.get(IDEMPOTENCY_KIND, key)? else {
            return Ok(None);
        };
        let (kind, resource) = &self.resource;
        if tx.get(kind, resource)?.is_none() {
            // What the token created is gone: the token is free again.
            tx.delete(IDEMPOTENCY_KIND, key, None)?;
            return Ok(None);
        }
        if found.value["hash"] == self.hash {
            Ok(Some(found.value["response"].clone()))
        } else {
            Err(ApiError::invalid_request(
                "The clientRequestToken was already used for a different request; use a new token",
            ))
        }
    }

    pub fn remember(&self, tx: &mut dyn Tx, response: &Value) -> Result<(), ApiError> {
        if let Some(key) = &self.key {
            tx.create(
                IDEMPOTENCY_KIND,
                key,
                &serde_json::json!({"hash": self.hash, "response": response}),
            )?;
        }
        Ok(())
    }
}

/// Run `f` in one store transaction. An API error rolls everything back and is returned as is;
/// a store error becomes a server error.
pub fn in_tx(
    store: &dyn localfargate_store::Store,
    f: impl FnMut(&mut dyn Tx) -> Result<Value, ApiError>,
) -> Result<Value, ApiError> {
    localfargate_store::transaction(store, f)
}

/// A stored record of type `T`, and its revision.
pub fn load<T: serde::de::DeserializeOwned>(
    tx: &mut dyn Tx,
    kind: &str,
    key: &str,
) -> Result<Option<(T, u64)>, ApiError> {
    match tx.get(kind, key)? {
        None => Ok(None),
        Some(o) => serde::Deserialize::deserialize(&o.value)
            .map(|r| Some((r, o.revision)))
            .map_err(|e| ApiError::server(format!("stored {kind} {key}: {e}"))),
    }
}

pub fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_decode_after_splitting() {
        assert_eq!(
            segments("/tags/arn%3Aaws%3Aeks%3Aus-east-1%3A123456789012%3Acluster%2Fc1"),
            ["tags", "arn:aws:eks:us-east-1:123456789012:cluster/c1"]
        );
        assert_eq!(
            segments("/clusters/c1/fargate-profiles/"),
            ["clusters", "c1", "fargate-profiles"]
        );
    }

    #[test]
    fn repeated_query_keys() {
        let q = query(Some("tagKeys=a&tagKeys=b%20c&tagKeys=d%2Fe"));
        let keys: Vec<&str> = q.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(keys, ["a", "b c", "d/e"]);
    }

    #[test]
    fn paging() {
        let names: Vec<String> = (0..25).map(|i| format!("n{i:02}")).collect();
        let (first, token) = page(names.clone(), &[("maxResults".into(), "10".into())]).unwrap();
        assert_eq!(first.len(), 10);
        let token = token.unwrap();
        let (second, _) = page(names.clone(), &[("nextToken".into(), token)]).unwrap();
        assert_eq!(second.first().unwrap(), "n10");
        assert_eq!(second.len(), 15);
        let (all, none) = page(names.clone(), &[]).unwrap();
        assert_eq!((all.len(), none), (25, None));
        assert!(page(names.clone(), &[("maxResults".into(), "101".into())]).is_err());
        assert!(page(names.clone(), &[("maxResults".into(), "0".into())]).is_err());
        assert!(page(names, &[("nextToken".into(), "garbage!".into())]).is_err());
    }
}
