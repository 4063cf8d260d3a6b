//! Node ports for Services, as kube-apiserver's port allocator gives them: a NodePort Service,
//! and a LoadBalancer one unless `allocateLoadBalancerNodePorts: false`, gets a free port of
//! 30000-32767 for each of its ports that names none (from the upper band first: the lowest 86
//! are left for Services that choose theirs; ports sharing a number share a node port); one it
//! names must be in the range and held by no other Service. A LoadBalancer Service with
//! `externalTrafficPolicy: Local` also gets a `healthCheckNodePort`. On an update, ports keep the
//! node ports they had, and a Service that no longer needs them loses them.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use crate::objects::{KubeError, Objects, Result, name_of, resource};

/// `--service-node-port-range`'s default.
pub const FIRST: u32 = 30000;
pub const LAST: u32 = 32767;

/// The lowest ports, left for Services that choose their own (upstream's static band: the
/// range's size / 32, at least 16 and at most 128).
fn static_band() -> u32 {
    ((LAST - FIRST + 1) / 32).clamp(16, 128)
}

fn kind_of(service: &Value) -> &str {
    service["spec"]["type"].as_str().unwrap_or("ClusterIP")
}

/// Whether the Service's ports get node ports.
fn needs_node_ports(service: &Value) -> bool {
    match kind_of(service) {
        "NodePort" => true,
        "LoadBalancer" => service["spec"]["allocateLoadBalancerNodePorts"] != false,
        _ => false,
    }
}

fn needs_health_check(service: &Value) -> bool {
    kind_of(service) == "LoadBalancer" && service["spec"]["externalTrafficPolicy"] == "Local"
}

fn port_number(v: &Value) -> Option<u32> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n != 0)
}

/// The node ports of the Services among `services` other than `service` itself.
fn held_by_others_of<'a>(
    services: impl IntoIterator<Item = &'a Value>,
    service: &Value,
) -> HashSet<u32> {
    let me = (
        service["metadata"]["namespace"].as_str().unwrap_or(""),
        name_of(service),
    );
    services
        .into_iter()
        .filter(|s| {
            (
                s["metadata"]["namespace"].as_str().unwrap_or(""),
                name_of(s),
            ) != me
        })
        .flat_map(held_by)
        .collect()
}

/// Every node port other Services hold.
fn held_by_others(objects: &Objects, service: &Value) -> Result<HashSet<u32>> {
    let (services, _) = objects.list(resource("", "services"), None)?;
    Ok(held_by_others_of(
        services.iter().map(|o| &o.value),
        service,
    ))
}

fn invalid(service: &Value, field: &str, port: u32, why: &str) -> KubeError {
    KubeError::invalid(
        resource("", "services"),
        name_of(service),
        field,
        &format!("Invalid value: {port}: {why}"),
    )
}

/// A free port, from the upper band first.
fn free_port(service: &Value, taken: &HashSet<u32>, field: &str) -> Result<u32> {
    let start = FIRST + static_band();
    let span = LAST + 1 - start;
    let seed = (uuid::Uuid::new_v4().as_u128() % u128::from(span)) as u32;
    (0..span)
        .map(|i| start + (seed + i) % span)
        .chain(FIRST..start)
        .find(|p| !taken.contains(p))
        .ok_or_else(|| {
            KubeError::invalid(
                resource("", "services"),
                name_of(service),
                field,
                "Internal error: failed to allocate a nodePort: range is full",
            )
        })
}

/// Check a port a Service names for itself.
fn check_named(service: &Value, field: &str, port: u32, taken: &HashSet<u32>) -> Result<()> {
    if !(FIRST..=LAST).contains(&port) {
        return Err(invalid(
            service,
            field,
            port,
            &format!(
                "provided port is not in the valid range. The range of valid ports is {FIRST}-{LAST}"
            ),
        ));
    }
    if taken.contains(&port) {
        return Err(invalid(
            service,
            field,
            port,
            "provided port is already allocated",
        ));
    }
    Ok(())
}

