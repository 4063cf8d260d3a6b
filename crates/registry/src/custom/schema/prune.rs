//! Pruning, null removal and defaulting over a structural schema, as apiextensions-apiserver's
//! `schema/pruning` and `schema/defaulting` packages do them.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

/// The fields every resource keeps whatever its schema says (`apiVersion`, `kind`, `metadata`).
const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

fn properties(s: &JSONSchemaProps) -> Option<&BTreeMap<String, JSONSchemaProps>> {
    s.properties.as_ref()
}

pub(crate) fn additional(s: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match &s.additional_properties {
        Some(JSONSchemaPropsOrBool::Schema(extra)) => Some(extra),
        _ => None,
    }
}

/// Whether `additionalProperties` is set at all (`true`, `false` or a schema): upstream's
/// structural schema then keeps every key.
fn has_additional(s: &JSONSchemaProps) -> bool {
    s.additional_properties.is_some()
}

pub(crate) fn items(s: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match &s.items {
        Some(JSONSchemaPropsOrArray::Schema(item)) => Some(item),
        _ => None,
    }
}

fn preserves_unknown(s: &JSONSchemaProps) -> bool {
    s.x_kubernetes_preserve_unknown_fields == Some(true)
}

fn embedded(s: &JSONSchemaProps) -> bool {
    s.x_kubernetes_embedded_resource == Some(true)
}

/// `pruning.Prune(obj, schema, isResourceRoot)`: drops the fields the schema does not specify.
/// A resource root (the object itself, or an embedded resource) keeps `apiVersion`, `kind` and
/// `metadata` whatever their schema says (their own checks are the strategy's and
/// [`super::embedded`]'s).
pub(crate) fn prune_root(obj: &mut Value, s: &JSONSchemaProps) {
    if embedded(s) {
        prune(obj, Some(s));
    } else {
        let mut root = s.clone();
        root.x_kubernetes_embedded_resource = Some(true);
        prune(obj, Some(&root));
    }
}

pub(crate) fn prune(x: &mut Value, s: Option<&JSONSchemaProps>) {
    if let Some(s) = s
        && preserves_unknown(s)
    {
        skip_prune(x, s);
        return;
    }
    match x {
        Value::Object(map) => {
            let Some(s) = s else {
                map.clear();
                return;
            };
            map.retain(|key, value| {
                if embedded(s) && META_FIELDS.contains(&key.as_str()) {
                    return true;
                }
                if let Some(prop) = properties(s).and_then(|p| p.get(key)) {
                    prune(value, Some(prop));
                    true
                } else if has_additional(s) {
                    // `additionalProperties: true` or `false` has no schema: like upstream,
                    // the value's own fields are then pruned away (validation refuses `false`).
                    prune(value, additional(s));
                    true
                } else {
                    false
                }
            });
        }
        Value::Array(list) => {
            let item = s.and_then(items);
            for v in list {
                prune(v, item);
            }
        }
        _ => {}
    }
}

/// `skipPrune`: under `x-kubernetes-preserve-unknown-fields`, unknown fields stay, but fields the
/// schema does specify are pruned by their own schema.
fn skip_prune(x: &mut Value, s: &JSONSchemaProps) {
    match x {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if embedded(s) && META_FIELDS.contains(&key.as_str()) {
                    continue;
                }
                if let Some(prop) = properties(s).and_then(|p| p.get(key)) {
                    prune(value, Some(prop));
                } else if let Some(extra) = additional(s) {
                    prune(value, Some(extra));
                }
            }
        }
        Value::Array(list) => {
            if let Some(item) = items(s) {
                for v in list {
                    skip_prune(v, item);
                }
            }
        }
        _ => {}
    }
}

fn field_schema<'a>(s: Option<&'a JSONSchemaProps>, key: &str) -> Option<&'a JSONSchemaProps> {
    let s = s?;
    properties(s)
        .and_then(|p| p.get(key))
        .or_else(|| additional(s))
}

fn non_nullable_null_without_default(x: &Value, s: Option<&JSONSchemaProps>) -> bool {
    x.is_null() && s.is_some_and(|s| s.nullable != Some(true) && s.default.is_none())
}

/// `PruneNonNullableNullsWithoutDefaults`: a `null` where the schema neither allows null nor
/// has a default is dropped, as if the field were not sent.
pub(crate) fn prune_nulls(x: &mut Value, s: Option<&JSONSchemaProps>) {
    match x {
        Value::Object(map) => {
            map.retain(|key, value| {
                let schema = field_schema(s, key);
                if non_nullable_null_without_default(value, schema) {
                    false
                } else {
                    prune_nulls(value, schema);
                    true
                }
            });
        }
        Value::Array(list) => {
            let item = s.and_then(items);
            for v in list {
                prune_nulls(v, item);
            }
        }
        _ => {}
    }
}

fn non_nullable_null(x: &Value, s: &JSONSchemaProps) -> bool {
    x.is_null() && s.nullable != Some(true)
}

/// A schema's default, itself pruned by that schema so a default cannot bring unknown fields.
fn pruned_default(s: &JSONSchemaProps) -> Option<Value> {
    let mut value = s.default.as_ref()?.0.clone();
    if value.is_null() {
        return None;
    }
    prune(&mut value, Some(s));
    Some(value)
}

/// `defaulting.Default`: in every object that exists, an absent field (or a `null` the schema
/// does not allow) with a default gets it; items of arrays and values of `additionalProperties`
/// maps are defaulted the same way, and defaults are defaulted inside in turn.
pub(crate) fn default(x: &mut Value, s: &JSONSchemaProps) {
    match x {
        Value::Object(map) => {
            for (key, prop) in properties(s).into_iter().flatten() {
                let Some(value) = pruned_default(prop) else {
                    continue;
                };
                let absent_or_null = map.get(key).is_none_or(|v| non_nullable_null(v, prop));
                if absent_or_null {
                    map.insert(key.clone(), value);
                }
            }
            for (key, value) in map.iter_mut() {
                if let Some(prop) = properties(s).and_then(|p| p.get(key)) {
                    default(value, prop);
                } else if let Some(extra) = additional(s) {
                    if non_nullable_null(value, extra)
                        && let Some(d) = pruned_default(extra)
                    {
                        *value = d;
                    }
                    default(value, extra);
                }
            }
        }
        Value::Array(list) => {
            let Some(item) = items(s) else {
                return;
            };
            for v in list {
                if non_nullable_null(v, item)
                    && let Some(d) = pruned_default(item)
                {
                    *v = d;
                }
                default(v, item);
            }
        }
        _ => {}
    }
}
