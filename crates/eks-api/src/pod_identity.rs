//! CreatePodIdentityAssociation, DescribePodIdentityAssociation, ListPodIdentityAssociations,
//! UpdatePodIdentityAssociation, DeletePodIdentityAssociation: stored and returned. As on EKS,
//! pods on Fargate do not get EKS Pod Identity credentials (the agent is a DaemonSet on EC2
//! nodes); IAM roles for service accounts are the Fargate way.

use localfargate_core::eks::{CLUSTER_KIND, POD_IDENTITY_ASSOCIATION_KIND, valid_role_arn};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::wire::{self, Idempotency};
use crate::{AppState, clusters};

fn key(cluster: &str, id: &str) -> String {
    format!("{cluster}/{id}")
}

fn not_found(cluster: &str, id: &str) -> ApiError {
    ApiError::not_found(format!("No association found for id: {id}")).cluster(cluster)
}

fn role(body: &Map<String, Value>, member: &str) -> Result<Option<String>, ApiError> {
    match wire::optional_str(body, member)? {
        None => Ok(None),
        Some(arn) if valid_role_arn(arn, true) => Ok(Some(arn.to_string())),
        Some(arn) => Err(ApiError::invalid_parameter(format!(
            "Invalid Role Arn: '{arn}'"
        ))),
    }
}

fn summary(a: &Value) -> Value {
    let mut s = Map::new();
    for m in [
        "clusterName",
        "namespace",
        "serviceAccount",
        "associationArn",
        "associationId",
        "ownerArn",
    ] {
        if let Some(v) = a.get(m) {
            s.insert(m.to_string(), v.clone());
        }
    }
    Value::Object(s)
}

pub fn create(
    state: &AppState,
    cluster: &str,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let namespace = wire::required_str(body, "namespace")?.to_string();
    let service_account = wire::required_str(body, "serviceAccount")?.to_string();
    let role_arn =
        role(body, "roleArn")?.ok_or_else(|| ApiError::invalid_parameter("roleArn is required"))?;
    let target = role(body, "targetRoleArn")?;
    let tags = wire::tags(body.get("tags"), false)?;
    let disable_session_tags = body
        .get("disableSessionTags")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let scope = format!("{cluster}/{namespace}/{service_account}");
    let idempotency =
        Idempotency::new("CreatePodIdentityAssociation", CLUSTER_KIND, cluster, body)?;
    wire::in_tx(state.store.as_ref(), |tx| {
        if let Some(replayed) = idempotency.replay(tx)? {
            return Ok(replayed);
        }
        clusters::existing(tx, cluster)?;
        let taken = tx
            .list(POD_IDENTITY_ASSOCIATION_KIND, &format!("{cluster}/"))?
            .iter()
            .any(|o| {
                o.value["resource"]["namespace"] == namespace.as_str()
                    && o.value["resource"]["serviceAccount"] == service_account.as_str()
            });
        if taken {
            return Err(
                ApiError::in_use(format!("Association already exists: {scope}")).cluster(cluster),
            );
        }
        let id = format!("a-{}", &uuid::Uuid::new_v4().simple().to_string()[..17]);
        let now = wire::now();
        let mut association = json!({
            "clusterName": cluster,
            "namespace": namespace,
            "serviceAccount": service_account,
            "roleArn": role_arn,
            "associationArn": state.config.arn(&format!("podidentityassociation/{cluster}/{id}")),
            "associationId": id,
            "tags": tags,
            "createdAt": now,
            "modifiedAt": now,
            "disableSessionTags": disable_session_tags,
        });
        if let Some(t) = &target {
            association["targetRoleArn"] = json!(t);
            association["externalId"] = json!(uuid::Uuid::new_v4().to_string());
        }
        if let Some(p) = wire::optional_str(body, "policy")? {
            association["policy"] = json!(p);
        }
        tx.create(
            POD_IDENTITY_ASSOCIATION_KIND,
            &key(cluster, &id),
            &json!({"resource": association}),
        )?;
        let response = json!({"association": association});
        idempotency.remember(tx, &response)?;
        Ok(response)
    })
}

