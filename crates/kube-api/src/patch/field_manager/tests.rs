use super::*;
use serde_json::json;

fn at(s: &str) -> jiff::Timestamp {
    s.parse().expect("test timestamp")
}

fn req(manager: &str) -> Request<'_> {
    Request {
        manager,
        api_version: "apps/v1",
        subresource: None,
        now: at("2025-06-01T12:00:00Z"),
    }
}

fn deployments() -> Schema<'static> {
    Schema::of("apps/v1", "Deployment", None, false)
}

fn manifest(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "nginx", "image": image}]}}}
    })
}

fn apply_as(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, ApplyError> {
    apply(
        live,
        config,
        deployments(),
        Scope::ExceptStatus,
        force,
        req(manager),
    )
}

#[test]
fn fields_v1_round_trips_and_prints_paths() {
    let set = fields_of(&manifest(1, "nginx"), deployments()).unwrap();
    let encoded = encode_fields(&set);
    assert_eq!(
        encoded["f:spec"]["f:template"]["f:spec"]["f:containers"],
        json!({"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}})
    );
    assert!(encoded["f:metadata"].get("f:name").is_none());
    let mut back = FieldSet::new();
    decode_fields(&encoded, &mut Vec::new(), &mut back);
    assert_eq!(back, set);
    let image: Vec<String> = [
        "f:spec",
        "f:template",
        "f:spec",
        "f:containers",
        "k:{\"name\":\"nginx\"}",
        "f:image",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        print_path(&image),
        ".spec.template.spec.containers[name=\"nginx\"].image"
    );
    assert_eq!(
        print_path(&["f:metadata".into(), "f:finalizers".into(), "v:\"a\"".into()]),
        ".metadata.finalizers[=\"a\"]"
    );
}

#[test]
fn a_second_applier_changing_a_field_conflicts_and_force_takes_it() {
    let first = apply_as(None, &manifest(1, "nginx"), "alice", false).unwrap();
    assert_eq!(first["metadata"]["managedFields"][0]["manager"], "alice");
    assert_eq!(first["metadata"]["managedFields"][0]["operation"], "Apply");
    // The same values are shared, not conflicting.
    let shared = apply_as(Some(&first), &manifest(1, "nginx"), "bob", false).unwrap();
    assert_eq!(
        shared["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let err = apply_as(Some(&first), &manifest(2, "nginx"), "bob", false).unwrap_err();
    let ApplyError::Conflicts(c) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        c.message,
        "Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas"
    );
    assert_eq!(
        c.causes(),
        vec![
            json!({"type": "FieldManagerConflict", "message": "conflict with \"alice\"", "field": ".spec.replicas"})
        ]
    );

    let err = apply_as(Some(&first), &manifest(2, "nginx:2"), "bob", false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"alice\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image"
    );

    let forced = apply_as(Some(&first), &manifest(2, "nginx"), "bob", true).unwrap();
    assert_eq!(forced["spec"]["replicas"], 2);
    let alice = &forced["metadata"]["managedFields"][0];
    assert_eq!(alice["manager"], "alice");
    assert!(alice["fieldsV1"]["f:spec"].get("f:replicas").is_none());
}

#[test]
fn an_update_owner_is_printed_with_its_version_and_loses_what_others_change() {
    let mut created = manifest(1, "nginx");
    record_update(
        None,
        &mut created,
        deployments(),
        Scope::ExceptStatus,
        req("kubectl-client-side-apply"),
    );
    let entry = &created["metadata"]["managedFields"][0];
    assert_eq!(entry["operation"], "Update");
    assert_eq!(entry["time"], "2025-06-01T12:00:00Z");
    assert_eq!(entry["fieldsV1"]["f:spec"]["f:replicas"], json!({}));

    let err = apply_as(Some(&created), &manifest(3, "nginx"), "kubectl", false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );

    // A scale takes the replicas; the subresource is part of the owner's name.
    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = json!(5);
    let scale = Request {
        subresource: Some("scale"),
        ..req("kubectl")
    };
    record_update(
        Some(&created),
        &mut scaled,
        deployments(),
        Scope::ExceptStatus,
        scale,
    );
    let err = apply_as(Some(&scaled), &manifest(3, "nginx"), "ci", false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas"
    );
    let csa = scaled["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "kubectl-client-side-apply")
        .unwrap();
    assert!(csa["fieldsV1"]["f:spec"].get("f:replicas").is_none());
}

#[test]
fn fields_an_applier_drops_are_removed_unless_someone_else_owns_them() {
    let mut config = manifest(1, "nginx");
    config["metadata"]["labels"]["tier"] = json!("fe");
    config["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "busybox"}));
    let first = apply_as(None, &config, "alice", false).unwrap();
    let mut labelled = first.clone();
    labelled["metadata"]["labels"]["team"] = json!("x");
    record_update(
        Some(&first),
        &mut labelled,
        deployments(),
        Scope::ExceptStatus,
        req("kubectl-label"),
    );

    let again = apply_as(Some(&labelled), &manifest(1, "nginx"), "alice", false).unwrap();
    assert_eq!(
        again["metadata"]["labels"],
        json!({"app": "web", "team": "x"})
    );
    let containers = &again["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers, &json!([{"name": "nginx", "image": "nginx"}]));
}

#[test]
fn custom_resources_follow_their_schema() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                  "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}},
        "args": {"type": "array", "items": {"type": "string"}}}}}});
    let s = Schema::of("example.com/v1", "Widget", Some(&schema), true);
    let cr = |ports: Value, args: Value| {
        json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"ports": ports, "args": args}})
    };
    let r = Request {
        api_version: "example.com/v1",
        ..req("a")
    };
    let first = apply(
        None,
        &cr(json!([{"name": "http", "port": 80}]), json!(["x"])),
        s,
        Scope::Whole,
        false,
        r,
    )
    .unwrap();
    let r = Request { manager: "b", ..r };
    let second = apply(
        Some(&first),
        &cr(json!([{"name": "https", "port": 443}]), json!(["x"])),
        s,
        Scope::Whole,
        false,
        r,
    )
    .unwrap();
    assert_eq!(
        second["spec"]["ports"],
        json!([{"name": "http", "port": 80}, {"name": "https", "port": 443}])
    );
    let err = apply(
        Some(&second),
        &cr(json!([]), json!(["y"])),
        s,
        Scope::Whole,
        false,
        r,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"a\": .spec.args"
    );
}

