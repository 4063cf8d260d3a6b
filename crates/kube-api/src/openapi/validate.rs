//! Strict field validation: the fields of an object its schema does not know, as
//! kube-apiserver's strict decoding reports them (`spec.containers[0].foo`), and their removal,
//! as its decoding drops them.

use std::collections::HashSet;

use localfargate_core::{go_base64, go_time, quantity};
use serde_json::{Map, Value};

const OBJECT_META: &str = "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Follows a `$ref` to its definition.
fn resolve<'a>(definitions: &'a Map<String, Value>, mut schema: &'a Value) -> &'a Value {
    // A chain of references is short; the bound only guards against a cycle of them.
    for _ in 0..8 {
        match schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/definitions/"))
            .and_then(|name| definitions.get(name))
        {
            Some(target) => schema = target,
            None => break,
        }
    }
    schema
}

/// Where an unknown field is: its path as upstream prints it, and the steps to its parent object.
struct Unknown {
    path: String,
    parent: Vec<Step>,
    name: String,
}

#[derive(Clone)]
enum Step {
    Field(String),
    Index(usize),
}

/// One step of the walk's position, borrowed from the object: the walk allocates nothing for
/// the fields it knows (every write of every pod passes here), only for an unknown one.
#[derive(Clone, Copy)]
enum At<'a> {
    Field(&'a str),
    Index(usize),
}

/// `spec.containers[0].foo`: a position as upstream prints it.
fn path_of(steps: &[At]) -> String {
    let mut path = String::new();
    for step in steps {
        match step {
            At::Field(f) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(f);
            }
            At::Index(i) => path.push_str(&format!("[{i}]")),
        }
    }
    path
}

/// `{"$ref": ObjectMeta}`: the schema of an embedded resource's `metadata`.
fn object_meta_schema() -> &'static Value {
    static SCHEMA: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| serde_json::json!({"$ref": OBJECT_META}))
}

/// Walks `value` against `schema`, collecting the fields it does not know.
fn walk<'a>(
    definitions: &'a Map<String, Value>,
    schema: &'a Value,
    value: &'a Value,
    at: &mut Vec<At<'a>>,
    out: &mut Vec<Unknown>,
) {
    let schema = resolve(definitions, schema);
    match value {
        Value::Object(fields) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            if properties.is_none() && !additional.is_some_and(Value::is_object) {
                // A free-form object (RawExtension, FieldsV1, a map of anything), or a
                // non-object type, whose mismatch is another error than an unknown field.
                return;
            }
            let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
            let embedded = schema["x-kubernetes-embedded-resource"] == true;
            for (name, v) in fields {
                let field_schema = match properties.and_then(|p| p.get(name)) {
                    Some(s) => Some(s),
                    None if embedded && name == "metadata" => Some(object_meta_schema()),
                    None if embedded && matches!(name.as_str(), "apiVersion" | "kind") => None,
                    None => match additional {
                        Some(s) if s.is_object() => Some(s),
                        Some(Value::Bool(true)) => None,
                        _ if preserve => None,
                        _ => {
                            at.push(At::Field(name));
                            let path = path_of(at);
                            at.pop();
                            out.push(Unknown {
                                path,
                                parent: at
                                    .iter()
                                    .map(|s| match s {
                                        At::Field(f) => Step::Field(f.to_string()),
                                        At::Index(i) => Step::Index(*i),
                                    })
                                    .collect(),
                                name: name.clone(),
                            });
                            continue;
                        }
                    },
                };
                if let Some(s) = field_schema {
                    at.push(At::Field(name));
                    walk(definitions, s, v, at, out);
                    at.pop();
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items").filter(|i| i.is_object()) {
                for (i, v) in items.iter().enumerate() {
                    at.push(At::Index(i));
                    walk(definitions, item, v, at, out);
                    at.pop();
                }
            }
        }
        _ => {}
    }
}

fn unknown(definitions: &Map<String, Value>, name: &str, obj: &Value) -> Vec<Unknown> {
    let mut out = Vec::new();
    if let Some(schema) = definitions.get(name) {
        walk(definitions, schema, obj, &mut Vec::new(), &mut out);
    }
    out
}

/// The paths of the fields of `obj` that definition `name` does not know.
pub fn unknown_fields(definitions: &Map<String, Value>, name: &str, obj: &Value) -> Vec<String> {
    unknown(definitions, name, obj)
        .into_iter()
        .map(|u| u.path)
        .collect()
}

