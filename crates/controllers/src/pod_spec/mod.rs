//! Resolves a stored Pod (its Kubernetes JSON) into the [`SandboxSpec`] a sandbox runtime takes,
//! the way the kubelet does before it starts a pod: ConfigMaps, Secrets, the downward API,
//! service-account tokens and pull secrets are read, `$(VAR)` references expanded, named probe
//! ports resolved, every API default filled in, and resolv.conf composed from `dnsPolicy`.
//!
//! Upstream references (kubelet behaviour this follows):
//! - environment: `pkg/kubelet/kubelet_pods.go` `makeEnvironmentVariables`,
//!   `podFieldSelectorRuntimeValue`; `$(VAR)`: `third_party/forked/golang/expansion`;
//!   command/args and `subPathExpr`: `pkg/kubelet/container/helpers.go`;
//! - downward API: `pkg/fieldpath/fieldpath.go`, `pkg/api/v1/resource/helpers.go`,
//!   `pkg/apis/core/pods/helpers.go` (`ConvertDownwardAPIFieldLabel`);
//! - volumes: `pkg/volume/{configmap,secret,downwardapi,projected}`;
//! - DNS: `pkg/kubelet/network/dns/dns.go`;
//! - pull secrets: `getPullSecretsForPod` and `credentialprovider/secrets`.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::time::Duration;

use localfargate_core::admission::REFUSAL_PREFIX;
use localfargate_core::go_format::quote as go_quote;
use localfargate_core::quantity;
use localfargate_core::sizing::{self, ContainerDemand, ContainerRole, PodRequests};
use localfargate_registry::meta::{Field, ObjectMeta, name_of, namespace_of};
use localfargate_runtime::{
    Action, ContainerResources, ContainerSecurity, ContainerSpec, DnsConfig, PodSecurity, Probe,
    PullPolicy, RestartPolicy, SandboxSpec, SeccompProfile, TerminationMessagePolicy, Volume,
    VolumeFile, VolumeMount, VolumeSource,
};
use serde_json::Value;

pub use localfargate_core::service_account_token::TokenRequest;

pub mod service_env;
#[cfg(test)]
mod tests;

/// What the agent can read for a pod: the objects it refers to, from the store.
pub trait PodRefs {
    fn config_map(&self, namespace: &str, name: &str) -> Option<Value>;
    fn secret(&self, namespace: &str, name: &str) -> Option<Value>;
    /// A token for a projected serviceAccountToken source, if the cluster can issue one (when
    /// not, the file is left out and a warning is logged).
    fn service_account_token(&self, request: &TokenRequest<'_>) -> Option<String>;
    /// Whether the sandbox's files are ever read. The simulated runtime has no filesystem: its
    /// pods get no signed tokens (nothing could read them, and signing one per pod is a cost
    /// thousands of simulated pods would pay for nothing).
    fn files_are_read(&self) -> bool {
        true
    }
    /// The Services of a namespace, for the containers' Service environment variables
    /// ([`service_env`]); none by default.
    fn services(&self, namespace: &str) -> Vec<Value> {
        let _ = namespace;
        Vec::new()
    }
}

/// Where and how big the pod runs: what the agent decided before resolving it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodPlacement {
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub vcpu: f64,
    pub memory_mib: u64,
    pub node_name: String,
    pub host_ip: String,
    /// The kube-dns ClusterIP; `None` until the cluster has one.
    pub cluster_dns: Option<Ipv4Addr>,
    /// `cluster.local`.
    pub cluster_domain: String,
    /// `us-east-1`: gives the node's search domain (`ec2.internal`, `<region>.compute.internal`).
    pub region: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The kubelet's CreateContainerConfigError for one container (missing ConfigMap/Secret/key
    /// for env without optional, bad fieldRef …); `message` is the kubelet's, e.g.
    /// `configmap "app-config" not found`.
    #[error("container {container:?}: {message}")]
    ContainerConfig { container: String, message: String },
    /// A volume that cannot be set up; `message` is the kubelet's FailedMount message, e.g.
    /// `MountVolume.SetUp failed for volume "cfg" : configmap "app-config" not found`.
    #[error("{message}")]
    Volume { volume: String, message: String },
    /// A pod the runtime cannot express (bad quantity, …).
    #[error("{message}")]
    Invalid { message: String },
}

/// Something the kubelet would report as a Warning event on the pod (it is also logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodWarning {
    /// The kubelet's event reason (`MissingClusterDNS`, `InvalidEnvironmentVariableNames`, …).
    pub reason: String,
    pub message: String,
}

/// A resolved pod, with the warnings met on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub spec: SandboxSpec,
    pub warnings: Vec<PodWarning>,
}

/// The pod as the runtime runs it. Warnings are logged with `tracing`; use [`resolve`] to get
/// them as values too (for Events).
pub fn sandbox_spec(
    pod: &Value,
    placement: &PodPlacement,
    refs: &dyn PodRefs,
) -> Result<SandboxSpec, ResolveError> {
    resolve(pod, placement, refs, &host_resolv_conf).map(|r| r.spec)
}

/// [`sandbox_spec`] with the host's resolv.conf read through `resolv_conf` (for `dnsPolicy:
/// Default`, and `ClusterFirst` while the cluster has no DNS service).
pub fn resolve(
    pod: &Value,
    placement: &PodPlacement,
    refs: &dyn PodRefs,
    resolv_conf: &dyn Fn() -> std::io::Result<String>,
) -> Result<Resolved, ResolveError> {
    let mut ctx = Ctx::new(pod, placement, refs)?;
    let spec = ctx.build(resolv_conf)?;
    Ok(Resolved {
        spec,
        warnings: ctx.warnings,
    })
}

/// The machine's resolv.conf: `/etc/resolv.conf`, unless it only names a local stub resolver
/// (systemd-resolved's 127.0.0.53, unreachable from a pod's network namespace) and the upstream
/// file `/run/systemd/resolve/resolv.conf` exists, which is then used (as kubeadm configures
/// the kubelet's `resolvConf`).
pub fn host_resolv_conf() -> std::io::Result<String> {
    let etc = std::fs::read_to_string("/etc/resolv.conf")?;
    let (servers, _, _) = parse_resolv_conf(&etc);
    let only_loopback = !servers.is_empty()
        && servers.iter().all(|s| {
            s.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
        });
    if only_loopback
        && let Ok(upstream) = std::fs::read_to_string("/run/systemd/resolve/resolv.conf")
    {
        return Ok(upstream);
    }
    Ok(etc)
}

/// The default `defaultMode` of ConfigMap, Secret, downward API and projected volumes.
const DEFAULT_MODE: u32 = 0o644;
const DEFAULT_AUDIENCE: &str = "https://kubernetes.default.svc";
const DEFAULT_TOKEN_EXPIRATION: u64 = 3600;
/// `validation.MaxDNSNameservers`, `MaxDNSSearchPathsExpanded`, `MaxDNSSearchListCharsExpanded`
/// (ExpandedDNSConfig is GA) and the DNS-1123 subdomain length that drops a search path.
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCH_PATHS: usize = 32;
const MAX_SEARCH_CHARS: usize = 2048;
const MAX_SEARCH_PATH_LEN: usize = 253;

struct Ctx<'a> {
    /// The pod's metadata, typed; its spec is read as the untyped body it is stored as.
    meta: ObjectMeta,
    spec: &'a Value,
    placement: &'a PodPlacement,
    refs: &'a dyn PodRefs,
    namespace: &'a str,
    /// Provisioned ephemeral storage, the node "allocatable" of `limits.ephemeral-storage`.
    ephemeral_bytes: u64,
    warnings: Vec<PodWarning>,
}

