use serde_json::json;

use super::*;
use crate::admission::NoClaims;
use crate::nodegroup::Taint;
use crate::profile::{FargateProfile, Selector};
use crate::test_pods::{container, pod};

fn profiles() -> ProfileIndex {
    ProfileIndex::new(vec![
        FargateProfile::active(
            "fp-default",
            vec![
                Selector::new("default", &[]),
                Selector::new("kube-system", &[("k8s-app", "kube-dns")]),
            ],
        ),
        FargateProfile::active(
            "fp-applications",
            vec![Selector::new("production", &[("compute", "fargate")])],
        ),
        FargateProfile::active("fp-all-prod", vec![Selector::new("prod*", &[])]),
    ])
}

fn workload(
    kind: &str,
    ns: &str,
    labels: serde_json::Value,
    annotations: serde_json::Value,
    spec: serde_json::Value,
) -> Workload {
    Workload {
        kind: kind.to_string(),
        namespace: ns.to_string(),
        name: "w".to_string(),
        replicas: 2,
        pod: pod(json!({"metadata": {"labels": labels, "annotations": annotations}, "spec": spec})),
        job_ttl: None,
    }
}

fn simple(cpu: &str, mem: &str) -> serde_json::Value {
    json!({"containers": [container("app", &[("cpu", cpu), ("memory", mem)], &[("cpu", cpu), ("memory", mem)])]})
}

fn run(idx: &ProfileIndex, groups: &[NodeGroup], w: &Workload) -> WorkloadPlan {
    let prices = PriceTable::builtin();
    let ctx = PlanContext {
        profiles: idx,
        node_groups: groups,
        rule: SelectionRule::Name,
        region: "us-east-1",
        rates: prices.fargate("us-east-1").unwrap(),
        prices: &prices,
        claims: &NoClaims,
    };
    ctx.plan_one(w)
}

