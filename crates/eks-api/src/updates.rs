//! UpdateClusterConfig, UpdateClusterVersion, UpdateNodegroupConfig, UpdateNodegroupVersion,
//! DescribeUpdate, ListUpdates, CancelUpdate.
//!
//! An update is a record of its own (`<cluster>/<id>`) that goes InProgress → Successful when its
//! `transitionAt` comes (the lifecycle controller moves it), while its target (the cluster, node
//! group or add-on) is UPDATING with the new values under `pending`, merged into the resource at
//! that same moment, so DescribeCluster shows the old configuration until the update is done,
//! as on EKS. A second update while one is in progress is refused with EKS's
//! ResourceInUseException.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use localfargate_core::eks::{CLUSTER_KIND, NODEGROUP_KIND, UPDATE_KIND, parse_cidr};
use localfargate_core::eks_catalog;
use localfargate_core::nodegroup::drain;
use localfargate_store::Tx;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::wire;
use crate::{AppState, clusters, nodegroups};

/// What an update changes.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Cluster,
    Nodegroup(String),
    Addon(String),
}

impl Target {
    fn matches(&self, record: &Value) -> bool {
        let ng = record["nodegroupName"].as_str();
        let addon = record["addonName"].as_str();
        match self {
            Target::Cluster => ng.is_none() && addon.is_none(),
            Target::Nodegroup(n) => ng == Some(n.as_str()),
            Target::Addon(a) => addon == Some(a.as_str()),
        }
    }
}

fn param(kind: &str, value: impl Into<String>) -> Value {
    json!({"type": kind, "value": value.into()})
}

fn update_key(cluster: &str, id: &str) -> String {
    format!("{cluster}/{id}")
}

/// The id of the update of `target` still in progress, if any.
pub(crate) fn in_progress(
    tx: &mut dyn Tx,
    cluster: &str,
    target: &Target,
) -> Result<Option<String>, ApiError> {
    let updates = tx.list(UPDATE_KIND, &format!("{cluster}/"))?;
    Ok(updates
        .iter()
        .find(|o| o.value["resource"]["status"] == "InProgress" && target.matches(&o.value))
        .and_then(|o| o.value["resource"]["id"].as_str().map(str::to_string)))
}

/// EKS's refusal of a cluster update while another is in progress.
pub(crate) fn conflict(kind: &str, cluster: &str, id: &str) -> ApiError {
    ApiError::in_use(format!(
        "Cannot {kind} because cluster {cluster} currently has update {id} in progress"
    ))
    .cluster(cluster)
}

/// Store a new InProgress update of `target`, due at `due`, and return its wire shape.
pub(crate) fn record_update(
    tx: &mut dyn Tx,
    cluster: &str,
    target: &Target,
    kind: &str,
    params: Vec<Value>,
    due: f64,
) -> Result<Value, ApiError> {
    let id = uuid::Uuid::new_v4().to_string();
    let update = json!({
        "id": id,
        "status": "InProgress",
        "type": kind,
        "params": params,
        "createdAt": wire::now(),
        "errors": [],
    });
    let mut stored = json!({"resource": update, "transitionAt": due});
    match target {
        Target::Cluster => {}
        Target::Nodegroup(n) => stored["nodegroupName"] = json!(n),
        Target::Addon(a) => stored["addonName"] = json!(a),
    }
    tx.create(UPDATE_KIND, &update_key(cluster, &id), &stored)?;
    Ok(update)
}

/// Put a stored record (cluster, node group, add-on) into UPDATING with `pending` to be merged
/// when `due` comes.
pub(crate) fn mark_updating(record: &mut Value, pending: Map<String, Value>, due: f64) {
    record["resource"]["status"] = json!("UPDATING");
    if record["resource"].get("modifiedAt").is_some() {
        record["resource"]["modifiedAt"] = json!(wire::now());
    }
    record["pending"] = Value::Object(pending);
    record["transitionAt"] = json!(due);
}

fn load_value(tx: &mut dyn Tx, kind: &str, key: &str) -> Result<Option<(Value, u64)>, ApiError> {
    Ok(tx.get(kind, key)?.map(|o| (o.value.clone(), o.revision)))
}

const LOG_TYPES: [&str; 5] = [
    "api",
    "audit",
    "authenticator",
    "controllerManager",
    "scheduler",
];

