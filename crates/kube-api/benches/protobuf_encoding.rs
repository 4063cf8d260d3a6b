//! A list of 10,000 pods as protobuf versus JSON: encoding and decoding time, and bytes.
//! Run with `cargo bench -p localfargate-kube-api --bench protobuf_encoding`.
//!
//! `respond path` is what a protobuf list answer costs in the server today: the handler's JSON
//! bytes are parsed back and re-encoded (`protobuf::respond`).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use localfargate_kube_api::protobuf;
use serde_json::{Value, json};

const PODS: usize = 10_000;

/// A pod as the server stores it once it runs: metadata with labels, an owner and managed
/// fields, two containers with resources and a probe, and a running status.
fn pod(i: usize) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("web-{i:05}"),
            "namespace": format!("team-{}", i % 20),
            "uid": format!("0b3c4a8e-2f0b-4a5e-9b8e-{i:012}"),
            "resourceVersion": (1000 + i).to_string(),
            "creationTimestamp": "2026-11-23T18:14:25Z",
            "labels": {"app": format!("app-{}", i % 50), "pod-template-hash": "5d8f7c9b6"},
            "annotations": {"CapacityProvisioned": "0.5vCPU 2GB", "Logging": "LoggingDisabled: LOGGING_CONFIGMAP_NOT_FOUND"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f7c9b6",
                                  "uid": "7f0e6d5c-4b3a-2918-0706-050403020100", "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                               "time": "2026-11-23T18:14:25Z", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}],
        },
        "spec": {
            "containers": [
                {"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                 "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "500m", "memory": "1Gi"}},
                 "readinessProbe": {"httpGet": {"path": "/healthz", "port": 80, "scheme": "HTTP"},
                                    "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
                 "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                 "imagePullPolicy": "IfNotPresent"},
                {"name": "sidecar", "image": "busybox:1.36", "command": ["sh", "-c", "sleep infinity"],
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                 "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                 "imagePullPolicy": "IfNotPresent"},
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "schedulerName": "fargate-scheduler",
            "nodeName": format!("fargate-ip-10-0-{}-{}.ec2.internal", i / 250, i % 250),
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
        },
        "status": {
            "phase": "Running",
            "podIP": format!("10.0.{}.{}", i / 250, i % 250),
            "hostIP": format!("10.0.{}.{}", i / 250, i % 250),
            "qosClass": "Burstable",
            "startTime": "2026-11-23T18:14:26Z",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-23T18:14:25Z"},
                {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-11-23T18:14:26Z"},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2026-11-23T18:14:30Z"},
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-23T18:14:30Z"},
            ],
            "containerStatuses": [
                {"name": "app", "ready": true, "started": true, "restartCount": 0, "image": "nginx:1.27",
                 "imageID": "docker.io/library/nginx@sha256:0123456789abcdef", "containerID": format!("containerd://{i:064}"),
                 "state": {"running": {"startedAt": "2026-11-23T18:14:29Z"}}},
                {"name": "sidecar", "ready": true, "started": true, "restartCount": 0, "image": "busybox:1.36",
                 "imageID": "docker.io/library/busybox@sha256:fedcba9876543210", "containerID": format!("containerd://{i:063}1"),
                 "state": {"running": {"startedAt": "2026-11-23T18:14:29Z"}}},
            ],
        },
    })
}

fn bench(c: &mut Criterion) {
    let list = json!({
        "apiVersion": "v1",
        "kind": "PodList",
        "metadata": {"resourceVersion": "20000"},
        "items": (0..PODS).map(pod).collect::<Vec<_>>(),
    });
    let json_bytes = serde_json::to_vec(&list).unwrap();
    let protobuf_bytes = protobuf::encode(&list).unwrap();
    println!(
        "a list of {PODS} pods: JSON {} bytes, protobuf {} bytes ({:.0}% of JSON)",
        json_bytes.len(),
        protobuf_bytes.len(),
        100.0 * protobuf_bytes.len() as f64 / json_bytes.len() as f64
    );
    let mut group = c.benchmark_group("podlist_10k");
    group.sample_size(10);
    group.throughput(Throughput::Elements(PODS as u64));
    group.bench_function("encode json", |b| {
        b.iter(|| serde_json::to_vec(black_box(&list)).unwrap())
    });
    group.bench_function("encode protobuf", |b| {
        b.iter(|| protobuf::encode(black_box(&list)).unwrap())
    });
    group.bench_function("respond path (json, parse, protobuf)", |b| {
        b.iter(|| {
            let bytes = serde_json::to_vec(black_box(&list)).unwrap();
            let value: Value = serde_json::from_slice(&bytes).unwrap();
            protobuf::encode(&value).unwrap()
        })
    });
    group.bench_function("decode json", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(&json_bytes)).unwrap())
    });
    group.bench_function("decode protobuf", |b| {
        b.iter(|| protobuf::decode_object(black_box(&protobuf_bytes)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
