//! End-to-end, with the simulated runtime and real kubectl: IAM roles for service accounts.
//! The pod identity webhook's mutation as amazon-eks-pod-identity-webhook makes it (env,
//! volume, mounts, the annotations that tune it, a container's own env kept); the cluster's
//! OIDC issuer answering over https with the cluster's CA, and `kubectl create token` tokens
//! verifying against its keys.

mod common;

use common::kube_cluster::{KubeCluster, kubectl_missing, text};
use common::{localfargate, oidc};
use serde_json::{Value, json};

const TOKEN_FILE: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token";

fn cluster_json(c: &KubeCluster) -> Value {
    let out = localfargate(
        &c.server,
        &["cluster", "get", "--name", &c.name, "-o", "json"],
    );
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn container<'a>(pod: &'a Value, kind: &str, name: &str) -> &'a Value {
    pod["spec"][kind]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}: {pod:#}"))
}

fn env(c: &Value) -> Vec<(String, String)> {
    c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn mounts(c: &Value) -> Vec<Value> {
    c["volumeMounts"].as_array().cloned().unwrap_or_default()
}

fn iam_mount() -> Value {
    json!({"name": "aws-iam-token", "readOnly": true,
           "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount"})
}

const ROLE: &str = "arn:aws:iam::000000000000:role/app";

#[test]
fn the_pod_identity_webhook_mutates_as_upstream() {
    if let Some(why) = kubectl_missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let c = KubeCluster::create_with("irsa", &["--region", "us-west-2"]);
    let applied = c.apply(
        "1.31",
        concat!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n",
            "  annotations: {eks.amazonaws.com/role-arn: 'arn:aws:iam::000000000000:role/app'}\n",
            "---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: tuned\n  annotations:\n",
            "    eks.amazonaws.com/role-arn: 'arn:aws:iam::000000000000:role/tuned'\n",
            "    eks.amazonaws.com/audience: my-audience\n",
            "    eks.amazonaws.com/token-expiration: '7200'\n",
            "    eks.amazonaws.com/sts-regional-endpoints: 'false'\n",
            "---\napiVersion: v1\nkind: Pod\nmetadata: {name: plain}\nspec:\n  serviceAccountName: app\n",
            "  initContainers: [{name: init, image: busybox}]\n",
            "  containers: [{name: main, image: busybox}, {name: side, image: busybox}]\n",
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: tuned\n  annotations:\n",
            "    eks.amazonaws.com/token-expiration: '3600'\n",
            "    eks.amazonaws.com/skip-containers: side\n",
            "spec:\n  serviceAccountName: tuned\n  containers:\n",
            "  - name: main\n    image: busybox\n",
            "    env: [{name: AWS_REGION, value: eu-west-1}, {name: AWS_ROLE_ARN, value: mine}]\n",
            "  - {name: side, image: busybox}\n",
            "  volumes: [{name: scratch, emptyDir: {}}]\n",
            "---\napiVersion: v1\nkind: Pod\nmetadata: {name: unrelated}\nspec:\n",
            "  containers: [{name: main, image: busybox}]\n",
        ),
        &[],
    );
    assert!(applied.status.success(), "{}", text(&applied));

    // The defaults: EKS's regional STS, the cluster's region, the role and the token file, in
    // upstream's order, in init containers and containers alike.
    let plain = c.json("1.31", &["get", "pod", "plain"]);
    let upstream = pairs(&[
        ("AWS_STS_REGIONAL_ENDPOINTS", "regional"),
        ("AWS_DEFAULT_REGION", "us-west-2"),
        ("AWS_REGION", "us-west-2"),
        ("AWS_ROLE_ARN", ROLE),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", TOKEN_FILE),
    ]);
    for (kind, name) in [
        ("initContainers", "init"),
        ("containers", "main"),
        ("containers", "side"),
    ] {
        let ctr = container(&plain, kind, name);
        assert_eq!(env(ctr), upstream, "{name}");
        let mounts = mounts(ctr);
        // After the ServiceAccount plugin's kube-api-access mount.
        assert_eq!(mounts.len(), 2, "{mounts:#?}");
        assert!(
            mounts[0]["name"]
                .as_str()
                .unwrap()
                .starts_with("kube-api-access-")
        );
        assert_eq!(mounts[1], iam_mount());
    }
    // The volume comes first, as upstream's `/spec/volumes/0` patch puts it.
    let volumes = plain["spec"]["volumes"].as_array().unwrap();
    assert_eq!(
        volumes[0],
        json!({"name": "aws-iam-token", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"audience": "sts.amazonaws.com",
                                     "expirationSeconds": 86400, "path": "token"}}]}}),
    );
    assert!(
        volumes[1]["name"]
            .as_str()
            .unwrap()
            .starts_with("kube-api-access-")
    );

    // The annotations: the account's audience and regional-STS switch, the pod's expiration
    // over the account's, a skipped container, a container's own env kept.
    let tuned = c.json("1.31", &["get", "pod", "tuned"]);
    let main = container(&tuned, "containers", "main");
    assert_eq!(
        env(main),
        pairs(&[("AWS_REGION", "eu-west-1"), ("AWS_ROLE_ARN", "mine")])
    );
    assert!(mounts(main).contains(&iam_mount()));
    let side = container(&tuned, "containers", "side");
    assert_eq!(env(side), vec![]);
    assert!(!mounts(side).contains(&iam_mount()));
    let volumes = tuned["spec"]["volumes"].as_array().unwrap();
    assert_eq!(volumes[0]["name"], "aws-iam-token");
    assert_eq!(
        volumes[0]["projected"]["sources"][0]["serviceAccountToken"],
        json!({"audience": "my-audience", "expirationSeconds": 3600, "path": "token"})
    );
    assert_eq!(volumes[1]["name"], "scratch");

    // EKS Pod Identity: the association is stored, but a pod of its account (on Fargate, as every
    // pod of this cluster) gets neither the agent's env nor its token volume, as AWS documents.
    let (status, created) = common::eks_request(
        &c.server.url,
        "POST",
        "/clusters/irsa/pod-identity-associations",
        &json!({"namespace": "default", "serviceAccount": "associated",
                "roleArn": "arn:aws:iam::000000000000:role/associated"}),
    );
    assert_eq!(status, 200, "{created}");
    let applied = c.apply(
        "1.31",
        concat!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: associated}\n---\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: associated}\nspec:\n",
            "  serviceAccountName: associated\n  containers: [{name: main, image: busybox}]\n",
        ),
        &[],
    );
    assert!(applied.status.success(), "{}", text(&applied));
    let associated = c.json("1.31", &["get", "pod", "associated"]);
    assert_eq!(env(container(&associated, "containers", "main")), vec![]);
    assert!(
        !associated["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "eks-pod-identity-token" || v["name"] == "aws-iam-token")
    );

    // A pod whose account has no role is left alone.
    let unrelated = c.json("1.31", &["get", "pod", "unrelated"]);
    assert_eq!(env(container(&unrelated, "containers", "main")), vec![]);
    assert!(
        !unrelated["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "aws-iam-token")
    );
}

#[test]
fn the_issuer_serves_discovery_and_keys_that_verify_the_clusters_tokens() {
    if let Some(why) = kubectl_missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let c = KubeCluster::create_with("issuer", &["--pod-aws-endpoint"]);
    let dir = tempfile::tempdir().unwrap();
    let described = cluster_json(&c);
    let (issuer, ca) = oidc::issuer_and_ca(&described, dir.path());
    // EKS's path shape, on this machine's loopback: without a port (443 of the cluster's own
    // 127.1.H.L, from its API port) where the server may listen on 443; else at the cluster's
    // API port. Which one the server chose is read from the issuer itself.
    let endpoint = described["endpoint"].as_str().unwrap();
    let port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let [high, low] = port.to_be_bytes();
    let portless = format!("https://127.1.{high}.{low}");
    let base = if issuer.starts_with(&format!("{portless}/")) {
        portless
    } else {
        endpoint.to_string()
    };
    let id = issuer
        .strip_prefix(&format!("{base}/id/"))
        .unwrap_or_else(|| panic!("{issuer} is not under {base}/id/"));
    assert!(
        id.len() == 32
            && id
                .chars()
                .all(|ch| ch.is_ascii_digit() || ch.is_ascii_uppercase() && ch.is_ascii_hexdigit()),
        "{id}"
    );

    let (doc, jwks) = oidc::discover(&issuer, &ca);
    assert_eq!(
        doc,
        json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/keys"),
            "authorization_endpoint": "urn:kubernetes:programmatic_authorization",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "claims_supported": ["sub", "iss"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })
    );
    assert_eq!(jwks["keys"][0]["kty"], "EC");
    // Another id is not this cluster's issuer.
    let (status, _) = oidc::https_get(
        &format!("{endpoint}/id/0123456789ABCDEF0123456789ABCDEF/keys"),
        &ca,
    );
    assert_eq!(status, 404);

    // A token for STS verifies with the published keys, and says who it is.
    c.ok(
        "1.31",
        &["create", "serviceaccount", "app", "-n", "default"],
    );
    let token = c.ok(
        "1.31",
        &["create", "token", "app", "--audience", "sts.amazonaws.com"],
    );
    let claims = oidc::verify(token.trim(), &jwks, &issuer, "sts.amazonaws.com");
    assert_eq!(claims["sub"], "system:serviceaccount:default:app");
    assert_eq!(claims["iss"], issuer);

    // `--pod-aws-endpoint`: the mutation points the SDK at this server as pods reach it, the
    // host's address on the pod network (where the `kubernetes` Service's relay is).
    c.ok(
        "1.31",
        &[
            "annotate",
            "serviceaccount",
            "app",
            &format!("eks.amazonaws.com/role-arn={ROLE}"),
        ],
    );
    let applied = c.apply(
        "1.31",
        concat!(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: sdk}\nspec:\n  serviceAccountName: app\n",
            "  containers: [{name: main, image: busybox}]\n",
        ),
        &[],
    );
    assert!(applied.status.success(), "{}", text(&applied));
    let mut gateway = String::new();
    c.eventually("the kubernetes Service's endpoint", || {
        let out = c.kubectl(
            "1.31",
            &[
                "get",
                "endpoints",
                "kubernetes",
                "-o",
                "jsonpath={.subsets[0].addresses[0].ip}",
            ],
        );
        gateway = String::from_utf8_lossy(&out.stdout).into_owned();
        out.status.success() && !gateway.is_empty()
    });
    let port = c.server.url.rsplit_once(':').unwrap().1;
    let pod = c.json("1.31", &["get", "pod", "sdk"]);
    let env = env(container(&pod, "containers", "main"));
    assert_eq!(
        env.last().unwrap(),
        &(
            "AWS_ENDPOINT_URL".to_string(),
            format!("http://{gateway}:{port}")
        ),
        "{env:?}"
    );
}
