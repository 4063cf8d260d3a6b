//! Choosing this host's manifest from a multi-platform image index.

use oci_spec::image::{Arch, Descriptor, ImageIndex, Os};

/// The platform images are chosen for: `linux` and the Go name of this host's architecture,
/// with the variant containerd assumes (`v8` on arm64).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HostPlatform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl HostPlatform {
    pub fn current() -> HostPlatform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        HostPlatform {
            os: "linux".to_string(),
            arch: arch.to_string(),
            variant: (arch == "arm64").then(|| "v8".to_string()),
        }
    }

    pub fn oci_arch(&self) -> Arch {
        Arch::from(self.arch.as_str())
    }

    pub fn oci_os(&self) -> Os {
        Os::from(self.os.as_str())
    }
}

impl std::fmt::Display for HostPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The entry of `index` for `want`: same OS and architecture, preferring the exact variant, then
/// no variant, then any. An index with a single entry without a platform (what `docker save`
/// writes) gives that entry. On no match, the platforms the index offers, e.g.
/// `linux/arm64/v8, linux/arm/v7`.
pub(crate) fn select<'a>(
    index: &'a ImageIndex,
    want: &HostPlatform,
) -> Result<&'a Descriptor, String> {
    let manifests = index.manifests();
    if manifests.len() == 1 && manifests[0].platform().is_none() {
        return Ok(&manifests[0]);
    }
    let candidates: Vec<&Descriptor> = manifests
        .iter()
        .filter(|d| {
            d.platform().as_ref().is_some_and(|p| {
                p.os().to_string() == want.os && p.architecture().to_string() == want.arch
            })
        })
        .collect();
    let variant_of = |d: &Descriptor| d.platform().as_ref().and_then(|p| p.variant().clone());
    let exact = candidates
        .iter()
        .find(|d| variant_of(d).is_some() && variant_of(d) == want.variant);
    let plain = candidates.iter().find(|d| variant_of(d).is_none());
    if let Some(d) = exact.or(plain).or(candidates.first()) {
        return Ok(d);
    }
    let available: Vec<String> = manifests
        .iter()
        .filter_map(|d| d.platform().as_ref())
        .filter(|p| p.os().to_string() != "unknown")
        .map(|p| {
            let mut s = format!("{}/{}", p.os(), p.architecture());
            if let Some(v) = p.variant() {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .collect();
    Err(if available.is_empty() {
        "none".to_string()
    } else {
        available.join(", ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: &[(&str, &str, Option<&str>, char)]) -> ImageIndex {
        let manifests: Vec<serde_json::Value> = entries
            .iter()
            .map(|(os, arch, variant, c)| {
                let mut platform = serde_json::json!({"os": os, "architecture": arch});
                if let Some(v) = variant {
                    platform["variant"] = serde_json::json!(v);
                }
                serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": format!("sha256:{}", c.to_string().repeat(64)),
                    "size": 100,
                    "platform": platform,
                })
            })
            .collect();
        let v = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        });
        serde_json::from_value(v).expect("index")
    }

    fn plat(arch: &str, variant: Option<&str>) -> HostPlatform {
        HostPlatform {
            os: "linux".into(),
            arch: arch.into(),
            variant: variant.map(str::to_string),
        }
    }

    fn picked(i: &ImageIndex, p: &HostPlatform) -> Result<char, String> {
        select(i, p).map(|d| d.digest().to_string().chars().last().unwrap_or('?'))
    }

    #[test]
    fn picks_host_platform() {
        let i = index(&[
            ("linux", "arm", Some("v7"), 'a'),
            ("linux", "arm64", Some("v8"), 'b'),
            ("linux", "amd64", None, 'c'),
            ("windows", "amd64", None, 'd'),
            ("unknown", "unknown", None, 'e'),
        ]);
        assert_eq!(picked(&i, &plat("amd64", None)), Ok('c'));
        assert_eq!(picked(&i, &plat("arm64", Some("v8"))), Ok('b'));
        assert_eq!(
            picked(&i, &plat("s390x", None)),
            Err("linux/arm/v7, linux/arm64/v8, linux/amd64, windows/amd64".to_string())
        );
        // Variants: exact first, then none, then any.
        let i = index(&[
            ("linux", "arm64", Some("v9"), 'a'),
            ("linux", "arm64", None, 'b'),
            ("linux", "arm64", Some("v8"), 'c'),
        ]);
        assert_eq!(picked(&i, &plat("arm64", Some("v8"))), Ok('c'));
        let i = index(&[
            ("linux", "arm64", Some("v9"), 'a'),
            ("linux", "arm64", None, 'b'),
        ]);
        assert_eq!(picked(&i, &plat("arm64", Some("v8"))), Ok('b'));
        let i = index(&[("linux", "amd64", Some("v3"), 'a')]);
        assert_eq!(picked(&i, &plat("amd64", None)), Ok('a'));
    }

    #[test]
    fn single_entry_without_platform() {
        let v = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{}", "1".repeat(64)),
                "size": 1,
            }],
        });
        let i: ImageIndex = serde_json::from_value(v).expect("index");
        assert_eq!(picked(&i, &HostPlatform::current()), Ok('1'));
    }

    #[test]
    fn current_platform_is_named() {
        let p = HostPlatform::current();
        assert_eq!(p.os, "linux");
        assert!(!matches!(p.oci_arch(), Arch::Other(_)), "{p}");
    }
}
