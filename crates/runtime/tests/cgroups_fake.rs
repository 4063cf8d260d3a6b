//! Cgroups against fake hierarchies in a tempdir laid out like cgroup v1 and v2: which files get
//! which values. No privileges needed.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use localfargate_runtime::cgroups::{
    CgroupError, CgroupLayout, Cgroups, ContainerLimits, PodLimits, Usage,
};

const MIB: u64 = 1 << 20;

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

fn put(path: impl AsRef<Path>, content: &str) {
    let path = path.as_ref();
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap();
    }
    fs::write(path, content).unwrap();
}

fn pod_limits() -> PodLimits {
    PodLimits {
        cpu_millis: 250,
        memory_bytes: 64 * MIB,
        pids: Some(100),
    }
}

/// A v1 layout with cpu and cpuacct mounted separately (as on the test host) or together.
fn v1(root: &Path, combined_cpu: bool) -> CgroupLayout {
    let mut controllers = BTreeMap::new();
    if combined_cpu {
        let dir = root.join("cpu,cpuacct");
        controllers.insert("cpu".to_string(), dir.clone());
        controllers.insert("cpuacct".to_string(), dir);
    } else {
        controllers.insert("cpu".to_string(), root.join("cpu"));
        controllers.insert("cpuacct".to_string(), root.join("cpuacct"));
    }
    for c in ["memory", "pids", "freezer"] {
        controllers.insert(c.to_string(), root.join(c));
    }
    controllers.insert("name=systemd".to_string(), root.join("systemd"));
    for dir in controllers.values() {
        fs::create_dir_all(dir).unwrap();
    }
    let unified = root.join("unified");
    fs::create_dir_all(&unified).unwrap();
    CgroupLayout::V1 {
        controllers,
        unified: Some(unified),
    }
}

#[test]
fn v1_pod_and_container_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let cg = Cgroups::with_root(v1(root, false), "localfargate");
    // The kernel accounts swap here: the file exists before the pod is created.
    put(
        root.join("memory/localfargate/p1/memory.memsw.limit_in_bytes"),
        "9223372036854771712",
    );
    cg.create_pod("p1", &pod_limits()).unwrap();

    let cpu = root.join("cpu/localfargate/p1");
    assert_eq!(read(cpu.join("cpu.cfs_period_us")), "100000");
    assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "25000");
    assert_eq!(read(cpu.join("cpu.shares")), "256");
    assert!(root.join("cpuacct/localfargate/p1").is_dir());
    let mem = root.join("memory/localfargate/p1");
    assert_eq!(read(mem.join("memory.limit_in_bytes")), "67108864");
    assert_eq!(read(mem.join("memory.memsw.limit_in_bytes")), "67108864");
    assert_eq!(read(root.join("pids/localfargate/p1/pids.max")), "100");
    // Hierarchies without limits are left to runc.
    assert!(!root.join("freezer/localfargate").exists());
    assert!(!root.join("systemd/localfargate").exists());

    // Idempotent, and a new size is applied.
    cg.create_pod(
        "p1",
        &PodLimits {
            cpu_millis: 1000,
            memory_bytes: 128 * MIB,
            pids: None,
        },
    )
    .unwrap();
    assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "100000");
    assert_eq!(read(cpu.join("cpu.shares")), "1024");
    assert_eq!(read(mem.join("memory.limit_in_bytes")), "134217728");
    assert_eq!(read(mem.join("memory.memsw.limit_in_bytes")), "134217728");
    assert_eq!(read(root.join("pids/localfargate/p1/pids.max")), "max");
    cg.create_pod("p1", &pod_limits()).unwrap();

    // Containers need their pod.
    assert!(matches!(
        cg.create_container("nope", "c1", &ContainerLimits::default()),
        Err(CgroupError::NoPod(_))
    ));
    cg.create_container(
        "p1",
        "c1",
        &ContainerLimits {
            cpu_millis: Some(100),
            memory_bytes: Some(32 * MIB),
        },
    )
    .unwrap();
    let c1 = root.join("cpu/localfargate/p1/c1");
    assert_eq!(read(c1.join("cpu.cfs_quota_us")), "10000");
    assert_eq!(read(c1.join("cpu.shares")), "102");
    assert_eq!(
        read(root.join("memory/localfargate/p1/c1/memory.limit_in_bytes")),
        "33554432"
    );
    // A container quota above the pod's is capped at the pod's (v1 refuses more).
    cg.create_container(
        "p1",
        "c2",
        &ContainerLimits {
            cpu_millis: Some(2000),
            memory_bytes: None,
        },
    )
    .unwrap();
    let c2 = root.join("cpu/localfargate/p1/c2");
    assert_eq!(read(c2.join("cpu.cfs_quota_us")), "25000");
    assert_eq!(
        read(root.join("memory/localfargate/p1/c2/memory.limit_in_bytes")),
        "-1"
    );
    // No CPU limit: no quota, shares untouched.
    cg.create_container("p1", "c3", &ContainerLimits::default())
        .unwrap();
    let c3 = root.join("cpu/localfargate/p1/c3");
    assert_eq!(read(c3.join("cpu.cfs_quota_us")), "-1");
    assert!(!c3.join("cpu.shares").exists());

    assert_eq!(cg.run_path("p1", "c1", 3), "/localfargate/p1/c1/run-3");
    assert!(matches!(
        cg.create_pod("../x", &pod_limits()),
        Err(CgroupError::InvalidName { .. })
    ));
}

