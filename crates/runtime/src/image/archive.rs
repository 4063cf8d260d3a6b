//! Loading images from files: `docker save` tarballs (the legacy `manifest.json` layout and the
//! OCI layout Docker 25+ writes), OCI layout directories and OCI archives.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::image::{
    ANNOTATION_REF_NAME, Descriptor, Digest, ImageConfiguration, ImageIndex, ImageManifest,
    ImageManifestBuilder, MediaType,
};
use serde::Deserialize;
use tracing::{debug, warn};

use super::error::io_ctx;
use super::platform::{self, HostPlatform};
use super::store::{Manifest, Store, parse_manifest, remove_any};
use super::unpack::{self, Compression};
use super::{ImageError, ImageRef};

/// containerd's (and Docker 25's) annotation with the full image name.
const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";

/// One image loaded: its normalized names (maybe none) and its top-level digest.
pub(crate) struct Loaded {
    pub names: Vec<String>,
    pub top: String,
}

/// One entry of a `docker save` `manifest.json`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Stores every image of the file or directory at `path`, layers unpacked. References are left
/// to the caller.
pub(crate) fn load(
    store: &Store,
    platform: &HostPlatform,
    path: &Path,
) -> Result<Vec<Loaded>, ImageError> {
    let meta = fs::metadata(path).map_err(io_ctx(format!("cannot load {}", path.display())))?;
    if meta.is_dir() {
        return load_dir(store, platform, path);
    }
    // A tarball: extract it next to the store (same file system, cleaned up afterwards).
    let tmp = store.temp_path("load");
    let res = (|| {
        let file = File::open(path).map_err(io_ctx(format!("cannot open {}", path.display())))?;
        let reader = unpack::decompressed(file)
            .map_err(io_ctx(format!("cannot read {}", path.display())))?;
        let mut ar = tar::Archive::new(reader);
        ar.set_preserve_permissions(false);
        ar.set_preserve_ownerships(false);
        ar.unpack(&tmp).map_err(|e| {
            ImageError::invalid(
                format!("archive {}", path.display()),
                format!("not a readable tar: {e}"),
            )
        })?;
        load_dir(store, platform, &tmp)
    })();
    let _ = remove_any(&tmp);
    res
}

fn load_dir(store: &Store, platform: &HostPlatform, dir: &Path) -> Result<Vec<Loaded>, ImageError> {
    if dir.join("index.json").is_file() {
        load_oci(store, platform, dir)
    } else if dir.join("manifest.json").is_file() {
        load_docker(store, dir)
    } else {
        Err(ImageError::invalid(
            dir.display().to_string(),
            "neither an OCI image layout (index.json) nor a docker save archive (manifest.json)",
        ))
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ImageError> {
    let b = fs::read(path).map_err(io_ctx(format!("cannot read {}", path.display())))?;
    serde_json::from_slice(&b)
        .map_err(|e| ImageError::invalid(path.display().to_string(), e.to_string()))
}

/// `dir/rel`, refusing anything (`..`, symlinks) that resolves outside `dir`.
fn inside(dir: &Path, rel: &str) -> Result<PathBuf, ImageError> {
    let base = dir
        .canonicalize()
        .map_err(io_ctx(format!("cannot resolve {}", dir.display())))?;
    let p = dir
        .join(rel)
        .canonicalize()
        .map_err(io_ctx(format!("{rel} in {}", dir.display())))?;
    if !p.starts_with(&base) {
        return Err(ImageError::invalid(
            dir.display().to_string(),
            format!("{rel} points outside the archive"),
        ));
    }
    Ok(p)
}

fn layout_blob(dir: &Path, digest: &str) -> Result<PathBuf, ImageError> {
    let (alg, hex) = digest
        .split_once(':')
        .filter(|(a, h)| {
            *a == "sha256" && h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())
        })
        .ok_or_else(|| {
            ImageError::invalid(
                dir.display().to_string(),
                format!("unsupported digest {digest}"),
            )
        })?;
    Ok(dir.join("blobs").join(alg).join(hex))
}

/// Names from an index entry's annotations: `io.containerd.image.name`, else a
/// `org.opencontainers.image.ref.name` that is a name and not just a tag.
fn names_from(desc: &Descriptor) -> Vec<String> {
    let Some(a) = desc.annotations() else {
        return Vec::new();
    };
    let candidate = a.get(CONTAINERD_IMAGE_NAME).or_else(|| {
        a.get(ANNOTATION_REF_NAME)
            .filter(|n| n.contains('/') || n.contains(':'))
    });
    match candidate.map(|n| ImageRef::parse(n)) {
        Some(Ok(r)) => vec![r.to_string()],
        Some(Err(e)) => {
            warn!(error = %e, "ignoring an image name in an OCI layout");
            Vec::new()
        }
        None => Vec::new(),
    }
}

fn load_oci(store: &Store, platform: &HostPlatform, dir: &Path) -> Result<Vec<Loaded>, ImageError> {
    let index: ImageIndex = read_json(&dir.join("index.json"))?;
    // Docker 25+ also writes manifest.json: its RepoTags name images the index does not.
    let legacy: HashMap<String, Vec<String>> = if dir.join("manifest.json").is_file() {
        read_json::<Vec<DockerEntry>>(&dir.join("manifest.json"))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| {
                let hex = Path::new(&e.config)
                    .file_name()?
                    .to_string_lossy()
                    .into_owned();
                let hex = hex.trim_end_matches(".json").to_string();
                Some((format!("sha256:{hex}"), e.repo_tags.unwrap_or_default()))
            })
            .collect()
    } else {
        HashMap::new()
    };
    let mut out = Vec::new();
    for desc in index.manifests() {
        let top = desc.digest().to_string();
        let manifest = import_oci_tree(store, platform, dir, &top)?;
        let mut names = names_from(desc);
        if names.is_empty()
            && let Some(tags) = legacy.get(&manifest.config().digest().to_string())
        {
            names = normalize_tags(tags);
        }
        unpack_all(store, &manifest, &top)?;
        debug!(image = %top, ?names, "loaded from OCI layout");
        out.push(Loaded { names, top });
    }
    if out.is_empty() {
        return Err(ImageError::invalid(
            dir.display().to_string(),
            "the index lists no image",
        ));
    }
    Ok(out)
}

