//! The EKS Pod Identity Webhook's mutation (amazon-eks-pod-identity-webhook, which EKS runs for
//! every cluster), built in: on pod CREATE, a pod whose ServiceAccount is annotated
//! `eks.amazonaws.com/role-arn` gets what the AWS SDKs' web identity credential provider reads
//! (IAM roles for service accounts, IRSA):
//!
//! * the projected volume `aws-iam-token` (first among the pod's volumes): a service-account
//!   token for the audience `sts.amazonaws.com` (or the account's `eks.amazonaws.com/audience`),
//!   expiring after 86400 s (or `eks.amazonaws.com/token-expiration`, on the account or,
//!   winning, on the pod; at least 600), at `token`;
//! * in every init container and container not named in the pod's
//!   `eks.amazonaws.com/skip-containers` (comma-separated): the env `AWS_STS_REGIONAL_ENDPOINTS=
//!   regional` (unless the account's `eks.amazonaws.com/sts-regional-endpoints` is false),
//!   `AWS_DEFAULT_REGION` and `AWS_REGION` (the cluster's region), `AWS_ROLE_ARN` and
//!   `AWS_WEB_IDENTITY_TOKEN_FILE=/var/run/secrets/eks.amazonaws.com/serviceaccount/token`,
//!   and the volume mounted read-only at that directory.
//!
//! As upstream, env a container already sets is kept: each group (regional STS; the two region
//! variables; the role and token file) is added only when the container sets none of it, and
//! a container that already has all three groups is left alone (mount included). Upstream's
//! Windows token path is left out: Fargate runs Linux pods only.
//!
//! Beyond EKS, with `up --pod-aws-endpoint`, `AWS_ENDPOINT_URL` is added too (unless the
//! container sets it), pointing at localfargate's endpoint as pods reach it: the gateway of the
//! cluster's first subnet, relayed on the host to the EKS API (docs/irsa.md).

use std::net::{Ipv4Addr, SocketAddr};

use localfargate_core::eks::{CLUSTER_KIND, Network};
use serde_json::{Value, json};

use crate::meta::{DynamicObject, ObjectMeta};
use crate::objects::{Objects, resource};

/// The annotations' domain.
const DOMAIN: &str = "eks.amazonaws.com";
pub const VOLUME_NAME: &str = "aws-iam-token";
pub const MOUNT_PATH: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount";
pub const TOKEN_PATH: &str = "token";
pub const DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";
/// Upstream's default token lifetime, and the shortest it lets an annotation ask for.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 86400;
pub const MIN_EXPIRATION_SECONDS: i64 = 600;

/// What the mutation adds, from the ServiceAccount's and the pod's annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchConfig {
    pub role_arn: String,
    pub audience: String,
    pub expiration_seconds: i64,
    pub regional_sts: bool,
    /// `AWS_REGION` and `AWS_DEFAULT_REGION`; none when empty.
    pub region: String,
    pub skip_containers: Vec<String>,
    /// `AWS_ENDPOINT_URL`, with `up --pod-aws-endpoint`.
    pub endpoint_url: Option<String>,
}

fn annotation<'a>(meta: &'a ObjectMeta, name: &str) -> Option<&'a str> {
    meta.annotation(&format!("{DOMAIN}/{name}"))
}

/// Go's `strconv.ParseBool`, which upstream reads `sts-regional-endpoints` with.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A `token-expiration` value: an integer, raised to the minimum; `None` when not one.
fn expiration(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().map(|e| e.max(MIN_EXPIRATION_SECONDS))
}

impl PatchConfig {
    /// The mutation for a pod under a service account (their metadata), or `None` when the
    /// account has no role. Pure.
    pub fn new(
        service_account: &ObjectMeta,
        pod: &ObjectMeta,
        region: &str,
        endpoint_url: Option<String>,
    ) -> Option<PatchConfig> {
        let role_arn = annotation(service_account, "role-arn").filter(|a| !a.is_empty())?;
        let account_expiration = annotation(service_account, "token-expiration")
            .and_then(expiration)
            .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
        let skip_containers = annotation(pod, "skip-containers")
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        Some(PatchConfig {
            role_arn: role_arn.to_string(),
            audience: annotation(service_account, "audience")
                .unwrap_or(DEFAULT_AUDIENCE)
                .to_string(),
            expiration_seconds: annotation(pod, "token-expiration")
                .and_then(expiration)
                .unwrap_or(account_expiration),
            // EKS runs the webhook with regional STS endpoints on.
            regional_sts: annotation(service_account, "sts-regional-endpoints")
                .and_then(parse_bool)
                .unwrap_or(true),
            region: region.to_string(),
            skip_containers,
            endpoint_url,
        })
    }
}

