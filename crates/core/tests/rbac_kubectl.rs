//! RBAC objects as real kubectl writes them (`kubectl create rolebinding|clusterrole|
//! clusterrolebinding --dry-run=client -o json`, which need no server), decided by the core's
//! `Policy` on top of the bootstrap policy.

use std::path::PathBuf;
use std::process::Command;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use localfargate_core::rbac::{
    Attributes, UserInfo, aggregate, bootstrap_policy, forbidden_message,
};
use serde::de::DeserializeOwned;

const KUBECTL_DIR: &str = "/usr/lib/google-cloud-sdk/bin";

/// Runs `kubectl.<version> create … --dry-run=client -o json` with an empty HOME and decodes
/// the object it prints.
fn kubectl_create<T: DeserializeOwned>(version: &str, args: &[&str]) -> T {
    let kubectl = PathBuf::from(KUBECTL_DIR).join(format!("kubectl.{version}"));
    assert!(kubectl.exists(), "{} is missing", kubectl.display());
    let home = std::env::temp_dir().join(format!("rbac-kubectl-{}-{version}", std::process::id()));
    std::fs::create_dir_all(&home).expect("temporary HOME");
    let output = Command::new(&kubectl)
        .arg("create")
        .args(args)
        .args(["--dry-run=client", "-o", "json"])
        .env("HOME", &home)
        .env("KUBECONFIG", home.join("none"))
        .output()
        .expect("kubectl runs");
    let _ = std::fs::remove_dir_all(&home);
    assert!(
        output.status.success(),
        "kubectl create {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("kubectl printed an RBAC object")
}

#[test]
fn kubectl_written_bindings_decide_as_upstream() {
    for version in ["1.27", "1.33"] {
        let role_binding: RoleBinding = kubectl_create(
            version,
            &[
                "rolebinding",
                "team-edit",
                "--clusterrole=edit",
                "--user=bob",
                "--group=devs",
                "--serviceaccount=ci:deployer",
                "-n",
                "dev",
            ],
        );
        let health: ClusterRole = kubectl_create(
            version,
            &[
                "clusterrole",
                "health",
                "--verb=get",
                "--non-resource-url=/healthz,/readyz/*",
            ],
        );
        let health_binding: ClusterRoleBinding = kubectl_create(
            version,
            &[
                "clusterrolebinding",
                "health",
                "--clusterrole=health",
                "--group=monitors",
            ],
        );

        let mut bootstrap = bootstrap_policy();
        bootstrap.cluster_roles.push(health);
        bootstrap.cluster_role_bindings.push(health_binding);
        bootstrap.role_bindings.push(role_binding);
        let policy = localfargate_core::rbac::Policy::new(
            aggregate(&bootstrap.cluster_roles),
            bootstrap.roles,
            bootstrap.cluster_role_bindings,
            bootstrap.role_bindings,
        );

        let bob = UserInfo::new("bob", &["system:authenticated"]);
        let create_deployment =
            Attributes::resource(bob.clone(), "create", "dev", "apps", "deployments");
        assert_eq!(
            policy.authorize(&create_deployment).reason(),
            r#"RBAC: allowed by RoleBinding "team-edit/dev" of ClusterRole "edit" to User "bob""#,
            "kubectl {version}"
        );
        let other_namespace =
            Attributes::resource(bob.clone(), "create", "prod", "apps", "deployments");
        assert!(!policy.authorize(&other_namespace).is_allowed());
        assert_eq!(
            forbidden_message(&other_namespace),
            r#"deployments.apps is forbidden: User "bob" cannot create resource "deployments" in API group "apps" in the namespace "prod""#
        );

        let dev = UserInfo::new("carol", &["devs", "system:authenticated"]);
        assert!(
            policy
                .authorize(&Attributes::resource(
                    dev.clone(),
                    "get",
                    "dev",
                    "",
                    "secrets"
                ))
                .is_allowed()
        );
        assert!(
            !policy
                .authorize(&Attributes::resource(
                    dev,
                    "create",
                    "dev",
                    "rbac.authorization.k8s.io",
                    "roles"
                ))
                .is_allowed(),
            "edit cannot create roles"
        );

        let deployer = UserInfo::service_account("ci", "deployer");
        assert_eq!(
            policy
                .authorize(&Attributes::resource(
                    deployer,
                    "patch",
                    "dev",
                    "apps",
                    "deployments"
                ))
                .reason(),
            r#"RBAC: allowed by RoleBinding "team-edit/dev" of ClusterRole "edit" to ServiceAccount "deployer/ci""#
        );

        let monitor = UserInfo::new("prometheus", &["monitors", "system:authenticated"]);
        assert!(
            policy
                .authorize(&Attributes::non_resource(
                    monitor.clone(),
                    "get",
                    "/readyz/etcd"
                ))
                .is_allowed()
        );
        assert!(
            !policy
                .authorize(&Attributes::non_resource(monitor, "get", "/metrics"))
                .is_allowed()
        );
    }
}
