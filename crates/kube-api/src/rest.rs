//! The resource endpoints: one generic handler for every kind in the registry. It parses the
//! path, negotiates the representation (object, list or Table), and maps each verb onto the
//! cluster's `Objects`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use localfargate_registry::objects::{
    self, DeleteOptions, Deleted, KubeError, Propagation, into_resource_version, name_of,
};
use serde_json::{Value, json};

use crate::authz::{self, Authorizer};
use crate::context::Api;
use crate::ownership::{
    accepted_patch_types, apply_error, apply_intent, check_apply_fields, check_patch_options,
    is_apply, manager_of, ownership, schema_of, write_scope,
};
use crate::patch::field_manager;
use crate::patch::{self, PatchError};
use crate::request::{Query, Target, selected, selectors};
use crate::response::{
    TABLE_CONTENT_TYPE, error_response, json_response, json_typed, table, wants_table,
};
use crate::watch;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v1::{Scale, ScaleSpec, ScaleStatus};
use k8s_openapi::api::core::v1::{Binding, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as k8s_meta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions as K8sDeleteOptions;
use localfargate_core::rbac::UserInfo;
use localfargate_core::selectors::{LabelSelector, SelectorError};
use localfargate_registry::meta::resource_version_of;
use localfargate_registry::meta::{DynamicObject, Field, ObjectMeta};
use localfargate_registry::typed;
use localfargate_registry::webhooks::{Requester, with_requester};
use serde::Deserialize;

fn body_value(headers: &HeaderMap, body: &Bytes) -> Result<Value, KubeError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        return crate::protobuf::decode(body);
    }
    if content_type.starts_with("application/yaml") {
        return serde_yaml::from_slice::<Value>(body)
            .map_err(|e| KubeError::BadRequest(format!("error decoding YAML: {e}")));
    }
    serde_json::from_slice(body).map_err(|e| {
        KubeError::BadRequest(format!(
            "Object 'Kind' is missing in '{}': {e}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))
    })
}

/// The body of a request that is no stored object (a subresource's TokenRequest, Eviction or
/// Binding), refused with kube-apiserver's decoding error when a value has the wrong JSON type
/// for `default`, the endpoint's kind (or the body's own, when it names another served one).
fn checked_body(
    headers: &HeaderMap,
    body: &Bytes,
    default: (&str, &str, &str),
) -> Result<Value, KubeError> {
    let value = body_value(headers, body)?;
    crate::openapi::decode_check(default, &value).map_err(KubeError::BadRequest)?;
    Ok(value)
}

/// [`checked_body`] for a kind that can only be created (the reviews).
fn decoded_body(
    headers: &HeaderMap,
    body: &Bytes,
    rt: &localfargate_registry::resources::ResourceType,
) -> Result<Value, KubeError> {
    checked_body(headers, body, (rt.group, rt.version, rt.kind))
}

fn namespace(target: &Target) -> &str {
    target.namespace.as_deref().unwrap_or("")
}

/// Entry point for every resource request.
pub async fn handle(
    api: Arc<Api>,
    user: UserInfo,
    method: Method,
    target: Target,
    query: Query,
    mut headers: HeaderMap,
    mut body: Bytes,
) -> Response {
    if target.rt.create_only {
        let answered = match (method == Method::POST, target.name.is_none()) {
            (true, true) if target.rt.kind == "TokenReview" => {
                decoded_body(&headers, &body, target.rt)
                    .and_then(|v| crate::authn::token_review(&api.info, v))
                    .map_or_else(
                        |e| error_response(&e),
                        |v| json_response(StatusCode::CREATED, &v),
                    )
            }
            (true, true) => decoded_body(&headers, &body, target.rt)
                .and_then(|v| authz::review(&api.authorizer, &user, &target, v))
                .map_or_else(
                    |e| error_response(&e),
                    |v| json_response(StatusCode::CREATED, &v),
                ),
            _ => error_response(&KubeError::MethodNotAllowed(format!(
                "{} can only be created",
                target.rt.qualified()
            ))),
        };
        return crate::protobuf::respond(&headers, answered).await;
    }
    let mut warnings =
        match body_field_validation(&method, &target, &query, &mut headers, &mut body) {
            Ok(w) => w,
            Err(e) => return error_response(&e),
        };
    let result = if target.rt.kind == "ComponentStatus" {
        component_statuses(&method, &target, &headers).map(|r| {
            with_warnings(
                r,
                &[localfargate_registry::component_status::DEPRECATION_WARNING.to_string()],
            )
        })
    } else {
        // The writes are admitted as this user's (admission webhooks are told who asks), and
        // the webhooks' warnings come back as `Warning` headers.
        let requester = Arc::new(Requester {
            user: user.clone(),
            field_manager: query.get("fieldManager").map(str::to_string),
            ..Default::default()
        });
        let result = with_requester(
            requester.clone(),
            dispatch(&api, &method, &target, &query, &headers, &body),
        )
        .await;
        warnings.extend(requester.take_warnings());
        result
    };
    // An RBAC write is in force for the next request, before the watch says so.
    if result.is_ok() && method != Method::GET && Authorizer::is_rbac(&target) {
        api.authorizer.invalidate();
    }
    let response = match result {
        Ok(r) => with_warnings(r, &warnings),
        Err(e) => error_response(&e),
    };
    // Objects, lists and errors in protobuf for clients that ask for it first.
    crate::protobuf::respond(&headers, response).await
}

/// `fieldValidation` on a created or replaced object (the body of a POST or PUT to a resource or
/// its status): refused with upstream's message under Strict, else the warnings to send, the
/// unknown fields dropped from the body (which becomes JSON then). Bodies of another kind are
/// left to the object machinery's own errors.
fn body_field_validation(
    method: &Method,
    target: &Target,
    query: &Query,
    headers: &mut HeaderMap,
    body: &mut Bytes,
) -> Result<Vec<String>, KubeError> {
    let writes_object = match (method, target.subresource.as_deref()) {
        (&Method::POST, None) => target.name.is_none(),
        (&Method::PUT, None | Some("status")) => target.name.is_some(),
        _ => false,
    };
    if !writes_object {
        return Ok(Vec::new());
    }
    let Ok(mut obj) = body_value(headers, body) else {
        return Ok(Vec::new());
    };
    let rt = target.rt;
    if obj["apiVersion"] != rt.api_version().as_str() || obj["kind"] != rt.kind {
        return Ok(Vec::new());
    }
    let checked = field_validation(target, query, &mut obj, None)?;
    if checked.rewritten {
        *body = Bytes::from(serde_json::to_vec(&obj).unwrap_or_default());
        headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
    }
    Ok(checked.warnings)
}

/// The request's `fieldValidation` applied to `obj`, patched from `before` or written whole
/// (see `openapi::check_fields`). A custom resource's unknown fields are those its version's
/// schema prunes.
fn field_validation(
    target: &Target,
    query: &Query,
    obj: &mut Value,
    before: Option<&Value>,
) -> Result<crate::openapi::FieldCheck, KubeError> {
    let rt = target.rt;
    if let Some(schema) = target.custom.as_ref().and_then(|c| c.schema.as_ref()) {
        let mut pruned = obj.clone();
        schema.prune(&mut pruned);
        let had = before
            .map(|b| {
                let mut p = b.clone();
                schema.prune(&mut p);
                dropped_paths(b, &p, "")
            })
            .unwrap_or_default();
        let dropped: Vec<String> = dropped_paths(obj, &pruned, "")
            .into_iter()
            .filter(|p| !had.contains(p))
            .collect();
        if dropped.is_empty() {
            return Ok(crate::openapi::FieldCheck::default());
        }
        let checked = crate::openapi::apply_directive(
            rt.kind,
            rt.version,
            query.get("fieldValidation"),
            dropped,
            before.is_some(),
        )
        .map_err(KubeError::BadRequest)?;
        *obj = pruned;
        return Ok(checked);
    }
    crate::openapi::check_fields(
        rt.group,
        rt.version,
        rt.kind,
        query.get("fieldValidation"),
        obj,
        before,
    )
    .map_err(KubeError::BadRequest)
}

/// The paths (`spec.foo`, `spec.items[0].x`) of what `before` has and `after` lost.
fn dropped_paths(before: &Value, after: &Value, prefix: &str) -> Vec<String> {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => b
            .iter()
            // A null the schema does not allow is dropped too, but it is no unknown field.
            .filter(|(_, v)| !v.is_null())
            .flat_map(|(k, v)| match a.get(k) {
                None => vec![join(k)],
                Some(kept) => dropped_paths(v, kept, &join(k)),
            })
            .collect(),
        (Value::Array(b), Value::Array(a)) => b
            .iter()
            .zip(a)
            .enumerate()
            .flat_map(|(i, (v, kept))| dropped_paths(v, kept, &format!("{prefix}[{i}]")))
            .collect(),
        _ => Vec::new(),
    }
}

