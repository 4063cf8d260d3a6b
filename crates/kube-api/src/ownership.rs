//! What a write request says about field ownership, read from its HTTP form: the manager
//! (`?fieldManager=` or the User-Agent), the schema and scope ownership follows, the
//! `PatchOptions` checks and the errors of an apply. The ownership itself is
//! `patch::field_manager`; `rest` calls these around each create, update and patch.

use axum::body::Bytes;
use axum::http::{HeaderMap, header};
use localfargate_registry::meta::{name_of, namespace_of};
use localfargate_registry::objects::KubeError;
use serde_json::{Value, json};

use crate::patch::field_manager::{self, ApplyError, Schema, Scope};
use crate::request::{Query, Target};

/// The field manager of a write: `?fieldManager=`, else the User-Agent up to its first `/`
/// (`kubectl/v1.33.0 (linux/amd64) …` → `kubectl`), at most 128 characters, as upstream
/// derives it.
pub(crate) fn manager_of(query: &Query, headers: &HeaderMap) -> String {
    if let Some(m) = query.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    agent
        .split('/')
        .next()
        .unwrap_or("")
        .chars()
        .take(128)
        .collect()
}

/// The schema ownership follows: the built-in kind's, or the custom resource version's.
pub(crate) fn schema_of(target: &Target) -> Schema<'_> {
    let rt = target.rt;
    Schema::of(
        &rt.api_version(),
        rt.kind,
        target.custom.as_ref().map(|c| &c.schema_json),
        rt.custom,
    )
}

/// What a write to the object or one of its subresources may own.
pub(crate) fn write_scope(target: &Target, sub: Option<&str>) -> Scope {
    match sub {
        Some("status") => Scope::StatusOnly,
        _ if target.rt.has_status => Scope::ExceptStatus,
        _ => Scope::Whole,
    }
}

/// The request as the field manager records it, timed now.
pub(crate) fn ownership<'a>(
    api_version: &'a str,
    manager: &'a str,
    sub: Option<&'a str>,
) -> field_manager::Request<'a> {
    field_manager::Request {
        manager,
        api_version,
        subresource: sub,
        now: jiff::Timestamp::now(),
    }
}

/// `PatchOptions` checked as upstream's `ValidatePatchOptions` does: an apply names its
/// manager, and only an apply may be forced.
pub(crate) fn check_patch_options(query: &Query, apply: bool) -> Result<(), KubeError> {
    let (field, detail, reason) = if apply {
        if query.get("fieldManager").is_some_and(|m| !m.is_empty()) {
            return Ok(());
        }
        (
            "fieldManager",
            "Required value: is required for apply patch",
            "FieldValueRequired",
        )
    } else {
        if query.get("force").is_none() {
            return Ok(());
        }
        (
            "force",
            "Forbidden: may not be specified for non-apply patch",
            "FieldValueForbidden",
        )
    };
    Err(KubeError::Invalid {
        message: format!("PatchOptions.meta.k8s.io \"\" is invalid: {field}: {detail}"),
        kind: "PatchOptions.meta.k8s.io".into(),
        name: String::new(),
        causes: vec![json!({"reason": reason, "message": detail, "field": field})],
    })
}

pub(crate) fn apply_error(e: ApplyError) -> KubeError {
    match e {
        ApplyError::Conflicts(c) => KubeError::ApplyConflict {
            causes: c.causes(),
            message: c.message,
        },
        ApplyError::Malformed(m) => KubeError::BadRequest(m),
    }
}

/// The patch types a resource takes, as upstream lists them in its 415: custom resources have
/// no Go types to read strategic-merge strategies from.
pub(crate) fn accepted_patch_types(target: &Target) -> &'static str {
    if target.rt.custom {
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    } else {
        "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
    }
}

pub(crate) fn is_apply(content_type: &str) -> bool {
    let base = content_type.split(';').next().unwrap_or("").trim();
    base == "application/apply-patch+yaml" || base == "application/apply-patch+cbor"
}

pub(crate) fn apply_intent(body: &Bytes) -> Result<Value, KubeError> {
    serde_yaml::from_slice(body)
        .map_err(|e| KubeError::BadRequest(format!("error decoding YAML: {e}")))
}

/// An apply configuration of a built-in kind with fields its schema lacks is refused whatever
/// `fieldValidation` says, with upstream's message (structured-merge-diff cannot type it);
/// upstream answers 500, a 400 here since the mistake is the client's. Apply bodies are never
/// pruned as created or replaced objects are.
pub(crate) fn check_apply_fields(target: &Target, intent: &Value) -> Result<(), KubeError> {
    let rt = target.rt;
    if rt.custom {
        return Ok(());
    }
    let unknown = crate::openapi::unknown_field_steps(rt.group, rt.version, rt.kind, intent);
    if unknown.is_empty() {
        return Ok(());
    }
    let errors: Vec<String> = unknown
        .iter()
        .map(|steps| {
            format!(
                "{}: field not declared in schema",
                field_manager::print_steps(intent, steps, schema_of(target))
            )
        })
        .collect();
    let detail = match errors.as_slice() {
        [one] => one.clone(),
        many => format!("errors:\n  {}", many.join("\n  ")),
    };
    Err(KubeError::BadRequest(format!(
        "failed to create typed patch object ({}/{}; {}/{}, Kind={}): {detail}",
        namespace_of(intent),
        name_of(intent),
        rt.group,
        rt.version,
        rt.kind
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_apply_names_its_manager_and_only_an_apply_is_forced() {
        let apply = check_patch_options(&Query::parse(Some("force=true")), true).unwrap_err();
        assert_eq!(apply.code(), 422);
        assert_eq!(
            apply.to_string(),
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
        );
        assert!(
            check_patch_options(&Query::parse(Some("fieldManager=kubectl&force=true")), true)
                .is_ok()
        );
        let forced = check_patch_options(&Query::parse(Some("force=false")), false).unwrap_err();
        assert_eq!(
            forced.to_string(),
            "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
        );
        assert!(check_patch_options(&Query::parse(Some("fieldManager=x")), false).is_ok());
    }

    #[test]
    fn managers_come_from_the_query_or_the_user_agent() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::USER_AGENT,
            "kubectl.1.33/v1.33.1 (linux/amd64) kubernetes/8adc0f0"
                .parse()
                .unwrap(),
        );
        assert_eq!(manager_of(&Query::default(), &headers), "kubectl.1.33");
        assert_eq!(
            manager_of(&Query::parse(Some("fieldManager=kubectl-edit")), &headers),
            "kubectl-edit"
        );
    }
}
