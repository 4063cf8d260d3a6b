//! IAM identities in a cluster's Kubernetes API, as EKS maps them: the caller of an
//! `aws eks get-token` token (the principal of the access key that signed it) becomes the user
//! its access entry or the `aws-auth` ConfigMap says, by the cluster's authentication mode; a
//! caller neither maps is not authenticated (401). Users mapped by an access entry are
//! authorized by its access policies as well as by RBAC: [`IamIdentities::access_policy_decision`].
//!
//! Everything is read from the store on each request (the EKS API writes access entries, the
//! cluster's own API the ConfigMap), so a change is in force for the next request.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use k8s_openapi::api::rbac::v1::ClusterRole;
use localfargate_core::access_entries::{
    ACCESS_ENTRY_KIND, AuthenticationMode, Mappings, Principal, StoredAccessEntry, aws_auth,
    default_principal_arn, find_entry, map_identity,
};
use localfargate_core::eks::CLUSTER_KIND;
use localfargate_core::rbac::eks_access_policies::{
    AccessScope, access_entry_bindings, access_policy_cluster_roles,
};
use localfargate_core::rbac::{self, Attributes, Decision, Policy, UserInfo};
use localfargate_registry::objects::{Objects, resource};

/// The `extra` key holding the caller's ARN (STS GetCallerIdentity's), as EKS's authenticator
/// sets it; its access-policy authorizer finds the caller's entry by it.
pub const EXTRA_ARN: &str = "arn";
/// The `extra` key holding the caller's canonical ARN (a session's role, without a path).
pub const EXTRA_CANONICAL_ARN: &str = "canonicalArn";
pub const EXTRA_SESSION_NAME: &str = "sessionName";
pub const EXTRA_ACCESS_KEY_ID: &str = "accessKeyId";

/// Maps one cluster's IAM callers.
pub struct IamIdentities {
    objects: Objects,
}

impl std::fmt::Debug for IamIdentities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamIdentities")
            .field("cluster", &self.objects.cluster)
            .finish()
    }
}

impl IamIdentities {
    pub fn new(objects: Objects) -> Self {
        IamIdentities { objects }
    }

    /// The cluster's objects (what legacy service-account tokens are checked against).
    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    /// The cluster's authentication mode, creator and account, from its EKS record.
    fn cluster(&self) -> Option<(AuthenticationMode, Option<String>, String)> {
        let record = self
            .objects
            .store
            .get(CLUSTER_KIND, &self.objects.cluster)
            .map_err(|e| tracing::error!(error = %e, "reading the cluster record"))
            .ok()??;
        let mode = AuthenticationMode::of_access_config(&record.value["resource"]["accessConfig"]);
        let creator = record.value["private"]["creatorArn"]
            .as_str()
            .map(str::to_string);
        // arn:PARTITION:eks:REGION:ACCOUNT:cluster/NAME
        let account = record.value["resource"]["arn"]
            .as_str()
            .and_then(|arn| arn.split(':').nth(4))
            .unwrap_or_default()
            .to_string();
        Some((mode, creator, account))
    }

