//! CreateCluster, DescribeCluster, ListClusters, DeleteCluster.

use std::collections::BTreeSet;

use axum::response::IntoResponse;
use localfargate_core::eks::{
    CLUSTER_KIND, Cluster, DEFAULT_KUBERNETES_VERSION, FARGATE_PROFILE_KIND, NODEGROUP_KIND,
    Record, valid_cluster_name, valid_role_arn,
};
use localfargate_core::eks_catalog;
use localfargate_store::Tx;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::wire::{self, Idempotency, to_value};
use crate::{AppState, access_entries};
use localfargate_core::access_entries::{ACCESS_ENTRY_KIND, AuthenticationMode, entry_key};
use localfargate_core::pki::ClusterCa;

/// Members CreateCluster accepts and echoes without interpreting them.
const ECHOED: [&str; 11] = [
    "outpostConfig",
    "bootstrapSelfManagedAddons",
    "zonalShiftConfig",
    "remoteNetworkConfig",
    "computeConfig",
    "storageConfig",
    "deletionProtection",
    "controlPlaneScalingConfig",
    "kubeApiServerConfig",
    "kubeSchedulerConfig",
    "kubeControllerManagerConfig",
];

pub(crate) fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("No cluster found for name: {name}.")).cluster(name)
}

/// The cluster a request names, which must exist.
pub(crate) fn existing(tx: &mut dyn Tx, name: &str) -> Result<(Record<Cluster>, u64), ApiError> {
    wire::load(tx, CLUSTER_KIND, name)?.ok_or_else(|| not_found(name))
}

/// The cluster a profile or node group is being created in, which must exist and be ACTIVE (or
/// UPDATING: a cluster update, such as associating an identity provider, does not hold up its
/// profiles, node groups and add-ons).
pub(crate) fn active(tx: &mut dyn Tx, name: &str) -> Result<Cluster, ApiError> {
    let (record, _) = existing(tx, name)?;
    if !matches!(record.resource.status.as_str(), "ACTIVE" | "UPDATING") {
        return Err(
            ApiError::invalid_request(format!("Cluster '{name}' is not in ACTIVE status"))
                .cluster(name),
        );
    }
    Ok(record.resource)
}

/// What the wire shows: endpoint and CA only once the cluster is ACTIVE (and while it is
/// UPDATING), as EKS does.
pub(crate) fn wire(cluster: &Cluster) -> Value {
    let mut c = cluster.clone();
    if !matches!(c.status.as_str(), "ACTIVE" | "UPDATING") {
        c.endpoint = None;
        c.certificate_authority = None;
    }
    serde_json::to_value(c).unwrap_or(Value::Null)
}

/// The cluster's subnets, checked against the VPC model: known, one VPC, two zones at least.
fn vpc_config(state: &AppState, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let config = match body.get("resourcesVpcConfig") {
        Some(Value::Object(c)) => c.clone(),
        None | Some(Value::Null) => {
            return Err(ApiError::invalid_parameter(
                "resourcesVpcConfig is required",
            ));
        }
        Some(_) => {
            return Err(ApiError::serialization(
                "resourcesVpcConfig must be an object",
            ));
        }
    };
    let subnet_ids = wire::string_list(&config, "subnetIds")?;
    let mut vpc_id = None;
    let mut zones = BTreeSet::new();
    for id in &subnet_ids {
        let (vpc, subnet) = state.config.network.subnet(id).ok_or_else(|| {
            ApiError::invalid_parameter(format!("The subnet ID '{id}' does not exist"))
        })?;
        if vpc_id.get_or_insert(vpc.vpc_id.clone()) != &vpc.vpc_id {
            return Err(ApiError::invalid_parameter(
                "Subnets specified must be in the same VPC",
            ));
        }
        zones.insert(subnet.availability_zone.clone());
    }
    if zones.len() < 2 {
        return Err(ApiError::invalid_parameter(
            "Subnets specified must be in at least two different AZs",
        ));
    }
    let security_groups = wire::string_list(&config, "securityGroupIds")?;
    let public = config
        .get("endpointPublicAccess")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let private = config
        .get("endpointPrivateAccess")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let cidrs = match wire::string_list(&config, "publicAccessCidrs")? {
        c if c.is_empty() => vec!["0.0.0.0/0".to_string()],
        c => c,
    };
    Ok(json!({
        "subnetIds": subnet_ids,
        "securityGroupIds": security_groups,
        "clusterSecurityGroupId": format!("sg-{}", &uuid::Uuid::new_v4().simple().to_string()[..17]),
        "vpcId": vpc_id,
        "endpointPublicAccess": public,
        "endpointPrivateAccess": private,
        "publicAccessCidrs": cidrs,
    }))
}

