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

use localfargate_core::quantity;
use localfargate_core::selectors::LabelSelector;
use localfargate_registry::objects::{
    KubeError, Objects, is_deleting, is_finished, name_of, namespace_of, now_rfc3339, resource,
};
use localfargate_registry::resources::ResourceType;
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
    let live: Vec<String> = all
        .iter()
        .map(|o| {
            o.value["metadata"]["uid"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    histories.retain(|uid, _| live.contains(uid));
    for hpa in all.iter().map(|o| &o.value) {
        if is_deleting(hpa) {
            continue;
        }
        let uid = hpa["metadata"]["uid"].as_str().unwrap_or("").to_string();
        let history = histories.entry(uid).or_default();
        if let Err(e) = reconcile(ctx, hpa, history) {
            tracing::debug!(hpa = name_of(hpa), error = %e, "autoscaling");
        }
    }
}

/// What the target's `/scale` says.
struct Scale {
    rt: &'static ResourceType,
    replicas: i64,
    selector: Option<LabelSelector>,
}

fn scale_of(objects: &Objects, hpa: &Value) -> Result<Scale, String> {
    let target = &hpa["spec"]["scaleTargetRef"];
    let api_version = target["apiVersion"].as_str().unwrap_or("");
    let kind = target["kind"].as_str().unwrap_or("");
    let name = target["name"].as_str().unwrap_or("");
    let catalog = objects.catalog().map_err(|e| e.to_string())?;
    let (group, _) = api_version.split_once('/').unwrap_or(("", api_version));
    let rt = catalog
        .resource_for_kind(api_version, kind)
        .filter(|rt| rt.subresource("scale").is_some())
        .ok_or_else(|| format!("no matches for kind {kind:?} in group {group:?}"))?;
    let obj = objects
        .get(rt, namespace_of(hpa), name)
        .map_err(|e| e.to_string())?;
    let custom = catalog.version_of(rt).and_then(|(_, v)| v.scale.clone());
    let (replicas, selector) = match custom {
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
        None => {
            let selector = if obj["spec"]["selector"]["matchLabels"].is_object()
                || obj["spec"]["selector"]["matchExpressions"].is_array()
            {
                LabelSelector::from_json(&obj["spec"]["selector"]).ok()
            } else if obj["spec"]["selector"].is_object() {
                // A ReplicationController's selector is a label map.
                LabelSelector::from_json(&json!({"matchLabels": obj["spec"]["selector"]})).ok()
            } else {
                None
            };
            (obj["spec"]["replicas"].as_i64().unwrap_or(1), selector)
        }
    };
    Ok(Scale {
        rt,
        replicas,
        selector,
    })
}

/// The request of `resource` a pod makes (its containers' sum, or one container's), or the
/// container that has none.
fn request_of(pod: &Value, resource: &str, container: Option<&str>) -> Result<i64, MetricError> {
    let mut total = 0i64;
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        let cname = c["name"].as_str().unwrap_or("");
        if container.is_some_and(|want| want != cname) {
            continue;
        }
        let Some(text) = c["resources"]["requests"][resource]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                c["resources"]["requests"][resource]
                    .as_i64()
                    .map(|n| n.to_string())
            })
        else {
            return Err(MetricError::MissingRequest {
                resource: resource.to_string(),
                container: cname.to_string(),
                pod: name_of(pod).to_string(),
            });
        };
        let value = if resource == "cpu" {
            quantity::cpu_millis(&text).unwrap_or(0) as i64
        } else {
            quantity::base_units(&text).unwrap_or(0) as i64
        };
        total += value;
    }
    Ok(total)
}

