//! Security groups for Fargate pods: which groups a pod gets (`SecurityGroupPolicy`, read by the
//! fargate-scheduler when it binds the pod, recorded in the `fargate.amazonaws.com/pod-sg`
//! annotation as on EKS) and their rules kept enforced on each such pod's interface as the pods
//! holding the groups its rules name come and go.
//!
//! Only pods a policy selected are filtered. A pod that holds only the cluster security group is
//! not: on AWS that group admits only its own members, here such a pod accepts traffic from any
//! pod on the machine (filtering every pod would rewrite every pod's rules on each pod start).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use localfargate_core::eks::CLUSTER_KIND;
use localfargate_core::security_groups::{
    self, FirewallRule, POD_SG_ANNOTATION, PodFirewall, SecurityGroup, Traffic,
};
use localfargate_registry::objects::{Objects, is_finished, namespace_of, resource, uid_of};
use localfargate_registry::service_ips;
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
    let account = pod["spec"]["serviceAccountName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    let account = objects
        .get_object(resource("", "serviceaccounts"), namespace, account)
        .ok()
        .flatten();
    let account_labels = account
        .as_ref()
        .and_then(|a| a.value["metadata"]["labels"].as_object());
    security_groups::groups_from_policies(
        policies.iter().map(|p| &p.value["spec"]),
        pod["metadata"]["labels"].as_object(),
        account_labels,
    )
}

/// The groups named in a pod's `fargate.amazonaws.com/pod-sg` annotation, if it has one.
pub fn annotated_groups(pod: &Value) -> Option<Vec<String>> {
    let text = pod["metadata"]["annotations"][POD_SG_ANNOTATION].as_str()?;
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

/// Which addresses hold which group: every running pod of the cluster with an address, by its
/// annotated groups, else the cluster security group.
fn members<'a>(
    pods: impl IntoIterator<Item = &'a Value>,
    cluster_group: Option<&str>,
) -> BTreeMap<String, BTreeSet<Ipv4Addr>> {
    let mut out: BTreeMap<String, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    for pod in pods {
        if is_finished(pod) {
            continue;
        }
        let Some(ip) = pod["status"]["podIP"]
            .as_str()
            .and_then(|s| s.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        let groups = annotated_groups(pod)
            .unwrap_or_else(|| cluster_group.map(str::to_string).into_iter().collect());
        for g in groups {
            out.entry(g).or_default().insert(ip);
        }
    }
    out
}

/// What a pod's interface enforces, or `None` for a pod no policy selected. Egress to the
/// service range is allowed: the host translates a ClusterIP only after the packet left the
/// pod, and the endpoint's own rules apply to the translated connection.
fn firewall_of(
    pod: &Value,
    model: &[SecurityGroup],
    members: &BTreeMap<String, BTreeSet<Ipv4Addr>>,
    service_range: (Ipv4Addr, u8),
) -> Result<Option<PodFirewall>, security_groups::RuleError> {
    let Some(groups) = annotated_groups(pod) else {
        return Ok(None);
    };
    let mut fw = security_groups::firewall(&groups, model, members)?;
    fw.egress.push(FirewallRule {
        traffic: Traffic::All,
        peers: vec![service_range],
    });
    Ok(Some(fw))
}

/// The firewall of one pod, reading the cluster's pods: for the node agent, before the pod's
/// containers start.
pub fn firewall_for(objects: &Objects, pod: &Value) -> Result<Option<PodFirewall>, String> {
    if annotated_groups(pod).is_none() {
        return Ok(None);
    }
    let (groups, cluster_group) = model(objects);
    let (pods, _) = objects
        .list(resource("", "pods"), None)
        .map_err(|e| e.to_string())?;
    let members = members(pods.iter().map(|p| &p.value), cluster_group.as_deref());
    firewall_of(pod, &groups, &members, service_ips::range(objects)).map_err(|e| e.to_string())
}

/// Keeps each filtered pod's rules current as the pods holding the groups they name change.
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
    // What each pod (by uid) was last given, so unchanged rules are not rewritten.
    let mut applied: HashMap<String, PodFirewall> = HashMap::new();
    wake.start(&*objects.store, objects.store.revision().unwrap_or(0));
    loop {
        sync(&ctx, &mut applied).await;
        wake.until(&*objects.store, under(std::slice::from_ref(&pods_prefix)))
            .await;
    }
}

