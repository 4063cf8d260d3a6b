//! Defaulting and the validation controllers rely on, used by the strategies: the fields the
//! API server fills in (restart policy, replicas, strategies, Job selectors and labels) and the
//! rules that keep a running pod's spec fixed.
//!
//! They edit the untyped body of the object being written (`DynamicObject::field_mut`), which
//! has not been validated yet: a typed decode would refuse, with other words, what validation
//! must report, and drop fields k8s-openapi does not know.

use crate::resources::ResourceType;
use serde_json::{Map, Value, json};

use crate::error::{KubeError, Result};
use crate::meta::{DynamicObject, Field};

/// The object at `key` of a map, made an empty one when missing or null.
fn obj_in<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    let entry = m.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if entry.is_null() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut()
}

fn default(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), value);
    }
}

/// A pod's defaults: its spec's, and nothing else (its status is set on create only).
pub(crate) fn pod(rt: &ResourceType, v: &mut DynamicObject) -> Result<()> {
    let name = v.metadata.name().to_string();
    pod_spec(rt, &name, &mut v.body, "spec")
}

/// A namespace's defaults: the label naming it and the `kubernetes` finalizer.
pub(crate) fn namespace(v: &mut DynamicObject) {
    let ns = v.metadata.name().to_string();
    // Labels written as something other than an object (or null) are left for validation.
    let meta = &mut v.metadata;
    if meta
        .other
        .get(Field::Labels.key())
        .is_none_or(|l| l.is_object() || l.is_null())
    {
        meta.insert_label("kubernetes.io/metadata.name", ns);
    }
    v.body
        .insert("spec".into(), json!({"finalizers": ["kubernetes"]}));
}

/// A CronJob's defaults and the checks its controller relies on.
pub(crate) fn cronjob(rt: &ResourceType, v: &mut DynamicObject) -> Result<()> {
    let name = v.metadata.name().to_string();
    let spec = obj_in(&mut v.body, "spec").ok_or_else(|| bad("spec"))?;
    if spec
        .get("schedule")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(KubeError::invalid(
            rt,
            &name,
            "spec.schedule",
            "Required value",
        ));
    }
    default(spec, "concurrencyPolicy", json!("Allow"));
    default(spec, "suspend", json!(false));
    default(spec, "successfulJobsHistoryLimit", json!(3));
    default(spec, "failedJobsHistoryLimit", json!(1));
    let jt = &mut v.field_mut("spec")["jobTemplate"];
    if !jt.is_object() {
        return Err(KubeError::invalid(
            rt,
            &name,
            "spec.jobTemplate",
            "Required value",
        ));
    }
    pod_template(rt, &name, &mut jt["spec"], "spec.jobTemplate.spec.template")
}

/// A Job's defaults: its selector and its pods' labels (unless `manualSelector`), and its
/// template's.
pub(crate) fn job_defaults(rt: &ResourceType, v: &mut DynamicObject) -> Result<()> {
    let name = v.metadata.name().to_string();
    job(rt, &name, v, "spec")
}

/// The defaults of a Deployment, ReplicaSet, StatefulSet or DaemonSet, and the checks their
/// controllers rely on.
pub(crate) fn workload_defaults(rt: &ResourceType, v: &mut DynamicObject) -> Result<()> {
    let name = v.metadata.name().to_string();
    workload(rt, &name, v)
}

/// A ReplicationController's defaults (`SetDefaults_ReplicationController`): one replica, and
/// the template's labels as its selector and its own labels when it has none.
pub(crate) fn replication_controller(v: &mut DynamicObject) {
    let labels = v.spec()["template"]["metadata"]["labels"].clone();
    let Some(spec) = v.body.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    default(spec, "replicas", json!(1));
    let has_selector = spec
        .get("selector")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty());
    if !has_selector && labels.is_object() {
        spec.insert("selector".into(), labels.clone());
    }
    let meta = &mut v.metadata;
    let has_labels = meta.labels.as_ref().is_some_and(|m| !m.is_empty())
        || meta
            .other
            .get(Field::Labels.key())
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty());
    if !has_labels && labels.is_object() {
        meta.set_raw(Field::Labels, labels);
    }
}

