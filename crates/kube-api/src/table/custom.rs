//! Tables of custom resources, as apiextensions-apiserver's table convertor prints them: a
//! `Name` column, then the definition's `additionalPrinterColumns` (or `Age`), each cell the
//! first result of its JSONPath, typed by its column.

use jiff::Timestamp;
use localfargate_registry::custom::catalog::PrinterColumn;
use serde_json::{Value, json};
use serde_json_path::JsonPath;

use super::{NAME_DOC, since};

/// The column definitions.
pub fn columns(printer: &[PrinterColumn]) -> Vec<Value> {
    let mut out = vec![json!({
        "name": "Name", "type": "string", "format": "name", "description": NAME_DOC, "priority": 0,
    })];
    out.extend(printer.iter().map(|c| {
        json!({
            "name": c.name,
            "type": c.column_type,
            "format": c.format,
            "description": c.description,
            "priority": c.priority,
        })
    }));
    out
}

/// The row cells of one object.
pub fn cells(printer: &[PrinterColumn], object: &Value, now: Timestamp) -> Vec<Value> {
    let mut out = vec![super::name(object)];
    out.extend(printer.iter().map(|c| cell(c, object, now)));
    out
}

/// kubectl's JSONPath (`.spec.replicas`, `.status.conditions[?(@.type=="Ready")].status`) is
/// RFC 9535 JSONPath without the leading `$`; `{…}` templates are unwrapped.
fn compile(path: &str) -> Option<JsonPath> {
    let inner = path
        .trim()
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path.trim());
    let rooted = match inner.strip_prefix('$') {
        Some(_) => inner.to_string(),
        None if inner.starts_with('.') || inner.starts_with('[') => format!("${inner}"),
        None => format!("$.{inner}"),
    };
    JsonPath::parse(&rooted).ok()
}

fn cell(column: &PrinterColumn, object: &Value, now: Timestamp) -> Value {
    let Some(path) = compile(&column.json_path) else {
        return Value::Null;
    };
    let Some(value) = path.query(object).all().into_iter().next() else {
        return Value::Null;
    };
    match column.column_type.as_str() {
        "string" => Value::String(go_print(value)),
        "integer" => match value {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .map_or(Value::Null, |i| json!(i)),
            _ => Value::Null,
        },
        "number" => value.as_f64().map_or(Value::Null, |f| json!(f)),
        "boolean" => value.as_bool().map_or(Value::Null, Value::Bool),
        "date" => match value.as_str() {
            Some(s) => match s.parse::<Timestamp>() {
                Ok(t) => Value::String(since(Some(t), now)),
                Err(_) => Value::String("<invalid>".into()),
            },
            None => Value::Null,
        },
        _ => Value::Null,
    }
}

/// A value as Go's `fmt.Fprint` prints what JSONPath found: strings bare, numbers as `%v`,
/// lists `[a b]`, maps `map[k:v]` with sorted keys.
fn go_print(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_print).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_print(&map[*k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, kind: &str, path: &str) -> PrinterColumn {
        PrinterColumn {
            name: name.into(),
            column_type: kind.into(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            json_path: path.into(),
        }
    }

    #[test]
    fn cells_follow_their_column_types() {
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let obj = json!({
            "metadata": {"name": "c1", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"replicas": 3, "cron": "* * * * */5", "ratio": 1.5, "on": true, "tags": ["a", "b"]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        });
        let printer = vec![
            column("Replicas", "integer", ".spec.replicas"),
            column("Spec", "string", ".spec.cron"),
            column("Ratio", "number", ".spec.ratio"),
            column("On", "boolean", ".spec.on"),
            column("Tags", "string", ".spec.tags"),
            column(
                "Ready",
                "string",
                ".status.conditions[?(@.type==\"Ready\")].status",
            ),
            column("Missing", "string", ".spec.nothing"),
            column("Age", "date", ".metadata.creationTimestamp"),
        ];
        assert_eq!(columns(&printer).len(), 9);
        assert_eq!(
            cells(&printer, &obj, now),
            vec![
                json!("c1"),
                json!(3),
                json!("* * * * */5"),
                json!(1.5),
                json!(true),
                json!("[a b]"),
                json!("True"),
                Value::Null,
                json!("10m")
            ]
        );
    }
}
