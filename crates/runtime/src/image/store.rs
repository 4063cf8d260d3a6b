//! The content-addressed store on disk (all synchronous):
//!
//! ```text
//! ROOT/blobs/sha256/<hex>          manifests, indexes, configs and layers as pulled, verified
//! ROOT/layers/sha256/<diff-hex>/   each layer unpacked on its own (an overlayfs lowerdir)
//! ROOT/references.json             {"references": {"docker.io/library/busybox:latest": "sha256:…"}}
//! ROOT/tmp/                        partial downloads and unpacks, renamed into place when verified
//! ROOT/references.lock, gc.lock    flock(2) files shared by every process using ROOT
//! ```
//!
//! Pulls and loads hold `gc.lock` shared for their whole run; garbage collection takes it
//! exclusively without waiting and is put off while any pull runs, so it never deletes a blob a
//! pull has just written but not yet referenced.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tracing::{debug, info, warn};

use super::ImageError;
use super::error::io_ctx;
use super::platform::{self, HostPlatform};
use super::reference::digest_hex;

const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const MANIFEST_TYPES: [&str; 2] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// `sha256:<hex>` of `data`.
pub(crate) fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A reader that hashes what passes through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Reads to the end, then returns `(sha256:<hex>, bytes read)`.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.len,
        ))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// A parsed manifest: an index (multi-platform) or a single image.
pub(crate) enum Manifest {
    Index(Box<ImageIndex>),
    Image(Box<ImageManifest>),
}

/// Parses a manifest or index (OCI or Docker schema 2); `what` names it in errors.
pub(crate) fn parse_manifest(bytes: &[u8], what: &str) -> Result<Manifest, ImageError> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ImageError::invalid(what, e.to_string()))?;
    match v.get("schemaVersion").and_then(serde_json::Value::as_u64) {
        Some(2) => {}
        Some(1) => {
            return Err(ImageError::invalid(
                what,
                "Docker image manifest schema 1 is not supported",
            ));
        }
        _ => return Err(ImageError::invalid(what, "not a schema 2 manifest")),
    }
    let media_type = v.get("mediaType").and_then(serde_json::Value::as_str);
    let is_index = match media_type {
        Some(t) if INDEX_TYPES.contains(&t) => true,
        Some(t) if MANIFEST_TYPES.contains(&t) => false,
        Some(t) => {
            return Err(ImageError::invalid(
                what,
                format!("unsupported manifest media type {t}"),
            ));
        }
        None => v.get("manifests").is_some(),
    };
    if is_index {
        serde_json::from_value(v)
            .map(|i| Manifest::Index(Box::new(i)))
            .map_err(|e| ImageError::invalid(what, e.to_string()))
    } else {
        serde_json::from_value(v)
            .map(|m| Manifest::Image(Box::new(m)))
            .map_err(|e| ImageError::invalid(what, e.to_string()))
    }
}

/// An image resolved from its top-level digest through the local blobs.
pub(crate) struct Resolved {
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
    pub layer_dirs: Vec<PathBuf>,
    /// Every layer is unpacked.
    pub complete: bool,
}

#[derive(Serialize, Deserialize, Default)]
pub(crate) struct RefsFile {
    #[serde(default)]
    pub references: BTreeMap<String, String>,
}

