use serde_json::json;

use super::*;
use crate::test_pods::pod;

fn refusal(spec: serde_json::Value) -> String {
    refusal_with(spec, &NoClaims)
}

fn refusal_with(spec: serde_json::Value, claims: &dyn ClaimLookup) -> String {
    let p = pod(json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec}));
    match validate(&p, claims) {
        Ok(()) => "admitted".to_string(),
        Err(r) => r.to_string(),
    }
}

fn with_sc(sc: serde_json::Value) -> serde_json::Value {
    json!({"containers": [{"name": "c", "image": "x", "securityContext": sc}]})
}

#[test]
fn ordinary_pod_is_admitted() {
    let spec = json!({
        "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80}],
            "securityContext": {"privileged": false, "allowPrivilegeEscalation": false,
                "capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"], "drop": ["ALL"]}}}],
        "securityContext": {"runAsUser": 0},
        "volumes": [
            {"name": "a", "emptyDir": {}}, {"name": "b", "secret": {"secretName": "s"}},
            {"name": "c", "configMap": {"name": "m"}}, {"name": "d", "projected": {"sources": []}},
            {"name": "e", "downwardAPI": {}}, {"name": "f", "nfs": {"server": "s", "path": "/"}},
            {"name": "g"}
        ]
    });
    assert_eq!(refusal(spec), "admitted");
}

#[test]
fn privileged() {
    assert_eq!(
        refusal(with_sc(json!({"privileged": true}))),
        "Pod not supported on Fargate: invalid SecurityContext fields: Privileged"
    );
}

#[test]
fn host_network_privileged_and_host_port() {
    // aws-efs-csi-driver#589, verbatim.
    let spec = json!({
        "hostNetwork": true,
        "containers": [{"name": "c", "image": "x", "securityContext": {"privileged": true},
            "ports": [{"containerPort": 9809, "hostPort": 9809}]}]
    });
    assert_eq!(
        refusal(spec),
        "Pod not supported on Fargate: fields not supported: HostNetwork, invalid SecurityContext fields: Privileged, port contains HostIP or HostPort"
    );
}

#[test]
fn host_network_and_host_port() {
    let spec = json!({
        "hostNetwork": true,
        "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 10250, "hostPort": 10250}]}]
    });
    assert_eq!(
        refusal(spec),
        "Pod not supported on Fargate: fields not supported: HostNetwork, port contains HostIP or HostPort"
    );
}

#[test]
fn privileged_and_unsupported_volume() {
    // freegroup/kube-s3#14, verbatim.
    let spec = json!({
        "containers": [{"name": "c", "image": "x", "securityContext": {"privileged": true}}],
        "volumes": [{"name": "mntdatas3fs", "hostPath": {"path": "/mnt/data-s3-fs"}}]
    });
    assert_eq!(
        refusal(spec),
        "Pod not supported on Fargate: invalid SecurityContext fields: Privileged, volumes not supported: mntdatas3fs is of an unsupported volume Type"
    );
}

#[test]
fn capabilities_match_literally() {
    assert_eq!(
        refusal(with_sc(json!({"capabilities": {"add": ["CAP_CHOWN"]}}))),
        "Pod not supported on Fargate: invalid SecurityContext fields: Capabilities added: CAP_CHOWN"
    );
    assert_eq!(
        refusal(with_sc(
            json!({"capabilities": {"add": ["SYS_PTRACE", "CHOWN", "NET_ADMIN"]}})
        )),
        "Pod not supported on Fargate: invalid SecurityContext fields: Capabilities added: SYS_PTRACE, NET_ADMIN"
    );
}

#[test]
fn allow_privilege_escalation() {
    assert_eq!(
        refusal(with_sc(json!({"allowPrivilegeEscalation": true}))),
        "Pod not supported on Fargate: invalid SecurityContext fields: AllowPrivilegeEscalation"
    );
}

#[test]
fn security_context_lists_join_within_and_across_containers() {
    let spec = json!({
        "initContainers": [{"name": "i", "image": "x", "securityContext": {"privileged": true}}],
        "containers": [
            {"name": "a", "image": "x", "securityContext": {
                "capabilities": {"add": ["SYS_ADMIN"]}, "allowPrivilegeEscalation": true, "privileged": true}},
            {"name": "b", "image": "x"}
        ]
    });
    assert_eq!(
        refusal(spec),
        "Pod not supported on Fargate: invalid SecurityContext fields: Privileged,Capabilities added: SYS_ADMIN, AllowPrivilegeEscalation, Privileged"
    );
}

