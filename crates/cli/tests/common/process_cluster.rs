//! A cluster on a `localfargate up --runtime process` server, for the end-to-end tests of pods
//! that really run: real kubectl, Debian's `docker-registry` on 127.0.0.1, images built from
//! `busybox-static` and loaded with `localfargate image load`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Server, localfargate};

pub const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.31";

pub fn skip_reason() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not root".into());
    }
    for tool in ["runc", "skopeo", "docker-registry"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    if !localfargate_runtime::test_images::busybox_available() {
        return Some("/bin/busybox is not installed (busybox-static)".into());
    }
    if !Path::new(KUBECTL).exists() {
        return Some(format!("{KUBECTL} is not installed"));
    }
    None
}

#[macro_export]
macro_rules! skip_unless_able {
    () => {
        if let Some(why) = $crate::common::process_cluster::skip_reason() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Debian's registry on a free loopback port, with an optional htpasswd file; killed on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    pub fn start(auth: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let mut config = format!(
            "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
            dir.path().join("data").display()
        );
        if let Some((user, pass)) = auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", text(&out));
            std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
            config.push_str(&format!(
                "auth: {{htpasswd: {{realm: test, path: {}}}}}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        super::wait_listening(port, "docker-registry");
        Registry {
            child,
            port,
            _dir: dir,
        }
    }

    /// Pushes an OCI layout into the registry as `repo:tag`.
    pub fn push(&self, layout: &Path, tag_in_layout: &str, target: &str, creds: Option<&str>) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--dest-tls-verify=false"]);
        if let Some(c) = creds {
            cmd.args(["--dest-creds", c]);
        }
        let out = cmd
            .arg(format!("oci:{}:{tag_in_layout}", layout.display()))
            .arg(format!("docker://127.0.0.1:{}/{target}", self.port))
            .output()
            .unwrap();
        assert!(out.status.success(), "skopeo: {}", text(&out));
    }
}

/// A cluster on a `--runtime process` server with a Fargate profile for `default` and `jobs`.
pub struct Cluster {
    server: Option<Server>,
    pub kubeconfig: PathBuf,
    pub data: tempfile::TempDir,
    flags: Vec<String>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.delete();
    }
}

pub fn sandboxes_left(data: &Path) -> usize {
    std::fs::read_dir(data.join("runtime/sandboxes"))
        .map(|d| d.count())
        .unwrap_or(0)
}

pub fn server(data: &Path, flags: &[String]) -> Server {
    let mut args: Vec<&str> = vec!["--runtime", "process", "--data-dir", data.to_str().unwrap()];
    args.extend(flags.iter().map(String::as_str));
    // `up_with` passes --ephemeral; the data directory wins for the process runtime's state.
    super::up_with_store("0.1", &args)
}

impl Cluster {
    pub fn new(flags: &[String], prepare: impl FnOnce(&Path)) -> Cluster {
        let data = tempfile::tempdir().unwrap();
        prepare(data.path());
        let server = server(data.path(), flags);
        let ok = |out: Output| assert!(out.status.success(), "{}", text(&out));
        ok(localfargate(
            &server,
            &["cluster", "create", "--name", "run"],
        ));
        for (name, ns) in [("fp-default", "default"), ("fp-jobs", "jobs")] {
            ok(localfargate(
                &server,
                &[
                    "profile",
                    "create",
                    "--cluster",
                    "run",
                    "--name",
                    name,
                    "--namespace",
                    ns,
                ],
            ));
        }
        let config = localfargate(&server, &["kubeconfig", "--cluster", "run"]);
        ok(config.clone());
        let kubeconfig = data.path().join("kubeconfig");
        std::fs::write(&kubeconfig, &config.stdout).unwrap();
        let c = Cluster {
            server: Some(server),
            kubeconfig,
            data,
            flags: flags.to_vec(),
        };
        c.eventually("the default namespace", Duration::from_secs(30), || {
            c.kubectl(&["get", "namespace", "default"]).status.success()
        });
        c
    }

    /// The `localfargate` CLI against this cluster's server.
    pub fn localfargate(&self, args: &[&str]) -> Output {
        localfargate(self.server.as_ref().expect("the server runs"), args)
    }

    /// The server's EKS (and IAM, STS) endpoint.
    pub fn url(&self) -> &str {
        self.server.as_ref().map_or("", |s| s.url.as_str())
    }

    /// The server's process id.
    pub fn server_pid(&self) -> u32 {
        self.server.as_ref().map_or(0, Server::pid)
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.status.success(), "kubectl {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `GET path` from inside pod `ns/pod` to `host:port`, as busybox's `nc` sends it (Debian's
    /// static busybox wget cannot resolve names without NSS modules), waiting at most `wait`
    /// seconds: kubectl's output, the HTTP response on stdout.
    pub fn http_from(
        &self,
        ns: &str,
        pod: &str,
        host: &str,
        port: u16,
        path: &str,
        wait: u32,
    ) -> Output {
        let script =
            format!("printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' | nc -w {wait} {host} {port}");
        self.kubectl(&["exec", "-n", ns, pod, "--", "sh", "-c", &script])
    }

    pub fn apply(&self, yaml: &str) {
        let out = super::output_with_stdin(
            Command::new(KUBECTL)
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["apply", "-f", "-"]),
            yaml.as_bytes(),
        );
        assert!(out.status.success(), "apply: {}", text(&out));
    }

