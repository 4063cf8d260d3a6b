//! End-to-end: Kubernetes protobuf with real clients against a running `localfargate up`
//! (simulated runtime). kubectl 1.32/1.33 typed clients write protobuf (`create …`) and read it
//! (`describe`, `rollout history`); an HTTPS client of this test's own lists and watches pods
//! with `Accept: application/vnd.kubernetes.protobuf` and decodes the answers with k8s-pb's
//! prost types, a decoder independent of the server's transcoder.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use common::kube_cluster::{KUBECTL_DIR, KubeCluster, text};
use common::localfargate;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use k8s_pb::api::core::v1::{Pod, PodList};
use k8s_pb::apimachinery::pkg::apis::meta::v1::{Status, WatchEvent};
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
/// What client-go sends for built-in kinds.
const CLIENT_GO_ACCEPT: &str = "application/vnd.kubernetes.protobuf, application/json";

/// The shared cluster harness, with the kubeconfig as JSON for this test's own client.
struct Cluster {
    inner: KubeCluster,
    config: Value,
}

impl std::ops::Deref for Cluster {
    type Target = KubeCluster;
    fn deref(&self) -> &KubeCluster {
        &self.inner
    }
}

fn cluster(name: &str) -> Cluster {
    let inner = KubeCluster::create(name);
    let json = localfargate(
        &inner.server,
        &["kubeconfig", "--cluster", name, "-o", "json"],
    );
    assert!(json.status.success(), "{}", text(&json));
    Cluster {
        inner,
        config: serde_json::from_slice(&json.stdout).unwrap(),
    }
}

impl Cluster {
    /// An object as kubectl 1.31 reads it (JSON all the way).
    fn json(&self, args: &[&str]) -> Value {
        self.inner.json("1.31", args)
    }

    fn profile(&self, namespace: &str) {
        let out = localfargate(
            &self.server,
            &[
                "profile",
                "create",
                "--cluster",
                &self.name,
                "--name",
                &format!("fp-{namespace}"),
                "--namespace",
                namespace,
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
    }
}

/// The response headers kubectl -v=8 logged for its requests.
fn response_content_types(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| {
            l.split_once("Content-Type: ")
                .map(|(_, t)| t.trim().to_string())
        })
        .collect()
}

#[test]
fn kubectl_132_and_133_typed_creates_write_protobuf() {
    let c = cluster("pbwrite");
    for v in ["1.32", "1.33"] {
        let n = format!("pb{}", v.replace('.', ""));
        let image = format!("nginx:{v}");
        let secret_literal = format!("--from-literal=pw=s3cret-{v}");
        let creates: Vec<Vec<&str>> = vec![
            vec!["create", "namespace", &n],
            vec![
                "create",
                "deployment",
                &n,
                "--image",
                &image,
                "--replicas",
                "2",
                "--port",
                "8080",
            ],
            vec!["create", "job", &n, "--image", &image, "--", "echo", "hi"],
            vec![
                "create",
                "cronjob",
                &n,
                "--image",
                &image,
                "--schedule",
                "*/5 * * * *",
            ],
            vec![
                "create",
                "configmap",
                &n,
                "--from-literal=a=b",
                "--from-literal=empty=",
            ],
            vec!["create", "secret", "generic", &n, &secret_literal],
            vec!["create", "serviceaccount", &n],
        ];
        for args in &creates {
            // -v=8 logs the request's content type: protobuf is what is being tested.
            let mut verbose = vec!["-v=8"];
            verbose.extend(args);
            let out = c.kubectl(v, &verbose);
            assert!(out.status.success(), "{v} {args:?}: {}", text(&out));
            let log = String::from_utf8_lossy(&out.stderr);
            assert!(
                log.contains(&format!("Content-Type: {PROTOBUF}")),
                "{v} {args:?} did not send protobuf: {log}"
            );
        }
        assert_eq!(
            c.json(&["get", "namespace", &n])["status"]["phase"],
            "Active"
        );
        let d = c.json(&["get", "deployment", &n]);
        assert_eq!(d["spec"]["replicas"], 2, "{d}");
        assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], n.as_str());
        let container = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], image.as_str());
        assert_eq!(container["ports"][0]["containerPort"], 8080);
        assert_eq!(
            d["spec"]["template"]["metadata"]["labels"]["app"],
            n.as_str()
        );
        let job = c.json(&["get", "job", &n]);
        let container = &job["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["command"], serde_json::json!(["echo", "hi"]));
        assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
        let cron = c.json(&["get", "cronjob", &n]);
        assert_eq!(cron["spec"]["schedule"], "*/5 * * * *");
        assert_eq!(
            cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"],
            image.as_str()
        );
        let cm = c.json(&["get", "configmap", &n]);
        assert_eq!(cm["data"], serde_json::json!({"a": "b", "empty": ""}));
        let secret = c.json(&["get", "secret", &n]);
        let pw = base64::engine::general_purpose::STANDARD
            .decode(secret["data"]["pw"].as_str().unwrap())
            .unwrap();
        assert_eq!(pw, format!("s3cret-{v}").as_bytes());
        assert_eq!(
            c.json(&["get", "serviceaccount", &n])["metadata"]["name"],
            n.as_str()
        );
    }
}

