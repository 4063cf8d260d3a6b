//! Pulling from registries with oci-client: mirrors, credentials, plain-HTTP registries,
//! multi-platform indexes, verified downloads, layers unpacked in parallel.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt, stream};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use oci_spec::image::ImageConfiguration;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;
use tracing::{debug, warn};

use super::error::join_error;
use super::store::{Manifest, parse_manifest};
use super::{Image, ImageError, ImageRef, Inner, RegistryConfig, auth, blocking, platform, unpack};

const ACCEPT: [&str; 4] = [
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// Layers downloaded (and unpacked) at the same time.
const PARALLEL_LAYERS: usize = 3;

/// A mirror to try before the registry itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mirror {
    /// `host[:port]`.
    pub host: String,
    pub plain_http: bool,
}

/// The mirrors configured for `registry` (Docker Hub's aliases included), in order.
pub(crate) fn mirrors_for(config: &RegistryConfig, registry: &str) -> Vec<Mirror> {
    let canon = |h: &str| match h {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        h => h.to_ascii_lowercase(),
    };
    let want = canon(registry);
    config
        .mirrors
        .iter()
        .filter(|(k, _)| canon(k) == want)
        .flat_map(|(_, urls)| urls.iter())
        .filter_map(|url| {
            let (plain_http, rest) = if let Some(r) = url.strip_prefix("http://") {
                (true, r)
            } else if let Some(r) = url.strip_prefix("https://") {
                (false, r)
            } else {
                (false, url.as_str())
            };
            let host = rest.split('/').next().unwrap_or("").to_string();
            if host.is_empty() {
                warn!(url = %url, "ignoring a registry mirror without a host");
                None
            } else {
                Some(Mirror { host, plain_http })
            }
        })
        .collect()
}

/// `localhost`, `127.0.0.0/8` and `[::1]`, with or without a port: plain HTTP like Docker.
pub(crate) fn is_loopback(host: &str) -> bool {
    let h = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    h == "localhost"
        || h == "::1"
        || h.parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

/// Pulls `r` (mirrors first, then its registry), stores it and returns it complete.
pub(crate) async fn pull(
    inner: &Arc<Inner>,
    r: &ImageRef,
    written: &str,
    secrets: &[Vec<u8>],
    always: bool,
) -> Result<Image, ImageError> {
    inner
        .pulls_started
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Keeps garbage collection away while blobs are stored but not yet referenced.
    let _shared = {
        let i = inner.clone();
        tokio::task::spawn_blocking(move || i.store.lock_shared())
            .await
            .map_err(join_error)??
    };
    let mut endpoints: Vec<Option<Mirror>> = mirrors_for(&inner.registries, &r.registry)
        .into_iter()
        .map(Some)
        .collect();
    endpoints.push(None);
    let mut last = None;
    for ep in endpoints {
        match pull_from(inner, r, written, secrets, ep.as_ref(), always).await {
            Ok(image) => return Ok(image),
            Err(e) => {
                if let Some(m) = &ep {
                    warn!(image = %r, mirror = %m.host, error = %e, "pull through mirror failed; trying the next source");
                }
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| ImageError::NotFound {
        reference: written.to_string(),
        resolved: r.to_string(),
    }))
}

fn make_client(insecure: Vec<String>) -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(insecure),
        connect_timeout: Some(Duration::from_secs(30)),
        read_timeout: Some(Duration::from_secs(120)),
        ..Default::default()
    })
}

async fn pull_from(
    inner: &Arc<Inner>,
    r: &ImageRef,
    written: &str,
    secrets: &[Vec<u8>],
    mirror: Option<&Mirror>,
    always: bool,
) -> Result<Image, ImageError> {
    let host = mirror.map_or_else(|| r.registry.clone(), |m| m.host.clone());
    let mut oref = r.to_oci();
    if let Some(m) = mirror {
        oref.set_mirror_registry(m.host.clone());
    }
    let mut insecure = inner.registries.insecure.clone();
    if mirror.is_some_and(|m| m.plain_http) || is_loopback(&host) {
        insecure.push(host.clone());
    }
    let auths = auth::candidates(&host, &r.repository, secrets);
    let creds = auths.len() - 1;
    let mut denied = None;
    for auth in auths {
        let client = make_client(insecure.clone());
        match fetch_top(inner, &client, &oref, &auth, always).await {
            Ok(top) => {
                debug!(image = %r, registry = %host, ?auth, "registry accepted");
                return complete(inner, &client, &oref, &auth, r, written, top).await;
            }
            Err(e) if is_auth_error(&e) => {
                debug!(image = %r, registry = %host, ?auth, error = %e, "registry refused");
                denied = Some(e);
            }
            Err(e) => return Err(oci_error(e, r, written)),
        }
    }
    let tried = match creds {
        0 => {
            "anonymous access (no image pull secret or docker config entry matches it)".to_string()
        }
        1 => "anonymous access and 1 credential".to_string(),
        n => format!("anonymous access and {n} credentials"),
    };
    Err(ImageError::Unauthorized {
        reference: written.to_string(),
        registry: host,
        repository: r.repository.clone(),
        tried,
        source: denied.map(Box::new),
    })
}

