//! End-to-end: admission and conversion webhooks called as kube-apiserver calls them, with real
//! kubectl and a real webhook server (Python's `http.server` over TLS with a certificate this
//! test makes, `fixtures/webhook_server.py`). Reached by `clientConfig.url` and by
//! `clientConfig.service`: a selector-less Service whose EndpointSlice points at an address of
//! this host the server listens on, the way a webhook pod's address is reached from the host
//! (the API server resolves the Service to its ready endpoints itself).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine;
use common::kube_cluster::{KubeCluster, skip_without_kubectl, text};
use serde_json::Value;

const V: &str = "1.33";

/// The webhook server, stopped when dropped.
struct Hooks {
    child: Child,
    port: u16,
    log: PathBuf,
    ca_bundle: String,
    _dir: tempfile::TempDir,
}

impl Drop for Hooks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Hooks {
    /// The reviews the server received on `path`, in order.
    fn reviews(&self, path: &str) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["path"] == path)
            .collect()
    }
}

/// A non-loopback IPv4 address of this host (what a pod address is to the API server: reached
/// directly, not through a ClusterIP).
fn host_address() -> Option<String> {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter_map(|cidr| cidr.split('/').next())
        .map(str::to_string)
        .next()
}

fn start_hooks(address: &str) -> Hooks {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "webhook test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let mut params = CertificateParams::new(vec!["webhook.hooks.svc".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    params
        .subject_alt_names
        .push(SanType::IpAddress(address.parse().unwrap()));
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let cert_path = dir.path().join("tls.crt");
    let key_path = dir.path().join("tls.key");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let log = dir.path().join("requests.jsonl");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webhook_server.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(&cert_path)
        .arg(&key_path)
        .arg(&log)
        .arg("0.0.0.0")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().expect("the webhook server's port");
    Hooks {
        child,
        port,
        log,
        ca_bundle: base64::engine::general_purpose::STANDARD.encode(ca.pem()),
        _dir: dir,
    }
}

fn applied(c: &KubeCluster, yaml: &str) {
    let out = c.apply(V, yaml, &[]);
    assert!(out.status.success(), "{}\n{yaml}", text(&out));
}

/// `kubectl apply` that must fail; what kubectl printed.
fn refused(c: &KubeCluster, yaml: &str, flags: &[&str]) -> String {
    let out = c.apply(V, yaml, flags);
    assert!(!out.status.success(), "applied: {}", text(&out));
    text(&out)
}