/// The cluster's logging after applying `request` to `current`, in EKS's normal form: one
/// group of enabled types and one of disabled ones.
fn merged_logging(current: &Value, request: &Value) -> Result<Value, ApiError> {
    let mut enabled: BTreeSet<String> = BTreeSet::new();
    if let Some(groups) = current["clusterLogging"].as_array() {
        for g in groups.iter().filter(|g| g["enabled"] == true) {
            for t in g["types"].as_array().into_iter().flatten() {
                if let Some(t) = t.as_str() {
                    enabled.insert(t.to_string());
                }
            }
        }
    }
    let groups = request["clusterLogging"]
        .as_array()
        .ok_or_else(|| ApiError::invalid_parameter("logging.clusterLogging is required"))?;
    for g in groups {
        let on = g["enabled"].as_bool().unwrap_or(false);
        for t in g["types"].as_array().into_iter().flatten() {
            let t = t.as_str().unwrap_or_default();
            if !LOG_TYPES.contains(&t) {
                return Err(ApiError::invalid_parameter(format!(
                    "Invalid log type {t:?}: valid types are {}",
                    LOG_TYPES.join(", ")
                )));
            }
            if on {
                enabled.insert(t.to_string());
            } else {
                enabled.remove(t);
            }
        }
    }
    let (on, off): (Vec<&str>, Vec<&str>) = LOG_TYPES.iter().partition(|t| enabled.contains(**t));
    let mut out = Vec::new();
    if !on.is_empty() {
        out.push(json!({"types": on, "enabled": true}));
    }
    if !off.is_empty() {
        out.push(json!({"types": off, "enabled": false}));
    }
    Ok(json!({"clusterLogging": out}))
}

/// Members of UpdateClusterConfig and the update type each one makes.
const CONFIG_MEMBERS: [(&str, &str); 12] = [
    ("logging", "LoggingUpdate"),
    ("accessConfig", "AccessConfigUpdate"),
    ("upgradePolicy", "UpgradePolicyUpdate"),
    ("zonalShiftConfig", "ZonalShiftConfigUpdate"),
    ("computeConfig", "AutoModeUpdate"),
    ("storageConfig", "AutoModeUpdate"),
    ("kubernetesNetworkConfig", "AutoModeUpdate"),
    ("remoteNetworkConfig", "RemoteNetworkConfigUpdate"),
    ("deletionProtection", "DeletionProtectionUpdate"),
    (
        "controlPlaneScalingConfig",
        "ControlPlaneScalingConfigUpdate",
    ),
    ("kubeApiServerConfig", "ControlPlaneComponentConfigUpdate"),
    ("kubeSchedulerConfig", "ControlPlaneComponentConfigUpdate"),
];

fn param_name(member: &str) -> &'static str {
    match member {
        "upgradePolicy" => "UpgradePolicy",
        "zonalShiftConfig" => "ZonalShiftConfig",
        "computeConfig" => "ComputeConfig",
        "storageConfig" => "StorageConfig",
        "kubernetesNetworkConfig" => "KubernetesNetworkConfig",
        "remoteNetworkConfig" => "RemoteNetworkConfig",
        "deletionProtection" => "DeletionProtection",
        "kubeApiServerConfig" => "KubeApiServerConfig",
        "kubeSchedulerConfig" => "KubeSchedulerConfig",
        "kubeControllerManagerConfig" => "KubeControllerManagerConfig",
        _ => "ConfigurationValues",
    }
}

fn auth_rank(mode: &str) -> Option<u8> {
    match mode {
        "CONFIG_MAP" => Some(0),
        "API_AND_CONFIG_MAP" => Some(1),
        "API" => Some(2),
        _ => None,
    }
}

