use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::test_pods::{container, spec};

fn size(cpu: u64, mem_mib: u64) -> Option<String> {
    PodRequests {
        cpu_millis: cpu,
        memory_bytes: mem_mib * MIB,
        ..Default::default()
    }
    .fargate_size()
    .map(|s| s.to_string())
}

fn provisioned(spec_json: serde_json::Value) -> String {
    pod_requests(&spec(spec_json))
        .unwrap()
        .fargate_size()
        .unwrap()
        .to_string()
}

#[test]
fn nothing_requested_is_the_smallest_combination() {
    assert_eq!(
        provisioned(json!({"containers": [{"name": "a", "image": "x"}]})),
        "0.25vCPU 0.5GB"
    );
}

#[test]
fn doc_example_one_vcpu_eight_gb_becomes_two_vcpu_nine_gb() {
    // fargate-pod-configuration: 1 vCPU and 8 GB + 256 MB → 2 vCPU, 9 GB.
    let s = json!({"containers": [container("a", &[("cpu", "1"), ("memory", "8Gi")], &[])]});
    assert_eq!(provisioned(s), "2vCPU 9GB");
}

#[test]
fn workshop_example_one_vcpu_two_and_a_half_g() {
    // eks-workshop fundamentals/fargate/sizing: cpu 1, memory 2.5G (limits) → 1vCPU 3GB.
    let s = json!({"containers": [container("a", &[], &[("cpu", "1"), ("memory", "2.5G")])]});
    assert_eq!(provisioned(s), "1vCPU 3GB");
}

#[test]
fn half_vcpu_750m() {
    let s = json!({"containers": [container("a", &[("cpu", "0.5"), ("memory", "750M")], &[])]});
    assert_eq!(provisioned(s), "0.5vCPU 1GB");
}

#[test]
fn fluent_bit_sidecar_rounds_up_to_one_vcpu_two_gb() {
    // 0.5 vCPU / 1Gi app + 0.1 vCPU / 128Mi sidecar = 0.6 vCPU / 1.128 GB (+256 MiB) → 1vCPU 2GB.
    let s = json!({"containers": [
        container("app", &[("cpu", "0.5"), ("memory", "1Gi")], &[("cpu", "0.5"), ("memory", "1Gi")]),
        container("fluent-bit", &[("cpu", "0.1"), ("memory", "128Mi")], &[("cpu", "0.1"), ("memory", "128Mi")]),
    ]});
    assert_eq!(provisioned(s), "1vCPU 2GB");
}

#[test]
fn cpu_heavy_low_memory_gets_the_tier_minimum() {
    assert_eq!(size(4000, 1024).unwrap(), "4vCPU 8GB");
}

#[test]
fn big_tiers_render_and_round() {
    assert_eq!(
        size(8000, 16 * 1024).unwrap(),
        "8vCPU 20GB",
        "16GB + 256MiB rounds to the next 4 GB step"
    );
    assert_eq!(size(8000, 1024).unwrap(), "8vCPU 16GB");
    assert_eq!(size(16000, 1024).unwrap(), "16vCPU 32GB");
    assert_eq!(size(16000, 100 * 1024).unwrap(), "16vCPU 104GB");
    assert_eq!(size(4000, 30 * 1024 - 256).unwrap(), "4vCPU 30GB");
    assert_eq!(
        size(4000, 30 * 1024).unwrap(),
        "8vCPU 32GB",
        "30 GB + overhead leaves the 4 vCPU row"
    );
    assert_eq!(size(16000, 120 * 1024 - 256).unwrap(), "16vCPU 120GB");
}

#[test]
fn too_big_is_refused() {
    assert_eq!(size(16001, 0), None);
    assert_eq!(
        size(1000, 120 * 1024),
        None,
        "120 GB + 256 MiB exceeds the largest option"
    );
    assert_eq!(size(u64::MAX, u64::MAX / MIB), None);
}

#[test]
fn quarter_vcpu_row_has_no_one_and_a_half_gb() {
    assert_eq!(
        size(250, 1024).unwrap(),
        "0.25vCPU 2GB",
        "1 GiB + 256 MiB skips to 2 GB"
    );
    assert_eq!(size(250, 768).unwrap(), "0.25vCPU 1GB");
    assert_eq!(size(250, 2048).unwrap(), "0.5vCPU 3GB");
}

#[test]
fn init_containers_take_the_larger_of_largest_init_and_app_sum() {
    let s = json!({
        "initContainers": [
            container("migrate", &[("cpu", "2"), ("memory", "1Gi")], &[]),
            container("small", &[("cpu", "100m"), ("memory", "6Gi")], &[]),
        ],
        "containers": [
            container("a", &[("cpu", "500m"), ("memory", "1Gi")], &[]),
            container("b", &[("cpu", "500m"), ("memory", "1Gi")], &[]),
        ]
    });
    let r = pod_requests(&spec(s)).unwrap();
    assert_eq!(
        r.cpu_millis, 2000,
        "largest init CPU beats the 1 vCPU app sum"
    );
    assert_eq!(r.memory_bytes, 6 * GIB, "per resource: largest init memory");
    assert_eq!(r.fargate_size().unwrap().to_string(), "2vCPU 7GB");
}

