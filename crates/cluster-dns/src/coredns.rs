//! `coredns -conf /etc/coredns/Corefile`: the built-in CoreDNS. It reads the Corefile EKS
//! ships, follows the cluster's Services, EndpointSlices and namespaces through the Kubernetes
//! API with the pod's ServiceAccount, serves DNS on the Corefile's port (UDP and TCP), and
//! `health` (`/health`) and `ready` (`/ready`) for the kubelet's probes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::net::{TcpListener, UdpSocket};

use crate::DnsError;
use crate::corefile::{self, Corefile, Kubernetes, ServerBlock};
use crate::forward::{Forwarder, resolv_conf_nameservers};
use crate::kube::ApiConfig;
use crate::metrics::Metrics;
use crate::records::Authority;
use crate::server::{
    Block, DnsHandler, LoopProbe, Router as DnsRouter, SharedRouter, serve_tcp, serve_udp,
};
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
/// without the server's own listening address when `own_port` is given (a block without
/// `loop`, which would otherwise loop on itself unnoticed).
pub fn upstreams(targets: &[String], own_port: Option<u16>) -> Vec<SocketAddr> {
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
        let own = Some(a.port()) == own_port && (a.ip().is_loopback() || a.ip().is_unspecified());
        if own {
            tracing::warn!(upstream = %a, "skipping an upstream that is this server (a forwarding loop)");
        }
        !own
    });
    out
}

/// What lives across reloads: the cluster's objects (one list + watch), whether they are
/// synced, and the counters.
struct Shared {
    state: Arc<RwLock<ClusterState>>,
    synced: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

/// What a config listens on; a reload that keeps it swaps the routers in place.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Layout {
    ports: Vec<u16>,
    health: Option<String>,
    ready: Option<String>,
    prometheus: Option<String>,
}

fn layout(config: &Corefile) -> Layout {
    let mut ports: Vec<u16> = config.servers.iter().map(|s| s.port).collect();
    ports.sort_unstable();
    ports.dedup();
    let first = |f: fn(&ServerBlock) -> Option<String>| config.servers.iter().find_map(f);
    Layout {
        ports,
        health: first(|s| s.health.clone()),
        ready: first(|s| s.ready.clone()),
        prometheus: first(|s| s.prometheus.clone()),
    }
}

/// The Corefile at `path`, its unsupported plugins warned about.
fn load(path: &str) -> Result<(String, Corefile), DnsError> {
    let text = std::fs::read_to_string(path).map_err(|source| DnsError::Io {
        context: format!("reading {path}"),
        source,
    })?;
    let config = corefile::parse(path, &text)?;
    warn_unsupported(&config);
    Ok((text, config))
}

/// One warning per block naming the plugins it has that the built-in does not do.
fn warn_unsupported(config: &Corefile) {
    for s in &config.servers {
        if !s.unsupported.is_empty() {
            tracing::warn!(
                zones = %s.zones.join(" "),
                plugins = %s.unsupported.join(" "),
                "plugins not supported by localfargate's built-in CoreDNS are ignored"
            );
        }
    }
}