/// What the `resourcesVpcConfig` of an UpdateClusterConfig changes: (update type, pending
/// resourcesVpcConfig, params).
fn vpc_update(
    state: &AppState,
    current: &Value,
    request: &Map<String, Value>,
) -> Result<(&'static str, Value, Vec<Value>), ApiError> {
    let mut next = current.clone();
    let endpoint = [
        "endpointPublicAccess",
        "endpointPrivateAccess",
        "publicAccessCidrs",
    ]
    .iter()
    .any(|m| request.get(*m).is_some_and(|v| !v.is_null()));
    let network = ["subnetIds", "securityGroupIds"]
        .iter()
        .any(|m| request.get(*m).is_some_and(|v| !v.is_null()));
    if endpoint && network {
        return Err(ApiError::invalid_parameter(
            "Only one type of update can be allowed.",
        ));
    }
    if network {
        let mut params = Vec::new();
        if request.contains_key("subnetIds") {
            let subnets = wire::string_list(request, "subnetIds")?;
            let vpc = current["vpcId"].as_str().unwrap_or_default();
            for id in &subnets {
                match state.config.network.subnet(id) {
                    Some((v, _)) if v.vpc_id == vpc => {}
                    Some(_) => {
                        return Err(ApiError::invalid_parameter(
                            "Subnets specified must be in the same VPC",
                        ));
                    }
                    None => {
                        return Err(ApiError::invalid_parameter(format!(
                            "The subnet ID '{id}' does not exist"
                        )));
                    }
                }
            }
            params.push(param("Subnets", json!(subnets).to_string()));
            next["subnetIds"] = json!(subnets);
        }
        if request.contains_key("securityGroupIds") {
            let groups = wire::string_list(request, "securityGroupIds")?;
            params.push(param("SecurityGroups", json!(groups).to_string()));
            next["securityGroupIds"] = json!(groups);
        }
        return Ok(("VpcConfigUpdate", next, params));
    }
    if !endpoint {
        return Err(ApiError::invalid_parameter(
            "resourcesVpcConfig must change the endpoint access, the subnets or the security groups",
        ));
    }
    for (member, v) in request {
        if matches!(
            member.as_str(),
            "endpointPublicAccess" | "endpointPrivateAccess"
        ) && !v.is_null()
        {
            let b = v.as_bool().ok_or_else(|| {
                ApiError::serialization(format!("resourcesVpcConfig.{member} must be a boolean"))
            })?;
            next[member] = json!(b);
        }
    }
    if request.contains_key("publicAccessCidrs") {
        let cidrs = wire::string_list(request, "publicAccessCidrs")?;
        for c in &cidrs {
            if parse_cidr(c).is_none() {
                return Err(ApiError::invalid_parameter(format!(
                    "The following CIDRs are invalid in publicAccessCidrs: [{c}]"
                )));
            }
        }
        next["publicAccessCidrs"] = json!(if cidrs.is_empty() {
            vec!["0.0.0.0/0".to_string()]
        } else {
            cidrs
        });
    }
    let public = next["endpointPublicAccess"].as_bool().unwrap_or(true);
    let private = next["endpointPrivateAccess"].as_bool().unwrap_or(false);
    if !public && !private {
        return Err(ApiError::invalid_parameter(
            "Both public and private endpoint access cannot be disabled",
        ));
    }
    let cidrs = next["publicAccessCidrs"].clone();
    if next == *current {
        let list: Vec<&str> = cidrs
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        return Err(ApiError::invalid_parameter(format!(
            "Cluster is already at the desired configuration with endpointPrivateAccess: {private} , endpointPublicAccess: {public}, and Public Endpoint Restrictions: [{}]",
            list.join(", ")
        )));
    }
    let params = vec![
        param("EndpointPublicAccess", public.to_string()),
        param("EndpointPrivateAccess", private.to_string()),
        param("PublicAccessCidrs", cidrs.to_string()),
    ];
    Ok(("EndpointAccessUpdate", next, params))
}