fn bad(field: &str) -> KubeError {
    KubeError::BadRequest(format!("{field} must be an object"))
}

fn workload(rt: &ResourceType, name: &str, v: &mut DynamicObject) -> Result<()> {
    let kind = rt.kind;
    {
        let spec = obj_in(&mut v.body, "spec").ok_or_else(|| bad("spec"))?;
        if kind != "DaemonSet" {
            default(spec, "replicas", json!(1));
        }
        // ReplicaSets have no revision history (upstream's type has no such field).
        if kind != "ReplicaSet" {
            default(spec, "revisionHistoryLimit", json!(10));
        }
        match kind {
            "Deployment" => {
                default(
                    spec,
                    "strategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
                );
                default(spec, "progressDeadlineSeconds", json!(600));
            }
            "DaemonSet" => default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            ),
            "StatefulSet" => {
                default(spec, "podManagementPolicy", json!("OrderedReady"));
                default(
                    spec,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                );
                default(spec, "serviceName", json!(""));
            }
            _ => {}
        }
    }
    let selector = &v.spec()["selector"];
    if !selector.is_object()
        || (selector["matchLabels"]
            .as_object()
            .is_none_or(Map::is_empty)
            && selector["matchExpressions"]
                .as_array()
                .is_none_or(Vec::is_empty))
    {
        return Err(KubeError::invalid(
            rt,
            name,
            "spec.selector",
            "Required value",
        ));
    }
    let labels = v.spec()["template"]["metadata"]["labels"].clone();
    if let Some(want) = v.spec()["selector"]["matchLabels"].as_object() {
        let ok = want
            .iter()
            .all(|(k, val)| labels.get(k).is_some_and(|l| l == val));
        if !ok {
            let shown = format!(
                "map[string]string{{{}}}",
                labels
                    .as_object()
                    .map(|m| m
                        .iter()
                        .map(|(k, v)| format!("{k:?}:{}", v))
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            );
            return Err(KubeError::invalid(
                rt,
                name,
                "spec.template.metadata.labels",
                &format!("Invalid value: {shown}: `selector` does not match template `labels`"),
            ));
        }
    }
    pod_template(rt, name, v.field_mut("spec"), "spec.template")
}

fn pod_template(rt: &ResourceType, name: &str, spec: &mut Value, path: &str) -> Result<()> {
    let template = &mut spec["template"];
    if !template.is_object() {
        return Err(KubeError::invalid(rt, name, path, "Required value"));
    }
    // A template whose fields have the wrong types is refused now, not by every pod made from it.
    <k8s_openapi::api::core::v1::PodTemplateSpec as serde::Deserialize>::deserialize(&*template)
        .map_err(|e| {
            KubeError::BadRequest(format!(
                "{} in version \"{}\" cannot be handled as a {}: {path}: {e}",
                rt.kind,
                rt.api_version(),
                rt.kind
            ))
        })?;
    let Some(template) = template.as_object_mut() else {
        return Err(KubeError::invalid(rt, name, path, "Required value"));
    };
    pod_spec(rt, name, template, &format!("{path}.spec"))
}

