//! The horizontal pod autoscaler (`autoscaling/v2`), as kube-controller-manager runs it: every
//! sync period (`up --horizontal-pod-autoscaler-sync-period`, 15 s) each HPA reads its target's
//! scale, its pods' usage from the resource metrics the API serves (`metrics.k8s.io`, the same
//! samples `kubectl top` shows), proposes a count per metric ([`replicas::propose`]), takes the
//! largest, normalizes it by its behavior ([`replicas::normalize`]), scales the target, and
//! writes its status and conditions with upstream's reasons and messages. Resource and
//! ContainerResource metrics are computed; Pods, Object and External metrics need a custom or
//! external metrics API, which EKS does not have either until one is installed: they are
//! reported as upstream reports a missing API.

pub mod replicas;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition,
    HorizontalPodAutoscalerStatus, MetricSpec, MetricStatus, MetricTarget, MetricValueStatus,
    ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector as TypedSelector, Time};
use localfargate_core::quantity;
use localfargate_core::selectors::LabelSelector;
use localfargate_registry::meta::labels_of;
use localfargate_registry::objects::{
    KubeError, Objects, is_deleting, is_finished, name_of, namespace_of, resource, uid_of,
};
use localfargate_registry::resources::ResourceType;
use localfargate_registry::typed;
use serde_json::{Value, json};

use crate::context::ClusterContext;
use crate::events::{self, EventType};
use replicas::{History, MetricError, PodSample, Proposal, Rules, Target};

const CONTROLLER: &str = "horizontal-pod-autoscaler";

pub async fn run(ctx: Arc<ClusterContext>) {
    let mut histories: HashMap<String, History> = HashMap::new();
    loop {
        let period = ctx.settings.hpa_sync_period;
        sync_all(&ctx, &mut histories);
        tokio::time::sleep(period).await;
    }
}

fn sync_all(ctx: &ClusterContext, histories: &mut HashMap<String, History>) {
    let hpas = resource("autoscaling", "horizontalpodautoscalers");
    let Ok((all, _)) = ctx.objects.list(hpas, None) else {
        return;
    };
    let live: Vec<&str> = all.iter().map(|o| uid_of(&o.value)).collect();
    histories.retain(|uid, _| live.contains(&uid.as_str()));
    for json in all.iter().map(|o| &o.value) {
        if is_deleting(json) {
            continue;
        }
        let Some(hpa) = typed::decode_or_log::<HorizontalPodAutoscaler>(json) else {
            continue;
        };
        let history = histories.entry(uid_of(json).to_string()).or_default();
        if let Err(e) = reconcile(ctx, &Hpa { json, hpa: &hpa }, history) {
            tracing::debug!(hpa = name_of(json), error = %e, "autoscaling");
        }
    }
}

/// An autoscaler: its stored JSON (for its events) and its typed form.
struct Hpa<'a> {
    json: &'a Value,
    hpa: &'a HorizontalPodAutoscaler,
}

impl Hpa<'_> {
    fn namespace(&self) -> &str {
        namespace_of(self.json)
    }

    fn status(&self) -> Option<&HorizontalPodAutoscalerStatus> {
        self.hpa.status.as_ref()
    }

    fn event(&self, objects: &Objects, kind: EventType, reason: &str, message: &str) {
        events::emit(objects, self.json, kind, reason, message, CONTROLLER);
    }
}

/// What the target's `/scale` says.
struct Scale {
    rt: &'static ResourceType,
    replicas: i64,
    selector: Option<LabelSelector>,
}

/// A label selector of a built-in workload, for matching pods' labels.
fn selector(selector: &TypedSelector) -> Option<LabelSelector> {
    LabelSelector::from_typed(selector).ok()
}

