//! kube-openapi's schema validator (`validate.SchemaValidator`) over a custom resource, its
//! errors converted to field errors as apiextensions-apiserver's
//! `kubeOpenAPIResultToFieldErrors` does: the validators run in kube-openapi's order (type,
//! allOf/anyOf/oneOf/not, string, format, number, array, enum, object) and each error keeps its
//! upstream words, path and error type.

use std::collections::HashMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use localfargate_core::validation::{ErrorType, FieldError, go_quote};
use regex::Regex;
use serde_json::{Map, Value};

use super::formats;
use super::report::{error, go_float, invalid, not_supported, too_long, too_many};

/// Compiled `pattern`s by their text; `None` for a pattern that does not compile.
pub(crate) type Patterns = HashMap<String, Option<Regex>>;

/// A number as the API server decodes it: integral JSON numbers are `int64`, the rest `float64`.
#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn of(n: &serde_json::Number) -> Num {
        match n.as_i64() {
            Some(i) => Num::Int(i),
            None => Num::Float(n.as_f64().unwrap_or(0.0)),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn value(self) -> Value {
        match self {
            Num::Int(i) => Value::from(i),
            Num::Float(f) => Value::from(f),
        }
    }
}

/// The field path of an error named `path` (kube-openapi names the root `""`, and required
/// fields at the root `.name`).
fn field_of(path: &str) -> &str {
    path.strip_prefix('.').unwrap_or(path)
}

/// The types a schema admits: `x-kubernetes-int-or-string` is `integer,string`.
fn types(s: &JSONSchemaProps) -> Vec<&str> {
    if s.x_kubernetes_int_or_string == Some(true) {
        return vec!["integer", "string"];
    }
    match s.type_.as_deref() {
        Some(t) if !t.is_empty() => vec![t],
        _ => Vec::new(),
    }
}

/// A plain (non-`Validation`) kube-openapi error: reported against no field with value `""`.
fn plain(detail: String) -> FieldError {
    error(ErrorType::Invalid, "", Some(Value::from("")), detail)
}

fn type_invalid(path: &str, type_name: &str, value: &str) -> FieldError {
    error(
        ErrorType::TypeInvalid,
        field_of(path),
        Some(Value::from(value)),
        format!(
            "{path} in body must be of type {type_name}: {}",
            go_quote(value)
        ),
    )
}

pub(crate) struct Validator<'a> {
    pub(crate) patterns: &'a Patterns,
}

