//! CreateFargateProfile, DescribeFargateProfile, ListFargateProfiles, DeleteFargateProfile.

use localfargate_core::eks::{Cluster, FARGATE_PROFILE_KIND, Record, valid_role_arn};
use localfargate_core::profile::{FargateProfile, ProfileStatus, Selector};
use localfargate_store::Tx;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::clusters;
use crate::error::ApiError;
use crate::wire::{self, Idempotency, to_value};

fn key(cluster: &str, name: &str) -> String {
    format!("{cluster}/{name}")
}

fn not_found(cluster: &str, name: &str) -> ApiError {
    ApiError::not_found(format!("No Fargate Profile found with name: {name}."))
        .cluster(cluster)
        .profile(name)
}

/// Selectors as sent: a selector without a namespace gets an empty one, which validation refuses
/// with AWS's message.
fn selectors(body: &Map<String, Value>) -> Result<Vec<Selector>, ApiError> {
    let items = match body.get("selectors") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ApiError::serialization("selectors must be a list")),
    };
    items
        .iter()
        .map(|item| {
            let Value::Object(item) = item else {
                return Err(ApiError::serialization("each selector must be an object"));
            };
            let namespace = wire::optional_str(item, "namespace")?
                .unwrap_or("")
                .to_string();
            let labels = match item.get("labels") {
                None | Some(Value::Null) => Default::default(),
                Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                    ApiError::serialization("selector labels must be a map of strings to strings")
                })?,
            };
            Ok(Selector { namespace, labels })
        })
        .collect()
}

