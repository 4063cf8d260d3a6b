use serde_json::json;

use super::*;
use crate::objects::{Objects, resource};

fn objects() -> Objects {
    crate::objects::in_memory_with_namespace("ns")
}

fn pod(name: &str, cpu: Option<&str>) -> Value {
    let resources = match cpu {
        Some(c) => {
            json!({"requests": {"cpu": c, "memory": "128Mi"}, "limits": {"cpu": c, "memory": "128Mi"}})
        }
        None => json!({}),
    };
    json!({"metadata": {"name": name}, "spec": {"containers": [
        {"name": "app", "image": "busybox", "resources": resources}]}})
}

fn used_now(o: &Objects, quota: &str) -> Value {
    let q: ResourceQuota =
        typed::decode(&o.get(resource("", "resourcequotas"), "ns", quota).unwrap()).unwrap();
    let used = used(&q, &o.catalog().unwrap(), &mut |rt| {
        Ok(o.list(rt, Some("ns"))?
            .0
            .iter()
            .map(|x| x.value.clone())
            .collect())
    })
    .unwrap();
    typed::to_json(&status(&q, &used)).unwrap()
}

#[test]
fn pods_charge_their_requests_and_limits_and_the_count() {
    let o = objects();
    o.create(
        resource("", "resourcequotas"),
        "ns",
        json!({"metadata": {"name": "q"}, "spec": {"hard": {
            "pods": "3", "requests.cpu": "2", "limits.memory": "1Gi", "count/pods": "10",
            "configmaps": "5", "services.loadbalancers": "1"}}}),
    )
    .unwrap();
    o.create(resource("", "pods"), "ns", pod("a", Some("500m")))
        .unwrap();
    o.create(resource("", "pods"), "ns", pod("b", Some("250m")))
        .unwrap();
    assert_eq!(
        used_now(&o, "q"),
        json!({
            "hard": {"configmaps": "5", "count/pods": "10", "limits.memory": "1Gi", "pods": "3",
                     "requests.cpu": "2", "services.loadbalancers": "1"},
            "used": {"configmaps": "0", "count/pods": "2", "limits.memory": "256Mi", "pods": "2",
                     "requests.cpu": "750m", "services.loadbalancers": "0"}
        })
    );
}

#[test]
fn a_create_past_the_limit_is_refused_with_upstreams_message() {
    let o = objects();
    o.create(
        resource("", "resourcequotas"),
        "ns",
        json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "2", "requests.cpu": "1"}}}),
    )
    .unwrap();
    o.create(resource("", "pods"), "ns", pod("a", Some("500m")))
        .unwrap();
    let err = o
        .create(resource("", "pods"), "ns", pod("b", Some("600m")))
        .unwrap_err();
    assert_eq!(err.code(), 403);
    assert_eq!(
        err.to_string(),
        "pods \"b\" is forbidden: exceeded quota: q, requested: requests.cpu=600m, used: requests.cpu=500m, limited: requests.cpu=1"
    );
    o.create(resource("", "pods"), "ns", pod("b", Some("500m")))
        .unwrap();
    let err = o
        .create(resource("", "pods"), "ns", pod("c", Some("0")))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "pods \"c\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"
    );
    let err = o
        .create(resource("", "pods"), "ns", pod("d", None))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "pods \"d\" is forbidden: failed quota: q: must specify requests.cpu for: app"
    );
}

#[test]
fn finished_pods_free_their_share() {
    let o = objects();
    o.create(
        resource("", "resourcequotas"),
        "ns",
        json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1"}}}),
    )
    .unwrap();
    o.create(resource("", "pods"), "ns", pod("a", None))
        .unwrap();
    o.update_with(resource("", "pods"), "ns", "a", true, None, &mut |p| {
        let mut p = p.clone();
        p["status"]["phase"] = json!("Succeeded");
        Ok(p)
    })
    .unwrap();
    // Charged until the quota controller recounts.
    let err = o
        .create(resource("", "pods"), "ns", pod("b", None))
        .unwrap_err();
    assert!(err.to_string().contains("used: pods=1"), "{err}");
    let quotas = resource("", "resourcequotas");
    recount(&o, &quotas.key("ns", "q"), "ns").unwrap();
    assert_eq!(used_now(&o, "q")["used"], json!({"pods": "0"}));
    o.create(resource("", "pods"), "ns", pod("b", None))
        .unwrap();
}

