//! JSON objects (as Kubernetes' `encoding/json` writes them) ↔ protobuf messages, driven by
//! the message descriptors: proto field names are the JSON names, so one walk serves every
//! kind, and the types whose JSON form is not their message shape are special-cased here.

use base64::Engine;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage,
    Value as Proto,
};
use serde_json::{Map, Number, Value};

use super::ProtobufError;
use super::time;

const TIME: &str = "apimachinery.pkg.apis.meta.v1.Time";
const MICRO_TIME: &str = "apimachinery.pkg.apis.meta.v1.MicroTime";
const DURATION: &str = "apimachinery.pkg.apis.meta.v1.Duration";
const FIELDS_V1: &str = "apimachinery.pkg.apis.meta.v1.FieldsV1";
const QUANTITY: &str = "apimachinery.pkg.api.resource.Quantity";
const QUANTITY_VALUE: &str = "apimachinery.pkg.api.resource.QuantityValue";
const INT_OR_STRING: &str = "apimachinery.pkg.util.intstr.IntOrString";
const RAW_EXTENSION: &str = "apimachinery.pkg.runtime.RawExtension";
const DAEMON_ENDPOINT: &str = "api.core.v1.DaemonEndpoint";
const APIEXTENSIONS: &str = "apiextensions_apiserver.pkg.apis.apiextensions.";

/// How a message's JSON form relates to its fields.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    /// An object whose keys are the field names.
    Object,
    /// `metav1.Time`: RFC 3339 to the second, `null` when zero.
    Time,
    /// `metav1.MicroTime`: RFC 3339 with six fractional digits.
    MicroTime,
    /// `metav1.Duration`: Go's duration string (`1h2m3s`).
    Duration,
    /// `resource.Quantity`: its canonical string.
    Quantity,
    /// `intstr.IntOrString`: a number or a string.
    IntOrString,
    /// `runtime.RawExtension`: the embedded object itself.
    RawExtension,
    /// `metav1.FieldsV1`, `apiextensions.JSON`: a JSON document kept as bytes.
    RawJson,
    /// A Go slice type (`ExtraValue`, `Verbs`): its `items` as an array.
    Items,
    /// `JSONSchemaPropsOrArray`: a schema or an array of schemas.
    SchemaOrArray,
    /// `JSONSchemaPropsOrBool`: a schema or a boolean.
    SchemaOrBool,
    /// `JSONSchemaPropsOrStringArray`: a schema or an array of property names.
    SchemaOrStrings,
}

fn shape(desc: &MessageDescriptor) -> Shape {
    let name = desc.full_name();
    match name {
        TIME => return Shape::Time,
        MICRO_TIME => return Shape::MicroTime,
        DURATION => return Shape::Duration,
        FIELDS_V1 => return Shape::RawJson,
        QUANTITY | QUANTITY_VALUE => return Shape::Quantity,
        INT_OR_STRING => return Shape::IntOrString,
        RAW_EXTENSION => return Shape::RawExtension,
        _ => {}
    }
    if name.starts_with(APIEXTENSIONS) {
        match desc.name() {
            "JSON" => return Shape::RawJson,
            "JSONSchemaPropsOrArray" => return Shape::SchemaOrArray,
            "JSONSchemaPropsOrBool" => return Shape::SchemaOrBool,
            "JSONSchemaPropsOrStringArray" => return Shape::SchemaOrStrings,
            _ => {}
        }
    }
    // Go slice types with a message of their own (`type ExtraValue []string`).
    if matches!(desc.name(), "ExtraValue" | "Verbs") {
        return Shape::Items;
    }
    Shape::Object
}

/// Embedded Go structs (`json:",inline"`): a field of their own in protobuf, their fields
/// side by side with the outer ones in JSON (found by comparing the protos with v1.33's
/// OpenAPI). `localObjectReference` is inline wherever it appears.
const INLINE: &[(&str, &str)] = &[
    ("Probe", "handler"),
    ("Volume", "volumeSource"),
    ("PersistentVolumeSpec", "persistentVolumeSource"),
    ("EphemeralContainer", "ephemeralContainerCommon"),
    ("IngressRule", "ingressRuleValue"),
    ("DeviceAllocationConfiguration", "deviceConfiguration"),
    ("DeviceClaimConfiguration", "deviceConfiguration"),
    ("DeviceClassConfiguration", "deviceConfiguration"),
    ("NamedRuleWithOperations", "ruleWithOperations"),
    ("RuleWithOperations", "rule"),
];

