//! Upstream's printer columns (`pkg/printers/internalversion`) for the platform kinds charts
//! and operators carry: PersistentVolumes, pod templates, controller revisions, ingress classes,
//! endpoint slices, runtime classes, certificate signing requests, CSI objects, volume
//! attachments, admission webhook configurations and policies, and API priority and fairness.

use jiff::Timestamp;
use serde_json::Value;

use super::cluster_kinds::access_modes;
use super::{AGE, Column, NAME, age, col, containers, format_labels, int, items, name, text, wide};

type Cells = fn(&Value, Timestamp) -> Vec<Value>;

/// The columns and cells of a kind this module prints, if it prints it.
pub(super) fn printer(group: &str, resource: &str) -> Option<(&'static [Column], Cells)> {
    Some(match (group, resource) {
        ("", "persistentvolumes") => (PV_COLUMNS, pv_cells),
        ("", "podtemplates") => (POD_TEMPLATE_COLUMNS, pod_template_cells),
        ("apps", "controllerrevisions") => (CONTROLLER_REVISION_COLUMNS, controller_revision_cells),
        ("networking.k8s.io", "ingressclasses") => (INGRESS_CLASS_COLUMNS, ingress_class_cells),
        ("discovery.k8s.io", "endpointslices") => (ENDPOINT_SLICE_COLUMNS, endpoint_slice_cells),
        ("node.k8s.io", "runtimeclasses") => (RUNTIME_CLASS_COLUMNS, runtime_class_cells),
        ("certificates.k8s.io", "certificatesigningrequests") => (CSR_COLUMNS, csr_cells),
        ("storage.k8s.io", "csidrivers") => (CSI_DRIVER_COLUMNS, csi_driver_cells),
        ("storage.k8s.io", "csinodes") => (CSI_NODE_COLUMNS, csi_node_cells),
        ("storage.k8s.io", "volumeattachments") => {
            (VOLUME_ATTACHMENT_COLUMNS, volume_attachment_cells)
        }
        (
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations" | "validatingwebhookconfigurations",
        ) => (WEBHOOK_COLUMNS, webhook_cells),
        ("admissionregistration.k8s.io", "validatingadmissionpolicies") => {
            (POLICY_COLUMNS, policy_cells)
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings") => {
            (POLICY_BINDING_COLUMNS, policy_binding_cells)
        }
        ("flowcontrol.apiserver.k8s.io", "flowschemas") => (FLOW_SCHEMA_COLUMNS, flow_schema_cells),
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations") => {
            (PRIORITY_LEVEL_COLUMNS, priority_level_cells)
        }
        _ => return None,
    })
}

fn or_unset(s: &str) -> &str {
    if s.is_empty() { "<unset>" } else { s }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "<none>" } else { s }
}

const PV_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Capacity",
        "string",
        "capacity is the description of the persistent volume's resources and capacity.",
    ),
    col(
        "Access Modes",
        "string",
        "accessModes contains all ways the volume can be mounted.",
    ),
    col(
        "Reclaim Policy",
        "string",
        "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim.",
    ),
    col(
        "Status",
        "string",
        "phase indicates if a volume is available, bound to a claim, or released by a claim.",
    ),
    col(
        "Claim",
        "string",
        "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim.",
    ),
    col("StorageClass", "string", "StorageClass of the pv"),
    col(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pv",
    ),
    col(
        "Reason",
        "string",
        "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.",
    ),
    AGE,
    wide(
        "VolumeMode",
        "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.",
    ),
];

fn pv_cells(pv: &Value, now: Timestamp) -> Vec<Value> {
    let claim = match pv["spec"]["claimRef"].as_object() {
        Some(c) => format!(
            "{}/{}",
            c.get("namespace").and_then(Value::as_str).unwrap_or(""),
            c.get("name").and_then(Value::as_str).unwrap_or("")
        ),
        None => String::new(),
    };
    let phase = if pv["metadata"]["deletionTimestamp"].is_string() {
        "Terminating"
    } else {
        text(pv, "/status/phase")
    };
    vec![
        name(pv),
        text(pv, "/spec/capacity/storage").into(),
        access_modes(items(pv, "/spec/accessModes")).into(),
        text(pv, "/spec/persistentVolumeReclaimPolicy").into(),
        phase.into(),
        claim.into(),
        text(pv, "/spec/storageClassName").into(),
        or_unset(text(pv, "/spec/volumeAttributesClassName")).into(),
        text(pv, "/status/reason").into(),
        age(pv, now),
        or_unset(text(pv, "/spec/volumeMode")).into(),
    ]
}

const POD_TEMPLATE_COLUMNS: &[Column] = &[
    col("Template", "string", "The name of the pod template."),
    col(
        "Containers",
        "string",
        "Names of each container in the template.",
    ),
    col(
        "Images",
        "string",
        "Images referenced by each container in the template.",
    ),
    col("Pod Labels", "string", "The labels for the pod template."),
];