/// Where each field of `obj` that definition `name` does not know is: the steps to it from the
/// root, each a field name (a JSON string) or a list index (a JSON number).
pub fn unknown_field_steps(
    definitions: &Map<String, Value>,
    name: &str,
    obj: &Value,
) -> Vec<Vec<Value>> {
    unknown(definitions, name, obj)
        .into_iter()
        .map(|u| {
            let mut steps: Vec<Value> = u
                .parent
                .iter()
                .map(|s| match s {
                    Step::Field(f) => Value::String(f.clone()),
                    Step::Index(i) => Value::from(*i),
                })
                .collect();
            steps.push(Value::String(u.name));
            steps
        })
        .collect()
}

/// Removes the fields of `obj` that definition `name` does not know, except those at a path in
/// `keep`, as kube-apiserver's decoding drops them; the paths removed.
pub fn prune(
    definitions: &Map<String, Value>,
    name: &str,
    obj: &mut Value,
    keep: &[String],
) -> Vec<String> {
    let mut removed = Vec::new();
    for u in unknown(definitions, name, obj) {
        if keep.contains(&u.path) {
            continue;
        }
        let mut parent = Some(&mut *obj);
        for step in &u.parent {
            parent = parent.and_then(|p| match step {
                Step::Field(f) => p.get_mut(f.as_str()),
                Step::Index(i) => p.get_mut(*i),
            });
        }
        if let Some(Value::Object(fields)) = parent {
            fields.remove(&u.name);
        }
        removed.push(u.path);
    }
    removed
}

/// kube-apiserver's message for unknown fields under `fieldValidation=Strict`:
/// `strict decoding error: unknown field "spec.foo", unknown field "spec.bar"`.
pub fn strict_decoding_message(fields: &[String]) -> String {
    let each: Vec<String> = fields
        .iter()
        .map(|f| format!("unknown field {f:?}"))
        .collect();
    format!("strict decoding error: {}", each.join(", "))
}

/// Definitions whose Go types take any JSON value (raw bytes kept as written).
const RAW: [&str; 3] = [
    "io.k8s.apimachinery.pkg.runtime.RawExtension",
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
];
/// A Quantity's Go type takes a JSON number as well as a string.
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/// kube-apiserver's decoding error for the first value of `obj` (of definition `name`) whose
/// JSON type its field's Go type cannot take, as Go's `encoding/json` words it:
/// `json: cannot unmarshal string into Go struct field ServiceSpec.spec.ports of type
/// []v1.ServicePort`. `None` when every value fits. JSON `null` fits every field (Go decodes it
/// to the zero value); fields the definition does not know are the unknown-field check's.
pub fn type_error(definitions: &Map<String, Value>, name: &str, obj: &Value) -> Option<String> {
    let schema = definitions.get(name)?;
    let mut path = Vec::new();
    // The walk allocates nothing until it finds a misfit: the path is a stack of borrowed
    // field names, joined only for the message (every write of every pod passes here).
    check_type(
        definitions,
        schema,
        Some(name),
        obj,
        short_name(name),
        &mut path,
    )
}

/// `ServiceSpec` for `io.k8s.api.core.v1.ServiceSpec`.
fn short_name(definition: &str) -> &str {
    definition.rsplit('.').next().unwrap_or(definition)
}

/// The definition a schema refers to, and the schema itself resolved.
fn resolve_named<'a>(
    definitions: &'a Map<String, Value>,
    schema: &'a Value,
) -> (&'a Value, Option<&'a str>) {
    let name = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/definitions/"));
    (resolve(definitions, schema), name)
}

/// `v1.ServiceSpec` for `io.k8s.api.core.v1.ServiceSpec`: the Go package's name and the type's.
fn go_named(definition: &str) -> String {
    let mut parts = definition.rsplit('.');
    let ty = parts.next().unwrap_or(definition);
    match parts.next() {
        Some(package) => format!("{package}.{ty}"),
        None => ty.to_string(),
    }
}

/// The Go type a schema stands for, as Go's errors name it.
fn go_type(definitions: &Map<String, Value>, schema: &Value) -> String {
    let (resolved, name) = resolve_named(definitions, schema);
    if let Some(name) = name {
        return go_named(name);
    }
    let format = resolved.get("format").and_then(Value::as_str);
    match resolved.get("type").and_then(Value::as_str) {
        Some("array") => format!(
            "[]{}",
            resolved
                .get("items")
                .map(|i| go_type(definitions, i))
                .unwrap_or_else(|| "interface {}".into())
        ),
        Some("object") => match resolved.get("additionalProperties") {
            Some(v) if v.is_object() => format!("map[string]{}", go_type(definitions, v)),
            _ => "map[string]interface {}".into(),
        },
        Some("string") if format == Some("byte") => "[]uint8".into(),
        Some("string") => "string".into(),
        Some("integer") if format == Some("int32") => "int32".into(),
        Some("integer") => "int64".into(),
        Some("number") => "float64".into(),
        Some("boolean") => "bool".into(),
        _ => "interface {}".into(),
    }
}

