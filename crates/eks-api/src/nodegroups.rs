//! CreateNodegroup, DescribeNodegroup, ListNodegroups, DeleteNodegroup: the EC2 capacity pods
//! fall back to when no Fargate profile takes them.

use localfargate_core::eks::{NODEGROUP_KIND, Nodegroup, Record, ScalingConfig, valid_role_arn};
use localfargate_core::nodegroup::{DEFAULT_INSTANCE_TYPE, Taint};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::clusters;
use crate::error::ApiError;
use crate::wire::{self, Idempotency, to_value};

pub(crate) fn key(cluster: &str, name: &str) -> String {
    format!("{cluster}/{name}")
}

pub(crate) fn not_found(cluster: &str, name: &str) -> ApiError {
    ApiError::not_found(format!("No node group found for name: {name}."))
        .cluster(cluster)
        .nodegroup(name)
}

pub(crate) fn scaling(body: &Map<String, Value>) -> Result<ScalingConfig, ApiError> {
    let config = match body.get("scalingConfig") {
        None | Some(Value::Null) => {
            return Ok(ScalingConfig {
                min_size: 1,
                max_size: 2,
                desired_size: 2,
            });
        }
        Some(Value::Object(c)) => c,
        Some(_) => return Err(ApiError::serialization("scalingConfig must be an object")),
    };
    let number = |member: &str, default: u32| -> Result<u32, ApiError> {
        match config.get(member) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    ApiError::invalid_parameter(format!(
                        "scalingConfig.{member} must be a non-negative integer"
                    ))
                }),
        }
    };
    let min_size = number("minSize", 1)?;
    let max_size = number("maxSize", min_size.max(2))?;
    let desired_size = number("desiredSize", min_size)?;
    if max_size < 1 {
        return Err(ApiError::invalid_parameter(
            "Maximum capacity must be at least 1",
        ));
    }
    if min_size > desired_size {
        return Err(ApiError::invalid_parameter(format!(
            "Minimum capacity {min_size} can't be greater than desired size {desired_size}"
        )));
    }
    if desired_size > max_size {
        return Err(ApiError::invalid_parameter(format!(
            "Desired capacity {desired_size} can't be greater than max size {max_size}"
        )));
    }
    Ok(ScalingConfig {
        min_size,
        max_size,
        desired_size,
    })
}

pub(crate) fn taints(body: &Map<String, Value>) -> Result<Vec<Taint>, ApiError> {
    let taints: Vec<Taint> = match body.get("taints") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| ApiError::invalid_parameter(format!("taints: {e}")))?,
    };
    for t in &taints {
        if !matches!(
            t.effect.as_str(),
            "NO_SCHEDULE" | "NO_EXECUTE" | "PREFER_NO_SCHEDULE"
        ) {
            return Err(ApiError::invalid_parameter(format!(
                "Taint effect {:?} is not one of NO_SCHEDULE, NO_EXECUTE, PREFER_NO_SCHEDULE",
                t.effect
            )));
        }
        if t.key.is_empty() {
            return Err(ApiError::invalid_parameter("Taint key must not be empty"));
        }
    }
    Ok(taints)
}

/// `remoteAccess`, `launchTemplate`, `updateConfig` and `nodeRepairConfig`: objects kept as
/// sent (with `updateConfig`'s default `maxUnavailable: 1`), checked for their modelled shape.
fn kept_members(body: &Map<String, Value>, name: &str) -> Result<Map<String, Value>, ApiError> {
    let mut kept = Map::new();
    for member in [
        "remoteAccess",
        "launchTemplate",
        "updateConfig",
        "nodeRepairConfig",
    ] {
        match body.get(member) {
            None | Some(Value::Null) => {}
            Some(Value::Object(o)) => {
                kept.insert(member.to_string(), Value::Object(o.clone()));
            }
            Some(_) => {
                return Err(ApiError::serialization(format!(
                    "{member} must be an object"
                )));
            }
        }
    }
    if let Some(lt) = kept.get("launchTemplate") {
        if lt.get("id").is_none() && lt.get("name").is_none() {
            return Err(ApiError::invalid_parameter(
                "Either launch template ID or launch template name must be specified.",
            )
            .nodegroup(name));
        }
        if lt.get("id").is_some() && lt.get("name").is_some() {
            return Err(ApiError::invalid_parameter(
                "Only one of launch template ID or launch template name may be specified.",
            )
            .nodegroup(name));
        }
    }
    if let Some(update) = kept.get("updateConfig") {
        check_update_config(update)?;
    } else {
        kept.insert("updateConfig".to_string(), json!({"maxUnavailable": 1}));
    }
    Ok(kept)
}

