//! CRD conversion webhooks (`spec.conversion.strategy: Webhook`), as apiextensions-apiserver
//! calls them: a `ConversionReview` (the first of `conversionReviewVersions` that is v1 or
//! v1beta1) with the objects and the desired `apiVersion`, its answer checked (kind, uid,
//! `result.status`, the number of objects, each one's `apiVersion`), and upstream's
//! `conversion webhook for <group/version, Kind=kind> failed: …` when it fails. The converted
//! objects keep their metadata but labels and annotations, which the webhook may change.

use std::time::Duration;

use serde_json::{Value, json};

use crate::meta::{Field, ObjectMeta};
use crate::objects::{KubeError, Objects, Result};

/// Upstream's conversion calls carry `?timeout=30s`.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Convert `objects` (all of one kind and version, `source` as `group/version, Kind=kind`) to
/// `desired` (`group/version`) through the definition's `spec.conversion.webhook`.
pub fn convert(
    on: &Objects,
    webhook: &Value,
    source: &str,
    desired: &str,
    objects: Vec<Value>,
) -> Result<Vec<Value>> {
    let failed = |reason: String| {
        KubeError::Internal(format!("conversion webhook for {source} failed: {reason}"))
    };
    let version = webhook["conversionReviewVersions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|v| *v == "v1" || *v == "v1beta1")
        .ok_or_else(|| KubeError::Internal("no supported conversion review versions".into()))?;
    let uid = crate::meta::new_uid();
    let review = json!({
        "apiVersion": format!("apiextensions.k8s.io/{version}"),
        "kind": "ConversionReview",
        "request": {"uid": uid, "desiredAPIVersion": desired, "objects": objects},
    });
    let target = super::client::resolve(on, &webhook["clientConfig"], TIMEOUT)
        .map_err(|e| failed(e.to_string()))?;
    let body = serde_json::to_vec(&review).unwrap_or_default();
    let got = super::client::wait_all(vec![Box::pin(super::client::post(target, body, TIMEOUT))])
        .into_iter()
        .next()
        .flatten()
        .ok_or_else(|| failed("the call was lost".into()))?
        .map_err(|e| failed(e.to_string()))?;
    let converted = answer(version, &uid, &got).map_err(failed)?;
    if converted.len() != objects.len() {
        return Err(failed(format!(
            "returned {} objects, expected {}",
            converted.len(),
            objects.len()
        )));
    }
    let mut out = Vec::with_capacity(objects.len());
    for (i, (mut c, original)) in converted.into_iter().zip(objects).enumerate() {
        if c["apiVersion"] != desired {
            return Err(failed(format!(
                "invalid converted object at index {i}: invalid apiVersion \"{}\", expected \"{desired}\"",
                c["apiVersion"].as_str().unwrap_or_default()
            )));
        }
        if c["kind"] != original["kind"] {
            return Err(failed(format!(
                "invalid converted object at index {i}: invalid kind \"{}\", expected \"{}\"",
                c["kind"].as_str().unwrap_or_default(),
                original["kind"].as_str().unwrap_or_default()
            )));
        }
        // Only labels and annotations of the metadata may change.
        let mut meta = ObjectMeta::of(&original);
        let converted = ObjectMeta::of(&c);
        for field in [Field::Labels, Field::Annotations] {
            let written_null = converted.other.get(field.key()).is_some_and(Value::is_null);
            if converted.has(field) && !written_null {
                meta.carry(field, &converted);
            } else {
                meta.clear(field);
            }
        }
        // A custom resource's body is JSON by nature; only its metadata is typed here.
        if let Some(body) = c.as_object_mut() {
            body.insert("metadata".to_string(), Value::Object(meta.into_map()));
        }
        out.push(c);
    }
    Ok(out)
}

/// The converted objects of a `ConversionReview` answer (upstream's
/// `getConvertedObjectsFromResponse`).
fn answer(version: &str, uid: &str, got: &Value) -> std::result::Result<Vec<Value>, String> {
    if version == "v1"
        && (got["apiVersion"] != "apiextensions.k8s.io/v1" || got["kind"] != "ConversionReview")
    {
        {
            return Err(format!(
                "expected webhook response of apiextensions.k8s.io/v1, Kind=ConversionReview, got {}, Kind={}",
                got["apiVersion"].as_str().unwrap_or_default(),
                got["kind"].as_str().unwrap_or_default()
            ));
        }
    }
    let response = &got["response"];
    if !response.is_object() {
        return Err("no response provided".into());
    }
    if version == "v1" && response["uid"] != uid {
        return Err(format!(
            "expected response.uid=\"{uid}\", got \"{}\"",
            response["uid"].as_str().unwrap_or_default()
        ));
    }
    let result = &response["result"];
    if result["status"] != "Success" {
        return Err(match result["message"].as_str().filter(|m| !m.is_empty()) {
            Some(m) => m.to_string(),
            None => format!(
                "response.result.status was '{}', not 'Success'",
                result["status"].as_str().unwrap_or_default()
            ),
        });
    }
    Ok(response["convertedObjects"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked_as_upstream_checks_them() {
        let ok = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": "u", "result": {"status": "Success"}, "convertedObjects": [{"a": 1}]}});
        assert_eq!(answer("v1", "u", &ok).unwrap(), vec![json!({"a": 1})]);
        assert_eq!(
            answer("v1", "x", &ok).unwrap_err(),
            "expected response.uid=\"x\", got \"u\""
        );
        let refused = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": "u", "result": {"status": "Failure", "message": "no way"}}});
        assert_eq!(answer("v1", "u", &refused).unwrap_err(), "no way");
        let bare = json!({"response": {"result": {"status": "Failure"}}});
        assert_eq!(
            answer("v1beta1", "u", &bare).unwrap_err(),
            "response.result.status was 'Failure', not 'Success'"
        );
    }
}