pub fn update_cluster_config(
    state: &AppState,
    name: &str,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let kinds: Vec<(&str, &str)> = CONFIG_MEMBERS
        .iter()
        .copied()
        .chain([(
            "kubeControllerManagerConfig",
            "ControlPlaneComponentConfigUpdate",
        )])
        .filter(|(m, _)| body.get(*m).is_some_and(|v| !v.is_null()))
        .collect();
    let vpc = match body.get("resourcesVpcConfig") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(o.clone()),
        Some(_) => {
            return Err(ApiError::serialization(
                "resourcesVpcConfig must be an object",
            ));
        }
    };
    let distinct: BTreeSet<&str> = kinds.iter().map(|(_, k)| *k).collect();
    if distinct.len() + usize::from(vpc.is_some()) > 1 {
        return Err(
            ApiError::invalid_parameter("Only one type of update can be allowed.").cluster(name),
        );
    }
    if distinct.is_empty() && vpc.is_none() {
        return Err(ApiError::invalid_parameter(
            "At least one of logging, resourcesVpcConfig, accessConfig, upgradePolicy, zonalShiftConfig, \
             computeConfig, storageConfig, kubernetesNetworkConfig, remoteNetworkConfig, deletionProtection, \
             controlPlaneScalingConfig or a control plane component config must be given",
        )
        .cluster(name));
    }
    for (member, _) in &kinds {
        let v = &body[*member];
        let ok = if *member == "deletionProtection" {
            v.is_boolean()
        } else {
            v.is_object()
        };
        if !ok {
            return Err(ApiError::serialization(format!(
                "{member} has the wrong JSON type"
            )));
        }
    }
    let due = wire::now() + state.config.timing.update;
    wire::in_tx(state.store.as_ref(), |tx| {
        let (mut record, rev) =
            load_value(tx, CLUSTER_KIND, name)?.ok_or_else(|| clusters::not_found(name))?;
        let resource = record["resource"].clone();
        let (kind, pending, params) = if let Some(vpc) = &vpc {
            let (kind, next, params) = vpc_update(state, &resource["resourcesVpcConfig"], vpc)?;
            let mut pending = Map::new();
            pending.insert("resourcesVpcConfig".to_string(), next);
            (kind, pending, params)
        } else {
            let (member, kind) = kinds[0];
            let value = body[member].clone();
            let mut pending = Map::new();
            let params = match member {
                "logging" => {
                    let next = merged_logging(&resource["logging"], &value)?;
                    if next == merged_logging(&resource["logging"], &json!({"clusterLogging": []}))?
                    {
                        return Err(ApiError::invalid_parameter(
                            "No changes needed for the logging config provided",
                        )
                        .cluster(name));
                    }
                    pending.insert("logging".to_string(), next.clone());
                    vec![param("ClusterLogging", next.to_string())]
                }
                "accessConfig" => {
                    let mode = value["authenticationMode"].as_str().ok_or_else(|| {
                        ApiError::invalid_parameter("accessConfig.authenticationMode is required")
                    })?;
                    let current = resource["accessConfig"]["authenticationMode"]
                        .as_str()
                        .unwrap_or("CONFIG_MAP");
                    match (auth_rank(current), auth_rank(mode)) {
                        (_, None) => {
                            return Err(ApiError::invalid_parameter(format!(
                                "Unsupported authentication mode {mode}. Valid values are API, API_AND_CONFIG_MAP and CONFIG_MAP"
                            )));
                        }
                        (Some(from), Some(to)) if to > from => {}
                        _ => {
                            return Err(ApiError::invalid_parameter(format!(
                                "Unsupported authentication mode update from {current} to {mode}"
                            ))
                            .cluster(name));
                        }
                    }
                    let mut access = resource["accessConfig"].clone();
                    access["authenticationMode"] = json!(mode);
                    pending.insert("accessConfig".to_string(), access);
                    vec![param("AuthenticationMode", mode)]
                }
                "upgradePolicy" => {
                    let support = value["supportType"].as_str().unwrap_or("STANDARD");
                    if !matches!(support, "STANDARD" | "EXTENDED") {
                        return Err(ApiError::invalid_parameter(format!(
                            "Unsupported support type {support}. Valid values are STANDARD and EXTENDED"
                        )));
                    }
                    let version = resource["version"].as_str().unwrap_or_default();
                    if support == "STANDARD"
                        && eks_catalog::kubernetes_version(version)
                            .is_some_and(|v| v.support == eks_catalog::SupportStatus::Extended)
                    {
                        return Err(ApiError::invalid_parameter(format!(
                            "Cluster version {version} is in extended support; the support type cannot be set to STANDARD"
                        ))
                        .cluster(name));
                    }
                    pending.insert("upgradePolicy".to_string(), json!({"supportType": support}));
                    vec![param(
                        "UpgradePolicy",
                        json!({"supportType": support}).to_string(),
                    )]
                }
                other => {
                    pending.insert(other.to_string(), value.clone());
                    vec![param(param_name(other), value.to_string())]
                }
            };
            (kind, pending, params)
        };
        if resource["status"] != "ACTIVE" && resource["status"] != "UPDATING" {
            return Err(ApiError::invalid_request(format!(
                "Cluster '{name}' is not in ACTIVE status"
            ))
            .cluster(name));
        }
        if let Some(id) = in_progress(tx, name, &Target::Cluster)? {
            return Err(conflict(kind, name, &id));
        }
        let update = record_update(tx, name, &Target::Cluster, kind, params, due)?;
        mark_updating(&mut record, pending, due);
        tx.update(CLUSTER_KIND, name, &record, Some(rev))?;
        Ok(json!({"update": update}))
    })
}

