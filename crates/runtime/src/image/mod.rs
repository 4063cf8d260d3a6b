//! Container images: pull, load, store and unpack.
//!
//! [`ImageStore`] is a content-addressed store under one root directory, shared by every pod and
//! cluster of the machine (and by several processes: it locks with `flock`). Images come from
//! registries ([`ImageStore::ensure`], with the kubelet's pull policies, image pull secrets,
//! mirrors and plain-HTTP registries) or from files ([`ImageStore::load`]: `docker save`
//! tarballs of both layouts, OCI layouts and OCI archives). Every layer is unpacked on its own,
//! whiteouts turned into overlayfs whiteouts, so a container's root filesystem is an overlay of
//! [`Image::layers`] (reversed: overlayfs lists the top layer first), or one directory made by
//! [`ImageStore::flatten`] where overlayfs is not available.
//!
//! [`write_oci_layout`] builds a small single-layer image (e.g. busybox from `/bin/busybox`)
//! without Docker.

mod archive;
mod auth;
mod error;
mod layout;
mod platform;
mod pull;
mod reference;
mod store;
#[cfg(test)]
mod tests;
mod unpack;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

pub use error::ImageError;
pub use layout::{LayoutFile, write_oci_layout, write_oci_layout_layers};
pub use reference::{ImageRef, PullPolicy};

use error::join_error;
use platform::HostPlatform;
use reference::is_bare_digest;
use store::{Resolved, Store};

/// Where images come from besides the registry a reference names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Registries (`host:port`) served over plain HTTP. Loopback registries (`localhost`,
    /// `127.0.0.0/8`, `[::1]`) always are, as in Docker.
    pub insecure: Vec<String>,
    /// Pull-through mirrors per registry host (`docker.io`, `registry.k8s.io`, …): URLs like
    /// `http://127.0.0.1:5000` (an `http://` URL means plain HTTP), tried in order before the
    /// registry itself.
    pub mirrors: BTreeMap<String, Vec<String>>,
}

/// What the image says to run, from its config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

/// An image present in the store, every layer unpacked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// The normalized reference it was asked for (`docker.io/library/busybox:latest`), or its
    /// digest for an image loaded without a name.
    pub reference: String,
    /// The manifest digest (`sha256:…`); for a multi-platform image the index's, as registries
    /// and the kubelet show it.
    pub digest: String,
    /// The kubelet's `imageID`: `docker.io/library/busybox@sha256:…`.
    pub image_id: String,
    pub config: ImageConfig,
    /// Compressed size: config plus layers, as in the manifest.
    pub size: u64,
    /// Unpacked layer directories, bottom first.
    pub layers: Vec<PathBuf>,
}

/// The result of [`ImageStore::ensure`].
#[derive(Clone, Debug)]
pub struct PullOutcome {
    pub image: Image,
    /// Whether a registry was asked: `false` when the image was used as present (the kubelet's
    /// "already present on machine"), `true` after a pull, also one that found every blob
    /// already stored (`Always`) or that joined a concurrent pull of the same image.
    pub pulled: bool,
    /// Time spent, waiting for a concurrent pull included.
    pub took: Duration,
}

/// One image in [`ImageStore::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSummary {
    /// Normalized references (tags and digest references) naming this image; empty for an
    /// image loaded without a name.
    pub references: Vec<String>,
    pub digest: String,
    pub size: u64,
}

/// The image store. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    store: Store,
    registries: RegistryConfig,
    platform: HostPlatform,
    /// One entry per normalized reference ever pulled: concurrent pulls of it wait on `lock`
    /// and reuse the result of the one that ran.
    inflight: Mutex<HashMap<String, Arc<KeyState>>>,
    pulls_started: AtomicU64,
    /// A `remove` could not collect garbage because a pull was running; retried after pulls.
    gc_pending: AtomicBool,
}

#[derive(Default)]
struct KeyState {
    lock: tokio::sync::Mutex<()>,
    /// Pulls of this reference completed successfully.
    completed: AtomicU64,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.inner.store.root())
            .finish_non_exhaustive()
    }
}

