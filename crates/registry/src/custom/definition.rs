//! A CustomResourceDefinition object itself: upstream's defaults (`apis/apiextensions/v1`
//! `SetDefaults_*`) and its validation on create and update (`apis/apiextensions/validation`),
//! with apiextensions-apiserver's messages and field paths.
//!
//! ```text
//! default_crd(&mut crd)                          // names.singular, names.listKind, conversion, port
//! prepare_crd_for_create(&mut crd)                // status reset, storedVersions = [storage]
//! prepare_crd_for_update(&old, &mut new)          // status kept, storage version recorded
//! validate_crd(&crd)                -> Vec<FieldError>
//! validate_crd_update(&old, &new)   -> Vec<FieldError>
//! validate_crd_status_update(&old, &new) -> Vec<FieldError>
//! is_established(&crd)              -> bool
//! ```
//!
//! Upstream validates the internal form of the object, into which a v1 object converts by
//! moving a per-version `schema`, `subresources` or `additionalPrinterColumns` that every
//! version shares up to `spec.validation`, `spec.subresources` and
//! `spec.additionalPrinterColumns`. Errors about those are therefore reported at those
//! paths when all versions agree (the common single-version case, e.g.
//! `spec.validation.openAPIV3Schema.properties[spec].type`), and at
//! `spec.versions[i].…` otherwise; the webhook conversion settings are reported at
//! `spec.conversion.webhookClientConfig` and `spec.conversion.conversionReviewVersions`, and a
//! printer column's path at `….JSONPath`, as upstream does.
//!
//! The validation runs **after** [`default_crd`] and the `prepare_*` step, as upstream's
//! strategy runs it; `status.storedVersions` is checked only when present. CEL rules are checked
//! for their shape only (see [`super::schema`]); `selectableFields` are not checked.

#[cfg(test)]
mod tests;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use localfargate_core::validation::{
    ErrorType, FieldError, dns1035_label_errors, dns1123_subdomain_errors, go_quote, shown,
    validate_object_meta_named, validate_object_meta_update,
};
use serde_json::{Value, json};

use super::schema::structural_errors;

const APPROVAL_ANNOTATION: &str = "api-approved.kubernetes.io";

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn present(v: &Value, key: &str) -> bool {
    v.get(key).is_some_and(|x| !x.is_null())
}

fn err(
    error_type: ErrorType,
    field: &str,
    value: Option<Value>,
    detail: impl Into<String>,
) -> FieldError {
    FieldError {
        error_type,
        field: field.to_string(),
        value,
        detail: detail.into(),
    }
}

fn required(field: &str, detail: impl Into<String>) -> FieldError {
    err(ErrorType::Required, field, None, detail)
}

fn invalid(field: &str, value: impl Into<Value>, detail: impl Into<String>) -> FieldError {
    err(ErrorType::Invalid, field, Some(value.into()), detail)
}

fn forbidden(field: &str, detail: impl Into<String>) -> FieldError {
    err(ErrorType::Forbidden, field, None, detail)
}

fn not_supported(field: &str, value: &str, supported: &[&str]) -> FieldError {
    let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
    err(
        ErrorType::NotSupported,
        field,
        Some(Value::from(value)),
        format!("supported values: {}", quoted.join(", ")),
    )
}

fn strings(values: &[Value]) -> Value {
    Value::Array(
        values
            .iter()
            .map(|v| Value::from(v.as_str().unwrap_or("")))
            .collect(),
    )
}

// --- defaults -------------------------------------------------------------------------------

/// `SetDefaults_CustomResourceDefinitionSpec` and `SetDefaults_ServiceReference`:
/// `names.singular` is the lower-cased kind, `names.listKind` is `<kind>List`,
/// `conversion` is `{strategy: None}`, and a conversion webhook service's port is 443.
pub fn default_crd(crd: &mut Value) {
    let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let empty = |v: Option<&Value>| v.and_then(Value::as_str).is_none_or(str::is_empty);
        if empty(names.get("singular")) {
            names.insert("singular".to_string(), json!(kind.to_lowercase()));
        }
        if empty(names.get("listKind")) && !kind.is_empty() {
            names.insert("listKind".to_string(), json!(format!("{kind}List")));
        }
    }
    let conversion = spec
        .entry("conversion")
        .or_insert_with(|| json!({"strategy": "None"}));
    if conversion.is_null() {
        *conversion = json!({"strategy": "None"});
    }
    if let Some(service) = conversion
        .pointer_mut("/webhook/clientConfig/service")
        .and_then(Value::as_object_mut)
        && service.get("port").is_none_or(Value::is_null)
    {
        service.insert("port".to_string(), json!(443));
    }
}

// --- the internal form's hoisting -------------------------------------------------------------

/// Where a per-version field is validated: hoisted to `spec.<top>` when every version holds
/// the same value, per version otherwise.
struct Hoisted {
    schema: bool,
    subresources: bool,
    columns: bool,
}

