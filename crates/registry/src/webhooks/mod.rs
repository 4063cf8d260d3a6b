//! Dynamic admission as kube-apiserver's `MutatingAdmissionWebhook` and
//! `ValidatingAdmissionWebhook` plugins do it: the cluster's Mutating- and
//! ValidatingWebhookConfigurations, indexed once per change, are matched against each write
//! (rules, match policy, namespace and object selectors, scope) and called with an
//! `AdmissionReview` (v1 or v1beta1, as the webhook accepts). Mutating webhooks run one after
//! another and their JSONPatches are applied (reinvoked once when `IfNeeded` and a later webhook
//! changed the object); validating webhooks run concurrently. A refusal or a failed call under
//! `failurePolicy: Fail` refuses the write with upstream's messages; nothing is written then.
//!
//! `matchConditions` are compiled when the index is read (`localfargate_core::match_conditions`,
//! cel-rust) and evaluated as upstream's matcher does, on the request as the webhook would be
//! sent it: one false condition skips the webhook; conditions that fail to evaluate (none
//! false) refuse the request with 403 under `failurePolicy: Fail` and skip the webhook under
//! `Ignore`. Mutating webhooks' conditions see the object as the webhooks before them left it.

pub mod client;
pub mod conversion;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use base64::Engine;
use localfargate_core::match_conditions::{MatchConditions, Outcome};
use localfargate_core::rbac::UserInfo;
use localfargate_core::selectors::LabelSelector;
use serde_json::{Value, json};

use crate::objects::{KubeError, Objects, Result};
use crate::resources::ResourceType;

pub const GROUP: &str = "admissionregistration.k8s.io";
pub const MUTATING_PREFIX: &str = "admissionregistration.k8s.io/mutatingwebhookconfigurations/";
pub const VALIDATING_PREFIX: &str = "admissionregistration.k8s.io/validatingwebhookconfigurations/";

/// The operation of a request, as an `AdmissionReview` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }

    fn options_kind(self) -> &'static str {
        match self {
            Operation::Create => "CreateOptions",
            Operation::Update => "UpdateOptions",
            Operation::Delete => "DeleteOptions",
            Operation::Connect => "",
        }
    }
}

/// Who makes the requests of an `Objects`, and where the webhooks' warnings go.
#[derive(Debug, Default)]
pub struct Requester {
    pub user: UserInfo,
    /// `fieldManager` of the request, sent in the review's options.
    pub field_manager: Option<String>,
    /// The warnings webhooks returned, for the front end to send as `Warning` headers.
    pub warnings: Mutex<Vec<String>>,
}

impl Requester {
    pub fn new(user: UserInfo) -> Self {
        Requester {
            user,
            ..Default::default()
        }
    }

    /// The warnings so far, taken.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// What a request is, for matching and for the review.
pub struct Attributes<'a> {
    pub operation: Operation,
    pub rt: &'a ResourceType,
    /// The kind of the object sent when it is not the resource's: `PodExecOptions` (in the
    /// resource's group and version) of a CONNECT to `pods/exec`, or `policy/v1/Eviction` with
    /// its own; empty otherwise.
    pub kind: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub old: Option<&'a Value>,
    pub dry_run: bool,
}

#[derive(Debug, Clone)]
struct Rule {
    operations: Vec<String>,
    groups: Vec<String>,
    versions: Vec<String>,
    resources: Vec<String>,
    scope: String,
}

/// One webhook of a configuration, read.
#[derive(Debug, Clone)]
pub(crate) struct Hook {
    name: String,
    rules: Vec<Rule>,
    exact: bool,
    namespace_selector: Option<LabelSelector>,
    object_selector: Option<LabelSelector>,
    /// Compiled once, when the configuration is indexed.
    match_conditions: Arc<MatchConditions>,
    client_config: Value,
    review_versions: Vec<String>,
    timeout: Duration,
    ignore_failures: bool,
    side_effects_safe: bool,
    reinvoke: bool,
    /// A selector that does not parse: the webhook cannot be matched, so every call fails.
    broken: Option<String>,
}

#[derive(Debug, Default)]
struct Index {
    mutating: Vec<Arc<Hook>>,
    validating: Vec<Arc<Hook>>,
}

