use proptest::prelude::*;

use super::*;
use crate::profile::{FargateProfile, ProfileStatus, Selector};
use crate::test_pods::labelled;

fn index(profiles: Vec<FargateProfile>) -> ProfileIndex {
    ProfileIndex::new(profiles)
}

fn guide_profiles() -> ProfileIndex {
    index(vec![
        FargateProfile::active(
            "fp-default",
            vec![
                Selector::new("default", &[]),
                Selector::new("kube-system", &[("k8s-app", "kube-dns")]),
            ],
        ),
        FargateProfile::active(
            "fp-applications",
            vec![
                Selector::new("production", &[("compute", "fargate")]),
                Selector::new("staging", &[("compute", "fargate")]),
            ],
        ),
        FargateProfile::active("fp-batch", vec![Selector::new("batch-jobs", &[])]),
    ])
}

fn place(
    idx: &ProfileIndex,
    ns: &str,
    labels: &[(&str, &str)],
    rule: SelectionRule,
) -> Option<String> {
    let pod = labelled(ns, labels, &[]);
    idx.place(&PodIdentity::of(&pod), rule)
        .profile_name()
        .map(str::to_string)
}

#[test]
fn namespace_and_all_labels() {
    let idx = guide_profiles();
    let n = SelectionRule::Name;
    assert_eq!(
        place(&idx, "default", &[], n).as_deref(),
        Some("fp-default")
    );
    assert_eq!(
        place(&idx, "default", &[("any", "thing")], n).as_deref(),
        Some("fp-default")
    );
    assert_eq!(
        place(&idx, "kube-system", &[("k8s-app", "kube-dns")], n).as_deref(),
        Some("fp-default")
    );
    assert_eq!(
        place(&idx, "kube-system", &[("k8s-app", "metrics")], n),
        None
    );
    assert_eq!(
        place(
            &idx,
            "production",
            &[("compute", "fargate"), ("app", "x")],
            n
        )
        .as_deref(),
        Some("fp-applications")
    );
    assert_eq!(place(&idx, "production", &[("app", "x")], n), None);
    assert_eq!(
        place(&idx, "batch-jobs", &[], n).as_deref(),
        Some("fp-batch")
    );
    assert_eq!(place(&idx, "batch", &[], n), None);
}

#[test]
fn wildcards_in_namespace_keys_and_values() {
    let idx = index(vec![
        FargateProfile::active("a", vec![Selector::new("team-*", &[])]),
        FargateProfile::active("b", vec![Selector::new("env-?", &[("app*", "web-?")])]),
    ]);
    let n = SelectionRule::Name;
    assert_eq!(place(&idx, "team-", &[], n).as_deref(), Some("a"));
    assert_eq!(place(&idx, "team-payments", &[], n).as_deref(), Some("a"));
    assert_eq!(
        place(&idx, "env-1", &[("app.kubernetes.io/name", "web-1")], n).as_deref(),
        Some("b")
    );
    assert_eq!(
        place(&idx, "env-1", &[("app.kubernetes.io/name", "web-10")], n),
        None
    );
    assert_eq!(place(&idx, "env-12", &[("app", "web-1")], n), None);
    assert_eq!(place(&idx, "env-1", &[("other", "web-1")], n), None);
}

#[test]
fn only_active_profiles_match() {
    let mut creating = FargateProfile::active("a-creating", vec![Selector::new("default", &[])]);
    creating.status = ProfileStatus::Creating;
    let idx = index(vec![
        creating,
        FargateProfile::active("b", vec![Selector::new("default", &[])]),
    ]);
    assert_eq!(
        place(&idx, "default", &[], SelectionRule::Name).as_deref(),
        Some("b")
    );
}

fn overlapping() -> ProfileIndex {
    // beta-workload and prod-workload from the AWS docs, plus a more specific third.
    index(vec![
        FargateProfile::active(
            "prod-workload",
            vec![Selector::new("apps", &[("tier", "web"), ("team", "a")])],
        ),
        FargateProfile::active("beta-workload", vec![Selector::new("apps", &[])]),
        FargateProfile::active("zeta", vec![Selector::new("app?", &[("tier", "web")])]),
    ])
}

