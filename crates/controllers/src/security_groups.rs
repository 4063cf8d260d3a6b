//! Security groups for Fargate pods: which groups a pod gets (`SecurityGroupPolicy`, read by the
//! fargate-scheduler when it binds the pod, recorded in the `fargate.amazonaws.com/pod-sg`
//! annotation as on EKS; the cluster security group otherwise) and their rules kept enforced
//! for every pod of the cluster by the runtime (`runtime::firewall`: one table on the host, one
//! set of member addresses per group).
//!
//! The node agent adds a pod to its groups' sets before its containers start ([`admit`]); this
//! controller keeps the sets equal to the running pods (a pod's start or end changes only its
//! own elements) and the rules equal to the groups' rules.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use localfargate_core::eks::CLUSTER_KIND;
use localfargate_core::security_groups::{
    self, GroupRules, POD_SG_ANNOTATION, SecurityGroup, SecurityGroupPolicySpec,
};
use localfargate_registry::meta::{annotation_of, labels_of};
use localfargate_registry::objects::{
    Objects, is_finished, name_of, namespace_of, resource, uid_of,
};
use localfargate_registry::typed::PodView;
use localfargate_runtime::firewall::Member;
use serde::Deserialize;
use serde_json::Value;

use crate::context::ClusterContext;
use crate::wake::{Wake, under};

const POLICY_GROUP: &str = "vpcresources.k8s.aws";
const POLICY_PLURAL: &str = "securitygrouppolicies";

/// The groups the namespace's `SecurityGroupPolicy` objects give `pod` (empty: none selects it,
/// and it keeps the cluster security group).
pub fn policy_groups(objects: &Objects, pod: &Value) -> Vec<String> {
    let Some(rt) = objects
        .catalog()
        .ok()
        .and_then(|c| c.custom(POLICY_GROUP, POLICY_PLURAL)?.storage())
    else {
        return Vec::new();
    };
    let namespace = namespace_of(pod);
    let Ok((policies, _)) = objects.list(rt, Some(namespace)) else {
        return Vec::new();
    };
    if policies.is_empty() {
        return Vec::new();
    }
    let account = PodView::of(pod).service_account_name();
    let account = objects
        .get_object(resource("", "serviceaccounts"), namespace, account)
        .ok()
        .flatten();
    let account_labels = account.as_ref().and_then(|a| labels_of(&a.value));
    // A SecurityGroupPolicy is a custom resource (no k8s-openapi type): its spec is core's
    // `SecurityGroupPolicySpec`. One that does not decode selects nothing.
    let specs: Vec<SecurityGroupPolicySpec> = policies
        .iter()
        .filter_map(|p| {
            let spec = p.value.get("spec")?;
            SecurityGroupPolicySpec::deserialize(spec)
                .map_err(|e| {
                    tracing::warn!(policy = name_of(&p.value), error = %e, "a SecurityGroupPolicy that does not decode selects nothing");
                })
                .ok()
        })
        .collect();
    security_groups::groups_from_policies(&specs, labels_of(pod), account_labels)
}

