//! End-to-end: an UpdateNodegroupVersion drains the node group's nodes, so a pod there that a
//! PodDisruptionBudget allows no disruption of makes the update fail with PodEvictionFailure (the
//! node group keeps its version); with `force` it succeeds. Real kubectl, the simulated runtime.

mod common;

use common::eks_request as eks;
use common::kube_cluster::{KubeCluster, skip_without_kubectl, text};
use serde_json::json;

const KUBECTL: &str = "1.33";

const APP: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: db\n  namespace: default\n  \
labels: {app: db}\nspec:\n  containers:\n  - {name: c, image: nginx}\n---\n\
apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: db, namespace: default}\n\
spec:\n  minAvailable: 1\n  selector:\n    matchLabels: {app: db}\n";

/// A node group `ng` in cluster `name` with `app` applied (a pod `db` on it and a budget that
/// allows it no disruption): its version update fails with PodEvictionFailure.
fn blocked_version_update(name: &str, app: &str) -> KubeCluster {
    let c = KubeCluster::create(name);
    let subnets: Vec<String> = (4..=5)
        .map(|i| format!("subnet-0a1b2c3d4e5f6000{i}"))
        .collect();
    let (status, created) = eks(
        &c.server.url,
        "POST",
        &format!("/clusters/{name}/node-groups"),
        &json!({"nodegroupName": "ng", "subnets": subnets,
                "nodeRole": "arn:aws:iam::000000000000:role/node",
                "scalingConfig": {"minSize": 1, "maxSize": 1, "desiredSize": 1}}),
    );
    assert_eq!(status, 200, "{created}");
    let nodegroup = format!("/clusters/{name}/node-groups/ng");
    c.eventually("the node group ACTIVE", || {
        eks(&c.server.url, "GET", &nodegroup, &json!({})).1["nodegroup"]["status"] == "ACTIVE"
    });
    let applied = c.apply(KUBECTL, app, &[]);
    assert!(applied.status.success(), "{}", text(&applied));
    c.eventually("the pod on the node group and the budget at 0", || {
        let pod = c.json(KUBECTL, &["get", "pod", "db", "-o", "json"]);
        let pdb = c.json(KUBECTL, &["get", "pdb", "db", "-o", "json"]);
        pod["status"]["phase"] == "Running" && pdb["status"]["disruptionsAllowed"] == 0
    });

    let (status, started) = eks(
        &c.server.url,
        "POST",
        &format!("{nodegroup}/update-version"),
        &json!({}),
    );
    assert_eq!(status, 200, "{started}");
    let id = started["update"]["id"].as_str().unwrap().to_string();
    let path = format!("/clusters/{name}/updates/{id}?nodegroupName=ng");
    c.eventually("the update to fail", || {
        eks(&c.server.url, "GET", &path, &json!({})).1["update"]["status"] == "Failed"
    });
    let failed = eks(&c.server.url, "GET", &path, &json!({})).1;
    let error = &failed["update"]["errors"][0];
    assert_eq!(error["errorCode"], "PodEvictionFailure", "{failed}");
    assert_eq!(
        error["errorMessage"],
        "Reached max retries while trying to evict pods from nodes in node group ng"
    );
    c
}

#[test]
fn a_budget_selecting_by_expression_blocks_the_update_too() {
    if skip_without_kubectl() {
        return;
    }
    let app = APP.replace(
        "matchLabels: {app: db}",
        "matchExpressions: [{key: app, operator: In, values: [db]}]",
    );
    assert_ne!(app, APP);
    blocked_version_update("drainexpr", &app);
}

#[test]
fn nodegroup_version_update_fails_on_a_blocking_disruption_budget() {
    if skip_without_kubectl() {
        return;
    }
    let c = blocked_version_update("drain", APP);
    c.eventually("the node group ACTIVE again", || {
        eks(
            &c.server.url,
            "GET",
            "/clusters/drain/node-groups/ng",
            &json!({}),
        )
        .1["nodegroup"]["status"]
            == "ACTIVE"
    });

    // `force` drains regardless of the budget.
    let (status, forced) = eks(
        &c.server.url,
        "POST",
        "/clusters/drain/node-groups/ng/update-version",
        &json!({"force": true}),
    );
    assert_eq!(status, 200, "{forced}");
    let id = forced["update"]["id"].as_str().unwrap().to_string();
    let path = format!("/clusters/drain/updates/{id}?nodegroupName=ng");
    c.eventually("the forced update to succeed", || {
        eks(&c.server.url, "GET", &path, &json!({})).1["update"]["status"] == "Successful"
    });
}
