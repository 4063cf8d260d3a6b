//! CustomResourceDefinitions (apiextensions.k8s.io/v1): the resources a cluster serves because
//! a definition says so. [`catalog`] reads the established definitions as resource types.

pub mod catalog;
pub mod definitions;

pub use catalog::{Catalog, CustomResource, CustomResources, CustomVersion};
