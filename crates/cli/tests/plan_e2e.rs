//! End-to-end: the `localfargate` binary on the public guides' profiles and pods, checked against
//! results worked out by hand from fargate-behavior.md (sizing table, +256 MiB, us-east-1 rates).

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/guides")
}

fn localfargate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_localfargate"))
        .current_dir(fixtures())
        .args(args)
        .output()
        .expect("the binary runs")
}

fn plan_json(args: &[&str]) -> Value {
    let mut all = vec!["plan", "-o", "json"];
    all.extend_from_slice(args);
    let out = localfargate(&all);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("plan -o json prints JSON")
}

fn workload<'a>(plan: &'a Value, namespace: &str, name: &str) -> &'a Value {
    plan["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["namespace"] == namespace && w["name"] == name)
        .unwrap_or_else(|| panic!("no workload {namespace}/{name} in {plan:#}"))
}

fn guides_plan() -> Value {
    plan_json(&[
        "--config",
        "cluster.yaml",
        "--profile",
        "profiles/fp-batch-jobs.json",
        "--profile",
        "profiles/fp-monitoring-describe.json",
        "-f",
        "manifests",
    ])
}

/// (namespace, name, placement, profile, CapacityProvisioned, replicas, hourly USD per replica)
type Expected = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    u64,
    f64,
);

#[test]
fn guide_workloads_land_where_the_rules_say() {
    let plan = guides_plan();
    let expected: [Expected; 9] = [
        // Fluent Bit sidecar: 0.6 vCPU, 1.125 GiB + 256 MiB → 1vCPU 2GB = 0.04048 + 2 × 0.004445.
        (
            "production",
            "app-with-logging",
            "fargate",
            Some("fp-applications"),
            Some("1vCPU 2GB"),
            2,
            0.04937,
        ),
        // 1 vCPU 8 GiB + 256 MiB leaves the 1 vCPU row: 2vCPU 9GB = 2 × 0.04048 + 9 × 0.004445.
        (
            "batch-jobs",
            "nightly-report",
            "fargate",
            Some("fp-batch"),
            Some("2vCPU 9GB"),
            3,
            0.120965,
        ),
        // No requests: the smallest size, 0.25 × 0.04048 + 0.5 × 0.004445.
        (
            "jobs",
            "data-processor",
            "fargate",
            Some("fp-batch-jobs"),
            Some("0.25vCPU 0.5GB"),
            1,
            0.0123425,
        ),
        // 512 MiB + 256 MiB → 1 GB: 0.25 × 0.04048 + 1 × 0.004445.
        (
            "default",
            "web",
            "fargate",
            Some("fp-default"),
            Some("0.25vCPU 1GB"),
            3,
            0.014565,
        ),
        ("production", "api", "pending", None, None, 4, 0.0),
        ("production", "app-with-efs", "refused", None, None, 2, 0.0),
        ("kube-system", "coredns", "pending", None, None, 2, 0.0),
        ("default", "efs-csi-node", "refused", None, None, 1, 0.0),
        (
            "kube-system",
            "node-exporter",
            "pending",
            None,
            None,
            0,
            0.0,
        ),
    ];
    for (ns, name, placement, profile, capacity, replicas, hourly) in expected {
        let w = workload(&plan, ns, name);
        assert_eq!(w["placement"], placement, "{ns}/{name}");
        assert_eq!(w["profile"].as_str(), profile, "{ns}/{name}");
        assert_eq!(w["capacityProvisioned"].as_str(), capacity, "{ns}/{name}");
        assert_eq!(w["replicas"].as_u64(), Some(replicas), "{ns}/{name}");
        let got = w["hourlyUsd"].as_f64().unwrap();
        assert!(
            (got - hourly).abs() < 1e-6,
            "{ns}/{name}: hourly {got} != {hourly}"
        );
        let monthly = w["monthlyUsd"].as_f64().unwrap();
        assert!(
            (monthly - hourly * replicas as f64 * 730.0).abs() < 1e-4,
            "{ns}/{name}: monthly {monthly}"
        );
    }
    assert_eq!(plan["workloads"].as_array().unwrap().len(), 9);
    assert_eq!(plan["skipped"][0]["kind"], "Service");
    assert_eq!(plan["region"], "us-west-2", "from the ClusterConfig");
    assert_eq!(plan["cluster"], "my-cluster");
    let totals = &plan["totals"];
    assert_eq!(totals["pods"], 18);
    assert_eq!(totals["fargatePods"], 9);
    assert_eq!(totals["pendingPods"], 6);
    assert_eq!(totals["refusedPods"], 3);
    let fargate_monthly = (0.04937 * 2.0 + 0.120965 * 3.0 + 0.0123425 + 0.014565 * 3.0) * 730.0;
    assert!((totals["fargateMonthlyUsd"].as_f64().unwrap() - fargate_monthly).abs() < 1e-3);
}

