//! How answers are written: JSON bodies, Status bodies as kube-apiserver writes them, and
//! server-side Tables (`kubectl get`) with each resource's printer columns.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use localfargate_registry::objects::KubeError;
use serde_json::{Value, json};

use crate::request::Target;
use crate::table;
use localfargate_registry::meta::metadata_of;

pub fn json_response(code: StatusCode, body: &Value) -> Response {
    json_typed(code, body, "application/json")
}

pub fn json_typed(code: StatusCode, body: &Value, content_type: &str) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (
        code,
        [(header::CONTENT_TYPE, content_type.to_string())],
        bytes,
    )
        .into_response()
}

pub fn error_response(e: &KubeError) -> Response {
    let code = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    status_response(code, &e.status())
}

/// A Status, written as kube-apiserver writes it (Go's field order, a trailing newline).
pub fn status_response(code: StatusCode, status: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json".to_string())],
        crate::status_body::encode(status),
    )
        .into_response()
}

pub const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// Whether the client asked for a server-side Table (`kubectl get`).
pub fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.split(',').any(|alt| {
                let p: Vec<&str> = alt.split(';').map(str::trim).collect();
                p.contains(&"as=Table") && p.contains(&"g=meta.k8s.io")
            })
        })
}

/// One row of a Table, with the metadata kubectl decorates it from.
pub fn table_row(target: &Target, object: &Value, now: jiff::Timestamp) -> Value {
    let rt = target.rt;
    let cells = match &target.custom {
        Some(custom) => table::custom::cells(&custom.columns, object, now),
        None => table::cells(rt.group, rt.resource, object, now),
    };
    json!({
        "cells": cells,
        "object": {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata_of(object),
        },
    })
}

pub fn table(target: &Target, objects: &[Value], meta: Value) -> Value {
    let now = jiff::Timestamp::now();
    let rt = target.rt;
    let columns = match &target.custom {
        Some(custom) => table::custom::columns(&custom.columns),
        None => table::columns(rt.group, rt.resource),
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns,
        "rows": objects.iter().map(|o| table_row(target, o, now)).collect::<Vec<_>>(),
    })
}

/// A `metav1.Status` failure, as the API server sends it.
pub fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    status_response(code, &body)
}
