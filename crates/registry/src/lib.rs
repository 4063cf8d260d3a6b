//! The Kubernetes API server's registry, shared by the HTTP front end and every reconciler: which
//! resources exist ([`resources`]), what storing one means ([`objects`]: names, uids,
//! generations, optimistic concurrency, graceful and finalizer-held deletion), one strategy per
//! kind ([`strategy`]: defaults, initial status, update rules, deletion; [`defaults`] holds the
//! defaulting they share), objects with typed metadata ([`meta`]), Fargate's mutating webhook on pod creation
//! ([`admission`]), `pods/binding` ([`binding`]), service-account token signing
//! ([`service_accounts`]) and the resource metrics API's data ([`metrics`]). Everything writes
//! through here, so a pod a ReplicaSet controller makes is admitted exactly like one
//! `kubectl apply` makes.

pub mod admission;
pub mod binding;
pub mod bootstrap;
pub mod component_status;
pub mod custom;
pub mod defaults;
pub mod disruption;
pub mod error;
pub mod events_v1;
pub mod legacy_tokens;
pub mod limit_ranger;
pub mod meta;
pub mod metrics;
pub mod node_ports;
pub mod objects;
pub mod pod_identity_webhook;
pub mod profile_index;
pub mod quota;
pub mod resources;
pub mod service_account_admission;
pub mod service_accounts;
pub mod service_ips;
pub mod settings;
pub mod strategy;
pub mod typed;
pub mod webhooks;

pub use error::KubeError;
pub use objects::Objects;
pub use settings::Settings;