fn hoisted(versions: &[Value]) -> Hoisted {
    let same = |key: &str| {
        let first = versions
            .first()
            .and_then(|v| v.get(key))
            .filter(|x| !x.is_null());
        versions
            .iter()
            .all(|v| v.get(key).filter(|x| !x.is_null()) == first)
    };
    Hoisted {
        schema: same("schema"),
        subresources: same("subresources"),
        columns: same("additionalPrinterColumns"),
    }
}

// --- create ---------------------------------------------------------------------------------

/// Options that differ between create and update (upstream's `validationOptions`).
struct Options {
    require_schema: bool,
}

/// `ValidateCustomResourceDefinition`: metadata (the name must be `plural.group`), spec,
/// status names, stored versions (when present), API approval of protected groups, and
/// `preserveUnknownFields`.
pub fn validate_crd(crd: &Value) -> Vec<FieldError> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let required_name = format!("{}.{}", text(names, "plural"), text(spec, "group"));
    let name_errors = |name: &str, prefix: bool| {
        // apimachinery's maskTrailingDash: a generateName's trailing dash (and the character
        // before it) stand in as one letter.
        let checked = match name.strip_suffix('-') {
            Some(head) if prefix && !head.is_empty() => {
                let mut chars = head.chars();
                chars.next_back();
                format!("{}a", chars.as_str())
            }
            _ => name.to_string(),
        };
        let mut out = dns1123_subdomain_errors(&checked);
        if name != required_name {
            out.push(r#"must be spec.names.plural+"."+spec.group"#.to_string());
        }
        out
    };
    let mut errs = validate_object_meta_named(crd, false, &name_errors, "metadata");
    errs.extend(validate_spec(
        spec,
        &Options {
            require_schema: true,
        },
    ));
    errs.extend(validate_status(crd));
    errs.extend(validate_api_approval(crd, None));
    errs.extend(validate_preserve_unknown_fields(crd, None));
    errs
}

/// `ValidateCustomResourceDefinitionUpdate`: what [`validate_crd`] checks (metadata by its
/// update rules), plus `spec.group` and `spec.names.plural` immutable, and — once the old
/// object is `Established` — `spec.scope` and `spec.names.kind` immutable.
pub fn validate_crd_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let (spec, old_spec) = (&new["spec"], &old["spec"]);
    let mut errs = validate_object_meta_update(new, old, "metadata");
    let old_versions = list(old_spec, "versions");
    let old_hoisted = hoisted(old_versions);
    let old_has_all_schemas = (old_hoisted.schema
        && old_versions
            .first()
            .is_some_and(|v| present(v, "schema") && present(&v["schema"], "openAPIV3Schema")))
        || old_versions
            .iter()
            .all(|v| present(v, "schema") && present(&v["schema"], "openAPIV3Schema"));
    errs.extend(validate_spec(
        spec,
        &Options {
            require_schema: old_has_all_schemas,
        },
    ));
    let immutable = |errs: &mut Vec<FieldError>, path: &str, new_value: &str, old_value: &str| {
        if new_value != old_value {
            errs.push(invalid(path, new_value, "field is immutable"));
        }
    };
    if is_established(old) {
        immutable(
            &mut errs,
            "spec.scope",
            text(spec, "scope"),
            text(old_spec, "scope"),
        );
        immutable(
            &mut errs,
            "spec.names.kind",
            text(&spec["names"], "kind"),
            text(&old_spec["names"], "kind"),
        );
    }
    immutable(
        &mut errs,
        "spec.group",
        text(spec, "group"),
        text(old_spec, "group"),
    );
    immutable(
        &mut errs,
        "spec.names.plural",
        text(&spec["names"], "plural"),
        text(&old_spec["names"], "plural"),
    );
    errs.extend(validate_status(new));
    errs.extend(validate_api_approval(new, Some(old)));
    errs.extend(validate_preserve_unknown_fields(new, Some(old)));
    errs
}

/// `ValidateUpdateCustomResourceDefinitionStatus`, for writes to `/status`: metadata update
/// rules and the accepted names.
pub fn validate_crd_status_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = validate_object_meta_update(new, old, "metadata");
    errs.extend(validate_names(
        &new["status"]["acceptedNames"],
        "status.acceptedNames",
    ));
    errs
}

/// The storage version's name, if one version is marked `storage: true` (the first such).
fn storage_version(crd: &Value) -> Option<String> {
    list(&crd["spec"], "versions")
        .iter()
        .find(|v| flag(v, "storage"))
        .map(|v| text(v, "name").to_string())
}

/// Adds the storage version to `status.storedVersions` if it is not there yet.
fn record_storage_version(crd: &mut Value) {
    let Some(storage) = storage_version(crd) else {
        return;
    };
    let Some(obj) = crd.as_object_mut() else {
        return;
    };
    let status = obj.entry("status").or_insert_with(|| json!({}));
    if !status.is_object() {
        *status = json!({});
    }
    let stored = &mut status["storedVersions"];
    if !stored.is_array() {
        *stored = json!([]);
    }
    if let Some(list) = stored.as_array_mut()
        && !list.iter().any(|v| v.as_str() == Some(storage.as_str()))
    {
        list.push(json!(storage));
    }
}

