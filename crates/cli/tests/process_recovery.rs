//! End-to-end, process runtime: what a persistent data directory holds across runs, and images
//! from the less common sources.
//!
//! - A pod whose record is gone while localfargate is down (killed with `kill -9`): the next
//!   `up` on the same data directory removes its sandbox (processes, mounts, network namespace,
//!   host veth, cgroups), and adopts the pods that are still stored.
//! - A zstd-compressed image pulled from Debian's `docker-registry` and a `docker save`-format
//!   tarball loaded with `localfargate image load` into a running server both run as pods, and
//!   pods of one image share its unpacked layers as their overlay lower directories.
//!
//! Needs root, runc, busybox-static, docker-registry and skopeo; skipped with the reason
//! otherwise.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::process_cluster::{Cluster, Registry, busybox_layout, image, load, text};
use localfargate_store::{SqliteStore, Store, StoreExt};
use serde_json::Value;
use sha2::{Digest, Sha256};

const IMAGE: &str = "localfargate.test/busybox:1";

fn sandbox_ids(data: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(data.join("runtime/sandboxes"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// Runs `name` (`sleep 3600` from the loaded busybox image), waits until it is Ready, and
/// returns the id of the sandbox it got.
fn run_pod(c: &Cluster, name: &str) -> String {
    let before = sandbox_ids(c.data.path());
    c.ok(&[
        "run",
        name,
        &format!("--image={IMAGE}"),
        "--image-pull-policy=Never",
        "--",
        "sleep",
        "3600",
    ]);
    c.wait_ready("default", name);
    let new: Vec<String> = sandbox_ids(c.data.path())
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();
    assert_eq!(new.len(), 1, "one new sandbox for {name}: {new:?}");
    new[0].clone()
}

/// The cgroup directories of a sandbox that exist: v1 controllers and v2's unified tree.
fn cgroups_of(id: &str) -> Vec<String> {
    ["memory", "cpu", "pids", "unified", ""]
        .iter()
        .map(|c| {
            Path::new("/sys/fs/cgroup")
                .join(c)
                .join("localfargate")
                .join(id)
        })
        .filter(|d| d.exists())
        .map(|d| d.display().to_string())
        .collect()
}

/// Every process in a cgroup tree, as (pid, start time) so that a reused pid is not taken
/// for a survivor.
fn processes_in(cgroup: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(procs) = std::fs::read_to_string(cgroup.join("cgroup.procs")) {
        out.extend(
            procs
                .lines()
                .filter_map(|pid| start_time(pid).map(|t| (pid.to_string(), t))),
        );
    }
    if let Ok(dir) = std::fs::read_dir(cgroup) {
        for e in dir.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(processes_in(&e.path()));
            }
        }
    }
    out
}

fn start_time(pid: &str) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, counted after the command's closing parenthesis (field 2).
    stat.rsplit_once(") ")?
        .1
        .split(' ')
        .nth(19)
        .map(str::to_string)
}

fn netns_exists(name: &str) -> bool {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .output()
        .unwrap()
        .status
        .success()
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&dir)))
        .map(str::to_string)
        .collect()
}

/// What a sandbox has on the host, each part named, for the checks before and after.
struct Footprint {
    dir: std::path::PathBuf,
    netns: String,
    veth: String,
    cgroups: Vec<String>,
    processes: Vec<(String, String)>,
}

impl Footprint {
    fn of(data: &Path, id: &str) -> Footprint {
        let short = localfargate_runtime::net::short_id(id);
        let netns = format!("lf-{short}");
        // The runtime names the host end `lfv` + 12 hex digits of SHA-256(netns name).
        let veth = format!(
            "lfv{}",
            &hex::encode(Sha256::digest(netns.as_bytes()))[..12]
        );
        let processes = processes_in(&Path::new("/sys/fs/cgroup/pids/localfargate").join(id))
            .into_iter()
            .chain(processes_in(
                &Path::new("/sys/fs/cgroup/unified/localfargate").join(id),
            ))
            .chain(processes_in(
                &Path::new("/sys/fs/cgroup/localfargate").join(id),
            ))
            .collect();
        Footprint {
            dir: data.join("runtime/sandboxes").join(id),
            netns,
            veth,
            cgroups: cgroups_of(id),
            processes,
        }
    }

