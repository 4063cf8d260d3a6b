//! Object lifecycles that are not a workload's: ownerReference garbage collection (background,
//! foreground and orphan), namespace deletion, each namespace's `default` ServiceAccount, and the
//! read-only `fargateprofiles` mirror of the EKS API's profiles with their pod counts.
//!
//! Driven by one watch: every change updates a small model (who owns what, which namespaces
//! exist or are going, how many pods each profile holds), and once a second at most a pass acts
//! on what changed, reading only the objects involved. Nothing here scans the cluster after the
//! first list, and the model holds nothing for an object without owners.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use localfargate_core::{FARGATE_SCHEDULER, PROFILE_LABEL};
use localfargate_registry::custom::catalog::CRD_KEY_PREFIX;
use localfargate_registry::meta::{DynamicObject, label_of};
use localfargate_registry::resources::{FARGATE_GROUP, RESOURCES, ResourceType};
use localfargate_registry::typed::{OwnerReferenceView, PodView, owner_references_of};
use localfargate_store::{Event, EventType, Object, Watcher};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::context::ClusterContext;
use localfargate_registry::objects::{
    DeleteOptions, FOREGROUND_FINALIZER, KubeError, ORPHAN_FINALIZER, Objects, finalizers,
    is_deleting, name_of, namespace_of, now_rfc3339, resource, uid_of,
};

/// Garbage collection and namespace cleanup need not be instant: a pass at most this often.
const PASS_EVERY: Duration = Duration::from_secs(1);

pub async fn run(ctx: Arc<ClusterContext>) {
    let objects = &ctx.objects;
    loop {
        let Some((mut model, mut watcher)) = Model::list_and_watch(objects) else {
            tokio::time::sleep(PASS_EVERY).await;
            continue;
        };
        let mut next_pass = Instant::now();
        loop {
            if Instant::now() >= next_pass {
                model.pass(objects);
                next_pass = Instant::now() + PASS_EVERY;
            }
            match tokio::time::timeout_at(next_pass, watcher.next()).await {
                Ok(Ok(e)) => model.apply(&e),
                // Fell behind for good: list again.
                Ok(Err(_)) => break,
                Err(_) => {}
            }
        }
    }
}

/// The resource type of a stored key (`apps/deployments/ns/name`), built-in or custom.
fn resource_of_key(objects: &Objects, key: &str) -> Option<&'static ResourceType> {
    let mut parts = key.splitn(3, '/');
    let group = parts.next()?;
    let plural = parts.next()?;
    let group = if group == "core" { "" } else { group };
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.resource == plural)
        .or_else(|| {
            let catalog = objects.catalog().ok()?;
            catalog.custom(group, plural)?.storage()
        })
}

fn owner_uids(v: &Value) -> Vec<Box<str>> {
    let mut uids: Vec<Box<str>> = owner_references_of(v)
        .iter()
        .filter_map(|r| r.uid.map(Into::into))
        .collect();
    uids.sort();
    uids.dedup();
    uids
}

/// Being deleted, held by the foreground or orphan finalizer: garbage collection's to release.
fn held_for_dependents(v: &Value) -> bool {
    is_deleting(v)
        && finalizers(v)
            .iter()
            .any(|f| f == FOREGROUND_FINALIZER || f == ORPHAN_FINALIZER)
}

/// The profile a pod counts against in the mirror: a Fargate pod on its node, not finished.
fn counted_profile(v: &Value) -> Option<&str> {
    let pod = PodView::of(v);
    (pod.scheduler_name() == Some(FARGATE_SCHEDULER)
        && pod.node_name().is_some()
        && !pod.is_finished())
    .then(|| label_of(v, PROFILE_LABEL))
    .flatten()
}

/// How an owner named by an ownerReference stands.
#[derive(Clone, Copy, PartialEq)]
enum OwnerState {
    Gone,
    Alive,
    Foreground,
    Orphaning,
}

