use std::net::IpAddr;

use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::json;

use super::{Authority, Lookup};
use crate::state::{ClusterState, Kind};

fn state() -> ClusterState {
    let mut s = ClusterState::new();
    for ns in ["default", "other", "kube-system"] {
        s.upsert(Kind::Namespace, &json!({"metadata": {"name": ns}}));
    }
    s.upsert(
        Kind::Service,
        &json!({"metadata": {"name": "web", "namespace": "default"},
                "spec": {"type": "ClusterIP", "clusterIP": "10.100.12.34", "clusterIPs": ["10.100.12.34"],
                         "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                                   {"name": "dns", "port": 53, "protocol": "UDP"}]}}),
    );
    s.upsert(
        Kind::Service,
        &json!({"metadata": {"name": "db", "namespace": "default"},
                "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}}),
    );
    s.upsert(
        Kind::Service,
        &json!({"metadata": {"name": "ext", "namespace": "other"},
                "spec": {"type": "ExternalName", "externalName": "example.com"}}),
    );
    s.upsert(
        Kind::EndpointSlice,
        &json!({"metadata": {"name": "db-abc", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["10.0.1.5"], "hostname": "db-0", "conditions": {"ready": true}},
            {"addresses": ["10.0.1.6"], "conditions": {"ready": true}},
            {"addresses": ["10.0.1.7"], "hostname": "db-2", "conditions": {"ready": false}},
        ]}),
    );
    s.serial = 42;
    s
}

fn auth() -> Authority {
    let mut a = Authority::new("cluster.local", &["in-addr.arpa", "ip6.arpa"]).unwrap();
    a.dns_ip = Some("10.100.0.10".parse().unwrap());
    a
}

fn q(name: &str, t: RecordType) -> Lookup {
    auth().lookup(&state(), &Name::from_ascii(name).unwrap(), t)
}

/// The answer section's data as text (`A 10.0.0.1`, `SRV 0 100 80 web…`).
fn answers(l: &Lookup) -> Vec<String> {
    match l {
        Lookup::Answer { answers, .. } => answers
            .iter()
            .map(|r| format!("{} {}", r.record_type(), r.data))
            .collect(),
        other => panic!("no answer: {other:?}"),
    }
}

fn additionals(l: &Lookup) -> Vec<String> {
    match l {
        Lookup::Answer { additionals, .. } => additionals
            .iter()
            .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
            .collect(),
        other => panic!("no answer: {other:?}"),
    }
}

#[test]
fn cluster_ip_service_a_and_aaaa() {
    let l = q("web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(answers(&l), ["A 10.100.12.34"]);
    if let Lookup::Answer { answers, .. } = &l {
        assert_eq!(answers[0].ttl, 5);
        assert_eq!(
            answers[0].name.to_string(),
            "web.default.svc.cluster.local."
        );
    }
    // Any case, as DNS names are.
    assert_eq!(
        answers(&q("WEB.Default.svc.Cluster.Local.", RecordType::A)),
        ["A 10.100.12.34"]
    );
    // An IPv4-only Service has no AAAA: the name exists (NODATA), it is not NXDOMAIN.
    assert_eq!(
        q("web.default.svc.cluster.local.", RecordType::AAAA),
        Lookup::NoData
    );
    assert_eq!(
        q("web.default.svc.cluster.local.", RecordType::MX),
        Lookup::NoData
    );
}

#[test]
fn missing_names_are_nxdomain_and_existing_ones_nodata() {
    assert_eq!(
        q("nope.default.svc.cluster.local.", RecordType::A),
        Lookup::NxDomain
    );
    assert_eq!(
        q("web.nons.svc.cluster.local.", RecordType::A),
        Lookup::NxDomain
    );
    // The search list's misses: `web.default` tried under another namespace's domain.
    assert_eq!(
        q("web.default.other.svc.cluster.local.", RecordType::A),
        Lookup::NxDomain
    );
    assert_eq!(
        q(
            "web.default.svc.cluster.local.default.svc.cluster.local.",
            RecordType::A
        ),
        Lookup::NxDomain
    );
    assert_eq!(
        q("default.svc.cluster.local.", RecordType::A),
        Lookup::NoData
    );
    assert_eq!(
        q("nons.svc.cluster.local.", RecordType::A),
        Lookup::NxDomain
    );
    assert_eq!(q("svc.cluster.local.", RecordType::A), Lookup::NoData);
    assert_eq!(q("cluster.local.", RecordType::A), Lookup::NoData);
    assert_eq!(q("foo.cluster.local.", RecordType::A), Lookup::NxDomain);
}

#[test]
fn headless_service_gives_ready_endpoints_and_their_names() {
    assert_eq!(
        answers(&q("db.default.svc.cluster.local.", RecordType::A)),
        ["A 10.0.1.5", "A 10.0.1.6"]
    );
    assert_eq!(
        answers(&q("db-0.db.default.svc.cluster.local.", RecordType::A)),
        ["A 10.0.1.5"]
    );
    // Without a hostname an endpoint is named by its dashed address, as CoreDNS names it.
    assert_eq!(
        answers(&q("10-0-1-6.db.default.svc.cluster.local.", RecordType::A)),
        ["A 10.0.1.6"]
    );
    // A not-ready endpoint is not published.
    assert_eq!(
        q("db-2.db.default.svc.cluster.local.", RecordType::A),
        Lookup::NxDomain
    );
    assert_eq!(
        q("db-0.db.default.svc.cluster.local.", RecordType::AAAA),
        Lookup::NoData
    );
}

#[test]
fn srv_for_named_ports() {
    let l = q("_http._tcp.web.default.svc.cluster.local.", RecordType::SRV);
    assert_eq!(answers(&l), ["SRV 0 100 80 web.default.svc.cluster.local."]);
    assert_eq!(
        additionals(&l),
        ["web.default.svc.cluster.local. A 10.100.12.34"]
    );
    assert_eq!(
        answers(&q(
            "_dns._udp.web.default.svc.cluster.local.",
            RecordType::SRV
        )),
        ["SRV 0 100 53 web.default.svc.cluster.local."]
    );
    // The wrong protocol or an unknown port name: no such name.
    assert_eq!(
        q("_http._udp.web.default.svc.cluster.local.", RecordType::SRV),
        Lookup::NxDomain
    );
    assert_eq!(
        q("_nope._tcp.web.default.svc.cluster.local.", RecordType::SRV),
        Lookup::NxDomain
    );
    // The SRV name exists: an A question there is NODATA.
    assert_eq!(
        q("_http._tcp.web.default.svc.cluster.local.", RecordType::A),
        Lookup::NoData
    );
    assert_eq!(
        q("_tcp.web.default.svc.cluster.local.", RecordType::A),
        Lookup::NoData
    );
    // A headless Service's SRV records name each ready endpoint.
    let l = q("_pg._tcp.db.default.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        answers(&l),
        [
            "SRV 0 50 5432 db-0.db.default.svc.cluster.local.",
            "SRV 0 50 5432 10-0-1-6.db.default.svc.cluster.local."
        ]
    );
    assert_eq!(
        additionals(&l),
        [
            "db-0.db.default.svc.cluster.local. A 10.0.1.5",
            "10-0-1-6.db.default.svc.cluster.local. A 10.0.1.6"
        ]
    );
    // SRV on the Service's own name: every port.
    assert_eq!(
        answers(&q("web.default.svc.cluster.local.", RecordType::SRV)).len(),
        2
    );
}

#[test]
fn external_name_is_a_cname() {
    for t in [RecordType::A, RecordType::AAAA, RecordType::CNAME] {
        assert_eq!(
            answers(&q("ext.other.svc.cluster.local.", t)),
            ["CNAME example.com."]
        );
    }
}

#[test]
fn pod_records_insecure() {
    assert_eq!(
        answers(&q("10-0-3-4.default.pod.cluster.local.", RecordType::A)),
        ["A 10.0.3.4"]
    );
    assert_eq!(
        q("10-0-3-4.default.pod.cluster.local.", RecordType::AAAA),
        Lookup::NoData
    );
    assert_eq!(
        q("10-0-3-4.nons.pod.cluster.local.", RecordType::A),
        Lookup::NxDomain
    );
    assert_eq!(
        q("not-an-ip.default.pod.cluster.local.", RecordType::A),
        Lookup::NxDomain
    );
    assert_eq!(
        q("default.pod.cluster.local.", RecordType::A),
        Lookup::NoData
    );
}

#[test]
fn ptr_for_service_and_endpoint_addresses() {
    assert_eq!(
        answers(&q("34.12.100.10.in-addr.arpa.", RecordType::PTR)),
        ["PTR web.default.svc.cluster.local."]
    );
    assert_eq!(
        answers(&q("5.1.0.10.in-addr.arpa.", RecordType::PTR)),
        ["PTR db-0.db.default.svc.cluster.local."]
    );
    assert_eq!(
        answers(&q("6.1.0.10.in-addr.arpa.", RecordType::PTR)),
        ["PTR 10-0-1-6.db.default.svc.cluster.local."]
    );
    // Addresses the cluster does not know fall through to forwarding.
    assert_eq!(
        q("1.1.168.192.in-addr.arpa.", RecordType::PTR),
        Lookup::Fallthrough
    );
    assert_eq!(q("example.com.", RecordType::A), Lookup::Fallthrough);
}

#[test]
fn apex_soa_ns_and_schema_version() {
    let a = auth();
    let soa = a.soa(42);
    assert_eq!(
        soa.data.to_string(),
        "ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 5"
    );
    assert_eq!(
        answers(&q("cluster.local.", RecordType::NS)),
        ["NS ns.dns.cluster.local."]
    );
    assert_eq!(
        additionals(&q("cluster.local.", RecordType::NS)),
        ["ns.dns.cluster.local. A 10.100.0.10"]
    );
    assert_eq!(answers(&q("cluster.local.", RecordType::SOA)).len(), 1);
    match q("dns-version.cluster.local.", RecordType::TXT) {
        Lookup::Answer { answers, .. } => match &answers[0].data {
            RData::TXT(t) => assert_eq!(t.to_string(), "1.1.0"),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    assert_eq!(
        a.soa_for(&Name::from_ascii("9.9.9.10.in-addr.arpa.").unwrap(), 1)
            .name
            .to_string(),
        "in-addr.arpa."
    );
}

#[test]
fn watch_events_update_the_records() {
    let mut s = state();
    let a = auth();
    let name = Name::from_ascii("db.default.svc.cluster.local.").unwrap();
    // The slice loses an endpoint; then the Service goes.
    s.upsert(
        Kind::EndpointSlice,
        &json!({"metadata": {"name": "db-abc", "namespace": "default",
                             "labels": {"kubernetes.io/service-name": "db"}},
                "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.1.6"]}]}),
    );
    assert_eq!(answers(&a.lookup(&s, &name, RecordType::A)), ["A 10.0.1.6"]);
    s.delete(
        Kind::EndpointSlice,
        &json!({"metadata": {"name": "db-abc", "namespace": "default"}}),
    );
    assert_eq!(a.lookup(&s, &name, RecordType::A), Lookup::NoData);
    s.delete(
        Kind::Service,
        &json!({"metadata": {"name": "db", "namespace": "default"}}),
    );
    assert_eq!(a.lookup(&s, &name, RecordType::A), Lookup::NxDomain);
    let ip: IpAddr = "10.0.1.6".parse().unwrap();
    assert!(s.reverse(ip).is_empty());
}

#[test]
fn reverse_names() {
    use super::reverse_ip;
    let n = |s: &str| Name::from_ascii(s).unwrap();
    assert_eq!(
        reverse_ip(&n("4.3.2.1.in-addr.arpa.")),
        Some("1.2.3.4".parse().unwrap())
    );
    assert_eq!(reverse_ip(&n("3.2.1.in-addr.arpa.")), None);
    let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.";
    assert_eq!(reverse_ip(&n(v6)), Some("fd00::1".parse().unwrap()));
}

proptest::proptest! {
    #[test]
    fn dashed_and_reverse_names_round_trip(a: u8, b: u8, c: u8, d: u8, v6: u128) {
        use super::{reverse_ip, undashed};
        use crate::state::dashed;
        let ip = IpAddr::from([a, b, c, d]);
        proptest::prop_assert_eq!(undashed(&dashed(ip)), Some(ip));
        let rev = Name::from_ascii(format!("{d}.{c}.{b}.{a}.in-addr.arpa.")).unwrap();
        proptest::prop_assert_eq!(reverse_ip(&rev), Some(ip));
        let ip6 = IpAddr::V6(std::net::Ipv6Addr::from(v6));
        proptest::prop_assert_eq!(undashed(&dashed(ip6)), Some(ip6));
        let nibbles: Vec<String> = (0..32).map(|i| format!("{:x}", (v6 >> (i * 4)) & 0xf)).collect();
        let rev6 = Name::from_ascii(format!("{}.ip6.arpa.", nibbles.join("."))).unwrap();
        proptest::prop_assert_eq!(reverse_ip(&rev6), Some(ip6));
    }
}
