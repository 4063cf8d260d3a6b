//! Authorization of every request, as kube-apiserver's RBAC authorizer does it: the request's
//! attributes (verb, group, resource, subresource, namespace, name, or a non-resource path)
//! decided by `localfargate_core::rbac` over the cluster's stored Roles, ClusterRoles and their
//! bindings; impersonation (`kubectl --as`, `--as-group`); and the review APIs `kubectl auth
//! can-i` and `kubectl auth whoami` ask (SelfSubjectAccessReview, SubjectAccessReview,
//! LocalSubjectAccessReview, SelfSubjectRulesReview, SelfSubjectReview).
//!
//! The decision policy is built from the store once and kept until an RBAC object changes: a
//! watch on the RBAC keys drops it, and so does every RBAC write through this API at once (so a
//! `kubectl create rolebinding` is in force for the next request).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::http::{HeaderMap, Method};
use k8s_openapi::api::authentication::v1::{self as authentication, SelfSubjectReviewStatus};
use k8s_openapi::api::authorization::v1::{
    SelfSubjectRulesReviewSpec, SubjectAccessReviewSpec, SubjectAccessReviewStatus,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use localfargate_core::rbac::{self, Attributes, Decision, Policy, UserInfo};
use localfargate_registry::meta::{DynamicObject, Field};
use localfargate_registry::objects::{KubeError, Objects, resource};
use localfargate_registry::typed;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::authn::IamIdentities;
use crate::request::{Query, Target};

/// The API group of the RBAC objects, whose store keys all start with it.
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// One cluster's authorizer.
pub struct Authorizer {
    objects: Objects,
    policy: RwLock<Option<Arc<Policy>>>,
    /// EKS's access-policy authorizer, asked before RBAC as on EKS.
    access_policies: IamIdentities,
}

fn stored<T: DeserializeOwned>(objects: &Objects, plural: &str) -> Result<Vec<T>, KubeError> {
    let (items, _) = objects.list(resource(RBAC_GROUP, plural), None)?;
    Ok(items
        .iter()
        .filter_map(|o| {
            serde_json::from_value(o.value.clone())
                .map_err(|e| tracing::warn!(key = %o.key, error = %e, "unreadable RBAC object"))
                .ok()
        })
        .collect())
}

impl Authorizer {
    pub fn new(objects: Objects) -> Self {
        Authorizer {
            access_policies: IamIdentities::new(objects.clone()),
            objects,
            policy: RwLock::new(None),
        }
    }

    /// Forget the policy: the next decision reads the RBAC objects again.
    pub fn invalidate(&self) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn policy(&self) -> Result<Arc<Policy>, KubeError> {
        if let Some(p) = self
            .policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Ok(p.clone());
        }
        // ClusterRoles with an aggregationRule get their selected roles' rules, as the
        // clusterrole-aggregation controller keeps them.
        let cluster_roles = rbac::aggregate(&stored::<ClusterRole>(&self.objects, "clusterroles")?);
        let policy = Arc::new(Policy::new(
            cluster_roles,
            stored::<Role>(&self.objects, "roles")?,
            stored::<ClusterRoleBinding>(&self.objects, "clusterrolebindings")?,
            stored::<RoleBinding>(&self.objects, "rolebindings")?,
        ));
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = Some(policy.clone());
        Ok(policy)
    }

    /// Decide a request: the user's EKS access policies, then RBAC (EKS's authorizer chain;
    /// neither denies, so the order changes only the reason).
    pub fn decide(&self, a: &Attributes) -> Result<Decision, KubeError> {
        if let Some(allowed) = self.access_policies.access_policy_decision(a) {
            return Ok(allowed);
        }
        Ok(self.policy()?.authorize(a))
    }

    /// Allow the request or answer upstream's 403.
    pub fn check(&self, a: &Attributes) -> Result<(), KubeError> {
        match self.decide(a)? {
            Decision::Allow { .. } => Ok(()),
            Decision::NoOpinion { reason } => Err(forbidden(a, &reason)),
        }
    }

    /// Drop the policy whenever an RBAC object changes, until the task is dropped.
    pub async fn follow(self: Arc<Self>) {
        let store = self.objects.store.clone();
        let kind = self.objects.store_kind().to_string();
        localfargate_registry::custom::catalog::on_changes(
            store,
            kind,
            format!("{RBAC_GROUP}/"),
            move || self.invalidate(),
        )
        .await;
    }

    /// Whether a write to this resource changes the policy.
    pub fn is_rbac(target: &Target) -> bool {
        target.rt.group == RBAC_GROUP
    }
}