#[test]
fn several_matches_by_rule() {
    let idx = overlapping();
    let labels = [("tier", "web"), ("team", "a")];
    assert_eq!(
        place(&idx, "apps", &labels, SelectionRule::Name).as_deref(),
        Some("beta-workload")
    );
    assert_eq!(
        place(&idx, "apps", &labels, SelectionRule::MostSpecific).as_deref(),
        Some("prod-workload")
    );
    let random = place(&idx, "apps", &labels, SelectionRule::Random).unwrap();
    assert!(["beta-workload", "prod-workload", "zeta"].contains(&random.as_str()));
    assert_eq!(
        place(&idx, "apps", &labels, SelectionRule::Random).unwrap(),
        random,
        "deterministic"
    );
    let pod = labelled("apps", &labels, &[]);
    let names: Vec<&str> = idx
        .matching_profiles(&PodIdentity::of(&pod))
        .iter()
        .map(|m| m.profile.name.as_str())
        .collect();
    assert_eq!(names, ["beta-workload", "prod-workload", "zeta"]);
}

#[test]
fn random_spreads_over_pods() {
    let idx = overlapping();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..50 {
        let mut pod = labelled("apps", &[("tier", "web")], &[]);
        pod.metadata.name = Some(format!("pod-{i}"));
        if let Some(name) = idx
            .place(&PodIdentity::of(&pod), SelectionRule::Random)
            .profile_name()
        {
            seen.insert(name.to_string());
        }
    }
    assert_eq!(
        seen.len(),
        2,
        "beta-workload and zeta both get pods: {seen:?}"
    );
}

#[test]
fn pinning_label_restricts_the_choice() {
    let idx = overlapping();
    let labels = [("tier", "web"), ("team", "a"), (PROFILE_LABEL, "zeta")];
    assert_eq!(
        place(&idx, "apps", &labels, SelectionRule::Name).as_deref(),
        Some("zeta")
    );
    let pod = labelled("apps", &[(PROFILE_LABEL, "prod-workload")], &[]);
    assert_eq!(
        idx.place(&PodIdentity::of(&pod), SelectionRule::Name),
        Placement::PinnedProfileUnusable {
            profile: "prod-workload".to_string(),
            problem: PinProblem::NoSelectorMatches
        },
        "the pod must still match one of the pinned profile's selectors"
    );
    let pod = labelled("apps", &[(PROFILE_LABEL, "nope")], &[]);
    assert!(matches!(
        idx.place(&PodIdentity::of(&pod), SelectionRule::Name),
        Placement::PinnedProfileUnusable {
            problem: PinProblem::UnknownProfile,
            ..
        }
    ));
    let mut deleting = FargateProfile::active("d", vec![Selector::new("apps", &[])]);
    deleting.status = ProfileStatus::Deleting;
    let idx = index(vec![deleting]);
    let pod = labelled("apps", &[(PROFILE_LABEL, "d")], &[]);
    assert_eq!(
        idx.place(&PodIdentity::of(&pod), SelectionRule::Name),
        Placement::PinnedProfileUnusable {
            profile: "d".to_string(),
            problem: PinProblem::NotActive(ProfileStatus::Deleting)
        }
    );
}

#[test]
fn compute_type_ec2_annotation_opts_out() {
    let idx = guide_profiles();
    let coredns = labelled(
        "kube-system",
        &[("k8s-app", "kube-dns")],
        &[(COMPUTE_TYPE_ANNOTATION, "ec2")],
    );
    match idx.place(&PodIdentity::of(&coredns), SelectionRule::Name) {
        Placement::OptedOut { hidden: Some(m) } => assert_eq!(m.profile.name, "fp-default"),
        other => panic!("expected an opt-out hiding fp-default, got {other:?}"),
    }
    let fargate = labelled(
        "kube-system",
        &[("k8s-app", "kube-dns")],
        &[(COMPUTE_TYPE_ANNOTATION, "fargate")],
    );
    assert_eq!(
        idx.place(&PodIdentity::of(&fargate), SelectionRule::Name)
            .profile_name(),
        Some("fp-default"),
        "any other value falls through to matching"
    );
}

#[test]
fn nearest_selector_says_what_differs() {
    let idx = guide_profiles();
    let pod = labelled("production", &[("compute", "ec2")], &[]);
    let near = idx.nearest_selector(&PodIdentity::of(&pod)).unwrap();
    assert_eq!(
        near.to_string(),
        "nearest selector is profile fp-applications selector 1 (namespace=production,labels={compute=fargate}): \
         label compute is \"ec2\", the selector wants \"fargate\""
    );
    let pod = labelled("kube-system", &[], &[]);
    assert_eq!(
        idx.nearest_selector(&PodIdentity::of(&pod))
            .unwrap()
            .to_string(),
        "nearest selector is profile fp-default selector 2 (namespace=kube-system,labels={k8s-app=kube-dns}): \
         label k8s-app=kube-dns is missing"
    );
    let pod = labelled("prod", &[], &[]);
    let near = idx.nearest_selector(&PodIdentity::of(&pod)).unwrap();
    assert_eq!(near.differences.len(), 1);
    assert_eq!(
        near.differences[0].to_string(),
        "namespace is \"prod\", the selector wants \"batch-jobs\""
    );
    assert!(
        index(vec![])
            .nearest_selector(&PodIdentity::of(&pod))
            .is_none()
    );
}

