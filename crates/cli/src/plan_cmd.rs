//! `localfargate plan`: read the inputs, let the core decide, render, and gate.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use localfargate_core::admission::ClaimState;
use localfargate_core::plan::{PlacementKind, PlanContext};
use localfargate_core::pricing::PriceTable;
use localfargate_core::{ProfileIndex, ProfileStatus, SelectionRule};

use crate::render::{self, Report};
use crate::{inputs, manifests, yaml};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// A workload Fargate matched but refuses.
    Refused,
    /// A workload no Fargate profile takes (it runs on EC2 or stays Pending).
    Unmatched,
    /// Any warning.
    Warning,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Rule {
    Name,
    Random,
    MostSpecific,
}

impl From<Rule> for SelectionRule {
    fn from(r: Rule) -> Self {
        match r {
            Rule::Name => SelectionRule::Name,
            Rule::Random => SelectionRule::Random,
            Rule::MostSpecific => SelectionRule::MostSpecific,
        }
    }
}

/// Exit status when a `--fail-on` condition is met.
pub const GATE_EXIT_CODE: i32 = 3;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// eksctl ClusterConfig YAML: its fargateProfiles, managedNodeGroups and nodeGroups.
    #[arg(long, value_name = "CLUSTER_CONFIG.yaml")]
    pub config: Option<PathBuf>,
    /// A Fargate profile as `aws eks describe-fargate-profile` prints it, or a CreateFargateProfile
    /// request; JSON or YAML, one profile or a list. Repeatable.
    #[arg(long = "profile", value_name = "PROFILE.json")]
    pub profiles: Vec<PathBuf>,
    /// Kubernetes manifests: files, directories (searched for .yaml, .yml, .json), or - for stdin.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Output,
    /// Exit with status 3 when any workload is refused, unmatched, or warned about.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        value_name = "refused,unmatched,warning"
    )]
    pub fail_on: Vec<FailOn>,
    /// Which profile wins when several match: name (current AWS docs), random (older AWS docs),
    /// most-specific (some guides).
    #[arg(long, value_enum, default_value = "name")]
    pub selection_rule: Rule,
    /// Region for prices; defaults to the ClusterConfig's, else us-east-1.
    #[arg(long)]
    pub region: Option<String>,
    /// Namespace for manifests that name none.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Price file (JSON or YAML) overriding or adding rates; see docs/pricing.md.
    #[arg(long, value_name = "PRICES.json")]
    pub prices: Option<PathBuf>,
}

/// Run the plan; returns the process exit status.
pub fn run(args: &PlanArgs) -> Result<i32> {
    let cluster = inputs::load(args.config.as_ref(), &args.profiles)?;
    let manifests = manifests::load(&args.files, &args.namespace)?;
    let region = args
        .region
        .clone()
        .or(cluster.region.clone())
        .unwrap_or_else(|| "us-east-1".to_string());
    let mut prices = PriceTable::builtin();
    if let Some(path) = &args.prices {
        let text = yaml::read(path)?;
        let docs = yaml::documents(path, &text)?;
        let doc = docs
            .into_iter()
            .next()
            .with_context(|| format!("{}: empty price file", path.display()))?;
        let table: PriceTable = yaml::typed(path, doc, "price file")?;
        prices = prices
            .merged(table)
            .with_context(|| format!("{}", path.display()))?;
    }
    let rates = prices.fargate(&region)?;

    let mut warnings = cluster.warnings.clone();
    if cluster.profiles.is_empty() {
        warnings.push(
            "no Fargate profiles given (--config or --profile): nothing can run on Fargate"
                .to_string(),
        );
    }
    for p in &cluster.profiles {
        if p.status != ProfileStatus::Active {
            warnings.push(format!(
                "profile {} is {}: only ACTIVE profiles take pods, so it is left out",
                p.name, p.status
            ));
        }
    }
    for g in &cluster.node_groups {
        if g.instance_type().is_none() {
            warnings.push(format!(
                "node group {}: instance type {} is not in the built-in catalogue; its capacity is not checked",
                g.name,
                g.instance_type_name()
            ));
        }
    }

    if manifests.workloads.is_empty() {
        warnings.push(format!(
            "no workloads in the inputs ({}): nothing was planned",
            args.files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let rule = SelectionRule::from(args.selection_rule);
    let index = ProfileIndex::new(cluster.profiles.clone());
    let claims = manifests.claims();
    let lookup = |ns: &str, name: &str| {
        claims
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
            .unwrap_or(ClaimState::Unknown)
    };
    let ctx = PlanContext {
        profiles: &index,
        node_groups: &cluster.node_groups,
        rule,
        region: &region,
        prices: &prices,
        rates,
        claims: &lookup,
    };
    let (workloads, totals) = ctx.plan(&manifests.workloads);
    let report = Report {
        cluster: cluster.name.clone(),
        region,
        selection_rule: rule.to_string(),
        workloads,
        totals,
        skipped: manifests.skipped,
        warnings,
    };
    let text = match args.output {
        Output::Table => render::table(&report),
        Output::Json => render::json(&report),
        Output::Markdown => render::markdown(&report),
    };
    let status = gate(&report, &args.fail_on);
    // A reader that stops early (`| head`) is not an error.
    match std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(status),
    }
}

fn gate(report: &Report, fail_on: &[FailOn]) -> i32 {
    let tripped = fail_on.iter().any(|f| match f {
        FailOn::Refused => report
            .workloads
            .iter()
            .any(|w| w.placement == PlacementKind::Refused),
        FailOn::Unmatched => report
            .workloads
            .iter()
            .any(|w| matches!(w.placement, PlacementKind::Ec2 | PlacementKind::Pending)),
        FailOn::Warning => {
            !report.warnings.is_empty() || report.workloads.iter().any(|w| !w.warnings.is_empty())
        }
    });
    if tripped { GATE_EXIT_CODE } else { 0 }
}