fn forbidden(a: &Attributes, reason: &str) -> KubeError {
    let status = rbac::forbidden_status(a, reason);
    KubeError::Forbidden(status.message.unwrap_or_default())
}

/// The verb of a resource request, as the apiserver's request-info resolver names it.
fn verb(method: &Method, target: &Target, query: &Query) -> &'static str {
    match *method {
        Method::GET | Method::HEAD if target.name.is_some() => "get",
        Method::GET | Method::HEAD if query.flag("watch") => "watch",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if target.name.is_some() => "delete",
        Method::DELETE => "deletecollection",
        _ => "",
    }
}

/// The attributes of a resource request.
pub fn resource_attributes(
    user: &UserInfo,
    method: &Method,
    target: &Target,
    query: &Query,
) -> Attributes {
    let mut a = Attributes::resource(
        user.clone(),
        verb(method, target, query),
        target.namespace.as_deref().unwrap_or(""),
        target.rt.group,
        target.rt.resource,
    );
    if let Some(sub) = &target.subresource {
        a = a.with_subresource(sub);
    }
    if let Some(name) = &target.name {
        a = a.with_name(name);
    }
    a
}

/// The attributes of a request for a path that is no resource (discovery, OpenAPI, version).
pub fn path_attributes(user: &UserInfo, method: &Method, path: &str) -> Attributes {
    let verb = match *method {
        Method::GET | Method::HEAD => "get",
        Method::POST => "post",
        Method::PUT => "put",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    };
    Attributes::non_resource(user.clone(), verb, path)
}

const IMPERSONATE_USER: &str = "impersonate-user";
const IMPERSONATE_GROUP: &str = "impersonate-group";
const IMPERSONATE_UID: &str = "impersonate-uid";
const IMPERSONATE_EXTRA: &str = "impersonate-extra-";

/// The user a request acts as: the authenticated one, or the one its `Impersonate-*` headers
/// name when the authenticated user may impersonate each of them (the `impersonate` verb on
/// users, groups, uids, serviceaccounts and userextras).
pub fn impersonate(
    authorizer: &Authorizer,
    user: &UserInfo,
    headers: &HeaderMap,
) -> Result<UserInfo, KubeError> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    };
    let name = values(IMPERSONATE_USER).into_iter().next();
    let groups = values(IMPERSONATE_GROUP);
    let uid = values(IMPERSONATE_UID).into_iter().next();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in headers {
        if let Some(k) = key.as_str().strip_prefix(IMPERSONATE_EXTRA)
            && let Ok(v) = value.to_str()
        {
            let k = percent_encoding::percent_decode_str(k)
                .decode_utf8_lossy()
                .into_owned();
            extra.entry(k).or_default().push(v.to_string());
        }
    }
    let Some(name) = name else {
        if !groups.is_empty() || uid.is_some() || !extra.is_empty() {
            return Err(KubeError::Internal(
                "requested impersonation of groups, uid or extra without impersonating a user"
                    .into(),
            ));
        }
        return Ok(user.clone());
    };
    let check = |resource: &str, namespace: &str, group: &str, subject: &str| {
        let a = Attributes::resource(user.clone(), "impersonate", namespace, group, resource)
            .with_name(subject);
        authorizer.check(&a)
    };
    match name
        .strip_prefix(rbac::SERVICE_ACCOUNT_USER_PREFIX)
        .and_then(|rest| rest.split_once(':'))
    {
        Some((namespace, sa)) => check("serviceaccounts", namespace, "", sa)?,
        None => check("users", "", "", &name)?,
    }
    for g in &groups {
        check("groups", "", "", g)?;
    }
    if let Some(u) = &uid {
        check("uids", "", "authentication.k8s.io", u)?;
    }
    for (k, vs) in &extra {
        for v in vs {
            let a = Attributes::resource(
                user.clone(),
                "impersonate",
                "",
                "authentication.k8s.io",
                "userextras",
            )
            .with_subresource(k)
            .with_name(v);
            authorizer.check(&a)?;
        }
    }
    let mut groups = groups;
    if let Some((namespace, _)) = name
        .strip_prefix(rbac::SERVICE_ACCOUNT_USER_PREFIX)
        .and_then(|rest| rest.split_once(':'))
    {
        for g in [
            rbac::SYSTEM_SERVICE_ACCOUNTS.to_string(),
            format!("{}:{namespace}", rbac::SYSTEM_SERVICE_ACCOUNTS),
        ] {
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
    }
    if name != "system:anonymous" && !groups.iter().any(|g| g == rbac::SYSTEM_AUTHENTICATED) {
        groups.push(rbac::SYSTEM_AUTHENTICATED.to_string());
    }
    Ok(UserInfo {
        name,
        uid: uid.unwrap_or_default(),
        groups,
        extra,
    })
}