/// A response with a `Warning` header per warning.
fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for w in warnings {
        if let Ok(v) = header::HeaderValue::from_str(&crate::openapi::warning_header(w)) {
            response.headers_mut().append(header::WARNING, v);
        }
    }
    response
}

async fn dispatch(
    api: &Arc<Api>,
    method: &Method,
    target: &Target,
    query: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, KubeError> {
    let rt = target.rt;
    let sub = target.subresource.as_deref();
    if target.name.is_none()
        && rt.namespaced
        && target.namespace.is_none()
        && *method != Method::GET
    {
        return Err(KubeError::MethodNotAllowed(format!(
            "{} must be created, changed or deleted within a namespace",
            rt.qualified()
        )));
    }
    match (method.clone(), target.name.as_deref(), sub) {
        (Method::GET, None, _) if query.flag("watch") => {
            check_list_options(query, true)?;
            watch::serve(api, target, query, headers)
        }
        (Method::GET, None, _) => {
            check_list_options(query, false)?;
            list(api, target, query, headers)
        }
        (Method::GET, Some(name), None | Some("status")) => {
            let obj = api.objects.get(rt, namespace(target), name)?;
            Ok(if wants_table(headers) {
                let meta = json!({"resourceVersion": resource_version_of(&obj)});
                json_typed(
                    StatusCode::OK,
                    &table(target, &[obj], meta),
                    TABLE_CONTENT_TYPE,
                )
            } else {
                json_response(StatusCode::OK, &obj)
            })
        }
        (Method::GET, Some(name), Some("scale")) => {
            let obj = api.objects.get(rt, namespace(target), name)?;
            Ok(json_response(StatusCode::OK, &scale_of(target, &obj)?))
        }
        (Method::GET, Some(name), Some("log")) => {
            crate::pods::logs(api, namespace(target), name, query).await
        }
        // Upgrades are routed to `remotecommand`; anything else is refused.
        (_, Some(_), Some("exec" | "attach" | "portforward")) => {
            Err(KubeError::BadRequest("Upgrade request required".into()))
        }
        (Method::POST, None, None) => {
            let mut value = body_value(headers, body)?;
            let manager = manager_of(query, headers);
            field_manager::record_update(
                None,
                &mut value,
                schema_of(target),
                write_scope(target, None),
                ownership(&rt.api_version(), &manager, None),
            );
            if dry_run(query) {
                // Validated, defaulted and admitted, but not written.
                let preview = api.objects.preview_create(rt, namespace(target), value)?;
                return Ok(json_response(StatusCode::CREATED, &preview));
            }
            let created = api.objects.create(rt, namespace(target), value)?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        (Method::POST, Some(name), Some("token")) if rt.resource == "serviceaccounts" => {
            let mut value = checked_body(
                headers,
                body,
                ("authentication.k8s.io", "v1", "TokenRequest"),
            )?;
            api.objects.admit_subresource_create(
                rt,
                namespace(target),
                name,
                "token",
                "authentication.k8s.io/v1/TokenRequest",
                &mut value,
                dry_run(query),
            )?;
            let answered = localfargate_registry::service_accounts::token_request(
                &api.objects,
                api.info.service_accounts.as_deref(),
                namespace(target),
                name,
                value,
                crate::authn::API_AUDIENCE,
            )?;
            Ok(json_response(StatusCode::CREATED, &answered))
        }
        (Method::POST, Some(name), Some("binding")) => {
            let mut value = checked_body(headers, body, ("", "v1", "Binding"))?;
            // Webhooks that take `pods/binding` CREATE see (and may refuse) it first.
            api.objects.admit_subresource_create(
                rt,
                namespace(target),
                name,
                "binding",
                "v1/Binding",
                &mut value,
                dry_run(query),
            )?;
            bind(api, namespace(target), name, &value, dry_run(query))
        }
        (Method::POST, Some(name), Some("eviction")) => {
            let mut value = checked_body(headers, body, ("policy", "v1", "Eviction"))?;
            let dry = dry_run(query) || dry_run_all(eviction_options(&value)?.as_ref());
            api.objects.admit_subresource_create(
                rt,
                namespace(target),
                name,
                "eviction",
                "policy/v1/Eviction",
                &mut value,
                dry,
            )?;
            let opts = delete_options(eviction_options(&value)?.as_ref(), query)?;
            localfargate_registry::disruption::evict(
                &api.objects,
                namespace(target),
                name,
                &opts,
                dry,
            )?;
            Ok(json_response(
                StatusCode::CREATED,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
            ))
        }
        (Method::PUT, Some(name), None | Some("status")) => {
            let mut value = body_value(headers, body)?;
            // The owners are taken from the object this replaces; a write racing this one
            // is caught by the update's resourceVersion precondition, as kubectl sends it.
            if let Ok(current) = api.objects.get(rt, namespace(target), name) {
                let manager = manager_of(query, headers);
                field_manager::record_update(
                    Some(&current),
                    &mut value,
                    schema_of(target),
                    write_scope(target, sub),
                    ownership(&rt.api_version(), &manager, sub),
                );
            }
            let updated = api.objects.update(
                rt,
                namespace(target),
                name,
                value,
                sub == Some("status"),
                dry_run(query),
            )?;
            Ok(json_response(StatusCode::OK, &updated))
        }
        (Method::PUT, Some(name), Some("scale")) => {
            let value = body_value(headers, body)?;
            let manager = manager_of(query, headers);
            set_scale(api, target, name, dry_run(query), &manager, &mut |_| {
                Ok(value.clone())
            })
        }
        (Method::PATCH, Some(name), sub) => patch(api, target, name, sub, query, headers, body),
        (Method::DELETE, Some(name), None) => {
            let value = if body.is_empty() {
                Value::Null
            } else {
                body_value(headers, body)?
            };
            let options = typed_delete_options(&value)?;
            let opts = delete_options(options.as_ref(), query)?;
            let dry = dry_run(query) || dry_run_all(options.as_ref());
            if dry {
                return Ok(json_response(
                    StatusCode::OK,
                    &api.objects.preview_delete(rt, namespace(target), name)?,
                ));
            }
            match api.objects.delete(rt, namespace(target), name, &opts)? {
                Deleted::Gone(v) | Deleted::Pending(v) => Ok(json_response(StatusCode::OK, &v)),
            }
        }
        (Method::DELETE, None, None) => delete_collection(api, target, query, headers, body),
        _ => Err(KubeError::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource ({} {})",
            method,
            rt.qualified()
        ))),
    }
}