#[test]
fn fargate_placement_with_size_and_cost() {
    let w = workload(
        "Deployment",
        "default",
        json!({"app": "web"}),
        json!({}),
        simple("500m", "1Gi"),
    );
    let p = run(&profiles(), &[], &w);
    assert_eq!(p.placement, PlacementKind::Fargate);
    assert_eq!(p.profile.as_deref(), Some("fp-default"));
    assert_eq!(p.capacity_provisioned.as_deref(), Some("0.5vCPU 2GB"));
    assert_eq!(
        (p.vcpu, p.memory_gib, p.storage_gib),
        (Some(0.5), Some(2.0), Some(20))
    );
    assert_eq!(p.hourly_usd, 0.02913);
    assert_eq!(p.monthly_usd, round_usd(0.02913 * 2.0 * 730.0));
    assert_eq!(
        p.reasons,
        ["matches profile fp-default selector 1 (namespace=default)"]
    );
    assert!(
        p.warnings.iter().any(|w| w
            .contains("overhead pushes this pod from 0.5vCPU 1GB to 0.5vCPU 2GB")
            && w.contains("at most 768Mi")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn several_matching_profiles_are_warned_about_with_each_rule() {
    let w = workload(
        "Pod",
        "production",
        json!({"compute": "fargate"}),
        json!({}),
        simple("1", "2Gi"),
    );
    let p = run(&profiles(), &[], &w);
    assert_eq!(
        p.profile.as_deref(),
        Some("fp-all-prod"),
        "name order: fp-all-prod < fp-applications"
    );
    assert_eq!(
        p.warnings[0],
        "profiles fp-all-prod, fp-applications all match; the pod goes to fp-all-prod under name, \
         any of them under random, fp-applications under most-specific; pin one with label eks.amazonaws.com/fargate-profile"
    );
}

#[test]
fn refused_with_every_reason() {
    let spec = json!({"hostNetwork": true, "containers": [
        {"name": "c", "image": "x", "securityContext": {"privileged": true},
         "resources": {"requests": {"cpu": "32"}}}]});
    let p = run(
        &profiles(),
        &[],
        &workload("Pod", "default", json!({}), json!({}), spec),
    );
    assert_eq!(p.placement, PlacementKind::Refused);
    assert_eq!(p.profile, None);
    assert_eq!(p.capacity_provisioned, None);
    assert_eq!(p.hourly_usd, 0.0);
    assert_eq!(
        p.reasons,
        [
            "matches profile fp-default selector 1 (namespace=default)",
            "Pod not supported on Fargate: fields not supported: HostNetwork, invalid SecurityContext fields: Privileged",
            "POD_CPU_MEM_EXCEEDS_MAX_FARGATE_SIZE: Your pod's cpu/memory requirements exceed the max Fargate configuration",
        ]
    );
}

#[test]
fn unmatched_goes_pending_without_node_groups_and_names_the_nearest_selector() {
    let w = workload(
        "Deployment",
        "production",
        json!({"compute": "ec2"}),
        json!({}),
        simple("1", "1Gi"),
    );
    let idx = ProfileIndex::new(vec![FargateProfile::active(
        "fp-applications",
        vec![Selector::new("production", &[("compute", "fargate")])],
    )]);
    let p = run(&idx, &[], &w);
    assert_eq!(p.placement, PlacementKind::Pending);
    assert_eq!(
        p.reasons,
        [
            "no Fargate profile matches; nearest selector is profile fp-applications selector 1 \
         (namespace=production,labels={compute=fargate}): label compute is \"ec2\", the selector wants \"fargate\"",
            "no node groups: the pod stays Pending (no nodes available to schedule pods)",
        ]
    );
    assert_eq!(
        (p.vcpu, p.memory_gib),
        (Some(1.0), Some(1.0)),
        "requests, not a Fargate size"
    );
}

fn groups() -> Vec<NodeGroup> {
    vec![
        NodeGroup {
            name: "batch".to_string(),
            instance_types: vec!["c5.xlarge".to_string()],
            desired_size: 1,
            labels: Default::default(),
            taints: vec![Taint {
                key: "dedicated".to_string(),
                value: "batch".to_string(),
                effect: "NoSchedule".to_string(),
            }],
        },
        NodeGroup {
            name: "general".to_string(),
            instance_types: vec!["m5.large".to_string()],
            desired_size: 2,
            ..Default::default()
        },
    ]
}

#[test]
fn unmatched_falls_back_to_a_node_group_with_a_cost_share() {
    let w = workload(
        "Deployment",
        "payments",
        json!({}),
        json!({}),
        simple("1", "2Gi"),
    );
    let p = run(&profiles(), &groups(), &w);
    assert_eq!(p.placement, PlacementKind::Ec2);
    assert_eq!(
        p.node_group.as_deref(),
        Some("general"),
        "the tainted group is skipped"
    );
    assert_eq!(p.hourly_usd, 0.048, "half an m5.large by CPU");
    assert_eq!(p.reasons[1], "runs on node group general (2 × m5.large)");
}

#[test]
fn no_fitting_node_group_is_pending_with_the_schedulers_message() {
    let w = workload(
        "Deployment",
        "payments",
        json!({}),
        json!({}),
        simple("3", "2Gi"),
    );
    let p = run(&profiles(), &groups(), &w);
    assert_eq!(p.placement, PlacementKind::Pending);
    assert_eq!(
        p.reasons[1],
        "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: batch}."
    );
}

#[test]
fn coredns_annotation_hides_a_match() {
    let w = workload(
        "Deployment",
        "kube-system",
        json!({"k8s-app": "kube-dns"}),
        json!({"eks.amazonaws.com/compute-type": "ec2"}),
        simple("100m", "70Mi"),
    );
    let p = run(&profiles(), &[], &w);
    assert_eq!(p.placement, PlacementKind::Pending);
    assert!(p.warnings[0].starts_with(
        "annotation eks.amazonaws.com/compute-type: ec2 keeps this pod off Fargate although profile fp-default matches"
    ), "{:?}", p.warnings);
}

#[test]
fn daemonsets_are_refused_on_fargate_and_count_nodes_on_ec2() {
    let ds = workload(
        "DaemonSet",
        "default",
        json!({}),
        json!({}),
        simple("100m", "100Mi"),
    );
    let p = run(&profiles(), &groups(), &ds);
    assert_eq!(p.placement, PlacementKind::Refused);
    assert_eq!(
        p.reasons[1],
        "Pod not supported on Fargate: DaemonSet not supported"
    );
    let ds = workload(
        "DaemonSet",
        "monitoring",
        json!({}),
        json!({}),
        simple("100m", "100Mi"),
    );
    let p = run(&profiles(), &groups(), &ds);
    assert_eq!(
        (p.placement, p.replicas),
        (PlacementKind::Ec2, 2),
        "the tainted node is not tolerated"
    );
    let p = run(&profiles(), &[], &ds);
    assert_eq!((p.placement, p.replicas), (PlacementKind::Pending, 0));
}

#[test]
fn job_without_ttl_and_request_limit_mismatch_are_warned() {
    let mut w = workload(
        "Job",
        "default",
        json!({}),
        json!({}),
        json!({"containers": [
        container("app", &[("cpu", "250m"), ("memory", "512Mi")], &[("cpu", "2"), ("memory", "512Mi")])]}),
    );
    w.job_ttl = Some(None);
    let p = run(&profiles(), &[], &w);
    assert_eq!(p.capacity_provisioned.as_deref(), Some("0.25vCPU 1GB"));
    let all = p.warnings.join("\n");
    assert!(all.contains("Job without ttlSecondsAfterFinished"), "{all}");
    assert!(
        all.contains("container app: cpu request 250m limit 2; Fargate sizes by requests"),
        "{all}"
    );
    assert!(
        all.contains("container app: cpu limit 2000m exceeds the provisioned 0.25 vCPU"),
        "{all}"
    );
    w.job_ttl = Some(Some(60));
    assert!(
        !run(&profiles(), &[], &w)
            .warnings
            .join("\n")
            .contains("ttlSecondsAfterFinished")
    );
}

#[test]
fn pinned_profile_problems_are_reasons() {
    let w = workload(
        "Pod",
        "default",
        json!({"eks.amazonaws.com/fargate-profile": "fp-applications"}),
        json!({}),
        simple("1", "1Gi"),
    );
    let p = run(&profiles(), &[], &w);
    assert_eq!(p.placement, PlacementKind::Pending);
    assert_eq!(
        p.reasons[0],
        "label eks.amazonaws.com/fargate-profile=fp-applications pins profile fp-applications, none of whose selectors match the pod"
    );
}

#[test]
fn invalid_quantities_are_refused_not_panics() {
    let w = workload(
        "Pod",
        "default",
        json!({}),
        json!({}),
        simple("lots", "1Gi"),
    );
    let p = run(&profiles(), &[], &w);
    assert_eq!(p.placement, PlacementKind::Refused);
    assert!(
        p.reasons[0].starts_with("the API server rejects the pod: container \"app\": cpu:"),
        "{:?}",
        p.reasons
    );
}

#[test]
fn totals_add_up() {
    let prices = PriceTable::builtin();
    let idx = profiles();
    let gs = groups();
    let ctx = PlanContext {
        profiles: &idx,
        node_groups: &gs,
        rule: SelectionRule::Name,
        region: "us-east-1",
        rates: prices.fargate("us-east-1").unwrap(),
        prices: &prices,
        claims: &NoClaims,
    };
    let ws = vec![
        workload(
            "Deployment",
            "default",
            json!({}),
            json!({}),
            simple("250m", "256Mi"),
        ),
        workload(
            "Deployment",
            "payments",
            json!({}),
            json!({}),
            simple("1", "1Gi"),
        ),
    ];
    let (plans, totals) = ctx.plan(&ws);
    assert_eq!(
        (
            totals.workloads,
            totals.pods,
            totals.fargate_pods,
            totals.ec2_pods
        ),
        (2, 4, 2, 2)
    );
    assert_eq!(
        plans[0].capacity_provisioned.as_deref(),
        Some("0.25vCPU 0.5GB")
    );
    let node_groups = (0.17 + 2.0 * 0.096) * 730.0;
    assert!((totals.node_groups_monthly_usd - node_groups).abs() < 1e-6);
    assert!((totals.monthly_usd - (plans[0].monthly_usd + node_groups)).abs() < 1e-6);
}