fn pod_template_cells(t: &Value, _now: Timestamp) -> Vec<Value> {
    let [names, images] = containers(t, "/template/spec");
    vec![
        name(t),
        names,
        images,
        format_labels(&t["template"]["metadata"]["labels"]).into(),
    ]
}

const CONTROLLER_REVISION_COLUMNS: &[Column] = &[
    NAME,
    col("Controller", "string", "Controller of the object"),
    col(
        "Revision",
        "string",
        "revision indicates the revision of the state represented by Data.",
    ),
    AGE,
];

fn controller_revision_cells(r: &Value, now: Timestamp) -> Vec<Value> {
    let controller = items(r, "/metadata/ownerReferences")
        .iter()
        .find(|o| o["controller"] == true)
        .map(|o| {
            let group = o["apiVersion"]
                .as_str()
                .and_then(|v| v.rsplit_once('/'))
                .map_or("", |(g, _)| g);
            let kind = o["kind"].as_str().unwrap_or("").to_lowercase();
            let qualified = if group.is_empty() {
                kind
            } else {
                format!("{kind}.{group}")
            };
            format!("{qualified}/{}", o["name"].as_str().unwrap_or(""))
        })
        .unwrap_or_else(|| "<none>".into());
    vec![
        name(r),
        controller.into(),
        int(r, "/revision", 0).into(),
        age(r, now),
    ]
}

const INGRESS_CLASS_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Controller",
        "string",
        "Controller that is responsible for handling this class",
    ),
    col(
        "Parameters",
        "string",
        "A reference to a resource with additional parameters",
    ),
    AGE,
];

fn ingress_class_cells(c: &Value, now: Timestamp) -> Vec<Value> {
    let parameters = match c["spec"]["parameters"].as_object() {
        Some(p) => {
            let mut kind = p
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if let Some(group) = p.get("apiGroup").and_then(Value::as_str) {
                kind = format!("{kind}.{group}");
            }
            format!(
                "{kind}/{}",
                p.get("name").and_then(Value::as_str).unwrap_or("")
            )
        }
        None => "<none>".into(),
    };
    vec![
        name(c),
        text(c, "/spec/controller").into(),
        parameters.into(),
        age(c, now),
    ]
}

const ENDPOINT_SLICE_COLUMNS: &[Column] = &[
    NAME,
    col("AddressType", "string", "The IP protocol for this slice"),
    col("Ports", "string", "The ports for this slice"),
    col("Endpoints", "string", "First 3 endpoints for this slice"),
    AGE,
];

fn endpoint_slice_cells(s: &Value, now: Timestamp) -> Vec<Value> {
    let ports: Vec<String> = items(s, "/ports")
        .iter()
        .map(|p| {
            p["port"]
                .as_i64()
                .map_or("<unset>".into(), |n| n.to_string())
        })
        .collect();
    let ports = if ports.is_empty() {
        "<unset>".to_string()
    } else {
        ports.join(",")
    };
    let addresses: Vec<&str> = items(s, "/endpoints")
        .iter()
        .flat_map(|e| e["addresses"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let endpoints = match addresses.len() {
        0 => "<unset>".to_string(),
        n if n > 3 => format!("{} + {} more...", addresses[..3].join(","), n - 3),
        _ => addresses.join(","),
    };
    vec![
        name(s),
        text(s, "/addressType").into(),
        ports.into(),
        endpoints.into(),
        age(s, now),
    ]
}

const RUNTIME_CLASS_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Handler",
        "string",
        "handler specifies the underlying runtime and configuration that the CRI implementation will use to handle pods of this class.",
    ),
    AGE,
];

fn runtime_class_cells(r: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(r), text(r, "/handler").into(), age(r, now)]
}

const CSR_COLUMNS: &[Column] = &[
    NAME,
    AGE,
    col("SignerName", "string", "Only use the signer for this CSR"),
    col("Requestor", "string", "Name of user that requested the CSR"),
    col(
        "RequestedDuration",
        "string",
        "Requested duration of the certificate",
    ),
    col("Condition", "string", "Status of the CSR"),
];

fn csr_cells(c: &Value, now: Timestamp) -> Vec<Value> {
    let mut conditions: Vec<String> = items(c, "/status/conditions")
        .iter()
        .filter(|x| x["status"] != "False")
        .filter_map(|x| x["type"].as_str().map(str::to_string))
        .collect();
    if !text(c, "/status/certificate").is_empty() {
        conditions.push("Issued".into());
    }
    let condition = if conditions.is_empty() {
        "Pending".to_string()
    } else {
        conditions.join(",")
    };
    let duration = c["spec"]["expirationSeconds"]
        .as_i64()
        .map_or("<none>".to_string(), |s| {
            super::human_duration(std::time::Duration::from_secs(s.max(0) as u64))
        });
    vec![
        name(c),
        age(c, now),
        text(c, "/spec/signerName").into(),
        text(c, "/spec/username").into(),
        duration.into(),
        condition.into(),
    ]
}