/// `componentstatuses`: get and list, answered from the components' health.
fn component_statuses(
    method: &Method,
    target: &Target,
    headers: &HeaderMap,
) -> Result<Response, KubeError> {
    use localfargate_registry::component_status;
    if *method != Method::GET {
        return Err(KubeError::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource ({method} {})",
            target.rt.qualified()
        )));
    }
    let items = match &target.name {
        Some(name) => {
            vec![component_status::get(name).ok_or_else(|| KubeError::not_found(target.rt, name))?]
        }
        None => component_status::all(),
    };
    let meta = json!({});
    if wants_table(headers) {
        return Ok(json_typed(
            StatusCode::OK,
            &table(target, &items, meta),
            TABLE_CONTENT_TYPE,
        ));
    }
    Ok(json_response(
        StatusCode::OK,
        &match &target.name {
            Some(_) => items.into_iter().next().unwrap_or_default(),
            None => {
                json!({"kind": "ComponentStatusList", "apiVersion": "v1", "metadata": meta, "items": items})
            }
        },
    ))
}

fn dry_run(query: &Query) -> bool {
    query.get("dryRun").is_some_and(|v| v == "All")
}

/// `ListOptions` checked as kube-apiserver's `ValidateListOptions` does, with its messages: the
/// WatchList parameters (`sendInitialEvents` needs `resourceVersionMatch=NotOlderThan` and
/// bookmarks) and `resourceVersionMatch`'s combinations.
fn check_list_options(query: &Query, watch: bool) -> Result<(), KubeError> {
    let mut errors: Vec<(&str, String)> = Vec::new();
    let matching = query.get("resourceVersionMatch").unwrap_or("");
    let version = query.get("resourceVersion").unwrap_or("");
    let send_initial = query.optional_flag("sendInitialEvents");
    if !matches!(matching, "" | "Exact" | "NotOlderThan") {
        errors.push((
            "resourceVersionMatch",
            format!(
                "Unsupported value: \"{matching}\": supported values: \"Exact\", \"NotOlderThan\", \"\""
            ),
        ));
    }
    if watch {
        if let Some(send) = send_initial {
            if matching != "NotOlderThan" {
                errors.push((
                    "resourceVersionMatch",
                    "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan".into(),
                ));
            }
            if send && !query.flag("allowWatchBookmarks") {
                errors.push((
                    "allowWatchBookmarks",
                    "Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true"
                        .into(),
                ));
            }
        } else if !matching.is_empty() {
            errors.push((
                "resourceVersionMatch",
                "Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided".into(),
            ));
        }
    } else {
        if send_initial.is_some() {
            errors.push((
                "sendInitialEvents",
                "Forbidden: sendInitialEvents is forbidden for list".into(),
            ));
        }
        if !matching.is_empty() {
            if version.is_empty() {
                errors.push((
                    "resourceVersionMatch",
                    "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
                        .into(),
                ));
            }
            if query.get("continue").is_some_and(|c| !c.is_empty()) {
                errors.push((
                    "resourceVersionMatch",
                    "Forbidden: resourceVersionMatch is forbidden when continue is provided".into(),
                ));
            }
            if matching == "Exact" && version == "0" {
                errors.push((
                    "resourceVersionMatch",
                    "Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""
                        .into(),
                ));
            }
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    let text: Vec<String> = errors.iter().map(|(f, d)| format!("{f}: {d}")).collect();
    let message = if text.len() == 1 {
        format!("ListOptions.meta.k8s.io \"\" is invalid: {}", text[0])
    } else {
        format!(
            "ListOptions.meta.k8s.io \"\" is invalid: [{}]",
            text.join(", ")
        )
    };
    Err(KubeError::Invalid {
        message,
        kind: "ListOptions.meta.k8s.io".into(),
        name: String::new(),
        causes: errors
            .iter()
            .map(|(f, d)| {
                let reason = if d.starts_with("Unsupported") {
                    "FieldValueNotSupported"
                } else {
                    "FieldValueForbidden"
                };
                json!({"reason": reason, "message": d, "field": f})
            })
            .collect(),
    })
}

/// A `continue` token: the list's revision and the last key returned.
fn encode_continue(revision: u64, key: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"rv": revision, "start": key}).to_string())
}

