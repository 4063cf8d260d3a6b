//! Legacy service-account token Secrets (`kubernetes.io/service-account-token`), as
//! kube-controller-manager's tokens controller fills them and kube-apiserver's legacy token
//! authenticator checks them: the Secret names its ServiceAccount in an annotation, gets the
//! account's uid annotation, a non-expiring token, the cluster CA and its namespace; the token
//! authenticates only while the Secret holds it and the account (same uid) exists.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use localfargate_core::service_account_token::TokenSigner;
use localfargate_core::service_account_token::legacy::LegacyClaims;
use serde_json::{Value, json};

use k8s_openapi::api::core::v1::Secret;

use crate::meta::{DynamicObject, ObjectMeta, annotation_of};
use crate::objects::{Objects, is_deleting, name_of, namespace_of, resource, uid_of};
use crate::typed;

pub const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";
pub const SERVICE_ACCOUNT_NAME: &str = "kubernetes.io/service-account.name";
pub const SERVICE_ACCOUNT_UID: &str = "kubernetes.io/service-account.uid";

/// Whether a Secret is a legacy token Secret (its one top-level field read where it is: the
/// tokens controller asks this of every Secret, and decoding each one would copy its data).
pub fn is_token_secret(secret: &Value) -> bool {
    secret.get("type").and_then(Value::as_str) == Some(TOKEN_SECRET_TYPE)
}

/// The ServiceAccount a token Secret names.
pub fn account_name(secret: &Value) -> &str {
    annotation_of(secret, SERVICE_ACCOUNT_NAME).unwrap_or("")
}

/// Whether a token Secret refers to this ServiceAccount: by name, and by uid once it has one
/// (a Secret of a deleted and recreated account does not).
pub fn refers_to(secret: &Value, account: &Value) -> bool {
    account_name(secret) == name_of(account)
        && namespace_of(secret) == namespace_of(account)
        && annotation_of(secret, SERVICE_ACCOUNT_UID)
            .is_none_or(|uid| uid.is_empty() || uid == uid_of(account))
}

/// Whether the tokens controller has something to write: the token, the CA, the namespace or
/// the uid annotation is missing.
/// A Secret that does not decode is not filled (logged).
pub fn needs_filling(secret: &Value) -> bool {
    let Some(decoded) = typed::decode_or_log::<Secret>(secret) else {
        return false;
    };
    let data = decoded.data.unwrap_or_default();
    ["token", "ca.crt", "namespace"]
        .iter()
        .any(|k| data.get(*k).is_none_or(|v| v.0.is_empty()))
        || annotation_of(secret, SERVICE_ACCOUNT_UID).is_none_or(str::is_empty)
}

/// Fill a token Secret of `account` as the tokens controller does; what it has already is kept.
/// For the controllers, which hold the stored JSON: the Secret is typed for the write by moving
/// it there and back (a stored object always reads as one; anything else is left as it is).
pub fn fill(
    secret: &mut Value,
    account: &Value,
    signer: &TokenSigner,
    ca_pem: &str,
) -> Result<(), localfargate_core::service_account_token::TokenError> {
    if !secret.is_object()
        || secret
            .get("metadata")
            .is_some_and(|m| !m.is_object() && !m.is_null())
    {
        return Ok(());
    }
    let Ok(mut typed) = DynamicObject::from_value(std::mem::take(secret)) else {
        return Ok(());
    };
    let filled = fill_object(&mut typed, &ObjectMeta::of(account), signer, ca_pem);
    *secret = typed.into_value();
    filled
}

/// [`fill`] of a typed Secret, for a ServiceAccount with metadata `account`.
pub fn fill_object(
    secret: &mut DynamicObject,
    account: &ObjectMeta,
    signer: &TokenSigner,
    ca_pem: &str,
) -> Result<(), localfargate_core::service_account_token::TokenError> {
    let namespace = account.namespace().to_string();
    let secret_name = secret.metadata.name().to_string();
    let data = secret.field_mut("data");
    if !data.is_object() {
        *data = json!({});
    }
    if data["token"].as_str().is_none_or(str::is_empty) {
        let claims = LegacyClaims::new(&namespace, account.name(), account.uid(), &secret_name);
        let token = signer.issue_legacy(&claims)?;
        data["token"] = json!(STANDARD.encode(token));
    }
    if data["ca.crt"].as_str().is_none_or(str::is_empty) {
        data["ca.crt"] = json!(STANDARD.encode(ca_pem));
    }
    if data["namespace"].as_str().is_none_or(str::is_empty) {
        data["namespace"] = json!(STANDARD.encode(&namespace));
    }
    secret
        .metadata
        .insert_annotation(SERVICE_ACCOUNT_UID, account.uid().to_string());
    Ok(())
}

