//! The bootstrap policy: its objects, aggregation of view/edit/admin, and what those roles allow and deny.

use super::*;

fn bootstrap() -> Policy {
    bootstrap_policy().into_policy()
}

#[test]
fn bootstrap_objects_carry_upstream_metadata() {
    let b = bootstrap_policy();
    let names: Vec<&str> = b
        .cluster_roles
        .iter()
        .filter_map(|r| r.metadata.name.as_deref())
        .collect();
    for expected in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:aggregate-to-admin",
        "system:aggregate-to-edit",
        "system:aggregate-to-view",
        "system:discovery",
        "system:basic-user",
        "system:public-info-viewer",
        "system:node",
        "system:node-proxier",
        "system:kube-scheduler",
        "system:kube-controller-manager",
    ] {
        assert!(names.contains(&expected), "missing ClusterRole {expected}");
    }
    for role in &b.cluster_roles {
        let labels = role
            .metadata
            .labels
            .as_ref()
            .expect("bootstrap roles are labelled");
        assert_eq!(
            labels
                .get("kubernetes.io/bootstrapping")
                .map(String::as_str),
            Some("rbac-defaults")
        );
        let annotations = role
            .metadata
            .annotations
            .as_ref()
            .expect("bootstrap roles are annotated");
        assert_eq!(
            annotations
                .get("rbac.authorization.kubernetes.io/autoupdate")
                .map(String::as_str),
            Some("true")
        );
    }
    let view = b
        .cluster_roles
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some("view"))
        .expect("view");
    assert_eq!(view.rules, None, "aggregated roles are stored empty");
    let admin_binding = b
        .cluster_role_bindings
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some("cluster-admin"))
        .expect("cluster-admin binding");
    assert_eq!(
        admin_binding.subjects,
        Some(vec![subject("Group", "system:masters", None)])
    );
    assert!(
        b.roles
            .iter()
            .any(|r| r.metadata.namespace.as_deref() == Some("kube-public"))
    );
    assert!(
        b.role_bindings
            .iter()
            .any(|r| r.metadata.name.as_deref() == Some("system::leader-locking-kube-scheduler"))
    );
}

#[test]
fn aggregation_fills_view_edit_admin_transitively() {
    let aggregated = aggregate(&bootstrap_policy().cluster_roles);
    let rules = |name: &str| {
        aggregated
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .and_then(|r| r.rules.clone())
            .unwrap_or_default()
    };
    let view = rules("view");
    let edit = rules("edit");
    let admin = rules("admin");
    assert_eq!(view, rules("system:aggregate-to-view"));
    // edit = aggregate-to-edit's rules, then view's (view is selected through its label).
    assert_eq!(
        edit.len(),
        rules("system:aggregate-to-edit").len() + view.len()
    );
    assert!(view.iter().all(|r| edit.contains(r)));
    assert!(edit.iter().all(|r| admin.contains(r)));
    assert!(
        rules("system:aggregate-to-admin")
            .iter()
            .all(|r| admin.contains(r))
    );
    // Aggregating again changes nothing: the fixed point.
    assert_eq!(aggregate(&aggregated), aggregated);
}

#[test]
fn bootstrap_view_reads_but_not_secrets() {
    let (policy, bob) = user_with_role_in("view", "dev");
    let can = |verb: &str, group: &str, resource: &str, sub: &str| {
        allowed(
            &policy,
            &Attributes::resource(bob.clone(), verb, "dev", group, resource).with_subresource(sub),
        )
    };
    assert!(can("list", "", "pods", ""));
    assert!(can("get", "", "pods", "log"));
    assert!(can("watch", "apps", "deployments", ""));
    assert!(can("get", "", "namespaces", ""));
    assert!(!can("get", "", "secrets", ""), "view cannot read secrets");
    assert!(!can("create", "", "pods", "exec"));
    assert!(!can("create", "", "configmaps", ""));
    assert!(!can("list", "rbac.authorization.k8s.io", "roles", ""));
}

#[test]
fn bootstrap_edit_writes_workloads_but_not_rbac() {
    let (policy, bob) = user_with_role_in("edit", "dev");
    let can = |verb: &str, group: &str, resource: &str, sub: &str| {
        allowed(
            &policy,
            &Attributes::resource(bob.clone(), verb, "dev", group, resource).with_subresource(sub),
        )
    };
    assert!(can("create", "apps", "deployments", ""));
    assert!(can("patch", "apps", "deployments", "scale"));
    assert!(can("get", "", "secrets", ""));
    assert!(can("create", "", "pods", "exec"));
    assert!(can("create", "", "serviceaccounts", "token"));
    assert!(can("list", "", "pods", ""), "edit includes view");
    assert!(
        !can("create", "rbac.authorization.k8s.io", "roles", ""),
        "edit cannot create roles"
    );
    assert!(!can(
        "create",
        "rbac.authorization.k8s.io",
        "rolebindings",
        ""
    ));
    assert!(!can("update", "", "resourcequotas", ""));
}

#[test]
fn bootstrap_admin_manages_rbac_in_its_namespace_only() {
    let (policy, bob) = user_with_role_in("admin", "dev");
    let can = |verb: &str, ns: &str, group: &str, resource: &str| {
        allowed(
            &policy,
            &Attributes::resource(bob.clone(), verb, ns, group, resource),
        )
    };
    assert!(can(
        "create",
        "dev",
        "rbac.authorization.k8s.io",
        "rolebindings"
    ));
    assert!(can("create", "dev", "rbac.authorization.k8s.io", "roles"));
    assert!(can(
        "create",
        "dev",
        "authorization.k8s.io",
        "localsubjectaccessreviews"
    ));
    assert!(can("delete", "dev", "", "secrets"));
    assert!(!can(
        "create",
        "prod",
        "rbac.authorization.k8s.io",
        "rolebindings"
    ));
    assert!(!can(
        "create",
        "",
        "rbac.authorization.k8s.io",
        "clusterrolebindings"
    ));
    assert!(
        !can("update", "dev", "", "resourcequotas"),
        "quota stays with the cluster admin"
    );
}

#[test]
fn bootstrap_discovery_and_public_info() {
    let policy = bootstrap();
    let anonymous = UserInfo::new("system:anonymous", &["system:unauthenticated"]);
    let path = |user: &UserInfo, p: &str| {
        allowed(&policy, &Attributes::non_resource(user.clone(), "get", p))
    };
    assert!(path(&bob(), "/api"));
    assert!(path(&bob(), "/apis/apps/v1"));
    assert!(path(&bob(), "/openapi/v3"));
    assert!(path(&anonymous, "/healthz"));
    assert!(path(&anonymous, "/version"));
    assert!(!path(&anonymous, "/api"), "discovery needs authentication");
    assert!(!path(&bob(), "/metrics"));
    assert_eq!(
        policy
            .authorize(&Attributes::resource(
                bob(),
                "create",
                "",
                "authorization.k8s.io",
                "selfsubjectaccessreviews"
            ))
            .reason(),
        r#"RBAC: allowed by ClusterRoleBinding "system:basic-user" of ClusterRole "system:basic-user" to Group "system:authenticated""#
    );
    let root = UserInfo::new("root", &["system:masters"]);
    assert!(allowed(
        &policy,
        &Attributes::resource(
            root,
            "escalate",
            "",
            "rbac.authorization.k8s.io",
            "clusterroles"
        )
    ));
    let sa = UserInfo::service_account("default", "app");
    assert!(path(&sa, "/openid/v1/jwks"));
    assert!(!allowed(
        &policy,
        &Attributes::resource(sa, "list", "default", "", "pods")
    ));
}