pub fn describe(state: &AppState, cluster: &str, id: &str) -> Result<Value, ApiError> {
    if state.store.get(CLUSTER_KIND, cluster)?.is_none() {
        return Err(clusters::not_found(cluster));
    }
    let object = state
        .store
        .get(POD_IDENTITY_ASSOCIATION_KIND, &key(cluster, id))?
        .ok_or_else(|| not_found(cluster, id))?;
    Ok(json!({"association": object.value["resource"]}))
}

pub fn list(state: &AppState, cluster: &str, q: &[(String, String)]) -> Result<Value, ApiError> {
    if state.store.get(CLUSTER_KIND, cluster)?.is_none() {
        return Err(clusters::not_found(cluster));
    }
    let namespace = wire::query_one(q, "namespace");
    let service_account = wire::query_one(q, "serviceAccount");
    let prefix = format!("{cluster}/");
    let (objects, _) = state.store.list(POD_IDENTITY_ASSOCIATION_KIND, &prefix)?;
    let matching: Vec<&Value> = objects
        .iter()
        .map(|o| &o.value["resource"])
        .filter(|a| namespace.is_none_or(|n| a["namespace"] == n))
        .filter(|a| service_account.is_none_or(|s| a["serviceAccount"] == s))
        .collect();
    let ids = matching
        .iter()
        .filter_map(|a| a["associationId"].as_str().map(str::to_string))
        .collect();
    let (ids, token) = wire::page(ids, q)?;
    let associations: Vec<Value> = ids
        .iter()
        .filter_map(|id| matching.iter().find(|a| a["associationId"] == id.as_str()))
        .map(|a| summary(a))
        .collect();
    let mut out = json!({"associations": associations});
    if let Some(t) = token {
        out["nextToken"] = json!(t);
    }
    Ok(out)
}

pub fn update(
    state: &AppState,
    cluster: &str,
    id: &str,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let role_arn = role(body, "roleArn")?;
    let target = role(body, "targetRoleArn")?;
    wire::in_tx(state.store.as_ref(), |tx| {
        clusters::existing(tx, cluster)?;
        let object = tx
            .get(POD_IDENTITY_ASSOCIATION_KIND, &key(cluster, id))?
            .ok_or_else(|| not_found(cluster, id))?;
        let mut record = object.value.clone();
        let a = &mut record["resource"];
        if let Some(r) = &role_arn {
            a["roleArn"] = json!(r);
        }
        if let Some(t) = &target {
            a["targetRoleArn"] = json!(t);
            if a.get("externalId").is_none() {
                a["externalId"] = json!(uuid::Uuid::new_v4().to_string());
            }
        }
        if let Some(b) = body.get("disableSessionTags").and_then(Value::as_bool) {
            a["disableSessionTags"] = json!(b);
        }
        if let Some(p) = wire::optional_str(body, "policy")? {
            a["policy"] = json!(p);
        }
        a["modifiedAt"] = json!(wire::now());
        tx.update(
            POD_IDENTITY_ASSOCIATION_KIND,
            &key(cluster, id),
            &record,
            Some(object.revision),
        )?;
        Ok(json!({"association": record["resource"]}))
    })
}

pub fn delete(state: &AppState, cluster: &str, id: &str) -> Result<Value, ApiError> {
    wire::in_tx(state.store.as_ref(), |tx| {
        clusters::existing(tx, cluster)?;
        let object = tx
            .get(POD_IDENTITY_ASSOCIATION_KIND, &key(cluster, id))?
            .ok_or_else(|| not_found(cluster, id))?;
        tx.delete(
            POD_IDENTITY_ASSOCIATION_KIND,
            &key(cluster, id),
            Some(object.revision),
        )?;
        Ok(json!({"association": object.value["resource"]}))
    })
}
