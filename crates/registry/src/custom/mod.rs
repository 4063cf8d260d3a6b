//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`) as apiextensions-apiserver handles them,
//! as pure functions: the structural schema of a version ([`schema`]: its structural checks,
//! pruning, defaulting and validation of custom resources) and the validation and defaulting of
//! a CustomResourceDefinition object itself ([`definition`]). Nothing here does I/O; the
//! per-cluster catalog, routes and strategies call in.

pub mod definition;
pub mod schema;