/// A pod's usage of `resource` from the metrics (CPU in millicores, memory in bytes).
fn usage_of(
    ctx: &ClusterContext,
    pod: &Value,
    resource: &str,
    container: Option<&str>,
) -> Option<i64> {
    let metrics = ctx.metrics.pod(pod["metadata"]["uid"].as_str()?)?;
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

fn ready(pod: &Value) -> bool {
    localfargate_registry::binding::condition_is(pod, "Ready", "True")
}

/// One metric's proposal, its `currentMetrics` entry, and the words upstream uses for it.
struct Evaluated {
    proposal: Proposal,
    current: Value,
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
    metric: &Value,
    pods: &[&Value],
    current_replicas: i64,
) -> Result<Evaluated, Failed> {
    let kind = metric["type"].as_str().unwrap_or("");
    let (source, container) = match kind {
        "Resource" => (&metric["resource"], None),
        "ContainerResource" => (
            &metric["containerResource"],
            metric["containerResource"]["container"].as_str(),
        ),
        "Pods" | "Object" | "External" => {
            let (reason, api, name) = match kind {
                "Pods" => (
                    "FailedGetPodsMetric",
                    "custom metrics API (custom.metrics.k8s.io)",
                    &metric["pods"]["metric"]["name"],
                ),
                "Object" => (
                    "FailedGetObjectMetric",
                    "custom metrics API (custom.metrics.k8s.io)",
                    &metric["object"]["metric"]["name"],
                ),
                _ => (
                    "FailedGetExternalMetric",
                    "external metrics API (external.metrics.k8s.io)",
                    &metric["external"]["metric"]["name"],
                ),
            };
            return Err(Failed {
                reason,
                message: format!(
                    "unable to get metric {}: unable to fetch metrics from {}: no {api} registered",
                    name.as_str().unwrap_or(""),
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
    let resource = source["name"].as_str().unwrap_or("cpu");
    let target = &source["target"];
    let failed = |e: MetricError| Failed {
        reason: if kind == "Resource" {
            "FailedGetResourceMetric"
        } else {
            "FailedGetContainerResourceMetric"
        },
        message: format!("failed to get {resource} utilization: {e}"),
    };
    let wants_utilization = target["type"] == "Utilization";
    let mut samples = Vec::new();
    for pod in pods {
        let request = if wants_utilization {
            Some(request_of(pod, resource, container).map_err(failed)?)
        } else {
            None
        };
        samples.push(PodSample {
            name: name_of(pod).to_string(),
            request,
            usage: usage_of(ctx, pod, resource, container),
            unready: resource == "cpu" && !ready(pod),
        });
    }
    if samples.iter().all(|s| s.usage.is_none()) {
        return Err(failed(MetricError::NoMetrics(resource.to_string())));
    }
    let parsed_target = if wants_utilization {
        Target::Utilization(target["averageUtilization"].as_i64().unwrap_or(80))
    } else {
        let text = target["averageValue"]
            .as_str()
            .map(str::to_string)
            .or_else(|| target["averageValue"].as_i64().map(|n| n.to_string()))
            .unwrap_or_default();
        let value = if resource == "cpu" {
            quantity::cpu_millis(&text).unwrap_or(0) as i64
        } else {
            quantity::base_units(&text).unwrap_or(0) as i64
        };
        Target::AverageValue(value.max(1))
    };
    let proposal = replicas::propose(current_replicas, &samples, parsed_target).map_err(failed)?;
    let average = if resource == "cpu" {
        format!("{}m", proposal.average)
    } else {
        quantity::format_binary_si(proposal.average.max(0) as u64)
    };
    let mut current_value = json!({"averageValue": average});
    if let Some(u) = proposal.utilization {
        current_value["averageUtilization"] = json!(u);
    }
    let current = match container {
        Some(c) => {
            json!({"type": kind, "containerResource": {"name": resource, "container": c, "current": current_value}})
        }
        None => json!({"type": kind, "resource": {"name": resource, "current": current_value}}),
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

fn condition(old: &Value, kind: &str, status: bool, reason: &str, message: &str) -> Value {
    let status = if status { "True" } else { "False" };
    let previous = old["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind));
    let time = match previous {
        Some(p) if p["status"] == status => p["lastTransitionTime"].clone(),
        _ => json!(now_rfc3339()),
    };
    json!({"type": kind, "status": status, "lastTransitionTime": time, "reason": reason, "message": message})
}

fn reconcile(ctx: &ClusterContext, hpa: &Value, history: &mut History) -> Result<(), KubeError> {
    let objects = &ctx.objects;
    let ns = namespace_of(hpa);
    let scale = match scale_of(objects, hpa) {
        Ok(s) => s,
        Err(e) => {
            let message =
                format!("the HPA controller was unable to get the target's current scale: {e}");
            events::emit(
                objects,
                hpa,
                EventType::Warning,
                "FailedGetScale",
                &e,
                CONTROLLER,
            );
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
    let min = hpa["spec"]["minReplicas"].as_i64().unwrap_or(1);
    let max = hpa["spec"]["maxReplicas"].as_i64().unwrap_or(min);
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
    let pods: Vec<&Value> = pods_list
        .iter()
        .map(|o| &o.value)
        .filter(|p| !is_deleting(p) && !is_finished(p))
        .filter(|p| {
            scale
                .selector
                .as_ref()
                .is_some_and(|s| s.matches(p["metadata"]["labels"].as_object()))
        })
        .collect();
    let mut best: Option<(i64, String)> = None;
    let mut current_metrics = Vec::new();
    let mut failure: Option<Failed> = None;
    for metric in hpa["spec"]["metrics"].as_array().into_iter().flatten() {
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
        events::emit(
            objects,
            hpa,
            EventType::Warning,
            f.reason,
            &f.message,
            CONTROLLER,
        );
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
    let behavior = &hpa["spec"]["behavior"];
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
        let target_name = hpa["spec"]["scaleTargetRef"]["name"].as_str().unwrap_or("");
        let custom = objects
            .catalog()
            .ok()
            .and_then(|c| c.version_of(scale.rt).and_then(|(_, v)| v.scale.clone()));
        let result = objects.update_with(scale.rt, ns, target_name, false, None, &mut |cur| {
            let mut new = cur.clone();
            match &custom {
                Some(paths) => {
                    let mut at = &mut new;
                    for field in paths.spec_replicas.trim_start_matches('.').split('.') {
                        at = &mut at[field];
                    }
                    *at = json!(decision.replicas);
                }
                None => new["spec"]["replicas"] = json!(decision.replicas),
            }
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
                events::emit(
                    objects,
                    hpa,
                    EventType::Normal,
                    "SuccessfulRescale",
                    &format!("New size: {}; reason: {why}", decision.replicas),
                    CONTROLLER,
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
                events::emit(
                    objects,
                    hpa,
                    EventType::Warning,
                    "FailedRescale",
                    &message,
                    CONTROLLER,
                );
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
    let mut status = json!({
        "currentReplicas": current,
        "desiredReplicas": decision.replicas,
        "currentMetrics": current_metrics,
        "conditions": conditions,
        "observedGeneration": hpa["metadata"]["generation"],
    });
    if rescaled {
        status["lastScaleTime"] = json!(now_rfc3339());
    } else if !hpa["status"]["lastScaleTime"].is_null() {
        status["lastScaleTime"] = hpa["status"]["lastScaleTime"].clone();
    }
    set_status(objects, hpa, status)
}

fn write_status(
    objects: &Objects,
    hpa: &Value,
    current: Option<i64>,
    desired: Option<i64>,
    conditions: Vec<Value>,
) -> Result<(), KubeError> {
    let mut status = json!({
        "currentReplicas": current.unwrap_or(0),
        "desiredReplicas": desired.unwrap_or(0),
        "conditions": conditions,
        "observedGeneration": hpa["metadata"]["generation"],
    });
    if !hpa["status"]["lastScaleTime"].is_null() {
        status["lastScaleTime"] = hpa["status"]["lastScaleTime"].clone();
    }
    set_status(objects, hpa, status)
}

fn set_status(objects: &Objects, hpa: &Value, status: Value) -> Result<(), KubeError> {
    if hpa["status"] == status {
        return Ok(());
    }
    objects.update_with(
        resource("autoscaling", "horizontalpodautoscalers"),
        namespace_of(hpa),
        name_of(hpa),
        true,
        None,
        &mut |cur| {
            let mut new = cur.clone();
            new["status"] = status.clone();
            Ok(new)
        },
    )?;
    Ok(())
}