#[test]
fn kubectl_132_and_133_typed_reads_get_protobuf() {
    let c = cluster("pbread");
    c.ok(
        "1.31",
        &[
            "create",
            "deployment",
            "web",
            "--image",
            "nginx:1.27",
            "--replicas",
            "1",
        ],
    );
    c.ok(
        "1.31",
        &[
            "create",
            "configmap",
            "settings",
            "--from-literal=mode=fast",
        ],
    );
    c.eventually("the deployment's replica set", || {
        c.json(&["get", "replicasets"])["items"]
            .as_array()
            .is_some_and(|i| !i.is_empty())
    });
    for v in ["1.32", "1.33"] {
        let out = c.kubectl(v, &["describe", "deployment", "web", "-v=8"]);
        assert!(out.status.success(), "{v}: {}", text(&out));
        let described = String::from_utf8_lossy(&out.stdout);
        assert!(
            described.contains("Image:") && described.contains("nginx:1.27"),
            "{described}"
        );
        assert!(described.contains("Replicas:"), "{described}");
        let types = response_content_types(&String::from_utf8_lossy(&out.stderr));
        assert!(
            types.iter().any(|t| t == PROTOBUF),
            "{v} describe got no protobuf answer: {types:?}"
        );
        let described = c.ok(v, &["describe", "configmap", "settings"]);
        assert!(
            described.contains("mode") && described.contains("fast"),
            "{described}"
        );
        let out = c.kubectl(v, &["rollout", "history", "deployment/web", "-v=8"]);
        assert!(out.status.success(), "{v}: {}", text(&out));
        let history = String::from_utf8_lossy(&out.stdout);
        assert!(history.contains("REVISION"), "{history}");
        let types = response_content_types(&String::from_utf8_lossy(&out.stderr));
        assert!(
            types.iter().any(|t| t == PROTOBUF),
            "{v} rollout history got no protobuf answer: {types:?}"
        );
    }
}

/// An HTTPS/1.1 client of the cluster's API from its kubeconfig, with its own TLS roots.
struct Client {
    host: String,
    port: u16,
    authority: String,
    connector: tokio_rustls::TlsConnector,
    bearer: String,
}

impl Client {
    fn new(config: &Value) -> Self {
        let cluster = &config["clusters"][0]["cluster"];
        let authority = cluster["server"]
            .as_str()
            .unwrap()
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string();
        let (host, port) = authority.rsplit_once(':').unwrap();
        let ca = base64::engine::general_purpose::STANDARD
            .decode(cluster["certificate-authority-data"].as_str().unwrap())
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&ca) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Client {
            host: host.to_string(),
            port: port.parse().unwrap(),
            authority: authority.clone(),
            connector: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            bearer: format!(
                "Bearer {}",
                config["users"][0]["user"]["token"].as_str().unwrap()
            ),
        }
    }

    /// GET `path` with `accept`: the status, the content type and the response body.
    async fn get(&self, path: &str, accept: &str) -> hyper::Response<hyper::body::Incoming> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .unwrap();
        let tls = self
            .connector
            .connect(ServerName::try_from(self.host.clone()).unwrap(), tcp)
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let request = Request::get(path)
            .header(header::HOST, &self.authority)
            .header(header::AUTHORIZATION, &self.bearer)
            .header(header::ACCEPT, accept)
            .body(Empty::<Bytes>::new())
            .unwrap();
        sender.send_request(request).await.unwrap()
    }

    async fn get_all(&self, path: &str, accept: &str) -> (StatusCode, String, Bytes) {
        let response = self.get(path, accept).await;
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, content_type, body)
    }
}

