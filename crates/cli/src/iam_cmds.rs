//! eksctl's IRSA commands, against localfargate's EKS, IAM and STS endpoint and the cluster's
//! Kubernetes API: `utils associate-iam-oidc-provider` registers the cluster's OIDC issuer as an
//! IAM OIDC provider; `iamserviceaccount create` makes a role that trusts that provider for one
//! service account, attaches policies to it, and creates the ServiceAccount annotated with
//! `eks.amazonaws.com/role-arn` (which the pod identity webhook's mutation then acts on).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use base64::Engine;
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Status};
use serde_json::json;

use crate::eks_client::{AwsError, EksClient, xml_text};
use crate::eks_cmds::Target;

/// IAM is global: its requests are signed for us-east-1 (aws-cn and GovCloud have their own).
const IAM_REGION: &str = "us-east-1";
const IAM_VERSION: &str = "2010-05-08";

#[derive(Debug, Subcommand)]
pub enum UtilsCmd {
    /// Register the cluster's OIDC issuer as an IAM OIDC provider (client ID sts.amazonaws.com),
    /// as eksctl does; without --approve, only say what would be done.
    AssociateIamOidcProvider {
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        approve: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum IamServiceAccountCmd {
    /// An IAM role trusting the cluster's OIDC provider for NAMESPACE/NAME, the policies
    /// attached to it, and the ServiceAccount annotated with its ARN.
    Create(CreateArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(long)]
    pub cluster: String,
    #[arg(long)]
    pub name: String,
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Managed policies to attach (repeatable).
    #[arg(long = "attach-policy-arn", required = true)]
    pub attach_policy_arns: Vec<String>,
    /// The role's name (default: eksctl's stack-derived
    /// `eksctl-CLUSTER-addon-iamserviceaccount-NAMESPACE-NAME`).
    #[arg(long)]
    pub role_name: Option<String>,
    /// Make the role only, not the ServiceAccount.
    #[arg(long)]
    pub role_only: bool,
    /// Annotate a ServiceAccount that already exists (else it is left out, as eksctl does).
    #[arg(long)]
    pub override_existing_serviceaccounts: bool,
    /// Do it (without it, only say what would be done).
    #[arg(long)]
    pub approve: bool,
}

/// What the commands need of a cluster: its issuer, CA, Kubernetes endpoint and account.
struct ClusterFacts {
    issuer: String,
    ca_pem: Vec<u8>,
    endpoint: String,
    account: String,
    partition: String,
}

impl ClusterFacts {
    fn read(client: &EksClient, cluster: &str) -> Result<ClusterFacts> {
        let described = client.call("GET", &["clusters", cluster], None)?;
        let c = &described["cluster"];
        let issuer = c["identity"]["oidc"]["issuer"]
            .as_str()
            .with_context(|| format!("cluster {cluster} has no OIDC issuer"))?
            .to_string();
        let ca_pem = base64::engine::general_purpose::STANDARD
            .decode(c["certificateAuthority"]["data"].as_str().unwrap_or(""))
            .context("the cluster's certificate authority is not base64")?;
        let arn = c["arn"].as_str().unwrap_or("");
        let parts: Vec<&str> = arn.split(':').collect();
        let (partition, account) = match parts.as_slice() {
            ["arn", partition, "eks", _, account, ..] => {
                (partition.to_string(), account.to_string())
            }
            _ => bail!("cluster {cluster} has no ARN to take its account from"),
        };
        Ok(ClusterFacts {
            issuer,
            ca_pem,
            endpoint: c["endpoint"].as_str().unwrap_or("").to_string(),
            account,
            partition,
        })
    }

    /// The issuer without its scheme: the provider's URL in IAM's ARNs and condition keys.
    fn issuer_host_path(&self) -> &str {
        self.issuer.trim_start_matches("https://")
    }

    fn provider_arn(&self) -> String {
        format!(
            "arn:{}:iam::{}:oidc-provider/{}",
            self.partition,
            self.account,
            self.issuer_host_path()
        )
    }

    /// The SHA-1 fingerprint of the issuer's root CA, the thumbprint eksctl records: the
    /// cluster's CA, which signs the issuer's certificate.
    fn thumbprint(&self) -> Result<String> {
        let pem = String::from_utf8_lossy(&self.ca_pem);
        let body: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .concat();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .context("the cluster's CA is not a PEM certificate")?;
        Ok(hex::encode(sha1_digest(&der)))
    }
}

fn sha1_digest(bytes: &[u8]) -> Vec<u8> {
    use sha1::Digest;
    sha1::Sha1::digest(bytes).to_vec()
}

fn iam(client: &EksClient, params: &[(&str, &str)]) -> Result<String> {
    let mut all = vec![("Version", IAM_VERSION)];
    all.extend_from_slice(params);
    client.query("iam", IAM_REGION, &all)
}

fn is_code(e: &anyhow::Error, code: &str) -> bool {
    e.downcast_ref::<AwsError>().is_some_and(|a| a.code == code)
}

pub fn utils(cmd: &UtilsCmd, t: &Target) -> Result<i32> {
    let UtilsCmd::AssociateIamOidcProvider { cluster, approve } = cmd;
    let client = t.client()?;
    let facts = ClusterFacts::read(&client, cluster)?;
    let arn = facts.provider_arn();
    match iam(
        &client,
        &[
            ("Action", "GetOpenIDConnectProvider"),
            ("OpenIDConnectProviderArn", &arn),
        ],
    ) {
        Ok(_) => {
            eprintln!(
                "IAM Open ID Connect provider is already associated with cluster \"{cluster}\" in \"{}\"",
                t.region
            );
            return Ok(0);
        }
        Err(e) if is_code(&e, "NoSuchEntity") => {}
        Err(e) => return Err(e),
    }
    if !approve {
        eprintln!(
            "(plan) would create IAM Open ID Connect provider for cluster \"{cluster}\" in \"{}\"",
            t.region
        );
        eprintln!("no changes were applied, run again with '--approve' to apply the changes");
        return Ok(0);
    }
    let thumbprint = facts.thumbprint()?;
    iam(
        &client,
        &[
            ("Action", "CreateOpenIDConnectProvider"),
            ("Url", &facts.issuer),
            ("ClientIDList.member.1", "sts.amazonaws.com"),
            ("ThumbprintList.member.1", &thumbprint),
        ],
    )?;
    eprintln!(
        "created IAM Open ID Connect provider for cluster \"{cluster}\" in \"{}\"",
        t.region
    );
    Ok(0)
}

pub fn iam_service_account(cmd: &IamServiceAccountCmd, t: &Target) -> Result<i32> {
    let IamServiceAccountCmd::Create(args) = cmd;
    let client = t.client()?;
    let facts = ClusterFacts::read(&client, &args.cluster)?;
    let provider = facts.provider_arn();
    match iam(
        &client,
        &[
            ("Action", "GetOpenIDConnectProvider"),
            ("OpenIDConnectProviderArn", &provider),
        ],
    ) {
        Ok(_) => {}
        Err(e) if is_code(&e, "NoSuchEntity") => bail!(
            "unable to create iamserviceaccount(s) without IAM OIDC provider enabled (run `localfargate utils associate-iam-oidc-provider --cluster {} --approve`)",
            args.cluster
        ),
        Err(e) => return Err(e),
    }
    let kube = KubeClient::new(&facts, &client, &args.cluster)?;
    let existing = !args.role_only && kube.service_account(&args.namespace, &args.name)?.is_some();
    if existing && !args.override_existing_serviceaccounts {
        eprintln!(
            "1 existing iamserviceaccount(s) ({}/{}) will be excluded",
            args.namespace, args.name
        );
        return Ok(0);
    }
    let role_name = args
        .role_name
        .clone()
        .unwrap_or_else(|| default_role_name(&args.cluster, &args.namespace, &args.name));
    if !args.approve {
        eprintln!(
            "(plan) would create IAM role {role_name} for serviceaccount \"{}/{}\" and attach {}",
            args.namespace,
            args.name,
            args.attach_policy_arns.join(", ")
        );
        eprintln!("no changes were applied, run again with '--approve' to apply the changes");
        return Ok(0);
    }
    let issuer = facts.issuer_host_path();
    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": provider},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{issuer}:sub"): format!("system:serviceaccount:{}:{}", args.namespace, args.name),
                format!("{issuer}:aud"): "sts.amazonaws.com",
            }},
        }],
    })
    .to_string();
    let created = iam(
        &client,
        &[
            ("Action", "CreateRole"),
            ("RoleName", &role_name),
            ("AssumeRolePolicyDocument", &trust),
        ],
    )?;
    let role_arn = xml_text(&created, "Arn").context("CreateRole answered no role ARN")?;
    for policy in &args.attach_policy_arns {
        if let Err(e) = iam(
            &client,
            &[
                ("Action", "AttachRolePolicy"),
                ("RoleName", &role_name),
                ("PolicyArn", policy),
            ],
        ) {
            // Nothing half-made: the role goes with the attachments made so far.
            undo_role(&client, &role_name, &args.attach_policy_arns);
            return Err(e.context(format!("attaching {policy} to {role_name}")));
        }
    }
    eprintln!("created IAM role {role_arn}");
    if args.role_only {
        return Ok(0);
    }
    if let Err(e) = kube.annotate(&args.namespace, &args.name, &role_arn, existing) {
        undo_role(&client, &role_name, &args.attach_policy_arns);
        return Err(e);
    }
    eprintln!(
        "created serviceaccount \"{}/{}\" annotated with eks.amazonaws.com/role-arn",
        args.namespace, args.name
    );
    Ok(0)
}

