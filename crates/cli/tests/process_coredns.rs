//! End-to-end on the process runtime: the guides' CoreDNS steps. Before the patch the CoreDNS
//! pods stay Pending (EKS's `compute-type: ec2` annotation on a Fargate-only cluster); after
//! the profile and the patch they run on Fargate, and since EKS's CoreDNS image cannot be
//! pulled offline, the runtime runs the built-in CoreDNS from it (event `BuiltinImage`, the
//! built-in's own log line from inside the container).

mod common;

use std::path::Path;
use std::time::Duration;

use common::process_cluster::{Cluster, network_flags, text};
use localfargate_runtime::image::LayoutFile;

/// The host's curl, copied into the resolver image when present.
const CURL: &str = "/usr/bin/curl";

/// The files a C library's resolver needs in a pod, from this host: glibc's `getent` and, where
/// the host has it, `curl` (a real HTTP client whose names go through getaddrinfo), the
/// libraries `ldd` lists for them, the NSS modules for `files` and `dns` and their `libresolv`,
/// and an `/etc/nsswitch.conf` of `hosts: files dns`. `Err` says what the host lacks.
fn glibc_resolver_files() -> Result<Vec<LayoutFile>, String> {
    let getent = Path::new("/usr/bin/getent");
    if !getent.exists() {
        return Err("/usr/bin/getent is not installed (libc-bin)".into());
    }
    let mut binaries = vec!["/usr/bin/getent"];
    if Path::new(CURL).exists() {
        binaries.push(CURL);
    }
    let mut paths = common::host_files::libraries_of(&binaries)?;
    let libdir = paths
        .iter()
        .find(|p| p.contains("/libc.so"))
        .and_then(|p| Path::new(p).parent())
        .map(|d| d.display().to_string())
        .ok_or("ldd lists no libc for getent (a static or non-glibc getent)")?;
    for nss in ["libnss_files.so.2", "libnss_dns.so.2", "libresolv.so.2"] {
        let p = format!("{libdir}/{nss}");
        if !Path::new(&p).exists() {
            return Err(format!("{p} is missing"));
        }
        paths.push(p);
    }
    let mut files = common::host_files::layer_files(
        paths
            .iter()
            .map(String::as_str)
            .chain(binaries.iter().copied()),
    )?;
    files.push(LayoutFile::File {
        path: "etc/nsswitch.conf".into(),
        mode: 0o644,
        data: b"hosts: files dns\n".to_vec(),
    });
    Ok(files)
}

