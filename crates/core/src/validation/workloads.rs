//! Workloads: apps/v1 Deployment, ReplicaSet, StatefulSet, DaemonSet; batch/v1 Job, CronJob; v1
//! ReplicationController (`pkg/apis/apps/validation`, `pkg/apis/batch/validation`, core's RC
//! rules), each validating its pod template as upstream does.

use serde_json::{Map, Value, json};

use super::field::{FieldError, forbidden, invalid, not_supported, required, shown};
use super::meta::{validate_annotations, validate_labels};
use super::pod::{one_of, validate_pod_spec};
use super::resources::NEGATIVE_MSG;
use super::{arr, int, text};
use crate::cron::Schedule;
use crate::selectors::LabelSelector;

const IMMUTABLE_MSG: &str = "field is immutable";
const NO_MATCH_MSG: &str = "`selector` does not match template `labels`";

/// `ValidateNonnegativeField` for an optional integer.
pub(crate) fn nonnegative(obj: &Value, key: &str, path: &str) -> Vec<FieldError> {
    match int(obj, key) {
        Some(value) if value < 0 => vec![invalid(&format!("{path}.{key}"), value, NEGATIVE_MSG)],
        _ => Vec::new(),
    }
}

/// A selector as a bad value: both fields present so it prints as Go prints a `LabelSelector`.
pub(crate) fn selector_value(selector: &Value) -> Value {
    json!({
        "matchLabels": selector.get("matchLabels").cloned().unwrap_or(Value::Null),
        "matchExpressions": selector.get("matchExpressions").cloned().unwrap_or(Value::Null),
    })
}

/// `ValidateLabelSelector`: label rules on `matchLabels`, operators and values on expressions.
pub(crate) fn validate_label_selector(selector: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = validate_labels(
        selector.get("matchLabels").and_then(Value::as_object),
        &format!("{path}.matchLabels"),
    );
    for (i, expression) in arr(selector, "matchExpressions").iter().enumerate() {
        let item = format!("{path}.matchExpressions[{i}]");
        let values = arr(expression, "values");
        match text(expression, "operator") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errors.push(required(
                        &format!("{item}.values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errors.push(forbidden(
                        &format!("{item}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errors.push(invalid(
                &format!("{item}.operator"),
                other,
                "not a valid selector operator",
            )),
        }
        let key = text(expression, "key");
        for msg in super::names::qualified_name_errors(key) {
            errors.push(invalid(&format!("{item}.key"), key, &msg));
        }
    }
    errors
}

fn selector_is_empty(selector: &Value) -> bool {
    selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty)
        && arr(selector, "matchExpressions").is_empty()
}

fn template_labels(template: &Value) -> Value {
    template["metadata"]
        .get("labels")
        .cloned()
        .unwrap_or_else(|| json!({}))
}

/// Whether a non-empty selector fails to select the template's labels.
fn selector_misses(selector: &Value, template: &Value) -> bool {
    match LabelSelector::from_json(selector) {
        Ok(parsed) => {
            !parsed.is_empty() && !parsed.matches(template["metadata"]["labels"].as_object())
        }
        Err(_) => false,
    }
}