/// The groups named in a pod's `fargate.amazonaws.com/pod-sg` annotation, if it has one.
pub fn annotated_groups(pod: &Value) -> Option<Vec<String>> {
    let text = annotation_of(pod, POD_SG_ANNOTATION)?;
    Some(
        text.split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// The VPC model's groups and the cluster's own security group.
pub fn model(objects: &Objects) -> (Vec<SecurityGroup>, Option<String>) {
    let mut groups: Vec<SecurityGroup> = objects
        .settings
        .network
        .security_groups()
        .cloned()
        .collect();
    let cluster_group = objects
        .store
        .get(CLUSTER_KIND, &objects.cluster)
        .ok()
        .flatten()
        .and_then(|c| {
            c.value["resource"]["resourcesVpcConfig"]["clusterSecurityGroupId"]
                .as_str()
                .map(str::to_string)
        });
    if let Some(id) = &cluster_group
        && !groups.iter().any(|g| &g.group_id == id)
    {
        groups.push(security_groups::cluster_security_group(id));
    }
    (groups, cluster_group)
}

/// The groups a pod holds: its annotated groups, else the cluster security group.
fn groups_of(pod: &Value, cluster_group: Option<&str>) -> Vec<String> {
    let mut groups = annotated_groups(pod)
        .unwrap_or_else(|| cluster_group.map(str::to_string).into_iter().collect());
    groups.sort();
    groups.dedup();
    groups
}

fn pod_ip(pod: &Value) -> Option<Ipv4Addr> {
    PodView::of(pod).pod_ip()?.parse().ok()
}

/// Which groups each running pod with an address holds, by address.
fn members<'a>(
    pods: impl IntoIterator<Item = &'a Value>,
    cluster_group: Option<&str>,
) -> BTreeMap<Ipv4Addr, Vec<String>> {
    let mut out = BTreeMap::new();
    for pod in pods {
        if is_finished(pod) {
            continue;
        }
        let Some(ip) = pod_ip(pod) else {
            continue;
        };
        out.insert(ip, groups_of(pod, cluster_group));
    }
    out
}

/// The rules of every group of the model and every group a pod holds.
fn rules(
    model: &[SecurityGroup],
    members: &BTreeMap<Ipv4Addr, Vec<String>>,
) -> Result<Vec<GroupRules>, security_groups::RuleError> {
    let mut held: BTreeSet<String> = model.iter().map(|g| g.group_id.clone()).collect();
    held.extend(members.values().flatten().cloned());
    security_groups::rules_of(&held, model)
}

/// Puts a pod that is about to start (at `ip`) in its groups' member sets, so its groups hold
/// before any of its containers runs.
pub async fn admit(ctx: &ClusterContext, pod: &Value, ip: Ipv4Addr) -> Result<(), String> {
    let (_, cluster_group) = model(&ctx.objects);
    let groups = groups_of(pod, cluster_group.as_deref());
    ctx.runtime
        .change_security_group_members(&ctx.objects.cluster, &[(ip, groups)], &[])
        .await
        .map_err(|e| e.to_string())
}

/// What the runtime was last given.
#[derive(Default)]
struct Enforced {
    /// `None`: replace the whole table at the next sync (at start, and after a failure).
    rules: Option<Vec<GroupRules>>,
    members: BTreeMap<Ipv4Addr, Vec<String>>,
    /// Finished pods whose elements were taken out (the node agent may have added a pod this
    /// controller never saw running).
    cleared: BTreeSet<String>,
}

/// Keeps the member sets and the rules current as pods come and go.
pub async fn run(ctx: Arc<ClusterContext>) {
    if ctx.runtime.kind() == localfargate_runtime::RuntimeKind::Simulated {
        return;
    }
    let objects = &ctx.objects;
    let kind = objects.store_kind().to_string();
    let pods_prefix = resource("", "pods").key_prefix(None);
    let mut wake = Wake::watching(
        &kind,
        std::slice::from_ref(&pods_prefix),
        Duration::from_millis(200),
        Duration::from_secs(30),
    );
    let mut enforced = Enforced::default();
    wake.start(&*objects.store, objects.store.revision().unwrap_or(0));
    loop {
        sync(&ctx, &mut enforced).await;
        wake.until(&*objects.store, under(std::slice::from_ref(&pods_prefix)))
            .await;
    }
}

async fn sync(ctx: &ClusterContext, enforced: &mut Enforced) {
    let objects = &ctx.objects;
    let Ok((pods, _)) = objects.list(resource("", "pods"), None) else {
        return;
    };
    let (model, cluster_group) = model(objects);
    let desired = members(pods.iter().map(|p| &p.value), cluster_group.as_deref());
    let rules = match rules(&model, &desired) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "security group rules");
            return;
        }
    };
    let cluster = objects.cluster.as_str();
    let runtime = &ctx.runtime;
    if enforced.rules.is_none() {
        replace_table(ctx, enforced, rules, desired).await;
        return;
    }
    if enforced.rules.as_ref() != Some(&rules) {
        match runtime
            .set_security_group_rules(cluster, &rules, None)
            .await
        {
            Ok(()) => enforced.rules = Some(rules.clone()),
            Err(e) => {
                tracing::warn!(error = %e, "enforcing security group rules");
                enforced.rules = None;
                return;
            }
        }
    }
    let (add, mut remove) = member_changes(&enforced.members, &desired);
    let uids: BTreeSet<&str> = pods.iter().map(|p| uid_of(&p.value)).collect();
    enforced.cleared.retain(|u| uids.contains(u.as_str()));
    for pod in pods.iter().map(|p| &p.value).filter(|p| is_finished(p)) {
        if !enforced.cleared.insert(uid_of(pod).to_string()) {
            continue;
        }
        if let Some(ip) = pod_ip(pod)
            && !desired.contains_key(&ip)
            && !enforced.members.contains_key(&ip)
        {
            remove.push((ip, groups_of(pod, cluster_group.as_deref())));
        }
    }
    if add.is_empty() && remove.is_empty() {
        return;
    }
    match runtime
        .change_security_group_members(cluster, &add, &remove)
        .await
    {
        Ok(()) => enforced.members = desired,
        Err(e) => {
            // A set out of step with what was last given (an element already gone): the next
            // sync replaces the table.
            tracing::warn!(error = %e, "security group members; replacing the table");
            enforced.rules = None;
            replace_table(ctx, enforced, rules, desired).await;
        }
    }
}

