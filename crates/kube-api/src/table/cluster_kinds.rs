//! Upstream's printer columns (`pkg/printers/internalversion`) for the kinds beyond pods and
//! workloads: Services, storage, autoscaling and policy, RBAC, networking, scheduling,
//! coordination, quotas and CRDs.

use jiff::Timestamp;
use serde_json::Value;

use super::{
    AGE, Cells, Column, NAME, age, col, format_labels, format_selector, int, items, name, or_none,
    text, wide,
};

/// The columns and cells of a kind this module prints, if it prints it.
pub(super) fn printer(group: &str, resource: &str) -> Option<(&'static [Column], Cells)> {
    Some(match (group, resource) {
        ("", "services") => (SERVICE_COLUMNS, service_cells),
        ("", "endpoints") => (ENDPOINTS_COLUMNS, endpoints_cells),
        ("", "persistentvolumeclaims") => (PVC_COLUMNS, pvc_cells),
        ("", "resourcequotas") => (QUOTA_COLUMNS, quota_cells),
        ("", "limitranges")
        | ("rbac.authorization.k8s.io", "roles" | "clusterroles")
        | ("apiextensions.k8s.io", "customresourcedefinitions") => {
            (CREATED_AT_COLUMNS, created_at_cells)
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            (BINDING_COLUMNS, binding_cells)
        }
        ("autoscaling", "horizontalpodautoscalers") => (HPA_COLUMNS, hpa_cells),
        ("policy", "poddisruptionbudgets") => (PDB_COLUMNS, pdb_cells),
        ("networking.k8s.io", "ingresses") => (INGRESS_COLUMNS, ingress_cells),
        ("networking.k8s.io", "networkpolicies") => (NETWORK_POLICY_COLUMNS, network_policy_cells),
        ("storage.k8s.io", "storageclasses") => (STORAGE_CLASS_COLUMNS, storage_class_cells),
        ("scheduling.k8s.io", "priorityclasses") => (PRIORITY_CLASS_COLUMNS, priority_class_cells),
        ("coordination.k8s.io", "leases") => (LEASE_COLUMNS, lease_cells),
        ("apiregistration.k8s.io", "apiservices") => (API_SERVICE_COLUMNS, api_service_cells),
        ("", "componentstatuses") => (COMPONENT_STATUS_COLUMNS, component_status_cells),
        _ => return None,
    })
}

const COMPONENT_STATUS_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "Status of the component conditions"),
    col("Message", "string", "Message of the component conditions"),
    col("Error", "string", "Error of the component conditions"),
];

/// `Healthy` when every Healthy condition is True, else `Unhealthy`, with the conditions'
/// messages and errors joined as upstream joins them.
fn component_status_cells(cs: &Value, _now: Timestamp) -> Vec<Value> {
    let conditions = items(cs, "/conditions");
    let healthy = conditions
        .iter()
        .filter(|c| c["type"] == "Healthy")
        .all(|c| c["status"] == "True");
    let joined = |field: &str| {
        conditions
            .iter()
            .filter_map(|c| c[field].as_str().filter(|s| !s.is_empty()))
            .collect::<Vec<_>>()
            .join(",")
    };
    vec![
        name(cs),
        if healthy { "Healthy" } else { "Unhealthy" }.into(),
        joined("message").into(),
        joined("error").into(),
    ]
}

const API_SERVICE_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Service",
        "string",
        "The reference to the service that hosts this API endpoint.",
    ),
    col("Available", "string", "Whether this service is available."),
    AGE,
];

/// `Local` or the hosting Service, and the `Available` condition (`False (Reason)`).
fn api_service_cells(a: &Value, now: Timestamp) -> Vec<Value> {
    let service = match a["spec"]["service"].as_object() {
        Some(s) => format!(
            "{}/{}",
            s.get("namespace").and_then(Value::as_str).unwrap_or(""),
            s.get("name").and_then(Value::as_str).unwrap_or("")
        ),
        None => "Local".to_string(),
    };
    let available = items(a, "/status/conditions")
        .iter()
        .find(|c| c["type"] == "Available")
        .map(|c| {
            let status = c["status"].as_str().unwrap_or("Unknown");
            match c["reason"].as_str().filter(|r| !r.is_empty()) {
                Some(reason) if status != "True" => format!("{status} ({reason})"),
                _ => status.to_string(),
            }
        })
        .unwrap_or_else(|| "Unknown".to_string());
    vec![name(a), service.into(), available.into(), age(a, now)]
}

