//! A Kubernetes API per EKS cluster. Each ACTIVE cluster's API listens on the port its record
//! keeps and serves a certificate from the cluster's own CA, so real kubectl verifies it with the
//! `certificateAuthority.data` DescribeCluster returns.
//!
//! One generic handler serves every resource in `localfargate_registry::resources::RESOURCES`:
//! discovery (legacy and aggregated), OpenAPI v2 and v3 from upstream's schemas (with strict field
//! validation against them), CRUD with the patch types kubectl sends,
//! server-side Tables, watches, selectors and pagination; `pods/log`, `pods/exec` and
//! `pods/attach` reach the sandbox runtime (exec and attach over WebSocket and SPDY/3.1);
//! `metrics.k8s.io/v1beta1` (what `kubectl top` reads) serves the usage the metrics collector
//! sampled. Object semantics (defaulting, admission, deletion) live in
//! the registry (`localfargate_registry`), shared with the reconcilers.

pub mod authn;
pub mod authz;
mod context;
mod discovery;
mod metrics;
pub mod oidc;
pub mod openapi;
mod ownership;
pub mod patch;
mod pods;
mod portforward;
pub mod protobuf;
mod remotecommand;
mod request;
mod response;
mod rest;
mod server;
pub mod spdy;
mod status_body;
pub mod supervisor;
pub mod table;
mod watch;

pub use authn::ClusterInfo;
pub use context::Api;
pub use response::status;
pub use server::router;
