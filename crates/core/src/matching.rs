//! Which Fargate profile, if any, takes a pod.
//!
//! Rules (fargate-behavior.md §1.3–§1.4): only ACTIVE profiles take pods; a selector matches when the
//! pod's namespace matches and the pod carries every label the selector lists (`*`/`?` wildcards in
//! all three places); a pod annotated `eks.amazonaws.com/compute-type: ec2` never goes to Fargate; the
//! pod label `eks.amazonaws.com/fargate-profile: NAME` restricts the choice to that profile. When
//! several profiles match, a [`SelectionRule`] decides.
//!
//! Selectors are indexed by literal namespace, so a decision costs the same with 10 profiles as with
//! 1,000 unless many selectors use namespace wildcards.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::str::FromStr;

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

use crate::glob::Pattern;
use crate::profile::{FargateProfile, ProfileStatus, Selector};
use crate::{COMPUTE_TYPE_ANNOTATION, PROFILE_LABEL};

/// How to choose when several profiles match a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelectionRule {
    /// The current AWS documentation: the first profile in alphanumeric order of name.
    #[default]
    Name,
    /// Older AWS documentation and the Knowledge Center: any of them. Deterministic per pod
    /// here (a hash of namespace and name), so repeated runs agree.
    Random,
    /// Some published guides: the matching selector with the most labels wins, then name order.
    MostSpecific,
}

impl SelectionRule {
    pub const ALL: [SelectionRule; 3] = [
        SelectionRule::Name,
        SelectionRule::Random,
        SelectionRule::MostSpecific,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SelectionRule::Name => "name",
            SelectionRule::Random => "random",
            SelectionRule::MostSpecific => "most-specific",
        }
    }
}

impl fmt::Display for SelectionRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SelectionRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "name" => Ok(SelectionRule::Name),
            "random" => Ok(SelectionRule::Random),
            "most-specific" => Ok(SelectionRule::MostSpecific),
            other => Err(format!(
                "unknown selection rule {other:?}: expected name, random or most-specific"
            )),
        }
    }
}

/// What matching needs to know about a pod.
#[derive(Debug, Clone, Copy)]
pub struct PodIdentity<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub annotations: &'a BTreeMap<String, String>,
}

static EMPTY: BTreeMap<String, String> = BTreeMap::new();

impl<'a> PodIdentity<'a> {
    /// A pod's identity; a pod without a namespace is in `default`, as the API server would put it.
    pub fn of(pod: &'a Pod) -> Self {
        let meta = &pod.metadata;
        PodIdentity {
            namespace: meta.namespace.as_deref().unwrap_or("default"),
            name: meta
                .name
                .as_deref()
                .or(meta.generate_name.as_deref())
                .unwrap_or(""),
            labels: meta.labels.as_ref().unwrap_or(&EMPTY),
            annotations: meta.annotations.as_ref().unwrap_or(&EMPTY),
        }
    }

    fn opted_out_of_fargate(&self) -> bool {
        self.annotations
            .get(COMPUTE_TYPE_ANNOTATION)
            .is_some_and(|v| v == "ec2")
    }
}

#[derive(Debug, Clone)]
struct CompiledSelector {
    /// Position of the profile in name order.
    rank: u32,
    /// Position of the selector within its profile.
    index: u16,
    namespace: Pattern,
    labels: Vec<(Pattern, Pattern)>,
}

impl CompiledSelector {
    fn labels_match(&self, pod_labels: &BTreeMap<String, String>) -> bool {
        self.labels.iter().all(|(key, value)| match key {
            Pattern::Literal(k) => pod_labels.get(k).is_some_and(|v| value.matches(v)),
            Pattern::Glob(_) => pod_labels
                .iter()
                .any(|(k, v)| key.matches(k) && value.matches(v)),
        })
    }

    fn matches(&self, pod: &PodIdentity<'_>) -> bool {
        self.namespace.matches(pod.namespace) && self.labels_match(pod.labels)
    }
}

