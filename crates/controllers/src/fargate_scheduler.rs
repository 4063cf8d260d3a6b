//! The fargate-scheduler: takes the pods Fargate's webhook gave it, validates them ("Pod not
//! supported on Fargate: …"), sizes them, records logging, allocates each an IP from its profile's
//! subnets, creates its own `fargate-ip-…` Node and binds the pod there. When a pod is gone, its
//! node goes and the IP is freed. Pods whose profile is deleted are deleted, so their controllers
//! recreate them under whatever matches now. Work is batched: one store transaction binds many pods.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use localfargate_core::admission::{self, NoClaims};
use localfargate_core::logging::{self, LoggingDecision};
use localfargate_core::security_groups::POD_SG_ANNOTATION;
use localfargate_core::sizing::{TOO_BIG_MESSAGE, TOO_BIG_REASON};
use localfargate_core::{
    CAPACITY_ANNOTATION, FARGATE_SCHEDULER, LOGGING_ANNOTATION, PROFILE_LABEL, PodFacts,
    ProfileStatus,
};
use localfargate_store::{Event, EventType, Object, StoreError, Tx, transaction};
use serde_json::{Value, json};

use crate::context::ClusterContext;
use crate::events::{self, EventType as Kind};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use localfargate_registry::binding::set_condition;
use localfargate_registry::meta::{DynamicObject, label_of};
use localfargate_registry::objects::{
    DeleteOptions, is_deleting, name_of, namespace_of, resource, uid_of,
};
use localfargate_registry::typed::{self, PodView};

/// Bind at most this many pods per store transaction.
const BATCH: usize = 512;

pub const FARGATE_NODE_PREFIX: &str = "fargate-ip-";

/// `fargate-ip-10-0-8-190.us-east-2.compute.internal`
pub fn node_name(ip: Ipv4Addr, dns_suffix: &str) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{FARGATE_NODE_PREFIX}{a}-{b}-{c}-{d}.{dns_suffix}")
}

/// The pod IP a Fargate node was named after.
pub fn node_ip(node: &str) -> Option<Ipv4Addr> {
    let rest = node.strip_prefix(FARGATE_NODE_PREFIX)?;
    let dotted = rest.split('.').next()?.replace('-', ".");
    dotted.parse().ok()
}