pub(crate) struct Store {
    root: PathBuf,
    blobs: PathBuf,
    layers: PathBuf,
    tmp: PathBuf,
    refs_path: PathBuf,
    refs_lock: PathBuf,
    gc_lock: PathBuf,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Temporary entries older than this are from a crashed process and are deleted at `open`.
const STALE_TMP: Duration = Duration::from_secs(24 * 3600);

impl Store {
    pub fn open(root: &Path) -> Result<Store, ImageError> {
        fs::create_dir_all(root).map_err(io_ctx(format!(
            "cannot create image store directory {}",
            root.display()
        )))?;
        // Absolute paths: layer directories end up in overlayfs mount options.
        let root = root
            .canonicalize()
            .map_err(io_ctx(format!("cannot resolve {}", root.display())))?;
        let store = Store {
            blobs: root.join("blobs").join("sha256"),
            layers: root.join("layers").join("sha256"),
            tmp: root.join("tmp"),
            refs_path: root.join("references.json"),
            refs_lock: root.join("references.lock"),
            gc_lock: root.join("gc.lock"),
            root,
        };
        for d in [&store.blobs, &store.layers, &store.tmp] {
            fs::create_dir_all(d).map_err(io_ctx(format!(
                "cannot create image store directory {}",
                d.display()
            )))?;
        }
        // Fail now, not at the first pull, on a damaged references file.
        store.read_refs()?;
        store.clean_stale_tmp();
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn clean_stale_tmp(&self) {
        let Ok(entries) = fs::read_dir(&self.tmp) else {
            return;
        };
        let now = SystemTime::now();
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > STALE_TMP);
            if old {
                debug!(path = %e.path().display(), "removing stale temporary entry");
                let _ = remove_any(&e.path());
            }
        }
    }

    /// A fresh path under `tmp/` (nothing is created).
    pub fn temp_path(&self, prefix: &str) -> PathBuf {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        self.tmp
            .join(format!("{prefix}-{}-{n}-{nanos}", std::process::id()))
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        let hex = digest_hex(digest).ok_or_else(|| {
            ImageError::invalid(
                format!("digest {digest:?}"),
                "only sha256 digests are supported",
            )
        })?;
        Ok(self.blobs.join(hex))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    pub fn blob_size(&self, digest: &str) -> Option<u64> {
        let p = self.blob_path(digest).ok()?;
        fs::metadata(p).ok().map(|m| m.len())
    }

    /// A small blob (manifest, index, config), verified against its digest.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let path = self.blob_path(digest)?;
        let data =
            fs::read(&path).map_err(io_ctx(format!("cannot read blob {}", path.display())))?;
        let actual = sha256_digest(&data);
        if actual != digest {
            return Err(ImageError::DigestMismatch {
                what: format!("stored blob {}", path.display()),
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(data)
    }

    /// Stores `data`; with `expected`, its digest must match. Returns the digest.
    pub fn write_blob(
        &self,
        data: &[u8],
        expected: Option<&str>,
        what: &str,
    ) -> Result<String, ImageError> {
        let digest = sha256_digest(data);
        if let Some(e) = expected
            && e != digest
        {
            return Err(ImageError::DigestMismatch {
                what: what.to_string(),
                expected: e.to_string(),
                actual: digest,
            });
        }
        if self.has_blob(&digest) {
            return Ok(digest);
        }
        let tmp = self.temp_path("blob");
        let res = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_data()
        })();
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(ImageError::io(format!("cannot write {what}"), e));
        }
        self.commit_blob(&tmp, &digest)?;
        Ok(digest)
    }