/// Asserts kubectl's output carries webhook `hook`'s denial "not here" (kubectl quotes the
/// webhook's name with or without backslashes depending on how it prints the Status).
fn assert_denied_here_by(said: &str, hook: &str) {
    let plain = format!(r#"admission webhook "{hook}" denied the request: not here"#);
    let escaped = format!(r#"admission webhook \"{hook}\" denied the request: not here"#);
    assert!(said.contains(&plain) || said.contains(&escaped), "{said}");
}

/// `kubectl create --raw PATH -f BODY` must be denied by webhook `hook`.
fn raw_create_is_denied(c: &KubeCluster, path: &str, body: &Path, hook: &str) {
    let body = body.to_str().unwrap();
    let said = c.fails(V, &["create", "--raw", path, "-f", body]);
    assert_denied_here_by(&said, hook);
}

fn config_map(ns: &str, name: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {labels}\ndata: {{a: b}}\n"
    )
}

#[test]
fn admission_webhooks_are_called_for_the_requests_they_match() {
    if skip_without_kubectl() {
        return;
    }
    let address = host_address().unwrap_or_else(|| "127.0.0.1".to_string());
    let hooks = start_hooks(&address);
    let c = KubeCluster::create("hooks");
    let port = hooks.port;
    let ca = &hooks.ca_bundle;
    applied(
        &c,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: hooked, labels: {webhooks: \"on\"}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: plain}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: hooks}\n",
    );
    // Validating, by URL, for config maps in namespaces labelled webhooks=on.
    applied(
        &c,
        &format!(
            r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: deny}}
webhooks:
- name: deny.example.com
  clientConfig:
    url: https://127.0.0.1:{port}/validate
    caBundle: {ca}
  rules:
  - {{operations: [CREATE, UPDATE], apiGroups: [""], apiVersions: [v1], resources: [configmaps]}}
  namespaceSelector: {{matchLabels: {{webhooks: "on"}}}}
  sideEffects: None
  admissionReviewVersions: [v1]
"#
        ),
    );
    let said = refused(&c, &config_map("hooked", "bad", "{forbidden: x}"), &[]);
    assert!(
        said.contains(
            r#"admission webhook "deny.example.com" denied the request: the label forbidden is not allowed here"#
        ),
        "{said}"
    );
    // Nothing was written.
    let missing = c.fails(V, &["get", "configmap", "bad", "-n", "hooked"]);
    assert!(missing.contains("NotFound"), "{missing}");
    // Another namespace is not selected.
    applied(&c, &config_map("plain", "bad", "{forbidden: x}"));
    // An allowed request carries the webhook's warning.
    let out = c.apply(V, &config_map("hooked", "good", "{ok: x}"), &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Warning: checked by the test webhook"),
        "{}",
        text(&out)
    );
    let reviews = hooks.reviews("/validate");
    let review = &reviews.last().unwrap()["review"];
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    let request = &review["request"];
    assert_eq!(request["operation"], "CREATE");
    assert_eq!(request["kind"]["kind"], "ConfigMap");
    assert_eq!(request["resource"]["resource"], "configmaps");
    assert_eq!(request["namespace"], "hooked");
    assert_eq!(request["name"], "good");
    assert_eq!(request["dryRun"], false);
    assert_eq!(request["options"]["kind"], "CreateOptions");
    assert!(request["uid"].as_str().is_some_and(|u| !u.is_empty()));
    assert!(
        request["userInfo"]["username"]
            .as_str()
            .is_some_and(|u| !u.is_empty()),
        "{request}"
    );
    assert_eq!(request["object"]["metadata"]["labels"]["ok"], "x");

    // Mutating, through a Service: a selector-less one whose EndpointSlice names this host.
    applied(
        &c,
        &format!(
            r#"
apiVersion: v1
kind: Service
metadata: {{name: webhook, namespace: hooks}}
spec:
  ports: [{{name: https, port: 443, targetPort: {port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: webhook-1
  namespace: hooks
  labels: {{kubernetes.io/service-name: webhook}}
addressType: IPv4
endpoints:
- addresses: ["{address}"]
  conditions: {{ready: true}}
ports: [{{name: https, port: {port}, protocol: TCP}}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {{name: label}}
webhooks:
- name: label.example.com
  clientConfig:
    service: {{namespace: hooks, name: webhook, path: /mutate, port: 443}}
    caBundle: {ca}
  rules:
  - {{operations: [CREATE], apiGroups: ["*"], apiVersions: ["*"], resources: [configmaps], scope: Namespaced}}
  objectSelector: {{matchLabels: {{mutate: me}}}}
  sideEffects: NoneOnDryRun
  admissionReviewVersions: [v1beta1, v1]
"#
        ),
    );
    applied(&c, &config_map("plain", "patched", "{mutate: me}"));
    let got = c.json(V, &["get", "configmap", "patched", "-n", "plain"]);
    assert_eq!(got["metadata"]["labels"]["mutated"], "yes", "{got}");
    // Not selected by the object selector: left alone.
    applied(&c, &config_map("plain", "unpatched", "{other: x}"));
    let got = c.json(V, &["get", "configmap", "unpatched", "-n", "plain"]);
    assert!(got["metadata"]["labels"].get("mutated").is_none(), "{got}");
    let mutations = hooks.reviews("/mutate");
    assert_eq!(mutations.len(), 1, "{mutations:?}");
    assert_eq!(mutations[0]["host"], "webhook.hooks.svc:443");
    assert_eq!(mutations[0]["query"], "timeout=10s");
    assert_eq!(
        mutations[0]["review"]["apiVersion"],
        "admission.k8s.io/v1beta1"
    );
    // A dry run is sent with dryRun set (NoneOnDryRun), and nothing is kept.
    applied_dry_run(&c, &config_map("plain", "dry", "{mutate: me}"));
    let mutations = hooks.reviews("/mutate");
    assert_eq!(
        mutations.last().unwrap()["review"]["request"]["dryRun"],
        true
    );
    c.fails(V, &["get", "configmap", "dry", "-n", "plain"]);

    // Reinvocation: a webhook with `reinvocationPolicy: IfNeeded` is called again once a later
    // webhook changed the object.
    applied(
        &c,
        &format!(
            r#"
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {{name: reinvoke}}
webhooks:
- name: again.example.com
  clientConfig: {{url: "https://127.0.0.1:{port}/mutate", caBundle: {ca}}}
  rules: [{{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [configmaps]}}]
  objectSelector: {{matchLabels: {{again: me}}}}
  reinvocationPolicy: IfNeeded
  sideEffects: None
  admissionReviewVersions: [v1]
- name: annotate.example.com
  clientConfig: {{url: "https://127.0.0.1:{port}/annotate", caBundle: {ca}}}
  rules: [{{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [configmaps]}}]
  objectSelector: {{matchLabels: {{again: me}}}}
  sideEffects: None
  admissionReviewVersions: [v1]
"#
        ),
    );
    applied(&c, &config_map("plain", "twice", "{again: me}"));
    let calls: Vec<Value> = hooks
        .reviews("/mutate")
        .into_iter()
        .filter(|r| r["review"]["request"]["name"] == "twice")
        .collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(
        calls[1]["review"]["request"]["object"]["metadata"]["annotations"]["annotated"],
        "yes"
    );
    let got = c.json(V, &["get", "configmap", "twice", "-n", "plain"]);
    assert_eq!(got["metadata"]["labels"]["mutated"], "yes", "{got}");
    assert_eq!(got["metadata"]["annotations"]["annotated"], "yes", "{got}");

    // A v1 configuration must declare no side effects (upstream refuses `Unknown` and `Some`
    // on create), so a dry run never meets a webhook with side effects unless an older
    // configuration was kept.
    let said = refused(
        &c,
        &format!(
            r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: effects}}
webhooks:
- name: effects.example.com
  clientConfig: {{url: "https://127.0.0.1:{port}/validate", caBundle: {ca}}}
  rules:
  - {{operations: ["*"], apiGroups: [""], apiVersions: [v1], resources: [secrets]}}
  sideEffects: Unknown
  admissionReviewVersions: [v1]
"#
        ),
        &[],
    );
    assert!(
        said.contains(r#"webhooks[0].sideEffects: Unsupported value: "Unknown": supported values: "None", "NoneOnDryRun""#),
        "{said}"
    );
    let secret =
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: plain}\nstringData: {a: b}\n";
    applied_dry_run(&c, secret);
    applied(&c, secret);
}

fn applied_dry_run(c: &KubeCluster, yaml: &str) {
    let out = c.apply(V, yaml, &["--dry-run=server"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn failure_policies_and_timeouts() {
    if skip_without_kubectl() {
        return;
    }
    let hooks = start_hooks("127.0.0.1");
    let c = KubeCluster::create("hookfail");
    // Nothing listens there.
    let down = common::free_port();
    let (port, ca) = (hooks.port, &hooks.ca_bundle);
    applied(
        &c,
        &format!(
            r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: down}}
webhooks:
- name: down-ignore.example.com
  clientConfig: {{url: "https://127.0.0.1:{down}/validate", caBundle: {ca}}}
  rules: [{{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [configmaps]}}]
  failurePolicy: Ignore
  sideEffects: None
  admissionReviewVersions: [v1]
- name: down-fail.example.com
  clientConfig: {{url: "https://127.0.0.1:{down}/validate", caBundle: {ca}}}
  rules: [{{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [serviceaccounts]}}]
  sideEffects: None
  admissionReviewVersions: [v1]
- name: slow.example.com
  clientConfig: {{url: "https://127.0.0.1:{port}/slow", caBundle: {ca}}}
  rules: [{{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [limitranges]}}]
  timeoutSeconds: 1
  sideEffects: None
  admissionReviewVersions: [v1]
"#
        ),
    );
    // Ignore: the request goes through without the webhook.
    applied(&c, &config_map("default", "through", "{a: b}"));
    // Fail (the default): refused with the call's error.
    let said = refused(
        &c,
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa, namespace: default}\n",
        &[],
    );
    assert!(
        said.contains(&format!(
            r#"Internal error occurred: failed calling webhook "down-fail.example.com": failed to call webhook: Post "https://127.0.0.1:{down}/validate?timeout=10s": dial tcp 127.0.0.1:{down}: connect: connection refused"#
        )),
        "{said}"
    );
    c.fails(V, &["get", "serviceaccount", "sa"]);
    // A webhook slower than its timeout.
    let said = refused(
        &c,
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: lr, namespace: default}\nspec: {limits: [{type: Container, max: {cpu: '1'}}]}\n",
        &[],
    );
    assert!(
        said.contains(&format!(
            r#"failed calling webhook "slow.example.com": failed to call webhook: Post "https://127.0.0.1:{port}/slow?timeout=1s": context deadline exceeded"#
        )),
        "{said}"
    );
    // A CA that did not sign the server's certificate.
    let other = start_hooks("127.0.0.1");
    applied(
        &c,
        &format!(
            r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: wrong-ca}}
webhooks:
- name: wrong-ca.example.com
  clientConfig: {{url: "https://127.0.0.1:{port}/validate", caBundle: {}}}
  rules: [{{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [resourcequotas]}}]
  sideEffects: None
  admissionReviewVersions: [v1]
"#,
            other.ca_bundle
        ),
    );
    let said = refused(
        &c,
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q, namespace: default}\nspec: {hard: {pods: '5'}}\n",
        &[],
    );
    assert!(
        said.contains(&format!(
            r#"failed calling webhook "wrong-ca.example.com": failed to call webhook: Post "https://127.0.0.1:{port}/validate?timeout=10s": tls: failed to verify certificate: x509: certificate signed by unknown authority"#
        )),
        "{said}"
    );
    // CONNECT: an exec is sent as PodExecOptions before the connection is upgraded.
    applied(
        &c,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: shell, namespace: default}}
