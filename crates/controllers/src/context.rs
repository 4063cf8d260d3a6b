//! What one cluster's controllers share (its objects, runtime, IPAM, token signer, metrics),
//! and the node objects they register. Every controller depends on this; the cluster supervisor
//! (`cluster`) builds it and starts the controllers.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use localfargate_core::service_account_token::TokenSigner;
use localfargate_registry::objects::{Objects, new_uid, now_rfc3339, resource};
use localfargate_runtime::SandboxRuntime;
use localfargate_runtime::ipam::Ipam;
use localfargate_store::{Object, Watcher};
use serde_json::{Value, json};

/// What one cluster's controllers share.
pub struct ClusterContext {
    pub objects: Objects,
    /// The controllers' own knobs (periods, retries, beyond-AWS options).
    pub settings: Arc<crate::settings::ControllerSettings>,
    pub runtime: Arc<dyn SandboxRuntime>,
    /// Addresses are VPC-wide, so every cluster shares one IPAM.
    pub ipam: Arc<Mutex<Ipam>>,
    /// `1.31`: the kubelet version nodes report.
    pub version: String,
    /// The cluster DNS address pods' resolv.conf names (`kube-dns`: the service CIDR's `.10`).
    pub cluster_dns: Option<Ipv4Addr>,
    /// Signs the pods' projected service-account tokens; `None` for a record without a key.
    pub tokens: Option<Arc<TokenSigner>>,
    /// The tokens pods were given, reused until the kubelet would renew them.
    pub issued_tokens: Mutex<crate::volume_sync::IssuedTokens>,
    /// Pods' usage, as metrics-server has it: what HorizontalPodAutoscalers scale on.
    pub metrics: Arc<localfargate_registry::metrics::MetricsStore>,
}

impl ClusterContext {
    fn ipam(&self) -> std::sync::MutexGuard<'_, Ipam> {
        self.ipam
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A free pod address in one of `subnets`. With a runtime whose pods share the host's
    /// network with other localfargates, an address another live one holds is skipped (and
    /// kept out of this cluster's pool).
    pub fn allocate_ip(
        &self,
        subnets: &[String],
        spread: u64,
    ) -> Result<(String, Ipv4Addr), String> {
        let claims = self.runtime.address_claims();
        let mut ipam = self.ipam();
        loop {
            let (subnet, ip) = ipam
                .allocate_in(subnets, spread)
                .map_err(|e| e.to_string())?;
            if claims.is_none_or(|c| c.claim(ip)) {
                return Ok((subnet, ip));
            }
            tracing::debug!(%ip, "pod address held by another localfargate on this host");
        }
    }

    pub fn release_ip(&self, ip: Ipv4Addr) {
        self.ipam().release(ip);
        if let Some(claims) = self.runtime.address_claims() {
            claims.release(ip);
        }
    }

    /// The prefix length and router of the subnet holding `ip`.
    pub fn subnet_of(&self, ip: Ipv4Addr) -> Option<(u8, Ipv4Addr)> {
        self.ipam()
            .subnet_of(ip)
            .map(|s| (s.prefix_len(), s.gateway()))
    }

    /// Every pod of the cluster, handed to `f` one at a time (a cluster's pods are never all
    /// decoded at once), and a watch of pods from the revision they were read at, trying again
    /// each second until both work: how the fargate-scheduler and the node agent (re)start.
    pub async fn scan_and_watch_pods(
        &self,
        who: &str,
        f: &mut (dyn FnMut(Object) + Send),
    ) -> Watcher {
        let pods = resource("", "pods");
        loop {
            let result = self
                .objects
                .scan(pods, None, &mut *f)
                .map_err(|e| e.to_string())
                .and_then(|revision| {
                    self.objects
                        .store
                        .watch(self.objects.store_kind(), &pods.key_prefix(None), revision)
                        .map_err(|e| e.to_string())
                });
            match result {
                Ok(watcher) => return watcher,
                Err(e) => {
                    tracing::error!(error = %e, "{who} cannot list and watch pods");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    pub fn kubelet_version(&self) -> String {
        format!("v{}.0-eks-localfargate", self.version)
    }

    /// A Fargate node as EKS shows one: the labels and taint of real `describe node` output, and a
    /// capacity unrelated to the pod's size.
    pub fn fargate_node(&self, name: &str, ip: Ipv4Addr, zone: &str) -> Value {
        let region = &self.objects.settings.region;
        let hostname = name.strip_prefix("fargate-").unwrap_or(name);
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "uid": new_uid(),
                "creationTimestamp": now_rfc3339(),
                "labels": {
                    "beta.kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux",
                    "eks.amazonaws.com/compute-type": "fargate",
                    "failure-domain.beta.kubernetes.io/region": region,
                    "failure-domain.beta.kubernetes.io/zone": zone,
                    "kubernetes.io/arch": "amd64",
                    "kubernetes.io/hostname": hostname,
                    "kubernetes.io/os": "linux",
                    "topology.kubernetes.io/region": region,
                    "topology.kubernetes.io/zone": zone,
                },
                "annotations": {
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                },
            },
            "spec": {
                "providerID": format!("aws:///{zone}/{}", &new_uid()[..8]),
                "taints": [{"key": "eks.amazonaws.com/compute-type", "value": "fargate", "effect": "NoSchedule"}],
            },
            "status": node_status(ip, hostname, &self.kubelet_version(),
                json!({"cpu": "2", "memory": "4037540Ki", "ephemeral-storage": "30832548Ki", "pods": "1"}),
                json!({"cpu": "2", "memory": "3935140Ki", "ephemeral-storage": "28415217208", "pods": "1"})),
        })
    }
}

/// A Ready node's status.
pub fn node_status(
    ip: Ipv4Addr,
    hostname: &str,
    kubelet: &str,
    capacity: Value,
    allocatable: Value,
) -> Value {
    let now = now_rfc3339();
    let condition = |t: &str, s: &str, reason: &str, message: &str| {
        json!({"type": t, "status": s, "lastHeartbeatTime": now, "lastTransitionTime": now,
               "reason": reason, "message": message})
    };
    json!({
        "capacity": capacity,
        "allocatable": allocatable,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": ip.to_string()},
            {"type": "Hostname", "address": hostname},
            {"type": "InternalDNS", "address": hostname},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": "5.10.0-localfargate",
            "osImage": "Amazon Linux 2",
            "containerRuntimeVersion": "containerd://1.7.0",
            "kubeletVersion": kubelet,
            "kubeProxyVersion": kubelet,
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    })
}