#[test]
fn reasons_use_aws_wording_and_name_the_nearest_selector() {
    let plan = guides_plan();
    let reasons = |ns, name| -> Vec<String> {
        workload(&plan, ns, name)["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        reasons("default", "efs-csi-node")[1],
        "Pod not supported on Fargate: fields not supported: HostNetwork, invalid SecurityContext fields: Privileged, port contains HostIP or HostPort"
    );
    assert_eq!(
        reasons("production", "app-with-efs")[1],
        "Pod not supported on Fargate: volumes not supported: data not supported because: PVC app-data-pvc not bound"
    );
    assert_eq!(
        reasons("production", "api")[0],
        "no Fargate profile matches; nearest selector is profile fp-applications selector 1 \
         (namespace=production,labels={compute=fargate}): label compute=fargate is missing"
    );
    let coredns = workload(&plan, "kube-system", "coredns");
    assert!(
        coredns["warnings"][0]
            .as_str()
            .unwrap()
            .contains("although profile fp-default matches")
    );
    let job = workload(&plan, "batch-jobs", "nightly-report");
    let warnings = job["warnings"].to_string();
    assert!(
        warnings.contains(
            "pushes this pod from 1vCPU 8GB to 2vCPU 9GB; requesting at most 7936Mi memory"
        ),
        "{warnings}"
    );
    assert!(
        warnings.contains("Job without ttlSecondsAfterFinished"),
        "{warnings}"
    );
}

#[test]
fn node_groups_take_what_fargate_does_not() {
    let plan = plan_json(&["--config", "cluster-with-nodegroup.yaml", "-f", "manifests"]);
    let api = workload(&plan, "production", "api");
    assert_eq!(api["placement"], "ec2");
    assert_eq!(api["nodeGroup"], "system");
    // Half a t3.large by CPU (1 of 2 vCPU): 0.0832 / 2.
    assert!((api["hourlyUsd"].as_f64().unwrap() - 0.0416).abs() < 1e-9);
    let ds = workload(&plan, "kube-system", "node-exporter");
    assert_eq!(
        (ds["placement"].as_str(), ds["replicas"].as_u64()),
        (Some("ec2"), Some(2)),
        "one per node"
    );
    // fp-batch is not in this cluster: the batch Job has no profile.
    assert_eq!(
        workload(&plan, "batch-jobs", "nightly-report")["placement"],
        "ec2"
    );
    assert_eq!(plan["region"], "us-east-1");
    let ng = plan["totals"]["nodeGroupsMonthlyUsd"].as_f64().unwrap();
    assert!((ng - 2.0 * 0.0832 * 730.0).abs() < 1e-6, "{ng}");
}

#[test]
fn selection_rule_changes_the_winner() {
    // fp-applications (compute=fargate selector, 1 label) and fp-all (namespace only) both match.
    let scratch_dir = scratch("rule");
    let dir = scratch_dir.path();
    let profiles = dir.join("profiles.json");
    std::fs::write(
        &profiles,
        r#"[{"fargateProfileName": "fp-all", "selectors": [{"namespace": "production"}]},
            {"fargateProfileName": "fp-applications", "selectors": [{"namespace": "production", "labels": {"compute": "fargate"}}]}]"#,
    )
    .unwrap();
    let manifest = fixtures().join("manifests/app-with-logging.yaml");
    let run = |rule: &str| {
        let plan = plan_json(&[
            "--profile",
            profiles.to_str().unwrap(),
            "--selection-rule",
            rule,
            "-f",
            manifest.to_str().unwrap(),
        ]);
        plan["workloads"][0].clone()
    };
    let by_name = run("name");
    assert_eq!(by_name["profile"], "fp-all");
    assert!(
        by_name["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("profiles fp-all, fp-applications all match")
    );
    assert_eq!(run("most-specific")["profile"], "fp-applications");
    let random = run("random")["profile"].as_str().unwrap().to_string();
    assert!(random == "fp-all" || random == "fp-applications");
}

#[test]
fn table_and_markdown_render_the_same_plan() {
    let out = localfargate(&["plan", "--config", "cluster.yaml", "-f", "manifests"]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("KIND") && header.contains("PLACEMENT") && header.ends_with("$/MONTH"),
        "{header}"
    );
    assert!(table.lines().any(|l| l.starts_with("Deployment")
        && l.contains("app-with-logging")
        && l.contains("1vCPU 2GB")));
    assert!(table.contains("Skipped (not workloads): Service web"));

    let out = localfargate(&[
        "plan",
        "--config",
        "cluster.yaml",
        "-f",
        "manifests",
        "-o",
        "markdown",
    ]);
    assert!(out.status.success());
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(
        md.starts_with("### localfargate plan for cluster `my-cluster`"),
        "{md}"
    );
    assert!(md.contains("| Deployment `production/app-with-logging` | 2 | fargate | fp-applications | 1vCPU 2GB | 0.04937 | 72.08 |"), "{md}");
    assert!(md.contains("| **refused** |"), "{md}");
    assert!(md.contains("<details>"));
}

#[test]
fn fail_on_gates_exit_status() {
    let base = [
        "plan",
        "--config",
        "cluster.yaml",
        "-f",
        "manifests/web.yaml",
        "-o",
        "json",
    ];
    assert_eq!(localfargate(&base).status.code(), Some(0));
    let with = |gate: &str| {
        let mut args = base.to_vec();
        args.extend(["--fail-on", gate]);
        localfargate(&args).status.code()
    };
    assert_eq!(with("refused,unmatched"), Some(0), "web lands on Fargate");
    assert_eq!(
        with("warning"),
        Some(3),
        "the 256 MiB overhead warning trips it"
    );
    let refused = localfargate(&[
        "plan",
        "--config",
        "cluster.yaml",
        "-f",
        "manifests/refused.yaml",
        "--fail-on",
        "refused",
    ]);
    assert_eq!(refused.status.code(), Some(3));
    let unmatched = localfargate(&[
        "plan",
        "--config",
        "cluster.yaml",
        "-f",
        "manifests/api-unlabelled.yaml",
        "--fail-on",
        "unmatched",
    ]);
    assert_eq!(unmatched.status.code(), Some(3));
    assert_eq!(
        localfargate(&["plan", "-f", "x.yaml", "--fail-on", "sometimes"])
            .status
            .code(),
        Some(2),
        "usage error"
    );
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let scratch_dir = scratch("bad");
    let dir = scratch_dir.path();
    let broken = dir.join("broken.yaml");
    std::fs::write(
        &broken,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n   labels: {}\n",
    )
    .unwrap();
    let out = localfargate(&["plan", "-f", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with(&format!("error: {}:5:", broken.display())),
        "{err}"
    );

    let typed = dir.join("typed.yaml");
    std::fs::write(&typed, "kind: ConfigMap\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: many\n").unwrap();
    let err =
        String::from_utf8(localfargate(&["plan", "-f", typed.to_str().unwrap()]).stderr).unwrap();
    assert!(
        err.contains(
            "typed.yaml:3: Deployment d: spec.replicas: invalid type: string \"many\", expected i32"
        ),
        "{err}"
    );

    let missing = localfargate(&["plan", "-f", "no-such-dir"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8(missing.stderr)
            .unwrap()
            .contains("no-such-dir: no such file or directory")
    );

    let region = localfargate(&["plan", "--region", "eu-west-3", "-f", "manifests/web.yaml"]);
    assert_eq!(region.status.code(), Some(1));
    assert!(
        String::from_utf8(region.stderr)
            .unwrap()
            .contains("no Fargate prices for region eu-west-3")
    );
}

#[test]
fn namespace_defaults_and_prices_override() {
    let scratch_dir = scratch("ns");
    let dir = scratch_dir.path();
    let pod = dir.join("pod.yaml");
    std::fs::write(&pod, "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: x, resources: {requests: {cpu: 2, memory: 4Gi}}}]\n").unwrap();
    let prices = dir.join("prices.yaml");
    std::fs::write(&prices, "fargate:\n  eu-west-3:\n    vcpuHour: 0.05\n    gbHour: 0.005\n    storageGbHour: 0.0001\n").unwrap();
    let plan = plan_json(&[
        "--config",
        "cluster.yaml",
        "-f",
        pod.to_str().unwrap(),
        "--region",
        "eu-west-3",
        "--prices",
        prices.to_str().unwrap(),
    ]);
    let w = &plan["workloads"][0];
    assert_eq!(w["namespace"], "default");
    assert_eq!(w["capacityProvisioned"], "2vCPU 5GB", "4 GiB + 256 MiB");
    assert!((w["hourlyUsd"].as_f64().unwrap() - (2.0 * 0.05 + 5.0 * 0.005)).abs() < 1e-9);
    let plan = plan_json(&[
        "--config",
        "cluster.yaml",
        "-f",
        pod.to_str().unwrap(),
        "--namespace",
        "staging",
    ]);
    assert_eq!(
        plan["workloads"][0]["placement"], "pending",
        "staging needs compute=fargate"
    );
}

#[test]
fn reads_manifests_from_stdin() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_localfargate"))
        .current_dir(fixtures())
        .args(["plan", "--config", "cluster.yaml", "-o", "json", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: batch-jobs}\nspec: {containers: [{name: c, image: x}]}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["workloads"][0]["profile"], "fp-batch");
}

/// A directory of its own for one test, removed when the test ends.
fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("lf-e2e-{name}-"))
        .tempdir()
        .unwrap()
}

