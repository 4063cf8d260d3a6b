//! The image store against real registries: Debian's `docker-registry` on 127.0.0.1 (plain
//! HTTP, with and without htpasswd), images pushed with skopeo. Skipped (with a reason printed)
//! without root, docker-registry, skopeo or htpasswd.

mod image_support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use image_support::{Registry, busybox_layout, dockerconfigjson, push, skip_reason, skopeo};
use localfargate_runtime::image::{ImageError, ImageStore, PullPolicy, RegistryConfig};

macro_rules! skip_unless {
    ($($bin:expr),*) => {
        if let Some(reason) = skip_reason(&[$($bin),*]) {
            eprintln!("skipped: {reason}");
            return;
        }
    };
}

fn open(dir: &std::path::Path, config: RegistryConfig) -> ImageStore {
    ImageStore::open(&dir.join("store"), config).expect("open store")
}

fn blobs(store: &ImageStore) -> usize {
    std::fs::read_dir(store.root().join("blobs/sha256")).map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_pull_policies_against_a_local_registry() {
    skip_unless!("docker-registry", "skopeo");
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    let digest = busybox_layout(&layout, "test", "v1");
    push(&layout, "test", &format!("{}/busybox:test", reg.host), None);
    let image = format!("{}/busybox:test", reg.host);
    let store = open(tmp.path(), RegistryConfig::default());

    let e = store
        .ensure(&image, PullPolicy::Never, &[])
        .await
        .expect_err("not present yet");
    assert!(matches!(e, ImageError::NeverPull { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        format!("Container image \"{image}\" is not present with pull policy of Never")
    );

    let t = Instant::now();
    let out = store
        .ensure(&image, PullPolicy::IfNotPresent, &[])
        .await
        .expect("pull");
    eprintln!(
        "measured: first pull of {image} ({} bytes) took {:?} (outcome.took {:?})",
        out.image.size,
        t.elapsed(),
        out.took
    );
    assert!(out.pulled);
    assert_eq!(
        out.image.digest, digest,
        "the registry keeps the layout's manifest"
    );
    assert_eq!(out.image.reference, image);
    assert_eq!(out.image.image_id, format!("{}/busybox@{digest}", reg.host));
    assert_eq!(out.image.config.cmd, vec!["sh".to_string()]);
    assert_eq!(out.image.layers.len(), 1);
    let layer = &out.image.layers[0];
    let bb = std::fs::metadata(layer.join("bin/busybox")).expect("bin/busybox unpacked");
    assert_eq!(
        bb.len(),
        std::fs::metadata("/bin/busybox")
            .map(|m| m.len())
            .unwrap_or(0)
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(bb.permissions().mode() & 0o777, 0o755);
    assert_eq!(
        std::fs::read_link(layer.join("bin/sh")).ok(),
        Some("busybox".into())
    );
    // The unpacked busybox runs.
    let echo = Command::new(layer.join("bin/busybox"))
        .args(["echo", "hello"])
        .output()
        .expect("run unpacked busybox");
    assert_eq!(String::from_utf8_lossy(&echo.stdout), "hello\n");
    assert_eq!(store.pulls_started(), 1);

    // Present: IfNotPresent and Never do not ask the registry.
    for policy in [PullPolicy::IfNotPresent, PullPolicy::Never] {
        let out = store.ensure(&image, policy, &[]).await.expect("present");
        assert!(!out.pulled, "{policy}");
    }
    assert_eq!(store.pulls_started(), 1);

    // Always asks the registry, finds the same digest, downloads nothing.
    let before = blobs(&store);
    let t = Instant::now();
    let out = store
        .ensure(&image, PullPolicy::Always, &[])
        .await
        .expect("always");
    eprintln!("measured: Always with nothing new took {:?}", t.elapsed());
    assert!(out.pulled);
    assert_eq!(out.image.digest, digest);
    assert_eq!(store.pulls_started(), 2);
    assert_eq!(blobs(&store), before);

    // A new image under the same tag: IfNotPresent keeps the old one, Always gets the new one.
    let layout2 = tmp.path().join("layout2");
    let digest2 = busybox_layout(&layout2, "test", "v2");
    assert_ne!(digest, digest2);
    push(&layout2, "test", &image, None);
    let out = store
        .ensure(&image, PullPolicy::IfNotPresent, &[])
        .await
        .expect("present");
    assert_eq!(out.image.digest, digest);
    let out = store
        .ensure(&image, PullPolicy::Always, &[])
        .await
        .expect("always");
    assert_eq!(out.image.digest, digest2);
    assert_eq!(
        std::fs::read_to_string(out.image.layers[0].join("etc/marker"))
            .ok()
            .as_deref(),
        Some("v2")
    );
    // The old image stays reachable by digest until removed.
    let by_digest = format!("{}/busybox@{digest}", reg.host);
    assert!(store.get(&by_digest).is_some());
    let out = store
        .ensure(&by_digest, PullPolicy::IfNotPresent, &[])
        .await
        .expect("by digest");
    assert!(!out.pulled);

    // Unknown tag and unknown repository.
    for missing in [
        format!("{}/busybox:nope", reg.host),
        format!("{}/nothing/here:1", reg.host),
    ] {
        let e = store
            .ensure(&missing, PullPolicy::IfNotPresent, &[])
            .await
            .expect_err("missing");
        assert!(matches!(e, ImageError::NotFound { .. }), "{e:?}");
        assert!(e.to_string().contains("not found"), "{e}");
        assert_eq!(e.kubelet_reason(), "ErrImagePull");
    }
    // Nothing listens there.
    let e = store
        .ensure("127.0.0.1:1/busybox:test", PullPolicy::IfNotPresent, &[])
        .await
        .expect_err("refused");
    assert!(matches!(e, ImageError::Pull { .. }), "{e:?}");
    eprintln!("connection refused reads: {e}");

    // Remove: untag, then blobs and layers nobody needs go.
    store.remove(&image).expect("remove tag");
    assert!(store.get(&image).is_none());
    assert!(
        store.get(&by_digest).is_some(),
        "the digest reference still holds v1"
    );
    store.remove(&by_digest).expect("remove digest ref");
    assert!(store.list().is_empty());
    assert_eq!(blobs(&store), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_concurrent_ensures_share_one_pull() {
    skip_unless!("docker-registry", "skopeo");
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    busybox_layout(&layout, "a", "a");
    busybox_layout(&layout, "b", "b");
    push(&layout, "a", &format!("{}/busybox:a", reg.host), None);
    push(&layout, "b", &format!("{}/other:b", reg.host), None);
    let store = open(tmp.path(), RegistryConfig::default());

    let image = format!("{}/busybox:a", reg.host);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (s, i) = (store.clone(), image.clone());
        tasks.push(tokio::spawn(async move {
            s.ensure(&i, PullPolicy::IfNotPresent, &[]).await
        }));
    }
    // A different image pulls alongside.
    let (s, other) = (store.clone(), format!("{}/other:b", reg.host));
    let other_task = tokio::spawn(async move { s.ensure(&other, PullPolicy::Always, &[]).await });
    let mut digests = Vec::new();
    for t in tasks {
        let out = t.await.expect("join").expect("ensure");
        digests.push(out.image.digest);
    }
    digests.dedup();
    assert_eq!(digests.len(), 1);
    other_task.await.expect("join").expect("other image");
    assert_eq!(
        store.pulls_started(),
        2,
        "8 ensures of one image made one pull"
    );

    // Eight Always at once: one pull too.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (s, i) = (store.clone(), image.clone());
        tasks.push(tokio::spawn(async move {
            s.ensure(&i, PullPolicy::Always, &[]).await
        }));
    }
    for t in tasks {
        assert!(t.await.expect("join").expect("ensure").pulled);
    }
    assert_eq!(store.pulls_started(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_registry_with_htpasswd_needs_credentials() {
    skip_unless!("docker-registry", "skopeo", "htpasswd");
    let reg = Registry::start(Some(("user", "s3cret")));
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    let digest = busybox_layout(&layout, "private", "private");
    push(
        &layout,
        "private",
        &format!("{}/team/busybox:private", reg.host),
        Some("user:s3cret"),
    );
    let image = format!("{}/team/busybox:private", reg.host);
    let store = open(tmp.path(), RegistryConfig::default());

    let e = store
        .ensure(&image, PullPolicy::IfNotPresent, &[])
        .await
        .expect_err("anonymous is refused");
    assert!(matches!(e, ImageError::Unauthorized { .. }), "{e:?}");
    eprintln!("anonymous pull reads: {e}");
    assert!(e.to_string().contains("pull access denied"), "{e}");
    assert_eq!(e.kubelet_reason(), "ErrImagePull");

    let wrong = dockerconfigjson(&reg.host, "user", "wrong");
    let e = store
        .ensure(
            &image,
            PullPolicy::IfNotPresent,
            std::slice::from_ref(&wrong),
        )
        .await
        .expect_err("wrong password");
    assert!(
        e.to_string().contains("anonymous access and 1 credential"),
        "{e}"
    );

    // Credentials for another registry do not leak there; the right one, second, works.
    let elsewhere = dockerconfigjson("registry.example.com", "user", "s3cret");
    let right = dockerconfigjson(&format!("http://{}", reg.host), "user", "s3cret");
    let out = store
        .ensure(&image, PullPolicy::IfNotPresent, &[elsewhere, wrong, right])
        .await
        .expect("pull with a dockerconfigjson secret");
    assert!(out.pulled);
    assert_eq!(out.image.digest, digest);
    assert!(out.image.layers[0].join("bin/busybox").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_mirrors_are_tried_before_the_registry() {
    skip_unless!("docker-registry", "skopeo");
    let mirror = Registry::start(None);
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    let digest = busybox_layout(&layout, "mirrored", "mirrored");
    // A pull-through mirror of Docker Hub keeps Hub's repository names.
    push(
        &layout,
        "mirrored",
        &format!("{}/library/busybox:mirrored", mirror.host),
        None,
    );
    let config = RegistryConfig {
        insecure: vec![],
        mirrors: BTreeMap::from([(
            "docker.io".to_string(),
            vec![
                // A dead mirror first: skipped with a warning.
                "http://127.0.0.1:1".to_string(),
                format!("http://{}", mirror.host),
            ],
        )]),
    };
    let store = open(tmp.path(), config);
    let out = store
        .ensure("busybox:mirrored", PullPolicy::IfNotPresent, &[])
        .await
        .expect("pull through the mirror (this machine has no internet)");
    assert_eq!(out.image.reference, "docker.io/library/busybox:mirrored");
    assert_eq!(out.image.digest, digest);
    assert_eq!(
        out.image.image_id,
        format!("docker.io/library/busybox@{digest}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_multi_platform_index_from_the_registry() {
    skip_unless!("docker-registry", "skopeo");
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    let host_digest = busybox_layout(&layout, "host", "host");
    let other_digest = busybox_layout(&layout, "other", "other");
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let size = |d: &str| std::fs::metadata(blob(d)).map(|m| m.len()).unwrap_or(0);
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    let other_arch = if arch == "amd64" { "arm64" } else { "amd64" };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": other_digest, "size": size(&other_digest),
             "platform": {"os": "linux", "architecture": other_arch}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": host_digest, "size": size(&host_digest),
             "platform": {"os": "linux", "architecture": arch}},
        ],
    });
    let index = serde_json::to_vec(&index).expect("json");
    let index_digest = {
        use sha2::Digest as _;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(&index)))
    };
    std::fs::write(blob(&index_digest), &index).expect("write index");
    let mut top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
            .expect("json");
    top["manifests"]
        .as_array_mut()
        .expect("manifests")
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest, "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }));
    std::fs::write(layout.join("index.json"), top.to_string()).expect("write");
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", layout.display()),
        &format!("docker://{}/multi:1", reg.host),
    ]);
    let store = open(tmp.path(), RegistryConfig::default());
    let out = store
        .ensure(&format!("{}/multi:1", reg.host), PullPolicy::Always, &[])
        .await
        .expect("pull a multi-platform image");
    assert_eq!(
        out.image.digest, index_digest,
        "the index digest names the image"
    );
    assert_eq!(
        std::fs::read_to_string(out.image.layers[0].join("etc/marker"))
            .ok()
            .as_deref(),
        Some("host"),
        "this host's platform was chosen"
    );
    // Again: everything is there, nothing new.
    let n = blobs(&store);
    store
        .ensure(&format!("{}/multi:1", reg.host), PullPolicy::Always, &[])
        .await
        .expect("again");
    assert_eq!(blobs(&store), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_load_skopeo_docker_archive_and_oci_layout() {
    skip_unless!("skopeo");
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    busybox_layout(&layout, "test", "loaded");
    let archive = tmp.path().join("busybox-docker.tar");
    skopeo(&[
        "copy",
        &format!("oci:{}:test", layout.display()),
        &format!("docker-archive:{}:busybox:test", archive.display()),
    ]);
    let roundtrip = tmp.path().join("roundtrip");
    skopeo(&[
        "copy",
        &format!("docker-archive:{}", archive.display()),
        &format!("oci:{}:roundtrip", roundtrip.display()),
    ]);
    let store = open(tmp.path(), RegistryConfig::default());

    let t = Instant::now();
    let images = store.load(&archive).await.expect("load docker-archive");
    eprintln!(
        "measured: load of a skopeo docker-archive took {:?}",
        t.elapsed()
    );
    assert_eq!(images.len(), 1);
    let img = &images[0];
    assert_eq!(img.reference, "docker.io/library/busybox:test");
    assert!(img.layers[0].join("bin/busybox").is_file());
    assert_eq!(img.config.cmd, vec!["sh".to_string()]);
    let diff_id = img.layers[0].clone();

    // skopeo's layout has a bare tag as ref.name: the image is kept by digest.
    let images = store.load(&roundtrip).await.expect("load oci layout");
    assert_eq!(images.len(), 1);
    assert!(images[0].reference.starts_with("sha256:"));
    assert_eq!(
        images[0].layers,
        vec![diff_id],
        "same diff_id, one unpacked layer"
    );
    assert!(store.get(&images[0].digest).is_some());

    // Flattened, busybox runs from it.
    let rootfs = tmp.path().join("rootfs");
    store.flatten(img, &rootfs).expect("flatten");
    let out = Command::new(rootfs.join("bin/sh"))
        .args(["-c", "echo flat"])
        .output()
        .expect("run flattened busybox");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "flat\n");

    store.remove("busybox:test").expect("remove");
    assert!(store.get("busybox:test").is_none());
    assert!(
        store.get(&images[0].digest).is_some(),
        "the digest-only image stays"
    );
    store
        .remove(&images[0].digest)
        .expect("remove digest-only image");
    assert_eq!(blobs(&store), 0);
}
