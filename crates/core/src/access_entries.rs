//! EKS access entries and how EKS maps an IAM principal to a Kubernetes identity. Pure data and
//! rules, shared by the EKS API (which stores entries) and each cluster's Kubernetes API (which
//! reads them to authenticate `aws eks get-token` tokens).
//!
//! # Interface
//!
//! * [`ACCESS_ENTRY_KIND`], [`entry_key`]: where entries live in the store
//!   (`{cluster}/{principalArn}`), as [`StoredAccessEntry`] values.
//! * [`AuthenticationMode`]: a cluster's `accessConfig.authenticationMode`.
//! * [`Principal::parse`]: an IAM user or role ARN, or an STS assumed-role ARN (a caller).
//! * [`new_entry`]: an entry as CreateAccessEntry makes it (defaults and AWS's validation).
//! * [`parse_scope`]: an `accessScope` as AssociateAccessPolicy accepts it.
//! * [`aws_auth`]: the `aws-auth` ConfigMap's `mapRoles` / `mapUsers`.
//! * [`map_identity`]: the Kubernetes user a caller is, from its access entry and/or the
//!   `aws-auth` ConfigMap, as the cluster's authentication mode allows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::rbac::eks_access_policies::{AccessScope, AssociatedAccessPolicy, policy_name};

pub mod aws_auth;

#[cfg(test)]
mod tests;

/// Store kind of access entries; keys are `{cluster}/{principalArn}`.
pub const ACCESS_ENTRY_KIND: &str = "eks.amazonaws.com/AccessEntry";

/// The store key of a cluster's entry for `principal_arn`.
pub fn entry_key(cluster: &str, principal_arn: &str) -> String {
    format!("{cluster}/{principal_arn}")
}

/// The entry types CreateAccessEntry accepts.
pub const ENTRY_TYPES: [&str; 7] = [
    "STANDARD",
    "FARGATE_LINUX",
    "EC2_LINUX",
    "EC2_WINDOWS",
    "EC2",
    "HYBRID_LINUX",
    "HYPERPOD_LINUX",
];

/// Prefixes an access entry's username and groups may not start with.
const RESERVED_PREFIXES: [&str; 5] = ["system:", "eks:", "aws:", "amazon:", "iam:"];

/// A cluster's `accessConfig.authenticationMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthenticationMode {
    Api,
    ApiAndConfigMap,
    ConfigMap,
}

impl AuthenticationMode {
    /// What CreateCluster sets when `accessConfig.authenticationMode` is omitted: the EKS API
    /// reference says `CONFIG_MAP` for clusters made through the API, SDKs and CloudFormation.
    pub const DEFAULT: AuthenticationMode = AuthenticationMode::ConfigMap;

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "API" => Some(Self::Api),
            "API_AND_CONFIG_MAP" => Some(Self::ApiAndConfigMap),
            "CONFIG_MAP" => Some(Self::ConfigMap),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "API",
            Self::ApiAndConfigMap => "API_AND_CONFIG_MAP",
            Self::ConfigMap => "CONFIG_MAP",
        }
    }

    /// Of a stored cluster's `accessConfig` (the default when it has none).
    pub fn of_access_config(access_config: &Value) -> Self {
        access_config["authenticationMode"]
            .as_str()
            .and_then(Self::parse)
            .unwrap_or(Self::DEFAULT)
    }

    pub fn uses_access_entries(self) -> bool {
        self != Self::ConfigMap
    }

    pub fn uses_config_map(self) -> bool {
        self != Self::Api
    }
}

/// An IAM principal: an IAM user or role, as access entries name them, or a caller's STS
/// assumed-role session (canonicalized to its role, as EKS looks entries up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub partition: String,
    pub account: String,
    pub kind: PrincipalKind,
    /// The user or role name, without its path.
    pub name: String,
    /// The path between `user/` or `role/` and the name (`/` when none), kept for the ARN.
    pub path: String,
    /// An assumed-role session's name.
    pub session: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    User,
    Role,
}

