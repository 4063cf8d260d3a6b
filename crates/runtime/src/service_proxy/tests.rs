use super::*;

fn port(name: &str, ip: [u8; 4], p: u16, eps: &[([u8; 4], u16)]) -> ServicePort {
    ServicePort {
        namespace: "default".into(),
        name: name.into(),
        port_name: "http".into(),
        protocol: Protocol::Tcp,
        cluster_ip: Ipv4Addr::from(ip),
        port: p,
        node_port: None,
        affinity_timeout: None,
        endpoints: eps.iter().map(|(a, p)| (Ipv4Addr::from(*a), *p)).collect(),
        internal_local: None,
        external_ips: BTreeSet::new(),
    }
}

fn services(ports: Vec<ServicePort>) -> ClusterServices {
    ClusterServices {
        pod_ips: [Ipv4Addr::new(10, 0, 1, 5)].into(),
        node_ips: [Ipv4Addr::new(10, 0, 1, 5)].into(),
        subnets: vec![(Ipv4Addr::new(10, 0, 1, 0), 24)],
        ports,
    }
}

fn table() -> TableId {
    TableId::new("i", "c", "lfbr0", (Ipv4Addr::new(10, 100, 0, 0), 16))
}

#[test]
fn a_service_with_endpoints_gets_a_chain_per_endpoint_and_a_map_element() {
    let s = services(vec![port(
        "web",
        [10, 100, 0, 20],
        80,
        &[([10, 0, 1, 5], 8080), ([10, 0, 2, 6], 8080)],
    )]);
    let r = Ruleset::compute(&s);
    assert_eq!(r.service_ips.len(), 1);
    let svc = &r.service_ips[&(Ipv4Addr::new(10, 100, 0, 20), Protocol::Tcp, 80)];
    assert!(
        svc.starts_with("svc-") && svc.ends_with("default-web-tcp-http"),
        "{svc}"
    );
    assert_eq!(r.chains.len(), 3);
    let text = serde_json::to_string(&r.chains[svc]).unwrap();
    assert!(text.contains("\"numgen\":{\"mod\":2"), "{text}");
    // The endpoint on a known subnet masquerades its whole subnet; the other only itself.
    let ep1 = r
        .chains
        .keys()
        .find(|k| k.ends_with("10.0.1.5-8080"))
        .unwrap();
    let ep1 = serde_json::to_string(&r.chains[ep1]).unwrap();
    assert!(
        ep1.contains("{\"prefix\":{\"addr\":\"10.0.1.0\",\"len\":24}}"),
        "{ep1}"
    );
    assert!(
        ep1.contains("\"dnat\":{\"addr\":\"10.0.1.5\",\"port\":8080}"),
        "{ep1}"
    );
    let ep2 = r
        .chains
        .keys()
        .find(|k| k.ends_with("10.0.2.6-8080"))
        .unwrap();
    let ep2 = serde_json::to_string(&r.chains[ep2]).unwrap();
    assert!(ep2.contains("\"right\":\"10.0.2.6\""), "{ep2}");
    assert!(r.no_endpoint_ips.is_empty());
}

#[test]
fn a_service_without_ready_endpoints_is_rejected_and_has_no_chain() {
    let mut p = port("web", [10, 100, 0, 20], 80, &[]);
    p.node_port = Some(30080);
    let r = Ruleset::compute(&services(vec![p]));
    assert!(r.chains.is_empty());
    assert!(r.service_ips.is_empty());
    assert!(
        r.no_endpoint_ips[&(Ipv4Addr::new(10, 100, 0, 20), Protocol::Tcp, 80)]
            == NoEndpoint::Reject
    );
    assert_eq!(
        r.no_endpoint_nodeports[&(Protocol::Tcp, 30080)],
        NoEndpoint::Reject
    );
    let cmds = incremental_commands(&table(), None, &r);
    let text = serde_json::to_string(&cmds).unwrap();
    assert!(text.contains("\"name\":\"no_endpoint_services\""), "{text}");
    assert!(
        text.contains("{\"goto\":{\"target\":\"reject_chain\"}}"),
        "{text}"
    );
}

#[test]
fn client_ip_affinity_makes_a_timed_set_per_endpoint() {
    let mut p = port(
        "web",
        [10, 100, 0, 20],
        80,
        &[([10, 0, 1, 5], 80), ([10, 0, 1, 6], 80)],
    );
    p.affinity_timeout = Some(10800);
    let r = Ruleset::compute(&services(vec![p]));
    assert_eq!(r.affinity_sets.len(), 2);
    assert!(r.affinity_sets.values().all(|t| *t == 10800));
    let svc = r.chains.keys().find(|k| k.starts_with("svc-")).unwrap();
    // Two affinity checks, then the random choice.
    assert_eq!(r.chains[svc].len(), 3);
    let cmds = serde_json::to_string(&incremental_commands(&table(), None, &r)).unwrap();
    assert!(cmds.contains("\"flags\":[\"timeout\"]"), "{cmds}");
    assert!(cmds.contains("\"op\":\"update\""), "{cmds}");
}

