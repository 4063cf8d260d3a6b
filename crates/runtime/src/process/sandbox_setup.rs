//! What a sandbox holds before any container runs: the pod's shared IPC and UTS namespaces
//! (kept alive by bind mounts, as `ip netns add` keeps a network namespace), its `/etc` files
//! and its volumes; and each run's overlay root filesystem.

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

use crate::{DnsConfig, SandboxSpec, VolumeSource};

/// Creates `<dir>/ipc` and `<dir>/uts`, new namespaces bound to those files, the UTS one
/// carrying `hostname`. Runs on a thread of its own: namespaces belong to the thread that
/// unshares them, and that thread ends right after.
pub(crate) fn create_namespaces(dir: &Path, hostname: &str) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let (ipc, uts) = (dir.join("ipc"), dir.join("uts"));
    for f in [&ipc, &uts] {
        if is_mountpoint(f) {
            // Made by an earlier call: keep it.
            continue;
        }
        fs::write(f, b"")?;
    }
    if is_mountpoint(&ipc) && is_mountpoint(&uts) {
        return Ok(());
    }
    let hostname = hostname.to_string();
    let handle = std::thread::spawn(move || -> io::Result<()> {
        unshare(CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS).map_err(io::Error::from)?;
        nix::unistd::sethostname(&hostname).map_err(io::Error::from)?;
        for (kind, target) in [("ipc", &ipc), ("uts", &uts)] {
            let source = PathBuf::from(format!("/proc/thread-self/ns/{kind}"));
            mount(
                Some(&source),
                target.as_path(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(io::Error::from)?;
        }
        Ok(())
    });
    handle
        .join()
        .map_err(|_| io::Error::other("namespace thread panicked"))?
}

/// Unbinds the pod's namespace files (the namespaces end with their last user).
pub(crate) fn remove_namespaces(dir: &Path) {
    for f in ["ipc", "uts"] {
        let p = dir.join(f);
        let _ = umount2(&p, MntFlags::MNT_DETACH);
        let _ = fs::remove_file(&p);
    }
}

/// Whether `path` is a mount point (its mount id differs from its parent's, or it is listed
/// in `/proc/self/mountinfo`).
pub(crate) fn is_mountpoint(path: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let target = path.to_string_lossy();
    info.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| unescape(m) == target))
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The pod's `/etc/hosts`, as the kubelet writes it.
pub(crate) fn hosts_file(spec: &SandboxSpec, cluster_domain: &str) -> String {
    let mut s = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    match &spec.subdomain {
        Some(sub) if !sub.is_empty() => s.push_str(&format!(
            "{}\t{}.{}.{}.svc.{}\t{}\n",
            spec.ip, spec.hostname, sub, spec.namespace, cluster_domain, spec.hostname
        )),
        _ => s.push_str(&format!("{}\t{}\n", spec.ip, spec.hostname)),
    }
    if !spec.host_aliases.is_empty() {
        s.push_str("\n# Entries added by HostAliases.\n");
        for (ip, names) in &spec.host_aliases {
            s.push_str(&format!("{ip}\t{}\n", names.join("\t")));
        }
    }
    s
}

/// The pod's `/etc/resolv.conf`.
pub(crate) fn resolv_conf(dns: &DnsConfig) -> String {
    let mut s = String::new();
    if !dns.searches.is_empty() {
        s.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    for ns in &dns.nameservers {
        s.push_str(&format!("nameserver {ns}\n"));
    }
    if !dns.options.is_empty() {
        let opts: Vec<String> = dns
            .options
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}:{v}"),
                None => k.clone(),
            })
            .collect();
        s.push_str(&format!("options {}\n", opts.join(" ")));
    }
    s
}

/// Writes the pod's `/etc` files under `dir`.
pub(crate) fn write_etc(dir: &Path, spec: &SandboxSpec) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join("hosts"), hosts_file(spec, "cluster.local"))?;
    fs::write(dir.join("hostname"), format!("{}\n", spec.hostname))?;
    fs::write(dir.join("resolv.conf"), resolv_conf(&spec.dns))
}

/// Makes each volume's directory under `dir` and returns name → directory. `emptyDir` with
/// `medium: Memory` is a tmpfs (its `sizeLimit` the tmpfs size); file volumes are written and
/// made read-only, group-owned by `fsGroup` when the pod sets one.
pub(crate) fn make_volumes(dir: &Path, spec: &SandboxSpec) -> io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let gid = spec.security.fs_group.and_then(|g| u32::try_from(g).ok());
    for v in &spec.volumes {
        let path = dir.join(safe_name(&v.name));
        fs::create_dir_all(&path)?;
        match &v.source {
            VolumeSource::EmptyDir { memory, size_limit } => {
                if *memory && !is_mountpoint(&path) {
                    let size = size_limit.map_or(String::new(), |b| format!(",size={b}"));
                    mount(
                        Some("tmpfs"),
                        &path,
                        Some("tmpfs"),
                        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                        Some(format!("mode=1777{size}").as_str()),
                    )
                    .map_err(io::Error::from)?;
                } else {
                    fs::set_permissions(&path, fs::Permissions::from_mode(0o777))?;
                }
                if let Some(g) = gid {
                    chown(&path, None, Some(g))?;
                    fs::set_permissions(&path, fs::Permissions::from_mode(0o2777))?;
                }
            }
            VolumeSource::Files {
                files,
                default_mode,
                memory,
            } => {
                if *memory && !is_mountpoint(&path) {
                    mount(
                        Some("tmpfs"),
                        &path,
                        Some("tmpfs"),
                        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                        Some("mode=0755"),
                    )
                    .map_err(io::Error::from)?;
                }
                super::atomic_writer::write(&v.name, &path, files, *default_mode, gid)?;
            }
            VolumeSource::Unsupported { .. } => {}
        }
        out.push((v.name.clone(), path));
    }
    Ok(out)
}

