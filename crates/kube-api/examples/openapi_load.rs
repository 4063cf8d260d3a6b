//! What serving OpenAPI costs: one keep-alive HTTP/1.1 client GETs each endpoint N times in turn
//! against a running cluster API and reports latency (mean, p50, p99) and the bytes returned,
//! with `/version` as the anchor measured in the same run. The very first `/openapi/v2` request
//! is timed apart: it decompresses the vendored spec and builds the catalog.
//!
//! Usage: openapi_load --kubeconfig FILE [--requests N]
//! (FILE is `localfargate kubeconfig --cluster NAME -o json`; start the server fresh to see the
//! first request's cost.)

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[derive(Debug, Parser)]
#[command(about = "Time GETs of the OpenAPI endpoints beside GET /version")]
struct Args {
    /// A kubeconfig in JSON (`localfargate kubeconfig --cluster NAME -o json`).
    #[arg(long, value_name = "FILE")]
    kubeconfig: PathBuf,
    /// Requests per endpoint.
    #[arg(long, default_value_t = 500)]
    requests: usize,
}

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
    let config: Value = serde_json::from_str(&text).context("kubeconfig: not JSON")?;
    let cluster = &config["clusters"][0]["cluster"];
    let server = cluster["server"]
        .as_str()
        .ok_or_else(|| anyhow!("kubeconfig: no server"))?;
    let ca = base64::engine::general_purpose::STANDARD
        .decode(
            cluster["certificate-authority-data"]
                .as_str()
                .ok_or_else(|| anyhow!("kubeconfig: no certificate-authority-data"))?
                .trim(),
        )
        .context("certificate-authority-data: not base64")?;
    let token = config["users"][0]["user"]["token"]
        .as_str()
        .ok_or_else(|| anyhow!("kubeconfig: no token"))?;
    let authority = server
        .strip_prefix("https://")
        .ok_or_else(|| anyhow!("server {server:?} is not https://"))?
        .trim_end_matches('/')
        .to_string();
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("server {server:?} has no port"))?;
    let port: u16 = port.parse().context("bad port")?;
    let host = host.to_string();
    let server_name = ServerName::try_from(host.clone()).context("bad host")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        roots
            .add(cert.context("bad PEM")?)
            .context("bad certificate")?;
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
    let tcp = TcpStream::connect((t.host.as_str(), t.port)).await?;
    tcp.set_nodelay(true)?;
    let tls = t.connector.connect(t.server_name.clone(), tcp).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One GET: its latency (to the last body byte) and the body.
async fn get(s: &mut Sender, t: &Target, path: &str, accept: &str) -> Result<(Duration, Bytes)> {
    let request = Request::get(path)
        .header(header::HOST, &t.authority)
        .header(header::AUTHORIZATION, &t.bearer)
        .header(header::ACCEPT, accept)
        .body(Full::new(Bytes::new()))?;
    let start = Instant::now();
    let response = s.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let took = start.elapsed();
    if status != StatusCode::OK {
        bail!("GET {path}: {status}");
    }
    Ok((took, body))
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let t = target(&args.kubeconfig)?;
    let mut s = connect(&t).await?;
    const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
    let (first, _) = get(&mut s, &t, "/openapi/v2", PROTOBUF).await?;
    println!(
        "first GET /openapi/v2 (protobuf, builds the catalog): {:.1} ms",
        micros(first) / 1e3
    );
    let (_, root) = get(&mut s, &t, "/openapi/v3", "application/json").await?;
    let root: Value = serde_json::from_slice(&root)?;
    let apps = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .ok_or_else(|| anyhow!("/openapi/v3 lists no apis/apps/v1"))?
        .to_string();
    let endpoints = [
        ("/version", "application/json"),
        ("/openapi/v2", PROTOBUF),
        ("/openapi/v2", "application/json"),
        (apps.as_str(), "application/json"),
        ("/openapi/v3", "application/json"),
    ];
    println!(
        "{:<42} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "endpoint", "accept", "bytes", "mean µs", "p50 µs", "p99 µs"
    );
    for (path, accept) in endpoints {
        let mut times = Vec::with_capacity(args.requests);
        let mut bytes = 0;
        for _ in 0..args.requests {
            let (took, body) = get(&mut s, &t, path, accept).await?;
            times.push(took);
            bytes = body.len();
        }
        times.sort();
        let mean = times.iter().map(|d| micros(*d)).sum::<f64>() / times.len() as f64;
        let p = |q: f64| micros(times[((times.len() as f64 * q) as usize).min(times.len() - 1)]);
        let short = if accept == PROTOBUF {
            "protobuf"
        } else {
            "json"
        };
        let shown: String = path.chars().take(42).collect();
        println!(
            "{shown:<42} {short:>10} {bytes:>10} {mean:>10.0} {:>10.0} {:>10.0}",
            p(0.5),
            p(0.99)
        );
    }
    Ok(())
}