/// The addresses in `status.loadBalancer.ingress` (a Service's or an Ingress's): each entry's
/// IP, or its hostname.
fn load_balancer_addresses(object: &Value) -> Vec<&str> {
    items(object, "/status/loadBalancer/ingress")
        .iter()
        .filter_map(|i| {
            i["ip"]
                .as_str()
                .filter(|s| !s.is_empty())
                .or(i["hostname"].as_str())
        })
        .collect()
}

const SERVICE_COLUMNS: &[Column] = &[
    NAME,
    col("Type", "string", "The type of service."),
    col("Cluster-IP", "string", "The cluster IP of service."),
    col("External-IP", "string", "The external IP of service."),
    col("Port(s)", "string", "The ports of service."),
    AGE,
    wide("Selector", "The selector of service."),
];

fn service_cells(svc: &Value, now: Timestamp) -> Vec<Value> {
    let kind = text(svc, "/spec/type");
    let cluster_ip = or_none(text(svc, "/spec/clusterIP"));
    let external: Vec<&str> = items(svc, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let ingress = load_balancer_addresses(svc);
    let external_ip = match kind {
        "ExternalName" => text(svc, "/spec/externalName").to_string(),
        "LoadBalancer" if ingress.is_empty() && external.is_empty() => "<pending>".into(),
        "LoadBalancer" => [external.clone(), ingress].concat().join(","),
        _ if external.is_empty() => "<none>".into(),
        _ => external.join(","),
    };
    let ports: Vec<String> = items(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let protocol = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64().filter(|n| *n > 0) {
                Some(node) => format!("{}:{node}/{protocol}", p["port"]),
                None => format!("{}/{protocol}", p["port"]),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    let selector = format_labels(&svc["spec"]["selector"]);
    vec![
        name(svc),
        kind.into(),
        cluster_ip.into(),
        external_ip.into(),
        ports.into(),
        age(svc, now),
        selector.into(),
    ]
}

const ENDPOINTS_COLUMNS: &[Column] = &[
    NAME,
    col("Endpoints", "string", "Endpoints of the endpoints."),
    AGE,
];

fn endpoints_cells(ep: &Value, now: Timestamp) -> Vec<Value> {
    let mut shown = Vec::new();
    for subset in items(ep, "/subsets") {
        let ports: Vec<i64> = subset["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["port"].as_i64())
            .collect();
        for address in subset["addresses"].as_array().into_iter().flatten() {
            let ip = address["ip"].as_str().unwrap_or("");
            if ports.is_empty() {
                shown.push(ip.to_string());
            }
            for port in &ports {
                shown.push(format!("{ip}:{port}"));
            }
        }
    }
    // Upstream shows three and counts the rest.
    let text = match shown.len() {
        0 => "<none>".to_string(),
        n if n > 3 => format!("{} + {} more...", shown[..3].join(","), n - 3),
        _ => shown.join(","),
    };
    vec![name(ep), text.into(), age(ep, now)]
}

const PVC_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Status",
        "string",
        "The status of the persistent volume claim.",
    ),
    col(
        "Volume",
        "string",
        "The volume of the persistent volume claim.",
    ),
    col(
        "Capacity",
        "string",
        "The capacity of the persistent volume claim.",
    ),
    col(
        "Access Modes",
        "string",
        "The access modes of the persistent volume claim.",
    ),
    col(
        "StorageClass",
        "string",
        "The storage class of the persistent volume claim.",
    ),
    col(
        "VolumeAttributesClass",
        "string",
        "The volume attributes class of the persistent volume claim.",
    ),
    AGE,
    wide(
        "VolumeMode",
        "The volume mode of the persistent volume claim.",
    ),
];

/// `ReadWriteOnce` as upstream abbreviates it (`RWO`).
pub(super) fn access_modes(modes: &[Value]) -> String {
    modes
        .iter()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn pvc_cells(pvc: &Value, now: Timestamp) -> Vec<Value> {
    let phase = if pvc["metadata"]["deletionTimestamp"].is_string() {
        "Terminating"
    } else {
        text(pvc, "/status/phase")
    };
    let bound = !text(pvc, "/spec/volumeName").is_empty();
    let (capacity, modes) = if bound {
        (
            text(pvc, "/status/capacity/storage").to_string(),
            access_modes(items(pvc, "/status/accessModes")),
        )
    } else {
        (String::new(), String::new())
    };
    let class = pvc["spec"]["storageClassName"]
        .as_str()
        .or(pvc["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"].as_str())
        .unwrap_or("");
    let attributes = pvc["spec"]["volumeAttributesClassName"]
        .as_str()
        .unwrap_or("<unset>");
    let mode = pvc["spec"]["volumeMode"].as_str().unwrap_or("<unset>");
    vec![
        name(pvc),
        phase.into(),
        text(pvc, "/spec/volumeName").into(),
        capacity.into(),
        modes.into(),
        class.into(),
        attributes.into(),
        age(pvc, now),
        mode.into(),
    ]
}

const QUOTA_COLUMNS: &[Column] = &[
    NAME,
    AGE,
    col(
        "Request",
        "string",
        "Request represents a minimum amount of cpu/memory that a container may consume.",
    ),
    col(
        "Limit",
        "string",
        "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
    ),
];

fn quota_cells(quota: &Value, now: Timestamp) -> Vec<Value> {
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    let hard = quota["spec"]["hard"].as_object();
    let mut keys: Vec<&String> = hard.map(|h| h.keys().collect()).unwrap_or_default();
    keys.sort();
    for key in keys {
        // Upstream's printer shows the status's hard (what the quota controller accepted).
        let limit = quota["status"]["hard"][key.as_str()]
            .as_str()
            .unwrap_or("0");
        let used = quota["status"]["used"][key.as_str()]
            .as_str()
            .unwrap_or("0");
        let shown = format!("{key}: {used}/{limit}");
        if key.starts_with("limits.") {
            limits.push(shown);
        } else {
            requests.push(shown);
        }
    }
    vec![
        name(quota),
        age(quota, now),
        requests.join(", ").into(),
        limits.join(", ").into(),
    ]
}

const CREATED_AT_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Created At",
        "date",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    ),
];

fn created_at_cells(object: &Value, _now: Timestamp) -> Vec<Value> {
    vec![
        name(object),
        text(object, "/metadata/creationTimestamp").into(),
    ]
}

const BINDING_COLUMNS: &[Column] = &[
    NAME,
    col("Role", "string", "Role of the binding."),
    AGE,
    wide("Users", "Users in the binding."),
    wide("Groups", "Groups in the binding."),
    wide("ServiceAccounts", "ServiceAccounts in the binding."),
];

fn binding_cells(binding: &Value, now: Timestamp) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        text(binding, "/roleRef/kind"),
        text(binding, "/roleRef/name")
    );
    let (mut users, mut groups, mut accounts) = (Vec::new(), Vec::new(), Vec::new());
    for s in items(binding, "/subjects") {
        let subject = s["name"].as_str().unwrap_or("");
        match s["kind"].as_str() {
            Some("User") => users.push(subject.to_string()),
            Some("Group") => groups.push(subject.to_string()),
            Some("ServiceAccount") => accounts.push(format!(
                "{}/{subject}",
                s["namespace"].as_str().unwrap_or("")
            )),
            _ => {}
        }
    }
    vec![
        name(binding),
        role.into(),
        age(binding, now),
        users.join(", ").into(),
        groups.join(", ").into(),
        accounts.join(", ").into(),
    ]
}

