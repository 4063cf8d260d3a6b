//! Starts a Kubernetes API listener for each ACTIVE cluster and stops it when the cluster goes,
//! woken by changes to the cluster records (a store watch), not by polling.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use localfargate_core::eks::CLUSTER_KIND;
use localfargate_store::Store;

use localfargate_core::pki::ClusterCa;
use localfargate_core::sigv4::Credentials;
use localfargate_registry::metrics::MetricsStore;
use localfargate_registry::{Objects, Settings};
use localfargate_runtime::SandboxRuntime;

use crate::authn::ClusterInfo;
use crate::authn::IamIdentities;
use crate::authz::Authorizer;
use crate::context::Api;
use crate::server::router;

struct Running {
    port: u64,
    /// The Kubernetes version `/version` reports: an UpdateClusterVersion restarts the listener.
    version: String,
    handle: Handle<SocketAddr>,
    /// Keeps the cluster's authorizer in step with its RBAC objects.
    rbac: tokio::task::JoinHandle<()>,
    definitions: tokio::task::JoinHandle<()>,
}

/// With nothing to retry, how long to wait for a cluster change before looking again anyway.
const IDLE_RECHECK: Duration = Duration::from_secs(60);
/// How long to wait before trying again a listener that failed to start (a busy port, say).
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Keep one listener per ACTIVE cluster on `host`, until the task is dropped.
pub async fn run(
    store: Arc<dyn Store>,
    host: String,
    settings: Arc<Settings>,
    runtime: Arc<dyn SandboxRuntime>,
    metrics: Arc<MetricsStore>,
    strict: Option<Arc<Vec<Credentials>>>,
) {
    // ring is the one crypto provider linked in; installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut failed: HashMap<String, Instant> = HashMap::new();
    loop {
        let (wanted, revision) = match store.list(CLUSTER_KIND, "") {
            Ok(listed) => listed,
            Err(e) => {
                tracing::error!(error = %e, "listing clusters");
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            }
        };
        let mut active = HashMap::new();
        for c in &wanted {
            let v = &c.value;
            // An UPDATING cluster's API stays up, as on EKS.
            if !matches!(
                v["resource"]["status"].as_str(),
                Some("ACTIVE" | "UPDATING")
            ) {
                continue;
            }
            let (Some(port), Some(key), Some(token)) = (
                v["private"]["kubePort"].as_u64(),
                v["private"]["caKeyPem"].as_str(),
                v["private"]["kubeToken"].as_str(),
            ) else {
                continue;
            };
            let version = v["resource"]["version"].as_str().unwrap_or_default();
            active.insert(c.key.clone(), (port, version.to_string()));
            if running
                .get(&c.key)
                .is_some_and(|r| r.port == port && r.version == version)
                || failed
                    .get(&c.key)
                    .is_some_and(|at| at.elapsed() < RETRY_AFTER)
            {
                continue;
            }
            let objects = Objects::new(store.clone(), &c.key, settings.clone());
            let info = ClusterInfo {
                name: c.key.clone(),
                version: v["resource"]["version"]
                    .as_str()
                    .unwrap_or(localfargate_core::eks::DEFAULT_KUBERNETES_VERSION)
                    .to_string(),
                token: token.to_string(),
                strict: strict.clone(),
                service_accounts: localfargate_registry::service_accounts::token_signer(&c.key, v),
                iam: Arc::new(IamIdentities::new(objects.clone())),
            };
            let authorizer = Arc::new(Authorizer::new(objects.clone()));
            let api = Api {
                info,
                authorizer: authorizer.clone(),
                objects,
                runtime: runtime.clone(),
                metrics: metrics.clone(),
                server_address: format!("{host}:{port}"),
                openapi: Default::default(),
            };
            // A listener of the cluster's earlier version goes first: it holds the port.
            if let Some(old) = running.remove(&c.key) {
                old.handle.shutdown();
                old.rbac.abort();
                old.definitions.abort();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let definitions = tokio::spawn(api.objects.clone().follow_definitions());
            let issuer = v["resource"]["identity"]["oidc"]["issuer"]
                .as_str()
                .and_then(localfargate_core::eks::portless_issuer_ip);
            match start(&host, port, &c.key, key, issuer, api).await {
                Ok(handle) => {
                    tracing::info!(cluster = %c.key, port, "Kubernetes API listening");
                    failed.remove(&c.key);
                    let rbac = tokio::spawn(authorizer.follow());
                    running.insert(
                        c.key.clone(),
                        Running {
                            port,
                            version: version.to_string(),
                            handle,
                            rbac,
                            definitions,
                        },
                    );
                }
                Err(e) => {
                    definitions.abort();
                    tracing::error!(cluster = %c.key, port, error = %e, "cannot start the Kubernetes API; retrying in 5s");
                    failed.insert(c.key.clone(), Instant::now());
                }
            }
        }
        running.retain(|name, r| {
            let keep = active
                .get(name)
                .is_some_and(|(port, version)| *port == r.port && *version == r.version);
            if !keep {
                r.handle.shutdown();
                r.rbac.abort();
                r.definitions.abort();
                tracing::info!(cluster = %name, "Kubernetes API stopped");
            }
            keep
        });
        // Until a cluster record changes; a listener that failed is retried after a while.
        let limit = if failed.is_empty() {
            IDLE_RECHECK
        } else {
            RETRY_AFTER
        };
        localfargate_store::changed_since(&*store, CLUSTER_KIND, "", revision, limit).await;
    }
}

/// The port a portless OIDC issuer answers on.
const ISSUER_PORT: u16 = 443;

async fn start(
    host: &str,
    port: u64,
    cluster: &str,
    ca_key: &str,
    issuer: Option<std::net::Ipv4Addr>,
    api: Api,
) -> Result<Handle<SocketAddr>, String> {
    // In-cluster clients connect to the `kubernetes` Service's ClusterIP (the range's `.1`).
    use localfargate_registry::service_ips;
    let service_ip = std::net::IpAddr::V4(service_ips::range_address(
        &api.objects,
        service_ips::KUBERNETES_OFFSET,
    ));
    let mut names = vec![service_ip];
    names.extend(issuer.map(std::net::IpAddr::V4));
    let (cert, key) =
        ClusterCa::serving_cert_for(cluster, ca_key, host, &names).map_err(|e| e.to_string())?;
    let tls = RustlsConfig::from_pem(cert.into_bytes(), key.into_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .map_err(|e| format!("{host}:{port}: {e}"))?;
    // Bind now, so a busy port is reported here rather than lost in the task.
    let listener = std::net::TcpListener::bind(addr).map_err(|e| format!("{addr}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    // A portless issuer (docs/irsa.md): its discovery and keys on 443 of the cluster's own
    // loopback address, with the same certificate (which names it). A busy address fails the
    // start like a busy API port, so the supervisor retries both (an updated cluster's old
    // listener may still hold it for a moment). Without the privilege (a cluster made by a
    // root run, served by an unprivileged one) the API still starts, and the issuer is said to
    // be unreachable.
    let issuer_listener = match issuer {
        Some(ip) => {
            let at = SocketAddr::from((ip, ISSUER_PORT));
            match std::net::TcpListener::bind(at).and_then(|l| l.set_nonblocking(true).map(|()| l))
            {
                Ok(l) => Some(l),
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    tracing::error!(cluster, issuer = %at, error = %e, "the cluster's OIDC issuer cannot listen without the privilege to bind port 443: its discovery and keys do not answer");
                    None
                }
                Err(e) => return Err(format!("the OIDC issuer at {at}: {e}")),
            }
        }
        None => None,
    };
    let handle = Handle::new();
    let server = axum_server::from_tcp_rustls(listener, tls.clone())
        .map_err(|e| e.to_string())?
        .handle(handle.clone());
    // Only the issuer's documents there, not the whole API; stopped by the same handle.
    if let Some(l) = issuer_listener {
        let issuer_server = axum_server::from_tcp_rustls(l, tls.clone())
            .map_err(|e| e.to_string())?
            .handle(handle.clone());
        let issuer_app = crate::oidc::router(Arc::new(api.info.clone()));
        tokio::spawn(async move {
            if let Err(e) = issuer_server.serve(issuer_app.into_make_service()).await {
                tracing::error!(error = %e, "OIDC issuer");
            }
        });
    }
    let app = router(api);
    tokio::spawn(async move {
        if let Err(e) = server.serve(app.into_make_service()).await {
            tracing::error!(error = %e, "Kubernetes API server");
        }
    });
    Ok(handle)
}