/// `spec.replicas` (1 when unset) and the selector of a built-in scale target.
fn builtin_scale(kind: &str, obj: &Value) -> Result<(i64, Option<LabelSelector>), String> {
    let decoded = |e: typed::DecodeError| e.to_string();
    let replicas = |r: Option<i32>| i64::from(r.unwrap_or(1));
    Ok(match kind {
        "Deployment" => {
            let d: Deployment = typed::decode(obj).map_err(decoded)?;
            let spec = d.spec.unwrap_or_default();
            (replicas(spec.replicas), selector(&spec.selector))
        }
        "ReplicaSet" => {
            let r: ReplicaSet = typed::decode(obj).map_err(decoded)?;
            let spec = r.spec.unwrap_or_default();
            (replicas(spec.replicas), selector(&spec.selector))
        }
        "StatefulSet" => {
            let s: StatefulSet = typed::decode(obj).map_err(decoded)?;
            let spec = s.spec.unwrap_or_default();
            (replicas(spec.replicas), selector(&spec.selector))
        }
        "ReplicationController" => {
            let r: ReplicationController = typed::decode(obj).map_err(decoded)?;
            let spec = r.spec.unwrap_or_default();
            // A ReplicationController's selector is a label map.
            let labels = spec.selector.map(|match_labels| TypedSelector {
                match_labels: Some(match_labels),
                match_expressions: None,
            });
            (replicas(spec.replicas), labels.as_ref().and_then(selector))
        }
        other => return Err(format!("{other} has no scale the autoscaler reads")),
    })
}

fn scale_of(objects: &Objects, hpa: &Hpa<'_>) -> Result<Scale, String> {
    let target = hpa
        .hpa
        .spec
        .as_ref()
        .map(|s| &s.scale_target_ref)
        .ok_or("no scaleTargetRef")?;
    let api_version = target.api_version.as_deref().unwrap_or("");
    let kind = target.kind.as_str();
    let catalog = objects.catalog().map_err(|e| e.to_string())?;
    let (group, _) = api_version.split_once('/').unwrap_or(("", api_version));
    let rt = catalog
        .resource_for_kind(api_version, kind)
        .filter(|rt| rt.subresource("scale").is_some())
        .ok_or_else(|| format!("no matches for kind {kind:?} in group {group:?}"))?;
    let obj = objects
        .get(rt, hpa.namespace(), &target.name)
        .map_err(|e| e.to_string())?;
    let custom = catalog.version_of(rt).and_then(|(_, v)| v.scale.clone());
    let (replicas, selector) = match custom {
        // A custom resource's scale is where its definition says: paths into its JSON.
        Some(paths) => {
            let at = |path: &str| {
                path.trim_start_matches('.')
                    .split('.')
                    .try_fold(&obj, |v, f| v.get(f))
                    .cloned()
            };
            let selector = paths
                .label_selector
                .as_deref()
                .and_then(at)
                .and_then(|v| v.as_str().map(str::to_string))
                .and_then(|s| LabelSelector::parse(&s).ok());
            (
                at(&paths.spec_replicas)
                    .and_then(|v| v.as_i64())
                    .unwrap_or(0),
                selector,
            )
        }
        None => builtin_scale(rt.kind, &obj)?,
    };
    Ok(Scale {
        rt,
        replicas,
        selector,
    })
}

/// The request of `resource` a pod makes (its containers' sum, or one container's), or the
/// container that has none.
fn request_of(pod: &Pod, resource: &str, container: Option<&str>) -> Result<i64, MetricError> {
    let mut total = 0i64;
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice());
    for c in containers.unwrap_or_default() {
        if container.is_some_and(|want| want != c.name) {
            continue;
        }
        let request = c
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(resource));
        let Some(Quantity(text)) = request else {
            return Err(MetricError::MissingRequest {
                resource: resource.to_string(),
                container: c.name.clone(),
                pod: pod.metadata.name.clone().unwrap_or_default(),
            });
        };
        total += amount(resource, text);
    }
    Ok(total)
}

/// A quantity of `resource` in the units the autoscaler counts: millicores of CPU, else base
/// units (bytes of memory); 0 when it does not parse.
fn amount(resource: &str, text: &str) -> i64 {
    if resource == "cpu" {
        quantity::cpu_millis(text).unwrap_or(0) as i64
    } else {
        quantity::base_units(text).unwrap_or(0) as i64
    }
}

