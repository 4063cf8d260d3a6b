use super::*;
use serde_json::json;

fn smp(target: &Value, patch: Value, api_version: &str, kind: &str) -> Value {
    let body = serde_json::to_vec(&patch).expect("test patch serializes");
    let out = strategic_merge_patch(target, &body, api_version, kind).expect("patch applies");
    assert_no_directives(&out);
    out
}

fn smp_err(target: &Value, patch: Value, api_version: &str, kind: &str) -> PatchError {
    let body = serde_json::to_vec(&patch).expect("test patch serializes");
    strategic_merge_patch(target, &body, api_version, kind).expect_err("patch must fail")
}

/// Directives are instructions to the merge, never data: none may survive into the object.
fn assert_no_directives(v: &Value) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                assert!(!is_directive(k), "directive {k} left in output");
                assert_no_directives(v);
            }
        }
        Value::Array(items) => items.iter().for_each(assert_no_directives),
        _ => {}
    }
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|i| i["name"].as_str().expect("a name"))
        .collect()
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p1", "namespace": "default", "labels": {"app": "web"},
                     "finalizers": ["a/x", "b/y"]},
        "spec": {
            "containers": [{
                "name": "c", "image": "nginx:1.25",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}]
            }],
            "tolerations": [{"key": "k1", "operator": "Exists"}]
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}
            ]
        }
    })
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d1", "namespace": "demo"},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "d1"}, "annotations": {"keep": "me"}},
                "spec": {
                    "containers": [
                        {"name": "c", "image": "nginx:1", "ports": [{"containerPort": 80}]},
                        {"name": "sidecar", "image": "envoy:1"}
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}]
                }
            }
        }
    })
}

#[test]
fn client_side_apply_three_way_patch_updates_image() {
    // The shape §2.7 observed from `kubectl apply` on a Pod.
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"},
                     "labels": {"tier": "fe"}},
        "spec": {"$setElementOrder/containers": [{"name": "c"}],
                 "containers": [{"image": "nginx:1.27", "name": "c"}]}
    });
    let out = smp(&pod(), patch, "v1", "Pod");
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "web", "tier": "fe"})
    );
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{}\n"
    );
    let c = &out["spec"]["containers"][0];
    assert_eq!(c["image"], "nginx:1.27");
    // What the patch didn't mention survives.
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}])
    );
    assert_eq!(c["env"].as_array().map(Vec::len), Some(3));
    assert_eq!(out["spec"]["containers"].as_array().map(Vec::len), Some(1));
}

#[test]
fn rollout_restart_adds_template_annotation() {
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2025-01-02T03:04:05Z"}}}}});
    let out = smp(&deployment(), patch, "apps/v1", "Deployment");
    assert_eq!(
        out["spec"]["template"]["metadata"]["annotations"],
        json!({"keep": "me", "kubectl.kubernetes.io/restartedAt": "2025-01-02T03:04:05Z"})
    );
    assert_eq!(
        out["spec"]["template"]["spec"],
        deployment()["spec"]["template"]["spec"]
    );
}

#[test]
fn set_image_merges_by_name_and_keeps_order() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "c"}, {"name": "sidecar"}],
        "containers": [{"image": "nginx:2", "name": "c"}]}}}});
    let out = smp(&deployment(), patch, "apps/v1", "Deployment");
    let containers = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(names(containers), ["c", "sidecar"]);
    assert_eq!(containers[0]["image"], "nginx:2");
    assert_eq!(containers[0]["ports"], json!([{"containerPort": 80}]));
    assert_eq!(containers[1]["image"], "envoy:1");
}

#[test]
fn set_element_order_reorders_and_interleaves_live_only_items() {
    let live = json!({"spec": {"containers": [{"name": "b"}, {"name": "x"}, {"name": "a"}]}});
    // Reordering alone, no list in the patch: `x` isn't named, so it goes before the first
    // named item that followed it in the live list (`a`), as upstream's mergeSortedSlice does.
    let out = smp(
        &live,
        json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}]}}),
        "v1",
        "Pod",
    );
    assert_eq!(names(&out["spec"]["containers"]), ["x", "a", "b"]);

    let live = json!({"spec": {"containers": [{"name": "a"}, {"name": "x"}, {"name": "b"}]}});
    let patch = json!({"spec": {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "n"}],
        "containers": [{"name": "n", "image": "new"}]}});
    let out = smp(&live, patch, "v1", "Pod");
    assert_eq!(names(&out["spec"]["containers"]), ["a", "x", "b", "n"]);
    assert_eq!(out["spec"]["containers"][3]["image"], "new");
}

