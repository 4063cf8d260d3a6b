//! `metav1.Status` bodies byte for byte as kube-apiserver writes them: Go's `encoding/json`
//! emits struct fields in declaration order (not sorted, as a `serde_json::Value` is), omits
//! empty `omitempty` fields, and the API server's encoder ends the body with a newline. Clients
//! that compare bodies, or log them, see what they would see from EKS.

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Serialize)]
struct Status<'a> {
    kind: &'a str,
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    metadata: ListMeta<'a>,
    #[serde(skip_serializing_if = "str::is_empty")]
    status: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details<'a>>,
    #[serde(skip_serializing_if = "is_zero")]
    code: i64,
}

#[derive(Serialize)]
struct ListMeta<'a> {
    #[serde(rename = "resourceVersion", skip_serializing_if = "str::is_empty")]
    resource_version: &'a str,
    #[serde(rename = "continue", skip_serializing_if = "str::is_empty")]
    continue_token: &'a str,
}

#[derive(Serialize)]
struct Details<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    group: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    kind: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    uid: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    causes: Vec<Cause<'a>>,
    #[serde(rename = "retryAfterSeconds", skip_serializing_if = "is_zero")]
    retry_after_seconds: i64,
}

#[derive(Serialize)]
struct Cause<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    field: &'a str,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn text(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

/// The body of a Status (as `KubeError::status` builds it), as Go encodes it.
pub fn encode(status: &Value) -> Vec<u8> {
    let status = meta::Status::deserialize(status).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "a Status body that does not decode is written empty");
        meta::Status::default()
    });
    let details = status.details.as_ref().map(|d| Details {
        name: text(&d.name),
        group: text(&d.group),
        kind: text(&d.kind),
        uid: text(&d.uid),
        causes: d
            .causes
            .iter()
            .flatten()
            .map(|c| Cause {
                reason: text(&c.reason),
                message: text(&c.message),
                field: text(&c.field),
            })
            .collect(),
        retry_after_seconds: d.retry_after_seconds.unwrap_or(0).into(),
    });
    let body = Status {
        kind: "Status",
        api_version: "v1",
        metadata: ListMeta {
            resource_version: text(&status.metadata.resource_version),
            continue_token: text(&status.metadata.continue_),
        },
        status: text(&status.status),
        message: text(&status.message),
        reason: text(&status.reason),
        details,
        code: status.code.unwrap_or(0).into(),
    };
    let mut out = serde_json::to_vec(&body).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_not_found_is_written_as_kube_apiserver_writes_it() {
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": "pods \"x\" not found", "reason": "NotFound",
                            "details": {"name": "x", "kind": "pods"}, "code": 404});
        assert_eq!(
            String::from_utf8(encode(&status)).unwrap(),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"pods \\\"x\\\" not found\",\"reason\":\"NotFound\",\"details\":{\"name\":\"x\",\"kind\":\"pods\"},\"code\":404}\n"
        );
    }

    #[test]
    fn causes_keep_go_field_order() {
        let status = json!({"status": "Failure", "message": "m", "reason": "Invalid", "code": 422,
                            "details": {"kind": "Pod", "name": "p", "causes": [
                                {"field": "spec", "message": "Required value", "reason": "FieldValueRequired"}]}});
        let body = String::from_utf8(encode(&status)).unwrap();
        assert!(body.contains("\"details\":{\"name\":\"p\",\"kind\":\"Pod\",\"causes\":[{\"reason\":\"FieldValueRequired\",\"message\":\"Required value\",\"field\":\"spec\"}]}"), "{body}");
    }
}