/// The cluster's webhook configurations, read when first needed after a change.
#[derive(Debug, Default)]
pub struct Webhooks {
    current: RwLock<Option<Arc<Index>>>,
    /// Bumped by every invalidation, so an index read before one is not kept after it.
    generation: std::sync::atomic::AtomicU64,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn read_hook(w: &Value, mutating: bool, v1beta1_defaults: bool) -> Hook {
    let mut broken = None;
    let mut selector = |field: &str| -> Option<LabelSelector> {
        let s = &w[field];
        if s.is_null() {
            return None;
        }
        match LabelSelector::from_json(s) {
            Ok(sel) => Some(sel),
            Err(e) => {
                broken = Some(format!("invalid {field}: {e}"));
                None
            }
        }
    };
    let namespace_selector = selector("namespaceSelector");
    let object_selector = selector("objectSelector");
    let rules = w["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| Rule {
            operations: strings(&r["operations"]),
            groups: strings(&r["apiGroups"]),
            versions: strings(&r["apiVersions"]),
            resources: strings(&r["resources"]),
            scope: r["scope"].as_str().unwrap_or("*").to_string(),
        })
        .collect();
    let side_effects =
        w["sideEffects"]
            .as_str()
            .unwrap_or(if v1beta1_defaults { "Unknown" } else { "" });
    let mut review_versions = strings(&w["admissionReviewVersions"]);
    if review_versions.is_empty() {
        review_versions = vec!["v1beta1".to_string()];
    }
    Hook {
        name: w["name"].as_str().unwrap_or_default().to_string(),
        rules,
        exact: w["matchPolicy"] == "Exact",
        namespace_selector,
        object_selector,
        match_conditions: Arc::new(MatchConditions::from_json(&w["matchConditions"])),
        client_config: w["clientConfig"].clone(),
        review_versions,
        timeout: Duration::from_secs(w["timeoutSeconds"].as_u64().unwrap_or(10).clamp(1, 30)),
        ignore_failures: w["failurePolicy"] == "Ignore",
        side_effects_safe: matches!(side_effects, "None" | "NoneOnDryRun"),
        reinvoke: mutating && w["reinvocationPolicy"] == "IfNeeded",
        broken,
    }
}

impl Index {
    fn load(objects: &Objects) -> Result<Index> {
        let mut index = Index::default();
        for (prefix, mutating) in [(MUTATING_PREFIX, true), (VALIDATING_PREFIX, false)] {
            // Listed in key (name) order: upstream sorts the configurations by name.
            let (configs, _) = objects
                .store
                .list(objects.store_kind(), prefix)
                .map_err(KubeError::from_store)?;
            for c in configs.iter() {
                let v1beta1 = c.value["apiVersion"] == "admissionregistration.k8s.io/v1beta1";
                for w in c.value["webhooks"].as_array().into_iter().flatten() {
                    let hook = Arc::new(read_hook(w, mutating, v1beta1));
                    if mutating {
                        index.mutating.push(hook);
                    } else {
                        index.validating.push(hook);
                    }
                }
            }
        }
        Ok(index)
    }
}

impl Webhooks {
    fn index(&self, objects: &Objects) -> Result<Arc<Index>> {
        if let Some(i) = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Ok(i.clone());
        }
        let read_at = self.generation.load(std::sync::atomic::Ordering::Acquire);
        let index = Arc::new(Index::load(objects)?);
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        // A configuration written while this one was read: use it for this call, cache nothing.
        if self.generation.load(std::sync::atomic::Ordering::Acquire) == read_at {
            *current = Some(index.clone());
        }
        Ok(index)
    }

    /// A configuration changed: read them again when next needed.
    pub fn invalidate(&self) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        *current = None;
    }
}

/// Whether a write to `rt` changes the webhooks' configuration.
pub fn is_configuration(rt: &ResourceType) -> bool {
    rt.group == GROUP
        && matches!(
            rt.resource,
            "mutatingwebhookconfigurations" | "validatingwebhookconfigurations"
        )
}

/// Upstream never sends these to webhooks, so a broken webhook cannot lock itself in.
fn exempt(rt: &ResourceType) -> bool {
    rt.group == GROUP
        && matches!(
            rt.resource,
            "mutatingwebhookconfigurations"
                | "validatingwebhookconfigurations"
                | "validatingadmissionpolicies"
                | "validatingadmissionpolicybindings"
                | "mutatingadmissionpolicies"
                | "mutatingadmissionpolicybindings"
        )
}

fn any_is(list: &[String], value: &str) -> bool {
    list.iter().any(|x| x == "*" || x == value)
}