#[test]
fn node_ports_and_several_ports_and_protocols() {
    let mut a = port("dns", [10, 100, 0, 10], 53, &[([10, 0, 1, 7], 53)]);
    a.protocol = Protocol::Udp;
    a.port_name = "dns".into();
    let mut b = port("dns", [10, 100, 0, 10], 53, &[([10, 0, 1, 7], 53)]);
    b.port_name = "dns-tcp".into();
    b.node_port = Some(30053);
    let r = Ruleset::compute(&services(vec![a, b]));
    assert_eq!(r.service_ips.len(), 2);
    assert_eq!(r.nodeports.len(), 1);
    assert_eq!(
        r.nodeports[&(Protocol::Tcp, 30053)],
        r.service_ips[&(Ipv4Addr::new(10, 100, 0, 10), Protocol::Tcp, 53)]
    );
    let udp = &r.service_ips[&(Ipv4Addr::new(10, 100, 0, 10), Protocol::Udp, 53)];
    let ep = r
        .chains
        .keys()
        .find(|k| {
            k.starts_with("ep-")
                && r.chains[udp]
                    .iter()
                    .flatten()
                    .any(|e| e.to_string().contains(k.as_str()))
        })
        .unwrap();
    assert!(
        r.chains[ep].last().unwrap()[0]
            .to_string()
            .contains("\"udp\"")
    );
}

#[test]
fn updates_touch_only_what_changed() {
    let before = Ruleset::compute(&services(vec![
        port("a", [10, 100, 0, 20], 80, &[([10, 0, 1, 5], 80)]),
        port(
            "b",
            [10, 100, 0, 21],
            80,
            &[([10, 0, 1, 6], 80), ([10, 0, 1, 7], 80)],
        ),
    ]));
    let after = Ruleset::compute(&services(vec![
        port("a", [10, 100, 0, 20], 80, &[([10, 0, 1, 5], 80)]),
        port("b", [10, 100, 0, 21], 80, &[([10, 0, 1, 6], 80)]),
    ]));
    let cmds = incremental_commands(&table(), Some(&before), &after);
    let text = serde_json::to_string(&cmds).unwrap();
    // b's service chain is flushed and rewritten, the gone endpoint's chain flushed and deleted,
    // a is not mentioned, the maps are not touched.
    assert!(!text.contains("-a-tcp-http"), "{text}");
    assert!(!text.contains("10.0.1.5"), "{text}");
    assert!(!text.contains("\"element\""), "{text}");
    let deletes: Vec<&Value> = cmds.iter().filter(|c| c.get("delete").is_some()).collect();
    assert_eq!(deletes.len(), 1);
    assert!(deletes[0].to_string().contains("10.0.1.7-80"));
    // Nothing changed: nothing to do.
    assert!(incremental_commands(&table(), Some(&after), &after).is_empty());
    // Scaled to zero: the element moves to the reject map and the chains go.
    let zero = Ruleset::compute(&services(vec![
        port("a", [10, 100, 0, 20], 80, &[([10, 0, 1, 5], 80)]),
        port("b", [10, 100, 0, 21], 80, &[]),
    ]));
    let text = serde_json::to_string(&incremental_commands(&table(), Some(&after), &zero)).unwrap();
    assert!(text.contains("{\"delete\":{\"element\""), "{text}");
    assert!(text.contains("no_endpoint_services"), "{text}");
}

fn ip(a: [u8; 4]) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

