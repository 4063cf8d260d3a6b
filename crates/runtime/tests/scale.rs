//! 10,000 simulated sandboxes: no task per sandbox and a few hundred bytes each. The only test in
//! this binary, so the counting allocator sees nothing else.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use localfargate_runtime::{
    ContainerSpec, ContainerState, RestartPolicy, SandboxRuntime, SandboxSpec, SimulatedRuntime,
};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const PODS: usize = 10_000;

fn pod(i: usize) -> SandboxSpec {
    SandboxSpec {
        restart_policy: RestartPolicy::Always,
        annotations: BTreeMap::from([
            (
                "kubernetes.io/psp".to_string(),
                "eks.privileged".to_string(),
            ),
            (
                "sim.localfargate.io/start-delay".to_string(),
                format!("{}ms", i % 1000),
            ),
        ]),
        containers: vec![ContainerSpec {
            name: "web".to_string(),
            image: "public.ecr.aws/nginx/nginx:1.27".to_string(),
            command: vec![],
            args: vec![],
            env: vec![("PORT".to_string(), "8080".to_string())],
            init: false,
            ..Default::default()
        }],
        ..SandboxSpec::new(
            format!("6f1c2d3e-0000-4000-8000-{i:012}"),
            "default",
            format!("web-7d9f8c6b5-{i:05}"),
            std::net::Ipv4Addr::from(0x0a00_8004 + i as u32),
            vec![],
        )
    }
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_sandboxes_stay_small() {
    let rt = SimulatedRuntime::new();
    let mut ids = Vec::with_capacity(PODS);
    // Each spec is built and dropped within the loop; what stays is the runtime's state and the
    // returned ids.
    let before = LIVE.load(Ordering::Relaxed);
    for i in 0..PODS {
        let id = rt.create_sandbox(pod(i)).await.unwrap();
        rt.start_container(&id, "web").await.unwrap();
        ids.push(id);
    }
    let ids_bytes = ids.iter().map(|id| id.as_str().len()).sum::<usize>() as isize;
    let held = LIVE.load(Ordering::Relaxed) - before - ids_bytes;
    let per_sandbox = held / PODS as isize;
    assert!(
        (64..1024).contains(&per_sandbox),
        "{per_sandbox} bytes per sandbox"
    );
    assert_eq!(rt.sandbox_count(), PODS);
    assert_eq!(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
        0,
        "no task per sandbox"
    );
    assert_eq!(rt.list().await.unwrap().len(), PODS);

    let st = rt.status(&ids[999]).await.unwrap();
    assert!(st.containers[0].state.is_waiting());
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (i, id) in ids.iter().enumerate().step_by(997) {
        let st = rt.status(id).await.unwrap();
        let ContainerState::Running { started_at } = st.containers[0].state else {
            panic!("{i}: {:?}", st.containers[0].state);
        };
        assert_eq!(
            started_at.duration_since(st.created_at).unwrap(),
            Duration::from_millis((i % 1000) as u64)
        );
    }
    for id in &ids {
        rt.remove(id).await.unwrap();
    }
    assert_eq!(rt.sandbox_count(), 0);
}
