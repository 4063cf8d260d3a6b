//! End-to-end, with real kubectl on `localfargate up --runtime process`: Ingresses of class
//! `alb` served as the AWS Load Balancer Controller's ALBs serve them, reached by curl from the
//! host. An IngressGroup (two members on one listener, ordered by `group.order`, one deleted
//! and the other still served), fixed responses and a rule condition from annotations, a
//! weighted forward over two Services, a sticky one chosen by a query-string condition, and a
//! redirect action, an HTTPS listener with a certificate from the local CA (`curl --cacert`)
//! and `ssl-redirect`, and the controller's events for a missing certificate and an annotation
//! that is not JSON.
//!
//! Needs root, runc, busybox-static, docker-registry and skopeo; skipped with the reason
//! otherwise.

mod common;

use std::process::Command;
use std::time::Duration;

use common::free_port;
use common::process_cluster::{Cluster, busybox_layout, load};
use serde_json::Value;

const IMAGE: &str = "localfargate.test/busybox:1";

/// A curl answer: status code, `Location`, body.
struct Answer {
    code: String,
    location: String,
    body: String,
}

fn curl(args: &[&str]) -> Answer {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(["-w", "\n%{http_code}\n%header{location}"])
        .args(args)
        .output()
        .unwrap();
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut parts = all.rsplitn(3, '\n');
    let location = parts.next().unwrap_or("").to_string();
    let code = parts.next().unwrap_or("").to_string();
    let body = parts.next().unwrap_or("").trim().to_string();
    Answer {
        code,
        location,
        body,
    }
}

fn get(port: u16, host: &str, path: &str, extra: &[&str]) -> Answer {
    let url = format!("http://127.0.0.1:{port}{path}");
    let host = format!("Host: {host}");
    let mut args = vec!["-H", host.as_str()];
    args.extend(extra);
    args.push(&url);
    curl(&args)
}

