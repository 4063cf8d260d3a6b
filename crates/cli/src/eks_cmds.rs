//! eksctl-shaped commands over the EKS API: `cluster`, `profile` and `apply -f cluster.yaml`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::eks_client::{AwsError, EksClient, resolve_endpoint};
use crate::inputs;

const DEFAULT_CLUSTER_ROLE: &str = "arn:aws:iam::000000000000:role/localfargate-cluster";
const DEFAULT_POD_ROLE: &str = "arn:aws:iam::000000000000:role/localfargate-pod-execution";
const DEFAULT_NODE_ROLE: &str = "arn:aws:iam::000000000000:role/localfargate-node";
/// The default VPC model's subnets (docs/eks-api.md).
const DEFAULT_SUBNETS: [&str; 6] = [
    "subnet-0a1b2c3d4e5f60001",
    "subnet-0a1b2c3d4e5f60002",
    "subnet-0a1b2c3d4e5f60003",
    "subnet-0a1b2c3d4e5f60004",
    "subnet-0a1b2c3d4e5f60005",
    "subnet-0a1b2c3d4e5f60006",
];

/// The subnets of the server's first VPC (`up --network`), or the default model's when the
/// server does not say (another EKS endpoint).
fn server_subnets(client: &EksClient) -> Vec<String> {
    client
        .call("GET", &["_localfargate", "network"], None)
        .ok()
        .and_then(|n| {
            let ids: Vec<String> = n["vpcs"][0]["subnets"]
                .as_array()?
                .iter()
                .filter_map(|s| s["subnetId"].as_str().map(str::to_string))
                .collect();
            (!ids.is_empty()).then_some(ids)
        })
        .unwrap_or_else(|| DEFAULT_SUBNETS.iter().map(|s| s.to_string()).collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub struct Target {
    /// EKS API endpoint; else AWS_ENDPOINT_URL_EKS, AWS_ENDPOINT_URL, or http://127.0.0.1:4566.
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
    #[arg(
        long,
        global = true,
        env = "AWS_DEFAULT_REGION",
        default_value = "us-east-1"
    )]
    pub region: String,
    #[arg(short = 'o', long, global = true, value_enum, default_value = "table")]
    pub output: Output,
    /// How long to wait for a resource to become ACTIVE or go away, in seconds.
    #[arg(long, global = true, default_value_t = 1500)]
    pub timeout: u64,
}

impl Target {
    pub(crate) fn client(&self) -> Result<EksClient> {
        EksClient::new(
            resolve_endpoint(self.endpoint_url.as_deref()),
            self.region.clone(),
        )
    }
}

#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Create a cluster and wait for it to be ACTIVE.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: Option<String>,
        #[arg(long, default_value = DEFAULT_CLUSTER_ROLE)]
        role_arn: String,
        /// Subnet IDs (default: every subnet of the default VPC model).
        #[arg(long, value_delimiter = ',')]
        subnets: Vec<String>,
        #[arg(long)]
        no_wait: bool,
    },
    /// List clusters, or show one.
    Get {
        #[arg(long)]
        name: Option<String>,
    },
    /// Delete a cluster.
    Delete {
        #[arg(long)]
        name: String,
        /// Wait until it is gone.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProfileCmd {
    /// Create a Fargate profile with one selector and wait for it to be ACTIVE.
    Create {
        #[arg(long)]
        cluster: String,
        /// Profile name (default: fp- and 8 hex characters, as eksctl does).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        namespace: String,
        /// Selector labels, k=v,k2=v2.
        #[arg(short = 'l', long, value_delimiter = ',')]
        labels: Vec<String>,
        #[arg(long, default_value = DEFAULT_POD_ROLE)]
        pod_execution_role_arn: String,
        #[arg(long, value_delimiter = ',')]
        subnets: Vec<String>,
        /// Tags, k=v,k2=v2.
        #[arg(short = 't', long, value_delimiter = ',')]
        tags: Vec<String>,
        #[arg(long)]
        no_wait: bool,
    },
    /// List a cluster's Fargate profiles, or show one.
    Get {
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// Delete a Fargate profile.
    Delete {
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// eksctl ClusterConfig: the cluster, its fargateProfiles and managedNodeGroups.
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
}

fn pairs(items: &[String], what: &str) -> Result<BTreeMap<String, String>> {
    items
        .iter()
        .filter(|i| !i.is_empty())
        .map(|i| match i.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("{what} {i:?}: expected key=value"),
        })
        .collect()
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<AwsError>()
        .is_some_and(|e| e.code == "ResourceNotFoundException")
}

fn print(output: Output, value: &Value, table: impl FnOnce() -> String) -> Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Yaml => print!("{}", serde_yaml::to_string(value)?),
        Output::Table => print!("{}", table()),
    }
    Ok(())
}

