//! The harness the end-to-end tests share: a `localfargate up` process on free ports.
// Each test binary uses some of these helpers.
#![allow(dead_code)]

pub mod host_files;
pub mod kube_cluster;
pub mod oidc;
pub mod process_cluster;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    /// The `localfargate up` process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on, with the next few free as well (a server's clusters take the
/// ports after its `--kube-port`). Chosen below Linux's ephemeral range (32768–60999): a port the
/// kernel handed out for `bind(0)` can be taken again, before the server binds it, as the source
/// port of any of the many client connections the tests make, which failed tests at random.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let state = RandomState::new();
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 20_000 + (state.hash_one((std::process::id(), n)) % 12_000) as u16;
        let free = (port..port + 8).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return port;
        }
    }
}

/// `localfargate up --ephemeral` with short lifecycles and its Kubernetes APIs from a free port,
/// once it listens.
pub fn up(lifecycle_seconds: &str) -> Server {
    up_with(lifecycle_seconds, &[])
}

/// `up`, with more flags.
pub fn up_with(lifecycle_seconds: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--ephemeral"];
    args.extend(extra);
    up_with_store(lifecycle_seconds, &args)
}

/// `up` with `extra` flags, which say where the store is (`--ephemeral` or `--data-dir`).
pub fn up_with_store(lifecycle_seconds: &str, extra: &[&str]) -> Server {
    let port = free_port();
    let kube_port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_localfargate"))
        .args(["up", "--lifecycle-seconds", lifecycle_seconds])
        .args([
            "--port",
            &port.to_string(),
            "--kube-port",
            &kube_port.to_string(),
        ])
        // The simulated runtime unless a test asks for another: most tests are about the API
        // and scheduling, and their images (nginx, perl, …) are not on this machine.
        .args(if extra.contains(&"--runtime") {
            &[][..]
        } else {
            &["--runtime", "simulated"][..]
        })
        .args(extra)
        .stdout(Stdio::null())
        .stderr(server_log(port))
        .spawn()
        .unwrap();
    wait_listening(port, "localfargate up");
    Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// Where a test server's log goes: nowhere, unless `LOCALFARGATE_TEST_LOG_DIR` names a directory;
/// then `<dir>/server-<port>.log` (with `LOCALFARGATE_LOG` choosing what is logged). A test that
/// hangs on a server's state is opaque without it.
fn server_log(port: u16) -> Stdio {
    let Some(dir) = std::env::var_os("LOCALFARGATE_TEST_LOG_DIR") else {
        return Stdio::null();
    };
    let path = std::path::Path::new(&dir).join(format!("server-{port}.log"));
    match std::fs::File::create(&path) {
        Ok(file) => Stdio::from(file),
        Err(e) => panic!("LOCALFARGATE_TEST_LOG_DIR: {}: {e}", path.display()),
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

/// Waits (at most 20 s) until something listens on 127.0.0.1:`port`.
pub fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `command` with `input` on its stdin, collecting its output.
pub fn output_with_stdin(command: &mut Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// A JSON request to a server's EKS API (plain HTTP, unsigned, as `--auth any` takes it), and
/// its status and body (`Null` when it is not JSON).
pub fn eks_request(
    server_url: &str,
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let addr = server_url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let body = body.to_string();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    // The server answers with a Content-Length body, not chunks.
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}
