//! Managed policies: customer managed ones in the store (CreatePolicy, versions, tags,
//! DeletePolicy) and AWS's built-in ones, read-only.

use localfargate_core::iam_policy::{self, Kind};
use localfargate_store::Tx;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::params::Params;
use super::roles::{encode_document, roles_attached_to};
use super::{
    IamError, Outcome, POLICY_KIND, in_tx, load, managed, merge_tags, now_iso, page, paged,
    to_value, unique_id, wire_tags,
};
use crate::AppState;

const MAX_VERSIONS: usize = 5;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyVersion {
    pub id: String,
    pub document: String,
    pub create_date: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub path: String,
    #[serde(default)]
    pub description: Option<String>,
    pub create_date: String,
    pub update_date: String,
    pub default_version: String,
    pub versions: Vec<PolicyVersion>,
    pub next_version: u32,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

fn not_found(policy_arn: &str) -> IamError {
    IamError::no_such_entity(format!("Policy {policy_arn} was not found."))
}

fn parse_document(doc: &str) -> Result<(), IamError> {
    if doc.len() > 6144 {
        return Err(IamError::limit_exceeded(
            "Cannot exceed quota for PolicySize: 6144",
        ));
    }
    iam_policy::parse(doc, Kind::Identity)
        .map(|_| ())
        .map_err(|e| IamError::malformed(e.0))
}

/// The customer managed policy with this ARN, if it exists in this account.
pub fn load_by_arn(
    state: &AppState,
    tx: &mut dyn Tx,
    policy_arn: &str,
) -> Result<Option<(Policy, u64)>, IamError> {
    let prefix = format!(
        "arn:{}:iam::{}:policy",
        state.config.partition(),
        state.config.account_id
    );
    let Some(rest) = policy_arn.strip_prefix(&prefix) else {
        return Ok(None);
    };
    let name = rest.rsplit('/').next().unwrap_or_default();
    match tx.get(POLICY_KIND, &key(name))? {
        None => Ok(None),
        Some(o) => {
            let p: Policy = load(&o.value, "policy")?;
            Ok((p.arn == policy_arn).then_some((p, o.revision)))
        }
    }
}

fn invalid_arn(policy_arn: &str) -> Result<(), IamError> {
    if !policy_arn.starts_with("arn:") || policy_arn.split(':').count() < 6 {
        return Err(IamError::invalid_input(format!(
            "ARN {policy_arn} is not valid."
        )));
    }
    Ok(())
}

fn existing(
    state: &AppState,
    tx: &mut dyn Tx,
    policy_arn: &str,
) -> Result<(Policy, u64), IamError> {
    invalid_arn(policy_arn)?;
    load_by_arn(state, tx, policy_arn)?.ok_or_else(|| not_found(policy_arn))
}

/// Writes a changed customer managed policy back (its revision as read).
fn save(tx: &mut dyn Tx, policy: &Policy, revision: u64) -> Result<(), IamError> {
    tx.update(
        POLICY_KIND,
        &key(&policy.name),
        &to_value(policy),
        Some(revision),
    )?;
    Ok(())
}

fn no_such_version(policy_arn: &str, version: &str) -> IamError {
    IamError::no_such_entity(format!(
        "Policy {policy_arn} version {version} does not exist or is not attachable."
    ))
}

fn refuse_aws(policy_arn: &str) -> Result<(), IamError> {
    if managed::find(policy_arn).is_some() {
        return Err(IamError::unmodifiable(format!(
            "Cannot modify an AWS managed policy: {policy_arn}"
        )));
    }
    Ok(())
}

fn attachment_counts(
    state: &AppState,
) -> Result<std::collections::HashMap<String, usize>, IamError> {
    let mut counts = std::collections::HashMap::new();
    for role in roles_attached_to(state)? {
        for a in role.attached {
            *counts.entry(a).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

fn wire(p: &Policy, attachments: usize, tags: bool) -> Value {
    let mut m = Map::new();
    m.insert("PolicyName".into(), json!(p.name));
    m.insert("PolicyId".into(), json!(p.id));
    m.insert("Arn".into(), json!(p.arn));
    m.insert("Path".into(), json!(p.path));
    m.insert("DefaultVersionId".into(), json!(p.default_version));
    m.insert("AttachmentCount".into(), json!(attachments));
    m.insert("PermissionsBoundaryUsageCount".into(), json!(0));
    m.insert("IsAttachable".into(), json!(true));
    if let Some(d) = &p.description {
        m.insert("Description".into(), json!(d));
    }
    m.insert("CreateDate".into(), json!(p.create_date));
    m.insert("UpdateDate".into(), json!(p.update_date));
    if tags && !p.tags.is_empty() {
        m.insert("Tags".into(), wire_tags(&p.tags));
    }
    Value::Object(m)
}

fn wire_aws(p: &managed::AwsPolicy, attachments: usize, full: bool) -> Value {
    let mut m = Map::new();
    m.insert("PolicyName".into(), json!(p.name));
    m.insert("PolicyId".into(), json!(p.id()));
    m.insert("Arn".into(), json!(p.arn()));
    m.insert("Path".into(), json!("/"));
    m.insert("DefaultVersionId".into(), json!(p.version));
    m.insert("AttachmentCount".into(), json!(attachments));
    m.insert("PermissionsBoundaryUsageCount".into(), json!(0));
    m.insert("IsAttachable".into(), json!(true));
    if full {
        m.insert("Description".into(), json!(p.description));
    }
    m.insert("CreateDate".into(), json!(p.created));
    m.insert("UpdateDate".into(), json!(p.created));
    Value::Object(m)
}

pub fn create(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.name("PolicyName", 128)?;
    let path = p.path("Path")?;
    let doc = p.required("PolicyDocument")?;
    let description = p.opt("Description").map(str::to_string);
    let tags = p.tags()?;
    parse_document(doc)?;
    in_tx(state, |tx| {
        if tx.get(POLICY_KIND, &key(name))?.is_some() {
            return Err(IamError::already_exists(format!(
                "A policy called {name} already exists. Duplicate names are not allowed."
            )));
        }
        let now = now_iso();
        let policy = Policy {
            name: name.to_string(),
            id: unique_id("ANPA", 17),
            arn: super::arn(state, &format!("policy{path}{name}")),
            path: path.clone(),
            description: description.clone(),
            create_date: now.clone(),
            update_date: now.clone(),
            default_version: "v1".into(),
            versions: vec![PolicyVersion {
                id: "v1".into(),
                document: doc.to_string(),
                create_date: now,
            }],
            next_version: 2,
            tags: tags.clone(),
        };
        tx.create(POLICY_KIND, &key(name), &to_value(&policy))?;
        // CreatePolicy's answer has no description (IAM leaves it out).
        let mut shown = wire(&policy, 0, true);
        if let Value::Object(m) = &mut shown {
            m.remove("Description");
        }
        Ok(Some(json!({"Policy": shown})))
    })
}

pub fn get(state: &AppState, p: &Params<'_>) -> Outcome {
    let policy_arn = p.required("PolicyArn")?;
    let counts = attachment_counts(state)?;
    let count = counts.get(policy_arn).copied().unwrap_or(0);
    if let Some(aws) = managed::find(policy_arn) {
        return Ok(Some(json!({"Policy": wire_aws(aws, count, true)})));
    }
    let (policy, _) = in_tx(state, |tx| existing(state, tx, policy_arn))?;
    Ok(Some(json!({"Policy": wire(&policy, count, true)})))
}

pub fn delete(state: &AppState, p: &Params<'_>) -> Outcome {
    let policy_arn = p.required("PolicyArn")?;
    refuse_aws(policy_arn)?;
    let attached = attachment_counts(state)?.contains_key(policy_arn);
    in_tx(state, |tx| {
        let (policy, revision) = existing(state, tx, policy_arn)?;
        if attached {
            return Err(IamError::delete_conflict(
                "Cannot delete a policy attached to entities.",
            ));
        }
        if policy.versions.len() > 1 {
            return Err(IamError::delete_conflict(
                "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy.",
            ));
        }
        tx.delete(POLICY_KIND, &key(&policy.name), Some(revision))?;
        Ok(None)
    })
}

pub fn list(state: &AppState, p: &Params<'_>) -> Outcome {
    let scope = p.opt("Scope").unwrap_or("All");
    if !["All", "AWS", "Local"].contains(&scope) {
        return Err(IamError::validation(format!(
            "1 validation error detected: Value '{scope}' at 'scope' failed to satisfy constraint: Member must satisfy enum value set: [All, AWS, Local]"
        )));
    }
    let only_attached = p.bool("OnlyAttached");
    let prefix = p.opt("PathPrefix").unwrap_or("/");
    let counts = attachment_counts(state)?;
    let count = |arn: &str| counts.get(arn).copied().unwrap_or(0);
    // (sort key, wire shape): AWS's first, then the account's, each by name.
    let mut items: Vec<(String, Value)> = Vec::new();
    if scope != "Local" && prefix == "/" {
        for aws in managed::all() {
            items.push((
                format!("0/{}", aws.name),
                wire_aws(aws, count(&aws.arn()), false),
            ));
        }
    }
    if scope != "AWS" {
        let (objects, _) = state.store.list(POLICY_KIND, "")?;
        for o in objects.iter() {
            let policy: Policy = load(&o.value, "policy")?;
            if policy.path.starts_with(prefix) {
                let mut shown = wire(&policy, count(&policy.arn), false);
                if let Value::Object(m) = &mut shown {
                    m.remove("Description");
                }
                items.push((format!("1/{}", key(&policy.name)), shown));
            }
        }
    }
    if only_attached {
        items.retain(|(_, v)| v["AttachmentCount"].as_u64().unwrap_or(0) > 0);
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (items, marker) = page(items, |(k, _)| k.clone(), p)?;
    let mut result = Map::new();
    result.insert(
        "Policies".into(),
        Value::Array(items.into_iter().map(|(_, v)| v).collect()),
    );
    Ok(Some(paged(result, marker)))
}

fn wire_version(v: &PolicyVersion, default: &str, with_document: bool) -> Value {
    let mut m = Map::new();
    if with_document {
        m.insert("Document".into(), json!(encode_document(&v.document)));
    }
    m.insert("VersionId".into(), json!(v.id));
    m.insert("IsDefaultVersion".into(), json!(v.id == default));
    m.insert("CreateDate".into(), json!(v.create_date));
    Value::Object(m)
}

fn versions(state: &AppState, policy_arn: &str) -> Result<(Vec<PolicyVersion>, String), IamError> {
    if let Some(aws) = managed::find(policy_arn) {
        let v = PolicyVersion {
            id: aws.version.clone(),
            document: aws.document_text(),
            create_date: aws.created.clone(),
        };
        return Ok((vec![v], aws.version.clone()));
    }
    let (policy, _) = in_tx(state, |tx| existing(state, tx, policy_arn))?;
    Ok((policy.versions, policy.default_version))
}

pub fn get_version(state: &AppState, p: &Params<'_>) -> Outcome {
    let policy_arn = p.required("PolicyArn")?;
    let version = p.required("VersionId")?;
    let (versions, default) = versions(state, policy_arn)?;
    let v = versions
        .iter()
        .find(|v| v.id == version)
        .ok_or_else(|| no_such_version(policy_arn, version))?;
    Ok(Some(
        json!({"PolicyVersion": wire_version(v, &default, true)}),
    ))
}

pub fn list_versions(state: &AppState, p: &Params<'_>) -> Outcome {
    let policy_arn = p.required("PolicyArn")?;
    let (mut versions, default) = versions(state, policy_arn)?;
    // Newest first, as IAM lists them.
    versions.reverse();
    let (versions, marker) = page(
        versions,
        |v| {
            format!(
                "{:010}",
                u32::MAX - v.id.trim_start_matches('v').parse::<u32>().unwrap_or(0)
            )
        },
        p,
    )?;
    let mut result = Map::new();
    result.insert(
        "Versions".into(),
        Value::Array(
            versions
                .iter()
                .map(|v| wire_version(v, &default, false))
                .collect(),
        ),
    );
    Ok(Some(paged(result, marker)))
}

pub fn create_version(state: &AppState, p: &Params<'_>) -> Outcome {
    let policy_arn = p.required("PolicyArn")?;
    let doc = p.required("PolicyDocument")?;
    let set_default = p.bool("SetAsDefault");
    refuse_aws(policy_arn)?;
    parse_document(doc)?;
    in_tx(state, |tx| {
        let (mut policy, revision) = existing(state, tx, policy_arn)?;
        if policy.versions.len() >= MAX_VERSIONS {
            return Err(IamError::limit_exceeded(format!(
                "A managed policy can have up to {MAX_VERSIONS} versions. Before you create a new version, you must delete an existing version."
            )));
        }
        let now = now_iso();
        let v = PolicyVersion {
            id: format!("v{}", policy.next_version),
            document: doc.to_string(),
            create_date: now.clone(),
        };
        policy.next_version += 1;
        if set_default {
            policy.default_version = v.id.clone();
        }
        policy.update_date = now;
        policy.versions.push(v.clone());
        save(tx, &policy, revision)?;
        Ok(Some(
            json!({"PolicyVersion": wire_version(&v, &policy.default_version, false)}),
        ))
    })
}

pub fn delete_version(state: &AppState, p: &Params<'_>) -> Outcome {
    let policy_arn = p.required("PolicyArn")?;
    let version = p.required("VersionId")?;
    refuse_aws(policy_arn)?;
    in_tx(state, |tx| {
        let (mut policy, revision) = existing(state, tx, policy_arn)?;
        if !policy.versions.iter().any(|v| v.id == version) {
            return Err(no_such_version(policy_arn, version));
        }
        if policy.default_version == version {
            return Err(IamError::delete_conflict(
                "Cannot delete the default version of a policy.",
            ));
        }
        policy.versions.retain(|v| v.id != version);
        save(tx, &policy, revision)?;
        Ok(None)
    })
}

pub fn set_default_version(state: &AppState, p: &Params<'_>) -> Outcome {
    let policy_arn = p.required("PolicyArn")?;
    let version = p.required("VersionId")?;
    refuse_aws(policy_arn)?;
    in_tx(state, |tx| {
        let (mut policy, revision) = existing(state, tx, policy_arn)?;
        if !policy.versions.iter().any(|v| v.id == version) {
            return Err(no_such_version(policy_arn, version));
        }
        policy.default_version = version.to_string();
        policy.update_date = now_iso();
        save(tx, &policy, revision)?;
        Ok(None)
    })
}

pub fn tag(state: &AppState, p: &Params<'_>) -> Outcome {
    let policy_arn = p.required("PolicyArn")?;
    let tags = p.tags()?;
    refuse_aws(policy_arn)?;
    in_tx(state, |tx| {
        let (mut policy, revision) = existing(state, tx, policy_arn)?;
        merge_tags(&mut policy.tags, tags.clone())?;
        save(tx, &policy, revision)?;
        Ok(None)
    })
}

pub fn untag(state: &AppState, p: &Params<'_>) -> Outcome {
    let policy_arn = p.required("PolicyArn")?;
    let keys = p.list("TagKeys");
    refuse_aws(policy_arn)?;
    in_tx(state, |tx| {
        let (mut policy, revision) = existing(state, tx, policy_arn)?;
        policy.tags.retain(|(k, _)| !keys.contains(k));
        save(tx, &policy, revision)?;
        Ok(None)
    })
}

pub fn list_tags(state: &AppState, p: &Params<'_>) -> Outcome {
    let policy_arn = p.required("PolicyArn")?;
    let tags = if managed::find(policy_arn).is_some() {
        Vec::new()
    } else {
        in_tx(state, |tx| existing(state, tx, policy_arn))?.0.tags
    };
    let (tags, marker) = page(tags, |(k, _)| k.clone(), p)?;
    let mut result = Map::new();
    result.insert("Tags".into(), wire_tags(&tags));
    Ok(Some(paged(result, marker)))
}

pub fn list_entities(state: &AppState, p: &Params<'_>) -> Outcome {
    let policy_arn = p.required("PolicyArn")?;
    if managed::find(policy_arn).is_none() {
        in_tx(state, |tx| existing(state, tx, policy_arn))?;
    }
    let roles: Vec<Value> = roles_attached_to(state)?
        .into_iter()
        .filter(|r| r.attached.iter().any(|a| a == policy_arn))
        .map(|r| json!({"RoleName": r.name, "RoleId": r.id}))
        .collect();
    Ok(Some(json!({
        "PolicyGroups": [],
        "PolicyUsers": [],
        "PolicyRoles": roles,
        "IsTruncated": false,
    })))
}