/// The `k8s\0` + `runtime.Unknown` envelope, read with k8s-pb: (apiVersion, kind, raw).
fn envelope(body: &[u8]) -> (String, String, Vec<u8>) {
    let unknown = Unknown::decode(body.strip_prefix(b"k8s\0").expect("the k8s magic")).unwrap();
    let type_meta = unknown.type_meta.unwrap();
    (
        type_meta.api_version.unwrap_or_default(),
        type_meta.kind.unwrap_or_default(),
        unknown.raw.unwrap_or_default(),
    )
}

fn seconds(rfc3339: &Value) -> i64 {
    rfc3339
        .as_str()
        .unwrap()
        .parse::<jiff_lite::Timestamp>()
        .unwrap()
        .0
}

/// Just enough RFC 3339 for `YYYY-MM-DDTHH:MM:SSZ`, to stay independent of the server's code.
mod jiff_lite {
    pub struct Timestamp(pub i64);

    impl std::str::FromStr for Timestamp {
        type Err = String;
        fn from_str(s: &str) -> Result<Self, String> {
            let n = |r: std::ops::Range<usize>| -> Result<i64, String> {
                s.get(r)
                    .and_then(|x| x.parse().ok())
                    .ok_or(format!("bad time {s}"))
            };
            let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
            let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
            // Days from the civil date (Howard Hinnant's algorithm).
            let y = if m <= 2 { y - 1 } else { y };
            let era = y.div_euclid(400);
            let yoe = y - era * 400;
            let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
            let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
            let days = era * 146_097 + doe - 719_468;
            Ok(Timestamp(days * 86_400 + hh * 3600 + mm * 60 + ss))
        }
    }
}

/// The same pod, as JSON and as k8s-pb decoded it from protobuf.
fn assert_same_pod(json: &Value, pod: &Pod) {
    let meta = pod.metadata.as_ref().unwrap();
    let name = json["metadata"]["name"].as_str().unwrap();
    assert_eq!(meta.name.as_deref(), Some(name));
    assert_eq!(
        meta.namespace.as_deref(),
        json["metadata"]["namespace"].as_str()
    );
    assert_eq!(meta.uid.as_deref(), json["metadata"]["uid"].as_str());
    assert_eq!(
        meta.resource_version.as_deref(),
        json["metadata"]["resourceVersion"].as_str()
    );
    assert_eq!(
        meta.creation_timestamp.as_ref().unwrap().seconds,
        Some(seconds(&json["metadata"]["creationTimestamp"]))
    );
    let labels: std::collections::BTreeMap<String, String> =
        serde_json::from_value(json["metadata"]["labels"].clone()).unwrap_or_default();
    assert_eq!(meta.labels, labels);
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.node_name.as_deref(), json["spec"]["nodeName"].as_str());
    let containers = json["spec"]["containers"].as_array().unwrap();
    assert_eq!(spec.containers.len(), containers.len());
    for (c, j) in spec.containers.iter().zip(containers) {
        assert_eq!(c.name.as_deref(), j["name"].as_str());
        assert_eq!(c.image.as_deref(), j["image"].as_str());
        let requests = c.resources.as_ref().map(|r| &r.requests);
        for (resource, quantity) in j["resources"]["requests"].as_object().into_iter().flatten() {
            assert_eq!(
                requests
                    .and_then(|r| r.get(resource))
                    .and_then(|q| q.string.as_deref()),
                quantity.as_str(),
                "{name} {resource}"
            );
        }
    }
    let status = pod.status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), json["status"]["phase"].as_str());
    assert_eq!(status.pod_ip.as_deref(), json["status"]["podIP"].as_str());
    let conditions = json["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(status.conditions.len(), conditions.len(), "{name}");
    for (c, j) in status.conditions.iter().zip(&conditions) {
        assert_eq!(c.r#type.as_deref(), j["type"].as_str());
        assert_eq!(c.status.as_deref(), j["status"].as_str());
        if j["lastTransitionTime"].is_string() {
            assert_eq!(
                c.last_transition_time.as_ref().unwrap().seconds,
                Some(seconds(&j["lastTransitionTime"]))
            );
        }
    }
}

const PODS: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: demo, labels: {app: web}}
spec:
  containers:
  - name: nginx
    image: nginx:1.27
    resources:
      requests: {cpu: 250m, memory: 512Mi}
