//! End-to-end: the coredns EKS add-on manages the cluster's CoreDNS Deployment. Created with
//! `computeType: Fargate` it removes the `eks.amazonaws.com/compute-type: ec2` annotation (so
//! the CoreDNS pods go to a kube-system Fargate profile), sets `replicaCount` and the image of
//! the add-on's version; updated without it, the annotation comes back. Real kubectl, the
//! simulated runtime.

mod common;

use common::eks_request as eks;
use common::kube_cluster::{KubeCluster, skip_without_kubectl};
use serde_json::{Value, json};

const KUBECTL: &str = "1.33";
const COMPUTE_TYPE: &str = "eks.amazonaws.com/compute-type";

fn deployment(c: &KubeCluster) -> Value {
    c.json(
        KUBECTL,
        &[
            "get",
            "deployment",
            "coredns",
            "-n",
            "kube-system",
            "-o",
            "json",
        ],
    )
}

fn annotation(d: &Value) -> Option<String> {
    d["spec"]["template"]["metadata"]["annotations"][COMPUTE_TYPE]
        .as_str()
        .map(str::to_string)
}

#[test]
fn coredns_addon_compute_type_fargate_moves_coredns_to_fargate() {
    if skip_without_kubectl() {
        return;
    }
    let c = KubeCluster::create("dns");
    assert_eq!(annotation(&deployment(&c)).as_deref(), Some("ec2"));
    c.fargate_profile("fp-kube-system", "kube-system");

    let (status, created) = eks(
        &c.server.url,
        "POST",
        "/clusters/dns/addons",
        &json!({"addonName": "coredns",
                "configurationValues": json!({"computeType": "Fargate", "replicaCount": 3}).to_string()}),
    );
    assert_eq!(status, 200, "{created}");
    let version = created["addon"]["addonVersion"]
        .as_str()
        .unwrap()
        .to_string();

    c.eventually("the add-on to take the Deployment", || {
        let d = deployment(&c);
        annotation(&d).is_none()
            && d["spec"]["replicas"] == 3
            && d["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .is_some_and(|i| i.ends_with(&format!("/eks/coredns:{version}")))
    });
    // The rolled-out CoreDNS pods are Fargate's, placed by the kube-system profile.
    c.eventually("CoreDNS pods on Fargate", || {
        let pods = c.json(
            KUBECTL,
            &[
                "get",
                "pods",
                "-n",
                "kube-system",
                "-l",
                "k8s-app=kube-dns",
                "-o",
                "json",
            ],
        );
        let items = pods["items"].as_array().cloned().unwrap_or_default();
        items.iter().any(|p| {
            p["metadata"]["labels"]["eks.amazonaws.com/fargate-profile"] == "fp-kube-system"
                && p["spec"]["schedulerName"] == "fargate-scheduler"
        })
    });

    // An update without computeType puts the annotation back, as EKS's add-on does.
    let (status, update) = eks(
        &c.server.url,
        "POST",
        "/clusters/dns/addons/coredns/update",
        &json!({"configurationValues": "{}"}),
    );
    assert_eq!(status, 200, "{update}");
    assert_eq!(update["update"]["type"], "AddonUpdate");
    c.eventually("the annotation to come back", || {
        annotation(&deployment(&c)).as_deref() == Some("ec2")
    });
}

/// After UpdateClusterVersion the cluster's Kubernetes API reports the new version, and a new
/// Fargate pod's node runs the new kubelet.
#[test]
fn cluster_version_update_reaches_the_kubernetes_api_and_nodes() {
    if skip_without_kubectl() {
        return;
    }
    let c = KubeCluster::create("upgrade");
    let server_minor = |c: &KubeCluster| {
        let v = c.kubectl(KUBECTL, &["version", "-o", "json"]);
        serde_json::from_slice::<Value>(&v.stdout).ok()?["serverVersion"]["minor"]
            .as_str()
            .map(str::to_string)
    };
    assert_eq!(server_minor(&c).as_deref(), Some("34"));
    let (status, update) = eks(
        &c.server.url,
        "POST",
        "/clusters/upgrade/updates",
        &json!({"version": "1.35"}),
    );
    assert_eq!(status, 200, "{update}");
    c.eventually("the API to report 1.35", || {
        server_minor(&c).as_deref() == Some("35")
    });
    c.fargate_profile("fp-default", "default");
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: after, namespace: default}\n\
               spec:\n  containers:\n  - {name: c, image: nginx}\n";
    let created = c.apply(KUBECTL, pod, &[]);
    assert!(created.status.success());
    c.eventually("the pod's node on the new kubelet", || {
        let p = c.json(KUBECTL, &["get", "pod", "after", "-o", "json"]);
        let Some(node) = p["spec"]["nodeName"].as_str().map(str::to_string) else {
            return false;
        };
        let n = c.json(KUBECTL, &["get", "node", &node, "-o", "json"]);
        n["status"]["nodeInfo"]["kubeletVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("v1.35."))
    });
}
