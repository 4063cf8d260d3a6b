//! The Fargate policy of localfargate: which profile takes a pod, whether Fargate admits it, what
//! size it gets and what that costs. Pure functions over data; no I/O, no clocks, no randomness.

pub mod access_entries;
pub mod admission;
pub mod cron;
pub mod eks;
pub mod eks_catalog;
pub mod fargate_spot;
pub mod glob;
pub mod go_base64;
pub mod go_duration;
pub mod go_format;
pub mod go_time;
pub mod iam_policy;
pub mod logging;
pub mod match_conditions;
pub mod matching;
pub mod nodegroup;
pub mod pki;
pub mod plan;
pub mod pod;
pub mod pricing;
pub mod profile;
pub mod quantity;
pub mod rbac;
pub mod security_groups;
pub mod selectors;
pub mod service_account_token;
pub mod sigv4;
pub mod sizing;
pub mod stored_credentials;
pub mod usage;
pub mod validation;

#[cfg(test)]
mod test_pods;

/// Pod label naming the profile that placed it; set by the webhook, or by users to pin a profile.
pub const PROFILE_LABEL: &str = "eks.amazonaws.com/fargate-profile";
/// Pod annotation; the value `ec2` keeps a pod off Fargate (CoreDNS ships with it).
pub const COMPUTE_TYPE_ANNOTATION: &str = "eks.amazonaws.com/compute-type";
/// Pod annotation with the provisioned size, e.g. `0.25vCPU 0.5GB`.
pub const CAPACITY_ANNOTATION: &str = "CapacityProvisioned";
/// Pod annotation with the logging status, e.g. `LoggingDisabled: LOGGING_CONFIGMAP_NOT_FOUND`.
pub const LOGGING_ANNOTATION: &str = "Logging";
pub const FARGATE_SCHEDULER: &str = "fargate-scheduler";
pub const FARGATE_PRIORITY_CLASS: &str = "system-node-critical";
pub const FARGATE_PRIORITY: i32 = 2_000_001_000;

pub use matching::{Placement, PodIdentity, ProfileIndex, SelectionRule};
pub use pod::PodFacts;
pub use profile::{FargateProfile, ProfileStatus, Selector};
pub use sizing::{FargateSize, PodRequests};