#[test]
fn new_list_item_without_order_goes_where_upstream_puts_it() {
    // Upstream's mergeSortedSlice places an item the live list never had ahead of the live-only
    // items when nothing orders it; kubectl always sends $setElementOrder, so this only shows in
    // hand-written patches.
    let live = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
    let out = smp(
        &live,
        json!({"spec": {"containers": [{"name": "n"}]}}),
        "v1",
        "Pod",
    );
    assert_eq!(names(&out["spec"]["containers"]), ["n", "a", "b"]);
    // Patching an existing item keeps every live position.
    let out = smp(
        &live,
        json!({"spec": {"containers": [{"name": "b", "image": "i"}]}}),
        "v1",
        "Pod",
    );
    assert_eq!(names(&out["spec"]["containers"]), ["a", "b"]);
}

#[test]
fn cordon_sets_unschedulable() {
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                      "spec": {"podCIDRs": ["10.0.0.0/24"], "taints": [{"key": "t", "effect": "NoSchedule"}]}});
    let out = smp(
        &node,
        json!({"spec": {"unschedulable": true}}),
        "v1",
        "Node",
    );
    assert_eq!(out["spec"]["unschedulable"], true);
    assert_eq!(out["spec"]["podCIDRs"], json!(["10.0.0.0/24"]));
    assert_eq!(
        out["spec"]["taints"],
        json!([{"key": "t", "effect": "NoSchedule"}])
    );
}

#[test]
fn env_merges_by_name_and_deletes_with_patch_delete() {
    let patch = json!({"spec": {"containers": [{"name": "c", "env": [
        {"name": "B", "value": "two"},
        {"name": "D", "value": "4"},
        {"$patch": "delete", "name": "A"}
    ]}]}});
    let out = smp(&pod(), patch, "v1", "Pod");
    assert_eq!(
        out["spec"]["containers"][0]["env"],
        json!([{"name": "B", "value": "two"}, {"name": "D", "value": "4"}, {"name": "C", "value": "3"}])
    );
    assert_eq!(out["spec"]["containers"][0]["image"], "nginx:1.25");
}

#[test]
fn env_merge_works_in_init_and_ephemeral_containers_and_cronjob_templates() {
    let cj = json!({"apiVersion": "batch/v1", "kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "initContainers": [{"name": "i", "env": [{"name": "A", "value": "1"}]}]}}}}}});
    let patch = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "initContainers": [{"name": "i", "env": [{"name": "B", "value": "2"}]}]}}}}}});
    let out = smp(&cj, patch, "batch/v1", "CronJob");
    let env = &out["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"][0]["env"];
    assert_eq!(names(env), ["B", "A"]);

    let live = json!({"spec": {"ephemeralContainers": [{"name": "dbg", "volumeMounts": [{"mountPath": "/a", "name": "v"}]}]}});
    let patch = json!({"spec": {"ephemeralContainers": [{"name": "dbg", "volumeMounts": [{"mountPath": "/a", "readOnly": true}]}]}});
    let out = smp(&live, patch, "v1", "Pod");
    assert_eq!(
        out["spec"]["ephemeralContainers"][0]["volumeMounts"],
        json!([{"mountPath": "/a", "name": "v", "readOnly": true}])
    );
}

#[test]
fn ports_merge_on_numeric_container_port() {
    let patch = json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "name": "http"}]}]}});
    let out = smp(&pod(), patch, "v1", "Pod");
    assert_eq!(
        out["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}])
    );
}

#[test]
fn finalizers_union() {
    let patch = json!({"metadata": {"finalizers": ["b/y", "c/z"]}});
    let out = smp(&pod(), patch, "v1", "Pod");
    assert_eq!(out["metadata"]["finalizers"], json!(["a/x", "b/y", "c/z"]));
}

