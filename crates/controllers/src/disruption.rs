//! The disruption controller: each PodDisruptionBudget's status (healthy, desired and expected
//! pods, disruptions allowed), kept from the pods it covers and the scale of their controllers,
//! as kube-controller-manager keeps it (the rules are in `registry::disruption`). Evictions read
//! it; it is recomputed whenever a budget, a pod or a workload of the namespace changes.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::ReplicationController;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::{Metadata, Resource};
use localfargate_registry::disruption::{covered, status};
use localfargate_registry::meta;
use localfargate_registry::objects::{Objects, name_of, namespace_of, resource};
use localfargate_registry::typed;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::context::ClusterContext;
use crate::wake::{Wake, Woken};

/// Group prefixes of the store keys whose changes can change a budget's status.
const WATCHED: [(&str, &str); 6] = [
    ("policy", "poddisruptionbudgets"),
    ("", "pods"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
    ("", "replicationcontrollers"),
];

pub async fn run(ctx: Arc<ClusterContext>) {
    let objects = &ctx.objects;
    let kind = objects.store_kind().to_string();
    let prefixes: Vec<String> = WATCHED
        .iter()
        .map(|(g, p)| resource(g, p).key_prefix(None))
        .collect();
    let mut wake = Wake::watching(
        &kind,
        &prefixes,
        Duration::from_millis(100),
        Duration::from_secs(30),
    );
    let mut relist = true;
    let mut dirty: Option<BTreeSet<String>> = None;
    loop {
        if relist {
            wake.start(&*objects.store, objects.store.revision().unwrap_or(0));
            dirty = None;
        }
        sync(objects, dirty.as_ref());
        match wake.wait(&*objects.store).await {
            Woken::Relist => relist = true,
            Woken::Changes(changes) => {
                relist = false;
                let mut namespaces = BTreeSet::new();
                for e in &changes {
                    if prefixes
                        .iter()
                        .any(|p| e.object.key.starts_with(p.as_str()))
                    {
                        namespaces.insert(namespace_of(&e.object.value).to_string());
                    }
                }
                // Woken by time alone: every budget, for anything missed.
                dirty = (!changes.is_empty()).then_some(namespaces);
            }
        }
    }
}

/// Recompute the budgets of these namespaces (all with `None`).
fn sync(objects: &Objects, namespaces: Option<&BTreeSet<String>>) {
    let budgets = resource("policy", "poddisruptionbudgets");
    let Ok((all, _)) = objects.list(budgets, None) else {
        return;
    };
    for pdb in all.iter().map(|o| &o.value) {
        if namespaces.is_some_and(|n| !n.contains(namespace_of(pdb))) {
            continue;
        }
        let ns = namespace_of(pdb);
        let Ok((pods, _)) = objects.list(resource("", "pods"), Some(ns)) else {
            continue;
        };
        let covered: Vec<&Value> = covered(pdb, pods.iter().map(|o| &o.value)).collect();
        let expected = expected_scale(objects, &covered);
        // The status is the JSON `registry::disruption::status` computes from the budget's
        // JSON: compared with, and written over, the stored status as JSON.
        let new = status(pdb, &covered, expected);
        if pdb.get("status").unwrap_or(&Value::Null) == &new {
            continue;
        }
        let result = objects.update_with(budgets, ns, name_of(pdb), true, None, &mut |cur| {
            let mut cur = cur.clone();
            // Recomputed from the object being written, so a disruption an eviction just took
            // is kept.
            let recomputed = status(&cur, &covered, expected);
            if let Some(m) = cur.as_object_mut() {
                m.insert("status".to_string(), recomputed);
            }
            Ok(cur)
        });
        if let Err(e) = result {
            tracing::debug!(budget = name_of(pdb), error = %e, "updating a disruption budget");
        }
    }
}

/// The sum of the replicas of the controllers of `pods` (a ReplicaSet's Deployment counts for
/// it), as upstream's `getExpectedScale`; pods without a controller count one each.
fn expected_scale(objects: &Objects, pods: &[&Value]) -> i64 {
    let mut seen: HashSet<String> = HashSet::new();
    let mut total = 0;
    for pod in pods {
        let pod_meta = meta::ObjectMeta::of(pod);
        let Some(owner) = pod_meta.controller() else {
            total += 1;
            continue;
        };
        let kind = owner.kind.as_deref().unwrap_or("");
        let name = owner.name.as_deref().unwrap_or("");
        let Some(scalable) = Scalable::get(objects, namespace_of(pod), kind, name) else {
            if Scalable::KINDS.contains(&kind) {
                // A controller that is gone (or does not decode) counts nothing.
                continue;
            }
            total += 1;
            continue;
        };
        // A Deployment's ReplicaSet: the Deployment's scale.
        let controller = match &scalable.controller {
            Some(up) if kind == ReplicaSet::KIND && up.kind == Deployment::KIND => {
                Scalable::get(objects, namespace_of(pod), &up.kind, &up.name).unwrap_or(scalable)
            }
            _ => scalable,
        };
        if seen.insert(controller.uid) {
            total += controller.replicas;
        }
    }
    total
}

/// A controller with a scale: its uid, `spec.replicas` and its own controller.
struct Scalable {
    uid: String,
    replicas: i64,
    controller: Option<OwnerReference>,
}

impl Scalable {
    /// The kinds with a scale the disruption controller follows.
    const KINDS: [&str; 4] = [
        ReplicaSet::KIND,
        StatefulSet::KIND,
        ReplicationController::KIND,
        Deployment::KIND,
    ];

    /// The stored controller of `kind` (one of [`Self::KINDS`]) named `name`.
    fn get(objects: &Objects, namespace: &str, kind: &str, name: &str) -> Option<Scalable> {
        match kind {
            "ReplicaSet" => {
                Self::read::<ReplicaSet>(objects, namespace, name, |r| r.spec.as_ref()?.replicas)
            }
            "StatefulSet" => {
                Self::read::<StatefulSet>(objects, namespace, name, |s| s.spec.as_ref()?.replicas)
            }
            "ReplicationController" => {
                Self::read::<ReplicationController>(objects, namespace, name, |r| {
                    r.spec.as_ref()?.replicas
                })
            }
            "Deployment" => {
                Self::read::<Deployment>(objects, namespace, name, |d| d.spec.as_ref()?.replicas)
            }
            _ => None,
        }
    }

    fn read<K: Resource + Metadata<Ty = ObjectMeta> + DeserializeOwned>(
        objects: &Objects,
        namespace: &str,
        name: &str,
        replicas: fn(&K) -> Option<i32>,
    ) -> Option<Scalable> {
        let k: K = typed::get(objects, namespace, name)
            .map_err(|e| tracing::debug!(error = %e, "reading a pod's controller"))
            .ok()??;
        let meta = k.metadata();
        Some(Scalable {
            uid: meta.uid.clone().unwrap_or_default(),
            replicas: replicas(&k).map_or(0, i64::from),
            controller: meta
                .owner_references
                .as_ref()
                .and_then(|refs| refs.iter().find(|r| r.controller == Some(true)).cloned()),
        })
    }
}
