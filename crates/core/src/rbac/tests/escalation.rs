//! Escalation prevention on Role/ClusterRole writes and bindings.

use super::*;

#[test]
fn role_with_held_rules_is_allowed_and_unheld_rules_are_listed() {
    let (policy, bob) = user_with_role_in("edit", "dev");
    let held = [rule(&[""], &["secrets", "configmaps"], &["get", "list"])];
    let request = EscalationRequest::Role {
        namespace: "dev",
        name: "reader",
        rules: &held,
    };
    assert_eq!(check_escalation(&policy, &bob, &request), Ok(()));

    let not_held = [
        rule(&[""], &["nodes", "secrets"], &["get", "delete"]),
        rule(&["rbac.authorization.k8s.io"], &["roles"], &["create"]),
        url_rule(&["/metrics"], &["get"]),
    ];
    let request = EscalationRequest::Role {
        namespace: "dev",
        name: "grabber",
        rules: &not_held,
    };
    assert_eq!(
        check_escalation(&policy, &bob, &request),
        Err(EscalationError::Forbidden(
            "roles.rbac.authorization.k8s.io \"grabber\" is forbidden: user \"bob\" (groups=[\"system:authenticated\"]) \
             is attempting to grant RBAC permissions not currently held:\n\
             {APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\" \"delete\"]}\n\
             {APIGroups:[\"rbac.authorization.k8s.io\"], Resources:[\"roles\"], Verbs:[\"create\"]}\n\
             {NonResourceURLs:[\"/metrics\"], Verbs:[\"get\"]}"
                .into()
        ))
    );
    // The same rules in another namespace, where bob holds nothing.
    let request = EscalationRequest::Role {
        namespace: "prod",
        name: "reader",
        rules: &held,
    };
    assert!(check_escalation(&policy, &bob, &request).is_err());
}

#[test]
fn escalate_and_bind_verbs_and_masters_bypass_the_check() {
    let b = bootstrap_policy();
    let cluster_roles = {
        let mut roles = aggregate(&b.cluster_roles);
        roles.push(cluster_role(
            "role-manager",
            vec![
                rule(
                    &["rbac.authorization.k8s.io"],
                    &["roles"],
                    &["create", "escalate"],
                ),
                PolicyRule {
                    resource_names: Some(strings(&["admin"])),
                    ..rule(&["rbac.authorization.k8s.io"], &["clusterroles"], &["bind"])
                },
            ],
        ));
        roles
    };
    let mut bindings = b.role_bindings.clone();
    bindings.push(binding(
        "dev",
        "mgr",
        "ClusterRole",
        "role-manager",
        vec![subject("User", "bob", None)],
    ));
    let policy = Policy::new(cluster_roles, b.roles, b.cluster_role_bindings, bindings);
    let everything = [rule(&["*"], &["*"], &["*"])];
    assert_eq!(
        check_escalation(
            &policy,
            &bob(),
            &EscalationRequest::Role {
                namespace: "dev",
                name: "x",
                rules: &everything
            }
        ),
        Ok(()),
        "escalate on roles in dev"
    );
    let admin_ref = role_ref("ClusterRole", "admin");
    assert_eq!(
        check_escalation(
            &policy,
            &bob(),
            &EscalationRequest::RoleBinding {
                namespace: "dev",
                name: "b",
                role_ref: &admin_ref
            }
        ),
        Ok(()),
        "bind on the admin ClusterRole in dev"
    );
    let edit_ref = role_ref("ClusterRole", "edit");
    let denied = check_escalation(
        &policy,
        &bob(),
        &EscalationRequest::RoleBinding {
            namespace: "dev",
            name: "b",
            role_ref: &edit_ref,
        },
    );
    match denied {
        Err(EscalationError::Forbidden(message)) => assert!(
            message.starts_with(
                "rolebindings.rbac.authorization.k8s.io \"b\" is forbidden: user \"bob\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n"
            ),
            "{message}"
        ),
        other => panic!("expected Forbidden, got {other:?}"),
    }
    let root = UserInfo::new("root", &["system:masters"]);
    assert_eq!(
        check_escalation(
            &policy,
            &root,
            &EscalationRequest::ClusterRoleBinding {
                name: "c",
                role_ref: &edit_ref
            }
        ),
        Ok(())
    );
}