/// The registry strategy's `PrepareForCreate`: the status a client sent is dropped, and
/// `status.storedVersions` starts with the storage version. (Generation and the rest of the
/// metadata are the object store's.)
pub fn prepare_crd_for_create(crd: &mut Value) {
    if let Some(obj) = crd.as_object_mut() {
        obj.insert("status".to_string(), json!({}));
    }
    record_storage_version(crd);
}

/// The registry strategy's `PrepareForUpdate`: the status stays the stored one, and a new
/// storage version is appended to `status.storedVersions`.
pub fn prepare_crd_for_update(old: &Value, new: &mut Value) {
    if let Some(obj) = new.as_object_mut() {
        obj.insert(
            "status".to_string(),
            old.get("status").cloned().unwrap_or_else(|| json!({})),
        );
    }
    record_storage_version(new);
}

/// Whether the CRD's `Established` condition is `True`.
pub fn is_established(crd: &Value) -> bool {
    list(&crd["status"], "conditions")
        .iter()
        .any(|c| text(c, "type") == "Established" && text(c, "status") == "True")
}

fn validate_status(crd: &Value) -> Vec<FieldError> {
    let status = &crd["status"];
    let mut errs = validate_names(&status["acceptedNames"], "status.acceptedNames");
    if let Some(stored) = status.get("storedVersions").and_then(Value::as_array) {
        errs.extend(validate_stored_versions(
            stored,
            list(&crd["spec"], "versions"),
        ));
    }
    errs
}

/// `ValidateCustomResourceDefinitionStoredVersions`.
fn validate_stored_versions(stored: &[Value], versions: &[Value]) -> Vec<FieldError> {
    let path = "status.storedVersions";
    if stored.is_empty() {
        return vec![invalid(
            path,
            strings(stored),
            "must have at least one stored version",
        )];
    }
    let mut errs = Vec::new();
    let stored_names: Vec<&str> = stored.iter().map(|v| v.as_str().unwrap_or("")).collect();
    for v in versions {
        let name = text(v, "name");
        if flag(v, "storage") && !stored_names.contains(&name) {
            errs.push(invalid(
                path,
                strings(stored),
                format!("must have the storage version {name}"),
            ));
        }
    }
    for (i, name) in stored_names.iter().enumerate() {
        if !versions.iter().any(|v| text(v, "name") == *name) {
            errs.push(invalid(
                &format!("{path}[{i}]"),
                *name,
                format!(
                    "missing from spec.versions; {name} was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in {name} and removes {name} from status.storedVersions"
                ),
            ));
        }
    }
    errs
}

/// Groups under `k8s.io` and `kubernetes.io` need the `api-approved.kubernetes.io` annotation
/// (a URL, or a reason starting with `unapproved`); an update that leaves its state alone passes.
fn validate_api_approval(crd: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let group = text(&crd["spec"], "group");
    let protected = ["k8s.io", "kubernetes.io"]
        .iter()
        .any(|d| group == *d || group.ends_with(&format!(".{d}")));
    if !protected {
        return Vec::new();
    }
    let state = |obj: &Value| {
        let value = text(&obj["metadata"]["annotations"], APPROVAL_ANNOTATION);
        if value.is_empty() {
            "missing"
        } else if value.starts_with("unapproved") {
            "bypassed"
        } else if value.split_once("://").is_some_and(|(scheme, rest)| {
            !scheme.is_empty() && !rest.is_empty() && !rest.starts_with('/')
        }) {
            "approved"
        } else {
            "invalid"
        }
    };
    let new_state = state(crd);
    if old.is_some_and(|o| state(o) == new_state) {
        return Vec::new();
    }
    let path = format!("metadata.annotations[{APPROVAL_ANNOTATION}]");
    match new_state {
        "missing" => vec![required(
            &path,
            format!(
                "protected groups must have approval annotation {}, see https://github.com/kubernetes/enhancements/pull/1111",
                go_quote(APPROVAL_ANNOTATION)
            ),
        )],
        "invalid" => vec![invalid(
            &path,
            text(&crd["metadata"]["annotations"], APPROVAL_ANNOTATION),
            format!(
                "protected groups must have approval annotation {} with either a URL or a reason starting with \"unapproved\", see https://github.com/kubernetes/enhancements/pull/1111",
                go_quote(APPROVAL_ANNOTATION)
            ),
        )],
        _ => Vec::new(),
    }
}

/// v1 may not turn `spec.preserveUnknownFields` on (an old object that has it may keep it).
fn validate_preserve_unknown_fields(crd: &Value, old: Option<&Value>) -> Vec<FieldError> {
    if old.is_some_and(|o| flag(&o["spec"], "preserveUnknownFields")) {
        return Vec::new();
    }
    if flag(&crd["spec"], "preserveUnknownFields") {
        return vec![invalid(
            "spec.preserveUnknownFields",
            true,
            "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
        )];
    }
    Vec::new()
}

