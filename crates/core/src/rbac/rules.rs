//! Matching one request against one `PolicyRule`, and comparing rule sets (which rules one set
//! lacks to cover another), as upstream's `evaluation_helpers.go` and `policy_comparator.go`.

use k8s_openapi::api::rbac::v1::PolicyRule;

use super::Attributes;
use super::go_format::quote_list;

const ALL: &str = "*";

fn strings(list: &Option<Vec<String>>) -> &[String] {
    list.as_deref().unwrap_or(&[])
}

/// Whether `rule` allows the request: verb, API group, `resource[/subresource]` and object name
/// for resource requests; verb and URL (exact, `*`, or a `prefix*`) for non-resource ones.
pub fn rule_allows(a: &Attributes, rule: &PolicyRule) -> bool {
    if a.resource_request {
        verb_matches(rule, &a.verb)
            && api_group_matches(rule, &a.api_group)
            && resource_matches(rule, &a.resource, &a.subresource)
            && resource_name_matches(rule, &a.name)
    } else {
        verb_matches(rule, &a.verb) && non_resource_url_matches(rule, &a.path)
    }
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == ALL || v == verb)
}

fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    strings(&rule.api_groups)
        .iter()
        .any(|g| g == ALL || g == group)
}

/// `pods`, `pods/log`, `*` and `*/log` forms; a rule for `pods` does not cover `pods/log`.
fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    strings(&rule.resources).iter().any(|r| {
        if r == ALL {
            return true;
        }
        if subresource.is_empty() {
            return r == resource;
        }
        match r.split_once('/') {
            Some((rule_resource, rule_subresource)) => {
                rule_subresource == subresource
                    && (rule_resource == resource || rule_resource == ALL)
            }
            None => false,
        }
    })
}

fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    let names = strings(&rule.resource_names);
    names.is_empty() || names.iter().any(|n| n == name)
}

fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    strings(&rule.non_resource_urls)
        .iter()
        .any(|u| non_resource_url_covers(u, path))
}

fn non_resource_url_covers(owner: &str, path: &str) -> bool {
    if owner == ALL || owner == path {
        return true;
    }
    match owner.strip_suffix('*') {
        Some(_) => path.starts_with(owner.trim_end_matches('*')),
        None => false,
    }
}

fn single(s: &str) -> Option<Vec<String>> {
    Some(vec![s.to_string()])
}

/// Splits a rule into rules of one group, resource, verb and name each (and one URL and verb
/// each for non-resource URLs), so that each piece is covered, or not, by a single owner rule.
fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut pieces = Vec::new();
    for group in strings(&rule.api_groups) {
        for resource in strings(&rule.resources) {
            for verb in &rule.verbs {
                let names = strings(&rule.resource_names);
                if names.is_empty() {
                    pieces.push(PolicyRule {
                        api_groups: single(group),
                        resources: single(resource),
                        verbs: vec![verb.clone()],
                        ..PolicyRule::default()
                    });
                } else {
                    for name in names {
                        pieces.push(PolicyRule {
                            api_groups: single(group),
                            resources: single(resource),
                            verbs: vec![verb.clone()],
                            resource_names: single(name),
                            ..PolicyRule::default()
                        });
                    }
                }
            }
        }
    }
    for url in strings(&rule.non_resource_urls) {
        for verb in &rule.verbs {
            pieces.push(PolicyRule {
                non_resource_urls: single(url),
                verbs: vec![verb.clone()],
                ..PolicyRule::default()
            });
        }
    }
    pieces
}

fn has(set: &[String], item: &str) -> bool {
    set.iter().any(|s| s == item)
}

fn has_all(set: &[String], items: &[String]) -> bool {
    items.iter().all(|i| has(set, i))
}

fn resources_cover(owner: &[String], wanted: &[String]) -> bool {
    if has(owner, ALL) || has_all(owner, wanted) {
        return true;
    }
    wanted.iter().all(|path| {
        if has(owner, path) {
            return true;
        }
        match path.split_once('/') {
            Some((_, subresource)) => has(owner, &format!("*/{subresource}")),
            None => false,
        }
    })
}

/// Whether `owner` covers `piece` (a rule from [`breakdown`]).
fn rule_covers(owner: &PolicyRule, piece: &PolicyRule) -> bool {
    let owner_names = strings(&owner.resource_names);
    let piece_names = strings(&piece.resource_names);
    let names_match =
        owner_names.is_empty() || (!piece_names.is_empty() && has_all(owner_names, piece_names));
    (has(&owner.verbs, ALL) || has_all(&owner.verbs, &piece.verbs))
        && (has(strings(&owner.api_groups), ALL)
            || has_all(strings(&owner.api_groups), strings(&piece.api_groups)))
        && resources_cover(strings(&owner.resources), strings(&piece.resources))
        && strings(&piece.non_resource_urls).iter().all(|path| {
            strings(&owner.non_resource_urls)
                .iter()
                .any(|o| non_resource_url_covers(o, path))
        })
        && names_match
}

/// The pieces of `wanted` that no rule in `owner` covers (empty: `owner` covers `wanted`).
pub(crate) fn uncovered(owner: &[PolicyRule], wanted: &[PolicyRule]) -> Vec<PolicyRule> {
    wanted
        .iter()
        .flat_map(breakdown)
        .filter(|piece| !owner.iter().any(|o| rule_covers(o, piece)))
        .collect()
}

/// Joins rules of a single group and resource, and nothing else, that differ only by verb.
pub(crate) fn compact(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut compacted = Vec::with_capacity(rules.len());
    let mut simple: Vec<((String, String), PolicyRule)> = Vec::new();
    for rule in rules {
        let groups = strings(&rule.api_groups);
        let resources = strings(&rule.resources);
        let is_simple = rule.resource_names.as_ref().is_none_or(Vec::is_empty)
            && rule.non_resource_urls.as_ref().is_none_or(Vec::is_empty)
            && groups.len() == 1
            && resources.len() == 1;
        if !is_simple {
            compacted.push(rule);
            continue;
        }
        let key = (groups[0].clone(), resources[0].clone());
        match simple.iter_mut().find(|(k, _)| *k == key) {
            Some((_, existing)) => existing.verbs.extend(rule.verbs),
            None => simple.push((key, rule)),
        }
    }
    compacted.extend(simple.into_iter().map(|(_, rule)| rule));
    compacted
}

/// `rbacv1helpers.CompactString`: `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`.
pub(crate) fn compact_string(rule: &PolicyRule) -> String {
    let mut parts = Vec::new();
    let fields = [
        ("APIGroups", strings(&rule.api_groups)),
        ("Resources", strings(&rule.resources)),
        ("NonResourceURLs", strings(&rule.non_resource_urls)),
        ("ResourceNames", strings(&rule.resource_names)),
        ("Verbs", rule.verbs.as_slice()),
    ];
    for (label, values) in fields {
        if !values.is_empty() {
            parts.push(format!("{label}:{}", quote_list(values)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}
