//! Ingresses of class `alb`, served on the host as the AWS Load Balancer Controller's
//! Application Load Balancers serve them on EKS. Ingresses are grouped as the controller groups
//! them: those with the same `alb.ingress.kubernetes.io/group.name` share one ALB (its listeners
//! and rules, members ordered by `group.order` then `namespace/name`); any other Ingress is a
//! group of its own. Each group gets a listener on `127.0.0.1:<port>` per listen port
//! (`listen-ports`; HTTP 80 by default, HTTPS 443 with a `certificate-arn`), or a free port with
//! a `Warning` event when that one is taken. HTTPS listeners serve a certificate for the group's
//! hosts issued by a local certificate authority ([`LoadBalancerCa`], written to the data
//! directory for clients to trust), standing in for ACM.
//!
//! Rules are built as the controller builds them: per member, per rule, paths sorted (`Exact`,
//! `Prefix` longest first, then the rest in order), each with the host and path conditions plus
//! those of `conditions.<service>`, and the backend's action (forward to the Service's ready pod
//! IPs, target type `ip`; or `actions.<service>` when the port is `use-annotation`: fixed
//! response, redirect, weighted forward). `ssl-redirect` turns HTTP listeners into redirects.
//! The address (`[{hostname: localhost}]`; on EKS the ALB's DNS name) is written to every
//! member's `status.loadBalancer.ingress`. A model that cannot be built gets the controller's
//! own event text (`FailedBuildModel`) on every member.
//!
//! Target type `instance` (the controller's default) needs a NodePort or LoadBalancer Service;
//! with a ClusterIP one the model cannot be built. With a NodePort Service it builds, but
//! Fargate nodes are never instance targets, so the target group stays empty and the ALB
//! answers 503, as on EKS.
//!
//! Listeners are opened with the process runtime only; status and events are written with
//! either.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, Ingress, IngressBackend, IngressLoadBalancerIngress,
    IngressLoadBalancerStatus, IngressRule, IngressSpec,
};
use localfargate_core::pki::LoadBalancerCa;
use localfargate_registry::meta::{annotation_of, is_deleting, name_of, namespace_of, uid_of};
use localfargate_registry::objects::{Objects, resource};
use localfargate_registry::typed::{self, decode_or_log};
use localfargate_runtime::RuntimeKind;
use localfargate_runtime::http_proxy::{
    Action, Condition, HttpListener, HttpRoutes, HttpRule, Redirect, ServerTls, TargetGroup,
};
use serde_json::{Value, json};

use crate::context::ClusterContext;
use crate::events::{EventType, emit};
use crate::load_balancers::{INGRESS_HOSTNAME, ready_backends};
use crate::wake::{Wake, under};

/// The component the AWS Load Balancer Controller's Ingress events name.
const COMPONENT: &str = "ingress";
const CLASS: &str = "alb";
const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
const PREFIX: &str = "alb.ingress.kubernetes.io/";
const TARGET_TYPE: &str = "alb.ingress.kubernetes.io/target-type";
const LISTEN_PORTS: &str = "alb.ingress.kubernetes.io/listen-ports";
const GROUP_NAME: &str = "alb.ingress.kubernetes.io/group.name";
const GROUP_ORDER: &str = "alb.ingress.kubernetes.io/group.order";
const CERTIFICATE_ARN: &str = "alb.ingress.kubernetes.io/certificate-arn";
const SSL_REDIRECT: &str = "alb.ingress.kubernetes.io/ssl-redirect";
/// A backend port naming this takes its action from `actions.<service name>`.
const USE_ANNOTATION: &str = "use-annotation";

pub async fn run(ctx: Arc<ClusterContext>) {
    let objects = &ctx.objects;
    let kind = objects.store_kind().to_string();
    let listen = ctx.runtime.kind() == RuntimeKind::Process;
    let prefixes = [
        resource("networking.k8s.io", "ingresses").key_prefix(None),
        resource("", "services").key_prefix(None),
        resource("discovery.k8s.io", "endpointslices").key_prefix(None),
    ];
    let mut wake = Wake::watching(
        &kind,
        &prefixes,
        Duration::from_millis(100),
        Duration::from_secs(30),
    );
    let mut served: HashMap<GroupKey, Served> = HashMap::new();
    let mut ca = CaSlot {
        dir: ctx.settings.load_balancer_ca_dir.clone(),
        ca: None,
    };
    wake.start(&*objects.store, objects.store.revision().unwrap_or(0));
    loop {
        sync(objects, listen, &mut served, &mut ca);
        wake.until(&*objects.store, under(&prefixes)).await;
    }
}

/// The load balancers' CA's certificate (PEM) in the data directory, for clients to trust.
pub const CA_CERT_FILE: &str = "alb-ca.pem";
/// Its private key (PEM), beside it, readable by its owner only.
const CA_KEY_FILE: &str = "alb-ca-key.pem";

