//! Unpacking layers into directories usable as overlayfs lowerdirs, and flattening them into one
//! root filesystem.
//!
//! Whiteouts become what overlayfs reads: `.wh.NAME` a character device 0:0 named `NAME`, and
//! `.wh..wh..opq` the xattr `trusted.overlay.opaque=y` on its directory. Without root (no mknod,
//! no `trusted.*` xattrs) the `.wh.` files are kept as empty regular files instead; [`flatten`]
//! understands both forms.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{Mode, SFlag, UtimensatFlags, makedev, mknod, utimensat};
use nix::sys::time::TimeSpec;
use tar::EntryType;
use tracing::debug;

use super::ImageError;
use super::store::{HashingReader, Store, remove_any};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

pub(crate) fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// The compression of a layer blob, from its first bytes (media types lie: Docker archives name
/// gzip layers `.tar`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

pub(crate) fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Layer media types this store unpacks (Docker and OCI, plain, gzip and zstd).
pub(crate) fn is_supported_layer(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    )
}

/// A reader that decompresses whatever `r` holds.
pub(crate) fn decompressed<'a, R: Read + 'a>(r: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::with_capacity(256 * 1024, r);
    let kind = sniff(r.fill_buf()?);
    Ok(match kind {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
        Compression::None => Box::new(r),
    })
}

/// Unpacks the layer blob at `blob` into `dest` (a new directory under the store's `tmp/`),
/// checking that the uncompressed tar hashes to `diff_id`.
pub(crate) fn unpack_layer_blob(blob: &Path, diff_id: &str, dest: &Path) -> Result<(), ImageError> {
    let err = |source: io::Error| ImageError::Unpack {
        layer: diff_id.to_string(),
        source,
    };
    let file = File::open(blob).map_err(err)?;
    let mut hashing = HashingReader::new(decompressed(file).map_err(err)?);
    unpack_tar(&mut hashing, dest).map_err(err)?;
    let (actual, _) = hashing.finish().map_err(err)?;
    if actual != diff_id {
        return Err(ImageError::DigestMismatch {
            what: format!("uncompressed layer {}", blob.display()),
            expected: diff_id.to_string(),
            actual,
        });
    }
    Ok(())
}

/// Unpacks the stored blob `blob` (diff_id `diff_id`) to `layers/sha256/<diff-hex>/` unless it
/// is there: into a temporary directory first, renamed when complete and verified.
pub(crate) fn unpack_into_store(
    store: &Store,
    blob: &str,
    diff_id: &str,
) -> Result<(), ImageError> {
    let dir = store.layer_dir(diff_id)?;
    if dir.is_dir() {
        return Ok(());
    }
    let tmp = store.temp_path("layer");
    if let Err(e) = unpack_layer_blob(&store.blob_path(blob)?, diff_id, &tmp) {
        let _ = remove_any(&tmp);
        return Err(e);
    }
    match fs::rename(&tmp, &dir) {
        Ok(()) => {
            debug!(layer = %diff_id, "layer unpacked");
            Ok(())
        }
        // Another pull unpacked the same layer meanwhile.
        Err(_) if dir.is_dir() => {
            let _ = remove_any(&tmp);
            Ok(())
        }
        Err(e) => {
            let _ = remove_any(&tmp);
            Err(ImageError::Unpack {
                layer: diff_id.to_string(),
                source: e,
            })
        }
    }
}

