//! AssociateIdentityProviderConfig, DisassociateIdentityProviderConfig,
//! DescribeIdentityProviderConfig, ListIdentityProviderConfigs: OIDC identity provider configs,
//! stored and returned. Associating one is a cluster update (the cluster is UPDATING, the
//! config CREATING) that completes after the update timing, when the config goes ACTIVE;
//! disassociating deletes it the same way. The cluster's Kubernetes API does not authenticate
//! tokens of the provider: that is documented as left out.

use localfargate_core::eks::{CLUSTER_KIND, IDENTITY_PROVIDER_CONFIG_KIND};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::updates::{self, Target};
use crate::wire;
use crate::{AppState, clusters};

fn key(cluster: &str, kind: &str, name: &str) -> String {
    format!("{cluster}/{kind}/{name}")
}

fn not_found(cluster: &str, name: &str) -> ApiError {
    ApiError::not_found(format!(
        "No identity provider config found with name: {name}"
    ))
    .cluster(cluster)
}

/// `identityProviderConfig: {type, name}`; only `oidc` exists.
fn reference(body: &Map<String, Value>) -> Result<(String, String), ApiError> {
    let Some(Value::Object(r)) = body.get("identityProviderConfig") else {
        return Err(ApiError::invalid_parameter(
            "identityProviderConfig is required",
        ));
    };
    let kind = wire::required_str(r, "type")?;
    let name = wire::required_str(r, "name")?;
    if kind != "oidc" {
        return Err(ApiError::invalid_parameter(format!(
            "Unsupported identity provider config type {kind}; the only type is oidc"
        )));
    }
    Ok((kind.to_string(), name.to_string()))
}

fn update_cluster(
    tx: &mut dyn localfargate_store::Tx,
    cluster: &str,
    kind: &str,
    params: Vec<Value>,
    due: f64,
) -> Result<Value, ApiError> {
    let object = tx
        .get(CLUSTER_KIND, cluster)?
        .ok_or_else(|| clusters::not_found(cluster))?;
    if let Some(id) = updates::in_progress(tx, cluster, &Target::Cluster)? {
        return Err(updates::conflict(kind, cluster, &id));
    }
    if object.value["resource"]["status"] != "ACTIVE" {
        return Err(ApiError::invalid_request(format!(
            "Cluster '{cluster}' is not in ACTIVE status"
        ))
        .cluster(cluster));
    }
    let update = updates::record_update(tx, cluster, &Target::Cluster, kind, params, due)?;
    let mut record = object.value.clone();
    updates::mark_updating(&mut record, Map::new(), due);
    tx.update(CLUSTER_KIND, cluster, &record, Some(object.revision))?;
    Ok(update)
}

pub fn associate(
    state: &AppState,
    cluster: &str,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let Some(Value::Object(oidc)) = body.get("oidc") else {
        return Err(ApiError::invalid_parameter("oidc is required"));
    };
    let name = wire::required_str(oidc, "identityProviderConfigName")?.to_string();
    let issuer = wire::required_str(oidc, "issuerUrl")?.to_string();
    let client_id = wire::required_str(oidc, "clientId")?.to_string();
    if !issuer.starts_with("https://") {
        return Err(
            ApiError::invalid_parameter("The issuerUrl must be an https URL").cluster(cluster),
        );
    }
    let tags = wire::tags(body.get("tags"), false)?;
    let mut config = json!({
        "identityProviderConfigName": name,
        "identityProviderConfigArn": state.config.arn(&format!(
            "identityproviderconfig/{cluster}/oidc/{name}/{}", uuid::Uuid::new_v4())),
        "clusterName": cluster,
        "issuerUrl": issuer,
        "clientId": client_id,
        "tags": tags,
        "status": "CREATING",
    });
    for member in [
        "usernameClaim",
        "usernamePrefix",
        "groupsClaim",
        "groupsPrefix",
    ] {
        if let Some(v) = wire::optional_str(oidc, member)? {
            config[member] = json!(v);
        }
    }
    if let Some(claims) = oidc.get("requiredClaims").filter(|v| !v.is_null()) {
        let claims: std::collections::BTreeMap<String, String> =
            serde_json::from_value(claims.clone()).map_err(|_| {
                ApiError::serialization("requiredClaims must be a map of strings to strings")
            })?;
        config["requiredClaims"] = json!(claims);
    }
    let due = wire::now() + state.config.timing.update;
    wire::in_tx(state.store.as_ref(), |tx| {
        clusters::existing(tx, cluster)?;
        let existing = tx.list(IDENTITY_PROVIDER_CONFIG_KIND, &format!("{cluster}/"))?;
        if existing
            .iter()
            .any(|o| o.key == key(cluster, "oidc", &name))
        {
            return Err(ApiError::in_use(format!(
                "Identity provider config {name} already exists for cluster {cluster}"
            ))
            .cluster(cluster));
        }
        if !existing.is_empty() {
            return Err(ApiError::limit_exceeded(format!(
                "Cluster {cluster} already has an OIDC identity provider config: only one is allowed per cluster"
            ))
            .cluster(cluster));
        }
        let params = vec![json!({"type": "IdentityProviderConfig",
            "value": json!([{"type": "oidc", "name": name}]).to_string()})];
        let update = update_cluster(tx, cluster, "AssociateIdentityProviderConfig", params, due)?;
        tx.create(
            IDENTITY_PROVIDER_CONFIG_KIND,
            &key(cluster, "oidc", &name),
            &json!({"resource": config, "transitionAt": due}),
        )?;
        Ok(json!({"update": update, "tags": tags}))
    })
}

