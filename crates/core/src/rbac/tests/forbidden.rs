//! The 403 messages and Status, and Go quoting.

use super::*;

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
