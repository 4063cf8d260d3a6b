//! Go's `%q` and `%v` renderings, which upstream's messages are built from.

use std::fmt::Write;

/// `strconv.Quote`: double quotes, with `"`, `\` and non-printable characters escaped.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || (c.is_whitespace() && c != ' ') => {
                if (c as u32) < 0x10000 {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `fmt.Sprintf("%q", []string{…})`: `["a" "b"]`.
pub(crate) fn quote_list<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s.as_ref())).collect();
    format!("[{}]", quoted.join(" "))
}

/// `utilerrors.NewAggregate(errs).Error()`: one message as is, several de-duplicated in
/// brackets, comma-separated.
pub(crate) fn aggregate_errors(errors: &[String]) -> String {
    match errors {
        [] => String::new(),
        [only] => only.clone(),
        _ => {
            let mut seen: Vec<&str> = Vec::new();
            for e in errors {
                if !seen.contains(&e.as_str()) {
                    seen.push(e);
                }
            }
            if seen.len() == 1 {
                seen[0].to_string()
            } else {
                format!("[{}]", seen.join(", "))
            }
        }
    }
}

/// `errors.NewForbidden(groupResource, name, err).Error()`.
pub(crate) fn forbidden_status_message(group_resource: &str, name: &str, detail: &str) -> String {
    if group_resource.is_empty() {
        format!("forbidden: {detail}")
    } else if name.is_empty() {
        format!("{group_resource} is forbidden: {detail}")
    } else {
        format!("{group_resource} {} is forbidden: {detail}", quote(name))
    }
}

/// `schema.GroupResource{Group, Resource}.String()`.
pub(crate) fn group_resource(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}