pub(super) fn is_inline(desc: &MessageDescriptor, field: &FieldDescriptor) -> bool {
    let name = field.name();
    name == "localObjectReference"
        || INLINE
            .iter()
            .any(|(message, inline)| *inline == name && *message == desc.name())
}

/// The inline field of `desc` whose struct (or a struct inline in it) has the JSON `key`.
fn inline_field_for_key(desc: &MessageDescriptor, key: &str) -> Option<FieldDescriptor> {
    desc.fields().find(|field| {
        is_inline(desc, field)
            && matches!(field.kind(), Kind::Message(inner)
                if field_for_key(&inner, key).is_some_and(|f| !is_inline(&inner, &f))
                    || inline_field_for_key(&inner, key).is_some())
    })
}

fn is_schema_props(desc: &MessageDescriptor) -> bool {
    desc.full_name().starts_with(APIEXTENSIONS) && desc.name() == "JSONSchemaProps"
}

/// The JSON key of a field. go-to-protobuf names fields after their JSON keys, except a few
/// Go-named ones (`Webhooks`, `Expression`) and JSONSchemaProps' `$ref` and `x-kubernetes-*`.
pub(super) fn json_key(desc: &MessageDescriptor, field: &FieldDescriptor) -> String {
    let name = field.name();
    if is_schema_props(desc) {
        match name {
            "ref" => return "$ref".into(),
            "schema" => return "$schema".into(),
            _ => {
                if let Some(rest) = name.strip_prefix("xKubernetes") {
                    let mut key = String::from("x-kubernetes");
                    for c in rest.chars() {
                        if c.is_ascii_uppercase() {
                            key.push('-');
                            key.push(c.to_ascii_lowercase());
                        } else {
                            key.push(c);
                        }
                    }
                    return key;
                }
            }
        }
    }
    // Go initialisms the generator lower-cased by one letter only.
    match name {
        "aPIGroup" => return "apiGroup".into(),
        "uID" => return "uid".into(),
        _ => {}
    }
    let mut chars = name.chars();
    match chars.next() {
        Some(first) if first.is_ascii_uppercase() && desc.full_name() != DAEMON_ENDPOINT => {
            first.to_ascii_lowercase().to_string() + chars.as_str()
        }
        _ => name.to_string(),
    }
}