fn decode_continue(token: &str) -> Result<(u64, String), KubeError> {
    use base64::Engine;
    let bad = || KubeError::BadRequest("continue key is not valid: illegal base64 data".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok((
        v["rv"].as_u64().ok_or_else(bad)?,
        v["start"].as_str().ok_or_else(bad)?.to_string(),
    ))
}

fn list(
    api: &Arc<Api>,
    target: &Target,
    query: &Query,
    headers: &HeaderMap,
) -> Result<Response, KubeError> {
    let rt = target.rt;
    let (labels, fields) = selectors(rt, query)?;
    let limit = match query.get("limit") {
        None | Some("") => 0,
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| KubeError::BadRequest(format!("invalid limit {l:?}")))?,
    };
    let (stored, revision) = api.objects.list(rt, target.namespace.as_deref())?;
    // The store lists its current state: `NotOlderThan` any revision up to it is served by it,
    // and so is `Exact` at it; an exact list of an earlier state is history this store does not
    // keep for lists, which upstream answers as a compacted revision.
    if query.get("resourceVersionMatch") == Some("Exact")
        && let Some(requested) = query
            .get("resourceVersion")
            .and_then(|v| v.parse::<u64>().ok())
        && requested != revision
    {
        return Err(if requested < revision {
            KubeError::Expired(format!(
                "too old resource version: {requested} ({revision})"
            ))
        } else {
            KubeError::Timeout(format!(
                "Too large resource version: {requested}, current: {revision}"
            ))
        });
    }
    let (list_revision, start) = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (rv, key) = decode_continue(token)?;
            // The changes since the first page are compacted away: as upstream, 410 with a
            // token that continues (inconsistently) from now.
            let oldest = api.objects.store.oldest_watchable()?;
            if rv.saturating_add(1) < oldest {
                return Err(KubeError::ExpiredContinue {
                    message: "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.".into(),
                    continue_token: encode_continue(revision, &key),
                });
            }
            (rv, Some(key))
        }
        None => (revision, None),
    };
    let mut items = Vec::new();
    let mut next = None;
    for o in stored
        .into_iter()
        .filter(|o| start.as_deref().is_none_or(|s| o.key.as_str() > s))
    {
        // Cheap checks on the stored value first; the selected objects are taken, not copied.
        if !selected(&labels, &fields, &o.value) {
            continue;
        }
        if limit > 0 && items.len() == limit {
            next = items.last().map(|(k, _): &(String, Value)| k.clone());
            break;
        }
        items.push((o.key.clone(), into_resource_version(o)));
    }
    let mut meta = json!({"resourceVersion": list_revision.to_string()});
    if let Some(key) = next {
        meta["continue"] = json!(encode_continue(list_revision, &key));
    }
    // As the request's version shows them (a conversion webhook converts them in one review).
    let items = api
        .objects
        .present_all(rt, items.into_iter().map(|(_, v)| v).collect())?;
    if wants_table(headers) {
        return Ok(json_typed(
            StatusCode::OK,
            &table(target, &items, meta),
            TABLE_CONTENT_TYPE,
        ));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", rt.kind),
            "apiVersion": rt.api_version(),
            "metadata": meta,
            "items": items,
        }),
    ))
}