/// Whether a rule's `resources` entry (`pods`, `pods/status`, `*`, `*/scale`, `*/*`) names
/// the resource and subresource.
fn resource_matches(entry: &str, resource: &str, subresource: &str) -> bool {
    let (r, s) = entry.split_once('/').unwrap_or((entry, ""));
    entry == "*/*"
        || ((r == "*" || r == resource)
            && (s == subresource || (s == "*" && !subresource.is_empty())))
}

impl Rule {
    /// Whether this rule takes the request; `exact`: the version must be listed too
    /// (`matchPolicy: Exact`). Under `Equivalent` another version of the same group and
    /// resource matches (each built-in is served in one version here, so the object is sent as
    /// the request has it).
    fn matches(&self, a: &Attributes, exact: bool) -> bool {
        let rt = a.rt;
        if !any_is(&self.operations, a.operation.as_str())
            || !any_is(&self.groups, rt.group)
            || (exact && !any_is(&self.versions, rt.version))
            || !self
                .resources
                .iter()
                .any(|e| resource_matches(e, rt.resource, a.subresource))
        {
            return false;
        }
        match self.scope.as_str() {
            "Cluster" => !rt.namespaced,
            "Namespaced" => rt.namespaced,
            _ => true,
        }
    }
}

fn labels(v: Option<&Value>) -> Option<&serde_json::Map<String, Value>> {
    v.and_then(crate::meta::labels_of)
}

impl Hook {
    /// Whether the webhook is called for this request: a rule, then the selectors.
    fn applies(&self, objects: &Objects, a: &Attributes, new: Option<&Value>) -> Result<bool> {
        if !self.rules.iter().any(|r| r.matches(a, self.exact)) {
            return Ok(false);
        }
        if let Some(sel) = &self.object_selector
            && !sel.is_empty()
            && !((new.is_some() && sel.matches(labels(new)))
                || (a.old.is_some() && sel.matches(labels(a.old))))
        {
            return Ok(false);
        }
        if let Some(sel) = self.namespace_selector.as_ref().filter(|s| !s.is_empty()) {
            if a.rt.group.is_empty() && a.rt.resource == "namespaces" {
                // A namespace is matched by its own labels.
                let own = labels(new).or(labels(a.old));
                return Ok(sel.matches(own));
            }
            if !a.rt.namespaced {
                return Ok(true);
            }
            let ns = objects.get_object(crate::objects::namespaces(), "", a.namespace)?;
            let ns_labels = ns.as_ref().and_then(|n| crate::meta::labels_of(&n.value));
            return Ok(sel.matches(ns_labels));
        }
        Ok(true)
    }
}

impl Hook {
    /// Under `Equivalent`, the version a matching rule names when none names the request's
    /// own (`None`: the request is sent as it is).
    fn equivalent_version(&self, a: &Attributes) -> Option<&str> {
        if self.exact {
            return None;
        }
        let matching: Vec<&Rule> = self.rules.iter().filter(|r| r.matches(a, false)).collect();
        if matching.iter().any(|r| any_is(&r.versions, a.rt.version)) {
            return None;
        }
        matching.first()?.versions.first().map(String::as_str)
    }
}

/// A webhook's answer, read.
struct Answer {
    allowed: bool,
    status: Value,
    patch: Option<Vec<u8>>,
    warnings: Vec<String>,
}

fn gvk(a: &Attributes) -> Value {
    if a.kind.is_empty() {
        return json!({"group": a.rt.group, "version": a.rt.version, "kind": a.rt.kind});
    }
    let (group, version, kind) = match a.kind.rsplit_once('/') {
        Some((api_version, kind)) => match api_version.split_once('/') {
            Some((g, v)) => (g, v, kind),
            None => ("", api_version, kind),
        },
        None => (a.rt.group, a.rt.version, a.kind),
    };
    json!({"group": group, "version": version, "kind": kind})
}

fn gvr(rt: &ResourceType) -> Value {
    json!({"group": rt.group, "version": rt.version, "resource": rt.resource})
}

fn user_info(user: &UserInfo) -> Value {
    let mut u = json!({"username": user.name});
    if !user.uid.is_empty() {
        u["uid"] = json!(user.uid);
    }
    if !user.groups.is_empty() {
        u["groups"] = json!(user.groups);
    }
    if !user.extra.is_empty() {
        u["extra"] = json!(user.extra);
    }
    u
}

/// The `AdmissionReview` of a request, in the first version the webhook accepts.
/// The request as one webhook is sent it: the resource (another version of it under
/// `Equivalent`) and the objects in that version.
struct Seen<'a> {
    rt: Option<&'a ResourceType>,
    new: Option<&'a Value>,
    old: Option<&'a Value>,
}

