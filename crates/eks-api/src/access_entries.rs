//! Access entries: CreateAccessEntry, DescribeAccessEntry, ListAccessEntries,
//! UpdateAccessEntry, DeleteAccessEntry, AssociateAccessPolicy, DisassociateAccessPolicy,
//! ListAssociatedAccessPolicies and ListAccessPolicies. Entries are stored under
//! `ACCESS_ENTRY_KIND` (`{cluster}/{principalArn}`), where each cluster's Kubernetes API reads
//! them to authenticate `aws eks get-token` callers. The rules are `core::access_entries`'.

use localfargate_core::access_entries::{
    ACCESS_ENTRY_KIND, AccessEntry, AssociatedPolicy, AuthenticationMode, NewEntry,
    StoredAccessEntry, check_identity, check_policy_arn, dedup, entry_key, new_entry, parse_scope,
    scope_value,
};
use localfargate_core::eks::Cluster;
use localfargate_core::rbac::eks_access_policies::{AccessScope, access_policies, policy_arn};
use localfargate_store::Tx;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::wire::{self, Idempotency, to_value};
use crate::{AppState, clusters};

/// The policy EKS associates with the creator's entry.
const CLUSTER_ADMIN_POLICY: &str = "AmazonEKSClusterAdminPolicy";

fn entry_not_found(cluster: &str) -> ApiError {
    ApiError::not_found(
        "The specified principalArn could not be found. You can view your available access entries with 'list-access-entries'.",
    )
    .cluster(cluster)
}

/// The cluster, which must exist and authenticate through access entries.
fn cluster_with_entries(tx: &mut dyn Tx, name: &str) -> Result<Cluster, ApiError> {
    let (record, _) = clusters::existing(tx, name)?;
    let cluster = record.resource;
    if !AuthenticationMode::of_access_config(&cluster.access_config).uses_access_entries() {
        return Err(ApiError::invalid_request(
            "The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to perform this operation.",
        )
        .cluster(name));
    }
    Ok(cluster)
}

fn load_entry(
    tx: &mut dyn Tx,
    cluster: &str,
    principal: &str,
) -> Result<(StoredAccessEntry, u64), ApiError> {
    wire::load(tx, ACCESS_ENTRY_KIND, &entry_key(cluster, principal))?
        .ok_or_else(|| entry_not_found(cluster))
}

fn arn_prefix(state: &AppState) -> String {
    let c = &state.config;
    format!("arn:{}:eks:{}:{}", c.partition(), c.region, c.account_id)
}

/// The entry EKS makes for a cluster's creator when `bootstrapClusterCreatorAdminPermissions`
/// holds: the creator's IAM principal (a role for an assumed-role session), its default
/// username, and AmazonEKSClusterAdminPolicy for the whole cluster. To be stored with the
/// cluster; None when the creator is not an IAM user or role.
pub(crate) fn creator_entry(
    state: &AppState,
    cluster: &str,
    creator_arn: &str,
    now: f64,
) -> Option<StoredAccessEntry> {
    let principal = localfargate_core::access_entries::Principal::parse(creator_arn)?;
    let iam_arn = principal.iam_arn();
    let request = NewEntry {
        cluster,
        principal_arn: &iam_arn,
        ..NewEntry::default()
    };
    let id = uuid::Uuid::new_v4().to_string();
    let entry = new_entry(&request, &arn_prefix(state), &id, now).ok()?;
    Some(StoredAccessEntry {
        resource: entry,
        associated_access_policies: vec![AssociatedPolicy {
            policy_arn: policy_arn(CLUSTER_ADMIN_POLICY),
            access_scope: scope_value(&AccessScope::Cluster),
            associated_at: now,
            modified_at: now,
        }],
    })
}

pub fn create(
    state: &AppState,
    cluster: &str,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let principal_arn = wire::required_str(body, "principalArn")?;
    let kubernetes_groups = wire::string_list(body, "kubernetesGroups")?;
    let username = wire::optional_str(body, "username")?;
    let entry_type = wire::optional_str(body, "type")?;
    let tags = wire::tags(body.get("tags"), false)?;
    let key = entry_key(cluster, principal_arn);
    let idempotency = Idempotency::new("CreateAccessEntry", ACCESS_ENTRY_KIND, &key, body)?;
    let request = NewEntry {
        cluster,
        principal_arn,
        kubernetes_groups,
        username,
        entry_type,
        tags,
    };
    let id = uuid::Uuid::new_v4().to_string();
    let prefix = arn_prefix(state);
    wire::in_tx(state.store.as_ref(), |tx| {
        if let Some(replayed) = idempotency.replay(tx)? {
            return Ok(replayed);
        }
        cluster_with_entries(tx, cluster)?;
        let entry = new_entry(&request, &prefix, &id, wire::now())
            .map_err(|e| ApiError::invalid_parameter(e.to_string()).cluster(cluster))?;
        if tx.get(ACCESS_ENTRY_KIND, &key)?.is_some() {
            return Err(ApiError::in_use(
                "The specified access entry resource is already in use on this cluster.",
            )
            .cluster(cluster));
        }
        let stored = StoredAccessEntry {
            resource: entry,
            associated_access_policies: Vec::new(),
        };
        tx.create(ACCESS_ENTRY_KIND, &key, &to_value(&stored))?;
        let response = json!({"accessEntry": stored.resource});
        idempotency.remember(tx, &response)?;
        Ok(response)
    })
}

