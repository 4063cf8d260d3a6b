//! CreateAddon, DescribeAddon, ListAddons, UpdateAddon, DeleteAddon, DescribeAddonVersions,
//! DescribeAddonConfiguration, for the add-ons of [`localfargate_core::eks_catalog`].
//!
//! The records are the API's; what an add-on does inside the cluster is the controllers': the
//! coredns add-on manages the cluster's CoreDNS Deployment (its image follows `addonVersion`,
//! `replicaCount` its replicas, `computeType: Fargate` removes the
//! `eks.amazonaws.com/compute-type: ec2` annotation).

use localfargate_core::eks::{ADDON_KIND, NODEGROUP_KIND, valid_role_arn};
use localfargate_core::eks_catalog::{self, ADDONS};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::updates::{self, Target};
use crate::wire::{self, Idempotency};
use crate::{AppState, clusters};

fn key(cluster: &str, name: &str) -> String {
    format!("{cluster}/{name}")
}

pub(crate) fn not_found(cluster: &str, name: &str) -> ApiError {
    let mut e = ApiError::not_found(format!("No addon: {name} found in cluster: {cluster}"))
        .cluster(cluster);
    e.context.insert("addonName".to_string(), json!(name));
    e
}

fn unsupported_version(name: &str) -> ApiError {
    let mut e = ApiError::invalid_parameter("Addon version specified is not supported");
    e.context.insert("addonName".to_string(), json!(name));
    e
}

/// `configurationValues` checked against the add-on's schema.
fn configuration(name: &str, body: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    let Some(text) = wire::optional_str(body, "configurationValues")? else {
        return Ok(None);
    };
    eks_catalog::parse_configuration(name, text).map_err(|m| {
        let mut e = ApiError::invalid_parameter(m);
        e.context.insert("addonName".to_string(), json!(name));
        e
    })?;
    Ok(Some(text.to_string()))
}

fn role(body: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    let Some(arn) = wire::optional_str(body, "serviceAccountRoleArn")? else {
        return Ok(None);
    };
    if !valid_role_arn(arn, true) {
        return Err(ApiError::invalid_parameter(format!(
            "Invalid Role Arn: '{arn}'"
        )));
    }
    Ok(Some(arn.to_string()))
}

fn resolve_conflicts(body: &Map<String, Value>) -> Result<(), ApiError> {
    match wire::optional_str(body, "resolveConflicts")? {
        None | Some("OVERWRITE" | "NONE" | "PRESERVE") => Ok(()),
        Some(other) => Err(ApiError::invalid_parameter(format!(
            "Invalid resolveConflicts value {other}: valid values are OVERWRITE, NONE and PRESERVE"
        ))),
    }
}

/// Health as EKS would report it: the Pod Identity Agent is a DaemonSet on EC2 nodes, so on a
/// cluster without node groups (Fargate only) it has nothing to run on, and Fargate pods never
/// get EKS Pod Identity credentials.
fn health(
    tx: &mut dyn localfargate_store::Tx,
    cluster: &str,
    name: &str,
) -> Result<Value, ApiError> {
    let nodegroups = tx.list(NODEGROUP_KIND, &format!("{cluster}/"))?.len();
    Ok(health_with(name, nodegroups))
}

/// [`health`] given the cluster's number of node groups.
fn health_with(name: &str, nodegroups: usize) -> Value {
    let definition = eks_catalog::addon(name);
    if definition.is_some_and(|d| !d.runs_on_fargate)
        && name == "eks-pod-identity-agent"
        && nodegroups == 0
    {
        return json!({"issues": [{
            "code": "InsufficientNumberOfReplicas",
            "message": "The EKS Pod Identity Agent runs as a DaemonSet on EC2 nodes and does not run on AWS Fargate: \
                        this cluster has no node groups, and pods on Fargate do not get EKS Pod Identity credentials.",
            "resourceIds": ["kube-system/eks-pod-identity-agent"],
        }]});
    }
    json!({"issues": []})
}