#[test]
fn v1_combined_cpu_cpuacct_mount() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let cg = Cgroups::with_root(v1(root, true), "localfargate");
    cg.create_pod("p1", &pod_limits()).unwrap();
    let dir = root.join("cpu,cpuacct/localfargate/p1");
    assert_eq!(read(dir.join("cpu.cfs_quota_us")), "25000");
    put(dir.join("cpuacct.usage"), "123456789\n");
    put(
        root.join("memory/localfargate/p1/memory.usage_in_bytes"),
        "10485760\n",
    );
    put(
        root.join("memory/localfargate/p1/memory.stat"),
        "cache 1\ninactive_file 999\ntotal_cache 5\ntotal_inactive_file 4194304\n",
    );
    assert_eq!(
        cg.usage("p1", None).unwrap(),
        Usage {
            cpu_usage_ns: 123_456_789,
            memory_working_set_bytes: 6 * MIB,
            memory_usage_bytes: 10 * MIB,
        }
    );
}

#[test]
fn v1_oom_kills_survive_leaf_removal() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let cg = Cgroups::with_root(v1(root, false), "localfargate");
    cg.create_pod("p1", &pod_limits()).unwrap();
    cg.create_container("p1", "c1", &ContainerLimits::default())
        .unwrap();
    let ctr = root.join("memory/localfargate/p1/c1");
    let oom = |kills: u64| format!("oom_kill_disable 0\nunder_oom 0\noom_kill {kills}\n");
    put(ctr.join("memory.oom_control"), &oom(0));
    assert_eq!(cg.oom_kills("p1", "c1").unwrap(), 0);

    // The kernel counts in the leaf of the killed process only.
    put(ctr.join("run-1/memory.oom_control"), &oom(1));
    assert_eq!(cg.oom_kills("p1", "c1").unwrap(), 1);
    // runc deletes the leaf: the count seen stays.
    fs::remove_dir_all(ctr.join("run-1")).unwrap();
    assert_eq!(cg.oom_kills("p1", "c1").unwrap(), 1);
    put(ctr.join("run-2/memory.oom_control"), &oom(2));
    assert_eq!(cg.oom_kills("p1", "c1").unwrap(), 3);
    // A leaf of an old name recreated with a lower count is a new leaf.
    fs::remove_dir_all(ctr.join("run-2")).unwrap();
    put(ctr.join("run-2/memory.oom_control"), &oom(1));
    assert_eq!(cg.oom_kills("p1", "c1").unwrap(), 4);
    put(ctr.join("memory.oom_control"), &oom(1));
    assert_eq!(cg.oom_kills("p1", "c1").unwrap(), 5);
}