// --- spec -----------------------------------------------------------------------------------

fn validate_spec(spec: &Value, opts: &Options) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let group = text(spec, "group");
    if group.is_empty() {
        errs.push(required("spec.group", ""));
    } else {
        let problems = dns1123_subdomain_errors(group);
        if !problems.is_empty() {
            errs.push(invalid("spec.group", group, problems.join(",")));
        } else if !group.contains('.') {
            errs.push(invalid(
                "spec.group",
                group,
                "should be a domain with at least one dot",
            ));
        }
    }
    let scope = text(spec, "scope");
    if scope.is_empty() {
        errs.push(required("spec.scope", ""));
    } else if scope != "Cluster" && scope != "Namespaced" {
        errs.push(not_supported(
            "spec.scope",
            scope,
            &["Cluster", "Namespaced"],
        ));
    }

    let versions = list(spec, "versions");
    let hoist = hoisted(versions);
    let has_schema = |v: &Value| present(v, "schema") && present(&v["schema"], "openAPIV3Schema");
    let top_schema = hoist.schema && versions.first().is_some_and(has_schema);
    if opts.require_schema && !top_schema {
        for (i, v) in versions.iter().enumerate() {
            if !has_schema(v) {
                errs.push(required(
                    &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                    "schemas are required",
                ));
            }
        }
    }
    let preserve_unknown = flag(spec, "preserveUnknownFields");
    if preserve_unknown
        && versions
            .iter()
            .any(|v| schema_has_default(&v["schema"]["openAPIV3Schema"]))
    {
        errs.push(invalid(
            "spec.preserveUnknownFields",
            true,
            "must be false in order to use defaults in the schema",
        ));
    }

    let status_enabled = |v: &Value| present(&v["subresources"], "status");
    let any_status = versions.iter().any(status_enabled);
    let mut storage = 0;
    let mut seen: Vec<&str> = Vec::new();
    let mut unique = true;
    for (i, version) in versions.iter().enumerate() {
        let vpath = format!("spec.versions[{i}]");
        if flag(version, "storage") {
            storage += 1;
        }
        let name = text(version, "name");
        if seen.contains(&name) {
            unique = false;
        } else {
            seen.push(name);
        }
        let problems = dns1035_label_errors(name);
        if !problems.is_empty() {
            errs.push(invalid(&format!("{vpath}.name"), name, problems.join(",")));
        }
        errs.extend(deprecation_warning(version, &vpath));
        if !hoist.schema {
            errs.extend(validate_schema(
                &version["schema"],
                status_enabled(version),
                &format!("{vpath}.schema"),
            ));
        }
        if !hoist.subresources {
            errs.extend(validate_subresources(
                &version["subresources"],
                &format!("{vpath}.subresources"),
            ));
        }
        if !hoist.columns {
            for (j, column) in list(version, "additionalPrinterColumns").iter().enumerate() {
                errs.extend(validate_column(
                    column,
                    &format!("{vpath}.additionalPrinterColumns[{j}]"),
                ));
            }
        }
    }
    if !unique {
        errs.push(invalid(
            "spec.versions",
            shown(go_versions(versions, &hoist)),
            "must contain unique version names",
        ));
    }
    if storage != 1 {
        errs.push(invalid(
            "spec.versions",
            shown(go_versions(versions, &hoist)),
            "must have exactly one version marked as storage version",
        ));
    }
    // The internal form's `spec.version` is the first version's name.
    if let Some(first) = versions.first() {
        let name = text(first, "name");
        let problems = dns1035_label_errors(name);
        if !problems.is_empty() {
            errs.push(invalid("spec.version", name, problems.join(",")));
        }
    }

    let names = &spec["names"];
    for key in ["plural", "singular", "kind", "listKind"] {
        if text(names, key).is_empty() {
            errs.push(required(&format!("spec.names.{key}"), ""));
        }
    }
    errs.extend(validate_names(names, "spec.names"));
    if let Some(first) = versions.first() {
        if hoist.schema {
            errs.extend(validate_schema(
                &first["schema"],
                any_status,
                "spec.validation",
            ));
        }
        if hoist.subresources {
            errs.extend(validate_subresources(
                &first["subresources"],
                "spec.subresources",
            ));
        }
        if hoist.columns {
            for (j, column) in list(first, "additionalPrinterColumns").iter().enumerate() {
                errs.extend(validate_column(
                    column,
                    &format!("spec.additionalPrinterColumns[{j}]"),
                ));
            }
        }
    }
    errs.extend(validate_conversion(&spec["conversion"], preserve_unknown));
    errs
}

/// Whether a version's schema holds a `default` anywhere (`SchemaHas` over every sub-schema).
fn schema_has_default(schema: &Value) -> bool {
    serde_json::from_value::<JSONSchemaProps>(schema.clone())
        .is_ok_and(|s| any_schema(&s, &|s: &JSONSchemaProps| s.default.is_some()))
}