/// Members stored and echoed as sent must at least have their modelled JSON type, or every later
/// DescribeCluster would break the SDKs that parse it.
fn check_member_types(body: &Map<String, Value>) -> Result<(), ApiError> {
    let object = [
        "kubernetesNetworkConfig",
        "logging",
        "accessConfig",
        "upgradePolicy",
        "outpostConfig",
        "zonalShiftConfig",
        "remoteNetworkConfig",
        "computeConfig",
        "storageConfig",
        "controlPlaneScalingConfig",
        "kubeApiServerConfig",
        "kubeSchedulerConfig",
        "kubeControllerManagerConfig",
    ];
    let boolean = ["bootstrapSelfManagedAddons", "deletionProtection"];
    for (member, value) in body {
        let ok = match value {
            Value::Null => true,
            v if object.contains(&member.as_str()) => v.is_object(),
            v if boolean.contains(&member.as_str()) => v.is_boolean(),
            v if member == "encryptionConfig" => v.is_array(),
            _ => true,
        };
        if !ok {
            return Err(ApiError::serialization(format!(
                "{member} has the wrong JSON type"
            )));
        }
    }
    if let Some(Value::Object(vpc)) = body.get("resourcesVpcConfig") {
        for member in ["endpointPublicAccess", "endpointPrivateAccess"] {
            if vpc
                .get(member)
                .is_some_and(|v| !v.is_null() && !v.is_boolean())
            {
                return Err(ApiError::serialization(format!(
                    "resourcesVpcConfig.{member} must be a boolean"
                )));
            }
        }
    }
    Ok(())
}

/// `accessConfig` as EKS stores it: the authentication mode (CONFIG_MAP when omitted, as the
/// EKS API reference says for API-created clusters) and whether the creator gets an admin entry
/// (true when omitted), which CONFIG_MAP requires.
fn access_config(body: &Map<String, Value>) -> Result<(AuthenticationMode, bool), ApiError> {
    let config = match body.get("accessConfig") {
        Some(Value::Object(c)) => c.clone(),
        _ => Map::new(),
    };
    let mode = match wire::optional_str(&config, "authenticationMode")? {
        None => AuthenticationMode::DEFAULT,
        Some(m) => AuthenticationMode::parse(m).ok_or_else(|| {
            ApiError::invalid_parameter(format!(
                "Unsupported authentication mode {m}. Valid values are API, API_AND_CONFIG_MAP and CONFIG_MAP"
            ))
        })?,
    };
    let bootstrap = match config.get("bootstrapClusterCreatorAdminPermissions") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::serialization(
                "accessConfig.bootstrapClusterCreatorAdminPermissions must be a boolean",
            ));
        }
    };
    if mode == AuthenticationMode::ConfigMap && !bootstrap {
        return Err(ApiError::invalid_parameter(
            "bootstrapClusterCreatorAdminPermissions must be true if cluster authentication mode is set to CONFIG_MAP",
        ));
    }
    Ok((mode, bootstrap))
}

