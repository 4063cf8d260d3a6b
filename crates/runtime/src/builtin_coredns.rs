//! The built-in CoreDNS image: when EKS's CoreDNS image (`…dkr.ecr.….amazonaws.com/eks/coredns:…`)
//! cannot be pulled (offline, no ECR credentials), the CoreDNS pods run localfargate's own
//! implementation instead. The image is synthetic and small (directories and `/etc/passwd`,
//! entrypoint `/coredns`); each run of it gets the running localfargate binary bind-mounted
//! read-only at `/coredns` (argv\[0\] `coredns` selects the CoreDNS mode) with the shared
//! libraries it links (as `ldd` lists them), read-only at their paths: nothing of the binary is
//! copied into the image store.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::image::{
    ImageConfig, ImageError, ImageStore, LayoutFile, PullOutcome, write_oci_layout,
};

/// The built-in image's name in the image store.
pub const BUILTIN_REFERENCE: &str = "localfargate.local/builtin/coredns:v1";

/// Whether `reference` is EKS's CoreDNS image (any region's ECR, any tag or digest).
pub fn replaces(reference: &str) -> bool {
    let Some((host, path)) = reference.split_once('/') else {
        return false;
    };
    let repo = path.split(['@', ':']).next().unwrap_or_default();
    host.contains(".dkr.ecr.") && host.contains(".amazonaws.com") && repo == "eks/coredns"
}

/// Whether `reference` (as the store names it) is the built-in image.
pub fn is_builtin(reference: &str) -> bool {
    reference == BUILTIN_REFERENCE
}

fn files() -> Vec<LayoutFile> {
    let mut files: Vec<LayoutFile> = ["etc", "lib", "lib64", "usr", "tmp"]
        .iter()
        .map(|d| LayoutFile::dir(d, if *d == "tmp" { 0o1777 } else { 0o755 }))
        .collect();
    files.push(LayoutFile::file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n".to_vec(),
    ));
    files.push(LayoutFile::file(
        "etc/group",
        0o644,
        b"root:x:0:\nnogroup:x:65534:\n".to_vec(),
    ));
    // The mount point of the binary.
    files.push(LayoutFile::file("coredns", 0o755, Vec::new()));
    files
}

/// The built-in image, written to the store the first time.
pub async fn ensure(images: &ImageStore) -> Result<PullOutcome, ImageError> {
    let start = std::time::Instant::now();
    if let Some(image) = images.get(BUILTIN_REFERENCE) {
        return Ok(PullOutcome {
            image,
            pulled: false,
            took: start.elapsed(),
        });
    }
    // A directory per call: two CoreDNS pods may start at once.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = images
        .root()
        .join(format!("builtin-coredns-{}-{call}", std::process::id()));
    let config = ImageConfig {
        entrypoint: vec!["/coredns".into()],
        cmd: Vec::new(),
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        working_dir: None,
        user: None,
    };
    let layout = dir.clone();
    tokio::task::spawn_blocking(move || {
        write_oci_layout(&layout, BUILTIN_REFERENCE, &files(), config)
    })
    .await
    .map_err(|e| ImageError::Io {
        context: "writing the built-in CoreDNS image".into(),
        source: std::io::Error::other(e),
    })??;
    let loaded = images.load(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    let mut loaded = loaded?;
    let image = loaded
        .pop()
        .ok_or_else(|| ImageError::invalid("the built-in CoreDNS image", "nothing was loaded"))?;
    Ok(PullOutcome {
        image,
        pulled: false,
        took: start.elapsed(),
    })
}

/// What a run of the built-in image bind-mounts read-only: (destination, source).
pub fn mounts() -> Result<Vec<(String, PathBuf)>, String> {
    static LIBS: OnceLock<Result<Vec<PathBuf>, String>> = OnceLock::new();
    let exe = std::env::current_exe().map_err(|e| format!("finding localfargate's binary: {e}"))?;
    let libs = LIBS.get_or_init(|| shared_libraries(&exe)).clone()?;
    let mut out = vec![("/coredns".to_string(), exe)];
    for lib in libs {
        out.push((lib.to_string_lossy().into_owned(), lib));
    }
    Ok(out)
}

/// The shared libraries `binary` loads, with its interpreter, from `ldd`.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let out = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| format!("running ldd: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // A static binary needs nothing ("not a dynamic executable").
        return Ok(Vec::new());
    }
    Ok(parse_ldd(&text))
}

/// The absolute paths in `ldd`'s output: `libc.so.6 => /lib/…/libc.so.6 (0x…)` and
/// `/lib64/ld-linux-x86-64.so.2 (0x…)`.
pub fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eks_coredns_references() {
        assert!(replaces(
            "602401143452.dkr.ecr.us-east-1.amazonaws.com/eks/coredns:v1.11.3-eksbuild.1"
        ));
        assert!(replaces(
            "602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/coredns@sha256:abc"
        ));
        assert!(!replaces(
            "602401143452.dkr.ecr.us-east-1.amazonaws.com/eks/kube-proxy:v1.29"
        ));
        assert!(!replaces("coredns/coredns:1.11.3"));
        assert!(!replaces("registry.k8s.io/coredns/coredns:v1.11.3"));
    }

    #[test]
    fn ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f60)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f60)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f60)\n";
        assert_eq!(
            parse_ldd(text),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }
}