/// `updateConfig`: `maxUnavailable` (1–100) or `maxUnavailablePercentage` (1–100), not both.
pub(crate) fn check_update_config(update: &Value) -> Result<(), ApiError> {
    let count = update.get("maxUnavailable").filter(|v| !v.is_null());
    let percent = update
        .get("maxUnavailablePercentage")
        .filter(|v| !v.is_null());
    if count.is_some() && percent.is_some() {
        return Err(ApiError::invalid_parameter(
            "Only one of maxUnavailable or maxUnavailablePercentage may be specified",
        ));
    }
    for (member, v) in [
        ("maxUnavailable", count),
        ("maxUnavailablePercentage", percent),
    ] {
        if let Some(v) = v
            && !v.as_u64().is_some_and(|n| (1..=100).contains(&n))
        {
            return Err(ApiError::invalid_parameter(format!(
                "{member} must be between 1 and 100"
            )));
        }
    }
    Ok(())
}

pub fn create(
    state: &AppState,
    cluster_name: &str,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let name = wire::required_str(body, "nodegroupName")?;
    if !localfargate_core::eks::valid_cluster_name(name) || name.len() > 63 {
        return Err(ApiError::invalid_parameter(format!(
            "Node group name {name:?} is invalid: it must start with an alphanumeric character, contain \
             only alphanumeric characters, hyphens and underscores, and be at most 63 characters"
        )));
    }
    let node_role = wire::required_str(body, "nodeRole")?;
    if !valid_role_arn(node_role, true) {
        return Err(
            ApiError::invalid_parameter(format!("Invalid Role Arn: '{node_role}'")).nodegroup(name),
        );
    }
    let subnets = wire::string_list(body, "subnets")?;
    if subnets.is_empty() {
        return Err(ApiError::invalid_parameter("subnets is required").nodegroup(name));
    }
    let scaling = scaling(body)?;
    let taints = taints(body)?;
    let labels: std::collections::BTreeMap<String, String> = match body.get("labels") {
        None | Some(Value::Null) => Default::default(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|_| ApiError::serialization("labels must be a map of strings to strings"))?,
    };
    let mut instance_types = wire::string_list(body, "instanceTypes")?;
    if instance_types.is_empty() {
        instance_types.push(DEFAULT_INSTANCE_TYPE.to_string());
    }
    let tags = wire::tags(body.get("tags"), false)?;
    let other = kept_members(body, name)?;
    let launch_template = other.contains_key("launchTemplate");
    let disk_size = match body.get("diskSize") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| ApiError::serialization("diskSize must be an integer"))?,
        ),
    };
    if launch_template && disk_size.is_some() {
        return Err(ApiError::invalid_parameter(
            "Disk size must be specified within the launch template.",
        )
        .cluster(cluster_name)
        .nodegroup(name));
    }
    if launch_template && other.contains_key("remoteAccess") {
        return Err(ApiError::invalid_parameter(
            "Remote access configuration cannot be specified with a launch template.",
        )
        .cluster(cluster_name)
        .nodegroup(name));
    }
    let idempotency = Idempotency::new(
        "CreateNodegroup",
        NODEGROUP_KIND,
        &key(cluster_name, name),
        body,
    )?;
    let config = &state.config;
    wire::in_tx(state.store.as_ref(), |tx| {
        if let Some(replayed) = idempotency.replay(tx)? {
            return Ok(replayed);
        }
        let cluster = clusters::active(tx, cluster_name)?;
        if tx.get(NODEGROUP_KIND, &key(cluster_name, name))?.is_some() {
            return Err(ApiError::in_use(format!(
                "NodeGroup already exists with name {name} and cluster name {cluster_name}"
            ))
            .cluster(cluster_name)
            .nodegroup(name));
        }
        let vpc_id = cluster.resources_vpc_config["vpcId"].as_str().unwrap_or("");
        for id in &subnets {
            match config.network.subnet(id) {
                None => {
                    return Err(ApiError::invalid_parameter(format!(
                        "The subnet ID '{id}' does not exist"
                    )));
                }
                Some((vpc, _)) if vpc.vpc_id != vpc_id => {
                    return Err(ApiError::invalid_parameter(format!(
                        "Subnet {id} is not in the cluster's VPC {vpc_id}"
                    )));
                }
                _ => {}
            }
        }
        let count = tx.list(NODEGROUP_KIND, &format!("{cluster_name}/"))?.len();
        if count >= config.quotas.nodegroups_per_cluster {
            return Err(ApiError::limit_exceeded(format!(
                "Node group limit exceeded: cluster {cluster_name} already has {count} node groups (quota {})",
                config.quotas.nodegroups_per_cluster
            ))
            .cluster(cluster_name));
        }
        let now = wire::now();
        let id = uuid::Uuid::new_v4();
        // What EKS makes for the group: its Auto Scaling group, and with remote access and no
        // source security groups, a security group open to SSH.
        let mut resources = json!({"autoScalingGroups": [{"name": format!("eks-{name}-{id}")}]});
        if let Some(remote) = other.get("remoteAccess")
            && remote["sourceSecurityGroups"]
                .as_array()
                .is_none_or(Vec::is_empty)
        {
            resources["remoteAccessSecurityGroup"] = json!(format!(
                "sg-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..17]
            ));
        }
        let nodegroup = Nodegroup {
            nodegroup_name: name.to_string(),
            nodegroup_arn: config.arn(&format!("nodegroup/{cluster_name}/{name}/{id}")),
            cluster_name: cluster_name.to_string(),
            version: cluster.version.clone(),
            release_version: format!("{}.0-20260101", cluster.version),
            created_at: now,
            modified_at: now,
            status: "CREATING".to_string(),
            capacity_type: wire::optional_str(body, "capacityType")?
                .unwrap_or("ON_DEMAND")
                .to_string(),
            scaling_config: scaling.clone(),
            instance_types: instance_types.clone(),
            subnets: subnets.clone(),
            ami_type: wire::optional_str(body, "amiType")?
                .unwrap_or("AL2023_x86_64_STANDARD")
                .to_string(),
            node_role: node_role.to_string(),
            labels: labels.clone(),
            taints: taints.clone(),
            disk_size: if launch_template {
                None
            } else {
                Some(disk_size.unwrap_or(20))
            },
            health: json!({"issues": []}),
            tags: tags.clone(),
            resources: Some(resources),
            other: other.clone().into_iter().collect(),
        };
        let record = Record::new(
            nodegroup.clone(),
            Some(now + config.timing.nodegroup_create),
        );
        tx.create(NODEGROUP_KIND, &key(cluster_name, name), &to_value(&record))?;
        let response = json!({"nodegroup": to_value(&nodegroup)});
        idempotency.remember(tx, &response)?;
        Ok(response)
    })
}

