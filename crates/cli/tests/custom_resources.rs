//! End-to-end: CustomResourceDefinitions with real kubectl. A definition is served from the next
//! request (discovery, routes, OpenAPI for `kubectl explain`), with its printer columns, versions,
//! status and scale subresources; its objects go with it and with their namespace; the
//! definitions a new EKS cluster has are there, and the seed guide's SecurityGroupPolicy applies.

mod common;

use common::kube_cluster::{KubeCluster, kubectl_missing, text};
use serde_json::Value;

const CRONTAB_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
    categories: [all]
  versions:
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            description: What the crontab runs, and when.
            properties:
              cronSpec:
                type: string
                description: The schedule, in cron format.
              image:
                type: string
              replicas:
                type: integer
          status:
            type: object
            properties:
              replicas:
                type: integer
              labelSelector:
                type: string
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.labelSelector
    additionalPrinterColumns:
    - name: Spec
      type: string
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
"#;

const CRONTAB: &str = r#"
apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: backup
  namespace: default
spec:
  cronSpec: "* * * * */5"
  image: busybox
  replicas: 2
"#;

fn kubectl_skip() -> bool {
    if let Some(why) = kubectl_missing() {
        eprintln!("skipped: {why}");
        return true;
    }
    false
}

#[test]
fn a_definition_is_served_at_once_with_its_columns_versions_and_subresources() {
    if kubectl_skip() {
        return;
    }
    let c = KubeCluster::create("crd-serve");
    let applied = c.apply("1.33", CRONTAB_CRD, &[]);
    assert!(applied.status.success(), "{}", text(&applied));
    c.ok(
        "1.33",
        &[
            "wait",
            "--for",
            "condition=established",
            "--timeout=30s",
            "crd/crontabs.stable.example.com",
        ],
    );
    let crd = c.json("1.33", &["get", "crd", "crontabs.stable.example.com"]);
    assert!(crd["metadata"]["finalizers"].is_null(), "{crd:#}");
    // Its group-version gets its Local APIService, as kube-apiserver's CRD registration keeps.
    c.eventually("the definition's APIService", || {
        c.kubectl("1.33", &["get", "apiservice", "v1.stable.example.com"])
            .status
            .success()
    });
    let service = c.json("1.33", &["get", "apiservice", "v1.stable.example.com"]);
    assert_eq!(
        service["metadata"]["labels"]["kube-aggregator.kubernetes.io/automanaged"],
        "true"
    );
    assert_eq!(service["spec"]["groupPriorityMinimum"], 1000);
    assert_eq!(service["spec"]["versionPriority"], 100);
    assert_eq!(service["status"]["conditions"][0]["reason"], "Local");
    assert_eq!(crd["status"]["acceptedNames"]["kind"], "CronTab");
    assert_eq!(crd["status"]["storedVersions"], serde_json::json!(["v1"]));
    assert_eq!(crd["spec"]["names"]["listKind"], "CronTabList");

    // Discovery knows it from the next request, with its short name and category.
    let resources = c.ok(
        "1.33",
        &["api-resources", "--api-group", "stable.example.com"],
    );
    assert!(
        resources.contains("crontabs") && resources.contains(" ct "),
        "{resources}"
    );

    // An object, printed with the definition's columns.
    let created = c.apply("1.33", CRONTAB, &[]);
    assert!(created.status.success(), "{}", text(&created));
    let table = c.ok("1.33", &["get", "ct", "backup"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SPEC", "REPLICAS", "AGE"], "{table}");
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("backup") && row.contains("* * * * */5") && row.contains(" 2 "),
        "{table}"
    );
    // The category: `kubectl get all` includes it.
    let all = c.ok("1.33", &["get", "all", "-n", "default"]);
    assert!(all.contains("crontab.stable.example.com/backup"), "{all}");

    // Read through the other served version: the same object, in that version.
    let beta = c.json(
        "1.33",
        &["get", "crontabs.v1beta1.stable.example.com", "backup"],
    );
    assert_eq!(beta["apiVersion"], "stable.example.com/v1beta1");
    assert_eq!(beta["spec"]["image"], "busybox");
    let v1 = c.json("1.33", &["get", "crontabs.v1.stable.example.com", "backup"]);
    assert_eq!(v1["apiVersion"], "stable.example.com/v1");
    assert_eq!(v1["metadata"]["generation"], 1);

    // The status subresource: status written there, not through the object.
    c.ok(
        "1.33",
        &[
            "patch",
            "ct",
            "backup",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"replicas":2,"labelSelector":"app=backup"}}"#,
        ],
    );
    c.ok(
        "1.33",
        &[
            "patch",
            "ct",
            "backup",
            "--type=merge",
            "-p",
            r#"{"status":{"replicas":9}}"#,
        ],
    );
    let after = c.json("1.33", &["get", "ct", "backup"]);
    assert_eq!(after["status"]["replicas"], 2, "{after:#}");
    assert_eq!(
        after["metadata"]["generation"], 1,
        "a status write is not a spec change"
    );

    // The scale subresource, through the definition's paths.
    c.ok("1.33", &["scale", "crontab", "backup", "--replicas=5"]);
    let scaled = c.json("1.33", &["get", "ct", "backup"]);
    assert_eq!(scaled["spec"]["replicas"], 5);
    assert_eq!(scaled["metadata"]["generation"], 2);
    let scale = c.json("1.33", &["get", "ct", "backup", "--subresource=scale"]);
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 5);
    assert_eq!(scale["status"]["replicas"], 2);
    assert_eq!(scale["status"]["selector"], "app=backup");

    // kubectl explain reads the definition's schema from OpenAPI.
    let explained = c.ok("1.33", &["explain", "crontab.spec"]);
    assert!(
        explained.contains("cronSpec") && explained.contains("The schedule, in cron format."),
        "{explained}"
    );

    // A namespace takes its custom resources with it.
    c.ok("1.33", &["create", "namespace", "jobs"]);
    let in_ns = c.apply(
        "1.33",
        &CRONTAB.replace("namespace: default", "namespace: jobs"),
        &[],
    );
    assert!(in_ns.status.success(), "{}", text(&in_ns));
    c.ok("1.33", &["delete", "namespace", "jobs", "--wait=false"]);
    c.eventually("the namespace and its crontab to go", || {
        !c.kubectl("1.33", &["get", "namespace", "jobs"])
            .status
            .success()
    });

    // Deleting the definition deletes its objects, then the definition; its resource is gone.
    c.ok(
        "1.33",
        &[
            "delete",
            "crd",
            "crontabs.stable.example.com",
            "--timeout=60s",
        ],
    );
    let gone = c.fails("1.33", &["get", "crontabs"]);
    assert!(
        gone.contains("the server doesn't have a resource type \"crontabs\""),
        "{gone}"
    );
    c.eventually("the definition's APIService to go", || {
        !c.kubectl("1.33", &["get", "apiservice", "v1.stable.example.com"])
            .status
            .success()
    });
    // Made again, it starts empty: the old objects went with the old definition.
    let again = c.apply("1.33", CRONTAB_CRD, &[]);
    assert!(again.status.success(), "{}", text(&again));
    let listed = c.json("1.33", &["get", "crontabs", "-A"]);
    assert_eq!(listed["items"], serde_json::json!([]), "{listed:#}");
}