enum Top {
    /// The registry's digest, already complete locally (`Always`).
    Known(String),
    /// A fetched manifest or index and its digest.
    Fetched(Vec<u8>, String),
}

async fn fetch_top(
    inner: &Arc<Inner>,
    client: &Client,
    oref: &Reference,
    auth: &RegistryAuth,
    always: bool,
) -> Result<Top, OciDistributionError> {
    if always {
        match client.fetch_manifest_digest(oref, auth).await {
            Ok(d) => {
                let digest = d.clone();
                let complete = blocking(inner, move |i| i.store.resolve(&digest, &i.platform))
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|r| r.complete);
                if complete {
                    return Ok(Top::Known(d));
                }
            }
            Err(e) if is_auth_error(&e) => return Err(e),
            Err(e) => debug!(error = %e, "HEAD of the manifest failed; fetching it"),
        }
    }
    let (bytes, digest) = client.pull_manifest_raw(oref, auth, &ACCEPT).await?;
    Ok(Top::Fetched(bytes.to_vec(), digest))
}

fn is_auth_error(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)),
        OciDistributionError::ServerError { code, .. } => *code == 401 || *code == 403,
        _ => false,
    }
}

fn is_not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::NotFound
                    | OciErrorCode::BlobUnknown
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        _ => false,
    }
}

/// An oci-client error as an [`ImageError`], with the causes (e.g. "connection refused") in the
/// message.
fn oci_error(e: OciDistributionError, r: &ImageRef, written: &str) -> ImageError {
    if is_not_found(&e) {
        return ImageError::NotFound {
            reference: written.to_string(),
            resolved: r.to_string(),
        };
    }
    let mut detail = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let s = c.to_string();
        if !detail.contains(&s) {
            detail.push_str(": ");
            detail.push_str(&s);
        }
        cause = c.source();
    }
    ImageError::Pull {
        reference: written.to_string(),
        detail,
        source: Box::new(e),
    }
}

/// Stores the manifest chain, config and layers of a fetched top-level manifest, then the
/// reference; returns the complete image.
async fn complete(
    inner: &Arc<Inner>,
    client: &Client,
    oref: &Reference,
    auth: &RegistryAuth,
    r: &ImageRef,
    written: &str,
    top: Top,
) -> Result<Image, ImageError> {
    let store = &inner.store;
    let top_digest = match top {
        Top::Known(d) => d,
        Top::Fetched(bytes, d) => {
            if let Some(want) = &r.digest
                && *want != d
            {
                return Err(ImageError::DigestMismatch {
                    what: format!("manifest of {r}"),
                    expected: want.clone(),
                    actual: d,
                });
            }
            let what = format!("manifest of {r}");
            blocking(inner, move |i| i.store.write_blob(&bytes, Some(&d), &what)).await?
        }
    };
    // Down the index to this platform's manifest.
    let mut digest = top_digest.clone();
    let manifest = loop {
        let bytes = store.read_blob(&digest)?;
        match parse_manifest(&bytes, &format!("manifest {digest} of {r}"))? {
            Manifest::Image(m) => break *m,
            Manifest::Index(index) => {
                let child = platform::select(&index, &inner.platform)
                    .map_err(|available| ImageError::NoMatchingPlatform {
                        reference: written.to_string(),
                        wanted: inner.platform.to_string(),
                        available,
                    })?
                    .digest()
                    .to_string();
                if child == digest {
                    return Err(ImageError::invalid(
                        format!("index {digest} of {r}"),
                        "refers to itself",
                    ));
                }
                if !store.has_blob(&child) {
                    let (b, d) = client
                        .pull_manifest_raw(&oref.clone_with_digest(child.clone()), auth, &ACCEPT)
                        .await
                        .map_err(|e| oci_error(e, r, written))?;
                    if d != child {
                        return Err(ImageError::DigestMismatch {
                            what: format!("platform manifest of {r}"),
                            expected: child,
                            actual: d,
                        });
                    }
                    let (what, c) = (format!("manifest of {r}"), child.clone());
                    blocking(inner, move |i| i.store.write_blob(&b, Some(&c), &what)).await?;
                }
                digest = child;
            }
        }
    };
    for l in manifest.layers() {
        let mt = l.media_type().to_string();
        if !unpack::is_supported_layer(&mt) {
            return Err(ImageError::UnsupportedMediaType {
                reference: written.to_string(),
                media_type: mt,
            });
        }
    }
    let config_digest = manifest.config().digest().to_string();
    if !store.has_blob(&config_digest) {
        fetch_blob(inner, client, oref, &config_digest, r, written).await?;
    }
    let config: ImageConfiguration = serde_json::from_slice(&store.read_blob(&config_digest)?)
        .map_err(|e| ImageError::invalid(format!("config of {r}"), e.to_string()))?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(ImageError::invalid(
            format!("image {r}"),
            format!(
                "{} layers but {} diff_ids in the config",
                manifest.layers().len(),
                diff_ids.len()
            ),
        ));
    }
    let work: Vec<(String, String)> = manifest
        .layers()
        .iter()
        .zip(diff_ids)
        .filter(|(_, diff_id)| !store.has_layer(diff_id))
        .map(|(l, diff_id)| (l.digest().to_string(), diff_id.clone()))
        .collect();
    stream::iter(work)
        .map(|(blob, diff_id)| async move {
            if !inner.store.has_blob(&blob) {
                fetch_blob(inner, client, oref, &blob, r, written).await?;
            }
            let i = inner.clone();
            tokio::task::spawn_blocking(move || {
                unpack::unpack_into_store(&i.store, &blob, &diff_id)
            })
            .await
            .map_err(join_error)?
        })
        .buffer_unordered(PARALLEL_LAYERS)
        .try_collect::<Vec<()>>()
        .await?;
    let r = r.clone();
    blocking(inner, move |i| {
        let key = r.to_string();
        i.store.update_refs(|refs| {
            refs.insert(key.clone(), top_digest.clone());
        })?;
        i.image_at(key, Some(&r), &top_digest)?
            .ok_or_else(|| ImageError::invalid(format!("image {r}"), "incomplete after the pull"))
    })
    .await
}

