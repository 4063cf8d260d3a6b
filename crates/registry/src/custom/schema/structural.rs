//! The checks a version's `openAPIV3Schema` passes on CustomResourceDefinition create and update
//! (apiextensions-apiserver `apis/apiextensions/validation` and `apiserver/schema`): structural
//! invariants (`ValidateStructural`, errors sorted as upstream sorts them), defaults that
//! validate and are pruned (`ValidateDefaults`), and the OpenAPI restrictions
//! (`ValidateCustomResourceDefinitionOpenAPISchema`).

use std::collections::BTreeSet;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use localfargate_core::validation::FieldError;
use serde_json::Value;

use super::Structural;
use super::embedded::embedded_meta_errors;
use super::lists::list_errors;
use super::prune::{additional, items, prune};
use super::report::{error, forbidden, invalid, not_supported, required};
use super::validate::{Patterns, Validator};
use localfargate_core::validation::ErrorType;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

fn key(path: &str, child: &str, key: &str) -> String {
    format!("{path}.{child}[{key}]")
}

fn is_true(b: Option<bool>) -> bool {
    b == Some(true)
}

fn text(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

/// Errors of `schema`, the `openAPIV3Schema` at `path` (e.g.
/// `spec.versions[0].schema.openAPIV3Schema`), in upstream's order: nullable root, structural
/// invariants (sorted), defaults (only when structural), OpenAPI restrictions.
pub fn structural_errors(schema: &JSONSchemaProps, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if is_true(schema.nullable) {
        errors.push(forbidden(
            &format!("{path}.nullable"),
            "nullable cannot be true at the root",
        ));
    }
    let mut structural = invariants(schema, Level::Root, path);
    structural.extend(completeness(schema, schema, path, path, true));
    structural.sort_by_key(FieldError::message);
    if structural.is_empty() {
        let compiled = Structural::new(schema.clone());
        errors.extend(defaults(schema, path, &compiled.patterns, false, true));
    } else {
        errors.extend(structural);
    }
    errors.extend(openapi(schema, path, Ssv::default(), true));
    errors
}

// --- ValidateStructural ---------------------------------------------------------------------

fn int_or_string_any_of(any_of: &Option<Vec<JSONSchemaProps>>) -> bool {
    let Some(list) = any_of else {
        return false;
    };
    let only_type = |s: &JSONSchemaProps, t: &str| {
        let mut expected = JSONSchemaProps {
            type_: Some(t.to_string()),
            ..Default::default()
        };
        expected.type_ = Some(t.to_string());
        *s == expected
    };
    list.len() == 2 && only_type(&list[0], "integer") && only_type(&list[1], "string")
}

fn invariants(s: &JSONSchemaProps, lvl: Level, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ty = text(&s.type_);
    if ty == "array" && s.items.is_none() {
        errs.push(required(&format!("{path}.items"), "must be specified"));
    }
    if let Some(item) = items(s) {
        errs.extend(invariants(item, Level::Item, &format!("{path}.items")));
    }
    for (k, v) in s.properties.iter().flatten() {
        errs.extend(invariants(v, Level::Field, &key(path, "properties", k)));
    }
    if s.additional_properties.is_some() {
        if lvl == Level::Root {
            errs.push(forbidden(
                &format!("{path}.additionalProperties"),
                "must not be used at the root",
            ));
        }
        if let Some(extra) = additional(s) {
            errs.extend(invariants(
                extra,
                Level::Field,
                &format!("{path}.additionalProperties"),
            ));
        }
    }
    let int_or_string = is_true(s.x_kubernetes_int_or_string);
    let preserve = is_true(s.x_kubernetes_preserve_unknown_fields);
    let embedded = is_true(s.x_kubernetes_embedded_resource);
    if int_or_string && preserve {
        errs.push(invalid(
            &format!("{path}.x-kubernetes-preserve-unknown-fields"),
            &Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if int_or_string && embedded {
        errs.push(invalid(
            &format!("{path}.x-kubernetes-embedded-resource"),
            &Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    let skip_any_of = int_or_string_any_of(&s.any_of);
    let skip_first_all_of = s
        .all_of
        .as_ref()
        .and_then(|a| a.first())
        .is_some_and(|first| int_or_string_any_of(&first.any_of));
    errs.extend(value_validation(s, skip_any_of, skip_first_all_of, path));

    let check_metadata = lvl == Level::Root || embedded;
    if embedded && ty != "object" {
        let p = format!("{path}.type");
        let msg = "must be object if x-kubernetes-embedded-resource is true";
        errs.push(if ty.is_empty() {
            required(&p, msg)
        } else {
            invalid(&p, &Value::from(ty), msg)
        });
    } else if ty.is_empty() && !int_or_string && !preserve {
        let msg = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(required(&format!("{path}.type"), msg));
    }
    if embedded && s.additional_properties.is_some() {
        errs.push(forbidden(
            &format!("{path}.additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if lvl == Level::Root && !ty.is_empty() && ty != "object" {
        errs.push(invalid(
            &format!("{path}.type"),
            &Value::from(ty),
            "must be object at the root",
        ));
    }
    let props = s.properties.as_ref();
    if check_metadata {
        for name in ["kind", "apiVersion"] {
            if let Some(p) = props.and_then(|p| p.get(name)) {
                let t = text(&p.type_);
                if t != "string" {
                    errs.push(invalid(
                        &format!("{}.type", key(path, "properties", name)),
                        &Value::from(t),
                        "must be string",
                    ));
                }
            }
        }
    }
    if let Some(metadata) = props.and_then(|p| p.get("metadata")) {
        let mpath = key(path, "properties", "metadata");
        let mty = text(&metadata.type_);
        if check_metadata && mty != "object" {
            errs.push(invalid(
                &format!("{mpath}.type"),
                &Value::from(mty),
                "must be object",
            ));
        }
        if lvl == Level::Root && !metadata_only_names(metadata) {
            errs.push(forbidden(
                &mpath,
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }
    if embedded && !preserve && props.is_none_or(|p| p.is_empty()) {
        errs.push(required(
            &format!("{path}.properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
    errs
}

/// Whether a root `metadata` schema says nothing beyond its type and (any) schemas for `name`
/// and `generateName`. Descriptions, like everything else, count as saying something.
fn metadata_only_names(m: &JSONSchemaProps) -> bool {
    let mut rest = m.clone();
    rest.type_ = None;
    rest.default = None;
    if let Some(p) = &rest.properties {
        let names: BTreeSet<&str> = p.keys().map(String::as_str).collect();
        let only = names.iter().all(|n| *n == "name" || *n == "generateName");
        if only {
            rest.properties = None;
        }
    }
    rest == JSONSchemaProps::default()
}

fn junctors<'a>(
    s: &'a JSONSchemaProps,
) -> impl Iterator<Item = (&'static str, usize, &'a JSONSchemaProps)> {
    let list = |name: &'static str, v: &'a Option<Vec<JSONSchemaProps>>| {
        v.iter()
            .flatten()
            .enumerate()
            .map(move |(i, s)| (name, i, s))
    };
    list("anyOf", &s.any_of)
        .chain(list("allOf", &s.all_of))
        .chain(list("oneOf", &s.one_of))
}

/// `validateValueValidation`: the nested schemas under anyOf/allOf/oneOf/not, and the pattern.
fn value_validation(
    s: &JSONSchemaProps,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    path: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (name, i, nested) in junctors(s) {
        if name == "anyOf" && skip_any_of {
            continue;
        }
        let skip = name == "allOf" && i == 0 && skip_first_all_of_any_of;
        errs.extend(nested_value_validation(
            nested,
            skip,
            &format!("{path}.{name}[{i}]"),
        ));
    }
    if let Some(not) = &s.not {
        errs.extend(nested_value_validation(not, false, &format!("{path}.not")));
    }
    if let Some(pattern) = s.pattern.as_deref().filter(|p| !p.is_empty())
        && let Err(e) = super::pattern::compile(pattern)
    {
        errs.push(invalid(
            &format!("{path}.pattern"),
            &Value::from(pattern),
            format!(
                "must be a valid regular expression, but isn't: {}",
                regex_error(&e)
            ),
        ));
    }
    errs
}

/// A regex compile error in one line (Go words it `error parsing regexp: …`).
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    format!(
        "error parsing regexp: {}",
        last.trim().trim_start_matches("error: ")
    )
}

/// `validateNestedValueValidation`: a schema under a junctor may only restrict values.
fn nested_value_validation(v: &JSONSchemaProps, skip_any_of: bool, path: &str) -> Vec<FieldError> {
    let mut errs = value_validation(v, skip_any_of, false, path);
    if let Some(item) = items(v) {
        errs.extend(nested_value_validation(
            item,
            false,
            &format!("{path}.items"),
        ));
    }
    for (k, p) in v.properties.iter().flatten() {
        errs.extend(nested_value_validation(
            p,
            false,
            &key(path, "properties", k),
        ));
    }
    let f = |child: &str| format!("{path}.{child}");
    if !text(&v.type_).is_empty() {
        errs.push(forbidden(&f("type"), "must be empty to be structural"));
    }
    if v.additional_properties.is_some() {
        errs.push(forbidden(
            &f("additionalProperties"),
            "must be undefined to be structural",
        ));
    }
    if v.default.is_some() {
        errs.push(forbidden(
            &f("default"),
            "must be undefined to be structural",
        ));
    }
    if !text(&v.title).is_empty() {
        errs.push(forbidden(&f("title"), "must be empty to be structural"));
    }
    if !text(&v.description).is_empty() {
        errs.push(forbidden(
            &f("description"),
            "must be empty to be structural",
        ));
    }
    if is_true(v.nullable) {
        errs.push(forbidden(&f("nullable"), "must be false to be structural"));
    }
    if v.external_docs.is_some() {
        errs.push(forbidden(
            &f("externalDocs"),
            "must be undefined to be structural",
        ));
    }
    for (set, name) in [
        (
            v.x_kubernetes_preserve_unknown_fields,
            "x-kubernetes-preserve-unknown-fields",
        ),
        (
            v.x_kubernetes_embedded_resource,
            "x-kubernetes-embedded-resource",
        ),
        (v.x_kubernetes_int_or_string, "x-kubernetes-int-or-string"),
    ] {
        if is_true(set) {
            errs.push(forbidden(&f(name), "must be false to be structural"));
        }
    }
    if v.x_kubernetes_list_map_keys
        .as_ref()
        .is_some_and(|k| !k.is_empty())
    {
        errs.push(forbidden(
            &f("x-kubernetes-list-map-keys"),
            "must be empty to be structural",
        ));
    }
    if v.x_kubernetes_list_type.is_some() {
        errs.push(forbidden(
            &f("x-kubernetes-list-type"),
            "must be undefined to be structural",
        ));
    }
    if v.x_kubernetes_map_type.is_some() {
        errs.push(forbidden(
            &f("x-kubernetes-map-type"),
            "must be undefined to be structural",
        ));
    }
    if v.x_kubernetes_validations
        .as_ref()
        .is_some_and(|r| !r.is_empty())
    {
        errs.push(forbidden(
            &f("x-kubernetes-validations"),
            "must be empty to be structural",
        ));
    }
    if v.properties
        .as_ref()
        .is_some_and(|p| p.contains_key("metadata"))
    {
        errs.push(forbidden(
            &key(path, "properties", "metadata"),
            "must not be specified in a nested context",
        ));
    }
    errs
}

/// `validateStructuralCompleteness`: a field or item a junctor restricts must also be specified
/// by the structural part of the schema.
fn completeness(
    v: &JSONSchemaProps,
    s: &JSONSchemaProps,
    s_path: &str,
    v_path: &str,
    root: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(not) = &v.not {
        errs.extend(nested_completeness(
            not,
            Some(s),
            s_path,
            &format!("{v_path}.not"),
        ));
    }
    for (name, i, nested) in junctors(v) {
        errs.extend(nested_completeness(
            nested,
            Some(s),
            s_path,
            &format!("{v_path}.{name}[{i}]"),
        ));
    }
    let _ = root;
    errs
}

fn nested_completeness(
    v: &JSONSchemaProps,
    s: Option<&JSONSchemaProps>,
    s_path: &str,
    v_path: &str,
) -> Vec<FieldError> {
    let Some(s) = s else {
        return vec![required(
            s_path,
            format!("because it is defined in {v_path}"),
        )];
    };
    let mut errs = completeness(v, s, s_path, v_path, false);
    if let Some(v_item) = items(v) {
        errs.extend(nested_completeness(
            v_item,
            items(s),
            &format!("{s_path}.items"),
            &format!("{v_path}.items"),
        ));
    }
    for (k, v_field) in v.properties.iter().flatten() {
        let v_child = key(v_path, "properties", k);
        match s.properties.as_ref().and_then(|p| p.get(k)) {
            Some(s_field) => errs.extend(nested_completeness(
                v_field,
                Some(s_field),
                &key(s_path, "properties", k),
                &v_child,
            )),
            None => errs.push(required(
                &key(s_path, "properties", k),
                format!("because it is defined in {v_child}"),
            )),
        }
    }
    errs
}

// --- ValidateDefaults -----------------------------------------------------------------------

/// Re-roots an error of a default's validation under `base` (`…default`), as
/// `kubeOpenAPIResultToFieldErrors(fldPath, …)` does with a non-nil path.
fn under(base: &str, mut e: FieldError) -> FieldError {
    e.field = if e.field.is_empty() {
        base.to_string()
    } else {
        format!("{base}.{}", e.field)
    };
    e
}

/// `ValidateDefaults`: each default outside of metadata is pruned already and valid against its
/// own schema (defaults under `additionalProperties` are not followed, as upstream).
fn defaults(
    s: &JSONSchemaProps,
    path: &str,
    patterns: &Patterns,
    inside_meta: bool,
    resource_root: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(default) = s.default.as_ref().map(|d| &d.0).filter(|d| !d.is_null())
        && !inside_meta
    {
        let base = format!("{path}.default");
        let mut pruned = default.clone();
        if is_true(s.x_kubernetes_embedded_resource) {
            super::prune::prune_root(&mut pruned, s);
        } else {
            prune(&mut pruned, Some(s));
        }
        if &pruned != default {
            errs.push(invalid(&base, default, "must not have unknown fields"));
        }
        let meta = embedded_meta_errors(default, s, &base);
        if !meta.is_empty() {
            errs.extend(meta);
        } else {
            let found: Vec<FieldError> = Validator { patterns }
                .validate(s, default, "")
                .into_iter()
                .map(|e| under(&base, e))
                .collect();
            if found.is_empty() {
                errs.extend(list_errors(default, s, &base));
            } else {
                errs.extend(found);
            }
        }
    }
    if let Some(item) = items(s) {
        errs.extend(defaults(
            item,
            &format!("{path}.items"),
            patterns,
            false,
            false,
        ));
    }
    for (k, p) in s.properties.iter().flatten() {
        // The resource root counts as an embedded resource: its type and object meta are
        // checked in the context of the whole object upstream, not here.
        let meta = (resource_root || is_true(s.x_kubernetes_embedded_resource))
            && matches!(k.as_str(), "metadata" | "apiVersion" | "kind");
        errs.extend(defaults(
            p,
            &key(path, "properties", k),
            patterns,
            inside_meta || meta,
            false,
        ));
    }
    errs
}

// --- ValidateCustomResourceDefinitionOpenAPISchema ------------------------------------------

#[derive(Clone, Default)]
struct Ssv {
    /// Why defaults are forbidden here (`None`: allowed).
    forbidden_defaults: Option<String>,
    inside_resource_meta: bool,
}

const OPENAPI_V3_TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

fn ssv_validate(s: &JSONSchemaProps, path: &str, ssv: &Ssv) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let f = |child: &str| format!("{path}.{child}");
    let ty = text(&s.type_);
    if !ty.is_empty() && !OPENAPI_V3_TYPES.contains(&ty) {
        let supported: Vec<String> = OPENAPI_V3_TYPES.iter().map(|t| t.to_string()).collect();
        errs.push(not_supported(&f("type"), &Value::from(ty), &supported));
    }
    if s.default.is_some()
        && let Some(reason) = &ssv.forbidden_defaults
    {
        errs.push(forbidden(
            &f("default"),
            format!("must not be set {reason}"),
        ));
    }
    if !text(&s.id).is_empty() {
        errs.push(forbidden(&f("id"), "id is not supported"));
    }
    if s.additional_items.is_some() {
        errs.push(forbidden(
            &f("additionalItems"),
            "additionalItems is not supported",
        ));
    }
    if s.pattern_properties.as_ref().is_some_and(|p| !p.is_empty()) {
        errs.push(forbidden(
            &f("patternProperties"),
            "patternProperties is not supported",
        ));
    }
    if s.definitions.as_ref().is_some_and(|p| !p.is_empty()) {
        errs.push(forbidden(&f("definitions"), "definitions is not supported"));
    }
    if s.dependencies.is_some() {
        errs.push(forbidden(
            &f("dependencies"),
            "dependencies is not supported",
        ));
    }
    if s.ref_path.is_some() {
        errs.push(forbidden(&f("$ref"), "$ref is not supported"));
    }
    if ty == "null" {
        errs.push(forbidden(
            &f("type"),
            "type cannot be set to null, use nullable as an alternative",
        ));
    }
    if matches!(&s.items, Some(JSONSchemaPropsOrArray::Schemas(list)) if !list.is_empty()) {
        errs.push(forbidden(
            &f("items"),
            "items must be a schema object and not an array",
        ));
    }
    if ssv.inside_resource_meta && is_true(s.x_kubernetes_embedded_resource) {
        errs.push(forbidden(
            &f("x-kubernetes-embedded-resource"),
            "must not be used inside of resource meta",
        ));
    }
    errs
}

fn openapi(s: &JSONSchemaProps, path: &str, ssv: Ssv, is_root: bool) -> Vec<FieldError> {
    let mut errs = ssv_validate(s, path, &ssv);
    let f = |child: &str| format!("{path}.{child}");
    if is_true(s.unique_items) {
        errs.push(forbidden(
            &f("uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    let has_properties = s.properties.as_ref().is_some_and(|p| !p.is_empty());
    if let Some(extra) = &s.additional_properties {
        if has_properties && !matches!(extra, JSONSchemaPropsOrBool::Bool(true)) {
            errs.push(forbidden(
                &f("additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if let JSONSchemaPropsOrBool::Schema(extra) = extra {
            let mut sub = ssv.clone();
            if ssv.inside_resource_meta {
                sub.forbidden_defaults =
                    Some("inside additionalProperties applying to object metadata".to_string());
            }
            errs.extend(openapi(extra, &f("additionalProperties"), sub, false));
        }
    }
    for (name, prop) in s.properties.iter().flatten() {
        let mut sub = ssv.clone();
        if (is_root || is_true(s.x_kubernetes_embedded_resource))
            && matches!(name.as_str(), "metadata" | "kind" | "apiVersion")
        {
            sub.inside_resource_meta = true;
            if is_root {
                sub.forbidden_defaults = Some(format!("in top-level {name}"));
            }
        }
        errs.extend(openapi(prop, &key(path, "properties", name), sub, false));
    }
    if let Some(not) = &s.not {
        errs.extend(openapi(not, &f("not"), ssv.clone(), false));
    }
    for (name, list) in [
        ("allOf", &s.all_of),
        ("oneOf", &s.one_of),
        ("anyOf", &s.any_of),
    ] {
        for (i, nested) in list.iter().flatten().enumerate() {
            errs.extend(openapi(
                nested,
                &format!("{path}.{name}[{i}]"),
                ssv.clone(),
                false,
            ));
        }
    }
    for (name, nested) in s.definitions.iter().flatten() {
        errs.extend(openapi(
            nested,
            &key(path, "definitions", name),
            ssv.clone(),
            false,
        ));
    }
    match &s.items {
        Some(JSONSchemaPropsOrArray::Schema(item)) => {
            errs.extend(openapi(item, &f("items"), ssv.clone(), false));
        }
        Some(JSONSchemaPropsOrArray::Schemas(list)) => {
            for (i, item) in list.iter().enumerate() {
                errs.extend(openapi(
                    item,
                    &format!("{path}.items[{i}]"),
                    ssv.clone(),
                    false,
                ));
            }
        }
        None => {}
    }
    if s.x_kubernetes_preserve_unknown_fields == Some(false) {
        errs.push(invalid(
            &f("x-kubernetes-preserve-unknown-fields"),
            &Value::Bool(false),
            "must be true or undefined",
        ));
    }
    errs.extend(list_and_map_type(s, path));
    for (i, rule) in s.x_kubernetes_validations.iter().flatten().enumerate() {
        let rpath = format!("{path}.x-kubernetes-validations[{i}]");
        let trimmed_rule = rule.rule.trim();
        let message = rule.message.as_deref().unwrap_or("");
        let trimmed_msg = message.trim();
        if trimmed_rule.is_empty() {
            errs.push(required(&format!("{rpath}.rule"), "rule is not specified"));
        } else if !message.is_empty() && trimmed_msg.is_empty() {
            errs.push(invalid(
                &format!("{rpath}.message"),
                &Value::from(message),
                "message must be non-empty if specified",
            ));
        } else if trimmed_msg.contains(['\n', '\r']) {
            errs.push(invalid(
                &format!("{rpath}.message"),
                &Value::from(message),
                "message must not contain line breaks",
            ));
        } else if trimmed_rule.contains(['\n', '\r']) && trimmed_msg.is_empty() {
            errs.push(required(
                &format!("{rpath}.message"),
                "message must be specified if rule contains line breaks",
            ));
        }
        let expression = rule.message_expression.as_deref().unwrap_or("");
        if !expression.is_empty() && expression.trim().is_empty() {
            errs.push(required(
                &format!("{rpath}.messageExpression"),
                "messageExpression must be non-empty if specified",
            ));
        }
        if let Some(reason) = rule.reason.as_deref()
            && !VALIDATION_REASONS.contains(&reason)
        {
            let supported: Vec<String> = VALIDATION_REASONS.iter().map(|r| r.to_string()).collect();
            errs.push(not_supported(
                &format!("{rpath}.reason"),
                &Value::from(reason),
                &supported,
            ));
        }
        let field_path = rule.field_path.as_deref().unwrap_or("");
        if !field_path.is_empty() && field_path.trim().is_empty() {
            errs.push(invalid(
                &format!("{rpath}.fieldPath"),
                &Value::from(field_path),
                "fieldPath must be non-empty if specified",
            ));
        }
        if field_path.contains(['\n', '\r']) {
            errs.push(invalid(
                &format!("{rpath}.fieldPath"),
                &Value::from(field_path),
                "fieldPath must not contain line breaks",
            ));
        }
    }
    errs
}

/// The reasons a CEL rule may give (sorted, as upstream lists them).
const VALIDATION_REASONS: [&str; 4] = [
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
];

/// The `x-kubernetes-map-type`, `x-kubernetes-list-type` and `x-kubernetes-list-map-keys`
/// rules, and that set and map lists have non-nullable items and required (or defaulted),
/// non-nullable keys.
fn list_and_map_type(s: &JSONSchemaProps, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let f = |child: &str| format!("{path}.{child}");
    let ty = text(&s.type_);
    if let Some(map_type) = &s.x_kubernetes_map_type {
        if ty != "object" {
            let msg = "must be object if x-kubernetes-map-type is specified";
            errs.push(if ty.is_empty() {
                required(&f("type"), msg)
            } else {
                invalid(&f("type"), &Value::from(ty), msg)
            });
        }
        if map_type != "atomic" && map_type != "granular" {
            errs.push(not_supported(
                &f("x-kubernetes-map-type"),
                &Value::from(map_type.as_str()),
                &["atomic".to_string(), "granular".to_string()],
            ));
        }
    }
    let list_type = s.x_kubernetes_list_type.as_deref();
    let item = items(s);
    if let Some(lt) = list_type {
        if ty != "array" {
            let msg = "must be array if x-kubernetes-list-type is specified";
            errs.push(if ty.is_empty() {
                required(&f("type"), msg)
            } else {
                invalid(&f("type"), &Value::from(ty), msg)
            });
        } else if lt == "set"
            && let Some(is) = item
        {
            match text(&is.type_) {
                "array" => {
                    if let Some(inner) = is.x_kubernetes_list_type.as_deref()
                        && inner != "atomic"
                    {
                        errs.push(invalid(
                            &f("items.x-kubernetes-list-type"),
                            &Value::from(inner),
                            "must be atomic as item of a list with x-kubernetes-list-type=set",
                        ));
                    }
                }
                "object" if is.x_kubernetes_map_type.as_deref() != Some("atomic") => {
                    errs.push(invalid(
                        &f("items.x-kubernetes-map-type"),
                        &Value::Null,
                        "must be atomic as item of a list with x-kubernetes-list-type=set",
                    ));
                }
                _ => {}
            }
        }
        if !matches!(lt, "atomic" | "set" | "map") {
            errs.push(not_supported(
                &f("x-kubernetes-list-type"),
                &Value::from(lt),
                &["atomic".to_string(), "set".to_string(), "map".to_string()],
            ));
        }
    }
    let map_keys: &[String] = s.x_kubernetes_list_map_keys.as_deref().unwrap_or(&[]);
    if !map_keys.is_empty() {
        match list_type {
            None => errs.push(required(
                &f("x-kubernetes-list-type"),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            Some(lt) if lt != "map" => errs.push(invalid(
                &f("x-kubernetes-list-type"),
                &Value::from(lt),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            _ => {}
        }
    }
    let keys_value = Value::from(map_keys.to_vec());
    if list_type == Some("map") {
        if map_keys.is_empty() {
            errs.push(required(
                &f("x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
        match (&s.items, item) {
            (None, _) => errs.push(required(
                &f("items"),
                "must have a schema if x-kubernetes-list-type is map",
            )),
            (Some(_), None) => errs.push(error(
                ErrorType::Invalid,
                &f("items"),
                Some(Value::from("")),
                "must only have a single schema if x-kubernetes-list-type is map",
            )),
            (Some(_), Some(is)) => {
                let ity = text(&is.type_);
                if ity != "object" {
                    errs.push(invalid(
                        &f("items.type"),
                        &Value::from(ity),
                        "must be object if parent array's x-kubernetes-list-type is map",
                    ));
                } else {
                    let mut seen = BTreeSet::new();
                    for k in map_keys {
                        match is.properties.as_ref().and_then(|p| p.get(k)) {
                            Some(ks) => {
                                let kt = text(&ks.type_);
                                if kt == "array" || kt == "object" {
                                    errs.push(invalid(
                                        &format!("{}.type", key(&f("items"), "properties", k)),
                                        &Value::from(ity),
                                        "must be a scalar type if parent array's x-kubernetes-list-type is map",
                                    ));
                                }
                            }
                            None => errs.push(error(
                                ErrorType::Invalid,
                                &f("x-kubernetes-list-map-keys"),
                                Some(keys_value.clone()),
                                "entries must all be names of item properties",
                            )),
                        }
                        if !seen.insert(k) {
                            errs.push(error(
                                ErrorType::Invalid,
                                &f("x-kubernetes-list-map-keys"),
                                Some(keys_value.clone()),
                                "must not contain duplicate entries",
                            ));
                        }
                    }
                }
            }
        }
    }
    if let (Some(lt @ ("set" | "map")), Some(is)) = (list_type, item) {
        if is_true(is.nullable) {
            errs.push(forbidden(
                &f("items.nullable"),
                format!("cannot be nullable when x-kubernetes-list-type is {lt}"),
            ));
        }
        if lt == "map" {
            let required_keys: BTreeSet<&str> =
                is.required.iter().flatten().map(String::as_str).collect();
            for k in map_keys {
                let Some(ks) = is.properties.as_ref().and_then(|p| p.get(k)) else {
                    continue;
                };
                let kpath = key(&f("items"), "properties", k);
                if !required_keys.contains(k.as_str()) && ks.default.is_none() {
                    errs.push(required(
                        &format!("{kpath}.default"),
                        "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                    ));
                }
                if is_true(ks.nullable) {
                    errs.push(forbidden(
                        &format!("{kpath}.nullable"),
                        "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                    ));
                }
            }
        }
    }
    errs
}