impl Validator<'_> {
    /// `SchemaValidator.Validate`: all errors of `data` against `s` at `path`.
    pub(crate) fn validate(
        &self,
        s: &JSONSchemaProps,
        data: &Value,
        path: &str,
    ) -> Vec<FieldError> {
        let mut out = Vec::new();
        if data.is_null() {
            self.check_type(s, data, path, &mut out);
            check_enum(s, data, path, &mut out);
            return out;
        }
        self.check_type(s, data, path, &mut out);
        self.check_junctors(s, data, path, &mut out);
        if let Value::String(text) = data {
            self.check_string(s, text, path, &mut out);
            check_format(s, text, path, &mut out);
        }
        if let Value::Number(n) = data {
            check_number(s, Num::of(n), path, &mut out);
        }
        if let Value::Array(items) = data {
            self.check_array(s, items, path, &mut out);
        }
        check_enum(s, data, path, &mut out);
        if let Value::Object(map) = data {
            self.check_object(s, map, path, &mut out);
        }
        out
    }

    /// `typeValidator`.
    fn check_type(&self, s: &JSONSchemaProps, data: &Value, path: &str, out: &mut Vec<FieldError>) {
        let types = types(s);
        let format = formats::effective(s.format.as_deref());
        if types.is_empty() && format.is_empty() {
            return;
        }
        let joined = types.join(",");
        let (sch_type, data_format) = match data {
            Value::Null => {
                if !types.is_empty() && !types.contains(&"null") && s.nullable != Some(true) {
                    out.push(type_invalid(path, &joined, "null"));
                }
                return;
            }
            Value::Bool(_) => ("boolean", ""),
            Value::String(_) => ("string", ""),
            Value::Number(n) => match Num::of(n) {
                Num::Int(_) => ("integer", "int64"),
                Num::Float(_) => ("number", "float64"),
            },
            Value::Array(_) => ("array", ""),
            Value::Object(_) => ("object", ""),
        };
        let is_float_int = match data {
            Value::Number(n) => {
                sch_type == "number"
                    && is_json_integer(n.as_f64().unwrap_or(0.5))
                    && types.contains(&"integer")
            }
            _ => false,
        };
        let is_int_float = sch_type == "integer" && types.contains(&"number");
        let stringish = matches!(data, Value::String(_) | Value::Array(_));
        let numeric = types.contains(&"number") || types.contains(&"integer");
        let type_admits =
            types.contains(&sch_type) || data_format == format || is_float_int || is_int_float;
        if !stringish && !format.is_empty() && !type_admits {
            out.push(type_invalid(path, format, data_format));
            return;
        }
        // A string format on a string (or array) is the format validator's business.
        if !numeric && !format.is_empty() && stringish {
            return;
        }
        if !(types.contains(&sch_type) || is_float_int || is_int_float) {
            out.push(type_invalid(path, &joined, sch_type));
        }
    }

    /// `schemaPropsValidator`: allOf, anyOf, oneOf and not, each branch validated at `path`.
    fn check_junctors(
        &self,
        s: &JSONSchemaProps,
        data: &Value,
        path: &str,
        out: &mut Vec<FieldError>,
    ) {
        let quoted = go_quote(path);
        if let Some(any_of) = s.any_of.as_ref().filter(|v| !v.is_empty()) {
            let mut best: Option<Vec<FieldError>> = None;
            let mut succeeded = false;
            for branch in any_of {
                let errors = self.validate(branch, data, path);
                if errors.is_empty() {
                    succeeded = true;
                    break;
                }
                if best.is_none() {
                    best = Some(errors);
                }
            }
            if !succeeded {
                out.push(plain(format!(
                    "{quoted} must validate at least one schema (anyOf)"
                )));
                out.extend(best.unwrap_or_default());
            }
        }
        if let Some(one_of) = s.one_of.as_ref().filter(|v| !v.is_empty()) {
            let mut best: Option<Vec<FieldError>> = None;
            let mut validated = 0;
            for branch in one_of {
                let errors = self.validate(branch, data, path);
                if errors.is_empty() {
                    validated += 1;
                } else if validated == 0 && best.is_none() {
                    best = Some(errors);
                }
            }
            if validated != 1 {
                let additional = if validated == 0 {
                    "Found none valid".to_string()
                } else {
                    format!("Found {validated} valid alternatives")
                };
                out.push(plain(format!(
                    "{quoted} must validate one and only one schema (oneOf). {additional}"
                )));
                if validated == 0 {
                    out.extend(best.unwrap_or_default());
                }
            }
        }
        if let Some(all_of) = s.all_of.as_ref().filter(|v| !v.is_empty()) {
            let mut validated = 0;
            for branch in all_of {
                let errors = self.validate(branch, data, path);
                if errors.is_empty() {
                    validated += 1;
                }
                out.extend(errors);
            }
            if validated != all_of.len() {
                let additional = if validated == 0 {
                    ". None validated"
                } else {
                    ""
                };
                out.push(plain(format!(
                    "{quoted} must validate all the schemas (allOf){additional}"
                )));
            }
        }
        if let Some(not) = &s.not
            && self.validate(not, data, path).is_empty()
        {
            out.push(plain(format!(
                "{quoted} must not validate the schema (not)"
            )));
        }
    }

    /// `stringValidator`: maxLength, minLength, pattern; the first failure only.
    fn check_string(&self, s: &JSONSchemaProps, text: &str, path: &str, out: &mut Vec<FieldError>) {
        let length = text.chars().count() as i64;
        let field = field_of(path);
        let data = Value::from(text);
        if let Some(max) = s.max_length
            && length > max
        {
            out.push(too_long(field, max));
            return;
        }
        if let Some(min) = s.min_length
            && length < min
        {
            out.push(invalid(
                field,
                &data,
                format!("{path} in body should be at least {min} chars long"),
            ));
            return;
        }
        if let Some(pattern) = s.pattern.as_deref().filter(|p| !p.is_empty()) {
            match self.patterns.get(pattern) {
                Some(Some(re)) => {
                    if !re.is_match(text) {
                        out.push(invalid(
                            field,
                            &data,
                            format!("{path} in body should match '{pattern}'"),
                        ));
                    }
                }
                _ => out.push(invalid(
                    field,
                    &data,
                    format!("{path} in body should match '{pattern}, but pattern is invalid'"),
                )),
            }
        }
    }

    /// `schemaSliceValidator`: items, minItems, maxItems, uniqueItems.
    fn check_array(
        &self,
        s: &JSONSchemaProps,
        items: &[Value],
        path: &str,
        out: &mut Vec<FieldError>,
    ) {
        match &s.items {
            Some(JSONSchemaPropsOrArray::Schema(item)) => {
                for (i, value) in items.iter().enumerate() {
                    out.extend(self.validate(item, value, &format!("{path}[{i}]")));
                }
            }
            Some(JSONSchemaPropsOrArray::Schemas(list)) => {
                for (i, (item, value)) in list.iter().zip(items).enumerate() {
                    out.extend(self.validate(item, value, &format!("{path}[{i}]")));
                }
            }
            None => {}
        }
        let size = items.len();
        let field = field_of(path);
        if let Some(min) = s.min_items
            && (size as i64) < min
        {
            out.push(invalid(
                field,
                &Value::from(size),
                format!("{path} in body should have at least {min} items"),
            ));
        }
        if let Some(max) = s.max_items
            && (size as i64) > max
        {
            out.push(too_many(field, size, max));
        }
        if s.unique_items == Some(true) {
            let mut seen: Vec<&Value> = Vec::new();
            for item in items {
                if seen.iter().any(|v| json_equal(v, item)) {
                    out.push(invalid(
                        field,
                        &Value::from(""),
                        format!("{path} in body shouldn't contain duplicates"),
                    ));
                    break;
                }
                seen.push(item);
            }
        }
    }

    /// `objectValidator`: minProperties, maxProperties, additionalProperties, properties,
    /// required. Keys are visited in sorted order (Go's map order is random).
    fn check_object(
        &self,
        s: &JSONSchemaProps,
        map: &Map<String, Value>,
        path: &str,
        out: &mut Vec<FieldError>,
    ) {
        let field = field_of(path);
        let count = map.len();
        if let Some(min) = s.min_properties
            && (count as i64) < min
        {
            out.push(invalid(
                field,
                &Value::from(count),
                format!("{path} in body should have at least {min} properties"),
            ));
        }
        if let Some(max) = s.max_properties
            && (count as i64) > max
        {
            out.push(too_many(field, count, max));
        }
        let properties = s.properties.as_ref();
        let known = |k: &str| properties.is_some_and(|p| p.contains_key(k));
        let child = |k: &str| {
            if path.is_empty() {
                k.to_string()
            } else {
                format!("{path}.{k}")
            }
        };
        match &s.additional_properties {
            Some(JSONSchemaPropsOrBool::Bool(false)) => {
                for key in map.keys().filter(|k| !known(k)) {
                    out.push(invalid(
                        field,
                        &Value::from(key.as_str()),
                        format!("{path}.{key} in body is a forbidden property"),
                    ));
                }
            }
            Some(JSONSchemaPropsOrBool::Schema(extra)) => {
                for (key, value) in map.iter().filter(|(k, _)| !known(k)) {
                    out.extend(self.validate(extra, value, &format!("{path}.{key}")));
                }
            }
            _ => {}
        }
        for (name, prop) in properties.into_iter().flatten() {
            if let Some(value) = map.get(name) {
                out.extend(self.validate(prop, value, &child(name)));
            }
        }
        for name in s.required.iter().flatten() {
            if !map.contains_key(name) {
                out.push(error(
                    ErrorType::Required,
                    field_of(&format!("{path}.{name}")),
                    None,
                    "",
                ));
            }
        }
    }
}

