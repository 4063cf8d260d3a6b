//! Errors of the image store. Messages are written for the person running kubectl: the ones that
//! the kubelet has its own wording for (`InvalidImageName`, `ErrImageNeverPull`, `ErrImagePull`)
//! follow it.

use std::io;

use oci_client::errors::OciDistributionError;

/// Errors of [`ImageStore`](super::ImageStore) and the layout builder.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The kubelet's `InvalidImageName`.
    #[error(
        "Failed to apply default image tag \"{reference}\": couldn't parse image name \
         \"{reference}\": {reason}"
    )]
    InvalidName { reference: String, reason: String },

    /// An `imagePullPolicy` that is not `Always`, `IfNotPresent` or `Never`.
    #[error(
        "Unsupported value: \"{value}\": supported values: \"Always\", \"IfNotPresent\", \"Never\""
    )]
    InvalidPullPolicy { value: String },

    /// The kubelet's `ErrImageNeverPull`; `reference` is the image as the user wrote it.
    #[error("Container image \"{reference}\" is not present with pull policy of Never")]
    NeverPull { reference: String },

    /// A registry failure that is not one of the more specific kinds below.
    #[error("Failed to pull image \"{reference}\": {detail}")]
    Pull {
        reference: String,
        /// The error and its causes in one line.
        detail: String,
        #[source]
        source: Box<OciDistributionError>,
    },

    /// The registry refused anonymous access and every credential that matched it.
    #[error(
        "Failed to pull image \"{reference}\": pull access denied for {registry}/{repository}, \
         repository does not exist or may require authorization: {registry} refused {tried}"
    )]
    Unauthorized {
        reference: String,
        registry: String,
        repository: String,
        /// What was tried, e.g. `anonymous access and 1 credential`.
        tried: String,
        #[source]
        source: Option<Box<OciDistributionError>>,
    },

    /// The registry does not know the repository or the tag (containerd's wording).
    #[error(
        "Failed to pull image \"{reference}\": failed to resolve reference \"{resolved}\": \
         {resolved}: not found"
    )]
    NotFound { reference: String, resolved: String },

    /// A multi-platform image without a variant for this host.
    #[error(
        "Failed to pull image \"{reference}\": no matching manifest for {wanted} in the manifest \
         list entries (available: {available})"
    )]
    NoMatchingPlatform {
        reference: String,
        wanted: String,
        available: String,
    },

    /// Content whose sha256 is not the one its descriptor (or the diff_id) promised. Nothing of it
    /// was kept.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },

    /// A layer (or manifest) media type this store cannot unpack, e.g. an encrypted layer.
    #[error("image \"{reference}\": unsupported media type {media_type}")]
    UnsupportedMediaType {
        reference: String,
        media_type: String,
    },

    /// A malformed manifest, index, config or archive.
    #[error("invalid image {what}: {reason}")]
    InvalidImage { what: String, reason: String },

    /// Unpacking a layer failed (bad tar, a path escaping the layer, a full disk).
    #[error("failed to unpack layer {layer}: {}", crate::error::go_text(.source))]
    Unpack {
        layer: String,
        #[source]
        source: io::Error,
    },

    /// Any other file-system failure; `context` says what was being done.
    #[error("{context}: {}", crate::error::go_text(.source))]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    /// `remove` (or `flatten`) of an image the store does not have.
    #[error("image \"{reference}\" not found")]
    NotPresent { reference: String },
}

impl ImageError {
    /// The reason the kubelet puts in a waiting container's state for this error:
    /// `InvalidImageName`, `ErrImageNeverPull` or `ErrImagePull`.
    pub fn kubelet_reason(&self) -> &'static str {
        match self {
            ImageError::InvalidName { .. } => "InvalidImageName",
            ImageError::NeverPull { .. } => "ErrImageNeverPull",
            _ => "ErrImagePull",
        }
    }

    /// The message the kubelet gives a failed pull: `Failed to pull image "IMAGE": …`, once.
    pub fn pull_message(&self, image: &str) -> String {
        let text = self.to_string();
        if text.starts_with("Failed to pull image") {
            text
        } else {
            format!("Failed to pull image \"{image}\": {text}")
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> ImageError {
        ImageError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> ImageError {
        ImageError::InvalidImage {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// `.map_err(io_ctx("reading x"))`.
pub(crate) fn io_ctx(context: impl Into<String>) -> impl FnOnce(io::Error) -> ImageError {
    let context = context.into();
    move |source| ImageError::Io { context, source }
}

/// Turns a panicked or cancelled blocking task into an error.
pub(crate) fn join_error(e: tokio::task::JoinError) -> ImageError {
    ImageError::io("image store task failed", io::Error::other(e.to_string()))
}