#[test]
fn finalizers_three_way_with_delete_and_order() {
    let patch = json!({"metadata": {
        "$setElementOrder/finalizers": ["b/y", "c/z"],
        "$deleteFromPrimitiveList/finalizers": ["a/x"],
        "finalizers": ["c/z"]}});
    let out = smp(&pod(), patch, "v1", "Pod");
    assert_eq!(out["metadata"]["finalizers"], json!(["b/y", "c/z"]));
}

#[test]
fn delete_from_primitive_list_on_node_pod_cidrs() {
    let node = json!({"spec": {"podCIDRs": ["10.0.0.0/24", "fd00::/64"]}});
    let out = smp(
        &node,
        json!({"spec": {"$deleteFromPrimitiveList/podCIDRs": ["fd00::/64"]}}),
        "v1",
        "Node",
    );
    assert_eq!(out["spec"]["podCIDRs"], json!(["10.0.0.0/24"]));
}

#[test]
fn owner_references_merge_by_uid() {
    let live = json!({"metadata": {"ownerReferences": [
        {"uid": "u1", "kind": "ReplicaSet", "name": "rs1", "controller": true}]}});
    let patch = json!({"metadata": {"ownerReferences": [
        {"uid": "u1", "blockOwnerDeletion": true},
        {"uid": "u2", "kind": "Node", "name": "n1"}]}});
    let out = smp(&live, patch, "v1", "Pod");
    let refs = out["metadata"]["ownerReferences"]
        .as_array()
        .expect("a list");
    assert_eq!(refs.len(), 2);
    let u1 = refs.iter().find(|r| r["uid"] == "u1").expect("u1 kept");
    assert_eq!(
        u1,
        &json!({"uid": "u1", "kind": "ReplicaSet", "name": "rs1", "controller": true, "blockOwnerDeletion": true})
    );
    assert!(
        refs.iter()
            .any(|r| r == &json!({"uid": "u2", "kind": "Node", "name": "n1"}))
    );
}

#[test]
fn retain_keys_switches_strategy_to_recreate() {
    // What `kubectl apply` sends when the manifest changes RollingUpdate to Recreate.
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}});
    let out = smp(&deployment(), patch, "apps/v1", "Deployment");
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    // Without the explicit null the retain list alone drops rollingUpdate.
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
    let out = smp(&deployment(), patch, "apps/v1", "Deployment");
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    assert_eq!(out["spec"]["replicas"], 1);
}

#[test]
fn retain_keys_on_a_volume_entry_switches_its_source() {
    let patch = json!({"spec": {"template": {"spec": {"volumes": [
        {"$retainKeys": ["configMap", "name"], "name": "data", "configMap": {"name": "cm"}}]}}}});
    let out = smp(&deployment(), patch, "apps/v1", "Deployment");
    assert_eq!(
        out["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "data", "configMap": {"name": "cm"}}])
    );
}

#[test]
fn retain_keys_conflicting_with_the_patch_is_refused() {
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {}}}});
    let err = smp_err(&deployment(), patch, "apps/v1", "Deployment");
    assert!(matches!(err, PatchError::Unprocessable(m) if m.contains("rollingUpdate")));
}

#[test]
fn patch_replace_on_a_map() {
    let patch = json!({"metadata": {"labels": {"$patch": "replace", "only": "this"}}});
    let out = smp(&pod(), patch, "v1", "Pod");
    assert_eq!(out["metadata"]["labels"], json!({"only": "this"}));
    assert_eq!(out["metadata"]["name"], "p1");
}

#[test]
fn patch_replace_in_a_list() {
    let patch = json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "new", "image": "busybox"}]}});
    let out = smp(&pod(), patch, "v1", "Pod");
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "new", "image": "busybox"}])
    );
}

#[test]
fn patch_delete_on_a_map_removes_it() {
    let patch = json!({"spec": {"strategy": {"$patch": "delete"}}});
    let out = smp(&deployment(), patch, "apps/v1", "Deployment");
    assert!(out["spec"].get("strategy").is_none());
    assert_eq!(out["spec"]["replicas"], 1);
}