/// `basicCommonValidator`: enum. Numbers compare by value, the rest as JSON.
fn check_enum(s: &JSONSchemaProps, data: &Value, path: &str, out: &mut Vec<FieldError>) {
    let Some(values) = s.enum_.as_ref().filter(|v| !v.is_empty()) else {
        return;
    };
    if !data.is_null() && values.iter().any(|v| json_equal(&v.0, data)) {
        return;
    }
    let supported: Vec<String> = values
        .iter()
        .map(|v| match &v.0 {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    out.push(not_supported(field_of(path), data, &supported));
}

/// `formatValidator`: a string against a known format (`date-time`, `uuid`, `ipv4`, ...).
fn check_format(s: &JSONSchemaProps, text: &str, path: &str, out: &mut Vec<FieldError>) {
    let format = formats::effective(s.format.as_deref());
    if format.is_empty() {
        return;
    }
    if formats::validates(format, text) == Some(false) {
        out.push(type_invalid(path, format, text));
    }
}

/// `numberValidator`: the value's and bounds' range for the type, then multipleOf, minimum,
/// maximum. (Numeric formats such as `int32` are stripped from custom resource schemas
/// upstream, so only the type's own range applies.)
fn check_number(s: &JSONSchemaProps, val: Num, path: &str, out: &mut Vec<FieldError>) {
    let type_name = match s.type_.as_deref() {
        _ if s.x_kubernetes_int_or_string == Some(true) => "",
        Some(t @ ("integer" | "number")) => t,
        _ => "",
    };
    let field = field_of(path);
    let data = val.value();
    if let Some(e) = range_error(val, type_name, "Checked", path) {
        out.push(plain(e));
    }
    if let Some(factor) = s.multiple_of {
        let bound = range_error(Num::Float(factor), type_name, "MultipleOf", path);
        let failure = match (&bound, val) {
            (None, Num::Int(i)) => {
                let f = factor as i64;
                if f <= 0 {
                    Some((
                        Value::from(f),
                        format!("factor MultipleOf declared for {path} must be positive: {f}"),
                    ))
                } else if i % f != 0 {
                    Some((
                        data.clone(),
                        format!("{path} in body should be a multiple of {f}"),
                    ))
                } else {
                    None
                }
            }
            _ => float_multiple(val.as_f64(), factor, path).map(|msg| (data.clone(), msg)),
        };
        if let Some(e) = bound {
            out.push(plain(e));
        }
        if let Some((value, msg)) = failure {
            out.push(invalid(field, &value, msg));
        }
    }
    if let Some(min) = s.minimum {
        let exclusive = s.exclusive_minimum == Some(true);
        let bound = range_error(Num::Float(min), type_name, "Minimum boundary", path);
        let failure = match (&bound, val) {
            (None, Num::Int(i)) => {
                let m = min as i64;
                let bad = if exclusive { i <= m } else { i < m };
                bad.then(|| min_message(path, exclusive, &m.to_string()))
            }
            _ => {
                let d = val.as_f64();
                let bad = if exclusive { d <= min } else { d < min };
                bad.then(|| min_message(path, exclusive, &go_float(min)))
            }
        };
        if let Some(e) = bound {
            out.push(plain(e));
        }
        if let Some(msg) = failure {
            out.push(invalid(field, &data, msg));
        }
    }
    if let Some(max) = s.maximum {
        let exclusive = s.exclusive_maximum == Some(true);
        let bound = range_error(Num::Float(max), type_name, "Maximum boundary", path);
        let failure = match (&bound, val) {
            (None, Num::Int(i)) => {
                let m = max as i64;
                let bad = if exclusive { i >= m } else { i > m };
                bad.then(|| max_message(path, exclusive, &m.to_string()))
            }
            _ => {
                let d = val.as_f64();
                let bad = if exclusive { d >= max } else { d > max };
                bad.then(|| max_message(path, exclusive, &go_float(max)))
            }
        };
        if let Some(e) = bound {
            out.push(plain(e));
        }
        if let Some(msg) = failure {
            out.push(invalid(field, &data, msg));
        }
    }
}

fn min_message(path: &str, exclusive: bool, bound: &str) -> String {
    if exclusive {
        format!("{path} in body should be greater than {bound}")
    } else {
        format!("{path} in body should be greater than or equal to {bound}")
    }
}

fn max_message(path: &str, exclusive: bool, bound: &str) -> String {
    if exclusive {
        format!("{path} in body should be less than {bound}")
    } else {
        format!("{path} in body should be less than or equal to {bound}")
    }
}

/// `MultipleOf` over floats.
fn float_multiple(data: f64, factor: f64, path: &str) -> Option<String> {
    if factor <= 0.0 {
        return Some(format!(
            "factor MultipleOf declared for {path} must be positive: {}",
            go_float(factor)
        ));
    }
    let mult = if factor < 1.0 {
        1.0 / factor * data
    } else {
        data / factor
    };
    (!is_json_integer(mult)).then(|| {
        format!(
            "{path} in body should be a multiple of {}",
            go_float(factor)
        )
    })
}

/// `IsValueValidAgainstRange` with no format: whether a value (or a bound) fits an `integer`
/// schema, by reparsing its decimal text as Go's `swag.ConvertInt64` does.
fn range_error(val: Num, type_name: &str, prefix: &str, path: &str) -> Option<String> {
    let text = match val {
        Num::Int(i) => i.to_string(),
        Num::Float(f) => decimal_text(f),
    };
    if type_name != "integer" || text.parse::<i64>().is_ok() {
        return None;
    }
    Some(format!(
        "{prefix} value must be of type {type_name} (default format) in {path}"
    ))
}

/// `strconv.FormatFloat(f, 'f', -1, 64)`.
fn decimal_text(f: f64) -> String {
    if f.is_finite() && f == f.trunc() && f.abs() < 1e21 {
        format!("{f:.0}")
    } else {
        format!("{f}")
    }
}

/// `swag.IsFloat64AJSONInteger`.
fn is_json_integer(f: f64) -> bool {
    const LIMIT: f64 = 9_007_199_254_740_991.0; // 2^53 - 1
    if !f.is_finite() || !(-LIMIT..=LIMIT).contains(&f) {
        return false;
    }
    let diff = (f - f.round()).abs();
    f == f.trunc() || diff / f.abs().max(f64::MIN_POSITIVE) < 1e-9
}

/// Equality of decoded JSON, numbers by value.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}