fn any_schema(s: &JSONSchemaProps, pred: &dyn Fn(&JSONSchemaProps) -> bool) -> bool {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        JSONSchemaPropsOrArray, JSONSchemaPropsOrBool, JSONSchemaPropsOrStringArray,
    };
    if pred(s) {
        return true;
    }
    let mut children: Vec<&JSONSchemaProps> = Vec::new();
    match &s.items {
        Some(JSONSchemaPropsOrArray::Schema(item)) => children.push(item),
        Some(JSONSchemaPropsOrArray::Schemas(list)) => children.extend(list),
        None => {}
    }
    children.extend(s.all_of.iter().flatten());
    children.extend(s.any_of.iter().flatten());
    children.extend(s.one_of.iter().flatten());
    children.extend(s.not.as_deref());
    children.extend(s.properties.iter().flat_map(|p| p.values()));
    children.extend(s.pattern_properties.iter().flat_map(|p| p.values()));
    children.extend(s.definitions.iter().flat_map(|p| p.values()));
    for extra in [&s.additional_properties, &s.additional_items] {
        if let Some(JSONSchemaPropsOrBool::Schema(extra)) = extra {
            children.push(extra);
        }
    }
    for dependency in s.dependencies.iter().flat_map(|d| d.values()) {
        if let JSONSchemaPropsOrStringArray::Schema(d) = dependency {
            children.push(d);
        }
    }
    children.into_iter().any(|c| any_schema(c, pred))
}

/// `validateDeprecationWarning`.
fn deprecation_warning(version: &Value, vpath: &str) -> Vec<FieldError> {
    let Some(warning) = version.get("deprecationWarning").and_then(Value::as_str) else {
        return Vec::new();
    };
    let path = format!("{vpath}.deprecationWarning");
    if !flag(version, "deprecated") {
        return vec![invalid(
            &path,
            warning,
            "can only be set for deprecated versions",
        )];
    }
    let mut errs = Vec::new();
    if warning.len() > 256 {
        errs.push(invalid(&path, warning, "must be <= 256 characters long"));
    }
    if warning.is_empty() {
        errs.push(invalid(&path, warning, "must not be an empty string"));
    }
    if let Some((i, _)) = warning.char_indices().find(|(_, c)| c.is_control()) {
        errs.push(invalid(
            &path,
            warning,
            format!("must only contain printable UTF-8 characters; non-printable character found at index {i}"),
        ));
    }
    errs
}

/// `ValidateCustomResourceDefinitionNames`.
fn validate_names(names: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for key in ["plural", "singular"] {
        let value = text(names, key);
        let problems = dns1035_label_errors(value);
        if !value.is_empty() && !problems.is_empty() {
            errs.push(invalid(&format!("{path}.{key}"), value, problems.join(",")));
        }
    }
    for key in ["kind", "listKind"] {
        let value = text(names, key);
        let problems = dns1035_label_errors(&value.to_lowercase());
        if !value.is_empty() && !problems.is_empty() {
            errs.push(invalid(
                &format!("{path}.{key}"),
                value,
                format!(
                    "may have mixed case, but should otherwise match: {}",
                    problems.join(",")
                ),
            ));
        }
    }
    for (i, short) in list(names, "shortNames").iter().enumerate() {
        let value = short.as_str().unwrap_or("");
        let problems = dns1035_label_errors(value);
        if !problems.is_empty() {
            errs.push(invalid(
                &format!("{path}.shortNames[{i}]"),
                value,
                problems.join(","),
            ));
        }
    }
    let kind = text(names, "kind");
    if !kind.is_empty() && kind == text(names, "listKind") {
        errs.push(invalid(
            &format!("{path}.listKind"),
            kind,
            "kind and listKind may not be the same",
        ));
    }
    for (i, category) in list(names, "categories").iter().enumerate() {
        let value = category.as_str().unwrap_or("");
        let problems = dns1035_label_errors(value);
        if !problems.is_empty() {
            errs.push(invalid(
                &format!("{path}.categories[{i}]"),
                value,
                problems.join(","),
            ));
        }
    }
    errs
}

/// Fields allowed at the root of a schema whose resource has the status subresource, in the
/// order of the internal `JSONSchemaProps` struct (the first offender is reported).
const ROOT_FIELDS: [(&str, bool); 44] = [
    ("id", false),
    ("$schema", false),
    ("$ref", false),
    ("description", true),
    ("type", true),
    ("nullable", false),
    ("format", true),
    ("title", true),
    ("default", false),
    ("maximum", true),
    ("exclusiveMaximum", true),
    ("minimum", true),
    ("exclusiveMinimum", true),
    ("maxLength", true),
    ("minLength", true),
    ("pattern", true),
    ("maxItems", true),
    ("minItems", true),
    ("uniqueItems", true),
    ("multipleOf", true),
    ("enum", false),
    ("maxProperties", false),
    ("minProperties", false),
    ("required", true),
    ("items", true),
    ("allOf", false),
    ("oneOf", false),
    ("anyOf", false),
    ("not", false),
    ("properties", true),
    ("additionalProperties", false),
    ("patternProperties", false),
    ("dependencies", false),
    ("additionalItems", false),
    ("definitions", false),
    ("externalDocs", true),
    ("example", true),
    ("x-kubernetes-preserve-unknown-fields", true),
    ("x-kubernetes-embedded-resource", false),
    ("x-kubernetes-int-or-string", false),
    ("x-kubernetes-list-map-keys", false),
    ("x-kubernetes-list-type", false),
    ("x-kubernetes-map-type", false),
    ("x-kubernetes-validations", true),
];