/// Go's word for a JSON value in an unmarshal error (`number 1.5` when a number does not fit
/// an integer type).
fn go_value_word(value: &Value, integer_target: bool) -> String {
    match value {
        Value::String(_) => "string".into(),
        Value::Number(n) if integer_target => format!("number {n}"),
        Value::Number(_) => "number".into(),
        Value::Bool(_) => "bool".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
        Value::Null => "null".into(),
    }
}

fn check_type<'a>(
    definitions: &'a Map<String, Value>,
    schema: &'a Value,
    name: Option<&'a str>,
    value: &'a Value,
    owner: &'a str,
    path: &mut Vec<&'a str>,
) -> Option<String> {
    if value.is_null() {
        return None;
    }
    let (resolved, name) = match resolve_named(definitions, schema) {
        (resolved, Some(referred)) => (resolved, Some(referred)),
        (resolved, None) => (resolved, name),
    };
    if name.is_some_and(|n| RAW.contains(&n)) {
        return None;
    }
    let format = resolved.get("format").and_then(Value::as_str);
    let ty = resolved.get("type").and_then(Value::as_str);
    let integer = |v: &Value, format: Option<&str>| match format {
        Some("int32") => v.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
        _ => v.is_i64() || v.is_u64(),
    };
    let fits = if format == Some("int-or-string") {
        value.is_string() || integer(value, Some("int32"))
    } else {
        match ty {
            Some("object") => value.is_object(),
            Some("array") => value.is_array(),
            Some("string") => value.is_string() || (name == Some(QUANTITY) && value.is_number()),
            Some("integer") => integer(value, format),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            _ => true,
        }
    };
    if !fits && !path.is_empty() {
        let integer_target = ty == Some("integer") && value.is_number();
        return Some(format!(
            "json: cannot unmarshal {} into Go struct field {owner}.{} of type {}",
            go_value_word(value, integer_target),
            path.join("."),
            go_type(definitions, schema)
        ));
    }
    match value {
        Value::Object(fields) => {
            if let Some(properties) = resolved.get("properties").and_then(Value::as_object) {
                let owner = name.map(short_name).unwrap_or(owner);
                for (field, v) in fields {
                    if let Some(s) = properties.get(field) {
                        path.push(field);
                        let found = check_type(definitions, s, None, v, owner, path);
                        path.pop();
                        if found.is_some() {
                            return found;
                        }
                    }
                }
            } else if let Some(values) = resolved
                .get("additionalProperties")
                .filter(|a| a.is_object())
            {
                for v in fields.values() {
                    if let Some(e) = check_type(definitions, values, None, v, owner, path) {
                        return Some(e);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = resolved.get("items").filter(|i| i.is_object()) {
                for v in items {
                    if let Some(e) = check_type(definitions, item, None, v, owner, path) {
                        return Some(e);
                    }
                }
            }
        }
        _ => {}
    }
    None
}

/// A timestamp's Go type (`metav1.Time`, stored to the second).
const TIME: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Time";
/// A timestamp to the microsecond (`metav1.MicroTime`: Events, Leases).
const MICRO_TIME: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime";

/// Stands for an inline `[]byte` field (`format: byte`) among a definition's references.
const BYTES: &str = "[]byte";

/// The definitions whose Go types decode a value and encode it back in another form than it
/// came in: quantities and timestamps (and `[]byte`, inline, see [`BYTES`]).
fn is_reencoded(name: &str) -> bool {
    matches!(name, QUANTITY | TIME | MICRO_TIME | BYTES)
}

fn is_bytes(schema: &Value) -> bool {
    schema.get("format").and_then(Value::as_str) == Some("byte")
}

/// The definitions that hold a quantity, a timestamp or a `[]byte` somewhere below them
/// (`PodSpec`, `Container`, `ObjectMeta`, `Secret`, …): the re-encoding walk goes only into
/// these.
pub fn reencoded_holders(definitions: &Map<String, Value>) -> HashSet<String> {
    fn refs_in<'a>(schema: &'a Value, out: &mut Vec<&'a str>) {
        match schema {
            Value::Object(fields) => {
                for (k, v) in fields {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => {
                            if let Some(name) = r.strip_prefix("#/definitions/") {
                                out.push(name);
                            }
                        }
                        // A `[]byte` field, inline in its definition.
                        ("format", Value::String(f)) if f == "byte" => out.push(BYTES),
                        _ => refs_in(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| refs_in(i, out)),
            _ => {}
        }
    }
    let refs: Vec<(&str, Vec<&str>)> = definitions
        .iter()
        .map(|(name, schema)| {
            let mut out = Vec::new();
            refs_in(schema, &mut out);
            (name.as_str(), out)
        })
        .collect();
    let mut holders: HashSet<String> = HashSet::new();
    // To a fixed point: a definition holds one when it refers to one or to a holder.
    loop {
        let before = holders.len();
        for (name, to) in &refs {
            if !holders.contains(*name)
                && to.iter().any(|r| is_reencoded(r) || holders.contains(*r))
            {
                holders.insert(name.to_string());
            }
        }
        if holders.len() == before {
            return holders;
        }
    }
}

/// kube-apiserver decodes a body into its Go type and encodes that back, and two kinds of value
/// come back in another form than they were written:
/// - a Quantity in its canonical form: `1` for a written `1000m`, `512Mi` for `0.5Gi`, text for
///   a written number;
/// - a Time in UTC to the second (`2024-01-01T10:00:00.5+02:00` → `2024-01-01T08:00:00Z`), a
///   MicroTime in UTC to the microsecond; Go's zero time as `null`;
/// - a `[]byte` (a Secret's `data`) in standard base64, line breaks dropped.
///
/// The same here: each such value of `obj` (of definition `name`) rewritten (`Ok(true)` when
/// one changed), or, for one that does not parse, upstream's decoding error (the text of
/// `resource.ErrFormatWrong`, of Go's `time.ParseError` or of `base64.CorruptInputError`).
pub fn reencode(
    definitions: &Map<String, Value>,
    holders: &HashSet<String>,
    name: &str,
    obj: &mut Value,
) -> Result<bool, String> {
    let mut changed = false;
    if let Some(schema) = definitions.get(name).filter(|_| holders.contains(name)) {
        reencode_value(definitions, holders, schema, obj, &mut changed)?;
    }
    Ok(changed)
}

/// Whether a field's schema can lead to a re-encoded value (a map of strings, a plain string,
/// a definition holding none cannot): fields that cannot are not walked.
fn may_hold(holders: &HashSet<String>, schema: &Value) -> bool {
    if let Some(name) = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/definitions/"))
    {
        return is_reencoded(name) || holders.contains(name);
    }
    if schema.get("properties").is_some() || is_bytes(schema) {
        return true;
    }
    if let Some(items) = schema.get("items") {
        return may_hold(holders, items);
    }
    match schema.get("additionalProperties") {
        Some(values) if values.is_object() => may_hold(holders, values),
        _ => false,
    }
}

/// The stored form of one re-encoded value, or `None` when it stays as it is.
fn reencoded(name: &str, value: &Value) -> Result<Option<Value>, String> {
    let canonical = match (name, value) {
        (QUANTITY, Value::String(s)) => quantity::canonical_text(s).map(Value::String),
        (QUANTITY, Value::Number(n)) => quantity::canonical_text(&n.to_string()).map(Value::String),
        (QUANTITY, _) => return Ok(None),
        (_, Value::String(s)) => {
            let layout = if name == MICRO_TIME {
                go_time::Layout::Rfc3339Micro
            } else {
                go_time::Layout::Rfc3339
            };
            return go_time::canonical(layout, s)
                .map(|t| Some(t.map_or(Value::Null, Value::String)));
        }
        // Another JSON type is the type check's to report; null is the zero value.
        _ => return Ok(None),
    };
    canonical
        .map(Some)
        .map_err(|_| quantity::FORMAT_MESSAGE.to_string())
}

fn reencode_value(
    definitions: &Map<String, Value>,
    holders: &HashSet<String>,
    schema: &Value,
    value: &mut Value,
    changed: &mut bool,
) -> Result<(), String> {
    let (resolved, name) = resolve_named(definitions, schema);
    match name {
        Some(n) if is_reencoded(n) => {
            if let Some(stored) = reencoded(n, value)?
                && stored != *value
            {
                *value = stored;
                *changed = true;
            }
            return Ok(());
        }
        Some(n) if !holders.contains(n) => return Ok(()),
        _ => {}
    }
    if is_bytes(resolved) {
        // Go's `[]byte`: base64 decoded, written back in standard base64.
        if let Value::String(text) = value {
            let stored = go_base64::canonical(text)?;
            if stored != *text {
                *text = stored;
                *changed = true;
            }
        }
        return Ok(());
    }
    match value {
        Value::Object(fields) => {
            if let Some(properties) = resolved.get("properties").and_then(Value::as_object) {
                for (field, v) in fields.iter_mut() {
                    if let Some(s) = properties.get(field)
                        && may_hold(holders, s)
                    {
                        reencode_value(definitions, holders, s, v, changed)?;
                    }
                }
            } else if let Some(values) = resolved
                .get("additionalProperties")
                .filter(|a| a.is_object() && may_hold(holders, a))
            {
                for v in fields.values_mut() {
                    reencode_value(definitions, holders, values, v, changed)?;
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = resolved
                .get("items")
                .filter(|i| i.is_object() && may_hold(holders, i))
            {
                for v in items {
                    reencode_value(definitions, holders, item, v, changed)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}
