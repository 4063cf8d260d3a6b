//! The resource metrics API's data (`metrics.k8s.io/v1beta1`): what metrics-server serves on
//! EKS and `kubectl top` reads. The controllers' collector samples the CPU time and memory working set of
//! every running container through the sandbox runtime, the [`MetricsStore`] turns the last two
//! samples into usage with metrics-server's rules, and [`resources`] builds the `PodMetrics` and
//! `NodeMetrics` each cluster's API serves. Nothing is stored: as with metrics-server, usage
//! lives in memory and starts again empty with the process.

pub mod resources;
mod store;

pub use resources::{MetricsItem, Selection};
pub use store::{ContainerMetrics, MetricsStore, PodMetrics, RateError, Usage, Window};

/// The API group metrics-server registers.
pub const GROUP: &str = "metrics.k8s.io";
/// The version it serves and `kubectl top` asks for.
pub const VERSION: &str = "v1beta1";