/// The field a JSON key names, if the message has one.
fn field_for_key(desc: &MessageDescriptor, key: &str) -> Option<FieldDescriptor> {
    if let Some(field) = desc.get_field_by_name(key) {
        // Every ordinary field (lower-case, not renamed): no need to build its key.
        let name = field.name();
        let ordinary = name.starts_with(|c: char| c.is_ascii_lowercase())
            && !matches!(name, "aPIGroup" | "uID")
            && !is_schema_props(desc);
        // `Port` of a DaemonEndpoint too.
        if ordinary || json_key(desc, &field) == key {
            return Some(field);
        }
    }
    if is_schema_props(desc) {
        let name = match key {
            "$ref" => "ref".to_string(),
            "$schema" => "schema".to_string(),
            _ => match key.strip_prefix("x-kubernetes-") {
                Some(rest) => {
                    let mut name = String::from("xKubernetes");
                    for part in rest.split('-') {
                        let mut chars = part.chars();
                        if let Some(first) = chars.next() {
                            name.push(first.to_ascii_uppercase());
                            name.push_str(chars.as_str());
                        }
                    }
                    name
                }
                None => return None,
            },
        };
        return desc.get_field_by_name(&name);
    }
    let renamed = match key {
        "apiGroup" => "aPIGroup".to_string(),
        "uid" => "uID".to_string(),
        _ => {
            let mut chars = key.chars();
            let first = chars.next()?;
            first.to_ascii_uppercase().to_string() + chars.as_str()
        }
    };
    desc.get_field_by_name(&renamed)
        .filter(|f| json_key(desc, f) == key)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn mismatch(expected: &str, got: &Value) -> ProtobufError {
    ProtobufError::Invalid {
        path: String::new(),
        message: format!("expected {expected}, got {}", kind_of(got)),
    }
}

fn invalid(message: impl Into<String>) -> ProtobufError {
    ProtobufError::Invalid {
        path: String::new(),
        message: message.into(),
    }
}

/// The protobuf wire bytes of a JSON value as the message `desc`, appended to `out`. Written
/// directly (not through a `DynamicMessage`): nested messages are encoded once, into a scratch
/// buffer, and copied after their length.
pub fn encode_message(
    desc: &MessageDescriptor,
    json: &Value,
    out: &mut Vec<u8>,
) -> Result<(), ProtobufError> {
    let field = |name: &str| {
        desc.get_field_by_name(name).ok_or_else(|| {
            ProtobufError::Schema(format!("{} has no field {name}", desc.full_name()))
        })
    };
    match shape(desc) {
        Shape::Object => {
            let object = json
                .as_object()
                .ok_or_else(|| mismatch("an object", json))?;
            let mut inline: Vec<(FieldDescriptor, Map<String, Value>)> = Vec::new();
            for (key, value) in object {
                if value.is_null() {
                    continue;
                }
                if let Some(field) = field_for_key(desc, key).filter(|f| !is_inline(desc, f)) {
                    encode_field(&field, value, out).map_err(|e| e.at(key))?;
                } else if let Some(field) = inline_field_for_key(desc, key) {
                    match inline.iter_mut().find(|(f, _)| *f == field) {
                        Some((_, fields)) => {
                            fields.insert(key.clone(), value.clone());
                        }
                        None => {
                            inline.push((field, Map::from_iter([(key.clone(), value.clone())])))
                        }
                    }
                }
                // Fields the v1.33 schema does not know (apiVersion/kind, newer fields) are
                // left out, as a Go client of that version would drop them.
            }
            for (field, fields) in inline {
                encode_field(&field, &Value::Object(fields), out)?;
            }
        }
        Shape::Time | Shape::MicroTime => {
            let text = json
                .as_str()
                .ok_or_else(|| mismatch("a timestamp string", json))?;
            let (seconds, nanos) = time::parse_rfc3339(text).map_err(invalid)?;
            wire::varint_field(1, seconds as u64, out);
            wire::varint_field(2, i64::from(nanos) as u64, out);
        }
        Shape::Duration => {
            let text = json
                .as_str()
                .ok_or_else(|| mismatch("a duration string", json))?;
            let nanos = time::parse_go_duration(text).map_err(invalid)?;
            wire::varint_field(field("duration")?.number(), nanos as u64, out);
        }
        Shape::Quantity => {
            let text = match json {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => return Err(mismatch("a quantity", other)),
            };
            wire::bytes_field(1, text.as_bytes(), out);
        }
        Shape::IntOrString => {
            // Go writes all three fields.
            let (kind, int, text) = match json {
                Value::String(s) => (1, 0, s.as_str()),
                Value::Number(n) => {
                    let int = n
                        .as_i64()
                        .and_then(|i| i32::try_from(i).ok())
                        .ok_or_else(|| invalid(format!("{n} is not a 32-bit integer")))?;
                    (0, int, "")
                }
                other => return Err(mismatch("an integer or a string", other)),
            };
            wire::varint_field(1, kind, out);
            wire::varint_field(2, i64::from(int) as u64, out);
            wire::bytes_field(3, text.as_bytes(), out);
        }
        Shape::RawExtension | Shape::RawJson => {
            let raw = serde_json::to_vec(json).map_err(|e| invalid(e.to_string()))?;
            wire::bytes_field(1, &raw, out);
        }
        Shape::Items => encode_field(&field("items")?, json, out)?,
        Shape::SchemaOrArray | Shape::SchemaOrStrings => {
            let list = if shape(desc) == Shape::SchemaOrArray {
                "jSONSchemas"
            } else {
                "property"
            };
            let name = if json.is_array() { list } else { "schema" };
            encode_field(&field(name)?, json, out)?;
        }
        Shape::SchemaOrBool => {
            let allows = field("allows")?.number();
            match json {
                Value::Bool(b) => wire::varint_field(allows, u64::from(*b), out),
                _ => {
                    wire::varint_field(allows, 1, out);
                    encode_field(&field("schema")?, json, out)?;
                }
            }
        }
    }
    Ok(())
}

fn encode_field(
    field: &FieldDescriptor,
    json: &Value,
    out: &mut Vec<u8>,
) -> Result<(), ProtobufError> {
    let number = field.number();
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            return Err(ProtobufError::Schema(format!(
                "map {} without entry",
                field.full_name()
            )));
        };
        let value_kind = entry.map_entry_value_field().kind();
        let object = json
            .as_object()
            .ok_or_else(|| mismatch("an object", json))?;
        let mut scratch = Vec::new();
        for (key, item) in object {
            scratch.clear();
            wire::bytes_field(1, key.as_bytes(), &mut scratch);
            if !item.is_null() {
                encode_single(2, &value_kind, item, &mut scratch).map_err(|e| e.at(key))?;
            }
            wire::bytes_field(number, &scratch, out);
        }
        return Ok(());
    }
    let kind = field.kind();
    if field.is_list() {
        let items = json.as_array().ok_or_else(|| mismatch("an array", json))?;
        for (i, item) in items.iter().enumerate() {
            encode_single(number, &kind, item, out).map_err(|e| e.at(&i.to_string()))?;
        }
        return Ok(());
    }
    encode_single(number, &kind, json, out)
}

