//! The errors the API answers with, and the `metav1.Status` each becomes.

use localfargate_store::StoreError;
use serde_json::{Value, json};
use thiserror::Error;

use crate::resources::ResourceType;

/// A request the API refuses, with what `metav1.Status` needs to say why.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum KubeError {
    #[error("{message}")]
    NotFound {
        message: String,
        kind: String,
        name: String,
    },
    #[error("{message}")]
    AlreadyExists {
        message: String,
        kind: String,
        name: String,
    },
    #[error("{message}")]
    Conflict {
        message: String,
        kind: String,
        name: String,
    },
    /// 409 for a server-side apply that would change fields other managers own, with a
    /// `FieldManagerConflict` cause per field (upstream's `NewApplyConflict`).
    #[error("{message}")]
    ApplyConflict { message: String, causes: Vec<Value> },
    /// 422, with the field causes.
    #[error("{message}")]
    Invalid {
        message: String,
        kind: String,
        name: String,
        causes: Vec<Value>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 410: a watch or continue token older than the retained history.
    #[error("{0}")]
    Expired(String),
    /// 410 for a list continued past compaction, with the token that continues from now.
    #[error("{message}")]
    ExpiredContinue {
        message: String,
        continue_token: String,
    },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 413: a request body over the limit.
    #[error("Request entity too large: {0}")]
    RequestEntityTooLarge(String),
    /// 429, with why and when to try again (an eviction a disruption budget refuses).
    #[error("{message}")]
    TooManyRequests {
        message: String,
        causes: Vec<Value>,
        retry_after_seconds: i64,
    },
    /// 504: the request cannot be answered yet (a resourceVersion from the future).
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Internal(String),
    /// An admission webhook's refusal: its code, reason and details, with upstream's message.
    #[error("{message}")]
    Webhook {
        message: String,
        code: u16,
        reason: String,
        details: Value,
    },
}

impl From<crate::meta::ShapeError> for KubeError {
    fn from(e: crate::meta::ShapeError) -> Self {
        KubeError::BadRequest(e.to_string())
    }
}

impl KubeError {
    pub fn code(&self) -> u16 {
        match self {
            KubeError::NotFound { .. } => 404,
            KubeError::AlreadyExists { .. }
            | KubeError::Conflict { .. }
            | KubeError::ApplyConflict { .. } => 409,
            KubeError::Invalid { .. } => 422,
            KubeError::BadRequest(_) => 400,
            KubeError::Forbidden(_) => 403,
            KubeError::MethodNotAllowed(_) => 405,
            KubeError::Expired(_) | KubeError::ExpiredContinue { .. } => 410,
            KubeError::UnsupportedMediaType(_) => 415,
            KubeError::RequestEntityTooLarge(_) => 413,
            KubeError::TooManyRequests { .. } => 429,
            KubeError::Timeout(_) => 504,
            KubeError::Internal(_) => 500,
            KubeError::Webhook { code, .. } => *code,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            KubeError::NotFound { .. } => "NotFound",
            KubeError::AlreadyExists { .. } => "AlreadyExists",
            KubeError::Conflict { .. } | KubeError::ApplyConflict { .. } => "Conflict",
            KubeError::Invalid { .. } => "Invalid",
            KubeError::BadRequest(_) => "BadRequest",
            KubeError::Forbidden(_) => "Forbidden",
            KubeError::MethodNotAllowed(_) => "MethodNotAllowed",
            KubeError::Expired(_) | KubeError::ExpiredContinue { .. } => "Expired",
            KubeError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            KubeError::RequestEntityTooLarge(_) => "RequestEntityTooLarge",
            KubeError::TooManyRequests { .. } => "TooManyRequests",
            KubeError::Timeout(_) => "Timeout",
            KubeError::Internal(_) => "InternalError",
            KubeError::Webhook { reason, .. } => known_reason(reason),
        }
    }

