//! `x-kubernetes-list-type: set` and `map` uniqueness (apiextensions-apiserver
//! `schema/listtype`), checked after schema validation.

use std::collections::HashMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use localfargate_core::validation::FieldError;
use serde_json::{Map, Value};

use super::prune::{additional, items};
use super::report::{duplicate, invalid};

/// `field.Path.Child` and `.Key` as strings.
pub(crate) fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

pub(crate) fn key(path: &str, name: &str) -> String {
    format!("{path}[{name}]")
}

/// `ValidateListSetsAndMaps`: duplicates in set lists and duplicate keys in map lists, anywhere
/// in `obj` (an object at `path`, `""` for the resource).
pub(crate) fn list_errors(obj: &Value, s: &JSONSchemaProps, path: &str) -> Vec<FieldError> {
    match obj {
        Value::Object(map) => object(map, s, path),
        Value::Array(list) => array(list, s, path),
        _ => Vec::new(),
    }
}

fn object(map: &Map<String, Value>, s: &JSONSchemaProps, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(extra) = additional(s) {
        for (k, v) in map {
            errs.extend(list_errors(v, extra, &key(path, k)));
        }
    }
    if let Some(props) = &s.properties {
        for (k, v) in map {
            if let Some(sub) = props.get(k) {
                errs.extend(list_errors(v, sub, &child(path, k)));
            }
        }
    }
    errs
}

fn array(list: &[Value], s: &JSONSchemaProps, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match s.x_kubernetes_list_type.as_deref() {
        Some("set") => {
            for i in non_unique(list) {
                errs.push(duplicate(&format!("{path}[{i}]"), &list[i]));
            }
        }
        Some("map") => errs.extend(list_map(list, s, path)),
        _ => {}
    }
    if let Some(item) = items(s) {
        for (i, v) in list.iter().enumerate() {
            errs.extend(list_errors(v, item, &format!("{path}[{i}]")));
        }
    }
    errs
}

/// The identity of an element as Go's set check sees it: scalars by type and value, compound
/// values by their JSON encoding.
fn identity(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => format!("f:{n}"),
        Value::Number(n) => format!("i:{n}"),
        other => format!("j:{other}"),
    }
}

/// The indexes of the second appearance of each repeated element.
fn non_unique(list: &[Value]) -> Vec<usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let times = seen.entry(identity(v)).or_insert(0);
        *times += 1;
        if *times == 2 {
            out.push(i);
        }
    }
    out
}

fn list_map(list: &[Value], s: &JSONSchemaProps, path: &str) -> Vec<FieldError> {
    for (i, x) in list.iter().enumerate() {
        if !x.is_null() && !x.is_object() {
            return vec![invalid(
                &format!("{path}[{i}]"),
                x,
                "must be an object for an array of list-type map",
            )];
        }
    }
    if list.len() <= 1 {
        return Vec::new();
    }
    let key_fields: &[String] = s.x_kubernetes_list_map_keys.as_deref().unwrap_or(&[]);
    // Each element's key: the key fields it has (an absent field, or a null element, is
    // "unspecified", which equals only another unspecified key).
    let keys: Vec<Value> = list
        .iter()
        .map(|x| {
            let mut key = Map::new();
            if let Some(obj) = x.as_object() {
                for f in key_fields {
                    if let Some(v) = obj.get(f) {
                        key.insert(f.clone(), v.clone());
                    }
                }
            }
            Value::Object(key)
        })
        .collect();
    let identities: Vec<Value> = if key_fields.len() == 1 {
        // One key: compared as a scalar (`unspecifiedKeyValue` for an absent one).
        keys.iter()
            .map(|k| match k.get(&key_fields[0]) {
                Some(v) => Value::String(identity(v)),
                None => Value::String("unspecified".to_string()),
            })
            .collect()
    } else {
        keys.clone()
    };
    non_unique(&identities)
        .into_iter()
        .map(|i| duplicate(&format!("{path}[{i}]"), &keys[i]))
        .collect()
}