fn columns(rows: &[Vec<String>]) -> String {
    let mut widths = vec![0; rows.first().map_or(0, Vec::len)];
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

fn cluster_table(clusters: &[Value]) -> String {
    let mut rows = vec![vec![
        "NAME".into(),
        "VERSION".into(),
        "STATUS".into(),
        "ENDPOINT".into(),
    ]];
    for c in clusters {
        let s = |k: &str| c[k].as_str().unwrap_or("-").to_string();
        rows.push(vec![s("name"), s("version"), s("status"), s("endpoint")]);
    }
    columns(&rows)
}

/// A Fargate profile as `eksctl get fargateprofile -o yaml|json` prints it.
fn eksctl_profile(p: &Value) -> Value {
    let selectors: Vec<Value> = p["selectors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let mut out = json!({"namespace": s["namespace"]});
            if s["labels"].as_object().is_some_and(|l| !l.is_empty()) {
                out["labels"] = s["labels"].clone();
            }
            out
        })
        .collect();
    let mut out = json!({
        "name": p["fargateProfileName"],
        "podExecutionRoleARN": p["podExecutionRoleArn"],
        "selectors": selectors,
        "status": p["status"],
        "subnets": p["subnets"].as_array().cloned().unwrap_or_default(),
    });
    if p["tags"].as_object().is_some_and(|t| !t.is_empty()) {
        out["tags"] = p["tags"].clone();
    }
    out
}