pub fn update_cluster_version(
    state: &AppState,
    name: &str,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let version = wire::required_str(body, "version")?.to_string();
    let due = wire::now() + state.config.timing.update;
    wire::in_tx(state.store.as_ref(), |tx| {
        let (mut record, rev) =
            load_value(tx, CLUSTER_KIND, name)?.ok_or_else(|| clusters::not_found(name))?;
        let current = record["resource"]["version"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(id) = in_progress(tx, name, &Target::Cluster)? {
            return Err(conflict("VersionUpdate", name, &id));
        }
        if record["resource"]["status"] != "ACTIVE" {
            return Err(ApiError::invalid_request(format!(
                "Cluster '{name}' is not in ACTIVE status"
            ))
            .cluster(name));
        }
        if version == current {
            return Err(ApiError::invalid_parameter(format!(
                "Cluster is already at the desired configuration with version: {version}"
            ))
            .cluster(name));
        }
        let target = eks_catalog::kubernetes_version(&version);
        if eks_catalog::next_minor(&current).as_deref() != Some(version.as_str())
            || target.is_none()
        {
            return Err(ApiError::invalid_parameter(format!(
                "Unsupported Kubernetes minor version update from {current} to {version}"
            ))
            .cluster(name));
        }
        // Node groups may be at most the cluster's version behind; EKS refuses to leave one
        // more than three minors behind, which a one-minor step from an equal version cannot.
        let platform = target.map_or("eks.1", |t| t.platform_version);
        let params = vec![
            param("Version", version.clone()),
            param("PlatformVersion", platform),
        ];
        let update = record_update(tx, name, &Target::Cluster, "VersionUpdate", params, due)?;
        let mut pending = Map::new();
        pending.insert("version".to_string(), json!(version));
        pending.insert("platformVersion".to_string(), json!(platform));
        mark_updating(&mut record, pending, due);
        tx.update(CLUSTER_KIND, name, &record, Some(rev))?;
        Ok(json!({"update": update}))
    })
}

/// The nodegroup being updated, which must be ACTIVE with no update in progress.
fn updatable_nodegroup(tx: &mut dyn Tx, cluster: &str, ng: &str) -> Result<(Value, u64), ApiError> {
    clusters::existing(tx, cluster)?;
    let (record, rev) = load_value(tx, NODEGROUP_KIND, &nodegroups::key(cluster, ng))?
        .ok_or_else(|| nodegroups::not_found(cluster, ng))?;
    if let Some(id) = in_progress(tx, cluster, &Target::Nodegroup(ng.to_string()))? {
        return Err(ApiError::in_use(format!(
            "Cannot update because nodegroup {ng} currently has update {id} in progress"
        ))
        .cluster(cluster)
        .nodegroup(ng));
    }
    let status = record["resource"]["status"].as_str().unwrap_or_default();
    if status != "ACTIVE" {
        return Err(ApiError::in_use(format!(
            "Nodegroup {ng} cannot be updated: it is in {status} status"
        ))
        .cluster(cluster)
        .nodegroup(ng));
    }
    Ok((record, rev))
}

fn string_map(v: Option<&Value>, member: &str) -> Result<BTreeMap<String, String>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|_| ApiError::serialization(format!("{member} must be a map of strings"))),
    }
}