/// Why the CA in the data directory could not be had.
#[derive(Debug, thiserror::Error)]
enum CaError {
    #[error("the load balancers' certificate authority in {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the load balancers' certificate authority: {0}")]
    Certificate(#[from] rcgen::Error),
}

/// The CA kept in `dir`, made and written there the first time.
fn kept_ca(dir: &std::path::Path) -> Result<LoadBalancerCa, CaError> {
    let (cert_path, key_path) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
    let io = |path: &std::path::Path| {
        let path = path.display().to_string();
        move |source| CaError::Io { path, source }
    };
    if let (Ok(cert_pem), Ok(key_pem)) = (
        std::fs::read_to_string(&cert_path),
        std::fs::read_to_string(&key_path),
    ) {
        return Ok(LoadBalancerCa::from_pem(cert_pem, key_pem)?);
    }
    let ca = LoadBalancerCa::generate()?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    write_private(&key_path, ca.key_pem()).map_err(io(&key_path))?;
    std::fs::write(&cert_path, &ca.cert_pem).map_err(io(&cert_path))?;
    Ok(ca)
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// The local certificate authority, loaded when the first HTTPS listener needs it.
struct CaSlot {
    dir: Option<std::path::PathBuf>,
    ca: Option<LoadBalancerCa>,
}

impl CaSlot {
    fn tls_for(&mut self, hosts: &[String]) -> Result<ServerTls, String> {
        if self.ca.is_none() {
            let ca = match &self.dir {
                Some(dir) => kept_ca(dir).map_err(|e| e.to_string())?,
                None => LoadBalancerCa::generate().map_err(|e| e.to_string())?,
            };
            self.ca = Some(ca);
        }
        let ca = self.ca.as_ref().ok_or("no certificate authority")?;
        let (cert, key) = ca.issue(hosts).map_err(|e| e.to_string())?;
        ServerTls::from_pem(&cert, &key).map_err(|e| e.to_string())
    }
}

/// An IngressGroup: explicit (`group.name`, across namespaces) or implicit (one Ingress).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum GroupKey {
    Explicit(String),
    Implicit(String, String),
}

#[derive(Default)]
struct Served {
    listeners: HashMap<u16, HttpListener>,
    /// The hosts each HTTPS listener's certificate was issued for.
    certified: HashMap<u16, Vec<String>>,
    /// Events already given, by member uid and message.
    reported: Vec<(String, String)>,
}

fn is_alb(ing: &Value) -> bool {
    spec_of(ing).ingress_class_name.as_deref() == Some(CLASS)
        || annotation(ing, CLASS_ANNOTATION) == Some(CLASS)
}

/// A stored Ingress's spec, typed (empty when it does not decode: the Ingress then asks for
/// nothing, and the log says why). The members stay stored JSON for their metadata (the ALB
/// annotations, borrowed) and their events.
fn spec_of(ing: &Value) -> IngressSpec {
    decode_or_log::<Ingress>(ing)
        .and_then(|i| i.spec)
        .unwrap_or_default()
}

fn annotation<'a>(ing: &'a Value, key: &str) -> Option<&'a str> {
    annotation_of(ing, key)
}

fn group_key(ing: &Value) -> GroupKey {
    match annotation(ing, GROUP_NAME).filter(|n| !n.is_empty()) {
        Some(name) => GroupKey::Explicit(name.to_string()),
        None => GroupKey::Implicit(namespace_of(ing).to_string(), name_of(ing).to_string()),
    }
}

/// `namespace/name`, as the controller prints an Ingress in its messages.
fn key_of(ing: &Value) -> String {
    format!("{}/{}", namespace_of(ing), name_of(ing))
}

fn group_order(ing: &Value) -> i64 {
    annotation(ing, GROUP_ORDER)
        .and_then(|o| o.trim().parse().ok())
        .unwrap_or(0)
}

/// Members in the controller's order: `group.order`, then `namespace/name`.
fn sort_members(members: &mut [&Value]) {
    members.sort_by_key(|m| (group_order(m), key_of(m)));
}

/// Why a group's model was not built or deployed: the event's reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelError {
    reason: &'static str,
    message: String,
}

fn build_error(cause: impl std::fmt::Display) -> ModelError {
    ModelError {
        reason: "FailedBuildModel",
        message: format!("Failed build model due to {cause}"),
    }
}

/// One listener of a group's ALB.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ListenerModel {
    /// HTTPS: the hosts its certificate is for.
    tls_hosts: Option<Vec<String>>,
    routes: HttpRoutes,
}

fn sync(objects: &Objects, listen: bool, served: &mut HashMap<GroupKey, Served>, ca: &mut CaSlot) {
    let Ok((ingresses, _)) = objects.list(resource("networking.k8s.io", "ingresses"), None) else {
        return;
    };
    let Ok((services, _)) = objects.list(resource("", "services"), None) else {
        return;
    };
    let Ok(slices) = typed::list::<EndpointSlice>(objects, None) else {
        return;
    };
    let services: Vec<Service> = services
        .iter()
        .filter_map(|s| decode_or_log(&s.value))
        .collect();
    let services: HashMap<(&str, &str), &Service> = services
        .iter()
        .map(|s| {
            let m = &s.metadata;
            let key = (
                m.namespace.as_deref().unwrap_or(""),
                m.name.as_deref().unwrap_or(""),
            );
            (key, s)
        })
        .collect();
    let slices: Vec<&EndpointSlice> = slices.iter().collect();
    let cluster = Cluster {
        services: &services,
        slices: &slices,
    };
    let mut groups: BTreeMap<GroupKey, Vec<&Value>> = BTreeMap::new();
    for object in &ingresses {
        let ing = &object.value;
        if is_alb(ing) && !is_deleting(ing) {
            groups.entry(group_key(ing)).or_default().push(ing);
        }
    }
    // Groups gone close their listeners first, so their ports are free for the others.
    served.retain(|k, _| groups.contains_key(k));
    for (key, mut members) in groups {
        sort_members(&mut members);
        let entry = served.entry(key).or_default();
        let model = match build_group(&members, &cluster) {
            Ok(m) => m,
            Err(e) => {
                for m in &members {
                    let uid = uid_of(m).to_string();
                    let seen = (uid, e.message.clone());
                    if !entry.reported.contains(&seen) {
                        emit(
                            objects,
                            m,
                            EventType::Warning,
                            e.reason,
                            &e.message,
                            COMPONENT,
                        );
                        entry.reported.push(seen);
                    }
                }
                entry.listeners.clear();
                entry.certified.clear();
                continue;
            }
        };
        if listen {
            entry.listeners.retain(|p, _| model.contains_key(p));
            entry.certified.retain(|p, _| model.contains_key(p));
            for (port, listener) in model {
                if !entry.listeners.contains_key(&port)
                    && let Some(l) = open(objects, members[0], port)
                {
                    entry.listeners.insert(port, l);
                }
                let Some(l) = entry.listeners.get(&port) else {
                    continue;
                };
                match &listener.tls_hosts {
                    Some(hosts) if entry.certified.get(&port) != Some(hosts) => {
                        match ca.tls_for(hosts) {
                            Ok(tls) => {
                                l.set_tls(Some(tls));
                                entry.certified.insert(port, hosts.clone());
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, port, "issuing a load balancer's certificate");
                                continue;
                            }
                        }
                    }
                    Some(_) => {}
                    None => {
                        if l.is_tls() {
                            l.set_tls(None);
                        }
                        entry.certified.remove(&port);
                    }
                }
                if l.routes() != listener.routes {
                    l.set_routes(listener.routes);
                }
            }
        }
        for ing in members {
            set_address(objects, ing);
        }
    }
}

/// The Ingress's `status.loadBalancer` as this controller writes it.
fn our_address() -> IngressLoadBalancerStatus {
    IngressLoadBalancerStatus {
        ingress: Some(vec![IngressLoadBalancerIngress {
            hostname: Some(INGRESS_HOSTNAME.to_string()),
            ..IngressLoadBalancerIngress::default()
        }]),
    }
}

