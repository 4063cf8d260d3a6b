//! Store-level tests without a registry: loading every archive kind built here, whiteouts across
//! layers, references, garbage collection, failures that leave nothing behind.

use std::fs;
use std::path::Path;

use super::*;

fn store(dir: &Path) -> ImageStore {
    ImageStore::open(&dir.join("store"), RegistryConfig::default()).expect("open store")
}

fn cfg() -> ImageConfig {
    ImageConfig {
        entrypoint: vec!["/bin/app".into()],
        cmd: vec!["--serve".into()],
        env: vec!["PATH=/bin".into()],
        working_dir: Some("/work".into()),
        user: Some("1000".into()),
    }
}

fn small_files(tag: &str) -> Vec<LayoutFile> {
    vec![
        LayoutFile::dir("bin", 0o755),
        LayoutFile::file("bin/app", 0o755, format!("#!/bin/sh\necho {tag}\n")),
        LayoutFile::symlink("bin/sh", "app"),
        LayoutFile::dir("etc", 0o755),
        LayoutFile::file("etc/shared", 0o644, "same in every image"),
    ]
}

/// A tar of everything under `dir` (paths relative to it).
fn tar_dir(dir: &Path, out: &Path) {
    let f = fs::File::create(out).expect("create tar");
    let mut b = tar::Builder::new(f);
    b.append_dir_all(".", dir).expect("tar dir");
    b.finish().expect("finish tar");
}