fn ready_pods(c: &Cluster, app: &str, n: usize) -> Vec<String> {
    let mut names = Vec::new();
    c.eventually(
        &format!("{n} ready {app} pods"),
        Duration::from_secs(120),
        || {
            let selector = format!("app={app}");
            let list: Value =
                serde_json::from_str(&c.ok(&["get", "pods", "-l", &selector, "-o", "json"]))
                    .unwrap();
            let items = list["items"].as_array().cloned().unwrap_or_default();
            names = items
                .iter()
                .map(|p| p["metadata"]["name"].as_str().unwrap_or("").to_string())
                .collect();
            items.len() == n
                && items.iter().all(|p| {
                    p["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                })
        },
    );
    names
}

fn deployment(name: &str, replicas: u32) -> String {
    format!(
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n  \
         selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    \
         spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: web\n        \
         image: {IMAGE}\n        imagePullPolicy: Never\n        ports: [{{containerPort: 8080, name: http}}]\n        \
         readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}\n        \
         command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www']\n\
         ---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: {name}}}\n  \
         ports:\n  - {{name: http, port: 80, targetPort: http}}\n"
    )
}

/// A fixed-response action annotation's value.
fn fixed(status: u16, body: &str) -> String {
    format!(
        "'{{\"type\": \"fixed-response\", \"fixedResponseConfig\": {{\"contentType\": \"text/plain\", \
         \"statusCode\": \"{status}\", \"messageBody\": \"{body}\"}}}}'"
    )
}

fn ingress(name: &str, annotations: &[(&str, String)], spec: &str) -> String {
    let mut out = format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  annotations:\n    \
         alb.ingress.kubernetes.io/target-type: ip\n"
    );
    for (k, v) in annotations {
        out.push_str(&format!("    alb.ingress.kubernetes.io/{k}: {v}\n"));
    }
    out.push_str(&format!("spec:\n  ingressClassName: alb\n{spec}"));
    out
}

fn prefix_rule(host: Option<&str>, path: &str, service: &str, port: &str) -> String {
    let host = host.map_or(String::new(), |h| format!("host: {h}\n    "));
    format!(
        "  - {host}http:\n      paths:\n      - {{path: {path}, pathType: Prefix, backend: {{service: {{name: {service}, port: {port}}}}}}}\n"
    )
}

#[test]
fn alb_ingress_groups_tls_actions_and_conditions() {
    skip_unless_able!();
    let work = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(work.path(), IMAGE, &["sh"]);
    let c = Cluster::new(&[], |data| load(data, &busybox));
    c.apply(&format!(
        "{}{}",
        deployment("web", 1),
        deployment("canary", 1)
    ));
    let web = ready_pods(&c, "web", 1);
    let canary = ready_pods(&c, "canary", 1);
    let use_annotation = "{name: use-annotation}";

    // An IngressGroup: two members on one listener. `shop-b` (order 0) comes before `shop-a`
    // (order 5) although its name sorts after.
    let shop = free_port();
    let ports = format!("'[{{\"HTTP\": {shop}}}]'");
    let group = [
        ("group.name", "shop".to_string()),
        ("listen-ports", ports.clone()),
    ];
    let mut a = group.to_vec();
    a.extend([
        ("group.order", "'5'".to_string()),
        ("actions.from-a", fixed(200, "from a")),
    ]);
    let mut b = group.to_vec();
    b.extend([
        ("actions.from-b", fixed(200, "from b")),
        ("actions.teapot", fixed(418, "teapot")),
        (
            "conditions.teapot",
            "'[{\"field\": \"http-header\", \"httpHeaderConfig\": {\"httpHeaderName\": \"X-Env\", \"values\": [\"te*\"]}}]'"
                .to_string(),
        ),
    ]);
    let shop_a = ingress(
        "shop-a",
        &a,
        &format!(
            "  rules:\n{}",
            prefix_rule(None, "/", "from-a", use_annotation)
        ),
    );
    let shop_b = ingress(
        "shop-b",
        &b,
        &format!(
            "  rules:\n{}{}{}",
            prefix_rule(None, "/teapot", "teapot", use_annotation),
            prefix_rule(Some("web.example.com"), "/", "web", "{number: 80}"),
            prefix_rule(None, "/", "from-b", use_annotation)
        ),
    );
    c.apply(&format!("{shop_a}{shop_b}"));
    // Both members' addresses are written once the listener has both members' rules.
    c.eventually("both members' address", Duration::from_secs(30), || {
        ["shop-a", "shop-b"].iter().all(|name| {
            c.ok(&[
                "get",
                "ingress",
                name,
                "-o",
                "jsonpath={.status.loadBalancer.ingress[0].hostname}",
            ]) == "localhost"
        })
    });
    let answer = get(shop, "shop.example.com", "/", &[]);
    assert_eq!(
        (answer.code.as_str(), answer.body.as_str()),
        ("200", "from b")
    );
    let mut served = String::new();
    c.eventually("the web target", Duration::from_secs(30), || {
        served = get(shop, "web.example.com", "/", &[]).body;
        web.contains(&served)
    });
    // A condition: the header decides.
    let teapot = get(shop, "x", "/teapot", &["-H", "X-Env: test"]);
    assert_eq!(
        (teapot.code.as_str(), teapot.body.as_str()),
        ("418", "teapot")
    );
    assert_eq!(
        get(shop, "x", "/teapot", &["-H", "X-Env: prod"]).body,
        "from b"
    );
    // One member deleted: the other still served, on the same port.
    c.ok(&["delete", "ingress", "shop-b"]);
    c.eventually("the remaining member", Duration::from_secs(30), || {
        get(shop, "shop.example.com", "/", &[]).body == "from a"
    });
    // A member listening with another protocol on the same port: the controller's event.
    let clash = ingress(
        "shop-c",
        &[
            ("group.name", "shop".to_string()),
            ("listen-ports", format!("'[{{\"HTTPS\": {shop}}}]'")),
            (
                "certificate-arn",
                "arn:aws:acm:us-east-1:123456789012:certificate/abc".to_string(),
            ),
        ],
        "  defaultBackend: {service: {name: web, port: {number: 80}}}\n",
    );
    c.apply(&clash);
    let expected = format!(
        "Failed build model due to failed to merge listPort config for port: {shop}: conflicting \
         protocol, default/shop-a: HTTP | default/shop-c: HTTPS"
    );
    c.eventually("the conflict's event", Duration::from_secs(30), || {
        c.events("default", "shop-a")
            .iter()
            .any(|(r, m)| r == "FailedBuildModel" && *m == expected)
    });
    c.ok(&["delete", "ingress", "shop-c"]);
    c.eventually("the group served again", Duration::from_secs(30), || {
        get(shop, "shop.example.com", "/", &[]).body == "from a"
    });

    // A weighted forward over two Services, and a redirect action.
    let split = free_port();
    c.apply(&ingress(
        "split",
        &[
            ("listen-ports", format!("'[{{\"HTTP\": {split}}}]'")),
            (
                "actions.split",
                "'{\"type\": \"forward\", \"forwardConfig\": {\"targetGroups\": [{\"serviceName\": \"web\", \
                 \"servicePort\": \"80\", \"weight\": 50}, {\"serviceName\": \"canary\", \"servicePort\": \"http\", \
                 \"weight\": 50}]}}'"
                    .to_string(),
            ),
            (
                "actions.sticky",
                "'{\"type\": \"forward\", \"forwardConfig\": {\"targetGroups\": [{\"serviceName\": \"web\", \
                 \"servicePort\": 80, \"weight\": 1}, {\"serviceName\": \"canary\", \"servicePort\": 80, \
                 \"weight\": 1}], \"targetGroupStickinessConfig\": {\"enabled\": true}}}'"
                    .to_string(),
            ),
            (
                "conditions.sticky",
                "'[{\"field\": \"query-string\", \"queryStringConfig\": {\"values\": [{\"key\": \"sticky\", \"value\": \"1\"}]}}]'"
                    .to_string(),
            ),
            (
                "actions.moved",
                "'{\"type\": \"redirect\", \"redirectConfig\": {\"path\": \"/new/#{path}\", \"statusCode\": \"HTTP_302\"}}'"
                    .to_string(),
            ),
        ],
        &format!(
            "  rules:\n{}{}{}",
            prefix_rule(None, "/", "sticky", use_annotation),
            prefix_rule(None, "/old", "moved", use_annotation),
            prefix_rule(None, "/", "split", use_annotation)
        ),
    ));
    c.eventually("the split listener", Duration::from_secs(30), || {
        get(split, "x", "/", &[]).code == "200"
    });
    let bodies: Vec<String> = (0..6).map(|_| get(split, "x", "/", &[]).body).collect();
    assert!(bodies.iter().any(|b| web.contains(b)), "{bodies:?}");
    assert!(bodies.iter().any(|b| canary.contains(b)), "{bodies:?}");
    assert!(
        bodies.iter().all(|b| web.contains(b) || canary.contains(b)),
        "{bodies:?}"
    );
    // Stickiness (the rule chosen by its query-string condition): the AWSALBTG cookie keeps
    // the client on the target group it was first given.
    let jar = work.path().join("cookies");
    let jar = jar.to_str().unwrap();
    let first = get(split, "x", "/?sticky=1", &["-b", jar, "-c", jar]).body;
    let app = if web.contains(&first) { &web } else { &canary };
    assert!(app.contains(&first), "{first}");
    for _ in 0..4 {
        let again = get(split, "x", "/?sticky=1", &["-b", jar, "-c", jar]).body;
        assert!(app.contains(&again), "{first} then {again}");
    }
    let moved = get(split, "shop.example.com", "/old/page?x=1", &[]);
    assert_eq!(moved.code, "302");
    assert_eq!(
        moved.location,
        format!("http://shop.example.com:{split}/new/old/page?x=1")
    );

    // HTTPS with a certificate from the local CA for the spec.tls host; HTTP redirected.
    let (http, https) = (free_port(), free_port());
    c.apply(&ingress(
        "secure",
        &[
            (
                "listen-ports",
                format!("'[{{\"HTTP\": {http}}}, {{\"HTTPS\": {https}}}]'"),
            ),
            ("ssl-redirect", format!("'{https}'")),
        ],
        &format!(
            "  tls:\n  - hosts: [secure.example.com]\n  rules:\n{}",
            prefix_rule(Some("secure.example.com"), "/", "web", "{name: http}")
        ),
    ));
    let ca = c.data.path().join("alb-ca.pem");
    let resolve = format!("secure.example.com:{https}:127.0.0.1");
    let url = format!("https://secure.example.com:{https}/");
    let mut secure = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "--resolve",
        &resolve,
        &url,
    ]);
    c.eventually("the HTTPS listener", Duration::from_secs(30), || {
        secure = curl(&[
            "--cacert",
            ca.to_str().unwrap(),
            "--resolve",
            &resolve,
            &url,
        ]);
        secure.code == "200"
    });
    assert!(web.contains(&secure.body), "{}", secure.body);
    let redirect = get(http, "secure.example.com", "/a?b=c", &[]);
    assert_eq!(redirect.code, "301");
    assert_eq!(
        redirect.location,
        format!("https://secure.example.com:{https}/a?b=c")
    );

    // No certificate for a host of an HTTPS listener; an annotation that is not JSON.
    let nocert = free_port();
    c.apply(&format!(
        "{}{}",
        ingress(
            "nocert",
            &[("listen-ports", format!("'[{{\"HTTPS\": {nocert}}}]'"))],
            &format!(
                "  rules:\n{}",
                prefix_rule(Some("api.example.com"), "/", "web", "{number: 80}")
            ),
        ),
        ingress(
            "broken",
            &[("actions.x", "'{\"type\": fixed'".to_string())],
            &format!("  rules:\n{}", prefix_rule(None, "/", "x", use_annotation)),
        )
    ));
    for (name, message) in [
        (
            "nocert",
            "Failed build model due to ingress: default/nocert: no certificate found for host: api.example.com",
        ),
        (
            "broken",
            "Failed build model due to ingress: default/broken: failed to parse json annotation, \
             alb.ingress.kubernetes.io/actions.x: {\"type\": fixed: invalid character 'i' in literal \
             false (expecting 'a')",
        ),
    ] {
        c.eventually(&format!("{name}'s event"), Duration::from_secs(30), || {
            c.events("default", name)
                .iter()
                .any(|(r, m)| r == "FailedBuildModel" && m == message)
        });
    }
    assert!(std::net::TcpListener::bind(("127.0.0.1", nocert)).is_ok());

    c.ok(&["delete", "ingress", "--all"]);
    for port in [shop, split, http, https] {
        c.eventually("the ports closed", Duration::from_secs(30), || {
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        });
    }
}
