//! End-to-end: a Service's Endpoints and EndpointSlices kept from its pods as
//! kube-controller-manager keeps them, with real kubectl on the simulated runtime: ready pods'
//! addresses on the named target port, the slices' conditions and zones, scaling to zero
//! leaving no stale endpoint, headless Services' hostnames, and the Endpoints going with the
//! Service.

mod common;

use common::kube_cluster::{KubeCluster, skip_without_kubectl, text};
use serde_json::Value;

const V: &str = "1.33";

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: apps
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: nginx
        ports:
        - {name: http, containerPort: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: apps
  labels: {tier: front}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
"#;

/// The ready pods' IPs of `app=web`, sorted.
fn pod_ips(c: &KubeCluster) -> Vec<String> {
    let pods = c.json(V, &["get", "pods", "-n", "apps", "-l", "app=web"]);
    let mut ips: Vec<String> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string))
        .collect();
    ips.sort();
    ips
}

fn addresses(endpoints: &Value) -> Vec<String> {
    let mut ips: Vec<String> = endpoints["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["addresses"].as_array().into_iter().flatten())
        .filter_map(|a| a["ip"].as_str().map(str::to_string))
        .collect();
    ips.sort();
    ips
}

#[test]
fn a_services_endpoints_and_slices_follow_its_ready_pods() {
    if skip_without_kubectl() {
        return;
    }
    let c = KubeCluster::create("endpoints");
    // The Services of a new EKS cluster, at the service range's .1 and .10.
    let services = c.ok(V, &["get", "services", "-A"]);
    let row = |name: &str| -> Vec<String> {
        services
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("{services}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        row("kubernetes")[..6],
        [
            "default",
            "kubernetes",
            "ClusterIP",
            "10.100.0.1",
            "<none>",
            "443/TCP"
        ]
    );
    assert_eq!(
        row("kube-dns")[..6],
        [
            "kube-system",
            "kube-dns",
            "ClusterIP",
            "10.100.0.10",
            "<none>",
            "53/UDP,53/TCP,9153/TCP"
        ]
    );
    // CoreDNS does not run before the guides' steps: kube-dns has no endpoints yet.
    c.eventually("kube-dns's (empty) endpoints", || {
        c.kubectl(V, &["get", "endpoints", "kube-dns", "-n", "kube-system"])
            .status
            .success()
    });
    let dns = c.json(V, &["get", "endpoints", "kube-dns", "-n", "kube-system"]);
    assert!(dns.get("subsets").is_none_or(Value::is_null), "{dns:#}");
    c.fargate_profile("apps", "apps");
    c.ok(V, &["create", "namespace", "apps"]);
    let out = c.apply(V, WEB, &[]);
    assert!(out.status.success(), "{}", text(&out));
    c.eventually("two ready pods", || pod_ips(&c).len() == 2);
    let ips = pod_ips(&c);
    c.eventually("the endpoints of both pods", || {
        addresses(&c.json(V, &["get", "endpoints", "web", "-n", "apps"])) == ips
    });
    let endpoints = c.json(V, &["get", "endpoints", "web", "-n", "apps"]);
    let subset = &endpoints["subsets"][0];
    assert_eq!(
        subset["ports"],
        serde_json::json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
        "{endpoints:#}"
    );
    assert_eq!(subset["addresses"][0]["targetRef"]["kind"], "Pod");
    assert!(
        subset["addresses"][0]["nodeName"]
            .as_str()
            .is_some_and(|n| n.starts_with("fargate-ip-")),
        "{endpoints:#}"
    );
    assert_eq!(endpoints["metadata"]["labels"]["tier"], "front");
    assert!(
        endpoints["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"]
            .is_string()
    );
    let table = c.ok(V, &["get", "endpoints", "web", "-n", "apps"]);
    for ip in &ips {
        assert!(table.contains(&format!("{ip}:8080")), "{table}");
    }

    // The slice: every endpoint ready, serving, not terminating, with its node's zone.
    let slices = c.json(
        V,
        &[
            "get",
            "endpointslices",
            "-n",
            "apps",
            "-l",
            "kubernetes.io/service-name=web",
        ],
    );
    let slice = &slices["items"][0];
    assert_eq!(slices["items"].as_array().unwrap().len(), 1, "{slices:#}");
    assert!(
        slice["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("web-") && n.len() == 9),
        "{slice:#}"
    );
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(
        slice["ports"],
        serde_json::json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    let endpoints = slice["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 2, "{slice:#}");
    for e in endpoints {
        assert_eq!(
            e["conditions"],
            serde_json::json!({"ready": true, "serving": true, "terminating": false})
        );
        assert!(
            e["zone"].as_str().is_some_and(|z| z.starts_with("us-")),
            "{e:#}"
        );
    }
    let table = c.ok(V, &["get", "endpointslices", "-n", "apps"]);
    assert!(table.contains("IPv4") && table.contains("8080"), "{table}");

    let slice_name = slice["metadata"]["name"].as_str().unwrap().to_string();
    // Scaled to zero: no stale endpoint in either.
    c.ok(
        V,
        &["scale", "deployment", "web", "-n", "apps", "--replicas=0"],
    );
    c.eventually("the endpoints emptied", || {
        let e = c.json(V, &["get", "endpoints", "web", "-n", "apps"]);
        e.get("subsets").is_none_or(Value::is_null)
    });
    c.eventually("the slice emptied", || {
        let s = c.json(
            V,
            &[
                "get",
                "endpointslices",
                "-n",
                "apps",
                "-l",
                "kubernetes.io/service-name=web",
            ],
        );
        s["items"].as_array().is_some_and(|items| {
            // The same slice, kept as the Service's placeholder.
            items.len() == 1
                && items[0].get("endpoints").is_none_or(Value::is_null)
                && items[0]["metadata"]["name"] == slice_name.as_str()
        })
    });
    let table = c.ok(V, &["get", "endpoints", "web", "-n", "apps"]);
    assert!(table.contains("<none>"), "{table}");

    // A headless Service of a StatefulSet's pods: hostnames from the subdomain.
    let db = r#"
apiVersion: v1
kind: Service
metadata:
  name: db
  namespace: apps
spec:
  clusterIP: None
  selector: {app: db}
  ports:
  - {port: 5432}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: apps
spec:
  serviceName: db
  replicas: 1
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - name: db
        image: postgres
"#;
    let out = c.apply(V, db, &[]);
    assert!(out.status.success(), "{}", text(&out));
    c.eventually("the headless endpoints", || {
        let e = c.json(V, &["get", "endpoints", "db", "-n", "apps"]);
        e["subsets"][0]["addresses"][0]["hostname"] == "db-0"
    });
    let e = c.json(V, &["get", "endpoints", "db", "-n", "apps"]);
    assert_eq!(
        e["metadata"]["labels"]["service.kubernetes.io/headless"],
        ""
    );
    assert_eq!(e["subsets"][0]["ports"][0]["port"], 5432);

    // Deleted by hand, they come back; deleted with the Service, they go.
    c.ok(V, &["delete", "endpoints", "db", "-n", "apps"]);
    c.eventually("the endpoints back", || {
        c.kubectl(V, &["get", "endpoints", "db", "-n", "apps"])
            .status
            .success()
    });
    c.ok(V, &["delete", "service", "db", "-n", "apps"]);
    c.eventually("the endpoints and slices gone with the Service", || {
        let gone = !c
            .kubectl(V, &["get", "endpoints", "db", "-n", "apps"])
            .status
            .success();
        let slices = c.json(
            V,
            &[
                "get",
                "endpointslices",
                "-n",
                "apps",
                "-l",
                "kubernetes.io/service-name=db",
            ],
        );
        gone && slices["items"].as_array().is_some_and(Vec::is_empty)
    });
}

#[test]
fn node_ports_are_allocated_kept_and_checked() {
    if skip_without_kubectl() {
        return;
    }
    let c = KubeCluster::create("nodeports");
    c.ok(V, &["create", "service", "nodeport", "np", "--tcp=80:8080"]);
    let svc = c.json(V, &["get", "service", "np"]);
    let port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&port), "{svc:#}");
    let table = c.ok(V, &["get", "service", "np"]);
    assert!(table.contains(&format!("80:{port}/TCP")), "{table}");
    // Re-applied without its node port, the Service keeps it.
    let manifest = "apiVersion: v1\nkind: Service\nmetadata:\n  name: np\nspec:\n  type: NodePort\n  selector: {app: np}\n  ports:\n  - {name: 80-8080, port: 80, targetPort: 8080}\n";
    let out = c.apply(V, manifest, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let again = c.json(V, &["get", "service", "np"]);
    assert_eq!(again["spec"]["ports"][0]["nodePort"], port);
    // Another Service asking for it, or for one outside the range, is refused as upstream.
    let taken = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: other\nspec:\n  type: NodePort\n  ports:\n  - {{port: 81, nodePort: {port}}}\n"
    );
    let out = c.apply(V, &taken, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!(
            "The Service \"other\" is invalid: spec.ports[0].nodePort: Invalid value: {port}: provided port is already allocated"
        )),
        "{}",
        text(&out)
    );
    let outside = "apiVersion: v1\nkind: Service\nmetadata:\n  name: other\nspec:\n  type: NodePort\n  ports:\n  - {port: 81, nodePort: 8080}\n";
    let out = c.apply(V, outside, &[]);
    assert!(
        text(&out).contains("spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767"),
        "{}",
        text(&out)
    );
    // Back to ClusterIP: its node port goes.
    c.ok(
        V,
        &[
            "patch",
            "service",
            "np",
            "-p",
            r#"{"spec":{"type":"ClusterIP"}}"#,
        ],
    );
    let plain = c.json(V, &["get", "service", "np"]);
    assert!(
        plain["spec"]["ports"][0].get("nodePort").is_none(),
        "{plain:#}"
    );
    // A load balancer with a local traffic policy gets a health-check node port too.
    let lb = "apiVersion: v1\nkind: Service\nmetadata:\n  name: lb\nspec:\n  type: LoadBalancer\n  externalTrafficPolicy: Local\n  ports:\n  - {port: 443}\n";
    let out = c.apply(V, lb, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let lb = c.json(V, &["get", "service", "lb"]);
    assert!(lb["spec"]["ports"][0]["nodePort"].is_u64(), "{lb:#}");
    assert!(lb["spec"]["healthCheckNodePort"].is_u64(), "{lb:#}");
    assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
}
