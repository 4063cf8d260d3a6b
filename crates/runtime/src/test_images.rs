//! Images built on this machine, without Docker or a registry: Debian's static busybox as a
//! small OCI image layout, for tests, benchmarks and offline demos (`localfargate image load`).

use std::path::Path;

use crate::image::{ImageConfig, ImageError, LayoutFile, write_oci_layout};

/// Where Debian's `busybox-static` puts the binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// The busybox applets linked in the image (`/bin/<applet>` → `busybox`).
pub const APPLETS: &[&str] = &[
    "sh",
    "ash",
    "tar",
    "stty",
    "tty",
    "echo",
    "cat",
    "sleep",
    "ls",
    "true",
    "false",
    "env",
    "hostname",
    "id",
    "wget",
    "nc",
    "httpd",
    "ps",
    "kill",
    "mkdir",
    "rm",
    "head",
    "tail",
    "grep",
    "dd",
    "seq",
    "yes",
    "printf",
    "date",
    "touch",
    "test",
    "[",
    "sed",
    "awk",
    "whoami",
    "wc",
    "ip",
    "ping",
    "nslookup",
    "cp",
    "mv",
    "chmod",
    "stat",
    "df",
    "mount",
    "sync",
    "uname",
    "tr",
    "cut",
    "sort",
    "find",
    "xargs",
    "timeout",
    "nproc",
    "free",
    "top",
    "tee",
    "base64",
    "md5sum",
    "sha256sum",
    "unshare",
];

/// Whether this machine has the static busybox the test images are made of.
pub fn busybox_available() -> bool {
    Path::new(BUSYBOX).is_file()
}

/// Writes an OCI image layout of busybox to `dir`, tagged `reference_name` (the layout's
/// `org.opencontainers.image.ref.name`), with `cmd` as its default command. Returns the
/// manifest digest.
pub fn busybox_layout(
    dir: &Path,
    reference_name: &str,
    cmd: &[&str],
) -> Result<String, ImageError> {
    busybox_layout_with(dir, reference_name, cmd, Vec::new())
}

/// `busybox_layout` with `extra` files in the same layer (a script, a large file, a binary of
/// another format).
pub fn busybox_layout_with(
    dir: &Path,
    reference_name: &str,
    cmd: &[&str],
    extra: Vec<LayoutFile>,
) -> Result<String, ImageError> {
    let binary = std::fs::read(BUSYBOX).map_err(|source| ImageError::Io {
        context: format!("reading {BUSYBOX} (apt-get install busybox-static)"),
        source,
    })?;
    let mut files = vec![
        LayoutFile::Dir {
            path: "bin".into(),
            mode: 0o755,
        },
        LayoutFile::Dir {
            path: "etc".into(),
            mode: 0o755,
        },
        LayoutFile::Dir {
            path: "tmp".into(),
            mode: 0o1777,
        },
        LayoutFile::Dir {
            path: "root".into(),
            mode: 0o700,
        },
        LayoutFile::File {
            path: "bin/busybox".into(),
            mode: 0o755,
            data: binary,
        },
        LayoutFile::File {
            path: "etc/passwd".into(),
            mode: 0o644,
            data: b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000:app:/tmp:/bin/sh\n".to_vec(),
        },
        LayoutFile::File {
            path: "etc/group".into(),
            mode: 0o644,
            data: b"root:x:0:\nnogroup:x:65534:\napp:x:1000:\n".to_vec(),
        },
    ];
    files.extend(extra);
    for a in APPLETS {
        files.push(LayoutFile::Symlink {
            path: format!("bin/{a}"),
            target: "busybox".into(),
        });
    }
    let config = ImageConfig {
        entrypoint: Vec::new(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        working_dir: None,
        user: None,
    };
    write_oci_layout(dir, reference_name, &files, config)
}