fn set_address(objects: &Objects, ing: &Value) {
    let want = our_address();
    let current = decode_or_log::<Ingress>(ing);
    let has = current
        .as_ref()
        .and_then(|i| i.status.as_ref())
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref());
    if has == want.ingress.as_ref() {
        return;
    }
    let result = typed::to_json(&want).and_then(|want| {
        objects.update_status_field(
            resource("networking.k8s.io", "ingresses"),
            namespace_of(ing),
            name_of(ing),
            "loadBalancer",
            &want,
        )
    });
    match result {
        Ok(_) => emit(
            objects,
            ing,
            EventType::Normal,
            "SuccessfullyReconciled",
            "Successfully reconciled",
            COMPONENT,
        ),
        Err(e) => tracing::debug!(error = %e, "writing an Ingress's status"),
    }
}

fn open(objects: &Objects, ing: &Value, port: u16) -> Option<HttpListener> {
    match HttpListener::bind(port) {
        Ok(l) => Some(l),
        Err(e) => {
            let (l, message) = match HttpListener::bind_any() {
                Ok(l) => {
                    let m = format!(
                        "127.0.0.1:{port} is not available on this host ({}): listener port \
                         {port} of the load balancer listens on {} instead",
                        lower(&e),
                        l.addr()
                    );
                    (Some(l), m)
                }
                Err(e2) => (
                    None,
                    format!(
                        "no port for listener port {port} on this host: {}",
                        lower(&e2)
                    ),
                ),
            };
            emit(
                objects,
                ing,
                EventType::Warning,
                "LoadBalancerPortTaken",
                &message,
                COMPONENT,
            );
            l
        }
    }
}

fn lower(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// What the model is built from: the cluster's Services and EndpointSlices.
struct Cluster<'a> {
    services: &'a HashMap<(&'a str, &'a str), &'a Service>,
    slices: &'a [&'a EndpointSlice],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http,
    Https,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
        })
    }
}

/// One member's listen port: its protocol and whether it brings a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PortConfig {
    protocol: Protocol,
    has_certificate: bool,
}

/// A JSON object's field the way Go's `encoding/json` finds it: case-insensitively.
fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    v.as_object()
        .and_then(|o| {
            o.get(key).or_else(|| {
                o.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
                    .map(|(_, v)| v)
            })
        })
        .unwrap_or(&NULL)
}

/// serde_json's complaint in the words of Go's `encoding/json`, which the controller prints.
fn go_json_error(raw: &str, e: &serde_json::Error) -> String {
    if e.is_eof() {
        return "unexpected end of JSON input".into();
    }
    if e.is_syntax() {
        let offset: usize = raw
            .split_inclusive('\n')
            .take(e.line().saturating_sub(1))
            .map(str::len)
            .sum::<usize>()
            + e.column().saturating_sub(1);
        if let Some(c) = raw.get(offset..).and_then(|rest| rest.chars().next()) {
            // Inside `true`, `false` or `null`, Go names the literal and the letter it wanted.
            let before = &raw[..offset];
            let start = before
                .rfind(|ch: char| !ch.is_ascii_alphabetic())
                .map_or(0, |i| i + 1);
            let word = &before[start..];
            if let Some(literal) = ["true", "false", "null"]
                .into_iter()
                .find(|l| !word.is_empty() && l.starts_with(word) && l.len() > word.len())
            {
                let expecting = &literal[word.len()..=word.len()];
                return format!(
                    "invalid character '{c}' in literal {literal} (expecting '{expecting}')"
                );
            }
            return format!("invalid character '{c}' looking for beginning of value");
        }
    }
    let text = e.to_string();
    text.split(" at line ").next().unwrap_or(&text).to_string()
}

/// A JSON annotation (`alb.ingress.kubernetes.io/<suffix>`), parsed; `None` when absent.
fn json_annotation(ing: &Value, suffix: &str) -> Result<Option<Value>, String> {
    let key = format!("{PREFIX}{suffix}");
    let Some(raw) = annotation(ing, &key) else {
        return Ok(None);
    };
    serde_json::from_str(raw).map(Some).map_err(|e| {
        format!(
            "failed to parse json annotation, {key}: {raw}: {}",
            go_json_error(raw, &e)
        )
    })
}

/// The Ingress's listen ports, as `computeIngressListenPortConfigByPort` makes them.
fn listen_config(ing: &Value) -> Result<BTreeMap<u16, PortConfig>, String> {
    let explicit_certs = annotation(ing, CERTIFICATE_ARN)
        .map(|a| a.split(',').map(str::trim).any(|c| !c.is_empty()))
        .unwrap_or(false);
    let mut ports = BTreeMap::new();
    match annotation(ing, LISTEN_PORTS) {
        None if explicit_certs => {
            ports.insert(443, Protocol::Https);
        }
        None => {
            ports.insert(80, Protocol::Http);
        }
        Some(raw) => {
            let entries: Vec<BTreeMap<String, Value>> = serde_json::from_str(raw).map_err(|e| {
                format!(
                    "failed to parse listen-ports configuration: `{raw}`: {}",
                    go_json_error(raw, &e)
                )
            })?;
            if entries.is_empty() {
                return Err(format!("empty listen-ports configuration: `{raw}`"));
            }
            for entry in entries {
                for (protocol, port) in entry {
                    let port = port.as_i64().ok_or_else(|| {
                        format!(
                            "failed to parse listen-ports configuration: `{raw}`: json: cannot \
                             unmarshal {} into Go value of type int64",
                            go_type(&port)
                        )
                    })?;
                    let Some(port) = u16::try_from(port).ok().filter(|p| *p >= 1) else {
                        return Err(format!("listen port must be within [1, 65535]: {port}"));
                    };
                    let protocol = match protocol.as_str() {
                        "HTTP" => Protocol::Http,
                        "HTTPS" => Protocol::Https,
                        other => {
                            return Err(format!(
                                "listen protocol must be within [HTTP, HTTPS]: {other}"
                            ));
                        }
                    };
                    ports.insert(port, protocol);
                }
            }
        }
    }
    let mut has_certificate = explicit_certs;
    if !explicit_certs && ports.values().any(|p| *p == Protocol::Https) {
        // The controller looks for ACM certificates of the Ingress's hosts; the local stand-in
        // for ACM holds one for each host named in `spec.tls`.
        let spec = spec_of(ing);
        let tls_hosts = tls_hosts(&spec);
        for host in ingress_hosts(&spec) {
            if !tls_hosts.iter().any(|d| domain_matches_host(d, &host)) {
                return Err(format!("no certificate found for host: {host}"));
            }
            has_certificate = true;
        }
    }
    Ok(ports
        .into_iter()
        .map(|(port, protocol)| {
            (
                port,
                PortConfig {
                    protocol,
                    has_certificate: protocol == Protocol::Https && has_certificate,
                },
            )
        })
        .collect())
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        _ => "number",
    }
}