impl Principal {
    /// `arn:aws:iam::ACCOUNT:user/[PATH/]NAME`, `arn:aws:iam::ACCOUNT:role/[PATH/]NAME`, or
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub fn parse(arn: &str) -> Option<Principal> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let ["arn", partition, service, "", account, resource] = parts[..] else {
            return None;
        };
        let good_account = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        if !partition.starts_with("aws") || !good_account {
            return None;
        }
        let (kind, rest, session) = match service {
            "iam" => {
                if let Some(rest) = resource.strip_prefix("user/") {
                    (PrincipalKind::User, rest, None)
                } else if let Some(rest) = resource.strip_prefix("role/") {
                    (PrincipalKind::Role, rest, None)
                } else {
                    return None;
                }
            }
            "sts" => {
                let rest = resource.strip_prefix("assumed-role/")?;
                let (role, session) = rest.split_once('/')?;
                (!session.is_empty() && !session.contains('/')).then_some(())?;
                (PrincipalKind::Role, role, Some(session.to_string()))
            }
            _ => return None,
        };
        let (path, name) = match rest.rsplit_once('/') {
            Some((path, name)) => (format!("/{path}/"), name),
            None => ("/".to_string(), rest),
        };
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
        if !valid_name {
            return None;
        }
        Some(Principal {
            partition: partition.to_string(),
            account: account.to_string(),
            kind,
            name: name.to_string(),
            path,
            session,
        })
    }

    /// The IAM ARN (a role's for an assumed-role session), with the path.
    pub fn iam_arn(&self) -> String {
        let kind = match self.kind {
            PrincipalKind::User => "user",
            PrincipalKind::Role => "role",
        };
        format!(
            "arn:{}:iam::{}:{kind}{}{}",
            self.partition, self.account, self.path, self.name
        )
    }

    /// The ARN without a path: aws-iam-authenticator's canonical form, which an assumed-role
    /// session (whose ARN has no path) can be matched by.
    pub fn canonical_arn(&self) -> String {
        let kind = match self.kind {
            PrincipalKind::User => "user",
            PrincipalKind::Role => "role",
        };
        format!(
            "arn:{}:iam::{}:{kind}/{}",
            self.partition, self.account, self.name
        )
    }

    /// What STS GetCallerIdentity says the caller is: a user's ARN, or the assumed-role session.
    pub fn caller_arn(&self) -> String {
        match (self.kind, &self.session) {
            (PrincipalKind::Role, Some(session)) => format!(
                "arn:{}:sts::{}:assumed-role/{}/{session}",
                self.partition, self.account, self.name
            ),
            _ => self.iam_arn(),
        }
    }
}

/// An access entry as the EKS API shows it (`AccessEntry`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessEntry {
    pub cluster_name: String,
    pub principal_arn: String,
    pub kubernetes_groups: Vec<String>,
    pub access_entry_arn: String,
    pub created_at: f64,
    pub modified_at: f64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub username: String,
    #[serde(rename = "type")]
    pub entry_type: String,
}

/// An associated access policy as the EKS API shows it (`AssociatedAccessPolicy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociatedPolicy {
    pub policy_arn: String,
    pub access_scope: Value,
    pub associated_at: f64,
    pub modified_at: f64,
}

impl AssociatedPolicy {
    /// The decision-side association ([`AssociatedAccessPolicy`]), when its scope is readable.
    pub fn association(&self) -> Option<AssociatedAccessPolicy> {
        Some(AssociatedAccessPolicy {
            policy_arn: self.policy_arn.clone(),
            scope: parse_scope(&self.access_scope).ok()?,
        })
    }
}

/// What the store keeps for one access entry: the entry (its `resource`, in wire shape, so tags
/// work on it as on other EKS records) and its associated policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredAccessEntry {
    pub resource: AccessEntry,
    #[serde(default)]
    pub associated_access_policies: Vec<AssociatedPolicy>,
}

/// A CreateAccessEntry request, as sent.
#[derive(Debug, Clone, Default)]
pub struct NewEntry<'a> {
    pub cluster: &'a str,
    pub principal_arn: &'a str,
    pub kubernetes_groups: Vec<String>,
    pub username: Option<&'a str>,
    pub entry_type: Option<&'a str>,
    pub tags: BTreeMap<String, String>,
}