#[test]
fn every_problem_at_once_in_clause_order() {
    let p = pod(json!({
        "metadata": {"name": "p", "namespace": "ns",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "d", "uid": "u"}]},
        "spec": {
            "hostNetwork": true, "hostPID": true, "hostIPC": true,
            "containers": [{"name": "c", "image": "x",
                "securityContext": {"privileged": true},
                "volumeDevices": [{"name": "raw", "devicePath": "/dev/xvda"}],
                "ports": [{"containerPort": 1, "hostIP": "10.0.0.1"}],
                "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
            "volumes": [{"name": "docker", "hostPath": {"path": "/var/run"}}, {"name": "raw", "awsElasticBlockStore": {"volumeID": "v"}}]
        }
    }));
    assert_eq!(
        validate(&p, &NoClaims).unwrap_err().to_string(),
        "Pod not supported on Fargate: DaemonSet not supported, fields not supported: HostNetwork, HostPID, HostIPC, \
         invalid SecurityContext fields: Privileged, volumes not supported: docker is of an unsupported volume Type, \
         raw is of an unsupported volume Type, volumeDevices not supported, port contains HostIP or HostPort, \
         resources not supported: nvidia.com/gpu"
    );
}

#[test]
fn gpus_and_extended_resources_are_refused_zero_is_not() {
    let spec = json!({"containers": [{"name": "c", "image": "x", "resources": {
        "requests": {"cpu": "1", "example.com/fpga": "2"},
        "limits": {"nvidia.com/gpu": "1", "vendor.io/zero": "0"}}}]});
    assert_eq!(
        refusal(spec),
        "Pod not supported on Fargate: resources not supported: example.com/fpga, nvidia.com/gpu"
    );
}

#[test]
fn persistent_volume_claims() {
    let mut claims = BTreeMap::new();
    claims.insert(
        ("ns".to_string(), "efs".to_string()),
        ClaimState::Bound {
            volume: "pv-efs".to_string(),
            csi_driver: Some(EFS_CSI_DRIVER.to_string()),
        },
    );
    claims.insert(
        ("ns".to_string(), "prometheus-server".to_string()),
        ClaimState::Bound {
            volume: "pvc-a996c34f".to_string(),
            csi_driver: Some("ebs.csi.aws.com".to_string()),
        },
    );
    claims.insert(
        ("ns".to_string(), "pending".to_string()),
        ClaimState::NotBound,
    );
    claims.insert(
        ("ns".to_string(), "legacy".to_string()),
        ClaimState::Bound {
            volume: "pv-host".to_string(),
            csi_driver: None,
        },
    );
    let claims = |ns: &str, name: &str| {
        claims
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
            .unwrap_or(ClaimState::NotFound)
    };
    let vol = |name: &str, claim: &str| json!({"name": name, "persistentVolumeClaim": {"claimName": claim}});
    let spec =
        |v: serde_json::Value| json!({"containers": [{"name": "c", "image": "x"}], "volumes": [v]});
    assert_eq!(refusal_with(spec(vol("data", "efs")), &claims), "admitted");
    assert_eq!(
        refusal_with(spec(vol("storage-volume", "prometheus-server")), &claims),
        "Pod not supported on Fargate: volumes not supported: storage-volume not supported because: PVC prometheus-server bound to invalid PV pvc-a996c34f with CSI Driver: ebs.csi.aws.com"
    );
    assert_eq!(
        refusal_with(spec(vol("persistence", "test-pvc")), &claims),
        "Pod not supported on Fargate: volumes not supported: persistence not supported because: persistentvolumeclaim \"test-pvc\" not found"
    );
    assert_eq!(
        refusal_with(spec(vol("d", "pending")), &claims),
        "Pod not supported on Fargate: volumes not supported: d not supported because: PVC pending not bound"
    );
    assert_eq!(
        refusal_with(spec(vol("d", "legacy")), &claims),
        "Pod not supported on Fargate: volumes not supported: d not supported because: PVC legacy bound to invalid PV pv-host with nil CSI spec"
    );
    assert_eq!(
        refusal(spec(vol("d", "anything"))),
        "admitted",
        "unknown claims are not checked"
    );
}

#[test]
fn mutation_and_annotations() {
    let mut p = pod(
        json!({"metadata": {"name": "p", "annotations": {"CapacityProvisioned": "16vCPU 120GB"}},
        "spec": {"containers": [{"name": "c", "image": "x"}], "priorityClassName": "low"}}),
    );
    mutate(&mut p, "fp-default");
    annotate(
        &mut p,
        FargateSize::SMALLEST,
        &LoggingStatus::configmap_not_found(),
    );
    let spec = p.spec.as_ref().unwrap();
    assert_eq!(spec.scheduler_name.as_deref(), Some("fargate-scheduler"));
    assert_eq!(
        spec.priority_class_name.as_deref(),
        Some("system-node-critical")
    );
    assert_eq!(spec.priority, Some(2_000_001_000));
    assert_eq!(
        p.metadata.labels.as_ref().unwrap()[PROFILE_LABEL],
        "fp-default"
    );
    let annotations = p.metadata.annotations.as_ref().unwrap();
    assert_eq!(
        annotations["CapacityProvisioned"], "0.25vCPU 0.5GB",
        "a user's value is overwritten"
    );
    assert_eq!(
        annotations["Logging"],
        "LoggingDisabled: LOGGING_CONFIGMAP_NOT_FOUND"
    );
    assert_eq!(LoggingStatus::Enabled.to_string(), "LoggingEnabled");
}