/// Whether a root schema field holds its Go zero value in the internal struct: numbers,
/// `x-kubernetes-preserve-unknown-fields`, the list/map types and every list or map are
/// pointers or slices there, so any value present counts; plain booleans count when true and
/// strings when non-empty.
fn is_zero(name: &str, v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b && name != "x-kubernetes-preserve-unknown-fields",
        Value::String(s) => {
            s.is_empty() && !matches!(name, "x-kubernetes-list-type" | "x-kubernetes-map-type")
        }
        Value::Number(_) | Value::Array(_) | Value::Object(_) => false,
    }
}

/// `validateCustomResourceDefinitionValidation` for one `schema` (`{openAPIV3Schema}`) at
/// `path` (`spec.validation` or `spec.versions[i].schema`).
fn validate_schema(schema: &Value, status_enabled: bool, path: &str) -> Vec<FieldError> {
    let Some(raw) = schema.get("openAPIV3Schema").filter(|s| !s.is_null()) else {
        return Vec::new();
    };
    let spath = format!("{path}.openAPIV3Schema");
    let mut errs = Vec::new();
    if status_enabled {
        for (name, allowed) in ROOT_FIELDS {
            let Some(value) = raw.get(name).filter(|v| !is_zero(name, v)) else {
                continue;
            };
            if name == "type" {
                if value.as_str() != Some("object") {
                    errs.push(invalid(
                        &format!("{spath}.type"),
                        value.clone(),
                        r#"only "object" is allowed as the type at the root of the schema if the status subresource is enabled"#,
                    ));
                    break;
                }
                continue;
            }
            if !allowed {
                errs.push(invalid(
                    &spath,
                    shown("apiextensions.JSONSchemaProps{…}"),
                    "only [Description Type Format Title Maximum ExclusiveMaximum Minimum ExclusiveMinimum MaxLength MinLength Pattern MaxItems MinItems UniqueItems MultipleOf Required Items Properties ExternalDocs Example XPreserveUnknownFields XValidations] fields are allowed at the root of the schema if the status subresource is enabled",
                ));
                break;
            }
        }
    }
    match serde_json::from_value::<JSONSchemaProps>(raw.clone()) {
        Ok(parsed) => errs.extend(structural_errors(&parsed, &spath)),
        Err(e) => errs.push(invalid(&spath, "", e.to_string())),
    }
    errs
}

/// `validateSimpleJSONPath`.
fn simple_json_path(s: &str, path: &str) -> Vec<FieldError> {
    if s.is_empty() {
        vec![invalid(path, s, "must not be empty")]
    } else if !s.starts_with('.') {
        vec![invalid(
            path,
            s,
            "must be a simple json path starting with .",
        )]
    } else {
        Vec::new()
    }
}

/// `ValidateCustomResourceDefinitionSubresources`: the scale subresource's paths.
fn validate_subresources(subresources: &Value, path: &str) -> Vec<FieldError> {
    let Some(scale) = subresources.get("scale").filter(|s| !s.is_null()) else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    for (key, prefix, under) in [
        (
            "specReplicasPath",
            ".spec.",
            "should be a json path under .spec",
        ),
        (
            "statusReplicasPath",
            ".status.",
            "should be a json path under .status",
        ),
    ] {
        let p = format!("{path}.scale.{key}");
        let value = text(scale, key);
        if value.is_empty() {
            errs.push(required(&p, ""));
        } else {
            let bad = simple_json_path(value, &p);
            if !bad.is_empty() {
                errs.extend(bad);
            } else if !value.starts_with(prefix) {
                errs.push(invalid(&p, value, under));
            }
        }
    }
    let selector = text(scale, "labelSelectorPath");
    if !selector.is_empty() {
        let p = format!("{path}.scale.labelSelectorPath");
        let bad = simple_json_path(selector, &p);
        if !bad.is_empty() {
            errs.extend(bad);
        } else if !selector.starts_with(".spec.") && !selector.starts_with(".status.") {
            errs.push(invalid(
                &p,
                selector,
                "should be a json path under either .spec or .status",
            ));
        }
    }
    errs
}

