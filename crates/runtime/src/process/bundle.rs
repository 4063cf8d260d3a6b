//! One container run's OCI runtime bundle (`config.json`), typed with oci-spec: what runc is
//! told to build. Defaults follow containerd's CRI plugin (capabilities, masked and read-only
//! paths, mounts), which is what Fargate's containerd gives a pod.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    Mount, MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec,
    UserBuilder,
};

use super::seccomp;
use crate::image::ImageConfig;
use crate::{ContainerSpec, SandboxSpec, SeccompProfile};

/// containerd's default capability set for CRI containers (`oci.WithDefaultCapabilities`
/// plus `NET_RAW`, as the CRI plugin keeps it).
pub(crate) const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

const MASKED_PATHS: [&str; 9] = [
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

const READONLY_PATHS: [&str; 6] = [
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Fargate's open-files and process limits: soft 1024, hard 65535.
pub(crate) const FARGATE_NOFILE: (u64, u64) = (1024, 65535);

/// Everything a container run needs besides the specs.
pub(crate) struct RunPaths<'a> {
    pub rootfs: &'a Path,
    /// Where the pod's network namespace is bound (`/run/netns/…`).
    pub netns: &'a Path,
    /// The pod's shared IPC and UTS namespaces, kept by bind mounts.
    pub ipc_ns: &'a Path,
    pub uts_ns: &'a Path,
    /// The pod's PID namespace (`/proc/<pause>/ns/pid`) when it shares one.
    pub pid_ns: Option<&'a Path>,
    /// `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf` of the pod.
    pub etc_dir: &'a Path,
    /// The file behind the container's termination-message path.
    pub termination_log: &'a Path,
    /// Volume name → host directory.
    pub volumes: &'a [(String, PathBuf)],
    pub cgroups_path: &'a str,
    /// The hard open-files limit this host allows (≤ 65535).
    pub nofile_hard: u64,
    /// Whether this host filters syscalls: without it `RuntimeDefault` applies no filter.
    pub seccomp_available: bool,
}

/// A bundle could not be built: the message is for the pod's status.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0}")]
    Invalid(String),
    /// What the kubelet reports as `CreateContainerConfigError` (the container is not
    /// created, and is tried again).
    #[error("{0}")]
    Config(String),
    /// What the kubelet reports as `CreateContainerError`: the runtime refused to create the
    /// container (a `Localhost` seccomp profile it cannot load); tried again.
    #[error("{0}")]
    Create(String),
    #[error("building the OCI runtime spec: {0}")]
    Spec(#[from] oci_spec::OciSpecError),
}

/// The command a container runs: Kubernetes' rules over the image's entrypoint and cmd.
pub(crate) fn argv(c: &ContainerSpec, image: &ImageConfig) -> Vec<String> {
    match (c.command.is_empty(), c.args.is_empty()) {
        (false, false) => c.command.iter().chain(&c.args).cloned().collect(),
        (false, true) => c.command.clone(),
        (true, false) => image.entrypoint.iter().chain(&c.args).cloned().collect(),
        (true, true) => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
    }
}

/// The environment: the image's, then the container's (later names win), `HOSTNAME` first as
/// the kubelet sets it, and `TERM=xterm` for a `tty` container as containerd sets it.
pub(crate) fn environment(
    pod: &SandboxSpec,
    c: &ContainerSpec,
    image: &ImageConfig,
) -> Vec<String> {
    let mut env: Vec<(String, String)> = vec![("HOSTNAME".into(), pod.hostname.clone())];
    if c.tty {
        // containerd's CRI sets it for a terminal; the image or the container may override it.
        env.push(("TERM".into(), "xterm".into()));
    }
    let mut set = |k: &str, v: &str| match env.iter_mut().find(|(n, _)| n == k) {
        Some(e) => e.1 = v.to_string(),
        None => env.push((k.to_string(), v.to_string())),
    };
    for kv in &image.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        set(k, v);
    }
    for (k, v) in &c.env {
        set(k, v);
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push((
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ));
    }
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Resolves an image's `User` (`uid`, `uid:gid`; names are looked up in the root filesystem's
/// `/etc/passwd` and `/etc/group`).
pub(crate) fn image_user(user: &str, rootfs: &Path) -> Result<(u32, Option<u32>), BundleError> {
    let (u, g) = user.split_once(':').unwrap_or((user, ""));
    let lookup = |file: &str, name: &str| -> Option<(u32, Option<u32>)> {
        let text = std::fs::read_to_string(rootfs.join(file)).ok()?;
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name) && f.len() > 3)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok())))
                .flatten()
        })
    };
    let (uid, mut gid) = match u.parse::<u32>() {
        Ok(uid) => (uid, None),
        Err(_) if u.is_empty() => (0, None),
        Err(_) => lookup("etc/passwd", u).ok_or_else(|| {
            BundleError::Invalid(format!(
                "unable to find user {u}: no matching entries in passwd file"
            ))
        })?,
    };
    if !g.is_empty() {
        gid = Some(match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => lookup("etc/group", g).map(|(id, _)| id).ok_or_else(|| {
                BundleError::Invalid(format!(
                    "unable to find group {g}: no matching entries in group file"
                ))
            })?,
        });
    }
    Ok((uid, gid))
}