/// IAM's longest role name.
const MAX_ROLE_NAME: usize = 64;

/// eksctl's stack-derived role name; over IAM's 64 characters (CloudFormation shortens eksctl's
/// names itself), its first 55 characters and 8 hex digits of the full name's SHA-1, so long
/// names stay distinct.
fn default_role_name(cluster: &str, namespace: &str, name: &str) -> String {
    let full = format!("eksctl-{cluster}-addon-iamserviceaccount-{namespace}-{name}");
    if full.len() <= MAX_ROLE_NAME {
        return full;
    }
    let digest = hex::encode(sha1_digest(full.as_bytes()));
    // Names are ASCII (Kubernetes and EKS names), so a byte cut is a character cut.
    format!("{}-{}", &full[..MAX_ROLE_NAME - 9], &digest[..8])
}

fn undo_role(client: &EksClient, role: &str, policies: &[String]) {
    for policy in policies {
        let _ = iam(
            client,
            &[
                ("Action", "DetachRolePolicy"),
                ("RoleName", role),
                ("PolicyArn", policy),
            ],
        );
    }
    let _ = iam(client, &[("Action", "DeleteRole"), ("RoleName", role)]);
}

/// The cluster's Kubernetes API with the static token `localfargate kubeconfig` hands out.
struct KubeClient {
    http: reqwest::blocking::Client,
    endpoint: String,
    token: String,
}