#[test]
fn v1_list_and_remove_never_signal_pids_in_fakes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let cg = Cgroups::with_root(v1(root, false), "localfargate");
    cg.create_pod("p1", &pod_limits()).unwrap();
    cg.create_pod("p2", &pod_limits()).unwrap();
    cg.create_container("p1", "c1", &ContainerLimits::default())
        .unwrap();
    // Leftovers runc made in hierarchies this module does not write limits to.
    fs::create_dir_all(root.join("freezer/localfargate/p1/c1/run-1")).unwrap();
    fs::create_dir_all(root.join("unified/localfargate/p3/c1/run-1")).unwrap();
    assert_eq!(cg.list_pods().unwrap(), ["p1", "p2", "p3"]);

    // A live process whose pid a fake cgroup.procs lists must survive: only cgroupfs is trusted.
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    put(
        root.join("memory/localfargate/p1/c1/run-1/cgroup.procs"),
        &format!("{}\n", child.id()),
    );
    cg.remove_pod("p1").unwrap();
    assert!(child.try_wait().unwrap().is_none(), "a fake made us kill");
    child.kill().unwrap();
    child.wait().unwrap();
    for h in ["cpu", "cpuacct", "memory", "pids", "freezer", "unified"] {
        assert!(!root.join(h).join("localfargate/p1").exists(), "{h}");
    }
    cg.remove_pod("p1").unwrap();
    cg.remove_pod("p3").unwrap();
    assert_eq!(cg.list_pods().unwrap(), ["p2"]);
}

fn v2_root(tmp: &Path) -> PathBuf {
    let root = tmp.join("cgroup");
    put(
        root.join("cgroup.controllers"),
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    );
    put(root.join("cgroup.subtree_control"), "");
    root
}

#[test]
fn v2_pod_and_container_limits_and_subtree_control() {
    let tmp = tempfile::tempdir().unwrap();
    let root = v2_root(tmp.path());
    let cg = Cgroups::with_root(CgroupLayout::V2 { root: root.clone() }, "localfargate");
    // The kernel has swap accounting: memory.swap.max exists in new cgroups.
    put(root.join("localfargate/p1/memory.swap.max"), "max");
    cg.create_pod("p1", &pod_limits()).unwrap();

    let enabled = |dir: &Path| {
        let s = read(dir.join("cgroup.subtree_control"));
        ["+cpu", "+memory", "+pids"]
            .iter()
            .all(|c| s.split_whitespace().any(|w| w == *c))
    };
    assert!(enabled(&root));
    assert!(enabled(&root.join("localfargate")));
    let pod = root.join("localfargate/p1");
    assert!(enabled(&pod));
    assert_eq!(read(pod.join("cpu.max")), "25000 100000");
    assert_eq!(read(pod.join("cpu.weight")), "10");
    assert_eq!(read(pod.join("memory.max")), "67108864");
    assert_eq!(read(pod.join("memory.swap.max")), "0");
    assert_eq!(read(pod.join("pids.max")), "100");

    // Controllers the root lacks are not asked for.
    let tmp2 = tempfile::tempdir().unwrap();
    let root2 = tmp2.path().join("cgroup");
    put(root2.join("cgroup.controllers"), "cpu memory\n");
    let cg2 = Cgroups::with_root(
        CgroupLayout::V2 {
            root: root2.clone(),
        },
        "lf",
    );
    cg2.create_pod("p", &pod_limits()).unwrap();
    assert_eq!(read(root2.join("cgroup.subtree_control")), "+cpu +memory");

    cg.create_container(
        "p1",
        "c1",
        &ContainerLimits {
            cpu_millis: None,
            memory_bytes: Some(32 * MIB),
        },
    )
    .unwrap();
    let ctr = pod.join("c1");
    assert_eq!(read(ctr.join("cpu.max")), "max 100000");
    assert!(!ctr.join("cpu.weight").exists());
    assert_eq!(read(ctr.join("memory.max")), "33554432");
    assert!(enabled(&ctr), "runc's leaf below needs the controllers");
    assert!(matches!(
        cg.create_container("p9", "c1", &ContainerLimits::default()),
        Err(CgroupError::NoPod(_))
    ));

    // memory.events is hierarchical on v2: the container's own file counts its leaves.
    put(
        ctr.join("memory.events"),
        "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n",
    );
    assert_eq!(cg.oom_kills("p1", "c1").unwrap(), 2);

    put(
        ctr.join("cpu.stat"),
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
    );
    put(ctr.join("memory.current"), "8388608\n");
    put(
        ctr.join("memory.stat"),
        "anon 1\nfile 5\ninactive_file 1048576\n",
    );
    assert_eq!(
        cg.usage("p1", Some("c1")).unwrap(),
        Usage {
            cpu_usage_ns: 1_500_000,
            memory_working_set_bytes: 7 * MIB,
            memory_usage_bytes: 8 * MIB,
        }
    );

    assert_eq!(cg.list_pods().unwrap(), ["p1"]);
    cg.remove_pod("p1").unwrap();
    cg.remove_pod("p1").unwrap();
    assert!(!pod.exists());
    assert!(cg.list_pods().unwrap().is_empty());
}
