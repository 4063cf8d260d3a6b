//! The files of a ConfigMap, Secret, downward API or projected volume, laid out as the
//! kubelet's `AtomicWriter` does, so that an update is seen all at once:
//!
//! ```text
//! volume/..2026_12_05_00_36_12.4183   the files of this version
//! volume/..data -> ..2026_12_05_00_36_12.4183
//! volume/app.properties -> ..data/app.properties   (one link per top-level name)
//! ```
//!
//! An update writes a new version directory, swaps `..data` with one `rename`, fixes the
//! top-level links and removes the old version. Applications that watch `..data` (as many
//! config reloaders do) see one change; a `subPath` mount holds the file it was given and is not
//! updated, as on Kubernetes.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::path::{Component, Path};

use crate::VolumeFile;

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// The mode a file gets: its own or the volume's default, plus group read under an `fsGroup`
/// (the kubelet's ownership change).
fn file_mode(file: &VolumeFile, default_mode: u32, gid: Option<u32>) -> u32 {
    let mode = file.mode.unwrap_or(default_mode) & 0o7777;
    if gid.is_some() { mode | 0o040 } else { mode }
}

fn check_path(volume: &str, path: &str) -> io::Result<()> {
    let p = Path::new(path);
    let plain = !path.is_empty()
        && p.components().all(|c| matches!(c, Component::Normal(_)))
        && !path.starts_with("..");
    if plain {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("volume {volume:?}: file path {path:?} must be relative without \"..\""),
        ))
    }
}

/// Whether the version `..data` points at holds exactly `files`, with their modes.
fn unchanged(dir: &Path, files: &[VolumeFile], default_mode: u32, gid: Option<u32>) -> bool {
    let current = dir.join(DATA);
    if !current.is_dir() {
        return false;
    }
    let same_files = files.iter().all(|f| {
        let path = current.join(&f.path);
        fs::read(&path).is_ok_and(|c| c == f.content)
            && fs::metadata(&path)
                .is_ok_and(|m| m.permissions().mode() & 0o7777 == file_mode(f, default_mode, gid))
    });
    same_files && count_files(&current) == files.len()
}

fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() { count_files(&p) } else { 1 }
            })
            .sum()
    })
}

/// A version directory's name: `..` and the UTC time, as the kubelet names them, with a
/// counter that keeps two writes in one instant apart.
fn version_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let now = jiff::Timestamp::now();
    format!(
        "..{}{}",
        now.strftime("%Y_%m_%d_%H_%M_%S."),
        SEQ.fetch_add(1, Ordering::Relaxed) + u64::from(now.subsec_nanosecond().unsigned_abs())
    )
}

/// Writes `files` into the volume directory `dir` (made if missing) as a new version, unless
/// it holds them already. Returns whether anything changed.
pub(crate) fn write(
    volume: &str,
    dir: &Path,
    files: &[VolumeFile],
    default_mode: u32,
    gid: Option<u32>,
) -> io::Result<bool> {
    for f in files {
        check_path(volume, &f.path)?;
    }
    fs::create_dir_all(dir)?;
    if unchanged(dir, files, default_mode, gid) {
        return Ok(false);
    }
    let version = version_name();
    let version_dir = dir.join(&version);
    fs::create_dir(&version_dir)?;
    fs::set_permissions(&version_dir, fs::Permissions::from_mode(0o755))?;
    for f in files {
        let target = version_dir.join(&f.path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&target, &f.content)?;
        fs::set_permissions(
            &target,
            fs::Permissions::from_mode(file_mode(f, default_mode, gid)),
        )?;
        if let Some(g) = gid {
            chown(&target, None, Some(g))?;
        }
    }
    // The swap: a new link renamed over the old one.
    let tmp = dir.join(DATA_TMP);
    let _ = fs::remove_file(&tmp);
    symlink(&version, &tmp)?;
    fs::rename(&tmp, dir.join(DATA))?;
    // One link per top-level name, then what the new version no longer has.
    let top: BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.path.split('/').next().map(str::to_string))
        .collect();
    for name in &top {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA).join(name), &link)?;
        }
    }
    for entry in fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with("..") {
            if name != DATA && name != version && path.is_dir() {
                fs::remove_dir_all(&path)?;
            }
        } else if !top.contains(&name) {
            fs::remove_file(&path)?;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &str) -> VolumeFile {
        VolumeFile {
            path: path.into(),
            mode: None,
            content: content.as_bytes().to_vec(),
        }
    }

    #[test]
    fn versions_swap_through_data_and_stale_names_go() {
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path();
        let first = [file("level", "debug"), file("nested/a.conf", "a=1")];
        assert!(write("cfg", v, &first, 0o644, None).unwrap());
        assert_eq!(fs::read_to_string(v.join("level")).unwrap(), "debug");
        assert_eq!(fs::read_to_string(v.join("nested/a.conf")).unwrap(), "a=1");
        assert_eq!(
            fs::read_link(v.join("level")).unwrap(),
            Path::new("..data/level")
        );
        let version = fs::read_link(v.join(DATA)).unwrap();
        assert!(version.to_string_lossy().starts_with("..20"), "{version:?}");
        // The same payload again: nothing is rewritten.
        assert!(!write("cfg", v, &first, 0o644, None).unwrap());
        assert_eq!(fs::read_link(v.join(DATA)).unwrap(), version);

        let second = [file("level", "info"), file("extra", "x")];
        assert!(write("cfg", v, &second, 0o644, None).unwrap());
        assert_eq!(fs::read_to_string(v.join("level")).unwrap(), "info");
        assert_eq!(fs::read_to_string(v.join("extra")).unwrap(), "x");
        assert!(
            fs::symlink_metadata(v.join("nested")).is_err(),
            "a name it no longer has"
        );
        assert!(!v.join(&version).exists(), "the old version is removed");
        let names: Vec<String> = fs::read_dir(v)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 4, "{names:?}"); // ..data, the version, level, extra
    }

    #[test]
    fn modes_and_bad_paths() {
        let dir = tempfile::tempdir().unwrap();
        let mut secret = file("token", "t");
        secret.mode = Some(0o600);
        write(
            "s",
            dir.path(),
            &[secret.clone(), file("ca.crt", "c")],
            0o644,
            Some(2000),
        )
        .unwrap();
        let mode = |p: &str| {
            fs::metadata(dir.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("token"), 0o640);
        assert_eq!(mode("ca.crt"), 0o644);
        for bad in ["/etc/passwd", "../x", "a/../../x", "..data", ""] {
            assert!(
                write("s", dir.path(), &[file(bad, "x")], 0o644, None).is_err(),
                "{bad}"
            );
        }
    }
}
