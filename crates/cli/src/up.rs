//! `localfargate up`: the EKS API server, its store and its controllers, in one process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use localfargate_core::eks::Network;
use localfargate_eks_api::{AppState, AuthMode, Config, Credentials, Timing};
use localfargate_store::{SqliteStore, Store};

use crate::yaml;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Auth {
    /// Accept any credentials, signed or not.
    Any,
    /// Verify SigV4 signatures against --access-key pairs; refuse the rest with AWS's 403 errors.
    Strict,
}

/// How CreateCluster and CreateFargateProfile check the roles they are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Iam {
    /// Any well-formed role ARN, whether or not IAM has the role.
    Permissive,
    /// As AWS: the role must exist in IAM and trust eks.amazonaws.com (clusters) or
    /// eks-fargate-pods.amazonaws.com (Fargate profiles).
    Strict,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 4566)]
    pub port: u16,
    /// Where state is kept (default: the user's data directory, e.g. ~/.local/share/localfargate).
    #[arg(long, value_name = "DIR", conflicts_with = "ephemeral")]
    pub data_dir: Option<PathBuf>,
    /// Keep everything in memory; nothing survives the process.
    #[arg(long)]
    pub ephemeral: bool,
    #[arg(long, default_value = "us-east-1", env = "AWS_DEFAULT_REGION")]
    pub region: String,
    #[arg(long, default_value = "000000000000")]
    pub account_id: String,
    /// VPC model (JSON or YAML, the shape `localfargate network -o json` prints).
    #[arg(long, value_name = "FILE")]
    pub network: Option<PathBuf>,
    /// Seconds each CREATING or DELETING step takes.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub lifecycle_seconds: f64,
    /// AWS-like durations: clusters about 10 minutes, profiles 2, node groups 3.
    #[arg(long, conflicts_with = "lifecycle_seconds")]
    pub aws_timing: bool,
    #[arg(long, value_enum, default_value = "any")]
    pub auth: Auth,
    /// An access key for --auth strict, as ACCESS_KEY_ID:SECRET_ACCESS_KEY, optionally followed
    /// by :PRINCIPAL_ARN, the IAM user or role (or assumed-role session) the key belongs to
    /// (default: arn:aws:iam::ACCOUNT:user/localfargate). Repeatable.
    #[arg(long = "access-key", value_name = "ID:SECRET[:ARN]")]
    pub access_keys: Vec<String>,
    /// Whether cluster roles and pod execution roles must exist in IAM and trust EKS.
    #[arg(long, value_enum, default_value = "permissive")]
    pub iam: Iam,
    /// Quota: clusters per account and region.
    #[arg(long, default_value_t = 100)]
    pub max_clusters: usize,
    /// Quota: Fargate profiles per cluster.
    #[arg(long, default_value_t = 10)]
    pub max_fargate_profiles: usize,
    /// First port of the clusters' Kubernetes APIs: each cluster's `endpoint` gets its own port
    /// from here up.
    #[arg(long, default_value_t = 6443)]
    pub kube_port: u16,
    /// What runs pods: `process` (each pod in its own sandbox of namespaces and cgroups, real
    /// images run by runc; needs root), `simulated` (no processes; states from
    /// `sim.localfargate.io/*` annotations), or `auto`: `process` where the host allows it,
    /// else `simulated`. `microvm` is not built yet.
    #[arg(long, default_value = "auto")]
    pub runtime: String,
    /// A registry to pull from over plain HTTP, as HOST:PORT. Repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<String>,
    /// A mirror for a registry, as REGISTRY=URL (`docker.io=http://127.0.0.1:5000`), tried
    /// before the registry itself, like containerd's mirrors. Repeatable.
    #[arg(long = "registry-mirror", value_name = "REGISTRY=URL")]
    pub registry_mirrors: Vec<String>,
    /// Let pods reach addresses outside this machine (NAT through the host). Off by default:
    /// pod traffic stays on the machine.
    #[arg(long)]
    pub pod_egress: bool,
    /// Beyond EKS: pods whose ServiceAccount has `eks.amazonaws.com/role-arn` also get
    /// `AWS_ENDPOINT_URL` pointing at this endpoint as pods reach it (the host's address on the
    /// pod network, relayed here), so their SDKs call localfargate, not AWS (docs/irsa.md).
    #[arg(long)]
    pub pod_aws_endpoint: bool,
    /// Which Fargate profile wins when several match: `name` (AWS docs: alphabetical),
    /// `most-specific`, or `random`.
    #[arg(long, default_value = "name")]
    pub profile_selection: localfargate_core::SelectionRule,
    /// Beyond AWS: an event on each pod no profile took, naming the nearest selector it missed.
    #[arg(long)]
    pub explain_fargate_misses: bool,
    /// Beyond AWS: Pending pods are re-placed on Fargate when a matching profile appears.
    #[arg(long)]
    pub replace_pending_pods: bool,
    /// How often every running container's CPU and memory are sampled for `kubectl top`
    /// (metrics-server's resolution; it defaults to 15 s). Usage shows after two samples.
    #[arg(
        long,
        default_value_t = 10.0,
        value_name = "SECONDS",
        env = "LOCALFARGATE_METRICS_INTERVAL"
    )]
    pub metrics_interval: f64,
    /// How often running pods' ConfigMap, Secret, downward API and projected volumes are
    /// updated from their objects (the kubelet's sync period).
    #[arg(
        long,
        default_value_t = 60.0,
        value_name = "SECONDS",
        env = "LOCALFARGATE_VOLUME_SYNC_INTERVAL"
    )]
    pub volume_sync_interval: f64,
    /// How often each pod's ephemeral storage is measured against its limits (the kubelet's
    /// eviction manager looks every 10 s).
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub eviction_interval: f64,
    /// How often each HorizontalPodAutoscaler is evaluated against its metrics
    /// (kube-controller-manager's --horizontal-pod-autoscaler-sync-period, 15 s).
    #[arg(long, default_value_t = 15.0, value_name = "SECONDS")]
    pub horizontal_pod_autoscaler_sync_period: f64,
}

