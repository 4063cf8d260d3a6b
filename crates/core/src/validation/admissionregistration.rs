//! Mutating- and ValidatingWebhookConfigurations, as kube-apiserver's admissionregistration
//! validation checks them (`validateMutatingWebhookConfiguration`, …): fully-qualified and
//! unique webhook names, rules, policies, side effects, timeouts, client configs, review
//! versions and `matchConditions` (compiled, with the compiler's message).
//!
//! On update, as upstream: what the stored configuration already broke is tolerated (side
//! effects other than `None`/`NoneOnDryRun`, no known review version, repeated names), and
//! match conditions are compiled again only when they changed.

use serde_json::Value;

use super::field::{self, ErrorType, FieldError};
use super::names::{dns1035_label_errors, dns1123_subdomain_errors, port_num_errors};
use super::workloads::validate_label_selector;
use super::{arr, text};

const REVIEW_VERSIONS: &[&str] = &["v1", "v1beta1"];
const NO_SIDE_EFFECTS: &[&str] = &["None", "NoneOnDryRun"];
const ALL_SIDE_EFFECTS: &[&str] = &["None", "NoneOnDryRun", "Some", "Unknown"];
const OPERATIONS: &[&str] = &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];

/// What an update relaxes (upstream's `validationOptions`).
struct Options {
    check_match_conditions: bool,
    require_no_side_effects: bool,
    require_known_review_version: bool,
    require_unique_names: bool,
}

const CREATE: Options = Options {
    check_match_conditions: true,
    require_no_side_effects: true,
    require_known_review_version: true,
    require_unique_names: true,
};

pub(crate) fn validate_mutating(obj: &Value) -> Vec<FieldError> {
    validate(obj, true, &CREATE)
}

pub(crate) fn validate_validating(obj: &Value) -> Vec<FieldError> {
    validate(obj, false, &CREATE)
}

pub(crate) fn validate_mutating_update(old: &Value, new: &Value) -> Vec<FieldError> {
    validate(new, true, &update_options(old, new))
}

pub(crate) fn validate_validating_update(old: &Value, new: &Value) -> Vec<FieldError> {
    validate(new, false, &update_options(old, new))
}

fn update_options(old: &Value, new: &Value) -> Options {
    let old_hooks = arr(old, "webhooks");
    let new_hooks = arr(new, "webhooks");
    let conditions_unchanged = old_hooks.len() == new_hooks.len()
        && old_hooks
            .iter()
            .zip(new_hooks)
            .all(|(o, n)| o.get("matchConditions") == n.get("matchConditions"));
    let mut names = std::collections::HashSet::new();
    Options {
        check_match_conditions: !conditions_unchanged,
        require_no_side_effects: old_hooks
            .iter()
            .all(|h| NO_SIDE_EFFECTS.contains(&text(h, "sideEffects"))),
        require_known_review_version: old_hooks.iter().all(|h| {
            let versions = arr(h, "admissionReviewVersions");
            versions.is_empty()
                || versions
                    .iter()
                    .any(|v| REVIEW_VERSIONS.contains(&v.as_str().unwrap_or("")))
        }),
        require_unique_names: old_hooks.iter().all(|h| names.insert(text(h, "name"))),
    }
}

fn validate(obj: &Value, mutating: bool, opts: &Options) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, hook) in arr(obj, "webhooks").iter().enumerate() {
        let path = format!("webhooks[{i}]");
        errors.extend(validate_webhook(hook, mutating, opts, &path));
        errors.extend(review_versions(
            arr(hook, "admissionReviewVersions"),
            opts.require_known_review_version,
            &format!("{path}.admissionReviewVersions"),
        ));
        let name = text(hook, "name");
        if opts.require_unique_names && !name.is_empty() && !names.insert(name) {
            errors.push(field::duplicate(&format!("{path}.name"), name));
        }
    }
    errors
}

/// `utilvalidation.IsFullyQualifiedName`.
fn fully_qualified_name(name: &str, path: &str) -> Option<FieldError> {
    if name.is_empty() {
        return Some(field::required(path, ""));
    }
    let errs = dns1123_subdomain_errors(name);
    if !errs.is_empty() {
        return Some(field::invalid(path, name, &errs.join(",")));
    }
    if name.split('.').count() < 3 {
        return Some(field::invalid(
            path,
            name,
            "should be a domain with at least three segments separated by dots",
        ));
    }
    None
}

fn one_of(value: &Value, supported: &[&str], path: &str) -> Option<FieldError> {
    let s = value.as_str()?;
    (!supported.contains(&s)).then(|| field::not_supported(path, s, supported))
}

