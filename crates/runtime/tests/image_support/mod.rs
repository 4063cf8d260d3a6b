//! Helpers for the image store's integration tests: a throwaway Debian `docker-registry` on
//! 127.0.0.1, a busybox image built from `/bin/busybox`, pushes with skopeo.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use localfargate_runtime::image::{ImageConfig, LayoutFile, write_oci_layout};

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Why the test cannot run here (not root, a missing binary), if it cannot.
pub fn skip_reason(bins: &[&str]) -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("needs root (whiteouts are device nodes, layers keep owners)".into());
    }
    for b in bins {
        if which(b).is_none() {
            return Some(format!("{b} is not installed"));
        }
    }
    if !Path::new("/bin/busybox").is_file() {
        return Some("/bin/busybox is missing (apt-get install busybox-static)".into());
    }
    None
}

/// A `docker-registry serve` on a free loopback port, killed on drop.
pub struct Registry {
    pub host: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry; with `auth`, it requires that user and password (htpasswd, bcrypt).
    pub fn start(auth: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().expect("registry tempdir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let data = dir.path().join("data");
        let mut config = format!(
            "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {}}}, \
             delete: {{enabled: true}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
            data.display()
        );
        if let Some((user, pass)) = auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("run htpasswd");
            assert!(out.status.success(), "htpasswd failed");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).expect("write htpasswd");
            config.push_str(&format!(
                "auth: {{htpasswd: {{realm: test-realm, path: {}}}}}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn docker-registry");
        let mut reg = Registry {
            host: format!("127.0.0.1:{port}"),
            child,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(&reg.host).is_ok() {
                break;
            }
            if let Ok(Some(status)) = reg.child.try_wait() {
                panic!("docker-registry exited with {status}: {}", reg.log());
            }
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                reg.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An OCI layout in `dir` tagged `tag` with `/bin/busybox`, `bin/sh -> busybox` and
/// `etc/marker` holding `marker`. Returns the manifest digest.
pub fn busybox_layout(dir: &Path, tag: &str, marker: &str) -> String {
    let busybox = std::fs::read("/bin/busybox").expect("read /bin/busybox");
    let files = vec![
        LayoutFile::dir("bin", 0o755),
        LayoutFile::file("bin/busybox", 0o755, busybox),
        LayoutFile::symlink("bin/sh", "busybox"),
        LayoutFile::dir("etc", 0o755),
        LayoutFile::file("etc/marker", 0o644, marker.as_bytes().to_vec()),
    ];
    let config = ImageConfig {
        cmd: vec!["sh".into()],
        env: vec!["PATH=/bin".into()],
        ..ImageConfig::default()
    };
    write_oci_layout(dir, tag, &files, config).expect("write busybox layout")
}

pub fn skopeo(args: &[&str]) {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `skopeo copy oci:LAYOUT:TAG docker://DEST` over plain HTTP, with `user:pass` if given.
pub fn push(layout: &Path, tag: &str, dest: &str, creds: Option<&str>) {
    let src = format!("oci:{}:{tag}", layout.display());
    let dst = format!("docker://{dest}");
    let mut args = vec!["copy", "--dest-tls-verify=false"];
    if let Some(c) = creds {
        args.extend(["--dest-creds", c]);
    }
    args.extend([src.as_str(), dst.as_str()]);
    skopeo(&args);
}

/// A dockerconfigjson secret for `host` with `user:pass`.
pub fn dockerconfigjson(host: &str, user: &str, pass: &str) -> Vec<u8> {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    serde_json::json!({"auths": {host: {"auth": auth}}})
        .to_string()
        .into_bytes()
}
