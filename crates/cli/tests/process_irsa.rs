//! End-to-end on the process runtime: IAM roles for service accounts in a pod that really runs.
//! The web identity token the pod identity webhook's mutation mounts is there, at the path its
//! env names, and verifies against the keys the cluster's OIDC issuer serves over https; with
//! `up --pod-aws-endpoint`, `AWS_ENDPOINT_URL` answers from inside the pod.
//!
//! From inside the pod, the token is exchanged at that endpoint's STS (AssumeRoleWithWebIdentity,
//! the request an SDK's web identity provider sends) for the role whose trust policy names the
//! cluster's IAM OIDC provider and the service account; another service account's token is
//! refused with AccessDenied.

mod common;

use common::oidc;
use common::process_cluster::{Cluster, busybox_layout, load, network_flags, text};
use serde_json::Value;

#[test]
fn a_pods_web_identity_token_verifies_with_the_clusters_issuer() {
    skip_unless_able!();
    let work = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(work.path(), "localfargate.test/busybox:1", &["sh"]);
    let mut flags = network_flags(work.path(), "10.57.", |_| {});
    flags.push("--pod-aws-endpoint".to_string());
    let c = Cluster::new(&flags, |data| load(data, &busybox));
    c.apply(concat!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n",
        "  annotations: {eks.amazonaws.com/role-arn: 'arn:aws:iam::000000000000:role/app'}\n",
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: sdk}\nspec:\n  serviceAccountName: app\n",
        "  containers:\n  - name: c\n    image: localfargate.test/busybox:1\n    imagePullPolicy: Never\n",
        "    command: [sh, -c, 'exec sleep 3600']\n",
    ));
    c.wait_ready("default", "sdk");

    // The env the SDK reads, in the container's process.
    let env = c.ok(&["exec", "sdk", "--", "env"]);
    let var = |name: &str| -> String {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {env}"))
            .to_string()
    };
    assert_eq!(var("AWS_ROLE_ARN"), "arn:aws:iam::000000000000:role/app");
    assert_eq!(
        var("AWS_WEB_IDENTITY_TOKEN_FILE"),
        "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
    );
    assert_eq!(var("AWS_STS_REGIONAL_ENDPOINTS"), "regional");
    assert_eq!(var("AWS_REGION"), var("AWS_DEFAULT_REGION"));

    // The token file, verified as STS would: with the keys at the cluster's issuer.
    let token = c.ok(&[
        "exec",
        "sdk",
        "--",
        "sh",
        "-c",
        "cat \"$AWS_WEB_IDENTITY_TOKEN_FILE\"",
    ]);
    let out = c.localfargate(&["cluster", "get", "--name", "run", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let described: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (issuer, ca) = oidc::issuer_and_ca(&described, work.path());
    let (_, jwks) = oidc::discover(&issuer, &ca);
    let claims = oidc::verify(token.trim(), &jwks, &issuer, "sts.amazonaws.com");
    assert_eq!(claims["iss"], issuer);
    assert_eq!(claims["sub"], "system:serviceaccount:default:app");
    assert_eq!(claims["aud"], serde_json::json!(["sts.amazonaws.com"]));
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        86400
    );
    assert_eq!(claims["kubernetes.io"]["pod"]["name"], "sdk");

    // AWS_ENDPOINT_URL reaches this server's EKS API from inside the pod (through the relay
    // on the pod bridge; the pod's traffic stays on the machine).
    let url = var("AWS_ENDPOINT_URL");
    let (host, port) = url
        .strip_prefix("http://")
        .and_then(|h| h.rsplit_once(':'))
        .unwrap_or_else(|| panic!("{url}"));
    let port: u16 = port.parse().unwrap();
    let mut answer = String::new();
    c.eventually(
        "the EKS API from the pod",
        std::time::Duration::from_secs(30),
        || {
            let out = c.http_from("default", "sdk", host, port, "/clusters", 3);
            answer = String::from_utf8_lossy(&out.stdout).into_owned();
            answer.starts_with("HTTP/1.")
        },
    );
    assert!(answer.contains("\"clusters\""), "{answer}");

    // IRSA as the guides set it up: the cluster's issuer as an IAM OIDC provider, a role
    // trusting it for this service account and audience (the aws CLI's Query calls, by curl).
    let issuer_host = issuer.trim_start_matches("https://");
    iam(
        c.url(),
        &[
            ("Action", "CreateOpenIDConnectProvider"),
            ("Url", issuer.as_str()),
            ("ClientIDList.member.1", "sts.amazonaws.com"),
            (
                "ThumbprintList.member.1",
                "9e99a48a9960b14926bb7f3b02e22da2b0ab7280",
            ),
        ],
    );
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": format!("arn:aws:iam::000000000000:oidc-provider/{issuer_host}")},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{issuer_host}:sub"): "system:serviceaccount:default:app",
                format!("{issuer_host}:aud"): "sts.amazonaws.com",
            }},
        }],
    })
    .to_string();
    iam(
        c.url(),
        &[
            ("Action", "CreateRole"),
            ("RoleName", "app"),
            ("AssumeRolePolicyDocument", trust.as_str()),
        ],
    );
    let answer = assume_from(&c, "sdk", host, port);
    assert!(
        answer.contains("<Arn>arn:aws:sts::000000000000:assumed-role/app/from-pod</Arn>"),
        "{answer}"
    );
    assert!(answer.contains("<AccessKeyId>ASIA"), "{answer}");
    assert!(
        answer.contains("<SubjectFromWebIdentityToken>system:serviceaccount:default:app<"),
        "{answer}"
    );

    // Another service account annotated with the same role: its token does not satisfy the
    // trust policy's `sub`.
    c.apply(concat!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: intruder\n",
        "  annotations: {eks.amazonaws.com/role-arn: 'arn:aws:iam::000000000000:role/app'}\n",
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: other}\nspec:\n  serviceAccountName: intruder\n",
        "  containers:\n  - name: c\n    image: localfargate.test/busybox:1\n    imagePullPolicy: Never\n",
        "    command: [sh, -c, 'exec sleep 3600']\n",
    ));
    c.wait_ready("default", "other");
    let refused = assume_from(&c, "other", host, port);
    assert!(
        refused.starts_with("HTTP/1.1 403") || refused.starts_with("HTTP/1.0 403"),
        "{refused}"
    );
    assert!(refused.contains("<Code>AccessDenied</Code>"), "{refused}");
    assert!(
        refused.contains("Not authorized to perform sts:AssumeRoleWithWebIdentity"),
        "{refused}"
    );
}