#[test]
fn definitions_refuse_what_cannot_be_served() {
    if kubectl_skip() {
        return;
    }
    let c = KubeCluster::create("crd-refuse");
    // A conversion webhook that cannot be reached: the stored version works, the other is
    // refused with upstream's error (kube_webhooks.rs calls a real one).
    let webhook = CRONTAB_CRD.replace(
        "  versions:\n",
        "  conversion:\n    strategy: Webhook\n    webhook:\n      conversionReviewVersions: [v1]\n      clientConfig:\n        url: https://127.0.0.1:1/convert\n  versions:\n",
    );
    let applied = c.apply("1.33", &webhook, &[]);
    assert!(applied.status.success(), "{}", text(&applied));
    let created = c.apply("1.33", CRONTAB, &[]);
    assert!(created.status.success(), "{}", text(&created));
    let refused = c.fails(
        "1.33",
        &["get", "crontabs.v1beta1.stable.example.com", "backup"],
    );
    assert!(
        refused.contains("conversion webhook for stable.example.com/v1, Kind=CronTab failed: Post \"https://127.0.0.1:1/convert?timeout=30s\""),
        "{refused}"
    );
    // A second definition of the same kind in the group is not accepted, and not served.
    let clash = CRONTAB_CRD
        .replace(
            "crontabs.stable.example.com",
            "crontabs2.stable.example.com",
        )
        .replace("plural: crontabs", "plural: crontabs2")
        .replace("singular: crontab", "singular: crontab2")
        .replace("shortNames: [ct]", "shortNames: [ct2]");
    let applied = c.apply("1.33", &clash, &[]);
    assert!(applied.status.success(), "{}", text(&applied));
    let crd: Value = c.json("1.33", &["get", "crd", "crontabs2.stable.example.com"]);
    let conditions = crd["status"]["conditions"].as_array().unwrap();
    let named = conditions
        .iter()
        .find(|c| c["type"] == "NamesAccepted")
        .unwrap();
    assert_eq!(named["status"], "False");
    assert_eq!(named["reason"], "KindConflict");
    assert_eq!(named["message"], "\"CronTab\" is already in use");
    let missing = c.fails("1.33", &["get", "crontabs2"]);
    assert!(
        missing.contains("doesn't have a resource type"),
        "{missing}"
    );
}