/// `ValidateCustomResourceColumnDefinition`.
fn validate_column(column: &Value, path: &str) -> Vec<FieldError> {
    const TYPES: &str = "boolean,date,integer,number,string";
    const FORMATS: &str = "byte,date,date-time,double,float,int32,int64,password";
    let mut errs = Vec::new();
    if text(column, "name").is_empty() {
        errs.push(required(&format!("{path}.name"), ""));
    }
    let ty = text(column, "type");
    if ty.is_empty() {
        errs.push(required(
            &format!("{path}.type"),
            format!("must be one of {TYPES}"),
        ));
    } else if !TYPES.split(',').any(|t| t == ty) {
        errs.push(invalid(
            &format!("{path}.type"),
            ty,
            format!("must be one of {TYPES}"),
        ));
    }
    let format = text(column, "format");
    if !format.is_empty() && !FORMATS.split(',').any(|f| f == format) {
        errs.push(invalid(
            &format!("{path}.format"),
            format,
            format!("must be one of {FORMATS}"),
        ));
    }
    let json_path = text(column, "jsonPath");
    let p = format!("{path}.JSONPath");
    if json_path.is_empty() {
        errs.push(required(&p, ""));
    } else {
        errs.extend(simple_json_path(json_path, &p));
    }
    errs
}

/// `validateCustomResourceConversion`, over the internal form (`webhookClientConfig`,
/// `conversionReviewVersions` directly under `conversion`).
fn validate_conversion(conversion: &Value, preserve_unknown: bool) -> Vec<FieldError> {
    if conversion.is_null() {
        return Vec::new();
    }
    let mut errs = Vec::new();
    let strategy = text(conversion, "strategy");
    if strategy != "None" && preserve_unknown {
        errs.push(invalid(
            "spec.conversion.strategy",
            strategy,
            "must be None if spec.preserveUnknownFields is true",
        ));
    }
    if strategy.is_empty() {
        errs.push(required("spec.conversion.strategy", ""));
    } else if strategy != "None" && strategy != "Webhook" {
        errs.push(not_supported(
            "spec.conversion.strategy",
            strategy,
            &["None", "Webhook"],
        ));
    }
    let webhook = &conversion["webhook"];
    let client_config = webhook.get("clientConfig").filter(|c| !c.is_null());
    let review_versions = list(webhook, "conversionReviewVersions");
    let cc_path = "spec.conversion.webhookClientConfig";
    let rv_path = "spec.conversion.conversionReviewVersions";
    if strategy == "Webhook" {
        match client_config {
            None => errs.push(required(
                cc_path,
                "required when strategy is set to Webhook",
            )),
            Some(cc) => {
                let url = cc.get("url").filter(|u| !u.is_null());
                let service = cc.get("service").filter(|s| !s.is_null());
                match (url, service) {
                    (Some(url), None) => errs.extend(webhook_url(
                        url.as_str().unwrap_or(""),
                        &format!("{cc_path}.url"),
                    )),
                    (None, Some(service)) => {
                        errs.extend(webhook_service(service, &format!("{cc_path}.service")));
                    }
                    _ => errs.push(required(
                        cc_path,
                        "exactly one of url or service is required",
                    )),
                }
            }
        }
        if review_versions.is_empty() {
            errs.push(required(rv_path, ""));
        } else {
            let mut seen: Vec<&str> = Vec::new();
            let mut accepted = false;
            for (i, v) in review_versions.iter().enumerate() {
                let v = v.as_str().unwrap_or("");
                let p = format!("{rv_path}[{i}]");
                if seen.contains(&v) {
                    errs.push(invalid(&p, v, "duplicate version"));
                    continue;
                }
                seen.push(v);
                for problem in dns1035_label_errors(v) {
                    errs.push(invalid(&p, v, problem));
                }
                accepted |= v == "v1" || v == "v1beta1";
            }
            if !accepted {
                errs.push(invalid(
                    rv_path,
                    strings(review_versions),
                    "must include at least one of v1, v1beta1",
                ));
            }
        }
    } else {
        if client_config.is_some() {
            errs.push(forbidden(
                cc_path,
                "should not be set when strategy is not set to Webhook",
            ));
        }
        if !review_versions.is_empty() {
            errs.push(forbidden(
                rv_path,
                "should not be set when strategy is not set to Webhook",
            ));
        }
    }
    errs
}

/// `webhook.ValidateWebhookURL` with HTTPS required.
fn webhook_url(url: &str, path: &str) -> Vec<FieldError> {
    const FORM: &str = "; desired format: https://host[/path]";
    let mut errs = Vec::new();
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let scheme = if url.contains("://") { scheme } else { "" };
    if scheme != "https" {
        errs.push(invalid(
            path,
            scheme,
            format!("'https' is the only allowed URL scheme{FORM}"),
        ));
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = if url.contains("://") {
        &rest[..authority_end]
    } else {
        ""
    };
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    };
    if host.is_empty() {
        errs.push(invalid(path, host, format!("host must be specified{FORM}")));
    }
    if let Some(user) = user {
        errs.push(invalid(
            path,
            user,
            "user information is not permitted in the URL",
        ));
    }
    if let Some((_, fragment)) = url.split_once('#')
        && !fragment.is_empty()
    {
        errs.push(invalid(
            path,
            fragment,
            "fragments are not permitted in the URL",
        ));
    }
    let before_fragment = url.split('#').next().unwrap_or("");
    if let Some((_, query)) = before_fragment.split_once('?')
        && !query.is_empty()
    {
        errs.push(invalid(
            path,
            query,
            "query parameters are not permitted in the URL",
        ));
    }
    errs
}