fn integer(json: &Value) -> Result<i64, ProtobufError> {
    match json {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| invalid(format!("{n} is not an integer"))),
        other => Err(mismatch("an integer", other)),
    }
}

fn encode_single(
    number: u32,
    kind: &Kind,
    json: &Value,
    out: &mut Vec<u8>,
) -> Result<(), ProtobufError> {
    let narrow =
        |i: i64| i32::try_from(i).map_err(|_| invalid(format!("{i} does not fit in 32 bits")));
    match kind {
        Kind::Message(desc) => {
            // In place: a one-byte length first, widened once the message's length is known
            // (a shift of its bytes, no buffer of its own).
            let at = wire::start_nested(number, out);
            encode_message(desc, json, out)?;
            wire::finish_nested(at, out);
        }
        Kind::String => {
            let text = json.as_str().ok_or_else(|| mismatch("a string", json))?;
            wire::bytes_field(number, text.as_bytes(), out);
        }
        Kind::Bytes => {
            let text = json.as_str().ok_or_else(|| mismatch("base64 data", json))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| invalid(format!("illegal base64 data: {e}")))?;
            wire::bytes_field(number, &bytes, out);
        }
        Kind::Bool => {
            let b = json.as_bool().ok_or_else(|| mismatch("a boolean", json))?;
            wire::varint_field(number, u64::from(b), out);
        }
        // Negative int32s are sign-extended to ten bytes, as protobuf specifies.
        Kind::Int32 => wire::varint_field(number, i64::from(narrow(integer(json)?)?) as u64, out),
        Kind::Int64 => wire::varint_field(number, integer(json)? as u64, out),
        Kind::Sint32 | Kind::Sint64 => {
            let i = integer(json)?;
            wire::varint_field(number, ((i << 1) ^ (i >> 63)) as u64, out);
        }
        Kind::Uint32 | Kind::Uint64 => {
            let u =
                u64::try_from(integer(json)?).map_err(|_| invalid("not an unsigned integer"))?;
            wire::varint_field(number, u, out);
        }
        Kind::Fixed32 | Kind::Sfixed32 => {
            wire::fixed32_field(number, narrow(integer(json)?)? as u32, out)
        }
        Kind::Fixed64 | Kind::Sfixed64 => wire::fixed64_field(number, integer(json)? as u64, out),
        Kind::Double => {
            let f = json.as_f64().ok_or_else(|| mismatch("a number", json))?;
            wire::fixed64_field(number, f.to_bits(), out);
        }
        Kind::Float => {
            let f = json.as_f64().ok_or_else(|| mismatch("a number", json))? as f32;
            wire::fixed32_field(number, f.to_bits(), out);
        }
        Kind::Enum(e) => {
            // No Kubernetes message uses enums (they are strings); kept for completeness.
            let name = json
                .as_str()
                .ok_or_else(|| mismatch("an enum name", json))?;
            let value = e
                .get_value_by_name(name)
                .ok_or_else(|| invalid(format!("unknown value {name:?}")))?;
            wire::varint_field(number, i64::from(value.number()) as u64, out);
        }
    }
    Ok(())
}