#[test]
fn native_sidecars_count_beside_apps_and_later_inits() {
    let sidecar = {
        let mut c = container("proxy", &[("cpu", "250m"), ("memory", "256Mi")], &[]);
        c["restartPolicy"] = json!("Always");
        c
    };
    let s = json!({
        "initContainers": [sidecar, container("setup", &[("cpu", "1"), ("memory", "512Mi")], &[])],
        "containers": [container("app", &[("cpu", "500m"), ("memory", "512Mi")], &[])]
    });
    let r = pod_requests(&spec(s)).unwrap();
    assert_eq!(
        r.cpu_millis, 1250,
        "setup runs beside the sidecar: 1 + 0.25"
    );
    assert_eq!(
        r.memory_bytes,
        768 * MIB,
        "app + sidecar = init peak = 768 MiB"
    );
}

#[test]
fn requests_win_over_limits_and_limits_stand_in() {
    let s = json!({"containers": [
        container("a", &[("cpu", "250m")], &[("cpu", "2"), ("memory", "2Gi")]),
    ]});
    let r = pod_requests(&spec(s)).unwrap();
    assert_eq!(r.cpu_millis, 250);
    assert_eq!(r.memory_bytes, 2 * GIB);
}

#[test]
fn extended_resources_are_collected() {
    let s = json!({"containers": [container("a", &[], &[("nvidia.com/gpu", "1"), ("hugepages-2Mi", "64Mi")])]});
    let r = pod_requests(&spec(s)).unwrap();
    assert_eq!(r.extended["nvidia.com/gpu"], 1);
    assert_eq!(r.extended["hugepages-2Mi"], 64 * MIB);
}

#[test]
fn invalid_quantity_names_container_and_resource() {
    let s = json!({"containers": [container("web", &[("memory", "lots")], &[])]});
    let err = pod_requests(&spec(s)).unwrap_err().to_string();
    assert!(
        err.starts_with("container \"web\": memory: quantities must match"),
        "{err}"
    );
}

#[test]
fn ephemeral_storage() {
    assert_eq!(provisioned_storage_gib(0), Some(20));
    assert_eq!(
        provisioned_storage_gib(10 * GIB),
        Some(20),
        "16 GiB is under the 20 GiB default"
    );
    assert_eq!(
        provisioned_storage_gib(100 * GIB),
        Some(115),
        "the doc's 100 GiB → 115 GiB"
    );
    assert_eq!(provisioned_storage_gib(50 * GIB), Some(60));
    assert_eq!(provisioned_storage_gib(154 * GIB), Some(175));
    assert_eq!(
        provisioned_storage_gib(155 * GIB),
        None,
        "would provision 176 GiB"
    );
    assert_eq!(provisioned_storage_gib(u64::MAX), None);
}

#[test]
fn rendering_is_the_shortest_decimal() {
    let rendered: Vec<String> = FargateSize::all().map(|s| s.to_string()).collect();
    assert_eq!(rendered.len(), 3 + 4 + 7 + 13 + 23 + 12 + 12);
    assert_eq!(rendered[0], "0.25vCPU 0.5GB");
    assert!(rendered.contains(&"0.5vCPU 1GB".to_string()));
    assert!(rendered.contains(&"2vCPU 16GB".to_string()));
    assert_eq!(rendered.last().unwrap(), "16vCPU 120GB");
    assert!(rendered.iter().all(|r| !r.contains(".0")));
}

proptest! {
    #[test]
    fn always_a_valid_entry_at_least_the_request(cpu in 0u64..17_000, mem in 0u64..130 * 1024) {
        let req = PodRequests { cpu_millis: cpu, memory_bytes: mem * MIB, ..Default::default() };
        if let Some(s) = req.fargate_size() {
            prop_assert!(s.is_valid());
            prop_assert!(u64::from(s.vcpu_millis) >= cpu);
            prop_assert!(u64::from(s.memory_mib) * MIB >= mem * MIB + FARGATE_MEMORY_OVERHEAD);
            // Every other combination that covers the request is at least as big in both
            // dimensions, so the choice is also the cheapest.
            let need = mem * MIB + FARGATE_MEMORY_OVERHEAD;
            for other in FargateSize::all() {
                if u64::from(other.vcpu_millis) >= cpu && u64::from(other.memory_mib) * MIB >= need {
                    prop_assert!(other.vcpu_millis >= s.vcpu_millis && other.memory_mib >= s.memory_mib,
                        "{other} covers the request but {s} was chosen");
                }
            }
        } else {
            prop_assert!(cpu > 16_000 || mem * MIB + FARGATE_MEMORY_OVERHEAD > 120 * GIB);
        }
    }

    #[test]
    fn monotone(cpu in 0u64..16_000, mem in 0u64..119 * 1024, dcpu in 0u64..2000, dmem in 0u64..4096) {
        let small = PodRequests { cpu_millis: cpu, memory_bytes: mem * MIB, ..Default::default() };
        let big = PodRequests { cpu_millis: cpu + dcpu, memory_bytes: (mem + dmem) * MIB, ..Default::default() };
        if let (Some(a), Some(b)) = (small.fargate_size(), big.fargate_size()) {
            prop_assert!(a.vcpu_millis <= b.vcpu_millis, "{a} vs {b}");
            prop_assert!(a.memory_mib <= b.memory_mib, "{a} vs {b}");
        } else {
            prop_assert!(big.fargate_size().is_none(), "a smaller request cannot be too big");
        }
    }

    #[test]
    fn storage_monotone(a in 0u64..200 * GIB, d in 0u64..20 * GIB) {
        match (provisioned_storage_gib(a), provisioned_storage_gib(a + d)) {
            (Some(x), Some(y)) => prop_assert!(x <= y && x >= 20 && y <= 175),
            (None, y) => prop_assert_eq!(y, None),
            (Some(_), None) => {}
        }
    }
}