pub fn describe(
    state: &AppState,
    cluster: &str,
    name: &str,
) -> Result<axum::response::Response, ApiError> {
    clusters::describe_child(state, cluster, NODEGROUP_KIND, name, "nodegroup", || {
        not_found(cluster, name)
    })
}

pub fn list(state: &AppState, cluster: &str, q: &[(String, String)]) -> Result<Value, ApiError> {
    clusters::list_children(state, cluster, NODEGROUP_KIND, "nodegroups", q)
}

pub fn delete(state: &AppState, cluster: &str, name: &str) -> Result<Value, ApiError> {
    let config = &state.config;
    wire::in_tx(state.store.as_ref(), |tx| {
        clusters::existing(tx, cluster)?;
        let (mut record, rev): (Record<Nodegroup>, u64) =
            wire::load(tx, NODEGROUP_KIND, &key(cluster, name))?
                .ok_or_else(|| not_found(cluster, name))?;
        if record.resource.status != "DELETING" {
            record.resource.status = "DELETING".to_string();
            record.resource.modified_at = wire::now();
            record.transition_at = Some(wire::now() + config.timing.nodegroup_delete);
            tx.update(
                NODEGROUP_KIND,
                &key(cluster, name),
                &to_value(&record),
                Some(rev),
            )?;
        }
        Ok(json!({"nodegroup": to_value(&record.resource)}))
    })
}