spec:
  containers: [{{name: app, image: busybox}}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: no-exec}}
webhooks:
- name: no-exec.example.com
  clientConfig: {{url: "https://127.0.0.1:{port}/deny", caBundle: {ca}}}
  rules: [{{operations: [CONNECT], apiGroups: [""], apiVersions: [v1], resources: [pods/exec]}}]
  sideEffects: None
  admissionReviewVersions: [v1]
- name: no-eviction.example.com
  clientConfig: {{url: "https://127.0.0.1:{port}/deny", caBundle: {ca}}}
  rules: [{{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [pods/eviction]}}]
  sideEffects: None
  admissionReviewVersions: [v1]
"#
        ),
    );
    let said = c.fails(V, &["exec", "shell", "--", "ls", "/"]);
    assert_denied_here_by(&said, "no-exec.example.com");
    let connects = hooks.reviews("/deny");
    let request = &connects.last().unwrap()["review"]["request"];
    assert_eq!(request["operation"], "CONNECT");
    assert_eq!(request["kind"]["kind"], "PodExecOptions");
    assert_eq!(request["subResource"], "exec");
    assert_eq!(request["object"]["command"], serde_json::json!(["ls", "/"]));
    // A subresource create that is not stored: an eviction.
    let dir = tempfile::tempdir().unwrap();
    let eviction = dir.path().join("eviction.json");
    std::fs::write(
        &eviction,
        r#"{"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "shell", "namespace": "default"}}"#,
    )
    .unwrap();
    raw_create_is_denied(
        &c,
        "/api/v1/namespaces/default/pods/shell/eviction",
        &eviction,
        "no-eviction.example.com",
    );
    let evictions = hooks.reviews("/deny");
    let request = &evictions.last().unwrap()["review"]["request"];
    assert_eq!(
        request["kind"],
        serde_json::json!({"group": "policy", "version": "v1", "kind": "Eviction"})
    );
    assert_eq!(request["subResource"], "eviction");
    c.ok(V, &["get", "pod", "shell"]);
    // A port-forward is a CONNECT of `pods/portforward` (PodPortForwardOptions), and a binding a
    // CREATE of `pods/binding` (a v1 Binding): webhooks that take them are asked first.
    applied(
        &c,
        &format!(
            r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: no-forward-or-binding}}
