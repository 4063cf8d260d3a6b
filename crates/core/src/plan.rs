//! `plan`: where each workload's pods land, at what size and cost, and why — decided with the same
//! rules the cluster applies at admission, before anything is deployed. Pure: the caller reads
//! files and renders; this module decides.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde::Serialize;

use crate::admission::{self, ClaimLookup, ClaimState};
use crate::matching::{Match, PinProblem, Placement, PodIdentity, ProfileIndex, SelectionRule};
use crate::nodegroup::{self, Misfit, NodeGroup};
use crate::pricing::{FargateRates, HOURS_PER_MONTH, PriceTable};
use crate::quantity;
use crate::sizing::{self, FARGATE_MEMORY_OVERHEAD, FargateSize, GIB, MIB, PodRequests};

/// One workload from the manifests, reduced to what placement needs.
#[derive(Debug, Clone)]
pub struct Workload {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Pods running at once: replicas, or a Job's parallelism. DaemonSets are counted per node.
    pub replicas: u32,
    /// The pod the workload creates: its template, in the workload's namespace.
    pub pod: Pod,
    /// For Jobs and CronJobs: `ttlSecondsAfterFinished`, `None` inside when unset.
    pub job_ttl: Option<Option<i32>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlacementKind {
    Fargate,
    Ec2,
    Pending,
    Refused,
}

impl PlacementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PlacementKind::Fargate => "fargate",
            PlacementKind::Ec2 => "ec2",
            PlacementKind::Pending => "pending",
            PlacementKind::Refused => "refused",
        }
    }
}

/// The plan for one workload. Serialized as the documented `-o json` shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadPlan {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub replicas: u32,
    pub placement: PlacementKind,
    /// The Fargate profile; null unless the placement is `fargate`.
    pub profile: Option<String>,
    /// The managed node group; null unless the placement is `ec2`.
    pub node_group: Option<String>,
    /// `CapacityProvisioned`, e.g. `1vCPU 2GB`; null unless the placement is `fargate`.
    pub capacity_provisioned: Option<String>,
    /// Provisioned vCPU on Fargate; otherwise the pod's effective CPU request.
    pub vcpu: Option<f64>,
    /// Provisioned memory on Fargate; otherwise the pod's effective memory request.
    #[serde(rename = "memoryGiB")]
    pub memory_gib: Option<f64>,
    /// Provisioned ephemeral storage on Fargate.
    #[serde(rename = "storageGiB")]
    pub storage_gib: Option<u64>,
    /// Per replica.
    pub hourly_usd: f64,
    /// All replicas, 730 hours.
    pub monthly_usd: f64,
    pub reasons: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub workloads: usize,
    pub pods: u64,
    pub fargate_pods: u64,
    pub ec2_pods: u64,
    pub pending_pods: u64,
    pub refused_pods: u64,
    /// All Fargate pods for an hour.
    pub fargate_hourly_usd: f64,
    pub fargate_monthly_usd: f64,
    /// The node groups' instances for a month, whatever runs on them.
    pub node_groups_monthly_usd: f64,
    pub monthly_usd: f64,
    pub warnings: usize,
}

/// What the plan is made against.
pub struct PlanContext<'a> {
    pub profiles: &'a ProfileIndex,
    pub node_groups: &'a [NodeGroup],
    pub rule: SelectionRule,
    pub region: &'a str,
    pub prices: &'a PriceTable,
    pub rates: FargateRates,
    pub claims: &'a dyn ClaimLookup,
}

