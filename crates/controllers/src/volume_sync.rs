//! Keeps running pods' file volumes current, as the kubelet's periodic pod sync does: a
//! ConfigMap or Secret edited after the pod started, a label the downward API projects, and
//! service-account tokens nearing their end reach the pod's volume within one interval
//! (`ControllerSettings::volume_sync_interval`, a minute by default). A volume whose objects are gone or
//! unreadable keeps its last contents, as on Kubernetes. Also holds the tokens pods were given,
//! so that a sync does not rewrite a token that is still good.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use localfargate_core::service_account_token::TokenRequest;
use localfargate_runtime::VolumeSource;
use serde_json::Value;

use crate::context::ClusterContext;
use crate::node_agent::{StoreRefs, placement};
use crate::pod_spec;
use localfargate_registry::objects::{is_deleting, resource, uid_of};
use localfargate_registry::typed::PodView;

/// The kubelet renews a projected token once 80 % of its life has passed, or after 24 hours.
const RENEW_AT_PERCENT: u64 = 80;
const RENEW_AFTER_SECONDS: u64 = 24 * 3600;

struct Issued {
    token: String,
    renew_at: u64,
}

/// Tokens given to pods, by pod uid and the token's binding (account, audience, life).
#[derive(Default)]
pub struct IssuedTokens {
    by_pod: HashMap<String, HashMap<(String, String, u64), Issued>>,
}

impl IssuedTokens {
    /// The token the pod already has for `request` while it is good, else a new one from
    /// `issue` (kept for next time).
    pub fn get_or_issue(
        &mut self,
        request: &TokenRequest<'_>,
        now: u64,
        issue: impl FnOnce(&TokenRequest<'_>) -> Option<String>,
    ) -> Option<String> {
        let key = (
            request.service_account.to_string(),
            request.audience.to_string(),
            request.expiration_seconds,
        );
        let pod = self.by_pod.entry(request.pod_uid.to_string()).or_default();
        if let Some(t) = pod.get(&key).filter(|t| now < t.renew_at) {
            return Some(t.token.clone());
        }
        let token = issue(request)?;
        let life = request.expiration_seconds;
        let renew_at = now + (life * RENEW_AT_PERCENT / 100).min(RENEW_AFTER_SECONDS);
        pod.insert(
            key,
            Issued {
                token: token.clone(),
                renew_at,
            },
        );
        Some(token)
    }

    /// Forgets the tokens of pods not in `live`.
    pub fn retain_pods(&mut self, live: &dyn Fn(&str) -> bool) {
        self.by_pod.retain(|uid, _| live(uid));
    }
}

/// Every interval, brings each running pod's file volumes up to date.
pub async fn run(ctx: Arc<ClusterContext>) {
    let interval = ctx.settings.volume_sync_interval;
    loop {
        tokio::time::sleep(interval).await;
        sync_once(&ctx).await;
    }
}

fn has_file_volumes(pod: &Value) -> bool {
    pod["spec"]["volumes"].as_array().is_some_and(|vs| {
        vs.iter().any(|v| {
            ["configMap", "secret", "downwardAPI", "projected"]
                .iter()
                .any(|k| v.get(*k).is_some())
        })
    })
}

/// One pass over the cluster's running pods.
pub async fn sync_once(ctx: &ClusterContext) {
    let Ok((pods, _)) = ctx.objects.list(resource("", "pods"), None) else {
        return;
    };
    let live: std::collections::HashSet<String> = pods
        .iter()
        .map(|p| uid_of(&p.value).to_string())
        .filter(|uid| !uid.is_empty())
        .collect();
    ctx.issued_tokens
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain_pods(&|uid| live.contains(uid));
    for object in pods {
        let pod = &object.value;
        let view = PodView::of(pod);
        let running = view.phase() == Some("Running") && !is_deleting(pod) && has_file_volumes(pod);
        let (Some(node), Some(ip), Some(uid)) = (
            view.node_name(),
            view.pod_ip().and_then(|s| s.parse::<Ipv4Addr>().ok()),
            Some(uid_of(pod)).filter(|u| !u.is_empty()),
        ) else {
            continue;
        };
        if !running {
            continue;
        }
        let Ok(Some(sandbox)) = ctx.runtime.sandbox_of_pod(uid).await else {
            continue;
        };
        let placement = placement(ctx, pod, node, ip);
        let resolved = match pod_spec::resolve(
            pod,
            &placement,
            &StoreRefs(ctx),
            &pod_spec::host_resolv_conf,
        ) {
            Ok(r) => r,
            Err(e) => {
                // What the pod has stays, as the kubelet keeps a volume whose source is gone.
                tracing::debug!(pod = %object.key, error = ?e, "volumes not updated");
                continue;
            }
        };
        for v in resolved.spec.volumes {
            if let VolumeSource::Files { files, .. } = v.source
                && let Err(e) = ctx.runtime.update_volume(&sandbox.id, &v.name, files).await
            {
                tracing::warn!(pod = %object.key, volume = %v.name, error = %e, "updating a volume");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(audience: &str, life: u64) -> TokenRequest<'_> {
        TokenRequest {
            namespace: "default",
            service_account: "default",
            service_account_uid: None,
            audience,
            expiration_seconds: life,
            pod_name: "p",
            pod_uid: "uid-1",
            node_name: "n",
        }
    }

    #[test]
    fn tokens_are_reused_until_the_kubelet_would_renew_them() {
        let mut issued = IssuedTokens::default();
        let mut n = 0;
        let mut next = |_: &TokenRequest<'_>| {
            n += 1;
            Some(format!("t{n}"))
        };
        let r = request("api", 3600);
        assert_eq!(issued.get_or_issue(&r, 1000, &mut next).unwrap(), "t1");
        // 80 % of an hour is 2880 s.
        assert_eq!(
            issued.get_or_issue(&r, 1000 + 2879, &mut next).unwrap(),
            "t1"
        );
        assert_eq!(
            issued.get_or_issue(&r, 1000 + 2880, &mut next).unwrap(),
            "t2"
        );
        // Another audience is another token; a day-long one renews after 24 h at the latest.
        let sts = request("sts", 7 * 24 * 3600);
        assert_eq!(issued.get_or_issue(&sts, 0, &mut next).unwrap(), "t3");
        assert_eq!(issued.get_or_issue(&sts, 86_399, &mut next).unwrap(), "t3");
        assert_eq!(issued.get_or_issue(&sts, 86_400, &mut next).unwrap(), "t4");
        issued.retain_pods(&|_| false);
        assert_eq!(issued.get_or_issue(&r, 1000, &mut next).unwrap(), "t5");
    }
}