/// A request's `DeleteOptions` body (`None` when there is none), decoded.
fn typed_delete_options(v: &Value) -> Result<Option<K8sDeleteOptions>, KubeError> {
    Option::<K8sDeleteOptions>::deserialize(v)
        .map_err(|e| KubeError::BadRequest(format!("invalid DeleteOptions: {e}")))
}

/// An Eviction's `deleteOptions`, decoded; the Eviction itself is not (clients post it in
/// `policy/v1` and `policy/v1beta1`).
fn eviction_options(v: &Value) -> Result<Option<K8sDeleteOptions>, KubeError> {
    #[derive(Deserialize)]
    struct EvictionBody {
        #[serde(rename = "deleteOptions", default)]
        delete_options: Option<K8sDeleteOptions>,
    }
    EvictionBody::deserialize(v)
        .map(|e| e.delete_options)
        .map_err(|e| KubeError::BadRequest(format!("invalid Eviction: {e}")))
}

/// `dryRun: ["All"]` in the options.
fn dry_run_all(options: Option<&K8sDeleteOptions>) -> bool {
    options
        .and_then(|o| o.dry_run.as_deref())
        .is_some_and(|d| d.iter().any(|v| v == "All"))
}

fn delete_options(
    options: Option<&K8sDeleteOptions>,
    query: &Query,
) -> Result<DeleteOptions, KubeError> {
    let preconditions = options.and_then(|o| o.preconditions.as_ref());
    let propagation = query
        .get("propagationPolicy")
        .or_else(|| options.and_then(|o| o.propagation_policy.as_deref()))
        .map(|p| match p {
            "Background" => Ok(Propagation::Background),
            "Foreground" => Ok(Propagation::Foreground),
            "Orphan" => Ok(Propagation::Orphan),
            other => Err(KubeError::BadRequest(format!(
                "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            ))),
        })
        .transpose()?;
    let propagation = match (propagation, options.and_then(|o| o.orphan_dependents)) {
        (None, Some(true)) => Some(Propagation::Orphan),
        (p, _) => p,
    };
    let grace = match query.get("gracePeriodSeconds") {
        Some(g) => Some(
            g.parse::<i64>()
                .map_err(|_| KubeError::BadRequest(format!("invalid gracePeriodSeconds {g:?}")))?,
        ),
        None => options.and_then(|o| o.grace_period_seconds),
    };
    Ok(DeleteOptions {
        propagation,
        grace_period_seconds: grace,
        precondition_uid: preconditions.and_then(|p| p.uid.clone()),
        precondition_resource_version: preconditions.and_then(|p| p.resource_version.clone()),
    })
}

fn delete_collection(
    api: &Arc<Api>,
    target: &Target,
    query: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, KubeError> {
    let rt = target.rt;
    let (labels, fields) = selectors(rt, query)?;
    let value = if body.is_empty() {
        Value::Null
    } else {
        body_value(headers, body)?
    };
    let opts = delete_options(typed_delete_options(&value)?.as_ref(), query)?;
    let (stored, revision) = api.objects.list(rt, target.namespace.as_deref())?;
    let mut items = Vec::new();
    for o in stored
        .iter()
        .filter(|o| selected(&labels, &fields, &o.value))
    {
        let ns = objects::namespace_of(&o.value).to_string();
        match api.objects.delete(rt, &ns, name_of(&o.value), &opts) {
            Ok(Deleted::Gone(v) | Deleted::Pending(v)) => items.push(v),
            Err(KubeError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
                "metadata": {"resourceVersion": revision.to_string()}, "items": items}),
    ))
}

fn patch_error(e: PatchError) -> KubeError {
    match e {
        PatchError::Malformed(m) => KubeError::BadRequest(m),
        PatchError::Unprocessable(m) => KubeError::Invalid {
            message: m,
            kind: String::new(),
            name: String::new(),
            causes: Vec::new(),
        },
    }
}

/// Apply a non-apply patch body of the request's content type to `current` (and, for the
/// `scale` subresource, an apply body too: a Scale has no owners of its own to keep).
fn apply_patch_body(
    target: &Target,
    content_type: &str,
    current: &Value,
    body: &Bytes,
) -> Result<Value, KubeError> {
    let rt = target.rt;
    let base = content_type.split(';').next().unwrap_or("").trim();
    let api_version = rt.api_version();
    let out = match base {
        "application/json-patch+json" => patch::json_patch(current, body),
        "application/merge-patch+json" => patch::merge_patch(current, body),
        "application/strategic-merge-patch+json" if !rt.custom => {
            patch::strategic_merge_patch(current, body, &api_version, rt.kind)
        }
        _ if is_apply(base) => {
            let intent = apply_intent(body)?;
            patch::merge_patch(current, &serde_json::to_vec(&intent).unwrap_or_default())
        }
        _ => {
            return Err(KubeError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted_patch_types(target)
            )));
        }
    };
    out.map_err(patch_error)
}

fn patch(
    api: &Arc<Api>,
    target: &Target,
    name: &str,
    sub: Option<&str>,
    query: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, KubeError> {
    let rt = target.rt;
    let ns = namespace(target);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let manager = manager_of(query, headers);
    let api_version = rt.api_version();
    if sub == Some("scale") {
        return set_scale(api, target, name, dry_run(query), &manager, &mut |scale| {
            apply_patch_body(target, &content_type, scale, body)
        });
    }
    if !matches!(sub, None | Some("status")) {
        return Err(KubeError::MethodNotAllowed(format!(
            "{}/{} cannot be patched",
            rt.resource,
            sub.unwrap_or("")
        )));
    }
    let server_side = is_apply(&content_type);
    check_patch_options(query, server_side)?;
    let schema = schema_of(target);
    let scope = write_scope(target, sub);
    let force = query.flag("force");
    let intent = if server_side {
        let intent = apply_intent(body)?;
        check_apply_fields(target, &intent)?;
        Some(intent)
    } else {
        None
    };
    // Server-side apply creates what does not exist yet.
    if let Some(intent) = &intent
        && api.objects.get_object(rt, ns, name)?.is_none()
    {
        let mut obj = field_manager::apply(
            None,
            intent,
            schema,
            scope,
            force,
            ownership(&api_version, &manager, sub),
        )
        .map_err(apply_error)?;
        crate::openapi::reencode_values(rt.group, rt.version, rt.kind, &mut obj)
            .map_err(KubeError::BadRequest)?;
        if name_of(&obj) != name {
            return Err(KubeError::BadRequest(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                name_of(&obj)
            )));
        }
        if dry_run(query) {
            let preview = api.objects.preview_create(rt, ns, obj)?;
            return Ok(json_response(StatusCode::CREATED, &preview));
        }
        let created = api.objects.create(rt, ns, obj)?;
        return Ok(json_response(StatusCode::CREATED, &created));
    }
    let mut warnings = Vec::new();
    let updated = api.objects.update_or_preview(
        rt,
        ns,
        name,
        sub == Some("status"),
        None,
        dry_run(query),
        &mut |current| {
            let req = ownership(&api_version, &manager, sub);
            let new = match &intent {
                Some(intent) => {
                    let mut new =
                        field_manager::apply(Some(current), intent, schema, scope, force, req)
                            .map_err(apply_error)?;
                    crate::openapi::reencode_values(rt.group, rt.version, rt.kind, &mut new)
                        .map_err(KubeError::BadRequest)?;
                    new
                }
                None => {
                    let mut new = apply_patch_body(target, &content_type, current, body)?;
                    warnings = field_validation(target, query, &mut new, Some(current))?.warnings;
                    field_manager::record_update(Some(current), &mut new, schema, scope, req);
                    new
                }
            };
            // A resourceVersion in the patch is a precondition.
            if let Some(rv) = resource_version_of(&new)
                && Some(rv) != resource_version_of(current)
            {
                return Err(KubeError::conflict(rt, name));
            }
            Ok(new)
        },
    )?;
    Ok(with_warnings(
        json_response(StatusCode::OK, &updated),
        &warnings,
    ))
}

/// The `autoscaling/v1 Scale` view of a workload.
/// What a simple JSONPath of a scale subresource (`.spec.replicas`) names in `obj`.
fn at_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.')
        .split('.')
        .try_fold(obj, |v, field| v.get(field))
}

