//! End-to-end: the OpenAPI clients use, with real kubectl against a running `localfargate up`
//! (simulated runtime): `kubectl explain` (OpenAPI v3 schemas), kubectl 1.27/1.28 `apply`
//! validation (which first loads `/openapi/v2` as gnostic protobuf), and server-side
//! `fieldValidation` (Strict and Warn) from kubectl 1.31/1.33.

mod common;

use std::process::Command;

use common::kube_cluster::{KUBECTL_DIR, KubeCluster as Cluster, text};
use common::localfargate;
use serde_json::Value;

fn cluster(name: &str) -> Cluster {
    Cluster::create(name)
}

fn deployment(name: &str, replicas: u32, extra_container_field: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: web
        image: nginx
        ports:
        - containerPort: 80
        resources:
          requests: {{cpu: 250m, memory: 512Mi}}
        {extra_container_field}
"
    )
}

#[test]
fn explain_prints_upstreams_schema_text() {
    let c = cluster("explain");
    for version in ["1.33", "1.31"] {
        let out = c.ok(version, &["explain", "pod.spec.containers.resources"]);
        assert!(out.contains("KIND:       Pod"), "{version}: {out}");
        assert!(
            out.contains("FIELD: resources <ResourceRequirements>"),
            "{version}: {out}"
        );
        assert!(
            out.contains("Compute Resources required by this container. Cannot be updated."),
            "{version}: {out}"
        );
        assert!(
            out.contains("limits\t<map[string]Quantity>"),
            "{version}: {out}"
        );

        let recursive = c.ok(version, &["explain", "deployment", "--recursive"]);
        assert!(
            recursive.contains("GROUP:      apps"),
            "{version}: {recursive}"
        );
        for field in [
            "revisionHistoryLimit",
            "maxSurge",
            "terminationGracePeriodSeconds",
        ] {
            assert!(
                recursive.contains(field),
                "{version}: {field} in {recursive}"
            );
        }

        let profiles = c.ok(version, &["explain", "fargateprofiles.spec"]);
        assert!(
            profiles.contains("The profile as the EKS API describes it."),
            "{version}: {profiles}"
        );
    }
    let raw: Value = serde_json::from_str(&c.ok("1.31", &["get", "--raw", "/openapi/v2"])).unwrap();
    assert_eq!(raw["swagger"], "2.0");
    assert!(raw["definitions"]["io.k8s.api.core.v1.Pod"]["properties"]["spec"].is_object());
    // An alpha kind no cluster serves by default is left out.
    assert!(
        raw["definitions"]["io.k8s.api.storagemigration.v1alpha1.StorageVersionMigration"]
            .is_null()
    );
}

/// What kube-apiserver answers a create with an unknown field under `fieldValidation=Strict`.
fn strict_create_error(field: &str) -> String {
    format!(
        "Error from server (BadRequest): error when creating \"STDIN\": Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"{field}\""
    )
}

/// A `kind: List` has no OpenAPI kind, so kubectl validates its items itself against the v2
/// (protobuf) schemas.
const LISTED_CONFIGMAP: &str = "apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: listed}
  data: {a: b}
  colour: blue
";

const CLIENT_SIDE_ERROR: &str = "error: error validating \"STDIN\": error validating data: ValidationError(ConfigMap): unknown field \"colour\" in io.k8s.api.core.v1.ConfigMap; if you choose to ignore these errors, turn validation off with --validate=false";

#[test]
fn kubectl_1_27_and_1_28_validate_with_the_v2_protobuf() {
    let c = cluster("oldkubectl");
    for version in ["1.27", "1.28"] {
        // The v2 explain reads `/openapi/v2` as gnostic protobuf and parses every definition.
        let explained = c.ok(
            version,
            &[
                "explain",
                "pod.spec.containers.resources",
                "--output=plaintext-openapiv2",
            ],
        );
        assert!(
            explained.contains("RESOURCE: resources <Object>"),
            "{version}: {explained}"
        );
        assert!(
            explained.contains("ResourceRequirements describes the compute resource requirements."),
            "{version}: {explained}"
        );

        // apply loads the v2 document first (and fails without it), then asks v3 whether the
        // server validates fields.
        let name = format!("web-{}", version.replace('.', "-"));
        let valid = c.apply(version, &deployment(&name, 1, ""), &[]);
        assert!(valid.status.success(), "{version}: {}", text(&valid));
        assert_eq!(
            String::from_utf8_lossy(&valid.stdout).trim(),
            format!("deployment.apps/{name} created")
        );
        let bad = format!("bad-{}", version.replace('.', "-"));
        let invalid = c.apply(version, &deployment(&bad, 1, "colour: blue"), &[]);
        assert!(!invalid.status.success());
        assert_eq!(
            String::from_utf8_lossy(&invalid.stderr).trim(),
            strict_create_error("spec.template.spec.containers[0].colour")
        );
        assert!(
            !c.kubectl(version, &["get", "deployment", &bad])
                .status
                .success()
        );

        let listed = c.apply(version, LISTED_CONFIGMAP, &[]);
        assert!(!listed.status.success());
        assert_eq!(
            String::from_utf8_lossy(&listed.stderr).trim(),
            CLIENT_SIDE_ERROR
        );
    }
}