/// Downloads one blob to a temporary file, hashing as it goes, and renames it into the store
/// when the digest matches.
async fn fetch_blob(
    inner: &Inner,
    client: &Client,
    oref: &Reference,
    digest: &str,
    r: &ImageRef,
    written: &str,
) -> Result<(), ImageError> {
    let store = &inner.store;
    let mut blob = client
        .pull_blob_stream(oref, digest)
        .await
        .map_err(|e| oci_error(e, r, written))?;
    let tmp = store.temp_path("blob");
    // Removes the partial file also when this future is dropped mid-download.
    let guard = TempFile(Some(tmp.clone()));
    let res: Result<String, std::io::Error> = async {
        let mut file = tokio::fs::File::create(&tmp).await?;
        let mut hasher = Sha256::new();
        while let Some(chunk) = blob.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        file.sync_data().await?;
        Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
    }
    .await;
    let actual = match res {
        Ok(a) => a,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(ImageError::io(
                format!("failed to copy: downloading blob {digest}"),
                e,
            ));
        }
    };
    if actual != digest {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(ImageError::DigestMismatch {
            what: format!("blob of {r}"),
            expected: digest.to_string(),
            actual,
        });
    }
    store.commit_blob(&tmp, digest)?;
    guard.disarm();
    debug!(image = %r, blob = %digest, "blob stored");
    Ok(())
}

struct TempFile(Option<std::path::PathBuf>);

impl TempFile {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn mirrors() {
        let cfg = RegistryConfig {
            insecure: vec![],
            mirrors: BTreeMap::from([
                (
                    "docker.io".to_string(),
                    vec![
                        "http://127.0.0.1:5000".to_string(),
                        "https://mirror.gcr.io/".to_string(),
                        "bare.example.com:443".to_string(),
                    ],
                ),
                ("quay.io".to_string(), vec!["http://q:1".to_string()]),
            ]),
        };
        let m = mirrors_for(&cfg, "docker.io");
        assert_eq!(
            m,
            vec![
                Mirror {
                    host: "127.0.0.1:5000".into(),
                    plain_http: true
                },
                Mirror {
                    host: "mirror.gcr.io".into(),
                    plain_http: false
                },
                Mirror {
                    host: "bare.example.com:443".into(),
                    plain_http: false
                },
            ]
        );
        assert_eq!(mirrors_for(&cfg, "index.docker.io").len(), 3);
        assert_eq!(mirrors_for(&cfg, "ghcr.io"), vec![]);
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "docker.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[::2]:1",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
