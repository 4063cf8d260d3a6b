//! The rest of EKS's operations: DescribeClusterVersions (from the core catalog), insights
//! (computed from the cluster's records at read time), AssociateEncryptionConfig (an update),
//! the cluster's certificate authority (its one CA, read-only), and the operations that have
//! nothing to act on locally — RegisterCluster/DeregisterCluster (EKS Connector), capabilities
//! (managed Argo CD, ACK, kro) and EKS Anywhere subscriptions — which answer in AWS's shape with
//! the documented local behaviour: their lists are empty, a named one is not found, and creating
//! one is refused with InvalidRequestException saying why.

use localfargate_core::eks::{ADDON_KIND, CLUSTER_KIND, NODEGROUP_KIND};
use localfargate_core::eks_catalog::{self, KUBERNETES_VERSIONS};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::updates::{self, Target};
use crate::wire;
use crate::{AppState, clusters};

fn truthy(q: &[(String, String)], key: &str) -> bool {
    wire::query_one(q, key) == Some("true")
}

pub fn cluster_versions(q: &[(String, String)]) -> Result<Value, ApiError> {
    let wanted: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "clusterVersions")
        .flat_map(|(_, v)| v.split(','))
        .collect();
    if let Some(t) = wire::query_one(q, "clusterType")
        && t != "eks"
    {
        return Err(ApiError::invalid_parameter(format!(
            "Unsupported cluster type {t}; the only cluster type is eks"
        )));
    }
    let status = wire::query_one(q, "versionStatus");
    let legacy_status = wire::query_one(q, "status");
    let default_only = truthy(q, "defaultOnly");
    let versions: Vec<String> = KUBERNETES_VERSIONS
        .iter()
        .filter(|v| wanted.is_empty() || wanted.contains(&v.version))
        .filter(|v| status.is_none_or(|s| s == v.support.version_status()))
        .filter(|v| legacy_status.is_none_or(|s| s == v.support.status()))
        .filter(|v| !default_only || v.version == eks_catalog::DEFAULT_KUBERNETES_VERSION)
        // Paged by a key that sorts newest first.
        .map(|v| format!("{:04}", 9999 - minor(v.version)))
        .collect();
    let (page, token) = wire::page(versions, q)?;
    let list: Vec<Value> = page
        .iter()
        .filter_map(|k| k.parse::<u32>().ok())
        .filter_map(|k| {
            KUBERNETES_VERSIONS
                .iter()
                .find(|v| 9999 - minor(v.version) == k)
        })
        .map(|v| {
            json!({
                "clusterVersion": v.version,
                "clusterType": "eks",
                "defaultPlatformVersion": v.platform_version,
                "defaultVersion": v.version == eks_catalog::DEFAULT_KUBERNETES_VERSION,
                "releaseDate": eks_catalog::epoch_seconds(v.released),
                "endOfStandardSupportDate": eks_catalog::epoch_seconds(v.end_of_standard_support),
                "endOfExtendedSupportDate": eks_catalog::epoch_seconds(v.end_of_extended_support),
                "status": v.support.status(),
                "versionStatus": v.support.version_status(),
                "kubernetesPatchVersion": v.patch,
            })
        })
        .collect();
    let mut out = json!({"clusterVersions": list});
    if let Some(t) = token {
        out["nextToken"] = json!(t);
    }
    Ok(out)
}

fn minor(version: &str) -> u32 {
    version
        .split_once('.')
        .and_then(|(_, m)| m.parse().ok())
        .unwrap_or(0)
}

