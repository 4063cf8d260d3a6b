//! Pod load generator for scripts/bench-pods: N pods created through a cluster's Kubernetes API
//! by C concurrent keep-alive HTTP/1.1 clients, timed until every one is Running.
//!
//! Before the first create it lists the namespace's pods and opens a watch from that list's
//! resourceVersion; each pod's first event with `status.phase == "Running"` marks it Running.
//! Figures: create throughput, end-to-end pods per second (pods Running / time from the first
//! create to the last Running), create latency, create-to-Running latency, errors. A human
//! summary goes to stdout, then one JSON line starting `{"podload":`.
//!
//! With `--ready` a pod counts when its `Ready` condition is `True` instead (what a pod that
//! really runs reaches once its container started and passed readiness: the process runtime's
//! pods). `--sequential` creates one pod at a time, each once the one before counted: create →
//! Running/Ready latency without queueing. `--image` and `--command` set the container.
//!
//! Usage: podload --kubeconfig FILE [--pods N] [--clients C] [--timeout SECONDS] [--probe]
//!                [--ready] [--sequential] [--image IMAGE] [--image-pull-policy P]
//!                [--command ARG]...
//! (FILE is `localfargate kubeconfig --cluster NAME -o json`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[derive(Debug, Parser)]
#[command(about = "Create pods through a cluster's Kubernetes API and time them until Running")]
struct Args {
    /// A kubeconfig in JSON (`localfargate kubeconfig --cluster NAME -o json`); its first
    /// cluster and user are used.
    #[arg(long, value_name = "FILE")]
    kubeconfig: PathBuf,
    /// How many pods to create.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Concurrent clients, each on its own keep-alive connection.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds to wait, after the last create, for every created pod to be Running.
    #[arg(long, default_value_t = 300.0)]
    timeout: f64,
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Pods are named PREFIX-0 … PREFIX-(N-1) and labelled app=PREFIX.
    #[arg(long, default_value = "load")]
    prefix: String,
    /// Only check that the API answers (list the namespace's pods) and exit.
    #[arg(long)]
    probe: bool,
    /// Count a pod when its Ready condition is True, not when its phase is Running.
    #[arg(long)]
    ready: bool,
    /// One pod at a time (one client): each create waits until the pod before counted.
    #[arg(long)]
    sequential: bool,
    /// The container's image.
    #[arg(long, default_value = "nginx")]
    image: String,
    /// The container's imagePullPolicy (default: the API server's).
    #[arg(long)]
    image_pull_policy: Option<String>,
    /// The container's command, one argument per use (default: the image's).
    #[arg(long = "command", value_name = "ARG", allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Where to connect and how to authenticate.
struct Target {
    host: String,
    port: u16,
    authority: String,
    server_name: ServerName<'static>,
    connector: TlsConnector,
    bearer: String,
}

fn target(path: &PathBuf) -> Result<Target> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let config: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let cluster = &config["clusters"][0]["cluster"];
    let server = cluster["server"]
        .as_str()
        .ok_or_else(|| anyhow!("kubeconfig: no clusters[0].cluster.server"))?;
    let ca_b64 = cluster["certificate-authority-data"]
        .as_str()
        .ok_or_else(|| anyhow!("kubeconfig: no certificate-authority-data"))?;
    let token = config["users"][0]["user"]["token"]
        .as_str()
        .ok_or_else(|| anyhow!("kubeconfig: no users[0].user.token"))?;

    let authority = server
        .strip_prefix("https://")
        .ok_or_else(|| anyhow!("server {server:?} is not https://"))?
        .trim_end_matches('/')
        .to_string();
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("server {server:?} has no port"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("server {server:?}: bad port"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let server_name = ServerName::try_from(host.clone())
        .with_context(|| format!("server {server:?}: bad host"))?;

    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(ca_b64.trim())
        .context("certificate-authority-data: not base64")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca_pem) {
        roots
            .add(cert.context("certificate-authority-data: bad PEM")?)
            .context("certificate-authority-data: bad certificate")?;
    }
    if roots.is_empty() {
        bail!("certificate-authority-data holds no certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Target {
        host,
        port,
        authority,
        server_name,
        connector: TlsConnector::from(Arc::new(tls)),
        bearer: format!("Bearer {token}"),
    })
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(t: &Target) -> Result<Sender> {
    let tcp = TcpStream::connect((t.host.as_str(), t.port))
        .await
        .with_context(|| format!("connecting to {}", t.authority))?;
    tcp.set_nodelay(true)?;
    let tls = t
        .connector
        .connect(t.server_name.clone(), tcp)
        .await
        .context("TLS handshake")?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn request(t: &Target, method: Method, path: &str, body: Bytes) -> Result<Request<Full<Bytes>>> {
    Ok(Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, &t.authority)
        .header(header::AUTHORIZATION, &t.bearer)
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))?)
}