webhooks:
- name: no-forward.example.com
  clientConfig: {{url: "https://127.0.0.1:{port}/deny", caBundle: {ca}}}
  rules: [{{operations: [CONNECT], apiGroups: [""], apiVersions: [v1], resources: [pods/portforward]}}]
  sideEffects: None
  admissionReviewVersions: [v1]
- name: no-binding.example.com
  clientConfig: {{url: "https://127.0.0.1:{port}/deny", caBundle: {ca}}}
  rules: [{{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [pods/binding]}}]
  sideEffects: None
  admissionReviewVersions: [v1]
"#
        ),
    );
    // kubectl forwards only to a running pod: one on Fargate, through a profile made now (the
    // pod `shell` above, made before any profile, stays Pending as on EKS).
    c.fargate_profile("fp-default", "default");
    applied(
        &c,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: forwarded, namespace: default}\nspec: {containers: [{name: app, image: busybox}]}\n",
    );
    c.ok(
        V,
        &[
            "wait",
            "--for=jsonpath={.status.phase}=Running",
            "pod/forwarded",
            "--timeout=120s",
        ],
    );
    let said = c.fails(V, &["port-forward", "pod/forwarded", ":8080"]);
    assert_denied_here_by(&said, "no-forward.example.com");
    let request = &hooks.reviews("/deny").last().unwrap()["review"]["request"].clone();
    assert_eq!(request["operation"], "CONNECT");
    assert_eq!(request["subResource"], "portforward");
    assert_eq!(request["kind"]["kind"], "PodPortForwardOptions");
    let binding = dir.path().join("binding.json");
    std::fs::write(
        &binding,
        r#"{"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "forwarded"}, "target": {"kind": "Node", "name": "elsewhere"}}"#,
    )
    .unwrap();
    raw_create_is_denied(
        &c,
        "/api/v1/namespaces/default/pods/forwarded/binding",
        &binding,
        "no-binding.example.com",
    );
    let request = &hooks.reviews("/deny").last().unwrap()["review"]["request"].clone();
    assert_eq!(request["operation"], "CREATE");
    assert_eq!(request["subResource"], "binding");
    assert_eq!(
        request["kind"],
        serde_json::json!({"group": "", "version": "v1", "kind": "Binding"})
    );
    assert_eq!(request["object"]["target"]["name"], "elsewhere");
    c.ok(
        V,
        &[
            "delete",
            "validatingwebhookconfiguration",
            "no-forward-or-binding",
        ],
    );
    // A scale is admitted as `deployments/scale` with Scale objects, not as the Deployment.
    applied(
        &c,
        &format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: default}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: app, image: nginx}}]}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: no-scale}}