    fn entries(&self) -> Vec<StoredAccessEntry> {
        let prefix = format!("{}/", self.objects.cluster);
        match self.objects.store.list(ACCESS_ENTRY_KIND, &prefix) {
            Ok((objects, _)) => objects
                .iter()
                .filter_map(|o| {
                    serde_json::from_value(o.value.clone())
                        .map_err(
                            |e| tracing::warn!(key = %o.key, error = %e, "unreadable access entry"),
                        )
                        .ok()
                })
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "listing access entries");
                Vec::new()
            }
        }
    }

    /// The `aws-auth` ConfigMap's mappings; one that does not parse maps nobody (and is logged),
    /// as the authenticator does.
    fn aws_auth(&self) -> Option<aws_auth::AwsAuth> {
        let object = self
            .objects
            .get_object(
                resource("", "configmaps"),
                aws_auth::NAMESPACE,
                aws_auth::NAME,
            )
            .ok()??;
        aws_auth::AwsAuth::from_config_map(&object.value)
            .map_err(|e| tracing::warn!(cluster = %self.objects.cluster, error = %e, "aws-auth ConfigMap"))
            .ok()
    }

    /// The Kubernetes user a caller is in this cluster, or None: no mapping, as EKS answers 401.
    /// The caller signed with `access_key_id`, whose principal is `principal_arn` (None: the
    /// account's default identity, `core::access_entries::default_principal_arn`).
    pub fn user(&self, principal_arn: Option<&str>, access_key_id: &str) -> Option<UserInfo> {
        let (mode, creator, account) = self.cluster()?;
        let caller_arn = principal_arn
            .map(str::to_string)
            .unwrap_or_else(|| default_principal_arn(&account));
        let caller_arn = caller_arn.as_str();
        let caller = Principal::parse(caller_arn)?;
        let entries = if mode.uses_access_entries() {
            self.entries()
        } else {
            Vec::new()
        };
        let aws_auth = if mode.uses_config_map() {
            self.aws_auth()
        } else {
            None
        };
        let mapped = map_identity(
            &caller,
            &Mappings {
                mode,
                creator_arn: creator.as_deref(),
                entries: &entries,
                aws_auth: aws_auth.as_ref(),
            },
        );
        let Some(mapped) = mapped else {
            tracing::info!(cluster = %self.objects.cluster, caller = caller_arn, "no access entry or aws-auth mapping");
            return None;
        };
        let mut groups = mapped.groups;
        if !groups.iter().any(|g| g == rbac::SYSTEM_AUTHENTICATED) {
            groups.push(rbac::SYSTEM_AUTHENTICATED.to_string());
        }
        let mut extra = BTreeMap::new();
        extra.insert(EXTRA_ARN.to_string(), vec![mapped.arn]);
        extra.insert(
            EXTRA_CANONICAL_ARN.to_string(),
            vec![caller.canonical_arn()],
        );
        extra.insert(
            EXTRA_ACCESS_KEY_ID.to_string(),
            vec![access_key_id.to_string()],
        );
        if let Some(session) = &caller.session {
            extra.insert(EXTRA_SESSION_NAME.to_string(), vec![session.clone()]);
        }
        Some(UserInfo {
            name: mapped.username,
            uid: format!("aws-iam-authenticator:{}", caller.canonical_arn()),
            groups,
            extra,
        })
    }

    /// EKS's access-policy authorizer: what the access policies of the requesting user's access
    /// entry allow (the user is found by the `arn` its authentication put in `extra`; users
    /// authenticated otherwise, or impersonated, have none). None: no opinion.
    pub fn access_policy_decision(&self, a: &Attributes) -> Option<Decision> {
        let arn = a.user.extra.get(EXTRA_ARN)?.first()?;
        let caller = Principal::parse(arn)?;
        let (mode, _, _) = self.cluster()?;
        if !mode.uses_access_entries() {
            return None;
        }
        let entries = self.entries();
        let entry = find_entry(&entries, &caller)?;
        let associations: Vec<_> = entry
            .associated_access_policies
            .iter()
            .filter_map(|p| p.association())
            .map(|mut association| {
                // A namespace ending in `*` is a prefix (EKS's wildcard): it stands for the
                // request's namespace when that has the prefix.
                if let AccessScope::Namespaces(namespaces) = &mut association.scope {
                    for n in namespaces.iter_mut() {
                        if let Some(prefix) = n.strip_suffix('*')
                            && !a.namespace.is_empty()
                            && a.namespace.starts_with(prefix)
                        {
                            *n = a.namespace.clone();
                        }
                    }
                }
                association
            })
            .collect();
        if associations.is_empty() {
            return None;
        }
        let (cluster_bindings, namespace_bindings) =
            access_entry_bindings(&a.user.name, &associations)
                .map_err(|e| tracing::warn!(error = %e, "access entry policy"))
                .ok()?;
        let wanted: Vec<&str> = cluster_bindings
            .iter()
            .map(|b| b.role_ref.name.as_str())
            .chain(namespace_bindings.iter().map(|b| b.role_ref.name.as_str()))
            .collect();
        let roles: Vec<ClusterRole> = policy_roles()
            .iter()
            .filter(|r| {
                r.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| wanted.contains(&n))
            })
            .cloned()
            .collect();
        let policy = Policy::new(roles, Vec::new(), cluster_bindings, namespace_bindings);
        match policy.authorize(a) {
            allowed @ Decision::Allow { .. } => Some(allowed),
            Decision::NoOpinion { .. } => None,
        }
    }
}

/// The ClusterRoles standing for access policies (`eks:access-policy:NAME`), made once.
fn policy_roles() -> &'static [ClusterRole] {
    static ROLES: OnceLock<Vec<ClusterRole>> = OnceLock::new();
    ROLES.get_or_init(access_policy_cluster_roles)
}

#[cfg(test)]
mod tests;
