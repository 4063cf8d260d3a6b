//! The `localfargate` command.

mod eks_client;
mod eks_cmds;
mod iam_cmds;
mod image_cmd;
mod inputs;
mod manifests;
mod network;
mod plan_cmd;
mod render;
mod up;
mod yaml;

use clap::{Parser, Subcommand};

/// mimalloc: the server churns through many short-lived JSON values, and the system allocator
/// kept far more memory than was live (measured with scripts/bench-pods).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
mod memory;

/// EKS on Fargate on one machine: the EKS API, and a plan of where pods land, at what size and cost.
#[derive(Debug, Parser)]
#[command(name = "localfargate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show where every workload's pods would land on EKS Fargate, at what size, what it costs, and why.
    Plan(plan_cmd::PlanArgs),
    /// Start the EKS API server (with its store and lifecycle controller).
    Up(up::UpArgs),
    /// Load, list and remove container images in the local image store (like `kind load`).
    Image {
        #[command(subcommand)]
        cmd: image_cmd::ImageCmd,
        #[command(flatten)]
        store: image_cmd::StoreArgs,
    },
    /// Print the VPC model that clusters and Fargate profiles take subnets from.
    Network(network::NetworkArgs),
    /// Create, list and delete clusters through the EKS API.
    Cluster {
        #[command(subcommand)]
        cmd: eks_cmds::ClusterCmd,
        #[command(flatten)]
        target: eks_cmds::Target,
    },
    /// Create, list and delete Fargate profiles through the EKS API (eksctl's `fargateprofile`).
    Profile {
        #[command(subcommand)]
        cmd: eks_cmds::ProfileCmd,
        #[command(flatten)]
        target: eks_cmds::Target,
    },
    /// Print a kubeconfig for a cluster's Kubernetes API (YAML; -o json for JSON).
    Kubeconfig {
        #[command(flatten)]
        args: eks_cmds::KubeconfigArgs,
        #[command(flatten)]
        target: eks_cmds::Target,
    },
    /// eksctl's IAM roles for service accounts: a role trusting the cluster's OIDC provider for a
    /// ServiceAccount, its policies, and the annotated ServiceAccount.
    Iamserviceaccount {
        #[command(subcommand)]
        cmd: iam_cmds::IamServiceAccountCmd,
        #[command(flatten)]
        target: eks_cmds::Target,
    },
    /// eksctl's utilities: `associate-iam-oidc-provider`.
    Utils {
        #[command(subcommand)]
        cmd: iam_cmds::UtilsCmd,
        #[command(flatten)]
        target: eks_cmds::Target,
    },
    /// Create what an eksctl ClusterConfig describes (cluster, Fargate profiles, managed node
    /// groups), waiting for each to be ACTIVE.
    Apply {
        #[command(flatten)]
        args: eks_cmds::ApplyArgs,
        #[command(flatten)]
        target: eks_cmds::Target,
    },
}

fn exit_code(ok: bool) -> i32 {
    if ok { 0 } else { 1 }
}

fn main() {
    // The container shim (hidden): forked by the process runtime, it must start before
    // anything else (no threads, no logging setup).
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("shim") {
        std::process::exit(localfargate_runtime::process::shim::main(&argv[2..]));
    }
    // The built-in CoreDNS: `/coredns -conf /etc/coredns/Corefile` in the CoreDNS pods (the
    // binary as argv[0] `coredns`), or `localfargate coredns -conf FILE`; CoreDNS's flags.
    let invoked_as = argv.first().map(|a| a.rsplit('/').next().unwrap_or(a));
    if invoked_as == Some("coredns") {
        std::process::exit(exit_code(localfargate_cluster_dns::coredns::main(
            &argv[1..],
        )));
    }
    if argv.get(1).map(String::as_str) == Some("coredns") {
        std::process::exit(exit_code(localfargate_cluster_dns::coredns::main(
            &argv[2..],
        )));
    }
    memory::return_freed_memory_promptly();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOCALFARGATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let status = match &cli.command {
        Command::Plan(args) => plan_cmd::run(args),
        Command::Up(args) => up::run(args),
        Command::Network(args) => network::run(args),
        Command::Image { cmd, store } => image_cmd::run(cmd, store),
        Command::Cluster { cmd, target } => eks_cmds::cluster(cmd, target),
        Command::Profile { cmd, target } => eks_cmds::profile(cmd, target),
        Command::Apply { args, target } => eks_cmds::apply(args, target),
        Command::Kubeconfig { args, target } => eks_cmds::kubeconfig(args, target),
        Command::Iamserviceaccount { cmd, target } => iam_cmds::iam_service_account(cmd, target),
        Command::Utils { cmd, target } => iam_cmds::utils(cmd, target),
    };
    match status {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