/// Unmounts the tmpfs volumes under `dir`.
pub(crate) fn unmount_volumes(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if is_mountpoint(&p) {
                let _ = umount2(&p, MntFlags::MNT_DETACH);
            }
        }
    }
}

/// A volume name as a directory name (Kubernetes names are DNS labels already; this only
/// guards against anything else).
pub(crate) fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Mounts an overlay of `layers` (bottom first) with a fresh `upper` at `target`.
pub(crate) fn mount_rootfs(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> io::Result<()> {
    for d in [upper, work, target] {
        fs::create_dir_all(d)?;
    }
    if is_mountpoint(target) {
        return Ok(());
    }
    if layers.is_empty() {
        return Err(io::Error::other("the image has no layers"));
    }
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    if options.len() > 4000 {
        return Err(io::Error::other(format!(
            "the image has too many layers for one overlay mount ({})",
            layers.len()
        )));
    }
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(io::Error::from)
}

/// Unmounts a run's root filesystem (lazily: an exec that is still leaving must not block it).
pub(crate) fn unmount_rootfs(target: &Path) {
    if is_mountpoint(target) {
        let _ = umount2(target, MntFlags::MNT_DETACH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_resolv_conf_as_the_kubelet_writes_them() {
        let mut spec = SandboxSpec::new("u", "apps", "web-0", "10.0.1.9".parse().unwrap(), vec![]);
        spec.subdomain = Some("web".into());
        spec.host_aliases = vec![("10.1.2.3".into(), vec!["foo.local".into(), "bar".into()])];
        let hosts = hosts_file(&spec, "cluster.local");
        assert!(hosts.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(hosts.contains("10.0.1.9\tweb-0.web.apps.svc.cluster.local\tweb-0\n"));
        assert!(hosts.ends_with("# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar\n"));
        let dns = DnsConfig {
            nameservers: vec!["10.100.0.10".into()],
            searches: vec!["apps.svc.cluster.local".into(), "svc.cluster.local".into()],
            options: vec![("ndots".into(), Some("5".into())), ("rotate".into(), None)],
        };
        assert_eq!(
            resolv_conf(&dns),
            "search apps.svc.cluster.local svc.cluster.local\nnameserver 10.100.0.10\noptions ndots:5 rotate\n"
        );
    }

    #[test]
    fn file_volumes_are_written_with_their_modes_and_refuse_escapes() {
        use crate::{Volume, VolumeFile};
        let dir = tempfile::tempdir().unwrap();
        let mut spec = SandboxSpec::new("u", "ns", "p", "10.0.1.9".parse().unwrap(), vec![]);
        spec.volumes = vec![
            Volume {
                name: "cfg".into(),
                source: VolumeSource::Files {
                    files: vec![
                        VolumeFile {
                            path: "app.conf".into(),
                            mode: None,
                            content: b"a=1".to_vec(),
                        },
                        VolumeFile {
                            path: "sub/key".into(),
                            mode: Some(0o400),
                            content: b"k".to_vec(),
                        },
                    ],
                    default_mode: 0o644,
                    memory: false,
                },
            },
            Volume {
                name: "token".into(),
                source: VolumeSource::Files {
                    files: vec![VolumeFile {
                        path: "token".into(),
                        mode: None,
                        content: b"secret".to_vec(),
                    }],
                    default_mode: 0o644,
                    memory: true,
                },
            },
            Volume {
                name: "scratch".into(),
                source: VolumeSource::EmptyDir {
                    memory: false,
                    size_limit: None,
                },
            },
        ];
        let vols = make_volumes(dir.path(), &spec).unwrap();
        assert_eq!(vols.len(), 3);
        let conf = dir.path().join("cfg/app.conf");
        assert_eq!(fs::read(&conf).unwrap(), b"a=1");
        assert_eq!(
            fs::metadata(&conf).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let key = dir.path().join("cfg/sub/key");
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o400
        );
        assert!(dir.path().join("scratch").is_dir());
        // A secret's files live on a tmpfs (where mounting is allowed), a ConfigMap's on disk.
        if nix::unistd::Uid::effective().is_root() {
            assert!(is_mountpoint(&dir.path().join("token")));
            assert_eq!(fs::read(dir.path().join("token/token")).unwrap(), b"secret");
        }
        assert!(!is_mountpoint(&dir.path().join("cfg")));
        unmount_volumes(dir.path());
        spec.volumes[0].source = VolumeSource::Files {
            files: vec![VolumeFile {
                path: "../x".into(),
                mode: None,
                content: vec![],
            }],
            default_mode: 0o644,
            memory: false,
        };
        assert!(make_volumes(dir.path(), &spec).is_err());
    }
}
