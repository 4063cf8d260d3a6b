//! A Kubernetes API per EKS cluster. Each ACTIVE cluster's API listens on the port its record
//! keeps and serves a certificate from the cluster's own CA, so real kubectl verifies it with the
//! `certificateAuthority.data` DescribeCluster returns.
//!
//! One generic handler serves every resource in `localfargate_core::kube::RESOURCES`: discovery
//! (legacy and aggregated), a minimal OpenAPI v3, CRUD with the patch types kubectl sends,
//! server-side Tables, watches, selectors and pagination; `pods/log`, `pods/exec` and
//! `pods/attach` reach the sandbox runtime (exec and attach over WebSocket and SPDY/3.1);
//! `metrics.k8s.io/v1beta1` (what `kubectl top` reads) serves the usage the metrics collector
//! sampled. Object semantics (defaulting, admission, deletion) live in
//! `localfargate_controllers::objects`, shared with the reconcilers.

mod discovery;
mod metrics;
pub mod patch;
pub mod pki;
mod pods;
pub mod protobuf;
mod remotecommand;
mod rest;
mod server;
pub mod spdy;
pub mod supervisor;
pub mod table;
mod watch;

pub use server::{Api, ClusterInfo, router, status};