/// An IAM Query call to the server (unsigned: the server runs with `--auth` permissive).
fn iam(url: &str, params: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "-f", url, "--data-urlencode", "Version=2010-05-08"]);
    for (k, v) in params {
        cmd.arg("--data-urlencode").arg(format!("{k}={v}"));
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "IAM {params:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// From inside `pod`: the web identity token at `AWS_WEB_IDENTITY_TOKEN_FILE` exchanged for the
/// role in `AWS_ROLE_ARN`, as an SDK's web identity provider asks STS (an unsigned
/// AssumeRoleWithWebIdentity POST), at `AWS_ENDPOINT_URL`. The raw HTTP answer.
fn assume_from(c: &Cluster, pod: &str, host: &str, port: u16) -> String {
    let script = format!(
        concat!(
            "t=$(cat \"$AWS_WEB_IDENTITY_TOKEN_FILE\"); ",
            "b=\"Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=$AWS_ROLE_ARN",
            "&RoleSessionName=from-pod&WebIdentityToken=$t\"; ",
            // nc's input stays open while the answer comes: the server, like hyper's default,
            // drops a connection whose client shuts its side down before it is answered.
            "(printf 'POST / HTTP/1.0\\r\\nHost: {host}:{port}\\r\\n",
            "Content-Type: application/x-www-form-urlencoded\\r\\nContent-Length: %s\\r\\n\\r\\n%s' ",
            "\"${{#b}}\" \"$b\"; sleep 3) | nc -w 5 {host} {port}"
        ),
        host = host,
        port = port
    );
    let out = c.kubectl(&["exec", pod, "--", "sh", "-c", &script]);
    assert!(out.status.success(), "{script}: {}", text(&out));
    let answer = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(answer.starts_with("HTTP/1."), "{script}: {}", text(&out));
    answer
}
