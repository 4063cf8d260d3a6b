//! End-to-end: IAM principals in a cluster's Kubernetes API, as EKS maps them. A server with
//! `--auth strict` and one access key per principal (`--access-key ID:SECRET:ARN`); the aws CLI
//! creates the cluster (API_AND_CONFIG_MAP), its access entries and the kubeconfig
//! (`aws eks update-kubeconfig`, whose exec plugin runs `aws eks get-token`); real kubectl then
//! acts as each principal: the creator administers, an AmazonEKSViewPolicy entry scoped to one
//! namespace reads only there, an unmapped principal gets 401, and an `aws-auth` `mapUsers`
//! entry maps a principal to a group a RoleBinding grants.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::kube_cluster::{KUBECTL_DIR, kubectl_missing, text};
use common::{Server, output_with_stdin, up_with};

const ACCOUNT: &str = "000000000000";
const CLUSTER: &str = "entries";
const POLICY: &str = "arn:aws:eks::aws:cluster-access-policy/";

/// One IAM principal and its access key.
struct Principal {
    key: &'static str,
    secret: &'static str,
    arn: String,
}

fn principal(key: &'static str, secret: &'static str, name: &str) -> Principal {
    Principal {
        key,
        secret,
        arn: format!("arn:aws:iam::{ACCOUNT}:user/{name}"),
    }
}

/// The aws CLI: `$AWS_CLI`, or `aws` on the PATH.
fn aws_cli() -> String {
    std::env::var("AWS_CLI").unwrap_or_else(|_| "aws".to_string())
}

fn aws_missing() -> Option<String> {
    let found = Command::new(aws_cli())
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    (!found).then(|| format!("the aws CLI ({}) is not installed", aws_cli()))
}

