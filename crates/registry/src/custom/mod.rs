//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`) as apiextensions-apiserver handles them:
//! the structural schema of a version ([`schema`]: its structural checks, pruning, defaulting
//! and validation of custom resources), the validation and defaulting of a definition itself
//! ([`definition`]), both pure; the definition's strategy with what upstream's naming and
//! establishing controllers write ([`strategy`]); and a cluster's established definitions read
//! as the resource types it serves ([`catalog`]).

pub mod catalog;
pub mod definition;
pub mod schema;
pub mod strategy;

pub use catalog::{Catalog, CustomResource, CustomResources, CustomVersion};