pub fn load_network(path: Option<&PathBuf>, region: &str) -> Result<Network> {
    let Some(path) = path else {
        return Ok(Network::default_for(region));
    };
    let text = yaml::read(path)?;
    let doc = yaml::documents(path, &text)?
        .into_iter()
        .next()
        .with_context(|| format!("{}: empty network file", path.display()))?;
    let network: Network = yaml::typed(path, doc, "network")?;
    network
        .check()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(network)
}

fn config(args: &UpArgs) -> Result<Config> {
    let mut config = Config::new(&args.region, &args.account_id);
    if args.account_id.len() != 12 || !args.account_id.bytes().all(|b| b.is_ascii_digit()) {
        bail!("--account-id must be 12 digits, got {:?}", args.account_id);
    }
    if !(args.lifecycle_seconds.is_finite() && args.lifecycle_seconds >= 0.0) {
        bail!("--lifecycle-seconds must be a non-negative number");
    }
    metrics_interval(args)?;
    config.timing = if args.aws_timing {
        Timing::aws()
    } else {
        Timing::uniform(args.lifecycle_seconds)
    };
    config.network = load_network(args.network.as_ref(), &args.region)?;
    config.quotas.clusters = args.max_clusters;
    config.quotas.profiles_per_cluster = args.max_fargate_profiles;
    // An endpoint must be an address clients can dial, not the wildcard the server binds.
    config.kube_host = match args.host.as_str() {
        "0.0.0.0" | "::" | "[::]" => "127.0.0.1".to_string(),
        host => host.to_string(),
    };
    config.kube_port_base = args.kube_port;
    // OIDC issuers without a port, as EKS's (docs/irsa.md), where this process may listen on
    // port 443; else on each cluster's API port.
    // A loopback issuer only for an API on loopback: with `--host ADDRESS` the issuer must be
    // reachable where the API is.
    let loopback = config
        .kube_host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback());
    config.portless_issuer = loopback && may_listen_on(443);
    config.iam_strict = args.iam == Iam::Strict;
    config.auth = match args.auth {
        Auth::Any => AuthMode::Any,
        Auth::Strict => {
            let keys = args
                .access_keys
                .iter()
                .map(|value| access_key(value))
                .collect::<Result<Vec<_>>>()?;
            if keys.is_empty() {
                bail!("--auth strict needs at least one --access-key ID:SECRET");
            }
            AuthMode::Strict(keys)
        }
    };
    Ok(config)
}