/// A pod's usage of `resource` from the metrics (CPU in millicores, memory in bytes).
fn usage_of(
    ctx: &ClusterContext,
    pod: &Pod,
    resource: &str,
    container: Option<&str>,
) -> Option<i64> {
    let metrics = ctx.metrics.pod(pod.metadata.uid.as_deref()?)?;
    let mut total = 0i64;
    for c in &metrics.containers {
        if container.is_some_and(|want| want != c.name) {
            continue;
        }
        total += if resource == "cpu" {
            (c.usage.cpu_nanocores / 1_000_000) as i64
        } else {
            c.usage.memory_bytes as i64
        };
    }
    Some(total)
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// One metric's proposal, its `currentMetrics` entry, and the words upstream uses for it.
struct Evaluated {
    proposal: Proposal,
    current: MetricStatus,
    /// `cpu resource utilization (percentage of request)`
    description: String,
}

/// Why a metric could not be evaluated: the condition's reason and the message.
struct Failed {
    reason: &'static str,
    message: String,
}

fn evaluate(
    ctx: &ClusterContext,
    metric: &MetricSpec,
    pods: &[Pod],
    current_replicas: i64,
) -> Result<Evaluated, Failed> {
    let kind = metric.type_.as_str();
    let (source, container) = match kind {
        "Resource" => (
            metric
                .resource
                .as_ref()
                .map(|r| (r.name.as_str(), &r.target)),
            None,
        ),
        "ContainerResource" => (
            metric
                .container_resource
                .as_ref()
                .map(|r| (r.name.as_str(), &r.target)),
            metric
                .container_resource
                .as_ref()
                .map(|r| r.container.as_str()),
        ),
        "Pods" | "Object" | "External" => {
            let (reason, api, name) = match kind {
                "Pods" => (
                    "FailedGetPodsMetric",
                    "custom metrics API (custom.metrics.k8s.io)",
                    metric.pods.as_ref().map(|m| m.metric.name.as_str()),
                ),
                "Object" => (
                    "FailedGetObjectMetric",
                    "custom metrics API (custom.metrics.k8s.io)",
                    metric.object.as_ref().map(|m| m.metric.name.as_str()),
                ),
                _ => (
                    "FailedGetExternalMetric",
                    "external metrics API (external.metrics.k8s.io)",
                    metric.external.as_ref().map(|m| m.metric.name.as_str()),
                ),
            };
            return Err(Failed {
                reason,
                message: format!(
                    "unable to get metric {}: unable to fetch metrics from {}: no {api} registered",
                    name.unwrap_or(""),
                    if kind == "External" {
                        "external metrics API"
                    } else {
                        "custom metrics API"
                    },
                ),
            });
        }
        other => {
            return Err(Failed {
                reason: "InvalidMetricSourceType",
                message: format!("unknown metric source type {other:?}"),
            });
        }
    };
    let resource = source.map_or("cpu", |(name, _)| name);
    let target: Option<&MetricTarget> = source.map(|(_, target)| target);
    let failed = |e: MetricError| Failed {
        reason: if kind == "Resource" {
            "FailedGetResourceMetric"
        } else {
            "FailedGetContainerResourceMetric"
        },
        message: format!("failed to get {resource} utilization: {e}"),
    };
    let wants_utilization = target.is_some_and(|t| t.type_ == "Utilization");
    let mut samples = Vec::new();
    for pod in pods {
        let request = if wants_utilization {
            Some(request_of(pod, resource, container).map_err(failed)?)
        } else {
            None
        };
        samples.push(PodSample {
            name: pod.metadata.name.clone().unwrap_or_default(),
            request,
            usage: usage_of(ctx, pod, resource, container),
            unready: resource == "cpu" && !ready(pod),
        });
    }
    if samples.iter().all(|s| s.usage.is_none()) {
        return Err(failed(MetricError::NoMetrics(resource.to_string())));
    }
    let parsed_target = if wants_utilization {
        Target::Utilization(
            target
                .and_then(|t| t.average_utilization)
                .map_or(80, i64::from),
        )
    } else {
        let text = target
            .and_then(|t| t.average_value.as_ref())
            .map_or("", |q| q.0.as_str());
        Target::AverageValue(amount(resource, text).max(1))
    };
    let proposal = replicas::propose(current_replicas, &samples, parsed_target).map_err(failed)?;
    let average = if resource == "cpu" {
        format!("{}m", proposal.average)
    } else {
        quantity::format_binary_si(proposal.average.max(0) as u64)
    };
    let current_value = MetricValueStatus {
        average_value: Some(Quantity(average)),
        average_utilization: proposal
            .utilization
            .map(|u| i32::try_from(u).unwrap_or(i32::MAX)),
        value: None,
    };
    let current = match container {
        Some(c) => MetricStatus {
            type_: kind.to_string(),
            container_resource: Some(ContainerResourceMetricStatus {
                container: c.to_string(),
                name: resource.to_string(),
                current: current_value,
            }),
            ..Default::default()
        },
        None => MetricStatus {
            type_: kind.to_string(),
            resource: Some(ResourceMetricStatus {
                name: resource.to_string(),
                current: current_value,
            }),
            ..Default::default()
        },
    };
    let description = if wants_utilization {
        format!("{resource} resource utilization (percentage of request)")
    } else {
        format!("{resource} resource")
    };
    Ok(Evaluated {
        proposal,
        current,
        description,
    })
}

/// Now, as the API writes times (whole seconds): a status that did not change compares equal.
fn now() -> Time {
    let now = jiff::Timestamp::now();
    Time(jiff::Timestamp::from_second(now.as_second()).unwrap_or(now))
}

fn condition(
    hpa: &Hpa<'_>,
    kind: &str,
    status: bool,
    reason: &str,
    message: &str,
) -> HorizontalPodAutoscalerCondition {
    let status = if status { "True" } else { "False" };
    let previous = hpa
        .status()
        .and_then(|s| s.conditions.as_deref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind));
    let time = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Some(now()),
    };
    HorizontalPodAutoscalerCondition {
        type_: kind.to_string(),
        status: status.to_string(),
        last_transition_time: time,
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
    }
}

