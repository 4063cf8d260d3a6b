//! The `localfargate` command.

mod inputs;
mod manifests;
mod plan_cmd;
mod render;
mod yaml;

use clap::{Parser, Subcommand};

/// EKS on Fargate on one machine: plan where pods land, at what size and cost, before deploying.
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
}

fn main() {
    let cli = Cli::parse();
    let status = match &cli.command {
        Command::Plan(args) => plan_cmd::run(args),
    };
    match status {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