webhooks:
- name: no-scale.example.com
  clientConfig: {{url: "https://127.0.0.1:{port}/deny", caBundle: {ca}}}
  rules: [{{operations: [UPDATE], apiGroups: [apps], apiVersions: [v1], resources: [deployments/scale]}}]
  sideEffects: None
  admissionReviewVersions: [v1]
- name: deployments.example.com
  clientConfig: {{url: "https://127.0.0.1:{port}/validate", caBundle: {ca}}}
  rules: [{{operations: [UPDATE], apiGroups: [apps], apiVersions: [v1], resources: [deployments]}}]
  sideEffects: None
  admissionReviewVersions: [v1]
"#
        ),
    );
    let said = c.fails(V, &["scale", "deployment", "web", "--replicas=3"]);
    assert_denied_here_by(&said, "no-scale.example.com");
    let request = &hooks.reviews("/deny").last().unwrap()["review"]["request"].clone();
    assert_eq!(
        request["kind"],
        serde_json::json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    );
    assert_eq!(request["resource"]["resource"], "deployments");
    assert_eq!(request["subResource"], "scale");
    assert_eq!(request["object"]["spec"]["replicas"], 3);
    assert_eq!(request["oldObject"]["spec"]["replicas"], 1);
    // The Deployment's own webhook never saw the scaled Deployment (the controllers' own
    // updates of it may reach it meanwhile).
    let scaled = hooks
        .reviews("/validate")
        .iter()
        .filter(|r| r["review"]["request"]["object"]["spec"]["replicas"] == 3)
        .count();
    assert_eq!(
        scaled, 0,
        "the Deployment's own webhook is not called for a scale"
    );
    let web = c.json(V, &["get", "deployment", "web"]);
    assert_eq!(web["spec"]["replicas"], 1);
    // Webhook configurations themselves are never sent to webhooks: deleting them works.
    c.ok(
        V,
        &[
            "delete",
            "validatingwebhookconfiguration",
            "down",
            "wrong-ca",
        ],
    );
    applied(
        &c,
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa, namespace: default}\n",
    );
}