    /// What is still there, in words (empty: nothing).
    fn left(&self, id: &str) -> Vec<String> {
        let mut left = Vec::new();
        if self.dir.exists() {
            left.push(format!("directory {}", self.dir.display()));
        }
        if netns_exists(&self.netns) {
            left.push(format!("network namespace {}", self.netns));
        }
        if link_exists(&self.veth) {
            left.push(format!("host veth {}", self.veth));
        }
        left.extend(cgroups_of(id).into_iter().map(|c| format!("cgroup {c}")));
        left.extend(
            self.processes
                .iter()
                .filter(|(pid, t)| start_time(pid).as_ref() == Some(t))
                .map(|(pid, _)| format!("process {pid}")),
        );
        left.extend(
            mounts_under(&self.dir)
                .into_iter()
                .map(|m| format!("mount {m}")),
        );
        left
    }
}

#[test]
fn a_pod_gone_from_the_store_while_down_loses_its_sandbox_at_the_next_up() {
    skip_unless_able!();
    let work = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(work.path(), IMAGE, &["sh"]);
    let mut c = Cluster::new(&[], |data| load(data, &busybox));
    let gone = run_pod(&c, "gone");
    let kept = run_pod(&c, "kept");
    let kept_container =
        c.pod("default", "kept")["status"]["containerStatuses"][0]["containerID"].clone();

    let data = c.data.path().to_path_buf();
    let footprint = Footprint::of(&data, &gone);
    // Each part the check below looks for is really there while the pod runs.
    assert!(netns_exists(&footprint.netns), "{}", footprint.netns);
    assert!(link_exists(&footprint.veth), "{}", footprint.veth);
    assert!(!footprint.cgroups.is_empty(), "no cgroup of {gone}");
    assert!(!footprint.processes.is_empty(), "no process of {gone}");
    assert!(
        !mounts_under(&footprint.dir).is_empty(),
        "no mount under {}",
        footprint.dir.display()
    );

    // `kill -9` of localfargate: the sandboxes outlive it.
    c.crash();
    let left = footprint.left(&gone);
    assert!(
        left.iter().any(|l| l.starts_with("process "))
            && left.iter().any(|l| l.starts_with("network namespace ")),
        "the sandbox outlives the crash: {left:?}"
    );

    // While it is down, the pod's record goes from the store (with the store's own API, as a
    // deletion that the crashed run had committed but not yet carried out would leave it).
    {
        let store = SqliteStore::open(&data.join("store.db")).unwrap();
        let kind = localfargate_registry::resources::store_kind("run");
        let prefix = localfargate_registry::resources::resource("", "v1", "pods")
            .unwrap()
            .key_prefix(Some("default"));
        let (pods, _) = store.list(&kind, &prefix).unwrap();
        let record = pods
            .iter()
            .find(|p| p.value["metadata"]["name"] == "gone")
            .unwrap_or_else(|| panic!("no record of pod gone under {kind} {prefix}"));
        store.delete(&kind, &record.key, None).unwrap();
    }

    // The next `up` removes that sandbox, all of it, and adopts the other.
    c.start_again();
    let mut left = Vec::new();
    c.eventually(
        "the orphaned sandbox to be removed",
        Duration::from_secs(60),
        || {
            left = footprint.left(&gone);
            left.is_empty()
        },
    );
    assert!(left.is_empty(), "{left:?}");
    assert!(
        !c.kubectl(&["get", "pod", "gone"]).status.success(),
        "the pod stays deleted"
    );
    let p = c.wait_ready("default", "kept");
    assert_eq!(
        p["status"]["containerStatuses"][0]["containerID"], kept_container,
        "the stored pod is adopted, not restarted: {p:#}"
    );
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);
    assert_eq!(sandbox_ids(&data), vec![kept.clone()]);
    let kept_footprint = Footprint::of(&data, &kept);
    assert!(netns_exists(&kept_footprint.netns) && link_exists(&kept_footprint.veth));
    assert_eq!(
        c.ok(&["exec", "kept", "--", "echo", "adopted"]).trim(),
        "adopted"
    );
}

