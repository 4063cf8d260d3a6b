//! Roles: CreateRole, GetRole, ListRoles, DeleteRole, UpdateAssumeRolePolicy, UpdateRole, tags,
//! attached and inline policies, and the (always empty) instance profiles of a role.

use std::collections::BTreeMap;

use localfargate_core::iam_policy::{self, Kind, PolicyDocument};
use localfargate_store::Tx;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::params::{Params, check_name};
use super::{
    IamError, OIDC_KIND, Outcome, ROLE_KIND, USER_KIND, arn, in_tx, load, managed, merge_tags,
    now_iso, page, paged, policies, to_value, unique_id, wire_tags,
};
use crate::AppState;

/// Managed policies a role may have attached (IAM's default quota).
const ATTACHED_PER_ROLE: usize = 10;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    pub path: String,
    pub name: String,
    pub id: String,
    pub arn: String,
    pub create_date: String,
    /// The trust policy as sent.
    pub assume_role_policy: String,
    #[serde(default)]
    pub description: Option<String>,
    pub max_session_duration: i64,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// ARNs of the managed policies attached, in attachment order.
    #[serde(default)]
    pub attached: Vec<String>,
    /// Inline policies by name.
    #[serde(default)]
    pub inline: BTreeMap<String, String>,
}

/// Roles are keyed by their lower-cased name: IAM names are unique regardless of case.
fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

fn not_found(name: &str) -> IamError {
    IamError::no_such_entity(format!("The role with name {name} cannot be found."))
}

/// The role named `name`, if it exists.
pub fn load_role(tx: &mut dyn Tx, name: &str) -> Result<Option<(Role, u64)>, IamError> {
    match tx.get(ROLE_KIND, &key(name))? {
        None => Ok(None),
        Some(o) => Ok(Some((load(&o.value, "role")?, o.revision))),
    }
}

fn existing(tx: &mut dyn Tx, name: &str) -> Result<(Role, u64), IamError> {
    load_role(tx, name)?.ok_or_else(|| not_found(name))
}

fn save(tx: &mut dyn Tx, role: &Role, revision: u64) -> Result<(), IamError> {
    tx.update(ROLE_KIND, &key(&role.name), &to_value(role), Some(revision))?;
    Ok(())
}

