//! Field management: who owns which field of an object (`metadata.managedFields`), as
//! kube-apiserver's field manager and structured-merge-diff keep it.
//!
//! Every write records its manager's ownership: a create, update or patch (`Update` entries,
//! [`record_update`]) takes the fields it set or changed from whoever owned them; a server-side
//! apply ([`apply`]) merges its configuration over the live object, refuses (409) to change a
//! field another manager owns unless forced, and removes the fields its manager applied before
//! and applies no longer when nobody else owns them.
//!
//! It lives beside the patch bodies in the HTTP front end because upstream runs it there too
//! (`apiserver/pkg/endpoints/handlers/fieldmanager`), before the registry's strategy, on the
//! object as the client's request left it: storage semantics need not know about owners.
//!
//! Field sets are sets of paths, each path a list of FieldsV1 keys (`f:spec`, `k:{"name":"c"}`,
//! `v:"x"`, `i:0`), which is also how they are stored and how they sort.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::{ListStrategy, Ty, same};

#[cfg(test)]
mod tests;

/// One field: its FieldsV1 keys from the object's root.
pub type FieldPath = Vec<String>;
/// A set of fields, e.g. what one manager owns.
pub type FieldSet = BTreeSet<FieldPath>;

/// The manager of an apply migrating from client-side apply (`kubectl apply --server-side`):
/// upstream lets it take the fields of `last-applied-configuration` and keeps that annotation.
const KUBECTL_APPLY_MANAGER: &str = "kubectl";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Upstream's owner of what an object held before its first apply, when nobody was recorded.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// How a field's value merges and is owned, from the object's schema.
#[derive(Clone, Copy, Debug)]
pub enum Schema<'a> {
    /// A built-in kind, by the patch strategies of `patch::Ty`.
    Builtin(Ty),
    /// A custom resource's structural schema node (`None`: no schema, everything granular maps
    /// and atomic lists).
    Custom(Option<&'a Value>),
}

/// How a list is owned and merged.
#[derive(Clone, Debug, PartialEq)]
enum ListKind {
    /// Owned and replaced as a whole.
    Atomic,
    /// A set of scalars, each owned apart (`v:` keys).
    Set,
    /// Items identified by these fields (`k:` keys).
    Map(Vec<String>),
}

impl<'a> Schema<'a> {
    /// The schema of a built-in kind or, with `custom` (the version's `openAPIV3Schema`), of a
    /// custom resource.
    pub fn of(api_version: &str, kind: &str, custom: Option<&'a Value>, is_custom: bool) -> Self {
        if is_custom {
            Schema::Custom(custom)
        } else {
            Schema::Builtin(Ty::root(api_version, kind))
        }
    }

