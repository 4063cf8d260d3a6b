//! The metrics collector: it samples every running container's usage through the sandbox
//! runtime into the registry's [`MetricsStore`](localfargate_registry::metrics::MetricsStore),
//! which the API serves as `metrics.k8s.io/v1beta1`.

pub mod collector;
