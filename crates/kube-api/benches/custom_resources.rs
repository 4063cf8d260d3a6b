//! What serving custom resources costs: the OpenAPI catalog rebuilt with a cluster's CRDs (done
//! once per change of the definitions, on the first OpenAPI request after it) beside the
//! built-in catalog's build, and a custom resource admitted through its version's schema
//! (prune, default, validate) beside decoding the same object from JSON.
//! Run with `cargo bench -p localfargate-kube-api --bench custom_resources`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use localfargate_kube_api::openapi::{self, CatalogBuilder, ServedResource};
use localfargate_registry::custom::Catalog;
use localfargate_registry::resources::RESOURCES;
use serde_json::{Value, json};

/// EKS's four definitions, as a new cluster has them (established).
fn eks_definitions() -> Vec<Value> {
    [
        include_str!("../../registry/crds/securitygrouppolicies.vpcresources.k8s.aws.yaml"),
        include_str!("../../registry/crds/cninodes.vpcresources.k8s.aws.yaml"),
        include_str!("../../registry/crds/eniconfigs.crd.k8s.amazonaws.com.yaml"),
        include_str!("../../registry/crds/policyendpoints.networking.k8s.aws.yaml"),
    ]
    .iter()
    .map(|y| {
        let mut crd: Value = serde_yaml::from_str(y).expect("vendored definition");
        crd["status"] = json!({"conditions": [{"type": "Established", "status": "True"}]});
        crd
    })
    .collect()
}

fn bench(c: &mut Criterion) {
    let crds = eks_definitions();
    let catalog = Catalog::from_crds(crds.iter());
    let mut group = c.benchmark_group("openapi_catalog");
    group.sample_size(10);
    group.bench_function("built-ins only (anchor)", |b| {
        b.iter(|| {
            CatalogBuilder::new()
                .serve(RESOURCES.iter().map(ServedResource::from))
                .build()
                .expect("catalog")
        })
    });
    group.bench_function("with EKS's 4 CRDs", |b| {
        b.iter(|| openapi::with_custom_resources(black_box(&catalog)).expect("catalog"))
    });
    group.finish();

    let sgp = catalog
        .resource("vpcresources.k8s.aws", "v1beta1", "securitygrouppolicies")
        .expect("served");
    let (_, version) = catalog.version_of(sgp).expect("custom");
    let schema = version.schema.clone().expect("schema");
    let object = json!({
        "apiVersion": "vpcresources.k8s.aws/v1beta1", "kind": "SecurityGroupPolicy",
        "metadata": {"name": "my-app-sgp", "namespace": "production"},
        "spec": {"podSelector": {"matchLabels": {"app": "payment-service"}},
                 "securityGroups": {"groupIds": ["sg-0a1b2c3d4e5f6a7b8"]}, "unknown": 1},
    });
    let text = serde_json::to_vec(&object).expect("json");
    let mut group = c.benchmark_group("custom_resource_admission");
    group.bench_function("decode the JSON body (anchor)", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(&text)).expect("json"))
    });
    group.bench_function("prune, default and validate by the schema", |b| {
        b.iter(|| {
            let mut obj = object.clone();
            black_box(schema.admit(&mut obj))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
