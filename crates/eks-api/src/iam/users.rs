//! Users and their access keys. Keys created here sign requests under `--auth strict` as the
//! user (`arn:aws:iam::ACCOUNT:user/NAME`).

use localfargate_store::Tx;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::params::Params;
use super::{
    ACCESS_KEY_KIND, IamError, Outcome, USER_KIND, in_tx, load, merge_tags, now_iso, page, paged,
    secret, to_value, unique_id, wire_tags,
};
use crate::AppState;

const KEYS_PER_USER: usize = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub path: String,
    pub name: String,
    pub id: String,
    pub arn: String,
    pub create_date: String,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKey {
    pub user: String,
    pub id: String,
    pub secret: String,
    pub status: String,
    pub create_date: String,
}

fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

fn not_found(name: &str) -> IamError {
    IamError::no_such_entity(format!("The user with name {name} cannot be found."))
}

fn existing(tx: &mut dyn Tx, name: &str) -> Result<(User, u64), IamError> {
    match tx.get(USER_KIND, &key(name))? {
        None => Err(not_found(name)),
        Some(o) => Ok((load(&o.value, "user")?, o.revision)),
    }
}

fn wire(u: &User, tags: bool) -> Value {
    let mut m = Map::new();
    m.insert("Path".into(), json!(u.path));
    m.insert("UserName".into(), json!(u.name));
    m.insert("UserId".into(), json!(u.id));
    m.insert("Arn".into(), json!(u.arn));
    m.insert("CreateDate".into(), json!(u.create_date));
    if tags && !u.tags.is_empty() {
        m.insert("Tags".into(), wire_tags(&u.tags));
    }
    Value::Object(m)
}

/// The user a request names, or when it names none, the caller (an IAM user).
fn user_name(p: &Params<'_>) -> Result<String, IamError> {
    if let Some(name) = p.opt("UserName") {
        return Ok(name.to_string());
    }
    match p.1.split_once(":user/") {
        Some((_, path_name)) => Ok(path_name
            .rsplit('/')
            .next()
            .unwrap_or(path_name)
            .to_string()),
        None => Err(IamError::validation(
            "Must specify userName when calling with non-User credentials",
        )),
    }
}

pub fn create(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.name("UserName", 64)?;
    let path = p.path("Path")?;
    let tags = p.tags()?;
    in_tx(state, |tx| {
        if let Some(o) = tx.get(USER_KIND, &key(name))? {
            let other: User = load(&o.value, "user")?;
            return Err(IamError::already_exists(format!(
                "User with name {} already exists.",
                other.name
            )));
        }
        let user = User {
            arn: super::arn(state, &format!("user{path}{name}")),
            path: path.clone(),
            name: name.to_string(),
            id: unique_id("AIDA", 17),
            create_date: now_iso(),
            tags: tags.clone(),
        };
        tx.create(USER_KIND, &key(name), &to_value(&user))?;
        Ok(Some(json!({"User": wire(&user, true)})))
    })
}

pub fn get(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = user_name(p)?;
    // The built-in default identity of `--auth any` answers as a user too.
    let default =
        localfargate_core::access_entries::default_principal_arn(&state.config.account_id);
    let user = in_tx(state, |tx| existing(tx, &name).map(|(u, _)| u));
    match user {
        Ok(u) => Ok(Some(json!({"User": wire(&u, true)}))),
        Err(e) if p.opt("UserName").is_none() && p.1 == default => {
            let _ = e;
            Ok(Some(json!({"User": {
                "Path": "/", "UserName": name, "UserId": crate::sts::user_id(&default),
                "Arn": default, "CreateDate": "2024-01-01T00:00:00Z"}})))
        }
        Err(e) => Err(e),
    }
}

pub fn list(state: &AppState, p: &Params<'_>) -> Outcome {
    let prefix = p.opt("PathPrefix").unwrap_or("/");
    let (objects, _) = state.store.list(USER_KIND, "")?;
    let users = objects
        .iter()
        .map(|o| load::<User>(&o.value, "user"))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|u| u.path.starts_with(prefix))
        .collect();
    let (users, marker) = page(users, |u: &User| key(&u.name), p)?;
    let mut result = Map::new();
    result.insert(
        "Users".into(),
        Value::Array(users.iter().map(|u| wire(u, false)).collect()),
    );
    Ok(Some(paged(result, marker)))
}

fn keys_of(tx: &mut dyn Tx, user: &str) -> Result<Vec<AccessKey>, IamError> {
    let mut out = Vec::new();
    for o in tx.list(ACCESS_KEY_KIND, "")? {
        let k: AccessKey = load(&o.value, "access key")?;
        if k.user.eq_ignore_ascii_case(user) {
            out.push(k);
        }
    }
    Ok(out)
}

pub fn delete(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("UserName")?;
    in_tx(state, |tx| {
        let (user, revision) = existing(tx, name)?;
        if !keys_of(tx, &user.name)?.is_empty() {
            return Err(IamError::delete_conflict(
                "Cannot delete entity, must delete access keys first.",
            ));
        }
        tx.delete(USER_KIND, &key(name), Some(revision))?;
        Ok(None)
    })
}

