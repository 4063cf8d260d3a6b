//! ClusterIPs for Services, from the cluster's service range as EKS sets it
//! (`kubernetesNetworkConfig.serviceIpv4Cidr`, 10.100.0.0/16 by default): a Service asking for
//! none gets a free one from the range's dynamic band, as kube-apiserver's allocator does
//! (addresses below it are left for Services that name their own, like `kube-dns`'s `.10`); one
//! naming its own gets it if it is in the range and free; a headless one (`None`) and an
//! ExternalName one get none. The address is recorded in `clusterIP` and `clusterIPs` with the
//! single-stack IPv4 family fields.
//!
//! Free means no stored Service holds it, checked when the address is chosen and again in the
//! transaction that stores the Service ([`held`]); a Service that lost its address to another
//! created at the same instant is given a new one ([`reallocate`]).

use std::collections::HashSet;
use std::net::Ipv4Addr;

use localfargate_core::eks::CLUSTER_KIND;
use serde_json::{Value, json};

use crate::meta::DynamicObject;
use crate::objects::{KubeError, Objects, Result, resource};

/// The ClusterIP a Service being created holds, if it holds one.
pub fn allocated(rt: &crate::resources::ResourceType, obj: &Value) -> Option<String> {
    if !is_service(rt) {
        return None;
    }
    obj["spec"]["clusterIP"]
        .as_str()
        .filter(|ip| !ip.is_empty() && *ip != "None")
        .map(str::to_string)
}

/// Whether the resource is core/v1 Services.
pub fn is_service(rt: &crate::resources::ResourceType) -> bool {
    rt.group.is_empty() && rt.kind == "Service"
}

/// Whether a stored Service holds `ip`, read inside a store transaction.
pub fn held(
    tx: &mut dyn localfargate_store::Tx,
    store_kind: &str,
    ip: &str,
) -> std::result::Result<bool, localfargate_store::StoreError> {
    let prefix = resource("", "services").key_prefix(None);
    Ok(tx
        .list(store_kind, &prefix)?
        .iter()
        .any(|s| s.value["spec"]["clusterIP"] == ip))
}

/// Upstream's refusal of an address another Service holds.
pub fn taken(rt: &crate::resources::ResourceType, name: &str, ip: &str) -> KubeError {
    KubeError::invalid(
        rt,
        name,
        "spec.clusterIPs",
        &format!(
            "Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated"
        ),
    )
}

/// Forget the address a Service was given and give it another. The request as prepared is
/// JSON here (the create retries on it): typed for the allocation, by moving it there and back.
pub fn reallocate(objects: &Objects, service: &mut Value) -> Result<()> {
    let mut typed = DynamicObject::from_value(std::mem::take(service))?;
    if let Some(spec) = typed.body.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    allocate(objects, &mut typed)?;
    *service = typed.into_value();
    Ok(())
}

/// EKS's default service range.
pub const DEFAULT_SERVICE_CIDR: &str = "10.100.0.0/16";

/// Offset of the `kubernetes` Service's address in the service range, as EKS gives it.
pub const KUBERNETES_OFFSET: u32 = 1;
/// Offset of `kube-dns`'s address in the service range, as EKS gives it.
pub const KUBE_DNS_OFFSET: u32 = 10;

/// The address `offset` into the cluster's service range.
pub fn range_address(objects: &Objects, offset: u32) -> Ipv4Addr {
    Ipv4Addr::from(service_range(objects).0 + offset)
}

/// The cluster's service range: its base address and prefix length.
pub fn range(objects: &Objects) -> (Ipv4Addr, u8) {
    let (base, len) = service_range(objects);
    (Ipv4Addr::from(base), len)
}