#[test]
fn scales_past_literal_index_with_many_profiles() {
    let profiles: Vec<FargateProfile> = (0..1000)
        .map(|i| {
            FargateProfile::active(
                &format!("p{i:04}"),
                vec![Selector::new(&format!("ns-{i}"), &[("app", "x")])],
            )
        })
        .collect();
    let idx = index(profiles);
    assert_eq!(
        place(&idx, "ns-777", &[("app", "x")], SelectionRule::Name).as_deref(),
        Some("p0777")
    );
    assert_eq!(
        place(&idx, "ns-777", &[("app", "y")], SelectionRule::Name),
        None
    );
}

// ---- agreement with a naive reference implementation ----

/// Translate a Fargate pattern into an anchored regex: the obvious, independent way.
fn reference_glob(pattern: &str, text: &str) -> bool {
    let mut re = String::from("^");
    for c in pattern.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).unwrap().is_match(text)
}

fn reference_place(
    profiles: &[FargateProfile],
    ns: &str,
    labels: &BTreeMap<String, String>,
) -> Option<String> {
    let mut sorted: Vec<&FargateProfile> = profiles
        .iter()
        .filter(|p| p.status == ProfileStatus::Active)
        .collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    sorted
        .into_iter()
        .find(|p| {
            p.selectors.iter().any(|s| {
                reference_glob(&s.namespace, ns)
                    && s.labels.iter().all(|(k, v)| {
                        labels
                            .iter()
                            .any(|(lk, lv)| reference_glob(k, lk) && reference_glob(v, lv))
                    })
            })
        })
        .map(|p| p.name.clone())
}

fn pattern_strategy() -> impl Strategy<Value = String> {
    prop::string::string_regex("[ab*?é]{0,4}").unwrap()
}

fn text_strategy() -> impl Strategy<Value = String> {
    prop::string::string_regex("[abé]{0,4}").unwrap()
}

fn profile_strategy() -> impl Strategy<Value = FargateProfile> {
    let selector = (
        pattern_strategy(),
        prop::collection::btree_map(pattern_strategy(), pattern_strategy(), 0..3),
    )
        .prop_map(|(namespace, labels)| Selector { namespace, labels });
    (
        "[a-d]{1,2}",
        prop::collection::vec(selector, 1..4),
        prop::bool::weighted(0.85),
    )
        .prop_map(|(name, selectors, active)| {
            let mut p = FargateProfile::active(&name, selectors);
            if !active {
                p.status = ProfileStatus::Creating;
            }
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn glob_agrees_with_regex(pattern in pattern_strategy(), text in text_strategy()) {
        prop_assert_eq!(crate::glob::glob_match(&pattern, &text), reference_glob(&pattern, &text));
    }

    #[test]
    fn index_agrees_with_naive_scan(
        profiles in prop::collection::vec(profile_strategy(), 0..6),
        ns in text_strategy(),
        labels in prop::collection::btree_map(text_strategy(), text_strategy(), 0..3),
    ) {
        // Duplicate names are impossible within one cluster; keep the first of each.
        let mut seen = std::collections::BTreeSet::new();
        let profiles: Vec<FargateProfile> = profiles.into_iter().filter(|p| seen.insert(p.name.clone())).collect();
        let idx = ProfileIndex::new(profiles.clone());
        let pod_labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let pod = labelled(&ns, &pod_labels, &[]);
        let got = idx.place(&PodIdentity::of(&pod), SelectionRule::Name).profile_name().map(str::to_string);
        prop_assert_eq!(got, reference_place(&profiles, &ns, &labels));
        // Every matching profile is reported, and the most-specific choice is among them.
        let all: Vec<String> = idx.matching_profiles(&PodIdentity::of(&pod)).iter().map(|m| m.profile.name.clone()).collect();
        prop_assert_eq!(all.first().cloned(), reference_place(&profiles, &ns, &labels));
        if let Some(ms) = idx.place(&PodIdentity::of(&pod), SelectionRule::MostSpecific).profile_name() {
            prop_assert!(all.iter().any(|n| n == ms));
        } else {
            prop_assert!(all.is_empty());
        }
    }
}
