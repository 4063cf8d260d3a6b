//! Upstream's printer columns (`pkg/printers/internalversion`) for the platform kinds charts
//! and operators carry: PersistentVolumes, pod templates, controller revisions, ingress classes,
//! endpoint slices, runtime classes, certificate signing requests, CSI objects, volume
//! attachments, admission webhook configurations and policies, and API priority and fairness.

use jiff::Timestamp;
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeSpec, PodTemplate};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::flowcontrol::v1::{FlowSchema, PriorityLevelConfiguration};
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::api::storage::v1::{CSIDriver, CSINode, VolumeAttachment};
use localfargate_registry::meta::ObjectMeta;
use serde_json::Value;

use super::cluster_kinds::access_modes;
use super::{
    AGE, Column, NAME, age, col, format_label_map, int, items, name, string, template_containers,
    text, typed_cells, wide,
};

type Cells = fn(&Value, Timestamp) -> Vec<Value>;

/// The columns and cells of a kind this module prints, if it prints it.
pub(super) fn printer(group: &str, resource: &str) -> Option<(&'static [Column], Cells)> {
    Some(match (group, resource) {
        ("", "persistentvolumes") => (PV_COLUMNS, |v, now| {
            typed_cells::<PersistentVolume>(v, now, pv_cells)
        }),
        ("", "podtemplates") => (POD_TEMPLATE_COLUMNS, |v, now| {
            typed_cells::<PodTemplate>(v, now, pod_template_cells)
        }),
        ("apps", "controllerrevisions") => (CONTROLLER_REVISION_COLUMNS, controller_revision_cells),
        ("networking.k8s.io", "ingressclasses") => (INGRESS_CLASS_COLUMNS, |v, now| {
            typed_cells::<IngressClass>(v, now, ingress_class_cells)
        }),
        ("discovery.k8s.io", "endpointslices") => (ENDPOINT_SLICE_COLUMNS, |v, now| {
            typed_cells::<EndpointSlice>(v, now, endpoint_slice_cells)
        }),
        ("node.k8s.io", "runtimeclasses") => (RUNTIME_CLASS_COLUMNS, runtime_class_cells),
        ("certificates.k8s.io", "certificatesigningrequests") => (CSR_COLUMNS, |v, now| {
            typed_cells::<CertificateSigningRequest>(v, now, csr_cells)
        }),
        ("storage.k8s.io", "csidrivers") => (CSI_DRIVER_COLUMNS, |v, now| {
            typed_cells::<CSIDriver>(v, now, csi_driver_cells)
        }),
        ("storage.k8s.io", "csinodes") => (CSI_NODE_COLUMNS, |v, now| {
            typed_cells::<CSINode>(v, now, csi_node_cells)
        }),
        ("storage.k8s.io", "volumeattachments") => (VOLUME_ATTACHMENT_COLUMNS, |v, now| {
            typed_cells::<VolumeAttachment>(v, now, volume_attachment_cells)
        }),
        (
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations" | "validatingwebhookconfigurations",
        ) => (WEBHOOK_COLUMNS, webhook_cells),
        ("admissionregistration.k8s.io", "validatingadmissionpolicies") => {
            (POLICY_COLUMNS, |v, now| {
                typed_cells::<ValidatingAdmissionPolicy>(v, now, policy_cells)
            })
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings") => {
            (POLICY_BINDING_COLUMNS, |v, now| {
                typed_cells::<ValidatingAdmissionPolicyBinding>(v, now, policy_binding_cells)
            })
        }
        ("flowcontrol.apiserver.k8s.io", "flowschemas") => (FLOW_SCHEMA_COLUMNS, |v, now| {
            typed_cells::<FlowSchema>(v, now, flow_schema_cells)
        }),
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations") => {
            (PRIORITY_LEVEL_COLUMNS, |v, now| {
                typed_cells::<PriorityLevelConfiguration>(v, now, priority_level_cells)
            })
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

fn pv_cells(pv: &PersistentVolume, object: &Value, now: Timestamp) -> Vec<Value> {
    let spec = pv.spec.as_ref();
    let status = pv.status.as_ref();
    let claim = match spec.and_then(|s| s.claim_ref.as_ref()) {
        Some(c) => format!("{}/{}", string(&c.namespace), string(&c.name)),
        None => String::new(),
    };
    let phase = if pv.metadata.deletion_timestamp.is_some() {
        "Terminating"
    } else {
        status.and_then(|s| s.phase.as_deref()).unwrap_or("")
    };
    let of_spec = |field: fn(&PersistentVolumeSpec) -> &Option<String>| {
        spec.and_then(|s| field(s).as_deref()).unwrap_or("")
    };
    let capacity = spec
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .map_or("", |q| q.0.as_str());
    vec![
        name(object),
        capacity.into(),
        access_modes(spec.and_then(|s| s.access_modes.as_deref())).into(),
        of_spec(|s| &s.persistent_volume_reclaim_policy).into(),
        phase.into(),
        claim.into(),
        of_spec(|s| &s.storage_class_name).into(),
        or_unset(of_spec(|s| &s.volume_attributes_class_name)).into(),
        status
            .and_then(|s| s.reason.as_deref())
            .unwrap_or("")
            .into(),
        age(object, now),
        or_unset(of_spec(|s| &s.volume_mode)).into(),
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

fn pod_template_cells(t: &PodTemplate, object: &Value, _now: Timestamp) -> Vec<Value> {
    let template = t.template.as_ref();
    let [names, images] = template_containers(template.and_then(|t| t.spec.as_ref()));
    let labels = template.and_then(|t| t.metadata.as_ref()?.labels.as_ref());
    vec![name(object), names, images, format_label_map(labels).into()]
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
    let metadata = ObjectMeta::of(r);
    let controller = metadata
        .controller()
        .map(|o| {
            let group = o
                .api_version
                .as_deref()
                .and_then(|v| v.rsplit_once('/'))
                .map_or("", |(g, _)| g);
            let kind = o.kind.as_deref().unwrap_or("").to_lowercase();
            let qualified = if group.is_empty() {
                kind
            } else {
                format!("{kind}.{group}")
            };
            format!("{qualified}/{}", o.name.as_deref().unwrap_or(""))
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

fn ingress_class_cells(c: &IngressClass, object: &Value, now: Timestamp) -> Vec<Value> {
    let spec = c.spec.as_ref();
    let parameters = match spec.and_then(|s| s.parameters.as_ref()) {
        Some(p) => {
            let kind = match &p.api_group {
                Some(group) => format!("{}.{group}", p.kind),
                None => p.kind.clone(),
            };
            format!("{kind}/{}", p.name)
        }
        None => "<none>".into(),
    };
    vec![
        name(object),
        spec.and_then(|s| s.controller.as_deref())
            .unwrap_or("")
            .into(),
        parameters.into(),
        age(object, now),
    ]
}

const ENDPOINT_SLICE_COLUMNS: &[Column] = &[
    NAME,
    col("AddressType", "string", "The IP protocol for this slice"),
    col("Ports", "string", "The ports for this slice"),
    col("Endpoints", "string", "First 3 endpoints for this slice"),
    AGE,
];

fn endpoint_slice_cells(s: &EndpointSlice, object: &Value, now: Timestamp) -> Vec<Value> {
    let ports: Vec<String> = s
        .ports
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|p| p.port.map_or("<unset>".into(), |n| n.to_string()))
        .collect();
    let ports = if ports.is_empty() {
        "<unset>".to_string()
    } else {
        ports.join(",")
    };
    let addresses: Vec<&str> = s
        .endpoints
        .iter()
        .flat_map(|e| e.addresses.iter().map(String::as_str))
        .collect();
    let endpoints = match addresses.len() {
        0 => "<unset>".to_string(),
        n if n > 3 => format!("{} + {} more...", addresses[..3].join(","), n - 3),
        _ => addresses.join(","),
    };
    vec![
        name(object),
        s.address_type.as_str().into(),
        ports.into(),
        endpoints.into(),
        age(object, now),
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

fn csr_cells(c: &CertificateSigningRequest, object: &Value, now: Timestamp) -> Vec<Value> {
    let status = c.status.as_ref();
    let mut conditions: Vec<String> = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|x| x.status != "False")
        .map(|x| x.type_.clone())
        .collect();
    if status
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|cert| !cert.0.is_empty())
    {
        conditions.push("Issued".into());
    }
    let condition = if conditions.is_empty() {
        "Pending".to_string()
    } else {
        conditions.join(",")
    };
    let duration = c.spec.expiration_seconds.map_or("<none>".to_string(), |s| {
        super::human_duration(std::time::Duration::from_secs(
            u64::try_from(s).unwrap_or(0),
        ))
    });
    vec![
        name(object),
        age(object, now),
        c.spec.signer_name.as_str().into(),
        string(&c.spec.username).into(),
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

fn csi_driver_cells(d: &CSIDriver, object: &Value, now: Timestamp) -> Vec<Value> {
    let flag = |v: Option<bool>, default: bool| Value::Bool(v.unwrap_or(default));
    let tokens: Vec<String> = d
        .spec
        .token_requests
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|t| match t.expiration_seconds {
            Some(s) => format!("{}:{s}s", t.audience),
            None => t.audience.clone(),
        })
        .collect();
    let modes = d
        .spec
        .volume_lifecycle_modes
        .as_deref()
        .unwrap_or_default()
        .join(",");
    vec![
        name(object),
        flag(d.spec.attach_required, true),
        flag(d.spec.pod_info_on_mount, false),
        flag(d.spec.storage_capacity, false),
        or_none(&tokens.join(",")).into(),
        flag(d.spec.requires_republish, false),
        or_none(&modes).into(),
        age(object, now),
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

fn csi_node_cells(n: &CSINode, object: &Value, now: Timestamp) -> Vec<Value> {
    let drivers = i64::try_from(n.spec.drivers.len()).unwrap_or(i64::MAX);
    vec![name(object), drivers.into(), age(object, now)]
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

fn volume_attachment_cells(v: &VolumeAttachment, object: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(object),
        v.spec.attacher.as_str().into(),
        string(&v.spec.source.persistent_volume_name).into(),
        v.spec.node_name.as_str().into(),
        Value::Bool(v.status.as_ref().is_some_and(|s| s.attached)),
        age(object, now),
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

fn policy_cells(p: &ValidatingAdmissionPolicy, object: &Value, now: Timestamp) -> Vec<Value> {
    let spec = p.spec.as_ref();
    let param_kind = match spec.and_then(|s| s.param_kind.as_ref()) {
        Some(k) => format!("{}/{}", string(&k.api_version), string(&k.kind)),
        None => "<unset>".into(),
    };
    let validations = spec
        .and_then(|s| s.validations.as_ref())
        .map_or(0, Vec::len);
    vec![
        name(object),
        i64::try_from(validations).unwrap_or(i64::MAX).into(),
        param_kind.into(),
        age(object, now),
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

fn policy_binding_cells(
    b: &ValidatingAdmissionPolicyBinding,
    object: &Value,
    now: Timestamp,
) -> Vec<Value> {
    let spec = b.spec.as_ref();
    let param = match spec.and_then(|s| s.param_ref.as_ref()) {
        Some(r) => {
            let ns = string(&r.namespace);
            let n = r.name.as_deref().unwrap_or("*");
            if ns.is_empty() {
                n.to_string()
            } else {
                format!("{ns}/{n}")
            }
        }
        None => "<unset>".into(),
    };
    vec![
        name(object),
        spec.and_then(|s| s.policy_name.as_deref())
            .unwrap_or("")
            .into(),
        param.into(),
        age(object, now),
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

fn flow_schema_cells(f: &FlowSchema, object: &Value, now: Timestamp) -> Vec<Value> {
    let spec = f.spec.as_ref();
    let method = spec
        .and_then(|s| s.distinguisher_method.as_ref())
        .map_or("", |m| m.type_.as_str());
    let missing = f
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_.as_deref() == Some("Dangling"))
        .and_then(|c| c.status.as_deref())
        .unwrap_or("?")
        .to_string();
    vec![
        name(object),
        spec.map_or("", |s| s.priority_level_configuration.name.as_str())
            .into(),
        spec.and_then(|s| s.matching_precedence)
            .unwrap_or(0)
            .to_string()
            .into(),
        or_none(method).into(),
        age(object, now),
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

fn priority_level_cells(
    p: &PriorityLevelConfiguration,
    object: &Value,
    now: Timestamp,
) -> Vec<Value> {
    let spec = p.spec.as_ref();
    let limited = spec.and_then(|s| s.limited.as_ref());
    let queuing = limited
        .and_then(|l| l.limit_response.as_ref())
        .and_then(|r| r.queuing.as_ref());
    let shown = |v: Option<i32>| v.map_or("<none>".to_string(), |n| n.to_string());
    let shares = match limited {
        Some(l) => shown(l.nominal_concurrency_shares),
        None => "<none>".to_string(),
    };
    vec![
        name(object),
        spec.map_or("", |s| s.type_.as_str()).into(),
        shares.into(),
        shown(queuing.and_then(|q| q.queues)).into(),
        shown(queuing.and_then(|q| q.hand_size)).into(),
        shown(queuing.and_then(|q| q.queue_length_limit)).into(),
        age(object, now),
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