/// What the passes act on, kept from the watch.
#[derive(Default)]
struct Model {
    /// The owner uids of every object that has owners, and the reverse.
    owners_of: HashMap<Box<str>, Vec<Box<str>>>,
    dependents: HashMap<Box<str>, BTreeSet<Box<str>>>,
    /// Dependents to look at in the next pass: new, re-owned, or whose owner went or is going.
    dirty: BTreeSet<Box<str>>,
    /// Objects being deleted that the foreground or orphan finalizer holds, by key.
    held: BTreeSet<Box<str>>,
    /// Namespaces by name: whether each is terminating.
    namespaces: HashMap<Box<str>, bool>,
    /// CustomResourceDefinitions being deleted, by name: their objects go first.
    definitions: BTreeSet<Box<str>>,
    /// A definition changed since the APIServices of their group-versions were last synced.
    api_services_stale: bool,
    /// Namespaces whose `default` ServiceAccount should be checked.
    check_default_sa: BTreeSet<Box<str>>,
    /// Pods counted against a profile: a hash of the pod's key, and the profile's index in
    /// `profile_names` (a few bytes a pod, for thousands of pods).
    counted: HashMap<u64, u32>,
    profile_names: Vec<Box<str>>,
    pods_per_profile: HashMap<u32, u64>,
    hasher: std::collections::hash_map::RandomState,
}

impl Model {
    /// The model from one list of the cluster, and a watch from the list's revision. Events are
    /// left out: nothing here acts on them (a namespace being emptied lists its own), and they
    /// are most of a busy cluster's changes.
    fn list_and_watch(objects: &Objects) -> Option<(Model, Watcher)> {
        let selection = crate::wake::controlled(objects.store_kind());
        let mut model = Model {
            api_services_stale: true,
            ..Model::default()
        };
        // Scanned type by type, so the whole cluster is never decoded at once, and Events are
        // not read at all. The watch starts from the earliest scan: changes between the scans
        // are applied again, which leaves the model where the latest one is (`apply` sets what
        // an object's change says, so applying one twice is applying it once).
        let mut revision = u64::MAX;
        let catalog = objects
            .catalog()
            .map_err(|e| tracing::warn!(error = %e, "lifecycle: reading the definitions"))
            .ok()?;
        for rt in catalog.all_resources() {
            let prefix = rt.key_prefix(None);
            if !selection.wants(&selection.kind, &prefix) {
                continue;
            }
            let scanned = objects
                .store
                .scan(&selection.kind, &prefix, &mut |o| {
                    model.apply(&Event {
                        event_type: EventType::Added,
                        object: Arc::new(o),
                    });
                })
                .map_err(|e| tracing::warn!(error = %e, "lifecycle: listing the cluster"))
                .ok()?;
            revision = revision.min(scanned);
        }
        let watcher = objects
            .store
            .watch_selection(selection, revision)
            .map_err(|e| tracing::warn!(error = %e, "lifecycle: watching the cluster"))
            .ok()?;
        Some((model, watcher))
    }

