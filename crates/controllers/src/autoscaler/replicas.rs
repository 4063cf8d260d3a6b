//! The HorizontalPodAutoscaler's arithmetic, as kube-controller-manager's `podautoscaler`
//! package does it: the replica count one resource metric proposes (`replica_calculator.go`,
//! with its 10% tolerance and its treatment of unready pods and pods without metrics), and the
//! proposal normalized by the behavior's stabilization windows and scaling policies
//! (`horizontal.go`). Pure: the controller gathers the inputs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior;

/// The controller's tolerance (`--horizontal-pod-autoscaler-tolerance`): a usage within 10% of
/// the target changes nothing.
pub const TOLERANCE: f64 = 0.1;

/// How a pod stands for one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSample {
    pub name: String,
    /// Its request of the resource (milli-units; bytes for memory), when every container has one.
    pub request: Option<i64>,
    /// Its usage, when the metrics API has it.
    pub usage: Option<i64>,
    /// Counted as unready (a CPU metric of a pod that is not Ready).
    pub unready: bool,
}

/// What a metric's target asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// `averageUtilization`: percent of the pods' requests.
    Utilization(i64),
    /// `averageValue`: per pod, in the metric's units.
    AverageValue(i64),
}

/// A metric's proposal.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub replicas: i64,
    /// `averageUtilization` now (for a utilization target).
    pub utilization: Option<i64>,
    /// The average usage per pod now.
    pub average: i64,
}

/// Why a metric proposes nothing (the text after `failed to get cpu utilization: `).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    #[error("missing request for {resource} in container {container} of Pod {pod}")]
    MissingRequest {
        resource: String,
        container: String,
        pod: String,
    },
    #[error(
        "unable to get metrics for resource {0}: no metrics returned from resource metrics API"
    )]
    NoMetrics(String),
    #[error("did not receive metrics for targeted pods (pods might be unready)")]
    NoReadyMetrics,
}

/// `(sum usage * 100 / sum requests)` over the pods with both, Go's integer arithmetic.
fn utilization(usage: &HashMap<&str, i64>, samples: &[PodSample]) -> Option<(i64, i64)> {
    let (mut used, mut requested, mut n) = (0i64, 0i64, 0i64);
    for s in samples {
        if let (Some(u), Some(r)) = (usage.get(s.name.as_str()), s.request) {
            used += u;
            requested += r;
            n += 1;
        }
    }
    (requested > 0).then(|| (used * 100 / requested, used / n.max(1)))
}

/// The replicas one resource metric proposes (`calcPlainMetricReplicas` for utilization,
/// its raw-value twin for an average value).
pub fn propose(
    current: i64,
    samples: &[PodSample],
    target: Target,
) -> Result<Proposal, MetricError> {
    let ready: Vec<&PodSample> = samples
        .iter()
        .filter(|s| s.usage.is_some() && !s.unready)
        .collect();
    let missing: Vec<&PodSample> = samples.iter().filter(|s| s.usage.is_none()).collect();
    let unready: Vec<&PodSample> = samples
        .iter()
        .filter(|s| s.usage.is_some() && s.unready)
        .collect();
    if ready.is_empty() {
        return Err(MetricError::NoReadyMetrics);
    }
    let mut usage: HashMap<&str, i64> = ready
        .iter()
        .filter_map(|s| s.usage.map(|u| (s.name.as_str(), u)))
        .collect();
    let ready_count = usage.len() as i64;
    let ratio_of = |usage: &HashMap<&str, i64>| -> Option<(f64, Option<i64>, i64)> {
        match target {
            Target::Utilization(t) => {
                let (now, average) = utilization(usage, samples)?;
                Some((now as f64 / t as f64, Some(now), average))
            }
            Target::AverageValue(t) => {
                let sum: i64 = usage.values().sum();
                let average = sum / (usage.len() as i64).max(1);
                Some((sum as f64 / (t as f64 * usage.len() as f64), None, average))
            }
        }
    };
    let Some((ratio, now, average)) = ratio_of(&usage) else {
        return Err(MetricError::NoReadyMetrics);
    };
    let scale_up_with_unready = !unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && missing.is_empty() {
        let replicas = if (1.0 - ratio).abs() <= TOLERANCE {
            current
        } else {
            (ratio * ready_count as f64).ceil() as i64
        };
        return Ok(Proposal {
            replicas,
            utilization: now,
            average,
        });
    }
    // Pods without metrics count as using their whole request (or the target) when scaling
    // down, nothing when scaling up; unready pods count as using nothing when scaling up.
    for s in &missing {
        let assumed = if ratio < 1.0 {
            match target {
                Target::Utilization(t) => s.request.unwrap_or(0) * t.max(100) / 100,
                Target::AverageValue(t) => t,
            }
        } else {
            0
        };
        usage.insert(s.name.as_str(), assumed);
    }
    if scale_up_with_unready {
        for s in &unready {
            usage.insert(s.name.as_str(), 0);
        }
    }
    let Some((new_ratio, _, _)) = ratio_of(&usage) else {
        return Err(MetricError::NoReadyMetrics);
    };
    let flips = (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0);
    let replicas = if (1.0 - new_ratio).abs() <= TOLERANCE || flips {
        current
    } else {
        let proposed = (new_ratio * usage.len() as f64).ceil() as i64;
        if (new_ratio < 1.0 && proposed > current) || (new_ratio > 1.0 && proposed < current) {
            current
        } else {
            proposed
        }
    };
    Ok(Proposal {
        replicas,
        utilization: now,
        average,
    })
}