pub fn disassociate(
    state: &AppState,
    cluster: &str,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let (kind, name) = reference(body)?;
    let due = wire::now() + state.config.timing.update;
    wire::in_tx(state.store.as_ref(), |tx| {
        clusters::existing(tx, cluster)?;
        let k = key(cluster, &kind, &name);
        let object = tx
            .get(IDENTITY_PROVIDER_CONFIG_KIND, &k)?
            .ok_or_else(|| not_found(cluster, &name))?;
        if object.value["resource"]["status"] != "ACTIVE" {
            return Err(ApiError::invalid_request(format!(
                "Identity provider config {name} is not ACTIVE"
            ))
            .cluster(cluster));
        }
        let params = vec![json!({"type": "IdentityProviderConfig",
            "value": json!([{"type": kind, "name": name}]).to_string()})];
        let update = update_cluster(
            tx,
            cluster,
            "DisassociateIdentityProviderConfig",
            params,
            due,
        )?;
        let mut record = object.value.clone();
        record["resource"]["status"] = json!("DELETING");
        record["transitionAt"] = json!(due);
        tx.update(
            IDENTITY_PROVIDER_CONFIG_KIND,
            &k,
            &record,
            Some(object.revision),
        )?;
        Ok(json!({"update": update}))
    })
}

pub fn describe(
    state: &AppState,
    cluster: &str,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let (kind, name) = reference(body)?;
    if state.store.get(CLUSTER_KIND, cluster)?.is_none() {
        return Err(clusters::not_found(cluster));
    }
    let object = state
        .store
        .get(IDENTITY_PROVIDER_CONFIG_KIND, &key(cluster, &kind, &name))?
        .ok_or_else(|| not_found(cluster, &name))?;
    Ok(json!({"identityProviderConfig": {"oidc": object.value["resource"]}}))
}

pub fn list(state: &AppState, cluster: &str, q: &[(String, String)]) -> Result<Value, ApiError> {
    if state.store.get(CLUSTER_KIND, cluster)?.is_none() {
        return Err(clusters::not_found(cluster));
    }
    let prefix = format!("{cluster}/");
    let (objects, _) = state.store.list(IDENTITY_PROVIDER_CONFIG_KIND, &prefix)?;
    let keys = objects
        .iter()
        .map(|o| o.key[prefix.len()..].to_string())
        .collect();
    let (keys, token) = wire::page(keys, q)?;
    let configs: Vec<Value> = keys
        .iter()
        .filter_map(|k| k.split_once('/'))
        .map(|(kind, name)| json!({"type": kind, "name": name}))
        .collect();
    let mut out = json!({"identityProviderConfigs": configs});
    if let Some(t) = token {
        out["nextToken"] = json!(t);
    }
    Ok(out)
}