    /// The schema under `field` (of a map's value, or of a list's items) and, for a list, how
    /// it is owned.
    fn field(self, field: &str, root: bool) -> (Schema<'a>, ListKind) {
        match self {
            Schema::Builtin(ty) => {
                let (child, strategy) = ty.field(field);
                let kind = match strategy {
                    ListStrategy::Replace => ListKind::Atomic,
                    ListStrategy::Set => ListKind::Set,
                    ListStrategy::MergeKey(k) => ListKind::Map(vec![k.to_owned()]),
                };
                (Schema::Builtin(child), kind)
            }
            // A custom resource's metadata is ObjectMeta whatever its schema says.
            Schema::Custom(_) if root && field == "metadata" => {
                Schema::Builtin(Ty::root("v1", "ConfigMap")).field(field, false)
            }
            Schema::Custom(node) => {
                let child = node.and_then(|n| {
                    n.get("properties")
                        .and_then(|p| p.get(field))
                        .or_else(|| n.get("additionalProperties").filter(|a| a.is_object()))
                });
                let kind = match child
                    .and_then(|c| c.get("x-kubernetes-list-type"))
                    .and_then(Value::as_str)
                {
                    Some("map") => ListKind::Map(
                        child
                            .and_then(|c| c.get("x-kubernetes-list-map-keys"))
                            .and_then(Value::as_array)
                            .map(|keys| {
                                keys.iter()
                                    .filter_map(|k| k.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    ),
                    Some("set") => ListKind::Set,
                    _ => ListKind::Atomic,
                };
                let items = match kind {
                    ListKind::Atomic => child,
                    _ => child.and_then(|c| c.get("items")),
                };
                (Schema::Custom(items.or(child)), kind)
            }
        }
    }
}

/// What [`apply`] and [`record_update`] need to know of the request.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub manager: &'a str,
    /// The object's `apiVersion` as the client wrote it.
    pub api_version: &'a str,
    /// `status` or `scale` for a write to that subresource.
    pub subresource: Option<&'a str>,
    pub now: jiff::Timestamp,
}

/// An apply refused: the fields of other managers it would change, each with its manager's
/// identity as upstream prints it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Conflicts {
    pub message: String,
    /// `(printed manager, printed path)`, in the order of the causes.
    pub conflicts: Vec<(String, String)>,
}

impl Conflicts {
    /// The `details.causes` of the 409, as upstream's `NewConflictError` writes them.
    pub fn causes(&self) -> Vec<Value> {
        self.conflicts
            .iter()
            .map(|(manager, path)| {
                json!({"type": "FieldManagerConflict", "message": format!("conflict with {manager}"), "field": path})
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ApplyError {
    #[error(transparent)]
    Conflicts(#[from] Conflicts),
    /// The configuration is not an object, or has list items without their keys (400).
    #[error("{0}")]
    Malformed(String),
}

/// One `managedFields` entry, decoded.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    manager: String,
    apply: bool,
    api_version: String,
    subresource: String,
    time: Option<String>,
    fields: FieldSet,
}

impl Entry {
    /// Upstream's manager identity: the manager, the operation, the subresource and, for
    /// updates, the apiVersion (an applier is one manager whatever version it applies).
    fn same_manager(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.apply == other.apply
            && self.subresource == other.subresource
            && (self.apply || self.api_version == other.api_version)
    }

    /// The manager as conflict messages print it (`printManager`).
    fn printed(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s = format!("{s} with subresource {:?}", self.subresource);
        }
        if !self.apply {
            s = format!("{s} using {}", self.api_version);
        }
        s
    }

    fn decode(v: &Value) -> Option<Entry> {
        let mut fields = FieldSet::new();
        decode_fields(&v["fieldsV1"], &mut Vec::new(), &mut fields);
        Some(Entry {
            manager: v["manager"].as_str().unwrap_or_default().to_owned(),
            apply: v["operation"].as_str()? == "Apply",
            api_version: v["apiVersion"].as_str().unwrap_or_default().to_owned(),
            subresource: v["subresource"].as_str().unwrap_or_default().to_owned(),
            time: v["time"].as_str().map(str::to_owned),
            fields,
        })
    }

    fn encode(&self) -> Value {
        let mut v = json!({
            "manager": self.manager,
            "operation": if self.apply { "Apply" } else { "Update" },
            "apiVersion": self.api_version,
        });
        if let Some(t) = &self.time {
            v["time"] = json!(t);
        }
        v["fieldsType"] = json!("FieldsV1");
        v["fieldsV1"] = encode_fields(&self.fields);
        if !self.subresource.is_empty() {
            v["subresource"] = json!(self.subresource);
        }
        v
    }
}

fn timestamp(now: jiff::Timestamp) -> String {
    // managedFields times are whole seconds, like every Kubernetes metav1.Time.
    now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The entries of an object's `metadata.managedFields`.
fn entries_of(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|list| list.iter().filter_map(Entry::decode).collect())
        .unwrap_or_default()
}

/// Writes the entries back, sorted as upstream sorts them (operation, time, manager,
/// apiVersion, subresource), empty ones left out.
fn store_entries(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|a, b| {
        (
            !a.apply,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                !b.apply,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(Entry::encode).collect()),
        );
    }
}

/// FieldsV1 → paths: every leaf (`{}`) and every `.` marks a member.
fn decode_fields(v: &Value, prefix: &mut FieldPath, out: &mut FieldSet) {
    let Some(m) = v.as_object() else { return };
    for (k, child) in m {
        if k == "." {
            out.insert(prefix.clone());
            continue;
        }
        prefix.push(k.clone());
        match child.as_object() {
            Some(c) if !c.is_empty() => decode_fields(child, prefix, out),
            _ => {
                out.insert(prefix.clone());
            }
        }
        prefix.pop();
    }
}

/// Paths → FieldsV1.
pub fn encode_fields(set: &FieldSet) -> Value {
    #[derive(Default)]
    struct Node {
        member: bool,
        children: BTreeMap<String, Node>,
    }
    fn to_json(n: &Node) -> Value {
        let mut m: Map<String, Value> = n
            .children
            .iter()
            .map(|(k, c)| (k.clone(), to_json(c)))
            .collect();
        if n.member && !m.is_empty() {
            m.insert(".".into(), json!({}));
        }
        Value::Object(m)
    }
    let mut root = Node::default();
    for path in set {
        let mut at = &mut root;
        for k in path {
            at = at.children.entry(k.clone()).or_default();
        }
        at.member = true;
    }
    to_json(&root)
}

/// A path as fieldpath prints it: `.spec.containers[name="nginx"].image`.
pub fn print_path(path: &[String]) -> String {
    let mut s = String::new();
    for k in path {
        if let Some(f) = k.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(key) = k.strip_prefix("k:") {
            let fields: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
            let parts: Vec<String> = fields.iter().map(|(f, v)| format!("{f}={v}")).collect();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = k.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        } else if let Some(i) = k.strip_prefix("i:") {
            s.push_str(&format!("[{i}]"));
        }
    }
    s
}

/// Fields nobody owns: identity and what the server keeps (upstream's `stripMeta`).
fn stripped(path: &[String]) -> bool {
    match path {
        [f] => f == "f:apiVersion" || f == "f:kind",
        [m, f, ..] if m == "f:metadata" => matches!(
            f.as_str(),
            "f:name"
                | "f:namespace"
                | "f:uid"
                | "f:resourceVersion"
                | "f:generation"
                | "f:creationTimestamp"
                | "f:selfLink"
                | "f:managedFields"
                | "f:deletionTimestamp"
                | "f:deletionGracePeriodSeconds"
        ),
        _ => false,
    }
}

/// The key of a list item (`k:{"name":"c"}`), or None when it lacks one of the keys.
fn item_key(item: &Value, keys: &[String]) -> Option<String> {
    let m = item.as_object()?;
    let mut id = Map::new();
    for k in keys {
        id.insert(k.clone(), m.get(k)?.clone());
    }
    Some(format!("k:{}", Value::Object(id)))
}

/// The fields an object sets: its leaves, the items of its keyed lists and sets, and empty
/// maps, with the stripped metadata left out.
pub fn fields_of(obj: &Value, schema: Schema) -> Result<FieldSet, ApplyError> {
    let mut out = FieldSet::new();
    if let Value::Object(m) = obj {
        walk_map(m, schema, true, &mut Vec::new(), &mut out)?;
    }
    out.retain(|p| !stripped(p));
    Ok(out)
}

fn walk_map(
    m: &Map<String, Value>,
    schema: Schema,
    root: bool,
    prefix: &mut FieldPath,
    out: &mut FieldSet,
) -> Result<(), ApplyError> {
    for (k, v) in m {
        if v.is_null() {
            continue;
        }
        let (child, list) = schema.field(k, root);
        prefix.push(format!("f:{k}"));
        walk_value(v, child, &list, prefix, out)?;
        prefix.pop();
    }
    Ok(())
}

fn walk_value(
    v: &Value,
    schema: Schema,
    list: &ListKind,
    prefix: &mut FieldPath,
    out: &mut FieldSet,
) -> Result<(), ApplyError> {
    match (v, list) {
        (Value::Object(m), _) if !m.is_empty() => walk_map(m, schema, false, prefix, out)?,
        (Value::Array(items), ListKind::Set) => {
            for item in items {
                let mut p = prefix.clone();
                p.push(format!("v:{item}"));
                out.insert(p);
            }
        }
        (Value::Array(items), ListKind::Map(keys)) => {
            for item in items {
                let Some(key) = item_key(item, keys) else {
                    return Err(ApplyError::Malformed(format!(
                        "{}: associative list with keys has an element that omits key field {:?} (and doesn't have default value)",
                        print_path(prefix),
                        keys.iter()
                            .find(|k| item.get(k.as_str()).is_none())
                            .map_or("", String::as_str)
                    )));
                };
                prefix.push(key);
                out.insert(prefix.clone());
                if let Value::Object(m) = item {
                    walk_map(m, schema, false, prefix, out)?;
                }
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
    Ok(())
}

/// A field of `obj` (given as the steps to it: field names as JSON strings, list indices as
/// numbers) printed as fieldpath prints it: items of keyed lists by their keys, set values by
/// value, items of atomic lists by index (`.spec.template.spec.containers[name="c"].foo`).
pub fn print_steps(obj: &Value, steps: &[Value], schema: Schema) -> String {
    let mut out = String::new();
    let mut at = Some(obj);
    let mut schema = schema;
    let mut list = ListKind::Atomic;
    for (n, step) in steps.iter().enumerate() {
        match step {
            Value::Number(i) => {
                let i = i.as_u64().unwrap_or_default() as usize;
                let item = at.and_then(|a| a.get(i));
                let printed = match (&list, item) {
                    (ListKind::Map(keys), Some(item)) => item_key(item, keys)
                        .map(|k| print_path(&[k]))
                        .unwrap_or_else(|| format!("[{i}]")),
                    (ListKind::Set, Some(item)) => format!("[={item}]"),
                    _ => format!("[{i}]"),
                };
                out.push_str(&printed);
                at = item;
            }
            Value::String(f) => {
                out.push('.');
                out.push_str(f);
                (schema, list) = schema.field(f, n == 0);
                at = at.and_then(|a| a.get(f));
            }
            _ => {}
        }
    }
    out
}

/// The value at a path, if the object has it.
fn value_at<'v>(obj: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut at = obj;
    for k in path {
        at = if let Some(f) = k.strip_prefix("f:") {
            at.get(f)?
        } else if let Some(key) = k.strip_prefix("k:") {
            let id: Map<String, Value> = serde_json::from_str(key).ok()?;
            at.as_array()?.iter().find(|item| {
                id.iter()
                    .all(|(f, v)| item.get(f).is_some_and(|x| same(x, v)))
            })?
        } else if let Some(v) = k.strip_prefix("v:") {
            let wanted: Value = serde_json::from_str(v).ok()?;
            at.as_array()?.iter().find(|x| same(x, &wanted))?
        } else {
            return None;
        };
    }
    Some(at)
}

/// Removes the field at a path (a map key, a list item or a set value), if it is there.
fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut at = obj;
    for k in parent {
        let next = if let Some(f) = k.strip_prefix("f:") {
            at.get_mut(f)
        } else if k.starts_with("k:") || k.starts_with("v:") {
            let wanted = locate(at, k);
            match (at.as_array_mut(), wanted) {
                (Some(items), Some(i)) => items.get_mut(i),
                _ => None,
            }
        } else {
            None
        };
        match next {
            Some(n) => at = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = at.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(i) = locate(at, last)
        && let Some(items) = at.as_array_mut()
    {
        items.remove(i);
    }
}

/// The index of the list item or set value a `k:`/`v:` key names.
fn locate(list: &Value, key: &str) -> Option<usize> {
    let items = list.as_array()?;
    if let Some(k) = key.strip_prefix("k:") {
        let id: Map<String, Value> = serde_json::from_str(k).ok()?;
        items.iter().position(|item| {
            id.iter()
                .all(|(f, v)| item.get(f).is_some_and(|x| same(x, v)))
        })
    } else {
        let wanted: Value = serde_json::from_str(key.strip_prefix("v:")?).ok()?;
        items.iter().position(|x| same(x, &wanted))
    }
}

/// Value equality where numbers compare as Go decodes them.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| equal(v, w))
        }
        _ => same(a, b),
    }
}

/// What changed from `old` to `new`: the fields added or given another value, and those
/// removed (structured-merge-diff's `Compare`). A list item present in both is not itself
/// modified: its fields are compared one by one.
struct Comparison {
    changed: FieldSet,
    removed: FieldSet,
}

fn compare(old: &Value, old_set: &FieldSet, new: &Value, new_set: &FieldSet) -> Comparison {
    let changed = new_set
        .iter()
        .filter(|p| {
            if !old_set.contains(*p) {
                return true;
            }
            let item = p.last().is_some_and(|k| k.starts_with("k:"));
            match (value_at(old, p), value_at(new, p)) {
                (Some(_), Some(_)) if item => false,
                (Some(a), Some(b)) => !equal(a, b),
                _ => true,
            }
        })
        .cloned()
        .collect();
    let removed = old_set.difference(new_set).cloned().collect();
    Comparison { changed, removed }
}

/// Which part of an object a write may own: a status write owns only `status`, a write to
/// the object itself everything but the status of a kind that has the subresource.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scope {
    Whole,
    ExceptStatus,
    StatusOnly,
}

impl Scope {
    fn keeps(self, path: &[String]) -> bool {
        let status = path.first().is_some_and(|f| f == "f:status");
        match self {
            Scope::Whole => true,
            Scope::ExceptStatus => !status,
            Scope::StatusOnly => status,
        }
    }
}

fn scoped(set: FieldSet, scope: Scope) -> FieldSet {
    set.into_iter().filter(|p| scope.keeps(p)).collect()
}

/// The managers of a write: the request's own managedFields when it sets some (a reset when it
/// sends an empty list), else the live object's, as upstream's `decodeLiveOrNew`. A
/// subresource write never sets them.
fn managers_for(old: Option<&Value>, new: &Value, subresource: bool) -> Vec<Entry> {
    let live = || old.map(entries_of).unwrap_or_default();
    if subresource {
        return live();
    }
    match &new["metadata"]["managedFields"] {
        Value::Array(list) if list.is_empty() => Vec::new(),
        Value::Array(_) => {
            let given = entries_of(new);
            if given.is_empty() { live() } else { given }
        }
        _ => live(),
    }
}

/// Records an `Update` write (create, update, non-apply patch) by `req.manager` of `new` over
/// `old` (None for a create) in `new`'s managedFields: the manager gets the fields it added or
/// changed, which every other manager loses, and nobody keeps a field that is gone.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    schema: Schema,
    scope: Scope,
    req: Request,
) {
    if !new.is_object() || !new["metadata"].is_object() {
        return;
    }
    let mut entries = managers_for(old, new, req.subresource.is_some());
    // A malformed list item (no key) is left to validation; ownership follows what can be read.
    let new_set = scoped(fields_of(new, schema).unwrap_or_default(), scope);
    let old_set = old
        .map(|o| scoped(fields_of(o, schema).unwrap_or_default(), scope))
        .unwrap_or_default();
    let empty = json!({});
    let cmp = compare(old.unwrap_or(&empty), &old_set, new, &new_set);
    let me = Entry {
        manager: req.manager.to_owned(),
        apply: false,
        api_version: req.api_version.to_owned(),
        subresource: req.subresource.unwrap_or_default().to_owned(),
        time: Some(timestamp(req.now)),
        fields: FieldSet::new(),
    };
    let mut mine = None;
    for (i, e) in entries.iter_mut().enumerate() {
        if e.same_manager(&me) {
            mine = Some(i);
            continue;
        }
        e.fields
            .retain(|p| !cmp.changed.contains(p) && !cmp.removed.contains(p));
    }
    let i = match mine {
        Some(i) => i,
        None => {
            entries.push(me);
            entries.len() - 1
        }
    };
    let before = entries[i].fields.clone();
    let e = &mut entries[i];
    e.fields.retain(|p| !cmp.removed.contains(p));
    e.fields.extend(cmp.changed.iter().cloned());
    if e.fields != before || e.time.is_none() {
        e.time = Some(timestamp(req.now));
    }
    store_entries(new, entries);
}

/// Server-side apply of `config` by `req.manager` over `live` (None: the object is created).
/// Returns the object to store, with its managedFields; conflicts with other managers are an
/// error unless `force`.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    schema: Schema,
    scope: Scope,
    force: bool,
    req: Request,
) -> Result<Value, ApplyError> {
    let Value::Object(config_map) = config else {
        return Err(ApplyError::Malformed(
            "apply configuration must be a JSON object".into(),
        ));
    };
    let mut config_map = config_map.clone();
    // managedFields belong to the server; a configuration carrying them records nothing.
    if let Some(Value::Object(meta)) = config_map.get_mut("metadata") {
        meta.remove("managedFields");
    }
    let config = Value::Object(config_map);
    let config_set = scoped(fields_of(&config, schema)?, scope);
    let empty = json!({});
    let live_value = live.unwrap_or(&empty);
    let mut entries = live.map(entries_of).unwrap_or_default();
    // An object nobody was recorded for: what it holds belongs to someone before this apply.
    if let Some(l) = live
        && entries.is_empty()
    {
        let held = scoped(fields_of(l, schema).unwrap_or_default(), scope);
        if !held.is_empty() {
            entries.push(Entry {
                manager: BEFORE_FIRST_APPLY.into(),
                apply: false,
                api_version: req.api_version.to_owned(),
                subresource: String::new(),
                time: None,
                fields: held,
            });
        }
    }
    let me = Entry {
        manager: req.manager.to_owned(),
        apply: true,
        api_version: req.api_version.to_owned(),
        subresource: req.subresource.unwrap_or_default().to_owned(),
        time: Some(timestamp(req.now)),
        fields: config_set.clone(),
    };
    let previous = entries
        .iter()
        .position(|e| e.same_manager(&me))
        .map(|i| entries.remove(i));

    let mut merged = live_value.clone();
    merge_into(&mut merged, &config, schema, true);

    // Fields this manager applied before and applies no longer, owned by nobody else, go.
    if let Some(prev) = &previous {
        let others: FieldSet = entries.iter().flat_map(|e| e.fields.clone()).collect();
        let mut gone: Vec<&FieldPath> = prev
            .fields
            .iter()
            .filter(|p| !config_set.contains(*p) && !others.contains(*p))
            .collect();
        // Shallowest first: an item goes whole, and its fields (gone with it) are not found
        // again; removing an item's key field first would lose the item.
        gone.sort_by_key(|p| p.len());
        for p in gone {
            // Keep an item or map another manager still owns something inside.
            if others.iter().any(|o| o.len() > p.len() && o.starts_with(p)) {
                continue;
            }
            remove_at(&mut merged, p);
        }
    }

    let merged_set = scoped(fields_of(&merged, schema)?, scope);
    let live_set = scoped(fields_of(live_value, schema).unwrap_or_default(), scope);
    let cmp = compare(live_value, &live_set, &merged, &merged_set);

    let conflicts = conflicts_of(&entries, &cmp.changed);
    if !conflicts.is_empty() && !force {
        let allowed = if req.manager == KUBECTL_APPLY_MANAGER {
            last_applied_fields(live_value, schema)
        } else {
            None
        };
        // Only the conflicts the last client-side apply does not explain are reported
        // (upstream's `conflictsDifference`).
        let unexplained: Vec<(usize, Vec<FieldPath>)> = conflicts
            .iter()
            .map(|(i, paths)| {
                let left = paths
                    .iter()
                    .filter(|p| !allowed.as_ref().is_some_and(|a| a.contains(*p)))
                    .cloned()
                    .collect::<Vec<_>>();
                (*i, left)
            })
            .filter(|(_, paths)| !paths.is_empty())
            .collect();
        if !unexplained.is_empty() {
            return Err(conflict_error(&entries, &unexplained).into());
        }
    }
    for e in &mut entries {
        e.fields
            .retain(|p| !cmp.changed.contains(p) && !cmp.removed.contains(p));
    }
    let mut me = me;
    // Applying the same configuration again changes nothing, its time included.
    if let Some(prev) = &previous
        && prev.fields == me.fields
        && cmp.changed.is_empty()
        && cmp.removed.is_empty()
    {
        me.time.clone_from(&prev.time);
    }
    entries.push(me);

    // `kubectl apply --server-side` keeps a client-side apply's record in step, so a later
    // client-side apply diffs from what was applied last.
    if req.manager == KUBECTL_APPLY_MANAGER
        && merged["metadata"]["annotations"][LAST_APPLIED].is_string()
    {
        let mut applied = config.clone();
        if let Some(a) = applied["metadata"]["annotations"].as_object_mut() {
            a.remove(LAST_APPLIED);
            if a.is_empty()
                && let Some(m) = applied["metadata"].as_object_mut()
            {
                m.remove("annotations");
            }
        }
        merged["metadata"]["annotations"][LAST_APPLIED] = json!(format!("{applied}\n"));
    }
    store_entries(&mut merged, entries);
    Ok(merged)
}

