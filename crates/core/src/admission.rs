//! Fargate admission: what the webhook changes on a pod it places, and which pods Fargate refuses,
//! with AWS's exact wording (fargate-behavior.md §1.2 and §3.1).

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Container, Pod, Volume};

use crate::quantity;
use crate::sizing::FargateSize;
use crate::{
    CAPACITY_ANNOTATION, FARGATE_PRIORITY, FARGATE_PRIORITY_CLASS, FARGATE_SCHEDULER,
    LOGGING_ANNOTATION, PROFILE_LABEL,
};

pub const REFUSAL_PREFIX: &str = "Pod not supported on Fargate: ";

/// Capabilities a Fargate container may add. Names match literally: `CAP_CHOWN` is refused.
pub const ALLOWED_CAPABILITIES: [&str; 14] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The resources Fargate sizes a pod by; any other requested resource is refused.
pub const SIZED_RESOURCES: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];

/// What the cluster knows of a PersistentVolumeClaim a pod mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimState {
    /// Not known here (e.g. `plan` without the claim in its inputs): not checked.
    Unknown,
    NotFound,
    NotBound,
    Bound {
        volume: String,
        csi_driver: Option<String>,
    },
}

/// The CSI driver of the only persistent volumes Fargate mounts (EFS, statically provisioned).
pub const EFS_CSI_DRIVER: &str = "efs.csi.aws.com";

/// Looks up claims by namespace and name.
pub trait ClaimLookup {
    fn claim(&self, namespace: &str, name: &str) -> ClaimState;
}

/// Knows no claims: every PVC check is skipped.
pub struct NoClaims;

impl ClaimLookup for NoClaims {
    fn claim(&self, _: &str, _: &str) -> ClaimState {
        ClaimState::Unknown
    }
}

impl<F: Fn(&str, &str) -> ClaimState> ClaimLookup for F {
    fn claim(&self, namespace: &str, name: &str) -> ClaimState {
        self(namespace, name)
    }
}

/// Every reason Fargate refuses a pod, in AWS's clause order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub clauses: Vec<String>,
}

impl fmt::Display for Refusal {
    /// `Pod not supported on Fargate: fields not supported: HostNetwork, port contains HostIP or HostPort`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{REFUSAL_PREFIX}{}", self.clauses.join(", "))
    }
}

impl std::error::Error for Refusal {}

/// Check a pod against what Fargate supports. All problems are reported at once.
pub fn validate(pod: &Pod, claims: &dyn ClaimLookup) -> Result<(), Refusal> {
    let mut clauses = Vec::new();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    if pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "DaemonSet")
    {
        clauses.push("DaemonSet not supported".to_string());
    }
    let Some(spec) = &pod.spec else {
        return finish(clauses);
    };

    let host_fields: Vec<&str> = [
        (spec.host_network, "HostNetwork"),
        (spec.host_pid, "HostPID"),
        (spec.host_ipc, "HostIPC"),
    ]
    .into_iter()
    .filter(|(set, _)| *set == Some(true))
    .map(|(_, name)| name)
    .collect();
    if !host_fields.is_empty() {
        clauses.push(format!("fields not supported: {}", host_fields.join(", ")));
    }

    let all_containers = || {
        spec.init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
    };

    let per_container: Vec<String> = all_containers()
        .map(security_context_problems)
        .filter(|p| !p.is_empty())
        .map(|p| p.join(", "))
        .collect();
    if !per_container.is_empty() {
        clauses.push(format!(
            "invalid SecurityContext fields: {}",
            per_container.join(",")
        ));
    }

    let volume_problems: Vec<String> = spec
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| volume_problem(v, namespace, claims))
        .collect();
    if !volume_problems.is_empty() {
        clauses.push(format!(
            "volumes not supported: {}",
            volume_problems.join(", ")
        ));
    }

    if all_containers().any(|c| c.volume_devices.as_ref().is_some_and(|d| !d.is_empty())) {
        clauses.push("volumeDevices not supported".to_string());
    }

    let host_port = all_containers()
        .flat_map(|c| c.ports.iter().flatten())
        .any(|p| {
            p.host_port.is_some_and(|hp| hp > 0)
                || p.host_ip.as_ref().is_some_and(|ip| !ip.is_empty())
        });
    if host_port {
        clauses.push("port contains HostIP or HostPort".to_string());
    }

    let extended = extended_resources(all_containers());
    if !extended.is_empty() {
        // No AWS wording is published for this refusal; the clause follows the form of the others.
        clauses.push(format!("resources not supported: {}", extended.join(", ")));
    }
    finish(clauses)
}

fn finish(clauses: Vec<String>) -> Result<(), Refusal> {
    if clauses.is_empty() {
        Ok(())
    } else {
        Err(Refusal { clauses })
    }
}

