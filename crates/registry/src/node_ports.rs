//! Node ports for Services, as kube-apiserver's port allocator gives them: a NodePort Service,
//! and a LoadBalancer one unless `allocateLoadBalancerNodePorts: false`, gets a free port of
//! 30000-32767 for each of its ports that names none (from the upper band first: the lowest 86
//! are left for Services that choose theirs; ports sharing a number share a node port); one it
//! names must be in the range and held by no other Service. A LoadBalancer Service with
//! `externalTrafficPolicy: Local` also gets a `healthCheckNodePort`. On an update, ports keep the
//! node ports they had, and a Service that no longer needs them loses them.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use crate::meta::DynamicObject;
use crate::objects::{KubeError, Objects, Result, name_of, namespace_of, resource};

/// `--service-node-port-range`'s default.
pub const FIRST: u32 = 30000;
pub const LAST: u32 = 32767;

/// The lowest ports, left for Services that choose their own (upstream's static band: the
/// range's size / 32, at least 16 and at most 128).
fn static_band() -> u32 {
    ((LAST - FIRST + 1) / 32).clamp(16, 128)
}

fn kind_of(spec: &Value) -> &str {
    spec["type"].as_str().unwrap_or("ClusterIP")
}

/// Whether the ports of a Service (its `spec`) get node ports.
fn needs_node_ports(spec: &Value) -> bool {
    match kind_of(spec) {
        "NodePort" => true,
        "LoadBalancer" => spec["allocateLoadBalancerNodePorts"] != false,
        _ => false,
    }
}

fn needs_health_check(spec: &Value) -> bool {
    kind_of(spec) == "LoadBalancer" && spec["externalTrafficPolicy"] == "Local"
}

fn port_number(v: &Value) -> Option<u32> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n != 0)
}

/// The node ports of the stored Services among `services` other than the one named `me`
/// (namespace, name).
fn held_by_others_of<'a>(
    services: impl IntoIterator<Item = &'a Value>,
    me: (&str, &str),
) -> HashSet<u32> {
    services
        .into_iter()
        .filter(|s| (namespace_of(s), name_of(s)) != me)
        .flat_map(|s| held_by(&s["spec"]))
        .collect()
}

/// Every node port other Services hold.
fn held_by_others(objects: &Objects, me: (&str, &str)) -> Result<HashSet<u32>> {
    let (services, _) = objects.list(resource("", "services"), None)?;
    Ok(held_by_others_of(services.iter().map(|o| &o.value), me))
}

/// Upstream's refusal of a port of the Service `name`.
fn invalid(name: &str, field: &str, port: u32, why: &str) -> KubeError {
    KubeError::invalid(
        resource("", "services"),
        name,
        field,
        &format!("Invalid value: {port}: {why}"),
    )
}

/// A free port, from the upper band first.
fn free_port(name: &str, taken: &HashSet<u32>, field: &str) -> Result<u32> {
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
                name,
                field,
                "Internal error: failed to allocate a nodePort: range is full",
            )
        })
}

/// Check a port a Service names for itself.
fn check_named(name: &str, field: &str, port: u32, taken: &HashSet<u32>) -> Result<()> {
    if !(FIRST..=LAST).contains(&port) {
        return Err(invalid(
            name,
            field,
            port,
            &format!(
                "provided port is not in the valid range. The range of valid ports is {FIRST}-{LAST}"
            ),
        ));
    }
    if taken.contains(&port) {
        return Err(invalid(
            name,
            field,
            port,
            "provided port is already allocated",
        ));
    }
    Ok(())
}

/// The node ports a Service (its `spec`) holds: its ports' and its health check's.
fn held_by(spec: &Value) -> impl Iterator<Item = u32> + '_ {
    spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| port_number(&p["nodePort"]))
        .chain(port_number(&spec["healthCheckNodePort"]))
}

/// The node ports a request names itself (kept on a retry; refused when taken).
pub fn named(body: &Value) -> HashSet<u32> {
    held_by(&body["spec"]).collect()
}

/// A node port of `service` that another stored Service holds, read inside the create's
/// transaction: the ports were free when they were chosen, but another create may have taken
/// one since, as kube-apiserver's allocator would see in its own transaction.
pub fn taken_in(
    tx: &mut dyn localfargate_store::Tx,
    store_kind: &str,
    service: &Value,
) -> std::result::Result<Option<u32>, localfargate_store::StoreError> {
    let mine: HashSet<u32> = held_by(&service["spec"]).collect();
    if mine.is_empty() {
        return Ok(None);
    }
    let prefix = resource("", "services").key_prefix(None);
    let stored = tx.list(store_kind, &prefix)?;
    let me = (namespace_of(service), name_of(service));
    let others = held_by_others_of(stored.iter().map(|o| &o.value), me);
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
            name_of(service),
            &field,
            port,
            "provided port is already allocated",
        ));
    }
    // `get_mut`, not indexing: indexing a missing key mutably would write `null` there.
    if let Some(ports) = service
        .get_mut("spec")
        .and_then(|s| s.get_mut("ports"))
        .and_then(Value::as_array_mut)
    {
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
    // The request as prepared is JSON here (the create retries on it): typed for the
    // allocation, by moving it there and back.
    let mut typed = DynamicObject::from_value(std::mem::take(service))?;
    allocate(objects, &mut typed, None)?;
    *service = typed.into_value();
    Ok(())
}

