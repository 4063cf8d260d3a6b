//! End-to-end, with real kubectl on `localfargate up --runtime process`: reaching pods from
//! the host. `kubectl port-forward` to a pod, a Service and a Deployment, two ports at once,
//! one of them a server bound to 127.0.0.1 inside the pod, with kubectl 1.29 (SPDY/3.1) and
//! 1.33 (SPDY tunnelled through a WebSocket), and the kubelet's error for a port nothing
//! listens on; a LoadBalancer Service and its node port reached by curl on 127.0.0.1, a taken
//! port moved elsewhere with an event, and connections refused once the Deployment is scaled
//! to zero.
//!
//! Needs root, runc, busybox-static, docker-registry and skopeo; skipped with the reason
//! otherwise.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::free_port;
use common::process_cluster::{Cluster, busybox_layout, load, text};
use serde_json::Value;

const IMAGE: &str = "localfargate.test/busybox:1";
const KUBECTL_SPDY: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.29";
const KUBECTL_WEBSOCKET: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";

/// A running `kubectl port-forward`, killed on drop; its stderr lines on a channel.
struct Forward {
    child: Child,
    stderr: Receiver<String>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Forward {
    /// `kubectl port-forward ARGS`, once it says it forwards every local port.
    fn start(c: &Cluster, kubectl: &str, args: &[&str], locals: &[u16]) -> Forward {
        let mut child = Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(&c.kubeconfig)
            .arg("port-forward")
            .args(["--address", "127.0.0.1"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (err_tx, stderr_rx) = std::sync::mpsc::channel();
        // Both read to their end: kubectl dies of SIGPIPE on a closed stdout ("Handling
        // connection for …" is printed for every connection).
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = err_tx.send(line);
            }
        });
        let mut waiting: Vec<String> = locals
            .iter()
            .map(|p| format!("Forwarding from 127.0.0.1:{p}"))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        while !waiting.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    waiting.retain(|w| !line.starts_with(w.as_str()));
                    seen.push(line);
                }
                Err(e) => {
                    let errors: Vec<String> = stderr_rx.try_iter().collect();
                    panic!("kubectl port-forward {args:?}: {e:?}; out {seen:?}; err {errors:?}")
                }
            }
        }
        Forward {
            child,
            stderr: stderr_rx,
        }
    }

    /// stderr lines so far, waiting until one contains `needle` (at most 30 s).
    fn stderr_until(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut lines = Vec::new();
        while !lines.iter().any(|l: &String| l.contains(needle)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(e) => panic!("{e:?} waiting for {needle:?} on stderr; so far {lines:?}"),
            }
        }
        lines
    }
}

/// `curl -s URL`: its exit code and body.
fn curl(url: &str) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", url])
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), text(&out))
}

fn get_ok(url: &str) -> String {
    let (code, body) = curl(url);
    assert_eq!(code, 0, "curl {url}: {body}");
    body
}