fn tls_hosts(spec: &IngressSpec) -> Vec<String> {
    spec.tls
        .iter()
        .flatten()
        .flat_map(|t| t.hosts.iter().flatten())
        .cloned()
        .collect()
}

/// The hosts of the rules and of `spec.tls`, sorted and distinct.
fn ingress_hosts(spec: &IngressSpec) -> BTreeSet<String> {
    spec.rules
        .iter()
        .flatten()
        .filter_map(|r| r.host.as_deref())
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .chain(tls_hosts(spec))
        .collect()
}

/// ACM's domain matching: `*.example.com` covers one label.
fn domain_matches_host(domain: &str, host: &str) -> bool {
    match domain.strip_prefix("*.") {
        Some(rest) => host
            .split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => domain == host,
    }
}

/// The group's ALB: its listeners by port.
fn build_group(
    members: &[&Value],
    cluster: &Cluster,
) -> Result<BTreeMap<u16, ListenerModel>, ModelError> {
    let mut configs: BTreeMap<u16, Vec<(usize, PortConfig)>> = BTreeMap::new();
    for (i, ing) in members.iter().enumerate() {
        let ports = listen_config(ing)
            .map_err(|e| build_error(format!("ingress: {}: {e}", key_of(ing))))?;
        for (port, config) in ports {
            configs.entry(port).or_default().push((i, config));
        }
    }
    let mut merged = BTreeMap::new();
    for (port, list) in &configs {
        let mut by_key: Vec<&(usize, PortConfig)> = list.iter().collect();
        by_key.sort_by_key(|(i, _)| key_of(members[*i]));
        let (first, first_config) = by_key[0];
        for (other, config) in &by_key[1..] {
            if config.protocol != first_config.protocol {
                return Err(build_error(format!(
                    "failed to merge listPort config for port: {port}: conflicting protocol, \
                     {}: {} | {}: {}",
                    key_of(members[*first]),
                    first_config.protocol,
                    key_of(members[*other]),
                    config.protocol
                )));
            }
        }
        let has_certificate = list.iter().any(|(_, c)| c.has_certificate);
        merged.insert(*port, (first_config.protocol, has_certificate));
    }
    // `ssl-redirect` is one setting for the whole group.
    let ssl_redirect = members
        .iter()
        .find_map(|m| annotation(m, SSL_REDIRECT))
        .map(|v| {
            // Go's strconv words, which the controller passes on.
            v.parse::<u16>().map_err(|_| {
                build_error(format!(
                    "failed to parse int64 annotation, {SSL_REDIRECT}: {v}: strconv.ParseInt: \
                     parsing \"{v}\": invalid syntax"
                ))
            })
        })
        .transpose()?;
    let mut listeners = BTreeMap::new();
    for (port, (protocol, has_certificate)) in merged {
        let on_port: Vec<&Value> = configs[&port].iter().map(|(i, _)| members[*i]).collect();
        if protocol == Protocol::Https && !has_certificate {
            return Err(ModelError {
                reason: "FailedDeployModel",
                message: "Failed deploy model due to operation error Elastic Load Balancing v2: \
                          CreateListener, https response error StatusCode: 400, api error \
                          ValidationError: A certificate must be specified for HTTPS listeners"
                    .into(),
            });
        }
        let routes = match ssl_redirect {
            Some(to) if protocol == Protocol::Http => HttpRoutes {
                rules: Vec::new(),
                default: Action::Redirect(Redirect {
                    protocol: "HTTPS".into(),
                    port: to.to_string(),
                    ..Redirect::keeping(301)
                }),
            },
            _ => HttpRoutes {
                rules: listener_rules(&on_port, cluster)?,
                default: default_action(&on_port, cluster)?,
            },
        };
        let tls_hosts = (protocol == Protocol::Https).then(|| {
            on_port
                .iter()
                .flat_map(|m| ingress_hosts(&spec_of(m)))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        });
        listeners.insert(port, ListenerModel { tls_hosts, routes });
    }
    Ok(listeners)
}

fn default_action(members: &[&Value], cluster: &Cluster) -> Result<Action, ModelError> {
    let with_default: Vec<(&Value, IngressBackend)> = members
        .iter()
        .filter_map(|m| Some((*m, spec_of(m).default_backend?)))
        .collect();
    match with_default.as_slice() {
        [] => Ok(Action::not_found()),
        [(ing, default)] => backend(ing, default, cluster)
            .map(|(_, action)| action)
            .map_err(build_error),
        many => Err(build_error(format!(
            "multiple ingress defined default backend: [{}]",
            many.iter()
                .map(|(m, _)| key_of(m))
                .collect::<Vec<_>>()
                .join(" ")
        ))),
    }
}

/// The listener's rules, in the controller's priority order.
fn listener_rules(members: &[&Value], cluster: &Cluster) -> Result<Vec<HttpRule>, ModelError> {
    let mut rules = Vec::new();
    for ing in members {
        let wrap = |e: String| build_error(format!("ingress: {}: {e}", key_of(ing)));
        for rule in spec_of(ing).rules.iter().flatten() {
            let Some(http) = rule.http.as_ref() else {
                continue;
            };
            for path in sort_paths(&http.paths).map_err(build_error)? {
                let (extra, action) = backend(ing, &path.backend, cluster).map_err(wrap)?;
                let conditions = rule_conditions(rule, path, extra).map_err(wrap)?;
                rules.push(HttpRule { conditions, action });
            }
        }
    }
    Ok(rules)
}