/// [`range`] as numbers.
fn service_range(objects: &Objects) -> (u32, u8) {
    let cidr = objects
        .store
        .get(CLUSTER_KIND, &objects.cluster)
        .ok()
        .flatten()
        .and_then(|c| {
            c.value["resource"]["kubernetesNetworkConfig"]["serviceIpv4Cidr"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_else(|| DEFAULT_SERVICE_CIDR.to_string());
    parse_cidr(&cidr).unwrap_or((u32::from(Ipv4Addr::new(10, 100, 0, 0)), 16))
}

fn parse_cidr(cidr: &str) -> Option<(u32, u8)> {
    let (addr, len) = cidr.split_once('/')?;
    let len: u8 = len.parse().ok().filter(|l| (8..=30).contains(l))?;
    let base = u32::from(addr.parse::<Ipv4Addr>().ok()?) & (u32::MAX << (32 - len));
    Some((base, len))
}

/// The first offset of the dynamic band: upstream keeps the lower 1/16 of the range (at least
/// 16 and at most 256 addresses) for Services that choose their address.
fn dynamic_start(size: u32) -> u32 {
    (size / 16).clamp(16, 256)
}

/// Give a new Service its ClusterIP (or check the one it names).
pub fn allocate(objects: &Objects, service: &mut DynamicObject) -> Result<()> {
    let rt = resource("", "services");
    let name = service.metadata.name().to_string();
    // The API refuses a spec that is not an object when decoding; a write from elsewhere gets
    // the same refusal here rather than a panic on indexing it.
    if !matches!(service.spec(), Value::Object(_) | Value::Null) {
        return Err(KubeError::invalid(
            rt,
            &name,
            "spec",
            "Invalid value: must be an object",
        ));
    }
    let kind = service.spec()["type"]
        .as_str()
        .unwrap_or("ClusterIP")
        .to_string();
    let spec = service.field_mut("spec");
    if kind == "ExternalName" {
        return Ok(());
    }
    let asked = spec["clusterIP"]
        .as_str()
        .or_else(|| spec["clusterIPs"][0].as_str())
        .unwrap_or("")
        .to_string();
    if asked == "None" {
        spec["clusterIP"] = json!("None");
        spec["clusterIPs"] = json!(["None"]);
        spec["ipFamilies"] = json!(["IPv4"]);
        spec["ipFamilyPolicy"] = json!("SingleStack");
        return Ok(());
    }
    let (base, len) = service_range(objects);
    let size = 1u32 << (32 - len);
    let (services, _) = objects.list(rt, None)?;
    let taken: HashSet<String> = services
        .iter()
        .filter_map(|s| s.value["spec"]["clusterIP"].as_str().map(str::to_string))
        .collect();
    let chosen = if asked.is_empty() {
        let start = dynamic_start(size);
        let span = size - 1 - start;
        let seed = uuid::Uuid::new_v4().as_u128() as u32 % span.max(1);
        (0..span)
            .map(|i| Ipv4Addr::from(base + start + (seed + i) % span).to_string())
            .find(|ip| !taken.contains(ip))
            .ok_or_else(|| {
                KubeError::invalid(
                    rt,
                    &name,
                    "spec.clusterIPs",
                    "Internal error: failed to allocate a serviceIP: range is full",
                )
            })?
    } else {
        let shown = format!("Invalid value: []string{{\"{asked}\"}}");
        let ip: Ipv4Addr = asked.parse().map_err(|_| {
            KubeError::invalid(
                rt,
                &name,
                "spec.clusterIPs[0]",
                &format!("Invalid value: \"{asked}\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"),
            )
        })?;
        let offset = u32::from(ip).wrapping_sub(base);
        if offset == 0 || offset >= size - 1 {
            let cidr = format!("{}/{len}", Ipv4Addr::from(base));
            return Err(KubeError::invalid(
                rt,
                &name,
                "spec.clusterIPs",
                &format!(
                    "{shown}: failed to allocate IP {asked}: the provided IP ({asked}) is not in the valid range. The range of valid IPs is {cidr}"
                ),
            ));
        }
        if taken.contains(&asked) {
            return Err(self::taken(rt, &name, &asked));
        }
        asked
    };
    spec["clusterIP"] = json!(chosen);
    spec["clusterIPs"] = json!([chosen]);
    spec["ipFamilies"] = json!(["IPv4"]);
    spec["ipFamilyPolicy"] = json!("SingleStack");
    Ok(())
}

#[cfg(test)]
mod tests {

    use super::*;

    fn objects() -> Objects {
        crate::objects::in_memory_with_namespace("default")
    }

    fn service(name: &str, cluster_ip: Option<&str>) -> Value {
        let mut s = json!({"metadata": {"name": name},
                           "spec": {"selector": {"app": "a"}, "ports": [{"port": 80}]}});
        if let Some(ip) = cluster_ip {
            s["spec"]["clusterIP"] = json!(ip);
        }
        s
    }

    #[test]
    fn services_get_distinct_addresses_from_the_dynamic_band() {
        let o = objects();
        let svc = resource("", "services");
        let a = o.create(svc, "default", service("a", None)).unwrap();
        let b = o.create(svc, "default", service("b", None)).unwrap();
        let ip = |s: &Value| {
            s["spec"]["clusterIP"]
                .as_str()
                .unwrap()
                .parse::<Ipv4Addr>()
                .unwrap()
        };
        assert_ne!(ip(&a), ip(&b));
        for s in [&a, &b] {
            let octets = ip(s).octets();
            assert_eq!(&octets[..2], &[10, 100]);
            assert!(u32::from(ip(s)) - u32::from(Ipv4Addr::new(10, 100, 0, 0)) >= 256);
            assert_eq!(s["spec"]["clusterIPs"], json!([s["spec"]["clusterIP"]]));
            assert_eq!(s["spec"]["type"], "ClusterIP");
            assert_eq!(s["spec"]["ports"][0]["protocol"], "TCP");
            assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        }
    }

    #[test]
    fn a_chosen_address_must_be_free_and_in_range() {
        let o = objects();
        let svc = resource("", "services");
        let dns = o
            .create(svc, "default", service("dns", Some("10.100.0.10")))
            .unwrap();
        assert_eq!(dns["spec"]["clusterIP"], "10.100.0.10");
        let taken = o
            .create(svc, "default", service("again", Some("10.100.0.10")))
            .unwrap_err();
        assert!(
            taken
                .to_string()
                .ends_with("failed to allocate IP 10.100.0.10: provided IP is already allocated"),
            "{taken}"
        );
        let outside = o
            .create(svc, "default", service("out", Some("10.200.0.10")))
            .unwrap_err();
        assert!(
            outside
                .to_string()
                .contains("The range of valid IPs is 10.100.0.0/16"),
            "{outside}"
        );
        let headless = o
            .create(svc, "default", service("headless", Some("None")))
            .unwrap();
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
    }

    #[test]
    fn an_address_taken_between_allocation_and_write_is_not_given_twice() {
        let o = objects();
        let svc = resource("", "services");
        // `a` is given an address, then `b` takes that same address before `a` is stored.
        let prepared = o
            .prepare_create(svc, "default", service("a", None))
            .unwrap();
        let ip = prepared["spec"]["clusterIP"].as_str().unwrap().to_string();
        o.create(svc, "default", service("b", Some(&ip))).unwrap();
        let Err(e) = o.create(svc, "default", prepared) else {
            panic!("the taken address was stored twice");
        };
        assert!(
            e.to_string().contains("provided IP is already allocated"),
            "{e}"
        );
        // Without an address of its own, a Service is given another one.
        let mut fresh = service("c", None);
        fresh["spec"]["clusterIP"] = json!("");
        let c = o.create(svc, "default", fresh).unwrap();
        assert_ne!(c["spec"]["clusterIP"], json!(ip));
    }
}
