//! Calling a webhook as kube-apiserver's webhook client does: a `clientConfig` (`url`, or
//! `service` resolved to one of the Service's ready endpoint addresses, as
//! `--enable-aggregator-routing` resolves it, since the API server runs on the host and reaches
//! pod addresses directly), HTTPS verified against the `caBundle` (the host's roots without
//! one; a Service's certificate must name `<service>.<namespace>.svc`), a POST of JSON with the
//! webhook's timeout. The calls run on a runtime of their own, so the synchronous write path can
//! wait for them from any thread.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::objects::Objects;
use crate::typed;

/// The label naming an EndpointSlice's Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Where a webhook is reached, and how its certificate is checked.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as errors name it (`https://svc.ns.svc:443/path?timeout=10s`).
    pub shown: String,
    /// The address connected to.
    pub address: Address,
    /// The name the certificate must carry (and the SNI sent).
    pub server_name: String,
    /// `Host` header value.
    pub authority: String,
    pub path_and_query: String,
    /// PEM certificates from `caBundle`; empty: the host's roots.
    pub ca_bundle: Vec<u8>,
}

#[derive(Debug, Clone)]
pub enum Address {
    Socket(SocketAddr),
    /// A host name, resolved when called.
    Host(String, u16),
}

/// Why a call failed (the `failed to call webhook: …` reason upstream gives).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CallError(pub String);

/// Resolve a `clientConfig` (an admission webhook's, or a conversion webhook's) to a target.
pub fn resolve(objects: &Objects, config: &Value, timeout: Duration) -> Result<Target, CallError> {
    let ca_bundle = match config["caBundle"].as_str().filter(|s| !s.is_empty()) {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| CallError(format!("invalid caBundle: {e}")))?,
        None => Vec::new(),
    };
    let query = format!("?timeout={}s", timeout.as_secs().max(1));
    if let Some(url) = config["url"].as_str() {
        let rest = url.strip_prefix("https://").ok_or_else(|| {
            CallError(format!(
                "Post \"{url}\": unsupported protocol scheme (webhooks are called over https)"
            ))
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = split_host_port(authority)
            .ok_or_else(|| CallError(format!("Post \"{url}\": invalid host in URL")))?;
        let path_and_query = if path.contains('?') {
            format!("{path}&{}", &query[1..])
        } else {
            format!("{path}{query}")
        };
        let address = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => Address::Socket(SocketAddr::new(ip, port)),
            Err(_) => Address::Host(host.to_string(), port),
        };
        return Ok(Target {
            shown: format!("https://{authority}{path_and_query}"),
            address,
            server_name: host.to_string(),
            authority: authority.to_string(),
            path_and_query,
            ca_bundle,
        });
    }
    let service = &config["service"];
    let (Some(ns), Some(name)) = (service["namespace"].as_str(), service["name"].as_str()) else {
        return Err(CallError(
            "neither clientConfig.url nor clientConfig.service is set".into(),
        ));
    };
    let port = service["port"].as_u64().unwrap_or(443) as u16;
    let path = service["path"].as_str().unwrap_or("/");
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let host = format!("{name}.{ns}.svc");
    let path_and_query = format!("{path}{query}");
    let shown = format!("https://{host}:{port}{path_and_query}");
    let address = endpoint(objects, ns, name, port)
        .map_err(|reason| CallError(format!("Post \"{shown}\": {reason}")))?;
    Ok(Target {
        shown,
        address: Address::Socket(address),
        server_name: host.clone(),
        authority: format!("{host}:{port}"),
        path_and_query,
        ca_bundle,
    })
}

fn split_host_port(authority: &str) -> Option<(&str, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &rest[..end];
        let port = match rest[end + 1..].strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => 443,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h, p.parse().ok()?)),
        None => Some((authority, 443)),
    }
}

/// One ready endpoint of the Service's port `port`: its EndpointSlices first (as upstream's
/// resolver reads them), then its Endpoints (a selector-less Service may carry either).
fn endpoint(objects: &Objects, ns: &str, name: &str, port: u16) -> Result<SocketAddr, String> {
    let svc: Service = typed::get(objects, ns, name)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("service \"{name}\" not found"))?;
    let spec = svc.spec.unwrap_or_default();
    if spec.type_.as_deref() == Some("ExternalName") {
        let host = spec.external_name.unwrap_or_default();
        return Err(format!(
            "service \"{name}\" is of type ExternalName ({host}); only Services with endpoints are called here"
        ));
    }
    let service_port = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.port == i32::from(port))
        .ok_or_else(|| format!("no service port {port} found for service \"{name}\""))?;
    let port_name = service_port.name.unwrap_or_default();
    let named = |p_name: &Option<String>| p_name.as_deref().unwrap_or("") == port_name;
    let slices: Vec<EndpointSlice> = typed::list(objects, Some(ns)).map_err(|e| e.to_string())?;
    for slice in slices {
        let service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL));
        if service.map(String::as_str) != Some(name) {
            continue;
        }
        let Some(target_port) = slice
            .ports
            .iter()
            .flatten()
            .find(|p| named(&p.name))
            .and_then(|p| u16::try_from(p.port?).ok())
        else {
            continue;
        };
        for ep in &slice.endpoints {
            if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            if let Some(ip) = ep
                .addresses
                .first()
                .and_then(|s| s.parse::<std::net::IpAddr>().ok())
            {
                return Ok(SocketAddr::new(ip, target_port));
            }
        }
    }
    if let Some(eps) = typed::get::<Endpoints>(objects, ns, name).map_err(|e| e.to_string())? {
        for subset in eps.subsets.into_iter().flatten() {
            let Some(target_port) = subset
                .ports
                .iter()
                .flatten()
                .find(|p| named(&p.name))
                .and_then(|p| u16::try_from(p.port).ok())
            else {
                continue;
            };
            if let Some(ip) = subset
                .addresses
                .iter()
                .flatten()
                .next()
                .and_then(|a| a.ip.parse::<std::net::IpAddr>().ok())
            {
                return Ok(SocketAddr::new(ip, target_port));
            }
        }
    }
    Err(format!("no endpoints available for service \"{name}\""))
}

