"""Terraform (1.11, AWS provider 5.100 from the filesystem mirror) against the EKS resources of
this API: a cluster with control-plane logging, the coredns add-on with `computeType: Fargate`, a
node group with a launch template, an OIDC identity provider config and a Pod Identity
association — apply, update in place, `plan -detailed-exitcode` without changes, destroy leaving
nothing. Skipped, saying why, where terraform or the provider mirror is absent."""

import json

import pytest

from conftest import Server, terraform, terraform_missing


CONFIG = """
terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = "5.100.0" }
  }
}
variable "endpoint" {}
variable "log_types" {
  type    = list(string)
  default = ["api", "audit"]
}
variable "desired" {
  type    = number
  default = 1
}
variable "dns" {
  type    = any
  default = { computeType = "Fargate" }
}
provider "aws" {
  region                      = "us-east-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  endpoints { eks = var.endpoint }
}
resource "aws_eks_cluster" "c" {
  name                      = "tf"
  role_arn                  = "arn:aws:iam::000000000000:role/eks-cluster"
  vpc_config { subnet_ids = ["subnet-0a1b2c3d4e5f60004", "subnet-0a1b2c3d4e5f60005"] }
  enabled_cluster_log_types = var.log_types
}
resource "aws_eks_addon" "coredns" {
  cluster_name         = aws_eks_cluster.c.name
  addon_name           = "coredns"
  configuration_values = jsonencode(var.dns)
  tags                 = { team = "dns" }
}
resource "aws_eks_node_group" "ng" {
  cluster_name    = aws_eks_cluster.c.name
  node_group_name = "ng"
  node_role_arn   = "arn:aws:iam::000000000000:role/node"
  subnet_ids      = ["subnet-0a1b2c3d4e5f60004"]
  scaling_config {
    desired_size = var.desired
    max_size     = 3
    min_size     = 1
  }
  launch_template {
    name    = "my-template"
    version = "1"
  }
}
resource "aws_eks_identity_provider_config" "oidc" {
  cluster_name = aws_eks_cluster.c.name
  oidc {
    identity_provider_config_name = "dex"
    issuer_url                    = "https://dex.example.com"
    client_id                     = "k"
  }
}
resource "aws_eks_pod_identity_association" "p" {
  cluster_name    = aws_eks_cluster.c.name
  namespace       = "default"
  service_account = "app"
  role_arn        = "arn:aws:iam::000000000000:role/app"
}
"""


@pytest.mark.skipif(terraform_missing() is not None, reason=terraform_missing() or "")
def test_terraform_eks_resources(tmp_path):
    server = Server("--lifecycle-seconds", "0.5").start()
    try:
        (tmp_path / "main.tf").write_text(CONFIG)
        tf = terraform(tmp_path, timeout=600)

        var = ["-var", f"endpoint={server.url}"]
        tf("init")
        tf("apply", "-auto-approve", *var)
        eks = server.client()
        ng = eks.describe_nodegroup(clusterName="tf", nodegroupName="ng")["nodegroup"]
        assert ng["launchTemplate"]["name"] == "my-template" and "diskSize" not in ng
        addon = eks.describe_addon(clusterName="tf", addonName="coredns")["addon"]
        assert json.loads(addon["configurationValues"]) == {"computeType": "Fargate"}
        tf("plan", "-detailed-exitcode", *var)

        # In place: logging (UpdateClusterConfig), scaling (UpdateNodegroupConfig), add-on values.
        changed = [*var, "-var", 'log_types=["api","audit","scheduler"]', "-var", "desired=2",
                   "-var", 'dns={"computeType":"Fargate","replicaCount":3}']
        out = tf("apply", "-auto-approve", *changed)
        assert "0 added, 3 changed, 0 destroyed" in out.stdout
        tf("plan", "-detailed-exitcode", *changed)
        ng = eks.describe_nodegroup(clusterName="tf", nodegroupName="ng")["nodegroup"]
        assert ng["scalingConfig"]["desiredSize"] == 2
        updates = eks.list_updates(name="tf")["updateIds"]
        assert any(eks.describe_update(name="tf", updateId=u)["update"]["type"] == "LoggingUpdate" for u in updates)

        tf("destroy", "-auto-approve", *changed)
        assert eks.list_clusters()["clusters"] == []
    finally:
        server.stop()
