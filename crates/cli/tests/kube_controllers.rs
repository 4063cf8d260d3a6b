//! End-to-end: the controllers EKS's control plane runs beyond the workload ones, with real
//! kubectl on the simulated runtime: ReplicationControllers keep their pods, PodDisruptionBudgets
//! get their status and the eviction subresource honours them (`kubectl drain` included).

mod common;

use common::kube_cluster::{KubeCluster, skip_without_kubectl, text};
use serde_json::Value;

const V: &str = "1.33";

fn cluster(name: &str) -> KubeCluster {
    let c = KubeCluster::create(name);
    c.fargate_profile("apps", "apps");
    c.ok(V, &["create", "namespace", "apps"]);
    c
}

fn ready_pods(c: &KubeCluster, selector: &str) -> Vec<Value> {
    let pods = c.json(V, &["get", "pods", "-n", "apps", "-l", selector]);
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["metadata"]["deletionTimestamp"].is_null()
                && p["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        })
        .cloned()
        .collect()
}

#[test]
fn a_replication_controller_keeps_its_pods_and_counts_them() {
    if skip_without_kubectl() {
        return;
    }
    let c = cluster("rc");
    let rc = r#"
apiVersion: v1
kind: ReplicationController
metadata:
  name: legacy
  namespace: apps
spec:
  replicas: 2
  template:
    metadata:
      labels: {app: legacy}
    spec:
      containers:
      - name: app
        image: nginx
"#;
    let out = c.apply(V, rc, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let got = c.json(V, &["get", "rc", "legacy", "-n", "apps"]);
    // Upstream's defaults: the template's labels are the selector and the RC's labels.
    assert_eq!(got["spec"]["selector"]["app"], "legacy", "{got:#}");
    assert_eq!(got["metadata"]["labels"]["app"], "legacy");
    c.eventually("2 ready pods of the RC", || {
        ready_pods(&c, "app=legacy").len() == 2
    });
    c.eventually("the RC's status counts them", || {
        let rc = c.json(V, &["get", "rc", "legacy", "-n", "apps"]);
        rc["status"]["readyReplicas"] == 2 && rc["status"]["replicas"] == 2
    });
    c.ok(V, &["scale", "rc", "legacy", "-n", "apps", "--replicas=3"]);
    c.eventually("3 ready pods after scaling", || {
        ready_pods(&c, "app=legacy").len() == 3
    });
    let pod = ready_pods(&c, "app=legacy")[0].clone();
    assert_eq!(
        pod["metadata"]["ownerReferences"][0]["kind"],
        "ReplicationController"
    );
    // Its scale subresource, as an autoscaler reads it: the selector as label-selector text
    // (it once came back empty for a ReplicationController).
    c.eventually("the RC's /scale counts 3", || {
        let scale: serde_json::Value = serde_json::from_str(&c.ok(
            V,
            &[
                "get",
                "--raw",
                "/api/v1/namespaces/apps/replicationcontrollers/legacy/scale",
            ],
        ))
        .unwrap();
        assert_eq!(scale["kind"], "Scale", "{scale:#}");
        assert_eq!(scale["apiVersion"], "autoscaling/v1");
        assert_eq!(scale["spec"]["replicas"], 3);
        assert_eq!(scale["status"]["selector"], "app=legacy", "{scale:#}");
        scale["status"]["replicas"] == 3
    });
    let table = c.ok(V, &["get", "rc", "legacy", "-n", "apps"]);
    assert!(table.lines().next().unwrap().contains("DESIRED"), "{table}");
}

#[test]
fn disruption_budgets_get_their_status_and_evictions_honour_them() {
    if skip_without_kubectl() {
        return;
    }
    let c = cluster("pdb");
    let out = c.apply(
        V,
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: apps}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: apps}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: web}}
"#,
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    c.eventually("2 ready web pods", || ready_pods(&c, "app=web").len() == 2);
    c.eventually("the budget's status", || {
        let pdb = c.json(V, &["get", "pdb", "web", "-n", "apps"]);
        pdb["status"]["currentHealthy"] == 2 && pdb["status"]["expectedPods"] == 2
    });
    let pdb = c.json(V, &["get", "pdb", "web", "-n", "apps"]);
    assert_eq!(pdb["status"]["desiredHealthy"], 2);
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0);
    assert_eq!(pdb["status"]["conditions"][0]["reason"], "InsufficientPods");
    let table = c.ok(V, &["get", "pdb", "web", "-n", "apps"]);
    assert!(table.contains("ALLOWED DISRUPTIONS"), "{table}");

    // An eviction the budget does not allow: 429 with upstream's message and cause.
    let victim = ready_pods(&c, "app=web")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let node = ready_pods(&c, "app=web")[0]["spec"]["nodeName"]
        .as_str()
        .unwrap()
        .to_string();
    let drained = c.fails(
        V,
        &[
            "drain",
            &node,
            "--pod-selector=app=web",
            "--timeout=3s",
            "--delete-emptydir-data",
        ],
    );
    assert!(
        drained.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{drained}"
    );
    let eviction = format!(
        r#"{{"apiVersion":"policy/v1","kind":"Eviction","metadata":{{"name":"{victim}","namespace":"apps"}}}}"#
    );
    let path = format!("/api/v1/namespaces/apps/pods/{victim}/eviction");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &eviction).unwrap();
    let refused = c.fails(
        V,
        &[
            "create",
            "--raw",
            &path,
            "-f",
            file.path().to_str().unwrap(),
        ],
    );
    assert!(
        refused.contains("TooManyRequests")
            || refused
                .contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{refused}"
    );

    // Loosened, the budget allows one disruption, and the eviction takes it.
    c.ok(V, &["uncordon", &node]);
    c.ok(
        V,
        &[
            "patch",
            "pdb",
            "web",
            "-n",
            "apps",
            "--type=merge",
            "-p",
            r#"{"spec":{"minAvailable":1}}"#,
        ],
    );
    c.eventually("one disruption allowed", || {
        c.json(V, &["get", "pdb", "web", "-n", "apps"])["status"]["disruptionsAllowed"] == 1
    });
    c.ok(
        V,
        &[
            "create",
            "--raw",
            &path,
            "-f",
            file.path().to_str().unwrap(),
        ],
    );
    c.eventually(
        "the evicted pod to go and its replacement to be ready",
        || {
            let pods = ready_pods(&c, "app=web");
            pods.len() == 2
                && pods
                    .iter()
                    .all(|p| p["metadata"]["name"] != victim.as_str())
        },
    );
}