    pub fn pod(&self, ns: &str, name: &str) -> Value {
        serde_json::from_str(&self.ok(&["get", "pod", "-n", ns, name, "-o", "json"])).unwrap()
    }

    pub fn eventually(&self, what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn wait_phase(&self, ns: &str, name: &str, phases: &[&str]) -> Value {
        let mut last = Value::Null;
        self.eventually(
            &format!("pod {ns}/{name} in {phases:?}"),
            Duration::from_secs(90),
            || {
                last = self.pod(ns, name);
                phases.contains(&last["status"]["phase"].as_str().unwrap_or(""))
            },
        );
        last
    }

    pub fn wait_ready(&self, ns: &str, name: &str) -> Value {
        let mut last = Value::Null;
        self.eventually(
            &format!("pod {ns}/{name} Ready"),
            Duration::from_secs(90),
            || {
                last = self.pod(ns, name);
                last["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            },
        );
        last
    }

    pub fn events(&self, ns: &str, pod: &str) -> Vec<(String, String)> {
        let selector = format!("involvedObject.name={pod}");
        let list: Value = serde_json::from_str(&self.ok(&[
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            &selector,
            "-o",
            "json",
        ]))
        .unwrap();
        list["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["reason"].as_str().unwrap_or("").to_string(),
                            e["message"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Deletes the profiles, then the cluster (which removes every sandbox), then stops the
    /// server.
    pub fn delete(&mut self) {
        if let Some(server) = &self.server {
            // Every profile (tests add their own, such as CoreDNS's): EKS refuses to delete a
            // cluster that still has one, and the server's end would then leave its pods running.
            let listed = localfargate(
                server,
                &["profile", "get", "--cluster", "run", "-o", "json"],
            );
            let mut names: Vec<String> = serde_json::from_slice::<Value>(&listed.stdout)
                .ok()
                .and_then(|v| {
                    v.as_array().map(|a| {
                        a.iter()
                            // eksctl's shape (`name`), which `profile get` prints.
                            .filter_map(|p| {
                                p["name"]
                                    .as_str()
                                    .or_else(|| p["fargateProfileName"].as_str())
                                    .map(str::to_string)
                            })
                            .collect()
                    })
                })
                .unwrap_or_default();
            if names.is_empty() {
                names = vec!["fp-default".into(), "fp-jobs".into()];
            }
            for p in names.iter().map(String::as_str) {
                let _ = localfargate(
                    server,
                    &[
                        "profile",
                        "delete",
                        "--cluster",
                        "run",
                        "--name",
                        p,
                        "--wait",
                    ],
                );
            }
            let _ = localfargate(server, &["cluster", "delete", "--name", "run", "--wait"]);
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline && sandboxes_left(self.data.path()) > 0 {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        self.server.take();
    }

    /// Kills the server as `kill -9` would and starts another on the same data directory.
    pub fn crash_and_restart(&mut self) {
        self.server.take();
        let server = server(self.data.path(), &self.flags);
        self.server = Some(server);
        self.eventually("the API after a restart", Duration::from_secs(30), || {
            self.kubectl(&["get", "namespace", "default"])
                .status
                .success()
        });
    }
}

/// `up` flags for a VPC model of a test's own: the default model with its `10.0.` addresses
/// moved to `prefix` (so pods of clusters running side by side never share addresses), then
/// changed by `edit` (security groups, say), written under `dir`.
pub fn network_flags(dir: &Path, prefix: &str, edit: impl FnOnce(&mut Value)) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_localfargate"))
        .args(["network", "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let moved = String::from_utf8_lossy(&out.stdout).replace("\"10.0.", &format!("\"{prefix}"));
    let mut model: Value = serde_json::from_str(&moved).unwrap();
    edit(&mut model);
    let path = dir.join("network.json");
    std::fs::write(&path, model.to_string()).unwrap();
    vec!["--network".to_string(), path.display().to_string()]
}

/// The busybox image as an OCI layout, tagged `tag`.
pub fn busybox_layout(dir: &Path, tag: &str, cmd: &[&str]) -> PathBuf {
    let layout = dir.join(format!("layout-{}", tag.replace([':', '/'], "-")));
    localfargate_runtime::test_images::busybox_layout(&layout, tag, cmd).unwrap();
    layout
}

/// `localfargate image ARGS --data-dir DATA`, which must succeed; its output.
pub fn image(data: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_localfargate"))
        .arg("image")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    assert!(out.status.success(), "image {args:?}: {}", text(&out));
    text(&out)
}

pub fn load(data: &Path, layout: &Path) {
    let loaded = image(data, &["load", layout.to_str().unwrap()]);
    assert!(loaded.contains("Loaded image"), "{loaded}");
}

impl Cluster {
    /// Kills the server as `kill -9` would and leaves it down: what the data directory holds
    /// can be changed before [`Cluster::start_again`].
    pub fn crash(&mut self) {
        self.server.take();
    }

    /// Starts a server on the same data directory after [`Cluster::crash`], once its API
    /// answers.
    pub fn start_again(&mut self) {
        assert!(self.server.is_none(), "the server is still running");
        self.server = Some(server(self.data.path(), &self.flags));
        self.eventually("the API after a restart", Duration::from_secs(30), || {
            self.kubectl(&["get", "namespace", "default"])
                .status
                .success()
        });
    }
}