fn reconcile(ctx: &ClusterContext, hpa: &Hpa<'_>, history: &mut History) -> Result<(), KubeError> {
    let objects = &ctx.objects;
    let ns = hpa.namespace();
    let scale = match scale_of(objects, hpa) {
        Ok(s) => s,
        Err(e) => {
            let message =
                format!("the HPA controller was unable to get the target's current scale: {e}");
            hpa.event(objects, EventType::Warning, "FailedGetScale", &e);
            return write_status(
                objects,
                hpa,
                None,
                None,
                vec![condition(
                    hpa,
                    "AbleToScale",
                    false,
                    "FailedGetScale",
                    &message,
                )],
            );
        }
    };
    let spec = hpa.hpa.spec.as_ref();
    let min = i64::from(spec.and_then(|s| s.min_replicas).unwrap_or(1));
    let max = spec.map_or(min, |s| i64::from(s.max_replicas));
    let current = scale.replicas;
    if current == 0 && min != 0 {
        return write_status(
            objects,
            hpa,
            Some(current),
            Some(0),
            vec![
                condition(
                    hpa,
                    "AbleToScale",
                    true,
                    "SucceededGetScale",
                    "the HPA controller was able to get the target's current scale",
                ),
                condition(
                    hpa,
                    "ScalingActive",
                    false,
                    "ScalingDisabled",
                    "scaling is disabled since the replica count of the target is zero",
                ),
            ],
        );
    }
    let pods_list = objects.list(resource("", "pods"), Some(ns))?.0;
    // The target's pods: matched by their labels (borrowed), then decoded for their requests,
    // readiness and uid.
    let pods: Vec<Pod> = pods_list
        .iter()
        .map(|o| &o.value)
        .filter(|p| !is_deleting(p) && !is_finished(p))
        .filter(|p| {
            scale
                .selector
                .as_ref()
                .is_some_and(|s| s.matches(labels_of(p)))
        })
        .filter_map(typed::decode_or_log::<Pod>)
        .collect();
    let mut best: Option<(i64, String)> = None;
    let mut current_metrics = Vec::new();
    let mut failure: Option<Failed> = None;
    for metric in spec.and_then(|s| s.metrics.as_deref()).unwrap_or_default() {
        match evaluate(ctx, metric, &pods, current) {
            Ok(e) => {
                current_metrics.push(e.current);
                if best.as_ref().is_none_or(|(r, _)| e.proposal.replicas > *r) {
                    best = Some((e.proposal.replicas, e.description));
                }
            }
            Err(f) => {
                if failure.is_none() {
                    failure = Some(f);
                }
            }
        }
    }
    let Some((proposed, description)) = best else {
        let f = failure.unwrap_or(Failed {
            reason: "FailedGetResourceMetric",
            message: "no metrics to compute a replica count from".into(),
        });
        let message = format!(
            "the HPA was unable to compute the replica count: {}",
            f.message
        );
        hpa.event(objects, EventType::Warning, f.reason, &f.message);
        return write_status(
            objects,
            hpa,
            Some(current),
            Some(current),
            vec![
                condition(
                    hpa,
                    "AbleToScale",
                    true,
                    "SucceededGetScale",
                    "the HPA controller was able to get the target's current scale",
                ),
                condition(hpa, "ScalingActive", false, f.reason, &message),
            ],
        );
    };
    let behavior = spec.and_then(|s| s.behavior.as_ref());
    let decision = replicas::normalize(
        history,
        Instant::now(),
        current,
        proposed,
        min,
        max,
        &Rules::of(behavior, true),
        &Rules::of(behavior, false),
    );
    let mut able = condition(
        hpa,
        "AbleToScale",
        true,
        decision.able_reason,
        decision.able_message,
    );
    let mut rescaled = false;
    if decision.replicas != current {
        let target_name = spec.map_or("", |s| s.scale_target_ref.name.as_str());
        let custom = objects
            .catalog()
            .ok()
            .and_then(|c| c.version_of(scale.rt).and_then(|(_, v)| v.scale.clone()));
        // The replicas are where the target's scale says: `.spec.replicas` for the built-in
        // kinds (the only ones `scale_of` reads), its definition's scale path for a custom
        // resource.
        let replicas_path = custom
            .as_ref()
            .map_or(".spec.replicas", |paths| paths.spec_replicas.as_str());
        let result = objects.update_with(scale.rt, ns, target_name, false, None, &mut |cur| {
            let mut new = cur.clone();
            let mut at = &mut new;
            for field in replicas_path.trim_start_matches('.').split('.') {
                at = &mut at[field];
            }
            *at = json!(decision.replicas);
            Ok(new)
        });
        match result {
            Ok(_) => {
                rescaled = true;
                history.record_change(Instant::now(), decision.replicas - current);
                let why = if decision.replicas > current {
                    format!("{description} above target")
                } else {
                    "All metrics below target".to_string()
                };
                hpa.event(
                    objects,
                    EventType::Normal,
                    "SuccessfulRescale",
                    &format!("New size: {}; reason: {why}", decision.replicas),
                );
                able = condition(
                    hpa,
                    "AbleToScale",
                    true,
                    "SucceededRescale",
                    &format!(
                        "the HPA controller was able to update the target scale to {}",
                        decision.replicas
                    ),
                );
            }
            Err(e) => {
                let message =
                    format!("the HPA controller was unable to update the target scale: {e}");
                hpa.event(objects, EventType::Warning, "FailedRescale", &message);
                able = condition(hpa, "AbleToScale", false, "FailedUpdateScale", &message);
            }
        }
    }
    let conditions = vec![
        able,
        condition(
            hpa,
            "ScalingActive",
            true,
            "ValidMetricFound",
            &format!(
                "the HPA was able to successfully calculate a replica count from {description}"
            ),
        ),
        condition(
            hpa,
            "ScalingLimited",
            decision.limited,
            decision.limit_reason,
            decision.limit_message,
        ),
    ];
    let status = HorizontalPodAutoscalerStatus {
        current_replicas: Some(int32(current)),
        desired_replicas: int32(decision.replicas),
        current_metrics: Some(current_metrics),
        conditions: Some(conditions),
        observed_generation: hpa.hpa.metadata.generation,
        last_scale_time: if rescaled {
            Some(now())
        } else {
            hpa.status().and_then(|s| s.last_scale_time.clone())
        },
    };
    set_status(objects, hpa, status)
}