---
apiVersion: v1
kind: Pod
metadata: {name: worker, namespace: demo, labels: {app: worker}}
spec:
  containers:
  - {name: perl, image: perl, command: [perl, -e, 'sleep 3600']}
  - {name: sidecar, image: busybox}
";

/// Reads one length-framed watch event: its type and the pod it carries.
async fn next_event(body: &mut hyper::body::Incoming, buffer: &mut Vec<u8>) -> (String, Pod) {
    loop {
        if buffer.len() >= 4 {
            let len = u32::from_be_bytes(buffer[..4].try_into().unwrap()) as usize;
            if buffer.len() >= 4 + len {
                let frame: Vec<u8> = buffer.drain(..4 + len).skip(4).collect();
                let event = WatchEvent::decode(frame.as_slice()).unwrap();
                let raw = event.object.unwrap().raw.unwrap();
                let (api_version, kind, raw) = envelope(&raw);
                assert_eq!((api_version.as_str(), kind.as_str()), ("v1", "Pod"));
                return (event.r#type.unwrap(), Pod::decode(raw.as_slice()).unwrap());
            }
        }
        let frame = tokio::time::timeout(Duration::from_secs(30), body.frame())
            .await
            .expect("a watch event within 30 s")
            .expect("the watch stream open")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            buffer.extend_from_slice(&data);
        }
    }
}