#[test]
fn reapplying_the_same_configuration_changes_nothing() {
    let first = apply_as(None, &manifest(1, "nginx"), "alice", false).unwrap();
    let later = Request {
        now: at("2025-06-02T00:00:00Z"),
        ..req("alice")
    };
    let again = apply(
        Some(&first),
        &manifest(1, "nginx"),
        deployments(),
        Scope::ExceptStatus,
        false,
        later,
    )
    .unwrap();
    assert_eq!(again, first);
}

#[test]
fn status_writes_own_only_the_status_under_their_subresource() {
    let mut created = manifest(1, "nginx");
    record_update(
        None,
        &mut created,
        deployments(),
        Scope::ExceptStatus,
        req("kubectl-create"),
    );
    let mut reported = created.clone();
    reported["status"] = json!({"replicas": 1});
    reported["spec"]["replicas"] = json!(9);
    let status = Request {
        subresource: Some("status"),
        ..req("kube-controller-manager")
    };
    record_update(
        Some(&created),
        &mut reported,
        deployments(),
        Scope::StatusOnly,
        status,
    );
    let entries = reported["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    // Same time: sorted by manager.
    let controller = &entries[0];
    assert_eq!(controller["manager"], "kube-controller-manager");
    assert_eq!(controller["subresource"], "status");
    assert_eq!(
        controller["fieldsV1"],
        json!({"f:status": {"f:replicas": {}}})
    );
    // The creator keeps the replicas: a status write does not own the spec.
    assert_eq!(entries[1]["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
}

#[test]
fn a_request_can_reset_or_replace_the_record() {
    let mut created = manifest(1, "nginx");
    record_update(
        None,
        &mut created,
        deployments(),
        Scope::ExceptStatus,
        req("a"),
    );
    let mut reset = created.clone();
    reset["metadata"]["managedFields"] = json!([]);
    reset["spec"]["replicas"] = json!(2);
    record_update(
        Some(&created),
        &mut reset,
        deployments(),
        Scope::ExceptStatus,
        req("b"),
    );
    let entries = reset["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["manager"], "b");
    assert_eq!(
        entries[0]["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
}

#[test]
fn kubectl_takes_over_what_its_last_client_side_apply_set() {
    let mut created = manifest(1, "nginx");
    let last = serde_json::to_string(&manifest(1, "nginx")).unwrap();
    created["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": last});
    record_update(
        None,
        &mut created,
        deployments(),
        Scope::ExceptStatus,
        req("kubectl-client-side-apply"),
    );

    let mut config = manifest(2, "nginx");
    // Not in the last client-side apply: still a conflict, reported alone.
    config["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": "x"});
    let err = apply_as(Some(&created), &config, "kubectl", false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .metadata.annotations.kubectl.kubernetes.io/last-applied-configuration"
    );

    let taken = apply_as(Some(&created), &manifest(2, "nginx"), "kubectl", false).unwrap();
    assert_eq!(taken["spec"]["replicas"], 2);
    let recorded =
        taken["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap();
    let recorded: Value = serde_json::from_str(recorded).unwrap();
    assert_eq!(recorded["spec"]["replicas"], 2);
    // Another manager gets no such pass.
    assert!(apply_as(Some(&created), &manifest(2, "nginx"), "ci", false).is_err());
}
