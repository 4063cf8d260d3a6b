//! SelfSubjectRulesReview output.

use super::*;

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
