//! PATCH bodies and server-side apply, as pure functions on JSON values.
//!
//! kubectl sends four kinds of patch (spec §2.7): RFC 6902 JSON patch, RFC 7386 merge patch,
//! strategic merge patch (the default of `patch`, client-side `apply`, `edit`, `set image`,
//! `rollout restart`, cordon) and apply-patch (server-side apply). The first two are delegated to
//! `json_patch`. Strategic merge follows upstream apimachinery `strategicpatch` as the API server
//! runs it (parallel lists merged, unmatched nulls ignored); where upstream reads Go struct tags,
//! this module reads a small table of the in-scope kinds' list strategies (spec §3.3).
//! Server-side apply and the ownership every write records are in `field_manager`.

use serde_json::{Map, Value, json};

pub mod field_manager;
#[cfg(test)]
mod tests;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PatchError {
    /// The patch document itself is malformed (maps to HTTP 400 BadRequest in the caller).
    #[error("{0}")]
    Malformed(String),
    /// The patch is well formed but cannot apply to this object (maps to 422 Invalid), e.g. a
    /// JSON-patch test op failing or a path that doesn't exist.
    #[error("{0}")]
    Unprocessable(String),
}

fn malformed(msg: impl Into<String>) -> PatchError {
    PatchError::Malformed(msg.into())
}

fn unprocessable(msg: impl Into<String>) -> PatchError {
    PatchError::Unprocessable(msg.into())
}

/// RFC 6902 JSON patch; `patch` is the raw request body.
pub fn json_patch(target: &Value, patch: &[u8]) -> Result<Value, PatchError> {
    let ops: json_patch::Patch =
        serde_json::from_slice(patch).map_err(|e| malformed(format!("invalid JSON patch: {e}")))?;
    let mut doc = target.clone();
    // Every failure once the ops parsed is about this object (a test op that didn't match, a
    // path that isn't there), which the API server reports as 422.
    json_patch::patch(&mut doc, &ops).map_err(|e| unprocessable(e.to_string()))?;
    Ok(doc)
}

/// RFC 7386 JSON merge patch; `patch` must be a JSON object (else Malformed).
pub fn merge_patch(target: &Value, patch: &[u8]) -> Result<Value, PatchError> {
    let patch = parse_object(patch, "merge patch")?;
    let mut doc = target.clone();
    json_patch::merge(&mut doc, &Value::Object(patch));
    Ok(doc)
}

/// Strategic merge patch (v2) for a kind identified by apiVersion + kind, e.g.
/// ("apps/v1", "Deployment"). Unknown kinds (custom resources) replace every list.
pub fn strategic_merge_patch(
    target: &Value,
    patch: &[u8],
    api_version: &str,
    kind: &str,
) -> Result<Value, PatchError> {
    let patch = parse_object(patch, "strategic merge patch")?;
    let Value::Object(orig) = target else {
        return Err(unprocessable("the object to patch is not a JSON object"));
    };
    let merged =
        Merger { directives: true }.merge_map(orig.clone(), patch, Ty::root(api_version, kind))?;
    // A root `$patch: delete` leaves nothing, which upstream returns as an empty object.
    Ok(Value::Object(merged.unwrap_or_default()))
}

fn parse_object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, PatchError> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(malformed(format!("{what} must be a JSON object"))),
        Err(e) => Err(malformed(format!("{what} is not valid JSON: {e}"))),
    }
}

/// How a list field merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListStrategy {
    /// The patch's list replaces the live one: the default, and every list of an unknown kind.
    Replace,
    /// A set of scalars the patch adds to (metadata.finalizers, node spec.podCIDRs).
    Set,
    /// A list of maps merged element by element on this key.
    MergeKey(&'static str),
}

/// The list strategy of the field at `path` (field names from the object's root, list indices
/// skipped) in an object of this apiVersion and kind, e.g.
/// `["spec", "template", "spec", "containers", "env"]` in a Deployment → `MergeKey("name")`.
pub fn list_strategy(api_version: &str, kind: &str, path: &[&str]) -> ListStrategy {
    let mut ty = Ty::root(api_version, kind);
    let mut strategy = ListStrategy::Replace;
    for name in path {
        (ty, strategy) = ty.field(name);
    }
    strategy
}

