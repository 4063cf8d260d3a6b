use super::*;
use localfargate_core::eks::FARGATE_PROFILE_KIND;
use localfargate_store::{SqliteStore, StoreExt};

fn objects() -> Objects {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let o = Objects::new(store, "c", Arc::new(Settings::new("us-west-2")));
    o.create(namespaces(), "", json!({"metadata": {"name": "default"}}))
        .unwrap();
    o
}

fn pods() -> &'static ResourceType {
    resource("", "pods")
}

fn pod(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "labels": labels},
           "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}})
}

fn add_profile(o: &Objects, name: &str, namespace: &str) {
    o.store
        .create(
            FARGATE_PROFILE_KIND,
            &format!("c/{name}"),
            &json!({"resource": {"fargateProfileName": name, "clusterName": "c",
                    "podExecutionRoleArn": "arn:aws:iam::111122223333:role/r",
                    "subnets": ["subnet-0a1b2c3d4e5f60004"],
                    "selectors": [{"namespace": namespace}], "status": "ACTIVE"}}),
        )
        .unwrap();
}

#[test]
fn create_stamps_defaults_and_reads_back() {
    let o = objects();
    let created = o.create(pods(), "default", pod("p1", json!({}))).unwrap();
    assert_eq!(created["metadata"]["namespace"], "default");
    assert_eq!(created["metadata"]["uid"].as_str().unwrap().len(), 36);
    assert!(
        created["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(created["spec"]["restartPolicy"], "Always");
    assert_eq!(created["spec"]["schedulerName"], "default-scheduler");
    assert_eq!(
        created["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert_eq!(
        created["status"],
        json!({"phase": "Pending", "qosClass": "BestEffort"})
    );
    let read = o.get(pods(), "default", "p1").unwrap();
    assert_eq!(read, created);
    assert!(
        read["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );
}

#[test]
fn fargate_webhook_mutates_matching_pods_only() {
    let o = objects();
    add_profile(&o, "fp-default", "default");
    let p = o
        .create(pods(), "default", pod("p1", json!({"app": "web"})))
        .unwrap();
    assert_eq!(p["spec"]["schedulerName"], "fargate-scheduler");
    assert_eq!(
        p["metadata"]["labels"]["eks.amazonaws.com/fargate-profile"],
        "fp-default"
    );
    assert_eq!(p["spec"]["priorityClassName"], "system-node-critical");
    assert_eq!(p["spec"]["priority"], 2_000_001_000);
    // The opt-out annotation keeps a pod on the default scheduler.
    let mut opted = pod("p2", json!({}));
    opted["metadata"]["annotations"] = json!({"eks.amazonaws.com/compute-type": "ec2"});
    let p2 = o.create(pods(), "default", opted).unwrap();
    assert_eq!(p2["spec"]["schedulerName"], "default-scheduler");
}

#[test]
fn errors_say_what_upstream_says() {
    let o = objects();
    let e = o.create(pods(), "nope", pod("p1", json!({}))).unwrap_err();
    assert_eq!(e.code(), 404);
    assert_eq!(e.to_string(), "namespaces \"nope\" not found");
    o.create(pods(), "default", pod("p1", json!({}))).unwrap();
    let e = o
        .create(pods(), "default", pod("p1", json!({})))
        .unwrap_err();
    assert_eq!(e.to_string(), "pods \"p1\" already exists");
    assert_eq!(e.status()["reason"], "AlreadyExists");
    let e = o
        .create(pods(), "default", pod("Bad_Name", json!({})))
        .unwrap_err();
    assert_eq!(e.code(), 422);
    assert!(
        e.to_string()
            .starts_with("Pod \"Bad_Name\" is invalid: metadata.name: Invalid value")
    );
    let mut no_containers = pod("p3", json!({}));
    no_containers["spec"]["containers"] = json!([]);
    let e = o.create(pods(), "default", no_containers).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Pod \"p3\" is invalid: spec.containers: Required value"
    );
    let mut wrong = pod("p4", json!({}));
    wrong["apiVersion"] = json!("apps/v1");
    assert_eq!(o.create(pods(), "default", wrong).unwrap_err().code(), 400);
    let e = o.get(pods(), "default", "zz").unwrap_err();
    assert_eq!(e.status()["details"], json!({"name": "zz", "kind": "pods"}));
}

#[test]
fn generate_name_gets_a_suffix() {
    let o = objects();
    let body = json!({"metadata": {"generateName": "web-"},
                      "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    let a = o.create(pods(), "default", body.clone()).unwrap();
    let b = o.create(pods(), "default", body).unwrap();
    let name = name_of(&a);
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");
    assert_ne!(name, name_of(&b));
    assert_eq!(a["spec"]["containers"][0]["imagePullPolicy"], "Always");
}

#[test]
fn updates_are_optimistic_and_bump_generation() {
    let o = objects();
    let deploy = resource("apps", "deployments");
    let d = o
        .create(
            deploy,
            "default",
            json!({"metadata": {"name": "web"}, "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}),
        )
        .unwrap();
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["spec"]["replicas"], 1);
    let mut changed = d.clone();
    changed["spec"]["replicas"] = json!(3);
    changed["status"] = json!({"replicas": 99});
    let updated = o
        .update(deploy, "default", "web", changed, false, false)
        .unwrap();
    assert_eq!(updated["metadata"]["generation"], 2);
    // The main resource ignores status.
    assert_eq!(updated["status"], json!({}));
    // The stale resourceVersion conflicts.
    let e = o
        .update(deploy, "default", "web", d.clone(), false, false)
        .unwrap_err();
    assert_eq!(e.code(), 409);
    assert!(e.to_string().contains("the object has been modified"));
    // A dry run answers what the update would store, and stores nothing.
    let mut more = updated.clone();
    more["spec"]["replicas"] = json!(5);
    let preview = o
        .update(deploy, "default", "web", more, false, true)
        .unwrap();
    assert_eq!(preview["spec"]["replicas"], 5);
    assert_eq!(preview["metadata"]["generation"], 3);
    assert_eq!(
        preview["metadata"]["resourceVersion"],
        updated["metadata"]["resourceVersion"]
    );
    let stored = o.get(deploy, "default", "web").unwrap();
    assert_eq!(stored["spec"]["replicas"], 3);
    assert_eq!(stored["metadata"]["generation"], 2);
    // Status writes change only status and keep generation.
    let mut st = updated.clone();
    st["status"] = json!({"replicas": 3});
    st["spec"]["replicas"] = json!(7);
    let after = o.update(deploy, "default", "web", st, true, false).unwrap();
    assert_eq!(after["status"]["replicas"], 3);
    assert_eq!(after["spec"]["replicas"], 3);
    assert_eq!(after["metadata"]["generation"], 2);
    // A no-op write keeps the resourceVersion.
    let same = o
        .update(deploy, "default", "web", after.clone(), false, false)
        .unwrap();
    assert_eq!(
        same["metadata"]["resourceVersion"],
        after["metadata"]["resourceVersion"]
    );
}

#[test]
fn finalizers_hold_deletion_until_removed() {
    let o = objects();
    let cm = resource("", "configmaps");
    o.create(
        cm,
        "default",
        json!({"metadata": {"name": "x", "finalizers": ["example.com/hold"]}}),
    )
    .unwrap();
    let Deleted::Pending(held) = o
        .delete(cm, "default", "x", &DeleteOptions::default())
        .unwrap()
    else {
        panic!("expected pending deletion");
    };
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    let mut released = held.clone();
    released["metadata"]["finalizers"] = json!([]);
    o.update(cm, "default", "x", released, false, false)
        .unwrap();
    assert_eq!(o.get(cm, "default", "x").unwrap_err().code(), 404);
    // Without finalizers it goes at once.
    o.create(cm, "default", json!({"metadata": {"name": "y"}}))
        .unwrap();
    assert!(matches!(
        o.delete(cm, "default", "y", &DeleteOptions::default())
            .unwrap(),
        Deleted::Gone(_)
    ));
}

#[test]
fn bound_pods_delete_gracefully_and_terminating_namespaces_refuse_content() {
    let o = objects();
    let mut p = pod("p1", json!({}));
    p["spec"]["nodeName"] = json!("n1");
    o.create(pods(), "default", p).unwrap();
    let Deleted::Pending(p) = o
        .delete(pods(), "default", "p1", &DeleteOptions::default())
        .unwrap()
    else {
        panic!("a bound pod stops first");
    };
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 30);
    o.create(namespaces(), "", json!({"metadata": {"name": "gone"}}))
        .unwrap();
    o.delete(namespaces(), "", "gone", &DeleteOptions::default())
        .unwrap();
    let ns = o.get(namespaces(), "", "gone").unwrap();
    assert_eq!(ns["status"]["phase"], "Terminating");
    let e = o.create(pods(), "gone", pod("p", json!({}))).unwrap_err();
    assert_eq!(e.code(), 403);
    assert_eq!(
        e.to_string(),
        "unable to create new content in namespace gone because it is being terminated"
    );
}

#[test]
fn read_only_profiles_refuse_writes() {
    let o = objects();
    let fp = resource(crate::resources::FARGATE_GROUP, "fargateprofiles");
    let e = o
        .create(fp, "", json!({"metadata": {"name": "x"}}))
        .unwrap_err();
    assert_eq!(e.code(), 405);
}

#[test]
fn updates_are_validated_and_do_not_finish_deletions_by_accident() {
    let o = objects();
    o.create(pods(), "default", pod("p1", json!({}))).unwrap();
    let e = o
        .update_with(pods(), "default", "p1", false, None, &mut |p| {
            let mut p = p.clone();
            p["spec"]["containers"] = json!([]);
            Ok(p)
        })
        .unwrap_err();
    assert_eq!(e.code(), 422);
    // An unchanged manifest (no defaults in it) is a no-op, not a forbidden pod change.
    let before = o.get(pods(), "default", "p1").unwrap();
    let same = o
        .update(pods(), "default", "p1", pod("p1", json!({})), false, false)
        .unwrap();
    assert_eq!(
        same["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    // Labelling a terminating namespace keeps it terminating.
    o.create(namespaces(), "", json!({"metadata": {"name": "going"}}))
        .unwrap();
    o.delete(namespaces(), "", "going", &DeleteOptions::default())
        .unwrap();
    o.update_with(namespaces(), "", "going", false, None, &mut |n| {
        let mut n = n.clone();
        n["metadata"]["labels"]["x"] = json!("y");
        Ok(n)
    })
    .unwrap();
    assert_eq!(
        o.get(namespaces(), "", "going").unwrap()["status"]["phase"],
        "Terminating"
    );
}

#[test]
fn workload_templates_are_type_checked() {
    let o = objects();
    let e = o
        .create(
            resource("apps", "deployments"),
            "default",
            json!({"metadata": {"name": "bad"}, "spec": {
                "selector": {"matchLabels": {"app": "bad"}},
                "template": {"metadata": {"labels": {"app": "bad"}},
                             "spec": {"containers": [{"name": "c", "image": "nginx", "ports": "80"}]}}}}),
        )
        .unwrap_err();
    assert_eq!(e.code(), 400);
    assert!(
        e.to_string()
            .starts_with("Deployment in version \"apps/v1\" cannot be handled as a Deployment"),
        "{e}"
    );
}

/// What the registry stamps goes through the typed metadata; the rest of the metadata (fields
/// it does not know, empty lists and maps) is stored and returned as the client wrote it.
#[test]
fn metadata_the_registry_does_not_own_is_kept_as_written() {
    let o = objects();
    let cms = resource("", "configmaps");
    let body = json!({"metadata": {
        "name": "c", "labels": {}, "annotations": {"a": "1"}, "finalizers": [],
        "futureField": {"x": [1, null]}, "uid": "forged", "resourceVersion": "",
        "selfLink": "/old", "deletionTimestamp": "2020-01-01T00:00:00Z",
    }, "data": {"k": "v"}});
    let created = o.create(cms, "default", body).unwrap();
    let meta = created["metadata"].as_object().unwrap();
    let keys: Vec<&str> = meta.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "annotations",
            "creationTimestamp",
            "finalizers",
            "futureField",
            "labels",
            "name",
            "namespace",
            "resourceVersion",
            "uid"
        ]
    );
    assert_ne!(meta["uid"], "forged");
    assert_eq!(meta["labels"], json!({}));
    assert_eq!(meta["finalizers"], json!([]));
    assert_eq!(meta["futureField"], json!({"x": [1, null]}));
    assert!(meta.get("generation").is_none());

    // An update may not change the server's fields; it keeps what it says of the others.
    let mut changed = created.clone();
    changed["metadata"]["uid"] = json!("other");
    changed["metadata"]["creationTimestamp"] = json!("2020-01-01T00:00:00Z");
    changed["metadata"]["futureField"] = json!("now a string");
    changed["metadata"]["labels"] = json!({"app": "a"});
    let updated = o
        .update(cms, "default", "c", changed, false, false)
        .unwrap();
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(
        updated["metadata"]["creationTimestamp"],
        created["metadata"]["creationTimestamp"]
    );
    assert_eq!(updated["metadata"]["futureField"], "now a string");
    assert_eq!(updated["metadata"]["labels"], json!({"app": "a"}));

    // A finalizer holds the delete, which stamps the deletion fields, typed.
    o.update_with(cms, "default", "c", false, None, &mut |cur| {
        let mut cur = cur.clone();
        cur["metadata"]["finalizers"] = json!(["example.com/hold"]);
        Ok(cur)
    })
    .unwrap();
    let Deleted::Pending(held) = o
        .delete(cms, "default", "c", &DeleteOptions::default())
        .unwrap()
    else {
        panic!("a finalizer holds the deletion")
    };
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(held["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(held["metadata"]["futureField"], "now a string");
}

#[test]
fn admission_writes_no_null_lists_a_pod_or_service_did_not_have() {
    let o = objects();
    o.create(
        resource("", "limitranges"),
        "default",
        json!({"metadata": {"name": "lr"}, "spec": {"limits": [{"type": "Container",
               "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "250m"}}]}}),
    )
    .unwrap();
    o.create(
        resource("", "serviceaccounts"),
        "default",
        json!({"metadata": {"name": "default"}}),
    )
    .unwrap();
    let made = o.create(pods(), "default", pod("p", json!({}))).unwrap();
    let spec = made["spec"].as_object().unwrap();
    assert!(!spec.contains_key("initContainers"), "{made}");
    assert_eq!(
        made["spec"]["containers"][0]["resources"]["limits"]["cpu"],
        "500m"
    );
    let svc = o
        .create(
            resource("", "services"),
            "default",
            json!({"metadata": {"name": "ext"},
                   "spec": {"type": "ExternalName", "externalName": "example.com"}}),
        )
        .unwrap();
    assert!(
        !svc["spec"].as_object().unwrap().contains_key("ports"),
        "{svc}"
    );
}