fn job(rt: &ResourceType, name: &str, v: &mut DynamicObject, path: &str) -> Result<()> {
    let uid = v.metadata.uid().to_string();
    {
        let spec = obj_in(&mut v.body, "spec").ok_or_else(|| bad("spec"))?;
        default(spec, "parallelism", json!(1));
        default(spec, "completions", json!(1));
        default(spec, "backoffLimit", json!(6));
        default(spec, "completionMode", json!("NonIndexed"));
        default(spec, "suspend", json!(false));
        // Upstream labels a Job's pods with its uid and selects on that, unless the user chose
        // their own selector with manualSelector.
        if !spec
            .get("manualSelector")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            spec.insert(
                "selector".into(),
                json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
            );
        }
    }
    if !v.spec()["manualSelector"].as_bool().unwrap_or(false) {
        let name_label = v.metadata.name().to_string();
        let template = &mut v.field_mut("spec")["template"];
        // A template applied without metadata gets it: its pods must carry the labels the
        // Job's own selector matches.
        if let Some(template) = template.as_object_mut()
            && let Some(metadata) = obj_in(template, "metadata")
            && let Some(labels) = obj_in(metadata, "labels")
        {
            labels.insert("batch.kubernetes.io/controller-uid".into(), json!(uid));
            labels.insert("controller-uid".into(), json!(uid));
            labels.insert("batch.kubernetes.io/job-name".into(), json!(name_label));
            labels.insert("job-name".into(), json!(name_label));
        }
    }
    pod_template(rt, name, v.field_mut("spec"), &format!("{path}.template"))?;
    let policy = v.spec()["template"]["spec"]["restartPolicy"]
        .as_str()
        .unwrap_or("");
    if policy != "Never" && policy != "OnFailure" {
        return Err(KubeError::invalid(
            rt,
            name,
            &format!("{path}.template.spec.restartPolicy"),
            &format!("Unsupported value: \"{policy}\": supported values: \"OnFailure\", \"Never\""),
        ));
    }
    Ok(())
}

/// Pod-spec defaulting, for pods and templates: `v` holds `spec` (a pod's body, a template).
fn pod_spec(rt: &ResourceType, name: &str, v: &mut Map<String, Value>, path: &str) -> Result<()> {
    let is_template = rt.kind != "Pod";
    let spec = obj_in(v, "spec").ok_or_else(|| bad("spec"))?;
    let containers_ok = spec
        .get("containers")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty());
    if !containers_ok {
        return Err(KubeError::invalid(
            rt,
            name,
            &format!("{path}.containers"),
            "Required value",
        ));
    }
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "securityContext", json!({}));
    if !is_template {
        default(spec, "serviceAccountName", json!("default"));
        default(spec, "serviceAccount", json!("default"));
        default(spec, "enableServiceLinks", json!(true));
        default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
        default(spec, "priority", json!(0));
        // The DefaultTolerationSeconds admission plugin.
        let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
        if let Some(list) = tolerations.as_array_mut() {
            for key in [
                "node.kubernetes.io/not-ready",
                "node.kubernetes.io/unreachable",
            ] {
                if !list.iter().any(|t| t["key"] == key) {
                    list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
                }
            }
        }
    }
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for (i, c) in containers.iter_mut().enumerate() {
            let Some(c) = c.as_object_mut() else {
                return Err(KubeError::BadRequest(format!(
                    "{path}.{list}[{i}] must be an object"
                )));
            };
            if c.get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(KubeError::invalid(
                    rt,
                    name,
                    &format!("{path}.{list}[{i}].name"),
                    "Required value",
                ));
            }
            let image = c.get("image").and_then(Value::as_str).unwrap_or("");
            if image.is_empty() {
                return Err(KubeError::invalid(
                    rt,
                    name,
                    &format!("{path}.{list}[{i}].image"),
                    "Required value",
                ));
            }
            let latest = image.ends_with(":latest")
                || !image.rsplit('/').next().unwrap_or(image).contains(':');
            let pull = if latest && !image.contains('@') {
                "Always"
            } else {
                "IfNotPresent"
            };
            default(c, "imagePullPolicy", json!(pull));
            default(c, "terminationMessagePath", json!("/dev/termination-log"));
            default(c, "terminationMessagePolicy", json!("File"));
            default(c, "resources", json!({}));
        }
    }
    Ok(())
}