pub fn update_nodegroup_config(
    state: &AppState,
    cluster: &str,
    ng: &str,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let due = wire::now() + state.config.timing.update;
    wire::in_tx(state.store.as_ref(), |tx| {
        let (mut record, rev) = updatable_nodegroup(tx, cluster, ng)?;
        let resource = record["resource"].clone();
        let mut pending = Map::new();
        let mut params = Vec::new();
        if let Some(labels) = body.get("labels").filter(|v| !v.is_null()) {
            let add = string_map(labels.get("addOrUpdateLabels"), "labels.addOrUpdateLabels")?;
            let remove: Vec<String> = labels
                .get("removeLabels")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            if let Some(k) = remove.iter().find(|k| add.contains_key(*k)) {
                return Err(ApiError::invalid_parameter(format!(
                    "The label key {k} cannot be both added and removed"
                ))
                .nodegroup(ng));
            }
            let mut current = string_map(resource.get("labels"), "labels")?;
            for k in &remove {
                current.remove(k);
            }
            current.extend(add.clone());
            pending.insert("labels".to_string(), json!(current));
            if !add.is_empty() {
                params.push(param("LabelsToAdd", json!(add).to_string()));
            }
            if !remove.is_empty() {
                params.push(param("LabelsToRemove", json!(remove).to_string()));
            }
        }
        if let Some(taints) = body.get("taints").filter(|v| !v.is_null()) {
            let mut wrap = Map::new();
            wrap.insert(
                "taints".to_string(),
                taints
                    .get("addOrUpdateTaints")
                    .cloned()
                    .unwrap_or(json!([])),
            );
            let add = nodegroups::taints(&wrap)?;
            wrap.insert(
                "taints".to_string(),
                taints.get("removeTaints").cloned().unwrap_or(json!([])),
            );
            let remove: Vec<Value> = wrap["taints"].as_array().cloned().unwrap_or_default();
            let mut current: Vec<Value> =
                resource["taints"].as_array().cloned().unwrap_or_default();
            current.retain(|t| {
                !remove.iter().any(|r| r["key"] == t["key"])
                    && !add.iter().any(|a| json!(a.key) == t["key"])
            });
            current.extend(
                add.iter()
                    .map(|t| serde_json::to_value(t).unwrap_or(Value::Null)),
            );
            pending.insert("taints".to_string(), json!(current));
            if !add.is_empty() {
                params.push(param("TaintsToAdd", json!(add).to_string()));
            }
            if !remove.is_empty() {
                params.push(param("TaintsToRemove", json!(remove).to_string()));
            }
        }
        if let Some(scaling) = body.get("scalingConfig").filter(|v| !v.is_null()) {
            let Value::Object(requested) = scaling else {
                return Err(ApiError::serialization("scalingConfig must be an object"));
            };
            let mut merged = resource["scalingConfig"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            for (k, v) in requested {
                if !v.is_null() {
                    merged.insert(k.clone(), v.clone());
                }
            }
            let mut wrap = Map::new();
            wrap.insert("scalingConfig".to_string(), Value::Object(merged));
            let checked = nodegroups::scaling(&wrap)?;
            for (kind, member) in [
                ("MinSize", "minSize"),
                ("MaxSize", "maxSize"),
                ("DesiredSize", "desiredSize"),
            ] {
                if let Some(v) = requested.get(member).filter(|v| !v.is_null()) {
                    params.push(param(kind, v.to_string()));
                }
            }
            pending.insert("scalingConfig".to_string(), json!(checked));
        }
        if let Some(update) = body.get("updateConfig").filter(|v| !v.is_null()) {
            nodegroups::check_update_config(update)?;
            for (kind, member) in [
                ("MaxUnavailable", "maxUnavailable"),
                ("MaxUnavailablePercentage", "maxUnavailablePercentage"),
            ] {
                if let Some(v) = update.get(member).filter(|v| !v.is_null()) {
                    params.push(param(kind, v.to_string()));
                }
            }
            pending.insert("updateConfig".to_string(), update.clone());
        }
        if let Some(repair) = body.get("nodeRepairConfig").filter(|v| !v.is_null()) {
            params.push(param("NodeRepairEnabled", repair["enabled"].to_string()));
            pending.insert("nodeRepairConfig".to_string(), repair.clone());
        }
        if pending.is_empty() {
            return Err(ApiError::invalid_parameter(
                "No changes were requested: give labels, taints, scalingConfig, updateConfig or nodeRepairConfig",
            )
            .cluster(cluster)
            .nodegroup(ng));
        }
        let target = Target::Nodegroup(ng.to_string());
        let update = record_update(tx, cluster, &target, "ConfigUpdate", params, due)?;
        mark_updating(&mut record, pending, due);
        tx.update(
            NODEGROUP_KIND,
            &nodegroups::key(cluster, ng),
            &record,
            Some(rev),
        )?;
        Ok(json!({"update": update}))
    })
}

/// The nodes of node group `ng` whose pods a PodDisruptionBudget keeps from being evicted
/// (`core::nodegroup::drain`), read from the cluster's objects in this transaction.
fn eviction_blocked_nodes(
    tx: &mut dyn Tx,
    cluster: &str,
    ng: &str,
) -> Result<Vec<String>, ApiError> {
    // Read as k8s-openapi's types, as the registry stores them (a rare call: every node,
    // budget and pod of the cluster is decoded; one that does not decode is left out).
    fn decoded<K: serde::de::DeserializeOwned>(
        objects: Vec<std::sync::Arc<localfargate_store::Object>>,
    ) -> Vec<K> {
        objects
            .iter()
            .filter_map(|o| K::deserialize(&o.value).ok())
            .collect()
    }
    let kind = format!("k8s/{cluster}");
    let nodes: Vec<Node> = decoded(tx.list(&kind, "core/nodes/")?);
    let budgets: Vec<PodDisruptionBudget> =
        decoded(tx.list(&kind, "policy/poddisruptionbudgets/")?);
    if nodes.is_empty() || budgets.is_empty() {
        return Ok(Vec::new());
    }
    let pods: Vec<Pod> = decoded(tx.list(&kind, "core/pods/")?);
    Ok(drain::eviction_blocked_nodes(ng, &nodes, &budgets, &pods))
}

pub fn update_nodegroup_version(
    state: &AppState,
    cluster: &str,
    ng: &str,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let requested = wire::optional_str(body, "version")?.map(str::to_string);
    let release = wire::optional_str(body, "releaseVersion")?.map(str::to_string);
    let launch_template = match body.get("launchTemplate") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(o.clone()),
        Some(_) => return Err(ApiError::serialization("launchTemplate must be an object")),
    };
    let force = body.get("force").and_then(Value::as_bool).unwrap_or(false);
    let due = wire::now() + state.config.timing.update;
    wire::in_tx(state.store.as_ref(), |tx| {
        let (cluster_record, _) = clusters::existing(tx, cluster)?;
        let cluster_version = cluster_record.resource.version.clone();
        let (mut record, rev) = updatable_nodegroup(tx, cluster, ng)?;
        let version = requested.clone().unwrap_or_else(|| cluster_version.clone());
        if version != cluster_version {
            return Err(ApiError::invalid_parameter(format!(
                "Requested Nodegroup Kubernetes version {version} is not supported: a node group can only be updated to its cluster's version ({cluster_version})"
            ))
            .cluster(cluster)
            .nodegroup(ng));
        }
        let mut pending = Map::new();
        let mut params = vec![param("Version", version.clone())];
        let release = release
            .clone()
            .unwrap_or_else(|| format!("{version}.0-20260101"));
        params.push(param("ReleaseVersion", release.clone()));
        pending.insert("version".to_string(), json!(version));
        pending.insert("releaseVersion".to_string(), json!(release));
        if let Some(lt) = &launch_template {
            let Some(current) = record["resource"].get("launchTemplate").cloned() else {
                return Err(ApiError::invalid_parameter(
                    "Launch template details can't be provided for node groups not using a launch template",
                )
                .cluster(cluster)
                .nodegroup(ng));
            };
            let mut next = current.clone();
            for (k, v) in lt {
                next[k] = v.clone();
            }
            if let Some(n) = lt.get("name").and_then(Value::as_str) {
                params.push(param("LaunchTemplateName", n));
            }
            if let Some(v) = lt.get("version").and_then(Value::as_str) {
                params.push(param("LaunchTemplateVersion", v));
            }
            pending.insert("launchTemplate".to_string(), next);
        }
        let target = Target::Nodegroup(ng.to_string());
        let update = record_update(tx, cluster, &target, "VersionUpdate", params, due)?;
        let blocked = if force {
            Vec::new()
        } else {
            eviction_blocked_nodes(tx, cluster, ng)?
        };
        if !blocked.is_empty() {
            // The update runs, then fails: the node group keeps its version.
            let key = update_key(cluster, update["id"].as_str().unwrap_or_default());
            if let Some((mut stored, rev)) = load_value(tx, UPDATE_KIND, &key)? {
                stored["failure"] = json!([{
                    "errorCode": "PodEvictionFailure",
                    "errorMessage": format!("Reached max retries while trying to evict pods from nodes in node group {ng}"),
                    "resourceIds": blocked,
                }]);
                tx.update(UPDATE_KIND, &key, &stored, Some(rev))?;
            }
            pending = Map::new();
        }
        mark_updating(&mut record, pending, due);
        tx.update(
            NODEGROUP_KIND,
            &nodegroups::key(cluster, ng),
            &record,
            Some(rev),
        )?;
        Ok(json!({"update": update}))
    })
}

