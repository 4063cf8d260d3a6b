//! IAM OpenID Connect providers: the IdPs (such as an EKS cluster's issuer) whose tokens
//! `AssumeRoleWithWebIdentity` accepts. Keyed by their URL without the scheme, as their ARN
//! ends (`arn:aws:iam::ACCOUNT:oidc-provider/HOST/PATH`).

use localfargate_store::Tx;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::params::Params;
use super::{
    IamError, OIDC_KIND, Outcome, in_tx, load, merge_tags, now_iso, page, paged, to_value,
    wire_tags,
};
use crate::AppState;

const MAX_THUMBPRINTS: usize = 5;
const MAX_CLIENT_IDS: usize = 100;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OidcProvider {
    pub arn: String,
    /// The issuer without `https://`.
    pub url: String,
    pub client_ids: Vec<String>,
    pub thumbprints: Vec<String>,
    pub create_date: String,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

fn not_found(arn: &str) -> IamError {
    IamError::no_such_entity(format!("OpenIDConnect Provider not found for arn {arn}"))
}

/// The provider key an ARN names, when it is one of this account's provider ARNs.
fn key_of(state: &AppState, arn: &str) -> Result<String, IamError> {
    let prefix = format!(
        "arn:{}:iam::{}:oidc-provider/",
        state.config.partition(),
        state.config.account_id
    );
    match arn.strip_prefix(&prefix) {
        Some(k) if !k.is_empty() => Ok(k.to_string()),
        _ => {
            if arn.starts_with("arn:") && arn.contains(":oidc-provider/") {
                Err(not_found(arn))
            } else {
                Err(IamError::invalid_input(format!("ARN {arn} is not valid.")))
            }
        }
    }
}

fn existing(state: &AppState, tx: &mut dyn Tx, arn: &str) -> Result<(OidcProvider, u64), IamError> {
    let key = key_of(state, arn)?;
    match tx.get(OIDC_KIND, &key)? {
        None => Err(not_found(arn)),
        Some(o) => Ok((load(&o.value, "OIDC provider")?, o.revision)),
    }
}

fn save(tx: &mut dyn Tx, p: &OidcProvider, revision: u64) -> Result<(), IamError> {
    tx.update(OIDC_KIND, &p.url, &to_value(p), Some(revision))?;
    Ok(())
}

fn check_thumbprints(list: &[String]) -> Result<(), IamError> {
    if list.len() > MAX_THUMBPRINTS {
        return Err(IamError::invalid_input(format!(
            "Thumbprint list must contain fewer than {} entries.",
            MAX_THUMBPRINTS + 1
        )));
    }
    for t in list {
        if t.len() != 40 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(IamError::validation(format!(
                "1 validation error detected: Value '{t}' at 'thumbprintList' failed to satisfy constraint: Member must have length greater than or equal to 40"
            )));
        }
    }
    Ok(())
}

fn check_client_id(id: &str) -> Result<(), IamError> {
    if id.is_empty() || id.chars().count() > 255 {
        return Err(IamError::validation(format!(
            "1 validation error detected: Value '{id}' at 'clientID' failed to satisfy constraint: Member must have length less than or equal to 255"
        )));
    }
    Ok(())
}