const CRONTAB_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: crontabs.stable.example.com}
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {cronSpec: {type: string}}}
  - name: v2
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {schedule: {type: string}}}
  conversion:
    strategy: Webhook
    webhook:
      conversionReviewVersions: [v1]
      clientConfig: {url: "https://127.0.0.1:PORT/convert", caBundle: CA}
"#;

#[test]
fn conversion_webhooks_convert_between_versions() {
    if skip_without_kubectl() {
        return;
    }
    let hooks = start_hooks("127.0.0.1");
    let c = KubeCluster::create("convert");
    let crd = CRONTAB_CRD
        .replace("PORT", &hooks.port.to_string())
        .replace("CA", &hooks.ca_bundle);
    applied(&c, &crd);
    c.eventually("the CronTab versions served", || {
        c.kubectl(V, &["get", "crontabs.v2.stable.example.com"])
            .status
            .success()
    });
    // Written through v2, stored in v1 by the webhook, read back through either version.
    applied(
        &c,
        "apiVersion: stable.example.com/v2\nkind: CronTab\nmetadata: {name: nightly, namespace: default, labels: {a: b}}\nspec: {schedule: '0 3 * * *'}\n",
    );
    let v1 = c.json(V, &["get", "crontabs.v1.stable.example.com", "nightly"]);
    assert_eq!(v1["apiVersion"], "stable.example.com/v1");
    assert_eq!(v1["spec"]["cronSpec"], "0 3 * * *", "{v1}");
    let v2 = c.json(V, &["get", "crontabs.v2.stable.example.com", "nightly"]);
    assert_eq!(v2["apiVersion"], "stable.example.com/v2");
    assert_eq!(v2["spec"]["schedule"], "0 3 * * *", "{v2}");
    assert_eq!(v2["metadata"]["uid"], v1["metadata"]["uid"]);
    let list = c.json(V, &["get", "crontabs.v2.stable.example.com"]);
    assert_eq!(list["items"][0]["spec"]["schedule"], "0 3 * * *", "{list}");
    let reviews = hooks.reviews("/convert");
    let review = &reviews.first().unwrap()["review"];
    assert_eq!(review["apiVersion"], "apiextensions.k8s.io/v1");
    assert_eq!(
        review["request"]["desiredAPIVersion"],
        "stable.example.com/v1"
    );
    // Under `matchPolicy: Equivalent` (the default) a rule naming v1 takes a write through v2,
    // and the webhook is sent the object converted to v1.
    applied(
        &c,
        &format!(
            r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: crontabs}}
webhooks:
- name: crontabs.example.com
  clientConfig: {{url: "https://127.0.0.1:{}/validate", caBundle: {}}}
  rules: [{{operations: [CREATE], apiGroups: [stable.example.com], apiVersions: [v1], resources: [crontabs]}}]
  sideEffects: None
  admissionReviewVersions: [v1]
"#,
            hooks.port, hooks.ca_bundle
        ),
    );
    applied(
        &c,
        "apiVersion: stable.example.com/v2\nkind: CronTab\nmetadata: {name: weekly, namespace: default}\nspec: {schedule: '0 4 * * 0'}\n",
    );
    let validated = hooks.reviews("/validate");
    let request = &validated.last().unwrap()["review"]["request"];
    assert_eq!(request["kind"]["version"], "v1", "{request}");
    assert_eq!(request["resource"]["version"], "v1");
    assert_eq!(request["requestKind"]["version"], "v2");
    assert_eq!(request["requestResource"]["version"], "v2");
    assert_eq!(request["object"]["apiVersion"], "stable.example.com/v1");
    assert_eq!(request["object"]["spec"]["cronSpec"], "0 4 * * 0");
    // The webhook gone: reads through the other version fail with upstream's message, the
    // storage version still reads.
    drop(hooks);
    let said = c.fails(V, &["get", "crontabs.v2.stable.example.com", "nightly"]);
    assert!(
        said.contains("conversion webhook for stable.example.com/v1, Kind=CronTab failed: Post \"https://127.0.0.1:"),
        "{said}"
    );
    c.ok(V, &["get", "crontabs.v1.stable.example.com", "nightly"]);
}