/// The node ports a Service holds: its ports' and its health check's.
fn held_by(service: &Value) -> impl Iterator<Item = u32> + '_ {
    service["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| port_number(&p["nodePort"]))
        .chain(port_number(&service["spec"]["healthCheckNodePort"]))
}

/// The node ports a request names itself (kept on a retry; refused when taken).
pub fn named(body: &Value) -> HashSet<u32> {
    held_by(body).collect()
}

/// A node port of `service` that another stored Service holds, read inside the create's
/// transaction: the ports were free when they were chosen, but another create may have taken
/// one since, as kube-apiserver's allocator would see in its own transaction.
pub fn taken_in(
    tx: &mut dyn localfargate_store::Tx,
    store_kind: &str,
    service: &Value,
) -> std::result::Result<Option<u32>, localfargate_store::StoreError> {
    let mine: HashSet<u32> = held_by(service).collect();
    if mine.is_empty() {
        return Ok(None);
    }
    let prefix = resource("", "services").key_prefix(None);
    let stored = tx.list(store_kind, &prefix)?;
    let others = held_by_others_of(stored.iter().map(|o| &o.value), service);
    Ok(mine.intersection(&others).min().copied())
}

/// After another Service took `port` between allocation and write: upstream's refusal when the
/// request named that port itself, else the Service's chosen ports are dropped and allocated
/// again.
pub fn retry_taken(
    objects: &Objects,
    service: &mut Value,
    port: u32,
    named: &HashSet<u32>,
) -> Result<()> {
    if named.contains(&port) {
        let field = service["spec"]["ports"]
            .as_array()
            .and_then(|ports| {
                ports
                    .iter()
                    .position(|p| port_number(&p["nodePort"]) == Some(port))
            })
            .map_or_else(
                || "spec.healthCheckNodePort".to_string(),
                |i| format!("spec.ports[{i}].nodePort"),
            );
        return Err(invalid(
            service,
            &field,
            port,
            "provided port is already allocated",
        ));
    }
    if let Some(ports) = service["spec"]["ports"].as_array_mut() {
        for p in ports {
            if port_number(&p["nodePort"]).is_some_and(|n| !named.contains(&n))
                && let Some(p) = p.as_object_mut()
            {
                p.remove("nodePort");
            }
        }
    }
    if port_number(&service["spec"]["healthCheckNodePort"]).is_some_and(|n| !named.contains(&n))
        && let Some(spec) = service["spec"].as_object_mut()
    {
        spec.remove("healthCheckNodePort");
    }
    allocate(objects, service, None)
}

