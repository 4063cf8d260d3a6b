//! Field errors as apimachinery's `field.Error` words them, and the 422 `Status` pieces
//! (`apierrors.NewInvalid`) built from them.

use serde_json::{Value, json};

/// `field.ErrorType`: why a field is wrong. Each maps to a `StatusCause` reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    NotFound,
    Required,
    Duplicate,
    Invalid,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
    Internal,
    TypeInvalid,
}

impl ErrorType {
    /// The words `field.ErrorType.String()` prints.
    pub fn words(self) -> &'static str {
        match self {
            ErrorType::NotFound => "Not found",
            ErrorType::Required => "Required value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Invalid | ErrorType::TypeInvalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::Internal => "Internal error",
        }
    }

    /// The `StatusCause` reason (`metav1.CauseType`).
    pub fn reason(self) -> &'static str {
        match self {
            ErrorType::NotFound => "FieldValueNotFound",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::Internal => "InternalError",
            ErrorType::TypeInvalid => "FieldValueTypeInvalid",
        }
    }
}

/// One field-level validation error (`field.Error`). `value` is the bad value, `None` where
/// upstream omits it; a value Go prints unquoted (a quantity, a struct) is `{"$go": text}`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub error_type: ErrorType,
    pub field: String,
    pub value: Option<Value>,
    pub detail: String,
}

impl FieldError {
    /// `field.Error.Error()`: `spec.x: Invalid value: "v": detail`.
    pub fn message(&self) -> String {
        format!("{}: {}", self.field, self.body())
    }

    /// `field.Error.ErrorBody()`: the message without the field, as a `StatusCause` carries it.
    pub fn body(&self) -> String {
        let mut s = self.error_type.words().to_string();
        let shows_value = !matches!(
            self.error_type,
            ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong | ErrorType::Internal
        );
        if shows_value && let Some(value) = &self.value {
            s.push_str(": ");
            s.push_str(&go_value(value));
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    /// The `StatusCause` reason, e.g. `FieldValueInvalid`.
    pub fn reason(&self) -> &'static str {
        self.error_type.reason()
    }
}

fn new(error_type: ErrorType, field: &str, value: Option<Value>, detail: &str) -> FieldError {
    FieldError {
        error_type,
        field: field.to_string(),
        value,
        detail: detail.to_string(),
    }
}

pub fn required(field: &str, detail: &str) -> FieldError {
    new(ErrorType::Required, field, None, detail)
}

pub fn invalid(field: &str, value: impl Into<Value>, detail: &str) -> FieldError {
    new(ErrorType::Invalid, field, Some(value.into()), detail)
}

pub fn not_found(field: &str, value: impl Into<Value>) -> FieldError {
    new(ErrorType::NotFound, field, Some(value.into()), "")
}

pub fn duplicate(field: &str, value: impl Into<Value>) -> FieldError {
    new(ErrorType::Duplicate, field, Some(value.into()), "")
}

pub fn forbidden(field: &str, detail: &str) -> FieldError {
    new(ErrorType::Forbidden, field, None, detail)
}

/// `field.TooLong`: `Too long: must have at most N bytes`.
pub fn too_long(field: &str, max: usize) -> FieldError {
    new(
        ErrorType::TooLong,
        field,
        None,
        &format!("must have at most {max} bytes"),
    )
}

/// `field.NotSupported`: `Unsupported value: "x": supported values: "a", "b"`.
pub fn not_supported(field: &str, value: impl Into<Value>, supported: &[&str]) -> FieldError {
    let detail = if supported.is_empty() {
        String::new()
    } else {
        let quoted: Vec<String> = supported.iter().map(|v| go_quote(v)).collect();
        format!("supported values: {}", quoted.join(", "))
    };
    new(ErrorType::NotSupported, field, Some(value.into()), &detail)
}

/// The key of a bad value carried as the text Go prints for it (a `String()` result, or a
/// struct in `%#v` form) rather than as data; see [`shown`].
const GO_TEXT: &str = "$go";

/// A bad value upstream prints unquoted, through its `String()` method (quantities) or as a Go
/// struct literal: `{"$go": text}`, printed as `text`.
pub fn shown(text: impl Into<String>) -> Value {
    json!({ GO_TEXT: text.into() })
}

/// A bad value printed the way Go's `%q` / `%v` / `%#v` print it in `ErrorBody`.
fn go_value(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => go_quote(s),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            let inner: Vec<String> = items.iter().map(go_value).collect();
            format!("[]string{{{}}}", inner.join(", "))
        }
        Value::Object(map) if map.len() == 1 && map.contains_key(GO_TEXT) => {
            map[GO_TEXT].as_str().unwrap_or("").to_string()
        }
        Value::Object(map)
            if map.len() == 2
                && map.contains_key("matchLabels")
                && map.contains_key("matchExpressions") =>
        {
            go_label_selector(map)
        }
        Value::Object(map) if map.values().all(Value::is_string) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_value(v)))
                .collect();
            format!("map[string]string{{{}}}", inner.join(", "))
        }
        other => other.to_string(),
    }
}

/// A `metav1.LabelSelector` as Go's `%#v` prints it (upstream shows selectors that way).
fn go_label_selector(map: &serde_json::Map<String, Value>) -> String {
    let labels = match map.get("matchLabels").and_then(Value::as_object) {
        Some(labels) => go_value(&Value::Object(labels.clone())),
        None => "map[string]string(nil)".to_string(),
    };
    let expressions = match map.get("matchExpressions").and_then(Value::as_array) {
        Some(list) => {
            let items: Vec<String> = list
                .iter()
                .map(|e| {
                    let values = match e.get("values").and_then(Value::as_array) {
                        Some(v) => go_value(&Value::Array(v.clone())),
                        None => "[]string(nil)".to_string(),
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{values}}}",
                        go_quote(e.get("key").and_then(Value::as_str).unwrap_or("")),
                        go_quote(e.get("operator").and_then(Value::as_str).unwrap_or("")),
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
    };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{expressions}}}")
}

/// Go's `strconv.Quote` (`%q`).
pub use crate::go_format::quote as go_quote;

/// `schema.GroupKind.String()`: `Deployment.apps`, or `Pod` for the core group.
fn qualified_kind(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

/// The message of the 422 `Status` that `apierrors.NewInvalid` builds: one error as is, several
/// (duplicates dropped, as `ErrorList.ToAggregate` does) in brackets.
pub fn invalid_message(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> String {
    let head = format!(
        "{} {} is invalid",
        qualified_kind(group, kind),
        go_quote(name)
    );
    let mut messages: Vec<String> = Vec::with_capacity(errors.len());
    for e in errors {
        let m = e.message();
        if !messages.contains(&m) {
            messages.push(m);
        }
    }
    match messages.as_slice() {
        [] => head,
        [one] => format!("{head}: {one}"),
        many => format!("{head}: [{}]", many.join(", ")),
    }
}

/// The `details.causes` of that `Status`: `{reason, message, field}` per error, `field` left out
/// when empty (it is `omitempty` upstream).
pub fn causes(errors: &[FieldError]) -> Vec<Value> {
    errors
        .iter()
        .map(|e| {
            let mut cause = json!({"reason": e.reason(), "message": e.body()});
            if !e.field.is_empty() {
                cause["field"] = json!(e.field);
            }
            cause
        })
        .collect()
}