const CSI_DRIVER_COLUMNS: &[Column] = &[
    NAME,
    col(
        "AttachRequired",
        "boolean",
        "Whether the driver needs an attach operation",
    ),
    col(
        "PodInfoOnMount",
        "boolean",
        "Whether pod information is passed on mount",
    ),
    col(
        "StorageCapacity",
        "boolean",
        "Whether storage capacity is tracked",
    ),
    col(
        "TokenRequests",
        "string",
        "Service account tokens the driver gets",
    ),
    col(
        "RequiresRepublish",
        "boolean",
        "Whether volumes are republished periodically",
    ),
    col("Modes", "string", "The volume lifecycle modes"),
    AGE,
];

fn csi_driver_cells(d: &Value, now: Timestamp) -> Vec<Value> {
    let flag = |key: &str, default: bool| Value::Bool(d["spec"][key].as_bool().unwrap_or(default));
    let tokens: Vec<String> = items(d, "/spec/tokenRequests")
        .iter()
        .map(|t| {
            let audience = t["audience"].as_str().unwrap_or("");
            match t["expirationSeconds"].as_i64() {
                Some(s) => format!("{audience}:{s}s"),
                None => audience.to_string(),
            }
        })
        .collect();
    let modes: Vec<&str> = items(d, "/spec/volumeLifecycleModes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    vec![
        name(d),
        flag("attachRequired", true),
        flag("podInfoOnMount", false),
        flag("storageCapacity", false),
        or_none(&tokens.join(",")).into(),
        flag("requiresRepublish", false),
        or_none(&modes.join(",")).into(),
        age(d, now),
    ]
}

const CSI_NODE_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Drivers",
        "integer",
        "Drivers indicates the number of CSI drivers registered on the node",
    ),
    AGE,
];

fn csi_node_cells(n: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(n),
        (items(n, "/spec/drivers").len() as i64).into(),
        age(n, now),
    ]
}

const VOLUME_ATTACHMENT_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Attacher",
        "string",
        "attacher indicates the name of the volume driver that MUST handle this request.",
    ),
    col("PV", "string", "Name of the persistent volume to attach"),
    col(
        "Node",
        "string",
        "nodeName represents the node that the volume should be attached to.",
    ),
    col(
        "Attached",
        "boolean",
        "attached indicates the volume is successfully attached.",
    ),
    AGE,
];

fn volume_attachment_cells(v: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(v),
        text(v, "/spec/attacher").into(),
        text(v, "/spec/source/persistentVolumeName").into(),
        text(v, "/spec/nodeName").into(),
        Value::Bool(v["status"]["attached"].as_bool().unwrap_or(false)),
        age(v, now),
    ]
}

const WEBHOOK_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Webhooks",
        "integer",
        "Webhooks indicates the number of webhooks registered in this configuration",
    ),
    AGE,
];

fn webhook_cells(w: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(w),
        (items(w, "/webhooks").len() as i64).into(),
        age(w, now),
    ]
}

const POLICY_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Validations",
        "integer",
        "Validations indicates the number of validation rules defined in this configuration",
    ),
    col(
        "ParamKind",
        "string",
        "ParamKind specifies the kind of resources used to parameterize this policy",
    ),
    AGE,
];

fn policy_cells(p: &Value, now: Timestamp) -> Vec<Value> {
    let param_kind = match p["spec"]["paramKind"].as_object() {
        Some(k) => format!(
            "{}/{}",
            k.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
            k.get("kind").and_then(Value::as_str).unwrap_or("")
        ),
        None => "<unset>".into(),
    };
    vec![
        name(p),
        (items(p, "/spec/validations").len() as i64).into(),
        param_kind.into(),
        age(p, now),
    ]
}

const POLICY_BINDING_COLUMNS: &[Column] = &[
    NAME,
    col(
        "PolicyName",
        "string",
        "PolicyName indicates the policy definition which the policy binding binded to",
    ),
    col(
        "ParamRef",
        "string",
        "ParamRef indicates the param resource which sets the configration param",
    ),
    AGE,
];

fn policy_binding_cells(b: &Value, now: Timestamp) -> Vec<Value> {
    let param = match b["spec"]["paramRef"].as_object() {
        Some(r) => {
            let ns = r.get("namespace").and_then(Value::as_str).unwrap_or("");
            let n = r.get("name").and_then(Value::as_str).unwrap_or("*");
            if ns.is_empty() {
                n.to_string()
            } else {
                format!("{ns}/{n}")
            }
        }
        None => "<unset>".into(),
    };
    vec![
        name(b),
        text(b, "/spec/policyName").into(),
        param.into(),
        age(b, now),
    ]
}