/// A webhook's `matchConditions` decide, per request, whether it is called; and configurations
/// with bad fields are refused with upstream's 422 messages.
#[test]
fn match_conditions_and_configuration_validation() {
    if skip_without_kubectl() {
        return;
    }
    let hooks = start_hooks("127.0.0.1");
    let c = KubeCluster::create("hookcel");
    let (port, ca) = (hooks.port, &hooks.ca_bundle);
    applied(
        &c,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: cel}\n",
    );
    applied(
        &c,
        &format!(
            r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: conditions}}
webhooks:
- name: deny-prefixed.example.com
  clientConfig: {{url: "https://127.0.0.1:{port}/deny", caBundle: {ca}}}
  rules: [{{operations: [CREATE, UPDATE], apiGroups: [""], apiVersions: [v1], resources: [configmaps]}}]
  matchConditions:
  - name: in-cel
    expression: request.namespace == 'cel' && request.operation == 'CREATE'
  - name: prefixed
    expression: object.metadata.name.startsWith('deny-') && oldObject == null
  sideEffects: None
  admissionReviewVersions: [v1]
- name: broken-fail.example.com
  clientConfig: {{url: "https://127.0.0.1:{port}/validate", caBundle: {ca}}}
  rules: [{{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [secrets]}}]
  matchConditions:
  - name: needs-data
    expression: object.data.token == 'x'
  sideEffects: None
  admissionReviewVersions: [v1]
- name: broken-ignore.example.com
  clientConfig: {{url: "https://127.0.0.1:{port}/deny", caBundle: {ca}}}
  rules: [{{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [serviceaccounts]}}]
  matchConditions:
  - name: needs-secrets
    expression: size(object.secrets) > 0
  failurePolicy: Ignore
  sideEffects: None
  admissionReviewVersions: [v1]