fn capability(name: &str) -> Result<Capability, BundleError> {
    // oci-spec parses the name without its `CAP_` prefix (and writes it with one).
    name.trim_start_matches("CAP_")
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| BundleError::Invalid(format!("unknown capability {name:?}")))
}

pub(crate) fn bind(dest: &str, source: &Path, read_only: bool) -> Result<Mount, BundleError> {
    let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
    options.push(if read_only { "ro" } else { "rw" }.to_string());
    Ok(MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(source)
        .options(options)
        .build()?)
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, BundleError> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()?)
}

/// The seccomp profile a container runs under: its own, else the pod's; none when privileged
/// (as containerd) or when neither sets one (the kubelet's default is `Unconfined`).
pub(crate) fn seccomp_profile<'a>(
    pod: &'a SandboxSpec,
    c: &'a ContainerSpec,
) -> Option<&'a SeccompProfile> {
    if c.security.privileged {
        return None;
    }
    c.security
        .seccomp
        .as_ref()
        .or(pod.security.seccomp.as_ref())
}

/// The `config.json` of one run of container `c` of `pod`.
pub(crate) fn spec(
    pod: &SandboxSpec,
    c: &ContainerSpec,
    image: &ImageConfig,
    paths: &RunPaths<'_>,
) -> Result<Spec, BundleError> {
    let args = argv(c, image);
    if args.is_empty() {
        return Err(BundleError::Invalid(
            "no command specified: the image has no entrypoint or cmd and the container no command"
                .into(),
        ));
    }
    // User: container, then pod, then the image's.
    let (image_uid, image_gid) = match &image.user {
        Some(u) if !u.is_empty() => image_user(u, paths.rootfs)?,
        _ => (0, None),
    };
    let uid = c
        .security
        .run_as_user
        .or(pod.security.run_as_user)
        .map_or(Ok(image_uid), u32::try_from)
        .map_err(|_| BundleError::Invalid("runAsUser out of range".into()))?;
    let gid = c
        .security
        .run_as_group
        .or(pod.security.run_as_group)
        .map(u32::try_from)
        .transpose()
        .map_err(|_| BundleError::Invalid("runAsGroup out of range".into()))?
        .or(image_gid)
        .unwrap_or(0);
    if c.security
        .run_as_non_root
        .or(pod.security.run_as_non_root)
        .unwrap_or(false)
        && uid == 0
    {
        return Err(BundleError::Config(format!(
            "container has runAsNonRoot and image will run as root (pod: \"{}_{}({})\", container: {})",
            pod.name, pod.namespace, pod.pod_uid, c.name
        )));
    }
    let mut groups: Vec<u32> = pod
        .security
        .supplemental_groups
        .iter()
        .chain(pod.security.fs_group.iter())
        .filter_map(|g| u32::try_from(*g).ok())
        .collect();
    groups.dedup();

    let mut caps: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect();
    if c.security.capabilities_drop.iter().any(|d| d == "ALL") {
        caps.clear();
    }
    caps.retain(|k| !c.security.capabilities_drop.iter().any(|d| d == k));
    for a in &c.security.capabilities_add {
        if a == "ALL" {
            return Err(BundleError::Invalid(
                "capability ALL is not allowed on Fargate".into(),
            ));
        }
        if !caps.contains(a) {
            caps.push(a.clone());
        }
    }
    let seccomp = match seccomp_profile(pod, c) {
        Some(SeccompProfile::RuntimeDefault) if paths.seccomp_available => {
            let bounding = caps
                .iter()
                .map(|c| c.trim_start_matches("CAP_").to_ascii_uppercase())
                .collect();
            Some(seccomp::runtime_default(&bounding)?)
        }
        Some(SeccompProfile::Localhost(profile)) => {
            return Err(BundleError::Create(seccomp::missing_localhost_profile(
                profile,
            )));
        }
        _ => None,
    };
    let caps = caps
        .iter()
        .map(|c| capability(c))
        .collect::<Result<std::collections::HashSet<_>, _>>()?;
    // Capabilities a non-root process gets only in the bounding set, as runc and containerd do.
    let effective = if uid == 0 {
        caps.clone()
    } else {
        Default::default()
    };
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .permitted(effective.clone())
        .effective(effective)
        .inheritable(std::collections::HashSet::new())
        .ambient(std::collections::HashSet::new())
        .build()?;

    let (soft, hard) = FARGATE_NOFILE;
    let hard = hard.min(paths.nofile_hard);
    let rlimits = vec![
        PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .soft(soft.min(hard))
            .hard(hard)
            .build()?,
        PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNproc)
            .soft(soft.min(hard))
            .hard(hard)
            .build()?,
    ];
    let cwd = c
        .working_dir
        .clone()
        .or_else(|| image.working_dir.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".to_string());
    let process = ProcessBuilder::default()
        .terminal(c.tty)
        .args(args)
        .env(environment(pod, c, image))
        .cwd(cwd)
        .user(
            UserBuilder::default()
                .uid(uid)
                .gid(gid)
                .additional_gids(groups)
                .build()?,
        )
        .capabilities(capabilities)
        .rlimits(rlimits)
        // As containerd: only `allowPrivilegeEscalation: false` sets no_new_privs.
        .no_new_privileges(c.security.allow_privilege_escalation == Some(false))
        .build()?;

    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        bind("/etc/hosts", &paths.etc_dir.join("hosts"), false)?,
        bind("/etc/hostname", &paths.etc_dir.join("hostname"), false)?,
        bind(
            "/etc/resolv.conf",
            &paths.etc_dir.join("resolv.conf"),
            false,
        )?,
    ];
    let termination_path = c
        .termination_message_path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/dev/termination-log".to_string());
    mounts.push(bind(&termination_path, paths.termination_log, false)?);
    for m in &c.mounts {
        let (_, dir) = paths
            .volumes
            .iter()
            .find(|(name, _)| *name == m.name)
            .ok_or_else(|| {
                BundleError::Invalid(format!(
                    "volume {:?} of mount {} is not in the pod",
                    m.name, m.mount_path
                ))
            })?;
        let source = match &m.sub_path {
            Some(sub) if !sub.is_empty() => {
                if Path::new(sub).is_absolute() || sub.split('/').any(|p| p == "..") {
                    return Err(BundleError::Invalid(format!(
                        "subPath {sub:?} must be a relative path without \"..\""
                    )));
                }
                // Resolved on the host, so a symlink the container made in the volume must
                // not lead out of it (the kubelet's subPath rule); links that stay inside, as
                // a ConfigMap volume's `key -> ..data/key`, are followed.
                let root = dir
                    .canonicalize()
                    .map_err(|e| BundleError::Invalid(format!("volume {:?}: {e}", m.name)))?;
                let mut p = root.clone();
                for part in Path::new(sub).components() {
                    p.push(part);
                    match std::fs::symlink_metadata(&p) {
                        Ok(md) if md.file_type().is_symlink() => {
                            p = p
                                .canonicalize()
                                .ok()
                                .filter(|resolved| resolved.starts_with(&root))
                                .ok_or_else(|| {
                                    BundleError::Invalid(format!(
                                        "subPath {sub:?} of volume {:?} leads out of it through a symbolic link",
                                        m.name
                                    ))
                                })?;
                        }
                        Ok(_) => {}
                        Err(_) => std::fs::create_dir(&p).map_err(|e| {
                            BundleError::Invalid(format!("creating subPath {sub:?}: {e}"))
                        })?,
                    }
                }
                if !p.starts_with(&root) {
                    return Err(BundleError::Invalid(format!(
                        "subPath {sub:?} leaves volume {:?}",
                        m.name
                    )));
                }
                p
            }
            _ => dir.clone(),
        };
        mounts.push(bind(&m.mount_path, &source, m.read_only)?);
    }

    let ns = |typ: LinuxNamespaceType, path: Option<&Path>| {
        let b = LinuxNamespaceBuilder::default().typ(typ);
        match path {
            Some(p) => b.path(p).build(),
            None => b.build(),
        }
    };
    let namespaces = vec![
        ns(LinuxNamespaceType::Pid, paths.pid_ns)?,
        ns(LinuxNamespaceType::Network, Some(paths.netns))?,
        ns(LinuxNamespaceType::Ipc, Some(paths.ipc_ns))?,
        ns(LinuxNamespaceType::Uts, Some(paths.uts_ns))?,
        ns(LinuxNamespaceType::Mount, None)?,
    ];
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(PathBuf::from(paths.cgroups_path))
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        );
    if !pod.security.sysctls.is_empty() {
        linux = linux.sysctl(
            pod.security
                .sysctls
                .iter()
                .cloned()
                .collect::<std::collections::HashMap<_, _>>(),
        );
    }
    if let Some(seccomp) = seccomp {
        linux = linux.seccomp(seccomp);
    }
    let linux = linux.build()?;

    let mut spec = Spec::default();
    spec.set_process(Some(process));
    spec.set_root(Some(
        RootBuilder::default()
            .path(paths.rootfs)
            .readonly(c.security.read_only_root_filesystem)
            .build()?,
    ));
    spec.set_hostname(Some(pod.hostname.clone()));
    spec.set_mounts(Some(mounts));
    spec.set_linux(Some(linux));
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageConfig {
        ImageConfig {
            entrypoint: vec!["/docker-entrypoint.sh".into()],
            cmd: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
            env: vec!["PATH=/usr/bin:/bin".into(), "NGINX_VERSION=1.27".into()],
            working_dir: None,
            user: None,
        }
    }

    #[test]
    fn command_and_args_override_the_image_as_kubernetes_says() {
        let mut c = ContainerSpec::default();
        assert_eq!(
            argv(&c, &image()),
            ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]
        );
        c.args = vec!["x".into()];
        assert_eq!(argv(&c, &image()), ["/docker-entrypoint.sh", "x"]);
        c.command = vec!["sh".into()];
        assert_eq!(argv(&c, &image()), ["sh", "x"]);
        c.args.clear();
        assert_eq!(argv(&c, &image()), ["sh"]);
    }

    #[test]
    fn the_container_environment_wins_over_the_image() {
        let pod = SandboxSpec::new("u", "ns", "web", "10.0.0.5".parse().unwrap(), vec![]);
        let c = ContainerSpec {
            env: vec![
                ("NGINX_VERSION".into(), "2".into()),
                ("A".into(), "b".into()),
            ],
            ..Default::default()
        };
        assert_eq!(
            environment(&pod, &c, &image()),
            [
                "HOSTNAME=web",
                "PATH=/usr/bin:/bin",
                "NGINX_VERSION=2",
                "A=b"
            ]
        );
    }

    #[test]
    fn a_terminal_gets_term_unless_the_container_sets_it() {
        let pod = SandboxSpec::new("u", "ns", "web", "10.0.0.5".parse().unwrap(), vec![]);
        let mut c = ContainerSpec {
            tty: true,
            ..Default::default()
        };
        assert!(environment(&pod, &c, &image()).contains(&"TERM=xterm".to_string()));
        c.env = vec![("TERM".into(), "vt100".into())];
        let env = environment(&pod, &c, &image());
        assert!(
            env.contains(&"TERM=vt100".to_string()) && !env.contains(&"TERM=xterm".to_string())
        );
        c.tty = false;
        c.env.clear();
        assert!(
            !environment(&pod, &c, &image())
                .iter()
                .any(|e| e.starts_with("TERM="))
        );
    }

    #[test]
    fn image_users_resolve_from_the_root_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnginx:x:101:101:nginx:/:/sbin/nologin\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\nwww:x:33:\n").unwrap();
        assert_eq!(image_user("1000", dir.path()).unwrap(), (1000, None));
        assert_eq!(image_user("1000:5", dir.path()).unwrap(), (1000, Some(5)));
        assert_eq!(image_user("nginx", dir.path()).unwrap(), (101, Some(101)));
        assert_eq!(
            image_user("nginx:www", dir.path()).unwrap(),
            (101, Some(33))
        );
        assert!(image_user("nobody", dir.path()).is_err());
    }
}
