//! What the front end's decode checks cost per written pod: `openapi::check_fields` (Go's JSON
//! types, quantities and timestamps in their stored form, unknown fields), and that walk alone, beside
//! their anchor in the same run, parsing the pod's JSON body (what every write does first).
//! Run with `cargo bench -p localfargate-kube-api --bench field_check`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use localfargate_kube_api::openapi;
use serde_json::{Value, json};

/// A pod as a Deployment's controller or a client writes it: two containers with resources,
/// ports, a probe, environment and a volume; quantities as `kubectl` sends them, one a number.
fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-5d8f7c9b6-x2x4p",
            "namespace": "team-1",
            "labels": {"app": "web", "pod-template-hash": "5d8f7c9b6"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f7c9b6",
                                  "uid": "7f0e6d5c-4b3a-2918-0706-050403020100", "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": {
            "containers": [
                {"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                 "env": [{"name": "MODE", "value": "production"}, {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                 "resources": {"requests": {"cpu": 1, "memory": "512Mi"}, "limits": {"cpu": "1000m", "memory": "1Gi"}},
                 "readinessProbe": {"httpGet": {"path": "/healthz", "port": 80, "scheme": "HTTP"},
                                    "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
                 "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]},
                {"name": "sidecar", "image": "busybox:1.36", "command": ["sh", "-c", "sleep infinity"],
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}},
            ],
            "volumes": [{"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}}],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
        },
    })
}

fn bench(c: &mut Criterion) {
    let pod = pod();
    let body = serde_json::to_vec(&pod).unwrap_or_default();
    // Built once, as the server builds its catalog at start.
    let _ = openapi::served();
    let mut group = c.benchmark_group("written pod");
    group.bench_function("anchor: parse its JSON body", |b| {
        b.iter(|| black_box(serde_json::from_slice::<Value>(black_box(&body)).ok()))
    });
    group.bench_function("check_fields (types, quantities, unknown fields)", |b| {
        b.iter_batched(
            || pod.clone(),
            |mut p| black_box(openapi::check_fields("", "v1", "Pod", None, &mut p, None).ok()),
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function("quantities and timestamps alone", |b| {
        b.iter_batched(
            || pod.clone(),
            |mut p| black_box(openapi::reencode_values("", "v1", "Pod", &mut p).ok()),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