/// One `--access-key ID:SECRET[:ARN]`. The ARN is an IAM user or role ARN or an STS
/// assumed-role ARN, of any account (a role's key signs as the session named after the key).
fn access_key(value: &str) -> Result<Credentials> {
    let mut parts = value.splitn(3, ':');
    let (Some(id), Some(secret)) = (parts.next(), parts.next()) else {
        bail!("--access-key {value:?}: expected ACCESS_KEY_ID:SECRET_ACCESS_KEY[:PRINCIPAL_ARN]");
    };
    if id.is_empty() || secret.is_empty() {
        bail!("--access-key {value:?}: expected ACCESS_KEY_ID:SECRET_ACCESS_KEY[:PRINCIPAL_ARN]");
    }
    let principal_arn = match parts.next() {
        None => None,
        Some(arn) => {
            let Some(principal) = localfargate_core::access_entries::Principal::parse(arn) else {
                bail!(
                    "--access-key {id}: {arn:?} is not an IAM user or role ARN (arn:aws:iam::123456789012:user/NAME, \
                     arn:aws:iam::123456789012:role/NAME or arn:aws:sts::123456789012:assumed-role/ROLE/SESSION)"
                );
            };
            let mut principal = principal;
            if principal.kind == localfargate_core::access_entries::PrincipalKind::Role
                && principal.session.is_none()
            {
                principal.session = Some(id.to_string());
            }
            Some(principal.caller_arn())
        }
    };
    Ok(Credentials {
        access_key_id: id.to_string(),
        secret_access_key: secret.to_string(),
        principal_arn,
    })
}

/// `--metrics-interval` as a duration: at least a millisecond, at most a day.
fn metrics_interval(args: &UpArgs) -> Result<std::time::Duration> {
    interval("--metrics-interval", args.metrics_interval)
}

