//! Ingresses of class `alb`, served on the host as the AWS Load Balancer Controller's
//! Application Load Balancer serves them on EKS: an HTTP listener on `127.0.0.1:<port>` per
//! listen port (`alb.ingress.kubernetes.io/listen-ports`, HTTP ones; default 80), or a free
//! port with a `Warning` event when that one is taken, routing by host and path
//! ([`localfargate_runtime::http_proxy`]) to the ready pod IPs behind each backend Service
//! (target type `ip`). The address is written to `status.loadBalancer.ingress` as
//! `[{hostname: localhost}]` (on EKS, the ALB's DNS name).
//!
//! Target type `instance` (the controller's default) needs a NodePort or LoadBalancer Service;
//! with a ClusterIP one the model cannot be built and the controller's event says so, with its
//! words (`FailedBuildModel`). With a NodePort Service it builds, but Fargate nodes are never
//! instance targets, so the target group stays empty and the ALB answers 503, as on EKS.
//!
//! Listeners are opened with the process runtime only; status and events are written with
//! either.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use localfargate_registry::objects::{Objects, name_of, namespace_of, resource};
use localfargate_runtime::RuntimeKind;
use localfargate_runtime::http_proxy::{HttpListener, HttpRoute, HttpRoutes, PathMatch};
use serde_json::{Value, json};

use crate::context::ClusterContext;
use crate::events::{EventType, emit};
use crate::load_balancers::{INGRESS_HOSTNAME, ready_backends};
use crate::wake::{Wake, under};

/// The component the AWS Load Balancer Controller's Ingress events name.
const COMPONENT: &str = "ingress";
const CLASS: &str = "alb";
const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
const TARGET_TYPE: &str = "alb.ingress.kubernetes.io/target-type";
const LISTEN_PORTS: &str = "alb.ingress.kubernetes.io/listen-ports";

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
    let mut served: HashMap<(String, String), Served> = HashMap::new();
    wake.start(&*objects.store, objects.store.revision().unwrap_or(0));
    loop {
        sync(objects, listen, &mut served);
        wake.until(&*objects.store, under(&prefixes)).await;
    }
}

struct Served {
    uid: String,
    listeners: HashMap<u16, HttpListener>,
    reported: Vec<String>,
}

fn is_alb(ing: &Value) -> bool {
    ing["spec"]["ingressClassName"] == CLASS
        || ing["metadata"]["annotations"][CLASS_ANNOTATION] == CLASS
}

/// The HTTP listen ports (`[{"HTTP": 80}, {"HTTPS": 443}]`; HTTPS needs a certificate and is
/// not served here).
fn listen_ports(ing: &Value) -> Vec<u16> {
    let Some(raw) = ing["metadata"]["annotations"][LISTEN_PORTS].as_str() else {
        return vec![80];
    };
    let parsed: Vec<Value> = serde_json::from_str(raw).unwrap_or_default();
    parsed
        .iter()
        .filter_map(|p| p["HTTP"].as_u64())
        .filter_map(|p| u16::try_from(p).ok())
        .collect()
}

