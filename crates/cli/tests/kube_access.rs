//! End-to-end: who may do what on a cluster's API, with real kubectl. RBAC over the bootstrap
//! roles, impersonation (`--as`), `kubectl auth can-i` and `whoami`, `kubectl create token` and
//! a service account's own token; and the breadth of kinds the API now stores, validated as
//! kube-apiserver validates them.

mod common;

use std::ops::Deref;
use std::process::Output;

use common::kube_cluster::{KubeCluster, kubectl_missing, text};
use serde_json::Value;

/// The shared cluster harness, driven with kubectl 1.31 and one discovery cache, as a user's
/// kubectl keeps it (so a denied impersonation is seen on the request, not on discovery).
struct Cluster(KubeCluster, tempfile::TempDir);

impl Deref for Cluster {
    type Target = KubeCluster;
    fn deref(&self) -> &KubeCluster {
        &self.0
    }
}

fn cluster(name: &str) -> Cluster {
    let c = Cluster(KubeCluster::create(name), tempfile::tempdir().unwrap());
    // The bootstrap roles come with the cluster's controllers.
    c.0.eventually("the bootstrap roles", || {
        c.kubectl(&["get", "clusterrole", "view"]).status.success()
    });
    c
}

impl Cluster {
    fn kubectl(&self, args: &[&str]) -> Output {
        self.0.kubectl_cached(self.1.path(), "1.31", args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.status.success(), "kubectl {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} succeeded: {}",
            text(&out)
        );
        text(&out)
    }

    fn apply(&self, yaml: &str) -> Output {
        self.0.apply("1.31", yaml, &[])
    }
}