/// The mutation, on pod CREATE in `namespace` (after the ServiceAccount plugin's volume).
pub fn admit(objects: &Objects, namespace: &str, pod: &mut DynamicObject) {
    let account = pod.spec()["serviceAccountName"]
        .as_str()
        .unwrap_or("default");
    let Ok(service_account) = objects.get(resource("", "serviceaccounts"), namespace, account)
    else {
        return;
    };
    let settings = &objects.settings;
    let endpoint = settings
        .pod_aws_endpoint
        .and_then(|eks| pod_endpoint_url(objects, &settings.network, eks));
    let account = ObjectMeta::of(&service_account);
    if let Some(config) = PatchConfig::new(&account, &pod.metadata, &settings.region, endpoint) {
        mutate(pod.field_mut("spec"), &config);
    }
}

/// `http://GATEWAY:PORT`: the EKS API as this cluster's pods reach it, at the gateway of the
/// cluster's first subnet (where the `kubernetes` Service's relay listens too).
fn pod_endpoint_url(objects: &Objects, network: &Network, eks: SocketAddr) -> Option<String> {
    let record = objects.store.get(CLUSTER_KIND, &objects.cluster).ok()??;
    let ids = record.value["resource"]["resourcesVpcConfig"]["subnetIds"].clone();
    let gateway = subnet_gateway(network, &ids)?;
    Some(format!("http://{gateway}:{}", eks.port()))
}

/// The gateway (`network + 1`) of the first of `subnet_ids` in the model, else of its first
/// subnet. Pure.
pub fn subnet_gateway(network: &Network, subnet_ids: &Value) -> Option<Ipv4Addr> {
    let subnets: Vec<_> = network.vpcs.iter().flat_map(|v| &v.subnets).collect();
    let chosen = subnet_ids
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|id| subnets.iter().find(|s| s.subnet_id == id))
        .or_else(|| subnets.first())?;
    let (address, prefix) = chosen.cidr_block.split_once('/')?;
    let address: Ipv4Addr = address.parse().ok()?;
    let prefix: u32 = prefix.parse().ok().filter(|p| *p <= 32)?;
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    Some(Ipv4Addr::from((u32::from(address) & mask) + 1))
}

/// Adds the volume, env and mounts `config` asks for to a pod's `spec`. Pure.
pub fn mutate(spec: &mut Value, config: &PatchConfig) {
    for kind in ["initContainers", "containers"] {
        // `get_mut`, not indexing: indexing a missing key mutably would write `null` there.
        let Some(containers) = spec.get_mut(kind).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers {
            let name = c["name"].as_str().unwrap_or("");
            if config.skip_containers.iter().any(|s| s == name) {
                continue;
            }
            add_to_container(c, config);
        }
    }
    let has_volume = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|v| v["name"] == VOLUME_NAME);
    if has_volume {
        return;
    }
    let volume = json!({
        "name": VOLUME_NAME,
        "projected": {
            "sources": [{"serviceAccountToken": {
                "audience": config.audience,
                "expirationSeconds": config.expiration_seconds,
                "path": TOKEN_PATH,
            }}],
            "defaultMode": 420,
        },
    });
    // Upstream adds it at `/spec/volumes/0`.
    match spec["volumes"].as_array_mut() {
        Some(v) => v.insert(0, volume),
        None => spec["volumes"] = json!([volume]),
    }
}

