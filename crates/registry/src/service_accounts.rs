//! Each cluster's service-account token signer, from its EKS record: what the API verifies
//! tokens with and the node agent signs pods' projected tokens with.

use std::sync::Arc;

use localfargate_core::service_account_token::TokenSigner;
use serde_json::Value;

/// The cluster's service-account token signer: its own key, or (a cluster recorded before
/// clusters had one) its CA's; the issuer is the cluster's OIDC issuer URL.
pub fn token_signer(cluster: &str, record: &Value) -> Option<Arc<TokenSigner>> {
    let key = record["private"]["serviceAccountKeyPem"]
        .as_str()
        .or_else(|| record["private"]["caKeyPem"].as_str())?;
    let issuer = record["resource"]["identity"]["oidc"]["issuer"].as_str()?;
    match TokenSigner::new(key, issuer) {
        Ok(s) => Some(Arc::new(s)),
        Err(e) => {
            tracing::error!(cluster, error = %e, "no service-account tokens for this cluster");
            None
        }
    }
}

/// The shortest token a TokenRequest may ask for, and the longest (kube-apiserver's limits).
const MIN_EXPIRATION_SECONDS: i64 = 600;
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
/// A TokenRequest without `expirationSeconds` gets an hour.
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

/// `POST serviceaccounts/NAME/token` (`kubectl create token`): a token signed with the
/// cluster's key for the service account (which must exist), its audiences (the API's by
/// default) and expiry, bound to a pod when `boundObjectRef` names one (whose uid must match).
/// Answers the TokenRequest with its `status` as kube-apiserver does.
pub fn token_request(
    objects: &crate::Objects,
    signer: Option<&TokenSigner>,
    namespace: &str,
    name: &str,
    body: Value,
    api_audience: &str,
) -> Result<Value, crate::KubeError> {
    use crate::KubeError;
    use crate::objects::resource;
    use serde_json::json;

    let token_requests = crate::resources::ResourceType {
        kind: "TokenRequest",
        group: "authentication.k8s.io",
        ..*resource("", "serviceaccounts")
    };
    let sa = objects.get(resource("", "serviceaccounts"), namespace, name)?;
    let Some(signer) = signer else {
        return Err(KubeError::Internal(
            "this cluster has no service-account signing key".into(),
        ));
    };
    let mut out = body;
    if !out.is_object() {
        return Err(KubeError::BadRequest(
            "the request body must be a JSON object".into(),
        ));
    }
    let spec = out["spec"].clone();
    let expiration = spec["expirationSeconds"]
        .as_i64()
        .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    if expiration < MIN_EXPIRATION_SECONDS {
        return Err(KubeError::invalid(
            &token_requests,
            name,
            "spec.expirationSeconds",
            &format!(
                "Invalid value: {expiration}: may not specify a duration less than 10 minutes"
            ),
        ));
    }
    if expiration > MAX_EXPIRATION_SECONDS {
        return Err(KubeError::invalid(
            &token_requests,
            name,
            "spec.expirationSeconds",
            &format!(
                "Invalid value: {expiration}: may not specify a duration larger than 2^32 seconds"
            ),
        ));
    }
    let audiences: Vec<String> = spec["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| vec![api_audience.to_string()]);
    let bound = &spec["boundObjectRef"];
    let (mut pod_name, mut pod_uid, mut node_name) = (String::new(), String::new(), String::new());
    if bound.is_object() {
        let kind = bound["kind"].as_str().unwrap_or_default();
        let bound_name = bound["name"].as_str().unwrap_or_default();
        if kind != "Pod" {
            return Err(KubeError::BadRequest(format!(
                "cannot bind token for serviceaccount \"{name}\" to object of kind \"{kind}\": only pods are supported here"
            )));
        }
        let pod = objects.get(resource("", "pods"), namespace, bound_name)?;
        let uid = crate::objects::uid_of(&pod);
        if let Some(asked) = bound["uid"].as_str().filter(|u| !u.is_empty())
            && asked != uid
        {
            return Err(KubeError::Conflict {
                message: format!(
                    "the UID in the bound object reference ({asked}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
                kind: "pods".into(),
                name: bound_name.to_string(),
            });
        }
        pod_name = bound_name.to_string();
        pod_uid = uid.to_string();
        node_name = pod["spec"]["nodeName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
    }
    let now = jiff::Timestamp::now();
    let request = localfargate_core::service_account_token::TokenRequest {
        namespace,
        service_account: name,
        service_account_uid: Some(crate::objects::uid_of(&sa)),
        audience: &audiences[0],
        expiration_seconds: expiration as u64,
        pod_name: &pod_name,
        pod_uid: &pod_uid,
        node_name: &node_name,
    };
    let token = signer
        .issue(&request, now.as_second() as u64)
        .map_err(|e| KubeError::Internal(e.to_string()))?;
    let expires = now
        .checked_add(jiff::SignedDuration::from_secs(expiration))
        .unwrap_or(now);
    out["apiVersion"] = json!("authentication.k8s.io/v1");
    out["kind"] = json!("TokenRequest");
    if !out["metadata"].is_object() {
        out["metadata"] = json!({});
    }
    out["metadata"]["name"] = json!(name);
    out["metadata"]["namespace"] = json!(namespace);
    out["metadata"]["creationTimestamp"] = Value::Null;
    out["spec"]["audiences"] = json!(audiences);
    out["spec"]["expirationSeconds"] = json!(expiration);
    if !bound.is_object() {
        out["spec"]["boundObjectRef"] = Value::Null;
    }
    out["status"] =
        json!({"token": token, "expirationTimestamp": crate::objects::rfc3339(expires)});
    Ok(out)
}