fn target_from_query(q: &[(String, String)]) -> Target {
    if let Some(ng) = wire::query_one(q, "nodegroupName") {
        Target::Nodegroup(ng.to_string())
    } else if let Some(a) = wire::query_one(q, "addonName") {
        Target::Addon(a.to_string())
    } else {
        Target::Cluster
    }
}

fn update_not_found(cluster: &str, id: &str) -> ApiError {
    ApiError::not_found(format!("No update found for ID: {id}")).cluster(cluster)
}

pub fn describe(
    state: &AppState,
    cluster: &str,
    id: &str,
    q: &[(String, String)],
) -> Result<Value, ApiError> {
    if state.store.get(CLUSTER_KIND, cluster)?.is_none() {
        return Err(clusters::not_found(cluster));
    }
    let object = state
        .store
        .get(UPDATE_KIND, &update_key(cluster, id))?
        .ok_or_else(|| update_not_found(cluster, id))?;
    if !target_from_query(q).matches(&object.value) {
        return Err(update_not_found(cluster, id));
    }
    Ok(json!({"update": object.value["resource"]}))
}

pub fn list(state: &AppState, cluster: &str, q: &[(String, String)]) -> Result<Value, ApiError> {
    if state.store.get(CLUSTER_KIND, cluster)?.is_none() {
        return Err(clusters::not_found(cluster));
    }
    let target = target_from_query(q);
    match &target {
        Target::Nodegroup(ng) => {
            if state
                .store
                .get(NODEGROUP_KIND, &nodegroups::key(cluster, ng))?
                .is_none()
            {
                return Err(nodegroups::not_found(cluster, ng));
            }
        }
        Target::Addon(a) => {
            if state
                .store
                .get(
                    localfargate_core::eks::ADDON_KIND,
                    &format!("{cluster}/{a}"),
                )?
                .is_none()
            {
                return Err(crate::addons::not_found(cluster, a));
            }
        }
        Target::Cluster => {}
    }
    let prefix = format!("{cluster}/");
    let (objects, _) = state.store.list(UPDATE_KIND, &prefix)?;
    let ids = objects
        .iter()
        .filter(|o| target.matches(&o.value))
        .map(|o| o.key[prefix.len()..].to_string())
        .collect();
    let (ids, token) = wire::page(ids, q)?;
    let mut out = json!({"updateIds": ids});
    if let Some(t) = token {
        out["nextToken"] = json!(t);
    }
    Ok(out)
}

