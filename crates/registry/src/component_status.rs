//! `componentstatuses` (v1 `ComponentStatus`): the health of the control plane's components as
//! kube-apiserver answers it — never stored, read from the components themselves. Here the
//! scheduler, the controller manager and the store run in this process: if this answers, they
//! are up. Upstream marks the API deprecated since 1.19 and says so in a warning.

use serde_json::{Value, json};

/// The `Warning` kube-apiserver sends with every answer.
pub const DEPRECATION_WARNING: &str = "v1 ComponentStatus is deprecated in v1.19+";

/// The components, as EKS lists them.
const COMPONENTS: [&str; 3] = ["scheduler", "controller-manager", "etcd-0"];

fn component(name: &str) -> Value {
    json!({
        "kind": "ComponentStatus",
        "apiVersion": "v1",
        "metadata": {"name": name, "creationTimestamp": null},
        "conditions": [{"type": "Healthy", "status": "True", "message": "ok"}],
    })
}

/// Every component's status.
pub fn all() -> Vec<Value> {
    COMPONENTS.iter().map(|n| component(n)).collect()
}

/// One component's status, if there is such a component.
pub fn get(name: &str) -> Option<Value> {
    COMPONENTS.contains(&name).then(|| component(name))
}