/// Per-pod instants, as nanoseconds since the start plus one (0: not yet).
struct Times {
    start: Instant,
    sent: Vec<AtomicU64>,
    created: Vec<AtomicU64>,
    running: Vec<AtomicU64>,
    running_count: AtomicUsize,
    /// Woken whenever a pod counts (`--sequential` waits on it).
    counted: tokio::sync::Notify,
}

impl Times {
    fn new(n: usize) -> Self {
        let v = || (0..n).map(|_| AtomicU64::new(0)).collect();
        Times {
            start: Instant::now(),
            sent: v(),
            created: v(),
            running: v(),
            running_count: AtomicUsize::new(0),
            counted: tokio::sync::Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64 + 1
    }

    /// Marks pod `i` Running unless it already is; true when this was the first time.
    fn mark_running(&self, i: usize) -> bool {
        let first = self.running[i]
            .compare_exchange(0, self.now(), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if first {
            self.running_count.fetch_add(1, Ordering::Relaxed);
            self.counted.notify_waiters();
        }
        first
    }
}

fn get(v: &AtomicU64) -> Option<u64> {
    match v.load(Ordering::Relaxed) {
        0 => None,
        t => Some(t - 1),
    }
}

// Only the fields the watch needs; serde skips the rest of each pod.
#[derive(Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    kind: String,
    object: EventObject,
}

#[derive(Deserialize, Default)]
struct EventObject {
    #[serde(default)]
    metadata: Meta,
    status: Option<StatusField>,
    message: Option<String>,
}

#[derive(Deserialize, Default)]
struct Meta {
    name: Option<String>,
    #[serde(rename = "resourceVersion")]
    resource_version: Option<String>,
}

/// A pod's `status` object, or the string of a `Status` (`"Failure"`) in an ERROR event.
#[derive(Deserialize)]
#[serde(untagged)]
enum StatusField {
    Pod {
        phase: Option<String>,
        #[serde(default)]
        conditions: Vec<Condition>,
    },
    Text(#[allow(dead_code)] String),
}

#[derive(Deserialize)]
struct PodList {
    metadata: Meta,
    #[serde(default)]
    items: Vec<EventObject>,
}

#[derive(Deserialize)]
struct Condition {
    #[serde(rename = "type")]
    kind: String,
    status: String,
}

fn running(o: &EventObject) -> bool {
    matches!(&o.status, Some(StatusField::Pod { phase: Some(p), .. }) if p == "Running")
}

fn ready(o: &EventObject) -> bool {
    matches!(&o.status, Some(StatusField::Pod { conditions, .. })
        if conditions.iter().any(|c| c.kind == "Ready" && c.status == "True"))
}

struct Watcher {
    target: Arc<Target>,
    times: Arc<Times>,
    namespace: String,
    prefix: String,
    /// `--ready`: the Ready condition counts, not the Running phase.
    ready: bool,
    /// Times the watch had to be re-established (stream ended, ERROR event, connection error).
    restarts: AtomicUsize,
    /// Pods first seen Running in a re-list rather than an event (their time is late).
    relisted: AtomicUsize,
    last_error: Mutex<Option<String>>,
}

impl Watcher {
    fn index(&self, name: &str) -> Option<usize> {
        let i: usize = name
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('-')?
            .parse()
            .ok()?;
        (i < self.times.running.len()).then_some(i)
    }

    fn see(&self, o: &EventObject) -> bool {
        let counts = if self.ready { ready(o) } else { running(o) };
        if !counts {
            return false;
        }
        match o.metadata.name.as_deref().and_then(|n| self.index(n)) {
            Some(i) => self.times.mark_running(i),
            None => false,
        }
    }