fn add_to_container(container: &mut Value, config: &PatchConfig) {
    let names: Vec<String> = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str().map(str::to_string))
        .collect();
    let set = |n: &str| names.iter().any(|x| x == n);
    let web_identity = set("AWS_ROLE_ARN") || set("AWS_WEB_IDENTITY_TOKEN_FILE");
    let region = set("AWS_REGION") || set("AWS_DEFAULT_REGION");
    let regional_sts = set("AWS_STS_REGIONAL_ENDPOINTS");
    if web_identity && region && regional_sts {
        return;
    }
    let mut added = Vec::new();
    let mut var = |name: &str, value: &str| added.push(json!({"name": name, "value": value}));
    if !regional_sts && config.regional_sts {
        var("AWS_STS_REGIONAL_ENDPOINTS", "regional");
    }
    if !region && !config.region.is_empty() {
        var("AWS_DEFAULT_REGION", &config.region);
        var("AWS_REGION", &config.region);
    }
    if !web_identity {
        var("AWS_ROLE_ARN", &config.role_arn);
        var(
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            &format!("{MOUNT_PATH}/{TOKEN_PATH}"),
        );
    }
    if let Some(url) = &config.endpoint_url
        && !set("AWS_ENDPOINT_URL")
    {
        var("AWS_ENDPOINT_URL", url);
    }
    if !added.is_empty() {
        match container["env"].as_array_mut() {
            Some(env) => env.extend(added),
            None => container["env"] = Value::Array(added),
        }
    }
    let mounted = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|m| m["name"] == VOLUME_NAME);
    if !mounted {
        let mount = json!({"name": VOLUME_NAME, "readOnly": true, "mountPath": MOUNT_PATH});
        match container["volumeMounts"].as_array_mut() {
            Some(m) => m.push(mount),
            None => container["volumeMounts"] = json!([mount]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(annotations: Value) -> ObjectMeta {
        ObjectMeta::of(&json!({"metadata": {"name": "app", "annotations": annotations}}))
    }

    fn meta(v: &Value) -> ObjectMeta {
        ObjectMeta::of(v)
    }

    #[test]
    fn annotations_shape_the_config() {
        let pod = json!({"metadata": {"annotations": {
            "eks.amazonaws.com/token-expiration": "100",
            "eks.amazonaws.com/skip-containers": "a,b",
        }}});
        let sa = account(json!({
            "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/r",
            "eks.amazonaws.com/audience": "other",
            "eks.amazonaws.com/token-expiration": "7200",
            "eks.amazonaws.com/sts-regional-endpoints": "false",
        }));
        let c = PatchConfig::new(&sa, &meta(&pod), "eu-west-1", None).unwrap();
        assert_eq!(c.audience, "other");
        // The pod's value wins, raised to the minimum.
        assert_eq!(c.expiration_seconds, 600);
        assert!(!c.regional_sts);
        assert_eq!(c.skip_containers, ["a", "b"]);
        // An unreadable value falls back to the account's, then to the default.
        let bad = json!({"metadata": {"annotations": {"eks.amazonaws.com/token-expiration": "x"}}});
        assert_eq!(
            PatchConfig::new(&sa, &meta(&bad), "r", None)
                .unwrap()
                .expiration_seconds,
            7200
        );
        let plain = account(json!({"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/r"}));
        let c = PatchConfig::new(&plain, &meta(&json!({})), "r", None).unwrap();
        assert_eq!(
            (c.audience.as_str(), c.expiration_seconds, c.regional_sts),
            (DEFAULT_AUDIENCE, DEFAULT_EXPIRATION_SECONDS, true)
        );
        assert_eq!(
            PatchConfig::new(&account(json!({})), &meta(&json!({})), "r", None),
            None
        );
    }

    #[test]
    fn a_container_keeps_its_own_env() {
        let sa = account(json!({"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/r"}));
        let mut pod = json!({"spec": {"containers": [
            {"name": "own", "env": [{"name": "AWS_REGION", "value": "x"}]},
            {"name": "all", "env": [
                {"name": "AWS_ROLE_ARN", "value": "mine"},
                {"name": "AWS_DEFAULT_REGION", "value": "x"},
                {"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "legacy"}]},
        ], "volumes": [{"name": "v", "emptyDir": {}}]}});
        let c = PatchConfig::new(
            &sa,
            &meta(&pod),
            "us-east-1",
            Some("http://10.0.0.1:4566".into()),
        );
        mutate(&mut pod["spec"], &c.unwrap());
        let names = |i: usize| -> Vec<String> {
            pod["spec"]["containers"][i]["env"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            names(0),
            [
                "AWS_REGION",
                "AWS_STS_REGIONAL_ENDPOINTS",
                "AWS_ROLE_ARN",
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_ENDPOINT_URL"
            ]
        );
        assert_eq!(
            pod["spec"]["containers"][1]["env"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert!(pod["spec"]["containers"][1]["volumeMounts"].is_null());
        assert_eq!(pod["spec"]["volumes"][0]["name"], VOLUME_NAME);
        assert_eq!(pod["spec"]["volumes"][1]["name"], "v");
    }

    #[test]
    fn gateways_follow_the_cluster_subnets() {
        let network = Network::default_for("us-east-1");
        let second = &network.vpcs[0].subnets[1];
        let gw = subnet_gateway(&network, &json!([second.subnet_id])).unwrap();
        let (net, _) = second.cidr_block.split_once('/').unwrap();
        let net: Ipv4Addr = net.parse().unwrap();
        assert_eq!(u32::from(gw), u32::from(net) + 1);
        assert!(subnet_gateway(&network, &json!(["subnet-unknown"])).is_some());
    }
}