/// Where a map sits in the schema, as far as its lists' strategies go (spec §3.3). Everything
/// off the table is `Plain`: maps merge, lists replace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    Plain,
    Pod,
    /// Deployment, ReplicaSet, DaemonSet, StatefulSet: spec.template, status.conditions.
    Workload,
    Job,
    CronJob,
    Node,
    Namespace,
    ServiceAccount,
    /// A known kind whose only merging lists are in its metadata (ConfigMap, Secret, Event).
    Simple,
    Meta,
    PodTemplate,
    JobTemplate,
    PodSpec,
    Container,
    PodStatus,
    WorkloadSpec,
    JobSpec,
    CronJobSpec,
    NodeSpec,
    NodeStatus,
    /// A status whose only merging list is conditions by type.
    Conditions,
}

impl Ty {
    fn root(api_version: &str, kind: &str) -> Ty {
        // The version doesn't change these types' patch strategies; the group tells a built-in
        // kind from a custom resource that happens to share its name.
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        match (group, kind) {
            ("", "Pod") => Ty::Pod,
            ("apps", "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet") => Ty::Workload,
            ("batch", "Job") => Ty::Job,
            ("batch", "CronJob") => Ty::CronJob,
            ("", "Node") => Ty::Node,
            ("", "Namespace") => Ty::Namespace,
            ("", "ServiceAccount") => Ty::ServiceAccount,
            ("", "ConfigMap" | "Secret" | "Event") | ("events.k8s.io", "Event") => Ty::Simple,
            _ => Ty::Plain,
        }
    }

    /// The type under `field` (of the map, or of a list's elements) and, for a list, how it
    /// merges.
    fn field(self, field: &str) -> (Ty, ListStrategy) {
        use ListStrategy::{MergeKey, Replace, Set};
        use Ty::*;
        let map = |ty| (ty, Replace);
        match (self, field) {
            (Plain, _) => map(Plain),
            (
                Pod | Workload | Job | CronJob | Node | Namespace | ServiceAccount | Simple
                | PodTemplate | JobTemplate,
                "metadata",
            ) => map(Meta),
            (Meta, "finalizers") => (Plain, Set),
            (Meta, "ownerReferences") => (Plain, MergeKey("uid")),
            (Pod | PodTemplate, "spec") => map(PodSpec),
            (Pod, "status") => map(PodStatus),
            (Workload, "spec") => map(WorkloadSpec),
            (WorkloadSpec | JobSpec, "template") => map(PodTemplate),
            (Job | JobTemplate, "spec") => map(JobSpec),
            (CronJob, "spec") => map(CronJobSpec),
            (CronJobSpec, "jobTemplate") => map(JobTemplate),
            (Workload | Job | Namespace, "status") => map(Conditions),
            (Node, "spec") => map(NodeSpec),
            (Node, "status") => map(NodeStatus),
            (ServiceAccount, "secrets") => (Plain, MergeKey("name")),
            (PodSpec, "containers" | "initContainers" | "ephemeralContainers") => {
                (Container, MergeKey("name"))
            }
            (PodSpec, "volumes" | "imagePullSecrets" | "resourceClaims" | "schedulingGates") => {
                (Plain, MergeKey("name"))
            }
            (PodSpec, "hostAliases") => (Plain, MergeKey("ip")),
            (PodSpec, "topologySpreadConstraints") => (Plain, MergeKey("topologyKey")),
            (Container, "env") => (Plain, MergeKey("name")),
            (Container, "ports") => (Plain, MergeKey("containerPort")),
            (Container, "volumeMounts") => (Plain, MergeKey("mountPath")),
            (Container, "volumeDevices") => (Plain, MergeKey("devicePath")),
            (PodStatus | Conditions, "conditions") => (Plain, MergeKey("type")),
            (PodStatus, "podIPs" | "hostIPs") => (Plain, MergeKey("ip")),
            (PodStatus, "resourceClaimStatuses") => (Plain, MergeKey("name")),
            (NodeSpec, "podCIDRs") => (Plain, Set),
            (NodeStatus, "conditions" | "addresses") => (Plain, MergeKey("type")),
            _ => map(Plain),
        }
    }
}

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_FROM: &str = "$deleteFromPrimitiveList/";

/// Only these `$` keys are directives: CRD schemas legitimately hold fields like `$ref`.
fn is_directive(key: &str) -> bool {
    key == PATCH || key == RETAIN_KEYS || key.starts_with(SET_ORDER) || key.starts_with(DELETE_FROM)
}

/// The `$patch` directive of a list element, if any.
fn directive_of(v: &Value) -> Option<&str> {
    v.get(PATCH).and_then(Value::as_str)
}

struct Merger {
    /// False for server-side apply: an apply configuration is plain data, and a directive in it
    /// is a mistake worth rejecting rather than obeying.
    directives: bool,
}