impl PlanContext<'_> {
    /// Plan every workload and add up the totals.
    pub fn plan(&self, workloads: &[Workload]) -> (Vec<WorkloadPlan>, Totals) {
        let plans: Vec<WorkloadPlan> = workloads.iter().map(|w| self.plan_one(w)).collect();
        let mut totals = Totals {
            workloads: plans.len(),
            ..Default::default()
        };
        for p in &plans {
            let pods = u64::from(p.replicas);
            totals.pods += pods;
            match p.placement {
                PlacementKind::Fargate => {
                    totals.fargate_pods += pods;
                    totals.fargate_hourly_usd += p.hourly_usd * pods as f64;
                    totals.fargate_monthly_usd += p.monthly_usd;
                }
                PlacementKind::Ec2 => totals.ec2_pods += pods,
                PlacementKind::Pending => totals.pending_pods += pods,
                PlacementKind::Refused => totals.refused_pods += pods,
            }
            totals.warnings += p.warnings.len();
        }
        totals.node_groups_monthly_usd = self
            .node_groups
            .iter()
            .filter_map(|g| {
                self.prices
                    .ec2(self.region, g.instance_type_name())
                    .map(|price| price * f64::from(g.desired_size) * HOURS_PER_MONTH)
            })
            .sum();
        totals.monthly_usd = totals.fargate_monthly_usd + totals.node_groups_monthly_usd;
        (plans, totals)
    }

    pub fn plan_one(&self, w: &Workload) -> WorkloadPlan {
        let mut plan = WorkloadPlan {
            kind: w.kind.clone(),
            namespace: w.namespace.clone(),
            name: w.name.clone(),
            replicas: w.replicas,
            placement: PlacementKind::Pending,
            profile: None,
            node_group: None,
            capacity_provisioned: None,
            vcpu: None,
            memory_gib: None,
            storage_gib: None,
            hourly_usd: 0.0,
            monthly_usd: 0.0,
            reasons: Vec::new(),
            warnings: Vec::new(),
        };
        let mut pod = w.pod.clone();
        pod.metadata.namespace = Some(w.namespace.clone());
        if pod.metadata.name.is_none() {
            pod.metadata.name = Some(w.name.clone());
        }
        if w.kind == "DaemonSet" {
            pod.metadata.owner_references = Some(vec![OwnerReference {
                api_version: "apps/v1".to_string(),
                kind: "DaemonSet".to_string(),
                name: w.name.clone(),
                uid: String::new(),
                ..Default::default()
            }]);
        }
        let requests = match pod.spec.as_ref().map(sizing::pod_requests) {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                plan.placement = PlacementKind::Refused;
                plan.reasons
                    .push(format!("the API server rejects the pod: {e}"));
                return plan;
            }
            None => PodRequests::default(),
        };
        let id = PodIdentity::of(&pod);
        let placement = self.profiles.place(&id, self.rule);
        match &placement {
            Placement::Fargate(m) => self.on_fargate(&mut plan, w, &pod, &requests, *m),
            Placement::OptedOut { hidden } => {
                if let Some(m) = hidden {
                    plan.warnings.push(format!(
                        "annotation {}: ec2 keeps this pod off Fargate although profile {} matches ({}); \
                         remove the annotation to run it on Fargate",
                        crate::COMPUTE_TYPE_ANNOTATION,
                        m.profile.name,
                        m.selector()
                    ));
                }
                plan.reasons.push(format!(
                    "annotation {}: ec2 opts out of Fargate",
                    crate::COMPUTE_TYPE_ANNOTATION
                ));
                self.off_fargate(&mut plan, w, &pod, &requests);
            }
            Placement::PinnedProfileUnusable { profile, problem } => {
                let why = match problem {
                    PinProblem::UnknownProfile => "which does not exist".to_string(),
                    PinProblem::NotActive(status) => format!("which is {status}, not ACTIVE"),
                    PinProblem::NoSelectorMatches => {
                        "none of whose selectors match the pod".to_string()
                    }
                };
                plan.reasons.push(format!(
                    "label {}={profile} pins profile {profile}, {why}",
                    crate::PROFILE_LABEL
                ));
                self.off_fargate(&mut plan, w, &pod, &requests);
            }
            Placement::NoMatch => {
                match self.profiles.nearest_selector(&id) {
                    Some(near) => plan
                        .reasons
                        .push(format!("no Fargate profile matches; {near}")),
                    None => plan.reasons.push("no ACTIVE Fargate profile".to_string()),
                }
                self.off_fargate(&mut plan, w, &pod, &requests);
            }
        }
        plan
    }

    fn on_fargate(
        &self,
        plan: &mut WorkloadPlan,
        w: &Workload,
        pod: &Pod,
        requests: &PodRequests,
        m: Match<'_>,
    ) {
        let mut refused = Vec::new();
        if let Err(refusal) = admission::validate(pod, self.claims) {
            refused.push(refusal.to_string());
        }
        let size = requests.fargate_size();
        if size.is_none() {
            refused.push(format!(
                "{}: {}",
                sizing::TOO_BIG_REASON,
                sizing::TOO_BIG_MESSAGE
            ));
        }
        let storage = sizing::provisioned_storage_gib(requests.ephemeral_storage_bytes);
        if storage.is_none() {
            refused.push(format!(
                "ephemeral storage: the {} requested would provision more than the {} GiB maximum",
                gib_text(requests.ephemeral_storage_bytes),
                sizing::MAX_STORAGE_GIB
            ));
        }
        let matched = format!(
            "profile {} selector {} ({})",
            m.profile.name,
            m.selector + 1,
            m.selector()
        );
        let (Some(size), Some(storage), true) = (size, storage, refused.is_empty()) else {
            plan.placement = PlacementKind::Refused;
            plan.reasons.push(format!("matches {matched}"));
            plan.reasons.extend(refused);
            set_requests(plan, requests);
            return;
        };
        plan.placement = PlacementKind::Fargate;
        plan.profile = Some(m.profile.name.clone());
        plan.capacity_provisioned = Some(size.to_string());
        plan.vcpu = Some(size.vcpu());
        plan.memory_gib = Some(size.memory_gib());
        plan.storage_gib = Some(storage);
        plan.hourly_usd = round_usd(self.rates.hourly(size, storage));
        plan.monthly_usd =
            round_usd(self.rates.hourly(size, storage) * f64::from(w.replicas) * HOURS_PER_MONTH);
        plan.reasons.push(format!("matches {matched}"));
        self.fargate_warnings(plan, w, pod, requests, size);
    }

    fn fargate_warnings(
        &self,
        plan: &mut WorkloadPlan,
        w: &Workload,
        pod: &Pod,
        requests: &PodRequests,
        size: FargateSize,
    ) {
        if let Some(annotations) = pod.metadata.annotations.as_ref()
            && let Some(w) = crate::fargate_spot::annotation_warning(annotations)
        {
            plan.warnings.push(w);
        }
        let id = PodIdentity::of(pod);
        let all = self.profiles.matching_profiles(&id);
        if all.len() > 1 && !id.labels.contains_key(crate::PROFILE_LABEL) {
            let names: Vec<&str> = all.iter().map(|m| m.profile.name.as_str()).collect();
            let by_rule: Vec<String> = SelectionRule::ALL
                .iter()
                .map(|&rule| match rule {
                    SelectionRule::Random => format!("any of them under {rule}"),
                    _ => format!(
                        "{} under {rule}",
                        self.profiles
                            .place(&id, rule)
                            .profile_name()
                            .unwrap_or("none")
                    ),
                })
                .collect();
            plan.warnings.push(format!(
                "profiles {} all match; the pod goes to {}; pin one with label {}",
                names.join(", "),
                by_rule.join(", "),
                crate::PROFILE_LABEL
            ));
        }
        if let Some(smaller) = requests.size_without_overhead()
            && smaller != size
        {
            let monthly = |s: FargateSize| self.rates.hourly(s, 20) * HOURS_PER_MONTH;
            let cap = (u64::from(smaller.memory_mib) * MIB).saturating_sub(FARGATE_MEMORY_OVERHEAD);
            plan.warnings.push(format!(
                "Fargate's 256 MiB overhead pushes this pod from {smaller} to {size}; requesting at most {}Mi memory \
                 would provision {smaller} and save ${:.2} per replica-month",
                cap / MIB,
                monthly(size) - monthly(smaller)
            ));
        }
        if requests.cpu_millis == 0 && requests.memory_bytes == 0 {
            plan.warnings.push(
                "no CPU or memory requests: Fargate provisions its smallest size, 0.25vCPU 0.5GB"
                    .to_string(),
            );
        }
        for c in pod
            .spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
        {
            let Some(res) = &c.resources else { continue };
            let (Some(req), Some(lim)) = (&res.requests, &res.limits) else {
                continue;
            };
            let differing: Vec<String> = ["cpu", "memory"]
                .iter()
                .filter_map(|r| match (req.get(*r), lim.get(*r)) {
                    (Some(a), Some(b)) if !same_quantity(r, &a.0, &b.0) => {
                        Some(format!("{r} request {} limit {}", a.0, b.0))
                    }
                    _ => None,
                })
                .collect();
            if !differing.is_empty() {
                plan.warnings.push(format!(
                    "container {}: {}; Fargate sizes by requests and expects limits equal to them",
                    c.name,
                    differing.join(", ")
                ));
            }
        }
        for c in pod
            .spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
        {
            let limit = c
                .resources
                .as_ref()
                .and_then(|r| r.limits.as_ref())
                .and_then(|l| l.get("cpu"))
                .and_then(|q| quantity::cpu_millis(&q.0).ok());
            if let Some(limit) = limit
                && limit > u64::from(size.vcpu_millis)
            {
                plan.warnings.push(format!(
                    "container {}: cpu limit {}m exceeds the provisioned {} vCPU; the container fails to start \
                     (StartError writing cpu.cfs_quota_us)",
                    c.name,
                    limit,
                    size.vcpu()
                ));
            }
        }
        if let Some(None) = w.job_ttl {
            plan.warnings.push(
                "Job without ttlSecondsAfterFinished: on Fargate its finished pods keep billing until the Job is deleted"
                    .to_string(),
            );
        }
        for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            if let Some(pvc) = &v.persistent_volume_claim
                && self.claims.claim(&w.namespace, &pvc.claim_name) == ClaimState::Unknown
            {
                plan.warnings.push(format!(
                    "volume {} mounts PVC {}, whose binding the inputs do not show: Fargate mounts only PVCs \
                     bound to statically provisioned EFS volumes ({})",
                    v.name,
                    pvc.claim_name,
                    admission::EFS_CSI_DRIVER
                ));
            }
        }
    }

    /// No Fargate profile takes the pod: a node group, or Pending.
    fn off_fargate(
        &self,
        plan: &mut WorkloadPlan,
        w: &Workload,
        pod: &Pod,
        requests: &PodRequests,
    ) {
        set_requests(plan, requests);
        let total_nodes: u64 = self
            .node_groups
            .iter()
            .map(|g| u64::from(g.desired_size))
            .sum();
        if self.node_groups.is_empty() || total_nodes == 0 {
            plan.placement = PlacementKind::Pending;
            if w.kind == "DaemonSet" {
                plan.replicas = 0;
                plan.reasons.push(
                    "a DaemonSet runs one pod per EC2 node; there are no node groups, and Fargate runs no DaemonSets"
                        .to_string(),
                );
            } else {
                plan.reasons.push(
                    "no node groups: the pod stays Pending (no nodes available to schedule pods)"
                        .to_string(),
                );
            }
            return;
        }
        let mut misfits: BTreeMap<String, u64> = BTreeMap::new();
        let mut fitting: Vec<&NodeGroup> = Vec::new();
        for g in self.node_groups {
            match nodegroup::fits(pod, requests, g) {
                Ok(()) => fitting.push(g),
                Err(Misfit::NoNodes) => {}
                Err(m) => *misfits.entry(m.to_string()).or_default() += u64::from(g.desired_size),
            }
        }
        if w.kind == "DaemonSet" {
            // One pod per node it fits on.
            let nodes: u64 = fitting.iter().map(|g| u64::from(g.desired_size)).sum();
            plan.replicas = u32::try_from(nodes).unwrap_or(u32::MAX);
        }
        let Some(group) = fitting.first() else {
            plan.placement = PlacementKind::Pending;
            let parts: Vec<String> = misfits.iter().map(|(m, n)| format!("{n} {m}")).collect();
            plan.reasons.push(format!(
                "0/{total_nodes} nodes are available: {}.",
                parts.join(", ")
            ));
            return;
        };
        plan.placement = PlacementKind::Ec2;
        plan.node_group = Some(group.name.clone());
        plan.reasons.push(format!(
            "runs on node group {} ({} × {})",
            group.name,
            group.desired_size,
            group.instance_type_name()
        ));
        match (
            self.prices.ec2(self.region, group.instance_type_name()),
            group.instance_type(),
        ) {
            (Some(price), Some(it)) => {
                // The pod's share of an instance, by whichever resource it uses more of.
                let cpu_share = requests.cpu_millis as f64 / (f64::from(it.vcpus) * 1000.0);
                let mem_share = requests.memory_bytes as f64 / (it.memory_mib * MIB) as f64;
                let share = cpu_share.max(mem_share).min(1.0);
                plan.hourly_usd = round_usd(price * share);
                plan.monthly_usd =
                    round_usd(price * share * f64::from(plan.replicas) * HOURS_PER_MONTH);
            }
            _ => plan.warnings.push(format!(
                "no price for instance type {} in {}: cost not estimated",
                group.instance_type_name(),
                self.region
            )),
        }
    }
}

fn set_requests(plan: &mut WorkloadPlan, requests: &PodRequests) {
    plan.vcpu = Some(requests.cpu_millis as f64 / 1000.0);
    plan.memory_gib = Some(round_to(requests.memory_bytes as f64 / GIB as f64, 4));
}

fn same_quantity(resource: &str, a: &str, b: &str) -> bool {
    let parse = |q: &str| {
        if resource == "cpu" {
            quantity::cpu_millis(q).ok()
        } else {
            quantity::base_units(q).ok()
        }
    };
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn gib_text(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / GIB as f64)
}

fn round_to(value: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (value * f).round() / f
}

/// Dollars to a hundredth of a cent: enough for per-hour rates, stable in JSON.
fn round_usd(value: f64) -> f64 {
    round_to(value, 6)
}

#[cfg(test)]
mod tests;
