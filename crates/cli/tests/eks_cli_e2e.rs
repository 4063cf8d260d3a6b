//! End-to-end: `localfargate up`, then the eksctl-shaped commands against it over the EKS API.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{Server, localfargate as run};
use serde_json::Value;

fn up() -> Server {
    common::up("0.2")
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/guides")
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

#[test]
fn apply_profile_and_cluster_commands() {
    let server = up();
    let config = fixtures().join("cluster-with-nodegroup.yaml");
    let applied = json(&run(
        &server,
        &["apply", "-f", config.to_str().unwrap(), "-o", "json"],
    ));
    assert_eq!(applied["cluster"]["status"], "ACTIVE");
    let names: Vec<&str> = applied["fargateProfiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["fargateProfileName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fp-applications", "fp-default"]);
    assert!(
        applied["fargateProfiles"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["status"] == "ACTIVE")
    );
    // A second apply finds everything in place.
    let again = run(&server, &["apply", "-f", config.to_str().unwrap()]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("Fargate profile fp-default exists"));

    let created = json(&run(
        &server,
        &[
            "profile",
            "create",
            "--cluster",
            "my-cluster",
            "--name",
            "fp-batch",
            "--namespace",
            "batch",
            "--labels",
            "team=data",
            "-o",
            "json",
        ],
    ));
    assert_eq!(created["status"], "ACTIVE");
    assert_eq!(created["selectors"][0]["labels"]["team"], "data");
    let table = run(&server, &["profile", "get", "--cluster", "my-cluster"]);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("fp-batch") && l.contains("team=data") && l.ends_with("ACTIVE")),
        "{table}"
    );

    let refused = run(&server, &["cluster", "delete", "--name", "my-cluster"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(
            "ResourceInUseException: Cluster has Fargate Profiles in ACTIVE/CREATING state"
        )
    );

    let deleted = run(
        &server,
        &[
            "profile",
            "delete",
            "--cluster",
            "my-cluster",
            "--name",
            "fp-batch",
            "--wait",
        ],
    );
    assert!(deleted.status.success());
    let listed = json(&run(
        &server,
        &["profile", "get", "--cluster", "my-cluster", "-o", "json"],
    ));
    assert_eq!(listed.as_array().unwrap().len(), 2);
    // eksctl's shape, as `eksctl get fargateprofile -o json|yaml` prints it.
    let first = &listed[0];
    let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "name",
            "podExecutionRoleARN",
            "selectors",
            "status",
            "subnets"
        ],
        "{first}"
    );
    assert_eq!(first["status"], "ACTIVE");
    let yaml = run(
        &server,
        &["profile", "get", "--cluster", "my-cluster", "-o", "yaml"],
    );
    let yaml = String::from_utf8(yaml.stdout).unwrap();
    assert!(
        yaml.starts_with("- name: ") && yaml.contains("  podExecutionRoleARN: arn:aws:iam::"),
        "{yaml}"
    );

    let yaml = run(
        &server,
        &["cluster", "get", "--name", "my-cluster", "-o", "yaml"],
    );
    let yaml = String::from_utf8(yaml.stdout).unwrap();
    assert!(
        yaml.contains("name: my-cluster") && yaml.contains("status: ACTIVE"),
        "{yaml}"
    );

    let missing = run(
        &server,
        &["profile", "create", "--cluster", "nope", "--namespace", "x"],
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("ResourceNotFoundException: No cluster found for name: nope.")
    );
}

#[test]
fn busy_port_is_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_localfargate"))
        .args(["up", "--ephemeral", "--port", &port])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the port is already in use"), "{err}");
}

#[test]
fn network_model_prints_and_loads() {
    let out = Command::new(env!("CARGO_BIN_EXE_localfargate"))
        .args(["network", "-o", "json"])
        .output()
        .unwrap();
    let model: Value = serde_json::from_slice(&out.stdout).unwrap();
    let subnets = model["vpcs"][0]["subnets"].as_array().unwrap();
    assert_eq!(subnets.len(), 6);
    assert_eq!(subnets.iter().filter(|s| s["private"] == true).count(), 3);
    let dir = std::env::temp_dir().join(format!("lf-net-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("net.json");
    std::fs::write(&file, r#"{"vpcs": [{"vpcId": "vpc-1", "cidrBlock": "10.9.0.0/16", "subnets": [{"subnetId": "subnet-a", "availabilityZone": "us-east-1a", "cidrBlock": "10.9.0.0/24", "private": true}]}]}"#).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_localfargate"))
        .args(["network", "--network", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("subnet-a"));
    std::fs::write(
        &file,
        r#"{"vpcs": [{"vpcId": "vpc-1", "cidrBlock": "nope", "subnets": []}]}"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_localfargate"))
        .args(["network", "--network", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid CIDR"));
}