const FLOW_SCHEMA_COLUMNS: &[Column] = &[
    NAME,
    col(
        "PriorityLevel",
        "string",
        "The priority level of this flow schema",
    ),
    col(
        "MatchingPrecedence",
        "string",
        "The matching precedence of this flow schema",
    ),
    col(
        "DistinguisherMethod",
        "string",
        "The distinguisher method of this flow schema",
    ),
    AGE,
    col(
        "MissingPL",
        "string",
        "Whether the priority level of this flow schema is missing",
    ),
];

fn flow_schema_cells(f: &Value, now: Timestamp) -> Vec<Value> {
    let method = or_none(text(f, "/spec/distinguisherMethod/type")).to_string();
    let missing = items(f, "/status/conditions")
        .iter()
        .find(|c| c["type"] == "Dangling")
        .and_then(|c| c["status"].as_str())
        .unwrap_or("?")
        .to_string();
    vec![
        name(f),
        text(f, "/spec/priorityLevelConfiguration/name").into(),
        int(f, "/spec/matchingPrecedence", 0).to_string().into(),
        method.into(),
        age(f, now),
        missing.into(),
    ]
}

const PRIORITY_LEVEL_COLUMNS: &[Column] = &[
    NAME,
    col("Type", "string", "The type of the priority level"),
    col(
        "NominalConcurrencyShares",
        "string",
        "The nominal concurrency shares of the priority level",
    ),
    col("Queues", "string", "The queues of the priority level"),
    col("HandSize", "string", "The hand size of the priority level"),
    col(
        "QueueLengthLimit",
        "string",
        "The queue length limit of the priority level",
    ),
    AGE,
];

fn priority_level_cells(p: &Value, now: Timestamp) -> Vec<Value> {
    let limited = &p["spec"]["limited"];
    let queuing = &limited["limitResponse"]["queuing"];
    let shown = |v: &Value| v.as_i64().map_or("<none>".to_string(), |n| n.to_string());
    let shares = if limited.is_object() {
        shown(&limited["nominalConcurrencyShares"])
    } else {
        "<none>".into()
    };
    vec![
        name(p),
        text(p, "/spec/type").into(),
        shares.into(),
        shown(&queuing["queues"]).into(),
        shown(&queuing["handSize"]).into(),
        shown(&queuing["queueLengthLimit"]).into(),
        age(p, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(group: &str, resource: &str, v: &Value) -> Vec<Value> {
        let now: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let (columns, cells) = printer(group, resource).unwrap();
        let row = cells(v, now);
        assert_eq!(row.len(), columns.len(), "{resource}");
        row
    }

    #[test]
    fn persistent_volumes_print_as_kubectl_shows_them() {
        let pv = json!({"metadata": {"name": "pv1", "creationTimestamp": "2026-01-01T00:00:00Z"},
                        "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
                                 "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "gp2",
                                 "claimRef": {"namespace": "d", "name": "data"}},
                        "status": {"phase": "Bound"}});
        assert_eq!(
            row("", "persistentvolumes", &pv),
            vec![
                json!("pv1"),
                json!("5Gi"),
                json!("RWO,ROX"),
                json!("Retain"),
                json!("Bound"),
                json!("d/data"),
                json!("gp2"),
                json!("<unset>"),
                json!(""),
                json!("60m"),
                json!("<unset>")
            ]
        );
    }

    #[test]
    fn slices_webhooks_and_classes_summarize() {
        let slice = json!({"metadata": {"name": "web-abc", "creationTimestamp": "2026-01-01T00:00:00Z"},
                           "addressType": "IPv4", "ports": [{"port": 80}],
                           "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]},
                                         {"addresses": ["10.0.0.3"]}, {"addresses": ["10.0.0.4"]}]});
        let cells = row("discovery.k8s.io", "endpointslices", &slice);
        assert_eq!(cells[2], json!("80"));
        assert_eq!(cells[3], json!("10.0.0.1,10.0.0.2,10.0.0.3 + 1 more..."));
        let hook = json!({"metadata": {"name": "h"}, "webhooks": [{}, {}]});
        assert_eq!(
            row(
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
                &hook
            )[1],
            json!(2)
        );
        let class = json!({"metadata": {"name": "alb"}, "spec": {"controller": "ingress.k8s.aws/alb",
                           "parameters": {"apiGroup": "elbv2.k8s.aws", "kind": "IngressClassParams", "name": "alb"}}});
        assert_eq!(
            row("networking.k8s.io", "ingressclasses", &class)[2],
            json!("IngressClassParams.elbv2.k8s.aws/alb")
        );
    }
}
