//! A small deterministic OCI image-layout builder: enough to make a busybox image from
//! `/bin/busybox` without Docker (tests, end-to-end setups). skopeo, umoci, runc and the image
//! store all accept what it writes.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use oci_spec::image::{
    ANNOTATION_REF_NAME, ConfigBuilder, Descriptor, Digest, ImageConfigurationBuilder, ImageIndex,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, OciLayoutBuilder, RootFsBuilder,
};

use super::error::io_ctx;
use super::platform::HostPlatform;
use super::store::sha256_digest;
use super::{ImageConfig, ImageError};

/// One entry of a layer built by [`write_oci_layout`]. Paths are relative (`bin/busybox`);
/// owners are root, mtimes 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutFile {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    Symlink {
        path: String,
        target: String,
    },
    /// A hard link to `target`, an earlier entry of the same layer.
    Hardlink {
        path: String,
        target: String,
    },
}

impl LayoutFile {
    pub fn dir(path: &str, mode: u32) -> LayoutFile {
        LayoutFile::Dir {
            path: path.to_string(),
            mode,
        }
    }

    pub fn file(path: &str, mode: u32, data: impl Into<Vec<u8>>) -> LayoutFile {
        LayoutFile::File {
            path: path.to_string(),
            mode,
            data: data.into(),
        }
    }

    pub fn symlink(path: &str, target: &str) -> LayoutFile {
        LayoutFile::Symlink {
            path: path.to_string(),
            target: target.to_string(),
        }
    }

    /// A whiteout: in a layer above, hides `path` of the layers below.
    pub fn whiteout(path: &str) -> LayoutFile {
        let p = Path::new(path);
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let wh = match p.parent().map(|d| d.to_string_lossy().into_owned()) {
            Some(d) if !d.is_empty() => format!("{d}/.wh.{name}"),
            _ => format!(".wh.{name}"),
        };
        LayoutFile::file(&wh, 0o644, Vec::new())
    }
}

/// Writes (or adds to) an OCI image layout in `dir` with one gzip layer holding `files`, tagged
/// `reference_name` (the `org.opencontainers.image.ref.name` annotation, replacing an entry of
/// the same name). Returns the manifest digest. Same inputs, same digest.
pub fn write_oci_layout(
    dir: &Path,
    reference_name: &str,
    files: &[LayoutFile],
    config: ImageConfig,
) -> Result<String, ImageError> {
    write_oci_layout_layers(dir, reference_name, &[files.to_vec()], config)
}

/// [`write_oci_layout`] with several layers, bottom first.
pub fn write_oci_layout_layers(
    dir: &Path,
    reference_name: &str,
    layers: &[Vec<LayoutFile>],
    config: ImageConfig,
) -> Result<String, ImageError> {
    let what = format!("OCI layout {}", dir.display());
    let inv = |e: &dyn std::fmt::Display| ImageError::invalid(&what, e.to_string());
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(io_ctx(format!("cannot create {}", blobs.display())))?;
    let put = |data: &[u8]| -> Result<(Digest, u64), ImageError> {
        let digest = sha256_digest(data);
        let hex = digest.trim_start_matches("sha256:");
        fs::write(blobs.join(hex), data).map_err(io_ctx(format!(
            "cannot write blob {digest} in {}",
            dir.display()
        )))?;
        Ok((
            Digest::from_str(&digest).map_err(|e| inv(&e))?,
            data.len() as u64,
        ))
    };

    let mut diff_ids = Vec::new();
    let mut layer_descs = Vec::new();
    for files in layers {
        let tar = layer_tar(files).map_err(io_ctx("cannot build layer tar"))?;
        diff_ids.push(sha256_digest(&tar));
        let gz = gzip(&tar).map_err(io_ctx("cannot gzip layer"))?;
        let (d, size) = put(&gz)?;
        layer_descs.push(Descriptor::new(MediaType::ImageLayerGzip, size, d));
    }

    let platform = HostPlatform::current();
    let mut cb = ConfigBuilder::default();
    if !config.entrypoint.is_empty() {
        cb = cb.entrypoint(config.entrypoint.clone());
    }
    if !config.cmd.is_empty() {
        cb = cb.cmd(config.cmd.clone());
    }
    if !config.env.is_empty() {
        cb = cb.env(config.env.clone());
    }
    if let Some(w) = &config.working_dir {
        cb = cb.working_dir(w.clone());
    }
    if let Some(u) = &config.user {
        cb = cb.user(u.clone());
    }
    let image_config = ImageConfigurationBuilder::default()
        .architecture(platform.oci_arch())
        .os(platform.oci_os())
        .config(cb.build().map_err(|e| inv(&e))?)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(diff_ids)
                .build()
                .map_err(|e| inv(&e))?,
        )
        .build()
        .map_err(|e| inv(&e))?;
    let config_json = serde_json::to_vec(&image_config).map_err(|e| inv(&e))?;
    let (config_digest, config_size) = put(&config_json)?;

    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config_size,
            config_digest,
        ))
        .layers(layer_descs)
        .build()
        .map_err(|e| inv(&e))?;
    let manifest_json = serde_json::to_vec(&manifest).map_err(|e| inv(&e))?;
    let (manifest_digest, manifest_size) = put(&manifest_json)?;

    // index.json: keep other tags, replace this one.
    let index_path = dir.join("index.json");
    let mut manifests: Vec<Descriptor> = match fs::read(&index_path) {
        Ok(b) => serde_json::from_slice::<ImageIndex>(&b)
            .map_err(|e| inv(&e))?
            .manifests()
            .clone(),
        Err(_) => Vec::new(),
    };
    manifests.retain(|d| {
        d.annotations()
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_REF_NAME))
            .is_none_or(|n| n != reference_name)
    });
    let mut desc = Descriptor::new(
        MediaType::ImageManifest,
        manifest_size,
        manifest_digest.clone(),
    );
    desc.set_annotations(Some(HashMap::from([(
        ANNOTATION_REF_NAME.to_string(),
        reference_name.to_string(),
    )])));
    manifests.push(desc);
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .map_err(|e| inv(&e))?;
    write_atomic(
        &index_path,
        &serde_json::to_vec(&index).map_err(|e| inv(&e))?,
    )?;
    let layout = OciLayoutBuilder::default()
        .image_layout_version("1.0.0")
        .build()
        .map_err(|e| inv(&e))?;
    write_atomic(
        &dir.join("oci-layout"),
        &serde_json::to_vec(&layout).map_err(|e| inv(&e))?,
    )?;
    Ok(manifest_digest.to_string())
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), ImageError> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(io_ctx(format!("cannot write {}", path.display())))
}

/// A deterministic tar of `files` (GNU headers, owner 0:0, mtime 0).
pub(crate) fn layer_tar(files: &[LayoutFile]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for f in files {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        match f {
            LayoutFile::Dir { path, mode } => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                let p = format!("{}/", path.trim_end_matches('/'));
                b.append_data(&mut h, p, std::io::empty())?;
            }
            LayoutFile::File { path, mode, data } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, &data[..])?;
            }
            LayoutFile::Symlink { path, target } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, path, target)?;
            }
            LayoutFile::Hardlink { path, target } => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                h.set_size(0);
                b.append_link(&mut h, path, target)?;
            }
        }
    }
    b.into_inner()
}

fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    // GzBuilder's default header has mtime 0 and no file name: deterministic.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data)?;
    gz.finish()
}