#[test]
fn port_forward_and_load_balancers_reach_pods_from_the_host() {
    skip_unless_able!();
    let work = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(work.path(), IMAGE, &["sh"]);
    let c = Cluster::new(&[], |data| load(data, &busybox));
    let lb_port = free_port();
    // Two pods, each serving its name on 8080 (all addresses) and a secret on 127.0.0.1:9090.
    let web = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 2\n  \
         selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    \
         spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: web\n        \
         image: {IMAGE}\n        imagePullPolicy: Never\n        ports: [{{containerPort: 8080, name: http}}]\n        \
         readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}\n        \
         command: [sh, -c, 'mkdir -p /www /local && hostname > /www/index.html && echo local only > /local/index.html && \
         httpd -p 127.0.0.1:9090 -h /local && exec httpd -f -p 8080 -h /www']\n\
         ---\napiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  type: LoadBalancer\n  \
         selector: {{app: web}}\n  ports:\n  - {{name: http, port: {lb_port}, targetPort: http}}\n"
    );
    c.apply(&web);
    c.eventually("two ready pods", Duration::from_secs(120), || {
        let list: Value =
            serde_json::from_str(&c.ok(&["get", "pods", "-l", "app=web", "-o", "json"])).unwrap();
        let items = list["items"].as_array().cloned().unwrap_or_default();
        items.len() == 2
            && items.iter().all(|p| {
                p["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
    });
    let pods: Value =
        serde_json::from_str(&c.ok(&["get", "pods", "-l", "app=web", "-o", "json"])).unwrap();
    let pod = pods["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let names: Vec<String> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();

    for kubectl in [KUBECTL_SPDY, KUBECTL_WEBSOCKET] {
        // A pod, two ports at once; the second only listens on the pod's loopback.
        let (a, b) = (free_port(), free_port());
        let target = format!("pod/{pod}");
        let pf = Forward::start(
            &c,
            kubectl,
            &[&target, &format!("{a}:8080"), &format!("{b}:9090")],
            &[a, b],
        );
        assert_eq!(
            get_ok(&format!("http://127.0.0.1:{a}/")).trim(),
            pod,
            "{kubectl}"
        );
        assert_eq!(
            get_ok(&format!("http://127.0.0.1:{b}/")).trim(),
            "local only",
            "{kubectl}"
        );
        // Several connections over the same session.
        for _ in 0..3 {
            assert_eq!(get_ok(&format!("http://127.0.0.1:{a}/")).trim(), pod);
        }
        drop(pf);
        // A Service (its port, resolved by kubectl to the pod's target port) and a Deployment.
        for (target, remote) in [
            ("svc/web".to_string(), lb_port.to_string()),
            ("deploy/web".to_string(), "8080".to_string()),
        ] {
            let local = free_port();
            let _pf = Forward::start(
                &c,
                kubectl,
                &[&target, &format!("{local}:{remote}")],
                &[local],
            );
            let body = get_ok(&format!("http://127.0.0.1:{local}/"));
            assert!(names.contains(&body.trim().to_string()), "{target}: {body}");
        }
        // Nothing listens on 7070: the kubelet's (containerd's) words reach kubectl.
        let local = free_port();
        let pf = Forward::start(&c, kubectl, &[&target, &format!("{local}:7070")], &[local]);
        let (code, _) = curl(&format!("http://127.0.0.1:{local}/"));
        assert_ne!(code, 0);
        let lines = pf.stderr_until("error forwarding port 7070");
        let line = lines
            .iter()
            .find(|l| l.contains("error forwarding port 7070"))
            .unwrap();
        assert!(
            line.contains(", uid : failed to execute portforward in network namespace ")
                && line.contains("/run/netns/lf-")
                && line.contains("failed to connect to localhost:7070 inside namespace")
                && line.contains("IPv4: dial tcp4 127.0.0.1:7070: connect: connection refused"),
            "{kubectl}: {line}"
        );
    }

    // The LoadBalancer Service: its address, its port and its node port on 127.0.0.1.
    c.eventually(
        "the load balancer's address",
        Duration::from_secs(30),
        || {
            c.ok(&[
                "get",
                "svc",
                "web",
                "-o",
                "jsonpath={.status.loadBalancer.ingress[0].hostname}",
            ]) == "localhost"
        },
    );
    let body = get_ok(&format!("http://127.0.0.1:{lb_port}/"));
    assert!(names.contains(&body.trim().to_string()), "{body}");
    let node_port = c.ok(&[
        "get",
        "svc",
        "web",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    let body = get_ok(&format!("http://127.0.0.1:{node_port}/"));
    assert!(names.contains(&body.trim().to_string()), "{body}");
    let reasons: Vec<String> = c
        .events("default", "web")
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert!(
        reasons.contains(&"EnsuredLoadBalancer".to_string()),
        "{reasons:?}"
    );

    // A port something else holds: another one, and an event saying which.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap().port();
    c.apply(&format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: taken}}\nspec:\n  type: LoadBalancer\n  \
         selector: {{app: web}}\n  ports:\n  - {{name: http, port: {taken}, targetPort: 8080}}\n"
    ));
    let mut moved = String::new();
    c.eventually("the taken port's event", Duration::from_secs(30), || {
        if let Some((_, m)) = c
            .events("default", "taken")
            .into_iter()
            .find(|(r, _)| r == "LoadBalancerPortTaken")
        {
            moved = m;
            true
        } else {
            false
        }
    });
    let prefix = format!(
        "127.0.0.1:{taken} is not available on this host (address already in use): port {taken} of the load balancer listens on 127.0.0.1:"
    );
    assert!(moved.starts_with(&prefix), "{moved}");
    let other = moved
        .trim_start_matches(&prefix)
        .trim_end_matches(" instead");
    // The listener is held from the event on and serves once the Service's endpoints are
    // known (the endpoints controller writes them beside it).
    let mut body = String::new();
    c.eventually("the moved port serving", Duration::from_secs(30), || {
        let (code, out) = curl(&format!("http://127.0.0.1:{other}/"));
        body = out;
        code == 0
    });
    assert!(names.contains(&body.trim().to_string()), "{body}");
    drop(held);

    // An Ingress of class alb, target type ip: host and path rules on a host port.
    let alb_port = free_port();
    c.apply(&format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\n  annotations:\n    \
         alb.ingress.kubernetes.io/target-type: ip\n    \
         alb.ingress.kubernetes.io/listen-ports: '[{{\"HTTP\": {alb_port}}}]'\nspec:\n  \
         ingressClassName: alb\n  rules:\n  - host: web.example.com\n    http:\n      paths:\n      \
         - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: {lb_port}}}}}}}}}\n  \
         - http:\n      paths:\n      \
         - {{path: /index.html, pathType: Exact, backend: {{service: {{name: web, port: {{name: http}}}}}}}}\n\
         ---\napiVersion: v1\nkind: Service\nmetadata: {{name: plain}}\nspec:\n  selector: {{app: web}}\n  \
         ports: [{{port: 80, targetPort: 8080}}]\n\
         ---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: instance}}\nspec:\n  \
         ingressClassName: alb\n  defaultBackend: {{service: {{name: plain, port: {{number: 80}}}}}}\n"
    ));
    c.eventually("the Ingress's address", Duration::from_secs(30), || {
        c.ok(&[
            "get",
            "ingress",
            "web",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].hostname}",
        ]) == "localhost"
    });
    let status_of = |host: &str, path: &str| -> (String, String) {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "20", "-H", &format!("Host: {host}")])
            .args(["-w", "\n%{http_code}"])
            .arg(format!("http://127.0.0.1:{alb_port}{path}"))
            .output()
            .unwrap();
        let all = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = all.rsplit_once('\n').unwrap_or(("", &all));
        (code.to_string(), body.trim().to_string())
    };
    let mut answer = (String::new(), String::new());
    c.eventually("the ALB's answer", Duration::from_secs(30), || {
        answer = status_of("web.example.com", "/");
        answer.0 == "200"
    });
    assert!(names.contains(&answer.1), "{answer:?}");
    let (code, body) = status_of("other.example.com", "/index.html");
    assert_eq!(code, "200");
    assert!(names.contains(&body), "{body}");
    assert_eq!(status_of("other.example.com", "/").0, "404");
    // Target type instance (the default) with a ClusterIP Service: the controller's event.
    c.eventually(
        "the instance Ingress's event",
        Duration::from_secs(30),
        || {
            c.events("default", "instance").iter().any(|(r, m)| {
                r == "FailedBuildModel"
                    && m == "Failed build model due to TargetGroup port is empty. When using \
                         Instance targets, your service be must of type 'NodePort' or \
                         'LoadBalancer'"
            })
        },
    );

    // No pods, no endpoints: refused, the port still held.
    c.ok(&["scale", "deploy/web", "--replicas=0"]);
    c.eventually("connections refused", Duration::from_secs(60), || {
        // curl's "Couldn't connect to server".
        curl(&format!("http://127.0.0.1:{lb_port}/")).0 == 7
    });
    // The Service gone, its ports are free again.
    // The ALB's answer for a target group with no target.
    c.eventually("the ALB's 503", Duration::from_secs(30), || {
        status_of("web.example.com", "/").0 == "503"
    });
    c.ok(&["delete", "ingress", "web", "instance"]);
    c.ok(&["delete", "svc", "web", "taken", "plain"]);
    c.eventually("the ALB's port closed", Duration::from_secs(30), || {
        std::net::TcpListener::bind(("127.0.0.1", alb_port)).is_ok()
    });
    c.eventually("the ports closed", Duration::from_secs(30), || {
        std::net::TcpListener::bind(("127.0.0.1", lb_port)).is_ok()
    });
}