#[test]
fn null_deletes_and_atomic_lists_replace() {
    let patch = json!({"metadata": {"labels": {"app": null}},
                       "spec": {"tolerations": [{"key": "k2", "operator": "Exists"}]}});
    let out = smp(&pod(), patch, "v1", "Pod");
    assert_eq!(out["metadata"]["labels"], json!({}));
    assert_eq!(
        out["spec"]["tolerations"],
        json!([{"key": "k2", "operator": "Exists"}])
    );
}

#[test]
fn status_conditions_merge_by_type() {
    let patch = json!({"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": null},
        {"type": "PodScheduled", "status": "True"}]}});
    let out = smp(&pod(), patch, "v1", "Pod");
    let conds = out["status"]["conditions"].as_array().expect("a list");
    assert_eq!(conds.len(), 3);
    let by_type = |t: &str| conds.iter().find(|c| c["type"] == t).cloned();
    assert_eq!(
        by_type("Ready"),
        Some(json!({"type": "Ready", "status": "True"}))
    );
    assert_eq!(
        by_type("Initialized"),
        Some(json!({"type": "Initialized", "status": "True"}))
    );
    assert_eq!(
        by_type("PodScheduled"),
        Some(json!({"type": "PodScheduled", "status": "True"}))
    );
    assert_eq!(out["status"]["phase"], "Running");

    let dep = json!({"status": {"conditions": [{"type": "Available", "status": "False"}, {"type": "Progressing", "status": "True"}]}});
    let out = smp(
        &dep,
        json!({"status": {"conditions": [{"type": "Available", "status": "True"}]}}),
        "apps/v1",
        "Deployment",
    );
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}])
    );
}

#[test]
fn custom_resources_replace_every_list() {
    let cr = json!({"apiVersion": "example.com/v1", "kind": "Widget",
                    "metadata": {"finalizers": ["a"], "labels": {"x": "1", "y": "2"}},
                    "spec": {"containers": [{"name": "c", "image": "1"}, {"name": "d"}]}});
    let patch = json!({"metadata": {"finalizers": ["b"], "labels": {"y": null}},
                       "spec": {"containers": [{"name": "c", "image": "2"}]}});
    let out = smp(&cr, patch, "example.com/v1", "Widget");
    assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    assert_eq!(out["metadata"]["labels"], json!({"x": "1"}));
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "c", "image": "2"}])
    );
    // A CRD named like a built-in is still a custom resource.
    assert_eq!(
        list_strategy("example.com/v1", "Pod", &["spec", "containers"]),
        ListStrategy::Replace
    );
}

#[test]
fn strategy_lookup_follows_the_object_shape() {
    use ListStrategy::*;
    let deploy_env = ["spec", "template", "spec", "containers", "env"];
    assert_eq!(
        list_strategy("apps/v1", "Deployment", &deploy_env),
        MergeKey("name")
    );
    assert_eq!(
        list_strategy("apps/v1", "StatefulSet", &deploy_env),
        MergeKey("name")
    );
    assert_eq!(
        list_strategy(
            "batch/v1",
            "CronJob",
            &[
                "spec",
                "jobTemplate",
                "spec",
                "template",
                "spec",
                "initContainers",
                "volumeMounts"
            ]
        ),
        MergeKey("mountPath")
    );
    assert_eq!(
        list_strategy(
            "batch/v1",
            "Job",
            &["spec", "template", "metadata", "finalizers"]
        ),
        Set
    );
    assert_eq!(
        list_strategy("batch/v1", "Job", &["status", "conditions"]),
        MergeKey("type")
    );
    assert_eq!(
        list_strategy("v1", "Pod", &["spec", "containers", "volumeDevices"]),
        MergeKey("devicePath")
    );
    assert_eq!(
        list_strategy("v1", "Pod", &["spec", "containers", "args"]),
        Replace
    );
    assert_eq!(
        list_strategy("v1", "Pod", &["spec", "tolerations"]),
        Replace
    );
    assert_eq!(
        list_strategy("v1", "Pod", &["spec", "hostAliases"]),
        MergeKey("ip")
    );
    assert_eq!(
        list_strategy("v1", "Pod", &["status", "containerStatuses"]),
        Replace
    );
    assert_eq!(list_strategy("v1", "Node", &["spec", "podCIDRs"]), Set);
    assert_eq!(
        list_strategy("v1", "Node", &["status", "addresses"]),
        MergeKey("type")
    );
    assert_eq!(
        list_strategy("v1", "Namespace", &["status", "conditions"]),
        MergeKey("type")
    );
    assert_eq!(
        list_strategy("v1", "ServiceAccount", &["secrets"]),
        MergeKey("name")
    );
    assert_eq!(
        list_strategy("v1", "ConfigMap", &["metadata", "ownerReferences"]),
        MergeKey("uid")
    );
    assert_eq!(
        list_strategy("apps/v1", "Deployment", &["spec", "containers"]),
        Replace
    );
}

