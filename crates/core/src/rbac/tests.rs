use k8s_openapi::api::authorization::v1::{NonResourceRule, ResourceRule};
use k8s_openapi::api::rbac::v1::{
    AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef,
    Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::eks_access_policies::{
    AccessPolicyError, AccessScope, AssociatedAccessPolicy, access_entry_bindings, access_policies,
    access_policy_cluster_roles, policy_arn,
};
use super::*;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..PolicyRule::default()
    }
}

fn url_rule(urls: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        non_resource_urls: Some(strings(urls)),
        verbs: strings(verbs),
        ..PolicyRule::default()
    }
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(String::from),
        ..ObjectMeta::default()
    }
}

fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: meta(name, None),
        rules: Some(rules),
        aggregation_rule: None,
    }
}

fn role(namespace: &str, name: &str, rules: Vec<PolicyRule>) -> Role {
    Role {
        metadata: meta(name, Some(namespace)),
        rules: Some(rules),
    }
}

fn subject(kind: &str, name: &str, namespace: Option<&str>) -> Subject {
    Subject {
        api_group: (kind != "ServiceAccount").then(|| "rbac.authorization.k8s.io".to_string()),
        kind: kind.into(),
        name: name.into(),
        namespace: namespace.map(String::from),
    }
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: name.into(),
    }
}

fn cluster_binding(name: &str, role: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(name, None),
        role_ref: role_ref("ClusterRole", role),
        subjects: Some(subjects),
    }
}

fn binding(
    namespace: &str,
    name: &str,
    kind: &str,
    role: &str,
    subjects: Vec<Subject>,
) -> RoleBinding {
    RoleBinding {
        metadata: meta(name, Some(namespace)),
        role_ref: role_ref(kind, role),
        subjects: Some(subjects),
    }
}

fn bob() -> UserInfo {
    UserInfo::new("bob", &["system:authenticated"])
}

fn allowed(policy: &Policy, a: &Attributes) -> bool {
    policy.authorize(a).is_allowed()
}

// ------------------------------------------------------------------------------------------
// Forbidden messages
// ------------------------------------------------------------------------------------------

#[test]
fn forbidden_message_namespaced_list() {
    let a = Attributes::resource(bob(), "list", "default", "", "pods");
    assert_eq!(
        forbidden_message(&a),
        r#"pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "default""#
    );
}

#[test]
fn forbidden_message_cluster_scope_with_group() {
    let a = Attributes::resource(
        bob(),
        "create",
        "",
        "rbac.authorization.k8s.io",
        "clusterroles",
    );
    assert_eq!(
        forbidden_message(&a),
        r#"clusterroles.rbac.authorization.k8s.io is forbidden: User "bob" cannot create resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope"#
    );
}

#[test]
fn forbidden_message_named_subresource() {
    let a = Attributes::resource(bob(), "get", "default", "", "pods")
        .with_subresource("log")
        .with_name("web");
    assert_eq!(
        forbidden_message(&a),
        r#"pods "web" is forbidden: User "bob" cannot get resource "pods/log" in API group "" in the namespace "default""#
    );
}

#[test]
fn forbidden_message_non_resource() {
    let a = Attributes::non_resource(bob(), "get", "/metrics");
    assert_eq!(
        forbidden_message(&a),
        r#"forbidden: User "bob" cannot get path "/metrics""#
    );
}

#[test]
fn forbidden_message_service_account_and_reason() {
    let a = Attributes::resource(
        UserInfo::service_account("ci", "deployer"),
        "get",
        "ci",
        "apps",
        "deployments",
    )
    .with_name("api");
    assert_eq!(
        forbidden_message_with_reason(
            &a,
            r#"RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found"#
        ),
        r#"deployments.apps "api" is forbidden: User "system:serviceaccount:ci:deployer" cannot get resource "deployments" in API group "apps" in the namespace "ci": RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found"#
    );
}