/// Who a legacy token is, when it is one of this cluster's still in force: signed by its key,
/// held by its Secret, whose ServiceAccount (same uid) exists; why not otherwise, in upstream's
/// words.
pub fn authenticate(
    objects: &Objects,
    signer: &TokenSigner,
    token: &str,
) -> Result<LegacyClaims, String> {
    let claims = signer.verify_legacy(token).map_err(|e| e.to_string())?;
    let secret = objects
        .get(
            resource("", "secrets"),
            &claims.namespace,
            &claims.secret_name,
        )
        .map_err(|_| "Token has been invalidated".to_string())?;
    if is_deleting(&secret) {
        return Err("Token has been invalidated".into());
    }
    let held = typed::decode::<Secret>(&secret)
        .ok()
        .and_then(|s| s.data?.remove("token"));
    if held.map(|t| t.0).as_deref() != Some(token.as_bytes()) {
        return Err("Token does not match server's copy".into());
    }
    let account = objects
        .get(
            resource("", "serviceaccounts"),
            &claims.namespace,
            &claims.service_account_name,
        )
        .map_err(|_| {
            format!(
                "ServiceAccount ({}/{}) has been deleted",
                claims.namespace, claims.service_account_name
            )
        })?;
    if is_deleting(&account) {
        return Err(format!(
            "ServiceAccount ({}/{}) is being deleted",
            claims.namespace, claims.service_account_name
        ));
    }
    if uid_of(&account) != claims.service_account_uid {
        return Err(format!(
            "ServiceAccount UID ({}) does not match claim ({})",
            uid_of(&account),
            claims.service_account_uid
        ));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {

    use super::*;

    use crate::objects::DeleteOptions;

    #[test]
    fn a_filled_secret_authenticates_until_it_or_its_account_goes() {
        let o = crate::objects::in_memory_with_namespace("ns");
        let sa = o
            .create(
                resource("", "serviceaccounts"),
                "ns",
                json!({"metadata": {"name": "robot"}}),
            )
            .unwrap();
        let mut secret = o
            .create(
                resource("", "secrets"),
                "ns",
                json!({"metadata": {"name": "robot-token", "annotations": {SERVICE_ACCOUNT_NAME: "robot"}},
                       "type": TOKEN_SECRET_TYPE}),
            )
            .unwrap();
        assert!(is_token_secret(&secret) && refers_to(&secret, &sa) && needs_filling(&secret));
        let ca = localfargate_core::pki::ClusterCa::generate("c").unwrap();
        let signer = TokenSigner::new(&ca.key_pem, "https://issuer").unwrap();
        fill(&mut secret, &sa, &signer, "CA PEM").unwrap();
        assert!(!needs_filling(&secret));
        assert_eq!(secret["data"]["namespace"], STANDARD.encode("ns"));
        assert_eq!(secret["data"]["ca.crt"], STANDARD.encode("CA PEM"));
        let token = String::from_utf8(
            STANDARD
                .decode(secret["data"]["token"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            authenticate(&o, &signer, &token).unwrap_err(),
            "Token does not match server's copy"
        );
        o.update(
            resource("", "secrets"),
            "ns",
            "robot-token",
            secret,
            false,
            false,
        )
        .unwrap();
        let claims = authenticate(&o, &signer, &token).unwrap();
        assert_eq!(claims.sub, "system:serviceaccount:ns:robot");
        assert_eq!(claims.service_account_uid, uid_of(&sa));
        o.delete(
            resource("", "serviceaccounts"),
            "ns",
            "robot",
            &DeleteOptions::default(),
        )
        .unwrap();
        assert_eq!(
            authenticate(&o, &signer, &token).unwrap_err(),
            "ServiceAccount (ns/robot) has been deleted"
        );
        o.delete(
            resource("", "secrets"),
            "ns",
            "robot-token",
            &DeleteOptions::default(),
        )
        .unwrap();
        assert_eq!(
            authenticate(&o, &signer, &token).unwrap_err(),
            "Token has been invalidated"
        );
    }
}