/// A user as the reviews' statuses write it (`status.userInfo`, a TokenReview's `status.user`).
pub(crate) fn user_info(user: &UserInfo, with_extra: bool) -> authentication::UserInfo {
    authentication::UserInfo {
        username: Some(user.name.clone()),
        groups: Some(user.groups.clone()),
        uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
        extra: (with_extra && !user.extra.is_empty()).then(|| user.extra.clone()),
    }
}

/// The user a SubjectAccessReview's spec names.
fn spec_user(spec: &SubjectAccessReviewSpec) -> UserInfo {
    UserInfo {
        name: spec.user.clone().unwrap_or_default(),
        uid: spec.uid.clone().unwrap_or_default(),
        groups: spec.groups.clone().unwrap_or_default(),
        extra: spec.extra.clone().unwrap_or_default(),
    }
}

/// The attributes an access review's spec asks about.
fn review_attributes(
    user: UserInfo,
    spec: &SubjectAccessReviewSpec,
    namespace: Option<&str>,
) -> Attributes {
    if let Some(r) = &spec.resource_attributes {
        let field = |f: &Option<String>| f.clone().unwrap_or_default();
        let asked_namespace = field(&r.namespace);
        return Attributes::resource(
            user,
            &field(&r.verb),
            namespace.unwrap_or(&asked_namespace),
            &field(&r.group),
            &field(&r.resource),
        )
        .with_subresource(&field(&r.subresource))
        .with_name(&field(&r.name));
    }
    let n = spec.non_resource_attributes.as_ref();
    Attributes::non_resource(
        user,
        n.and_then(|n| n.verb.as_deref()).unwrap_or_default(),
        n.and_then(|n| n.path.as_deref()).unwrap_or_default(),
    )
}

/// A review's spec, decoded as `T` (absent: its default); a field of the wrong type is the
/// client's error.
pub(crate) fn review_spec<T: DeserializeOwned + Default>(
    review: &DynamicObject,
) -> Result<T, KubeError> {
    Option::<T>::deserialize(review.spec())
        .map(Option::unwrap_or_default)
        .map_err(|e| KubeError::BadRequest(format!("spec: {e}")))
}

/// A review as it is answered: the request's body, its metadata as upstream echoes it (with
/// `creationTimestamp: null`, which k8s-openapi's `Time` cannot write).
pub(crate) fn review_envelope(
    mut body: Value,
    api_version: &str,
    kind: &str,
) -> Result<DynamicObject, KubeError> {
    // Metadata that is not an object is answered as empty metadata.
    if let Some(m) = body.as_object_mut()
        && m.get("metadata").is_some_and(|v| !v.is_object())
    {
        m.remove("metadata");
    }
    let mut out =
        DynamicObject::from_value(body).map_err(|e| KubeError::BadRequest(e.to_string()))?;
    out.set_api_version(api_version.to_string());
    out.set_kind(kind.to_string());
    out.metadata.set_raw(Field::CreationTimestamp, Value::Null);
    Ok(out)
}