#[test]
fn smp_rejects_malformed_patches() {
    let target = pod();
    for body in [&b"[1]"[..], b"not json", b"\"s\""] {
        let err = strategic_merge_patch(&target, body, "v1", "Pod").expect_err("must fail");
        assert!(matches!(err, PatchError::Malformed(_)), "{body:?}: {err:?}");
    }
    let missing_key = json!({"spec": {"containers": [{"image": "x"}]}});
    assert!(
        matches!(smp_err(&target, missing_key, "v1", "Pod"), PatchError::Malformed(m) if m.contains("\"name\""))
    );
    let bad_directive = json!({"metadata": {"labels": {"$patch": "explode"}}});
    assert!(matches!(
        smp_err(&target, bad_directive, "v1", "Pod"),
        PatchError::Malformed(_)
    ));
    let bad_order = json!({"spec": {"$setElementOrder/containers": "c"}});
    assert!(matches!(
        smp_err(&target, bad_order, "v1", "Pod"),
        PatchError::Malformed(_)
    ));
}

#[test]
fn json_patch_ops() {
    let target = pod();
    let out = json_patch(
        &target,
        br#"[{"op":"add","path":"/metadata/labels/z","value":"1"}]"#,
    )
    .expect("add");
    assert_eq!(out["metadata"]["labels"], json!({"app": "web", "z": "1"}));

    let out = json_patch(
        &target,
        br#"[{"op":"test","path":"/spec/containers/0/image","value":"nginx:1.25"},
             {"op":"replace","path":"/spec/containers/0/image","value":"nginx:2"},
             {"op":"remove","path":"/metadata/finalizers/0"}]"#,
    )
    .expect("test+replace+remove");
    assert_eq!(out["spec"]["containers"][0]["image"], "nginx:2");
    assert_eq!(out["metadata"]["finalizers"], json!(["b/y"]));

    let err = json_patch(
        &target,
        br#"[{"op":"test","path":"/metadata/name","value":"other"}]"#,
    )
    .expect_err("test fails");
    assert!(matches!(err, PatchError::Unprocessable(_)));
    let err = json_patch(&target, br#"[{"op":"remove","path":"/metadata/nope"}]"#)
        .expect_err("no such path");
    assert!(matches!(err, PatchError::Unprocessable(_)));
    for body in [
        &br#"{"op":"add"}"#[..],
        br#"[{"op":"frobnicate","path":"/a"}]"#,
        b"[{",
    ] {
        let err = json_patch(&target, body).expect_err("malformed");
        assert!(matches!(err, PatchError::Malformed(_)), "{err:?}");
    }
}

#[test]
fn merge_patch_ops() {
    let out = merge_patch(
        &pod(),
        br#"{"metadata":{"labels":{"m":"1","app":null}},"spec":{"tolerations":[]}}"#,
    )
    .expect("merge");
    assert_eq!(out["metadata"]["labels"], json!({"m": "1"}));
    assert_eq!(out["spec"]["tolerations"], json!([]));
    // RFC 7386 replaces lists even where SMP would merge them.
    let out = merge_patch(&pod(), br#"{"metadata":{"finalizers":["z"]}}"#).expect("merge");
    assert_eq!(out["metadata"]["finalizers"], json!(["z"]));
    for body in [&b"[]"[..], b"3", b"{"] {
        assert!(matches!(
            merge_patch(&pod(), body),
            Err(PatchError::Malformed(_))
        ));
    }
}