    fn key_hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    fn apply(&mut self, e: &Event) {
        let key = e.object.key.as_str();
        let v = &e.object.value;
        let gone = e.event_type == EventType::Deleted;
        // Ownership.
        let uids = if gone { Vec::new() } else { owner_uids(v) };
        let before = self.owners_of.get(key);
        if before.map(Vec::as_slice).unwrap_or_default() != uids.as_slice() {
            if let Some(old) = self.owners_of.remove(key) {
                for u in old {
                    if let Some(set) = self.dependents.get_mut(&u) {
                        set.remove(key);
                        if set.is_empty() {
                            self.dependents.remove(&u);
                        }
                    }
                }
            }
            if !uids.is_empty() {
                for u in &uids {
                    self.dependents
                        .entry(u.clone())
                        .or_default()
                        .insert(key.into());
                }
                self.owners_of.insert(key.into(), uids);
                self.dirty.insert(key.into());
            }
        }
        // An owner going (or gone) puts its dependents up for a look.
        if (gone || held_for_dependents(v))
            && let Some(deps) = self.dependents.get(uid_of(v))
        {
            self.dirty.extend(deps.iter().cloned());
        }
        if !gone && held_for_dependents(v) {
            self.held.insert(key.into());
        } else {
            self.held.remove(key);
        }
        if gone {
            self.dirty.remove(key);
        }
        // Definitions being deleted.
        // An automanaged APIService deleted by hand comes back, as the autoregister
        // controller brings it back.
        if gone
            && key.starts_with(&resource("apiregistration.k8s.io", "apiservices").key_prefix(None))
        {
            self.api_services_stale = true;
        }
        if let Some(name) = key.strip_prefix(CRD_KEY_PREFIX) {
            self.api_services_stale = true;
            if !gone && is_deleting(v) {
                self.definitions.insert(name.into());
            } else {
                self.definitions.remove(name);
            }
        }
        // Namespaces and their default ServiceAccount.
        let ns_prefix = resource("", "namespaces").key_prefix(None);
        let sa_prefix = resource("", "serviceaccounts").key_prefix(None);
        if let Some(name) = key.strip_prefix(&ns_prefix) {
            if gone {
                self.namespaces.remove(name);
                self.check_default_sa.remove(name);
            } else {
                self.namespaces.insert(name.into(), is_deleting(v));
                if !is_deleting(v) {
                    self.check_default_sa.insert(name.into());
                }
            }
        } else if gone
            && key.starts_with(&sa_prefix)
            && name_of(v) == "default"
            && self.namespaces.get(namespace_of(v)) == Some(&false)
        {
            self.check_default_sa.insert(namespace_of(v).into());
        }
        // Pods per profile.
        if key.starts_with(&resource("", "pods").key_prefix(None)) {
            let hash = self.key_hash(key);
            let now = if gone { None } else { counted_profile(v) };
            let now = now.map(|p| self.profile_index(p));
            let was = self.counted.get(&hash).copied();
            if was != now {
                if let Some(p) = was {
                    self.counted.remove(&hash);
                    if let Some(n) = self.pods_per_profile.get_mut(&p) {
                        *n = n.saturating_sub(1);
                    }
                }
                if let Some(p) = now {
                    self.counted.insert(hash, p);
                    *self.pods_per_profile.entry(p).or_default() += 1;
                }
            }
        }
    }

    fn profile_index(&mut self, name: &str) -> u32 {
        match self.profile_names.iter().position(|n| &**n == name) {
            Some(i) => i as u32,
            None => {
                self.profile_names.push(name.into());
                (self.profile_names.len() - 1) as u32
            }
        }
    }

    fn pods_of_profile(&self, name: &str) -> u64 {
        self.profile_names
            .iter()
            .position(|n| &**n == name)
            .and_then(|i| self.pods_per_profile.get(&(i as u32)))
            .copied()
            .unwrap_or(0)
    }

    /// Act on what changed since the last pass.
    fn pass(&mut self, objects: &Objects) {
        let mut owner_states: HashMap<Box<str>, OwnerState> = HashMap::new();
        for key in std::mem::take(&mut self.dirty) {
            collect_dependent(objects, &key, &mut owner_states);
        }
        self.release_owners(objects);
        for ns in std::mem::take(&mut self.check_default_sa) {
            if self.namespaces.get(&ns) == Some(&false) {
                ensure_default_sa(objects, &ns);
            }
        }
        let terminating: Vec<Box<str>> = self
            .namespaces
            .iter()
            .filter(|(_, deleting)| **deleting)
            .map(|(n, _)| n.clone())
            .collect();
        for ns in terminating {
            empty_namespace(objects, &ns);
        }
        for name in self.definitions.clone() {
            crate::definitions::clean_up(objects, &name);
        }
        if self.api_services_stale {
            match crate::definitions::sync_api_services(objects) {
                Ok(()) => self.api_services_stale = false,
                Err(e) => tracing::warn!(error = %e, "syncing the definitions' APIServices"),
            }
        }
        mirror_profiles(objects, &|p| self.pods_of_profile(p));
    }

    /// Owners held for their dependents: the orphan finalizer goes once the dependents were let
    /// go (this pass's first step), the foreground one once no dependent is left.
    fn release_owners(&mut self, objects: &Objects) {
        for key in self.held.clone() {
            let Some(rt) = resource_of_key(objects, &key) else {
                continue;
            };
            let Ok(Some(o)) = objects.store.get(objects.store_kind(), &key) else {
                self.held.remove(&key);
                continue;
            };
            let v = &o.value;
            let has_dependents = self
                .dependents
                .get(uid_of(v))
                .is_some_and(|d| !d.is_empty());
            let f = finalizers(v);
            let remove: Vec<&str> = [FOREGROUND_FINALIZER, ORPHAN_FINALIZER]
                .into_iter()
                .filter(|x| f.iter().any(|y| y == x))
                .filter(|x| *x == ORPHAN_FINALIZER || !has_dependents)
                .collect();
            if remove.is_empty() {
                continue;
            }
            let _ = objects.update_with(rt, namespace_of(v), name_of(v), false, None, &mut |cur| {
                let mut cur = DynamicObject::from_value(cur.clone())?;
                let kept: Vec<String> = cur
                    .metadata
                    .finalizers()
                    .iter()
                    .filter(|x| !remove.contains(&x.as_str()))
                    .cloned()
                    .collect();
                cur.metadata.finalizers = Some(kept);
                Ok(cur.into_value())
            });
        }
    }
}

