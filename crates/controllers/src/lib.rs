//! Reconcilers that move stored resources toward what their records say, and the Kubernetes object
//! semantics they and the API front end share.

pub mod admission;
pub mod cluster;
pub use localfargate_core::cron;
pub mod default_scheduler;
pub mod defaults;
pub mod eks_lifecycle;
pub mod events;
pub mod eviction;
pub mod fargate_scheduler;
pub mod lifecycle;
pub mod metrics;
pub mod node_agent;
pub mod objects;
pub mod pod_spec;
pub mod scheduling;
pub mod settings;
pub mod volume_sync;
pub mod wake;
pub mod workloads;

pub use objects::{KubeError, Objects};
pub use settings::Settings;
