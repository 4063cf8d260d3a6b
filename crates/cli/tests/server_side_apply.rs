//! End-to-end: server-side apply and field ownership with real kubectl (1.27 and 1.33).
//! Appliers that change each other's fields conflict with upstream's message until forced; a
//! field an applier drops goes; client-side apply hands over to `apply --server-side`; a scale
//! owns the replicas; custom resources take no strategic merge patch.

mod common;

use common::kube_cluster::{KubeCluster, kubectl_missing, text};

const VERSIONS: [&str; 2] = ["1.27", "1.33"];

fn deployment(ns: &str, replicas: u32, labels: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels: {{{labels}}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx
"#
    )
}

fn replicas_only(ns: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n  replicas: {replicas}\n"
    )
}

fn applied(c: &KubeCluster, v: &str, yaml: &str, flags: &[&str]) -> String {
    let out = c.apply(v, yaml, flags);
    assert!(out.status.success(), "apply {flags:?}: {}", text(&out));
    text(&out)
}

fn refused(c: &KubeCluster, v: &str, yaml: &str, flags: &[&str]) -> String {
    let out = c.apply(v, yaml, flags);
    assert!(
        !out.status.success(),
        "apply {flags:?} succeeded: {}",
        text(&out)
    );
    text(&out)
}

#[test]
fn appliers_conflict_force_takes_over_and_dropped_fields_go() {
    if let Some(why) = kubectl_missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let c = KubeCluster::create("ssa");
    for v in VERSIONS {
        let ns = format!("ssa-{}", v.replace('.', "-"));
        c.ok(v, &["create", "namespace", &ns]);
        let ssa = ["--server-side", "--field-manager=alice"];
        applied(&c, v, &deployment(&ns, 1, "app: web, tier: fe"), &ssa);

        // Another manager changing alice's field: 409 with upstream's message.
        let bob = ["--server-side", "--field-manager=bob"];
        let err = refused(&c, v, &replicas_only(&ns, 2), &bob);
        assert!(
            err.contains(r#"Apply failed with 1 conflict: conflict with "alice": .spec.replicas"#),
            "{err}"
        );
        // Setting the same value is shared ownership, no conflict.
        applied(&c, v, &replicas_only(&ns, 1), &bob);
        let d = c.json(v, &["get", "deployment", "web", "-n", &ns]);
        assert_eq!(d["spec"]["replicas"], 1);

        // --force-conflicts takes the field.
        applied(
            &c,
            v,
            &replicas_only(&ns, 2),
            &["--server-side", "--field-manager=bob", "--force-conflicts"],
        );
        let shown = c.ok(
            v,
            &[
                "get",
                "deployment",
                "web",
                "-n",
                &ns,
                "-o",
                "yaml",
                "--show-managed-fields",
            ],
        );
        assert!(shown.contains("managedFields:"), "{shown}");
        assert!(shown.contains("manager: bob"), "{shown}");
        let d = c.json(
            v,
            &[
                "get",
                "deployment",
                "web",
                "-n",
                &ns,
                "--show-managed-fields",
            ],
        );
        assert_eq!(d["spec"]["replicas"], 2);
        let entries = d["metadata"]["managedFields"].as_array().unwrap();
        let alice = entries.iter().find(|e| e["manager"] == "alice").unwrap();
        assert_eq!(alice["operation"], "Apply");
        assert!(
            alice["fieldsV1"]["f:spec"].get("f:replicas").is_none(),
            "{alice}"
        );
        let bob_entry = entries.iter().find(|e| e["manager"] == "bob").unwrap();
        assert_eq!(
            bob_entry["fieldsV1"]["f:spec"]["f:replicas"],
            serde_json::json!({})
        );

        // Now alice changing the replicas conflicts with bob; two fields, two lines.
        let err = refused(&c, v, &deployment(&ns, 3, "app: web, tier: fe"), &ssa);
        assert!(
            err.contains(r#"Apply failed with 1 conflict: conflict with "bob": .spec.replicas"#),
            "{err}"
        );

        // alice drops her `tier` label (and leaves the replicas to bob): it is removed.
        let without_tier = deployment(&ns, 2, "app: web");
        applied(&c, v, &without_tier, &ssa);
        let d = c.json(v, &["get", "deployment", "web", "-n", &ns]);
        assert_eq!(d["metadata"]["labels"], serde_json::json!({"app": "web"}));

        // kubectl scale owns the replicas through the scale subresource.
        c.ok(
            v,
            &["scale", "deployment", "web", "-n", &ns, "--replicas=4"],
        );
        // A field the kind does not have is refused, not dropped, with upstream's message.
        let typo = deployment(&ns, 4, "app: web")
            .replace("image: nginx", "image: nginx\n        imagePolicy: Always");
        let err = refused(&c, v, &typo, &ssa);
        assert!(
            err.contains(&format!(
                r#"failed to create typed patch object ({ns}/web; apps/v1, Kind=Deployment): .spec.template.spec.containers[name="nginx"].imagePolicy: field not declared in schema"#
            )),
            "{err}"
        );

        // kubectl scale sends no fieldManager: its manager is its User-Agent's product, the
        // binary's name (`kubectl.1.33/v1.33.… (linux/amd64) …`), as upstream derives it. The
        // replicas were bob's alone, so his entry is gone.
        let d = c.json(
            v,
            &[
                "get",
                "deployment",
                "web",
                "-n",
                &ns,
                "--show-managed-fields",
            ],
        );
        let entries = d["metadata"]["managedFields"].as_array().unwrap();
        assert!(entries.iter().all(|e| e["manager"] != "bob"), "{entries:?}");
        let scaler = entries
            .iter()
            .find(|e| e["subresource"] == "scale")
            .unwrap();
        assert_eq!(scaler["manager"], format!("kubectl.{v}"));
        assert_eq!(scaler["apiVersion"], "apps/v1");
        let err = refused(&c, v, &replicas_only(&ns, 5), &bob);
        assert!(
            err.contains(&format!(
                r#"Apply failed with 1 conflict: conflict with "kubectl.{v}" with subresource "scale" using apps/v1: .spec.replicas"#
            )),
            "{err}"
        );
    }
}

#[test]
fn client_side_apply_hands_over_to_server_side_apply() {
    if let Some(why) = kubectl_missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let c = KubeCluster::create("ssa-migrate");
    for v in VERSIONS {
        let name = format!("settings-{}", v.replace('.', "-"));
        let cm = |value: &str| {
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n  mode: {value}\n"
            )
        };
        applied(&c, v, &cm("a"), &[]);
        let d = c.json(v, &["get", "configmap", &name, "--show-managed-fields"]);
        let entry = &d["metadata"]["managedFields"][0];
        assert_eq!(entry["manager"], "kubectl-client-side-apply");
        assert_eq!(entry["operation"], "Update");
        assert_eq!(entry["apiVersion"], "v1");

        // Another manager conflicts with the client-side applier, printed with its version.
        let err = refused(&c, v, &cm("b"), &["--server-side", "--field-manager=ci"]);
        assert!(
            err.contains(r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using v1: .data.mode"#),
            "{err}"
        );
        // kubectl's own server-side apply takes over what the last client-side apply set,
        // and keeps its last-applied record in step.
        applied(&c, v, &cm("b"), &["--server-side"]);
        let d = c.json(v, &["get", "configmap", &name, "--show-managed-fields"]);
        assert_eq!(d["data"]["mode"], "b");
        let last = d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap();
        assert!(last.contains(r#""mode":"b""#), "{last}");
        let kubectl = d["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == "kubectl")
            .unwrap();
        assert_eq!(kubectl["operation"], "Apply");
        // The same configuration again writes nothing.
        applied(&c, v, &cm("b"), &["--server-side"]);
        let again = c.json(v, &["get", "configmap", &name]);
        assert_eq!(
            again["metadata"]["resourceVersion"],
            d["metadata"]["resourceVersion"]
        );
    }
}

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.ssa.example.com
spec:
  group: ssa.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string}
                    port: {type: integer}
"#;

#[test]
fn custom_resources_apply_by_their_schema_and_refuse_strategic_merge_patch() {
    if let Some(why) = kubectl_missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let c = KubeCluster::create("ssa-cr");
    applied(&c, "1.33", WIDGET_CRD, &[]);
    c.eventually("widgets served", || {
        c.kubectl("1.33", &["get", "widgets"]).status.success()
    });
    for v in VERSIONS {
        let name = format!("w-{}", v.replace('.', "-"));
        let widget = |size: u32, port: &str| {
            format!(
                "apiVersion: ssa.example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  size: {size}\n  ports:\n  - {port}\n"
            )
        };
        applied(
            &c,
            v,
            &widget(1, "{name: http, port: 80}"),
            &["--server-side", "--field-manager=a"],
        );
        // A map list merges by its keys: b adds an item and owns it.
        applied(
            &c,
            v,
            &widget(1, "{name: https, port: 443}"),
            &["--server-side", "--field-manager=b"],
        );
        let w = c.json(v, &["get", "widget", &name]);
        assert_eq!(w["spec"]["ports"].as_array().unwrap().len(), 2, "{w}");
        let err = refused(
            &c,
            v,
            &widget(2, "{name: https, port: 443}"),
            &["--server-side", "--field-manager=b"],
        );
        assert!(
            err.contains(r#"Apply failed with 1 conflict: conflict with "a": .spec.size"#),
            "{err}"
        );

        // kubectl patch's default strategic merge patch is refused as upstream refuses it.
        let out = c.kubectl(
            v,
            &["patch", "widget", &name, "-p", r#"{"spec":{"size":5}}"#],
        );
        assert!(!out.status.success());
        assert!(
            text(&out).contains("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"),
            "{}",
            text(&out)
        );
        c.ok(
            v,
            &[
                "patch",
                "widget",
                &name,
                "--type=merge",
                "-p",
                r#"{"spec":{"size":5}}"#,
            ],
        );
        let w = c.json(v, &["get", "widget", &name, "--show-managed-fields"]);
        assert_eq!(w["spec"]["size"], 5);
        let patcher = w["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["operation"] == "Update")
            .unwrap();
        assert_eq!(patcher["manager"], "kubectl-patch");

        // Client-side apply of a custom resource patches with a merge patch, as against EKS.
        let csa = format!("{name}-csa");
        let widget_csa = |size: u32| {
            format!(
                "apiVersion: ssa.example.com/v1\nkind: Widget\nmetadata:\n  name: {csa}\n  namespace: default\nspec:\n  size: {size}\n"
            )
        };
        applied(&c, v, &widget_csa(1), &[]);
        applied(&c, v, &widget_csa(2), &[]);
        let w = c.json(v, &["get", "widget", &csa, "--show-managed-fields"]);
        assert_eq!(w["spec"]["size"], 2);
        assert_eq!(
            w["metadata"]["managedFields"][0]["manager"],
            "kubectl-client-side-apply"
        );
        assert_eq!(
            patcher["fieldsV1"]["f:spec"]["f:size"],
            serde_json::json!({})
        );
    }
}