fn set_at_path(obj: &mut Value, path: &str, value: Value) {
    let mut at = obj;
    for field in path.trim_start_matches('.').split('.') {
        if !at.is_object() {
            *at = json!({});
        }
        at = &mut at[field];
    }
    *at = value;
}

/// A built-in scalable kind's `spec.replicas`, `status.replicas` and selector (as upstream
/// prints it, matchExpressions included: `app=web,tier in (a,b)`).
fn builtin_scale(kind: &str, obj: &Value) -> Result<(Option<i32>, Option<i32>, String), KubeError> {
    fn printed(selector: Result<LabelSelector, SelectorError>) -> String {
        selector.map(|s| s.to_string()).unwrap_or_default()
    }
    fn of_selector(selector: &k8s_meta::LabelSelector) -> String {
        printed(LabelSelector::from_typed(selector))
    }
    Ok(match kind {
        "Deployment" => {
            let d: Deployment = typed::decode(obj)?;
            let spec = d.spec.as_ref();
            (
                spec.and_then(|s| s.replicas),
                d.status.as_ref().and_then(|s| s.replicas),
                spec.map(|s| of_selector(&s.selector)).unwrap_or_default(),
            )
        }
        "ReplicaSet" => {
            let rs: ReplicaSet = typed::decode(obj)?;
            let spec = rs.spec.as_ref();
            (
                spec.and_then(|s| s.replicas),
                rs.status.as_ref().map(|s| s.replicas),
                spec.map(|s| of_selector(&s.selector)).unwrap_or_default(),
            )
        }
        "StatefulSet" => {
            let ss: StatefulSet = typed::decode(obj)?;
            let spec = ss.spec.as_ref();
            (
                spec.and_then(|s| s.replicas),
                ss.status.as_ref().map(|s| s.replicas),
                spec.map(|s| of_selector(&s.selector)).unwrap_or_default(),
            )
        }
        "ReplicationController" => {
            let rc: ReplicationController = typed::decode(obj)?;
            let spec = rc.spec.as_ref();
            // Its selector is a map of labels, not a LabelSelector.
            let labels = spec.and_then(|s| s.selector.clone()).unwrap_or_default();
            (
                spec.and_then(|s| s.replicas),
                rc.status.as_ref().map(|s| s.replicas),
                printed(LabelSelector::from_json(&json!({ "matchLabels": labels }))),
            )
        }
        _ => (None, None, String::new()),
    })
}