/// A flag's seconds as a duration: at least a millisecond, at most a day.
fn interval(flag: &str, seconds: f64) -> Result<std::time::Duration> {
    if !(seconds.is_finite() && (0.001..=86_400.0).contains(&seconds)) {
        bail!("{flag} must be a number of seconds from 0.001 to 86400, got {seconds}");
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

/// `--data-dir`, or the user's data directory.
pub fn data_dir(given: Option<&PathBuf>) -> Result<PathBuf> {
    match given {
        Some(d) => Ok(d.clone()),
        None => Ok(dirs::data_dir()
            .context("no user data directory; pass --data-dir")?
            .join("localfargate")),
    }
}

/// `--ephemeral` runs keep their sandboxes' state in `$TMPDIR/localfargate-<pid>`.
const EPHEMERAL_DIR_PREFIX: &str = "localfargate-";

/// Where the sandbox runtime keeps state, logs and images: the data directory, or for
/// `--ephemeral` a directory of this process's (images still go to the data directory, a cache
/// every run shares).
fn runtime_config(args: &UpArgs) -> Result<localfargate_runtime::RuntimeConfig> {
    let mut config = if args.ephemeral {
        let dir =
            std::env::temp_dir().join(format!("{EPHEMERAL_DIR_PREFIX}{}", std::process::id()));
        let mut c = localfargate_runtime::RuntimeConfig::under(&dir);
        if let Ok(d) = data_dir(None) {
            c.image_dir = localfargate_runtime::RuntimeConfig::under(&d).image_dir;
        }
        c
    } else {
        localfargate_runtime::RuntimeConfig::under(&data_dir(args.data_dir.as_ref())?)
    };
    config.insecure_registries = args.insecure_registries.clone();
    for m in &args.registry_mirrors {
        let (registry, url) = m
            .split_once('=')
            .with_context(|| format!("--registry-mirror {m:?}: expected REGISTRY=URL"))?;
        config
            .registry_mirrors
            .entry(registry.to_string())
            .or_default()
            .push(url.to_string());
    }
    config.egress = args.pod_egress;
    Ok(config)
}

pub fn run(args: &UpArgs) -> Result<i32> {
    let config = config(args)?;
    let runtime_config = runtime_config(args)?;
    let settings = Arc::new(localfargate_controllers::Settings {
        selection_rule: args.profile_selection,
        network: config.network.clone(),
        pod_aws_endpoint: args
            .pod_aws_endpoint
            .then(|| format!("{}:{}", args.host, args.port).parse().ok())
            .flatten(),
        ..localfargate_controllers::Settings::new(&args.region)
    });
    let controller_settings = Arc::new(localfargate_controllers::ControllerSettings {
        explain_misses: args.explain_fargate_misses,
        replace_pending: args.replace_pending_pods,
        volume_sync_interval: interval("--volume-sync-interval", args.volume_sync_interval)?,
        eviction_interval: interval("--eviction-interval", args.eviction_interval)?,
        hpa_sync_period: interval(
            "--horizontal-pod-autoscaler-sync-period",
            args.horizontal_pod_autoscaler_sync_period,
        )?,
        // The data directory (or this run's directory with --ephemeral).
        load_balancer_ca_dir: runtime_config.state_dir.parent().map(Path::to_path_buf),
        ..Default::default()
    });
    let (store, where_) = if args.ephemeral {
        (
            SqliteStore::in_memory()?,
            "memory (--ephemeral)".to_string(),
        )
    } else {
        let dir = data_dir(args.data_dir.as_ref())?;
        let path = dir.join("store.db");
        (SqliteStore::open(&path)?, path.display().to_string())
    };
    // The EKS API's records are few and read on every request: kept decoded. Kubernetes Events
    // are most of a cluster's objects and seldom read: kept in SQLite only (kube-apiserver keeps
    // them out of its watch cache too).
    use localfargate_registry::resources::{EVENTS_KEY_PREFIX, KUBE_KIND_PREFIX};
    let store = store
        .with_decoded_kinds(&[
            localfargate_core::eks::EKS_KIND_PREFIX,
            localfargate_eks_api::iam::KIND_PREFIXES[0],
            localfargate_eks_api::iam::KIND_PREFIXES[1],
        ])?
        .with_uncached_types(KUBE_KIND_PREFIX, &[EVENTS_KEY_PREFIX]);
    let store: Arc<dyn Store> = Arc::new(store);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let sandboxes = localfargate_runtime::by_name(&args.runtime, &runtime_config).await?;
        println!("pods run in the {} runtime", sandboxes.kind());
        if sandboxes.kind() == localfargate_runtime::RuntimeKind::Process {
            // Pods of `--ephemeral` runs that were killed (their directory is this kind's, named
            // after a pid that is gone) would otherwise run on forever.
            let template = runtime_config.clone();
            tokio::spawn(async move {
                let removed = localfargate_runtime::process::remove_crashed_runs(
                    &std::env::temp_dir(),
                    EPHEMERAL_DIR_PREFIX,
                    &template,
                )
                .await;
                if removed > 0 {
                    tracing::info!(
                        removed,
                        "removed the sandboxes of ephemeral runs that crashed"
                    );
                }
            });
        }
        serve(
            args,
            config,
            store,
            where_,
            settings,
            controller_settings,
            sandboxes,
        )
        .await
    })
}