pub fn create(
    state: &AppState,
    cluster: &str,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let name = wire::required_str(body, "addonName")?.to_string();
    if eks_catalog::addon(&name).is_none() {
        let mut e = ApiError::invalid_parameter(format!(
            "Addon {name} specified is not supported; supported add-ons: {}",
            ADDONS.map(|a| a.name).join(", ")
        ));
        e.context.insert("addonName".to_string(), json!(name));
        return Err(e.cluster(cluster));
    }
    let requested_version = wire::optional_str(body, "addonVersion")?.map(str::to_string);
    let config = configuration(&name, body)?;
    let role = role(body)?;
    resolve_conflicts(body)?;
    let tags = wire::tags(body.get("tags"), false)?;
    let pod_identity = body
        .get("podIdentityAssociations")
        .cloned()
        .filter(|v| !v.is_null());
    let idempotency = Idempotency::new("CreateAddon", ADDON_KIND, &key(cluster, &name), body)?;
    let config_ = &state.config;
    wire::in_tx(state.store.as_ref(), |tx| {
        if let Some(replayed) = idempotency.replay(tx)? {
            return Ok(replayed);
        }
        let c = clusters::active(tx, cluster)?;
        if tx.get(ADDON_KIND, &key(cluster, &name))?.is_some() {
            let mut e = ApiError::in_use(format!("Addon already exists: {name}")).cluster(cluster);
            e.context.insert("addonName".to_string(), json!(name));
            return Err(e);
        }
        let version = match &requested_version {
            Some(v) => {
                let ok = eks_catalog::addon_versions(&name)
                    .iter()
                    .any(|a| &a.version == v && a.compatible.contains(&c.version.as_str()));
                if !ok {
                    return Err(unsupported_version(&name).cluster(cluster));
                }
                v.clone()
            }
            None => eks_catalog::default_addon_version(&name, &c.version)
                .ok_or_else(|| unsupported_version(&name).cluster(cluster))?,
        };
        let now = wire::now();
        let mut addon = json!({
            "addonName": name,
            "clusterName": cluster,
            "status": "CREATING",
            "addonVersion": version,
            "health": health(tx, cluster, &name)?,
            "addonArn": config_.arn(&format!("addon/{cluster}/{name}/{}", uuid::Uuid::new_v4())),
            "createdAt": now,
            "modifiedAt": now,
            "tags": tags,
            "publisher": "eks",
            "owner": "aws",
        });
        if let Some(role) = &role {
            addon["serviceAccountRoleArn"] = json!(role);
        }
        if let Some(config) = &config {
            addon["configurationValues"] = json!(config);
        }
        if let Some(p) = &pod_identity {
            addon["podIdentityAssociations"] = p.clone();
        }
        let record = json!({"resource": addon, "transitionAt": now + config_.timing.addon});
        tx.create(ADDON_KIND, &key(cluster, &name), &record)?;
        let response = json!({"addon": addon});
        idempotency.remember(tx, &response)?;
        Ok(response)
    })
}

pub fn describe(state: &AppState, cluster: &str, name: &str) -> Result<Value, ApiError> {
    if state
        .store
        .get(localfargate_core::eks::CLUSTER_KIND, cluster)?
        .is_none()
    {
        return Err(clusters::not_found(cluster));
    }
    let object = state
        .store
        .get(ADDON_KIND, &key(cluster, name))?
        .ok_or_else(|| not_found(cluster, name))?;
    let mut addon = object.value["resource"].clone();
    // The agent's health follows the cluster's node groups as they come and go.
    if name == "eks-pod-identity-agent" {
        let (groups, _) = state.store.list(NODEGROUP_KIND, &format!("{cluster}/"))?;
        addon["health"] = health_with(name, groups.len());
    }
    Ok(json!({"addon": addon}))
}

pub fn list(state: &AppState, cluster: &str, q: &[(String, String)]) -> Result<Value, ApiError> {
    clusters::list_children(state, cluster, ADDON_KIND, "addons", q)
}

pub fn update(
    state: &AppState,
    cluster: &str,
    name: &str,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let requested_version = wire::optional_str(body, "addonVersion")?.map(str::to_string);
    let config = configuration(name, body)?;
    let role = role(body)?;
    resolve_conflicts(body)?;
    let due = wire::now() + state.config.timing.update;
    wire::in_tx(state.store.as_ref(), |tx| {
        let (c, _) = clusters::existing(tx, cluster)?;
        let object = tx
            .get(ADDON_KIND, &key(cluster, name))?
            .ok_or_else(|| not_found(cluster, name))?;
        let mut record = object.value.clone();
        let target = Target::Addon(name.to_string());
        if let Some(id) = updates::in_progress(tx, cluster, &target)? {
            let mut e = ApiError::in_use(format!(
                "Cannot update addon {name} because it currently has update {id} in progress"
            ))
            .cluster(cluster);
            e.context.insert("addonName".to_string(), json!(name));
            return Err(e);
        }
        let status = record["resource"]["status"].as_str().unwrap_or_default();
        if !matches!(status, "ACTIVE" | "DEGRADED" | "UPDATE_FAILED") {
            let mut e = ApiError::in_use(format!(
                "Addon {name} cannot be updated: it is in {status} status"
            ))
            .cluster(cluster);
            e.context.insert("addonName".to_string(), json!(name));
            return Err(e);
        }
        let mut pending = Map::new();
        let mut params = Vec::new();
        if let Some(v) = &requested_version {
            let ok = eks_catalog::addon_versions(name)
                .iter()
                .any(|a| &a.version == v && a.compatible.contains(&c.resource.version.as_str()));
            if !ok {
                return Err(unsupported_version(name).cluster(cluster));
            }
            pending.insert("addonVersion".to_string(), json!(v));
            params.push(json!({"type": "AddonVersion", "value": v}));
        }
        if let Some(config) = &config {
            pending.insert("configurationValues".to_string(), json!(config));
            params.push(json!({"type": "ConfigurationValues", "value": config}));
        }
        if let Some(role) = &role {
            pending.insert("serviceAccountRoleArn".to_string(), json!(role));
            params.push(json!({"type": "ServiceAccountRoleArn", "value": role}));
        }
        if let Some(r) = wire::optional_str(body, "resolveConflicts")? {
            params.push(json!({"type": "ResolveConflicts", "value": r}));
        }
        if let Some(p) = body.get("podIdentityAssociations").filter(|v| !v.is_null()) {
            pending.insert("podIdentityAssociations".to_string(), p.clone());
            params.push(json!({"type": "PodIdentityAssociations", "value": p.to_string()}));
        }
        let update = updates::record_update(tx, cluster, &target, "AddonUpdate", params, due)?;
        updates::mark_updating(&mut record, pending, due);
        tx.update(
            ADDON_KIND,
            &key(cluster, name),
            &record,
            Some(object.revision),
        )?;
        Ok(json!({"update": update}))
    })
}

