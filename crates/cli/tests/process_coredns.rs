//! End-to-end on the process runtime: the guides' CoreDNS steps. Before the patch the CoreDNS
//! pods stay Pending (EKS's `compute-type: ec2` annotation on a Fargate-only cluster); after
//! the profile and the patch they run on Fargate, and since EKS's CoreDNS image cannot be
//! pulled offline, the runtime runs the built-in CoreDNS from it (event `BuiltinImage`, the
//! built-in's own log line from inside the container).

mod common;

use std::time::Duration;

use common::process_cluster::{Cluster, text};

#[test]
fn coredns_pods_run_the_builtin_coredns_after_the_guides_patch() {
    skip_unless_able!();
    let c = Cluster::new(&[], |_| {});
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