/// The stored key an ownerReference names, seen from a dependent in `namespace`.
fn owner_key(
    objects: &Objects,
    reference: &OwnerReferenceView<'_>,
    namespace: &str,
) -> Option<String> {
    let api_version = reference.api_version?;
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let kind = reference.kind?;
    let name = reference.name?;
    let rt = match RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == kind)
    {
        Some(rt) => rt,
        None => {
            let catalog = objects.catalog().ok()?;
            catalog
                .custom_resources()
                .iter()
                .find(|r| r.group == group && r.kind == kind)?
                .storage()?
        }
    };
    Some(rt.key(if rt.namespaced { namespace } else { "" }, name))
}

fn owner_state(
    objects: &Objects,
    reference: &OwnerReferenceView<'_>,
    namespace: &str,
    seen: &mut HashMap<Box<str>, OwnerState>,
) -> OwnerState {
    let Some(uid) = reference.uid else {
        return OwnerState::Gone;
    };
    if let Some(s) = seen.get(uid) {
        return *s;
    }
    let found = owner_key(objects, reference, namespace)
        .and_then(|k| objects.store.get(objects.store_kind(), &k).ok().flatten());
    let state = match found {
        Some(o) if uid_of(&o.value) == uid => {
            let f = if is_deleting(&o.value) {
                finalizers(&o.value)
            } else {
                Vec::new()
            };
            if f.iter().any(|x| x == ORPHAN_FINALIZER) {
                OwnerState::Orphaning
            } else if f.iter().any(|x| x == FOREGROUND_FINALIZER) {
                OwnerState::Foreground
            } else {
                OwnerState::Alive
            }
        }
        // No such object, or another one by the same name.
        _ => OwnerState::Gone,
    };
    seen.insert(uid.into(), state);
    state
}

/// One dependent: let go of orphaning owners, or deleted when all its owners are gone or one is
/// being deleted in the foreground.
fn collect_dependent(objects: &Objects, key: &str, seen: &mut HashMap<Box<str>, OwnerState>) {
    let Some(rt) = resource_of_key(objects, key) else {
        return;
    };
    let Ok(Some(o)) = objects.store.get(objects.store_kind(), key) else {
        return;
    };
    let v = &o.value;
    let refs = owner_references_of(v);
    if refs.is_empty() {
        return;
    }
    let ns = namespace_of(v);
    let states: Vec<(Option<&str>, OwnerState)> = refs
        .iter()
        .map(|r| (r.uid, owner_state(objects, r, ns, seen)))
        .collect();
    let orphaning: HashSet<&str> = states
        .iter()
        .filter(|(_, s)| *s == OwnerState::Orphaning)
        .filter_map(|(u, _)| *u)
        .collect();
    if !orphaning.is_empty() {
        let _ = objects.update_with(rt, ns, name_of(v), false, None, &mut |cur| {
            let mut cur = DynamicObject::from_value(cur.clone())?;
            let refs = cur.metadata.owner_references.take().unwrap_or_default();
            cur.metadata.owner_references = Some(
                refs.into_iter()
                    .filter(|r| !r.uid.as_deref().is_some_and(|u| orphaning.contains(u)))
                    .collect(),
            );
            Ok(cur.into_value())
        });
        return;
    }
    if is_deleting(v) {
        return;
    }
    let all_gone = states.iter().all(|(_, s)| *s == OwnerState::Gone);
    let in_foreground = states.iter().any(|(_, s)| *s == OwnerState::Foreground);
    if all_gone || in_foreground {
        let propagation =
            in_foreground.then_some(localfargate_registry::objects::Propagation::Foreground);
        match objects.delete(
            rt,
            ns,
            name_of(v),
            &DeleteOptions {
                propagation,
                ..Default::default()
            },
        ) {
            Ok(_) | Err(KubeError::NotFound { .. }) => {}
            Err(e) => tracing::warn!(key, error = %e, "garbage collection"),
        }
    }
}

