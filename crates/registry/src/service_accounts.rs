//! Each cluster's service-account token signer, from its EKS record: what the API verifies
//! tokens with and the node agent signs pods' projected tokens with.

use std::sync::Arc;

use k8s_openapi::api::authentication::v1::{TokenRequestSpec, TokenRequestStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use localfargate_core::service_account_token::TokenSigner;
use serde::Deserialize;
use serde_json::Value;

use crate::meta::{DynamicObject, Field};

/// The cluster's service-account token signer: its own key, or (a cluster recorded before
/// clusters had one) its CA's; the issuer is the cluster's OIDC issuer URL. (The record is the
/// EKS store's JSON, not a Kubernetes object.)
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
/// Answers the TokenRequest with its `status` as kube-apiserver does: the request's metadata
/// (typed, the rest kept as sent) with its name and namespace, the spec as read, `null` for
/// the creation time and an absent `boundObjectRef`, as kube-apiserver writes them.
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
    let mut out = DynamicObject::from_value(body)?;
    // Only the spec is read: clients send the status empty (`expirationTimestamp: null`,
    // which the typed status cannot hold) and the answer replaces it.
    let mut spec = Option::<TokenRequestSpec>::deserialize(out.spec())
        .map_err(|e| KubeError::BadRequest(e.to_string()))?
        .unwrap_or_default();
    let expiration = spec
        .expiration_seconds
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
    if spec.audiences.is_empty() {
        spec.audiences = vec![api_audience.to_string()];
    }
    spec.expiration_seconds = Some(expiration);
    let (mut pod_name, mut pod_uid, mut node_name) = (String::new(), String::new(), String::new());
    if let Some(bound) = &spec.bound_object_ref {
        let kind = bound.kind.as_deref().unwrap_or_default();
        let bound_name = bound.name.as_deref().unwrap_or_default();
        if kind != "Pod" {
            return Err(KubeError::BadRequest(format!(
                "cannot bind token for serviceaccount \"{name}\" to object of kind \"{kind}\": only pods are supported here"
            )));
        }
        let pod = objects.get(resource("", "pods"), namespace, bound_name)?;
        let uid = crate::objects::uid_of(&pod);
        if let Some(asked) = bound.uid.as_deref().filter(|u| !u.is_empty())
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
        node_name = crate::typed::decode::<Pod>(&pod)?
            .spec
            .and_then(|s| s.node_name)
            .unwrap_or_default();
    }
    let now = jiff::Timestamp::now();
    let request = localfargate_core::service_account_token::TokenRequest {
        namespace,
        service_account: name,
        service_account_uid: Some(crate::objects::uid_of(&sa)),
        audience: &spec.audiences[0],
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
    out.set_api_version("authentication.k8s.io/v1".into());
    out.set_kind("TokenRequest".into());
    out.metadata.name = Some(name.to_string());
    out.metadata.namespace = Some(namespace.to_string());
    out.metadata.set_raw(Field::CreationTimestamp, Value::Null);
    let bound = spec.bound_object_ref.is_some();
    let mut spec = crate::typed::to_json(&spec)?;
    if !bound && let Some(spec) = spec.as_object_mut() {
        spec.insert("boundObjectRef".to_string(), Value::Null);
    }
    *out.field_mut("spec") = spec;
    let status = TokenRequestStatus {
        token,
        expiration_timestamp: Time(expires),
    };
    *out.field_mut("status") = crate::typed::to_json(&status)?;
    Ok(out.into_value())
}

#[cfg(test)]
mod tests {

    use serde_json::json;

    use super::*;

    use crate::objects::resource;

    #[test]
    fn a_token_request_is_answered_as_kube_apiserver_answers_it() {
        let o = crate::objects::in_memory_with_namespace("ns");
        o.create(
            resource("", "serviceaccounts"),
            "ns",
            json!({"metadata": {"name": "robot"}}),
        )
        .unwrap();
        let ca = localfargate_core::pki::ClusterCa::generate("c").unwrap();
        let signer = TokenSigner::new(&ca.key_pem, "https://issuer").unwrap();
        let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                          "metadata": {"labels": {"a": "b"}, "creationTimestamp": null},
                          "spec": {"audiences": null},
                          "status": {"token": "", "expirationTimestamp": null}});
        let mut out = token_request(&o, Some(&signer), "ns", "robot", body, "https://api").unwrap();
        let token = out["status"]["token"].take();
        assert_eq!(token.as_str().map(|t| t.split('.').count()), Some(3));
        let expires = out["status"]["expirationTimestamp"].take();
        assert!(
            expires.as_str().is_some_and(|t| t.ends_with('Z')),
            "{expires}"
        );
        assert_eq!(
            out,
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                   "metadata": {"name": "robot", "namespace": "ns", "creationTimestamp": null,
                                "labels": {"a": "b"}},
                   "spec": {"audiences": ["https://api"], "expirationSeconds": 3600,
                            "boundObjectRef": null},
                   "status": {"token": null, "expirationTimestamp": null}})
        );
        let short = json!({"spec": {"expirationSeconds": 60}});
        let err =
            token_request(&o, Some(&signer), "ns", "robot", short, "https://api").unwrap_err();
        assert!(
            err.to_string()
                .contains("may not specify a duration less than 10 minutes"),
            "{err}"
        );
    }
}
