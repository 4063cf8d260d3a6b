//! The tokens controller's legacy part: a `kubernetes.io/service-account-token` Secret gets its
//! ServiceAccount's uid annotation, a non-expiring token signed with the cluster's key, the
//! cluster CA and its namespace (`registry::legacy_tokens` says how); a Secret whose account is
//! missing (or was recreated with another uid) is deleted, as kube-controller-manager does,
//! which also takes a deleted account's Secrets with it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use localfargate_core::eks::CLUSTER_KIND;
use localfargate_registry::legacy_tokens::{
    account_name, fill, is_token_secret, needs_filling, refers_to,
};
use localfargate_registry::objects::{
    DeleteOptions, Objects, is_deleting, name_of, namespace_of, resource, uid_of,
};

use crate::context::ClusterContext;
use crate::wake::{Wake, Woken};

pub async fn run(ctx: Arc<ClusterContext>) {
    let objects = &ctx.objects;
    let kind = objects.store_kind().to_string();
    let watched = [
        resource("", "secrets").key_prefix(None),
        resource("", "serviceaccounts").key_prefix(None),
    ];
    let mut wake = Wake::watching(
        &kind,
        &watched,
        Duration::from_millis(100),
        Duration::from_secs(60),
    );
    let mut relist = true;
    let mut dirty: Option<BTreeSet<String>> = None;
    loop {
        if relist {
            wake.start(&*objects.store, objects.store.revision().unwrap_or(0));
            dirty = None;
        }
        sync(&ctx, dirty.as_ref());
        match wake.wait(&*objects.store).await {
            Woken::Relist => relist = true,
            Woken::Changes(changes) => {
                relist = false;
                let namespaces: BTreeSet<String> = changes
                    .iter()
                    .filter(|e| watched.iter().any(|p| e.object.key.starts_with(p.as_str())))
                    .map(|e| namespace_of(&e.object.value).to_string())
                    .collect();
                dirty = (!changes.is_empty()).then_some(namespaces);
            }
        }
    }
}

/// The cluster CA's certificate, from the EKS record.
fn ca_pem(objects: &Objects) -> Option<String> {
    let record = objects.store.get(CLUSTER_KIND, &objects.cluster).ok()??;
    record.value["private"]["caCertPem"]
        .as_str()
        .map(str::to_string)
}

/// Fill or delete the token Secrets of these namespaces (all with `None`).
fn sync(ctx: &ClusterContext, namespaces: Option<&BTreeSet<String>>) {
    let objects = &ctx.objects;
    let secrets = resource("", "secrets");
    let Ok((all, _)) = objects.list(secrets, None) else {
        return;
    };
    let mut ca: Option<Option<String>> = None;
    for secret in all.iter().map(|o| &o.value) {
        let ns = namespace_of(secret);
        if !is_token_secret(secret)
            || namespaces.is_some_and(|n| !n.contains(ns))
            || is_deleting(secret)
        {
            continue;
        }
        let account = objects
            .get(resource("", "serviceaccounts"), ns, account_name(secret))
            .ok()
            .filter(|a| refers_to(secret, a));
        let Some(account) = account else {
            tracing::info!(
                secret = name_of(secret),
                namespace = ns,
                "deleting a token secret without its service account"
            );
            let opts = DeleteOptions {
                precondition_uid: Some(uid_of(secret).to_string()),
                ..Default::default()
            };
            if let Err(e) = objects.delete(secrets, ns, name_of(secret), &opts) {
                tracing::debug!(secret = name_of(secret), error = %e, "deleting a token secret");
            }
            continue;
        };
        if !needs_filling(secret) {
            continue;
        }
        let (Some(signer), Some(ca_pem)) = (
            ctx.tokens.as_deref(),
            ca.get_or_insert_with(|| ca_pem(objects)).as_deref(),
        ) else {
            tracing::warn!(cluster = %objects.cluster, "no signing key or CA for token secrets");
            return;
        };
        let result = objects.update_with(secrets, ns, name_of(secret), false, None, &mut |cur| {
            let mut cur = cur.clone();
            fill(&mut cur, &account, signer, ca_pem)
                .map_err(|e| localfargate_registry::KubeError::Internal(e.to_string()))?;
            Ok(cur)
        });
        if let Err(e) = result {
            tracing::debug!(secret = name_of(secret), error = %e, "filling a token secret");
        }
    }
}