/// The guides' Fargate profile for CoreDNS: kube-system pods labelled `k8s-app=kube-dns`.
fn coredns_fargate_profile(c: &Cluster) {
    let out = c.localfargate(&[
        "profile",
        "create",
        "--cluster",
        "run",
        "--name",
        "fp-coredns",
        "--namespace",
        "kube-system",
        "--labels",
        "k8s-app=kube-dns",
    ]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn coredns_pods_run_the_builtin_coredns_after_the_guides_patch() {
    skip_unless_able!();
    let work = tempfile::tempdir().unwrap();
    let c = Cluster::new(&network_flags(work.path(), "10.63.", |_| {}), |_| {});
    let pods = |c: &Cluster| -> serde_json::Value {
        serde_json::from_str(&c.ok(&[
            "get",
            "pods",
            "-n",
            "kube-system",
            "-l",
            "k8s-app=kube-dns",
            "-o",
            "json",
        ]))
        .unwrap()
    };
    coredns_fargate_profile(&c);
    // Before the patch: Pending, on no node.
    c.eventually("the CoreDNS pods", Duration::from_secs(30), || {
        pods(&c)["items"].as_array().is_some_and(|a| a.len() == 2)
    });
    assert!(
        pods(&c)["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["spec"]["nodeName"].is_null() && p["status"]["phase"] == "Pending")
    );
    c.ok(&[
        "patch", "deployment", "coredns", "-n", "kube-system", "--type", "json", "-p",
        r#"[{"op": "remove", "path": "/spec/template/metadata/annotations/eks.amazonaws.com~1compute-type"}]"#,
    ]);
    // After it: on Fargate nodes, run from the built-in image.
    let mut on_fargate = String::new();
    c.eventually("a CoreDNS pod on Fargate", Duration::from_secs(60), || {
        let all = pods(&c);
        let found = all["items"].as_array().into_iter().flatten().find(|p| {
            p["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| n.starts_with("fargate-"))
        });
        if let Some(p) = found {
            on_fargate = p["metadata"]["name"].as_str().unwrap().to_string();
        }
        found.is_some()
    });
    c.eventually("the BuiltinImage event", Duration::from_secs(120), || {
        c.events("kube-system", &on_fargate)
            .iter()
            .any(|(reason, msg)| {
                reason == "BuiltinImage"
                    && msg.contains("/eks/coredns:v1.11.3-eksbuild.1")
                    && msg.contains("running localfargate's built-in CoreDNS instead")
            })
    });
    // The binary ran inside the pod's sandbox (its libraries mounted, argv[0] `coredns`),
    // reading the Corefile from the ConfigMap volume.
    c.eventually("the built-in's log", Duration::from_secs(60), || {
        let logs = c.kubectl(&["logs", "-n", "kube-system", &on_fargate]);
        let previous = c.kubectl(&["logs", "-n", "kube-system", &on_fargate, "--previous"]);
        (text(&logs) + &text(&previous))
            .contains("CoreDNS (localfargate built-in) starting conf=/etc/coredns/Corefile")
    });
}

/// What a pod's resolver gets for `name`: busybox's `nslookup` through the pod's
/// `/etc/resolv.conf` (kube-dns's address), its output and whether it succeeded.
fn lookup(c: &Cluster, ns: &str, pod: &str, name: &str) -> (bool, String) {
    let out = c.kubectl(&["exec", "-n", ns, pod, "--", "busybox", "nslookup", name]);
    (out.status.success(), text(&out))
}

#[test]
fn pods_find_services_by_name_once_coredns_runs_on_fargate() {
    skip_unless_able!();
    let work = tempfile::tempdir().unwrap();
    let image = "localfargate.test/busybox:dns";
    // busybox, and glibc's resolver where this host has it (checked at the end).
    let resolver = glibc_resolver_files();
    let layout = work.path().join("layout-busybox-dns");
    localfargate_runtime::test_images::busybox_layout_with(
        &layout,
        image,
        &["sh"],
        resolver.clone().unwrap_or_default(),
    )
    .unwrap();
    let busybox = layout;
    // The kubelet's volume sync every 2 s, so a ConfigMap edit reaches the CoreDNS pods'
    // Corefile soon (then `reload`'s own check, 30 s ± 15 s).
    let mut flags = network_flags(work.path(), "10.62.", |_| {});
    flags.extend(["--volume-sync-interval".to_string(), "2".to_string()]);
    let c = Cluster::new(&flags, |data| common::process_cluster::load(data, &busybox));
    coredns_fargate_profile(&c);
    c.apply(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: default}}\n\
         spec:\n  replicas: 1\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    \
         metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n      - name: web\n        \
         image: {image}\n        command: [sh, -c, 'mkdir -p /www && echo hello from web > /www/index.html && exec httpd -f -p 8080 -h /www']\n        \
         ports: [{{name: http, containerPort: 8080}}]\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\n\
         spec:\n  selector: {{app: web}}\n  ports: [{{port: 80, targetPort: http}}]\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: here, namespace: default}}\n\
         spec:\n  containers: [{{name: c, image: {image}, command: [sleep, '3600']}}]\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {{name: jobs}}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: there, namespace: jobs}}\n\
         spec:\n  containers: [{{name: c, image: {image}, command: [sleep, '3600']}}]\n"
    ));
    c.wait_ready("default", "here");
    c.wait_ready("jobs", "there");
    // Before the guides' patch CoreDNS is Pending: nothing answers at kube-dns's address.
    let (resolved, said) = lookup(&c, "default", "here", "web.default.svc.cluster.local");
    assert!(!resolved, "resolved before CoreDNS runs: {said}");

    c.ok(&[
        "patch", "deployment", "coredns", "-n", "kube-system", "--type", "json", "-p",
        r#"[{"op": "remove", "path": "/spec/template/metadata/annotations/eks.amazonaws.com~1compute-type"}]"#,
    ]);
    c.ok(&[
        "rollout",
        "status",
        "deployment/coredns",
        "-n",
        "kube-system",
        "--timeout=180s",
    ]);
    let service: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "service", "web", "-o", "json"])).unwrap();
    let cluster_ip = service["spec"]["clusterIP"].as_str().unwrap().to_string();
    // Once kube-dns's endpoints are the CoreDNS pods and the data path has them.
    let mut said = String::new();
    c.eventually(
        "web.default.svc.cluster.local to resolve",
        Duration::from_secs(60),
        || {
            let (resolved, out) = lookup(&c, "default", "here", "web.default.svc.cluster.local");
            said = out;
            resolved && said.contains(&cluster_ip)
        },
    );
    // `web` from its own namespace and `web.default` from another, as a C library's resolver
    // looks them up: the pod's resolv.conf search path tried in order (ndots:5). Debian's
    // static busybox has no resolver of its own that walks the search path (its wget's
    // getaddrinfo crashes without the NSS modules a static glibc needs), so the walk is done
    // here with nslookup, name by name, and each answer checked.
    for (ns, pod) in [("default", "here"), ("jobs", "there")] {
        let conf = c.ok(&["exec", "-n", ns, pod, "--", "cat", "/etc/resolv.conf"]);
        assert!(
            conf.contains(&format!(
                "search {ns}.svc.cluster.local svc.cluster.local cluster.local"
            )) && conf.contains("options ndots:5")
                && conf.contains("nameserver 10.100.0.10"),
            "{conf}"
        );
    }
    for (ns, pod, short, tried) in [
        (
            "default",
            "here",
            "web",
            vec!["web.default.svc.cluster.local"],
        ),
        (
            "jobs",
            "there",
            "web.default",
            vec![
                "web.default.jobs.svc.cluster.local",
                "web.default.svc.cluster.local",
            ],
        ),
    ] {
        let (last, misses) = tried.split_last().unwrap();
        for miss in misses {
            let (resolved, said) = lookup(&c, ns, pod, miss);
            assert!(
                !resolved && said.contains("NXDOMAIN"),
                "{short}: {miss}: {said}"
            );
        }
        let (resolved, said) = lookup(&c, ns, pod, last);
        assert!(
            resolved && said.contains(&cluster_ip),
            "{short}: {last}: {said}"
        );
    }
    // A C library's resolver in the pod: glibc's getaddrinfo (getent hosts) walks the search
    // path itself and lands on the Service's ClusterIP.
    match &resolver {
        Err(why) => eprintln!("glibc resolver checks skipped: {why}"),
        Ok(_) => {
            for (ns, pod, short) in [("default", "here", "web"), ("jobs", "there", "web.default")] {
                let out = c.kubectl(&[
                    "exec",
                    "-n",
                    ns,
                    pod,
                    "--",
                    "/usr/bin/getent",
                    "hosts",
                    short,
                ]);
                let said = text(&out);
                assert!(
                    out.status.success()
                        && said.split_whitespace().next() == Some(cluster_ip.as_str())
                        && said.contains("web.default.svc.cluster.local"),
                    "getent hosts {short} in {ns}/{pod}: {said}"
                );
            }
            let out = c.kubectl(&[
                "exec",
                "-n",
                "default",
                "here",
                "--",
                "/usr/bin/getent",
                "hosts",
                "nothere",
            ]);
            assert_eq!(out.status.code(), Some(2), "{}", text(&out));
            // The issue's own check: an HTTP client in a pod reaches the Service by its short
            // name from its namespace and by `web.default` from another, its resolver walking
            // the search path.
            if Path::new(CURL).exists() {
                for (ns, pod, url) in [
                    ("default", "here", "http://web/"),
                    ("jobs", "there", "http://web.default/"),
                ] {
                    let out = c.kubectl(&[
                        "exec",
                        "-n",
                        ns,
                        pod,
                        "--",
                        CURL,
                        "-sS",
                        "--max-time",
                        "20",
                        url,
                    ]);
                    assert!(
                        out.status.success() && text(&out).contains("hello from web"),
                        "curl {url} in {ns}/{pod}: {}",
                        text(&out)
                    );
                }
            } else {
                eprintln!("curl by name in pods skipped: {CURL} is not installed");
            }
        }
    }
    // A name that is not there is NXDOMAIN, not a time-out.
    let (resolved, said) = lookup(&c, "default", "here", "nothere.default.svc.cluster.local");
    assert!(!resolved && said.contains("NXDOMAIN"), "{said}");
    // `reload`: a second server block added to the `coredns` ConfigMap (a zone of its own
    // served by the kubernetes plugin) reaches the running CoreDNS pods without a restart.
    let (resolved, said) = lookup(&c, "default", "here", "web.default.svc.corp.test");
    assert!(
        !resolved,
        "corp.test resolved before it was configured: {said}"
    );
    let cm: serde_json::Value = serde_json::from_str(&c.ok(&[
        "get",
        "configmap",
        "coredns",
        "-n",
        "kube-system",
        "-o",
        "json",
    ]))
    .unwrap();
    let corefile = cm["data"]["Corefile"].as_str().unwrap().to_string();
    let patched = format!(
        "corp.test:53 {{\n    errors\n    kubernetes corp.test\n    cache 30\n}}\n{corefile}"
    );
    c.ok(&[
        "patch",
        "configmap",
        "coredns",
        "-n",
        "kube-system",
        "--type",
        "merge",
        "-p",
        &serde_json::json!({"data": {"Corefile": patched}}).to_string(),
    ]);
    let restarts = |c: &Cluster| -> Vec<i64> {
        let all: serde_json::Value = serde_json::from_str(&c.ok(&[
            "get",
            "pods",
            "-n",
            "kube-system",
            "-l",
            "k8s-app=kube-dns",
            "-o",
            "json",
        ]))
        .unwrap();
        all["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["status"]["containerStatuses"][0]["restartCount"].as_i64())
            .collect()
    };
    let before = restarts(&c);
    c.eventually(
        "the reloaded Corefile's block to answer",
        Duration::from_secs(150),
        || {
            let (resolved, out) = lookup(&c, "default", "here", "web.default.svc.corp.test");
            resolved && out.contains(&cluster_ip)
        },
    );
    assert_eq!(
        restarts(&c),
        before,
        "CoreDNS restarted instead of reloading"
    );
    // `prometheus`: each CoreDNS pod's :9153/metrics, read from a pod, counts the queries by
    // server block.
    let coredns_pods: serde_json::Value = serde_json::from_str(&c.ok(&[
        "get",
        "pods",
        "-n",
        "kube-system",
        "-l",
        "k8s-app=kube-dns",
        "-o",
        "json",
    ]))
    .unwrap();
    // Read until both checks hold: a pod's metrics are fetched with `nc -w 3`, which a loaded
    // machine can miss, and the counters only grow.
    let metrics_checked = |counted: &str| {
        counted.contains("coredns_build_info{")
            && counted.lines().any(|l| {
                l.starts_with("coredns_dns_requests_total{")
                    && l.contains("zone=\"corp.test.\"")
                    && l.contains("server=\"dns://:53\"")
            })
            && counted.lines().any(|l| {
                l.starts_with("coredns_dns_responses_total{")
                    && l.contains("rcode=\"NXDOMAIN\"")
                    && l.contains("plugin=\"kubernetes\"")
            })
    };
    let mut counted = String::new();
    for _ in 0..10 {
        counted.clear();
        for p in coredns_pods["items"].as_array().unwrap() {
            let ip = p["status"]["podIP"].as_str().unwrap();
            counted += &text(&c.http_from("default", "here", ip, 9153, "/metrics", 3));
        }
        if metrics_checked(&counted) {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(metrics_checked(&counted), "{counted}");
    // And the address it gives leads to the web pod through the Service.
    c.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    let mut page = String::new();
    c.eventually("web through its ClusterIP", Duration::from_secs(30), || {
        page = text(&c.http_from("jobs", "there", &cluster_ip, 80, "/", 3));
        page.contains("hello from web")
    });
}