#[test]
fn binding_needs_the_referenced_rules_or_reports_a_missing_role() {
    let (policy, bob) = user_with_role_in("admin", "dev");
    // admin holds everything edit grants, so it may bind edit without the bind verb.
    let edit_ref = role_ref("ClusterRole", "edit");
    assert_eq!(
        check_escalation(
            &policy,
            &bob,
            &EscalationRequest::RoleBinding {
                namespace: "dev",
                name: "e",
                role_ref: &edit_ref
            }
        ),
        Ok(())
    );
    let missing = role_ref("ClusterRole", "ghost");
    assert_eq!(
        check_escalation(
            &policy,
            &bob,
            &EscalationRequest::RoleBinding {
                namespace: "dev",
                name: "g",
                role_ref: &missing
            }
        ),
        Err(EscalationError::RoleRefNotFound(
            r#"clusterroles.rbac.authorization.k8s.io "ghost" not found"#.into()
        ))
    );
    let cluster_admin_ref = role_ref("ClusterRole", "cluster-admin");
    let denied = check_escalation(
        &policy,
        &bob,
        &EscalationRequest::ClusterRoleBinding {
            name: "root",
            role_ref: &cluster_admin_ref,
        },
    );
    assert_eq!(
        denied,
        Err(EscalationError::Forbidden(
            "clusterrolebindings.rbac.authorization.k8s.io \"root\" is forbidden: user \"bob\" (groups=[\"system:authenticated\"]) \
             is attempting to grant RBAC permissions not currently held:\n\
             {APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}\n\
             {NonResourceURLs:[\"*\"], Verbs:[\"*\"]}"
                .into()
        ))
    );
}

#[test]
fn aggregation_rule_needs_full_authority() {
    let (policy, bob) = user_with_role_in("admin", "dev");
    let request = EscalationRequest::ClusterRole {
        name: "agg",
        rules: &[],
        sets_aggregation_rule: true,
    };
    assert_eq!(
        check_escalation(&policy, &bob, &request),
        Err(EscalationError::Forbidden(
            r#"clusterroles.rbac.authorization.k8s.io "agg" is forbidden: must have cluster-admin privileges to use the aggregationRule"#
                .into()
        ))
    );
    let cluster_admin = Policy::new(
        vec![cluster_role(
            "all",
            vec![rule(&["*"], &["*"], &["*"]), url_rule(&["*"], &["*"])],
        )],
        vec![],
        vec![cluster_binding(
            "all",
            "all",
            vec![subject("User", "bob", None)],
        )],
        vec![],
    );
    assert_eq!(check_escalation(&cluster_admin, &bob, &request), Ok(()));
}

#[test]
fn aggregation_with_match_expressions_and_self_exclusion() {
    let mut source = cluster_role("source", vec![rule(&["x.io"], &["widgets"], &["get"])]);
    source.metadata.labels = Some([("tier".to_string(), "gold".to_string())].into());
    let mut target = cluster_role("target", vec![rule(&["stale"], &["old"], &["get"])]);
    target.metadata.labels = Some([("tier".to_string(), "silver".to_string())].into());
    target.aggregation_rule = Some(AggregationRule {
        cluster_role_selectors: Some(vec![LabelSelector {
            match_expressions: Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(strings(&["gold", "silver"])),
                },
            ]),
            match_labels: None,
        }]),
    });
    let out = aggregate(&[source.clone(), target]);
    assert_eq!(out[0], source);
    assert_eq!(
        out[1].rules,
        Some(vec![rule(&["x.io"], &["widgets"], &["get"])])
    );
}