/// The runtime the calls run on: one worker thread of its own, shared by every cluster of the
/// process (it drives itself, so synchronous callers on any thread can wait on it); `None` if
/// it cannot be built, and then every call counts as one that never finished.
fn runtime() -> Option<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("webhook-calls")
                .enable_all()
                .build()
                .inspect_err(|e| tracing::error!(error = %e, "cannot start the webhook runtime"))
                .ok()
        })
        .as_ref()
}

/// A call in flight.
pub type Call<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Run the calls concurrently and wait for all of them, from synchronous code on any thread
/// (a worker of a multi-threaded runtime hands its other tasks on while it waits). One answer
/// per call, in order; `None` for a call that never finished (its task panicked).
pub fn wait_all<T: Send + 'static>(calls: Vec<Call<T>>) -> Vec<Option<T>> {
    let count = calls.len();
    let Some(runtime) = runtime() else {
        return (0..count).map(|_| None).collect();
    };
    let handles: Vec<_> = calls.into_iter().map(|c| runtime.spawn(c)).collect();
    let (tx, rx) = std::sync::mpsc::channel();
    runtime.spawn(async move {
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(h.await);
        }
        let _ = tx.send(out);
    });
    let wait = move || rx.recv().unwrap_or_default();
    let results = match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    };
    let mut answers: Vec<Option<T>> = results.into_iter().map(Result::ok).collect();
    answers.resize_with(count, || None);
    answers
}

/// POST `body` to the target and read its JSON answer, within `timeout`.
pub async fn post(target: Target, body: Vec<u8>, timeout: Duration) -> Result<Value, CallError> {
    let shown = target.shown.clone();
    match tokio::time::timeout(timeout, post_inner(target, body)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(reason)) => Err(CallError(format!("Post \"{shown}\": {reason}"))),
        Err(_) => Err(CallError(format!(
            "Post \"{shown}\": context deadline exceeded"
        ))),
    }
}

fn tls_config(ca_bundle: &[u8]) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    if ca_bundle.is_empty() {
        let host = std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
        for cert in CertificateDer::pem_slice_iter(&host).flatten() {
            let _ = roots.add(cert);
        }
    } else {
        for cert in CertificateDer::pem_slice_iter(ca_bundle) {
            let cert = cert.map_err(|e| format!("invalid caBundle: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("invalid caBundle: {e}"))?;
        }
        if roots.is_empty() {
            return Err("invalid caBundle: no certificates found".into());
        }
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

async fn post_inner(target: Target, body: Vec<u8>) -> Result<Value, String> {
    let config = tls_config(&target.ca_bundle)?;
    let server_name = ServerName::try_from(target.server_name.clone())
        .map_err(|e| format!("invalid server name {:?}: {e}", target.server_name))?;
    let tcp = match &target.address {
        Address::Socket(a) => tokio::net::TcpStream::connect(a).await,
        Address::Host(h, p) => tokio::net::TcpStream::connect((h.as_str(), *p)).await,
    }
    .map_err(|e| {
        format!(
            "dial tcp {}: connect: {}",
            shown_address(&target.address),
            go_io(&e)
        )
    })?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| tls_error(&e, &target.server_name))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = hyper::Request::post(&target.path_and_query)
        .header(hyper::header::HOST, &target.authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "the server responded with the status code {} but did not return more information: {}",
            status.as_u16(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("invalid JSON in the response: {e}"))
}

/// An I/O error as Go's net package words it (what upstream's messages carry).
fn go_io(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "connection refused".into(),
        ErrorKind::ConnectionReset => "connection reset by peer".into(),
        ErrorKind::HostUnreachable => "no route to host".into(),
        ErrorKind::NetworkUnreachable => "network is unreachable".into(),
        ErrorKind::TimedOut => "i/o timeout".into(),
        _ => e.to_string(),
    }
}

/// A failed handshake as Go's crypto/tls and x509 word it, where they have a word for it.
fn tls_error(e: &std::io::Error, server_name: &str) -> String {
    use rustls::CertificateError;
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(c)) => {
            let why = match c {
                // A CA of the same name that did not sign it too, as Go's x509 says.
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    "x509: certificate signed by unknown authority".to_string()
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    format!("x509: certificate is not valid for {server_name}")
                }
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => {
                    "x509: certificate has expired or is not yet valid".to_string()
                }
                other => format!("{other:?}"),
            };
            format!("tls: failed to verify certificate: {why}")
        }
        Some(other) => format!("remote error: tls: {other}"),
        None => go_io(e),
    }
}

fn shown_address(a: &Address) -> String {
    match a {
        Address::Socket(s) => s.to_string(),
        Address::Host(h, p) => format!("{h}:{p}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports_of_urls() {
        assert_eq!(split_host_port("a.b:8443"), Some(("a.b", 8443)));
        assert_eq!(split_host_port("a.b"), Some(("a.b", 443)));
        assert_eq!(split_host_port("[::1]:9"), Some(("::1", 9)));
    }
}