enum Outcome {
    Bind {
        pod: Value,
        node: Value,
        events: Vec<(Kind, &'static str, String)>,
        ip: Ipv4Addr,
    },
    /// Refused for good: the pod stays Pending with this event (and condition, when set).
    Refuse {
        pod: Option<Value>,
        event: (Kind, &'static str, String),
    },
    /// Try again after the delay; the event, when set, says why.
    Retry {
        event: Option<(Kind, &'static str, String)>,
    },
}

struct Scheduler {
    ctx: Arc<ClusterContext>,
    /// Pod keys to look at.
    queue: HashSet<String>,
    /// Pods waiting to be retried, by key: attempts so far and when to try next.
    retries: HashMap<String, (u32, Instant)>,
    /// Pods refused for good, by uid.
    refused: HashSet<String>,
    /// Which profiles (name → ACTIVE) the last sweep saw.
    profiles_seen: BTreeMap<String, bool>,
}

pub async fn run(ctx: Arc<ClusterContext>) {
    let mut s = Scheduler {
        ctx: ctx.clone(),
        queue: HashSet::new(),
        retries: HashMap::new(),
        refused: HashSet::new(),
        profiles_seen: BTreeMap::new(),
    };
    loop {
        // Only the keys are kept: the objects are read again when their turn comes.
        let mut keys = Vec::new();
        let mut bound = HashSet::new();
        let mut watcher = ctx
            .scan_and_watch_pods("fargate-scheduler", &mut |o| {
                if let Some(node) = PodView::of(&o.value).node_name() {
                    bound.insert(node.to_string());
                }
                keys.push(o.key);
            })
            .await;
        s.queue.extend(keys);
        s.remove_orphan_nodes(&bound);
        loop {
            s.sweep_profiles();
            s.schedule_queue();
            let wait = s
                .retries
                .values()
                .map(|(_, at)| at.saturating_duration_since(Instant::now()))
                .min()
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            let first = tokio::select! {
                e = watcher.next() => Some(e),
                _ = tokio::time::sleep(wait) => None,
            };
            let mut batch = Vec::new();
            match first {
                Some(Ok(e)) => batch.push(e),
                Some(Err(StoreError::Expired { .. })) => break,
                Some(Err(e)) => {
                    tracing::error!(error = %e, "fargate-scheduler watch");
                    break;
                }
                None => {}
            }
            // Take what else is ready now, so one transaction serves many pods.
            while batch.len() < BATCH * 4 {
                match watcher.try_next() {
                    Some(Ok(e)) => batch.push(e),
                    // An error shows again on the next wait, which handles it.
                    _ => break,
                }
            }
            for e in batch {
                s.observe(e);
            }
            let due: Vec<String> = s
                .retries
                .iter()
                .filter(|(_, (_, at))| *at <= Instant::now())
                .map(|(k, _)| k.clone())
                .collect();
            s.queue.extend(due);
        }
    }
}

impl Scheduler {
    fn observe(&mut self, e: Event) {
        let pod = &e.object.value;
        if e.event_type == EventType::Deleted {
            self.retries.remove(&e.object.key);
            self.refused.remove(uid_of(pod));
            if let Some(node) = PodView::of(pod).node_name()
                && let Some(ip) = node_ip(node)
            {
                self.remove_node(node, ip);
            }
            return;
        }
        self.queue.insert(e.object.key.clone());
    }

    fn remove_node(&self, node: &str, ip: Ipv4Addr) {
        let nodes = resource("", "nodes");
        match self.ctx.objects.purge(nodes, "", node) {
            Ok(()) => self.ctx.release_ip(ip),
            Err(e) => tracing::warn!(node, error = %e, "removing a Fargate node"),
        }
    }

    /// Fargate nodes no pod is bound to (their pod went while this scheduler was not watching).
    /// Remove the Fargate nodes no pod is bound to (`bound`: the nodes pods name).
    fn remove_orphan_nodes(&self, bound: &HashSet<String>) {
        let mut orphans = Vec::new();
        // Scanned: only the orphans' names are kept.
        let _ = self
            .ctx
            .objects
            .scan(resource("", "nodes"), None, &mut |n| {
                let name = name_of(&n.value);
                if let Some(ip) = node_ip(name)
                    && !bound.contains(name)
                {
                    orphans.push((name.to_string(), ip));
                }
            });
        for (name, ip) in orphans {
            self.remove_node(&name, ip);
        }
    }

    fn wants(&self, o: &Object) -> bool {
        let pod = &o.value;
        let view = PodView::of(pod);
        view.scheduler_name() == Some(FARGATE_SCHEDULER)
            && view.node_name().is_none()
            && !is_deleting(pod)
            && view.is_pending()
            && !self.refused.contains(uid_of(pod))
            && self
                .retries
                .get(&o.key)
                .is_none_or(|(_, at)| *at <= Instant::now())
    }

    fn schedule_queue(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        let mut keys: Vec<String> = self.queue.drain().collect();
        keys.sort();
        // Read once, when the first pod to schedule turns up.
        let mut logging = None;
        // A batch at a time: one transaction each, and only a batch of pods decoded at once.
        for chunk in keys.chunks(BATCH) {
            let pods: Vec<Arc<Object>> = chunk
                .iter()
                .filter_map(|k| {
                    self.ctx
                        .objects
                        .store
                        .get(self.ctx.objects.store_kind(), k)
                        .ok()
                        .flatten()
                })
                .filter(|o| self.wants(o))
                .collect();
            if pods.is_empty() {
                continue;
            }
            let logging = logging.get_or_insert_with(|| self.logging_decision());
            let outcomes: Vec<(Arc<Object>, Outcome)> = pods
                .into_iter()
                .map(|o| {
                    let outcome = self.decide(&o, logging);
                    (o, outcome)
                })
                .collect();
            self.commit(outcomes);
        }
    }

    /// Logging is decided once per pod, at scheduling (which follows creation at once).
    fn logging_decision(&self) -> LoggingDecision {
        let objects = &self.ctx.objects;
        let ns = objects
            .get_object(resource("", "namespaces"), "", logging::LOGGING_NAMESPACE)
            .ok()
            .flatten();
        let cm = objects
            .get_object(
                resource("", "configmaps"),
                logging::LOGGING_NAMESPACE,
                logging::LOGGING_CONFIGMAP,
            )
            .ok()
            .flatten();
        let labels: Option<BTreeMap<String, String>> = ns.map(|n| {
            typed::decode_or_log::<Namespace>(&n.value)
                .and_then(|n| n.metadata.labels)
                .unwrap_or_default()
        });
        let data: Option<BTreeMap<String, String>> = cm.map(|c| {
            typed::decode_or_log::<ConfigMap>(&c.value)
                .and_then(|c| c.data)
                .unwrap_or_default()
        });
        logging::decide(labels.as_ref(), data.as_ref())
    }

    fn decide(&mut self, o: &Object, logging: &LoggingDecision) -> Outcome {
        let pod = &o.value;
        let typed = match localfargate_registry::admission::decode_pod(pod) {
            Ok(p) => p,
            Err(e) => {
                return Outcome::Refuse {
                    pod: None,
                    event: (Kind::Warning, "FailedScheduling", e.to_string()),
                };
            }
        };
        if let Err(refusal) = admission::validate(&typed, &NoClaims) {
            return Outcome::Refuse {
                pod: None,
                event: (Kind::Warning, "FailedScheduling", refusal.to_string()),
            };
        }
        let size = PodFacts::of(&typed)
            .ok()
            .and_then(|f| f.requests().fargate_size());
        let Some(size) = size else {
            let mut p = pod.clone();
            set_condition(
                &mut p,
                "PodScheduled",
                false,
                Some(TOO_BIG_REASON),
                Some(TOO_BIG_MESSAGE),
            );
            return Outcome::Refuse {
                pod: Some(p),
                event: (
                    Kind::Warning,
                    "FailedScheduling",
                    TOO_BIG_MESSAGE.to_string(),
                ),
            };
        };
        let profile_name = label_of(pod, PROFILE_LABEL).unwrap_or("");
        let index = self.ctx.objects.profile_index();
        let Some(profile) = index
            .get(profile_name)
            .filter(|p| p.status == ProfileStatus::Active)
        else {
            return Outcome::Retry {
                event: Some((
                    Kind::Warning,
                    "FailedScheduling",
                    "Pod provisioning timed out (will retry)".to_string(),
                )),
            };
        };
        let spread = localfargate_core::matching::fnv1a(&[uid_of(pod)]);
        let (subnet, ip) = match self.ctx.allocate_ip(&profile.subnets, spread) {
            Ok(x) => x,
            Err(e) => {
                return Outcome::Retry {
                    event: Some((Kind::Warning, "FailedScheduling", e)),
                };
            }
        };
        let zone = self
            .ctx
            .objects
            .settings
            .network
            .subnet(&subnet)
            .map(|(_, s)| s.availability_zone.clone())
            .unwrap_or_default();
        let node_name = node_name(ip, &self.ctx.objects.settings.dns_suffix());
        let node = self.ctx.fargate_node(&node_name, ip, &zone);
        let mut bound = match DynamicObject::from_value(pod.clone()) {
            Ok(b) => b,
            Err(e) => {
                return Outcome::Refuse {
                    pod: None,
                    event: (Kind::Warning, "FailedScheduling", e.to_string()),
                };
            }
        };
        bound
            .metadata
            .insert_annotation(CAPACITY_ANNOTATION, size.to_string());
        bound
            .metadata
            .insert_annotation(LOGGING_ANNOTATION, logging.status.to_string());
        let mut events = Vec::new();
        let groups = crate::security_groups::policy_groups(&self.ctx.objects, pod);
        // Fargate's, not the user's: set from the policies, or removed.
        if let Some(annotations) = bound.metadata.annotations.as_mut() {
            annotations.remove(POD_SG_ANNOTATION);
        }
        if !groups.is_empty() {
            bound
                .metadata
                .insert_annotation(POD_SG_ANNOTATION, groups.join(","));
            let known = crate::security_groups::model(&self.ctx.objects).0;
            for g in groups
                .iter()
                .filter(|g| !known.iter().any(|k| &k.group_id == *g))
            {
                events.push((
                    Kind::Warning,
                    "SecurityGroupNotFound",
                    format!(
                        "security group {g} is not in the VPC model (localfargate network): \
                         it lets nothing in"
                    ),
                ));
            }
        }
        // The body is untyped: the binding writes the one field it owns.
        bound.field_mut("spec")["nodeName"] = json!(node_name);
        let mut p = bound.into_value();
        set_condition(&mut p, "PodScheduled", true, None, None);
        let log_kind = if logging.warning {
            Kind::Warning
        } else {
            Kind::Normal
        };
        Outcome::Bind {
            pod: p,
            node,
            ip,
            events: [
                vec![(log_kind, logging.reason, logging.message.clone())],
                events,
                vec![(
                    Kind::Normal,
                    "Scheduled",
                    format!(
                        "Successfully assigned {}/{} to {node_name}",
                        namespace_of(pod),
                        name_of(pod)
                    ),
                )],
            ]
            .concat(),
        }
    }

    fn retry_later(&mut self, key: &str) -> bool {
        let max = self.ctx.settings.max_schedule_attempts;
        let entry = self
            .retries
            .entry(key.to_string())
            .or_insert((0, Instant::now()));
        entry.0 += 1;
        if entry.0 >= max {
            return false;
        }
        entry.1 = Instant::now() + Duration::from_secs(1 << entry.0.min(5));
        true
    }

    /// Write a batch of decisions in one transaction. A pod that changed since it was read is
    /// skipped and looked at again.
    fn commit(&mut self, outcomes: Vec<(Arc<Object>, Outcome)>) {
        let kind = self.ctx.objects.store_kind().to_string();
        let nodes = resource("", "nodes");
        let mut bound_ips = Vec::new();
        let mut stale = Vec::new();
        let mut events_out: Vec<(Value, (Kind, &'static str, String))> = Vec::new();
        let mut refused_uids = Vec::new();
        let mut retry_keys = Vec::new();
        let result = transaction(&*self.ctx.objects.store, |tx: &mut dyn Tx| {
            bound_ips.clear();
            stale.clear();
            events_out.clear();
            refused_uids.clear();
            retry_keys.clear();
            for (o, outcome) in &outcomes {
                if tx.revision_of(&kind, &o.key)? != Some(o.revision) {
                    stale.push(o.key.clone());
                    if let Outcome::Bind { ip, .. } = outcome {
                        bound_ips.push((*ip, false));
                    }
                    continue;
                }
                match outcome {
                    Outcome::Bind {
                        pod,
                        node,
                        events,
                        ip,
                    } => {
                        tx.create(&kind, &nodes.key("", name_of(node)), node)?;
                        let written = tx.update(&kind, &o.key, pod, Some(o.revision))?;
                        let mut shown = written.value.clone();
                        localfargate_registry::objects::set_resource_version(
                            &mut shown,
                            written.revision,
                        );
                        for e in events {
                            events_out.push((shown.clone(), e.clone()));
                        }
                        bound_ips.push((*ip, true));
                    }
                    Outcome::Refuse { pod, event } => {
                        if let Some(p) = pod {
                            tx.update(&kind, &o.key, p, Some(o.revision))?;
                        }
                        events_out.push((o.value.clone(), event.clone()));
                        refused_uids.push(uid_of(&o.value).to_string());
                    }
                    Outcome::Retry { event } => {
                        if let Some(e) = event {
                            events_out.push((o.value.clone(), e.clone()));
                        }
                        retry_keys.push(o.key.clone());
                    }
                }
            }
            for (involved, (kind_, reason, message)) in &events_out {
                let (key, event) =
                    events::build(involved, *kind_, reason, message, FARGATE_SCHEDULER);
                // The same event again (a retry) only needs its count; skip it in the batch.
                match tx.create(&kind, &key, &event) {
                    Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                for (ip, used) in &bound_ips {
                    if !used {
                        self.ctx.release_ip(*ip);
                    }
                }
                for uid in refused_uids {
                    self.refused.insert(uid);
                }
                for key in retry_keys {
                    if !self.retry_later(&key) {
                        // Out of attempts: the pod stays Pending, as AWS leaves it.
                        self.retries.remove(&key);
                        if let Ok(Some(o)) = self.ctx.objects.store.get(&kind, &key) {
                            self.refused.insert(uid_of(&o.value).to_string());
                        }
                    }
                }
                for (o, outcome) in &outcomes {
                    if matches!(outcome, Outcome::Bind { .. }) && !stale.contains(&o.key) {
                        self.retries.remove(&o.key);
                    }
                }
                self.queue.extend(stale);
            }
            Err(e) => {
                tracing::warn!(error = %e, pods = outcomes.len(), "fargate-scheduler batch failed; retrying");
                for (o, outcome) in &outcomes {
                    if let Outcome::Bind { ip, .. } = outcome {
                        self.ctx.release_ip(*ip);
                    }
                    self.queue.insert(o.key.clone());
                }
            }
        }
    }

    /// When a profile stops being ACTIVE, the pods it placed are deleted: their controllers make
    /// new ones, which land on another matching profile or stay Pending, as AWS documents.
    fn sweep_profiles(&mut self) {
        let index = self.ctx.objects.profile_index();
        let now: BTreeMap<String, bool> = index
            .profiles()
            .iter()
            .map(|p| (p.name.clone(), p.status == ProfileStatus::Active))
            .collect();
        if now == self.profiles_seen {
            return;
        }
        let gone: HashSet<&String> = self
            .profiles_seen
            .iter()
            .filter(|(name, active)| **active && now.get(*name) != Some(&true))
            .map(|(n, _)| n)
            .collect();
        if !gone.is_empty() {
            let pods = resource("", "pods");
            if let Ok((all, _)) = self.ctx.objects.list(pods, None) {
                for o in all.iter() {
                    let pod = &o.value;
                    let placed_by = label_of(pod, PROFILE_LABEL);
                    if PodView::of(pod).scheduler_name() == Some(FARGATE_SCHEDULER)
                        && placed_by.is_some_and(|p| gone.contains(&p.to_string()))
                        && !is_deleting(pod)
                    {
                        let _ = self.ctx.objects.delete(
                            pods,
                            namespace_of(pod),
                            name_of(pod),
                            &DeleteOptions::default(),
                        );
                    }
                }
            }
        }
        let appeared = now
            .iter()
            .any(|(name, active)| *active && self.profiles_seen.get(name) != Some(&true));
        if appeared && self.ctx.settings.replace_pending {
            self.replace_pending();
        }
        self.profiles_seen = now;
    }

    /// Beyond AWS (`--replace-pending-pods`): Pending pods a profile now selects are placed on
    /// Fargate. A controller's pod is deleted so its controller makes a new one, which the webhook
    /// admits; a bare pod goes through the webhook where it is.
    fn replace_pending(&self) {
        let pods = resource("", "pods");
        let Ok((all, _)) = self.ctx.objects.list(pods, None) else {
            return;
        };
        for o in all.iter() {
            let pod = &o.value;
            let view = PodView::of(pod);
            let waiting = view.scheduler_name() != Some(FARGATE_SCHEDULER)
                && view.node_name().is_none()
                && view.is_pending()
                && !is_deleting(pod);
            if !waiting {
                continue;
            }
            let Ok(typed) = localfargate_registry::admission::decode_pod(pod) else {
                continue;
            };
            let index = self.ctx.objects.profile_index();
            let placement = index.place(
                &localfargate_core::PodIdentity::of(&typed),
                self.ctx.objects.settings.selection_rule,
            );
            let Some(profile) = placement.profile_name().map(str::to_string) else {
                continue;
            };
            let (ns, name) = (namespace_of(pod), name_of(pod));
            if crate::workloads::controller_uid(pod).is_some() {
                let _ = self
                    .ctx
                    .objects
                    .delete(pods, ns, name, &DeleteOptions::default());
                continue;
            }
            let kind = self.ctx.objects.store_kind().to_string();
            let mut replaced = pod.clone();
            localfargate_registry::admission::mutate(&mut replaced, &profile);
            let _ = transaction(&*self.ctx.objects.store, |tx| {
                tx.update(&kind, &o.key, &replaced, Some(o.revision))
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_carry_the_ip() {
        let ip: Ipv4Addr = "10.0.8.190".parse().unwrap();
        let n = node_name(ip, "us-east-2.compute.internal");
        assert_eq!(n, "fargate-ip-10-0-8-190.us-east-2.compute.internal");
        assert_eq!(node_ip(&n), Some(ip));
        assert_eq!(
            node_name("10.0.14.253".parse().unwrap(), "ec2.internal"),
            "fargate-ip-10-0-14-253.ec2.internal"
        );
        assert_eq!(node_ip("ip-10-0-1-1.ec2.internal"), None);
    }
}