const HPA_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Reference",
        "string",
        "The reference to the target of the horizontal pod autoscaler.",
    ),
    col(
        "Targets",
        "string",
        "The metric targets of the horizontal pod autoscaler.",
    ),
    col(
        "MinPods",
        "string",
        "The minimum replicas of the horizontal pod autoscaler.",
    ),
    col(
        "MaxPods",
        "string",
        "The maximum replicas of the horizontal pod autoscaler.",
    ),
    col(
        "Replicas",
        "string",
        "The current replicas of the horizontal pod autoscaler.",
    ),
    AGE,
];

/// One metric's target as upstream's `formatHPAMetrics` shows it (`cpu: <unknown>/80%`).
fn hpa_target(spec: &Value, current: Option<&Value>) -> String {
    let target = &spec["resource"]["target"];
    let name = spec["resource"]["name"].as_str().unwrap_or("");
    match spec["type"].as_str() {
        Some("Resource") | Some("ContainerResource") => {
            if let Some(u) = target["averageUtilization"].as_i64() {
                let now = current
                    .and_then(|c| c["resource"]["current"]["averageUtilization"].as_i64())
                    .map_or("<unknown>".to_string(), |c| format!("{c}%"));
                format!("{name}: {now}/{u}%")
            } else {
                let want = target["averageValue"].as_str().unwrap_or("");
                let now = current
                    .and_then(|c| c["resource"]["current"]["averageValue"].as_str())
                    .unwrap_or("<unknown>");
                format!("{name}: {now}/{want}")
            }
        }
        _ => "<unknown>/<unknown>".to_string(),
    }
}

