//! Rule matching, subjects, binding scopes, reasons and the system:masters short-circuit.

use super::*;

#[test]
fn rule_matching_forms() {
    let user = bob();
    let get = |resource: &str, sub: &str, name: &str| {
        Attributes::resource(user.clone(), "get", "ns", "", resource)
            .with_subresource(sub)
            .with_name(name)
    };
    let pods = rule(&[""], &["pods"], &["get"]);
    assert!(rule_allows(&get("pods", "", ""), &pods));
    assert!(
        !rule_allows(&get("pods", "log", ""), &pods),
        "pods does not cover pods/log"
    );
    let star_log = rule(&[""], &["*/log"], &["get"]);
    assert!(rule_allows(&get("pods", "log", ""), &star_log));
    assert!(!rule_allows(&get("pods", "", ""), &star_log));
    assert!(!rule_allows(&get("pods", "exec", ""), &star_log));
    let pod_log = rule(&[""], &["pods/log"], &["get"]);
    assert!(rule_allows(&get("pods", "log", ""), &pod_log));
    assert!(!rule_allows(&get("nodes", "log", ""), &pod_log));
    let everything = rule(&["*"], &["*"], &["*"]);
    assert!(rule_allows(&get("pods", "exec", "x"), &everything));
    let named = PolicyRule {
        resource_names: Some(strings(&["web"])),
        ..rule(&[""], &["pods"], &["get"])
    };
    assert!(rule_allows(&get("pods", "", "web"), &named));
    assert!(!rule_allows(&get("pods", "", "db"), &named));
    assert!(
        !rule_allows(&get("pods", "", ""), &named),
        "a list has no name to match"
    );
    let other_group = rule(&["apps"], &["pods"], &["get"]);
    assert!(!rule_allows(&get("pods", "", ""), &other_group));
    let other_verb = rule(&[""], &["pods"], &["list"]);
    assert!(!rule_allows(&get("pods", "", ""), &other_verb));

    let path = |p: &str| Attributes::non_resource(user.clone(), "get", p);
    let urls = url_rule(&["/healthz", "/apis/*"], &["get"]);
    assert!(rule_allows(&path("/healthz"), &urls));
    assert!(!rule_allows(&path("/healthz/etcd"), &urls));
    assert!(rule_allows(&path("/apis/apps/v1"), &urls));
    assert!(!rule_allows(&path("/apis"), &urls));
    assert!(rule_allows(&path("/anything"), &url_rule(&["*"], &["get"])));
    assert!(
        !rule_allows(&path("/healthz"), &pods),
        "resource rules grant no URLs"
    );
    assert!(
        !rule_allows(&get("pods", "", ""), &urls),
        "URL rules grant no resources"
    );
}

fn subjects_policy() -> Policy {
    Policy::new(
        vec![
            cluster_role("pod-reader", vec![rule(&[""], &["pods"], &["get", "list"])]),
            cluster_role("node-reader", vec![rule(&[""], &["nodes"], &["get"])]),
        ],
        vec![role(
            "team",
            "secret-reader",
            vec![rule(&[""], &["secrets"], &["get"])],
        )],
        vec![
            cluster_binding(
                "nodes-to-ops",
                "node-reader",
                vec![subject("Group", "ops", None)],
            ),
            cluster_binding(
                "nodes-to-sa",
                "node-reader",
                vec![subject("ServiceAccount", "monitor", Some("infra"))],
            ),
        ],
        vec![
            binding(
                "team",
                "readers",
                "ClusterRole",
                "pod-reader",
                vec![
                    subject("User", "alice", None),
                    subject("ServiceAccount", "builder", None),
                ],
            ),
            binding(
                "team",
                "secrets",
                "Role",
                "secret-reader",
                vec![subject("Group", "team-leads", None)],
            ),
            binding(
                "team",
                "dangling",
                "ClusterRole",
                "missing",
                vec![subject("User", "carol", None)],
            ),
        ],
    )
}

#[test]
fn role_binding_to_cluster_role_applies_in_its_namespace_only() {
    let policy = subjects_policy();
    let alice = UserInfo::new("alice", &["system:authenticated"]);
    let in_team = Attributes::resource(alice.clone(), "list", "team", "", "pods");
    assert_eq!(
        policy.authorize(&in_team),
        Decision::Allow {
            reason: r#"RBAC: allowed by RoleBinding "readers/team" of ClusterRole "pod-reader" to User "alice""#.into()
        }
    );
    assert!(!allowed(
        &policy,
        &Attributes::resource(alice.clone(), "list", "other", "", "pods")
    ));
    assert!(
        !allowed(
            &policy,
            &Attributes::resource(alice, "list", "", "", "pods")
        ),
        "not cluster-wide"
    );
}

#[test]
fn subjects_user_group_and_service_account() {
    let policy = subjects_policy();
    let ops = UserInfo::new("dave", &["ops", "system:authenticated"]);
    assert_eq!(
        policy
            .authorize(&Attributes::resource(ops, "get", "", "", "nodes"))
            .reason(),
        r#"RBAC: allowed by ClusterRoleBinding "nodes-to-ops" of ClusterRole "node-reader" to Group "ops""#
    );
    // A RoleBinding's service account without a namespace is one of the binding's namespace.
    let builder = UserInfo::service_account("team", "builder");
    assert_eq!(
        policy
            .authorize(&Attributes::resource(builder, "get", "team", "", "pods"))
            .reason(),
        r#"RBAC: allowed by RoleBinding "readers/team" of ClusterRole "pod-reader" to ServiceAccount "builder/team""#
    );
    let other_builder = UserInfo::service_account("elsewhere", "builder");
    assert!(!allowed(
        &policy,
        &Attributes::resource(other_builder, "get", "team", "", "pods")
    ));
    let monitor = UserInfo::service_account("infra", "monitor");
    assert_eq!(
        policy
            .authorize(&Attributes::resource(monitor, "get", "", "", "nodes"))
            .reason(),
        r#"RBAC: allowed by ClusterRoleBinding "nodes-to-sa" of ClusterRole "node-reader" to ServiceAccount "monitor/infra""#
    );
    let lead = UserInfo::new("erin", &["team-leads"]);
    assert_eq!(
        policy
            .authorize(&Attributes::resource(lead, "get", "team", "", "secrets"))
            .reason(),
        r#"RBAC: allowed by RoleBinding "secrets/team" of Role "secret-reader" to Group "team-leads""#
    );
}

#[test]
fn denial_has_no_reason_and_missing_roles_are_reported() {
    let policy = subjects_policy();
    assert_eq!(
        policy.authorize(&Attributes::resource(bob(), "get", "team", "", "pods")),
        Decision::NoOpinion {
            reason: String::new()
        }
    );
    let carol = UserInfo::new("carol", &[]);
    assert_eq!(
        policy.authorize(&Attributes::resource(carol, "get", "team", "", "pods")),
        Decision::NoOpinion {
            reason: r#"RBAC: clusterrole.rbac.authorization.k8s.io "missing" not found"#.into()
        }
    );
}

#[test]
fn system_masters_is_allowed_everything() {
    let policy = Policy::new(vec![], vec![], vec![], vec![]);
    let root = UserInfo::new(
        "kubernetes-admin",
        &["system:masters", "system:authenticated"],
    );
    assert!(allowed(
        &policy,
        &Attributes::resource(root.clone(), "delete", "kube-system", "", "secrets")
    ));
    assert!(allowed(
        &policy,
        &Attributes::non_resource(root, "get", "/metrics")
    ));
    assert!(!allowed(
        &policy,
        &Attributes::non_resource(bob(), "get", "/metrics")
    ));
}