/// A profile and the selector of it that matched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match<'i> {
    pub profile: &'i FargateProfile,
    pub selector: usize,
}

impl Match<'_> {
    pub fn selector(&self) -> &Selector {
        &self.profile.selectors[self.selector]
    }
}

/// Why a pod that pins a profile with the `eks.amazonaws.com/fargate-profile` label is not placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinProblem {
    UnknownProfile,
    NotActive(ProfileStatus),
    NoSelectorMatches,
}

/// The outcome of matching one pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement<'i> {
    /// The Fargate webhook mutates the pod for this profile.
    Fargate(Match<'i>),
    /// The pod carries `eks.amazonaws.com/compute-type: ec2`; `hidden` is what would have matched.
    OptedOut { hidden: Option<Match<'i>> },
    /// The pod pins a profile it cannot use.
    PinnedProfileUnusable {
        profile: String,
        problem: PinProblem,
    },
    /// No ACTIVE profile has a selector matching the pod.
    NoMatch,
}

impl Placement<'_> {
    pub fn profile_name(&self) -> Option<&str> {
        match self {
            Placement::Fargate(m) => Some(&m.profile.name),
            _ => None,
        }
    }
}

/// One difference between a pod and a selector it missed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    Namespace {
        pod: String,
        selector: String,
    },
    MissingLabel {
        key: String,
        value: String,
    },
    LabelValue {
        key: String,
        pod: String,
        selector: String,
    },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::Namespace { pod, selector } => {
                write!(f, "namespace is {pod:?}, the selector wants {selector:?}")
            }
            Difference::MissingLabel { key, value } => {
                write!(f, "label {key}={value} is missing")
            }
            Difference::LabelValue { key, pod, selector } => {
                write!(f, "label {key} is {pod:?}, the selector wants {selector:?}")
            }
        }
    }
}

/// The selector a pod came closest to matching, and exactly what differs.
#[derive(Debug, Clone, PartialEq)]
pub struct NearMiss<'i> {
    pub profile: &'i FargateProfile,
    pub selector: usize,
    pub differences: Vec<Difference>,
}

impl fmt::Display for NearMiss<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let diffs: Vec<String> = self.differences.iter().map(|d| d.to_string()).collect();
        write!(
            f,
            "nearest selector is profile {} selector {} ({}): {}",
            self.profile.name,
            self.selector + 1,
            self.profile.selectors[self.selector],
            diffs.join("; ")
        )
    }
}

/// The profiles of one cluster, indexed for matching.
#[derive(Debug, Clone, Default)]
pub struct ProfileIndex {
    /// All profiles, in alphanumeric order of name (their rank).
    profiles: Vec<FargateProfile>,
    by_name: HashMap<String, u32, BuildHasherDefault<Fnv1a>>,
    selectors: Vec<CompiledSelector>,
    /// Selectors of ACTIVE profiles with a literal namespace, by namespace, in rank order.
    by_namespace: HashMap<String, Vec<u32>, BuildHasherDefault<Fnv1a>>,
    /// Selectors of ACTIVE profiles whose namespace is a pattern, in rank order.
    wildcard_namespace: Vec<u32>,
}

impl ProfileIndex {
    pub fn new(profiles: impl IntoIterator<Item = FargateProfile>) -> Self {
        let mut profiles: Vec<FargateProfile> = profiles.into_iter().collect();
        // Byte order of the name: "alphanumeric sorting" in the AWS docs.
        profiles.sort_by(|a, b| a.name.cmp(&b.name));
        let mut index = ProfileIndex::default();
        for (rank, profile) in profiles.iter().enumerate() {
            let rank = rank as u32;
            index.by_name.insert(profile.name.clone(), rank);
            if profile.status != ProfileStatus::Active {
                continue;
            }
            for (i, selector) in profile.selectors.iter().enumerate() {
                let compiled = CompiledSelector {
                    rank,
                    index: i as u16,
                    namespace: Pattern::new(&selector.namespace),
                    labels: selector
                        .labels
                        .iter()
                        .map(|(k, v)| (Pattern::new(k), Pattern::new(v)))
                        .collect(),
                };
                let id = index.selectors.len() as u32;
                match &compiled.namespace {
                    Pattern::Literal(ns) => {
                        index.by_namespace.entry(ns.clone()).or_default().push(id)
                    }
                    Pattern::Glob(_) => index.wildcard_namespace.push(id),
                }
                index.selectors.push(compiled);
            }
        }
        index.profiles = profiles;
        index
    }

