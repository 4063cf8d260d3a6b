use std::sync::Arc;

use localfargate_core::access_entries::{
    ACCESS_ENTRY_KIND, AssociatedPolicy, NewEntry, StoredAccessEntry, entry_key, new_entry,
};
use localfargate_core::rbac::eks_access_policies::policy_arn;
use localfargate_registry::Settings;
use localfargate_store::{SqliteStore, Store, StoreExt};
use serde_json::json;

use super::*;

const VIEWER: &str = "arn:aws:iam::111122223333:user/viewer";
const OPS_ROLE: &str = "arn:aws:iam::111122223333:role/ops";

fn store(mode: &str) -> Arc<dyn Store> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    store
        .create(
            CLUSTER_KIND,
            "c",
            &json!({
                "resource": {"arn": "arn:aws:eks:us-east-1:111122223333:cluster/c",
                             "accessConfig": {"authenticationMode": mode}},
                "private": {"creatorArn": "arn:aws:iam::111122223333:user/creator"},
            }),
        )
        .unwrap();
    store
}

fn add_entry(store: &dyn Store, principal: &str, groups: &[&str], policy: Option<(&str, Value)>) {
    let entry = new_entry(
        &NewEntry {
            cluster: "c",
            principal_arn: principal,
            kubernetes_groups: groups.iter().map(|g| g.to_string()).collect(),
            ..NewEntry::default()
        },
        "arn:aws:eks:us-east-1:111122223333",
        "id",
        1.0,
    )
    .unwrap();
    let stored = StoredAccessEntry {
        resource: entry,
        associated_access_policies: policy
            .into_iter()
            .map(|(name, scope)| AssociatedPolicy {
                policy_arn: policy_arn(name),
                access_scope: scope,
                associated_at: 1.0,
                modified_at: 1.0,
            })
            .collect(),
    };
    store
        .create(
            ACCESS_ENTRY_KIND,
            &entry_key("c", principal),
            &serde_json::to_value(&stored).unwrap(),
        )
        .unwrap();
}

use serde_json::Value;

fn identities(store: Arc<dyn Store>) -> IamIdentities {
    IamIdentities::new(Objects::new(
        store,
        "c",
        Arc::new(Settings::new("us-east-1")),
    ))
}

fn can(iam: &IamIdentities, user: &UserInfo, verb: &str, namespace: &str, resource: &str) -> bool {
    let a = Attributes::resource(user.clone(), verb, namespace, "", resource);
    iam.access_policy_decision(&a)
        .is_some_and(|d| d.is_allowed())
}

#[test]
fn access_entries_map_callers_and_grant_their_policies() {
    let store = store("API");
    add_entry(
        &*store,
        VIEWER,
        &["devs"],
        Some((
            "AmazonEKSViewPolicy",
            json!({"type": "namespace", "namespaces": ["team"]}),
        )),
    );
    let iam = identities(store);
    let viewer = iam.user(Some(VIEWER), "AKIDVIEWER").unwrap();
    assert_eq!(viewer.name, VIEWER);
    assert_eq!(viewer.groups, ["devs", rbac::SYSTEM_AUTHENTICATED]);
    assert_eq!(viewer.extra[EXTRA_ARN], [VIEWER]);
    assert_eq!(viewer.extra[EXTRA_ACCESS_KEY_ID], ["AKIDVIEWER"]);
    assert!(can(&iam, &viewer, "list", "team", "pods"));
    assert!(!can(&iam, &viewer, "create", "team", "pods"));
    assert!(!can(&iam, &viewer, "list", "default", "pods"));
    assert!(!can(&iam, &viewer, "get", "team", "secrets"));
    // A namespace ending in `*` is a prefix.
    add_entry(
        &*iam.objects.store,
        "arn:aws:iam::111122223333:user/dev",
        &[],
        Some((
            "AmazonEKSEditPolicy",
            json!({"type": "namespace", "namespaces": ["dev-*"]}),
        )),
    );
    let dev = iam
        .user(Some("arn:aws:iam::111122223333:user/dev"), "AKIDDEV")
        .unwrap();
    assert!(can(&iam, &dev, "create", "dev-a", "pods"));
    assert!(!can(&iam, &dev, "create", "prod", "pods"));
    // Without the `arn` its authentication records (an impersonated user), no access policy.
    let mut impersonated = viewer.clone();
    impersonated.extra.clear();
    assert!(!can(&iam, &impersonated, "list", "team", "pods"));
    // No entry, no user: 401. The creator of an API-mode cluster is admin only by its entry.
    assert!(
        iam.user(Some("arn:aws:iam::111122223333:user/eve"), "K")
            .is_none()
    );
    assert!(
        iam.user(Some("arn:aws:iam::111122223333:user/creator"), "K")
            .is_none()
    );
}

#[test]
fn role_sessions_get_their_entry_with_the_session_name() {
    let store = store("API_AND_CONFIG_MAP");
    add_entry(
        &*store,
        OPS_ROLE,
        &[],
        Some(("AmazonEKSClusterAdminPolicy", json!({"type": "cluster"}))),
    );
    let iam = identities(store);
    let ops = iam
        .user(
            Some("arn:aws:sts::111122223333:assumed-role/ops/alice"),
            "AKIDOPS",
        )
        .unwrap();
    assert_eq!(ops.name, "arn:aws:sts::111122223333:assumed-role/ops/alice");
    assert_eq!(ops.extra[EXTRA_SESSION_NAME], ["alice"]);
    assert!(can(&iam, &ops, "delete", "kube-system", "secrets"));
}

#[test]
fn aws_auth_maps_in_config_map_modes_only() {
    let store = store("API_AND_CONFIG_MAP");
    let objects = Objects::new(store.clone(), "c", Arc::new(Settings::new("us-east-1")));
    localfargate_registry::bootstrap::bootstrap(&objects).unwrap();
    objects
        .create(
            resource("", "configmaps"),
            "kube-system",
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "aws-auth", "namespace": "kube-system"},
                "data": {"mapUsers": "- userarn: arn:aws:iam::111122223333:user/bob\n  username: bob\n  groups: [readers]\n"},
            }),
        )
        .unwrap();
    let iam = identities(store.clone());
    let bob = iam
        .user(Some("arn:aws:iam::111122223333:user/bob"), "AKIDBOB")
        .unwrap();
    assert_eq!(bob.name, "bob");
    assert_eq!(bob.groups, ["readers", rbac::SYSTEM_AUTHENTICATED]);
    // The creator of a cluster without its entry (bootstrap off) is nobody in this mode.
    assert!(
        iam.user(Some("arn:aws:iam::111122223333:user/creator"), "K")
            .is_none()
    );
    let api_only = {
        let store = self::store("API");
        identities(store)
    };
    assert!(
        api_only
            .user(Some("arn:aws:iam::111122223333:user/bob"), "K")
            .is_none()
    );
}

#[test]
fn callers_without_a_principal_are_the_accounts_default_identity() {
    let store = store("CONFIG_MAP");
    store
        .update(
            CLUSTER_KIND,
            "c",
            &json!({
                "resource": {"arn": "arn:aws:eks:us-east-1:111122223333:cluster/c",
                             "accessConfig": {"authenticationMode": "CONFIG_MAP"}},
                "private": {"creatorArn": localfargate_core::access_entries::default_principal_arn("111122223333")},
            }),
            None,
        )
        .unwrap();
    let admin = identities(store).user(None, "test").unwrap();
    assert_eq!(admin.name, "kubernetes-admin");
    assert!(admin.groups.iter().any(|g| g == rbac::SYSTEM_MASTERS));
}