/// Run the built-in CoreDNS until it fails.
pub async fn run(args: &[String]) -> Result<(), DnsError> {
    let path = conf_path(args)?;
    tracing::info!(conf = %path, "CoreDNS (localfargate built-in) starting");
    let (mut text, mut config) = load(&path)?;
    let shared = Shared {
        state: Arc::new(RwLock::new(ClusterState::new())),
        synced: Arc::new(AtomicBool::new(false)),
        metrics: Arc::new(Metrics::default()),
    };
    // One list + watch for the life of the process, from the first kubernetes block: a
    // reload re-reads the zones and TTL, not the API access.
    let mut follow = tokio::task::JoinSet::new();
    match config.servers.iter().find_map(|s| s.kubernetes.as_ref()) {
        Some(k) => {
            let api = match &k.kubeconfig {
                Some(p) => ApiConfig::from_kubeconfig(Path::new(p))?,
                None => ApiConfig::in_cluster()?,
            };
            follow.spawn(crate::kube::follow(
                api,
                shared.state.clone(),
                shared.synced.clone(),
            ));
        }
        None => shared.synced.store(true, Ordering::Release),
    }
    println!(
        "{}\nCoreDNS-{} (localfargate built-in)",
        config
            .servers
            .iter()
            .flat_map(|s| s.zones.iter().map(move |z| format!("{z}:{}", s.port)))
            .collect::<Vec<_>>()
            .join("\n"),
        crate::metrics::VERSION
    );
    let mut running = start(&config, &shared).await?;
    loop {
        let Some(reload) = config.servers.iter().find_map(|s| s.reload) else {
            while running.tasks.join_next().await.is_some() {}
            return Ok(());
        };
        let jitter_ms = u64::try_from(reload.jitter.as_millis()).unwrap_or(0);
        let jitter = if jitter_ms == 0 {
            0
        } else {
            u64::from(crate::forward::rand_id()) * 2 * jitter_ms / 65536
        };
        // Interval ± jitter, as CoreDNS's reload spreads its replicas' checks.
        let wait = (reload.interval + Duration::from_millis(jitter)).saturating_sub(reload.jitter);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            None = running.tasks.join_next() => return Ok(()),
        }
        let new_text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(conf = %path, error = %e, "reading the Corefile to check for changes");
                continue;
            }
        };
        if new_text == text {
            continue;
        }
        text = new_text;
        let new = match corefile::parse(&path, &text) {
            Ok(c) => c,
            Err(e) => {
                shared.metrics.inc("coredns_reload_failed_total", &[]);
                tracing::error!(
                    target: "plugin/reload",
                    "Corefile changed but reload failed: {e}"
                );
                continue;
            }
        };
        warn_unsupported(&new);
        tracing::info!("Reloading");
        if layout(&new) == running.layout {
            match routers(&new, &shared) {
                Ok(rs) => {
                    for (port, r) in rs {
                        if let Some(slot) = running.routers.get(&port) {
                            let probes = r.probes.clone();
                            slot.replace(r);
                            spawn_probes(port, probes);
                        }
                    }
                    config = new;
                }
                Err(e) => {
                    shared.metrics.inc("coredns_reload_failed_total", &[]);
                    tracing::error!(target: "plugin/reload", "Corefile changed but reload failed: {e}");
                }
            }
        } else {
            // Other listeners: close the old ones, open the new.
            running.tasks.shutdown().await;
            match start(&new, &shared).await {
                Ok(r) => {
                    running = r;
                    config = new;
                }
                Err(e) => {
                    shared.metrics.inc("coredns_reload_failed_total", &[]);
                    tracing::error!(target: "plugin/reload", "Corefile changed but reload failed: {e}");
                    running = start(&config, &shared).await?;
                }
            }
        }
        tracing::info!(target: "plugin/reload", "Running configuration hash = {}", digest(&text));
    }
}

/// A short hash of the Corefile for the log (where CoreDNS logs its SHA512).
fn digest(text: &str) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The routers of `config`, one per port.
fn routers(config: &Corefile, shared: &Shared) -> Result<Vec<(u16, DnsRouter)>, DnsError> {
    let mut out: Vec<(u16, DnsRouter)> = Vec::new();
    for s in &config.servers {
        let handler_for = |zone: &Name| -> Result<DnsHandler, DnsError> {
            let authority = match &s.kubernetes {
                Some(k) => Some(authority(k)?),
                None => None,
            };
            let forwarder = match &s.forward {
                Some(f) => {
                    let from = Name::from_ascii(&f.from)
                        .map_err(|e| DnsError::Config(format!("forward {}: {e}", f.from)))?;
                    let except = f
                        .except
                        .iter()
                        .filter_map(|n| Name::from_ascii(n).ok())
                        .collect();
                    let own = if s.loop_detect { None } else { Some(s.port) };
                    Some(
                        Forwarder::new(upstreams(&f.to, own), s.cache)
                            .with_scope(from, except)
                            .with_policy(f.policy)
                            .with_health(f.health.clone())
                            .with_metrics(shared.metrics.clone())
                            .with_cache_counters(
                                shared
                                    .metrics
                                    .cache(&format!("dns://:{}", s.port), &zone.to_string()),
                            ),
                    )
                }
                None => None,
            };
            Ok(DnsHandler {
                authority,
                state: shared.state.clone(),
                forwarder,
                loadbalance: s.loadbalance,
            })
        };
        let idx = match out.iter().position(|(p, _)| *p == s.port) {
            Some(i) => i,
            None => {
                out.push((
                    s.port,
                    DnsRouter {
                        port: s.port,
                        blocks: Vec::new(),
                        dropped: None,
                        probes: Vec::new(),
                    },
                ));
                out.len() - 1
            }
        };
        for z in &s.zones {
            let zone =
                Name::from_ascii(z).map_err(|e| DnsError::Config(format!("zone {z}: {e}")))?;
            let router = &mut out[idx].1;
            if router.blocks.iter().any(|b| b.zone == zone) {
                return Err(DnsError::Config(format!(
                    "cannot serve dns://{z}:{} - it is already defined",
                    s.port
                )));
            }
            if s.loop_detect
                && let Some(p) = LoopProbe::new(&zone)
            {
                router.probes.push(Arc::new(p));
            }
            router
                .blocks
                .push(Block::new(zone.clone(), handler_for(&zone)?));
        }
    }
    // With `prometheus` in any block of a port, every block on it is counted (the zone's
    // counters registered here, once per config).
    for (port, router) in &mut out {
        if config
            .servers
            .iter()
            .any(|s| s.port == *port && s.prometheus.is_some())
        {
            router.count_into(&shared.metrics);
        }
    }
    Ok(out)
}