/// The fields of the live object's `last-applied-configuration`, if it has one.
fn last_applied_fields(live: &Value, schema: Schema) -> Option<FieldSet> {
    let text = live["metadata"]["annotations"][LAST_APPLIED].as_str()?;
    let applied: Value = serde_json::from_str(text).ok()?;
    fields_of(&applied, schema).ok()
}

/// Per conflicting manager (by index), the changed fields it owns.
fn conflicts_of(entries: &[Entry], changed: &FieldSet) -> Vec<(usize, Vec<FieldPath>)> {
    entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let mine: Vec<FieldPath> = e.fields.intersection(changed).cloned().collect();
            (!mine.is_empty()).then_some((i, mine))
        })
        .collect()
}

/// Upstream's conflict message: one conflict on one line, several grouped by manager (sorted by
/// the printed manager).
fn conflict_error(entries: &[Entry], conflicts: &[(usize, Vec<FieldPath>)]) -> Conflicts {
    let mut by_manager: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut flat = Vec::new();
    for (i, paths) in conflicts {
        let manager = entries[*i].printed();
        for p in paths {
            let printed = print_path(p);
            by_manager
                .entry(manager.clone())
                .or_default()
                .push(printed.clone());
            flat.push((manager.clone(), printed));
        }
    }
    let message = if let [(manager, path)] = flat.as_slice() {
        format!("Apply failed with 1 conflict: conflict with {manager}: {path}")
    } else {
        let mut lines = Vec::new();
        for (manager, paths) in &by_manager {
            lines.push(format!("conflicts with {manager}:"));
            lines.extend(paths.iter().map(|p| format!("- {p}")));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            flat.len(),
            lines.join("\n")
        )
    };
    Conflicts {
        message,
        conflicts: flat,
    }
}