/// Unpacks a layer tar into `dst` (created with mode 0755 if missing): modes, owners (as root),
/// mtimes, xattrs, symlinks, hard links, devices (as root) and whiteouts as overlayfs wants
/// them. Entries with `..` or that would land outside `dst` are an error.
pub(crate) fn unpack_tar(reader: impl Read, dst: &Path) -> io::Result<()> {
    if !dst.exists() {
        fs::create_dir_all(dst)?;
        fs::set_permissions(dst, fs::Permissions::from_mode(0o755))?;
    }
    let root = is_root();
    let mut ar = tar::Archive::new(reader);
    ar.set_preserve_permissions(true);
    ar.set_preserve_mtime(true);
    ar.set_preserve_ownerships(root);
    ar.set_unpack_xattrs(root);
    ar.set_overwrite(true);
    let mut dirs = Vec::new();
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
    for entry in ar.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName
        ) {
            continue;
        }
        let raw = entry.path()?.into_owned();
        let rel = clean_relative(&raw)?;
        if rel.as_os_str().is_empty() {
            continue; // "./" itself
        }
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let parent = ensure_dirs(dst, rel.parent().unwrap_or(Path::new("")))?;
            if name == OPAQUE_MARKER {
                make_opaque(&parent, root)?;
            } else {
                make_whiteout(&parent, hidden, root)?;
            }
            continue;
        }
        match kind {
            EntryType::Directory => {
                dir_times.push((dst.join(&rel), entry.header().mtime().unwrap_or(0)));
                dirs.push(entry);
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                make_node(dst, &rel, &entry, root)?;
            }
            _ => {
                if !entry.unpack_in(dst)? {
                    return Err(escape(&raw));
                }
            }
        }
    }
    // Directories last, parents after children, so restrictive modes do not get in the way.
    dirs.sort_by(|a, b| b.path_bytes().cmp(&a.path_bytes()));
    for mut d in dirs {
        let p = d.path()?.into_owned();
        if !d.unpack_in(dst)? {
            return Err(escape(&p));
        }
    }
    for (path, mtime) in dir_times {
        set_times(&path, mtime)?;
    }
    Ok(())
}

fn escape(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("tar entry {} escapes the layer directory", p.display()),
    )
}

/// The path of a tar entry relative to the layer root; leading `/` and `.` are dropped, `..`
/// is an error.
fn clean_relative(p: &Path) -> io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => return Err(escape(p)),
        }
    }
    Ok(out)
}

/// Creates the directories of `rel` under `dst` one component at a time, refusing to go
/// through a symlink (which could point out of the layer). Returns `dst/rel`.
fn ensure_dirs(dst: &Path, rel: &Path) -> io::Result<PathBuf> {
    let mut cur = dst.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => return Err(escape(rel)),
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not a directory", cur.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&cur)?,
            Err(e) => return Err(e),
        }
    }
    Ok(cur)
}

fn cstring(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// `trusted.overlay.opaque=y` on `dir`, or a `.wh..wh..opq` marker file without privileges.
fn make_opaque(dir: &Path, root: bool) -> io::Result<()> {
    if root {
        match set_xattr(dir, OPAQUE_XATTR, b"y") {
            Ok(()) => return Ok(()),
            Err(e) => {
                debug!(dir = %dir.display(), error = %e, "cannot set the opaque xattr; keeping the marker file")
            }
        }
    }
    File::create(dir.join(OPAQUE_MARKER)).map(drop)
}

/// A character device 0:0 named `name` in `dir`, or a `.wh.NAME` file without privileges.
fn make_whiteout(dir: &Path, name: &str, root: bool) -> io::Result<()> {
    let target = dir.join(name);
    remove_any(&target)?;
    if root {
        match mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)) {
            Ok(()) => return Ok(()),
            Err(e) => {
                debug!(path = %target.display(), error = %e, "cannot mknod a whiteout; keeping the .wh. file")
            }
        }
    }
    File::create(dir.join(format!("{WHITEOUT_PREFIX}{name}"))).map(drop)
}

fn make_node<R: Read>(
    dst: &Path,
    rel: &Path,
    entry: &tar::Entry<'_, R>,
    root: bool,
) -> io::Result<()> {
    let h = entry.header();
    let kind = h.entry_type();
    if !root && kind != EntryType::Fifo {
        debug!(path = %rel.display(), "skipping a device node (not root)");
        return Ok(());
    }
    let parent = ensure_dirs(dst, rel.parent().unwrap_or(Path::new("")))?;
    let target = match rel.file_name() {
        Some(n) => parent.join(n),
        None => return Err(escape(rel)),
    };
    remove_any(&target)?;
    let sflag = match kind {
        EntryType::Char => SFlag::S_IFCHR,
        EntryType::Block => SFlag::S_IFBLK,
        _ => SFlag::S_IFIFO,
    };
    let major = u64::from(h.device_major()?.unwrap_or(0));
    let minor = u64::from(h.device_minor()?.unwrap_or(0));
    let mode = h.mode()? & 0o7777;
    mknod(
        &target,
        sflag,
        Mode::from_bits_truncate(mode),
        makedev(major, minor),
    )
    .map_err(io::Error::from)?;
    if root {
        std::os::unix::fs::lchown(&target, Some(h.uid()? as u32), Some(h.gid()? as u32))?;
    }
    fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
    set_times(&target, h.mtime().unwrap_or(0))
}