fn blob_count(store: &ImageStore) -> usize {
    fs::read_dir(store.root().join("blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn layer_count(store: &ImageStore) -> usize {
    fs::read_dir(store.root().join("layers/sha256"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn oci_layout_dir_and_oci_archive() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    let digest = write_oci_layout(&layout, "app:1.0", &small_files("one"), cfg()).expect("layout");
    // Deterministic: the same inputs give the same digest.
    let again = tmp.path().join("layout-again");
    assert_eq!(
        write_oci_layout(&again, "app:1.0", &small_files("one"), cfg()).ok(),
        Some(digest.clone())
    );
    // A second tag in the same layout with only a bare tag as its name.
    let bare = write_oci_layout(
        &layout,
        "latest",
        &small_files("two"),
        ImageConfig::default(),
    )
    .expect("second tag");

    let s = store(tmp.path());
    let images = s.load(&layout).await.expect("load layout dir");
    assert_eq!(images.len(), 2);
    let app = &images[0];
    assert_eq!(app.reference, "docker.io/library/app:1.0");
    assert_eq!(app.digest, digest);
    assert_eq!(app.image_id, format!("docker.io/library/app@{digest}"));
    assert_eq!(app.config, cfg());
    assert_eq!(app.layers.len(), 1);
    assert!(app.layers[0].join("bin/app").is_file());
    assert_eq!(
        fs::read_link(app.layers[0].join("bin/sh")).ok(),
        Some("app".into())
    );
    assert!(app.size > 0);
    // The bare-tag image is kept by digest only.
    assert_eq!(images[1].reference, bare);
    assert_eq!(images[1].image_id, bare);

    assert_eq!(s.get("app:1.0").map(|i| i.digest), Some(digest.clone()));
    assert_eq!(
        s.get(&digest).map(|i| i.reference),
        Some(app.reference.clone())
    );
    assert_eq!(
        s.get(&format!("app@{digest}")).map(|i| i.digest),
        Some(digest.clone())
    );
    assert!(s.get("app:2.0").is_none());
    assert!(s.get("Bad:Name").is_none());
    let list = s.list();
    assert_eq!(list.len(), 2);
    let entry = list.iter().find(|e| e.digest == digest).expect("listed");
    assert_eq!(
        entry.references,
        vec!["docker.io/library/app:1.0".to_string()]
    );
    assert!(
        list.iter()
            .any(|e| e.digest == bare && e.references.is_empty())
    );

    // An OCI archive (tar of the layout), gzip-compressed too, into a fresh store.
    let archive = tmp.path().join("layout.tar");
    tar_dir(&layout, &archive);
    let gz = tmp.path().join("layout.tar.gz");
    {
        let mut enc = flate2::write::GzEncoder::new(
            fs::File::create(&gz).expect("gz"),
            flate2::Compression::fast(),
        );
        std::io::copy(&mut fs::File::open(&archive).expect("tar"), &mut enc).expect("copy");
        enc.finish().expect("gz finish");
    }
    for (i, file) in [archive, gz].iter().enumerate() {
        let s2 = ImageStore::open(
            &tmp.path().join(format!("store{i}")),
            RegistryConfig::default(),
        )
        .expect("open");
        let images = s2.load(file).await.expect("load archive");
        assert_eq!(images[0].digest, digest);
        assert!(s2.get("docker.io/library/app:1.0").is_some());
        // Nothing left behind in tmp/.
        assert_eq!(
            fs::read_dir(s2.root().join("tmp")).map(|d| d.count()).ok(),
            Some(0)
        );
    }

    // Reopening finds everything.
    drop(s);
    let s = store(tmp.path());
    assert_eq!(s.get("app:1.0").map(|i| i.digest), Some(digest));
    assert_eq!(s.list().len(), 2);
}

/// A legacy `docker save` tarball as skopeo 1.9 writes it: uncompressed `<diffid>.tar` layers,
/// `<id>/layer.tar` symlinks, `<config>.json`, `manifest.json` with RepoTags, `repositories`.
#[tokio::test]
async fn legacy_docker_archive() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("archive");
    fs::create_dir_all(root.join("abc123")).expect("mkdir");
    let l1 = layout::layer_tar(&small_files("legacy")).expect("tar");
    let l2 = layout::layer_tar(&[LayoutFile::whiteout("etc/shared")]).expect("tar");
    let d1 = store::sha256_digest(&l1);
    let d2 = store::sha256_digest(&l2);
    let h1 = d1.trim_start_matches("sha256:");
    fs::write(root.join(format!("{h1}.tar")), &l1).expect("write");
    std::os::unix::fs::symlink(format!("../{h1}.tar"), root.join("abc123/layer.tar"))
        .expect("symlink");
    // The second layer gzip-compressed, as some tools write it.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &l2).expect("gz");
    fs::write(root.join("l2.tar"), gz.finish().expect("gz")).expect("write");
    let config = serde_json::json!({
        "architecture": platform::HostPlatform::current().arch,
        "os": "linux",
        "config": {"Cmd": ["/bin/app"], "Env": ["A=b"]},
        "rootfs": {"type": "layers", "diff_ids": [d1, d2]},
        "container_config": {"Hostname": "ignored"},
    });
    let config = serde_json::to_vec(&config).expect("config");
    let ch = store::sha256_digest(&config);
    let ch = ch.trim_start_matches("sha256:");
    fs::write(root.join(format!("{ch}.json")), &config).expect("write");
    let manifest = serde_json::json!([{
        "Config": format!("{ch}.json"),
        "RepoTags": ["myapp:legacy", "localhost:5000/team/myapp:v2"],
        "Layers": ["abc123/layer.tar", "l2.tar"],
    }]);
    fs::write(root.join("manifest.json"), manifest.to_string()).expect("write");
    fs::write(root.join("repositories"), "{}").expect("write");
    let tarball = tmp.path().join("docker.tar");
    tar_dir(&root, &tarball);

    let s = store(tmp.path());
    let images = s.load(&tarball).await.expect("load docker archive");
    assert_eq!(images.len(), 1);
    let img = &images[0];
    assert_eq!(img.reference, "docker.io/library/myapp:legacy");
    assert_eq!(img.config.cmd, vec!["/bin/app".to_string()]);
    assert_eq!(img.config.env, vec!["A=b".to_string()]);
    assert_eq!(img.layers.len(), 2);
    assert!(img.layers[0].ends_with(h1));
    assert!(s.get("localhost:5000/team/myapp:v2").is_some());
    let flat = tmp.path().join("rootfs");
    s.flatten(img, &flat).expect("flatten");
    assert!(flat.join("bin/app").is_file());
    assert!(!flat.join("etc/shared").exists(), "whited out by layer 2");
    assert!(flat.join("etc").is_dir());

    // A layer whose content is not its diff_id: refused, nothing new kept.
    let bad = tmp.path().join("bad");
    fs::create_dir_all(&bad).expect("mkdir");
    let other = layout::layer_tar(&[LayoutFile::file("x", 0o644, "not what the config says")])
        .expect("tar");
    fs::write(bad.join("layer.tar"), &other).expect("write");
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", "0".repeat(64))]},
    });
    fs::write(bad.join("c.json"), config.to_string()).expect("write");
    let manifest =
        serde_json::json!([{"Config": "c.json", "RepoTags": ["bad:1"], "Layers": ["layer.tar"]}]);
    fs::write(bad.join("manifest.json"), manifest.to_string()).expect("write");
    let layers_before = layer_count(&s);
    match s.load(&bad).await {
        Err(ImageError::DigestMismatch { .. }) => {}
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert_eq!(layer_count(&s), layers_before);
    assert!(s.get("bad:1").is_none());
    assert_eq!(
        fs::read_dir(s.root().join("tmp")).map(|d| d.count()).ok(),
        Some(0)
    );

    // A path escaping the archive.
    let manifest = serde_json::json!([{"Config": "../../etc/passwd", "Layers": []}]);
    fs::write(bad.join("manifest.json"), manifest.to_string()).expect("write");
    assert!(s.load(&bad).await.is_err());
}

/// Docker 25+ `docker save`: an OCI layout whose index names the image with
/// `io.containerd.image.name` and points to a multi-platform index, plus manifest.json.
#[tokio::test]
async fn docker25_oci_tarball_with_platform_index() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    let host = write_oci_layout(&layout, "tmp", &small_files("host"), cfg()).expect("layout");
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let size = fs::metadata(blob(&host)).map(|m| m.len()).expect("size");
    let other_arch = if platform::HostPlatform::current().arch == "amd64" {
        "arm64"
    } else {
        "amd64"
    };
    // The other platform's manifest is not in the archive, as with `docker save` of one platform.
    let nested = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": format!("sha256:{}", "a".repeat(64)), "size": 10,
             "platform": {"os": "linux", "architecture": other_arch}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": host, "size": size,
             "platform": {"os": "linux", "architecture": platform::HostPlatform::current().arch}},
        ],
    });
    let nested = serde_json::to_vec(&nested).expect("json");
    let nested_digest = store::sha256_digest(&nested);
    fs::write(blob(&nested_digest), &nested).expect("write");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": nested_digest, "size": nested.len(),
            "annotations": {
                "io.containerd.image.name": "docker.io/library/app:v25",
                "org.opencontainers.image.ref.name": "v25",
            },
        }],
    });
    fs::write(layout.join("index.json"), index.to_string()).expect("write");
    fs::write(layout.join("manifest.json"), "[]").expect("write");
    let tarball = tmp.path().join("docker25.tar");
    tar_dir(&layout, &tarball);

    let s = store(tmp.path());
    let images = s.load(&tarball).await.expect("load");
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].reference, "docker.io/library/app:v25");
    // The image's digest is the index's, as the registry and the kubelet show it.
    assert_eq!(images[0].digest, nested_digest);
    assert_eq!(images[0].config, cfg());
    assert_eq!(
        s.get(&format!("app@{nested_digest}")).map(|i| i.digest),
        Some(nested_digest.clone())
    );
}