#[test]
fn forbidden_status_as_served() {
    let a = Attributes::resource(bob(), "get", "default", "", "pods").with_name("web");
    assert_eq!(
        serde_json::to_value(forbidden_status(&a, "")).expect("serializes"),
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "message": "pods \"web\" is forbidden: User \"bob\" cannot get resource \"pods\" in API group \"\" in the namespace \"default\"",
            "reason": "Forbidden",
            "details": {"name": "web", "kind": "pods"},
            "code": 403
        })
    );
    let path = Attributes::non_resource(
        UserInfo::new("system:anonymous", &["system:unauthenticated"]),
        "get",
        "/metrics",
    );
    assert_eq!(
        serde_json::to_value(forbidden_status(&path, "")).expect("serializes")["details"],
        serde_json::json!({})
    );
}

#[test]
fn go_quote_escapes_like_strconv_quote() {
    assert_eq!(
        go_format::quote("a\"b\\c\n\t\u{1}é"),
        r#""a\"b\\c\n\t\x01é""#
    );
    assert_eq!(go_format::quote_list(&strings(&["a", "b"])), r#"["a" "b"]"#);
    assert_eq!(go_format::quote_list::<String>(&[]), "[]");
}

// ------------------------------------------------------------------------------------------
// Rule matching and subjects
// ------------------------------------------------------------------------------------------

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

// ------------------------------------------------------------------------------------------
// Bootstrap policy and aggregation
// ------------------------------------------------------------------------------------------

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

fn user_with_role_in(role: &str, namespace: &str) -> (Policy, UserInfo) {
    let b = bootstrap_policy();
    let mut bindings = b.role_bindings.clone();
    bindings.push(binding(
        namespace,
        "bob-binding",
        "ClusterRole",
        role,
        vec![subject("User", "bob", None)],
    ));
    (
        Policy::new(
            aggregate(&b.cluster_roles),
            b.roles,
            b.cluster_role_bindings,
            bindings,
        ),
        bob(),
    )
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

// ------------------------------------------------------------------------------------------
// SelfSubjectRulesReview
// ------------------------------------------------------------------------------------------

#[test]
fn rules_review_of_a_simple_user() {
    let policy = Policy::new(
        vec![
            cluster_role("health", vec![url_rule(&["/healthz", "/livez"], &["get"])]),
            cluster_role(
                "pod-reader",
                vec![rule(&[""], &["pods", "pods/log"], &["get", "list"])],
            ),
        ],
        vec![role(
            "dev",
            "cm-web",
            vec![PolicyRule {
                resource_names: Some(strings(&["web"])),
                ..rule(&[""], &["configmaps"], &["get", "update"])
            }],
        )],
        vec![cluster_binding(
            "health",
            "health",
            vec![subject("Group", "system:authenticated", None)],
        )],
        vec![
            binding(
                "dev",
                "read-pods",
                "ClusterRole",
                "pod-reader",
                vec![subject("User", "bob", None)],
            ),
            binding(
                "dev",
                "web",
                "Role",
                "cm-web",
                vec![subject("User", "bob", None)],
            ),
            binding(
                "dev",
                "broken",
                "Role",
                "nope",
                vec![subject("User", "bob", None)],
            ),
        ],
    );
    let review = policy.rules_for(&bob(), "dev");
    assert_eq!(
        review.resource_rules,
        vec![
            ResourceRule {
                api_groups: Some(strings(&[""])),
                resources: Some(strings(&["pods", "pods/log"])),
                verbs: strings(&["get", "list"]),
                resource_names: None,
            },
            ResourceRule {
                api_groups: Some(strings(&[""])),
                resources: Some(strings(&["configmaps"])),
                verbs: strings(&["get", "update"]),
                resource_names: Some(strings(&["web"])),
            },
        ]
    );
    assert_eq!(
        review.non_resource_rules,
        vec![NonResourceRule {
            non_resource_urls: Some(strings(&["/healthz", "/livez"])),
            verbs: strings(&["get"]),
        }]
    );
    assert!(!review.incomplete);
    assert_eq!(
        review.evaluation_error.as_deref(),
        Some(r#"role.rbac.authorization.k8s.io "nope" not found"#)
    );
    let elsewhere = policy.rules_for(&bob(), "prod");
    assert!(elsewhere.resource_rules.is_empty());
    assert_eq!(elsewhere.non_resource_rules.len(), 1);
    assert_eq!(elsewhere.evaluation_error, None);
    let json = serde_json::to_value(&elsewhere).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({
            "incomplete": false,
            "nonResourceRules": [{"nonResourceURLs": ["/healthz", "/livez"], "verbs": ["get"]}],
            "resourceRules": []
        })
    );
}

// ------------------------------------------------------------------------------------------
// Escalation prevention
// ------------------------------------------------------------------------------------------

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

// ------------------------------------------------------------------------------------------
// EKS access policies
// ------------------------------------------------------------------------------------------

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

// ------------------------------------------------------------------------------------------
// Property: what escalation prevention calls covered is never more than the owner may do
// ------------------------------------------------------------------------------------------

mod coverage_property {
    use proptest::prelude::*;

    use super::*;

    const GROUPS: &[&str] = &["", "apps", "*"];
    const RESOURCES: &[&str] = &[
        "pods",
        "pods/log",
        "*/log",
        "*",
        "deployments",
        "deployments/scale",
    ];
    const VERBS: &[&str] = &["get", "list", "delete", "*"];
    const NAMES: &[&str] = &["a", "b"];
    const URLS: &[&str] = &["/healthz", "/api/*", "/api/v1", "*"];

    fn pick(options: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
        proptest::sample::subsequence(options, 1..=options.len().min(3))
            .prop_map(|v| v.into_iter().map(String::from).collect())
    }

    fn policy_rule() -> impl Strategy<Value = PolicyRule> {
        prop_oneof![
            (
                pick(GROUPS),
                pick(RESOURCES),
                pick(VERBS),
                proptest::option::of(pick(NAMES))
            )
                .prop_map(|(groups, resources, verbs, names)| PolicyRule {
                    api_groups: Some(groups),
                    resources: Some(resources),
                    verbs,
                    resource_names: names,
                    ..PolicyRule::default()
                }),
            (pick(URLS), pick(VERBS)).prop_map(|(urls, verbs)| PolicyRule {
                non_resource_urls: Some(urls),
                verbs,
                ..PolicyRule::default()
            }),
        ]
    }

    /// Every request the alphabets can express.
    fn requests() -> Vec<Attributes> {
        let mut all = Vec::new();
        for verb in ["get", "list", "delete", "watch"] {
            for group in ["", "apps", "batch"] {
                for (resource, sub) in [
                    ("pods", ""),
                    ("pods", "log"),
                    ("deployments", "scale"),
                    ("deployments", ""),
                    ("nodes", "log"),
                ] {
                    for name in ["", "a", "c"] {
                        all.push(
                            Attributes::resource(UserInfo::default(), verb, "ns", group, resource)
                                .with_subresource(sub)
                                .with_name(name),
                        );
                    }
                }
            }
            for path in ["/healthz", "/api/v1", "/api/v2", "/apis", "/api"] {
                all.push(Attributes::non_resource(UserInfo::default(), verb, path));
            }
        }
        all
    }

    proptest! {
        #[test]
        fn covered_rules_allow_nothing_the_owner_does_not(
            owner in proptest::collection::vec(policy_rule(), 0..4),
            wanted in proptest::collection::vec(policy_rule(), 1..3),
        ) {
            if rules::uncovered(&owner, &wanted).is_empty() {
                for request in requests() {
                    if wanted.iter().any(|r| rule_allows(&request, r)) {
                        prop_assert!(
                            owner.iter().any(|r| rule_allows(&request, r)),
                            "covered, yet {request:?} is allowed by {wanted:?} and not by {owner:?}"
                        );
                    }
                }
            }
        }

        #[test]
        fn a_rule_set_covers_itself(rules in proptest::collection::vec(policy_rule(), 1..4)) {
            prop_assert!(rules::uncovered(&rules, &rules).is_empty());
        }
    }
}
