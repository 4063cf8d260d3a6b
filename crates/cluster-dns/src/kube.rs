//! The Kubernetes API as CoreDNS's kubernetes plugin reaches it: client-go's in-cluster config
//! (`KUBERNETES_SERVICE_HOST`/`PORT`, the ServiceAccount's token and CA) or a kubeconfig, and a
//! list + watch of each kind the records need, kept in a [`ClusterState`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::DnsError;
use crate::state::{ClusterState, Kind, Object};

/// Where client-go's in-cluster config finds the ServiceAccount's credentials.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// How to reach the API.
#[derive(Clone)]
pub struct ApiConfig {
    /// `host:port`, for connecting.
    pub authority: String,
    /// The name the server's certificate is checked against.
    pub server_name: ServerName<'static>,
    pub tls: Arc<rustls::ClientConfig>,
    pub token: Token,
}

/// The bearer token: fixed, or re-read from a file on each request (projected tokens rotate).
#[derive(Clone, Debug)]
pub enum Token {
    Fixed(String),
    File(PathBuf),
}

impl Token {
    fn value(&self) -> Result<String, DnsError> {
        match self {
            Token::Fixed(t) => Ok(t.clone()),
            Token::File(p) => std::fs::read_to_string(p)
                .map(|t| t.trim().to_string())
                .map_err(|source| DnsError::Io {
                    context: format!("reading the token {}", p.display()),
                    source,
                }),
        }
    }
}