#[tokio::test]
async fn whiteouts_across_layers_and_flatten() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    let layers = vec![
        vec![
            LayoutFile::dir("etc", 0o755),
            LayoutFile::file("etc/a", 0o644, "a"),
            LayoutFile::file("etc/b", 0o644, "b"),
            LayoutFile::dir("var/cache", 0o755),
            LayoutFile::file("var/cache/old", 0o644, "old"),
            LayoutFile::file("bin/tool", 0o755, "tool"),
            LayoutFile::Hardlink {
                path: "bin/tool2".into(),
                target: "bin/tool".into(),
            },
        ],
        vec![
            LayoutFile::whiteout("etc/a"),
            LayoutFile::dir("var/cache", 0o700),
            LayoutFile::file("var/cache/.wh..wh..opq", 0o644, ""),
            LayoutFile::file("var/cache/new", 0o600, "new"),
        ],
    ];
    write_oci_layout_layers(&layout, "layered:1", &layers, ImageConfig::default()).expect("layout");
    let s = store(tmp.path());
    let img = s
        .load(&layout)
        .await
        .expect("load")
        .into_iter()
        .next()
        .expect("one image");
    assert_eq!(img.layers.len(), 2);
    if unpack::is_root() {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let wh = fs::symlink_metadata(img.layers[1].join("etc/a")).expect("whiteout");
        assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    }
    overlay_view_matches(&img, tmp.path());
    let flat = tmp.path().join("flat");
    s.flatten(&img, &flat).expect("flatten");
    assert!(!flat.join("etc/a").exists());
    assert_eq!(
        fs::read_to_string(flat.join("etc/b")).ok().as_deref(),
        Some("b")
    );
    assert!(!flat.join("var/cache/old").exists());
    assert_eq!(
        fs::read_to_string(flat.join("var/cache/new"))
            .ok()
            .as_deref(),
        Some("new")
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        fs::metadata(flat.join("var/cache"))
            .map(|m| m.mode() & 0o777)
            .ok(),
        Some(0o700)
    );
    assert_eq!(
        fs::metadata(flat.join("bin/tool2")).map(|m| m.nlink()).ok(),
        Some(2)
    );
}