fn int32(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX })
}

fn write_status(
    objects: &Objects,
    hpa: &Hpa<'_>,
    current: Option<i64>,
    desired: Option<i64>,
    conditions: Vec<HorizontalPodAutoscalerCondition>,
) -> Result<(), KubeError> {
    let status = HorizontalPodAutoscalerStatus {
        current_replicas: Some(int32(current.unwrap_or(0))),
        desired_replicas: int32(desired.unwrap_or(0)),
        conditions: Some(conditions),
        observed_generation: hpa.hpa.metadata.generation,
        last_scale_time: hpa.status().and_then(|s| s.last_scale_time.clone()),
        current_metrics: None,
    };
    set_status(objects, hpa, status)
}

/// Write the autoscaler's status (all of it is the controller's) if it changed.
fn set_status(
    objects: &Objects,
    hpa: &Hpa<'_>,
    status: HorizontalPodAutoscalerStatus,
) -> Result<(), KubeError> {
    if hpa.status() == Some(&status) {
        return Ok(());
    }
    let status = typed::to_json(&status)?;
    objects.update_with(
        resource("autoscaling", "horizontalpodautoscalers"),
        hpa.namespace(),
        name_of(hpa.json),
        true,
        None,
        &mut |cur| {
            let mut new = cur.clone();
            if let Some(m) = new.as_object_mut() {
                m.insert("status".to_string(), status.clone());
            }
            Ok(new)
        },
    )?;
    Ok(())
}