/// One direction's scaling rules (`HPAScalingRules`), defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub window: Duration,
    /// `Max`, `Min` or `Disabled`.
    pub select: String,
    /// `(Pods|Percent, value, period)`.
    pub policies: Vec<(String, i64, Duration)>,
}

impl Rules {
    /// The rules of `behavior.scaleUp` or `.scaleDown`, upstream's defaults for what is unset.
    pub fn of(behavior: Option<&HorizontalPodAutoscalerBehavior>, up: bool) -> Rules {
        let rules = behavior.and_then(|b| {
            if up {
                b.scale_up.as_ref()
            } else {
                b.scale_down.as_ref()
            }
        });
        let policies = match rules.and_then(|r| r.policies.as_deref()) {
            Some(p) if !p.is_empty() => p
                .iter()
                .map(|p| {
                    (
                        p.type_.clone(),
                        i64::from(p.value),
                        Duration::from_secs(u64::try_from(p.period_seconds).unwrap_or(15)),
                    )
                })
                .collect(),
            _ if up => vec![
                ("Pods".to_string(), 4, Duration::from_secs(15)),
                ("Percent".to_string(), 100, Duration::from_secs(15)),
            ],
            _ => vec![("Percent".to_string(), 100, Duration::from_secs(15))],
        };
        Rules {
            window: Duration::from_secs(
                rules
                    .and_then(|r| r.stabilization_window_seconds)
                    .and_then(|w| u64::try_from(w).ok())
                    .unwrap_or(if up { 0 } else { 300 }),
            ),
            select: rules
                .and_then(|r| r.select_policy.clone())
                .unwrap_or_else(|| "Max".to_string()),
            policies,
        }
    }
}

/// What an autoscaler remembers between evaluations: its recommendations (for the
/// stabilization windows) and its scale changes (for the policies' periods).
#[derive(Debug, Default, Clone)]
pub struct History {
    started: bool,
    recommendations: Vec<(Instant, i64)>,
    /// `(when, replicas added (> 0) or removed (< 0))`.
    changes: Vec<(Instant, i64)>,
}

impl History {
    pub fn record_change(&mut self, at: Instant, delta: i64) {
        if delta != 0 {
            self.changes.push((at, delta));
        }
    }

    fn changed_within(&self, now: Instant, period: Duration, up: bool) -> i64 {
        self.changes
            .iter()
            .filter(|(t, d)| now.duration_since(*t) < period && (*d > 0) == up)
            .map(|(_, d)| d.abs())
            .sum()
    }

    fn forget_before(&mut self, now: Instant, keep: Duration) {
        self.recommendations
            .retain(|(t, _)| now.duration_since(*t) <= keep);
        self.changes.retain(|(t, _)| now.duration_since(*t) <= keep);
    }
}

/// The normalized decision: replicas, and what the `AbleToScale` and `ScalingLimited`
/// conditions say about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub replicas: i64,
    /// `ReadyForNewScale`, or `ScaleUpStabilized`/`ScaleDownStabilized` when a window changed
    /// the proposal.
    pub able_reason: &'static str,
    pub able_message: &'static str,
    /// Whether the rate policies or the bounds changed the stabilized count.
    pub limited: bool,
    pub limit_reason: &'static str,
    pub limit_message: &'static str,
}

