//! Images made of this host's own programs: a binary, the shared libraries `ldd` lists for it,
//! at their own paths in one layer (with busybox beside them, see
//! `localfargate_runtime::test_images::busybox_layout_with`). Tests use them for real programs
//! busybox lacks (glibc's resolver, curl, dnsmasq).

use std::path::Path;

use localfargate_runtime::image::LayoutFile;

/// The shared libraries `ldd` lists for `binaries` (the dynamic loader included), each once.
pub fn libraries_of(binaries: &[&str]) -> Result<Vec<String>, String> {
    let mut paths: Vec<String> = Vec::new();
    for binary in binaries {
        let ldd = std::process::Command::new("ldd")
            .arg(binary)
            .output()
            .map_err(|e| format!("ldd: {e}"))?;
        for l in String::from_utf8_lossy(&ldd.stdout).lines() {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux… (0x…)`.
            let Some(path) = l
                .split("=>")
                .last()
                .and_then(|p| p.split_whitespace().next())
            else {
                continue;
            };
            if path.starts_with('/') && !paths.iter().any(|p| p == path) {
                paths.push(path.to_string());
            }
        }
    }
    Ok(paths)
}

/// The host files at `paths`, copied at the same paths into a layer, with the directories
/// leading to them (but `bin` and `etc`, which busybox's layer has).
pub fn layer_files<'a>(
    paths: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<LayoutFile>, String> {
    let mut files = Vec::new();
    let mut dirs: Vec<String> = Vec::new();
    for p in paths {
        let rel = p.trim_start_matches('/');
        let mut acc = String::new();
        for part in Path::new(rel).parent().into_iter().flat_map(|d| d.iter()) {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(&part.to_string_lossy());
            if !dirs.contains(&acc) && acc != "bin" && acc != "etc" {
                dirs.push(acc.clone());
                files.push(LayoutFile::Dir {
                    path: acc.clone(),
                    mode: 0o755,
                });
            }
        }
        let data = std::fs::read(p).map_err(|e| format!("reading {p}: {e}"))?;
        files.push(LayoutFile::File {
            path: rel.to_string(),
            mode: 0o755,
            data,
        });
    }
    Ok(files)
}

/// `binaries` and the libraries they need, as layer files.
pub fn programs(binaries: &[&str]) -> Result<Vec<LayoutFile>, String> {
    let libraries = libraries_of(binaries)?;
    layer_files(
        libraries
            .iter()
            .map(String::as_str)
            .chain(binaries.iter().copied()),
    )
}