/// `Exact` paths, then `Prefix` ones longest first, then the rest in their order.
fn sort_paths(paths: &[HTTPIngressPath]) -> Result<Vec<&HTTPIngressPath>, String> {
    let (mut exact, mut prefix, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    for p in paths {
        match p.path_type.as_str() {
            "Exact" => exact.push(p),
            "Prefix" => prefix.push(p),
            "ImplementationSpecific" => rest.push(p),
            _ => {
                return Err(format!(
                    "unknown pathType for path {}",
                    p.path.as_deref().unwrap_or("")
                ));
            }
        }
    }
    prefix.sort_by_key(|p| std::cmp::Reverse(p.path.as_deref().unwrap_or("").len()));
    exact.extend(prefix);
    exact.extend(rest);
    Ok(exact)
}

/// The ALB path patterns of an Ingress path.
fn path_patterns(path: &str, path_type: Option<&str>) -> Result<Vec<String>, String> {
    match path_type {
        Some("Exact") if path.contains(['*', '?']) => {
            Err(format!("exact path shouldn't contain wildcards: {path}"))
        }
        Some("Prefix") if path == "/" => Ok(vec!["/*".into()]),
        Some("Prefix") if path.contains(['*', '?']) => {
            Err(format!("prefix path shouldn't contain wildcards: {path}"))
        }
        Some("Prefix") => {
            let p = path.trim_end_matches('/');
            Ok(vec![p.to_string(), format!("{p}/*")])
        }
        _ => Ok(vec![path.to_string()]),
    }
}

fn rule_conditions(
    rule: &IngressRule,
    path: &HTTPIngressPath,
    extra: Vec<Condition>,
) -> Result<Vec<Condition>, String> {
    let mut hosts: Vec<String> = rule
        .host
        .as_deref()
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .into_iter()
        .collect();
    let mut paths = match path.path.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => path_patterns(p, Some(path.path_type.as_str()))?,
        None => Vec::new(),
    };
    let mut conditions = Vec::new();
    for c in extra {
        match c {
            Condition::Host(values) => hosts.extend(values),
            Condition::Path(values) => paths.extend(values),
            other => conditions.push(other),
        }
    }
    if !hosts.is_empty() {
        conditions.push(Condition::Host(hosts));
    }
    if !paths.is_empty() {
        conditions.push(Condition::Path(paths));
    }
    if conditions.is_empty() {
        conditions.push(Condition::Path(vec!["/*".into()]));
    }
    Ok(conditions)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, bits) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

/// `conditions.<service>`: the rule's extra conditions, validated as the controller does.
fn annotation_conditions(ing: &Value, service: &str) -> Result<Vec<Condition>, String> {
    let Some(raw) = json_annotation(ing, &format!("conditions.{service}"))? else {
        return Ok(Vec::new());
    };
    let Some(list) = raw.as_array() else {
        return Err(format!(
            "failed to parse json annotation, {PREFIX}conditions.{service}: {raw}: json: cannot \
             unmarshal {} into Go value of type []ingress.RuleCondition",
            go_type(&raw)
        ));
    };
    let mut out = Vec::new();
    for c in list {
        let config = |name: &str| -> Result<&Value, String> {
            let v = field(c, name);
            if v.is_null() {
                return Err(format!("missing {name}"));
            }
            if field(v, "values").as_array().is_none_or(Vec::is_empty) {
                let what = if name == "queryStringConfig" {
                    "Values"
                } else {
                    "values"
                };
                return Err(format!("invalid {name}: {what} cannot be empty"));
            }
            Ok(v)
        };
        let condition = match field(c, "field").as_str().unwrap_or("") {
            "host-header" => Condition::Host(strings(field(config("hostHeaderConfig")?, "values"))),
            "path-pattern" => {
                Condition::Path(strings(field(config("pathPatternConfig")?, "values")))
            }
            "http-header" => {
                let v = config("httpHeaderConfig")?;
                Condition::Header {
                    name: field(v, "httpHeaderName")
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    values: strings(field(v, "values")),
                }
            }
            "http-request-method" => {
                Condition::Method(strings(field(config("httpRequestMethodConfig")?, "values")))
            }
            "query-string" => {
                let mut pairs = Vec::new();
                for pair in field(config("queryStringConfig")?, "values")
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let value = field(pair, "value").as_str().unwrap_or("");
                    if value.is_empty() {
                        return Err("value cannot be empty".into());
                    }
                    pairs.push((
                        field(pair, "key").as_str().map(str::to_string),
                        value.to_string(),
                    ));
                }
                Condition::Query(pairs)
            }
            "source-ip" => Condition::SourceIp(
                strings(field(config("sourceIPConfig")?, "values"))
                    .iter()
                    .filter_map(|s| parse_cidr(s))
                    .collect(),
            ),
            // Fields the controller does not know are passed over.
            _ => continue,
        };
        out.push(condition);
    }
    Ok(out)
}

/// The fixed 503 the controller puts where a backend is missing.
fn missing(what: &str) -> Action {
    Action::Fixed {
        status: 503,
        content_type: Some("text/plain".into()),
        body: Some(what.into()),
    }
}

/// A backend's extra conditions and action, as the controller's enhanced backend builder
/// makes them.
fn backend(
    ing: &Value,
    backend: &IngressBackend,
    cluster: &Cluster,
) -> Result<(Vec<Condition>, Action), String> {
    let Some(service) = backend.service.as_ref() else {
        return Err("missing required \"service\" field".into());
    };
    let name = service.name.as_str();
    let conditions = annotation_conditions(ing, name)?;
    let port = service.port.as_ref();
    let port_name = port.and_then(|p| p.name.as_deref());
    let action = if port_name == Some(USE_ANNOTATION) {
        match json_annotation(ing, &format!("actions.{name}"))? {
            None => missing("Backend action does not exist"),
            Some(action) => annotation_action(ing, name, &action, cluster)?,
        }
    } else {
        // A name or a number, as the annotations' actions give a port too.
        let wanted = match (port_name, port.and_then(|p| p.number)) {
            (Some(n), _) => Value::String(n.to_string()),
            (None, Some(n)) => Value::from(n),
            (None, None) => Value::Null,
        };
        match cluster.services.get(&(namespace_of(ing), name)) {
            None => missing("Backend service does not exist"),
            Some(svc) => Action::forward(targets(ing, svc, &wanted, cluster)?),
        }
    };
    Ok((conditions, action))
}