/// Why EKS refuses an access entry request: each an `InvalidParameterException` with this
/// message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// AWS's message for a principal IAM does not know (AWS checks IAM; here the ARN's shape).
    #[error("The specified principalArn is invalid: invalid principal.")]
    InvalidPrincipal(String),
    #[error("The kubernetes group name {0} is invalid, it cannot start with {1}")]
    ReservedGroup(String, &'static str),
    #[error("The username must not begin with {0}")]
    ReservedUsername(&'static str),
    #[error("The username must not be empty")]
    EmptyUsername,
    #[error(
        "The access entry type {0} is invalid; valid types are STANDARD, FARGATE_LINUX, EC2_LINUX, EC2_WINDOWS, EC2, HYBRID_LINUX and HYPERPOD_LINUX"
    )]
    InvalidType(String),
    #[error("The access entry type {0} is only valid for an IAM role principal")]
    TypeNeedsRole(String),
    #[error("username and kubernetesGroups cannot be specified for access entry type {0}")]
    TypeFixesIdentity(String),
}

/// The username an entry gets when none is given: an IAM user's ARN as is; for a role, its
/// assumed-role sessions (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/{{SessionName}}`); the node
/// names EKS gives node entry types.
pub fn default_username(principal: &Principal, entry_type: &str) -> String {
    match entry_type {
        "EC2_LINUX" | "EC2_WINDOWS" | "EC2" => "system:node:{{EC2PrivateDNSName}}".to_string(),
        "FARGATE_LINUX" | "HYBRID_LINUX" | "HYPERPOD_LINUX" => {
            "system:node:{{SessionName}}".to_string()
        }
        _ => match principal.kind {
            PrincipalKind::User => principal.iam_arn(),
            PrincipalKind::Role => format!(
                "arn:{}:sts::{}:assumed-role/{}/{{{{SessionName}}}}",
                principal.partition, principal.account, principal.name
            ),
        },
    }
}

/// The groups EKS gives node entry types (none for STANDARD).
fn type_groups(entry_type: &str) -> Vec<String> {
    let groups: &[&str] = match entry_type {
        "EC2_LINUX" | "EC2_WINDOWS" | "EC2" | "HYBRID_LINUX" | "HYPERPOD_LINUX" => {
            &["system:nodes"]
        }
        "FARGATE_LINUX" => &["system:node-proxier", "system:nodes"],
        _ => &[],
    };
    groups.iter().map(|g| g.to_string()).collect()
}

/// Username and groups a STANDARD entry may be given (CreateAccessEntry and UpdateAccessEntry).
pub fn check_identity(username: Option<&str>, groups: &[String]) -> Result<(), EntryError> {
    for group in groups {
        if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| group.starts_with(**p)) {
            return Err(EntryError::ReservedGroup(group.clone(), prefix));
        }
    }
    if let Some(username) = username {
        if username.is_empty() {
            return Err(EntryError::EmptyUsername);
        }
        if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| username.starts_with(**p)) {
            return Err(EntryError::ReservedUsername(prefix));
        }
    }
    Ok(())
}