/// `autoscaling/v1 Scale` of an object: from `spec.replicas`, `status.replicas` and the
/// selector for the built-in kinds, from its definition's paths for a custom resource.
fn scale_of(target: &Target, obj: &Value) -> Result<Value, KubeError> {
    let (spec_replicas, status_replicas, selector) =
        match target.custom.as_ref().and_then(|c| c.scale.as_ref()) {
            // A custom resource's body has no type: its definition's JSON paths.
            Some(paths) => {
                let replicas = |path: &str| {
                    at_path(obj, path)
                        .and_then(Value::as_i64)
                        .and_then(|n| i32::try_from(n).ok())
                };
                (
                    replicas(&paths.spec_replicas),
                    replicas(&paths.status_replicas),
                    paths
                        .label_selector
                        .as_deref()
                        .and_then(|p| at_path(obj, p))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                )
            }
            None => builtin_scale(target.rt.kind, obj)?,
        };
    let status = ScaleStatus {
        replicas: status_replicas.unwrap_or(0),
        selector: (!selector.is_empty() || target.custom.is_none()).then_some(selector),
    };
    let spec = ScaleSpec {
        replicas: Some(spec_replicas.unwrap_or(0)),
    };
    let from = ObjectMeta::of(obj);
    let mut metadata = ObjectMeta::default();
    for field in [
        Field::Name,
        Field::Namespace,
        Field::Uid,
        Field::ResourceVersion,
        Field::CreationTimestamp,
    ] {
        metadata.carry(field, &from);
    }
    let mut body = serde_json::Map::new();
    body.insert("spec".into(), typed::to_json(&spec)?);
    body.insert("status".into(), typed::to_json(&status)?);
    Ok(DynamicObject {
        api_version: Some("autoscaling/v1".into()),
        kind: Some("Scale".into()),
        metadata,
        body,
    }
    .into_value())
}