fn annotation_action(
    ing: &Value,
    name: &str,
    action: &Value,
    cluster: &Cluster,
) -> Result<Action, String> {
    let string_field = |config: &Value, key: &str, owner: &str| -> Result<Option<String>, String> {
        match field(config, key) {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            other => Err(format!(
                "failed to parse json annotation, {PREFIX}actions.{name}: {action}: json: cannot \
                 unmarshal {} into Go struct field {owner}.{key} of type string",
                go_type(other)
            )),
        }
    };
    match field(action, "type").as_str().unwrap_or("") {
        "fixed-response" => {
            let config = field(action, "fixedResponseConfig");
            if config.is_null() {
                return Err("missing FixedResponseConfig".into());
            }
            let owner = "FixedResponseActionConfig";
            let status = string_field(config, "statusCode", owner)?.unwrap_or_default();
            if status.is_empty() {
                return Err("invalid FixedResponseConfig: statusCode is required".into());
            }
            Ok(Action::Fixed {
                status: status.parse().unwrap_or(503),
                content_type: string_field(config, "contentType", owner)?,
                body: string_field(config, "messageBody", owner)?,
            })
        }
        "redirect" => {
            let config = field(action, "redirectConfig");
            if config.is_null() {
                return Err("missing RedirectConfig".into());
            }
            let owner = "RedirectActionConfig";
            let status = string_field(config, "statusCode", owner)?.unwrap_or_default();
            if status.is_empty() {
                return Err("invalid RedirectConfig: statusCode is required".into());
            }
            let keep = Redirect::keeping(if status == "HTTP_302" { 302 } else { 301 });
            Ok(Action::Redirect(Redirect {
                protocol: string_field(config, "protocol", owner)?.unwrap_or(keep.protocol),
                host: string_field(config, "host", owner)?.unwrap_or(keep.host),
                port: string_field(config, "port", owner)?.unwrap_or(keep.port),
                path: string_field(config, "path", owner)?.unwrap_or(keep.path),
                query: string_field(config, "query", owner)?.unwrap_or(keep.query),
                status: keep.status,
            }))
        }
        "forward" => {
            let arn = field(action, "targetGroupARN");
            let config = field(action, "forwardConfig");
            if arn.is_null() == config.is_null() {
                return Err(
                    "precisely one of TargetGroupArn and ForwardConfig can be specified".into(),
                );
            }
            if !arn.is_null() {
                // A target group made outside the cluster: nothing here registers targets in it.
                return Ok(Action::forward(Vec::new()));
            }
            let tuples: Vec<&Value> = field(config, "targetGroups")
                .as_array()
                .into_iter()
                .flatten()
                .collect();
            for t in &tuples {
                if field(t, "targetGroupARN").is_null() == field(t, "serviceName").is_null() {
                    return Err(
                        "invalid ForwardConfig: invalid TargetGroupTuple: precisely one of \
                                targetGroupARN and serviceName can be specified"
                            .into(),
                    );
                }
                if !field(t, "serviceName").is_null() && field(t, "servicePort").is_null() {
                    return Err(
                        "invalid ForwardConfig: invalid TargetGroupTuple: missing servicePort"
                            .into(),
                    );
                }
            }
            if tuples.len() > 1 && tuples.iter().any(|t| field(t, "weight").is_null()) {
                return Err(
                    "invalid ForwardConfig: weight must be set when route to multiple target groups"
                        .into(),
                );
            }
            let services: BTreeSet<&str> = tuples
                .iter()
                .filter_map(|t| field(t, "serviceName").as_str())
                .collect();
            let mut groups = Vec::new();
            for t in &tuples {
                let weight = field(t, "weight")
                    .as_u64()
                    .map_or(1, |w| u32::try_from(w).unwrap_or(u32::MAX));
                let Some(svc_name) = field(t, "serviceName").as_str() else {
                    groups.push(TargetGroup {
                        targets: Vec::new(),
                        weight,
                    });
                    continue;
                };
                let Some(svc) = cluster.services.get(&(namespace_of(ing), svc_name)) else {
                    if tuples.len() == 1 && services.len() == 1 {
                        return Ok(missing("Backend service does not exist"));
                    }
                    return Err(format!("services \"{svc_name}\" not found"));
                };
                // Ports written as strings of digits are numbers (the old controller's form).
                let port = match field(t, "servicePort") {
                    Value::String(s) => s.parse::<u64>().map_or_else(|_| json!(s), |n| json!(n)),
                    other => other.clone(),
                };
                groups.push(TargetGroup {
                    targets: targets(ing, svc, &port, cluster)?,
                    weight,
                });
            }
            let sticky = field(field(config, "targetGroupStickinessConfig"), "enabled")
                .as_bool()
                .unwrap_or(false);
            Ok(Action::Forward { groups, sticky })
        }
        other => Err(format!("unknown action type: {other}")),
    }
}