async fn serve(
    args: &UpArgs,
    config: Config,
    store: Arc<dyn Store>,
    where_: String,
    settings: Arc<localfargate_controllers::Settings>,
    controller_settings: Arc<localfargate_controllers::ControllerSettings>,
    sandboxes: Arc<dyn localfargate_runtime::SandboxRuntime>,
) -> Result<i32> {
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .with_context(|| format!("--host {:?} is not an IP address", args.host))?;
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            bail!(
                "cannot listen on {addr}: the port is already in use (another localfargate or emulator?); choose another with --port"
            )
        }
        Err(e) => bail!("cannot listen on {addr}: {e}"),
    };
    let region = config.region.clone();
    let account = config.account_id.clone();
    let strict = matches!(config.auth, AuthMode::Strict(_));
    let strict_keys = match &config.auth {
        AuthMode::Strict(keys) => Some(Arc::new(keys.clone())),
        AuthMode::Any => None,
    };
    let kube_host = config.kube_host.clone();
    let metrics = Arc::new(localfargate_registry::metrics::MetricsStore::new(
        metrics_interval(args)?,
    ));
    let collector = tokio::spawn(localfargate_controllers::metrics::collector::run(
        sandboxes.clone(),
        metrics.clone(),
    ));
    let state = Arc::new(AppState {
        store: store.clone(),
        config,
    });
    let lifecycle = tokio::spawn(localfargate_controllers::eks_lifecycle::run(store.clone()));
    let runtime = sandboxes.clone();
    let clusters = tokio::spawn(localfargate_controllers::cluster::run(
        store.clone(),
        settings.clone(),
        controller_settings,
        sandboxes.clone(),
        metrics.clone(),
    ));
    let kube_apis = tokio::spawn(localfargate_kube_api::supervisor::run(
        store,
        kube_host,
        settings,
        sandboxes,
        metrics,
        strict_keys,
    ));
    let url = format!("http://{addr}");
    println!("localfargate is up: EKS API on {url} (region {region}, account {account})");
    println!("state: {where_}");
    println!("export AWS_ENDPOINT_URL={url}");
    if strict {
        println!("export AWS_DEFAULT_REGION={region}  # with the keys of an --access-key");
    } else {
        println!(
            "export AWS_DEFAULT_REGION={region} AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test"
        );
    }
    let app = localfargate_eks_api::router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(t) => t,
                        Err(_) => return std::future::pending().await,
                    };
                tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
            }
            #[cfg(not(unix))]
            let _ = ctrl_c.await;
        })
        .await?;
    lifecycle.abort();
    clusters.abort();
    kube_apis.abort();
    collector.abort();
    // The Service data path is this process's: its tables go with it (pods that outlive it
    // get them back from the next run's controllers).
    if let Some(path) = runtime.service_data_path()
        && let Err(e) = path.remove_all().await
    {
        tracing::warn!(error = %e, "removing the Service rules");
    }
    if args.ephemeral {
        // Nothing of an --ephemeral run outlives it: its pods neither.
        if let Ok(sandboxes) = runtime.list().await {
            for s in sandboxes {
                let _ = runtime.remove(&s.id).await;
            }
        }
        if runtime.kind() == localfargate_runtime::RuntimeKind::Process {
            let _ = std::fs::remove_dir_all(
                std::env::temp_dir().join(format!("{EPHEMERAL_DIR_PREFIX}{}", std::process::id())),
            );
        }
    }
    Ok(0)
}

/// Whether this process may listen on `port`: it has CAP_NET_BIND_SERVICE (root has it), or the
/// port is at or above the kernel's first unprivileged port. Read from /proc rather than tried
/// with a bind, which servers starting side by side (tests) would race for.
fn may_listen_on(port: u16) -> bool {
    const CAP_NET_BIND_SERVICE: u32 = 10;
    let capable = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_NET_BIND_SERVICE) != 0);
    let unprivileged = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .is_some_and(|first| u32::from(port) >= first);
    capable || unprivileged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_keys_may_name_their_principal() {
        let plain = access_key("AKID:secret").unwrap();
        assert_eq!(
            (
                plain.access_key_id.as_str(),
                plain.secret_access_key.as_str()
            ),
            ("AKID", "secret")
        );
        assert_eq!(plain.principal_arn, None);
        let user = access_key("AKID:secret:arn:aws:iam::111122223333:user/alice").unwrap();
        assert_eq!(
            user.principal_arn.as_deref(),
            Some("arn:aws:iam::111122223333:user/alice")
        );
        // A role's key signs as a session named after the key.
        let role = access_key("AKIDROLE:s:arn:aws:iam::111122223333:role/dev").unwrap();
        assert_eq!(
            role.principal_arn.as_deref(),
            Some("arn:aws:sts::111122223333:assumed-role/dev/AKIDROLE")
        );
        assert!(access_key("AKID").is_err());
        assert!(access_key("AKID:s:not-an-arn").is_err());
    }
}