fn ensure_default_sa(objects: &Objects, ns: &str) {
    let sa_rt = resource("", "serviceaccounts");
    if matches!(objects.get_object(sa_rt, ns, "default"), Ok(Some(_))) {
        return;
    }
    match objects.create(sa_rt, ns, json!({"metadata": {"name": "default"}})) {
        Ok(_) | Err(KubeError::AlreadyExists { .. }) | Err(KubeError::Forbidden(_)) => {}
        Err(e) => tracing::warn!(namespace = ns, error = %e, "default service account"),
    }
}

/// A terminating namespace: its Events go, everything else is deleted (what a finalizer of its
/// own holds is released), and once it is empty the namespace is removed.
fn empty_namespace(objects: &Objects, ns: &str) {
    let events = resource("", "events");
    if let Ok((all, _)) = objects.list(events, Some(ns)) {
        for e in all.iter() {
            let _ = objects.purge(events, ns, name_of(&e.value));
        }
    }
    let mut empty = true;
    let Ok(catalog) = objects.catalog() else {
        return;
    };
    for rt in catalog
        .all_resources()
        .into_iter()
        .filter(|r| r.namespaced && !r.read_only)
    {
        if std::ptr::eq(rt, events) {
            continue;
        }
        let Ok((inside, _)) = objects.list(rt, Some(ns)) else {
            empty = false;
            continue;
        };
        for x in inside.iter() {
            empty = false;
            if is_deleting(&x.value) && rt.kind != "Pod" {
                let _ = objects.purge(rt, ns, name_of(&x.value));
            } else if !is_deleting(&x.value) {
                let _ = objects.delete(rt, ns, name_of(&x.value), &DeleteOptions::default());
            }
        }
    }
    if empty {
        let _ = objects.purge(resource("", "namespaces"), "", ns);
    }
}

