//! The disruption controller: each PodDisruptionBudget's status (healthy, desired and expected
//! pods, disruptions allowed), kept from the pods it covers and the scale of their controllers,
//! as kube-controller-manager keeps it (the rules are in `registry::disruption`). Evictions read
//! it; it is recomputed whenever a budget, a pod or a workload of the namespace changes.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use localfargate_registry::disruption::{covers, status};
use localfargate_registry::objects::{Objects, name_of, namespace_of, resource};
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
        let covered: Vec<&Value> = pods
            .iter()
            .map(|o| &o.value)
            .filter(|p| covers(pdb, p))
            .collect();
        let expected = expected_scale(objects, &covered);
        let new = status(pdb, &covered, expected);
        if new == pdb["status"] {
            continue;
        }
        let result = objects.update_with(budgets, ns, name_of(pdb), true, None, &mut |cur| {
            let mut cur = cur.clone();
            // Recomputed from the object being written, so a disruption an eviction just took
            // is kept.
            cur["status"] = status(&cur, &covered, expected);
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
        let Some(owner) = controller_of(pod) else {
            total += 1;
            continue;
        };
        let Some((group, plural)) = plural_of(owner) else {
            total += 1;
            continue;
        };
        let name = owner["name"].as_str().unwrap_or("");
        let Ok(mut controller) = objects.get(resource(group, plural), namespace_of(pod), name)
        else {
            continue;
        };
        // A Deployment's ReplicaSet: the Deployment's scale.
        if plural == "replicasets"
            && let Some(up) = controller_of(&controller).filter(|o| o["kind"] == "Deployment")
            && let Ok(d) = objects.get(
                resource("apps", "deployments"),
                namespace_of(pod),
                up["name"].as_str().unwrap_or(""),
            )
        {
            controller = d;
        }
        let uid = controller["metadata"]["uid"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if seen.insert(uid) {
            total += controller["spec"]["replicas"].as_i64().unwrap_or(0);
        }
    }
    total
}

fn controller_of(v: &Value) -> Option<&Value> {
    v["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["controller"] == true)
}

fn plural_of(owner: &Value) -> Option<(&'static str, &'static str)> {
    match owner["kind"].as_str()? {
        "ReplicaSet" => Some(("apps", "replicasets")),
        "StatefulSet" => Some(("apps", "statefulsets")),
        "ReplicationController" => Some(("", "replicationcontrollers")),
        "Deployment" => Some(("apps", "deployments")),
        _ => None,
    }
}