/// Writes the cluster's whole table, its rules and every member, and records it as enforced
/// (left `None` on failure, so the next sync tries again).
async fn replace_table(
    ctx: &ClusterContext,
    enforced: &mut Enforced,
    rules: Vec<GroupRules>,
    desired: BTreeMap<Ipv4Addr, Vec<String>>,
) {
    let all: Vec<Member> = desired.iter().map(|(ip, g)| (*ip, g.clone())).collect();
    match ctx
        .runtime
        .set_security_group_rules(ctx.objects.cluster.as_str(), &rules, Some(&all))
        .await
    {
        Ok(()) => {
            enforced.rules = Some(rules);
            enforced.members = desired;
        }
        Err(e) => tracing::warn!(error = %e, "enforcing security groups"),
    }
}

/// The pods to add to and take out of the sets: a pod whose groups changed (or whose address
/// went to another pod) is taken out of its old ones and put in its new ones.
fn member_changes(
    applied: &BTreeMap<Ipv4Addr, Vec<String>>,
    desired: &BTreeMap<Ipv4Addr, Vec<String>>,
) -> (Vec<Member>, Vec<Member>) {
    let add = desired
        .iter()
        .filter(|(ip, g)| applied.get(ip) != Some(g))
        .map(|(ip, g)| (*ip, g.clone()))
        .collect();
    let remove = applied
        .iter()
        .filter(|(ip, g)| desired.get(ip) != Some(g))
        .map(|(ip, g)| (*ip, g.clone()))
        .collect();
    (add, remove)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_in(name: &str, ip: &str, groups: Option<&str>, phase: &str) -> Value {
        let annotations = groups.map(|g| json!({POD_SG_ANNOTATION: g}));
        json!({"metadata": {"name": name, "namespace": "default", "uid": name,
                            "annotations": annotations},
               "spec": {"serviceAccountName": "web"},
               "status": {"podIP": ip, "phase": phase}})
    }

    fn pod(name: &str, ip: &str, groups: Option<&str>) -> Value {
        pod_in(name, ip, groups, "Running")
    }

    #[test]
    fn groups_are_held_by_annotation_else_by_the_cluster_group() {
        let done = pod_in("done", "10.0.1.8", None, "Succeeded");
        let pods = [
            pod("web", "10.0.1.5", Some("sg-web, sg-cluster")),
            pod("client", "10.0.1.6", Some("sg-client")),
            pod("plain", "10.0.1.7", None),
            done,
        ];
        let view = PodView::of(&pods[0]);
        assert_eq!(
            (view.service_account_name(), view.pod_ip()),
            ("web", Some("10.0.1.5"))
        );
        let m = members(pods.iter(), Some("sg-cluster"));
        let groups = |ip: &str| m[&ip.parse::<Ipv4Addr>().unwrap()].clone();
        assert_eq!(groups("10.0.1.5"), vec!["sg-cluster", "sg-web"]);
        assert_eq!(groups("10.0.1.6"), vec!["sg-client"]);
        assert_eq!(groups("10.0.1.7"), vec!["sg-cluster"]);
        assert_eq!(m.len(), 3, "a finished pod holds nothing: {m:?}");
        // Every held group gets rules, the model's as written, an unknown one EC2's defaults.
        let web: SecurityGroup = serde_json::from_value(json!({"groupId": "sg-web",
            "ipPermissions": [{"ipProtocol": "tcp", "fromPort": 80, "toPort": 80,
                               "userIdGroupPairs": [{"groupId": "sg-client"}]}]}))
        .unwrap();
        let r = rules(
            &[web, security_groups::cluster_security_group("sg-cluster")],
            &m,
        )
        .unwrap();
        let ids: Vec<&str> = r.iter().map(|g| g.group_id.as_str()).collect();
        assert_eq!(ids, vec!["sg-client", "sg-cluster", "sg-web"]);
        assert!(r[0].ingress.is_empty());
    }

    #[test]
    fn a_pod_start_or_end_changes_only_its_own_elements() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let g = |s: &str| vec![s.to_string()];
        let applied = BTreeMap::from([
            (ip("10.0.1.5"), g("sg-cluster")),
            (ip("10.0.1.6"), g("sg-client")),
        ]);
        let mut desired = applied.clone();
        desired.insert(ip("10.0.1.7"), g("sg-cluster"));
        desired.remove(&ip("10.0.1.6"));
        let (add, remove) = member_changes(&applied, &desired);
        assert_eq!(add, vec![(ip("10.0.1.7"), g("sg-cluster"))]);
        assert_eq!(remove, vec![(ip("10.0.1.6"), g("sg-client"))]);
        // An address reused by a pod of other groups: out of the old ones, into the new.
        desired.insert(ip("10.0.1.5"), g("sg-web"));
        let (add, remove) = member_changes(&applied, &desired);
        assert!(add.contains(&(ip("10.0.1.5"), g("sg-web"))));
        assert!(remove.contains(&(ip("10.0.1.5"), g("sg-cluster"))));
    }
}