fn validate_webhook(hook: &Value, mutating: bool, opts: &Options, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    errors.extend(fully_qualified_name(
        text(hook, "name"),
        &format!("{path}.name"),
    ));
    for (i, rule) in arr(hook, "rules").iter().enumerate() {
        errors.extend(validate_rule(rule, &format!("{path}.rules[{i}]")));
    }
    let at = |f: &str| format!("{path}.{f}");
    errors.extend(one_of(
        &hook["failurePolicy"],
        &["Fail", "Ignore"],
        &at("failurePolicy"),
    ));
    errors.extend(one_of(
        &hook["matchPolicy"],
        &["Equivalent", "Exact"],
        &at("matchPolicy"),
    ));
    let allowed = if opts.require_no_side_effects {
        NO_SIDE_EFFECTS
    } else {
        ALL_SIDE_EFFECTS
    };
    match hook.get("sideEffects") {
        None | Some(Value::Null) => errors.push(field::required(
            &at("sideEffects"),
            &format!("must specify one of {}", allowed.join(", ")),
        )),
        Some(v) => errors.extend(one_of(v, allowed, &at("sideEffects"))),
    }
    if let Some(t) = hook.get("timeoutSeconds").and_then(Value::as_i64)
        && !(1..=30).contains(&t)
    {
        errors.push(field::invalid(
            &at("timeoutSeconds"),
            t,
            "the timeout value must be between 1 and 30 seconds",
        ));
    }
    for selector in ["namespaceSelector", "objectSelector"] {
        if let Some(s) = hook.get(selector).filter(|s| s.is_object()) {
            errors.extend(validate_label_selector(s, &at(selector)));
        }
    }
    if mutating {
        errors.extend(one_of(
            &hook["reinvocationPolicy"],
            &["IfNeeded", "Never"],
            &at("reinvocationPolicy"),
        ));
    }
    errors.extend(client_config(&hook["clientConfig"], &at("clientConfig")));
    if opts.check_match_conditions {
        errors.extend(match_conditions(
            arr(hook, "matchConditions"),
            &at("matchConditions"),
        ));
    }
    errors
}

fn review_versions(versions: &[Value], require_known: bool, path: &str) -> Vec<FieldError> {
    if versions.is_empty() {
        return vec![field::required(
            path,
            &format!("must specify one of {}", REVIEW_VERSIONS.join(", ")),
        )];
    }
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut known = false;
    for (i, v) in versions.iter().enumerate() {
        let v = v.as_str().unwrap_or("");
        let at = format!("{path}[{i}]");
        if !seen.insert(v) {
            errors.push(field::invalid(&at, v, "duplicate version"));
            continue;
        }
        for e in dns1035_label_errors(v) {
            errors.push(field::invalid(&at, v, &e));
        }
        known |= REVIEW_VERSIONS.contains(&v);
    }
    if require_known && !known {
        errors.push(field::invalid(
            path,
            Value::Array(versions.to_vec()),
            &format!(
                "must include at least one of {}",
                REVIEW_VERSIONS.join(", ")
            ),
        ));
    }
    errors
}

/// A list Go prints with its element type (`[]admissionregistration.OperationType{"*"}`).
fn go_list(type_name: &str, items: &[Value]) -> Value {
    let inner: Vec<String> = items
        .iter()
        .map(|v| field::go_quote(v.as_str().unwrap_or("")))
        .collect();
    field::shown(format!("[]{type_name}{{{}}}", inner.join(", ")))
}

fn has_wildcard(items: &[Value]) -> bool {
    items.iter().any(|v| v == "*")
}