/// The environment of a process acting as `who`: its keys and nothing from the user's config.
fn as_principal(command: &mut Command, who: &Principal) {
    let aws_dir = Path::new(&aws_cli())
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let path = std::env::var("PATH").unwrap_or_default();
    command
        .env("AWS_ACCESS_KEY_ID", who.key)
        .env("AWS_SECRET_ACCESS_KEY", who.secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_PAGER", "")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        // get-token presigns for the real STS endpoint, which the cluster checks.
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_EKS")
        .env_remove("AWS_ENDPOINT_URL_STS")
        // kubectl's exec plugin runs `aws` from the PATH.
        .env("PATH", format!("{}:{path}", aws_dir.display()));
}

struct Fixture {
    server: Server,
    kubeconfig: PathBuf,
    /// kubectl's discovery cache, kept between calls as a user's kubectl keeps it (for the
    /// server, whoever the user is): a refused request then reports the server's `Status`
    /// (`Unauthorized`), as kubectl does once it has discovered the API.
    cache: PathBuf,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn aws(&self, who: &Principal, args: &[&str]) -> Output {
        let mut command = Command::new(aws_cli());
        command
            .args(["--endpoint-url", &self.server.url])
            .args(args);
        as_principal(&mut command, who);
        command.output().unwrap()
    }

    fn aws_ok(&self, who: &Principal, args: &[&str]) -> String {
        let out = self.aws(who, args);
        assert!(out.status.success(), "aws {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn kubectl(&self, who: &Principal, args: &[&str]) -> Output {
        let mut command = Command::new(format!("{KUBECTL_DIR}/kubectl.1.31"));
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args);
        as_principal(&mut command, who);
        command.output().unwrap()
    }

    fn ok(&self, who: &Principal, args: &[&str]) -> String {
        let out = self.kubectl(who, args);
        assert!(
            out.status.success(),
            "kubectl {args:?} as {}: {}",
            who.arn,
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn fails(&self, who: &Principal, args: &[&str]) -> String {
        let out = self.kubectl(who, args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} as {} succeeded: {}",
            who.arn,
            text(&out)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn apply(&self, who: &Principal, yaml: &str) {
        let mut command = Command::new(format!("{KUBECTL_DIR}/kubectl.1.31"));
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["apply", "-f", "-"]);
        as_principal(&mut command, who);
        let out = output_with_stdin(&mut command, yaml.as_bytes());
        assert!(out.status.success(), "apply as {}: {}", who.arn, text(&out));
    }

    fn eventually(&self, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn kubectl_as_iam_principals_mapped_by_access_entries_and_aws_auth() {
    if let Some(why) = kubectl_missing().or_else(aws_missing) {
        eprintln!("skipped: {why}");
        return;
    }
    let admin = principal("AKIDADMIN", "secret-admin", "admin");
    let viewer = principal("AKIDVIEWER", "secret-viewer", "viewer");
    let nobody = principal("AKIDNOBODY", "secret-nobody", "nobody");
    let mapped = principal("AKIDMAPPED", "secret-mapped", "mapped");
    let keys: Vec<String> = [&admin, &viewer, &nobody, &mapped]
        .iter()
        .map(|p| format!("{}:{}:{}", p.key, p.secret, p.arn))
        .collect();
    let mut flags = vec!["--auth", "strict"];
    for k in &keys {
        flags.extend(["--access-key", k.as_str()]);
    }
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture {
        server: up_with("0.1", &flags),
        kubeconfig: dir.path().join("kubeconfig"),
        cache: dir.path().join("cache"),
        _dir: dir,
    };

    // The creator makes the cluster with the aws CLI, and is its admin by its access entry.
    f.aws_ok(
        &admin,
        &[
            "eks",
            "create-cluster",
            "--name",
            CLUSTER,
            "--role-arn",
            &format!("arn:aws:iam::{ACCOUNT}:role/eks-cluster"),
            "--resources-vpc-config",
            "subnetIds=subnet-0a1b2c3d4e5f60001,subnet-0a1b2c3d4e5f60002",
            "--access-config",
            "authenticationMode=API_AND_CONFIG_MAP",
        ],
    );
    f.aws_ok(
        &admin,
        &["eks", "wait", "cluster-active", "--name", CLUSTER],
    );
    let entries = f.aws_ok(
        &admin,
        &["eks", "list-access-entries", "--cluster-name", CLUSTER],
    );
    assert!(entries.contains(&admin.arn), "{entries}");
    f.aws_ok(
        &admin,
        &[
            "eks",
            "update-kubeconfig",
            "--name",
            CLUSTER,
            "--kubeconfig",
            f.kubeconfig.to_str().unwrap(),
        ],
    );
    f.eventually("the API, as the creator", || {
        f.kubectl(&admin, &["get", "namespace", "default"])
            .status
            .success()
    });
    let whoami = f.ok(
        &admin,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert_eq!(whoami, admin.arn);
    assert_eq!(
        f.ok(&admin, &["auth", "can-i", "*", "*", "-A"]).trim(),
        "yes"
    );
    f.ok(&admin, &["create", "namespace", "team"]);
    f.ok(&admin, &["create", "namespace", "other"]);
    f.ok(
        &admin,
        &[
            "run",
            "web",
            "-n",
            "team",
            "--image=nginx",
            "--restart=Never",
        ],
    );

    // A viewer of namespace `team`, by its access entry and AmazonEKSViewPolicy.
    f.aws_ok(
        &admin,
        &[
            "eks",
            "create-access-entry",
            "--cluster-name",
            CLUSTER,
            "--principal-arn",
            &viewer.arn,
        ],
    );
    f.aws_ok(
        &admin,
        &[
            "eks",
            "associate-access-policy",
            "--cluster-name",
            CLUSTER,
            "--principal-arn",
            &viewer.arn,
            "--policy-arn",
            &format!("{POLICY}AmazonEKSViewPolicy"),
            "--access-scope",
            "type=namespace,namespaces=team",
        ],
    );
    let pods = f.ok(&viewer, &["get", "pods", "-n", "team", "-o", "name"]);
    assert_eq!(pods.trim(), "pod/web");
    let create = f.fails(
        &viewer,
        &[
            "run",
            "other",
            "-n",
            "team",
            "--image=nginx",
            "--restart=Never",
        ],
    );
    assert!(
        create.contains(&format!(
            "Error from server (Forbidden): pods is forbidden: User \"{}\" cannot create resource \"pods\" in API group \"\" in the namespace \"team\"",
            viewer.arn
        )),
        "{create}"
    );
    let elsewhere = f.fails(&viewer, &["get", "pods", "-n", "other"]);
    assert!(
        elsewhere.contains(&format!(
            "Error from server (Forbidden): pods is forbidden: User \"{}\" cannot list resource \"pods\" in API group \"\" in the namespace \"other\"",
            viewer.arn
        )),
        "{elsewhere}"
    );

    // A principal with no mapping is not authenticated, as on EKS.
    let refused = f.fails(&nobody, &["get", "pods", "-n", "team"]);
    assert!(
        refused.contains("error: You must be logged in to the server (Unauthorized)"),
        "{refused}"
    );

    // aws-auth maps a principal to a group; a RoleBinding in `team` lets that group read pods.
    f.apply(
        &admin,
        &format!(
            r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: aws-auth
  namespace: kube-system
data:
  mapUsers: |
    - userarn: {}
      username: mapped-user
      groups:
        - pod-readers
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: pod-reader
  namespace: team
rules:
  - apiGroups: [""]
    resources: ["pods"]
    verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: pod-readers
  namespace: team
subjects:
  - kind: Group
    name: pod-readers
    apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: Role
  name: pod-reader
  apiGroup: rbac.authorization.k8s.io
"#,
            mapped.arn
        ),
    );
    f.eventually("the aws-auth mapping and its RoleBinding", || {
        f.kubectl(&mapped, &["get", "pods", "-n", "team"])
            .status
            .success()
    });
    let whoami = f.ok(&mapped, &["auth", "whoami", "-o", "json"]);
    let whoami: serde_json::Value = serde_json::from_str(&whoami).unwrap();
    assert_eq!(whoami["status"]["userInfo"]["username"], "mapped-user");
    assert!(
        whoami["status"]["userInfo"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == "pod-readers"),
        "{whoami:#}"
    );
    let mapped_elsewhere = f.fails(&mapped, &["get", "pods", "-n", "other"]);
    assert!(
        mapped_elsewhere.contains(
            "pods is forbidden: User \"mapped-user\" cannot list resource \"pods\" in API group \"\" in the namespace \"other\""
        ),
        "{mapped_elsewhere}"
    );

    // Deleting the viewer's entry takes its access away at once: 401.
    f.aws_ok(
        &admin,
        &[
            "eks",
            "delete-access-entry",
            "--cluster-name",
            CLUSTER,
            "--principal-arn",
            &viewer.arn,
        ],
    );
    let gone = f.fails(&viewer, &["get", "pods", "-n", "team"]);
    assert!(gone.contains("(Unauthorized)"), "{gone}");
}
