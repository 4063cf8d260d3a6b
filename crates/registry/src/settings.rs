//! What every cluster's controllers are configured with, from `localfargate up`'s flags.

use std::time::Duration;

use localfargate_core::SelectionRule;
use localfargate_core::eks::Network;

#[derive(Debug, Clone)]
pub struct Settings {
    pub region: String,
    /// Which profile wins when several match (AWS docs: alphabetical `name`).
    pub selection_rule: SelectionRule,
    /// The VPC model whose subnets Fargate pods get their IPs from.
    pub network: Network,
    /// Beyond AWS (off by default): an event naming the nearest selector a pod missed.
    pub explain_misses: bool,
    /// Beyond AWS (off by default): Pending pods are re-placed when a matching profile appears.
    pub replace_pending: bool,
    /// How many times the fargate-scheduler tries a pod before leaving it Pending, as AWS's
    /// bounded retries do.
    pub max_schedule_attempts: u32,
    /// How often running pods' ConfigMap, Secret, downward API and projected volumes are
    /// brought up to date (the kubelet's sync period, a minute by default).
    pub volume_sync_interval: std::time::Duration,
    /// How often the node agent's eviction manager measures pods' ephemeral storage (the
    /// kubelet's housekeeping interval: 10 s).
    pub eviction_interval: Duration,
    /// How often each HorizontalPodAutoscaler is evaluated
    /// (`--horizontal-pod-autoscaler-sync-period`: 15 s).
    pub hpa_sync_period: Duration,
}

impl Settings {
    pub fn new(region: &str) -> Self {
        Settings {
            region: region.to_string(),
            selection_rule: SelectionRule::Name,
            network: Network::default_for(region),
            explain_misses: false,
            replace_pending: false,
            max_schedule_attempts: 5,
            volume_sync_interval: std::time::Duration::from_secs(60),
            eviction_interval: Duration::from_secs(10),
            hpa_sync_period: Duration::from_secs(15),
        }
    }

    /// `ec2.internal` in us-east-1, `<region>.compute.internal` elsewhere.
    pub fn dns_suffix(&self) -> String {
        if self.region == "us-east-1" {
            "ec2.internal".to_string()
        } else {
            format!("{}.compute.internal", self.region)
        }
    }
}