#[test]
fn object_counts_and_services() {
    let o = objects();
    o.create(
        resource("", "resourcequotas"),
        "ns",
        json!({"metadata": {"name": "q"}, "spec": {"hard": {
            "count/configmaps": "1", "services.nodeports": "2", "resourcequotas": "1",
            "count/deployments.apps": "0"}}}),
    )
    .unwrap();
    o.create(
        resource("", "configmaps"),
        "ns",
        json!({"metadata": {"name": "a"}}),
    )
    .unwrap();
    let err = o
        .create(
            resource("", "configmaps"),
            "ns",
            json!({"metadata": {"name": "b"}}),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "configmaps \"b\" is forbidden: exceeded quota: q, requested: count/configmaps=1, used: count/configmaps=1, limited: count/configmaps=1"
    );
    let err = o
        .create(
            resource("", "resourcequotas"),
            "ns",
            json!({"metadata": {"name": "q2"}, "spec": {"hard": {"pods": "1"}}}),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("requested: resourcequotas=1, used: resourcequotas=1"),
        "{err}"
    );
    let svc = |name: &str, ports: usize| {
        let ports: Vec<Value> = (0..ports)
            .map(|i| json!({"port": 80 + i, "name": format!("p{i}")}))
            .collect();
        json!({"metadata": {"name": name}, "spec": {"type": "NodePort", "ports": ports}})
    };
    o.create(resource("", "services"), "ns", svc("a", 2))
        .unwrap();
    let err = o
        .create(resource("", "services"), "ns", svc("b", 1))
        .unwrap_err();
    assert!(err.to_string().contains("requested: services.nodeports=1, used: services.nodeports=2, limited: services.nodeports=2"), "{err}");
    let err = o
        .create(
            resource("apps", "deployments"),
            "ns",
            json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        )
        .unwrap_err();
    assert!(err.to_string().starts_with("deployments.apps \"d\" is forbidden: exceeded quota: q, requested: count/deployments.apps=1"), "{err}");
}

