//! End-to-end: each ACTIVE cluster's Kubernetes API, checked with the real kubectl binaries.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Server, localfargate};

fn up() -> Server {
    common::up("0.1")
}

const KUBECTL_DIR: &str = "/usr/lib/google-cloud-sdk/bin";

fn kubectl(binary: &str, kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(binary)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap()
}

/// A cluster and a kubeconfig for it, once its API answers.
fn cluster_with_kubeconfig(server: &Server, name: &str) -> tempfile_path::TempPath {
    let created = localfargate(server, &["cluster", "create", "--name", name]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let config = localfargate(server, &["kubeconfig", "--cluster", name]);
    assert!(
        config.status.success(),
        "{}",
        String::from_utf8_lossy(&config.stderr)
    );
    let path = tempfile_path::TempPath::new(&format!("kubeconfig-{name}"));
    std::fs::write(&path.0, &config.stdout).unwrap();
    // The supervisor starts the listener within a moment of ACTIVE.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = kubectl(
            &format!("{KUBECTL_DIR}/kubectl.1.31"),
            &path.0,
            &["get", "--raw", "/healthz"],
        );
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "API never answered: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    path
}

mod tempfile_path {
    pub struct TempPath(pub std::path::PathBuf);
    impl TempPath {
        pub fn new(name: &str) -> Self {
            TempPath(std::env::temp_dir().join(format!("lf-{name}-{}", std::process::id())))
        }
    }
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[test]
fn kubectl_versions_verify_tls_and_see_the_default_version() {
    let server = up();
    let kubeconfig = cluster_with_kubeconfig(&server, "demo");
    for version in ["1.29", "1.30", "1.31", "1.32", "1.33"] {
        let out = kubectl(
            &format!("{KUBECTL_DIR}/kubectl.{version}"),
            &kubeconfig.0,
            &["version", "-o", "json"],
        );
        assert!(
            out.status.success(),
            "kubectl {version}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["serverVersion"]["minor"], "34", "kubectl {version}");
        assert_eq!(v["serverVersion"]["major"], "1");
    }
    // /usr/bin/kubectl picks its binary by the server's version.
    let out = kubectl(
        "/usr/bin/kubectl",
        &kubeconfig.0,
        &["version", "-o", "json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // For a 1.34 server (the default version) it has no kubectl.1.34 and runs its default one.
    assert!(
        v["clientVersion"]["minor"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
}

#[test]
fn unauthenticated_and_wrong_ca_are_refused() {
    let server = up();
    let kubeconfig = cluster_with_kubeconfig(&server, "locked");
    let kubectl131 = format!("{KUBECTL_DIR}/kubectl.1.31");
    let out = kubectl(
        &kubectl131,
        &kubeconfig.0,
        &["--token", "wrong", "get", "--raw", "/version"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Unauthorized"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another cluster's CA does not verify this cluster's API.
    let other = cluster_with_kubeconfig(&server, "other");
    let other_ca = std::fs::read_to_string(&other.0).unwrap();
    let mine = std::fs::read_to_string(&kubeconfig.0).unwrap();
    let ca = |text: &str| {
        text.lines()
            .find(|l| l.contains("certificate-authority-data"))
            .unwrap()
            .to_string()
    };
    let swapped = mine.replace(&ca(&mine), &ca(&other_ca));
    let path = tempfile_path::TempPath::new("swapped");
    std::fs::write(&path.0, swapped).unwrap();
    let out = kubectl(&kubectl131, &path.0, &["get", "--raw", "/version"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("certificate"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Unknown paths answer with a Kubernetes Status.
    let out = kubectl(&kubectl131, &kubeconfig.0, &["get", "--raw", "/nope"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("the server could not find the requested resource")
    );
}
