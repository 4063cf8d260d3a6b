//! Reconcilers that move stored resources toward what their records say, and the Kubernetes object
//! semantics they and the API front end share.

pub mod admission;
pub mod defaults;
pub mod eks_lifecycle;
pub mod objects;
pub mod settings;

pub use objects::{KubeError, Objects};
pub use settings::Settings;