/// Protobuf's wire format: tags, varints, fixed-width numbers, length-delimited bytes.
mod wire {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn tag(number: u32, wire_type: u8, out: &mut Vec<u8>) {
        varint((u64::from(number) << 3) | u64::from(wire_type), out);
    }

    pub fn varint_field(number: u32, v: u64, out: &mut Vec<u8>) {
        tag(number, 0, out);
        varint(v, out);
    }

    pub fn fixed64_field(number: u32, v: u64, out: &mut Vec<u8>) {
        tag(number, 1, out);
        out.extend_from_slice(&v.to_le_bytes());
    }

    pub fn fixed32_field(number: u32, v: u32, out: &mut Vec<u8>) {
        tag(number, 5, out);
        out.extend_from_slice(&v.to_le_bytes());
    }

    /// Writes the tag of a nested message and a placeholder length; returns where it is.
    pub fn start_nested(number: u32, out: &mut Vec<u8>) -> usize {
        tag(number, 2, out);
        out.push(0);
        out.len() - 1
    }

    /// Sets the length of the nested message written since `start_nested` returned `at`.
    pub fn finish_nested(at: usize, out: &mut Vec<u8>) {
        let len = out.len() - at - 1;
        if len < 0x80 {
            out[at] = len as u8;
        } else {
            let (mut prefix, mut n, mut v) = ([0u8; 10], 0, len as u64);
            while v >= 0x80 {
                prefix[n] = (v as u8) | 0x80;
                v >>= 7;
                n += 1;
            }
            prefix[n] = v as u8;
            out.splice(at..at + 1, prefix[..=n].iter().copied());
        }
    }