#[tokio::test]
async fn remove_untags_and_collects_garbage() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    let shared = vec![LayoutFile::file("shared", 0o644, "shared layer")];
    write_oci_layout_layers(
        &layout,
        "one:1",
        &[shared.clone(), vec![LayoutFile::file("one", 0o644, "1")]],
        ImageConfig::default(),
    )
    .expect("one");
    write_oci_layout_layers(
        &layout,
        "two:1",
        &[shared, vec![LayoutFile::file("two", 0o644, "2")]],
        ImageConfig::default(),
    )
    .expect("two");
    let s = store(tmp.path());
    s.load(&layout).await.expect("load");
    assert_eq!(layer_count(&s), 3);
    let one = s.get("one:1").expect("one");
    s.load(&layout).await.expect("reload is a no-op");
    assert_eq!(s.list().len(), 2);

    s.remove("one:1").expect("remove one");
    assert!(s.get("one:1").is_none());
    assert!(s.get("two:1").is_some());
    assert_eq!(layer_count(&s), 2, "the shared layer stays");
    assert!(!one.layers[1].exists());
    assert!(one.layers[0].exists());
    match s.remove("one:1") {
        Err(ImageError::NotPresent { reference }) => assert_eq!(reference, "one:1"),
        other => panic!("expected NotPresent, got {other:?}"),
    }
    let two = s.get("two:1").expect("two");
    s.remove(&two.digest).expect("remove by digest");
    assert_eq!(layer_count(&s), 0);
    assert_eq!(blob_count(&s), 0);
    assert!(s.list().is_empty());
}

#[tokio::test]
async fn never_and_if_not_present_use_what_is_there() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = store(tmp.path());
    let e = s
        .ensure("busybox", PullPolicy::Never, &[])
        .await
        .expect_err("absent");
    assert_eq!(
        e.to_string(),
        "Container image \"busybox\" is not present with pull policy of Never"
    );
    assert_eq!(e.kubelet_reason(), "ErrImageNeverPull");
    let e = s
        .ensure("Bad:Name", PullPolicy::Never, &[])
        .await
        .expect_err("invalid");
    assert_eq!(e.kubelet_reason(), "InvalidImageName");

    let layout = tmp.path().join("layout");
    write_oci_layout(&layout, "busybox:latest", &small_files("x"), cfg()).expect("layout");
    s.load(&layout).await.expect("load");
    for policy in [PullPolicy::Never, PullPolicy::IfNotPresent] {
        let out = s.ensure("busybox", policy, &[]).await.expect("present");
        assert!(!out.pulled);
        assert_eq!(out.image.reference, "docker.io/library/busybox:latest");
    }
    assert_eq!(s.pulls_started(), 0);
}

#[tokio::test]
async fn corrupt_blob_in_layout_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    let digest = write_oci_layout(&layout, "c:1", &small_files("c"), cfg()).expect("layout");
    let m: serde_json::Value = serde_json::from_slice(
        &fs::read(
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .expect("manifest"),
    )
    .expect("json");
    let layer = m["layers"][0]["digest"]
        .as_str()
        .expect("layer digest")
        .to_string();
    let path = layout
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut data = fs::read(&path).expect("layer");
    let last = data.len() - 1;
    data[last] ^= 0xff;
    fs::write(&path, data).expect("write");
    let s = store(tmp.path());
    match s.load(&layout).await {
        Err(ImageError::DigestMismatch { expected, .. }) => assert_eq!(expected, layer),
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    assert!(
        !s.root()
            .join("blobs/sha256")
            .join(layer.trim_start_matches("sha256:"))
            .exists()
    );
    assert_eq!(
        fs::read_dir(s.root().join("tmp")).map(|d| d.count()).ok(),
        Some(0)
    );
    assert!(s.get("c:1").is_none());
}

/// As root, where overlayfs is available: the layers as lowerdirs (top first) show what
/// `flatten` makes.
fn overlay_view_matches(img: &Image, tmp: &Path) {
    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    if !unpack::is_root() {
        eprintln!("overlay check skipped: not root");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = umount2(&self.0, MntFlags::MNT_DETACH);
        }
    }
    let target = tmp.join("overlay");
    fs::create_dir_all(&target).expect("mountpoint");
    let lower: Vec<String> = img
        .layers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    let opts = format!("lowerdir={}", lower.join(":"));
    if let Err(e) = mount(
        Some("overlay"),
        &target,
        Some("overlay"),
        MsFlags::MS_RDONLY,
        Some(opts.as_str()),
    ) {
        eprintln!("overlay check skipped: mount failed: {e}");
        return;
    }
    let _guard = Unmount(target.clone());
    assert!(!target.join("etc/a").exists(), "whiteout hides etc/a");
    assert_eq!(
        fs::read_to_string(target.join("etc/b")).ok().as_deref(),
        Some("b")
    );
    assert!(
        !target.join("var/cache/old").exists(),
        "opaque dir hides lower content"
    );
    assert_eq!(
        fs::read_to_string(target.join("var/cache/new"))
            .ok()
            .as_deref(),
        Some("new")
    );
}