/// `ValidatePodTemplateSpec`: template labels and annotations (reported under the template's own
/// path, as upstream does), then the pod spec.
fn validate_pod_template(template: &Value, path: &str) -> Vec<FieldError> {
    let meta = &template["metadata"];
    let mut errors = validate_labels(
        meta.get("labels").and_then(Value::as_object),
        &format!("{path}.labels"),
    );
    errors.extend(validate_annotations(
        meta.get("annotations").and_then(Value::as_object),
        &format!("{path}.annotations"),
    ));
    let spec = &template["spec"];
    errors.extend(validate_pod_spec(spec, &format!("{path}.spec")));
    if !arr(spec, "ephemeralContainers").is_empty() {
        errors.push(forbidden(
            &format!("{path}.spec.ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    errors
}

/// The template rules of controllers whose pods always restart: selector match, restart policy
/// `Always`, no `activeDeadlineSeconds`. `owner` names the kind in the last message.
fn validate_restarting_template(
    template: Option<&Value>,
    selector: &Value,
    owner: &str,
    path: &str,
) -> Vec<FieldError> {
    let Some(template) = template.filter(|t| t.is_object()) else {
        return vec![required(path, "")];
    };
    let mut errors = Vec::new();
    if selector_misses(selector, template) {
        errors.push(invalid(
            &format!("{path}.metadata.labels"),
            template_labels(template),
            NO_MATCH_MSG,
        ));
    }
    errors.extend(validate_pod_template(template, path));
    errors.extend(template_restart_rules(template, owner, path));
    errors
}

/// A required, non-empty `metav1.LabelSelector`. `empty_kind` names the kind in upstream's
/// "empty selector is invalid for …" message.
fn required_selector(spec: &Value, empty_kind: &str, path: &str) -> Vec<FieldError> {
    let Some(selector) = spec.get("selector").filter(|s| s.is_object()) else {
        return vec![required(&format!("{path}.selector"), "")];
    };
    let mut errors = validate_label_selector(selector, &format!("{path}.selector"));
    if selector_is_empty(selector) {
        errors.push(invalid(
            &format!("{path}.selector"),
            selector_value(selector),
            &format!("empty selector is invalid for {empty_kind}"),
        ));
    }
    errors
}

pub(crate) fn validate_deployment(obj: &Value) -> Vec<FieldError> {
    let spec = &obj["spec"];
    let mut errors = nonnegative(spec, "replicas", "spec");
    errors.extend(required_selector(spec, "deployment", "spec"));
    errors.extend(validate_restarting_template(
        spec.get("template"),
        &spec["selector"],
        "ReplicaSet",
        "spec.template",
    ));
    let strategy = &spec["strategy"];
    match text(strategy, "type") {
        "" if strategy.get("type").is_none() => {}
        "Recreate" => {
            if strategy.get("rollingUpdate").is_some_and(|r| !r.is_null()) {
                errors.push(forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(rolling) = strategy.get("rollingUpdate").filter(|r| r.is_object()) {
                errors.extend(validate_rolling_update(
                    rolling,
                    "spec.strategy.rollingUpdate",
                ));
            }
        }
        other => errors.push(not_supported(
            "spec.strategy",
            shown(format!(
                "apps.DeploymentStrategy{{Type:{}, RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}}",
                super::field::go_quote(other)
            )),
            &["Recreate", "RollingUpdate"],
        )),
    }
    errors.extend(nonnegative(spec, "minReadySeconds", "spec"));
    errors.extend(nonnegative(spec, "revisionHistoryLimit", "spec"));
    if let Some(deadline) = int(spec, "progressDeadlineSeconds") {
        if deadline < 0 {
            errors.push(invalid(
                "spec.progressDeadlineSeconds",
                deadline,
                NEGATIVE_MSG,
            ));
        }
        if deadline <= int(spec, "minReadySeconds").unwrap_or(0) {
            errors.push(invalid(
                "spec.progressDeadlineSeconds",
                deadline,
                "must be greater than minReadySeconds",
            ));
        }
    }
    errors
}

/// An `IntOrString` that is a count or a percentage; `None` when it is neither.
fn int_or_percent(value: &Value) -> Option<(i64, bool)> {
    match value {
        Value::Number(n) => n.as_i64().map(|v| (v, false)),
        Value::String(s) => s
            .strip_suffix('%')
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse().ok())
            .map(|v| (v, true)),
        _ => None,
    }
}

const PERCENT_MSG: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

/// An `IntOrString` as upstream prints it: through its `String()` method, unquoted.
pub(crate) fn int_or_string_shown(value: &Value) -> Value {
    match value {
        Value::String(s) => shown(s.clone()),
        other => other.clone(),
    }
}

/// `IsNotMoreThan100Percent`.
fn not_over_100_percent(value: Option<&Value>, path: &str) -> Vec<FieldError> {
    match value.and_then(int_or_percent) {
        Some((n, true)) if n > 100 => vec![invalid(
            path,
            int_or_string_shown(value.unwrap_or(&Value::Null)),
            "must not be greater than 100%",
        )],
        _ => Vec::new(),
    }
}

/// `ValidatePositiveIntOrPercent`.
fn positive_int_or_percent(value: Option<&Value>, path: &str) -> Vec<FieldError> {
    match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if int_or_percent(&Value::String(s.clone())).is_none() => {
            vec![invalid(
                path,
                int_or_string_shown(&Value::String(s.clone())),
                PERCENT_MSG,
            )]
        }
        Some(Value::Number(n)) if n.as_i64().is_some_and(|v| v < 0) => {
            vec![invalid(path, n.as_i64().unwrap_or(0), NEGATIVE_MSG)]
        }
        Some(_) => Vec::new(),
    }
}

fn amount(value: Option<&Value>) -> i64 {
    value.and_then(int_or_percent).map_or(0, |(n, _)| n)
}

/// `ValidateRollingUpdateDeployment`.
fn validate_rolling_update(rolling: &Value, path: &str) -> Vec<FieldError> {
    let unavailable = rolling.get("maxUnavailable");
    let surge = rolling.get("maxSurge");
    let mut errors = positive_int_or_percent(unavailable, &format!("{path}.maxUnavailable"));
    errors.extend(positive_int_or_percent(surge, &format!("{path}.maxSurge")));
    if amount(unavailable) == 0 && amount(surge) == 0 {
        errors.push(invalid(
            &format!("{path}.maxUnavailable"),
            int_or_string_shown(unavailable.unwrap_or(&json!(0))),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
    errors.extend(not_over_100_percent(
        unavailable,
        &format!("{path}.maxUnavailable"),
    ));
    errors
}

/// `ValidateRollingUpdateDaemonSet`: exactly one of maxUnavailable and maxSurge is non-zero.
fn validate_daemon_set_rolling_update(rolling: &Value, path: &str) -> Vec<FieldError> {
    let unavailable = rolling.get("maxUnavailable");
    let surge = rolling.get("maxSurge");
    let mut errors = positive_int_or_percent(unavailable, &format!("{path}.maxUnavailable"));
    errors.extend(positive_int_or_percent(surge, &format!("{path}.maxSurge")));
    errors.extend(not_over_100_percent(
        unavailable,
        &format!("{path}.maxUnavailable"),
    ));
    errors.extend(not_over_100_percent(surge, &format!("{path}.maxSurge")));
    match (amount(unavailable) != 0, amount(surge) != 0) {
        (true, true) => errors.push(invalid(
            &format!("{path}.maxSurge"),
            int_or_string_shown(surge.unwrap_or(&Value::Null)),
            "may not be set when maxUnavailable is non-zero",
        )),
        (false, false) => errors.push(required(
            &format!("{path}.maxUnavailable"),
            "cannot be 0 when maxSurge is 0",
        )),
        _ => {}
    }
    errors
}

pub(crate) fn validate_replica_set(obj: &Value) -> Vec<FieldError> {
    let spec = &obj["spec"];
    let mut errors = nonnegative(spec, "replicas", "spec");
    errors.extend(nonnegative(spec, "minReadySeconds", "spec"));
    // Upstream's ReplicaSet message says "deployment" too.
    errors.extend(required_selector(spec, "deployment", "spec"));
    errors.extend(validate_restarting_template(
        spec.get("template"),
        &spec["selector"],
        "ReplicaSet",
        "spec.template",
    ));
    errors
}

pub(crate) fn validate_daemon_set(obj: &Value) -> Vec<FieldError> {
    let spec = &obj["spec"];
    let template = &spec["template"];
    let selector = spec.get("selector").filter(|s| s.is_object());
    let mut errors = selector
        .map(|s| validate_label_selector(s, "spec.selector"))
        .unwrap_or_default();
    // No selector selects nothing, so the template's labels never match it.
    let misses = match selector {
        None => true,
        Some(s) => LabelSelector::from_json(s)
            .is_ok_and(|parsed| !parsed.matches(template["metadata"]["labels"].as_object())),
    };
    if misses {
        errors.push(invalid(
            "spec.template.metadata.labels",
            template_labels(template),
            NO_MATCH_MSG,
        ));
    }
    if let Some(s) = selector
        && selector_is_empty(s)
    {
        errors.push(invalid(
            "spec.selector",
            selector_value(s),
            "empty selector is invalid for daemonset",
        ));
    }
    errors.extend(validate_pod_template(template, "spec.template"));
    errors.extend(template_restart_rules(
        template,
        "DaemonSet",
        "spec.template",
    ));
    errors.extend(nonnegative(spec, "minReadySeconds", "spec"));
    let strategy = &spec["updateStrategy"];
    match strategy.get("type").and_then(Value::as_str) {
        None | Some("OnDelete") => {}
        Some("RollingUpdate") => match strategy.get("rollingUpdate").filter(|r| r.is_object()) {
            Some(rolling) => errors.extend(validate_daemon_set_rolling_update(
                rolling,
                "spec.updateStrategy.rollingUpdate",
            )),
            None => errors.push(required("spec.updateStrategy.rollingUpdate", "")),
        },
        Some(other) => errors.push(not_supported(
            "spec.updateStrategy",
            shown(format!(
                "apps.DaemonSetUpdateStrategy{{Type:{}, RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}}",
                super::field::go_quote(other)
            )),
            &["RollingUpdate", "OnDelete"],
        )),
    }
    errors.extend(nonnegative(spec, "revisionHistoryLimit", "spec"));
    errors
}

/// Restart policy `Always` and no `activeDeadlineSeconds`, for controllers whose pods always
/// restart.
fn template_restart_rules(template: &Value, owner: &str, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let policy = text(&template["spec"], "restartPolicy");
    if !policy.is_empty() && policy != "Always" {
        errors.push(not_supported(
            &format!("{path}.spec.restartPolicy"),
            policy,
            &["Always"],
        ));
    }
    if template["spec"]
        .get("activeDeadlineSeconds")
        .is_some_and(|v| !v.is_null())
    {
        errors.push(forbidden(
            &format!("{path}.spec.activeDeadlineSeconds"),
            &format!("activeDeadlineSeconds in {owner} is not Supported"),
        ));
    }
    errors
}

/// `ValidateStatefulSetSpec`. Upstream does not validate a StatefulSet template's pod spec
/// (only its labels and annotations); its pods are validated when they are created.
pub(crate) fn validate_stateful_set(obj: &Value) -> Vec<FieldError> {
    let spec = &obj["spec"];
    let mut errors = Vec::new();
    if let Some(policy) = spec.get("podManagementPolicy").and_then(Value::as_str) {
        match policy {
            "OrderedReady" | "Parallel" => {}
            "" => errors.push(required("spec.podManagementPolicy", "")),
            other => errors.push(invalid(
                "spec.podManagementPolicy",
                other,
                "must be 'OrderedReady' or 'Parallel'",
            )),
        }
    }
    let strategy = &spec["updateStrategy"];
    let rolling = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match strategy.get("type").and_then(Value::as_str) {
        None => {}
        Some("RollingUpdate") => {
            if let Some(rolling) = rolling {
                let path = "spec.updateStrategy.rollingUpdate";
                errors.extend(nonnegative(rolling, "partition", path));
                if let Some(max) = rolling.get("maxUnavailable").filter(|m| !m.is_null()) {
                    let max_path = format!("{path}.maxUnavailable");
                    errors.extend(positive_int_or_percent(Some(max), &max_path));
                    if amount(Some(max)) == 0 {
                        errors.push(invalid(&max_path, int_or_string_shown(max), "cannot be 0"));
                    }
                    errors.extend(not_over_100_percent(Some(max), &max_path));
                }
            }
        }
        Some("OnDelete") => {
            if let Some(rolling) = rolling {
                errors.push(invalid(
                    "spec.updateStrategy.rollingUpdate",
                    rolling.clone(),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        Some("") => errors.push(required("spec.updateStrategy", "")),
        Some(_) => errors.push(invalid(
            "spec.updateStrategy",
            strategy.clone(),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    let retention = &spec["persistentVolumeClaimRetentionPolicy"];
    for key in ["whenDeleted", "whenScaled"] {
        if let Some(policy) = retention.get(key).and_then(Value::as_str)
            && policy != "Retain"
            && policy != "Delete"
        {
            errors.push(not_supported(
                &format!("spec.persistentVolumeClaimRetentionPolicy.{key}"),
                policy,
                &["Retain", "Delete"],
            ));
        }
    }
    errors.extend(nonnegative(spec, "replicas", "spec"));
    errors.extend(nonnegative(spec, "minReadySeconds", "spec"));
    if let Some(start) = int(&spec["ordinals"], "start")
        && start < 0
    {
        errors.push(invalid("spec.ordinals.start", start, NEGATIVE_MSG));
    }
    errors.extend(required_selector(spec, "statefulset", "spec"));
    let template = &spec["template"];
    if selector_misses(&spec["selector"], template) {
        errors.push(invalid(
            "spec.template.metadata.labels",
            template_labels(template),
            NO_MATCH_MSG,
        ));
    }
    let meta = &template["metadata"];
    errors.extend(validate_labels(
        meta.get("labels").and_then(Value::as_object),
        "spec.template.labels",
    ));
    errors.extend(validate_annotations(
        meta.get("annotations").and_then(Value::as_object),
        "spec.template.annotations",
    ));
    errors.extend(template_restart_rules(
        template,
        "StatefulSet",
        "spec.template",
    ));
    errors
}

/// The StatefulSet spec fields an update may change.
const STATEFUL_SET_MUTABLE: [&str; 6] = [
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

pub(crate) fn validate_stateful_set_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let strip = |v: &Value| {
        let mut spec = v["spec"].clone();
        if let Some(o) = spec.as_object_mut() {
            for key in STATEFUL_SET_MUTABLE {
                o.remove(key);
            }
            // Defaulted fields count as unchanged when an update leaves them out.
            o.retain(|_, v| !v.is_null());
        }
        spec
    };
    if strip(old) == strip(new) {
        Vec::new()
    } else {
        vec![forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        )]
    }
}

/// `ValidateImmutableField` on `spec.selector` (Deployments, ReplicaSets, DaemonSets, Jobs).
pub(crate) fn immutable_selector(old: &Value, new: &Value) -> Vec<FieldError> {
    let (o, n) = (&old["spec"]["selector"], &new["spec"]["selector"]);
    if LabelSelector::from_json(o).ok() == LabelSelector::from_json(n).ok()
        && o.is_null() == n.is_null()
    {
        Vec::new()
    } else {
        vec![invalid("spec.selector", selector_value(n), IMMUTABLE_MSG)]
    }
}

pub(crate) fn validate_replication_controller(obj: &Value) -> Vec<FieldError> {
    let spec = &obj["spec"];
    let mut errors = nonnegative(spec, "minReadySeconds", "spec");
    // Upstream defaults an absent selector to the template's labels.
    let selector = spec
        .get("selector")
        .filter(|s| s.is_object())
        .cloned()
        .unwrap_or_else(|| template_labels(&spec["template"]));
    if selector.as_object().is_none_or(Map::is_empty) {
        errors.push(required("spec.selector", ""));
    }
    errors.extend(nonnegative(spec, "replicas", "spec"));
    errors.extend(validate_restarting_template(
        spec.get("template"),
        &json!({ "matchLabels": selector }),
        "ReplicationController",
        "spec.template",
    ));
    errors
}

/// `validateJobSpec` without the selector rules (shared by Jobs and CronJob job templates).
fn validate_job_spec_body(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        errors.extend(nonnegative(spec, key, path));
    }
    if let Some(mode) = spec.get("completionMode").and_then(Value::as_str) {
        if mode != "NonIndexed" && mode != "Indexed" {
            errors.push(not_supported(
                &format!("{path}.completionMode"),
                mode,
                &["NonIndexed", "Indexed"],
            ));
        } else if mode == "Indexed" && int(spec, "completions").is_none() {
            errors.push(required(
                &format!("{path}.completions"),
                "when completion mode is Indexed",
            ));
        }
    }
    let template_path = format!("{path}.template");
    match spec.get("template").filter(|t| t.is_object()) {
        None => errors.push(required(&template_path, "")),
        Some(template) => {
            errors.extend(validate_pod_template(template, &template_path));
            let policy = text(&template["spec"], "restartPolicy");
            if policy != "OnFailure" && policy != "Never" {
                errors.push(not_supported(
                    &format!("{template_path}.spec.restartPolicy"),
                    policy,
                    &["OnFailure", "Never"],
                ));
            }
        }
    }
    errors
}

pub(crate) fn validate_job(obj: &Value) -> Vec<FieldError> {
    let spec = &obj["spec"];
    let mut errors = Vec::new();
    match spec.get("selector").filter(|s| s.is_object()) {
        None => errors.push(required("spec.selector", "")),
        Some(selector) => {
            errors.extend(validate_label_selector(selector, "spec.selector"));
            if let Ok(parsed) = LabelSelector::from_json(selector)
                && !parsed.matches(spec["template"]["metadata"]["labels"].as_object())
            {
                errors.push(invalid(
                    "spec.template.metadata.labels",
                    template_labels(&spec["template"]),
                    NO_MATCH_MSG,
                ));
            }
        }
    }
    errors.extend(validate_job_spec_body(spec, "spec"));
    errors
}

pub(crate) fn validate_job_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errors = immutable_selector(old, new);
    let (o, n) = (&old["spec"], &new["spec"]);
    if let (Some(a), Some(b)) = (o.get("completionMode"), n.get("completionMode"))
        && a != b
    {
        errors.push(invalid("spec.completionMode", b.clone(), IMMUTABLE_MSG));
    }
    // A suspended Job's template may change (its scheduling directives, upstream); a running
    // Job's may not.
    let suspended = o.get("suspend").and_then(Value::as_bool) == Some(true);
    if !suspended && o.get("template") != n.get("template") {
        errors.push(invalid(
            "spec.template",
            n.get("template").cloned().unwrap_or(Value::Null),
            IMMUTABLE_MSG,
        ));
    }
    errors
}

pub(crate) fn validate_cron_job(obj: &Value) -> Vec<FieldError> {
    let spec = &obj["spec"];
    let mut errors = Vec::new();
    let name = text(&obj["metadata"], "name");
    if name.len() > 52 {
        errors.push(invalid(
            "metadata.name",
            name,
            "must be no more than 52 characters",
        ));
    }
    let schedule = text(spec, "schedule");
    if schedule.is_empty() {
        errors.push(required("spec.schedule", ""));
    } else {
        if let Err(e) = Schedule::parse(schedule) {
            errors.push(invalid("spec.schedule", schedule, &e));
        }
        if schedule.contains("TZ") {
            errors.push(invalid(
                "spec.schedule",
                schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    errors.extend(nonnegative(spec, "startingDeadlineSeconds", "spec"));
    if let Some(policy) = spec.get("concurrencyPolicy").and_then(Value::as_str) {
        errors.extend(one_of(
            policy,
            &["Allow", "Forbid", "Replace"],
            "spec.concurrencyPolicy",
        ));
    }
    match spec.get("jobTemplate").filter(|t| t.is_object()) {
        None => errors.push(required("spec.jobTemplate", "")),
        Some(template) => {
            let job_spec = &template["spec"];
            errors.extend(validate_job_spec_body(job_spec, "spec.jobTemplate.spec"));
            if let Some(selector) = job_spec.get("selector").filter(|s| !s.is_null()) {
                errors.push(invalid(
                    "spec.jobTemplate.spec.selector",
                    selector_value(selector),
                    "`selector` will be auto-generated",
                ));
            }
            if job_spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
                errors.push(not_supported(
                    "spec.jobTemplate.spec.manualSelector",
                    true,
                    &["nil", "false"],
                ));
            }
        }
    }
    errors.extend(nonnegative(spec, "successfulJobsHistoryLimit", "spec"));
    errors.extend(nonnegative(spec, "failedJobsHistoryLimit", "spec"));
    errors
}
