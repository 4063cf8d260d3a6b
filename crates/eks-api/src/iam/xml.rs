//! Query-protocol responses: a result built as JSON, written as the XML botocore parses (objects
//! as elements, lists as `<member>` elements), and errors in `<ErrorResponse>`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Writes `value` as the content of an element.
pub fn write(out: &mut String, value: &Value) {
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(&escape(s)),
        Value::Array(items) => {
            for item in items {
                out.push_str("<member>");
                write(out, item);
                out.push_str("</member>");
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                if v.is_null() {
                    continue;
                }
                out.push('<');
                out.push_str(k);
                out.push('>');
                write(out, v);
                out.push_str("</");
                out.push_str(k);
                out.push('>');
            }
        }
    }
}

pub fn ok(namespace: &str, action: &str, result: Option<&Value>, request_id: &str) -> Response {
    let mut body = format!("<{action}Response xmlns=\"{namespace}\">");
    if let Some(result) = result {
        body.push_str(&format!("<{action}Result>"));
        write(&mut body, result);
        body.push_str(&format!("</{action}Result>"));
    }
    body.push_str(&format!(
        "<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>"
    ));
    respond(StatusCode::OK, body)
}

pub fn error(
    namespace: &str,
    status: StatusCode,
    code: &str,
    message: &str,
    request_id: &str,
) -> Response {
    let kind = if status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    respond(
        status,
        format!(
            "<ErrorResponse xmlns=\"{namespace}\"><Error><Type>{kind}</Type><Code>{}</Code>\
             <Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
            escape(code),
            escape(message)
        ),
    )
}

fn respond(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("text/xml"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_lists_and_escapes() {
        let mut out = String::new();
        write(
            &mut out,
            &json!({"Role": {"RoleName": "a<b", "Tags": [{"Key": "k", "Value": "v"}], "Gone": null}, "IsTruncated": false}),
        );
        assert_eq!(
            out,
            "<IsTruncated>false</IsTruncated><Role><RoleName>a&lt;b</RoleName><Tags><member><Key>k</Key><Value>v</Value></member></Tags></Role>"
        );
    }
}
