//! Placement + sizing decisions per second: 100,000 pods against 10 profiles × 5 selectors, and
//! against 1,000 profiles × 5 selectors. Run with `cargo bench -p localfargate-core`.
//!
//! Two measurements each: deciding from decoded [`PodFacts`] (what a scheduler keeps per pod), and
//! the whole path from k8s-openapi `Pod` objects, decoding included. With 100,000 distinct pods
//! the latter is bound by memory latency: a k8s-openapi `Container` alone is over 2 KB.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::Pod;
use localfargate_core::{FargateProfile, PodFacts, ProfileIndex, SelectionRule, Selector};
use serde_json::json;

const PODS: usize = 100_000;

/// `profiles` profiles of 5 selectors each over `profiles * 5` team namespaces, one selector in
/// five with labels, plus two wildcard selectors (`batch-*`, `tenant-??`).
fn profiles(profiles: usize) -> Vec<FargateProfile> {
    (0..profiles)
        .map(|p| {
            let selectors = (0..5)
                .map(|s| {
                    let n = p * 5 + s;
                    if p == 0 && s == 3 {
                        Selector::new("batch-*", &[])
                    } else if p == 1 && s == 4 {
                        Selector::new("tenant-??", &[("tier", "web")])
                    } else if s == 0 {
                        Selector::new(
                            &format!("team-{n}"),
                            &[("compute", "fargate"), ("tier", "web")],
                        )
                    } else {
                        Selector::new(&format!("team-{n}"), &[])
                    }
                })
                .collect();
            FargateProfile::active(&format!("fp-{p:04}"), selectors)
        })
        .collect()
}

/// Pods over twice as many namespaces as the selectors cover, so about half match.
fn pods(namespaces: usize) -> Vec<Pod> {
    (0..PODS)
        .map(|i| {
            let ns = match i % 10 {
                0 => format!("batch-{}", i % 7),
                1 => format!("tenant-{:02}", i % 100),
                _ => format!("team-{}", (i * 7919) % (namespaces * 2)),
            };
            let cpu = ["250m", "500m", "1", "2", "100m"][i % 5];
            let mem = ["512Mi", "1Gi", "2Gi", "8Gi", "3.5Gi"][i % 5];
            serde_json::from_value(json!({
                "metadata": {"name": format!("pod-{i}"), "namespace": ns,
                    "labels": {"app": format!("app-{}", i % 50), "tier": "web", "compute": if i % 3 == 0 { "fargate" } else { "ec2" }}},
                "spec": {"containers": [
                    {"name": "app", "image": "x", "resources": {"requests": {"cpu": cpu, "memory": mem}, "limits": {"cpu": cpu, "memory": mem}}},
                    {"name": "sidecar", "image": "y", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}
                ]}
            }))
            .expect("valid pod")
        })
        .collect()
}

/// One decision: which profile, and what size.
fn decide(index: &ProfileIndex, pod: &PodFacts) -> (bool, u32) {
    let placed = index
        .place(&pod.identity(), SelectionRule::Name)
        .profile_name()
        .is_some();
    let size = pod.requests().fargate_size().map_or(0, |s| s.memory_mib);
    (placed, size)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("placement+sizing");
    group.throughput(Throughput::Elements(PODS as u64));
    group.sample_size(20);
    for count in [10, 1000] {
        let index = ProfileIndex::new(profiles(count));
        let pods = pods(count * 5);
        let facts: Vec<PodFacts> = pods
            .iter()
            .map(|p| PodFacts::of(p).expect("valid"))
            .collect();
        let matched = facts.iter().filter(|p| decide(&index, p).0).count();
        eprintln!("{count} profiles: {matched} of {PODS} pods match a profile");
        group.bench_function(format!("{count} profiles x 5 selectors, 100k pods"), |b| {
            b.iter(|| {
                let mut tally = 0usize;
                for pod in &facts {
                    let (placed, size) = decide(&index, black_box(pod));
                    tally += usize::from(placed) + size as usize;
                }
                black_box(tally)
            })
        });
        group.bench_function(format!("{count} profiles, from k8s Pod objects"), |b| {
            b.iter(|| {
                let mut tally = 0usize;
                for pod in &pods {
                    let facts = PodFacts::of(black_box(pod)).expect("valid");
                    let (placed, size) = decide(&index, &facts);
                    tally += usize::from(placed) + size as usize;
                }
                black_box(tally)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