#[test]
fn internal_traffic_policy_local_sends_each_client_to_its_own_nodes_endpoints() {
    // Two Fargate pods, each its own node, both endpoints; a third pod is no endpoint.
    let mut p = port(
        "web",
        [10, 100, 0, 20],
        80,
        &[([10, 0, 1, 5], 8080), ([10, 0, 1, 6], 8080)],
    );
    let e5 = (ip([10, 0, 1, 5]), 8080);
    let e6 = (ip([10, 0, 1, 6]), 8080);
    p.internal_local = Some(LocalEndpoints {
        nodes: [
            ("fargate-ip-10-0-1-5".to_string(), [e5].into()),
            ("fargate-ip-10-0-1-6".to_string(), [e6].into()),
        ]
        .into(),
        clients: [
            (ip([10, 0, 1, 5]), "fargate-ip-10-0-1-5".to_string()),
            (ip([10, 0, 1, 6]), "fargate-ip-10-0-1-6".to_string()),
        ]
        .into(),
        host: [e5, e6].into(),
    });
    let r = Ruleset::compute(&services(vec![p]));
    let key = (ip([10, 100, 0, 20]), Protocol::Tcp, 80);
    let local = &r.service_ips[&key];
    assert!(local.starts_with("lcl-"), "{local}");
    // Whoever is not sent anywhere (a pod that is no endpoint) is dropped, not rejected.
    assert_eq!(r.no_endpoint_ips[&key], NoEndpoint::Drop);
    let rules = serde_json::to_string(&r.chains[local]).unwrap();
    // Client pods by source address to their node's chain; the host to every endpoint (the
    // same set as the Cluster chain, so that one).
    assert!(
        rules.contains("\"key\":{\"payload\":{\"field\":\"saddr\""),
        "{rules}"
    );
    assert!(
        rules.contains("[\"10.0.1.5\",{\"goto\":{\"target\":\"nod-"),
        "{rules}"
    );
    assert!(rules.contains("\"flags\":[\"saddr\"]"), "{rules}");
    assert!(rules.contains("\"target\":\"svc-"), "{rules}");
    let nodes: Vec<&String> = r.chains.keys().filter(|k| k.starts_with("nod-")).collect();
    assert_eq!(nodes.len(), 2);
    for n in nodes {
        let text = serde_json::to_string(&r.chains[n]).unwrap();
        assert!(text.contains("\"mod\":1"), "{text}");
    }
    // A Service whose every endpoint is unusable still rejects.
    let mut gone = port("gone", [10, 100, 0, 21], 80, &[]);
    gone.internal_local = Some(LocalEndpoints::default());
    let r = Ruleset::compute(&services(vec![gone]));
    assert_eq!(
        r.no_endpoint_ips[&(ip([10, 100, 0, 21]), Protocol::Tcp, 80)],
        NoEndpoint::Reject
    );
    assert!(r.chains.is_empty());
}

#[test]
fn internal_local_with_endpoints_the_host_does_not_run_has_its_own_host_chain() {
    // One endpoint on a node, one with no node (a hand-made slice): the host gets the first.
    let mut p = port(
        "web",
        [10, 100, 0, 20],
        80,
        &[([10, 0, 1, 5], 80), ([192, 0, 2, 9], 80)],
    );
    p.internal_local = Some(LocalEndpoints {
        nodes: [("n1".to_string(), [(ip([10, 0, 1, 5]), 80)].into())].into(),
        clients: [(ip([10, 0, 1, 5]), "n1".to_string())].into(),
        host: [(ip([10, 0, 1, 5]), 80)].into(),
    });
    let r = Ruleset::compute(&services(vec![p.clone()]));
    assert!(r.chains.keys().any(|k| k.starts_with("hst-")));
    // Not externally reachable: no Cluster chain at all.
    assert!(!r.chains.keys().any(|k| k.starts_with("svc-")));
    // With a node port, the Cluster chain serves it (external traffic from pods and the host
    // is short-circuited to Cluster, as kube-proxy does).
    p.node_port = Some(30080);
    let r = Ruleset::compute(&services(vec![p]));
    let svc = &r.nodeports[&(Protocol::Tcp, 30080)];
    assert!(svc.starts_with("svc-"), "{svc}");
    assert!(
        serde_json::to_string(&r.chains[svc])
            .unwrap()
            .contains("\"mod\":2")
    );
}

#[test]
fn external_ips_are_served_like_the_node_port_and_reject_without_endpoints() {
    let mut p = port("web", [10, 100, 0, 20], 80, &[([10, 0, 1, 5], 8080)]);
    p.external_ips = [ip([198, 51, 100, 7])].into();
    let r = Ruleset::compute(&services(vec![p.clone()]));
    let key = (ip([198, 51, 100, 7]), Protocol::Tcp, 80);
    assert_eq!(
        r.external_ips[&key],
        r.service_ips[&(ip([10, 100, 0, 20]), Protocol::Tcp, 80)]
    );
    let cmds = serde_json::to_string(&incremental_commands(&table(), None, &r)).unwrap();
    assert!(cmds.contains("\"name\":\"external_ips\""), "{cmds}");
    // The lookup is guarded by the address being the host's own.
    let base = serde_json::to_string(&base_commands(&table())).unwrap();
    assert!(base.contains("\"data\":\"@external_ips\""), "{base}");
    p.endpoints.clear();
    let r = Ruleset::compute(&services(vec![p]));
    assert!(r.external_ips.is_empty());
    assert_eq!(r.no_endpoint_external_ips[&key], NoEndpoint::Reject);
}

#[test]
fn table_names_carry_the_owner_and_the_range() {
    let t = table();
    let (pid, cidr) = parse_table_name(&t.name).unwrap();
    assert_eq!(pid, std::process::id());
    assert_eq!(cidr, (Ipv4Addr::new(10, 100, 0, 0), 16));
    assert!(parse_table_name("localfargate-lfbr0").is_none());
    assert!(parse_table_name("lfsvc-x-y-1.2.3.4-16").is_none());
    assert_ne!(
        TableId::new("i", "c", "lfbr0", t.service_cidr).name,
        TableId::new("i", "d", "lfbr0", t.service_cidr).name
    );
}