impl KubeClient {
    fn new(facts: &ClusterFacts, client: &EksClient, cluster: &str) -> Result<KubeClient> {
        let token = client.call(
            "GET",
            &["_localfargate", "clusters", cluster, "token"],
            None,
        )?;
        let ca = reqwest::Certificate::from_pem(&facts.ca_pem)
            .context("the cluster's CA is not a PEM certificate")?;
        let http = reqwest::blocking::Client::builder()
            .tls_certs_only([ca])
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(KubeClient {
            http,
            endpoint: facts.endpoint.clone(),
            token: token["token"].as_str().unwrap_or("").to_string(),
        })
    }

    fn url(&self, namespace: &str, name: Option<&str>) -> String {
        match name {
            Some(n) => format!(
                "{}/api/v1/namespaces/{namespace}/serviceaccounts/{n}",
                self.endpoint
            ),
            None => format!(
                "{}/api/v1/namespaces/{namespace}/serviceaccounts",
                self.endpoint
            ),
        }
    }

    fn service_account(&self, namespace: &str, name: &str) -> Result<Option<ServiceAccount>> {
        let response = self
            .http
            .get(self.url(namespace, Some(name)))
            .bearer_auth(&self.token)
            .send()
            .context("cannot reach the cluster's Kubernetes API")?;
        match response.status().as_u16() {
            404 => Ok(None),
            s if s < 300 => Ok(Some(response.json()?)),
            s => bail!(
                "reading serviceaccount {namespace}/{name}: {s} {}",
                response.text()?
            ),
        }
    }

    /// Create the ServiceAccount with the annotation, or (`existing`) merge it in.
    fn annotate(&self, namespace: &str, name: &str, role_arn: &str, existing: bool) -> Result<()> {
        let annotations = BTreeMap::from([(
            "eks.amazonaws.com/role-arn".to_string(),
            role_arn.to_string(),
        )]);
        let labels = BTreeMap::from([(
            "app.kubernetes.io/managed-by".to_string(),
            "eksctl".to_string(),
        )]);
        let request = if existing {
            // A merge patch is a JSON document, not an object of a type.
            self.http
                .patch(self.url(namespace, Some(name)))
                .header("content-type", "application/merge-patch+json")
                .body(
                    json!({"metadata": {"annotations": annotations, "labels": labels}}).to_string(),
                )
        } else {
            let account = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    namespace: Some(namespace.to_string()),
                    annotations: Some(annotations),
                    labels: Some(labels),
                    ..Default::default()
                },
                ..Default::default()
            };
            self.http
                .post(self.url(namespace, None))
                .header("content-type", "application/json")
                .body(serde_json::to_string(&account)?)
        };
        let response = request
            .bearer_auth(&self.token)
            .send()
            .context("cannot reach the cluster's Kubernetes API")?;
        let status = response.status().as_u16();
        if status >= 300 {
            let refusal = response.json::<Status>().ok().and_then(|s| s.message);
            bail!(
                "serviceaccount {namespace}/{name}: {}",
                refusal.as_deref().unwrap_or("refused")
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_role_names_fit_iams_limit_and_stay_distinct() {
        assert_eq!(
            default_role_name("dev", "default", "app"),
            "eksctl-dev-addon-iamserviceaccount-default-app"
        );
        let long = default_role_name("dev", "kube-system", "aws-load-balancer-controller");
        let other = default_role_name("dev", "kube-system", "aws-load-balancer-controllex");
        assert_eq!(long.len(), MAX_ROLE_NAME);
        assert!(long.starts_with("eksctl-dev-addon-iamserviceaccount-kube-system-aws-lo"));
        assert_ne!(long, other);
    }
}