#[test]
fn a_new_cluster_has_eks_definitions_and_the_seed_security_group_policy_applies() {
    if kubectl_skip() {
        return;
    }
    let c = KubeCluster::create("crd-eks");
    let crds = c.ok("1.33", &["get", "crd", "-o", "name"]);
    for name in [
        "cninodes.vpcresources.k8s.aws",
        "eniconfigs.crd.k8s.amazonaws.com",
        "policyendpoints.networking.k8s.aws",
        "securitygrouppolicies.vpcresources.k8s.aws",
    ] {
        assert!(
            crds.contains(&format!(
                "customresourcedefinition.apiextensions.k8s.io/{name}"
            )),
            "{crds}"
        );
    }
    // metrics-server's API is listed as an available aggregated API, as on EKS with it, next to
    // the API server's own group-versions.
    let services = c.ok("1.33", &["get", "apiservices"]);
    let metrics = services
        .lines()
        .find(|l| l.starts_with("v1beta1.metrics.k8s.io"))
        .unwrap_or_else(|| panic!("{services}"));
    let cells: Vec<&str> = metrics.split_whitespace().collect();
    assert_eq!(
        cells[1..3],
        ["kube-system/metrics-server", "True"],
        "{services}"
    );
    assert!(
        services
            .lines()
            .any(|l| l.starts_with("v1.apps ") && l.contains("Local")),
        "{services}"
    );
    // EKS's definitions' group-versions, Local, as `kubectl get apiservices` lists them on EKS.
    c.eventually("the EKS definitions' APIServices", || {
        let services = c.ok("1.33", &["get", "apiservices"]);
        [
            "v1alpha1.crd.k8s.amazonaws.com",
            "v1alpha1.networking.k8s.aws",
            "v1alpha1.vpcresources.k8s.aws",
            "v1beta1.vpcresources.k8s.aws",
        ]
        .iter()
        .all(|n| {
            services
                .lines()
                .any(|l| l.starts_with(&format!("{n} ")) && l.contains("Local"))
        })
    });
    c.ok("1.33", &["create", "namespace", "production"]);
    let policy = r#"
apiVersion: vpcresources.k8s.aws/v1beta1
kind: SecurityGroupPolicy
metadata:
  name: my-app-sgp
  namespace: production
spec:
  podSelector:
    matchLabels:
      app: payment-service
  securityGroups:
    groupIds:
      - sg-0a1b2c3d4e5f6a7b8
"#;
    let applied = c.apply("1.33", policy, &[]);
    assert!(applied.status.success(), "{}", text(&applied));
    let got = c.json("1.33", &["get", "sgp", "my-app-sgp", "-n", "production"]);
    assert_eq!(
        got["spec"]["securityGroups"]["groupIds"][0],
        "sg-0a1b2c3d4e5f6a7b8"
    );
    // Older kubectl (aggregated discovery v2beta1, OpenAPI v2 validation) applies it too.
    let old = c.apply("1.27", &policy.replace("my-app-sgp", "other-sgp"), &[]);
    assert!(old.status.success(), "{}", text(&old));
}

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.shop.example.com
spec:
  group: shop.example.com
  scope: Namespaced
  names: {plural: widgets, kind: Widget}
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
            required: [name]
            properties:
              name: {type: string}
              replicas: {type: integer, minimum: 1, maximum: 10}
              color: {type: string, enum: [red, blue]}
              size: {type: integer, default: 3}
              port: {x-kubernetes-int-or-string: true}
              extra:
                type: object
                x-kubernetes-preserve-unknown-fields: true