impl Merger {
    /// Merges `patch` into `orig`; `None` means the patch deletes the map (`$patch: delete`).
    fn merge_map(
        &self,
        mut orig: Map<String, Value>,
        mut patch: Map<String, Value>,
        ty: Ty,
    ) -> Result<Option<Map<String, Value>>, PatchError> {
        if !self.directives {
            if let Some(k) = patch.keys().find(|k| is_directive(k)) {
                return Err(malformed(format!(
                    "apply configurations cannot contain the patch directive {k:?}"
                )));
            }
        } else if let Some(d) = patch.remove(PATCH) {
            match d.as_str() {
                // Merging into nothing still strips nulls and nested directives from the patch.
                Some("replace") => return self.merge_map(Map::new(), patch, ty),
                Some("delete") => return Ok(None),
                Some("merge") => {}
                _ => return Err(malformed(format!("unknown $patch directive {d}"))),
            }
        }

        if let Some(keep) = patch.remove(RETAIN_KEYS) {
            let keep: Vec<String> = serde_json::from_value(keep)
                .map_err(|_| malformed("$retainKeys must be a list of field names"))?;
            // Upstream refuses a patch that sets a field its own retain list would drop.
            if let Some((k, _)) = patch
                .iter()
                .find(|(k, v)| !v.is_null() && !is_directive(k) && !keep.contains(k))
            {
                return Err(unprocessable(format!(
                    "the patch sets {k:?}, which its $retainKeys list does not keep"
                )));
            }
            orig.retain(|k, _| keep.contains(k));
        }

        let mut orders = Vec::new();
        let mut deletes = Vec::new();
        let mut fields = Vec::new();
        for (key, value) in patch {
            if let Some(field) = key.strip_prefix(SET_ORDER) {
                orders.push((field.to_owned(), value));
            } else if let Some(field) = key.strip_prefix(DELETE_FROM) {
                deletes.push((field.to_owned(), value));
            } else {
                fields.push((key, value));
            }
        }
        // Ordering interleaves live-only items by where they were before this patch.
        let before: Vec<Option<Value>> = orders.iter().map(|(f, _)| orig.get(f).cloned()).collect();

        for (key, value) in fields {
            let (child, strategy) = ty.field(&key);
            // Taking the value in place rather than removing and re-inserting it keeps key order
            // should serde_json's preserve_order ever be enabled.
            let old = orig.get_mut(&key).map(Value::take);
            match self.merge_value(old, value, child, strategy)? {
                Some(v) => {
                    orig.insert(key, v);
                }
                None => {
                    orig.remove(&key);
                }
            }
        }

        for (field, values) in deletes {
            let Value::Array(values) = values else {
                return Err(malformed(format!(
                    "$deleteFromPrimitiveList/{field} must be a list"
                )));
            };
            if let Some(Value::Array(list)) = orig.get_mut(&field) {
                list.retain(|v| !values.iter().any(|d| same(v, d)));
            }
        }

        for ((field, order), before) in orders.into_iter().zip(before) {
            let Value::Array(order) = order else {
                return Err(malformed(format!(
                    "$setElementOrder/{field} must be a list"
                )));
            };
            let key = match ty.field(&field).1 {
                ListStrategy::MergeKey(k) => Some(k),
                _ => None,
            };
            if let Some(Value::Array(list)) = orig.get_mut(&field) {
                let live = match before {
                    Some(Value::Array(b)) => b,
                    _ => Vec::new(),
                };
                let items = std::mem::take(list);
                *list = arrange(items, &order, &live, key);
            }
        }
        Ok(Some(orig))
    }

    /// Merges one field's patch value into its old value; `None` removes the field.
    fn merge_value(
        &self,
        orig: Option<Value>,
        patch: Value,
        ty: Ty,
        strategy: ListStrategy,
    ) -> Result<Option<Value>, PatchError> {
        Ok(match patch {
            Value::Null => None,
            Value::Object(p) => {
                let o = match orig {
                    Some(Value::Object(o)) => o,
                    // New, or of another type: the patch map applies to nothing.
                    _ => Map::new(),
                };
                self.merge_map(o, p, ty)?.map(Value::Object)
            }
            Value::Array(p) => {
                let o = match orig {
                    Some(Value::Array(o)) => o,
                    _ => Vec::new(),
                };
                Some(Value::Array(self.merge_list(o, p, ty, strategy)?))
            }
            scalar => Some(scalar),
        })
    }