fn authority(k: &Kubernetes) -> Result<Authority, DnsError> {
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
    // The DNS Service's own address, for the apex's NS, as the pod's environment gives it.
    authority.dns_ip = std::env::var("KUBE_DNS_SERVICE_HOST")
        .ok()
        .and_then(|s| s.parse().ok());
    Ok(authority)
}

/// The listeners and tasks of one config.
struct Running {
    tasks: tokio::task::JoinSet<()>,
    routers: HashMap<u16, Arc<SharedRouter>>,
    layout: Layout,
}

/// `loop`'s probes: each asks this server its random HINFO name, for up to 30 s until an
/// answer comes; a loop shows as the name arriving more than twice (see [`LoopProbe`]).
fn spawn_probes(port: u16, probes: Vec<Arc<LoopProbe>>) {
    for p in probes {
        // Detached: a probe's end is not the server's (the listeners' tasks are awaited).
        tokio::spawn(async move {
            let to = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            let forwarder = Forwarder::new(vec![to], 0);
            while tokio::time::Instant::now() < deadline {
                let mut m =
                    Message::new(crate::forward::rand_id(), MessageType::Query, OpCode::Query);
                m.metadata.recursion_desired = true;
                m.add_query(Query::query(p.name.clone(), RecordType::HINFO));
                if forwarder.resolve(&m, false).await.is_ok() {
                    // Answered: stop counting a little later (copies still in flight).
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    break;
                }
                p.reset();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            p.disable();
        });
    }
}

/// Bind what `config` listens on and serve it.
async fn start(config: &Corefile, shared: &Shared) -> Result<Running, DnsError> {
    let bind_err = |what: &str, addr: SocketAddr| {
        let what = what.to_string();
        move |source| DnsError::Io {
            context: format!("listen {what} {addr}"),
            source,
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    let mut shared_routers = HashMap::new();
    for (port, router) in routers(config, shared)? {
        let dns = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
        let udp = UdpSocket::bind(dns).await.map_err(bind_err("udp", dns))?;
        let tcp = TcpListener::bind(dns).await.map_err(bind_err("tcp", dns))?;
        let probes = router.probes.clone();
        let router = SharedRouter::new(router);
        tasks.spawn(serve_udp(udp, router.clone()));
        tasks.spawn(serve_tcp(tcp, router.clone()));
        spawn_probes(port, probes);
        shared_routers.insert(port, router);
        tracing::info!(port, "CoreDNS (built in) serving");
    }
    let layout = layout(config);
    if let Some(h) = &layout.health {
        let addr = listen_addr(h)?;
        let l = TcpListener::bind(addr)
            .await
            .map_err(bind_err("tcp", addr))?;
        let app = Router::new().route("/health", get(|| async { "OK" }));
        tasks.spawn(async move {
            let _ = axum::serve(l, app).await;
        });
    }
    if let Some(r) = &layout.ready {
        let addr = listen_addr(r)?;
        let l = TcpListener::bind(addr)
            .await
            .map_err(bind_err("tcp", addr))?;
        let synced = shared.synced.clone();
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
    if let Some(p) = &layout.prometheus {
        let addr = listen_addr(p)?;
        let l = TcpListener::bind(addr)
            .await
            .map_err(bind_err("tcp", addr))?;
        let metrics = shared.metrics.clone();
        let app = Router::new().route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        metrics.render(),
                    )
                }
            }),
        );
        tasks.spawn(async move {
            let _ = axum::serve(l, app).await;
        });
    }
    Ok(Running {
        tasks,
        routers: shared_routers,
        layout,
    })
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
            upstreams(
                &a(&["127.0.0.1:53", "10.0.0.2", "127.0.0.1:5300"]),
                Some(53)
            ),
            vec![
                "10.0.0.2:53".parse().unwrap(),
                "127.0.0.1:5300".parse().unwrap()
            ]
        );
    }
}
