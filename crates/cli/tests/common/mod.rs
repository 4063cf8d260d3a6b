//! The harness the end-to-end tests share: a `localfargate up` process on free ports.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `localfargate up --ephemeral` with short lifecycles and its Kubernetes APIs from a free port,
/// once it listens.
pub fn up(lifecycle_seconds: &str) -> Server {
    up_with(lifecycle_seconds, &[])
}

/// `up`, with more flags.
pub fn up_with(lifecycle_seconds: &str, extra: &[&str]) -> Server {
    let port = free_port();
    let kube_port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_localfargate"))
        .args([
            "up",
            "--ephemeral",
            "--lifecycle-seconds",
            lifecycle_seconds,
        ])
        .args([
            "--port",
            &port.to_string(),
            "--kube-port",
            &kube_port.to_string(),
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "localfargate up did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// The CLI against this server's EKS API.
pub fn localfargate(server: &Server, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_localfargate"))
        .args(args)
        .env("AWS_ENDPOINT_URL", &server.url)
        .env_remove("AWS_ENDPOINT_URL_EKS")
        .output()
        .unwrap()
}