/// A profile in flight (CREATING or DELETING) in the cluster, other than `except`.
fn in_flight(
    tx: &mut dyn Tx,
    cluster: &str,
    except: &str,
) -> Result<Option<FargateProfile>, ApiError> {
    for o in tx.list(FARGATE_PROFILE_KIND, &format!("{cluster}/"))? {
        let record: Record<FargateProfile> = serde::Deserialize::deserialize(&o.value)
            .map_err(|e| ApiError::server(format!("stored profile: {e}")))?;
        let p = record.resource;
        if p.name != except && matches!(p.status, ProfileStatus::Creating | ProfileStatus::Deleting)
        {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// The profile's subnets: as given, each a private subnet of the cluster's VPC; or, when none are
/// given, the cluster's private subnets.
fn subnets(
    state: &AppState,
    cluster: &Cluster,
    given: Vec<String>,
) -> Result<Vec<String>, ApiError> {
    let network = &state.config.network;
    let vpc_id = cluster.resources_vpc_config["vpcId"].as_str().unwrap_or("");
    if given.is_empty() {
        let cluster_subnets: Vec<String> = cluster.resources_vpc_config["subnetIds"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str())
            .filter(|id| network.subnet(id).is_some_and(|(_, s)| s.private))
            .map(str::to_string)
            .collect();
        if !cluster_subnets.is_empty() {
            return Ok(cluster_subnets);
        }
        let vpc_private: Vec<String> = network
            .vpc(vpc_id)
            .into_iter()
            .flat_map(|v| &v.subnets)
            .filter(|s| s.private)
            .map(|s| s.subnet_id.clone())
            .collect();
        if vpc_private.is_empty() {
            return Err(ApiError::invalid_parameter(format!(
                "The cluster's VPC {vpc_id} has no private subnets for Fargate"
            )));
        }
        return Ok(vpc_private);
    }
    for id in &given {
        let (vpc, subnet) = network.subnet(id).ok_or_else(|| {
            ApiError::invalid_parameter(format!("The subnet ID '{id}' does not exist"))
        })?;
        if vpc.vpc_id != vpc_id {
            return Err(ApiError::invalid_parameter(format!(
                "Subnet {id} provided in Fargate Profile is not in the cluster's VPC {vpc_id}"
            )));
        }
        if !subnet.private {
            return Err(ApiError::invalid_parameter(format!(
                "Subnet {id} provided in Fargate Profile is not a private subnet"
            )));
        }
    }
    Ok(given)
}

fn wire_profile(p: &FargateProfile) -> Value {
    json!({"fargateProfile": to_value(p)})
}

pub fn create(
    state: &AppState,
    cluster_name: &str,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let name = wire::required_str(body, "fargateProfileName")?;
    if !localfargate_core::eks::valid_cluster_name(name) {
        return Err(ApiError::invalid_parameter(format!(
            "Fargate profile name {name:?} is invalid: it must start with an alphanumeric character, contain \
             only alphanumeric characters, hyphens and underscores, and be at most 100 characters"
        )));
    }
    let role = wire::required_str(body, "podExecutionRoleArn")?;
    if valid_role_arn(role, false) {
        crate::iam_checks::pod_execution_role(state, role)
            .map_err(|e| e.cluster(cluster_name).profile(name))?;
    }
    let config = &state.config;
    let profile_error = |e: ApiError| e.cluster(cluster_name).profile(name);
    let selectors = selectors(body)?;
    let given_subnets = wire::string_list(body, "subnets")?;
    let tags = wire::tags(body.get("tags"), false)?;
    let idempotency = Idempotency::new(
        "CreateFargateProfile",
        FARGATE_PROFILE_KIND,
        &key(cluster_name, name),
        body,
    )?;
    wire::in_tx(state.store.as_ref(), |tx| {
        if let Some(replayed) = idempotency.replay(tx)? {
            return Ok(replayed);
        }
        let cluster = clusters::active(tx, cluster_name)?;
        if tx
            .get(FARGATE_PROFILE_KIND, &key(cluster_name, name))?
            .is_some()
        {
            return Err(ApiError::in_use(
                "A Fargate Profile already exists with this name in this cluster.",
            ));
        }
        let mut profile = FargateProfile {
            name: name.to_string(),
            fargate_profile_arn: Some(config.arn(&format!(
                "fargateprofile/{cluster_name}/{name}/{}",
                uuid::Uuid::new_v4()
            ))),
            cluster: cluster_name.to_string(),
            created_at: Some(wire::now()),
            pod_execution_role_arn: role.to_string(),
            subnets: Vec::new(),
            selectors: selectors.clone(),
            status: ProfileStatus::Creating,
            tags: tags.clone(),
        };
        profile
            .validate(config.quotas.profile)
            .map_err(|e| profile_error(ApiError::invalid_parameter(e.to_string())))?;
        if !valid_role_arn(role, false) {
            return Err(profile_error(ApiError::invalid_parameter(format!(
                "Invalid Role Arn: '{role}'"
            ))));
        }
        profile.subnets = subnets(state, &cluster, given_subnets.clone()).map_err(profile_error)?;
        if let Some(other) = in_flight(tx, cluster_name, name)? {
            return Err(ApiError::in_use(format!(
                "Cannot create Fargate Profile {name} because cluster {cluster_name} currently has Fargate profile {} in status {}",
                other.name, other.status
            ))
            .cluster(cluster_name));
        }
        let count = tx
            .list(FARGATE_PROFILE_KIND, &format!("{cluster_name}/"))?
            .len();
        if count >= config.quotas.profiles_per_cluster {
            return Err(ApiError::limit_exceeded(format!(
                "Fargate profile limit exceeded: cluster {cluster_name} already has {count} Fargate profiles (quota {})",
                config.quotas.profiles_per_cluster
            ))
            .cluster(cluster_name));
        }
        let record = Record::new(
            profile.clone(),
            Some(wire::now() + config.timing.profile_create),
        );
        tx.create(
            FARGATE_PROFILE_KIND,
            &key(cluster_name, name),
            &to_value(&record),
        )?;
        let response = wire_profile(&profile);
        idempotency.remember(tx, &response)?;
        Ok(response)
    })
}

pub fn describe(
    state: &AppState,
    cluster: &str,
    name: &str,
) -> Result<axum::response::Response, ApiError> {
    clusters::describe_child(
        state,
        cluster,
        FARGATE_PROFILE_KIND,
        name,
        "fargateProfile",
        || not_found(cluster, name),
    )
}

pub fn list(state: &AppState, cluster: &str, q: &[(String, String)]) -> Result<Value, ApiError> {
    clusters::list_children(
        state,
        cluster,
        FARGATE_PROFILE_KIND,
        "fargateProfileNames",
        q,
    )
}

pub fn delete(state: &AppState, cluster: &str, name: &str) -> Result<Value, ApiError> {
    let config = &state.config;
    wire::in_tx(state.store.as_ref(), |tx| {
        clusters::existing(tx, cluster)?;
        let (mut record, rev): (Record<FargateProfile>, u64) =
            wire::load(tx, FARGATE_PROFILE_KIND, &key(cluster, name))?
                .ok_or_else(|| not_found(cluster, name))?;
        if record.resource.status == ProfileStatus::Deleting {
            return Ok(wire_profile(&record.resource));
        }
        if let Some(other) = in_flight(tx, cluster, name)? {
            return Err(ApiError::in_use(format!(
                "Cannot Delete Fargate Profile {name} because cluster {cluster} currently has Fargate profile {} in status {}",
                other.name, other.status
            ))
            .cluster(cluster));
        }
        record.resource.status = ProfileStatus::Deleting;
        record.transition_at = Some(wire::now() + config.timing.profile_delete);
        tx.update(
            FARGATE_PROFILE_KIND,
            &key(cluster, name),
            &to_value(&record),
            Some(rev),
        )?;
        Ok(wire_profile(&record.resource))
    })
}