/// The `lowerdir` of the root file system that `pod`'s container sees.
fn lowerdirs(c: &Cluster, pod: &str) -> Vec<String> {
    let mountinfo = c.ok(&["exec", pod, "--", "cat", "/proc/self/mountinfo"]);
    let root = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/") && l.contains(" - overlay "))
        .unwrap_or_else(|| panic!("no overlay root in {pod}'s mountinfo:\n{mountinfo}"));
    let options = root.rsplit(' ').next().unwrap_or("");
    let lower = options
        .split(',')
        .find_map(|o| o.strip_prefix("lowerdir="))
        .unwrap_or_else(|| panic!("no lowerdir in {root}"));
    lower.split(':').map(str::to_string).collect()
}

#[test]
fn zstd_layers_and_docker_save_tarballs_run_as_pods_sharing_their_layers() {
    skip_unless_able!();
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(None);
    let busybox = busybox_layout(work.path(), IMAGE, &["sh"]);

    // The image pushed with zstd-compressed layers.
    let zstd_ref = format!("127.0.0.1:{}/team/zstd:1", registry.port);
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--dest-tls-verify=false",
            "--dest-compress-format",
            "zstd",
        ])
        .arg(format!("oci:{}:{IMAGE}", busybox.display()))
        .arg(format!("docker://{zstd_ref}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo: {}", text(&out));
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{zstd_ref}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo inspect: {}", text(&out));
    let manifest: Value = serde_json::from_slice(&out.stdout).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert!(
        !layers.is_empty()
            && layers
                .iter()
                .all(|l| l["mediaType"].as_str().unwrap_or("").ends_with("+zstd")),
        "the registry serves zstd layers: {manifest:#}"
    );

    // The same image as a `docker save` tarball, under another name.
    let saved = work.path().join("saved.tar");
    let out = Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:{IMAGE}", busybox.display()))
        .arg(format!(
            "docker-archive:{}:localfargate.test/saved:1",
            saved.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo: {}", text(&out));
    let names: Vec<String> = {
        let out = Command::new("tar").arg("tf").arg(&saved).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    assert!(
        names.iter().any(|n| n == "manifest.json") && !names.iter().any(|n| n == "index.json"),
        "a docker save archive: {names:?}"
    );

    let insecure = format!("127.0.0.1:{}", registry.port);
    let c = Cluster::new(&["--insecure-registry".to_string(), insecure], |_| {});
    // Loaded into the running server's store, as `kind load` does.
    let loaded = image(c.data.path(), &["load", saved.to_str().unwrap()]);
    assert!(
        loaded.contains("Loaded image: localfargate.test/saved:1"),
        "{loaded}"
    );

    c.ok(&[
        "run",
        "zstd",
        &format!("--image={zstd_ref}"),
        "--",
        "sleep",
        "3600",
    ]);
    for name in ["saved-a", "saved-b"] {
        c.ok(&[
            "run",
            name,
            "--image=localfargate.test/saved:1",
            "--image-pull-policy=Never",
            "--",
            "sleep",
            "3600",
        ]);
    }
    for name in ["zstd", "saved-a", "saved-b"] {
        c.wait_ready("default", name);
    }
    let events = c.events("default", "zstd");
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "Pulled" && m.starts_with("Successfully pulled image")),
        "{events:?}"
    );
    assert_eq!(
        c.ok(&["exec", "zstd", "--", "echo", "from zstd"]).trim(),
        "from zstd"
    );

    // One unpacked copy of the layers, in the shared image store, under every pod's root: the
    // two pods of the tarball's image, and the zstd pull of the same layer content too (layers
    // are kept by their uncompressed digest).
    let a = lowerdirs(&c, "saved-a");
    let b = lowerdirs(&c, "saved-b");
    let z = lowerdirs(&c, "zstd");
    let store = c.data.path().join("images").display().to_string();
    assert!(!a.is_empty());
    assert!(a.iter().all(|d| d.starts_with(&store)), "{a:?}");
    assert_eq!(a, b, "two pods of one image share its layers");
    assert_eq!(a, z, "the zstd pull unpacks to the same layer directories");
}