fn hpa_cells(hpa: &Value, now: Timestamp) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        text(hpa, "/spec/scaleTargetRef/kind"),
        text(hpa, "/spec/scaleTargetRef/name")
    );
    let current = items(hpa, "/status/currentMetrics");
    let metrics = items(hpa, "/spec/metrics");
    let targets = if metrics.is_empty() {
        "<none>".to_string()
    } else {
        metrics
            .iter()
            .enumerate()
            .map(|(i, m)| hpa_target(m, current.get(i)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let min = hpa["spec"]["minReplicas"]
        .as_i64()
        .map_or("<unset>".to_string(), |m| m.to_string());
    vec![
        name(hpa),
        reference.into(),
        targets.into(),
        min.into(),
        int(hpa, "/spec/maxReplicas", 0).to_string().into(),
        int(hpa, "/status/currentReplicas", 0).to_string().into(),
        age(hpa, now),
    ]
}

const PDB_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Min Available",
        "string",
        "The minimum number of pods that must be available.",
    ),
    col(
        "Max Unavailable",
        "string",
        "The maximum number of pods that may be unavailable.",
    ),
    col(
        "Allowed Disruptions",
        "integer",
        "Calculated number of pods that may be disrupted at this time.",
    ),
    AGE,
];

/// An int-or-string as text, `N/A` when unset.
fn int_or_string(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => "N/A".to_string(),
    }
}

fn pdb_cells(pdb: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(pdb),
        int_or_string(&pdb["spec"]["minAvailable"]).into(),
        int_or_string(&pdb["spec"]["maxUnavailable"]).into(),
        int(pdb, "/status/disruptionsAllowed", 0).into(),
        age(pdb, now),
    ]
}

const INGRESS_COLUMNS: &[Column] = &[
    NAME,
    col("Class", "string", "The name of the IngressClass resource."),
    col(
        "Hosts",
        "string",
        "Hosts that incoming requests are matched against before the ingress rule",
    ),
    col(
        "Address",
        "string",
        "Address is a list containing ingress points for the load-balancer",
    ),
    col("Ports", "string", "Ports of TLS configurations that open"),
    AGE,
];

fn ingress_cells(ing: &Value, now: Timestamp) -> Vec<Value> {
    let class = ing["spec"]["ingressClassName"].as_str().unwrap_or("<none>");
    let hosts: Vec<&str> = items(ing, "/spec/rules")
        .iter()
        .filter_map(|r| r["host"].as_str())
        .collect();
    let hosts = if hosts.is_empty() {
        "*".to_string()
    } else {
        hosts.join(",")
    };
    let address = load_balancer_addresses(ing);
    let ports = if items(ing, "/spec/tls").is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(ing),
        class.into(),
        hosts.into(),
        address.join(",").into(),
        ports.into(),
        age(ing, now),
    ]
}

const NETWORK_POLICY_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Pod-Selector",
        "string",
        "Selects the pods to which this NetworkPolicy object applies.",
    ),
    AGE,
];

fn network_policy_cells(np: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(np),
        format_selector(&np["spec"]["podSelector"]),
        age(np, now),
    ]
}

