use super::*;

use serde_json::{Value, json};

fn typed<K: serde::de::DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).unwrap()
}

fn svc(name: &str, spec: Value) -> Service {
    typed(json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec}))
}

fn slice(svc: &str, ports: Value, endpoints: Value) -> EndpointSlice {
    typed(
        json!({"metadata": {"name": format!("{svc}-abc"), "namespace": "default",
                        "labels": {"kubernetes.io/service-name": svc}},
           "addressType": "IPv4", "ports": ports, "endpoints": endpoints}),
    )
}

#[test]
fn ready_endpoints_of_each_port_by_name_and_protocol() {
    let web = svc(
        "web",
        json!({"type": "NodePort", "clusterIP": "10.100.0.20", "sessionAffinity": "ClientIP",
               "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
               "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080},
                         {"name": "metrics", "port": 9000, "protocol": "TCP", "nodePort": 30090}]}),
    );
    let s = slice(
        "web",
        json!([{"name": "http", "port": 8080, "protocol": "TCP"},
               {"name": "metrics", "port": 9100, "protocol": "TCP"}]),
        json!([
            {"addresses": ["10.0.1.5"], "conditions": {"ready": true}},
            {"addresses": ["10.0.1.6"], "conditions": {"ready": false, "serving": true}},
            {"addresses": ["10.0.1.7"], "conditions": {}},
        ]),
    );
    let headless = svc("h", json!({"clusterIP": "None", "ports": [{"port": 80}]}));
    let ext = svc(
        "e",
        json!({"type": "ExternalName", "externalName": "example.com"}),
    );
    let pod = typed(json!({"status": {"podIP": "10.0.1.5", "phase": "Running"}}));
    let done = typed(json!({"status": {"podIP": "10.0.1.9", "phase": "Succeeded"}}));
    let node =
        typed(json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.1.5"}]}}));
    let d = desired(
        &[web, headless, ext],
        &[s],
        &[pod, done],
        &[node],
        vec![(Ipv4Addr::new(10, 0, 1, 0), 24)],
    );
    assert_eq!(d.ports.len(), 2);
    let http = &d.ports[0];
    assert_eq!(http.port, 80);
    assert_eq!(http.node_port, Some(30080));
    assert_eq!(http.affinity_timeout, Some(60));
    // Not-ready 10.0.1.6 is left out; ready unset counts as ready.
    assert_eq!(
        http.endpoints.iter().copied().collect::<Vec<_>>(),
        vec![
            (Ipv4Addr::new(10, 0, 1, 5), 8080),
            (Ipv4Addr::new(10, 0, 1, 7), 8080)
        ]
    );
    assert!(d.ports[1].endpoints.iter().all(|(_, p)| *p == 9100));
    assert_eq!(d.pod_ips.len(), 1);
    assert_eq!(d.node_ips.len(), 1);
}

#[test]
fn a_cluster_ip_service_has_no_node_port_and_no_affinity_by_default() {
    let web = svc(
        "web",
        json!({"type": "ClusterIP", "clusterIP": "10.100.0.20", "sessionAffinity": "None",
               "ports": [{"port": 53, "protocol": "UDP", "nodePort": 31000}]}),
    );
    let d = desired(&[web], &[], &[], &[], vec![]);
    assert_eq!(d.ports[0].node_port, None);
    assert_eq!(d.ports[0].affinity_timeout, None);
    assert_eq!(d.ports[0].protocol, Protocol::Udp);
    assert!(d.ports[0].endpoints.is_empty());
}

#[test]
fn the_api_endpoints_name_the_address_and_port() {
    let (ep, slice) = api_endpoints(Ipv4Addr::new(10, 0, 1, 1), 6443);
    // What was written when these were built as JSON (the Endpoints then left `apiVersion`
    // and `kind` to the registry, which fills them in as these).
    assert_eq!(
        typed::to_json(&ep).unwrap(),
        json!({
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{
                "addresses": [{"ip": "10.0.1.1"}],
                "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
            }],
        })
    );
    assert_eq!(
        typed::to_json(&slice).unwrap(),
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.1.1"], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
        })
    );
}

#[test]
fn terminating_endpoints_are_used_when_none_is_ready() {
    let web = svc(
        "web",
        json!({"clusterIP": "10.100.0.20", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
    );
    let s = slice(
        "web",
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
        json!([
            {"addresses": ["10.0.1.5"], "conditions": {"ready": false, "serving": true, "terminating": true}},
            {"addresses": ["10.0.1.6"], "conditions": {"ready": false, "serving": false, "terminating": true}},
        ]),
    );
    let d = desired(&[web], &[s], &[], &[], vec![]);
    assert_eq!(
        d.ports[0].endpoints,
        [(Ipv4Addr::new(10, 0, 1, 5), 8080)].into()
    );
}

#[test]
fn internal_traffic_policy_local_and_external_ips_reach_the_data_path() {
    let web = svc(
        "web",
        json!({"clusterIP": "10.100.0.20", "internalTrafficPolicy": "Local",
               "externalIPs": ["198.51.100.7", "not-an-ip"],
               "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
    );
    let s = slice(
        "web",
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
        json!([{"addresses": ["10.0.1.5"], "nodeName": "fargate-ip-10-0-1-5", "conditions": {"ready": true}}]),
    );
    let pod = |ip: &str, node: &str| -> Pod {
        typed(json!({"spec": {"nodeName": node, "containers": []},
                     "status": {"podIP": ip, "phase": "Running"}}))
    };
    let (me, other) = (
        pod("10.0.1.5", "fargate-ip-10-0-1-5"),
        pod("10.0.1.6", "fargate-ip-10-0-1-6"),
    );
    let d = desired(&[web], &[s], &[me, other], &[], vec![]);
    let p = &d.ports[0];
    assert_eq!(p.external_ips, [Ipv4Addr::new(198, 51, 100, 7)].into());
    let local = p.internal_local.as_ref().unwrap();
    // Only the endpoint's own pod is a client with a local endpoint (each pod its own node).
    assert_eq!(
        local.clients.keys().copied().collect::<Vec<_>>(),
        [Ipv4Addr::new(10, 0, 1, 5)]
    );
    assert_eq!(local.host, [(Ipv4Addr::new(10, 0, 1, 5), 8080)].into());
}