    pub fn profiles(&self) -> &[FargateProfile] {
        &self.profiles
    }

    pub fn get(&self, name: &str) -> Option<&FargateProfile> {
        self.by_name.get(name).map(|&r| &self.profiles[r as usize])
    }

    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }

    fn to_match(&self, selector: &CompiledSelector) -> Match<'_> {
        Match {
            profile: &self.profiles[selector.rank as usize],
            selector: usize::from(selector.index),
        }
    }

    /// Selectors that could match a pod in `namespace`, each list in rank order.
    fn candidates(&self, namespace: &str) -> [&[u32]; 2] {
        let literal = self
            .by_namespace
            .get(namespace)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        [literal, &self.wildcard_namespace]
    }

    /// Decide where a pod goes.
    pub fn place(&self, pod: &PodIdentity<'_>, rule: SelectionRule) -> Placement<'_> {
        if pod.opted_out_of_fargate() {
            return Placement::OptedOut {
                hidden: self.choose(pod, rule),
            };
        }
        if let Some(pinned) = pod.labels.get(PROFILE_LABEL) {
            return self.place_pinned(pod, pinned);
        }
        match self.choose(pod, rule) {
            Some(m) => Placement::Fargate(m),
            None => Placement::NoMatch,
        }
    }

    fn place_pinned(&self, pod: &PodIdentity<'_>, name: &str) -> Placement<'_> {
        let unusable = |problem| Placement::PinnedProfileUnusable {
            profile: name.to_string(),
            problem,
        };
        let Some(&rank) = self.by_name.get(name) else {
            return unusable(PinProblem::UnknownProfile);
        };
        let profile = &self.profiles[rank as usize];
        if profile.status != ProfileStatus::Active {
            return unusable(PinProblem::NotActive(profile.status));
        }
        let [literal, wildcard] = self.candidates(pod.namespace);
        literal
            .iter()
            .chain(wildcard)
            .map(|&id| &self.selectors[id as usize])
            .filter(|s| s.rank == rank && s.matches(pod))
            .min_by_key(|s| s.index)
            .map(|s| Placement::Fargate(self.to_match(s)))
            .unwrap_or_else(|| unusable(PinProblem::NoSelectorMatches))
    }

    fn choose(&self, pod: &PodIdentity<'_>, rule: SelectionRule) -> Option<Match<'_>> {
        match rule {
            SelectionRule::Name => self.first_by_name(pod),
            SelectionRule::MostSpecific => self.most_specific(pod),
            SelectionRule::Random => {
                let all = self.matching_profiles(pod);
                if all.is_empty() {
                    return None;
                }
                let pick = fnv1a(&[pod.namespace, "/", pod.name]) as usize % all.len();
                Some(all[pick])
            }
        }
    }

    fn first_by_name(&self, pod: &PodIdentity<'_>) -> Option<Match<'_>> {
        let [literal, wildcard] = self.candidates(pod.namespace);
        // Both lists are in rank order, so the first match of each is its best.
        let first = |list: &[u32], below: u32| {
            list.iter()
                .map(|&id| &self.selectors[id as usize])
                .take_while(|s| s.rank <= below)
                .find(|s| s.matches(pod))
        };
        let from_literal = first(literal, u32::MAX);
        let bound = from_literal.map_or(u32::MAX, |s| s.rank);
        let best = match first(wildcard, bound) {
            Some(w) => match from_literal {
                // Same profile through both lists: the lower selector position reports the match.
                Some(l) if l.rank < w.rank || (l.rank == w.rank && l.index < w.index) => l,
                _ => w,
            },
            None => from_literal?,
        };
        Some(self.to_match(best))
    }

    fn most_specific(&self, pod: &PodIdentity<'_>) -> Option<Match<'_>> {
        let [literal, wildcard] = self.candidates(pod.namespace);
        literal
            .iter()
            .chain(wildcard)
            .map(|&id| &self.selectors[id as usize])
            .filter(|s| s.matches(pod))
            // Most labels first, then name order, then selector position.
            .min_by_key(|s| (std::cmp::Reverse(s.labels.len()), s.rank, s.index))
            .map(|s| self.to_match(s))
    }

    /// Every ACTIVE profile matching the pod, in name order, each with its first matching selector.
    /// Ignores the opt-out annotation and the pinning label: this is what the selectors say.
    pub fn matching_profiles(&self, pod: &PodIdentity<'_>) -> Vec<Match<'_>> {
        let [literal, wildcard] = self.candidates(pod.namespace);
        let mut found: Vec<&CompiledSelector> = literal
            .iter()
            .chain(wildcard)
            .map(|&id| &self.selectors[id as usize])
            .filter(|s| s.matches(pod))
            .collect();
        found.sort_by_key(|s| (s.rank, s.index));
        found.dedup_by_key(|s| s.rank);
        found.into_iter().map(|s| self.to_match(s)).collect()
    }

    /// The selector of an ACTIVE profile the pod came closest to matching: one in the pod's own
    /// namespace first, then fewest differences, then name order. `None` when there are no ACTIVE
    /// selectors.
    pub fn nearest_selector(&self, pod: &PodIdentity<'_>) -> Option<NearMiss<'_>> {
        self.selectors
            .iter()
            .map(|s| (s, differences(s, pod)))
            .min_by_key(|(s, d)| {
                let other_namespace = matches!(d.first(), Some(Difference::Namespace { .. }));
                (other_namespace, d.len(), s.rank, s.index)
            })
            .map(|(s, differences)| NearMiss {
                profile: &self.profiles[s.rank as usize],
                selector: usize::from(s.index),
                differences,
            })
    }
}

fn differences(selector: &CompiledSelector, pod: &PodIdentity<'_>) -> Vec<Difference> {
    let mut out = Vec::new();
    if !selector.namespace.matches(pod.namespace) {
        out.push(Difference::Namespace {
            pod: pod.namespace.to_string(),
            selector: selector.namespace.as_str().to_string(),
        });
    }
    for (key, value) in &selector.labels {
        let with_key: Vec<(&String, &String)> =
            pod.labels.iter().filter(|(k, _)| key.matches(k)).collect();
        if with_key.iter().any(|(_, v)| value.matches(v)) {
            continue;
        }
        match with_key.first() {
            Some((k, v)) => out.push(Difference::LabelValue {
                key: (*k).clone(),
                pod: (*v).clone(),
                selector: value.as_str().to_string(),
            }),
            None => out.push(Difference::MissingLabel {
                key: key.as_str().to_string(),
                value: value.as_str().to_string(),
            }),
        }
    }
    out
}

/// FNV-1a: a small, stable hash. Stable across runs for the deterministic `random` rule, and
/// several times faster than SipHash on short namespaces. The maps it keys hold only profile
/// selectors, which cluster administrators write, so collision flooding is not a concern.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// FNV-1a of the parts, one after the other.
pub fn fnv1a(parts: &[&str]) -> u64 {
    let mut hasher = Fnv1a::default();
    for part in parts {
        hasher.write(part.as_bytes());
    }
    hasher.finish()
}

#[cfg(test)]
mod tests;
