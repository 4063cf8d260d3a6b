//! A Kubernetes API per EKS cluster. Each ACTIVE cluster's API listens on the port its record
//! keeps and serves a certificate from the cluster's own CA, so real kubectl verifies it with the
//! `certificateAuthority.data` DescribeCluster returns.
//!
//! This first slice serves version and health, and authentication: the cluster's static token
//! (`localfargate kubeconfig`) or an `aws eks get-token` token. Resources come next.

pub mod patch;
pub mod pki;
pub mod selectors;
mod server;
pub mod supervisor;
pub mod table;

pub use server::{router, status};