"#
        ),
    );
    // Both conditions true: called, and it denies.
    let said = refused(&c, &config_map("cel", "deny-me", "{a: b}"), &[]);
    assert_denied_here_by(&said, "deny-prefixed.example.com");
    // One false (the name, or the namespace): not called at all.
    applied(&c, &config_map("cel", "keep-me", "{a: b}"));
    applied(&c, &config_map("default", "deny-elsewhere", "{a: b}"));
    let called: Vec<String> = hooks
        .reviews("/deny")
        .iter()
        .filter_map(|r| r["review"]["request"]["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(called, vec!["deny-me".to_string()], "{called:?}");
    // A condition that fails to evaluate, under Fail: 403 with the evaluation error.
    let said = refused(
        &c,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: plain-secret, namespace: cel}\nstringData: {other: 'y'}\n",
        &[],
    );
    assert!(
        said.contains(r#"secrets "plain-secret" is forbidden: expression 'object.data.token == 'x'' resulted in error: "#),
        "{said}"
    );
    c.fails(V, &["get", "secret", "plain-secret", "-n", "cel"]);
    // The same expression evaluates when the key is there (false here): not called.
    applied(
        &c,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: token-secret, namespace: cel}\ndata: {token: eQ==}\n",
    );
    assert!(hooks.reviews("/validate").is_empty());
    // Under Ignore, the failed evaluation skips the webhook (which would deny).
    applied(
        &c,
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: robot, namespace: cel}\n",
    );

    // Configurations with bad fields: upstream's 422 messages.
    let said = refused(
        &c,
        &format!(
            r#"
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {{name: bad}}
webhooks:
- name: short.com
  clientConfig: {{url: "http://127.0.0.1:{port}/mutate?x=1", service: {{namespace: hooks, name: webhook}}}}
  rules: [{{operations: [CREATE, PATCH], apiGroups: [""], apiVersions: [v1], resources: ["*/*", pods]}}]
  timeoutSeconds: 31
  matchConditions:
  - {{name: one, expression: "object.metadata.name =="}}
  - {{name: one, expression: "nope == 1"}}
- name: short.com
  clientConfig: {{url: "http://u@127.0.0.1:{port}/mutate#frag"}}
  rules: [{{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [pods]}}]
  sideEffects: Some
  admissionReviewVersions: [v2]
"#
        ),
        &[],
    );
    for expected in [
        r#"The MutatingWebhookConfiguration "bad" is invalid"#,
        r#"webhooks[0].name: Invalid value: "short.com": should be a domain with at least three segments separated by dots"#,
        r#"webhooks[0].rules[0].operations[1]: Unsupported value: "PATCH": supported values: "*", "CONNECT", "CREATE", "DELETE", "UPDATE""#,
        r#"webhooks[0].rules[0].resources: Invalid value: []string{"*/*", "pods"}: if '*/*' is present, must not specify other resources"#,
        "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun",
        "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds",
        "webhooks[0].clientConfig: Required value: exactly one of url or service is required",
        r#"webhooks[0].matchConditions[0].expression: Invalid value: "object.metadata.name ==": compilation failed: ERROR: <input>:1:"#,
        r#"webhooks[0].matchConditions[1].expression: Invalid value: "nope == 1": compilation failed: ERROR: <input>:1:1: undeclared reference to 'nope' (in container '')"#,
        r#"webhooks[0].matchConditions[1].name: Duplicate value: "one""#,
        "webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1",
        r#"webhooks[1].clientConfig.url: Invalid value: "http": 'https' is the only allowed URL scheme; desired format: https://host[/path]"#,
        r#"webhooks[1].clientConfig.url: Invalid value: "u": user information is not permitted in the URL"#,
        r#"webhooks[1].clientConfig.url: Invalid value: "frag": fragments are not permitted in the URL"#,
        r#"webhooks[1].sideEffects: Unsupported value: "Some": supported values: "None", "NoneOnDryRun""#,
        r#"webhooks[1].admissionReviewVersions: Invalid value: []string{"v2"}: must include at least one of v1, v1beta1"#,
        r#"webhooks[1].name: Duplicate value: "short.com""#,
    ] {
        assert!(said.contains(expected), "missing {expected}\nin: {said}");
    }
    c.fails(V, &["get", "mutatingwebhookconfiguration", "bad"]);
}