fn review(
    hook: &Hook,
    uid: &str,
    a: &Attributes,
    seen: &Seen,
    requester: &Requester,
) -> std::result::Result<Value, String> {
    let (kind, resource) = match seen.rt {
        Some(rt) => (
            json!({"group": rt.group, "version": rt.version, "kind": rt.kind}),
            gvr(rt),
        ),
        None => (gvk(a), gvr(a.rt)),
    };
    let version = hook
        .review_versions
        .iter()
        .find(|v| *v == "v1" || *v == "v1beta1")
        .ok_or_else(|| {
            format!(
                "webhook does not accept known AdmissionReview versions: {:?}",
                hook.review_versions
            )
        })?;
    let mut request = json!({
        "uid": uid,
        "kind": kind,
        "resource": resource,
        "requestKind": gvk(a),
        "requestResource": gvr(a.rt),
        "name": a.name,
        "operation": a.operation.as_str(),
        "userInfo": user_info(&requester.user),
        "object": seen.new.cloned().unwrap_or(Value::Null),
        "oldObject": seen.old.cloned().unwrap_or(Value::Null),
        "dryRun": a.dry_run,
    });
    if !a.subresource.is_empty() {
        request["subResource"] = json!(a.subresource);
        request["requestSubResource"] = json!(a.subresource);
    }
    if a.rt.namespaced {
        request["namespace"] = json!(a.namespace);
    }
    let kind = a.operation.options_kind();
    if !kind.is_empty() {
        let mut options = json!({"kind": kind, "apiVersion": "meta.k8s.io/v1"});
        if a.dry_run {
            options["dryRun"] = json!(["All"]);
        }
        if let Some(m) = &requester.field_manager
            && a.operation != Operation::Delete
        {
            options["fieldManager"] = json!(m);
        }
        request["options"] = options;
    }
    Ok(json!({
        "apiVersion": format!("admission.k8s.io/{version}"),
        "kind": "AdmissionReview",
        "request": request,
    }))
}

/// Read a webhook's `AdmissionReview` response, checked as upstream checks it.
fn answer(sent: &Value, got: Value, uid: &str) -> std::result::Result<Answer, String> {
    let sent_version = sent["apiVersion"].as_str().unwrap_or_default();
    if sent_version == "admission.k8s.io/v1"
        && (got["apiVersion"] != sent_version || got["kind"] != "AdmissionReview")
    {
        return Err(format!(
            "received invalid webhook response: expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {}, Kind={}",
            got["apiVersion"].as_str().unwrap_or_default(),
            got["kind"].as_str().unwrap_or_default()
        ));
    }
    let response = &got["response"];
    if !response.is_object() {
        return Err("received invalid webhook response: response was absent".into());
    }
    if sent_version == "admission.k8s.io/v1" && response["uid"] != uid {
        return Err(format!(
            "received invalid webhook response: expected response.uid=\"{uid}\", got \"{}\"",
            response["uid"].as_str().unwrap_or_default()
        ));
    }
    let patch = match response["patch"].as_str().filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => {
            match response["patchType"].as_str() {
                Some("JSONPatch") => {}
                None | Some("") if sent_version == "admission.k8s.io/v1" => {
                    return Err("received invalid webhook response: webhook returned response.patch but not response.patchType".into());
                }
                None | Some("") => {}
                Some(other) => {
                    return Err(format!(
                        "received invalid webhook response: webhook returned invalid response.patchType of \"{other}\""
                    ));
                }
            }
            Some(
                base64::engine::general_purpose::STANDARD
                    .decode(p)
                    .map_err(|e| format!("received invalid webhook response: {e}"))?,
            )
        }
    };
    Ok(Answer {
        allowed: response["allowed"].as_bool().unwrap_or(false),
        status: response["status"].clone(),
        patch,
        warnings: strings(&response["warnings"]),
    })
}

/// The refusal of a webhook that did not allow the request (upstream's `ToStatusErr`).
fn denial(hook: &str, status: &Value) -> KubeError {
    let denied_by = format!("admission webhook \"{hook}\" denied the request");
    let message = status["message"].as_str().filter(|m| !m.is_empty());
    let reason = status["reason"].as_str().filter(|r| !r.is_empty());
    let message = match (message, reason) {
        (Some(m), _) => format!("{denied_by}: {m}"),
        (None, Some(r)) => format!("{denied_by}: {r}"),
        (None, None) => format!("{denied_by} without explanation"),
    };
    let code = status["code"]
        .as_u64()
        .filter(|c| *c >= 400 && *c < 600)
        .unwrap_or(400) as u16;
    KubeError::Webhook {
        message,
        code,
        reason: reason.unwrap_or_default().to_string(),
        details: status["details"].clone(),
    }
}