/// Answer a review (the kinds that are created and never stored): the request's body with its
/// `status` filled in, as upstream returns it with 201.
pub fn review(
    authorizer: &Authorizer,
    user: &UserInfo,
    target: &Target,
    body: Value,
) -> Result<Value, KubeError> {
    let rt = target.rt;
    let mut out = review_envelope(body, &rt.api_version(), rt.kind)?;
    let access = |a: Attributes, spec: &SubjectAccessReviewSpec| -> Result<Value, KubeError> {
        if !a.resource_request && spec.non_resource_attributes.is_none() {
            return Err(KubeError::invalid(
                rt,
                "",
                "spec.resourceAttributes",
                "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ));
        }
        let decision = authorizer.decide(&a)?;
        typed::to_json(&SubjectAccessReviewStatus {
            allowed: decision.is_allowed(),
            reason: (!decision.reason().is_empty()).then(|| decision.reason().to_string()),
            ..Default::default()
        })
    };
    let status = match rt.kind {
        "SelfSubjectAccessReview" => {
            let spec = review_spec(&out)?;
            access(review_attributes(user.clone(), &spec, None), &spec)?
        }
        "SubjectAccessReview" => {
            let spec = review_spec(&out)?;
            access(review_attributes(spec_user(&spec), &spec, None), &spec)?
        }
        "LocalSubjectAccessReview" => {
            let spec: SubjectAccessReviewSpec = review_spec(&out)?;
            let namespace = target.namespace.as_deref().unwrap_or("");
            let asked = spec
                .resource_attributes
                .as_ref()
                .and_then(|r| r.namespace.as_deref())
                .unwrap_or("");
            if asked != namespace {
                return Err(KubeError::BadRequest(format!(
                    "spec.resourceAttributes.namespace must match namespace: {namespace}"
                )));
            }
            access(
                review_attributes(spec_user(&spec), &spec, Some(namespace)),
                &spec,
            )?
        }
        "SelfSubjectRulesReview" => {
            let spec: SelfSubjectRulesReviewSpec = review_spec(&out)?;
            let namespace = spec.namespace.as_deref().unwrap_or("");
            serde_json::to_value(authorizer.policy()?.rules_for(user, namespace))
                .map_err(|e| KubeError::Internal(e.to_string()))?
        }
        "SelfSubjectReview" => typed::to_json(&SelfSubjectReviewStatus {
            user_info: Some(user_info(user, true)),
        })?,
        other => {
            return Err(KubeError::MethodNotAllowed(format!(
                "{other} is not a review"
            )));
        }
    };
    *out.field_mut("status") = status;
    Ok(out.into_value())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impersonated_service_accounts_get_their_groups() {
        let store: Arc<dyn localfargate_store::Store> =
            Arc::new(localfargate_store::SqliteStore::in_memory().unwrap());
        let objects = Objects::new(
            store,
            "c",
            Arc::new(localfargate_registry::Settings::new("us-east-1")),
        );
        let authorizer = Authorizer::new(objects);
        let admin = UserInfo::new("admin", &[rbac::SYSTEM_MASTERS]);
        let mut headers = HeaderMap::new();
        headers.insert(
            "impersonate-user",
            "system:serviceaccount:ns:robot".parse().unwrap(),
        );
        let user = impersonate(&authorizer, &admin, &headers).unwrap();
        assert_eq!(user.name, "system:serviceaccount:ns:robot");
        assert_eq!(
            user.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ns",
                "system:authenticated"
            ]
        );
        // Someone with no RBAC at all may not.
        let nobody = UserInfo::new("nobody", &[rbac::SYSTEM_AUTHENTICATED]);
        let e = impersonate(&authorizer, &nobody, &headers).unwrap_err();
        assert_eq!(
            e.to_string(),
            "serviceaccounts \"robot\" is forbidden: User \"nobody\" cannot impersonate resource \"serviceaccounts\" in API group \"\" in the namespace \"ns\""
        );
    }
}