impl ImageStore {
    /// Opens (creating if needed) the store under `root`, finding what is already there.
    pub fn open(root: &Path, registries: RegistryConfig) -> Result<ImageStore, ImageError> {
        let store = Store::open(root)?;
        Ok(ImageStore {
            inner: Arc::new(Inner {
                store,
                registries,
                platform: HostPlatform::current(),
                inflight: Mutex::new(HashMap::new()),
                pulls_started: AtomicU64::new(0),
                gc_pending: AtomicBool::new(false),
            }),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        self.inner.store.root()
    }

    /// Makes `reference` present according to `policy`: `Never` uses what is present or fails
    /// with [`ImageError::NeverPull`]; `IfNotPresent` pulls only when absent; `Always` asks the
    /// registry for the current manifest digest and fetches only what is missing.
    ///
    /// `credentials` are the contents of `kubernetes.io/dockerconfigjson` secrets (raw JSON),
    /// tried in order, then the user's `~/.docker/config.json` (`$DOCKER_CONFIG` honoured),
    /// then anonymous access. Concurrent calls for one image share one pull.
    pub async fn ensure(
        &self,
        reference: &str,
        policy: PullPolicy,
        credentials: &[Vec<u8>],
    ) -> Result<PullOutcome, ImageError> {
        let start = Instant::now();
        let r = ImageRef::parse(reference)?;
        let present = |inner: &Arc<Inner>| {
            let (inner, r) = (inner.clone(), r.clone());
            async move {
                tokio::task::spawn_blocking(move || inner.present(&r))
                    .await
                    .ok()
                    .flatten()
            }
        };
        match policy {
            PullPolicy::Never => {
                return present(&self.inner)
                    .await
                    .map(|image| PullOutcome {
                        image,
                        pulled: false,
                        took: start.elapsed(),
                    })
                    .ok_or_else(|| ImageError::NeverPull {
                        reference: reference.to_string(),
                    });
            }
            PullPolicy::IfNotPresent => {
                if let Some(image) = present(&self.inner).await {
                    return Ok(PullOutcome {
                        image,
                        pulled: false,
                        took: start.elapsed(),
                    });
                }
            }
            PullPolicy::Always => {}
        }
        let key = r.to_string();
        let state = {
            let mut map = self
                .inner
                .inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        let seen = state.completed.load(Ordering::Acquire);
        let _turn = state.lock.lock().await;
        if state.completed.load(Ordering::Acquire) != seen
            && let Some(image) = present(&self.inner).await
        {
            debug!(image = %key, "joined a concurrent pull");
            return Ok(PullOutcome {
                image,
                pulled: true,
                took: start.elapsed(),
            });
        }
        if policy == PullPolicy::IfNotPresent
            && let Some(image) = present(&self.inner).await
        {
            return Ok(PullOutcome {
                image,
                pulled: false,
                took: start.elapsed(),
            });
        }
        let image = pull::pull(
            &self.inner,
            &r,
            reference,
            credentials,
            policy == PullPolicy::Always,
        )
        .await?;
        state.completed.fetch_add(1, Ordering::AcqRel);
        self.inner.after_pull();
        info!(
            image = %key,
            digest = %image.digest,
            size = image.size,
            took_ms = start.elapsed().as_millis() as u64,
            "pulled image"
        );
        Ok(PullOutcome {
            image,
            pulled: true,
            took: start.elapsed(),
        })
    }

    /// The image if present: by reference (normalized as in [`ImageRef::parse`]), by
    /// `repo@sha256:…` or by bare manifest digest `sha256:…`.
    pub fn get(&self, reference: &str) -> Option<Image> {
        match self.inner.lookup_str(reference) {
            Ok(i) => i,
            Err(e) => {
                debug!(reference, error = %e, "image lookup failed");
                None
            }
        }
    }

    /// Loads images from a `docker save` tarball (legacy `manifest.json` layout, or the OCI
    /// layout Docker 25+ writes), an OCI layout directory or an OCI archive (a tar of a
    /// layout), gzip-compressed or not. Names come from `RepoTags`, `io.containerd.image.name`
    /// or a `org.opencontainers.image.ref.name` that is a full name (`busybox:1.36`,
    /// `localhost/x:y`); an image with only a bare tag there is kept by digest.
    pub async fn load(&self, path: &Path) -> Result<Vec<Image>, ImageError> {
        let inner = self.inner.clone();
        let path = path.to_path_buf();
        let images = tokio::task::spawn_blocking(move || -> Result<Vec<Image>, ImageError> {
            let _shared = inner.store.lock_shared()?;
            let loaded = archive::load(&inner.store, &inner.platform, &path)?;
            inner.store.update_refs(|refs| {
                for l in &loaded {
                    if l.names.is_empty() {
                        refs.insert(l.top.clone(), l.top.clone());
                    }
                    for n in &l.names {
                        refs.insert(n.clone(), l.top.clone());
                    }
                }
            })?;
            let mut out = Vec::new();
            for l in &loaded {
                let r = l.names.first().and_then(|n| ImageRef::parse(n).ok());
                let label = l.names.first().cloned().unwrap_or_else(|| l.top.clone());
                match inner.image_at(label, r.as_ref(), &l.top)? {
                    Some(i) => out.push(i),
                    None => {
                        return Err(ImageError::invalid(
                            format!("image {} from {}", l.top, path.display()),
                            "incomplete after loading",
                        ));
                    }
                }
            }
            info!(path = %path.display(), images = out.len(), "loaded images");
            Ok(out)
        })
        .await
        .map_err(join_error)??;
        self.inner.after_pull();
        Ok(images)
    }

    /// Every complete image, one entry per manifest digest.
    pub fn list(&self) -> Vec<ImageSummary> {
        let refs = match self.inner.store.read_refs() {
            Ok(r) => r.references,
            Err(e) => {
                warn!(error = %e, "cannot read image references");
                return Vec::new();
            }
        };
        let mut by_digest: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, d) in refs {
            let names = by_digest.entry(d).or_default();
            if !is_bare_digest(&k) {
                names.push(k);
            }
        }
        by_digest
            .into_iter()
            .filter_map(|(digest, references)| {
                let resolved = self
                    .inner
                    .store
                    .resolve(&digest, &self.inner.platform)
                    .ok()
                    .flatten()
                    .filter(|r| r.complete)?;
                Some(ImageSummary {
                    references,
                    size: image_size(&resolved),
                    digest,
                })
            })
            .collect()
    }

    /// Removes a reference (tag or digest reference; a bare `sha256:…` removes every reference
    /// to that manifest), then deletes blobs and unpacked layers no reference needs any more.
    /// While a pull runs, the deletion waits for it to end. Callers must not remove an image
    /// whose layers are mounted.
    pub fn remove(&self, reference: &str) -> Result<(), ImageError> {
        let removed = if is_bare_digest(reference) {
            self.inner.store.update_refs(|refs| {
                let before = refs.len();
                refs.retain(|_, d| d != reference);
                before - refs.len()
            })?
        } else {
            let r = ImageRef::parse(reference)?;
            let key = r.to_string();
            let name = r.name();
            self.inner.store.update_refs(|refs| {
                if refs.remove(&key).is_some() {
                    return 1;
                }
                // `repo@sha256:…` of an image pulled by tag: untag that repository's tags.
                let Some(digest) = &r.digest else { return 0 };
                let before = refs.len();
                refs.retain(|k, d| {
                    !(d == digest
                        && k.strip_prefix(&name)
                            .is_some_and(|rest| rest.starts_with(':') || rest.starts_with('@')))
                });
                before - refs.len()
            })?
        };
        if removed == 0 {
            return Err(ImageError::NotPresent {
                reference: reference.to_string(),
            });
        }
        info!(reference, "removed image reference");
        if !self.inner.store.gc()? {
            debug!("image garbage collection put off: a pull is running");
            self.inner.gc_pending.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Applies `image`'s layers in order into `dest` (created if missing), whiteouts deleting,
    /// for runtimes without overlayfs. Blocking: call it from `spawn_blocking` in async code.
    pub fn flatten(&self, image: &Image, dest: &Path) -> Result<(), ImageError> {
        for l in &image.layers {
            if !l.is_dir() {
                return Err(ImageError::NotPresent {
                    reference: image.reference.clone(),
                });
            }
        }
        unpack::flatten(&image.layers, dest).map_err(|source| ImageError::Unpack {
            layer: format!("{} into {}", image.reference, dest.display()),
            source,
        })
    }

    /// Pulls started from a registry since `open` (for tests of pull coalescing).
    #[doc(hidden)]
    pub fn pulls_started(&self) -> u64 {
        self.inner.pulls_started.load(Ordering::Relaxed)
    }
}

/// Runs blocking store work (file reads and writes, fsync, flock) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    inner: &Arc<Inner>,
    f: impl FnOnce(&Inner) -> Result<T, ImageError> + Send + 'static,
) -> Result<T, ImageError> {
    let inner = inner.clone();
    tokio::task::spawn_blocking(move || f(&inner))
        .await
        .map_err(join_error)?
}

fn image_size(r: &Resolved) -> u64 {
    r.manifest.config().size() + r.manifest.layers().iter().map(|l| l.size()).sum::<u64>()
}

impl Inner {
    /// The image `top` as an [`Image`] labelled `label`, if complete.
    fn image_at(
        &self,
        label: String,
        name: Option<&ImageRef>,
        top: &str,
    ) -> Result<Option<Image>, ImageError> {
        let Some(resolved) = self.store.resolve(top, &self.platform)? else {
            return Ok(None);
        };
        if !resolved.complete {
            return Ok(None);
        }
        let c = resolved.config.config().clone().unwrap_or_default();
        Ok(Some(Image {
            reference: label,
            digest: top.to_string(),
            image_id: name.map_or_else(|| top.to_string(), |r| r.with_digest(top)),
            config: ImageConfig {
                entrypoint: c.entrypoint().clone().unwrap_or_default(),
                cmd: c.cmd().clone().unwrap_or_default(),
                env: c.env().clone().unwrap_or_default(),
                working_dir: c.working_dir().clone().filter(|w| !w.is_empty()),
                user: c.user().clone().filter(|u| !u.is_empty()),
            },
            size: image_size(&resolved),
            layers: resolved.layer_dirs,
        }))
    }

    fn lookup(&self, r: &ImageRef) -> Result<Option<Image>, ImageError> {
        let key = r.to_string();
        let refs = self.store.read_refs()?.references;
        if let Some(top) = refs.get(&key) {
            return self.image_at(key, Some(r), top);
        }
        // A digest reference is present whatever name the manifest was pulled under.
        match &r.digest {
            Some(d) => self.image_at(key, Some(r), d),
            None => Ok(None),
        }
    }

    /// [`lookup`](Self::lookup) for `ensure`: a digest reference found under another name is
    /// recorded, so that the image stays while something uses it by digest.
    fn present(&self, r: &ImageRef) -> Option<Image> {
        let image = self.lookup(r).ok().flatten()?;
        if r.digest.is_some() {
            let key = r.to_string();
            let digest = image.digest.clone();
            let res = self.store.update_refs(|refs| {
                refs.entry(key).or_insert(digest);
            });
            if let Err(e) = res {
                warn!(image = %r, error = %e, "cannot record a digest reference");
            }
        }
        Some(image)
    }

    fn lookup_str(&self, s: &str) -> Result<Option<Image>, ImageError> {
        if !is_bare_digest(s) {
            return self.lookup(&ImageRef::parse(s)?);
        }
        let refs = self.store.read_refs()?.references;
        let named = refs
            .iter()
            .find(|(k, d)| *d == s && !is_bare_digest(k))
            .map(|(k, _)| k.clone());
        let r = named.as_deref().and_then(|n| ImageRef::parse(n).ok());
        self.image_at(named.unwrap_or_else(|| s.to_string()), r.as_ref(), s)
    }

    /// After a pull or load: run a garbage collection that a `remove` had to put off.
    fn after_pull(self: &Arc<Self>) {
        if self.gc_pending.swap(false, Ordering::AcqRel) {
            let inner = self.clone();
            tokio::task::spawn_blocking(move || match inner.store.gc() {
                Ok(true) => {}
                Ok(false) => inner.gc_pending.store(true, Ordering::Release),
                Err(e) => warn!(error = %e, "image garbage collection failed"),
            });
        }
    }
}