/// A call that failed: refused under `failurePolicy: Fail`, skipped under `Ignore`.
fn failed(hook: &Hook, reason: &str) -> Option<KubeError> {
    if hook.ignore_failures {
        tracing::warn!(webhook = %hook.name, %reason, "failed calling webhook, failing open");
        return None;
    }
    Some(KubeError::Internal(format!(
        "Internal error occurred: failed calling webhook \"{}\": {reason}",
        hook.name
    )))
}

/// Call the webhooks with their reviews, concurrently; each answer's `Err` carries why its call
/// failed (a denial is an answer).
fn call_all(
    objects: &Objects,
    calls: Vec<(Arc<Hook>, Value)>,
) -> Vec<(Arc<Hook>, Value, std::result::Result<Value, String>)> {
    let mut futures: Vec<client::Call<std::result::Result<Value, String>>> = Vec::new();
    for (hook, body) in &calls {
        match client::resolve(objects, &hook.client_config, hook.timeout) {
            Ok(target) => {
                let bytes = serde_json::to_vec(body).unwrap_or_default();
                let timeout = hook.timeout;
                futures.push(Box::pin(async move {
                    client::post(target, bytes, timeout)
                        .await
                        .map_err(|e| format!("failed to call webhook: {e}"))
                }));
            }
            Err(e) => {
                let reason = format!("failed to call webhook: {e}");
                futures.push(Box::pin(async move { Err(reason) }));
            }
        }
    }
    let results = client::wait_all(futures);
    calls
        .into_iter()
        .zip(results)
        // A call that never finished failed: it is not skipped.
        .map(|((h, b), r)| (h, b, r.unwrap_or_else(|| Err("the call was lost".into()))))
        .collect()
}

tokio::task_local! {
    static REQUESTER: Arc<Requester>;
}

/// Run a request's future with its requester: the writes it makes through any `Objects` are
/// sent to webhooks as this user's, and their warnings are collected in it.
pub async fn with_requester<F: std::future::Future>(requester: Arc<Requester>, f: F) -> F::Output {
    REQUESTER.scope(requester, f).await
}

/// A warning for the request being served (a `Warning` header); nothing outside a request.
pub fn warn(text: String) {
    let _ = REQUESTER.try_with(|r| {
        r.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(text)
    });
}

/// Writes made outside a request (the controllers'), as kube-controller-manager's.
fn internal_requester() -> Arc<Requester> {
    static INTERNAL: std::sync::OnceLock<Arc<Requester>> = std::sync::OnceLock::new();
    INTERNAL
        .get_or_init(|| {
            Arc::new(Requester::new(UserInfo::new(
                "system:kube-controller-manager",
                &["system:authenticated"],
            )))
        })
        .clone()
}

impl Objects {
    fn requester(&self) -> Arc<Requester> {
        REQUESTER
            .try_with(Arc::clone)
            .unwrap_or_else(|_| internal_requester())
    }

    /// The hooks of `list` that take the request, refused at once if one has side effects and
    /// the request is a dry run.
    ///
    /// `conditions_now`: the webhooks' `matchConditions` are evaluated here (validating
    /// webhooks); otherwise (mutating ones, whose object changes from one call to the next)
    /// `mutate_once` evaluates them, and makes the dry-run check of those that have them.
    fn matching(
        &self,
        list: &[Arc<Hook>],
        a: &Attributes,
        new: Option<&Value>,
        conditions_now: bool,
    ) -> Result<Vec<Arc<Hook>>> {
        let mut out = Vec::new();
        for hook in list {
            if !hook.applies(self, a, new)? {
                continue;
            }
            if !hook.match_conditions.is_empty() {
                if !conditions_now {
                    out.push(hook.clone());
                    continue;
                }
                if !self.conditions_allow(hook, a, new)? {
                    continue;
                }
            }
            dry_run_check(hook, a)?;
            out.push(hook.clone());
        }
        Ok(out)
    }