#[test]
fn rbac_impersonation_can_i_whoami_and_service_account_tokens() {
    if let Some(why) = kubectl_missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let c = cluster("access");

    // The kubeconfig's user is the cluster's administrator.
    let me = c.ok(&["auth", "whoami", "-o", "json"]);
    let me: Value = serde_json::from_str(&me).unwrap();
    assert_eq!(me["kind"], "SelfSubjectReview");
    assert_eq!(me["status"]["userInfo"]["username"], "kubernetes-admin");
    assert!(
        me["status"]["userInfo"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == "system:masters"),
        "{me:#}"
    );
    assert_eq!(c.ok(&["auth", "can-i", "create", "pods"]).trim(), "yes");

    // Someone with no binding may do nothing but discovery; kube-apiserver's message.
    assert_eq!(
        c.fails(&["auth", "can-i", "list", "pods", "--as", "alice"])
            .trim(),
        "no"
    );
    let denied = c.fails(&["get", "pods", "-n", "kube-system", "--as", "alice"]);
    assert!(
        denied.contains(
            "Error from server (Forbidden): pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"kube-system\""
        ),
        "{denied}"
    );
    // The bootstrap `edit` role, bound in one namespace, is in force at once there only.
    c.ok(&[
        "create",
        "rolebinding",
        "alice-edit",
        "--clusterrole=edit",
        "--user=alice",
        "-n",
        "default",
    ]);
    assert_eq!(
        c.ok(&[
            "auth",
            "can-i",
            "create",
            "deployments.apps",
            "--as",
            "alice",
            "-n",
            "default"
        ])
        .trim(),
        "yes"
    );
    // `edit` reads secrets but may not grant roles (aggregated from the bootstrap roles).
    assert_eq!(
        c.ok(&[
            "auth", "can-i", "get", "secrets", "--as", "alice", "-n", "default"
        ])
        .trim(),
        "yes"
    );
    assert_eq!(
        c.fails(&[
            "auth",
            "can-i",
            "create",
            "rolebindings",
            "--as",
            "alice",
            "-n",
            "default"
        ])
        .trim(),
        "no"
    );
    c.ok(&["get", "pods", "-n", "default", "--as", "alice"]);
    c.fails(&["get", "pods", "-n", "kube-system", "--as", "alice"]);
    let rules = c.ok(&["auth", "can-i", "--list", "--as", "alice", "-n", "default"]);
    assert!(rules.contains("deployments.apps"), "{rules}");
    // A service account's token from `kubectl create token` (TokenRequest), used as is.
    c.ok(&["create", "serviceaccount", "robot", "-n", "default"]);
    let token = c.ok(&[
        "create",
        "token",
        "robot",
        "-n",
        "default",
        "--duration",
        "15m",
    ]);
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let as_robot = |args: &[&str]| {
        let mut full = vec!["--token", token];
        full.extend(args);
        c.kubectl(&full)
    };
    let who = as_robot(&["auth", "whoami"]);
    assert!(
        text(&who).contains("system:serviceaccount:default:robot"),
        "{}",
        text(&who)
    );
    let denied = as_robot(&["get", "configmaps", "-n", "default"]);
    assert!(
        text(&denied).contains(
            "configmaps is forbidden: User \"system:serviceaccount:default:robot\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\""
        ),
        "{}",
        text(&denied)
    );
    // Impersonating needs the `impersonate` verb, which the robot has not.
    let cannot = as_robot(&["get", "pods", "--as", "alice"]);
    assert!(
        text(&cannot).contains(
            "users \"alice\" is forbidden: User \"system:serviceaccount:default:robot\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        ),
        "{}",
        text(&cannot)
    );
    c.ok(&[
        "create",
        "rolebinding",
        "robot-view",
        "--clusterrole=view",
        "--serviceaccount=default:robot",
        "-n",
        "default",
    ]);
    assert!(
        as_robot(&["get", "configmaps", "-n", "default"])
            .status
            .success()
    );
    // `view` includes metrics-server's aggregated reader; other namespaces stay closed.
    assert_eq!(
        c.ok(&[
            "auth",
            "can-i",
            "list",
            "pods.metrics.k8s.io",
            "--as",
            "system:serviceaccount:default:robot",
            "-n",
            "default"
        ])
        .trim(),
        "yes"
    );
    let metrics = as_robot(&[
        "get",
        "--raw",
        "/apis/metrics.k8s.io/v1beta1/namespaces/kube-system/pods",
    ]);
    assert!(
        text(&metrics).contains("pods.metrics.k8s.io is forbidden"),
        "{}",
        text(&metrics)
    );
    // Too short a token is refused with upstream's message.
    let short = c.fails(&[
        "create",
        "token",
        "robot",
        "-n",
        "default",
        "--duration",
        "1m",
    ]);
    assert!(
        short.contains("may not specify a duration less than 10 minutes"),
        "{short}"
    );
    let missing = c.fails(&["create", "token", "nobody", "-n", "default"]);
    assert!(
        missing.contains("serviceaccounts \"nobody\" not found"),
        "{missing}"
    );
}

#[test]
fn every_kind_charts_carry_is_stored_and_bad_input_gets_upstreams_422() {
    if let Some(why) = kubectl_missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let c = cluster("kinds");
    // componentstatuses: served from the components' health, with upstream's deprecation
    // warning, get and list only.
    let cs = c.kubectl(&["get", "componentstatuses"]);
    assert!(cs.status.success(), "{}", text(&cs));
    let shown = text(&cs);
    assert!(
        shown.contains("Warning: v1 ComponentStatus is deprecated in v1.19+"),
        "{shown}"
    );
    let stdout = String::from_utf8_lossy(&cs.stdout).into_owned();
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "STATUS", "MESSAGE", "ERROR"], "{shown}");
    assert!(
        rows.iter().any(|r| r[..2] == ["etcd-0", "Healthy"]),
        "{shown}"
    );
    let refused = c.fails(&["delete", "componentstatus", "scheduler"]);
    assert!(
        refused.contains("MethodNotAllowed") || refused.contains("not allow"),
        "{refused}"
    );
    // events.k8s.io/v1 Events are the core Events: written in one form, read in the other.
    let event = c.apply(
        r#"
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: hello, namespace: default}
eventTime: "2026-01-01T00:00:00.000000Z"
reportingController: example.com/controller
reportingInstance: controller-1
action: Greet
reason: Hello
type: Normal
note: said hello
regarding: {apiVersion: v1, kind: Namespace, name: default}
"#,
    );
    assert!(event.status.success(), "{}", text(&event));
    let core = c.json("1.31", &["get", "events.v1.", "hello", "-n", "default"]);
    assert_eq!(core["message"], "said hello", "{core:#}");
    assert_eq!(core["involvedObject"]["kind"], "Namespace");
    assert_eq!(core["reportingComponent"], "example.com/controller");
    let new = c.json(
        "1.31",
        &["get", "events.v1.events.k8s.io", "hello", "-n", "default"],
    );
    assert_eq!(new["note"], "said hello", "{new:#}");
    assert_eq!(new["regarding"]["name"], "default");
    // Timestamps are stored as kube-apiserver's Go types write them back: a Time in UTC to the
    // second, a MicroTime in UTC to the microsecond; one Go cannot parse is its error.
    let lease = c.apply(
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: leader}\nspec:\n  holderIdentity: me\n  leaseDurationSeconds: 15\n  acquireTime: \"2026-01-01T02:00:00.000000+02:00\"\n  renewTime: \"2026-01-01T02:00:10.123456+02:00\"\n",
    );
    assert!(lease.status.success(), "{}", text(&lease));
    let stored = c.json("1.31", &["get", "lease", "leader"]);
    assert_eq!(stored["spec"]["acquireTime"], "2026-01-01T00:00:00.000000Z");
    assert_eq!(stored["spec"]["renewTime"], "2026-01-01T00:00:10.123456Z");
    let event = c.apply(
        "apiVersion: v1\nkind: Event\nmetadata: {name: dated}\ninvolvedObject: {kind: Namespace, name: default}\nreason: Dated\nfirstTimestamp: \"2026-01-01T02:00:00.75+02:00\"\n",
    );
    assert!(event.status.success(), "{}", text(&event));
    let stored = c.json("1.31", &["get", "event", "dated"]);
    assert_eq!(stored["firstTimestamp"], "2026-01-01T00:00:00Z");
    // A Secret's data is Go's []byte: base64 wrapped as `base64` wraps it is stored unwrapped,
    // text that is not base64 gets Go's decoding error.
    let wrapped = c.apply(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: wrapped}\ndata:\n  key: |\n    aGVs\n    bG8=\n",
    );
    assert!(wrapped.status.success(), "{}", text(&wrapped));
    let stored = c.json("1.31", &["get", "secret", "wrapped"]);
    assert_eq!(stored["data"]["key"], "aGVsbG8=");
    let plain = c.apply(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: plain}\ndata: {password: hunter2}\n",
    );
    assert!(
        text(&plain).contains("Error from server (BadRequest): error when creating \"STDIN\": Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 4"),
        "{}",
        text(&plain)
    );
    let naive = c.apply(
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: naive}\nspec: {renewTime: \"2026-01-01T02:00:10.123456\"}\n",
    );
    assert!(
        text(&naive).contains("Error from server (BadRequest): error when creating \"STDIN\": Lease in version \"v1\" cannot be handled as a Lease: parsing time \"2026-01-01T02:00:10.123456\" as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse \"\" as \"Z07:00\""),
        "{}",
        text(&naive)
    );
    let out = c.apply(
        r#"
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec: {minAvailable: 1, selector: {matchLabels: {app: web}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 3
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: leader}
spec: {holderIdentity: me}
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: q}
spec: {hard: {pods: "10"}}
---
apiVersion: v1
kind: LimitRange
metadata: {name: lr}
spec:
  limits:
  - {type: Container, default: {cpu: 500m}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: c, image: busybox}]}
