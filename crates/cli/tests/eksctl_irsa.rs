//! End-to-end, with the simulated runtime and real kubectl: eksctl's IRSA commands as the
//! workshop guide runs them. `utils associate-iam-oidc-provider` plans, then registers the
//! cluster's issuer (with the thumbprint of its CA), then says it is already associated;
//! `iamserviceaccount create` refuses without the provider, then makes the role (trusting the
//! provider for exactly that service account), attaches the policy and creates the annotated
//! ServiceAccount, whose pods the pod identity webhook then mutates; an existing ServiceAccount
//! is left out unless overridden.

mod common;

use common::kube_cluster::{KubeCluster, kubectl_missing, text};
use common::localfargate;
use serde_json::Value;

fn iam(c: &KubeCluster, params: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new("curl");
    cmd.args([
        "-sS",
        &c.server.url,
        "--data-urlencode",
        "Version=2010-05-08",
    ]);
    for (k, v) in params {
        cmd.arg("--data-urlencode").arg(format!("{k}={v}"));
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn between<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no {tag} in {xml}"))
        + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>")).unwrap();
    &xml[start..end]
}

#[test]
fn eksctl_irsa_commands_make_the_provider_the_role_and_the_annotated_service_account() {
    if let Some(why) = kubectl_missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let c = KubeCluster::create("workshop");
    let run = |args: &[&str]| localfargate(&c.server, args);
    let described: Value = serde_json::from_slice(
        &run(&["cluster", "get", "--name", "workshop", "-o", "json"]).stdout,
    )
    .unwrap();
    let issuer = described["identity"]["oidc"]["issuer"]
        .as_str()
        .or(described["cluster"]["identity"]["oidc"]["issuer"].as_str())
        .unwrap_or_else(|| panic!("no issuer in {described:#}"))
        .to_string();
    let host_path = issuer.trim_start_matches("https://").to_string();
    let provider_arn = format!("arn:aws:iam::000000000000:oidc-provider/{host_path}");
    let create_sa = [
        "iamserviceaccount",
        "create",
        "--cluster",
        "workshop",
        "--namespace",
        "default",
        "--name",
        "catalog",
        "--attach-policy-arn",
        "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
        "--approve",
    ];

    // Without the provider, no role and no ServiceAccount.
    let refused = run(&create_sa);
    assert!(!refused.status.success());
    assert!(
        text(&refused)
            .contains("unable to create iamserviceaccount(s) without IAM OIDC provider enabled"),
        "{}",
        text(&refused)
    );
    assert!(!iam(&c, &[("Action", "ListRoles")]).contains("<RoleName>"));
    assert!(
        !c.kubectl("1.31", &["get", "serviceaccount", "catalog"])
            .status
            .success()
    );

    // The provider: a plan first, then made, then already there.
    let plan = run(&[
        "utils",
        "associate-iam-oidc-provider",
        "--cluster",
        "workshop",
    ]);
    assert!(plan.status.success(), "{}", text(&plan));
    assert!(
        text(&plan).contains("(plan) would create IAM Open ID Connect provider"),
        "{}",
        text(&plan)
    );
    assert!(
        iam(&c, &[("Action", "ListOpenIDConnectProviders")])
            .find("<Arn>")
            .is_none()
    );
    let made = run(&[
        "utils",
        "associate-iam-oidc-provider",
        "--cluster",
        "workshop",
        "--approve",
    ]);
    assert!(made.status.success(), "{}", text(&made));
    let provider = iam(
        &c,
        &[
            ("Action", "GetOpenIDConnectProvider"),
            ("OpenIDConnectProviderArn", &provider_arn),
        ],
    );
    assert_eq!(between(&provider, "Url"), host_path);
    assert!(
        provider.contains("<member>sts.amazonaws.com</member>"),
        "{provider}"
    );
    // The thumbprint is the SHA-1 fingerprint of the cluster's CA (the issuer's root).
    let ca = described["certificateAuthority"]["data"]
        .as_str()
        .or(described["cluster"]["certificateAuthority"]["data"].as_str())
        .unwrap();
    let pem = String::from_utf8(base64_decode(ca)).unwrap();
    let der = base64_decode(
        &pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>(),
    );
    let thumbprint = {
        use sha1::Digest;
        hex::encode(sha1::Sha1::digest(&der))
    };
    assert!(
        provider.contains(&format!("<member>{thumbprint}</member>")),
        "{provider}"
    );
    let again = run(&[
        "utils",
        "associate-iam-oidc-provider",
        "--cluster",
        "workshop",
        "--approve",
    ]);
    assert!(again.status.success());
    assert!(
        text(&again).contains("already associated"),
        "{}",
        text(&again)
    );

    // The service account: role, trust, policy, annotation.
    let created = run(&create_sa);
    assert!(created.status.success(), "{}", text(&created));
    let role_name = "eksctl-workshop-addon-iamserviceaccount-default-catalog";
    let role = iam(&c, &[("Action", "GetRole"), ("RoleName", role_name)]);
    let role_arn = between(&role, "Arn").to_string();
    assert_eq!(
        role_arn,
        format!("arn:aws:iam::000000000000:role/{role_name}")
    );
    let trust: Value =
        serde_json::from_str(&percent_decode(between(&role, "AssumeRolePolicyDocument"))).unwrap();
    let statement = &trust["Statement"][0];
    assert_eq!(statement["Principal"]["Federated"], provider_arn);
    assert_eq!(statement["Action"], "sts:AssumeRoleWithWebIdentity");
    assert_eq!(
        statement["Condition"]["StringEquals"][format!("{host_path}:sub")],
        "system:serviceaccount:default:catalog"
    );
    assert_eq!(
        statement["Condition"]["StringEquals"][format!("{host_path}:aud")],
        "sts.amazonaws.com"
    );
    let attached = iam(
        &c,
        &[
            ("Action", "ListAttachedRolePolicies"),
            ("RoleName", role_name),
        ],
    );
    assert!(
        attached.contains("<PolicyName>AmazonS3ReadOnlyAccess</PolicyName>"),
        "{attached}"
    );
    let sa = c.json("1.31", &["get", "serviceaccount", "catalog", "-o", "json"]);
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        role_arn
    );

    // Its pods get the web identity env from the pod identity webhook's mutation.
    c.fargate_profile("fp-default", "default");
    let applied = c.apply(
        "1.31",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: catalog}\nspec:\n  serviceAccountName: catalog\n  containers: [{name: main, image: busybox}]\n",
        &[],
    );
    assert!(applied.status.success(), "{}", text(&applied));
    let pod = c.json("1.31", &["get", "pod", "catalog", "-o", "json"]);
    let env = pod["spec"]["containers"][0]["env"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        env.iter()
            .any(|e| e["name"] == "AWS_ROLE_ARN" && e["value"] == role_arn.as_str()),
        "{env:?}"
    );

    // An existing ServiceAccount is left out, as eksctl does, unless overridden.
    c.ok("1.31", &["create", "serviceaccount", "orders"]);
    let mut orders = create_sa.to_vec();
    orders[7] = "orders";
    let skipped = run(&orders);
    assert!(skipped.status.success(), "{}", text(&skipped));
    assert!(
        text(&skipped)
            .contains("1 existing iamserviceaccount(s) (default/orders) will be excluded"),
        "{}",
        text(&skipped)
    );
    let sa = c.json("1.31", &["get", "serviceaccount", "orders", "-o", "json"]);
    assert!(
        sa["metadata"]["annotations"]
            .get("eks.amazonaws.com/role-arn")
            .is_none()
    );
    orders.push("--override-existing-serviceaccounts");
    let overridden = run(&orders);
    assert!(overridden.status.success(), "{}", text(&overridden));
    let sa = c.json("1.31", &["get", "serviceaccount", "orders", "-o", "json"]);
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::000000000000:role/eksctl-workshop-addon-iamserviceaccount-default-orders"
    );
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}