pub fn create(state: &AppState, p: &Params<'_>) -> Outcome {
    let url = p.required("Url")?;
    let Some(rest) = url.strip_prefix("https://") else {
        return Err(IamError::invalid_input(
            "Invalid Open ID Connect Provider URL",
        ));
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || url.len() > 255 || rest.contains(['?', '#']) {
        return Err(IamError::invalid_input(
            "Invalid Open ID Connect Provider URL",
        ));
    }
    let client_ids = p.list("ClientIDList");
    for id in &client_ids {
        check_client_id(id)?;
    }
    if client_ids.len() > MAX_CLIENT_IDS {
        return Err(IamError::limit_exceeded(format!(
            "Cannot exceed quota for ClientIdsPerOpenIdConnectProvider: {MAX_CLIENT_IDS}"
        )));
    }
    let thumbprints = p.list("ThumbprintList");
    check_thumbprints(&thumbprints)?;
    let tags = p.tags()?;
    in_tx(state, |tx| {
        if tx.get(OIDC_KIND, rest)?.is_some() {
            return Err(IamError::already_exists(format!(
                "Provider with url {url} already exists."
            )));
        }
        let mut ids: Vec<String> = Vec::new();
        for id in &client_ids {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        let provider = OidcProvider {
            arn: super::arn(state, &format!("oidc-provider/{rest}")),
            url: rest.to_string(),
            client_ids: ids,
            thumbprints: thumbprints.clone(),
            create_date: now_iso(),
            tags: tags.clone(),
        };
        tx.create(OIDC_KIND, rest, &to_value(&provider))?;
        let mut result = Map::new();
        result.insert("OpenIDConnectProviderArn".into(), json!(provider.arn));
        if !provider.tags.is_empty() {
            result.insert("Tags".into(), wire_tags(&provider.tags));
        }
        Ok(Some(Value::Object(result)))
    })
}

pub fn get(state: &AppState, p: &Params<'_>) -> Outcome {
    let arn = p.required("OpenIDConnectProviderArn")?;
    let (provider, _) = in_tx(state, |tx| existing(state, tx, arn))?;
    let mut result = Map::new();
    result.insert("Url".into(), json!(provider.url));
    result.insert("ClientIDList".into(), json!(provider.client_ids));
    result.insert("ThumbprintList".into(), json!(provider.thumbprints));
    result.insert("CreateDate".into(), json!(provider.create_date));
    if !provider.tags.is_empty() {
        result.insert("Tags".into(), wire_tags(&provider.tags));
    }
    Ok(Some(Value::Object(result)))
}

pub fn list(state: &AppState, _p: &Params<'_>) -> Outcome {
    let (objects, _) = state.store.list(OIDC_KIND, "")?;
    let mut entries = Vec::new();
    for o in objects.iter() {
        let provider: OidcProvider = load(&o.value, "OIDC provider")?;
        entries.push(json!({"Arn": provider.arn}));
    }
    Ok(Some(json!({"OpenIDConnectProviderList": entries})))
}

pub fn delete(state: &AppState, p: &Params<'_>) -> Outcome {
    let arn = p.required("OpenIDConnectProviderArn")?;
    in_tx(state, |tx| {
        let (provider, revision) = existing(state, tx, arn)?;
        tx.delete(OIDC_KIND, &provider.url, Some(revision))?;
        Ok(None)
    })
}

pub fn update_thumbprints(state: &AppState, p: &Params<'_>) -> Outcome {
    let arn = p.required("OpenIDConnectProviderArn")?;
    let thumbprints = p.list("ThumbprintList");
    check_thumbprints(&thumbprints)?;
    in_tx(state, |tx| {
        let (mut provider, revision) = existing(state, tx, arn)?;
        provider.thumbprints = thumbprints.clone();
        save(tx, &provider, revision)?;
        Ok(None)
    })
}

pub fn add_client_id(state: &AppState, p: &Params<'_>) -> Outcome {
    let arn = p.required("OpenIDConnectProviderArn")?;
    let id = p.required("ClientID")?;
    check_client_id(id)?;
    in_tx(state, |tx| {
        let (mut provider, revision) = existing(state, tx, arn)?;
        if !provider.client_ids.iter().any(|c| c == id) {
            if provider.client_ids.len() >= MAX_CLIENT_IDS {
                return Err(IamError::limit_exceeded(format!(
                    "Cannot exceed quota for ClientIdsPerOpenIdConnectProvider: {MAX_CLIENT_IDS}"
                )));
            }
            provider.client_ids.push(id.to_string());
            save(tx, &provider, revision)?;
        }
        Ok(None)
    })
}

pub fn remove_client_id(state: &AppState, p: &Params<'_>) -> Outcome {
    let arn = p.required("OpenIDConnectProviderArn")?;
    let id = p.required("ClientID")?;
    in_tx(state, |tx| {
        let (mut provider, revision) = existing(state, tx, arn)?;
        provider.client_ids.retain(|c| c != id);
        save(tx, &provider, revision)?;
        Ok(None)
    })
}

pub fn tag(state: &AppState, p: &Params<'_>) -> Outcome {
    let arn = p.required("OpenIDConnectProviderArn")?;
    let tags = p.tags()?;
    in_tx(state, |tx| {
        let (mut provider, revision) = existing(state, tx, arn)?;
        merge_tags(&mut provider.tags, tags.clone())?;
        save(tx, &provider, revision)?;
        Ok(None)
    })
}

pub fn untag(state: &AppState, p: &Params<'_>) -> Outcome {
    let arn = p.required("OpenIDConnectProviderArn")?;
    let keys = p.list("TagKeys");
    in_tx(state, |tx| {
        let (mut provider, revision) = existing(state, tx, arn)?;
        provider.tags.retain(|(k, _)| !keys.contains(k));
        save(tx, &provider, revision)?;
        Ok(None)
    })
}

pub fn list_tags(state: &AppState, p: &Params<'_>) -> Outcome {
    let arn = p.required("OpenIDConnectProviderArn")?;
    let (provider, _) = in_tx(state, |tx| existing(state, tx, arn))?;
    let (tags, marker) = page(provider.tags, |(k, _)| k.clone(), p)?;
    let mut result = Map::new();
    result.insert("Tags".into(), wire_tags(&tags));
    Ok(Some(paged(result, marker)))
}

/// The IAM OIDC provider for a token issuer (`https://HOST/PATH`), if the account has one.
pub fn provider_for_issuer(state: &AppState, issuer: &str) -> Option<OidcProvider> {
    let url = issuer
        .strip_prefix("https://")
        .unwrap_or(issuer)
        .trim_end_matches('/');
    let o = state.store.get(OIDC_KIND, url).ok()??;
    load(&o.value, "OIDC provider").ok()
}
