//! Image references (Docker normalisation) and pull policies.

use std::fmt;
use std::str::FromStr;

use oci_client::Reference;

use super::ImageError;

/// A normalized image reference: `nginx` is `docker.io/library/nginx:latest`, `user/app` is
/// `docker.io/user/app:latest`, `localhost:5000/x` keeps its host. A reference has a tag, a
/// digest or both.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses and normalizes like Docker (and so the kubelet). Invalid names are
    /// [`ImageError::InvalidName`], the kubelet's `InvalidImageName`.
    pub fn parse(s: &str) -> Result<ImageRef, ImageError> {
        let invalid = |reason: String| ImageError::InvalidName {
            reference: s.to_string(),
            reason,
        };
        // `sha256:<hex>` alone would parse as repository `sha256` with a tag.
        if is_bare_digest(s) {
            return Err(invalid("invalid reference format".to_string()));
        }
        let parsed = Reference::try_from(s).map_err(|e| invalid(e.to_string()))?;
        if parsed.digest().is_some_and(|d| !d.starts_with("sha256:")) {
            return Err(invalid("unsupported digest algorithm".to_string()));
        }
        Ok(ImageRef {
            registry: parsed.registry().to_string(),
            repository: parsed.repository().to_string(),
            tag: parsed.tag().map(str::to_string),
            digest: parsed.digest().map(str::to_string),
        })
    }

    /// `registry/repository`, e.g. `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same image by digest: `registry/repository@digest`.
    pub fn with_digest(&self, digest: &str) -> String {
        format!("{}/{}@{}", self.registry, self.repository, digest)
    }

    pub(crate) fn to_oci(&self) -> Reference {
        match (&self.tag, &self.digest) {
            (Some(t), Some(d)) => Reference::with_tag_and_digest(
                self.registry.clone(),
                self.repository.clone(),
                t.clone(),
                d.clone(),
            ),
            (None, Some(d)) => {
                Reference::with_digest(self.registry.clone(), self.repository.clone(), d.clone())
            }
            (t, None) => Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                t.clone().unwrap_or_else(|| "latest".to_string()),
            ),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageRef {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

/// `sha256:` followed by 64 lowercase hex digits.
pub(crate) fn is_bare_digest(s: &str) -> bool {
    digest_hex(s).is_some()
}

/// The hex part of a `sha256:<64 hex>` digest.
pub(crate) fn digest_hex(s: &str) -> Option<&str> {
    let hex = s.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

/// A container's `imagePullPolicy`: the runtime contract's type.
pub use crate::PullPolicy;

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    #[test]
    fn normalisation_table() {
        let d = format!("busybox@{D}");
        let td = format!("localhost:5000/a/b:1.0@{D}");
        let cases: &[(&str, &str, &str, Option<&str>, bool)] = &[
            ("nginx", "docker.io", "library/nginx", Some("latest"), false),
            (
                "nginx:1.27",
                "docker.io",
                "library/nginx",
                Some("1.27"),
                false,
            ),
            ("user/app", "docker.io", "user/app", Some("latest"), false),
            (
                "docker.io/nginx",
                "docker.io",
                "library/nginx",
                Some("latest"),
                false,
            ),
            (
                "index.docker.io/nginx",
                "docker.io",
                "library/nginx",
                Some("latest"),
                false,
            ),
            (
                "docker.io/library/nginx:latest",
                "docker.io",
                "library/nginx",
                Some("latest"),
                false,
            ),
            ("localhost/x", "localhost", "x", Some("latest"), false),
            (
                "localhost:5000/x",
                "localhost:5000",
                "x",
                Some("latest"),
                false,
            ),
            (
                "127.0.0.1:5000/busybox:test",
                "127.0.0.1:5000",
                "busybox",
                Some("test"),
                false,
            ),
            (
                "public.ecr.aws/eks/pause:3.9",
                "public.ecr.aws",
                "eks/pause",
                Some("3.9"),
                false,
            ),
            (
                "registry.k8s.io/a/b/c",
                "registry.k8s.io",
                "a/b/c",
                Some("latest"),
                false,
            ),
            // A host needs a dot, a port or to be localhost; otherwise it is a Hub namespace.
            (
                "myhost/app",
                "docker.io",
                "myhost/app",
                Some("latest"),
                false,
            ),
            (
                "test.com:5000",
                "docker.io",
                "library/test.com",
                Some("5000"),
                false,
            ),
            (&d, "docker.io", "library/busybox", None, true),
            (&td, "localhost:5000", "a/b", Some("1.0"), true),
        ];
        for (input, registry, repository, tag, digest) in cases {
            let r = ImageRef::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.registry, *registry, "{input}");
            assert_eq!(r.repository, *repository, "{input}");
            assert_eq!(r.tag.as_deref(), *tag, "{input}");
            assert_eq!(r.digest.is_some(), *digest, "{input}");
        }
        assert_eq!(
            ImageRef::parse("nginx")
                .map(|r| r.to_string())
                .ok()
                .as_deref(),
            Some("docker.io/library/nginx:latest")
        );
        assert_eq!(
            ImageRef::parse(&d).map(|r| r.to_string()).ok(),
            Some(format!("docker.io/library/busybox@{D}"))
        );
        assert_eq!(
            ImageRef::parse("localhost:5000/x")
                .map(|r| r.name())
                .ok()
                .as_deref(),
            Some("localhost:5000/x")
        );
    }

    #[test]
    fn invalid_names() {
        for bad in [
            "",
            "Bad:Name",
            "UPPER",
            "a b",
            ":tag",
            "x@sha256:123",
            "repo@md5:ffffffffffffffffffffffffffffffff",
            D,
            "nginx:",
            "-leading",
            "a//b",
        ] {
            match ImageRef::parse(bad) {
                Err(ImageError::InvalidName { reference, .. }) => assert_eq!(reference, bad),
                other => panic!("{bad:?}: expected InvalidName, got {other:?}"),
            }
        }
        let e = ImageRef::parse("Bad:Name").expect_err("invalid");
        assert_eq!(
            e.to_string(),
            "Failed to apply default image tag \"Bad:Name\": couldn't parse image name \
             \"Bad:Name\": invalid reference format"
        );
        assert_eq!(e.kubelet_reason(), "InvalidImageName");
    }

    #[test]
    fn pull_policy_defaults_and_parsing() {
        assert_eq!(PullPolicy::default_for("nginx"), PullPolicy::Always);
        assert_eq!(PullPolicy::default_for("nginx:latest"), PullPolicy::Always);
        assert_eq!(
            PullPolicy::default_for("nginx:1.27"),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            PullPolicy::default_for(&format!("nginx@{D}")),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            PullPolicy::default_for("Bad:Name"),
            PullPolicy::IfNotPresent
        );
        for p in [
            PullPolicy::Always,
            PullPolicy::IfNotPresent,
            PullPolicy::Never,
        ] {
            assert_eq!(p.to_string().parse::<PullPolicy>().ok(), Some(p));
        }
        let e = "always".parse::<PullPolicy>().expect_err("case matters");
        assert!(e.to_string().contains("supported values"), "{e}");
    }

    #[test]
    fn digests() {
        assert!(is_bare_digest(D));
        assert!(!is_bare_digest("sha256:FFFF"));
        assert!(!is_bare_digest(&D.to_uppercase()));
        assert_eq!(digest_hex(D).map(str::len), Some(64));
    }
}