/// `Guaranteed`, `Burstable` or `BestEffort`, from the containers' requests and limits.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|k| spec[*k].as_array())
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let requests = c["resources"]["requests"].as_object();
        let limits = c["resources"]["limits"].as_object();
        if requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(res));
            let request = requests.and_then(|r| r.get(res)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Upstream lets a pod's spec change only in a few places once it exists.
pub fn check_pod_update(rt: &ResourceType, old: &DynamicObject, new: &DynamicObject) -> Result<()> {
    let strip = |v: &DynamicObject| {
        let mut s = v.spec().clone();
        for list in ["containers", "initContainers"] {
            if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs {
                    if let Some(c) = c.as_object_mut() {
                        c.remove("image");
                    }
                }
            }
        }
        if let Some(o) = s.as_object_mut() {
            o.remove("activeDeadlineSeconds");
            o.remove("tolerations");
            o.remove("terminationGracePeriodSeconds");
        }
        s
    };
    if strip(old) != strip(new) {
        return Err(KubeError::invalid(
            rt,
            old.metadata.name(),
            "spec",
            "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
    Ok(())
}

/// `stringData` written into `data` (base64), as the API server merges it, and `type` `Opaque`
/// when unset.
pub(crate) fn secret(v: &mut DynamicObject) {
    use base64::Engine;
    let o = &mut v.body;
    if let Some(Value::Object(strings)) = o.remove("stringData") {
        let data = o.entry("data").or_insert_with(|| Value::Object(Map::new()));
        if data.is_null() {
            *data = Value::Object(Map::new());
        }
        if let Some(data) = data.as_object_mut() {
            for (k, s) in strings {
                let text = s.as_str().unwrap_or_default();
                data.insert(
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(text)),
                );
            }
        }
    }
    if o.get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        o.insert("type".into(), json!("Opaque"));
    }
}

/// A Service's defaults (`SetDefaults_Service`): type ClusterIP, session affinity None, each
/// port TCP with its targetPort its port, and the traffic policies its type has.
pub(crate) fn service(v: &mut DynamicObject) {
    let Some(spec) = obj_in(&mut v.body, "spec") else {
        return;
    };
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    let kind = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if kind != "ExternalName" {
        default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if kind == "NodePort" || kind == "LoadBalancer" {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if kind == "LoadBalancer" {
        default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            default(port, "protocol", json!("TCP"));
            if let Some(number) = port.get("port").cloned() {
                default(port, "targetPort", number);
            }
        }
    }
}

/// An HPA's defaults: at least one replica, and the 80% average CPU utilization target when it
/// names no metric.
pub(crate) fn horizontal_pod_autoscaler(v: &mut DynamicObject) {
    let Some(spec) = obj_in(&mut v.body, "spec") else {
        return;
    };
    default(spec, "minReplicas", json!(1));
    if spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
    // A behavior given is completed with the default rules (`GenerateHPAScale{Up,Down}Rules`);
    // none given stays none (the controller applies the same defaults).
    if let Some(behavior) = spec.get_mut("behavior").and_then(Value::as_object_mut) {
        for (direction, window, policies) in [
            (
                "scaleUp",
                0,
                json!([{"type": "Pods", "value": 4, "periodSeconds": 15},
                       {"type": "Percent", "value": 100, "periodSeconds": 15}]),
            ),
            (
                "scaleDown",
                300,
                json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
            ),
        ] {
            let rules = behavior.entry(direction).or_insert_with(|| json!({}));
            if let Some(rules) = rules.as_object_mut() {
                default(rules, "stabilizationWindowSeconds", json!(window));
                default(rules, "selectPolicy", json!("Max"));
                default(rules, "policies", policies);
            }
        }
    }
}

/// A PriorityClass preempts lower priorities unless it says otherwise.
pub(crate) fn priority_class(v: &mut DynamicObject) {
    default(
        &mut v.body,
        "preemptionPolicy",
        json!("PreemptLowerPriority"),
    );
}

/// A StorageClass deletes its volumes and binds them at once unless it says otherwise.
pub(crate) fn storage_class(v: &mut DynamicObject) {
    default(&mut v.body, "reclaimPolicy", json!("Delete"));
    default(&mut v.body, "volumeBindingMode", json!("Immediate"));
}

/// A NetworkPolicy's `policyTypes`: Ingress, and Egress when it has egress rules.
pub(crate) fn network_policy(v: &mut DynamicObject) {
    let Some(spec) = obj_in(&mut v.body, "spec") else {
        return;
    };
    if spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        let egress = spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty());
        let types = if egress {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
        spec.insert("policyTypes".into(), types);
    }
}