/// The entry CreateAccessEntry makes, with EKS's defaults; `arn_prefix` is
/// `arn:PARTITION:eks:REGION:ACCOUNT`, `id` the entry's unique suffix.
pub fn new_entry(
    request: &NewEntry<'_>,
    arn_prefix: &str,
    id: &str,
    now: f64,
) -> Result<AccessEntry, EntryError> {
    let principal = Principal::parse(request.principal_arn)
        .filter(|p| p.session.is_none())
        .ok_or_else(|| EntryError::InvalidPrincipal(request.principal_arn.to_string()))?;
    let entry_type = request.entry_type.unwrap_or("STANDARD");
    if !ENTRY_TYPES.contains(&entry_type) {
        return Err(EntryError::InvalidType(entry_type.to_string()));
    }
    let (username, groups) = if entry_type == "STANDARD" {
        check_identity(request.username, &request.kubernetes_groups)?;
        let username = request
            .username
            .map(str::to_string)
            .unwrap_or_else(|| default_username(&principal, entry_type));
        (username, dedup(&request.kubernetes_groups))
    } else {
        if principal.kind != PrincipalKind::Role {
            return Err(EntryError::TypeNeedsRole(entry_type.to_string()));
        }
        if request.username.is_some() || !request.kubernetes_groups.is_empty() {
            return Err(EntryError::TypeFixesIdentity(entry_type.to_string()));
        }
        (
            default_username(&principal, entry_type),
            type_groups(entry_type),
        )
    };
    let kind = match principal.kind {
        PrincipalKind::User => "user",
        PrincipalKind::Role => "role",
    };
    Ok(AccessEntry {
        cluster_name: request.cluster.to_string(),
        principal_arn: request.principal_arn.to_string(),
        kubernetes_groups: groups,
        access_entry_arn: format!(
            "{arn_prefix}:access-entry/{}/{kind}/{}/{}/{id}",
            request.cluster, principal.account, principal.name
        ),
        created_at: now,
        modified_at: now,
        tags: request.tags.clone(),
        username,
        entry_type: entry_type.to_string(),
    })
}

/// Groups sorted and without repeats, as EKS returns them.
pub fn dedup(groups: &[String]) -> Vec<String> {
    let mut out = groups.to_vec();
    out.sort();
    out.dedup();
    out
}

/// Why AssociateAccessPolicy refuses an `accessScope` or policy: `InvalidParameterException`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("The accessScope type {0} is invalid. Valid values are cluster and namespace")]
    InvalidType(String),
    #[error("Namespaces must not be specified for accessScope of type cluster")]
    NamespacesWithCluster,
    #[error("At least one namespace must be specified for accessScope of type namespace")]
    NoNamespaces,
    #[error("The namespace {0} is invalid")]
    InvalidNamespace(String),
    #[error("The policyArn {0} is invalid")]
    UnknownPolicy(String),
}

/// An `accessScope` (`{"type": "cluster"}` or `{"type": "namespace", "namespaces": [...]}`).
/// Namespaces may end in `*`, as EKS allows (a prefix).
pub fn parse_scope(scope: &Value) -> Result<AccessScope, ScopeError> {
    let kind = scope["type"].as_str().unwrap_or("");
    let namespaces: Vec<String> = scope["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    match kind {
        "cluster" if namespaces.is_empty() => Ok(AccessScope::Cluster),
        "cluster" => Err(ScopeError::NamespacesWithCluster),
        "namespace" if namespaces.is_empty() => Err(ScopeError::NoNamespaces),
        "namespace" => {
            for n in &namespaces {
                let base = n.strip_suffix('*').unwrap_or(n);
                let ok = (base.is_empty() && n == "*")
                    || (!base.is_empty()
                        && base.len() <= 63
                        && base
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                        && !base.starts_with('-'));
                if !ok {
                    return Err(ScopeError::InvalidNamespace(n.clone()));
                }
            }
            let mut namespaces = namespaces;
            namespaces.sort();
            namespaces.dedup();
            Ok(AccessScope::Namespaces(namespaces))
        }
        other => Err(ScopeError::InvalidType(other.to_string())),
    }
}

/// The scope as the API shows it.
pub fn scope_value(scope: &AccessScope) -> Value {
    match scope {
        AccessScope::Cluster => json!({"type": "cluster", "namespaces": []}),
        AccessScope::Namespaces(n) => json!({"type": "namespace", "namespaces": n}),
    }
}

/// The policy an ARN names, as AssociateAccessPolicy checks it.
pub fn check_policy_arn(arn: &str) -> Result<&'static str, ScopeError> {
    policy_name(arn).ok_or_else(|| ScopeError::UnknownPolicy(arn.to_string()))
}

/// Who a caller is in Kubernetes, and the access policies its entry has.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedIdentity {
    pub username: String,
    /// The mapping's groups (`system:authenticated` is the caller's to add).
    pub groups: Vec<String>,
    pub access_policies: Vec<AssociatedAccessPolicy>,
    /// The caller's ARN (STS GetCallerIdentity's), kept as the user's `extra` `arn`, as EKS does.
    pub arn: String,
}

