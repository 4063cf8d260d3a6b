//! `localfargate network`: the VPC model clusters and profiles take their subnets from.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct NetworkArgs {
    /// A VPC model to check and print instead of the default one.
    #[arg(long, value_name = "FILE")]
    pub network: Option<PathBuf>,
    #[arg(long, default_value = "us-east-1", env = "AWS_DEFAULT_REGION")]
    pub region: String,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Output,
}

pub fn run(args: &NetworkArgs) -> Result<i32> {
    let network = crate::up::load_network(args.network.as_ref(), &args.region)?;
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&network)?),
        Output::Table => {
            println!(
                "{:<24}   {:<26}   {:<12}   {:<16}   PRIVATE",
                "VPC", "SUBNET", "ZONE", "CIDR"
            );
            for vpc in &network.vpcs {
                for s in &vpc.subnets {
                    println!(
                        "{:<24}   {:<26}   {:<12}   {:<16}   {}",
                        vpc.vpc_id, s.subnet_id, s.availability_zone, s.cidr_block, s.private
                    );
                }
            }
        }
    }
    Ok(0)
}