const STORAGE_CLASS_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Provisioner",
        "string",
        "Indicates the type of the provisioner.",
    ),
    col(
        "ReclaimPolicy",
        "string",
        "Indicates the type of the reclaim policy.",
    ),
    col(
        "VolumeBindingMode",
        "string",
        "Indicates when volume binding and dynamic provisioning should occur.",
    ),
    col(
        "AllowVolumeExpansion",
        "string",
        "Indicates whether the storage class allows volume expansion.",
    ),
    AGE,
];

fn storage_class_cells(sc: &Value, now: Timestamp) -> Vec<Value> {
    let annotations = &sc["metadata"]["annotations"];
    let default = [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ]
    .iter()
    .any(|k| annotations[*k] == "true");
    let mut shown = text(sc, "/metadata/name").to_string();
    if default {
        shown.push_str(" (default)");
    }
    vec![
        shown.into(),
        text(sc, "/provisioner").into(),
        sc["reclaimPolicy"].as_str().unwrap_or("Delete").into(),
        sc["volumeBindingMode"]
            .as_str()
            .unwrap_or("Immediate")
            .into(),
        sc["allowVolumeExpansion"]
            .as_bool()
            .unwrap_or(false)
            .to_string()
            .into(),
        age(sc, now),
    ]
}

const PRIORITY_CLASS_COLUMNS: &[Column] = &[
    NAME,
    col("Value", "integer", "The value of this priority class."),
    col(
        "Global-Default",
        "boolean",
        "Whether this priority class is the default one.",
    ),
    AGE,
    col(
        "PreemptionPolicy",
        "string",
        "The preemption policy of this priority class.",
    ),
];

fn priority_class_cells(pc: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(pc),
        int(pc, "/value", 0).into(),
        pc["globalDefault"].as_bool().unwrap_or(false).into(),
        age(pc, now),
        pc["preemptionPolicy"].as_str().unwrap_or("").into(),
    ]
}

const LEASE_COLUMNS: &[Column] = &[
    NAME,
    col("Holder", "string", "The holder of the lease."),
    AGE,
];

fn lease_cells(lease: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(lease),
        text(lease, "/spec/holderIdentity").into(),
        age(lease, now),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> Timestamp {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    fn row(group: &str, resource: &str, object: Value) -> Vec<Value> {
        let (columns, cells) = printer(group, resource).unwrap();
        let row = cells(&object, now());
        assert_eq!(row.len(), columns.len(), "{resource}: one cell per column");
        row
    }

    #[test]
    fn services_print_as_kubectl_shows_them() {
        let svc = json!({"metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.100.12.7", "selector": {"app": "web"},
                     "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}});
        assert_eq!(
            row("", "services", svc),
            json!([
                "web",
                "ClusterIP",
                "10.100.12.7",
                "<none>",
                "80/TCP,53/UDP",
                "10m",
                "app=web"
            ])
            .as_array()
            .unwrap()
            .clone()
        );
        let lb = json!({"metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.100.1.1",
                     "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}]}});
        let cells = row("", "services", lb);
        assert_eq!(cells[3], "<pending>");
        assert_eq!(cells[4], "80:31000/TCP");
    }

    #[test]
    fn bindings_hpas_pdbs_and_claims() {
        let rb = json!({"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "robot", "namespace": "ns"}]});
        let cells = row("rbac.authorization.k8s.io", "rolebindings", rb);
        assert_eq!(cells[1], "ClusterRole/edit");
        assert_eq!(cells[3], "alice");
        assert_eq!(cells[5], "ns/robot");
        let hpa = json!({"metadata": {"name": "h"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 3, "metrics": [{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 80}}}]}, "status": {"desiredReplicas": 0}});
        let cells = row("autoscaling", "horizontalpodautoscalers", hpa);
        assert_eq!(cells[1], "Deployment/web");
        assert_eq!(cells[2], "cpu: <unknown>/80%");
        let pdb = json!({"metadata": {"name": "p"}, "spec": {"minAvailable": 1}, "status": {"disruptionsAllowed": 0}});
        let cells = row("policy", "poddisruptionbudgets", pdb);
        assert_eq!(
            (cells[1].clone(), cells[2].clone()),
            (json!("1"), json!("N/A"))
        );
        let pvc = json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]},
            "status": {"phase": "Pending"}});
        let cells = row("", "persistentvolumeclaims", pvc);
        assert_eq!(cells[1], "Pending");
        assert_eq!(cells[6], "<unset>");
    }
}