#[test]
fn the_transaction_replaces_the_table_atomically() {
    let cmds = base_commands(&table());
    let doc = transaction(cmds);
    let all = doc["nftables"].as_array().unwrap();
    assert!(all[0]["metainfo"].is_object());
    // add, delete, add: replaces a table left from an earlier run without failing on none.
    assert!(all[1]["add"]["table"].is_object());
    assert!(all[2]["delete"]["table"].is_object());
    assert!(all[3]["add"]["table"].is_object());
    let text = doc.to_string();
    for chain in [
        "nat_prerouting",
        "nat_output",
        "nat_postrouting",
        "filter_forward",
        "filter_output",
        "filter_input",
    ] {
        assert!(text.contains(&format!("\"name\":\"{chain}\"")), "{chain}");
    }
}

/// The rules as real nft takes them (as root with nft; skipped otherwise): a full table, then
/// updates, then its removal. The table's name carries this test process's pid, so a killed run's
/// table is reaped by the next.
#[tokio::test]
async fn nft_takes_the_rules_and_their_updates() {
    if !nix::unistd::Uid::effective().is_root()
        || crate::net::run("nft", &["-v"], None).await.is_err()
    {
        eprintln!("skipped: needs root and nft");
        return;
    }
    let id = TableId::new(
        "unit-test",
        "nft_takes_the_rules",
        "lfbr-unit",
        (Ipv4Addr::new(10, 250, 0, 0), 16),
    );
    let mut a = port(
        "a",
        [10, 250, 0, 20],
        80,
        &[([10, 0, 1, 5], 8080), ([10, 0, 2, 6], 8080)],
    );
    a.node_port = Some(30080);
    a.affinity_timeout = Some(30);
    let mut u = port("dns", [10, 250, 0, 10], 53, &[([10, 0, 1, 7], 53)]);
    u.protocol = Protocol::Udp;
    let mut s = port("sctp", [10, 250, 0, 11], 9, &[([10, 0, 1, 7], 9)]);
    s.protocol = Protocol::Sctp;
    let empty = port("empty", [10, 250, 0, 12], 80, &[]);
    let mut local = port(
        "local",
        [10, 250, 0, 13],
        80,
        &[([10, 0, 1, 5], 80), ([10, 0, 1, 8], 80)],
    );
    local.external_ips = [Ipv4Addr::new(198, 51, 100, 7)].into();
    local.internal_local = Some(LocalEndpoints {
        nodes: [("n5".to_string(), [(Ipv4Addr::new(10, 0, 1, 5), 80)].into())].into(),
        clients: [(Ipv4Addr::new(10, 0, 1, 5), "n5".to_string())].into(),
        host: [(Ipv4Addr::new(10, 0, 1, 5), 80)].into(),
    });
    let first = Ruleset::compute(&services(vec![a.clone(), u, s, empty, local]));
    let mut cmds = base_commands(&id);
    cmds.extend(incremental_commands(&id, None, &first));
    let applied = nft_json(&transaction(cmds)).await;
    let listed = crate::net::run("nft", &["list", "table", "ip", &id.name], None).await;
    // Scale a to one endpoint, drop the rest.
    a.endpoints = [(Ipv4Addr::new(10, 0, 1, 5), 8080)].into();
    let second = Ruleset::compute(&services(vec![a]));
    let updated = nft_json(&transaction(incremental_commands(
        &id,
        Some(&first),
        &second,
    )))
    .await;
    let listed2 = crate::net::run("nft", &["list", "table", "ip", &id.name], None).await;
    delete_table(&id.name).await.unwrap();
    applied.unwrap();
    let listed = listed.unwrap();
    assert!(listed.contains("numgen random mod 2"), "{listed}");
    assert!(listed.contains("dnat to 10.0.1.5:8080"), "{listed}");
    assert!(
        listed.contains("10.250.0.12 . tcp . 80 : goto reject_chain"),
        "{listed}"
    );
    assert!(listed.contains("udp . 53"), "{listed}");
    assert!(listed.contains("10.250.0.13 . tcp . 80 : drop"), "{listed}");
    assert!(
        listed.contains("fib saddr type local goto hst-"),
        "{listed}"
    );
    assert!(
        listed.contains("198.51.100.7 . tcp . 80 : goto svc-"),
        "{listed}"
    );
    updated.unwrap();
    let listed2 = listed2.unwrap();
    assert!(!listed2.contains("10.0.2.6"), "{listed2}");
    assert!(!listed2.contains("10.250.0.12"), "{listed2}");
    assert!(listed2.contains("numgen random mod 1"), "{listed2}");
}
