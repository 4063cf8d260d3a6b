//! End-to-end: EKS does not support Fargate Spot, so `capacityType: FARGATE_SPOT` in an eksctl
//! config and the `eks.amazonaws.com/fargate-capacity-type` pod annotation are warned about,
//! naming the field, by `plan`, by `apply -f` and by the Fargate webhook (a `Warning:` header
//! kubectl prints), instead of being ignored silently.

mod common;

use std::process::Command;

use common::kube_cluster::{KubeCluster, skip_without_kubectl, text};

const CONFIG: &str = "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\n\
metadata: {name: spot, region: us-east-1}\n\
fargateProfiles:\n- name: fp-default\n  selectors:\n  - namespace: default\n\
- name: fp-spot\n  capacityType: FARGATE_SPOT\n  selectors:\n  - namespace: batch\n";

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: spotty\n  namespace: default\n  \
annotations:\n    eks.amazonaws.com/fargate-capacity-type: SPOT\nspec:\n  containers:\n  - name: c\n    \
image: nginx\n    resources:\n      requests: {cpu: 250m, memory: 256Mi}\n";

const FIELD: &str = "fargateProfiles[1].capacityType: \"FARGATE_SPOT\" (profile fp-spot) is ignored: \
EKS does not support Fargate Spot";
const ANNOTATION: &str = "metadata.annotations[eks.amazonaws.com/fargate-capacity-type]: \"SPOT\" is ignored: \
EKS does not support Fargate Spot";

#[test]
fn plan_warns_about_fargate_spot() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cluster.yaml"), CONFIG).unwrap();
    std::fs::write(dir.path().join("pod.yaml"), POD).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_localfargate"))
        .current_dir(dir.path())
        .args([
            "plan",
            "--config",
            "cluster.yaml",
            "-f",
            "pod.yaml",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let global: Vec<&str> = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str())
        .collect();
    assert!(global.iter().any(|w| w.contains(FIELD)), "{global:?}");
    let pod_warnings = report["workloads"][0]["warnings"].to_string();
    assert!(
        pod_warnings.contains("eks.amazonaws.com/fargate-capacity-type"),
        "{pod_warnings}"
    );
}

#[test]
fn apply_and_the_webhook_warn_about_fargate_spot() {
    if skip_without_kubectl() {
        return;
    }
    let c = KubeCluster::create("spot");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), CONFIG).unwrap();
    let applied = common::localfargate(&c.server, &["apply", "-f", file.path().to_str().unwrap()]);
    assert!(applied.status.success(), "{}", text(&applied));
    let stderr = String::from_utf8_lossy(&applied.stderr);
    assert!(
        stderr.contains("Warning: ") && stderr.contains(FIELD),
        "{stderr}"
    );

    let created = c.apply("1.33", POD, &[]);
    assert!(created.status.success(), "{}", text(&created));
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(
        stderr.contains("Warning: ") && stderr.contains(ANNOTATION),
        "{stderr}"
    );
}