/// CreateCluster, by `creator` (the caller's principal ARN).
pub fn create(
    state: &AppState,
    body: &Map<String, Value>,
    creator: &str,
) -> Result<Value, ApiError> {
    check_member_types(body)?;
    let name = wire::required_str(body, "name")?;
    if !valid_cluster_name(name) {
        return Err(ApiError::invalid_parameter(format!(
            "Cluster name {name:?} is invalid: it must start with an alphanumeric character, contain only \
             alphanumeric characters, hyphens and underscores, and be at most 100 characters"
        )));
    }
    let role_arn = wire::required_str(body, "roleArn")?;
    if !valid_role_arn(role_arn, true) {
        return Err(ApiError::invalid_parameter(format!(
            "Invalid Role Arn: '{role_arn}'"
        )));
    }
    crate::iam_checks::cluster_role(state, role_arn)?;
    let version = wire::optional_str(body, "version")?.unwrap_or(DEFAULT_KUBERNETES_VERSION);
    if eks_catalog::kubernetes_version(version).is_none() {
        return Err(ApiError::invalid_parameter(format!(
            "unsupported Kubernetes version {version}; supported: {}",
            eks_catalog::supported_versions()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let vpc = vpc_config(state, body)?;
    let (mode, bootstrap) = access_config(body)?;
    let tags = wire::tags(body.get("tags"), false)?;
    let idempotency = Idempotency::new("CreateCluster", CLUSTER_KIND, name, body)?;
    let config = &state.config;
    let now = wire::now();
    let ca = ClusterCa::generate(name)
        .map_err(|e| ApiError::server(format!("making the cluster CA: {e}")))?;
    // The key the cluster signs service-account tokens with (kube-apiserver's
    // --service-account-key-file), apart from its CA's.
    let service_account_key = rcgen::KeyPair::generate()
        .map_err(|e| ApiError::server(format!("making the service-account key: {e}")))?
        .serialize_pem();
    let id = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
    let cluster = Cluster {
        name: name.to_string(),
        arn: config.arn(&format!("cluster/{name}")),
        created_at: now,
        version: version.to_string(),
        // The port is chosen inside the transaction below.
        endpoint: None,
        role_arn: role_arn.to_string(),
        resources_vpc_config: vpc,
        kubernetes_network_config: body
            .get("kubernetesNetworkConfig")
            .cloned()
            .filter(|v| !v.is_null())
            .unwrap_or_else(|| json!({"serviceIpv4Cidr": "10.100.0.0/16", "ipFamily": "ipv4"})),
        logging: body.get("logging").cloned().filter(|v| !v.is_null()).unwrap_or_else(|| {
            json!({"clusterLogging": [{"types": ["api", "audit", "authenticator", "controllerManager", "scheduler"], "enabled": false}]})
        }),
        // The OIDC issuer is set with the port below: it answers on the Kubernetes API's listener.
        identity: json!({}),
        status: "CREATING".to_string(),
        certificate_authority: Some(json!({"data": ca.data()})),
        client_request_token: wire::optional_str(body, "clientRequestToken")?.map(str::to_string),
        platform_version: "eks.1".to_string(),
        tags,
        encryption_config: body.get("encryptionConfig").cloned().filter(|v| !v.is_null()),
        access_config: json!({
            "bootstrapClusterCreatorAdminPermissions": bootstrap,
            "authenticationMode": mode.as_str(),
        }),
        upgrade_policy: body
            .get("upgradePolicy")
            .cloned()
            .filter(|v| !v.is_null())
            .unwrap_or_else(|| json!({"supportType": "STANDARD"})),
        health: json!({"issues": []}),
        other: ECHOED
            .iter()
            .filter_map(|k| body.get(*k).filter(|v| !v.is_null()).map(|v| (k.to_string(), v.clone())))
            .collect(),
    };
    let transition_at = Some(now + config.timing.cluster_create);
    let mut record = Record::new(cluster, transition_at);
    record.private = json!({
        "caCertPem": ca.cert_pem,
        "caKeyPem": ca.key_pem,
        "serviceAccountKeyPem": service_account_key,
        // The static bearer token of the cluster's Kubernetes API (`localfargate kubeconfig`).
        "kubeToken": uuid::Uuid::new_v4().simple().to_string(),
        // Who created it: the admin a CONFIG_MAP cluster maps without showing it.
        "creatorArn": creator,
    });
    let creator_entry = (bootstrap && mode.uses_access_entries())
        .then(|| access_entries::creator_entry(state, name, creator, now))
        .flatten();
    wire::in_tx(state.store.as_ref(), |tx| {
        if let Some(replayed) = idempotency.replay(tx)? {
            return Ok(replayed);
        }
        if tx.get(CLUSTER_KIND, name)?.is_some() {
            return Err(
                ApiError::in_use(format!("Cluster already exists with name: {name}")).cluster(name),
            );
        }
        let clusters = tx.list(CLUSTER_KIND, "")?;
        if clusters.len() >= config.quotas.clusters {
            // EKS's text, which names no numbers.
            return Err(ApiError::limit_exceeded(
                "Cluster limit exceeded for account.",
            ));
        }
        let used: std::collections::BTreeSet<u64> = clusters
            .iter()
            .filter_map(|c| c.value["private"]["kubePort"].as_u64())
            .collect();
        let port = (u64::from(config.kube_port_base)..=u64::from(u16::MAX))
            .find(|p| !used.contains(p))
            .ok_or_else(|| {
                ApiError::limit_exceeded(
                    "No free port is left for another cluster's Kubernetes API",
                )
            })?;
        let mut record = record.clone();
        record.resource.endpoint = Some(format!("https://{}:{port}", config.kube_host));
        record.private["kubePort"] = json!(port);
        // EKS's path shape on this machine's listener (docs/irsa.md): without a port, as EKS's,
        // where the server may listen on 443.
        let issuer_host = match u16::try_from(port) {
            Ok(p) if config.portless_issuer => {
                localfargate_core::eks::issuer_address(p).to_string()
            }
            _ => format!("{}:{port}", config.kube_host),
        };
        record.resource.identity =
            json!({"oidc": {"issuer": format!("https://{issuer_host}/id/{}", &id[..32])}});
        tx.create(CLUSTER_KIND, name, &to_value(&record))?;
        // Entries left by an earlier cluster of this name are not this one's.
        access_entries::delete_all(tx, name)?;
        if let Some(entry) = &creator_entry {
            tx.create(
                ACCESS_ENTRY_KIND,
                &entry_key(name, &entry.resource.principal_arn),
                &to_value(entry),
            )?;
        }
        let response = json!({"cluster": wire(&record.resource)});
        idempotency.remember(tx, &response)?;
        Ok(response)
    })
}

pub fn describe(state: &AppState, name: &str) -> Result<Value, ApiError> {
    let record = state
        .store
        .get(CLUSTER_KIND, name)?
        .ok_or_else(|| not_found(name))?;
    let record: Record<Cluster> = serde::Deserialize::deserialize(&record.value)
        .map_err(|e| ApiError::server(format!("stored cluster: {e}")))?;
    Ok(json!({"cluster": wire(&record.resource)}))
}

pub fn list(state: &AppState, q: &[(String, String)]) -> Result<Value, ApiError> {
    let (objects, _) = state.store.list(CLUSTER_KIND, "")?;
    let names = objects.iter().map(|o| o.key.clone()).collect();
    let (clusters, token) = wire::page(names, q)?;
    let mut out = json!({"clusters": clusters});
    if let Some(t) = token {
        out["nextToken"] = json!(t);
    }
    Ok(out)
}

pub fn delete(state: &AppState, name: &str) -> Result<Value, ApiError> {
    let config = &state.config;
    wire::in_tx(state.store.as_ref(), |tx| {
        let (mut record, rev) = existing(tx, name)?;
        let prefix = format!("{name}/");
        if !tx.list(FARGATE_PROFILE_KIND, &prefix)?.is_empty() {
            return Err(
                ApiError::in_use("Cluster has Fargate Profiles in ACTIVE/CREATING state")
                    .cluster(name),
            );
        }
        let nodegroups = tx.list(NODEGROUP_KIND, &prefix)?;
        if !nodegroups.is_empty() {
            let names: Vec<&str> = nodegroups.iter().map(|o| &o.key[prefix.len()..]).collect();
            return Err(ApiError::in_use("Cluster has nodegroups attached")
                .cluster(name)
                .nodegroup(&names.join(",")));
        }
        // EKS refuses only a cluster that is up: one CREATING, FAILED or DELETING goes anyway.
        if record.resource.other.get("deletionProtection") == Some(&Value::Bool(true))
            && matches!(record.resource.status.as_str(), "ACTIVE" | "UPDATING")
        {
            return Err(ApiError::invalid_request(format!(
                "Cluster {name} has deletion protection enabled: disable it with UpdateClusterConfig before deleting the cluster"
            ))
            .cluster(name));
        }
        if crate::updates::in_progress(tx, name, &crate::updates::Target::Cluster)?.is_some() {
            return Err(ApiError::in_use(format!(
                "Cannot delete because cluster {name} currently has an update in progress"
            ))
            .cluster(name));
        }
        if record.resource.status != "DELETING" {
            access_entries::delete_all(tx, name)?;
            // What EKS removes with the cluster: its add-ons, identity provider configs, Pod
            // Identity associations and update history.
            for kind in [
                localfargate_core::eks::ADDON_KIND,
                localfargate_core::eks::IDENTITY_PROVIDER_CONFIG_KIND,
                localfargate_core::eks::POD_IDENTITY_ASSOCIATION_KIND,
                localfargate_core::eks::UPDATE_KIND,
            ] {
                for o in tx.list(kind, &prefix)? {
                    tx.delete(kind, &o.key, None)?;
                }
            }
            record.resource.status = "DELETING".to_string();
            record.transition_at = Some(wire::now() + config.timing.cluster_delete);
            tx.update(CLUSTER_KIND, name, &to_value(&record), Some(rev))?;
        }
        Ok(json!({"cluster": wire(&record.resource)}))
    })
}

/// DescribeFargateProfile and DescribeNodegroup: a cluster's sub-resource from committed state,
/// read without a transaction (the hot path of waiters and controllers). Records keep the resource
/// in its wire shape, so it is written straight into the response as `{"<member>": resource}`.
pub(crate) fn describe_child(
    state: &AppState,
    cluster: &str,
    kind: &str,
    name: &str,
    member: &str,
    not_found_child: impl FnOnce() -> ApiError,
) -> Result<axum::response::Response, ApiError> {
    if state.store.get(CLUSTER_KIND, cluster)?.is_none() {
        return Err(not_found(cluster));
    }
    let object = state
        .store
        .get(kind, &format!("{cluster}/{name}"))?
        .ok_or_else(not_found_child)?;
    let Some(resource) = object.value.get("resource").filter(|r| r.is_object()) else {
        return Err(ApiError::server(format!(
            "stored {kind} {name} has no resource"
        )));
    };
    let mut body = Vec::with_capacity(1024);
    body.extend_from_slice(format!("{{{}:", Value::from(member)).as_bytes());
    serde_json::to_writer(&mut body, resource).map_err(|e| ApiError::server(e.to_string()))?;
    body.push(b'}');
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// The names of a cluster's sub-resources of `kind`, sorted and paged, under `member`.
pub(crate) fn list_children(
    state: &AppState,
    cluster: &str,
    kind: &str,
    member: &str,
    q: &[(String, String)],
) -> Result<Value, ApiError> {
    if state.store.get(CLUSTER_KIND, cluster)?.is_none() {
        return Err(not_found(cluster));
    }
    let prefix = format!("{cluster}/");
    let (objects, _) = state.store.list(kind, &prefix)?;
    let names = objects
        .iter()
        .map(|o| o.key[prefix.len()..].to_string())
        .collect();
    let (names, token) = wire::page(names, q)?;
    let mut out = json!({ member: names });
    if let Some(t) = token {
        out["nextToken"] = json!(t);
    }
    Ok(out)
}

/// The static token of a cluster's Kubernetes API, for `localfargate kubeconfig`. Not an EKS
/// operation: EKS authenticates kubectl through IAM (`aws eks get-token`), which works too.
pub fn kube_token(state: &AppState, name: &str) -> Result<Value, ApiError> {
    let object = state
        .store
        .get(CLUSTER_KIND, name)?
        .ok_or_else(|| not_found(name))?;
    let token = object.value["private"]["kubeToken"].as_str().unwrap_or("");
    Ok(json!({"token": token}))
}