impl<'a> Ctx<'a> {
    fn new(
        pod: &'a Value,
        placement: &'a PodPlacement,
        refs: &'a dyn PodRefs,
    ) -> Result<Ctx<'a>, ResolveError> {
        let spec = pod.get("spec").unwrap_or(&Value::Null);
        let namespace = namespace_of(pod);
        let namespace = if namespace.is_empty() {
            "default"
        } else {
            namespace
        };
        Ok(Ctx {
            meta: ObjectMeta::of(pod),
            spec,
            placement,
            refs,
            namespace,
            ephemeral_bytes: ephemeral_storage(spec)?,
            warnings: Vec::new(),
        })
    }

    fn warn(&mut self, reason: &str, message: String) {
        tracing::warn!(
            pod = %format!("{}/{}", self.namespace, self.pod_name()),
            reason,
            "{message}"
        );
        self.warnings.push(PodWarning {
            reason: reason.to_string(),
            message,
        });
    }

    fn pod_name(&self) -> &str {
        self.meta.name()
    }

    fn build(
        &mut self,
        resolv_conf: &dyn Fn() -> std::io::Result<String>,
    ) -> Result<SandboxSpec, ResolveError> {
        let spec = self.spec;
        let name = self.pod_name().to_string();
        let name = name.as_str();
        let restart_policy = match spec["restartPolicy"].as_str() {
            None => RestartPolicy::Always,
            Some(s) => s
                .parse::<RestartPolicy>()
                .map_err(|message| ResolveError::Invalid { message })?,
        };
        let annotations = string_entries(&self.meta, Field::Annotations);
        let hostname = hostname(spec["hostname"].as_str().filter(|s| !s.is_empty()), name);
        let subdomain = spec["subdomain"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let host_aliases = array(&spec["hostAliases"])
            .iter()
            .filter_map(|a| Some((a["ip"].as_str()?.to_string(), strings(&a["hostnames"]))))
            .collect();
        let termination_grace = Duration::from_secs(
            spec["terminationGracePeriodSeconds"]
                .as_i64()
                .map_or(30, |s| s.max(0).unsigned_abs()),
        );
        let dns = self.dns(resolv_conf);
        let pull_secrets = self.pull_secrets();
        let volumes = self.volumes()?;
        let mut containers = Vec::new();
        for (key, init) in [("initContainers", true), ("containers", false)] {
            for c in array(&spec[key]) {
                containers.push(self.container(c, init, &volumes)?);
            }
        }
        Ok(SandboxSpec {
            pod_uid: self.meta.uid().to_string(),
            namespace: self.namespace.to_string(),
            name: name.to_string(),
            ip: self.placement.ip,
            prefix_len: self.placement.prefix_len,
            gateway: self.placement.gateway,
            vcpu: self.placement.vcpu,
            memory_mib: self.placement.memory_mib,
            ephemeral_storage_bytes: Some(self.ephemeral_bytes),
            restart_policy,
            annotations,
            hostname,
            subdomain,
            dns,
            host_aliases,
            share_process_namespace: spec["shareProcessNamespace"].as_bool() == Some(true),
            security: pod_security(&spec["securityContext"], "spec.securityContext")?,
            termination_grace,
            volumes,
            pull_secrets,
            containers,
        })
    }

    // ---- DNS ----------------------------------------------------------------------------

    fn dns(&mut self, resolv_conf: &dyn Fn() -> std::io::Result<String>) -> DnsConfig {
        let policy = self.spec["dnsPolicy"].as_str().unwrap_or("ClusterFirst");
        let host_network = self.spec["hostNetwork"].as_bool() == Some(true);
        enum Kind {
            Cluster,
            Host,
            None,
        }
        let kind = match policy {
            "None" => Kind::None,
            "ClusterFirstWithHostNet" => Kind::Cluster,
            "ClusterFirst" if !host_network => Kind::Cluster,
            "ClusterFirst" | "Default" => Kind::Host,
            other => {
                tracing::error!(
                    policy = other,
                    "invalid DNSPolicy; falling back to ClusterFirst"
                );
                Kind::Cluster
            }
        };
        let mut servers: Vec<String> = Vec::new();
        let mut searches: Vec<String> = Vec::new();
        let mut options: Vec<String> = Vec::new();
        let mut use_host = matches!(kind, Kind::Host);
        if matches!(kind, Kind::Cluster) {
            if let Some(ip) = self.placement.cluster_dns {
                servers = vec![ip.to_string()];
                let host_search = vec![region_search_domain(&self.placement.region)];
                let domain = &self.placement.cluster_domain;
                searches = if domain.is_empty() {
                    host_search
                } else {
                    let mut all = vec![
                        format!("{}.svc.{domain}", self.namespace),
                        format!("svc.{domain}"),
                        domain.clone(),
                    ];
                    all.extend(host_search);
                    omit_duplicates(all)
                };
                options = vec!["ndots:5".to_string()];
            } else {
                let message = "kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.";
                let pod = format!(
                    "{}_{}({})",
                    self.pod_name(),
                    self.namespace,
                    self.meta.uid()
                );
                self.warn(
                    "MissingClusterDNS",
                    format!("pod: {}. {message}", go_quote(&pod)),
                );
                use_host = true;
            }
        }
        if use_host {
            match resolv_conf() {
                Ok(text) => (servers, searches, options) = parse_resolv_conf(&text),
                Err(e) => self.warn(
                    "DNSConfigForming",
                    format!(
                        "could not read the host's resolv.conf ({e}); the pod gets no nameservers"
                    ),
                ),
            }
        }
        let config = &self.spec["dnsConfig"];
        if config.is_object() {
            servers.extend(strings(&config["nameservers"]));
            servers = omit_duplicates(servers);
            searches.extend(strings(&config["searches"]));
            searches = omit_duplicates(searches);
            for o in array(&config["options"]) {
                let Some(name) = o["name"].as_str() else {
                    continue;
                };
                let value = o["value"].as_str().unwrap_or("");
                set_option(&mut options, name, value);
            }
        }
        // formDNSConfigFitsLimits.
        if servers.len() > MAX_NAMESERVERS {
            servers.truncate(MAX_NAMESERVERS);
            self.warn(
                "DNSConfigForming",
                format!(
                    "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: {}",
                    servers.join(" ")
                ),
            );
        }
        let searches = self.fit_searches(searches);
        // Options dedup the way the kubelet's map does (last value wins, once per name).
        let mut merged: Vec<String> = Vec::new();
        for o in &options {
            let (name, value) = o.split_once(':').unwrap_or((o.as_str(), ""));
            set_option(&mut merged, name, value);
        }
        DnsConfig {
            nameservers: servers,
            searches,
            options: merged
                .into_iter()
                .map(|o| match o.split_once(':') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (o, None),
                })
                .collect(),
        }
    }

    fn fit_searches(&mut self, mut searches: Vec<String>) -> Vec<String> {
        let mut exceeded = false;
        if searches.len() > MAX_SEARCH_PATHS {
            searches.truncate(MAX_SEARCH_PATHS);
            exceeded = true;
        }
        let before = searches.len();
        searches.retain(|s| s.len() <= MAX_SEARCH_PATH_LEN);
        exceeded |= searches.len() != before;
        let line_len =
            |s: &[String]| s.iter().map(String::len).sum::<usize>() + s.len().saturating_sub(1);
        if line_len(&searches) > MAX_SEARCH_CHARS {
            while line_len(&searches) > MAX_SEARCH_CHARS {
                searches.pop();
            }
            exceeded = true;
        }
        if exceeded {
            self.warn(
                "DNSConfigForming",
                format!(
                    "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
                    searches.join(" ")
                ),
            );
        }
        searches
    }

    // ---- pull secrets -------------------------------------------------------------------

    fn pull_secrets(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut missing = Vec::new();
        for r in array(&self.spec["imagePullSecrets"]) {
            let Some(name) = r["name"].as_str().filter(|s| !s.is_empty()) else {
                continue;
            };
            let Some(secret) = self.refs.secret(self.namespace, name) else {
                missing.push(name.to_string());
                continue;
            };
            let kind = secret["type"].as_str().unwrap_or("");
            let decoded = |key: &str| {
                secret["data"][key]
                    .as_str()
                    .and_then(base64_decode)
                    .filter(|b| !b.is_empty())
            };
            match kind {
                "kubernetes.io/dockerconfigjson" => match decoded(".dockerconfigjson") {
                    Some(bytes) => out.push(bytes),
                    None => tracing::warn!(
                        secret = name,
                        "pull secret has no usable .dockerconfigjson; skipped"
                    ),
                },
                "kubernetes.io/dockercfg" => {
                    let converted = decoded(".dockercfg")
                        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                        .filter(Value::is_object)
                        .and_then(|auths| {
                            serde_json::to_vec(&serde_json::json!({ "auths": auths })).ok()
                        });
                    match converted {
                        Some(bytes) => out.push(bytes),
                        None => tracing::warn!(
                            secret = name,
                            "pull secret has no usable .dockercfg; skipped"
                        ),
                    }
                }
                other => tracing::debug!(
                    secret = name,
                    kind = other,
                    "pull secret is not of a docker config type; ignored, as the kubelet's keyring does"
                ),
            }
        }
        if !missing.is_empty() {
            self.warn(
                "FailedToRetrieveImagePullSecret",
                format!(
                    "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                    missing.join(", ")
                ),
            );
        }
        out
    }

    // ---- volumes ------------------------------------------------------------------------

    fn volumes(&mut self) -> Result<Vec<Volume>, ResolveError> {
        let mut out = Vec::new();
        for v in array(&self.spec["volumes"]) {
            let name = v["name"].as_str().unwrap_or("").to_string();
            let source = self
                .volume_source(&name, v)
                .map_err(|err| ResolveError::Volume {
                    message: format!(
                        "MountVolume.SetUp failed for volume {} : {err}",
                        go_quote(&name)
                    ),
                    volume: name.clone(),
                })?;
            out.push(Volume { name, source });
        }
        Ok(out)
    }

    fn volume_source(&mut self, name: &str, v: &Value) -> Result<VolumeSource, String> {
        if let Some(src) = v.get("emptyDir").filter(|s| s.is_object()) {
            let size_limit = match quantity_text(&src["sizeLimit"]) {
                None => None,
                Some(q) => Some(quantity::base_units(&q).map_err(|e| e.to_string())?),
            };
            return Ok(VolumeSource::EmptyDir {
                memory: src["medium"].as_str() == Some("Memory"),
                size_limit,
            });
        }
        if let Some(src) = v.get("configMap").filter(|s| s.is_object()) {
            let optional = src["optional"].as_bool() == Some(true);
            let cm_name = src["name"].as_str().unwrap_or("");
            let cm = match self.refs.config_map(self.namespace, cm_name) {
                Some(cm) => Some(cm),
                None if optional => None,
                None => return Err(not_found("configmap", cm_name)),
            };
            let files = config_map_payload(&src["items"], cm.as_ref(), optional)?;
            return Ok(files_volume(files, mode_of(&src["defaultMode"]), false));
        }
        if let Some(src) = v.get("secret").filter(|s| s.is_object()) {
            let optional = src["optional"].as_bool() == Some(true);
            let secret_name = src["secretName"].as_str().unwrap_or("");
            let secret = match self.refs.secret(self.namespace, secret_name) {
                Some(s) => Some(s),
                None if optional => None,
                None => return Err(not_found("secret", secret_name)),
            };
            let files = secret_payload(&src["items"], secret.as_ref(), optional)?;
            return Ok(files_volume(files, mode_of(&src["defaultMode"]), true));
        }
        if let Some(src) = v.get("downwardAPI").filter(|s| s.is_object()) {
            let files = self
                .downward_api_payload(&src["items"])
                .map_err(|errs| aggregate(&errs))?;
            return Ok(files_volume(files, mode_of(&src["defaultMode"]), true));
        }
        if let Some(src) = v.get("projected").filter(|s| s.is_object()) {
            return self.projected(name, src);
        }
        // Sources Fargate admits but this machine has no storage for.
        const FARGATE_SOURCES: [&str; 2] = ["persistentVolumeClaim", "nfs"];
        let kinds: Vec<&str> = v
            .as_object()
            .map(|m| {
                m.keys()
                    .map(String::as_str)
                    .filter(|k| *k != "name")
                    .collect()
            })
            .unwrap_or_default();
        match kinds.first() {
            // A volume without a source is an emptyDir (the API server defaults it so).
            None => Ok(VolumeSource::EmptyDir {
                memory: false,
                size_limit: None,
            }),
            Some(kind) if FARGATE_SOURCES.contains(kind) => Ok(VolumeSource::Unsupported {
                message: format!(
                    "volume {} ({kind}) cannot be mounted: localfargate has no storage for it (Amazon EFS and NFS volumes are not emulated)",
                    go_quote(name)
                ),
            }),
            Some(_) => Ok(VolumeSource::Unsupported {
                message: format!(
                    "{REFUSAL_PREFIX}volumes not supported: {name} is of an unsupported volume Type"
                ),
            }),
        }
    }

    fn projected(&mut self, volume: &str, src: &Value) -> Result<VolumeSource, String> {
        let default_mode = mode_of(&src["defaultMode"]);
        let mut errors = Vec::new();
        let mut files: BTreeMap<String, FileData> = BTreeMap::new();
        for source in array(&src["sources"]) {
            if let Some(s) = source.get("secret").filter(|s| s.is_object()) {
                let optional = s["optional"].as_bool() == Some(true);
                let name = s["name"].as_str().unwrap_or("");
                let secret = self.refs.secret(self.namespace, name);
                if secret.is_none() && !optional {
                    errors.push(not_found("secret", name));
                    continue;
                }
                match secret_payload(&s["items"], secret.as_ref(), optional) {
                    Ok(p) => files.extend(p),
                    Err(e) => errors.push(e),
                }
            } else if let Some(s) = source.get("configMap").filter(|s| s.is_object()) {
                let optional = s["optional"].as_bool() == Some(true);
                let name = s["name"].as_str().unwrap_or("");
                let cm = self.refs.config_map(self.namespace, name);
                if cm.is_none() && !optional {
                    errors.push(not_found("configmap", name));
                    continue;
                }
                match config_map_payload(&s["items"], cm.as_ref(), optional) {
                    Ok(p) => files.extend(p),
                    Err(e) => errors.push(e),
                }
            } else if let Some(s) = source.get("downwardAPI").filter(|s| s.is_object()) {
                match self.downward_api_payload(&s["items"]) {
                    Ok(p) => files.extend(p),
                    Err(e) => errors.push(aggregate(&e)),
                }
            } else if let Some(s) = source.get("serviceAccountToken").filter(|s| s.is_object()) {
                if !self.refs.files_are_read() {
                    continue;
                }
                let path = s["path"].as_str().unwrap_or("token").to_string();
                let audience = s["audience"]
                    .as_str()
                    .filter(|a| !a.is_empty())
                    .unwrap_or(DEFAULT_AUDIENCE);
                let expiration = s["expirationSeconds"]
                    .as_u64()
                    .filter(|e| *e > 0)
                    .unwrap_or(DEFAULT_TOKEN_EXPIRATION);
                let account = self.spec["serviceAccountName"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .unwrap_or("default");
                let request = TokenRequest {
                    namespace: self.namespace,
                    service_account: account,
                    service_account_uid: None,
                    audience,
                    expiration_seconds: expiration,
                    pod_name: self.pod_name(),
                    pod_uid: self.meta.uid(),
                    node_name: &self.placement.node_name,
                };
                match self.refs.service_account_token(&request) {
                    Some(token) => {
                        // When the files get an owner (fsGroup, or one runAsUser for every
                        // container) the token is 0600, made 0640 by the ownership change.
                        let mode = (self.spec["securityContext"]["fsGroup"].is_i64()
                            || self.fs_user().is_some())
                        .then_some(0o600);
                        files.insert(
                            path,
                            FileData {
                                content: token.into_bytes(),
                                mode,
                            },
                        );
                    }
                    None => self.warn(
                        "FailedServiceAccountToken",
                        format!(
                            "no service-account token for {}/{account} (audience {audience}): the cluster has no token signer; {path} is left out of volume {}",
                            self.namespace,
                            go_quote(volume)
                        ),
                    ),
                }
            } else if let Some(kind) = source.as_object().and_then(|m| m.keys().next()).cloned() {
                self.warn(
                    "FailedMount",
                    format!(
                        "projected volume {}: {kind} sources are not supported by localfargate; left out",
                        go_quote(volume)
                    ),
                );
            }
        }
        if !errors.is_empty() {
            return Err(aggregate(&errors));
        }
        Ok(files_volume(files, default_mode, true))
    }

    /// `downwardapi.CollectData`: every item is tried, errors are gathered.
    fn downward_api_payload(
        &self,
        items: &Value,
    ) -> Result<BTreeMap<String, FileData>, Vec<String>> {
        let mut errors = Vec::new();
        let mut files = BTreeMap::new();
        for item in array(items) {
            let mut content = Vec::new();
            if item["fieldRef"].is_object() {
                match self.metadata_field(item["fieldRef"]["fieldPath"].as_str().unwrap_or("")) {
                    Ok(v) => content = v.into_bytes(),
                    Err(e) => errors.push(e),
                }
            } else if item["resourceFieldRef"].is_object() {
                match self.resource_field(&item["resourceFieldRef"], None) {
                    Ok(v) => content = v.into_bytes(),
                    Err(e) => errors.push(e),
                }
            }
            files.insert(
                clean_path(item["path"].as_str().unwrap_or("")),
                FileData {
                    content,
                    mode: item_mode(&item["mode"]),
                },
            );
        }
        if errors.is_empty() {
            Ok(files)
        } else {
            Err(errors)
        }
    }

    /// `util.FsUserFrom`: the runAsUser every container runs as, when they all have the same.
    fn fs_user(&self) -> Option<i64> {
        let pod_user = self.spec["securityContext"]["runAsUser"].as_i64();
        let mut common = None;
        for key in ["initContainers", "containers"] {
            for c in array(&self.spec[key]) {
                let user = c["securityContext"]["runAsUser"].as_i64().or(pod_user)?;
                match common {
                    None => common = Some(user),
                    Some(u) if u != user => return None,
                    Some(_) => {}
                }
            }
        }
        common
    }

    // ---- containers ---------------------------------------------------------------------

    fn container(
        &mut self,
        c: &Value,
        init: bool,
        volumes: &[Volume],
    ) -> Result<ContainerSpec, ResolveError> {
        let name = c["name"].as_str().unwrap_or("").to_string();
        let config_err = |message: String| ResolveError::ContainerConfig {
            container: name.clone(),
            message,
        };
        let image = c["image"].as_str().unwrap_or("").to_string();
        let pull_policy = match c["imagePullPolicy"].as_str() {
            None | Some("") => PullPolicy::default_for(&image),
            Some(p) => p
                .parse::<PullPolicy>()
                .map_err(|message| ResolveError::Invalid { message })?,
        };
        let resources = container_resources(c, &name)?;
        let env = self.env(c, &name)?;
        let env_map: HashMap<&str, &str> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let lookup = |k: &str| env_map.get(k).map(|v| (*v).to_string());
        let command = strings(&c["command"])
            .iter()
            .map(|s| expand(s, lookup))
            .collect();
        let args = strings(&c["args"])
            .iter()
            .map(|s| expand(s, lookup))
            .collect();
        let mut mounts = Vec::new();
        for m in array(&c["volumeMounts"]) {
            let volume = m["name"].as_str().unwrap_or("");
            let Some(v) = volumes.iter().find(|v| v.name == volume) else {
                return Err(config_err(format!(
                    "cannot find volume {} to mount into container {}",
                    go_quote(volume),
                    go_quote(&name)
                )));
            };
            let mut sub_path = m["subPath"].as_str().unwrap_or("").to_string();
            if let Some(e) = m["subPathExpr"].as_str().filter(|s| !s.is_empty()) {
                sub_path = expand_sub_path(e, &env_map).map_err(&config_err)?;
            }
            if !sub_path.is_empty() {
                if sub_path.starts_with('/') {
                    return Err(config_err(format!(
                        "error SubPath `{sub_path}` must not be an absolute path"
                    )));
                }
                if sub_path.split('/').any(|p| p == "..") {
                    return Err(config_err(format!(
                        "unable to provision SubPath `{sub_path}`: must not contain '..'"
                    )));
                }
            }
            mounts.push(VolumeMount {
                name: volume.to_string(),
                mount_path: m["mountPath"].as_str().unwrap_or("").to_string(),
                // ConfigMap, Secret, downward API and projected volumes are always read-only.
                read_only: m["readOnly"].as_bool() == Some(true)
                    || matches!(v.source, VolumeSource::Files { .. }),
                sub_path: (!sub_path.is_empty()).then_some(sub_path),
            });
        }
        let probe = |key: &str| probe(&c[key], key, c).map_err(&config_err);
        let hook = |key: &str| {
            let h = &c["lifecycle"][key];
            if !h.is_object() {
                return Ok(None);
            }
            action(h, &format!("lifecycle.{key}"), c, true).map_err(&config_err)
        };
        Ok(ContainerSpec {
            name: name.clone(),
            image,
            pull_policy,
            command,
            args,
            working_dir: c["workingDir"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            env,
            mounts,
            security: container_security(
                &c["securityContext"],
                &format!("{}.securityContext", container_field(init, &name)),
            )?,
            resources,
            liveness: probe("livenessProbe")?,
            readiness: probe("readinessProbe")?,
            startup: probe("startupProbe")?,
            post_start: hook("postStart")?,
            pre_stop: hook("preStop")?,
            termination_message_path: c["terminationMessagePath"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            termination_message_policy: match c["terminationMessagePolicy"].as_str() {
                Some("FallbackToLogsOnError") => TerminationMessagePolicy::FallbackToLogsOnError,
                _ => TerminationMessagePolicy::File,
            },
            tty: c["tty"].as_bool() == Some(true),
            stdin: c["stdin"].as_bool() == Some(true),
            stdin_once: c["stdinOnce"].as_bool() == Some(true),
            init,
        })
    }

    /// `makeEnvironmentVariables`: `envFrom` in order, then `env` in order, a later definition
    /// replacing the value of an earlier one (the kubelet keeps them in a map, so it has no
    /// order; here a name keeps the position of its first definition).
    fn env(&mut self, c: &Value, cname: &str) -> Result<Vec<(String, String)>, ResolveError> {
        let err = |message: String| ResolveError::ContainerConfig {
            container: cname.to_string(),
            message,
        };
        let mut env = EnvMap::default();
        // The Service variables: usable in `$(VAR)`, added where the container has none.
        let links = self.spec["enableServiceLinks"].as_bool() != Some(false);
        let in_namespace = if links {
            self.refs.services(self.namespace)
        } else {
            Vec::new()
        };
        let in_default = if self.namespace == "default" && links {
            in_namespace.clone()
        } else {
            self.refs.services("default")
        };
        let service_vars = service_env::variables(&service_env::selected(
            self.namespace,
            links,
            &in_namespace,
            &in_default,
        ));
        let service_map: HashMap<&str, &str> = service_vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut config_maps: HashMap<String, Value> = HashMap::new();
        let mut secrets: HashMap<String, Value> = HashMap::new();
        for from in array(&c["envFrom"]) {
            let prefix = from["prefix"].as_str().unwrap_or("");
            let (kind, r) = if from["configMapRef"].is_object() {
                ("configMap", &from["configMapRef"])
            } else if from["secretRef"].is_object() {
                ("secret", &from["secretRef"])
            } else {
                continue;
            };
            let name = r["name"].as_str().unwrap_or("");
            let optional = r["optional"].as_bool() == Some(true);
            let object = if kind == "configMap" {
                self.cached(&mut config_maps, name, true)
            } else {
                self.cached(&mut secrets, name, false)
            };
            let Some(object) = object else {
                if optional {
                    continue;
                }
                return Err(err(not_found(
                    if kind == "configMap" {
                        "configmap"
                    } else {
                        "secret"
                    },
                    name,
                )));
            };
            let mut invalid = Vec::new();
            for (key, value) in object["data"].as_object().into_iter().flatten() {
                let var = format!("{prefix}{key}");
                // Since RelaxedEnvironmentVariableValidation the kubelet passes every key through;
                // only what no process environment can hold is skipped here.
                if var.is_empty() || var.contains('=') || var.contains('\0') {
                    invalid.push(var);
                    continue;
                }
                let value = if kind == "configMap" {
                    value.as_str().unwrap_or("").to_string()
                } else {
                    self.secret_text(value, name, key)?
                };
                env.set(var, value);
            }
            if !invalid.is_empty() {
                invalid.sort();
                let what = if kind == "configMap" {
                    "configMap"
                } else {
                    "secret"
                };
                self.warn(
                    "InvalidEnvironmentVariableNames",
                    format!(
                        "Keys [{}] from the EnvFrom {what} {}/{name} were skipped since they are considered invalid environment variable names.",
                        invalid.join(", "),
                        self.namespace
                    ),
                );
            }
        }
        for e in array(&c["env"]) {
            let Some(var) = e["name"].as_str() else {
                continue;
            };
            let literal = e["value"].as_str().unwrap_or("");
            let from = &e["valueFrom"];
            let value = if !literal.is_empty() {
                expand(literal, |k| {
                    env.get(k)
                        .or_else(|| service_map.get(k).copied())
                        .map(str::to_string)
                })
            } else if from.is_object() {
                if from["fieldRef"].is_object() {
                    self.env_field(&from["fieldRef"]).map_err(&err)?
                } else if from["resourceFieldRef"].is_object() {
                    self.resource_field(&from["resourceFieldRef"], Some(c))
                        .map_err(&err)?
                } else if from["configMapKeyRef"].is_object() {
                    let r = &from["configMapKeyRef"];
                    let name = r["name"].as_str().unwrap_or("");
                    let key = r["key"].as_str().unwrap_or("");
                    let optional = r["optional"].as_bool() == Some(true);
                    let Some(cm) = self.cached(&mut config_maps, name, true) else {
                        if optional {
                            continue;
                        }
                        return Err(err(not_found("configmap", name)));
                    };
                    match cm["data"][key].as_str() {
                        Some(v) => v.to_string(),
                        None if optional => continue,
                        None => {
                            return Err(err(format!(
                                "couldn't find key {key} in ConfigMap {}/{name}",
                                self.namespace
                            )));
                        }
                    }
                } else if from["secretKeyRef"].is_object() {
                    let r = &from["secretKeyRef"];
                    let name = r["name"].as_str().unwrap_or("");
                    let key = r["key"].as_str().unwrap_or("");
                    let optional = r["optional"].as_bool() == Some(true);
                    let Some(secret) = self.cached(&mut secrets, name, false) else {
                        if optional {
                            continue;
                        }
                        return Err(err(not_found("secret", name)));
                    };
                    match secret["data"].get(key) {
                        Some(v) => self.secret_text(v, name, key)?,
                        None if optional => continue,
                        None => {
                            return Err(err(format!(
                                "couldn't find key {key} in Secret {}/{name}",
                                self.namespace
                            )));
                        }
                    }
                } else {
                    String::new()
                }
            } else {
                String::new()
            };
            env.set(var.to_string(), value);
        }
        for (k, v) in &service_vars {
            if env.get(k).is_none() {
                env.set(k.clone(), v.clone());
            }
        }
        Ok(env.vars)
    }

    /// One read of a ConfigMap or Secret per container, as the kubelet's per-call maps.
    fn cached(
        &self,
        cache: &mut HashMap<String, Value>,
        name: &str,
        config_map: bool,
    ) -> Option<Value> {
        if let Some(v) = cache.get(name) {
            return Some(v.clone());
        }
        let found = if config_map {
            self.refs.config_map(self.namespace, name)
        } else {
            self.refs.secret(self.namespace, name)
        }?;
        cache.insert(name.to_string(), found.clone());
        Some(found)
    }

    /// A Secret's `data` value as an environment string.
    fn secret_text(
        &mut self,
        value: &Value,
        secret: &str,
        key: &str,
    ) -> Result<String, ResolveError> {
        let bytes =
            value
                .as_str()
                .and_then(base64_decode)
                .ok_or_else(|| ResolveError::Invalid {
                    message: format!(
                        "secret {}/{secret}: data[{key}] is not valid base64",
                        self.namespace
                    ),
                })?;
        match String::from_utf8(bytes) {
            Ok(s) => Ok(s),
            Err(e) => {
                self.warn(
                    "InvalidEnvironmentVariableValue",
                    format!(
                        "the value of key {key} of Secret {}/{secret} is not UTF-8; invalid bytes were replaced with U+FFFD",
                        self.namespace
                    ),
                );
                Ok(String::from_utf8_lossy(e.as_bytes()).into_owned())
            }
        }
    }

    /// `podFieldSelectorRuntimeValue`, after `ConvertDownwardAPIFieldLabel`.
    fn env_field(&self, selector: &Value) -> Result<String, String> {
        let version = selector["apiVersion"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("v1");
        if version != "v1" {
            return Err(format!("unsupported pod version: {version}"));
        }
        let path = selector["fieldPath"].as_str().unwrap_or("");
        let path = if let Some((base, _)) = split_subscript(path) {
            if base != "metadata.annotations" && base != "metadata.labels" {
                return Err(format!("field label does not support subscript: {path}"));
            }
            path
        } else {
            match path {
                "spec.host" => "spec.nodeName",
                "metadata.annotations"
                | "metadata.labels"
                | "metadata.name"
                | "metadata.namespace"
                | "metadata.uid"
                | "spec.nodeName"
                | "spec.restartPolicy"
                | "spec.serviceAccountName"
                | "spec.schedulerName"
                | "status.phase"
                | "status.hostIP"
                | "status.hostIPs"
                | "status.podIP"
                | "status.podIPs" => path,
                _ => return Err(format!("field label not supported: {path}")),
            }
        };
        Ok(match path {
            "spec.nodeName" => self.spec["nodeName"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or(&self.placement.node_name)
                .to_string(),
            "spec.serviceAccountName" => self.spec["serviceAccountName"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            "status.hostIP" | "status.hostIPs" => self.placement.host_ip.clone(),
            "status.podIP" | "status.podIPs" => self.placement.ip.to_string(),
            other => return self.metadata_field(other),
        })
    }

    /// `fieldpath.ExtractFieldPathAsString`: the metadata fields (all a downward API volume can
    /// name).
    fn metadata_field(&self, path: &str) -> Result<String, String> {
        let meta = &self.meta;
        if let Some((base, key)) = split_subscript(path) {
            return match base {
                "metadata.annotations" | "metadata.labels" => {
                    let value = if base == "metadata.labels" {
                        meta.label(key)
                    } else {
                        meta.annotation(key)
                    };
                    Ok(value.unwrap_or("").to_string())
                }
                _ => Err(format!(
                    "fieldPath {} does not support subscript",
                    go_quote(path)
                )),
            };
        }
        match path {
            "metadata.annotations" => Ok(format_map(&string_entries(meta, Field::Annotations))),
            "metadata.labels" => Ok(format_map(&string_entries(meta, Field::Labels))),
            "metadata.name" => Ok(self.pod_name().to_string()),
            "metadata.namespace" => Ok(self.namespace.to_string()),
            "metadata.uid" => Ok(meta.uid().to_string()),
            _ => Err(format!("unsupported fieldPath: {path}")),
        }
    }

    /// `ExtractContainerResourceValue` on a container whose missing limits are the node's
    /// allocatable (here the pod's Fargate size), rounded up to the divisor.
    fn resource_field(&self, selector: &Value, own: Option<&Value>) -> Result<String, String> {
        let named = selector["containerName"].as_str().unwrap_or("");
        let container = match (named, own) {
            ("", Some(c)) => c,
            (name, _) => self
                .find_container(name)
                .ok_or_else(|| format!("container {name} not found"))?,
        };
        let resource = selector["resource"].as_str().unwrap_or("");
        let unsupported = || format!("unsupported container resource : {resource}");
        let (which, kind) = resource.split_once('.').ok_or_else(unsupported)?;
        if which != "limits" && which != "requests" {
            return Err(unsupported());
        }
        let is_cpu = kind == "cpu";
        if !is_cpu
            && kind != "memory"
            && kind != "ephemeral-storage"
            && !kind.starts_with("hugepages-")
        {
            return Err(unsupported());
        }
        let to_units = |q: &str| -> Result<u64, String> {
            if is_cpu {
                quantity::cpu_millis(q)
            } else {
                quantity::base_units(q)
            }
            .map_err(|e| e.to_string())
        };
        let divisor = match quantity_text(&selector["divisor"]) {
            Some(d) => to_units(&d)?,
            None => 0,
        };
        let divisor = match divisor {
            // A zero divisor is the default, 1 (1000 millicores for CPU).
            0 if is_cpu => 1000,
            0 => 1,
            d => d,
        };
        let resources = Resources::of(container);
        let set = if which == "limits" {
            &resources.limits
        } else {
            &resources.requests
        };
        let mut value = match set.get(kind) {
            Some(q) => to_units(q)?,
            None => 0,
        };
        if which == "limits" && value == 0 {
            value = match kind {
                "cpu" => (self.placement.vcpu * 1000.0).round().max(0.0) as u64,
                "memory" => self.placement.memory_mib.saturating_mul(sizing::MIB),
                "ephemeral-storage" => self.ephemeral_bytes,
                _ => 0,
            };
        }
        Ok(value.div_ceil(divisor).to_string())
    }

    fn find_container(&self, name: &str) -> Option<&'a Value> {
        ["containers", "initContainers"]
            .iter()
            .flat_map(|k| array(&self.spec[*k]))
            .find(|c| c["name"].as_str() == Some(name))
    }
}

// ---- environment ------------------------------------------------------------------------

/// Variables in order of first definition, a later definition replacing the value.
#[derive(Default)]
struct EnvMap {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl EnvMap {
    fn set(&mut self, name: String, value: String) {
        match self.index.get(&name) {
            Some(&i) => {
                if let Some(slot) = self.vars.get_mut(i) {
                    slot.1 = value;
                }
            }
            None => {
                self.index.insert(name.clone(), self.vars.len());
                self.vars.push((name, value));
            }
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.index
            .get(name)
            .and_then(|&i| self.vars.get(i))
            .map(|(_, v)| v.as_str())
    }
}

/// Kubernetes' `$(VAR)` expansion: `$(NAME)` is replaced by `lookup(NAME)` or left as is when
/// that is `None`; `$$` is a literal `$`; any other `$` is kept with the character after it; an
/// unterminated `$(` is kept.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let Some(next) = after.chars().next() else {
            // An operator at the end of the input is kept.
            out.push('$');
            rest = after;
            break;
        };
        match next {
            '$' => {
                out.push('$');
                rest = &after[1..];
            }
            '(' => match after.find(')') {
                Some(close) => {
                    let name = &after[1..close];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            c => {
                out.push('$');
                out.push(c);
                rest = &after[c.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `ExpandContainerVolumeMounts`: every variable must be defined and not empty.
fn expand_sub_path(expr: &str, env: &HashMap<&str, &str>) -> Result<String, String> {
    let missing = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let expanded = expand(expr, |k| {
        let value = env.get(k).copied().unwrap_or("");
        if value.is_empty() {
            missing.borrow_mut().insert(k.to_string());
        }
        Some(value.to_string())
    });
    let missing = missing.into_inner();
    if missing.is_empty() {
        Ok(expanded)
    } else {
        Err(format!(
            "missing value for {}",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        ))
    }
}

// ---- resources --------------------------------------------------------------------------

/// A container's quantities as written, requests defaulted from limits (as the API server does).
struct Resources {
    limits: BTreeMap<String, String>,
    requests: BTreeMap<String, String>,
}

impl Resources {
    fn of(c: &Value) -> Resources {
        let read = |v: &Value| -> BTreeMap<String, String> {
            v.as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, q)| Some((k.clone(), quantity_text(q)?)))
                .collect()
        };
        let limits = read(&c["resources"]["limits"]);
        let mut requests = read(&c["resources"]["requests"]);
        for (k, v) in &limits {
            requests.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Resources { limits, requests }
    }
}

fn container_resources(c: &Value, cname: &str) -> Result<ContainerResources, ResolveError> {
    let r = Resources::of(c);
    let parse = |set: &BTreeMap<String, String>, which: &str, kind: &str| {
        let Some(q) = set.get(kind) else {
            return Ok(None);
        };
        let parsed = if kind == "cpu" {
            quantity::cpu_millis(q)
        } else {
            quantity::base_units(q)
        };
        parsed.map(Some).map_err(|e| ResolveError::Invalid {
            message: format!("container {cname:?}: resources.{which}.{kind}: {e}"),
        })
    };
    Ok(ContainerResources {
        cpu_limit_millis: parse(&r.limits, "limits", "cpu")?,
        memory_limit_bytes: parse(&r.limits, "limits", "memory")?,
        cpu_request_millis: parse(&r.requests, "requests", "cpu")?,
        memory_request_bytes: parse(&r.requests, "requests", "memory")?,
    })
}

/// Ephemeral storage Fargate provisions for the pod (fargate-behavior.md §2.4): 20 GiB, or the
/// pod's effective `ephemeral-storage` request plus 10% and 5 GiB, at most 175 GiB.
pub(crate) fn ephemeral_storage(spec: &Value) -> Result<u64, ResolveError> {
    let mut demands = Vec::new();
    for (key, init) in [("initContainers", true), ("containers", false)] {
        for c in array(&spec[key]) {
            let role = match (init, c["restartPolicy"].as_str()) {
                (false, _) => ContainerRole::App,
                (true, Some("Always")) => ContainerRole::Sidecar,
                (true, _) => ContainerRole::Init,
            };
            let requested = match Resources::of(c).requests.get("ephemeral-storage") {
                None => 0,
                Some(q) => quantity::base_units(q).map_err(|e| ResolveError::Invalid {
                    message: format!(
                        "container {:?}: resources.requests.ephemeral-storage: {e}",
                        c["name"].as_str().unwrap_or("")
                    ),
                })?,
            };
            demands.push(ContainerDemand {
                role,
                requests: PodRequests {
                    ephemeral_storage_bytes: requested,
                    ..PodRequests::default()
                },
            });
        }
    }
    let requested = sizing::combine(&demands).ephemeral_storage_bytes;
    let gib = sizing::provisioned_storage_gib(requested).unwrap_or(sizing::MAX_STORAGE_GIB);
    Ok(gib.saturating_mul(sizing::GIB))
}

// ---- security -----------------------------------------------------------------------------

fn pod_security(sc: &Value, field: &str) -> Result<PodSecurity, ResolveError> {
    Ok(PodSecurity {
        run_as_user: sc["runAsUser"].as_i64(),
        run_as_group: sc["runAsGroup"].as_i64(),
        run_as_non_root: sc["runAsNonRoot"].as_bool(),
        fs_group: sc["fsGroup"].as_i64(),
        supplemental_groups: array(&sc["supplementalGroups"])
            .iter()
            .filter_map(Value::as_i64)
            .collect(),
        seccomp: seccomp_profile(&sc["seccompProfile"], field)?,
        sysctls: array(&sc["sysctls"])
            .iter()
            .filter_map(|s| {
                Some((
                    s["name"].as_str()?.to_string(),
                    s["value"].as_str().unwrap_or("").to_string(),
                ))
            })
            .collect(),
    })
}

fn container_security(sc: &Value, field: &str) -> Result<ContainerSecurity, ResolveError> {
    Ok(ContainerSecurity {
        run_as_user: sc["runAsUser"].as_i64(),
        run_as_group: sc["runAsGroup"].as_i64(),
        run_as_non_root: sc["runAsNonRoot"].as_bool(),
        read_only_root_filesystem: sc["readOnlyRootFilesystem"].as_bool() == Some(true),
        allow_privilege_escalation: sc["allowPrivilegeEscalation"].as_bool(),
        privileged: sc["privileged"].as_bool() == Some(true),
        capabilities_add: strings(&sc["capabilities"]["add"]),
        capabilities_drop: strings(&sc["capabilities"]["drop"]),
        seccomp: seccomp_profile(&sc["seccompProfile"], field)?,
    })
}

/// `spec.containers[2]` or `spec.initContainers[0]`, as the API server names a container's
/// fields in its messages; by name here, which the resolver knows.
fn container_field(init: bool, name: &str) -> String {
    let list = if init { "initContainers" } else { "containers" };
    format!("spec.{list}{{{name}}}")
}

/// A `seccompProfile` (`field` is where it sits, for messages). The API server validates it;
/// a pod that got past without that is refused with its wording.
fn seccomp_profile(sp: &Value, field: &str) -> Result<Option<SeccompProfile>, ResolveError> {
    let invalid = |message: String| Err(ResolveError::Invalid { message });
    match sp["type"].as_str() {
        None if sp.is_null() => Ok(None),
        Some("RuntimeDefault") => Ok(Some(SeccompProfile::RuntimeDefault)),
        Some("Unconfined") => Ok(Some(SeccompProfile::Unconfined)),
        Some("Localhost") => match sp["localhostProfile"].as_str().filter(|p| !p.is_empty()) {
            Some(p) => Ok(Some(SeccompProfile::Localhost(p.to_string()))),
            None => invalid(format!(
                "{field}.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost"
            )),
        },
        other => invalid(format!(
            "{field}.seccompProfile.type: Unsupported value: {}: supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\"",
            go_quote(other.unwrap_or(""))
        )),
    }
}

// ---- probes and hooks -----------------------------------------------------------------------

fn probe(p: &Value, field: &str, c: &Value) -> Result<Option<Probe>, String> {
    if !p.is_object() {
        return Ok(None);
    }
    let action = action(p, field, c, false)?.ok_or_else(|| {
        format!("{field}: no handler (one of exec, httpGet, tcpSocket or grpc is required)")
    })?;
    let mut probe = Probe::new(action);
    let secs = |k: &str| p[k].as_i64().filter(|s| *s > 0).map(|s| s.unsigned_abs());
    let count = |k: &str| {
        p[k].as_i64()
            .filter(|s| *s > 0)
            .map(|s| u32::try_from(s).unwrap_or(u32::MAX))
    };
    // The API defaults a zero (unset) period, timeout and thresholds.
    if let Some(s) = secs("initialDelaySeconds") {
        probe.initial_delay = Duration::from_secs(s);
    }
    if let Some(s) = secs("periodSeconds") {
        probe.period = Duration::from_secs(s);
    }
    if let Some(s) = secs("timeoutSeconds") {
        probe.timeout = Duration::from_secs(s);
    }
    if let Some(n) = count("successThreshold") {
        probe.success_threshold = n;
    }
    if let Some(n) = count("failureThreshold") {
        probe.failure_threshold = n;
    }
    probe.termination_grace = p["terminationGracePeriodSeconds"]
        .as_i64()
        .map(|s| Duration::from_secs(s.max(0).unsigned_abs()));
    Ok(Some(probe))
}

/// A probe's or hook's handler. `hook` allows `sleep`; a probe allows `grpc`.
fn action(h: &Value, field: &str, c: &Value, hook: bool) -> Result<Option<Action>, String> {
    if h["exec"].is_object() {
        return Ok(Some(Action::Exec {
            command: strings(&h["exec"]["command"]),
        }));
    }
    if h["httpGet"].is_object() {
        let g = &h["httpGet"];
        return Ok(Some(Action::HttpGet {
            scheme: g["scheme"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("HTTP")
                .to_string(),
            host: g["host"].as_str().unwrap_or("").to_string(),
            port: resolve_port(&g["port"], field, c)?,
            path: g["path"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("/")
                .to_string(),
            headers: array(&g["httpHeaders"])
                .iter()
                .filter_map(|x| {
                    Some((
                        x["name"].as_str()?.to_string(),
                        x["value"].as_str().unwrap_or("").to_string(),
                    ))
                })
                .collect(),
        }));
    }
    if h["tcpSocket"].is_object() {
        let t = &h["tcpSocket"];
        return Ok(Some(Action::TcpSocket {
            host: t["host"].as_str().unwrap_or("").to_string(),
            port: resolve_port(&t["port"], field, c)?,
        }));
    }
    if !hook && h["grpc"].is_object() {
        let g = &h["grpc"];
        return Ok(Some(Action::Grpc {
            port: resolve_port(&g["port"], field, c)?,
            service: g["service"].as_str().unwrap_or("").to_string(),
        }));
    }
    if hook && h["sleep"].is_object() {
        return Ok(Some(Action::Sleep {
            seconds: h["sleep"]["seconds"]
                .as_i64()
                .map_or(0, |s| s.max(0).unsigned_abs()),
        }));
    }
    if hook {
        return Err(format!(
            "{field}: invalid handler (no exec, httpGet, tcpSocket or sleep)"
        ));
    }
    Ok(None)
}

/// An IntOrString port: a number, or the name of one of the container's `ports`.
fn resolve_port(port: &Value, field: &str, c: &Value) -> Result<u16, String> {
    let number = match port {
        Value::Number(n) => n.as_i64(),
        Value::String(name) => match array(&c["ports"])
            .iter()
            .find(|p| p["name"].as_str() == Some(name.as_str()))
        {
            Some(p) => p["containerPort"].as_i64(),
            None => match name.parse::<i64>() {
                Ok(n) => Some(n),
                Err(_) => return Err(format!("{field}: port {name} not found")),
            },
        },
        _ => None,
    };
    match number {
        Some(n) if (1..=65535).contains(&n) => u16::try_from(n).map_err(|e| e.to_string()),
        Some(n) => Err(format!("{field}: invalid port number: {n}")),
        None => Err(format!("{field}: no port")),
    }
}

// ---- volume payloads ------------------------------------------------------------------------

struct FileData {
    content: Vec<u8>,
    /// The item's own mode; `None` takes the volume's `defaultMode`.
    mode: Option<u32>,
}

/// A file volume; `memory` for the kinds the kubelet keeps on a tmpfs (Secret, downward API,
/// projected).
fn files_volume(
    files: BTreeMap<String, FileData>,
    default_mode: u32,
    memory: bool,
) -> VolumeSource {
    VolumeSource::Files {
        memory,
        files: files
            .into_iter()
            .map(|(path, f)| VolumeFile {
                path,
                mode: f.mode,
                content: f.content,
            })
            .collect(),
        default_mode,
    }
}

/// `configmap.MakePayload`: every key of `data` and `binaryData`, or the listed `items`.
fn config_map_payload(
    items: &Value,
    cm: Option<&Value>,
    optional: bool,
) -> Result<BTreeMap<String, FileData>, String> {
    let empty = Value::Null;
    let cm = cm.unwrap_or(&empty);
    let binary = |key: &str, v: &Value| {
        v.as_str().and_then(base64_decode).ok_or_else(|| {
            format!(
                "configmap {}: binaryData[{key}] is not valid base64",
                name_of(cm)
            )
        })
    };
    let mut out = BTreeMap::new();
    let items = array(items);
    if items.is_empty() {
        for (k, v) in cm["data"].as_object().into_iter().flatten() {
            out.insert(
                k.clone(),
                FileData {
                    content: v.as_str().unwrap_or("").as_bytes().to_vec(),
                    mode: None,
                },
            );
        }
        for (k, v) in cm["binaryData"].as_object().into_iter().flatten() {
            out.insert(
                k.clone(),
                FileData {
                    content: binary(k, v)?,
                    mode: None,
                },
            );
        }
        return Ok(out);
    }
    for item in items {
        let key = item["key"].as_str().unwrap_or("");
        let content = if let Some(s) = cm["data"][key].as_str() {
            s.as_bytes().to_vec()
        } else if let Some(b) = cm["binaryData"].get(key) {
            binary(key, b)?
        } else if optional {
            continue;
        } else {
            return Err(format!(
                "configmap references non-existent config key: {key}"
            ));
        };
        out.insert(
            item["path"].as_str().unwrap_or(key).to_string(),
            FileData {
                content,
                mode: item_mode(&item["mode"]),
            },
        );
    }
    Ok(out)
}

/// `secret.MakePayload`: every key of `data` (base64), or the listed `items`.
fn secret_payload(
    items: &Value,
    secret: Option<&Value>,
    optional: bool,
) -> Result<BTreeMap<String, FileData>, String> {
    let empty = Value::Null;
    let secret = secret.unwrap_or(&empty);
    let decode = |key: &str, v: &Value| {
        v.as_str().and_then(base64_decode).ok_or_else(|| {
            format!(
                "secret {}: data[{key}] is not valid base64",
                name_of(secret)
            )
        })
    };
    let mut out = BTreeMap::new();
    let items = array(items);
    if items.is_empty() {
        for (k, v) in secret["data"].as_object().into_iter().flatten() {
            out.insert(
                k.clone(),
                FileData {
                    content: decode(k, v)?,
                    mode: None,
                },
            );
        }
        return Ok(out);
    }
    for item in items {
        let key = item["key"].as_str().unwrap_or("");
        let Some(v) = secret["data"].get(key) else {
            if optional {
                continue;
            }
            return Err(format!("references non-existent secret key: {key}"));
        };
        out.insert(
            item["path"].as_str().unwrap_or(key).to_string(),
            FileData {
                content: decode(key, v)?,
                mode: item_mode(&item["mode"]),
            },
        );
    }
    Ok(out)
}

fn mode_of(v: &Value) -> u32 {
    item_mode(v).unwrap_or(DEFAULT_MODE)
}

fn item_mode(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|m| u32::try_from(m).ok())
}

/// An API NotFound error as the kubelet's object managers word it (singular resource).
fn not_found(resource: &str, name: &str) -> String {
    format!("{resource} {} not found", go_quote(name))
}

/// `utilerrors.NewAggregate(errs).Error()`: one error as itself, several deduplicated in `[…]`.
fn aggregate(errors: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for e in errors {
        if !seen.contains(&e.as_str()) {
            seen.push(e);
        }
    }
    match seen.as_slice() {
        [one] => (*one).to_string(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// `path.Clean` for the relative paths of downward API items.
fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !p.starts_with('/') {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (p.starts_with('/'), joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// `metadata.annotations['key']` → `("metadata.annotations", "key")`.
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let (base, key) = inner.split_once("['")?;
    (!base.is_empty()).then_some((base, key))
}

/// `fieldpath.FormatMap`: `key="value"` lines sorted by key, values quoted as Go's `%q`, no
/// final newline.
fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---- DNS helpers ----------------------------------------------------------------------------

/// The EC2 search domain of a region's hosts.
fn region_search_domain(region: &str) -> String {
    if region == "us-east-1" {
        "ec2.internal".to_string()
    } else {
        format!("{region}.compute.internal")
    }
}

/// `parseResolvConf`: nameservers accumulate; the last `search` and `options` lines win; search
/// domains lose a trailing dot.
fn parse_resolv_conf(text: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut servers = Vec::new();
    let mut searches = Vec::new();
    let mut options = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("nameserver") => {
                if let Some(s) = fields.next() {
                    servers.push(s.to_string());
                }
            }
            Some("search") => {
                searches = fields
                    .map(|s| s.strip_suffix('.').unwrap_or(s).to_string())
                    .collect();
            }
            Some("options") => options = fields.map(str::to_string).collect(),
            _ => {}
        }
    }
    (servers, searches, options)
}

fn omit_duplicates(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// Sets `name[:value]` in a resolv.conf option list, replacing an option of the same name.
fn set_option(options: &mut Vec<String>, name: &str, value: &str) {
    let text = if value.is_empty() {
        name.to_string()
    } else {
        format!("{name}:{value}")
    };
    let same = |o: &String| o.split_once(':').map_or(o.as_str(), |(n, _)| n) == name;
    match options.iter_mut().find(|o| same(o)) {
        Some(slot) => *slot = text,
        None => options.push(text),
    }
}

/// `truncatePodHostnameIfNeeded`: at most 63 characters, not ending in `-` or `.`.
fn hostname(hostname: Option<&str>, pod_name: &str) -> String {
    let name = hostname.unwrap_or(pod_name);
    if name.chars().count() <= 63 {
        return name.to_string();
    }
    let cut: String = name.chars().take(63).collect();
    let trimmed = cut.trim_end_matches(['-', '.']);
    tracing::error!(
        pod = pod_name,
        truncated = trimmed,
        "hostname for pod was too long, truncated it"
    );
    trimmed.to_string()
}

// ---- JSON helpers -----------------------------------------------------------------------

/// Labels or annotations as strings. A map written with a value of another type (which the
/// API refuses, but a write around it may store) is kept as written in the metadata's `other`:
/// its string entries are used, as the kubelet's decode would drop the pod's others.
fn string_entries(meta: &ObjectMeta, field: Field) -> BTreeMap<String, String> {
    let typed = match field {
        Field::Labels => &meta.labels,
        _ => &meta.annotations,
    };
    if let Some(map) = typed {
        return map.clone();
    }
    meta.other
        .get(field.key())
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

fn strings(v: &Value) -> Vec<String> {
    array(v)
        .iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// A quantity as text (quantities may be written as JSON numbers).
pub(crate) fn quantity_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Standard base64 (as Kubernetes encodes `[]byte`); padding optional, line breaks ignored.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }
    let body: Vec<u8> = text
        .bytes()
        .filter(|b| *b != b'\n' && *b != b'\r')
        .collect();
    let trimmed = body
        .strip_suffix(b"==")
        .or_else(|| body.strip_suffix(b"="))
        .unwrap_or(&body);
    if trimmed.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    for chunk in trimmed.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | sextet(c)?;
        }
        let bytes = acc.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 => out.extend_from_slice(&(acc << 6).to_be_bytes()[1..3]),
            2 => out.push((acc >> 4) as u8),
            _ => return None,
        }
    }
    Some(out)
}