#[test]
fn efs_claims_bind_like_kubernetes() {
    let scratch_dir = scratch("efs");
    let dir = scratch_dir.path();
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: app, namespace: default}\nspec:\n  containers: [{name: c, image: x}]\n  volumes: [{name: data, persistentVolumeClaim: {claimName: efs-claim}}]\n";
    // The aws-efs-csi-driver static example: the claim binds through its storage class.
    let static_pv = "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: efs-pv}\nspec:\n  capacity: {storage: 5Gi}\n  accessModes: [ReadWriteMany]\n  storageClassName: efs-sc\n  csi: {driver: efs.csi.aws.com, volumeHandle: fs-123}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: efs-claim}\nspec:\n  accessModes: [ReadWriteMany]\n  storageClassName: efs-sc\n  resources: {requests: {storage: 5Gi}}\n---\n";
    std::fs::write(dir.join("static.yaml"), format!("{static_pv}{pod}")).unwrap();
    let plan = plan_json(&[
        "--config",
        "cluster.yaml",
        "-f",
        dir.join("static.yaml").to_str().unwrap(),
    ]);
    assert_eq!(plan["workloads"][0]["placement"], "fargate", "{plan:#}");
    // Dynamic provisioning through a StorageClass: Fargate cannot, the claim never binds.
    let dynamic = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: efs-sc}\nprovisioner: efs.csi.aws.com\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: efs-claim}\nspec:\n  storageClassName: efs-sc\n  resources: {requests: {storage: 5Gi}}\n---\n";
    std::fs::write(dir.join("dynamic.yaml"), format!("{dynamic}{pod}")).unwrap();
    let plan = plan_json(&[
        "--config",
        "cluster.yaml",
        "-f",
        dir.join("dynamic.yaml").to_str().unwrap(),
    ]);
    assert_eq!(
        plan["workloads"][0]["reasons"][1],
        "Pod not supported on Fargate: volumes not supported: data not supported because: PVC efs-claim not bound"
    );
    // Only the claim: not decidable, so a warning rather than a refusal.
    std::fs::write(dir.join("unknown.yaml"), pod).unwrap();
    let plan = plan_json(&[
        "--config",
        "cluster.yaml",
        "-f",
        dir.join("unknown.yaml").to_str().unwrap(),
    ]);
    assert_eq!(plan["workloads"][0]["placement"], "fargate");
    let warnings = plan["workloads"][0]["warnings"].to_string();
    assert!(
        warnings.contains("mounts PVC efs-claim, whose binding the inputs do not show"),
        "{warnings}"
    );
}