#[test]
fn scoped_quotas_take_only_their_pods() {
    let o = objects();
    o.create(
        resource("", "resourcequotas"),
        "ns",
        json!({"metadata": {"name": "besteffort"}, "spec": {"hard": {"pods": "1"}, "scopes": ["BestEffort"]}}),
    )
    .unwrap();
    o.create(
        resource("", "resourcequotas"),
        "ns",
        json!({"metadata": {"name": "terminating"}, "spec": {"hard": {"pods": "0"}, "scopes": ["Terminating"]}}),
    )
    .unwrap();
    o.create(resource("", "pods"), "ns", pod("a", None))
        .unwrap();
    // Burstable pods are not the BestEffort quota's.
    o.create(resource("", "pods"), "ns", pod("b", Some("100m")))
        .unwrap();
    let err = o
        .create(resource("", "pods"), "ns", pod("c", None))
        .unwrap_err();
    assert!(
        err.to_string().contains("exceeded quota: besteffort"),
        "{err}"
    );
    let mut job_pod = pod("d", Some("100m"));
    job_pod["spec"]["activeDeadlineSeconds"] = json!(30);
    let err = o.create(resource("", "pods"), "ns", job_pod).unwrap_err();
    assert!(
        err.to_string().contains("exceeded quota: terminating"),
        "{err}"
    );
    assert_eq!(used_now(&o, "besteffort")["used"], json!({"pods": "1"}));

    let q: ResourceQuota = typed::decode(&json!({"spec": {"scopeSelector": {"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}}))
    .unwrap();
    let pods = resource("", "pods");
    let mut p = pod("e", None);
    assert!(!scopes_match(&q, pods, &Charged::of(pods, &p)));
    p["spec"]["priorityClassName"] = json!("high");
    assert!(scopes_match(&q, pods, &Charged::of(pods, &p)));
    let configmaps = resource("", "configmaps");
    assert!(!scopes_match(
        &q,
        configmaps,
        &Charged::of(configmaps, &json!({}))
    ));
}

#[test]
fn pod_resources_take_the_largest_init_container() {
    let spec = json!({
        "containers": [{"resources": {"requests": {"cpu": "100m"}}}, {"resources": {"requests": {"cpu": "200m"}}}],
        "initContainers": [{"resources": {"requests": {"cpu": "1"}}}],
        "overhead": {"cpu": "50m"}
    });
    assert_eq!(pod_resources(&spec, "requests")["cpu"].to_string(), "1050m");
}

#[test]
fn a_typed_pod_spec_sums_as_its_json_does() {
    let spec = json!({
        "containers": [
            {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1"}}},
            {"name": "b", "resources": {"requests": {"cpu": "200m"}}}],
        "initContainers": [
            {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"cpu": "300m"}}},
            {"name": "init", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}}],
        "overhead": {"cpu": "50m"}
    });
    let typed_spec: PodSpec = serde_json::from_value(spec.clone()).unwrap();
    for (field, key) in [(Field::Requests, "requests"), (Field::Limits, "limits")] {
        assert_eq!(
            typed_pod_resources(&typed_spec, field),
            pod_resources(&spec, key),
            "{key}"
        );
    }
    assert_eq!(
        pretty(&typed_pod_resources(&typed_spec, Field::Requests)),
        "cpu=850m,memory=1Gi"
    );
}

#[test]
fn a_service_becoming_a_load_balancer_is_charged() {
    let o = objects();
    o.create(
        resource("", "resourcequotas"),
        "ns",
        json!({"metadata": {"name": "q"}, "spec": {"hard": {"services.loadbalancers": "0"}}}),
    )
    .unwrap();
    let svcs = resource("", "services");
    o.create(
        svcs,
        "ns",
        json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}),
    )
    .unwrap();
    let err = o
        .update_with(svcs, "ns", "web", false, None, &mut |s| {
            let mut s = s.clone();
            s["spec"]["type"] = json!("LoadBalancer");
            Ok(s)
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "services \"web\" is forbidden: exceeded quota: q, requested: services.loadbalancers=1, used: services.loadbalancers=0, limited: services.loadbalancers=0"
    );
    assert_eq!(
        o.get(svcs, "ns", "web").unwrap()["spec"]["type"],
        "ClusterIP"
    );
    // Other updates are not charged.
    o.update_with(svcs, "ns", "web", false, None, &mut |s| {
        let mut s = s.clone();
        s["metadata"]["labels"] = json!({"a": "b"});
        Ok(s)
    })
    .unwrap();
}

#[test]
fn admission_charges_the_quota_it_admits_against() {
    let o = objects();
    let quotas = resource("", "resourcequotas");
    o.create(
        quotas,
        "ns",
        json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "5", "requests.cpu": "1"}}}),
    )
    .unwrap();
    o.create(resource("", "pods"), "ns", pod("a", Some("300m")))
        .unwrap();
    // Not yet counted by the controller: counted from the store, then charged.
    let q = o.get(quotas, "ns", "q").unwrap();
    assert_eq!(
        q["status"],
        json!({"hard": {"pods": "5", "requests.cpu": "1"}, "used": {"pods": "1", "requests.cpu": "300m"}})
    );
    o.create(resource("", "pods"), "ns", pod("b", Some("300m")))
        .unwrap();
    let q = o.get(quotas, "ns", "q").unwrap();
    assert_eq!(
        q["status"]["used"],
        json!({"pods": "2", "requests.cpu": "600m"})
    );
    assert_eq!(used_now(&o, "q")["used"], q["status"]["used"]);
}
