//! A cluster on a `localfargate up` server (simulated runtime) with its kubeconfig, driven by
//! the real kubectl of a chosen version: what the Kubernetes API's end-to-end tests share.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Server, localfargate};

pub const KUBECTL_DIR: &str = "/usr/lib/google-cloud-sdk/bin";

/// kubectl's stdout and stderr, for assertions and failure messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Why a test needs skipping: the newest kubectl it drives is missing.
pub fn kubectl_missing() -> Option<String> {
    let path = format!("{KUBECTL_DIR}/kubectl.1.33");
    (!std::path::Path::new(&path).exists()).then(|| format!("{path} is not installed"))
}

/// Whether a test needing kubectl cannot run here (and says why).
pub fn skip_without_kubectl() -> bool {
    if let Some(why) = kubectl_missing() {
        eprintln!("skipped: {why}");
        return true;
    }
    false
}

pub struct KubeCluster {
    /// Dropping it stops `localfargate up`.
    pub server: Server,
    pub name: String,
    pub kubeconfig: PathBuf,
}

impl Drop for KubeCluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

impl KubeCluster {
    /// A new cluster on its own server, once its API answers with the default namespace.
    pub fn create(name: &str) -> KubeCluster {
        Self::create_with(name, &[])
    }

    /// [`KubeCluster::create`] on a server started with more `up` flags.
    pub fn create_with(name: &str, up_flags: &[&str]) -> KubeCluster {
        let server = super::up_with("0.1", up_flags);
        let created = localfargate(&server, &["cluster", "create", "--name", name]);
        assert!(created.status.success(), "{}", text(&created));
        let config = localfargate(&server, &["kubeconfig", "--cluster", name]);
        assert!(config.status.success(), "{}", text(&config));
        let kubeconfig = std::env::temp_dir().join(format!(
            "lf-kube-{name}-{}-{}",
            std::process::id(),
            super::free_port()
        ));
        std::fs::write(&kubeconfig, &config.stdout).unwrap();
        let c = KubeCluster {
            server,
            name: name.to_string(),
            kubeconfig,
        };
        c.eventually("the API and its default namespace", || {
            c.kubectl("1.31", &["get", "namespace", "default"])
                .status
                .success()
        });
        c
    }

    /// kubectl `version` (`1.27` … `1.33`) with a fresh cache directory: kubectl keeps
    /// discovery and OpenAPI documents on disk, which must not leak between calls.
    pub fn kubectl(&self, version: &str, args: &[&str]) -> Output {
        let cache = tempfile::tempdir().unwrap();
        self.kubectl_cached(cache.path(), version, args)
    }

    /// kubectl with the discovery cache in `cache`, kept between calls as a user's is.
    pub fn kubectl_cached(&self, cache: &std::path::Path, version: &str, args: &[&str]) -> Output {
        Command::new(format!("{KUBECTL_DIR}/kubectl.{version}"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(cache)
            .args(args)
            .output()
            .unwrap()
    }

    /// kubectl that must succeed; its stdout.
    pub fn ok(&self, version: &str, args: &[&str]) -> String {
        let out = self.kubectl(version, args);
        assert!(
            out.status.success(),
            "kubectl {version} {args:?}: {}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kubectl that must fail; what it printed.
    pub fn fails(&self, version: &str, args: &[&str]) -> String {
        let out = self.kubectl(version, args);
        assert!(
            !out.status.success(),
            "kubectl {version} {args:?} succeeded: {}",
            text(&out)
        );
        text(&out)
    }

    /// An object or list as JSON.
    pub fn json(&self, version: &str, args: &[&str]) -> Value {
        let mut full = args.to_vec();
        full.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(version, &full)).unwrap()
    }

    /// `kubectl apply -f -` of `yaml`, with extra flags.
    pub fn apply(&self, version: &str, yaml: &str, flags: &[&str]) -> Output {
        let cache = tempfile::tempdir().unwrap();
        super::output_with_stdin(
            Command::new(format!("{KUBECTL_DIR}/kubectl.{version}"))
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .arg("--cache-dir")
                .arg(cache.path())
                .args(["apply", "-f", "-"])
                .args(flags),
            yaml.as_bytes(),
        )
    }

    /// A Fargate profile selecting `namespace`, made through the EKS API, once it is ACTIVE.
    pub fn fargate_profile(&self, name: &str, namespace: &str) {
        let out = localfargate(
            &self.server,
            &[
                "profile",
                "create",
                "--cluster",
                &self.name,
                "--name",
                name,
                "--namespace",
                namespace,
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
    }

    /// Wait up to a minute for `check`.
    pub fn eventually(&self, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