"#;

fn widget(spec: &str) -> String {
    format!(
        "apiVersion: shop.example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: default\nspec:\n{spec}"
    )
}

#[test]
fn custom_resources_are_validated_defaulted_and_pruned_by_their_schema() {
    if kubectl_skip() {
        return;
    }
    let c = KubeCluster::create("crd-schema");
    let applied = c.apply("1.33", WIDGET_CRD, &[]);
    assert!(applied.status.success(), "{}", text(&applied));

    // Each rule with kube-apiserver's message (kubectl prints the 422 as it gets it).
    for (spec, message) in [
        (
            "  name: a\n  replicas: three\n",
            r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#,
        ),
        (
            "  name: a\n  replicas: 11\n",
            "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10",
        ),
        (
            "  name: a\n  color: pink\n",
            r#"spec.color: Unsupported value: "pink": supported values: "red", "blue""#,
        ),
        ("  replicas: 2\n", "spec.name: Required value"),
    ] {
        let out = c.apply("1.33", &widget(spec), &[]);
        assert!(!out.status.success(), "{spec} was accepted");
        let said = text(&out);
        assert!(said.contains("The Widget \"w\" is invalid"), "{said}");
        assert!(
            said.contains(message),
            "{spec}: expected {message:?} in {said}"
        );
    }

    // kubectl validates strictly by default: an unknown field is refused as upstream refuses
    // it; with validation off it is pruned, and what the schema keeps stays.
    let unknown = widget("  name: a\n  bogus: 1\n  port: http\n  extra: {anything: [1, 2]}\n");
    let refused = c.apply("1.33", &unknown, &[]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains(r#"strict decoding error: unknown field "spec.bogus""#),
        "{}",
        text(&refused)
    );
    let pruned = c.apply("1.33", &unknown, &["--validate=false"]);
    assert!(pruned.status.success(), "{}", text(&pruned));
    let w = c.json("1.33", &["get", "widget", "w"]);
    assert!(w["spec"].get("bogus").is_none(), "{w:#}");
    assert_eq!(w["spec"]["size"], 3, "defaulted: {w:#}");
    assert_eq!(w["spec"]["port"], "http");
    assert_eq!(w["spec"]["extra"]["anything"], serde_json::json!([1, 2]));
    // Warn: accepted, with the warning kubectl prints.
    let warned = c.apply(
        "1.33",
        &widget("  name: b\n  bogus: 2\n"),
        &["--validate=warn"],
    );
    assert!(warned.status.success(), "{}", text(&warned));
    assert!(
        text(&warned).contains(r#"unknown field "spec.bogus""#),
        "{}",
        text(&warned)
    );

    // A definition itself is validated with upstream's messages.
    let bad = WIDGET_CRD.replace(
        "name: widgets.shop.example.com",
        "name: gadgets.shop.example.com",
    );
    let out = c.apply("1.33", &bad, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(r#"metadata.name: Invalid value: "gadgets.shop.example.com": must be spec.names.plural+"."+spec.group"#),
        "{}",
        text(&out)
    );
}