/// CancelUpdate: an update in progress stops, its target keeps its configuration from before.
pub fn cancel(state: &AppState, cluster: &str, id: &str) -> Result<Value, ApiError> {
    wire::in_tx(state.store.as_ref(), |tx| {
        clusters::existing(tx, cluster)?;
        let key = update_key(cluster, id);
        let (mut update, rev) =
            load_value(tx, UPDATE_KIND, &key)?.ok_or_else(|| update_not_found(cluster, id))?;
        if update["resource"]["status"] != "InProgress" {
            return Err(ApiError::invalid_request(format!(
                "Update {id} is not in progress and cannot be cancelled"
            ))
            .cluster(cluster));
        }
        update["resource"]["status"] = json!("Cancelled");
        update["resource"]["cancellation"] = json!({"requestedAt": wire::now()});
        if let Some(m) = update.as_object_mut() {
            m.remove("transitionAt");
        }
        tx.update(UPDATE_KIND, &key, &update, Some(rev))?;
        let (kind, target_key) = match (
            update["nodegroupName"].as_str(),
            update["addonName"].as_str(),
        ) {
            (Some(ng), _) => (NODEGROUP_KIND, nodegroups::key(cluster, ng)),
            (_, Some(a)) => (localfargate_core::eks::ADDON_KIND, format!("{cluster}/{a}")),
            _ => (CLUSTER_KIND, cluster.to_string()),
        };
        if let Some((mut target, trev)) = load_value(tx, kind, &target_key)?
            && target["resource"]["status"] == "UPDATING"
        {
            target["resource"]["status"] = json!("ACTIVE");
            if let Some(m) = target.as_object_mut() {
                m.remove("pending");
                m.remove("transitionAt");
            }
            tx.update(kind, &target_key, &target, Some(trev))?;
        }
        Ok(json!({"update": update["resource"]}))
    })
}