/// Give a Service being created or updated its node ports (`old`: what it was).
pub fn allocate(
    objects: &Objects,
    service: &mut DynamicObject,
    old: Option<&DynamicObject>,
) -> Result<()> {
    let name = service.metadata.name().to_string();
    let me = (service.metadata.namespace().to_string(), name.clone());
    let old = old.map(DynamicObject::spec);
    let spec = service.field_mut("spec");
    // Node ports it kept from before it stopped needing them go (`dropTypeDependentFields`).
    if let Some(old) = old {
        if !needs_node_ports(spec) {
            drop_unchanged(spec, old);
        }
        if !needs_health_check(spec)
            && spec["healthCheckNodePort"] == old["healthCheckNodePort"]
            && let Some(spec) = spec.as_object_mut()
        {
            spec.remove("healthCheckNodePort");
        }
    }
    let wants_ports = needs_node_ports(spec);
    let wants_health = needs_health_check(spec);
    let has_named = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| port_number(&p["nodePort"]).is_some());
    if !wants_ports && !wants_health && !has_named {
        return Ok(());
    }
    let mut taken = held_by_others(objects, (&me.0, &me.1))?;
    // What the Service held before: kept for its ports that name none (`kubectl apply` of a
    // manifest without node ports), and not checked again.
    let mut before: BTreeMap<(u64, String), u32> = BTreeMap::new();
    let mut held_before: HashSet<u32> = HashSet::new();
    if let Some(old) = old {
        for p in old["ports"].as_array().into_iter().flatten() {
            if let (Some(n), Some(port)) = (port_number(&p["nodePort"]), p["port"].as_u64()) {
                let protocol = p["protocol"].as_str().unwrap_or("TCP").to_string();
                before.insert((port, protocol), n);
                held_before.insert(n);
            }
        }
        held_before.extend(port_number(&old["healthCheckNodePort"]));
    }
    let ports = spec["ports"].as_array().cloned().unwrap_or_default();
    let mut by_number: BTreeMap<u64, u32> = BTreeMap::new();
    let mut chosen = Vec::with_capacity(ports.len());
    for (i, p) in ports.iter().enumerate() {
        let field = format!("spec.ports[{i}].nodePort");
        let number = p["port"].as_u64().unwrap_or(0);
        let protocol = p["protocol"].as_str().unwrap_or("TCP").to_string();
        let port = match port_number(&p["nodePort"]) {
            Some(n) => {
                if !held_before.contains(&n) && by_number.get(&number) != Some(&n) {
                    check_named(&name, &field, n, &taken)?;
                }
                Some(n)
            }
            None if wants_ports => Some(match before.get(&(number, protocol)) {
                Some(n) => *n,
                None => match by_number.get(&number) {
                    Some(n) => *n,
                    None => free_port(&name, &taken, &field)?,
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
    if let Some(list) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for (p, port) in list.iter_mut().zip(chosen) {
            // A port that is not an object (the API refuses it when decoding) gets nothing.
            if let (Some(n), Some(p)) = (port, p.as_object_mut()) {
                p.insert("nodePort".into(), json!(n));
            }
        }
    }
    if wants_health {
        let field = "spec.healthCheckNodePort";
        match port_number(&spec["healthCheckNodePort"]) {
            Some(n) if held_before.contains(&n) => {}
            Some(n) => check_named(&name, field, n, &taken)?,
            None => {
                let kept = old
                    .and_then(|o| port_number(&o["healthCheckNodePort"]))
                    .filter(|_| old.is_some_and(needs_health_check));
                let n = match kept {
                    Some(n) => n,
                    None => free_port(&name, &taken, field)?,
                };
                spec["healthCheckNodePort"] = json!(n);
            }
        }
    }
    Ok(())
}

/// Remove the node ports a Service (its `spec`) carried over unchanged from when it needed
/// them.
fn drop_unchanged(spec: &mut Value, old: &Value) {
    let old_ports: Vec<&Value> = old["ports"].as_array().into_iter().flatten().collect();
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
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

    /// [`allocate`] of a Service written as JSON.
    fn allocate(o: &Objects, service: &mut Value, old: Option<&Value>) -> Result<()> {
        let mut typed = DynamicObject::from_value(service.clone())?;
        let old = old
            .map(|v| DynamicObject::from_value(v.clone()))
            .transpose()?;
        super::allocate(o, &mut typed, old.as_ref())?;
        *service = typed.into_value();
        Ok(())
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
