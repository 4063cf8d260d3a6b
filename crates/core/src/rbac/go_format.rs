//! Go's `%q` and `%v` renderings, which upstream's messages are built from.

pub(crate) use crate::go_format::quote;

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