async fn sync(ctx: &ClusterContext, applied: &mut HashMap<String, PodFirewall>) {
    let objects = &ctx.objects;
    let Ok((pods, _)) = objects.list(resource("", "pods"), None) else {
        return;
    };
    let filtered: Vec<&Value> = pods
        .iter()
        .map(|p| &p.value)
        .filter(|p| annotated_groups(p).is_some() && !is_finished(p))
        .collect();
    let present: BTreeSet<&str> = filtered.iter().map(|p| uid_of(p)).collect();
    applied.retain(|uid, _| present.contains(uid.as_str()));
    if filtered.is_empty() {
        return;
    }
    let (groups, cluster_group) = model(objects);
    let members = members(pods.iter().map(|p| &p.value), cluster_group.as_deref());
    let range = service_ips::range(objects);
    for pod in filtered {
        let uid = uid_of(pod);
        let fw = match firewall_of(pod, &groups, &members, range) {
            Ok(Some(fw)) => fw,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(pod = uid, error = %e, "security group rules");
                continue;
            }
        };
        if applied.get(uid) == Some(&fw) {
            continue;
        }
        // A pod whose sandbox is not made yet gets its rules from the node agent.
        let Some(sandbox) = crate::node_agent::sandbox_of(&*ctx.runtime, uid).await else {
            continue;
        };
        match ctx.runtime.set_firewall(&sandbox, Some(&fw)).await {
            Ok(()) => {
                applied.insert(uid.to_string(), fw);
            }
            Err(e) => tracing::warn!(pod = uid, error = %e, "enforcing security groups"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ip: &str, groups: Option<&str>) -> Value {
        let mut p = json!({"metadata": {"name": name, "namespace": "default", "uid": name},
                           "status": {"podIP": ip, "phase": "Running"}});
        if let Some(g) = groups {
            p["metadata"]["annotations"] = json!({POD_SG_ANNOTATION: g});
        }
        p
    }

    #[test]
    fn groups_are_held_by_annotation_else_by_the_cluster_group() {
        let pods = [
            pod("web", "10.0.1.5", Some("sg-web, sg-cluster")),
            pod("client", "10.0.1.6", Some("sg-client")),
            pod("plain", "10.0.1.7", None),
        ];
        let m = members(pods.iter(), Some("sg-cluster"));
        let ips = |g: &str| -> Vec<String> { m[g].iter().map(|i| i.to_string()).collect() };
        assert_eq!(ips("sg-cluster"), vec!["10.0.1.5", "10.0.1.7"]);
        assert_eq!(ips("sg-web"), vec!["10.0.1.5"]);
        assert_eq!(ips("sg-client"), vec!["10.0.1.6"]);
        let web: SecurityGroup = serde_json::from_value(json!({"groupId": "sg-web",
            "ipPermissions": [{"ipProtocol": "tcp", "fromPort": 80, "toPort": 80,
                               "userIdGroupPairs": [{"groupId": "sg-client"}]}]}))
        .unwrap();
        let fw = firewall_of(
            &pods[0],
            &[web, security_groups::cluster_security_group("sg-cluster")],
            &m,
            (Ipv4Addr::new(10, 100, 0, 0), 16),
        )
        .unwrap()
        .unwrap();
        assert_eq!(fw.groups, vec!["sg-web", "sg-cluster"]);
        // The client (by group) on port 80; the cluster group's members on anything.
        assert_eq!(fw.ingress.len(), 2, "{fw:?}");
        assert!(
            fw.egress
                .iter()
                .any(|r| r.peers == vec![(Ipv4Addr::new(10, 100, 0, 0), 16)])
        );
        assert_eq!(
            firewall_of(&pods[2], &[], &m, (Ipv4Addr::new(10, 100, 0, 0), 16)).unwrap(),
            None
        );
    }
}