const WITHIN_RANGE: (&str, &str) = (
    "DesiredWithinRange",
    "the desired count is within the acceptable range",
);

/// `normalizeDesiredReplicasWithBehaviors`: the proposal through the stabilization windows
/// (`stabilizeRecommendationWithBehaviors`), then the rate policies and the min/max bounds
/// (`convertDesiredReplicasWithBehaviorRate`).
#[allow(clippy::too_many_arguments)]
pub fn normalize(
    history: &mut History,
    now: Instant,
    current: i64,
    proposed: i64,
    min: i64,
    max: i64,
    up: &Rules,
    down: &Rules,
) -> Decision {
    // A new autoscaler starts its scale-down window at the current count
    // (`maybeInitScaleDownStabilizationWindow`).
    if !history.started {
        history.started = true;
        history.recommendations.push((now, current));
    }
    let mut up_rec = proposed;
    let mut down_rec = proposed;
    for (t, r) in &history.recommendations {
        let age = now.duration_since(*t);
        if age < up.window {
            up_rec = up_rec.min(*r);
        }
        if age < down.window {
            down_rec = down_rec.max(*r);
        }
    }
    let stabilized = current.max(up_rec).min(down_rec);
    history.recommendations.push((now, proposed));
    let keep = up
        .window
        .max(down.window)
        .max(up.policies.iter().map(|p| p.2).max().unwrap_or_default())
        .max(down.policies.iter().map(|p| p.2).max().unwrap_or_default());
    history.forget_before(now, keep);
    let (able_reason, able_message) = if stabilized == proposed {
        ("ReadyForNewScale", "recommended size matches current size")
    } else if proposed >= current {
        (
            "ScaleUpStabilized",
            "recent recommendations were lower than current one, applying the lowest recent recommendation",
        )
    } else {
        (
            "ScaleDownStabilized",
            "recent recommendations were higher than current one, applying the highest recent recommendation",
        )
    };

    let (replicas, (limit_reason, limit_message)) = if stabilized > current {
        let rate = scale_up_limit(history, now, current, up).max(current);
        let (allowed, why) = if max > rate {
            (
                rate,
                (
                    "ScaleUpLimit",
                    "the desired replica count is increasing faster than the maximum scale rate",
                ),
            )
        } else {
            (
                max,
                (
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                ),
            )
        };
        if stabilized > allowed {
            (allowed, why)
        } else {
            (stabilized, WITHIN_RANGE)
        }
    } else if stabilized < current {
        let rate = scale_down_limit(history, now, current, down).min(current);
        let (allowed, why) = if min < rate {
            (
                rate,
                (
                    "ScaleDownLimit",
                    "the desired replica count is decreasing faster than the maximum scale rate",
                ),
            )
        } else {
            (
                min,
                (
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                ),
            )
        };
        if stabilized < allowed {
            (allowed, why)
        } else {
            (stabilized, WITHIN_RANGE)
        }
    } else {
        (stabilized, WITHIN_RANGE)
    };
    Decision {
        replicas,
        able_reason,
        able_message,
        limited: replicas != stabilized,
        limit_reason,
        limit_message,
    }
}

fn scale_up_limit(history: &History, now: Instant, current: i64, rules: &Rules) -> i64 {
    if rules.select == "Disabled" {
        return current;
    }
    let mut result: Option<i64> = None;
    for (kind, value, period) in &rules.policies {
        let start = current - history.changed_within(now, *period, true)
            + history.changed_within(now, *period, false);
        let proposed = if kind == "Percent" {
            (start as f64 * (1.0 + *value as f64 / 100.0)).ceil() as i64
        } else {
            start + value
        };
        result = Some(match result {
            None => proposed,
            Some(r) if rules.select == "Min" => r.min(proposed),
            Some(r) => r.max(proposed),
        });
    }
    result.unwrap_or(current)
}