/// Give a Service being created or updated its node ports (`old`: what it was).
pub fn allocate(objects: &Objects, service: &mut Value, old: Option<&Value>) -> Result<()> {
    // Node ports it kept from before it stopped needing them go (`dropTypeDependentFields`).
    if let Some(old) = old {
        if !needs_node_ports(service) {
            drop_unchanged(service, old);
        }
        if !needs_health_check(service)
            && service["spec"]["healthCheckNodePort"] == old["spec"]["healthCheckNodePort"]
            && let Some(spec) = service["spec"].as_object_mut()
        {
            spec.remove("healthCheckNodePort");
        }
    }
    let wants_ports = needs_node_ports(service);
    let wants_health = needs_health_check(service);
    let has_named = service["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| port_number(&p["nodePort"]).is_some());
    if !wants_ports && !wants_health && !has_named {
        return Ok(());
    }
    let mut taken = held_by_others(objects, service)?;
    // What the Service held before: kept for its ports that name none (`kubectl apply` of a
    // manifest without node ports), and not checked again.
    let mut before: BTreeMap<(u64, String), u32> = BTreeMap::new();
    let mut held_before: HashSet<u32> = HashSet::new();
    if let Some(old) = old {
        for p in old["spec"]["ports"].as_array().into_iter().flatten() {
            if let (Some(n), Some(port)) = (port_number(&p["nodePort"]), p["port"].as_u64()) {
                let protocol = p["protocol"].as_str().unwrap_or("TCP").to_string();
                before.insert((port, protocol), n);
                held_before.insert(n);
            }
        }
        held_before.extend(port_number(&old["spec"]["healthCheckNodePort"]));
    }
    let ports = service["spec"]["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut by_number: BTreeMap<u64, u32> = BTreeMap::new();
    let mut chosen = Vec::with_capacity(ports.len());
    for (i, p) in ports.iter().enumerate() {
        let field = format!("spec.ports[{i}].nodePort");
        let number = p["port"].as_u64().unwrap_or(0);
        let protocol = p["protocol"].as_str().unwrap_or("TCP").to_string();
        let port = match port_number(&p["nodePort"]) {
            Some(n) => {
                if !held_before.contains(&n) && by_number.get(&number) != Some(&n) {
                    check_named(service, &field, n, &taken)?;
                }
                Some(n)
            }
            None if wants_ports => Some(match before.get(&(number, protocol)) {
                Some(n) => *n,
                None => match by_number.get(&number) {
                    Some(n) => *n,
                    None => free_port(service, &taken, &field)?,
                },
            }),
            None => None,
        };
        if let Some(n) = port {
            taken.insert(n);
            by_number.entry(number).or_insert(n);
        }
        chosen.push(port);
    }
    if let Some(list) = service["spec"]["ports"].as_array_mut() {
        for (p, port) in list.iter_mut().zip(chosen) {
            if let Some(n) = port {
                p["nodePort"] = json!(n);
            }
        }
    }
    if wants_health {
        let field = "spec.healthCheckNodePort";
        match port_number(&service["spec"]["healthCheckNodePort"]) {
            Some(n) if held_before.contains(&n) => {}
            Some(n) => check_named(service, field, n, &taken)?,
            None => {
                let kept = old
                    .and_then(|o| port_number(&o["spec"]["healthCheckNodePort"]))
                    .filter(|_| old.is_some_and(needs_health_check));
                let n = match kept {
                    Some(n) => n,
                    None => free_port(service, &taken, field)?,
                };
                service["spec"]["healthCheckNodePort"] = json!(n);
            }
        }
    }
    Ok(())
}

/// Remove the node ports a Service carried over unchanged from when it needed them.
fn drop_unchanged(service: &mut Value, old: &Value) {
    let old_ports: Vec<&Value> = old["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if let Some(ports) = service["spec"]["ports"].as_array_mut() {
        for p in ports.iter_mut() {
            let same = old_ports
                .iter()
                .any(|o| o["port"] == p["port"] && o["nodePort"] == p["nodePort"]);
            if same && let Some(o) = p.as_object_mut() {
                o.remove("nodePort");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use localfargate_store::SqliteStore;

    fn objects() -> Objects {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let o = Objects::new(store, "c", Arc::new(crate::Settings::new("us-east-1")));
        o.create(
            resource("", "namespaces"),
            "",
            json!({"metadata": {"name": "default"}}),
        )
        .unwrap();
        o
    }

    fn service(name: &str, kind: &str, ports: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"},
               "spec": {"type": kind, "ports": ports}})
    }

    #[test]
    fn ports_get_free_node_ports_from_the_upper_band_shared_by_number() {
        let o = objects();
        let mut s = service(
            "dns",
            "NodePort",
            json!([{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}, {"port": 80}]),
        );
        allocate(&o, &mut s, None).unwrap();
        let n = |i: usize| s["spec"]["ports"][i]["nodePort"].as_u64().unwrap() as u32;
        assert!((FIRST + 86..=LAST).contains(&n(0)), "{s}");
        assert_eq!(n(0), n(1));
        assert_ne!(n(0), n(2));
    }

    #[test]
    fn named_ports_are_checked_against_the_range_and_other_services() {
        let o = objects();
        let mut first = service("a", "NodePort", json!([{"port": 80, "nodePort": 30080}]));
        allocate(&o, &mut first, None).unwrap();
        o.create(resource("", "services"), "default", first)
            .unwrap();
        let mut clash = service("b", "NodePort", json!([{"port": 80, "nodePort": 30080}]));
        let e = allocate(&o, &mut clash, None).unwrap_err();
        assert!(
            e.to_string().contains(
                "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
            ),
            "{e}"
        );
        let mut out = service("c", "NodePort", json!([{"port": 80, "nodePort": 8080}]));
        let e = allocate(&o, &mut out, None).unwrap_err();
        assert!(
            e.to_string().contains("spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767"),
            "{e}"
        );
    }

    #[test]
    fn a_port_taken_between_allocation_and_write_is_found_in_the_transaction() {
        let o = objects();
        // `late` was given 30090 before `early` took it (two creates interleaving).
        let mut late = service("late", "NodePort", json!([{"port": 80}]));
        allocate(&o, &mut late, None).unwrap();
        let port = late["spec"]["ports"][0]["nodePort"].as_u64().unwrap() as u32;
        let early = service("early", "NodePort", json!([{"port": 80, "nodePort": port}]));
        o.create(resource("", "services"), "default", early)
            .unwrap();
        let seen =
            localfargate_store::transaction(&*o.store, |tx| taken_in(tx, o.store_kind(), &late))
                .unwrap();
        assert_eq!(seen, Some(port));
        // A port the request did not name is allocated again …
        let mut retried = late.clone();
        retry_taken(&o, &mut retried, port, &HashSet::new()).unwrap();
        let again = retried["spec"]["ports"][0]["nodePort"].as_u64().unwrap() as u32;
        assert_ne!(again, port);
        // … and the create then goes through with it.
        o.create(resource("", "services"), "default", retried)
            .unwrap();
        // A port the request named is refused with upstream's message.
        let mut named_late = service("named", "NodePort", json!([{"port": 80, "nodePort": port}]));
        let asked = named(&named_late);
        let e = retry_taken(&o, &mut named_late, port, &asked).unwrap_err();
        assert!(
            e.to_string().contains(&format!(
                "spec.ports[0].nodePort: Invalid value: {port}: provided port is already allocated"
            )),
            "{e}"
        );
    }

    #[test]
    fn load_balancers_health_checks_and_updates() {
        let o = objects();
        let mut lb = service("lb", "LoadBalancer", json!([{"port": 443}]));
        lb["spec"]["externalTrafficPolicy"] = json!("Local");
        allocate(&o, &mut lb, None).unwrap();
        assert!(lb["spec"]["healthCheckNodePort"].is_u64());
        let kept = lb["spec"]["ports"][0]["nodePort"].clone();
        // Re-applied without node ports: they are kept.
        let mut again = service("lb", "LoadBalancer", json!([{"port": 443}]));
        again["spec"]["externalTrafficPolicy"] = json!("Local");
        allocate(&o, &mut again, Some(&lb)).unwrap();
        assert_eq!(again["spec"]["ports"][0]["nodePort"], kept);
        assert_eq!(
            again["spec"]["healthCheckNodePort"],
            lb["spec"]["healthCheckNodePort"]
        );
        // Back to ClusterIP: the node ports carried over go.
        let mut plain = lb.clone();
        plain["spec"]["type"] = json!("ClusterIP");
        allocate(&o, &mut plain, Some(&lb)).unwrap();
        assert!(
            plain["spec"]["ports"][0].get("nodePort").is_none(),
            "{plain}"
        );
        assert!(
            plain["spec"].get("healthCheckNodePort").is_none(),
            "{plain}"
        );
        // Without node ports for load balancers: none.
        let mut bare = service("bare", "LoadBalancer", json!([{"port": 443}]));
        bare["spec"]["allocateLoadBalancerNodePorts"] = json!(false);
        allocate(&o, &mut bare, None).unwrap();
        assert!(bare["spec"]["ports"][0].get("nodePort").is_none());
    }
}
