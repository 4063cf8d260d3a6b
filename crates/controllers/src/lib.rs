//! Reconcilers that move stored resources toward what their records say.

pub mod eks_lifecycle;