/// What a cluster maps IAM principals with.
pub struct Mappings<'a> {
    pub mode: AuthenticationMode,
    /// The principal that created the cluster: cluster admin in `CONFIG_MAP` mode (EKS's hidden
    /// bootstrap mapping), and through its access entry in the others.
    pub creator_arn: Option<&'a str>,
    /// The cluster's access entries.
    pub entries: &'a [StoredAccessEntry],
    /// The `aws-auth` ConfigMap's mappings, when it exists.
    pub aws_auth: Option<&'a aws_auth::AwsAuth>,
}

/// The user EKS maps a caller to, or None (401): its access entry first (modes API and
/// API_AND_CONFIG_MAP), then `aws-auth` (modes CONFIG_MAP and API_AND_CONFIG_MAP). Templates in
/// usernames and groups (`{{SessionName}}`, `{{AccountID}}`, `{{SessionNameRaw}}`) are expanded
/// for the caller.
pub fn map_identity(caller: &Principal, mappings: &Mappings<'_>) -> Option<MappedIdentity> {
    let caller_arn = caller.caller_arn();
    let canonical = caller.canonical_arn();
    if mappings.mode.uses_access_entries() {
        if let Some(entry) = find_entry(mappings.entries, caller) {
            return Some(MappedIdentity {
                username: expand(&entry.resource.username, caller),
                groups: entry
                    .resource
                    .kubernetes_groups
                    .iter()
                    .map(|g| expand(g, caller))
                    .collect(),
                access_policies: entry
                    .associated_access_policies
                    .iter()
                    .filter_map(AssociatedPolicy::association)
                    .collect(),
                arn: caller_arn,
            });
        }
    } else if mappings
        .creator_arn
        .and_then(Principal::parse)
        .is_some_and(|p| p.canonical_arn() == canonical)
    {
        return Some(MappedIdentity {
            username: "kubernetes-admin".to_string(),
            groups: vec![crate::rbac::SYSTEM_MASTERS.to_string()],
            access_policies: Vec::new(),
            arn: caller_arn,
        });
    }
    if mappings.mode.uses_config_map()
        && let Some(aws_auth) = mappings.aws_auth
        && let Some((username, groups)) = aws_auth.lookup(caller)
    {
        // A mapping without a username names the caller by its canonical ARN.
        let username = match username {
            "" => canonical,
            u => expand(u, caller),
        };
        return Some(MappedIdentity {
            username,
            groups: groups.iter().map(|g| expand(g, caller)).collect(),
            access_policies: Vec::new(),
            arn: caller_arn,
        });
    }
    None
}

/// The caller's entry: the one whose principal is the caller's user, or the role of its session
/// (compared without paths, which a session's ARN does not have).
pub fn find_entry<'a>(
    entries: &'a [StoredAccessEntry],
    caller: &Principal,
) -> Option<&'a StoredAccessEntry> {
    let canonical = caller.canonical_arn();
    entries.iter().find(|e| {
        Principal::parse(&e.resource.principal_arn).is_some_and(|p| p.canonical_arn() == canonical)
    })
}

/// aws-iam-authenticator's templates: `{{AccountID}}`, `{{SessionName}}` (with `@` as `-`,
/// which usernames may not hold) and `{{SessionNameRaw}}`; an IAM user has no session name.
pub fn expand(template: &str, caller: &Principal) -> String {
    let session = caller.session.as_deref().unwrap_or("");
    template
        .replace("{{AccountID}}", &caller.account)
        .replace("{{SessionNameRaw}}", session)
        .replace("{{SessionName}}", &session.replace('@', "-"))
}

/// Who a caller is when its access key names no principal (any key with `--auth any`, a key
/// given without an ARN with `--auth strict`): the account's `localfargate` IAM user. Clusters
/// such callers create get it as their creator, so they administer them.
pub fn default_principal_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:user/localfargate")
}