fn validate_rule(rule: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let operations = arr(rule, "operations");
    if operations.is_empty() {
        errors.push(field::required(&format!("{path}.operations"), ""));
    }
    if operations.len() > 1 && has_wildcard(operations) {
        errors.push(field::invalid(
            &format!("{path}.operations"),
            go_list("admissionregistration.OperationType", operations),
            "if '*' is present, must not specify other operations",
        ));
    }
    for (i, op) in operations.iter().enumerate() {
        let op = op.as_str().unwrap_or("");
        if !OPERATIONS.contains(&op) {
            errors.push(field::not_supported(
                &format!("{path}.operations[{i}]"),
                op,
                OPERATIONS,
            ));
        }
    }
    let groups = arr(rule, "apiGroups");
    if groups.is_empty() {
        errors.push(field::required(&format!("{path}.apiGroups"), ""));
    }
    if groups.len() > 1 && has_wildcard(groups) {
        errors.push(field::invalid(
            &format!("{path}.apiGroups"),
            Value::Array(groups.to_vec()),
            "if '*' is present, must not specify other API groups",
        ));
    }
    let versions = arr(rule, "apiVersions");
    if versions.is_empty() {
        errors.push(field::required(&format!("{path}.apiVersions"), ""));
    }
    if versions.len() > 1 && has_wildcard(versions) {
        errors.push(field::invalid(
            &format!("{path}.apiVersions"),
            Value::Array(versions.to_vec()),
            "if '*' is present, must not specify other API versions",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if v == "" {
            errors.push(field::required(&format!("{path}.apiVersions[{i}]"), ""));
        }
    }
    errors.extend(resources(
        arr(rule, "resources"),
        &format!("{path}.resources"),
    ));
    errors.extend(one_of(
        &rule["scope"],
        &["*", "Cluster", "Namespaced"],
        &format!("{path}.scope"),
    ));
    errors
}

/// `validateResources`: `*`, `*/*`, `r/*` and `*/s` may not be mixed with what they cover.
fn resources(list: &[Value], path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if list.is_empty() {
        errors.push(field::required(path, ""));
    }
    let mut all_subresources_of: Vec<&str> = Vec::new();
    let mut subresource_of_all: Vec<&str> = Vec::new();
    let (mut double, mut single, mut plain) = (false, false, false);
    for (i, entry) in list.iter().enumerate() {
        let entry = entry.as_str().unwrap_or("");
        let at = format!("{path}[{i}]");
        if entry.is_empty() {
            errors.push(field::required(&at, ""));
            continue;
        }
        double |= entry == "*/*";
        single |= entry == "*";
        let Some((res, sub)) = entry.split_once('/') else {
            // Upstream keeps only the last plain entry's verdict.
            plain = entry != "*";
            continue;
        };
        if all_subresources_of.contains(&res) {
            errors.push(field::invalid(
                &at,
                entry,
                &format!("if '{res}/*' is present, must not specify {entry}"),
            ));
        }
        if subresource_of_all.contains(&sub) {
            errors.push(field::invalid(
                &at,
                entry,
                &format!("if '*/{sub}' is present, must not specify {entry}"),
            ));
        }
        if sub == "*" {
            all_subresources_of.push(res);
        }
        if res == "*" {
            subresource_of_all.push(sub);
        }
    }
    if list.len() > 1 && double {
        errors.push(field::invalid(
            path,
            Value::Array(list.to_vec()),
            "if '*/*' is present, must not specify other resources",
        ));
    }
    if single && plain {
        errors.push(field::invalid(
            path,
            Value::Array(list.to_vec()),
            "if '*' is present, must not specify other resources without subresources",
        ));
    }
    errors
}

fn client_config(cc: &Value, path: &str) -> Vec<FieldError> {
    let url = cc.get("url").filter(|u| !u.is_null());
    let service = cc.get("service").filter(|s| !s.is_null());
    match (url, service) {
        (Some(u), None) => webhook_url(u.as_str().unwrap_or(""), &format!("{path}.url")),
        (None, Some(s)) => webhook_service(s, &format!("{path}.service")),
        _ => vec![field::required(
            path,
            "exactly one of url or service is required",
        )],
    }
}

/// `webhook.ValidateWebhookURL` with https required. The URL is split as Go's `url.Parse`
/// splits an absolute URL: scheme, `//` authority (with user info), path, query, fragment.
fn webhook_url(url: &str, path: &str) -> Vec<FieldError> {
    const FORM: &str = "; desired format: https://host[/path]";
    let mut errors = Vec::new();
    let (rest, fragment) = url.split_once('#').unwrap_or((url, ""));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (scheme, rest) = match rest.split_once(':') {
        Some((s, r))
            if !s.is_empty()
                && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            (s.to_ascii_lowercase(), r)
        }
        _ => (String::new(), rest),
    };
    let (user, host) = match rest.strip_prefix("//") {
        Some(authority) => {
            let authority = authority.split('/').next().unwrap_or("");
            match authority.rsplit_once('@') {
                Some((user, host)) => (Some(user), host),
                None => (None, authority),
            }
        }
        None => (None, ""),
    };
    if scheme != "https" {
        errors.push(field::invalid(
            path,
            scheme.as_str(),
            &format!("'https' is the only allowed URL scheme{FORM}"),
        ));
    }
    if host.is_empty() {
        errors.push(field::invalid(
            path,
            host,
            &format!("host must be specified{FORM}"),
        ));
    }
    if let Some(user) = user {
        // `url.Userinfo.String()` hides nothing: `user` or `user:password`.
        errors.push(field::invalid(
            path,
            user,
            "user information is not permitted in the URL",
        ));
    }
    if !fragment.is_empty() {
        errors.push(field::invalid(
            path,
            fragment,
            "fragments are not permitted in the URL",
        ));
    }
    if !query.is_empty() {
        errors.push(field::invalid(
            path,
            query,
            "query parameters are not permitted in the URL",
        ));
    }
    errors
}

/// `webhook.ValidateWebhookService`.
fn webhook_service(s: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if text(s, "name").is_empty() {
        errors.push(field::required(&format!("{path}.name"), ""));
    }
    if text(s, "namespace").is_empty() {
        errors.push(field::required(&format!("{path}.namespace"), ""));
    }
    if let Some(port) = s.get("port").and_then(Value::as_i64) {
        let errs = port_num_errors(port);
        if !errs.is_empty() {
            errors.push(field::invalid(
                &format!("{path}.port"),
                port,
                &format!("port is not valid: {}", errs.join(", ")),
            ));
        }
    }
    let Some(url_path) = s.get("path").and_then(Value::as_str) else {
        return errors;
    };
    let at = format!("{path}.path");
    if url_path.is_empty() || url_path == "/" {
        return errors;
    }
    if url_path == "//" {
        errors.push(field::invalid(&at, url_path, "segment[0] may not be empty"));
        return errors;
    }
    if !url_path.starts_with('/') {
        errors.push(field::invalid(&at, url_path, "must start with a '/'"));
    }
    let mut check = url_path.get(1..).unwrap_or("");
    check = check.strip_suffix('/').unwrap_or(check);
    for (i, step) in check.split('/').enumerate() {
        if step.is_empty() {
            errors.push(field::invalid(
                &at,
                url_path,
                &format!("segment[{i}] may not be empty"),
            ));
            continue;
        }
        for e in dns1123_subdomain_errors(step) {
            errors.push(field::invalid(&at, url_path, &format!("segment[{i}]: {e}")));
        }
    }
    errors
}

fn match_conditions(list: &[Value], path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if list.len() > 64 {
        errors.push(FieldError {
            error_type: ErrorType::TooMany,
            field: path.to_string(),
            value: Some(Value::from(list.len())),
            detail: "must have at most 64 items".to_string(),
        });
    }
    let mut names = std::collections::HashSet::new();
    for (i, c) in list.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let expression = text(c, "expression").trim();
        if expression.is_empty() {
            errors.push(field::required(&format!("{at}.expression"), ""));
        } else if let Err(e) = crate::match_conditions::compile(expression) {
            errors.push(field::invalid(&format!("{at}.expression"), expression, &e));
        }
        let name = text(c, "name");
        if name.is_empty() {
            errors.push(field::required(&format!("{at}.name"), ""));
        } else {
            for e in crate::selectors::qualified_name_errors(name) {
                errors.push(field::invalid(&format!("{at}.name"), name, &e));
            }
        }
        if !name.is_empty() && !names.insert(name) {
            errors.push(field::duplicate(&format!("{at}.name"), name));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hook() -> Value {
        json!({
            "name": "pods.example.com",
            "clientConfig": {"service": {"namespace": "default", "name": "hook", "path": "/validate", "port": 443}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "scope": "*"}],
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "failurePolicy": "Fail",
            "matchPolicy": "Equivalent",
            "timeoutSeconds": 10,
        })
    }

    fn messages(obj: &Value) -> Vec<String> {
        validate_validating(obj)
            .iter()
            .map(|e| e.message())
            .collect()
    }

    #[test]
    fn a_good_configuration_has_no_errors() {
        assert!(messages(&json!({"webhooks": [hook()]})).is_empty());
    }

    #[test]
    fn names_must_be_fully_qualified_and_unique() {
        let mut short = hook();
        short["name"] = json!("example.com");
        assert_eq!(
            messages(&json!({"webhooks": [short]})),
            vec![
                "webhooks[0].name: Invalid value: \"example.com\": should be a domain with at least three segments separated by dots"
            ]
        );
        assert_eq!(
            messages(&json!({"webhooks": [hook(), hook()]})),
            vec!["webhooks[1].name: Duplicate value: \"pods.example.com\""]
        );
    }

    #[test]
    fn side_effects_review_versions_and_timeouts() {
        let mut h = hook();
        h.as_object_mut().map(|o| o.remove("sideEffects"));
        h["admissionReviewVersions"] = json!(["v2"]);
        h["timeoutSeconds"] = json!(31);
        assert_eq!(
            messages(&json!({"webhooks": [h]})),
            vec![
                "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun",
                "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds",
                "webhooks[0].admissionReviewVersions: Invalid value: []string{\"v2\"}: must include at least one of v1, v1beta1",
            ]
        );
        let mut h = hook();
        h["sideEffects"] = json!("Some");
        assert_eq!(
            messages(&json!({"webhooks": [h]})),
            vec![
                "webhooks[0].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\""
            ]
        );
    }

    #[test]
    fn client_config_url_and_service() {
        let mut h = hook();
        h["clientConfig"] = json!({"url": "http://u:p@example.com/x?a=b#frag"});
        assert_eq!(
            messages(&json!({"webhooks": [h]})),
            vec![
                "webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme; desired format: https://host[/path]",
                "webhooks[0].clientConfig.url: Invalid value: \"u:p\": user information is not permitted in the URL",
                "webhooks[0].clientConfig.url: Invalid value: \"frag\": fragments are not permitted in the URL",
                "webhooks[0].clientConfig.url: Invalid value: \"a=b\": query parameters are not permitted in the URL",
            ]
        );
        let mut h = hook();
        h["clientConfig"] = json!({});
        assert_eq!(
            messages(&json!({"webhooks": [h]})),
            vec![
                "webhooks[0].clientConfig: Required value: exactly one of url or service is required"
            ]
        );
        let mut h = hook();
        h["clientConfig"]["service"]["path"] = json!("validate//Pods");
        let got = messages(&json!({"webhooks": [h]}));
        assert_eq!(
            got[0],
            "webhooks[0].clientConfig.service.path: Invalid value: \"validate//Pods\": must start with a '/'"
        );
        assert!(
            got.iter()
                .any(|m| m.contains("segment[1] may not be empty"))
        );
    }

    #[test]
    fn rules_operations_and_resources() {
        let mut h = hook();
        h["rules"] = json!([{"operations": ["*", "CREATE", "PATCH"], "apiGroups": [], "apiVersions": ["v1"], "resources": ["*", "pods", "*/*"]}]);
        assert_eq!(
            messages(&json!({"webhooks": [h]})),
            vec![
                "webhooks[0].rules[0].operations: Invalid value: []admissionregistration.OperationType{\"*\", \"CREATE\", \"PATCH\"}: if '*' is present, must not specify other operations",
                "webhooks[0].rules[0].operations[2]: Unsupported value: \"PATCH\": supported values: \"*\", \"CONNECT\", \"CREATE\", \"DELETE\", \"UPDATE\"",
                "webhooks[0].rules[0].apiGroups: Required value",
                "webhooks[0].rules[0].resources: Invalid value: []string{\"*\", \"pods\", \"*/*\"}: if '*/*' is present, must not specify other resources",
                "webhooks[0].rules[0].resources: Invalid value: []string{\"*\", \"pods\", \"*/*\"}: if '*' is present, must not specify other resources without subresources",
            ]
        );
    }

    #[test]
    fn match_conditions_are_compiled_named_and_unique() {
        let mut h = hook();
        h["matchConditions"] = json!([
            {"name": "ok", "expression": "object.metadata.name != ''"},
            {"name": "ok", "expression": "object.metadata.name =="},
            {"name": "bad name!", "expression": "nope == 1"},
        ]);
        let got = messages(&json!({"webhooks": [h]}));
        assert!(
            got[0].starts_with("webhooks[0].matchConditions[1].expression: Invalid value: \"object.metadata.name ==\": compilation failed: ERROR: <input>:1:"),
            "{got:?}"
        );
        assert_eq!(
            got[1],
            "webhooks[0].matchConditions[1].name: Duplicate value: \"ok\""
        );
        assert!(
            got[2].starts_with("webhooks[0].matchConditions[2].expression: Invalid value: \"nope == 1\": compilation failed: ERROR: <input>:1:1: undeclared reference to 'nope' (in container '')"),
            "{got:?}"
        );
        assert!(
            got[3].starts_with("webhooks[0].matchConditions[2].name: Invalid value: \"bad name!\"")
        );
    }

    #[test]
    fn an_update_tolerates_what_the_stored_configuration_had() {
        let mut old = hook();
        old["sideEffects"] = json!("Some");
        let new = old.clone();
        assert!(
            validate_validating_update(&json!({"webhooks": [old]}), &json!({"webhooks": [new]}))
                .is_empty()
        );
    }
}