#[test]
fn kubectl_1_31_and_1_33_field_validation_is_the_servers() {
    let c = cluster("strict");
    let fargate = localfargate(
        &c.server,
        &[
            "profile",
            "create",
            "--cluster",
            "strict",
            "--name",
            "fp",
            "--namespace",
            "default",
        ],
    );
    assert!(fargate.status.success(), "{}", text(&fargate));
    for version in ["1.31", "1.33"] {
        let name = format!("web-{}", version.replace('.', "-"));
        let field = "spec.template.spec.containers[0].colour";
        let unknown = deployment(&name, 1, "colour: blue");

        let strict = c.apply(version, &unknown, &[]);
        assert!(!strict.status.success());
        assert_eq!(
            String::from_utf8_lossy(&strict.stderr).trim(),
            strict_create_error(field)
        );

        let warned = c.apply(version, &unknown, &["--validate=warn"]);
        assert!(warned.status.success(), "{version}: {}", text(&warned));
        assert_eq!(
            String::from_utf8_lossy(&warned.stderr).trim(),
            format!("Warning: unknown field \"{field}\"")
        );
        // The field is dropped, as kube-apiserver drops it.
        let stored: Value =
            serde_json::from_str(&c.ok(version, &["get", "deployment", &name, "-o", "json"]))
                .unwrap();
        assert!(stored["spec"]["template"]["spec"]["containers"][0]["colour"].is_null());

        // Once the controllers have run the deployment's pods, a valid re-apply (a strategic
        // merge patch of the stored object) passes Strict, and one with an unknown field fails.
        c.eventually("the deployment's pod running", || {
            c.kubectl(
                version,
                &[
                    "get",
                    "pods",
                    "-l",
                    &format!("app={name}"),
                    "-o",
                    "jsonpath={.items[*].status.phase}",
                ],
            )
            .stdout
            .starts_with(b"Running")
        });
        let scaled = c.apply(version, &deployment(&name, 2, ""), &[]);
        assert!(scaled.status.success(), "{version}: {}", text(&scaled));
        assert_eq!(
            String::from_utf8_lossy(&scaled.stdout).trim(),
            format!("deployment.apps/{name} configured")
        );
        let patched = c.apply(version, &deployment(&name, 3, "colour: red"), &[]);
        assert!(!patched.status.success());
        let err = String::from_utf8_lossy(&patched.stderr);
        assert!(
            err.trim_end().ends_with(&format!(
                "for: \"STDIN\": error when patching \"STDIN\": strict decoding error: unknown field \"{field}\""
            )),
            "{version}: {err}"
        );
        let replicas = c.ok(
            version,
            &[
                "get",
                "deployment",
                &name,
                "-o",
                "jsonpath={.spec.replicas}",
            ],
        );
        assert_eq!(replicas, "2", "a refused patch changes nothing");

        // A pod as the server keeps it, replaced whole under Strict: every field it wrote is
        // one the schema knows.
        let pods = c.ok(
            version,
            &["get", "pods", "-l", &format!("app={name}"), "-o", "name"],
        );
        let pod = pods.lines().next().unwrap();
        let current = c.ok(version, &["get", pod, "-o", "json"]);
        let cache = tempfile::tempdir().unwrap();
        let replaced = common::output_with_stdin(
            Command::new(format!("{KUBECTL_DIR}/kubectl.{version}"))
                .arg("--kubeconfig")
                .arg(&c.kubeconfig)
                .arg("--cache-dir")
                .arg(cache.path())
                .args(["replace", "-f", "-"]),
            current.as_bytes(),
        );
        assert!(replaced.status.success(), "{version}: {}", text(&replaced));
        assert!(replaced.stderr.is_empty(), "{version}: {}", text(&replaced));

        let ignored = c.apply(
            version,
            &deployment(&format!("{name}-ignored"), 1, "colour: green"),
            &["--validate=false"],
        );
        assert!(ignored.status.success(), "{version}: {}", text(&ignored));
        assert!(ignored.stderr.is_empty(), "{version}: {}", text(&ignored));

        let listed = c.apply(version, LISTED_CONFIGMAP, &[]);
        assert_eq!(
            String::from_utf8_lossy(&listed.stderr).trim(),
            CLIENT_SIDE_ERROR
        );
    }
}
