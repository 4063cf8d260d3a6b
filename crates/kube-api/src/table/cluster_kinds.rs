//! Upstream's printer columns (`pkg/printers/internalversion`) for the kinds beyond pods and
//! workloads: Services, storage, autoscaling and policy, RBAC, networking, scheduling,
//! coordination, quotas and CRDs.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, MetricSpec, MetricStatus};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ComponentCondition, ComponentStatus, PersistentVolumeClaim, ResourceQuota, Service,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use localfargate_registry::meta::{annotation_of, name_of};
use serde_json::Value;

use super::{
    AGE, Cells, Column, NAME, age, col, format_label_map, format_typed_selector, int, items, name,
    or_none, string, text, typed_cells, wide,
};
use localfargate_registry::meta::creation_timestamp_of;

/// The columns and cells of a kind this module prints, if it prints it.
pub(super) fn printer(group: &str, resource: &str) -> Option<(&'static [Column], Cells)> {
    Some(match (group, resource) {
        ("", "services") => (SERVICE_COLUMNS, |v, now| {
            typed_cells::<Service>(v, now, service_cells)
        }),
        ("", "endpoints") => (ENDPOINTS_COLUMNS, endpoints_cells),
        ("", "persistentvolumeclaims") => (PVC_COLUMNS, |v, now| {
            typed_cells::<PersistentVolumeClaim>(v, now, pvc_cells)
        }),
        ("", "resourcequotas") => (QUOTA_COLUMNS, |v, now| {
            typed_cells::<ResourceQuota>(v, now, quota_cells)
        }),
        ("", "limitranges")
        | ("rbac.authorization.k8s.io", "roles" | "clusterroles")
        | ("apiextensions.k8s.io", "customresourcedefinitions") => {
            (CREATED_AT_COLUMNS, created_at_cells)
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            (BINDING_COLUMNS, binding_cells)
        }
        ("autoscaling", "horizontalpodautoscalers") => (HPA_COLUMNS, |v, now| {
            typed_cells::<HorizontalPodAutoscaler>(v, now, hpa_cells)
        }),
        ("policy", "poddisruptionbudgets") => (PDB_COLUMNS, |v, now| {
            typed_cells::<PodDisruptionBudget>(v, now, pdb_cells)
        }),
        ("networking.k8s.io", "ingresses") => (INGRESS_COLUMNS, |v, now| {
            typed_cells::<Ingress>(v, now, ingress_cells)
        }),
        ("networking.k8s.io", "networkpolicies") => (NETWORK_POLICY_COLUMNS, |v, now| {
            typed_cells::<NetworkPolicy>(v, now, network_policy_cells)
        }),
        ("storage.k8s.io", "storageclasses") => (STORAGE_CLASS_COLUMNS, storage_class_cells),
        ("scheduling.k8s.io", "priorityclasses") => (PRIORITY_CLASS_COLUMNS, priority_class_cells),
        ("coordination.k8s.io", "leases") => (LEASE_COLUMNS, |v, now| {
            typed_cells::<Lease>(v, now, lease_cells)
        }),
        ("apiregistration.k8s.io", "apiservices") => (API_SERVICE_COLUMNS, |v, now| {
            typed_cells::<APIService>(v, now, api_service_cells)
        }),
        ("", "componentstatuses") => (COMPONENT_STATUS_COLUMNS, |v, now| {
            typed_cells::<ComponentStatus>(v, now, component_status_cells)
        }),
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
fn component_status_cells(cs: &ComponentStatus, object: &Value, _now: Timestamp) -> Vec<Value> {
    let conditions = cs.conditions.as_deref().unwrap_or_default();
    let healthy = conditions
        .iter()
        .filter(|c| c.type_ == "Healthy")
        .all(|c| c.status == "True");
    let joined = |field: fn(&ComponentCondition) -> &Option<String>| {
        conditions
            .iter()
            .filter_map(|c| field(c).as_deref().filter(|s| !s.is_empty()))
            .collect::<Vec<_>>()
            .join(",")
    };
    vec![
        name(object),
        if healthy { "Healthy" } else { "Unhealthy" }.into(),
        joined(|c| &c.message).into(),
        joined(|c| &c.error).into(),
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
fn api_service_cells(a: &APIService, object: &Value, now: Timestamp) -> Vec<Value> {
    let service = match a.spec.as_ref().and_then(|s| s.service.as_ref()) {
        Some(s) => format!("{}/{}", string(&s.namespace), string(&s.name)),
        None => "Local".to_string(),
    };
    let available = a
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == "Available")
        .map(|c| {
            let status = c.status.as_str();
            match c.reason.as_deref().filter(|r| !r.is_empty()) {
                Some(reason) if status != "True" => format!("{status} ({reason})"),
                _ => status.to_string(),
            }
        })
        .unwrap_or_else(|| "Unknown".to_string());
    vec![
        name(object),
        service.into(),
        available.into(),
        age(object, now),
    ]
}

/// The addresses of a load balancer's ingress points (a Service's or an Ingress's): each
/// entry's IP, or its hostname.
fn load_balancer_addresses<'a>(
    points: impl Iterator<Item = (&'a Option<String>, &'a Option<String>)>,
) -> Vec<&'a str> {
    points
        .filter_map(|(ip, hostname)| {
            ip.as_deref()
                .filter(|s| !s.is_empty())
                .or(hostname.as_deref())
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

fn service_cells(svc: &Service, object: &Value, now: Timestamp) -> Vec<Value> {
    let spec = svc.spec.as_ref();
    let kind = spec.and_then(|s| s.type_.as_deref()).unwrap_or("");
    let cluster_ip = or_none(spec.and_then(|s| s.cluster_ip.as_deref()).unwrap_or(""));
    let external: Vec<&str> = spec
        .and_then(|s| s.external_ips.as_deref())
        .unwrap_or_default()
        .iter()
        .map(String::as_str)
        .collect();
    let ingress = load_balancer_addresses(
        svc.status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_deref())
            .unwrap_or_default()
            .iter()
            .map(|i| (&i.ip, &i.hostname)),
    );
    let external_ip = match kind {
        "ExternalName" => spec
            .and_then(|s| s.external_name.as_deref())
            .unwrap_or("")
            .to_string(),
        "LoadBalancer" if ingress.is_empty() && external.is_empty() => "<pending>".into(),
        "LoadBalancer" => [external.clone(), ingress].concat().join(","),
        _ if external.is_empty() => "<none>".into(),
        _ => external.join(","),
    };
    let ports: Vec<String> = spec
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let protocol = p.protocol.as_deref().unwrap_or("TCP");
            match p.node_port.filter(|n| *n > 0) {
                Some(node) => format!("{}:{node}/{protocol}", p.port),
                None => format!("{}/{protocol}", p.port),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    let selector = format_label_map(spec.and_then(|s| s.selector.as_ref()));
    vec![
        name(object),
        kind.into(),
        cluster_ip.into(),
        external_ip.into(),
        ports.into(),
        age(object, now),
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
pub(super) fn access_modes(modes: Option<&[String]>) -> String {
    modes
        .unwrap_or_default()
        .iter()
        .map(|m| match m.as_str() {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn pvc_cells(pvc: &PersistentVolumeClaim, object: &Value, now: Timestamp) -> Vec<Value> {
    let spec = pvc.spec.as_ref();
    let status = pvc.status.as_ref();
    let phase = if pvc.metadata.deletion_timestamp.is_some() {
        "Terminating"
    } else {
        status.and_then(|s| s.phase.as_deref()).unwrap_or("")
    };
    let volume = spec.and_then(|s| s.volume_name.as_deref()).unwrap_or("");
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            status
                .and_then(|s| s.capacity.as_ref())
                .and_then(|c| c.get("storage"))
                .map_or(String::new(), |q| q.0.clone()),
            access_modes(status.and_then(|s| s.access_modes.as_deref())),
        )
    };
    let class = spec
        .and_then(|s| s.storage_class_name.as_deref())
        .or(pvc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"))
            .map(String::as_str))
        .unwrap_or("");
    let attributes = spec
        .and_then(|s| s.volume_attributes_class_name.as_deref())
        .unwrap_or("<unset>");
    let mode = spec
        .and_then(|s| s.volume_mode.as_deref())
        .unwrap_or("<unset>");
    vec![
        name(object),
        phase.into(),
        volume.into(),
        capacity.into(),
        modes.into(),
        class.into(),
        attributes.into(),
        age(object, now),
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

fn quota_cells(quota: &ResourceQuota, object: &Value, now: Timestamp) -> Vec<Value> {
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    let status = quota.status.as_ref();
    let of_status = |map: Option<&BTreeMap<String, Quantity>>, key: &str| {
        map.and_then(|m| m.get(key))
            .map_or("0".to_string(), |q| q.0.clone())
    };
    // The keys in order (a BTreeMap's).
    let hard = quota.spec.as_ref().and_then(|s| s.hard.as_ref());
    for key in hard.into_iter().flat_map(BTreeMap::keys) {
        // Upstream's printer shows the status's hard (what the quota controller accepted).
        let limit = of_status(status.and_then(|s| s.hard.as_ref()), key);
        let used = of_status(status.and_then(|s| s.used.as_ref()), key);
        let shown = format!("{key}: {used}/{limit}");
        if key.starts_with("limits.") {
            limits.push(shown);
        } else {
            requests.push(shown);
        }
    }
    vec![
        name(object),
        age(object, now),
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
        creation_timestamp_of(object).unwrap_or("").into(),
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
fn hpa_target(spec: &MetricSpec, current: Option<&MetricStatus>) -> String {
    match spec.type_.as_str() {
        // Both read the `resource` source, as the printer this follows did.
        "Resource" | "ContainerResource" => {
            let source = spec.resource.as_ref();
            let name = source.map_or("", |r| r.name.as_str());
            let target = source.map(|r| &r.target);
            let current = current
                .and_then(|c| c.resource.as_ref())
                .map(|r| &r.current);
            if let Some(u) = target.and_then(|t| t.average_utilization) {
                let now = current
                    .and_then(|c| c.average_utilization)
                    .map_or("<unknown>".to_string(), |c| format!("{c}%"));
                format!("{name}: {now}/{u}%")
            } else {
                let want = target
                    .and_then(|t| t.average_value.as_ref())
                    .map_or("", |q| q.0.as_str());
                let now = current
                    .and_then(|c| c.average_value.as_ref())
                    .map_or("<unknown>", |q| q.0.as_str());
                format!("{name}: {now}/{want}")
            }
        }
        _ => "<unknown>/<unknown>".to_string(),
    }
}

fn hpa_cells(hpa: &HorizontalPodAutoscaler, object: &Value, now: Timestamp) -> Vec<Value> {
    let spec = hpa.spec.as_ref();
    let status = hpa.status.as_ref();
    let reference = format!(
        "{}/{}",
        spec.map_or("", |s| s.scale_target_ref.kind.as_str()),
        spec.map_or("", |s| s.scale_target_ref.name.as_str())
    );
    let current = status
        .and_then(|s| s.current_metrics.as_deref())
        .unwrap_or_default();
    let metrics = spec.and_then(|s| s.metrics.as_deref()).unwrap_or_default();
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
    let min = spec
        .and_then(|s| s.min_replicas)
        .map_or("<unset>".to_string(), |m| m.to_string());
    vec![
        name(object),
        reference.into(),
        targets.into(),
        min.into(),
        spec.map_or(0, |s| s.max_replicas).to_string().into(),
        status
            .and_then(|s| s.current_replicas)
            .unwrap_or(0)
            .to_string()
            .into(),
        age(object, now),
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
fn int_or_string(v: Option<&IntOrString>) -> String {
    match v {
        Some(IntOrString::Int(n)) => n.to_string(),
        Some(IntOrString::String(s)) => s.clone(),
        None => "N/A".to_string(),
    }
}

fn pdb_cells(pdb: &PodDisruptionBudget, object: &Value, now: Timestamp) -> Vec<Value> {
    let spec = pdb.spec.as_ref();
    vec![
        name(object),
        int_or_string(spec.and_then(|s| s.min_available.as_ref())).into(),
        int_or_string(spec.and_then(|s| s.max_unavailable.as_ref())).into(),
        i64::from(pdb.status.as_ref().map_or(0, |s| s.disruptions_allowed)).into(),
        age(object, now),
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

fn ingress_cells(ing: &Ingress, object: &Value, now: Timestamp) -> Vec<Value> {
    let spec = ing.spec.as_ref();
    let class = spec
        .and_then(|s| s.ingress_class_name.as_deref())
        .unwrap_or("<none>");
    let hosts: Vec<&str> = spec
        .and_then(|s| s.rules.as_deref())
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r.host.as_deref())
        .collect();
    let hosts = if hosts.is_empty() {
        "*".to_string()
    } else {
        hosts.join(",")
    };
    let address = load_balancer_addresses(
        ing.status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_deref())
            .unwrap_or_default()
            .iter()
            .map(|i| (&i.ip, &i.hostname)),
    );
    let ports = if spec
        .and_then(|s| s.tls.as_deref())
        .unwrap_or_default()
        .is_empty()
    {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(object),
        class.into(),
        hosts.into(),
        address.join(",").into(),
        ports.into(),
        age(object, now),
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

fn network_policy_cells(np: &NetworkPolicy, object: &Value, now: Timestamp) -> Vec<Value> {
    let selector = np.spec.as_ref().and_then(|s| s.pod_selector.as_ref());
    vec![
        name(object),
        format_typed_selector(selector),
        age(object, now),
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
    let default = [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ]
    .iter()
    .any(|k| annotation_of(sc, k) == Some("true"));
    let mut shown = name_of(sc).to_string();
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

fn lease_cells(lease: &Lease, object: &Value, now: Timestamp) -> Vec<Value> {
    let holder = lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref());
    vec![name(object), holder.unwrap_or("").into(), age(object, now)]
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
