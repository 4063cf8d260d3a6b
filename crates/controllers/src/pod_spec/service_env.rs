//! The kubelet's Service environment variables (`getServiceEnvVarMap` in
//! `pkg/kubelet/kubelet_pods.go`, `FromServices` in `pkg/kubelet/envvars/envvars.go`): for the
//! `kubernetes` Service of `default` always, and for every Service of the pod's namespace when
//! `enableServiceLinks` is not false, `{NAME}_SERVICE_HOST`, `{NAME}_SERVICE_PORT`,
//! `{NAME}_SERVICE_PORT_{PORT NAME}` and the Docker link variables `{NAME}_PORT`,
//! `{NAME}_PORT_{port}_{PROTO}[_PROTO|_PORT|_ADDR]`. Services without a ClusterIP (headless,
//! ExternalName) give none. A container's own variable of the same name wins.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use localfargate_registry::typed::decode_or_log;
use serde_json::Value;

/// The Services whose variables a pod in `namespace` gets (stored Services in, typed out), by
/// name (a Service of the pod's namespace named `kubernetes` replaces the master one, as in the
/// kubelet's map).
pub fn selected(
    namespace: &str,
    enable_service_links: bool,
    in_namespace: &[Value],
    in_default: &[Value],
) -> Vec<Service> {
    let mut map: BTreeMap<String, Service> = BTreeMap::new();
    for s in in_default.iter().filter_map(decode_or_log::<Service>) {
        if name(&s) == "kubernetes" && has_cluster_ip(&s) {
            map.insert("kubernetes".to_string(), s);
        }
    }
    if enable_service_links {
        for s in in_namespace.iter().filter_map(decode_or_log::<Service>) {
            let master = namespace == "default" && name(&s) == "kubernetes";
            if has_cluster_ip(&s) && !master {
                map.insert(name(&s).to_string(), s);
            }
        }
    }
    map.into_values().collect()
}

fn name(s: &Service) -> &str {
    s.metadata.name.as_deref().unwrap_or("")
}

fn cluster_ip(s: &Service) -> &str {
    s.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .unwrap_or("")
}

fn has_cluster_ip(s: &Service) -> bool {
    let ip = cluster_ip(s);
    !ip.is_empty() && ip != "None"
}

fn var_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

/// The variables of `services`, in order.
pub fn variables(services: &[Service]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in services {
        let name = var_name(name(s));
        let ip = cluster_ip(s);
        let ports: Vec<_> = s
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
            .collect();
        out.push((format!("{name}_SERVICE_HOST"), ip.to_string()));
        let port_of = |p: &k8s_openapi::api::core::v1::ServicePort| {
            u64::try_from(p.port).unwrap_or(0).to_string()
        };
        if let Some(first) = ports.first() {
            out.push((format!("{name}_SERVICE_PORT"), port_of(first)));
        }
        for p in &ports {
            if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((format!("{name}_SERVICE_PORT_{}", var_name(pn)), port_of(p)));
            }
        }
        // Docker link variables.
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        for (i, p) in ports.iter().enumerate() {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            let port = port_of(p);
            let url = format!("{}://{host}:{port}", proto.to_lowercase());
            if i == 0 {
                out.push((format!("{name}_PORT"), url.clone()));
            }
            let prefix = format!("{name}_PORT_{port}_{}", proto.to_uppercase());
            out.push((prefix.clone(), url));
            out.push((format!("{prefix}_PROTO"), proto.to_lowercase()));
            out.push((format!("{prefix}_PORT"), port));
            out.push((format!("{prefix}_ADDR"), ip.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(ns: &str, name: &str, ip: &str, ports: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip, "ports": ports}})
    }

    #[test]
    fn the_kubernetes_service_as_the_kubelet_gives_it() {
        let k = svc(
            "default",
            "kubernetes",
            "10.100.0.1",
            json!([{"name": "https", "port": 443, "protocol": "TCP"}]),
        );
        let vars = variables(&selected("team", false, &[], std::slice::from_ref(&k)));
        let want: Vec<(String, String)> = [
            ("KUBERNETES_SERVICE_HOST", "10.100.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
            ("KUBERNETES_PORT", "tcp://10.100.0.1:443"),
            ("KUBERNETES_PORT_443_TCP", "tcp://10.100.0.1:443"),
            ("KUBERNETES_PORT_443_TCP_PROTO", "tcp"),
            ("KUBERNETES_PORT_443_TCP_PORT", "443"),
            ("KUBERNETES_PORT_443_TCP_ADDR", "10.100.0.1"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(vars, want);
    }

    #[test]
    fn service_links_follow_enable_service_links_and_skip_headless() {
        let k = svc(
            "default",
            "kubernetes",
            "10.100.0.1",
            json!([{"port": 443, "protocol": "TCP"}]),
        );
        let own = vec![
            svc(
                "team",
                "my-web",
                "10.100.3.4",
                json!([{"name": "http", "port": 80, "protocol": "TCP"},
                       {"name": "dns-udp", "port": 53, "protocol": "UDP"}]),
            ),
            svc("team", "headless", "None", json!([{"port": 80}])),
        ];
        let defaults = [k];
        let vars = variables(&selected("team", true, &own, &defaults));
        let get = |n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("MY_WEB_SERVICE_HOST"), Some("10.100.3.4"));
        assert_eq!(get("MY_WEB_SERVICE_PORT"), Some("80"));
        assert_eq!(get("MY_WEB_SERVICE_PORT_DNS_UDP"), Some("53"));
        assert_eq!(get("MY_WEB_PORT"), Some("tcp://10.100.3.4:80"));
        assert_eq!(get("MY_WEB_PORT_53_UDP_PROTO"), Some("udp"));
        assert_eq!(get("HEADLESS_SERVICE_HOST"), None);
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.100.0.1"));
        let off = variables(&selected("team", false, &own, &defaults));
        assert!(off.iter().all(|(k, _)| k.starts_with("KUBERNETES_")));
    }
}