#[test]
fn a_horizontal_pod_autoscaler_scales_on_the_pods_cpu_usage() {
    if skip_without_kubectl() {
        return;
    }
    // Evaluated every second on metrics sampled every second, so the test does not wait for
    // kube-controller-manager's 15 s.
    let c = KubeCluster::create_with(
        "hpa",
        &[
            "--horizontal-pod-autoscaler-sync-period",
            "1",
            "--metrics-interval",
            "1",
        ],
    );
    c.fargate_profile("apps", "apps");
    c.ok(V, &["create", "namespace", "apps"]);
    // Each pod uses 200m of the 100m it requests (the simulated runtime's usage annotation).
    let out = c.apply(
        V,
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: busy, namespace: apps}
spec:
  replicas: 1
  selector: {matchLabels: {app: busy}}
  template:
    metadata:
      labels: {app: busy}
      annotations: {sim.localfargate.io/cpu-usage: 200m}
    spec:
      containers:
      - name: app
        image: nginx
        resources: {requests: {cpu: 100m}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: busy, namespace: apps}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: busy}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
"#,
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    // 200% against 50%: four times the pods, capped at 3.
    c.eventually("the deployment scaled to the HPA's maximum", || {
        c.json(V, &["get", "deployment", "busy", "-n", "apps"])["spec"]["replicas"] == 3
    });
    c.eventually("the HPA's status", || {
        let hpa = c.json(V, &["get", "hpa", "busy", "-n", "apps"]);
        hpa["status"]["desiredReplicas"] == 3
            && hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"]
                == 200
    });
    let hpa = c.json(V, &["get", "hpa", "busy", "-n", "apps"]);
    let conditions = hpa["status"]["conditions"].as_array().unwrap();
    let limited = conditions
        .iter()
        .find(|c| c["type"] == "ScalingLimited")
        .unwrap();
    assert_eq!(limited["status"], "True", "{hpa:#}");
    assert_eq!(limited["reason"], "TooManyReplicas");
    let active = conditions
        .iter()
        .find(|c| c["type"] == "ScalingActive")
        .unwrap();
    assert_eq!(active["reason"], "ValidMetricFound");
    assert_eq!(
        active["message"],
        "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)"
    );
    let table = c.ok(V, &["get", "hpa", "busy", "-n", "apps"]);
    assert!(table.contains("cpu: 200%/50%"), "{table}");
    let events = c.ok(
        V,
        &[
            "get",
            "events",
            "-n",
            "apps",
            "--field-selector",
            "reason=SuccessfulRescale",
        ],
    );
    assert!(
        events.contains(
            "New size: 3; reason: cpu resource utilization (percentage of request) above target"
        ),
        "{events}"
    );

    // A target whose pods request no CPU cannot be measured against a utilization.
    let out = c.apply(
        V,
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: norequest, namespace: apps}
spec:
  replicas: 1
  selector: {matchLabels: {app: norequest}}
  template:
    metadata: {labels: {app: norequest}}
    spec:
      containers: [{name: app, image: nginx}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: norequest, namespace: apps}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: norequest}
  maxReplicas: 3
"#,
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    c.eventually("the HPA to say why it cannot scale", || {
        let hpa = c.json(V, &["get", "hpa", "norequest", "-n", "apps"]);
        hpa["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter().any(|c| {
                c["type"] == "ScalingActive"
                    && c["reason"] == "FailedGetResourceMetric"
                    && c["message"].as_str().is_some_and(|m| {
                        m.contains("missing request for cpu in container app of Pod norequest-")
                    })
            })
        })
    });
}
