//! What one cluster's API serves from: what it knows about itself (`authn::ClusterInfo`) and the
//! registry, runtime, metrics, policy and OpenAPI documents every handler reads.

use std::sync::Arc;

use localfargate_registry::Objects;
use localfargate_runtime::SandboxRuntime;

use crate::authn::ClusterInfo;
use crate::authz::Authorizer;

/// Everything one cluster's API serves from.
pub struct Api {
    pub info: ClusterInfo,
    pub objects: Objects,
    pub runtime: Arc<dyn SandboxRuntime>,
    /// The usage samples `metrics.k8s.io` serves (shared by every cluster's API).
    pub metrics: Arc<localfargate_registry::metrics::MetricsStore>,
    /// `host:port`, for `/api`'s serverAddressByClientCIDRs.
    pub server_address: String,
    /// Who may do what (RBAC), and impersonation.
    pub authorizer: Arc<Authorizer>,
    /// The OpenAPI documents, with the cluster's custom resources.
    pub openapi: crate::openapi::ClusterOpenApi,
}
