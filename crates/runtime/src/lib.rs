//! Sandboxes that run pods.