fn tls(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, DnsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| DnsError::Config(format!("the CA bundle: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| DnsError::Config(format!("the CA bundle: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DnsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn server_name(host: &str) -> Result<ServerName<'static>, DnsError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(ServerName::IpAddress(ip.into())),
        Err(_) => ServerName::try_from(host.to_string())
            .map_err(|e| DnsError::Config(format!("server name {host:?}: {e}"))),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, DnsError> {
    std::fs::read(path).map_err(|source| DnsError::Io {
        context: format!("reading {}", path.display()),
        source,
    })
}

impl ApiConfig {
    /// client-go's `rest.InClusterConfig`: the Service's address from the environment, the
    /// token and CA from the ServiceAccount's directory.
    pub fn in_cluster() -> Result<ApiConfig, DnsError> {
        Self::in_cluster_from(
            std::env::var("KUBERNETES_SERVICE_HOST").ok(),
            std::env::var("KUBERNETES_SERVICE_PORT").ok(),
            Path::new(SERVICE_ACCOUNT_DIR),
        )
    }

    fn in_cluster_from(
        host: Option<String>,
        port: Option<String>,
        dir: &Path,
    ) -> Result<ApiConfig, DnsError> {
        let (Some(host), Some(port)) = (host.filter(|h| !h.is_empty()), port) else {
            return Err(DnsError::Config(
                "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined".into(),
            ));
        };
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(ApiConfig {
            authority,
            server_name: server_name(&host)?,
            tls: tls(&read(&dir.join("ca.crt"))?)?,
            token: Token::File(dir.join("token")),
        })
    }

    /// The current context of a kubeconfig: its server, CA and token.
    pub fn from_kubeconfig(path: &Path) -> Result<ApiConfig, DnsError> {
        let bad = |what: &str| DnsError::Config(format!("kubeconfig {}: {what}", path.display()));
        let doc: Value = serde_yaml::from_slice(&read(path)?).map_err(|e| bad(&e.to_string()))?;
        let named = |list: &str, name: &str| -> Option<Value> {
            doc[list]
                .as_array()?
                .iter()
                .find(|x| x["name"] == name)
                .cloned()
        };
        let context = doc["current-context"].as_str().unwrap_or_default();
        let ctx = named("contexts", context)
            .or_else(|| doc["contexts"].get(0).cloned())
            .ok_or_else(|| bad("no context"))?;
        let cluster = named("clusters", ctx["context"]["cluster"].as_str().unwrap_or(""))
            .or_else(|| doc["clusters"].get(0).cloned())
            .ok_or_else(|| bad("no cluster"))?;
        let user = named("users", ctx["context"]["user"].as_str().unwrap_or(""))
            .or_else(|| doc["users"].get(0).cloned())
            .ok_or_else(|| bad("no user"))?;
        let server = cluster["cluster"]["server"]
            .as_str()
            .ok_or_else(|| bad("no server"))?;
        let rest = server
            .strip_prefix("https://")
            .ok_or_else(|| bad("the server must be https://"))?;
        let authority = rest.split('/').next().unwrap_or(rest).to_string();
        let host = match authority.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => h.to_string(),
            _ => authority.clone(),
        };
        let authority = if authority == host {
            format!("{authority}:443")
        } else {
            authority
        };
        let ca = if let Some(data) = cluster["cluster"]["certificate-authority-data"].as_str() {
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| bad(&format!("certificate-authority-data: {e}")))?
        } else if let Some(file) = cluster["cluster"]["certificate-authority"].as_str() {
            read(Path::new(file))?
        } else {
            return Err(bad("no certificate-authority"));
        };
        let token = if let Some(t) = user["user"]["token"].as_str() {
            Token::Fixed(t.to_string())
        } else if let Some(f) = user["user"]["tokenFile"].as_str() {
            Token::File(PathBuf::from(f))
        } else {
            return Err(bad("the user has no token"));
        };
        Ok(ApiConfig {
            authority,
            server_name: server_name(&host)?,
            tls: tls(&ca)?,
            token,
        })
    }

    /// GET `path_and_query`: the status and the response, whose body is read by the caller
    /// (a list at once, a watch as it streams).
    async fn get(
        &self,
        path_and_query: &str,
    ) -> Result<hyper::Response<hyper::body::Incoming>, DnsError> {
        let io = |e: std::io::Error| DnsError::Io {
            context: format!("connecting to the Kubernetes API at {}", self.authority),
            source: e,
        };
        let tcp = TcpStream::connect(&self.authority).await.map_err(io)?;
        let stream = TlsConnector::from(self.tls.clone())
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(io)?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| DnsError::Api(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let request = hyper::Request::get(path_and_query)
            .header("host", &self.authority)
            .header("authorization", format!("Bearer {}", self.token.value()?))
            .header("accept", "application/json")
            .header("user-agent", "coredns/localfargate")
            .body(Empty::<Bytes>::new())
            .map_err(|e| DnsError::Api(e.to_string()))?;
        sender
            .send_request(request)
            .await
            .map_err(|e| DnsError::Api(e.to_string()))
    }

    /// A list: its items, decoded as `kind`'s type, and resourceVersion.
    pub async fn list(&self, kind: Kind) -> Result<(Vec<Object>, String), DnsError> {
        let response = self.get(kind.path()).await?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| DnsError::Api(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(DnsError::Api(format!(
                "listing {}: {status}: {}",
                kind.path(),
                String::from_utf8_lossy(&body)
            )));
        }
        let list: ListOf =
            serde_json::from_slice(&body).map_err(|e| DnsError::Api(e.to_string()))?;
        let items = list
            .items
            .iter()
            .flatten()
            .filter_map(|item| Object::decode(kind, item))
            .collect();
        let rv = list.metadata.and_then(|m| m.resource_version);
        Ok((items, rv.unwrap_or_default()))
    }
}

/// A list response, its items kept as JSON until decoded as the listed kind.
#[derive(serde::Deserialize)]
struct ListOf {
    #[serde(default)]
    metadata: Option<ListMeta>,
    /// `null` (Go's empty list) reads as none.
    #[serde(default)]
    items: Option<Vec<Value>>,
}

/// A watch event, its object kept as JSON until decoded as the watched kind (a BOOKMARK's
/// object carries only metadata, which not every kind decodes from).
#[derive(serde::Deserialize)]
struct Event {
    #[serde(rename = "type", default)]
    type_: String,
    #[serde(default)]
    object: Value,
}

/// Only an object's metadata, for the resourceVersion of any event.
#[derive(serde::Deserialize)]
struct MetadataOnly {
    #[serde(default)]
    metadata: ObjectMeta,
}

/// Why a watch ended.
enum WatchEnd {
    /// The server closed it (its timeout): watch again from the last version.
    Closed,
    /// The version is too old (410) or the stream broke: list again.
    Relist,
}

/// Keep `state` following the API: list each kind, then watch it; list again whenever a
/// watch cannot resume. `synced` turns true once every kind has been listed.
pub async fn follow(api: ApiConfig, state: Arc<RwLock<ClusterState>>, synced: Arc<AtomicBool>) {
    let listed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for kind in Kind::ALL {
        let (api, state, synced, listed) =
            (api.clone(), state.clone(), synced.clone(), listed.clone());
        tasks.spawn(async move {
            let mut first = true;
            loop {
                let (items, mut rv) = match api.list(kind).await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(kind = kind.path(), error = %e, "listing failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                {
                    let mut s = state.write().unwrap_or_else(|p| p.into_inner());
                    s.replace(kind, &items);
                    s.serial = now_serial();
                }
                if first {
                    first = false;
                    if listed.fetch_add(1, Ordering::AcqRel) + 1 == Kind::ALL.len() {
                        synced.store(true, Ordering::Release);
                        tracing::info!("the Kubernetes API is synced");
                    }
                }
                while let WatchEnd::Closed = watch(&api, kind, &mut rv, &state).await {}
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

fn now_serial() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

async fn watch(
    api: &ApiConfig,
    kind: Kind,
    rv: &mut String,
    state: &Arc<RwLock<ClusterState>>,
) -> WatchEnd {
    let path = format!(
        "{}?watch=true&allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion={rv}",
        kind.path()
    );
    let response = match api.get(&path).await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            tracing::debug!(kind = kind.path(), status = %r.status(), "watch refused");
            return WatchEnd::Relist;
        }
        Err(e) => {
            tracing::debug!(kind = kind.path(), error = %e, "watch failed");
            return WatchEnd::Relist;
        }
    };
    let mut body = response.into_body();
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let frame = match body.frame().await {
            None => return WatchEnd::Closed,
            Some(Err(_)) => return WatchEnd::Relist,
            Some(Ok(f)) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let Ok(event) = serde_json::from_slice::<Event>(&line) else {
                continue;
            };
            if let Ok(MetadataOnly {
                metadata:
                    ObjectMeta {
                        resource_version: Some(v),
                        ..
                    },
            }) = MetadataOnly::deserialize(&event.object)
            {
                *rv = v;
            }
            let mut s = state.write().unwrap_or_else(|p| p.into_inner());
            match event.type_.as_str() {
                "ADDED" | "MODIFIED" => s.upsert(kind, &event.object),
                "DELETED" => s.delete(kind, &event.object),
                "BOOKMARK" => continue,
                _ => return WatchEnd::Relist,
            }
            s.serial = now_serial();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_reads_its_version_and_a_null_list_as_empty() {
        let list: ListOf =
            serde_json::from_str(r#"{"metadata": {"resourceVersion": "5"}, "items": null}"#)
                .unwrap();
        assert_eq!(
            list.metadata.and_then(|m| m.resource_version).as_deref(),
            Some("5")
        );
        assert!(list.items.is_none());
        let bookmark = r#"{"type": "BOOKMARK", "object": {"kind": "EndpointSlice",
            "apiVersion": "discovery.k8s.io/v1", "metadata": {"resourceVersion": "9"}}}"#;
        let event: Event = serde_json::from_str(bookmark).unwrap();
        assert_eq!(event.type_, "BOOKMARK");
        let meta = MetadataOnly::deserialize(&event.object).unwrap().metadata;
        assert_eq!(meta.resource_version.as_deref(), Some("9"));
    }

    #[test]
    fn in_cluster_needs_the_environment() {
        let e = ApiConfig::in_cluster_from(None, Some("443".into()), Path::new("/nonexistent"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("KUBERNETES_SERVICE_HOST"), "{e}");
        let e = ApiConfig::in_cluster_from(
            Some("10.100.0.1".into()),
            Some("443".into()),
            Path::new("/nonexistent"),
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("/nonexistent/ca.crt"), "{e}");
    }
}