    pub fn bytes_field(number: u32, bytes: &[u8], out: &mut Vec<u8>) {
        tag(number, 2, out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }
}

/// A message as the JSON Kubernetes writes for it.
pub fn to_json(msg: &DynamicMessage) -> Result<Value, ProtobufError> {
    let desc = msg.descriptor();
    let field = |name: &str| desc.get_field_by_name(name).filter(|f| msg.has_field(f));
    let get = |name: &str| field(name).map(|f| msg.get_field(&f).into_owned());
    Ok(match shape(&desc) {
        Shape::Object => {
            let mut out = Map::new();
            for (field, value) in msg.fields() {
                let json = field_json(&field, value).map_err(|e| e.at(field.name()))?;
                match json {
                    Some(Value::Object(fields)) if is_inline(&desc, &field) => out.extend(fields),
                    Some(json) => {
                        out.insert(json_key(&desc, &field), json);
                    }
                    None => {}
                }
            }
            Value::Object(out)
        }
        shape @ (Shape::Time | Shape::MicroTime) => {
            // An empty message is Go's zero time, which encodes as null.
            if field("seconds").is_none() && field("nanos").is_none() {
                return Ok(Value::Null);
            }
            let seconds = get("seconds").and_then(|v| v.as_i64()).unwrap_or(0);
            let nanos = get("nanos").and_then(|v| v.as_i32()).unwrap_or(0);
            let text = if shape == Shape::Time {
                time::format_rfc3339(seconds, nanos, false)
            } else {
                time::format_rfc3339(seconds, nanos, true)
            };
            Value::String(text.map_err(invalid)?)
        }
        Shape::Duration => {
            let nanos = get("duration").and_then(|v| v.as_i64()).unwrap_or(0);
            Value::String(time::format_go_duration(nanos))
        }
        Shape::Quantity => match get("string") {
            Some(Proto::String(s)) if !s.is_empty() => Value::String(s),
            // The zero Quantity.
            _ => Value::String("0".into()),
        },
        Shape::IntOrString => {
            if get("type").and_then(|v| v.as_i64()) == Some(1) {
                Value::String(
                    get("strVal")
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                )
            } else {
                Value::from(get("intVal").and_then(|v| v.as_i32()).unwrap_or(0))
            }
        }
        Shape::RawExtension => match get("raw") {
            Some(Proto::Bytes(raw)) if !raw.is_empty() => super::embedded(&raw)?,
            _ => Value::Null,
        },
        Shape::RawJson => {
            let raw = desc
                .fields()
                .next()
                .and_then(|f| msg.has_field(&f).then(|| msg.get_field(&f).into_owned()));
            match raw {
                Some(Proto::Bytes(raw)) if !raw.is_empty() => serde_json::from_slice(&raw)
                    .map_err(|e| invalid(format!("embedded JSON: {e}")))?,
                _ => Value::Null,
            }
        }
        Shape::Items => match field("items") {
            Some(f) => field_json(&f, &msg.get_field(&f))?.unwrap_or(Value::Null),
            None => Value::Array(Vec::new()),
        },
        Shape::SchemaOrArray | Shape::SchemaOrStrings => {
            let list = if shape(&desc) == Shape::SchemaOrArray {
                "jSONSchemas"
            } else {
                "property"
            };
            if let Some(f) = field(list) {
                field_json(&f, &msg.get_field(&f))?.unwrap_or(Value::Null)
            } else if let Some(f) = field("schema") {
                field_json(&f, &msg.get_field(&f))?.unwrap_or(Value::Null)
            } else {
                Value::Null
            }
        }
        Shape::SchemaOrBool => {
            if let Some(f) = field("schema") {
                field_json(&f, &msg.get_field(&f))?.unwrap_or(Value::Null)
            } else {
                Value::Bool(get("allows").and_then(|v| v.as_bool()).unwrap_or(false))
            }
        }
    })
}

/// A set field's JSON, or None when Go's `omitempty` leaves it out (an empty string, a zero
/// time).
fn field_json(field: &FieldDescriptor, value: &Proto) -> Result<Option<Value>, ProtobufError> {
    match value {
        Proto::List(items) => items
            .iter()
            .map(|item| single_json(item).map(|v| v.unwrap_or(Value::Null)))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| Some(Value::Array(v))),
        Proto::Map(map) => {
            let mut out = Map::new();
            for (key, item) in map {
                let key = match key {
                    MapKey::String(s) => s.clone(),
                    MapKey::Bool(b) => b.to_string(),
                    MapKey::I32(i) => i.to_string(),
                    MapKey::I64(i) => i.to_string(),
                    MapKey::U32(i) => i.to_string(),
                    MapKey::U64(i) => i.to_string(),
                };
                // Map values keep empty strings: `data: {"k": ""}`.
                let json = match item {
                    Proto::String(s) => Some(Value::String(s.clone())),
                    other => single_json(other)?,
                };
                out.insert(key, json.unwrap_or(Value::Null));
            }
            Ok(Some(Value::Object(out)))
        }
        Proto::String(s) if s.is_empty() && !field.is_list() => Ok(None),
        other => single_json(other).map(|v| v.filter(|v| !v.is_null())),
    }
}

fn single_json(value: &Proto) -> Result<Option<Value>, ProtobufError> {
    Ok(Some(match value {
        Proto::Bool(b) => Value::Bool(*b),
        Proto::I32(i) => Value::from(*i),
        Proto::I64(i) => Value::from(*i),
        Proto::U32(i) => Value::from(*i),
        Proto::U64(i) => Value::from(*i),
        Proto::F32(f) => float(f64::from(*f))?,
        Proto::F64(f) => float(*f)?,
        Proto::String(s) => Value::String(s.clone()),
        Proto::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Proto::EnumNumber(n) => Value::from(*n),
        Proto::Message(m) => to_json(m)?,
        Proto::List(_) | Proto::Map(_) => return Err(invalid("a nested list or map")),
    }))
}

fn float(f: f64) -> Result<Value, ProtobufError> {
    // Go writes integral floats without a fraction (`maximum: 5`).
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        return Ok(Value::from(f as i64));
    }
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| invalid(format!("{f} has no JSON form")))
}