fn scale_down_limit(history: &History, now: Instant, current: i64, rules: &Rules) -> i64 {
    if rules.select == "Disabled" {
        return current;
    }
    let mut result: Option<i64> = None;
    for (kind, value, period) in &rules.policies {
        let start = current - history.changed_within(now, *period, true)
            + history.changed_within(now, *period, false);
        let proposed = if kind == "Percent" {
            (start as f64 * (1.0 - *value as f64 / 100.0)) as i64
        } else {
            start - value
        };
        result = Some(match result {
            None => proposed,
            Some(r) if rules.select == "Min" => r.max(proposed),
            Some(r) => r.min(proposed),
        });
    }
    result.unwrap_or(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, request: i64, usage: Option<i64>) -> PodSample {
        PodSample {
            name: name.into(),
            request: Some(request),
            usage,
            unready: false,
        }
    }

    #[test]
    fn utilization_over_target_scales_up_by_the_ratio() {
        // 2 pods at 200m of 100m requested: 200% against 50% → 4× → 8.
        let p = propose(
            2,
            &[pod("a", 100, Some(200)), pod("b", 100, Some(200))],
            Target::Utilization(50),
        )
        .unwrap();
        assert_eq!(p.replicas, 8);
        assert_eq!(p.utilization, Some(200));
        assert_eq!(p.average, 200);
    }

    #[test]
    fn within_tolerance_nothing_changes() {
        let p = propose(
            3,
            &[pod("a", 100, Some(52)), pod("b", 100, Some(50))],
            Target::Utilization(50),
        )
        .unwrap();
        assert_eq!(p.replicas, 3);
    }

    #[test]
    fn pods_without_metrics_damp_a_scale_up() {
        // One pod at 100%, one without metrics: counted at 0 → 50% against 50%: no change.
        let p = propose(
            2,
            &[pod("a", 100, Some(100)), pod("b", 100, None)],
            Target::Utilization(50),
        )
        .unwrap();
        assert_eq!(p.replicas, 2);
    }

    #[test]
    fn average_values_divide_the_total() {
        let p = propose(
            2,
            &[pod("a", 0, Some(300)), pod("b", 0, Some(300))],
            Target::AverageValue(200),
        )
        .unwrap();
        assert_eq!(p.replicas, 3);
    }

    #[test]
    fn no_metrics_at_all_is_an_error() {
        assert_eq!(
            propose(1, &[pod("a", 100, None)], Target::Utilization(50)),
            Err(MetricError::NoReadyMetrics)
        );
    }

    #[test]
    fn scale_up_is_limited_by_the_default_policies_and_max() {
        let (up, down) = (Rules::of(None, true), Rules::of(None, false));
        let mut h = History::default();
        let now = Instant::now();
        // From 1: max(1 + 4 pods, 1 × 200%) = 5 in one period.
        let d = normalize(&mut h, now, 1, 20, 1, 10, &up, &down);
        assert_eq!((d.replicas, d.limit_reason), (5, "ScaleUpLimit"));
        assert!(d.limited);
        h.record_change(now, 4);
        let d = normalize(
            &mut h,
            now + Duration::from_secs(1),
            5,
            20,
            1,
            10,
            &up,
            &down,
        );
        assert_eq!(d.replicas, 5, "the period's 4 pods are used up");
        let d = normalize(
            &mut h,
            now + Duration::from_secs(16),
            5,
            20,
            1,
            10,
            &up,
            &down,
        );
        assert_eq!((d.replicas, d.limit_reason), (10, "TooManyReplicas"));
    }

    #[test]
    fn scale_down_waits_for_the_stabilization_window() {
        let (up, down) = (Rules::of(None, true), Rules::of(None, false));
        let mut h = History::default();
        let now = Instant::now();
        assert_eq!(normalize(&mut h, now, 4, 4, 1, 10, &up, &down).replicas, 4);
        let d = normalize(
            &mut h,
            now + Duration::from_secs(60),
            4,
            1,
            1,
            10,
            &up,
            &down,
        );
        assert_eq!(d.replicas, 4, "a higher recommendation within 300 s holds");
        assert_eq!(d.able_reason, "ScaleDownStabilized");
        let d = normalize(
            &mut h,
            now + Duration::from_secs(400),
            4,
            1,
            1,
            10,
            &up,
            &down,
        );
        assert_eq!(d.replicas, 1);
        let zero: HorizontalPodAutoscalerBehavior = serde_json::from_value(
            serde_json::json!({"scaleDown": {"stabilizationWindowSeconds": 0}}),
        )
        .unwrap();
        let mut h = History::default();
        let d = normalize(
            &mut h,
            now,
            4,
            2,
            1,
            10,
            &Rules::of(Some(&zero), true),
            &Rules::of(Some(&zero), false),
        );
        assert_eq!(d.replicas, 2);
    }
}