#[test]
fn hostile_inputs_do_not_crash() {
    let scratch_dir = scratch("hostile");
    let dir = scratch_dir.path();
    // Node-group sizes that overflow 32 bits when added.
    std::fs::write(
        dir.join("cc.yaml"),
        "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: c}\nmanagedNodeGroups:\n- {name: a, desiredCapacity: 4294967295}\n- {name: b, desiredCapacity: 2}\n",
    )
    .unwrap();
    std::fs::write(dir.join("ds.yaml"), "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: d}\nspec: {selector: {}, template: {spec: {containers: [{name: c, image: x}]}}}\n").unwrap();
    let plan = plan_json(&[
        "--config",
        dir.join("cc.yaml").to_str().unwrap(),
        "-f",
        dir.join("ds.yaml").to_str().unwrap(),
    ]);
    assert_eq!(plan["workloads"][0]["replicas"], u32::MAX, "saturates");
    // Lists nested without end.
    let mut nested = String::from("kind: Pod\nmetadata: {name: p}\n");
    for _ in 0..20 {
        nested = format!(
            "kind: List\nitems:\n- {}",
            nested.replace('\n', "\n  ").trim_end()
        );
        nested.push('\n');
    }
    std::fs::write(dir.join("nested.yaml"), nested).unwrap();
    let out = localfargate(&["plan", "-f", dir.join("nested.yaml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nested more than 8 deep"));
    // A symlink back up the tree is not followed.
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::copy(fixtures().join("manifests/web.yaml"), tree.join("web.yaml")).unwrap();
    std::os::unix::fs::symlink(&tree, tree.join("self")).unwrap();
    let plan = plan_json(&["--config", "cluster.yaml", "-f", tree.to_str().unwrap()]);
    assert_eq!(plan["workloads"].as_array().unwrap().len(), 1);
    // Nothing to plan is said, and trips the warning gate.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = localfargate(&[
        "plan",
        "--config",
        "cluster.yaml",
        "-f",
        empty.to_str().unwrap(),
        "--fail-on",
        "warning",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no workloads in the inputs"));
}

#[test]
fn a_closed_pipe_is_not_a_crash() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_localfargate"))
        .current_dir(fixtures())
        .args([
            "plan",
            "--config",
            "cluster.yaml",
            "-f",
            "manifests",
            "-o",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