pub fn tag(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("UserName")?;
    let tags = p.tags()?;
    in_tx(state, |tx| {
        let (mut user, revision) = existing(tx, name)?;
        merge_tags(&mut user.tags, tags.clone())?;
        tx.update(USER_KIND, &key(name), &to_value(&user), Some(revision))?;
        Ok(None)
    })
}

pub fn untag(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("UserName")?;
    let keys = p.list("TagKeys");
    in_tx(state, |tx| {
        let (mut user, revision) = existing(tx, name)?;
        user.tags.retain(|(k, _)| !keys.contains(k));
        tx.update(USER_KIND, &key(name), &to_value(&user), Some(revision))?;
        Ok(None)
    })
}

pub fn list_tags(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("UserName")?;
    let user = in_tx(state, |tx| existing(tx, name).map(|(u, _)| u))?;
    let (tags, marker) = page(user.tags, |(k, _)| k.clone(), p)?;
    let mut result = Map::new();
    result.insert("Tags".into(), wire_tags(&tags));
    Ok(Some(paged(result, marker)))
}

pub fn create_access_key(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = user_name(p)?;
    in_tx(state, |tx| {
        let (user, _) = existing(tx, &name)?;
        if keys_of(tx, &user.name)?.len() >= KEYS_PER_USER {
            return Err(IamError::limit_exceeded(format!(
                "Cannot exceed quota for AccessKeysPerUser: {KEYS_PER_USER}"
            )));
        }
        let k = AccessKey {
            user: user.name.clone(),
            id: unique_id("AKIA", 16),
            secret: secret(),
            status: "Active".into(),
            create_date: now_iso(),
        };
        tx.create(ACCESS_KEY_KIND, &k.id, &to_value(&k))?;
        Ok(Some(json!({"AccessKey": {
            "UserName": k.user, "AccessKeyId": k.id, "Status": k.status,
            "SecretAccessKey": k.secret, "CreateDate": k.create_date}})))
    })
}

pub fn list_access_keys(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = user_name(p)?;
    let keys = in_tx(state, |tx| {
        let (user, _) = existing(tx, &name)?;
        keys_of(tx, &user.name)
    })?;
    let (keys, marker) = page(keys, |k: &AccessKey| k.id.clone(), p)?;
    let mut result = Map::new();
    result.insert(
        "AccessKeyMetadata".into(),
        Value::Array(
            keys.iter()
                .map(|k| json!({"UserName": k.user, "AccessKeyId": k.id, "Status": k.status, "CreateDate": k.create_date}))
                .collect(),
        ),
    );
    Ok(Some(paged(result, marker)))
}

fn key_of_user(tx: &mut dyn Tx, user: &str, id: &str) -> Result<(AccessKey, u64), IamError> {
    let missing =
        || IamError::no_such_entity(format!("The Access Key with id {id} cannot be found."));
    let o = tx.get(ACCESS_KEY_KIND, id)?.ok_or_else(missing)?;
    let k: AccessKey = load(&o.value, "access key")?;
    if !k.user.eq_ignore_ascii_case(user) {
        return Err(missing());
    }
    Ok((k, o.revision))
}

pub fn delete_access_key(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = user_name(p)?;
    let id = p.required("AccessKeyId")?;
    in_tx(state, |tx| {
        existing(tx, &name)?;
        let (_, revision) = key_of_user(tx, &name, id)?;
        tx.delete(ACCESS_KEY_KIND, id, Some(revision))?;
        Ok(None)
    })
}

pub fn update_access_key(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = user_name(p)?;
    let id = p.required("AccessKeyId")?;
    let status = p.required("Status")?;
    if !["Active", "Inactive"].contains(&status) {
        return Err(IamError::validation(format!(
            "1 validation error detected: Value '{status}' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]"
        )));
    }
    in_tx(state, |tx| {
        existing(tx, &name)?;
        let (mut k, revision) = key_of_user(tx, &name, id)?;
        k.status = status.to_string();
        tx.update(ACCESS_KEY_KIND, id, &to_value(&k), Some(revision))?;
        Ok(None)
    })
}

/// Users have no attached or inline policies here, and no groups: the lists Terraform reads
/// before deleting a user are empty (for a user that exists).
pub fn list_attached(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("UserName")?;
    in_tx(state, |tx| existing(tx, name).map(|_| ()))?;
    Ok(Some(json!({"AttachedPolicies": [], "IsTruncated": false})))
}

pub fn list_inline(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("UserName")?;
    in_tx(state, |tx| existing(tx, name).map(|_| ()))?;
    Ok(Some(json!({"PolicyNames": [], "IsTruncated": false})))
}

pub fn list_groups(state: &AppState, p: &Params<'_>) -> Outcome {
    let name = p.required("UserName")?;
    in_tx(state, |tx| existing(tx, name).map(|_| ()))?;
    Ok(Some(json!({"Groups": [], "IsTruncated": false})))
}