    /// Lists the namespace's pods (marking those already Running) and returns the list's
    /// resourceVersion.
    async fn list(&self, sender: &mut Sender) -> Result<String> {
        let path = format!("/api/v1/namespaces/{}/pods", self.namespace);
        sender.ready().await?;
        let response = sender
            .send_request(request(&self.target, Method::GET, &path, Bytes::new())?)
            .await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if status != StatusCode::OK {
            bail!("listing pods: {status}: {}", String::from_utf8_lossy(&body));
        }
        let list: PodList = serde_json::from_slice(&body).context("listing pods: bad JSON")?;
        let mut late = 0;
        for item in &list.items {
            if self.see(item) {
                late += 1;
            }
        }
        self.relisted.fetch_add(late, Ordering::Relaxed);
        list.metadata
            .resource_version
            .ok_or_else(|| anyhow!("listing pods: no metadata.resourceVersion"))
    }

    /// Follows one watch stream until it ends or fails.
    async fn follow(&self, sender: &mut Sender, rv: &str) -> Result<()> {
        let path = format!(
            "/api/v1/namespaces/{}/pods?watch=true&allowWatchBookmarks=true&resourceVersion={rv}",
            self.namespace
        );
        sender.ready().await?;
        let response = sender
            .send_request(request(&self.target, Method::GET, &path, Bytes::new())?)
            .await?;
        let status = response.status();
        let mut body = response.into_body();
        if status != StatusCode::OK {
            let text = body.collect().await?.to_bytes();
            bail!("watch: {status}: {}", String::from_utf8_lossy(&text));
        }
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            let mut consumed = 0;
            while let Some(end) = buf[consumed..].iter().position(|&b| b == b'\n') {
                let line = &buf[consumed..consumed + end];
                consumed += end + 1;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let event: WatchEvent = serde_json::from_slice(line).with_context(|| {
                    format!(
                        "watch: bad event: {}",
                        String::from_utf8_lossy(&line[..line.len().min(200)])
                    )
                })?;
                match event.kind.as_str() {
                    "ADDED" | "MODIFIED" => {
                        self.see(&event.object);
                    }
                    "ERROR" => bail!(
                        "watch: ERROR event: {}",
                        event.object.message.unwrap_or_default()
                    ),
                    _ => {}
                }
            }
            buf.drain(..consumed);
        }
        Ok(())
    }

    /// Lists, then watches from the list; on any failure lists and watches again.
    async fn run(self: Arc<Self>, first_rv: String) {
        let mut rv = Some(first_rv);
        loop {
            let result = async {
                let mut sender = connect(&self.target).await?;
                let from = match rv.take() {
                    Some(rv) => rv,
                    None => self.list(&mut sender).await?,
                };
                self.follow(&mut sender, &from).await
            }
            .await;
            let message = match result {
                Ok(()) => "watch stream ended".to_string(),
                Err(e) => format!("{e:#}"),
            };
            *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
            self.restarts.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[derive(Default)]
struct ClientResult {
    ok: usize,
    errors: usize,
    first_error: Option<String>,
}

fn fail(r: &mut ClientResult, e: String) {
    r.errors += 1;
    r.first_error.get_or_insert(e);
}

/// What each client creates, and how.
struct Load {
    path: String,
    prefix: String,
    container: Value,
    /// Wait until each pod counts before the next create (`--sequential`).
    wait_each: Option<Duration>,
}

async fn client(
    target: Arc<Target>,
    times: Arc<Times>,
    next: Arc<AtomicUsize>,
    load: Arc<Load>,
) -> ClientResult {
    let (path, prefix) = (&load.path, &load.prefix);
    let n = times.sent.len();
    let mut result = ClientResult::default();
    let mut sender: Option<Sender> = None;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            return result;
        }
        let body = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{prefix}-{i}"), "labels": {"app": prefix}},
            "spec": {"containers": [load.container.clone()]},
        });
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        // A connection is (re)opened when there is none or the last one failed.
        if let Some(s) = sender.as_mut()
            && s.ready().await.is_err()
        {
            sender = None;
        }
        let s = match sender {
            Some(ref mut s) => s,
            None => match connect(&target).await {
                Ok(s) => sender.insert(s),
                Err(e) => {
                    fail(&mut result, format!("connect: {e:#}"));
                    continue;
                }
            },
        };
        let req = match request(&target, Method::POST, path, body) {
            Ok(r) => r,
            Err(e) => {
                fail(&mut result, format!("request: {e:#}"));
                continue;
            }
        };
        times.sent[i].store(times.now(), Ordering::Relaxed);
        let response = match s.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                fail(&mut result, format!("POST: {e}"));
                sender = None;
                continue;
            }
        };
        let status = response.status();
        let body = match response.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                fail(&mut result, format!("POST body: {e}"));
                sender = None;
                continue;
            }
        };
        if status == StatusCode::CREATED {
            times.created[i].store(times.now(), Ordering::Relaxed);
            result.ok += 1;
            if let Some(limit) = load.wait_each {
                let counted = async {
                    loop {
                        let woken = times.counted.notified();
                        if get(&times.running[i]).is_some() {
                            return;
                        }
                        woken.await;
                    }
                };
                if tokio::time::timeout(limit, counted).await.is_err() {
                    fail(
                        &mut result,
                        format!("{prefix}-{i} did not count within {limit:?}"),
                    );
                    return result;
                }
            }
        } else {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            fail(&mut result, format!("POST {prefix}-{i}: {status}: {text}"));
        }
    }
}

