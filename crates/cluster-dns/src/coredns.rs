//! `coredns -conf /etc/coredns/Corefile`: the built-in CoreDNS. It reads the Corefile EKS
//! ships, follows the cluster's Services, EndpointSlices and namespaces through the Kubernetes
//! API with the pod's ServiceAccount, serves DNS on the Corefile's port (UDP and TCP), and
//! `health` (`/health`) and `ready` (`/ready`) for the kubelet's probes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::{TcpListener, UdpSocket};

use crate::DnsError;
use crate::corefile::{self, Corefile};
use crate::forward::{Forwarder, resolv_conf_nameservers};
use crate::kube::ApiConfig;
use crate::records::Authority;
use crate::server::{DnsHandler, serve_tcp, serve_udp};
use crate::state::ClusterState;

/// The arguments CoreDNS takes that matter here: `-conf FILE` (`--conf`, `-conf=FILE`).
pub fn conf_path(args: &[String]) -> Result<String, DnsError> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let a = a.trim_start_matches('-');
        if let Some(v) = a.strip_prefix("conf=") {
            return Ok(v.to_string());
        }
        if a == "conf" {
            return it
                .next()
                .cloned()
                .ok_or_else(|| DnsError::Config("flag needs an argument: -conf".into()));
        }
    }
    Ok("Corefile".into())
}

/// `:8080` → 0.0.0.0:8080; `127.0.0.1:8080` as it is.
pub fn listen_addr(s: &str) -> Result<SocketAddr, DnsError> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    };
    full.parse()
        .map_err(|_| DnsError::Config(format!("invalid address {s:?}")))
}

/// The upstreams of `forward . TO...`: resolv.conf files or addresses (`IP`, `IP:PORT`),
/// without the server's own listening address (which would loop, as CoreDNS's `loop` finds).
pub fn upstreams(targets: &[String], own_port: u16) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for t in targets {
        if t.starts_with('/') {
            match std::fs::read_to_string(t) {
                Ok(text) => out.extend(resolv_conf_nameservers(&text)),
                Err(e) => tracing::warn!(file = %t, error = %e, "reading the forward file"),
            }
        } else if let Ok(addr) = t.trim_start_matches("dns://").parse::<SocketAddr>() {
            out.push(addr);
        } else if let Ok(ip) = t.trim_start_matches("dns://").parse::<IpAddr>() {
            out.push(SocketAddr::new(ip, 53));
        } else {
            tracing::warn!(target = %t, "unsupported forward target");
        }
    }
    out.retain(|a| {
        let own = a.port() == own_port && (a.ip().is_loopback() || a.ip().is_unspecified());
        if own {
            tracing::warn!(upstream = %a, "skipping an upstream that is this server (a forwarding loop)");
        }
        !own
    });
    out
}

/// Run the built-in CoreDNS until it fails.
pub async fn run(args: &[String]) -> Result<(), DnsError> {
    let path = conf_path(args)?;
    tracing::info!(conf = %path, "CoreDNS (localfargate built-in) starting");
    let text = std::fs::read_to_string(&path).map_err(|source| DnsError::Io {
        context: format!("reading {path}"),
        source,
    })?;
    let config = corefile::parse(&path, &text)?;
    serve(config).await
}

/// Serve what `config` says.
pub async fn serve(config: Corefile) -> Result<(), DnsError> {
    let k = config
        .kubernetes
        .clone()
        .ok_or_else(|| DnsError::Config("the Corefile has no kubernetes block".into()))?;
    let (zone, reverse) = k
        .zones
        .split_first()
        .ok_or_else(|| DnsError::Config("kubernetes needs a zone".into()))?;
    let reverse: Vec<&str> = reverse.iter().map(String::as_str).collect();
    let mut authority =
        Authority::new(zone, &reverse).map_err(|e| DnsError::Config(e.to_string()))?;
    authority.ttl = k.ttl;
    if k.pods != "insecure" && k.pods != "disabled" {
        tracing::warn!(mode = %k.pods, "pods mode served as insecure");
    }
    let api = match &k.kubeconfig {
        Some(p) => ApiConfig::from_kubeconfig(Path::new(p))?,
        None => ApiConfig::in_cluster()?,
    };
    // The DNS Service's own address, for the apex's NS, as the pod's environment gives it.
    authority.dns_ip = std::env::var("KUBE_DNS_SERVICE_HOST")
        .ok()
        .and_then(|s| s.parse().ok());
    let state = Arc::new(RwLock::new(ClusterState::new()));
    let synced = Arc::new(AtomicBool::new(false));
    let forwarder = (!config.forward.is_empty())
        .then(|| Forwarder::new(upstreams(&config.forward, config.port), config.cache));
    let handler = Arc::new(DnsHandler {
        authority,
        state: state.clone(),
        forwarder,
    });
    let dns = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), config.port);
    let bind_err = |what: &str, addr: SocketAddr| {
        let what = what.to_string();
        move |source| DnsError::Io {
            context: format!("listen {what} {addr}"),
            source,
        }
    };
    let udp = UdpSocket::bind(dns).await.map_err(bind_err("udp", dns))?;
    let tcp = TcpListener::bind(dns).await.map_err(bind_err("tcp", dns))?;
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(h) = &config.health {
        let addr = listen_addr(h)?;
        let l = TcpListener::bind(addr)
            .await
            .map_err(bind_err("tcp", addr))?;
        let app = Router::new().route("/health", get(|| async { "OK" }));
        tasks.spawn(async move {
            let _ = axum::serve(l, app).await;
        });
    }
    if let Some(r) = &config.ready {
        let addr = listen_addr(r)?;
        let l = TcpListener::bind(addr)
            .await
            .map_err(bind_err("tcp", addr))?;
        let synced = synced.clone();
        let app = Router::new().route(
            "/ready",
            get(move || {
                let synced = synced.clone();
                async move {
                    if synced.load(Ordering::Acquire) {
                        (StatusCode::OK, "OK".to_string())
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "kubernetes".to_string())
                    }
                }
            }),
        );
        tasks.spawn(async move {
            let _ = axum::serve(l, app).await;
        });
    }
    tasks.spawn(crate::kube::follow(api, state, synced));
    tasks.spawn(serve_udp(udp, handler.clone()));
    tasks.spawn(serve_tcp(tcp, handler));
    tracing::info!(port = config.port, "CoreDNS (built in) serving {zone}");
    println!(".:{}\nCoreDNS-1.11.3 (localfargate built-in)", config.port);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// The process entry for `coredns ARGS` (argv\[0\] `coredns`): logs to stderr; `false` (exit
/// status 1) on failure, with the reason on stderr.
pub fn main(args: &[String]) -> bool {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("coredns: {e}");
            return false;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("{e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_and_addresses() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            conf_path(&a(&["-conf", "/etc/coredns/Corefile"])).unwrap(),
            "/etc/coredns/Corefile"
        );
        assert_eq!(conf_path(&a(&["--conf=/x"])).unwrap(), "/x");
        assert_eq!(conf_path(&a(&[])).unwrap(), "Corefile");
        assert_eq!(
            listen_addr(":8080").unwrap(),
            "0.0.0.0:8080".parse().unwrap()
        );
        assert_eq!(
            upstreams(&a(&["127.0.0.1:53", "10.0.0.2", "127.0.0.1:5300"]), 53),
            vec![
                "10.0.0.2:53".parse().unwrap(),
                "127.0.0.1:5300".parse().unwrap()
            ]
        );
    }
}