    fn merge_list(
        &self,
        orig: Vec<Value>,
        patch: Vec<Value>,
        ty: Ty,
        strategy: ListStrategy,
    ) -> Result<Vec<Value>, PatchError> {
        // `{"$patch": "replace"}` among the elements: the rest of the patch is the whole list.
        if self.directives && patch.iter().any(|v| directive_of(v) == Some("replace")) {
            let rest = patch
                .into_iter()
                .filter(|v| directive_of(v) != Some("replace"))
                .collect();
            return self.clean_list(rest, ty);
        }
        match strategy {
            ListStrategy::Replace => self.clean_list(patch, ty),
            ListStrategy::Set => {
                let mut merged: Vec<Value> = Vec::with_capacity(orig.len() + patch.len());
                for v in orig.iter().chain(&patch) {
                    if !merged.iter().any(|m| same(m, v)) {
                        merged.push(v.clone());
                    }
                }
                Ok(arrange(merged, &patch, &orig, None))
            }
            ListStrategy::MergeKey(key) => self.merge_keyed(orig, patch, ty, key),
        }
    }

    /// A list that replaces the live one, with nulls and directives cleaned out of its maps.
    fn clean_list(&self, items: Vec<Value>, ty: Ty) -> Result<Vec<Value>, PatchError> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                // A `$patch: delete` element has nothing to delete here and just disappears.
                Value::Object(m) => {
                    out.extend(self.merge_map(Map::new(), m, ty)?.map(Value::Object))
                }
                other => out.push(other),
            }
        }
        Ok(out)
    }

    fn merge_keyed(
        &self,
        mut out: Vec<Value>,
        patch: Vec<Value>,
        ty: Ty,
        key: &'static str,
    ) -> Result<Vec<Value>, PatchError> {
        let mut updates = Vec::with_capacity(patch.len());
        for item in patch {
            let Value::Object(m) = item else {
                return Err(malformed(format!(
                    "list items merged on {key:?} must be objects, got {item}"
                )));
            };
            let Some(id) = m.get(key).cloned() else {
                return Err(malformed(format!(
                    "list item {} has no merge key {key:?}",
                    Value::Object(m)
                )));
            };
            // Deletions apply first, as upstream does, so the patch may delete and re-add.
            match m.get(PATCH).filter(|_| self.directives).map(Value::as_str) {
                None | Some(Some("merge")) => updates.push((id, m)),
                Some(Some("delete")) => out.retain(|o| !o.get(key).is_some_and(|k| same(k, &id))),
                Some(_) => {
                    return Err(malformed(format!(
                        "unsupported $patch in list item {}",
                        Value::Object(m)
                    )));
                }
            }
        }

        let live = out.clone();
        let mut order = Vec::with_capacity(updates.len());
        for (id, m) in updates {
            order.push(json!({ key: id.clone() }));
            let found = out
                .iter()
                .position(|o| o.is_object() && o.get(key).is_some_and(|k| same(k, &id)));
            match found {
                Some(i) => {
                    let old = match out[i].take() {
                        Value::Object(o) => o,
                        _ => Map::new(),
                    };
                    match self.merge_map(old, m, ty)? {
                        Some(merged) => out[i] = Value::Object(merged),
                        None => {
                            out.remove(i);
                        }
                    }
                }
                None => out.extend(self.merge_map(Map::new(), m, ty)?.map(Value::Object)),
            }
        }
        Ok(arrange(out, &order, &live, Some(key)))
    }
}

/// Orders a merged list the way upstream does (normalizeElementOrder + mergeSortedSlice): the
/// items named in `order` follow it, and the others keep their relative order, each placed
/// before the first named item that came after it in the live list. An item that is new to the
/// live list has no live position, so without `$setElementOrder` naming the live items too it
/// lands ahead of the live-only items (upstream behaviour, kept on purpose).
fn arrange(items: Vec<Value>, order: &[Value], live: &[Value], key: Option<&str>) -> Vec<Value> {
    fn id<'v>(v: &'v Value, key: Option<&str>) -> Option<&'v Value> {
        match key {
            Some(k) => v.get(k),
            None => Some(v),
        }
    }
    let pos = |list: &[Value], v: &Value| {
        let wanted = id(v, key)?;
        list.iter()
            .position(|o| id(o, key).is_some_and(|i| same(i, wanted)))
    };
    let (mut named, rest): (Vec<Value>, Vec<Value>) =
        items.into_iter().partition(|v| pos(order, v).is_some());
    named.sort_by_key(|v| pos(order, v));

    let mut out = Vec::with_capacity(named.len() + rest.len());
    let mut rest = rest.into_iter().peekable();
    for item in named {
        let here = pos(live, &item);
        while let Some(r) = rest.peek() {
            match (pos(live, r), here) {
                (Some(a), Some(b)) if a < b => out.extend(rest.next()),
                _ => break,
            }
        }
        out.push(item);
    }
    out.extend(rest);
    out
}

/// Value equality where 80 and 80.0 are the same merge key, as they are once Go decodes JSON.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}