    /// The `metav1.Status` body.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        match self {
            KubeError::NotFound { kind, name, .. }
            | KubeError::AlreadyExists { kind, name, .. }
            | KubeError::Conflict { kind, name, .. } => {
                s["details"] = details(kind, name);
            }
            KubeError::Invalid {
                kind, name, causes, ..
            } => {
                s["details"] = details(kind, name);
                s["details"]["causes"] = json!(causes);
            }
            KubeError::ApplyConflict { causes, .. } => {
                s["details"] = json!({"causes": causes});
            }
            KubeError::TooManyRequests {
                causes,
                retry_after_seconds,
                ..
            } => {
                s["details"] = json!({"causes": causes});
                if *retry_after_seconds > 0 {
                    s["details"]["retryAfterSeconds"] = json!(retry_after_seconds);
                }
            }
            KubeError::ExpiredContinue { continue_token, .. } => {
                // The Status's own list metadata (wire JSON, built here).
                s["metadata"] = json!({"continue": continue_token});
            }
            KubeError::Webhook {
                reason, details, ..
            } => {
                // The webhook's own reason, whatever it is; none when it gave none.
                match reason.as_str() {
                    "" => s.as_object_mut().map(|o| o.remove("reason")),
                    r => s
                        .as_object_mut()
                        .map(|o| o.insert("reason".into(), json!(r))),
                };
                if !details.is_null() {
                    s["details"] = details.clone();
                }
            }
            _ => {}
        }
        s
    }

    /// The resource, group-qualified (`deployments.apps`), an error names.
    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        KubeError::NotFound {
            message: format!("{} \"{name}\" not found", rt.qualified()),
            kind: rt.qualified(),
            name: name.to_string(),
        }
    }

    pub fn conflict(rt: &ResourceType, name: &str) -> Self {
        KubeError::Conflict {
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                rt.qualified()
            ),
            kind: rt.qualified(),
            name: name.to_string(),
        }
    }

    /// 422 with one cause: `Pod "p" is invalid: spec.containers: Required value`.
    pub fn invalid(rt: &ResourceType, name: &str, field: &str, detail: &str) -> Self {
        let kind = if rt.group.is_empty() {
            rt.kind.to_string()
        } else {
            format!("{}.{}", rt.kind, rt.group)
        };
        KubeError::Invalid {
            message: format!("{kind} \"{name}\" is invalid: {field}: {detail}"),
            // `details.kind` is the kind, as upstream's `NewInvalid` writes it (kubectl prints
            // `The Service "x" is invalid`).
            kind: kind.clone(),
            name: name.to_string(),
            causes: vec![json!({"reason": "FieldValueInvalid", "message": detail, "field": field})],
        }
    }

    /// 422 from kube-apiserver's validation of an object of this resource, with every field
    /// error as a cause; `details.kind` and `details.group` are the kind and its group, as
    /// upstream's `NewInvalid` writes them.
    pub fn invalid_fields(
        rt: &ResourceType,
        name: &str,
        errors: &[localfargate_core::validation::FieldError],
    ) -> Self {
        use localfargate_core::validation;
        let kind = if rt.group.is_empty() {
            rt.kind.to_string()
        } else {
            format!("{}.{}", rt.kind, rt.group)
        };
        KubeError::Invalid {
            message: validation::invalid_message(rt.group, rt.kind, name, errors),
            kind,
            name: name.to_string(),
            causes: validation::causes(errors),
        }
    }

    pub(crate) fn from_store(e: StoreError) -> Self {
        KubeError::Internal(e.to_string())
    }
}

/// `details` of a Status: `kind` is the resource, with its group apart (`deployments` + `apps`).
fn details(qualified: &str, name: &str) -> Value {
    match qualified.split_once('.') {
        Some((resource, group)) => json!({"name": name, "group": group, "kind": resource}),
        None => json!({"name": name, "kind": qualified}),
    }
}

pub type Result<T> = std::result::Result<T, KubeError>;

/// A store failure inside a registry operation is the server's fault: a 500 saying what failed.
/// (Conflicts and missing objects are mapped to their Kubernetes errors where the resource and
/// name are known, before this applies.)
impl From<StoreError> for KubeError {
    fn from(e: StoreError) -> Self {
        KubeError::from_store(e)
    }
}

/// A `metav1.StatusReason` a webhook gave, when it is one of upstream's (else none).
fn known_reason(reason: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "AlreadyExists",
        "Conflict",
        "Gone",
        "Invalid",
        "ServerTimeout",
        "StoreReadError",
        "Timeout",
        "TooManyRequests",
        "BadRequest",
        "MethodNotAllowed",
        "NotAcceptable",
        "RequestEntityTooLarge",
        "UnsupportedMediaType",
        "InternalError",
        "Expired",
        "ServiceUnavailable",
    ];
    KNOWN.iter().find(|k| **k == reason).copied().unwrap_or("")
}