pub fn describe(state: &AppState, cluster: &str, principal: &str) -> Result<Value, ApiError> {
    wire::in_tx(state.store.as_ref(), |tx| {
        cluster_with_entries(tx, cluster)?;
        let (stored, _) = load_entry(tx, cluster, principal)?;
        Ok(json!({"accessEntry": stored.resource}))
    })
}

/// The cluster's stored entries.
fn entries(tx: &mut dyn Tx, cluster: &str) -> Result<Vec<StoredAccessEntry>, ApiError> {
    tx.list(ACCESS_ENTRY_KIND, &format!("{cluster}/"))?
        .iter()
        .map(|o| {
            serde_json::from_value(o.value.clone())
                .map_err(|e| ApiError::server(format!("stored access entry {}: {e}", o.key)))
        })
        .collect()
}

pub fn list(state: &AppState, cluster: &str, q: &[(String, String)]) -> Result<Value, ApiError> {
    let associated = wire::query_one(q, "associatedPolicyArn");
    let mut names = localfargate_store::transaction(state.store.as_ref(), |tx| {
        cluster_with_entries(tx, cluster)?;
        if let Some(arn) = associated {
            check_policy_arn(arn)
                .map_err(|e| ApiError::invalid_parameter(e.to_string()).cluster(cluster))?;
        }
        Ok::<_, ApiError>(
            entries(tx, cluster)?
                .into_iter()
                .filter(|e| {
                    associated.is_none_or(|arn| {
                        e.associated_access_policies
                            .iter()
                            .any(|p| p.policy_arn == arn)
                    })
                })
                .map(|e| e.resource.principal_arn)
                .collect::<Vec<String>>(),
        )
    })?;
    names.sort();
    let (page, token) = wire::page(names, q)?;
    let mut out = json!({"accessEntries": page});
    if let Some(t) = token {
        out["nextToken"] = json!(t);
    }
    Ok(out)
}

/// Applies `change` to an existing entry and stores it.
fn modify(
    state: &AppState,
    cluster: &str,
    principal: &str,
    mut change: impl FnMut(&mut StoredAccessEntry) -> Result<Value, ApiError>,
) -> Result<Value, ApiError> {
    wire::in_tx(state.store.as_ref(), |tx| {
        cluster_with_entries(tx, cluster)?;
        let (mut stored, revision) = load_entry(tx, cluster, principal)?;
        let response = change(&mut stored)?;
        tx.update(
            ACCESS_ENTRY_KIND,
            &entry_key(cluster, principal),
            &to_value(&stored),
            Some(revision),
        )?;
        Ok(response)
    })
}

pub fn update(
    state: &AppState,
    cluster: &str,
    principal: &str,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let groups = match body.get("kubernetesGroups") {
        None | Some(Value::Null) => None,
        Some(_) => Some(wire::string_list(body, "kubernetesGroups")?),
    };
    let username = wire::optional_str(body, "username")?;
    wire::optional_str(body, "clientRequestToken")?;
    modify(state, cluster, principal, |stored| {
        let entry: &mut AccessEntry = &mut stored.resource;
        if entry.entry_type != "STANDARD" && (username.is_some() || groups.is_some()) {
            return Err(ApiError::invalid_parameter(format!(
                "username and kubernetesGroups cannot be specified for access entry type {}",
                entry.entry_type
            ))
            .cluster(cluster));
        }
        check_identity(username, groups.as_deref().unwrap_or_default())
            .map_err(|e| ApiError::invalid_parameter(e.to_string()).cluster(cluster))?;
        if let Some(groups) = &groups {
            entry.kubernetes_groups = dedup(groups);
        }
        if let Some(username) = username {
            entry.username = username.to_string();
        }
        entry.modified_at = wire::now();
        Ok(json!({"accessEntry": entry}))
    })
}

