//! TagResource, UntagResource, ListTagsForResource on cluster, Fargate profile, node group,
//! access entry, add-on, identity provider config and Pod Identity association ARNs.

use std::collections::BTreeMap;

use localfargate_core::access_entries::{ACCESS_ENTRY_KIND, entry_key};
use localfargate_core::eks::{
    ADDON_KIND, CLUSTER_KIND, FARGATE_PROFILE_KIND, IDENTITY_PROVIDER_CONFIG_KIND, NODEGROUP_KIND,
    POD_IDENTITY_ASSOCIATION_KIND,
};
use localfargate_store::Tx;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::wire;

/// The store kind and key an ARN names, if it is an EKS resource ARN of this region and account.
fn target(state: &AppState, arn: &str) -> Result<(&'static str, String), ApiError> {
    let bad = || ApiError::bad_request(format!("{arn} is not a valid resource ARN"));
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts[..] else {
        return Err(bad());
    };
    if prefix != "arn" || service != "eks" {
        return Err(bad());
    }
    let not_found = || ApiError::tag_target_not_found("Resource was not found");
    if region != state.config.region || account != state.config.account_id {
        return Err(not_found());
    }
    let segments: Vec<&str> = resource.split('/').collect();
    match segments[..] {
        ["cluster", name] => Ok((CLUSTER_KIND, name.to_string())),
        ["fargateprofile", cluster, name, _id] => {
            Ok((FARGATE_PROFILE_KIND, format!("{cluster}/{name}")))
        }
        ["nodegroup", cluster, name, _id] => Ok((NODEGROUP_KIND, format!("{cluster}/{name}"))),
        ["addon", cluster, name, _id] => Ok((ADDON_KIND, format!("{cluster}/{name}"))),
        ["identityproviderconfig", cluster, kind, name, _id] => Ok((
            IDENTITY_PROVIDER_CONFIG_KIND,
            format!("{cluster}/{kind}/{name}"),
        )),
        ["podidentityassociation", cluster, id] => {
            Ok((POD_IDENTITY_ASSOCIATION_KIND, format!("{cluster}/{id}")))
        }
        // The principal's path is not in the entry's ARN: entries of principals with a path
        // are not found here.
        [
            "access-entry",
            cluster,
            kind @ ("user" | "role"),
            principal_account,
            name,
            _id,
        ] => Ok((
            ACCESS_ENTRY_KIND,
            entry_key(
                cluster,
                &format!("arn:{partition}:iam::{principal_account}:{kind}/{name}"),
            ),
        )),
        _ => Err(bad()),
    }
}

/// The tags object of the resource record, checking the ARN matches the stored one (a profile
/// ARN ends in an ID that a re-created profile does not share).
fn with_resource(
    state: &AppState,
    arn: &str,
    mut f: impl FnMut(&mut BTreeMap<String, String>) -> Result<bool, ApiError>,
) -> Result<BTreeMap<String, String>, ApiError> {
    let (kind, key) = target(state, arn)?;
    let mut tags_out = BTreeMap::new();
    wire::in_tx(state.store.as_ref(), |tx: &mut dyn Tx| {
        let not_found = || ApiError::tag_target_not_found("Resource was not found");
        let object = tx.get(kind, &key)?.ok_or_else(not_found)?;
        let mut record = object.value.clone();
        let resource = &mut record["resource"];
        let stored_arn = resource
            .get("arn")
            .or_else(|| resource.get("fargateProfileArn"))
            .or_else(|| resource.get("nodegroupArn"))
            .or_else(|| resource.get("accessEntryArn"))
            .or_else(|| resource.get("addonArn"))
            .or_else(|| resource.get("identityProviderConfigArn"))
            .or_else(|| resource.get("associationArn"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if stored_arn != arn {
            return Err(not_found());
        }
        let mut tags: BTreeMap<String, String> =
            serde_json::from_value(resource.get("tags").cloned().unwrap_or(json!({})))
                .unwrap_or_default();
        if f(&mut tags)? {
            if tags.len() > 50 {
                return Err(ApiError::bad_request(
                    "The number of tags exceeds the limit of 50",
                ));
            }
            resource["tags"] = json!(tags);
            tx.update(kind, &key, &record, Some(object.revision))?;
        }
        tags_out = tags;
        Ok(Value::Null)
    })?;
    Ok(tags_out)
}

pub fn tag(state: &AppState, arn: &str, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let new = wire::tags(body.get("tags"), true)?;
    if new.is_empty() {
        return Err(ApiError::bad_request("tags must contain at least one tag"));
    }
    with_resource(state, arn, |tags| {
        tags.extend(new.clone());
        Ok(true)
    })?;
    Ok(json!({}))
}

pub fn untag(state: &AppState, arn: &str, q: &[(String, String)]) -> Result<Value, ApiError> {
    let keys: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "tagKeys")
        .map(|(_, v)| v.as_str())
        .collect();
    if keys.is_empty() || keys.len() > 50 {
        return Err(ApiError::bad_request("tagKeys must list 1 to 50 keys"));
    }
    with_resource(state, arn, |tags| {
        for k in &keys {
            tags.remove(*k);
        }
        Ok(true)
    })?;
    Ok(json!({}))
}

pub fn list(state: &AppState, arn: &str) -> Result<Value, ApiError> {
    let tags = with_resource(state, arn, |_| Ok(false))?;
    Ok(json!({"tags": tags}))
}