/// This process's CPU time (user + system) in seconds, from /proc/self/stat (Linux; clock ticks
/// taken as 100 per second, as on every common Linux build).
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn ms(nanos: Option<u64>) -> Value {
    nanos.map_or(Value::Null, |n| json!((n as f64 / 1e4).round() / 100.0))
}

fn show(v: &Value) -> String {
    match v.as_f64() {
        Some(x) => format!("{x:.2}"),
        None => "-".to_string(),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        bail!("--timeout must be a positive number of seconds");
    }
    let target = Arc::new(target(&args.kubeconfig)?);
    let times = Arc::new(Times::new(args.pods));
    let watcher = Arc::new(Watcher {
        target: target.clone(),
        times: times.clone(),
        namespace: args.namespace.clone(),
        prefix: args.prefix.clone(),
        ready: args.ready,
        restarts: AtomicUsize::new(0),
        relisted: AtomicUsize::new(0),
        last_error: Mutex::new(None),
    });

    // The initial list: also shows the API answers, with our token and CA, before any load.
    let mut sender = connect(&target).await?;
    let rv = watcher.list(&mut sender).await?;
    drop(sender);
    if args.probe {
        println!("ok: resourceVersion {rv}");
        return Ok(());
    }
    let already = times.running_count.load(Ordering::Relaxed);
    if already > 0 {
        eprintln!(
            "warning: {already} pods named {}-N are already Running; creating them will fail with 409",
            args.prefix
        );
    }
    let watch = tokio::spawn(watcher.clone().run(rv));
    // Let the watch request reach the server before the first create.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut container = json!({"name": "c", "image": args.image});
    if let Some(p) = &args.image_pull_policy {
        container["imagePullPolicy"] = json!(p);
    }
    if !args.command.is_empty() {
        container["command"] = json!(args.command);
    }
    let load = Arc::new(Load {
        path: format!("/api/v1/namespaces/{}/pods", args.namespace),
        prefix: args.prefix.clone(),
        container,
        wait_each: args
            .sequential
            .then(|| Duration::from_secs_f64(args.timeout)),
    });
    let clients = if args.sequential { 1 } else { args.clients };
    let next = Arc::new(AtomicUsize::new(0));
    let load_start = times.now();
    let clients: Vec<_> = (0..clients)
        .map(|_| {
            tokio::spawn(client(
                target.clone(),
                times.clone(),
                next.clone(),
                load.clone(),
            ))
        })
        .collect();
    let mut ok = 0;
    let mut create_errors = 0;
    let mut first_error: Option<String> = None;
    for c in clients {
        let r = c.await.unwrap_or_else(|e| ClientResult {
            ok: 0,
            errors: 1,
            first_error: Some(format!("client task: {e}")),
        });
        ok += r.ok;
        create_errors += r.errors;
        if first_error.is_none() {
            first_error = r.first_error;
        }
    }
    let creates_done = times.now();

    // Wait for every created pod to be Running.
    let created_and_running = || {
        (0..args.pods)
            .filter(|&i| get(&times.created[i]).is_some() && get(&times.running[i]).is_some())
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout);
    let mut timed_out = false;
    while created_and_running() < ok {
        if Instant::now() >= deadline {
            timed_out = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    watch.abort();

    // Figures.
    let mut create_lat = Vec::new();
    let mut run_lat = Vec::new();
    let mut first_send = u64::MAX;
    let mut last_created = 0;
    let mut last_running = 0;
    for i in 0..args.pods {
        let (Some(sent), Some(created)) = (get(&times.sent[i]), get(&times.created[i])) else {
            continue;
        };
        first_send = first_send.min(sent);
        last_created = last_created.max(created);
        create_lat.push(created - sent);
        if let Some(running) = get(&times.running[i]) {
            last_running = last_running.max(running);
            run_lat.push(running.saturating_sub(sent));
        }
    }
    create_lat.sort_unstable();
    run_lat.sort_unstable();
    let secs = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / 1e9;
    let create_span = if ok > 0 {
        secs(first_send, last_created)
    } else {
        0.0
    };
    let e2e_span = if run_lat.is_empty() {
        0.0
    } else {
        secs(first_send, last_running)
    };
    let rate = |n: usize, s: f64| {
        if s > 0.0 {
            json!((n as f64 / s * 10.0).round() / 10.0)
        } else {
            Value::Null
        }
    };
    let not_running = ok - run_lat.len();
    let report = json!({
        "pods": args.pods,
        "clients": if args.sequential { 1 } else { args.clients },
        "sequential": args.sequential,
        "counted_when": if args.ready { "Ready" } else { "Running" },
        "created": ok,
        "create_errors": create_errors,
        "running": run_lat.len(),
        "not_running": not_running,
        "timed_out": timed_out,
        "create_seconds": (create_span * 1000.0).round() / 1000.0,
        "creates_per_s": rate(ok, create_span),
        "e2e_seconds": (e2e_span * 1000.0).round() / 1000.0,
        "pods_per_s": rate(run_lat.len(), e2e_span),
        "create_p50_ms": ms(percentile(&create_lat, 0.50)),
        "create_p99_ms": ms(percentile(&create_lat, 0.99)),
        "create_max_ms": ms(create_lat.last().copied()),
        "running_p50_ms": ms(percentile(&run_lat, 0.50)),
        "running_p99_ms": ms(percentile(&run_lat, 0.99)),
        "running_max_ms": ms(run_lat.last().copied()),
        "watch_restarts": watcher.restarts.load(Ordering::Relaxed),
        "running_seen_in_relist": watcher.relisted.load(Ordering::Relaxed),
        "load_wall_seconds": (secs(load_start, creates_done) * 1000.0).round() / 1000.0,
        "client_cpu_seconds": own_cpu_seconds(),
    });

    println!(
        "podload: {} pods, {} clients, {}:{}",
        args.pods, args.clients, target.host, target.port
    );
    println!(
        "  creates:   {ok} ok, {create_errors} errors in {create_span:.2}s = {} creates/s; latency p50 {} ms, p99 {} ms, max {} ms",
        show(&report["creates_per_s"]),
        show(&report["create_p50_ms"]),
        show(&report["create_p99_ms"]),
        show(&report["create_max_ms"]),
    );
    println!(
        "  {}   {} of {ok} in {e2e_span:.2}s from the first create = {} pods/s{}",
        if args.ready { "ready:  " } else { "running:" },
        run_lat.len(),
        show(&report["pods_per_s"]),
        if timed_out { " (TIMED OUT)" } else { "" },
    );
    println!(
        "  create-to-{}: p50 {} ms, p99 {} ms, max {} ms",
        if args.ready { "Ready" } else { "Running" },
        show(&report["running_p50_ms"]),
        show(&report["running_p99_ms"]),
        show(&report["running_max_ms"]),
    );
    if let Some(cpu) = own_cpu_seconds() {
        println!("  podload's own CPU: {cpu:.2} s");
    }
    if let Some(e) = &first_error {
        println!("  first create error: {e}");
    }
    let restarts = watcher.restarts.load(Ordering::Relaxed);
    if restarts > 0 {
        let last = watcher
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default();
        println!("  watch restarted {restarts} times; last: {last}");
    }
    println!("{}", json!({ "podload": report }));
    if timed_out || create_errors > 0 || not_running > 0 {
        std::process::exit(1);
    }
    Ok(())
}