"#,
    );
    assert!(out.status.success(), "{}", text(&out));
    for (kind, name) in [
        ("pdb", "web"),
        ("hpa", "web"),
        ("ingress", "web"),
        ("netpol", "deny"),
        ("pvc", "data"),
        ("lease", "leader"),
        ("quota", "q"),
        ("limits", "lr"),
        ("priorityclass", "system-node-critical"),
        ("storageclass", "gp2"),
    ] {
        c.ok(&["get", kind, name]);
    }
    // Printed with upstream's columns.
    let hpa = c.ok(&["get", "hpa", "web"]);
    assert!(
        hpa.starts_with(
            "NAME   REFERENCE        TARGETS              MINPODS   MAXPODS   REPLICAS   AGE"
        ),
        "{hpa}"
    );
    assert!(
        hpa.contains("Deployment/web   cpu: <unknown>/80%   1         3         0"),
        "{hpa}"
    );
    let pdb = c.ok(&["get", "pdb", "web"]);
    assert!(
        pdb.contains("MIN AVAILABLE   MAX UNAVAILABLE   ALLOWED DISRUPTIONS"),
        "{pdb}"
    );
    let sc = c.ok(&["get", "storageclass", "gp2"]);
    assert!(
        sc.contains("kubernetes.io/aws-ebs   Delete          WaitForFirstConsumer   false"),
        "{sc}"
    );
    c.ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let svc = c.ok(&["get", "service", "web", "-o", "wide"]);
    assert!(
        svc.contains("ClusterIP   10.100.") && svc.contains("<none>        80/TCP"),
        "{svc}"
    );
    // A DaemonSet's status has the counters typed clients need from the start.
    let ds: Value = serde_json::from_str(&c.ok(&["get", "ds", "agent", "-o", "json"])).unwrap();
    assert!(ds["status"]["numberReady"].is_number(), "{ds:#}");
    let resources = c.ok(&["api-resources", "-o", "name"]);
    for r in [
        "poddisruptionbudgets.policy",
        "horizontalpodautoscalers.autoscaling",
        "clusterroles.rbac.authorization.k8s.io",
        "customresourcedefinitions.apiextensions.k8s.io",
        "selfsubjectaccessreviews.authorization.k8s.io",
    ] {
        assert!(
            resources.lines().any(|l| l == r),
            "{r} missing: {resources}"
        );
    }

    // Bad input: upstream's 422 messages.
    let negative = c.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: neg}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    resources: {requests: {cpu: \"-1\"}}\n",
    );
    assert!(
        text(&negative).contains(
            "spec.containers[0].resources.requests[cpu]: Invalid value: \"-1\": must be greater than or equal to 0"
        ),
        "{}",
        text(&negative)
    );
    let mismatch = c.apply(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad}\nspec:\n  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: b}}\n    spec: {containers: [{name: c, image: busybox}]}\n",
    );
    assert!(
        text(&mismatch).contains("`selector` does not match template `labels`"),
        "{}",
        text(&mismatch)
    );
    // Values of the wrong JSON type: kube-apiserver's decoding error (400), in Go's words,
    // never a crash (a Service whose spec is a string, or whose ports are strings, once made
    // the server panic). `--validate=false` so kubectl sends them as written.
    for (manifest, said) in [
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: typed}\nspec: oops\n",
            "Service in version \"v1\" cannot be handled as a Service: json: cannot unmarshal string into Go struct field Service.spec of type v1.ServiceSpec",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: typed}\nspec: {type: LoadBalancer, ports: [oops]}\n",
            "json: cannot unmarshal string into Go struct field ServiceSpec.spec.ports of type v1.ServicePort",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: typed}\nspec: {type: NodePort, ports: [{port: 80, nodePort: oops}]}\n",
            "json: cannot unmarshal string into Go struct field ServicePort.spec.ports.nodePort of type int32",
        ),
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: typed}\nspec: {replicas: many}\n",
            "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32",
        ),
    ] {
        let out = c.0.apply("1.31", manifest, &["--validate=false"]);
        assert!(!out.status.success(), "accepted: {manifest}");
        let shown = text(&out);
        assert!(
            shown.contains("BadRequest") && shown.contains(said),
            "{shown}"
        );
    }
    // The same for bodies that are no stored object, sent as written by `kubectl create
    // --raw`: a TokenRequest, an access review, an Eviction and a Binding.
    c.ok(&["create", "serviceaccount", "robot"]);
    c.ok(&["run", "evictable", "--image=busybox"]);
    let bodies = std::env::temp_dir().join(format!("lf-bodies-{}", std::process::id()));
    std::fs::create_dir_all(&bodies).unwrap();
    for (path, body, said) in [
        (
            "/api/v1/namespaces/default/serviceaccounts/robot/token",
            r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":"soon"}}"#,
            "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: json: cannot unmarshal string into Go struct field TokenRequestSpec.spec.expirationSeconds of type int64",
        ),
        (
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{"resourceAttributes":{"verb":5}}}"#,
            "SelfSubjectAccessReview in version \"v1\" cannot be handled as a SelfSubjectAccessReview: json: cannot unmarshal number into Go struct field ResourceAttributes.spec.resourceAttributes.verb of type string",
        ),
        (
            "/api/v1/namespaces/default/pods/evictable/eviction",
            r#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"evictable"},"deleteOptions":{"gracePeriodSeconds":"now"}}"#,
            "Eviction in version \"v1\" cannot be handled as a Eviction: json: cannot unmarshal string into Go struct field DeleteOptions.deleteOptions.gracePeriodSeconds of type int64",
        ),
        (
            "/api/v1/namespaces/default/pods/evictable/binding",
            r#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"evictable"},"target":{"name":7}}"#,
            "Binding in version \"v1\" cannot be handled as a Binding: json: cannot unmarshal number into Go struct field ObjectReference.target.name of type string",
        ),
    ] {
        let file = bodies.join("body.json");
        std::fs::write(&file, body).unwrap();
        let shown = c.fails(&["create", "--raw", path, "-f", &file.display().to_string()]);
        assert!(
            shown.contains(&format!("Error from server (BadRequest): {said}")),
            "{path}: {shown}"
        );
    }
    let _ = std::fs::remove_dir_all(&bodies);
    // Well typed, the same endpoints answer (the pod is still there: the eviction was refused).
    assert!(!c.ok(&["create", "token", "robot"]).trim().is_empty());
    c.ok(&["get", "pod", "evictable"]);
    let big = "x".repeat(1024 * 1024 + 1);
    let file = std::env::temp_dir().join(format!("lf-big-{}", std::process::id()));
    std::fs::write(&file, &big).unwrap();
    let from_file = format!("--from-file=big={}", file.display());
    let too_big = c.fails(&["create", "configmap", "big", &from_file]);
    let _ = std::fs::remove_file(&file);
    assert!(
        too_big.contains("Too long: must have at most 1048576 bytes"),
        "{too_big}"
    );
    // A Job applied without template metadata: its pods carry the labels its selector matches.
    let job = c.apply(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: once}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: busybox}]\n",
    );
    assert!(job.status.success(), "{}", text(&job));
    let job: Value = serde_json::from_str(&c.ok(&["get", "job", "once", "-o", "json"])).unwrap();
    let labels = &job["spec"]["template"]["metadata"]["labels"];
    for key in [
        "job-name",
        "batch.kubernetes.io/job-name",
        "controller-uid",
        "batch.kubernetes.io/controller-uid",
    ] {
        assert!(labels[key].is_string(), "{key}: {job:#}");
    }
    let selector = &job["spec"]["selector"]["matchLabels"];
    for (k, v) in selector.as_object().unwrap() {
        assert_eq!(&labels[k], v, "{job:#}");
    }
}