/// `webhook.ValidateWebhookService`.
fn webhook_service(service: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if text(service, "name").is_empty() {
        errs.push(required(
            &format!("{path}.name"),
            "service name is required",
        ));
    }
    if text(service, "namespace").is_empty() {
        errs.push(required(
            &format!("{path}.namespace"),
            "service namespace is required",
        ));
    }
    let port = service.get("port").and_then(Value::as_i64).unwrap_or(443);
    if !(1..=65535).contains(&port) {
        errs.push(invalid(
            &format!("{path}.port"),
            port,
            "port is not valid: must be between 1 and 65535, inclusive",
        ));
    }
    let Some(url_path) = service.get("path").and_then(Value::as_str) else {
        return errs;
    };
    let p = format!("{path}.path");
    if url_path.is_empty() || url_path == "/" {
        return errs;
    }
    if url_path == "//" {
        errs.push(invalid(&p, url_path, "segment[0] may not be empty"));
        return errs;
    }
    if !url_path.starts_with('/') {
        errs.push(invalid(&p, url_path, "must start with a '/'"));
    }
    let mut check = url_path.get(1..).unwrap_or("");
    check = check.strip_suffix('/').unwrap_or(check);
    for (i, step) in check.split('/').enumerate() {
        if step.is_empty() {
            errs.push(invalid(
                &p,
                url_path,
                format!("segment[{i}] may not be empty"),
            ));
            continue;
        }
        for failure in dns1123_subdomain_errors(step) {
            errs.push(invalid(&p, url_path, format!("segment[{i}]: {failure}")));
        }
    }
    errs
}

// --- Go's %#v of the internal versions --------------------------------------------------------

/// `[]apiextensions.CustomResourceDefinitionVersion{…}` as Go's `%#v` prints the internal
/// versions (hoisted fields nil). Pointers print as an address upstream; one placeholder
/// address stands for them.
fn go_versions(versions: &[Value], hoist: &Hoisted) -> String {
    if versions.is_empty() {
        return "[]apiextensions.CustomResourceDefinitionVersion(nil)".to_string();
    }
    const ADDRESS: &str = "0xc000000000";
    let pointer = |ty: &str, set: bool| {
        if set {
            format!("(*{ty})({ADDRESS})")
        } else {
            format!("(*{ty})(nil)")
        }
    };
    let items: Vec<String> = versions
        .iter()
        .map(|v| {
            let columns = list(v, "additionalPrinterColumns");
            let columns = if hoist.columns || columns.is_empty() {
                "[]apiextensions.CustomResourceColumnDefinition(nil)".to_string()
            } else {
                let inner: Vec<String> = columns
                    .iter()
                    .map(|c| {
                        format!(
                            "apiextensions.CustomResourceColumnDefinition{{Name:{}, Type:{}, Format:{}, Description:{}, Priority:{}, JSONPath:{}}}",
                            go_quote(text(c, "name")),
                            go_quote(text(c, "type")),
                            go_quote(text(c, "format")),
                            go_quote(text(c, "description")),
                            c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                            go_quote(text(c, "jsonPath")),
                        )
                    })
                    .collect();
                format!(
                    "[]apiextensions.CustomResourceColumnDefinition{{{}}}",
                    inner.join(", ")
                )
            };
            let selectable = list(v, "selectableFields");
            let selectable = if hoist.schema || selectable.is_empty() {
                "[]apiextensions.SelectableField(nil)".to_string()
            } else {
                let inner: Vec<String> = selectable
                    .iter()
                    .map(|s| {
                        format!(
                            "apiextensions.SelectableField{{JSONPath:{}}}",
                            go_quote(text(s, "jsonPath"))
                        )
                    })
                    .collect();
                format!("[]apiextensions.SelectableField{{{}}}", inner.join(", "))
            };
            format!(
                "apiextensions.CustomResourceDefinitionVersion{{Name:{}, Served:{}, Storage:{}, Deprecated:{}, DeprecationWarning:{}, Schema:{}, Subresources:{}, AdditionalPrinterColumns:{columns}, SelectableFields:{selectable}}}",
                go_quote(text(v, "name")),
                flag(v, "served"),
                flag(v, "storage"),
                flag(v, "deprecated"),
                pointer("string", present(v, "deprecationWarning")),
                pointer(
                    "apiextensions.CustomResourceValidation",
                    !hoist.schema && present(v, "schema")
                ),
                pointer(
                    "apiextensions.CustomResourceSubresources",
                    !hoist.subresources && present(v, "subresources")
                ),
            )
        })
        .collect();
    format!(
        "[]apiextensions.CustomResourceDefinitionVersion{{{}}}",
        items.join(", ")
    )
}
