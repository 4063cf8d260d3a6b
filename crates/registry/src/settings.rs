//! What the API server's registry is configured with, from `localfargate up`'s flags: the
//! region, the profile selection rule Fargate's webhook applies, and the VPC model. The
//! controllers' own knobs are `localfargate_controllers::ControllerSettings`.

use localfargate_core::SelectionRule;
use localfargate_core::eks::Network;

#[derive(Debug, Clone)]
pub struct Settings {
    pub region: String,
    /// Which profile wins when several match (AWS docs: alphabetical `name`).
    pub selection_rule: SelectionRule,
    /// The VPC model whose subnets Fargate pods get their IPs from.
    pub network: Network,
    /// `up --pod-aws-endpoint`: the EKS API's own address, which the pod identity webhook's
    /// mutation points pods' `AWS_ENDPOINT_URL` at (through the pod bridge; docs/irsa.md).
    pub pod_aws_endpoint: Option<std::net::SocketAddr>,
}

impl Settings {
    pub fn new(region: &str) -> Self {
        Settings {
            region: region.to_string(),
            selection_rule: SelectionRule::Name,
            network: Network::default_for(region),
            pod_aws_endpoint: None,
        }
    }

    /// `ec2.internal` in us-east-1, `<region>.compute.internal` elsewhere.
    pub fn dns_suffix(&self) -> String {
        if self.region == "us-east-1" {
            "ec2.internal".to_string()
        } else {
            format!("{}.compute.internal", self.region)
        }
    }
}
