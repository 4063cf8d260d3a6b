//! Field errors as apiextensions-apiserver words them, and values printed the way Go prints the
//! unstructured data (`int64`, `float64`, `string`, `map[string]interface{}`, `[]interface{}`) a
//! custom resource decodes to.

use localfargate_core::validation::{ErrorType, FieldError, go_quote, shown};
use serde_json::Value;

pub(crate) fn error(
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

pub(crate) fn required(field: &str, detail: impl Into<String>) -> FieldError {
    error(ErrorType::Required, field, None, detail)
}

pub(crate) fn forbidden(field: &str, detail: impl Into<String>) -> FieldError {
    error(ErrorType::Forbidden, field, None, detail)
}

/// `field.Invalid` with a bad value as Go's `ErrorBody` prints it (see [`bad_value`]).
pub(crate) fn invalid(field: &str, value: &Value, detail: impl Into<String>) -> FieldError {
    error(ErrorType::Invalid, field, Some(bad_value(value)), detail)
}

/// `field.NotSupported`: the supported values quoted, the bad one Go-printed.
pub(crate) fn not_supported(field: &str, value: &Value, supported: &[String]) -> FieldError {
    let detail = if supported.is_empty() {
        String::new()
    } else {
        let quoted: Vec<String> = supported.iter().map(|v| go_quote(v)).collect();
        format!("supported values: {}", quoted.join(", "))
    };
    error(
        ErrorType::NotSupported,
        field,
        Some(bad_value(value)),
        detail,
    )
}

/// `field.TooMany(path, actual, max)` (1.31): `Too many: 5: must have at most 3 items`.
pub(crate) fn too_many(field: &str, actual: usize, max: i64) -> FieldError {
    error(
        ErrorType::TooMany,
        field,
        Some(Value::from(actual)),
        format!("must have at most {max} items"),
    )
}

/// `field.TooLongMaxLength(path, value, max)` (1.31), which apiextensions uses for `maxLength`:
/// `Too long: may not be longer than 5` (the value omitted).
pub(crate) fn too_long(field: &str, max: i64) -> FieldError {
    error(
        ErrorType::TooLong,
        field,
        None,
        format!("may not be longer than {max}"),
    )
}

/// `field.Duplicate`.
pub(crate) fn duplicate(field: &str, value: &Value) -> FieldError {
    error(ErrorType::Duplicate, field, Some(bad_value(value)), "")
}

/// A bad value as `field.Error.ErrorBody` prints it: `null` as the quoted string `"null"`,
/// strings quoted, integers and booleans bare, floats as Go's `%v`, objects and arrays as `%#v`.
pub(crate) fn bad_value(value: &Value) -> Value {
    match value {
        Value::Null => Value::String("null".to_string()),
        Value::Number(n) if n.is_f64() => shown(go_float(n.as_f64().unwrap_or(0.0))),
        Value::Object(_) | Value::Array(_) => shown(go_sharp_v(value)),
        other => other.clone(),
    }
}

/// Go's `%#v` of a decoded JSON value.
pub(crate) fn go_sharp_v(value: &Value) -> String {
    match value {
        Value::Null => "interface {}(nil)".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => go_float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => go_quote(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_sharp_v).collect();
            format!("[]interface {{}}{{{}}}", inner.join(", "))
        }
        Value::Object(map) => {
            // Go prints map keys sorted; serde_json's map is sorted already.
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_sharp_v(v)))
                .collect();
            format!("map[string]interface {{}}{{{}}}", inner.join(", "))
        }
    }
}

/// Go's `%v` of a `float64` (`strconv.FormatFloat(f, 'g', -1, 64)`): the shortest digits that
/// round-trip, in exponent form (`1e+06`) when the decimal exponent is below -4 or at least 6.
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: `1.2345e6`, `5e-7`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{exp_sign}{:02}", exp.abs());
    }
    let point = exp + 1; // digits before the decimal point
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if (point as usize) >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        let (int, frac) = digits.split_at(point as usize);
        format!("{int}.{frac}")
    };
    format!("{sign}{body}")
}