/// A stable id for a cluster's insight, in a UUID's shape.
fn insight_id(cluster: &str, name: &str) -> String {
    let h = hex::encode(Sha256::digest(format!("{cluster}/{name}").as_bytes()));
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The cluster's upgrade insights, computed from its records: whether its add-ons have a version
/// for the next Kubernetes minor, and whether its node groups are at the cluster's version.
/// (Deprecated API use is not tracked locally: that insight is always PASSING.)
fn insights(state: &AppState, cluster: &str) -> Result<Vec<Value>, ApiError> {
    let object = state
        .store
        .get(CLUSTER_KIND, cluster)?
        .ok_or_else(|| clusters::not_found(cluster))?;
    let version = object.value["resource"]["version"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let next = eks_catalog::next_minor(&version).unwrap_or_default();
    let now = wire::now();
    let prefix = format!("{cluster}/");
    let (addons, _) = state.store.list(ADDON_KIND, &prefix)?;
    let mut stale_addons = Vec::new();
    for a in &addons {
        let name = a.value["resource"]["addonName"]
            .as_str()
            .unwrap_or_default();
        let has_next = eks_catalog::addon_versions(name)
            .iter()
            .any(|v| v.compatible.contains(&next.as_str()));
        if !has_next && eks_catalog::kubernetes_version(&next).is_some() {
            stale_addons.push(json!({"arn": a.value["resource"]["addonArn"]}));
        }
    }
    let (groups, _) = state.store.list(NODEGROUP_KIND, &prefix)?;
    let behind: Vec<Value> = groups
        .iter()
        .filter(|g| g.value["resource"]["version"] != version.as_str())
        .map(|g| json!({"arn": g.value["resource"]["nodegroupArn"]}))
        .collect();
    let make = |name: &str, description: &str, recommendation: &str, resources: Vec<Value>| {
        let (status, reason) = if resources.is_empty() {
            ("PASSING", "No issues found.")
        } else {
            ("WARNING", "Resources need attention before the upgrade.")
        };
        json!({
            "id": insight_id(cluster, name),
            "name": name,
            "category": "UPGRADE_READINESS",
            "kubernetesVersion": next,
            "lastRefreshTime": now,
            "lastTransitionTime": object.value["resource"]["createdAt"],
            "description": description,
            "insightStatus": {"status": status, "reason": reason},
            "recommendation": recommendation,
            "additionalInfo": {},
            "resources": resources.iter().map(|r| json!({
                "insightStatus": {"status": "WARNING", "reason": "Needs attention."},
                "arn": r["arn"],
            })).collect::<Vec<_>>(),
            "categorySpecificSummary": {"deprecationDetails": [], "addonCompatibilityDetails": []},
        })
    };
    Ok(vec![
        make(
            "Amazon EKS add-on version compatibility",
            "Checks the version of installed EKS add-ons against the next Kubernetes version.",
            "Update the add-ons to versions compatible with the next Kubernetes version.",
            stale_addons,
        ),
        make(
            "Kubelet version skew",
            "Checks the node groups' Kubernetes version against the control plane's.",
            "Update the node groups to the cluster's version before upgrading the cluster.",
            behind,
        ),
        make(
            "Deprecated APIs removed in the next Kubernetes version",
            "Checks for use of APIs removed in the next Kubernetes version (not tracked locally).",
            "Move to the APIs' replacements before upgrading.",
            Vec::new(),
        ),
    ])
}

pub fn list_insights(
    state: &AppState,
    cluster: &str,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let all = insights(state, cluster)?;
    let filter = body.get("filter").cloned().unwrap_or(Value::Null);
    let list = |m: &str| -> Vec<String> {
        filter[m]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    let (categories, versions, statuses) = (
        list("categories"),
        list("kubernetesVersions"),
        list("statuses"),
    );
    let keep = |i: &Value| {
        let has = |l: &Vec<String>, v: &Value| l.is_empty() || l.iter().any(|x| v == x.as_str());
        has(&categories, &i["category"])
            && has(&versions, &i["kubernetesVersion"])
            && has(&statuses, &i["insightStatus"]["status"])
    };
    let mut q = Vec::new();
    if let Some(m) = body.get("maxResults").and_then(Value::as_u64) {
        q.push(("maxResults".to_string(), m.to_string()));
    }
    if let Some(t) = wire::optional_str(body, "nextToken")? {
        q.push(("nextToken".to_string(), t.to_string()));
    }
    let kept: Vec<&Value> = all.iter().filter(|i| keep(i)).collect();
    let mut ids: Vec<String> = kept
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_string))
        .collect();
    // Pages follow the ids' order.
    ids.sort();
    let (ids, token) = wire::page(ids, &q)?;
    let summaries: Vec<Value> = ids
        .iter()
        .filter_map(|id| kept.iter().find(|i| i["id"] == id.as_str()))
        .map(|i| {
            let mut s = Map::new();
            for m in [
                "id",
                "name",
                "category",
                "kubernetesVersion",
                "lastRefreshTime",
                "lastTransitionTime",
                "description",
                "insightStatus",
            ] {
                s.insert(m.to_string(), i[m].clone());
            }
            Value::Object(s)
        })
        .collect();
    let mut out = json!({"insights": summaries});
    if let Some(t) = token {
        out["nextToken"] = json!(t);
    }
    Ok(out)
}

pub fn describe_insight(state: &AppState, cluster: &str, id: &str) -> Result<Value, ApiError> {
    insights(state, cluster)?
        .into_iter()
        .find(|i| i["id"] == id)
        .map(|i| json!({"insight": i}))
        .ok_or_else(|| {
            ApiError::not_found(format!("No insight found for id: {id}")).cluster(cluster)
        })
}

/// Insights are computed at each read, so a refresh is complete as soon as it is asked for.
pub fn insights_refresh(state: &AppState, cluster: &str, start: bool) -> Result<Value, ApiError> {
    if state.store.get(CLUSTER_KIND, cluster)?.is_none() {
        return Err(clusters::not_found(cluster));
    }
    let now = wire::now();
    if start {
        Ok(json!({"message": "Insights refresh started", "status": "COMPLETED"}))
    } else {
        Ok(
            json!({"message": "Insights are computed when read", "status": "COMPLETED",
                  "startedAt": now, "endedAt": now}),
        )
    }
}

/// AssociateEncryptionConfig: a cluster update that sets `encryptionConfig` (envelope encryption
/// of secrets with a KMS key; recorded, the store is not re-encrypted).
pub fn associate_encryption_config(
    state: &AppState,
    cluster: &str,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let Some(Value::Array(config)) = body.get("encryptionConfig") else {
        return Err(ApiError::invalid_parameter("encryptionConfig is required"));
    };
    if config.len() != 1 || config[0]["provider"]["keyArn"].as_str().is_none() {
        return Err(ApiError::invalid_parameter(
            "encryptionConfig must have exactly one entry with provider.keyArn",
        ));
    }
    let config = config.clone();
    let due = wire::now() + state.config.timing.update;
    wire::in_tx(state.store.as_ref(), |tx| {
        let object = tx
            .get(CLUSTER_KIND, cluster)?
            .ok_or_else(|| clusters::not_found(cluster))?;
        if object.value["resource"]
            .get("encryptionConfig")
            .is_some_and(|e| !e.is_null())
        {
            return Err(ApiError::invalid_parameter(
                "Encryption is already enabled on the cluster",
            )
            .cluster(cluster));
        }
        if let Some(id) = updates::in_progress(tx, cluster, &Target::Cluster)? {
            return Err(updates::conflict("AssociateEncryptionConfig", cluster, &id));
        }
        if object.value["resource"]["status"] != "ACTIVE" {
            return Err(ApiError::invalid_request(format!(
                "Cluster '{cluster}' is not in ACTIVE status"
            ))
            .cluster(cluster));
        }
        let params = vec![json!({"type": "EncryptionConfig", "value": json!(config).to_string()})];
        let update = updates::record_update(
            tx,
            cluster,
            &Target::Cluster,
            "AssociateEncryptionConfig",
            params,
            due,
        )?;
        let mut record = object.value.clone();
        let mut pending = Map::new();
        pending.insert("encryptionConfig".to_string(), json!(config));
        updates::mark_updating(&mut record, pending, due);
        tx.update(CLUSTER_KIND, cluster, &record, Some(object.revision))?;
        Ok(json!({"update": update}))
    })
}

/// The cluster's one certificate authority, which EKS made and which signs.
fn cluster_ca(state: &AppState, cluster: &str) -> Result<Value, ApiError> {
    let object = state
        .store
        .get(CLUSTER_KIND, cluster)?
        .ok_or_else(|| clusters::not_found(cluster))?;
    let created = object.value["resource"]["createdAt"].clone();
    Ok(json!({
        "id": format!("ca-{}", &insight_id(cluster, "ca").replace('-', "")[..17]),
        "createdAt": created,
        "createdBy": "EKS",
        "activatedAt": created,
        "activatedBy": "EKS",
        "signingStatus": "IN_USE",
        "distributionStatus": "COMPLETE",
    }))
}

pub fn list_certificate_authorities(state: &AppState, cluster: &str) -> Result<Value, ApiError> {
    Ok(json!({"certificateAuthorities": [cluster_ca(state, cluster)?]}))
}

pub fn describe_certificate_authority(
    state: &AppState,
    cluster: &str,
    id: &str,
) -> Result<Value, ApiError> {
    let ca = cluster_ca(state, cluster)?;
    if ca["id"] != id {
        return Err(
            ApiError::not_found(format!("No certificate authority found for id: {id}"))
                .cluster(cluster),
        );
    }
    let mut full = ca;
    if let Some(data) = state.store.get(CLUSTER_KIND, cluster)?.and_then(|o| {
        o.value["resource"]["certificateAuthority"]["data"]
            .as_str()
            .map(str::to_string)
    }) {
        full["data"] = json!(data);
    }
    full["rollbackAvailable"] = json!(false);
    Ok(json!({"certificateAuthority": full}))
}

/// Rotating a cluster's CA (create, activate, delete) is not offered locally.
pub fn certificate_authority_change(state: &AppState, cluster: &str) -> Result<Value, ApiError> {
    cluster_ca(state, cluster)?;
    Err(ApiError::invalid_request(
        "Certificate authority rotation is not available in localfargate: each cluster keeps the CA it was created with",
    )
    .cluster(cluster))
}

pub fn register_cluster(body: &Map<String, Value>) -> Result<Value, ApiError> {
    wire::required_str(body, "name")?;
    Err(ApiError::invalid_request(
        "RegisterCluster connects a Kubernetes cluster outside AWS through the EKS Connector; localfargate has no connector: \
         create the cluster with CreateCluster instead",
    ))
}

pub fn deregister_cluster(state: &AppState, name: &str) -> Result<Value, ApiError> {
    if state.store.get(CLUSTER_KIND, name)?.is_none() {
        return Err(clusters::not_found(name));
    }
    Err(ApiError::invalid_request(format!(
        "Cluster {name} is not a registered cluster: delete it with DeleteCluster"
    ))
    .cluster(name))
}

fn capability_not_found(cluster: &str, name: &str) -> ApiError {
    ApiError::not_found(format!("No capability found with name: {name}")).cluster(cluster)
}

pub fn list_capabilities(
    state: &AppState,
    cluster: &str,
    q: &[(String, String)],
) -> Result<Value, ApiError> {
    if state.store.get(CLUSTER_KIND, cluster)?.is_none() {
        return Err(clusters::not_found(cluster));
    }
    wire::page(Vec::new(), q)?;
    Ok(json!({"capabilities": []}))
}

pub fn capability(state: &AppState, cluster: &str, name: Option<&str>) -> Result<Value, ApiError> {
    if state.store.get(CLUSTER_KIND, cluster)?.is_none() {
        return Err(clusters::not_found(cluster));
    }
    match name {
        Some(n) => Err(capability_not_found(cluster, n)),
        None => Err(ApiError::invalid_request(
            "EKS Capabilities (managed Argo CD, AWS Controllers for Kubernetes, kro) are not available in localfargate",
        )
        .cluster(cluster)),
    }
}

pub fn list_subscriptions(q: &[(String, String)]) -> Result<Value, ApiError> {
    wire::page(Vec::new(), q)?;
    Ok(json!({"subscriptions": []}))
}

pub fn subscription(id: Option<&str>) -> Result<Value, ApiError> {
    match id {
        Some(id) => Err(ApiError::not_found(format!(
            "No EKS Anywhere subscription found with id: {id}"
        ))),
        None => Err(ApiError::invalid_request(
            "EKS Anywhere subscriptions are licences for clusters outside AWS; localfargate has none to sell",
        )),
    }
}