    /// Whether the webhook's `matchConditions` let it be called: `Ok(false)` when one is false,
    /// or when some failed under `Ignore`; 403 when some failed under `Fail` (upstream's
    /// `NewForbidden` of the resource and name with the evaluation errors).
    fn conditions_allow(&self, hook: &Hook, a: &Attributes, new: Option<&Value>) -> Result<bool> {
        if hook.broken.is_some() {
            // The call fails anyway: `failed` says why.
            return Ok(true);
        }
        let sent_as = self.sent_as(hook, a)?;
        let converted = self.converted(sent_as, new, a.old)?;
        let seen = Seen {
            rt: sent_as,
            new: converted.0.as_ref().or(new),
            old: converted.1.as_ref().or(a.old),
        };
        let requester = self.requester();
        let Ok(body) = review(hook, "", a, &seen, &requester) else {
            // No known review version: the call fails under the failure policy.
            return Ok(true);
        };
        let mut request = body["request"].clone();
        if let Some(r) = request.as_object_mut() {
            for key in ["uid", "object", "oldObject"] {
                r.remove(key);
            }
        }
        let null = Value::Null;
        let outcome = hook.match_conditions.evaluate(
            seen.new.unwrap_or(&null),
            seen.old.unwrap_or(&null),
            &request,
        );
        match outcome {
            Outcome::Match => Ok(true),
            Outcome::Excluded(condition) => {
                tracing::debug!(webhook = %hook.name, %condition, "webhook skipped by a match condition");
                Ok(false)
            }
            Outcome::Error(e) if hook.ignore_failures => {
                tracing::warn!(webhook = %hook.name, error = %e, "failed evaluating match conditions, skipping the webhook");
                Ok(false)
            }
            Outcome::Error(e) => {
                tracing::warn!(webhook = %hook.name, error = %e, "failed evaluating match conditions, failing closed");
                let resource = if a.rt.group.is_empty() {
                    a.rt.resource.to_string()
                } else {
                    format!("{}.{}", a.rt.resource, a.rt.group)
                };
                Err(KubeError::Forbidden(if a.name.is_empty() {
                    format!("{resource} is forbidden: {e}")
                } else {
                    format!("{resource} \"{}\" is forbidden: {e}", a.name)
                }))
            }
        }
    }

    /// Run the mutating webhooks that take the request on `obj` and apply their patches (a
    /// delete's or a connect's webhooks are called, their patches dropped: there is no stored
    /// object to change). Returns whether they changed it.
    pub(crate) fn webhooks_mutate(&self, a: &Attributes, obj: &mut Value) -> Result<bool> {
        if exempt(a.rt) {
            return Ok(false);
        }
        let index = self.webhooks.index(self)?;
        if index.mutating.is_empty() {
            return Ok(false);
        }
        let new = (!obj.is_null()).then_some(&*obj);
        let hooks = self.matching(&index.mutating, a, new, false)?;
        let mut changed = false;
        // For `IfNeeded`: how many changes had happened when each was called.
        let mut called_at: Vec<(Arc<Hook>, usize)> = Vec::new();
        let mut changes = 0usize;
        for hook in &hooks {
            if self.mutate_once(hook, a, obj)? {
                changes += 1;
                changed = true;
            }
            if hook.reinvoke {
                called_at.push((hook.clone(), changes));
            }
        }
        // Reinvoked once, in order, when a later webhook changed the object.
        for (hook, at) in called_at {
            if changes > at && self.mutate_once(&hook, a, obj)? {
                changes += 1;
            }
        }
        Ok(changed)
    }