/// Copies `digest` and what it needs for this platform from the layout into the store;
/// returns the image manifest.
fn import_oci_tree(
    store: &Store,
    platform: &HostPlatform,
    dir: &Path,
    digest: &str,
) -> Result<ImageManifest, ImageError> {
    let mut digest = digest.to_string();
    for _ in 0..8 {
        let what = format!("manifest {digest} in {}", dir.display());
        store.import_blob_file(&layout_blob(dir, &digest)?, Some(&digest), &what)?;
        match parse_manifest(&store.read_blob(&digest)?, &what)? {
            Manifest::Index(i) => {
                let child = platform::select(&i, platform)
                    .map_err(|available| ImageError::NoMatchingPlatform {
                        reference: dir.display().to_string(),
                        wanted: platform.to_string(),
                        available,
                    })?
                    .digest()
                    .to_string();
                digest = child;
            }
            Manifest::Image(m) => {
                let c = m.config().digest().to_string();
                store.import_blob_file(&layout_blob(dir, &c)?, Some(&c), &format!("config {c}"))?;
                for l in m.layers() {
                    let mt = l.media_type().to_string();
                    if !unpack::is_supported_layer(&mt) {
                        return Err(ImageError::UnsupportedMediaType {
                            reference: dir.display().to_string(),
                            media_type: mt,
                        });
                    }
                    let d = l.digest().to_string();
                    store.import_blob_file(
                        &layout_blob(dir, &d)?,
                        Some(&d),
                        &format!("layer {d}"),
                    )?;
                }
                return Ok(*m);
            }
        }
    }
    Err(ImageError::invalid(
        dir.display().to_string(),
        "indexes nested too deep",
    ))
}

fn config_of(store: &Store, manifest: &ImageManifest) -> Result<ImageConfiguration, ImageError> {
    let c = manifest.config().digest().to_string();
    serde_json::from_slice(&store.read_blob(&c)?)
        .map_err(|e| ImageError::invalid(format!("config {c}"), e.to_string()))
}

fn unpack_all(store: &Store, manifest: &ImageManifest, top: &str) -> Result<(), ImageError> {
    let config = config_of(store, manifest)?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(ImageError::invalid(
            format!("image {top}"),
            format!(
                "{} layers but {} diff_ids in the config",
                manifest.layers().len(),
                diff_ids.len()
            ),
        ));
    }
    for (l, diff_id) in manifest.layers().iter().zip(diff_ids) {
        unpack::unpack_into_store(store, l.digest().as_ref(), diff_id)?;
    }
    Ok(())
}

fn normalize_tags(tags: &[String]) -> Vec<String> {
    tags.iter()
        .filter_map(|t| match ImageRef::parse(t) {
            Ok(r) => Some(r.to_string()),
            Err(e) => {
                warn!(tag = %t, error = %e, "ignoring an unparsable RepoTag");
                None
            }
        })
        .collect()
}

/// The legacy `docker save` layout: configs and (usually uncompressed) layer tars named in
/// `manifest.json`. Each image gets an OCI manifest made here.
fn load_docker(store: &Store, dir: &Path) -> Result<Vec<Loaded>, ImageError> {
    let entries: Vec<DockerEntry> = read_json(&dir.join("manifest.json"))?;
    let mut out = Vec::new();
    let inv =
        |e: &dyn std::fmt::Display| ImageError::invalid(dir.display().to_string(), e.to_string());
    for e in entries {
        let (config_digest, config_size) = store.import_blob_file(
            &inside(dir, &e.config)?,
            None,
            &format!("config {}", e.config),
        )?;
        let mut layers = Vec::new();
        for l in &e.layers {
            let src = inside(dir, l)?;
            let mut head = [0u8; 4];
            let n = File::open(&src)
                .and_then(|mut f| f.read(&mut head))
                .map_err(io_ctx(format!("cannot read {}", src.display())))?;
            let media_type = match unpack::sniff(&head[..n]) {
                Compression::Gzip => MediaType::ImageLayerGzip,
                Compression::Zstd => MediaType::ImageLayerZstd,
                Compression::None => MediaType::ImageLayer,
            };
            let (d, size) = store.import_blob_file(&src, None, &format!("layer {l}"))?;
            layers.push(Descriptor::new(
                media_type,
                size,
                Digest::from_str(&d).map_err(|e| inv(&e))?,
            ));
        }
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(Descriptor::new(
                MediaType::ImageConfig,
                config_size,
                Digest::from_str(&config_digest).map_err(|e| inv(&e))?,
            ))
            .layers(layers)
            .build()
            .map_err(|e| inv(&e))?;
        let bytes = serde_json::to_vec(&manifest).map_err(|e| inv(&e))?;
        let top = store.write_blob(&bytes, None, "manifest")?;
        unpack_all(store, &manifest, &top)?;
        let names = normalize_tags(&e.repo_tags.unwrap_or_default());
        debug!(image = %top, ?names, "loaded from docker archive");
        out.push(Loaded { names, top });
    }
    if out.is_empty() {
        return Err(ImageError::invalid(
            dir.display().to_string(),
            "manifest.json lists no image",
        ));
    }
    Ok(out)
}