pub fn delete(state: &AppState, cluster: &str, principal: &str) -> Result<Value, ApiError> {
    wire::in_tx(state.store.as_ref(), |tx| {
        cluster_with_entries(tx, cluster)?;
        let (_, revision) = load_entry(tx, cluster, principal)?;
        tx.delete(
            ACCESS_ENTRY_KIND,
            &entry_key(cluster, principal),
            Some(revision),
        )?;
        Ok(json!({}))
    })
}

pub fn associate(
    state: &AppState,
    cluster: &str,
    principal: &str,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let policy = wire::required_str(body, "policyArn")?;
    let scope = match body.get("accessScope") {
        Some(v @ Value::Object(_)) => v.clone(),
        None | Some(Value::Null) => {
            return Err(ApiError::invalid_parameter("accessScope is required"));
        }
        Some(_) => return Err(ApiError::serialization("accessScope must be an object")),
    };
    let invalid =
        |e: &dyn std::fmt::Display| ApiError::invalid_parameter(e.to_string()).cluster(cluster);
    check_policy_arn(policy).map_err(|e| invalid(&e))?;
    let scope = parse_scope(&scope).map_err(|e| invalid(&e))?;
    modify(state, cluster, principal, |stored| {
        if stored.resource.entry_type != "STANDARD" {
            return Err(ApiError::invalid_parameter(
                "This operation can only be performed on Access Entries with a type of \"STANDARD\".",
            )
            .cluster(cluster));
        }
        let now = wire::now();
        let policies = &mut stored.associated_access_policies;
        let association = match policies.iter_mut().find(|p| p.policy_arn == policy) {
            Some(existing) => {
                existing.access_scope = scope_value(&scope);
                existing.modified_at = now;
                existing.clone()
            }
            None => {
                let new = AssociatedPolicy {
                    policy_arn: policy.to_string(),
                    access_scope: scope_value(&scope),
                    associated_at: now,
                    modified_at: now,
                };
                policies.push(new.clone());
                new
            }
        };
        Ok(json!({
            "clusterName": cluster,
            "principalArn": stored.resource.principal_arn,
            "associatedAccessPolicy": association,
        }))
    })
}

pub fn disassociate(
    state: &AppState,
    cluster: &str,
    principal: &str,
    policy: &str,
) -> Result<Value, ApiError> {
    modify(state, cluster, principal, |stored| {
        let before = stored.associated_access_policies.len();
        stored
            .associated_access_policies
            .retain(|p| p.policy_arn != policy);
        if stored.associated_access_policies.len() == before {
            return Err(ApiError::not_found(format!(
                "The specified policyArn {policy} is not associated with the principalArn."
            ))
            .cluster(cluster));
        }
        Ok(json!({}))
    })
}

pub fn list_associated(
    state: &AppState,
    cluster: &str,
    principal: &str,
    q: &[(String, String)],
) -> Result<Value, ApiError> {
    let stored = localfargate_store::transaction(state.store.as_ref(), |tx| {
        cluster_with_entries(tx, cluster)?;
        Ok::<_, ApiError>(load_entry(tx, cluster, principal)?.0)
    })?;
    let mut names: Vec<String> = stored
        .associated_access_policies
        .iter()
        .map(|p| p.policy_arn.clone())
        .collect();
    names.sort();
    let (page, token) = wire::page(names, q)?;
    let policies: Vec<&AssociatedPolicy> = page
        .iter()
        .filter_map(|arn| {
            stored
                .associated_access_policies
                .iter()
                .find(|p| &p.policy_arn == arn)
        })
        .collect();
    let mut out = json!({
        "clusterName": cluster,
        "principalArn": stored.resource.principal_arn,
        "associatedAccessPolicies": policies,
    });
    if let Some(t) = token {
        out["nextToken"] = json!(t);
    }
    Ok(out)
}

pub fn list_policies(q: &[(String, String)]) -> Result<Value, ApiError> {
    let all = access_policies();
    let names = all.iter().map(|p| p.arn.clone()).collect();
    let (page, token) = wire::page(names, q)?;
    let policies: Vec<_> = all.iter().filter(|p| page.contains(&p.arn)).collect();
    let mut out = json!({"accessPolicies": policies});
    if let Some(t) = token {
        out["nextToken"] = json!(t);
    }
    Ok(out)
}

/// DeleteCluster takes the cluster's access entries with it.
pub(crate) fn delete_all(tx: &mut dyn Tx, cluster: &str) -> Result<(), ApiError> {
    for o in tx.list(ACCESS_ENTRY_KIND, &format!("{cluster}/"))? {
        tx.delete(ACCESS_ENTRY_KIND, &o.key, None)?;
    }
    Ok(())
}
