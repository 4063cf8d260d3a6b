//! EKS access policies: the list-access-policies entries and their decisions through the RBAC engine.

use super::*;

#[test]
fn list_access_policies_names_and_arns() {
    let policies = access_policies();
    let names: Vec<&str> = policies.iter().map(|p| p.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "list-access-policies returns them by name");
    for name in [
        "AmazonEKSClusterAdminPolicy",
        "AmazonEKSAdminPolicy",
        "AmazonEKSEditPolicy",
        "AmazonEKSViewPolicy",
        "AmazonEKSAdminViewPolicy",
        "AmazonEKSSecretReaderPolicy",
    ] {
        assert!(names.contains(&name), "{name}");
    }
    let admin = policies
        .iter()
        .find(|p| p.name == "AmazonEKSClusterAdminPolicy")
        .expect("listed");
    assert_eq!(
        admin.arn,
        "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    );
    assert_eq!(
        serde_json::to_value(admin).expect("serializes"),
        serde_json::json!({"name": "AmazonEKSClusterAdminPolicy", "arn": admin.arn})
    );
}

fn access_entry_policy(username: &str, associations: &[AssociatedAccessPolicy]) -> Policy {
    let (cluster_bindings, role_bindings) =
        access_entry_bindings(username, associations).expect("known policies");
    Policy::new(
        access_policy_cluster_roles(),
        vec![],
        cluster_bindings,
        role_bindings,
    )
}

#[test]
fn access_policies_decide_through_the_rbac_engine() {
    let user = UserInfo::new(
        "arn:aws:iam::111122223333:role/Dev",
        &["system:authenticated"],
    );
    let policy = access_entry_policy(
        &user.name,
        &[
            AssociatedAccessPolicy {
                policy_arn: policy_arn("AmazonEKSViewPolicy"),
                scope: AccessScope::Namespaces(strings(&["dev", "qa"])),
            },
            AssociatedAccessPolicy {
                policy_arn: policy_arn("AmazonEKSAdminPolicy"),
                scope: AccessScope::Namespaces(strings(&["sandbox"])),
            },
        ],
    );
    let can = |verb: &str, ns: &str, group: &str, resource: &str| {
        allowed(
            &policy,
            &Attributes::resource(user.clone(), verb, ns, group, resource),
        )
    };
    assert!(can("list", "dev", "", "pods"));
    assert!(can("get", "qa", "apps", "deployments"));
    assert!(!can("get", "dev", "", "secrets"), "view reads no secrets");
    assert!(!can("create", "dev", "apps", "deployments"));
    assert!(!can("list", "prod", "", "pods"), "outside the scope");
    assert!(
        !can("list", "", "", "nodes"),
        "namespace scope grants nothing cluster-wide"
    );
    assert!(can(
        "create",
        "sandbox",
        "rbac.authorization.k8s.io",
        "rolebindings"
    ));
    assert!(can("delete", "sandbox", "", "secrets"));
    assert_eq!(
        policy
            .authorize(&Attributes::resource(
                user.clone(),
                "list",
                "dev",
                "",
                "pods"
            ))
            .reason(),
        r#"RBAC: allowed by RoleBinding "eks:access-entry:arn:aws:iam::111122223333:role/Dev:AmazonEKSViewPolicy/dev" of ClusterRole "eks:access-policy:AmazonEKSViewPolicy" to User "arn:aws:iam::111122223333:role/Dev""#
    );

    let admin = UserInfo::new("admin", &[]);
    let cluster_admin = access_entry_policy(
        "admin",
        &[AssociatedAccessPolicy {
            policy_arn: policy_arn("AmazonEKSClusterAdminPolicy"),
            scope: AccessScope::Cluster,
        }],
    );
    assert!(allowed(
        &cluster_admin,
        &Attributes::resource(admin.clone(), "delete", "", "", "nodes")
    ));
    assert!(allowed(
        &cluster_admin,
        &Attributes::non_resource(admin.clone(), "get", "/metrics")
    ));
    let admin_view = access_entry_policy(
        "admin",
        &[AssociatedAccessPolicy {
            policy_arn: policy_arn("AmazonEKSAdminViewPolicy"),
            scope: AccessScope::Cluster,
        }],
    );
    assert!(allowed(
        &admin_view,
        &Attributes::resource(admin.clone(), "get", "kube-system", "", "secrets")
    ));
    assert!(!allowed(
        &admin_view,
        &Attributes::resource(admin, "delete", "kube-system", "", "secrets")
    ));
}

#[test]
fn unknown_access_policy_is_an_error() {
    let arn = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSMadeUpPolicy";
    assert_eq!(
        access_entry_bindings(
            "u",
            &[AssociatedAccessPolicy {
                policy_arn: arn.into(),
                scope: AccessScope::Cluster
            }]
        ),
        Err(AccessPolicyError::UnknownPolicy(arn.into()))
    );
}

#[test]
fn controller_roles_are_bound_to_their_service_accounts() {
    let b = bootstrap_policy();
    let controllers = b
        .cluster_roles
        .iter()
        .filter(|r| {
            r.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("system:controller:"))
        })
        .count();
    assert!(controllers >= 30, "{controllers} controller roles");
    let policy = b.into_policy();
    let gc = UserInfo::service_account("kube-system", "generic-garbage-collector");
    assert_eq!(
        policy
            .authorize(&Attributes::resource(
                gc.clone(),
                "delete",
                "dev",
                "apps",
                "replicasets"
            ))
            .reason(),
        r#"RBAC: allowed by ClusterRoleBinding "system:controller:generic-garbage-collector" of ClusterRole "system:controller:generic-garbage-collector" to ServiceAccount "generic-garbage-collector/kube-system""#
    );
    assert!(!allowed(
        &policy,
        &Attributes::resource(gc, "create", "dev", "", "pods")
    ));
    let hpa = UserInfo::service_account("kube-system", "horizontal-pod-autoscaler");
    let scale =
        Attributes::resource(hpa, "update", "dev", "apps", "deployments").with_subresource("scale");
    assert!(allowed(&policy, &scale), "*/scale covers deployments/scale");
    let aggregator = UserInfo::service_account("kube-system", "clusterrole-aggregation-controller");
    assert!(allowed(
        &policy,
        &Attributes::resource(
            aggregator,
            "escalate",
            "",
            "rbac.authorization.k8s.io",
            "clusterroles"
        )
    ));
}