    fn mutate_once(&self, hook: &Arc<Hook>, a: &Attributes, obj: &mut Value) -> Result<bool> {
        let requester = self.requester();
        if let Some(reason) = &hook.broken {
            return failed(hook, reason).map_or(Ok(false), Err);
        }
        let new = (!obj.is_null()).then_some(&*obj);
        if !hook.match_conditions.is_empty() {
            if !self.conditions_allow(hook, a, new)? {
                return Ok(false);
            }
            dry_run_check(hook, a)?;
        }
        let uid = crate::meta::new_uid();
        let sent_as = self.sent_as(hook, a)?;
        let converted = self.converted(sent_as, new, a.old)?;
        let seen = Seen {
            rt: sent_as,
            new: converted.0.as_ref().or(new),
            old: converted.1.as_ref().or(a.old),
        };
        let base = seen.new.cloned().unwrap_or(Value::Null);
        let body = match review(hook, &uid, a, &seen, &requester) {
            Ok(b) => b,
            Err(reason) => return failed(hook, &reason).map_or(Ok(false), Err),
        };
        let (_, sent, result) = call_all(self, vec![(hook.clone(), body)])
            .into_iter()
            .next()
            .ok_or_else(|| KubeError::Internal("webhook call lost".into()))?;
        let got = match result.and_then(|got| answer(&sent, got, &uid)) {
            Ok(a) => a,
            Err(reason) => return failed(hook, &reason).map_or(Ok(false), Err),
        };
        requester
            .warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(got.warnings);
        if !got.allowed {
            return Err(denial(&hook.name, &got.status));
        }
        let Some(patch) = got.patch else {
            return Ok(false);
        };
        if matches!(a.operation, Operation::Delete | Operation::Connect) {
            return Ok(false);
        }
        let applied = serde_json::from_slice::<json_patch::Patch>(&patch)
            .map_err(|e| e.to_string())
            .and_then(|p| {
                let mut patched = base;
                json_patch::patch(&mut patched, &p)
                    .map(|_| patched)
                    .map_err(|e| e.to_string())
            });
        // Back to the request's version when it was sent in another.
        let applied = match (applied, sent_as) {
            (Ok(patched), Some(_)) if patched.is_object() => Ok(self.present_one(a.rt, patched)?),
            (other, _) => other,
        };
        match applied {
            Ok(patched) if patched.is_object() => {
                let changed = patched != *obj;
                *obj = patched;
                Ok(changed)
            }
            Ok(_) => failed(
                hook,
                "received invalid webhook response: the patched object is not an object",
            )
            .map_or(Ok(false), Err),
            Err(e) => {
                // Upstream refuses a patch that does not apply, whatever the failure policy.
                Err(KubeError::Internal(format!(
                    "Internal error occurred: failed calling webhook \"{}\": {e}",
                    hook.name
                )))
            }
        }
    }

    /// Run the validating webhooks that take the request (`obj`: as it would be stored),
    /// concurrently; the first refusal (in the webhooks' order) refuses the request.
    pub(crate) fn webhooks_validate(&self, a: &Attributes, obj: Option<&Value>) -> Result<()> {
        if exempt(a.rt) {
            return Ok(());
        }
        let index = self.webhooks.index(self)?;
        if index.validating.is_empty() {
            return Ok(());
        }
        if index
            .validating
            .iter()
            .all(|h| !h.applies(self, a, obj).unwrap_or(true))
        {
            return Ok(());
        }
        // The object as the request's version shows it (a custom resource is stored in its
        // storage version by now).
        let shown = obj.map(|o| self.present_one(a.rt, o.clone())).transpose()?;
        self.webhooks_validate_shown(a, shown.as_ref())
    }

