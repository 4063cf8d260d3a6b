//! End-to-end, with real kubectl on the simulated runtime: `kubectl port-forward` says at once
//! that simulated pods cannot be reached (over SPDY and over the WebSocket tunnel); reaching
//! `pods/portforward` takes `create` on it, for a WebSocket's GET too; a LoadBalancer
//! Service's address is written even though no listener opens. (Forwarding itself, with the
//! process runtime: `process_port_forward`.)

mod common;

use common::kube_cluster::{KubeCluster, skip_without_kubectl};

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: apps}
spec:
  containers:
  - {name: app, image: nginx, ports: [{containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: apps}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: looker, namespace: apps}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get, list]}
- {apiGroups: [""], resources: [pods/portforward], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: looker, namespace: apps}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: looker}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: jane}]
"#;

#[test]
fn port_forward_on_simulated_pods_is_refused_with_a_reason() {
    if skip_without_kubectl() {
        return;
    }
    let c = KubeCluster::create("forward");
    c.fargate_profile("apps", "apps");
    c.ok("1.33", &["create", "namespace", "apps"]);
    let out = c.apply("1.33", POD, &[]);
    assert!(out.status.success(), "{}", common::kube_cluster::text(&out));
    c.eventually("the pod running", || {
        c.ok(
            "1.33",
            &[
                "get",
                "pod",
                "web",
                "-n",
                "apps",
                "-o",
                "jsonpath={.status.phase}",
            ],
        ) == "Running"
    });
    for v in ["1.29", "1.33"] {
        let said = c.fails(v, &["port-forward", "-n", "apps", "pod/web", "18080:8080"]);
        assert!(
            said.contains(
                "port-forward is not available in the simulated runtime: pod apps/web is \
                 simulated, nothing listens in it; start localfargate with --runtime process to \
                 forward ports to pods"
            ),
            "{v}: {said}"
        );
    }
    // `get` on pods/portforward is not enough: a WebSocket's GET needs `create` too.
    let said = c.fails(
        "1.33",
        &[
            "port-forward",
            "--as",
            "jane",
            "-n",
            "apps",
            "pod/web",
            "18081:8080",
        ],
    );
    assert!(
        said.contains(
            "User \"jane\" cannot create resource \"pods/portforward\" in API group \"\" in the \
             namespace \"apps\""
        ),
        "{said}"
    );
    c.eventually("the load balancer's address", || {
        c.ok(
            "1.33",
            &[
                "get",
                "svc",
                "web",
                "-n",
                "apps",
                "-o",
                "jsonpath={.status.loadBalancer.ingress[0].hostname}",
            ],
        ) == "localhost"
    });
}