/// Merges an apply configuration into `into`: maps field by field, keyed lists item by item,
/// sets by value; atomic lists and scalars are replaced. A null in the configuration is no
/// value (nothing to set).
fn merge_into(into: &mut Value, config: &Value, schema: Schema, root: bool) {
    let Value::Object(cfg) = config else {
        *into = config.clone();
        return;
    };
    if !into.is_object() {
        *into = json!({});
    }
    let Some(target) = into.as_object_mut() else {
        return;
    };
    for (k, v) in cfg {
        if v.is_null() {
            continue;
        }
        let (child, list) = schema.field(k, root);
        let slot = target.entry(k.clone()).or_insert(Value::Null);
        match (v, &list) {
            (Value::Object(_), _) => merge_into(slot, v, child, false),
            (Value::Array(items), ListKind::Set) => {
                let mut out: Vec<Value> = match slot.take() {
                    Value::Array(a) => a,
                    _ => Vec::new(),
                };
                for item in items {
                    if !out.iter().any(|o| same(o, item)) {
                        out.push(item.clone());
                    }
                }
                *slot = Value::Array(out);
            }
            (Value::Array(items), ListKind::Map(keys)) => {
                let mut out: Vec<Value> = match slot.take() {
                    Value::Array(a) => a,
                    _ => Vec::new(),
                };
                for item in items {
                    let key = item_key(item, keys);
                    let found = key.as_deref().and_then(|k| {
                        out.iter()
                            .position(|o| item_key(o, keys).as_deref() == Some(k))
                    });
                    match found {
                        Some(i) => merge_into(&mut out[i], item, child, false),
                        None => out.push(item.clone()),
                    }
                }
                *slot = Value::Array(out);
            }
            _ => *slot = v.clone(),
        }
    }
}