/// The target group's targets for a Service port (a number or a name).
fn targets(
    ing: &Value,
    svc: &Service,
    wanted: &Value,
    cluster: &Cluster,
) -> Result<Vec<SocketAddr>, String> {
    let ns = svc.metadata.namespace.as_deref().unwrap_or("");
    let name = svc.metadata.name.as_deref().unwrap_or("");
    let spec = svc.spec.as_ref();
    let port = spec
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .find(|p| match wanted {
            Value::Number(n) => n.as_u64().is_some() && n.as_i64() == Some(i64::from(p.port)),
            Value::String(w) => p.name.as_deref() == Some(w.as_str()),
            _ => false,
        });
    let Some(port) = port else {
        let shown = wanted.as_u64().map_or_else(
            || wanted.as_str().unwrap_or("").to_string(),
            |n| n.to_string(),
        );
        return Err(format!(
            "unable to find port {shown} on service {ns}/{name}"
        ));
    };
    // Annotations on the Service win over the Ingress's.
    let target_type = svc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TARGET_TYPE))
        .map(String::as_str)
        .or_else(|| annotation(ing, TARGET_TYPE))
        .unwrap_or("instance");
    match target_type {
        "ip" => {
            let own: Vec<&EndpointSlice> = cluster
                .slices
                .iter()
                .copied()
                .filter(|s| {
                    s.metadata.namespace.as_deref() == Some(ns)
                        && s.metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get("kubernetes.io/service-name"))
                            .map(String::as_str)
                            == Some(name)
                })
                .collect();
            Ok(ready_backends(&own, port))
        }
        "instance" => {
            let kind = spec.and_then(|s| s.type_.as_deref()).unwrap_or("ClusterIP");
            if kind != "NodePort" && kind != "LoadBalancer" {
                return Err(
                    "TargetGroup port is empty. When using Instance targets, your service \
                            be must of type 'NodePort' or 'LoadBalancer'"
                        .into(),
                );
            }
            // Fargate nodes are never instance targets.
            Ok(Vec::new())
        }
        other => Err(format!("unknown targetType: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_balancer_ca_is_kept_in_the_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let ca = kept_ca(dir.path()).unwrap();
        let again = kept_ca(dir.path()).unwrap();
        assert_eq!(ca.cert_pem, again.cert_pem);
        assert_eq!(
            std::fs::read_to_string(dir.path().join(CA_CERT_FILE)).unwrap(),
            ca.cert_pem
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(CA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    use localfargate_runtime::http_proxy::RequestFacts;

    fn svc(name: &str) -> Service {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default", "annotations": {TARGET_TYPE: "ip"}},
               "spec": {"type": "ClusterIP", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}))
        .unwrap()
    }

    fn ing(name: &str, annotations: Value, spec: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "annotations": annotations}, "spec": spec})
    }

    fn path(p: &str, kind: &str, service: &str, port: Value) -> Value {
        json!({"path": p, "pathType": kind, "backend": {"service": {"name": service, "port": port}}})
    }

    fn facts(host: &str, path: &str) -> RequestFacts {
        RequestFacts {
            host: host.into(),
            path: path.into(),
            method: "GET".into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_instance_refusal_and_a_missing_service() {
        let plain = ing(
            "web",
            json!({}),
            json!({"ingressClassName": "alb", "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}),
        );
        assert!(is_alb(&plain));
        let mut web = svc("web");
        web.metadata.annotations = Some(BTreeMap::new());
        let services = HashMap::from([(("default", "web"), &web)]);
        let cluster = Cluster {
            services: &services,
            slices: &[],
        };
        let err = build_group(&[&plain], &cluster).unwrap_err();
        assert_eq!(err.reason, "FailedBuildModel");
        assert_eq!(
            err.message,
            "Failed build model due to TargetGroup port is empty. When using Instance targets, \
             your service be must of type 'NodePort' or 'LoadBalancer'"
        );
        // A Service that does not exist: the controller's fixed 503.
        let gone = ing(
            "gone",
            json!({}),
            json!({"rules": [{"http": {"paths": [path("/", "Prefix", "nope", json!({"number": 80}))]}}]}),
        );
        let model = build_group(&[&gone], &cluster).unwrap();
        assert_eq!(
            model[&80].routes.rules[0].action,
            missing("Backend service does not exist")
        );
    }

    #[test]
    fn group_members_are_ordered_by_group_order_then_name() {
        let group = |order: Option<&str>| {
            let mut a = json!({GROUP_NAME: "shop"});
            if let Some(o) = order {
                a[GROUP_ORDER] = json!(o);
            }
            a
        };
        let spec = |svc: &str| json!({"rules": [{"http": {"paths": [path("/", "Prefix", svc, json!({"number": 80}))]}}]});
        let a = ing("a", group(Some("10")), spec("a"));
        let b = ing("b", group(None), spec("b"));
        let c = ing("c", group(Some("-5")), spec("c"));
        let d = ing("d", group(None), spec("d"));
        assert_eq!(group_key(&a), GroupKey::Explicit("shop".into()));
        assert_eq!(
            group_key(&ing("solo", json!({}), json!({}))),
            GroupKey::Implicit("default".into(), "solo".into())
        );
        let mut members = vec![&a, &d, &b, &c];
        sort_members(&mut members);
        let names: Vec<&str> = members.iter().map(|m| name_of(m)).collect();
        assert_eq!(names, ["c", "b", "d", "a"]);
    }

    #[test]
    fn paths_are_sorted_and_rules_keep_the_ingress_order() {
        let web = svc("web");
        let services = HashMap::from([(("default", "web"), &web)]);
        let cluster = Cluster {
            services: &services,
            slices: &[],
        };
        let fixed = |body: &str| {
            json!(format!(
                "{{\"type\":\"fixed-response\",\"fixedResponseConfig\":{{\"contentType\":\"text/plain\",\"statusCode\":\"200\",\"messageBody\":\"{body}\"}}}}"
            ))
        };
        let use_annotation = json!({"name": USE_ANNOTATION});
        let x = ing(
            "x",
            json!({"alb.ingress.kubernetes.io/actions.root": fixed("root"),
                   "alb.ingress.kubernetes.io/actions.api": fixed("api"),
                   "alb.ingress.kubernetes.io/actions.health": fixed("health"),
                   "alb.ingress.kubernetes.io/actions.img": fixed("img")}),
            json!({"rules": [
                {"http": {"paths": [
                    path("/img/*.png", "ImplementationSpecific", "img", use_annotation.clone()),
                    path("/", "Prefix", "root", use_annotation.clone()),
                    path("/api", "Prefix", "api", use_annotation.clone()),
                    path("/api/health", "Exact", "health", use_annotation.clone())]}},
                {"host": "shop.example.com", "http": {"paths": [path("/", "Prefix", "web", json!({"name": "http"}))]}}]}),
        );
        let model = build_group(&[&x], &cluster).unwrap();
        let routes = &model[&80].routes;
        let answer = |host: &str, p: &str| match routes.action(&facts(host, p)) {
            Action::Fixed { body, .. } => body.clone().unwrap_or_default(),
            Action::Forward { .. } => "forward".into(),
            Action::Redirect(_) => "redirect".into(),
        };
        assert_eq!(answer("localhost", "/api/health"), "health");
        assert_eq!(answer("localhost", "/api/users"), "api");
        assert_eq!(answer("localhost", "/api"), "api");
        assert_eq!(answer("localhost", "/apix"), "root");
        // The prefix `/` comes before the pattern, as the controller sorts them.
        assert_eq!(answer("localhost", "/img/a.png"), "root");
        // The host-less rule is first: the controller keeps the Ingress's order.
        assert_eq!(answer("shop.example.com", "/"), "root");
        assert_eq!(
            routes.rules[0].conditions,
            [Condition::Path(vec!["/api/health".into()])]
        );
        assert_eq!(
            routes.rules[1].conditions,
            [Condition::Path(vec!["/api".into(), "/api/*".into()])]
        );
        assert_eq!(routes.default, Action::not_found());
    }

    #[test]
    fn conditions_and_actions_from_annotations() {
        let web = svc("web");
        let canary = svc("canary");
        let services =
            HashMap::from([(("default", "web"), &web), (("default", "canary"), &canary)]);
        let cluster = Cluster {
            services: &services,
            slices: &[],
        };
        let x = ing(
            "x",
            json!({
                "alb.ingress.kubernetes.io/conditions.split": r#"[{"field":"http-header","httpHeaderConfig":{"httpHeaderName":"X-Canary","values":["y*"]}},
                    {"field":"query-string","queryStringConfig":{"values":[{"key":"v","value":"2"}]}},
                    {"field":"host-header","hostHeaderConfig":{"values":["*.example.com"]}}]"#,
                "alb.ingress.kubernetes.io/actions.split": r#"{"type":"forward","forwardConfig":{"targetGroups":[
                    {"serviceName":"web","servicePort":"80","weight":20},{"serviceName":"canary","servicePort":"http","weight":80}],
                    "targetGroupStickinessConfig":{"enabled":true,"durationSeconds":60}}}"#,
                "alb.ingress.kubernetes.io/actions.old": r#"{"Type":"redirect","RedirectConfig":{"Path":"/new/#{path}","StatusCode":"HTTP_302"}}"#}),
            json!({"rules": [{"http": {"paths": [
                path("/", "Prefix", "split", json!({"name": USE_ANNOTATION})),
                path("/old", "Prefix", "old", json!({"name": USE_ANNOTATION}))]}}]}),
        );
        let model = build_group(&[&x], &cluster).unwrap();
        let rules = &model[&80].routes.rules;
        assert_eq!(rules[1].conditions.len(), 4);
        let Action::Forward { groups, sticky } = &rules[1].action else {
            panic!("{:?}", rules[1].action)
        };
        assert!(*sticky);
        assert_eq!(
            groups.iter().map(|g| g.weight).collect::<Vec<_>>(),
            [20, 80]
        );
        assert_eq!(
            rules[0].conditions,
            [Condition::Path(vec!["/old".into(), "/old/*".into()])]
        );
        let mut request = facts("a.example.com", "/");
        request.query = "v=2".into();
        request.headers.insert("x-canary", "yes".parse().unwrap());
        assert!(rules[1].conditions.iter().all(|c| c.matches(&request)));
        request.query = "v=3".into();
        assert!(!rules[1].conditions.iter().all(|c| c.matches(&request)));
        let Action::Redirect(r) = &rules[0].action else {
            panic!("{:?}", rules[0].action)
        };
        assert_eq!(r.status, 302);
        assert_eq!(
            r.location(&facts("shop.example.com", "/old/a"), "HTTP", 8080),
            "http://shop.example.com:8080/new/old/a"
        );
    }

    #[test]
    fn the_controllers_errors() {
        let cluster = Cluster {
            services: &HashMap::new(),
            slices: &[],
        };
        let bad = ing(
            "bad",
            json!({"alb.ingress.kubernetes.io/actions.x": "{\"type\": fixed}"}),
            json!({"rules": [{"http": {"paths": [path("/", "Prefix", "x", json!({"name": USE_ANNOTATION}))]}}]}),
        );
        assert_eq!(
            build_group(&[&bad], &cluster).unwrap_err().message,
            "Failed build model due to ingress: default/bad: failed to parse json annotation, \
             alb.ingress.kubernetes.io/actions.x: {\"type\": fixed}: invalid character 'i' in \
             literal false (expecting 'a')"
        );
        let truncated = ing(
            "t",
            json!({"alb.ingress.kubernetes.io/conditions.x": "[{"}),
            json!({"rules": [{"http": {"paths": [path("/", "Prefix", "x", json!({"number": 80}))]}}]}),
        );
        assert!(
            build_group(&[&truncated], &cluster)
                .unwrap_err()
                .message
                .ends_with("conditions.x: [{: unexpected end of JSON input")
        );
        // HTTPS without a certificate for the rule's host.
        let https = json!({LISTEN_PORTS: "[{\"HTTPS\": 443}]"});
        let rules = json!([{"host": "api.example.com", "http": {"paths": [path("/", "Prefix", "x", json!({"number": 80}))]}}]);
        let no_cert = ing("s", https.clone(), json!({"rules": rules}));
        assert_eq!(
            build_group(&[&no_cert], &cluster).unwrap_err().message,
            "Failed build model due to ingress: default/s: no certificate found for host: api.example.com"
        );
        let with_tls = ing(
            "s",
            https.clone(),
            json!({"rules": rules, "tls": [{"hosts": ["*.example.com"]}]}),
        );
        let model = build_group(&[&with_tls], &cluster).unwrap();
        assert_eq!(
            model[&443].tls_hosts.as_deref(),
            Some(&["*.example.com".to_string(), "api.example.com".to_string()][..])
        );
        // Two members disagreeing on a port's protocol.
        let a = ing(
            "a",
            json!({GROUP_NAME: "g", LISTEN_PORTS: "[{\"HTTP\": 8443}]"}),
            json!({}),
        );
        let b = ing(
            "b",
            json!({GROUP_NAME: "g", LISTEN_PORTS: "[{\"HTTPS\": 8443}]", CERTIFICATE_ARN: "arn:aws:acm:us-east-1:1:certificate/x"}),
            json!({}),
        );
        assert_eq!(
            build_group(&[&b, &a], &cluster).unwrap_err().message,
            "Failed build model due to failed to merge listPort config for port: 8443: conflicting \
             protocol, default/a: HTTP | default/b: HTTPS"
        );
        // A certificate ARN alone: HTTPS on 443; ssl-redirect turns HTTP into a redirect.
        let redirect = ing(
            "r",
            json!({CERTIFICATE_ARN: "arn:aws:acm:us-east-1:1:certificate/x", LISTEN_PORTS: "[{\"HTTP\": 80}, {\"HTTPS\": 443}]", SSL_REDIRECT: "443"}),
            json!({}),
        );
        let model = build_group(&[&redirect], &cluster).unwrap();
        assert!(model[&443].tls_hosts.is_some());
        let Action::Redirect(r) = &model[&80].routes.default else {
            panic!("{:?}", model[&80].routes.default)
        };
        let mut request = facts("shop.example.com", "/a/b");
        request.query = "q=1".into();
        assert_eq!(
            r.location(&request, "HTTP", 80),
            "https://shop.example.com:443/a/b?q=1"
        );
        assert_eq!(
            listen_config(&ing("c", json!({CERTIFICATE_ARN: "arn"}), json!({}))).unwrap()[&443]
                .protocol,
            Protocol::Https
        );
    }
}
