//! What the controllers are configured with beyond the registry's `Settings`, from `localfargate
//! up`'s flags: the fargate-scheduler's retries and beyond-AWS options, and the kubelet's and
//! kube-controller-manager's periods.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ControllerSettings {
    /// Beyond AWS (off by default): an event naming the nearest selector a pod missed.
    pub explain_misses: bool,
    /// Beyond AWS (off by default): Pending pods are re-placed when a matching profile appears.
    pub replace_pending: bool,
    /// How many times the fargate-scheduler tries a pod before leaving it Pending, as AWS's
    /// bounded retries do.
    pub max_schedule_attempts: u32,
    /// How often running pods' ConfigMap, Secret, downward API and projected volumes are
    /// brought up to date (the kubelet's sync period, a minute by default).
    pub volume_sync_interval: Duration,
    /// How often the node agent's eviction manager measures pods' ephemeral storage (the
    /// kubelet's housekeeping interval: 10 s).
    pub eviction_interval: Duration,
    /// How often each HorizontalPodAutoscaler is evaluated
    /// (`--horizontal-pod-autoscaler-sync-period`: 15 s).
    pub hpa_sync_period: Duration,
    /// Where the local load balancers' certificate authority is kept (`alb-ca.pem`), for
    /// HTTPS listeners of Ingresses of class `alb`; `None`: made in memory for this run.
    pub load_balancer_ca_dir: Option<PathBuf>,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        ControllerSettings {
            explain_misses: false,
            replace_pending: false,
            max_schedule_attempts: 5,
            volume_sync_interval: Duration::from_secs(60),
            eviction_interval: Duration::from_secs(10),
            hpa_sync_period: Duration::from_secs(15),
            load_balancer_ca_dir: None,
        }
    }
}