/// Sets atime and mtime of `path` (not following a symlink).
fn set_times(path: &Path, mtime: u64) -> io::Result<()> {
    let t = TimeSpec::new(mtime as i64, 0);
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &t,
        &t,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(io::Error::from)
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let p = cstring(path)?;
    let n = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: both strings are NUL-terminated and live across the call; value is a valid slice.
    let r = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = cstring(path).ok()?;
    let n = CString::new(name).ok()?;
    let mut buf = [0u8; 16];
    // SAFETY: both strings are NUL-terminated and live across the call; buf is writable for
    // its whole length.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| buf[..r as usize].to_vec())
}

/// Whether an unpacked directory is opaque (xattr or marker file).
fn is_opaque(dir: &Path) -> bool {
    get_xattr(dir, OPAQUE_XATTR).is_some_and(|v| v == b"y") || dir.join(OPAQUE_MARKER).exists()
}

/// Applies unpacked layers (bottom first) into `dest`: whiteouts delete, opaque directories
/// hide what lower layers put there, everything else is copied with its mode, owner (as root),
/// mtime and hard links within a layer.
pub(crate) fn flatten(layers: &[PathBuf], dest: &Path) -> io::Result<()> {
    fs::create_dir_all(dest)?;
    let root = is_root();
    let mut dir_times: HashMap<PathBuf, i64> = HashMap::new();
    for layer in layers {
        let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
        apply_dir(layer, dest, root, &mut links, &mut dir_times)?;
    }
    for (path, mtime) in dir_times {
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            set_times(&path, mtime.max(0) as u64)?;
        }
    }
    Ok(())
}

fn apply_dir(
    src: &Path,
    dst: &Path,
    root: bool,
    links: &mut HashMap<(u64, u64), PathBuf>,
    dir_times: &mut HashMap<PathBuf, i64>,
) -> io::Result<()> {
    for e in fs::read_dir(src)? {
        let e = e?;
        let name = e.file_name();
        let name_str = name.to_string_lossy();
        let s = e.path();
        let d = dst.join(&name);
        let meta = fs::symlink_metadata(&s)?;
        let ft = meta.file_type();
        use std::os::unix::fs::FileTypeExt;
        if name_str == OPAQUE_MARKER {
            continue;
        }
        if let Some(hidden) = name_str.strip_prefix(WHITEOUT_PREFIX) {
            remove_any(&dst.join(hidden))?;
            continue;
        }
        if ft.is_char_device() && meta.rdev() == 0 {
            remove_any(&d)?;
            continue;
        }
        if ft.is_dir() {
            match fs::symlink_metadata(&d) {
                Ok(m) if m.is_dir() => {
                    if is_opaque(&s) {
                        for child in fs::read_dir(&d)? {
                            remove_any(&child?.path())?;
                        }
                    }
                }
                Ok(_) => {
                    remove_any(&d)?;
                    fs::create_dir(&d)?;
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound => fs::create_dir(&d)?,
                Err(err) => return Err(err),
            }
            apply_dir(&s, &d, root, links, dir_times)?;
            copy_owner_mode(&d, &meta, root)?;
            dir_times.insert(d, meta.mtime());
            continue;
        }
        remove_any(&d)?;
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&s)?, &d)?;
            if root {
                std::os::unix::fs::lchown(&d, Some(meta.uid()), Some(meta.gid()))?;
            }
        } else if ft.is_file() {
            let key = (meta.dev(), meta.ino());
            if meta.nlink() > 1
                && let Some(first) = links.get(&key)
            {
                fs::hard_link(first, &d)?;
                continue;
            }
            fs::copy(&s, &d)?;
            copy_owner_mode(&d, &meta, root)?;
            if meta.nlink() > 1 {
                links.insert(key, d.clone());
            }
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            if !root && !ft.is_fifo() {
                continue;
            }
            let kind = if ft.is_char_device() {
                SFlag::S_IFCHR
            } else if ft.is_block_device() {
                SFlag::S_IFBLK
            } else {
                SFlag::S_IFIFO
            };
            mknod(&d, kind, Mode::empty(), meta.rdev()).map_err(io::Error::from)?;
            copy_owner_mode(&d, &meta, root)?;
        } else {
            continue; // sockets
        }
        set_times(&d, meta.mtime().max(0) as u64)?;
    }
    Ok(())
}

