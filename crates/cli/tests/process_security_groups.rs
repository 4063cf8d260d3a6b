//! End-to-end, with real kubectl on `localfargate up --runtime process --network FILE`: security
//! groups for pods as the seed guide applies them. `SecurityGroupPolicy` objects select Fargate
//! pods, the fargate-scheduler records the groups in `fargate.amazonaws.com/pod-sg`, and the
//! groups' rules from the VPC model are enforced for every pod: a web pod whose group admits
//! port 80 from the client group is reached by client pods (one started after it too) on 80
//! only, and not by a pod of the cluster group; a pod holding only the cluster group is reached
//! by another member of it and not by a pod a policy gave other groups; a group the model lacks
//! and a NetworkPolicy get their events.
//!
//! Needs root, runc, busybox-static, docker-registry and skopeo; skipped with the reason
//! otherwise.

mod common;

use std::time::Duration;

use common::process_cluster::{Cluster, busybox_layout, load, network_flags, text};
use serde_json::json;

const IMAGE: &str = "localfargate.test/busybox:sg";

fn pod(name: &str, app: Option<&str>, command: &str) -> String {
    let labels = app.map_or(String::new(), |a| format!("  labels: {{app: {a}}}\n"));
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n{labels}spec:\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {IMAGE}\n    \
         command: [sh, -c, '{command}']\n"
    )
}

/// Whether `from` gets the page `to` serves on `port`, within 3 s.
fn reaches(c: &Cluster, from: &str, to_ip: &str, port: u16) -> bool {
    let out = c.http_from("default", from, to_ip, port, "/", 3);
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("hello")
}

/// Waits for a pod to be Ready; fails with `kubectl describe` of it.
fn ready(c: &Cluster, name: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let pod = c.pod("default", name);
        let is_ready = pod["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        if is_ready {
            return;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "pod {name} not Ready:\n{}",
                text(&c.kubectl(&["describe", "pod", name]))
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn security_group_policies_filter_fargate_pods_traffic() {
    skip_unless_able!();
    let work = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(work.path(), IMAGE, &["sh"]);
    // The default VPC model with two security groups: `sg-web` admits TCP 80 from
    // `sg-client`; `sg-client` admits nothing (both keep EC2's default egress).
    let flags = network_flags(work.path(), "10.0.", |network| {
        network["vpcs"][0]["securityGroups"] = json!([
            {"groupId": "sg-0web0000000000001", "groupName": "web",
             "ipPermissions": [{"ipProtocol": "tcp", "fromPort": 80, "toPort": 80,
                                "userIdGroupPairs": [{"groupId": "sg-0client00000000001"}]}]},
            {"groupId": "sg-0client00000000001", "groupName": "client"}
        ]);
    });
    let c = Cluster::new(&flags, |data| load(data, &busybox));

    c.apply(
        "apiVersion: vpcresources.k8s.aws/v1beta1\nkind: SecurityGroupPolicy\nmetadata:\n  \
         name: web\nspec:\n  podSelector:\n    matchLabels: {app: web}\n  securityGroups:\n    \
         groupIds: [sg-0web0000000000001]\n---\n\
         apiVersion: vpcresources.k8s.aws/v1beta1\nkind: SecurityGroupPolicy\nmetadata:\n  \
         name: client\nspec:\n  podSelector:\n    matchLabels: {app: client}\n  securityGroups:\n    \
         groupIds: [sg-0client00000000001]\n---\n\
         apiVersion: vpcresources.k8s.aws/v1beta1\nkind: SecurityGroupPolicy\nmetadata:\n  \
         name: lost\nspec:\n  podSelector:\n    matchLabels: {app: lost}\n  securityGroups:\n    \
         groupIds: [sg-0nowhere0000000001]\n",
    );
    let serve = "mkdir -p /www && echo hello > /www/index.html && httpd -p 8080 -h /www && \
                 exec httpd -f -p 80 -h /www";
    c.apply(&pod("web", Some("web"), serve));
    c.apply(&pod("client", Some("client"), "exec sleep 3600"));
    c.apply(&pod("plain", None, serve));
    c.apply(&pod("plain2", None, "exec sleep 3600"));
    for p in ["web", "client", "plain", "plain2"] {
        ready(&c, p);
    }
    let web = c.pod("default", "web");
    let web_ip = web["status"]["podIP"].as_str().unwrap().to_string();
    let plain_ip = c.pod("default", "plain")["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        web["metadata"]["annotations"]["fargate.amazonaws.com/pod-sg"], "sg-0web0000000000001",
        "{web}"
    );
    assert!(
        c.pod("default", "plain")["metadata"]["annotations"]
            .get("fargate.amazonaws.com/pod-sg")
            .is_none()
    );

    // sg-web admits TCP 80 from sg-client: the client on 80, not on 8080; a pod of the
    // cluster group on neither.
    c.eventually(
        "the client to reach web:80",
        Duration::from_secs(30),
        || reaches(&c, "client", &web_ip, 80),
    );
    assert!(
        !reaches(&c, "client", &web_ip, 8080),
        "8080 is not admitted"
    );
    assert!(
        !reaches(&c, "plain", &web_ip, 80),
        "plain holds no admitted group"
    );
    // `plain` holds only the cluster security group, which admits its own members: another
    // member reaches it, web and the client (whose groups came from policies, without the
    // cluster group, and whose egress is EC2's default, all) do not.
    c.eventually(
        "plain2 (cluster group) to reach plain",
        Duration::from_secs(30),
        || reaches(&c, "plain2", &plain_ip, 80),
    );
    assert!(
        !reaches(&c, "web", &plain_ip, 80),
        "web holds only sg-web, which the cluster group does not admit"
    );
    assert!(
        !reaches(&c, "client", &plain_ip, 80),
        "the client holds only sg-client"
    );
    // Probes and exec come from the host, which is always let in: web is Ready (above).

    // A client started after web: web's rules follow who holds sg-client.
    c.apply(&pod("client2", Some("client"), "exec sleep 3600"));
    ready(&c, "client2");
    c.eventually("client2 to reach web:80", Duration::from_secs(30), || {
        reaches(&c, "client2", &web_ip, 80)
    });

    // A group the VPC model does not have: said with an event.
    c.apply(&pod("lost", Some("lost"), "exec sleep 3600"));
    c.eventually(
        "the SecurityGroupNotFound event",
        Duration::from_secs(30),
        || {
            c.events("default", "lost").iter().any(|(reason, message)| {
                reason == "SecurityGroupNotFound" && message.contains("sg-0nowhere0000000001")
            })
        },
    );

    // NetworkPolicies are stored, and not enforced on Fargate: said with an event.
    c.apply(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: deny-all\n\
         spec:\n  podSelector: {}\n  policyTypes: [Ingress]\n",
    );
    c.eventually(
        "the NetworkPolicyNotEnforced event",
        Duration::from_secs(30),
        || {
            let out = c.ok(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.kind=NetworkPolicy,involvedObject.name=deny-all",
                "-o",
                "json",
            ]);
            out.contains("NetworkPolicyNotEnforced")
        },
    );
    assert!(
        reaches(&c, "client", &web_ip, 80),
        "the NetworkPolicy changes nothing"
    );
}
