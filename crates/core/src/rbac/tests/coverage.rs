//! Property: what escalation prevention calls covered is never more than the owner may do.

use proptest::prelude::*;

use super::super::rules;
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