fn copy_owner_mode(d: &Path, meta: &fs::Metadata, root: bool) -> io::Result<()> {
    if root {
        std::os::unix::fs::lchown(d, Some(meta.uid()), Some(meta.gid()))?;
    }
    // After chown, which clears setuid bits.
    fs::set_permissions(d, fs::Permissions::from_mode(meta.mode() & 0o7777))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    /// A tar with the given entries: (path, kind, data or link target, mode).
    pub(crate) fn tar_of(entries: &[(&str, EntryType, &[u8], u32)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, mode) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(*mode);
            h.set_mtime(1_000_000);
            h.set_uid(0);
            h.set_gid(0);
            match kind {
                EntryType::Symlink | EntryType::Link => {
                    h.set_size(0);
                    let target = std::str::from_utf8(data).unwrap_or("");
                    b.append_link(&mut h, path, target).expect("append link");
                }
                _ => {
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, path, *data).expect("append");
                }
            }
        }
        b.into_inner().expect("tar")
    }

    #[test]
    fn whiteouts_and_opaque_dirs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let lower = tmp.path().join("l1");
        let upper = tmp.path().join("l2");
        let t1 = tar_of(&[
            ("etc/", EntryType::Directory, b"", 0o755),
            ("etc/gone", EntryType::Regular, b"x", 0o644),
            ("etc/kept", EntryType::Regular, b"k", 0o644),
            ("opq/", EntryType::Directory, b"", 0o755),
            ("opq/old", EntryType::Regular, b"o", 0o644),
            ("bin/", EntryType::Directory, b"", 0o755),
            ("bin/tool", EntryType::Regular, b"#!", 0o4755),
            ("bin/link", EntryType::Link, b"bin/tool", 0o755),
            ("bin/sym", EntryType::Symlink, b"/bin/tool", 0o777),
        ]);
        let t2 = tar_of(&[
            ("etc/.wh.gone", EntryType::Regular, b"", 0o644),
            ("opq/.wh..wh..opq", EntryType::Regular, b"", 0o644),
            ("opq/new", EntryType::Regular, b"n", 0o600),
            // A whiteout in a directory this layer does not otherwise have.
            ("deep/dir/.wh.x", EntryType::Regular, b"", 0o644),
        ]);
        unpack_tar(&t1[..], &lower).expect("unpack l1");
        unpack_tar(&t2[..], &upper).expect("unpack l2");

        let tool = fs::metadata(lower.join("bin/tool")).expect("tool");
        assert_eq!(tool.mode() & 0o7777, 0o4755);
        assert_eq!(tool.mtime(), 1_000_000);
        assert_eq!(tool.nlink(), 2, "hard link kept");
        assert_eq!(
            fs::read_link(lower.join("bin/sym")).ok(),
            Some(PathBuf::from("/bin/tool")),
            "absolute symlink targets are kept as they are"
        );
        assert_eq!(
            fs::metadata(lower.join("etc")).map(|m| m.mtime()).ok(),
            Some(1_000_000),
            "directory mtimes"
        );

        if is_root() {
            let wh = fs::symlink_metadata(upper.join("etc/gone")).expect("whiteout");
            assert!(wh.file_type().is_char_device());
            assert_eq!(wh.rdev(), 0);
            assert!(!upper.join("etc/.wh.gone").exists());
            assert_eq!(
                get_xattr(&upper.join("opq"), OPAQUE_XATTR).as_deref(),
                Some(&b"y"[..])
            );
            assert!(!upper.join("opq/.wh..wh..opq").exists());
        } else {
            assert!(upper.join("etc/.wh.gone").is_file());
            assert!(upper.join("opq/.wh..wh..opq").is_file());
        }
        assert!(upper.join("deep/dir").is_dir());

        let root = tmp.path().join("rootfs");
        flatten(&[lower.clone(), upper.clone()], &root).expect("flatten");
        assert!(!root.join("etc/gone").exists());
        assert_eq!(
            fs::read(root.join("etc/kept")).ok().as_deref(),
            Some(&b"k"[..])
        );
        assert!(
            !root.join("opq/old").exists(),
            "opaque dir hides lower content"
        );
        assert_eq!(
            fs::read(root.join("opq/new")).ok().as_deref(),
            Some(&b"n"[..])
        );
        assert!(!root.join("opq/.wh..wh..opq").exists());
        let tool = fs::metadata(root.join("bin/tool")).expect("tool");
        assert_eq!(tool.mode() & 0o7777, 0o4755);
        assert_eq!(tool.nlink(), 2, "hard link kept by flatten");
        assert_eq!(
            fs::read_link(root.join("bin/sym")).ok(),
            Some(PathBuf::from("/bin/tool"))
        );
        assert_eq!(
            fs::metadata(root.join("bin/tool")).map(|m| m.mtime()).ok(),
            Some(1_000_000)
        );
    }

    #[test]
    fn whiteout_of_a_directory_and_file_over_dir() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let l1 = tmp.path().join("l1");
        let l2 = tmp.path().join("l2");
        unpack_tar(
            &tar_of(&[
                ("a/", EntryType::Directory, b"", 0o755),
                ("a/b/", EntryType::Directory, b"", 0o755),
                ("a/b/c", EntryType::Regular, b"c", 0o644),
                ("x/", EntryType::Directory, b"", 0o755),
                ("x/y", EntryType::Regular, b"y", 0o644),
            ])[..],
            &l1,
        )
        .expect("l1");
        unpack_tar(
            &tar_of(&[
                (".wh.a", EntryType::Regular, b"", 0o644),
                ("x", EntryType::Regular, b"now a file", 0o644),
            ])[..],
            &l2,
        )
        .expect("l2");
        let root = tmp.path().join("root");
        flatten(&[l1, l2], &root).expect("flatten");
        assert!(!root.join("a").exists());
        assert_eq!(
            fs::read(root.join("x")).ok().as_deref(),
            Some(&b"now a file"[..])
        );
    }

    #[test]
    fn refuses_escaping_paths() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // `..` in a path: built by hand since tar::Builder refuses it.
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_size(1);
        h.set_mode(0o644);
        {
            let name = &mut h.as_gnu_mut().expect("gnu").name;
            let p = b"../evil";
            name[..p.len()].copy_from_slice(p);
        }
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, &b"x"[..]).expect("append");
        let t = b.into_inner().expect("tar");
        let dst = tmp.path().join("layer");
        let e = unpack_tar(&t[..], &dst).expect_err("must refuse ..");
        assert!(e.to_string().contains("escapes"), "{e}");
        assert!(!tmp.path().join("evil").exists());

        // A symlink to outside, then a file through it.
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).expect("outside");
        let t = tar_of(&[
            (
                "link",
                EntryType::Symlink,
                outside.to_string_lossy().as_bytes(),
                0o777,
            ),
            ("link/file", EntryType::Regular, b"x", 0o644),
        ]);
        let dst = tmp.path().join("layer2");
        assert!(unpack_tar(&t[..], &dst).is_err());
        assert!(!outside.join("file").exists());
        // And a whiteout through it.
        let t = tar_of(&[
            (
                "link",
                EntryType::Symlink,
                outside.to_string_lossy().as_bytes(),
                0o777,
            ),
            ("link/.wh.file", EntryType::Regular, b"", 0o644),
        ]);
        let dst = tmp.path().join("layer3");
        assert!(unpack_tar(&t[..], &dst).is_err());
        assert_eq!(fs::read_dir(&outside).map(|d| d.count()).ok(), Some(0));
    }

    #[test]
    fn compression_sniffing() {
        use std::io::Write;
        let tar = tar_of(&[("f", EntryType::Regular, b"hello", 0o644)]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).expect("gz");
        let gz = gz.finish().expect("gz");
        let zst = zstd::encode_all(&tar[..], 1).expect("zstd");
        assert_eq!(sniff(&gz), Compression::Gzip);
        assert_eq!(sniff(&zst), Compression::Zstd);
        assert_eq!(sniff(&tar), Compression::None);
        for data in [&tar, &gz, &zst] {
            let mut out = Vec::new();
            decompressed(&data[..])
                .expect("reader")
                .read_to_end(&mut out)
                .expect("read");
            assert_eq!(out, tar);
        }
    }
}