fn sync(objects: &Objects, listen: bool, served: &mut HashMap<(String, String), Served>) {
    let Ok((ingresses, _)) = objects.list(resource("networking.k8s.io", "ingresses"), None) else {
        return;
    };
    let Ok((services, _)) = objects.list(resource("", "services"), None) else {
        return;
    };
    let Ok((slices, _)) = objects.list(resource("discovery.k8s.io", "endpointslices"), None) else {
        return;
    };
    let services: HashMap<(&str, &str), &Value> = services
        .iter()
        .map(|s| ((namespace_of(&s.value), name_of(&s.value)), &s.value))
        .collect();
    let mut seen = Vec::new();
    for object in &ingresses {
        let ing = &object.value;
        if !is_alb(ing) || !ing["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        let ns = namespace_of(ing);
        let key = (ns.to_string(), name_of(ing).to_string());
        let uid = ing["metadata"]["uid"].as_str().unwrap_or("").to_string();
        let entry = served.entry(key.clone()).or_insert_with(|| Served {
            uid: uid.clone(),
            listeners: HashMap::new(),
            reported: Vec::new(),
        });
        if entry.uid != uid {
            *entry = Served {
                uid,
                listeners: HashMap::new(),
                reported: Vec::new(),
            };
        }
        seen.push(key);
        let routes = match build(ing, &services, &slices) {
            Ok(r) => r,
            Err(message) => {
                if !entry.reported.contains(&message) {
                    emit(
                        objects,
                        ing,
                        EventType::Warning,
                        "FailedBuildModel",
                        &message,
                        COMPONENT,
                    );
                    entry.reported.push(message);
                }
                entry.listeners.clear();
                continue;
            }
        };
        if listen {
            let ports = listen_ports(ing);
            entry.listeners.retain(|p, _| ports.contains(p));
            for port in ports {
                if !entry.listeners.contains_key(&port)
                    && let Some(l) = open(objects, ing, port)
                {
                    entry.listeners.insert(port, l);
                }
                if let Some(l) = entry.listeners.get(&port)
                    && l.routes() != routes
                {
                    l.set_routes(routes.clone());
                }
            }
        }
        if ing["status"]["loadBalancer"]["ingress"] != json!([{"hostname": INGRESS_HOSTNAME}]) {
            let result = objects.update_with(
                resource("networking.k8s.io", "ingresses"),
                ns,
                name_of(ing),
                true,
                None,
                &mut |current| {
                    let mut next = current.clone();
                    next["status"]["loadBalancer"] =
                        json!({"ingress": [{"hostname": INGRESS_HOSTNAME}]});
                    Ok(next)
                },
            );
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
    }
    served.retain(|k, _| seen.contains(k));
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

/// The routes of an Ingress, or the controller's model-building error.
fn build(
    ing: &Value,
    services: &HashMap<(&str, &str), &Value>,
    slices: &[Arc<localfargate_store::Object>],
) -> Result<HttpRoutes, String> {
    let ns = namespace_of(ing);
    let target = |backend: &Value| -> Result<Vec<SocketAddr>, String> {
        let name = backend["service"]["name"].as_str().unwrap_or("");
        let Some(svc) = services.get(&(ns, name)) else {
            return Err(format!(
                "Failed build model due to services \"{name}\" not found"
            ));
        };
        let wanted = &backend["service"]["port"];
        let port = svc["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| {
                (wanted["number"].is_u64() && p["port"] == wanted["number"])
                    || (wanted["name"].is_string() && p["name"] == wanted["name"])
            });
        let Some(port) = port else {
            return Err(format!(
                "Failed build model due to unable to find port {} on service {ns}/{name}",
                wanted["number"].as_u64().map_or_else(
                    || wanted["name"].as_str().unwrap_or("").to_string(),
                    |n| n.to_string()
                )
            ));
        };
        let target_type = ing["metadata"]["annotations"][TARGET_TYPE]
            .as_str()
            .or_else(|| svc["metadata"]["annotations"][TARGET_TYPE].as_str())
            .unwrap_or("instance");
        match target_type {
            "ip" => {
                let own: Vec<&Value> = slices
                    .iter()
                    .map(|s| &s.value)
                    .filter(|s| {
                        namespace_of(s) == ns
                            && s["metadata"]["labels"]["kubernetes.io/service-name"] == name
                    })
                    .collect();
                Ok(ready_backends(&own, port))
            }
            "instance" => {
                let kind = svc["spec"]["type"].as_str().unwrap_or("ClusterIP");
                if kind != "NodePort" && kind != "LoadBalancer" {
                    return Err(
                        "Failed build model due to TargetGroup port is empty. When using \
                                Instance targets, your service be must of type 'NodePort' or \
                                'LoadBalancer'"
                            .into(),
                    );
                }
                // Fargate nodes are never instance targets.
                Ok(Vec::new())
            }
            other => Err(format!(
                "Failed build model due to unknown targetType: {other}"
            )),
        }
    };
    let mut routes = Vec::new();
    for rule in ing["spec"]["rules"].as_array().into_iter().flatten() {
        let host = rule["host"].as_str().map(str::to_string);
        for p in rule["http"]["paths"].as_array().into_iter().flatten() {
            let path = p["path"].as_str().unwrap_or("/").to_string();
            let path = match p["pathType"].as_str().unwrap_or("ImplementationSpecific") {
                "Exact" => PathMatch::Exact(path),
                "Prefix" => PathMatch::Prefix(path),
                _ => PathMatch::Pattern(path),
            };
            routes.push(HttpRoute {
                host: host.clone(),
                path,
                targets: target(&p["backend"])?,
            });
        }
    }
    let default = match &ing["spec"]["defaultBackend"] {
        Value::Null => None,
        backend => Some(target(backend)?),
    };
    Ok(HttpRoutes { routes, default })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_ports_and_the_instance_refusal() {
        let ing = json!({"metadata": {"namespace": "default", "annotations": {LISTEN_PORTS: "[{\"HTTP\": 8080}, {\"HTTPS\": 443}]"}},
                         "spec": {"ingressClassName": "alb", "rules": [{"http": {"paths": [
                             {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}});
        assert!(is_alb(&ing));
        assert_eq!(listen_ports(&ing), [8080]);
        let svc = json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"type": "ClusterIP", "ports": [{"port": 80, "targetPort": 8080}]}});
        let services = HashMap::from([(("default", "web"), &svc)]);
        let err = build(&ing, &services, &[]).unwrap_err();
        assert_eq!(
            err,
            "Failed build model due to TargetGroup port is empty. When using Instance targets, \
             your service be must of type 'NodePort' or 'LoadBalancer'"
        );
        let mut ip = ing.clone();
        ip["metadata"]["annotations"][TARGET_TYPE] = json!("ip");
        let routes = build(&ip, &services, &[]).unwrap();
        assert_eq!(routes.routes.len(), 1);
        assert!(routes.routes[0].targets.is_empty());
    }
}