    /// Copies the file `src` into the store, hashing as it goes; with `expected`, the digest must
    /// match. Returns `(digest, size)`.
    pub fn import_blob_file(
        &self,
        src: &Path,
        expected: Option<&str>,
        what: &str,
    ) -> Result<(String, u64), ImageError> {
        if let Some(e) = expected
            && self.has_blob(e)
        {
            let size = self.blob_size(e).unwrap_or(0);
            return Ok((e.to_string(), size));
        }
        let tmp = self.temp_path("blob");
        let res = (|| {
            let mut reader = HashingReader::new(io::BufReader::new(File::open(src)?));
            let mut f = File::create(&tmp)?;
            io::copy(&mut reader, &mut f)?;
            f.sync_data()?;
            reader.finish()
        })();
        let (digest, size) = match res {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(ImageError::io(
                    format!("cannot copy {what} from {}", src.display()),
                    e,
                ));
            }
        };
        if let Some(e) = expected
            && e != digest
        {
            let _ = fs::remove_file(&tmp);
            return Err(ImageError::DigestMismatch {
                what: what.to_string(),
                expected: e.to_string(),
                actual: digest,
            });
        }
        self.commit_blob(&tmp, &digest)?;
        Ok((digest, size))
    }

    /// Renames a verified temporary file to its blob path.
    pub fn commit_blob(&self, tmp: &Path, digest: &str) -> Result<(), ImageError> {
        let dst = self.blob_path(digest)?;
        fs::rename(tmp, &dst).map_err(|e| {
            let _ = fs::remove_file(tmp);
            ImageError::io(format!("cannot store blob {digest}"), e)
        })
    }

    pub fn layer_dir(&self, diff_id: &str) -> Result<PathBuf, ImageError> {
        let hex = digest_hex(diff_id).ok_or_else(|| {
            ImageError::invalid(
                format!("diff_id {diff_id:?}"),
                "only sha256 digests are supported",
            )
        })?;
        Ok(self.layers.join(hex))
    }

    pub fn has_layer(&self, diff_id: &str) -> bool {
        self.layer_dir(diff_id).is_ok_and(|p| p.is_dir())
    }

    pub fn read_refs(&self) -> Result<RefsFile, ImageError> {
        match fs::read(&self.refs_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                ImageError::invalid(
                    format!("references file {}", self.refs_path.display()),
                    e.to_string(),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(RefsFile::default()),
            Err(e) => Err(ImageError::io(
                format!("cannot read {}", self.refs_path.display()),
                e,
            )),
        }
    }

    /// Read-modify-write of the references under an exclusive lock; the file is replaced
    /// atomically (written next to it, then renamed).
    pub fn update_refs<T>(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, String>) -> T,
    ) -> Result<T, ImageError> {
        let _lock = lock_file(&self.refs_lock, FlockArg::LockExclusive)?;
        let mut refs = self.read_refs()?;
        let out = f(&mut refs.references);
        let tmp = self.temp_path("refs");
        let res = (|| {
            let mut file = File::create(&tmp)?;
            serde_json::to_writer_pretty(&mut file, &refs)?;
            file.write_all(b"\n")?;
            file.sync_data()?;
            fs::rename(&tmp, &self.refs_path)
        })();
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(ImageError::io(
                format!("cannot write {}", self.refs_path.display()),
                e,
            ));
        }
        Ok(out)
    }

    /// Held (shared) by pulls and loads while they run; blocks while a GC runs.
    pub fn lock_shared(&self) -> Result<Flock<File>, ImageError> {
        lock_file(&self.gc_lock, FlockArg::LockShared)
    }

    /// Resolves a top-level digest (manifest or index) through the local blobs. `None` when a
    /// manifest or the config is not stored.
    pub fn resolve(
        &self,
        top: &str,
        platform: &HostPlatform,
    ) -> Result<Option<Resolved>, ImageError> {
        if !self.has_blob(top) {
            return Ok(None);
        }
        let mut digest = top.to_string();
        let manifest = loop {
            let bytes = self.read_blob(&digest)?;
            match parse_manifest(&bytes, &format!("manifest {digest}"))? {
                Manifest::Image(m) => break *m,
                Manifest::Index(i) => {
                    let d = platform::select(&i, platform).map_err(|available| {
                        ImageError::NoMatchingPlatform {
                            reference: top.to_string(),
                            wanted: platform.to_string(),
                            available,
                        }
                    })?;
                    let child = d.digest().to_string();
                    if child == digest || !self.has_blob(&child) {
                        return Ok(None);
                    }
                    digest = child;
                }
            }
        };
        let config_digest = manifest.config().digest().to_string();
        if !self.has_blob(&config_digest) {
            return Ok(None);
        }
        let config: ImageConfiguration = serde_json::from_slice(&self.read_blob(&config_digest)?)
            .map_err(|e| {
            ImageError::invalid(format!("config {config_digest}"), e.to_string())
        })?;
        let diff_ids = config.rootfs().diff_ids().clone();
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
        let layer_dirs = diff_ids
            .iter()
            .map(|d| self.layer_dir(d))
            .collect::<Result<Vec<_>, _>>()?;
        let complete = layer_dirs.iter().all(|d| d.is_dir());
        Ok(Some(Resolved {
            manifest,
            config,
            layer_dirs,
            complete,
        }))
    }

    /// Deletes blobs and unpacked layers that no reference reaches. Returns `false` (and does
    /// nothing) while a pull or load holds the store, in this process or another.
    pub fn gc(&self) -> Result<bool, ImageError> {
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.gc_lock)
            .map_err(io_ctx(format!("cannot open {}", self.gc_lock.display())))?;
        let _lock = match Flock::lock(lock, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(false),
            Err((_, e)) => {
                return Err(ImageError::io(
                    format!("cannot lock {}", self.gc_lock.display()),
                    io::Error::from(e),
                ));
            }
        };
        let refs = self.read_refs()?;
        let mut keep_blobs = BTreeSet::new();
        let mut keep_layers = BTreeSet::new();
        let mut todo: Vec<String> = refs.references.values().cloned().collect();
        while let Some(d) = todo.pop() {
            if !keep_blobs.insert(d.clone()) || !self.has_blob(&d) {
                continue;
            }
            let Ok(bytes) = self.read_blob(&d) else {
                continue;
            };
            match parse_manifest(&bytes, &d) {
                Ok(Manifest::Index(i)) => {
                    todo.extend(i.manifests().iter().map(|m| m.digest().to_string()));
                }
                Ok(Manifest::Image(m)) => {
                    let c = m.config().digest().to_string();
                    keep_blobs.insert(c.clone());
                    keep_blobs.extend(m.layers().iter().map(|l| l.digest().to_string()));
                    if let Ok(cfg) = self.read_blob(&c).and_then(|b| {
                        serde_json::from_slice::<ImageConfiguration>(&b)
                            .map_err(|e| ImageError::invalid(&c, e.to_string()))
                    }) {
                        keep_layers.extend(cfg.rootfs().diff_ids().iter().cloned());
                    }
                }
                Err(e) => warn!(digest = %d, error = %e, "unreadable manifest kept by GC"),
            }
        }
        let (mut blobs, mut layers) = (0usize, 0usize);
        for e in fs::read_dir(&self.blobs)
            .map_err(io_ctx("cannot list blobs"))?
            .flatten()
        {
            let digest = format!("sha256:{}", e.file_name().to_string_lossy());
            if !keep_blobs.contains(&digest) {
                fs::remove_file(e.path())
                    .map_err(io_ctx(format!("cannot delete blob {digest}")))?;
                blobs += 1;
            }
        }
        for e in fs::read_dir(&self.layers)
            .map_err(io_ctx("cannot list layers"))?
            .flatten()
        {
            let diff_id = format!("sha256:{}", e.file_name().to_string_lossy());
            if !keep_layers.contains(&diff_id) {
                // Out of sight first, so a half-deleted layer never looks unpacked.
                let doomed = self.temp_path("gc");
                fs::rename(e.path(), &doomed)
                    .map_err(io_ctx(format!("cannot delete layer {diff_id}")))?;
                remove_any(&doomed).map_err(io_ctx(format!("cannot delete layer {diff_id}")))?;
                layers += 1;
            }
        }
        if blobs + layers > 0 {
            info!(blobs, layers, "image store garbage collected");
        }
        Ok(true)
    }
}

fn lock_file(path: &Path, arg: FlockArg) -> Result<Flock<File>, ImageError> {
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_ctx(format!("cannot open {}", path.display())))?;
    Flock::lock(f, arg).map_err(|(_, e)| {
        ImageError::io(
            format!("cannot lock {}", path.display()),
            io::Error::from(e),
        )
    })
}

/// Removes a file, symlink or directory tree; missing is fine.
pub(crate) fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