fn set_scale(
    api: &Arc<Api>,
    target: &Target,
    name: &str,
    dry_run: bool,
    manager: &str,
    f: &mut dyn FnMut(&Value) -> Result<Value, KubeError>,
) -> Result<Response, KubeError> {
    let rt = target.rt;
    let api_version = rt.api_version();
    let updated =
        api.objects
            .update_through_scale(rt, namespace(target), name, dry_run, &mut |current| {
                let old_scale = scale_of(target, current)?;
                let mut scale = f(&old_scale)?;
                // Admitted as upstream admits it: `<resource>/scale` with the Scale objects.
                api.objects.admit_subresource_update(
                    rt,
                    namespace(target),
                    name,
                    "scale",
                    "autoscaling/v1/Scale",
                    &mut scale,
                    &old_scale,
                    dry_run,
                )?;
                let replicas = Scale::deserialize(&scale)
                    .ok()
                    .and_then(|s| s.spec?.replicas)
                    .ok_or_else(|| {
                        KubeError::invalid(rt, name, "spec.replicas", "Required value")
                    })?;
                if replicas < 0 {
                    return Err(KubeError::invalid(
                        rt,
                        name,
                        "spec.replicas",
                        &format!("Invalid value: {replicas}: must be greater than or equal to 0"),
                    ));
                }
                let mut new = current.clone();
                // One field written into the stored JSON, where the kind keeps its replicas.
                let path = match target.custom.as_ref().and_then(|c| c.scale.as_ref()) {
                    Some(paths) => paths.spec_replicas.as_str(),
                    None => ".spec.replicas",
                };
                set_at_path(&mut new, path, json!(replicas));
                // The replicas belong to the scale writer, recorded on the object as upstream's
                // scale handler does (an entry with `subresource: scale`).
                field_manager::record_update(
                    Some(current),
                    &mut new,
                    schema_of(target),
                    write_scope(target, None),
                    ownership(&api_version, manager, Some("scale")),
                );
                Ok(new)
            })?;
    Ok(json_response(StatusCode::OK, &scale_of(target, &updated)?))
}

/// `pods/binding`: what a scheduler posts to put a pod on a node.
fn bind(
    api: &Arc<Api>,
    ns: &str,
    name: &str,
    binding: &Value,
    dry_run: bool,
) -> Result<Response, KubeError> {
    let binding = Binding::deserialize(binding)
        .map_err(|e| KubeError::BadRequest(format!("invalid Binding: {e}")))?;
    let node = binding
        .target
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| KubeError::BadRequest("binding target name is required".into()))?;
    if !dry_run {
        localfargate_registry::binding::bind(&api.objects, ns, name, &node)?;
    }
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::parse_target;
    use localfargate_registry::custom::Catalog;

    #[test]
    fn a_scale_shows_the_whole_selector() {
        let deployment = json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 3, "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}],
            }},
            "status": {"replicas": 2},
        });
        let target = parse_target(
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
            &Catalog::default(),
        )
        .unwrap();
        let scale = scale_of(&target, &deployment).unwrap();
        assert_eq!(scale["status"]["selector"], "app=web,tier in (a,b)");
        assert_eq!(scale["spec"]["replicas"], 3);
        assert_eq!(scale["status"]["replicas"], 2);
    }

    #[test]
    fn a_replication_controllers_scale_shows_its_label_selector() {
        let rc = json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 2, "selector": {"app": "web", "tier": "a"}},
            "status": {"replicas": 2},
        });
        let target = parse_target(
            "/api/v1/namespaces/default/replicationcontrollers/web/scale",
            &Catalog::default(),
        )
        .unwrap();
        let scale = scale_of(&target, &rc).unwrap();
        assert_eq!(scale["status"]["selector"], "app=web,tier=a");
    }

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, "core/pods/default/p2");
        assert_eq!(
            decode_continue(&t).unwrap(),
            (42, "core/pods/default/p2".into())
        );
        assert_eq!(decode_continue("!!").unwrap_err().code(), 400);
    }

    #[test]
    fn a_continue_past_compaction_is_410_with_a_fresh_token() {
        let e = KubeError::ExpiredContinue {
            message: "The provided continue parameter is too old".into(),
            continue_token: encode_continue(7, "core/pods/default/p"),
        };
        let status = e.status();
        assert_eq!(status["code"], 410);
        assert_eq!(status["reason"], "Expired");
        assert_eq!(
            decode_continue(status["metadata"]["continue"].as_str().unwrap()).unwrap(),
            (7, "core/pods/default/p".into())
        );
    }
}