    /// `webhooks_validate` of an object as the request shows it.
    fn webhooks_validate_shown(&self, a: &Attributes, obj: Option<&Value>) -> Result<()> {
        if exempt(a.rt) {
            return Ok(());
        }
        let index = self.webhooks.index(self)?;
        let hooks = self.matching(&index.validating, a, obj, true)?;
        if hooks.is_empty() {
            return Ok(());
        }
        let requester = self.requester();
        // One outcome per webhook, in the webhooks' order: the first refusal is the answer.
        let mut outcomes: Vec<Option<KubeError>> = Vec::with_capacity(hooks.len());
        let mut calls = Vec::new();
        let mut called_at = Vec::new();
        for hook in hooks {
            let refused = if let Some(reason) = &hook.broken {
                failed(&hook, reason)
            } else {
                let uid = crate::meta::new_uid();
                let sent_as = self.sent_as(&hook, a)?;
                let converted = self.converted(sent_as, obj, a.old)?;
                let seen = Seen {
                    rt: sent_as,
                    new: converted.0.as_ref().or(obj),
                    old: converted.1.as_ref().or(a.old),
                };
                match review(&hook, &uid, a, &seen, &requester) {
                    Ok(body) => {
                        called_at.push(outcomes.len());
                        calls.push((hook, body));
                        None
                    }
                    Err(reason) => failed(&hook, &reason),
                }
            };
            outcomes.push(refused);
        }
        for (at, (hook, sent, result)) in called_at.into_iter().zip(call_all(self, calls)) {
            let uid = sent["request"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            outcomes[at] = match result.and_then(|got| answer(&sent, got, &uid)) {
                Ok(got) => {
                    requester
                        .warnings
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend(got.warnings);
                    (!got.allowed).then(|| denial(&hook.name, &got.status))
                }
                Err(reason) => failed(&hook, &reason),
            };
        }
        match outcomes.into_iter().flatten().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The resource a webhook is sent the request as when it is not the request's own: under
    /// `Equivalent`, the served version of a custom resource its rule names (each built-in is
    /// served in one version here).
    fn sent_as(&self, hook: &Hook, a: &Attributes) -> Result<Option<&'static ResourceType>> {
        let Some(version) = hook.equivalent_version(a) else {
            return Ok(None);
        };
        if !a.rt.custom || !a.kind.is_empty() {
            return Ok(None);
        }
        Ok(self
            .catalog()?
            .resource(a.rt.group, version, a.rt.resource)
            .filter(|r| r.custom))
    }

    /// The objects in the version `sent_as` (by the definition's conversion), when there is one.
    fn converted(
        &self,
        sent_as: Option<&ResourceType>,
        new: Option<&Value>,
        old: Option<&Value>,
    ) -> Result<(Option<Value>, Option<Value>)> {
        let Some(rt) = sent_as else {
            return Ok((None, None));
        };
        let convert = |v: Option<&Value>| v.map(|o| self.present_one(rt, o.clone())).transpose();
        Ok((convert(new)?, convert(old)?))
    }

    /// Whether the cluster has any admission webhook.
    pub(crate) fn webhooks_configured(&self) -> Result<bool> {
        let index = self.webhooks.index(self)?;
        Ok(!index.mutating.is_empty() || !index.validating.is_empty())
    }

    /// A configuration was written: the index is read again when next needed.
    pub fn webhooks_changed(&self) {
        self.webhooks.invalidate();
    }

    /// A CONNECT (`pods/exec`, `pods/attach`) by `user`: the webhooks that take it are called
    /// with the connect options (`kind`: `PodExecOptions`, …) as the object, before the
    /// connection is upgraded.
    #[allow(clippy::too_many_arguments)]
    pub fn admit_connect(
        &self,
        user: UserInfo,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        subresource: &str,
        kind: &str,
        options: &Value,
    ) -> Result<()> {
        let a = Attributes {
            operation: Operation::Connect,
            rt,
            kind,
            subresource,
            namespace,
            name,
            old: None,
            dry_run: false,
        };
        REQUESTER.sync_scope(Arc::new(Requester::new(user)), || {
            let mut shown = options.clone();
            self.webhooks_mutate(&a, &mut shown)?;
            self.webhooks_validate_shown(&a, Some(options))
        })
    }

    /// A CREATE of a subresource that is not stored (`pods/eviction`, `serviceaccounts/token`)
    /// in the current request: the mutating webhooks that take it may change `obj`, then the
    /// validating ones see it. `kind`: the object's `group/version/Kind`.
    #[allow(clippy::too_many_arguments)]
    pub fn admit_subresource_create(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        subresource: &str,
        kind: &str,
        obj: &mut Value,
        dry_run: bool,
    ) -> Result<()> {
        let a = Attributes {
            operation: Operation::Create,
            rt,
            kind,
            subresource,
            namespace,
            name,
            old: None,
            dry_run,
        };
        self.webhooks_mutate(&a, obj)?;
        self.webhooks_validate_shown(&a, Some(obj))
    }

    /// An UPDATE of a subresource with an object of its own (`deployments/scale`, an
    /// `autoscaling/v1 Scale`): the mutating webhooks that take it may change `obj`, then the
    /// validating ones see it beside `old`.
    #[allow(clippy::too_many_arguments)]
    pub fn admit_subresource_update(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        subresource: &str,
        kind: &str,
        obj: &mut Value,
        old: &Value,
        dry_run: bool,
    ) -> Result<()> {
        let a = Attributes {
            operation: Operation::Update,
            rt,
            kind,
            subresource,
            namespace,
            name,
            old: Some(old),
            dry_run,
        };
        self.webhooks_mutate(&a, obj)?;
        self.webhooks_validate_shown(&a, Some(obj))
    }

    /// The webhooks of a DELETE: the mutating ones are called (with no object to change), then
    /// the validating ones, with the object as it is.
    pub(crate) fn webhooks_delete(&self, a: &Attributes) -> Result<()> {
        let mut none = Value::Null;
        self.webhooks_mutate(a, &mut none)?;
        self.webhooks_validate(a, None)
    }
}

/// A dry run refused for a webhook that may have side effects (upstream's
/// `NewDryRunUnsupportedErr`).
fn dry_run_check(hook: &Hook, a: &Attributes) -> Result<()> {
    if a.dry_run && !hook.side_effects_safe {
        return Err(KubeError::BadRequest(format!(
            "admission webhook \"{}\" does not support dry run",
            hook.name
        )));
    }
    Ok(())
}