fn security_context_problems(container: &Container) -> Vec<String> {
    let mut out = Vec::new();
    let Some(sc) = &container.security_context else {
        return out;
    };
    let refused_caps: Vec<&str> = sc
        .capabilities
        .iter()
        .flat_map(|c| c.add.iter().flatten())
        .map(String::as_str)
        .filter(|cap| !ALLOWED_CAPABILITIES.contains(cap))
        .collect();
    if !refused_caps.is_empty() {
        out.push(format!("Capabilities added: {}", refused_caps.join(", ")));
    }
    if sc.allow_privilege_escalation == Some(true) {
        out.push("AllowPrivilegeEscalation".to_string());
    }
    if sc.privileged == Some(true) {
        out.push("Privileged".to_string());
    }
    out
}

fn volume_problem(volume: &Volume, namespace: &str, claims: &dyn ClaimLookup) -> Option<String> {
    if let Some(pvc) = &volume.persistent_volume_claim {
        let name = &volume.name;
        let claim = &pvc.claim_name;
        return match claims.claim(namespace, claim) {
            ClaimState::Unknown => None,
            ClaimState::NotFound => Some(format!(
                "{name} not supported because: persistentvolumeclaim \"{claim}\" not found"
            )),
            ClaimState::NotBound => {
                Some(format!("{name} not supported because: PVC {claim} not bound"))
            }
            ClaimState::Bound { volume: pv, csi_driver: None } => Some(format!(
                "{name} not supported because: PVC {claim} bound to invalid PV {pv} with nil CSI spec"
            )),
            ClaimState::Bound { volume: pv, csi_driver: Some(driver) } => (driver != EFS_CSI_DRIVER)
                .then(|| {
                    format!(
                        "{name} not supported because: PVC {claim} bound to invalid PV {pv} with CSI Driver: {driver}"
                    )
                }),
        };
    }
    let supported = volume.empty_dir.is_some()
        || volume.secret.is_some()
        || volume.config_map.is_some()
        || volume.projected.is_some()
        || volume.downward_api.is_some()
        || volume.nfs.is_some();
    let unsupported = volume_has_other_source(volume);
    // A volume with no source at all is defaulted to emptyDir by the API server.
    (!supported && unsupported).then(|| format!("{} is of an unsupported volume Type", volume.name))
}

/// Whether any volume source other than the supported ones is set. Checked through JSON so that
/// sources added in later Kubernetes versions count too.
fn volume_has_other_source(volume: &Volume) -> bool {
    match serde_json::to_value(volume) {
        Ok(serde_json::Value::Object(map)) => map.keys().any(|k| k != "name"),
        _ => true,
    }
}

/// Resources other than cpu, memory and ephemeral-storage that any container asks for, sorted.
fn extended_resources<'a>(containers: impl Iterator<Item = &'a Container>) -> Vec<String> {
    let mut names: Vec<String> = containers
        .filter_map(|c| c.resources.as_ref())
        .flat_map(|r| r.requests.iter().flatten().chain(r.limits.iter().flatten()))
        .filter(|(name, _)| !SIZED_RESOURCES.contains(&name.as_str()))
        // A zero request asks for nothing; an unparseable one is refused all the same.
        .filter(|(_, q)| quantity::base_units(&q.0).map_or(true, |v| v > 0))
        .map(|(name, _)| name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The logging status Fargate records on a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoggingStatus {
    Enabled,
    Disabled(String),
}

/// The reason when there is no `aws-logging` ConfigMap in `aws-observability`.
pub const LOGGING_CONFIGMAP_NOT_FOUND: &str = "LOGGING_CONFIGMAP_NOT_FOUND";

impl LoggingStatus {
    pub fn configmap_not_found() -> Self {
        LoggingStatus::Disabled(LOGGING_CONFIGMAP_NOT_FOUND.to_string())
    }
}

impl fmt::Display for LoggingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoggingStatus::Enabled => f.write_str("LoggingEnabled"),
            LoggingStatus::Disabled(reason) => write!(f, "LoggingDisabled: {reason}"),
        }
    }
}

/// The Fargate webhook's changes to a pod a profile takes: its scheduler, its profile label and
/// the priority Fargate forces on every pod.
pub fn mutate(pod: &mut Pod, profile: &str) {
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(PROFILE_LABEL.to_string(), profile.to_string());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.scheduler_name = Some(FARGATE_SCHEDULER.to_string());
    spec.priority_class_name = Some(FARGATE_PRIORITY_CLASS.to_string());
    spec.priority = Some(FARGATE_PRIORITY);
}

/// The annotations Fargate records once it has sized the pod; a user's own `CapacityProvisioned`
/// is overwritten.
pub fn annotate(pod: &mut Pod, size: FargateSize, logging: &LoggingStatus) {
    let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(CAPACITY_ANNOTATION.to_string(), size.to_string());
    annotations.insert(LOGGING_ANNOTATION.to_string(), logging.to_string());
}

#[cfg(test)]
mod tests;
