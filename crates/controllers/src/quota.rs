//! The resource-quota controller: each ResourceQuota's `status.hard` (its spec's) and
//! `status.used` (counted from the namespace's objects by `registry::quota`), as
//! kube-controller-manager keeps them; recomputed when anything in a namespace with quotas
//! changes, and every 30 seconds for anything missed. Admission charges `status.used` as it
//! admits; this recount corrects it when objects go (deleted, or pods finished).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use localfargate_registry::objects::{Objects, name_of, namespace_of, resource};
use localfargate_registry::quota;

use crate::context::ClusterContext;
use crate::wake::{Wake, Woken};

pub async fn run(ctx: Arc<ClusterContext>) {
    let objects = &ctx.objects;
    let kind = objects.store_kind().to_string();
    let mut wake = Wake::new(&kind, Duration::from_millis(100), Duration::from_secs(30));
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
                let namespaces: BTreeSet<String> = changes
                    .iter()
                    .map(|e| namespace_of(&e.object.value).to_string())
                    .filter(|ns| !ns.is_empty())
                    .collect();
                // Woken by time alone: every quota, for anything missed.
                dirty = (!changes.is_empty()).then_some(namespaces);
            }
        }
    }
}

/// Recompute the quotas of these namespaces (all with `None`).
fn sync(objects: &Objects, namespaces: Option<&BTreeSet<String>>) {
    let quotas = resource("", "resourcequotas");
    let Ok((all, _)) = objects.list(quotas, None) else {
        return;
    };
    for stored in all.iter() {
        let ns = namespace_of(&stored.value);
        if namespaces.is_some_and(|n| !n.contains(ns)) {
            continue;
        }
        if let Err(e) = quota::recount(objects, &stored.key, ns) {
            tracing::debug!(quota = name_of(&stored.value), error = %e, "recounting a quota");
        }
    }
}