fn profile_table(profiles: &[Value]) -> String {
    let mut rows = vec![vec![
        "NAME".into(),
        "SELECTOR_NAMESPACE".into(),
        "SELECTOR_LABELS".into(),
        "POD_EXECUTION_ROLE_ARN".into(),
        "SUBNETS".into(),
        "STATUS".into(),
    ]];
    for p in profiles {
        for sel in p["selectors"].as_array().into_iter().flatten() {
            let labels: Vec<String> = sel["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            let subnets: Vec<&str> = p["subnets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            rows.push(vec![
                p["fargateProfileName"].as_str().unwrap_or("").to_string(),
                sel["namespace"].as_str().unwrap_or("").to_string(),
                if labels.is_empty() {
                    "<none>".to_string()
                } else {
                    labels.join(",")
                },
                p["podExecutionRoleArn"].as_str().unwrap_or("").to_string(),
                subnets.join(","),
                p["status"].as_str().unwrap_or("").to_string(),
            ]);
        }
    }
    columns(&rows)
}

fn wait_status(
    client: &EksClient,
    t: &Target,
    what: &str,
    path: &[&str],
    member: &str,
    want: &str,
) -> Result<()> {
    client.wait(what, Duration::from_secs(t.timeout), || {
        let v = client.call("GET", path, None)?;
        let status = v[member]["status"].as_str().unwrap_or("").to_string();
        match status.as_str() {
            s if s == want => Ok(None),
            "CREATE_FAILED" | "DELETE_FAILED" | "FAILED" => bail!("{what}: status {status}"),
            _ => Ok(Some(status)),
        }
    })
}

fn wait_gone(client: &EksClient, t: &Target, what: &str, path: &[&str]) -> Result<()> {
    client.wait(what, Duration::from_secs(t.timeout), || {
        match client.call("GET", path, None) {
            Ok(v) => Ok(Some(
                v.as_object()
                    .and_then(|o| o.values().next())
                    .and_then(|r| r["status"].as_str())
                    .unwrap_or("")
                    .to_string(),
            )),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    })
}

pub fn cluster(cmd: &ClusterCmd, t: &Target) -> Result<i32> {
    let client = t.client()?;
    match cmd {
        ClusterCmd::Create {
            name,
            version,
            role_arn,
            subnets,
            no_wait,
        } => {
            let subnets: Vec<String> = if subnets.is_empty() {
                server_subnets(&client)
            } else {
                subnets.clone()
            };
            let mut body = json!({"name": name, "roleArn": role_arn, "resourcesVpcConfig": {"subnetIds": subnets}});
            if let Some(v) = version {
                body["version"] = json!(v);
            }
            client.call("POST", &["clusters"], Some(&body))?;
            eprintln!("creating cluster {name} on {}", client.endpoint());
            if !no_wait {
                wait_status(
                    &client,
                    t,
                    &format!("cluster {name} to be ACTIVE"),
                    &["clusters", name],
                    "cluster",
                    "ACTIVE",
                )?;
            }
            let c = client.call("GET", &["clusters", name], None)?;
            print(t.output, &c["cluster"], || {
                cluster_table(&[c["cluster"].clone()])
            })?;
        }
        ClusterCmd::Get { name } => {
            let names = match name {
                Some(n) => vec![n.clone()],
                None => client.list_all(&["clusters"], "clusters")?,
            };
            let clusters: Vec<Value> = names
                .iter()
                .map(|n| {
                    client
                        .call("GET", &["clusters", n], None)
                        .map(|v| v["cluster"].clone())
                })
                .collect::<Result<_>>()?;
            let value = if name.is_some() {
                clusters[0].clone()
            } else {
                json!(clusters)
            };
            print(t.output, &value, || cluster_table(&clusters))?;
        }
        ClusterCmd::Delete { name, wait } => {
            client.call("DELETE", &["clusters", name], None)?;
            eprintln!("deleting cluster {name}");
            if *wait {
                wait_gone(
                    &client,
                    t,
                    &format!("cluster {name} to be deleted"),
                    &["clusters", name],
                )?;
            }
        }
    }
    Ok(0)
}

fn create_profile(
    client: &EksClient,
    t: &Target,
    cluster: &str,
    body: &Value,
    wait: bool,
) -> Result<()> {
    let name = body["fargateProfileName"]
        .as_str()
        .unwrap_or("")
        .to_string();
    client.call(
        "POST",
        &["clusters", cluster, "fargate-profiles"],
        Some(body),
    )?;
    eprintln!("creating Fargate profile {name} on cluster {cluster}");
    if wait {
        wait_status(
            client,
            t,
            &format!("Fargate profile {name} to be ACTIVE"),
            &["clusters", cluster, "fargate-profiles", &name],
            "fargateProfile",
            "ACTIVE",
        )?;
    }
    Ok(())
}

pub fn profile(cmd: &ProfileCmd, t: &Target) -> Result<i32> {
    let client = t.client()?;
    match cmd {
        ProfileCmd::Create {
            cluster,
            name,
            namespace,
            labels,
            pod_execution_role_arn,
            subnets,
            tags,
            no_wait,
        } => {
            let name = name
                .clone()
                .unwrap_or_else(|| format!("fp-{}", &uuid_hex()[..8]));
            let mut selector = json!({"namespace": namespace});
            let labels = pairs(labels, "label")?;
            if !labels.is_empty() {
                selector["labels"] = json!(labels);
            }
            let mut body = json!({"fargateProfileName": name, "podExecutionRoleArn": pod_execution_role_arn, "selectors": [selector]});
            if !subnets.is_empty() {
                body["subnets"] = json!(subnets);
            }
            let tags = pairs(tags, "tag")?;
            if !tags.is_empty() {
                body["tags"] = json!(tags);
            }
            create_profile(&client, t, cluster, &body, !no_wait)?;
            let p = client.call(
                "GET",
                &["clusters", cluster, "fargate-profiles", &name],
                None,
            )?;
            print(t.output, &p["fargateProfile"], || {
                profile_table(&[p["fargateProfile"].clone()])
            })?;
        }
        ProfileCmd::Get { cluster, name } => {
            let names = match name {
                Some(n) => vec![n.clone()],
                None => client.list_all(
                    &["clusters", cluster, "fargate-profiles"],
                    "fargateProfileNames",
                )?,
            };
            let profiles: Vec<Value> = names
                .iter()
                .map(|n| {
                    client
                        .call("GET", &["clusters", cluster, "fargate-profiles", n], None)
                        .map(|v| v["fargateProfile"].clone())
                })
                .collect::<Result<_>>()?;
            // eksctl's shape: always a list, `name`, `podExecutionRoleARN`, `selectors`,
            // `status`, `subnets` (and `tags` when there are any).
            let value = json!(profiles.iter().map(eksctl_profile).collect::<Vec<_>>());
            print(t.output, &value, || profile_table(&profiles))?;
        }
        ProfileCmd::Delete {
            cluster,
            name,
            wait,
        } => {
            client.call(
                "DELETE",
                &["clusters", cluster, "fargate-profiles", name],
                None,
            )?;
            eprintln!("deleting Fargate profile {name} on cluster {cluster}");
            if *wait {
                wait_gone(
                    &client,
                    t,
                    &format!("Fargate profile {name} to be deleted"),
                    &["clusters", cluster, "fargate-profiles", name],
                )?;
            }
        }
    }
    Ok(0)
}

fn uuid_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Create what the ClusterConfig describes and is not there yet, waiting for each to be ACTIVE.
pub fn apply(args: &ApplyArgs, t: &Target) -> Result<i32> {
    let config = inputs::load(Some(&args.file), &[])?;
    for w in &config.warnings {
        eprintln!("Warning: {w}");
    }
    let Some(name) = config.name.clone() else {
        bail!("{}: metadata.name is required", args.file.display());
    };
    let target = Target {
        endpoint_url: t.endpoint_url.clone(),
        region: config.region.clone().unwrap_or_else(|| t.region.clone()),
        output: t.output,
        timeout: t.timeout,
    };
    let client = target.client()?;
    match client.call("GET", &["clusters", &name], None) {
        Ok(_) => eprintln!("cluster {name} exists"),
        Err(e) if is_not_found(&e) => {
            let body = json!({"name": name, "roleArn": DEFAULT_CLUSTER_ROLE, "resourcesVpcConfig": {"subnetIds": server_subnets(&client)}});
            client.call("POST", &["clusters"], Some(&body))?;
            eprintln!("creating cluster {name}");
        }
        Err(e) => return Err(e),
    }
    wait_status(
        &client,
        &target,
        &format!("cluster {name} to be ACTIVE"),
        &["clusters", &name],
        "cluster",
        "ACTIVE",
    )?;
    let existing = client.list_all(
        &["clusters", &name, "fargate-profiles"],
        "fargateProfileNames",
    )?;
    for p in &config.profiles {
        if existing.contains(&p.name) {
            eprintln!("Fargate profile {} exists", p.name);
            // One still CREATING blocks the next create: wait for it as for our own.
            wait_status(
                &client,
                &target,
                &format!("Fargate profile {} to be ACTIVE", p.name),
                &["clusters", &name, "fargate-profiles", &p.name],
                "fargateProfile",
                "ACTIVE",
            )?;
            continue;
        }
        let role = if p.pod_execution_role_arn.is_empty() {
            DEFAULT_POD_ROLE
        } else {
            &p.pod_execution_role_arn
        };
        let mut body = json!({"fargateProfileName": p.name, "podExecutionRoleArn": role, "selectors": p.selectors});
        if !p.subnets.is_empty() {
            body["subnets"] = json!(p.subnets);
        }
        if !p.tags.is_empty() {
            body["tags"] = json!(p.tags);
        }
        // One profile in flight per cluster: each waits for the one before.
        create_profile(&client, &target, &name, &body, true)?;
    }
    let existing = client.list_all(&["clusters", &name, "node-groups"], "nodegroups")?;
    let cluster = client.call("GET", &["clusters", &name], None)?;
    let subnets = cluster["cluster"]["resourcesVpcConfig"]["subnetIds"].clone();
    for g in &config.node_groups {
        if existing.contains(&g.name) {
            eprintln!("node group {} exists", g.name);
            continue;
        }
        let taints: Vec<Value> = g
            .taints
            .iter()
            .map(|taint| {
                let effect = match taint.kube_effect() {
                    "NoExecute" => "NO_EXECUTE",
                    "PreferNoSchedule" => "PREFER_NO_SCHEDULE",
                    _ => "NO_SCHEDULE",
                };
                json!({"key": taint.key, "value": taint.value, "effect": effect})
            })
            .collect();
        let body = json!({
            "nodegroupName": g.name, "nodeRole": DEFAULT_NODE_ROLE, "subnets": subnets,
            "instanceTypes": g.instance_types, "labels": g.labels, "taints": taints,
            "scalingConfig": {"minSize": g.desired_size.min(1), "maxSize": g.desired_size.max(1), "desiredSize": g.desired_size},
        });
        client.call("POST", &["clusters", &name, "node-groups"], Some(&body))?;
        eprintln!("creating node group {}", g.name);
        wait_status(
            &client,
            &target,
            &format!("node group {} to be ACTIVE", g.name),
            &["clusters", &name, "node-groups", &g.name],
            "nodegroup",
            "ACTIVE",
        )?;
    }
    let names = client.list_all(
        &["clusters", &name, "fargate-profiles"],
        "fargateProfileNames",
    )?;
    let profiles: Vec<Value> = names
        .iter()
        .map(|n| {
            client
                .call("GET", &["clusters", &name, "fargate-profiles", n], None)
                .map(|v| v["fargateProfile"].clone())
        })
        .collect::<Result<_>>()?;
    print(
        target.output,
        &json!({"cluster": cluster["cluster"], "fargateProfiles": profiles}),
        || {
            format!(
                "{}\n{}",
                cluster_table(&[cluster["cluster"].clone()]),
                profile_table(&profiles)
            )
        },
    )?;
    Ok(0)
}

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    #[arg(long)]
    pub cluster: String,
}

/// A kubeconfig for the cluster's Kubernetes API: its endpoint, its CA, its static token.
pub fn kubeconfig(args: &KubeconfigArgs, t: &Target) -> Result<i32> {
    let client = t.client()?;
    let cluster = client.call("GET", &["clusters", &args.cluster], None)?;
    let c = &cluster["cluster"];
    if c["status"] != "ACTIVE" {
        bail!(
            "cluster {} is {}, not ACTIVE: its Kubernetes API is not up yet",
            args.cluster,
            c["status"].as_str().unwrap_or("?")
        );
    }
    let token = client.call(
        "GET",
        &["_localfargate", "clusters", &args.cluster, "token"],
        None,
    )?;
    let name = &args.cluster;
    let user = format!("localfargate-{name}");
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {
            "server": c["endpoint"], "certificate-authority-data": c["certificateAuthority"]["data"]}}],
        "users": [{"name": user, "user": {"token": token["token"]}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
    });
    match t.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&config)?),
        _ => print!("{}", serde_yaml::to_string(&config)?),
    }
    Ok(0)
}