pub fn delete(
    state: &AppState,
    cluster: &str,
    name: &str,
    q: &[(String, String)],
) -> Result<Value, ApiError> {
    let preserve = wire::query_one(q, "preserve") == Some("true");
    let due = wire::now() + state.config.timing.addon;
    wire::in_tx(state.store.as_ref(), |tx| {
        clusters::existing(tx, cluster)?;
        let object = tx
            .get(ADDON_KIND, &key(cluster, name))?
            .ok_or_else(|| not_found(cluster, name))?;
        let mut record = object.value.clone();
        if record["resource"]["status"] != "DELETING" {
            record["resource"]["status"] = json!("DELETING");
            record["resource"]["modifiedAt"] = json!(wire::now());
            record["transitionAt"] = json!(due);
            record["preserve"] = json!(preserve);
            tx.update(
                ADDON_KIND,
                &key(cluster, name),
                &record,
                Some(object.revision),
            )?;
        }
        Ok(json!({"addon": record["resource"]}))
    })
}

fn compute_types(name: &str) -> Value {
    match eks_catalog::addon(name) {
        Some(a) if a.runs_on_fargate => json!(["ec2", "fargate", "hybrid"]),
        _ => json!(["ec2", "hybrid"]),
    }
}

pub fn versions(q: &[(String, String)]) -> Result<Value, ApiError> {
    let name = wire::query_one(q, "addonName");
    let kubernetes = wire::query_one(q, "kubernetesVersion");
    let filter = |key: &str| -> Vec<&str> {
        q.iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .collect()
    };
    let (types, publishers, owners) = (filter("types"), filter("publishers"), filter("owners"));
    let names: Vec<String> = ADDONS
        .iter()
        .filter(|a| name.is_none_or(|n| n == a.name))
        .filter(|a| types.is_empty() || types.contains(&a.kind))
        .filter(|_| publishers.is_empty() || publishers.contains(&"eks"))
        .filter(|_| owners.is_empty() || owners.contains(&"aws"))
        .map(|a| a.name.to_string())
        .collect();
    let (page, token) = wire::page(names, q)?;
    let addons: Vec<Value> = page
        .iter()
        .filter_map(|n| eks_catalog::addon(n))
        .map(|a| {
            let versions: Vec<Value> = eks_catalog::addon_versions(a.name)
                .into_iter()
                .filter(|v| kubernetes.is_none_or(|k| v.compatible.contains(&k)))
                .map(|v| {
                    let compat: Vec<Value> = v
                        .compatible
                        .iter()
                        .filter(|k| kubernetes.is_none_or(|want| want == **k))
                        .map(|k| {
                            json!({"clusterVersion": k, "platformVersions": ["*"],
                                   "defaultVersion": v.default_for.contains(k)})
                        })
                        .collect();
                    json!({
                        "addonVersion": v.version,
                        "architecture": ["amd64", "arm64"],
                        "computeTypes": compute_types(a.name),
                        "compatibilities": compat,
                        "requiresConfiguration": false,
                        "requiresIamPermissions": a.requires_iam_permissions,
                    })
                })
                .collect();
            json!({
                "addonName": a.name,
                "type": a.kind,
                "addonVersions": versions,
                "publisher": "eks",
                "owner": "aws",
                "defaultNamespace": a.namespace,
            })
        })
        .collect();
    let mut out = json!({"addons": addons});
    if let Some(t) = token {
        out["nextToken"] = json!(t);
    }
    Ok(out)
}

pub fn configuration_schema(q: &[(String, String)]) -> Result<Value, ApiError> {
    let name = wire::query_one(q, "addonName")
        .ok_or_else(|| ApiError::invalid_parameter("addonName is required"))?;
    let version = wire::query_one(q, "addonVersion")
        .ok_or_else(|| ApiError::invalid_parameter("addonVersion is required"))?;
    let known = eks_catalog::addon_versions(name)
        .iter()
        .any(|v| v.version == version);
    let schema = eks_catalog::configuration_schema(name).filter(|_| known);
    let Some(schema) = schema else {
        let mut e = ApiError::not_found(format!(
            "Addon {name} with version {version} does not exist"
        ));
        e.context.insert("addonName".to_string(), json!(name));
        return Err(e);
    };
    Ok(json!({
        "addonName": name,
        "addonVersion": version,
        "configurationSchema": schema.to_string(),
        "podIdentityConfiguration": [],
    }))
}