/// Keep one `fargateprofiles.eks.localfargate.io` object per EKS profile, with its pod count.
fn mirror_profiles(objects: &Objects, pods_of: &dyn Fn(&str) -> u64) {
    let rt = resource(FARGATE_GROUP, "fargateprofiles");
    let profiles =
        localfargate_registry::profile_index::profiles(&*objects.store, &objects.cluster);
    let kind = objects.store_kind().to_string();
    let Ok((mirrored, _)) = objects.list(rt, None) else {
        return;
    };
    let existing: HashMap<&str, &Arc<Object>> =
        mirrored.iter().map(|o| (name_of(&o.value), o)).collect();
    let mut wanted = HashSet::new();
    for p in &profiles {
        wanted.insert(p.name.as_str());
        let selectors: Vec<Value> = p
            .selectors
            .iter()
            .map(|s| json!({"namespace": s.namespace, "labels": s.labels}))
            .collect();
        let spec = json!({
            "clusterName": objects.cluster,
            "fargateProfileArn": p.fargate_profile_arn,
            "podExecutionRoleArn": p.pod_execution_role_arn,
            "subnets": p.subnets,
            "selectors": selectors,
        });
        let status = json!({"status": p.status.to_string(), "pods": pods_of(&p.name)});
        let result = match existing.get(p.name.as_str()) {
            Some(o) if o.value["spec"] == spec && o.value["status"] == status => continue,
            Some(o) => {
                let mut v = o.value.clone();
                v["spec"] = spec;
                v["status"] = status;
                localfargate_store::transaction(&*objects.store, |tx| {
                    tx.update(&kind, &o.key, &v, Some(o.revision))
                })
                .map(|_| ())
            }
            None => {
                let created_at = p
                    .created_at
                    .and_then(|s| jiff::Timestamp::from_second(s as i64).ok())
                    .map(localfargate_registry::objects::rfc3339)
                    .unwrap_or_else(now_rfc3339);
                let v = json!({
                    "apiVersion": format!("{FARGATE_GROUP}/v1"),
                    "kind": "FargateProfile",
                    "metadata": {"name": p.name, "uid": localfargate_registry::objects::new_uid(), "creationTimestamp": created_at},
                    "spec": spec,
                    "status": status,
                });
                localfargate_store::transaction(&*objects.store, |tx| {
                    tx.create(&kind, &rt.key("", &p.name), &v)
                })
                .map(|_| ())
            }
        };
        if let Err(e) = result {
            tracing::debug!(profile = %p.name, error = %e, "mirroring a profile");
        }
    }
    for (name, o) in existing {
        if !wanted.contains(name) {
            let _ = localfargate_store::transaction(&*objects.store, |tx| {
                tx.delete(&kind, &o.key, None)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use localfargate_registry::objects::{Propagation, namespaces};

    fn objects() -> Objects {
        let store: Arc<dyn localfargate_store::Store> =
            Arc::new(localfargate_store::SqliteStore::in_memory().unwrap());
        let o = Objects::new(
            store,
            "c",
            Arc::new(localfargate_registry::Settings::new("us-east-1")),
        );
        o.create(namespaces(), "", json!({"metadata": {"name": "default"}}))
            .unwrap();
        o
    }

    /// Apply every change that is ready, then run a pass.
    async fn settle(model: &mut Model, watcher: &mut Watcher, objects: &Objects) {
        while let Some(Ok(e)) = watcher.try_next() {
            model.apply(&e);
        }
        model.pass(objects);
    }

    fn cm(o: &Objects, name: &str, owner: Option<(&str, &str)>) -> String {
        let mut body = json!({"metadata": {"name": name}});
        if let Some((owner, uid)) = owner {
            body["metadata"]["ownerReferences"] =
                json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": owner, "uid": uid}]);
        }
        let made = o
            .create(resource("", "configmaps"), "default", body)
            .unwrap();
        uid_of(&made).to_string()
    }

    fn exists(o: &Objects, name: &str) -> bool {
        o.get_object(resource("", "configmaps"), "default", name)
            .unwrap()
            .is_some()
    }

    fn delete(o: &Objects, name: &str, propagation: Propagation) {
        o.delete(
            resource("", "configmaps"),
            "default",
            name,
            &DeleteOptions {
                propagation: Some(propagation),
                ..Default::default()
            },
        )
        .unwrap();
    }

    #[tokio::test]
    async fn dependents_go_with_their_owner_in_the_background() {
        let o = objects();
        let (mut model, mut w) = Model::list_and_watch(&o).unwrap();
        let uid = cm(&o, "owner", None);
        cm(&o, "dep", Some(("owner", &uid)));
        cm(&o, "dangling", Some(("nobody", "no-such-uid")));
        settle(&mut model, &mut w, &o).await;
        assert!(exists(&o, "dep"), "a live owner keeps its dependent");
        assert!(
            !exists(&o, "dangling"),
            "an owner that does not exist keeps nothing"
        );
        delete(&o, "owner", Propagation::Background);
        settle(&mut model, &mut w, &o).await;
        assert!(!exists(&o, "dep"));
        settle(&mut model, &mut w, &o).await;
        assert!(model.owners_of.is_empty() && model.dependents.is_empty());
    }

    #[tokio::test]
    async fn an_owner_of_the_same_name_but_another_uid_does_not_count() {
        let o = objects();
        let (mut model, mut w) = Model::list_and_watch(&o).unwrap();
        let old = cm(&o, "owner", None);
        delete(&o, "owner", Propagation::Background);
        cm(&o, "owner", None);
        cm(&o, "dep", Some(("owner", &old)));
        settle(&mut model, &mut w, &o).await;
        assert!(!exists(&o, "dep"));
    }

    #[tokio::test]
    async fn foreground_deletion_waits_for_dependents_then_finishes() {
        let o = objects();
        let (mut model, mut w) = Model::list_and_watch(&o).unwrap();
        let uid = cm(&o, "owner", None);
        cm(&o, "dep", Some(("owner", &uid)));
        settle(&mut model, &mut w, &o).await;
        delete(&o, "owner", Propagation::Foreground);
        assert!(exists(&o, "owner"), "held by the foreground finalizer");
        // The dependent is deleted in the foreground too (held by its own finalizer for a pass,
        // having no dependents), and the owner goes once it has none left.
        settle(&mut model, &mut w, &o).await;
        assert!(exists(&o, "owner"), "still has a dependent");
        for _ in 0..3 {
            settle(&mut model, &mut w, &o).await;
        }
        assert!(!exists(&o, "dep"));
        assert!(
            !exists(&o, "owner"),
            "released once its dependents are gone"
        );
        assert!(model.held.is_empty());
    }

    #[tokio::test]
    async fn orphaning_lets_dependents_go_free() {
        let o = objects();
        let (mut model, mut w) = Model::list_and_watch(&o).unwrap();
        let uid = cm(&o, "owner", None);
        cm(&o, "dep", Some(("owner", &uid)));
        cm(&o, "other", None);
        settle(&mut model, &mut w, &o).await;
        delete(&o, "owner", Propagation::Orphan);
        settle(&mut model, &mut w, &o).await;
        settle(&mut model, &mut w, &o).await;
        assert!(!exists(&o, "owner"));
        let dep = o.get(resource("", "configmaps"), "default", "dep").unwrap();
        assert_eq!(dep["metadata"]["ownerReferences"], json!([]));
    }

    #[tokio::test]
    async fn namespaces_get_a_default_service_account_and_are_emptied_when_deleted() {
        let o = objects();
        let (mut model, mut w) = Model::list_and_watch(&o).unwrap();
        o.create(namespaces(), "", json!({"metadata": {"name": "team"}}))
            .unwrap();
        settle(&mut model, &mut w, &o).await;
        let sa = resource("", "serviceaccounts");
        assert!(o.get_object(sa, "team", "default").unwrap().is_some());
        assert!(o.get_object(sa, "default", "default").unwrap().is_some());
        // A deleted default ServiceAccount comes back.
        o.delete(sa, "team", "default", &DeleteOptions::default())
            .unwrap();
        settle(&mut model, &mut w, &o).await;
        assert!(o.get_object(sa, "team", "default").unwrap().is_some());
        o.create(
            resource("", "configmaps"),
            "team",
            json!({"metadata": {"name": "x"}}),
        )
        .unwrap();
        o.delete(namespaces(), "", "team", &DeleteOptions::default())
            .unwrap();
        for _ in 0..3 {
            settle(&mut model, &mut w, &o).await;
        }
        assert!(o.get_object(namespaces(), "", "team").unwrap().is_none());
        let (left, _) = o.store.list(o.store_kind(), "").unwrap();
        assert!(
            left.iter().all(|x| !x.key.contains("/team/")),
            "nothing of the namespace is left"
        );
        assert!(!model.namespaces.contains_key("team"));
    }

    fn pod_event(event_type: EventType, name: &str, v: Value) -> Event {
        Event {
            event_type,
            object: Arc::new(Object {
                kind: "k8s/c".to_string(),
                key: resource("", "pods").key("default", name),
                value: v,
                revision: 1,
                created: 1,
            }),
        }
    }

    #[test]
    fn pods_are_counted_against_their_profile_while_they_hold_a_fargate_node() {
        let pod = |node: &str, phase: &str| {
            json!({"metadata": {"labels": {PROFILE_LABEL: "fp"}},
                   "spec": {"schedulerName": FARGATE_SCHEDULER, "nodeName": node},
                   "status": {"phase": phase}})
        };
        let mut m = Model::default();
        m.apply(&pod_event(EventType::Added, "a", pod("", "Pending")));
        assert_eq!(m.pods_of_profile("fp"), 0, "not placed yet");
        m.apply(&pod_event(EventType::Modified, "a", pod("n1", "Running")));
        m.apply(&pod_event(EventType::Added, "b", pod("n2", "Running")));
        m.apply(&pod_event(EventType::Modified, "b", pod("n2", "Running")));
        assert_eq!(m.pods_of_profile("fp"), 2);
        m.apply(&pod_event(EventType::Modified, "a", pod("n1", "Succeeded")));
        assert_eq!(m.pods_of_profile("fp"), 1);
        m.apply(&pod_event(EventType::Deleted, "b", pod("n2", "Running")));
        assert_eq!(m.pods_of_profile("fp"), 0);
        assert_eq!(m.pods_of_profile("other"), 0);
        assert!(m.counted.is_empty());
    }
}
