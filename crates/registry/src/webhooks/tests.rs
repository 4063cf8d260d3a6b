use super::*;
use crate::objects::resource;

fn attrs<'a>(rt: &'a ResourceType, operation: Operation, subresource: &'a str) -> Attributes<'a> {
    Attributes {
        operation,
        rt,
        kind: "",
        subresource,
        namespace: "default",
        name: "x",
        old: None,
        dry_run: false,
    }
}

fn rule(v: Value) -> Rule {
    read_hook(&json!({"name": "h", "rules": [v]}), false, false).rules[0].clone()
}

#[test]
fn rules_name_resources_subresources_and_scope() {
    let deployments = resource("apps", "deployments");
    let namespaces = resource("", "namespaces");
    let create = attrs(deployments, Operation::Create, "");
    let status = attrs(deployments, Operation::Update, "status");
    let r = rule(
        json!({"operations": ["CREATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"]}),
    );
    assert!(r.matches(&create, true));
    assert!(
        !r.matches(&status, true),
        "a subresource needs its own entry"
    );
    let all = rule(
        json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}),
    );
    assert!(all.matches(&create, true));
    assert!(
        !all.matches(&status, true),
        "`*` is every resource, no subresource"
    );
    let every = rule(
        json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]}),
    );
    assert!(every.matches(&create, true) && every.matches(&status, true));
    let statuses = rule(
        json!({"operations": ["UPDATE"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/status"]}),
    );
    assert!(statuses.matches(&status, true) && !statuses.matches(&create, true));
    let namespaced = rule(
        json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Namespaced"}),
    );
    assert!(namespaced.matches(&create, true));
    assert!(!namespaced.matches(&attrs(namespaces, Operation::Create, ""), true));
}

#[test]
fn equivalent_match_policy_takes_other_versions_of_the_resource() {
    let deployments = resource("apps", "deployments");
    let create = attrs(deployments, Operation::Create, "");
    let old_version = rule(
        json!({"operations": ["CREATE"], "apiGroups": ["apps"], "apiVersions": ["v1beta1"], "resources": ["deployments"]}),
    );
    assert!(
        old_version.matches(&create, false),
        "Equivalent (the default)"
    );
    assert!(!old_version.matches(&create, true), "Exact");
    let hook = read_hook(
        &json!({"name": "h", "matchPolicy": "Exact", "sideEffects": "None"}),
        false,
        false,
    );
    assert!(hook.exact && hook.side_effects_safe);
    let defaults = read_hook(&json!({"name": "h"}), true, true);
    assert!(!defaults.exact, "Equivalent by default");
    assert!(
        !defaults.side_effects_safe,
        "v1beta1's sideEffects default is Unknown"
    );
    assert!(!defaults.ignore_failures, "Fail by default");
    assert_eq!(defaults.timeout, Duration::from_secs(10));
    assert_eq!(defaults.review_versions, vec!["v1beta1".to_string()]);
}

#[test]
fn configurations_and_policies_are_exempt() {
    assert!(exempt(resource(GROUP, "validatingwebhookconfigurations")));
    assert!(exempt(resource(GROUP, "mutatingwebhookconfigurations")));
    assert!(exempt(resource(GROUP, "validatingadmissionpolicies")));
    assert!(!exempt(resource("", "pods")));
}

#[test]
fn denials_and_reviews_read_as_upstream_reads_them() {
    let e = denial(
        "d.example.com",
        &json!({"code": 403, "reason": "Forbidden", "message": "no"}),
    );
    assert_eq!(
        e.to_string(),
        r#"admission webhook "d.example.com" denied the request: no"#
    );
    assert_eq!(e.code(), 403);
    assert_eq!(e.status()["reason"], "Forbidden");
    let bare = denial("d.example.com", &json!({"code": 200}));
    assert_eq!(
        bare.to_string(),
        r#"admission webhook "d.example.com" denied the request without explanation"#
    );
    assert_eq!(bare.code(), 400, "a refusal is never below 400");
    let by_reason = denial("d", &json!({"reason": "Invalid"}));
    assert_eq!(
        by_reason.to_string(),
        r#"admission webhook "d" denied the request: Invalid"#
    );
    let sent = json!({"apiVersion": "admission.k8s.io/v1"});
    let wrong_uid = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "response": {"uid": "other", "allowed": true}});
    assert_eq!(
        answer(&sent, wrong_uid, "mine").err().unwrap(),
        r#"received invalid webhook response: expected response.uid="mine", got "other""#
    );
    let untyped_patch = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "response": {"uid": "u", "allowed": true, "patch": "W10="}});
    assert!(
        answer(&sent, untyped_patch, "u")
            .err()
            .unwrap()
            .contains("response.patch but not response.patchType")
    );
}

#[test]
fn an_equivalent_match_names_the_version_to_send() {
    let deployments = resource("apps", "deployments");
    let create = attrs(deployments, Operation::Create, "");
    let hook = read_hook(
        &json!({"name": "h", "rules": [{"operations": ["CREATE"], "apiGroups": ["apps"],
            "apiVersions": ["v1beta1"], "resources": ["deployments"]}]}),
        false,
        false,
    );
    assert_eq!(hook.equivalent_version(&create), Some("v1beta1"));
    let own = read_hook(
        &json!({"name": "h", "rules": [{"operations": ["CREATE"], "apiGroups": ["apps"],
            "apiVersions": ["v1beta1", "v1"], "resources": ["deployments"]}]}),
        false,
        false,
    );
    assert_eq!(own.equivalent_version(&create), None);
}
