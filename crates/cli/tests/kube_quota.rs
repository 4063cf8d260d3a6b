//! End-to-end: the admission and controllers EKS's control plane runs for ResourceQuota,
//! LimitRange and legacy ServiceAccount token Secrets, with real kubectl on the simulated
//! runtime: a quota's status counts what its namespace uses and a create past it is refused
//! with upstream's message, scoped quotas take only their pods, LimitRange bounds refuse pods
//! and claims, and a token Secret is filled and authenticates as its ServiceAccount.

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

/// A pod manifest with these requests and limits (`None`: none said).
fn pod(name: &str, resources: Option<(&str, &str, &str, &str)>) -> String {
    let resources = match resources {
        Some((rc, rm, lc, lm)) => format!(
            "\n    resources:\n      requests: {{cpu: \"{rc}\", memory: \"{rm}\"}}\n      limits: {{cpu: \"{lc}\", memory: \"{lm}\"}}"
        ),
        None => String::new(),
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: apps\nspec:\n  containers:\n  - name: app\n    image: nginx{resources}\n"
    )
}

fn used(c: &KubeCluster, quota: &str) -> Value {
    c.json(V, &["get", "quota", quota, "-n", "apps"])["status"]["used"].clone()
}

#[test]
fn a_quota_counts_its_namespace_and_refuses_what_does_not_fit() {
    if skip_without_kubectl() {
        return;
    }
    let c = cluster("quota");
    let quota = r#"
apiVersion: v1
kind: ResourceQuota
metadata:
  name: compute
  namespace: apps
spec:
  hard:
    pods: "2"
    requests.cpu: "1"
    requests.memory: 1Gi
    limits.cpu: "2"
    limits.memory: 2Gi
    count/configmaps: "5"
"#;
    let out = c.apply(V, quota, &[]);
    assert!(out.status.success(), "{}", text(&out));
    c.eventually("the quota's status", || {
        let q = c.json(V, &["get", "quota", "compute", "-n", "apps"]);
        q["status"]["hard"]["requests.memory"] == "1Gi" && q["status"]["used"]["pods"] == "0"
    });
    let sized = Some(("500m", "256Mi", "1", "512Mi"));
    let out = c.apply(V, &pod("a", sized), &[]);
    assert!(out.status.success(), "{}", text(&out));
    c.eventually("the first pod counted", || {
        used(&c, "compute")["pods"] == "1"
    });
    let mut now = used(&c, "compute");
    now.as_object_mut().unwrap().remove("count/configmaps");
    let expected: Value = serde_json::json!({
        "pods": "1", "requests.cpu": "500m", "requests.memory": "256Mi",
        "limits.cpu": "1", "limits.memory": "512Mi",
    });
    assert_eq!(now, expected);
    let table = c.ok(V, &["get", "quota", "-n", "apps"]);
    assert!(
        table.contains("pods: 1/2") && table.contains("requests.cpu: 500m/1"),
        "{table}"
    );
    assert!(
        table.contains("limits.cpu: 1/2, limits.memory: 512Mi/2Gi"),
        "{table}"
    );
    let described = c.ok(V, &["describe", "quota", "compute", "-n", "apps"]);
    assert!(
        described.lines().any(
            |l| l.split_whitespace().collect::<Vec<_>>() == ["requests.memory", "256Mi", "1Gi"]
        ),
        "{described}"
    );

    // A container that does not say what the quota limits.
    let refused = c.fails(V, &["run", "bare", "-n", "apps", "--image=nginx"]);
    assert!(
        refused.contains(
            "Error from server (Forbidden): pods \"bare\" is forbidden: failed quota: compute: must specify limits.cpu for: bare; must specify limits.memory for: bare; must specify requests.cpu for: bare; must specify requests.memory for: bare"
        ),
        "{refused}"
    );
    // A server-side dry run that fits is admitted and charges nothing.
    let out = c.apply(V, &pod("b", sized), &["--dry-run=server"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(used(&c, "compute")["pods"], "1");
    let out = c.apply(V, &pod("b", sized), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let exceeded = "pods \"c\" is forbidden: exceeded quota: compute, requested: limits.cpu=1,pods=1,requests.cpu=500m, used: limits.cpu=2,pods=2,requests.cpu=1, limited: limits.cpu=2,pods=2,requests.cpu=1";
    // A dry run is refused as its write would be.
    let out = c.apply(V, &pod("c", sized), &["--dry-run=server"]);
    assert!(!out.status.success());
    assert!(text(&out).contains(exceeded), "{}", text(&out));
    let out = c.apply(V, &pod("c", sized), &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains(exceeded), "{}", text(&out));
    // Object counts: whatever configmaps the namespace has (kube-root-ca.crt, where published)
    // count.
    let existing = c.json(V, &["get", "configmaps", "-n", "apps"])["items"]
        .as_array()
        .unwrap()
        .len();
    for i in existing..5 {
        c.ok(V, &["create", "configmap", &format!("cm{i}"), "-n", "apps"]);
    }
    let refused = c.fails(V, &["create", "configmap", "one-too-many", "-n", "apps"]);
    assert!(
        refused.contains("configmaps \"one-too-many\" is forbidden: exceeded quota: compute, requested: count/configmaps=1, used: count/configmaps=5, limited: count/configmaps=5"),
        "{refused}"
    );
    // A deleted pod frees its share.
    c.ok(
        V,
        &[
            "delete",
            "pod",
            "a",
            "-n",
            "apps",
            "--grace-period=0",
            "--force",
        ],
    );
    c.eventually("the deleted pod uncounted", || {
        let u = used(&c, "compute");
        u["pods"] == "1" && u["requests.cpu"] == "500m"
    });
    let out = c.apply(V, &pod("c", sized), &[]);
    assert!(out.status.success(), "{}", text(&out));
}

/// kube-apiserver decodes every quantity and stores it in canonical form: YAML numbers become
/// text, `1000m` is `1`, `0.5Gi` is `512Mi`; quotas count them, LimitRange defaults copy them,
/// and text that is not a quantity is a 400 with upstream's message.
#[test]
fn quantities_are_stored_canonical_and_numbers_count_toward_a_quota() {
    if skip_without_kubectl() {
        return;
    }
    let c = cluster("quantities");
    // Numbers, as a YAML author writes them: kubectl sends them as JSON numbers.
    let quota = "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: compute, namespace: apps}\nspec:\n  hard: {pods: 5, requests.cpu: 4, requests.memory: 2048Mi}\n";
    let limits = "apiVersion: v1\nkind: LimitRange\nmetadata: {name: defaults, namespace: apps}\nspec:\n  limits:\n  - type: Container\n    defaultRequest: {cpu: 0.5, memory: 128Mi}\n    default: {cpu: 1, memory: 256Mi}\n";
    for yaml in [quota, limits] {
        let out = c.apply(V, yaml, &[]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let stored = c.json(V, &["get", "quota", "compute", "-n", "apps"]);
    assert_eq!(
        stored["spec"]["hard"],
        serde_json::json!({"pods": "5", "requests.cpu": "4", "requests.memory": "2Gi"})
    );
    let range = c.json(V, &["get", "limitrange", "defaults", "-n", "apps"]);
    assert_eq!(
        range["spec"]["limits"][0]["defaultRequest"],
        serde_json::json!({"cpu": "500m", "memory": "128Mi"})
    );
    let sized = "apiVersion: v1\nkind: Pod\nmetadata: {name: sized, namespace: apps}\nspec:\n  containers:\n  - name: app\n    image: nginx\n    resources:\n      requests: {cpu: 1, memory: 0.5Gi}\n      limits: {cpu: 2000m, memory: 1.5Gi}\n  - name: defaulted\n    image: nginx\n";
    let out = c.apply(V, sized, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let pod = c.json(V, &["get", "pod", "sized", "-n", "apps"]);
    assert_eq!(
        pod["spec"]["containers"][0]["resources"],
        serde_json::json!({"requests": {"cpu": "1", "memory": "512Mi"},
                           "limits": {"cpu": "2", "memory": "1536Mi"}})
    );
    assert_eq!(
        pod["spec"]["containers"][1]["resources"],
        serde_json::json!({"requests": {"cpu": "500m", "memory": "128Mi"},
                           "limits": {"cpu": "1", "memory": "256Mi"}})
    );
    c.eventually("the pod counted", || used(&c, "compute")["pods"] == "1");
    assert_eq!(
        used(&c, "compute"),
        serde_json::json!({"pods": "1", "requests.cpu": "1500m", "requests.memory": "640Mi"})
    );
    // Server-side apply stores the same canonical form, and a Deployment's pods carry it.
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: apps}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - name: app\n        image: nginx\n        resources:\n          requests: {cpu: 250m, memory: 0.25Gi}\n          limits: {cpu: 1000m, memory: 1000Mi}\n";
    let out = c.apply(V, deployment, &["--server-side"]);
    assert!(out.status.success(), "{}", text(&out));
    let canonical = serde_json::json!({"requests": {"cpu": "250m", "memory": "256Mi"},
                                       "limits": {"cpu": "1", "memory": "1000Mi"}});
    let stored = c.json(V, &["get", "deployment", "web", "-n", "apps"]);
    assert_eq!(
        stored["spec"]["template"]["spec"]["containers"][0]["resources"],
        canonical
    );
    c.eventually("the Deployment's pod", || {
        c.json(V, &["get", "pods", "-n", "apps", "-l", "app=web"])["items"][0]["spec"]["containers"]
            [0]["resources"]
            == canonical
    });
    // Text that is not a quantity: kube-apiserver's decoding error.
    let bad = "apiVersion: v1\nkind: Pod\nmetadata: {name: bad, namespace: apps}\nspec:\n  containers:\n  - name: app\n    image: nginx\n    resources:\n      requests: {cpu: lots}\n";
    let out = c.apply(V, bad, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("Error from server (BadRequest): error when creating \"STDIN\": Pod in version \"v1\" cannot be handled as a Pod: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_quota_counts_custom_resources() {
    if skip_without_kubectl() {
        return;
    }
    let c = cluster("quota-crs");
    let crd = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;
    let out = c.apply(V, crd, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let quota = "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: crs\n  namespace: apps\nspec:\n  hard:\n    count/widgets.example.com: \"1\"\n";
    let out = c.apply(V, quota, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let widget = |name: &str| {
        format!(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\n  namespace: apps\n"
        )
    };
    c.eventually("the widget type served", || {
        c.apply(V, &widget("w1"), &[]).status.success()
    });
    c.eventually("the widget counted", || {
        used(&c, "crs")["count/widgets.example.com"] == "1"
    });
    let out = c.apply(V, &widget("w2"), &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("widgets.example.com \"w2\" is forbidden: exceeded quota: crs, requested: count/widgets.example.com=1, used: count/widgets.example.com=1, limited: count/widgets.example.com=1"),
        "{}",
        text(&out)
    );
    // Deleting the first frees its place, once the controller has recounted.
    c.ok(V, &["delete", "widget", "w1", "-n", "apps"]);
    c.eventually("the deleted widget uncounted", || {
        used(&c, "crs")["count/widgets.example.com"] == "0"
    });
    let out = c.apply(V, &widget("w2"), &[]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn scoped_quotas_and_limit_ranges() {
    if skip_without_kubectl() {
        return;
    }
    let c = cluster("scoped");
    let quota = r#"
apiVersion: v1
kind: ResourceQuota
metadata:
  name: besteffort
  namespace: apps
spec:
  hard:
    pods: "1"
  scopes: [BestEffort]
"#;
    let out = c.apply(V, quota, &[]);
    assert!(out.status.success(), "{}", text(&out));
    c.ok(V, &["run", "free", "-n", "apps", "--image=nginx"]);
    let refused = c.fails(V, &["run", "free2", "-n", "apps", "--image=nginx"]);
    assert!(
        refused.contains("pods \"free2\" is forbidden: exceeded quota: besteffort, requested: pods=1, used: pods=1, limited: pods=1"),
        "{refused}"
    );
    // A Burstable pod is not the BestEffort quota's.
    let out = c.apply(
        V,
        &pod("sized", Some(("100m", "64Mi", "200m", "128Mi"))),
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    c.eventually("the scoped quota counts only the BestEffort pod", || {
        used(&c, "besteffort") == serde_json::json!({"pods": "1"})
    });

    // An update is charged for what it adds: a Service becoming a load balancer.
    let lb = r#"
apiVersion: v1
kind: ResourceQuota
metadata:
  name: no-lbs
  namespace: apps
spec:
  hard:
    services.loadbalancers: "0"
"#;
    let out = c.apply(V, lb, &[]);
    assert!(out.status.success(), "{}", text(&out));
    c.ok(
        V,
        &[
            "create",
            "service",
            "clusterip",
            "web",
            "-n",
            "apps",
            "--tcp=80",
        ],
    );
    let refused = c.fails(
        V,
        &[
            "patch",
            "service",
            "web",
            "-n",
            "apps",
            "-p",
            r#"{"spec":{"type":"LoadBalancer"}}"#,
        ],
    );
    assert!(
        refused.contains("services \"web\" is forbidden: exceeded quota: no-lbs, requested: services.loadbalancers=1, used: services.loadbalancers=0, limited: services.loadbalancers=0"),
        "{refused}"
    );

    let ranges = r#"
apiVersion: v1
kind: LimitRange
metadata:
  name: bounds
  namespace: apps
spec:
  limits:
  - type: Container
    min: {cpu: 100m}
    max: {memory: 1Gi}
  - type: PersistentVolumeClaim
    max: {storage: 10Gi}
"#;
    let out = c.apply(V, ranges, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let out = c.apply(V, &pod("x", Some(("50m", "64Mi", "100m", "2Gi"))), &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("pods \"x\" is forbidden: [minimum cpu usage per Container is 100m, but request is 50m, maximum memory usage per Container is 1Gi, but limit is 2Gi]"),
        "{}",
        text(&out)
    );
    let claim = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: big
  namespace: apps
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests: {storage: 20Gi}
"#;
    let out = c.apply(V, claim, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("persistentvolumeclaims \"big\" is forbidden: maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_legacy_token_secret_is_filled_and_authenticates_as_its_service_account() {
    if skip_without_kubectl() {
        return;
    }
    let c = cluster("tokens");
    c.ok(V, &["create", "serviceaccount", "robot", "-n", "apps"]);
    let secret = r#"
apiVersion: v1
kind: Secret
metadata:
  name: robot-token
  namespace: apps
  annotations:
    kubernetes.io/service-account.name: robot
type: kubernetes.io/service-account-token
"#;
    let out = c.apply(V, secret, &[]);
    assert!(out.status.success(), "{}", text(&out));
    c.eventually("the token filled in", || {
        c.json(V, &["get", "secret", "robot-token", "-n", "apps"])["data"]["token"].is_string()
    });
    let got = c.json(V, &["get", "secret", "robot-token", "-n", "apps"]);
    let sa = c.json(V, &["get", "serviceaccount", "robot", "-n", "apps"]);
    assert_eq!(
        got["metadata"]["annotations"]["kubernetes.io/service-account.uid"],
        sa["metadata"]["uid"]
    );
    assert_eq!(got["data"]["namespace"], "YXBwcw=="); // "apps"
    let ca = c.ok(
        V,
        &[
            "config",
            "view",
            "--raw",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        ],
    );
    assert_eq!(got["data"]["ca.crt"], ca.trim());
    let token = c.ok(
        V,
        &[
            "get",
            "secret",
            "robot-token",
            "-n",
            "apps",
            "-o",
            "jsonpath={.data.token}",
        ],
    );
    let token = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, token.trim()).unwrap(),
    )
    .unwrap();
    let whoami = c.json(V, &["--token", &token, "auth", "whoami"]);
    assert_eq!(
        whoami["status"]["userInfo"]["username"], "system:serviceaccount:apps:robot",
        "{whoami:#}"
    );
    // The account's RBAC applies: it may not list pods.
    let refused = c.fails(V, &["--token", &token, "get", "pods", "-n", "apps"]);
    assert!(
        refused.contains("User \"system:serviceaccount:apps:robot\" cannot list resource \"pods\""),
        "{refused}"
    );

    // A Secret naming a missing account is deleted; deleting the account takes its Secret and
    // the token stops working.
    let orphan = secret
        .replace("robot-token", "ghost-token")
        .replace("name: robot", "name: ghost");
    let out = c.apply(V, &orphan, &[]);
    assert!(out.status.success(), "{}", text(&out));
    c.eventually("the ghost's secret deleted", || {
        !c.kubectl(V, &["get", "secret", "ghost-token", "-n", "apps"])
            .status
            .success()
    });
    c.ok(V, &["delete", "serviceaccount", "robot", "-n", "apps"]);
    c.eventually("the robot's secret deleted", || {
        !c.kubectl(V, &["get", "secret", "robot-token", "-n", "apps"])
            .status
            .success()
    });
    let refused = c.fails(V, &["--token", &token, "auth", "whoami"]);
    assert!(refused.contains("Unauthorized"), "{refused}");
}
