//! Reconcilers that move stored resources toward what their records say. They read and write
//! Kubernetes objects through the registry (`localfargate_registry`), as the API front end does.

pub mod autoscaler;
pub mod aws_endpoint_relay;
pub mod cluster;
pub mod context;
pub mod coredns_seed;
pub use localfargate_core::cron;
pub mod default_scheduler;
pub mod definitions;
pub mod disruption;
pub mod eks_addons;
pub mod eks_lifecycle;
pub mod endpoints;
pub mod events;
pub mod eviction;
pub mod fargate_scheduler;
pub mod ingresses;
pub mod lifecycle;
pub mod load_balancers;
pub mod metrics;
pub mod network_policies;
pub mod node_agent;
pub mod pod_spec;
pub mod quota;
pub mod root_ca;
pub mod security_groups;
pub mod service_account_tokens;
pub mod service_proxy;
pub mod settings;
pub mod volume_sync;
pub mod wake;
pub mod workloads;

pub use localfargate_registry::{KubeError, Objects, Settings};
pub use settings::ControllerSettings;