#[test]
fn a_protobuf_client_lists_and_watches_pods() {
    let c = cluster("pbclient");
    c.profile("demo");
    let applied = common::output_with_stdin(
        Command::new(format!("{KUBECTL_DIR}/kubectl.1.31"))
            .arg("--kubeconfig")
            .arg(&c.kubeconfig)
            .args(["apply", "-f", "-"]),
        PODS.as_bytes(),
    );
    assert!(applied.status.success(), "{}", text(&applied));
    c.ok(
        "1.31",
        &[
            "wait",
            "--for=condition=Ready",
            "pod/web",
            "-n",
            "demo",
            "--timeout=30s",
        ],
    );
    let client = Client::new(&c.config);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let path = "/api/v1/namespaces/demo/pods";
        let (status, content_type, body) = client.get_all(path, CLIENT_GO_ACCEPT).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, PROTOBUF);
        let (api_version, kind, raw) = envelope(&body);
        assert_eq!((api_version.as_str(), kind.as_str()), ("v1", "PodList"));
        let list = PodList::decode(raw.as_slice()).unwrap();
        let (_, _, json) = client.get_all(path, "application/json").await;
        let json: Value = serde_json::from_slice(&json).unwrap();
        let items = json["items"].as_array().unwrap();
        assert_eq!(list.items.len(), 2);
        assert_eq!(list.items.len(), items.len());
        for (pod, j) in list.items.iter().zip(items) {
            assert_same_pod(j, pod);
        }
        let rv = list.metadata.unwrap().resource_version.unwrap();
        assert!(rv.parse::<u64>().is_ok(), "{rv}");

        // One object, and an error, in protobuf too.
        let (status, content_type, body) = client.get_all(&format!("{path}/web"), PROTOBUF).await;
        assert_eq!((status, content_type.as_str()), (StatusCode::OK, PROTOBUF));
        let (_, _, raw) = envelope(&body);
        assert_same_pod(&items[0], &Pod::decode(raw.as_slice()).unwrap());
        let (status, content_type, body) = client
            .get_all(&format!("{path}/nope"), CLIENT_GO_ACCEPT)
            .await;
        assert_eq!(
            (status, content_type.as_str()),
            (StatusCode::NOT_FOUND, PROTOBUF)
        );
        let (api_version, kind, raw) = envelope(&body);
        assert_eq!((api_version.as_str(), kind.as_str()), ("v1", "Status"));
        let failure = Status::decode(raw.as_slice()).unwrap();
        assert_eq!(failure.reason.as_deref(), Some("NotFound"));
        assert_eq!(failure.code, Some(404));
        assert_eq!(failure.message.as_deref(), Some("pods \"nope\" not found"));

        // localfargate's FargateProfiles are custom resources: JSON when JSON is acceptable,
        // 406 when only protobuf is.
        let profiles = "/apis/eks.localfargate.io/v1/fargateprofiles";
        let (status, content_type, _) = client.get_all(profiles, CLIENT_GO_ACCEPT).await;
        assert_eq!(
            (status, content_type.as_str()),
            (StatusCode::OK, "application/json")
        );
        let (status, _, body) = client.get_all(profiles, PROTOBUF).await;
        assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
        let refusal: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(refusal["reason"], "NotAcceptable");

        // A watch from that list: the pods as ADDED, then a deletion, each event a
        // length-framed WatchEvent around an enveloped Pod.
        let watch = format!("{path}?watch=true&timeoutSeconds=60");
        let response = client.get(&watch, CLIENT_GO_ACCEPT).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/vnd.kubernetes.protobuf;stream=watch"
        );
        let mut body = response.into_body();
        let mut buffer = Vec::new();
        let mut added = Vec::new();
        for _ in 0..2 {
            let (kind, pod) = next_event(&mut body, &mut buffer).await;
            assert_eq!(kind, "ADDED");
            added.push(pod.metadata.unwrap().name.unwrap());
        }
        added.sort();
        assert_eq!(added, ["web", "worker"]);
        let deleting = Command::new(format!("{KUBECTL_DIR}/kubectl.1.31"))
            .arg("--kubeconfig")
            .arg(&c.kubeconfig)
            .args([
                "delete",
                "pod",
                "worker",
                "-n",
                "demo",
                "--grace-period=0",
                "--wait=false",
            ])
            .output()
            .unwrap();
        assert!(deleting.status.success(), "{}", text(&deleting));
        loop {
            let (kind, pod) = next_event(&mut body, &mut buffer).await;
            let name = pod.metadata.as_ref().unwrap().name.clone().unwrap();
            if kind == "DELETED" {
                assert_eq!(name, "worker");
                break;
            }
            // Status changes on the way (the pod terminating) come as MODIFIED.
            assert_eq!(kind, "MODIFIED", "{name}");
        }
    });
}

#[test]
fn kubectl_133_drain_lists_in_protobuf_and_deletes_with_protobuf_options() {
    let c = cluster("pbdrain");
    c.profile("demo");
    let applied = common::output_with_stdin(
        Command::new(format!("{KUBECTL_DIR}/kubectl.1.31"))
            .arg("--kubeconfig")
            .arg(&c.kubeconfig)
            .args(["apply", "-f", "-"]),
        PODS.as_bytes(),
    );
    assert!(applied.status.success(), "{}", text(&applied));
    c.ok(
        "1.31",
        &[
            "wait",
            "--for=condition=Ready",
            "pod/web",
            "-n",
            "demo",
            "--timeout=30s",
        ],
    );
    let node = c.json(&["get", "pod", "web", "-n", "demo"])["spec"]["nodeName"]
        .as_str()
        .unwrap()
        .to_string();
    // An unmanaged pod without eviction: a DELETE whose DeleteOptions body is protobuf.
    let out = c.kubectl(
        "1.33",
        &[
            "drain",
            &node,
            "--force",
            "--disable-eviction",
            "--grace-period=0",
            "--timeout=30s",
            "-v=8",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains(&format!("Content-Type: {PROTOBUF}")),
        "drain sent no protobuf: {log}"
    );
    assert!(
        response_content_types(&log).iter().any(|t| t == PROTOBUF),
        "drain got no protobuf answer"
    );
    c.eventually("the drained pod gone", || {
        !c.kubectl("1.31", &["get", "pod", "web", "-n", "demo"])
            .status
            .success()
    });
    // A Fargate node goes with its pod, as on EKS.
}
