//! NetworkPolicies are stored and served, and enforced nowhere: Amazon EKS does not apply them to
//! pods on Fargate (the VPC CNI applies them on Amazon EC2 Linux nodes only), and localfargate
//! does not enforce them on its node groups' pods either. Each policy gets a Warning event saying
//! so when it is created or its spec changes, so `kubectl describe networkpolicy` tells the user
//! rather than the policy silently doing nothing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use localfargate_registry::meta::generation_of;
use localfargate_registry::objects::{resource, uid_of};

use crate::context::ClusterContext;
use crate::events::{EventType, emit};
use crate::wake::{Wake, under};

pub const REASON: &str = "NetworkPolicyNotEnforced";
pub const MESSAGE: &str = "Network policies are not applied to pods on Fargate (Amazon EKS \
    applies them on Amazon EC2 Linux nodes only); localfargate does not enforce them on any pod. \
    Use security groups for pods (SecurityGroupPolicy) to filter Fargate pods' traffic";

pub async fn run(ctx: Arc<ClusterContext>) {
    let objects = &ctx.objects;
    let policies = resource("networking.k8s.io", "networkpolicies");
    let prefix = policies.key_prefix(None);
    let mut wake = Wake::watching(
        objects.store_kind(),
        std::slice::from_ref(&prefix),
        Duration::from_millis(200),
        Duration::from_secs(60),
    );
    // Policies (uid, generation) already told about in this run.
    let mut told: HashSet<(String, i64)> = HashSet::new();
    wake.start(&*objects.store, objects.store.revision().unwrap_or(0));
    loop {
        if let Ok((all, _)) = objects.list(policies, None) {
            let present: HashSet<&str> = all.iter().map(|p| uid_of(&p.value)).collect();
            told.retain(|(uid, _)| present.contains(uid.as_str()));
            for p in all.iter() {
                let v = &p.value;
                let generation = generation_of(v).unwrap_or(1);
                if told.insert((uid_of(v).to_string(), generation)) {
                    emit(
                        objects,
                        v,
                        EventType::Warning,
                        REASON,
                        MESSAGE,
                        "localfargate",
                    );
                }
            }
        }
        wake.until(&*objects.store, under(std::slice::from_ref(&prefix)))
            .await;
    }
}