/// A policy document as IAM returns it: URL-encoded.
pub(crate) fn encode_document(doc: &str) -> String {
    percent_encoding::utf8_percent_encode(doc, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The role as IAM's `Role` shape; `full` adds what only GetRole shows (tags, last use).
pub fn wire(role: &Role, full: bool) -> Value {
    let mut r = Map::new();
    r.insert("Path".into(), json!(role.path));
    r.insert("RoleName".into(), json!(role.name));
    r.insert("RoleId".into(), json!(role.id));
    r.insert("Arn".into(), json!(role.arn));
    r.insert("CreateDate".into(), json!(role.create_date));
    r.insert(
        "AssumeRolePolicyDocument".into(),
        json!(encode_document(&role.assume_role_policy)),
    );
    if let Some(d) = &role.description {
        r.insert("Description".into(), json!(d));
    }
    r.insert(
        "MaxSessionDuration".into(),
        json!(role.max_session_duration),
    );
    if full {
        if !role.tags.is_empty() {
            r.insert("Tags".into(), wire_tags(&role.tags));
        }
        r.insert("RoleLastUsed".into(), json!({}));
    }
    Value::Object(r)
}

/// Checks a trust policy as IAM does when storing it: well formed, and every principal of
/// this account (roles, users, OIDC providers) existing; well-formed service principals.
pub(crate) fn check_trust_policy(
    state: &AppState,
    tx: &mut dyn Tx,
    text: &str,
) -> Result<PolicyDocument, IamError> {
    if text.len() > 2048 {
        return Err(IamError::limit_exceeded(
            "Cannot exceed quota for ACLSizePerRole: 2048",
        ));
    }
    let doc = iam_policy::parse(text, Kind::Trust).map_err(|e| IamError::malformed(e.0))?;
    let account = state.config.account_id.as_str();
    for (kind, value) in doc.named_principals() {
        let invalid = || {
            IamError::malformed(format!(
                "Invalid principal in policy: \"{kind}\":\"{value}\""
            ))
        };
        match kind {
            "AWS" => {
                if value == "*" || (value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit()))
                {
                    continue;
                }
                let parts: Vec<&str> = value.splitn(6, ':').collect();
                let [
                    "arn",
                    _partition,
                    service @ ("iam" | "sts"),
                    "",
                    principal_account,
                    resource,
                ] = parts[..]
                else {
                    return Err(invalid());
                };
                if principal_account.len() != 12 {
                    return Err(invalid());
                }
                if principal_account != account || service == "sts" || resource == "root" {
                    continue;
                }
                let name = resource.rsplit('/').next().unwrap_or_default();
                // Principals of `--access-key` are the server's configured identities.
                let configured = match &state.config.auth {
                    crate::AuthMode::Strict(keys) => keys
                        .iter()
                        .any(|k| k.principal_arn.as_deref() == Some(value)),
                    crate::AuthMode::Any => false,
                };
                let exists = configured
                    || if resource.starts_with("role/") {
                        tx.get(ROLE_KIND, &key(name))?.is_some()
                    } else if resource.starts_with("user/") {
                        tx.get(USER_KIND, &name.to_ascii_lowercase())?.is_some()
                            || value
                                == localfargate_core::access_entries::default_principal_arn(account)
                    } else {
                        false
                    };
                if !exists {
                    return Err(invalid());
                }
            }
            "Service" => {
                let ok = value.contains('.')
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
                if !ok {
                    return Err(invalid());
                }
            }
            "Federated" => {
                if let Some(provider) = value.strip_prefix(&format!(
                    "arn:{}:iam::{account}:oidc-provider/",
                    state.config.partition()
                )) {
                    if tx.get(OIDC_KIND, provider)?.is_none() {
                        return Err(invalid());
                    }
                } else if !(value.starts_with("arn:") && value.contains(":saml-provider/")
                    || value.starts_with("arn:") && value.contains(":oidc-provider/")
                    || [
                        "cognito-identity.amazonaws.com",
                        "accounts.google.com",
                        "graph.facebook.com",
                        "www.amazon.com",
                    ]
                    .contains(&value))
                {
                    return Err(invalid());
                }
            }
            _ => return Err(invalid()),
        }
    }
    Ok(doc)
}

fn description(p: &Params<'_>) -> Result<Option<String>, IamError> {
    match p.opt("Description") {
        Some(d) if d.chars().count() > 1000 => Err(IamError::validation(
            "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 1000",
        )),
        d => Ok(d.map(str::to_string)),
    }
}

pub fn create(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.name("RoleName", 64)?;
    let path = p.path("Path")?;
    let doc = p.required("AssumeRolePolicyDocument")?;
    let description = description(p)?;
    let max = p.int("MaxSessionDuration", 3600, 43200)?.unwrap_or(3600);
    let tags = p.tags()?;
    if p.opt("PermissionsBoundary").is_some() {
        return Err(IamError::invalid_input(
            "Permissions boundaries are not supported by localfargate.",
        ));
    }
    in_tx(state, |tx| {
        if let Some((other, _)) = load_role(tx, name)? {
            return Err(IamError::already_exists(format!(
                "Role with name {} already exists.",
                other.name
            )));
        }
        check_trust_policy(state, tx, doc)?;
        let role = Role {
            arn: arn(state, &format!("role{path}{name}")),
            path: path.clone(),
            name: name.to_string(),
            id: unique_id("AROA", 17),
            create_date: now_iso(),
            assume_role_policy: doc.to_string(),
            description: description.clone(),
            max_session_duration: max,
            tags: tags.clone(),
            attached: Vec::new(),
            inline: BTreeMap::new(),
        };
        tx.create(ROLE_KIND, &key(name), &to_value(&role))?;
        Ok(Some(json!({"Role": wire(&role, true)})))
    })
}

pub fn get(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("RoleName")?;
    // A read from the committed store, outside any transaction.
    let o = state
        .store
        .get(ROLE_KIND, &key(name))?
        .ok_or_else(|| not_found(name))?;
    let role: Role = load(&o.value, "role")?;
    Ok(Some(json!({"Role": wire(&role, true)})))
}

fn all_roles(state: &AppState) -> Result<Vec<Role>, IamError> {
    let (objects, _) = state.store.list(ROLE_KIND, "")?;
    objects.iter().map(|o| load(&o.value, "role")).collect()
}

pub fn list(state: &AppState, p: &Params<'_>) -> Outcome {
    let prefix = p.opt("PathPrefix").unwrap_or("/");
    let roles: Vec<Role> = all_roles(state)?
        .into_iter()
        .filter(|r| r.path.starts_with(prefix))
        .collect();
    let (roles, marker) = page(roles, |r| key(&r.name), p)?;
    let mut result = Map::new();
    result.insert(
        "Roles".into(),
        Value::Array(roles.iter().map(|r| wire(r, false)).collect()),
    );
    Ok(Some(paged(result, marker)))
}

pub fn delete(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("RoleName")?;
    in_tx(state, |tx| {
        let (role, revision) = existing(tx, name)?;
        if !role.attached.is_empty() {
            return Err(IamError::delete_conflict(
                "Cannot delete entity, must detach all policies first.",
            ));
        }
        if !role.inline.is_empty() {
            return Err(IamError::delete_conflict(
                "Cannot delete entity, must delete policies first.",
            ));
        }
        tx.delete(ROLE_KIND, &key(name), Some(revision))?;
        Ok(None)
    })
}

pub fn update_assume_role_policy(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("RoleName")?;
    let doc = p.required("PolicyDocument")?;
    in_tx(state, |tx| {
        let (mut role, revision) = existing(tx, name)?;
        check_trust_policy(state, tx, doc)?;
        role.assume_role_policy = doc.to_string();
        save(tx, &role, revision)?;
        Ok(None)
    })
}

pub fn update(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("RoleName")?;
    let description = description(p)?;
    let max = p.int("MaxSessionDuration", 3600, 43200)?;
    in_tx(state, |tx| {
        let (mut role, revision) = existing(tx, name)?;
        if let Some(d) = &description {
            role.description = Some(d.clone());
        }
        if let Some(m) = max {
            role.max_session_duration = m;
        }
        save(tx, &role, revision)?;
        Ok(Some(json!({})))
    })
}

pub fn update_description(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("RoleName")?;
    let description = p.required("Description")?;
    in_tx(state, |tx| {
        let (mut role, revision) = existing(tx, name)?;
        role.description = Some(description.to_string());
        save(tx, &role, revision)?;
        Ok(Some(json!({"Role": wire(&role, true)})))
    })
}

pub fn tag(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("RoleName")?;
    let tags = p.tags()?;
    in_tx(state, |tx| {
        let (mut role, revision) = existing(tx, name)?;
        merge_tags(&mut role.tags, tags.clone())?;
        save(tx, &role, revision)?;
        Ok(None)
    })
}

pub fn untag(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("RoleName")?;
    let keys = p.list("TagKeys");
    in_tx(state, |tx| {
        let (mut role, revision) = existing(tx, name)?;
        role.tags.retain(|(k, _)| !keys.contains(k));
        save(tx, &role, revision)?;
        Ok(None)
    })
}

pub fn list_tags(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("RoleName")?;
    let role = in_tx(state, |tx| existing(tx, name).map(|(r, _)| r))?;
    let (tags, marker) = page(role.tags, |(k, _)| k.clone(), p)?;
    let mut result = Map::new();
    result.insert("Tags".into(), wire_tags(&tags));
    Ok(Some(paged(result, marker)))
}

pub fn attach(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("RoleName")?;
    let policy_arn = p.required("PolicyArn")?;
    in_tx(state, |tx| {
        let (mut role, revision) = existing(tx, name)?;
        let exists = managed::find(policy_arn).is_some()
            || policies::load_by_arn(state, tx, policy_arn)?.is_some();
        if !exists {
            return Err(IamError::no_such_entity(format!(
                "Policy {policy_arn} does not exist or is not attachable."
            )));
        }
        if role.attached.iter().any(|a| a == policy_arn) {
            return Ok(None);
        }
        if role.attached.len() >= ATTACHED_PER_ROLE {
            return Err(IamError::limit_exceeded(format!(
                "Cannot exceed quota for PoliciesPerRole: {ATTACHED_PER_ROLE}"
            )));
        }
        role.attached.push(policy_arn.to_string());
        save(tx, &role, revision)?;
        Ok(None)
    })
}

pub fn detach(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("RoleName")?;
    let policy_arn = p.required("PolicyArn")?;
    in_tx(state, |tx| {
        let (mut role, revision) = existing(tx, name)?;
        if !role.attached.iter().any(|a| a == policy_arn) {
            return Err(IamError::no_such_entity(format!(
                "Policy {policy_arn} was not found."
            )));
        }
        role.attached.retain(|a| a != policy_arn);
        save(tx, &role, revision)?;
        Ok(None)
    })
}

/// The name of a policy from its ARN (the last path segment).
pub(crate) fn policy_name(policy_arn: &str) -> &str {
    policy_arn.rsplit('/').next().unwrap_or(policy_arn)
}

pub fn list_attached(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("RoleName")?;
    let prefix = p.opt("PathPrefix").unwrap_or("/");
    let role = in_tx(state, |tx| existing(tx, name).map(|(r, _)| r))?;
    let attached: Vec<String> = role
        .attached
        .into_iter()
        .filter(|a| {
            let path = a.split_once(":policy").map(|(_, rest)| rest).unwrap_or("/");
            path.starts_with(prefix)
        })
        .collect();
    let (attached, marker) = page(attached, |a| a.clone(), p)?;
    let mut result = Map::new();
    result.insert(
        "AttachedPolicies".into(),
        Value::Array(
            attached
                .iter()
                .map(|a| json!({"PolicyName": policy_name(a), "PolicyArn": a}))
                .collect(),
        ),
    );
    Ok(Some(paged(result, marker)))
}

pub fn put_inline(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("RoleName")?;
    let policy = p.name("PolicyName", 128)?;
    let doc = p.required("PolicyDocument")?;
    iam_policy::parse(doc, Kind::Identity).map_err(|e| IamError::malformed(e.0))?;
    in_tx(state, |tx| {
        let (mut role, revision) = existing(tx, name)?;
        let total: usize = role
            .inline
            .iter()
            .filter(|(n, _)| n.as_str() != policy)
            .map(|(_, d)| d.len())
            .sum::<usize>()
            + doc.len();
        if total > 10240 {
            return Err(IamError::limit_exceeded(
                "Maximum policy size of 10240 bytes exceeded for role ".to_string() + name,
            ));
        }
        role.inline.insert(policy.to_string(), doc.to_string());
        save(tx, &role, revision)?;
        Ok(None)
    })
}

pub fn get_inline(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("RoleName")?;
    let policy = p.required("PolicyName")?;
    check_name("PolicyName", policy, 128)?;
    let role = in_tx(state, |tx| existing(tx, name).map(|(r, _)| r))?;
    let doc = role.inline.get(policy).ok_or_else(|| {
        IamError::no_such_entity(format!(
            "The role policy with name {policy} cannot be found."
        ))
    })?;
    Ok(Some(json!({
        "RoleName": role.name,
        "PolicyName": policy,
        "PolicyDocument": encode_document(doc),
    })))
}

pub fn list_inline(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("RoleName")?;
    let role = in_tx(state, |tx| existing(tx, name).map(|(r, _)| r))?;
    let names: Vec<String> = role.inline.keys().cloned().collect();
    let (names, marker) = page(names, Clone::clone, p)?;
    let mut result = Map::new();
    result.insert("PolicyNames".into(), json!(names));
    Ok(Some(paged(result, marker)))
}

pub fn delete_inline(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("RoleName")?;
    let policy = p.required("PolicyName")?;
    in_tx(state, |tx| {
        let (mut role, revision) = existing(tx, name)?;
        if role.inline.remove(policy).is_none() {
            return Err(IamError::no_such_entity(format!(
                "The role policy with name {policy} cannot be found."
            )));
        }
        save(tx, &role, revision)?;
        Ok(None)
    })
}

pub fn list_instance_profiles(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("RoleName")?;
    in_tx(state, |tx| existing(tx, name).map(|_| ()))?;
    Ok(Some(json!({"InstanceProfiles": [], "IsTruncated": false})))
}

/// Every role (for attachment counts and ListEntitiesForPolicy).
pub(crate) fn roles_attached_to(state: &AppState) -> Result<Vec<Role>, IamError> {
    all_roles(state)
}
